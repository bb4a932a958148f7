/* The guest's vdagent port (com.redhat.spice.0) as spice-server's "vdagent" char device.
 *
 * spice-server owns the agent stream (chunking, tokens, clipboard filters, agent mouse); this file is only
 * the pipe between the virtio-serial port and the char-device interface, and the rule of when spice-server
 * may see an agent: the char device is registered while the guest has the port open and never otherwise,
 * because a registered vdagent means "agent present" to spice-server and its clients.
 *
 * Threads: the port calls its backend ops (guest_open, guest_data, host_room) with the machine lock held,
 * from vCPU threads or the main loop; spice-server must only be called on the main thread. So the ops only
 * update the state under a->lock and schedule an idle on the main loop, which does every spice_server_* call.
 * The main thread calls the serial_port_* functions (which take the machine lock) never while holding
 * a->lock.
 *
 * Sessions: every guest open starts a session (open_gen). The idle brings spice-server to the latest state:
 * if the guest closed, or closed and opened again before the idle ran, the char device is removed (after
 * spice-server got what the old session wrote), then added again for a new session, so spice-server and the
 * client see the old agent go and a new one come. Guest bytes from an old session that spice did not take are
 * dropped when a new one starts, so a new agent never sees the end of the previous one's message. */
#include "spice_internal.h"

#include <string.h>

#include "log.h"

/* Guest bytes held for spice-server's read callback; more makes the guest wait (its writes block). */
#define AGENT_GUEST_BUFFER_MAX (256 * 1024)

struct spice_agent {
    SpiceServer *server;
    struct serial_port *port;
    SpiceCharDeviceInstance sin;

    /* Main thread only. */
    bool registered;         /* the char device is added to spice-server */
    unsigned registered_gen; /* the session it was added for */
    bool host_connected;     /* what we last told the port (spice's state callback) */

    GMutex lock; /* everything below */
    bool guest_open;
    unsigned open_gen;       /* counts guest opens */
    GByteArray *in;          /* guest bytes not yet read by spice-server */
    unsigned in_gen;         /* the session the bytes in `in` belong to */
    bool guest_blocked;      /* guest_data took less than offered: resume once spice has read */
    bool wake;               /* guest data or port room: wake spice-server's char device */
    struct log_ratelimit rl; /* flow-control debug messages */
    guint idle;
};

static gboolean on_idle(gpointer data);

/* Called with a->lock held, from any thread. */
static void schedule_locked(struct spice_agent *a)
{
    if (!a->idle)
        a->idle = g_idle_add(on_idle, a);
}

/* ---------------------------------------------------------------- spice-server's char-device callbacks */

static struct spice_agent *agent_of(SpiceCharDeviceInstance *sin)
{
    return (struct spice_agent *)((char *)sin - offsetof(struct spice_agent, sin));
}

/* Client to guest. A short count is spice's flow control: it waits for spice_server_char_device_wakeup,
 * which the port's host_room op brings. */
static int cd_write(SpiceCharDeviceInstance *sin, const uint8_t *buf, int len)
{
    struct spice_agent *a = agent_of(sin);
    if (len <= 0)
        return 0;
    g_mutex_lock(&a->lock);
    bool current = a->guest_open && a->open_gen == a->registered_gen;
    g_mutex_unlock(&a->lock);
    if (!current)
        return len; /* the session spice is writing to has ended: its bytes must not reach the next one */
    size_t n = serial_port_host_write(a->port, buf, (size_t)len);
    if (n < (size_t)len)
        log_message_ratelimited(&a->rl, LOG_LEVEL_DEBUG,
                                "spice: agent port full: took %zu of %d client bytes", n, len);
    return (int)n;
}

/* Guest to client: spice-server pulls until this returns 0. */
static int cd_read(SpiceCharDeviceInstance *sin, uint8_t *buf, int len)
{
    struct spice_agent *a = agent_of(sin);
    if (len <= 0)
        return 0;
    g_mutex_lock(&a->lock);
    size_t n = 0;
    if (a->in_gen == a->registered_gen) {
        n = MIN((size_t)len, (size_t)a->in->len);
        memcpy(buf, a->in->data, n);
        g_byte_array_remove_range(a->in, 0, (guint)n);
    }
    bool resume = a->guest_blocked && a->in->len <= AGENT_GUEST_BUFFER_MAX / 2;
    if (resume)
        a->guest_blocked = false;
    g_mutex_unlock(&a->lock);
    if (resume)
        serial_port_resume_guest_data(a->port); /* may call guest_data at once: a->lock is not held */
    return (int)n;
}

/* spice-server attached (1) or detached (0) the agent: the guest sees the host end open or close. */
static void cd_state(SpiceCharDeviceInstance *sin, int connected)
{
    struct spice_agent *a = agent_of(sin);
    if (a->host_connected == !!connected)
        return;
    a->host_connected = !!connected;
    serial_port_set_host_connected(a->port, a->host_connected);
}

static const SpiceCharDeviceInterface vdagent_interface = {
    .base.type = SPICE_INTERFACE_CHAR_DEVICE,
    .base.description = "deskvm vdagent port",
    .base.major_version = SPICE_INTERFACE_CHAR_DEVICE_MAJOR,
    .base.minor_version = SPICE_INTERFACE_CHAR_DEVICE_MINOR,
    .state = cd_state,
    .write = cd_write,
    .read = cd_read,
    .flags = SPICE_CHAR_DEVICE_NOTIFY_WRITABLE,
};

