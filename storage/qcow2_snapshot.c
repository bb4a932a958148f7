/* qcow2 internal snapshots: the snapshot table, and create / list / apply / delete with their refcount
 * updates. Each operation starts from flushed metadata and commits with one header write (the snapshot table
 * pointer or the active L1 contents); refcounts are raised before that commit and lowered after it, so a
 * crash in between leaves leaks only. Resetting COPIED flags after lowering refcounts is not atomic: a crash
 * in that last step can leave OFLAG_COPIED mismatches that `check -r all` repairs (QEMU behaves the same). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "qcow2.h"

#define SN_FIXED 40u
#define SN_EXTRA_WRITTEN 16u

void qcow2_snapshots_free(struct qcow2_state *s)
{
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        g_free(s->snapshots[i].id);
        g_free(s->snapshots[i].name);
        g_free(s->snapshots[i].extra);
    }
    g_free(s->snapshots);
    s->snapshots = NULL;
    s->nb_snapshots = 0;
}

static int bad_table(struct qcow2_state *s, GError **errp, uint32_t i, const char *what)
{
    return block_set_error(errp, s->img, -EINVAL, "invalid snapshot table: snapshot %u: %s", i, what);
}

int qcow2_snapshots_load(struct qcow2_state *s, GError **errp)
{
    uint32_t nb = s->h.nb_snapshots;
    if (!nb)
        return 0;
    s->snapshots = g_new0(struct qcow2_snapshot, nb);
    uint64_t pos = s->h.snapshots_offset, total = 0;
    for (uint32_t i = 0; i < nb; i++) {
        s->nb_snapshots = i + 1;
        struct qcow2_snapshot *sn = &s->snapshots[i];
        uint8_t f[SN_FIXED];
        int r = qcow2_read_file(s, pos, f, sizeof(f), errp);
        if (r < 0)
            return r;
        sn->l1_offset = qcow2_be64(f);
        sn->l1_size = qcow2_be32(f + 8);
        uint16_t id_len = qcow2_be16(f + 12), name_len = qcow2_be16(f + 14);
        sn->date_sec = qcow2_be32(f + 16);
        sn->date_nsec = qcow2_be32(f + 20);
        sn->vm_clock_nsec = qcow2_be64(f + 24);
        sn->vm_state_size = qcow2_be32(f + 32);
        sn->extra_size = qcow2_be32(f + 36);
        if (sn->extra_size > QCOW2_MAX_SNAPSHOT_EXTRA)
            return bad_table(s, errp, i, "too much extra data");
        /* entries start 8-aligned; the last one's padding may lie past the end of the file (QEMU writes
         * the table without it) */
        uint64_t len = SN_FIXED + sn->extra_size + id_len + name_len;
        total += (len + 7) & ~7ull;
        if (total > QCOW2_MAX_SNAPSHOT_TABLE_BYTES || pos + len > s->file_end)
            return bad_table(s, errp, i, "table too large or outside the image file");
        uint8_t *rest = g_malloc(len - SN_FIXED + 1);
        r = qcow2_read_file(s, pos + SN_FIXED, rest, len - SN_FIXED, errp);
        if (r < 0) {
            g_free(rest);
            return r;
        }
        sn->extra = g_memdup2(rest, sn->extra_size);
        sn->id = g_strndup((const char *)rest + sn->extra_size, id_len);
        sn->name = g_strndup((const char *)rest + sn->extra_size + id_len, name_len);
        g_free(rest);
        if (sn->extra_size >= 8)
            sn->vm_state_size = qcow2_be64(sn->extra);
        sn->disk_size = sn->extra_size >= 16 ? qcow2_be64(sn->extra + 8) : s->h.size;
        if (sn->l1_offset & (s->cluster_size - 1))
            return bad_table(s, errp, i, "L1 table offset not cluster aligned");
        if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES)
            return bad_table(s, errp, i, "L1 table too large");
        if (sn->l1_size && (sn->l1_offset == 0 || sn->l1_offset + (uint64_t)sn->l1_size * 8 > s->file_end))
            return bad_table(s, errp, i, "L1 table outside the image file");
        pos += (len + 7) & ~7ull;
    }
    return 0;
}

