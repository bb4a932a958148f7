/* Proves the direct Linux loader on synthetic kernels built here: header checks, payload decompression, ELF
 * placement, boot_params, initrd placement, the 64-bit entry state and the user-facing errors.
 * `test-boot-linux --load-real[-cached] KERNEL [INITRD]` loads a real kernel into a 512 MiB machine (-cached:
 * through the decompressed-payload cache) and prints key=value facts for
 * tests/integration/test_boot_loader.py. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include "boot_linux.h"
#include "boot_pagetables.h"
#include "device_harness.h"
#include "e820.h"
#include "log.h"
#include "machine.h"

#define MiB (1ULL << 20)
#define KERNEL_PADDR 0x1000000ULL
#define KERNEL_VADDR 0xffffffff81000000ULL
#define SEG0_FILESZ 0x1000
#define SEG0_MEMSZ 0x3000
#define SEG1_PADDR 0x1200000ULL
#define SEG1_FILESZ 0x200
#define INIT_SIZE 0x400000U
#define SETUP_SECTS 4
#define PAYLOAD_OFFSET 0x100
#define VERSION_STRING "9.8.7-deskvm-test (test@deskvm) #1 SMP"
#define RSDP 0xF0000ULL

/* ---------------------------------------------------------------- building synthetic kernels */

static uint8_t seg_byte(unsigned seg, size_t i)
{
    return (uint8_t)(i * 7 + 1 + seg * 0x40);
}

/* A tiny x86-64 vmlinux: segment 0 (code + BSS) at KERNEL_PADDR, segment 1 (data) at SEG1_PADDR, a note. */
static GByteArray *make_elf(uint8_t elf_class, uint16_t machine_type, uint64_t entry)
{
    const size_t seg0_off = 0x1000, seg1_off = 0x2000, total = 0x2000 + SEG1_FILESZ + 64;
    GByteArray *a = g_byte_array_sized_new(total);
    g_byte_array_set_size(a, total);
    uint8_t *p = a->data;
    memset(p, 0, total);
    memcpy(p, "\x7F" "ELF", 4);
    p[4] = elf_class;
    p[5] = 1;
    p[6] = 1;
    le16_store(p + 16, 2);
    le16_store(p + 18, machine_type);
    le32_store(p + 20, 1);
    le64_store(p + 24, entry);
    le64_store(p + 32, 64);
    le16_store(p + 52, 64);
    le16_store(p + 54, 56);
    le16_store(p + 56, 3);
    struct {
        uint32_t type;
        uint64_t off, vaddr, paddr, filesz, memsz;
    } ph[3] = {
        {1, seg0_off, KERNEL_VADDR, KERNEL_PADDR, SEG0_FILESZ, SEG0_MEMSZ},
        {1, seg1_off, KERNEL_VADDR + (SEG1_PADDR - KERNEL_PADDR), SEG1_PADDR, SEG1_FILESZ, SEG1_FILESZ},
        {4, seg1_off + SEG1_FILESZ, 0, 0, 64, 64},
    };
    for (unsigned i = 0; i < 3; i++) {
        uint8_t *h = p + 64 + 56 * i;
        le32_store(h, ph[i].type);
        le64_store(h + 8, ph[i].off);
        le64_store(h + 16, ph[i].vaddr);
        le64_store(h + 24, ph[i].paddr);
        le64_store(h + 32, ph[i].filesz);
        le64_store(h + 40, ph[i].memsz);
    }
    for (size_t i = 0; i < SEG0_FILESZ; i++)
        p[seg0_off + i] = seg_byte(0, i);
    for (size_t i = 0; i < SEG1_FILESZ; i++)
        p[seg1_off + i] = seg_byte(1, i);
    snprintf((char *)p + seg1_off + SEG1_FILESZ, 64, "Linux version %s", "9.8.7-elf");
    return a;
}

static GByteArray *test_elf(void)
{
    return make_elf(2, 62, KERNEL_PADDR);
}

static void append_le32(GByteArray *a, uint32_t v)
{
    uint8_t b[4];
    le32_store(b, v);
    g_byte_array_append(a, b, 4);
}

static GByteArray *compress_gzip(const GByteArray *in)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    g_assert_cmpint(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
    uLong bound = deflateBound(&z, in->len) + 64;
    GByteArray *out = g_byte_array_sized_new(bound);
    g_byte_array_set_size(out, bound);
    z.next_in = in->data;
    z.avail_in = in->len;
    z.next_out = out->data;
    z.avail_out = bound;
    g_assert_cmpint(deflate(&z, Z_FINISH), ==, Z_STREAM_END);
    g_byte_array_set_size(out, z.total_out);
    deflateEnd(&z);
    return out;
}

static GByteArray *compress_xz(const GByteArray *in)
{
    size_t cap = lzma_stream_buffer_bound(in->len), pos = 0;
    GByteArray *out = g_byte_array_sized_new(cap);
    g_byte_array_set_size(out, cap);
    lzma_ret r = lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, in->data, in->len, out->data, &pos, cap);
    g_assert_cmpint(r, ==, LZMA_OK);
    g_byte_array_set_size(out, pos);
    return out;
}

static GByteArray *compress_zstd(const GByteArray *in)
{
    size_t cap = ZSTD_compressBound(in->len);
    GByteArray *out = g_byte_array_sized_new(cap);
    g_byte_array_set_size(out, cap);
    size_t n = ZSTD_compress(out->data, cap, in->data, in->len, 19);
    g_assert_false(ZSTD_isError(n));
    g_byte_array_set_size(out, n);
    return out;
}

/* The legacy LZ4 frame (lz4 -l): magic, then (le32 size, block) per 8 MiB of input. */
static GByteArray *compress_lz4_legacy(const GByteArray *in)
{
    GByteArray *out = g_byte_array_new();
    append_le32(out, BOOT_LZ4_LEGACY_MAGIC);
    for (size_t pos = 0; pos < in->len; pos += BOOT_LZ4_LEGACY_BLOCK) {
        int n_in = (int)MIN(in->len - pos, BOOT_LZ4_LEGACY_BLOCK);
        int cap = LZ4_compressBound(n_in);
        char *blk = g_malloc(cap);
        int n = LZ4_compress_default((const char *)in->data + pos, blk, n_in, cap);
        g_assert_cmpint(n, >, 0);
        append_le32(out, (uint32_t)n);
        g_byte_array_append(out, (const uint8_t *)blk, n);
        g_free(blk);
    }
    return out;
}

