/* PCI functions on bus 0: config space rules, capability lists, BAR mapping and INTx. */
#include "pci.h"

#include <errno.h>
#include <string.h>

#include "log.h"
#include "machine.h"

static struct log_ratelimit bar_rl = LOG_RATELIMIT_INIT(5000, 10);

static bool is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

static bool ranges_overlap(unsigned a, unsigned alen, unsigned b, unsigned blen)
{
    return a < b + blen && b < a + alen;
}

/* ---------------------------------------------------------------- device-side config access */

static bool in_config(unsigned offset, unsigned size)
{
    return size <= 4 && offset <= PCIE_CONFIG_SPACE_SIZE - size;
}

uint8_t pci_config_get8(const struct pci_device *dev, unsigned offset)
{
    return in_config(offset, 1) ? dev->config[offset] : 0;
}

uint16_t pci_config_get16(const struct pci_device *dev, unsigned offset)
{
    return in_config(offset, 2) ? le16_load(&dev->config[offset]) : 0;
}

uint32_t pci_config_get32(const struct pci_device *dev, unsigned offset)
{
    return in_config(offset, 4) ? le32_load(&dev->config[offset]) : 0;
}

void pci_config_set8(struct pci_device *dev, unsigned offset, uint8_t v)
{
    if (in_config(offset, 1))
        dev->config[offset] = v;
}

void pci_config_set16(struct pci_device *dev, unsigned offset, uint16_t v)
{
    if (in_config(offset, 2))
        le16_store(&dev->config[offset], v);
}

void pci_config_set32(struct pci_device *dev, unsigned offset, uint32_t v)
{
    if (in_config(offset, 4))
        le32_store(&dev->config[offset], v);
}

static void set_mask_bytes(uint8_t *mask, unsigned offset, unsigned size, uint32_t bits)
{
    if (!in_config(offset, size))
        return;
    for (unsigned i = 0; i < size; i++)
        mask[offset + i] = (uint8_t)(bits >> (8 * i));
}

void pci_config_set_wmask(struct pci_device *dev, unsigned offset, unsigned size, uint32_t mask)
{
    set_mask_bytes(dev->wmask, offset, size, mask);
}

void pci_config_set_w1cmask(struct pci_device *dev, unsigned offset, unsigned size, uint32_t mask)
{
    set_mask_bytes(dev->w1cmask, offset, size, mask);
}

/* ---------------------------------------------------------------- building a function */

