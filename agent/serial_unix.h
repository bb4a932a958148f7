/* The unix-socket port backend: a virtio-serial port whose host end is a listening unix socket, one client at
 * a time, bytes passed through unchanged in both directions. The client connecting or leaving is what the
 * guest sees as the host opening or closing the port; the guest closing the port disconnects the client
 * (after what the guest wrote has been sent), so the client sees end-of-file. All socket I/O is on the GLib
 * main loop. */
#ifndef DESKVM_SERIAL_UNIX_H
#define DESKVM_SERIAL_UNIX_H

#include <stdbool.h>

#include "serial_port.h"

/* Guest bytes buffered for a slow client before the guest is made to wait. */
#define SERIAL_UNIX_OUT_MAX (256 * 1024)

/* --serial-port name=NAME,path=unix:PATH and --guest-agent unix:PATH. */
struct serial_port_spec {
    char *name;
    char *path;       /* absolute socket path */
    bool guest_agent; /* from --guest-agent (for messages) */
};

#define GUEST_AGENT_PORT_NAME "org.qemu.guest_agent.0"

bool serial_port_spec_parse(const char *s, struct serial_port_spec *out, char **error);
/* unix:PATH for the guest agent's port. */
bool serial_port_spec_parse_guest_agent(const char *s, struct serial_port_spec *out, char **error);
void serial_port_spec_clear(struct serial_port_spec *spec);

struct serial_unix;

/* Listens on path and binds to port. NULL with *error if the socket cannot be opened. */
struct serial_unix *serial_unix_new(struct serial_port *port, const char *path, char **error);
/* Detaches from the port, disconnects the client, stops listening (and removes the socket file). */
void serial_unix_free(struct serial_unix *su);

#endif