/* A payload as the kernel build makes it: the compressed vmlinux followed by its le32 uncompressed size. */
static GByteArray *make_payload(enum boot_payload_format f, const GByteArray *elf)
{
    GByteArray *out;
    switch (f) {
    case BOOT_PAYLOAD_GZIP:
        out = compress_gzip(elf);
        break;
    case BOOT_PAYLOAD_XZ:
        out = compress_xz(elf);
        break;
    case BOOT_PAYLOAD_ZSTD:
        out = compress_zstd(elf);
        break;
    case BOOT_PAYLOAD_LZ4:
        out = compress_lz4_legacy(elf);
        break;
    case BOOT_PAYLOAD_BZIP2:
        out = g_byte_array_new();
        g_byte_array_append(out, (const uint8_t *)"BZh91AY&SY-not-really-bzip2", 27);
        break;
    default:
        return g_byte_array_append(g_byte_array_new(), elf->data, elf->len);
    }
    append_le32(out, elf->len);
    return out;
}

struct bz_opts {
    uint16_t version;
    uint16_t xloadflags;
    uint32_t cmdline_size;
    uint32_t initrd_addr_max;
    uint8_t setup_sects;
};

static struct bz_opts default_opts(void)
{
    return (struct bz_opts){.version = 0x020F, .xloadflags = 0x7F, .cmdline_size = 2047,
                            .initrd_addr_max = 0x7FFFFFFF, .setup_sects = SETUP_SECTS};
}

static GByteArray *make_bzimage(const GByteArray *payload, const struct bz_opts *o)
{
    size_t setup = (size_t)((o->setup_sects ? o->setup_sects : 4) + 1) * 512;
    size_t pm = (PAYLOAD_OFFSET + payload->len + 15) & ~(size_t)15;
    GByteArray *a = g_byte_array_sized_new(setup + pm);
    g_byte_array_set_size(a, setup + pm);
    uint8_t *p = a->data;
    memset(p, 0, setup + pm);
    p[0x1F1] = o->setup_sects;
    le32_store(p + 0x1F4, (uint32_t)(pm / 16));
    le16_store(p + 0x1FE, 0xAA55);
    p[0x200] = 0xEB;
    p[0x201] = 0x6A; /* header ends at 0x26C */
    memcpy(p + 0x202, "HdrS", 4);
    le16_store(p + 0x206, o->version);
    le16_store(p + 0x20E, 0x400 - 0x200);
    strcpy((char *)p + 0x400, VERSION_STRING);
    p[0x211] = 0x01;
    le32_store(p + 0x214, 0x100000);
    le32_store(p + 0x22C, o->initrd_addr_max);
    le32_store(p + 0x230, 0x200000);
    p[0x234] = 1;
    p[0x235] = 21;
    le16_store(p + 0x236, o->xloadflags);
    le32_store(p + 0x238, o->cmdline_size);
    le32_store(p + 0x248, PAYLOAD_OFFSET);
    le32_store(p + 0x24C, payload->len);
    le64_store(p + 0x258, KERNEL_PADDR);
    le32_store(p + 0x260, INIT_SIZE);
    memset(p + setup, 0x90, PAYLOAD_OFFSET); /* stands in for the kernel's own decompressor */
    memcpy(p + setup + PAYLOAD_OFFSET, payload->data, payload->len);
    return a;
}

static GByteArray *make_kernel(enum boot_payload_format f, const struct bz_opts *o)
{
    GByteArray *elf = test_elf();
    GByteArray *payload = make_payload(f, elf);
    GByteArray *bz = make_bzimage(payload, o);
    g_byte_array_unref(elf);
    g_byte_array_unref(payload);
    return bz;
}

static char *write_tmp(const void *data, size_t len)
{
    GError *err = NULL;
    char *path = NULL;
    int fd = g_file_open_tmp("deskvm-boot-test.XXXXXX", &path, &err);
    g_assert_no_error(err);
    close(fd);
    g_assert_true(g_file_set_contents(path, data, (gssize)len, &err));
    g_assert_no_error(err);
    return path;
}

static char *write_tmp_array(GByteArray *a)
{
    char *path = write_tmp(a->data, a->len);
    g_byte_array_unref(a);
    return path;
}

static void remove_free(char *path)
{
    g_unlink(path);
    g_free(path);
}

/* An initrd of `size` bytes with a recognisable pattern at its start and end. */
static char *make_initrd(size_t size)
{
    uint8_t *d = g_malloc0(size);
    for (size_t i = 0; i < MIN(size, (size_t)256); i++) {
        d[i] = (uint8_t)(0xA0 ^ i);
        d[size - 1 - i] = (uint8_t)(0x5A ^ i);
    }
    char *path = write_tmp(d, size);
    g_free(d);
    return path;
}

static struct machine *machine_new(uint64_t ram)
{
    struct machine *m = g_new0(struct machine, 1);
    dh_machine_init(m, NULL, 0, 1, ram);
    return m;
}

static void machine_free(struct machine *m)
{
    dh_machine_fini(m);
    g_free(m);
}

/* ---------------------------------------------------------------- checks */

static uint64_t bp_u64(struct machine *m, uint64_t off)
{
    uint64_t v = 0;
    g_assert_cmpint(guest_mem_read_u64(&m->mem, BOOT_PARAMS_ADDR + off, &v), ==, 0);
    return v;
}

static uint32_t bp_u32(struct machine *m, uint64_t off)
{
    uint32_t v = 0;
    g_assert_cmpint(guest_mem_read_u32(&m->mem, BOOT_PARAMS_ADDR + off, &v), ==, 0);
    return v;
}

