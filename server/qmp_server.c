/* QMP socket server: listeners, clients, output queues. */
#include "qmp_server.h"
#include "json_stream.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>

struct qmp_listener {
    struct qmp_server *server;
    struct listen_spec spec;
    int fd;
    guint watch;
};

struct qmp_client {
    struct qmp_server *server;
    unsigned id;
    int fd;
    guint in_watch;
    guint out_watch;
    GByteArray *out;
    struct json_stream stream;
    struct qmp_session session;
    bool closing; /* a fatal condition was hit inside a callback; freed when it is safe */
};

struct qmp_server {
    struct qmp_dispatcher *dispatcher;
    GPtrArray *listeners; /* struct qmp_listener * */
    GPtrArray *clients;   /* struct qmp_client * */
    GPtrArray *closed;    /* closed clients waiting to be freed outside their own callbacks */
    guint reap_idle;
    unsigned next_client_id;
};

static void client_free(struct qmp_client *c);

struct qmp_server *qmp_server_new(struct qmp_dispatcher *dispatcher)
{
    struct qmp_server *s = g_new0(struct qmp_server, 1);
    s->dispatcher = dispatcher;
    s->listeners = g_ptr_array_new();
    s->clients = g_ptr_array_new();
    s->closed = g_ptr_array_new_with_free_func((GDestroyNotify)client_free);
    s->next_client_id = 1;
    return s;
}

static gboolean server_reap_closed(gpointer data)
{
    struct qmp_server *s = data;
    s->reap_idle = 0;
    g_ptr_array_set_size(s->closed, 0);
    return G_SOURCE_REMOVE;
}

static void client_close(struct qmp_client *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = true;
    log_info("qmp: client %u disconnected (%s)", c->id, why);
    if (c->in_watch)
        g_source_remove(c->in_watch);
    if (c->out_watch)
        g_source_remove(c->out_watch);
    c->in_watch = c->out_watch = 0;
    struct qmp_server *s = c->server;
    g_ptr_array_remove(s->clients, c);
    /* A client is closed from its own watch callbacks too; free it from an idle so nothing touches it after. */
    g_ptr_array_add(s->closed, c);
    if (!s->reap_idle)
        s->reap_idle = g_idle_add_full(G_PRIORITY_HIGH, server_reap_closed, s, NULL);
}

static void client_free(struct qmp_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    json_stream_destroy(&c->stream);
    g_byte_array_unref(c->out);
    g_free(c);
}

static gboolean client_on_writable(gint fd, GIOCondition cond, gpointer data);

static void client_drain(struct qmp_client *c)
{
    while (c->out->len) {
        ssize_t n = send(c->fd, c->out->data, c->out->len, MSG_NOSIGNAL);
        if (n > 0) {
            g_byte_array_remove_range(c->out, 0, (guint)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->out_watch)
                c->out_watch = g_unix_fd_add(c->fd, G_IO_OUT, client_on_writable, c);
            return;
        }
        client_close(c, n < 0 ? g_strerror(errno) : "write failed");
        return;
    }
}

static gboolean client_on_writable(gint fd, GIOCondition cond, gpointer data)
{
    struct qmp_client *c = data;
    c->out_watch = 0;
    client_drain(c);
    return G_SOURCE_REMOVE;
}

static void client_send(struct qmp_client *c, JsonNode *node)
{
    if (c->closing)
        return;
    size_t len;
    g_autofree char *line = qmp_to_line(node, &len);
    if (c->out->len + len > QMP_MAX_PENDING_OUTPUT) {
        log_warn("qmp: client %u does not read its replies (%u bytes queued); dropping it", c->id, c->out->len);
        client_close(c, "output queue full");
        return;
    }
    g_byte_array_append(c->out, (const guint8 *)line, (guint)len);
    if (!c->out_watch)
        client_drain(c);
}

static void client_on_text(void *opaque, const char *text, size_t len, const char *error)
{
    struct qmp_client *c = opaque;
    if (c->closing)
        return;
    JsonNode *resp = qmp_dispatcher_handle(c->server->dispatcher, &c->session, text, len, error);
    client_send(c, resp);
    json_node_unref(resp);
}

static gboolean client_on_readable(gint fd, GIOCondition cond, gpointer data)
{
    struct qmp_client *c = data;
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
        json_stream_feed(&c->stream, buf, (size_t)n);
        return c->closing ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return G_SOURCE_CONTINUE;
    c->in_watch = 0;
    client_close(c, n == 0 ? "end of stream" : g_strerror(errno));
    return G_SOURCE_REMOVE;
}

