/* qcow2 refcounts: lookup and update, cluster allocation, refcount table growth, and the ordered metadata
 * flush.
 *
 * Crash safety. The file on disk must at every instant be an image that `qemu-img check` calls clean or leaky
 * (refcount >= number of references), and every write the guest saw flushed must read back. So on-disk
 * metadata only moves forward in this order, with an fdatasync at each arrow:
 *
 *   guest data clusters -> refcount blocks (increments) -> refcount table entries -> L2 tables -> L1 table
 *                       -> refcount blocks (decrements of clusters the new L2/L1 no longer reference)
 *
 * Between flushes everything lives in memory: new clusters get refcount 1 in the (write-back) refcount block
 * cache and their data is written at once; L2/L1 changes wait in the L2 cache / L1 copy. A crash before the
 * flush loses only unflushed writes, and the disk still holds the previous consistent state. Refcounts can be
 * written early (an early increment is at worst a leak), which is why a dirty refcount block may be evicted
 * at any time, while a dirty L2 table can only leave the cache through the full ordered flush. A cluster
 * whose last reference goes away (copy-on-write of a shared cluster, discard) is not decremented at once: it
 * waits in `pending` until the dereferencing L2/L1 tables are on disk, so it cannot be reused while the disk
 * still points at it. New refcount blocks are self-describing (placed at the first cluster of the range they
 * cover); a grown refcount table is written completely, synced, and only then switched to in the header. With
 * lazy_refcounts the image is marked dirty instead and the syncs between steps are skipped; a dirty image
 * gets its refcounts rebuilt on open.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "qcow2.h"

uint64_t qcow2_get_rc_entry(const struct qcow2_state *s, const uint8_t *block, uint32_t i)
{
    switch (s->h.refcount_order) {
    case 0:
        return (block[i / 8] >> (i % 8)) & 1;
    case 1:
        return (block[i / 4] >> (2 * (i % 4))) & 3;
    case 2:
        return (block[i / 2] >> (4 * (i % 2))) & 15;
    case 3:
        return block[i];
    case 4:
        return qcow2_be16(block + 2 * (size_t)i);
    case 5:
        return qcow2_be32(block + 4 * (size_t)i);
    default:
        return qcow2_be64(block + 8 * (size_t)i);
    }
}

void qcow2_set_rc_entry(const struct qcow2_state *s, uint8_t *block, uint32_t i, uint64_t v)
{
    unsigned shift;
    switch (s->h.refcount_order) {
    case 0:
    case 1:
    case 2: {
        unsigned bits = 1u << s->h.refcount_order;
        unsigned per = 8 / bits;
        shift = bits * (i % per);
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
        block[i / per] = (uint8_t)((block[i / per] & ~mask) | ((v << shift) & mask));
        break;
    }
    case 3:
        block[i] = (uint8_t)v;
        break;
    case 4:
        qcow2_put16(block + 2 * (size_t)i, (uint16_t)v);
        break;
    case 5:
        qcow2_put32(block + 4 * (size_t)i, (uint32_t)v);
        break;
    default:
        qcow2_put64(block + 8 * (size_t)i, v);
        break;
    }
}

int qcow2_refcount_init(struct qcow2_state *s, GError **errp)
{
    uint64_t bytes = (uint64_t)s->h.refcount_table_clusters * s->cluster_size;
    s->reftable_size = (uint32_t)(bytes / 8);
    int r = qcow2_read_table(s, s->h.refcount_table_offset, s->reftable_size, "the refcount table",
                             &s->reftable, errp);
    if (r < 0)
        return r;
    s->reftable_dirty_lo = UINT32_MAX;
    s->reftable_dirty_hi = 0;
    /* An image opened for writing gets its whole refcount table checked now: allocating with a refcount block
     * that is misplaced could hand out clusters still in use. A bad entry marks the image corrupt (writes
     * refused, reads still served) instead of failing the open. */
    for (uint32_t ti = 0; s->writable && !s->corrupt && ti < s->reftable_size; ti++) {
        uint64_t e = s->reftable[ti];
        if (e & REFT_RESERVED_MASK || (e & (s->cluster_size - 1)) || (e && e + s->cluster_size > s->file_end))
            qcow2_signal_corruption(s, NULL, "refcount table entry %u (0x%" PRIx64 ") is invalid", ti, e);
    }
    return 0;
}

