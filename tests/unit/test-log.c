/* Proves the log line format, level filtering, log targets and the rate limiter's windows and counts. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "log.h"

/* A non-blocking pipe whose write end is the log target. */
struct capture {
    int fds[2];
};

static void capture_start(struct capture *c)
{
    g_assert_no_errno(pipe2(c->fds, O_NONBLOCK | O_CLOEXEC));
    log_set_fd(c->fds[1]);
}

/* Everything logged since the last read. */
static char *capture_read(struct capture *c)
{
    GString *s = g_string_new(NULL);
    char buf[4096];
    ssize_t n;
    while ((n = read(c->fds[0], buf, sizeof(buf))) > 0)
        g_string_append_len(s, buf, n);
    g_assert_true(n == 0 || errno == EAGAIN);
    return g_string_free(s, FALSE);
}

static void capture_stop(struct capture *c)
{
    log_close();
    close(c->fds[0]);
    close(c->fds[1]);
    log_set_level(LOG_LEVEL_INFO);
}

static guint count_lines(const char *s)
{
    guint n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_level_parse(void)
{
    static const struct {
        const char *name;
        enum log_level level;
    } good[] = {
        {"error", LOG_LEVEL_ERROR}, {"warn", LOG_LEVEL_WARN},   {"warning", LOG_LEVEL_WARN},
        {"info", LOG_LEVEL_INFO},   {"debug", LOG_LEVEL_DEBUG},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        enum log_level l = (enum log_level)99;
        g_assert_true(log_level_parse(good[i].name, &l));
        g_assert_cmpint(l, ==, good[i].level);
    }
    static const char *const bad[] = {"verbose", "", "err", "warn ", "trace", "infos"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        enum log_level l = (enum log_level)99;
        g_assert_false(log_level_parse(bad[i], &l));
        g_assert_cmpint(l, ==, 99);
    }
}

static void test_level_names(void)
{
    g_assert_cmpstr(log_level_name(LOG_LEVEL_ERROR), ==, "error");
    g_assert_cmpstr(log_level_name(LOG_LEVEL_WARN), ==, "warn");
    g_assert_cmpstr(log_level_name(LOG_LEVEL_INFO), ==, "info");
    g_assert_cmpstr(log_level_name(LOG_LEVEL_DEBUG), ==, "debug");
    g_assert_cmpstr(log_level_name((enum log_level)7), ==, "?");
    log_set_level(LOG_LEVEL_DEBUG);
    g_assert_cmpint(log_get_level(), ==, LOG_LEVEL_DEBUG);
    log_set_level(LOG_LEVEL_INFO);
    g_assert_cmpint(log_get_level(), ==, LOG_LEVEL_INFO);
}

static void test_line_format(void)
{
    struct capture c;
    capture_start(&c);
    log_set_level(LOG_LEVEL_INFO);
    GDateTime *before = g_date_time_new_now_utc();
    log_info("hello %d %s", 42, "world");
    GDateTime *after = g_date_time_new_now_utc();
    g_autofree char *out = capture_read(&c);

    g_autofree char *pattern = g_strdup_printf(
        "^(\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z) deskvm\\[%d\\] info: hello 42 world\\n$",
        (int)getpid());
    g_autoptr(GRegex) re = g_regex_new(pattern, G_REGEX_DOLLAR_ENDONLY, 0, NULL);
    g_autoptr(GMatchInfo) mi = NULL;
    if (!g_regex_match(re, out, 0, &mi))
        g_error("log line does not match: %s", out);
    /* the timestamp is the current UTC time, to the millisecond */
    g_autofree char *stamp = g_match_info_fetch(mi, 1);
    GDateTime *t = g_date_time_new_from_iso8601(stamp, NULL);
    g_assert_nonnull(t);
    g_assert_cmpint(g_date_time_difference(t, before), >=, -1000);
    g_assert_cmpint(g_date_time_difference(after, t), >=, 0);
    g_date_time_unref(t);
    g_date_time_unref(before);
    g_date_time_unref(after);
    capture_stop(&c);
}

static void test_level_name_in_line(void)
{
    struct capture c;
    capture_start(&c);
    log_set_level(LOG_LEVEL_DEBUG);
    log_error("e1");
    log_warn("w1");
    log_info("i1");
    log_debug("d1");
    g_autofree char *out = capture_read(&c);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), ==, 5);
    g_assert_true(g_str_has_suffix(lines[0], "] error: e1"));
    g_assert_true(g_str_has_suffix(lines[1], "] warn: w1"));
    g_assert_true(g_str_has_suffix(lines[2], "] info: i1"));
    g_assert_true(g_str_has_suffix(lines[3], "] debug: d1"));
    g_assert_cmpstr(lines[4], ==, "");
    capture_stop(&c);
}

