/* Proves listen-address parsing (loopback only, QEMU flags) and opening/refusing/replacing sockets. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "listen.h"

static struct listen_spec parse_ok(const char *s)
{
    struct listen_spec spec;
    char *err = NULL;
    if (!listen_spec_parse(s, &spec, &err))
        g_error("listen_spec_parse(\"%s\") failed: %s", s, err);
    g_assert_null(err);
    return spec;
}

/* Asserts S is rejected with a message containing WANT1 and (if set) WANT2. */
static void parse_bad(const char *s, const char *want1, const char *want2)
{
    struct listen_spec spec;
    char *err = NULL;
    if (listen_spec_parse(s, &spec, &err))
        g_error("listen_spec_parse(\"%s\") accepted it", s);
    g_assert_nonnull(err);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        g_error("listen_spec_parse(\"%s\"): unexpected message: %s", s, err);
    g_assert_null(spec.path);
    g_assert_null(spec.host);
    g_free(err);
}

static void test_parse_unix(void)
{
    struct listen_spec s = parse_ok("unix:/tmp/deskvm.sock");
    g_assert_cmpint(s.kind, ==, LISTEN_UNIX);
    g_assert_cmpstr(s.path, ==, "/tmp/deskvm.sock");
    g_assert_null(s.host);
    listen_spec_clear(&s);
    g_assert_null(s.path);

    g_autofree char *cwd = g_get_current_dir();
    g_autofree char *want = g_build_filename(cwd, "sub", "q.sock", NULL);
    s = parse_ok("unix:sub/./q.sock");
    g_assert_cmpstr(s.path, ==, want);
    listen_spec_clear(&s);

    parse_bad("unix:", "unix: needs a path", NULL);
    g_autofree char *long_name = g_strnfill(120, 'a');
    g_autofree char *long_spec = g_strdup_printf("unix:/tmp/%s", long_name);
    parse_bad(long_spec, "is too long", "at most 107 bytes");
}

static void test_parse_tcp(void)
{
    struct listen_spec s = parse_ok("tcp:127.0.0.1:4444");
    g_assert_cmpint(s.kind, ==, LISTEN_TCP);
    g_assert_cmpstr(s.host, ==, "127.0.0.1");
    g_assert_cmpuint(s.port, ==, 4444);
    g_assert_null(s.path);
    listen_spec_clear(&s);

    s = parse_ok("tcp:[::1]:5555");
    g_assert_cmpstr(s.host, ==, "::1");
    g_assert_cmpuint(s.port, ==, 5555);
    listen_spec_clear(&s);

    s = parse_ok("tcp:::1:6");
    g_assert_cmpstr(s.host, ==, "::1");
    g_assert_cmpuint(s.port, ==, 6);
    listen_spec_clear(&s);

    s = parse_ok("tcp:localhost:0");
    g_assert_cmpstr(s.host, ==, "localhost");
    g_assert_cmpuint(s.port, ==, 0);
    listen_spec_clear(&s);

    s = parse_ok("tcp:127.9.8.7:65535");
    g_assert_cmpuint(s.port, ==, 65535);
    listen_spec_clear(&s);
}

static void test_parse_non_loopback_rejected(void)
{
    parse_bad("tcp:10.0.0.1:4444", "'10.0.0.1' is not a loopback address", NULL);
    parse_bad("tcp:0.0.0.0:4444", "'0.0.0.0'", "loopback");
    parse_bad("tcp:192.168.1.1:1", "loopback", NULL);
    parse_bad("tcp:[::]:4444", "'::'", "loopback");
    parse_bad("tcp:example.com:4444", "'example.com'", "loopback");
    parse_bad("tcp:localhost.example.com:4444", "loopback", NULL);
    parse_bad("tcp:127.0.0.1.example.com:4444", "loopback", NULL);
    parse_bad("tcp:[]:4444", "loopback", NULL);
}

