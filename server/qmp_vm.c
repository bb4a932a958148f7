/* VM lifecycle QMP commands and events. */
#include "qmp_vm.h"

#include "config.h"

struct qmp_vm {
    struct vm *vm;
    struct qmp_dispatcher *dispatcher;
    struct qmp_server *server;
    unsigned listener;
};

static JsonNode *object_node(JsonObject *o)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

static JsonNode *cmd_query_version(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    JsonObject *ver = json_object_new();
    json_object_set_int_member(ver, "micro", DESKVM_VERSION_MICRO);
    json_object_set_int_member(ver, "minor", DESKVM_VERSION_MINOR);
    json_object_set_int_member(ver, "major", DESKVM_VERSION_MAJOR);
    JsonObject *ret = json_object_new();
    json_object_set_object_member(ret, "qemu", ver);
    json_object_set_string_member(ret, "package", "deskvm-" PACKAGE_VERSION);
    return object_node(ret);
}

static JsonNode *cmd_query_status(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_vm *q = opaque;
    enum vm_runstate st = vm_get_state(q->vm);
    JsonObject *ret = json_object_new();
    json_object_set_string_member(ret, "status", vm_runstate_name(st));
    json_object_set_boolean_member(ret, "singlestep", FALSE);
    json_object_set_boolean_member(ret, "running", st == VM_RUNNING);
    return object_node(ret);
}

static JsonNode *cmd_query_commands(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_vm *q = opaque;
    GPtrArray *names = qmp_dispatcher_command_names(q->dispatcher);
    JsonArray *arr = json_array_new();
    for (guint i = 0; i < names->len; i++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", names->pdata[i]);
        json_array_add_object_element(arr, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, arr);
    return n;
}

static JsonNode *cmd_query_name(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_vm *q = opaque;
    JsonObject *ret = json_object_new();
    if (vm_get_name(q->vm))
        json_object_set_string_member(ret, "name", vm_get_name(q->vm));
    return object_node(ret);
}

static JsonNode *cmd_stop(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_vm *q = opaque;
    vm_stop(q->vm);
    return NULL;
}

static JsonNode *cmd_cont(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_vm *q = opaque;
    GError *err = NULL;
    if (!vm_cont(q->vm, &err)) {
        g_set_error_literal(error, QMP_ERROR, QMP_ERROR_GENERIC, err->message);
        g_error_free(err);
    }
    return NULL;
}

static JsonNode *cmd_system_reset(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_vm *q = opaque;
    vm_reset(q->vm, VM_CAUSE_HOST_QMP_SYSTEM_RESET);
    return NULL;
}

static JsonNode *cmd_system_powerdown(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_vm *q = opaque;
    vm_powerdown(q->vm);
    return NULL;
}

static gboolean quit_later(gpointer data)
{
    vm_shutdown(data, VM_CAUSE_HOST_QMP_QUIT);
    return G_SOURCE_REMOVE;
}

static JsonNode *cmd_quit(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_vm *q = opaque;
    /* Reply first, then the SHUTDOWN event, as QEMU does: the shutdown runs after this reply is queued. */
    g_idle_add(quit_later, q->vm);
    return NULL;
}

static const struct qmp_command_def vm_commands[] = {
    {"query-version", cmd_query_version, NULL},
    {"query-status", cmd_query_status, NULL},
    {"query-commands", cmd_query_commands, NULL},
    {"query-name", cmd_query_name, NULL},
    {"stop", cmd_stop, NULL},
    {"cont", cmd_cont, NULL},
    {"system_reset", cmd_system_reset, NULL},
    {"system_powerdown", cmd_system_powerdown, NULL},
    {"quit", cmd_quit, NULL},
};

static void on_vm_event(void *opaque, const struct vm_event *ev)
{
    struct qmp_vm *q = opaque;
    JsonObject *data = NULL;
    const char *name = NULL;
    switch (ev->kind) {
    case VM_EVENT_STOP:
        name = "STOP";
        break;
    case VM_EVENT_RESUME:
        name = "RESUME";
        break;
    case VM_EVENT_POWERDOWN:
        name = "POWERDOWN";
        break;
    case VM_EVENT_RESET:
    case VM_EVENT_SHUTDOWN:
        name = ev->kind == VM_EVENT_RESET ? "RESET" : "SHUTDOWN";
        data = json_object_new();
        json_object_set_boolean_member(data, "guest", vm_cause_is_guest(ev->cause));
        json_object_set_string_member(data, "reason", vm_cause_name(ev->cause));
        break;
    }
    qmp_server_emit_event(q->server, name, data);
}

struct qmp_vm *qmp_vm_attach(struct vm *vm, struct qmp_dispatcher *d, struct qmp_server *server)
{
    struct qmp_vm *q = g_new0(struct qmp_vm, 1);
    q->vm = vm;
    q->dispatcher = d;
    q->server = server;
    qmp_dispatcher_register_all(d, vm_commands, G_N_ELEMENTS(vm_commands), q);
    if (server)
        q->listener = vm_add_listener(vm, on_vm_event, q);
    return q;
}

void qmp_vm_detach(struct qmp_vm *q)
{
    if (!q)
        return;
    if (q->listener)
        vm_remove_listener(q->vm, q->listener);
    g_free(q);
}
