/* Proves the input router: routing by kind, priority and activity, absolute/relative conversion, buttons
 * following the pointer that moved, syncs, the virtual-time delay queue and its bound, release-all, LEDs and
 * query-mice. */
#include <glib.h>

#include "device_harness.h"
#include "input.h"
#include "machine.h"
#include "scancode.h"

#define MAX_LOG 64

/* A recording handler. */
struct fake {
    const char *name;
    bool active;
    unsigned nev, nsync;
    struct input_event ev[MAX_LOG];
    unsigned sync_after[MAX_LOG]; /* nev at each sync */
    struct input_handler *h;
};

static void fake_event(void *opaque, const struct input_event *ev)
{
    struct fake *f = opaque;
    if (f->nev < MAX_LOG) /* later events are only counted */
        f->ev[f->nev] = *ev;
    f->nev++;
}

static void fake_sync(void *opaque)
{
    struct fake *f = opaque;
    g_assert_cmpuint(f->nsync, <, MAX_LOG);
    f->sync_after[f->nsync++] = f->nev;
}

static bool fake_active(void *opaque)
{
    struct fake *f = opaque;
    return f->active;
}

static const struct input_handler_ops fake_ops = {fake_event, fake_sync, fake_active};

static struct machine m;

static void setup(void)
{
    dh_machine_init(&m, NULL, 0, 1, 16 << 20);
}

static void add(struct fake *f, const char *name, unsigned caps, int prio, bool active)
{
    *f = (struct fake){.name = name, .active = active};
    f->h = input_handler_register(m.input, name, caps, prio, &fake_ops, f);
    g_assert_nonnull(f->h);
}

static void assert_key(const struct fake *f, unsigned i, unsigned code, bool down)
{
    g_assert_cmpuint(f->nev, >, i);
    g_assert_cmpint(f->ev[i].type, ==, INPUT_EVENT_KEY);
    g_assert_cmpuint(f->ev[i].key.code, ==, code);
    g_assert_cmpint(f->ev[i].key.down, ==, down);
}

static void assert_move(const struct fake *f, unsigned i, enum input_event_type type, enum input_axis axis,
                        int32_t value)
{
    g_assert_cmpuint(f->nev, >, i);
    g_assert_cmpint(f->ev[i].type, ==, type);
    g_assert_cmpint(f->ev[i].move.axis, ==, axis);
    g_assert_cmpint(f->ev[i].move.value, ==, value);
}

static void test_key_priority_and_activity(void)
{
    setup();
    struct fake ps2, virt;
    add(&ps2, "ps2", INPUT_CAP_KEYBOARD, INPUT_PRIORITY_PS2, true);
    add(&virt, "virtio", INPUT_CAP_KEYBOARD, INPUT_PRIORITY_VIRTIO, false);
    /* The virtio keyboard has no driver yet: PS/2 gets the key. */
    input_send_key(m.input, KEY_A, true);
    input_sync(m.input);
    assert_key(&ps2, 0, KEY_A, true);
    g_assert_cmpuint(virt.nev, ==, 0);
    g_assert_cmpuint(ps2.nsync, ==, 1);
    g_assert_cmpuint(virt.nsync, ==, 0);
    /* Once the guest drives it, the higher priority wins. */
    virt.active = true;
    input_send_key(m.input, KEY_A, false);
    input_sync(m.input);
    assert_key(&virt, 0, KEY_A, false);
    g_assert_cmpuint(ps2.nev, ==, 1);
    /* Nobody active: the highest priority still gets it. */
    virt.active = ps2.active = false;
    input_send_key(m.input, KEY_Z, true);
    assert_key(&virt, 1, KEY_Z, true);
    struct input_stats st;
    input_get_stats(m.input, &st);
    g_assert_cmpuint(st.delivered, ==, 3);
    g_assert_cmpuint(st.unrouted, ==, 0);
    dh_machine_fini(&m);
}

