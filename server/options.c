/* Command-line and --config parsing. Each option has one setter used for both sources, so a value is validated
 * the same way wherever it comes from. */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bochs_display.h"
#include "keymap.h"
#include "size_parse.h"
#include "virtio_serial.h"

#define CONFIG_GROUP "deskvm"

/* The setter gets the value and returns NULL or an error reason (caller frees), which the caller prefixes with the
 * option or config key. */
typedef char *(*option_setter)(struct options *opts, const char *value);

enum option_arg {
    ARG_NONE, /* a flag on the command line, a boolean in the config file */
    ARG_REQUIRED,
};

struct option_def {
    const char *name;
    int short_name;
    enum option_arg arg;
    bool in_config; /* accepted as a key in the --config file */
    bool repeatable;
    option_setter set;
    const char *metavar;
    const char *help;
};

static char *set_name(struct options *o, const char *v)
{
    if (!*v)
        return g_strdup("must not be empty");
    if (strlen(v) > OPTIONS_MAX_NAME)
        return g_strdup_printf("longer than %d characters", OPTIONS_MAX_NAME);
    if (!g_utf8_validate(v, -1, NULL))
        return g_strdup("is not valid UTF-8");
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return g_strdup("contains control characters");
    g_free(o->name);
    o->name = g_strdup(v);
    return NULL;
}

static char *set_memory(struct options *o, const char *v)
{
    uint64_t bytes;
    if (!size_parse(v, 1ULL << 20, &bytes))
        return g_strdup_printf("'%s' is not a size (examples: 512M, 2G; a bare number is MiB)", v);
    if (bytes < OPTIONS_MIN_MEMORY)
        return g_strdup_printf("'%s' is below the minimum of %lluM", v, OPTIONS_MIN_MEMORY >> 20);
    if (bytes > OPTIONS_MAX_MEMORY)
        return g_strdup_printf("'%s' is above the maximum of %lluG", v, OPTIONS_MAX_MEMORY >> 30);
    if (bytes & ((1ULL << 20) - 1))
        return g_strdup_printf("'%s' is not a whole number of MiB", v);
    o->memory = bytes;
    return NULL;
}

static char *set_cpus(struct options *o, const char *v)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < 1 || n > OPTIONS_MAX_CPUS)
        return g_strdup_printf("'%s' is not a CPU count from 1 to %d", v, OPTIONS_MAX_CPUS);
    o->cpus = (unsigned)n;
    return NULL;
}

static char *set_accel(struct options *o, const char *v)
{
    if (!strcmp(v, "auto"))
        o->accel = ACCEL_AUTO;
    else if (!strcmp(v, "kvm"))
        o->accel = ACCEL_KVM;
    else if (!strcmp(v, "emu"))
        o->accel = ACCEL_EMU;
    else if (!strcmp(v, "qtest"))
        o->accel = ACCEL_QTEST;
    else
        return g_strdup_printf("'%s' is not kvm, emu, qtest or auto", v);
    return NULL;
}

static char *set_readable_file(char **slot, const char *v)
{
    if (!*v)
        return g_strdup("needs a file name");
    g_autofree char *abs = g_canonicalize_filename(v, NULL);
    if (!g_file_test(abs, G_FILE_TEST_EXISTS))
        return g_strdup_printf("'%s' does not exist", v);
    if (!g_file_test(abs, G_FILE_TEST_IS_REGULAR))
        return g_strdup_printf("'%s' is not a regular file", v);
    if (access(abs, R_OK) != 0)
        return g_strdup_printf("'%s' is not readable: %s", v, g_strerror(errno));
    g_free(*slot);
    *slot = g_steal_pointer(&abs);
    return NULL;
}

static char *set_kernel(struct options *o, const char *v)
{
    return set_readable_file(&o->kernel, v);
}

static char *set_initrd(struct options *o, const char *v)
{
    return set_readable_file(&o->initrd, v);
}

static char *set_firmware(struct options *o, const char *v)
{
    return set_readable_file(&o->firmware, v);
}

