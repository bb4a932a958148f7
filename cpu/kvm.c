/* KVM backend: one KVM VM per machine with the in-kernel irqchip and PIT, one vCPU fd + thread per guest CPU. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_cpuid.h"
#include "log.h"
#include "machine.h"
#include "vcpu.h"

/* Addresses KVM needs for its real-mode TSS and identity map on Intel; placed just below the 4 GiB firmware area,
 * inside the hole the e820 map does not give to RAM. */
#define KVM_TSS_ADDR 0xFFFBD000u
#define KVM_IDENTITY_MAP_ADDR 0xFFFBC000u

#define KICK_SIGNAL SIGUSR1

struct kvm_state {
    int sys_fd;
    int vm_fd;
    int run_size;
    struct kvm_irqchip chips[3]; /* power-on PIC master, slave, IOAPIC: restored on reset */
    struct kvm_pit_state2 pit;
    struct machine *m;
    bool slot_set[GUEST_MEMORY_MAX_SLOTS]; /* guest-memory slot i is KVM memory slot i now */
};

struct kvm_vcpu_state {
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool thread_known;
    /* power-on state, restored on reset */
    struct kvm_regs regs0;
    struct kvm_sregs sregs0;
    struct kvm_fpu fpu0;
    struct kvm_lapic_state lapic0;
    bool debugging;          /* KVM_SET_GUEST_DEBUG is on */
    struct vcpu_debug debug; /* what the debugger asked for */
    bool step_over;          /* a hidden single step over the breakpoint at the resume RIP is running */
};

/* x86 debug registers: at most 4 instruction breakpoints (DR0-3, enabled in DR7 with R/W=00, LEN=00). */
#define KVM_MAX_HW_BREAKPOINTS 4
#define DR7_LOCAL_ENABLE(i) (1ull << (2 * (i)))
#define DR7_GE (1ull << 9)

static __thread struct kvm_run *current_run;

static void kick_handler(int sig)
{
    (void)sig;
    /* Make a KVM_RUN that is about to start return at once; one already running returns -EINTR. */
    if (current_run)
        current_run->immediate_exit = 1;
}

static bool kvm_available(char **why)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        *why = g_strdup_printf("/dev/kvm: %s", g_strerror(errno));
        return false;
    }
    static const struct {
        int cap;
        const char *name;
    } needed[] = {
        {KVM_CAP_USER_MEMORY, "USER_MEMORY"},     {KVM_CAP_IRQCHIP, "IRQCHIP"},
        {KVM_CAP_PIT2, "PIT2"},                   {KVM_CAP_SIGNAL_MSI, "SIGNAL_MSI"},
        {KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT"}, {KVM_CAP_EXT_CPUID, "EXT_CPUID"},
        {KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR"},
    };
    int api = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        *why = g_strdup_printf("/dev/kvm: API version %d, deskvm needs %d", api, KVM_API_VERSION);
        close(fd);
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(needed); i++) {
        if (ioctl(fd, KVM_CHECK_EXTENSION, needed[i].cap) <= 0) {
            *why = g_strdup_printf("/dev/kvm lacks KVM_CAP_%s", needed[i].name);
            close(fd);
            return false;
        }
    }
    close(fd);
    return true;
}

static void kvm_set_gsi(void *opaque, unsigned gsi, int level)
{
    struct kvm_state *k = opaque;
    struct kvm_irq_level irq = {.irq = gsi, .level = (uint32_t)level};
    if (ioctl(k->vm_fd, KVM_IRQ_LINE, &irq) < 0)
        log_warn("kvm: KVM_IRQ_LINE %u: %s", gsi, g_strerror(errno));
}

static void kvm_send_msi(void *opaque, const struct msi_message *msg)
{
    struct kvm_state *k = opaque;
    struct kvm_msi m = {.address_lo = (uint32_t)msg->address, .address_hi = (uint32_t)(msg->address >> 32),
                        .data = msg->data};
    if (ioctl(k->vm_fd, KVM_SIGNAL_MSI, &m) < 0)
        log_warn("kvm: KVM_SIGNAL_MSI: %s", g_strerror(errno));
}

