/* The machine behind the VM object: accelerator choice, board, boot source, lifecycle hooks, guest events. */
#include "vm_machine.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>

#include "acpi_pm.h"
#include "acpi_tables.h"
#include "boot_firmware.h"
#include "boot_linux.h"
#include "emu/cpu.h"
#include "kvm_probe.h"
#include "log.h"
#include "machine.h"
#include "pc.h"
#include "qtest.h"
#include "serial_unix.h"
#include "spice_frontend.h"
#include "virtio_serial.h"
#include "vcpu.h"

/* Guest-driven events travel from vCPU and device code to the main loop as one byte through a pipe. */
enum guest_event {
    GUEST_EVENT_RESET = 'r',
    GUEST_EVENT_POWEROFF = 'p',
    GUEST_EVENT_ERROR = 'e',
    GUEST_EVENT_PANIC = 'x',
    GUEST_EVENT_DEBUG = 'd', /* a vCPU stopped for the debugger */
};

struct vm_machine {
    struct vm *vm;
    struct machine machine;
    bool machine_ready;
    struct accel accel;
    bool accel_ready;
    const struct options *opts;
    int event_pipe[2];
    guint event_watch;
    struct boot_cpu_state boot_cpu;
    bool boot_cpu_valid;
    struct qtest *qtest; /* --accel qtest: no vCPUs, a test drives the machine */
    void (*debug_fn)(void *opaque); /* the gdbstub, told about VCPU_EXIT_DEBUG */
    void *debug_opaque;
    struct virtio_serial_conf serial_conf; /* --serial-port / --guest-agent names (owned by opts) */
    struct serial_unix *serial_backends[VIRTIO_SERIAL_PORTS_MAX];
};

static void post_event(struct vm_machine *vmm, enum guest_event ev)
{
    char c = (char)ev;
    /* The pipe is non-blocking; a full pipe means the same events are already queued. */
    if (write(vmm->event_pipe[1], &c, 1) < 0 && errno != EAGAIN)
        log_warn("vm: cannot queue guest event: %s", g_strerror(errno));
}

static void on_vcpu_exit(void *opaque, struct vcpu *v, enum vcpu_exit_reason reason)
{
    struct vm_machine *vmm = opaque;
    switch (reason) {
    case VCPU_EXIT_TRIPLE_FAULT:
    case VCPU_EXIT_GUEST_RESET:
        post_event(vmm, GUEST_EVENT_RESET);
        break;
    case VCPU_EXIT_GUEST_POWEROFF:
        post_event(vmm, GUEST_EVENT_POWEROFF);
        break;
    case VCPU_EXIT_DEBUG:
        post_event(vmm, GUEST_EVENT_DEBUG);
        break;
    default:
        log_error("vm: vCPU %u stopped on an error; the VM is paused", v->index);
        post_event(vmm, GUEST_EVENT_ERROR);
        break;
    }
}

static void on_machine_request(void *opaque, enum machine_request req)
{
    struct vm_machine *vmm = opaque;
    /* A real PC stops executing at once when it powers off or resets: no guest instruction may run after the
     * request while the main loop gets to it. */
    if (vmm->accel_ready)
        accel_stop_async(&vmm->accel);
    switch (req) {
    case MACHINE_REQUEST_RESET:
        post_event(vmm, GUEST_EVENT_RESET);
        break;
    case MACHINE_REQUEST_SHUTDOWN:
        post_event(vmm, GUEST_EVENT_POWEROFF);
        break;
    case MACHINE_REQUEST_PANIC:
        post_event(vmm, GUEST_EVENT_PANIC);
        break;
    }
}

static gboolean on_event_pipe(gint fd, GIOCondition cond, gpointer data)
{
    struct vm_machine *vmm = data;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));
    for (ssize_t i = 0; i < n; i++) {
        switch (buf[i]) {
        case GUEST_EVENT_RESET:
            vm_reset(vmm->vm, VM_CAUSE_GUEST_RESET);
            break;
        case GUEST_EVENT_POWEROFF:
            vm_shutdown(vmm->vm, VM_CAUSE_GUEST_SHUTDOWN);
            return G_SOURCE_CONTINUE; /* nothing after a power-off matters */
        case GUEST_EVENT_PANIC:
            log_error("vm: the guest reported a panic; pausing");
            vm_stop(vmm->vm);
            break;
        case GUEST_EVENT_ERROR:
            vm_stop(vmm->vm);
            break;
        case GUEST_EVENT_DEBUG:
            if (vmm->debug_fn)
                vmm->debug_fn(vmm->debug_opaque);
            else if (vmm->accel_ready && vm_get_state(vmm->vm) == VM_RUNNING)
                accel_resume(&vmm->accel); /* nobody debugs: the stopping vCPU goes on */
            break;
        }
    }
    return G_SOURCE_CONTINUE;
}

