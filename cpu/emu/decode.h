/* x86 instruction decoder for the emu software CPU: turns guest bytes into a compact, fully parsed form
 * (prefixes, operand/address size, ModRM/SIB, displacement, immediates, operation id) for 16-, 32- and 64-bit
 * code. */
#ifndef DESKVM_EMU_DECODE_H
#define DESKVM_EMU_DECODE_H

#include <stddef.h>
#include <stdint.h>

#define X86_MAX_INSN_LEN 15

/* Negative results of x86_decode. */
#define X86_DECODE_NEED_MORE (-1) /* avail ended inside the instruction: fetch the next page and retry */
#define X86_DECODE_UD (-2)        /* invalid opcode: raise #UD */
#define X86_DECODE_TOO_LONG (-3)  /* longer than 15 bytes: raise #GP(0) */

/* Default operand/address size of the code segment: CS.D=0, CS.D=1, CS.L=1. */
enum x86_mode { X86_MODE_16, X86_MODE_32, X86_MODE_64 };

enum x86_map { X86_MAP_ONE, X86_MAP_0F, X86_MAP_0F38, X86_MAP_0F3A };

/* Hardware segment register numbers. */
enum x86_seg { X86_SEG_ES, X86_SEG_CS, X86_SEG_SS, X86_SEG_DS, X86_SEG_FS, X86_SEG_GS };

/* The prefix that selects an SSE instruction's variant (F2/F3 beat 66; the last of F2/F3 wins). */
enum x86_mandatory { X86_MP_NONE, X86_MP_66, X86_MP_F3, X86_MP_F2 };

#define X86_REG_NONE 0xff

/* insn.prefixes */
#define X86_PFX_LOCK 0x01
#define X86_PFX_REP 0x02      /* F3 (REP/REPE), the last of F2/F3 */
#define X86_PFX_REPNE 0x04    /* F2, the last of F2/F3 */
#define X86_PFX_OPSIZE 0x08   /* 66 */
#define X86_PFX_ADDRSIZE 0x10 /* 67 */
#define X86_PFX_SEG 0x20      /* a segment override is in effect: insn.seg names it */
#define X86_PFX_REX 0x40      /* a REX prefix is in effect (immediately before the opcode): insn.rex */
#define X86_PFX_VEX 0x80      /* VEX/EVEX encoded (AVX, AVX-512): length only, the CPU raises #UD */

/* insn.flags */
#define X86_INSN_MODRM 0x01   /* a ModRM byte was present (modrm holds it) */
#define X86_INSN_MEM 0x02     /* there is a memory operand: base/index/scale/disp (or moffs) */
#define X86_INSN_SIB 0x04     /* a SIB byte was present */
#define X86_INSN_RIP_REL 0x08 /* 64-bit mode mod=00 rm=101: address = next RIP + disp (masked to addrsize)   \
                               */
#define X86_INSN_HIGH_BYTE                                                                                   \
    0x10 /* no REX: byte registers 4-7 are AH, CH, DH, BH (with REX: SPL, BPL, SIL, DIL) */

/* Operation ids. Operand positions come from insn.form, sizes from opsize. Condition codes of
 * Jcc/SETcc/CMOVcc are opcode & 15. X87 is dispatched on (opcode & 7, ModRM); SSE (MMX/SSE..SSE4 in maps
 * 0F/0F38/0F3A) on (map, opcode, mandatory prefix, and ModRM.reg for 0F 71-73). CMPXCHG8B is CMPXCHG16B when
 * opsize is 8. CBW/CWD cover CWDE/CDQE and CDQ/CQO by opsize. TZCNT/LZCNT (F3 0F BC/BD) execute as BSF/BSR on
 * CPUs without BMI1/ABM. */
