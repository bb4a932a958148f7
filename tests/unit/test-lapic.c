/* Proves the local APIC: reset values, ID/version, TPR/PPR, fixed interrupts through IRR/ISR by priority
 * class, EOI order and the level EOI broadcast, the timer in all three modes on the virtual clock, IPIs
 * (fixed, shorthands, logical, lowest priority, INIT/SIPI, NMI), spurious vector, software and global
 * disable, ESR. */
#include <errno.h>

#include <glib.h>

#include "device_harness.h"
#include "ioapic.h"
#include "irqchip.h"
#include "lapic.h"
#include "log.h"
#include "machine.h"

#define CPUS 4

struct fixture {
    struct machine m;
    unsigned kicks[CPUS];
};

static const struct machine_device *const devices[] = {&ioapic_device, &lapic_device, &irqchip_device};

static void setup(struct fixture *f)
{
    dh_machine_init(&f->m, devices, G_N_ELEMENTS(devices), CPUS, 1 << 20);
    dh_count_lapic_kicks(&f->m, f->kicks);
    g_assert_null(f->m.lapic[CPUS]);
    machine_set_current_cpu(0);
}

static void teardown(struct fixture *f)
{
    machine_set_current_cpu(0);
    dh_machine_fini(&f->m);
}

static uint32_t rd(struct fixture *f, unsigned cpu, uint32_t reg)
{
    machine_set_current_cpu(cpu);
    return dh_readl(&f->m, LAPIC_BASE + reg);
}

static void wr(struct fixture *f, unsigned cpu, uint32_t reg, uint32_t v)
{
    machine_set_current_cpu(cpu);
    dh_writel(&f->m, LAPIC_BASE + reg, v);
}

static struct lapic *apic(struct fixture *f, unsigned cpu)
{
    return f->m.lapic[cpu];
}

static bool irr_bit(struct fixture *f, unsigned cpu, unsigned v)
{
    return rd(f, cpu, LAPIC_REG_IRR + (v / 32) * 0x10) & (1u << (v % 32));
}

static bool isr_bit(struct fixture *f, unsigned cpu, unsigned v)
{
    return rd(f, cpu, LAPIC_REG_ISR + (v / 32) * 0x10) & (1u << (v % 32));
}

static bool tmr_bit(struct fixture *f, unsigned cpu, unsigned v)
{
    return rd(f, cpu, LAPIC_REG_TMR + (v / 32) * 0x10) & (1u << (v % 32));
}

static uint32_t esr(struct fixture *f, unsigned cpu)
{
    wr(f, cpu, LAPIC_REG_ESR, 0);
    return rd(f, cpu, LAPIC_REG_ESR);
}

static void enable(struct fixture *f, unsigned cpu)
{
    wr(f, cpu, LAPIC_REG_SVR, 0x1FF);
}

static void advance(struct fixture *f, int64_t ns)
{
    vclock_advance(f->m.clock, ns);
}

static void ipi(struct fixture *f, unsigned from, uint8_t dest, uint32_t low)
{
    wr(f, from, LAPIC_REG_ICR_HIGH, (uint32_t)dest << 24);
    wr(f, from, LAPIC_REG_ICR_LOW, low);
}

static void test_reset_values(void)
{
    struct fixture f;
    setup(&f);
    for (unsigned cpu = 1; cpu < CPUS; cpu++) {
        g_assert_cmphex(rd(&f, cpu, LAPIC_REG_ID), ==, cpu << 24);
        g_assert_cmphex(rd(&f, cpu, LAPIC_REG_SVR), ==, 0xFF);
        g_assert_cmphex(lapic_get_base(apic(&f, cpu)), ==, 0xFEE00800);
        g_assert_cmphex(rd(&f, cpu, LAPIC_REG_LVT_LINT0), ==, 0x10000);
        g_assert_cmphex(rd(&f, cpu, LAPIC_REG_LVT_LINT1), ==, 0x10000);
    }
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_VERSION), ==, 0x00050014);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_TPR), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_APR), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_PPR), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_LDR), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_DFR), ==, 0xFFFFFFFF);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_ESR), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_ICR_LOW), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_ICR_HIGH), ==, 0);
    for (uint32_t r = 0; r < 8; r++) {
        g_assert_cmphex(rd(&f, 1, LAPIC_REG_ISR + r * 0x10), ==, 0);
        g_assert_cmphex(rd(&f, 1, LAPIC_REG_TMR + r * 0x10), ==, 0);
        g_assert_cmphex(rd(&f, 1, LAPIC_REG_IRR + r * 0x10), ==, 0);
    }
    for (uint32_t r = LAPIC_REG_LVT_TIMER; r <= LAPIC_REG_LVT_ERROR; r += 0x10)
        g_assert_cmphex(rd(&f, 1, r), ==, 0x10000);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_TIMER_ICR), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_TIMER_CCR), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_TIMER_DCR), ==, 0);
    /* the BSP is left in virtual wire mode, as firmware would */
    g_assert_cmphex(lapic_get_base(apic(&f, 0)), ==, 0xFEE00900);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_ID), ==, 0);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_SVR), ==, 0x1FF);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_LVT_LINT0), ==, 0x700);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_LVT_LINT1), ==, 0x400);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_LVT_TIMER), ==, 0x10000);
    teardown(&f);
}

