/* Proves json_stream splits a byte stream into exactly its JSON texts and enforces its limits. */
#include <stdbool.h>
#include <string.h>

#include <glib.h>

#include "json_stream.h"

/* Every callback as "text:<text>" or "error:<message>", in order. */
struct collector {
    GPtrArray *events;
};

static void collect(void *opaque, const char *text, size_t len, const char *error)
{
    struct collector *c = opaque;
    if (text) {
        g_assert_null(error);
        g_assert_cmpuint(strnlen(text, len), ==, len);
        g_ptr_array_add(c->events, g_strdup_printf("text:%.*s", (int)len, text));
    } else {
        g_assert_nonnull(error);
        g_assert_cmpuint(len, ==, 0);
        g_ptr_array_add(c->events, g_strdup_printf("error:%s", error));
    }
}

struct fixture {
    struct collector c;
    struct json_stream js;
};

static void fixture_init(struct fixture *f, size_t max_size, int max_depth)
{
    f->c.events = g_ptr_array_new_with_free_func(g_free);
    json_stream_init(&f->js, max_size, max_depth, collect, &f->c);
}

static void fixture_clear(struct fixture *f)
{
    json_stream_destroy(&f->js);
    g_ptr_array_unref(f->c.events);
}

static void feed(struct fixture *f, const char *s)
{
    json_stream_feed(&f->js, s, strlen(s));
}

/* Asserts the events so far are exactly the NULL-terminated list. */
static void expect_events(struct fixture *f, const char *const *want)
{
    guint n = 0;
    while (want[n])
        n++;
    bool same = f->c.events->len == n;
    for (guint i = 0; same && i < n; i++)
        same = !strcmp(f->c.events->pdata[i], want[i]);
    for (guint i = 0; !same && i < f->c.events->len; i++)
        g_test_message("event %u: %s", i, (const char *)f->c.events->pdata[i]);
    g_assert_cmpuint(f->c.events->len, ==, n);
    for (guint i = 0; i < n; i++)
        g_assert_cmpstr(f->c.events->pdata[i], ==, want[i]);
}

#define EXPECT(f, ...) expect_events((f), (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_NONE(f) g_assert_cmpuint((f)->c.events->len, ==, 0)

static void test_two_objects_one_feed(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 8);
    feed(&f, "{\"a\":1}{\"b\":[2]}");
    EXPECT(&f, "text:{\"a\":1}", "text:{\"b\":[2]}");
    fixture_clear(&f);
}

static void test_whitespace_between_texts_dropped(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 8);
    feed(&f, "  {\"a\": 1}\r\n\t{ \"b\" : 2 }\n");
    EXPECT(&f, "text:{\"a\": 1}", "text:{ \"b\" : 2 }");
    fixture_clear(&f);
}

static void test_object_fed_byte_by_byte(void)
{
    static const char text[] = "{\"execute\":\"query-status\",\"arguments\":{\"x\":[1,{\"y\":\"}\"}]}}";
    struct fixture f;
    fixture_init(&f, 1024, 8);
    for (size_t i = 0; i < strlen(text); i++) {
        EXPECT_NONE(&f);
        json_stream_feed(&f.js, text + i, 1);
    }
    g_autofree char *want = g_strdup_printf("text:%s", text);
    EXPECT(&f, want);
    fixture_clear(&f);
}

static void test_strings_hide_brackets_and_escapes(void)
{
    /* {"a":"}{][","b":"x\"}","c":"\\","d":1} : the string "\\" ends after its second backslash */
    static const char text[] = "{\"a\":\"}{][\",\"b\":\"x\\\"}\",\"c\":\"\\\\\",\"d\":1}";
    g_autofree char *want = g_strdup_printf("text:%s", text);

    struct fixture f;
    fixture_init(&f, 1024, 8);
    feed(&f, text);
    feed(&f, "[\"]\"]");
    EXPECT(&f, want, "text:[\"]\"]");
    fixture_clear(&f);

    /* the same split at every byte, so escape state crosses feed calls */
    fixture_init(&f, 1024, 8);
    for (size_t i = 0; i < strlen(text); i++)
        json_stream_feed(&f.js, text + i, 1);
    EXPECT(&f, want);
    fixture_clear(&f);
}

static void test_top_level_array(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 8);
    feed(&f, "[1,[2,{\"x\":[]}]] [3]");
    EXPECT(&f, "text:[1,[2,{\"x\":[]}]]", "text:[3]");
    fixture_clear(&f);
}

static void test_top_level_string(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 8);
    feed(&f, "\"ab}c\\\"d{\" \"e\"");
    EXPECT(&f, "text:\"ab}c\\\"d{\"", "text:\"e\"");
    fixture_clear(&f);
}

static void test_bare_token_waits_for_delimiter(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 8);
    feed(&f, "123");
    EXPECT_NONE(&f); /* may continue in the next read */
    feed(&f, "45");
    EXPECT_NONE(&f);
    feed(&f, "\n");
    EXPECT(&f, "text:12345");
    feed(&f, "nul");
    feed(&f, "l true");
    EXPECT(&f, "text:12345", "text:null");
    feed(&f, " ");
    EXPECT(&f, "text:12345", "text:null", "text:true");
    fixture_clear(&f);
}

