/* Proves the pure parts of the SPICE front end: --spice parsing (keys, defaults, the loopback and ticket
 * rules, contradictions) and the GLib core spice-server runs on (one-shot timers that may re-arm or remove
 * themselves, level-triggered watches, mask 0, hang-ups reported as readable, removal inside a callback). */
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "options.h"
#include "spice_core.h"
#include "spice_spec.h"

static struct spice_spec parse_ok(const char *s)
{
    struct spice_spec spec;
    char *err = NULL;
    if (!spice_spec_parse(s, &spec, &err))
        g_error("spice_spec_parse(\"%s\") failed: %s", s, err);
    g_assert_null(err);
    return spec;
}

static void parse_bad(const char *s, const char *want)
{
    struct spice_spec spec;
    char *err = NULL;
    if (spice_spec_parse(s, &spec, &err))
        g_error("spice_spec_parse(\"%s\") accepted it", s);
    g_assert_nonnull(err);
    if (!strstr(err, want))
        g_error("spice_spec_parse(\"%s\"): message lacks '%s': %s", s, want, err);
    g_assert_false(spec.enabled);
    g_assert_null(spec.addr);
    g_free(err);
}

static void test_defaults(void)
{
    struct spice_spec s = parse_ok("port=5930");
    g_assert_true(s.enabled);
    g_assert_cmpuint(s.port, ==, 5930);
    g_assert_cmpuint(s.tls_port, ==, 0);
    g_assert_cmpstr(s.addr, ==, "127.0.0.1");
    g_assert_false(s.disable_ticketing);
    g_assert_null(s.password);
    g_assert_cmpint(s.image_compression, ==, SPICE_SPEC_IC_AUTO_GLZ);
    g_assert_cmpint(s.streaming_video, ==, SPICE_SPEC_STREAM_OFF); /* QEMU's default, not spice-server's */
    g_assert_true(s.playback_compression);
    g_assert_true(s.agent_mouse);
    g_assert_true(s.copy_paste);
    g_assert_true(s.file_xfer);
    spice_spec_clear(&s);

    s = parse_ok("none");
    g_assert_false(s.enabled);
    spice_spec_clear(&s);

    s = parse_ok("port=5930,ipv6=on");
    g_assert_cmpstr(s.addr, ==, "::1");
    spice_spec_clear(&s);
}

static void test_keys(void)
{
    struct spice_spec s = parse_ok("port=5901,addr=::1,disable-ticketing=on,image-compression=lz4,"
                                   "jpeg-wan-compression=never,zlib-glz-wan-compression=always,"
                                   "streaming-video=filter,playback-compression=off,agent-mouse=off,"
                                   "disable-copy-paste=on,disable-agent-file-xfer");
    g_assert_cmpstr(s.addr, ==, "::1");
    g_assert_true(s.disable_ticketing);
    g_assert_cmpint(s.image_compression, ==, SPICE_SPEC_IC_LZ4);
    g_assert_cmpstr(spice_spec_image_compression_name(s.image_compression), ==, "lz4");
    g_assert_cmpint(s.jpeg_wan, ==, SPICE_SPEC_WAN_NEVER);
    g_assert_cmpint(s.zlib_glz_wan, ==, SPICE_SPEC_WAN_ALWAYS);
    g_assert_cmpint(s.streaming_video, ==, SPICE_SPEC_STREAM_FILTER);
    g_assert_false(s.playback_compression);
    g_assert_false(s.agent_mouse);
    g_assert_false(s.copy_paste);
    g_assert_false(s.file_xfer);
    spice_spec_clear(&s);

    s = parse_ok("port=5902,password=hunter2,image-compression=off");
    g_assert_cmpstr(s.password, ==, "hunter2");
    g_assert_cmpint(s.image_compression, ==, SPICE_SPEC_IC_OFF);
    spice_spec_clear(&s);

    s = parse_ok("unix=on,addr=/run/deskvm/spice.sock,disable-ticketing=on");
    g_assert_true(s.unix_socket);
    g_assert_cmpstr(s.addr, ==, "/run/deskvm/spice.sock");
    g_assert_cmpuint(s.port, ==, 0);
    spice_spec_clear(&s);

    s = parse_ok("tls-port=5903,x509-dir=/etc/pki/spice");
    g_assert_cmpuint(s.tls_port, ==, 5903);
    g_assert_cmpstr(s.x509_dir, ==, "/etc/pki/spice");
    spice_spec_clear(&s);
}

static void test_loopback_rule(void)
{
    /* Ticketing on (the default) or a password protects a reachable address; disable-ticketing does not. */
    struct spice_spec s = parse_ok("port=5930,addr=0.0.0.0");
    g_assert_cmpstr(s.addr, ==, "0.0.0.0");
    spice_spec_clear(&s);
    s = parse_ok("port=5930,addr=192.0.2.1,password=x");
    spice_spec_clear(&s);
    parse_bad("port=5930,addr=0.0.0.0,disable-ticketing=on", "not a loopback address");
    parse_bad("port=5930,addr=192.0.2.1,disable-ticketing=on", "insecure=on");
    s = parse_ok("port=5930,addr=192.0.2.1,disable-ticketing=on,insecure=on");
    g_assert_true(s.insecure);
    spice_spec_clear(&s);
    s = parse_ok("port=5930,addr=localhost,disable-ticketing=on");
    spice_spec_clear(&s);
}