// clang-format off
#define X86_OP_LIST(X)                                                                                    \
    X(INVALID) X(ADD) X(OR) X(ADC) X(SBB) X(AND) X(SUB) X(XOR) X(CMP) X(INC) X(DEC) X(NOT) X(NEG) X(MUL)  \
    X(IMUL) X(DIV) X(IDIV) X(TEST) X(ROL) X(ROR) X(RCL) X(RCR) X(SHL) X(SHR) X(SAR) X(SHLD) X(SHRD)       \
    X(DAA) X(DAS) X(AAA) X(AAS) X(AAM) X(AAD) X(SALC) X(PUSH) X(POP) X(PUSH_SEG) X(POP_SEG) X(PUSHA)      \
    X(POPA) X(PUSHF) X(POPF) X(ENTER) X(LEAVE) X(BOUND) X(ARPL) X(MOVSXD) X(MOV) X(MOV_SEG) X(MOV_CR)     \
    X(MOV_DR) X(MOVZX) X(MOVSX) X(LEA) X(XCHG) X(NOP) X(PAUSE) X(CBW) X(CWD) X(SAHF) X(LAHF) X(WAIT)      \
    X(XLAT) X(MOVS) X(CMPS) X(STOS) X(LODS) X(SCAS) X(INS) X(OUTS) X(IN) X(OUT) X(JCC) X(JMP) X(CALL)     \
    X(RET) X(JMPF) X(CALLF) X(RETF) X(INT3) X(INT) X(INTO) X(INT1) X(IRET) X(LOOPNE) X(LOOPE) X(LOOP)     \
    X(JCXZ) X(LES) X(LDS) X(LSS) X(LFS) X(LGS) X(HLT) X(CMC) X(CLC) X(STC) X(CLI) X(STI) X(CLD) X(STD)    \
    X(XABORT) X(XBEGIN) X(X87) X(SLDT) X(STR) X(LLDT) X(LTR) X(VERR) X(VERW) X(SGDT) X(SIDT) X(LGDT)      \
    X(LIDT) X(SMSW) X(LMSW) X(INVLPG) X(SWAPGS) X(RDTSCP) X(CLAC) X(STAC) X(XGETBV) X(MONITOR) X(MWAIT)   \
    X(LAR) X(LSL) X(SYSCALL) X(SYSRET) X(SYSENTER) X(SYSEXIT) X(CLTS) X(INVD) X(WBINVD) X(WRMSR) X(RDTSC) \
    X(RDMSR) X(RDPMC) X(CPUID) X(RSM) X(CMOVCC) X(SETCC) X(BT) X(BTS) X(BTR) X(BTC) X(BSF) X(BSR)         \
    X(TZCNT) X(LZCNT) X(POPCNT) X(CMPXCHG) X(XADD) X(CMPXCHG8B) X(BSWAP) X(MOVNTI) X(MOVBE) X(CRC32)      \
    X(ADCX) X(ADOX) X(RDRAND) X(RDSEED) X(RDPID) X(FXSAVE) X(FXRSTOR) X(LDMXCSR) X(STMXCSR) X(XSAVE)      \
    X(XRSTOR) X(XSAVEOPT) X(CLFLUSH) X(CLFLUSHOPT) X(CLWB) X(LFENCE) X(MFENCE) X(SFENCE) X(RDFSBASE)      \
    X(RDGSBASE) X(WRFSBASE) X(WRGSBASE) X(EMMS) X(SSE) X(AVX)
// clang-format on

enum x86_op {
#define X86_OP_ENUM(name) X86_OP_##name,
    X86_OP_LIST(X86_OP_ENUM)
#undef X86_OP_ENUM
        X86_OP_COUNT
};

/* Where the operands are. E = ModRM r/m (register rm when mod == 3, else memory), G = ModRM reg, I = imm.
 * Accumulator forms (04, A8, A0-A3 moffs, 90+r) and opcode-register forms (40+r, 50+r, B0+r, 0F C8+r) are
 * presented as their ModRM equivalents (rm/reg filled in, mod = 3 for registers) so they share handlers.
 * X87, SSE and AVX use NONE: their operands follow from the opcode (and ModRM) alone. */