static void set_boot_cpu_state(struct vm_machine *vmm)
{
    if (!vmm->boot_cpu_valid)
        return;
    const struct boot_cpu_state *b = &vmm->boot_cpu;
    struct vcpu *bsp = &vmm->accel.vcpus[0];
    struct vcpu_sregs s;
    if (vmm->accel.ops->get_sregs(bsp, &s) < 0) {
        log_error("vm: cannot read the boot CPU's registers");
        return;
    }
#define SEG(dst, src)                                                                                             \
    dst = (struct vcpu_segment){src.base, src.limit, src.selector, src.type, src.present, src.dpl,                \
                                src.db,   src.s,     src.l,        src.g,    src.avl,     src.unusable}
    SEG(s.cs, b->cs);
    SEG(s.ds, b->ds);
    SEG(s.es, b->es);
    SEG(s.fs, b->fs);
    SEG(s.gs, b->gs);
    SEG(s.ss, b->ss);
    SEG(s.tr, b->tr);
    SEG(s.ldt, b->ldt);
#undef SEG
    s.gdt = (struct vcpu_dtable){b->gdt.base, b->gdt.limit};
    s.idt = (struct vcpu_dtable){b->idt.base, b->idt.limit};
    s.cr0 = b->cr0;
    s.cr3 = b->cr3;
    s.cr4 = b->cr4;
    s.efer = b->efer;
    struct vcpu_regs r = {.rip = b->rip, .rsp = b->rsp, .rsi = b->rsi, .rflags = b->rflags};
    if (vmm->accel.ops->set_sregs(bsp, &s) < 0 || vmm->accel.ops->set_regs(bsp, &r) < 0)
        log_error("vm: cannot load the kernel entry state into the boot CPU");
}

/* Puts what boots into guest RAM (again, on reset: the guest may have overwritten it). */
static int load_boot_source(struct vm_machine *vmm, char **error)
{
    const struct options *o = vmm->opts;
    struct machine *m = &vmm->machine;
    if (o->firmware)
        return boot_firmware_restore_alias(m, error);
    uint64_t rsdp = 0;
    int r = acpi_tables_build(m, &rsdp, error);
    if (r < 0)
        return r;
    struct boot_linux_config cfg = {
        .kernel_path = o->kernel,
        .initrd_path = o->initrd,
        .cmdline = o->append,
        .acpi_rsdp_addr = rsdp,
        .use_cache = true,
    };
    struct boot_linux_result res;
    r = boot_linux_load(m, &cfg, &res, error);
    if (r < 0)
        return r;
    vmm->boot_cpu = res.cpu;
    vmm->boot_cpu_valid = true;
    log_info("boot: kernel %s (%s payload%s, %s), entry 0x%llx%s", res.version[0] ? res.version : "(no version)",
             boot_payload_format_name(res.format), res.from_cache ? " from cache" : "",
             res.direct ? "decompressed by deskvm" : "self-decompressing", (unsigned long long)res.entry,
             res.initrd_size ? ", initrd loaded" : "");
    return 0;
}

static void op_pause(void *opaque)
{
    struct vm_machine *vmm = opaque;
    if (vmm->accel_ready)
        accel_pause(&vmm->accel);
    vclock_stop(vmm->machine.clock);
}

static void op_resume(void *opaque)
{
    struct vm_machine *vmm = opaque;
    vclock_start(vmm->machine.clock);
    if (vmm->accel_ready)
        accel_resume(&vmm->accel);
}

static void op_reset(void *opaque)
{
    struct vm_machine *vmm = opaque;
    if (!vmm->accel_ready) {
        machine_reset(&vmm->machine);
        return;
    }
    accel_pause(&vmm->accel);
    machine_reset(&vmm->machine);
    if (accel_reset(&vmm->accel) < 0)
        log_error("vm: resetting the vCPUs failed");
    char *err = NULL;
    if (load_boot_source(vmm, &err) < 0) {
        log_error("vm: reloading the boot source after reset: %s", err);
        g_free(err);
    }
    set_boot_cpu_state(vmm);
    if (vm_get_state(vmm->vm) == VM_RUNNING)
        accel_resume(&vmm->accel);
}

static void op_powerdown(void *opaque)
{
    struct vm_machine *vmm = opaque;
    machine_lock(&vmm->machine);
    if (vmm->machine.acpi_pm)
        acpi_pm_press_power_button(vmm->machine.acpi_pm);
    machine_unlock(&vmm->machine);
}

static const struct vm_ops machine_vm_ops = {op_pause, op_resume, op_reset, op_powerdown};

