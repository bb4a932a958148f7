/* Proves the pure parts of the VNC front end: --vnc parsing (addresses, displays, flags, the loopback rule),
 * expire_password's time grammar and the extended-key-event keycode mapping. */
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "options.h"
#include "qmp_vnc.h"
#include "scancode.h"
#include "vnc_internal.h"
#include "vnc_spec.h"

static struct vnc_spec parse_ok(const char *s)
{
    struct vnc_spec spec;
    char *err = NULL;
    if (!vnc_spec_parse(s, &spec, &err))
        g_error("vnc_spec_parse(\"%s\") failed: %s", s, err);
    g_assert_null(err);
    return spec;
}

static void parse_bad(const char *s, const char *want)
{
    struct vnc_spec spec;
    char *err = NULL;
    if (vnc_spec_parse(s, &spec, &err))
        g_error("vnc_spec_parse(\"%s\") accepted it", s);
    g_assert_nonnull(err);
    if (!strstr(err, want))
        g_error("vnc_spec_parse(\"%s\"): message lacks '%s': %s", s, want, err);
    g_assert_null(spec.host);
    g_assert_null(spec.path);
    g_free(err);
}

static void test_tcp(void)
{
    struct vnc_spec s = parse_ok("127.0.0.1:0");
    g_assert_cmpint(s.kind, ==, VNC_TCP);
    g_assert_cmpstr(s.host, ==, "127.0.0.1");
    g_assert_cmpuint(s.display, ==, 0);
    g_assert_cmpuint(vnc_spec_port(&s), ==, 5900);
    g_assert_false(s.password);
    g_assert_cmpuint(s.websocket_port, ==, 0);
    vnc_spec_clear(&s);

    s = parse_ok(":7");
    g_assert_cmpstr(s.host, ==, "127.0.0.1");
    g_assert_cmpuint(vnc_spec_port(&s), ==, 5907);
    vnc_spec_clear(&s);

    s = parse_ok("[::1]:3,password=on,websocket=5701");
    g_assert_cmpstr(s.host, ==, "::1");
    g_assert_cmpuint(vnc_spec_port(&s), ==, 5903);
    g_assert_true(s.password);
    g_assert_cmpuint(s.websocket_port, ==, 5701);
    vnc_spec_clear(&s);

    s = parse_ok("localhost:59635");
    g_assert_cmpuint(vnc_spec_port(&s), ==, 65535);
    vnc_spec_clear(&s);
}

static void test_unix_and_none(void)
{
    struct vnc_spec s = parse_ok("unix:/tmp/deskvm-vnc.sock,password=on");
    g_assert_cmpint(s.kind, ==, VNC_UNIX);
    g_assert_cmpstr(s.path, ==, "/tmp/deskvm-vnc.sock");
    g_assert_true(s.password);
    vnc_spec_clear(&s);

    s = parse_ok("unix:rel.sock");
    g_assert_true(g_path_is_absolute(s.path));
    g_assert_true(g_str_has_suffix(s.path, "/rel.sock"));
    vnc_spec_clear(&s);

    s = parse_ok("none");
    g_assert_cmpint(s.kind, ==, VNC_OFF);
    vnc_spec_clear(&s);
}

static void test_non_loopback(void)
{
    parse_bad("0.0.0.0:0", "not a loopback address");
    parse_bad("192.168.1.5:1,password=off", "password=on");
    struct vnc_spec s = parse_ok("0.0.0.0:1,password=on");
    g_assert_cmpstr(s.host, ==, "0.0.0.0");
    g_assert_true(s.password);
    vnc_spec_clear(&s);
    s = parse_ok("10.0.0.1:2,insecure=on");
    g_assert_true(s.insecure);
    g_assert_false(s.password);
    vnc_spec_clear(&s);
}

static void test_bad(void)
{
    parse_bad("", "needs an address");
    parse_bad("127.0.0.1", "HOST:DISPLAY");
    parse_bad("127.0.0.1:", "display number");
    parse_bad("127.0.0.1:-1", "display number");
    parse_bad("127.0.0.1:59636", "display number");
    parse_bad("127.0.0.1:1x", "display number");
    parse_bad("::1:0", "brackets");
    parse_bad("[::1:0", "[IPV6-ADDRESS]");
    parse_bad("unix:", "socket path");
    parse_bad("127.0.0.1:0,password=maybe", "expected on or off");
    parse_bad("127.0.0.1:0,websocket=0", "port from 1 to 65535");
    parse_bad("127.0.0.1:0,websocket=70000", "port from 1 to 65535");
    parse_bad("127.0.0.1:0,websocket=5900", "RFB port itself");
    parse_bad("unix:/tmp/x,websocket=5700", "TCP address");
    parse_bad("127.0.0.1:0,share=force-shared", "unknown parameter 'share'");
}

