/* qcow2 format driver (v2 and v3): on-disk constants, the driver's state and the functions its files share
 * (qcow2.c I/O paths, qcow2_header.c, qcow2_cache.c, qcow2_cluster.c, qcow2_refcount.c, qcow2_snapshot.c,
 * qcow2_compress.c, qcow2_check.c). Metadata write ordering is described at the top of qcow2_refcount.c. */
#ifndef DESKVM_QCOW2_H
#define DESKVM_QCOW2_H

#include <stdbool.h>
#include <stdint.h>

#include "block.h"

extern const struct block_driver qcow2_driver;

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_V2_HEADER_LEN 72u
#define QCOW2_V3_HEADER_LEN 104u
#define QCOW2_HEADER_LEN_WRITTEN 112u /* v3 header with compression_type, padded to 8 */

#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
#define QCOW2_AUTOCLEAR_BITMAPS (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)

#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

#define QCOW_OFLAG_COPIED (1ull << 63)
#define QCOW_OFLAG_COMPRESSED (1ull << 62)
#define QCOW_OFLAG_ZERO (1ull << 0)
#define L1E_OFFSET_MASK 0x00fffffffffffe00ull
#define L1E_RESERVED_MASK 0x7f000000000001ffull
#define L2E_OFFSET_MASK 0x00fffffffffffe00ull
#define L2E_STD_RESERVED_MASK 0x3f000000000001feull
#define REFT_OFFSET_MASK 0xfffffffffffffe00ull
#define REFT_RESERVED_MASK 0x1ffull

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* Limits on file-controlled sizes (QEMU's implementation limits where it has them). */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u * 1024 * 1024)
#define QCOW2_MAX_REFTABLE_BYTES (8u * 1024 * 1024)
#define QCOW2_MAX_SNAPSHOTS 65536u
#define QCOW2_MAX_SNAPSHOT_TABLE_BYTES (64u * 1024 * 1024)
#define QCOW2_MAX_SNAPSHOT_EXTRA 1024u
#define QCOW2_MAX_BACKING_NAME 1023u
#define QCOW2_MAX_FORMAT_NAME 63u
#define QCOW2_MAX_HOST_OFFSET (1ull << 56)
/* Host clusters check/rebuild will count (4 bytes each). */
#define QCOW2_MAX_CHECK_CLUSTERS (1ull << 26)
/* Pending cluster frees before a metadata flush is forced. */
#define QCOW2_MAX_PENDING_FREES 4096u

struct qcow2_header {
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible, compatible, autoclear;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
};

/* Byte offsets of header fields that get rewritten in place. */
#define QCOW2_HDR_SIZE 24
#define QCOW2_HDR_L1 36        /* l1_size (4) + l1_table_offset (8) */
#define QCOW2_HDR_REFTABLE 48  /* refcount_table_offset (8) + refcount_table_clusters (4) */
#define QCOW2_HDR_SNAPSHOTS 60 /* nb_snapshots (4) + snapshots_offset (8) */
#define QCOW2_HDR_INCOMPAT 72
#define QCOW2_HDR_AUTOCLEAR 88

/* A small write-back cache of cluster-sized metadata tables (L2 tables or refcount blocks). Entries are
 * pinned while a caller holds a pointer into them; eviction of a dirty entry goes through the owner's flush
 * rules. */
struct qcow2_cache_entry {
    uint64_t offset; /* host offset of the table; 0 = free slot */
    uint8_t *data;
    uint64_t lru;
    bool dirty;
    int pins;
};

struct qcow2_cache {
    struct qcow2_cache_entry *e;
    unsigned n;
    uint64_t tick;
    bool is_l2; /* dirty L2 tables may only be written after the refcounts they depend on */
};

struct qcow2_snapshot {
    uint64_t l1_offset;
    uint32_t l1_size;
    char *id, *name;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size;
    uint64_t disk_size;
    uint32_t extra_size;
    uint8_t *extra; /* extra data as read (kept so unknown fields survive a table rewrite) */
};

enum qcow2_cluster_type {
    QCOW2_CLUSTER_UNALLOCATED,
    QCOW2_CLUSTER_ZERO_PLAIN,
    QCOW2_CLUSTER_ZERO_ALLOC,
    QCOW2_CLUSTER_NORMAL,
    QCOW2_CLUSTER_COMPRESSED,
};

struct qcow2_state {
    struct block_image *img;
    struct qcow2_header h;
    uint32_t cluster_size, cluster_bits;
    uint32_t l2_entries, l2_bits;
    uint32_t refcount_bits;
    uint32_t rb_entries, rb_bits; /* refcount entries per refcount block */
    uint64_t refcount_max;
    uint32_t csize_shift; /* compressed descriptor: sector count field position */
    uint64_t csize_mask, coffset_mask;

    uint64_t *l1; /* active L1 table, host order */
    uint32_t l1_size;
    uint32_t l1_dirty_lo, l1_dirty_hi; /* dirty index range [lo, hi) */

    uint64_t *reftable; /* host order */
    uint32_t reftable_size;
    uint32_t reftable_dirty_lo, reftable_dirty_hi;

    struct qcow2_cache l2_cache, rb_cache;

    struct qcow2_snapshot *snapshots;
    uint32_t nb_snapshots;

    uint64_t free_hint; /* lowest host cluster index that may be free */
    uint64_t *pending;  /* host cluster indices whose refcount drops at the next metadata flush */
    uint32_t n_pending, cap_pending;
    uint64_t cmp_next; /* next free byte for compressed data (0: start a new cluster) */

    uint64_t file_end; /* bytes; grows as clusters are written */
    bool writable;
    bool corrupt; /* metadata found inconsistent: no more writes */
    bool broken;  /* a metadata write failed half-way: no more writes */
    bool lazy_refcounts;
    bool dirty_marked; /* we set the dirty bit and must clear it on clean close */
    char *feature_names[3][64];

    uint8_t *cluster_buf; /* scratch cluster for copy-on-write */
    uint8_t *cmp_buf;     /* compressed bytes */
    uint8_t *dcmp_buf;    /* last decompressed cluster */
    uint64_t dcmp_entry;  /* its L2 entry (0 = none) */
    char *compression_name;
};

static inline uint64_t qcow2_be64(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)b[0] << 56 | (uint64_t)b[1] << 48 | (uint64_t)b[2] << 40 | (uint64_t)b[3] << 32 |
           (uint64_t)b[4] << 24 | (uint64_t)b[5] << 16 | (uint64_t)b[6] << 8 | b[7];
}
static inline uint32_t qcow2_be32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline uint16_t qcow2_be16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] << 8 | b[1]);
}
static inline void qcow2_put64(void *p, uint64_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
}
static inline void qcow2_put32(void *p, uint32_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (24 - 8 * i));
}
static inline void qcow2_put16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

