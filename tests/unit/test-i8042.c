/* Proves the i8042 with its PS/2 keyboard and mouse: self-tests, command byte, device commands, set 1
 * translation, mouse packets, IRQ 1/12, reset through the output port, bounded queues. */
#include <glib.h>

#include "device_harness.h"
#include "i8042.h"
#include "machine.h"

/* The controller's IRQ 1/12 and its reset requests. */
struct rec {
    struct irq_recorder irq;
    struct request_recorder req;
};

static const struct machine_device *const devices[] = {&i8042_device};

static void setup(struct machine *m, struct rec *r)
{
    dh_machine_init(m, devices, 1, 1, 16 << 20);
    dh_record_irqs(m, &r->irq, DH_GSI(1) | DH_GSI(12));
    dh_record_requests(m, &r->req, DH_REQUEST(MACHINE_REQUEST_RESET));
}

static uint8_t status(struct machine *m)
{
    return dh_inb(m, I8042_CMD_PORT);
}

/* Reads one byte, asserting it is there. */
static uint8_t read_data(struct machine *m)
{
    g_assert_cmphex(status(m) & I8042_STR_OBF, ==, I8042_STR_OBF);
    return dh_inb(m, I8042_DATA_PORT);
}

static void write_ctr(struct machine *m, uint8_t ctr)
{
    dh_outb(m, I8042_CMD_PORT, I8042_CMD_WRITE_RAM);
    dh_outb(m, I8042_DATA_PORT, ctr);
}

static uint8_t read_ctr(struct machine *m)
{
    dh_outb(m, I8042_CMD_PORT, I8042_CMD_READ_RAM);
    return read_data(m);
}

static void test_self_tests(void)
{
    struct machine m;
    struct rec r;
    setup(&m, &r);
    g_assert_cmphex(status(&m), ==, I8042_STR_KEYLOCK | I8042_STR_SYS);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_SELF_TEST);
    g_assert_cmphex(status(&m), ==, I8042_STR_KEYLOCK | I8042_STR_SYS | I8042_STR_CMD | I8042_STR_OBF);
    g_assert_cmphex(dh_inb(&m, I8042_DATA_PORT), ==, I8042_SELF_TEST_OK);
    g_assert_cmphex(status(&m) & I8042_STR_OBF, ==, 0);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_KBD_TEST);
    g_assert_cmphex(read_data(&m), ==, 0x00);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_AUX_TEST);
    g_assert_cmphex(read_data(&m), ==, 0x00);
    /* the controller's replies are "keyboard" data: IRQ 1 when enabled */
    g_assert_cmpuint(r.irq.raises[1], ==, 3);
    g_assert_cmpuint(r.irq.raises[12], ==, 0);
    dh_machine_fini(&m);
}

static void test_command_byte(void)
{
    struct machine m;
    struct rec r;
    setup(&m, &r);
    g_assert_cmphex(read_ctr(&m), ==, I8042_CTR_KBDINT | I8042_CTR_SYS | I8042_CTR_AUXDIS | I8042_CTR_XLATE);
    write_ctr(&m, 0x47);
    g_assert_cmphex(status(&m) & I8042_STR_CMD, ==, 0); /* last write went to the data port */
    g_assert_cmphex(read_ctr(&m), ==, 0x47);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_AUX_DISABLE);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_KBD_DISABLE);
    g_assert_cmphex(read_ctr(&m), ==, 0x47 | I8042_CTR_AUXDIS | I8042_CTR_KBDDIS);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_AUX_ENABLE);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_KBD_ENABLE);
    g_assert_cmphex(read_ctr(&m), ==, 0x47);
    /* SYS in the status register follows the command byte */
    write_ctr(&m, 0x00);
    g_assert_cmphex(status(&m) & I8042_STR_SYS, ==, 0);
    /* with interrupts off, replies raise no IRQ */
    unsigned before = r.irq.raises[1];
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_READ_RAM);
    g_assert_cmphex(read_data(&m), ==, 0x00);
    g_assert_cmpuint(r.irq.raises[1], ==, before);
    dh_machine_fini(&m);
}

