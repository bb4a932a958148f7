/* qcow2 cluster mapping: L1/L2 lookup with validation, L2 allocation and copy-on-write, L1 growth,
 * zero/discard, and walks over whole L1 trees (snapshots, COPIED flags). Write ordering: see
 * qcow2_refcount.c. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "qcow2.h"

enum qcow2_cluster_type qcow2_cluster_type(const struct qcow2_state *s, uint64_t l2e)
{
    (void)s;
    if (l2e & QCOW_OFLAG_COMPRESSED)
        return QCOW2_CLUSTER_COMPRESSED;
    if (l2e & QCOW_OFLAG_ZERO)
        return (l2e & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_ZERO_ALLOC : QCOW2_CLUSTER_ZERO_PLAIN;
    if (l2e & L2E_OFFSET_MASK)
        return QCOW2_CLUSTER_NORMAL;
    return QCOW2_CLUSTER_UNALLOCATED;
}

void qcow2_compressed_range(const struct qcow2_state *s, uint64_t l2e, uint64_t *off, uint64_t *len)
{
    uint64_t coff = l2e & s->coffset_mask;
    uint64_t sectors = ((l2e >> s->csize_shift) & s->csize_mask) + 1;
    *off = coff;
    *len = sectors * 512 - (coff & 511);
}

bool qcow2_overlaps_metadata(const struct qcow2_state *s, uint64_t off, uint64_t len)
{
    uint64_t end = off + len;
    if (off < s->cluster_size)
        return true;
    uint64_t l1_end = s->h.l1_table_offset + (uint64_t)s->l1_size * 8;
    if (s->l1_size && off < l1_end && end > s->h.l1_table_offset)
        return true;
    uint64_t rt_end = s->h.refcount_table_offset + (uint64_t)s->h.refcount_table_clusters * s->cluster_size;
    return off < rt_end && end > s->h.refcount_table_offset;
}

int qcow2_l1_entry_check(struct qcow2_state *s, uint64_t l1e, uint64_t *l2_off, GError **errp)
{
    *l2_off = l1e & L1E_OFFSET_MASK;
    if (l1e & L1E_RESERVED_MASK)
        return qcow2_signal_corruption(s, errp, "L1 entry 0x%" PRIx64 " has reserved bits set", l1e);
    if (*l2_off == 0)
        return 0;
    if (*l2_off & (s->cluster_size - 1))
        return qcow2_signal_corruption(s, errp, "L2 table offset 0x%" PRIx64 " is not cluster aligned",
                                       *l2_off);
    if (*l2_off + s->cluster_size > s->file_end)
        return qcow2_signal_corruption(s, errp, "L2 table offset 0x%" PRIx64 " is outside the image file",
                                       *l2_off);
    if (qcow2_overlaps_metadata(s, *l2_off, s->cluster_size))
        return qcow2_signal_corruption(s, errp, "L2 table at 0x%" PRIx64 " overlaps other metadata", *l2_off);
    return 0;
}

int qcow2_l2_entry_check(struct qcow2_state *s, uint64_t l2e, GError **errp)
{
    enum qcow2_cluster_type t = qcow2_cluster_type(s, l2e);
    if (t == QCOW2_CLUSTER_COMPRESSED) {
        uint64_t off, len;
        qcow2_compressed_range(s, l2e, &off, &len);
        if (l2e & QCOW_OFLAG_COPIED || off + len > QCOW2_MAX_HOST_OFFSET || off < s->cluster_size)
            return qcow2_signal_corruption(s, errp, "invalid compressed cluster descriptor 0x%" PRIx64, l2e);
        return 0;
    }
    if (l2e & L2E_STD_RESERVED_MASK)
        return qcow2_signal_corruption(s, errp,
                                       "L2 entry 0x%" PRIx64 " has reserved bits set or an unaligned "
                                       "offset",
                                       l2e);
    uint64_t off = l2e & L2E_OFFSET_MASK;
    if (off & (s->cluster_size - 1))
        return qcow2_signal_corruption(s, errp, "data cluster offset 0x%" PRIx64 " is not cluster aligned",
                                       off);
    if (t == QCOW2_CLUSTER_UNALLOCATED && (l2e & QCOW_OFLAG_COPIED))
        return qcow2_signal_corruption(s, errp, "L2 entry 0x%" PRIx64 " maps host offset 0", l2e);
    if (off && qcow2_overlaps_metadata(s, off, s->cluster_size))
        return qcow2_signal_corruption(s, errp, "data cluster at 0x%" PRIx64 " overlaps other metadata", off);
    return 0;
}

/* Entry IDX of the L2 table at L2_OFF, read through the cache (the table is not left pinned). */
static int read_l2_slot(struct qcow2_state *s, uint64_t l2_off, uint64_t idx, uint64_t *entry, GError **errp)
{
    uint8_t *t;
    int r = qcow2_cache_get(s, &s->l2_cache, l2_off, &t, errp);
    if (r < 0)
        return r;
    *entry = qcow2_be64(t + 8 * (size_t)idx);
    qcow2_cache_put(&s->l2_cache, t);
    return 0;
}

