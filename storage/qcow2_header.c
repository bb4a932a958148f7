/* qcow2 header: parsing and validating every field and extension before anything is written, in-place field
 * updates, and image creation. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "qcow2.h"

#define FEATURE_NAME_LEN 46
#define FEATURE_ENTRY_LEN 48

static const struct {
    int type, bit;
    const char *name;
} known_features[] = {
    {0, 0, "dirty bit"},        {0, 1, "corrupt bit"},         {0, 2, "external data file"},
    {0, 3, "compression type"}, {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
    {2, 0, "bitmaps"},          {2, 1, "raw external data"},
};

const char *qcow2_feature_name(struct qcow2_state *s, int type, int bit)
{
    if (type >= 0 && type < 3 && bit >= 0 && bit < 64 && s->feature_names[type][bit])
        return s->feature_names[type][bit];
    for (size_t i = 0; i < G_N_ELEMENTS(known_features); i++) {
        if (known_features[i].type == type && known_features[i].bit == bit)
            return known_features[i].name;
    }
    return NULL;
}

static int invalid(struct qcow2_state *s, GError **errp, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int invalid(struct qcow2_state *s, GError **errp, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    int r = block_set_error(errp, s->img, err, "%s", msg);
    g_free(msg);
    return r;
}

static void parse_fields(struct qcow2_header *h, const uint8_t *b)
{
    memset(h, 0, sizeof(*h));
    h->version = qcow2_be32(b + 4);
    h->backing_file_offset = qcow2_be64(b + 8);
    h->backing_file_size = qcow2_be32(b + 16);
    h->cluster_bits = qcow2_be32(b + 20);
    h->size = qcow2_be64(b + 24);
    h->crypt_method = qcow2_be32(b + 32);
    h->l1_size = qcow2_be32(b + 36);
    h->l1_table_offset = qcow2_be64(b + 40);
    h->refcount_table_offset = qcow2_be64(b + 48);
    h->refcount_table_clusters = qcow2_be32(b + 56);
    h->nb_snapshots = qcow2_be32(b + 60);
    h->snapshots_offset = qcow2_be64(b + 64);
    if (h->version >= 3) {
        h->incompatible = qcow2_be64(b + 72);
        h->compatible = qcow2_be64(b + 80);
        h->autoclear = qcow2_be64(b + 88);
        h->refcount_order = qcow2_be32(b + 96);
        h->header_length = qcow2_be32(b + 100);
    } else {
        h->refcount_order = 4;
        h->header_length = QCOW2_V2_HEADER_LEN;
    }
}

/* Names every unsupported incompatible feature bit in one message. */
static int check_incompatible(struct qcow2_state *s, GError **errp)
{
    uint64_t bad =
        s->h.incompatible & (~QCOW2_INCOMPAT_KNOWN | QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_EXTL2);
    if (!bad)
        return 0;
    GString *list = g_string_new(NULL);
    for (int bit = 0; bit < 64; bit++) {
        if (!(bad & (1ull << bit)))
            continue;
        const char *name = qcow2_feature_name(s, 0, bit);
        if (list->len)
            g_string_append(list, ", ");
        if (name)
            g_string_append_printf(list, "%s (incompatible bit %d)", name, bit);
        else
            g_string_append_printf(list, "unknown incompatible feature bit %d", bit);
    }
    int r = invalid(s, errp, -ENOTSUP, "unsupported qcow2 feature: %s", list->str);
    g_string_free(list, TRUE);
    return r;
}

