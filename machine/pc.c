/* The PC board's device list. */
#include "pc.h"

#include "acpi_pm.h"
#include "bochs_display.h"
#include "i8042.h"
#include "ioapic.h"
#include "irqchip.h"
#include "lapic.h"
#include "pci_host.h"
#include "pci_testdev.h"
#include "pic.h"
#include "pit.h"
#include "qxl.h"
#include "rtc.h"
#include "sysctl_ports.h"
#include "uart8250.h"
#include "virtio_blk.h"
#include "virtio_gpu.h"
#include "virtio_input.h"
#include "virtio_serial.h"

/* Interrupt controllers and the PIT first: everything after them may wire IRQs or use the PIT. */
static const struct machine_device *const userspace_irqchip_devices[] = {
    &pic_device, &ioapic_device, &lapic_device, &irqchip_device, &pit_device,
};

static const struct machine_device *const platform_devices[] = {
    &rtc_device, &sysctl_ports_device, &uart_com1_device, &i8042_device, &pci_host_device, &acpi_pm_device,
};

int pc_machine_init(struct machine *m, const struct pc_config *cfg, char **error)
{
    GPtrArray *list = g_ptr_array_new();
    if (!cfg->kernel_irqchip)
        for (size_t i = 0; i < G_N_ELEMENTS(userspace_irqchip_devices); i++)
            g_ptr_array_add(list, (gpointer)userspace_irqchip_devices[i]);
    for (size_t i = 0; i < G_N_ELEMENTS(platform_devices); i++)
        g_ptr_array_add(list, (gpointer)platform_devices[i]);
    if (cfg->test_device)
        g_ptr_array_add(list, (gpointer)&pci_testdev_device);
    if (cfg->ndisks)
        g_ptr_array_add(list, (gpointer)&virtio_blk_device);
    if (cfg->bochs_display)
        g_ptr_array_add(list, (gpointer)&bochs_display_device);
    else if (cfg->virtio_gpu)
        g_ptr_array_add(list, (gpointer)&virtio_gpu_device);
    else if (cfg->qxl)
        g_ptr_array_add(list, (gpointer)&qxl_device);
    if (cfg->virtio_keyboard)
        g_ptr_array_add(list, (gpointer)&virtio_keyboard_device);
    if (cfg->virtio_tablet)
        g_ptr_array_add(list, (gpointer)&virtio_tablet_device);
    if (cfg->virtio_serial)
        g_ptr_array_add(list, (gpointer)&virtio_serial_device);
    unsigned n = list->len;
    const struct machine_device **devices = (const struct machine_device **)g_ptr_array_free(list, FALSE);

    struct machine_config mc = {
        .ram_size = cfg->ram_size,
        .cpus = cfg->cpus,
        .manual_clock = cfg->manual_clock,
        .serial = cfg->serial,
        .disks = cfg->disks,
        .ndisks = cfg->ndisks,
        .virtio_serial = cfg->virtio_serial,
        .display_width = cfg->display_width,
        .display_height = cfg->display_height,
    };
    int r = machine_init(m, &mc, (const struct machine_device *const *)devices, n, error);
    if (r < 0) {
        g_free(devices);
        return r;
    }
    m->devices_owned = true;
    machine_lock(m);
    pci_host_assign_resources(m->pci);
    machine_unlock(m);
    return 0;
}
