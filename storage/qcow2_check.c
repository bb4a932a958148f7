/* qcow2 consistency check like `qemu-img check`: recount every reference (header, L1/L2 trees of the active
 * state and of each snapshot, snapshot table, refcount structures), compare with the stored refcounts and
 * COPIED flags, and repair leaks in place or rebuild the whole refcount structure. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "qcow2.h"

struct refs {
    uint32_t *c;
    uint64_t n; /* clusters counted so far (array length) */
};

struct walk {
    struct qcow2_state *s;
    struct refs refs;
    struct block_check_result *res;
    block_check_report_fn report;
    void *opaque;
    uint8_t *l2; /* scratch L2 table */
};

static void say(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct walk *w, const char *fmt, ...)
{
    if (!w->report)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    w->report(w->opaque, line);
    g_free(line);
}

static int refs_grow(struct refs *r, uint64_t n)
{
    if (n <= r->n)
        return 0;
    if (n > QCOW2_MAX_CHECK_CLUSTERS)
        return -EFBIG;
    uint64_t cap = MAX(n, r->n * 2);
    cap = MIN(cap, QCOW2_MAX_CHECK_CLUSTERS);
    uint32_t *c = g_try_renew(uint32_t, r->c, cap);
    if (!c)
        return -ENOMEM;
    memset(c + r->n, 0, (cap - r->n) * sizeof(uint32_t));
    r->c = c;
    r->n = cap;
    return 0;
}

/* One more reference to every cluster of [off, off+len). */
static void inc(struct walk *w, uint64_t off, uint64_t len, const char *what)
{
    if (len == 0)
        return;
    uint64_t first = off >> w->s->cluster_bits, last = (off + len - 1) >> w->s->cluster_bits;
    uint64_t file_clusters = (w->s->file_end + w->s->cluster_size - 1) >> w->s->cluster_bits;
    /* a reference past the end of the file is corrupt; counting it would make the check (and a rebuild)
     * cover every cluster up to it */
    if (off + len >= off && last >= file_clusters) {
        say(w, "ERROR %s at 0x%" PRIx64 " is beyond the end of the image file", what, off);
        w->res->corruptions++;
        return;
    }
    if (off + len < off || refs_grow(&w->refs, last + 1) < 0) {
        say(w, "ERROR %s at 0x%" PRIx64 " lies beyond what can be checked", what, off);
        w->res->corruptions++;
        return;
    }
    for (uint64_t c = first; c <= last; c++) {
        if (w->refs.c[c] < UINT32_MAX)
            w->refs.c[c]++;
    }
}

static void walk_l2(struct walk *w, uint64_t l2_off, bool active, uint64_t *prev_host)
{
    struct qcow2_state *s = w->s;
    if (block_file_pread(&s->img->file, l2_off, w->l2, s->cluster_size) < 0) {
        say(w, "ERROR cannot read L2 table at 0x%" PRIx64, l2_off);
        w->res->check_errors++;
        return;
    }
    for (uint32_t j = 0; j < s->l2_entries; j++) {
        uint64_t e = qcow2_be64(w->l2 + 8 * (size_t)j);
        switch (qcow2_cluster_type(s, e)) {
        case QCOW2_CLUSTER_COMPRESSED: {
            uint64_t off, len;
            qcow2_compressed_range(s, e, &off, &len);
            if (e & QCOW_OFLAG_COPIED) {
                say(w, "ERROR compressed cluster entry 0x%" PRIx64 " has the COPIED flag", e);
                w->res->corruptions++;
            }
            inc(w, off, len, "compressed cluster");
            if (active) {
                w->res->allocated_clusters++;
                w->res->compressed_clusters++;
            }
            break;
        }
        case QCOW2_CLUSTER_NORMAL:
        case QCOW2_CLUSTER_ZERO_ALLOC: {
            uint64_t off = e & L2E_OFFSET_MASK;
            if ((e & L2E_STD_RESERVED_MASK) || (off & (s->cluster_size - 1))) {
                say(w, "ERROR offset=%" PRIx64 ": cluster is not properly aligned; L2 entry corrupted", off);
                w->res->corruptions++;
                break;
            }
            inc(w, off, s->cluster_size, "data cluster");
            if (active) {
                w->res->allocated_clusters++;
                if (*prev_host && off != *prev_host + s->cluster_size)
                    w->res->fragmented_clusters++;
                *prev_host = off;
            }
            break;
        }
        default:
            if (e & L2E_STD_RESERVED_MASK) {
                say(w, "ERROR L2 entry 0x%" PRIx64 " has reserved bits set", e);
                w->res->corruptions++;
            }
            break;
        }
    }
}

