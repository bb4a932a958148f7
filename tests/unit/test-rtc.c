/* Proves the MC146818A RTC/CMOS: time formats, SET, advancing with the virtual clock, UIP, the three
 * interrupt sources on IRQ 8 with register C, and the firmware memory-size fields in NVRAM. */
#include <glib.h>

#include "device_harness.h"
#include "machine.h"
#include "rtc.h"

#define T_2024_03_15_13_45_30 1710510330 /* a Friday */
#define T_2024_03_15_00_00_00 1710460800

static const struct machine_device *const devices[] = {&rtc_device};

static void setup_cfg(struct machine *m, struct irq_recorder *r, uint64_t ram, unsigned cpus)
{
    dh_machine_init(m, devices, 1, cpus, ram);
    dh_record_irqs(m, r, DH_GSI(8));
}

static void setup(struct machine *m, struct irq_recorder *r)
{
    setup_cfg(m, r, 16 << 20, 1);
    vclock_advance(m->clock, 123456789); /* not at time zero */
    rtc_set_time(m->rtc, T_2024_03_15_13_45_30);
}

static uint8_t cmos_read(struct machine *m, uint8_t idx)
{
    dh_outb(m, 0x70, idx);
    return dh_inb(m, 0x71);
}

static void cmos_write(struct machine *m, uint8_t idx, uint8_t v)
{
    dh_outb(m, 0x70, idx);
    dh_outb(m, 0x71, v);
}

static void advance(struct machine *m, int64_t ns)
{
    vclock_advance(m->clock, ns);
}

static void test_read_bcd(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    g_assert_cmphex(cmos_read(&m, RTC_REG_B), ==, RTC_B_24H);
    g_assert_cmphex(cmos_read(&m, RTC_SECONDS), ==, 0x30);
    g_assert_cmphex(cmos_read(&m, RTC_MINUTES), ==, 0x45);
    g_assert_cmphex(cmos_read(&m, RTC_HOURS), ==, 0x13);
    g_assert_cmphex(cmos_read(&m, RTC_DAY_OF_WEEK), ==, 6);
    g_assert_cmphex(cmos_read(&m, RTC_DAY_OF_MONTH), ==, 0x15);
    g_assert_cmphex(cmos_read(&m, RTC_MONTH), ==, 0x03);
    g_assert_cmphex(cmos_read(&m, RTC_YEAR), ==, 0x24);
    g_assert_cmphex(cmos_read(&m, RTC_CENTURY), ==, 0x20);
    g_assert_cmphex(cmos_read(&m, RTC_REG_D), ==, RTC_D_VRT);
    dh_machine_fini(&m);
}

static void test_read_binary(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    cmos_write(&m, RTC_REG_B, RTC_B_24H | RTC_B_DM_BINARY);
    g_assert_cmpuint(cmos_read(&m, RTC_SECONDS), ==, 30);
    g_assert_cmpuint(cmos_read(&m, RTC_MINUTES), ==, 45);
    g_assert_cmpuint(cmos_read(&m, RTC_HOURS), ==, 13);
    g_assert_cmpuint(cmos_read(&m, RTC_DAY_OF_MONTH), ==, 15);
    g_assert_cmpuint(cmos_read(&m, RTC_MONTH), ==, 3);
    g_assert_cmpuint(cmos_read(&m, RTC_YEAR), ==, 24);
    g_assert_cmpuint(cmos_read(&m, RTC_CENTURY), ==, 20);
    dh_machine_fini(&m);
}

static void test_12h(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    cmos_write(&m, RTC_REG_B, 0); /* BCD, 12-hour */
    g_assert_cmphex(cmos_read(&m, RTC_HOURS), ==, RTC_HOUR_PM | 0x01);
    rtc_set_time(m.rtc, T_2024_03_15_00_00_00);
    g_assert_cmphex(cmos_read(&m, RTC_HOURS), ==, 0x12); /* midnight: 12 AM */
    rtc_set_time(m.rtc, T_2024_03_15_00_00_00 + 12 * 3600);
    g_assert_cmphex(cmos_read(&m, RTC_HOURS), ==, RTC_HOUR_PM | 0x12); /* noon: 12 PM */
    cmos_write(&m, RTC_REG_B, RTC_B_DM_BINARY);
    rtc_set_time(m.rtc, T_2024_03_15_00_00_00 + 23 * 3600);
    g_assert_cmphex(cmos_read(&m, RTC_HOURS), ==, RTC_HOUR_PM | 11);
    dh_machine_fini(&m);
}

