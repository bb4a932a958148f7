/* Architectural state of one emu vCPU: registers, flags (with lazy evaluation), segment caches, control
 * registers, MSRs, descriptor tables, x87/SSE in FXSAVE layout, and pending events. Plain data, no host pointers,
 * so it can be saved and restored as is. */
#ifndef DESKVM_EMU_STATE_H
#define DESKVM_EMU_STATE_H

#include <stdbool.h>
#include <stdint.h>

/* General-purpose registers in encoding order. */
enum emu_reg {
    EMU_RAX, EMU_RCX, EMU_RDX, EMU_RBX, EMU_RSP, EMU_RBP, EMU_RSI, EMU_RDI,
    EMU_R8, EMU_R9, EMU_R10, EMU_R11, EMU_R12, EMU_R13, EMU_R14, EMU_R15,
};

/* RFLAGS bits (Intel SDM vol. 1, 3.4.3). */
#define EMU_FLAG_CF (1u << 0)
#define EMU_FLAG_FIXED1 (1u << 1) /* always 1 */
#define EMU_FLAG_PF (1u << 2)
#define EMU_FLAG_AF (1u << 4)
#define EMU_FLAG_ZF (1u << 6)
#define EMU_FLAG_SF (1u << 7)
#define EMU_FLAG_TF (1u << 8)
#define EMU_FLAG_IF (1u << 9)
#define EMU_FLAG_DF (1u << 10)
#define EMU_FLAG_OF (1u << 11)
#define EMU_FLAG_IOPL (3u << 12)
#define EMU_FLAG_NT (1u << 14)
#define EMU_FLAG_RF (1u << 16)
#define EMU_FLAG_VM (1u << 17)
#define EMU_FLAG_AC (1u << 18)
#define EMU_FLAG_VIF (1u << 19)
#define EMU_FLAG_VIP (1u << 20)
#define EMU_FLAG_ID (1u << 21)
#define EMU_FLAGS_ARITH (EMU_FLAG_CF | EMU_FLAG_PF | EMU_FLAG_AF | EMU_FLAG_ZF | EMU_FLAG_SF | EMU_FLAG_OF)

/* Segment registers in encoding order (as enum x86_seg of the decoder). */
enum emu_seg { EMU_ES, EMU_CS, EMU_SS, EMU_DS, EMU_FS, EMU_GS, EMU_SEG_COUNT };

/* A segment register with its descriptor cache ("hidden part"). */
struct emu_segment {
    uint64_t base;
    uint32_t limit;    /* byte granular, G already applied */
    uint16_t selector;
    uint16_t attr;     /* descriptor bits 40-47 and 52-55 packed as below */
};
/* emu_segment.attr: the access byte (type 0-3, S 4, DPL 5-6, P 7) and flags (AVL 8, L 9, D/B 10, G 11). */
#define EMU_SEG_TYPE_MASK 0x000f
#define EMU_SEG_S 0x0010
#define EMU_SEG_DPL_SHIFT 5
#define EMU_SEG_DPL_MASK 0x0060
#define EMU_SEG_P 0x0080
#define EMU_SEG_AVL 0x0100
#define EMU_SEG_L 0x0200
#define EMU_SEG_DB 0x0400
#define EMU_SEG_G 0x0800
#define EMU_SEG_UNUSABLE 0x1000 /* a null selector was loaded */

struct emu_dtable {
    uint64_t base;
    uint16_t limit;
};

