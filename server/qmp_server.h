/* QMP sockets: listens on unix/loopback-TCP addresses, serves any number of clients (up to a cap) on the GLib main
 * loop, frames their input into JSON texts, hands them to the dispatcher and broadcasts events to every client that
 * has negotiated capabilities. */
#ifndef DESKVM_QMP_SERVER_H
#define DESKVM_QMP_SERVER_H

#include <stdbool.h>

#include "listen.h"
#include "qmp_dispatch.h"

/* Limits protecting the server from a misbehaving client. */
#define QMP_MAX_CLIENTS 16
#define QMP_MAX_MESSAGE (1024 * 1024) /* bytes of one JSON text */
#define QMP_MAX_DEPTH 64
#define QMP_MAX_PENDING_OUTPUT (4 * 1024 * 1024) /* queued replies+events before the client is dropped */

struct qmp_server;

struct qmp_server *qmp_server_new(struct qmp_dispatcher *dispatcher);
/* Starts listening on SPEC (TCP port 0 is replaced by the bound port). Returns false with *error set. */
bool qmp_server_listen(struct qmp_server *s, struct listen_spec *spec, char **error);
/* Sends an event to every negotiated client. data is consumed (may be NULL). */
void qmp_server_emit_event(struct qmp_server *s, const char *name, JsonObject *data);
/* Writes out queued output to every client, waiting at most timeout_ms in total. */
void qmp_server_flush(struct qmp_server *s, int timeout_ms);
unsigned qmp_server_client_count(struct qmp_server *s);
/* Closes clients and listeners; unix socket files are removed. */
void qmp_server_free(struct qmp_server *s);

#endif