void qcow2_refcount_free(struct qcow2_state *s)
{
    g_free(s->reftable);
    s->reftable = NULL;
    g_free(s->pending);
    s->pending = NULL;
}

/* The refcount block offset for table index TI, validated; 0 when there is none. */
static int block_offset(struct qcow2_state *s, uint64_t ti, uint64_t *off, GError **errp)
{
    *off = 0;
    if (ti >= s->reftable_size)
        return 0;
    uint64_t e = s->reftable[ti];
    if (e & REFT_RESERVED_MASK || (e & (s->cluster_size - 1)))
        return qcow2_signal_corruption(
            s, errp, "refcount table entry %" PRIu64 " is unaligned (0x%" PRIx64 ")", ti, e);
    if (e && e + s->cluster_size > s->file_end)
        return qcow2_signal_corruption(
            s, errp, "refcount block %" PRIu64 " at 0x%" PRIx64 " is outside the image file", ti, e);
    if (e && qcow2_overlaps_metadata(s, e, s->cluster_size))
        return qcow2_signal_corruption(
            s, errp, "refcount block %" PRIu64 " at 0x%" PRIx64 " overlaps other metadata", ti, e);
    *off = e & REFT_OFFSET_MASK;
    return 0;
}

int qcow2_get_refcount(struct qcow2_state *s, uint64_t cluster, uint64_t *rc, GError **errp)
{
    uint64_t off;
    int r = block_offset(s, cluster >> s->rb_bits, &off, errp);
    if (r < 0)
        return r;
    if (!off) {
        *rc = 0;
        return 0;
    }
    uint8_t *b;
    r = qcow2_cache_get(s, &s->rb_cache, off, &b, errp);
    if (r < 0)
        return r;
    *rc = qcow2_get_rc_entry(s, b, (uint32_t)(cluster & (s->rb_entries - 1)));
    qcow2_cache_put(&s->rb_cache, b);
    return 0;
}

static void reftable_mark(struct qcow2_state *s, uint32_t i)
{
    if (i < s->reftable_dirty_lo)
        s->reftable_dirty_lo = i;
    if (i + 1 > s->reftable_dirty_hi)
        s->reftable_dirty_hi = i + 1;
}

/* Writes the whole in-memory refcount table to OFF (big endian). */
static int write_reftable_at(struct qcow2_state *s, uint64_t off, uint32_t from, uint32_t to, GError **errp)
{
    size_t n = to - from;
    uint64_t *buf = g_new(uint64_t, n);
    for (size_t i = 0; i < n; i++)
        qcow2_put64(&buf[i], s->reftable[from + i]);
    int r = qcow2_write_meta(s, off + (uint64_t)from * 8, buf, n * 8, errp);
    g_free(buf);
    return r;
}

/* Replaces the refcount table by one with at least MIN_ENTRIES entries, placed with the refcount blocks that
 * describe it right after the area the current table covers. */
