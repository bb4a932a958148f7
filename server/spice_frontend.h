/* The SPICE front end: libspice-server on deskvm's main loop, showing the machine's display (a simple display
 * fed from gpu/display.h, or a QXL device that speaks to spice-server itself), taking keyboard, mouse and
 * tablet input into machine/input.h, and binding the guest's vdagent port (com.redhat.spice.0) to
 * spice-server's agent channel. Main thread only: spice-server's API is not thread-safe. */
#ifndef DESKVM_SPICE_FRONTEND_H
#define DESKVM_SPICE_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "spice_spec.h"

struct machine;
struct input;
struct vm;
struct serial_port;
struct spice;

/* The port name spice-vdagent opens in the guest. */
#define SPICE_AGENT_PORT_NAME "com.redhat.spice.0"

/* What the front end serves. Any pointer may be NULL: no machine/display (clients see no display channel
 * surface), no input, no agent port. */
struct spice_deps {
    struct machine *m;
    struct input *in;
    struct vm *vm; /* spice-server's vm_start/vm_stop follow its run state */
    struct serial_port *agent_port;
    const char *name; /* the VM's name (NULL: unnamed) */
};

struct spice *spice_start(const struct spice_spec *spec, const struct spice_deps *deps, char **error);
/* Disconnects clients and frees everything. NULL is fine. */
void spice_stop(struct spice *s);

/* QMP set_password: connected is "keep", "fail" (refuse while a client is connected) or "disconnect". */
bool spice_set_password(struct spice *s, const char *password, const char *connected, char **error);
/* QMP expire_password: expire_at as qmp_vnc_parse_expiry gives it (-1 now, 0 never, else real-time us). */
bool spice_expire_password(struct spice *s, gint64 expire_at, char **error);

/* One connected channel, for query-spice and the SPICE_* events. */
struct spice_channel_desc {
    char host[64], port[16];
    const char *family; /* "ipv4", "ipv6", "unix" */
    int connection_id;
    int channel_type; /* SPICE_CHANNEL_MAIN (1), DISPLAY, INPUTS, ... */
    int channel_id;
    bool tls;
};

struct spice_server_desc {
    char host[64], port[16];
    const char *family;
    const char *auth; /* "spice" (ticketing) or "none" */
};

enum spice_event_kind { SPICE_EVENT_CONNECTED, SPICE_EVENT_INITIALIZED, SPICE_EVENT_DISCONNECTED };

/* Channel events as QMP reports them (SPICE_CONNECTED, SPICE_INITIALIZED, SPICE_DISCONNECTED). */
typedef void (*spice_event_fn)(void *opaque, enum spice_event_kind kind, const struct spice_server_desc *server,
                               const struct spice_channel_desc *client);
void spice_set_event_listener(struct spice *s, spice_event_fn fn, void *opaque);

struct spice_query {
    struct spice_server_desc server;
    unsigned port, tls_port; /* 0: none */
    const char *mouse_mode;  /* "client" or "server" */
    const char *compiled_version;
    bool agent_connected; /* the guest's vdagent has its port open (deskvm's addition to QEMU's reply) */
    unsigned nchannels;
    struct spice_channel_desc *channels; /* g_free */
};
void spice_query(struct spice *s, struct spice_query *out);

#endif
