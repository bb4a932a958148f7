/* QMP send-key, input-send-event and query-mice, with QEMU's argument checks and error wording. */
#include "qmp_input.h"

#include <string.h>

#include "input.h"
#include "scancode.h"

#define SEND_KEY_MAX_KEYS 256
#define INPUT_EVENTS_MAX 1024
#define HOLD_TIME_DEFAULT_MS 100
#define HOLD_TIME_MAX_MS 60000

struct qmp_input {
    struct input *in;
};

static const char *const button_names[INPUT_BUTTON__MAX] = {
    [INPUT_BUTTON_LEFT] = "left",
    [INPUT_BUTTON_MIDDLE] = "middle",
    [INPUT_BUTTON_RIGHT] = "right",
    [INPUT_BUTTON_WHEEL_UP] = "wheel-up",
    [INPUT_BUTTON_WHEEL_DOWN] = "wheel-down",
    [INPUT_BUTTON_SIDE] = "side",
    [INPUT_BUTTON_EXTRA] = "extra",
    [INPUT_BUTTON_WHEEL_LEFT] = "wheel-left",
    [INPUT_BUTTON_WHEEL_RIGHT] = "wheel-right",
};

static const char *const axis_names[INPUT_AXIS__MAX] = {[INPUT_AXIS_X] = "x", [INPUT_AXIS_Y] = "y"};

/* ---------------------------------------------------------------- checking nested arguments */

enum member_type { M_STRING, M_INT, M_BOOL, M_OBJECT };

struct member {
    const char *name;
    enum member_type type;
};

static const char *member_type_name(enum member_type t)
{
    static const char *const names[] = {"string", "integer", "boolean", "object"};
    return names[t];
}

static bool node_is(JsonNode *n, enum member_type t)
{
    if (t == M_OBJECT)
        return JSON_NODE_HOLDS_OBJECT(n);
    if (!JSON_NODE_HOLDS_VALUE(n))
        return false;
    GType vt = json_node_get_value_type(n);
    return t == M_STRING ? vt == G_TYPE_STRING : t == M_INT ? vt == G_TYPE_INT64 : vt == G_TYPE_BOOLEAN;
}

/* The object at `path` must hold exactly these members (all required), of these types. */
static JsonObject *check_object(JsonNode *n, const char *path, const struct member *spec, size_t nspec,
                                GError **error)
{
    if (!JSON_NODE_HOLDS_OBJECT(n)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Invalid parameter type for '%s', expected: object",
                    path);
        return NULL;
    }
    JsonObject *o = json_node_get_object(n);
    g_autoptr(GList) members = json_object_get_members(o);
    for (GList *m = members; m; m = m->next) {
        const struct member *s = NULL;
        for (size_t i = 0; i < nspec; i++)
            if (!strcmp(spec[i].name, m->data))
                s = &spec[i];
        if (!s) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter '%s.%s' is unexpected", path,
                        (const char *)m->data);
            return NULL;
        }
        if (!node_is(json_object_get_member(o, s->name), s->type)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                        "Invalid parameter type for '%s.%s', expected: %s", path, s->name,
                        member_type_name(s->type));
            return NULL;
        }
    }
    for (size_t i = 0; i < nspec; i++) {
        if (!json_object_has_member(o, spec[i].name)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter '%s.%s' is missing", path,
                        spec[i].name);
            return NULL;
        }
    }
    return o;
}

static bool bad_value(GError **error, const char *path, const char *member, const char *value)
{
    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter '%s.%s' does not accept value '%s'", path,
                member, value);
    return false;
}

/* A KeyValue: {"type": "qcode", "data": NAME} or {"type": "number", "data": QEMU key number}. *code is the
 * evdev key (0 for a number no key has, which is ignored as QEMU does). */
static bool parse_key_value(JsonNode *n, const char *path, unsigned *code, GError **error)
{
    if (!JSON_NODE_HOLDS_OBJECT(n)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Invalid parameter type for '%s', expected: object",
                    path);
        return false;
    }
    JsonObject *o = json_node_get_object(n);
    JsonNode *t = json_object_get_member(o, "type");
    if (!t) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter '%s.type' is missing", path);
        return false;
    }
    if (!node_is(t, M_STRING)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "Invalid parameter type for '%s.type', expected: string", path);
        return false;
    }
    const char *type = json_node_get_string(t);
    bool qcode = !strcmp(type, "qcode");
    if (!qcode && strcmp(type, "number"))
        return bad_value(error, path, "type", type);
    const struct member spec[] = {{"type", M_STRING}, {"data", qcode ? M_STRING : M_INT}};
    if (!check_object(n, path, spec, G_N_ELEMENTS(spec), error))
        return false;
    JsonNode *data = json_object_get_member(o, "data");
    if (qcode) {
        const char *name = json_node_get_string(data);
        *code = scancode_qcode_to_evdev(name);
        if (!*code)
            return bad_value(error, path, "data", name);
    } else {
        gint64 num = json_node_get_int(data);
        *code = num > 0 && num <= 0xFF ? scancode_qnum_to_evdev((unsigned)num) : 0;
    }
    return true;
}

