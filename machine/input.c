/* Input routing: handlers by kind and priority, pointer conversions, the delay queue, LED state. */
#include "input.h"

#include <string.h>

#include <glib.h>

#include "log.h"
#include "machine.h"
#include "scancode.h"
#include "vclock.h"

#define INPUT_MAX_HANDLERS 16
#define INPUT_QUEUE_MAX 1024
#define INPUT_DEFAULT_WIDTH 1024
#define INPUT_DEFAULT_HEIGHT 768

struct input_handler {
    const char *name;
    unsigned caps;
    int priority;
    const struct input_handler_ops *ops;
    void *opaque;
    unsigned index; /* query-mice's index: registration order */
    bool pending_sync;
};

enum queue_kind { Q_EVENT, Q_SYNC, Q_DELAY };

struct queue_entry {
    enum queue_kind kind;
    struct input_event ev;
    int64_t delay_ns;
};

struct input {
    struct machine *m;
    struct input_handler *handlers[INPUT_MAX_HANDLERS]; /* registration order */
    unsigned nhandlers;
    unsigned next_index;

    bool pointer_rel; /* the last motion was relative: buttons go to the mouse first */
    int32_t abs_pos[INPUT_AXIS__MAX];
    unsigned size[INPUT_AXIS__MAX];
    uint8_t keys_down[KEY_CNT / 8];
    unsigned buttons_down;

    unsigned leds;
    void (*led_fn)(void *opaque, unsigned leds);
    void *led_opaque;

    /* Events held back behind a delay (send-key's hold time), in order. */
    struct queue_entry queue[INPUT_QUEUE_MAX];
    unsigned q_head, q_count;
    struct vtimer timer;
    bool waiting;

    struct input_stats stats;
    struct log_ratelimit rl;
};

/* ---------------------------------------------------------------- routing */

static bool handler_active(const struct input_handler *h)
{
    return !h->ops->active || h->ops->active(h->opaque);
}

/* The handler of a kind: the highest-priority active one, else the highest-priority one. */
static struct input_handler *find_handler(struct input *in, unsigned cap)
{
    struct input_handler *best_active = NULL, *best = NULL;
    for (unsigned i = 0; i < in->nhandlers; i++) {
        struct input_handler *h = in->handlers[i];
        if (!(h->caps & cap))
            continue;
        if (!best || h->priority > best->priority)
            best = h;
        if ((!best_active || h->priority > best_active->priority) && handler_active(h))
            best_active = h;
    }
    return best_active ? best_active : best;
}

/* Where pointer buttons go: the kind that moved last, else the other one. */
static struct input_handler *pointer_handler(struct input *in)
{
    struct input_handler *tablet = find_handler(in, INPUT_CAP_TABLET);
    struct input_handler *mouse = find_handler(in, INPUT_CAP_MOUSE);
    if (in->pointer_rel)
        return mouse ? mouse : tablet;
    return tablet ? tablet : mouse;
}

static void hand_to(struct input *in, struct input_handler *h, const struct input_event *ev)
{
    if (!h) {
        in->stats.unrouted++;
        return;
    }
    h->ops->event(h->opaque, ev);
    h->pending_sync = true;
    in->stats.delivered++;
}

static int32_t clamp_abs(int64_t v)
{
    return (int32_t)(v < 0 ? 0 : v > INPUT_ABS_MAX ? INPUT_ABS_MAX : v);
}

int32_t input_abs_from_pixels(int64_t pixel, int64_t size)
{
    if (size < 1)
        return INPUT_ABS_MAX / 2;
    return clamp_abs(pixel * INPUT_ABS_MAX / size);
}

static int64_t abs_to_pixels(const struct input *in, enum input_axis axis, int32_t v)
{
    return (int64_t)v * in->size[axis] / INPUT_ABS_MAX;
}

