/* emu exception and interrupt delivery (real-mode IVT, protected-mode and long-mode IDT gates, #DF and triple
 * fault) and IRET (Intel SDM vol. 3, chapters 6 and 7). Conventions as in segment.h. */
#ifndef DESKVM_EMU_INTERRUPT_H
#define DESKVM_EMU_INTERRUPT_H

#include <stdbool.h>
#include <stdint.h>

#include "emu/segment.h"
#include "emu/state.h"

enum emu_event_kind {
    EMU_EVENT_EXCEPTION, /* raised by the CPU: fault, trap or abort; the vector decides the error code */
    EMU_EVENT_EXTINT,    /* external interrupt (INTR / LAPIC) */
    EMU_EVENT_NMI,       /* vector 2; sets nmi_blocked until the next IRET */
    EMU_EVENT_SOFT_INT,  /* INT n (CD ib): gate DPL checked, IOPL-sensitive in virtual-8086 mode */
    EMU_EVENT_INT3,      /* CC: gate DPL checked */
    EMU_EVENT_INTO,      /* CE with OF = 1: gate DPL checked */
    EMU_EVENT_INT1,      /* F1 (ICEBP): #DB without the gate DPL check */
};

/* emu_deliver_event results. */
#define EMU_EVENT_DELIVERED 0
/* Shutdown: the caller resets the machine. Registers are as before the delivery (CR2 may have changed). */
#define EMU_EVENT_TRIPLE_FAULT 1

/* Exceptions that push an error code in protected and long mode: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP. */
bool emu_vector_has_error(unsigned vector);

/* Delivers an event through the IVT (real mode) or the IDT. s->rip is the return address to push: the
 * faulting instruction for faults, the next instruction for traps, interrupts and INT n/INT3/INTO/INT1. For
 * the software kinds, insn_len is the instruction's length: a fault during their delivery (e.g. the
 * #GP(n*8+2) of a gate DPL violation) is reported at the INT instruction itself (s->rip - insn_len).
 * error_code is pushed only for EMU_EVENT_EXCEPTION with a vector of emu_vector_has_error, outside real mode.
 * For #PF the caller has written CR2 (or uses emu_deliver_fault). Arithmetic flags must be materialized. A
 * fault during delivery becomes the next event per SDM table 6-5 (benign/contributory/page fault): delivered
 * serially, or converted to #DF(0); a fault while delivering #DF is a triple fault. *last (may be NULL)
 * receives the last fault met during delivery. Not implemented: task gates (logged, #GP(vector*8+2+EXT)),
 * hardware task switches, CR4.VME/PVI redirection, RF for interrupts taken between REP iterations. Also
 * clears halted and the interrupt shadow. */
int emu_deliver_event(struct emu_state *s, const struct emu_sys_mem *mem, unsigned vector,
                      enum emu_event_kind kind, uint32_t error_code, unsigned insn_len,
                      struct emu_fault *last);

/* Delivers the exception described by a fault (CR2 is written first for #PF); s->rip is the faulting
 * instruction. */
int emu_deliver_fault(struct emu_state *s, const struct emu_sys_mem *mem, const struct emu_fault *fault,
                      struct emu_fault *last);

/* IRET / IRETD / IRETQ (opsize 2, 4, 8): real mode, virtual-8086 mode (IOPL 3 only; #GP(0) otherwise, no
 * VME), protected mode to the same or an outer level (popping SS:ESP, nulling data segments the new CPL may
 * not use), return to virtual-8086 mode from CPL 0, and long mode (SS:RSP always popped in 64-bit mode; NT=1
 * → #GP(0)). IF changes only if CPL ≤ IOPL, IOPL/VIF/VIP only at CPL 0. NT=1 outside long mode (task return)
 * is not implemented: logged, #GP(0). Unblocks NMIs. */
int emu_iret(struct emu_state *s, const struct emu_sys_mem *mem, unsigned opsize, struct emu_fault *f);

#endif
