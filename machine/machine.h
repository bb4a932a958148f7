/* The machine: guest memory, the port-I/O and MMIO buses, the virtual clock, interrupt routing and the devices of
 * a PC, under one machine lock (like QEMU's big lock: every device handler, timer callback and QMP action on
 * machine state runs holding it). CPUs and front ends reach devices only through this. */
#ifndef DESKVM_MACHINE_H
#define DESKVM_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "guest_memory.h"
#include "io_bus.h"
#include "irq.h"
#include "vclock.h"

struct machine;

/* Platform devices the machine wires together; each is owned by its module. */
struct pic;
struct ioapic;
struct lapic;
struct pit;
struct rtc;
struct uart8250;
struct i8042;
struct sysctl_ports;
struct pci_bus;
struct acpi_pm;
struct chardev;
struct input;
struct virtio_blk_conf;
struct virtio_serial_conf;
struct display;
struct bochs_display;

/* A device's place in a machine: create (register regions, IRQs), reset to power-on state, destroy. Devices are
 * listed in a table in the board file (pc.c), created in table order and destroyed in reverse. */
struct machine_device {
    const char *name;
    int (*create)(struct machine *m, char **error); /* 0 or negative errno; *error says why */
    void (*reset)(struct machine *m);
    void (*destroy)(struct machine *m);
};

/* Where interrupts go. The userspace irqchip (PIC + IOAPIC + LAPICs) implements these; KVM's in-kernel irqchip, or
 * the test accelerator's observer, can replace them. */
struct irqchip_ops {
    void (*set_gsi)(void *opaque, unsigned gsi, int level);
    void (*send_msi)(void *opaque, const struct msi_message *msg);
};

/* What the machine asks of its owner (the VM lifecycle in server/). Called with the machine lock held; the owner
 * must act asynchronously (e.g. from the main loop). */
enum machine_request {
    MACHINE_REQUEST_RESET,    /* guest reset: i8042 pulse, 0xCF9, triple fault */
    MACHINE_REQUEST_SHUTDOWN, /* guest powered off: ACPI S5 */
    MACHINE_REQUEST_PANIC,
};

struct machine_config {
    uint64_t ram_size;
    unsigned cpus;
    bool manual_clock; /* the test accelerator drives time */
    struct chardev *serial; /* COM1 backend, may be NULL */
    const struct virtio_blk_conf *disks; /* virtio-blk disks (storage/virtio_blk.h); ndisks of them */
    const struct virtio_serial_conf *virtio_serial; /* virtio-serial ports (agent/virtio_serial.h), NULL: none */
    unsigned ndisks;
    /* The mode display devices offer the guest first (EDID); 0: 1024x768. */
    unsigned display_width, display_height;
};

#define MACHINE_MAX_CPUS 64
#define MACHINE_GSI_COUNT 24

struct machine {
    GRecMutex lock;
    struct machine_config config;
    struct guest_memory mem;
    struct io_bus pio;
    struct io_bus mmio;
    struct vclock *clock;
    struct input *input; /* the input router (input.h): devices register, front ends send */

    const struct irqchip_ops *irqchip;
    void *irqchip_opaque;
    /* Wires from devices to GSIs 0..23 (ISA IRQs are GSIs 0-15). */
    struct irq_line gsi[MACHINE_GSI_COUNT];

    void (*request)(void *opaque, enum machine_request req);
    void *request_opaque;

    /* Platform devices (NULL until created). */
    struct pic *pic;
    struct ioapic *ioapic;
    struct lapic *lapic[MACHINE_MAX_CPUS];
    struct pit *pit;
    struct rtc *rtc;
    struct uart8250 *com1;
    struct i8042 *i8042;
    struct sysctl_ports *sysctl_ports; /* ports 0x61, 0x92, 0xCF9, 0x80 */
    struct pci_bus *pci;
    struct acpi_pm *acpi_pm;
    struct bochs_display *bochs;
    struct display *displays; /* the outputs display devices publish, a list (gpu/display.h) */

    const struct machine_device *const *devices;
    unsigned ndevices;
    unsigned created; /* how many of devices[] were created */
    bool devices_owned; /* devices[] was allocated by the board and is freed with the machine */
};

/* Sets up memory, buses and the clock, then creates the devices in order. On failure everything created is torn
 * down and *error names the device and the reason. */
int machine_init(struct machine *m, const struct machine_config *cfg, const struct machine_device *const *devices,
                 unsigned ndevices, char **error);
void machine_destroy(struct machine *m);
/* Resets every device in table order (holding the lock). */
void machine_reset(struct machine *m);

static inline void machine_lock(struct machine *m)
{
    g_rec_mutex_lock(&m->lock);
}

static inline void machine_unlock(struct machine *m)
{
    g_rec_mutex_unlock(&m->lock);
}

void machine_set_irqchip(struct machine *m, const struct irqchip_ops *ops, void *opaque);
/* The wire for one GSI (0..23); NULL for an out-of-range number. */
const struct irq_line *machine_gsi(struct machine *m, unsigned gsi);
void machine_send_msi(struct machine *m, const struct msi_message *msg);
void machine_set_request_handler(struct machine *m, void (*fn)(void *opaque, enum machine_request req),
                                 void *opaque);
void machine_request(struct machine *m, enum machine_request req);

/* The vCPU index the calling thread runs (0 for threads that are not vCPUs, e.g. the test accelerator), so that a
 * per-CPU device such as the local APIC at its shared MMIO address knows whose registers are accessed. */
unsigned machine_current_cpu(void);
void machine_set_current_cpu(unsigned index);

#endif
