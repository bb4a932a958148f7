/* VNC input: libvncserver's keyboard and pointer hooks run on the VNC thread and only queue events; the main
 * loop drains the queue, turns keysyms into evdev keys through the --keymap layout and feeds the input
 * router, which expects its front ends on the main loop. */
#include "vnc_internal.h"

#include "input.h"
#include "keymap.h"

/* Keysyms whose state picks between keys that produce the same symbol (keymap_lookup's `held`). */
#define XK_SHIFT_L 0xffe1
#define XK_SHIFT_R 0xffe2
#define XK_MODE_SWITCH 0xff7e
#define XK_ISO_LEVEL3_SHIFT 0xfe03

/* RFB pointer mask bits, in order, and the buttons they are. */
static const enum input_button mask_buttons[] = {
    INPUT_BUTTON_LEFT,       INPUT_BUTTON_MIDDLE,     INPUT_BUTTON_RIGHT,       INPUT_BUTTON_WHEEL_UP,
    INPUT_BUTTON_WHEEL_DOWN, INPUT_BUTTON_WHEEL_LEFT, INPUT_BUTTON_WHEEL_RIGHT,
};

/* ---------------------------------------------------------------- the main-loop side */

static void handle_keysym(struct vnc *v, uint32_t keysym, bool down)
{
    unsigned mod = keysym == XK_SHIFT_L || keysym == XK_SHIFT_R                ? KEYMAP_MOD_SHIFT
                   : keysym == XK_MODE_SWITCH || keysym == XK_ISO_LEVEL3_SHIFT ? KEYMAP_MOD_ALTGR
                                                                               : 0;
    if (mod)
        v->held_mods = down ? v->held_mods | mod : v->held_mods & ~mod;

    unsigned code = 0;
    gpointer prev = g_hash_table_lookup(v->pressed, GUINT_TO_POINTER(keysym));
    if (!down && prev) {
        /* Release the key the press went to, whatever the modifiers say now. */
        code = GPOINTER_TO_UINT(prev);
        g_hash_table_remove(v->pressed, GUINT_TO_POINTER(keysym));
    } else {
        unsigned held = v->held_mods;
        if (input_get_leds(v->in) & INPUT_LED_NUM_LOCK)
            held |= KEYMAP_MOD_NUMLOCK;
        struct keymap_key key;
        if (!v->keymap || !keymap_lookup(v->keymap, keysym, held, &key)) {
            log_message_ratelimited(&v->rl, LOG_LEVEL_DEBUG, "vnc: keysym 0x%x has no key in the layout",
                                    keysym);
            return;
        }
        code = key.code;
        if (down && g_hash_table_size(v->pressed) < 256)
            g_hash_table_insert(v->pressed, GUINT_TO_POINTER(keysym), GUINT_TO_POINTER(code));
    }
    input_send_key(v->in, code, down);
    input_sync(v->in);
}

static void handle_pointer(struct vnc *v, const struct vnc_event *ev)
{
    input_send_abs(v->in, INPUT_AXIS_X, input_abs_from_pixels(ev->x, ev->width));
    input_send_abs(v->in, INPUT_AXIS_Y, input_abs_from_pixels(ev->y, ev->height));
    int changed = ev->mask ^ v->last_mask;
    for (unsigned i = 0; i < G_N_ELEMENTS(mask_buttons); i++)
        if (changed & (1 << i))
            input_send_button(v->in, mask_buttons[i], (ev->mask >> i) & 1);
    v->last_mask = ev->mask;
    input_sync(v->in);
}

