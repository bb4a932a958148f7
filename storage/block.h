/* deskvm block layer: one format-independent interface over disk images (raw, qcow2), used by virtio-blk and
 * by the image tool. Byte-granular I/O at any offset; errors are negative errno plus a GError naming file and
 * problem. */
#ifndef DESKVM_BLOCK_H
#define DESKVM_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "block_file.h"
#include "image_lock.h"

/* GError domain of every block-layer error; the code is the positive errno (EIO, EINVAL, ENOTSUP, ...). */
#define BLOCK_ERROR block_error_quark()
GQuark block_error_quark(void);

/* block_open flags. Without BLOCK_OPEN_READ_ONLY the image is opened for writing and locked as a writer. */
enum {
    BLOCK_OPEN_READ_ONLY = 1u << 0,
    BLOCK_OPEN_NO_BACKING = 1u << 1,   /* do not open the backing chain; unallocated ranges read as zeros */
    BLOCK_OPEN_NO_LOCK = 1u << 2,      /* force-share (qemu-img -U): read-only only, takes no lock at all */
    BLOCK_OPEN_CACHE_NONE = 1u << 3,   /* O_DIRECT on the image file, flush = fdatasync */
    BLOCK_OPEN_CACHE_UNSAFE = 1u << 4, /* host page cache, flush is a no-op (scratch images only) */
    BLOCK_OPEN_REPAIR = 1u << 5, /* allow a writable open of an image marked corrupt, for block_check repairs
                                  * only: every other write stays refused until the check clears the mark */
};

/* Longest backing chain block_open follows (the image itself not counted). */
#define BLOCK_MAX_BACKING_DEPTH 64
/* Default qcow2 L2 cache size in bytes (QEMU's default on Linux is 1 MiB as well). */
#define BLOCK_DEFAULT_L2_CACHE_SIZE (1024 * 1024)

struct block_options {
    const char *format;     /* "raw", "qcow2" or NULL to probe (qcow2 magic, else raw) */
    unsigned flags;         /* BLOCK_OPEN_* */
    uint64_t l2_cache_size; /* qcow2: bytes of L2 tables kept in memory; 0 = BLOCK_DEFAULT_L2_CACHE_SIZE */
};

/* block_status flags (one layer unless stated otherwise). */
enum {
    BLOCK_STATUS_ALLOCATED = 1u << 0,    /* this layer decides the content; else it comes from below */
    BLOCK_STATUS_DATA = 1u << 1,         /* bytes are stored in this layer's file */
    BLOCK_STATUS_ZERO = 1u << 2,         /* reads as zeros */
    BLOCK_STATUS_OFFSET_VALID = 1u << 3, /* host_offset is where the bytes are in this layer's file */
    BLOCK_STATUS_COMPRESSED = 1u << 4,   /* qcow2 compressed cluster (no host offset) */
};

struct block_status {
    uint64_t length;      /* bytes from the queried offset that share this status (>= 1 unless at EOF) */
    unsigned flags;       /* BLOCK_STATUS_* */
    uint64_t host_offset; /* valid with BLOCK_STATUS_OFFSET_VALID */
    unsigned depth;       /* block_status_chain only: layer that answered (0 = the image itself) */
};

/* qemu-img check counters. */
struct block_check_result {
    int64_t corruptions, leaks, check_errors;
    int64_t corruptions_fixed, leaks_fixed;
    int64_t image_end_offset; /* first byte after the last allocated cluster */
    int64_t total_clusters, allocated_clusters, fragmented_clusters, compressed_clusters;
};

/* Receives each finding of a check as one line ("Leaked cluster 7 refcount=1 reference=0"). */
typedef void (*block_check_report_fn)(void *opaque, const char *line);

enum block_check_fix {
    BLOCK_CHECK_FIX_LEAKS = 1u << 0,
    BLOCK_CHECK_FIX_ERRORS = 1u << 1, /* "-r all": also rebuild refcounts and fix COPIED flags */
};

struct block_snapshot_info {
    char *id;
    char *name;
    uint64_t vm_state_size;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t disk_size;
    uint64_t l1_size;
    int64_t icount; /* instruction count recorded by QEMU 5.0+, -1 when the snapshot has none */
};

