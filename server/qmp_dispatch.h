/* QMP command registry and request handling: turns one JSON text into one response, following QEMU's QMP rules
 * (capabilities negotiation, envelope checks, argument type checks, "id" echo, error classes). No sockets here. */
#ifndef DESKVM_QMP_DISPATCH_H
#define DESKVM_QMP_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#define QMP_ERROR (qmp_error_quark())
GQuark qmp_error_quark(void);

/* QEMU's ErrorClass values. */
enum qmp_error_code {
    QMP_ERROR_GENERIC,
    QMP_ERROR_COMMAND_NOT_FOUND,
    QMP_ERROR_DEVICE_NOT_ACTIVE,
    QMP_ERROR_DEVICE_NOT_FOUND,
};
const char *qmp_error_class_name(int code);

enum qmp_arg_type {
    QMP_ARG_STRING,
    QMP_ARG_INT,
    QMP_ARG_NUMBER,
    QMP_ARG_BOOL,
    QMP_ARG_ARRAY,
    QMP_ARG_OBJECT,
    QMP_ARG_ANY,
};

struct qmp_arg {
    const char *name;
    enum qmp_arg_type type;
    bool optional;
};

/* Per-connection state the dispatcher needs. */
struct qmp_session {
    bool negotiated;
};

/* Returns the "return" value (a new node; NULL means {}), or NULL with *error set. args is never NULL. */
typedef JsonNode *(*qmp_handler)(void *opaque, struct qmp_session *session, JsonObject *args, GError **error);

struct qmp_command_def {
    const char *name;
    qmp_handler handler;
    const struct qmp_arg *args; /* terminated by {NULL}; NULL for no arguments */
};

struct qmp_dispatcher;

struct qmp_dispatcher *qmp_dispatcher_new(void);
void qmp_dispatcher_free(struct qmp_dispatcher *d);
/* Registers a command; the def must outlive the dispatcher (static tables). Returns false if the name is taken. */
bool qmp_dispatcher_register(struct qmp_dispatcher *d, const struct qmp_command_def *def, void *opaque);
/* Registers a module's table of n commands, all with the same opaque. */
void qmp_dispatcher_register_all(struct qmp_dispatcher *d, const struct qmp_command_def *defs, size_t n,
                                 void *opaque);
/* Names of all commands in registration order (the array and strings belong to the dispatcher). */
GPtrArray *qmp_dispatcher_command_names(struct qmp_dispatcher *d);

/* Handles one JSON text (or a framing error from json_stream) for a session; returns the response object. */
JsonNode *qmp_dispatcher_handle(struct qmp_dispatcher *d, struct qmp_session *session, const char *text, size_t len,
                                const char *framing_error);

/* {"QMP": {"version": ..., "capabilities": []}} */
JsonNode *qmp_greeting_new(void);
/* {"event": NAME, "data": DATA (omitted if NULL; consumed), "timestamp": {"seconds", "microseconds"}} */
JsonNode *qmp_event_new(const char *name, JsonObject *data);
/* One line of compact JSON followed by "\r\n", as QEMU sends. */
char *qmp_to_line(JsonNode *node, size_t *len);

#endif
