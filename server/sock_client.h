/* A client connection on a stream socket, driven by the GLib main loop: what it reads goes to a callback, what
 * is sent is queued and written as the socket takes it. Shared by the QMP server and the GDB stub. */
#ifndef DESKVM_SOCK_CLIENT_H
#define DESKVM_SOCK_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <glib.h>

struct sock_client_ops {
    void (*receive)(void *opaque, const char *data, size_t len);
    /* End of stream or a socket error; the owner stops the client (sock_client_stop) and frees it later. */
    void (*closed)(void *opaque, const char *why);
};

struct sock_client {
    int fd;
    guint in_watch;
    guint out_watch;
    GByteArray *out; /* not written yet */
    bool closing;    /* stopped: nothing more is read or sent */
    const struct sock_client_ops *ops;
    void *opaque;
};

/* Takes over fd (non-blocking) and starts reading. */
void sock_client_init(struct sock_client *c, int fd, const struct sock_client_ops *ops, void *opaque);
/* Queues len bytes and writes what the socket takes now; nothing once the client is stopped. */
void sock_client_send(struct sock_client *c, const void *data, size_t len);
/* Writes queued output as far as the socket takes it now; the rest when it becomes writable. */
void sock_client_drain(struct sock_client *c);
/* Stops reading and writing. Returns false when it was stopped already. */
bool sock_client_stop(struct sock_client *c);
/* Closes the socket and frees the output queue. */
void sock_client_destroy(struct sock_client *c);

/* Clients are stopped from inside their own callbacks, so their owners free them from an idle, after those return. */
struct sock_client_reaper {
    GPtrArray *closed;
    guint idle;
};

void sock_client_reaper_init(struct sock_client_reaper *r, GDestroyNotify free_client);
/* Frees client (with free_client) from a high-priority idle. */
void sock_client_reaper_add(struct sock_client_reaper *r, void *client);
/* Frees what is still waiting now. */
void sock_client_reaper_destroy(struct sock_client_reaper *r);

#endif