static void test_parse_bad_port(void)
{
    parse_bad("tcp:127.0.0.1:70000", "'70000' is not a port number (0-65535)", NULL);
    parse_bad("tcp:127.0.0.1:65536", "'65536' is not a port number", NULL);
    parse_bad("tcp:127.0.0.1:x", "'x' is not a port number", NULL);
    parse_bad("tcp:127.0.0.1:", "'' is not a port number", NULL);
    parse_bad("tcp:127.0.0.1:-1", "is not a port number", NULL);
    parse_bad("tcp:127.0.0.1:12ab", "is not a port number", NULL);
    parse_bad("tcp:127.0.0.1:99999999999999999999999", "is not a port number", NULL);
    parse_bad("tcp:127.0.0.1", "'127.0.0.1' is not HOST:PORT", NULL);
    parse_bad("tcp::4444", "is not HOST:PORT", NULL);
    parse_bad("tcp:", "is not HOST:PORT", NULL);
}

static void test_parse_flags(void)
{
    static const char *const ok[] = {
        "unix:/tmp/a.sock,server",   "unix:/tmp/a.sock,server=on",          "unix:/tmp/a.sock,nowait",
        "unix:/tmp/a.sock,wait=off", "unix:/tmp/a.sock,server=on,wait=off", "tcp:127.0.0.1:1,server,nowait"};
    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        struct listen_spec s = parse_ok(ok[i]);
        listen_spec_clear(&s);
    }
    parse_bad("unix:/tmp/a.sock,wait=on", "'wait=on' is not supported", NULL);
    parse_bad("unix:/tmp/a.sock,server=on,wait=on", "'wait=on' is not supported", NULL);
    parse_bad("unix:/tmp/a.sock,wait", "'wait' is not supported", NULL);
    parse_bad("unix:/tmp/a.sock,server=off", "'server=off' is not supported", NULL);
    parse_bad("unix:/tmp/a.sock,bogus", "unknown flag 'bogus'", NULL);
    parse_bad("tcp:127.0.0.1:1,reconnect=5", "unknown flag 'reconnect=5'", NULL);
    parse_bad("unix:/tmp/a.sock,", "unknown flag ''", NULL);
}

static void test_parse_unknown_scheme(void)
{
    parse_bad("udp:127.0.0.1:1", "'udp:127.0.0.1:1' is not unix:PATH or tcp:HOST:PORT", NULL);
    parse_bad("/tmp/a.sock", "is not unix:PATH or tcp:HOST:PORT", NULL);
    parse_bad("", "empty address", NULL);
    parse_bad(",server", "empty address", NULL);
}

static void test_host_is_loopback(void)
{
    static const char *const yes[] = {"127.0.0.1", "127.1.2.3", "127.255.255.255",
                                      "::1",       "localhost", "0:0:0:0:0:0:0:1"};
    static const char *const no[] = {"0.0.0.0",   "10.0.0.1",   "::",         "192.168.1.1",
                                     "128.0.0.1", "126.0.0.1",  "::2",        "example.com",
                                     "",          "127.0.0.1 ", "LOCALHOST2", "::ffff:10.0.0.1"};
    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++)
        if (!listen_host_is_loopback(yes[i]))
            g_error("'%s' should be loopback", yes[i]);
    for (size_t i = 0; i < G_N_ELEMENTS(no); i++)
        if (listen_host_is_loopback(no[i]))
            g_error("'%s' should not be loopback", no[i]);
}

static void test_to_string_round_trip(void)
{
    static const char *const specs[] = {"unix:/tmp/deskvm-q.sock", "tcp:127.0.0.1:4444", "tcp:[::1]:4444",
                                        "tcp:localhost:1"};
    for (size_t i = 0; i < G_N_ELEMENTS(specs); i++) {
        struct listen_spec s = parse_ok(specs[i]);
        g_autofree char *str = listen_spec_to_string(&s);
        g_assert_cmpstr(str, ==, specs[i]);
        struct listen_spec again = parse_ok(str);
        g_assert_cmpint(again.kind, ==, s.kind);
        g_assert_cmpstr(again.path, ==, s.path);
        g_assert_cmpstr(again.host, ==, s.host);
        g_assert_cmpuint(again.port, ==, s.port);
        listen_spec_clear(&s);
        listen_spec_clear(&again);
    }
    /* flags are not part of the canonical form */
    struct listen_spec s = parse_ok("tcp:::1:9,server,nowait");
    g_autofree char *str = listen_spec_to_string(&s);
    g_assert_cmpstr(str, ==, "tcp:[::1]:9");
    listen_spec_clear(&s);
}