static char *set_device(struct options *o, const char *v)
{
    if (!strcmp(v, "pci-testdev")) {
        o->test_device = true;
        return NULL;
    }
    if (!strcmp(v, "virtio-keyboard")) {
        o->virtio_keyboard = true;
        return NULL;
    }
    if (!strcmp(v, "virtio-tablet")) {
        o->virtio_tablet = true;
        return NULL;
    }
    return g_strdup_printf("'%s' is not a device deskvm knows (available: pci-testdev, virtio-keyboard, "
                           "virtio-tablet)", v);
}

static char *set_keymap(struct options *o, const char *v)
{
    char *err = NULL;
    if (!keymap_layout_valid(v, &err))
        return err;
    g_free(o->keymap);
    o->keymap = g_strdup(v);
    return NULL;
}

static char *set_disk(struct options *o, const char *v)
{
    char *err = NULL;
    struct virtio_blk_conf conf;
    if (o->disks->len >= VIRTIO_BLK_MAX_DISKS)
        return g_strdup_printf("at most %d disks", VIRTIO_BLK_MAX_DISKS);
    if (!virtio_blk_conf_parse(v, &conf, &err))
        return err;
    g_array_append_val(o->disks, conf);
    return NULL;
}

static char *set_trace_cpu(struct options *o, const char *v)
{
    if (!strcmp(v, "0") || !strcmp(v, "1") || !strcmp(v, "2")) {
        o->trace_cpu = v[0] - '0';
        return NULL;
    }
    return g_strdup_printf("'%s' is not 0 (off), 1 (exceptions and interrupts) or 2 (every instruction)", v);
}

static char *set_display(struct options *o, const char *v)
{
    if (!strcmp(v, "none"))
        o->display = DISPLAY_NONE;
    else if (!strcmp(v, "bochs"))
        o->display = DISPLAY_BOCHS;
    else if (!strcmp(v, "virtio-gpu"))
        o->display = DISPLAY_VIRTIO_GPU;
    else if (!strcmp(v, "qxl"))
        o->display = DISPLAY_QXL;
    else
        return g_strdup_printf("'%s' is not bochs, virtio-gpu, qxl or none", v);
    return NULL;
}

static char *set_resolution(struct options *o, const char *v)
{
    unsigned w = 0, h = 0;
    int n = 0;
    /* Digits only: sscanf alone would take signs, spaces and leading junk. */
    if (strspn(v, "0123456789x") != strlen(v) || sscanf(v, "%5ux%5u%n", &w, &h, &n) != 2 || v[n])
        return g_strdup_printf("'%s' is not WIDTHxHEIGHT, e.g. 1280x800", v);
    char *why = NULL;
    if (!bochs_display_resolution_valid(w, h, &why))
        return why;
    o->display_width = w;
    o->display_height = h;
    return NULL;
}

static char *set_append(struct options *o, const char *v)
{
    /* The boot protocol limits the command line; 2047 bytes is the x86 COMMAND_LINE_SIZE of Linux 6.1. */
    if (strlen(v) > 2047)
        return g_strdup("longer than 2047 bytes, the kernel's command-line limit");
    g_free(o->append);
    o->append = g_strdup(v);
    return NULL;
}

static char *set_serial(struct options *o, const char *v)
{
    char *err = NULL;
    struct chardev_spec spec;
    if (!chardev_spec_parse(v, &spec, &err))
        return err;
    chardev_spec_clear(&o->serial);
    o->serial = spec;
    return NULL;
}

static char *add_serial_port(struct options *o, struct serial_port_spec *spec)
{
    if (o->serial_ports->len >= VIRTIO_SERIAL_PORTS_MAX) {
        serial_port_spec_clear(spec);
        return g_strdup_printf("at most %d virtio-serial ports", VIRTIO_SERIAL_PORTS_MAX);
    }
    g_array_append_val(o->serial_ports, *spec);
    return NULL;
}

static char *set_serial_port(struct options *o, const char *v)
{
    char *err = NULL;
    struct serial_port_spec spec;
    if (!serial_port_spec_parse(v, &spec, &err))
        return err;
    return add_serial_port(o, &spec);
}

/* QEMU's -object secret,id=ID,data=STRING|file=PATH: a password other options name by id instead of carrying it
 * on the command line. Only the secret type is known. */
