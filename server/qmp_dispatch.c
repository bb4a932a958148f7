/* QMP request handling: envelope, negotiation, argument checks, error objects. */
#include "qmp_dispatch.h"

#include <string.h>

#include "config.h"

G_DEFINE_QUARK(deskvm-qmp-error-quark, qmp_error)

struct registered_command {
    const struct qmp_command_def *def;
    void *opaque;
};

struct qmp_dispatcher {
    GHashTable *by_name; /* name -> struct registered_command */
    GPtrArray *names;
};

static JsonNode *handle_qmp_capabilities(void *opaque, struct qmp_session *session, JsonObject *args,
                                         GError **error);

static const struct qmp_arg capabilities_args[] = {
    {"enable", QMP_ARG_ARRAY, true},
    {NULL},
};

static const struct qmp_command_def capabilities_def = {"qmp_capabilities", handle_qmp_capabilities,
                                                        capabilities_args};

const char *qmp_error_class_name(int code)
{
    switch (code) {
    case QMP_ERROR_COMMAND_NOT_FOUND:
        return "CommandNotFound";
    case QMP_ERROR_DEVICE_NOT_ACTIVE:
        return "DeviceNotActive";
    case QMP_ERROR_DEVICE_NOT_FOUND:
        return "DeviceNotFound";
    default:
        return "GenericError";
    }
}

struct qmp_dispatcher *qmp_dispatcher_new(void)
{
    struct qmp_dispatcher *d = g_new0(struct qmp_dispatcher, 1);
    d->by_name = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free);
    d->names = g_ptr_array_new();
    qmp_dispatcher_register(d, &capabilities_def, NULL);
    return d;
}

void qmp_dispatcher_free(struct qmp_dispatcher *d)
{
    if (!d)
        return;
    g_hash_table_destroy(d->by_name);
    g_ptr_array_unref(d->names);
    g_free(d);
}

bool qmp_dispatcher_register(struct qmp_dispatcher *d, const struct qmp_command_def *def, void *opaque)
{
    if (g_hash_table_contains(d->by_name, def->name))
        return false;
    struct registered_command *rc = g_new0(struct registered_command, 1);
    rc->def = def;
    rc->opaque = opaque;
    g_hash_table_insert(d->by_name, (gpointer)def->name, rc);
    g_ptr_array_add(d->names, (gpointer)def->name);
    return true;
}

void qmp_dispatcher_register_all(struct qmp_dispatcher *d, const struct qmp_command_def *defs, size_t n,
                                 void *opaque)
{
    for (size_t i = 0; i < n; i++)
        qmp_dispatcher_register(d, &defs[i], opaque);
}

GPtrArray *qmp_dispatcher_command_names(struct qmp_dispatcher *d)
{
    return d->names;
}

static JsonNode *handle_qmp_capabilities(void *opaque, struct qmp_session *session, JsonObject *args,
                                         GError **error)
{
    if (json_object_has_member(args, "enable")) {
        JsonArray *caps = json_object_get_array_member(args, "enable");
        for (guint i = 0; i < json_array_get_length(caps); i++) {
            JsonNode *n = json_array_get_element(caps, i);
            if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING) {
                g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                            "Invalid parameter type for 'enable[%u]', expected: string", i);
                return NULL;
            }
            const char *cap = json_node_get_string(n);
            if (!strcmp(cap, "oob"))
                g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Capability 'oob' not available");
            else
                g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                            "Parameter 'enable[%u]' does not accept value '%s'", i, cap);
            return NULL;
        }
    }
    session->negotiated = true;
    return NULL;
}

static JsonNode *error_response(int code, const char *desc, JsonNode *id)
{
    JsonObject *err = json_object_new();
    json_object_set_string_member(err, "class", qmp_error_class_name(code));
    json_object_set_string_member(err, "desc", desc);
    JsonObject *resp = json_object_new();
    json_object_set_object_member(resp, "error", err);
    if (id)
        json_object_set_member(resp, "id", json_node_copy(id));
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(node, resp);
    return node;
}