static void test_register_bits(void)
{
    struct fixture f;
    setup(&f);
    log_set_level(LOG_LEVEL_ERROR);
    wr(&f, 1, LAPIC_REG_ID, 0xFFFFFFFF);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_ID), ==, 0xFF000000);
    wr(&f, 1, LAPIC_REG_VERSION, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_VERSION), ==, 0x00050014);
    wr(&f, 1, LAPIC_REG_TPR, 0xFFFFFFFF);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_TPR), ==, 0xFF);
    wr(&f, 1, LAPIC_REG_LDR, 0xFFFFFFFF);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_LDR), ==, 0xFF000000);
    wr(&f, 1, LAPIC_REG_DFR, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_DFR), ==, 0x0FFFFFFF);
    wr(&f, 1, LAPIC_REG_SVR, 0xFFFFFFFF);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_SVR), ==, 0x3FF);
    wr(&f, 1, LAPIC_REG_LVT_TIMER, 0xFFFFFFFF);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_LVT_TIMER), ==, 0x000700FF);
    wr(&f, 1, LAPIC_REG_LVT_LINT0, 0xFFFFFFFF);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_LVT_LINT0), ==, 0x0001A7FF);
    wr(&f, 1, LAPIC_REG_LVT_ERROR, 0xFFFFFFFF);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_LVT_ERROR), ==, 0x000100FF);
    wr(&f, 1, LAPIC_REG_TIMER_DCR, 0xFFFFFFFF);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_TIMER_DCR), ==, 0xB);
    /* a reserved register sets "illegal register address" in the ESR, seen after the next ESR write */
    g_assert_cmphex(rd(&f, 2, 0x2F0), ==, 0);
    g_assert_cmphex(rd(&f, 2, LAPIC_REG_ESR), ==, 0);
    g_assert_cmphex(esr(&f, 2), ==, LAPIC_ESR_ILLEGAL_REGISTER);
    g_assert_cmphex(esr(&f, 2), ==, 0);
    /* bad widths: defined results, no effect */
    uint64_t v = 0;
    machine_set_current_cpu(2);
    g_assert_true(io_bus_write(&f.m.mmio, LAPIC_BASE + LAPIC_REG_TPR, 2, 0x55));
    g_assert_true(io_bus_write(&f.m.mmio, LAPIC_BASE + LAPIC_REG_TPR + 4, 4, 0x55));
    g_assert_cmphex(rd(&f, 2, LAPIC_REG_TPR), ==, 0);
    g_assert_true(io_bus_read(&f.m.mmio, LAPIC_BASE + LAPIC_REG_VERSION + 2, 1, &v));
    g_assert_cmphex(v, ==, 0x05);
    /* per-CPU page: each CPU sees its own registers, an unknown CPU sees nothing */
    wr(&f, 3, LAPIC_REG_TPR, 0x30);
    g_assert_cmphex(rd(&f, 3, LAPIC_REG_TPR), ==, 0x30);
    g_assert_cmphex(rd(&f, 2, LAPIC_REG_TPR), ==, 0);
    g_assert_cmphex(rd(&f, CPUS, LAPIC_REG_VERSION), ==, 0xFFFFFFFF);
    log_set_level(LOG_LEVEL_INFO);
    teardown(&f);
}

static void test_tpr_ppr(void)
{
    struct fixture f;
    setup(&f);
    struct lapic *l = apic(&f, 0);
    wr(&f, 0, LAPIC_REG_TPR, 0x35);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_PPR), ==, 0x35);
    lapic_deliver(l, LAPIC_DM_FIXED, 0x3F, false);
    g_assert_false(lapic_has_interrupt(l)); /* same class as the TPR: held */
    g_assert_cmpint(lapic_acknowledge(l), ==, 0xFF);
    g_assert_true(irr_bit(&f, 0, 0x3F));
    lapic_deliver(l, LAPIC_DM_FIXED, 0x40, false);
    g_assert_true(lapic_has_interrupt(l));
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x40);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_PPR), ==, 0x40); /* in-service class above TPR */
    wr(&f, 0, LAPIC_REG_TPR, 0x52);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_PPR), ==, 0x52);
    wr(&f, 0, LAPIC_REG_EOI, 0);
    wr(&f, 0, LAPIC_REG_TPR, 0x00);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_PPR), ==, 0x00);
    /* lowering the TPR releases the held interrupt and kicks the CPU */
    unsigned k = f.kicks[0];
    wr(&f, 0, LAPIC_REG_TPR, 0x20);
    g_assert_true(lapic_has_interrupt(l));
    g_assert_cmpuint(f.kicks[0], >, k);
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x3F);
    teardown(&f);
}