static void test_kbd_reset_and_identify(void)
{
    struct machine m;
    struct rec r;
    setup(&m, &r);
    dh_outb(&m, I8042_DATA_PORT, 0xFF);
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    g_assert_cmphex(read_data(&m), ==, PS2_BAT_OK);
    g_assert_cmphex(status(&m) & I8042_STR_OBF, ==, 0);
    g_assert_cmpuint(r.irq.raises[1], ==, 2);
    g_assert_cmpint(r.irq.level[1], ==, 0);
    dh_outb(&m, I8042_DATA_PORT, 0xF2); /* translated: 0x83 becomes 0x41 */
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    g_assert_cmphex(read_data(&m), ==, 0xAB);
    g_assert_cmphex(read_data(&m), ==, 0x41);
    write_ctr(&m, I8042_CTR_KBDINT | I8042_CTR_SYS);
    dh_outb(&m, I8042_DATA_PORT, 0xF2);
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    g_assert_cmphex(read_data(&m), ==, 0xAB);
    g_assert_cmphex(read_data(&m), ==, 0x83);
    /* commands with a data byte */
    dh_outb(&m, I8042_DATA_PORT, 0xED);
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    dh_outb(&m, I8042_DATA_PORT, 0x07);
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    g_assert_cmpuint(m.i8042->kbd.leds, ==, 7);
    dh_outb(&m, I8042_DATA_PORT, 0xF0);
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    dh_outb(&m, I8042_DATA_PORT, 0x00);
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    g_assert_cmphex(read_data(&m), ==, 2);
    dh_outb(&m, I8042_DATA_PORT, 0xF3);
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    dh_outb(&m, I8042_DATA_PORT, 0x20);
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    dh_outb(&m, I8042_DATA_PORT, 0xEE);
    g_assert_cmphex(read_data(&m), ==, PS2_ECHO);
    dh_outb(&m, I8042_DATA_PORT, 0xF5);
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    g_assert_false(m.i8042->kbd.scanning);
    static const uint8_t a_make[] = {0x1C};
    i8042_keyboard_push(m.i8042, a_make, 1); /* not scanning: dropped */
    g_assert_cmphex(status(&m) & I8042_STR_OBF, ==, 0);
    dh_outb(&m, I8042_DATA_PORT, 0xF4);
    g_assert_cmphex(read_data(&m), ==, PS2_ACK);
    g_assert_true(m.i8042->kbd.scanning);
    dh_machine_fini(&m);
}

static void test_kbd_translation(void)
{
    struct machine m;
    struct rec r;
    setup(&m, &r);
    /* A make/break, Up make/break, Q, Esc, F7 (0x83) */
    static const uint8_t set2[] = {0x1C, 0xF0, 0x1C, 0xE0, 0x75, 0xE0, 0xF0,
                                   0x75, 0x15, 0x76, 0x83, 0xF0, 0x83};
    static const uint8_t set1[] = {0x1E, 0x9E, 0xE0, 0x48, 0xE0, 0xC8, 0x10, 0x01, 0x41, 0xC1};
    i8042_keyboard_push(m.i8042, set2, sizeof(set2));
    for (unsigned i = 0; i < sizeof(set1); i++) {
        g_assert_cmpint(r.irq.level[1], ==, 1);
        g_assert_cmphex(read_data(&m), ==, set1[i]);
    }
    g_assert_cmpint(r.irq.level[1], ==, 0);
    g_assert_cmpuint(r.irq.raises[1], ==, sizeof(set1));
    g_assert_cmphex(status(&m) & I8042_STR_OBF, ==, 0);
    /* without translation the keyboard's set 2 bytes arrive as they are */
    write_ctr(&m, I8042_CTR_KBDINT | I8042_CTR_SYS);
    i8042_keyboard_push(m.i8042, set2, 3);
    g_assert_cmphex(read_data(&m), ==, 0x1C);
    g_assert_cmphex(read_data(&m), ==, 0xF0);
    g_assert_cmphex(read_data(&m), ==, 0x1C);
    /* a disabled keyboard interface holds bytes back */
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_KBD_DISABLE);
    i8042_keyboard_push(m.i8042, set2, 1);
    g_assert_cmphex(status(&m) & I8042_STR_OBF, ==, 0);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_KBD_ENABLE);
    g_assert_cmphex(read_data(&m), ==, 0x1C);
    dh_machine_fini(&m);
}

static void enable_mouse(struct machine *m)
{
    dh_outb(m, I8042_CMD_PORT, I8042_CMD_AUX_ENABLE);
    write_ctr(m, I8042_CTR_KBDINT | I8042_CTR_AUXINT | I8042_CTR_SYS | I8042_CTR_XLATE);
}

static void mouse_cmd(struct machine *m, uint8_t v)
{
    dh_outb(m, I8042_CMD_PORT, I8042_CMD_AUX_SEND);
    dh_outb(m, I8042_DATA_PORT, v);
}

