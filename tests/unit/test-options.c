/* Proves that sizes, the command line and the --config file are parsed and validated as documented. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "options.h"
#include "size_parse.h"

static char *tmpdir;
static GPtrArray *tmpfiles;

/* Creates NAME in the test's temporary directory (the cwd) and returns its absolute path. */
static const char *write_tmp(const char *name, const char *content)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    g_assert_true(g_file_set_contents(path, content, -1, NULL));
    g_ptr_array_add(tmpfiles, path);
    return path;
}

/* Runs options_parse on "deskvm" followed by ARGS (NULL-terminated) in a freshly allocated, mutable argv. */
static int parse_list(struct options *o, char **error, const char *const *args)
{
    GPtrArray *a = g_ptr_array_new();
    g_ptr_array_add(a, g_strdup("deskvm"));
    for (const char *const *p = args; *p; p++)
        g_ptr_array_add(a, g_strdup(*p));
    int argc = (int)a->len;
    g_ptr_array_add(a, NULL);
    char **argv = (char **)g_ptr_array_free(a, FALSE);
    *error = NULL;
    int rc = options_parse(o, argc, argv, error);
    g_strfreev(argv);
    return rc;
}

#define PARSE(o, err, ...) parse_list((o), (err), (const char *const[]){__VA_ARGS__, NULL})

/* Asserts that ARGS is rejected with exit code 2 and a one-line message containing WANT1 and (if set) WANT2.
 */
static void check_rejected(const char *const *args, const char *want1, const char *want2)
{
    struct options o;
    char *err = NULL;
    int rc = parse_list(&o, &err, args);
    if (rc != 2 || !err || !strstr(err, want1) || (want2 && !strstr(err, want2)))
        g_test_message("args[0]=%s: rc=%d error=%s", args[0] ? args[0] : "(none)", rc, err ? err : "(null)");
    g_assert_cmpint(rc, ==, 2);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, want1));
    if (want2)
        g_assert_nonnull(strstr(err, want2));
    g_assert_null(strchr(err, '\n'));
    g_free(err);
    options_clear(&o);
}

#define REJECT(want1, want2, ...) check_rejected((const char *const[]){__VA_ARGS__, NULL}, (want1), (want2))

static uint64_t size_ok(const char *s, uint64_t unit)
{
    uint64_t v = 0xdeadbeef;
    if (!size_parse(s, unit, &v))
        g_error("size_parse(\"%s\") failed", s);
    return v;
}

static void size_bad(const char *s, uint64_t unit)
{
    uint64_t v = 12345;
    if (size_parse(s, unit, &v))
        g_error("size_parse(\"%s\") accepted it as %" G_GUINT64_FORMAT, s, v);
    g_assert_cmpuint(v, ==, 12345);
}

/* ------------------------------------------------------------------ sizes */

static void test_size_suffixes(void)
{
    g_assert_cmpuint(size_ok("512M", 1), ==, 512ULL << 20);
    g_assert_cmpuint(size_ok("2G", 1), ==, 2ULL << 30);
    g_assert_cmpuint(size_ok("4096K", 1), ==, 4096ULL << 10);
    g_assert_cmpuint(size_ok("65536B", 1), ==, 65536);
    g_assert_cmpuint(size_ok("1T", 1), ==, 1ULL << 40);
    g_assert_cmpuint(size_ok("3g", 1), ==, 3ULL << 30);
    g_assert_cmpuint(size_ok("8MiB", 1), ==, 8ULL << 20);
    g_assert_cmpuint(size_ok("8MB", 1), ==, 8ULL << 20);
    g_assert_cmpuint(size_ok("0M", 1), ==, 0);
}

static void test_size_fraction(void)
{
    g_assert_cmpuint(size_ok("1.5G", 1), ==, 1536ULL << 20);
    g_assert_cmpuint(size_ok("0.5K", 1), ==, 512);
    g_assert_cmpuint(size_ok("2.25M", 1), ==, (2ULL << 20) + (256ULL << 10));
    g_assert_cmpuint(size_ok("1.0B", 1), ==, 1);
    /* nine fraction digits is the documented maximum */
    g_assert_cmpuint(size_ok("0.001953125K", 1), ==, 2);
}