static char *set_object(struct options *o, const char *v)
{
    g_auto(GStrv) parts = g_strsplit(v, ",", -1);
    if (!parts[0] || strcmp(parts[0], "secret"))
        return g_strdup_printf("'%s': only secret,id=ID,data=STRING|file=PATH objects are known",
                               parts[0] ? parts[0] : "");
    const char *id = NULL, *data = NULL, *file = NULL;
    for (int i = 1; parts[i]; i++) {
        const char *eq = strchr(parts[i], '=');
        if (!eq)
            return g_strdup_printf("secret: '%s' is not KEY=VALUE", parts[i]);
        g_autofree char *key = g_strndup(parts[i], (gsize)(eq - parts[i]));
        if (!strcmp(key, "id"))
            id = eq + 1;
        else if (!strcmp(key, "data"))
            data = eq + 1;
        else if (!strcmp(key, "file"))
            file = eq + 1;
        else if (!strcmp(key, "format") && !strcmp(eq + 1, "raw"))
            continue;
        else
            return g_strdup_printf("secret: unknown parameter '%s' (known: id, data, file, format=raw)", key);
    }
    if (!id || !*id)
        return g_strdup("secret: needs id=ID");
    if (!data == !file)
        return g_strdup_printf("secret %s: needs one of data= or file=", id);
    if (g_hash_table_contains(o->secrets, id))
        return g_strdup_printf("secret: id '%s' given twice", id);
    char *value = NULL;
    if (file) {
        GError *gerr = NULL;
        gsize len;
        if (!g_file_get_contents(file, &value, &len, &gerr)) {
            char *err = g_strdup_printf("secret %s: %s", id, gerr->message);
            g_error_free(gerr);
            return err;
        }
        if (strlen(value) != len) {
            g_free(value);
            return g_strdup_printf("secret %s: %s holds a NUL byte", id, file);
        }
    } else {
        value = g_strdup(data);
    }
    g_hash_table_insert(o->secrets, g_strdup(id), value);
    return NULL;
}

static char *set_guest_agent(struct options *o, const char *v)
{
    char *err = NULL;
    struct serial_port_spec spec;
    if (!serial_port_spec_parse_guest_agent(v, &spec, &err))
        return err;
    return add_serial_port(o, &spec);
}

static char *set_qmp(struct options *o, const char *v)
{
    char *err = NULL;
    struct listen_spec spec;
    if (!listen_spec_parse(v, &spec, &err))
        return err;
    g_array_append_val(o->qmp, spec);
    return NULL;
}

static char *set_qtest(struct options *o, const char *v)
{
    char *err = NULL;
    struct listen_spec spec;
    if (!listen_spec_parse(v, &spec, &err))
        return err;
    if (spec.kind != LISTEN_UNIX) {
        listen_spec_clear(&spec);
        return g_strdup("the test accelerator listens on unix sockets only");
    }
    listen_spec_clear(&o->qtest);
    o->qtest = spec;
    return NULL;
}

static char *set_gdb(struct options *o, const char *v)
{
    char *err = NULL;
    struct listen_spec spec;
    /* QEMU's "-gdb tcp::1234" form means the loopback address here. */
    g_autofree char *full = g_str_has_prefix(v, "tcp::") ? g_strconcat("tcp:127.0.0.1:", v + 5, NULL) : NULL;
    if (!listen_spec_parse(full ? full : v, &spec, &err))
        return err;
    listen_spec_clear(&o->gdb);
    o->gdb = spec;
    return NULL;
}

static char *set_spice(struct options *o, const char *v)
{
    char *err = NULL;
    struct spice_spec spec;
    if (!spice_spec_parse(v, &spec, &err))
        return err;
    spice_spec_clear(&o->spice);
    o->spice = spec;
    return NULL;
}

static char *set_vnc(struct options *o, const char *v)
{
    char *err = NULL;
    struct vnc_spec spec;
    if (!vnc_spec_parse(v, &spec, &err))
        return err;
    vnc_spec_clear(&o->vnc);
    o->vnc = spec;
    return NULL;
}

static char *set_config(struct options *o, const char *v)
{
    if (!*v)
        return g_strdup("needs a file name");
    g_free(o->config);
    o->config = g_strdup(v);
    return NULL;
}

