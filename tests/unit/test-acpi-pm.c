/* Proves the ACPI PM block through its ports: S5 powers off and nothing else does, the power button's status
 * and the SCI level on GSI 9, write-1-to-clear, the PM timer's rate, wrap and overflow event, and odd-sized
 * accesses. */
#include <glib.h>

#include "acpi_pm.h"
#include "device_harness.h"
#include "machine.h"

static struct irq_recorder irqs;
static struct request_recorder requests;

static const struct machine_device *const devices[] = {&acpi_pm_device};

static void setup(struct machine *m)
{
    dh_machine_init(m, devices, G_N_ELEMENTS(devices), 1, 16 << 20);
    g_assert_nonnull(m->acpi_pm);
    dh_record_irqs(m, &irqs, DH_ANY_GSI);
    dh_record_requests(m, &requests, DH_ANY_REQUEST);
}

#define PM1_STS ACPI_PM1A_EVT_BLK
#define PM1_EN (ACPI_PM1A_EVT_BLK + 2)
#define PM1_CNT ACPI_PM1A_CNT_BLK
#define SLP(typ) ((unsigned)(typ) << ACPI_PM1_SLP_TYP_SHIFT)

static void test_s5_requests_shutdown(void)
{
    struct machine m;
    setup(&m);
    /* Linux writes SLP_TYP first, then SLP_TYP | SLP_EN */
    dh_pio_write(&m, PM1_CNT, 2, SLP(5) | ACPI_PM1_SCI_EN);
    g_assert_cmpint(requests.shutdowns, ==, 0);
    g_assert_cmphex(dh_pio_read(&m, PM1_CNT, 2), ==, SLP(5) | ACPI_PM1_SCI_EN);
    dh_pio_write(&m, PM1_CNT, 2, SLP(5) | ACPI_PM1_SLP_EN | ACPI_PM1_SCI_EN);
    g_assert_cmpint(requests.shutdowns, ==, 1);
    g_assert_cmpint(requests.resets + requests.other, ==, 0);
    /* SLP_EN is write-only */
    g_assert_cmphex(dh_pio_read(&m, PM1_CNT, 2) & ACPI_PM1_SLP_EN, ==, 0);
    /* the high byte alone carries SLP_TYP and SLP_EN */
    dh_pio_write(&m, PM1_CNT + 1, 1, (SLP(5) | ACPI_PM1_SLP_EN) >> 8);
    g_assert_cmpint(requests.shutdowns, ==, 2);
    dh_machine_fini(&m);
}

static void test_other_sleep_types_ignored(void)
{
    struct machine m;
    setup(&m);
    for (unsigned typ = 0; typ < 8; typ++) {
        if (typ == ACPI_PM_SLP_TYP_S5)
            continue;
        dh_pio_write(&m, PM1_CNT, 2, SLP(typ) | ACPI_PM1_SLP_EN);
        g_assert_cmpint(requests.shutdowns + requests.resets + requests.other, ==, 0);
        /* the guest is told it woke up at once */
        g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2) & ACPI_PM1_WAK_STS, ==, ACPI_PM1_WAK_STS);
        dh_pio_write(&m, PM1_STS, 2, ACPI_PM1_WAK_STS);
        g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2), ==, 0);
    }
    /* type 5 without SLP_EN does nothing either */
    dh_pio_write(&m, PM1_CNT, 2, SLP(5));
    g_assert_cmpint(requests.shutdowns, ==, 0);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0);
    dh_machine_fini(&m);
}

static void test_sci_en_reads_one(void)
{
    struct machine m;
    setup(&m);
    g_assert_cmphex(dh_pio_read(&m, PM1_CNT, 2), ==, ACPI_PM1_SCI_EN);
    dh_pio_write(&m, PM1_CNT, 2, 0);
    g_assert_cmphex(dh_pio_read(&m, PM1_CNT, 2), ==, ACPI_PM1_SCI_EN);
    /* reserved bits and GBL_RLS read as zero, BM_RLD sticks */
    dh_pio_write(&m, PM1_CNT, 2, 0xC3FE);
    g_assert_cmphex(dh_pio_read(&m, PM1_CNT, 2), ==, ACPI_PM1_SCI_EN | ACPI_PM1_BM_RLD | SLP(0));
    dh_machine_fini(&m);
}

