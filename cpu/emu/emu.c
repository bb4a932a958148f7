/* The emu backend: deskvm's software CPU behind the vCPU interface. One host thread per vCPU runs the
 * interpreter (exec.c) in slices; this file connects it to the machine: interrupts from the userspace
 * LAPIC/PIC, HLT sleeping until an interrupt, INIT/SIPI, port I/O, CR8, reset state and register access. */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "emu/cpu.h"
#include "emu/flags.h"
#include "irqchip.h"
#include "lapic.h"
#include "log.h"
#include "machine.h"
#include "vcpu.h"

/* Instructions per interpreter slice: long enough to amortise the loop, short enough that pause requests and
 * interrupts are seen within microseconds. */
#define EMU_SLICE 20000
/* A halted vCPU rechecks for events at least this often even without a kick (belt and braces). */
#define EMU_HALT_POLL_US 10000

struct emu_vcpu {
    struct emu_cpu cpu;
    GMutex lock;
    GCond wake;
};

static struct emu_vcpu *to_ev(struct vcpu *v)
{
    return v->priv;
}

/* ---- services for the interpreter ---- */

int emu_cpu_acknowledge_interrupt(struct emu_cpu *cpu)
{
    machine_lock(cpu->m);
    int vector = -1;
    if (irqchip_cpu_has_interrupt(cpu->m, cpu->index))
        vector = irqchip_cpu_acknowledge(cpu->m, cpu->index);
    machine_unlock(cpu->m);
    return vector;
}

bool emu_cpu_take_nmi(struct emu_cpu *cpu)
{
    struct lapic *l = cpu->m->lapic[cpu->index];
    if (!l)
        return false;
    machine_lock(cpu->m);
    bool nmi = lapic_take_nmi(l);
    machine_unlock(cpu->m);
    return nmi;
}

static void emu_state_reset(struct emu_state *s, bool bsp);

bool emu_cpu_handle_init_sipi(struct emu_cpu *cpu)
{
    struct lapic *l = cpu->m->lapic[cpu->index];
    if (!l)
        return false;
    bool changed = false;
    machine_lock(cpu->m);
    if (lapic_take_init(l)) {
        /* INIT: the state of a reset, except that the CPU waits for a STARTUP IPI (the BSP too, per the SDM).
         */
        uint64_t apic_base = cpu->s.msr.apic_base;
        emu_state_reset(&cpu->s, false);
        cpu->s.msr.apic_base = apic_base;
        emu_tlb_flush_all(&cpu->mmu);
        changed = true;
    }
    uint8_t vector;
    if (cpu->s.wait_for_sipi && lapic_take_sipi(l, &vector)) {
        cpu->s.wait_for_sipi = false;
        cpu->s.halted = false;
        cpu->s.seg[EMU_CS].selector = (uint16_t)(vector << 8);
        cpu->s.seg[EMU_CS].base = (uint64_t)vector << 12;
        cpu->s.rip = 0;
        changed = true;
    }
    machine_unlock(cpu->m);
    return changed;
}

uint32_t emu_port_in(struct emu_cpu *cpu, uint16_t port, unsigned size)
{
    uint64_t v;
    machine_lock(cpu->m);
    io_bus_read(&cpu->m->pio, port, size, &v);
    machine_unlock(cpu->m);
    return (uint32_t)v;
}

void emu_port_out(struct emu_cpu *cpu, uint16_t port, unsigned size, uint32_t value)
{
    machine_lock(cpu->m);
    io_bus_write(&cpu->m->pio, port, size, value);
    machine_unlock(cpu->m);
}

/* CR8 is the TPR's priority class (TPR bits 7:4). */
uint64_t emu_cpu_read_cr8(struct emu_cpu *cpu)
{
    struct lapic *l = cpu->m->lapic[cpu->index];
    if (!l)
        return 0;
    machine_lock(cpu->m);
    uint32_t tpr = lapic_read_reg(l, 0x80);
    machine_unlock(cpu->m);
    return (tpr >> 4) & 0xF;
}

void emu_cpu_write_cr8(struct emu_cpu *cpu, uint64_t value)
{
    struct lapic *l = cpu->m->lapic[cpu->index];
    if (!l)
        return;
    machine_lock(cpu->m);
    lapic_write_reg(l, 0x80, (uint32_t)(value & 0xF) << 4);
    machine_unlock(cpu->m);
}

