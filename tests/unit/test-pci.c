/* Proves PCI config space through CF8/CFC (IDs, absent functions, sub-dword accesses, read-only and RW1C
 * bits), BAR sizing and mapping as the command register and BARs change, capability lists and INTx
 * routing/sharing. */
#include <errno.h>

#include <glib.h>

#include "device_harness.h"
#include "machine.h"
#include "pci.h"
#include "pci_host.h"
#include "pci_testdev.h"

#define MiB (1024ULL * 1024)

static struct irq_recorder rec;

static const struct machine_device *const board[] = {&pci_host_device, &pci_testdev_device};

/* A machine with the host bridge and the test function at PCI_TESTDEV_SLOT, locked. */
static void machine_up(struct machine *m)
{
    dh_machine_init(m, board, G_N_ELEMENTS(board), 1, 64 * MiB);
    dh_record_irqs(m, &rec, DH_ANY_GSI | DH_MSI);
}

static struct pci_testdev *testdev(struct machine *m)
{
    struct pci_device *d = pci_bus_get_device(m->pci, PCI_TESTDEV_SLOT, 0);
    g_assert_nonnull(d);
    return container_of(d, struct pci_testdev, pci);
}

static struct pci_testdev *extra_testdev(struct machine *m, unsigned slot, unsigned fn)
{
    char *err = NULL;
    struct pci_testdev *td = pci_testdev_new(m->pci, slot, fn, &err);
    if (!td)
        g_error("pci_testdev_new: %s", err);
    return td;
}

static uint32_t cf8(unsigned bus, unsigned slot, unsigned fn, unsigned reg)
{
    return PCI_CONFIG_ADDRESS_ENABLE | bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t cfg_read_bus(struct machine *m, unsigned bus, unsigned slot, unsigned fn, unsigned reg,
                             unsigned size)
{
    dh_outl(m, PCI_CONFIG_ADDRESS, cf8(bus, slot, fn, reg));
    return (uint32_t)dh_pio_read_unchecked(m, PCI_CONFIG_DATA + (reg & 3), size);
}

static uint32_t cfg_read(struct machine *m, unsigned slot, unsigned fn, unsigned reg, unsigned size)
{
    return cfg_read_bus(m, 0, slot, fn, reg, size);
}

static void cfg_write(struct machine *m, unsigned slot, unsigned fn, unsigned reg, uint32_t v, unsigned size)
{
    dh_outl(m, PCI_CONFIG_ADDRESS, cf8(0, slot, fn, reg));
    dh_pio_write(m, PCI_CONFIG_DATA + (reg & 3), size, v);
}

static uint64_t mmio_read(struct machine *m, uint64_t addr, unsigned size, bool *hit)
{
    uint64_t v;
    bool ok = io_bus_read(&m->mmio, addr, size, &v);
    if (hit)
        *hit = ok;
    return v;
}

static bool mapped(struct io_bus *bus, uint64_t addr)
{
    return io_bus_find(bus, addr, 1) != NULL;
}

#define TD PCI_TESTDEV_SLOT
#define BAR(n) (PCI_BASE_ADDRESS_0 + 4 * (n))

/* ---------------------------------------------------------------- CF8/CFC */

static void test_cf8_host_bridge_ids(void)
{
    struct machine m;
    machine_up(&m);
    g_assert_cmphex(cfg_read(&m, 0, 0, PCI_VENDOR_ID, 4), ==, 0x00081b36);
    g_assert_cmphex(cfg_read(&m, 0, 0, PCI_VENDOR_ID, 2), ==, 0x1b36);
    g_assert_cmphex(cfg_read(&m, 0, 0, PCI_DEVICE_ID, 2), ==, 0x0008);
    g_assert_cmphex(cfg_read(&m, 0, 0, PCI_REVISION_ID, 4), ==, 0x06000000); /* class 06 00 00, rev 0 */
    g_assert_cmphex(cfg_read(&m, 0, 0, PCI_HEADER_TYPE, 1), ==, 0x00);
    g_assert_cmphex(cfg_read(&m, 0, 0, PCI_INTERRUPT_PIN, 1), ==, 0);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_VENDOR_ID, 4), ==, 0x00051b36);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_REVISION_ID, 4), ==, 0x00ff0000);
    dh_machine_fini(&m);
}

