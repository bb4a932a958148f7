/* The GDB remote stub (--gdb): one debugger at a time on a unix or loopback TCP socket, on the main loop;
 * vCPUs are its threads. Attaching stops the VM, detaching (or disconnecting) lets it run on. */
#ifndef DESKVM_GDBSTUB_H
#define DESKVM_GDBSTUB_H

#include <stdbool.h>

#include "listen.h"
#include "vm.h"
#include "vm_machine.h"

/* Bytes of one memory read or write ('m', 'M', 'X'). */
#define GDBSTUB_MAX_MEMORY 0x10000
/* Reply bytes queued for a client that does not read them before it is dropped. */
#define GDBSTUB_MAX_PENDING_OUTPUT (1024 * 1024)

struct gdbstub;

/* Listens on spec (TCP port 0 is replaced by the bound port). NULL with *error when the socket cannot be
 * opened or the machine has no vCPUs. */
struct gdbstub *gdbstub_start(struct vm *vm, struct vm_machine *vmm, struct listen_spec *spec, char **error);
/* Closes the client (the VM goes on running as after a detach) and the listener. */
void gdbstub_free(struct gdbstub *g);

#endif