static const struct accel_ops *choose_accel(const struct options *o, char **error)
{
    char *why = NULL;
    switch (o->accel) {
    case ACCEL_KVM:
        if (!kvm_accel_ops.available(&why)) {
            *error = g_strdup_printf("--accel kvm: %s", why);
            g_free(why);
            return NULL;
        }
        return &kvm_accel_ops;
    case ACCEL_EMU:
        return &emu_accel_ops;
    case ACCEL_QTEST: /* handled by the caller */
    case ACCEL_AUTO:
        break;
    }
    if (kvm_accel_ops.available(&why) && kvm_probe_guest_capable(&why)) {
        log_info("accel auto: using KVM (it runs ring-0 long-mode code correctly)");
        return &kvm_accel_ops;
    }
    log_warn("accel auto: using the software CPU (emu), not KVM: %s (--accel kvm forces KVM)", why);
    g_free(why);
    return &emu_accel_ops;
}

/* The virtio-serial ports' socket backends, once the device exists. */
static int start_serial_ports(struct vm_machine *vmm, char **error)
{
    const struct options *o = vmm->opts;
    struct virtio_serial *vs = virtio_serial_at(&vmm->machine, VIRTIO_SERIAL_SLOT);
    for (guint i = 0; vs && i < o->serial_ports->len; i++) {
        const struct serial_port_spec *s = &g_array_index(o->serial_ports, struct serial_port_spec, i);
        char *err = NULL;
        vmm->serial_backends[i] = serial_unix_new(virtio_serial_port(vs, s->name), s->path, &err);
        if (!vmm->serial_backends[i]) {
            *error = g_strdup_printf("%s: %s", s->guest_agent ? "--guest-agent" : "--serial-port", err);
            g_free(err);
            return -EINVAL;
        }
    }
    return 0;
}

struct vm_machine *vm_machine_create(const struct options *o, struct vm *vm, struct chardev *serial, char **error)
{
    struct vm_machine *vmm = g_new0(struct vm_machine, 1);
    vmm->vm = vm;
    vmm->opts = o;
    vmm->event_pipe[0] = vmm->event_pipe[1] = -1;
    vmm->serial_conf.nports = o->serial_ports->len;
    bool agent_port_given = false;
    for (guint i = 0; i < o->serial_ports->len && i < VIRTIO_SERIAL_PORTS_MAX; i++) {
        vmm->serial_conf.names[i] = g_array_index(o->serial_ports, struct serial_port_spec, i).name;
        agent_port_given |= !strcmp(vmm->serial_conf.names[i], SPICE_AGENT_PORT_NAME);
    }
    /* SPICE brings the guest agent's port, as QEMU users add it by hand (-device virtserialport,
     * name=com.redhat.spice.0): spice-vdagent in the guest gives clipboard, resize and agent mouse. */
    if (o->spice.enabled && !agent_port_given) {
        if (vmm->serial_conf.nports >= VIRTIO_SERIAL_PORTS_MAX) {
            *error = g_strdup_printf("--spice needs a virtio-serial port for %s, but --serial-port and "
                                     "--guest-agent already use all %d",
                                     SPICE_AGENT_PORT_NAME, VIRTIO_SERIAL_PORTS_MAX);
            g_free(vmm);
            return NULL;
        }
        vmm->serial_conf.names[vmm->serial_conf.nports++] = SPICE_AGENT_PORT_NAME;
    }
    const struct virtio_serial_conf *serial_ports = vmm->serial_conf.nports ? &vmm->serial_conf : NULL;

    if (o->accel == ACCEL_QTEST) {
        struct pc_config pc = {.ram_size = o->memory, .cpus = o->cpus, .serial = serial, .manual_clock = true,
                               .test_device = o->test_device, .disks = options_disks(o),
                               .ndisks = o->disks->len, .virtio_keyboard = o->virtio_keyboard,
                               .virtio_tablet = o->virtio_tablet, .virtio_serial = serial_ports};
        pc.bochs_display = o->display == DISPLAY_BOCHS;
        pc.virtio_gpu = o->display == DISPLAY_VIRTIO_GPU;
        pc.qxl = o->display == DISPLAY_QXL;
        pc.display_width = o->display_width;
        pc.display_height = o->display_height;
        if (pc_machine_init(&vmm->machine, &pc, error) < 0)
            goto fail;
        vmm->machine_ready = true;
        machine_set_request_handler(&vmm->machine, on_machine_request, vmm);
        if (start_serial_ports(vmm, error) < 0)
            goto fail;
        struct listen_spec spec = o->qtest;
        vmm->qtest = qtest_start(&vmm->machine, &spec, error);
        if (!vmm->qtest)
            goto fail;
        goto ready;
    }

