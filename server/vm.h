/* The VM's run state (prelaunch, running, paused, shutdown) and the lifecycle requests that QMP, signals and the
 * guest make: stop, cont, reset, powerdown, shutdown. The machine plugs in through vm_ops; observers (QMP events)
 * subscribe with vm_add_listener. Main-thread only. */
#ifndef DESKVM_VM_H
#define DESKVM_VM_H

#include <stdbool.h>

#include <glib.h>

enum vm_runstate {
    VM_PRELAUNCH, /* created, never run (--paused); 'cont' starts it */
    VM_RUNNING,
    VM_PAUSED,
    VM_SHUTDOWN, /* on its way out */
};

enum vm_event_kind {
    VM_EVENT_STOP,
    VM_EVENT_RESUME,
    VM_EVENT_RESET,
    VM_EVENT_POWERDOWN,
    VM_EVENT_SHUTDOWN,
};

/* Why a reset or shutdown happened; the names are QEMU's ShutdownCause values. */
enum vm_cause {
    VM_CAUSE_HOST_ERROR,
    VM_CAUSE_HOST_QMP_QUIT,
    VM_CAUSE_HOST_QMP_SYSTEM_RESET,
    VM_CAUSE_HOST_SIGNAL,
    VM_CAUSE_GUEST_SHUTDOWN,
    VM_CAUSE_GUEST_RESET,
    VM_CAUSE_GUEST_PANIC,
};

struct vm_event {
    enum vm_event_kind kind;
    enum vm_cause cause; /* RESET and SHUTDOWN */
};

/* What the machine does for each transition. Any hook may be NULL while there is no machine attached. */
struct vm_ops {
    void (*pause)(void *opaque);
    void (*resume)(void *opaque);
    void (*reset)(void *opaque);
    void (*powerdown)(void *opaque); /* press the ACPI power button */
};

typedef void (*vm_listener_fn)(void *opaque, const struct vm_event *ev);
/* Called once when the VM must end (quit, signal, guest poweroff), after the SHUTDOWN event was delivered. */
typedef void (*vm_exit_fn)(void *opaque);

#define VM_ERROR (vm_error_quark())
GQuark vm_error_quark(void);

struct vm;

struct vm *vm_new(const char *name, bool start_paused);
void vm_free(struct vm *vm);
void vm_set_ops(struct vm *vm, const struct vm_ops *ops, void *opaque);
void vm_set_exit_handler(struct vm *vm, vm_exit_fn fn, void *opaque);
/* Returns a handle for vm_remove_listener. */
unsigned vm_add_listener(struct vm *vm, vm_listener_fn fn, void *opaque);
void vm_remove_listener(struct vm *vm, unsigned handle);

const char *vm_get_name(const struct vm *vm); /* NULL if unnamed */
enum vm_runstate vm_get_state(const struct vm *vm);
const char *vm_runstate_name(enum vm_runstate state); /* QEMU's RunState names */
const char *vm_cause_name(enum vm_cause cause);
bool vm_cause_is_guest(enum vm_cause cause);

/* Pauses a running VM (STOP event). A no-op in any other state, as in QEMU. */
void vm_stop(struct vm *vm);
/* Starts or resumes the VM (RESUME event). Already running: a no-op. Fails while shutting down. */
bool vm_cont(struct vm *vm, GError **error);
void vm_reset(struct vm *vm, enum vm_cause cause);
void vm_powerdown(struct vm *vm);
/* Emits SHUTDOWN once, moves to VM_SHUTDOWN and calls the exit handler. Later calls are ignored. */
void vm_shutdown(struct vm *vm, enum vm_cause cause);

#endif
