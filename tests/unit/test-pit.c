/* Proves the 8254 PIT: IRQ 0 edges at exact virtual times, counting, latches, read-back, access modes, BCD
 * and counter 2 through port 0x61 as Linux's quick_pit_calibrate uses it. */
#include <glib.h>

#include "device_harness.h"
#include "machine.h"
#include "pit.h"
#include "sysctl_ports.h"

static const struct machine_device *const pit_only[] = {&pit_device};
static const struct machine_device *const pit_sysctl[] = {&pit_device, &sysctl_ports_device};

static void setup(struct machine *m, struct irq_recorder *r, const struct machine_device *const *devs,
                  unsigned n)
{
    dh_machine_init(m, devs, n, 1, 16 << 20);
    dh_record_irqs(m, r, DH_ANY_GSI);
}

static void advance(struct machine *m, int64_t ns)
{
    vclock_advance(m->clock, ns);
}

static void test_mode2_edges(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_only, 1);
    dh_outb(&m, 0x43, 0x34); /* counter 0, LSB then MSB, mode 2, binary */
    dh_outb(&m, 0x40, 1193 & 0xFF);
    dh_outb(&m, 0x40, 1193 >> 8);
    g_assert_cmpuint(dh_rising_edges(r, 0, NULL, 0), ==, 0);
    advance(&m, 5000000);
    int64_t t[8];
    g_assert_cmpuint(dh_rising_edges(r, 0, t, 8), ==, 5);
    /* edge k at ceil(k * 1193 / 1.193182 MHz) */
    g_assert_cmpint(t[0], ==, 999848);
    g_assert_cmpint(t[1], ==, 1999695);
    g_assert_cmpint(t[2], ==, 2999543);
    g_assert_cmpint(t[3], ==, 3999390);
    g_assert_cmpint(t[4], ==, 4999238);
    /* one pulse per period: the line returns low after each edge */
    g_assert_cmpint(r->events[r->nevents - 1].level, ==, 0);
    dh_machine_fini(&m);
    g_free(r);
}

static void test_mode3_edges(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_only, 1);
    advance(&m, 1000);       /* start at a non-zero time */
    dh_outb(&m, 0x43, 0x36); /* counter 0, mode 3 */
    dh_outb(&m, 0x40, 11932 & 0xFF);
    dh_outb(&m, 0x40, 11932 >> 8);
    advance(&m, 45000000);
    int64_t t[8];
    g_assert_cmpuint(dh_rising_edges(r, 0, t, 8), ==, 4);
    g_assert_cmpint(t[0], ==, 1000 + 10000151);
    g_assert_cmpint(t[1], ==, 1000 + 20000302);
    g_assert_cmpint(t[3], ==, 1000 + 40000604);
    dh_machine_fini(&m);
    g_free(r);
}

static void test_mode3_out_halves(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_only, 1);
    dh_outb(&m, 0x43, 0x36);
    dh_outb(&m, 0x40, 100);
    dh_outb(&m, 0x40, 0);
    advance(&m, 49 * 838 + 100); /* 49 ticks: first half (50 ticks high) */
    dh_outb(&m, 0x43, 0xE2);
    g_assert_cmpuint(dh_inb(&m, 0x40), ==, 0x80 | 0x30 | (3 << 1));
    advance(&m, 2 * 838); /* 51 ticks: second half, low */
    dh_outb(&m, 0x43, 0xE2);
    g_assert_cmpuint(dh_inb(&m, 0x40), ==, 0x30 | (3 << 1));
    dh_machine_fini(&m);
    g_free(r);
}

static void test_mode0_single_edge(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_only, 1);
    dh_outb(&m, 0x43, 0x30); /* mode 0 */
    dh_outb(&m, 0x40, 1000 & 0xFF);
    dh_outb(&m, 0x40, 1000 >> 8);
    dh_outb(&m, 0x43, 0xE2);
    g_assert_cmpuint(dh_inb(&m, 0x40) & 0x80, ==, 0); /* OUT low while counting */
    advance(&m, 100000000);
    int64_t t[4];
    g_assert_cmpuint(dh_rising_edges(r, 0, t, 4), ==, 1);
    g_assert_cmpint(t[0], ==, 838096);
    dh_outb(&m, 0x43, 0xE2);
    g_assert_cmpuint(dh_inb(&m, 0x40) & 0x80, ==, 0x80); /* OUT stays high after terminal count */
    dh_machine_fini(&m);
    g_free(r);
}