static char *set_bool(bool *slot, const char *v)
{
    if (!v || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "1"))
        *slot = true;
    else if (!strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "0"))
        *slot = false;
    else
        return g_strdup_printf("'%s' is not true or false", v);
    return NULL;
}

static char *set_daemonize(struct options *o, const char *v)
{
    return set_bool(&o->daemonize, v);
}

static char *set_paused(struct options *o, const char *v)
{
    return set_bool(&o->paused, v);
}

static char *set_help(struct options *o, const char *v)
{
    o->help = true;
    return NULL;
}

static char *set_version(struct options *o, const char *v)
{
    o->version = true;
    return NULL;
}

static char *set_writable_path(char **slot, const char *v)
{
    if (!*v)
        return g_strdup("needs a file name");
    g_free(*slot);
    *slot = g_canonicalize_filename(v, NULL);
    return NULL;
}

static char *set_pidfile(struct options *o, const char *v)
{
    return set_writable_path(&o->pidfile, v);
}

static char *set_log_file(struct options *o, const char *v)
{
    return set_writable_path(&o->log_file, v);
}

static char *set_log_level(struct options *o, const char *v)
{
    if (!log_level_parse(v, &o->log_level))
        return g_strdup_printf("'%s' is not error, warn, info or debug", v);
    return NULL;
}