static void test_bare_token_ended_by_structural_char(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 8);
    feed(&f, "42{\"a\":1}false[1]");
    EXPECT(&f, "text:42", "text:{\"a\":1}", "text:false", "text:[1]");
    fixture_clear(&f);

    /* the delimiter arrives at the start of the next feed */
    fixture_init(&f, 1024, 8);
    feed(&f, "7");
    feed(&f, "{}");
    EXPECT(&f, "text:7", "text:{}");
    fixture_clear(&f);
}

static void test_stray_close_emitted_alone(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 8);
    feed(&f, "}{\"a\":1}]");
    feed(&f, ",:");
    EXPECT(&f, "text:}", "text:{\"a\":1}", "text:]", "text:,", "text::");
    fixture_clear(&f);
}

static void test_too_deep_reports_once_and_recovers(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 3);
    feed(&f, "[[[1]]]");
    EXPECT(&f, "text:[[[1]]]"); /* exactly max_depth is fine */
    feed(&f, "[[[[[[[[ \"]]]]]]]]\" ]]]]]]]]");
    EXPECT(&f, "text:[[[1]]]", "error:JSON nesting too deep");
    feed(&f, "{\"ok\":{\"x\":[]}}");
    EXPECT(&f, "text:[[[1]]]", "error:JSON nesting too deep", "text:{\"ok\":{\"x\":[]}}");
    fixture_clear(&f);
}

static void test_too_deep_then_object_in_same_feed(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 2);
    feed(&f, "{\"a\":{\"b\":{\"c\":1}}}{\"next\":1}");
    EXPECT(&f, "error:JSON nesting too deep", "text:{\"next\":1}");
    fixture_clear(&f);
}

static void test_too_large_reports_once_and_recovers(void)
{
    struct fixture f;
    fixture_init(&f, 8, 8);
    feed(&f, "{\"a\":12}"); /* exactly max_size bytes */
    EXPECT(&f, "text:{\"a\":12}");
    feed(&f, "{\"a\":\"0123456789abcdef{[\"}");
    feed(&f, "{\"b\":1}");
    EXPECT(&f, "text:{\"a\":12}", "error:JSON text too large", "text:{\"b\":1}");
    fixture_clear(&f);
}

static void test_too_large_bare_token_and_string(void)
{
    struct fixture f;
    fixture_init(&f, 4, 8);
    feed(&f, "1234567 8 \"abcdefgh\" \"ab\"");
    EXPECT(&f, "error:JSON text too large", "text:8", "error:JSON text too large", "text:\"ab\"");
    fixture_clear(&f);
}

static void test_whitespace_only_emits_nothing(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 8);
    feed(&f, " \t\r\n  \n");
    EXPECT_NONE(&f);
    fixture_clear(&f);
}

static void test_incomplete_text_not_emitted(void)
{
    struct fixture f;
    fixture_init(&f, 1024, 8);
    feed(&f, "{\"a\":[1,2");
    feed(&f, "");
    EXPECT_NONE(&f);
    feed(&f, "]}");
    EXPECT(&f, "text:{\"a\":[1,2]}");
    fixture_clear(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/json-stream/two-objects-one-feed", test_two_objects_one_feed);
    g_test_add_func("/json-stream/whitespace-between-texts-dropped", test_whitespace_between_texts_dropped);
    g_test_add_func("/json-stream/object-fed-byte-by-byte", test_object_fed_byte_by_byte);
    g_test_add_func("/json-stream/strings-hide-brackets-and-escapes", test_strings_hide_brackets_and_escapes);
    g_test_add_func("/json-stream/top-level-array", test_top_level_array);
    g_test_add_func("/json-stream/top-level-string", test_top_level_string);
    g_test_add_func("/json-stream/bare-token-waits-for-delimiter", test_bare_token_waits_for_delimiter);
    g_test_add_func("/json-stream/bare-token-ended-by-structural-char",
                    test_bare_token_ended_by_structural_char);
    g_test_add_func("/json-stream/stray-close-emitted-alone", test_stray_close_emitted_alone);
    g_test_add_func("/json-stream/too-deep-reports-once-and-recovers",
                    test_too_deep_reports_once_and_recovers);
    g_test_add_func("/json-stream/too-deep-then-object-in-same-feed", test_too_deep_then_object_in_same_feed);
    g_test_add_func("/json-stream/too-large-reports-once-and-recovers",
                    test_too_large_reports_once_and_recovers);
    g_test_add_func("/json-stream/too-large-bare-token-and-string", test_too_large_bare_token_and_string);
    g_test_add_func("/json-stream/whitespace-only-emits-nothing", test_whitespace_only_emits_nothing);
    g_test_add_func("/json-stream/incomplete-text-not-emitted", test_incomplete_text_not_emitted);
    return g_test_run();
}
