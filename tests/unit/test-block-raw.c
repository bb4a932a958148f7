/* Proves the block layer over raw files: byte-granular I/O, sparse status, discard/zero, O_DIRECT bouncing,
 * range and read-only errors, the probed-raw header guard, resize, backing path resolution and OFD image
 * locks. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "block_test_util.h"

static char *tmp;

static char *path_in_tmp(const char *name)
{
    return g_build_filename(tmp, name, NULL);
}

static struct block_image *make_raw(const char *name, uint64_t size, char **path_out)
{
    char *path = path_in_tmp(name);
    block_test_create(path, &(struct block_create_options){.format = "raw", .size = size});
    *path_out = path;
    return block_test_open(path, "raw", 0);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static void test_unaligned_rw(void)
{
    char *path;
    struct block_image *img = make_raw("rw.img", 1 << 20, &path);
    uint8_t *model = g_malloc0(1 << 20), *buf = g_malloc(1 << 20);
    static const struct {
        uint64_t off;
        size_t len;
    } w[] = {{0, 1}, {1, 511}, {511, 2}, {4095, 4098}, {65535, 70000}, {(1 << 20) - 3, 3}, {12345, 1}};
    GError *err = NULL;
    for (unsigned i = 0; i < G_N_ELEMENTS(w); i++) {
        fill(buf, w[i].len, i + 1);
        g_assert_cmpint(block_write(img, w[i].off, buf, w[i].len, &err), ==, 0);
        memcpy(model + w[i].off, buf, w[i].len);
    }
    g_assert_cmpint(block_read(img, 0, buf, 1 << 20, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpmem(buf, 1 << 20, model, 1 << 20);
    g_assert_cmpint(block_get_length(img), ==, 1 << 20);
    g_assert_cmpint(block_close(img, &err), ==, 0);
    g_free(model);
    g_free(buf);
    g_free(path);
}

static void test_sparse_status(void)
{
    char *path;
    struct block_image *img = make_raw("sparse.img", 1 << 20, &path);
    uint8_t data[4096];
    memset(data, 0x5a, sizeof(data));
    GError *err = NULL;
    g_assert_cmpint(block_write(img, 512 * 1024, data, sizeof(data), &err), ==, 0);
    struct block_status st;
    g_assert_cmpint(block_status(img, 0, 1 << 20, &st, &err), ==, 0);
    g_assert_cmpuint(st.flags & (BLOCK_STATUS_ZERO | BLOCK_STATUS_DATA), ==, BLOCK_STATUS_ZERO);
    g_assert_cmpuint(st.length, ==, 512 * 1024);
    g_assert_cmpint(block_status(img, 512 * 1024, 512 * 1024, &st, &err), ==, 0);
    g_assert_cmpuint(st.flags & (BLOCK_STATUS_ZERO | BLOCK_STATUS_DATA), ==, BLOCK_STATUS_DATA);
    g_assert_cmpuint(st.length, ==, 4096);
    g_assert_cmpuint(st.host_offset, ==, 512 * 1024);
    g_assert_cmpint(block_status(img, 512 * 1024 + 4096, 512 * 1024 - 4096, &st, &err), ==, 0);
    g_assert_true(st.flags & BLOCK_STATUS_ZERO);
    g_assert_cmpuint(st.length, ==, 512 * 1024 - 4096);
    block_close(img, NULL);
    g_free(path);
}

static void test_discard_and_zero(void)
{
    char *path;
    struct block_image *img = make_raw("discard.img", 1 << 20, &path);
    uint8_t *buf = g_malloc(1 << 20);
    memset(buf, 0xee, 1 << 20);
    GError *err = NULL;
    g_assert_cmpint(block_write(img, 0, buf, 1 << 20, &err), ==, 0);
    g_assert_cmpint(block_flush(img, &err), ==, 0);
    struct stat st1, st2;
    g_assert_cmpint(stat(path, &st1), ==, 0);
    g_assert_cmpint(block_discard(img, 256 * 1024, 256 * 1024, &err), ==, 0);
    g_assert_cmpint(stat(path, &st2), ==, 0);
    g_assert_cmpint(st2.st_blocks, <, st1.st_blocks);
    g_assert_cmpint(st2.st_size, ==, 1 << 20);
    g_assert_cmpint(block_write_zeroes(img, 700 * 1024 + 3, 1000, false, &err), ==, 0);
    g_assert_cmpint(block_write_zeroes(img, 800 * 1024, 64 * 1024, true, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(block_read(img, 0, buf, 1 << 20, &err), ==, 0);
    for (size_t i = 0; i < (1 << 20); i++) {
        bool zero = (i >= 256 * 1024 && i < 512 * 1024) || (i >= 700 * 1024 + 3 && i < 700 * 1024 + 1003) ||
                    (i >= 800 * 1024 && i < 864 * 1024);
        if (buf[i] != (zero ? 0 : 0xee))
            g_error("byte %zu is 0x%02x", i, buf[i]);
    }
    struct block_status bs;
    g_assert_cmpint(block_status(img, 256 * 1024, 256 * 1024, &bs, &err), ==, 0);
    g_assert_true(bs.flags & BLOCK_STATUS_ZERO);
    block_close(img, NULL);
    g_free(buf);
    g_free(path);
}

static void test_cache_none(void)
{
    char *path;
    struct block_image *img = make_raw("direct.img", 1 << 20, &path);
    block_close(img, NULL);
    GError *err = NULL;
    img = block_open(path, "raw", BLOCK_OPEN_CACHE_NONE, &err);
    if (!img && err && err->code == EINVAL) {
        g_test_skip("file system has no O_DIRECT");
        g_clear_error(&err);
        g_free(path);
        return;
    }
    g_assert_no_error(err);
    g_assert_true(img->file.direct);
    uint8_t w[10000], r[10000];
    fill(w, sizeof(w), 9);
    g_assert_cmpint(block_write(img, 4097, w, sizeof(w), &err), ==, 0);
    g_assert_cmpint(block_write(img, (1 << 20) - 5, w, 5, &err), ==, 0);
    g_assert_cmpint(block_read(img, 4097, r, sizeof(r), &err), ==, 0);
    g_assert_cmpmem(r, sizeof(r), w, sizeof(w));
    g_assert_cmpint(block_read(img, 4096, r, 1, &err), ==, 0);
    g_assert_cmpuint(r[0], ==, 0);
    g_assert_cmpint(block_get_length(img), ==, 1 << 20); /* the bounce tail did not grow the file */
    g_assert_cmpint(block_close(img, &err), ==, 0);
    g_assert_no_error(err);
    g_free(path);
}