static uint8_t *serialize(struct qcow2_state *s, const struct qcow2_snapshot *sn, uint32_t n, uint64_t *len)
{
    (void)s;
    GByteArray *a = g_byte_array_new();
    for (uint32_t i = 0; i < n; i++) {
        uint8_t f[SN_FIXED] = {0};
        size_t id_len = strlen(sn[i].id), name_len = strlen(sn[i].name);
        qcow2_put64(f, sn[i].l1_offset);
        qcow2_put32(f + 8, sn[i].l1_size);
        qcow2_put16(f + 12, (uint16_t)id_len);
        qcow2_put16(f + 14, (uint16_t)name_len);
        qcow2_put32(f + 16, sn[i].date_sec);
        qcow2_put32(f + 20, sn[i].date_nsec);
        qcow2_put64(f + 24, sn[i].vm_clock_nsec);
        qcow2_put32(f + 32, sn[i].vm_state_size > UINT32_MAX ? 0 : (uint32_t)sn[i].vm_state_size);
        qcow2_put32(f + 36, sn[i].extra_size);
        g_byte_array_append(a, f, SN_FIXED);
        g_byte_array_append(a, sn[i].extra, sn[i].extra_size);
        g_byte_array_append(a, (const uint8_t *)sn[i].id, (guint)id_len);
        g_byte_array_append(a, (const uint8_t *)sn[i].name, (guint)name_len);
        static const uint8_t pad[8];
        if (a->len % 8)
            g_byte_array_append(a, pad, 8 - a->len % 8);
    }
    *len = a->len;
    return g_byte_array_free(a, FALSE);
}

/* Writes a new snapshot table holding SN[0..n), switches the header to it, and frees the old one. On success
 * the array is owned by the state. */
static int write_table(struct qcow2_state *s, struct qcow2_snapshot *sn, uint32_t n, GError **errp)
{
    uint64_t len, off = 0;
    uint8_t *buf = serialize(s, sn, n, &len);
    int r = 0;
    if (len > QCOW2_MAX_SNAPSHOT_TABLE_BYTES)
        r = block_set_error(errp, s->img, -EFBIG, "snapshot table would exceed %u bytes",
                            QCOW2_MAX_SNAPSHOT_TABLE_BYTES);
    uint64_t clusters = (len + s->cluster_size - 1) >> s->cluster_bits;
    if (r == 0 && n)
        r = qcow2_alloc_clusters(s, clusters, &off, errp);
    if (r == 0 && n)
        r = qcow2_write_meta(s, off, buf, len, errp);
    g_free(buf);
    if (r == 0)
        r = qcow2_flush_metadata(s, errp);
    if (r < 0)
        return r;
    uint8_t hdr[12];
    qcow2_put32(hdr, n);
    qcow2_put64(hdr + 4, off);
    r = qcow2_header_commit(s, QCOW2_HDR_SNAPSHOTS, hdr, sizeof(hdr), errp);
    if (r < 0) {
        s->broken = true;
        return r;
    }
    uint64_t old_off = s->h.snapshots_offset, old_len = 0;
    if (s->nb_snapshots) {
        uint8_t *ob = serialize(s, s->snapshots, s->nb_snapshots, &old_len);
        g_free(ob);
    }
    s->h.nb_snapshots = n;
    s->h.snapshots_offset = off;
    for (uint64_t c = 0; old_off && c < (old_len + s->cluster_size - 1) >> s->cluster_bits; c++) {
        r = qcow2_update_refcount(s, (old_off >> s->cluster_bits) + c, -1, errp);
        if (r < 0)
            return r;
    }
    return 0;
}

static int find_snapshot(struct qcow2_state *s, const char *name_or_id)
{
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if (strcmp(s->snapshots[i].id, name_or_id) == 0)
            return (int)i;
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if (strcmp(s->snapshots[i].name, name_or_id) == 0)
            return (int)i;
    }
    return -1;
}

/* Index of the snapshot NAME_OR_ID, the metadata flushed before its table entry changes; or -errno. */
static int find_for_change(struct block_image *img, const char *name_or_id, GError **errp)
{
    struct qcow2_state *s = img->opaque;
    int idx = find_snapshot(s, name_or_id);
    if (idx < 0)
        return block_set_error(errp, img, -ENOENT, "snapshot '%s' not found", name_or_id);
    int r = qcow2_flush_metadata(s, errp);
    return r < 0 ? r : idx;
}

static uint64_t *read_l1(struct qcow2_state *s, const struct qcow2_snapshot *sn, GError **errp)
{
    uint64_t *l1;
    qcow2_read_table(s, sn->l1_offset, sn->l1_size, "a snapshot L1 table", &l1, errp);
    return l1;
}