static const struct option_def option_defs[] = {
    {"name", 0, ARG_REQUIRED, true, false, set_name, "NAME", "name of the VM (QMP query-name, logs)"},
    {"memory", 'm', ARG_REQUIRED, true, false, set_memory, "SIZE", "guest RAM, e.g. 512M or 2G (default 512M)"},
    {"cpus", 0, ARG_REQUIRED, true, false, set_cpus, "N", "number of vCPUs (default 1)"},
    {"accel", 0, ARG_REQUIRED, true, false, set_accel, "kvm|emu|qtest|auto", "CPU backend (default auto)"},
    {"qtest", 0, ARG_REQUIRED, false, false, set_qtest, "unix:PATH",
     "with --accel qtest: the socket a test drives the CPU-less machine through"},
    {"kernel", 0, ARG_REQUIRED, true, false, set_kernel, "FILE", "Linux kernel (bzImage or vmlinux) to boot"},
    {"initrd", 0, ARG_REQUIRED, true, false, set_initrd, "FILE", "initial ramdisk (needs --kernel)"},
    {"append", 0, ARG_REQUIRED, true, false, set_append, "CMDLINE", "kernel command line (needs --kernel)"},
    {"firmware", 0, ARG_REQUIRED, true, false, set_firmware, "FILE",
     "firmware ROM image mapped below 4 GiB, run from the reset vector (QEMU's -bios)"},
    {"device", 0, ARG_REQUIRED, true, true, set_device, "NAME",
     "add a device: virtio-keyboard, virtio-tablet, pci-testdev (for tests)"},
    {"keymap", 0, ARG_REQUIRED, true, false, set_keymap, "LAYOUT",
     "keyboard layout of the guest, for clients that send keysyms (XKB name such as us, de, fr:bepo; default us)"},
    {"disk", 0, ARG_REQUIRED, true, true, set_disk, "file=PATH[,format=raw|qcow2][,...]",
     "add a virtio-blk disk (repeatable, up to 8); also readonly=on|off, cache=writeback|none|unsafe, "
     "discard=unmap|ignore"},
    {"display", 0, ARG_REQUIRED, true, false, set_display, "bochs|virtio-gpu|qxl|none",
     "display device: bochs (bochs-display, Linux's bochs DRM driver), virtio-gpu (2D, Linux's virtio_gpu "
     "driver), qxl (qxl-vga, Linux's qxl driver; needs --spice) or none (default)"},
    {"resolution", 0, ARG_REQUIRED, true, false, set_resolution, "WxH",
     "the display's preferred mode, offered to the guest through EDID (default 1024x768)"},
    {"trace-cpu", 0, ARG_REQUIRED, true, false, set_trace_cpu, "0|1|2",
     "software CPU trace to the log: 1 exceptions and interrupts, 2 every instruction (slow)"},
    {"serial", 0, ARG_REQUIRED, true, false, set_serial, "stdio|file:PATH|unix:PATH|none",
     "where the serial console goes (default none)"},
    {"serial-port", 0, ARG_REQUIRED, true, true, set_serial_port, "name=NAME,path=unix:PATH",
     "add a virtio-serial port /dev/virtio-ports/NAME whose host end is a unix socket (repeatable, up to "
     "30)"},
    {"guest-agent", 0, ARG_REQUIRED, true, false, set_guest_agent, "unix:PATH",
     "the QEMU guest agent's port (org.qemu.guest_agent.0) on a unix socket; same as --serial-port "
     "name=org.qemu.guest_agent.0,path=unix:PATH"},
    {"qmp", 0, ARG_REQUIRED, true, true, set_qmp, "unix:PATH|tcp:127.0.0.1:PORT",
     "QMP control socket (repeatable)"},
    {"gdb", 0, ARG_REQUIRED, true, false, set_gdb, "tcp:127.0.0.1:PORT|unix:PATH",
     "GDB remote stub: one debugger at a time; attaching stops the VM, detaching resumes it"},
    {"vnc", 0, ARG_REQUIRED, true, false, set_vnc, "HOST:DISPLAY[,password=on][,websocket=PORT]|unix:PATH|none",
     "VNC server on port 5900+DISPLAY (127.0.0.1 only unless password=on or insecure=on) or a unix socket; "
     "password=on: clients need the password QMP set_password sets; websocket=PORT: a second port for noVNC"},
    {"spice", 0, ARG_REQUIRED, true, false, set_spice,
     "port=N[,addr=127.0.0.1][,disable-ticketing=on|password-secret=ID][,tls-port=N,x509-dir=DIR][,...]"
     "|unix=on,addr=PATH|none",
     "SPICE server for remote-viewer (QEMU's -spice keys; also password=PW, image-compression, jpeg-wan-compression, "
     "zlib-glz-wan-compression, streaming-video, playback-compression, agent-mouse, disable-copy-paste, "
     "disable-agent-file-xfer, ipv4, ipv6). Clients are refused until QMP set_password unless "
     "disable-ticketing=on or password= is given; non-loopback addresses need a password or insecure=on. "
     "Adds the guest agent port com.redhat.spice.0 (virtio-serial) for spice-vdagent"},
    {"object", 0, ARG_REQUIRED, true, true, set_object, "secret,id=ID,data=STRING|file=PATH",
     "a secret other options refer to by id (--spice password-secret=ID), as QEMU's -object secret"},
    {"config", 0, ARG_REQUIRED, false, false, set_config, "FILE", "read options from an INI file ([deskvm] group)"},
    {"daemonize", 0, ARG_NONE, true, false, set_daemonize, NULL, "run in the background once set up"},
    {"pidfile", 0, ARG_REQUIRED, true, false, set_pidfile, "FILE", "write (and lock) the process id here"},
    {"log-level", 0, ARG_REQUIRED, true, false, set_log_level, "LEVEL", "error, warn, info (default) or debug"},
    {"log-file", 0, ARG_REQUIRED, true, false, set_log_file, "FILE", "log here instead of stderr"},
    {"paused", 'S', ARG_NONE, true, false, set_paused, NULL,
     "start in the prelaunch state; QMP 'cont' starts the VM (like QEMU's -S)"},
    {"version", 'V', ARG_NONE, false, false, set_version, NULL, "print the version and exit"},
    {"help", 'h', ARG_NONE, false, false, set_help, NULL, "print this help and exit"},
};

void options_print_help(FILE *out)
{
    fprintf(out, "Usage: deskvm [OPTIONS]\n"
                 "Runs one PC virtual machine, controlled over QMP.\n\n");
    for (size_t i = 0; i < G_N_ELEMENTS(option_defs); i++) {
        const struct option_def *d = &option_defs[i];
        char left[96];
        if (d->short_name)
            g_snprintf(left, sizeof(left), "-%c, --%s%s%s", d->short_name, d->name, d->metavar ? " " : "",
                       d->metavar ? d->metavar : "");
        else
            g_snprintf(left, sizeof(left), "    --%s%s%s", d->name, d->metavar ? " " : "",
                       d->metavar ? d->metavar : "");
        if (strlen(left) > 34)
            fprintf(out, "  %s\n  %-34s %s\n", left, "", d->help);
        else
            fprintf(out, "  %-34s %s\n", left, d->help);
    }
    fprintf(out, "\nThe --config file takes the same keys, without dashes, in a [%s] group; options given on the\n"
                 "command line win over the file. Exit codes: 0 success, 1 runtime error, 2 bad options.\n",
            CONFIG_GROUP);
}

