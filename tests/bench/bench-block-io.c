/* Random 4 KiB I/O through the block layer in-process (make bench, tests/bench/bench_img.py):
 *   bench-block-io FORMAT PATH read|write SECONDS SEED
 * opens PATH with the default L2 cache, issues 4 KiB-aligned random reads or writes over the whole disk
 * for about SECONDS and prints "iops N ops M". Writes are not flushed (the page cache absorbs them for raw
 * and qcow2 alike); the image is flushed once at the end, outside the timing. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "block.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: bench-block-io FORMAT PATH read|write SECONDS SEED\n");
        return 2;
    }
    bool write = strcmp(argv[3], "write") == 0;
    double seconds = g_ascii_strtod(argv[4], NULL);
    GRand *rnd = g_rand_new_with_seed((guint32)strtoul(argv[5], NULL, 0));
    struct block_options o = {.format = argv[1], .flags = write ? 0 : BLOCK_OPEN_READ_ONLY};
    GError *err = NULL;
    struct block_image *img = block_open_opts(argv[2], &o, &err);
    if (!img) {
        fprintf(stderr, "bench-block-io: %s\n", err->message);
        return 1;
    }
    uint64_t blocks = block_get_length(img) / 4096;
    uint8_t *buf = g_malloc(4096);
    for (int i = 0; i < 4096; i++)
        buf[i] = (uint8_t)g_rand_int(rnd);
    uint64_t ops = 0;
    double t0 = now(), t = t0;
    while (t - t0 < seconds) {
        for (int k = 0; k < 256; k++) {
            uint64_t b = ((uint64_t)g_rand_int(rnd) << 32 | g_rand_int(rnd)) % blocks;
            int r = write ? block_write(img, b * 4096, buf, 4096, &err)
                          : block_read(img, b * 4096, buf, 4096, &err);
            if (r < 0) {
                fprintf(stderr, "bench-block-io: %s\n", err->message);
                return 1;
            }
            buf[0]++;
        }
        ops += 256;
        t = now();
    }
    printf("iops %.0f ops %" PRIu64 "\n", (double)ops / (t - t0), ops);
    g_free(buf);
    g_rand_free(rnd);
    return block_close(img, NULL) < 0 ? 1 : 0;
}