static struct qcow2_snapshot copy_snapshot(const struct qcow2_snapshot *sn)
{
    struct qcow2_snapshot c = *sn;
    c.id = g_strdup(sn->id);
    c.name = g_strdup(sn->name);
    c.extra = g_memdup2(sn->extra, sn->extra_size);
    return c;
}

/* Installs NEW (n entries) as the snapshot list after write_table succeeded. */
static void replace_list(struct qcow2_state *s, struct qcow2_snapshot *nw, uint32_t n)
{
    qcow2_snapshots_free(s);
    s->snapshots = nw;
    s->nb_snapshots = n;
}

static void free_snapshot(struct qcow2_snapshot *sn)
{
    g_free(sn->id);
    g_free(sn->name);
    g_free(sn->extra);
}

static void free_list(struct qcow2_snapshot *l, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        free_snapshot(&l[i]);
    g_free(l);
}

int qcow2_snapshot_create(struct block_image *img, const char *name, GError **errp)
{
    struct qcow2_state *s = img->opaque;
    if (!name || !*name || strlen(name) > 1024)
        return block_set_error(errp, img, -EINVAL, "invalid snapshot name");
    if (find_snapshot(s, name) >= 0)
        return block_set_error(errp, img, -EEXIST, "a snapshot named '%s' already exists", name);
    if (s->nb_snapshots >= QCOW2_MAX_SNAPSHOTS)
        return block_set_error(errp, img, -EFBIG, "too many snapshots");
    int r = qcow2_flush_metadata(s, errp);
    if (r < 0)
        return r;
    uint64_t max_id = 0;
    for (uint32_t i = 0; i < s->nb_snapshots; i++)
        max_id = MAX(max_id, g_ascii_strtoull(s->snapshots[i].id, NULL, 10));
    /* copy of the active L1 table */
    uint64_t l1_bytes = (uint64_t)s->l1_size * 8, l1_off = 0;
    if (l1_bytes) {
        r = qcow2_alloc_clusters(s, (l1_bytes + s->cluster_size - 1) >> s->cluster_bits, &l1_off, errp);
        if (r < 0)
            return r;
        uint8_t *buf = g_malloc(l1_bytes);
        for (uint32_t i = 0; i < s->l1_size; i++)
            qcow2_put64(buf + 8 * (size_t)i, s->l1[i] & ~QCOW_OFLAG_COPIED);
        r = qcow2_write_meta(s, l1_off, buf, l1_bytes, errp);
        g_free(buf);
        if (r < 0)
            return r;
    }
    /* every cluster of the active tree gains a reference; COPIED flags go */
    r = qcow2_tree_refcount(s, s->l1, s->l1_size, 1, errp);
    if (r == 0)
        r = qcow2_fix_copied_flags(s, true, NULL, errp);
    if (r == 0)
        r = qcow2_flush_metadata(s, errp);
    if (r < 0)
        return r;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint32_t n = s->nb_snapshots + 1;
    struct qcow2_snapshot *nw = g_new0(struct qcow2_snapshot, n);
    for (uint32_t i = 0; i < s->nb_snapshots; i++)
        nw[i] = copy_snapshot(&s->snapshots[i]);
    struct qcow2_snapshot *sn = &nw[n - 1];
    sn->l1_offset = l1_off;
    sn->l1_size = s->l1_size;
    sn->id = g_strdup_printf("%" PRIu64, max_id + 1);
    sn->name = g_strdup(name);
    sn->date_sec = (uint32_t)now.tv_sec;
    sn->date_nsec = (uint32_t)now.tv_nsec;
    sn->disk_size = s->h.size;
    sn->extra_size = SN_EXTRA_WRITTEN;
    sn->extra = g_malloc0(SN_EXTRA_WRITTEN);
    qcow2_put64(sn->extra + 8, s->h.size);
    r = write_table(s, nw, n, errp);
    if (r < 0) {
        free_list(nw, n);
        return r;
    }
    replace_list(s, nw, n);
    return qcow2_flush_metadata(s, errp);
}

int qcow2_snapshot_list(struct block_image *img, struct block_snapshot_info **out, size_t *n, GError **errp)
{
    (void)errp;
    struct qcow2_state *s = img->opaque;
    *n = s->nb_snapshots;
    *out = g_new0(struct block_snapshot_info, MAX(s->nb_snapshots, 1u));
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        (*out)[i] = (struct block_snapshot_info){
            .id = g_strdup(sn->id),
            .name = g_strdup(sn->name),
            .vm_state_size = sn->vm_state_size,
            .date_sec = sn->date_sec,
            .date_nsec = sn->date_nsec,
            .vm_clock_nsec = sn->vm_clock_nsec,
            .disk_size = sn->disk_size,
            .l1_size = sn->l1_size,
            .icount = sn->extra_size >= 24 ? (int64_t)qcow2_be64(sn->extra + 16) : -1,
        };
    }
    return 0;
}

