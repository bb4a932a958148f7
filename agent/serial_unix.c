/* The unix-socket port backend. The device calls in under the machine lock from any thread; those calls only
 * touch the output buffer and flags under su->lock and schedule an idle on the main loop, which does every
 * socket operation. The main loop calls the port (which takes the machine lock) never while holding su->lock.
 */
#include "serial_unix.h"

#include <errno.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib.h>

#include "listen.h"
#include "log.h"
#include "virtio_serial.h"

#define READ_CHUNK 16384

struct serial_unix {
    struct serial_port *port;
    char *who; /* "serial port NAME" for messages */
    struct listener listener;
    bool listening;

    /* Main loop only. */
    int fd; /* the client, -1 if none */
    guint in_watch, out_watch;
    bool read_paused; /* the port had no room: waiting for host_room */

    GMutex lock; /* everything below */
    bool connected;
    unsigned client_gen; /* counts clients, so a guest close applies to the client it happened under */
    GByteArray *out;     /* guest bytes not yet sent to the client */
    bool guest_blocked;  /* guest_data took less than offered */
    bool close_pending;  /* the guest closed the port: disconnect client close_gen once out is sent */
    unsigned close_gen;
    bool room_event; /* host_room came */
    guint idle;
};

/* ---------------------------------------------------------------- option parsing */

static bool parse_path(const char *v, char **path, char **error)
{
    if (!g_str_has_prefix(v, "unix:")) {
        *error = g_strdup_printf("'%s' is not unix:PATH", v);
        return false;
    }
    struct listen_spec ls;
    if (!listen_spec_parse(v, &ls, error))
        return false;
    *path = g_steal_pointer(&ls.path);
    listen_spec_clear(&ls);
    return true;
}

bool serial_port_spec_parse(const char *s, struct serial_port_spec *out, char **error)
{
    memset(out, 0, sizeof(*out));
    g_auto(GStrv) parts = g_strsplit(s, ",", -1);
    for (char **p = parts; *p; p++) {
        const char *eq = strchr(*p, '=');
        if (!eq) {
            *error = g_strdup_printf("'%s' is not KEY=VALUE (expected name=NAME,path=unix:PATH)", *p);
            goto fail;
        }
        g_autofree char *key = g_strndup(*p, (gsize)(eq - *p));
        const char *value = eq + 1;
        if (!strcmp(key, "name")) {
            if (out->name) {
                *error = g_strdup("name given twice");
                goto fail;
            }
            if (!virtio_serial_name_valid(value, error))
                goto fail;
            out->name = g_strdup(value);
        } else if (!strcmp(key, "path")) {
            if (out->path) {
                *error = g_strdup("path given twice");
                goto fail;
            }
            if (!parse_path(value, &out->path, error))
                goto fail;
        } else {
            *error = g_strdup_printf("unknown parameter '%s' (expected name=NAME,path=unix:PATH)", key);
            goto fail;
        }
    }
    if (!out->name) {
        *error = g_strdup("needs name=NAME");
        goto fail;
    }
    if (!out->path) {
        *error = g_strdup("needs path=unix:PATH");
        goto fail;
    }
    return true;
fail:
    serial_port_spec_clear(out);
    return false;
}

bool serial_port_spec_parse_guest_agent(const char *s, struct serial_port_spec *out, char **error)
{
    memset(out, 0, sizeof(*out));
    if (!parse_path(s, &out->path, error))
        return false;
    out->name = g_strdup(GUEST_AGENT_PORT_NAME);
    out->guest_agent = true;
    return true;
}

void serial_port_spec_clear(struct serial_port_spec *spec)
{
    g_clear_pointer(&spec->name, g_free);
    g_clear_pointer(&spec->path, g_free);
}

/* ---------------------------------------------------------------- main loop side */

static gboolean on_idle(gpointer data);
static gboolean on_readable(gint fd, GIOCondition cond, gpointer data);

/* Called with su->lock held, from any thread. */
static void schedule_locked(struct serial_unix *su)
{
    if (!su->idle)
        su->idle = g_idle_add(on_idle, su);
}