static void route_motion(struct input *in, const struct input_event *ev)
{
    enum input_axis axis = ev->move.axis;
    if (ev->type == INPUT_EVENT_ABS) {
        int32_t pos = clamp_abs(ev->move.value);
        struct input_handler *tablet = find_handler(in, INPUT_CAP_TABLET);
        struct input_handler *mouse = tablet ? NULL : find_handler(in, INPUT_CAP_MOUSE);
        if (tablet) {
            struct input_event e = *ev;
            e.move.value = pos;
            hand_to(in, tablet, &e);
            in->pointer_rel = false;
        } else if (mouse) {
            /* No tablet: move the mouse by the distance in pixels, as a client's relative fallback would. */
            struct input_event e = {.type = INPUT_EVENT_REL};
            e.move.axis = axis;
            e.move.value =
                (int32_t)(abs_to_pixels(in, axis, pos) - abs_to_pixels(in, axis, in->abs_pos[axis]));
            hand_to(in, mouse, &e);
            in->pointer_rel = true;
        } else {
            in->stats.unrouted++;
        }
        in->abs_pos[axis] = pos;
        return;
    }
    struct input_handler *mouse = find_handler(in, INPUT_CAP_MOUSE);
    if (mouse) {
        hand_to(in, mouse, ev);
        in->pointer_rel = true;
        return;
    }
    /* No mouse: a tablet follows relative motion from where the pointer is. */
    struct input_handler *tablet = find_handler(in, INPUT_CAP_TABLET);
    int64_t size = in->size[axis] ? in->size[axis] : 1;
    int32_t pos = clamp_abs(in->abs_pos[axis] + (int64_t)ev->move.value * INPUT_ABS_MAX / size);
    in->abs_pos[axis] = pos;
    struct input_event e = {.type = INPUT_EVENT_ABS};
    e.move.axis = axis;
    e.move.value = pos;
    hand_to(in, tablet, &e);
}

static void deliver(struct input *in, const struct input_event *ev)
{
    switch (ev->type) {
    case INPUT_EVENT_KEY: {
        unsigned c = ev->key.code;
        if (ev->key.down)
            in->keys_down[c / 8] |= (uint8_t)(1u << (c % 8));
        else
            in->keys_down[c / 8] &= (uint8_t) ~(1u << (c % 8));
        hand_to(in, find_handler(in, INPUT_CAP_KEYBOARD), ev);
        break;
    }
    case INPUT_EVENT_BTN:
        if (ev->btn.down)
            in->buttons_down |= 1u << ev->btn.button;
        else
            in->buttons_down &= ~(1u << ev->btn.button);
        hand_to(in, pointer_handler(in), ev);
        break;
    case INPUT_EVENT_ABS:
    case INPUT_EVENT_REL:
        route_motion(in, ev);
        break;
    }
}

static void sync_handlers(struct input *in)
{
    for (unsigned i = 0; i < in->nhandlers; i++) {
        struct input_handler *h = in->handlers[i];
        if (h->pending_sync) {
            h->pending_sync = false;
            if (h->ops->sync)
                h->ops->sync(h->opaque);
        }
    }
}

/* ---------------------------------------------------------------- the delay queue */

static bool enqueue(struct input *in, const struct queue_entry *e)
{
    if (in->q_count >= INPUT_QUEUE_MAX) {
        in->stats.dropped++;
        log_message_ratelimited(&in->rl, LOG_LEVEL_WARN,
                                "input: queue of %d delayed events full, event dropped", INPUT_QUEUE_MAX);
        return false;
    }
    in->queue[(in->q_head + in->q_count) % INPUT_QUEUE_MAX] = *e;
    in->q_count++;
    return true;
}