static int grow_reftable(struct qcow2_state *s, uint64_t min_entries, GError **errp)
{
    uint64_t per_cluster = s->cluster_size / 8;
    uint64_t cur = s->reftable_size;
    uint64_t base = cur << s->rb_bits; /* first cluster not covered: free by definition */
    uint64_t entries = MAX(min_entries, cur + cur / 2);
    uint64_t nb = 1, tc = 0;
    for (int iter = 0; iter < 64; iter++) {
        entries = MAX(entries, cur + nb);
        entries = (entries + per_cluster - 1) / per_cluster * per_cluster;
        tc = entries / per_cluster;
        uint64_t need = (nb + tc + s->rb_entries - 1) >> s->rb_bits;
        if (need <= nb && entries >= cur + nb)
            break;
        nb = MAX(nb, need);
    }
    if (entries * 8 > QCOW2_MAX_REFTABLE_BYTES ||
        ((base + nb + tc) << s->cluster_bits) >= QCOW2_MAX_HOST_OFFSET)
        return block_set_error(errp, s->img, -EFBIG, "refcount table would exceed %u bytes",
                               QCOW2_MAX_REFTABLE_BYTES);
    int r;
    uint64_t *nt = g_try_new0(uint64_t, entries);
    if (!nt)
        return block_set_error(errp, s->img, -ENOMEM, "cannot allocate a bigger refcount table");
    memcpy(nt, s->reftable, cur * 8);
    for (uint64_t k = 0; k < nb; k++) {
        nt[cur + k] = (base + k) << s->cluster_bits;
        uint8_t *b;
        r = qcow2_cache_get_new(s, &s->rb_cache, nt[cur + k], &b, errp);
        if (r < 0) {
            g_free(nt);
            return r;
        }
        qcow2_cache_put(&s->rb_cache, b);
    }
    uint64_t old_off = s->h.refcount_table_offset;
    uint32_t old_clusters = s->h.refcount_table_clusters;
    uint64_t new_off = (base + nb) << s->cluster_bits;
    g_free(s->reftable);
    s->reftable = nt;
    s->reftable_size = (uint32_t)entries;
    s->file_end = MAX(s->file_end, (base + nb + tc) << s->cluster_bits);
    for (uint64_t c = base; c < base + nb + tc; c++) {
        r = qcow2_update_refcount(s, c, 1, errp);
        if (r < 0)
            goto broken;
    }
    /* blocks, then the table, then the header that points at it */
    r = qcow2_cache_write_dirty(s, &s->rb_cache, NULL, errp);
    if (r == 0 && !s->lazy_refcounts)
        r = qcow2_sync(s, errp);
    if (r == 0)
        r = write_reftable_at(s, new_off, 0, (uint32_t)entries, errp);
    if (r == 0)
        r = qcow2_sync(s, errp);
    if (r < 0)
        goto broken;
    uint8_t hdr[12];
    qcow2_put64(hdr, new_off);
    qcow2_put32(hdr + 8, (uint32_t)tc);
    r = qcow2_header_commit(s, QCOW2_HDR_REFTABLE, hdr, sizeof(hdr), errp);
    if (r < 0)
        goto broken;
    s->h.refcount_table_offset = new_off;
    s->h.refcount_table_clusters = (uint32_t)tc;
    s->reftable_dirty_lo = UINT32_MAX;
    s->reftable_dirty_hi = 0;
    /* the old table is no longer referenced by the (synced) header */
    for (uint32_t i = 0; i < old_clusters; i++) {
        r = qcow2_update_refcount(s, (old_off >> s->cluster_bits) + i, -1, errp);
        if (r < 0)
            goto broken;
    }
    return 0;
broken:
    s->broken = true;
    return r;
}

/* Makes sure the refcount block for table index TI exists (creating a self-describing one if not). */
static int ensure_block(struct qcow2_state *s, uint64_t ti, uint64_t *off, GError **errp)
{
    if (ti >= s->reftable_size) {
        int r = grow_reftable(s, ti + 1, errp);
        if (r < 0)
            return r;
    }
    int r = block_offset(s, ti, off, errp);
    if (r < 0 || *off)
        return r;
    if (ti == 0)
        return qcow2_signal_corruption(s, errp, "refcount table has no block for the header cluster");
    uint64_t first = ti << s->rb_bits;
    if ((first << s->cluster_bits) >= QCOW2_MAX_HOST_OFFSET)
        return block_set_error(errp, s->img, -EFBIG, "image file would exceed the qcow2 size limit");
    uint8_t *b;
    *off = first << s->cluster_bits;
    r = qcow2_cache_get_new(s, &s->rb_cache, *off, &b, errp);
    if (r < 0)
        return r;
    qcow2_set_rc_entry(s, b, 0, 1);
    qcow2_cache_put(&s->rb_cache, b);
    s->reftable[ti] = *off;
    reftable_mark(s, (uint32_t)ti);
    s->file_end = MAX(s->file_end, *off + s->cluster_size);
    return 0;
}