/* What `info` shows. Strings belong to the image and live until block_close. */
struct block_info {
    const char *format;
    uint64_t virtual_size;
    uint64_t actual_size;       /* bytes the file occupies on the host (st_blocks * 512) */
    const char *backing_file;   /* as recorded in the image, or NULL */
    const char *backing_full;   /* resolved path, or NULL */
    const char *backing_format; /* as recorded, or NULL */
    uint32_t cluster_size;      /* qcow2; 0 for raw */
    int qcow2_version;          /* 2 or 3; 0 for raw */
    unsigned refcount_bits;
    const char *compression_type; /* "zlib" or "zstd" */
    bool lazy_refcounts, dirty, corrupt;
    bool read_only;
};

/* Options of block_create. Zero/NULL fields take the qemu-img default. */
struct block_create_options {
    const char *format;    /* "raw" or "qcow2" (required) */
    uint64_t size;         /* virtual size; may be 0 with a backing file: taken from the backing image */
    uint32_t cluster_size; /* qcow2: 512..2 MiB power of two, default 65536 */
    int qcow2_version;     /* qcow2: 2 (compat=0.10) or 3 (compat=1.1, default) */
    const char
        *backing_file; /* qcow2: recorded as given (relative = relative to the new image's directory) */
    const char *backing_format; /* qcow2: recorded; NULL = probe the backing file now and record the result */
    const char *preallocation;  /* "off" (default), "metadata" (qcow2), "full"/"falloc" (raw) */
    const char *compression_type; /* qcow2 v3: "zlib" (default) or "zstd" */
    unsigned refcount_bits;       /* qcow2: 1..64 power of two, default 16 (v2: only 16) */
    bool lazy_refcounts;          /* qcow2 v3 */
    bool backing_unchecked;       /* qcow2 (create -u): record the backing file without opening it; size is
                                   * then required and the format recorded only if given */
};

struct block_image;

/* A format driver. Every hook gets a validated request (offset + len inside the image unless noted). */
struct block_driver {
    const char *name;
    int (*open)(struct block_image *img, const struct block_options *opts, GError **errp);
    int (*read)(struct block_image *img, uint64_t offset, void *buf, size_t len, GError **errp);
    int (*write)(struct block_image *img, uint64_t offset, const void *buf, size_t len, GError **errp);
    int (*flush)(struct block_image *img, GError **errp);
    int (*discard)(struct block_image *img, uint64_t offset, uint64_t len, GError **errp);
    int (*write_zeroes)(struct block_image *img, uint64_t offset, uint64_t len, bool may_unmap,
                        GError **errp);
    int (*block_status)(struct block_image *img, uint64_t offset, uint64_t len, struct block_status *st,
                        GError **errp);
    uint64_t (*get_length)(struct block_image *img);
    int (*truncate)(struct block_image *img, uint64_t size, bool shrink, GError **errp);
    void (*close)(struct block_image *img);
    /* optional (NULL = -ENOTSUP) */
    int (*write_compressed)(struct block_image *img, uint64_t offset, const void *buf, size_t len,
                            GError **errp);
    int (*check)(struct block_image *img, unsigned fix, struct block_check_result *res,
                 block_check_report_fn report, void *opaque, GError **errp);
    void (*get_info)(struct block_image *img, struct block_info *info);
    int (*snapshot_create)(struct block_image *img, const char *name, GError **errp);
    int (*snapshot_list)(struct block_image *img, struct block_snapshot_info **out, size_t *n, GError **errp);
    int (*snapshot_apply)(struct block_image *img, const char *name_or_id, GError **errp);
    int (*snapshot_delete)(struct block_image *img, const char *name_or_id, GError **errp);
    int (*create)(const char *path, const struct block_create_options *o, GError **errp);
    int (*make_empty)(struct block_image *img, GError **errp);
    int (*change_backing)(struct block_image *img, const char *file, const char *fmt, GError **errp);
};

struct block_image {
    const struct block_driver *drv;
    char *filename;
    unsigned flags;
    bool read_only;
    bool probed_raw;        /* format was probed and came out raw: sector 0 may not become an image header */
    struct block_file file; /* the image file */
    struct image_lock lock;
    struct block_image *backing;
    char *backing_file;   /* as recorded */
    char *backing_full;   /* resolved path */
    char *backing_format; /* as recorded */
    unsigned chain_depth; /* 0 for the top image */
    void *opaque;         /* driver state */
};