static const struct irqchip_ops kvm_irqchip_ops = {kvm_set_gsi, kvm_send_msi};

/* Brings KVM memory slot i in line with guest-memory slot i: device slots come and go and move (deleted and
 * re-created: KVM cannot move a slot in place on every kernel), and log dirty pages while theirs is on. */
static int kvm_set_slot(struct kvm_state *k, unsigned i)
{
    const struct guest_ram_slot *s = &k->m->mem.slots[i];
    struct kvm_userspace_memory_region r = {.slot = i};
    if (k->slot_set[i] && s->device) {
        if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
            return -errno;
        k->slot_set[i] = false;
    }
    if (s->unmapped)
        return 0;
    r.flags = (s->readonly ? KVM_MEM_READONLY : 0) | (s->logging ? KVM_MEM_LOG_DIRTY_PAGES : 0);
    r.guest_phys_addr = s->gpa;
    r.memory_size = s->size;
    r.userspace_addr = (uint64_t)(uintptr_t)s->host;
    if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
        return -errno;
    k->slot_set[i] = true;
    return 0;
}

static void kvm_slot_changed(void *opaque, unsigned index)
{
    int r = kvm_set_slot(opaque, index);
    if (r < 0)
        log_error("kvm: KVM_SET_USER_MEMORY_REGION slot %u: %s", index, g_strerror(-r));
}

