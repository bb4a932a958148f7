/* SPICE input: spice-server's keyboard, mouse (server mouse mode) and tablet (client mouse mode) interfaces
 * feeding the machine's input router, and the guest's keyboard LEDs going back to the client.
 *
 * spice-server calls the interfaces on the main thread, which is where machine/input.h wants its front ends.
 * The LED listener runs under the machine lock, possibly on a vCPU thread, so it only records the state and
 * schedules an idle on the main loop, which calls spice_server_kbd_leds.
 *
 * Lifetime: spice-server cannot detach a keyboard or a mouse (spice_server_remove_interface refuses them)
 * and, while it is destroyed, may still release a connected client's keys through push_scan_freg; its channel
 * events during the destroy may also reach spice_input_client_gone. So the interface instances and the state
 * live in static storage (one SPICE server per process, as spice_core.c assumes too): spice_input_free only
 * unhooks them, and every entry point does nothing afterwards. That makes spice_input_free safe before or
 * after spice_server_destroy, and the calls after it harmless.
 *
 * The tablet is registered only if the machine has an absolute pointer device when SPICE starts (the board
 * creates its devices before the front ends): spice-server offers client mouse mode whenever a tablet is
 * registered, and client positions sent to a machine without an absolute device would land as guessed
 * relative motion. Devices are not hot-plugged, so the choice does not change later. */
#include "spice_internal.h"

#include <string.h>

#include "log.h"
#include "scancode.h"

/* Buttons as spice-server hands them to the mouse and tablet interfaces: it turns the protocol's masks (left
 * 1, middle 2, right 4) into the PS/2 order (left 1, right 2, middle 4) and puts side and extra at 0x40 and
 * 0x80. */
static const struct {
    uint32_t mask;
    enum input_button button;
} spice_buttons[] = {
    {0x01, INPUT_BUTTON_LEFT}, {0x02, INPUT_BUTTON_RIGHT}, {0x04, INPUT_BUTTON_MIDDLE},
    {0x40, INPUT_BUTTON_SIDE}, {0x80, INPUT_BUTTON_EXTRA},
};
#define SPICE_BUTTONS_KNOWN (0x01u | 0x02u | 0x04u | 0x40u | 0x80u)

/* Wheel steps taken from one event (a client cannot make the guest loop over a huge dz). */
#define WHEEL_STEPS_MAX 16
/* Smallest logical tablet size accepted (spice sends 0 before a primary surface exists). */
#define TABLET_MIN_SIZE 16

struct spice_input {
    bool live; /* between spice_input_new and spice_input_free */
    SpiceServer *server;
    struct input *in;
    struct scancode_decoder decoder;
    uint32_t buttons;  /* the last button state sent (spice_buttons masks), shared by mouse and tablet */
    int width, height; /* the tablet's logical size */
    bool kbd_added, mouse_added, tablet_added;

    GMutex lock; /* the two below: the LED listener runs on other threads */
    unsigned leds;
    guint led_idle;
};

/* The instances spice-server keeps pointers to; see the top of the file. */
static struct {
    SpiceKbdInstance kbd;
    SpiceMouseInstance mouse;
    SpiceTabletInstance tablet;
    struct spice_input *si; /* NULL: no spice_input (callbacks are ignored) */
} sinks;
static struct spice_input the_input;

/* ---------------------------------------------------------------- buttons and wheel */

static void send_buttons(struct spice_input *si, uint32_t state)
{
    state &= SPICE_BUTTONS_KNOWN;
    uint32_t changed = state ^ si->buttons;
    for (unsigned i = 0; i < G_N_ELEMENTS(spice_buttons); i++)
        if (changed & spice_buttons[i].mask)
            input_send_button(si->in, spice_buttons[i].button, (state & spice_buttons[i].mask) != 0);
    si->buttons = state;
}

/* dz < 0 scrolls up (towards the top), as spice-gtk sends it for SPICE_MOUSE_BUTTON_UP. Each step is a press
 * and a release of the wheel button, in a report of its own so the guest sees separate steps. */
static void send_wheel(struct spice_input *si, int dz)
{
    enum input_button b = dz < 0 ? INPUT_BUTTON_WHEEL_UP : INPUT_BUTTON_WHEEL_DOWN;
    int steps = dz < 0 ? (dz < -WHEEL_STEPS_MAX ? WHEEL_STEPS_MAX : -dz) : MIN(dz, WHEEL_STEPS_MAX);
    for (int i = 0; i < steps; i++) {
        input_send_button(si->in, b, true);
        input_sync(si->in);
        input_send_button(si->in, b, false);
        input_sync(si->in);
    }
}