int qcow2_get_l2_entry(struct qcow2_state *s, uint64_t gc, uint64_t *entry, GError **errp)
{
    *entry = 0;
    uint64_t l1i = gc >> s->l2_bits;
    if (l1i >= s->l1_size)
        return 0;
    uint64_t l2_off;
    int r = qcow2_l1_entry_check(s, s->l1[l1i], &l2_off, errp);
    if (r < 0 || !l2_off)
        return r;
    r = read_l2_slot(s, l2_off, gc & (s->l2_entries - 1), entry, errp);
    return r < 0 ? r : qcow2_l2_entry_check(s, *entry, errp);
}

static void l1_mark(struct qcow2_state *s, uint32_t i)
{
    if (i < s->l1_dirty_lo)
        s->l1_dirty_lo = i;
    if (i + 1 > s->l1_dirty_hi)
        s->l1_dirty_hi = i + 1;
}

int qcow2_get_l2_for_write(struct qcow2_state *s, uint64_t gc, uint8_t **table, uint32_t *index,
                           GError **errp)
{
    uint64_t l1i = gc >> s->l2_bits;
    if (l1i >= s->l1_size)
        return block_set_error(errp, s->img, -EIO, "guest cluster %" PRIu64 " is beyond the L1 table", gc);
    *index = (uint32_t)(gc & (s->l2_entries - 1));
    uint64_t l1e = s->l1[l1i], old;
    int r = qcow2_l1_entry_check(s, l1e, &old, errp);
    if (r < 0)
        return r;
    if (old && (l1e & QCOW_OFLAG_COPIED))
        return qcow2_cache_get(s, &s->l2_cache, old, table, errp);
    uint64_t new_off;
    r = qcow2_alloc_clusters(s, 1, &new_off, errp);
    if (r < 0)
        return r;
    uint8_t *nt;
    r = qcow2_cache_get_new(s, &s->l2_cache, new_off, &nt, errp);
    if (r < 0)
        return r;
    if (old) {
        /* shared with a snapshot: copy; the data clusters keep their refcounts (one per path) */
        uint8_t *ot;
        r = qcow2_cache_get(s, &s->l2_cache, old, &ot, errp);
        if (r < 0) {
            qcow2_cache_put(&s->l2_cache, nt);
            return r;
        }
        memcpy(nt, ot, s->cluster_size);
        qcow2_cache_put(&s->l2_cache, ot);
    }
    s->l1[l1i] = new_off | QCOW_OFLAG_COPIED;
    l1_mark(s, (uint32_t)l1i);
    if (old) {
        r = qcow2_free_cluster_later(s, old >> s->cluster_bits, errp);
        if (r < 0) {
            qcow2_cache_put(&s->l2_cache, nt);
            return r;
        }
    }
    *table = nt;
    return 0;
}