static void test_level_filter(void)
{
    struct capture c;
    capture_start(&c);
    log_set_level(LOG_LEVEL_WARN);
    log_debug("hidden debug");
    log_info("hidden info");
    log_warn("shown warn");
    log_error("shown error");
    g_autofree char *out = capture_read(&c);
    g_assert_cmpuint(count_lines(out), ==, 2);
    g_assert_null(strstr(out, "hidden"));
    g_assert_nonnull(strstr(out, "warn: shown warn\n"));
    g_assert_nonnull(strstr(out, "error: shown error\n"));

    log_set_level(LOG_LEVEL_ERROR);
    log_warn("hidden too");
    g_autofree char *out2 = capture_read(&c);
    g_assert_cmpstr(out2, ==, "");
    capture_stop(&c);
}

static void test_long_message_stays_one_line(void)
{
    struct capture c;
    capture_start(&c);
    g_autofree char *big = g_strnfill(5000, 'x');
    log_info("%s", big);
    g_autofree char *out = capture_read(&c);
    g_assert_cmpuint(count_lines(out), ==, 1);
    g_assert_true(g_str_has_suffix(out, "x\n"));
    g_assert_cmpuint(strlen(out), <, 2200);
    g_assert_cmpuint(strlen(out), >, 2000);
    capture_stop(&c);
}

static void test_ratelimit_burst_then_suppress(void)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 3);
    uint32_t missed = 99;
    for (int i = 0; i < 3; i++) {
        g_assert_true(log_ratelimit_allow(&rl, 5000 + i, &missed));
        g_assert_cmpuint(missed, ==, 0);
    }
    g_assert_false(log_ratelimit_allow(&rl, 5003, &missed));
    g_assert_cmpuint(missed, ==, 0);
    g_assert_false(log_ratelimit_allow(&rl, 5500, &missed));
    g_assert_false(log_ratelimit_allow(&rl, 5999, &missed)); /* the window is [5000, 6000) */
    /* the next window reports the three that were dropped */
    g_assert_true(log_ratelimit_allow(&rl, 6000, &missed));
    g_assert_cmpuint(missed, ==, 3);
    g_assert_true(log_ratelimit_allow(&rl, 6001, &missed));
    g_assert_cmpuint(missed, ==, 0);
    g_assert_true(log_ratelimit_allow(&rl, 6002, &missed));
    g_assert_false(log_ratelimit_allow(&rl, 6003, &missed));
    /* after a long quiet time: one missed from the last window, then a clean slate */
    g_assert_true(log_ratelimit_allow(&rl, 100000, &missed));
    g_assert_cmpuint(missed, ==, 1);
    g_assert_true(log_ratelimit_allow(&rl, 200000, &missed));
    g_assert_cmpuint(missed, ==, 0);
}

static void test_ratelimit_first_call_at_time_zero(void)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(100, 1);
    uint32_t missed = 99;
    g_assert_true(log_ratelimit_allow(&rl, 0, &missed));
    g_assert_cmpuint(missed, ==, 0);
    g_assert_false(log_ratelimit_allow(&rl, 99, &missed));
    g_assert_true(log_ratelimit_allow(&rl, 100, &missed));
    g_assert_cmpuint(missed, ==, 1);
}