/* Runs queued entries until the queue is empty or a delay starts. */
static void run_queue(struct input *in)
{
    while (in->q_count && !in->waiting) {
        struct queue_entry e = in->queue[in->q_head];
        in->q_head = (in->q_head + 1) % INPUT_QUEUE_MAX;
        in->q_count--;
        switch (e.kind) {
        case Q_EVENT:
            deliver(in, &e.ev);
            break;
        case Q_SYNC:
            sync_handlers(in);
            break;
        case Q_DELAY:
            in->waiting = true;
            vtimer_arm(&in->timer, vclock_now(in->m->clock) + e.delay_ns);
            break;
        }
    }
}

static void delay_done(void *opaque)
{
    struct input *in = opaque;
    in->waiting = false;
    run_queue(in);
}

static void submit(struct input *in, const struct queue_entry *e)
{
    machine_lock(in->m);
    if (in->q_count || in->waiting) {
        enqueue(in, e);
    } else if (e->kind == Q_EVENT) {
        deliver(in, &e->ev);
    } else if (e->kind == Q_SYNC) {
        sync_handlers(in);
    } else if (enqueue(in, e)) {
        run_queue(in);
    }
    machine_unlock(in->m);
}

/* ---------------------------------------------------------------- front ends */

static bool event_valid(struct input *in, const struct input_event *ev)
{
    switch (ev->type) {
    case INPUT_EVENT_KEY:
        if (ev->key.code >= 1 && ev->key.code <= KEY_MAX)
            return true;
        break;
    case INPUT_EVENT_BTN:
        if ((unsigned)ev->btn.button < INPUT_BUTTON__MAX)
            return true;
        break;
    case INPUT_EVENT_REL:
    case INPUT_EVENT_ABS:
        if ((unsigned)ev->move.axis < INPUT_AXIS__MAX)
            return true;
        break;
    }
    log_message_ratelimited(&in->rl, LOG_LEVEL_DEBUG, "input: invalid event of type %d dropped",
                            (int)ev->type);
    return false;
}

void input_send_event(struct input *in, const struct input_event *ev)
{
    if (!event_valid(in, ev))
        return;
    struct queue_entry e = {.kind = Q_EVENT, .ev = *ev};
    submit(in, &e);
}

void input_send_key(struct input *in, unsigned code, bool down)
{
    struct input_event ev = {.type = INPUT_EVENT_KEY};
    ev.key.code = (uint16_t)(code > KEY_MAX ? 0 : code);
    ev.key.down = down;
    input_send_event(in, &ev);
}

void input_send_button(struct input *in, enum input_button button, bool down)
{
    struct input_event ev = {.type = INPUT_EVENT_BTN};
    ev.btn.button = button;
    ev.btn.down = down;
    input_send_event(in, &ev);
}

static void send_move(struct input *in, enum input_event_type type, enum input_axis axis, int32_t value)
{
    struct input_event ev = {.type = type};
    ev.move.axis = axis;
    ev.move.value = value;
    input_send_event(in, &ev);
}

void input_send_abs(struct input *in, enum input_axis axis, int32_t value)
{
    send_move(in, INPUT_EVENT_ABS, axis, value);
}

void input_send_rel(struct input *in, enum input_axis axis, int32_t delta)
{
    send_move(in, INPUT_EVENT_REL, axis, delta);
}

void input_sync(struct input *in)
{
    struct queue_entry e = {.kind = Q_SYNC};
    submit(in, &e);
}

void input_delay(struct input *in, unsigned ms)
{
    if (!ms)
        return; /* no wait: a zero timer would still wait for the clock to move */
    struct queue_entry e = {.kind = Q_DELAY, .delay_ns = (int64_t)ms * 1000000};
    submit(in, &e);
}

void input_release_all(struct input *in)
{
    machine_lock(in->m);
    for (unsigned c = 1; c <= KEY_MAX; c++)
        if (in->keys_down[c / 8] & (1u << (c % 8)))
            input_send_key(in, c, false);
    for (unsigned b = 0; b < INPUT_BUTTON__MAX; b++)
        if (in->buttons_down & (1u << b))
            input_send_button(in, (enum input_button)b, false);
    input_sync(in);
    machine_unlock(in->m);
}

