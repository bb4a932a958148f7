/* Fixtures shared by the block-layer tests. */
#include <glib/gstdio.h>

#include "block_test_util.h"

char *block_test_dir_new(const char *tmpl)
{
    GError *err = NULL;
    char *dir = g_dir_make_tmp(tmpl, &err);
    g_assert_no_error(err);
    return dir;
}

static void remove_tree(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *n;
    while (d && (n = g_dir_read_name(d))) {
        char *p = g_build_filename(dir, n, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR))
            remove_tree(p);
        else
            g_unlink(p);
        g_free(p);
    }
    if (d)
        g_dir_close(d);
    g_rmdir(dir);
}

void block_test_dir_free(char *dir)
{
    remove_tree(dir);
    g_free(dir);
}

void block_test_create(const char *path, const struct block_create_options *o)
{
    GError *err = NULL;
    g_assert_cmpint(block_create(path, o, &err), ==, 0);
    g_assert_no_error(err);
}

struct block_image *block_test_open(const char *path, const char *fmt, unsigned flags)
{
    GError *err = NULL;
    struct block_image *img = block_open(path, fmt, flags, &err);
    g_assert_no_error(err);
    g_assert_nonnull(img);
    return img;
}

void block_test_assert_clean(struct block_image *img)
{
    struct block_check_result res;
    GError *err = NULL;
    g_assert_cmpint(block_check(img, 0, &res, NULL, NULL, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(res.corruptions, ==, 0);
    g_assert_cmpint(res.leaks, ==, 0);
    g_assert_cmpint(res.check_errors, ==, 0);
}
