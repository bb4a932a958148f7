/* PCI test function: echo/record registers, interrupt triggers, one-dword DMA. */
#include "pci_testdev.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "log.h"

static const char testdev_name[] = "pci-testdev";

static const struct pci_device_info testdev_info = {
    .name = testdev_name,
    .vendor_id = PCI_TESTDEV_VENDOR_ID,
    .device_id = PCI_TESTDEV_DEVICE_ID,
    .class_code = PCI_TESTDEV_CLASS,
    .subsystem_vendor_id = PCI_TESTDEV_VENDOR_ID,
    .subsystem_id = PCI_TESTDEV_DEVICE_ID,
    .interrupt_pin = 1,
    .express = true,
};

static void dma(struct pci_testdev *td, uint32_t cmd)
{
    if (cmd != PCI_TESTDEV_DMA_WRITE && cmd != PCI_TESTDEV_DMA_READ) {
        td->dma_status = PCI_TESTDEV_DMA_BAD_CMD;
        return;
    }
    if (!pci_bus_master_enabled(&td->pci)) {
        td->dma_status = PCI_TESTDEV_DMA_NO_MASTER;
        return;
    }
    int r = cmd == PCI_TESTDEV_DMA_WRITE ? guest_mem_write_u32(&td->m->mem, td->dma_addr, td->dma_value)
                                         : guest_mem_read_u32(&td->m->mem, td->dma_addr, &td->dma_value);
    td->dma_status = r < 0 ? PCI_TESTDEV_DMA_FAULT : PCI_TESTDEV_DMA_OK;
}

static uint32_t reg_read(struct pci_testdev *td, unsigned reg)
{
    switch (reg) {
    case PCI_TESTDEV_ID:
        return PCI_TESTDEV_MAGIC;
    case PCI_TESTDEV_SCRATCH:
        return td->scratch;
    case PCI_TESTDEV_INTX:
        return td->intx;
    case PCI_TESTDEV_NOTIFY:
        return td->notify_result;
    case PCI_TESTDEV_WRITE_COUNT:
        return td->write_count;
    case PCI_TESTDEV_LAST_BAR:
        return td->last_bar;
    case PCI_TESTDEV_LAST_OFFSET:
        return td->last_offset;
    case PCI_TESTDEV_LAST_SIZE:
        return td->last_size;
    case PCI_TESTDEV_LAST_VALUE_LO:
        return (uint32_t)td->last_value;
    case PCI_TESTDEV_LAST_VALUE_HI:
        return (uint32_t)(td->last_value >> 32);
    case PCI_TESTDEV_DMA_ADDR_LO:
        return (uint32_t)td->dma_addr;
    case PCI_TESTDEV_DMA_ADDR_HI:
        return (uint32_t)(td->dma_addr >> 32);
    case PCI_TESTDEV_DMA_VALUE:
        return td->dma_value;
    case PCI_TESTDEV_DMA_STATUS:
        return td->dma_status;
    default:
        return 0;
    }
}

static void reg_write(struct pci_testdev *td, unsigned reg, uint32_t v)
{
    switch (reg) {
    case PCI_TESTDEV_SCRATCH:
        td->scratch = v;
        break;
    case PCI_TESTDEV_INTX:
        td->intx = v & 1;
        pci_set_irq(&td->pci, (int)td->intx);
        break;
    case PCI_TESTDEV_NOTIFY:
        td->notify_result = (uint32_t)pci_msi_notify(&td->pci, v);
        break;
    case PCI_TESTDEV_DMA_ADDR_LO:
        td->dma_addr = (td->dma_addr & ~0xffffffffULL) | v;
        break;
    case PCI_TESTDEV_DMA_ADDR_HI:
        td->dma_addr = (td->dma_addr & 0xffffffffULL) | (uint64_t)v << 32;
        break;
    case PCI_TESTDEV_DMA_VALUE:
        td->dma_value = v;
        break;
    case PCI_TESTDEV_DMA_CTRL:
        dma(td, v);
        break;
    default:
        break; /* read-only or unused */
    }
}

static void record(struct pci_testdev *td, unsigned bar, uint64_t offset, uint64_t value, unsigned size)
{
    td->write_count++;
    td->last_bar = bar;
    td->last_offset = (uint32_t)offset;
    td->last_size = size;
    td->last_value = value;
}

static uint64_t regs_read(struct pci_testdev *td, uint64_t offset, unsigned size)
{
    if (offset & (size - 1))
        return 0;
    if (size == 8)
        return reg_read(td, (unsigned)offset) | (uint64_t)reg_read(td, (unsigned)offset + 4) << 32;
    return reg_read(td, (unsigned)offset & ~3u) >> (8 * (offset & 3));
}

static void regs_write(struct pci_testdev *td, unsigned bar, uint64_t offset, uint64_t value, unsigned size)
{
    record(td, bar, offset, value, size);
    if ((offset & (size - 1)) || size < 4)
        return;
    reg_write(td, (unsigned)offset, (uint32_t)value);
    if (size == 8)
        reg_write(td, (unsigned)offset + 4, (uint32_t)(value >> 32));
}