/* Control register bits used by the emu. */
#define EMU_CR0_PE (1ull << 0)
#define EMU_CR0_MP (1ull << 1)
#define EMU_CR0_EM (1ull << 2)
#define EMU_CR0_TS (1ull << 3)
#define EMU_CR0_ET (1ull << 4)
#define EMU_CR0_NE (1ull << 5)
#define EMU_CR0_WP (1ull << 16)
#define EMU_CR0_AM (1ull << 18)
#define EMU_CR0_NW (1ull << 29)
#define EMU_CR0_CD (1ull << 30)
#define EMU_CR0_PG (1ull << 31)
#define EMU_CR4_VME (1ull << 0)
#define EMU_CR4_PVI (1ull << 1)
#define EMU_CR4_TSD (1ull << 2)
#define EMU_CR4_DE (1ull << 3)
#define EMU_CR4_PSE (1ull << 4)
#define EMU_CR4_PAE (1ull << 5)
#define EMU_CR4_MCE (1ull << 6)
#define EMU_CR4_PGE (1ull << 7)
#define EMU_CR4_PCE (1ull << 8)
#define EMU_CR4_OSFXSR (1ull << 9)
#define EMU_CR4_OSXMMEXCPT (1ull << 10)
#define EMU_CR4_UMIP (1ull << 11)
#define EMU_CR4_FSGSBASE (1ull << 16)
#define EMU_CR4_PCIDE (1ull << 17)
#define EMU_CR4_OSXSAVE (1ull << 18)
#define EMU_CR4_SMEP (1ull << 20)
#define EMU_CR4_SMAP (1ull << 21)
#define EMU_EFER_SCE (1ull << 0)
#define EMU_EFER_LME (1ull << 8)
#define EMU_EFER_LMA (1ull << 10)
#define EMU_EFER_NXE (1ull << 11)

/* Exception vectors. */
enum emu_vector {
    EMU_EXC_DE = 0, EMU_EXC_DB = 1, EMU_EXC_NMI = 2, EMU_EXC_BP = 3, EMU_EXC_OF = 4, EMU_EXC_BR = 5,
    EMU_EXC_UD = 6, EMU_EXC_NM = 7, EMU_EXC_DF = 8, EMU_EXC_TS = 10, EMU_EXC_NP = 11, EMU_EXC_SS = 12,
    EMU_EXC_GP = 13, EMU_EXC_PF = 14, EMU_EXC_MF = 16, EMU_EXC_AC = 17, EMU_EXC_MC = 18, EMU_EXC_XM = 19,
};

/* #PF error code bits. */
#define EMU_PF_P (1u << 0)
#define EMU_PF_W (1u << 1)
#define EMU_PF_U (1u << 2)
#define EMU_PF_RSVD (1u << 3)
#define EMU_PF_I (1u << 4)

/* Lazy flags: the arithmetic flags are computed from the last flag-setting operation when read (flags.h).
 * cc_op = class * 4 + log2(operand bytes) (EMU_CC_OP()); cc_op < 4 means EMU_CC_EAGER: the arithmetic flags
 * are in rflags already. All cc_* values are truncated to the operand size. Per class:
 *   ADD, ADC    cc_dst = result, cc_src = first operand, cc_src2 = second operand (the carry-in is implied by
 *               result - src - src2; CF = MSB of the carry vector (a & b) | ((a | b) & ~r))
 *   SUB, SBB    cc_dst = result, cc_src = minuend, cc_src2 = subtrahend (also CMP, NEG with src = 0, CMPXCHG)
 *   LOGIC       cc_dst = result; CF = OF = AF = 0
 *   INC, DEC    cc_dst = result, cc_src = CF before the instruction (0/1), which they preserve
 *   SHL/SHR/SAR cc_dst = result, cc_src = CF (0/1), cc_src2 = OF (0/1), computed by the shift (SHLD/SHRD
 *               too); AF = 0
 *   MUL, IMUL   cc_dst = low half of the product, cc_src = cc_src2 = CF = OF (0/1); AF = ZF = 0 (as Intel)
 * ZF (except for MUL/IMUL), SF and PF come from cc_dst alone, so "result == 0" tests never need the operands.
 * Everything else (rotates, BT*, BSF/BSR, BCD, POPF...) writes rflags and sets EMU_CC_EAGER. */