static void test_expiry(void)
{
    gint64 now = 1000 * G_USEC_PER_SEC, at;
    g_assert_true(qmp_vnc_parse_expiry("now", now, &at));
    g_assert_cmpint(at, <, 0);
    g_assert_true(qmp_vnc_parse_expiry("never", now, &at));
    g_assert_cmpint(at, ==, 0);
    g_assert_true(qmp_vnc_parse_expiry("+30", now, &at));
    g_assert_cmpint(at, ==, now + 30 * G_USEC_PER_SEC);
    g_assert_true(qmp_vnc_parse_expiry("2000", now, &at));
    g_assert_cmpint(at, ==, 2000 * G_USEC_PER_SEC);
    g_assert_true(qmp_vnc_parse_expiry("0", now, &at));
    g_assert_cmpint(at, <, 0);
    g_assert_false(qmp_vnc_parse_expiry("", now, &at));
    g_assert_false(qmp_vnc_parse_expiry("+", now, &at));
    g_assert_false(qmp_vnc_parse_expiry("-5", now, &at));
    g_assert_false(qmp_vnc_parse_expiry("tomorrow", now, &at));
    g_assert_false(qmp_vnc_parse_expiry("+99999999999999", now, &at));
}

static void test_extkey(void)
{
    /* QEMU key numbers: 0x1e 'a', 0x9d right ctrl (0xE0 0x1D), 0xc8 up (0xE0 0x48) */
    g_assert_cmpuint(vnc_extkey_to_evdev(0x1e), ==, KEY_A);
    g_assert_cmpuint(vnc_extkey_to_evdev(0x9d), ==, KEY_RIGHTCTRL);
    g_assert_cmpuint(vnc_extkey_to_evdev(0xc8), ==, KEY_UP);
    /* the same with the prefix written out */
    g_assert_cmpuint(vnc_extkey_to_evdev(0xe01d), ==, KEY_RIGHTCTRL);
    g_assert_cmpuint(vnc_extkey_to_evdev(0xe048), ==, KEY_UP);
    g_assert_cmpuint(vnc_extkey_to_evdev(0x1c), ==, KEY_ENTER);
    g_assert_cmpuint(vnc_extkey_to_evdev(0), ==, 0);
    g_assert_cmpuint(vnc_extkey_to_evdev(0x12345), ==, 0);
    g_assert_cmpuint(vnc_extkey_to_evdev(0xffffffffu), ==, 0);
}

/* --vnc through the option table, next to other options (and the config file key). */
static void test_options(void)
{
    struct options o;
    char *err = NULL;
    g_autofree char *dir = g_dir_make_tmp("vnc-opt-XXXXXX", NULL);
    g_autofree char *rom = g_build_filename(dir, "fw.rom", NULL);
    g_assert_true(g_file_set_contents(rom, "\xf4", 1, NULL));
    /* --gdb's setter once cleared --vnc: keep them side by side */
    char *argv[] = {"deskvm",    "--vnc", "127.0.0.1:3,password=on", "--firmware", rom, "--gdb",
                    "tcp::1234", NULL};
    int rc = options_parse(&o, 7, argv, &err);
    if (rc)
        g_error("options_parse: %s", err);
    g_assert_cmpint(o.vnc.kind, ==, VNC_TCP);
    g_assert_cmpuint(vnc_spec_port(&o.vnc), ==, 5903);
    g_assert_true(o.vnc.password);
    options_clear(&o);

    char *bad[] = {"deskvm", "--vnc", "0.0.0.0:3", NULL};
    g_assert_cmpint(options_parse(&o, 3, bad, &err), ==, 2);
    g_assert_nonnull(strstr(err, "--vnc"));
    g_assert_nonnull(strstr(err, "password=on"));
    g_free(err);
    options_clear(&o);

    g_autofree char *conf = g_build_filename(dir, "vm.ini", NULL);
    g_assert_true(g_file_set_contents(conf, "[deskvm]\nvnc=unix:/tmp/x.sock\n", -1, NULL));
    g_autofree char *confopt = g_strconcat("--config=", conf, NULL);
    char *fromfile[] = {"deskvm", confopt, NULL};
    err = NULL;
    g_assert_cmpint(options_parse(&o, 2, fromfile, &err), ==, 0);
    g_assert_cmpint(o.vnc.kind, ==, VNC_UNIX);
    g_assert_cmpstr(o.vnc.path, ==, "/tmp/x.sock");
    options_clear(&o);
    g_unlink(conf);
    g_unlink(rom);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vnc/spec/tcp", test_tcp);
    g_test_add_func("/vnc/spec/unix-and-none", test_unix_and_none);
    g_test_add_func("/vnc/spec/non-loopback-needs-password", test_non_loopback);
    g_test_add_func("/vnc/spec/bad", test_bad);
    g_test_add_func("/vnc/expire-password-time", test_expiry);
    g_test_add_func("/vnc/extkey-keycodes", test_extkey);
    g_test_add_func("/vnc/options", test_options);
    return g_test_run();
}