int qcow2_grow_l1(struct qcow2_state *s, uint64_t min_entries, GError **errp)
{
    if (min_entries <= s->l1_size)
        return 0;
    if (min_entries > QCOW2_MAX_L1_BYTES / 8)
        return block_set_error(errp, s->img, -EFBIG, "L1 table would exceed %u bytes", QCOW2_MAX_L1_BYTES);
    /* everything the old table points at must be on disk before the new table copies it */
    int r = qcow2_flush_metadata(s, errp);
    if (r < 0)
        return r;
    uint64_t n = min_entries;
    uint64_t bytes = (n * 8 + s->cluster_size - 1) & ~((uint64_t)s->cluster_size - 1);
    n = bytes / 8 > QCOW2_MAX_L1_BYTES / 8 ? n : bytes / 8;
    uint64_t off;
    r = qcow2_alloc_clusters(s, bytes >> s->cluster_bits, &off, errp);
    if (r < 0)
        return r;
    uint64_t *nl1 = g_try_new0(uint64_t, bytes / 8);
    if (!nl1)
        return block_set_error(errp, s->img, -ENOMEM, "cannot allocate the L1 table");
    uint8_t *buf = g_malloc0(bytes);
    for (uint32_t i = 0; i < s->l1_size; i++) {
        nl1[i] = s->l1[i];
        qcow2_put64(buf + 8 * (size_t)i, s->l1[i]);
    }
    /* new table's refcounts, then its contents, then the header switch */
    r = qcow2_flush_metadata(s, errp);
    if (r == 0)
        r = qcow2_write_meta(s, off, buf, bytes, errp);
    if (r == 0)
        r = qcow2_sync(s, errp);
    g_free(buf);
    if (r < 0) {
        g_free(nl1);
        return r;
    }
    uint8_t hdr[12];
    qcow2_put32(hdr, (uint32_t)n);
    qcow2_put64(hdr + 4, off);
    r = qcow2_header_commit(s, QCOW2_HDR_L1, hdr, sizeof(hdr), errp);
    if (r < 0) {
        g_free(nl1);
        s->broken = true;
        return r;
    }
    uint64_t old_off = s->h.l1_table_offset;
    uint64_t old_clusters = ((uint64_t)s->l1_size * 8 + s->cluster_size - 1) >> s->cluster_bits;
    g_free(s->l1);
    s->l1 = nl1;
    s->l1_size = (uint32_t)n;
    s->h.l1_size = (uint32_t)n;
    s->h.l1_table_offset = off;
    for (uint64_t i = 0; old_off && i < old_clusters; i++) {
        r = qcow2_update_refcount(s, (old_off >> s->cluster_bits) + i, -1, errp);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Refcount change for the host clusters behind one L2 entry. */
static int entry_refcount(struct qcow2_state *s, uint64_t l2e, int delta, GError **errp)
{
    switch (qcow2_cluster_type(s, l2e)) {
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        return qcow2_update_refcount(s, (l2e & L2E_OFFSET_MASK) >> s->cluster_bits, delta, errp);
    case QCOW2_CLUSTER_COMPRESSED: {
        uint64_t off, len;
        qcow2_compressed_range(s, l2e, &off, &len);
        for (uint64_t c = off >> s->cluster_bits; c <= (off + len - 1) >> s->cluster_bits; c++) {
            int r = qcow2_update_refcount(s, c, delta, errp);
            if (r < 0)
                return r;
        }
        return 0;
    }
    default:
        return 0;
    }
}

int qcow2_tree_refcount(struct qcow2_state *s, const uint64_t *l1, uint32_t l1_size, int delta, GError **errp)
{
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_off;
        int r = qcow2_l1_entry_check(s, l1[i], &l2_off, errp);
        if (r < 0)
            return r;
        if (!l2_off)
            continue;
        for (uint32_t j = 0; j < s->l2_entries; j++) {
            uint64_t e;
            r = read_l2_slot(s, l2_off, j, &e, errp);
            if (r == 0)
                r = qcow2_l2_entry_check(s, e, errp);
            if (r == 0)
                r = entry_refcount(s, e, delta, errp);
            if (r < 0)
                return r;
        }
        r = qcow2_update_refcount(s, l2_off >> s->cluster_bits, delta, errp);
        if (r < 0)
            return r;
    }
    return 0;
}

int qcow2_fix_copied_flags(struct qcow2_state *s, bool fix, int64_t *mismatches, GError **errp)
{
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l2_off, rc;
        int r = qcow2_l1_entry_check(s, s->l1[i], &l2_off, errp);
        if (r < 0)
            return r;
        if (!l2_off)
            continue;
        r = qcow2_get_refcount(s, l2_off >> s->cluster_bits, &rc, errp);
        if (r < 0)
            return r;
        if ((rc == 1) != !!(s->l1[i] & QCOW_OFLAG_COPIED)) {
            if (mismatches)
                (*mismatches)++;
            if (fix) {
                s->l1[i] ^= QCOW_OFLAG_COPIED;
                l1_mark(s, i);
            }
        }
        for (uint32_t j = 0; j < s->l2_entries; j++) {
            uint64_t e;
            r = read_l2_slot(s, l2_off, j, &e, errp);
            if (r < 0)
                return r;
            enum qcow2_cluster_type ty = qcow2_cluster_type(s, e);
            if (ty != QCOW2_CLUSTER_NORMAL && ty != QCOW2_CLUSTER_ZERO_ALLOC)
                continue;
            r = qcow2_get_refcount(s, (e & L2E_OFFSET_MASK) >> s->cluster_bits, &rc, errp);
            if (r < 0)
                return r;
            if ((rc == 1) == !!(e & QCOW_OFLAG_COPIED))
                continue;
            if (mismatches)
                (*mismatches)++;
            if (!fix)
                continue;
            uint8_t *t;
            r = qcow2_cache_get(s, &s->l2_cache, l2_off, &t, errp);
            if (r < 0)
                return r;
            qcow2_put64(t + 8 * (size_t)j, e ^ QCOW_OFLAG_COPIED);
            qcow2_cache_mark_dirty(&s->l2_cache, t);
            qcow2_cache_put(&s->l2_cache, t);
        }
    }
    return 0;
}