enum emu_cc_op {
    EMU_CC_EAGER = 0,
    EMU_CC_ADD = 1, EMU_CC_ADC = 2, EMU_CC_SUB = 3, EMU_CC_SBB = 4, EMU_CC_LOGIC = 5, EMU_CC_INC = 6,
    EMU_CC_DEC = 7, EMU_CC_SHL = 8, EMU_CC_SHR = 9, EMU_CC_SAR = 10, EMU_CC_MUL = 11, EMU_CC_IMUL = 12,
    EMU_CC_CLASSES = 13,
};
#define EMU_CC_OP(cls, size) ((uint32_t)(cls) * 4 + (uint32_t)__builtin_ctz(size))

/* x87 + SSE state, in the FXSAVE image layout (Intel SDM vol. 1, 10.5.1) so FXSAVE/FXRSTOR copy it. */
struct emu_fxsave {
    uint16_t fcw, fsw;
    uint8_t ftw; /* abridged tag: 1 bit per register, 1 = valid */
    uint8_t reserved1;
    uint16_t fop;
    uint64_t fip, fdp;
    uint32_t mxcsr, mxcsr_mask;
    uint8_t st[8][16];   /* ST0-7 / MM0-7: 80-bit values in the low 10 bytes */
    uint8_t xmm[16][16]; /* XMM0-15 */
    uint8_t reserved2[96];
} __attribute__((aligned(16)));
_Static_assert(sizeof(struct emu_fxsave) == 512, "FXSAVE image is 512 bytes");

/* The MSRs the emu keeps (others are handled by the MSR module: fixed values, or #GP). */
struct emu_msrs {
    uint64_t star, lstar, cstar, sfmask;
    uint64_t kernel_gs_base;
    uint64_t sysenter_cs, sysenter_esp, sysenter_eip;
    uint64_t pat;
    uint64_t tsc_offset; /* guest TSC = f(virtual time) + tsc_offset */
    uint64_t tsc_aux;
    uint64_t misc_enable;
    uint64_t apic_base;
    uint64_t kvm_system_time, kvm_wall_clock;
};

struct emu_state {
    uint64_t regs[16];
    uint64_t rip;
    uint64_t rflags; /* arithmetic flags valid only when cc_op == EMU_CC_EAGER */
    uint32_t cc_op;
    uint64_t cc_dst, cc_src, cc_src2;

    struct emu_segment seg[EMU_SEG_COUNT];
    struct emu_segment ldtr, tr;
    struct emu_dtable gdtr, idtr;
    uint64_t cr0, cr2, cr3, cr4, cr8;
    uint64_t efer;
    uint64_t dr[8];
    uint64_t xcr0;
    struct emu_msrs msr;
    struct emu_fxsave fx;

    /* Events. */
    bool halted;            /* HLT: waiting for an interrupt */
    bool wait_for_sipi;     /* an AP after INIT */
    bool nmi_blocked;       /* between an NMI and the next IRET */
    bool nmi_pending;
    uint64_t irq_shadow_rip; /* STI / MOV SS shadow: no interrupt before the instruction after this RIP; 0 = none */
};

/* The current privilege level: CS.DPL in protected mode (CS.RPL equals it after any legal load), 0 in real mode,
 * 3 in virtual-8086 mode. */
static inline unsigned emu_cpl(const struct emu_state *s)
{
    if (!(s->cr0 & EMU_CR0_PE))
        return 0;
    if (s->rflags & EMU_FLAG_VM)
        return 3;
    return (s->seg[EMU_CS].attr & EMU_SEG_DPL_MASK) >> EMU_SEG_DPL_SHIFT;
}

static inline bool emu_long_mode(const struct emu_state *s)
{
    return (s->efer & EMU_EFER_LMA) != 0;
}

/* 64-bit code: long mode with CS.L set. */
static inline bool emu_code64(const struct emu_state *s)
{
    return emu_long_mode(s) && (s->seg[EMU_CS].attr & EMU_SEG_L);
}

#endif