static uint16_t bp_u16(struct machine *m, uint64_t off)
{
    uint16_t v = 0;
    g_assert_cmpint(guest_mem_read_u16(&m->mem, BOOT_PARAMS_ADDR + off, &v), ==, 0);
    return v;
}

static uint8_t bp_u8(struct machine *m, uint64_t off)
{
    uint8_t v = 0;
    g_assert_cmpint(guest_mem_read_u8(&m->mem, BOOT_PARAMS_ADDR + off, &v), ==, 0);
    return v;
}

static void assert_segments_loaded(struct machine *m)
{
    const uint8_t *s0 = guest_mem_map_read(&m->mem, KERNEL_PADDR, SEG0_MEMSZ);
    const uint8_t *s1 = guest_mem_map_read(&m->mem, SEG1_PADDR, SEG1_FILESZ);
    g_assert_nonnull(s0);
    g_assert_nonnull(s1);
    for (size_t i = 0; i < SEG0_FILESZ; i++)
        g_assert_cmphex(s0[i], ==, seg_byte(0, i));
    for (size_t i = SEG0_FILESZ; i < SEG0_MEMSZ; i++)
        g_assert_cmphex(s0[i], ==, 0);
    for (size_t i = 0; i < SEG1_FILESZ; i++)
        g_assert_cmphex(s1[i], ==, seg_byte(1, i));
    /* Nothing written past segment 0's BSS. */
    uint8_t after = 0;
    g_assert_cmpint(guest_mem_read_u8(&m->mem, KERNEL_PADDR + SEG0_MEMSZ, &after), ==, 0);
    g_assert_cmphex(after, ==, 0xCC);
}

/* Loads kernel (and initrd) into a fresh machine whose kernel area is pre-filled with 0xCC. */
static int load(struct machine *m, const char *kernel, const char *initrd, const char *cmdline,
                struct boot_linux_result *res, char **err)
{
    if (guest_memory_is_ram(&m->mem, KERNEL_PADDR, 4 * MiB))
        g_assert_cmpint(guest_mem_fill(&m->mem, KERNEL_PADDR, 0xCC, 4 * MiB), ==, 0);
    struct boot_linux_config cfg = {.kernel_path = kernel, .initrd_path = initrd, .cmdline = cmdline,
                                    .acpi_rsdp_addr = RSDP};
    return boot_linux_load(m, &cfg, res, err);
}

static void check_format(enum boot_payload_format f)
{
    struct bz_opts o = default_opts();
    char *kernel = write_tmp_array(make_kernel(f, &o));
    struct machine *m = machine_new(512 * MiB);
    struct boot_linux_result res;
    char *err = NULL;
    int r = load(m, kernel, NULL, "console=ttyS0", &res, &err);
    g_assert_cmpstr(err, ==, NULL);
    g_assert_cmpint(r, ==, 0);
    g_assert_true(res.direct);
    g_assert_cmpint(res.format, ==, f);
    g_assert_cmphex(res.entry, ==, KERNEL_PADDR);
    g_assert_cmphex(res.cpu.rip, ==, KERNEL_PADDR);
    GByteArray *elf = test_elf();
    g_assert_cmpuint(res.decompressed_size, ==, elf->len);
    g_byte_array_unref(elf);
    g_assert_cmpuint(res.nsegments, ==, 2);
    g_assert_cmphex(res.segments[0].paddr, ==, KERNEL_PADDR);
    g_assert_cmphex(res.segments[0].memsz, ==, SEG0_MEMSZ);
    g_assert_cmphex(res.segments[1].paddr, ==, SEG1_PADDR);
    g_assert_cmphex(res.kernel_start, ==, KERNEL_PADDR);
    g_assert_cmphex(res.kernel_end, ==, KERNEL_PADDR + INIT_SIZE);
    g_assert_cmpstr(res.version, ==, VERSION_STRING);
    assert_segments_loaded(m);
    machine_free(m);
    remove_free(kernel);
}

static void test_gzip(void)
{
    check_format(BOOT_PAYLOAD_GZIP);
}

static void test_xz(void)
{
    check_format(BOOT_PAYLOAD_XZ);
}

static void test_zstd(void)
{
    check_format(BOOT_PAYLOAD_ZSTD);
}

static void test_lz4(void)
{
    check_format(BOOT_PAYLOAD_LZ4);
}

static void test_uncompressed(void)
{
    check_format(BOOT_PAYLOAD_NONE);
}

static void test_detect(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        enum boot_payload_format f;
    } cases[] = {
        {"\x1F\x8B\x08", 3, BOOT_PAYLOAD_GZIP},
        {"\xFD" "7zXZ\0", 6, BOOT_PAYLOAD_XZ},
        {"\x28\xB5\x2F\xFD", 4, BOOT_PAYLOAD_ZSTD},
        {"\x02\x21\x4C\x18", 4, BOOT_PAYLOAD_LZ4},
        {"BZh9", 4, BOOT_PAYLOAD_BZIP2},
        {"\x5D\0\0\x80\0", 5, BOOT_PAYLOAD_LZMA},
        {"\x89LZO\0\r\n\x1A\n", 9, BOOT_PAYLOAD_LZO},
        {"\x7F" "ELF", 4, BOOT_PAYLOAD_NONE},
        {"\xFD" "7zX", 4, BOOT_PAYLOAD_UNKNOWN},
        {"MZ\0\0", 4, BOOT_PAYLOAD_UNKNOWN},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
        g_assert_cmpint(boot_payload_detect((const uint8_t *)cases[i].bytes, cases[i].len), ==, cases[i].f);
    g_assert_cmpstr(boot_payload_format_name(BOOT_PAYLOAD_XZ), ==, "xz");
    g_assert_true(boot_payload_format_supported(BOOT_PAYLOAD_LZ4));
    g_assert_false(boot_payload_format_supported(BOOT_PAYLOAD_LZO));
}