static void walk_l1(struct walk *w, const uint64_t *l1, uint32_t n, bool active)
{
    struct qcow2_state *s = w->s;
    uint64_t prev_host = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t e = l1[i], off = e & L1E_OFFSET_MASK;
        if (e & L1E_RESERVED_MASK) {
            say(w, "ERROR L1 entry %u (0x%" PRIx64 ") has reserved bits set", i, e);
            w->res->corruptions++;
            continue;
        }
        if (!off)
            continue;
        if (off & (s->cluster_size - 1)) {
            say(w, "ERROR L2 table offset 0x%" PRIx64 " is not cluster aligned; L1 entry corrupted", off);
            w->res->corruptions++;
            continue;
        }
        if (off + s->cluster_size > s->file_end) {
            say(w, "ERROR L2 table offset 0x%" PRIx64 " is beyond the end of the image file", off);
            w->res->corruptions++;
            continue;
        }
        inc(w, off, s->cluster_size, "L2 table");
        walk_l2(w, off, active, &prev_host);
    }
}

/* Counts references. WITH_REFCOUNT_META: also the refcount table and blocks (not when rebuilding them). */
static void count_refs(struct walk *w, bool with_refcount_meta)
{
    struct qcow2_state *s = w->s;
    inc(w, 0, s->cluster_size, "header");
    inc(w, s->h.l1_table_offset, (uint64_t)s->l1_size * 8, "L1 table");
    walk_l1(w, s->l1, s->l1_size, true);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        inc(w, sn->l1_offset, (uint64_t)sn->l1_size * 8, "snapshot L1 table");
        uint64_t *l1;
        if (qcow2_read_table(s, sn->l1_offset, sn->l1_size, "a snapshot L1 table", &l1, NULL) < 0) {
            say(w, "ERROR cannot read the L1 table of snapshot %s", sn->id);
            w->res->check_errors++;
            continue;
        }
        walk_l1(w, l1, sn->l1_size, false);
        g_free(l1);
    }
    if (s->nb_snapshots) {
        uint64_t len = 0;
        for (uint32_t i = 0; i < s->nb_snapshots; i++) {
            const struct qcow2_snapshot *sn = &s->snapshots[i];
            len += (40 + sn->extra_size + strlen(sn->id) + strlen(sn->name) + 7) & ~7ull;
        }
        inc(w, s->h.snapshots_offset, len, "snapshot table");
    }
    if (!with_refcount_meta)
        return;
    inc(w, s->h.refcount_table_offset, (uint64_t)s->h.refcount_table_clusters * s->cluster_size,
        "refcount table");
    for (uint32_t i = 0; i < s->reftable_size; i++) {
        uint64_t e = s->reftable[i], off = e & REFT_OFFSET_MASK;
        if (!off)
            continue;
        if ((e & REFT_RESERVED_MASK) || (off & (s->cluster_size - 1))) {
            say(w, "ERROR refcount block %u is not cluster aligned; refcount table entry corrupted", i);
            w->res->corruptions++;
            continue;
        }
        if (off + s->cluster_size > s->file_end) {
            say(w, "ERROR refcount block %u is outside the image", i);
            w->res->corruptions++;
            continue;
        }
        inc(w, off, s->cluster_size, "refcount block");
    }
}

/* Compares stored refcounts with the counted ones; with FIX_LEAKS lowers leaked refcounts. */
static int compare(struct walk *w, bool fix_leaks, int64_t *refcount_corruptions, GError **errp)
{
    struct qcow2_state *s = w->s;
    uint64_t n = MAX(w->refs.n, (s->file_end + s->cluster_size - 1) >> s->cluster_bits);
    n = MAX(n, (uint64_t)s->reftable_size << s->rb_bits);
    uint64_t end = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t ti = i >> s->rb_bits;
        if (ti >= s->reftable_size)
            break;
        if (!(s->reftable[ti] & REFT_OFFSET_MASK) || (s->reftable[ti] & REFT_RESERVED_MASK) ||
            (s->reftable[ti] & (s->cluster_size - 1)) || s->reftable[ti] + s->cluster_size > s->file_end) {
            /* no usable block: every refcount it would hold is 0 */
            for (uint64_t j = i; j < ((ti + 1) << s->rb_bits) && j < w->refs.n; j++) {
                if (w->refs.c[j]) {
                    say(w, "ERROR cluster %" PRIu64 " refcount=0 reference=%u", j, w->refs.c[j]);
                    w->res->corruptions++;
                    (*refcount_corruptions)++;
                    end = j + 1;
                }
            }
            i = ((ti + 1) << s->rb_bits) - 1;
            continue;
        }
        uint64_t stored;
        GError *err = NULL;
        if (qcow2_get_refcount(s, i, &stored, &err) < 0) {
            say(w, "ERROR cannot get the refcount of cluster %" PRIu64 ": %s", i, err ? err->message : "?");
            g_clear_error(&err);
            w->res->check_errors++;
            continue;
        }
        uint64_t ref = i < w->refs.n ? w->refs.c[i] : 0;
        if (ref)
            end = i + 1;
        if (stored == ref)
            continue;
        if (stored > ref) {
            say(w, "%s cluster %" PRIu64 " refcount=%" PRIu64 " reference=%" PRIu64,
                fix_leaks ? "Repairing" : "Leaked", i, stored, ref);
            if (fix_leaks) {
                int r = qcow2_update_refcount(s, i, -(int64_t)(stored - ref), errp);
                if (r < 0)
                    return r;
                w->res->leaks_fixed++;
            } else {
                w->res->leaks++;
            }
        } else {
            say(w, "ERROR cluster %" PRIu64 " refcount=%" PRIu64 " reference=%" PRIu64, i, stored, ref);
            w->res->corruptions++;
            (*refcount_corruptions)++;
        }
    }
    w->res->image_end_offset = (int64_t)(end << s->cluster_bits);
    return 0;
}

