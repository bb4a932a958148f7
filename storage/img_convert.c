/* deskvm-img convert and compare: whole-image copies and comparisons driven by block status, so zero and
 * unallocated areas are neither read nor written. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "img.h"

#define SECTOR 512u

/* What the copy does with one granule of the output. */
enum granule {
    G_SKIP,  /* the target already reads right there (fresh and zero, or shown by its backing file) */
    G_ZERO,  /* write zeroes */
    G_DATA,  /* copy the bytes read */
    G_KNOWN, /* zero by block status, decided when the window is written */
};

struct convert {
    struct block_image **src;
    uint64_t *src_len;
    int n_src;
    struct block_image *dst;
    uint64_t total;
    uint64_t sparse;  /* -S: zero runs at least this long are not written (0: write everything) */
    uint32_t granule; /* decision unit: -S, or the target cluster with -c */
    bool compress;    /* -c */
    bool zero_writes; /* the target does not read as zeros (-n): zero runs are written as zeroes */
    bool top_only;    /* -B: only what the source's top layer allocates is copied */
    uint8_t *buf;     /* one window of output */
    uint8_t *kind;    /* enum granule per granule of the window */
};

/* Reads output range [off, off+len) of the window at WOFF into c->buf, marking the granules' kinds. */
static int fill(struct convert *c, uint64_t woff, uint64_t off, uint64_t len, GError **errp)
{
    uint64_t base = 0;
    for (int i = 0; i < c->n_src && len; i++) {
        if (off >= base + c->src_len[i]) {
            base += c->src_len[i];
            continue;
        }
        uint64_t so = off - base, n = MIN(len, c->src_len[i] - so);
        for (uint64_t done = 0; done < n;) {
            struct block_status st;
            int r = c->top_only ? block_status(c->src[i], so + done, n - done, &st, errp)
                                : block_status_chain(c->src[i], so + done, n - done, &st, errp);
            if (r < 0)
                return r;
            uint64_t run = st.length ? st.length : n - done;
            uint64_t at = off + done - woff;
            bool data = st.flags & BLOCK_STATUS_DATA;
            bool zero = (st.flags & BLOCK_STATUS_ZERO) && !data;
            if (c->top_only && !(st.flags & BLOCK_STATUS_ALLOCATED)) {
                /* whole granules are left to the target's backing file; the bytes of granules shared
                 * with other runs are read through the source chain and written */
                uint64_t ga = (at + c->granule - 1) / c->granule, gb = (at + run) / c->granule;
                uint64_t a = MIN(ga * c->granule, at + run), b = MAX(gb * c->granule, a);
                r = block_read(c->src[i], so + done, c->buf + at, a - at, errp);
                if (r == 0)
                    r = block_read(c->src[i], so + done + (b - at), c->buf + b, at + run - b, errp);
                if (r < 0)
                    return r;
                for (uint64_t g = at / c->granule; g <= (at + run - 1) / c->granule; g++)
                    c->kind[g] = g >= ga && g < gb ? G_SKIP : G_DATA;
            } else if (zero) {
                memset(c->buf + at, 0, run);
            } else {
                r = block_read(c->src[i], so + done, c->buf + at, run, errp);
                if (r < 0)
                    return r;
                for (uint64_t g = at / c->granule; g <= (at + run - 1) / c->granule; g++)
                    c->kind[g] = G_DATA;
            }
            done += run;
        }
        off += n;
        len -= n;
        base += c->src_len[i];
    }
    return 0;
}

/* Writes [from, to) granules of one kind. */
static int flush_run(struct convert *c, uint64_t woff, uint64_t wlen, unsigned from, unsigned to, int kind,
                     GError **errp)
{
    uint64_t a = (uint64_t)from * c->granule, b = MIN((uint64_t)to * c->granule, wlen);
    if (kind == G_SKIP || a >= b)
        return 0;
    if (kind == G_ZERO)
        return block_write_zeroes(c->dst, woff + a, b - a, true, errp);
    if (!c->compress)
        return block_write(c->dst, woff + a, c->buf + a, b - a, errp);
    for (uint64_t p = a; p < b; p += c->granule) {
        int r = block_write_compressed(c->dst, woff + p, c->buf + p, MIN(c->granule, b - p), errp);
        if (r < 0)
            return r;
    }
    return 0;
}