/* ---- reset state (Intel SDM vol. 3, table 9-1) ---- */

static void seg_reset(struct emu_segment *seg, uint16_t sel, uint64_t base, uint16_t type)
{
    seg->selector = sel;
    seg->base = base;
    seg->limit = 0xFFFF;
    seg->attr = type | EMU_SEG_S | EMU_SEG_P;
}

static void emu_state_reset(struct emu_state *s, bool bsp)
{
    memset(s, 0, sizeof(*s));
    s->rip = 0xFFF0;
    s->rflags = EMU_FLAG_FIXED1;
    s->cc_op = EMU_CC_EAGER;
    seg_reset(&s->seg[EMU_CS], 0xF000, 0xFFFF0000, 0xB);
    for (int i = 0; i < EMU_SEG_COUNT; i++)
        if (i != EMU_CS)
            seg_reset(&s->seg[i], 0, 0, 0x3);
    s->ldtr = (struct emu_segment){.limit = 0xFFFF, .attr = 0x2 | EMU_SEG_P};
    s->tr = (struct emu_segment){.limit = 0xFFFF, .attr = 0xB | EMU_SEG_P};
    s->gdtr.limit = 0xFFFF;
    s->idtr.limit = 0xFFFF;
    s->cr0 = EMU_CR0_ET | EMU_CR0_CD | EMU_CR0_NW;
    s->regs[EMU_RDX] = 0x00060FB1; /* the CPU's signature, as CPUID leaf 1 EAX */
    s->dr[6] = 0xFFFF0FF0;
    s->dr[7] = 0x400;
    s->xcr0 = 1;
    s->msr.pat = 0x0007040600070406ULL;
    s->fx.fcw = 0x037F;
    s->fx.mxcsr = 0x1F80;
    s->fx.mxcsr_mask = 0xFFFF;
    s->msr.apic_base = 0xFEE00000 | (1u << 11) | (bsp ? 1u << 8 : 0);
    s->wait_for_sipi = !bsp;
}

/* ---- the accelerator ---- */

/* A device slot (framebuffer BAR) moved or changed its dirty logging: every vCPU drops its TLB before running
 * on. Stale entries until then still point at the slot's memory, which lives as long as the machine. */
static void emu_slot_changed(void *opaque, unsigned index)
{
    struct accel *a = opaque;
    for (unsigned i = 0; a->vcpus && i < a->ncpus; i++) {
        struct vcpu *v = &a->vcpus[i];
        struct emu_vcpu *ev = v->priv;
        if (!ev)
            continue;
        __atomic_store_n(&ev->cpu.tlb_flush_request, 1, __ATOMIC_RELEASE);
        a->ops->vcpu_kick(v);
    }
}

static const struct guest_memory_listener emu_memory_listener = {emu_slot_changed, NULL};

static bool emu_available(char **why)
{
    (void)why;
    return true;
}

static int emu_init(struct accel *a, char **error)
{
    if (!a->machine->lapic[0]) {
        *error = g_strdup("the emu CPU needs the userspace interrupt controllers in the machine");
        return -EINVAL;
    }
    machine_lock(a->machine);
    a->machine->mem.listener = &emu_memory_listener;
    a->machine->mem.listener_opaque = a;
    machine_unlock(a->machine);
    return 0;
}

static void emu_destroy(struct accel *a)
{
    struct machine *m = a->machine;
    machine_lock(m);
    if (m->mem.listener_opaque == a) {
        m->mem.listener = NULL;
        m->mem.listener_opaque = NULL;
    }
    machine_unlock(m);
}

static void emu_lapic_kick(void *opaque)
{
    struct emu_vcpu *ev = opaque;
    __atomic_store_n(&ev->cpu.interrupt_hint, 1, __ATOMIC_RELEASE);
    g_mutex_lock(&ev->lock);
    g_cond_signal(&ev->wake);
    g_mutex_unlock(&ev->lock);
}

static void emu_dma_observer(void *opaque, uint64_t gpa, uint64_t len)
{
    emu_mmu_notify_phys_write(opaque, gpa, len);
}

