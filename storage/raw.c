/* raw format driver: direct file I/O, holes via SEEK_DATA/SEEK_HOLE, discard punches holes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "raw.h"

static int raw_open(struct block_image *img, const struct block_options *opts, GError **errp)
{
    (void)opts;
    int64_t len = block_file_length(&img->file);
    if (len < 0)
        return block_set_error(errp, img, (int)len, "cannot get the image size: %s", g_strerror((int)-len));
    return 0;
}

static uint64_t raw_get_length(struct block_image *img)
{
    int64_t len = block_file_length(&img->file);
    return len < 0 ? 0 : (uint64_t)len;
}

static int io_error(struct block_image *img, int r, const char *what, uint64_t off, uint64_t len,
                    GError **errp)
{
    return block_set_error(errp, img, r, "%s of %" PRIu64 " bytes at %" PRIu64 " failed: %s", what, len, off,
                           g_strerror(-r));
}

static int raw_read(struct block_image *img, uint64_t off, void *buf, size_t len, GError **errp)
{
    int r = block_file_pread(&img->file, off, buf, len);
    return r < 0 ? io_error(img, r, "read", off, len, errp) : 0;
}

static int raw_write(struct block_image *img, uint64_t off, const void *buf, size_t len, GError **errp)
{
    int r = block_file_pwrite(&img->file, off, buf, len);
    return r < 0 ? io_error(img, r, "write", off, len, errp) : 0;
}

static int raw_flush(struct block_image *img, GError **errp)
{
    int r = block_file_sync(&img->file);
    return r < 0 ? block_set_error(errp, img, r, "flush failed: %s", g_strerror(-r)) : 0;
}

static int raw_discard(struct block_image *img, uint64_t off, uint64_t len, GError **errp)
{
    int r = block_file_punch_hole(&img->file, off, len);
    /* discard is a hint: a file system that cannot punch just keeps the data */
    if (r == -ENOTSUP || r == -EOPNOTSUPP)
        return 0;
    return r < 0 ? io_error(img, r, "discard", off, len, errp) : 0;
}

static int raw_write_zeroes(struct block_image *img, uint64_t off, uint64_t len, bool may_unmap,
                            GError **errp)
{
    int r = -ENOTSUP;
    if (may_unmap)
        r = block_file_punch_hole(&img->file, off, len);
    if (r < 0)
        r = block_file_zero_range(&img->file, off, len);
    return r < 0 ? io_error(img, r, "write zeroes", off, len, errp) : 0;
}

static int raw_block_status(struct block_image *img, uint64_t off, uint64_t len, struct block_status *st,
                            GError **errp)
{
    (void)errp;
    int fd = img->file.fd;
    st->flags = BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_OFFSET_VALID;
    st->host_offset = off;
    st->length = len;
    off_t data = lseek(fd, (off_t)off, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) /* only a hole up to the end */
            st->flags |= BLOCK_STATUS_ZERO;
        else /* SEEK_DATA unsupported: everything is data */
            st->flags |= BLOCK_STATUS_DATA;
        return 0;
    }
    if ((uint64_t)data > off) {
        st->flags |= BLOCK_STATUS_ZERO;
        if ((uint64_t)data - off < len)
            st->length = (uint64_t)data - off;
        return 0;
    }
    st->flags |= BLOCK_STATUS_DATA;
    off_t hole = lseek(fd, (off_t)off, SEEK_HOLE);
    if (hole > 0 && (uint64_t)hole > off && (uint64_t)hole - off < len)
        st->length = (uint64_t)hole - off;
    return 0;
}

static int raw_truncate(struct block_image *img, uint64_t size, bool shrink, GError **errp)
{
    uint64_t cur = raw_get_length(img);
    if (size < cur && !shrink)
        return block_set_error(errp, img, -EINVAL,
                               "shrinking the image from %" PRIu64 " to %" PRIu64
                               " bytes loses data: use the shrink option",
                               cur, size);
    int r = block_file_truncate(&img->file, size);
    return r < 0 ? block_set_error(errp, img, r, "resize failed: %s", g_strerror(-r)) : 0;
}

static void raw_close(struct block_image *img)
{
    (void)img;
}

static int raw_create(const char *path, const struct block_create_options *o, GError **errp)
{
    const char *prealloc = o->preallocation ? o->preallocation : "off";
    if (strcmp(prealloc, "off") && strcmp(prealloc, "falloc") && strcmp(prealloc, "full"))
        return block_set_error_path(errp, path, -EINVAL, "unsupported preallocation mode '%s' for raw",
                                    prealloc);
    if (o->backing_file)
        return block_set_error_path(errp, path, -EINVAL, "raw images cannot have a backing file");
    if (o->size > (uint64_t)INT64_MAX)
        return block_set_error_path(errp, path, -EFBIG, "size %" PRIu64 " is too large", o->size);
    struct block_file f;
    int r = block_file_open(&f, path, true, true, false, false);
    if (r < 0)
        return block_set_error_path(errp, path, r, "could not create: %s", g_strerror(-r));
    struct image_lock lock;
    r = image_lock_acquire(&lock, f.fd, IMAGE_LOCK_WRITER, path, errp);
    if (r == 0) {
        r = block_file_truncate(&f, 0);
        if (r == 0)
            r = block_file_truncate(&f, o->size);
        if (r == 0 && strcmp(prealloc, "falloc") == 0 && o->size)
            r = -posix_fallocate(f.fd, 0, (off_t)o->size);
        if (r == 0 && strcmp(prealloc, "full") == 0 && o->size) {
            /* zero_range may leave holes; full preallocation means written blocks */
            r = -posix_fallocate(f.fd, 0, (off_t)o->size);
        }
        if (r == 0)
            r = block_file_sync(&f);
        if (r < 0)
            block_set_error_path(errp, path, r, "could not create: %s", g_strerror(-r));
        image_lock_release(&lock);
    }
    block_file_close(&f);
    return r;
}

const struct block_driver raw_driver = {
    .name = "raw",
    .open = raw_open,
    .read = raw_read,
    .write = raw_write,
    .flush = raw_flush,
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
    .block_status = raw_block_status,
    .get_length = raw_get_length,
    .truncate = raw_truncate,
    .close = raw_close,
    .create = raw_create,
};