static JsonNode *error_responsef(int code, JsonNode *id, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static JsonNode *error_responsef(int code, JsonNode *id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *desc = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return error_response(code, desc, id);
}

static const char *arg_type_name(enum qmp_arg_type t)
{
    switch (t) {
    case QMP_ARG_STRING:
        return "string";
    case QMP_ARG_INT:
        return "integer";
    case QMP_ARG_NUMBER:
        return "number";
    case QMP_ARG_BOOL:
        return "boolean";
    case QMP_ARG_ARRAY:
        return "array";
    case QMP_ARG_OBJECT:
        return "object";
    case QMP_ARG_ANY:
        break;
    }
    return "any";
}

static bool arg_type_matches(JsonNode *n, enum qmp_arg_type t)
{
    switch (t) {
    case QMP_ARG_ANY:
        return true;
    case QMP_ARG_ARRAY:
        return JSON_NODE_HOLDS_ARRAY(n);
    case QMP_ARG_OBJECT:
        return JSON_NODE_HOLDS_OBJECT(n);
    default:
        break;
    }
    if (!JSON_NODE_HOLDS_VALUE(n))
        return false;
    GType vt = json_node_get_value_type(n);
    switch (t) {
    case QMP_ARG_STRING:
        return vt == G_TYPE_STRING;
    case QMP_ARG_INT:
        return vt == G_TYPE_INT64;
    case QMP_ARG_NUMBER:
        return vt == G_TYPE_INT64 || vt == G_TYPE_DOUBLE;
    case QMP_ARG_BOOL:
        return vt == G_TYPE_BOOLEAN;
    default:
        return false;
    }
}

/* QEMU's messages for bad arguments: unexpected, missing, wrong type. */
static bool check_args(const struct qmp_command_def *def, JsonObject *args, GError **error)
{
    g_autoptr(GList) members = json_object_get_members(args);
    for (GList *m = members; m; m = m->next) {
        const char *name = m->data;
        const struct qmp_arg *spec = NULL;
        for (const struct qmp_arg *a = def->args; a && a->name; a++)
            if (!strcmp(a->name, name))
                spec = a;
        if (!spec) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter '%s' is unexpected", name);
            return false;
        }
        if (!arg_type_matches(json_object_get_member(args, name), spec->type)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Invalid parameter type for '%s', expected: %s", name,
                        arg_type_name(spec->type));
            return false;
        }
    }
    for (const struct qmp_arg *a = def->args; a && a->name; a++) {
        if (!a->optional && !json_object_has_member(args, a->name)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter '%s' is missing", a->name);
            return false;
        }
    }
    return true;
}

