/* JSON text framing for the QMP stream. */
#include "json_stream.h"

enum {
    JS_TOP,    /* between texts */
    JS_NESTED, /* inside an object or array (depth >= 1) or a top-level string */
    JS_BARE,   /* a top-level number/keyword/garbage token */
};

void json_stream_init(struct json_stream *js, size_t max_size, int max_depth, json_stream_fn emit, void *opaque)
{
    js->buf = g_string_sized_new(256);
    js->max_size = max_size;
    js->max_depth = max_depth;
    js->depth = 0;
    js->state = JS_TOP;
    js->in_string = false;
    js->escape = false;
    js->skipping = false;
    js->emit = emit;
    js->opaque = opaque;
}

void json_stream_destroy(struct json_stream *js)
{
    if (js->buf)
        g_string_free(js->buf, TRUE);
    js->buf = NULL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_structural(char c)
{
    return c == '{' || c == '}' || c == '[' || c == ']' || c == '"' || c == ',' || c == ':';
}

static void finish(struct json_stream *js)
{
    if (!js->skipping)
        js->emit(js->opaque, js->buf->str, js->buf->len, NULL);
    g_string_truncate(js->buf, 0);
    js->state = JS_TOP;
    js->depth = 0;
    js->in_string = false;
    js->escape = false;
    js->skipping = false;
}

static void fail(struct json_stream *js, const char *why)
{
    if (js->skipping)
        return;
    js->skipping = true;
    g_string_truncate(js->buf, 0);
    js->emit(js->opaque, NULL, 0, why);
}

static void append(struct json_stream *js, char c)
{
    if (js->skipping)
        return;
    if (js->buf->len >= js->max_size) {
        fail(js, "JSON text too large");
        return;
    }
    g_string_append_c(js->buf, c);
}

void json_stream_feed(struct json_stream *js, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        switch (js->state) {
        case JS_TOP:
            if (is_space(c))
                break;
            append(js, c);
            if (c == '{' || c == '[') {
                js->depth = 1;
                js->state = JS_NESTED;
            } else if (c == '"') {
                js->in_string = true;
                js->state = JS_NESTED;
            } else if (is_structural(c)) {
                finish(js); /* a stray '}' or ',': let the parser report it */
            } else {
                js->state = JS_BARE;
            }
            break;
        case JS_BARE:
            if (is_space(c) || is_structural(c)) {
                finish(js);
                i--; /* this character starts the next text */
                break;
            }
            append(js, c);
            break;
        case JS_NESTED:
            append(js, c);
            if (js->in_string) {
                if (js->escape)
                    js->escape = false;
                else if (c == '\\')
                    js->escape = true;
                else if (c == '"') {
                    js->in_string = false;
                    if (js->depth == 0)
                        finish(js);
                }
            } else if (c == '"') {
                js->in_string = true;
            } else if (c == '{' || c == '[') {
                if (++js->depth > js->max_depth)
                    fail(js, "JSON nesting too deep");
            } else if (c == '}' || c == ']') {
                if (--js->depth == 0)
                    finish(js);
            }
            break;
        }
    }
    /* A bare token at the very end of a read may continue in the next read, so it is not emitted here. */
}
