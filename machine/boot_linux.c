/* Direct Linux boot: bzImage/vmlinux parsing, kernel and initrd placement, boot_params, the 64-bit entry. */
#include "boot_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "boot_pagetables.h"
#include "e820.h"
#include "log.h"
#include "machine.h"

/* Setup header fields: file offsets in the bzImage, and the same offsets in boot_params
 * (Documentation/arch/x86/boot.rst). */
#define HDR_START 0x1F1
#define HDR_SETUP_SECTS 0x1F1
#define HDR_SYSSIZE 0x1F4
#define HDR_VID_MODE 0x1FA
#define HDR_BOOT_FLAG 0x1FE
#define HDR_JUMP 0x200
#define HDR_HEADER 0x202
#define HDR_VERSION 0x206
#define HDR_KERNEL_VERSION 0x20E
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_CODE32_START 0x214
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21C
#define HDR_HEAP_END_PTR 0x224
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22C
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE_KERNEL 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PAYLOAD_OFFSET 0x248
#define HDR_PAYLOAD_LENGTH 0x24C
#define HDR_SETUP_DATA 0x250
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define HDR_END_MAX 0x290 /* edd_mbr_sig_buffer follows the header in boot_params */

#define HDR_MAGIC 0x53726448U /* "HdrS" */
#define BOOT_FLAG_MAGIC 0xAA55
#define LOADED_HIGH 0x01
#define CAN_USE_HEAP 0x80
#define XLF_KERNEL_64 0x0001
#define TYPE_OF_LOADER_UNDEFINED 0xFF
#define HEAP_END_PTR 0xFE00
#define VID_MODE_NORMAL 0xFFFF

/* boot_params ("zero page", Documentation/arch/x86/zero-page.rst). */
#define BP_SIZE 0x1000
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0C0
#define BP_EXT_RAMDISK_SIZE 0x0C4
#define BP_EXT_CMD_LINE_PTR 0x0C8
#define BP_E820_ENTRIES 0x1E8
#define BP_E820_TABLE 0x2D0
#define BP_E820_ENTRY_SIZE 20

#define SETUP_RNG_SEED 9
#define RNG_SEED_BYTES 32
#define SETUP_DATA_HEADER 16

#define MIN_PROTOCOL 0x0206
#define XLOADFLAGS_PROTOCOL 0x020C
#define SYNTH_PROTOCOL 0x020F
#define SYNTH_CMDLINE_SIZE 2047
#define SYNTH_INITRD_ADDR_MAX 0x7FFFFFFFU
#define SYNTH_KERNEL_ALIGNMENT 0x200000U
#define PM_ENTRY_64 0x200 /* the 64-bit entry of the protected-mode part */

/* ELF64 (only what a kernel image needs). */
#define EHDR_SIZE 64
#define PHDR_SIZE 56
#define EM_X86_64 62
#define PT_LOAD 1

#define MAX_KERNEL_FILE (BOOT_PAYLOAD_MAX)

/* A kernel file and what its header says. */
struct kernel_image {
    const char *path;
    uint8_t *data;
    size_t len;
    struct boot_kernel_info info;
    /* bzImage only */
    size_t setup_size;
    const uint8_t *pm, *payload;
    size_t pm_len, payload_len;
    size_t hdr_end;
};

struct elf_image {
    uint64_t entry, start, end;
    unsigned nseg;
    struct {
        uint64_t paddr, offset, filesz, memsz;
    } seg[BOOT_MAX_SEGMENTS];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static int read_whole_file(const char *path, uint8_t **out, size_t *out_len, char **error)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        *error = g_strdup_printf("%s: %s", path, g_strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        memset(&st, 0, sizeof(st));
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_KERNEL_FILE) {
        int e = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        *error = g_strdup_printf("%s: not a regular file of at most %llu MiB", path, MAX_KERNEL_FILE >> 20);
        close(fd);
        return -e;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = g_try_malloc(len ? len : 1);
    if (!buf) {
        *error = g_strdup_printf("%s: cannot allocate %zu bytes", path, len);
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            *error = g_strdup_printf("%s: read failed: %s", path, n < 0 ? g_strerror(e) : "file shrank");
            g_free(buf);
            close(fd);
            return -e;
        }
        got += (size_t)n;
    }
    close(fd);
    *out = buf;
    *out_len = len;
    return 0;
}

