/* Host file I/O for images: full transfers, zeros past EOF, O_DIRECT bounce buffering. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block_file.h"

/* Largest bounce buffer; bigger unaligned transfers are split. */
#define BOUNCE_MAX (1024u * 1024u)

int block_file_open(struct block_file *f, const char *path, bool writable, bool create, bool direct,
                    bool no_sync)
{
    int flags = O_CLOEXEC | (writable ? O_RDWR : O_RDONLY);
    if (create)
        flags |= O_CREAT;
    if (direct)
        flags |= O_DIRECT;
    int fd = open(path, flags, 0644);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
        int err = S_ISDIR(st.st_mode) ? -EISDIR : -errno;
        close(fd);
        return err;
    }
    f->fd = fd;
    f->direct = direct;
    f->no_sync = no_sync;
    f->writable = writable;
    return 0;
}

void block_file_close(struct block_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

static bool aligned(const struct block_file *f, uint64_t off, const void *buf, size_t len)
{
    if (!f->direct)
        return true;
    uint64_t a = BLOCK_FILE_DIRECT_ALIGN;
    return off % a == 0 && len % a == 0 && (uintptr_t)buf % a == 0;
}

/* pread until LEN bytes or EOF; the rest is zero-filled. */
static int raw_pread(int fd, uint64_t off, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) {
            memset(p, 0, len);
            return 0;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int raw_pwrite(int fd, uint64_t off, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* A range whose end off_t can hold. */
static bool range_ok(uint64_t off, uint64_t len)
{
    return off <= INT64_MAX && len <= INT64_MAX - off;
}

/* The next piece of an unaligned transfer at OFF: at most BOUNCE_MAX bytes of its LEN, inside the aligned
 * window [start, start+span). */
struct bounce_window {
    uint64_t start;
    size_t piece, span;
};

static struct bounce_window bounce_window(uint64_t off, size_t len)
{
    const uint64_t a = BLOCK_FILE_DIRECT_ALIGN;
    struct bounce_window w = {.start = off & ~(a - 1)};
    w.piece = len < BOUNCE_MAX - (off - w.start) ? len : BOUNCE_MAX - (size_t)(off - w.start);
    w.span = (size_t)(((off + w.piece + a - 1) & ~(a - 1)) - w.start);
    return w;
}

/* One aligned window [start, start+span) around an unaligned piece of a transfer. */
static void *bounce_alloc(size_t span)
{
    void *b = NULL;
    if (posix_memalign(&b, BLOCK_FILE_DIRECT_ALIGN, span) != 0)
        return NULL;
    return b;
}

int block_file_pread(struct block_file *f, uint64_t off, void *buf, size_t len)
{
    if (!range_ok(off, len))
        return -EINVAL;
    if (aligned(f, off, buf, len))
        return raw_pread(f->fd, off, buf, len);
    uint8_t *out = buf;
    while (len) {
        struct bounce_window w = bounce_window(off, len);
        uint8_t *b = bounce_alloc(w.span);
        if (!b)
            return -ENOMEM;
        int r = raw_pread(f->fd, w.start, b, w.span);
        if (r == 0)
            memcpy(out, b + (off - w.start), w.piece);
        free(b);
        if (r < 0)
            return r;
        out += w.piece;
        off += w.piece;
        len -= w.piece;
    }
    return 0;
}

int block_file_pwrite(struct block_file *f, uint64_t off, const void *buf, size_t len)
{
    if (!range_ok(off, len))
        return -EINVAL;
    if (aligned(f, off, buf, len))
        return raw_pwrite(f->fd, off, buf, len);
    const uint64_t a = BLOCK_FILE_DIRECT_ALIGN;
    const uint8_t *in = buf;
    int64_t flen = block_file_length(f);
    if (flen < 0)
        return (int)flen;
    while (len) {
        struct bounce_window w = bounce_window(off, len);
        uint8_t *b = bounce_alloc(w.span);
        if (!b)
            return -ENOMEM;
        /* read-modify-write only the partial head and tail blocks */
        int r = 0;
        if (off != w.start)
            r = raw_pread(f->fd, w.start, b, a);
        if (r == 0 && (off + w.piece) % a && (w.span > a || off == w.start))
            r = raw_pread(f->fd, w.start + w.span - a, b + w.span - a, a);
        if (r == 0) {
            memcpy(b + (off - w.start), in, w.piece);
            r = raw_pwrite(f->fd, w.start, b, w.span);
        }
        free(b);
        if (r < 0)
            return r;
        in += w.piece;
        off += w.piece;
        len -= w.piece;
    }
    /* the aligned tail may have grown the file past the real end of the data */
    uint64_t want = (uint64_t)flen > off ? (uint64_t)flen : off;
    int64_t now = block_file_length(f);
    if (now > 0 && (uint64_t)now > want && ftruncate(f->fd, (off_t)want) < 0)
        return -errno;
    return 0;
}

int block_file_sync(struct block_file *f)
{
    if (f->no_sync)
        return 0;
    while (fdatasync(f->fd) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

int64_t block_file_length(struct block_file *f)
{
    struct stat st;
    if (fstat(f->fd, &st) < 0)
        return -errno;
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(f->fd, 0, SEEK_END);
        return end < 0 ? -errno : end;
    }
    return st.st_size;
}

int block_file_truncate(struct block_file *f, uint64_t size)
{
    if (size > INT64_MAX)
        return -EFBIG;
    if (ftruncate(f->fd, (off_t)size) < 0)
        return -errno;
    return 0;
}

int block_file_punch_hole(struct block_file *f, uint64_t off, uint64_t len)
{
    if (!range_ok(off, len))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
        return errno == EOPNOTSUPP ? -ENOTSUP : -errno;
    return 0;
}

int block_file_zero_range(struct block_file *f, uint64_t off, uint64_t len)
{
    if (!range_ok(off, len))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (fallocate(f->fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)len) == 0)
        return 0;
    if (block_file_punch_hole(f, off, len) == 0) {
        /* punching keeps the size; a range past EOF must still extend the file */
        int64_t flen = block_file_length(f);
        if (flen >= 0 && (uint64_t)flen < off + len)
            return block_file_truncate(f, off + len);
        return 0;
    }
    size_t chunk = len < BOUNCE_MAX ? (size_t)len : BOUNCE_MAX;
    void *z = bounce_alloc(chunk);
    if (!z)
        return -ENOMEM;
    memset(z, 0, chunk);
    int r = 0;
    while (len && r == 0) {
        size_t n = len < chunk ? (size_t)len : chunk;
        r = block_file_pwrite(f, off, z, n);
        off += n;
        len -= n;
    }
    free(z);
    return r;
}

uint64_t block_file_allocated(struct block_file *f)
{
    struct stat st;
    if (fstat(f->fd, &st) < 0)
        return 0;
    return (uint64_t)st.st_blocks * 512;
}
