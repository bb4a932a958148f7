/* virtio-input keyboard and tablet: configuration space, event queue, status queue. */
#include "virtio_input.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "input.h"
#include "log.h"
#include "scancode.h"
#include "virtio_pci.h"

#define PCI_CLASS_INPUT_OTHER 0x098000

static const char keyboard_name[] = "deskvm Virtio Keyboard";
static const char tablet_name[] = "deskvm Virtio Tablet";

/* ---------------------------------------------------------------- configuration space */

static void set_bit(uint8_t *bitmap, unsigned bit)
{
    bitmap[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/* A bitmap's size is up to its last non-zero byte (5.8.4: the driver reads size bytes). */
static uint8_t bitmap_size(const uint8_t *bitmap)
{
    unsigned n = VIRTIO_INPUT_CFG_UNION_SIZE;
    while (n && !bitmap[n - 1])
        n--;
    return (uint8_t)n;
}

static uint8_t string_item(uint8_t *u, const char *s)
{
    size_t n = MIN(strlen(s), (size_t)VIRTIO_INPUT_CFG_UNION_SIZE);
    memcpy(u, s, n);
    return (uint8_t)n;
}

static uint8_t ev_bits(const struct virtio_input *d, unsigned type, uint8_t *u)
{
    if (d->kind == VIRTIO_INPUT_KEYBOARD) {
        switch (type) {
        case EV_KEY:
            for (unsigned code = 1; code < 256; code++)
                set_bit(u, code);
            return bitmap_size(u);
        case EV_LED:
            set_bit(u, LED_NUML);
            set_bit(u, LED_CAPSL);
            set_bit(u, LED_SCROLLL);
            return bitmap_size(u);
        case EV_REP:
            return 1; /* present: the guest repeats keys itself */
        default:
            return 0;
        }
    }
    switch (type) {
    case EV_KEY:
        for (unsigned b = BTN_LEFT; b <= BTN_EXTRA; b++)
            set_bit(u, b);
        return bitmap_size(u);
    case EV_REL:
        set_bit(u, REL_WHEEL);
        set_bit(u, REL_HWHEEL);
        return bitmap_size(u);
    case EV_ABS:
        set_bit(u, ABS_X);
        set_bit(u, ABS_Y);
        return bitmap_size(u);
    default:
        return 0;
    }
}

/* The union for the current select/subsel; returns its size. */
static uint8_t config_item(const struct virtio_input *d, uint8_t *u)
{
    memset(u, 0, VIRTIO_INPUT_CFG_UNION_SIZE);
    switch (d->select) {
    case VIRTIO_INPUT_CFG_ID_NAME:
        return d->subsel ? 0 : string_item(u, d->name);
    case VIRTIO_INPUT_CFG_ID_SERIAL:
        return d->subsel ? 0 : string_item(u, d->serial);
    case VIRTIO_INPUT_CFG_ID_DEVIDS:
        if (d->subsel)
            return 0;
        le16_store(u, BUS_VIRTUAL);
        le16_store(u + 2, VIRTIO_INPUT_VENDOR);
        le16_store(u + 4, d->kind == VIRTIO_INPUT_KEYBOARD ? VIRTIO_INPUT_PRODUCT_KEYBOARD
                                                           : VIRTIO_INPUT_PRODUCT_TABLET);
        le16_store(u + 6, VIRTIO_INPUT_VERSION);
        return 8;
    case VIRTIO_INPUT_CFG_PROP_BITS:
        return 0;
    case VIRTIO_INPUT_CFG_EV_BITS:
        return ev_bits(d, d->subsel, u);
    case VIRTIO_INPUT_CFG_ABS_INFO:
        if (d->kind != VIRTIO_INPUT_TABLET || (d->subsel != ABS_X && d->subsel != ABS_Y))
            return 0;
        le32_store(u, 0);                 /* min */
        le32_store(u + 4, INPUT_ABS_MAX); /* max */
        return 20;                        /* fuzz, flat, res: 0 */
    default:
        return 0;
    }
}

static uint64_t vi_config_read(void *opaque, unsigned offset, unsigned size)
{
    struct virtio_input *d = opaque;
    uint8_t img[VIRTIO_INPUT_CONFIG_SIZE] = {0};
    img[VIRTIO_INPUT_CFG_SELECT] = d->select;
    img[VIRTIO_INPUT_CFG_SUBSEL] = d->subsel;
    img[VIRTIO_INPUT_CFG_SIZE] = config_item(d, img + VIRTIO_INPUT_CFG_UNION);
    return le_load_n(img + offset, size);
}

static void vi_config_write(void *opaque, unsigned offset, uint64_t value, unsigned size)
{
    struct virtio_input *d = opaque;
    /* Only select and subsel are the driver's; everything else is read-only. */
    for (unsigned i = 0; i < size; i++) {
        uint8_t b = (uint8_t)(value >> (8 * i));
        if (offset + i == VIRTIO_INPUT_CFG_SELECT)
            d->select = b;
        else if (offset + i == VIRTIO_INPUT_CFG_SUBSEL)
            d->subsel = b;
    }
}

/* ---------------------------------------------------------------- event queue */

static struct virtqueue *eventq(struct virtio_input *d)
{
    return virtio_pci_queue(d->vp, VIRTIO_INPUT_EVENTQ);
}

/* Hands pending events to the guest, one per buffer, as long as it has buffers posted. */
static void flush_events(struct virtio_input *d)
{
    struct virtqueue *vq = eventq(d);
    bool pushed = false;
    while (d->p_count) {
        struct virtq_elem *e = virtqueue_pop(vq);
        if (!e)
            break;
        if (e->in_len < VIRTIO_INPUT_EVENT_SIZE) {
            virtio_device_error(&d->vp->vdev, "event buffer of %llu bytes, an event takes %d",
                                (unsigned long long)e->in_len, VIRTIO_INPUT_EVENT_SIZE);
            virtq_elem_free(e);
            break;
        }
        const struct virtio_input_event *ev = &d->pending[d->p_head];
        uint8_t buf[VIRTIO_INPUT_EVENT_SIZE];
        le16_store(buf, ev->type);
        le16_store(buf + 2, ev->code);
        le32_store(buf + 4, ev->value);
        if (virtq_elem_copy_to(vq, e, 0, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
            virtq_elem_free(e); /* the copy raised a device error */
            break;
        }
        virtqueue_push(vq, e, sizeof(buf));
        virtq_elem_free(e);
        pushed = true;
        d->p_head = (d->p_head + 1) % VIRTIO_INPUT_PENDING_MAX;
        d->p_count--;
    }
    if (pushed)
        virtqueue_notify(vq);
}

/* Makes room by dropping the oldest report whole (up to and including its SYN_REPORT), so the guest never
 * sees half a report joined to another. */
static void drop_oldest_report(struct virtio_input *d)
{
    unsigned n = 0;
    while (d->p_count) {
        const struct virtio_input_event *ev = &d->pending[d->p_head];
        bool syn = ev->type == EV_SYN && ev->code == SYN_REPORT;
        d->p_head = (d->p_head + 1) % VIRTIO_INPUT_PENDING_MAX;
        d->p_count--;
        n++;
        if (syn)
            break;
    }
    if (d->unsynced > d->p_count)
        d->unsynced = d->p_count;
    d->dropped_events += n;
    log_message_ratelimited(&d->rl, LOG_LEVEL_WARN,
                            "%s: the guest takes no events; dropped the oldest %u (queue of %d full)",
                            d->name, n, VIRTIO_INPUT_PENDING_MAX);
}

static void queue_event(struct virtio_input *d, uint16_t type, uint16_t code, uint32_t value)
{
    if (d->p_count == VIRTIO_INPUT_PENDING_MAX)
        drop_oldest_report(d);
    d->pending[(d->p_head + d->p_count) % VIRTIO_INPUT_PENDING_MAX] =
        (struct virtio_input_event){type, code, value};
    d->p_count++;
    if (type == EV_SYN)
        d->unsynced = 0;
    else
        d->unsynced++;
}

/* ---------------------------------------------------------------- input handler */

static const uint16_t button_codes[INPUT_BUTTON__MAX] = {
    [INPUT_BUTTON_LEFT] = BTN_LEFT, [INPUT_BUTTON_MIDDLE] = BTN_MIDDLE, [INPUT_BUTTON_RIGHT] = BTN_RIGHT,
    [INPUT_BUTTON_SIDE] = BTN_SIDE, [INPUT_BUTTON_EXTRA] = BTN_EXTRA,
};

static void vi_event(void *opaque, const struct input_event *ev)
{
    struct virtio_input *d = opaque;
    switch (ev->type) {
    case INPUT_EVENT_KEY:
        if (d->kind == VIRTIO_INPUT_KEYBOARD)
            queue_event(d, EV_KEY, ev->key.code, ev->key.down);
        break;
    case INPUT_EVENT_BTN:
        if (d->kind != VIRTIO_INPUT_TABLET)
            break;
        switch (ev->btn.button) {
        case INPUT_BUTTON_WHEEL_UP:
        case INPUT_BUTTON_WHEEL_DOWN:
            /* One step per press; REL_WHEEL is positive away from the user. */
            if (ev->btn.down)
                queue_event(d, EV_REL, REL_WHEEL, ev->btn.button == INPUT_BUTTON_WHEEL_UP ? 1 : (uint32_t)-1);
            break;
        case INPUT_BUTTON_WHEEL_LEFT:
        case INPUT_BUTTON_WHEEL_RIGHT:
            if (ev->btn.down)
                queue_event(d, EV_REL, REL_HWHEEL,
                            ev->btn.button == INPUT_BUTTON_WHEEL_RIGHT ? 1 : (uint32_t)-1);
            break;
        default:
            queue_event(d, EV_KEY, button_codes[ev->btn.button], ev->btn.down);
            break;
        }
        break;
    case INPUT_EVENT_ABS:
        if (d->kind == VIRTIO_INPUT_TABLET)
            queue_event(d, EV_ABS, ev->move.axis == INPUT_AXIS_X ? ABS_X : ABS_Y, (uint32_t)ev->move.value);
        break;
    case INPUT_EVENT_REL:
        break; /* the router gives a tablet absolute positions only */
    }
}

static void vi_sync(void *opaque)
{
    struct virtio_input *d = opaque;
    if (d->unsynced)
        queue_event(d, EV_SYN, SYN_REPORT, 0);
    flush_events(d);
}

static bool vi_active(void *opaque)
{
    struct virtio_input *d = opaque;
    return virtqueue_ready(eventq(d));
}

static const struct input_handler_ops vi_handler_ops = {vi_event, vi_sync, vi_active};

/* ---------------------------------------------------------------- status queue */

static void status_notify(struct virtio_input *d, struct virtqueue *vq)
{
    unsigned leds = d->leds;
    struct virtq_elem *e;
    while ((e = virtqueue_pop(vq))) {
        uint8_t buf[VIRTIO_INPUT_EVENT_SIZE];
        if (e->out_len < sizeof(buf)) {
            log_message_ratelimited(&d->rl, LOG_LEVEL_WARN, "%s: status buffer of %llu bytes ignored",
                                    d->name, (unsigned long long)e->out_len);
        } else if (virtq_elem_copy_from(vq, e, 0, buf, sizeof(buf)) == (ssize_t)sizeof(buf)) {
            uint16_t type = le16_load(buf), code = le16_load(buf + 2);
            uint32_t value = le32_load(buf + 4);
            unsigned bit = 0;
            if (type == EV_LED && code == LED_NUML)
                bit = INPUT_LED_NUM_LOCK;
            else if (type == EV_LED && code == LED_CAPSL)
                bit = INPUT_LED_CAPS_LOCK;
            else if (type == EV_LED && code == LED_SCROLLL)
                bit = INPUT_LED_SCROLL_LOCK;
            leds = value ? leds | bit : leds & ~bit;
        }
        virtqueue_push(vq, e, 0);
        virtq_elem_free(e);
    }
    virtqueue_notify(vq);
    if (leds != d->leds) {
        d->leds = leds;
        if (d->m->input)
            input_set_leds(d->m->input, leds);
    }
}

static void vi_queue_notify(void *opaque, struct virtqueue *vq)
{
    struct virtio_input *d = opaque;
    if (vq->index == VIRTIO_INPUT_EVENTQ)
        flush_events(d); /* new buffers: deliver what waited for them */
    else
        status_notify(d, vq);
}

static void vi_reset(void *opaque)
{
    struct virtio_input *d = opaque;
    /* Events from before the reset mean nothing to the next driver. */
    d->p_head = d->p_count = d->unsynced = 0;
    d->select = d->subsel = 0;
    d->leds = 0;
}

static const struct virtio_device_ops vi_ops = {
    .config_read = vi_config_read,
    .config_write = vi_config_write,
    .queue_notify = vi_queue_notify,
    .reset = vi_reset,
};

/* ---------------------------------------------------------------- life cycle */

struct virtio_input *virtio_input_new(struct machine *m, unsigned slot, enum virtio_input_kind kind,
                                      char **error)
{
    struct virtio_input *d = g_new0(struct virtio_input, 1);
    d->m = m;
    d->kind = kind;
    d->name = kind == VIRTIO_INPUT_KEYBOARD ? keyboard_name : tablet_name;
    g_snprintf(d->serial, sizeof(d->serial), "deskvm-%s-%u", kind == VIRTIO_INPUT_KEYBOARD ? "kbd" : "tablet",
               slot);
    d->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 5);
    const struct virtio_pci_config cfg = {
        .dev = {.name = d->name,
                .device_type = VIRTIO_ID_INPUT,
                .config_size = VIRTIO_INPUT_CONFIG_SIZE,
                .num_queues = 2,
                .queue_max_size = VIRTIO_INPUT_QUEUE_SIZE,
                .ops = &vi_ops,
                .opaque = d},
        .class_code = PCI_CLASS_INPUT_OTHER,
    };
    d->vp = virtio_pci_create(m->pci, slot, 0, &cfg, error);
    if (!d->vp) {
        g_free(d);
        return NULL;
    }
    if (m->input)
        d->handler = input_handler_register(
            m->input, d->name, kind == VIRTIO_INPUT_KEYBOARD ? INPUT_CAP_KEYBOARD : INPUT_CAP_TABLET,
            INPUT_PRIORITY_VIRTIO, &vi_handler_ops, d);
    return d;
}

void virtio_input_free(struct virtio_input *d)
{
    if (!d)
        return;
    if (d->m->input)
        input_handler_unregister(d->m->input, d->handler);
    virtio_pci_free(d->vp);
    g_free(d);
}

struct virtio_input *virtio_input_at(struct machine *m, unsigned slot)
{
    struct pci_device *p = m->pci ? pci_bus_get_device(m->pci, slot, 0) : NULL;
    if (!p || (p->name != keyboard_name && p->name != tablet_name))
        return NULL;
    return container_of(p, struct virtio_pci, pci)->vdev.opaque;
}

/* ---------------------------------------------------------------- the board's devices */

static int create_at(struct machine *m, unsigned slot, enum virtio_input_kind kind, char **error)
{
    if (!m->pci) {
        *error = g_strdup("needs the PCI host bridge (list pci-host before it)");
        return -EINVAL;
    }
    return virtio_input_new(m, slot, kind, error) ? 0 : -EIO;
}

static int keyboard_create(struct machine *m, char **error)
{
    return create_at(m, VIRTIO_KEYBOARD_SLOT, VIRTIO_INPUT_KEYBOARD, error);
}

static int tablet_create(struct machine *m, char **error)
{
    return create_at(m, VIRTIO_TABLET_SLOT, VIRTIO_INPUT_TABLET, error);
}

static void keyboard_reset(struct machine *m)
{
    struct virtio_input *d = virtio_input_at(m, VIRTIO_KEYBOARD_SLOT);
    if (d)
        virtio_pci_reset(d->vp);
}

static void tablet_reset(struct machine *m)
{
    struct virtio_input *d = virtio_input_at(m, VIRTIO_TABLET_SLOT);
    if (d)
        virtio_pci_reset(d->vp);
}

static void keyboard_destroy(struct machine *m)
{
    virtio_input_free(virtio_input_at(m, VIRTIO_KEYBOARD_SLOT));
}

static void tablet_destroy(struct machine *m)
{
    virtio_input_free(virtio_input_at(m, VIRTIO_TABLET_SLOT));
}

const struct machine_device virtio_keyboard_device = {"virtio-keyboard", keyboard_create, keyboard_reset,
                                                      keyboard_destroy};
const struct machine_device virtio_tablet_device = {"virtio-tablet", tablet_create, tablet_reset,
                                                    tablet_destroy};
