/* The block-layer calls deskvm-img added: emptying an overlay (commit), rewriting the backing file in the
 * header (rebase), creating with an unchecked backing file (create -u), and what snapshot lists report. */
#include <errno.h>
#include <string.h>
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

static void create(const char *path, uint64_t size, const char *backing, const char *backing_fmt, int version)
{
    struct block_create_options o = {.format = "qcow2",
                                     .size = size,
                                     .backing_file = backing,
                                     .backing_format = backing_fmt,
                                     .qcow2_version = version};
    block_test_create(path, &o);
}

static struct block_image *open_img(const char *path, unsigned flags)
{
    return block_test_open(path, "qcow2", flags);
}

static void fill_byte(struct block_image *img, uint64_t off, size_t len, uint8_t byte)
{
    uint8_t *b = g_malloc(len);
    memset(b, byte, len);
    GError *err = NULL;
    g_assert_cmpint(block_write(img, off, b, len, &err), ==, 0);
    g_assert_no_error(err);
    g_free(b);
}

static uint8_t byte_at(struct block_image *img, uint64_t off)
{
    uint8_t b = 0xaa;
    g_assert_cmpint(block_read(img, off, &b, 1, NULL), ==, 0);
    return b;
}

static void test_make_empty_shows_backing(void)
{
    for (int version = 2; version <= 3; version++) {
        char *base = new_path("qcow2"), *top = new_path("qcow2");
        create(base, 1 << 20, NULL, NULL, version);
        struct block_image *b = open_img(base, 0);
        fill_byte(b, 0, 1 << 20, 0x11);
        g_assert_cmpint(block_close(b, NULL), ==, 0);
        create(top, 0, base, "qcow2", version);
        struct block_image *t = open_img(top, 0);
        fill_byte(t, 4096, 200000, 0x22);
        g_assert_cmpint(block_write_zeroes(t, 512 * 1024, 65536, false, NULL), ==, 0);
        g_assert_cmpuint(byte_at(t, 4096), ==, 0x22);
        g_assert_cmpuint(byte_at(t, 512 * 1024), ==, 0);
        GError *err = NULL;
        g_assert_cmpint(block_make_empty(t, &err), ==, 0);
        g_assert_no_error(err);
        /* every byte comes from the backing file again: no zero clusters were left behind */
        for (uint64_t off = 0; off < (1 << 20); off += 4093)
            g_assert_cmpuint(byte_at(t, off), ==, 0x11);
        struct block_status st;
        g_assert_cmpint(block_status(t, 0, 1 << 20, &st, NULL), ==, 0);
        g_assert_cmpuint(st.flags & BLOCK_STATUS_ALLOCATED, ==, 0);
        g_assert_cmpuint(st.length, ==, 1 << 20);
        block_test_assert_clean(t);
        g_assert_cmpint(block_close(t, NULL), ==, 0);
        g_free(base);
        g_free(top);
    }
}

static void test_make_empty_read_only_refused(void)
{
    char *p = new_path("qcow2");
    create(p, 65536, NULL, NULL, 3);
    struct block_image *img = open_img(p, BLOCK_OPEN_READ_ONLY);
    GError *err = NULL;
    g_assert_cmpint(block_make_empty(img, &err), ==, -EROFS);
    g_assert_error(err, BLOCK_ERROR, EROFS);
    g_clear_error(&err);
    block_close(img, NULL);
    g_free(p);
}