const char *options_accel_name(enum accel_kind accel)
{
    switch (accel) {
    case ACCEL_KVM:
        return "kvm";
    case ACCEL_EMU:
        return "emu";
    case ACCEL_QTEST:
        return "qtest";
    case ACCEL_AUTO:
        break;
    }
    return "auto";
}

static void options_init(struct options *o)
{
    memset(o, 0, sizeof(*o));
    o->memory = OPTIONS_DEFAULT_MEMORY;
    o->cpus = 1;
    o->accel = ACCEL_AUTO;
    o->serial.kind = CHARDEV_NONE;
    o->qmp = g_array_new(FALSE, TRUE, sizeof(struct listen_spec));
    o->disks = g_array_new(FALSE, TRUE, sizeof(struct virtio_blk_conf));
    o->serial_ports = g_array_new(FALSE, TRUE, sizeof(struct serial_port_spec));
    o->secrets = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    o->log_level = LOG_LEVEL_INFO;
    o->display_width = 1024;
    o->display_height = 768;
}

void options_clear(struct options *o)
{
    g_free(o->name);
    g_free(o->kernel);
    g_free(o->initrd);
    g_free(o->append);
    g_free(o->firmware);
    g_free(o->keymap);
    chardev_spec_clear(&o->serial);
    listen_spec_clear(&o->qtest);
    listen_spec_clear(&o->gdb);
    vnc_spec_clear(&o->vnc);
    spice_spec_clear(&o->spice);
    if (o->secrets)
        g_hash_table_unref(o->secrets);
    if (o->qmp) {
        for (guint i = 0; i < o->qmp->len; i++)
            listen_spec_clear(&g_array_index(o->qmp, struct listen_spec, i));
        g_array_unref(o->qmp);
    }
    if (o->disks) {
        for (guint i = 0; i < o->disks->len; i++)
            virtio_blk_conf_clear(&g_array_index(o->disks, struct virtio_blk_conf, i));
        g_array_unref(o->disks);
    }
    if (o->serial_ports) {
        for (guint i = 0; i < o->serial_ports->len; i++)
            serial_port_spec_clear(&g_array_index(o->serial_ports, struct serial_port_spec, i));
        g_array_unref(o->serial_ports);
    }
    g_free(o->config);
    g_free(o->pidfile);
    g_free(o->log_file);
    memset(o, 0, sizeof(*o));
}