static void test_advances(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    advance(&m, NSEC_PER_SEC - 1);
    g_assert_cmphex(cmos_read(&m, RTC_SECONDS), ==, 0x30);
    advance(&m, 1);
    g_assert_cmphex(cmos_read(&m, RTC_SECONDS), ==, 0x31);
    advance(&m, 29 * NSEC_PER_SEC); /* carries into minutes */
    g_assert_cmphex(cmos_read(&m, RTC_SECONDS), ==, 0x00);
    g_assert_cmphex(cmos_read(&m, RTC_MINUTES), ==, 0x46);
    g_assert_cmpint(rtc_get_time(m.rtc), ==, T_2024_03_15_13_45_30 + 30);
    dh_machine_fini(&m);
}

static void test_set_freezes(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    cmos_write(&m, RTC_REG_B, RTC_B_SET | RTC_B_24H);
    cmos_write(&m, RTC_HOURS, 0x08);
    cmos_write(&m, RTC_MINUTES, 0x00);
    cmos_write(&m, RTC_SECONDS, 0x00);
    cmos_write(&m, RTC_YEAR, 0x99);
    cmos_write(&m, RTC_CENTURY, 0x19);
    advance(&m, 5 * NSEC_PER_SEC);
    g_assert_cmphex(cmos_read(&m, RTC_SECONDS), ==, 0x00); /* no updates while SET */
    g_assert_cmphex(cmos_read(&m, RTC_HOURS), ==, 0x08);
    g_assert_cmphex(cmos_read(&m, RTC_REG_A) & RTC_A_UIP, ==, 0);
    cmos_write(&m, RTC_REG_B, RTC_B_24H);
    /* 1999-03-15 08:00:00 UTC */
    g_assert_cmpint(rtc_get_time(m.rtc), ==, 921484800);
    advance(&m, 2 * NSEC_PER_SEC);
    g_assert_cmphex(cmos_read(&m, RTC_SECONDS), ==, 0x02);
    g_assert_cmphex(cmos_read(&m, RTC_YEAR), ==, 0x99);
    /* writing a running clock's field moves the time */
    cmos_write(&m, RTC_MINUTES, 0x30);
    g_assert_cmpint(rtc_get_time(m.rtc), ==, 921484800 + 30 * 60 + 2);
    dh_machine_fini(&m);
}

static void test_uip_window(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r); /* the next update is exactly 1 s from now */
    g_assert_cmphex(cmos_read(&m, RTC_REG_A), ==, 0x26);
    advance(&m, NSEC_PER_SEC - RTC_UIP_NS - 1);
    g_assert_cmphex(cmos_read(&m, RTC_REG_A) & RTC_A_UIP, ==, 0);
    advance(&m, 1);
    g_assert_cmphex(cmos_read(&m, RTC_REG_A) & RTC_A_UIP, ==, RTC_A_UIP);
    g_assert_cmphex(cmos_read(&m, RTC_SECONDS), ==, 0x30); /* the old second until the update */
    advance(&m, RTC_UIP_NS - 1);
    g_assert_cmphex(cmos_read(&m, RTC_REG_A) & RTC_A_UIP, ==, RTC_A_UIP);
    advance(&m, 1);
    g_assert_cmphex(cmos_read(&m, RTC_REG_A) & RTC_A_UIP, ==, 0);
    g_assert_cmphex(cmos_read(&m, RTC_SECONDS), ==, 0x31);
    dh_machine_fini(&m);
}

