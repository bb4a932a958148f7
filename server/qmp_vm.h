/* The QMP commands that act on the VM lifecycle (query-status, stop, cont, system_reset, system_powerdown, quit,
 * query-version, query-name, query-commands) and the bridge that turns VM events into QMP events. */
#ifndef DESKVM_QMP_VM_H
#define DESKVM_QMP_VM_H

#include "qmp_dispatch.h"
#include "qmp_server.h"
#include "vm.h"

struct qmp_vm;

/* Registers the commands in d and, if server is not NULL, forwards VM events to its clients. */
struct qmp_vm *qmp_vm_attach(struct vm *vm, struct qmp_dispatcher *d, struct qmp_server *server);
void qmp_vm_detach(struct qmp_vm *q);

#endif