static void test_bad(void)
{
    parse_bad("", "needs port=N");
    parse_bad("addr=127.0.0.1", "needs port=N");
    parse_bad("port=0", "from 1 to 65535");
    parse_bad("port=65536", "from 1 to 65535");
    parse_bad("port=59a", "from 1 to 65535");
    parse_bad("port=5930,port=", "from 1 to 65535");
    parse_bad("port=5930,tls-port=5930,x509-dir=/x", "both 5930");
    parse_bad("port=5930,tls-port=5931", "x509-dir");
    parse_bad("port=5930,ipv4=on,ipv6=on", "exclude");
    parse_bad("port=5930,password=a,disable-ticketing=on", "contradict");
    parse_bad("port=5930,disable-ticketing=maybe", "expected on or off");
    parse_bad("port=5930,image-compression=zip", "expected one of auto_glz, auto_lz, quic, glz, lz, lz4, off");
    parse_bad("port=5930,streaming-video=some", "off, all, filter");
    parse_bad("port=5930,jpeg-wan-compression=sometimes", "auto, never, always");
    parse_bad("port=5930,frobnicate=1", "unknown parameter 'frobnicate'");
    parse_bad("port=5930,addr=", "needs an address");
    parse_bad("unix=on,addr=relative.sock", "absolute");
    parse_bad("unix=on", "absolute");
    parse_bad("unix=on,addr=/tmp/s,port=5930", "cannot be combined");
    char longpw[80];
    memset(longpw, 'p', sizeof(longpw) - 1);
    longpw[sizeof(longpw) - 1] = 0;
    g_autofree char *text = g_strdup_printf("port=5930,password=%s", longpw);
    parse_bad(text, "60 characters");
}

static int parse_argv(struct options *o, char **argv, char **err)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return options_parse(o, argc, argv, err);
}