static int copy_window(struct convert *c, uint64_t woff, uint64_t wlen, GError **errp)
{
    unsigned ng = (unsigned)((wlen + c->granule - 1) / c->granule);
    memset(c->kind, G_KNOWN, ng);
    int r = fill(c, woff, woff, wlen, errp);
    if (r < 0)
        return r;
    int zero_kind = c->zero_writes ? G_ZERO : G_SKIP;
    for (unsigned g = 0; g < ng; g++) {
        uint64_t a = (uint64_t)g * c->granule, n = MIN((uint64_t)c->granule, wlen - a);
        if (c->kind[g] == G_KNOWN)
            c->kind[g] = c->sparse ? (uint8_t)(c->top_only ? G_ZERO : zero_kind) : G_DATA;
        else if (c->kind[g] == G_DATA && c->sparse && img_is_zero(c->buf + a, n))
            c->kind[g] = (uint8_t)(c->top_only ? G_ZERO : zero_kind);
    }
    unsigned start = 0;
    for (unsigned g = 1; g <= ng; g++) {
        if (g < ng && c->kind[g] == c->kind[start])
            continue;
        r = flush_run(c, woff, wlen, start, g, c->kind[start], errp);
        if (r < 0)
            return r;
        start = g;
    }
    return 0;
}

static int convert_usage(const char *msg)
{
    return img_usage_error("convert", "%s", msg);
}

int img_cmd_convert(int argc, char **argv)
{
    static const struct option longopts[] = {IMG_LONGOPT_HELP, IMG_LONGOPT_FORCE_SHARE, IMG_LONGOPT_END};
    struct img_opts opts = {.cmd = "convert"};
    const char *out_fmt = NULL, *backing = NULL, *bfmt = NULL;
    struct block_create_options o = {0};
    uint64_t opt_size = 0, sparse = 4096;
    bool size_set = false, no_create = false, compress = false;
    unsigned src_flags = BLOCK_OPEN_READ_ONLY, dst_flags = BLOCK_OPEN_CACHE_UNSAFE;
    int c;
    while ((c = img_getopt(&opts, argc, argv, ":f:O:B:F:o:S:t:T:m:l:cpqnUWCh", longopts)) != -1) {
        switch (c) {
        case 'O':
            out_fmt = optarg;
            break;
        case 'B':
            backing = optarg;
            break;
        case 'F':
            bfmt = optarg;
            break;
        case 'o':
            if (!img_parse_create_options("convert", optarg, &o, &opt_size, &size_set))
                return 1;
            break;
        case 'S':
            if (!img_parse_size(optarg, &sparse) || sparse % SECTOR || sparse > IMG_CHUNK) {
                img_error("Invalid buffer size for sparse output specified. Valid sizes are multiples of "
                          "512 up to %u. Select 0 to disable sparse detection (fully allocates output).",
                          IMG_CHUNK);
                return 1;
            }
            break;
        case 't':
            if (!img_cache_flags(optarg, &dst_flags))
                return convert_usage("Invalid cache option");
            break;
        case 'T':
            if (!img_cache_flags(optarg, &src_flags))
                return convert_usage("Invalid source cache option");
            break;
        case 'l':
            img_error("reading from internal snapshots (-l) is not supported; apply the snapshot to a copy");
            return 1;
        case 'm':
        case 'W':
        case 'C':
            break; /* parallel requests and copy offloading: accepted, the copy is sequential */
        case 'c':
            compress = true;
            break;
        case 'n':
            no_create = true;
            break;
        default:
            return 1;
        }
    }
    if (opts.force_share)
        src_flags |= BLOCK_OPEN_NO_LOCK;
    if (argc - optind < 2)
        return convert_usage("Must specify image file name");
    int n_src = argc - optind - 1;
    const char *dst_path = argv[argc - 1];
    if (backing && n_src > 1)
        return convert_usage("At most one filename argument is allowed when using -B");
    if (backing && no_create)
        return convert_usage("Cannot use -B together with -n");
    if (!out_fmt && !no_create)
        out_fmt = "raw";
    if (out_fmt && !block_find_driver(out_fmt)) {
        img_error("Unknown file format '%s'", out_fmt);
        return 1;
    }
    if (compress && out_fmt && strcmp(out_fmt, "qcow2")) {
        img_error("Compression not supported for file format '%s'", out_fmt);
        return 1;
    }
    if (backing && strcmp(out_fmt, "qcow2")) {
        img_error("Backing file not supported for file format '%s'", out_fmt);
        return 1;
    }
    struct convert cv = {.n_src = n_src,
                         .sparse = sparse,
                         .compress = compress,
                         .zero_writes = no_create,
                         .top_only = backing != NULL};
    cv.src = g_new0(struct block_image *, n_src);
    cv.src_len = g_new0(uint64_t, n_src);
    int ret = 1;
    GError *err = NULL;
    for (int i = 0; i < n_src; i++) {
        cv.src[i] = img_open(argv[optind + i], opts.fmt, src_flags);
        if (!cv.src[i])
            goto out;
        cv.src_len[i] = block_get_length(cv.src[i]);
        cv.total += cv.src_len[i];
    }
    if (!no_create) {
        o.format = out_fmt;
        o.size = ((size_set ? opt_size : cv.total) + 511) & ~(uint64_t)511;
        if (backing)
            o.backing_file = backing;
        if (bfmt)
            o.backing_format = bfmt;
        if (block_create(dst_path, &o, &err) < 0) {
            img_fail(err);
            goto out;
        }
    }
    cv.dst = img_open(dst_path, out_fmt, dst_flags);
    if (!cv.dst)
        goto out;
    if (compress && !cv.dst->drv->write_compressed) {
        img_error("%s: Compression not supported for this file format", dst_path);
        goto out;
    }
    if (block_get_length(cv.dst) < cv.total) {
        img_error("%s: the output image (%" PRIu64 " bytes) is smaller than the input (%" PRIu64 " bytes)",
                  dst_path, block_get_length(cv.dst), cv.total);
        goto out;
    }
    struct block_info info;
    block_get_info(cv.dst, &info);
    cv.granule = compress ? info.cluster_size : sparse ? (uint32_t)sparse : SECTOR;
    cv.buf = g_malloc(IMG_CHUNK);
    cv.kind = g_malloc(IMG_CHUNK / SECTOR + 1);
    struct img_progress pr;
    img_progress_start(&pr, opts.progress && !opts.quiet);
    for (uint64_t off = 0; off < cv.total; off += IMG_CHUNK) {
        if (copy_window(&cv, off, MIN((uint64_t)IMG_CHUNK, cv.total - off), &err) < 0) {
            img_progress_end(&pr);
            img_fail(err);
            goto out;
        }
        img_progress_update(&pr, MIN(off + IMG_CHUNK, cv.total), cv.total);
    }
    img_progress_end(&pr);
    ret = 0;
out:
    if (cv.dst && block_close(cv.dst, &err) < 0 && ret == 0)
        ret = img_fail(err);
    for (int i = 0; i < n_src; i++)
        block_close(cv.src[i], NULL);
    g_free(cv.src);
    g_free(cv.src_len);
    g_free(cv.buf);
    g_free(cv.kind);
    return ret;
}

