/* Kernel payload decompression with zlib, liblzma, libzstd and liblz4, and the decompressed-payload cache. */
#include "boot_decompress.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include "guest_memory.h"
#include "log.h"

#define XZ_MEMLIMIT (256ULL << 20)

static const struct {
    enum boot_payload_format format;
    const char *name;
    const uint8_t magic[9];
    uint8_t len;
} formats[] = {
    {BOOT_PAYLOAD_NONE, "none", {0x7F, 'E', 'L', 'F'}, 4},
    {BOOT_PAYLOAD_GZIP, "gzip", {0x1F, 0x8B}, 2},
    {BOOT_PAYLOAD_XZ, "xz", {0xFD, '7', 'z', 'X', 'Z', 0x00}, 6},
    {BOOT_PAYLOAD_ZSTD, "zstd", {0x28, 0xB5, 0x2F, 0xFD}, 4},
    {BOOT_PAYLOAD_LZ4, "lz4", {0x02, 0x21, 0x4C, 0x18}, 4},
    {BOOT_PAYLOAD_BZIP2, "bzip2", {'B', 'Z', 'h'}, 3},
    {BOOT_PAYLOAD_LZMA, "lzma", {0x5D, 0x00, 0x00}, 3},
    {BOOT_PAYLOAD_LZO, "lzo", {0x89, 'L', 'Z', 'O', 0x00, 0x0D, 0x0A, 0x1A, 0x0A}, 9},
};

const char *boot_payload_format_name(enum boot_payload_format f)
{
    for (size_t i = 0; i < G_N_ELEMENTS(formats); i++)
        if (formats[i].format == f)
            return formats[i].name;
    return "unknown";
}

bool boot_payload_format_supported(enum boot_payload_format f)
{
    return f == BOOT_PAYLOAD_NONE || f == BOOT_PAYLOAD_GZIP || f == BOOT_PAYLOAD_XZ ||
           f == BOOT_PAYLOAD_ZSTD || f == BOOT_PAYLOAD_LZ4;
}

enum boot_payload_format boot_payload_detect(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < G_N_ELEMENTS(formats); i++)
        if (len >= formats[i].len && memcmp(p, formats[i].magic, formats[i].len) == 0)
            return formats[i].format;
    return BOOT_PAYLOAD_UNKNOWN;
}

/* Output buffer that grows by doubling up to BOOT_PAYLOAD_MAX. */
struct outbuf {
    uint8_t *p;
    size_t len, cap;
};

/* Makes room for at least `want` more bytes (fewer only at the size limit, but at least one). */
static int outbuf_reserve(struct outbuf *o, size_t want, char **error)
{
    if (o->cap - o->len >= want)
        return 0;
    if (o->len >= BOOT_PAYLOAD_MAX) {
        *error = g_strdup_printf("payload decompresses to more than %llu MiB", BOOT_PAYLOAD_MAX >> 20);
        return -EFBIG;
    }
    size_t cap = MAX(o->cap * 2, o->len + want);
    cap = MAX(cap, (size_t)1 << 20);
    cap = MIN(cap, (size_t)BOOT_PAYLOAD_MAX);
    uint8_t *p = g_try_realloc(o->p, cap);
    if (!p) {
        *error = g_strdup_printf("cannot allocate %zu MiB for the decompressed payload", cap >> 20);
        return -ENOMEM;
    }
    o->p = p;
    o->cap = cap;
    return 0;
}

static size_t spare(const struct outbuf *o, size_t max)
{
    return MIN(o->cap - o->len, max);
}