int qcow2_update_refcount(struct qcow2_state *s, uint64_t cluster, int64_t delta, GError **errp)
{
    uint64_t off;
    int r = delta > 0 ? ensure_block(s, cluster >> s->rb_bits, &off, errp)
                      : block_offset(s, cluster >> s->rb_bits, &off, errp);
    if (r < 0)
        return r;
    if (!off)
        return qcow2_signal_corruption(s, errp, "refcount of cluster %" PRIu64 " would drop below zero",
                                       cluster);
    uint8_t *b;
    r = qcow2_cache_get(s, &s->rb_cache, off, &b, errp);
    if (r < 0)
        return r;
    uint32_t i = (uint32_t)(cluster & (s->rb_entries - 1));
    uint64_t v = qcow2_get_rc_entry(s, b, i);
    if (delta < 0 && v < (uint64_t)-delta) {
        qcow2_cache_put(&s->rb_cache, b);
        return qcow2_signal_corruption(s, errp, "refcount of cluster %" PRIu64 " would drop below zero",
                                       cluster);
    }
    if (delta > 0 && s->refcount_max - v < (uint64_t)delta) {
        qcow2_cache_put(&s->rb_cache, b);
        return block_set_error(errp, s->img, -ERANGE,
                               "refcount of cluster %" PRIu64 " would overflow (%u bits)", cluster,
                               s->refcount_bits);
    }
    v += (uint64_t)delta;
    qcow2_set_rc_entry(s, b, i, v);
    qcow2_cache_mark_dirty(&s->rb_cache, b);
    qcow2_cache_put(&s->rb_cache, b);
    if (v == 0) {
        /* a freed L2 table must not linger in the cache (and never be written back over reused space) */
        qcow2_cache_discard(&s->l2_cache, cluster << s->cluster_bits);
        if (cluster < s->free_hint)
            s->free_hint = cluster;
    }
    return 0;
}

/* Creates the refcount block for table index TI in a freshly allocated single cluster. */
static int block_elsewhere(struct qcow2_state *s, uint64_t ti, GError **errp)
{
    if (ti >= s->reftable_size) {
        int r = grow_reftable(s, ti + 1, errp);
        if (r < 0)
            return r;
    }
    uint64_t off, boff;
    int r = qcow2_alloc_clusters(s, 1, &off, errp);
    if (r == 0)
        r = block_offset(s, ti, &boff, errp);
    if (r < 0)
        return r;
    if (boff) /* the allocation itself created it (self-describing): the cluster is not needed */
        return qcow2_update_refcount(s, off >> s->cluster_bits, -1, errp);
    uint8_t *b;
    r = qcow2_cache_get_new(s, &s->rb_cache, off, &b, errp);
    if (r < 0)
        return r;
    qcow2_cache_put(&s->rb_cache, b);
    s->reftable[ti] = off;
    reftable_mark(s, (uint32_t)ti);
    return 0;
}

/* A cluster with refcount 0 that metadata still uses means the refcounts are corrupt: handing it out would
 * let new data or tables overwrite the header, a table or a refcount block. Clusters past the end of the
 * file (the usual case when an image grows) hold nothing. */
static int check_unused(struct qcow2_state *s, uint64_t cluster, GError **errp)
{
    uint64_t off = cluster << s->cluster_bits;
    if (off >= s->file_end)
        return 0;
    bool used = qcow2_overlaps_metadata(s, off, s->cluster_size) ||
                (s->nb_snapshots && off >= (s->h.snapshots_offset & ~((uint64_t)s->cluster_size - 1)) &&
                 off < s->h.snapshots_offset + 40ull * s->nb_snapshots + 8);
    for (uint32_t i = 0; !used && i < s->reftable_size; i++)
        used = (s->reftable[i] & REFT_OFFSET_MASK) == off;
    for (uint32_t i = 0; !used && i < s->l1_size; i++)
        used = (s->l1[i] & L1E_OFFSET_MASK) == off;
    if (used)
        return qcow2_signal_corruption(
            s, errp, "cluster 0x%" PRIx64 " is in use as metadata but its refcount is 0", off);
    return 0;
}