static void test_latch_running_count(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_only, 1);
    dh_outb(&m, 0x43, 0x34);
    dh_outb(&m, 0x40, 50000 & 0xFF);
    dh_outb(&m, 0x40, 50000 >> 8);
    advance(&m, 10000000);   /* 11931 ticks */
    dh_outb(&m, 0x43, 0x00); /* counter latch, counter 0 */
    advance(&m, 1000000);
    dh_outb(&m, 0x43, 0x00); /* a second latch before reading is ignored */
    uint16_t v = dh_inb(&m, 0x40);
    v |= (uint16_t)(dh_inb(&m, 0x40) << 8);
    g_assert_cmpuint(v, ==, 50000 - 11931);
    /* live read now: 11 ms = 13125 ticks */
    v = dh_inb(&m, 0x40);
    v |= (uint16_t)(dh_inb(&m, 0x40) << 8);
    g_assert_cmpuint(v, ==, 50000 - 13125);
    dh_machine_fini(&m);
    g_free(r);
}

static void test_readback(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_sysctl, 2);
    dh_outb(&m, 0x43, 0x34);
    dh_outb(&m, 0x40, 0x00);
    dh_outb(&m, 0x40, 0x80); /* 32768 */
    dh_outb(&m, 0x43, 0xB0); /* counter 2, mode 0: gate is low, so it holds */
    dh_outb(&m, 0x42, 0x34);
    dh_outb(&m, 0x42, 0x12);
    advance(&m, 1000000);                  /* 1193 ticks */
    dh_outb(&m, 0x43, 0xC0 | 0x02 | 0x08); /* read-back status and count of counters 0 and 2 */
    advance(&m, 500000);
    /* status first: OUT high, LSB/MSB, mode 2 */
    g_assert_cmpuint(dh_inb(&m, 0x40), ==, 0x80 | 0x30 | (2 << 1));
    uint16_t v = dh_inb(&m, 0x40);
    v |= (uint16_t)(dh_inb(&m, 0x40) << 8);
    g_assert_cmpuint(v, ==, 32768 - 1193);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x30); /* OUT low (mode 0 counting), mode 0 */
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x34);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x12);
    /* status right after the control word: null count */
    dh_outb(&m, 0x43, 0x70); /* counter 1, mode 0 */
    dh_outb(&m, 0x43, 0xE4); /* status only, counter 1 */
    g_assert_cmpuint(dh_inb(&m, 0x41), ==, 0x40 | 0x30);
    dh_machine_fini(&m);
    g_free(r);
}

static void test_access_modes(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_only, 1);
    /* counter 2's gate is low: counts are loaded but do not move */
    dh_outb(&m, 0x43, 0x90); /* LSB only, mode 0 */
    dh_outb(&m, 0x42, 0x5A);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x5A);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x5A);
    dh_outb(&m, 0x43, 0xA0); /* MSB only */
    dh_outb(&m, 0x42, 0x12);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x12);
    dh_outb(&m, 0x43, 0x80); /* latch: MSB-only mode returns one byte */
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x12);
    dh_outb(&m, 0x43, 0xB0); /* LSB then MSB */
    dh_outb(&m, 0x42, 0xCD);
    dh_outb(&m, 0x42, 0xAB);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0xCD);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0xAB);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0xCD);
    /* counting follows the gate */
    pit_set_gate(m.pit, 2, true);
    advance(&m, 83810); /* 100 ticks */
    dh_outb(&m, 0x43, 0x80);
    uint16_t v = dh_inb(&m, 0x42);
    v |= (uint16_t)(dh_inb(&m, 0x42) << 8);
    g_assert_cmpuint(v, ==, 0xABCD - 100);
    pit_set_gate(m.pit, 2, false); /* mode 0: gate low pauses */
    advance(&m, 1000000);
    dh_outb(&m, 0x43, 0x80);
    v = dh_inb(&m, 0x42);
    v |= (uint16_t)(dh_inb(&m, 0x42) << 8);
    g_assert_cmpuint(v, ==, 0xABCD - 100);
    dh_machine_fini(&m);
    g_free(r);
}

static void test_bcd(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_only, 1);
    dh_outb(&m, 0x43, 0xB1); /* counter 2, mode 0, BCD */
    dh_outb(&m, 0x42, 0x00);
    dh_outb(&m, 0x42, 0x10); /* 1000 decimal */
    pit_set_gate(m.pit, 2, true);
    advance(&m, 83810); /* 100 ticks */
    dh_outb(&m, 0x43, 0x80);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x00);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x09); /* 0900 */
    /* count 0 in BCD is 10000 */
    dh_outb(&m, 0x43, 0xB1);
    dh_outb(&m, 0x42, 0x00);
    dh_outb(&m, 0x42, 0x00);
    advance(&m, 838); /* 0 ticks yet: shows 0000 */
    advance(&m, 1);   /* 1 tick: 9999 */
    dh_outb(&m, 0x43, 0x80);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x99);
    g_assert_cmpuint(dh_inb(&m, 0x42), ==, 0x99);
    dh_machine_fini(&m);
    g_free(r);
}