static void test_power_button_and_sci(void)
{
    struct machine m;
    setup(&m);
    acpi_pm_press_power_button(m.acpi_pm);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2), ==, ACPI_PM1_PWRBTN_STS);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0); /* not enabled */
    dh_pio_write(&m, PM1_EN, 2, ACPI_PM1_PWRBTN_EN);
    g_assert_cmphex(dh_pio_read(&m, PM1_EN, 2), ==, ACPI_PM1_PWRBTN_EN);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 1);
    /* the level holds until the status is cleared */
    dh_pio_write(&m, PM1_EN, 2, ACPI_PM1_PWRBTN_EN);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 1);
    dh_pio_write(&m, PM1_STS, 2, ACPI_PM1_PWRBTN_STS);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2), ==, 0);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0);
    /* with the event enabled, a press raises the SCI at once */
    acpi_pm_press_power_button(m.acpi_pm);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 1);
    dh_pio_write(&m, PM1_EN, 2, 0);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2), ==, ACPI_PM1_PWRBTN_STS);
    /* no other GSI moved */
    for (unsigned g = 0; g < MACHINE_GSI_COUNT; g++)
        if (g != ACPI_SCI_IRQ)
            g_assert_cmpint(irqs.calls[g], ==, 0);
    dh_machine_fini(&m);
}

static void test_status_write_one_to_clear(void)
{
    struct machine m;
    setup(&m);
    acpi_pm_press_power_button(m.acpi_pm);
    dh_pio_write(&m, PM1_STS, 2, 0);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2), ==, ACPI_PM1_PWRBTN_STS);
    dh_pio_write(&m, PM1_STS, 2, (uint16_t)~ACPI_PM1_PWRBTN_STS);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2), ==, ACPI_PM1_PWRBTN_STS);
    dh_pio_write(&m, PM1_STS, 1, 0xFF); /* the low byte does not hold bit 8 */
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2), ==, ACPI_PM1_PWRBTN_STS);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS + 1, 1), ==, ACPI_PM1_PWRBTN_STS >> 8);
    dh_pio_write(&m, PM1_STS + 1, 1, ACPI_PM1_PWRBTN_STS >> 8);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2), ==, 0);
    /* EN keeps only the defined enable bits */
    dh_pio_write(&m, PM1_EN, 2, 0xFFFF);
    g_assert_cmphex(dh_pio_read(&m, PM1_EN, 2), ==,
                    ACPI_PM1_TMR_EN | ACPI_PM1_GBL_EN | ACPI_PM1_PWRBTN_EN | ACPI_PM1_SLPBTN_EN |
                        ACPI_PM1_RTC_EN);
    dh_machine_fini(&m);
}

static void test_timer_rate(void)
{
    struct machine m;
    setup(&m);
    g_assert_cmpuint(dh_pio_read(&m, ACPI_PM_TMR_BLK, 4), ==, 0);
    vclock_advance(m.clock, NSEC_PER_SEC);
    g_assert_cmpuint(dh_pio_read(&m, ACPI_PM_TMR_BLK, 4), ==, 3579545);
    vclock_advance(m.clock, 123456789);
    uint32_t t0 = (uint32_t)dh_pio_read(&m, ACPI_PM_TMR_BLK, 4);
    g_assert_cmpuint(t0, ==, 3579545 + 441919); /* floor(0.123456789 s * 3579545 Hz) */
    vclock_advance(m.clock, NSEC_PER_SEC);
    g_assert_cmpuint((uint32_t)dh_pio_read(&m, ACPI_PM_TMR_BLK, 4) - t0, ==, 3579545);
    /* one tick is 279.4 ns */
    int64_t before = vclock_now(m.clock);
    uint32_t a = (uint32_t)dh_pio_read(&m, ACPI_PM_TMR_BLK, 4);
    vclock_advance(m.clock, 280);
    g_assert_cmpuint((uint32_t)dh_pio_read(&m, ACPI_PM_TMR_BLK, 4) - a, <=, 1);
    g_assert_cmpint(vclock_now(m.clock) - before, ==, 280);
    /* writes do not move it */
    uint32_t t1 = (uint32_t)dh_pio_read(&m, ACPI_PM_TMR_BLK, 4);
    dh_pio_write(&m, ACPI_PM_TMR_BLK, 4, 0);
    g_assert_cmpuint(dh_pio_read(&m, ACPI_PM_TMR_BLK, 4), ==, t1);
    dh_machine_fini(&m);
}

