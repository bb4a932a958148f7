/* query-spice and the SPICE_* events (see qmp_spice.h). */
#include "qmp_spice.h"

#include <string.h>

#include "spice_frontend.h"

struct qmp_spice {
    struct spice *s;
    struct qmp_server *server;
};

static void add_string(JsonBuilder *b, const char *name, const char *value)
{
    json_builder_set_member_name(b, name);
    json_builder_add_string_value(b, value);
}

static void add_int(JsonBuilder *b, const char *name, gint64 value)
{
    json_builder_set_member_name(b, name);
    json_builder_add_int_value(b, value);
}

/* QEMU's SpiceBasicInfo: host, port (a string), family. */
static void add_basic(JsonBuilder *b, const char *host, const char *port, const char *family)
{
    add_string(b, "host", host);
    add_string(b, "port", port);
    add_string(b, "family", family);
}

static void add_channel(JsonBuilder *b, const struct spice_channel_desc *c)
{
    add_basic(b, c->host, c->port, c->family);
    add_int(b, "connection-id", c->connection_id);
    add_int(b, "channel-type", c->channel_type);
    add_int(b, "channel-id", c->channel_id);
    json_builder_set_member_name(b, "tls");
    json_builder_add_boolean_value(b, c->tls);
}

static JsonNode *cmd_query_spice(void *opaque, struct qmp_session *session, JsonObject *args, GError **error)
{
    struct qmp_spice *q = opaque;
    (void)session;
    (void)args;
    (void)error;
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "enabled");
    json_builder_add_boolean_value(b, q->s != NULL);
    json_builder_set_member_name(b, "migrated");
    json_builder_add_boolean_value(b, FALSE);
    if (q->s) {
        struct spice_query info;
        spice_query(q->s, &info);
        add_string(b, "host", info.server.host);
        if (info.port)
            add_int(b, "port", info.port);
        if (info.tls_port)
            add_int(b, "tls-port", info.tls_port);
        add_string(b, "auth", info.server.auth);
        add_string(b, "compiled-version", info.compiled_version);
        add_string(b, "mouse-mode", info.mouse_mode);
        json_builder_set_member_name(b, "agent-connected");
        json_builder_add_boolean_value(b, info.agent_connected);
        json_builder_set_member_name(b, "channels");
        json_builder_begin_array(b);
        for (unsigned i = 0; i < info.nchannels; i++) {
            json_builder_begin_object(b);
            add_channel(b, &info.channels[i]);
            json_builder_end_object(b);
        }
        json_builder_end_array(b);
        g_free(info.channels);
    }
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

static void on_spice_event(void *opaque, enum spice_event_kind kind, const struct spice_server_desc *server,
                           const struct spice_channel_desc *client)
{
    struct qmp_spice *q = opaque;
    static const char *const names[] = {
        [SPICE_EVENT_CONNECTED] = "SPICE_CONNECTED",
        [SPICE_EVENT_INITIALIZED] = "SPICE_INITIALIZED",
        [SPICE_EVENT_DISCONNECTED] = "SPICE_DISCONNECTED",
    };
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "server");
    json_builder_begin_object(b);
    add_basic(b, server->host, server->port, server->family);
    if (kind == SPICE_EVENT_INITIALIZED)
        add_string(b, "auth", server->auth);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "client");
    json_builder_begin_object(b);
    if (kind == SPICE_EVENT_INITIALIZED)
        add_channel(b, client);
    else
        add_basic(b, client->host, client->port, client->family);
    json_builder_end_object(b);
    json_builder_end_object(b);
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    qmp_server_emit_event(q->server, names[kind], json_object_ref(json_node_get_object(root)));
}

/* Migration is not something deskvm does, so there is nowhere to send SPICE clients: say so clearly. */
static JsonNode *cmd_client_migrate_info(void *opaque, struct qmp_session *session, JsonObject *args,
                                         GError **error)
{
    struct qmp_spice *q = opaque;
    (void)session;
    if (strcmp(json_object_get_string_member(args, "protocol"), "spice"))
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter 'protocol' does not accept value '%s'",
                    json_object_get_string_member(args, "protocol"));
    else if (!q->s)
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "SPICE is not enabled (start deskvm with --spice)");
    else
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "deskvm does not migrate VMs, so SPICE clients cannot be sent to another host");
    return NULL;
}

static const struct qmp_arg client_migrate_info_args[] = {
    {"protocol", QMP_ARG_STRING, false},
    {"hostname", QMP_ARG_STRING, false},
    {"port", QMP_ARG_INT, true},
    {"tls-port", QMP_ARG_INT, true},
    {"cert-subject", QMP_ARG_STRING, true},
    {NULL},
};

static const struct qmp_command_def spice_commands[] = {
    {"query-spice", cmd_query_spice, NULL},
    {"client_migrate_info", cmd_client_migrate_info, client_migrate_info_args},
};

struct qmp_spice *qmp_spice_attach(struct qmp_dispatcher *d, struct qmp_server *server, struct spice *s)
{
    struct qmp_spice *q = g_new0(struct qmp_spice, 1);
    q->s = s;
    q->server = server;
    qmp_dispatcher_register_all(d, spice_commands, G_N_ELEMENTS(spice_commands), q);
    if (s)
        spice_set_event_listener(s, on_spice_event, q);
    return q;
}

void qmp_spice_detach(struct qmp_spice *q)
{
    g_free(q);
}