/* ---- compare */

/* Offset of the first 512-byte sector that differs, or -1. */
static int64_t first_diff(const uint8_t *a, const uint8_t *b, uint64_t len)
{
    if (memcmp(a, b, len) == 0)
        return -1;
    for (uint64_t s = 0; s < len; s += SECTOR) {
        if (memcmp(a + s, b + s, MIN((uint64_t)SECTOR, len - s)))
            return (int64_t)s;
    }
    return -1;
}

static int64_t first_nonzero(const uint8_t *a, uint64_t len)
{
    for (uint64_t s = 0; s < len; s += SECTOR) {
        if (!img_is_zero(a + s, MIN((uint64_t)SECTOR, len - s)))
            return (int64_t)s;
    }
    return -1;
}

#define STATUS_BITS (BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_ZERO | BLOCK_STATUS_DATA)

/* Reads [off, off+len) of IMG into BUF, or zeros when block status says so; 1 if it read, 0 if zero. */
static int read_or_zero(struct block_image *img, uint64_t off, uint8_t *buf, uint64_t len,
                        const struct block_status *st, GError **errp)
{
    if ((st->flags & BLOCK_STATUS_ZERO) && !(st->flags & BLOCK_STATUS_DATA)) {
        memset(buf, 0, len);
        return 0;
    }
    int r = block_read(img, off, buf, len, errp);
    return r < 0 ? r : 1;
}

