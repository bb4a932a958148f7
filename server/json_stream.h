/* Splits a byte stream of concatenated JSON texts (as QMP sends them, with or without newlines) into single texts
 * for a JSON parser, enforcing a size and nesting limit. It only tracks brackets and strings; parsing is json-glib's
 * job. */
#ifndef DESKVM_JSON_STREAM_H
#define DESKVM_JSON_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <glib.h>

/* One complete JSON text (text != NULL), or a framing error (error != NULL) for a text that broke a limit and was
 * skipped. */
typedef void (*json_stream_fn)(void *opaque, const char *text, size_t len, const char *error);

struct json_stream {
    GString *buf;
    size_t max_size;
    int max_depth;
    int depth;
    int state;
    bool in_string;
    bool escape;
    bool skipping; /* the current text broke a limit: track its end without storing it */
    json_stream_fn emit;
    void *opaque;
};

void json_stream_init(struct json_stream *js, size_t max_size, int max_depth, json_stream_fn emit, void *opaque);
void json_stream_feed(struct json_stream *js, const char *data, size_t len);
void json_stream_destroy(struct json_stream *js);

#endif
