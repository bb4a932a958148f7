/* Proves the qcow2 driver against an in-memory model: byte-granular I/O across cluster and L2 boundaries,
 * refcount table growth, 3-deep relative backing chains, zero clusters, discard, snapshots, compression,
 * header validation (nothing written to a rejected file), runtime corruption detection, lazy refcounts and
 * dirty repair, locking. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "block_test_util.h"

static char *tmp;
static unsigned counter;

static char *new_path(const char *ext)
{
    return g_strdup_printf("%s/img%u.%s", tmp, counter++, ext);
}

static void create(const char *path, uint64_t size, uint32_t cs, int version, const char *backing,
                   const char *backing_fmt)
{
    struct block_create_options o = {.format = "qcow2",
                                     .size = size,
                                     .cluster_size = cs,
                                     .qcow2_version = version,
                                     .backing_file = backing,
                                     .backing_format = backing_fmt};
    block_test_create(path, &o);
}

static struct block_image *open_rw(const char *path)
{
    return block_test_open(path, "qcow2", 0);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 37 + i * 13 + (i >> 8) + 1);
}

static void assert_content(struct block_image *img, const uint8_t *model, uint64_t size)
{
    uint8_t *buf = g_malloc(size);
    GError *err = NULL;
    g_assert_cmpint(block_read(img, 0, buf, size, &err), ==, 0);
    g_assert_no_error(err);
    for (uint64_t i = 0; i < size; i++) {
        if (buf[i] != model[i])
            g_error("byte %" G_GUINT64_FORMAT " is 0x%02x, expected 0x%02x", i, buf[i], model[i]);
    }
    g_free(buf);
}

static void model_write(struct block_image *img, uint8_t *model, uint64_t off, size_t len, unsigned seed)
{
    uint8_t *b = g_malloc(len);
    fill(b, len, seed);
    GError *err = NULL;
    g_assert_cmpint(block_write(img, off, b, len, &err), ==, 0);
    g_assert_no_error(err);
    memcpy(model + off, b, len);
    g_free(b);
}

static uint8_t *file_bytes(const char *path, gsize *len)
{
    gchar *data;
    GError *err = NULL;
    g_assert_true(g_file_get_contents(path, &data, len, &err));
    return (uint8_t *)data;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be(uint8_t *p, int n, uint64_t v)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Patches N big-endian bytes at OFF of the file. */
static void patch(const char *path, uint64_t off, int n, uint64_t v)
{
    uint8_t b[8];
    put_be(b, n, v);
    int fd = open(path, O_WRONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, b, (size_t)n, (off_t)off), ==, n);
    close(fd);
}

static uint64_t read_field(const char *path, uint64_t off, int n)
{
    uint8_t b[8];
    int fd = open(path, O_RDONLY);
    g_assert_cmpint(pread(fd, b, (size_t)n, (off_t)off), ==, n);
    close(fd);
    return be(b, n);
}

static void test_unaligned_patterns(gconstpointer data)
{
    uint32_t cs = GPOINTER_TO_UINT(data);
    uint64_t size = 3ull * cs * (cs / 8) / 2 + 1000; /* 1.5 L2 tables plus a partial cluster */
    if (size > (8u << 20))
        size = (8u << 20) + 1000;
    char *path = new_path("qcow2");
    create(path, size, cs, 3, NULL, NULL);
    struct block_image *img = open_rw(path);
    uint8_t *model = g_malloc0(size);
    uint64_t l2_span = (uint64_t)cs * (cs / 8);
    uint64_t offs[] = {0,           1,       cs - 1,           cs,       2ull * cs - 3,
                       l2_span - 5, l2_span, l2_span + cs / 2, size - 7, 12345};
    size_t lens[] = {1, cs + 2, 2, 3ull * cs, 7, 11, cs, 2 * cs + 1, 7, 3};
    for (unsigned i = 0; i < G_N_ELEMENTS(offs); i++) {
        if (offs[i] + lens[i] > size)
            continue;
        model_write(img, model, offs[i], lens[i], i);
    }
    GRand *rng = g_rand_new_with_seed(cs);
    for (int i = 0; i < 40; i++) {
        uint64_t len = (uint64_t)g_rand_int_range(rng, 1, (gint32)(3 * cs));
        uint64_t off = (uint64_t)g_rand_int_range(rng, 0, (gint32)(size - len));
        model_write(img, model, off, len, 100 + i);
    }
    g_rand_free(rng);
    assert_content(img, model, size);
    block_test_assert_clean(img);
    GError *err = NULL;
    g_assert_cmpint(block_close(img, &err), ==, 0);
    img = block_open(path, "qcow2", BLOCK_OPEN_READ_ONLY, &err);
    g_assert_no_error(err);
    assert_content(img, model, size);
    block_test_assert_clean(img);
    block_close(img, NULL);
    g_free(model);
    g_free(path);
}