/* ---------------------------------------------------------------- main loop: spice follows the port */

static void unregister(struct spice_agent *a)
{
    /* spice-server reads what the ending session wrote before it loses the agent. */
    spice_server_char_device_wakeup(&a->sin);
    spice_server_remove_interface(&a->sin.base);
    a->registered = false;
    a->sin.st = NULL;
    /* What the ended session wrote and spice did not take has nowhere to go; a guest waiting to write more
     * of it goes on (its bytes are dropped on arrival, see be_guest_data). */
    g_mutex_lock(&a->lock);
    if (a->in_gen == a->registered_gen)
        g_byte_array_set_size(a->in, 0);
    bool blocked = a->guest_blocked;
    a->guest_blocked = false;
    g_mutex_unlock(&a->lock);
    if (blocked)
        serial_port_resume_guest_data(a->port);
    if (a->host_connected) { /* in case spice-server did not say so itself */
        a->host_connected = false;
        serial_port_set_host_connected(a->port, false);
    }
    log_info("spice: the guest agent went away");
}

static void do_register(struct spice_agent *a, unsigned gen)
{
    memset(&a->sin, 0, sizeof(a->sin));
    a->sin.base.sif = &vdagent_interface.base;
    a->sin.subtype = "vdagent";
    a->registered_gen = gen; /* before adding: spice-server may call read and state during the add */
    if (spice_server_add_interface(a->server, &a->sin.base) != 0) {
        log_warn("spice: spice-server refused the vdagent char device (another agent attached?)");
        return;
    }
    a->registered = true;
    log_info("spice: the guest agent connected");
}

static gboolean on_idle(gpointer data)
{
    struct spice_agent *a = data;
    g_mutex_lock(&a->lock);
    a->idle = 0;
    bool open = a->guest_open;
    unsigned gen = a->open_gen;
    bool wake = a->wake;
    a->wake = false;
    g_mutex_unlock(&a->lock);

    if (a->registered && (!open || gen != a->registered_gen))
        unregister(a);
    if (open && !a->registered) {
        do_register(a, gen);
        wake = true; /* bytes the guest wrote before the idle ran */
    }
    if (a->registered && wake)
        spice_server_char_device_wakeup(&a->sin);
    return G_SOURCE_REMOVE;
}

/* ---------------------------------------------------------------- the port's calls (machine lock held) */

static void be_guest_open(void *opaque, bool open)
{
    struct spice_agent *a = opaque;
    g_mutex_lock(&a->lock);
    if (open && !a->guest_open)
        a->open_gen++;
    a->guest_open = open;
    schedule_locked(a);
    g_mutex_unlock(&a->lock);
}

static size_t be_guest_data(void *opaque, const uint8_t *buf, size_t len)
{
    struct spice_agent *a = opaque;
    g_mutex_lock(&a->lock);
    if (!a->guest_open) {
        g_mutex_unlock(&a->lock);
        return len; /* the tail of a closed session: spice-server no longer has its agent */
    }
    if (a->in_gen != a->open_gen) {
        /* A new session: what the old one left unread would corrupt the new stream. */
        g_byte_array_set_size(a->in, 0);
        a->in_gen = a->open_gen;
    }
    size_t take = MIN(len, AGENT_GUEST_BUFFER_MAX - MIN((size_t)a->in->len, (size_t)AGENT_GUEST_BUFFER_MAX));
    g_byte_array_append(a->in, buf, (guint)take);
    if (take < len) {
        a->guest_blocked = true;
        log_message_ratelimited(&a->rl, LOG_LEVEL_DEBUG, "spice: agent buffer full: the guest waits");
    }
    a->wake = true;
    schedule_locked(a);
    g_mutex_unlock(&a->lock);
    return take;
}

static void be_host_room(void *opaque)
{
    struct spice_agent *a = opaque;
    g_mutex_lock(&a->lock);
    a->wake = true;
    schedule_locked(a);
    g_mutex_unlock(&a->lock);
}

static const struct serial_port_backend_ops spice_agent_backend_ops = {
    .guest_open = be_guest_open,
    .guest_data = be_guest_data,
    .host_room = be_host_room,
};

/* ---------------------------------------------------------------- life cycle */

struct spice_agent *spice_agent_new(SpiceServer *server, struct serial_port *port)
{
    struct spice_agent *a = g_new0(struct spice_agent, 1);
    a->server = server;
    a->port = port;
    a->in = g_byte_array_new();
    a->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 5);
    g_mutex_init(&a->lock);
    serial_port_attach(port, &spice_agent_backend_ops, a);
    /* SPICE started after the guest opened the port (guest_open only reports changes). */
    if (serial_port_guest_is_open(port)) {
        g_mutex_lock(&a->lock);
        if (!a->guest_open) {
            a->guest_open = true;
            a->open_gen++;
        }
        schedule_locked(a);
        g_mutex_unlock(&a->lock);
    }
    return a;
}

void spice_agent_free(struct spice_agent *a)
{
    if (!a)
        return;
    serial_port_attach(a->port, NULL, NULL); /* no more ops after this returns (it takes the machine lock) */
    if (a->registered) {
        spice_server_remove_interface(&a->sin.base);
        a->registered = false;
    }
    if (a->host_connected)
        serial_port_set_host_connected(a->port, false);
    if (a->idle)
        g_source_remove(a->idle);
    g_byte_array_unref(a->in);
    g_mutex_clear(&a->lock);
    g_free(a);
}

bool spice_agent_connected(const struct spice_agent *a)
{
    return a && a->registered;
}
