/* VM run state machine and lifecycle events. */
#include "vm.h"
#include "log.h"

G_DEFINE_QUARK(deskvm-vm-error-quark, vm_error)

struct vm_listener {
    unsigned handle;
    vm_listener_fn fn;
    void *opaque;
};

struct vm {
    char *name;
    enum vm_runstate state;
    const struct vm_ops *ops;
    void *ops_opaque;
    GArray *listeners; /* struct vm_listener */
    unsigned next_handle;
    vm_exit_fn exit_fn;
    void *exit_opaque;
};

static const char *const runstate_names[] = {
    [VM_PRELAUNCH] = "prelaunch",
    [VM_RUNNING] = "running",
    [VM_PAUSED] = "paused",
    [VM_SHUTDOWN] = "shutdown",
};

static const char *const cause_names[] = {
    [VM_CAUSE_HOST_ERROR] = "host-error",
    [VM_CAUSE_HOST_QMP_QUIT] = "host-qmp-quit",
    [VM_CAUSE_HOST_QMP_SYSTEM_RESET] = "host-qmp-system-reset",
    [VM_CAUSE_HOST_SIGNAL] = "host-signal",
    [VM_CAUSE_GUEST_SHUTDOWN] = "guest-shutdown",
    [VM_CAUSE_GUEST_RESET] = "guest-reset",
    [VM_CAUSE_GUEST_PANIC] = "guest-panic",
};

struct vm *vm_new(const char *name, bool start_paused)
{
    struct vm *vm = g_new0(struct vm, 1);
    vm->name = g_strdup(name);
    vm->state = start_paused ? VM_PRELAUNCH : VM_RUNNING;
    vm->listeners = g_array_new(FALSE, FALSE, sizeof(struct vm_listener));
    vm->next_handle = 1;
    return vm;
}

void vm_free(struct vm *vm)
{
    if (!vm)
        return;
    g_array_unref(vm->listeners);
    g_free(vm->name);
    g_free(vm);
}

void vm_set_ops(struct vm *vm, const struct vm_ops *ops, void *opaque)
{
    vm->ops = ops;
    vm->ops_opaque = opaque;
}

void vm_set_exit_handler(struct vm *vm, vm_exit_fn fn, void *opaque)
{
    vm->exit_fn = fn;
    vm->exit_opaque = opaque;
}

unsigned vm_add_listener(struct vm *vm, vm_listener_fn fn, void *opaque)
{
    struct vm_listener l = {.handle = vm->next_handle++, .fn = fn, .opaque = opaque};
    g_array_append_val(vm->listeners, l);
    return l.handle;
}

void vm_remove_listener(struct vm *vm, unsigned handle)
{
    for (guint i = 0; i < vm->listeners->len; i++) {
        if (g_array_index(vm->listeners, struct vm_listener, i).handle == handle) {
            g_array_remove_index(vm->listeners, i);
            return;
        }
    }
}

const char *vm_get_name(const struct vm *vm)
{
    return vm->name;
}

enum vm_runstate vm_get_state(const struct vm *vm)
{
    return vm->state;
}

const char *vm_runstate_name(enum vm_runstate state)
{
    if ((unsigned)state < G_N_ELEMENTS(runstate_names))
        return runstate_names[state];
    return "internal-error";
}

const char *vm_cause_name(enum vm_cause cause)
{
    if ((unsigned)cause < G_N_ELEMENTS(cause_names))
        return cause_names[cause];
    return "none";
}

bool vm_cause_is_guest(enum vm_cause cause)
{
    return cause == VM_CAUSE_GUEST_SHUTDOWN || cause == VM_CAUSE_GUEST_RESET || cause == VM_CAUSE_GUEST_PANIC;
}

static void vm_notify(struct vm *vm, enum vm_event_kind kind, enum vm_cause cause)
{
    struct vm_event ev = {.kind = kind, .cause = cause};
    /* Copy: a listener may remove itself. */
    g_autoptr(GArray) snapshot = g_array_copy(vm->listeners);
    for (guint i = 0; i < snapshot->len; i++) {
        struct vm_listener *l = &g_array_index(snapshot, struct vm_listener, i);
        l->fn(l->opaque, &ev);
    }
}

void vm_stop(struct vm *vm)
{
    if (vm->state != VM_RUNNING)
        return;
    if (vm->ops && vm->ops->pause)
        vm->ops->pause(vm->ops_opaque);
    vm->state = VM_PAUSED;
    log_info("vm: paused");
    vm_notify(vm, VM_EVENT_STOP, 0);
}

bool vm_cont(struct vm *vm, GError **error)
{
    switch (vm->state) {
    case VM_RUNNING:
        return true;
    case VM_SHUTDOWN:
        g_set_error(error, VM_ERROR, 0, "The VM is shutting down");
        return false;
    case VM_PRELAUNCH:
    case VM_PAUSED:
        break;
    }
    if (vm->ops && vm->ops->resume)
        vm->ops->resume(vm->ops_opaque);
    vm->state = VM_RUNNING;
    log_info("vm: running");
    vm_notify(vm, VM_EVENT_RESUME, 0);
    return true;
}

void vm_reset(struct vm *vm, enum vm_cause cause)
{
    if (vm->state == VM_SHUTDOWN)
        return;
    if (vm->ops && vm->ops->reset)
        vm->ops->reset(vm->ops_opaque);
    log_info("vm: reset (%s)", vm_cause_name(cause));
    vm_notify(vm, VM_EVENT_RESET, cause);
}

void vm_powerdown(struct vm *vm)
{
    if (vm->state == VM_SHUTDOWN)
        return;
    log_info("vm: power button pressed");
    vm_notify(vm, VM_EVENT_POWERDOWN, 0);
    if (vm->ops && vm->ops->powerdown)
        vm->ops->powerdown(vm->ops_opaque);
}

void vm_shutdown(struct vm *vm, enum vm_cause cause)
{
    if (vm->state == VM_SHUTDOWN)
        return;
    if (vm->state == VM_RUNNING && vm->ops && vm->ops->pause)
        vm->ops->pause(vm->ops_opaque);
    vm->state = VM_SHUTDOWN;
    log_info("vm: shutdown (%s)", vm_cause_name(cause));
    vm_notify(vm, VM_EVENT_SHUTDOWN, cause);
    if (vm->exit_fn)
        vm->exit_fn(vm->exit_opaque);
}
