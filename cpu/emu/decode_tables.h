/* Opcode tables of the emu decoder (internal to decode.c): one descriptor per opcode per map, plus ModRM.reg
 * groups and the mandatory-prefix validity of SSE opcodes. */
#ifndef DESKVM_EMU_DECODE_TABLES_H
#define DESKVM_EMU_DECODE_TABLES_H

#include <stdint.h>

/* Immediate kinds. */
enum {
    X86_IMM_NONE,
    X86_IMM_B,     /* imm8, zero-extended */
    X86_IMM_BS,    /* imm8, sign-extended */
    X86_IMM_W,     /* imm16 */
    X86_IMM_Z,     /* operand-sized, at most 32 bits (sign-extended when opsize is 8) */
    X86_IMM_V,     /* operand-sized, up to 64 bits (MOV r, imm) */
    X86_IMM_JB,    /* rel8 */
    X86_IMM_JZ,    /* rel16/rel32 */
    X86_IMM_AP,    /* ptr16:16 / ptr16:32 */
    X86_IMM_W_B,   /* ENTER imm16, imm8 */
    X86_IMM_MOFFS, /* address-sized offset (A0-A3) */
};

/* Descriptor flags. */
#define X86_D_MODRM 0x0001
#define X86_D_BYTE 0x0002    /* byte operand size */
#define X86_D_D64 0x0004     /* 64-bit default operand size in long mode (66 gives 16) */
#define X86_D_F64 0x0008     /* 64-bit operand size in long mode whatever the prefixes */
#define X86_D_I64 0x0010     /* invalid in long mode */
#define X86_D_O64 0x0020     /* valid only in long mode */
#define X86_D_LOCK 0x0040    /* LOCK allowed (with a memory destination) */
#define X86_D_MEM 0x0080     /* memory operand only (mod == 3 is #UD) */
#define X86_D_REG 0x0100     /* register operand only (mod != 3 is #UD) */
#define X86_D_NO64 0x0200    /* REX.W ignored: 16/32-bit operand size at most (IN/OUT/INS/OUTS) */
#define X86_D_SSE 0x0400     /* variant selected by the mandatory prefix; GPR operand size from REX.W only */
#define X86_D_CRDR 0x0800    /* MOV CR/DR: mod is ignored (always registers), operand size 32 or 64 by mode */
#define X86_D_GROUP 0x1000   /* ModRM.reg selects the operation: group holds the group number */
#define X86_D_SPECIAL 0x2000 /* decode.c picks the operation (prefix- or mode-dependent) */
#define X86_D_ACC 0x4000     /* accumulator as the register r/m operand (mod = 3, rm = 0) */
#define X86_D_OPREG 0x8000   /* register in the opcode's low 3 bits as the register r/m operand */

struct x86_opdesc {
    uint16_t op;
    uint8_t form;
    uint8_t imm;
    uint16_t flags;
    uint8_t group;
    uint8_t pad;
};

enum {
    X86_GRP_1,  /* 80-83 */
    X86_GRP_1A, /* 8F */
    X86_GRP_2,  /* C0, C1, D0-D3 */
    X86_GRP_3,  /* F6, F7 */
    X86_GRP_4,  /* FE */
    X86_GRP_5,  /* FF */
    X86_GRP_11, /* C6, C7 */
    X86_GRP_6,  /* 0F 00 */
    X86_GRP_7,  /* 0F 01 memory forms (register forms: decode.c) */
    X86_GRP_8,  /* 0F BA */
    X86_GRP_COUNT
};

extern const struct x86_opdesc x86_table_one[256];
extern const struct x86_opdesc x86_table_0f[256];
extern const struct x86_opdesc x86_groups[X86_GRP_COUNT][8];

/* Per opcode of maps 0F, 0F38, 0F3A: bits 0-3 valid mandatory prefixes (1 << enum x86_mandatory), bits 4-7
 * those of them that take a memory operand only, bits 8-11 those that take a register operand only. */
extern const uint16_t x86_sse_0f[256];
extern const uint16_t x86_sse_0f38[256];
extern const uint16_t x86_sse_0f3a[256];

#endif