/* ------------------------------------------------------------------ sockets */

static void assert_listening_fd_flags(int fd)
{
    g_assert_cmpint(fd, >=, 0);
    g_assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    g_assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* Accepts one pending connection on a non-blocking listener within a few seconds. */
static void accept_one(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    g_assert_cmpint(poll(&p, 1, 5000), ==, 1);
    int c = accept(lfd, NULL, NULL);
    g_assert_cmpint(c, >=, 0);
    close(c);
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(fd, >=, 0);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void test_open_tcp_port_zero(void)
{
    struct listen_spec s = parse_ok("tcp:127.0.0.1:0");
    char *err = NULL;
    int lfd = listen_socket_open(&s, &err);
    g_assert_null(err);
    assert_listening_fd_flags(lfd);
    g_assert_cmpuint(s.port, >, 0);
    g_assert_cmpuint(s.port, <=, 65535);

    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)s.port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    g_assert_no_errno(connect(c, (struct sockaddr *)&sin, sizeof(sin)));
    accept_one(lfd);
    close(c);

    /* to_string reports the bound port */
    g_autofree char *str = listen_spec_to_string(&s);
    g_autofree char *want = g_strdup_printf("tcp:127.0.0.1:%u", s.port);
    g_assert_cmpstr(str, ==, want);

    /* the same port cannot be opened twice */
    struct listen_spec again = parse_ok(want);
    g_assert_cmpint(listen_socket_open(&again, &err), ==, -1);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, want + 4));
    g_free(err);
    listen_spec_clear(&again);

    close(lfd);
    listen_spec_clear(&s);
}

static void test_open_tcp_localhost(void)
{
    struct listen_spec s = parse_ok("tcp:localhost:0");
    char *err = NULL;
    int lfd = listen_socket_open(&s, &err);
    g_assert_null(err);
    assert_listening_fd_flags(lfd);
    g_assert_cmpuint(s.port, >, 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    g_assert_no_errno(getsockname(lfd, (struct sockaddr *)&ss, &len));
    if (ss.ss_family == AF_INET)
        g_assert_cmpuint(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), ==, INADDR_LOOPBACK);
    else
        g_assert_true(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr));
    close(lfd);
    listen_spec_clear(&s);
}

struct tmp {
    char *dir;
    char *path;
};

static void tmp_init(struct tmp *t)
{
    /* short: sun_path holds 107 bytes */
    t->dir = g_dir_make_tmp("dvmXXXXXX", NULL);
    g_assert_nonnull(t->dir);
    t->path = g_build_filename(t->dir, "s", NULL);
}

static void tmp_clear(struct tmp *t)
{
    g_unlink(t->path);
    g_rmdir(t->dir);
    g_free(t->path);
    g_free(t->dir);
}

static struct listen_spec unix_spec(const char *path)
{
    g_autofree char *s = g_strdup_printf("unix:%s", path);
    return parse_ok(s);
}

static void test_open_unix(void)
{
    struct tmp t;
    tmp_init(&t);
    struct listen_spec s = unix_spec(t.path);
    char *err = NULL;
    int lfd = listen_socket_open(&s, &err);
    g_assert_null(err);
    assert_listening_fd_flags(lfd);
    GStatBuf st;
    g_assert_cmpint(g_lstat(t.path, &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    int c = connect_unix(t.path);
    g_assert_cmpint(c, >=, 0);
    accept_one(lfd);
    close(c);
    close(lfd);
    listen_spec_clear(&s);
    tmp_clear(&t);
}

static void test_open_unix_live_path_in_use(void)
{
    struct tmp t;
    tmp_init(&t);
    struct listen_spec s = unix_spec(t.path);
    char *err = NULL;
    int lfd = listen_socket_open(&s, &err);
    g_assert_cmpint(lfd, >=, 0);

    g_assert_cmpint(listen_socket_open(&s, &err), ==, -1);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, t.path));
    g_assert_nonnull(strstr(err, "in use"));
    g_free(err);

    /* the first listener still owns the path */
    int c = connect_unix(t.path);
    g_assert_cmpint(c, >=, 0);
    accept_one(lfd);
    close(c);
    close(lfd);
    listen_spec_clear(&s);
    tmp_clear(&t);
}