static void find_linux_version(const uint8_t *p, size_t len, char *out, size_t out_size)
{
    static const char tag[] = "Linux version ";
    const uint8_t *hit = memmem(p, len, tag, sizeof(tag) - 1);
    out[0] = 0;
    if (!hit)
        return;
    hit += sizeof(tag) - 1;
    size_t n = 0;
    while (n + 1 < out_size && hit + n < p + len && hit[n] >= 0x20 && hit[n] < 0x7F)
        n++;
    memcpy(out, hit, n);
    out[n] = 0;
}

/* Parses an ELF64 x86-64 kernel: its loadable segments at their physical addresses and the physical entry. */
static int parse_elf(const char *what, const uint8_t *p, size_t len, struct elf_image *e, char **error)
{
    memset(e, 0, sizeof(*e));
    if (len < EHDR_SIZE || memcmp(p, "\x7F" "ELF", 4) != 0) {
        *error = g_strdup_printf("%s: not an ELF file", what);
        return -ENOEXEC;
    }
    if (p[4] != 2 || le16_load(p + 18) != EM_X86_64) {
        *error = g_strdup_printf("%s: a %s ELF for machine %u; deskvm boots only 64-bit x86-64 kernels", what,
                                 p[4] == 1 ? "32-bit" : "non-64-bit", le16_load(p + 18));
        return -ENOTSUP;
    }
    if (p[5] != 1) {
        *error = g_strdup_printf("%s: big-endian ELF", what);
        return -ENOEXEC;
    }
    uint64_t phoff = le64_load(p + 32);
    uint16_t phentsize = le16_load(p + 54), phnum = le16_load(p + 56);
    if (phentsize < PHDR_SIZE || phoff > len || (uint64_t)phnum * phentsize > len - phoff) {
        *error = g_strdup_printf("%s: truncated ELF program headers", what);
        return -ENOEXEC;
    }
    uint64_t entry = le64_load(p + 24);
    bool entry_found = false;
    e->start = UINT64_MAX;
    for (unsigned i = 0; i < phnum; i++) {
        const uint8_t *ph = p + phoff + (uint64_t)i * phentsize;
        if (le32_load(ph) != PT_LOAD)
            continue;
        uint64_t off = le64_load(ph + 8), vaddr = le64_load(ph + 16), paddr = le64_load(ph + 24);
        uint64_t filesz = le64_load(ph + 32), memsz = le64_load(ph + 40);
        if (memsz == 0)
            continue;
        if (filesz > memsz || off > len || filesz > len - off || paddr + memsz < paddr) {
            *error = g_strdup_printf("%s: ELF segment %u lies outside the file or is malformed", what, i);
            return -ENOEXEC;
        }
        if (e->nseg == BOOT_MAX_SEGMENTS) {
            *error = g_strdup_printf("%s: more than %d loadable ELF segments", what, BOOT_MAX_SEGMENTS);
            return -ENOEXEC;
        }
        if (paddr < BOOT_PM_LOAD_ADDR) {
            *error = g_strdup_printf("%s: ELF segment at 0x%llx overlaps the boot data below 1 MiB", what,
                                     (unsigned long long)paddr);
            return -ENOEXEC;
        }
        e->seg[e->nseg++] = (typeof(e->seg[0])){paddr, off, filesz, memsz};
        e->start = MIN(e->start, paddr);
        e->end = MAX(e->end, paddr + memsz);
        /* e_entry is physical in vmlinux; accept a virtual one by translating through its segment. */
        if (!entry_found && entry >= paddr && entry - paddr < memsz) {
            e->entry = entry;
            entry_found = true;
        } else if (!entry_found && entry >= vaddr && entry - vaddr < memsz) {
            e->entry = entry - vaddr + paddr;
            entry_found = true;
        }
    }
    if (e->nseg == 0 || !entry_found) {
        *error = g_strdup_printf("%s: %s", what, e->nseg ? "the ELF entry point is in no loadable segment"
                                                          : "no loadable segments");
        return -ENOEXEC;
    }
    return 0;
}

