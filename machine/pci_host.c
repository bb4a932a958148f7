/* PCI host bridge: config mechanism #1, ECAM, and the firmware-style resource allocator. */
#include "pci_host.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "log.h"
#include "sysctl_ports.h"

static struct log_ratelimit host_rl = LOG_RATELIMIT_INIT(5000, 10);

static struct pci_host *host_of(struct pci_bus *bus)
{
    return container_of(bus, struct pci_host, bus);
}

uint64_t pci_mmio64_base(uint64_t ram_size)
{
    uint64_t ram_end = ram_size > GUEST_MEMORY_LOW_LIMIT
                           ? GUEST_MEMORY_HIGH_BASE + (ram_size - GUEST_MEMORY_LOW_LIMIT)
                           : GUEST_MEMORY_LOW_LIMIT;
    if (ram_end <= PCI_MMIO64_BASE)
        return PCI_MMIO64_BASE;
    return (ram_end + PCI_MMIO64_SIZE - 1) & ~(PCI_MMIO64_SIZE - 1);
}

static uint64_t all_ones(unsigned size)
{
    return size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
}

/* ---------------------------------------------------------------- CF8/CFC */

static uint64_t cf8_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pci_host *h = opaque;
    if (offset < 4) {
        if (offset == 0 && size == 4)
            return h->config_address;
        if (offset == 1 && size == 1 && h->bus.m->sysctl_ports)
            return sysctl_ports_rcr_read(h->bus.m->sysctl_ports);
        return all_ones(size);
    }
    uint32_t ca = h->config_address;
    if (!(ca & PCI_CONFIG_ADDRESS_ENABLE) || size > 4)
        return all_ones(size);
    unsigned reg = (ca & 0xfc) + (unsigned)(offset - 4);
    return pci_bus_config_read(&h->bus, (ca >> 16) & 0xff, (ca >> 8) & 0xff, reg, size);
}

static void cf8_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct pci_host *h = opaque;
    if (offset < 4) {
        if (offset == 0 && size == 4)
            h->config_address = (uint32_t)value & PCI_CONFIG_ADDRESS_MASK;
        else if (offset == 1 && size == 1 && h->bus.m->sysctl_ports)
            sysctl_ports_rcr_write(h->bus.m->sysctl_ports, (uint8_t)value);
        /* other sub-dword accesses to 0xCF8-0xCFB go nowhere, as on real chipsets */
        return;
    }
    uint32_t ca = h->config_address;
    if (!(ca & PCI_CONFIG_ADDRESS_ENABLE) || size > 4)
        return;
    unsigned reg = (ca & 0xfc) + (unsigned)(offset - 4);
    pci_bus_config_write(&h->bus, (ca >> 16) & 0xff, (ca >> 8) & 0xff, reg, (uint32_t)value, size);
}

static const struct io_ops cf8_ops = {cf8_read, cf8_write};

/* ---------------------------------------------------------------- ECAM */

static bool ecam_aligned(uint64_t offset, unsigned size)
{
    if ((offset & 3) + size <= 4 || (size == 8 && !(offset & 7)))
        return true;
    log_message_ratelimited(&host_rl, LOG_LEVEL_WARN, "pci: %u-byte ECAM access at 0x%llx crosses a dword",
                            size, (unsigned long long)(PCI_ECAM_BASE + offset));
    return false;
}

static uint32_t ecam_read32(struct pci_host *h, uint64_t offset, unsigned size)
{
    return pci_bus_config_read(&h->bus, (unsigned)(offset >> 20), (unsigned)(offset >> 12) & 0xff,
                               (unsigned)offset & 0xfff, size);
}

static void ecam_write32(struct pci_host *h, uint64_t offset, uint32_t value, unsigned size)
{
    pci_bus_config_write(&h->bus, (unsigned)(offset >> 20), (unsigned)(offset >> 12) & 0xff,
                         (unsigned)offset & 0xfff, value, size);
}

static uint64_t ecam_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pci_host *h = opaque;
    if (!ecam_aligned(offset, size))
        return all_ones(size);
    if (size == 8)
        return ecam_read32(h, offset, 4) | (uint64_t)ecam_read32(h, offset + 4, 4) << 32;
    return ecam_read32(h, offset, size);
}