static void test_abs_to_tablet_or_mouse(void)
{
    setup();
    struct fake mouse, tablet;
    add(&mouse, "mouse", INPUT_CAP_MOUSE, INPUT_PRIORITY_PS2, true);
    /* No tablet: absolute positions become pixel deltas on the 1024x768 default screen. */
    input_send_abs(m.input, INPUT_AXIS_X, 0x4000);
    input_send_abs(m.input, INPUT_AXIS_Y, INPUT_ABS_MAX);
    input_sync(m.input);
    assert_move(&mouse, 0, INPUT_EVENT_REL, INPUT_AXIS_X, 0x4000 * 1024 / INPUT_ABS_MAX);
    assert_move(&mouse, 1, INPUT_EVENT_REL, INPUT_AXIS_Y, 768);
    input_send_abs(m.input, INPUT_AXIS_X, 0);
    assert_move(&mouse, 2, INPUT_EVENT_REL, INPUT_AXIS_X, -(0x4000 * 1024 / INPUT_ABS_MAX));
    /* Out-of-range absolute values are clamped. */
    input_send_abs(m.input, INPUT_AXIS_Y, 100000);
    assert_move(&mouse, 3, INPUT_EVENT_REL, INPUT_AXIS_Y, 0);
    /* A tablet takes absolute events as they are; the mouse keeps relative ones. */
    add(&tablet, "tablet", INPUT_CAP_TABLET, INPUT_PRIORITY_VIRTIO, true);
    input_send_abs(m.input, INPUT_AXIS_X, 1234);
    input_send_rel(m.input, INPUT_AXIS_Y, -7);
    input_sync(m.input);
    assert_move(&tablet, 0, INPUT_EVENT_ABS, INPUT_AXIS_X, 1234);
    g_assert_cmpuint(tablet.nev, ==, 1);
    assert_move(&mouse, 4, INPUT_EVENT_REL, INPUT_AXIS_Y, -7);
    g_assert_cmpuint(tablet.nsync, ==, 1);
    dh_machine_fini(&m);
}

static void test_rel_to_tablet_without_mouse(void)
{
    setup();
    struct fake tablet;
    add(&tablet, "tablet", INPUT_CAP_TABLET, INPUT_PRIORITY_VIRTIO, true);
    input_set_screen_size(m.input, 800, 600);
    input_send_abs(m.input, INPUT_AXIS_X, 0x1000);
    input_send_rel(m.input, INPUT_AXIS_X, 100); /* 100 of 800 pixels: an eighth of the range */
    input_send_rel(m.input, INPUT_AXIS_X, -100000);
    input_sync(m.input);
    assert_move(&tablet, 0, INPUT_EVENT_ABS, INPUT_AXIS_X, 0x1000);
    assert_move(&tablet, 1, INPUT_EVENT_ABS, INPUT_AXIS_X, 0x1000 + 100 * INPUT_ABS_MAX / 800);
    assert_move(&tablet, 2, INPUT_EVENT_ABS, INPUT_AXIS_X, 0);
    dh_machine_fini(&m);
}

static void test_buttons_follow_motion(void)
{
    setup();
    struct fake mouse, tablet;
    add(&mouse, "mouse", INPUT_CAP_MOUSE, INPUT_PRIORITY_PS2, true);
    add(&tablet, "tablet", INPUT_CAP_TABLET, INPUT_PRIORITY_VIRTIO, true);
    /* Before any motion the tablet is current. */
    input_send_button(m.input, INPUT_BUTTON_LEFT, true);
    g_assert_cmpuint(tablet.nev, ==, 1);
    g_assert_cmpint(tablet.ev[0].btn.button, ==, INPUT_BUTTON_LEFT);
    input_send_rel(m.input, INPUT_AXIS_X, 3);
    input_send_button(m.input, INPUT_BUTTON_WHEEL_DOWN, true);
    g_assert_cmpuint(mouse.nev, ==, 2);
    g_assert_cmpint(mouse.ev[1].type, ==, INPUT_EVENT_BTN);
    g_assert_cmpint(mouse.ev[1].btn.button, ==, INPUT_BUTTON_WHEEL_DOWN);
    struct input_mouse_info info[4];
    g_assert_cmpuint(input_query_mice(m.input, info, 4), ==, 2);
    g_assert_cmpstr(info[0].name, ==, "mouse");
    g_assert_cmpuint(info[0].index, ==, 0);
    g_assert_true(info[0].current);
    g_assert_false(info[0].absolute);
    g_assert_cmpstr(info[1].name, ==, "tablet");
    g_assert_cmpuint(info[1].index, ==, 1);
    g_assert_false(info[1].current);
    g_assert_true(info[1].absolute);
    input_send_abs(m.input, INPUT_AXIS_Y, 5);
    input_send_button(m.input, INPUT_BUTTON_RIGHT, true);
    g_assert_cmpuint(tablet.nev, ==, 3);
    g_assert_cmpuint(input_query_mice(m.input, info, 4), ==, 2);
    g_assert_true(info[1].current);
    g_assert_false(info[0].current);
    dh_machine_fini(&m);
}

