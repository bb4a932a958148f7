/* Proves that the QMP dispatcher and the VM commands answer each request exactly as QEMU's QMP would. */
#include <string.h>
#include <time.h>

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "log.h"
#include "qmp_dispatch.h"
#include "qmp_vm.h"
#include "vm.h"

/* ------------------------------------------------------------------ test commands */

static const struct qmp_arg typed_args[] = {
    {"s", QMP_ARG_STRING, false}, {"n", QMP_ARG_INT, false},   {"b", QMP_ARG_BOOL, true},
    {"a", QMP_ARG_ARRAY, true},   {"x", QMP_ARG_NUMBER, true}, {"o", QMP_ARG_OBJECT, true},
    {"any", QMP_ARG_ANY, true},   {NULL, QMP_ARG_ANY, false},
};

/* Returns {"s": s, "n": n, "count": number of arguments}. */
static JsonNode *cmd_typed(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    int *calls = opaque;
    (*calls)++;
    JsonObject *ret = json_object_new();
    json_object_set_string_member(ret, "s", json_object_get_string_member(args, "s"));
    json_object_set_int_member(ret, "n", json_object_get_int_member(args, "n"));
    json_object_set_int_member(ret, "count", json_object_get_size(args));
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(node, ret);
    return node;
}

static JsonNode *cmd_int_return(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    JsonNode *node = json_node_new(JSON_NODE_VALUE);
    json_node_set_int(node, 42);
    return node;
}

/* Fails with the error class and message chosen by its "how" argument. */
static JsonNode *cmd_fail(void *opaque, struct qmp_session *s, JsonObject *args, GError **error)
{
    const char *how = json_object_get_string_member(args, "how");
    if (!strcmp(how, "not-found"))
        g_set_error(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND, "Device 'disk0' not found");
    else if (!strcmp(how, "not-active"))
        g_set_error(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_ACTIVE, "No balloon device has been activated");
    else if (!strcmp(how, "generic"))
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Something failed");
    else if (!strcmp(how, "foreign"))
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "File not found (foreign domain)");
    else if (!strcmp(how, "with-value")) {
        /* a handler that sets an error and still returns a node: the error wins */
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Error despite a value");
        JsonNode *node = json_node_new(JSON_NODE_VALUE);
        json_node_set_int(node, 1);
        return node;
    }
    return NULL;
}

static const struct qmp_arg fail_args[] = {
    {"how", QMP_ARG_STRING, false},
    {NULL, QMP_ARG_ANY, false},
};

static const struct qmp_command_def test_commands[] = {
    {"test-typed", cmd_typed, typed_args},
    {"test-int-return", cmd_int_return, NULL},
    {"test-fail", cmd_fail, fail_args},
};

/* ------------------------------------------------------------------ fixture */

struct machine {
    int pause, resume, reset, powerdown, exits;
};

static void m_pause(void *o)
{
    ((struct machine *)o)->pause++;
}

static void m_resume(void *o)
{
    ((struct machine *)o)->resume++;
}

static void m_reset(void *o)
{
    ((struct machine *)o)->reset++;
}

static void m_powerdown(void *o)
{
    ((struct machine *)o)->powerdown++;
}

static void m_exit(void *o)
{
    ((struct machine *)o)->exits++;
}

static const struct vm_ops machine_ops = {m_pause, m_resume, m_reset, m_powerdown};

struct fixture {
    struct qmp_dispatcher *d;
    struct vm *vm;
    struct qmp_vm *q;
    struct qmp_session session;
    struct machine m;
    int typed_calls;
};

static void fixture_setup(struct fixture *f, const char *name, bool paused)
{
    memset(f, 0, sizeof(*f));
    f->d = qmp_dispatcher_new();
    f->vm = vm_new(name, paused);
    vm_set_ops(f->vm, &machine_ops, &f->m);
    vm_set_exit_handler(f->vm, m_exit, &f->m);
    f->q = qmp_vm_attach(f->vm, f->d, NULL);
    g_assert_true(qmp_dispatcher_register(f->d, &test_commands[0], &f->typed_calls));
    g_assert_true(qmp_dispatcher_register(f->d, &test_commands[1], NULL));
    g_assert_true(qmp_dispatcher_register(f->d, &test_commands[2], NULL));
}

static void fixture_teardown(struct fixture *f)
{
    qmp_vm_detach(f->q);
    qmp_dispatcher_free(f->d);
    vm_free(f->vm);
}

