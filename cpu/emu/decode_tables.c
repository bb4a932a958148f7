/* Opcode tables of the emu decoder: one-byte and 0F maps, ModRM.reg groups, SSE mandatory-prefix validity. */
#include "emu/decode_tables.h"

#include "emu/decode.h"

// clang-format off

#define D(o, f, i, fl) { X86_OP_##o, X86_FORM_##f, X86_IMM_##i, (fl), 0, 0 }
#define G(g, f, i, fl) \
    { X86_OP_INVALID, X86_FORM_##f, X86_IMM_##i, (fl) | X86_D_GROUP | X86_D_MODRM, X86_GRP_##g, 0 }
#define S(f, i, fl) { X86_OP_INVALID, X86_FORM_##f, X86_IMM_##i, (fl) | X86_D_SPECIAL, 0, 0 }
#define NONE_ { 0, 0, 0, 0, 0, 0 }

#define M X86_D_MODRM
#define B X86_D_BYTE
#define D64 X86_D_D64
#define F64 X86_D_F64
#define I64 X86_D_I64
#define O64 X86_D_O64
#define LK X86_D_LOCK
#define MEM X86_D_MEM
#define NO64 X86_D_NO64
#define SSE (X86_D_SSE | X86_D_MODRM)
#define CRDR (X86_D_CRDR | X86_D_MODRM)
#define ACC X86_D_ACC
#define OPREG X86_D_OPREG

/* The eight classic ALU operations share one layout: Eb,Gb  Ev,Gv  Gb,Eb  Gv,Ev  AL,Ib  rAX,Iz. */
#define ALU(base, o, lk)                                                                    \
    [(base) + 0] = D(o, E_G, NONE, M | B | (lk)), [(base) + 1] = D(o, E_G, NONE, M | (lk)), \
    [(base) + 2] = D(o, G_E, NONE, M | B), [(base) + 3] = D(o, G_E, NONE, M),               \
    [(base) + 4] = D(o, E_I, Z, B | ACC), [(base) + 5] = D(o, E_I, Z, ACC)

#define R8(first, e)                                                                           \
    [(first)] = e, [(first) + 1] = e, [(first) + 2] = e, [(first) + 3] = e, [(first) + 4] = e, \
    [(first) + 5] = e, [(first) + 6] = e, [(first) + 7] = e

/* Prefix bytes and escapes are handled in decode.c and stay NONE_ here. */
const struct x86_opdesc x86_table_one[256] = {
    ALU(0x00, ADD, LK), ALU(0x08, OR, LK), ALU(0x10, ADC, LK), ALU(0x18, SBB, LK),
    ALU(0x20, AND, LK), ALU(0x28, SUB, LK), ALU(0x30, XOR, LK), ALU(0x38, CMP, 0),
    [0x06] = D(PUSH_SEG, SEG, NONE, I64), [0x07] = D(POP_SEG, SEG, NONE, I64),
    [0x0e] = D(PUSH_SEG, SEG, NONE, I64),
    [0x16] = D(PUSH_SEG, SEG, NONE, I64), [0x17] = D(POP_SEG, SEG, NONE, I64),
    [0x1e] = D(PUSH_SEG, SEG, NONE, I64), [0x1f] = D(POP_SEG, SEG, NONE, I64),
    [0x27] = D(DAA, NONE, NONE, I64), [0x2f] = D(DAS, NONE, NONE, I64),
    [0x37] = D(AAA, NONE, NONE, I64), [0x3f] = D(AAS, NONE, NONE, I64),
    R8(0x40, D(INC, E, NONE, OPREG | I64)), R8(0x48, D(DEC, E, NONE, OPREG | I64)),
    R8(0x50, D(PUSH, E, NONE, OPREG | D64)), R8(0x58, D(POP, E, NONE, OPREG | D64)),
    [0x60] = D(PUSHA, NONE, NONE, I64), [0x61] = D(POPA, NONE, NONE, I64),
    [0x62] = D(BOUND, G_E, NONE, M | MEM | I64), [0x63] = S(NONE, NONE, M),
    [0x68] = D(PUSH, I, Z, D64), [0x69] = D(IMUL, G_E_I, Z, M),
    [0x6a] = D(PUSH, I, BS, D64), [0x6b] = D(IMUL, G_E_I, BS, M),
    [0x6c] = D(INS, NONE, NONE, B), [0x6d] = D(INS, NONE, NONE, NO64),
    [0x6e] = D(OUTS, NONE, NONE, B), [0x6f] = D(OUTS, NONE, NONE, NO64),
    R8(0x70, D(JCC, J, JB, D64)), R8(0x78, D(JCC, J, JB, D64)),
    [0x80] = G(1, E_I, Z, B), [0x81] = G(1, E_I, Z, 0), [0x82] = G(1, E_I, Z, B | I64),
    [0x83] = G(1, E_I, BS, 0),
    [0x84] = D(TEST, E_G, NONE, M | B), [0x85] = D(TEST, E_G, NONE, M),
    [0x86] = D(XCHG, E_G, NONE, M | B | LK), [0x87] = D(XCHG, E_G, NONE, M | LK),
    [0x88] = D(MOV, E_G, NONE, M | B), [0x89] = D(MOV, E_G, NONE, M),
    [0x8a] = D(MOV, G_E, NONE, M | B), [0x8b] = D(MOV, G_E, NONE, M),
    [0x8c] = D(MOV_SEG, E_G, NONE, M), [0x8d] = D(LEA, G_E, NONE, M | MEM),
    [0x8e] = D(MOV_SEG, G_E, NONE, M), [0x8f] = G(1A, E, NONE, D64),
    [0x90] = S(E_G, NONE, OPREG), [0x91] = D(XCHG, E_G, NONE, OPREG), [0x92] = D(XCHG, E_G, NONE, OPREG),
    [0x93] = D(XCHG, E_G, NONE, OPREG), [0x94] = D(XCHG, E_G, NONE, OPREG),
    [0x95] = D(XCHG, E_G, NONE, OPREG),
    [0x96] = D(XCHG, E_G, NONE, OPREG), [0x97] = D(XCHG, E_G, NONE, OPREG),
    [0x98] = D(CBW, NONE, NONE, 0), [0x99] = D(CWD, NONE, NONE, 0), [0x9a] = D(CALLF, FAR, AP, I64),
    [0x9b] = D(WAIT, NONE, NONE, 0), [0x9c] = D(PUSHF, NONE, NONE, D64), [0x9d] = D(POPF, NONE, NONE, D64),
    [0x9e] = D(SAHF, NONE, NONE, 0), [0x9f] = D(LAHF, NONE, NONE, 0),
    [0xa0] = D(MOV, G_E, MOFFS, B), [0xa1] = D(MOV, G_E, MOFFS, 0),
    [0xa2] = D(MOV, E_G, MOFFS, B), [0xa3] = D(MOV, E_G, MOFFS, 0),
    [0xa4] = D(MOVS, NONE, NONE, B), [0xa5] = D(MOVS, NONE, NONE, 0),
    [0xa6] = D(CMPS, NONE, NONE, B), [0xa7] = D(CMPS, NONE, NONE, 0),
    [0xa8] = D(TEST, E_I, Z, B | ACC), [0xa9] = D(TEST, E_I, Z, ACC),
    [0xaa] = D(STOS, NONE, NONE, B), [0xab] = D(STOS, NONE, NONE, 0),
    [0xac] = D(LODS, NONE, NONE, B), [0xad] = D(LODS, NONE, NONE, 0),
    [0xae] = D(SCAS, NONE, NONE, B), [0xaf] = D(SCAS, NONE, NONE, 0),
    R8(0xb0, D(MOV, E_I, Z, B | OPREG)), R8(0xb8, D(MOV, E_I, V, OPREG)),
    [0xc0] = G(2, E_I, B, B), [0xc1] = G(2, E_I, B, 0),
    [0xc2] = D(RET, I, W, D64), [0xc3] = D(RET, NONE, NONE, D64),
    [0xc4] = D(LES, G_E, NONE, M | MEM | I64), [0xc5] = D(LDS, G_E, NONE, M | MEM | I64),
    [0xc6] = G(11, E_I, Z, B), [0xc7] = G(11, E_I, Z, 0),
    [0xc8] = D(ENTER, I, W_B, D64), [0xc9] = D(LEAVE, NONE, NONE, D64),
    [0xca] = D(RETF, I, W, 0), [0xcb] = D(RETF, NONE, NONE, 0),
    [0xcc] = D(INT3, NONE, NONE, 0), [0xcd] = D(INT, I, B, 0), [0xce] = D(INTO, NONE, NONE, I64),
    [0xcf] = D(IRET, NONE, NONE, 0),
    [0xd0] = G(2, E_1, NONE, B), [0xd1] = G(2, E_1, NONE, 0), [0xd2] = G(2, E_CL, NONE, B),
    [0xd3] = G(2, E_CL, NONE, 0),
    [0xd4] = D(AAM, I, B, I64), [0xd5] = D(AAD, I, B, I64), [0xd6] = D(SALC, NONE, NONE, I64),
    [0xd7] = D(XLAT, NONE, NONE, B),
    R8(0xd8, D(X87, NONE, NONE, M)),
    [0xe0] = D(LOOPNE, J, JB, D64), [0xe1] = D(LOOPE, J, JB, D64), [0xe2] = D(LOOP, J, JB, D64),
    [0xe3] = D(JCXZ, J, JB, D64),
    [0xe4] = D(IN, I, B, B), [0xe5] = D(IN, I, B, NO64), [0xe6] = D(OUT, I, B, B),
    [0xe7] = D(OUT, I, B, NO64),
    [0xe8] = D(CALL, J, JZ, D64), [0xe9] = D(JMP, J, JZ, D64), [0xea] = D(JMPF, FAR, AP, I64),
    [0xeb] = D(JMP, J, JB, D64),
    [0xec] = D(IN, NONE, NONE, B), [0xed] = D(IN, NONE, NONE, NO64),
    [0xee] = D(OUT, NONE, NONE, B), [0xef] = D(OUT, NONE, NONE, NO64),
    [0xf1] = D(INT1, NONE, NONE, 0), [0xf4] = D(HLT, NONE, NONE, 0), [0xf5] = D(CMC, NONE, NONE, 0),
    [0xf6] = G(3, E, NONE, B), [0xf7] = G(3, E, NONE, 0),
    [0xf8] = D(CLC, NONE, NONE, 0), [0xf9] = D(STC, NONE, NONE, 0), [0xfa] = D(CLI, NONE, NONE, 0),
    [0xfb] = D(STI, NONE, NONE, 0), [0xfc] = D(CLD, NONE, NONE, 0), [0xfd] = D(STD, NONE, NONE, 0),
    [0xfe] = G(4, E, NONE, B), [0xff] = G(5, E, NONE, 0),
};

const struct x86_opdesc x86_table_0f[256] = {
    [0x00] = G(6, E, NONE, 0), [0x01] = S(E, NONE, M),
    [0x02] = D(LAR, G_E, NONE, M), [0x03] = D(LSL, G_E, NONE, M),
    [0x05] = D(SYSCALL, NONE, NONE, 0), [0x06] = D(CLTS, NONE, NONE, 0), [0x07] = D(SYSRET, NONE, NONE, 0),
    [0x08] = D(INVD, NONE, NONE, 0), [0x09] = D(WBINVD, NONE, NONE, 0),
    [0x0d] = D(NOP, E, NONE, M | MEM), /* PREFETCH/PREFETCHW */
    R8(0x10, D(SSE, NONE, NONE, SSE)),
    R8(0x18, D(NOP, E, NONE, M)), /* PREFETCHh, reserved-NOP hints, ENDBR */
    [0x20] = D(MOV_CR, E_G, NONE, CRDR), [0x21] = D(MOV_DR, E_G, NONE, CRDR),
    [0x22] = D(MOV_CR, G_E, NONE, CRDR), [0x23] = D(MOV_DR, G_E, NONE, CRDR),
    R8(0x28, D(SSE, NONE, NONE, SSE)),
    [0x30] = D(WRMSR, NONE, NONE, 0), [0x31] = D(RDTSC, NONE, NONE, 0), [0x32] = D(RDMSR, NONE, NONE, 0),
    [0x33] = D(RDPMC, NONE, NONE, 0), [0x34] = D(SYSENTER, NONE, NONE, 0), [0x35] = D(SYSEXIT, NONE, NONE, 0),
    R8(0x40, D(CMOVCC, G_E, NONE, M)), R8(0x48, D(CMOVCC, G_E, NONE, M)),
    R8(0x50, D(SSE, NONE, NONE, SSE)), R8(0x58, D(SSE, NONE, NONE, SSE)),
    R8(0x60, D(SSE, NONE, NONE, SSE)), R8(0x68, D(SSE, NONE, NONE, SSE)),
    [0x70] = D(SSE, NONE, B, SSE), [0x71] = D(SSE, NONE, B, SSE), [0x72] = D(SSE, NONE, B, SSE),
    [0x73] = D(SSE, NONE, B, SSE), [0x74] = D(SSE, NONE, NONE, SSE), [0x75] = D(SSE, NONE, NONE, SSE),
    [0x76] = D(SSE, NONE, NONE, SSE), [0x77] = D(EMMS, NONE, NONE, 0),
    [0x7c] = D(SSE, NONE, NONE, SSE), [0x7d] = D(SSE, NONE, NONE, SSE), [0x7e] = D(SSE, NONE, NONE, SSE),
    [0x7f] = D(SSE, NONE, NONE, SSE),
    R8(0x80, D(JCC, J, JZ, D64)), R8(0x88, D(JCC, J, JZ, D64)),
    R8(0x90, D(SETCC, E, NONE, M | B)), R8(0x98, D(SETCC, E, NONE, M | B)),
    [0xa0] = D(PUSH_SEG, SEG, NONE, D64), [0xa1] = D(POP_SEG, SEG, NONE, D64),
    [0xa2] = D(CPUID, NONE, NONE, 0),
    [0xa3] = D(BT, E_G, NONE, M), [0xa4] = D(SHLD, E_G_I, B, M), [0xa5] = D(SHLD, E_G_CL, NONE, M),
    [0xa8] = D(PUSH_SEG, SEG, NONE, D64), [0xa9] = D(POP_SEG, SEG, NONE, D64), [0xaa] = D(RSM, NONE, NONE, 0),
    [0xab] = D(BTS, E_G, NONE, M | LK), [0xac] = D(SHRD, E_G_I, B, M), [0xad] = D(SHRD, E_G_CL, NONE, M),
    [0xae] = S(E, NONE, M), [0xaf] = D(IMUL, G_E, NONE, M),
    [0xb0] = D(CMPXCHG, E_G, NONE, M | B | LK), [0xb1] = D(CMPXCHG, E_G, NONE, M | LK),
    [0xb2] = D(LSS, G_E, NONE, M | MEM), [0xb3] = D(BTR, E_G, NONE, M | LK),
    [0xb4] = D(LFS, G_E, NONE, M | MEM), [0xb5] = D(LGS, G_E, NONE, M | MEM),
    [0xb6] = D(MOVZX, G_E, NONE, M), [0xb7] = D(MOVZX, G_E, NONE, M),
    [0xb8] = S(G_E, NONE, M), [0xba] = G(8, E_I, B, 0), [0xbb] = D(BTC, E_G, NONE, M | LK),
    [0xbc] = S(G_E, NONE, M), [0xbd] = S(G_E, NONE, M),
    [0xbe] = D(MOVSX, G_E, NONE, M), [0xbf] = D(MOVSX, G_E, NONE, M),
    [0xc0] = D(XADD, E_G, NONE, M | B | LK), [0xc1] = D(XADD, E_G, NONE, M | LK),
    [0xc2] = D(SSE, NONE, B, SSE), [0xc3] = D(MOVNTI, E_G, NONE, SSE),
    [0xc4] = D(SSE, NONE, B, SSE), [0xc5] = D(SSE, NONE, B, SSE), [0xc6] = D(SSE, NONE, B, SSE),
    [0xc7] = S(E, NONE, M),
    R8(0xc8, D(BSWAP, E, NONE, OPREG)),
    R8(0xd0, D(SSE, NONE, NONE, SSE)), R8(0xd8, D(SSE, NONE, NONE, SSE)),
    R8(0xe0, D(SSE, NONE, NONE, SSE)), R8(0xe8, D(SSE, NONE, NONE, SSE)),
    R8(0xf0, D(SSE, NONE, NONE, SSE)), R8(0xf8, D(SSE, NONE, NONE, SSE)),
};

/* Group entries: op, extra flags, and form/imm when they differ from the opcode's. */
const struct x86_opdesc x86_groups[X86_GRP_COUNT][8] = {
    [X86_GRP_1] = {
        D(ADD, NONE, NONE, LK), D(OR, NONE, NONE, LK), D(ADC, NONE, NONE, LK), D(SBB, NONE, NONE, LK),
        D(AND, NONE, NONE, LK), D(SUB, NONE, NONE, LK), D(XOR, NONE, NONE, LK), D(CMP, NONE, NONE, 0),
    },
    [X86_GRP_1A] = { D(POP, NONE, NONE, 0) },
    [X86_GRP_2] = {
        D(ROL, NONE, NONE, 0), D(ROR, NONE, NONE, 0), D(RCL, NONE, NONE, 0), D(RCR, NONE, NONE, 0),
        D(SHL, NONE, NONE, 0), D(SHR, NONE, NONE, 0), D(SHL, NONE, NONE, 0), D(SAR, NONE, NONE, 0),
    },
    [X86_GRP_3] = {
        D(TEST, E_I, Z, 0), D(TEST, E_I, Z, 0), D(NOT, NONE, NONE, LK), D(NEG, NONE, NONE, LK),
        D(MUL, NONE, NONE, 0), D(IMUL, NONE, NONE, 0), D(DIV, NONE, NONE, 0), D(IDIV, NONE, NONE, 0),
    },
    [X86_GRP_4] = { D(INC, NONE, NONE, LK), D(DEC, NONE, NONE, LK) },
    [X86_GRP_5] = {
        D(INC, NONE, NONE, LK), D(DEC, NONE, NONE, LK), D(CALL, NONE, NONE, D64), D(CALLF, NONE, NONE, MEM),
        D(JMP, NONE, NONE, D64), D(JMPF, NONE, NONE, MEM), D(PUSH, NONE, NONE, D64), NONE_,
    },
    [X86_GRP_11] = { D(MOV, NONE, NONE, 0) }, /* /7 with ModRM F8 is XABORT/XBEGIN, picked in decode.c */
    [X86_GRP_6] = {
        D(SLDT, NONE, NONE, 0), D(STR, NONE, NONE, 0), D(LLDT, NONE, NONE, 0), D(LTR, NONE, NONE, 0),
        D(VERR, NONE, NONE, 0), D(VERW, NONE, NONE, 0), NONE_, NONE_,
    },
    [X86_GRP_7] = {
        D(SGDT, NONE, NONE, F64 | MEM), D(SIDT, NONE, NONE, F64 | MEM), D(LGDT, NONE, NONE, F64 | MEM),
        D(LIDT, NONE, NONE, F64 | MEM), D(SMSW, NONE, NONE, 0), NONE_, D(LMSW, NONE, NONE, 0),
        D(INVLPG, NONE, NONE, MEM),
    },
    [X86_GRP_8] = {
        NONE_, NONE_, NONE_, NONE_, D(BT, NONE, NONE, 0), D(BTS, NONE, NONE, LK), D(BTR, NONE, NONE, LK),
        D(BTC, NONE, NONE, LK),
    },
};

#define PN 0x1 /* no prefix */
#define P6 0x2 /* 66 */
#define P3 0x4 /* F3 */
#define P2 0x8 /* F2 */
#define PALL (PN | P6 | P3 | P2)
#define MO(p) ((p) << 4) /* memory operand only */
#define RO(p) ((p) << 8) /* register operand only */

const uint16_t x86_sse_0f[256] = {
    [0x10] = PALL, [0x11] = PALL, [0x12] = PALL | MO(P6), [0x13] = PN | P6 | MO(PN | P6),
    [0x14] = PN | P6, [0x15] = PN | P6, [0x16] = PN | P6 | P3 | MO(P6), [0x17] = PN | P6 | MO(PN | P6),
    [0x28] = PN | P6, [0x29] = PN | P6, [0x2a] = PALL, [0x2b] = PN | P6 | MO(PN | P6),
    [0x2c] = PALL, [0x2d] = PALL, [0x2e] = PN | P6, [0x2f] = PN | P6,
    [0x50] = PN | P6 | RO(PN | P6), [0x51] = PALL, [0x52] = PN | P3, [0x53] = PN | P3,
    [0x54] = PN | P6, [0x55] = PN | P6, [0x56] = PN | P6, [0x57] = PN | P6,
    [0x58] = PALL, [0x59] = PALL, [0x5a] = PALL, [0x5b] = PN | P6 | P3,
    [0x5c] = PALL, [0x5d] = PALL, [0x5e] = PALL, [0x5f] = PALL,
    R8(0x60, PN | P6), [0x68] = PN | P6, [0x69] = PN | P6, [0x6a] = PN | P6, [0x6b] = PN | P6,
    [0x6c] = P6, [0x6d] = P6, [0x6e] = PN | P6, [0x6f] = PN | P6 | P3,
    [0x70] = PALL, [0x71] = PN | P6 | RO(PN | P6), [0x72] = PN | P6 | RO(PN | P6),
    [0x73] = PN | P6 | RO(PN | P6),
    [0x74] = PN | P6, [0x75] = PN | P6, [0x76] = PN | P6,
    [0x7c] = P6 | P2, [0x7d] = P6 | P2, [0x7e] = PN | P6 | P3, [0x7f] = PN | P6 | P3,
    [0xc2] = PALL, [0xc3] = PN | MO(PN), [0xc4] = PN | P6, [0xc5] = PN | P6 | RO(PN | P6), [0xc6] = PN | P6,
    [0xd0] = P6 | P2, [0xd1] = PN | P6, [0xd2] = PN | P6, [0xd3] = PN | P6, [0xd4] = PN | P6,
    [0xd5] = PN | P6,
    [0xd6] = P6 | P3 | P2 | RO(P3 | P2), [0xd7] = PN | P6 | RO(PN | P6),
    R8(0xd8, PN | P6),
    [0xe0] = PN | P6, [0xe1] = PN | P6, [0xe2] = PN | P6, [0xe3] = PN | P6, [0xe4] = PN | P6,
    [0xe5] = PN | P6,
    [0xe6] = P6 | P3 | P2, [0xe7] = PN | P6 | MO(PN | P6),
    R8(0xe8, PN | P6),
    [0xf0] = P2 | MO(P2), [0xf1] = PN | P6, [0xf2] = PN | P6, [0xf3] = PN | P6, [0xf4] = PN | P6,
    [0xf5] = PN | P6, [0xf6] = PN | P6, [0xf7] = PN | P6 | RO(PN | P6),
    [0xf8] = PN | P6, [0xf9] = PN | P6, [0xfa] = PN | P6, [0xfb] = PN | P6, [0xfc] = PN | P6,
    [0xfd] = PN | P6,
    [0xfe] = PN | P6,
};

/* SSSE3, SSE4.1, SSE4.2, AES, SHA (F0/F1/F6, the integer ones, are decoded in decode.c). */
const uint16_t x86_sse_0f38[256] = {
    R8(0x00, PN | P6), [0x08] = PN | P6, [0x09] = PN | P6, [0x0a] = PN | P6, [0x0b] = PN | P6,
    [0x10] = P6, [0x14] = P6, [0x15] = P6, [0x17] = P6,
    [0x1c] = PN | P6, [0x1d] = PN | P6, [0x1e] = PN | P6,
    [0x20] = P6, [0x21] = P6, [0x22] = P6, [0x23] = P6, [0x24] = P6, [0x25] = P6,
    [0x28] = P6, [0x29] = P6, [0x2a] = P6 | MO(P6), [0x2b] = P6,
    [0x30] = P6, [0x31] = P6, [0x32] = P6, [0x33] = P6, [0x34] = P6, [0x35] = P6,
    [0x37] = P6, R8(0x38, P6), [0x40] = P6, [0x41] = P6,
    [0xc8] = PN, [0xc9] = PN, [0xca] = PN, [0xcb] = PN, [0xcc] = PN, [0xcd] = PN,
    [0xdb] = P6, [0xdc] = P6, [0xdd] = P6, [0xde] = P6, [0xdf] = P6,
};

const uint16_t x86_sse_0f3a[256] = {
    [0x08] = P6, [0x09] = P6, [0x0a] = P6, [0x0b] = P6, [0x0c] = P6, [0x0d] = P6, [0x0e] = P6,
    [0x0f] = PN | P6,
    [0x14] = P6, [0x15] = P6, [0x16] = P6, [0x17] = P6, [0x20] = P6, [0x21] = P6, [0x22] = P6,
    [0x40] = P6, [0x41] = P6, [0x42] = P6, [0x44] = P6,
    [0x60] = P6, [0x61] = P6, [0x62] = P6, [0x63] = P6,
    [0xcc] = PN, [0xdf] = P6,
};
// clang-format on
