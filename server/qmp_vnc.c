/* query-vnc, set_password, expire_password. */
#include "qmp_vnc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spice_frontend.h"
#include "vnc.h"

/* set_password and expire_password serve both remote-display protocols, as in QEMU; the spice ones are
 * handed to spice_frontend.h. */
struct qmp_vnc {
    struct vnc *v;
    struct spice *spice;
};

bool qmp_vnc_parse_expiry(const char *time, gint64 now_us, gint64 *expire_at)
{
    if (!strcmp(time, "now")) {
        *expire_at = -1;
        return true;
    }
    if (!strcmp(time, "never")) {
        *expire_at = 0;
        return true;
    }
    bool relative = time[0] == '+';
    const char *digits = relative ? time + 1 : time;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 12)
        return false;
    gint64 seconds = (gint64)strtoll(digits, NULL, 10);
    gint64 at = relative ? now_us + seconds * G_USEC_PER_SEC : seconds * G_USEC_PER_SEC;
    /* 0 means never to vnc_expire_password: an absolute time of 0 is long past. */
    *expire_at = at > 0 ? at : -1;
    return true;
}

static bool is_spice(JsonObject *args)
{
    return !strcmp(json_object_get_string_member(args, "protocol"), "spice");
}

static bool check_protocol(struct qmp_vnc *q, JsonObject *args, GError **error)
{
    const char *protocol = json_object_get_string_member(args, "protocol");
    if (!strcmp(protocol, "spice")) {
        if (!q->spice) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "SPICE is not enabled (start deskvm with --spice)");
            return false;
        }
        return true;
    }
    if (strcmp(protocol, "vnc")) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter 'protocol' does not accept value '%s'",
                    protocol);
        return false;
    }
    if (!q->v) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "VNC is not enabled (start deskvm with --vnc)");
        return false;
    }
    return true;
}

static JsonNode *cmd_set_password(void *opaque, struct qmp_session *session, JsonObject *args, GError **error)
{
    struct qmp_vnc *q = opaque;
    (void)session;
    if (!check_protocol(q, args, error))
        return NULL;
    if (is_spice(args)) {
        char *err = NULL;
        const char *connected =
            json_object_has_member(args, "connected") ? json_object_get_string_member(args, "connected") : NULL;
        if (!spice_set_password(q->spice, json_object_get_string_member(args, "password"), connected, &err)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "%s", err);
            g_free(err);
        }
        return NULL;
    }
    if (json_object_has_member(args, "connected")) {
        const char *connected = json_object_get_string_member(args, "connected");
        if (strcmp(connected, "keep")) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                        "VNC supports only connected=keep (clients already in stay connected)");
            return NULL;
        }
    }
    char *err = NULL;
    if (!vnc_set_password(q->v, json_object_get_string_member(args, "password"), &err)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "%s", err);
        g_free(err);
        return NULL;
    }
    return NULL;
}

static JsonNode *cmd_expire_password(void *opaque, struct qmp_session *session, JsonObject *args,
                                     GError **error)
{
    struct qmp_vnc *q = opaque;
    (void)session;
    if (!check_protocol(q, args, error))
        return NULL;
    const char *time = json_object_get_string_member(args, "time");
    gint64 at;
    if (!qmp_vnc_parse_expiry(time, g_get_real_time(), &at)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                    "Parameter 'time' expects now, never, +SECONDS or SECONDS since the epoch, not '%s'",
                    time);
        return NULL;
    }
    if (is_spice(args)) {
        char *err = NULL;
        if (!spice_expire_password(q->spice, at, &err)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "%s", err);
            g_free(err);
        }
        return NULL;
    }
    vnc_expire_password(q->v, at);
    return NULL;
}

/* QEMU's VncBasicInfo members, which the server and each client report alike. */
static void add_address(JsonBuilder *b, const char *host, const char *service, const char *family)
{
    json_builder_set_member_name(b, "host");
    json_builder_add_string_value(b, host);
    json_builder_set_member_name(b, "service");
    json_builder_add_string_value(b, service);
    json_builder_set_member_name(b, "family");
    json_builder_add_string_value(b, family);
}

static JsonNode *cmd_query_vnc(void *opaque, struct qmp_session *session, JsonObject *args, GError **error)
{
    struct qmp_vnc *q = opaque;
    (void)session;
    (void)args;
    (void)error;
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "enabled");
    json_builder_add_boolean_value(b, q->v != NULL);
    if (q->v) {
        struct vnc_server_info *info = g_new0(struct vnc_server_info, 1);
        vnc_query(q->v, info);
        add_address(b, info->host, info->service, info->family);
        json_builder_set_member_name(b, "auth");
        json_builder_add_string_value(b, info->auth);
        json_builder_set_member_name(b, "clients");
        json_builder_begin_array(b);
        for (unsigned i = 0; i < info->nclients; i++) {
            const struct vnc_client_info *c = &info->clients[i];
            json_builder_begin_object(b);
            add_address(b, c->host, c->service, c->family);
            json_builder_set_member_name(b, "websocket");
            json_builder_add_boolean_value(b, c->websocket);
            json_builder_end_object(b);
        }
        json_builder_end_array(b);
        g_free(info);
    }
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

static const struct qmp_arg set_password_args[] = {
    {"protocol", QMP_ARG_STRING, false},
    {"password", QMP_ARG_STRING, false},
    {"connected", QMP_ARG_STRING, true},
    {"display", QMP_ARG_STRING, true},
    {NULL},
};

static const struct qmp_arg expire_password_args[] = {
    {"protocol", QMP_ARG_STRING, false},
    {"time", QMP_ARG_STRING, false},
    {"display", QMP_ARG_STRING, true},
    {NULL},
};

static const struct qmp_command_def vnc_commands[] = {
    {"query-vnc", cmd_query_vnc, NULL},
    {"set_password", cmd_set_password, set_password_args},
    {"expire_password", cmd_expire_password, expire_password_args},
};

struct qmp_vnc *qmp_vnc_attach(struct qmp_dispatcher *d, struct vnc *v, struct spice *spice)
{
    struct qmp_vnc *q = g_new0(struct qmp_vnc, 1);
    q->v = v;
    q->spice = spice;
    qmp_dispatcher_register_all(d, vnc_commands, G_N_ELEMENTS(vnc_commands), q);
    return q;
}

void qmp_vnc_detach(struct qmp_vnc *q)
{
    g_free(q);
}