static void test_errors(void)
{
    char *path;
    struct block_image *img = make_raw("err.img", 4096, &path);
    uint8_t b[16] = {0};
    GError *err = NULL;
    g_assert_cmpint(block_read(img, 4090, b, 16, &err), ==, -EINVAL);
    g_assert_error(err, BLOCK_ERROR, EINVAL);
    g_assert_nonnull(strstr(err->message, path));
    g_assert_nonnull(strstr(err->message, "beyond the end"));
    g_clear_error(&err);
    g_assert_cmpint(block_write(img, UINT64_MAX - 2, b, 16, &err), ==, -EINVAL);
    g_clear_error(&err);
    block_close(img, NULL);
    img = block_open(path, "raw", BLOCK_OPEN_READ_ONLY, &err);
    g_assert_cmpint(block_write(img, 0, b, 1, &err), ==, -EROFS);
    g_assert_nonnull(strstr(err->message, "read-only"));
    g_clear_error(&err);
    g_assert_cmpint(block_truncate(img, 0, true, &err), ==, -EROFS);
    g_clear_error(&err);
    block_close(img, NULL);
    char *missing = path_in_tmp("missing.img");
    g_assert_null(block_open(missing, "raw", 0, &err));
    g_assert_error(err, BLOCK_ERROR, ENOENT);
    g_assert_nonnull(strstr(err->message, "missing.img"));
    g_clear_error(&err);
    g_assert_null(block_open(path, "vmdk", 0, &err));
    g_assert_error(err, BLOCK_ERROR, ENOTSUP);
    g_clear_error(&err);
    g_assert_null(block_open(path, "raw", BLOCK_OPEN_NO_LOCK, &err)); /* force-share needs read-only */
    g_assert_error(err, BLOCK_ERROR, EINVAL);
    g_clear_error(&err);
    g_free(missing);
    g_free(path);
}

static void test_probe_guard(void)
{
    char *path;
    struct block_image *img = make_raw("probe.img", 65536, &path);
    block_close(img, NULL);
    img = block_test_open(path, NULL, 0);
    g_assert_cmpstr(img->drv->name, ==, "raw");
    g_assert_true(img->probed_raw);
    static const uint8_t magic[4] = {'Q', 'F', 'I', 0xfb};
    GError *err = NULL;
    g_assert_cmpint(block_write(img, 0, magic, 4, &err), ==, -EPERM);
    g_clear_error(&err);
    /* a partial write completing the magic is caught too */
    g_assert_cmpint(block_write(img, 0, magic, 2, &err), ==, 0);
    g_assert_cmpint(block_write(img, 2, magic + 2, 2, &err), ==, -EPERM);
    g_clear_error(&err);
    g_assert_cmpint(block_write(img, 4, magic, 4, &err), ==, 0);
    block_close(img, NULL);
    img = block_open(path, "raw", 0, &err);
    g_assert_false(img->probed_raw);
    g_assert_cmpint(block_write(img, 0, magic, 4, &err), ==, 0);
    block_close(img, NULL);
    img = block_open(path, NULL, BLOCK_OPEN_READ_ONLY, &err);
    g_assert_null(img); /* now it probes as qcow2 and is not a valid one */
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_free(path);
}