void pci_device_init(struct pci_device *dev, const struct pci_device_info *info)
{
    memset(dev, 0, sizeof(*dev));
    dev->name = info->name ? info->name : "pci";
    dev->ops = info->ops;
    dev->config_size = info->express ? PCIE_CONFIG_SPACE_SIZE : PCI_CONFIG_SPACE_SIZE;
    dev->cap_next = PCI_CAP_START;
    dev->ext_cap_next = PCI_EXT_CAP_START;
    for (unsigned i = 0; i < PCI_BAR_COUNT; i++) {
        dev->bars[i].index = (uint8_t)i;
        dev->bars[i].dev = dev;
    }

    pci_config_set16(dev, PCI_VENDOR_ID, info->vendor_id);
    pci_config_set16(dev, PCI_DEVICE_ID, info->device_id);
    pci_config_set8(dev, PCI_REVISION_ID, info->revision);
    pci_config_set8(dev, PCI_CLASS_PROG, (uint8_t)info->class_code);
    pci_config_set16(dev, PCI_CLASS_DEVICE, (uint16_t)(info->class_code >> 8));
    pci_config_set8(dev, PCI_HEADER_TYPE, PCI_HEADER_TYPE_NORMAL);
    pci_config_set16(dev, PCI_SUBSYSTEM_VENDOR_ID, info->subsystem_vendor_id);
    pci_config_set16(dev, PCI_SUBSYSTEM_ID, info->subsystem_id);
    pci_config_set8(dev, PCI_INTERRUPT_PIN, info->interrupt_pin <= PCI_INTX_PINS ? info->interrupt_pin : 0);

    pci_config_set_wmask(dev, PCI_COMMAND, 2,
                         PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |
                             PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    pci_config_set_w1cmask(dev, PCI_STATUS, 2,
                           PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT |
                               PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR |
                               PCI_STATUS_DETECTED_PARITY);
    pci_config_set_wmask(dev, PCI_CACHE_LINE_SIZE, 1, 0xff);
    pci_config_set_wmask(dev, PCI_INTERRUPT_LINE, 1, 0xff);
}

int pci_register_bar(struct pci_device *dev, unsigned n, unsigned flags, uint64_t size,
                     const struct io_ops *ops, void *opaque)
{
    if (n >= PCI_BAR_COUNT || dev->bars[n].size || dev->bars[n].upper_half || !is_pow2(size))
        return -EINVAL;
    bool io = flags & PCI_BAR_IO;
    bool is64 = !io && (flags & PCI_BAR_MEM64);
    if (io) {
        if (flags != PCI_BAR_IO || size < 4 || size > 256)
            return -EINVAL;
    } else {
        if (flags & ~(unsigned)(PCI_BAR_MEM64 | PCI_BAR_PREFETCH))
            return -EINVAL;
        if (size < 16 || (!is64 && size > 0x80000000ULL))
            return -EINVAL;
        if (is64 && (n + 1 >= PCI_BAR_COUNT || dev->bars[n + 1].size || dev->bars[n + 1].upper_half))
            return -EINVAL;
    }

    struct pci_bar *bar = &dev->bars[n];
    bar->size = size;
    bar->flags = (uint8_t)flags;
    bar->ops = ops;
    bar->opaque = opaque;
    unsigned reg = PCI_BASE_ADDRESS_0 + 4 * n;
    pci_config_set32(dev, reg, flags);
    uint64_t addr_mask = ~(size - 1) & (io ? PCI_BASE_ADDRESS_IO_MASK : PCI_BASE_ADDRESS_MEM_MASK);
    pci_config_set_wmask(dev, reg, 4, (uint32_t)addr_mask);
    if (is64) {
        dev->bars[n + 1].upper_half = true;
        pci_config_set32(dev, reg + 4, 0);
        pci_config_set_wmask(dev, reg + 4, 4, (uint32_t)(addr_mask >> 32));
    }
    return 0;
}

int pci_add_capability(struct pci_device *dev, uint8_t id, unsigned size)
{
    if (size < 2)
        return -EINVAL;
    unsigned off = (dev->cap_next + 3u) & ~3u;
    if (off + size > PCI_CONFIG_SPACE_SIZE)
        return -ENOSPC;
    dev->config[off] = id;
    dev->config[off + 1] = 0;
    if (dev->cap_last)
        dev->config[dev->cap_last + 1] = (uint8_t)off;
    else
        dev->config[PCI_CAPABILITY_LIST] = (uint8_t)off;
    dev->cap_last = (uint8_t)off;
    dev->cap_next = (uint16_t)(off + size);
    dev->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    return (int)off;
}

int pci_add_ext_capability(struct pci_device *dev, uint16_t id, uint8_t version, unsigned size)
{
    if (dev->config_size < PCIE_CONFIG_SPACE_SIZE || size < 4 || version > 0xf)
        return -EINVAL;
    unsigned off = (dev->ext_cap_next + 3u) & ~3u;
    if (off + size > PCIE_CONFIG_SPACE_SIZE)
        return -ENOSPC;
    pci_config_set32(dev, off, id | (uint32_t)version << 16);
    if (dev->ext_cap_last) {
        uint32_t hdr = pci_config_get32(dev, dev->ext_cap_last);
        pci_config_set32(dev, dev->ext_cap_last, (hdr & 0xfffff) | (uint32_t)off << 20);
    }
    dev->ext_cap_last = (uint16_t)off;
    dev->ext_cap_next = (uint16_t)(off + size);
    return (int)off;
}

unsigned pci_find_capability(const struct pci_device *dev, uint8_t id)
{
    if (!(dev->config[PCI_STATUS] & PCI_STATUS_CAP_LIST))
        return 0;
    unsigned off = dev->config[PCI_CAPABILITY_LIST] & ~3u;
    /* A well-formed list has at most (256 - 64) / 4 entries; the bound also stops loops. */
    for (unsigned i = 0; i < 48 && off >= PCI_CAP_START; i++) {
        if (dev->config[off] == id)
            return off;
        off = dev->config[off + 1] & ~3u;
    }
    return 0;
}

/* ---------------------------------------------------------------- BARs */

uint64_t pci_bar_address(const struct pci_device *dev, unsigned n)
{
    if (n >= PCI_BAR_COUNT || !dev->bars[n].size)
        return 0;
    const struct pci_bar *bar = &dev->bars[n];
    uint32_t lo = pci_config_get32(dev, PCI_BASE_ADDRESS_0 + 4 * n);
    if (bar->flags & PCI_BAR_IO)
        return lo & (uint32_t)PCI_BASE_ADDRESS_IO_MASK;
    uint64_t addr = lo & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK;
    if (bar->flags & PCI_BAR_MEM64)
        addr |= (uint64_t)pci_config_get32(dev, PCI_BASE_ADDRESS_0 + 4 * (n + 1)) << 32;
    return addr;
}

static uint64_t bar_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pci_bar *bar = opaque;
    uint64_t v;
    if (pci_msix_bar_access(bar->dev, bar->index, offset, size, false, &v))
        return v;
    if (bar->ops && bar->ops->read)
        return bar->ops->read(bar->opaque, offset, size);
    return 0;
}