int qcow2_alloc_clusters(struct qcow2_state *s, uint64_t n, uint64_t *off, GError **errp)
{
    if (n == 0)
        return block_set_error(errp, s->img, -EINVAL, "zero-cluster allocation");
    uint64_t limit = QCOW2_MAX_HOST_OFFSET >> s->cluster_bits;
    uint64_t start = s->free_hint;
    for (;;) {
        if (start + n > limit)
            return block_set_error(errp, s->img, -ENOSPC, "image file reached the qcow2 host offset limit");
        uint64_t i;
        bool fits = true;
        for (i = 0; i < n; i++) {
            uint64_t rc;
            int r = qcow2_get_refcount(s, start + i, &rc, errp);
            if (r < 0)
                return r;
            if (rc) {
                fits = false;
                break;
            }
        }
        if (!fits) {
            if (start == s->free_hint && i == 0)
                s->free_hint = start + 1;
            start += i + 1;
            continue;
        }
        /* The refcount blocks for the run may not exist yet. One cluster gets a self-describing block (which
         * may take the cluster itself: scan again); a longer run gets its blocks in the lowest free clusters,
         * as self-describing ones would keep landing inside the run. */
        bool moved = false;
        for (uint64_t ti = start >> s->rb_bits; ti <= (start + n - 1) >> s->rb_bits; ti++) {
            uint64_t boff = 0;
            int r = block_offset(s, ti, &boff, errp);
            if (r < 0)
                return r;
            if (boff)
                continue;
            r = n == 1 ? ensure_block(s, ti, &boff, errp) : block_elsewhere(s, ti, errp);
            if (r < 0)
                return r;
            moved = true;
        }
        if (moved)
            continue;
        for (i = 0; i < n; i++) {
            int r = check_unused(s, start + i, errp);
            if (r == 0)
                r = qcow2_update_refcount(s, start + i, 1, errp);
            if (r < 0)
                return r;
        }
        if (start == s->free_hint)
            s->free_hint = start + n;
        *off = start << s->cluster_bits;
        s->file_end = MAX(s->file_end, (start + n) << s->cluster_bits);
        return 0;
    }
}

int qcow2_alloc_bytes(struct qcow2_state *s, uint32_t len, uint64_t *off, GError **errp)
{
    uint64_t cs = s->cluster_size;
    if (s->cmp_next && (s->cmp_next & (cs - 1)) + len <= cs) {
        int r = qcow2_update_refcount(s, s->cmp_next >> s->cluster_bits, 1, errp);
        if (r < 0)
            return r;
        *off = s->cmp_next;
    } else {
        int r = qcow2_alloc_clusters(s, 1, off, errp);
        if (r < 0)
            return r;
    }
    s->cmp_next = *off + len;
    if ((s->cmp_next & (cs - 1)) == 0)
        s->cmp_next = 0;
    return 0;
}

int qcow2_free_cluster_later(struct qcow2_state *s, uint64_t cluster, GError **errp)
{
    if (s->n_pending == s->cap_pending) {
        s->cap_pending = s->cap_pending ? s->cap_pending * 2 : 64;
        s->pending = g_renew(uint64_t, s->pending, s->cap_pending);
    }
    s->pending[s->n_pending++] = cluster;
    if (s->n_pending >= QCOW2_MAX_PENDING_FREES)
        return qcow2_flush_metadata(s, errp);
    return 0;
}

