/* The PC board: which devices a deskvm machine has, in creation order, for each kind of interrupt controller. */
#ifndef DESKVM_PC_H
#define DESKVM_PC_H

#include <stdbool.h>
#include <stdint.h>

#include "machine.h"

struct pc_config {
    uint64_t ram_size;
    unsigned cpus;
    struct chardev *serial; /* COM1 backend, may be NULL */
    /* The CPU backend brings its own PIC, IOAPIC, LAPICs and PIT (KVM's in-kernel irqchip): leave ours out. */
    bool kernel_irqchip;
    bool manual_clock; /* test accelerator */
    bool test_device;  /* add pci-testdev */
    bool virtio_keyboard, virtio_tablet; /* virtio-input at slots 4 and 5 (virtio_input.h) */
    const struct virtio_blk_conf *disks; /* virtio-blk disks (storage/virtio_blk.h) */
    const struct virtio_serial_conf *virtio_serial; /* virtio-serial at 00:06.0 (agent/virtio_serial.h), NULL: none */
    unsigned ndisks;
    bool bochs_display;                     /* add bochs-display */
    bool virtio_gpu;                        /* add virtio-gpu (exclusive with bochs_display: both use 00:02.0) */
    bool qxl;                               /* add qxl-vga at 00:02.0 (exclusive with the two above) */
    unsigned display_width, display_height; /* the display's preferred mode; 0: 1024x768 */
};

/* Builds the machine, creates its devices and assigns PCI resources as firmware would. */
int pc_machine_init(struct machine *m, const struct pc_config *cfg, char **error);

#endif
