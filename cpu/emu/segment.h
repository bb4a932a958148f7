/* emu segmentation: descriptor-table lookups and the checked loads of segment registers, CS (far
 * JMP/CALL/RET), LDTR and TR, in real, virtual-8086, protected and long mode (Intel SDM vol. 3, chapters 3
 * and 5). */
#ifndef DESKVM_EMU_SEGMENT_H
#define DESKVM_EMU_SEGMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "emu/mmu.h"
#include "emu/state.h"

/* Conventions of this module and of interrupt.h:
 * - Functions return 0, or EMU_FAULT with *f holding the exception to raise (vector, error_code, and cr2 for
 * a #PF). On a fault the registers are unchanged, but memory may already be written (accessed bits, stack
 * bytes below the stack pointer), as on real hardware.
 * - The arithmetic flags in rflags must be materialized (cc_op == EMU_CC_EAGER) before any function that
 * reads or writes RFLAGS as a whole (event delivery, IRET, SYSCALL/SYSRET, SYSENTER); the interpreter does
 * that.
 * - All memory goes through struct emu_sys_mem on linear addresses; segmentation (bases, limits) is done
 * here.
 * - FS/GS bases in 64-bit mode: loading a selector sets the base from the descriptor (32 bits,
 * zero-extended); WRMSR FS_BASE / GS_BASE write s->seg[EMU_FS].base / s->seg[EMU_GS].base directly (and RDMSR
 * reads them), KERNEL_GS_BASE is s->msr.kernel_gs_base, and SWAPGS exchanges s->seg[EMU_GS].base with it.
 * - A null selector loaded into DS, ES, FS or GS clears the base and marks the register EMU_SEG_UNUSABLE
 * (Intel behaviour; Linux probes which one the CPU has). */
#define EMU_FAULT (-1)

/* The memory interface: the interpreter wires it to emu_mem_read / emu_mem_write (mmu.h) with opaque = the
 * vCPU's struct emu_mmu; tests use a byte array. Same contract as those: size 1..16, may cross pages, access
 * holds modifiers (EMU_ACCESS_IMPLICIT for descriptor tables, the TSS and the stack of an interrupt delivery
 * to a privileged level), returns true or false with *f filled in. Outside long mode the callers here pass
 * linear addresses already truncated to 32 bits. */
struct emu_sys_mem {
    bool (*read)(void *opaque, uint64_t lin, unsigned size, unsigned access, void *out, struct emu_fault *f);
    bool (*write)(void *opaque, uint64_t lin, unsigned size, unsigned access, const void *in,
                  struct emu_fault *f);
    void *opaque;
};

/* Selector fields. */
#define EMU_SEL_RPL 3u
#define EMU_SEL_TI 4u
#define EMU_SEL_INDEX_MASK 0xfff8u

/* System descriptor types (S = 0). */
#define EMU_DESC_TSS16_AVAIL 0x1
#define EMU_DESC_LDT 0x2
#define EMU_DESC_TSS16_BUSY 0x3
#define EMU_DESC_CALL_GATE16 0x4
#define EMU_DESC_TASK_GATE 0x5
#define EMU_DESC_INT_GATE16 0x6
#define EMU_DESC_TRAP_GATE16 0x7
#define EMU_DESC_TSS_AVAIL 0x9 /* 32-bit, or 64-bit in long mode */
#define EMU_DESC_TSS_BUSY 0xb
#define EMU_DESC_CALL_GATE 0xc
#define EMU_DESC_INT_GATE 0xe
#define EMU_DESC_TRAP_GATE 0xf
/* Code/data type bits (S = 1). */
#define EMU_DESC_ACCESSED 0x1
#define EMU_DESC_RW 0x2 /* data: writable; code: readable */
#define EMU_DESC_DC 0x4 /* data: expand-down; code: conforming */
#define EMU_DESC_CODE 0x8

/* A descriptor as read from a table, and where it was. */
struct emu_desc {
    uint64_t lo, hi; /* hi: the second half of 16-byte system descriptors in long mode, else 0 */
    uint64_t addr;   /* linear address of the descriptor */
};

static inline unsigned emu_desc_attr(const struct emu_desc *d)
{
    return (unsigned)(((d->lo >> 40) & 0xff) | ((d->lo >> 52) & 0xf) << 8);
}
static inline unsigned emu_desc_type(const struct emu_desc *d)
{
    return (unsigned)(d->lo >> 40) & 0xf;
}
static inline unsigned emu_desc_dpl(const struct emu_desc *d)
{
    return (unsigned)(d->lo >> 45) & 3;
}
/* S = 1: a code or data segment. */
static inline bool emu_desc_is_seg(const struct emu_desc *d)
{
    return (d->lo >> 44) & 1;
}
static inline bool emu_desc_present(const struct emu_desc *d)
{
    return (d->lo >> 47) & 1;
}

static inline bool emu_canonical(uint64_t v)
{
    return (uint64_t)((int64_t)(v << 16) >> 16) == v;
}

/* Linear addresses are 32 bits outside long mode. */
static inline uint64_t emu_lin(const struct emu_state *s, uint64_t lin)
{
    return emu_long_mode(s) ? lin : (uint32_t)lin;
}

/* Fills *f (error code included) and returns EMU_FAULT. */
int emu_fault_raise(struct emu_fault *f, unsigned vector, uint32_t error_code);

/* Reads the descriptor of sel (GDT or LDT by TI; 16 bytes when wide). Limit violations and a TI=1 selector
 * with an unusable LDTR raise `vector`(sel & 0xfffc | ext). The null-selector check is the caller's. */
int emu_desc_fetch(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, bool wide,
                   unsigned vector, uint32_t ext, struct emu_desc *d, struct emu_fault *f);