static void disconnect(struct serial_unix *su, const char *why)
{
    if (su->fd < 0)
        return;
    if (su->in_watch)
        g_source_remove(su->in_watch);
    if (su->out_watch)
        g_source_remove(su->out_watch);
    su->in_watch = su->out_watch = 0;
    su->read_paused = false;
    close(su->fd);
    su->fd = -1;
    g_mutex_lock(&su->lock);
    su->connected = false;
    su->close_pending = false;
    g_byte_array_set_size(su->out, 0);
    bool blocked = su->guest_blocked;
    su->guest_blocked = false;
    g_mutex_unlock(&su->lock);
    log_info("%s: client disconnected (%s)", su->who, why);
    serial_port_set_host_connected(su->port, false);
    if (blocked)
        serial_port_resume_guest_data(su->port); /* the rest of the guest's data has nowhere to go now */
}

static gboolean on_writable(gint fd, GIOCondition cond, gpointer data);

/* Sends what the socket takes now; lets a waiting guest go on once half the buffer is free; disconnects after
 * a guest close once everything is out. */
static void drain(struct serial_unix *su)
{
    if (su->fd < 0)
        return;
    const char *failed = NULL;
    g_mutex_lock(&su->lock);
    while (su->out->len) {
        ssize_t n = send(su->fd, su->out->data, su->out->len, MSG_NOSIGNAL);
        if (n > 0) {
            g_byte_array_remove_range(su->out, 0, (guint)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!su->out_watch)
                su->out_watch = g_unix_fd_add(su->fd, G_IO_OUT, on_writable, su);
        } else {
            failed = n < 0 ? g_strerror(errno) : "send failed";
        }
        break;
    }
    /* After a guest close, the client goes once the guest's last bytes are out: nothing buffered, nothing
     * held back in the guest's buffers. */
    bool close_now =
        su->close_pending && su->close_gen == su->client_gen && !su->out->len && !su->guest_blocked;
    bool resume = su->guest_blocked && su->out->len <= SERIAL_UNIX_OUT_MAX / 2;
    if (resume)
        su->guest_blocked = false;
    g_mutex_unlock(&su->lock);
    if (failed) {
        disconnect(su, failed);
        return;
    }
    if (close_now) {
        disconnect(su, "the guest closed the port");
        return;
    }
    if (resume)
        serial_port_resume_guest_data(su->port);
}

static gboolean on_writable(gint fd, GIOCondition cond, gpointer data)
{
    struct serial_unix *su = data;
    su->out_watch = 0;
    drain(su);
    return G_SOURCE_REMOVE;
}

static void resume_reading(struct serial_unix *su)
{
    if (su->fd >= 0 && su->read_paused) {
        su->read_paused = false;
        su->in_watch = g_unix_fd_add(su->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, su);
    }
}

static gboolean on_idle(gpointer data)
{
    struct serial_unix *su = data;
    g_mutex_lock(&su->lock);
    su->idle = 0;
    bool room = su->room_event;
    su->room_event = false;
    g_mutex_unlock(&su->lock);
    if (room)
        resume_reading(su);
    drain(su);
    return G_SOURCE_REMOVE;
}

/* Whether the client closed its socket (both directions; a half-close still reads). */
static bool peer_closed(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR));
}

/* Whether the client closed and left nothing unread: a new client may then take its place at once, before the
 * main loop gets round to the old socket's hang-up (a tool that reconnects right after closing). */
static bool client_gone(int fd)
{
    int unread = 0;
    return peer_closed(fd) && ioctl(fd, FIONREAD, &unread) == 0 && unread == 0;
}