/* Header extensions between the header and the backing file name (or the end of the first cluster). */
static int parse_extensions(struct qcow2_state *s, const uint8_t *hc, size_t hc_len, GError **errp)
{
    size_t pos = s->h.header_length;
    size_t end = s->h.backing_file_offset ? (size_t)s->h.backing_file_offset : hc_len;
    if (end > hc_len)
        end = hc_len;
    bool seen_fmt = false;
    while (pos + 8 <= end) {
        uint32_t type = qcow2_be32(hc + pos), len = qcow2_be32(hc + pos + 4);
        pos += 8;
        if (type == QCOW2_EXT_END)
            return 0;
        if (len > end - pos)
            return invalid(s, errp, -EINVAL, "header extension 0x%08x (%u bytes) runs past the header area",
                           type, len);
        const uint8_t *d = hc + pos;
        switch (type) {
        case QCOW2_EXT_BACKING_FORMAT:
            if (len == 0 || len > QCOW2_MAX_FORMAT_NAME || seen_fmt)
                return invalid(s, errp, -EINVAL, "invalid backing format extension (%u bytes)", len);
            if (memchr(d, 0, len))
                return invalid(s, errp, -EINVAL, "backing format name contains a NUL byte");
            g_free(s->img->backing_format);
            s->img->backing_format = g_strndup((const char *)d, len);
            seen_fmt = true;
            break;
        case QCOW2_EXT_FEATURE_TABLE:
            for (uint32_t i = 0; i + FEATURE_ENTRY_LEN <= len; i += FEATURE_ENTRY_LEN) {
                uint8_t ty = d[i], bit = d[i + 1];
                if (ty > 2 || bit > 63)
                    continue;
                g_free(s->feature_names[ty][bit]);
                s->feature_names[ty][bit] = g_strndup((const char *)d + i + 2, FEATURE_NAME_LEN);
            }
            break;
        case QCOW2_EXT_CRYPTO:
            return invalid(s, errp, -ENOTSUP, "unsupported qcow2 feature: encryption header");
        case QCOW2_EXT_DATA_FILE:
            return invalid(s, errp, -ENOTSUP, "unsupported qcow2 feature: external data file");
        default:
            break; /* bitmaps and unknown extensions: ignored (and preserved: the area is never rewritten) */
        }
        pos += (len + 7u) & ~7u;
    }
    return 0;
}

static int validate_table(struct qcow2_state *s, GError **errp, const char *what, uint64_t off,
                          uint64_t bytes, uint64_t file_len)
{
    if (off & (s->cluster_size - 1))
        return invalid(s, errp, -EINVAL, "invalid %s offset 0x%" PRIx64 " (not cluster aligned)", what, off);
    if (bytes == 0)
        return 0;
    if (off == 0 || off > file_len || bytes > file_len - off)
        return invalid(s, errp, -EINVAL,
                       "invalid %s offset 0x%" PRIx64 ": %" PRIu64 " bytes there are outside the image file",
                       what, off, bytes);
    return 0;
}