static void test_priority_classes_and_eoi(void)
{
    struct fixture f;
    setup(&f);
    struct lapic *l = apic(&f, 0);
    lapic_deliver(l, LAPIC_DM_FIXED, 0x45, false);
    lapic_deliver(l, LAPIC_DM_FIXED, 0x41, false);
    lapic_deliver(l, LAPIC_DM_FIXED, 0x62, false);
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x62);
    g_assert_true(isr_bit(&f, 0, 0x62));
    g_assert_false(irr_bit(&f, 0, 0x62));
    g_assert_false(lapic_has_interrupt(l)); /* class 4 below the in-service class 6 */
    lapic_deliver(l, LAPIC_DM_FIXED, 0x6A, false);
    g_assert_false(lapic_has_interrupt(l)); /* same class does not nest */
    lapic_deliver(l, LAPIC_DM_FIXED, 0x71, false);
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x71);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_ISR + 0x30), ==, (1u << (0x71 - 96)) | (1u << (0x62 - 96)));
    wr(&f, 0, LAPIC_REG_EOI, 0); /* ends 0x71, the highest in service */
    g_assert_false(isr_bit(&f, 0, 0x71));
    g_assert_true(isr_bit(&f, 0, 0x62));
    g_assert_false(lapic_has_interrupt(l));
    wr(&f, 0, LAPIC_REG_EOI, 0);
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x6A);
    wr(&f, 0, LAPIC_REG_EOI, 0);
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x45);
    g_assert_false(lapic_has_interrupt(l)); /* 0x41 same class as 0x45 */
    wr(&f, 0, LAPIC_REG_EOI, 0);
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x41);
    wr(&f, 0, LAPIC_REG_EOI, 0);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_ISR + 0x20), ==, 0);
    /* an EOI with nothing in service is harmless */
    wr(&f, 0, LAPIC_REG_EOI, 0);
    g_assert_cmpint(lapic_acknowledge(l), ==, 0xFF);
    teardown(&f);
}

static void test_level_eoi_broadcast(void)
{
    struct fixture f;
    setup(&f);
    struct lapic *l = apic(&f, 0);
    struct ioapic *io = f.m.ioapic;
    io->redtbl[16] = 0x0000000000008051ull; /* level, vector 0x51, CPU 0 */
    io->redtbl[5] = 0x0000000000000052ull;  /* edge, vector 0x52 */
    ioapic_set_irq(io, 16, 1);
    g_assert_true(irr_bit(&f, 0, 0x51));
    g_assert_true(tmr_bit(&f, 0, 0x51));
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x51);
    wr(&f, 0, LAPIC_REG_EOI, 0); /* the line is still up: the IOAPIC sends again */
    g_assert_true(irr_bit(&f, 0, 0x51));
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x51);
    ioapic_set_irq(io, 16, 0);
    g_assert_true(io->redtbl[16] & IOAPIC_RTE_REMOTE_IRR);
    wr(&f, 0, LAPIC_REG_EOI, 0);
    g_assert_false(io->redtbl[16] & IOAPIC_RTE_REMOTE_IRR);
    g_assert_false(irr_bit(&f, 0, 0x51));
    /* an edge vector leaves TMR clear and sends no EOI */
    ioapic_set_irq(io, 5, 1);
    g_assert_false(tmr_bit(&f, 0, 0x52));
    /* a pin with vector 0x52 awaiting EOI would be released by a (wrong) broadcast of 0x52 */
    io->redtbl[16] = 0x0000000000008052ull | IOAPIC_RTE_REMOTE_IRR;
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x52);
    wr(&f, 0, LAPIC_REG_EOI, 0);
    g_assert_true(io->redtbl[16] & IOAPIC_RTE_REMOTE_IRR);
    teardown(&f);
}