JsonNode *qmp_dispatcher_handle(struct qmp_dispatcher *d, struct qmp_session *session, const char *text, size_t len,
                                const char *framing_error)
{
    if (framing_error)
        return error_responsef(QMP_ERROR_GENERIC, NULL, "JSON parse error, %s", framing_error);

    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) perr = NULL;
    if (!json_parser_load_from_data(parser, text, (gssize)len, &perr))
        return error_responsef(QMP_ERROR_GENERIC, NULL, "JSON parse error, %s", perr->message);
    JsonNode *root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root))
        return error_response(QMP_ERROR_GENERIC, "QMP input must be a JSON object", NULL);

    JsonObject *req = json_node_get_object(root);
    JsonNode *id = json_object_get_member(req, "id");

    g_autoptr(GList) members = json_object_get_members(req);
    for (GList *m = members; m; m = m->next) {
        const char *k = m->data;
        if (!strcmp(k, "execute") || !strcmp(k, "arguments") || !strcmp(k, "id"))
            continue;
        if (!strcmp(k, "exec-oob"))
            return error_response(QMP_ERROR_GENERIC,
                                  "QMP input member 'exec-oob' is not supported: capability 'oob' is not offered", id);
        return error_responsef(QMP_ERROR_GENERIC, id, "QMP input member '%s' is unexpected", k);
    }
    JsonNode *exec = json_object_get_member(req, "execute");
    if (!exec)
        return error_response(QMP_ERROR_GENERIC, "QMP input lacks member 'execute'", id);
    if (!JSON_NODE_HOLDS_VALUE(exec) || json_node_get_value_type(exec) != G_TYPE_STRING)
        return error_response(QMP_ERROR_GENERIC, "QMP input member 'execute' must be a string", id);
    const char *name = json_node_get_string(exec);

    JsonNode *args_node = json_object_get_member(req, "arguments");
    if (args_node && !JSON_NODE_HOLDS_OBJECT(args_node))
        return error_response(QMP_ERROR_GENERIC, "QMP input member 'arguments' must be an object", id);

    struct registered_command *rc = g_hash_table_lookup(d->by_name, name);
    bool is_caps = rc && rc->def == &capabilities_def;
    if (!session->negotiated && !is_caps)
        return error_response(QMP_ERROR_COMMAND_NOT_FOUND,
                              "Expecting capabilities negotiation with 'qmp_capabilities'", id);
    if (session->negotiated && is_caps)
        return error_response(QMP_ERROR_COMMAND_NOT_FOUND,
                              "Capabilities negotiation is already complete, command ignored", id);
    if (!rc)
        return error_responsef(QMP_ERROR_COMMAND_NOT_FOUND, id, "The command %s has not been found", name);

    g_autoptr(JsonObject) empty = json_object_new();
    JsonObject *args = args_node ? json_node_get_object(args_node) : empty;
    g_autoptr(GError) err = NULL;
    if (!check_args(rc->def, args, &err))
        return error_response(err->code, err->message, id);

    JsonNode *ret = rc->def->handler(rc->opaque, session, args, &err);
    if (err) {
        if (ret)
            json_node_unref(ret);
        int code = err->domain == QMP_ERROR ? err->code : QMP_ERROR_GENERIC;
        return error_response(code, err->message, id);
    }
    if (!ret) {
        ret = json_node_new(JSON_NODE_OBJECT);
        json_node_take_object(ret, json_object_new());
    }
    JsonObject *resp = json_object_new();
    json_object_set_member(resp, "return", ret);
    if (id)
        json_object_set_member(resp, "id", json_node_copy(id));
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(node, resp);
    return node;
}

JsonNode *qmp_greeting_new(void)
{
    JsonObject *ver = json_object_new();
    json_object_set_int_member(ver, "micro", DESKVM_VERSION_MICRO);
    json_object_set_int_member(ver, "minor", DESKVM_VERSION_MINOR);
    json_object_set_int_member(ver, "major", DESKVM_VERSION_MAJOR);
    JsonObject *version = json_object_new();
    json_object_set_object_member(version, "qemu", ver);
    json_object_set_string_member(version, "package", "deskvm-" PACKAGE_VERSION);
    JsonObject *qmp = json_object_new();
    json_object_set_object_member(qmp, "version", version);
    json_object_set_array_member(qmp, "capabilities", json_array_new());
    JsonObject *root = json_object_new();
    json_object_set_object_member(root, "QMP", qmp);
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(node, root);
    return node;
}

JsonNode *qmp_event_new(const char *name, JsonObject *data)
{
    gint64 now = g_get_real_time();
    JsonObject *ts = json_object_new();
    json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
    JsonObject *ev = json_object_new();
    json_object_set_string_member(ev, "event", name);
    if (data)
        json_object_set_object_member(ev, "data", data);
    json_object_set_object_member(ev, "timestamp", ts);
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(node, ev);
    return node;
}

char *qmp_to_line(JsonNode *node, size_t *len)
{
    g_autoptr(JsonGenerator) gen = json_generator_new();
    json_generator_set_root(gen, node);
    gsize n = 0;
    g_autofree char *text = json_generator_to_data(gen, &n);
    char *line = g_malloc(n + 3);
    memcpy(line, text, n);
    line[n] = '\r';
    line[n + 1] = '\n';
    line[n + 2] = '\0';
    *len = n + 2;
    return line;
}