static void test_size_fraction_of_terabyte(void)
{
    /* 255/256 T = 1020G: the fraction times the unit does not fit in 64 bits before the division */
    g_assert_cmpuint(size_ok("0.99609375T", 1), ==, 1020ULL << 30);
    g_assert_cmpuint(size_ok("1.5T", 1), ==, 1536ULL << 30);
}

static void test_size_bare_number_is_default_unit(void)
{
    g_assert_cmpuint(size_ok("64", 1ULL << 20), ==, 64ULL << 20);
    g_assert_cmpuint(size_ok("64", 1), ==, 64);
    g_assert_cmpuint(size_ok("1.5", 1ULL << 20), ==, 1536ULL << 10);
    /* an explicit suffix ignores the default unit */
    g_assert_cmpuint(size_ok("64B", 1ULL << 20), ==, 64);
}

static void test_size_rejects_malformed(void)
{
    static const char *const bad[] = {"",    "M",   "12X",  "1.2.3", "-1",  ".5",
                                      "5.",  "5.M", "0x10", " 1M",   "1M ", "1 M",
                                      "1e3", "1Mi", "+1",   "1.5x",  "M1",  "1.0000000001G"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        size_bad(bad[i], 1ULL << 20);
}

static void test_size_rejects_overflow(void)
{
    size_bad("99999999999T", 1);
    size_bad("16777216T", 1);
    size_bad("18446744073709551616", 1);
    size_bad("18446744073709551616B", 1ULL << 20);
    size_bad("99999999999999999999999", 1);
    size_bad("17179869184G", 1);
    g_assert_cmpuint(size_ok("16777215T", 1), ==, 16777215ULL << 40);
    g_assert_cmpuint(size_ok("18446744073709551615", 1), ==, UINT64_MAX);
    g_assert_cmpuint(size_ok("18446744073709551615B", 1ULL << 20), ==, UINT64_MAX);
}

static void test_size_rejects_fractional_bytes(void)
{
    size_bad("0.3B", 1);
    size_bad("1.5B", 1);
    size_bad("0.1K", 1);
    size_bad("1.5", 1);
}

/* ------------------------------------------------------------------ command line */

static void test_argv_defaults(void)
{
    struct options o;
    char *err = NULL;
    g_assert_cmpint(parse_list(&o, &err, (const char *const[]){NULL}), ==, 0);
    g_assert_null(err);
    g_assert_null(o.name);
    g_assert_cmpuint(o.memory, ==, OPTIONS_DEFAULT_MEMORY);
    g_assert_cmpuint(o.cpus, ==, 1);
    g_assert_cmpint(o.accel, ==, ACCEL_AUTO);
    g_assert_null(o.kernel);
    g_assert_null(o.initrd);
    g_assert_null(o.append);
    g_assert_cmpint(o.serial.kind, ==, CHARDEV_NONE);
    g_assert_cmpuint(o.qmp->len, ==, 0);
    g_assert_null(o.config);
    g_assert_false(o.daemonize);
    g_assert_null(o.pidfile);
    g_assert_cmpint(o.log_level, ==, LOG_LEVEL_INFO);
    g_assert_null(o.log_file);
    g_assert_false(o.paused);
    g_assert_false(o.help);
    g_assert_false(o.version);
    options_clear(&o);
}

static void test_argv_all_options_valid(void)
{
    const char *kernel = write_tmp("kernel", "not really a kernel");
    const char *initrd = write_tmp("initrd", "not really an initrd");
    g_autofree char *serial = g_build_filename(tmpdir, "serial.log", NULL);
    g_autofree char *pidfile = g_build_filename(tmpdir, "deskvm.pid", NULL);
    g_autofree char *logfile = g_build_filename(tmpdir, "deskvm.log", NULL);
    struct options o;
    char *err = NULL;
    int rc =
        PARSE(&o, &err, "--name", "vm-1", "--memory", "2G", "--cpus", "4", "--accel", "kvm", "--kernel",
              kernel, "--initrd", "initrd", "--append", "console=ttyS0 quiet", "--serial", "file:serial.log",
              "--qmp", "unix:/tmp/dvm-opt.sock", "--qmp", "tcp:127.0.0.1:4444", "--daemonize", "--pidfile",
              "deskvm.pid", "--log-level", "debug", "--log-file", "deskvm.log", "--paused");
    g_assert_null(err);
    g_assert_cmpint(rc, ==, 0);
    g_assert_cmpstr(o.name, ==, "vm-1");
    g_assert_cmpuint(o.memory, ==, 2ULL << 30);
    g_assert_cmpuint(o.cpus, ==, 4);
    g_assert_cmpint(o.accel, ==, ACCEL_KVM);
    g_assert_cmpstr(o.kernel, ==, kernel);
    g_assert_cmpstr(o.initrd, ==, initrd); /* relative path made absolute */
    g_assert_cmpstr(o.append, ==, "console=ttyS0 quiet");
    g_assert_cmpint(o.serial.kind, ==, CHARDEV_FILE);
    g_assert_cmpstr(o.serial.path, ==, serial);
    g_assert_cmpuint(o.qmp->len, ==, 2);
    struct listen_spec *q0 = &g_array_index(o.qmp, struct listen_spec, 0);
    struct listen_spec *q1 = &g_array_index(o.qmp, struct listen_spec, 1);
    g_assert_cmpint(q0->kind, ==, LISTEN_UNIX);
    g_assert_cmpstr(q0->path, ==, "/tmp/dvm-opt.sock");
    g_assert_cmpint(q1->kind, ==, LISTEN_TCP);
    g_assert_cmpstr(q1->host, ==, "127.0.0.1");
    g_assert_cmpuint(q1->port, ==, 4444);
    g_assert_true(o.daemonize);
    g_assert_cmpstr(o.pidfile, ==, pidfile);
    g_assert_cmpint(o.log_level, ==, LOG_LEVEL_DEBUG);
    g_assert_cmpstr(o.log_file, ==, logfile);
    g_assert_true(o.paused);
    g_assert_false(o.help);
    options_clear(&o);
}

static void test_argv_short_and_equals_forms(void)
{
    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "-m", "1024", "-S", "--cpus=2", "--accel=emu", "--name=x"), ==, 0);
    g_assert_cmpuint(o.memory, ==, 1ULL << 30);
    g_assert_true(o.paused);
    g_assert_cmpuint(o.cpus, ==, 2);
    g_assert_cmpint(o.accel, ==, ACCEL_EMU);
    g_assert_cmpstr(o.name, ==, "x");
    options_clear(&o);

    g_assert_cmpint(PARSE(&o, &err, "-m256M", "--accel", "auto", "--serial", "stdio"), ==, 0);
    g_assert_cmpuint(o.memory, ==, 256ULL << 20);
    g_assert_cmpint(o.accel, ==, ACCEL_AUTO);
    g_assert_cmpint(o.serial.kind, ==, CHARDEV_STDIO);
    options_clear(&o);
}