int qcow2_header_load(struct qcow2_state *s, const struct block_options *opts, GError **errp)
{
    struct block_image *img = s->img;
    int64_t flen = block_file_length(&img->file);
    if (flen < 0)
        return invalid(s, errp, (int)flen, "cannot get the file size: %s", g_strerror((int)-flen));
    uint8_t b[QCOW2_V3_HEADER_LEN + 8];
    if (flen < (int64_t)QCOW2_V2_HEADER_LEN)
        return invalid(s, errp, -EINVAL, "image is not in qcow2 format (file too short for a header)");
    int r = block_file_pread(&img->file, 0, b, sizeof(b));
    if (r < 0)
        return invalid(s, errp, r, "cannot read the header: %s", g_strerror(-r));
    if (qcow2_be32(b) != QCOW2_MAGIC)
        return invalid(s, errp, -EINVAL, "image is not in qcow2 format (bad magic)");
    struct qcow2_header *h = &s->h;
    parse_fields(h, b);
    if (h->version != 2 && h->version != 3)
        return invalid(s, errp, -ENOTSUP, "unsupported qcow2 version %u", h->version);
    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return invalid(s, errp, -EINVAL, "unsupported cluster size: 2^%u bytes", h->cluster_bits);
    s->cluster_bits = h->cluster_bits;
    s->cluster_size = 1u << h->cluster_bits;
    if (h->version == 3) {
        if (h->header_length < QCOW2_V3_HEADER_LEN)
            return invalid(s, errp, -EINVAL, "qcow2 header too short (%u bytes)", h->header_length);
        if (h->header_length > s->cluster_size)
            return invalid(s, errp, -EINVAL, "qcow2 header length %u exceeds the cluster size",
                           h->header_length);
        if (h->header_length % 8)
            return invalid(s, errp, -EINVAL, "qcow2 header length %u is not a multiple of 8",
                           h->header_length);
        if ((int64_t)h->header_length > flen)
            return invalid(s, errp, -EINVAL, "qcow2 header length %u runs past the end of the file",
                           h->header_length);
    }
    size_t hc_len = (size_t)MIN((int64_t)s->cluster_size, flen);
    uint8_t *hc = g_malloc0(s->cluster_size);
    r = block_file_pread(&img->file, 0, hc, hc_len);
    if (r < 0) {
        g_free(hc);
        return invalid(s, errp, r, "cannot read the header cluster: %s", g_strerror(-r));
    }
    if (h->version == 3 && h->header_length > QCOW2_V3_HEADER_LEN)
        h->compression_type = hc[104];
    r = parse_extensions(s, hc, hc_len, errp);
    if (r == 0)
        r = check_incompatible(s, errp);
    if (r < 0)
        goto out;
    r = -EINVAL;
    if (h->refcount_order > 6) {
        invalid(s, errp, -EINVAL, "refcount width 2^%u bits is too large (at most 64 bits)",
                h->refcount_order);
        goto out;
    }
    if (h->crypt_method != 0) {
        r = invalid(s, errp, -ENOTSUP, "unsupported qcow2 feature: encryption (method %u)", h->crypt_method);
        goto out;
    }
    bool ctype_bit = h->incompatible & QCOW2_INCOMPAT_COMPRESSION;
    if (h->compression_type > QCOW2_COMPRESSION_ZSTD) {
        r = invalid(s, errp, -ENOTSUP, "unknown compression type %u", h->compression_type);
        goto out;
    }
    if (ctype_bit != (h->compression_type != QCOW2_COMPRESSION_ZLIB)) {
        invalid(s, errp, -EINVAL, "compression type %u does not match the compression type feature bit",
                h->compression_type);
        goto out;
    }
    if (h->backing_file_offset) {
        if (h->backing_file_size > QCOW2_MAX_BACKING_NAME || h->backing_file_size == 0 ||
            h->backing_file_offset > hc_len || h->backing_file_size > hc_len - h->backing_file_offset ||
            h->backing_file_offset < h->header_length) {
            invalid(s, errp, -EINVAL, "invalid backing file name (%u bytes at offset %" PRIu64 ")",
                    h->backing_file_size, h->backing_file_offset);
            goto out;
        }
        const char *name = (const char *)hc + h->backing_file_offset;
        if (memchr(name, 0, h->backing_file_size)) {
            invalid(s, errp, -EINVAL, "backing file name contains a NUL byte");
            goto out;
        }
        img->backing_file = g_strndup(name, h->backing_file_size);
    }
    s->l2_entries = s->cluster_size / 8;
    s->l2_bits = s->cluster_bits - 3;
    uint64_t cover = (uint64_t)s->cluster_size * s->l2_entries; /* bytes one L2 table maps */
    uint64_t max_l1 = QCOW2_MAX_L1_BYTES / 8;
    if ((uint64_t)h->l1_size > max_l1) {
        r = invalid(s, errp, -EFBIG, "active L1 table too large (%u entries, at most %" PRIu64 ")",
                    h->l1_size, max_l1);
        goto out;
    }
    if (h->size > (uint64_t)INT64_MAX || h->size / cover > max_l1) {
        r = invalid(s, errp, -EFBIG, "image size %" PRIu64 " is too large", h->size);
        goto out;
    }
    if ((h->size + cover - 1) / cover > h->l1_size) {
        invalid(s, errp, -EINVAL, "L1 table is too small (%u entries) for %" PRIu64 " bytes", h->l1_size,
                h->size);
        goto out;
    }
    if (validate_table(s, errp, "L1 table", h->l1_table_offset, (uint64_t)h->l1_size * 8, (uint64_t)flen) < 0)
        goto out;
    if (h->refcount_table_clusters == 0 ||
        (uint64_t)h->refcount_table_clusters * s->cluster_size > QCOW2_MAX_REFTABLE_BYTES) {
        r = invalid(s, errp, -EFBIG, "refcount table size of %u clusters is invalid (at most %u bytes)",
                    h->refcount_table_clusters, QCOW2_MAX_REFTABLE_BYTES);
        goto out;
    }
    if (validate_table(s, errp, "refcount table", h->refcount_table_offset,
                       (uint64_t)h->refcount_table_clusters * s->cluster_size, (uint64_t)flen) < 0)
        goto out;
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        r = invalid(s, errp, -EFBIG, "too many snapshots (%u, at most %u)", h->nb_snapshots,
                    QCOW2_MAX_SNAPSHOTS);
        goto out;
    }
    if (h->nb_snapshots && validate_table(s, errp, "snapshot table", h->snapshots_offset,
                                          40ull * h->nb_snapshots, (uint64_t)flen) < 0)
        goto out;
    uint64_t l1_end = h->l1_table_offset + (uint64_t)h->l1_size * 8;
    uint64_t rt_end = h->refcount_table_offset + (uint64_t)h->refcount_table_clusters * s->cluster_size;
    if (h->l1_size && h->l1_table_offset < rt_end && l1_end > h->refcount_table_offset) {
        invalid(s, errp, -EINVAL, "L1 table overlaps the refcount table");
        goto out;
    }
    if (h->incompatible & QCOW2_INCOMPAT_CORRUPT) {
        s->corrupt = true;
        if (!img->read_only && !(img->flags & BLOCK_OPEN_REPAIR)) {
            r = invalid(s, errp, -EACCES,
                        "qcow2 image is marked corrupt; it can only be opened read-only "
                        "(repair it with check -r all)");
            goto out;
        }
    }
    (void)opts;
    r = 0;