/* The tail of the longer image must read as zeros. Returns 0 zero, 1 mismatch, 2 error. */
static int check_tail(struct block_image *img, uint64_t from, uint8_t *buf, bool quiet)
{
    uint64_t size = block_get_length(img);
    for (uint64_t off = from; off < size;) {
        struct block_status st;
        GError *err = NULL;
        uint64_t n = MIN((uint64_t)IMG_CHUNK, size - off);
        if (block_status_chain(img, off, n, &st, &err) < 0 ||
            read_or_zero(img, off, buf, st.length, &st, &err) < 0) {
            img_fail(err);
            return 2;
        }
        int64_t at = first_nonzero(buf, st.length);
        if (at >= 0) {
            if (!quiet)
                printf("Content mismatch at offset %" PRIu64 "!\n", off + (uint64_t)at);
            return 1;
        }
        off += st.length;
    }
    return 0;
}

int img_cmd_compare(int argc, char **argv)
{
    static const struct option longopts[] = {IMG_LONGOPT_HELP, IMG_LONGOPT_FORCE_SHARE, IMG_LONGOPT_END};
    struct img_opts o = {.cmd = "compare"};
    const char *fmt2 = NULL;
    bool strict = false;
    unsigned flags = BLOCK_OPEN_READ_ONLY;
    int c;
    while ((c = img_getopt(&o, argc, argv, ":f:F:T:spqUh", longopts)) != -1) {
        switch (c) {
        case 'F':
            fmt2 = optarg;
            break;
        case 'T':
            if (!img_cache_flags(optarg, &flags)) {
                img_usage_error("compare", "Invalid source cache option: %s", optarg);
                return 2;
            }
            break;
        case 's':
            strict = true;
            break;
        default:
            return 2;
        }
    }
    if (o.force_share)
        flags |= BLOCK_OPEN_NO_LOCK;
    if (argc - optind != 2) {
        img_usage_error("compare", "Expecting two image file names");
        return 2;
    }
    if (!fmt2)
        fmt2 = o.fmt;
    struct block_image *a = img_open(argv[optind], o.fmt, flags);
    struct block_image *b = a ? img_open(argv[optind + 1], fmt2, flags) : NULL;
    if (!b) {
        block_close(a, NULL);
        return 2;
    }
    uint64_t la = block_get_length(a), lb = block_get_length(b), common = MIN(la, lb);
    uint8_t *ba = g_malloc(IMG_CHUNK), *bb = g_malloc(IMG_CHUNK);
    int ret = 0;
    struct img_progress pr;
    img_progress_start(&pr, o.progress && !o.quiet);
    if (la != lb) {
        if (strict) {
            if (!o.quiet)
                printf("Strict mode: Image size mismatch!\n");
            ret = 1;
        } else if (!o.quiet) {
            printf("Warning: Image size mismatch!\n");
        }
    }
    for (uint64_t off = 0; off < common && ret == 0;) {
        struct block_status sa, sb;
        GError *err = NULL;
        uint64_t n = MIN((uint64_t)IMG_CHUNK, common - off);
        if (block_status_chain(a, off, n, &sa, &err) < 0 || block_status_chain(b, off, n, &sb, &err) < 0) {
            ret = 2;
            img_fail(err);
            break;
        }
        n = MIN(sa.length, sb.length);
        if (strict && (sa.flags & STATUS_BITS) != (sb.flags & STATUS_BITS)) {
            if (!o.quiet)
                printf("Strict mode: Offset %" PRIu64 " block status mismatch!\n", off);
            ret = 1;
            break;
        }
        int ra = read_or_zero(a, off, ba, n, &sa, &err);
        int rb = ra < 0 ? ra : read_or_zero(b, off, bb, n, &sb, &err);
        if (rb < 0) {
            ret = 2;
            img_fail(err);
            break;
        }
        int64_t at = ra || rb ? first_diff(ba, bb, n) : -1;
        if (at >= 0) {
            if (!o.quiet)
                printf("Content mismatch at offset %" PRIu64 "!\n", off + (uint64_t)at);
            ret = 1;
            break;
        }
        off += n;
        img_progress_update(&pr, off, MAX(la, lb));
    }
    if (ret == 0 && la != lb)
        ret = check_tail(la > lb ? a : b, common, ba, o.quiet);
    img_progress_end(&pr);
    if (ret == 0 && !o.quiet)
        printf("Images are identical.\n");
    g_free(ba);
    g_free(bb);
    block_close(a, NULL);
    block_close(b, NULL);
    return ret;
}