static void test_argv_memory_errors(void)
{
    REJECT("--memory: 'lots' is not a size", NULL, "--memory", "lots");
    REJECT("--memory: '8M' is below the minimum of 16M", NULL, "-m", "8M");
    REJECT("--memory: '2T' is above the maximum of 1024G", NULL, "--memory", "2T");
    REJECT("--memory: '1000.5' is not a whole number of MiB", NULL, "--memory", "1000.5");
    REJECT("--memory: '16385K' is not a whole number of MiB", NULL, "--memory", "16385K");
    REJECT("--memory", "is not a size", "--memory", "");

    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--memory", "16M"), ==, 0);
    g_assert_cmpuint(o.memory, ==, OPTIONS_MIN_MEMORY);
    options_clear(&o);
    g_assert_cmpint(PARSE(&o, &err, "--memory", "1T"), ==, 0);
    g_assert_cmpuint(o.memory, ==, OPTIONS_MAX_MEMORY);
    options_clear(&o);
}

static void test_argv_cpus_errors(void)
{
    REJECT("--cpus: '0' is not a CPU count from 1 to 64", NULL, "--cpus", "0");
    REJECT("--cpus: '65' is not a CPU count from 1 to 64", NULL, "--cpus", "65");
    REJECT("--cpus: 'abc' is not a CPU count from 1 to 64", NULL, "--cpus", "abc");
    REJECT("--cpus: '4x' is not a CPU count", NULL, "--cpus", "4x");
    REJECT("--cpus: '' is not a CPU count", NULL, "--cpus", "");
    REJECT("--cpus: '-1' is not a CPU count", NULL, "--cpus=-1");
    REJECT("--cpus: '99999999999999999999' is not", NULL, "--cpus", "99999999999999999999");

    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--cpus", "64"), ==, 0);
    g_assert_cmpuint(o.cpus, ==, 64);
    options_clear(&o);
}