static void test_boot_params(void)
{
    struct bz_opts o = default_opts();
    char *kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_GZIP, &o));
    const size_t initrd_size = 3 * MiB + 123;
    char *initrd = make_initrd(initrd_size);
    struct machine *m = machine_new(512 * MiB);
    struct boot_linux_result res;
    char *err = NULL;
    const char *cmdline = "console=ttyS0 root=/dev/vda quiet";
    g_assert_cmpint(load(m, kernel, initrd, cmdline, &res, &err), ==, 0);
    g_assert_null(err);

    g_assert_cmphex(bp_u32(m, 0x202), ==, 0x53726448);
    g_assert_cmphex(bp_u16(m, 0x206), ==, 0x020F);
    g_assert_cmphex(bp_u16(m, 0x1FE), ==, 0xAA55);
    g_assert_cmphex(bp_u8(m, 0x210), ==, 0xFF);
    g_assert_cmphex(bp_u8(m, 0x211), ==, 0x81);
    g_assert_cmphex(bp_u16(m, 0x224), ==, 0xFE00);
    g_assert_cmphex(bp_u32(m, 0x230), ==, 0x200000);
    g_assert_cmphex(bp_u32(m, 0x260), ==, INIT_SIZE);
    g_assert_cmphex(bp_u8(m, 0x1EF), ==, 0); /* sentinel: the kernel would otherwise wipe fields */
    g_assert_cmphex(bp_u32(m, 0x26C), ==, 0); /* nothing copied past the header's end */

    g_assert_cmphex(bp_u32(m, 0x228), ==, BOOT_CMDLINE_ADDR);
    g_assert_cmphex(bp_u32(m, 0x0C8), ==, 0);
    char buf[64];
    g_assert_cmpint(guest_mem_read(&m->mem, BOOT_CMDLINE_ADDR, buf, strlen(cmdline) + 1), ==, 0);
    g_assert_cmpstr(buf, ==, cmdline);

    /* Initrd: as high as possible in low RAM, page-aligned. */
    uint64_t expect = (512 * MiB - initrd_size) & ~0xFFFULL;
    g_assert_cmphex(res.initrd_addr, ==, expect);
    g_assert_cmphex(res.initrd_size, ==, initrd_size);
    g_assert_cmphex(bp_u32(m, 0x218), ==, expect);
    g_assert_cmphex(bp_u32(m, 0x21C), ==, initrd_size);
    g_assert_cmphex(bp_u32(m, 0x0C0), ==, 0);
    g_assert_cmphex(bp_u32(m, 0x0C4), ==, 0);
    const uint8_t *rd = guest_mem_map_read(&m->mem, expect, initrd_size);
    g_assert_nonnull(rd);
    g_assert_cmphex(rd[0], ==, 0xA0);
    g_assert_cmphex(rd[255], ==, 0xA0 ^ 255);
    g_assert_cmphex(rd[initrd_size - 1], ==, 0x5A);

    g_assert_cmphex(bp_u64(m, 0x070), ==, RSDP);

    struct e820_entry map[E820_MAX_ENTRIES_ZEROPAGE];
    unsigned n = e820_build(&m->mem, map, E820_MAX_ENTRIES_ZEROPAGE);
    g_assert_cmpuint(n, ==, 5);
    g_assert_cmpuint(res.e820_entries, ==, n);
    g_assert_cmpuint(bp_u8(m, 0x1E8), ==, n);
    for (unsigned i = 0; i < n; i++) {
        g_assert_cmphex(bp_u64(m, 0x2D0 + 20 * i), ==, map[i].addr);
        g_assert_cmphex(bp_u64(m, 0x2D0 + 20 * i + 8), ==, map[i].size);
        g_assert_cmphex(bp_u32(m, 0x2D0 + 20 * i + 16), ==, map[i].type);
    }
    g_assert_cmphex(bp_u64(m, 0x2D0 + 20 * n), ==, 0);

    /* setup_data: one RNG seed entry. */
    uint64_t sd = bp_u64(m, 0x250);
    g_assert_cmphex(sd, ==, BOOT_SETUP_DATA_ADDR);
    uint64_t next = 1;
    uint32_t type = 0, len = 0;
    g_assert_cmpint(guest_mem_read_u64(&m->mem, sd, &next), ==, 0);
    g_assert_cmpint(guest_mem_read_u32(&m->mem, sd + 8, &type), ==, 0);
    g_assert_cmpint(guest_mem_read_u32(&m->mem, sd + 12, &len), ==, 0);
    g_assert_cmphex(next, ==, 0);
    g_assert_cmpuint(type, ==, 9);
    g_assert_cmpuint(len, ==, 32);
    uint8_t seed1[32], seed2[32], zero[32] = {0};
    g_assert_cmpint(guest_mem_read(&m->mem, sd + 16, seed1, 32), ==, 0);
    g_assert_true(memcmp(seed1, zero, 32) != 0);
    /* A second boot gets a fresh seed. */
    g_assert_cmpint(load(m, kernel, initrd, cmdline, &res, &err), ==, 0);
    g_assert_cmpint(guest_mem_read(&m->mem, sd + 16, seed2, 32), ==, 0);
    g_assert_true(memcmp(seed1, seed2, 32) != 0);

    machine_free(m);
    remove_free(kernel);
    remove_free(initrd);
}

/* Walks the 4-level page tables in guest memory; returns the physical address or UINT64_MAX if unmapped. */
static uint64_t walk(struct machine *m, uint64_t cr3, uint64_t va)
{
    uint64_t table = cr3 & ~0xFFFULL;
    for (int level = 3; level >= 0; level--) {
        uint64_t e = 0;
        unsigned idx = (va >> (12 + 9 * level)) & 511;
        g_assert_cmpint(guest_mem_read_u64(&m->mem, table + 8 * idx, &e), ==, 0);
        if (!(e & BOOT_PTE_P))
            return UINT64_MAX;
        g_assert_true(e & BOOT_PTE_RW);
        if (level > 0 && (e & BOOT_PTE_PS)) {
            g_assert_cmpint(level, ==, 1); /* 2 MiB pages only */
            uint64_t page = 1ULL << (12 + 9 * level);
            return (e & ~(page - 1) & 0x000FFFFFFFFFF000ULL) | (va & (page - 1));
        }
        table = e & 0x000FFFFFFFFFF000ULL;
    }
    return table | (va & 0xFFF);
}