out:
    g_free(hc);
    return r;
}

int qcow2_header_update(struct qcow2_state *s, unsigned field_off, const void *bytes, size_t len,
                        GError **errp)
{
    if (s->corrupt && field_off != QCOW2_HDR_INCOMPAT)
        return block_set_error(errp, s->img, -EIO, "image is marked corrupt; header not written");
    int r = block_file_pwrite(&s->img->file, field_off, bytes, len);
    if (r < 0)
        return block_set_error(errp, s->img, r, "cannot write the qcow2 header: %s", g_strerror(-r));
    return 0;
}

int qcow2_header_commit(struct qcow2_state *s, unsigned field_off, const void *bytes, size_t len,
                        GError **errp)
{
    int r = qcow2_header_update(s, field_off, bytes, len, errp);
    return r < 0 ? r : qcow2_sync(s, errp);
}

int qcow2_header_commit64(struct qcow2_state *s, unsigned field_off, uint64_t v, GError **errp)
{
    uint8_t b[8];
    qcow2_put64(b, v);
    return qcow2_header_commit(s, field_off, b, 8, errp);
}

int qcow2_set_incompat(struct qcow2_state *s, uint64_t bits, bool set, GError **errp)
{
    if (s->h.version < 3)
        return 0;
    uint64_t v = set ? (s->h.incompatible | bits) : (s->h.incompatible & ~bits);
    if (v == s->h.incompatible)
        return 0;
    int r = qcow2_header_commit64(s, QCOW2_HDR_INCOMPAT, v, errp);
    if (r == 0)
        s->h.incompatible = v;
    return r;
}

/* ---- creation */

static uint32_t ext_add(uint8_t *hc, uint32_t pos, uint32_t type, const void *data, uint32_t len)
{
    qcow2_put32(hc + pos, type);
    qcow2_put32(hc + pos + 4, len);
    if (len)
        memcpy(hc + pos + 8, data, len);
    return pos + 8 + ((len + 7u) & ~7u);
}