static void test_cf8_absent_reads_ones(void)
{
    struct machine m;
    machine_up(&m);
    g_assert_cmphex(cfg_read(&m, 5, 0, 0, 4), ==, 0xffffffff);
    g_assert_cmphex(cfg_read(&m, 5, 0, 2, 2), ==, 0xffff);
    g_assert_cmphex(cfg_read(&m, 5, 0, 3, 1), ==, 0xff);
    g_assert_cmphex(cfg_read(&m, TD, 1, 0, 4), ==, 0xffffffff);       /* function 1 of a present slot */
    g_assert_cmphex(cfg_read_bus(&m, 1, 0, 0, 0, 4), ==, 0xffffffff); /* no bus 1 */
    g_assert_cmphex(cfg_read_bus(&m, 255, TD, 0, 0, 4), ==, 0xffffffff);
    cfg_write(&m, 5, 0, PCI_COMMAND, 0xffff, 2); /* dropped, must not crash */
    g_assert_cmphex(cfg_read(&m, 5, 0, PCI_COMMAND, 2), ==, 0xffff);

    /* With the enable bit clear, data reads float and writes go nowhere. */
    io_bus_write(&m.pio, PCI_CONFIG_ADDRESS, 4,
                 cf8(0, 0, 0, PCI_INTERRUPT_LINE) & ~PCI_CONFIG_ADDRESS_ENABLE);
    g_assert_cmphex(dh_pio_read_unchecked(&m, PCI_CONFIG_DATA, 4), ==, 0xffffffff);
    io_bus_write(&m.pio, PCI_CONFIG_DATA, 1, 0x5a);
    g_assert_cmphex(cfg_read(&m, 0, 0, PCI_INTERRUPT_LINE, 1), ==, 0);
    cfg_write(&m, 0, 0, PCI_INTERRUPT_LINE, 0x5a, 1);
    g_assert_cmphex(cfg_read(&m, 0, 0, PCI_INTERRUPT_LINE, 1), ==, 0x5a);
    dh_machine_fini(&m);
}

static void test_cf8_sub_dword_accesses(void)
{
    struct machine m;
    machine_up(&m);
    io_bus_write(&m.pio, PCI_CONFIG_ADDRESS, 4, cf8(0, TD, 0, 0));
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcfc, 1), ==, 0x36);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcfd, 1), ==, 0x1b);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcfe, 1), ==, 0x05);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcff, 1), ==, 0x00);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcfd, 2), ==, 0x051b);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcfe, 2), ==, 0x0005);
    /* A dword at 0xCFD would cross 0xCFF: not decoded at all. */
    uint64_t v;
    g_assert_false(io_bus_read(&m.pio, 0xcfd, 4, &v));

    /* 0x3C: interrupt line (RW), pin (RO), min_gnt, max_lat (RO 0). */
    io_bus_write(&m.pio, PCI_CONFIG_ADDRESS, 4, cf8(0, TD, 0, PCI_INTERRUPT_LINE));
    io_bus_write(&m.pio, 0xcfc, 1, 0x0b);
    io_bus_write(&m.pio, 0xcfd, 1, 0x03);
    io_bus_write(&m.pio, 0xcfe, 2, 0xffff);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcfc, 4), ==, 0x0000010b);
    /* Cache line size byte at 0x0C; latency timer next to it stays 0. */
    io_bus_write(&m.pio, PCI_CONFIG_ADDRESS, 4, cf8(0, TD, 0, PCI_CACHE_LINE_SIZE));
    io_bus_write(&m.pio, 0xcfc, 2, 0xff10);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcfc, 4), ==, 0x00000010);
    dh_machine_fini(&m);
}

static void test_cf8_address_register(void)
{
    struct machine m;
    machine_up(&m);
    io_bus_write(&m.pio, PCI_CONFIG_ADDRESS, 4, 0x80000000);
    g_assert_cmphex(dh_pio_read_unchecked(&m, PCI_CONFIG_ADDRESS, 4), ==, 0x80000000);
    io_bus_write(&m.pio, PCI_CONFIG_ADDRESS, 4, 0xffffffff);
    g_assert_cmphex(dh_pio_read_unchecked(&m, PCI_CONFIG_ADDRESS, 4), ==, 0x80fffffc);
    /* Only dword accesses reach CONFIG_ADDRESS. */
    io_bus_write(&m.pio, 0xcfb, 1, 0x01);
    io_bus_write(&m.pio, 0xcf8, 2, 0x1234);
    g_assert_cmphex(dh_pio_read_unchecked(&m, PCI_CONFIG_ADDRESS, 4), ==, 0x80fffffc);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcf8, 1), ==, 0xff);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcfa, 2), ==, 0xffff);
    dh_machine_fini(&m);
}

/* ---------------------------------------------------------------- read-only and RW1C bits */

