/* One emu vCPU: architectural state, its memory context, and the services the instruction interpreter
 * (exec.c) gets from the emu backend (emu.c): interrupts, CPUID, MSRs, port I/O, time. The split: exec.c
 * knows instructions, emu.c knows the machine. */
#ifndef DESKVM_EMU_CPU_H
#define DESKVM_EMU_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "emu/mmu.h"
#include "emu/state.h"

struct machine;
struct vcpu;

#define EMU_DEBUG_MAX_BREAKPOINTS 32

struct emu_cpu {
    struct emu_state s;
    struct emu_mmu mmu;
    struct machine *m;
    struct vcpu *vcpu; /* the generic vCPU this runs for (NULL in unit tests) */
    unsigned index;    /* vCPU number = APIC ID */
    /* Set from any thread (kick, new interrupt); the interpreter polls it between instructions and returns.
     */
    int exit_request;   /* atomic */
    int interrupt_hint; /* atomic: an interrupt or INIT/SIPI/NMI may be pending, check the controllers */
    int tlb_flush_request; /* atomic: the memory map changed (a device slot moved); flush before running on */
    uint64_t icount;    /* instructions retired */
    /* Decoded blocks trust the MMU's code-page generations instead of comparing their bytes on entry. Only
     * with a single vCPU: another vCPU's TLB could still hold a fast write entry for a page marked here. */
    bool code_tracking;
    uint64_t last_tsc; /* the last TSC value read, so reads strictly increase */
    /* The debugger (set_guest_debug; changed only while the vCPU is parked). While debug_active the loop runs
     * one instruction at a time and checks before each (exec_loop.c); breakpoints are RIP compares. */
    bool debug_active;
    bool debug_step;    /* single step: stop once one instruction (or event delivery) has run */
    bool debug_stepped; /* an instruction ran in single-step mode */
    bool debug_skip;    /* the breakpoint at debug_skip_rip does not fire before that instruction ran */
    uint64_t debug_skip_rip;
    unsigned debug_nbp;
    uint64_t debug_bp[EMU_DEBUG_MAX_BREAKPOINTS];
};

/* Why emu_exec returned. */
enum emu_exec_status {
    EMU_EXEC_BUDGET,       /* ran the number of instructions it was given */
    EMU_EXEC_EXIT_REQUEST, /* exit_request was set */
    EMU_EXEC_HALT,         /* HLT (or MWAIT): nothing to do until an interrupt */
    EMU_EXEC_TRIPLE_FAULT, /* a fault while delivering #DF: the PC resets */
    EMU_EXEC_ERROR,        /* an instruction the emu cannot execute, logged */
    EMU_EXEC_DEBUG,        /* a debugger breakpoint or single step (debug_active) */
};

/* ---- The interpreter (exec.c) ---- */

/* --trace-cpu: 0 off; 1 logs exceptions and external interrupts as they are delivered; 2 also logs every
 * instruction executed (address and operation). For debugging guests; level 2 is very slow. */
extern int emu_trace_level;

/* Runs up to max_insns instructions from the current state: fetch through the MMU, decode, execute;
 * exceptions are delivered to the guest through its IDT; between instructions external interrupts (when
 * interrupt_hint is set and RFLAGS.IF allows, outside an interrupt shadow) and exit requests are handled. */
enum emu_exec_status emu_exec(struct emu_cpu *cpu, uint64_t max_insns);

/* ---- Services of the backend (emu.c), called by the interpreter ---- */

/* The highest-priority deliverable external interrupt: its vector (acknowledged at the controllers), or -1.
 * Only called when RFLAGS.IF=1 and no interrupt shadow is active. */
int emu_cpu_acknowledge_interrupt(struct emu_cpu *cpu);
/* Whether an NMI is pending (and takes it). */
bool emu_cpu_take_nmi(struct emu_cpu *cpu);
/* INIT/SIPI handling for APs: returns true when the CPU state was changed (INIT → wait for SIPI, SIPI → start
 * at vector << 12). */
bool emu_cpu_handle_init_sipi(struct emu_cpu *cpu);

/* CPUID for leaf/subleaf into out[0..3] = EAX, EBX, ECX, EDX: exactly the features the emu implements. */
void emu_cpuid(struct emu_cpu *cpu, uint32_t leaf, uint32_t subleaf, uint32_t out[4]);
/* RDMSR/WRMSR: false means #GP(0). */
bool emu_msr_read(struct emu_cpu *cpu, uint32_t msr, uint64_t *value);
bool emu_msr_write(struct emu_cpu *cpu, uint32_t msr, uint64_t value);
/* The guest TSC now (from the machine's virtual clock, strictly increasing across reads). */
uint64_t emu_read_tsc(struct emu_cpu *cpu);

/* Port I/O: size 1, 2 or 4; takes the machine lock. */
uint32_t emu_port_in(struct emu_cpu *cpu, uint16_t port, unsigned size);
void emu_port_out(struct emu_cpu *cpu, uint16_t port, unsigned size, uint32_t value);

/* The local APIC's EOI/TPR fast paths go through MMIO like everything else; CR8 maps to the TPR. */
uint64_t emu_cpu_read_cr8(struct emu_cpu *cpu);
void emu_cpu_write_cr8(struct emu_cpu *cpu, uint64_t value);

#endif
