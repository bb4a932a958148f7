/* Block layer: opening images and chains, format probing, request validation, dispatch to format drivers. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block.h"
#include "qcow2.h"
#include "raw.h"

G_DEFINE_QUARK(deskvm - block - error - quark, block_error)

static const struct block_driver *const drivers[] = {&raw_driver, &qcow2_driver};

static int set_error_va(GError **errp, const char *path, int err, const char *fmt, va_list ap)
{
    if (err >= 0)
        err = -EIO;
    if (errp && !*errp) {
        char *msg = g_strdup_vprintf(fmt, ap);
        if (path)
            g_set_error(errp, BLOCK_ERROR, -err, "%s: %s", path, msg);
        else
            g_set_error_literal(errp, BLOCK_ERROR, -err, msg);
        g_free(msg);
    }
    return err;
}

int block_set_error_path(GError **errp, const char *path, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = set_error_va(errp, path, err, fmt, ap);
    va_end(ap);
    return r;
}

int block_set_error(GError **errp, struct block_image *img, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = set_error_va(errp, img ? img->filename : NULL, err, fmt, ap);
    va_end(ap);
    return r;
}

const struct block_driver *block_find_driver(const char *name)
{
    for (size_t i = 0; name && i < G_N_ELEMENTS(drivers); i++) {
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    }
    return NULL;
}

char *block_resolve_backing(const char *image_path, const char *backing)
{
    if (g_path_is_absolute(backing))
        return g_strdup(backing);
    const char *slash = strrchr(image_path, '/');
    if (!slash)
        return g_strdup(backing);
    return g_strdup_printf("%.*s%s", (int)(slash - image_path + 1), image_path, backing);
}

/* "proto:..." before any '/' names a protocol (nbd:, json:, ...), which deskvm does not open. */
static bool has_protocol(const char *name)
{
    const char *colon = strchr(name, ':');
    const char *slash = strchr(name, '/');
    return colon && (!slash || colon < slash);
}

static void image_free(struct block_image *img)
{
    if (!img)
        return;
    image_lock_release(&img->lock);
    block_file_close(&img->file);
    g_free(img->filename);
    g_free(img->backing_file);
    g_free(img->backing_full);
    g_free(img->backing_format);
    g_free(img);
}

static int probe(struct block_image *img, const struct block_driver **drv, GError **errp)
{
    uint8_t magic[4];
    int r = block_file_pread(&img->file, 0, magic, sizeof(magic));
    if (r < 0)
        return block_set_error(errp, img, r, "cannot read the image to probe its format: %s", g_strerror(-r));
    int64_t len = block_file_length(&img->file);
    if (len >= 4 && qcow2_be32(magic) == QCOW2_MAGIC) {
        *drv = &qcow2_driver;
    } else {
        *drv = &raw_driver;
        img->probed_raw = true;
    }
    return 0;
}

struct chain_id {
    dev_t dev;
    ino_t ino;
};

static struct block_image *open_layer(const char *path, const struct block_options *opts, unsigned depth,
                                      struct chain_id *seen, GError **errp);

static int open_backing(struct block_image *img, const struct block_options *opts, struct chain_id *seen,
                        GError **errp)
{
    if (!img->backing_file || (opts->flags & BLOCK_OPEN_NO_BACKING))
        return 0;
    if (img->chain_depth + 1 > BLOCK_MAX_BACKING_DEPTH)
        return block_set_error(errp, img, -ELOOP, "backing chain deeper than %d images",
                               BLOCK_MAX_BACKING_DEPTH);
    if (has_protocol(img->backing_file) && strncmp(img->backing_file, "file:", 5) != 0)
        return block_set_error(errp, img, -ENOTSUP,
                               "backing file '%s' uses a protocol deskvm does not support",
                               img->backing_file);
    const char *name =
        strncmp(img->backing_file, "file:", 5) == 0 ? img->backing_file + 5 : img->backing_file;
    img->backing_full = block_resolve_backing(img->filename, name);
    struct block_options bo = *opts;
    bo.format = img->backing_format;
    bo.flags = (opts->flags & (BLOCK_OPEN_NO_LOCK | BLOCK_OPEN_CACHE_NONE | BLOCK_OPEN_CACHE_UNSAFE)) |
               BLOCK_OPEN_READ_ONLY;
    GError *err = NULL;
    img->backing = open_layer(img->backing_full, &bo, img->chain_depth + 1, seen, &err);
    if (!img->backing) {
        int code = -(err ? err->code : EIO);
        block_set_error(errp, img, code, "could not open backing file: %s", err ? err->message : "?");
        g_clear_error(&err);
        return code;
    }
    return 0;
}