static void test_entry_state(void)
{
    struct bz_opts o = default_opts();
    char *kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_XZ, &o));
    struct machine *m = machine_new(512 * MiB);
    struct boot_linux_result res;
    char *err = NULL;
    g_assert_cmpint(load(m, kernel, NULL, NULL, &res, &err), ==, 0);
    const struct boot_cpu_state *c = &res.cpu;
    g_assert_cmphex(c->rip, ==, KERNEL_PADDR);
    g_assert_cmphex(c->rsi, ==, BOOT_PARAMS_ADDR);
    g_assert_cmphex(c->rsp, ==, BOOT_STACK_TOP);
    g_assert_cmphex(c->rflags, ==, 2);
    g_assert_cmphex(c->cr0, ==, 0x80000031);
    g_assert_cmphex(c->cr4, ==, 0x20);
    g_assert_cmphex(c->efer, ==, 0x500);
    g_assert_cmphex(c->cr3, ==, BOOT_PML4_ADDR);
    g_assert_cmphex(c->cs.selector, ==, 0x10);
    g_assert_cmpuint(c->cs.l, ==, 1);
    g_assert_cmpuint(c->cs.db, ==, 0);
    g_assert_cmphex(c->cs.type, ==, 0xB);
    g_assert_cmphex(c->cs.limit, ==, 0xFFFFFFFF);
    g_assert_cmphex(c->cs.base, ==, 0);
    const struct boot_segment *data[] = {&c->ds, &c->es, &c->fs, &c->gs, &c->ss};
    for (size_t i = 0; i < G_N_ELEMENTS(data); i++) {
        g_assert_cmphex(data[i]->selector, ==, 0x18);
        g_assert_cmphex(data[i]->type, ==, 0x3);
        g_assert_cmpuint(data[i]->present, ==, 1);
        g_assert_cmpuint(data[i]->s, ==, 1);
        g_assert_cmpuint(data[i]->l, ==, 0);
        g_assert_cmphex(data[i]->limit, ==, 0xFFFFFFFF);
    }
    g_assert_cmpuint(c->tr.present, ==, 1);
    g_assert_cmphex(c->tr.type, ==, 0xB);
    g_assert_cmpuint(c->ldt.unusable, ==, 1);
    g_assert_cmphex(c->gdt.base, ==, BOOT_GDT_ADDR);
    g_assert_cmphex(c->gdt.limit, ==, 31);
    g_assert_cmphex(c->idt.limit, ==, 0);

    uint64_t gdt[4];
    g_assert_cmpint(guest_mem_read(&m->mem, BOOT_GDT_ADDR, gdt, sizeof(gdt)), ==, 0);
    g_assert_cmphex(gdt[0], ==, 0);
    g_assert_cmphex(gdt[1], ==, 0);
    g_assert_cmphex(gdt[2], ==, 0x00AF9B000000FFFFULL);
    g_assert_cmphex(gdt[3], ==, 0x00CF93000000FFFFULL);

    static const uint64_t probes[] = {0, 0x7000, 0x1000000, 0x1234567, 0x1FFFFFFF, 0x7FFFFFFF, 0xB0000000,
                                      0xFEE00000, 0xFFFFFFFF};
    for (size_t i = 0; i < G_N_ELEMENTS(probes); i++)
        g_assert_cmphex(walk(m, c->cr3, probes[i]), ==, probes[i]);
    for (uint64_t a = 0; a < 0x100000000ULL; a += 2 * MiB)
        g_assert_cmphex(walk(m, c->cr3, a + 0x1FF), ==, a + 0x1FF);
    g_assert_cmphex(walk(m, c->cr3, 0x100000000ULL), ==, UINT64_MAX);
    machine_free(m);
    remove_free(kernel);
}

static void test_plain_elf(void)
{
    GByteArray *elf = test_elf();
    size_t elf_len = elf->len;
    char *kernel = write_tmp_array(elf);
    struct boot_kernel_info info;
    char *err = NULL;
    g_assert_cmpint(boot_linux_info(kernel, &info, &err), ==, 0);
    g_assert_true(info.is_elf);
    g_assert_true(info.can_boot_64);
    g_assert_cmpint(info.format, ==, BOOT_PAYLOAD_NONE);
    g_assert_cmpstr(info.version, ==, "9.8.7-elf");

    struct machine *m = machine_new(256 * MiB);
    struct boot_linux_result res;
    g_assert_cmpint(load(m, kernel, NULL, "x", &res, &err), ==, 0);
    g_assert_null(err);
    g_assert_true(res.direct);
    g_assert_cmpuint(res.decompressed_size, ==, elf_len);
    g_assert_cmphex(res.entry, ==, KERNEL_PADDR);
    g_assert_cmphex(res.kernel_end, ==, SEG1_PADDR + SEG1_FILESZ);
    assert_segments_loaded(m);
    /* A synthesized setup header. */
    g_assert_cmphex(bp_u32(m, 0x202), ==, 0x53726448);
    g_assert_cmphex(bp_u16(m, 0x206), ==, 0x020F);
    g_assert_cmphex(bp_u16(m, 0x1FE), ==, 0xAA55);
    g_assert_cmphex(bp_u8(m, 0x210), ==, 0xFF);
    g_assert_cmphex(bp_u16(m, 0x236) & 1, ==, 1);
    g_assert_cmphex(bp_u32(m, 0x238), ==, 2047);
    g_assert_cmphex(bp_u32(m, 0x22C), ==, 0x7FFFFFFF);
    g_assert_cmphex(bp_u64(m, 0x258), ==, KERNEL_PADDR);
    g_assert_cmphex(bp_u32(m, 0x228), ==, BOOT_CMDLINE_ADDR);
    machine_free(m);
    remove_free(kernel);
}