/* ---------------------------------------------------------------- keyboard */

static void kbd_push_scan_freg(SpiceKbdInstance *sin, uint8_t frag)
{
    (void)sin;
    struct spice_input *si = sinks.si;
    if (!si)
        return;
    unsigned evdev;
    bool down;
    if (!scancode_decoder_feed(&si->decoder, frag, &evdev, &down))
        return;
    if (!evdev) {
        log_debug("spice: scancode byte 0x%02x ends a key deskvm does not know", frag);
        return;
    }
    input_send_key(si->in, evdev, down);
    input_sync(si->in);
}

static uint8_t leds_to_spice(unsigned leds)
{
    uint8_t out = 0;
    if (leds & INPUT_LED_SCROLL_LOCK)
        out |= SPICE_KEYBOARD_MODIFIER_FLAGS_SCROLL_LOCK;
    if (leds & INPUT_LED_NUM_LOCK)
        out |= SPICE_KEYBOARD_MODIFIER_FLAGS_NUM_LOCK;
    if (leds & INPUT_LED_CAPS_LOCK)
        out |= SPICE_KEYBOARD_MODIFIER_FLAGS_CAPS_LOCK;
    return out;
}

static uint8_t kbd_get_leds(SpiceKbdInstance *sin)
{
    (void)sin;
    struct spice_input *si = sinks.si;
    return si ? leds_to_spice(input_get_leds(si->in)) : 0;
}

static const SpiceKbdInterface kbd_interface = {
    .base.type = SPICE_INTERFACE_KEYBOARD,
    .base.description = "deskvm keyboard",
    .base.major_version = SPICE_INTERFACE_KEYBOARD_MAJOR,
    .base.minor_version = SPICE_INTERFACE_KEYBOARD_MINOR,
    .push_scan_freg = kbd_push_scan_freg,
    .get_leds = kbd_get_leds,
};

/* Main loop: tell the client the LEDs the guest set last. */
static gboolean on_led_idle(gpointer data)
{
    struct spice_input *si = data;
    g_mutex_lock(&si->lock);
    si->led_idle = 0;
    unsigned leds = si->leds;
    g_mutex_unlock(&si->lock);
    if (si->kbd_added)
        spice_server_kbd_leds(&sinks.kbd, leds_to_spice(leds));
    return G_SOURCE_REMOVE;
}

/* Machine lock held, any thread. */
static void on_leds(void *opaque, unsigned leds)
{
    struct spice_input *si = opaque;
    g_mutex_lock(&si->lock);
    si->leds = leds;
    if (!si->led_idle)
        si->led_idle = g_idle_add(on_led_idle, si);
    g_mutex_unlock(&si->lock);
}

/* ---------------------------------------------------------------- mouse (server mode) and tablet (client mode) */

/* What every pointer event ends with: the buttons that changed, the end of the report, then wheel steps. */
static void pointer_update(struct spice_input *si, uint32_t buttons_state, int wheel)
{
    send_buttons(si, buttons_state);
    input_sync(si->in);
    if (wheel)
        send_wheel(si, wheel);
}

static void mouse_motion(SpiceMouseInstance *sin, int dx, int dy, int dz, uint32_t buttons_state)
{
    (void)sin;
    struct spice_input *si = sinks.si;
    if (!si)
        return;
    if (dx)
        input_send_rel(si->in, INPUT_AXIS_X, dx);
    if (dy)
        input_send_rel(si->in, INPUT_AXIS_Y, dy);
    pointer_update(si, buttons_state, dz);
}

static void mouse_buttons(SpiceMouseInstance *sin, uint32_t buttons_state)
{
    (void)sin;
    if (sinks.si)
        pointer_update(sinks.si, buttons_state, 0);
}

static const SpiceMouseInterface mouse_interface = {
    .base.type = SPICE_INTERFACE_MOUSE,
    .base.description = "deskvm mouse",
    .base.major_version = SPICE_INTERFACE_MOUSE_MAJOR,
    .base.minor_version = SPICE_INTERFACE_MOUSE_MINOR,
    .motion = mouse_motion,
    .buttons = mouse_buttons,
};

static void tablet_set_logical_size(SpiceTabletInstance *sin, int width, int height)
{
    (void)sin;
    struct spice_input *si = sinks.si;
    if (!si)
        return;
    si->width = MAX(width, TABLET_MIN_SIZE);
    si->height = MAX(height, TABLET_MIN_SIZE);
}