/* Recognises a bzImage (setup header) or a plain vmlinux ELF and fills k->info. */
static int parse_image(struct kernel_image *k, char **error)
{
    struct boot_kernel_info *info = &k->info;
    const uint8_t *d = k->data;
    memset(info, 0, sizeof(*info));
    if (k->len >= 4 && memcmp(d, "\x7F" "ELF", 4) == 0) {
        struct elf_image e;
        int r = parse_elf(k->path, d, k->len, &e, error);
        if (r < 0)
            return r;
        info->is_elf = true;
        info->can_boot_64 = true;
        info->format = BOOT_PAYLOAD_NONE;
        info->pref_address = e.start;
        info->init_size = (uint32_t)MIN(e.end - e.start, UINT32_MAX);
        info->kernel_alignment = SYNTH_KERNEL_ALIGNMENT;
        info->initrd_addr_max = SYNTH_INITRD_ADDR_MAX;
        info->cmdline_size = SYNTH_CMDLINE_SIZE;
        find_linux_version(d, k->len, info->version, sizeof(info->version));
        return 0;
    }
    if (k->len < HDR_END_MAX || le32_load(d + HDR_HEADER) != HDR_MAGIC) {
        bool short_file = k->len < HDR_END_MAX;
        *error = g_strdup_printf("%s: not a Linux kernel (%s)", k->path,
                                 short_file ? "file too short for a bzImage header and no ELF magic"
                                            : "no bzImage \"HdrS\" header and no ELF magic");
        return -ENOEXEC;
    }
    info->protocol = le16_load(d + HDR_VERSION);
    if (info->protocol < MIN_PROTOCOL) {
        *error = g_strdup_printf("%s: boot protocol %u.%02u is too old; deskvm needs 2.06 or newer", k->path,
                                 info->protocol >> 8, info->protocol & 0xFF);
        return -ENOTSUP;
    }
    unsigned sects = d[HDR_SETUP_SECTS] ? d[HDR_SETUP_SECTS] : 4;
    k->setup_size = (size_t)(sects + 1) * 512;
    uint64_t sys_bytes = (uint64_t)le32_load(d + HDR_SYSSIZE) * 16;
    if (k->len < k->setup_size || k->len - k->setup_size < sys_bytes || k->len == k->setup_size) {
        *error = g_strdup_printf("%s: truncated bzImage (%zu bytes; the header promises %llu)", k->path,
                                 k->len, (unsigned long long)(k->setup_size + sys_bytes));
        return -ENOEXEC;
    }
    k->pm = d + k->setup_size;
    k->pm_len = k->len - k->setup_size;
    k->hdr_end = MIN((size_t)HDR_JUMP + 2 + d[HDR_JUMP + 1], (size_t)HDR_END_MAX);

    uint16_t kv = le16_load(d + HDR_KERNEL_VERSION);
    if (kv && kv + 0x200U < k->setup_size) {
        const uint8_t *s = d + kv + 0x200;
        size_t n = 0;
        while (n + 1 < sizeof(info->version) && kv + 0x200U + n < k->setup_size && s[n] >= 0x20 &&
               s[n] < 0x7F)
            n++;
        memcpy(info->version, s, n);
        info->version[n] = 0;
    }
    info->initrd_addr_max = le32_load(d + HDR_INITRD_ADDR_MAX);
    info->kernel_alignment = le32_load(d + HDR_KERNEL_ALIGNMENT);
    info->relocatable = d[HDR_RELOCATABLE_KERNEL] != 0;
    info->cmdline_size = info->protocol >= 0x0206 ? le32_load(d + HDR_CMDLINE_SIZE) : 255;
    info->can_boot_64 =
        info->protocol >= XLOADFLAGS_PROTOCOL && (le16_load(d + HDR_XLOADFLAGS) & XLF_KERNEL_64);
    if (info->protocol >= 0x020A) {
        info->pref_address = le64_load(d + HDR_PREF_ADDRESS);
        info->init_size = le32_load(d + HDR_INIT_SIZE);
    }
    if (info->protocol >= 0x0208) {
        uint32_t off = le32_load(d + HDR_PAYLOAD_OFFSET), plen = le32_load(d + HDR_PAYLOAD_LENGTH);
        if (off > k->pm_len || plen > k->pm_len - off) {
            *error = g_strdup_printf("%s: truncated bzImage (payload at %u+%u runs past the end of the file)",
                                     k->path, off, plen);
            return -ENOEXEC;
        }
        k->payload = k->pm + off;
        k->payload_len = plen;
        info->payload_length = plen;
        info->format = boot_payload_detect(k->payload, plen);
        if (info->format != BOOT_PAYLOAD_NONE && plen >= 4)
            info->decompressed_size_hint = le32_load(k->payload + plen - 4);
    }
    if (!info->can_boot_64) {
        *error = g_strdup_printf("%s: a 32-bit-only kernel (no XLF_KERNEL_64 64-bit entry, boot protocol "
                                 "%u.%02u); deskvm boots 64-bit kernels only", k->path, info->protocol >> 8,
                                 info->protocol & 0xFF);
        return -ENOTSUP;
    }
    return 0;
}