/* Parses one line as QEMU would send it and returns its object (caller unrefs). */
static JsonObject *parse_line(const char *line, size_t len)
{
    g_assert_cmpuint(strlen(line), ==, len);
    g_assert_true(g_str_has_suffix(line, "\r\n"));
    g_assert_null(memchr(line, '\n', len - 1));
    g_assert_null(memchr(line, '\r', len - 2));
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;
    g_assert_true(json_parser_load_from_data(parser, line, (gssize)len, &err));
    g_assert_no_error(err);
    JsonNode *root = json_parser_get_root(parser);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
    return json_object_ref(json_node_get_object(root));
}

/* Sends TEXT through the dispatcher, serialises the response as it would go on the wire and parses it back.
 */
static JsonObject *call(struct fixture *f, const char *text)
{
    JsonNode *resp = qmp_dispatcher_handle(f->d, &f->session, text, strlen(text), NULL);
    g_assert_nonnull(resp);
    size_t len = 0;
    g_autofree char *line = qmp_to_line(resp, &len);
    json_node_unref(resp);
    if (g_test_verbose())
        g_test_message("%s -> %.*s", text, (int)len - 2, line);
    return parse_line(line, len);
}

static void negotiate(struct fixture *f)
{
    g_autoptr(JsonObject) r = call(f, "{\"execute\":\"qmp_capabilities\"}");
    g_assert_true(json_object_has_member(r, "return"));
    g_assert_true(f->session.negotiated);
}

static JsonObject *member_object(JsonObject *o, const char *name)
{
    JsonNode *n = json_object_get_member(o, name);
    if (!n || !JSON_NODE_HOLDS_OBJECT(n))
        g_error("member '%s' is missing or not an object", name);
    return json_node_get_object(n);
}

static gint64 member_int(JsonObject *o, const char *name)
{
    JsonNode *n = json_object_get_member(o, name);
    if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
        g_error("member '%s' is missing or not an integer", name);
    return json_node_get_int(n);
}

static const char *member_string(JsonObject *o, const char *name)
{
    JsonNode *n = json_object_get_member(o, name);
    if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
        g_error("member '%s' is missing or not a string", name);
    return json_node_get_string(n);
}

static gboolean member_bool(JsonObject *o, const char *name)
{
    JsonNode *n = json_object_get_member(o, name);
    if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN)
        g_error("member '%s' is missing or not a boolean", name);
    return json_node_get_boolean(n);
}

/* Asserts r is {"error": {"class": CLS, "desc": DESC}} with no "return", and no "id" unless has_id. */
static void assert_error(JsonObject *r, const char *cls, const char *desc, bool has_id)
{
    g_assert_false(json_object_has_member(r, "return"));
    g_assert_cmpuint(json_object_get_size(r), ==, has_id ? 2 : 1);
    g_assert_cmpint(json_object_has_member(r, "id"), ==, has_id);
    JsonObject *e = member_object(r, "error");
    g_assert_cmpuint(json_object_get_size(e), ==, 2);
    g_assert_cmpstr(member_string(e, "class"), ==, cls);
    if (desc)
        g_assert_cmpstr(member_string(e, "desc"), ==, desc);
}

/* Asserts r is {"return": {}} (plus "id" if has_id). */
static void assert_empty_return(JsonObject *r, bool has_id)
{
    g_assert_cmpuint(json_object_get_size(r), ==, has_id ? 2 : 1);
    JsonObject *ret = member_object(r, "return");
    g_assert_cmpuint(json_object_get_size(ret), ==, 0);
}

static void expect_error(struct fixture *f, const char *request, const char *cls, const char *desc)
{
    g_autoptr(JsonObject) r = call(f, request);
    assert_error(r, cls, desc, strstr(request, "\"id\"") != NULL);
}

/* ------------------------------------------------------------------ negotiation */

static void test_command_before_negotiation(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    expect_error(&f, "{\"execute\":\"query-status\"}", "CommandNotFound",
                 "Expecting capabilities negotiation with 'qmp_capabilities'");
    expect_error(&f, "{\"execute\":\"foo\"}", "CommandNotFound",
                 "Expecting capabilities negotiation with 'qmp_capabilities'");
    g_assert_false(f.session.negotiated);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING);
    expect_error(&f, "{\"execute\":\"stop\"}", "CommandNotFound",
                 "Expecting capabilities negotiation with 'qmp_capabilities'");
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING);
    g_assert_cmpint(f.m.pause, ==, 0);
    fixture_teardown(&f);
}