static void test_sync_only_where_events_went(void)
{
    setup();
    struct fake kbd, mouse;
    add(&kbd, "kbd", INPUT_CAP_KEYBOARD, 0, true);
    add(&mouse, "mouse", INPUT_CAP_MOUSE, 0, true);
    input_sync(m.input);
    g_assert_cmpuint(kbd.nsync + mouse.nsync, ==, 0);
    input_send_rel(m.input, INPUT_AXIS_X, 1);
    input_send_rel(m.input, INPUT_AXIS_Y, 2);
    input_sync(m.input);
    input_sync(m.input);
    g_assert_cmpuint(mouse.nsync, ==, 1);
    g_assert_cmpuint(mouse.sync_after[0], ==, 2);
    g_assert_cmpuint(kbd.nsync, ==, 0);
    dh_machine_fini(&m);
}

static void test_delay_in_virtual_time(void)
{
    setup();
    struct fake kbd;
    add(&kbd, "kbd", INPUT_CAP_KEYBOARD, 0, true);
    input_send_key(m.input, KEY_LEFTCTRL, true);
    input_sync(m.input);
    input_delay(m.input, 100);
    input_send_key(m.input, KEY_LEFTCTRL, false);
    input_sync(m.input);
    input_send_key(m.input, KEY_A, true); /* later events queue behind the delay too */
    g_assert_cmpuint(kbd.nev, ==, 1);
    vclock_advance(m.clock, 100 * 1000000 - 1);
    g_assert_cmpuint(kbd.nev, ==, 1);
    vclock_advance(m.clock, 1);
    g_assert_cmpuint(kbd.nev, ==, 3);
    assert_key(&kbd, 1, KEY_LEFTCTRL, false);
    assert_key(&kbd, 2, KEY_A, true);
    g_assert_cmpuint(kbd.nsync, ==, 2);
    /* The queue is empty again: events go straight through. */
    input_send_key(m.input, KEY_A, false);
    g_assert_cmpuint(kbd.nev, ==, 4);
    dh_machine_fini(&m);
}

static void test_delay_queue_bounded(void)
{
    setup();
    struct fake kbd;
    add(&kbd, "kbd", INPUT_CAP_KEYBOARD, 0, true);
    input_delay(m.input, 10);
    for (unsigned i = 0; i < 1100; i++)
        input_send_key(m.input, KEY_A, i % 2 == 0);
    struct input_stats st;
    input_get_stats(m.input, &st);
    g_assert_cmpuint(st.dropped, ==, 1100 - 1024); /* the delay runs at once: 1024 entries hold events */
    g_assert_cmpuint(kbd.nev, ==, 0);
    vclock_advance(m.clock, 10 * 1000000);
    input_get_stats(m.input, &st);
    g_assert_cmpuint(st.delivered, ==, 1024);
    g_assert_cmpuint(kbd.nev, ==, 1024);
    dh_machine_fini(&m);
}

static void test_release_all(void)
{
    setup();
    struct fake kbd, tablet;
    add(&kbd, "kbd", INPUT_CAP_KEYBOARD, 0, true);
    add(&tablet, "tablet", INPUT_CAP_TABLET, 0, true);
    input_send_key(m.input, KEY_LEFTSHIFT, true);
    input_send_key(m.input, KEY_A, true);
    input_send_key(m.input, KEY_A, false);
    input_send_key(m.input, KEY_UP, true);
    input_send_button(m.input, INPUT_BUTTON_MIDDLE, true);
    input_sync(m.input);
    input_release_all(m.input);
    g_assert_cmpuint(kbd.nev, ==, 6);
    assert_key(&kbd, 4, KEY_LEFTSHIFT, false);
    assert_key(&kbd, 5, KEY_UP, false);
    g_assert_cmpuint(tablet.nev, ==, 2);
    g_assert_cmpint(tablet.ev[1].btn.button, ==, INPUT_BUTTON_MIDDLE);
    g_assert_false(tablet.ev[1].btn.down);
    g_assert_cmpuint(kbd.nsync, ==, 2);
    input_release_all(m.input); /* nothing held any more */
    g_assert_cmpuint(kbd.nev, ==, 6);
    dh_machine_fini(&m);
}

