/* virtio-serial (multiport virtio console): control protocol, per-port data queues with flow control both
 * ways, and the port side of the backend interface. Everything here runs under the machine lock. */
#include "virtio_serial.h"

#include <errno.h>
#include <string.h>

#include "log.h"
#include "virtio_pci.h"

#define PCI_CLASS_COMMUNICATION_OTHER 0x078000

struct serial_port {
    struct virtio_serial *vs;
    unsigned id;
    char *name;
    bool guest_ready; /* the guest's driver set the port up (PORT_READY 1) */
    bool guest_open;  /* the guest has it open (PORT_OPEN 1) */
    bool host_open;   /* the backend is connected */
    const struct serial_port_backend_ops *ops;
    void *opaque;

    /* Host bytes for the guest: hq->data[hq_head .. hq->len). */
    GByteArray *hq;
    guint hq_head;
    bool host_wants_room; /* the backend was refused room: tell it when there is some */

    /* A guest transmit buffer the backend has not taken all of yet, and how far it got. */
    struct virtq_elem *tx_elem;
    uint64_t tx_off;
    bool tx_blocked; /* waiting for serial_port_resume_guest_data */
};

struct virtio_serial {
    struct virtio_pci *vp;
    struct machine *m;
    unsigned max_nr_ports;
    unsigned nports;
    struct serial_port ports[VIRTIO_SERIAL_PORTS_MAX]; /* ports[i] has id i + 1 */
    GQueue ctrl_pending;                               /* GBytes: control messages for the guest's buffers */
    struct virtio_serial_stats stats;
    struct log_ratelimit rl;       /* guest errors */
    struct log_ratelimit event_rl; /* the guest opening and closing ports */
};

static const char device_name[] = "virtio-serial";

bool virtio_serial_name_valid(const char *name, char **error)
{
    size_t n = strlen(name);
    if (!n) {
        *error = g_strdup("the port name is empty");
        return false;
    }
    if (n > VIRTIO_SERIAL_NAME_MAX) {
        *error = g_strdup_printf("the port name is longer than %d characters", VIRTIO_SERIAL_NAME_MAX);
        return false;
    }
    for (const char *c = name; *c; c++) {
        /* The guest makes it a file name under /dev/virtio-ports. */
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || *c == '/' || *c == ',') {
            *error = g_strdup_printf("port name '%s': only printable ASCII without spaces, '/' or ','", name);
            return false;
        }
    }
    return true;
}