/* qcow2.c */
/* Marks the image corrupt (header bit on v3 writable images), logs why and refuses writes from now on. */
int qcow2_signal_corruption(struct qcow2_state *s, GError **errp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes metadata at OFF (never over the header cluster; refused once the image is corrupt or broken). */
int qcow2_write_meta(struct qcow2_state *s, uint64_t off, const void *buf, size_t len, GError **errp);
int qcow2_write_data(struct qcow2_state *s, uint64_t off, const void *buf, size_t len, GError **errp);
int qcow2_read_file(struct qcow2_state *s, uint64_t off, void *buf, size_t len, GError **errp);
/* Reads the table of N big-endian 64-bit entries at OFF into *OUT (host order, g_free it; NULL on
 * failure). WHAT names it in the allocation error ("the L1 table"). Returns 0 or -errno. */
int qcow2_read_table(struct qcow2_state *s, uint64_t off, uint32_t n, const char *what, uint64_t **out,
                     GError **errp);
int qcow2_sync(struct qcow2_state *s, GError **errp);

/* qcow2_header.c */
int qcow2_header_load(struct qcow2_state *s, const struct block_options *opts, GError **errp);
int qcow2_header_update(struct qcow2_state *s, unsigned field_off, const void *bytes, size_t len,
                        GError **errp);
/* qcow2_header_update, then sync: a header field is what makes a metadata change take effect. */
int qcow2_header_commit(struct qcow2_state *s, unsigned field_off, const void *bytes, size_t len,
                        GError **errp);
/* qcow2_header_commit of one 64-bit field. */
int qcow2_header_commit64(struct qcow2_state *s, unsigned field_off, uint64_t v, GError **errp);
int qcow2_set_incompat(struct qcow2_state *s, uint64_t bits, bool set, GError **errp);
int qcow2_create(const char *path, const struct block_create_options *o, GError **errp);
const char *qcow2_feature_name(struct qcow2_state *s, int type, int bit);
int qcow2_change_backing(struct block_image *img, const char *file, const char *fmt, GError **errp);

/* qcow2_cache.c */
int qcow2_cache_init(struct qcow2_cache *c, unsigned n, uint32_t cluster_size, bool is_l2);
void qcow2_cache_destroy(struct qcow2_cache *c);
/* Returns a pinned pointer to the table at OFF (read from disk if not cached). */
int qcow2_cache_get(struct qcow2_state *s, struct qcow2_cache *c, uint64_t off, uint8_t **data,
                    GError **errp);
/* Like get, for a freshly allocated table: zero-filled, dirty, not read. */
int qcow2_cache_get_new(struct qcow2_state *s, struct qcow2_cache *c, uint64_t off, uint8_t **data,
                        GError **errp);
void qcow2_cache_put(struct qcow2_cache *c, const uint8_t *data);
void qcow2_cache_mark_dirty(struct qcow2_cache *c, const uint8_t *data);
/* Writes every dirty entry (no ordering of its own: callers order caches). */
int qcow2_cache_write_dirty(struct qcow2_state *s, struct qcow2_cache *c, bool *wrote, GError **errp);
bool qcow2_cache_has_dirty(const struct qcow2_cache *c);
/* Forgets the table at OFF (it was freed); a dirty copy is dropped. */
void qcow2_cache_discard(struct qcow2_cache *c, uint64_t off);
void qcow2_cache_clear(struct qcow2_cache *c);

/* qcow2_refcount.c */
int qcow2_refcount_init(struct qcow2_state *s, GError **errp);
int qcow2_get_refcount(struct qcow2_state *s, uint64_t cluster, uint64_t *rc, GError **errp);
int qcow2_update_refcount(struct qcow2_state *s, uint64_t cluster, int64_t delta, GError **errp);
/* Allocates N contiguous host clusters (refcount 1, in memory). *off = host byte offset. */
int qcow2_alloc_clusters(struct qcow2_state *s, uint64_t n, uint64_t *off, GError **errp);
/* Allocates LEN bytes (<= one cluster) for compressed data, sharing host clusters between compressed
 * clusters. */
int qcow2_alloc_bytes(struct qcow2_state *s, uint32_t len, uint64_t *off, GError **errp);
/* Drops one reference to host cluster CLUSTER once the dereferencing tables are on disk. */
int qcow2_free_cluster_later(struct qcow2_state *s, uint64_t cluster, GError **errp);
/* Frees the host clusters an L2 entry references (later). */
int qcow2_free_l2_entry_later(struct qcow2_state *s, uint64_t entry, GError **errp);
/* The ordered metadata flush (see qcow2_refcount.c). */
int qcow2_flush_metadata(struct qcow2_state *s, GError **errp);
void qcow2_refcount_free(struct qcow2_state *s);
uint64_t qcow2_get_rc_entry(const struct qcow2_state *s, const uint8_t *block, uint32_t i);
void qcow2_set_rc_entry(const struct qcow2_state *s, uint8_t *block, uint32_t i, uint64_t v);

/* qcow2_cluster.c */
enum qcow2_cluster_type qcow2_cluster_type(const struct qcow2_state *s, uint64_t l2e);
/* Validates an L1 entry (reserved bits, alignment, inside the file): *l2_off = L2 offset or 0; 0 or -errno.
 */
int qcow2_l1_entry_check(struct qcow2_state *s, uint64_t l1e, uint64_t *l2_off, GError **errp);
int qcow2_l2_entry_check(struct qcow2_state *s, uint64_t l2e, GError **errp);
/* The L2 entry of guest cluster GC (0 when unallocated). */
int qcow2_get_l2_entry(struct qcow2_state *s, uint64_t gc, uint64_t *entry, GError **errp);
/* Pinned L2 table for writing guest cluster GC (allocating / copying the table as needed) and the index. */
int qcow2_get_l2_for_write(struct qcow2_state *s, uint64_t gc, uint8_t **table, uint32_t *index,
                           GError **errp);
/* Host clusters a compressed L2 entry spans. */
void qcow2_compressed_range(const struct qcow2_state *s, uint64_t l2e, uint64_t *off, uint64_t *len);
/* Replaces the active L1 table with a bigger one holding at least MIN entries. */
int qcow2_grow_l1(struct qcow2_state *s, uint64_t min_entries, GError **errp);
/* Adds DELTA to the refcount of every cluster in the tree of an L1 table (and its L2 tables). */
int qcow2_tree_refcount(struct qcow2_state *s, const uint64_t *l1, uint32_t l1_size, int delta,
                        GError **errp);
/* Makes the COPIED flags of the active tree match the refcounts (refcount == 1). FIXED counts changes. */
int qcow2_fix_copied_flags(struct qcow2_state *s, bool fix, int64_t *mismatches, GError **errp);
enum qcow2_zero_mode {
    QCOW2_ZERO_KEEP,  /* zero flag, keep the host cluster (write zeroes without unmap) */
    QCOW2_ZERO_UNMAP, /* zero flag, free the host cluster */
    QCOW2_DISCARD,    /* guest discard: free; zero flag only where a backing file would show through */
    QCOW2_DEALLOCATE, /* entry 0 (shrink) */
};
/* Zeroes / discards whole guest clusters [gc, gc+n). */
int qcow2_zero_clusters(struct qcow2_state *s, uint64_t gc, uint64_t n, enum qcow2_zero_mode mode,
                        GError **errp);
/* True if [off, off+len) hits the header cluster, the active L1 table or the refcount table. */
bool qcow2_overlaps_metadata(const struct qcow2_state *s, uint64_t off, uint64_t len);
int qcow2_preallocate_metadata(struct block_image *img, GError **errp);

/* qcow2_compress.c */
/* Decompresses into s->dcmp_buf (one cluster). */
int qcow2_decompress_cluster(struct qcow2_state *s, uint64_t l2e, GError **errp);
/* Compresses one cluster into s->cmp_buf; returns the compressed length, or 0 if it does not shrink. */
int qcow2_compress_cluster(struct qcow2_state *s, const void *in, size_t *out_len, GError **errp);

/* qcow2_snapshot.c */
int qcow2_snapshots_load(struct qcow2_state *s, GError **errp);
void qcow2_snapshots_free(struct qcow2_state *s);
int qcow2_snapshot_create(struct block_image *img, const char *name, GError **errp);
int qcow2_snapshot_list(struct block_image *img, struct block_snapshot_info **out, size_t *n, GError **errp);
int qcow2_snapshot_apply(struct block_image *img, const char *name_or_id, GError **errp);
int qcow2_snapshot_delete(struct block_image *img, const char *name_or_id, GError **errp);

/* qcow2_check.c */
int qcow2_check(struct block_image *img, unsigned fix, struct block_check_result *res,
                block_check_report_fn report, void *opaque, GError **errp);
/* Rebuilds the refcount structure from the L1/L2/snapshot trees (used for dirty images and check -r all). */
int qcow2_rebuild_refcounts(struct qcow2_state *s, GError **errp);

#endif