static void test_virtual_entry(void)
{
    char *kernel = write_tmp_array(make_elf(2, 62, KERNEL_VADDR + 0x40));
    struct machine *m = machine_new(64 * MiB);
    struct boot_linux_result res;
    char *err = NULL;
    g_assert_cmpint(load(m, kernel, NULL, NULL, &res, &err), ==, 0);
    g_assert_cmphex(res.entry, ==, KERNEL_PADDR + 0x40);
    machine_free(m);
    remove_free(kernel);
}

static void test_fallback(void)
{
    struct bz_opts o = default_opts();
    GByteArray *bz = make_kernel(BOOT_PAYLOAD_BZIP2, &o);
    size_t pm_len = bz->len - (SETUP_SECTS + 1) * 512;
    GByteArray *copy = g_byte_array_append(g_byte_array_new(), bz->data, bz->len);
    char *kernel = write_tmp_array(bz);
    struct machine *m = machine_new(512 * MiB);
    struct boot_linux_result res;
    char *err = NULL;
    g_assert_cmpint(load(m, kernel, NULL, "console=ttyS0", &res, &err), ==, 0);
    g_assert_null(err);
    g_assert_false(res.direct);
    g_assert_cmpint(res.format, ==, BOOT_PAYLOAD_BZIP2);
    g_assert_cmphex(res.entry, ==, 0x100200);
    g_assert_cmphex(res.cpu.rip, ==, 0x100200);
    g_assert_cmphex(res.kernel_start, ==, 0x100000);
    g_assert_cmphex(res.kernel_end, ==, KERNEL_PADDR + INIT_SIZE);
    const uint8_t *pm = guest_mem_map_read(&m->mem, 0x100000, pm_len);
    g_assert_nonnull(pm);
    g_assert_cmpmem(pm, pm_len, copy->data + (SETUP_SECTS + 1) * 512, pm_len);
    g_assert_cmphex(bp_u32(m, 0x214), ==, 0x100000);
    g_byte_array_unref(copy);
    machine_free(m);
    remove_free(kernel);
}

static void test_setup_sects_zero(void)
{
    struct bz_opts o = default_opts();
    o.setup_sects = 0;
    char *kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_GZIP, &o));
    struct machine *m = machine_new(64 * MiB);
    struct boot_linux_result res;
    char *err = NULL;
    g_assert_cmpint(load(m, kernel, NULL, NULL, &res, &err), ==, 0);
    g_assert_null(err);
    assert_segments_loaded(m);
    machine_free(m);
    remove_free(kernel);
}

static void test_info(void)
{
    struct bz_opts o = default_opts();
    char *kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_XZ, &o));
    struct boot_kernel_info info;
    char *err = NULL;
    g_assert_cmpint(boot_linux_info(kernel, &info, &err), ==, 0);
    g_assert_false(info.is_elf);
    g_assert_cmphex(info.protocol, ==, 0x020F);
    g_assert_true(info.can_boot_64);
    g_assert_true(info.relocatable);
    g_assert_cmpint(info.format, ==, BOOT_PAYLOAD_XZ);
    g_assert_cmpstr(info.version, ==, VERSION_STRING);
    g_assert_cmphex(info.init_size, ==, INIT_SIZE);
    g_assert_cmphex(info.pref_address, ==, KERNEL_PADDR);
    g_assert_cmphex(info.initrd_addr_max, ==, 0x7FFFFFFF);
    g_assert_cmpuint(info.cmdline_size, ==, 2047);
    GByteArray *elf = test_elf();
    g_assert_cmpuint(info.decompressed_size_hint, ==, elf->len);
    g_byte_array_unref(elf);
    remove_free(kernel);
}

static void test_cache(void)
{
    char *dir = g_dir_make_tmp("deskvm-boot-cache.XXXXXX", NULL);
    g_assert_nonnull(dir);
    g_setenv("DESKVM_CACHE", dir, TRUE);
    struct bz_opts o = default_opts();
    GByteArray *bz = make_kernel(BOOT_PAYLOAD_ZSTD, &o);
    char *hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, bz->data, bz->len);
    char *cached = g_build_filename(dir, "vmlinux", hex, NULL);
    char *kernel = write_tmp_array(bz);
    struct machine *m = machine_new(64 * MiB);
    struct boot_linux_config cfg = {.kernel_path = kernel, .use_cache = true};
    struct boot_linux_result res;
    char *err = NULL;

    g_assert_cmpint(boot_linux_load(m, &cfg, &res, &err), ==, 0);
    g_assert_false(res.from_cache);
    g_assert_true(g_file_test(cached, G_FILE_TEST_IS_REGULAR));
    GByteArray *elf = test_elf();
    gchar *data = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(cached, &data, &len, NULL));
    g_assert_cmpmem(data, len, elf->data, elf->len);
    g_free(data);

    g_assert_cmpint(guest_mem_fill(&m->mem, KERNEL_PADDR, 0xCC, 4 * MiB), ==, 0);
    g_assert_cmpint(boot_linux_load(m, &cfg, &res, &err), ==, 0);
    g_assert_true(res.from_cache);
    assert_segments_loaded(m);

    /* A damaged cache file is ignored (and replaced). */
    g_assert_true(g_file_set_contents(cached, "garbage", 7, NULL));
    g_assert_cmpint(boot_linux_load(m, &cfg, &res, &err), ==, 0);
    g_assert_false(res.from_cache);
    g_assert_true(g_file_get_contents(cached, &data, &len, NULL));
    g_assert_cmpuint(len, ==, elf->len);
    g_free(data);
    g_byte_array_unref(elf);

    g_unsetenv("DESKVM_CACHE");
    g_unlink(cached);
    char *sub = g_build_filename(dir, "vmlinux", NULL);
    g_rmdir(sub);
    g_rmdir(dir);
    g_free(sub);
    g_free(cached);
    g_free(hex);
    g_free(dir);
    machine_free(m);
    remove_free(kernel);
}

/* ---------------------------------------------------------------- errors */