int qcow2_free_l2_entry_later(struct qcow2_state *s, uint64_t entry, GError **errp)
{
    switch (qcow2_cluster_type(s, entry)) {
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        return qcow2_free_cluster_later(s, (entry & L2E_OFFSET_MASK) >> s->cluster_bits, errp);
    case QCOW2_CLUSTER_COMPRESSED: {
        uint64_t off, len;
        qcow2_compressed_range(s, entry, &off, &len);
        for (uint64_t c = off >> s->cluster_bits; c <= (off + len - 1) >> s->cluster_bits; c++) {
            int r = qcow2_free_cluster_later(s, c, errp);
            if (r < 0)
                return r;
        }
        return 0;
    }
    default:
        return 0;
    }
}

static int write_l1_dirty(struct qcow2_state *s, GError **errp)
{
    if (s->l1_dirty_lo >= s->l1_dirty_hi)
        return 0;
    uint32_t lo = s->l1_dirty_lo, hi = s->l1_dirty_hi;
    uint64_t *buf = g_new(uint64_t, hi - lo);
    for (uint32_t i = lo; i < hi; i++)
        qcow2_put64(&buf[i - lo], s->l1[i]);
    int r = qcow2_write_meta(s, s->h.l1_table_offset + (uint64_t)lo * 8, buf, (size_t)(hi - lo) * 8, errp);
    g_free(buf);
    if (r == 0) {
        s->l1_dirty_lo = UINT32_MAX;
        s->l1_dirty_hi = 0;
    }
    return r;
}

int qcow2_flush_metadata(struct qcow2_state *s, GError **errp)
{
    if (s->corrupt || s->broken)
        return block_set_error(errp, s->img, -EIO, "image is %s; metadata is not written",
                               s->corrupt ? "marked corrupt" : "in an inconsistent state after an I/O error");
    bool strict = !s->lazy_refcounts;
    bool rb = qcow2_cache_has_dirty(&s->rb_cache), rt = s->reftable_dirty_lo < s->reftable_dirty_hi;
    bool l2 = qcow2_cache_has_dirty(&s->l2_cache), l1 = s->l1_dirty_lo < s->l1_dirty_hi;
    int r = 0;
    /* 1. guest data */
    if (strict && (rb || rt || l2 || l1))
        r = qcow2_sync(s, errp);
    /* 2. refcount blocks, then the table entries pointing at new blocks */
    if (r == 0 && rb)
        r = qcow2_cache_write_dirty(s, &s->rb_cache, NULL, errp);
    if (r == 0 && rt && strict && rb)
        r = qcow2_sync(s, errp);
    if (r == 0 && rt) {
        r = write_reftable_at(s, s->h.refcount_table_offset, s->reftable_dirty_lo, s->reftable_dirty_hi,
                              errp);
        if (r == 0) {
            s->reftable_dirty_lo = UINT32_MAX;
            s->reftable_dirty_hi = 0;
        }
    }
    if (r == 0 && strict && (rb || rt) && (l2 || l1))
        r = qcow2_sync(s, errp);
    /* 3. L2 tables, then L1 entries pointing at new tables */
    if (r == 0 && l2)
        r = qcow2_cache_write_dirty(s, &s->l2_cache, NULL, errp);
    if (r == 0 && strict && l2 && l1)
        r = qcow2_sync(s, errp);
    if (r == 0 && l1)
        r = write_l1_dirty(s, errp);
    if (r == 0)
        r = qcow2_sync(s, errp);
    /* 4. clusters the tables on disk no longer reference */
    if (r == 0 && s->n_pending) {
        uint32_t n = s->n_pending;
        s->n_pending = 0;
        s->cmp_next = 0;
        for (uint32_t i = 0; i < n && r == 0; i++) {
            qcow2_cache_discard(&s->l2_cache, s->pending[i] << s->cluster_bits);
            r = qcow2_update_refcount(s, s->pending[i], -1, errp);
        }
        if (r == 0)
            r = qcow2_cache_write_dirty(s, &s->rb_cache, NULL, errp);
        if (r == 0)
            r = qcow2_sync(s, errp);
    }
    if (r < 0)
        s->broken = true;
    return r;
}