static void bar_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct pci_bar *bar = opaque;
    if (pci_msix_bar_access(bar->dev, bar->index, offset, size, true, &value))
        return;
    if (bar->ops && bar->ops->write)
        bar->ops->write(bar->opaque, offset, value, size);
}

static const struct io_ops bar_ops = {bar_read, bar_write};

static struct io_bus *bar_bus(struct pci_device *dev, const struct pci_bar *bar)
{
    return bar->flags & PCI_BAR_IO ? &dev->bus->m->pio : &dev->bus->m->mmio;
}

/* Where the BAR should decode now: its address if decoding of its kind is on and the address is one a BAR can
 * have. Address 0 means "not assigned" (as it does for firmware and Linux). */
static bool bar_target(const struct pci_device *dev, unsigned n, uint64_t *addr)
{
    const struct pci_bar *bar = &dev->bars[n];
    if (!bar->size)
        return false;
    uint16_t cmd = pci_command(dev);
    uint64_t a = pci_bar_address(dev, n);
    if (bar->flags & PCI_BAR_IO) {
        if (!(cmd & PCI_COMMAND_IO) || a == 0)
            return false;
    } else {
        if (!(cmd & PCI_COMMAND_MEMORY) || a == 0)
            return false;
        if (a + bar->size - 1 < a)
            return false;
    }
    *addr = a;
    return true;
}

static bool overlaps_ram(const struct guest_memory *gm, uint64_t base, uint64_t len)
{
    for (unsigned i = 0; i < gm->nslots; i++) {
        const struct guest_ram_slot *s = &gm->slots[i];
        if (!s->unmapped && base < s->gpa + s->size && s->gpa < base + len)
            return true;
    }
    return false;
}

static void notify_bar(struct pci_device *dev, unsigned n, bool mapped, uint64_t addr)
{
    if (dev->ops && dev->ops->bar_mapped)
        dev->ops->bar_mapped(dev, n, mapped, addr);
}

/* Brings the buses in line with command + BARs. Everything that moves or stops decoding is unmapped first, so
 * that BARs of one device trading places do not collide with each other's stale mapping. */
static void pci_update_mappings(struct pci_device *dev)
{
    if (!dev->bus)
        return;
    uint64_t target[PCI_BAR_COUNT];
    bool want[PCI_BAR_COUNT];
    for (unsigned n = 0; n < PCI_BAR_COUNT; n++)
        want[n] = bar_target(dev, n, &target[n]);

    for (unsigned n = 0; n < PCI_BAR_COUNT; n++) {
        struct pci_bar *bar = &dev->bars[n];
        if (bar->mapped && (!want[n] || target[n] != bar->mapped_addr)) {
            io_bus_unregister(bar_bus(dev, bar), bar->mapped_addr, bar);
            bar->mapped = false;
            notify_bar(dev, n, false, bar->mapped_addr);
        }
    }
    for (unsigned n = 0; n < PCI_BAR_COUNT; n++) {
        struct pci_bar *bar = &dev->bars[n];
        if (!want[n] || bar->mapped)
            continue;
        bool io = bar->flags & PCI_BAR_IO;
        const char *clash = NULL;
        if (io && target[n] + bar->size > 0x10000)
            clash = "goes past port 0xffff";
        else if (!io && overlaps_ram(&dev->bus->m->mem, target[n], bar->size))
            clash = "overlaps RAM";
        else if (io_bus_register(bar_bus(dev, bar), target[n], bar->size, &bar_ops, bar, dev->name,
                                 &dev->guard) < 0)
            clash = "overlaps another region";
        if (clash) {
            /* Retried on every later command/BAR write; say so once per address. */
            if (bar->refused_addr != target[n])
                log_message_ratelimited(&bar_rl, LOG_LEVEL_WARN,
                                        "pci %s: %s BAR%u at 0x%llx (0x%llx bytes) %s; left unmapped",
                                        dev->name, io ? "I/O" : "memory", n, (unsigned long long)target[n],
                                        (unsigned long long)bar->size, clash);
            bar->refused_addr = target[n];
            continue;
        }
        bar->refused_addr = 0;
        bar->mapped = true;
        bar->mapped_addr = target[n];
        notify_bar(dev, n, true, target[n]);
    }
}