static uint64_t bar0_read(void *opaque, uint64_t offset, unsigned size)
{
    return regs_read(opaque, offset, size);
}

static void bar0_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    regs_write(opaque, PCI_TESTDEV_BAR_REGS, offset, value, size);
}

static void bar1_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    regs_write(opaque, PCI_TESTDEV_BAR_IO, offset, value, size);
}

static uint64_t bar2_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pci_testdev *td = opaque;
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)td->mem[(offset + i) % PCI_TESTDEV_SCRATCH_SIZE] << (8 * i);
    return v;
}

static void bar2_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct pci_testdev *td = opaque;
    record(td, PCI_TESTDEV_BAR_MEM, offset, value, size);
    for (unsigned i = 0; i < size; i++)
        td->mem[(offset + i) % PCI_TESTDEV_SCRATCH_SIZE] = (uint8_t)(value >> (8 * i));
}

static const struct io_ops bar0_ops = {bar0_read, bar0_write};
static const struct io_ops bar1_ops = {bar0_read, bar1_write};
static const struct io_ops bar2_ops = {bar2_read, bar2_write};

void pci_testdev_reset(struct pci_testdev *td)
{
    td->scratch = 0;
    td->intx = 0;
    td->notify_result = 0;
    td->write_count = 0;
    td->last_bar = td->last_offset = td->last_size = 0;
    td->last_value = 0;
    td->dma_addr = 0;
    td->dma_value = td->dma_status = 0;
    memset(td->mem, 0, sizeof(td->mem));
    pci_set_irq(&td->pci, 0);
}

static int build(struct pci_testdev *td)
{
    struct pci_device *d = &td->pci;
    pci_device_init(d, &testdev_info);
    int r = pci_register_bar(d, PCI_TESTDEV_BAR_REGS, PCI_BAR_MEM32, PCI_TESTDEV_REGS_SIZE, &bar0_ops, td);
    if (r == 0)
        r = pci_register_bar(d, PCI_TESTDEV_BAR_IO, PCI_BAR_IO, PCI_TESTDEV_IO_SIZE, &bar1_ops, td);
    if (r == 0)
        r = pci_register_bar(d, PCI_TESTDEV_BAR_MEM, PCI_BAR_MEM64 | PCI_BAR_PREFETCH, PCI_TESTDEV_MEM_SIZE,
                             &bar2_ops, td);
    if (r == 0)
        r = pci_msi_init(d, PCI_TESTDEV_MSI_VECTORS, true, true);
    if (r >= 0)
        r = pci_msix_init(d, PCI_TESTDEV_MSIX_VECTORS, PCI_TESTDEV_BAR_REGS, PCI_TESTDEV_MSIX_TABLE,
                          PCI_TESTDEV_BAR_REGS, PCI_TESTDEV_MSIX_PBA);
    if (r >= 0)
        r = pci_add_ext_capability(d, PCI_EXT_CAP_ID_VNDR, 1, 16);
    if (r < 0)
        return r;
    /* VSEC header: ID 1, revision 0, length 16. */
    pci_config_set32(d, r + 4, 0x0001 | 16u << 20);
    pci_config_set_wmask(d, PCI_TESTDEV_VSEC_SCRATCH, 4, 0xffffffffu);
    pci_config_set32(d, PCI_TESTDEV_VSEC_MAGIC, PCI_TESTDEV_MAGIC);
    return 0;
}

struct pci_testdev *pci_testdev_new(struct pci_bus *bus, unsigned slot, unsigned fn, char **error)
{
    struct pci_testdev *td = g_new0(struct pci_testdev, 1);
    td->m = bus->m;
    int r = build(td);
    if (r == 0)
        r = pci_register_device(bus, &td->pci, slot, fn);
    if (r < 0) {
        *error = g_strdup_printf("slot %u function %u: %s", slot, fn, g_strerror(-r));
        pci_unregister_device(&td->pci);
        g_free(td);
        return NULL;
    }
    return td;
}

void pci_testdev_free(struct pci_testdev *td)
{
    if (!td)
        return;
    pci_unregister_device(&td->pci);
    g_free(td);
}

static struct pci_testdev *machine_testdev(struct machine *m)
{
    struct pci_device *d = m->pci ? pci_bus_get_device(m->pci, PCI_TESTDEV_SLOT, 0) : NULL;
    return d && d->name == testdev_name ? container_of(d, struct pci_testdev, pci) : NULL;
}

static int testdev_create(struct machine *m, char **error)
{
    if (!m->pci) {
        *error = g_strdup("needs the PCI host bridge (list pci-host before it)");
        return -EINVAL;
    }
    return pci_testdev_new(m->pci, PCI_TESTDEV_SLOT, 0, error) ? 0 : -EBUSY;
}

static void testdev_reset(struct machine *m)
{
    struct pci_testdev *td = machine_testdev(m);
    if (td)
        pci_testdev_reset(td);
}

static void testdev_destroy(struct machine *m)
{
    pci_testdev_free(machine_testdev(m));
}

const struct machine_device pci_testdev_device = {"pci-testdev", testdev_create, testdev_reset,
                                                  testdev_destroy};