static void ecam_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct pci_host *h = opaque;
    if (!ecam_aligned(offset, size))
        return;
    if (size == 8) {
        ecam_write32(h, offset, (uint32_t)value, 4);
        ecam_write32(h, offset + 4, (uint32_t)(value >> 32), 4);
        return;
    }
    ecam_write32(h, offset, (uint32_t)value, size);
}

static const struct io_ops ecam_ops = {ecam_read, ecam_write};

/* ---------------------------------------------------------------- resource assignment */

struct bar_request {
    struct pci_device *dev;
    unsigned n;
    uint64_t size;
    bool io, is64;
};

/* Largest first; ties in bus order so the result is the same on every run. */
static int bar_request_cmp(const void *a, const void *b)
{
    const struct bar_request *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    unsigned dx = PCI_DEVFN(x->dev->slot, x->dev->fn), dy = PCI_DEVFN(y->dev->slot, y->dev->fn);
    if (dx != dy)
        return dx < dy ? -1 : 1;
    return x->n < y->n ? -1 : x->n > y->n;
}

static uint64_t align_up(uint64_t v, uint64_t align)
{
    return (v + align - 1) & ~(align - 1);
}

/* Firmware programs through config cycles like anyone else, so device hooks see them. */
static void config_write(struct pci_bus *bus, struct pci_device *dev, unsigned reg, uint32_t v, unsigned size)
{
    pci_bus_config_write(bus, 0, PCI_DEVFN(dev->slot, dev->fn), reg, v, size);
}

static void program_bar(struct pci_bus *bus, const struct bar_request *r, uint64_t addr)
{
    unsigned reg = PCI_BASE_ADDRESS_0 + 4 * r->n;
    config_write(bus, r->dev, reg, (uint32_t)addr, 4);
    if (r->is64)
        config_write(bus, r->dev, reg + 4, (uint32_t)(addr >> 32), 4);
}

int pci_host_assign_resources(struct pci_bus *bus)
{
    struct bar_request *reqs = g_new(struct bar_request, PCI_DEVFN_COUNT * PCI_BAR_COUNT);
    unsigned nreq = 0;
    uint64_t mem32_only = 0; /* bytes of 32-bit-only memory BARs still to place */
    for (unsigned devfn = 0; devfn < PCI_DEVFN_COUNT; devfn++) {
        struct pci_device *dev = bus->devices[devfn];
        if (!dev)
            continue;
        uint16_t cmd = pci_command(dev) & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
        config_write(bus, dev, PCI_COMMAND, cmd, 2);
        for (unsigned n = 0; n < PCI_BAR_COUNT; n++) {
            const struct pci_bar *bar = &dev->bars[n];
            if (!bar->size)
                continue;
            struct bar_request r = {dev, n, bar->size, bar->flags & PCI_BAR_IO,
                                    !(bar->flags & PCI_BAR_IO) && (bar->flags & PCI_BAR_MEM64)};
            reqs[nreq++] = r;
            if (!r.io && !r.is64)
                mem32_only += r.size;
        }
    }
    qsort(reqs, nreq, sizeof(*reqs), bar_request_cmp);

    /* Sizes are powers of two placed in decreasing order from aligned bases, so no gaps open up and "fits" is
     * just arithmetic on what is left. */
    const uint64_t end32 = PCI_MMIO32_BASE + PCI_MMIO32_SIZE;
    const uint64_t base64 = pci_mmio64_base(bus->m->config.ram_size), end64 = base64 + PCI_MMIO64_SIZE;
    uint64_t next32 = PCI_MMIO32_BASE, next64 = base64, next_io = PCI_IO_BASE;
    uint16_t enable[PCI_DEVFN_COUNT] = {0};
    int result = 0;
    for (unsigned i = 0; i < nreq; i++) {
        const struct bar_request *r = &reqs[i];
        uint64_t addr = 0;
        if (r->io) {
            uint64_t a = align_up(next_io, r->size);
            if (a + r->size <= PCI_IO_BASE + PCI_IO_SIZE)
                addr = a, next_io = a + r->size;
        } else {
            if (!r->is64)
                mem32_only -= r->size;
            uint64_t a = align_up(next32, r->size);
            uint64_t room_needed = r->is64 ? mem32_only : 0;
            if (a + r->size <= end32 && end32 - (a + r->size) >= room_needed) {
                addr = a, next32 = a + r->size;
            } else if (r->is64) {
                a = align_up(next64, r->size);
                if (a + r->size <= end64)
                    addr = a, next64 = a + r->size;
            }
        }
        program_bar(bus, r, addr);
        if (!addr) {
            log_error("pci %s: no room for BAR%u (0x%llx bytes); left unassigned", r->dev->name, r->n,
                      (unsigned long long)r->size);
            result = -ENOSPC;
            continue;
        }
        enable[PCI_DEVFN(r->dev->slot, r->dev->fn)] |= r->io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
    }
    g_free(reqs);

    for (unsigned devfn = 0; devfn < PCI_DEVFN_COUNT; devfn++) {
        struct pci_device *dev = bus->devices[devfn];
        if (!dev)
            continue;
        unsigned pin = dev->config[PCI_INTERRUPT_PIN];
        if (pin >= 1 && pin <= PCI_INTX_PINS)
            config_write(bus, dev, PCI_INTERRUPT_LINE, pci_intx_gsi(dev->slot, pin - 1), 1);
        if (enable[devfn])
            config_write(bus, dev, PCI_COMMAND, pci_command(dev) | enable[devfn], 2);
    }
    bus->resources_assigned = true;
    return result;
}