static int parse_argv(struct options *o, int argc, char **argv, bool *seen, char **error)
{
    size_t n = G_N_ELEMENTS(option_defs);
    struct option *longopts = g_new0(struct option, n + 1);
    GString *shortopts = g_string_new(":");
    for (size_t i = 0; i < n; i++) {
        longopts[i].name = option_defs[i].name;
        longopts[i].has_arg = option_defs[i].arg == ARG_REQUIRED ? required_argument : no_argument;
        longopts[i].val = 0x100 + (int)i;
        if (option_defs[i].short_name) {
            g_string_append_c(shortopts, (char)option_defs[i].short_name);
            if (option_defs[i].arg == ARG_REQUIRED)
                g_string_append_c(shortopts, ':');
        }
    }
    int rc = 0;
    opterr = 0;
    /* 0, not 1: glibc and musl then also forget the position inside a previous argv's "-abc" cluster, which
     * would otherwise be read from memory the caller may have freed. */
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, shortopts->str, longopts, NULL);
        if (c == -1)
            break;
        const struct option_def *d = NULL;
        if (c >= 0x100)
            d = &option_defs[c - 0x100];
        else
            for (size_t i = 0; i < n; i++)
                if (option_defs[i].short_name == c)
                    d = &option_defs[i];
        if (c == '?' || (!d && c != ':')) {
            const char *bad = argv[optind - 1];
            if (optopt >= 0x100) /* "--flag=value": getopt reports the flag's own code */
                *error = g_strdup_printf("--%s does not take a value", option_defs[optopt - 0x100].name);
            else
                *error = optopt ? g_strdup_printf("unknown option '-%c' (see deskvm --help)", optopt)
                                : g_strdup_printf("unknown or ambiguous option '%s' (see deskvm --help)", bad);
            rc = 2;
            break;
        }
        if (c == ':') {
            *error = g_strdup_printf("%s needs a value", argv[optind - 1]);
            rc = 2;
            break;
        }
        size_t idx = (size_t)(d - option_defs);
        if (seen[idx] && !d->repeatable && d->arg == ARG_REQUIRED) {
            *error = g_strdup_printf("--%s: given more than once", d->name);
            rc = 2;
            break;
        }
        seen[idx] = true;
        g_autofree char *why = d->set(o, optarg);
        if (why) {
            *error = g_strdup_printf("--%s: %s", d->name, why);
            rc = 2;
            break;
        }
    }
    if (!rc && optind < argc) {
        *error = g_strdup_printf("unexpected argument '%s' (deskvm takes only options; see deskvm --help)",
                                 argv[optind]);
        rc = 2;
    }
    g_string_free(shortopts, TRUE);
    g_free(longopts);
    return rc;
}

static int parse_config(struct options *o, const bool *seen, char **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) gerr = NULL;
    const char *file = o->config;
    if (!g_key_file_load_from_file(kf, file, G_KEY_FILE_NONE, &gerr)) {
        *error = g_strdup_printf("--config: %s: %s", file, gerr->message);
        return 2;
    }
    g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
    for (char **g = groups; *g; g++) {
        if (strcmp(*g, CONFIG_GROUP)) {
            *error = g_strdup_printf("config %s: unknown group [%s] (options go in [%s])", file, *g, CONFIG_GROUP);
            return 2;
        }
    }
    if (!g_key_file_has_group(kf, CONFIG_GROUP))
        return 0;
    g_auto(GStrv) keys = g_key_file_get_keys(kf, CONFIG_GROUP, NULL, NULL);
    for (char **k = keys; *k; k++) {
        const struct option_def *d = NULL;
        for (size_t i = 0; i < G_N_ELEMENTS(option_defs); i++)
            if (!strcmp(option_defs[i].name, *k) && option_defs[i].in_config)
                d = &option_defs[i];
        if (!d) {
            *error = g_strdup_printf("config %s: unknown key '%s'", file, *k);
            return 2;
        }
        if (seen[d - option_defs])
            continue; /* the command line wins */
        g_autoptr(GError) kerr = NULL;
        g_autofree char *value = g_key_file_get_string(kf, CONFIG_GROUP, *k, &kerr);
        if (!value) {
            *error = g_strdup_printf("config %s: key '%s': %s", file, *k, kerr->message);
            return 2;
        }
        /* A repeatable key takes a ;-separated list, GKeyFile's list syntax. */
        g_auto(GStrv) values = d->repeatable ? g_strsplit(value, ";", -1) : g_strdupv((char *[]){value, NULL});
        for (char **v = values; *v; v++) {
            if (d->repeatable && !**v)
                continue;
            g_autofree char *why = d->set(o, *v);
            if (why) {
                *error = g_strdup_printf("config %s: key '%s': %s", file, *k, why);
                return 2;
            }
        }
    }
    return 0;
}

