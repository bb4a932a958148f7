/* QMP socket server: listeners, clients, output queues. */
#include "qmp_server.h"
#include "json_stream.h"
#include "log.h"
#include "sock_client.h"

#include <poll.h>
#include <unistd.h>

struct qmp_listener {
    struct qmp_server *server;
    struct listener listener;
};

struct qmp_client {
    struct qmp_server *server;
    unsigned id;
    struct sock_client conn;
    struct json_stream stream;
    struct qmp_session session;
};

struct qmp_server {
    struct qmp_dispatcher *dispatcher;
    GPtrArray *listeners; /* struct qmp_listener * */
    GPtrArray *clients;   /* struct qmp_client * */
    struct sock_client_reaper reaper;
    unsigned next_client_id;
};

static void client_free(gpointer p);

struct qmp_server *qmp_server_new(struct qmp_dispatcher *dispatcher)
{
    struct qmp_server *s = g_new0(struct qmp_server, 1);
    s->dispatcher = dispatcher;
    s->listeners = g_ptr_array_new();
    s->clients = g_ptr_array_new();
    sock_client_reaper_init(&s->reaper, client_free);
    s->next_client_id = 1;
    return s;
}

static void client_close(void *opaque, const char *why)
{
    struct qmp_client *c = opaque;
    if (!sock_client_stop(&c->conn))
        return;
    log_info("qmp: client %u disconnected (%s)", c->id, why);
    g_ptr_array_remove(c->server->clients, c);
    sock_client_reaper_add(&c->server->reaper, c);
}

static void client_free(gpointer p)
{
    struct qmp_client *c = p;
    sock_client_destroy(&c->conn);
    json_stream_destroy(&c->stream);
    g_free(c);
}

static void client_send(struct qmp_client *c, JsonNode *node)
{
    if (c->conn.closing)
        return;
    size_t len;
    g_autofree char *line = qmp_to_line(node, &len);
    if (c->conn.out->len + len > QMP_MAX_PENDING_OUTPUT) {
        log_warn("qmp: client %u does not read its replies (%u bytes queued); dropping it", c->id,
                 c->conn.out->len);
        client_close(c, "output queue full");
        return;
    }
    sock_client_send(&c->conn, line, len);
}

static void client_on_text(void *opaque, const char *text, size_t len, const char *error)
{
    struct qmp_client *c = opaque;
    if (c->conn.closing)
        return;
    JsonNode *resp = qmp_dispatcher_handle(c->server->dispatcher, &c->session, text, len, error);
    client_send(c, resp);
    json_node_unref(resp);
}

static void client_receive(void *opaque, const char *data, size_t len)
{
    struct qmp_client *c = opaque;
    json_stream_feed(&c->stream, data, len);
}

static const struct sock_client_ops client_ops = {
    .receive = client_receive,
    .closed = client_close,
};

static void listener_on_accept(void *opaque, int cfd)
{
    struct qmp_listener *l = opaque;
    struct qmp_server *s = l->server;
    if (s->clients->len >= QMP_MAX_CLIENTS) {
        log_warn("qmp: refusing a connection: already %d clients", QMP_MAX_CLIENTS);
        close(cfd);
        return;
    }
    struct qmp_client *c = g_new0(struct qmp_client, 1);
    c->server = s;
    c->id = s->next_client_id++;
    json_stream_init(&c->stream, QMP_MAX_MESSAGE, QMP_MAX_DEPTH, client_on_text, c);
    sock_client_init(&c->conn, cfd, &client_ops, c);
    g_ptr_array_add(s->clients, c);
    g_autofree char *where = listen_spec_to_string(&l->listener.spec);
    log_info("qmp: client %u connected on %s", c->id, where);
    JsonNode *greeting = qmp_greeting_new();
    client_send(c, greeting);
    json_node_unref(greeting);
}

bool qmp_server_listen(struct qmp_server *s, struct listen_spec *spec, char **error)
{
    struct qmp_listener *l = g_new0(struct qmp_listener, 1);
    l->server = s;
    if (!listen_start(&l->listener, "qmp", spec, listener_on_accept, l, error)) {
        g_free(l);
        return false;
    }
    g_ptr_array_add(s->listeners, l);
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
            if (c->conn.out->len)
                g_ptr_array_add(pending, c);
        }
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        if (!pending->len || left <= 0)
            return;
        struct pollfd *pfds = g_new0(struct pollfd, pending->len);
        for (guint i = 0; i < pending->len; i++) {
            pfds[i].fd = ((struct qmp_client *)pending->pdata[i])->conn.fd;
            pfds[i].events = POLLOUT;
        }
        int r = poll(pfds, pending->len, (int)left);
        for (guint i = 0; r > 0 && i < pending->len; i++) {
            struct qmp_client *c = pending->pdata[i];
            if (pfds[i].revents & (POLLERR | POLLHUP | POLLNVAL))
                g_byte_array_set_size(c->conn.out, 0);
            else if (pfds[i].revents & POLLOUT)
                sock_client_drain(&c->conn);
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
        sock_client_stop(&c->conn);
        g_ptr_array_remove_index(s->clients, 0);
        client_free(c);
    }
    for (guint i = 0; i < s->listeners->len; i++) {
        struct qmp_listener *l = s->listeners->pdata[i];
        listen_stop(&l->listener);
        g_free(l);
    }
    sock_client_reaper_destroy(&s->reaper);
    g_ptr_array_unref(s->listeners);
    g_ptr_array_unref(s->clients);
    g_free(s);
}