static void test_capabilities_returns_empty_object(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    g_autoptr(JsonObject) r = call(&f, "{\"execute\":\"qmp_capabilities\"}");
    assert_empty_return(r, false);
    g_assert_true(f.session.negotiated);
    g_autoptr(JsonObject) r2 = call(&f, "{\"execute\":\"query-name\"}");
    g_assert_true(json_object_has_member(r2, "return"));

    /* an empty enable list and explicit empty arguments are fine too */
    struct qmp_session other = {false};
    JsonNode *n = qmp_dispatcher_handle(
        f.d, &other, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[]}}",
        strlen("{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[]}}"), NULL);
    g_assert_true(json_object_has_member(json_node_get_object(n), "return"));
    g_assert_true(other.negotiated);
    json_node_unref(n);
    fixture_teardown(&f);
}

static void test_second_capabilities_rejected(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    expect_error(&f, "{\"execute\":\"qmp_capabilities\"}", "CommandNotFound",
                 "Capabilities negotiation is already complete, command ignored");
    g_assert_true(f.session.negotiated);
    fixture_teardown(&f);
}

static void test_capabilities_enable_rejected(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    expect_error(&f, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}",
                 "GenericError", "Capability 'oob' not available");
    expect_error(&f, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"magic\"]}}",
                 "GenericError", "Parameter 'enable[0]' does not accept value 'magic'");
    expect_error(&f, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[7]}}", "GenericError",
                 "Invalid parameter type for 'enable[0]', expected: string");
    expect_error(&f, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":\"oob\"}}", "GenericError",
                 "Invalid parameter type for 'enable', expected: array");
    g_assert_false(f.session.negotiated);
    fixture_teardown(&f);
}

/* ------------------------------------------------------------------ id */

static void test_id_echoed(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    /* before negotiation: the error carries the id */
    g_autoptr(JsonObject) r0 = call(&f, "{\"execute\":\"query-status\",\"id\":\"early\"}");
    assert_error(r0, "CommandNotFound", NULL, true);
    g_assert_cmpstr(member_string(r0, "id"), ==, "early");

    g_autoptr(JsonObject) r1 = call(&f, "{\"id\":\"abc\",\"execute\":\"qmp_capabilities\"}");
    assert_empty_return(r1, true);
    g_assert_cmpstr(member_string(r1, "id"), ==, "abc");

    g_autoptr(JsonObject) r2 = call(&f, "{\"execute\":\"query-name\",\"id\":42}");
    g_assert_cmpint(member_int(r2, "id"), ==, 42);
    g_assert_true(json_object_has_member(r2, "return"));

    g_autoptr(JsonObject) r3 =
        call(&f, "{\"execute\":\"query-name\",\"id\":{\"seq\":[1,\"two\"],\"k\":null}}");
    JsonObject *id = member_object(r3, "id");
    g_assert_cmpuint(json_object_get_size(id), ==, 2);
    JsonArray *seq = json_object_get_array_member(id, "seq");
    g_assert_cmpuint(json_array_get_length(seq), ==, 2);
    g_assert_cmpint(json_array_get_int_element(seq, 0), ==, 1);
    g_assert_cmpstr(json_array_get_string_element(seq, 1), ==, "two");
    g_assert_true(json_object_get_null_member(id, "k"));

    g_autoptr(JsonObject) r4 = call(&f, "{\"execute\":\"foo\",\"id\":\"e1\"}");
    assert_error(r4, "CommandNotFound", "The command foo has not been found", true);
    g_assert_cmpstr(member_string(r4, "id"), ==, "e1");

    g_autoptr(JsonObject) r5 = call(&f, "{\"execute\":\"query-name\",\"id\":7,\"arguments\":{\"x\":1}}");
    assert_error(r5, "GenericError", "Parameter 'x' is unexpected", true);
    g_assert_cmpint(member_int(r5, "id"), ==, 7);

    g_autoptr(JsonObject) r6 =
        call(&f, "{\"execute\":\"test-fail\",\"arguments\":{\"how\":\"not-found\"},\"id\":[1]}");
    assert_error(r6, "DeviceNotFound", "Device 'disk0' not found", true);
    g_assert_cmpint(json_array_get_int_element(json_object_get_array_member(r6, "id"), 0), ==, 1);

    g_autoptr(JsonObject) r7 = call(&f, "{\"id\":\"noexec\"}");
    assert_error(r7, "GenericError", "QMP input lacks member 'execute'", true);
    g_assert_cmpstr(member_string(r7, "id"), ==, "noexec");
    fixture_teardown(&f);
}

/* ------------------------------------------------------------------ envelope */