static void test_argv_accel_error(void)
{
    REJECT("--accel: 'xen' is not kvm, emu, qtest or auto", NULL, "--accel", "xen");
    REJECT("--accel: 'KVM' is not kvm, emu, qtest or auto", NULL, "--accel", "KVM");
}

static void test_argv_name_errors(void)
{
    g_autofree char *long_name = g_strnfill(OPTIONS_MAX_NAME + 1, 'n');
    g_autofree char *max_name = g_strnfill(OPTIONS_MAX_NAME, 'n');
    REJECT("--name: must not be empty", NULL, "--name", "");
    REJECT("--name: longer than 128 characters", NULL, "--name", long_name);
    REJECT("--name: contains control characters", NULL, "--name", "a\tb");
    REJECT("--name: is not valid UTF-8", NULL, "--name", "caf\xe9");

    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--name", max_name), ==, 0);
    g_assert_cmpstr(o.name, ==, max_name);
    options_clear(&o);
}

static void test_argv_unknown_option(void)
{
    REJECT("ambiguous option '--bogus'", "deskvm --help", "--bogus");
    REJECT("ambiguous option '--bogus=1'", NULL, "--bogus=1");
    REJECT("unknown option '-x'", NULL, "-x");
    REJECT("unknown option '-x'", NULL, "-Sx");
    /* --p is an ambiguous abbreviation of --paused and --pidfile */
    REJECT("ambiguous option '--p'", NULL, "--p");
}

static void test_argv_flag_with_value_rejected(void)
{
    /* getopt reports a value given to a flag with the option's own code; the message must name the option */
    REJECT("--daemonize does not take a value", NULL, "--daemonize=yes");
    REJECT("--paused does not take a value", NULL, "--paused=1");
}

static void test_argv_missing_value(void)
{
    REJECT("--memory needs a value", NULL, "--memory");
    REJECT("-m needs a value", NULL, "-m");
    REJECT("--qmp needs a value", NULL, "--name", "x", "--qmp");
}

static void test_argv_positional_argument(void)
{
    REJECT("unexpected argument 'disk.img'", "takes only options", "disk.img");
    REJECT("unexpected argument 'disk.img'", NULL, "--cpus", "2", "disk.img", "--paused");
    REJECT("unexpected argument 'extra'", NULL, "--", "extra");
}

static void test_argv_kernel_files(void)
{
    REJECT("--kernel: '/nonexistent/bzImage' does not exist", NULL, "--kernel", "/nonexistent/bzImage");
    REJECT("--kernel: '/' is not a regular file", NULL, "--kernel", "/");
    REJECT("--kernel: needs a file name", NULL, "--kernel", "");
    REJECT("--initrd: 'missing.img' does not exist", NULL, "--initrd", "missing.img");
}

static void test_argv_initrd_append_need_kernel(void)
{
    write_tmp("initrd", "x");
    REJECT("--initrd: only allowed together with --kernel", NULL, "--initrd", "initrd");
    REJECT("--append: only allowed together with --kernel", NULL, "--append", "console=ttyS0");
    g_autofree char *long_append = g_strnfill(2048, 'a');
    write_tmp("kernel", "x");
    REJECT("--append: longer than 2047 bytes", NULL, "--kernel", "kernel", "--append", long_append);
}