/* Validates the options and fills in defaults. */
static int create_check(const char *path, const struct block_create_options *o, uint32_t *cs, int *version,
                        unsigned *rbits, int *ctype, GError **errp)
{
    *cs = o->cluster_size ? o->cluster_size : 65536;
    *version = o->qcow2_version ? o->qcow2_version : 3;
    *rbits = o->refcount_bits ? o->refcount_bits : 16;
    if (*cs < 512 || *cs > (1u << QCOW2_MAX_CLUSTER_BITS) || (*cs & (*cs - 1)))
        return block_set_error_path(errp, path, -EINVAL,
                                    "cluster size must be a power of two between 512 and "
                                    "2M bytes (got %u)",
                                    *cs);
    if (*version != 2 && *version != 3)
        return block_set_error_path(errp, path, -EINVAL,
                                    "qcow2 version must be 2 (compat=0.10) or 3 (compat=1.1)");
    if (*rbits > 64 || (*rbits & (*rbits - 1)) || (*version == 2 && *rbits != 16))
        return block_set_error_path(errp, path, -EINVAL,
                                    "refcount bits must be a power of two up to 64 (16 for "
                                    "compat=0.10)");
    *ctype = QCOW2_COMPRESSION_ZLIB;
    if (o->compression_type && strcmp(o->compression_type, "zlib") != 0) {
        if (strcmp(o->compression_type, "zstd") != 0)
            return block_set_error_path(errp, path, -EINVAL, "unknown compression type '%s'",
                                        o->compression_type);
        if (*version < 3)
            return block_set_error_path(errp, path, -EINVAL, "compression type zstd needs compat=1.1");
        *ctype = QCOW2_COMPRESSION_ZSTD;
    }
    if (o->lazy_refcounts && *version < 3)
        return block_set_error_path(errp, path, -EINVAL, "lazy refcounts need compat=1.1");
    const char *p = o->preallocation ? o->preallocation : "off";
    if (strcmp(p, "off") && strcmp(p, "metadata"))
        return block_set_error_path(errp, path, -ENOTSUP, "unsupported preallocation mode '%s' for qcow2", p);
    if (o->backing_file && strlen(o->backing_file) > QCOW2_MAX_BACKING_NAME)
        return block_set_error_path(errp, path, -EINVAL, "backing file name longer than %u bytes",
                                    QCOW2_MAX_BACKING_NAME);
    if (o->size > (uint64_t)INT64_MAX)
        return block_set_error_path(errp, path, -EFBIG, "size %" PRIu64 " is too large", o->size);
    return 0;
}

/* Size and format of the backing image (opened read-only, without lock, without its own chain). */
static int backing_probe(const char *path, const struct block_create_options *o, uint64_t *size, char **fmt,
                         GError **errp)
{
    char *full = block_resolve_backing(path, o->backing_file);
    GError *err = NULL;
    struct block_image *b = block_open(
        full, o->backing_format, BLOCK_OPEN_READ_ONLY | BLOCK_OPEN_NO_LOCK | BLOCK_OPEN_NO_BACKING, &err);
    g_free(full);
    if (!b) {
        int code = -(err ? err->code : EIO);
        block_set_error_path(errp, path, code, "could not open backing file: %s", err ? err->message : "?");
        g_clear_error(&err);
        return code;
    }
    *size = block_get_length(b);
    *fmt = g_strdup(b->drv->name);
    block_close(b, NULL);
    return 0;
}