static void test_unknown_command(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    expect_error(&f, "{\"execute\":\"foo\"}", "CommandNotFound", "The command foo has not been found");
    expect_error(&f, "{\"execute\":\"\"}", "CommandNotFound", "The command  has not been found");
    fixture_teardown(&f);
}

static void test_malformed_json(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    static const char *const bad[] = {"{\"execute\":", "{\"execute\" \"x\"}", "}", "nul", "{\"a\":1,}"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(JsonObject) r = call(&f, bad[i]);
        assert_error(r, "GenericError", NULL, false);
        g_assert_true(
            g_str_has_prefix(member_string(member_object(r, "error"), "desc"), "JSON parse error, "));
    }
    fixture_teardown(&f);
}

static void test_non_object_input(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    static const char *const bad[] = {"[1,2]", "42", "\"execute\"", "null",
                                      "[{\"execute\":\"query-status\"}]"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        expect_error(&f, bad[i], "GenericError", "QMP input must be a JSON object");
    fixture_teardown(&f);
}

static void test_envelope_errors(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    expect_error(&f, "{}", "GenericError", "QMP input lacks member 'execute'");
    expect_error(&f, "{\"arguments\":{}}", "GenericError", "QMP input lacks member 'execute'");
    expect_error(&f, "{\"execute\":1}", "GenericError", "QMP input member 'execute' must be a string");
    expect_error(&f, "{\"execute\":[\"stop\"]}", "GenericError",
                 "QMP input member 'execute' must be a string");
    expect_error(&f, "{\"execute\":null}", "GenericError", "QMP input member 'execute' must be a string");
    expect_error(&f, "{\"execute\":\"query-status\",\"arguments\":[]}", "GenericError",
                 "QMP input member 'arguments' must be an object");
    expect_error(&f, "{\"execute\":\"query-status\",\"arguments\":\"x\"}", "GenericError",
                 "QMP input member 'arguments' must be an object");
    expect_error(&f, "{\"execute\":\"query-status\",\"foo\":1}", "GenericError",
                 "QMP input member 'foo' is unexpected");
    expect_error(&f, "{\"exec-oob\":\"query-status\"}", "GenericError",
                 "QMP input member 'exec-oob' is not supported: capability 'oob' is not offered");
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING);
    expect_error(&f, "{\"execute\":\"stop\",\"arguments\":{},\"extra\":true}", "GenericError",
                 "QMP input member 'extra' is unexpected");
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING);
    fixture_teardown(&f);
}

static void test_framing_error(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    JsonNode *n = qmp_dispatcher_handle(f.d, &f.session, NULL, 0, "JSON nesting too deep");
    size_t len;
    g_autofree char *line = qmp_to_line(n, &len);
    json_node_unref(n);
    g_autoptr(JsonObject) r = parse_line(line, len);
    assert_error(r, "GenericError", "JSON parse error, JSON nesting too deep", false);
    fixture_teardown(&f);
}

/* ------------------------------------------------------------------ arguments */

static void test_args_unexpected(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    expect_error(&f, "{\"execute\":\"query-status\",\"arguments\":{\"x\":1}}", "GenericError",
                 "Parameter 'x' is unexpected");
    expect_error(&f, "{\"execute\":\"test-typed\",\"arguments\":{\"s\":\"a\",\"n\":1,\"zz\":0}}",
                 "GenericError", "Parameter 'zz' is unexpected");
    g_assert_cmpint(f.typed_calls, ==, 0);
    fixture_teardown(&f);
}