static void test_timer_wraps(void)
{
    struct machine m;
    setup(&m);
    vclock_advance(m.clock, 1199 * NSEC_PER_SEC);
    g_assert_cmpuint(dh_pio_read(&m, ACPI_PM_TMR_BLK, 4), ==, 1199ull * 3579545);
    vclock_advance(m.clock, NSEC_PER_SEC);
    g_assert_cmpuint(dh_pio_read(&m, ACPI_PM_TMR_BLK, 4), ==, 1200ull * 3579545 - (1ull << 32));
    dh_machine_fini(&m);
}

static void test_timer_overflow_event(void)
{
    struct machine m;
    setup(&m);
    dh_pio_write(&m, PM1_EN, 2, ACPI_PM1_TMR_EN);
    vclock_advance(m.clock, 599 * NSEC_PER_SEC);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2) & ACPI_PM1_TMR_STS, ==, 0);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0);
    vclock_advance(m.clock, NSEC_PER_SEC);
    /* bit 31 toggled at tick 2^31, i.e. ceil(2^31 * 1e9 / 3579545) ns */
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2) & ACPI_PM1_TMR_STS, ==, ACPI_PM1_TMR_STS);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 1);
    g_assert_cmpint(irqs.last_change_ns[ACPI_SCI_IRQ], ==, 599932015941);
    dh_pio_write(&m, PM1_STS, 2, ACPI_PM1_TMR_STS);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2), ==, 0);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0);
    /* the next toggle, at tick 2^32 (the wrap) */
    vclock_advance(m.clock, 600 * NSEC_PER_SEC);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 1);
    g_assert_cmpint(irqs.last_change_ns[ACPI_SCI_IRQ], ==, 1199864031882);
    /* without TMR_EN the status still sets but the SCI stays low */
    dh_pio_write(&m, PM1_EN, 2, 0);
    dh_pio_write(&m, PM1_STS, 2, ACPI_PM1_TMR_STS);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0);
    vclock_advance(m.clock, 600 * NSEC_PER_SEC);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2) & ACPI_PM1_TMR_STS, ==, ACPI_PM1_TMR_STS);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0);
    dh_machine_fini(&m);
}

