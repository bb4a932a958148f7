/* qcow2 driver: open/close, guest read/write with copy-on-write from backing files and snapshots, discard,
 * zero writes, block status, resize, compressed writes, corruption handling. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qcow2.h"

static struct qcow2_state *state(struct block_image *img)
{
    return img->opaque;
}

int qcow2_signal_corruption(struct qcow2_state *s, GError **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (!s->corrupt) {
        s->corrupt = true;
        bool mark = s->writable && s->h.version >= 3;
        log_error("%s: qcow2 metadata is corrupt: %s; %s", s->img->filename, msg,
                  mark ? "image marked corrupt, further writes refused" : "further writes refused");
        if (mark) {
            uint8_t b[8];
            qcow2_put64(b, s->h.incompatible | QCOW2_INCOMPAT_CORRUPT);
            if (block_file_pwrite(&s->img->file, QCOW2_HDR_INCOMPAT, b, 8) == 0 &&
                block_file_sync(&s->img->file) == 0)
                s->h.incompatible |= QCOW2_INCOMPAT_CORRUPT;
        }
    }
    int r = block_set_error(errp, s->img, -EIO, "qcow2 image is corrupt: %s", msg);
    g_free(msg);
    return r;
}

static int refuse_write(struct qcow2_state *s, GError **errp)
{
    if (s->corrupt)
        return block_set_error(errp, s->img, -EIO, "qcow2 image is marked corrupt; writes are refused");
    if (s->broken)
        return block_set_error(errp, s->img, -EIO, "an earlier metadata write failed; writes are refused");
    return 0;
}

int qcow2_read_file(struct qcow2_state *s, uint64_t off, void *buf, size_t len, GError **errp)
{
    int r = block_file_pread(&s->img->file, off, buf, len);
    if (r < 0)
        return block_set_error(errp, s->img, r, "read of %zu bytes at host offset 0x%" PRIx64 " failed: %s",
                               len, off, g_strerror(-r));
    return 0;
}

int qcow2_read_table(struct qcow2_state *s, uint64_t off, uint32_t n, const char *what, uint64_t **out,
                     GError **errp)
{
    uint64_t *t = g_try_new0(uint64_t, MAX(n, 1u));
    *out = NULL;
    if (!t)
        return block_set_error(errp, s->img, -ENOMEM, "cannot allocate %s", what);
    int r = qcow2_read_file(s, off, t, (size_t)n * 8, errp);
    if (r < 0) {
        g_free(t);
        return r;
    }
    for (uint32_t i = 0; i < n; i++)
        t[i] = qcow2_be64(&t[i]);
    *out = t;
    return 0;
}

static int file_write(struct qcow2_state *s, uint64_t off, const void *buf, size_t len, GError **errp)
{
    int r = block_file_pwrite(&s->img->file, off, buf, len);
    if (r < 0) {
        s->broken = true;
        return block_set_error(errp, s->img, r, "write of %zu bytes at host offset 0x%" PRIx64 " failed: %s",
                               len, off, g_strerror(-r));
    }
    if (off + len > s->file_end)
        s->file_end = off + len;
    return 0;
}

int qcow2_write_meta(struct qcow2_state *s, uint64_t off, const void *buf, size_t len, GError **errp)
{
    int r = refuse_write(s, errp);
    if (r < 0)
        return r;
    if (off < s->cluster_size)
        return qcow2_signal_corruption(
            s, errp, "preventing a metadata write over the image header (0x%" PRIx64 ")", off);
    return file_write(s, off, buf, len, errp);
}

/* Whether [off, end) meets one of the clusters the table's entries point at (entries masked by mask; 0:
 * none). */
static bool overlaps_tables(const struct qcow2_state *s, const uint64_t *table, uint32_t n, uint64_t mask,
                            uint64_t off, uint64_t end)
{
    for (uint32_t i = 0; i < n; i++) {
        uint64_t a = table[i] & mask;
        if (a && off < a + s->cluster_size && end > a)
            return true;
    }
    return false;
}

/* Data must never land on the header, L1/refcount tables, an active L2 table or refcount block (a corrupt
 * image can map a guest cluster onto one), the snapshot table or a snapshot's L1 table. */