/* --object secret and password-secret=, QEMU's way of keeping the password off the command line. */
static void test_password_secret(void)
{
    struct options o;
    char *err = NULL;
    g_autofree char *dir = g_dir_make_tmp("spice-opt-XXXXXX", NULL);
    g_autofree char *file = g_build_filename(dir, "pw", NULL);
    g_assert_true(g_file_set_contents(file, "from-a-file", -1, NULL));
    g_autofree char *obj = g_strdup_printf("secret,id=sec1,file=%s", file);
    char *a[] = {"deskvm", "--object", obj, "--spice", "port=5930,password-secret=sec1", NULL};
    if (parse_argv(&o, a, &err))
        g_error("options_parse: %s", err);
    g_assert_true(o.spice.enabled);
    g_assert_cmpstr(o.spice.password, ==, "from-a-file");
    options_clear(&o);

    char *b[] = {"deskvm", "--spice", "port=5930,password-secret=sec0", "--object", "secret,id=sec0,data=inline",
                 NULL};
    if (parse_argv(&o, b, &err))
        g_error("options_parse: %s", err);
    g_assert_cmpstr(o.spice.password, ==, "inline"); /* the order of the options does not matter */
    options_clear(&o);

    struct {
        char *argv[8];
        const char *want;
    } bad[] = {
        {{"deskvm", "--spice", "port=5930,password-secret=nope", NULL}, "no --object secret,id=nope"},
        {{"deskvm", "--object", "secret,id=s,data=x", "--object", "secret,id=s,data=y", NULL}, "given twice"},
        {{"deskvm", "--object", "secret,id=s", NULL}, "one of data= or file="},
        {{"deskvm", "--object", "secret,id=s,data=x,file=/y", NULL}, "one of data= or file="},
        {{"deskvm", "--object", "memory-backend-ram,id=m", NULL}, "only secret"},
        {{"deskvm", "--object", "secret,data=x", NULL}, "needs id="},
        {{"deskvm", "--object", "secret,id=s,file=/nonexistent/pw", NULL}, "secret s:"},
        {{"deskvm", "--object", "secret,id=s,data=x", "--spice", "port=5930,password-secret=s,password=y", NULL},
         "give one"},
        {{"deskvm", "--spice", "port=5930,password-secret=s,disable-ticketing=on", NULL}, "contradict"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        err = NULL;
        g_assert_cmpint(parse_argv(&o, bad[i].argv, &err), ==, 2);
        if (!err || !strstr(err, bad[i].want))
            g_error("case %zu: message lacks '%s': %s", i, bad[i].want, err ? err : "(none)");
        g_free(err);
        options_clear(&o);
    }
    g_unlink(file);
    g_rmdir(dir);
}

/* ---- the GLib core */

struct timer_probe {
    SpiceCoreInterface *core;
    SpiceTimer *timer;
    int fired;
    int rearm; /* re-arm from the callback this many times */
    bool remove_in_callback;
};

static void timer_cb(void *opaque)
{
    struct timer_probe *p = opaque;
    p->fired++;
    if (p->rearm-- > 0)
        p->core->timer_start(p->timer, 1);
    else if (p->remove_in_callback) {
        p->core->timer_remove(p->timer);
        p->timer = NULL;
    }
}

static void run_loop_ms(unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    while (g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, FALSE), g_usleep(500);
}

static void test_core_timers(void)
{
    SpiceCoreInterface *core = spice_core_glib();
    unsigned live = spice_core_live_objects();
    struct timer_probe p = {.core = core, .rearm = 2, .remove_in_callback = true};
    p.timer = core->timer_add(timer_cb, &p);
    core->timer_start(p.timer, 5);
    run_loop_ms(100);
    g_assert_cmpint(p.fired, ==, 3); /* first shot + two re-arms, then it removed itself */
    g_assert_null(p.timer);
    g_assert_cmpuint(spice_core_live_objects(), ==, live);

    /* Cancel before it fires; start again; one-shot. */
    struct timer_probe q = {.core = core};
    q.timer = core->timer_add(timer_cb, &q);
    core->timer_start(q.timer, 20);
    core->timer_cancel(q.timer);
    run_loop_ms(60);
    g_assert_cmpint(q.fired, ==, 0);
    core->timer_start(q.timer, 1);
    core->timer_start(q.timer, 1); /* re-arming replaces, never doubles */
    run_loop_ms(60);
    g_assert_cmpint(q.fired, ==, 1);
    core->timer_remove(q.timer);
    g_assert_cmpuint(spice_core_live_objects(), ==, live);
}

struct watch_probe {
    SpiceCoreInterface *core;
    SpiceWatch *watch;
    int calls, last_events;
    bool remove_in_callback;
};

static void watch_cb(int fd, int events, void *opaque)
{
    (void)fd;
    struct watch_probe *p = opaque;
    p->calls++;
    p->last_events = events;
    if (p->remove_in_callback) {
        p->core->watch_remove(p->watch);
        p->watch = NULL;
    }
}

static void test_core_watches(void)
{
    SpiceCoreInterface *core = spice_core_glib();
    unsigned live = spice_core_live_objects();
    int fds[2];
    g_assert_cmpint(pipe(fds), ==, 0);
    struct watch_probe p = {.core = core};
    p.watch = core->watch_add(fds[0], SPICE_WATCH_EVENT_READ, watch_cb, &p);
    run_loop_ms(20);
    g_assert_cmpint(p.calls, ==, 0);
    g_assert_cmpint(write(fds[1], "x", 1), ==, 1);
    run_loop_ms(20);
    /* Level-triggered: unread data keeps calling. */
    g_assert_cmpint(p.calls, >=, 2);
    g_assert_cmpint(p.last_events, ==, SPICE_WATCH_EVENT_READ);
    /* Mask 0: quiet even though data is pending. */
    core->watch_update_mask(p.watch, 0);
    int before = p.calls;
    run_loop_ms(20);
    g_assert_cmpint(p.calls, ==, before);
    /* A hang-up is reported as readable. */
    char c;
    g_assert_cmpint(read(fds[0], &c, 1), ==, 1);
    close(fds[1]);
    core->watch_update_mask(p.watch, SPICE_WATCH_EVENT_READ);
    p.remove_in_callback = true;
    run_loop_ms(20);
    g_assert_cmpint(p.calls, ==, before + 1); /* removed itself inside the callback: exactly once */
    g_assert_cmpint(p.last_events, ==, SPICE_WATCH_EVENT_READ);
    g_assert_null(p.watch);
    close(fds[0]);

    /* Write readiness. */
    g_assert_cmpint(pipe(fds), ==, 0);
    struct watch_probe w = {.core = core, .remove_in_callback = true};
    w.watch = core->watch_add(fds[1], SPICE_WATCH_EVENT_WRITE, watch_cb, &w);
    run_loop_ms(20);
    g_assert_cmpint(w.calls, ==, 1);
    g_assert_cmpint(w.last_events, ==, SPICE_WATCH_EVENT_WRITE);
    close(fds[0]);
    close(fds[1]);
    g_assert_cmpuint(spice_core_live_objects(), ==, live);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/spice/spec/defaults", test_defaults);
    g_test_add_func("/spice/spec/keys", test_keys);
    g_test_add_func("/spice/spec/loopback-rule", test_loopback_rule);
    g_test_add_func("/spice/spec/bad", test_bad);
    g_test_add_func("/spice/options/password-secret", test_password_secret);
    g_test_add_func("/spice/core/timers", test_core_timers);
    g_test_add_func("/spice/core/watches", test_core_watches);
    return g_test_run();
}
