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
};

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

static int kvm_map_memory(struct kvm_state *k, struct machine *m, char **error)
{
    for (unsigned i = 0; i < m->mem.nslots; i++) {
        const struct guest_ram_slot *s = &m->mem.slots[i];
        struct kvm_userspace_memory_region r = {
            .slot = i,
            .flags = s->readonly ? KVM_MEM_READONLY : 0,
            .guest_phys_addr = s->gpa,
            .memory_size = s->size,
            .userspace_addr = (uint64_t)(uintptr_t)s->host,
        };
        if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
            *error = g_strdup_printf("KVM_SET_USER_MEMORY_REGION slot %u: %s", i, g_strerror(errno));
            return -errno;
        }
    }
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
};
