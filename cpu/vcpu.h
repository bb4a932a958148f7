/* The vCPU interface: what the machine needs from a CPU backend (KVM today, the software CPU next) and the common
 * vCPU thread that runs one guest CPU, dispatches its port/MMIO accesses to the machine and obeys pause/resume. */
#ifndef DESKVM_VCPU_H
#define DESKVM_VCPU_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

struct machine;
struct accel;
struct vcpu;

struct vcpu_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
};

struct vcpu_segment {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint8_t type; /* descriptor type field (4 bits) */
    uint8_t present, dpl, db, s, l, g, avl;
    uint8_t unusable;
};

struct vcpu_dtable {
    uint64_t base;
    uint16_t limit;
};

struct vcpu_sregs {
    struct vcpu_segment cs, ds, es, fs, gs, ss, tr, ldt;
    struct vcpu_dtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
};

/* Why vcpu_run returned to the common loop. Port and MMIO accesses never come back here: backends hand them to
 * vcpu_dispatch_io() and carry on. */
enum vcpu_exit_reason {
    VCPU_EXIT_KICKED,        /* asked to stop running (pause, quit, reset) */
    VCPU_EXIT_HALT,          /* HLT with nothing to do (backends without an in-kernel irqchip) */
    VCPU_EXIT_TRIPLE_FAULT,  /* the CPU shut down: PCs reset */
    VCPU_EXIT_GUEST_RESET,   /* a reset the CPU backend detected (KVM system event) */
    VCPU_EXIT_GUEST_POWEROFF,
    VCPU_EXIT_ERROR,         /* the backend cannot continue; the message is logged */
    VCPU_EXIT_DEBUG,         /* a debugger breakpoint or single step stopped the vCPU (see vcpu_debug) */
};

/* Debugger control of one vCPU (the gdbstub). Breakpoints compare RIP before an instruction runs: they are
 * not written into guest memory. */
#define VCPU_DEBUG_MAX_BREAKPOINTS 32
struct vcpu_debug {
    bool single_step;  /* stop after one instruction */
    /* Resuming from a breakpoint stop: the instruction at the current RIP runs once without its breakpoint
     * firing (as x86's RFLAGS.RF does). */
    bool skip_current;
    unsigned nbreakpoints;
    uint64_t breakpoints[VCPU_DEBUG_MAX_BREAKPOINTS];
};

struct accel_ops {
    const char *name;
    /* Whether this backend can run a guest on this host; if not, *why says so. */
    bool (*available)(char **why);
    /* Creates the backend's VM for the machine (maps guest memory, irqchip, ...). */
    int (*init)(struct accel *a, char **error);
    void (*destroy)(struct accel *a);
    int (*vcpu_init)(struct vcpu *v, char **error);
    void (*vcpu_destroy)(struct vcpu *v);
    /* Runs guest code until an exit the common loop must see. */
    enum vcpu_exit_reason (*vcpu_run)(struct vcpu *v);
    /* From any thread: make vcpu_run return VCPU_EXIT_KICKED soon. */
    void (*vcpu_kick)(struct vcpu *v);
    /* Architectural power-on/INIT state: the BSP at the reset vector, APs waiting for SIPI. */
    int (*vcpu_reset)(struct vcpu *v);
    int (*get_regs)(struct vcpu *v, struct vcpu_regs *r);
    int (*set_regs)(struct vcpu *v, const struct vcpu_regs *r);
    int (*get_sregs)(struct vcpu *v, struct vcpu_sregs *s);
    int (*set_sregs)(struct vcpu *v, const struct vcpu_sregs *s);
    /* Debugging, while the vCPU is paused: NULL if the backend cannot. More than max_breakpoints is refused
     * with -ENOSPC, a host that cannot debug guests gives -EOPNOTSUPP. No breakpoints and no single step turn
     * debugging off. A breakpoint or finished step stops the vCPU with VCPU_EXIT_DEBUG. */
    int (*set_guest_debug)(struct vcpu *v, const struct vcpu_debug *d);
    unsigned max_breakpoints;
};

struct vcpu {
    struct accel *accel;
    unsigned index;
    void *priv; /* the backend's per-vCPU state */
    GThread *thread;
    /* run control, protected by accel->lock */
    bool paused;    /* the thread is parked */
    bool exited;    /* the thread has returned */
    bool hold;       /* stays parked even while the VM runs (a debugger resumes only some vCPUs) */
    bool debug_exit; /* stopped with VCPU_EXIT_DEBUG; the debugger clears it */
    uint64_t exits; /* statistics */
};

struct accel {
    const struct accel_ops *ops;
    struct machine *machine;
    void *priv;
    unsigned ncpus;
    struct vcpu *vcpus;

    GMutex lock;
    GCond cond;
    bool run_requested; /* vCPUs may run */
    bool quit;
    bool started;
    void (*on_exit)(void *opaque, struct vcpu *v, enum vcpu_exit_reason reason);
    void *on_exit_opaque;
};

/* Backends. */
extern const struct accel_ops kvm_accel_ops;
extern const struct accel_ops emu_accel_ops; /* deskvm's software CPU (cpu/emu) */

/* Creates the backend and its vCPUs (not yet running). */
int accel_init(struct accel *a, const struct accel_ops *ops, struct machine *m, unsigned ncpus, char **error);
void accel_destroy(struct accel *a);
/* Guest-driven events (triple fault, reset, poweroff, error) are reported here, from the vCPU thread, with the
 * vCPU already paused. */
void accel_set_exit_handler(struct accel *a, void (*fn)(void *opaque, struct vcpu *v, enum vcpu_exit_reason r),
                            void *opaque);
/* Starts the vCPU threads (first time) or lets them run again. */
void accel_resume(struct accel *a);
/* Stops every vCPU and waits until all are parked (outside guest code, not holding the machine lock). */
void accel_pause(struct accel *a);
/* Asks every vCPU to stop soon and returns at once (safe from a vCPU thread, e.g. in a device handler that saw the
 * guest power off or reset: no more guest instructions run after the current exit). */
void accel_stop_async(struct accel *a);
/* Keeps one vCPU parked (hold) or lets it run with the others; for the debugger. */
void accel_set_vcpu_hold(struct accel *a, struct vcpu *v, bool hold);
/* Takes (and clears) v's debug_exit flag. */
bool accel_take_debug_exit(struct accel *a, struct vcpu *v);
/* Puts every vCPU in its reset state; call while paused. */
int accel_reset(struct accel *a);

/* For backends: hands one port (is_pio) or MMIO access to the machine under the machine lock. For reads, data is
 * filled in (little-endian, size bytes). */
void vcpu_dispatch_io(struct vcpu *v, bool is_pio, uint64_t addr, unsigned size, bool is_write, uint8_t *data);

#endif