static void test_timer_one_shot(void)
{
    struct fixture f;
    setup(&f);
    advance(&f, 1234);                   /* not at time zero */
    wr(&f, 0, LAPIC_REG_TIMER_DCR, 0x3); /* divide by 16 */
    wr(&f, 0, LAPIC_REG_LVT_TIMER, 0x40);
    wr(&f, 0, LAPIC_REG_TIMER_ICR, 1000);
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 1000);
    advance(&f, 16);
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 999);
    advance(&f, 15999 - 16);
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 1);
    g_assert_false(irr_bit(&f, 0, 0x40));
    unsigned k = f.kicks[0];
    advance(&f, 1); /* exactly 1000 x 16 ticks of the 1 GHz clock */
    g_assert_true(irr_bit(&f, 0, 0x40));
    g_assert_cmpuint(f.kicks[0], >, k);
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 0);
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_ICR), ==, 1000);
    g_assert_cmpint(lapic_acknowledge(apic(&f, 0)), ==, 0x40);
    wr(&f, 0, LAPIC_REG_EOI, 0);
    advance(&f, 1000000);
    g_assert_false(irr_bit(&f, 0, 0x40)); /* one shot only */
    /* writing 0 stops a running count */
    wr(&f, 0, LAPIC_REG_TIMER_ICR, 50);
    wr(&f, 0, LAPIC_REG_TIMER_ICR, 0);
    advance(&f, 1000000);
    g_assert_false(irr_bit(&f, 0, 0x40));
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 0);
    teardown(&f);
}

static void test_timer_periodic(void)
{
    struct fixture f;
    setup(&f);
    struct lapic *l = apic(&f, 0);
    wr(&f, 0, LAPIC_REG_TIMER_DCR, 0xB); /* divide by 1 */
    wr(&f, 0, LAPIC_REG_LVT_TIMER, 0x20000 | 0x41);
    wr(&f, 0, LAPIC_REG_TIMER_ICR, 100000);
    advance(&f, 25000);
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 75000);
    unsigned fired = 0;
    for (unsigned step = 0; step < 12; step++) { /* 12 x 25 us = 300 us after the 25 us already gone */
        advance(&f, 25000);
        if (irr_bit(&f, 0, 0x41)) {
            fired++;
            g_assert_cmpint(lapic_acknowledge(l), ==, 0x41);
            wr(&f, 0, LAPIC_REG_EOI, 0);
            g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 100000); /* reloaded at the boundary */
        }
    }
    g_assert_cmpuint(fired, ==, 3);
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 75000);
    /* a new divider continues the remaining count at the new rate: 75000 left at /2 = 150 us */
    wr(&f, 0, LAPIC_REG_TIMER_DCR, 0x0);
    advance(&f, 149999);
    g_assert_false(irr_bit(&f, 0, 0x41));
    advance(&f, 1);
    g_assert_true(irr_bit(&f, 0, 0x41));
    teardown(&f);
}

static void test_timer_divide_values(void)
{
    static const struct {
        uint32_t dcr;
        unsigned divisor;
    } table[] = {{0x0, 2}, {0x1, 4}, {0x2, 8}, {0x3, 16}, {0x8, 32}, {0x9, 64}, {0xA, 128}, {0xB, 1}};
    struct fixture f;
    setup(&f);
    wr(&f, 0, LAPIC_REG_LVT_TIMER, 0x42);
    for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
        wr(&f, 0, LAPIC_REG_TIMER_DCR, table[i].dcr);
        g_assert_cmphex(rd(&f, 0, LAPIC_REG_TIMER_DCR), ==, table[i].dcr);
        wr(&f, 0, LAPIC_REG_TIMER_ICR, 10);
        advance(&f, 10 * table[i].divisor - 1);
        g_assert_false(irr_bit(&f, 0, 0x42));
        advance(&f, 1);
        g_assert_true(irr_bit(&f, 0, 0x42));
        g_assert_cmpint(lapic_acknowledge(apic(&f, 0)), ==, 0x42);
        wr(&f, 0, LAPIC_REG_EOI, 0);
    }
    teardown(&f);
}

static void test_timer_masked(void)
{
    struct fixture f;
    setup(&f);
    wr(&f, 0, LAPIC_REG_TIMER_DCR, 0xB);
    wr(&f, 0, LAPIC_REG_LVT_TIMER, 0x10043);
    wr(&f, 0, LAPIC_REG_TIMER_ICR, 100);
    advance(&f, 50);
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 50); /* it counts while masked */
    advance(&f, 1000);
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 0);
    for (uint32_t r = 0; r < 8; r++)
        g_assert_cmphex(rd(&f, 0, LAPIC_REG_IRR + r * 0x10), ==, 0);
    g_assert_false(lapic_has_interrupt(apic(&f, 0)));
    teardown(&f);
}