static void test_args_wrong_type(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    static const struct {
        const char *args;
        const char *desc;
    } cases[] = {
        {"\"s\":\"a\",\"n\":\"5\"", "Invalid parameter type for 'n', expected: integer"},
        {"\"s\":\"a\",\"n\":1.5", "Invalid parameter type for 'n', expected: integer"},
        {"\"s\":\"a\",\"n\":true", "Invalid parameter type for 'n', expected: integer"},
        {"\"s\":1,\"n\":1", "Invalid parameter type for 's', expected: string"},
        {"\"s\":null,\"n\":1", "Invalid parameter type for 's', expected: string"},
        {"\"s\":\"a\",\"n\":1,\"b\":\"yes\"", "Invalid parameter type for 'b', expected: boolean"},
        {"\"s\":\"a\",\"n\":1,\"b\":1", "Invalid parameter type for 'b', expected: boolean"},
        {"\"s\":\"a\",\"n\":1,\"a\":{}", "Invalid parameter type for 'a', expected: array"},
        {"\"s\":\"a\",\"n\":1,\"x\":\"1.5\"", "Invalid parameter type for 'x', expected: number"},
        {"\"s\":\"a\",\"n\":1,\"o\":[]", "Invalid parameter type for 'o', expected: object"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *req =
            g_strdup_printf("{\"execute\":\"test-typed\",\"arguments\":{%s}}", cases[i].args);
        expect_error(&f, req, "GenericError", cases[i].desc);
    }
    g_assert_cmpint(f.typed_calls, ==, 0);
    fixture_teardown(&f);
}

static void test_args_valid_reach_handler(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    g_autoptr(JsonObject) r =
        call(&f, "{\"execute\":\"test-typed\",\"arguments\":{\"s\":\"hi\",\"n\":-3,\"b\":false,"
                 "\"a\":[1,\"x\"],\"x\":2,\"o\":{},\"any\":null}}");
    JsonObject *ret = member_object(r, "return");
    g_assert_cmpstr(member_string(ret, "s"), ==, "hi");
    g_assert_cmpint(member_int(ret, "n"), ==, -3);
    g_assert_cmpint(member_int(ret, "count"), ==, 7);
    g_autoptr(JsonObject) r2 =
        call(&f, "{\"execute\":\"test-typed\",\"arguments\":{\"n\":5,\"s\":\"\",\"x\":0.25}}");
    g_assert_cmpint(member_int(member_object(r2, "return"), "count"), ==, 3);
    g_assert_cmpint(f.typed_calls, ==, 2);
    fixture_teardown(&f);
}

static void test_args_missing(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    expect_error(&f, "{\"execute\":\"test-typed\",\"arguments\":{\"s\":\"x\"}}", "GenericError",
                 "Parameter 'n' is missing");
    expect_error(&f, "{\"execute\":\"test-typed\"}", "GenericError", "Parameter 's' is missing");
    expect_error(&f, "{\"execute\":\"test-typed\",\"arguments\":{}}", "GenericError",
                 "Parameter 's' is missing");
    g_assert_cmpint(f.typed_calls, ==, 0);
    fixture_teardown(&f);
}

/* ------------------------------------------------------------------ handlers */

static void test_handler_error_classes(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    expect_error(&f, "{\"execute\":\"test-fail\",\"arguments\":{\"how\":\"not-found\"}}", "DeviceNotFound",
                 "Device 'disk0' not found");
    expect_error(&f, "{\"execute\":\"test-fail\",\"arguments\":{\"how\":\"not-active\"}}", "DeviceNotActive",
                 "No balloon device has been activated");
    expect_error(&f, "{\"execute\":\"test-fail\",\"arguments\":{\"how\":\"generic\"}}", "GenericError",
                 "Something failed");
    expect_error(&f, "{\"execute\":\"test-fail\",\"arguments\":{\"how\":\"foreign\"}}", "GenericError",
                 "File not found (foreign domain)");
    expect_error(&f, "{\"execute\":\"test-fail\",\"arguments\":{\"how\":\"with-value\"}}", "GenericError",
                 "Error despite a value");
    g_autoptr(JsonObject) r = call(&f, "{\"execute\":\"test-fail\",\"arguments\":{\"how\":\"none\"}}");
    assert_empty_return(r, false);
    fixture_teardown(&f);
}

static void test_handler_non_object_return(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    g_autoptr(JsonObject) r = call(&f, "{\"execute\":\"test-int-return\",\"id\":1}");
    g_assert_cmpint(member_int(r, "return"), ==, 42);
    g_assert_cmpint(member_int(r, "id"), ==, 1);
    fixture_teardown(&f);
}

static void test_error_class_names(void)
{
    g_assert_cmpstr(qmp_error_class_name(QMP_ERROR_GENERIC), ==, "GenericError");
    g_assert_cmpstr(qmp_error_class_name(QMP_ERROR_COMMAND_NOT_FOUND), ==, "CommandNotFound");
    g_assert_cmpstr(qmp_error_class_name(QMP_ERROR_DEVICE_NOT_ACTIVE), ==, "DeviceNotActive");
    g_assert_cmpstr(qmp_error_class_name(QMP_ERROR_DEVICE_NOT_FOUND), ==, "DeviceNotFound");
    g_assert_cmpstr(qmp_error_class_name(99), ==, "GenericError");
}

/* ------------------------------------------------------------------ registry */

static void test_register_duplicate_returns_false(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    guint before = qmp_dispatcher_command_names(f.d)->len;
    static const struct qmp_command_def dup_status = {"query-status", cmd_int_return, NULL};
    static const struct qmp_command_def dup_caps = {"qmp_capabilities", cmd_int_return, NULL};
    g_assert_false(qmp_dispatcher_register(f.d, &dup_status, NULL));
    g_assert_false(qmp_dispatcher_register(f.d, &dup_caps, NULL));
    g_assert_false(qmp_dispatcher_register(f.d, &test_commands[0], NULL));
    g_assert_cmpuint(qmp_dispatcher_command_names(f.d)->len, ==, before);
    /* the original handlers still answer */
    negotiate(&f);
    g_autoptr(JsonObject) r = call(&f, "{\"execute\":\"query-status\"}");
    g_assert_cmpstr(member_string(member_object(r, "return"), "status"), ==, "running");
    fixture_teardown(&f);
}

static void test_query_commands_lists_all(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    g_autoptr(JsonObject) r = call(&f, "{\"execute\":\"query-commands\"}");
    JsonNode *ret = json_object_get_member(r, "return");
    g_assert_true(JSON_NODE_HOLDS_ARRAY(ret));
    JsonArray *arr = json_node_get_array(ret);
    static const char *const want[] = {"qmp_capabilities", "query-version", "query-status", "query-commands",
                                       "query-name",       "stop",          "cont",         "system_reset",
                                       "system_powerdown", "quit",          "test-typed",   "test-int-return",
                                       "test-fail"};
    g_assert_cmpuint(json_array_get_length(arr), ==, G_N_ELEMENTS(want));
    GPtrArray *names = qmp_dispatcher_command_names(f.d);
    g_assert_cmpuint(names->len, ==, G_N_ELEMENTS(want));
    for (guint i = 0; i < G_N_ELEMENTS(want); i++) {
        JsonObject *o = json_array_get_object_element(arr, i);
        g_assert_cmpuint(json_object_get_size(o), ==, 1);
        g_assert_cmpstr(member_string(o, "name"), ==, want[i]);
        g_assert_cmpstr(names->pdata[i], ==, want[i]);
    }
    fixture_teardown(&f);
}

/* ------------------------------------------------------------------ VM commands */

static void check_status(struct fixture *f, const char *status, gboolean running)
{
    g_autoptr(JsonObject) r = call(f, "{\"execute\":\"query-status\"}");
    JsonObject *ret = member_object(r, "return");
    g_assert_cmpuint(json_object_get_size(ret), ==, 3);
    g_assert_cmpstr(member_string(ret, "status"), ==, status);
    g_assert_false(member_bool(ret, "singlestep"));
    g_assert_cmpint(member_bool(ret, "running"), ==, running);
}

static void test_query_status_follows_stop_cont(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    check_status(&f, "running", TRUE);
    g_autoptr(JsonObject) r1 = call(&f, "{\"execute\":\"stop\"}");
    assert_empty_return(r1, false);
    check_status(&f, "paused", FALSE);
    g_assert_cmpint(f.m.pause, ==, 1);
    g_autoptr(JsonObject) r2 = call(&f, "{\"execute\":\"stop\"}");
    assert_empty_return(r2, false);
    g_assert_cmpint(f.m.pause, ==, 1);
    g_autoptr(JsonObject) r3 = call(&f, "{\"execute\":\"cont\"}");
    assert_empty_return(r3, false);
    check_status(&f, "running", TRUE);
    g_assert_cmpint(f.m.resume, ==, 1);
    fixture_teardown(&f);
}

static void test_query_status_prelaunch(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, true);
    negotiate(&f);
    check_status(&f, "prelaunch", FALSE);
    g_autoptr(JsonObject) r = call(&f, "{\"execute\":\"cont\"}");
    assert_empty_return(r, false);
    check_status(&f, "running", TRUE);
    fixture_teardown(&f);
}

