/* libFuzzer target for the qcow2 driver: the input's first two bytes (little endian) say how many of the
 * following bytes are the image file, the rest is a list of operations. The image is opened read-only
 * (reads, block status, check, snapshot list), then for writing, where reads, writes, zero writes,
 * discards, flushes and reopens are checked against a shadow model of the first bytes of the disk: a read
 * after a write returns the written bytes. Last, a repairing open runs check -r all. Backing files are never
 * opened (a hostile image could name any host file). Any crash, sanitizer report, hang or model mismatch is a
 * bug. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define WINDOW (192u * 1024) /* bytes of the disk the model follows */
#define OP_SIZE 8u
#define MAX_OPS 64u

enum { OP_READ, OP_WRITE, OP_ZERO, OP_DISCARD, OP_FLUSH, OP_REOPEN, OP_STATUS, OP_COUNT };

static int fd = -1;
static bool trace; /* FUZZ_QCOW2_TRACE=1: print the operations (to replay a finding) */
static char path[64];

struct model {
    uint8_t *bytes;
    uint8_t *known; /* 1 where bytes[] is what the disk must hold */
    uint64_t len;
    uint8_t *buf;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd = memfd_create("fuzz-qcow2", 0);
    if (fd < 0)
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    trace = getenv("FUZZ_QCOW2_TRACE") != NULL;
    log_set_fd(open("/dev/null", O_WRONLY)); /* corruption messages are expected */
    return 0;
}

static struct block_image *open_img(unsigned flags)
{
    struct block_options o = {.format = "qcow2",
                              .flags = flags | BLOCK_OPEN_NO_BACKING | BLOCK_OPEN_CACHE_UNSAFE,
                              .l2_cache_size = 4096}; /* a few tables: eviction paths get exercised */
    return block_open_opts(path, &o, NULL);
}

static void read_only_pass(void)
{
    struct block_image *img = open_img(BLOCK_OPEN_READ_ONLY);
    if (!img)
        return;
    uint64_t size = block_get_length(img), off = 0;
    uint8_t buf[4096];
    for (int i = 0; i < 8 && off < size; i++) {
        struct block_status st;
        if (block_status_chain(img, off, size - off, &st, NULL) < 0 || st.length == 0)
            break;
        block_read(img, off, buf, (size_t)MIN((uint64_t)sizeof(buf), size - off), NULL);
        off += st.length;
    }
    struct block_check_result res;
    block_check(img, 0, &res, NULL, NULL, NULL);
    struct block_snapshot_info *list;
    size_t n;
    if (block_snapshot_list(img, &list, &n, NULL) == 0)
        block_snapshot_list_free(list, n);
    struct block_info info;
    block_get_info(img, &info);
    block_close(img, NULL);
}

static void forget(struct model *m, uint64_t off, uint64_t len)
{
    if (off < m->len)
        memset(m->known + off, 0, (size_t)MIN(len, m->len - off));
}

/* Reads [off, off+len) and compares the bytes the model knows. */
static void verify(struct block_image *img, struct model *m, uint64_t off, uint64_t len)
{
    if (block_read(img, off, m->buf, len, NULL) < 0)
        return; /* a corrupt image may refuse reads; it must not return wrong data after a good write */
    for (uint64_t i = 0; i < len; i++) {
        if (m->known[off + i] && m->buf[i] != m->bytes[off + i]) {
            fprintf(stderr, "model mismatch at %llu: read 0x%02x, wrote 0x%02x\n",
                    (unsigned long long)(off + i), m->buf[i], m->bytes[off + i]);
            abort();
        }
    }
}

static void write_pass(const uint8_t *ops, size_t n_ops)
{
    struct block_image *img = open_img(0);
    if (!img)
        return;
    struct model m;
    m.len = MIN(block_get_length(img), (uint64_t)WINDOW);
    m.bytes = calloc(1, m.len + 1);
    m.known = calloc(1, m.len + 1);
    m.buf = malloc(m.len + 1);
    /* the initial content is not modelled: only what the operations put there */
    for (size_t i = 0; i < n_ops && img && m.len; i++) {
        const uint8_t *op = ops + i * OP_SIZE;
        uint64_t off = (op[1] | (uint64_t)op[2] << 8 | (uint64_t)op[3] << 16) % m.len;
        uint64_t len = (op[4] | (uint64_t)op[5] << 8) % 70000 + 1;
        len = MIN(len, m.len - off);
        uint8_t pat = op[6];
        int r = 0;
        if (trace)
            fprintf(stderr, "op %u off %llu len %llu\n", op[0] % OP_COUNT, (unsigned long long)off,
                    (unsigned long long)len);
        switch (op[0] % OP_COUNT) {
        case OP_READ:
            verify(img, &m, off, len);
            break;
        case OP_WRITE:
            for (uint64_t k = 0; k < len; k++)
                m.buf[k] = (uint8_t)(pat + k * (op[7] | 1));
            r = block_write(img, off, m.buf, len, NULL);
            if (r == 0) {
                memcpy(m.bytes + off, m.buf, len);
                memset(m.known + off, 1, len);
            } else {
                forget(&m, off, len); /* a failed write may have landed partly */
            }
            break;
        case OP_ZERO:
            r = block_write_zeroes(img, off, len, op[7] & 1, NULL);
            if (r == 0) {
                memset(m.bytes + off, 0, len);
                memset(m.known + off, 1, len);
            } else {
                forget(&m, off, len);
            }
            break;
        case OP_DISCARD:
            block_discard(img, off, len, NULL);
            forget(&m, off, len); /* discarded bytes may read as zeros or keep their data */
            break;
        case OP_FLUSH:
            block_flush(img, NULL);
            break;
        case OP_REOPEN:
            block_close(img, NULL);
            img = open_img(0);
            if (img && block_get_length(img) < m.len)
                m.len = block_get_length(img);
            if (img)
                verify(img, &m, 0, m.len);
            break;
        default: {
            struct block_status st;
            block_status(img, off, len, &st, NULL);
            break;
        }
        }
    }
    if (img) {
        verify(img, &m, 0, m.len);
        block_close(img, NULL);
    }
    free(m.bytes);
    free(m.known);
    free(m.buf);
}

static void repair_pass(void)
{
    struct block_image *img = open_img(BLOCK_OPEN_REPAIR);
    if (!img)
        return;
    struct block_check_result res;
    block_check(img, BLOCK_CHECK_FIX_LEAKS | BLOCK_CHECK_FIX_ERRORS, &res, NULL, NULL, NULL);
    block_close(img, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t img_len = MIN((size_t)(data[0] | data[1] << 8), size - 2);
    const uint8_t *ops = data + 2 + img_len;
    size_t n_ops = MIN((size - 2 - img_len) / OP_SIZE, (size_t)MAX_OPS);
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data + 2, img_len, 0) != (ssize_t)img_len)
        abort();
    read_only_pass();
    write_pass(ops, n_ops);
    /* the repair pass starts from the original bytes again */
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data + 2, img_len, 0) != (ssize_t)img_len)
        abort();
    repair_pass();
    return 0;
}