static struct block_image *open_layer(const char *path, const struct block_options *opts, unsigned depth,
                                      struct chain_id *seen, GError **errp)
{
    unsigned flags = opts->flags;
    if ((flags & BLOCK_OPEN_NO_LOCK) && !(flags & BLOCK_OPEN_READ_ONLY)) {
        block_set_error_path(errp, path, -EINVAL, "force-share (no lock) needs a read-only open");
        return NULL;
    }
    if ((flags & BLOCK_OPEN_CACHE_NONE) && (flags & BLOCK_OPEN_CACHE_UNSAFE)) {
        block_set_error_path(errp, path, -EINVAL, "cache modes none and unsafe exclude each other");
        return NULL;
    }
    const struct block_driver *drv = NULL;
    if (opts->format) {
        drv = block_find_driver(opts->format);
        if (!drv) {
            block_set_error_path(errp, path, -ENOTSUP, "unknown or unsupported image format '%s'",
                                 opts->format);
            return NULL;
        }
    }
    struct block_image *img = g_new0(struct block_image, 1);
    img->filename = g_strdup(path);
    img->flags = flags;
    img->read_only = flags & BLOCK_OPEN_READ_ONLY;
    img->chain_depth = depth;
    img->lock.fd = -1;
    int r = block_file_open(&img->file, path, !img->read_only, false, flags & BLOCK_OPEN_CACHE_NONE,
                            flags & BLOCK_OPEN_CACHE_UNSAFE);
    if (r < 0) {
        block_set_error_path(errp, path, r, "could not open: %s", g_strerror(-r));
        img->file.fd = -1;
        image_free(img);
        return NULL;
    }
    struct stat st;
    if (fstat(img->file.fd, &st) == 0) {
        for (unsigned i = 0; i < depth; i++) {
            if (seen[i].dev == st.st_dev && seen[i].ino == st.st_ino) {
                block_set_error_path(errp, path, -ELOOP,
                                     "backing chain loop: the image is its own backing file");
                image_free(img);
                return NULL;
            }
        }
        seen[depth].dev = st.st_dev;
        seen[depth].ino = st.st_ino;
    }
    if (!(flags & BLOCK_OPEN_NO_LOCK)) {
        r = image_lock_acquire(&img->lock, img->file.fd,
                               img->read_only ? IMAGE_LOCK_READER : IMAGE_LOCK_WRITER, path, errp);
        if (r < 0) {
            image_free(img);
            return NULL;
        }
    }
    if (!drv && probe(img, &drv, errp) < 0) {
        image_free(img);
        return NULL;
    }
    img->drv = drv;
    r = drv->open(img, opts, errp);
    if (r < 0) {
        img->drv = NULL;
        image_free(img);
        return NULL;
    }
    if (open_backing(img, opts, seen, errp) < 0) {
        block_close(img, NULL);
        return NULL;
    }
    return img;
}

struct block_image *block_open_opts(const char *path, const struct block_options *opts, GError **errp)
{
    struct chain_id seen[BLOCK_MAX_BACKING_DEPTH + 1];
    return open_layer(path, opts, 0, seen, errp);
}

struct block_image *block_open(const char *path, const char *fmt, unsigned flags, GError **errp)
{
    struct block_options o = {.format = fmt, .flags = flags};
    return block_open_opts(path, &o, errp);
}

int block_close(struct block_image *img, GError **errp)
{
    if (!img)
        return 0;
    int r = 0;
    if (img->drv) {
        if (!img->read_only)
            r = img->drv->flush(img, errp);
        img->drv->close(img);
    }
    if (img->backing)
        block_close(img->backing, NULL);
    image_free(img);
    return r;
}

static int check_range(struct block_image *img, uint64_t offset, uint64_t len, const char *what,
                       GError **errp)
{
    uint64_t size = img->drv->get_length(img);
    if (offset > size || len > size - offset)
        return block_set_error(errp, img, -EINVAL,
                               "%s of %" PRIu64 " bytes at %" PRIu64
                               " is beyond the end of the image (%" PRIu64 " bytes)",
                               what, len, offset, size);
    return 0;
}

