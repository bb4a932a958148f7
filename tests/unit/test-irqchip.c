/* Proves the userspace irqchip wiring: ISA IRQ 0 on IOAPIC pin 2, PCI GSIs level through the IOAPIC to a
 * local APIC and back by EOI, MSIs to one CPU / broadcast / lowest priority, and the 8259 through LINT0
 * (ExtINT) to the CPU's acknowledge. */
#include <glib.h>

#include "device_harness.h"
#include "ioapic.h"
#include "irqchip.h"
#include "lapic.h"
#include "log.h"
#include "machine.h"
#include "pic.h"

#define CPUS 2

struct fixture {
    struct machine m;
    unsigned kicks[CPUS];
};

static const struct machine_device *const devices[] = {&pic_device, &ioapic_device, &lapic_device,
                                                       &irqchip_device};

static void setup(struct fixture *f)
{
    dh_machine_init(&f->m, devices, G_N_ELEMENTS(devices), CPUS, 1 << 20);
    dh_count_lapic_kicks(&f->m, f->kicks);
    /* software-enable every APIC, as the OS does */
    for (unsigned i = 0; i < CPUS; i++)
        lapic_write_reg(f->m.lapic[i], LAPIC_REG_SVR, 0x1FF);
}

static void teardown(struct fixture *f)
{
    machine_set_current_cpu(0);
    dh_machine_fini(&f->m);
}

static void init_pics(struct fixture *f)
{
    static const uint8_t seq[][2] = {{0x20, 0x11}, {0x21, 0x08}, {0x21, 0x04}, {0x21, 0x01},
                                     {0xA0, 0x11}, {0xA1, 0x70}, {0xA1, 0x02}, {0xA1, 0x01}};
    for (size_t i = 0; i < G_N_ELEMENTS(seq); i++)
        dh_outb(&f->m, seq[i][0], seq[i][1]);
}

static void ioapic_program(struct fixture *f, unsigned pin, uint64_t entry)
{
    uint64_t base = IOAPIC_BASE;
    dh_writel(&f->m, base + IOAPIC_IOREGSEL, IOAPIC_REG_REDTBL + 2 * pin + 1);
    dh_writel(&f->m, base + IOAPIC_IOWIN, entry >> 32);
    dh_writel(&f->m, base + IOAPIC_IOREGSEL, IOAPIC_REG_REDTBL + 2 * pin);
    dh_writel(&f->m, base + IOAPIC_IOWIN, (uint32_t)entry);
}

static bool irr_bit(struct fixture *f, unsigned cpu, unsigned v)
{
    return lapic_read_reg(f->m.lapic[cpu], LAPIC_REG_IRR + (v / 32) * 0x10) & (1u << (v % 32));
}

static void set_wire(struct fixture *f, unsigned wire, int level)
{
    irq_set_level(machine_gsi(&f->m, wire), level);
}

static void test_isa_irq0_on_gsi2(void)
{
    struct fixture f;
    setup(&f);
    g_assert_cmpint(irqchip_wire_to_gsi(0), ==, 2);
    g_assert_cmpint(irqchip_wire_to_gsi(1), ==, 1);
    g_assert_cmpint(irqchip_wire_to_gsi(2), ==, -1);
    g_assert_cmpint(irqchip_wire_to_gsi(9), ==, 9);
    g_assert_cmpint(irqchip_wire_to_gsi(23), ==, 23);
    g_assert_cmpint(irqchip_wire_to_gsi(24), ==, -1);
    init_pics(&f);
    dh_outb(&f.m, 0x21, 0xFF); /* the PIC path masked, as with the IOAPIC in use */
    ioapic_program(&f, 0, 0x31);
    ioapic_program(&f, 2, 0x30);
    set_wire(&f, 0, 1);
    g_assert_true(irr_bit(&f, 0, 0x30));
    g_assert_false(irr_bit(&f, 0, 0x31));
    dh_outb(&f.m, 0x20, 0x0A);
    g_assert_cmphex(dh_inb(&f.m, 0x20), ==, 0x01); /* and the PIC's IRQ 0 saw it too */
    g_assert_true(irqchip_cpu_has_interrupt(&f.m, 0));
    g_assert_cmpint(irqchip_cpu_acknowledge(&f.m, 0), ==, 0x30);
    set_wire(&f, 0, 0);
    /* wire 2 reaches neither controller */
    set_wire(&f, 2, 1);
    g_assert_false(irr_bit(&f, 0, 0x30));
    dh_outb(&f.m, 0x20, 0x0A);
    g_assert_cmphex(dh_inb(&f.m, 0x20), ==, 0x01); /* only IRQ 0's latched edge */
    teardown(&f);
}