static void test_update_irq(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    int64_t t0 = vclock_now(m.clock);
    /* The 1024 Hz divider tap ran since create. UF may be set too: create aligns updates to the host's second
     * boundaries, so the 123 ms the setup advanced crosses one when the host was late in its second. */
    g_assert_cmphex(cmos_read(&m, RTC_REG_C) & ~RTC_C_UF, ==, RTC_C_PF);
    cmos_write(&m, RTC_REG_A, 0x20);                         /* no periodic rate */
    g_assert_cmphex(cmos_read(&m, RTC_REG_C), ==, 0);
    cmos_write(&m, RTC_REG_B, RTC_B_24H | RTC_B_UIE);
    g_assert_cmpuint(r.nevents, ==, 0);
    advance(&m, 3 * NSEC_PER_SEC);
    g_assert_cmpuint(r.nevents, ==, 1); /* one edge; the line stays high until C is read */
    g_assert_cmpint(r.events[0].level, ==, 1);
    g_assert_cmpint(r.events[0].ns, ==, t0 + NSEC_PER_SEC);
    g_assert_cmphex(cmos_read(&m, RTC_REG_C), ==, RTC_C_IRQF | RTC_C_UF);
    g_assert_cmpuint(r.nevents, ==, 2);
    g_assert_cmpint(r.events[1].level, ==, 0);
    g_assert_cmphex(cmos_read(&m, RTC_REG_C), ==, 0); /* read clears */
    advance(&m, NSEC_PER_SEC);
    g_assert_cmpuint(r.nevents, ==, 3);
    g_assert_cmpint(r.events[2].ns, ==, t0 + 4 * NSEC_PER_SEC);
    /* without UIE the flag still sets, but no interrupt */
    cmos_write(&m, RTC_REG_B, RTC_B_24H);
    g_assert_cmpuint(r.nevents, ==, 4); /* IRQF dropped with UIE */
    g_assert_cmphex(cmos_read(&m, RTC_REG_C), ==, RTC_C_UF);
    advance(&m, NSEC_PER_SEC);
    g_assert_cmpuint(r.nevents, ==, 4);
    g_assert_cmphex(cmos_read(&m, RTC_REG_C), ==, RTC_C_UF);
    g_assert_cmpint(vclock_next_deadline(m.clock), ==, INT64_MAX); /* no timer without enables */
    dh_machine_fini(&m);
}

static void test_periodic_irq(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    int64_t t0 = vclock_now(m.clock);
    cmos_write(&m, RTC_REG_A, 0x26); /* 1024 Hz */
    cmos_read(&m, RTC_REG_C);        /* PF from before: enabling PIE would interrupt at once */
    cmos_write(&m, RTC_REG_B, RTC_B_24H | RTC_B_PIE);
    advance(&m, 2000000);
    g_assert_cmpuint(r.nevents, ==, 1);
    g_assert_cmpint(r.events[0].ns, ==, t0 + 976563); /* 1/1024 s */
    g_assert_cmphex(cmos_read(&m, RTC_REG_C), ==, RTC_C_IRQF | RTC_C_PF);
    advance(&m, 1000000); /* ticks at 2/1024 s (before the read) and 3/1024 s (timer) */
    g_assert_cmphex(cmos_read(&m, RTC_REG_C), ==, RTC_C_IRQF | RTC_C_PF);
    r.nevents = 0;
    int64_t now = vclock_now(m.clock) - t0; /* 3 ms; next tick at 4/1024 s */
    g_assert_cmpint(now, ==, 3000000);
    advance(&m, 1000000);
    g_assert_cmpuint(r.nevents, ==, 1);
    g_assert_cmpint(r.events[0].ns, ==, t0 + 3906250);
    /* rate select 15: 2 Hz */
    cmos_read(&m, RTC_REG_C);
    cmos_write(&m, RTC_REG_A, 0x2F);
    r.nevents = 0;
    advance(&m, NSEC_PER_SEC);
    g_assert_cmpuint(r.nevents, ==, 1);
    g_assert_cmpint(r.events[0].ns, ==, t0 + 500000000);
    dh_machine_fini(&m);
}

static void test_alarm_irq(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    int64_t t0 = vclock_now(m.clock);
    cmos_write(&m, RTC_REG_A, 0x20);
    cmos_read(&m, RTC_REG_C);
    cmos_write(&m, RTC_SECONDS_ALARM, 0x35);
    cmos_write(&m, RTC_MINUTES_ALARM, 0xC0); /* don't care */
    cmos_write(&m, RTC_HOURS_ALARM, 0xFF);   /* don't care */
    cmos_write(&m, RTC_REG_B, RTC_B_24H | RTC_B_AIE);
    advance(&m, 10 * NSEC_PER_SEC);
    g_assert_cmpuint(r.nevents, ==, 1);
    g_assert_cmpint(r.events[0].ns, ==, t0 + 5 * NSEC_PER_SEC); /* 13:45:35 */
    g_assert_cmphex(cmos_read(&m, RTC_REG_C), ==, RTC_C_IRQF | RTC_C_AF | RTC_C_UF);
    /* an exact alarm that does not match never fires */
    cmos_write(&m, RTC_MINUTES_ALARM, 0x44);
    r.nevents = 0;
    advance(&m, 120 * NSEC_PER_SEC);
    g_assert_cmpuint(r.nevents, ==, 0);
    dh_machine_fini(&m);
}