int qcow2_create(const char *path, const struct block_create_options *o, GError **errp)
{
    uint32_t cs;
    int version = 3, ctype = 0;
    unsigned rbits;
    int r = create_check(path, o, &cs, &version, &rbits, &ctype, errp);
    if (r < 0)
        return r;
    uint64_t size = o->size;
    char *bfmt = NULL;
    if (o->backing_file && o->backing_unchecked) {
        if (!o->size)
            return block_set_error_path(errp, path, -EINVAL,
                                        "the image size is required when the backing file is not opened");
        bfmt = g_strdup(o->backing_format);
    } else if (o->backing_file) {
        uint64_t bsize = 0;
        r = backing_probe(path, o, &bsize, &bfmt, errp);
        if (r < 0)
            return r;
        if (!o->size)
            size = bsize;
    }
    uint32_t cbits = (uint32_t)__builtin_ctz(cs);
    uint8_t *hc = g_malloc0(cs);
    qcow2_put32(hc, QCOW2_MAGIC);
    qcow2_put32(hc + 4, (uint32_t)version);
    qcow2_put32(hc + 20, cbits);
    qcow2_put64(hc + 48, cs); /* refcount table: cluster 1 */
    qcow2_put32(hc + 56, 1);
    uint32_t pos = QCOW2_V2_HEADER_LEN;
    if (version == 3) {
        qcow2_put64(hc + 72, ctype ? QCOW2_INCOMPAT_COMPRESSION : 0);
        qcow2_put64(hc + 80, o->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
        qcow2_put32(hc + 96, (uint32_t)__builtin_ctz(rbits));
        qcow2_put32(hc + 100, QCOW2_HEADER_LEN_WRITTEN);
        hc[104] = (uint8_t)ctype;
        pos = QCOW2_HEADER_LEN_WRITTEN;
    }
    if (bfmt)
        pos = ext_add(hc, pos, QCOW2_EXT_BACKING_FORMAT, o->backing_format ? o->backing_format : bfmt,
                      (uint32_t)strlen(o->backing_format ? o->backing_format : bfmt));
    size_t blen = o->backing_file ? strlen(o->backing_file) : 0;
    uint32_t ft_len = (uint32_t)G_N_ELEMENTS(known_features) * FEATURE_ENTRY_LEN;
    if (version == 3 && pos + 8 + ft_len + 8 + blen <= cs) {
        uint8_t *ft = g_malloc0(ft_len);
        for (size_t i = 0; i < G_N_ELEMENTS(known_features); i++) {
            ft[i * FEATURE_ENTRY_LEN] = (uint8_t)known_features[i].type;
            ft[i * FEATURE_ENTRY_LEN + 1] = (uint8_t)known_features[i].bit;
            memcpy(ft + i * FEATURE_ENTRY_LEN + 2, known_features[i].name, strlen(known_features[i].name));
        }
        pos = ext_add(hc, pos, QCOW2_EXT_FEATURE_TABLE, ft, ft_len);
        g_free(ft);
    }
    pos = ext_add(hc, pos, QCOW2_EXT_END, NULL, 0);
    g_free(bfmt);
    if (pos + blen > cs) {
        g_free(hc);
        return block_set_error_path(errp, path, -EINVAL,
                                    "backing file name does not fit in the first cluster");
    }
    if (blen) {
        qcow2_put64(hc + 8, pos);
        qcow2_put32(hc + 16, (uint32_t)blen);
        memcpy(hc + pos, o->backing_file, blen);
    }
    /* cluster 2: the first refcount block, counting clusters 0-2 */
    uint8_t *rest = g_malloc0(2ull * cs);
    qcow2_put64(rest, 2ull * cs);
    struct qcow2_state tmp = {.h.refcount_order = (uint32_t)__builtin_ctz(rbits)};
    for (uint32_t i = 0; i < 3; i++)
        qcow2_set_rc_entry(&tmp, rest + cs, i, 1);

    struct block_file f;
    r = block_file_open(&f, path, true, true, false, false);
    if (r < 0) {
        g_free(hc);
        g_free(rest);
        return block_set_error_path(errp, path, r, "could not create: %s", g_strerror(-r));
    }
    struct image_lock lock;
    r = image_lock_acquire(&lock, f.fd, IMAGE_LOCK_WRITER, path, errp);
    if (r == 0) {
        r = block_file_truncate(&f, 0);
        if (r == 0)
            r = block_file_pwrite(&f, cs, rest, 2ull * cs);
        if (r == 0)
            r = block_file_pwrite(&f, 0, hc, cs);
        if (r == 0)
            r = block_file_sync(&f);
        if (r < 0)
            block_set_error_path(errp, path, r, "could not write the new image: %s", g_strerror(-r));
        image_lock_release(&lock);
    }
    block_file_close(&f);
    g_free(hc);
    g_free(rest);
    if (r < 0)
        return r;

    /* L1 table and size go through the normal (ordered) metadata paths */
    GError *err = NULL;
    struct block_image *img = block_open(path, "qcow2", BLOCK_OPEN_NO_BACKING, &err);
    if (!img) {
        r = -(err ? err->code : EIO);
        g_propagate_error(errp, err);
        return r;
    }
    struct qcow2_state *s = img->opaque;
    uint64_t cover = (uint64_t)cs * (cs / 8);
    uint64_t l1_need = (size + cover - 1) / cover;
    r = qcow2_grow_l1(s, l1_need ? l1_need : 1, errp);
    if (r == 0) {
        uint8_t b[8];
        qcow2_put64(b, size);
        r = qcow2_header_update(s, QCOW2_HDR_SIZE, b, 8, errp);
        if (r == 0)
            s->h.size = size;
    }
    if (r == 0 && o->preallocation && strcmp(o->preallocation, "metadata") == 0)
        r = qcow2_preallocate_metadata(img, errp);
    int cr = block_close(img, r < 0 ? NULL : errp);
    return r < 0 ? r : cr;
}

/* ---- changing the backing file (rebase) */

/* Copies the header extensions of HC [pos, end) except the ones rebuilt here into OUT at *opos. */
static bool copy_extensions(const uint8_t *hc, size_t pos, size_t end, uint8_t *out, uint32_t *opos,
                            size_t room, bool feature_table)
{
    while (pos + 8 <= end) {
        uint32_t type = qcow2_be32(hc + pos), len = qcow2_be32(hc + pos + 4);
        if (type == QCOW2_EXT_END || len > end - pos - 8)
            break;
        size_t total = 8 + (((size_t)len + 7u) & ~(size_t)7u);
        bool want = feature_table ? type == QCOW2_EXT_FEATURE_TABLE : (type != QCOW2_EXT_FEATURE_TABLE &&
                                                                       type != QCOW2_EXT_BACKING_FORMAT);
        if (want) {
            if (*opos + total > room)
                return feature_table; /* the feature table is only informative: it may be dropped */
            memcpy(out + *opos, hc + pos, MIN(total, end - pos));
            *opos += (uint32_t)total;
        }
        pos += total;
    }
    return true;
}

int qcow2_change_backing(struct block_image *img, const char *file, const char *fmt, GError **errp)
{
    struct qcow2_state *s = img->opaque;
    if (s->corrupt || s->broken)
        return block_set_error(errp, img, -EIO, "image is marked corrupt or broken; header not written");
    size_t blen = file ? strlen(file) : 0;
    if (file && (blen == 0 || blen > QCOW2_MAX_BACKING_NAME))
        return block_set_error(errp, img, -EINVAL, "invalid backing file name length (%zu bytes)", blen);
    if (!file)
        fmt = NULL;
    if (fmt && (!*fmt || strlen(fmt) > QCOW2_MAX_FORMAT_NAME))
        return block_set_error(errp, img, -EINVAL, "invalid backing format name '%s'", fmt);
    int r = qcow2_flush_metadata(s, errp);
    if (r < 0)
        return r;
    uint32_t cs = s->cluster_size;
    uint8_t *hc = g_malloc0(cs), *out = g_malloc0(cs);
    r = qcow2_read_file(s, 0, hc, (size_t)MIN((uint64_t)cs, s->file_end), errp);
    uint32_t hlen = s->h.version >= 3 ? s->h.header_length : QCOW2_V2_HEADER_LEN;
    size_t end = s->h.backing_file_offset ? (size_t)MIN(s->h.backing_file_offset, (uint64_t)cs) : cs;
    uint32_t opos = hlen;
    if (r == 0 && (size_t)hlen + 8 + blen > cs)
        r = -ENOSPC;
    /* what the extensions may use: the end marker and the name follow them */
    size_t room = r == 0 ? cs - 8 - blen : 0;
    if (r == 0) {
        memcpy(out, hc, hlen);
        if (fmt && opos + 8 + ((strlen(fmt) + 7) & ~(size_t)7) <= room)
            opos = ext_add(out, opos, QCOW2_EXT_BACKING_FORMAT, fmt, (uint32_t)strlen(fmt));
        else if (fmt)
            r = -ENOSPC;
        if (r == 0 && (!copy_extensions(hc, hlen, end, out, &opos, room, false) ||
                       !copy_extensions(hc, hlen, end, out, &opos, room, true)))
            r = -ENOSPC;
    }
    if (r == -ENOSPC)
        block_set_error(errp, img, r,
                        "backing file name and header extensions do not fit in the first cluster");
    if (r == 0) {
        opos = ext_add(out, opos, QCOW2_EXT_END, NULL, 0);
        qcow2_put64(out + 8, file ? opos : 0);
        qcow2_put32(out + 16, (uint32_t)blen);
        if (file)
            memcpy(out + opos, file, blen);
        r = block_file_pwrite(&img->file, 0, out, cs);
        if (r == 0)
            r = block_file_sync(&img->file);
        if (r < 0) {
            s->broken = true;
            block_set_error(errp, img, r, "cannot write the qcow2 header: %s", g_strerror(-r));
        }
    }
    if (r == 0) {
        s->h.backing_file_offset = file ? opos : 0;
        s->h.backing_file_size = (uint32_t)blen;
        g_free(img->backing_file);
        g_free(img->backing_format);
        img->backing_file = g_strdup(file);
        img->backing_format = g_strdup(fmt);
    }
    g_free(hc);
    g_free(out);
    return r;
}
