/* Proves the I/O APIC: register select/window, ID and version, redirection entries with their read-only bits,
 * edge delivery on rising edges, masking, level pins with remote IRR and EOI, and the MSI-format messages. */
#include <glib.h>

#include "device_harness.h"
#include "ioapic.h"
#include "log.h"
#include "machine.h"

struct fixture {
    struct machine m;
    struct irq_recorder irqs;
};

static const struct machine_device *const devices[] = {&ioapic_device};

static void setup(struct fixture *f)
{
    dh_machine_init(&f->m, devices, G_N_ELEMENTS(devices), 1, 1 << 20);
    g_assert_nonnull(f->m.ioapic);
    dh_record_irqs(&f->m, &f->irqs, DH_ANY_GSI | DH_MSI);
}

static void teardown(struct fixture *f)
{
    dh_machine_fini(&f->m);
}

static uint32_t mmio_read(struct fixture *f, uint64_t offset)
{
    return dh_readl(&f->m, IOAPIC_BASE + offset);
}

static void mmio_write(struct fixture *f, uint64_t offset, uint32_t v)
{
    dh_writel(&f->m, IOAPIC_BASE + offset, v);
}

static uint32_t reg_read(struct fixture *f, uint32_t index)
{
    mmio_write(f, IOAPIC_IOREGSEL, index);
    return mmio_read(f, IOAPIC_IOWIN);
}

static void reg_write(struct fixture *f, uint32_t index, uint32_t v)
{
    mmio_write(f, IOAPIC_IOREGSEL, index);
    mmio_write(f, IOAPIC_IOWIN, v);
}

static void set_entry(struct fixture *f, unsigned pin, uint64_t e)
{
    reg_write(f, IOAPIC_REG_REDTBL + 2 * pin + 1, e >> 32);
    reg_write(f, IOAPIC_REG_REDTBL + 2 * pin, (uint32_t)e);
}

static uint64_t get_entry(struct fixture *f, unsigned pin)
{
    return (uint64_t)reg_read(f, IOAPIC_REG_REDTBL + 2 * pin + 1) << 32 |
           reg_read(f, IOAPIC_REG_REDTBL + 2 * pin);
}

static void test_select_window(void)
{
    struct fixture f;
    setup(&f);
    mmio_write(&f, IOAPIC_IOREGSEL, 0x12);
    g_assert_cmphex(mmio_read(&f, IOAPIC_IOREGSEL), ==, 0x12);
    mmio_write(&f, IOAPIC_IOREGSEL, 0xABCD0113); /* an 8-bit register */
    g_assert_cmphex(mmio_read(&f, IOAPIC_IOREGSEL), ==, 0x13);
    /* the window shows whichever register is selected */
    reg_write(&f, 0x12, 0xA5);
    g_assert_cmphex(reg_read(&f, 0x12), ==, 0xA5);
    g_assert_cmphex(reg_read(&f, 0x13), ==, 0x00);
    /* byte reads of the window */
    mmio_write(&f, IOAPIC_IOREGSEL, IOAPIC_REG_VER);
    uint64_t b = 0;
    g_assert_true(io_bus_read(&f.m.mmio, IOAPIC_BASE + IOAPIC_IOWIN + 2, 1, &b));
    g_assert_cmphex(b, ==, 0x17);
    teardown(&f);
}

static void test_id_version(void)
{
    struct fixture f;
    setup(&f);
    g_assert_cmphex(reg_read(&f, IOAPIC_REG_ID), ==, 0);
    g_assert_cmphex(reg_read(&f, IOAPIC_REG_VER), ==, 0x00170020);
    reg_write(&f, IOAPIC_REG_ID, 0xFFFFFFFF);
    g_assert_cmphex(reg_read(&f, IOAPIC_REG_ID), ==, 0x0F000000);
    g_assert_cmphex(reg_read(&f, IOAPIC_REG_ARB), ==, 0x0F000000);
    reg_write(&f, IOAPIC_REG_VER, 0);
    g_assert_cmphex(reg_read(&f, IOAPIC_REG_VER), ==, 0x00170020);
    teardown(&f);
}

static void test_redirection_rw(void)
{
    struct fixture f;
    setup(&f);
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++)
        g_assert_cmphex(get_entry(&f, pin), ==, 0x10000); /* masked at reset */
    reg_write(&f, IOAPIC_REG_REDTBL + 2 * 23, 0xFFFFFFFF);
    reg_write(&f, IOAPIC_REG_REDTBL + 2 * 23 + 1, 0xFFFFFFFF);
    /* delivery status and remote IRR are read-only, bits 17-55 reserved */
    g_assert_cmphex(get_entry(&f, 23), ==, 0xFF0000000001AFFFull);
    g_assert_cmphex(get_entry(&f, 22), ==, 0x10000);
    /* remote IRR set by a level delivery survives a write that tries to clear it */
    set_entry(&f, 5, 0x0300000000008031ull);
    ioapic_set_irq(f.m.ioapic, 5, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    g_assert_cmphex(get_entry(&f, 5), ==, 0x030000000000C031ull);
    reg_write(&f, IOAPIC_REG_REDTBL + 10, 0x00008032);
    g_assert_cmphex(get_entry(&f, 5), ==, 0x030000000000C032ull);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    teardown(&f);
}