static int emu_vcpu_init(struct vcpu *v, char **error)
{
    struct machine *m = v->accel->machine;
    /* 64-byte aligned: the soft TLB entries are one cache line each, and the lazy-flag fields are stored
     * 16 bytes at a time (a split store on every ALU instruction costs ~40% of the speed; measured). */
    struct emu_vcpu *ev = g_aligned_alloc0(1, sizeof(struct emu_vcpu), 64);
    g_mutex_init(&ev->lock);
    g_cond_init(&ev->wake);
    ev->cpu.m = m;
    ev->cpu.vcpu = v;
    ev->cpu.index = v->index;
    int r = emu_mmu_init(&ev->cpu.mmu, &ev->cpu.s, m);
    if (r < 0) {
        *error = g_strdup_printf("emu: vCPU %u memory context: %s", v->index, g_strerror(-r));
        g_aligned_free(ev);
        return r;
    }
    emu_state_reset(&ev->cpu.s, v->index == 0);
    v->priv = ev;
    if (v->accel->ncpus == 1) {
        /* Device writes to guest RAM reach the MMU's code-page tracking through the memory observer. */
        ev->cpu.code_tracking = true;
        m->mem.write_observer = emu_dma_observer;
        m->mem.write_observer_opaque = &ev->cpu.mmu;
    }
    machine_lock(m);
    lapic_set_kick(m->lapic[v->index], emu_lapic_kick, ev);
    machine_unlock(m);
    return 0;
}

static void emu_vcpu_destroy(struct vcpu *v)
{
    struct emu_vcpu *ev = to_ev(v);
    if (!ev)
        return;
    struct machine *m = v->accel->machine;
    machine_lock(m);
    if (m->lapic[v->index])
        lapic_set_kick(m->lapic[v->index], NULL, NULL);
    machine_unlock(m);
    if (m->mem.write_observer_opaque == &ev->cpu.mmu) {
        m->mem.write_observer = NULL;
        m->mem.write_observer_opaque = NULL;
    }
    emu_mmu_destroy(&ev->cpu.mmu);
    g_cond_clear(&ev->wake);
    g_mutex_clear(&ev->lock);
    g_aligned_free(ev);
    v->priv = NULL;
}

static int emu_vcpu_reset(struct vcpu *v)
{
    struct emu_vcpu *ev = to_ev(v);
    emu_state_reset(&ev->cpu.s, v->index == 0);
    ev->cpu.last_tsc = 0;
    emu_tlb_flush_all(&ev->cpu.mmu);
    return 0;
}

static void emu_vcpu_kick(struct vcpu *v)
{
    struct emu_vcpu *ev = to_ev(v);
    if (!ev)
        return;
    __atomic_store_n(&ev->cpu.exit_request, 1, __ATOMIC_RELEASE);
    g_mutex_lock(&ev->lock);
    g_cond_signal(&ev->wake);
    g_mutex_unlock(&ev->lock);
}

/* Whether a halted or SIPI-waiting CPU has something to wake for. */
static bool emu_has_wakeup(struct emu_cpu *cpu)
{
    if (emu_cpu_handle_init_sipi(cpu))
        return !cpu->s.wait_for_sipi;
    if (cpu->s.wait_for_sipi)
        return false;
    struct lapic *l = cpu->m->lapic[cpu->index];
    machine_lock(cpu->m);
    bool irq = (cpu->s.rflags & EMU_FLAG_IF) && irqchip_cpu_has_interrupt(cpu->m, cpu->index);
    bool nmi = l && l->nmi_pending;
    machine_unlock(cpu->m);
    return irq || nmi;
}

static enum vcpu_exit_reason emu_vcpu_run(struct vcpu *v)
{
    struct emu_vcpu *ev = to_ev(v);
    struct emu_cpu *cpu = &ev->cpu;
    for (;;) {
        if (__atomic_exchange_n(&cpu->tlb_flush_request, 0, __ATOMIC_ACQ_REL))
            emu_tlb_flush_all(&cpu->mmu);
        if (__atomic_exchange_n(&cpu->exit_request, 0, __ATOMIC_ACQ_REL))
            return VCPU_EXIT_KICKED;
        if (cpu->s.halted || cpu->s.wait_for_sipi) {
            __atomic_store_n(&cpu->interrupt_hint, 0, __ATOMIC_RELEASE);
            if (!emu_has_wakeup(cpu)) {
                g_mutex_lock(&ev->lock);
                if (!__atomic_load_n(&cpu->exit_request, __ATOMIC_ACQUIRE) &&
                    !__atomic_load_n(&cpu->interrupt_hint, __ATOMIC_ACQUIRE))
                    g_cond_wait_until(&ev->wake, &ev->lock, g_get_monotonic_time() + EMU_HALT_POLL_US);
                g_mutex_unlock(&ev->lock);
                continue;
            }
            cpu->s.halted = false;
            __atomic_store_n(&cpu->interrupt_hint, 1, __ATOMIC_RELEASE);
        }
        switch (emu_exec(cpu, EMU_SLICE)) {
        case EMU_EXEC_BUDGET:
            break;
        case EMU_EXEC_EXIT_REQUEST:
            __atomic_store_n(&cpu->exit_request, 0, __ATOMIC_RELEASE);
            return VCPU_EXIT_KICKED;
        case EMU_EXEC_HALT:
            cpu->s.halted = true;
            break;
        case EMU_EXEC_TRIPLE_FAULT:
            log_info("emu: vCPU %u: triple fault", v->index);
            return VCPU_EXIT_TRIPLE_FAULT;
        case EMU_EXEC_ERROR:
            return VCPU_EXIT_ERROR;
        case EMU_EXEC_DEBUG:
            return VCPU_EXIT_DEBUG;
        }
    }
}