static int open_kernel(const char *path, struct kernel_image *k, char **error)
{
    memset(k, 0, sizeof(*k));
    k->path = path;
    int r = read_whole_file(path, &k->data, &k->len, error);
    if (r < 0)
        return r;
    r = parse_image(k, error);
    if (r < 0) {
        g_free(k->data);
        k->data = NULL;
    }
    return r;
}

int boot_linux_info(const char *path, struct boot_kernel_info *out, char **error)
{
    struct kernel_image k;
    int r = open_kernel(path, &k, error);
    if (r < 0)
        return r;
    *out = k.info;
    g_free(k.data);
    return 0;
}

/* The decompressed vmlinux of a bzImage, from the cache or the decompressor. *owned is what to g_free. */
static int get_vmlinux(const struct kernel_image *k, const struct boot_linux_config *cfg, const uint8_t **elf,
                       size_t *elf_len, uint8_t **owned, struct boot_linux_result *res, char **error)
{
    uint64_t t0 = now_ns();
    if (k->info.format == BOOT_PAYLOAD_NONE) {
        *elf = k->payload;
        *elf_len = k->payload_len;
        return 0;
    }
    char *cache = cfg->use_cache ? boot_payload_cache_path(k->data, k->len) : NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (cache && boot_payload_cache_load(cache, &buf, &len)) {
        struct elf_image e;
        char *why = NULL;
        uint32_t hint = k->info.decompressed_size_hint;
        if ((hint && len != hint) || parse_elf(cache, buf, len, &e, &why) < 0) {
            log_warn("boot: ignoring the cached payload %s: %s", cache, why ? why : "wrong size");
            g_free(why);
            g_clear_pointer(&buf, g_free);
        } else {
            res->from_cache = true;
        }
    }
    if (!buf) {
        char *why = NULL;
        int r = boot_payload_decompress(k->info.format, k->payload, k->payload_len,
                                        k->info.decompressed_size_hint, &buf, &len, &why);
        if (r < 0) {
            *error = g_strdup_printf("%s: %s payload: %s", k->path, boot_payload_format_name(k->info.format),
                                     why);
            g_free(why);
            g_free(cache);
            return r == -ENOTSUP ? -ENOEXEC : r;
        }
        if (cache)
            boot_payload_cache_store(cache, buf, len);
    }
    g_free(cache);
    res->decompress_ns = now_ns() - t0;
    res->decompressed_size = len;
    *elf = buf;
    *elf_len = len;
    *owned = buf;
    return 0;
}

static uint64_t low_ram_top(const struct guest_memory *gm)
{
    for (unsigned i = 0; i < gm->nslots; i++)
        if (gm->slots[i].gpa == 0)
            return gm->slots[i].size;
    return 0;
}