static void test_reset_clears_enables(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    cmos_write(&m, RTC_REG_B, RTC_B_24H | RTC_B_UIE | RTC_B_PIE);
    advance(&m, NSEC_PER_SEC);
    g_assert_cmpint(r.events[r.nevents - 1].level, ==, 1);
    machine_reset(&m);
    g_assert_cmpint(r.events[r.nevents - 1].level, ==, 0);
    g_assert_cmphex(cmos_read(&m, RTC_REG_B), ==, RTC_B_24H);
    g_assert_cmpint(rtc_get_time(m.rtc), ==, T_2024_03_15_13_45_30 + 1); /* time survives reset */
    dh_machine_fini(&m);
}

static void test_index_ports(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    cmos_write(&m, RTC_NMI_DISABLE | 0x40, 0x5A); /* NMI-disable bit is not part of the index */
    g_assert_true(m.rtc->nmi_disabled);
    g_assert_cmphex(cmos_read(&m, 0x40), ==, 0x5A);
    g_assert_false(m.rtc->nmi_disabled);
    g_assert_true(io_bus_write(&m.pio, 0x72, 1, 0xC0)); /* upper bank, index 0x40 */
    g_assert_true(io_bus_write(&m.pio, 0x73, 1, 0xA5));
    g_assert_cmphex(cmos_read(&m, 0x40), ==, 0x5A);
    uint64_t v = 0;
    g_assert_true(io_bus_read(&m.pio, 0x73, 1, &v));
    g_assert_cmphex(v, ==, 0xA5);
    /* register C and D ignore writes */
    cmos_write(&m, RTC_REG_D, 0x00);
    g_assert_cmphex(cmos_read(&m, RTC_REG_D), ==, RTC_D_VRT);
    /* garbage time while SET, then running: clamped, no crash */
    cmos_write(&m, RTC_REG_B, RTC_B_SET | RTC_B_24H);
    for (uint8_t i = 0; i <= RTC_YEAR; i++)
        cmos_write(&m, i, 0xFF);
    cmos_write(&m, RTC_CENTURY, 0xFF);
    cmos_write(&m, RTC_REG_B, RTC_B_24H);
    advance(&m, NSEC_PER_SEC);
    g_assert_cmphex(cmos_read(&m, RTC_MONTH), ==, 0x01); /* 9999-12-31 23:59:59 + 1 s wraps to year 0 */
    dh_machine_fini(&m);
}

static uint16_t cmos16(struct machine *m, uint8_t lo)
{
    return (uint16_t)(cmos_read(m, lo) | cmos_read(m, (uint8_t)(lo + 1)) << 8);
}

static void test_nvram_512m(void)
{
    struct machine m;
    struct irq_recorder r;
    setup_cfg(&m, &r, 512ull << 20, 2);
    g_assert_cmpuint(cmos16(&m, RTC_NVRAM_BASE_MEM_LO), ==, 640);
    g_assert_cmpuint(cmos16(&m, RTC_NVRAM_EXT_MEM_LO), ==, 0xFFFF);
    g_assert_cmpuint(cmos16(&m, RTC_NVRAM_EXT_MEM2_LO), ==, 0xFFFF);
    g_assert_cmpuint(cmos16(&m, RTC_NVRAM_MEM_16M_LO), ==, (512 - 16) * 16);
    g_assert_cmpuint(cmos_read(&m, RTC_NVRAM_MEM_4G_0), ==, 0);
    g_assert_cmpuint(cmos_read(&m, RTC_NVRAM_MEM_4G_1), ==, 0);
    g_assert_cmpuint(cmos_read(&m, RTC_NVRAM_MEM_4G_2), ==, 0);
    g_assert_cmpuint(cmos_read(&m, RTC_NVRAM_CPUS_MINUS_1), ==, 1);
    unsigned sum = 0;
    for (uint8_t i = 0x10; i <= 0x2D; i++)
        sum += cmos_read(&m, i);
    g_assert_cmpuint(sum, ==, 0x280);
    g_assert_cmphex(cmos_read(&m, RTC_NVRAM_CHECKSUM_HI), ==, 0x02);
    g_assert_cmphex(cmos_read(&m, RTC_NVRAM_CHECKSUM_LO), ==, 0x80);
    dh_machine_fini(&m);
}

