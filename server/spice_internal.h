/* Inside the SPICE front end: the server state and the parts in their own files (simple display, inputs,
 * vdagent port). Only server/spice*.c include this. */
#ifndef DESKVM_SPICE_INTERNAL_H
#define DESKVM_SPICE_INTERNAL_H

#include <spice.h>

#include "display.h"
#include "input.h"
#include "serial_port.h"
#include "spice_frontend.h"

/* ---- spice_display.c: a QXL instance fed from a gpu/display.h display (QEMU's "simple display") */
struct spice_display;
/* Adds QXL instance `id` for d to the server and subscribes to d. Main thread, after spice_server_init. */
struct spice_display *spice_display_new(SpiceServer *server, struct display *d, int id, char **error);
void spice_display_free(struct spice_display *sd);

/* ---- spice_input.c: keyboard (set-1 scancodes), mouse (server mode) and tablet (client mode) interfaces
 * feeding machine/input.h, and the guest's keyboard LEDs back to the client. */
struct spice_input;
struct spice_input *spice_input_new(SpiceServer *server, struct input *in);
void spice_input_free(struct spice_input *si);
/* The last client went away: release every key and button it left pressed. */
void spice_input_client_gone(struct spice_input *si);

/* ---- spice_agent.c: the guest's com.redhat.spice.0 virtio-serial port as spice-server's "vdagent" char
 * device, registered while the guest has the port open. */
struct spice_agent;
struct spice_agent *spice_agent_new(SpiceServer *server, struct serial_port *port);
void spice_agent_free(struct spice_agent *a);
/* Whether the guest agent is attached now (for query-spice and tests). */
bool spice_agent_connected(const struct spice_agent *a);

#endif