static void test_config_read_only_bits(void)
{
    struct machine m;
    machine_up(&m);
    struct pci_testdev *td = testdev(&m);
    cfg_write(&m, TD, 0, PCI_VENDOR_ID, 0xffffffff, 4);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_VENDOR_ID, 4), ==, 0x00051b36);
    cfg_write(&m, TD, 0, PCI_VENDOR_ID, 0, 2);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_VENDOR_ID, 2), ==, 0x1b36);
    cfg_write(&m, TD, 0, PCI_REVISION_ID, 0, 4);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_REVISION_ID, 4), ==, 0x00ff0000);
    cfg_write(&m, TD, 0, PCI_HEADER_TYPE, 0xff, 1);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_HEADER_TYPE, 1), ==, 0);
    cfg_write(&m, TD, 0, PCI_INTERRUPT_PIN, 4, 1);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_INTERRUPT_PIN, 1), ==, 1);
    cfg_write(&m, TD, 0, PCI_CAPABILITY_LIST, 0, 1);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_CAPABILITY_LIST, 1), ==, 0x40);

    /* Command: only the implemented bits stick. */
    cfg_write(&m, TD, 0, PCI_COMMAND, 0xffff, 2);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_COMMAND, 2), ==, 0x0547);
    cfg_write(&m, TD, 0, PCI_COMMAND, 0, 2);

    /* Status: error bits are write-1-to-clear, the rest read-only. */
    uint16_t errbits = PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_DETECTED_PARITY;
    pci_config_set16(&td->pci, PCI_STATUS, pci_config_get16(&td->pci, PCI_STATUS) | errbits);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_STATUS, 2), ==, PCI_STATUS_CAP_LIST | errbits);
    cfg_write(&m, TD, 0, PCI_STATUS, 0, 2);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_STATUS, 2), ==, PCI_STATUS_CAP_LIST | errbits);
    cfg_write(&m, TD, 0, PCI_STATUS, PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT,
              2);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_STATUS, 2), ==, PCI_STATUS_CAP_LIST | PCI_STATUS_DETECTED_PARITY);
    /* A dword write at 0x04 with the status half zero leaves status alone. */
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_SERR, 4);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_COMMAND, 4), ==,
                    (uint32_t)(PCI_STATUS_CAP_LIST | PCI_STATUS_DETECTED_PARITY) << 16 | PCI_COMMAND_SERR);
    dh_machine_fini(&m);
}

/* ---------------------------------------------------------------- BARs */

static void test_bar_sizing(void)
{
    struct machine m;
    machine_up(&m);
    for (unsigned n = 0; n < 6; n++)
        cfg_write(&m, TD, 0, BAR(n), 0xffffffff, 4);
    cfg_write(&m, TD, 0, PCI_ROM_ADDRESS, 0xffffffff, 4);
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(0), 4), ==, 0xfffff000); /* 4 KiB, 32-bit, non-prefetchable */
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(1), 4), ==, 0xffffffe1); /* 32 bytes of I/O */
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(2), 4), ==, 0xfff0000c); /* 1 MiB, 64-bit, prefetchable */
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(3), 4), ==, 0xffffffff); /* its high dword */
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(4), 4), ==, 0);
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(5), 4), ==, 0);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_ROM_ADDRESS, 4), ==, 0);
    /* Restoring after sizing. */
    cfg_write(&m, TD, 0, BAR(0), 0xc0001000, 4);
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(0), 4), ==, 0xc0001000);
    cfg_write(&m, TD, 0, BAR(0), 0xc0001abc, 4); /* bits below the size do not stick */
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(0), 4), ==, 0xc0001000);
    cfg_write(&m, TD, 0, BAR(1), 0, 4);
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(1), 4), ==, 0x00000001);
    /* No decoding was on, so nothing appeared on the buses. */
    g_assert_false(mapped(&m.mmio, 0xc0001000));
    g_assert_false(mapped(&m.mmio, 0xfffff000));
    dh_machine_fini(&m);
}

static void test_bar_command_toggles_mapping(void)
{
    struct machine m;
    machine_up(&m);
    bool hit;
    cfg_write(&m, TD, 0, BAR(0), 0xc0001000, 4);
    g_assert_false(mapped(&m.mmio, 0xc0001000));
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    g_assert_cmphex(mmio_read(&m, 0xc0001000 + PCI_TESTDEV_ID, 4, &hit), ==, PCI_TESTDEV_MAGIC);
    g_assert_true(hit);
    g_assert_true(io_bus_write(&m.mmio, 0xc0001000 + PCI_TESTDEV_SCRATCH, 4, 0xdeadbeef));
    g_assert_cmphex(mmio_read(&m, 0xc0001000 + PCI_TESTDEV_SCRATCH, 4, NULL), ==, 0xdeadbeef);
    g_assert_cmphex(testdev(&m)->scratch, ==, 0xdeadbeef);
    /* The BAR handler sees the offset within the BAR. */
    g_assert_cmphex(mmio_read(&m, 0xc0001000 + PCI_TESTDEV_LAST_OFFSET, 4, NULL), ==, PCI_TESTDEV_SCRATCH);

    cfg_write(&m, TD, 0, PCI_COMMAND, 0, 2);
    g_assert_cmphex(mmio_read(&m, 0xc0001000, 4, &hit), ==, 0xffffffff);
    g_assert_false(hit);
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_IO, 2); /* I/O decoding does not map memory BARs */
    g_assert_false(mapped(&m.mmio, 0xc0001000));
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    g_assert_true(mapped(&m.mmio, 0xc0001000));
    /* A BAR left at 0 is "unassigned" and never decodes. */
    g_assert_false(mapped(&m.mmio, 0));
    dh_machine_fini(&m);
}

