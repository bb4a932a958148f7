/* deskvm-img: subcommand dispatch, help texts and the helpers every subcommand uses. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "img.h"

struct img_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
    const char *help;
};

static const struct img_command commands[] = {
    {"check", img_cmd_check, "check [-q] [-f fmt] [--output=human|json] [-r leaks|all] [-U] filename",
     "Checks the image for consistency. Exit code: 0 no errors, 1 the check could not run, 2 corruptions,\n"
     "3 leaked clusters only, 63 the format cannot be checked. -r repairs leaks or everything."},
    {"commit", img_cmd_commit, "commit [-q] [-f fmt] [-t cache] [-b base] [-d] [-p] filename",
     "Writes the changes of filename into its backing file (or into base, further down the chain), which\n"
     "grows if it is smaller. filename is emptied afterwards unless -d is given; -b implies -d."},
    {"compare", img_cmd_compare,
     "compare [-q] [-f fmt] [-F fmt] [-T cache] [-p] [-s] [-U] filename1 filename2",
     "Compares the guest-visible content. Exit code: 0 identical, 1 different, 2 error. Without -s the\n"
     "tail of the larger image must be zeros; -s (strict) also fails on a size or allocation difference."},
    {"convert", img_cmd_convert,
     "convert [-q] [-p] [-c] [-n] [-U] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt]\n"
     "        [-B backing_file [-F backing_fmt]] [-o options] [-S sparse_size] [-m n] [-W]\n"
     "        filename [filename2 [...]] output_filename",
     "Copies the inputs (concatenated) to a new image. The output is sparse: zero areas are skipped\n"
     "(-S sets the smallest zero run to skip, 0 writes everything). -c compresses qcow2 clusters;\n"
     "-n writes into an existing image; -B makes the output an overlay of backing_file, which must hold\n"
     "what the input's backing chain holds. -m and -W are accepted and ignored."},
    {"create", img_cmd_create,
     "create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]",
     "Creates an image. fmt: raw (default) or qcow2. Options (qcow2): cluster_size, compat (0.10|1.1),\n"
     "compression_type (zlib|zstd), preallocation (off|metadata; raw: off|falloc|full), lazy_refcounts,\n"
     "refcount_bits, backing_file, backing_fmt, size. Sizes take k, M, G, T suffixes. -u records the\n"
     "backing file without opening it (the size is then required)."},
    {"info", img_cmd_info, "info [-f fmt] [--output=human|json] [--backing-chain] [-U] filename",
     "Shows the image's format, sizes, backing file, snapshots and format-specific information."},
    {"map", img_cmd_map, "map [-f fmt] [--output=human|json] [-U] filename",
     "Shows where the guest data of the image (and its backing chain) lives."},
    {"rebase", img_cmd_rebase,
     "rebase [-q] [-f fmt] [-t cache] [-T src_cache] [-p] [-u] [-U] -b backing_file [-F backing_fmt] "
     "filename",
     "Changes the backing file. Safe mode copies every cluster whose content differs between the old and\n"
     "the new backing file into the image first; -u only rewrites the header. -b \"\" removes the\n"
     "backing file (safe mode copies everything it provided)."},
    {"resize", img_cmd_resize, "resize [-q] [-f fmt] [--shrink] filename [+ | -]size",
     "Changes the virtual size. Shrinking needs --shrink (the data past the new end is lost)."},
    {"snapshot", img_cmd_snapshot,
     "snapshot [-q] [-U] [-l | -a snapshot | -c snapshot | -d snapshot] filename",
     "Lists (-l, default), creates (-c), applies (-a) or deletes (-d) internal snapshots."},
};

static const struct img_command *find_command(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    }
    return NULL;
}

static void verror(const char *fmt, va_list ap)
{
    fputs("deskvm-img: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void img_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
}

int img_fail(GError *err)
{
    img_error("%s", err ? err->message : "failed");
    g_clear_error(&err);
    return 1;
}

int img_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
    const struct img_command *c = find_command(cmd);
    if (c)
        fprintf(stderr, "usage: deskvm-img %s\nTry 'deskvm-img %s --help' for more information.\n", c->usage,
                cmd);
    return 1;
}

int img_getopt(struct img_opts *o, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, shortopts, longopts, NULL);
        switch (c) {
        case 'f':
            o->fmt = optarg;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'p':
            o->progress = true;
            break;
        case 'U':
            o->force_share = true;
            break;
        case IMG_OPT_OUTPUT:
            if (strcmp(optarg, "json") && strcmp(optarg, "human")) {
                img_usage_error(o->cmd, "--output must be used with human or json as argument.");
                return IMG_OPT_ERROR;
            }
            o->json = !strcmp(optarg, "json");
            break;
        case ':':
            /* a long option as typed; a short one alone, even when given in a bundle like -qf */
            if (!strncmp(argv[optind - 1], "--", 2))
                img_usage_error(o->cmd, "option '%s' needs an argument", argv[optind - 1]);
            else
                img_usage_error(o->cmd, "option '-%c' needs an argument", optopt);
            return IMG_OPT_ERROR;
        case 'h': /* main answers -h and --help before dispatching: here it is as unknown as before */
        case '?':
            img_usage_error(o->cmd, "unknown option '%s'", argv[optind - 1]);
            return IMG_OPT_ERROR;
        default:
            return c;
        }
    }
}