static void test_open_unix_stale_socket_replaced(void)
{
    struct tmp t;
    tmp_init(&t);
    /* leave a socket file behind with nobody listening, as a crashed process would */
    int old = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    g_strlcpy(sun.sun_path, t.path, sizeof(sun.sun_path));
    g_assert_no_errno(bind(old, (struct sockaddr *)&sun, sizeof(sun)));
    g_assert_no_errno(listen(old, 1));
    close(old);
    g_assert_true(g_file_test(t.path, G_FILE_TEST_EXISTS));
    g_assert_cmpint(connect_unix(t.path), ==, -1);
    g_assert_cmpint(errno, ==, ECONNREFUSED);

    struct listen_spec s = unix_spec(t.path);
    char *err = NULL;
    int lfd = listen_socket_open(&s, &err);
    g_assert_null(err);
    g_assert_cmpint(lfd, >=, 0);
    int c = connect_unix(t.path);
    g_assert_cmpint(c, >=, 0);
    accept_one(lfd);
    close(c);
    close(lfd);
    listen_spec_clear(&s);
    tmp_clear(&t);
}

static void test_open_unix_regular_file_refused(void)
{
    struct tmp t;
    tmp_init(&t);
    g_assert_true(g_file_set_contents(t.path, "precious data", -1, NULL));
    struct listen_spec s = unix_spec(t.path);
    char *err = NULL;
    g_assert_cmpint(listen_socket_open(&s, &err), ==, -1);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, "is not a socket"));
    g_free(err);
    g_autofree char *content = NULL;
    g_assert_true(g_file_get_contents(t.path, &content, NULL, NULL));
    g_assert_cmpstr(content, ==, "precious data");
    listen_spec_clear(&s);
    tmp_clear(&t);
}

static void test_open_unix_missing_directory(void)
{
    struct listen_spec s = unix_spec("/nonexistent-dvm/s");
    char *err = NULL;
    g_assert_cmpint(listen_socket_open(&s, &err), ==, -1);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, "/nonexistent-dvm/s"));
    g_assert_nonnull(strstr(err, g_strerror(ENOENT)));
    g_free(err);
    listen_spec_clear(&s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/listen/parse/unix", test_parse_unix);
    g_test_add_func("/listen/parse/tcp", test_parse_tcp);
    g_test_add_func("/listen/parse/non-loopback-rejected", test_parse_non_loopback_rejected);
    g_test_add_func("/listen/parse/bad-port", test_parse_bad_port);
    g_test_add_func("/listen/parse/qemu-flags", test_parse_flags);
    g_test_add_func("/listen/parse/unknown-scheme", test_parse_unknown_scheme);
    g_test_add_func("/listen/host-is-loopback", test_host_is_loopback);
    g_test_add_func("/listen/to-string-round-trip", test_to_string_round_trip);
    g_test_add_func("/listen/open/tcp-port-zero-gets-real-port", test_open_tcp_port_zero);
    g_test_add_func("/listen/open/tcp-localhost-binds-loopback", test_open_tcp_localhost);
    g_test_add_func("/listen/open/unix", test_open_unix);
    g_test_add_func("/listen/open/unix-live-path-in-use", test_open_unix_live_path_in_use);
    g_test_add_func("/listen/open/unix-stale-socket-replaced", test_open_unix_stale_socket_replaced);
    g_test_add_func("/listen/open/unix-regular-file-refused", test_open_unix_regular_file_refused);
    g_test_add_func("/listen/open/unix-missing-directory", test_open_unix_missing_directory);
    return g_test_run();
}