    const struct accel_ops *ops = choose_accel(o, error);
    if (!ops)
        goto fail;
    emu_trace_level = o->trace_cpu;
    struct pc_config pc = {
        .ram_size = o->memory,
        .cpus = o->cpus,
        .serial = serial,
        .kernel_irqchip = ops == &kvm_accel_ops,
        .test_device = o->test_device,
        .disks = options_disks(o),
        .ndisks = o->disks->len,
        .virtio_keyboard = o->virtio_keyboard,
        .virtio_tablet = o->virtio_tablet,
        .virtio_serial = serial_ports,
        .bochs_display = o->display == DISPLAY_BOCHS,
        .virtio_gpu = o->display == DISPLAY_VIRTIO_GPU,
        .qxl = o->display == DISPLAY_QXL,
        .display_width = o->display_width,
        .display_height = o->display_height,
    };
    if (pc_machine_init(&vmm->machine, &pc, error) < 0)
        goto fail;
    vmm->machine_ready = true;
    machine_set_request_handler(&vmm->machine, on_machine_request, vmm);
    if (start_serial_ports(vmm, error) < 0)
        goto fail;
    if (o->firmware && boot_firmware_load(&vmm->machine, o->firmware, error) < 0)
        goto fail;
    if (accel_init(&vmm->accel, ops, &vmm->machine, o->cpus, error) < 0)
        goto fail;
    /* Device timers (LAPIC, PIT, RTC, UART) fire on the clock's thread; it runs only while the VM does. */
    vclock_start_thread(vmm->machine.clock);
    vmm->accel_ready = true;
    accel_set_exit_handler(&vmm->accel, on_vcpu_exit, vmm);
    if (accel_reset(&vmm->accel) < 0) {
        *error = g_strdup("resetting the vCPUs failed");
        goto fail;
    }
    if (!o->firmware && load_boot_source(vmm, error) < 0)
        goto fail;
    set_boot_cpu_state(vmm);

ready:
    if (!g_unix_open_pipe(vmm->event_pipe, FD_CLOEXEC, NULL)) {
        *error = g_strdup_printf("event pipe: %s", g_strerror(errno));
        goto fail;
    }
    fcntl(vmm->event_pipe[1], F_SETFL, O_NONBLOCK);
    vmm->event_watch = g_unix_fd_add(vmm->event_pipe[0], G_IO_IN, on_event_pipe, vmm);

    vm_set_ops(vm, &machine_vm_ops, vmm);
    if (vm_get_state(vm) == VM_RUNNING)
        op_resume(vmm);
    return vmm;

fail:
    vm_machine_destroy(vmm);
    return NULL;
}

struct serial_port *vm_machine_serial_port(struct vm_machine *vmm, const char *name)
{
    if (!vmm || !vmm->machine_ready)
        return NULL;
    struct virtio_serial *vs = virtio_serial_at(&vmm->machine, VIRTIO_SERIAL_SLOT);
    return vs ? virtio_serial_port(vs, name) : NULL;
}

void vm_machine_destroy(struct vm_machine *vmm)
{
    if (!vmm)
        return;
    if (vmm->event_watch)
        g_source_remove(vmm->event_watch);
    vm_set_ops(vmm->vm, NULL, NULL);
    qtest_stop(vmm->qtest);
    if (vmm->accel_ready)
        accel_destroy(&vmm->accel);
    for (unsigned i = 0; i < VIRTIO_SERIAL_PORTS_MAX; i++)
        serial_unix_free(vmm->serial_backends[i]);
    if (vmm->machine_ready)
        machine_destroy(&vmm->machine);
    for (int i = 0; i < 2; i++)
        if (vmm->event_pipe[i] >= 0)
            close(vmm->event_pipe[i]);
    g_free(vmm);
}

struct accel *vm_machine_accel(struct vm_machine *vmm)
{
    return vmm->accel_ready ? &vmm->accel : NULL;
}

void vm_machine_set_debug_handler(struct vm_machine *vmm, void (*fn)(void *opaque), void *opaque)
{
    vmm->debug_fn = fn;
    vmm->debug_opaque = opaque;
}

struct input *vm_machine_input(struct vm_machine *vmm)
{
    return vmm->machine_ready ? vmm->machine.input : NULL;
}

struct machine *vm_machine_get(struct vm_machine *vmm)
{
    return vmm && vmm->machine_ready ? &vmm->machine : NULL;
}

const char *vm_machine_accel_name(const struct vm_machine *vmm)
{
    if (vmm->qtest)
        return "qtest";
    return vmm->accel.ops ? vmm->accel.ops->name : "none";
}
