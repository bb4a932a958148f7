/* Runs the machine behind the VM object: picks the CPU backend, builds the PC, loads what boots (a Linux kernel or
 * a firmware ROM), and implements the VM's pause/resume/reset/powerdown on the vCPUs and devices. Guest-driven
 * events (reset, power-off, CPU errors) come back to the VM object on the main loop. */
#ifndef DESKVM_VM_MACHINE_H
#define DESKVM_VM_MACHINE_H

#include "chardev.h"
#include "options.h"
#include "vm.h"

struct vm_machine;

/* Creates the machine for opts and attaches it to vm (vm_set_ops). Returns NULL with *error set when the options
 * cannot be honoured (no usable accelerator, a kernel that does not load, ...). */
struct vm_machine *vm_machine_create(const struct options *opts, struct vm *vm, struct chardev *serial,
                                     char **error);
/* Stops the vCPUs and frees everything. */
void vm_machine_destroy(struct vm_machine *vmm);
/* The vCPUs (and through them the machine), NULL without a CPU (qtest). For the gdbstub. */
struct accel *vm_machine_accel(struct vm_machine *vmm);
/* fn runs on the main loop when a vCPU stopped with VCPU_EXIT_DEBUG (vcpu->debug_exit is set, the others are
 * being kicked). Without one such a vCPU simply runs on. */
void vm_machine_set_debug_handler(struct vm_machine *vmm, void (*fn)(void *opaque), void *opaque);
/* The machine's input router (machine/input.h), for the front ends and QMP; NULL before the machine exists. */
struct input *vm_machine_input(struct vm_machine *vmm);
/* The machine (devices, displays), NULL if vmm is NULL or has none. */
struct machine *vm_machine_get(struct vm_machine *vmm);
/* The virtio-serial port called name (e.g. the SPICE agent's), NULL if there is none. */
struct serial_port *vm_machine_serial_port(struct vm_machine *vmm, const char *name);
/* The backend in use ("kvm", ...). */
const char *vm_machine_accel_name(const struct vm_machine *vmm);

#endif