static void test_reset_and_powerdown_reach_machine(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    g_autoptr(JsonObject) r1 = call(&f, "{\"execute\":\"system_reset\"}");
    assert_empty_return(r1, false);
    g_assert_cmpint(f.m.reset, ==, 1);
    g_autoptr(JsonObject) r2 = call(&f, "{\"execute\":\"system_powerdown\"}");
    assert_empty_return(r2, false);
    g_assert_cmpint(f.m.powerdown, ==, 1);
    check_status(&f, "running", TRUE);
    fixture_teardown(&f);
}

static void test_cont_after_shutdown_fails(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    vm_shutdown(f.vm, VM_CAUSE_GUEST_SHUTDOWN);
    expect_error(&f, "{\"execute\":\"cont\",\"id\":3}", "GenericError", "The VM is shutting down");
    check_status(&f, "shutdown", FALSE);
    fixture_teardown(&f);
}

static void test_quit_shuts_down_after_reply(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    g_autoptr(JsonObject) r = call(&f, "{\"execute\":\"quit\"}");
    assert_empty_return(r, false);
    /* the reply comes first; the shutdown runs from the main loop */
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING);
    g_assert_cmpint(f.m.exits, ==, 0);
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!f.m.exits && g_get_monotonic_time() < deadline)
        g_main_context_iteration(NULL, FALSE);
    g_assert_cmpint(f.m.exits, ==, 1);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_SHUTDOWN);
    fixture_teardown(&f);
}