/* ---- register access (debugging, boot state) ---- */

static void seg_to_vcpu(struct vcpu_segment *d, const struct emu_segment *s)
{
    *d = (struct vcpu_segment){
        .base = s->base,
        .limit = s->limit,
        .selector = s->selector,
        .type = s->attr & EMU_SEG_TYPE_MASK,
        .present = !!(s->attr & EMU_SEG_P),
        .dpl = (s->attr & EMU_SEG_DPL_MASK) >> EMU_SEG_DPL_SHIFT,
        .db = !!(s->attr & EMU_SEG_DB),
        .s = !!(s->attr & EMU_SEG_S),
        .l = !!(s->attr & EMU_SEG_L),
        .g = !!(s->attr & EMU_SEG_G),
        .avl = !!(s->attr & EMU_SEG_AVL),
        .unusable = !!(s->attr & EMU_SEG_UNUSABLE),
    };
}

static void seg_from_vcpu(struct emu_segment *d, const struct vcpu_segment *s)
{
    d->base = s->base;
    d->limit = s->limit;
    d->selector = s->selector;
    d->attr = (uint16_t)((s->type & EMU_SEG_TYPE_MASK) | (s->s ? EMU_SEG_S : 0) |
                         ((s->dpl << EMU_SEG_DPL_SHIFT) & EMU_SEG_DPL_MASK) | (s->present ? EMU_SEG_P : 0) |
                         (s->avl ? EMU_SEG_AVL : 0) | (s->l ? EMU_SEG_L : 0) | (s->db ? EMU_SEG_DB : 0) |
                         (s->g ? EMU_SEG_G : 0) | (s->unusable ? EMU_SEG_UNUSABLE : 0));
}

static int emu_get_regs(struct vcpu *v, struct vcpu_regs *r)
{
    struct emu_state *s = &to_ev(v)->cpu.s;
    const uint64_t *g = s->regs;
    *r = (struct vcpu_regs){g[EMU_RAX], g[EMU_RBX], g[EMU_RCX], g[EMU_RDX], g[EMU_RSI], g[EMU_RDI],
                            g[EMU_RSP], g[EMU_RBP], g[EMU_R8],  g[EMU_R9],  g[EMU_R10], g[EMU_R11],
                            g[EMU_R12], g[EMU_R13], g[EMU_R14], g[EMU_R15], s->rip,     emu_flags_get(s)};
    return 0;
}

static int emu_set_regs(struct vcpu *v, const struct vcpu_regs *r)
{
    struct emu_state *s = &to_ev(v)->cpu.s;
    uint64_t *g = s->regs;
    g[EMU_RAX] = r->rax, g[EMU_RBX] = r->rbx, g[EMU_RCX] = r->rcx, g[EMU_RDX] = r->rdx;
    g[EMU_RSI] = r->rsi, g[EMU_RDI] = r->rdi, g[EMU_RSP] = r->rsp, g[EMU_RBP] = r->rbp;
    g[EMU_R8] = r->r8, g[EMU_R9] = r->r9, g[EMU_R10] = r->r10, g[EMU_R11] = r->r11;
    g[EMU_R12] = r->r12, g[EMU_R13] = r->r13, g[EMU_R14] = r->r14, g[EMU_R15] = r->r15;
    s->rip = r->rip;
    emu_flags_write(s, r->rflags | EMU_FLAG_FIXED1, ~0ULL);
    /* A vCPU given registers by the VMM (direct kernel boot) runs, whatever INIT state it was in. */
    s->halted = false;
    s->wait_for_sipi = false;
    return 0;
}