static void test_pci_level_gsi(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f);
    ioapic_program(&f, 16, 0x010000000000A061ull); /* level, active low, CPU 1 */
    set_wire(&f, 16, 1);
    g_assert_false(irr_bit(&f, 0, 0x61));
    g_assert_true(irr_bit(&f, 1, 0x61));
    g_assert_true(lapic_read_reg(f.m.lapic[1], LAPIC_REG_TMR + 0x30) & (1u << 1));
    g_assert_cmpuint(f.kicks[1], ==, 1);
    g_assert_false(pic_has_interrupt(f.m.pic)); /* PCI GSIs are not ISA IRQs */
    g_assert_true(irqchip_cpu_has_interrupt(&f.m, 1));
    g_assert_false(irqchip_cpu_has_interrupt(&f.m, 0));
    g_assert_cmpint(irqchip_cpu_acknowledge(&f.m, 1), ==, 0x61);
    g_assert_false(irqchip_cpu_has_interrupt(&f.m, 1));
    /* EOI while the device still asserts: delivered again */
    machine_set_current_cpu(1);
    g_assert_true(io_bus_write(&f.m.mmio, LAPIC_BASE + LAPIC_REG_EOI, 4, 0));
    g_assert_true(irr_bit(&f, 1, 0x61));
    g_assert_cmpint(irqchip_cpu_acknowledge(&f.m, 1), ==, 0x61);
    set_wire(&f, 16, 0);
    g_assert_true(io_bus_write(&f.m.mmio, LAPIC_BASE + LAPIC_REG_EOI, 4, 0));
    g_assert_false(irr_bit(&f, 1, 0x61));
    g_assert_false(f.m.ioapic->redtbl[16] & IOAPIC_RTE_REMOTE_IRR);
    teardown(&f);
}

static void test_msi_targets(void)
{
    struct fixture f;
    setup(&f);
    log_set_level(LOG_LEVEL_ERROR);
    struct msi_message to_cpu1 = {0xFEE01000, 0x0071};
    machine_send_msi(&f.m, &to_cpu1);
    g_assert_false(irr_bit(&f, 0, 0x71));
    g_assert_true(irr_bit(&f, 1, 0x71));
    struct msi_message broadcast = {0xFEEFF000, 0x0072};
    machine_send_msi(&f.m, &broadcast);
    g_assert_true(irr_bit(&f, 0, 0x72));
    g_assert_true(irr_bit(&f, 1, 0x72));
    /* logical flat with lowest priority: CPU 0 is busier (TPR) */
    lapic_write_reg(f.m.lapic[0], LAPIC_REG_LDR, 0x01000000);
    lapic_write_reg(f.m.lapic[1], LAPIC_REG_LDR, 0x02000000);
    lapic_write_reg(f.m.lapic[0], LAPIC_REG_TPR, 0x90);
    struct msi_message lowest = {0xFEE03004, 0x0173};
    machine_send_msi(&f.m, &lowest);
    g_assert_false(irr_bit(&f, 0, 0x73));
    g_assert_true(irr_bit(&f, 1, 0x73));
    struct msi_message logical0 = {0xFEE01004, 0x0074};
    machine_send_msi(&f.m, &logical0);
    g_assert_true(irr_bit(&f, 0, 0x74));
    g_assert_false(irr_bit(&f, 1, 0x74));
    /* NMI by message */
    struct msi_message nmi = {0xFEE00000, 0x0400};
    machine_send_msi(&f.m, &nmi);
    g_assert_true(lapic_take_nmi(f.m.lapic[0]));
    g_assert_false(lapic_take_nmi(f.m.lapic[1]));
    /* outside the interrupt range, reserved and SIPI delivery modes: dropped */
    struct msi_message bad[] = {
        {0xFED01000, 0x0075}, {0x1FEE01000ull, 0x0075}, {0xFEE01000, 0x0375}, {0xFEE01000, 0x0608}};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        machine_send_msi(&f.m, &bad[i]);
    g_assert_false(irr_bit(&f, 1, 0x75));
    uint8_t v;
    g_assert_false(lapic_take_sipi(f.m.lapic[1], &v));
    log_set_level(LOG_LEVEL_INFO);
    teardown(&f);
}