/* Builds the zero page in host memory. */
static void build_boot_params(uint8_t *bp, const struct kernel_image *k, const struct boot_linux_config *cfg,
                              const struct boot_linux_result *res, const struct e820_entry *e820, unsigned ne,
                              bool have_seed)
{
    memset(bp, 0, BP_SIZE);
    if (k->info.is_elf) {
        bp[HDR_JUMP + 1] = (uint8_t)(HDR_INIT_SIZE + 4 - (HDR_JUMP + 2));
        le16_store(bp + HDR_BOOT_FLAG, BOOT_FLAG_MAGIC);
        le32_store(bp + HDR_HEADER, HDR_MAGIC);
        le16_store(bp + HDR_VERSION, SYNTH_PROTOCOL);
        le32_store(bp + HDR_INITRD_ADDR_MAX, k->info.initrd_addr_max);
        le32_store(bp + HDR_KERNEL_ALIGNMENT, k->info.kernel_alignment);
        le16_store(bp + HDR_XLOADFLAGS, XLF_KERNEL_64);
        le32_store(bp + HDR_CMDLINE_SIZE, k->info.cmdline_size);
        le64_store(bp + HDR_PREF_ADDRESS, k->info.pref_address);
        le32_store(bp + HDR_INIT_SIZE, k->info.init_size);
    } else {
        memcpy(bp + HDR_START, k->data + HDR_START, k->hdr_end - HDR_START);
    }
    bp[HDR_TYPE_OF_LOADER] = TYPE_OF_LOADER_UNDEFINED;
    bp[HDR_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
    le16_store(bp + HDR_HEAP_END_PTR, HEAP_END_PTR);
    le16_store(bp + HDR_VID_MODE, VID_MODE_NORMAL);
    if (!res->direct)
        le32_store(bp + HDR_CODE32_START, (uint32_t)BOOT_PM_LOAD_ADDR);
    le32_store(bp + HDR_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_ADDR);
    le32_store(bp + BP_EXT_CMD_LINE_PTR, (uint32_t)(BOOT_CMDLINE_ADDR >> 32));
    le32_store(bp + HDR_RAMDISK_IMAGE, (uint32_t)res->initrd_addr);
    le32_store(bp + HDR_RAMDISK_SIZE, (uint32_t)res->initrd_size);
    le32_store(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(res->initrd_addr >> 32));
    le32_store(bp + BP_EXT_RAMDISK_SIZE, (uint32_t)(res->initrd_size >> 32));
    le64_store(bp + HDR_SETUP_DATA, have_seed ? BOOT_SETUP_DATA_ADDR : 0);
    le64_store(bp + BP_ACPI_RSDP_ADDR, cfg->acpi_rsdp_addr);
    bp[BP_E820_ENTRIES] = (uint8_t)ne;
    for (unsigned i = 0; i < ne; i++) {
        uint8_t *ent = bp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;
        le64_store(ent, e820[i].addr);
        le64_store(ent + 8, e820[i].size);
        le32_store(ent + 16, e820[i].type);
    }
}

/* Writes the setup_data RNG seed entry; false if no randomness could be had (the entry is then left out). */
static bool write_rng_seed(struct guest_memory *gm)
{
    uint8_t sd[SETUP_DATA_HEADER + RNG_SEED_BYTES];
    memset(sd, 0, sizeof(sd));
    le32_store(sd + 8, SETUP_RNG_SEED);
    le32_store(sd + 12, RNG_SEED_BYTES);
    if (getrandom(sd + SETUP_DATA_HEADER, RNG_SEED_BYTES, GRND_NONBLOCK) != RNG_SEED_BYTES) {
        log_warn("boot: getrandom failed (%s); booting without an RNG seed", g_strerror(errno));
        return false;
    }
    bool ok = guest_mem_write(gm, BOOT_SETUP_DATA_ADDR, sd, sizeof(sd)) == 0;
    explicit_bzero(sd, sizeof(sd));
    return ok;
}

/* Reads an initrd file straight into guest RAM. */
static int read_initrd(int fd, const char *path, struct guest_memory *gm, uint64_t addr, uint64_t size,
                       char **error)
{
    uint8_t *dst = guest_mem_map_write(gm, addr, size);
    if (!dst) {
        *error = g_strdup_printf("%s: initrd range 0x%llx+0x%llx is not RAM", path, (unsigned long long)addr,
                                 (unsigned long long)size);
        return -ENOMEM;
    }
    uint64_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, dst + got, MIN(size - got, (uint64_t)1 << 30), (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            *error = g_strdup_printf("%s: read failed: %s", path, n < 0 ? g_strerror(e) : "file shrank");
            return -e;
        }
        got += (uint64_t)n;
    }
    return 0;
}