static void test_bar_move(void)
{
    struct machine m;
    machine_up(&m);
    cfg_write(&m, TD, 0, BAR(0), 0xc0001000, 4);
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    io_bus_write(&m.mmio, 0xc0001000 + PCI_TESTDEV_SCRATCH, 4, 0x1234);
    cfg_write(&m, TD, 0, BAR(0), 0xd0000000, 4);
    bool hit;
    mmio_read(&m, 0xc0001000, 4, &hit);
    g_assert_false(hit);
    g_assert_cmphex(mmio_read(&m, 0xd0000000 + PCI_TESTDEV_SCRATCH, 4, &hit), ==, 0x1234);
    g_assert_true(hit);
    g_assert_cmphex(mmio_read(&m, 0xd0000000 + PCI_TESTDEV_ID, 4, NULL), ==, PCI_TESTDEV_MAGIC);
    /* Exactly one region for the BAR: the last byte is there, the byte after is not. */
    g_assert_true(mapped(&m.mmio, 0xd0000fff));
    g_assert_false(mapped(&m.mmio, 0xd0001000));
    /* Sizing with decoding on parks the BAR at the top; restoring brings it back. */
    cfg_write(&m, TD, 0, BAR(0), 0xffffffff, 4);
    g_assert_false(mapped(&m.mmio, 0xd0000000));
    g_assert_true(mapped(&m.mmio, 0xfffff000));
    cfg_write(&m, TD, 0, BAR(0), 0xd0000000, 4);
    g_assert_false(mapped(&m.mmio, 0xfffff000));
    g_assert_true(mapped(&m.mmio, 0xd0000000));
    dh_machine_fini(&m);
}

static void test_bar_mem64_high_dword(void)
{
    struct machine m;
    machine_up(&m);
    struct pci_testdev *td = testdev(&m);
    cfg_write(&m, TD, 0, BAR(2), 0x00200000, 4);
    cfg_write(&m, TD, 0, BAR(3), 0x00000008, 4);
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(2), 4), ==, 0x0020000c);
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(3), 4), ==, 0x00000008);
    g_assert_cmphex(pci_bar_address(&td->pci, 2), ==, 0x800200000ULL);
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    g_assert_true(io_bus_write(&m.mmio, 0x800200000ULL + 0x10, 8, 0x0102030405060708ULL));
    g_assert_cmphex(mmio_read(&m, 0x800200000ULL + 0x10, 8, NULL), ==, 0x0102030405060708ULL);
    /* The 4 KiB scratch repeats over the whole 1 MiB BAR. */
    g_assert_cmphex(mmio_read(&m, 0x800200000ULL + 0xff010, 4, NULL), ==, 0x05060708);
    g_assert_true(mapped(&m.mmio, 0x800200000ULL + 0xfffff));
    g_assert_false(mapped(&m.mmio, 0x800200000ULL + 0x100000));
    g_assert_false(mapped(&m.mmio, 0x200000));
    /* Changing only the high dword moves the BAR. */
    cfg_write(&m, TD, 0, BAR(3), 0x00000009, 4);
    g_assert_false(mapped(&m.mmio, 0x800200000ULL));
    g_assert_true(mapped(&m.mmio, 0x900200000ULL));
    g_assert_cmphex(td->last_bar, ==, PCI_TESTDEV_BAR_MEM);
    g_assert_cmphex(td->last_size, ==, 8);
    dh_machine_fini(&m);
}

static void test_bar_io(void)
{
    struct machine m;
    machine_up(&m);
    cfg_write(&m, TD, 0, BAR(1), 0xc040, 4);
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(1), 4), ==, 0xc041);
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    g_assert_false(mapped(&m.pio, 0xc040));
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_IO, 2);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xc040 + PCI_TESTDEV_ID, 4), ==, PCI_TESTDEV_MAGIC);
    g_assert_true(io_bus_write(&m.pio, 0xc040 + PCI_TESTDEV_SCRATCH, 4, 0xcafe));
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xc040 + PCI_TESTDEV_SCRATCH, 2), ==, 0xcafe);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xc040 + PCI_TESTDEV_LAST_BAR, 4), ==, PCI_TESTDEV_BAR_IO);
    g_assert_true(mapped(&m.pio, 0xc05f));
    g_assert_false(mapped(&m.pio, 0xc060));
    /* Beyond port 0xFFFF an I/O BAR cannot decode. */
    cfg_write(&m, TD, 0, BAR(1), 0x10000, 4);
    g_assert_false(mapped(&m.pio, 0xc040));
    g_assert_false(mapped(&m.pio, 0x10000));
    dh_machine_fini(&m);
}