static int emu_get_sregs(struct vcpu *v, struct vcpu_sregs *o)
{
    struct emu_state *s = &to_ev(v)->cpu.s;
    seg_to_vcpu(&o->es, &s->seg[EMU_ES]);
    seg_to_vcpu(&o->cs, &s->seg[EMU_CS]);
    seg_to_vcpu(&o->ss, &s->seg[EMU_SS]);
    seg_to_vcpu(&o->ds, &s->seg[EMU_DS]);
    seg_to_vcpu(&o->fs, &s->seg[EMU_FS]);
    seg_to_vcpu(&o->gs, &s->seg[EMU_GS]);
    seg_to_vcpu(&o->tr, &s->tr);
    seg_to_vcpu(&o->ldt, &s->ldtr);
    o->gdt = (struct vcpu_dtable){s->gdtr.base, s->gdtr.limit};
    o->idt = (struct vcpu_dtable){s->idtr.base, s->idtr.limit};
    o->cr0 = s->cr0;
    o->cr2 = s->cr2;
    o->cr3 = s->cr3;
    o->cr4 = s->cr4;
    o->cr8 = s->cr8;
    o->efer = s->efer;
    o->apic_base = s->msr.apic_base;
    return 0;
}

static int emu_set_sregs(struct vcpu *v, const struct vcpu_sregs *i)
{
    struct emu_vcpu *ev = to_ev(v);
    struct emu_state *s = &ev->cpu.s;
    seg_from_vcpu(&s->seg[EMU_ES], &i->es);
    seg_from_vcpu(&s->seg[EMU_CS], &i->cs);
    seg_from_vcpu(&s->seg[EMU_SS], &i->ss);
    seg_from_vcpu(&s->seg[EMU_DS], &i->ds);
    seg_from_vcpu(&s->seg[EMU_FS], &i->fs);
    seg_from_vcpu(&s->seg[EMU_GS], &i->gs);
    seg_from_vcpu(&s->tr, &i->tr);
    seg_from_vcpu(&s->ldtr, &i->ldt);
    s->gdtr = (struct emu_dtable){i->gdt.base, i->gdt.limit};
    s->idtr = (struct emu_dtable){i->idt.base, i->idt.limit};
    s->cr0 = i->cr0;
    s->cr2 = i->cr2;
    s->cr3 = i->cr3;
    s->cr4 = i->cr4;
    s->cr8 = i->cr8;
    s->efer = i->efer;
    emu_tlb_flush_all(&ev->cpu.mmu);
    return 0;
}

/* ---- debugging (gdbstub) ---- */

G_STATIC_ASSERT(EMU_DEBUG_MAX_BREAKPOINTS <= VCPU_DEBUG_MAX_BREAKPOINTS);

static int emu_set_guest_debug(struct vcpu *v, const struct vcpu_debug *d)
{
    struct emu_cpu *cpu = &to_ev(v)->cpu;
    if (d->nbreakpoints > EMU_DEBUG_MAX_BREAKPOINTS)
        return -ENOSPC;
    cpu->debug_step = d->single_step;
    cpu->debug_stepped = false;
    cpu->debug_skip = d->skip_current;
    cpu->debug_skip_rip = cpu->s.rip;
    cpu->debug_nbp = d->nbreakpoints;
    memcpy(cpu->debug_bp, d->breakpoints, d->nbreakpoints * sizeof(d->breakpoints[0]));
    cpu->debug_active = d->single_step || d->nbreakpoints > 0;
    return 0;
}

const struct accel_ops emu_accel_ops = {
    .name = "emu",
    .available = emu_available,
    .init = emu_init,
    .destroy = emu_destroy,
    .vcpu_init = emu_vcpu_init,
    .vcpu_destroy = emu_vcpu_destroy,
    .vcpu_run = emu_vcpu_run,
    .vcpu_kick = emu_vcpu_kick,
    .vcpu_reset = emu_vcpu_reset,
    .get_regs = emu_get_regs,
    .set_regs = emu_set_regs,
    .get_sregs = emu_get_sregs,
    .set_sregs = emu_set_sregs,
    .set_guest_debug = emu_set_guest_debug,
    .max_breakpoints = EMU_DEBUG_MAX_BREAKPOINTS,
};