/* Reads one byte that must come from the mouse. */
static uint8_t read_aux(struct machine *m)
{
    g_assert_cmphex(status(m) & (I8042_STR_OBF | I8042_STR_AUXDATA), ==, I8042_STR_OBF | I8042_STR_AUXDATA);
    return dh_inb(m, I8042_DATA_PORT);
}

static void test_mouse_packets(void)
{
    struct machine m;
    struct rec r;
    setup(&m, &r);
    enable_mouse(&m);
    mouse_cmd(&m, 0xFF);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    g_assert_cmphex(read_aux(&m), ==, PS2_BAT_OK);
    g_assert_cmphex(read_aux(&m), ==, 0x00);
    g_assert_cmpuint(r.irq.raises[12], ==, 3);
    g_assert_cmpuint(r.irq.raises[1], ==, 0);
    i8042_mouse_push(m.i8042, 10, -5, 0, 1); /* reporting still off */
    g_assert_cmphex(status(&m) & I8042_STR_OBF, ==, 0);
    mouse_cmd(&m, 0xF4);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    i8042_mouse_push(m.i8042, 10, -5, 0, 1);
    g_assert_cmpint(r.irq.level[12], ==, 1);
    g_assert_cmphex(read_aux(&m), ==, 0x08 | 0x01 | 0x20); /* left button, Y negative */
    g_assert_cmphex(read_aux(&m), ==, 10);
    g_assert_cmphex(read_aux(&m), ==, 0xFB);
    g_assert_cmpint(r.irq.level[12], ==, 0);
    i8042_mouse_push(m.i8042, -300, 400, 0, 6); /* overflow both, right+middle */
    g_assert_cmphex(read_aux(&m), ==, 0x08 | 0x06 | 0x10 | 0x40 | 0x80);
    g_assert_cmphex(read_aux(&m), ==, 0x00); /* -256 */
    g_assert_cmphex(read_aux(&m), ==, 0xFF); /* 255 */
    /* status request */
    mouse_cmd(&m, 0xE8);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    mouse_cmd(&m, 0x03);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    mouse_cmd(&m, 0xE9);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    g_assert_cmphex(read_aux(&m), ==, 0x20 | 0x02 | 0x01); /* enabled, middle, right */
    g_assert_cmphex(read_aux(&m), ==, 0x03);
    g_assert_cmphex(read_aux(&m), ==, 100);
    /* remote mode: no stream packets */
    mouse_cmd(&m, 0xF0);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    i8042_mouse_push(m.i8042, 1, 1, 0, 0);
    g_assert_cmphex(status(&m) & I8042_STR_OBF, ==, 0);
    mouse_cmd(&m, 0xEA);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    mouse_cmd(&m, 0xF5);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    i8042_mouse_push(m.i8042, 1, 1, 0, 0);
    g_assert_cmphex(status(&m) & I8042_STR_OBF, ==, 0);
    dh_machine_fini(&m);
}

static void test_intellimouse(void)
{
    struct machine m;
    struct rec r;
    setup(&m, &r);
    enable_mouse(&m);
    mouse_cmd(&m, 0xF2);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    g_assert_cmphex(read_aux(&m), ==, 0x00);
    static const uint8_t magic[] = {200, 100, 80};
    for (unsigned i = 0; i < 3; i++) {
        mouse_cmd(&m, 0xF3);
        g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
        mouse_cmd(&m, magic[i]);
        g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    }
    mouse_cmd(&m, 0xF2);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    g_assert_cmphex(read_aux(&m), ==, 0x03);
    mouse_cmd(&m, 0xF4);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    i8042_mouse_push(m.i8042, 0, 0, -1, 0);
    g_assert_cmphex(read_aux(&m), ==, 0x08);
    g_assert_cmphex(read_aux(&m), ==, 0x00);
    g_assert_cmphex(read_aux(&m), ==, 0x00);
    g_assert_cmphex(read_aux(&m), ==, 0xFF);
    g_assert_cmphex(status(&m) & I8042_STR_OBF, ==, 0);
    dh_machine_fini(&m);
}

static void test_loop_commands(void)
{
    struct machine m;
    struct rec r;
    setup(&m, &r);
    enable_mouse(&m);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_AUX_LOOP); /* Linux's aux port check */
    dh_outb(&m, I8042_DATA_PORT, 0x5A);
    g_assert_cmphex(read_aux(&m), ==, 0x5A);
    g_assert_cmpuint(r.irq.raises[12], ==, 1);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_KBD_LOOP);
    dh_outb(&m, I8042_DATA_PORT, 0x12);
    g_assert_cmphex(status(&m) & I8042_STR_AUXDATA, ==, 0);
    g_assert_cmphex(read_data(&m), ==, 0x12);
    dh_machine_fini(&m);
}