static void test_bar_overlap_left_unmapped(void)
{
    struct machine m;
    machine_up(&m);
    struct pci_testdev *a = testdev(&m), *b = extra_testdev(&m, 4, 0);
    cfg_write(&m, TD, 0, BAR(0), 0xc0000000, 4);
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    cfg_write(&m, 4, 0, BAR(0), 0xc0000000, 4);
    cfg_write(&m, 4, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    g_assert_true(a->pci.bars[0].mapped);
    g_assert_false(b->pci.bars[0].mapped);
    io_bus_write(&m.mmio, 0xc0000000 + PCI_TESTDEV_SCRATCH, 4, 7);
    g_assert_cmphex(a->scratch, ==, 7);
    g_assert_cmphex(b->scratch, ==, 0);
    /* Partial overlap too. */
    cfg_write(&m, 4, 0, BAR(2), 0xc0000000, 4);
    g_assert_false(b->pci.bars[2].mapped);
    /* Once moved somewhere free, it decodes. */
    cfg_write(&m, 4, 0, BAR(0), 0xc0002000, 4);
    g_assert_true(b->pci.bars[0].mapped);
    /* A memory BAR over RAM is refused. */
    cfg_write(&m, 4, 0, BAR(0), 0x00100000, 4);
    g_assert_false(b->pci.bars[0].mapped);
    g_assert_false(mapped(&m.mmio, 0x00100000));
    pci_testdev_free(b);
    dh_machine_fini(&m);
}

static void test_bar_register_validation(void)
{
    static struct pci_device d;
    static const struct pci_device_info info = {.name = "x", .vendor_id = 1};
    pci_device_init(&d, &info);
    g_assert_cmpint(pci_register_bar(&d, 6, PCI_BAR_MEM32, 4096, NULL, NULL), ==, -EINVAL);
    g_assert_cmpint(pci_register_bar(&d, 0, PCI_BAR_MEM32, 4097, NULL, NULL), ==, -EINVAL);
    g_assert_cmpint(pci_register_bar(&d, 0, PCI_BAR_MEM32, 8, NULL, NULL), ==, -EINVAL);
    g_assert_cmpint(pci_register_bar(&d, 0, PCI_BAR_IO, 512, NULL, NULL), ==, -EINVAL);
    g_assert_cmpint(pci_register_bar(&d, 0, PCI_BAR_IO | PCI_BAR_PREFETCH, 16, NULL, NULL), ==, -EINVAL);
    g_assert_cmpint(pci_register_bar(&d, 5, PCI_BAR_MEM64, 4096, NULL, NULL), ==, -EINVAL);
    g_assert_cmpint(pci_register_bar(&d, 0, PCI_BAR_MEM32, 0x100000000ULL, NULL, NULL), ==, -EINVAL);
    g_assert_cmpint(pci_register_bar(&d, 1, PCI_BAR_MEM64, 0x100000000ULL, NULL, NULL), ==, 0);
    g_assert_cmpint(pci_register_bar(&d, 2, PCI_BAR_MEM32, 4096, NULL, NULL), ==,
                    -EINVAL); /* high half of 1 */
    g_assert_cmpint(pci_register_bar(&d, 0, PCI_BAR_MEM64, 4096, NULL, NULL), ==, -EINVAL); /* would take 1 */
    g_assert_cmpint(pci_register_bar(&d, 1, PCI_BAR_MEM32, 4096, NULL, NULL), ==, -EINVAL); /* taken */
    /* A 4 GiB 64-bit BAR sizes as 0 in the low dword's address bits and ~0 << 0 in the high one. */
    g_assert_cmphex(d.wmask[BAR(1)] | d.wmask[BAR(1) + 1] << 8 | d.wmask[BAR(1) + 2] << 16, ==, 0);
    g_assert_cmphex(le32_load(&d.wmask[BAR(2)]), ==, 0xffffffff);
    pci_unregister_device(&d);
}

/* ---------------------------------------------------------------- capabilities */

static void test_caps_list_walk(void)
{
    struct machine m;
    machine_up(&m);
    g_assert_true(cfg_read(&m, TD, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    g_assert_false(cfg_read(&m, 0, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    unsigned ids[8], offs[8], n = 0;
    unsigned off = cfg_read(&m, TD, 0, PCI_CAPABILITY_LIST, 1);
    while (off && n < 8) {
        offs[n] = off;
        ids[n++] = cfg_read(&m, TD, 0, off, 1);
        off = cfg_read(&m, TD, 0, off + 1, 1);
    }
    g_assert_cmpuint(n, ==, 2);
    g_assert_cmphex(ids[0], ==, PCI_CAP_ID_MSI);
    g_assert_cmphex(offs[0], ==, 0x40);
    g_assert_cmphex(ids[1], ==, PCI_CAP_ID_MSIX);
    g_assert_cmphex(offs[1], ==, 0x58); /* after the 0x18-byte 64-bit maskable MSI capability */
    /* MSI-X table/PBA pointers: BIR 0, offsets 0x800 and 0xC00; 8 vectors. */
    g_assert_cmphex(cfg_read(&m, TD, 0, 0x58 + PCI_MSIX_FLAGS, 2), ==, 7);
    g_assert_cmphex(cfg_read(&m, TD, 0, 0x58 + PCI_MSIX_TABLE, 4), ==, 0x800);
    g_assert_cmphex(cfg_read(&m, TD, 0, 0x58 + PCI_MSIX_PBA, 4), ==, 0xc00);
    /* Writing the ID or next pointer changes nothing. */
    cfg_write(&m, TD, 0, 0x40, 0xffff, 2);
    g_assert_cmphex(cfg_read(&m, TD, 0, 0x40, 2), ==, 0x5805);
    dh_machine_fini(&m);
}

static void test_caps_builder(void)
{
    static struct pci_device d;
    static const struct pci_device_info info = {.name = "x", .vendor_id = 1};
    pci_device_init(&d, &info);
    g_assert_cmpint(pci_add_capability(&d, PCI_CAP_ID_VNDR, 1), ==, -EINVAL);
    g_assert_cmpint(pci_add_capability(&d, PCI_CAP_ID_VNDR, 6), ==, 0x40);
    g_assert_cmpint(pci_add_capability(&d, PCI_CAP_ID_PM, 8), ==, 0x48); /* dword aligned after 0x46 */
    g_assert_cmpint(pci_add_capability(&d, PCI_CAP_ID_VNDR, 0xa0), ==, 0x50);
    g_assert_cmpint(pci_add_capability(&d, PCI_CAP_ID_VNDR, 0x20), ==, -ENOSPC);
    g_assert_cmpint(pci_add_capability(&d, PCI_CAP_ID_EXP, 0x10), ==, 0x100 - 0x10);
    g_assert_cmphex(d.config[PCI_CAPABILITY_LIST], ==, 0x40);
    g_assert_cmphex(d.config[0x41], ==, 0x48);
    g_assert_cmphex(d.config[0x49], ==, 0x50);
    g_assert_cmphex(d.config[0x51], ==, 0xf0);
    g_assert_cmphex(d.config[0xf1], ==, 0);
    g_assert_cmpuint(pci_find_capability(&d, PCI_CAP_ID_PM), ==, 0x48);
    g_assert_cmpuint(pci_find_capability(&d, PCI_CAP_ID_EXP), ==, 0xf0);
    g_assert_cmpuint(pci_find_capability(&d, PCI_CAP_ID_MSI), ==, 0);
    /* Extended capabilities need the 4 KiB config space. */
    g_assert_cmpint(pci_add_ext_capability(&d, PCI_EXT_CAP_ID_VNDR, 1, 8), ==, -EINVAL);
    /* A hostile loop in the list still terminates. */
    d.config[0xf1] = 0x40;
    g_assert_cmpuint(pci_find_capability(&d, PCI_CAP_ID_MSI), ==, 0);
}

/* ---------------------------------------------------------------- INTx */

static void test_intx_routing_formula(void)
{
    g_assert_cmpuint(pci_intx_gsi(0, 0), ==, 16);
    g_assert_cmpuint(pci_intx_gsi(1, 0), ==, 17);
    g_assert_cmpuint(pci_intx_gsi(3, 0), ==, 19);
    g_assert_cmpuint(pci_intx_gsi(4, 0), ==, 16);
    g_assert_cmpuint(pci_intx_gsi(3, 1), ==, 16);
    g_assert_cmpuint(pci_intx_gsi(2, 3), ==, 17);
    g_assert_cmpuint(pci_intx_gsi(31, 0), ==, 19);
    g_assert_cmpuint(pci_intx_gsi(31, 3), ==, 18);

    /* The test function at slot 31 INTA really drives GSI 19. */
    struct machine m;
    machine_up(&m);
    pci_set_irq(&testdev(&m)->pci, 1);
    g_assert_cmpint(rec.level[19], ==, 1);
    for (unsigned g = 0; g < MACHINE_GSI_COUNT; g++)
        g_assert_cmpuint(rec.calls[g], ==, g == 19 ? 1 : 0);
    pci_set_irq(&testdev(&m)->pci, 0);
    g_assert_cmpint(rec.level[19], ==, 0);
    /* Through the device's register, with the status bit following. */
    cfg_write(&m, TD, 0, BAR(0), 0xc0000000, 4);
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    io_bus_write(&m.mmio, 0xc0000000 + PCI_TESTDEV_INTX, 4, 1);
    g_assert_cmpint(rec.level[19], ==, 1);
    g_assert_true(cfg_read(&m, TD, 0, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    io_bus_write(&m.mmio, 0xc0000000 + PCI_TESTDEV_INTX, 4, 0);
    g_assert_cmpint(rec.level[19], ==, 0);
    g_assert_false(cfg_read(&m, TD, 0, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    dh_machine_fini(&m);
}

static void test_intx_shared_line(void)
{
    struct machine m;
    machine_up(&m);
    /* Slots 1 and 5, INTA: both on GSI 17. */
    struct pci_testdev *a = extra_testdev(&m, 1, 0), *b = extra_testdev(&m, 5, 0);
    pci_set_irq(&a->pci, 1);
    g_assert_cmpint(rec.level[17], ==, 1);
    pci_set_irq(&b->pci, 1);
    g_assert_cmpint(rec.level[17], ==, 1);
    pci_set_irq(&a->pci, 0);
    g_assert_cmpint(rec.level[17], ==, 1); /* b still holds it */
    pci_set_irq(&b->pci, 0);
    g_assert_cmpint(rec.level[17], ==, 0);
    g_assert_cmpuint(rec.calls[17], ==, 2); /* one rise, one fall */
    /* Unplugging a function that holds the line releases it. */
    pci_set_irq(&a->pci, 1);
    g_assert_cmpint(rec.level[17], ==, 1);
    pci_testdev_free(a);
    g_assert_cmpint(rec.level[17], ==, 0);
    pci_testdev_free(b);
    dh_machine_fini(&m);
}

static void test_intx_disable_bit(void)
{
    struct machine m;
    machine_up(&m);
    struct pci_device *d = &testdev(&m)->pci;
    pci_set_irq(d, 1);
    g_assert_cmpint(rec.level[19], ==, 1);
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, 2);
    g_assert_cmpint(rec.level[19], ==, 0);
    /* The status bit still shows the device's request. */
    g_assert_true(cfg_read(&m, TD, 0, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    pci_set_irq(d, 0);
    pci_set_irq(d, 1);
    g_assert_cmpint(rec.level[19], ==, 0);
    cfg_write(&m, TD, 0, PCI_COMMAND, 0, 2);
    g_assert_cmpint(rec.level[19], ==, 1);
    pci_set_irq(d, 0);
    g_assert_cmpint(rec.level[19], ==, 0);
    g_assert_cmpuint(rec.calls[19], ==, 4);
    dh_machine_fini(&m);
}

/* ---------------------------------------------------------------- the bus */

static void test_multifunction_header_bit(void)
{
    struct machine m;
    machine_up(&m);
    struct pci_testdev *f0 = extra_testdev(&m, 2, 0);
    g_assert_cmphex(cfg_read(&m, 2, 0, PCI_HEADER_TYPE, 1), ==, 0x00);
    struct pci_testdev *f3 = extra_testdev(&m, 2, 3);
    g_assert_cmphex(cfg_read(&m, 2, 0, PCI_HEADER_TYPE, 1), ==, 0x80);
    g_assert_cmphex(cfg_read(&m, 2, 3, PCI_HEADER_TYPE, 1), ==, 0x80);
    g_assert_cmphex(cfg_read(&m, 2, 3, PCI_VENDOR_ID, 2), ==, 0x1b36);
    g_assert_cmphex(cfg_read(&m, 2, 1, PCI_VENDOR_ID, 2), ==, 0xffff);
    pci_testdev_free(f3);
    g_assert_cmphex(cfg_read(&m, 2, 0, PCI_HEADER_TYPE, 1), ==, 0x00);
    g_assert_cmphex(cfg_read(&m, 2, 3, PCI_VENDOR_ID, 2), ==, 0xffff);
    pci_testdev_free(f0);
    dh_machine_fini(&m);
}

static void test_register_rejects_bad_slots(void)
{
    struct machine m;
    machine_up(&m);
    char *err = NULL;
    g_assert_null(pci_testdev_new(m.pci, 0, 0, &err)); /* the host bridge */
    g_assert_nonnull(err);
    g_free(err);
    err = NULL;
    g_assert_null(pci_testdev_new(m.pci, 32, 0, &err));
    g_free(err);
    err = NULL;
    g_assert_null(pci_testdev_new(m.pci, 1, 8, &err));
    g_free(err);
    g_assert_null(pci_bus_get_device(m.pci, 32, 0));
    g_assert_null(pci_bus_get_device(m.pci, 1, 8));
    dh_machine_fini(&m);
}

static void test_reset_clears_guest_state(void)
{
    struct machine m;
    machine_up(&m);
    struct pci_testdev *td = testdev(&m);
    cfg_write(&m, TD, 0, BAR(0), 0xc0000000, 4);
    cfg_write(&m, TD, 0, PCI_INTERRUPT_LINE, 11, 1);
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    io_bus_write(&m.mmio, 0xc0000000 + PCI_TESTDEV_SCRATCH, 4, 5);
    io_bus_write(&m.mmio, 0xc0000000 + PCI_TESTDEV_INTX, 4, 1);
    g_assert_cmpint(rec.level[19], ==, 1);
    machine_reset(&m);
    g_assert_cmphex(dh_pio_read_unchecked(&m, PCI_CONFIG_ADDRESS, 4), ==, 0);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_COMMAND, 2), ==, 0);
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(0), 4), ==, 0);
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(1), 4), ==, 1);
    g_assert_cmphex(cfg_read(&m, TD, 0, BAR(2), 4), ==, 0xc);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_INTERRUPT_LINE, 1), ==, 0);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_INTERRUPT_PIN, 1), ==, 1);
    g_assert_cmphex(cfg_read(&m, TD, 0, PCI_VENDOR_ID, 4), ==, 0x00051b36);
    g_assert_false(mapped(&m.mmio, 0xc0000000));
    g_assert_cmpint(rec.level[19], ==, 0);
    g_assert_cmphex(td->scratch, ==, 0);
    dh_machine_fini(&m);
}

