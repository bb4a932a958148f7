/* Proves chardev spec parsing and the none/file/unix backends: I/O, one client, drops, output limit. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "chardev.h"
#include "log.h"

/* Runs the default main context until COND holds or five seconds pass. */
#define PUMP_UNTIL(cond)                                                                                     \
    G_STMT_START                                                                                             \
    {                                                                                                        \
        gint64 deadline_ = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;                                      \
        while (!(cond) && g_get_monotonic_time() < deadline_)                                                \
            if (!g_main_context_iteration(NULL, FALSE))                                                      \
                g_usleep(1000);                                                                              \
    }                                                                                                        \
    G_STMT_END

struct events {
    GByteArray *received;
    int connects;
    int disconnects;
};

static void on_receive(void *opaque, const uint8_t *buf, size_t len)
{
    struct events *ev = opaque;
    g_byte_array_append(ev->received, buf, (guint)len);
}

static void on_event(void *opaque, bool connected)
{
    struct events *ev = opaque;
    if (connected)
        ev->connects++;
    else
        ev->disconnects++;
}

static void events_init(struct events *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->received = g_byte_array_new();
}

static void events_clear(struct events *ev)
{
    g_byte_array_unref(ev->received);
}

struct tmp {
    char *dir;
    char *path;
};

static void tmp_init(struct tmp *t, const char *name)
{
    t->dir = g_dir_make_tmp("dvmXXXXXX", NULL); /* short: sun_path holds 107 bytes */
    g_assert_nonnull(t->dir);
    t->path = g_build_filename(t->dir, name, NULL);
}

static void tmp_clear(struct tmp *t)
{
    g_unlink(t->path);
    g_rmdir(t->dir);
    g_free(t->path);
    g_free(t->dir);
}

static struct chardev *open_spec(const char *text)
{
    struct chardev_spec spec;
    char *err = NULL;
    if (!chardev_spec_parse(text, &spec, &err))
        g_error("chardev_spec_parse(\"%s\"): %s", text, err);
    struct chardev *chr = chardev_open(&spec, &err);
    if (!chr)
        g_error("chardev_open(\"%s\"): %s", text, err);
    g_assert_null(err);
    chardev_spec_clear(&spec);
    return chr;
}

static struct chardev *open_unix(const char *path, struct events *ev)
{
    g_autofree char *text = g_strdup_printf("unix:%s", path);
    struct chardev *chr = open_spec(text);
    chardev_set_handlers(chr, on_receive, on_event, ev);
    return chr;
}

/* A non-blocking client connected to PATH. */
static int client_connect(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(fd, >=, 0);
    g_assert_no_errno(connect(fd, (struct sockaddr *)&sun, sizeof(sun)));
    g_assert_no_errno(fcntl(fd, F_SETFL, O_NONBLOCK));
    return fd;
}

/* Reads what the client has, running the main loop in between, until WANT bytes arrived (or EOF if want is 0
 * or more than ever comes). Returns true on EOF. */
static bool client_read(int fd, GByteArray *into, size_t want)
{
    bool eof = false;
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!eof && (want == 0 || into->len < want) && g_get_monotonic_time() < deadline) {
        uint8_t buf[65536];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            g_byte_array_append(into, buf, (guint)n);
            continue;
        }
        if (n == 0) {
            eof = true;
            break;
        }
        g_assert_cmpint(errno, ==, EAGAIN);
        if (!g_main_context_iteration(NULL, FALSE))
            g_usleep(1000);
    }
    return eof;
}

static void assert_bytes(GByteArray *got, const char *want)
{
    g_assert_cmpmem(got->data, got->len, want, strlen(want));
}

/* ------------------------------------------------------------------ spec */

static void parse_ok(const char *s, enum chardev_kind kind, const char *path)
{
    struct chardev_spec spec;
    char *err = NULL;
    if (!chardev_spec_parse(s, &spec, &err))
        g_error("chardev_spec_parse(\"%s\"): %s", s, err);
    g_assert_cmpint(spec.kind, ==, kind);
    g_assert_cmpstr(spec.path, ==, path);
    chardev_spec_clear(&spec);
    g_assert_null(spec.path);
}