int qcow2_snapshot_delete(struct block_image *img, const char *name_or_id, GError **errp)
{
    struct qcow2_state *s = img->opaque;
    int idx = find_for_change(img, name_or_id, errp);
    if (idx < 0)
        return idx;
    struct qcow2_snapshot gone = copy_snapshot(&s->snapshots[idx]);
    uint64_t *l1 = read_l1(s, &gone, errp);
    if (!l1) {
        free_snapshot(&gone);
        return -EIO;
    }
    uint32_t n = s->nb_snapshots - 1;
    struct qcow2_snapshot *nw = g_new0(struct qcow2_snapshot, MAX(n, 1u));
    for (uint32_t i = 0, j = 0; i < s->nb_snapshots; i++) {
        if ((int)i != idx)
            nw[j++] = copy_snapshot(&s->snapshots[i]);
    }
    int r = write_table(s, nw, n, errp);
    if (r < 0) {
        free_list(nw, n);
    } else {
        replace_list(s, nw, n);
        /* the snapshot is gone from disk: drop its references */
        r = qcow2_tree_refcount(s, l1, gone.l1_size, -1, errp);
        for (uint64_t c = 0; r == 0 && gone.l1_size &&
                             c < ((uint64_t)gone.l1_size * 8 + s->cluster_size - 1) >> s->cluster_bits;
             c++)
            r = qcow2_update_refcount(s, (gone.l1_offset >> s->cluster_bits) + c, -1, errp);
        if (r == 0)
            r = qcow2_fix_copied_flags(s, true, NULL, errp);
        if (r == 0)
            r = qcow2_flush_metadata(s, errp);
    }
    g_free(l1);
    free_snapshot(&gone);
    return r;
}

int qcow2_snapshot_apply(struct block_image *img, const char *name_or_id, GError **errp)
{
    struct qcow2_state *s = img->opaque;
    int idx = find_for_change(img, name_or_id, errp);
    if (idx < 0)
        return idx;
    struct qcow2_snapshot *sn = &s->snapshots[idx];
    uint64_t cover = (uint64_t)s->cluster_size * s->l2_entries;
    if ((sn->disk_size + cover - 1) / cover > sn->l1_size)
        return block_set_error(errp, img, -EINVAL,
                               "snapshot '%s' has an L1 table too small for its disk size", name_or_id);
    uint64_t *sl1 = read_l1(s, sn, errp);
    if (!sl1)
        return -EIO;
    uint32_t sl1_size = sn->l1_size;
    uint64_t disk_size = sn->disk_size;
    int r = qcow2_grow_l1(s, sl1_size, errp);
    /* the snapshot's tree gains the active reference before the active L1 points at it */
    if (r == 0)
        r = qcow2_tree_refcount(s, sl1, sl1_size, 1, errp);
    if (r == 0)
        r = qcow2_flush_metadata(s, errp);
    uint64_t *old = r == 0 ? g_memdup2(s->l1, (size_t)s->l1_size * 8) : NULL;
    uint32_t old_size = s->l1_size;
    if (r == 0) {
        for (uint32_t i = 0; i < s->l1_size; i++)
            s->l1[i] = i < sl1_size ? sl1[i] & ~QCOW_OFLAG_COPIED : 0;
        s->l1_dirty_lo = 0;
        s->l1_dirty_hi = s->l1_size;
        s->dcmp_entry = 0;
        r = qcow2_flush_metadata(s, errp); /* commit: the active L1 now is the snapshot's */
    }
    if (r == 0 && disk_size != s->h.size) {
        r = qcow2_header_commit64(s, QCOW2_HDR_SIZE, disk_size, errp);
        if (r == 0)
            s->h.size = disk_size;
    }
    if (r == 0)
        r = qcow2_tree_refcount(s, old, old_size, -1, errp);
    if (r == 0)
        r = qcow2_fix_copied_flags(s, true, NULL, errp);
    if (r == 0)
        r = qcow2_flush_metadata(s, errp);
    g_free(old);
    g_free(sl1);
    return r;
}
