/* The QMP input commands: send-key, input-send-event and query-mice, over the machine's input interface. */
#ifndef DESKVM_QMP_INPUT_H
#define DESKVM_QMP_INPUT_H

#include "qmp_dispatch.h"

struct input;
struct qmp_input;

/* Registers the commands in d; in may be NULL (no machine), then they fail with a GenericError. */
struct qmp_input *qmp_input_attach(struct qmp_dispatcher *d, struct input *in);
void qmp_input_detach(struct qmp_input *q);

#endif