static void walk_init(struct walk *w, struct qcow2_state *s, struct block_check_result *res,
                      block_check_report_fn report, void *opaque)
{
    memset(w, 0, sizeof(*w));
    w->s = s;
    w->res = res;
    w->report = report;
    w->opaque = opaque;
    w->l2 = g_malloc(s->cluster_size);
}

static void walk_free(struct walk *w)
{
    g_free(w->refs.c);
    g_free(w->l2);
}

int qcow2_rebuild_refcounts(struct qcow2_state *s, GError **errp)
{
    struct block_check_result res = {0};
    struct walk w;
    walk_init(&w, s, &res, NULL, NULL);
    count_refs(&w, false);
    uint64_t cs = s->cluster_size;
    uint64_t base = MAX(w.refs.n, (s->file_end + cs - 1) >> s->cluster_bits);
    uint64_t nb = 1, tc = 1;
    for (int i = 0; i < 64; i++) {
        uint64_t total = base + nb + tc;
        uint64_t nb2 = (total + s->rb_entries - 1) >> s->rb_bits;
        uint64_t tc2 = (nb2 * 8 + cs - 1) >> s->cluster_bits;
        if (nb2 == nb && tc2 == tc)
            break;
        nb = nb2;
        tc = tc2;
    }
    int r = 0;
    if (tc * cs > QCOW2_MAX_REFTABLE_BYTES || refs_grow(&w.refs, base + nb + tc) < 0) {
        r = block_set_error(errp, s->img, -EFBIG, "image too large to rebuild its refcounts");
        goto out;
    }
    for (uint64_t c = base; c < base + nb + tc; c++)
        w.refs.c[c] = 1;
    uint8_t *blk = g_malloc(cs);
    uint64_t *table = g_new0(uint64_t, tc * cs / 8);
    for (uint64_t k = 0; k < nb && r == 0; k++) {
        memset(blk, 0, cs);
        for (uint64_t i = 0; i < s->rb_entries; i++) {
            uint64_t c = (k << s->rb_bits) + i;
            uint64_t v = c < w.refs.n ? w.refs.c[c] : 0;
            if (v > s->refcount_max) {
                r = block_set_error(errp, s->img, -ERANGE,
                                    "cluster %" PRIu64 " has more references (%" PRIu64
                                    ") than %u-bit refcounts can hold",
                                    c, v, s->refcount_bits);
                break;
            }
            qcow2_set_rc_entry(s, blk, (uint32_t)i, v);
        }
        qcow2_put64(&table[k], (base + k) * cs);
        if (r == 0) {
            r = block_file_pwrite(&s->img->file, (base + k) * cs, blk, cs);
            if (r < 0)
                block_set_error(errp, s->img, r, "cannot write a refcount block: %s", g_strerror(-r));
        }
    }
    g_free(blk);
    if (r == 0)
        r = qcow2_sync(s, errp);
    if (r == 0) {
        r = block_file_pwrite(&s->img->file, (base + nb) * cs, table, tc * cs);
        if (r < 0)
            block_set_error(errp, s->img, r, "cannot write the refcount table: %s", g_strerror(-r));
    }
    if (r == 0)
        r = qcow2_sync(s, errp);
    if (r == 0) {
        uint8_t hdr[12];
        qcow2_put64(hdr, (base + nb) * cs);
        qcow2_put32(hdr + 8, (uint32_t)tc);
        r = block_file_pwrite(&s->img->file, QCOW2_HDR_REFTABLE, hdr, sizeof(hdr));
        if (r < 0)
            block_set_error(errp, s->img, r, "cannot write the header: %s", g_strerror(-r));
    }
    if (r == 0)
        r = qcow2_sync(s, errp);
    if (r == 0) {
        g_free(s->reftable);
        s->reftable = table;
        table = NULL;
        s->reftable_size = (uint32_t)(tc * cs / 8);
        for (uint32_t i = 0; i < s->reftable_size; i++)
            s->reftable[i] = qcow2_be64(&s->reftable[i]);
        s->reftable_dirty_lo = UINT32_MAX;
        s->reftable_dirty_hi = 0;
        s->h.refcount_table_offset = (base + nb) * cs;
        s->h.refcount_table_clusters = (uint32_t)tc;
        qcow2_cache_clear(&s->rb_cache);
        s->free_hint = 0;
        s->cmp_next = 0;
        s->file_end = MAX(s->file_end, (base + nb + tc) * cs);
    } else {
        s->broken = true;
    }
    g_free(table);
out:
    walk_free(&w);
    return r;
}

