/* Fixtures the block-layer tests share: a scratch directory, images created and opened (or the test fails)
 * and the "check finds nothing" assertion. */
#ifndef DESKVM_BLOCK_TEST_UTIL_H
#define DESKVM_BLOCK_TEST_UTIL_H

#include "block.h"

/* A new directory under the system temp dir from TEMPLATE ("name-XXXXXX"). */
char *block_test_dir_new(const char *tmpl);
/* Removes DIR with everything in it and frees the string. */
void block_test_dir_free(char *dir);
void block_test_create(const char *path, const struct block_create_options *o);
struct block_image *block_test_open(const char *path, const char *fmt, unsigned flags);
/* block_check without repairs reports no corruption, leak or check error. */
void block_test_assert_clean(struct block_image *img);

#endif
