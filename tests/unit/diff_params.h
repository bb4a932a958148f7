/* Size and seed of the host-differential CPU tests: a fixed seed and a short run in `make check`, more cases and
 * a fresh seed in `make check-cpu-long` (DESKVM_DIFF_SCALE multiplies the random cases, DESKVM_DIFF_SEED sets the
 * seed; the seed is printed so a failure can be replayed). */
#ifndef DESKVM_TEST_DIFF_PARAMS_H
#define DESKVM_TEST_DIFF_PARAMS_H

#include <stdint.h>
#include <stdlib.h>

#include <glib.h>

static inline unsigned diff_scale(void)
{
    const char *s = getenv("DESKVM_DIFF_SCALE");
    unsigned long v = s ? strtoul(s, NULL, 10) : 1;
    return v >= 1 && v <= 100000 ? (unsigned)v : 1;
}

static inline uint32_t diff_seed(void)
{
    const char *s = getenv("DESKVM_DIFF_SEED");
    uint32_t seed = s ? (uint32_t)strtoul(s, NULL, 0) : 20261123u;
    g_test_message("differential seed %u, scale %u", seed, diff_scale());
    return seed;
}

#endif