static gboolean listener_on_accept(gint fd, GIOCondition cond, gpointer data)
{
    struct qmp_listener *l = data;
    struct qmp_server *s = l->server;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd < 0)
        return G_SOURCE_CONTINUE;
    if (s->clients->len >= QMP_MAX_CLIENTS) {
        log_warn("qmp: refusing a connection: already %d clients", QMP_MAX_CLIENTS);
        close(cfd);
        return G_SOURCE_CONTINUE;
    }
    struct qmp_client *c = g_new0(struct qmp_client, 1);
    c->server = s;
    c->id = s->next_client_id++;
    c->fd = cfd;
    c->out = g_byte_array_new();
    json_stream_init(&c->stream, QMP_MAX_MESSAGE, QMP_MAX_DEPTH, client_on_text, c);
    g_ptr_array_add(s->clients, c);
    c->in_watch = g_unix_fd_add(cfd, G_IO_IN | G_IO_HUP | G_IO_ERR, client_on_readable, c);
    g_autofree char *where = listen_spec_to_string(&l->spec);
    log_info("qmp: client %u connected on %s", c->id, where);
    JsonNode *greeting = qmp_greeting_new();
    client_send(c, greeting);
    json_node_unref(greeting);
    return G_SOURCE_CONTINUE;
}

bool qmp_server_listen(struct qmp_server *s, struct listen_spec *spec, char **error)
{
    int fd = listen_socket_open(spec, error);
    if (fd < 0)
        return false;
    struct qmp_listener *l = g_new0(struct qmp_listener, 1);
    l->server = s;
    l->fd = fd;
    l->spec.kind = spec->kind;
    l->spec.path = g_strdup(spec->path);
    l->spec.host = g_strdup(spec->host);
    l->spec.port = spec->port;
    l->watch = g_unix_fd_add(fd, G_IO_IN, listener_on_accept, l);
    g_ptr_array_add(s->listeners, l);
    g_autofree char *where = listen_spec_to_string(&l->spec);
    log_info("qmp: listening on %s", where);
    return true;
}

void qmp_server_emit_event(struct qmp_server *s, const char *name, JsonObject *data)
{
    JsonNode *ev = qmp_event_new(name, data);
    /* Copy: sending can close a client, which removes it from the array. */
    g_autoptr(GPtrArray) clients = g_ptr_array_copy(s->clients, NULL, NULL);
    for (guint i = 0; i < clients->len; i++) {
        struct qmp_client *c = clients->pdata[i];
        if (c->session.negotiated)
            client_send(c, ev);
    }
    json_node_unref(ev);
}

void qmp_server_flush(struct qmp_server *s, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    for (;;) {
        g_autoptr(GPtrArray) pending = g_ptr_array_new();
        for (guint i = 0; i < s->clients->len; i++) {
            struct qmp_client *c = s->clients->pdata[i];
            if (c->out->len)
                g_ptr_array_add(pending, c);
        }
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        if (!pending->len || left <= 0)
            return;
        struct pollfd *pfds = g_new0(struct pollfd, pending->len);
        for (guint i = 0; i < pending->len; i++) {
            pfds[i].fd = ((struct qmp_client *)pending->pdata[i])->fd;
            pfds[i].events = POLLOUT;
        }
        int r = poll(pfds, pending->len, (int)left);
        for (guint i = 0; r > 0 && i < pending->len; i++) {
            struct qmp_client *c = pending->pdata[i];
            if (pfds[i].revents & (POLLERR | POLLHUP | POLLNVAL))
                g_byte_array_set_size(c->out, 0);
            else if (pfds[i].revents & POLLOUT)
                client_drain(c);
        }
        g_free(pfds);
        if (r <= 0)
            return;
    }
}

unsigned qmp_server_client_count(struct qmp_server *s)
{
    return s->clients->len;
}

void qmp_server_free(struct qmp_server *s)
{
    if (!s)
        return;
    while (s->clients->len) {
        struct qmp_client *c = s->clients->pdata[0];
        if (c->in_watch)
            g_source_remove(c->in_watch);
        if (c->out_watch)
            g_source_remove(c->out_watch);
        g_ptr_array_remove_index(s->clients, 0);
        client_free(c);
    }
    for (guint i = 0; i < s->listeners->len; i++) {
        struct qmp_listener *l = s->listeners->pdata[i];
        g_source_remove(l->watch);
        close(l->fd);
        if (l->spec.kind == LISTEN_UNIX)
            unlink(l->spec.path);
        listen_spec_clear(&l->spec);
        g_free(l);
    }
    if (s->reap_idle)
        g_source_remove(s->reap_idle);
    g_ptr_array_unref(s->closed);
    g_ptr_array_unref(s->listeners);
    g_ptr_array_unref(s->clients);
    g_free(s);
}