/* Sets the accessed bit in memory if it is clear (code and data segments). */
int emu_desc_set_accessed(const struct emu_sys_mem *mem, struct emu_desc *d, struct emu_fault *f);
/* The register cache of a code/data descriptor: base, limit scaled by G, attr as state.h packs it. */
void emu_desc_to_cache(const struct emu_desc *d, uint16_t sel, struct emu_segment *out);

/* Makes cs hold CPL cpl: state.h derives the CPL from CS.DPL, so for conforming code segments (whose
 * descriptor DPL may be below the CPL) the cached DPL and the selector's RPL are set to the CPL. Used by
 * every CS load. */
void emu_cs_set_cpl(struct emu_segment *cs, unsigned cpl);

/* A selector load in real or virtual-8086 mode into *r (see emu_load_segment). */
void emu_load_real(const struct emu_state *s, struct emu_segment *r, uint16_t sel);

/* MOV/POP to a segment register, LDS..LGS, and the SS/data loads of task-free privilege changes. In real mode
 * only selector and base (sel << 4) change, so limits set in protected mode persist ("unreal mode"); in
 * virtual-8086 mode the register becomes a 64 KiB read/write data (CS: code) segment at DPL 3. In protected
 * mode the SDM checks apply (null selector, table limit, type, privilege, present: #GP/#NP/#SS with the
 * selector), the accessed bit is set in memory and the cache filled. seg == EMU_CS in protected mode loads CS
 * with far-JMP rules (the offset is not touched). */
int emu_load_segment(struct emu_state *s, const struct emu_sys_mem *mem, enum emu_seg seg, uint16_t sel,
                     struct emu_fault *f);

/* The SS checks of a privilege change to new_cpl (RETF, IRET to an outer level; TSS stacks use #TS instead):
 * fills *out without changing the state. A null SS is allowed in long mode when to64 and new_cpl < 3. */
int emu_check_ss(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, unsigned new_cpl,
                 bool to64, struct emu_segment *out, struct emu_fault *f);

/* The CS checks of a far RET or IRET to sel (RPL = the new CPL, which may only be outer): code segment,
 * conforming DPL ≤ RPL or non-conforming DPL == RPL, present, and in long mode not L=1 with D=1. Fills *out
 * (accessed bit set in memory) without changing the state. */
int emu_check_return_cs(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel,
                        struct emu_segment *out, struct emu_fault *f);

/* After a return to an outer privilege level: DS, ES, FS and GS holding a data or non-conforming code segment
 * with DPL < the new CPL become null (selector 0, unusable; the base is kept, which matters only for FS/GS in
 * 64-bit mode). */
void emu_null_outer_segments(struct emu_state *s);

/* Far JMP / CALL / RET (opsize = operand size 2, 4 or 8). Protected-mode targets must be code segments (same
 * privilege; conforming code keeps the CPL); call gates, task gates and TSS selectors raise #GP(sel) and are
 * logged: task switches and call gates are not implemented. The target offset is checked against the CS limit
 * (#GP(0)), or for canonical form when the target is 64-bit code. far_call pushes CS and ret_rip (the address
 * of the next instruction) on the current stack. far_ret pops IP and CS, releases pop_bytes (RETF imm16) and
 * returns to the same or an outer privilege level (then popping SS:SP, releasing pop_bytes again on the outer
 * stack, and nulling data segments the new level may not use). */
int emu_far_jmp(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, uint64_t offset,
                unsigned opsize, struct emu_fault *f);
int emu_far_call(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, uint64_t offset,
                 unsigned opsize, uint64_t ret_rip, struct emu_fault *f);
int emu_far_ret(struct emu_state *s, const struct emu_sys_mem *mem, unsigned opsize, uint16_t pop_bytes,
                struct emu_fault *f);

/* LLDT and LTR (protected mode only; #UD in real and virtual-8086 mode, #GP(0) at CPL > 0). System
 * descriptors are 16 bytes in long mode. LTR requires an available TSS (16-bit ones not in long mode),
 * rejects a null selector with #GP(0), and marks the descriptor busy in memory. LLDT with a null selector
 * makes LDTR unusable. */
int emu_load_ldtr(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, struct emu_fault *f);
int emu_load_tr(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, struct emu_fault *f);

/* ---- Stack access (shared with interrupt.c) ----
 * A working copy of a stack pointer: pushes and pops change only sp, and the caller commits it. Outside
 * 64-bit mode, offsets wrap at the stack width (SS.B) and are checked against the SS limit (expand-up and
 * expand-down), raising #SS(ss_error); in 64-bit mode the address must be canonical (#SS(ss_error)). */
struct emu_stack {
    uint64_t base;
    uint64_t sp;
    uint64_t mask; /* 0xffff, 0xffffffff or ~0 */
    uint32_t limit;
    uint16_t attr;
    bool flat64;     /* 64-bit mode: no base, no limit */
    bool lin32;      /* linear addresses wrap at 4 GiB (not long mode) */
    unsigned access; /* EMU_ACCESS_* modifiers */
    uint32_t ss_error;
};

/* A stack on segment ss with pointer sp; flat64 for 64-bit mode. */
void emu_stack_init(struct emu_stack *st, const struct emu_state *s, const struct emu_segment *ss,
                    uint64_t sp, bool flat64);
int emu_stack_push(struct emu_stack *st, const struct emu_sys_mem *mem, uint64_t v, unsigned size,
                   struct emu_fault *f);
int emu_stack_pop(struct emu_stack *st, const struct emu_sys_mem *mem, uint64_t *v, unsigned size,
                  struct emu_fault *f);
/* Writes sp back into RSP, keeping the bits above the stack width (16-bit stacks keep RSP[63:16]). */
void emu_stack_commit(struct emu_state *s, const struct emu_stack *st);

#endif