/* Opens PATH. fmt NULL probes: qcow2 magic means qcow2, anything else raw. As in QEMU, probing a raw image is
 * risky: a guest that writes a qcow2 header into sector 0 would turn the disk into a qcow2 image on the next
 * probe (and could point it at any host file as "backing file"). So when the probe says raw, writes that
 * would put an image magic into the first sector are refused with -EPERM; pass "raw" explicitly for guest
 * disks. */
struct block_image *block_open(const char *path, const char *fmt, unsigned flags, GError **errp);
struct block_image *block_open_opts(const char *path, const struct block_options *opts, GError **errp);
/* Flushes (writable images) and closes, including the backing chain. Returns the flush's result. */
int block_close(struct block_image *img, GError **errp);

int block_read(struct block_image *img, uint64_t offset, void *buf, size_t len, GError **errp);
int block_write(struct block_image *img, uint64_t offset, const void *buf, size_t len, GError **errp);
/* Whole-cluster compressed write (qcow2 convert -c); len must be one cluster (or the image tail). */
int block_write_compressed(struct block_image *img, uint64_t offset, const void *buf, size_t len,
                           GError **errp);
int block_flush(struct block_image *img, GError **errp);
int block_discard(struct block_image *img, uint64_t offset, uint64_t len, GError **errp);
int block_write_zeroes(struct block_image *img, uint64_t offset, uint64_t len, bool may_unmap, GError **errp);
/* Status of [offset, offset+len) in this layer only; st->length says how far it holds. */
int block_status(struct block_image *img, uint64_t offset, uint64_t len, struct block_status *st,
                 GError **errp);
/* Status through the backing chain: the first layer that has the range allocated (depth set); ranges no layer
 * has read as zeros (flags ZERO without ALLOCATED, depth = the bottom layer); so do bytes past a shorter
 * backing image. */
int block_status_chain(struct block_image *img, uint64_t offset, uint64_t len, struct block_status *st,
                       GError **errp);
uint64_t block_get_length(struct block_image *img);
int block_truncate(struct block_image *img, uint64_t size, bool shrink, GError **errp);
/* qemu-img check: counts (and with FIX repairs) leaks and corruptions; report may be NULL. */
int block_check(struct block_image *img, unsigned fix, struct block_check_result *res,
                block_check_report_fn report, void *opaque, GError **errp);
void block_get_info(struct block_image *img, struct block_info *info);

int block_snapshot_create(struct block_image *img, const char *name, GError **errp);
int block_snapshot_list(struct block_image *img, struct block_snapshot_info **out, size_t *n, GError **errp);
int block_snapshot_apply(struct block_image *img, const char *name_or_id, GError **errp);
int block_snapshot_delete(struct block_image *img, const char *name_or_id, GError **errp);
void block_snapshot_list_free(struct block_snapshot_info *list, size_t n);

/* Deallocates every cluster of this layer so the backing chain shows through again (commit empties the
 * top image this way); unlike discard it never leaves zero clusters behind. */
int block_make_empty(struct block_image *img, GError **errp);
/* Rewrites the backing file name and format recorded in the image header (FILE NULL: no backing file;
 * FMT NULL: no format recorded). The opened backing chain is not changed: callers close and reopen. */
int block_change_backing(struct block_image *img, const char *file, const char *fmt, GError **errp);

/* Creates (or truncates) an image under the writer lock, so an image in use is not clobbered. */
int block_create(const char *path, const struct block_create_options *o, GError **errp);

/* Parses "raw"/"qcow2"; NULL for anything else. */
const struct block_driver *block_find_driver(const char *name);
/* Resolves a backing file name recorded in the image at IMAGE_PATH the way QEMU does: absolute names as they
 * are, relative ones relative to the directory of IMAGE_PATH. */
char *block_resolve_backing(const char *image_path, const char *backing);

/* For drivers: sets *errp to "FILE: message" with code -err and returns err (negative). */
int block_set_error(GError **errp, struct block_image *img, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int block_set_error_path(GError **errp, const char *path, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