/* Loads and expects failure with errno `want` and a message naming the file and containing `needle`. */
static void expect_error(struct machine *m, const char *kernel, const char *initrd, const char *cmdline,
                         int want, const char *needle)
{
    struct boot_linux_result res;
    char *err = NULL;
    int r = load(m, kernel, initrd, cmdline, &res, &err);
    g_assert_cmpint(r, ==, -want);
    g_assert_nonnull(err);
    if (!strstr(err, needle) || (!strstr(err, kernel) && !(initrd && strstr(err, initrd))))
        g_error("message %s lacks \"%s\" or the file name", err, needle);
    g_free(err);
}

static void test_err_not_kernel(void)
{
    struct machine *m = machine_new(64 * MiB);
    uint8_t junk[4096];
    memset(junk, 'x', sizeof(junk));
    char *kernel = write_tmp(junk, sizeof(junk));
    expect_error(m, kernel, NULL, NULL, ENOEXEC, "not a Linux kernel");
    struct boot_kernel_info info;
    char *err = NULL;
    g_assert_cmpint(boot_linux_info(kernel, &info, &err), ==, -ENOEXEC);
    g_assert_nonnull(strstr(err, "HdrS"));
    g_free(err);
    remove_free(kernel);
    char *empty = write_tmp("", 0);
    expect_error(m, empty, NULL, NULL, ENOEXEC, "not a Linux kernel");
    remove_free(empty);
    expect_error(m, "/nonexistent/deskvm-kernel", NULL, NULL, ENOENT, "No such file");
    machine_free(m);
}

static void test_err_truncated(void)
{
    struct machine *m = machine_new(64 * MiB);
    struct bz_opts o = default_opts();
    GByteArray *bz = make_kernel(BOOT_PAYLOAD_XZ, &o);
    g_byte_array_set_size(bz, bz->len - 64);
    char *kernel = write_tmp_array(bz);
    expect_error(m, kernel, NULL, NULL, ENOEXEC, "truncated");
    remove_free(kernel);

    /* The header is intact but the compressed stream is cut short. */
    GByteArray *elf = test_elf();
    static const enum boot_payload_format fmts[] = {BOOT_PAYLOAD_GZIP, BOOT_PAYLOAD_XZ, BOOT_PAYLOAD_ZSTD,
                                                    BOOT_PAYLOAD_LZ4};
    GByteArray *payload;
    for (size_t i = 0; i < G_N_ELEMENTS(fmts); i++) {
        payload = make_payload(fmts[i], elf);
        g_byte_array_set_size(payload, payload->len / 2);
        kernel = write_tmp_array(make_bzimage(payload, &o));
        char *needle = g_strdup_printf("%s payload: %s: ", boot_payload_format_name(fmts[i]),
                                       boot_payload_format_name(fmts[i]));
        expect_error(m, kernel, NULL, NULL, ENOEXEC, needle);
        g_free(needle);
        remove_free(kernel);
        g_byte_array_unref(payload);
    }

    payload = make_payload(BOOT_PAYLOAD_GZIP, elf);
    payload->data[payload->len / 2] ^= 0xFF;
    payload->data[payload->len / 2 + 1] ^= 0xFF;
    kernel = write_tmp_array(make_bzimage(payload, &o));
    expect_error(m, kernel, NULL, NULL, ENOEXEC, "gzip");
    remove_free(kernel);
    g_byte_array_unref(payload);
    g_byte_array_unref(elf);
    machine_free(m);
}

static void test_err_old_protocol(void)
{
    struct machine *m = machine_new(64 * MiB);
    struct bz_opts o = default_opts();
    o.version = 0x0205;
    char *kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_GZIP, &o));
    expect_error(m, kernel, NULL, NULL, ENOTSUP, "2.05 is too old");
    remove_free(kernel);
    machine_free(m);
}

static void test_err_32bit(void)
{
    struct machine *m = machine_new(64 * MiB);
    struct bz_opts o = default_opts();
    o.xloadflags = 0;
    char *kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_GZIP, &o));
    expect_error(m, kernel, NULL, NULL, ENOTSUP, "32-bit");
    remove_free(kernel);
    o = default_opts();
    o.version = 0x020B; /* before xloadflags existed */
    kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_GZIP, &o));
    expect_error(m, kernel, NULL, NULL, ENOTSUP, "XLF_KERNEL_64");
    remove_free(kernel);
    kernel = write_tmp_array(make_elf(1, 3, KERNEL_PADDR));
    expect_error(m, kernel, NULL, NULL, ENOTSUP, "32-bit ELF");
    remove_free(kernel);
    machine_free(m);
}

static void test_err_initrd_too_big(void)
{
    struct bz_opts o = default_opts();
    o.initrd_addr_max = 0x17FFFFF; /* room: 0x1400000..0x1800000 = 4 MiB */
    char *kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_GZIP, &o));
    struct machine *m = machine_new(512 * MiB);
    char *big = make_initrd(4 * MiB + 1);
    expect_error(m, kernel, big, NULL, EFBIG, "does not fit");
    char *fits = make_initrd(4 * MiB);
    struct boot_linux_result res;
    char *err = NULL;
    g_assert_cmpint(load(m, kernel, fits, NULL, &res, &err), ==, 0);
    g_assert_cmphex(res.initrd_addr, ==, 0x1400000);
    remove_free(big);
    remove_free(fits);
    remove_free(kernel);
    machine_free(m);

    /* Limited by RAM rather than initrd_addr_max. */
    o = default_opts();
    kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_GZIP, &o));
    m = machine_new(32 * MiB);
    big = make_initrd(12 * MiB + 1);
    expect_error(m, kernel, big, NULL, EFBIG, "32 MiB of RAM");
    remove_free(big);
    remove_free(kernel);
    machine_free(m);
}

static void test_err_cmdline_too_long(void)
{
    struct bz_opts o = default_opts();
    o.cmdline_size = 16;
    char *kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_GZIP, &o));
    struct machine *m = machine_new(64 * MiB);
    expect_error(m, kernel, NULL, "0123456789abcdefg", E2BIG, "at most 16");
    struct boot_linux_result res;
    char *err = NULL;
    g_assert_cmpint(load(m, kernel, NULL, "0123456789abcdef", &res, &err), ==, 0);
    remove_free(kernel);
    machine_free(m);
}