static bool data_overlaps(struct qcow2_state *s, uint64_t off, uint64_t len, const char **what)
{
    if (qcow2_overlaps_metadata(s, off, len)) {
        *what = "the header, the L1 table or the refcount table";
        return true;
    }
    uint64_t end = off + len;
    if (overlaps_tables(s, s->l1, s->l1_size, L1E_OFFSET_MASK, off, end)) {
        *what = "an L2 table";
        return true;
    }
    if (overlaps_tables(s, s->reftable, s->reftable_size, REFT_OFFSET_MASK, off, end)) {
        *what = "a refcount block";
        return true;
    }
    if (s->nb_snapshots && off < s->h.snapshots_offset + s->cluster_size && end > s->h.snapshots_offset) {
        *what = "the snapshot table";
        return true;
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        uint64_t a = s->snapshots[i].l1_offset, b = a + (uint64_t)s->snapshots[i].l1_size * 8;
        if (off < b && end > a) {
            *what = "a snapshot's L1 table";
            return true;
        }
    }
    return false;
}

int qcow2_write_data(struct qcow2_state *s, uint64_t off, const void *buf, size_t len, GError **errp)
{
    int r = refuse_write(s, errp);
    if (r < 0)
        return r;
    const char *what;
    if (data_overlaps(s, off, len, &what))
        return qcow2_signal_corruption(s, errp, "preventing a data write at 0x%" PRIx64 " over %s", off,
                                       what);
    return file_write(s, off, buf, len, errp);
}

int qcow2_sync(struct qcow2_state *s, GError **errp)
{
    int r = block_file_sync(&s->img->file);
    if (r < 0) {
        s->broken = true;
        return block_set_error(errp, s->img, r, "flush failed: %s", g_strerror(-r));
    }
    return 0;
}

static void *aligned_alloc_or_null(size_t n)
{
    void *p = NULL;
    return posix_memalign(&p, BLOCK_FILE_DIRECT_ALIGN, n) == 0 ? p : NULL;
}

static void state_free(struct qcow2_state *s)
{
    if (!s)
        return;
    qcow2_cache_destroy(&s->l2_cache);
    qcow2_cache_destroy(&s->rb_cache);
    qcow2_refcount_free(s);
    qcow2_snapshots_free(s);
    for (int t = 0; t < 3; t++) {
        for (int b = 0; b < 64; b++)
            g_free(s->feature_names[t][b]);
    }
    g_free(s->l1);
    free(s->cluster_buf);
    free(s->cmp_buf);
    free(s->dcmp_buf);
    g_free(s);
}

static int load_l1(struct qcow2_state *s, GError **errp)
{
    s->l1_size = s->h.l1_size;
    int r = qcow2_read_table(s, s->h.l1_table_offset, s->l1_size, "the L1 table", &s->l1, errp);
    if (r < 0)
        return r;
    s->l1_dirty_lo = UINT32_MAX;
    s->l1_dirty_hi = 0;
    return 0;
}

/* What an image opened for writing does first: forget features it does not maintain, repair after a crash
 * with lazy refcounts, and mark itself dirty if it will use lazy refcounts. */
static int open_for_writing(struct qcow2_state *s, GError **errp)
{
    int r;
    if (s->corrupt)
        return 0; /* opened for repair: only block_check writes */
    if (s->h.autoclear) {
        r = qcow2_header_commit64(s, QCOW2_HDR_AUTOCLEAR, 0, errp);
        if (r < 0)
            return r;
        s->h.autoclear = 0;
    }
    if (s->h.incompatible & QCOW2_INCOMPAT_DIRTY) {
        log_warn("%s: qcow2 image was not closed cleanly; rebuilding refcounts", s->img->filename);
        r = qcow2_rebuild_refcounts(s, errp);
        if (r == 0)
            r = qcow2_set_incompat(s, QCOW2_INCOMPAT_DIRTY, false, errp);
        if (r < 0)
            return r;
    }
    if (s->lazy_refcounts) {
        r = qcow2_set_incompat(s, QCOW2_INCOMPAT_DIRTY, true, errp);
        if (r < 0)
            return r;
        s->dirty_marked = true;
    }
    return 0;
}