static void test_argv_daemonize_serial_stdio(void)
{
    REJECT("--serial: stdio cannot be used with --daemonize", NULL, "--daemonize", "--serial", "stdio");
    REJECT("--serial: stdio cannot be used with --daemonize", NULL, "--serial", "stdio", "--daemonize");
}

static void test_argv_option_given_twice(void)
{
    REJECT("--name: given more than once", NULL, "--name", "a", "--name", "b");
    REJECT("--memory: given more than once", NULL, "-m", "1G", "--memory", "2G");
    REJECT("--serial: given more than once", NULL, "--serial", "none", "--serial", "none");

    /* flags may repeat, and --qmp is repeatable */
    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--paused", "-S", "--qmp", "tcp:127.0.0.1:1", "--qmp", "tcp:127.0.0.1:2"),
                    ==, 0);
    g_assert_true(o.paused);
    g_assert_cmpuint(o.qmp->len, ==, 2);
    options_clear(&o);
}

static void test_argv_qmp_addresses(void)
{
    REJECT("--qmp: '10.0.0.1' is not a loopback address", NULL, "--qmp", "tcp:10.0.0.1:4444");
    REJECT("--qmp", "loopback", "--qmp", "tcp:0.0.0.0:4444");
    REJECT("--qmp", "wait=on", "--qmp", "unix:/tmp/q.sock,server=on,wait=on");
    REJECT("--qmp", "not unix:PATH or tcp:HOST:PORT", "--qmp", "/tmp/q.sock");
    REJECT("--qmp: unix:/tmp/q.sock given twice", NULL, "--qmp", "unix:/tmp/q.sock", "--qmp",
           "unix:/tmp/q.sock");
    REJECT("--serial: unix:/tmp/q.sock is also a QMP socket", NULL, "--qmp", "unix:/tmp/q.sock", "--serial",
           "unix:/tmp/q.sock");

    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--qmp", "tcp:127.0.0.1:0"), ==, 0);
    struct listen_spec *q = &g_array_index(o.qmp, struct listen_spec, 0);
    g_assert_cmpint(q->kind, ==, LISTEN_TCP);
    g_assert_cmpstr(q->host, ==, "127.0.0.1");
    g_assert_cmpuint(q->port, ==, 0);
    options_clear(&o);

    g_autofree char *cwd = g_get_current_dir();
    g_autofree char *abs = g_build_filename(cwd, "qmp.sock", NULL);
    g_assert_cmpint(PARSE(&o, &err, "--qmp", "unix:qmp.sock,server=on,wait=off"), ==, 0);
    q = &g_array_index(o.qmp, struct listen_spec, 0);
    g_assert_cmpint(q->kind, ==, LISTEN_UNIX);
    g_assert_cmpstr(q->path, ==, abs);
    g_assert_true(g_path_is_absolute(q->path));
    options_clear(&o);
}

static void test_argv_log_level(void)
{
    REJECT("--log-level: 'verbose' is not error, warn, info or debug", NULL, "--log-level", "verbose");

    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--log-level", "warning"), ==, 0);
    g_assert_cmpint(o.log_level, ==, LOG_LEVEL_WARN);
    options_clear(&o);
}

static void test_argv_help_and_version(void)
{
    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--help"), ==, 0);
    g_assert_true(o.help);
    g_assert_false(o.version);
    options_clear(&o);
    g_assert_cmpint(PARSE(&o, &err, "-h"), ==, 0);
    g_assert_true(o.help);
    options_clear(&o);
    g_assert_cmpint(PARSE(&o, &err, "--version"), ==, 0);
    g_assert_true(o.version);
    g_assert_false(o.help);
    options_clear(&o);
    g_assert_cmpint(PARSE(&o, &err, "-V"), ==, 0);
    g_assert_true(o.version);
    options_clear(&o);
    /* --help does not read the config file or validate the combination */
    g_assert_cmpint(PARSE(&o, &err, "--help", "--config", "/nonexistent.ini", "--append", "x"), ==, 0);
    g_assert_null(err);
    g_assert_true(o.help);
    options_clear(&o);
}