static void test_query_name(void)
{
    struct fixture f;
    fixture_setup(&f, "guest-one", false);
    negotiate(&f);
    g_autoptr(JsonObject) r = call(&f, "{\"execute\":\"query-name\"}");
    JsonObject *ret = member_object(r, "return");
    g_assert_cmpuint(json_object_get_size(ret), ==, 1);
    g_assert_cmpstr(member_string(ret, "name"), ==, "guest-one");
    fixture_teardown(&f);

    fixture_setup(&f, NULL, false);
    negotiate(&f);
    g_autoptr(JsonObject) r2 = call(&f, "{\"execute\":\"query-name\"}");
    assert_empty_return(r2, false);
    fixture_teardown(&f);
}

static void check_version_object(JsonObject *v)
{
    g_assert_cmpuint(json_object_get_size(v), ==, 2);
    JsonObject *qemu = member_object(v, "qemu");
    g_assert_cmpuint(json_object_get_size(qemu), ==, 3);
    g_assert_cmpint(member_int(qemu, "major"), ==, DESKVM_VERSION_MAJOR);
    g_assert_cmpint(member_int(qemu, "minor"), ==, DESKVM_VERSION_MINOR);
    g_assert_cmpint(member_int(qemu, "micro"), ==, DESKVM_VERSION_MICRO);
    g_assert_cmpstr(member_string(v, "package"), ==, "deskvm-" PACKAGE_VERSION);
}

static void test_query_version(void)
{
    struct fixture f;
    fixture_setup(&f, NULL, false);
    negotiate(&f);
    g_autoptr(JsonObject) r = call(&f, "{\"execute\":\"query-version\"}");
    check_version_object(member_object(r, "return"));
    fixture_teardown(&f);
}

/* ------------------------------------------------------------------ greeting, events, lines */

static JsonObject *node_to_object(JsonNode *n)
{
    size_t len;
    g_autofree char *line = qmp_to_line(n, &len);
    json_node_unref(n);
    return parse_line(line, len);
}

static void test_greeting_shape(void)
{
    g_autoptr(JsonObject) g = node_to_object(qmp_greeting_new());
    g_assert_cmpuint(json_object_get_size(g), ==, 1);
    JsonObject *qmp = member_object(g, "QMP");
    g_assert_cmpuint(json_object_get_size(qmp), ==, 2);
    check_version_object(member_object(qmp, "version"));
    JsonNode *caps = json_object_get_member(qmp, "capabilities");
    g_assert_true(JSON_NODE_HOLDS_ARRAY(caps));
    g_assert_cmpuint(json_array_get_length(json_node_get_array(caps)), ==, 0);
}

static void check_timestamp(JsonObject *ev)
{
    JsonObject *ts = member_object(ev, "timestamp");
    g_assert_cmpuint(json_object_get_size(ts), ==, 2);
    gint64 secs = member_int(ts, "seconds");
    gint64 usecs = member_int(ts, "microseconds");
    gint64 now = (gint64)time(NULL);
    g_assert_cmpint(secs, >=, now - 5);
    g_assert_cmpint(secs, <=, now + 1);
    g_assert_cmpint(usecs, >=, 0);
    g_assert_cmpint(usecs, <, 1000000);
}

static void test_event_with_data(void)
{
    JsonObject *data = json_object_new();
    json_object_set_boolean_member(data, "guest", TRUE);
    json_object_set_string_member(data, "reason", "guest-shutdown");
    g_autoptr(JsonObject) ev = node_to_object(qmp_event_new("SHUTDOWN", data));
    g_assert_cmpuint(json_object_get_size(ev), ==, 3);
    g_assert_cmpstr(member_string(ev, "event"), ==, "SHUTDOWN");
    JsonObject *d = member_object(ev, "data");
    g_assert_cmpuint(json_object_get_size(d), ==, 2);
    g_assert_true(member_bool(d, "guest"));
    g_assert_cmpstr(member_string(d, "reason"), ==, "guest-shutdown");
    check_timestamp(ev);
}