static void test_truncate(void)
{
    char *path;
    struct block_image *img = make_raw("trunc.img", 4096, &path);
    GError *err = NULL;
    g_assert_cmpint(block_truncate(img, 8192, false, &err), ==, 0);
    g_assert_cmpint(block_get_length(img), ==, 8192);
    g_assert_cmpint(block_truncate(img, 100, false, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "shrink"));
    g_clear_error(&err);
    g_assert_cmpint(block_truncate(img, 100, true, &err), ==, 0);
    g_assert_cmpint(block_get_length(img), ==, 100);
    block_close(img, NULL);
    g_free(path);
}

static void test_resolve_backing(void)
{
    char *p = block_resolve_backing("/a/b/top.qcow2", "base.qcow2");
    g_assert_cmpstr(p, ==, "/a/b/base.qcow2");
    g_free(p);
    p = block_resolve_backing("/a/b/top.qcow2", "../c/base.raw");
    g_assert_cmpstr(p, ==, "/a/b/../c/base.raw");
    g_free(p);
    p = block_resolve_backing("top.qcow2", "base.qcow2");
    g_assert_cmpstr(p, ==, "base.qcow2");
    g_free(p);
    p = block_resolve_backing("sub/top.qcow2", "/abs/base");
    g_assert_cmpstr(p, ==, "/abs/base");
    g_free(p);
}

/* Opens PATH in a child process with FLAGS; returns the child's result: 0 opened, else the errno code. */
static int open_in_child(const char *path, unsigned flags)
{
    pid_t pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        GError *err = NULL;
        struct block_image *img = block_open(path, "raw", flags, &err);
        int code = img ? 0 : (err ? err->code : 99);
        if (img)
            block_close(img, NULL);
        _exit(code);
    }
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_lock_writer_excludes(void)
{
    char *path;
    struct block_image *img = make_raw("lock.img", 4096, &path);
    g_assert_cmpint(open_in_child(path, 0), ==, EAGAIN);
    g_assert_cmpint(open_in_child(path, BLOCK_OPEN_READ_ONLY), ==, EAGAIN);
    g_assert_cmpint(open_in_child(path, BLOCK_OPEN_READ_ONLY | BLOCK_OPEN_NO_LOCK), ==, 0);
    /* a second open file description in this process conflicts as well */
    GError *err = NULL;
    g_assert_null(block_open(path, "raw", 0, &err));
    g_assert_error(err, BLOCK_ERROR, EAGAIN);
    g_assert_nonnull(strstr(err->message, "lock"));
    g_clear_error(&err);
    block_close(img, NULL);
    g_assert_cmpint(open_in_child(path, 0), ==, 0);
    g_free(path);
}

static void test_lock_readers_share(void)
{
    char *path;
    struct block_image *img = make_raw("lock2.img", 4096, &path);
    block_close(img, NULL);
    img = block_test_open(path, "raw", BLOCK_OPEN_READ_ONLY);
    g_assert_cmpint(open_in_child(path, BLOCK_OPEN_READ_ONLY), ==, 0);
    g_assert_cmpint(open_in_child(path, 0), ==, EAGAIN);
    GError *err = NULL;
    struct block_create_options o = {.format = "raw", .size = 0};
    g_assert_cmpint(block_create(path, &o, &err), ==, -EAGAIN); /* create does not clobber an image in use */
    g_clear_error(&err);
    g_assert_cmpint(block_get_length(img), ==, 4096);
    block_close(img, NULL);
    g_free(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmp = block_test_dir_new("test-block-raw-XXXXXX");
    g_test_add_func("/block/raw/unaligned-writes-read-back", test_unaligned_rw);
    g_test_add_func("/block/raw/status-reports-holes-and-data", test_sparse_status);
    g_test_add_func("/block/raw/discard-punches-holes-zeroes-read-zero", test_discard_and_zero);
    g_test_add_func("/block/raw/cache-none-bounces-unaligned-io", test_cache_none);
    g_test_add_func("/block/raw/errors-name-file-and-problem", test_errors);
    g_test_add_func("/block/raw/probed-raw-cannot-gain-qcow2-magic", test_probe_guard);
    g_test_add_func("/block/raw/resize-needs-shrink-to-shrink", test_truncate);
    g_test_add_func("/block/backing/relative-to-image-directory", test_resolve_backing);
    g_test_add_func("/block/lock/writer-excludes-writers-and-readers", test_lock_writer_excludes);
    g_test_add_func("/block/lock/readers-share-and-exclude-writers", test_lock_readers_share);
    int r = g_test_run();
    block_test_dir_free(tmp);
    return r;
}