static int inflate_gzip(const uint8_t *in, size_t len, struct outbuf *o, char **error)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        *error = g_strdup("zlib: cannot initialise");
        return -ENOMEM;
    }
    int r = 0;
    size_t pos = 0;
    for (;;) {
        r = outbuf_reserve(o, 1, error);
        if (r < 0)
            break;
        size_t in_chunk = MIN(len - pos, (size_t)UINT_MAX);
        size_t out_chunk = spare(o, UINT_MAX);
        z.next_in = (Bytef *)(in + pos);
        z.avail_in = (uInt)in_chunk;
        z.next_out = o->p + o->len;
        z.avail_out = (uInt)out_chunk;
        int zr = inflate(&z, Z_NO_FLUSH);
        pos += in_chunk - z.avail_in;
        o->len += out_chunk - z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        /* No progress although there was room for output: the input ran out. */
        if (zr == Z_BUF_ERROR && z.avail_out != 0) {
            *error = g_strdup("gzip: truncated payload");
            r = -ENOEXEC;
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            *error = g_strdup_printf("gzip: %s", z.msg ? z.msg : zError(zr));
            r = zr == Z_MEM_ERROR ? -ENOMEM : -ENOEXEC;
            break;
        }
    }
    inflateEnd(&z);
    return r;
}

static const char *lzma_error(lzma_ret r)
{
    switch (r) {
    case LZMA_MEM_ERROR:
        return "out of memory";
    case LZMA_MEMLIMIT_ERROR:
        return "needs too much memory";
    case LZMA_FORMAT_ERROR:
        return "not an xz stream";
    case LZMA_OPTIONS_ERROR:
        return "unsupported options";
    case LZMA_DATA_ERROR:
        return "corrupt data";
    case LZMA_BUF_ERROR:
        return "truncated payload";
    default:
        return "decoder error";
    }
}

static int decode_xz(const uint8_t *in, size_t len, struct outbuf *o, char **error)
{
    lzma_stream s = LZMA_STREAM_INIT;
    /* No LZMA_CONCATENATED: decoding stops at the end of the first stream, before the appended size. */
    lzma_ret lr = lzma_stream_decoder(&s, XZ_MEMLIMIT, 0);
    if (lr != LZMA_OK) {
        *error = g_strdup_printf("xz: %s", lzma_error(lr));
        return -ENOMEM;
    }
    s.next_in = in;
    s.avail_in = len;
    int r = 0;
    for (;;) {
        r = outbuf_reserve(o, 1, error);
        if (r < 0)
            break;
        size_t out_chunk = spare(o, SIZE_MAX);
        s.next_out = o->p + o->len;
        s.avail_out = out_chunk;
        lr = lzma_code(&s, LZMA_FINISH);
        o->len += out_chunk - s.avail_out;
        if (lr == LZMA_STREAM_END)
            break;
        if (lr != LZMA_OK) {
            *error = g_strdup_printf("xz: %s", lzma_error(lr));
            r = lr == LZMA_MEM_ERROR ? -ENOMEM : -ENOEXEC;
            break;
        }
    }
    lzma_end(&s);
    return r;
}

static int decode_zstd(const uint8_t *in, size_t len, struct outbuf *o, char **error)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d) {
        *error = g_strdup("zstd: cannot allocate a decoder");
        return -ENOMEM;
    }
    /* The kernel's zstd -22 --ultra uses large windows. */
    ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 30);
    ZSTD_inBuffer ib = {in, len, 0};
    int r = 0;
    for (;;) {
        r = outbuf_reserve(o, ZSTD_DStreamOutSize(), error);
        if (r < 0)
            break;
        ZSTD_outBuffer ob = {o->p + o->len, spare(o, SIZE_MAX), 0};
        size_t in_before = ib.pos;
        size_t zr = ZSTD_decompressStream(d, &ob, &ib);
        o->len += ob.pos;
        if (ZSTD_isError(zr)) {
            *error = g_strdup_printf("zstd: %s", ZSTD_getErrorName(zr));
            r = -ENOEXEC;
            break;
        }
        if (zr == 0) /* end of the frame; what follows is the appended size */
            break;
        if (ob.pos < ob.size && ib.pos == ib.size) {
            *error = g_strdup("zstd: truncated payload");
            r = -ENOEXEC;
            break;
        }
        if (ob.pos == 0 && ib.pos == in_before) {
            *error = g_strdup("zstd: decoder made no progress");
            r = -ENOEXEC;
            break;
        }
    }
    ZSTD_freeDCtx(d);
    return r;
}

