/* Proves the system control ports: reset requests through 0xCF9 and 0x92, port 0x61's gate, refresh toggle
 * and counter 2 output, and the POST code sink. */
#include <glib.h>

#include "device_harness.h"
#include "machine.h"
#include "pit.h"
#include "sysctl_ports.h"

static const struct machine_device *const devices[] = {&pit_device, &sysctl_ports_device};

static void setup(struct machine *m, struct request_recorder *req)
{
    dh_machine_init(m, devices, G_N_ELEMENTS(devices), 1, 16 << 20);
    dh_record_requests(m, req, DH_ANY_REQUEST);
}

static void test_cf9_reset(void)
{
    struct machine m;
    struct request_recorder req;
    setup(&m, &req);
    dh_outb(&m, 0xCF9, 0x02); /* Linux first writes SYS_RST alone */
    g_assert_cmpuint(req.resets, ==, 0);
    g_assert_cmpuint(dh_inb(&m, 0xCF9), ==, 0x02);
    dh_outb(&m, 0xCF9, 0x06);
    g_assert_cmpuint(req.resets, ==, 1);
    g_assert_cmpuint(dh_inb(&m, 0xCF9), ==, 0x02); /* RST_CPU does not read back */
    dh_outb(&m, 0xCF9, 0x0E);
    g_assert_cmpuint(req.resets, ==, 2);
    g_assert_cmpuint(req.shutdowns + req.other, ==, 0);
    machine_reset(&m);
    g_assert_cmpuint(dh_inb(&m, 0xCF9), ==, 0x00);
    dh_machine_fini(&m);
}

static void test_cf9_forwarded(void)
{
    /* A PCI host bridge that owns 0xCF8-0xCFB forwards byte 0xCF9 through the exported accessors. */
    struct machine m;
    struct request_recorder req;
    setup(&m, &req);
    sysctl_ports_rcr_write(m.sysctl_ports, 0x06);
    g_assert_cmpuint(req.resets, ==, 1);
    g_assert_cmpuint(sysctl_ports_rcr_read(m.sysctl_ports), ==, 0x02);
    dh_machine_fini(&m);
}

static void test_port92_reset(void)
{
    struct machine m;
    struct request_recorder req;
    setup(&m, &req);
    dh_outb(&m, 0x92, 0x02); /* A20 only */
    g_assert_cmpuint(req.resets, ==, 0);
    g_assert_cmpuint(dh_inb(&m, 0x92), ==, 0x02);
    dh_outb(&m, 0x92, 0x03); /* bit 0 rising: reset */
    g_assert_cmpuint(req.resets, ==, 1);
    dh_outb(&m, 0x92, 0x03); /* stays 1: no new pulse */
    g_assert_cmpuint(req.resets, ==, 1);
    dh_outb(&m, 0x92, 0x02);
    dh_outb(&m, 0x92, 0x01);
    g_assert_cmpuint(req.resets, ==, 2);
    dh_machine_fini(&m);
}

static void test_port61_refresh_toggle(void)
{
    struct machine m;
    struct request_recorder req;
    setup(&m, &req);
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x10, ==, 0);
    vclock_advance(m.clock, 15085);
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x10, ==, 0x10);
    vclock_advance(m.clock, 15084);
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x10, ==, 0x10);
    vclock_advance(m.clock, 1);
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x10, ==, 0);
    dh_machine_fini(&m);
}

static void test_port61_gate_and_out(void)
{
    struct machine m;
    struct request_recorder req;
    setup(&m, &req);
    g_assert_false(pit_get_gate(m.pit, 2));
    dh_outb(&m, 0x61, 0x03); /* gate and speaker */
    g_assert_true(pit_get_gate(m.pit, 2));
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x0F, ==, 0x03);
    dh_outb(&m, 0x61, 0xF2); /* read-only bits ignored; gate off */
    g_assert_false(pit_get_gate(m.pit, 2));
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0xCF, ==, 0x02);
    /* counter 2 in mode 0 with gate low: OUT low, and it stays low while the gate is */
    dh_outb(&m, 0x43, 0xB0);
    dh_outb(&m, 0x42, 10);
    dh_outb(&m, 0x42, 0);
    vclock_advance(m.clock, 100000);
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x20, ==, 0);
    dh_outb(&m, 0x61, 0x01);
    vclock_advance(m.clock, 8381); /* 10 ticks */
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x20, ==, 0x20);
    /* mode 2 with the gate low holds OUT high */
    dh_outb(&m, 0x61, 0x00);
    dh_outb(&m, 0x43, 0xB4);
    dh_outb(&m, 0x42, 0x00);
    dh_outb(&m, 0x42, 0x10);
    g_assert_cmpuint(dh_inb(&m, 0x61) & 0x20, ==, 0x20);
    dh_machine_fini(&m);
}

static void test_post_code(void)
{
    struct machine m;
    struct request_recorder req;
    setup(&m, &req);
    dh_outb(&m, 0x80, 0x42);
    g_assert_cmpuint(dh_inb(&m, 0x80), ==, 0x42);
    /* a word access to a byte port is not decoded */
    g_assert_false(io_bus_write(&m.pio, 0x80, 2, 0x1234));
    dh_machine_fini(&m);
}

static void test_without_pit(void)
{
    /* On KVM the in-kernel PIT decodes port 0x61: without our PIT, sysctl leaves that port alone but keeps
     * the rest. */
    static const struct machine_device *const only[] = {&sysctl_ports_device};
    struct machine m;
    dh_machine_init(&m, only, 1, 1, 16 << 20);
    uint64_t v;
    g_assert_false(io_bus_read(&m.pio, 0x61, 1, &v));
    g_assert_nonnull(io_bus_find(&m.pio, 0x80, 1));
    g_assert_nonnull(io_bus_find(&m.pio, 0xCF9, 1));
    dh_machine_fini(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/sysctl/cf9/rst-cpu-requests-reset", test_cf9_reset);
    g_test_add_func("/sysctl/cf9/forwarded-by-host-bridge", test_cf9_forwarded);
    g_test_add_func("/sysctl/port92/bit0-rising-requests-reset", test_port92_reset);
    g_test_add_func("/sysctl/port61/refresh-bit-toggles-every-15us", test_port61_refresh_toggle);
    g_test_add_func("/sysctl/port61/timer2-gate-and-out", test_port61_gate_and_out);
    g_test_add_func("/sysctl/port80/post-code-sink", test_post_code);
    g_test_add_func("/sysctl/create/without-pit-leaves-port61-to-the-cpu-backend", test_without_pit);
    return g_test_run();
}