static void kvm_sync_dirty(void *opaque, unsigned index)
{
    struct kvm_state *k = opaque;
    struct guest_ram_slot *s = &k->m->mem.slots[index];
    if (!k->slot_set[index] || !s->logging || !s->dirty)
        return;
    uint64_t pages = s->size / GUEST_PAGE_SIZE, words = (pages + 63) / 64;
    g_autofree uint64_t *bits = g_try_new0(uint64_t, words);
    struct kvm_dirty_log log = {.slot = index, .dirty_bitmap = bits};
    if (!bits || ioctl(k->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
        log_warn("kvm: KVM_GET_DIRTY_LOG slot %u: %s", index, g_strerror(bits ? errno : ENOMEM));
        return;
    }
    for (uint64_t p = 0; p < pages; p++)
        if (bits[p / 64] >> (p % 64) & 1)
            __atomic_fetch_or(&s->dirty[p / (8 * sizeof(long))], 1UL << (p % (8 * sizeof(long))),
                              __ATOMIC_RELAXED);
}

static const struct guest_memory_listener kvm_memory_listener = {kvm_slot_changed, kvm_sync_dirty};

static int kvm_map_memory(struct kvm_state *k, struct machine *m, char **error)
{
    k->m = m;
    machine_lock(m);
    for (unsigned i = 0; i < m->mem.nslots; i++) {
        int r = kvm_set_slot(k, i);
        if (r < 0) {
            machine_unlock(m);
            *error = g_strdup_printf("KVM_SET_USER_MEMORY_REGION slot %u: %s", i, g_strerror(-r));
            return r;
        }
    }
    m->mem.listener = &kvm_memory_listener;
    m->mem.listener_opaque = k;
    machine_unlock(m);
    return 0;
}

static int kvm_init(struct accel *a, char **error)
{
    struct kvm_state *k = g_new0(struct kvm_state, 1);
    k->sys_fd = k->vm_fd = -1;
    a->priv = k;
    int err;
    k->sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (k->sys_fd < 0)
        goto fail_errno;
    k->run_size = ioctl(k->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    k->vm_fd = ioctl(k->sys_fd, KVM_CREATE_VM, 0);
    if (k->vm_fd < 0 || k->run_size <= 0)
        goto fail_errno;
    if (ioctl(k->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
        goto fail_errno;
    uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
    if (ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
        goto fail_errno;
    if (ioctl(k->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        goto fail_errno;
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(k->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        goto fail_errno;
    for (int i = 0; i < 3; i++) {
        k->chips[i].chip_id = (uint32_t)i;
        if (ioctl(k->vm_fd, KVM_GET_IRQCHIP, &k->chips[i]) < 0)
            goto fail_errno;
    }
    if (ioctl(k->vm_fd, KVM_GET_PIT2, &k->pit) < 0)
        goto fail_errno;
    err = kvm_map_memory(k, a->machine, error);
    if (err < 0) {
        a->ops->destroy(a);
        return err;
    }
    machine_set_irqchip(a->machine, &kvm_irqchip_ops, k);

    struct sigaction sa = {.sa_handler = kick_handler};
    sigemptyset(&sa.sa_mask);
    sigaction(KICK_SIGNAL, &sa, NULL);
    return 0;

fail_errno:
    err = -errno;
    *error = g_strdup_printf("kvm: setting up the VM: %s", g_strerror(errno));
    a->ops->destroy(a);
    return err;
}

static void kvm_destroy(struct accel *a)
{
    struct kvm_state *k = a->priv;
    if (!k)
        return;
    if (a->machine->irqchip == &kvm_irqchip_ops)
        machine_set_irqchip(a->machine, NULL, NULL);
    machine_lock(a->machine);
    if (a->machine->mem.listener_opaque == k) {
        a->machine->mem.listener = NULL;
        a->machine->mem.listener_opaque = NULL;
    }
    machine_unlock(a->machine);
    if (k->vm_fd >= 0)
        close(k->vm_fd);
    if (k->sys_fd >= 0)
        close(k->sys_fd);
    g_free(k);
    a->priv = NULL;
}

static int kvm_vcpu_init(struct vcpu *v, char **error)
{
    struct kvm_state *k = v->accel->priv;
    struct kvm_vcpu_state *s = g_new0(struct kvm_vcpu_state, 1);
    v->priv = s;
    s->fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->index);
    if (s->fd < 0) {
        *error = g_strdup_printf("kvm: creating vCPU %u: %s", v->index, g_strerror(errno));
        g_free(s);
        v->priv = NULL;
        return -errno;
    }
    s->run = mmap(NULL, (size_t)k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->run == MAP_FAILED) {
        int e = errno;
        *error = g_strdup_printf("kvm: mapping vCPU %u: %s", v->index, g_strerror(e));
        close(s->fd);
        g_free(s);
        v->priv = NULL;
        return -e;
    }
    int r = kvm_cpuid_setup(k->sys_fd, s->fd, v->index, v->accel->ncpus, error);
    if (r < 0)
        return r;
    if (ioctl(s->fd, KVM_GET_REGS, &s->regs0) < 0 || ioctl(s->fd, KVM_GET_SREGS, &s->sregs0) < 0 ||
        ioctl(s->fd, KVM_GET_FPU, &s->fpu0) < 0 || ioctl(s->fd, KVM_GET_LAPIC, &s->lapic0) < 0) {
        *error = g_strdup_printf("kvm: reading vCPU %u state: %s", v->index, g_strerror(errno));
        return -errno;
    }
    return 0;
}

static void kvm_vcpu_destroy(struct vcpu *v)
{
    struct kvm_state *k = v->accel->priv;
    struct kvm_vcpu_state *s = v->priv;
    if (!s)
        return;
    munmap(s->run, (size_t)k->run_size);
    close(s->fd);
    g_free(s);
    v->priv = NULL;
}

static int kvm_vcpu_reset(struct vcpu *v)
{
    struct kvm_state *k = v->accel->priv;
    struct kvm_vcpu_state *s = v->priv;
    if (v->index == 0) {
        for (int i = 0; i < 3; i++)
            if (ioctl(k->vm_fd, KVM_SET_IRQCHIP, &k->chips[i]) < 0)
                return -errno;
        if (ioctl(k->vm_fd, KVM_SET_PIT2, &k->pit) < 0)
            return -errno;
    }
    struct kvm_mp_state mp = {.mp_state = v->index == 0 ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_UNINITIALIZED};
    if (ioctl(s->fd, KVM_SET_REGS, &s->regs0) < 0 || ioctl(s->fd, KVM_SET_SREGS, &s->sregs0) < 0 ||
        ioctl(s->fd, KVM_SET_FPU, &s->fpu0) < 0 || ioctl(s->fd, KVM_SET_LAPIC, &s->lapic0) < 0 ||
        ioctl(s->fd, KVM_SET_MP_STATE, &mp) < 0)
        return -errno;
    return 0;
}

static void kvm_vcpu_kick(struct vcpu *v)
{
    struct kvm_vcpu_state *s = v->priv;
    if (s && s->thread_known)
        pthread_kill(s->thread, KICK_SIGNAL);
}

static struct log_ratelimit kvm_rl = LOG_RATELIMIT_INIT(5000, 10);

static void kvm_handle_io(struct vcpu *v, struct kvm_run *run)
{
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    unsigned size = run->io.size;
    bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
    for (uint32_t i = 0; i < run->io.count; i++) {
        vcpu_dispatch_io(v, true, run->io.port, size, is_write, data);
        data += size;
    }
}

static int kvm_program_debug(struct vcpu *v, const struct vcpu_debug *d, bool skip, uint64_t skip_rip,
                             bool step);

static enum vcpu_exit_reason kvm_vcpu_run(struct vcpu *v)
{
    struct kvm_vcpu_state *s = v->priv;
    struct kvm_run *run = s->run;
    if (!s->thread_known) {
        s->thread = pthread_self();
        s->thread_known = true;
        current_run = run;
        /* The kick signal must reach this thread. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, KICK_SIGNAL);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    }
    for (;;) {
        int r = ioctl(s->fd, KVM_RUN, 0);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                run->immediate_exit = 0;
                return VCPU_EXIT_KICKED;
            }
            log_error("kvm: vCPU %u: KVM_RUN: %s", v->index, g_strerror(errno));
            return VCPU_EXIT_ERROR;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            kvm_handle_io(v, run);
            break;
        case KVM_EXIT_MMIO:
            vcpu_dispatch_io(v, false, run->mmio.phys_addr, run->mmio.len, run->mmio.is_write, run->mmio.data);
            break;
        case KVM_EXIT_HLT:
            return VCPU_EXIT_HALT;
        case KVM_EXIT_SHUTDOWN:
            log_info("kvm: vCPU %u: triple fault", v->index);
            return VCPU_EXIT_TRIPLE_FAULT;
        case KVM_EXIT_SYSTEM_EVENT:
            if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
                return VCPU_EXIT_GUEST_POWEROFF;
            if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
                return VCPU_EXIT_GUEST_RESET;
            log_message_ratelimited(&kvm_rl, LOG_LEVEL_WARN, "kvm: vCPU %u: system event %u ignored", v->index,
                                    run->system_event.type);
            break;
        case KVM_EXIT_INTR:
            return VCPU_EXIT_KICKED;
        case KVM_EXIT_DEBUG:
            if (s->step_over) {
                /* Past the breakpoint the vCPU resumed from: arm everything and go on. */
                s->step_over = false;
                int e = kvm_program_debug(v, &s->debug, false, 0, false);
                if (e < 0) {
                    log_error("kvm: vCPU %u: KVM_SET_GUEST_DEBUG: %s", v->index, g_strerror(-e));
                    return VCPU_EXIT_ERROR;
                }
                break;
            }
            if (s->debugging)
                return VCPU_EXIT_DEBUG;
            log_message_ratelimited(&kvm_rl, LOG_LEVEL_WARN, "kvm: vCPU %u: debug exit without a debugger",
                                    v->index);
            break;
        case KVM_EXIT_FAIL_ENTRY:
            log_error("kvm: vCPU %u: entry failed, hardware reason 0x%llx", v->index,
                      (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            return VCPU_EXIT_ERROR;
        case KVM_EXIT_INTERNAL_ERROR:
            log_error("kvm: vCPU %u: internal error, suberror %u", v->index, run->internal.suberror);
            return VCPU_EXIT_ERROR;
        default:
            log_error("kvm: vCPU %u: unhandled exit reason %u", v->index, run->exit_reason);
            return VCPU_EXIT_ERROR;
        }
    }
}

static void seg_from_kvm(struct vcpu_segment *d, const struct kvm_segment *s)
{
    *d = (struct vcpu_segment){s->base, s->limit, s->selector, s->type, s->present, s->dpl, s->db, s->s, s->l, s->g,
                               s->avl, s->unusable};
}

static void seg_to_kvm(struct kvm_segment *d, const struct vcpu_segment *s)
{
    memset(d, 0, sizeof(*d));
    d->base = s->base;
    d->limit = s->limit;
    d->selector = s->selector;
    d->type = s->type;
    d->present = s->present;
    d->dpl = s->dpl;
    d->db = s->db;
    d->s = s->s;
    d->l = s->l;
    d->g = s->g;
    d->avl = s->avl;
    d->unusable = s->unusable;
}

static int kvm_get_regs(struct vcpu *v, struct vcpu_regs *r)
{
    struct kvm_vcpu_state *s = v->priv;
    struct kvm_regs k;
    if (ioctl(s->fd, KVM_GET_REGS, &k) < 0)
        return -errno;
    *r = (struct vcpu_regs){k.rax, k.rbx, k.rcx, k.rdx, k.rsi, k.rdi, k.rsp, k.rbp, k.r8, k.r9, k.r10,
                            k.r11, k.r12, k.r13, k.r14, k.r15, k.rip, k.rflags};
    return 0;
}

static int kvm_set_regs(struct vcpu *v, const struct vcpu_regs *r)
{
    struct kvm_vcpu_state *s = v->priv;
    struct kvm_regs k = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rsp, r->rbp, r->r8,
                         r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15, r->rip, r->rflags};
    return ioctl(s->fd, KVM_SET_REGS, &k) < 0 ? -errno : 0;
}

static int kvm_get_sregs(struct vcpu *v, struct vcpu_sregs *o)
{
    struct kvm_vcpu_state *s = v->priv;
    struct kvm_sregs k;
    if (ioctl(s->fd, KVM_GET_SREGS, &k) < 0)
        return -errno;
    seg_from_kvm(&o->cs, &k.cs);
    seg_from_kvm(&o->ds, &k.ds);
    seg_from_kvm(&o->es, &k.es);
    seg_from_kvm(&o->fs, &k.fs);
    seg_from_kvm(&o->gs, &k.gs);
    seg_from_kvm(&o->ss, &k.ss);
    seg_from_kvm(&o->tr, &k.tr);
    seg_from_kvm(&o->ldt, &k.ldt);
    o->gdt = (struct vcpu_dtable){k.gdt.base, k.gdt.limit};
    o->idt = (struct vcpu_dtable){k.idt.base, k.idt.limit};
    o->cr0 = k.cr0;
    o->cr2 = k.cr2;
    o->cr3 = k.cr3;
    o->cr4 = k.cr4;
    o->cr8 = k.cr8;
    o->efer = k.efer;
    o->apic_base = k.apic_base;
    return 0;
}

static int kvm_set_sregs(struct vcpu *v, const struct vcpu_sregs *i)
{
    struct kvm_vcpu_state *s = v->priv;
    struct kvm_sregs k;
    /* Start from the current state so fields deskvm does not model (interrupt bitmap) stay consistent. */
    if (ioctl(s->fd, KVM_GET_SREGS, &k) < 0)
        return -errno;
    seg_to_kvm(&k.cs, &i->cs);
    seg_to_kvm(&k.ds, &i->ds);
    seg_to_kvm(&k.es, &i->es);
    seg_to_kvm(&k.fs, &i->fs);
    seg_to_kvm(&k.gs, &i->gs);
    seg_to_kvm(&k.ss, &i->ss);
    seg_to_kvm(&k.tr, &i->tr);
    seg_to_kvm(&k.ldt, &i->ldt);
    k.gdt.base = i->gdt.base;
    k.gdt.limit = i->gdt.limit;
    k.idt.base = i->idt.base;
    k.idt.limit = i->idt.limit;
    k.cr0 = i->cr0;
    k.cr2 = i->cr2;
    k.cr3 = i->cr3;
    k.cr4 = i->cr4;
    k.cr8 = i->cr8;
    k.efer = i->efer;
    k.apic_base = i->apic_base;
    return ioctl(s->fd, KVM_SET_SREGS, &k) < 0 ? -errno : 0;
}

/* Programs KVM_SET_GUEST_DEBUG from d, leaving out breakpoints at skip_rip (when skip) and adding a single
 * step (when step). */
static int kvm_program_debug(struct vcpu *v, const struct vcpu_debug *d, bool skip, uint64_t skip_rip,
                             bool step)
{
    struct kvm_state *k = v->accel->priv;
    struct kvm_vcpu_state *s = v->priv;
    struct kvm_guest_debug dbg = {0};
    unsigned n = 0;
    uint64_t dr7 = DR7_GE;
    for (unsigned i = 0; i < d->nbreakpoints; i++) {
        if (skip && d->breakpoints[i] == skip_rip)
            continue;
        dbg.arch.debugreg[n] = d->breakpoints[i];
        dr7 |= DR7_LOCAL_ENABLE(n);
        n++;
    }
    bool on = step || d->nbreakpoints > 0;
    if (on) {
        dbg.control = KVM_GUESTDBG_ENABLE;
        if (step) {
            dbg.control |= KVM_GUESTDBG_SINGLESTEP;
            /* Hold interrupts back while stepping, where the host can (as the emu does). */
            int flags = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_GUEST_DEBUG2);
            if (flags > 0 && (flags & KVM_GUESTDBG_BLOCKIRQ))
                dbg.control |= KVM_GUESTDBG_BLOCKIRQ;
        }
        if (n) {
            dbg.control |= KVM_GUESTDBG_USE_HW_BP;
            dbg.arch.debugreg[7] = dr7;
        }
    }
    if (ioctl(s->fd, KVM_SET_GUEST_DEBUG, &dbg) < 0)
        return errno == EINVAL && on ? -EOPNOTSUPP : -errno;
    s->debugging = on;
    return 0;
}

static int kvm_set_guest_debug(struct vcpu *v, const struct vcpu_debug *d)
{
    struct kvm_state *k = v->accel->priv;
    struct kvm_vcpu_state *s = v->priv;
    if (d->nbreakpoints > KVM_MAX_HW_BREAKPOINTS)
        return -ENOSPC;
    bool on = d->single_step || d->nbreakpoints > 0;
    if (on && ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_GUEST_DEBUG) <= 0)
        return -EOPNOTSUPP;
    s->debug = *d;
    s->step_over = false;
    bool skip = false;
    uint64_t rip = 0;
    if (d->skip_current && d->nbreakpoints) {
        /* Resuming from a breakpoint: RFLAGS.RF is not honoured everywhere (nested KVM), so the instruction
         * there runs as a single step without its breakpoint first, then the full set goes back in. */
        struct kvm_regs regs;
        if (ioctl(s->fd, KVM_GET_REGS, &regs) < 0)
            return -errno;
        rip = regs.rip;
        for (unsigned i = 0; i < d->nbreakpoints; i++)
            skip = skip || d->breakpoints[i] == rip;
    }
    s->step_over = skip && !d->single_step;
    return kvm_program_debug(v, d, skip, rip, d->single_step || skip);
}

const struct accel_ops kvm_accel_ops = {
    .name = "kvm",
    .available = kvm_available,
    .init = kvm_init,
    .destroy = kvm_destroy,
    .vcpu_init = kvm_vcpu_init,
    .vcpu_destroy = kvm_vcpu_destroy,
    .vcpu_run = kvm_vcpu_run,
    .vcpu_kick = kvm_vcpu_kick,
    .vcpu_reset = kvm_vcpu_reset,
    .get_regs = kvm_get_regs,
    .set_regs = kvm_set_regs,
    .get_sregs = kvm_get_sregs,
    .set_sregs = kvm_set_sregs,
    .set_guest_debug = kvm_set_guest_debug,
    .max_breakpoints = KVM_MAX_HW_BREAKPOINTS,
};
