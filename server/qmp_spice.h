/* QMP for the SPICE front end, in QEMU's shapes: query-spice and the SPICE_CONNECTED, SPICE_INITIALIZED and
 * SPICE_DISCONNECTED events. (set_password and expire_password with protocol "spice" are routed by
 * qmp_vnc.c, which owns those two commands for both protocols.) Registered whether or not SPICE runs, so
 * query-spice can say it is off. */
#ifndef DESKVM_QMP_SPICE_H
#define DESKVM_QMP_SPICE_H

#include "qmp_dispatch.h"
#include "qmp_server.h"

struct spice;
struct qmp_spice;

/* s may be NULL (no --spice). Events go to every QMP client of server. */
struct qmp_spice *qmp_spice_attach(struct qmp_dispatcher *d, struct qmp_server *server, struct spice *s);
void qmp_spice_detach(struct qmp_spice *q);

#endif