static int qcow2_open(struct block_image *img, const struct block_options *opts, GError **errp)
{
    struct qcow2_state *s = g_new0(struct qcow2_state, 1);
    s->img = img;
    img->opaque = s;
    s->writable = !img->read_only;
    int r = qcow2_header_load(s, opts, errp);
    if (r < 0)
        goto fail;
    s->refcount_bits = 1u << s->h.refcount_order;
    s->rb_bits = s->cluster_bits + 3 - s->h.refcount_order;
    s->rb_entries = 1u << s->rb_bits;
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX : (1ull << s->refcount_bits) - 1;
    s->csize_shift = 62 - (s->cluster_bits - 8);
    s->csize_mask = (1ull << (s->cluster_bits - 8)) - 1;
    s->coffset_mask = (1ull << s->csize_shift) - 1;
    s->lazy_refcounts = s->h.compatible & QCOW2_COMPAT_LAZY_REFCOUNTS;
    s->compression_name = s->h.compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib";
    int64_t flen = block_file_length(&img->file);
    s->file_end = flen > 0 ? (uint64_t)flen : 0;

    uint64_t l2_bytes = opts->l2_cache_size ? opts->l2_cache_size : BLOCK_DEFAULT_L2_CACHE_SIZE;
    uint64_t n = l2_bytes / s->cluster_size;
    n = MIN(MAX(n, 4), 65536);
    s->cluster_buf = aligned_alloc_or_null(s->cluster_size);
    s->cmp_buf = aligned_alloc_or_null(2ull * s->cluster_size + 1024);
    s->dcmp_buf = aligned_alloc_or_null(s->cluster_size);
    if (!s->cluster_buf || !s->cmp_buf || !s->dcmp_buf ||
        qcow2_cache_init(&s->l2_cache, (unsigned)n, s->cluster_size, true) < 0 ||
        qcow2_cache_init(&s->rb_cache, (unsigned)MAX(n / 4, 4), s->cluster_size, false) < 0) {
        r = block_set_error(errp, img, -ENOMEM, "cannot allocate qcow2 caches");
        goto fail;
    }
    r = load_l1(s, errp);
    if (r == 0)
        r = qcow2_refcount_init(s, errp);
    if (r == 0)
        r = qcow2_snapshots_load(s, errp);
    if (r == 0 && s->writable)
        r = open_for_writing(s, errp);
    if (r < 0)
        goto fail;
    return 0;
fail:
    state_free(s);
    img->opaque = NULL;
    return r;
}

static void qcow2_close(struct block_image *img)
{
    struct qcow2_state *s = state(img);
    if (!s)
        return;
    if (s->writable && !s->corrupt && !s->broken) {
        GError *err = NULL;
        int r = qcow2_flush_metadata(s, &err);
        if (r == 0 && s->dirty_marked)
            r = qcow2_set_incompat(s, QCOW2_INCOMPAT_DIRTY, false, &err);
        if (r < 0)
            log_error("%s", err ? err->message : "qcow2: closing failed");
        g_clear_error(&err);
    }
    state_free(s);
    img->opaque = NULL;
}

static uint64_t qcow2_get_length(struct block_image *img)
{
    return state(img)->h.size;
}

/* Guest bytes this layer does not have: from the backing chain (zeros past its end), else zeros. */
static int read_below(struct qcow2_state *s, uint64_t off, uint8_t *buf, size_t n, GError **errp)
{
    struct block_image *b = s->img->backing;
    size_t have = 0;
    if (b) {
        uint64_t blen = block_get_length(b);
        if (off < blen) {
            have = (size_t)MIN((uint64_t)n, blen - off);
            int r = block_read(b, off, buf, have, errp);
            if (r < 0)
                return r;
        }
    }
    memset(buf + have, 0, n - have);
    return 0;
}