/* Chooses where the kernel goes and checks it fits in RAM. */
static int place_kernel(struct machine *m, const struct kernel_image *k, const struct elf_image *e,
                        struct boot_linux_result *res, char **error)
{
    if (res->direct) {
        res->entry = e->entry;
        res->kernel_start = e->start;
        res->kernel_end = e->end;
        res->nsegments = e->nseg;
        for (unsigned i = 0; i < e->nseg; i++) {
            res->segments[i].paddr = e->seg[i].paddr;
            res->segments[i].filesz = e->seg[i].filesz;
            res->segments[i].memsz = e->seg[i].memsz;
        }
        /* Keep free what the kernel's own decompressor would own: init_size from the load address. */
        if (!k->info.is_elf)
            res->kernel_end = MAX(res->kernel_end, e->start + k->info.init_size);
    } else {
        res->entry = BOOT_PM_LOAD_ADDR + PM_ENTRY_64;
        res->kernel_start = BOOT_PM_LOAD_ADDR;
        res->kernel_end = MAX(BOOT_PM_LOAD_ADDR + k->pm_len, k->info.pref_address + k->info.init_size);
        res->nsegments = 1;
        res->segments[0].paddr = BOOT_PM_LOAD_ADDR;
        res->segments[0].filesz = res->segments[0].memsz = k->pm_len;
    }
    uint64_t ram_mib = m->mem.ram_size >> 20;
    for (unsigned i = 0; i < res->nsegments; i++)
        if (!guest_memory_is_ram(&m->mem, res->segments[i].paddr, res->segments[i].memsz)) {
            *error = g_strdup_printf("%s: guest RAM (%llu MiB) is too small: the kernel segment at "
                                     "0x%llx-0x%llx is not in RAM", k->path, (unsigned long long)ram_mib,
                                     (unsigned long long)res->segments[i].paddr,
                                     (unsigned long long)(res->segments[i].paddr + res->segments[i].memsz));
            return -ENOMEM;
        }
    if (!guest_memory_is_ram(&m->mem, res->kernel_start, res->kernel_end - res->kernel_start)) {
        *error = g_strdup_printf("%s: guest RAM (%llu MiB) is too small: the kernel needs RAM up to 0x%llx",
                                 k->path, (unsigned long long)ram_mib, (unsigned long long)res->kernel_end);
        return -ENOMEM;
    }
    return 0;
}

/* Initrd as high as possible below min(initrd_addr_max, top of low RAM), page-aligned, above the kernel. */
static int place_initrd(struct machine *m, const struct kernel_image *k, const char *path, uint64_t size,
                        struct boot_linux_result *res, char **error)
{
    uint64_t limit = MIN((uint64_t)k->info.initrd_addr_max + 1, low_ram_top(&m->mem));
    uint64_t floor = align_up(res->kernel_end, GUEST_PAGE_SIZE);
    uint64_t room = limit > floor ? (limit - floor) & ~(GUEST_PAGE_SIZE - 1) : 0;
    if (size > room) {
        *error = g_strdup_printf("%s: the initrd (%llu KiB) does not fit: only %llu KiB are free between "
                                 "the kernel's end (0x%llx) and 0x%llx (the lower of initrd_addr_max and the "
                                 "top of low RAM, with %llu MiB of RAM)",
                                 path, (unsigned long long)(size >> 10), (unsigned long long)(room >> 10),
                                 (unsigned long long)floor, (unsigned long long)limit,
                                 (unsigned long long)(m->mem.ram_size >> 20));
        return -EFBIG;
    }
    res->initrd_addr = (limit - size) & ~(GUEST_PAGE_SIZE - 1);
    res->initrd_size = size;
    return 0;
}

static int write_kernel(struct guest_memory *gm, const struct kernel_image *k, const uint8_t *elf,
                        const struct elf_image *e, const struct boot_linux_result *res)
{
    if (!res->direct)
        return guest_mem_write(gm, BOOT_PM_LOAD_ADDR, k->pm, k->pm_len);
    for (unsigned i = 0; i < e->nseg; i++) {
        int r = guest_mem_write(gm, e->seg[i].paddr, elf + e->seg[i].offset, e->seg[i].filesz);
        if (r == 0)
            r = guest_mem_fill(gm, e->seg[i].paddr + e->seg[i].filesz, 0, e->seg[i].memsz - e->seg[i].filesz);
        if (r < 0)
            return r;
    }
    return 0;
}