void pci_bar_set_address(struct pci_device *dev, unsigned n, uint64_t addr)
{
    if (n >= PCI_BAR_COUNT || !dev->bars[n].size)
        return;
    const struct pci_bar *bar = &dev->bars[n];
    unsigned reg = PCI_BASE_ADDRESS_0 + 4 * n;
    addr &= ~(bar->size - 1);
    pci_config_set32(dev, reg, (uint32_t)addr | bar->flags);
    if (bar->flags & PCI_BAR_MEM64)
        pci_config_set32(dev, reg + 4, (uint32_t)(addr >> 32));
    pci_update_mappings(dev);
}

/* ---------------------------------------------------------------- INTx */

unsigned pci_intx_gsi(unsigned slot, unsigned pin)
{
    return PCI_INTX_GSI_BASE + (slot + pin) % PCI_INTX_PINS;
}

/* Index (GSI - 16) of the line the function's pin drives, or -1 without a pin. */
static int intx_route(const struct pci_device *dev)
{
    unsigned pin = dev->config[PCI_INTERRUPT_PIN];
    if (pin < 1 || pin > PCI_INTX_PINS)
        return -1;
    return (int)(pci_intx_gsi(dev->slot, pin - 1) - PCI_INTX_GSI_BASE);
}

static bool intx_asserted(const struct pci_device *dev)
{
    return dev->intx_level && !(pci_command(dev) & PCI_COMMAND_INTX_DISABLE) && !pci_msi_enabled(dev) &&
           !pci_msix_enabled(dev);
}

/* Lines are wired-OR: recompute from every function that shares it. */
static void bus_update_intx(struct pci_bus *bus, int idx)
{
    if (idx < 0)
        return;
    uint8_t level = 0;
    for (unsigned i = 0; i < PCI_DEVFN_COUNT && !level; i++) {
        const struct pci_device *d = bus->devices[i];
        if (d && intx_route(d) == idx && intx_asserted(d))
            level = 1;
    }
    if (level != bus->gsi_level[idx]) {
        bus->gsi_level[idx] = level;
        irq_set_level(machine_gsi(bus->m, PCI_INTX_GSI_BASE + (unsigned)idx), level);
    }
}

static void pci_intx_update(struct pci_device *dev)
{
    if (dev->bus)
        bus_update_intx(dev->bus, intx_route(dev));
}

void pci_set_irq(struct pci_device *dev, int level)
{
    dev->intx_level = level != 0;
    if (dev->intx_level)
        dev->config[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
    else
        dev->config[PCI_STATUS] &= (uint8_t)~PCI_STATUS_INTERRUPT;
    pci_intx_update(dev);
}

/* ---------------------------------------------------------------- generic config access */

uint32_t pci_config_read_default(struct pci_device *dev, unsigned offset, unsigned size)
{
    if (size == 0 || size > 4 || offset + size > dev->config_size)
        return 0;
    uint32_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint32_t)dev->config[offset + i] << (8 * i);
    return v;
}

void pci_config_write_default(struct pci_device *dev, unsigned offset, uint32_t value, unsigned size)
{
    if (size == 0 || size > 4 || offset + size > dev->config_size)
        return;
    for (unsigned i = 0; i < size; i++) {
        unsigned a = offset + i;
        uint8_t b = (uint8_t)(value >> (8 * i));
        dev->config[a] = (uint8_t)((dev->config[a] & ~dev->wmask[a]) | (b & dev->wmask[a]));
        dev->config[a] &= (uint8_t) ~(b & dev->w1cmask[a]);
    }
    if (ranges_overlap(offset, size, PCI_COMMAND, 2) || ranges_overlap(offset, size, PCI_BASE_ADDRESS_0, 24))
        pci_update_mappings(dev);
    pci_msi_config_written(dev, offset, size);
    /* INTx disable and the MSI/MSI-X enables all gate the pin. */
    pci_intx_update(dev);
}

static struct pci_device *bus_function(const struct pci_bus *bus, unsigned busnr, unsigned devfn)
{
    if (busnr != 0 || devfn >= PCI_DEVFN_COUNT)
        return NULL;
    return bus->devices[devfn];
}