enum x86_form {
    X86_FORM_NONE,   /* operands implied by the operation */
    X86_FORM_E,      /* one r/m operand */
    X86_FORM_E_G,    /* destination r/m, source reg (MOV_SEG/MOV_CR/MOV_DR: reg is the special register) */
    X86_FORM_G_E,    /* destination reg, source r/m */
    X86_FORM_E_I,    /* r/m, imm */
    X86_FORM_G_E_I,  /* reg, r/m, imm (IMUL 69/6B) */
    X86_FORM_E_G_I,  /* SHLD/SHRD r/m, reg, imm8 */
    X86_FORM_E_G_CL, /* SHLD/SHRD r/m, reg, CL */
    X86_FORM_E_1,    /* shift r/m by 1 */
    X86_FORM_E_CL,   /* shift r/m by CL */
    X86_FORM_I,      /* imm only: PUSH imm, INT n, RET imm16, ENTER imm16 (imm), imm8 (imm2), IN/OUT port */
    X86_FORM_J,      /* relative branch: imm is the sign-extended displacement from the next instruction */
    X86_FORM_FAR,    /* ptr16:16/32: imm is the offset, imm2 the selector */
    X86_FORM_SEG,    /* PUSH/POP segment register: reg is the segment (enum x86_seg) */
};

/* One decoded instruction (40 bytes). */
struct x86_insn {
    int64_t disp;  /* sign-extended displacement; moffs (A0-A3): the offset, zero-extended */
    uint64_t imm;  /* zero-extended, except Ib sign-extended ops (83, 6A, 6B), rel8/rel16/rel32 and imm32 with
                    * 64-bit operand size, which are sign-extended to 64 bits */
    uint16_t op;   /* enum x86_op */
    uint16_t imm2; /* second immediate: ENTER nesting level, far pointer selector */
    uint8_t form;  /* enum x86_form */
    uint8_t map;   /* enum x86_map (VEX: the VEX map, 1-3) */
    uint8_t opcode;   /* opcode byte within the map */
    uint8_t len;      /* 1..15 */
    uint8_t prefixes; /* X86_PFX_* */
    uint8_t seg; /* segment of the memory operand (string ops: of the source): override or DS/SS default */
    uint8_t mandatory; /* enum x86_mandatory */
    uint8_t rex;       /* the REX byte in effect (0x40-0x4F), else 0 */
    uint8_t opsize;    /* effective operand size in bytes: 1, 2, 4, 8 */
    uint8_t addrsize;  /* effective address size in bytes: 2, 4, 8 */
    uint8_t modrm;     /* raw ModRM byte */
    uint8_t mod;       /* ModRM.mod; 3 = register operand */
    uint8_t reg;       /* ModRM.reg | REX.R << 3 (segment register number for MOV_SEG) */
    uint8_t rm;        /* ModRM.rm | REX.B << 3 */
    uint8_t base;      /* base register (16-bit forms: BX=3/BP=5), or X86_REG_NONE */
    uint8_t index;     /* index register (16-bit forms: SI=6/DI=7), or X86_REG_NONE */
    uint8_t scale;     /* index scale as a shift count, 0-3 */
    uint8_t flags;     /* X86_INSN_* */
    uint8_t disp_size; /* displacement bytes in the encoding (moffs: 2/4/8) */
    uint8_t imm_size;  /* immediate bytes in the encoding (both immediates together) */
};

/* Decodes one instruction from bytes[0..avail). Never reads past avail or past 15 bytes. Returns the length
 * (1..15) or X86_DECODE_NEED_MORE / X86_DECODE_UD / X86_DECODE_TOO_LONG. 66 on near branches in 64-bit mode
 * selects a 16-bit operand size (AMD64 behaviour, as the guest CPU identifies as AMD; Intel ignores it). */
int x86_decode(const uint8_t *bytes, size_t avail, enum x86_mode mode, struct x86_insn *out);

/* "ADD", "JCC", ...; "?" for out-of-range ids. */
const char *x86_op_name(unsigned op);

#endif
