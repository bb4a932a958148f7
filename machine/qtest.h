/* The test accelerator: a machine with no CPU, driven over a unix socket by a test, as QEMU's qtest. The test reads
 * and writes guest memory, does port and MMIO accesses, advances the virtual clock and watches interrupts. The
 * line protocol is documented in docs/qtest.md; tests/lib/qtest.py is a client. */
#ifndef DESKVM_QTEST_H
#define DESKVM_QTEST_H

#include <stdbool.h>

#include "machine.h"

struct qtest;
struct listen_spec;

/* Listens on spec (a unix socket) and serves one client at a time on the GLib main loop. Interrupts the machine
 * raises are passed on to the irqchip that was installed before (so the userspace controllers still see them) and
 * reported to the client once it asks with "irq_intercept". */
struct qtest *qtest_start(struct machine *m, struct listen_spec *spec, char **error);
void qtest_stop(struct qtest *q);

/* Handles one command line (without the newline) and returns the reply line (without the newline); for tests of
 * the protocol itself. Asynchronous lines (IRQ/MSI) produced meanwhile are appended to *events. */
char *qtest_handle_line(struct qtest *q, const char *line, GString *events);

#endif
