/* Stream-socket client connections on the GLib main loop: read callback, output queue, deferred free. */
#include "sock_client.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>

static gboolean on_readable(gint fd, GIOCondition cond, gpointer data)
{
    struct sock_client *c = data;
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
        c->ops->receive(c->opaque, buf, (size_t)n);
        return c->closing ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return G_SOURCE_CONTINUE;
    c->in_watch = 0;
    c->ops->closed(c->opaque, n == 0 ? "end of stream" : g_strerror(errno));
    return G_SOURCE_REMOVE;
}

static gboolean on_writable(gint fd, GIOCondition cond, gpointer data)
{
    struct sock_client *c = data;
    c->out_watch = 0;
    sock_client_drain(c);
    return G_SOURCE_REMOVE;
}

void sock_client_init(struct sock_client *c, int fd, const struct sock_client_ops *ops, void *opaque)
{
    *c = (struct sock_client){.fd = fd, .out = g_byte_array_new(), .ops = ops, .opaque = opaque};
    c->in_watch = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, c);
}

void sock_client_drain(struct sock_client *c)
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
                c->out_watch = g_unix_fd_add(c->fd, G_IO_OUT, on_writable, c);
            return;
        }
        c->ops->closed(c->opaque, n < 0 ? g_strerror(errno) : "write failed");
        return;
    }
}

void sock_client_send(struct sock_client *c, const void *data, size_t len)
{
    if (c->closing)
        return;
    g_byte_array_append(c->out, data, (guint)len);
    if (!c->out_watch)
        sock_client_drain(c);
}

bool sock_client_stop(struct sock_client *c)
{
    if (c->closing)
        return false;
    c->closing = true;
    if (c->in_watch)
        g_source_remove(c->in_watch);
    if (c->out_watch)
        g_source_remove(c->out_watch);
    c->in_watch = c->out_watch = 0;
    return true;
}

void sock_client_destroy(struct sock_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    g_byte_array_unref(c->out);
    c->out = NULL;
}

static gboolean reap(gpointer data)
{
    struct sock_client_reaper *r = data;
    r->idle = 0;
    g_ptr_array_set_size(r->closed, 0);
    return G_SOURCE_REMOVE;
}

void sock_client_reaper_init(struct sock_client_reaper *r, GDestroyNotify free_client)
{
    r->closed = g_ptr_array_new_with_free_func(free_client);
    r->idle = 0;
}

void sock_client_reaper_add(struct sock_client_reaper *r, void *client)
{
    g_ptr_array_add(r->closed, client);
    if (!r->idle)
        r->idle = g_idle_add_full(G_PRIORITY_HIGH, reap, r, NULL);
}

void sock_client_reaper_destroy(struct sock_client_reaper *r)
{
    if (r->idle)
        g_source_remove(r->idle);
    r->idle = 0;
    g_ptr_array_unref(r->closed);
    r->closed = NULL;
}
