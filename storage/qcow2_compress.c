/* qcow2 compressed clusters: raw deflate (zlib, 4 KiB window) and zstd, one cluster at a time. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "qcow2.h"

/* qcow2's zlib streams are raw deflate with a 2^12 byte window. */
#define QCOW2_ZLIB_WINDOW_BITS (-12)

static int inflate_cluster(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, QCOW2_ZLIB_WINDOW_BITS) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)in_len;
    z.next_out = out;
    z.avail_out = (uInt)out_len;
    int zr = inflate(&z, Z_FINISH);
    /* the stored length rounds up to sectors, so trailing bytes are normal: a full cluster is success */
    int r = ((zr == Z_STREAM_END || zr == Z_BUF_ERROR) && z.avail_out == 0) ? 0 : -EIO;
    inflateEnd(&z);
    return r;
}

static int zstd_decompress_cluster(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return -ENOMEM;
    ZSTD_inBuffer ib = {in, in_len, 0};
    ZSTD_outBuffer ob = {out, out_len, 0};
    int r = 0;
    /* frames may be followed by padding; stop once the cluster is complete */
    while (ob.pos < ob.size) {
        size_t prev_in = ib.pos, prev_out = ob.pos;
        size_t zr = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(zr)) {
            r = -EIO;
            break;
        }
        if (ib.pos == prev_in && ob.pos == prev_out) {
            r = -EIO;
            break;
        }
    }
    ZSTD_freeDCtx(d);
    return r;
}

int qcow2_decompress_cluster(struct qcow2_state *s, uint64_t l2e, GError **errp)
{
    if (s->dcmp_entry == l2e)
        return 0;
    uint64_t off, len;
    qcow2_compressed_range(s, l2e, &off, &len);
    /* a descriptor may claim up to (csize_mask + 1) sectors: cap at what a compressed cluster can need */
    uint64_t cap = 2ull * s->cluster_size + 512;
    if (len > cap)
        len = cap;
    int r = qcow2_read_file(s, off, s->cmp_buf, len, errp);
    if (r < 0)
        return r;
    s->dcmp_entry = 0;
    if (s->h.compression_type == QCOW2_COMPRESSION_ZSTD)
        r = zstd_decompress_cluster(s->cmp_buf, len, s->dcmp_buf, s->cluster_size);
    else
        r = inflate_cluster(s->cmp_buf, len, s->dcmp_buf, s->cluster_size);
    if (r < 0)
        return block_set_error(errp, s->img, r,
                               "compressed cluster at host offset 0x%" PRIx64 " does not decompress (%s)",
                               off, s->compression_name);
    s->dcmp_entry = l2e;
    return 0;
}

int qcow2_compress_cluster(struct qcow2_state *s, const void *in, size_t *out_len, GError **errp)
{
    size_t cs = s->cluster_size;
    *out_len = 0;
    if (s->h.compression_type == QCOW2_COMPRESSION_ZSTD) {
        size_t zr = ZSTD_compress(s->cmp_buf, cs, in, cs, ZSTD_CLEVEL_DEFAULT);
        /* the usual error is "destination too small": the cluster is then stored uncompressed */
        *out_len = !ZSTD_isError(zr) && zr < cs ? zr : 0;
        return 0;
    }
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, QCOW2_ZLIB_WINDOW_BITS, 9, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return block_set_error(errp, s->img, -ENOMEM, "zlib initialisation failed");
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)cs;
    z.next_out = s->cmp_buf;
    z.avail_out = (uInt)cs;
    int zr = deflate(&z, Z_FINISH);
    if (zr == Z_STREAM_END && z.total_out < cs)
        *out_len = z.total_out;
    deflateEnd(&z);
    return 0;
}