static void guest_error(struct virtio_serial *vs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void guest_error(struct virtio_serial *vs, const char *fmt, ...)
{
    vs->stats.guest_errors++;
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    log_message_ratelimited(&vs->rl, LOG_LEVEL_WARN, "%s: %s", device_name, msg);
}

static struct virtqueue *queue(struct virtio_serial *vs, unsigned n)
{
    return virtio_pci_queue(vs->vp, n);
}

static bool multiport(struct virtio_serial *vs)
{
    return virtio_has_feature(&vs->vp->vdev, VIRTIO_CONSOLE_F_MULTIPORT);
}

/* ---------------------------------------------------------------- host -> guest control messages */

/* Hands queued control messages to the guest's control receive buffers, one message per buffer. */
static void flush_ctrl(struct virtio_serial *vs)
{
    struct virtqueue *vq = queue(vs, VIRTIO_SERIAL_CTRL_RX);
    bool pushed = false;
    while (!g_queue_is_empty(&vs->ctrl_pending)) {
        struct virtq_elem *e = virtqueue_pop(vq);
        if (!e)
            break;
        GBytes *msg = g_queue_pop_head(&vs->ctrl_pending);
        gsize len;
        const void *data = g_bytes_get_data(msg, &len);
        if (e->in_len < len) {
            guest_error(vs, "control buffer of %llu bytes, the message takes %zu (dropped)",
                        (unsigned long long)e->in_len, (size_t)len);
            virtqueue_push(vq, e, 0);
        } else if (virtq_elem_copy_to(vq, e, 0, data, len) == (ssize_t)len) {
            virtqueue_push(vq, e, (uint32_t)len);
        }
        virtq_elem_free(e);
        g_bytes_unref(msg);
        pushed = true;
    }
    if (pushed)
        virtqueue_notify(vq);
}

static void send_ctrl(struct virtio_serial *vs, uint32_t id, uint16_t event, uint16_t value,
                      const char *extra)
{
    if (!multiport(vs) || !virtio_driver_ok(&vs->vp->vdev))
        return;
    if (g_queue_get_length(&vs->ctrl_pending) >= VIRTIO_SERIAL_CTRL_PENDING_MAX) {
        /* Only a guest that keeps asking (DEVICE_READY again and again) without posting control buffers gets
         * here: its own messages are what is lost. */
        vs->stats.ctrl_dropped++;
        guest_error(vs, "the guest posts no control buffers; control message %u for port %u dropped", event,
                    id);
        return;
    }
    size_t extra_len = extra ? strlen(extra) : 0;
    uint8_t *buf = g_malloc(VIRTIO_CONSOLE_CONTROL_SIZE + extra_len);
    le32_store(buf, id);
    le16_store(buf + 4, event);
    le16_store(buf + 6, value);
    if (extra_len)
        memcpy(buf + VIRTIO_CONSOLE_CONTROL_SIZE, extra, extra_len);
    g_queue_push_tail(&vs->ctrl_pending, g_bytes_new_take(buf, VIRTIO_CONSOLE_CONTROL_SIZE + extra_len));
    flush_ctrl(vs);
}

/* ---------------------------------------------------------------- host -> guest data */

static size_t hq_used(const struct serial_port *p)
{
    return p->hq->len - p->hq_head;
}

static void hq_clear(struct serial_port *p)
{
    g_byte_array_set_size(p->hq, 0);
    p->hq_head = 0;
}

static void tell_host_room(struct serial_port *p)
{
    if (p->host_wants_room && hq_used(p) < VIRTIO_SERIAL_HOST_QUEUE_MAX) {
        p->host_wants_room = false;
        if (p->ops && p->ops->host_room)
            p->ops->host_room(p->opaque);
    }
}

/* Fills the guest's receive buffers from the host queue while the guest has the port open. */
static void flush_rx(struct serial_port *p)
{
    struct virtio_serial *vs = p->vs;
    if (!p->guest_open || !hq_used(p))
        return;
    struct virtqueue *vq = queue(vs, VIRTIO_SERIAL_PORT_RX(p->id));
    bool pushed = false;
    while (hq_used(p)) {
        struct virtq_elem *e = virtqueue_pop(vq);
        if (!e)
            break;
        size_t n = (size_t)MIN((uint64_t)hq_used(p), e->in_len);
        ssize_t r = virtq_elem_copy_to(vq, e, 0, p->hq->data + p->hq_head, n);
        if (r < 0) { /* device error raised: nothing more goes through until reset */
            virtq_elem_free(e);
            break;
        }
        virtqueue_push(vq, e, (uint32_t)r);
        virtq_elem_free(e);
        pushed = true;
        p->hq_head += (guint)r;
    }
    if (!hq_used(p))
        hq_clear(p);
    else if (p->hq_head >= VIRTIO_SERIAL_HOST_QUEUE_MAX / 2) {
        g_byte_array_remove_range(p->hq, 0, p->hq_head);
        p->hq_head = 0;
    }
    if (pushed)
        virtqueue_notify(vq);
    tell_host_room(p);
}

/* ---------------------------------------------------------------- guest -> host data */

/* Hands the guest's transmit buffers to the backend until they are all taken or the backend is full. */
static void flush_tx(struct serial_port *p)
{
    struct virtio_serial *vs = p->vs;
    struct virtqueue *vq = queue(vs, VIRTIO_SERIAL_PORT_TX(p->id));
    bool pushed = false;
    while (!p->tx_blocked) {
        if (!p->tx_elem) {
            p->tx_elem = virtqueue_pop(vq);
            p->tx_off = 0;
            if (!p->tx_elem)
                break;
        }
        struct virtq_elem *e = p->tx_elem;
        bool failed = false;
        while (p->tx_off < e->out_len) {
            uint8_t buf[VIRTIO_SERIAL_TX_CHUNK];
            size_t want = (size_t)MIN((uint64_t)sizeof(buf), e->out_len - p->tx_off);
            ssize_t r = virtq_elem_copy_from(vq, e, p->tx_off, buf, want);
            if (r <= 0) {
                failed = true;
                break;
            }
            size_t took = (size_t)r;
            if (p->ops && p->ops->guest_data)
                took = p->ops->guest_data(p->opaque, buf, (size_t)r);
            else
                vs->stats.guest_bytes_dropped += (uint64_t)r;
            p->tx_off += MIN(took, (size_t)r);
            if (took < (size_t)r) {
                p->tx_blocked = true;
                break;
            }
        }
        if (p->tx_blocked && !failed)
            break;
        virtqueue_push(vq, e, 0);
        virtq_elem_free(e);
        p->tx_elem = NULL;
        pushed = true;
        if (failed)
            break;
    }
    if (pushed)
        virtqueue_notify(vq);
}

/* ---------------------------------------------------------------- guest -> host control messages */

static struct serial_port *port_by_id(struct virtio_serial *vs, uint32_t id)
{
    if (id < 1 || id > vs->nports)
        return NULL;
    return &vs->ports[id - 1];
}

static void set_guest_open(struct serial_port *p, bool open)
{
    if (p->guest_open == open)
        return;
    p->guest_open = open;
    log_message_ratelimited(&p->vs->event_rl, LOG_LEVEL_INFO, "%s: port %s %s by the guest", device_name,
                            p->name, open ? "opened" : "closed");
    if (open) {
        if (p->ops && p->ops->guest_open)
            p->ops->guest_open(p->opaque, true);
        flush_rx(p);
        return;
    }
    /* What the guest wrote before closing still goes out first; host data queued for this session is
     * dropped (a Linux guest discards data for a closed port anyway). */
    flush_tx(p);
    hq_clear(p);
    if (p->ops && p->ops->guest_open)
        p->ops->guest_open(p->opaque, false);
    tell_host_room(p);
}

static void add_ports(struct virtio_serial *vs)
{
    for (unsigned i = 0; i < vs->nports; i++)
        send_ctrl(vs, vs->ports[i].id, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
}

static void handle_ctrl(struct virtio_serial *vs, const uint8_t *msg)
{
    uint32_t id = le32_load(msg);
    uint16_t event = le16_load(msg + 4), value = le16_load(msg + 6);
    struct serial_port *p;
    switch (event) {
    case VIRTIO_CONSOLE_DEVICE_READY:
        if (value != 1) {
            guest_error(vs, "the guest's driver failed to set the device up (DEVICE_READY %u)", value);
            return;
        }
        add_ports(vs);
        return;
    case VIRTIO_CONSOLE_PORT_READY:
    case VIRTIO_CONSOLE_PORT_OPEN:
        p = port_by_id(vs, id);
        if (!p) {
            guest_error(vs, "control message %u for port %u, which does not exist", event, id);
            return;
        }
        if (event == VIRTIO_CONSOLE_PORT_READY) {
            if (value != 1) {
                guest_error(vs, "the guest failed to add port %u (%s)", id, p->name);
                return;
            }
            p->guest_ready = true;
            send_ctrl(vs, id, VIRTIO_CONSOLE_PORT_NAME, 1, p->name);
            if (p->host_open)
                send_ctrl(vs, id, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
            return;
        }
        if (value > 1) {
            guest_error(vs, "PORT_OPEN %u for port %u", value, id);
            return;
        }
        set_guest_open(p, value == 1);
        return;
    default:
        guest_error(vs, "unknown control message %u (port %u, value %u)", event, id, value);
        return;
    }
}

static void ctrl_tx_notify(struct virtio_serial *vs)
{
    struct virtqueue *vq = queue(vs, VIRTIO_SERIAL_CTRL_TX);
    struct virtq_elem *e;
    bool pushed = false;
    while ((e = virtqueue_pop(vq))) {
        uint8_t msg[VIRTIO_CONSOLE_CONTROL_SIZE];
        if (e->out_len < sizeof(msg))
            guest_error(vs, "control message of %llu bytes (needs %zu)", (unsigned long long)e->out_len,
                        sizeof(msg));
        else if (virtq_elem_copy_from(vq, e, 0, msg, sizeof(msg)) == (ssize_t)sizeof(msg))
            handle_ctrl(vs, msg);
        virtqueue_push(vq, e, 0);
        virtq_elem_free(e);
        pushed = true;
    }
    if (pushed)
        virtqueue_notify(vq);
}

/* Port 0 is not offered: complete whatever the guest transmits on it, so nothing waits forever. */
static void port0_tx_notify(struct virtio_serial *vs)
{
    struct virtqueue *vq = queue(vs, VIRTIO_SERIAL_PORT_TX(0));
    struct virtq_elem *e;
    bool pushed = false;
    while ((e = virtqueue_pop(vq))) {
        vs->stats.guest_bytes_dropped += e->out_len;
        virtqueue_push(vq, e, 0);
        virtq_elem_free(e);
        pushed = true;
    }
    if (pushed)
        virtqueue_notify(vq);
}

/* ---------------------------------------------------------------- virtio device ops */

static uint64_t vs_config_read(void *opaque, unsigned offset, unsigned size)
{
    struct virtio_serial *vs = opaque;
    uint8_t img[VIRTIO_CONSOLE_CONFIG_SIZE] = {0}; /* cols, rows 0: no size; emerg_wr reads 0 */
    le32_store(img + VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, vs->max_nr_ports);
    return le_load_n(img + offset, size);
}

static void vs_config_write(void *opaque, unsigned offset, uint64_t value, unsigned size)
{
    /* emerg_wr is only writable with VIRTIO_CONSOLE_F_EMERG_WRITE, which is not offered. */
}

static void vs_queue_notify(void *opaque, struct virtqueue *vq)
{
    struct virtio_serial *vs = opaque;
    unsigned q = vq->index;
    if (q == VIRTIO_SERIAL_CTRL_RX) {
        flush_ctrl(vs);
        return;
    }
    if (q == VIRTIO_SERIAL_CTRL_TX) {
        ctrl_tx_notify(vs);
        return;
    }
    if (q == VIRTIO_SERIAL_PORT_TX(0)) {
        port0_tx_notify(vs);
        return;
    }
    if (q < 4)
        return; /* port 0's receive queue: never filled */
    struct serial_port *p = port_by_id(vs, (q - 2) / 2);
    if (!p)
        return; /* a queue of a port that does not exist: its buffers stay unused */
    if (q == VIRTIO_SERIAL_PORT_RX(p->id))
        flush_rx(p);
    else
        flush_tx(p);
}

static void vs_reset(void *opaque)
{
    struct virtio_serial *vs = opaque;
    g_queue_clear_full(&vs->ctrl_pending, (GDestroyNotify)g_bytes_unref);
    for (unsigned i = 0; i < vs->nports; i++) {
        struct serial_port *p = &vs->ports[i];
        g_clear_pointer(&p->tx_elem, virtq_elem_free);
        p->tx_blocked = false;
        p->tx_off = 0;
        p->guest_ready = false;
        /* Host data for a port the guest had open belonged to that session; data the guest never had a chance
         * to see (sent before its driver came up: the driver resets the device first) waits for the next
         * open. */
        if (p->guest_open) {
            hq_clear(p);
            p->guest_open = false;
            if (p->ops && p->ops->guest_open)
                p->ops->guest_open(p->opaque, false);
        }
        tell_host_room(p);
    }
}

static const struct virtio_device_ops vs_ops = {
    .config_read = vs_config_read,
    .config_write = vs_config_write,
    .queue_notify = vs_queue_notify,
    .reset = vs_reset,
};

/* ---------------------------------------------------------------- the backend interface */

void serial_port_attach(struct serial_port *p, const struct serial_port_backend_ops *ops, void *opaque)
{
    machine_lock(p->vs->m);
    p->ops = ops;
    p->opaque = ops ? opaque : NULL;
    p->host_wants_room = false;
    machine_unlock(p->vs->m);
}

const char *serial_port_name(const struct serial_port *p)
{
    return p->name;
}

void serial_port_set_host_connected(struct serial_port *p, bool connected)
{
    struct virtio_serial *vs = p->vs;
    machine_lock(vs->m);
    if (p->host_open != connected) {
        p->host_open = connected;
        if (p->guest_ready)
            send_ctrl(vs, p->id, VIRTIO_CONSOLE_PORT_OPEN, connected, NULL);
    }
    machine_unlock(vs->m);
}

size_t serial_port_host_room(struct serial_port *p)
{
    machine_lock(p->vs->m);
    size_t room = VIRTIO_SERIAL_HOST_QUEUE_MAX - MIN(hq_used(p), (size_t)VIRTIO_SERIAL_HOST_QUEUE_MAX);
    if (!room)
        p->host_wants_room = true;
    machine_unlock(p->vs->m);
    return room;
}

size_t serial_port_host_write(struct serial_port *p, const void *buf, size_t len)
{
    machine_lock(p->vs->m);
    size_t room = VIRTIO_SERIAL_HOST_QUEUE_MAX - MIN(hq_used(p), (size_t)VIRTIO_SERIAL_HOST_QUEUE_MAX);
    size_t take = MIN(room, len);
    if (take < len)
        p->host_wants_room = true;
    if (take) {
        if (p->hq_head && p->hq->len + take > VIRTIO_SERIAL_HOST_QUEUE_MAX) {
            g_byte_array_remove_range(p->hq, 0, p->hq_head); /* keep the array within the bound */
            p->hq_head = 0;
        }
        g_byte_array_append(p->hq, buf, (guint)take);
        flush_rx(p);
    }
    machine_unlock(p->vs->m);
    return take;
}

void serial_port_resume_guest_data(struct serial_port *p)
{
    machine_lock(p->vs->m);
    if (p->tx_blocked) {
        p->tx_blocked = false;
        flush_tx(p);
    }
    machine_unlock(p->vs->m);
}

bool serial_port_guest_is_open(struct serial_port *p)
{
    machine_lock(p->vs->m);
    bool open = p->guest_open;
    machine_unlock(p->vs->m);
    return open;
}

/* ---------------------------------------------------------------- life cycle */

struct virtio_serial *virtio_serial_new(struct machine *m, unsigned slot,
                                        const struct virtio_serial_conf *conf, char **error)
{
    unsigned max = conf->max_nr_ports ? conf->max_nr_ports : VIRTIO_SERIAL_MAX_NR_PORTS;
    if (conf->nports > VIRTIO_SERIAL_PORTS_MAX || max > VIRTIO_SERIAL_MAX_NR_PORTS ||
        max < conf->nports + 1) {
        *error = g_strdup_printf("%u ports do not fit (at most %d, max_nr_ports %u)", conf->nports,
                                 VIRTIO_SERIAL_PORTS_MAX, max);
        return NULL;
    }
    for (unsigned i = 0; i < conf->nports; i++) {
        if (!virtio_serial_name_valid(conf->names[i], error))
            return NULL;
        for (unsigned j = 0; j < i; j++) {
            if (!strcmp(conf->names[i], conf->names[j])) {
                *error = g_strdup_printf("port name '%s' given twice", conf->names[i]);
                return NULL;
            }
        }
    }
    struct virtio_serial *vs = g_new0(struct virtio_serial, 1);
    vs->m = m;
    vs->max_nr_ports = max;
    vs->nports = conf->nports;
    vs->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 5);
    vs->event_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 20);
    g_queue_init(&vs->ctrl_pending);
    for (unsigned i = 0; i < conf->nports; i++) {
        struct serial_port *p = &vs->ports[i];
        p->vs = vs;
        p->id = i + 1;
        p->name = g_strdup(conf->names[i]);
        p->hq = g_byte_array_new();
    }
    const struct virtio_pci_config cfg = {
        .dev = {.name = device_name,
                .device_type = VIRTIO_ID_CONSOLE,
                .features = VIRTIO_F_BIT(VIRTIO_CONSOLE_F_MULTIPORT),
                .config_size = VIRTIO_CONSOLE_CONFIG_SIZE,
                .num_queues = 2 * (max + 1),
                .queue_max_size = VIRTIO_SERIAL_QUEUE_SIZE,
                .ops = &vs_ops,
                .opaque = vs},
        .class_code = PCI_CLASS_COMMUNICATION_OTHER,
    };
    vs->vp = virtio_pci_create(m->pci, slot, 0, &cfg, error);
    if (!vs->vp) {
        virtio_serial_free(vs);
        return NULL;
    }
    return vs;
}

void virtio_serial_free(struct virtio_serial *vs)
{
    if (!vs)
        return;
    virtio_pci_free(vs->vp);
    g_queue_clear_full(&vs->ctrl_pending, (GDestroyNotify)g_bytes_unref);
    for (unsigned i = 0; i < vs->nports; i++) {
        struct serial_port *p = &vs->ports[i];
        g_clear_pointer(&p->tx_elem, virtq_elem_free);
        g_byte_array_unref(p->hq);
        g_free(p->name);
    }
    g_free(vs);
}

struct virtio_serial *virtio_serial_at(struct machine *m, unsigned slot)
{
    struct pci_device *p = m->pci ? pci_bus_get_device(m->pci, slot, 0) : NULL;
    if (!p || p->name != device_name)
        return NULL;
    return container_of(p, struct virtio_pci, pci)->vdev.opaque;
}

struct serial_port *virtio_serial_port(struct virtio_serial *vs, const char *name)
{
    for (unsigned i = 0; i < vs->nports; i++)
        if (!strcmp(vs->ports[i].name, name))
            return &vs->ports[i];
    return NULL;
}

void virtio_serial_get_stats(struct virtio_serial *vs, struct virtio_serial_stats *out)
{
    machine_lock(vs->m);
    *out = vs->stats;
    machine_unlock(vs->m);
}

/* ---------------------------------------------------------------- the board's device */

static int vs_create(struct machine *m, char **error)
{
    if (!m->pci) {
        *error = g_strdup("needs the PCI host bridge (list pci-host before it)");
        return -EINVAL;
    }
    static const struct virtio_serial_conf none;
    const struct virtio_serial_conf *conf = m->config.virtio_serial ? m->config.virtio_serial : &none;
    return virtio_serial_new(m, VIRTIO_SERIAL_SLOT, conf, error) ? 0 : -EINVAL;
}

static void vs_machine_reset(struct machine *m)
{
    struct virtio_serial *vs = virtio_serial_at(m, VIRTIO_SERIAL_SLOT);
    if (vs)
        virtio_pci_reset(vs->vp);
}

static void vs_destroy(struct machine *m)
{
    virtio_serial_free(virtio_serial_at(m, VIRTIO_SERIAL_SLOT));
}

const struct machine_device virtio_serial_device = {"virtio-serial", vs_create, vs_machine_reset, vs_destroy};