static void parse_bad(const char *s, const char *want)
{
    struct chardev_spec spec;
    char *err = NULL;
    if (chardev_spec_parse(s, &spec, &err))
        g_error("chardev_spec_parse(\"%s\") accepted it", s);
    g_assert_nonnull(err);
    if (!strstr(err, want))
        g_error("chardev_spec_parse(\"%s\"): unexpected message: %s", s, err);
    g_free(err);
}

static void test_spec_parse(void)
{
    parse_ok("none", CHARDEV_NONE, NULL);
    parse_ok("stdio", CHARDEV_STDIO, NULL);
    parse_ok("file:/tmp/serial.log", CHARDEV_FILE, "/tmp/serial.log");
    parse_ok("unix:/tmp/serial.sock", CHARDEV_UNIX, "/tmp/serial.sock");
    parse_ok("unix:/tmp/serial.sock,server=on,wait=off", CHARDEV_UNIX, "/tmp/serial.sock");
    parse_ok("unix:/tmp/serial.sock,server,nowait", CHARDEV_UNIX, "/tmp/serial.sock");
    g_autofree char *cwd = g_get_current_dir();
    g_autofree char *abs = g_build_filename(cwd, "serial.log", NULL);
    parse_ok("file:serial.log", CHARDEV_FILE, abs);
}

static void test_spec_errors(void)
{
    parse_bad("file:", "file: needs a path");
    parse_bad("unix:", "unix: needs a path");
    parse_bad("unix:/tmp/s.sock,wait=on", "'wait=on' is not supported");
    parse_bad("tcp:1.2.3.4:5", "'tcp:1.2.3.4:5' is not stdio, file:PATH, unix:PATH or none");
    parse_bad("tcp:127.0.0.1:5", "is not stdio, file:PATH, unix:PATH or none");
    parse_bad("bogus", "'bogus' is not stdio, file:PATH, unix:PATH or none");
    parse_bad("", "is not stdio");
    parse_bad("NONE", "is not stdio");
}

static void test_spec_to_string(void)
{
    static const char *const specs[] = {"none", "stdio", "file:/tmp/a.log", "unix:/tmp/a.sock"};
    for (size_t i = 0; i < G_N_ELEMENTS(specs); i++) {
        struct chardev_spec spec;
        char *err = NULL;
        g_assert_true(chardev_spec_parse(specs[i], &spec, &err));
        g_autofree char *s = chardev_spec_to_string(&spec);
        g_assert_cmpstr(s, ==, specs[i]);
        chardev_spec_clear(&spec);
    }
}

/* ------------------------------------------------------------------ none and file */

static void test_none_drops_everything(void)
{
    struct chardev *chr = open_spec("none");
    g_assert_false(chardev_is_connected(chr));
    g_assert_cmpuint(chardev_write(chr, "hello", 5), ==, 0);
    g_assert_cmpuint(chardev_write(chr, "abc", 3), ==, 0);
    g_assert_cmpuint(chardev_dropped_bytes(chr), ==, 8);
    chardev_flush(chr, 10);
    chardev_close(chr);
    chardev_close(NULL);
}

static char *read_file(const char *path)
{
    char *content = NULL;
    g_assert_true(g_file_get_contents(path, &content, NULL, NULL));
    return content;
}

static void test_file_writes_land_in_file(void)
{
    struct tmp t;
    tmp_init(&t, "serial.log");
    g_autofree char *spec = g_strdup_printf("file:%s", t.path);
    struct chardev *chr = open_spec(spec);
    g_assert_true(chardev_is_connected(chr));
    g_assert_cmpuint(chardev_write(chr, "hello ", 6), ==, 6);
    g_assert_cmpuint(chardev_write(chr, "world\n", 6), ==, 6);
    chardev_flush(chr, 1000);
    g_autofree char *mid = read_file(t.path);
    g_assert_cmpstr(mid, ==, "hello world\n");
    g_assert_cmpuint(chardev_write(chr, "bye\n", 4), ==, 4);
    g_assert_cmpuint(chardev_dropped_bytes(chr), ==, 0);
    chardev_close(chr);
    g_autofree char *end = read_file(t.path);
    g_assert_cmpstr(end, ==, "hello world\nbye\n");
    tmp_clear(&t);
}