static int name_index(const char *const *names, unsigned n, const char *s)
{
    for (unsigned i = 0; i < n; i++)
        if (names[i] && !strcmp(names[i], s))
            return (int)i;
    return -1;
}

/* One InputEvent: {"type": "key"|"btn"|"rel"|"abs", "data": {...}}. */
static bool parse_input_event(JsonNode *n, const char *path, struct input_event *ev, GError **error)
{
    const struct member outer[] = {{"type", M_STRING}, {"data", M_OBJECT}};
    JsonObject *o = check_object(n, path, outer, G_N_ELEMENTS(outer), error);
    if (!o)
        return false;
    const char *type = json_object_get_string_member(o, "type");
    JsonNode *data = json_object_get_member(o, "data");
    g_autofree char *dpath = g_strdup_printf("%s.data", path);
    if (!strcmp(type, "key")) {
        JsonObject *d = JSON_NODE_HOLDS_OBJECT(data) ? json_node_get_object(data) : NULL;
        JsonNode *key = d ? json_object_get_member(d, "key") : NULL;
        const struct member spec[] = {{"down", M_BOOL}, {"key", M_OBJECT}};
        if (!check_object(data, dpath, spec, G_N_ELEMENTS(spec), error))
            return false;
        g_autofree char *kpath = g_strdup_printf("%s.key", dpath);
        unsigned code;
        if (!parse_key_value(key, kpath, &code, error))
            return false;
        *ev = (struct input_event){.type = INPUT_EVENT_KEY};
        ev->key.code = (uint16_t)code;
        ev->key.down = json_object_get_boolean_member(d, "down");
        return true;
    }
    if (!strcmp(type, "btn")) {
        const struct member spec[] = {{"down", M_BOOL}, {"button", M_STRING}};
        JsonObject *d = check_object(data, dpath, spec, G_N_ELEMENTS(spec), error);
        if (!d)
            return false;
        const char *b = json_object_get_string_member(d, "button");
        int i = name_index(button_names, INPUT_BUTTON__MAX, b);
        if (i < 0)
            return bad_value(error, dpath, "button", b);
        *ev = (struct input_event){.type = INPUT_EVENT_BTN};
        ev->btn.button = (enum input_button)i;
        ev->btn.down = json_object_get_boolean_member(d, "down");
        return true;
    }
    if (!strcmp(type, "rel") || !strcmp(type, "abs")) {
        const struct member spec[] = {{"axis", M_STRING}, {"value", M_INT}};
        JsonObject *d = check_object(data, dpath, spec, G_N_ELEMENTS(spec), error);
        if (!d)
            return false;
        const char *a = json_object_get_string_member(d, "axis");
        int i = name_index(axis_names, INPUT_AXIS__MAX, a);
        if (i < 0)
            return bad_value(error, dpath, "axis", a);
        gint64 v = json_object_get_int_member(d, "value");
        *ev = (struct input_event){.type = type[0] == 'a' ? INPUT_EVENT_ABS : INPUT_EVENT_REL};
        ev->move.axis = (enum input_axis)i;
        ev->move.value = (int32_t)CLAMP(v, INT32_MIN, INT32_MAX);
        return true;
    }
    return bad_value(error, path, "type", type);
}

/* ---------------------------------------------------------------- commands */

static bool have_machine(struct qmp_input *q, GError **error)
{
    if (!q->in)
        g_set_error_literal(error, QMP_ERROR, QMP_ERROR_GENERIC,
                            "There is no machine to send input to (start deskvm with --kernel, --firmware or "
                            "--accel qtest)");
    return q->in != NULL;
}