static void test_timer_tsc_deadline(void)
{
    struct fixture f;
    setup(&f);
    struct lapic *l = apic(&f, 0);
    g_assert_cmpuint(deskvm_ns_to_tsc(1000), ==, 2000);
    g_assert_cmpint(deskvm_tsc_to_ns(2000), ==, 1000);
    g_assert_cmpint(deskvm_tsc_to_ns(3), ==, 2); /* rounds up: never early */
    /* ignored outside TSC-deadline mode */
    lapic_set_tsc_deadline(l, 100, 50);
    g_assert_cmpuint(lapic_get_tsc_deadline(l), ==, 0);
    wr(&f, 0, LAPIC_REG_LVT_TIMER, 0x40000 | 0x44);
    advance(&f, 1000);
    g_assert_false(irr_bit(&f, 0, 0x44));
    lapic_set_tsc_deadline(l, deskvm_ns_to_tsc(6000), 6000);
    g_assert_cmpuint(lapic_get_tsc_deadline(l), ==, 12000);
    wr(&f, 0, LAPIC_REG_TIMER_ICR, 5); /* ignored in this mode */
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_ICR), ==, 0);
    advance(&f, 4999);
    g_assert_false(irr_bit(&f, 0, 0x44));
    g_assert_cmpuint(rd(&f, 0, LAPIC_REG_TIMER_CCR), ==, 0);
    advance(&f, 1);
    g_assert_true(irr_bit(&f, 0, 0x44));
    g_assert_cmpuint(lapic_get_tsc_deadline(l), ==, 0); /* cleared when it fires */
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x44);
    wr(&f, 0, LAPIC_REG_EOI, 0);
    /* writing 0 disarms */
    lapic_set_tsc_deadline(l, 1, 8000);
    lapic_set_tsc_deadline(l, 0, 0);
    advance(&f, 10000);
    g_assert_false(irr_bit(&f, 0, 0x44));
    /* a deadline already passed fires at once */
    lapic_set_tsc_deadline(l, 2, 1);
    g_assert_true(irr_bit(&f, 0, 0x44));
    g_assert_cmpint(lapic_acknowledge(l), ==, 0x44);
    wr(&f, 0, LAPIC_REG_EOI, 0);
    /* leaving the mode disarms an armed deadline */
    lapic_set_tsc_deadline(l, 99, vclock_now(f.m.clock) + 100);
    wr(&f, 0, LAPIC_REG_LVT_TIMER, 0x44);
    advance(&f, 1000);
    g_assert_false(irr_bit(&f, 0, 0x44));
    teardown(&f);
}

static void test_ipi_fixed_physical(void)
{
    struct fixture f;
    setup(&f);
    for (unsigned i = 1; i < CPUS; i++)
        enable(&f, i);
    ipi(&f, 0, 2, 0x4055);
    g_assert_true(irr_bit(&f, 2, 0x55));
    g_assert_false(irr_bit(&f, 1, 0x55));
    g_assert_false(irr_bit(&f, 0, 0x55));
    g_assert_cmpuint(f.kicks[2], ==, 1);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_ICR_LOW), ==, 0x4055); /* delivery status idle */
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_ICR_HIGH), ==, 0x02000000);
    /* physical broadcast */
    ipi(&f, 1, 0xFF, 0x4056);
    for (unsigned i = 0; i < CPUS; i++)
        g_assert_true(irr_bit(&f, i, 0x56));
    /* a changed APIC ID is what physical destinations match */
    wr(&f, 3, LAPIC_REG_ID, 0x09000000);
    ipi(&f, 0, 9, 0x4057);
    g_assert_true(irr_bit(&f, 3, 0x57));
    ipi(&f, 0, 3, 0x4058);
    g_assert_false(irr_bit(&f, 3, 0x58));
    teardown(&f);
}

static void test_ipi_shorthands(void)
{
    struct fixture f;
    setup(&f);
    for (unsigned i = 1; i < CPUS; i++)
        enable(&f, i);
    ipi(&f, 1, 3, 0x44060); /* self, destination field ignored */
    g_assert_true(irr_bit(&f, 1, 0x60));
    g_assert_false(irr_bit(&f, 3, 0x60));
    ipi(&f, 1, 0, 0xC4061); /* all but self */
    g_assert_false(irr_bit(&f, 1, 0x61));
    g_assert_true(irr_bit(&f, 0, 0x61));
    g_assert_true(irr_bit(&f, 2, 0x61));
    g_assert_true(irr_bit(&f, 3, 0x61));
    ipi(&f, 2, 0, 0x84062); /* all including self */
    for (unsigned i = 0; i < CPUS; i++)
        g_assert_true(irr_bit(&f, i, 0x62));
    teardown(&f);
}