static void test_edge_rising_only(void)
{
    struct fixture f;
    setup(&f);
    set_entry(&f, 4, 0x0100000000000030ull);
    ioapic_set_irq(f.m.ioapic, 4, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    ioapic_set_irq(f.m.ioapic, 4, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    ioapic_set_irq(f.m.ioapic, 4, 0);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    ioapic_set_irq(f.m.ioapic, 4, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 2);
    g_assert_cmphex(f.irqs.msi[1].address, ==, 0xFEE01000);
    g_assert_cmphex(f.irqs.msi[1].data, ==, 0x30);
    g_assert_cmphex(get_entry(&f, 4) & IOAPIC_RTE_REMOTE_IRR, ==, 0); /* edge never sets remote IRR */
    teardown(&f);
}

static void test_masked_edge_lost(void)
{
    struct fixture f;
    setup(&f);
    set_entry(&f, 3, 0x10031);
    ioapic_set_irq(f.m.ioapic, 3, 1);
    ioapic_set_irq(f.m.ioapic, 3, 0);
    set_entry(&f, 3, 0x00031);
    g_assert_cmpuint(f.irqs.nmsi, ==, 0);
    /* an edge input still high when unmasked does not fire either */
    set_entry(&f, 3, 0x10031);
    ioapic_set_irq(f.m.ioapic, 3, 1);
    set_entry(&f, 3, 0x00031);
    g_assert_cmpuint(f.irqs.nmsi, ==, 0);
    ioapic_set_irq(f.m.ioapic, 3, 0);
    ioapic_set_irq(f.m.ioapic, 3, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    teardown(&f);
}

static void test_level_masked_then_unmasked(void)
{
    struct fixture f;
    setup(&f);
    set_entry(&f, 16, 0x000000000001A041ull); /* level, active low, masked */
    ioapic_set_irq(f.m.ioapic, 16, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 0);
    set_entry(&f, 16, 0x000000000000A041ull);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    g_assert_cmphex(f.irqs.msi[0].data, ==, 0xC041);
    g_assert_cmphex(get_entry(&f, 16) & IOAPIC_RTE_REMOTE_IRR, ==, IOAPIC_RTE_REMOTE_IRR);
    /* released while masked: nothing on unmask */
    set_entry(&f, 17, 0x000000000001A042ull);
    ioapic_set_irq(f.m.ioapic, 17, 1);
    ioapic_set_irq(f.m.ioapic, 17, 0);
    set_entry(&f, 17, 0x000000000000A042ull);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    teardown(&f);
}

static void test_level_eoi_redelivery(void)
{
    struct fixture f;
    setup(&f);
    set_entry(&f, 16, 0x000000000000A041ull);
    set_entry(&f, 18, 0x000000000000A042ull);
    ioapic_set_irq(f.m.ioapic, 16, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    ioapic_set_irq(f.m.ioapic, 16, 0);
    ioapic_set_irq(f.m.ioapic, 16, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1); /* waits for the EOI */
    ioapic_eoi(f.m.ioapic, 0x42);         /* another vector: no effect */
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    ioapic_eoi(f.m.ioapic, 0x41);
    g_assert_cmpuint(f.irqs.nmsi, ==, 2); /* still asserted: delivered again */
    g_assert_cmphex(get_entry(&f, 16) & IOAPIC_RTE_REMOTE_IRR, ==, IOAPIC_RTE_REMOTE_IRR);
    ioapic_set_irq(f.m.ioapic, 16, 0);
    mmio_write(&f, IOAPIC_EOI, 0x41); /* the version 0x20 EOI register */
    g_assert_cmpuint(f.irqs.nmsi, ==, 2);
    g_assert_cmphex(get_entry(&f, 16) & IOAPIC_RTE_REMOTE_IRR, ==, 0);
    /* switching the entry to edge clears a stuck remote IRR */
    ioapic_set_irq(f.m.ioapic, 18, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 3);
    set_entry(&f, 18, 0x0000000000002042ull);
    g_assert_cmphex(get_entry(&f, 18), ==, 0x2042);
    teardown(&f);
}

static void test_message_format(void)
{
    struct fixture f;
    setup(&f);
    /* lowest priority, logical, level, destination 0x0F */
    set_entry(&f, 9, 0x0F0000000000A95Aull);
    ioapic_set_irq(f.m.ioapic, 9, 1);
    /* NMI, physical, edge, destination 3 */
    set_entry(&f, 10, 0x0300000000000402ull);
    ioapic_set_irq(f.m.ioapic, 10, 1);
    /* ExtINT on pin 0 */
    set_entry(&f, 0, 0x0000000000000700ull);
    ioapic_set_irq(f.m.ioapic, 0, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 3);
    g_assert_cmphex(f.irqs.msi[0].address, ==, 0xFEE0F004);
    g_assert_cmphex(f.irqs.msi[0].data, ==, 0xC15A);
    g_assert_cmphex(f.irqs.msi[1].address, ==, 0xFEE03000);
    g_assert_cmphex(f.irqs.msi[1].data, ==, 0x0402);
    g_assert_cmphex(f.irqs.msi[2].address, ==, 0xFEE00000);
    g_assert_cmphex(f.irqs.msi[2].data, ==, 0x0700);
    /* an NMI entry marked level is delivered as an edge and sets no remote IRR */
    set_entry(&f, 11, 0x0000000000008402ull);
    ioapic_set_irq(f.m.ioapic, 11, 1);
    g_assert_cmphex(get_entry(&f, 11) & IOAPIC_RTE_REMOTE_IRR, ==, 0);
    g_assert_cmphex(ioapic_entry_message(0xFF00000000008930ull).data, ==, 0xC130);
    g_assert_cmphex(ioapic_entry_message(0xFF00000000008930ull).address, ==, 0xFEEFF004);
    teardown(&f);
}

static void test_out_of_range_index(void)
{
    struct fixture f;
    setup(&f);
    log_set_level(LOG_LEVEL_ERROR);
    static const uint32_t bad[] = {0x03, 0x0F, 0x40, 0x41, 0xFF};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        reg_write(&f, bad[i], 0xFFFFFFFF);
        g_assert_cmphex(reg_read(&f, bad[i]), ==, 0);
    }
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++)
        g_assert_cmphex(get_entry(&f, pin), ==, 0x10000);
    g_assert_cmphex(reg_read(&f, IOAPIC_REG_ID), ==, 0);
    /* wrong widths and offsets are refused without effect */
    g_assert_true(io_bus_write(&f.m.mmio, IOAPIC_BASE + IOAPIC_IOWIN, 2, 0x1234));
    g_assert_true(io_bus_write(&f.m.mmio, IOAPIC_BASE + IOAPIC_IOWIN, 8, 0x1234));
    g_assert_true(io_bus_write(&f.m.mmio, IOAPIC_BASE + 0x20, 4, 0x1234));
    uint64_t v = 0;
    g_assert_true(io_bus_read(&f.m.mmio, IOAPIC_BASE + IOAPIC_IOWIN, 8, &v));
    g_assert_cmphex(v, ==, ~0ull);
    g_assert_true(io_bus_read(&f.m.mmio, IOAPIC_BASE + 0x800, 4, &v));
    g_assert_cmphex(v, ==, 0);
    ioapic_set_irq(f.m.ioapic, 24, 1);
    ioapic_set_irq(f.m.ioapic, 0xFFFFFFFF, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 0);
    log_set_level(LOG_LEVEL_INFO);
    teardown(&f);
}

static void test_reset(void)
{
    struct fixture f;
    setup(&f);
    reg_write(&f, IOAPIC_REG_ID, 0x05000000);
    set_entry(&f, 7, 0x0100000000008030ull);
    ioapic_set_irq(f.m.ioapic, 7, 1);
    g_assert_cmpuint(f.irqs.nmsi, ==, 1);
    machine_reset(&f.m);
    g_assert_cmphex(reg_read(&f, IOAPIC_REG_ID), ==, 0);
    g_assert_cmphex(get_entry(&f, 7), ==, 0x10000);
    /* the pin is still asserted: reprogramming as level delivers it */
    set_entry(&f, 7, 0x0100000000008030ull);
    g_assert_cmpuint(f.irqs.nmsi, ==, 2);
    teardown(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ioapic/regs/select-and-window", test_select_window);
    g_test_add_func("/ioapic/regs/id-and-version", test_id_version);
    g_test_add_func("/ioapic/regs/out-of-range-index-reads-zero", test_out_of_range_index);
    g_test_add_func("/ioapic/redtbl/read-only-bits-stay", test_redirection_rw);
    g_test_add_func("/ioapic/edge/delivers-on-rising-edge-only", test_edge_rising_only);
    g_test_add_func("/ioapic/edge/masked-edge-is-lost", test_masked_edge_lost);
    g_test_add_func("/ioapic/level/held-while-masked-delivered-on-unmask", test_level_masked_then_unmasked);
    g_test_add_func("/ioapic/level/remote-irr-and-eoi-redelivery", test_level_eoi_redelivery);
    g_test_add_func("/ioapic/msi/message-format", test_message_format);
    g_test_add_func("/ioapic/reset/masks-all-entries", test_reset);
    return g_test_run();
}