/* One counting pass; optionally repairs leaks. */
static int check_pass(struct qcow2_state *s, bool fix_leaks, struct block_check_result *res,
                      block_check_report_fn report, void *opaque, int64_t *rc_corruptions, int64_t *copied,
                      GError **errp)
{
    struct walk w;
    walk_init(&w, s, res, report, opaque);
    count_refs(&w, true);
    int r = compare(&w, fix_leaks, rc_corruptions, errp);
    walk_free(&w);
    if (r < 0)
        return r;
    r = qcow2_fix_copied_flags(s, false, copied, errp);
    if (r < 0)
        return r;
    if (*copied) {
        if (report)
            report(opaque, "ERROR OFLAG_COPIED flags do not match the refcounts");
        res->corruptions += *copied;
    }
    res->total_clusters = (int64_t)((s->h.size + s->cluster_size - 1) >> s->cluster_bits);
    return 0;
}

int qcow2_check(struct block_image *img, unsigned fix, struct block_check_result *res,
                block_check_report_fn report, void *opaque, GError **errp)
{
    struct qcow2_state *s = img->opaque;
    bool was_corrupt = s->corrupt;
    int r = 0;
    if (s->writable && !s->corrupt && !s->broken) {
        r = qcow2_flush_metadata(s, errp);
        if (r < 0)
            return r;
    }
    int64_t rc_bad = 0, copied = 0;
    if (!fix)
        return check_pass(s, false, res, report, opaque, &rc_bad, &copied, errp);
    if (!s->writable)
        return block_set_error(errp, img, -EROFS, "repair needs the image opened for writing");
    /* repairs run even on an image marked corrupt: that is how it regains consistency */
    s->corrupt = false;
    struct block_check_result first = {0};
    r = check_pass(s, false, &first, NULL, NULL, &rc_bad, &copied, errp);
    if (r == 0 && (fix & BLOCK_CHECK_FIX_ERRORS) &&
        (rc_bad || (fix & BLOCK_CHECK_FIX_LEAKS && first.leaks))) {
        r = qcow2_rebuild_refcounts(s, errp);
        if (r == 0) {
            res->corruptions_fixed += rc_bad;
            res->leaks_fixed += first.leaks;
        }
    } else if (r == 0 && (fix & BLOCK_CHECK_FIX_LEAKS) && first.leaks) {
        struct block_check_result tmp = {0};
        int64_t a = 0, b = 0;
        r = check_pass(s, true, &tmp, report, opaque, &a, &b, errp);
        res->leaks_fixed += tmp.leaks_fixed;
    }
    if (r == 0 && (fix & BLOCK_CHECK_FIX_ERRORS) && copied) {
        r = qcow2_fix_copied_flags(s, true, NULL, errp);
        if (r == 0)
            res->corruptions_fixed += copied;
    }
    if (r == 0)
        r = qcow2_flush_metadata(s, errp);
    if (r < 0)
        return r;
    /* what is left after repairs */
    rc_bad = copied = 0;
    int64_t cf = res->corruptions_fixed, lf = res->leaks_fixed;
    memset(res, 0, sizeof(*res));
    r = check_pass(s, false, res, report, opaque, &rc_bad, &copied, errp);
    res->corruptions_fixed = cf;
    res->leaks_fixed = lf;
    if (r == 0 && res->corruptions == 0 && (was_corrupt || (s->h.incompatible & QCOW2_INCOMPAT_CORRUPT)))
        r = qcow2_set_incompat(s, QCOW2_INCOMPAT_CORRUPT, false, errp);
    else if (r == 0 && res->corruptions)
        s->corrupt = was_corrupt;
    return r;
}
