/* Proves the i8042's keyboard and mouse as input handlers, through port I/O as a guest sees them: evdev keys
 * as set 2 translated to set 1 (and raw set 2, and set 1 when chosen), LEDs back to the input interface,
 * mouse packets with buttons and split motion, the IntelliMouse wheel after the 200/100/80 knock. */
#include <glib.h>

#include "device_harness.h"
#include "i8042.h"
#include "input.h"
#include "machine.h"
#include "scancode.h"

static const struct machine_device *const devices[] = {&i8042_device};

static struct machine m;
static struct irq_recorder irqs;

static void setup(void)
{
    dh_machine_init(&m, devices, 1, 1, 16 << 20);
    dh_record_irqs(&m, &irqs, DH_GSI(1) | DH_GSI(12));
}

static uint8_t status(void)
{
    return dh_inb(&m, I8042_CMD_PORT);
}

static uint8_t read_kbd(void)
{
    g_assert_cmphex(status() & (I8042_STR_OBF | I8042_STR_AUXDATA), ==, I8042_STR_OBF);
    return dh_inb(&m, I8042_DATA_PORT);
}

static uint8_t read_aux(void)
{
    g_assert_cmphex(status() & (I8042_STR_OBF | I8042_STR_AUXDATA), ==, I8042_STR_OBF | I8042_STR_AUXDATA);
    return dh_inb(&m, I8042_DATA_PORT);
}

static void assert_empty(void)
{
    g_assert_cmphex(status() & I8042_STR_OBF, ==, 0);
}

static void write_ctr(uint8_t ctr)
{
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_WRITE_RAM);
    dh_outb(&m, I8042_DATA_PORT, ctr);
}

static void kbd_cmd(uint8_t v)
{
    dh_outb(&m, I8042_DATA_PORT, v);
    g_assert_cmphex(read_kbd(), ==, PS2_ACK);
}

static void mouse_cmd(uint8_t v)
{
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_AUX_SEND);
    dh_outb(&m, I8042_DATA_PORT, v);
    g_assert_cmphex(read_aux(), ==, PS2_ACK);
}

static void key(unsigned code, bool down)
{
    input_send_key(m.input, code, down);
    input_sync(m.input);
}

static void expect_kbd(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g_assert_cmphex(read_kbd(), ==, b[i]);
    assert_empty();
}

#define EXPECT_KBD(...)                                                                                      \
    do {                                                                                                     \
        static const uint8_t want_[] = {__VA_ARGS__};                                                        \
        expect_kbd(want_, sizeof(want_));                                                                    \
    } while (0)

static void test_keys_translated(void)
{
    setup();
    key(KEY_A, true);
    g_assert_cmpint(irqs.level[1], ==, 1);
    EXPECT_KBD(0x1E);
    g_assert_cmpint(irqs.level[1], ==, 0);
    key(KEY_A, false);
    EXPECT_KBD(0x9E);
    key(KEY_RIGHTCTRL, true);
    key(KEY_RIGHTCTRL, false);
    EXPECT_KBD(0xE0, 0x1D, 0xE0, 0x9D);
    key(KEY_UP, true);
    EXPECT_KBD(0xE0, 0x48);
    key(KEY_PAUSE, true);
    key(KEY_PAUSE, false); /* Pause has no break code */
    EXPECT_KBD(0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5);
    /* Keys whose translation the table adds: keypad '=' (set 2 0F) and Power (E0 37). */
    key(117 /* KEY_KPEQUAL */, true);
    key(116 /* KEY_POWER */, true);
    EXPECT_KBD(0x59, 0xE0, 0x5E);
    dh_machine_fini(&m);
}

static void test_keys_raw_set2_and_set1(void)
{
    setup();
    write_ctr(I8042_CTR_KBDINT | I8042_CTR_SYS); /* translation off */
    key(KEY_A, true);
    key(KEY_A, false);
    key(KEY_KPENTER, false);
    EXPECT_KBD(0x1C, 0xF0, 0x1C, 0xE0, 0xF0, 0x5A);
    /* The guest asks the keyboard for set 1. */
    kbd_cmd(0xF0);
    kbd_cmd(0x01);
    key(KEY_A, true);
    key(KEY_KPENTER, false);
    EXPECT_KBD(0x1E, 0xE0, 0x9C);
    dh_machine_fini(&m);
}

static void test_keyboard_disabled_and_leds(void)
{
    setup();
    kbd_cmd(0xF5); /* scanning off: the keys are lost, as on a real keyboard */
    key(KEY_A, true);
    assert_empty();
    kbd_cmd(0xF4);
    key(KEY_A, true);
    EXPECT_KBD(0x1E);
    kbd_cmd(0xED);
    kbd_cmd(0x06); /* num + caps */
    g_assert_cmpuint(input_get_leds(m.input), ==, INPUT_LED_NUM_LOCK | INPUT_LED_CAPS_LOCK);
    dh_machine_fini(&m);
}

static void enable_mouse(void)
{
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_AUX_ENABLE);
    write_ctr(I8042_CTR_KBDINT | I8042_CTR_AUXINT | I8042_CTR_SYS | I8042_CTR_XLATE);
    mouse_cmd(0xF4);
}