const char *img_one_filename(const struct img_opts *o, int argc, char **argv)
{
    if (optind != argc - 1) {
        img_usage_error(o->cmd, "Expecting one image file name");
        return NULL;
    }
    return argv[optind];
}

bool img_parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    char *end;
    errno = 0;
    double v = g_ascii_strtod(s, &end);
    if (errno || end == s || v < 0)
        return false;
    bool fraction = strchr(s, '.') && strchr(s, '.') < end;
    unsigned shift = 0;
    if (*end) {
        const char *units = "bkmgtpe";
        const char *u = strchr(units, g_ascii_tolower(*end));
        if (!u || end[1])
            return false;
        shift = 10 * (unsigned)(u - units);
    }
    if (fraction && shift == 0)
        return false; /* fractions of a byte */
    double bytes = ldexp(v, (int)shift);
    if (bytes >= 9223372036854775808.0)
        return false;
    *out = (uint64_t)bytes;
    return true;
}

char *img_size_str(uint64_t v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    /* the next unit is taken from 1000 of the current one, so at most three digits precede the point */
    unsigned i = 0;
    while (i + 1 < G_N_ELEMENTS(units) && (double)v >= 1000.0 * ldexp(1.0, (int)(10 * i)))
        i++;
    return g_strdup_printf("%0.3g %s", (double)v / ldexp(1.0, (int)(10 * i)), units[i]);
}

struct block_image *img_open(const char *path, const char *fmt, unsigned flags)
{
    GError *err = NULL;
    struct block_image *img = block_open(path, fmt, flags, &err);
    if (!img)
        img_fail(err);
    return img;
}

int img_close(struct block_image *img)
{
    GError *err = NULL;
    if (block_close(img, &err) < 0)
        return img_fail(err);
    return 0;
}

static bool parse_bool_opt(const char *v, bool *out)
{
    if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes")) {
        *out = true;
        return true;
    }
    if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no")) {
        *out = false;
        return true;
    }
    return false;
}

static void print_create_options_help(void)
{
    printf("Supported options (qcow2):\n"
           "  backing_file=<str>     - File name of a base image\n"
           "  backing_fmt=<str>      - Image format of the base image\n"
           "  cluster_size=<size>    - qcow2 cluster size (512 B - 2 MiB, default 64 KiB)\n"
           "  compat=<str>           - Compatibility level (0.10 or 1.1)\n"
           "  compression_type=<str> - Compression method used for image cluster compression (zlib, zstd)\n"
           "  lazy_refcounts=<bool>  - Postpone refcount updates\n"
           "  preallocation=<str>    - Preallocation mode (off, metadata; raw: off, falloc, full)\n"
           "  refcount_bits=<num>    - Width of a reference count entry in bits\n"
           "  size=<size>            - Virtual disk size\n");
}

bool img_parse_create_options(const char *cmd, const char *opts, struct block_create_options *o,
                              uint64_t *size, bool *size_set)
{
    if (!strcmp(opts, "help") || !strcmp(opts, "?")) {
        print_create_options_help();
        exit(0);
    }
    /* the strings stay referenced by O until the process exits */
    gchar **kv = g_strsplit(opts, ",", -1);
    for (gchar **p = kv; *p; p++) {
        if (!**p)
            continue;
        char *eq = strchr(*p, '=');
        if (!eq) {
            img_usage_error(cmd, "invalid option '%s': expected key=value", *p);
            return false;
        }
        *eq = 0;
        const char *k = *p, *v = eq + 1;
        uint64_t n;
        bool ok = true;
        if (!strcmp(k, "size")) {
            ok = img_parse_size(v, size);
            *size_set = ok;
        } else if (!strcmp(k, "cluster_size")) {
            ok = img_parse_size(v, &n) && n <= UINT32_MAX;
            o->cluster_size = (uint32_t)n;
        } else if (!strcmp(k, "compat")) {
            ok = !strcmp(v, "0.10") || !strcmp(v, "1.1") || !strcmp(v, "v2") || !strcmp(v, "v3");
            o->qcow2_version = !strcmp(v, "0.10") || !strcmp(v, "v2") ? 2 : 3;
        } else if (!strcmp(k, "backing_file")) {
            o->backing_file = v;
        } else if (!strcmp(k, "backing_fmt")) {
            o->backing_format = v;
        } else if (!strcmp(k, "preallocation")) {
            o->preallocation = v;
        } else if (!strcmp(k, "compression_type")) {
            o->compression_type = v;
        } else if (!strcmp(k, "refcount_bits")) {
            char *end;
            n = g_ascii_strtoull(v, &end, 10);
            ok = *v && !*end && n >= 1 && n <= 64;
            o->refcount_bits = (unsigned)n;
        } else if (!strcmp(k, "lazy_refcounts")) {
            ok = parse_bool_opt(v, &o->lazy_refcounts);
        } else if (!strcmp(k, "extended_l2")) {
            bool on = false;
            ok = parse_bool_opt(v, &on);
            if (ok && on) {
                img_error("extended_l2=on is not supported by deskvm");
                return false;
            }
        } else {
            img_error("Invalid parameter '%s'", k);
            return false;
        }
        if (!ok) {
            img_error("Parameter '%s' has an invalid value '%s'", k, v);
            return false;
        }
    }
    return true;
}

