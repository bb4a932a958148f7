/* Test-only driver of the block layer for the Python interop and crash tests (not the deskvm-img CLI).
 *
 *   block-tool [-f FMT] [-U] [-r] [--no-backing] [--cache none|unsafe|writeback] COMMAND PATH ARGS...
 *   create PATH SIZE [KEY=VALUE...]   keys: cluster_size compat(0.10|1.1) backing_file backing_fmt
 *                                     preallocation compression_type refcount_bits lazy_refcounts(on)
 *   write PATH OFFSET HEXPATTERN LEN  fill LEN bytes with the repeated pattern (write-compressed: same)
 *   zero PATH OFFSET LEN [unmap]      discard PATH OFFSET LEN      resize PATH SIZE [shrink]
 *   read PATH OFFSET LEN [hex]        prints the md5 (and the bytes in hex)
 *   dump PATH OUTFILE                 writes the whole virtual disk to OUTFILE
 *   snapshot PATH -c|-a|-d NAME       snapshot PATH -l
 *   check PATH [leaks|all]            exit 0 clean, 2 corruptions, 3 leaks (like qemu-img check)
 *   info PATH                         map PATH
 *   crash-writer PATH SEED            random writes, zero writes and flushes until killed; prints
 *                                     "w I OFF LEN BYTE" before each and "f N" after each flush (0..N-1 done)
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "block.h"

static unsigned open_flags;
static const char *format;

static int fail(GError *err, const char *what)
{
    fprintf(stderr, "block-tool: %s: %s\n", what, err ? err->message : "failed");
    g_clear_error(&err);
    return 1;
}

static uint64_t num(const char *s)
{
    char *end;
    uint64_t v = g_ascii_strtoull(s, &end, 0);
    if (*end == 'k' || *end == 'K')
        v <<= 10;
    else if (*end == 'M')
        v <<= 20;
    else if (*end == 'G')
        v <<= 30;
    return v;
}

static struct block_image *open_image(const char *path, bool write)
{
    GError *err = NULL;
    unsigned flags = open_flags | (write ? 0 : BLOCK_OPEN_READ_ONLY);
    struct block_image *img = block_open(path, format, flags, &err);
    if (!img)
        fail(err, "open");
    return img;
}

static int close_image(struct block_image *img)
{
    GError *err = NULL;
    if (block_close(img, &err) < 0)
        return fail(err, "close");
    return 0;
}

static uint8_t *pattern(const char *hex, uint64_t len)
{
    size_t n = strlen(hex) / 2;
    uint8_t p[64];
    if (n == 0 || n > sizeof(p))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char b[3] = {hex[2 * i], hex[2 * i + 1], 0};
        p[i] = (uint8_t)strtoul(b, NULL, 16);
    }
    uint8_t *buf = g_malloc(len ? len : 1);
    for (uint64_t i = 0; i < len; i++)
        buf[i] = p[i % n];
    return buf;
}

static int cmd_create(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    struct block_create_options o = {.format = format ? format : "qcow2", .size = num(argv[2])};
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            return 2;
        *eq = 0;
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "cluster_size"))
            o.cluster_size = (uint32_t)num(v);
        else if (!strcmp(k, "compat"))
            o.qcow2_version = !strcmp(v, "0.10") ? 2 : 3;
        else if (!strcmp(k, "backing_file"))
            o.backing_file = v;
        else if (!strcmp(k, "backing_fmt"))
            o.backing_format = v;
        else if (!strcmp(k, "preallocation"))
            o.preallocation = v;
        else if (!strcmp(k, "compression_type"))
            o.compression_type = v;
        else if (!strcmp(k, "refcount_bits"))
            o.refcount_bits = (unsigned)num(v);
        else if (!strcmp(k, "lazy_refcounts"))
            o.lazy_refcounts = !strcmp(v, "on");
        else
            return 2;
    }
    GError *err = NULL;
    if (block_create(argv[1], &o, &err) < 0)
        return fail(err, "create");
    return 0;
}

static int cmd_write(int argc, char **argv, bool compressed)
{
    if (argc != 5)
        return 2;
    uint64_t off = num(argv[2]), len = num(argv[4]);
    uint8_t *buf = pattern(argv[3], len);
    if (!buf)
        return 2;
    struct block_image *img = open_image(argv[1], true);
    if (!img) {
        g_free(buf);
        return 1;
    }
    GError *err = NULL;
    int r = 0;
    if (compressed) {
        uint32_t cs;
        struct block_info info;
        block_get_info(img, &info);
        cs = info.cluster_size ? info.cluster_size : 65536;
        for (uint64_t done = 0; done < len && r == 0; done += cs)
            r = block_write_compressed(img, off + done, buf + done, MIN(cs, len - done), &err);
    } else {
        r = block_write(img, off, buf, len, &err);
    }
    g_free(buf);
    if (r < 0) {
        block_close(img, NULL);
        return fail(err, "write");
    }
    return close_image(img);
}

static int cmd_zero(int argc, char **argv, bool discard)
{
    if (argc < 4)
        return 2;
    struct block_image *img = open_image(argv[1], true);
    if (!img)
        return 1;
    GError *err = NULL;
    int r = discard ? block_discard(img, num(argv[2]), num(argv[3]), &err)
                    : block_write_zeroes(img, num(argv[2]), num(argv[3]),
                                         argc > 4 && !strcmp(argv[4], "unmap"), &err);
    if (r < 0) {
        block_close(img, NULL);
        return fail(err, discard ? "discard" : "write zeroes");
    }
    return close_image(img);
}

static int cmd_read(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    uint64_t off = num(argv[2]), len = num(argv[3]);
    struct block_image *img = open_image(argv[1], false);
    if (!img)
        return 1;
    uint8_t *buf = g_malloc(len ? len : 1);
    GError *err = NULL;
    int r = block_read(img, off, buf, len, &err);
    block_close(img, NULL);
    if (r < 0) {
        g_free(buf);
        return fail(err, "read");
    }
    char *md5 = g_compute_checksum_for_data(G_CHECKSUM_MD5, buf, len);
    printf("%s\n", md5);
    if (argc > 4 && !strcmp(argv[4], "hex")) {
        for (uint64_t i = 0; i < len; i++)
            printf("%02x", buf[i]);
        printf("\n");
    }
    g_free(md5);
    g_free(buf);
    return 0;
}

static int cmd_dump(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    struct block_image *img = open_image(argv[1], false);
    if (!img)
        return 1;
    FILE *out = fopen(argv[2], "wb");
    if (!out) {
        block_close(img, NULL);
        return 1;
    }
    uint64_t size = block_get_length(img), chunk = 1 << 20;
    uint8_t *buf = g_malloc(chunk);
    int r = 0;
    GError *err = NULL;
    for (uint64_t off = 0; off < size && r == 0; off += chunk) {
        uint64_t n = MIN(chunk, size - off);
        r = block_read(img, off, buf, n, &err);
        if (r == 0 && fwrite(buf, 1, n, out) != n)
            r = -EIO;
    }
    g_free(buf);
    fclose(out);
    block_close(img, NULL);
    return r < 0 ? fail(err, "dump") : 0;
}

static int cmd_snapshot(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    bool list = !strcmp(argv[2], "-l");
    if (!list && argc != 4)
        return 2;
    struct block_image *img = open_image(argv[1], !list);
    if (!img)
        return 1;
    GError *err = NULL;
    int r;
    if (list) {
        struct block_snapshot_info *sn;
        size_t n;
        r = block_snapshot_list(img, &sn, &n, &err);
        for (size_t i = 0; r == 0 && i < n; i++)
            printf("%s %s %" PRIu64 "\n", sn[i].id, sn[i].name, sn[i].disk_size);
        if (r == 0)
            block_snapshot_list_free(sn, n);
    } else if (!strcmp(argv[2], "-c")) {
        r = block_snapshot_create(img, argv[3], &err);
    } else if (!strcmp(argv[2], "-a")) {
        r = block_snapshot_apply(img, argv[3], &err);
    } else if (!strcmp(argv[2], "-d")) {
        r = block_snapshot_delete(img, argv[3], &err);
    } else {
        block_close(img, NULL);
        return 2;
    }
    if (r < 0) {
        block_close(img, NULL);
        return fail(err, "snapshot");
    }
    return close_image(img);
}

static void print_line(void *opaque, const char *line)
{
    (void)opaque;
    printf("%s\n", line);
}

static int cmd_check(int argc, char **argv)
{
    unsigned fix = 0;
    if (argc > 2)
        fix =
            !strcmp(argv[2], "all") ? BLOCK_CHECK_FIX_LEAKS | BLOCK_CHECK_FIX_ERRORS : BLOCK_CHECK_FIX_LEAKS;
    if (fix)
        open_flags |= BLOCK_OPEN_REPAIR | BLOCK_OPEN_NO_BACKING;
    struct block_image *img = open_image(argv[1], fix != 0);
    if (!img)
        return 1;
    struct block_check_result res;
    GError *err = NULL;
    int r = block_check(img, fix, &res, print_line, NULL, &err);
    if (r < 0) {
        block_close(img, NULL);
        return fail(err, "check");
    }
    printf("corruptions=%" PRId64 " leaks=%" PRId64 " check_errors=%" PRId64 " corruptions_fixed=%" PRId64
           " leaks_fixed=%" PRId64 " image_end=%" PRId64 " allocated=%" PRId64 " compressed=%" PRId64 "\n",
           res.corruptions, res.leaks, res.check_errors, res.corruptions_fixed, res.leaks_fixed,
           res.image_end_offset, res.allocated_clusters, res.compressed_clusters);
    if (close_image(img))
        return 1;
    return res.corruptions || res.check_errors ? 2 : res.leaks ? 3 : 0;
}

static int cmd_info(int argc, char **argv)
{
    (void)argc;
    struct block_image *img = open_image(argv[1], false);
    if (!img)
        return 1;
    struct block_info i;
    block_get_info(img, &i);
    printf("format=%s\nvirtual_size=%" PRIu64 "\ncluster_size=%u\nversion=%d\nrefcount_bits=%u\n"
           "compression=%s\nlazy_refcounts=%d\ndirty=%d\ncorrupt=%d\nbacking_file=%s\nbacking_full=%s\n"
           "backing_format=%s\n",
           i.format, i.virtual_size, i.cluster_size, i.qcow2_version, i.refcount_bits,
           i.compression_type ? i.compression_type : "", i.lazy_refcounts, i.dirty, i.corrupt,
           i.backing_file ? i.backing_file : "", i.backing_full ? i.backing_full : "",
           i.backing_format ? i.backing_format : "");
    block_close(img, NULL);
    return 0;
}

static int cmd_map(int argc, char **argv)
{
    (void)argc;
    struct block_image *img = open_image(argv[1], false);
    if (!img)
        return 1;
    uint64_t size = block_get_length(img);
    GError *err = NULL;
    for (uint64_t off = 0; off < size;) {
        struct block_status st;
        if (block_status_chain(img, off, size - off, &st, &err) < 0) {
            block_close(img, NULL);
            return fail(err, "map");
        }
        printf("%" PRIu64 " %" PRIu64 " %s%s%s depth=%u", off, st.length,
               st.flags & BLOCK_STATUS_ALLOCATED ? "allocated," : "",
               st.flags & BLOCK_STATUS_DATA ? "data," : "", st.flags & BLOCK_STATUS_ZERO ? "zero," : "",
               st.depth);
        if (st.flags & BLOCK_STATUS_OFFSET_VALID)
            printf(" host=%" PRIu64, st.host_offset);
        printf("\n");
        off += st.length;
    }
    block_close(img, NULL);
    return 0;
}

static int cmd_resize(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    struct block_image *img = open_image(argv[1], true);
    if (!img)
        return 1;
    GError *err = NULL;
    if (block_truncate(img, num(argv[2]), argc > 3 && !strcmp(argv[3], "shrink"), &err) < 0) {
        block_close(img, NULL);
        return fail(err, "resize");
    }
    return close_image(img);
}

static int cmd_crash_writer(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    struct block_image *img = open_image(argv[1], true);
    if (!img)
        return 1;
    GRand *rng = g_rand_new_with_seed((guint32)num(argv[2]));
    uint64_t size = block_get_length(img);
    uint8_t *buf = g_malloc(256 * 1024);
    GError *err = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (uint64_t i = 0;; i++) {
        uint64_t len = (uint64_t)g_rand_int_range(rng, 1, 200 * 1024);
        uint64_t off = (uint64_t)g_rand_int_range(rng, 0, (gint32)(size - len));
        /* one in eight requests zeroes with unmap, which frees clusters so that later writes reallocate */
        bool zero = g_rand_int_range(rng, 0, 8) == 0;
        uint8_t byte = zero ? 0 : (uint8_t)(i % 255 + 1);
        memset(buf, byte, len);
        printf("w %" PRIu64 " %" PRIu64 " %" PRIu64 " %u\n", i, off, len, byte);
        int r = zero ? block_write_zeroes(img, off, len, true, &err) : block_write(img, off, buf, len, &err);
        if (r < 0)
            return fail(err, "write");
        if (g_rand_int_range(rng, 0, 4) == 0) {
            if (block_flush(img, &err) < 0)
                return fail(err, "flush");
            printf("f %" PRIu64 "\n", i + 1);
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"no-backing", no_argument, NULL, 'b'},
        {"cache", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "+f:Ur", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'U':
            open_flags |= BLOCK_OPEN_NO_LOCK;
            break;
        case 'r':
            open_flags |= BLOCK_OPEN_READ_ONLY;
            break;
        case 'b':
            open_flags |= BLOCK_OPEN_NO_BACKING;
            break;
        case 'c':
            if (!strcmp(optarg, "none"))
                open_flags |= BLOCK_OPEN_CACHE_NONE;
            else if (!strcmp(optarg, "unsafe"))
                open_flags |= BLOCK_OPEN_CACHE_UNSAFE;
            break;
        default:
            return 2;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 2) {
        fprintf(stderr,
                "usage: block-tool [-f FMT] [-U] [-r] [--no-backing] [--cache MODE] COMMAND PATH ...\n");
        return 2;
    }
    const char *cmd = argv[0];
    if (!strcmp(cmd, "create"))
        return cmd_create(argc, argv);
    if (!strcmp(cmd, "write"))
        return cmd_write(argc, argv, false);
    if (!strcmp(cmd, "write-compressed"))
        return cmd_write(argc, argv, true);
    if (!strcmp(cmd, "zero"))
        return cmd_zero(argc, argv, false);
    if (!strcmp(cmd, "discard"))
        return cmd_zero(argc, argv, true);
    if (!strcmp(cmd, "read"))
        return cmd_read(argc, argv);
    if (!strcmp(cmd, "dump"))
        return cmd_dump(argc, argv);
    if (!strcmp(cmd, "snapshot"))
        return cmd_snapshot(argc, argv);
    if (!strcmp(cmd, "check"))
        return cmd_check(argc, argv);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc, argv);
    if (!strcmp(cmd, "map"))
        return cmd_map(argc, argv);
    if (!strcmp(cmd, "resize"))
        return cmd_resize(argc, argv);
    if (!strcmp(cmd, "crash-writer"))
        return cmd_crash_writer(argc, argv);
    fprintf(stderr, "block-tool: unknown command %s\n", cmd);
    return 2;
}