/* A half-closed client (see on_readable) closed the rest. */
static gboolean on_hangup(gint fd, GIOCondition cond, gpointer data)
{
    (void)fd;
    (void)cond;
    struct serial_unix *su = data;
    su->in_watch = 0;
    disconnect(su, "end of stream");
    return G_SOURCE_REMOVE;
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer data)
{
    struct serial_unix *su = data;
    size_t room = serial_port_host_room(su->port);
    if (!room) {
        /* The guest is not taking data: stop reading (the client's writes then block) until the port calls
         * host_room. */
        su->in_watch = 0;
        su->read_paused = true;
        return G_SOURCE_REMOVE;
    }
    uint8_t buf[READ_CHUNK];
    ssize_t n = recv(fd, buf, MIN(room, sizeof(buf)), 0);
    if (n > 0) {
        serial_port_host_write(su->port, buf, (size_t)n);
        return G_SOURCE_CONTINUE;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return G_SOURCE_CONTINUE;
    su->in_watch = 0;
    if (n == 0 && !peer_closed(fd)) {
        /* The client only shut down its sending side (`echo CMD | socat - UNIX-CONNECT:...`): it still reads
         * the answer. Keep the port open and the guest's bytes flowing until it closes the socket. */
        log_info("%s: the client finished sending; waiting for it to close", su->who);
        su->in_watch = g_unix_fd_add(fd, G_IO_HUP | G_IO_ERR, on_hangup, su);
        return G_SOURCE_REMOVE;
    }
    disconnect(su, n == 0 ? "end of stream" : g_strerror(errno));
    return G_SOURCE_REMOVE;
}


static void on_accept(void *opaque, int fd)
{
    struct serial_unix *su = opaque;
    if (su->fd >= 0 && client_gone(su->fd))
        disconnect(su, "end of stream");
    if (su->fd >= 0) {
        log_warn("%s: refused a second client", su->who);
        close(fd);
        return;
    }
    su->fd = fd;
    g_mutex_lock(&su->lock);
    su->connected = true;
    su->client_gen++;
    su->close_pending = false;
    g_mutex_unlock(&su->lock);
    su->in_watch = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, su);
    log_info("%s: client connected", su->who);
    serial_port_set_host_connected(su->port, true);
}

/* ---------------------------------------------------------------- the port's calls (machine lock held) */

static void be_guest_open(void *opaque, bool open)
{
    struct serial_unix *su = opaque;
    g_mutex_lock(&su->lock);
    if (!open && su->connected) {
        su->close_pending = true;
        su->close_gen = su->client_gen;
        schedule_locked(su);
    }
    g_mutex_unlock(&su->lock);
}

static size_t be_guest_data(void *opaque, const uint8_t *buf, size_t len)
{
    struct serial_unix *su = opaque;
    g_mutex_lock(&su->lock);
    size_t take = len; /* no client: the bytes are dropped (a Linux guest does not write then anyway) */
    if (su->connected) {
        take = MIN(len, SERIAL_UNIX_OUT_MAX - MIN((size_t)su->out->len, (size_t)SERIAL_UNIX_OUT_MAX));
        g_byte_array_append(su->out, buf, (guint)take);
        if (take < len)
            su->guest_blocked = true;
        schedule_locked(su);
    }
    g_mutex_unlock(&su->lock);
    return take;
}

static void be_host_room(void *opaque)
{
    struct serial_unix *su = opaque;
    g_mutex_lock(&su->lock);
    su->room_event = true;
    schedule_locked(su);
    g_mutex_unlock(&su->lock);
}

static const struct serial_port_backend_ops unix_backend_ops = {
    .guest_open = be_guest_open,
    .guest_data = be_guest_data,
    .host_room = be_host_room,
};

/* ---------------------------------------------------------------- life cycle */

struct serial_unix *serial_unix_new(struct serial_port *port, const char *path, char **error)
{
    struct serial_unix *su = g_new0(struct serial_unix, 1);
    su->port = port;
    su->fd = -1;
    su->who = g_strdup_printf("serial port %s", serial_port_name(port));
    g_mutex_init(&su->lock);
    su->out = g_byte_array_new();
    struct listen_spec ls = {.kind = LISTEN_UNIX, .path = (char *)path};
    if (!listen_start(&su->listener, su->who, &ls, on_accept, su, error)) {
        serial_unix_free(su);
        return NULL;
    }
    su->listening = true;
    serial_port_attach(port, &unix_backend_ops, su);
    return su;
}

void serial_unix_free(struct serial_unix *su)
{
    if (!su)
        return;
    serial_port_attach(su->port, NULL, NULL); /* no more calls from the device after this */
    if (su->fd >= 0) {
        if (su->in_watch)
            g_source_remove(su->in_watch);
        if (su->out_watch)
            g_source_remove(su->out_watch);
        close(su->fd);
    }
    if (su->idle)
        g_source_remove(su->idle);
    if (su->listening)
        listen_stop(&su->listener);
    g_byte_array_unref(su->out);
    g_mutex_clear(&su->lock);
    g_free(su->who);
    g_free(su);
}