static void tablet_position(SpiceTabletInstance *sin, int x, int y, uint32_t buttons_state)
{
    (void)sin;
    struct spice_input *si = sinks.si;
    if (!si)
        return;
    /* input_abs_from_pixels clamps, so a position outside the surface lands on its edge. */
    input_send_abs(si->in, INPUT_AXIS_X, input_abs_from_pixels(x, si->width));
    input_send_abs(si->in, INPUT_AXIS_Y, input_abs_from_pixels(y, si->height));
    pointer_update(si, buttons_state, 0);
}

static void tablet_wheel(SpiceTabletInstance *sin, int wheel, uint32_t buttons_state)
{
    (void)sin;
    if (sinks.si)
        pointer_update(sinks.si, buttons_state, wheel);
}

static void tablet_buttons(SpiceTabletInstance *sin, uint32_t buttons_state)
{
    (void)sin;
    if (sinks.si)
        pointer_update(sinks.si, buttons_state, 0);
}

static const SpiceTabletInterface tablet_interface = {
    .base.type = SPICE_INTERFACE_TABLET,
    .base.description = "deskvm tablet",
    .base.major_version = SPICE_INTERFACE_TABLET_MAJOR,
    .base.minor_version = SPICE_INTERFACE_TABLET_MINOR,
    .set_logical_size = tablet_set_logical_size,
    .position = tablet_position,
    .wheel = tablet_wheel,
    .buttons = tablet_buttons,
};

/* ---------------------------------------------------------------- life cycle */

static bool machine_has_absolute_pointer(struct input *in)
{
    struct input_mouse_info mice[16];
    unsigned n = input_query_mice(in, mice, G_N_ELEMENTS(mice));
    for (unsigned i = 0; i < MIN(n, (unsigned)G_N_ELEMENTS(mice)); i++)
        if (mice[i].absolute)
            return true;
    return false;
}

struct spice_input *spice_input_new(SpiceServer *server, struct input *in)
{
    if (the_input.live) {
        log_error("spice: a second SPICE input front end is not supported");
        return NULL;
    }
    struct spice_input *si = &the_input;
    memset(si, 0, sizeof(*si));
    si->live = true;
    si->server = server;
    si->in = in;
    si->width = 1024;
    si->height = 768;
    g_mutex_init(&si->lock);
    sinks.si = si;

    memset(&sinks.kbd, 0, sizeof(sinks.kbd));
    sinks.kbd.base.sif = &kbd_interface.base;
    si->kbd_added = spice_server_add_interface(server, &sinks.kbd.base) == 0;
    memset(&sinks.mouse, 0, sizeof(sinks.mouse));
    sinks.mouse.base.sif = &mouse_interface.base;
    si->mouse_added = spice_server_add_interface(server, &sinks.mouse.base) == 0;
    if (!si->kbd_added || !si->mouse_added)
        log_warn("spice: spice-server refused the %s interface", si->kbd_added ? "mouse" : "keyboard");

    if (machine_has_absolute_pointer(in)) {
        memset(&sinks.tablet, 0, sizeof(sinks.tablet));
        sinks.tablet.base.sif = &tablet_interface.base;
        si->tablet_added = spice_server_add_interface(server, &sinks.tablet.base) == 0;
        if (!si->tablet_added)
            log_warn("spice: spice-server refused the tablet interface");
    }
    log_info("spice: inputs: keyboard, mouse%s", si->tablet_added
                                                     ? ", tablet (client mouse mode possible)"
                                                     : " (no absolute pointer: server mouse mode)");

    /* The LED state the guest has now, then every change. */
    g_mutex_lock(&si->lock);
    si->leds = input_get_leds(in);
    g_mutex_unlock(&si->lock);
    input_set_led_listener(in, on_leds, si);
    return si;
}

void spice_input_client_gone(struct spice_input *si)
{
    if (!si || !si->live)
        return;
    input_release_all(si->in);
    memset(&si->decoder, 0, sizeof(si->decoder));
    si->buttons = 0;
}

void spice_input_free(struct spice_input *si)
{
    if (!si || !si->live)
        return;
    /* input_set_led_listener takes the machine lock, so no on_leds is running once it returns; the idle it
     * may have scheduled is on this (the main) thread and is removed below. */
    input_set_led_listener(si->in, NULL, NULL);
    g_mutex_lock(&si->lock);
    guint idle = si->led_idle;
    si->led_idle = 0;
    g_mutex_unlock(&si->lock);
    if (idle)
        g_source_remove(idle);
    if (sinks.si == si)
        sinks.si = NULL;
    g_mutex_clear(&si->lock);
    si->live = false;
    si->in = NULL;
}