static void test_nvram_small(void)
{
    struct machine m;
    struct irq_recorder r;
    setup_cfg(&m, &r, 32ull << 20, 1);
    g_assert_cmpuint(cmos16(&m, RTC_NVRAM_EXT_MEM_LO), ==, 31 * 1024);
    g_assert_cmpuint(cmos16(&m, RTC_NVRAM_MEM_16M_LO), ==, 16 * 16);
    g_assert_cmpuint(cmos_read(&m, RTC_NVRAM_CPUS_MINUS_1), ==, 0);
    unsigned sum = 0x80 + 0x02 + ((31 * 1024) & 0xFF) + ((31 * 1024) >> 8);
    g_assert_cmpuint(
        (unsigned)(cmos_read(&m, RTC_NVRAM_CHECKSUM_HI) << 8 | cmos_read(&m, RTC_NVRAM_CHECKSUM_LO)), ==,
        sum);
    dh_machine_fini(&m);
}

static void test_nvram_6g(void)
{
    struct machine m;
    struct irq_recorder r;
    setup_cfg(&m, &r, 6ull << 30, 4);
    g_assert_cmpuint(cmos16(&m, RTC_NVRAM_EXT_MEM_LO), ==, 0xFFFF);
    /* low RAM ends at 2.75 GiB: (0xB0000000 - 16 MiB) / 64 KiB */
    g_assert_cmphex(cmos16(&m, RTC_NVRAM_MEM_16M_LO), ==, 0xAF00);
    /* 6 GiB - 2.75 GiB = 3.25 GiB above 4 GiB = 0xD000 units of 64 KiB */
    g_assert_cmphex(cmos_read(&m, RTC_NVRAM_MEM_4G_0), ==, 0x00);
    g_assert_cmphex(cmos_read(&m, RTC_NVRAM_MEM_4G_1), ==, 0xD0);
    g_assert_cmphex(cmos_read(&m, RTC_NVRAM_MEM_4G_2), ==, 0x00);
    g_assert_cmpuint(cmos_read(&m, RTC_NVRAM_CPUS_MINUS_1), ==, 3);
    g_assert_cmphex(cmos_read(&m, RTC_NVRAM_CHECKSUM_HI), ==, 0x02);
    g_assert_cmphex(cmos_read(&m, RTC_NVRAM_CHECKSUM_LO), ==, 0x80);
    dh_machine_fini(&m);
}

static void test_host_time_at_create(void)
{
    struct machine m;
    struct irq_recorder r;
    time_t before = time(NULL);
    setup_cfg(&m, &r, 16 << 20, 1);
    time_t t = rtc_get_time(m.rtc);
    g_assert_cmpint(t, >=, before);
    g_assert_cmpint(t, <=, time(NULL));
    dh_machine_fini(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/rtc/time/reads-bcd", test_read_bcd);
    g_test_add_func("/rtc/time/reads-binary", test_read_binary);
    g_test_add_func("/rtc/time/12-hour-pm-bit", test_12h);
    g_test_add_func("/rtc/time/advances-with-vclock", test_advances);
    g_test_add_func("/rtc/time/set-bit-freezes-and-sets", test_set_freezes);
    g_test_add_func("/rtc/time/starts-from-host-utc", test_host_time_at_create);
    g_test_add_func("/rtc/uip/set-244us-before-update", test_uip_window);
    g_test_add_func("/rtc/irq/update-ended-and-c-clears", test_update_irq);
    g_test_add_func("/rtc/irq/periodic-rate-from-register-a", test_periodic_irq);
    g_test_add_func("/rtc/irq/alarm-with-dont-care", test_alarm_irq);
    g_test_add_func("/rtc/reset/clears-enables-keeps-time", test_reset_clears_enables);
    g_test_add_func("/rtc/index/nmi-bit-upper-bank-bad-values", test_index_ports);
    g_test_add_func("/rtc/nvram/512m-2cpus", test_nvram_512m);
    g_test_add_func("/rtc/nvram/32m", test_nvram_small);
    g_test_add_func("/rtc/nvram/6g-4cpus", test_nvram_6g);
    return g_test_run();
}