static unsigned led_calls, led_last;

static void on_leds(void *opaque, unsigned leds)
{
    led_calls++;
    led_last = leds;
}

static void test_leds(void)
{
    setup();
    led_calls = 0;
    input_set_led_listener(m.input, on_leds, NULL);
    input_set_leds(m.input, INPUT_LED_CAPS_LOCK | 0xf0);
    g_assert_cmpuint(input_get_leds(m.input), ==, INPUT_LED_CAPS_LOCK);
    input_set_leds(m.input, INPUT_LED_CAPS_LOCK);
    g_assert_cmpuint(led_calls, ==, 1);
    g_assert_cmpuint(led_last, ==, INPUT_LED_CAPS_LOCK);
    input_set_leds(m.input, 0);
    g_assert_cmpuint(led_calls, ==, 2);
    g_assert_cmpuint(led_last, ==, 0);
    dh_machine_fini(&m);
}

static void test_invalid_and_unrouted(void)
{
    setup();
    struct fake kbd;
    add(&kbd, "kbd", INPUT_CAP_KEYBOARD, 0, true);
    input_send_key(m.input, 0, true);
    input_send_key(m.input, KEY_MAX + 1, true);
    struct input_event ev = {.type = INPUT_EVENT_BTN};
    ev.btn.button = INPUT_BUTTON__MAX;
    input_send_event(m.input, &ev);
    ev = (struct input_event){.type = INPUT_EVENT_ABS};
    ev.move.axis = INPUT_AXIS__MAX;
    input_send_event(m.input, &ev);
    input_send_rel(m.input, INPUT_AXIS_X, 5); /* valid, but no pointer device */
    struct input_stats st;
    input_get_stats(m.input, &st);
    g_assert_cmpuint(kbd.nev, ==, 0);
    g_assert_cmpuint(st.delivered, ==, 0);
    g_assert_cmpuint(st.unrouted, ==, 1);
    input_handler_unregister(m.input, kbd.h);
    input_send_key(m.input, KEY_A, true);
    g_assert_cmpuint(kbd.nev, ==, 0);
    dh_machine_fini(&m);
}

static void test_abs_from_pixels(void)
{
    g_assert_cmpint(input_abs_from_pixels(0, 1024), ==, 0);
    g_assert_cmpint(input_abs_from_pixels(512, 1024), ==, 512 * 0x7fff / 1024);
    g_assert_cmpint(input_abs_from_pixels(1024, 1024), ==, INPUT_ABS_MAX);
    g_assert_cmpint(input_abs_from_pixels(5000, 1024), ==, INPUT_ABS_MAX);
    g_assert_cmpint(input_abs_from_pixels(-3, 1024), ==, 0);
    g_assert_cmpint(input_abs_from_pixels(3, 0), ==, INPUT_ABS_MAX / 2);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/input/route/key-to-highest-priority-active-keyboard", test_key_priority_and_activity);
    g_test_add_func("/input/route/abs-to-tablet-else-pixel-deltas-to-mouse", test_abs_to_tablet_or_mouse);
    g_test_add_func("/input/route/rel-moves-tablet-without-mouse", test_rel_to_tablet_without_mouse);
    g_test_add_func("/input/route/buttons-follow-last-motion-and-query-mice", test_buttons_follow_motion);
    g_test_add_func("/input/route/invalid-dropped-unrouted-counted", test_invalid_and_unrouted);
    g_test_add_func("/input/sync/only-handlers-that-got-events", test_sync_only_where_events_went);
    g_test_add_func("/input/delay/holds-later-events-in-virtual-time", test_delay_in_virtual_time);
    g_test_add_func("/input/delay/queue-bounded-drops-newest", test_delay_queue_bounded);
    g_test_add_func("/input/release-all/keys-and-buttons-left-down", test_release_all);
    g_test_add_func("/input/leds/state-and-listener", test_leds);
    g_test_add_func("/input/abs-from-pixels", test_abs_from_pixels);
    return g_test_run();
}