static int validate(struct options *o, char **error)
{
    if (o->initrd && !o->kernel) {
        *error = g_strdup("--initrd: only allowed together with --kernel");
        return 2;
    }
    if (o->append && !o->kernel) {
        *error = g_strdup("--append: only allowed together with --kernel");
        return 2;
    }
    if (o->accel == ACCEL_QTEST && !o->qtest.path) {
        *error = g_strdup("--accel: qtest needs --qtest unix:PATH");
        return 2;
    }
    if (o->qtest.path && o->accel != ACCEL_QTEST) {
        *error = g_strdup("--qtest: only with --accel qtest");
        return 2;
    }
    if ((o->gdb.path || o->gdb.host) && o->accel == ACCEL_QTEST) {
        *error = g_strdup("--gdb: the test accelerator has no vCPUs to debug");
        return 2;
    }
    if ((o->gdb.path || o->gdb.host) && !o->kernel && !o->firmware) {
        *error = g_strdup("--gdb: needs a guest to debug (--kernel or --firmware)");
        return 2;
    }
    if (o->firmware && o->kernel) {
        *error = g_strdup("--firmware: cannot be combined with --kernel (deskvm boots one or the other)");
        return 2;
    }
    if (o->display == DISPLAY_QXL && !o->spice.enabled && o->accel != ACCEL_QTEST) {
        *error = g_strdup("--display: qxl needs --spice (spice-server runs the QXL device's command rings)");
        return 2;
    }
    if (o->spice.password_secret) {
        const char *pw = g_hash_table_lookup(o->secrets, o->spice.password_secret);
        if (!pw) {
            *error = g_strdup_printf("--spice: password-secret=%s: no --object secret,id=%s",
                                     o->spice.password_secret, o->spice.password_secret);
            return 2;
        }
        if (strlen(pw) > SPICE_SPEC_PASSWORD_MAX) {
            *error = g_strdup_printf("--spice: secret %s is longer than SPICE's %d characters",
                                     o->spice.password_secret, SPICE_SPEC_PASSWORD_MAX);
            return 2;
        }
        g_free(o->spice.password);
        o->spice.password = g_strdup(pw);
    }
    if (o->daemonize && o->serial.kind == CHARDEV_STDIO) {
        *error = g_strdup("--serial: stdio cannot be used with --daemonize");
        return 2;
    }
    for (guint i = 0; i < o->serial_ports->len; i++) {
        const struct serial_port_spec *a = &g_array_index(o->serial_ports, struct serial_port_spec, i);
        const char *opt = a->guest_agent ? "--guest-agent" : "--serial-port";
        for (guint j = 0; j < i; j++) {
            const struct serial_port_spec *b = &g_array_index(o->serial_ports, struct serial_port_spec, j);
            if (!strcmp(a->name, b->name)) {
                *error = g_strdup_printf("%s: port name '%s' given twice", opt, a->name);
                return 2;
            }
            if (!strcmp(a->path, b->path)) {
                *error = g_strdup_printf("%s: unix:%s is used by two ports", opt, a->path);
                return 2;
            }
        }
        bool clash = o->serial.kind == CHARDEV_UNIX && !strcmp(a->path, o->serial.path);
        for (guint j = 0; j < o->qmp->len; j++) {
            const struct listen_spec *q = &g_array_index(o->qmp, struct listen_spec, j);
            clash = clash || (q->kind == LISTEN_UNIX && !strcmp(q->path, a->path));
        }
        if (clash || (o->qtest.path && !strcmp(o->qtest.path, a->path))) {
            *error = g_strdup_printf("%s: unix:%s is also another socket of deskvm", opt, a->path);
            return 2;
        }
    }
    for (guint i = 0; i < o->qmp->len; i++) {
        const struct listen_spec *a = &g_array_index(o->qmp, struct listen_spec, i);
        for (guint j = 0; j < i; j++) {
            const struct listen_spec *b = &g_array_index(o->qmp, struct listen_spec, j);
            if (a->kind == LISTEN_UNIX && b->kind == LISTEN_UNIX && !strcmp(a->path, b->path)) {
                *error = g_strdup_printf("--qmp: unix:%s given twice", a->path);
                return 2;
            }
        }
        if (a->kind == LISTEN_UNIX && o->serial.kind == CHARDEV_UNIX && !strcmp(a->path, o->serial.path)) {
            *error = g_strdup_printf("--serial: unix:%s is also a QMP socket", a->path);
            return 2;
        }
    }
    return 0;
}

int options_parse(struct options *o, int argc, char **argv, char **error)
{
    options_init(o);
    bool seen[G_N_ELEMENTS(option_defs)] = {0};
    int rc = parse_argv(o, argc, argv, seen, error);
    if (rc || o->help || o->version)
        return rc;
    if (o->config) {
        rc = parse_config(o, seen, error);
        if (rc)
            return rc;
    }
    return validate(o, error);
}