static void test_odd_accesses(void)
{
    struct machine m;
    setup(&m);
    acpi_pm_press_power_button(m.acpi_pm);
    dh_pio_write(&m, PM1_EN, 2, ACPI_PM1_PWRBTN_EN | ACPI_PM1_TMR_EN);
    /* one dword read covers STS and EN */
    g_assert_cmphex(dh_pio_read(&m, ACPI_PM1A_EVT_BLK, 4), ==,
                    ACPI_PM1_PWRBTN_STS | (uint32_t)(ACPI_PM1_PWRBTN_EN | ACPI_PM1_TMR_EN) << 16);
    g_assert_cmphex(dh_pio_read(&m, PM1_EN + 1, 1), ==, ACPI_PM1_PWRBTN_EN >> 8);
    /* bytes between registers read as all ones */
    g_assert_cmphex(dh_pio_read(&m, ACPI_PM1A_CNT_BLK + 2, 2), ==, 0xFFFF);
    g_assert_cmphex(dh_pio_read(&m, ACPI_PM1A_CNT_BLK, 4), ==, 0xFFFF0000u | ACPI_PM1_SCI_EN);
    g_assert_cmphex(dh_pio_read(&m, ACPI_PM_BASE + 0x10, 8), ==, UINT64_MAX);
    /* one dword write clears STS and sets EN */
    dh_pio_write(&m, ACPI_PM1A_EVT_BLK, 4, ACPI_PM1_PWRBTN_STS | (uint32_t)ACPI_PM1_RTC_EN << 16);
    g_assert_cmphex(dh_pio_read(&m, ACPI_PM1A_EVT_BLK, 4), ==, (uint32_t)ACPI_PM1_RTC_EN << 16);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0);
    /* GPE0: enables are stored, status bits never set and clear on write */
    dh_pio_write(&m, ACPI_GPE0_BLK + 4, 4, 0x000000FF);
    g_assert_cmphex(dh_pio_read(&m, ACPI_GPE0_BLK, 8), ==, 0x000000FF00000000ull);
    dh_pio_write(&m, ACPI_GPE0_BLK, 4, 0xFFFFFFFF);
    g_assert_cmphex(dh_pio_read(&m, ACPI_GPE0_BLK, 4), ==, 0);
    /* outside the block nothing answers */
    uint64_t v = 0;
    g_assert_false(io_bus_read(&m.pio, ACPI_PM_BASE + ACPI_PM_IO_LEN, 1, &v));
    g_assert_false(io_bus_read(&m.pio, ACPI_PM_BASE + ACPI_PM_IO_LEN - 2, 4, &v));
    dh_machine_fini(&m);
}

static void test_reset(void)
{
    struct machine m;
    setup(&m);
    dh_pio_write(&m, PM1_EN, 2, ACPI_PM1_PWRBTN_EN | ACPI_PM1_TMR_EN);
    dh_pio_write(&m, PM1_CNT, 2, SLP(3) | ACPI_PM1_BM_RLD);
    acpi_pm_press_power_button(m.acpi_pm);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 1);
    machine_reset(&m);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0);
    g_assert_cmphex(dh_pio_read(&m, PM1_STS, 2), ==, 0);
    g_assert_cmphex(dh_pio_read(&m, PM1_EN, 2), ==, 0);
    g_assert_cmphex(dh_pio_read(&m, PM1_CNT, 2), ==, ACPI_PM1_SCI_EN);
    /* the overflow timer was cancelled with TMR_EN */
    vclock_advance(m.clock, 700 * NSEC_PER_SEC);
    g_assert_cmpint(irqs.level[ACPI_SCI_IRQ], ==, 0);
    dh_machine_fini(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/acpi-pm/pm1-cnt/slp-typ-5-requests-shutdown", test_s5_requests_shutdown);
    g_test_add_func("/acpi-pm/pm1-cnt/other-sleep-types-only-set-wak-sts", test_other_sleep_types_ignored);
    g_test_add_func("/acpi-pm/pm1-cnt/sci-en-reads-one", test_sci_en_reads_one);
    g_test_add_func("/acpi-pm/power-button/sci-level-follows-sts-and-en", test_power_button_and_sci);
    g_test_add_func("/acpi-pm/pm1-sts/write-one-to-clear", test_status_write_one_to_clear);
    g_test_add_func("/acpi-pm/timer/3579545-ticks-per-virtual-second", test_timer_rate);
    g_test_add_func("/acpi-pm/timer/wraps-at-32-bits", test_timer_wraps);
    g_test_add_func("/acpi-pm/timer/bit31-toggle-sets-tmr-sts-and-sci", test_timer_overflow_event);
    g_test_add_func("/acpi-pm/registers/partial-spanning-and-hole-accesses", test_odd_accesses);
    g_test_add_func("/acpi-pm/reset/clears-status-enables-and-sci", test_reset);
    return g_test_run();
}