static void test_ratelimited_message_reports_suppressed(void)
{
    struct capture c;
    capture_start(&c);
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(50, 2);
    for (int i = 0; i < 6; i++)
        log_message_ratelimited(&rl, LOG_LEVEL_WARN, "guest says %d", i);
    g_autofree char *out = capture_read(&c);
    g_assert_cmpuint(count_lines(out), ==, 2);
    g_assert_nonnull(strstr(out, "warn: guest says 0\n"));
    g_assert_nonnull(strstr(out, "warn: guest says 1\n"));
    g_usleep(80 * 1000);
    log_message_ratelimited(&rl, LOG_LEVEL_WARN, "guest says %d", 6);
    g_autofree char *out2 = capture_read(&c);
    g_auto(GStrv) lines = g_strsplit(out2, "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), ==, 3);
    g_assert_true(g_str_has_suffix(lines[0], "warn: (4 similar messages suppressed)"));
    g_assert_true(g_str_has_suffix(lines[1], "warn: guest says 6"));
    capture_stop(&c);
}

static void test_open_file_appends(void)
{
    g_autofree char *dir = g_dir_make_tmp("deskvm-log-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "deskvm.log", NULL);
    g_assert_true(g_file_set_contents(path, "existing line\n", -1, NULL));
    g_assert_cmpint(log_open_file(path), ==, 0);
    log_info("first");
    log_close();
    g_assert_cmpint(log_open_file(path), ==, 0);
    log_warn("second");
    log_close();

    g_autofree char *content = NULL;
    g_assert_true(g_file_get_contents(path, &content, NULL, NULL));
    g_auto(GStrv) lines = g_strsplit(content, "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), ==, 4);
    g_assert_cmpstr(lines[0], ==, "existing line");
    g_assert_true(g_str_has_suffix(lines[1], "info: first"));
    g_assert_true(g_str_has_suffix(lines[2], "warn: second"));
    g_assert_cmpstr(lines[3], ==, "");

    /* a new file is created with mode 0640 (less the umask) */
    g_autofree char *fresh = g_build_filename(dir, "fresh.log", NULL);
    mode_t mask = umask(022);
    umask(mask);
    g_assert_cmpint(log_open_file(fresh), ==, 0);
    log_close();
    GStatBuf st;
    g_assert_cmpint(g_stat(fresh, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0640 & ~mask);

    g_unlink(fresh);
    g_unlink(path);
    g_rmdir(dir);
}

static void test_open_file_bad_path_keeps_target(void)
{
    struct capture c;
    capture_start(&c);
    g_assert_cmpint(log_open_file("/nonexistent-dir/deskvm.log"), ==, -ENOENT);
    g_autofree char *dir = g_dir_make_tmp("deskvm-log-XXXXXX", NULL);
    g_assert_cmpint(log_open_file(dir), ==, -EISDIR);
    log_info("still here");
    g_autofree char *out = capture_read(&c);
    g_assert_true(g_str_has_suffix(out, "info: still here\n"));
    g_rmdir(dir);
    capture_stop(&c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/log/level/parse-names", test_level_parse);
    g_test_add_func("/log/level/names", test_level_names);
    g_test_add_func("/log/message/line-format", test_line_format);
    g_test_add_func("/log/message/level-name-in-line", test_level_name_in_line);
    g_test_add_func("/log/message/level-filter", test_level_filter);
    g_test_add_func("/log/message/long-message-stays-one-line", test_long_message_stays_one_line);
    g_test_add_func("/log/ratelimit/burst-then-suppress", test_ratelimit_burst_then_suppress);
    g_test_add_func("/log/ratelimit/first-call-at-time-zero", test_ratelimit_first_call_at_time_zero);
    g_test_add_func("/log/ratelimit/message-reports-suppressed", test_ratelimited_message_reports_suppressed);
    g_test_add_func("/log/file/appends", test_open_file_appends);
    g_test_add_func("/log/file/bad-path-keeps-target", test_open_file_bad_path_keeps_target);
    return g_test_run();
}