static void test_refcount_table_growth(void)
{
    char *path = new_path("qcow2");
    uint64_t size = 16u << 20;
    create(path, size, 512, 3, NULL, NULL);
    g_assert_cmpuint(read_field(path, 56, 4), ==, 1);
    uint64_t old_rt = read_field(path, 48, 8);
    struct block_image *img = open_rw(path);
    uint8_t *model = g_malloc0(size);
    /* one refcount block covers 256 clusters (128 KiB) and the first table 64 blocks (8 MiB): 12 MiB of data
     * (plus L2 tables) needs a bigger table */
    for (uint64_t off = 0; off < (12u << 20); off += 256 * 1024)
        model_write(img, model, off, 256 * 1024, (unsigned)(off >> 18));
    GError *err = NULL;
    g_assert_cmpint(block_flush(img, &err), ==, 0);
    g_assert_cmpuint(read_field(path, 56, 4), >, 1);
    g_assert_cmpuint(read_field(path, 48, 8), !=, old_rt);
    assert_content(img, model, size);
    block_test_assert_clean(img);
    block_close(img, NULL);
    img = block_open(path, "qcow2", BLOCK_OPEN_READ_ONLY, &err);
    assert_content(img, model, size);
    block_test_assert_clean(img);
    block_close(img, NULL);
    g_free(model);
    g_free(path);
}

static void test_large_l1_small_clusters(void)
{
    /* 1 GiB with 512-byte clusters: a 512-cluster L1 table spanning refcount blocks that do not exist yet */
    char *path = new_path("qcow2");
    create(path, 1ull << 30, 512, 3, NULL, NULL);
    struct block_image *img = open_rw(path);
    uint8_t *model = g_malloc0(1 << 20);
    model_write(img, model, 0, 1 << 20, 1);
    uint8_t tail[5];
    GError *err = NULL;
    g_assert_cmpint(block_write(img, (1ull << 30) - 5, "abcde", 5, &err), ==, 0);
    g_assert_cmpint(block_read(img, (1ull << 30) - 5, tail, 5, &err), ==, 0);
    g_assert_cmpmem(tail, 5, "abcde", 5);
    assert_content(img, model, 1 << 20);
    block_test_assert_clean(img);
    block_close(img, NULL);
    g_free(model);
    g_free(path);
}

static void test_backing_chain(void)
{
    char *dir = g_build_filename(tmp, "chain", NULL);
    char *sub = g_build_filename(dir, "sub", NULL);
    g_assert_cmpint(g_mkdir_with_parents(sub, 0755), ==, 0);
    char *base = g_build_filename(dir, "base.raw", NULL);
    char *mid = g_build_filename(sub, "mid.qcow2", NULL);
    char *top = g_build_filename(sub, "top.qcow2", NULL);
    uint64_t size = 1 << 20, base_size = 768 * 1024;
    uint8_t *model = g_malloc0(size);
    struct block_create_options ro = {.format = "raw", .size = base_size};
    GError *err = NULL;
    g_assert_cmpint(block_create(base, &ro, &err), ==, 0);
    struct block_image *img = block_open(base, "raw", 0, &err);
    model_write(img, model, 0, base_size, 1);
    block_close(img, NULL);
    create(mid, size, 4096, 3, "../base.raw", "raw");
    img = open_rw(mid);
    model_write(img, model, 5000, 10000, 2);
    model_write(img, model, 800 * 1024, 1000, 3); /* beyond the base's end: merged with zeros */
    block_close(img, NULL);
    create(top, 0, 65536, 2, "mid.qcow2", NULL);
    img = open_rw(top);
    g_assert_cmpuint(block_get_length(img), ==, size);
    g_assert_nonnull(img->backing);
    g_assert_nonnull(img->backing->backing);
    g_assert_cmpstr(img->backing->backing_format, ==, "raw");
    g_assert_true(img->backing->read_only);
    model_write(img, model, 7, 3, 4); /* partial cluster: COW from two layers below */
    model_write(img, model, 65536 + 100, 1, 5);
    assert_content(img, model, size);
    struct block_status st;
    g_assert_cmpint(block_status_chain(img, 70000, 1000, &st, &err), ==, 0);
    g_assert_cmpuint(st.depth, ==, 0);
    g_assert_cmpint(block_status_chain(img, 131072 + 6000, 100, &st, &err), ==, 0);
    g_assert_cmpuint(st.depth, ==, 2);
    g_assert_cmpint(block_status_chain(img, 900 * 1024, 100, &st, &err), ==, 0);
    g_assert_true(st.flags & BLOCK_STATUS_ZERO);
    block_test_assert_clean(img);
    block_close(img, NULL);
    /* opened from another working directory, the relative names still resolve next to each image */
    char *cwd = g_get_current_dir();
    g_assert_cmpint(chdir("/"), ==, 0);
    img = block_open(top, NULL, BLOCK_OPEN_READ_ONLY, &err);
    g_assert_no_error(err);
    assert_content(img, model, size);
    block_close(img, NULL);
    /* without the chain only the top layer's data is there */
    img = block_open(top, "qcow2", BLOCK_OPEN_READ_ONLY | BLOCK_OPEN_NO_BACKING, &err);
    g_assert_null(img->backing);
    uint8_t b[3];
    g_assert_cmpint(block_read(img, 200000, b, 3, &err), ==, 0);
    g_assert_cmpuint(b[0] | b[1] | b[2], ==, 0);
    block_close(img, NULL);
    g_assert_cmpint(chdir(cwd), ==, 0);
    g_free(cwd);
    /* a missing backing file is named in the error */
    g_unlink(base);
    g_assert_null(block_open(top, NULL, BLOCK_OPEN_READ_ONLY, &err));
    g_assert_nonnull(strstr(err->message, "base.raw"));
    g_clear_error(&err);
    g_free(model);
    g_free(base);
    g_free(mid);
    g_free(top);
    g_free(sub);
    g_free(dir);
}