static void test_argv_reparse_starts_clean(void)
{
    /* The first parse stops in the middle of "-xS"; the second must not continue with the stale "S". */
    REJECT("unknown option '-x'", NULL, "-xS");
    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--cpus", "3"), ==, 0);
    g_assert_false(o.paused);
    g_assert_cmpuint(o.cpus, ==, 3);
    options_clear(&o);
    g_assert_cmpint(parse_list(&o, &err, (const char *const[]){NULL}), ==, 0);
    g_assert_false(o.paused);
    options_clear(&o);
}

static void test_help_lists_every_option(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    g_assert_nonnull(f);
    options_print_help(f);
    fclose(f);
    static const char *const names[] = {
        "--name",      "-m, --memory", "--cpus",       "--accel",       "--kernel",    "--initrd",
        "--append",    "--serial",     "--qmp",        "--config",      "--daemonize", "--pidfile",
        "--log-level", "--log-file",   "-S, --paused", "-V, --version", "-h, --help"};
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
        g_assert_nonnull(strstr(text, names[i]));
    g_assert_true(g_str_has_prefix(text, "Usage: deskvm [OPTIONS]\n"));
    free(text);
}

static void test_accel_names(void)
{
    g_assert_cmpstr(options_accel_name(ACCEL_AUTO), ==, "auto");
    g_assert_cmpstr(options_accel_name(ACCEL_KVM), ==, "kvm");
    g_assert_cmpstr(options_accel_name(ACCEL_EMU), ==, "emu");
}

/* ------------------------------------------------------------------ config file */

static void test_config_keys_applied(void)
{
    const char *kernel = write_tmp("kernel", "k");
    const char *cfg = write_tmp("all.ini", "# comment\n"
                                           "[deskvm]\n"
                                           "name=from-file\n"
                                           "memory=1G\n"
                                           "cpus=3\n"
                                           "accel=emu\n"
                                           "kernel=kernel\n"
                                           "append=console=ttyS0\n"
                                           "serial=none\n"
                                           "log-level=warning\n"
                                           "paused=true\n");
    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--config", cfg), ==, 0);
    g_assert_null(err);
    g_assert_cmpstr(o.config, ==, cfg);
    g_assert_cmpstr(o.name, ==, "from-file");
    g_assert_cmpuint(o.memory, ==, 1ULL << 30);
    g_assert_cmpuint(o.cpus, ==, 3);
    g_assert_cmpint(o.accel, ==, ACCEL_EMU);
    g_assert_cmpstr(o.kernel, ==, kernel);
    g_assert_cmpstr(o.append, ==, "console=ttyS0");
    g_assert_cmpint(o.log_level, ==, LOG_LEVEL_WARN);
    g_assert_true(o.paused);
    g_assert_false(o.daemonize);
    options_clear(&o);
}

static void test_config_command_line_wins(void)
{
    const char *cfg = write_tmp("wins.ini", "[deskvm]\nname=file-name\nmemory=1G\ncpus=3\n"
                                            "qmp=tcp:127.0.0.1:1111\n");
    struct options o;
    char *err = NULL;
    g_assert_cmpint(
        PARSE(&o, &err, "--name", "cli-name", "--config", cfg, "-m", "2G", "--qmp", "tcp:::1:2222"), ==, 0);
    g_assert_cmpstr(o.name, ==, "cli-name");
    g_assert_cmpuint(o.memory, ==, 2ULL << 30);
    g_assert_cmpuint(o.cpus, ==, 3);
    g_assert_cmpuint(o.qmp->len, ==, 1);
    struct listen_spec *q = &g_array_index(o.qmp, struct listen_spec, 0);
    g_assert_cmpstr(q->host, ==, "::1");
    g_assert_cmpuint(q->port, ==, 2222);
    options_clear(&o);
}