static int decode_lz4_legacy(const uint8_t *in, size_t len, struct outbuf *o, char **error)
{
    if (len < 4 || le32_load(in) != BOOT_LZ4_LEGACY_MAGIC) {
        *error = g_strdup("lz4: not a legacy lz4 frame");
        return -ENOEXEC;
    }
    size_t pos = 4;
    while (len - pos >= 4) {
        uint32_t csize = le32_load(in + pos);
        if (csize == BOOT_LZ4_LEGACY_MAGIC) { /* concatenated frames */
            pos += 4;
            continue;
        }
        if (len - pos == 4) /* the uncompressed size the kernel build appends */
            break;
        pos += 4;
        if (csize == 0 || csize > len - pos || csize > (uint32_t)INT_MAX) {
            *error = g_strdup_printf("lz4: block of %u bytes at offset %zu exceeds the payload", csize,
                                     pos - 4);
            return -ENOEXEC;
        }
        int r = outbuf_reserve(o, BOOT_LZ4_LEGACY_BLOCK, error);
        if (r < 0)
            return r;
        int n = LZ4_decompress_safe((const char *)in + pos, (char *)o->p + o->len, (int)csize,
                                    (int)spare(o, BOOT_LZ4_LEGACY_BLOCK));
        if (n < 0) {
            *error = g_strdup_printf("lz4: corrupt block at offset %zu", pos - 4);
            return -ENOEXEC;
        }
        o->len += (size_t)n;
        pos += csize;
    }
    return 0;
}

int boot_payload_decompress(enum boot_payload_format f, const uint8_t *in, size_t len, size_t size_hint,
                            uint8_t **out, size_t *out_len, char **error)
{
    struct outbuf o = {0};
    int r;
    /* A little slack past the hint lets the decoders see the end of the stream without a second allocation. A
     * hint far beyond any real compression ratio is not trusted. */
    if (size_hint && size_hint < BOOT_PAYLOAD_MAX && size_hint / 64 <= len) {
        r = outbuf_reserve(&o, size_hint + 4096, error);
        if (r < 0)
            return r;
    }
    switch (f) {
    case BOOT_PAYLOAD_GZIP:
        r = inflate_gzip(in, len, &o, error);
        break;
    case BOOT_PAYLOAD_XZ:
        r = decode_xz(in, len, &o, error);
        break;
    case BOOT_PAYLOAD_ZSTD:
        r = decode_zstd(in, len, &o, error);
        break;
    case BOOT_PAYLOAD_LZ4:
        r = decode_lz4_legacy(in, len, &o, error);
        break;
    default:
        *error = g_strdup_printf("%s payloads are not decompressed by deskvm", boot_payload_format_name(f));
        r = -ENOTSUP;
        break;
    }
    if (r < 0) {
        g_free(o.p);
        return r;
    }
    *out = o.p;
    *out_len = o.len;
    return 0;
}

char *boot_payload_cache_path(const uint8_t *image, size_t len)
{
    const char *dir = g_getenv("DESKVM_CACHE");
    char *hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, image, len);
    char *path = dir && *dir ? g_build_filename(dir, "vmlinux", hex, NULL)
                             : g_build_filename(g_get_home_dir(), ".cache", "deskvm", "vmlinux", hex, NULL);
    g_free(hex);
    return path;
}

bool boot_payload_cache_load(const char *path, uint8_t **out, size_t *out_len)
{
    gchar *data = NULL;
    gsize n = 0;
    if (!g_file_get_contents(path, &data, &n, NULL))
        return false;
    *out = (uint8_t *)data;
    *out_len = n;
    return true;
}

void boot_payload_cache_store(const char *path, const uint8_t *data, size_t len)
{
    char *dir = g_path_get_dirname(path);
    GError *err = NULL;
    if (g_mkdir_with_parents(dir, 0700) < 0)
        log_warn("boot: cannot create cache directory %s: %s", dir, g_strerror(errno));
    else if (!g_file_set_contents(path, (const gchar *)data, (gssize)len, &err))
        log_warn("boot: cannot write cache file: %s", err->message);
    g_clear_error(&err);
    g_free(dir);
}