static void test_backing_loop_and_depth(void)
{
    char *a = new_path("qcow2");
    create(a, 65536, 65536, 3, NULL, NULL);
    char *name = g_path_get_basename(a);
    /* a.qcow2's backing file is a.qcow2 */
    struct block_create_options o = {
        .format = "qcow2", .size = 65536, .backing_file = name, .backing_format = "qcow2"};
    char *b = new_path("qcow2");
    GError *err = NULL;
    g_assert_cmpint(block_create(b, &o, &err), ==, 0);
    g_assert_cmpint(rename(b, a), ==, 0);
    g_assert_null(block_open(a, NULL, BLOCK_OPEN_READ_ONLY, &err));
    g_assert_nonnull(strstr(err->message, "loop"));
    g_clear_error(&err);
    g_free(name);
    g_free(a);
    g_free(b);
}

static void test_zero_clusters(gconstpointer data)
{
    int version = GPOINTER_TO_INT(data);
    char *base = new_path("qcow2");
    uint64_t size = 512 * 1024;
    create(base, size, 65536, version, NULL, NULL);
    struct block_image *img = open_rw(base);
    uint8_t *model = g_malloc0(size);
    model_write(img, model, 0, size, 7);
    block_close(img, NULL);
    char *name = g_path_get_basename(base);
    char *top = new_path("qcow2");
    create(top, 0, 65536, version, name, "qcow2");
    img = open_rw(top);
    model_write(img, model, 65536, 3 * 65536, 8);
    GError *err = NULL;
    /* whole clusters 1-2 plus partial pieces around: zeros must hide both this layer and the backing file */
    g_assert_cmpint(block_write_zeroes(img, 65536 - 100, 2 * 65536 + 200, false, &err), ==, 0);
    memset(model + 65536 - 100, 0, 2 * 65536 + 200);
    g_assert_cmpint(block_write_zeroes(img, 5 * 65536, 65536, true, &err), ==, 0);
    memset(model + 5 * 65536, 0, 65536);
    g_assert_no_error(err);
    assert_content(img, model, size);
    struct block_status st;
    g_assert_cmpint(block_status(img, 5 * 65536, 65536, &st, &err), ==, 0);
    if (version == 3)
        g_assert_cmpuint(st.flags & (BLOCK_STATUS_ZERO | BLOCK_STATUS_ALLOCATED), ==,
                         BLOCK_STATUS_ZERO | BLOCK_STATUS_ALLOCATED);
    else
        g_assert_true(st.flags & BLOCK_STATUS_DATA); /* v2 has no zero flag: zeros are stored */
    block_test_assert_clean(img);
    block_close(img, NULL);
    img = block_open(top, NULL, BLOCK_OPEN_READ_ONLY, &err);
    assert_content(img, model, size);
    block_close(img, NULL);
    g_free(model);
    g_free(name);
    g_free(base);
    g_free(top);
}

static void test_discard(void)
{
    char *path = new_path("qcow2");
    uint64_t size = 1 << 20;
    create(path, size, 65536, 3, NULL, NULL);
    struct block_image *img = open_rw(path);
    uint8_t *model = g_malloc0(size);
    model_write(img, model, 0, size, 3);
    GError *err = NULL;
    struct block_check_result before, after;
    g_assert_cmpint(block_check(img, 0, &before, NULL, NULL, &err), ==, 0);
    /* 4 whole clusters inside; the partial head and tail stay */
    g_assert_cmpint(block_discard(img, 65536 + 10, 5 * 65536, &err), ==, 0);
    memset(model + 2 * 65536, 0, 4 * 65536);
    assert_content(img, model, size);
    g_assert_cmpint(block_check(img, 0, &after, NULL, NULL, &err), ==, 0);
    g_assert_cmpint(after.corruptions + after.leaks, ==, 0);
    g_assert_cmpint(after.allocated_clusters, ==, before.allocated_clusters - 4);
    struct block_status st;
    g_assert_cmpint(block_status(img, 2 * 65536, 4 * 65536, &st, &err), ==, 0);
    g_assert_cmpuint(st.flags, ==, 0);
    g_assert_cmpuint(st.length, ==, 4 * 65536);
    /* freed clusters are reused */
    model_write(img, model, 2 * 65536, 65536, 4);
    g_assert_cmpint(block_flush(img, &err), ==, 0);
    struct block_check_result again;
    g_assert_cmpint(block_check(img, 0, &again, NULL, NULL, &err), ==, 0);
    g_assert_cmpint(again.image_end_offset, ==, after.image_end_offset);
    assert_content(img, model, size);
    block_close(img, NULL);
    g_free(model);
    g_free(path);
}