/* Reads [off, off+n) of one guest cluster whose L2 entry is E. */
static int read_in_cluster(struct qcow2_state *s, uint64_t e, uint64_t off, uint8_t *buf, size_t n,
                           GError **errp)
{
    uint32_t in = (uint32_t)(off & (s->cluster_size - 1));
    switch (qcow2_cluster_type(s, e)) {
    case QCOW2_CLUSTER_UNALLOCATED:
        return read_below(s, off, buf, n, errp);
    case QCOW2_CLUSTER_ZERO_PLAIN:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        memset(buf, 0, n);
        return 0;
    case QCOW2_CLUSTER_COMPRESSED: {
        int r = qcow2_decompress_cluster(s, e, errp);
        if (r == 0)
            memcpy(buf, s->dcmp_buf + in, n);
        return r;
    }
    default:
        return qcow2_read_file(s, (e & L2E_OFFSET_MASK) + in, buf, n, errp);
    }
}

static int qcow2_read(struct block_image *img, uint64_t off, void *vbuf, size_t len, GError **errp)
{
    struct qcow2_state *s = state(img);
    uint8_t *buf = vbuf;
    uint64_t cs = s->cluster_size;
    while (len) {
        uint64_t e;
        int r = qcow2_get_l2_entry(s, off / cs, &e, errp);
        if (r < 0)
            return r;
        size_t n = (size_t)MIN((uint64_t)len, cs - (off & (cs - 1)));
        enum qcow2_cluster_type t = qcow2_cluster_type(s, e);
        /* merge following clusters that are contiguous on the host (or equally unallocated) into one read */
        while (n < len && (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_UNALLOCATED)) {
            uint64_t next;
            r = qcow2_get_l2_entry(s, (off + n) / cs, &next, errp);
            if (r < 0)
                return r;
            if (qcow2_cluster_type(s, next) != t)
                break;
            uint64_t want = (e & L2E_OFFSET_MASK) + (off & (cs - 1)) + n;
            if (t == QCOW2_CLUSTER_NORMAL && (next & L2E_OFFSET_MASK) != want)
                break;
            n += (size_t)MIN((uint64_t)(len - n), cs);
        }
        if (t == QCOW2_CLUSTER_NORMAL)
            r = qcow2_read_file(s, (e & L2E_OFFSET_MASK) + (off & (cs - 1)), buf, n, errp);
        else
            r = read_in_cluster(s, e, off, buf, n, errp);
        if (r < 0)
            return r;
        buf += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Full current content of guest cluster GC (entry E) into BUF: what a partial write merges into. */
static int read_cluster(struct qcow2_state *s, uint64_t gc, uint64_t e, uint8_t *buf, GError **errp)
{
    return read_in_cluster(s, e, gc * s->cluster_size, buf, s->cluster_size, errp);
}

/* Writes [off, off+n) inside one guest cluster. */
static int write_in_cluster(struct qcow2_state *s, uint64_t off, const uint8_t *buf, size_t n, GError **errp)
{
    uint64_t cs = s->cluster_size, gc = off / cs;
    uint32_t in = (uint32_t)(off & (cs - 1));
    uint8_t *table;
    uint32_t idx;
    int r = qcow2_get_l2_for_write(s, gc, &table, &idx, errp);
    if (r < 0)
        return r;
    uint64_t e = qcow2_be64(table + 8 * (size_t)idx);
    r = qcow2_l2_entry_check(s, e, errp);
    if (r < 0)
        goto out;
    enum qcow2_cluster_type t = qcow2_cluster_type(s, e);
    bool owned = (e & QCOW_OFLAG_COPIED) && (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC);
    if (owned && t == QCOW2_CLUSTER_NORMAL) {
        r = qcow2_write_data(s, (e & L2E_OFFSET_MASK) + in, buf, n, errp);
        goto out;
    }
    const uint8_t *content = buf;
    if (n != cs) {
        r = read_cluster(s, gc, e, s->cluster_buf, errp);
        if (r < 0)
            goto out;
        memcpy(s->cluster_buf + in, buf, n);
        content = s->cluster_buf;
    }
    uint64_t host;
    if (owned) {
        host = e & L2E_OFFSET_MASK; /* preallocated zero cluster: fill it in place */
    } else {
        r = qcow2_alloc_clusters(s, 1, &host, errp);
        if (r < 0)
            goto out;
    }
    r = qcow2_write_data(s, host, content, cs, errp);
    if (r < 0)
        goto out;
    qcow2_put64(table + 8 * (size_t)idx, host | QCOW_OFLAG_COPIED);
    qcow2_cache_mark_dirty(&s->l2_cache, table);
    if (!owned)
        r = qcow2_free_l2_entry_later(s, e, errp);
    if (t == QCOW2_CLUSTER_COMPRESSED && s->dcmp_entry == e)
        s->dcmp_entry = 0;
out:
    qcow2_cache_put(&s->l2_cache, table);
    return r;
}

static int qcow2_write(struct block_image *img, uint64_t off, const void *vbuf, size_t len, GError **errp)
{
    struct qcow2_state *s = state(img);
    int r = refuse_write(s, errp);
    if (r < 0)
        return r;
    const uint8_t *buf = vbuf;
    uint64_t cs = s->cluster_size;
    while (len) {
        size_t n = (size_t)MIN((uint64_t)len, cs - (off & (cs - 1)));
        r = write_in_cluster(s, off, buf, n, errp);
        if (r < 0)
            return r;
        buf += n;
        off += n;
        len -= n;
    }
    return 0;
}

static int qcow2_flush(struct block_image *img, GError **errp)
{
    struct qcow2_state *s = state(img);
    if (!s->writable)
        return 0;
    return qcow2_flush_metadata(s, errp);
}

/* Whole clusters of [off, off+len); the partial cluster at the end of the image counts as whole. */
static void whole_clusters(struct qcow2_state *s, uint64_t off, uint64_t len, uint64_t *first,
                           uint64_t *count)
{
    uint64_t cs = s->cluster_size;
    uint64_t a = (off + cs - 1) / cs;
    uint64_t end = off + len;
    uint64_t b = end == s->h.size ? (end + cs - 1) / cs : end / cs;
    *first = a;
    *count = b > a ? b - a : 0;
}

static int qcow2_discard(struct block_image *img, uint64_t off, uint64_t len, GError **errp)
{
    struct qcow2_state *s = state(img);
    int r = refuse_write(s, errp);
    if (r < 0)
        return r;
    uint64_t first, count;
    whole_clusters(s, off, len, &first, &count);
    return count ? qcow2_zero_clusters(s, first, count, QCOW2_DISCARD, errp) : 0;
}

static int write_zero_bytes(struct qcow2_state *s, uint64_t off, uint64_t len, GError **errp)
{
    uint8_t *z = g_malloc0(s->cluster_size);
    int r = 0;
    while (len && r == 0) {
        size_t n = (size_t)MIN(len, (uint64_t)s->cluster_size - (off & (s->cluster_size - 1)));
        r = write_in_cluster(s, off, z, n, errp);
        off += n;
        len -= n;
    }
    g_free(z);
    return r;
}

static int qcow2_write_zeroes(struct block_image *img, uint64_t off, uint64_t len, bool may_unmap,
                              GError **errp)
{
    struct qcow2_state *s = state(img);
    int r = refuse_write(s, errp);
    if (r < 0)
        return r;
    uint64_t cs = s->cluster_size, first, count;
    whole_clusters(s, off, len, &first, &count);
    if (!count)
        return write_zero_bytes(s, off, len, errp);
    uint64_t a = first * cs, b = MIN((first + count) * cs, off + len);
    if (off < a)
        r = write_zero_bytes(s, off, a - off, errp);
    if (r == 0 && b < off + len)
        r = write_zero_bytes(s, b, off + len - b, errp);
    if (r < 0)
        return r;
    if (s->h.version >= 3)
        return qcow2_zero_clusters(s, first, count, may_unmap ? QCOW2_ZERO_UNMAP : QCOW2_ZERO_KEEP, errp);
    if (!img->backing_file)
        return qcow2_zero_clusters(s, first, count, QCOW2_DEALLOCATE, errp);
    return write_zero_bytes(s, a, b - a, errp); /* v2 with a backing file: zeros must be stored */
}

static unsigned status_of(struct qcow2_state *s, uint64_t e)
{
    switch (qcow2_cluster_type(s, e)) {
    case QCOW2_CLUSTER_ZERO_PLAIN:
        return BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_ZERO;
    case QCOW2_CLUSTER_ZERO_ALLOC:
        return BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_ZERO | BLOCK_STATUS_OFFSET_VALID;
    case QCOW2_CLUSTER_NORMAL:
        return BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_DATA | BLOCK_STATUS_OFFSET_VALID;
    case QCOW2_CLUSTER_COMPRESSED:
        return BLOCK_STATUS_ALLOCATED | BLOCK_STATUS_DATA | BLOCK_STATUS_COMPRESSED;
    default:
        return 0;
    }
}

static int qcow2_block_status(struct block_image *img, uint64_t off, uint64_t len, struct block_status *st,
                              GError **errp)
{
    struct qcow2_state *s = state(img);
    uint64_t cs = s->cluster_size, e;
    int r = qcow2_get_l2_entry(s, off / cs, &e, errp);
    if (r < 0)
        return r;
    st->flags = status_of(s, e);
    if (st->flags & BLOCK_STATUS_OFFSET_VALID)
        st->host_offset = (e & L2E_OFFSET_MASK) + (off & (cs - 1));
    uint64_t done = MIN(len, cs - (off & (cs - 1)));
    bool compressed = st->flags & BLOCK_STATUS_COMPRESSED;
    while (done < len && !compressed) {
        uint64_t gc = (off + done) / cs;
        if (st->flags == 0 && (gc >> s->l2_bits) < s->l1_size &&
            !(s->l1[gc >> s->l2_bits] & L1E_OFFSET_MASK)) {
            /* whole unallocated L2 range */
            uint64_t next = ((gc >> s->l2_bits) + 1) << s->l2_bits;
            done = MIN(len, next * cs - off);
            continue;
        }
        uint64_t ne;
        r = qcow2_get_l2_entry(s, gc, &ne, errp);
        if (r < 0)
            return r;
        if (status_of(s, ne) != st->flags)
            break;
        if ((st->flags & BLOCK_STATUS_OFFSET_VALID) && (ne & L2E_OFFSET_MASK) != st->host_offset + done)
            break;
        done = MIN(len, done + cs);
    }
    st->length = done;
    return 0;
}

static int qcow2_truncate(struct block_image *img, uint64_t size, bool shrink, GError **errp)
{
    struct qcow2_state *s = state(img);
    int r = refuse_write(s, errp);
    if (r < 0)
        return r;
    if (s->nb_snapshots)
        return block_set_error(errp, img, -ENOTSUP, "cannot resize an image with internal snapshots");
    uint64_t cs = s->cluster_size, cover = cs * s->l2_entries;
    if (size / cover > QCOW2_MAX_L1_BYTES / 8)
        return block_set_error(errp, img, -EFBIG, "size %" PRIu64 " is too large for this cluster size",
                               size);
    if (size < s->h.size) {
        if (!shrink)
            return block_set_error(errp, img, -EINVAL,
                                   "shrinking the image from %" PRIu64 " to %" PRIu64
                                   " bytes loses data: use the shrink option",
                                   s->h.size, size);
        uint64_t first = (size + cs - 1) / cs, last = (s->h.size + cs - 1) / cs;
        if (last > first)
            r = qcow2_zero_clusters(s, first, last - first, QCOW2_DEALLOCATE, errp);
        if (r == 0 && size % cs)
            r = write_zero_bytes(s, size, MIN(s->h.size, first * cs) - size, errp);
    } else {
        r = qcow2_grow_l1(s, (size + cover - 1) / cover, errp);
    }
    if (r == 0)
        r = qcow2_flush_metadata(s, errp);
    if (r < 0)
        return r;
    r = qcow2_header_commit64(s, QCOW2_HDR_SIZE, size, errp);
    if (r == 0)
        s->h.size = size;
    return r;
}

static int qcow2_write_compressed(struct block_image *img, uint64_t off, const void *buf, size_t len,
                                  GError **errp)
{
    struct qcow2_state *s = state(img);
    uint64_t cs = s->cluster_size;
    int r = refuse_write(s, errp);
    if (r < 0)
        return r;
    if (off % cs || (len != cs && off + len != s->h.size) || len > cs)
        return block_set_error(errp, img, -EINVAL, "compressed writes must cover exactly one cluster");
    memset(s->cluster_buf, 0, cs);
    memcpy(s->cluster_buf, buf, len);
    size_t clen;
    r = qcow2_compress_cluster(s, s->cluster_buf, &clen, errp);
    if (r < 0)
        return r;
    if (clen == 0) /* incompressible: store it plainly */
        return qcow2_write(img, off, buf, len, errp);
    uint8_t *table;
    uint32_t idx;
    r = qcow2_get_l2_for_write(s, off / cs, &table, &idx, errp);
    if (r < 0)
        return r;
    uint64_t old = qcow2_be64(table + 8 * (size_t)idx), host;
    r = qcow2_l2_entry_check(s, old, errp);
    if (r == 0)
        r = qcow2_alloc_bytes(s, (uint32_t)clen, &host, errp);
    if (r == 0)
        r = qcow2_write_data(s, host, s->cmp_buf, clen, errp);
    if (r == 0) {
        uint64_t extra = ((host + clen - 1) >> 9) - (host >> 9);
        qcow2_put64(table + 8 * (size_t)idx, QCOW_OFLAG_COMPRESSED | extra << s->csize_shift | host);
        qcow2_cache_mark_dirty(&s->l2_cache, table);
        r = qcow2_free_l2_entry_later(s, old, errp);
    }
    qcow2_cache_put(&s->l2_cache, table);
    return r;
}

int qcow2_preallocate_metadata(struct block_image *img, GError **errp)
{
    struct qcow2_state *s = state(img);
    uint64_t cs = s->cluster_size, clusters = (s->h.size + cs - 1) / cs;
    for (uint64_t gc = 0; gc < clusters;) {
        uint64_t run = MIN(clusters - gc, (uint64_t)s->l2_entries - (gc & (s->l2_entries - 1)));
        uint8_t *table = NULL;
        uint32_t idx;
        int r = qcow2_get_l2_for_write(s, gc, &table, &idx, errp);
        uint64_t host = 0;
        if (r == 0)
            r = qcow2_alloc_clusters(s, run, &host, errp);
        if (r == 0) {
            for (uint64_t k = 0; k < run; k++)
                qcow2_put64(table + 8 * (idx + k), (host + k * cs) | QCOW_OFLAG_COPIED);
            qcow2_cache_mark_dirty(&s->l2_cache, table);
        }
        if (table)
            qcow2_cache_put(&s->l2_cache, table);
        if (r < 0)
            return r;
        gc += run;
    }
    int r = block_file_truncate(&img->file, s->file_end);
    if (r < 0)
        return block_set_error(errp, img, r, "cannot extend the file: %s", g_strerror(-r));
    return qcow2_flush_metadata(s, errp);
}

static int qcow2_make_empty(struct block_image *img, GError **errp)
{
    struct qcow2_state *s = state(img);
    int r = refuse_write(s, errp);
    uint64_t cs = s->cluster_size, n = (s->h.size + cs - 1) / cs;
    if (r == 0 && n)
        r = qcow2_zero_clusters(s, 0, n, QCOW2_DEALLOCATE, errp);
    if (r == 0)
        r = qcow2_flush_metadata(s, errp);
    return r;
}

static void qcow2_get_info(struct block_image *img, struct block_info *info)
{
    struct qcow2_state *s = state(img);
    info->cluster_size = s->cluster_size;
    info->qcow2_version = (int)s->h.version;
    info->refcount_bits = s->refcount_bits;
    info->compression_type = s->compression_name;
    info->lazy_refcounts = s->lazy_refcounts;
    info->dirty = s->h.incompatible & QCOW2_INCOMPAT_DIRTY;
    info->corrupt = s->corrupt;
}

const struct block_driver qcow2_driver = {
    .name = "qcow2",
    .open = qcow2_open,
    .read = qcow2_read,
    .write = qcow2_write,
    .flush = qcow2_flush,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .block_status = qcow2_block_status,
    .get_length = qcow2_get_length,
    .truncate = qcow2_truncate,
    .close = qcow2_close,
    .write_compressed = qcow2_write_compressed,
    .check = qcow2_check,
    .get_info = qcow2_get_info,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_list = qcow2_snapshot_list,
    .snapshot_apply = qcow2_snapshot_apply,
    .snapshot_delete = qcow2_snapshot_delete,
    .create = qcow2_create,
    .make_empty = qcow2_make_empty,
    .change_backing = qcow2_change_backing,
};
