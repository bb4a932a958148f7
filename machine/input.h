/* The input interface: front ends (VNC, SPICE, QMP) send key, button and pointer events; guest devices
 * (virtio-input, PS/2) register as handlers for the kinds they take and get each event routed to one of them.
 */
#ifndef DESKVM_INPUT_H
#define DESKVM_INPUT_H

#include <stdbool.h>
#include <stdint.h>

struct machine;
struct input;

/* Absolute axes run over 0..INPUT_ABS_MAX whatever the screen size (QEMU's convention). */
#define INPUT_ABS_MAX 0x7fff

/* Buttons in the order and with the names of QEMU's InputButton (QMP input-send-event). A wheel step is a
 * press (and release) of a wheel button; wheel-up scrolls towards the top. */
enum input_button {
    INPUT_BUTTON_LEFT,
    INPUT_BUTTON_MIDDLE,
    INPUT_BUTTON_RIGHT,
    INPUT_BUTTON_WHEEL_UP,
    INPUT_BUTTON_WHEEL_DOWN,
    INPUT_BUTTON_SIDE,
    INPUT_BUTTON_EXTRA,
    INPUT_BUTTON_WHEEL_LEFT,
    INPUT_BUTTON_WHEEL_RIGHT,
    INPUT_BUTTON__MAX,
};

enum input_axis { INPUT_AXIS_X, INPUT_AXIS_Y, INPUT_AXIS__MAX };

enum input_event_type {
    INPUT_EVENT_KEY, /* key.code: a Linux evdev KEY_* code, 1..KEY_MAX */
    INPUT_EVENT_BTN,
    INPUT_EVENT_REL, /* move.value: a delta in pixels; y grows downwards */
    INPUT_EVENT_ABS, /* move.value: 0..INPUT_ABS_MAX, left/top to right/bottom */
};

struct input_event {
    enum input_event_type type;
    union {
        struct {
            uint16_t code;
            bool down;
        } key;
        struct {
            enum input_button button;
            bool down;
        } btn;
        struct {
            enum input_axis axis;
            int32_t value;
        } move;
    };
};

/* What a handler takes. Buttons go with whichever pointer kind moved last. */
#define INPUT_CAP_KEYBOARD (1u << 0) /* key events */
#define INPUT_CAP_MOUSE (1u << 1)    /* relative motion, buttons, wheel */
#define INPUT_CAP_TABLET (1u << 2)   /* absolute position, buttons, wheel */

/* Among handlers of one kind the highest priority that is active wins (earlier registration on a tie). */
#define INPUT_PRIORITY_PS2 0
#define INPUT_PRIORITY_VIRTIO 10

/* Keyboard LEDs, as PS/2's set-LEDs command orders them. */
#define INPUT_LED_SCROLL_LOCK (1u << 0)
#define INPUT_LED_NUM_LOCK (1u << 1)
#define INPUT_LED_CAPS_LOCK (1u << 2)

struct input_handler_ops {
    /* One event of a kind the handler registered for; machine lock held. */
    void (*event)(void *opaque, const struct input_event *ev);
    /* The end of a batch of events the handler got (e.g. one pointer report): send them to the guest. */
    void (*sync)(void *opaque);
    /* Whether the guest is using the device now (a driver bound to it). NULL: always. An inactive handler
     * gets events only when no handler of its kind is active. */
    bool (*active)(void *opaque);
};

struct input_handler;

/* The machine's input router (machine_init creates it as m->input). */
struct input *input_new(struct machine *m);
void input_free(struct input *in);

/* Devices, under the machine lock (from their create/destroy). name must outlive the handler. */
struct input_handler *input_handler_register(struct input *in, const char *name, unsigned caps, int priority,
                                             const struct input_handler_ops *ops, void *opaque);
void input_handler_unregister(struct input *in, struct input_handler *h);
/* A keyboard device's LED state changed (INPUT_LED_* bits). */
void input_set_leds(struct input *in, unsigned leds);

/* Front ends, from the main loop; each takes the machine lock. Events are delivered (or queued behind a
 * pending delay) in order; input_sync ends a batch. */
void input_send_event(struct input *in, const struct input_event *ev);
void input_send_key(struct input *in, unsigned code, bool down);
void input_send_button(struct input *in, enum input_button button, bool down);
void input_send_abs(struct input *in, enum input_axis axis, int32_t value);
void input_send_rel(struct input *in, enum input_axis axis, int32_t delta);
void input_sync(struct input *in);
/* Events sent after this wait until ms of virtual time have passed (QMP send-key's hold-time). */
void input_delay(struct input *in, unsigned ms);
/* Releases every key and button the front ends left pressed (a client went away). */
void input_release_all(struct input *in);

/* Pixels to the absolute range, for a surface `size` pixels wide or high. */
int32_t input_abs_from_pixels(int64_t pixel, int64_t size);
/* The screen size in pixels, used to turn absolute positions into relative motion for a mouse when there is
 * no tablet and back (default 1024x768). */
void input_set_screen_size(struct input *in, unsigned width, unsigned height);

/* LED state the guest last set, and a callback for changes (runs under the machine lock; must not block). */
unsigned input_get_leds(struct input *in);
void input_set_led_listener(struct input *in, void (*fn)(void *opaque, unsigned leds), void *opaque);

/* QMP query-mice: one entry per pointer handler. */
struct input_mouse_info {
    const char *name;
    unsigned index;
    bool current; /* the one pointer events go to now */
    bool absolute;
};
/* Fills up to max entries (in registration order) and returns how many pointer handlers there are. */
unsigned input_query_mice(struct input *in, struct input_mouse_info *out, unsigned max);

/* Counters, for tests and statistics. */
struct input_stats {
    uint64_t delivered; /* events handed to a handler */
    uint64_t unrouted;  /* events no handler took */
    uint64_t dropped;   /* events refused because the delay queue was full */
};
void input_get_stats(struct input *in, struct input_stats *out);

#endif