static void test_config_unknown_key(void)
{
    const char *cfg = write_tmp("unknown-key.ini", "[deskvm]\nname=x\ncolour=blue\n");
    g_autofree char *want = g_strdup_printf("config %s: unknown key 'colour'", cfg);
    REJECT(want, NULL, "--config", cfg);
    /* command-line-only options are not config keys */
    const char *cfg2 = write_tmp("cli-only.ini", "[deskvm]\nhelp=true\n");
    g_autofree char *want2 = g_strdup_printf("config %s: unknown key 'help'", cfg2);
    REJECT(want2, NULL, "--config", cfg2);
    const char *cfg3 = write_tmp("nested.ini", "[deskvm]\nconfig=/etc/other.ini\n");
    REJECT("unknown key 'config'", NULL, "--config", cfg3);
}

static void test_config_unknown_group(void)
{
    const char *cfg = write_tmp("group.ini", "[deskvm]\nname=x\n[vm]\nmemory=1G\n");
    g_autofree char *want = g_strdup_printf("config %s: unknown group [vm]", cfg);
    REJECT(want, NULL, "--config", cfg);
}

static void test_config_missing_file(void)
{
    REJECT("--config: /nonexistent/deskvm.ini:", NULL, "--config", "/nonexistent/deskvm.ini");
    REJECT("--config: needs a file name", NULL, "--config", "");
    const char *cfg = write_tmp("garbage.ini", "this is not an ini file\n");
    REJECT("--config:", cfg, "--config", cfg);
}

static void test_config_bad_value_names_file_and_key(void)
{
    const char *cfg = write_tmp("badmem.ini", "[deskvm]\nmemory=tiny\n");
    g_autofree char *want = g_strdup_printf("config %s: key 'memory': 'tiny' is not a size", cfg);
    REJECT(want, NULL, "--config", cfg);
    const char *cfg2 = write_tmp("badbool.ini", "[deskvm]\ndaemonize=maybe\n");
    REJECT("key 'daemonize': 'maybe' is not true or false", NULL, "--config", cfg2);
}

static void test_config_bool_keys(void)
{
    const char *cfg = write_tmp("bool.ini", "[deskvm]\ndaemonize=true\npaused=off\n");
    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--config", cfg), ==, 0);
    g_assert_true(o.daemonize);
    g_assert_false(o.paused);
    options_clear(&o);
    /* the file's daemonize=true combined with --serial stdio is still validated */
    REJECT("--serial: stdio cannot be used with --daemonize", NULL, "--config", cfg, "--serial", "stdio");
}

static void test_config_qmp_list(void)
{
    const char *cfg = write_tmp("qmp.ini", "[deskvm]\nqmp=unix:/tmp/dvm-cfg.sock;tcp:127.0.0.1:0;\n");
    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--config", cfg), ==, 0);
    g_assert_cmpuint(o.qmp->len, ==, 2);
    struct listen_spec *a = &g_array_index(o.qmp, struct listen_spec, 0);
    struct listen_spec *b = &g_array_index(o.qmp, struct listen_spec, 1);
    g_assert_cmpint(a->kind, ==, LISTEN_UNIX);
    g_assert_cmpstr(a->path, ==, "/tmp/dvm-cfg.sock");
    g_assert_cmpint(b->kind, ==, LISTEN_TCP);
    g_assert_cmpstr(b->host, ==, "127.0.0.1");
    g_assert_cmpuint(b->port, ==, 0);
    options_clear(&o);

    const char *bad = write_tmp("qmpbad.ini", "[deskvm]\nqmp=tcp:127.0.0.1:0;tcp:10.0.0.1:1\n");
    REJECT("key 'qmp': '10.0.0.1' is not a loopback address", NULL, "--config", bad);
}

static void test_config_validation_applies(void)
{
    write_tmp("initrd", "x");
    const char *cfg = write_tmp("initrd.ini", "[deskvm]\ninitrd=initrd\n");
    REJECT("--initrd: only allowed together with --kernel", NULL, "--config", cfg);
}