int qcow2_zero_clusters(struct qcow2_state *s, uint64_t gc, uint64_t n, enum qcow2_zero_mode mode,
                        GError **errp)
{
    bool has_backing = s->img->backing_file != NULL;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t entry;
        int r = qcow2_get_l2_entry(s, gc + k, &entry, errp);
        if (r < 0)
            return r;
        enum qcow2_cluster_type t = qcow2_cluster_type(s, entry);
        uint64_t want;
        switch (mode) {
        case QCOW2_DEALLOCATE:
            want = 0;
            break;
        case QCOW2_DISCARD:
            /* with a backing file a v3 zero flag keeps old data from showing through; v2 cannot hide it
             * without writing data, and discard is only a hint, so v2 keeps the cluster */
            if (has_backing && s->h.version < 3)
                continue;
            want = has_backing ? QCOW_OFLAG_ZERO : 0;
            break;
        case QCOW2_ZERO_KEEP:
            if ((t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) && (entry & QCOW_OFLAG_COPIED)) {
                want = (entry & L2E_OFFSET_MASK) | QCOW_OFLAG_ZERO | QCOW_OFLAG_COPIED;
                break;
            }
            want = QCOW_OFLAG_ZERO;
            break;
        default:
            want = QCOW_OFLAG_ZERO;
            break;
        }
        if (want == entry || (want == 0 && t == QCOW2_CLUSTER_UNALLOCATED))
            continue;
        uint8_t *table;
        uint32_t idx;
        r = qcow2_get_l2_for_write(s, gc + k, &table, &idx, errp);
        if (r < 0)
            return r;
        qcow2_put64(table + 8 * (size_t)idx, want);
        qcow2_cache_mark_dirty(&s->l2_cache, table);
        qcow2_cache_put(&s->l2_cache, table);
        if ((want & L2E_OFFSET_MASK) == 0) {
            r = qcow2_free_l2_entry_later(s, entry, errp);
            if (r < 0)
                return r;
        }
    }
    return 0;
}