void input_set_screen_size(struct input *in, unsigned width, unsigned height)
{
    machine_lock(in->m);
    in->size[INPUT_AXIS_X] = width ? width : 1;
    in->size[INPUT_AXIS_Y] = height ? height : 1;
    machine_unlock(in->m);
}

/* ---------------------------------------------------------------- devices */

struct input_handler *input_handler_register(struct input *in, const char *name, unsigned caps, int priority,
                                             const struct input_handler_ops *ops, void *opaque)
{
    machine_lock(in->m);
    struct input_handler *h = NULL;
    if (in->nhandlers < INPUT_MAX_HANDLERS) {
        h = g_new0(struct input_handler, 1);
        *h = (struct input_handler){name, caps, priority, ops, opaque, in->next_index++, false};
        in->handlers[in->nhandlers++] = h;
    } else {
        log_warn("input: more than %d input devices; %s gets no events", INPUT_MAX_HANDLERS, name);
    }
    machine_unlock(in->m);
    return h;
}

void input_handler_unregister(struct input *in, struct input_handler *h)
{
    if (!h)
        return;
    machine_lock(in->m);
    for (unsigned i = 0; i < in->nhandlers; i++) {
        if (in->handlers[i] == h) {
            memmove(&in->handlers[i], &in->handlers[i + 1],
                    (in->nhandlers - i - 1) * sizeof(in->handlers[0]));
            in->nhandlers--;
            break;
        }
    }
    machine_unlock(in->m);
    g_free(h);
}

void input_set_leds(struct input *in, unsigned leds)
{
    machine_lock(in->m);
    leds &= INPUT_LED_SCROLL_LOCK | INPUT_LED_NUM_LOCK | INPUT_LED_CAPS_LOCK;
    if (leds != in->leds) {
        in->leds = leds;
        if (in->led_fn)
            in->led_fn(in->led_opaque, leds);
    }
    machine_unlock(in->m);
}

unsigned input_get_leds(struct input *in)
{
    machine_lock(in->m);
    unsigned leds = in->leds;
    machine_unlock(in->m);
    return leds;
}

void input_set_led_listener(struct input *in, void (*fn)(void *opaque, unsigned leds), void *opaque)
{
    machine_lock(in->m);
    in->led_fn = fn;
    in->led_opaque = opaque;
    machine_unlock(in->m);
}

unsigned input_query_mice(struct input *in, struct input_mouse_info *out, unsigned max)
{
    machine_lock(in->m);
    struct input_handler *current = pointer_handler(in);
    unsigned n = 0;
    for (unsigned i = 0; i < in->nhandlers; i++) {
        struct input_handler *h = in->handlers[i];
        if (!(h->caps & (INPUT_CAP_MOUSE | INPUT_CAP_TABLET)))
            continue;
        if (n < max)
            out[n] =
                (struct input_mouse_info){h->name, h->index, h == current, !!(h->caps & INPUT_CAP_TABLET)};
        n++;
    }
    machine_unlock(in->m);
    return n;
}

void input_get_stats(struct input *in, struct input_stats *out)
{
    machine_lock(in->m);
    *out = in->stats;
    machine_unlock(in->m);
}

struct input *input_new(struct machine *m)
{
    struct input *in = g_new0(struct input, 1);
    in->m = m;
    in->size[INPUT_AXIS_X] = INPUT_DEFAULT_WIDTH;
    in->size[INPUT_AXIS_Y] = INPUT_DEFAULT_HEIGHT;
    in->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 5);
    vtimer_init(&in->timer, m->clock, delay_done, in);
    return in;
}

void input_free(struct input *in)
{
    if (!in)
        return;
    vtimer_cancel(&in->timer);
    for (unsigned i = 0; i < in->nhandlers; i++)
        g_free(in->handlers[i]);
    g_free(in);
}