static void test_file_truncated_on_open(void)
{
    struct tmp t;
    tmp_init(&t, "serial.log");
    g_assert_true(g_file_set_contents(t.path, "old content from the last run\n", -1, NULL));
    g_autofree char *spec = g_strdup_printf("file:%s", t.path);
    struct chardev *chr = open_spec(spec);
    g_autofree char *empty = read_file(t.path);
    g_assert_cmpstr(empty, ==, "");
    g_assert_cmpuint(chardev_write(chr, "new\n", 4), ==, 4);
    chardev_close(chr);
    g_autofree char *content = read_file(t.path);
    g_assert_cmpstr(content, ==, "new\n");
    tmp_clear(&t);
}

static void test_file_open_error(void)
{
    struct chardev_spec spec = {.kind = CHARDEV_FILE, .path = (char *)"/nonexistent-dvm/serial.log"};
    char *err = NULL;
    g_assert_null(chardev_open(&spec, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, "/nonexistent-dvm/serial.log"));
    g_assert_nonnull(strstr(err, g_strerror(ENOENT)));
    g_free(err);
}

/* ------------------------------------------------------------------ unix socket */

static void test_unix_client_round_trip(void)
{
    struct tmp t;
    tmp_init(&t, "s");
    struct events ev;
    events_init(&ev);
    struct chardev *chr = open_unix(t.path, &ev);
    GStatBuf st;
    g_assert_cmpint(g_lstat(t.path, &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    g_assert_false(chardev_is_connected(chr));

    int c = client_connect(t.path);
    PUMP_UNTIL(ev.connects == 1);
    g_assert_cmpint(ev.connects, ==, 1);
    g_assert_cmpint(ev.disconnects, ==, 0);
    g_assert_true(chardev_is_connected(chr));

    g_assert_cmpint(write(c, "ping", 4), ==, 4);
    PUMP_UNTIL(ev.received->len >= 4);
    assert_bytes(ev.received, "ping");

    g_assert_cmpuint(chardev_write(chr, "pong\r\n", 6), ==, 6);
    g_autoptr(GByteArray) got = g_byte_array_new();
    g_assert_false(client_read(c, got, 6));
    assert_bytes(got, "pong\r\n");

    close(c);
    PUMP_UNTIL(ev.disconnects == 1);
    g_assert_cmpint(ev.disconnects, ==, 1);
    g_assert_cmpint(ev.connects, ==, 1);
    g_assert_false(chardev_is_connected(chr));
    g_assert_cmpuint(chardev_dropped_bytes(chr), ==, 0);

    chardev_close(chr);
    events_clear(&ev);
    tmp_clear(&t);
}

static void test_unix_second_client_refused(void)
{
    struct tmp t;
    tmp_init(&t, "s");
    struct events ev;
    events_init(&ev);
    struct chardev *chr = open_unix(t.path, &ev);

    int c1 = client_connect(t.path);
    PUMP_UNTIL(ev.connects == 1);
    g_assert_cmpint(ev.connects, ==, 1);

    int c2 = client_connect(t.path);
    g_autoptr(GByteArray) refused = g_byte_array_new();
    g_assert_true(client_read(c2, refused, 0));
    assert_bytes(refused, "deskvm: this character device already has a client\r\n");
    close(c2);
    g_assert_cmpint(ev.connects, ==, 1);
    g_assert_cmpint(ev.disconnects, ==, 0);

    /* the first client is unaffected */
    g_assert_cmpuint(chardev_write(chr, "still yours", 11), ==, 11);
    g_autoptr(GByteArray) got = g_byte_array_new();
    client_read(c1, got, 11);
    assert_bytes(got, "still yours");
    g_assert_cmpint(write(c1, "k", 1), ==, 1);
    PUMP_UNTIL(ev.received->len >= 1);
    assert_bytes(ev.received, "k");

    close(c1);
    chardev_close(chr);
    events_clear(&ev);
    tmp_clear(&t);
}

static void test_unix_writes_without_client_dropped(void)
{
    struct tmp t;
    tmp_init(&t, "s");
    struct events ev;
    events_init(&ev);
    struct chardev *chr = open_unix(t.path, &ev);
    g_assert_cmpuint(chardev_write(chr, "nobody hears this", 17), ==, 0);
    g_assert_cmpuint(chardev_dropped_bytes(chr), ==, 17);

    /* a client that connects later gets only what is written after it connected */
    int c = client_connect(t.path);
    PUMP_UNTIL(ev.connects == 1);
    g_assert_cmpuint(chardev_write(chr, "hi", 2), ==, 2);
    g_autoptr(GByteArray) got = g_byte_array_new();
    client_read(c, got, 2);
    assert_bytes(got, "hi");

    /* after the client leaves, output is dropped again */
    close(c);
    PUMP_UNTIL(ev.disconnects == 1);
    g_assert_cmpuint(chardev_write(chr, "gone", 4), ==, 0);
    g_assert_cmpuint(chardev_dropped_bytes(chr), ==, 21);

    /* and a new client can connect */
    int c2 = client_connect(t.path);
    PUMP_UNTIL(ev.connects == 2);
    g_assert_cmpint(ev.connects, ==, 2);
    g_assert_cmpuint(chardev_write(chr, "again", 5), ==, 5);
    g_autoptr(GByteArray) got2 = g_byte_array_new();
    client_read(c2, got2, 5);
    assert_bytes(got2, "again");
    close(c2);

    chardev_close(chr);
    events_clear(&ev);
    tmp_clear(&t);
}

static void test_unix_write_after_client_vanished(void)
{
    struct tmp t;
    tmp_init(&t, "s");
    struct events ev;
    events_init(&ev);
    struct chardev *chr = open_unix(t.path, &ev);
    int c = client_connect(t.path);
    PUMP_UNTIL(ev.connects == 1);
    close(c);
    /* the main loop has not noticed yet: the write fails with EPIPE and the bytes are counted as dropped */
    chardev_write(chr, "lost", 4);
    g_assert_cmpuint(chardev_dropped_bytes(chr), ==, 4);
    PUMP_UNTIL(ev.disconnects == 1);
    g_assert_cmpint(ev.disconnects, ==, 1);
    g_assert_false(chardev_is_connected(chr));
    chardev_close(chr);
    events_clear(&ev);
    tmp_clear(&t);
}

static void test_unix_output_limit(void)
{
    struct tmp t;
    tmp_init(&t, "s");
    struct events ev;
    events_init(&ev);
    struct chardev *chr = open_unix(t.path, &ev);
    int c = client_connect(t.path);
    PUMP_UNTIL(ev.connects == 1);
    g_assert_true(chardev_is_connected(chr));

    /* the client reads nothing: the socket buffer fills, then the queue up to CHARDEV_OUTPUT_LIMIT */
    enum { CHUNK = 16 * 1024 };
    uint8_t chunk[CHUNK];
    for (size_t i = 0; i < CHUNK; i++)
        chunk[i] = (uint8_t)(i % 251);
    size_t requested = 0, accepted = 0, last = CHUNK;
    for (int i = 0; i < 4096 && last == CHUNK; i++) {
        last = chardev_write(chr, chunk, CHUNK);
        requested += CHUNK;
        accepted += last;
    }
    g_assert_cmpuint(last, <, CHUNK);
    g_assert_cmpuint(accepted, >=, CHARDEV_OUTPUT_LIMIT);
    g_assert_cmpuint(chardev_dropped_bytes(chr), ==, requested - accepted);
    /* once the queue is full, nothing more is taken */
    g_assert_cmpuint(chardev_write(chr, chunk, 100), ==, 0);
    g_assert_cmpuint(chardev_dropped_bytes(chr), ==, requested - accepted + 100);

    /* when the client reads, everything that was accepted arrives, in order */
    g_autoptr(GByteArray) got = g_byte_array_new();
    client_read(c, got, accepted);
    g_assert_cmpuint(got->len, ==, accepted);
    for (size_t k = 0; k < got->len; k++)
        if (got->data[k] != chunk[k % CHUNK])
            g_error("byte %zu is %u, expected %u", k, got->data[k], chunk[k % CHUNK]);
    /* and then there is room again */
    g_assert_cmpuint(chardev_write(chr, "more", 4), ==, 4);
    g_byte_array_set_size(got, 0);
    client_read(c, got, 4);
    assert_bytes(got, "more");

    close(c);
    chardev_close(chr);
    events_clear(&ev);
    tmp_clear(&t);
}

struct writer {
    struct chardev *chr;
    int count;
};

static gpointer writer_thread(gpointer data)
{
    struct writer *w = data;
    for (int i = 0; i < w->count; i++) {
        char line[16];
        int n = g_snprintf(line, sizeof(line), "%06d\n", i);
        g_assert_cmpuint(chardev_write(w->chr, line, (size_t)n), ==, (size_t)n);
    }
    return NULL;
}

static void test_unix_write_from_other_thread(void)
{
    struct tmp t;
    tmp_init(&t, "s");
    struct events ev;
    events_init(&ev);
    struct chardev *chr = open_unix(t.path, &ev);
    int c = client_connect(t.path);
    PUMP_UNTIL(ev.connects == 1);

    /* 2000 lines of 7 bytes stay well below the output limit, so none may be lost */
    struct writer w = {chr, 2000};
    GThread *th = g_thread_new("writer", writer_thread, &w);
    g_autoptr(GByteArray) got = g_byte_array_new();
    client_read(c, got, 2000 * 7);
    g_thread_join(th);
    g_assert_cmpuint(got->len, ==, 2000 * 7);
    for (int i = 0; i < 2000; i++) {
        char line[16];
        g_snprintf(line, sizeof(line), "%06d\n", i);
        g_assert_cmpmem(got->data + i * 7, 7, line, 7);
    }
    g_assert_cmpuint(chardev_dropped_bytes(chr), ==, 0);
    close(c);
    chardev_close(chr);
    events_clear(&ev);
    tmp_clear(&t);
}

static void test_unix_path_in_use(void)
{
    struct tmp t;
    tmp_init(&t, "s");
    struct events ev;
    events_init(&ev);
    struct chardev *chr = open_unix(t.path, &ev);

    struct chardev_spec spec = {.kind = CHARDEV_UNIX, .path = t.path};
    char *err = NULL;
    g_assert_null(chardev_open(&spec, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, "in use"));
    g_free(err);

    /* the failed open left the live socket alone */
    g_assert_true(g_file_test(t.path, G_FILE_TEST_EXISTS));
    int c = client_connect(t.path);
    PUMP_UNTIL(ev.connects == 1);
    g_assert_cmpint(ev.connects, ==, 1);
    close(c);
    chardev_close(chr);
    events_clear(&ev);
    tmp_clear(&t);
}

static void test_unix_close_removes_socket_file(void)
{
    struct tmp t;
    tmp_init(&t, "s");
    struct events ev;
    events_init(&ev);
    struct chardev *chr = open_unix(t.path, &ev);
    int c = client_connect(t.path);
    PUMP_UNTIL(ev.connects == 1);
    g_assert_true(g_file_test(t.path, G_FILE_TEST_EXISTS));
    chardev_close(chr);
    g_assert_false(g_file_test(t.path, G_FILE_TEST_EXISTS));
    /* the client sees the end of the stream */
    g_autoptr(GByteArray) got = g_byte_array_new();
    g_assert_true(client_read(c, got, 0));
    g_assert_cmpuint(got->len, ==, 0);
    close(c);
    /* no watch of the closed chardev may fire afterwards */
    for (int i = 0; i < 10; i++)
        g_main_context_iteration(NULL, FALSE);
    events_clear(&ev);
    tmp_clear(&t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* as deskvm's main() does: a write to a vanished client must fail with EPIPE, not kill the process */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_ERROR);

    g_test_add_func("/chardev/spec/parse", test_spec_parse);
    g_test_add_func("/chardev/spec/errors", test_spec_errors);
    g_test_add_func("/chardev/spec/to-string", test_spec_to_string);
    g_test_add_func("/chardev/none/drops-and-counts-writes", test_none_drops_everything);
    g_test_add_func("/chardev/file/writes-land-in-file", test_file_writes_land_in_file);
    g_test_add_func("/chardev/file/truncated-on-open", test_file_truncated_on_open);
    g_test_add_func("/chardev/file/open-error-names-path", test_file_open_error);
    g_test_add_func("/chardev/unix/client-round-trip", test_unix_client_round_trip);
    g_test_add_func("/chardev/unix/second-client-refused", test_unix_second_client_refused);
    g_test_add_func("/chardev/unix/writes-without-client-dropped", test_unix_writes_without_client_dropped);
    g_test_add_func("/chardev/unix/write-after-client-vanished", test_unix_write_after_client_vanished);
    g_test_add_func("/chardev/unix/output-limit", test_unix_output_limit);
    g_test_add_func("/chardev/unix/write-from-other-thread", test_unix_write_from_other_thread);
    g_test_add_func("/chardev/unix/path-in-use", test_unix_path_in_use);
    g_test_add_func("/chardev/unix/close-removes-socket-file", test_unix_close_removes_socket_file);
    return g_test_run();
}