/* ---------------------------------------------------------------- the device */

static const struct pci_device_info bridge_info = {
    .name = "pci-host",
    .vendor_id = PCI_HOST_VENDOR_ID,
    .device_id = PCI_HOST_DEVICE_ID,
    .class_code = PCI_CLASS_BRIDGE_HOST,
    .subsystem_vendor_id = PCI_HOST_VENDOR_ID,
    .subsystem_id = PCI_HOST_DEVICE_ID,
};

static void pci_host_destroy(struct machine *m)
{
    if (!m->pci)
        return;
    struct pci_host *h = host_of(m->pci);
    io_bus_unregister(&m->pio, PCI_CONFIG_ADDRESS, h);
    io_bus_unregister(&m->mmio, PCI_ECAM_BASE, h);
    pci_unregister_device(&h->bridge);
    m->pci = NULL;
    g_free(h);
}

static int pci_host_create(struct machine *m, char **error)
{
    struct pci_host *h = g_new0(struct pci_host, 1);
    pci_bus_init(&h->bus, m);
    pci_device_init(&h->bridge, &bridge_info);
    pci_register_device(&h->bus, &h->bridge, 0, 0);
    m->pci = &h->bus;

    /* CONFIG_ADDRESS is a dword at 0xCF8, so this range covers 0xCF9 too: take it from sysctl_ports. */
    struct sysctl_ports *sp = m->sysctl_ports;
    if (sp && sp->rcr_registered && io_bus_unregister(&m->pio, SYSCTL_RCR, sp) == 0)
        sp->rcr_registered = false;
    int r = io_bus_register(&m->pio, PCI_CONFIG_ADDRESS, 8, &cf8_ops, h, "pci-config", &h->guard);
    if (r < 0) {
        *error = g_strdup_printf("ports 0x%x-0x%x: %s", PCI_CONFIG_ADDRESS, PCI_CONFIG_ADDRESS + 7,
                                 g_strerror(-r));
        pci_unregister_device(&h->bridge);
        m->pci = NULL;
        g_free(h);
        return r;
    }
    r = io_bus_register(&m->mmio, PCI_ECAM_BASE, PCI_ECAM_SIZE, &ecam_ops, h, "pci-ecam", &h->guard);
    if (r < 0) {
        *error =
            g_strdup_printf("ECAM window at 0x%llx: %s", (unsigned long long)PCI_ECAM_BASE, g_strerror(-r));
        pci_host_destroy(m);
        return r;
    }
    return 0;
}

/* Runs before the PCI devices' own resets (it is listed before them): every function returns to its power-on
 * config state, then firmware's assignment is redone if the board had asked for it. */
static void pci_host_reset(struct machine *m)
{
    struct pci_host *h = host_of(m->pci);
    h->config_address = 0;
    for (unsigned devfn = 0; devfn < PCI_DEVFN_COUNT; devfn++)
        if (h->bus.devices[devfn])
            pci_device_reset(h->bus.devices[devfn]);
    if (h->bus.resources_assigned)
        pci_host_assign_resources(&h->bus);
}

const struct machine_device pci_host_device = {"pci-host", pci_host_create, pci_host_reset, pci_host_destroy};