static bool valid_access(unsigned reg, unsigned size)
{
    return (size == 1 || size == 2 || size == 4) && (reg & 3) + size <= 4;
}

uint32_t pci_bus_config_read(struct pci_bus *bus, unsigned busnr, unsigned devfn, unsigned reg, unsigned size)
{
    uint32_t ones = size >= 4 ? 0xffffffffu : (1u << (size * 8)) - 1;
    struct pci_device *dev = bus_function(bus, busnr, devfn);
    if (!dev || !valid_access(reg, size) || reg + size > dev->config_size)
        return ones;
    uint32_t v = dev->ops && dev->ops->config_read ? dev->ops->config_read(dev, reg, size)
                                                   : pci_config_read_default(dev, reg, size);
    return v & ones;
}

void pci_bus_config_write(struct pci_bus *bus, unsigned busnr, unsigned devfn, unsigned reg, uint32_t value,
                          unsigned size)
{
    struct pci_device *dev = bus_function(bus, busnr, devfn);
    if (!dev || !valid_access(reg, size) || reg + size > dev->config_size)
        return;
    if (size < 4)
        value &= (1u << (size * 8)) - 1;
    if (dev->ops && dev->ops->config_write)
        dev->ops->config_write(dev, reg, value, size);
    else
        pci_config_write_default(dev, reg, value, size);
}

/* ---------------------------------------------------------------- the bus */

void pci_bus_init(struct pci_bus *bus, struct machine *m)
{
    memset(bus, 0, sizeof(*bus));
    bus->m = m;
}

struct pci_device *pci_bus_get_device(const struct pci_bus *bus, unsigned slot, unsigned fn)
{
    if (slot >= PCI_SLOT_COUNT || fn >= PCI_FUNC_COUNT)
        return NULL;
    return bus->devices[PCI_DEVFN(slot, fn)];
}

static void update_multifunction(struct pci_bus *bus, unsigned slot)
{
    unsigned count = 0;
    for (unsigned fn = 0; fn < PCI_FUNC_COUNT; fn++)
        count += bus->devices[PCI_DEVFN(slot, fn)] != NULL;
    for (unsigned fn = 0; fn < PCI_FUNC_COUNT; fn++) {
        struct pci_device *d = bus->devices[PCI_DEVFN(slot, fn)];
        if (!d)
            continue;
        d->config[PCI_HEADER_TYPE] &= (uint8_t)~PCI_HEADER_TYPE_MULTI_FUNCTION;
        if (count > 1)
            d->config[PCI_HEADER_TYPE] |= PCI_HEADER_TYPE_MULTI_FUNCTION;
    }
}

int pci_register_device(struct pci_bus *bus, struct pci_device *dev, unsigned slot, unsigned fn)
{
    if (slot >= PCI_SLOT_COUNT || fn >= PCI_FUNC_COUNT || dev->bus)
        return -EINVAL;
    unsigned devfn = PCI_DEVFN(slot, fn);
    if (bus->devices[devfn])
        return -EBUSY;
    dev->bus = bus;
    dev->slot = (uint8_t)slot;
    dev->fn = (uint8_t)fn;
    bus->devices[devfn] = dev;
    update_multifunction(bus, slot);
    pci_update_mappings(dev);
    pci_intx_update(dev);
    return 0;
}

void pci_unregister_device(struct pci_device *dev)
{
    struct pci_bus *bus = dev->bus;
    if (bus) {
        for (unsigned n = 0; n < PCI_BAR_COUNT; n++) {
            struct pci_bar *bar = &dev->bars[n];
            if (bar->mapped) {
                io_bus_unregister(bar_bus(dev, bar), bar->mapped_addr, bar);
                bar->mapped = false;
                notify_bar(dev, n, false, bar->mapped_addr);
            }
        }
        int idx = intx_route(dev);
        bus->devices[PCI_DEVFN(dev->slot, dev->fn)] = NULL;
        dev->bus = NULL;
        update_multifunction(bus, dev->slot);
        bus_update_intx(bus, idx);
    }
    pci_msi_cleanup(dev);
}

void pci_device_reset(struct pci_device *dev)
{
    for (unsigned i = 0; i < dev->config_size; i++)
        dev->config[i] &= (uint8_t) ~(dev->wmask[i] | dev->w1cmask[i]);
    dev->intx_level = false;
    dev->config[PCI_STATUS] &= (uint8_t)~PCI_STATUS_INTERRUPT;
    pci_msi_reset(dev);
    pci_update_mappings(dev);
    pci_intx_update(dev);
}