static void test_config_empty_file(void)
{
    const char *cfg = write_tmp("empty.ini", "");
    struct options o;
    char *err = NULL;
    g_assert_cmpint(PARSE(&o, &err, "--config", cfg, "--cpus", "2"), ==, 0);
    g_assert_cmpuint(o.cpus, ==, 2);
    g_assert_cmpuint(o.memory, ==, OPTIONS_DEFAULT_MEMORY);
    options_clear(&o);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("deskvm-options-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    g_assert_no_errno(chdir(tmpdir));
    tmpfiles = g_ptr_array_new_with_free_func(g_free);

    g_test_add_func("/options/size/suffixes", test_size_suffixes);
    g_test_add_func("/options/size/fraction", test_size_fraction);
    g_test_add_func("/options/size/fraction-of-terabyte", test_size_fraction_of_terabyte);
    g_test_add_func("/options/size/bare-number-is-default-unit", test_size_bare_number_is_default_unit);
    g_test_add_func("/options/size/rejects-malformed", test_size_rejects_malformed);
    g_test_add_func("/options/size/rejects-overflow", test_size_rejects_overflow);
    g_test_add_func("/options/size/rejects-fractional-bytes", test_size_rejects_fractional_bytes);
    g_test_add_func("/options/argv/defaults", test_argv_defaults);
    g_test_add_func("/options/argv/all-options-valid", test_argv_all_options_valid);
    g_test_add_func("/options/argv/short-and-equals-forms", test_argv_short_and_equals_forms);
    g_test_add_func("/options/argv/memory-errors", test_argv_memory_errors);
    g_test_add_func("/options/argv/cpus-errors", test_argv_cpus_errors);
    g_test_add_func("/options/argv/accel-error", test_argv_accel_error);
    g_test_add_func("/options/argv/name-errors", test_argv_name_errors);
    g_test_add_func("/options/argv/unknown-option", test_argv_unknown_option);
    g_test_add_func("/options/argv/flag-with-value-names-option", test_argv_flag_with_value_rejected);
    g_test_add_func("/options/argv/missing-value", test_argv_missing_value);
    g_test_add_func("/options/argv/positional-argument-rejected", test_argv_positional_argument);
    g_test_add_func("/options/argv/kernel-files-checked", test_argv_kernel_files);
    g_test_add_func("/options/argv/initrd-append-need-kernel", test_argv_initrd_append_need_kernel);
    g_test_add_func("/options/argv/daemonize-excludes-serial-stdio", test_argv_daemonize_serial_stdio);
    g_test_add_func("/options/argv/option-given-twice", test_argv_option_given_twice);
    g_test_add_func("/options/argv/qmp-addresses", test_argv_qmp_addresses);
    g_test_add_func("/options/argv/log-level", test_argv_log_level);
    g_test_add_func("/options/argv/help-and-version", test_argv_help_and_version);
    g_test_add_func("/options/argv/reparse-starts-clean", test_argv_reparse_starts_clean);
    g_test_add_func("/options/help/lists-every-option", test_help_lists_every_option);
    g_test_add_func("/options/accel/names", test_accel_names);
    g_test_add_func("/options/config/keys-applied", test_config_keys_applied);
    g_test_add_func("/options/config/command-line-wins", test_config_command_line_wins);
    g_test_add_func("/options/config/unknown-key-names-file-and-key", test_config_unknown_key);
    g_test_add_func("/options/config/unknown-group", test_config_unknown_group);
    g_test_add_func("/options/config/missing-or-unreadable-file", test_config_missing_file);
    g_test_add_func("/options/config/bad-value-names-file-and-key", test_config_bad_value_names_file_and_key);
    g_test_add_func("/options/config/bool-keys", test_config_bool_keys);
    g_test_add_func("/options/config/qmp-list", test_config_qmp_list);
    g_test_add_func("/options/config/validation-applies", test_config_validation_applies);
    g_test_add_func("/options/config/empty-file", test_config_empty_file);

    int rc = g_test_run();

    for (guint i = 0; i < tmpfiles->len; i++)
        g_unlink(tmpfiles->pdata[i]);
    g_ptr_array_unref(tmpfiles);
    g_assert_no_errno(chdir("/"));
    g_rmdir(tmpdir);
    g_free(tmpdir);
    return rc;
}