static int check_writable(struct block_image *img, GError **errp)
{
    if (img->read_only)
        return block_set_error(errp, img, -EROFS, "image is opened read-only");
    return 0;
}

int block_read(struct block_image *img, uint64_t offset, void *buf, size_t len, GError **errp)
{
    int r = check_range(img, offset, len, "read", errp);
    if (r < 0 || len == 0)
        return r;
    return img->drv->read(img, offset, buf, len, errp);
}

/* A probed raw image must not get a header that makes the next probe see another format. */
static int check_probed_write(struct block_image *img, uint64_t offset, const void *buf, size_t len,
                              GError **errp)
{
    if (!img->probed_raw || offset >= 4)
        return 0;
    uint8_t head[4];
    int r = img->drv->read(img, 0, head, sizeof(head), errp);
    if (r < 0)
        return r;
    size_t n = len < 4 - offset ? len : 4 - (size_t)offset;
    memcpy(head + offset, buf, n);
    if (qcow2_be32(head) == QCOW2_MAGIC)
        return block_set_error(errp, img, -EPERM,
                               "refusing to write an image header into the first sector of "
                               "an image whose format was probed (give the format explicitly)");
    return 0;
}

int block_write(struct block_image *img, uint64_t offset, const void *buf, size_t len, GError **errp)
{
    int r = check_writable(img, errp);
    if (r == 0)
        r = check_range(img, offset, len, "write", errp);
    if (r == 0)
        r = check_probed_write(img, offset, buf, len, errp);
    if (r < 0 || len == 0)
        return r;
    return img->drv->write(img, offset, buf, len, errp);
}

int block_write_compressed(struct block_image *img, uint64_t offset, const void *buf, size_t len,
                           GError **errp)
{
    int r = check_writable(img, errp);
    if (r == 0)
        r = check_range(img, offset, len, "compressed write", errp);
    if (r < 0 || len == 0)
        return r;
    if (!img->drv->write_compressed)
        return block_set_error(errp, img, -ENOTSUP, "format %s does not support compression", img->drv->name);
    return img->drv->write_compressed(img, offset, buf, len, errp);
}

int block_flush(struct block_image *img, GError **errp)
{
    if (img->read_only)
        return 0;
    return img->drv->flush(img, errp);
}

int block_discard(struct block_image *img, uint64_t offset, uint64_t len, GError **errp)
{
    int r = check_writable(img, errp);
    if (r == 0)
        r = check_range(img, offset, len, "discard", errp);
    if (r < 0 || len == 0)
        return r;
    return img->drv->discard(img, offset, len, errp);
}

int block_write_zeroes(struct block_image *img, uint64_t offset, uint64_t len, bool may_unmap, GError **errp)
{
    int r = check_writable(img, errp);
    if (r == 0)
        r = check_range(img, offset, len, "write zeroes", errp);
    if (r < 0 || len == 0)
        return r;
    return img->drv->write_zeroes(img, offset, len, may_unmap, errp);
}

int block_status(struct block_image *img, uint64_t offset, uint64_t len, struct block_status *st,
                 GError **errp)
{
    memset(st, 0, sizeof(*st));
    int r = check_range(img, offset, len, "block status", errp);
    if (r < 0)
        return r;
    if (len == 0)
        return 0;
    r = img->drv->block_status(img, offset, len, st, errp);
    if (r == 0 && (st->length == 0 || st->length > len))
        st->length = len;
    return r;
}

int block_status_chain(struct block_image *img, uint64_t offset, uint64_t len, struct block_status *st,
                       GError **errp)
{
    struct block_image *layer = img;
    unsigned depth = 0;
    for (;;) {
        int r = block_status(layer, offset, len, st, errp);
        if (r < 0)
            return r;
        st->depth = depth;
        if ((st->flags & BLOCK_STATUS_ALLOCATED) || !layer->backing) {
            if (!(st->flags & BLOCK_STATUS_ALLOCATED))
                st->flags = BLOCK_STATUS_ZERO;
            return 0;
        }
        len = st->length;
        uint64_t blen = block_get_length(layer->backing);
        if (offset >= blen) {
            st->flags = BLOCK_STATUS_ZERO;
            st->depth = depth + 1;
            return 0;
        }
        if (len > blen - offset)
            len = blen - offset;
        layer = layer->backing;
        depth++;
    }
}