static void test_count_zero_is_65536(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_only, 1);
    dh_outb(&m, 0x43, 0x30); /* what Linux's pit_shutdown does: mode 0, count 0 */
    dh_outb(&m, 0x40, 0);
    dh_outb(&m, 0x40, 0);
    advance(&m, 54925402 - 1);
    g_assert_cmpuint(dh_rising_edges(r, 0, NULL, 0), ==, 0);
    advance(&m, 1);
    g_assert_cmpuint(dh_rising_edges(r, 0, NULL, 0), ==, 1);
    dh_machine_fini(&m);
    g_free(r);
}

static void test_tiny_reload_rate_limited(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_only, 1);
    dh_outb(&m, 0x43, 0x34);
    dh_outb(&m, 0x40, 2);
    dh_outb(&m, 0x40, 0);
    advance(&m, 1000000); /* 596 periods */
    unsigned edges = dh_rising_edges(r, 0, NULL, 0);
    g_assert_cmpuint(edges, >=, 15);
    g_assert_cmpuint(edges, <=, 21);
    g_assert_cmpuint(m.pit->lost_edges, >, 500);
    dh_machine_fini(&m);
    g_free(r);
}

/* Linux's quick_pit_calibrate: gate counter 2 on through port 0x61, mode 0 with 0xFFFF, poll the MSB. */
static void test_quick_pit_calibrate(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_sysctl, 2);
    dh_outb(&m, 0x61, (uint8_t)((dh_inb(&m, 0x61) & ~0x02) | 0x01));
    dh_outb(&m, 0x43, 0xB0);
    dh_outb(&m, 0x42, 0xFF);
    dh_outb(&m, 0x42, 0xFF);
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x20, ==, 0); /* OUT2 low while counting */
    unsigned last_msb = 0x100;
    for (int i = 0; i < 200; i++) {
        dh_inb(&m, 0x42); /* LSB */
        unsigned msb = dh_inb(&m, 0x42);
        g_assert_cmpuint(msb, <, last_msb);
        /* every 256 ticks (214553 ns) the MSB goes down by one */
        g_assert_cmpuint(msb, ==, 0xFF - i);
        last_msb = msb;
        advance(&m, 214553);
    }
    advance(&m, 54924564 - vclock_now(m.clock) - 1);
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x20, ==, 0);
    advance(&m, 1);
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x20, ==, 0x20); /* terminal count */
    /* gate off stops the count */
    dh_outb(&m, 0x61, 0x00);
    dh_outb(&m, 0x43, 0x80);
    uint16_t v = dh_inb(&m, 0x42);
    v |= (uint16_t)(dh_inb(&m, 0x42) << 8);
    advance(&m, 1000000);
    dh_outb(&m, 0x43, 0x80);
    uint16_t w = dh_inb(&m, 0x42);
    w |= (uint16_t)(dh_inb(&m, 0x42) << 8);
    g_assert_cmpuint(v, ==, w);
    /* counter 2 never interrupts */
    g_assert_cmpuint(dh_rising_edges(r, 0, NULL, 0), ==, 0);
    dh_machine_fini(&m);
    g_free(r);
}

static void test_reset_stops_timer(void)
{
    struct machine m;
    struct irq_recorder *r = g_new0(struct irq_recorder, 1);
    setup(&m, r, pit_only, 1);
    dh_outb(&m, 0x43, 0x34);
    dh_outb(&m, 0x40, 0xA9);
    dh_outb(&m, 0x40, 0x04);
    advance(&m, 1500000);
    g_assert_cmpuint(dh_rising_edges(r, 0, NULL, 0), ==, 1);
    machine_reset(&m);
    advance(&m, 10000000);
    g_assert_cmpuint(dh_rising_edges(r, 0, NULL, 0), ==, 1);
    g_assert_cmpint(vclock_next_deadline(m.clock), ==, INT64_MAX);
    dh_machine_fini(&m);
    g_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pit/mode2/edges-every-reload-period", test_mode2_edges);
    g_test_add_func("/pit/mode3/edges-every-reload-period", test_mode3_edges);
    g_test_add_func("/pit/mode3/out-high-then-low-half", test_mode3_out_halves);
    g_test_add_func("/pit/mode0/one-edge-at-terminal-count", test_mode0_single_edge);
    g_test_add_func("/pit/mode0/count-zero-means-65536", test_count_zero_is_65536);
    g_test_add_func("/pit/latch/holds-running-count", test_latch_running_count);
    g_test_add_func("/pit/readback/status-and-count-of-two-counters", test_readback);
    g_test_add_func("/pit/access/lsb-msb-order-and-gate", test_access_modes);
    g_test_add_func("/pit/bcd/counts-in-decimal", test_bcd);
    g_test_add_func("/pit/irq/tiny-reload-is-rate-limited", test_tiny_reload_rate_limited);
    g_test_add_func("/pit/ch2/quick-pit-calibrate-through-port-61", test_quick_pit_calibrate);
    g_test_add_func("/pit/reset/stops-interrupts", test_reset_stops_timer);
    return g_test_run();
}