static int write_boot_data(struct machine *m, const struct kernel_image *k,
                           const struct boot_linux_config *cfg, const char *cmdline,
                           struct boot_linux_result *res)
{
    struct e820_entry e820[E820_MAX_ENTRIES_ZEROPAGE];
    unsigned ne = e820_build(&m->mem, e820, E820_MAX_ENTRIES_ZEROPAGE);
    res->e820_entries = ne;
    int r = guest_mem_write(&m->mem, BOOT_CMDLINE_ADDR, cmdline, strlen(cmdline) + 1);
    if (r < 0)
        return r;
    bool seed = write_rng_seed(&m->mem);
    uint8_t *bp = g_malloc(BP_SIZE);
    build_boot_params(bp, k, cfg, res, e820, ne, seed);
    r = guest_mem_write(&m->mem, BOOT_PARAMS_ADDR, bp, BP_SIZE);
    g_free(bp);
    if (r < 0)
        return r;
    return boot_pagetables_setup(&m->mem, res->entry, BOOT_PARAMS_ADDR, &res->cpu);
}

static int open_initrd(const char *path, int *fd, uint64_t *size, char **error)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        int e = errno;
        *error = g_strdup_printf("%s: %s", path, g_strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *error = g_strdup_printf("%s: not a regular file", path);
        close(*fd);
        *fd = -1;
        return -EINVAL;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

int boot_linux_load(struct machine *m, const struct boot_linux_config *cfg, struct boot_linux_result *out,
                    char **error)
{
    struct kernel_image k;
    memset(out, 0, sizeof(*out));
    int r = open_kernel(cfg->kernel_path, &k, error);
    if (r < 0)
        return r;
    const char *cmdline = cfg->cmdline ? cfg->cmdline : "";
    size_t cmdlen = strlen(cmdline);
    uint64_t cmdmax = MIN((uint64_t)k.info.cmdline_size, BOOT_CMDLINE_MAX);
    int initrd_fd = -1;
    uint8_t *owned = NULL;
    if (cmdlen > cmdmax) {
        *error = g_strdup_printf("%s: the command line is %zu bytes; this kernel accepts at most %llu",
                                 cfg->kernel_path, cmdlen, (unsigned long long)cmdmax);
        r = -E2BIG;
        goto out;
    }
    memcpy(out->version, k.info.version, sizeof(out->version));
    out->format = k.info.format;
    out->direct = k.info.is_elf || boot_payload_format_supported(k.info.format);

    const uint8_t *elf = k.data;
    size_t elf_len = k.len;
    struct elf_image e = {0};
    if (!k.info.is_elf && out->direct) {
        r = get_vmlinux(&k, cfg, &elf, &elf_len, &owned, out, error);
        if (r < 0)
            goto out;
    } else if (!out->direct) {
        log_info("boot: %s: %s payload, which deskvm cannot decompress; the kernel will decompress itself",
                 cfg->kernel_path, boot_payload_format_name(k.info.format));
    }
    if (out->direct) {
        char *what = k.info.is_elf ? g_strdup(cfg->kernel_path)
                                   : g_strdup_printf("%s: decompressed payload", cfg->kernel_path);
        r = parse_elf(what, elf, elf_len, &e, error);
        g_free(what);
        if (r < 0)
            goto out;
        if (out->format == BOOT_PAYLOAD_NONE)
            out->decompressed_size = elf_len;
    }
    r = place_kernel(m, &k, &e, out, error);
    if (r < 0)
        goto out;

    uint64_t initrd_size = 0;
    if (cfg->initrd_path) {
        r = open_initrd(cfg->initrd_path, &initrd_fd, &initrd_size, error);
        if (r < 0)
            goto out;
        if (initrd_size) {
            r = place_initrd(m, &k, cfg->initrd_path, initrd_size, out, error);
            if (r < 0)
                goto out;
        }
    }

    machine_lock(m);
    r = write_kernel(&m->mem, &k, elf, &e, out);
    if (r == 0 && initrd_size)
        r = read_initrd(initrd_fd, cfg->initrd_path, &m->mem, out->initrd_addr, initrd_size, error);
    else if (r < 0)
        *error = g_strdup_printf("%s: the kernel does not fit in guest RAM", cfg->kernel_path);
    if (r == 0) {
        r = write_boot_data(m, &k, cfg, cmdline, out);
        if (r < 0) {
            r = -ENOMEM;
            *error = g_strdup_printf("%s: guest RAM (%llu MiB) is too small for the boot data below 1 MiB",
                                     cfg->kernel_path, (unsigned long long)(m->mem.ram_size >> 20));
        }
    }
    machine_unlock(m);
out:
    if (initrd_fd >= 0)
        close(initrd_fd);
    g_free(owned);
    g_free(k.data);
    return r;
}
