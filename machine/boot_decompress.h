/* The bzImage payload: its format from the magic bytes, native decompression (gzip, xz, zstd, lz4) and an
 * optional on-disk cache of the result. */
#ifndef DESKVM_BOOT_DECOMPRESS_H
#define DESKVM_BOOT_DECOMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum boot_payload_format {
    BOOT_PAYLOAD_UNKNOWN,
    BOOT_PAYLOAD_NONE, /* uncompressed ELF (also a plain vmlinux given as the kernel) */
    BOOT_PAYLOAD_GZIP,
    BOOT_PAYLOAD_XZ,
    BOOT_PAYLOAD_ZSTD,
    BOOT_PAYLOAD_LZ4,
    BOOT_PAYLOAD_BZIP2,
    BOOT_PAYLOAD_LZMA,
    BOOT_PAYLOAD_LZO,
};

/* The legacy LZ4 frame the kernel build uses (lz4 -l): this magic, then blocks of (le32 size, data). */
#define BOOT_LZ4_LEGACY_MAGIC 0x184C2102U
#define BOOT_LZ4_LEGACY_BLOCK (8U << 20) /* uncompressed bytes per block, at most */

/* Decompressed payloads larger than this are refused. */
#define BOOT_PAYLOAD_MAX (1ULL << 30)

const char *boot_payload_format_name(enum boot_payload_format f);
/* True for the formats deskvm decompresses itself (the others fall back to the kernel's own decompressor). */
bool boot_payload_format_supported(enum boot_payload_format f);
enum boot_payload_format boot_payload_detect(const uint8_t *p, size_t len);

/* Decompresses in[0..len) into a new g_malloc'ed buffer (*out, *out_len). Data after the end of the
 * compressed stream (the kernel build appends the uncompressed size) is ignored. size_hint preallocates
 * (0: unknown). Returns 0; -ENOEXEC for corrupt or truncated data, -EFBIG beyond BOOT_PAYLOAD_MAX, -ENOMEM,
 * or -ENOTSUP for formats not handled here, with *error saying why. */
int boot_payload_decompress(enum boot_payload_format f, const uint8_t *in, size_t len, size_t size_hint,
                            uint8_t **out, size_t *out_len, char **error);

/* The cache file for the decompressed payload of this kernel image:
 * ${DESKVM_CACHE:-~/.cache/deskvm}/vmlinux/<sha256 of image>. g_free the result. */
char *boot_payload_cache_path(const uint8_t *image, size_t len);
/* Reads a cached payload; false if absent or unreadable. */
bool boot_payload_cache_load(const char *path, uint8_t **out, size_t *out_len);
/* Stores a payload atomically (temporary file + rename); failures are only logged. */
void boot_payload_cache_store(const char *path, const uint8_t *data, size_t len);

#endif
