/* Listening-socket addresses for deskvm's control and character-device sockets: "unix:PATH" or
 * "tcp:HOST:PORT", where HOST must be a loopback address unless the caller allows otherwise. */
#ifndef DESKVM_LISTEN_H
#define DESKVM_LISTEN_H

#include <stdbool.h>
#include <glib.h>

enum listen_kind {
    LISTEN_UNIX,
    LISTEN_TCP,
};

struct listen_spec {
    enum listen_kind kind;
    char *path; /* LISTEN_UNIX: absolute path */
    char *host; /* LISTEN_TCP: numeric address or "localhost" */
    unsigned port;
};

/* Parses SPEC. QEMU-style trailing flags ",server", ",server=on", ",nowait", ",wait=off" are accepted and mean what
 * deskvm always does; anything else after a comma is an error. On error returns false with a message in *error
 * (caller frees) that does not repeat the option name. */
bool listen_spec_parse(const char *spec, struct listen_spec *out, char **error);
void listen_spec_clear(struct listen_spec *spec);
/* "unix:/path" or "tcp:127.0.0.1:4444" (with the bound port once listening). */
char *listen_spec_to_string(const struct listen_spec *spec);

/* Opens a non-blocking, close-on-exec listening socket. For unix sockets a stale socket file (nobody accepting) is
 * replaced; a live one is an error. For TCP port 0 the kernel picks a port and spec->port is updated.
 * Returns the fd or -1 with a message in *error. */
int listen_socket_open(struct listen_spec *spec, char **error);

/* Whether a TCP host string names a loopback address. */
bool listen_host_is_loopback(const char *host);

/* A listening socket on the GLib main loop; each accepted connection (non-blocking, close-on-exec) goes to
 * on_accept, which owns its fd from then on. */
struct listener {
    struct listen_spec spec; /* a copy of the address, with the bound port */
    int fd;
    guint watch;
    void (*on_accept)(void *opaque, int fd);
    void *opaque;
};

/* Opens SPEC as listen_socket_open does (spec->port is updated too), watches it and logs "WHO: listening on
 * ADDRESS". Returns false with a message in *error. */
bool listen_start(struct listener *l, const char *who, struct listen_spec *spec,
                  void (*on_accept)(void *opaque, int fd), void *opaque, char **error);
/* Stops listening, closes the socket and removes a unix socket's file. */
void listen_stop(struct listener *l);

#endif