static void test_ipi_logical(void)
{
    struct fixture f;
    setup(&f);
    for (unsigned i = 0; i < CPUS; i++) {
        enable(&f, i);
        wr(&f, i, LAPIC_REG_LDR, 1u << (24 + i));
    }
    ipi(&f, 0, 0x06, 0x4870); /* flat: bits 1 and 2 */
    g_assert_false(irr_bit(&f, 0, 0x70));
    g_assert_true(irr_bit(&f, 1, 0x70));
    g_assert_true(irr_bit(&f, 2, 0x70));
    g_assert_false(irr_bit(&f, 3, 0x70));
    /* cluster model: cluster in LDR[31:28], members in LDR[27:24] */
    for (unsigned i = 0; i < CPUS; i++) {
        wr(&f, i, LAPIC_REG_DFR, 0x0FFFFFFF);
        wr(&f, i, LAPIC_REG_LDR, ((i < 2 ? 1u : 2u) << 28) | (1u << (24 + i % 2)));
    }
    ipi(&f, 0, 0x22, 0x4871); /* cluster 2, member bit 1: CPU 3 */
    g_assert_false(irr_bit(&f, 1, 0x71));
    g_assert_false(irr_bit(&f, 2, 0x71));
    g_assert_true(irr_bit(&f, 3, 0x71));
    ipi(&f, 0, 0x13, 0x4872); /* cluster 1, members 0 and 1 */
    g_assert_true(irr_bit(&f, 0, 0x72));
    g_assert_true(irr_bit(&f, 1, 0x72));
    g_assert_false(irr_bit(&f, 2, 0x72));
    teardown(&f);
}

static void test_ipi_lowest_priority(void)
{
    struct fixture f;
    setup(&f);
    for (unsigned i = 0; i < CPUS; i++) {
        enable(&f, i);
        wr(&f, i, LAPIC_REG_LDR, 1u << (24 + i));
    }
    wr(&f, 1, LAPIC_REG_TPR, 0x20);
    wr(&f, 2, LAPIC_REG_TPR, 0x10);
    wr(&f, 3, LAPIC_REG_TPR, 0x30);
    ipi(&f, 0, 0x0E, 0x4973);
    g_assert_false(irr_bit(&f, 1, 0x73));
    g_assert_true(irr_bit(&f, 2, 0x73));
    g_assert_false(irr_bit(&f, 3, 0x73));
    /* equal priorities: the lowest CPU number */
    wr(&f, 2, LAPIC_REG_TPR, 0x20);
    g_assert_cmpint(lapic_acknowledge(apic(&f, 2)), ==, 0x73);
    wr(&f, 2, LAPIC_REG_EOI, 0);
    g_assert_cmphex(rd(&f, 2, LAPIC_REG_APR), ==, 0x20);
    ipi(&f, 0, 0x0E, 0x4974);
    g_assert_true(irr_bit(&f, 1, 0x74));
    g_assert_false(irr_bit(&f, 2, 0x74));
    teardown(&f);
}

static void test_init_sipi(void)
{
    struct fixture f;
    setup(&f);
    struct lapic *ap = apic(&f, 1);
    uint8_t vector = 0;
    enable(&f, 1);
    wr(&f, 1, LAPIC_REG_TPR, 0x40);
    wr(&f, 1, LAPIC_REG_LDR, 0x05000000);
    g_assert_false(lapic_take_init(ap));
    ipi(&f, 0, 1, 0xC500); /* INIT, level assert */
    g_assert_cmpuint(f.kicks[1], ==, 1);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_TPR), ==, 0x40); /* INIT acts when the CPU takes it */
    g_assert_true(lapic_take_init(ap));
    g_assert_false(lapic_take_init(ap));
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_TPR), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_LDR), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_SVR), ==, 0xFF);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_ID), ==, 0x01000000);
    g_assert_cmphex(lapic_get_base(ap), ==, 0xFEE00800);
    ipi(&f, 0, 1, 0x8500); /* INIT level de-assert: no INIT */
    g_assert_false(lapic_take_init(ap));
    g_assert_false(lapic_take_sipi(ap, &vector));
    ipi(&f, 0, 1, 0x4608); /* STARTUP, page 8 */
    g_assert_cmpuint(f.kicks[1], ==, 2);
    g_assert_true(lapic_take_sipi(ap, &vector));
    g_assert_cmpuint(vector, ==, 0x08);
    g_assert_false(lapic_take_sipi(ap, &vector));
    g_assert_false(lapic_take_init(apic(&f, 2)));
    /* a stale SIPI does not survive the next INIT */
    ipi(&f, 0, 1, 0x4609);
    ipi(&f, 0, 1, 0xC500);
    g_assert_true(lapic_take_init(ap));
    g_assert_false(lapic_take_sipi(ap, &vector));
    /* a STARTUP sent after the INIT survives even if the CPU takes both late (a slow vCPU thread) */
    ipi(&f, 0, 1, 0xC500);
    ipi(&f, 0, 1, 0x460A);
    g_assert_true(lapic_take_init(ap));
    g_assert_true(lapic_take_sipi(ap, &vector));
    g_assert_cmpuint(vector, ==, 0x0A);
    teardown(&f);
}