static void test_snapshots(void)
{
    char *path = new_path("qcow2");
    uint64_t size = 2 << 20;
    create(path, size, 4096, 3, NULL, NULL);
    struct block_image *img = open_rw(path);
    uint8_t *m0 = g_malloc0(size), *m1, *m2;
    model_write(img, m0, 0, 300000, 1);
    model_write(img, m0, 1 << 20, 4096, 2);
    GError *err = NULL;
    g_assert_cmpint(block_snapshot_create(img, "one", &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(block_snapshot_create(img, "one", &err), ==, -EEXIST);
    g_clear_error(&err);
    m1 = g_memdup2(m0, size);
    model_write(img, m1, 100, 5000, 3);
    model_write(img, m1, 1500000, 70000, 4);
    g_assert_cmpint(block_write_zeroes(img, 8192, 8192, true, &err), ==, 0);
    memset(m1 + 8192, 0, 8192);
    g_assert_cmpint(block_snapshot_create(img, "two", &err), ==, 0);
    uint8_t *two = g_memdup2(m1, size);
    m2 = g_memdup2(m1, size);
    model_write(img, m2, 0, 1 << 20, 5);
    block_test_assert_clean(img);
    struct block_snapshot_info *list;
    size_t n;
    g_assert_cmpint(block_snapshot_list(img, &list, &n, &err), ==, 0);
    g_assert_cmpuint(n, ==, 2);
    g_assert_cmpstr(list[0].name, ==, "one");
    g_assert_cmpstr(list[0].id, ==, "1");
    g_assert_cmpstr(list[1].id, ==, "2");
    g_assert_cmpuint(list[1].disk_size, ==, size);
    block_snapshot_list_free(list, n);
    g_assert_cmpint(block_snapshot_apply(img, "one", &err), ==, 0);
    assert_content(img, m0, size);
    block_test_assert_clean(img);
    g_assert_cmpint(block_snapshot_apply(img, "2", &err), ==, 0); /* by id */
    assert_content(img, m1, size);
    block_test_assert_clean(img);
    g_assert_cmpint(block_snapshot_delete(img, "one", &err), ==, 0);
    block_test_assert_clean(img);
    g_assert_cmpint(block_snapshot_apply(img, "one", &err), ==, -ENOENT);
    g_clear_error(&err);
    model_write(img, m1, 4096, 4096, 6); /* the active state is writable after apply and delete */
    block_close(img, NULL);
    img = open_rw(path);
    assert_content(img, m1, size);
    g_assert_cmpint(block_snapshot_apply(img, "two", &err), ==, 0);
    assert_content(img, two, size); /* "two" was taken before write 6 */
    g_assert_cmpint(block_snapshot_delete(img, "two", &err), ==, 0);
    assert_content(img, two, size);
    block_test_assert_clean(img);
    g_assert_cmpint(block_truncate(img, size * 2, false, &err), ==, 0); /* allowed again without snapshots */
    block_close(img, NULL);
    g_free(m0);
    g_free(m1);
    g_free(m2);
    g_free(two);
    g_free(path);
}

static void test_snapshot_exact_restore(void)
{
    char *path = new_path("qcow2");
    uint64_t size = 256 * 1024;
    create(path, size, 512, 3, NULL, NULL);
    struct block_image *img = open_rw(path);
    uint8_t *m0 = g_malloc0(size), *m1;
    model_write(img, m0, 0, size, 9);
    GError *err = NULL;
    g_assert_cmpint(block_snapshot_create(img, "base", &err), ==, 0);
    m1 = g_memdup2(m0, size);
    for (int i = 0; i < 50; i++)
        model_write(img, m1, (uint64_t)i * 5000 + 7, 700, (unsigned)(20 + i));
    g_assert_cmpint(block_discard(img, 0, 4096, &err), ==, 0);
    memset(m1, 0, 4096);
    assert_content(img, m1, size);
    g_assert_cmpint(block_snapshot_apply(img, "base", &err), ==, 0);
    assert_content(img, m0, size);
    g_assert_cmpint(block_snapshot_delete(img, "base", &err), ==, 0);
    block_test_assert_clean(img);
    assert_content(img, m0, size);
    block_close(img, NULL);
    g_free(m0);
    g_free(m1);
    g_free(path);
}

static void test_compressed(gconstpointer data)
{
    const char *ctype = data;
    char *path = new_path("qcow2");
    uint64_t size = 5 * 65536 + 1000;
    struct block_create_options o = {.format = "qcow2", .size = size, .compression_type = ctype};
    GError *err = NULL;
    g_assert_cmpint(block_create(path, &o, &err), ==, 0);
    struct block_image *img = open_rw(path);
    uint8_t *model = g_malloc0(size);
    for (uint64_t off = 0; off < size; off += 65536) {
        size_t n = (size_t)MIN(65536, size - off);
        for (size_t i = 0; i < n; i++)
            model[off + i] = (uint8_t)("compressible"[i % 12] + (off >> 16));
        g_assert_cmpint(block_write_compressed(img, off, model + off, n, &err), ==, 0);
    }
    g_assert_no_error(err);
    g_assert_cmpint(block_write_compressed(img, 100, model, 65536, &err), ==, -EINVAL);
    g_clear_error(&err);
    assert_content(img, model, size);
    struct block_check_result res;
    g_assert_cmpint(block_check(img, 0, &res, NULL, NULL, &err), ==, 0);
    g_assert_cmpint(res.compressed_clusters, ==, 6);
    g_assert_cmpint(res.corruptions + res.leaks, ==, 0);
    /* header, refcount table and block, L1, L2, and all six compressed clusters packed into one cluster */
    g_assert_cmpint(res.image_end_offset, ==, 6 * 65536);
    /* overwriting part of a compressed cluster decompresses, merges and stores it plainly */
    model_write(img, model, 65536 + 5, 10, 1);
    assert_content(img, model, size);
    block_test_assert_clean(img);
    struct block_info info;
    block_get_info(img, &info);
    g_assert_cmpstr(info.compression_type, ==, ctype);
    block_close(img, NULL);
    img = block_open(path, NULL, BLOCK_OPEN_READ_ONLY, &err);
    assert_content(img, model, size);
    block_close(img, NULL);
    g_free(model);
    g_free(path);
}

struct header_case {
    const char *name;
    uint64_t off;
    int width;
    uint64_t value;
    int code;
    const char *message;
    uint64_t off2; /* optional second field (0: none) */
    int width2;
    uint64_t value2;
};

static const struct header_case header_cases[] = {
    {"magic", 0, 4, 0x514649fc, EINVAL, "not in qcow2 format"},
    {"version", 4, 4, 4, ENOTSUP, "version 4"},
    {"version-1", 4, 4, 1, ENOTSUP, "version 1"},
    {"backing-size", 16, 4, 2000, EINVAL, "backing file name", 8, 8, 512},
    {"backing-size-past-cluster", 16, 4, 1000, EINVAL, "backing file name", 8, 8, 65000},
    {"backing-offset", 8, 8, 1ull << 40, EINVAL, "backing file name", 16, 4, 4},
    {"backing-offset-in-header", 8, 8, 16, EINVAL, "backing file name", 16, 4, 4},
    {"cluster-bits-small", 20, 4, 8, EINVAL, "cluster size"},
    {"cluster-bits-large", 20, 4, 22, EINVAL, "cluster size"},
    {"size-huge", 24, 8, 1ull << 62, EFBIG, "too large"},
    {"size-beyond-l1", 24, 8, 1ull << 43, EINVAL, "L1 table is too small"},
    {"crypt", 32, 4, 2, ENOTSUP, "encryption"},
    {"l1-size-huge", 36, 4, 0x10000000, EFBIG, "L1 table too large"},
    {"l1-offset-unaligned", 40, 8, 0x30001, EINVAL, "L1 table offset"},
    {"l1-offset-outside", 40, 8, 1ull << 40, EINVAL, "outside the image file"},
    {"l1-offset-zero", 40, 8, 0, EINVAL, "L1 table offset"},
    {"reftable-offset-unaligned", 48, 8, 0x10200, EINVAL, "refcount table offset"},
    {"reftable-offset-outside", 48, 8, 1ull << 40, EINVAL, "refcount table offset"},
    {"reftable-clusters-zero", 56, 4, 0, EFBIG, "refcount table size"},
    {"reftable-clusters-huge", 56, 4, 0x100000, EFBIG, "refcount table size"},
    {"snapshots-count", 60, 4, 70000, EFBIG, "too many snapshots"},
    {"snapshots-offset", 60, 4, 1, EINVAL, "snapshot table offset"},
    {"incompat-unknown", 72, 8, 1ull << 5, ENOTSUP, "unknown incompatible feature bit 5"},
    {"incompat-extl2", 72, 8, 1ull << 4, ENOTSUP, "extended L2 entries"},
    {"incompat-data-file", 72, 8, 1ull << 2, ENOTSUP, "external data file"},
    {"incompat-compression", 72, 8, 1ull << 3, EINVAL, "compression type"},
    {"incompat-corrupt", 72, 8, 1ull << 1, EACCES, "corrupt"},
    {"refcount-order", 96, 4, 7, EINVAL, "refcount width"},
    {"header-length-short", 100, 4, 96, EINVAL, "header too short"},
    {"header-length-odd", 100, 4, 108, EINVAL, "multiple of 8"},
    {"header-length-huge", 100, 4, 1u << 20, EINVAL, "exceeds the cluster size"},
    {"compression-type", 104, 1, 7, ENOTSUP, "compression type 7"},
};

static void test_header_field(gconstpointer data)
{
    const struct header_case *c = data;
    char *path = new_path("qcow2");
    create(path, 1 << 20, 65536, 3, NULL, NULL);
    struct block_image *img = open_rw(path);
    uint8_t blk[512];
    memset(blk, 0x42, sizeof(blk));
    GError *err = NULL;
    g_assert_cmpint(block_write(img, 0, blk, sizeof(blk), &err), ==, 0);
    block_close(img, NULL);
    patch(path, c->off, c->width, c->value);
    if (c->off2)
        patch(path, c->off2, c->width2, c->value2);
    gsize len_before, len_after;
    uint8_t *before = file_bytes(path, &len_before);
    img = block_open(path, "qcow2", 0, &err);
    g_assert_null(img);
    g_assert_error(err, BLOCK_ERROR, c->code);
    if (!strstr(err->message, c->message))
        g_error("%s: message \"%s\" lacks \"%s\"", c->name, err->message, c->message);
    g_assert_nonnull(strstr(err->message, path));
    g_clear_error(&err);
    uint8_t *after = file_bytes(path, &len_after);
    g_assert_cmpmem(before, len_before, after, len_after);
    g_free(before);
    g_free(after);
    g_free(path);
}

static void test_corrupt_bit_allows_read_only(void)
{
    char *path = new_path("qcow2");
    create(path, 65536, 65536, 3, NULL, NULL);
    patch(path, 72, 8, 2);
    GError *err = NULL;
    struct block_image *img = block_open(path, "qcow2", BLOCK_OPEN_READ_ONLY, &err);
    g_assert_no_error(err);
    struct block_info info;
    block_get_info(img, &info);
    g_assert_true(info.corrupt);
    block_close(img, NULL);
    /* check -r all on a corrupt-marked but consistent image clears the mark */
    img = block_open(path, "qcow2", BLOCK_OPEN_REPAIR, &err);
    g_assert_no_error(err);
    uint8_t b = 1;
    g_assert_cmpint(block_write(img, 0, &b, 1, &err), ==, -EIO);
    g_clear_error(&err);
    struct block_check_result res;
    g_assert_cmpint(block_check(img, BLOCK_CHECK_FIX_LEAKS | BLOCK_CHECK_FIX_ERRORS, &res, NULL, NULL, &err),
                    ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(res.corruptions, ==, 0);
    block_close(img, NULL);
    g_assert_cmpuint(read_field(path, 72, 8), ==, 0);
    img = open_rw(path);
    block_close(img, NULL);
    g_free(path);
}

/* Host offset of guest cluster 0's L2 table and of the L1 table. */
/* A closed 1 MiB image (64 KiB clusters) holding pattern 1 in its first LEN bytes; *MODEL is its content. */
static char *image_with_data(size_t len, uint8_t **model)
{
    char *path = new_path("qcow2");
    create(path, 1 << 20, 65536, 3, NULL, NULL);
    struct block_image *img = open_rw(path);
    *model = g_malloc0(1 << 20);
    model_write(img, *model, 0, len, 1);
    block_close(img, NULL);
    return path;
}

static void layout(const char *path, uint64_t *l1, uint64_t *l2)
{
    *l1 = read_field(path, 40, 8);
    *l2 = read_field(path, *l1, 8) & 0x00fffffffffffe00ull;
}

static void test_corruption_unaligned_l2(void)
{
    uint8_t *model;
    char *path = image_with_data(65536, &model);
    uint64_t l1, l2;
    layout(path, &l1, &l2);
    patch(path, l1, 8, (l2 + 512) | (1ull << 63));
    GError *err = NULL;
    struct block_image *img = open_rw(path);
    uint8_t b[16];
    g_assert_cmpint(block_read(img, 0, b, sizeof(b), &err), ==, -EIO);
    g_assert_nonnull(strstr(err->message, "not cluster aligned"));
    g_clear_error(&err);
    g_assert_cmpint(block_write(img, 500000, b, sizeof(b), &err), ==, -EIO);
    g_assert_nonnull(strstr(err->message, "corrupt"));
    g_clear_error(&err);
    block_close(img, NULL);
    g_assert_cmpuint(read_field(path, 72, 8) & 2, ==, 2);
    g_assert_null(block_open(path, "qcow2", 0, &err));
    g_assert_error(err, BLOCK_ERROR, EACCES);
    g_clear_error(&err);
    img = block_open(path, "qcow2", BLOCK_OPEN_READ_ONLY, &err);
    g_assert_nonnull(img); /* still readable: the broken table answers with an error, not garbage */
    g_assert_cmpint(block_read(img, 65536, b, sizeof(b), &err), ==, -EIO);
    g_clear_error(&err);
    block_close(img, NULL);
    g_free(model);
    g_free(path);
}

static void test_corruption_overlap_refused(void)
{
    uint8_t *model;
    char *path = image_with_data(2 * 65536, &model);
    uint64_t l1, l2;
    layout(path, &l1, &l2);
    /* guest cluster 1 now claims to live on the refcount table */
    uint64_t rt = read_field(path, 48, 8);
    patch(path, l2 + 8, 8, rt | (1ull << 63));
    gsize n1, n2;
    uint8_t *before = file_bytes(path, &n1);
    GError *err = NULL;
    struct block_image *img = open_rw(path);
    uint8_t b[100];
    memset(b, 0xcc, sizeof(b));
    g_assert_cmpint(block_write(img, 65536 + 10, b, sizeof(b), &err), ==, -EIO);
    g_assert_nonnull(strstr(err->message, "overlaps"));
    g_clear_error(&err);
    g_assert_cmpint(block_write(img, 3 * 65536, b, sizeof(b), &err), ==, -EIO); /* read-only from now on */
    g_clear_error(&err);
    block_close(img, NULL);
    uint8_t *after = file_bytes(path, &n2);
    g_assert_cmpuint(n1, ==, n2);
    before[72 + 7] |= 2; /* the corrupt bit is the only change */
    g_assert_cmpmem(before, n1, after, n2);
    g_free(before);
    g_free(after);
    g_free(model);
    g_free(path);
}

static void test_lazy_refcounts_dirty(void)
{
    char *path = new_path("qcow2");
    struct block_create_options o = {.format = "qcow2", .size = 1 << 20, .lazy_refcounts = true};
    GError *err = NULL;
    g_assert_cmpint(block_create(path, &o, &err), ==, 0);
    g_assert_cmpuint(read_field(path, 72, 8) & 1, ==, 0);
    uint8_t *model = g_malloc0(1 << 20);
    pid_t pid = fork();
    if (pid == 0) {
        /* a writer that dies without closing */
        struct block_image *img = block_open(path, "qcow2", 0, NULL);
        uint8_t b[70000];
        fill(b, sizeof(b), 3);
        if (!img || block_write(img, 1000, b, sizeof(b), NULL) < 0 || block_flush(img, NULL) < 0)
            _exit(1);
        _exit(0);
    }
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    fill(model + 1000, 70000, 3);
    g_assert_cmpuint(read_field(path, 72, 8) & 1, ==, 1);
    struct block_image *img = block_open(path, "qcow2", BLOCK_OPEN_READ_ONLY, &err);
    struct block_info info;
    block_get_info(img, &info);
    g_assert_true(info.dirty);
    g_assert_true(info.lazy_refcounts);
    assert_content(img, model, 1 << 20);
    block_close(img, NULL);
    img = open_rw(path); /* repairs refcounts, then keeps the bit while open */
    g_assert_cmpuint(read_field(path, 72, 8) & 1, ==, 1);
    block_test_assert_clean(img);
    model_write(img, model, 300000, 5, 4);
    block_close(img, NULL);
    g_assert_cmpuint(read_field(path, 72, 8) & 1, ==, 0);
    img = block_open(path, "qcow2", BLOCK_OPEN_READ_ONLY, &err);
    assert_content(img, model, 1 << 20);
    block_test_assert_clean(img);
    block_close(img, NULL);
    g_free(model);
    g_free(path);
}

static void test_check_repairs_leak(void)
{
    uint8_t *model;
    char *path = image_with_data(65536, &model);
    /* refcount of cluster 9 (unused) := 1: a leak */
    uint64_t rb = read_field(path, read_field(path, 48, 8), 8);
    patch(path, rb + 2 * 9, 2, 1);
    GError *err = NULL;
    struct block_image *img = open_rw(path);
    struct block_check_result res;
    g_assert_cmpint(block_check(img, 0, &res, NULL, NULL, &err), ==, 0);
    g_assert_cmpint(res.leaks, ==, 1);
    g_assert_cmpint(res.corruptions, ==, 0);
    g_assert_cmpint(block_check(img, BLOCK_CHECK_FIX_LEAKS, &res, NULL, NULL, &err), ==, 0);
    g_assert_cmpint(res.leaks_fixed, ==, 1);
    g_assert_cmpint(res.leaks, ==, 0);
    /* and a refcount that is too low is a corruption that -r all rebuilds */
    patch(path, rb + 2 * 4, 2, 0);
    block_close(img, NULL);
    img = open_rw(path);
    g_assert_cmpint(block_check(img, 0, &res, NULL, NULL, &err), ==, 0);
    g_assert_cmpint(res.corruptions, >=, 1);
    g_assert_cmpint(block_check(img, BLOCK_CHECK_FIX_LEAKS | BLOCK_CHECK_FIX_ERRORS, &res, NULL, NULL, &err),
                    ==, 0);
    g_assert_cmpint(res.corruptions, ==, 0);
    g_assert_cmpint(res.corruptions_fixed, >=, 1);
    assert_content(img, model, 1 << 20);
    block_close(img, NULL);
    g_free(model);
    g_free(path);
}

static void test_resize_and_preallocation(void)
{
    char *path = new_path("qcow2");
    struct block_create_options o = {
        .format = "qcow2", .size = 1 << 20, .preallocation = "metadata", .cluster_size = 4096};
    GError *err = NULL;
    g_assert_cmpint(block_create(path, &o, &err), ==, 0);
    struct block_image *img = open_rw(path);
    struct block_status st;
    g_assert_cmpint(block_status(img, 0, 1 << 20, &st, &err), ==, 0);
    g_assert_true(st.flags & BLOCK_STATUS_DATA);
    g_assert_cmpuint(st.length, ==, 1 << 20);
    uint8_t *model = g_malloc0(8 << 20);
    assert_content(img, model, 1 << 20);
    block_test_assert_clean(img);
    model_write(img, model, (1 << 20) - 10, 10, 1);
    g_assert_cmpint(block_truncate(img, 8 << 20, false, &err), ==, 0); /* needs a bigger L1 table */
    model_write(img, model, (8 << 20) - 4, 4, 2);
    assert_content(img, model, 8 << 20);
    block_test_assert_clean(img);
    g_assert_cmpint(block_truncate(img, 1 << 19, false, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(block_truncate(img, (1 << 19) + 5, true, &err), ==, 0);
    g_assert_cmpint(block_truncate(img, 1 << 20, false, &err), ==, 0);
    memset(model + (1 << 19) + 5, 0, (8 << 20) - (1 << 19) - 5);
    assert_content(img, model, 1 << 20);
    block_test_assert_clean(img);
    block_close(img, NULL);
    g_free(model);
    g_free(path);
}

static void test_lock(void)
{
    char *path = new_path("qcow2");
    create(path, 65536, 65536, 3, NULL, NULL);
    struct block_image *img = open_rw(path);
    pid_t pid = fork();
    if (pid == 0) {
        GError *e = NULL;
        struct block_image *w = block_open(path, "qcow2", 0, &e);
        int code = w ? 0 : e->code;
        struct block_image *r = block_open(path, "qcow2", BLOCK_OPEN_READ_ONLY | BLOCK_OPEN_NO_LOCK, NULL);
        _exit(code == EAGAIN && r ? 0 : 1);
    }
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    block_close(img, NULL);
    g_free(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmp = block_test_dir_new("test-qcow2-XXXXXX");
    g_test_add_data_func("/qcow2/io/unaligned-patterns/512", GUINT_TO_POINTER(512), test_unaligned_patterns);
    g_test_add_data_func("/qcow2/io/unaligned-patterns/4096", GUINT_TO_POINTER(4096),
                         test_unaligned_patterns);
    g_test_add_data_func("/qcow2/io/unaligned-patterns/65536", GUINT_TO_POINTER(65536),
                         test_unaligned_patterns);
    g_test_add_func("/qcow2/refcount/table-grows-with-512-byte-clusters", test_refcount_table_growth);
    g_test_add_func("/qcow2/refcount/long-runs-get-blocks-outside-the-run", test_large_l1_small_clusters);
    g_test_add_func("/qcow2/backing/three-deep-relative-chain", test_backing_chain);
    g_test_add_func("/qcow2/backing/loop-is-refused", test_backing_loop_and_depth);
    g_test_add_data_func("/qcow2/zero/v3-zero-flag", GINT_TO_POINTER(3), test_zero_clusters);
    g_test_add_data_func("/qcow2/zero/v2-stores-zeros", GINT_TO_POINTER(2), test_zero_clusters);
    g_test_add_func("/qcow2/discard/frees-and-reuses-clusters", test_discard);
    g_test_add_func("/qcow2/snapshot/create-apply-delete", test_snapshots);
    g_test_add_func("/qcow2/snapshot/apply-restores-exact-content", test_snapshot_exact_restore);
    g_test_add_data_func("/qcow2/compress/zlib", "zlib", test_compressed);
    g_test_add_data_func("/qcow2/compress/zstd", "zstd", test_compressed);
    for (size_t i = 0; i < G_N_ELEMENTS(header_cases); i++) {
        char *name = g_strdup_printf("/qcow2/header/rejects/%s", header_cases[i].name);
        g_test_add_data_func(name, &header_cases[i], test_header_field);
        g_free(name);
    }
    g_test_add_func("/qcow2/header/corrupt-bit-opens-read-only-and-repairs",
                    test_corrupt_bit_allows_read_only);
    g_test_add_func("/qcow2/corruption/unaligned-l2-marks-corrupt", test_corruption_unaligned_l2);
    g_test_add_func("/qcow2/corruption/write-over-metadata-refused", test_corruption_overlap_refused);
    g_test_add_func("/qcow2/dirty/lazy-refcounts-crash-repaired-on-open", test_lazy_refcounts_dirty);
    g_test_add_func("/qcow2/check/leaks-and-corruptions-repaired", test_check_repairs_leak);
    g_test_add_func("/qcow2/resize/grow-shrink-and-metadata-preallocation", test_resize_and_preallocation);
    g_test_add_func("/qcow2/lock/second-writer-process-fails", test_lock);
    int r = g_test_run();
    block_test_dir_free(tmp);
    return r;
}