static void test_event_without_data(void)
{
    g_autoptr(JsonObject) ev = node_to_object(qmp_event_new("STOP", NULL));
    g_assert_cmpuint(json_object_get_size(ev), ==, 2);
    g_assert_cmpstr(member_string(ev, "event"), ==, "STOP");
    g_assert_false(json_object_has_member(ev, "data"));
    check_timestamp(ev);
}

static void test_line_is_one_crlf_line(void)
{
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "text", "line one\nline two\r\n");
    JsonObject *inner = json_object_new();
    json_object_set_int_member(inner, "n", 1);
    json_object_set_object_member(o, "nested", inner);
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    size_t len = 0;
    g_autofree char *line = qmp_to_line(n, &len);
    json_node_unref(n);
    g_assert_cmpuint(len, ==, strlen(line));
    g_assert_cmpuint(len, >, 2);
    g_assert_cmpint(line[len - 2], ==, '\r');
    g_assert_cmpint(line[len - 1], ==, '\n');
    g_assert_null(memchr(line, '\n', len - 1));
    g_assert_null(memchr(line, '\r', len - 2));
    g_autoptr(JsonObject) back = parse_line(line, len);
    g_assert_cmpstr(member_string(back, "text"), ==, "line one\nline two\r\n");
    g_assert_cmpint(member_int(member_object(back, "nested"), "n"), ==, 1);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    log_set_level(LOG_LEVEL_ERROR); /* the VM's info lines would clutter the TAP output */

    g_test_add_func("/qmp/negotiation/command-before-capabilities", test_command_before_negotiation);
    g_test_add_func("/qmp/negotiation/capabilities-returns-empty-object",
                    test_capabilities_returns_empty_object);
    g_test_add_func("/qmp/negotiation/second-capabilities-rejected", test_second_capabilities_rejected);
    g_test_add_func("/qmp/negotiation/enable-rejected", test_capabilities_enable_rejected);
    g_test_add_func("/qmp/id/echoed-on-success-and-error", test_id_echoed);
    g_test_add_func("/qmp/envelope/unknown-command", test_unknown_command);
    g_test_add_func("/qmp/envelope/malformed-json", test_malformed_json);
    g_test_add_func("/qmp/envelope/non-object-input", test_non_object_input);
    g_test_add_func("/qmp/envelope/member-errors", test_envelope_errors);
    g_test_add_func("/qmp/envelope/framing-error", test_framing_error);
    g_test_add_func("/qmp/args/unexpected", test_args_unexpected);
    g_test_add_func("/qmp/args/wrong-type", test_args_wrong_type);
    g_test_add_func("/qmp/args/valid-reach-handler", test_args_valid_reach_handler);
    g_test_add_func("/qmp/args/missing", test_args_missing);
    g_test_add_func("/qmp/handler/error-classes", test_handler_error_classes);
    g_test_add_func("/qmp/handler/non-object-return", test_handler_non_object_return);
    g_test_add_func("/qmp/handler/error-class-names", test_error_class_names);
    g_test_add_func("/qmp/registry/duplicate-returns-false", test_register_duplicate_returns_false);
    g_test_add_func("/qmp/registry/query-commands-lists-all", test_query_commands_lists_all);
    g_test_add_func("/qmp/vm/query-status-follows-stop-cont", test_query_status_follows_stop_cont);
    g_test_add_func("/qmp/vm/query-status-prelaunch", test_query_status_prelaunch);
    g_test_add_func("/qmp/vm/reset-and-powerdown-reach-machine", test_reset_and_powerdown_reach_machine);
    g_test_add_func("/qmp/vm/cont-after-shutdown-fails", test_cont_after_shutdown_fails);
    g_test_add_func("/qmp/vm/quit-shuts-down-after-reply", test_quit_shuts_down_after_reply);
    g_test_add_func("/qmp/vm/query-name", test_query_name);
    g_test_add_func("/qmp/vm/query-version", test_query_version);
    g_test_add_func("/qmp/greeting/shape", test_greeting_shape);
    g_test_add_func("/qmp/event/with-data", test_event_with_data);
    g_test_add_func("/qmp/event/without-data", test_event_without_data);
    g_test_add_func("/qmp/line/one-crlf-terminated-line", test_line_is_one_crlf_line);
    return g_test_run();
}