static void test_testdev_dma_needs_bus_master(void)
{
    struct machine m;
    machine_up(&m);
    const uint64_t r = 0xc0000000;
    cfg_write(&m, TD, 0, BAR(0), (uint32_t)r, 4);
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    io_bus_write(&m.mmio, r + PCI_TESTDEV_DMA_ADDR_LO, 4, 0x2000);
    io_bus_write(&m.mmio, r + PCI_TESTDEV_DMA_VALUE, 4, 0x600dcafe);
    io_bus_write(&m.mmio, r + PCI_TESTDEV_DMA_CTRL, 4, PCI_TESTDEV_DMA_WRITE);
    g_assert_cmphex(mmio_read(&m, r + PCI_TESTDEV_DMA_STATUS, 4, NULL), ==, PCI_TESTDEV_DMA_NO_MASTER);
    uint32_t v;
    g_assert_cmpint(guest_mem_read_u32(&m.mem, 0x2000, &v), ==, 0);
    g_assert_cmphex(v, ==, 0);
    cfg_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    io_bus_write(&m.mmio, r + PCI_TESTDEV_DMA_CTRL, 4, PCI_TESTDEV_DMA_WRITE);
    g_assert_cmphex(mmio_read(&m, r + PCI_TESTDEV_DMA_STATUS, 4, NULL), ==, PCI_TESTDEV_DMA_OK);
    g_assert_cmpint(guest_mem_read_u32(&m.mem, 0x2000, &v), ==, 0);
    g_assert_cmphex(v, ==, 0x600dcafe);
    /* Outside RAM is a fault, not a crash. */
    io_bus_write(&m.mmio, r + PCI_TESTDEV_DMA_ADDR_LO, 4, 0xfffffffe);
    io_bus_write(&m.mmio, r + PCI_TESTDEV_DMA_CTRL, 4, PCI_TESTDEV_DMA_READ);
    g_assert_cmphex(mmio_read(&m, r + PCI_TESTDEV_DMA_STATUS, 4, NULL), ==, PCI_TESTDEV_DMA_FAULT);
    /* Writes are recorded whatever their size. */
    io_bus_write(&m.mmio, r + 0x101, 1, 0xab);
    g_assert_cmphex(mmio_read(&m, r + PCI_TESTDEV_LAST_OFFSET, 4, NULL), ==, 0x101);
    g_assert_cmphex(mmio_read(&m, r + PCI_TESTDEV_LAST_SIZE, 4, NULL), ==, 1);
    g_assert_cmphex(mmio_read(&m, r + PCI_TESTDEV_LAST_VALUE_LO, 4, NULL), ==, 0xab);
    g_assert_cmphex(mmio_read(&m, r + PCI_TESTDEV_WRITE_COUNT, 4, NULL), ==, 7);
    dh_machine_fini(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pci/cf8/host-bridge-ids", test_cf8_host_bridge_ids);
    g_test_add_func("/pci/cf8/absent-function-reads-all-ones", test_cf8_absent_reads_ones);
    g_test_add_func("/pci/cf8/byte-and-word-accesses-at-cfc-offsets", test_cf8_sub_dword_accesses);
    g_test_add_func("/pci/cf8/address-register-dword-only", test_cf8_address_register);
    g_test_add_func("/pci/config/read-only-and-rw1c-bits", test_config_read_only_bits);
    g_test_add_func("/pci/bar/sizing-each-type", test_bar_sizing);
    g_test_add_func("/pci/bar/command-register-maps-and-unmaps", test_bar_command_toggles_mapping);
    g_test_add_func("/pci/bar/move-unmaps-old-address", test_bar_move);
    g_test_add_func("/pci/bar/mem64-high-dword", test_bar_mem64_high_dword);
    g_test_add_func("/pci/bar/io-bar", test_bar_io);
    g_test_add_func("/pci/bar/overlap-left-unmapped", test_bar_overlap_left_unmapped);
    g_test_add_func("/pci/bar/register-validates-type-and-size", test_bar_register_validation);
    g_test_add_func("/pci/caps/list-walk", test_caps_list_walk);
    g_test_add_func("/pci/caps/builder-aligns-links-and-bounds", test_caps_builder);
    g_test_add_func("/pci/intx/routing-formula", test_intx_routing_formula);
    g_test_add_func("/pci/intx/shared-line-stays-high-until-all-drop", test_intx_shared_line);
    g_test_add_func("/pci/intx/disable-bit-masks-line-not-status", test_intx_disable_bit);
    g_test_add_func("/pci/bus/multifunction-header-bit", test_multifunction_header_bit);
    g_test_add_func("/pci/bus/register-rejects-bad-or-taken-slots", test_register_rejects_bad_slots);
    g_test_add_func("/pci/reset/clears-guest-state", test_reset_clears_guest_state);
    g_test_add_func("/pci/testdev/dma-needs-bus-master", test_testdev_dma_needs_bus_master);
    return g_test_run();
}