static void test_err_ram_too_small(void)
{
    struct bz_opts o = default_opts();
    char *kernel = write_tmp_array(make_kernel(BOOT_PAYLOAD_GZIP, &o));
    struct machine *m = machine_new(16 * MiB);
    struct boot_linux_result res;
    char *err = NULL;
    int r = boot_linux_load(m, &(struct boot_linux_config){.kernel_path = kernel}, &res, &err);
    g_assert_cmpint(r, ==, -ENOMEM);
    g_assert_nonnull(strstr(err, "too small"));
    g_free(err);
    machine_free(m);
    /* The segments fit but not the kernel's init_size. */
    m = machine_new(19 * MiB);
    expect_error(m, kernel, NULL, NULL, ENOMEM, "too small");
    machine_free(m);
    remove_free(kernel);
}

/* ---------------------------------------------------------------- real kernels (integration test helper) */

static int load_real(const char *kernel, const char *initrd, bool use_cache)
{
    struct machine *m = machine_new(512 * MiB);
    struct boot_kernel_info info;
    struct boot_linux_result res;
    char *err = NULL;
    if (boot_linux_info(kernel, &info, &err) < 0) {
        printf("error=%s\n", err);
        return 1;
    }
    printf("protocol=0x%04x\n", info.protocol);
    printf("initrd_addr_max=0x%x\n", info.initrd_addr_max);
    printf("init_size=0x%x\n", info.init_size);
    struct boot_linux_config cfg = {.kernel_path = kernel, .initrd_path = initrd,
                                    .cmdline = "console=ttyS0 panic=-1", .acpi_rsdp_addr = RSDP,
                                    .use_cache = use_cache};
    if (boot_linux_load(m, &cfg, &res, &err) < 0) {
        printf("error=%s\n", err);
        return 1;
    }
    printf("format=%s\n", boot_payload_format_name(res.format));
    printf("direct=%d\n", res.direct);
    printf("version=%s\n", res.version);
    printf("entry=0x%llx\n", (unsigned long long)res.entry);
    printf("decompressed_size=%llu\n", (unsigned long long)res.decompressed_size);
    printf("decompress_ms=%.1f\n", res.decompress_ns / 1e6);
    printf("from_cache=%d\n", res.from_cache);
    printf("kernel_start=0x%llx\nkernel_end=0x%llx\n", (unsigned long long)res.kernel_start,
           (unsigned long long)res.kernel_end);
    for (unsigned i = 0; i < res.nsegments; i++)
        printf("segment=0x%llx,0x%llx,0x%llx\n", (unsigned long long)res.segments[i].paddr,
               (unsigned long long)res.segments[i].filesz, (unsigned long long)res.segments[i].memsz);
    printf("initrd_addr=0x%llx\ninitrd_size=%llu\n", (unsigned long long)res.initrd_addr,
           (unsigned long long)res.initrd_size);
    struct e820_entry map[E820_MAX_ENTRIES_ZEROPAGE];
    unsigned n = e820_build(&m->mem, map, E820_MAX_ENTRIES_ZEROPAGE);
    for (unsigned i = 0; i < n; i++)
        printf("e820=0x%llx,0x%llx,%u\n", (unsigned long long)map[i].addr, (unsigned long long)map[i].size,
               map[i].type);
    uint32_t startup = 0;
    guest_mem_read_u32(&m->mem, res.entry, &startup);
    printf("entry_bytes=0x%08x\n", startup);
    printf("ok=1\n");
    machine_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && (strcmp(argv[1], "--load-real") == 0 || strcmp(argv[1], "--load-real-cached") == 0))
        return load_real(argv[2], argc >= 4 ? argv[3] : NULL, strcmp(argv[1], "--load-real-cached") == 0);
    log_set_level(LOG_LEVEL_ERROR);
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/boot-linux/payload/detects-format-by-magic", test_detect);
    g_test_add_func("/boot-linux/bzimage/gzip-payload-loads-segments", test_gzip);
    g_test_add_func("/boot-linux/bzimage/xz-payload-loads-segments", test_xz);
    g_test_add_func("/boot-linux/bzimage/zstd-payload-loads-segments", test_zstd);
    g_test_add_func("/boot-linux/bzimage/lz4-legacy-payload-loads-segments", test_lz4);
    g_test_add_func("/boot-linux/bzimage/uncompressed-payload-loads-segments", test_uncompressed);
    g_test_add_func("/boot-linux/bzimage/setup-sects-zero-means-four", test_setup_sects_zero);
    g_test_add_func("/boot-linux/bzimage/info-reports-header", test_info);
    g_test_add_func("/boot-linux/boot-params/fields-initrd-e820-rng-seed", test_boot_params);
    g_test_add_func("/boot-linux/entry/long-mode-state-gdt-identity-map", test_entry_state);
    g_test_add_func("/boot-linux/vmlinux/plain-elf-gets-synthesized-header", test_plain_elf);
    g_test_add_func("/boot-linux/vmlinux/virtual-entry-translated", test_virtual_entry);
    g_test_add_func("/boot-linux/fallback/bzip2-enters-protected-mode-part", test_fallback);
    g_test_add_func("/boot-linux/cache/stores-reuses-and-replaces-damaged", test_cache);
    g_test_add_func("/boot-linux/error/not-a-kernel", test_err_not_kernel);
    g_test_add_func("/boot-linux/error/truncated-or-corrupt", test_err_truncated);
    g_test_add_func("/boot-linux/error/protocol-too-old", test_err_old_protocol);
    g_test_add_func("/boot-linux/error/no-64-bit-entry", test_err_32bit);
    g_test_add_func("/boot-linux/error/initrd-too-big", test_err_initrd_too_big);
    g_test_add_func("/boot-linux/error/cmdline-too-long", test_err_cmdline_too_long);
    g_test_add_func("/boot-linux/error/ram-too-small", test_err_ram_too_small);
    return g_test_run();
}
