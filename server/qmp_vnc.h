/* QMP commands of the VNC front end, in QEMU's shapes: query-vnc, set_password and expire_password (protocol
 * "vnc", and "spice", which goes to the SPICE front end). Registered whether or not VNC runs, so query-vnc can
 * say it is off. */
#ifndef DESKVM_QMP_VNC_H
#define DESKVM_QMP_VNC_H

#include <stdbool.h>

#include <glib.h>

#include "qmp_dispatch.h"

struct vnc;
struct spice;
struct qmp_vnc;

/* v may be NULL (no --vnc), spice too (no --spice). */
struct qmp_vnc *qmp_vnc_attach(struct qmp_dispatcher *d, struct vnc *v, struct spice *spice);
void qmp_vnc_detach(struct qmp_vnc *q);

/* expire_password's time: "now", "never", "+SECONDS" from now, or SECONDS since the epoch. *expire_at is what
 * vnc_expire_password takes (-1 now, 0 never, else real-time microseconds). False for anything else. */
bool qmp_vnc_parse_expiry(const char *time, gint64 now_us, gint64 *expire_at);

#endif