static JsonNode *cmd_send_key(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_input *q = opaque;
    JsonArray *keys = json_object_get_array_member(args, "keys");
    guint n = json_array_get_length(keys);
    if (n > SEND_KEY_MAX_KEYS) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter 'keys' expects at most %d keys",
                    SEND_KEY_MAX_KEYS);
        return NULL;
    }
    gint64 hold = HOLD_TIME_DEFAULT_MS;
    if (json_object_has_member(args, "hold-time")) {
        hold = json_object_get_int_member(args, "hold-time");
        if (hold < 0 || hold > HOLD_TIME_MAX_MS) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                        "Parameter 'hold-time' expects a number of milliseconds from 0 to %d",
                        HOLD_TIME_MAX_MS);
            return NULL;
        }
    }
    unsigned codes[SEND_KEY_MAX_KEYS];
    for (guint i = 0; i < n; i++) {
        g_autofree char *path = g_strdup_printf("keys[%u]", i);
        if (!parse_key_value(json_array_get_element(keys, i), path, &codes[i], error))
            return NULL;
    }
    if (!have_machine(q, error))
        return NULL;
    /* Press in order, hold, release in reverse: a chord such as ctrl-alt-delete. */
    for (guint i = 0; i < n; i++) {
        if (codes[i]) {
            input_send_key(q->in, codes[i], true);
            input_sync(q->in);
        }
    }
    input_delay(q->in, (unsigned)hold);
    for (guint i = n; i-- > 0;) {
        if (codes[i]) {
            input_send_key(q->in, codes[i], false);
            input_sync(q->in);
        }
    }
    return NULL;
}

static JsonNode *cmd_input_send_event(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_input *q = opaque;
    if (json_object_has_member(args, "device")) {
        /* deskvm's input devices have no ids a client could name. */
        g_set_error(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND, "Device '%s' not found",
                    json_object_get_string_member(args, "device"));
        return NULL;
    }
    JsonArray *events = json_object_get_array_member(args, "events");
    guint n = json_array_get_length(events);
    if (n > INPUT_EVENTS_MAX) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter 'events' expects at most %d events",
                    INPUT_EVENTS_MAX);
        return NULL;
    }
    struct input_event *evs = g_new(struct input_event, n ? n : 1);
    for (guint i = 0; i < n; i++) {
        g_autofree char *path = g_strdup_printf("events[%u]", i);
        if (!parse_input_event(json_array_get_element(events, i), path, &evs[i], error)) {
            g_free(evs);
            return NULL;
        }
    }
    if (have_machine(q, error)) {
        /* One report: the events, then a sync. */
        for (guint i = 0; i < n; i++)
            if (evs[i].type != INPUT_EVENT_KEY || evs[i].key.code)
                input_send_event(q->in, &evs[i]);
        input_sync(q->in);
    }
    g_free(evs);
    return NULL;
}

static JsonNode *cmd_query_mice(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    struct qmp_input *q = opaque;
    JsonArray *arr = json_array_new();
    if (q->in) {
        struct input_mouse_info info[16];
        unsigned n = MIN(input_query_mice(q->in, info, G_N_ELEMENTS(info)), (unsigned)G_N_ELEMENTS(info));
        for (unsigned i = 0; i < n; i++) {
            JsonObject *o = json_object_new();
            json_object_set_string_member(o, "name", info[i].name);
            json_object_set_int_member(o, "index", info[i].index);
            json_object_set_boolean_member(o, "current", info[i].current);
            json_object_set_boolean_member(o, "absolute", info[i].absolute);
            json_array_add_object_element(arr, o);
        }
    }
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(node, arr);
    return node;
}

static const struct qmp_arg send_key_args[] = {
    {"keys", QMP_ARG_ARRAY, false},
    {"hold-time", QMP_ARG_INT, true},
    {NULL},
};

static const struct qmp_arg input_send_event_args[] = {
    {"device", QMP_ARG_STRING, true},
    {"head", QMP_ARG_INT, true},
    {"events", QMP_ARG_ARRAY, false},
    {NULL},
};

static const struct qmp_command_def input_commands[] = {
    {"send-key", cmd_send_key, send_key_args},
    {"input-send-event", cmd_input_send_event, input_send_event_args},
    {"query-mice", cmd_query_mice, NULL},
};

struct qmp_input *qmp_input_attach(struct qmp_dispatcher *d, struct input *in)
{
    struct qmp_input *q = g_new0(struct qmp_input, 1);
    q->in = in;
    qmp_dispatcher_register_all(d, input_commands, G_N_ELEMENTS(input_commands), q);
    return q;
}

void qmp_input_detach(struct qmp_input *q)
{
    g_free(q);
}