static void test_change_backing(void)
{
    for (int version = 2; version <= 3; version++) {
        char *a = new_path("qcow2"), *b = new_path("qcow2"), *top = new_path("qcow2");
        create(a, 1 << 20, NULL, NULL, 3);
        create(b, 1 << 20, NULL, NULL, 3);
        struct block_image *img = open_img(b, 0);
        fill_byte(img, 0, 65536, 0x33);
        block_close(img, NULL);
        create(top, 0, a, "qcow2", version);
        img = open_img(top, 0);
        fill_byte(img, 131072, 100, 0x44);
        GError *err = NULL;
        g_assert_cmpint(block_change_backing(img, b, "qcow2", &err), ==, 0);
        g_assert_no_error(err);
        g_assert_cmpstr(img->backing_file, ==, b);
        g_assert_cmpint(block_close(img, NULL), ==, 0);

        img = open_img(top, 0);
        g_assert_cmpstr(img->backing_file, ==, b);
        g_assert_cmpstr(img->backing_format, ==, "qcow2");
        g_assert_cmpuint(byte_at(img, 0), ==, 0x33);
        g_assert_cmpuint(byte_at(img, 131072), ==, 0x44);
        block_test_assert_clean(img);
        /* a longer relative name, without a format, then none at all */
        const char *longname = "a-much-longer-relative-backing-file-name-that-moves-the-extensions.qcow2";
        g_assert_cmpint(block_change_backing(img, longname, NULL, NULL), ==, 0);
        g_assert_cmpint(block_close(img, NULL), ==, 0);
        img = open_img(top, BLOCK_OPEN_NO_BACKING);
        g_assert_cmpstr(img->backing_file, ==, longname);
        g_assert_null(img->backing_format);
        g_assert_cmpint(block_change_backing(img, NULL, "qcow2", NULL), ==, 0);
        g_assert_cmpint(block_close(img, NULL), ==, 0);
        img = open_img(top, 0);
        g_assert_null(img->backing_file);
        g_assert_null(img->backing);
        g_assert_cmpuint(byte_at(img, 0), ==, 0);
        g_assert_cmpuint(byte_at(img, 131072), ==, 0x44);
        block_test_assert_clean(img);
        block_close(img, NULL);
        g_free(a);
        g_free(b);
        g_free(top);
    }
}

static void test_change_backing_too_long_refused(void)
{
    char *p = new_path("qcow2");
    struct block_create_options o = {.format = "qcow2", .size = 65536, .cluster_size = 512};
    g_assert_cmpint(block_create(p, &o, NULL), ==, 0);
    struct block_image *img = open_img(p, 0);
    char name[600];
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    GError *err = NULL;
    g_assert_cmpint(block_change_backing(img, name, "raw", &err), ==, -ENOSPC);
    g_clear_error(&err);
    g_assert_null(img->backing_file);
    block_close(img, NULL);
    img = open_img(p, 0); /* header untouched */
    g_assert_null(img->backing_file);
    block_test_assert_clean(img);
    block_close(img, NULL);
    g_free(p);
}

static void test_create_unchecked_backing(void)
{
    char *p = new_path("qcow2");
    struct block_create_options o = {.format = "qcow2",
                                     .size = 1 << 20,
                                     .backing_file = "does-not-exist.qcow2",
                                     .backing_format = "qcow2",
                                     .backing_unchecked = true};
    GError *err = NULL;
    g_assert_cmpint(block_create(p, &o, &err), ==, 0);
    g_assert_no_error(err);
    struct block_image *img = open_img(p, BLOCK_OPEN_NO_BACKING | BLOCK_OPEN_READ_ONLY);
    g_assert_cmpstr(img->backing_file, ==, "does-not-exist.qcow2");
    g_assert_cmpstr(img->backing_format, ==, "qcow2");
    g_assert_cmpuint(block_get_length(img), ==, 1 << 20);
    block_close(img, NULL);
    o.size = 0; /* without the backing file there is no size to take over */
    g_assert_cmpint(block_create(p, &o, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_free(p);
}

static void test_snapshot_icount_absent(void)
{
    char *p = new_path("qcow2");
    create(p, 65536, NULL, NULL, 3);
    struct block_image *img = open_img(p, 0);
    g_assert_cmpint(block_snapshot_create(img, "s", NULL), ==, 0);
    struct block_snapshot_info *list;
    size_t n;
    g_assert_cmpint(block_snapshot_list(img, &list, &n, NULL), ==, 0);
    g_assert_cmpuint(n, ==, 1);
    g_assert_cmpint(list[0].icount, ==, -1); /* deskvm records no instruction count */
    block_snapshot_list_free(list, n);
    block_close(img, NULL);
    g_free(p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmp = block_test_dir_new("dvm-blkimg-XXXXXX");
    g_test_add_func("/block-img/make-empty/backing-shows-through-again", test_make_empty_shows_backing);
    g_test_add_func("/block-img/make-empty/read-only-refused", test_make_empty_read_only_refused);
    g_test_add_func("/block-img/change-backing/rewrite-rename-remove", test_change_backing);
    g_test_add_func("/block-img/change-backing/too-long-refused-header-kept",
                    test_change_backing_too_long_refused);
    g_test_add_func("/block-img/create/unchecked-backing-recorded", test_create_unchecked_backing);
    g_test_add_func("/block-img/snapshot/icount-absent-is-minus-one", test_snapshot_icount_absent);
    int r = g_test_run();
    block_test_dir_free(tmp);
    return r;
}