static void test_nmi(void)
{
    struct fixture f;
    setup(&f);
    ipi(&f, 0, 2, 0x4400);
    g_assert_true(lapic_take_nmi(apic(&f, 2))); /* accepted even while software-disabled */
    g_assert_false(lapic_take_nmi(apic(&f, 2)));
    g_assert_false(lapic_take_nmi(apic(&f, 1)));
    /* LINT1 in NMI mode (the BSP's virtual wire setup) on a rising edge */
    lapic_set_lint(apic(&f, 0), 1, true);
    g_assert_true(lapic_take_nmi(apic(&f, 0)));
    lapic_set_lint(apic(&f, 0), 1, true);
    g_assert_false(lapic_take_nmi(apic(&f, 0)));
    /* masked LINT1 on an AP: nothing */
    lapic_set_lint(apic(&f, 1), 1, true);
    g_assert_false(lapic_take_nmi(apic(&f, 1)));
    teardown(&f);
}

static void test_spurious(void)
{
    struct fixture f;
    setup(&f);
    struct lapic *l = apic(&f, 0);
    g_assert_false(lapic_has_interrupt(l));
    g_assert_cmpint(lapic_acknowledge(l), ==, 0xFF);
    wr(&f, 0, LAPIC_REG_SVR, 0x1EF);
    g_assert_cmpint(lapic_acknowledge(l), ==, 0xEF);
    /* an interrupt masked by TPR also yields the spurious vector and stays pending */
    wr(&f, 0, LAPIC_REG_TPR, 0xF0);
    lapic_deliver(l, LAPIC_DM_FIXED, 0x80, false);
    g_assert_cmpint(lapic_acknowledge(l), ==, 0xEF);
    g_assert_true(irr_bit(&f, 0, 0x80));
    g_assert_false(isr_bit(&f, 0, 0x80));
    teardown(&f);
}

static void test_software_disable(void)
{
    struct fixture f;
    setup(&f);
    struct lapic *l = apic(&f, 0);
    wr(&f, 0, LAPIC_REG_LVT_TIMER, 0x45);
    wr(&f, 0, LAPIC_REG_SVR, 0x0FF);
    for (uint32_t r = LAPIC_REG_LVT_TIMER; r <= LAPIC_REG_LVT_ERROR; r += 0x10)
        g_assert_cmphex(rd(&f, 0, r) & LAPIC_LVT_MASKED, ==, LAPIC_LVT_MASKED);
    wr(&f, 0, LAPIC_REG_LVT_TIMER, 0x45); /* cannot unmask while disabled */
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_LVT_TIMER), ==, 0x10045);
    wr(&f, 0, LAPIC_REG_TIMER_DCR, 0xB);
    wr(&f, 0, LAPIC_REG_TIMER_ICR, 10);
    advance(&f, 100);
    g_assert_false(irr_bit(&f, 0, 0x45));
    ipi(&f, 1, 0, 0x4066); /* fixed interrupts are not accepted */
    g_assert_false(irr_bit(&f, 0, 0x66));
    ipi(&f, 1, 0, 0x4400); /* NMI is */
    g_assert_true(lapic_take_nmi(l));
    /* re-enabling leaves the LVTs masked until software unmasks them */
    wr(&f, 0, LAPIC_REG_SVR, 0x1FF);
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_LVT_TIMER), ==, 0x10045);
    teardown(&f);
}

static void test_apic_base_msr(void)
{
    struct fixture f;
    setup(&f);
    log_set_level(LOG_LEVEL_ERROR);
    struct lapic *l = apic(&f, 1);
    enable(&f, 1);
    wr(&f, 1, LAPIC_REG_TPR, 0x20);
    g_assert_cmpint(lapic_set_base(l, 0xFEE00800 | LAPIC_BASE_X2APIC), ==, -EINVAL);
    g_assert_cmpint(lapic_set_base(l, 0xFEE00801), ==, -EINVAL);
    g_assert_cmpint(lapic_set_base(l, 0xFEE00800ull | (1ull << 60)), ==, -EINVAL);
    g_assert_cmphex(lapic_get_base(l), ==, 0xFEE00800);
    g_assert_cmpint(lapic_set_base(l, 0xFEE00900), ==, 0); /* BSP bit is read-only */
    g_assert_cmphex(lapic_get_base(l), ==, 0xFEE00800);
    g_assert_cmpint(lapic_set_base(l, 0xFEE00000), ==, 0);
    g_assert_false(lapic_hw_enabled(l));
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_VERSION), ==, 0xFFFFFFFF); /* the page is gone for this CPU */
    g_assert_cmphex(rd(&f, 0, LAPIC_REG_VERSION), ==, 0x00050014);
    ipi(&f, 0, 1, 0x4067);
    g_assert_false(lapic_has_interrupt(l));
    ipi(&f, 0, 1, 0x4400);
    g_assert_false(lapic_take_nmi(l));
    g_assert_cmpint(lapic_set_base(l, 0xFEE00800), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_SVR), ==, 0xFF); /* back in the power-on state */
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_TPR), ==, 0);
    g_assert_cmphex(rd(&f, 1, LAPIC_REG_ID), ==, 0x01000000);
    g_assert_cmphex(lapic_get_base(apic(&f, 0)), ==, 0xFEE00900);
    log_set_level(LOG_LEVEL_INFO);
    teardown(&f);
}