static void test_reset_requests(void)
{
    struct machine m;
    struct rec r;
    setup(&m, &r);
    dh_outb(&m, I8042_CMD_PORT, 0xFF); /* pulse nothing */
    g_assert_cmpuint(r.req.resets, ==, 0);
    dh_outb(&m, I8042_CMD_PORT, 0xFE);
    g_assert_cmpuint(r.req.resets, ==, 1);
    dh_outb(&m, I8042_CMD_PORT, 0xF0); /* pulses bits 0-3, including reset */
    g_assert_cmpuint(r.req.resets, ==, 2);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_READ_OUTPUT);
    g_assert_cmphex(read_data(&m) & (I8042_OUT_RESET | I8042_OUT_A20), ==, I8042_OUT_RESET | I8042_OUT_A20);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_WRITE_OUTPUT);
    dh_outb(&m, I8042_DATA_PORT, 0xDD); /* A20 off, reset line high */
    g_assert_cmpuint(r.req.resets, ==, 2);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_READ_OUTPUT);
    g_assert_cmphex(read_data(&m) & 0x03, ==, 0x01);
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_WRITE_OUTPUT);
    dh_outb(&m, I8042_DATA_PORT, 0xDE); /* reset line low */
    g_assert_cmpuint(r.req.resets, ==, 3);
    dh_machine_fini(&m);
}

static void test_full_queue(void)
{
    struct machine m;
    struct rec r;
    setup(&m, &r);
    write_ctr(&m, I8042_CTR_KBDINT | I8042_CTR_SYS); /* untranslated, so bytes map one to one */
    uint8_t keys[200];
    for (unsigned i = 0; i < sizeof(keys); i++)
        keys[i] = (uint8_t)(i & 0x7F);
    i8042_keyboard_push(m.i8042, keys, sizeof(keys));
    /* the keyboard's queue holds 64 (one of them now in the output buffer), the rest is dropped */
    g_assert_cmpuint(m.i8042->dropped, ==, sizeof(keys) - I8042_QUEUE_SIZE);
    for (unsigned i = 0; i < I8042_QUEUE_SIZE; i++)
        g_assert_cmphex(read_data(&m), ==, keys[i]);
    g_assert_cmphex(status(&m) & I8042_STR_OBF, ==, 0);
    /* a mouse that is never read: packets are dropped whole */
    enable_mouse(&m);
    mouse_cmd(&m, 0xF4);
    g_assert_cmphex(read_aux(&m), ==, PS2_ACK);
    for (int i = 0; i < 100; i++)
        i8042_mouse_push(m.i8042, i, i, 0, 0);
    unsigned n = 0;
    while (status(&m) & I8042_STR_OBF) {
        dh_inb(&m, I8042_DATA_PORT);
        n++;
    }
    g_assert_cmpuint(n, ==, 21 * 3); /* whole packets only: 21 fit the buffer plus queue */
    /* many controller commands without reading */
    for (int i = 0; i < 50; i++)
        dh_outb(&m, I8042_CMD_PORT, I8042_CMD_SELF_TEST);
    n = 0;
    while (status(&m) & I8042_STR_OBF) {
        dh_inb(&m, I8042_DATA_PORT);
        n++;
    }
    g_assert_cmpuint(n, ==, 1 + I8042_CTRL_QUEUE_SIZE);
    dh_machine_fini(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/i8042/ctrl/self-tests", test_self_tests);
    g_test_add_func("/i8042/ctrl/command-byte-read-write", test_command_byte);
    g_test_add_func("/i8042/ctrl/d2-d3-loop-back-as-kbd-and-aux", test_loop_commands);
    g_test_add_func("/i8042/ctrl/reset-through-pulse-and-output-port", test_reset_requests);
    g_test_add_func("/i8042/kbd/reset-identify-and-commands", test_kbd_reset_and_identify);
    g_test_add_func("/i8042/kbd/push-translated-to-set1-with-irq1", test_kbd_translation);
    g_test_add_func("/i8042/mouse/packets-on-irq12", test_mouse_packets);
    g_test_add_func("/i8042/mouse/intellimouse-wheel", test_intellimouse);
    g_test_add_func("/i8042/queue/full-queues-drop", test_full_queue);
    return g_test_run();
}