uint64_t block_get_length(struct block_image *img)
{
    return img->drv->get_length(img);
}

int block_truncate(struct block_image *img, uint64_t size, bool shrink, GError **errp)
{
    int r = check_writable(img, errp);
    if (r < 0)
        return r;
    if (size > (uint64_t)INT64_MAX)
        return block_set_error(errp, img, -EFBIG, "size %" PRIu64 " is too large", size);
    return img->drv->truncate(img, size, shrink, errp);
}

int block_check(struct block_image *img, unsigned fix, struct block_check_result *res,
                block_check_report_fn report, void *opaque, GError **errp)
{
    memset(res, 0, sizeof(*res));
    if (fix) {
        int r = check_writable(img, errp);
        if (r < 0)
            return r;
    }
    if (!img->drv->check)
        return block_set_error(errp, img, -ENOTSUP, "format %s has no consistency check", img->drv->name);
    return img->drv->check(img, fix, res, report, opaque, errp);
}

void block_get_info(struct block_image *img, struct block_info *info)
{
    memset(info, 0, sizeof(*info));
    info->format = img->drv->name;
    info->virtual_size = block_get_length(img);
    info->actual_size = block_file_allocated(&img->file);
    info->backing_file = img->backing_file;
    info->backing_full = img->backing_full;
    info->backing_format = img->backing_format;
    info->read_only = img->read_only;
    if (img->drv->get_info)
        img->drv->get_info(img, info);
}

#define SNAPSHOT_OP(op, ...)                                                                                 \
    do {                                                                                                     \
        if (!img->drv->op)                                                                                   \
            return block_set_error(errp, img, -ENOTSUP, "format %s does not support internal snapshots",     \
                                   img->drv->name);                                                          \
        return img->drv->op(img, __VA_ARGS__);                                                               \
    } while (0)

int block_snapshot_create(struct block_image *img, const char *name, GError **errp)
{
    int r = check_writable(img, errp);
    if (r < 0)
        return r;
    SNAPSHOT_OP(snapshot_create, name, errp);
}

int block_snapshot_list(struct block_image *img, struct block_snapshot_info **out, size_t *n, GError **errp)
{
    *out = NULL;
    *n = 0;
    SNAPSHOT_OP(snapshot_list, out, n, errp);
}

int block_snapshot_apply(struct block_image *img, const char *name_or_id, GError **errp)
{
    int r = check_writable(img, errp);
    if (r < 0)
        return r;
    SNAPSHOT_OP(snapshot_apply, name_or_id, errp);
}

int block_snapshot_delete(struct block_image *img, const char *name_or_id, GError **errp)
{
    int r = check_writable(img, errp);
    if (r < 0)
        return r;
    SNAPSHOT_OP(snapshot_delete, name_or_id, errp);
}

void block_snapshot_list_free(struct block_snapshot_info *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        g_free(list[i].id);
        g_free(list[i].name);
    }
    g_free(list);
}

int block_make_empty(struct block_image *img, GError **errp)
{
    int r = check_writable(img, errp);
    if (r < 0)
        return r;
    if (!img->drv->make_empty)
        return block_set_error(errp, img, -ENOTSUP, "format %s cannot be emptied", img->drv->name);
    return img->drv->make_empty(img, errp);
}

int block_change_backing(struct block_image *img, const char *file, const char *fmt, GError **errp)
{
    int r = check_writable(img, errp);
    if (r < 0)
        return r;
    if (!img->drv->change_backing)
        return block_set_error(errp, img, -ENOTSUP, "format %s does not support backing files",
                               img->drv->name);
    return img->drv->change_backing(img, file, fmt, errp);
}

int block_create(const char *path, const struct block_create_options *o, GError **errp)
{
    const struct block_driver *drv = block_find_driver(o->format);
    if (!drv)
        return block_set_error_path(errp, path, -ENOTSUP, "unknown or unsupported image format '%s'",
                                    o->format ? o->format : "(none)");
    return drv->create(path, o, errp);
}