static void expect_aux(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g_assert_cmphex(read_aux(), ==, b[i]);
    assert_empty();
}

#define EXPECT_AUX(...)                                                                                      \
    do {                                                                                                     \
        static const uint8_t want_[] = {__VA_ARGS__};                                                        \
        expect_aux(want_, sizeof(want_));                                                                    \
    } while (0)

static void test_mouse_packets(void)
{
    setup();
    /* Reporting off: nothing comes out. */
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_AUX_ENABLE);
    write_ctr(I8042_CTR_KBDINT | I8042_CTR_AUXINT | I8042_CTR_SYS | I8042_CTR_XLATE);
    input_send_rel(m.input, INPUT_AXIS_X, 4);
    input_sync(m.input);
    assert_empty();
    mouse_cmd(0xF4);
    /* One report: motion and a button in one packet; PS/2's y grows upwards. */
    input_send_rel(m.input, INPUT_AXIS_X, 10);
    input_send_rel(m.input, INPUT_AXIS_Y, 5);
    input_send_button(m.input, INPUT_BUTTON_LEFT, true);
    input_sync(m.input);
    g_assert_cmpint(irqs.level[12], ==, 1);
    EXPECT_AUX(0x08 | 0x01 | 0x20, 10, 0xFB);
    /* Long motion goes out in packets of at most 255 counts, never with the overflow bits. */
    input_send_rel(m.input, INPUT_AXIS_X, 300);
    input_send_rel(m.input, INPUT_AXIS_Y, -600);
    input_sync(m.input);
    EXPECT_AUX(0x09, 0xFF, 0xFF, 0x09, 45, 0xFF, 0x09, 0x00, 90);
    input_send_button(m.input, INPUT_BUTTON_LEFT, false);
    input_send_button(m.input, INPUT_BUTTON_RIGHT, true);
    input_sync(m.input);
    EXPECT_AUX(0x0A, 0x00, 0x00);
    /* Without a tablet, absolute positions move the mouse by their distance in pixels (1024 wide). */
    input_send_abs(m.input, INPUT_AXIS_X, 0x4000);
    input_sync(m.input);
    EXPECT_AUX(0x0A, 0xFF, 0x00, 0x0A, 0xFF, 0x00, 0x0A, 0x02, 0x00);
    /* A wheel step without the IntelliMouse knock is a plain (motionless) packet. */
    input_send_button(m.input, INPUT_BUTTON_WHEEL_UP, true);
    input_send_button(m.input, INPUT_BUTTON_WHEEL_UP, false);
    input_sync(m.input);
    EXPECT_AUX(0x0A, 0x00, 0x00);
    dh_machine_fini(&m);
}

static void test_intellimouse_wheel(void)
{
    setup();
    enable_mouse();
    static const uint8_t knock[] = {200, 100, 80};
    for (unsigned i = 0; i < 3; i++) {
        mouse_cmd(0xF3);
        mouse_cmd(knock[i]);
    }
    dh_outb(&m, I8042_CMD_PORT, I8042_CMD_AUX_SEND);
    dh_outb(&m, I8042_DATA_PORT, 0xF2);
    EXPECT_AUX(PS2_ACK, 0x03);
    input_send_button(m.input, INPUT_BUTTON_WHEEL_UP, true);
    input_send_button(m.input, INPUT_BUTTON_WHEEL_UP, false);
    input_sync(m.input);
    EXPECT_AUX(0x08, 0x00, 0x00, 0xFF);
    input_send_button(m.input, INPUT_BUTTON_WHEEL_DOWN, true);
    input_send_button(m.input, INPUT_BUTTON_WHEEL_DOWN, false);
    input_send_button(m.input, INPUT_BUTTON_WHEEL_DOWN, true);
    input_send_rel(m.input, INPUT_AXIS_X, -2);
    input_sync(m.input);
    EXPECT_AUX(0x18, 0xFE, 0x00, 0x02);
    /* A release-only report sends nothing. */
    input_send_button(m.input, INPUT_BUTTON_WHEEL_DOWN, false);
    input_sync(m.input);
    assert_empty();
    struct input_mouse_info info[4];
    g_assert_cmpuint(input_query_mice(m.input, info, 4), ==, 1);
    g_assert_cmpstr(info[0].name, ==, "deskvm PS/2 Mouse");
    g_assert_true(info[0].current);
    g_assert_false(info[0].absolute);
    dh_machine_fini(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ps2-input/kbd/evdev-as-set2-translated-to-set1", test_keys_translated);
    g_test_add_func("/ps2-input/kbd/raw-set2-then-guest-chooses-set1", test_keys_raw_set2_and_set1);
    g_test_add_func("/ps2-input/kbd/scanning-off-drops-and-leds-reported", test_keyboard_disabled_and_leds);
    g_test_add_func("/ps2-input/mouse/packets-buttons-split-motion", test_mouse_packets);
    g_test_add_func("/ps2-input/mouse/intellimouse-wheel-after-knock", test_intellimouse_wheel);
    return g_test_run();
}