static gboolean drain(gpointer data)
{
    struct vnc *v = data;
    g_mutex_lock(&v->lock);
    v->drain_source = 0;
    GArray *events = v->events;
    v->events = g_array_new(FALSE, FALSE, sizeof(struct vnc_event));
    GPtrArray *garbage = v->garbage;
    v->garbage = g_ptr_array_new();
    g_mutex_unlock(&v->lock);

    for (guint i = 0; i < garbage->len; i++)
        pixman_image_unref(garbage->pdata[i]);
    g_ptr_array_unref(garbage);

    for (guint i = 0; i < events->len; i++) {
        const struct vnc_event *ev = &g_array_index(events, struct vnc_event, i);
        if (!v->in && ev->kind != VNC_EV_RESIZE)
            continue;
        switch (ev->kind) {
        case VNC_EV_KEYSYM:
            handle_keysym(v, ev->value, ev->down);
            break;
        case VNC_EV_KEYCODE:
            input_send_key(v->in, ev->value, ev->down);
            input_sync(v->in);
            break;
        case VNC_EV_POINTER:
            handle_pointer(v, ev);
            break;
        case VNC_EV_RESIZE:
            if (v->display && !display_request_resize(v->display, (unsigned)ev->width, (unsigned)ev->height))
                log_message_ratelimited(&v->rl, LOG_LEVEL_INFO,
                                        "vnc: the display did not take a resize to %dx%d", ev->width,
                                        ev->height);
            break;
        case VNC_EV_RELEASE:
            input_release_all(v->in);
            g_hash_table_remove_all(v->pressed);
            v->held_mods = 0;
            v->last_mask = 0;
            break;
        }
    }
    g_array_unref(events);
    return G_SOURCE_REMOVE;
}

void vnc_schedule_drain_locked(struct vnc *v)
{
    if (!v->drain_source)
        v->drain_source = g_idle_add(drain, v);
}

/* ---------------------------------------------------------------- the VNC-thread side */

void vnc_input_queue(struct vnc *v, const struct vnc_event *ev)
{
    g_mutex_lock(&v->lock);
    /* A release-all always gets in: it undoes the presses of a client that flooded the queue and left, which
     * would stay held in the guest otherwise. Only a client going away queues one, and new clients need the
     * main loop's accept, so these few cannot grow the queue without bound. */
    if (v->events->len >= VNC_INPUT_QUEUE_MAX && ev->kind != VNC_EV_RELEASE) {
        v->events_dropped++;
        g_mutex_unlock(&v->lock);
        log_message_ratelimited(&v->rl_thread, LOG_LEVEL_WARN, "vnc: input queue full, event dropped");
        return;
    }
    g_array_append_val(v->events, *ev);
    vnc_schedule_drain_locked(v);
    g_mutex_unlock(&v->lock);
}

static void on_key(rfbBool down, rfbKeySym keysym, rfbClientPtr cl)
{
    struct vnc_event ev = {.kind = VNC_EV_KEYSYM, .down = down != 0, .value = (uint32_t)keysym};
    vnc_input_queue(cl->screen->screenData, &ev);
}

static void on_release_all(rfbClientPtr cl)
{
    struct vnc_event ev = {.kind = VNC_EV_RELEASE};
    vnc_input_queue(cl->screen->screenData, &ev);
}

static void on_pointer(int mask, int x, int y, rfbClientPtr cl)
{
    rfbScreenInfoPtr s = cl->screen;
    struct vnc_event ev = {
        .kind = VNC_EV_POINTER, .mask = mask & 0x7f, .width = s->width, .height = s->height};
    ev.x = CLAMP(x, 0, s->width - 1);
    ev.y = CLAMP(y, 0, s->height - 1);
    vnc_input_queue(s->screenData, &ev);
    /* keeps the cursor position libvncserver tracks for soft cursors */
    rfbDefaultPtrAddEvent(mask, x, y, cl);
}

void vnc_input_init(struct vnc *v, rfbScreenInfoPtr s)
{
    s->kbdAddEvent = on_key;
    s->kbdReleaseAllKeys = on_release_all;
    s->ptrAddEvent = on_pointer;
    v->pressed = g_hash_table_new(g_direct_hash, g_direct_equal);
}

void vnc_input_fini(struct vnc *v)
{
    if (v->drain_source) {
        g_source_remove(v->drain_source);
        v->drain_source = 0;
    }
    if (v->pressed)
        g_hash_table_unref(v->pressed);
    if (v->keymap)
        keymap_free(v->keymap);
}