static void test_extint_via_lint0(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f);
    unsigned k = f.kicks[0];
    set_wire(&f, 1, 1);
    g_assert_cmpuint(f.kicks[0], ==, k + 1); /* the BSP is woken through LINT0 */
    g_assert_true(irqchip_cpu_has_interrupt(&f.m, 0));
    g_assert_false(irqchip_cpu_has_interrupt(&f.m, 1)); /* the AP keeps LINT0 masked */
    g_assert_false(lapic_has_interrupt(f.m.lapic[0]));  /* the vector is not the APIC's */
    g_assert_cmpint(irqchip_cpu_acknowledge(&f.m, 0), ==, 0x09);
    g_assert_false(irqchip_cpu_has_interrupt(&f.m, 0));
    set_wire(&f, 1, 0);
    dh_outb(&f.m, 0x20, 0x20);
    /* ExtINT bypasses the APIC's task priority */
    lapic_write_reg(f.m.lapic[0], LAPIC_REG_TPR, 0xFF);
    set_wire(&f, 12, 1);
    g_assert_true(irqchip_cpu_has_interrupt(&f.m, 0));
    g_assert_cmpint(irqchip_cpu_acknowledge(&f.m, 0), ==, 0x74);
    set_wire(&f, 12, 0);
    dh_outb(&f.m, 0xA0, 0x20);
    dh_outb(&f.m, 0x20, 0x20);
    lapic_write_reg(f.m.lapic[0], LAPIC_REG_TPR, 0);
    /* LINT0 masked: the PIC no longer reaches the CPU */
    lapic_write_reg(f.m.lapic[0], LAPIC_REG_LVT_LINT0, 0x10700);
    set_wire(&f, 3, 1);
    g_assert_true(pic_has_interrupt(f.m.pic));
    g_assert_false(irqchip_cpu_has_interrupt(&f.m, 0));
    /* an APIC interrupt and ExtINT together: unmasking LINT0 makes the PIC's go first */
    lapic_deliver(f.m.lapic[0], LAPIC_DM_FIXED, 0x80, false);
    lapic_write_reg(f.m.lapic[0], LAPIC_REG_LVT_LINT0, 0x700);
    g_assert_cmpint(irqchip_cpu_acknowledge(&f.m, 0), ==, 0x0B);
    g_assert_cmpint(irqchip_cpu_acknowledge(&f.m, 0), ==, 0x80);
    /* with nothing left the APIC answers its spurious vector */
    g_assert_cmpint(irqchip_cpu_acknowledge(&f.m, 0), ==, 0xFF);
    /* globally disabled APIC: INTR comes straight from the PIC */
    dh_outb(&f.m, 0x20, 0x20);
    set_wire(&f, 3, 0);
    g_assert_cmpint(lapic_set_base(f.m.lapic[0], 0xFEE00100), ==, 0);
    set_wire(&f, 4, 1);
    g_assert_true(irqchip_cpu_has_interrupt(&f.m, 0));
    g_assert_cmpint(irqchip_cpu_acknowledge(&f.m, 0), ==, 0x0C);
    teardown(&f);
}

static void test_extint_message(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f);
    lapic_write_reg(f.m.lapic[0], LAPIC_REG_LVT_LINT0, 0x10700);
    ioapic_program(&f, 0,
                   0x0000000000000700ull); /* IOAPIC pin 0 as ExtINT (virtual wire through the IOAPIC) */
    set_wire(&f, 5, 1);
    g_assert_false(irqchip_cpu_has_interrupt(&f.m, 0));
    /* the PIC's INT on IOAPIC pin 0 */
    ioapic_set_irq(f.m.ioapic, 0, 1);
    g_assert_true(lapic_extint_pending(f.m.lapic[0]));
    g_assert_true(irqchip_cpu_has_interrupt(&f.m, 0));
    g_assert_cmpint(irqchip_cpu_acknowledge(&f.m, 0), ==, 0x0D);
    g_assert_false(lapic_extint_pending(f.m.lapic[0]));
    teardown(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/irqchip/gsi/isa-irq0-drives-ioapic-pin2", test_isa_irq0_on_gsi2);
    g_test_add_func("/irqchip/gsi/pci-level-through-ioapic-and-eoi", test_pci_level_gsi);
    g_test_add_func("/irqchip/msi/specific-broadcast-lowest-nmi", test_msi_targets);
    g_test_add_func("/irqchip/extint/pic-through-lint0-to-cpu-acknowledge", test_extint_via_lint0);
    g_test_add_func("/irqchip/extint/ioapic-extint-message", test_extint_message);
    return g_test_run();
}