void img_print_formatting(const char *path, const struct block_create_options *o)
{
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "Formatting '%s', fmt=%s ", path, o->format);
    if (!strcmp(o->format, "qcow2")) {
        g_string_append_printf(s, "cluster_size=%u extended_l2=off ",
                               o->cluster_size ? o->cluster_size : 65536);
        if (o->preallocation)
            g_string_append_printf(s, "preallocation=%s ", o->preallocation);
        g_string_append_printf(s, "compression_type=%s ", o->compression_type ? o->compression_type : "zlib");
        g_string_append_printf(s, "size=%" PRIu64, o->size);
        if (o->backing_file)
            g_string_append_printf(s, " backing_file=%s", o->backing_file);
        if (o->backing_format)
            g_string_append_printf(s, " backing_fmt=%s", o->backing_format);
        if (o->qcow2_version == 2)
            g_string_append(s, " compat=0.10");
        g_string_append_printf(s, " lazy_refcounts=%s refcount_bits=%u", o->lazy_refcounts ? "on" : "off",
                               o->refcount_bits ? o->refcount_bits : 16);
    } else {
        g_string_append_printf(s, "size=%" PRIu64, o->size);
        if (o->preallocation)
            g_string_append_printf(s, " preallocation=%s", o->preallocation);
    }
    printf("%s\n", s->str);
    fflush(stdout);
    g_string_free(s, TRUE);
}

void img_progress_start(struct img_progress *p, bool on)
{
    p->on = on;
    p->last = -1;
    if (on) {
        printf("    (%3.2f/100%%)\r", 0.0);
        fflush(stdout);
        p->last = 0;
    }
}

void img_progress_update(struct img_progress *p, uint64_t done, uint64_t total)
{
    if (!p->on)
        return;
    double pct = total ? (double)done * 100.0 / (double)total : 100.0;
    if (pct > 100.0)
        pct = 100.0;
    if (pct - p->last < 1.0 && pct < 100.0)
        return; /* redraw once per percent, like qemu-img */
    p->last = pct;
    printf("    (%3.2f/100%%)\r", pct);
    fflush(stdout);
}

void img_progress_end(struct img_progress *p)
{
    if (!p->on)
        return;
    printf("    (%3.2f/100%%)\r\n", 100.0);
    fflush(stdout);
    p->on = false;
}

bool img_is_zero(const void *buf, size_t len)
{
    const uint8_t *b = buf;
    size_t i = 0;
    /* test the first 16 bytes bytewise, then compare the buffer with itself shifted: one memcmp pass */
    for (; i < len && i < 16; i++) {
        if (b[i])
            return false;
    }
    return len <= 16 || memcmp(b, b + 16, len - 16) == 0;
}

bool img_cache_flags(const char *mode, unsigned *flags)
{
    *flags &= ~(unsigned)(BLOCK_OPEN_CACHE_NONE | BLOCK_OPEN_CACHE_UNSAFE);
    if (!strcmp(mode, "none") || !strcmp(mode, "directsync"))
        *flags |= BLOCK_OPEN_CACHE_NONE;
    else if (!strcmp(mode, "unsafe"))
        *flags |= BLOCK_OPEN_CACHE_UNSAFE;
    else if (strcmp(mode, "writeback") && strcmp(mode, "writethrough"))
        return false;
    return true;
}

static void print_help(void)
{
    printf("deskvm-img: a qemu-img compatible disk image tool (raw and qcow2)\n"
           "usage: deskvm-img [--help | --version] COMMAND [command options]\n\nCommands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
        printf("  %s\n", commands[i].usage);
    printf("\n'deskvm-img COMMAND --help' describes a command. Sizes: bytes, or with a suffix k, M, G, T\n"
           "(powers of 1024). fmt: raw or qcow2; without -f the format is probed.\n");
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            return false;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        img_error("Not enough arguments");
        fprintf(stderr, "Try 'deskvm-img --help' for more information\n");
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_help();
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("deskvm-img version %s (qemu-img 7.2 compatible)\n", PACKAGE_VERSION);
        return 0;
    }
    const struct img_command *c = find_command(argv[1]);
    if (!c) {
        img_error("Command not found: %s", argv[1]);
        fprintf(stderr, "Try 'deskvm-img --help' for more information\n");
        return 1;
    }
    if (wants_help(argc - 1, argv + 1)) {
        printf("usage: deskvm-img %s\n\n%s\n", c->usage, c->help);
        return 0;
    }
    return c->run(argc - 1, argv + 1);
}