static void test_illegal_vectors(void)
{
    struct fixture f;
    setup(&f);
    log_set_level(LOG_LEVEL_ERROR);
    enable(&f, 1);
    ipi(&f, 0, 1, 0x4005);
    g_assert_cmphex(esr(&f, 0), ==, LAPIC_ESR_SEND_ILLEGAL_VECTOR);
    g_assert_cmphex(esr(&f, 1), ==, 0);
    lapic_deliver(apic(&f, 1), LAPIC_DM_FIXED, 0x0F, false);
    for (uint32_t r = 0; r < 8; r++)
        g_assert_cmphex(rd(&f, 1, LAPIC_REG_IRR + r * 0x10), ==, 0);
    /* the error LVT reports it; its own illegal vector does not loop */
    wr(&f, 1, LAPIC_REG_LVT_ERROR, 0x03);
    lapic_deliver(apic(&f, 1), LAPIC_DM_FIXED, 0x0E, false);
    g_assert_cmphex(esr(&f, 1), ==, LAPIC_ESR_RECV_ILLEGAL_VECTOR);
    wr(&f, 1, LAPIC_REG_LVT_ERROR, 0xE3);
    lapic_deliver(apic(&f, 1), LAPIC_DM_FIXED, 0x01, false);
    g_assert_true(irr_bit(&f, 1, 0xE3));
    g_assert_cmphex(esr(&f, 1), ==, LAPIC_ESR_RECV_ILLEGAL_VECTOR);
    /* reserved ICR delivery modes are dropped */
    ipi(&f, 0, 1, 0x4370);
    ipi(&f, 0, 1, 0x4770);
    g_assert_false(irr_bit(&f, 1, 0x70));
    log_set_level(LOG_LEVEL_INFO);
    teardown(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/lapic/reset/register-values", test_reset_values);
    g_test_add_func("/lapic/regs/writable-bits-and-illegal-register", test_register_bits);
    g_test_add_func("/lapic/priority/tpr-sets-ppr", test_tpr_ppr);
    g_test_add_func("/lapic/priority/classes-through-irr-isr-and-eoi-order", test_priority_classes_and_eoi);
    g_test_add_func("/lapic/eoi/level-tmr-broadcasts-to-ioapic", test_level_eoi_broadcast);
    g_test_add_func("/lapic/timer/one-shot-expires-after-initial-times-divide", test_timer_one_shot);
    g_test_add_func("/lapic/timer/periodic-reloads", test_timer_periodic);
    g_test_add_func("/lapic/timer/divide-configuration-values", test_timer_divide_values);
    g_test_add_func("/lapic/timer/masked-sets-no-irr", test_timer_masked);
    g_test_add_func("/lapic/timer/tsc-deadline", test_timer_tsc_deadline);
    g_test_add_func("/lapic/ipi/fixed-physical-and-broadcast", test_ipi_fixed_physical);
    g_test_add_func("/lapic/ipi/self-all-all-but-self", test_ipi_shorthands);
    g_test_add_func("/lapic/ipi/logical-flat-and-cluster", test_ipi_logical);
    g_test_add_func("/lapic/ipi/lowest-priority-picks-lowest-tpr", test_ipi_lowest_priority);
    g_test_add_func("/lapic/ipi/init-sipi-starts-ap", test_init_sipi);
    g_test_add_func("/lapic/ipi/nmi-and-lint1", test_nmi);
    g_test_add_func("/lapic/accept/spurious-when-nothing-deliverable", test_spurious);
    g_test_add_func("/lapic/svr/software-disable-masks-lvt", test_software_disable);
    g_test_add_func("/lapic/msr/apic-base-enable-and-reserved-bits", test_apic_base_msr);
    g_test_add_func("/lapic/esr/illegal-vectors", test_illegal_vectors);
    return g_test_run();
}
