/* Direct Linux boot without firmware: reads a bzImage (or a plain vmlinux ELF), decompresses its payload in
 * the VMM, loads kernel, initrd, command line and boot_params into RAM, and describes the 64-bit entry. */
#ifndef DESKVM_BOOT_LINUX_H
#define DESKVM_BOOT_LINUX_H

#include <stdbool.h>
#include <stdint.h>

#include "boot_decompress.h"

struct machine;

/* Fixed low-memory layout, inside the first 640 KiB of RAM (all but the command line lie in the low 64 KiB
 * that Linux keeps reserved):
 *   0x01000-0x06FFF  boot stack (RSP starts at 0x7000)
 *   0x07000          boot_params ("zero page")
 *   0x08000          GDT
 *   0x08800          setup_data list (RNG seed)
 *   0x09000          PML4, 0x0A000 PDPT, 0x0B000-0x0EFFF four page directories (identity map of 0-4 GiB)
 *   0x20000-0x2FFFF  command line
 *   0x100000         the bzImage protected-mode part, when the kernel decompresses itself (fallback) */
#define BOOT_STACK_TOP 0x7000ULL
#define BOOT_PARAMS_ADDR 0x7000ULL
#define BOOT_GDT_ADDR 0x8000ULL
#define BOOT_SETUP_DATA_ADDR 0x8800ULL
#define BOOT_PML4_ADDR 0x9000ULL
#define BOOT_PDPT_ADDR 0xA000ULL
#define BOOT_PD_ADDR 0xB000ULL /* 4 pages */
#define BOOT_CMDLINE_ADDR 0x20000ULL
#define BOOT_CMDLINE_MAX 0xFFFFULL /* bytes before the terminating NUL */
#define BOOT_PM_LOAD_ADDR 0x100000ULL

/* Boot protocol selectors (__BOOT_CS, __BOOT_DS). */
#define BOOT_CS_SELECTOR 0x10
#define BOOT_DS_SELECTOR 0x18

/* Control register bits the entry state uses. */
#define BOOT_CR0_PE 0x00000001ULL
#define BOOT_CR0_ET 0x00000010ULL
#define BOOT_CR0_NE 0x00000020ULL
#define BOOT_CR0_PG 0x80000000ULL
#define BOOT_CR4_PAE 0x00000020ULL
#define BOOT_EFER_LME 0x00000100ULL
#define BOOT_EFER_LMA 0x00000400ULL

/* A segment register with its hidden part, field for field like KVM's struct kvm_segment. */
struct boot_segment {
    uint64_t base;
    uint32_t limit; /* byte granular, i.e. already scaled by G */
    uint16_t selector;
    uint8_t type; /* descriptor type: 0xB = code execute/read accessed (or busy TSS), 0x3 = data read/write */
    uint8_t present, dpl, db, s, l, g, avl;
    uint8_t unusable;
};

struct boot_dtable {
    uint64_t base;
    uint16_t limit;
};

/* The CPU state at the kernel's 64-bit entry. Registers not listed are zero. */
struct boot_cpu_state {
    uint64_t rip, rsp, rsi, rflags;
    uint64_t cr0, cr3, cr4, efer;
    struct boot_segment cs, ds, es, fs, gs, ss, tr, ldt;
    struct boot_dtable gdt, idt;
};

/* What a kernel file is, without loading it. */
struct boot_kernel_info {
    bool is_elf;              /* a plain vmlinux ELF, not a bzImage */
    uint16_t protocol;        /* boot protocol version, e.g. 0x020F (0 for an ELF) */
    bool can_boot_64;         /* XLF_KERNEL_64 (an ELF: ELF64 x86-64) */
    bool relocatable;
    enum boot_payload_format format;
    char version[128];        /* the kernel_version string, "" if none */
    uint32_t init_size;
    uint64_t pref_address;
    uint32_t kernel_alignment;
    uint32_t initrd_addr_max;
    uint32_t cmdline_size;
    uint32_t payload_length;
    uint32_t decompressed_size_hint; /* the size the kernel build appends to the payload, 0 if unknown */
};

/* Inspects a kernel file. Returns 0, or a negative errno with *error naming the file and the reason. */
int boot_linux_info(const char *path, struct boot_kernel_info *out, char **error);

struct boot_linux_config {
    const char *kernel_path;
    const char *initrd_path; /* NULL: none */
    const char *cmdline;     /* NULL: empty */
    uint64_t acpi_rsdp_addr; /* 0: none */
    /* Reuse/store the decompressed payload in ${DESKVM_CACHE:-~/.cache/deskvm}/vmlinux/<sha256 of file>. */
    bool use_cache;
};

#define BOOT_MAX_SEGMENTS 16

/* Facts about what was loaded, for logs and tests. */
struct boot_linux_result {
    struct boot_cpu_state cpu;
    enum boot_payload_format format;
    bool direct;            /* entered the decompressed vmlinux (else the bzImage decompresses itself) */
    bool from_cache;        /* the decompressed payload came from the cache */
    uint64_t decompressed_size;
    uint64_t decompress_ns; /* time spent decompressing (or reading the cache) */
    uint64_t entry;
    uint64_t kernel_start, kernel_end; /* RAM the kernel owns: segments, or [load, load + init_size) */
    unsigned nsegments;
    struct {
        uint64_t paddr, filesz, memsz;
    } segments[BOOT_MAX_SEGMENTS];
    uint64_t initrd_addr, initrd_size;
    unsigned e820_entries;
    char version[128];
};

/* Loads the kernel described by cfg into m's RAM and fills *out (including the entry CPU state). Returns 0,
 * or a negative errno with *error naming the file and the reason:
 *   -ENOEXEC  not a kernel, truncated or corrupt file     -ENOTSUP  boot protocol < 2.06, or no 64-bit entry
 *   -EFBIG    initrd does not fit below initrd_addr_max    -ENOMEM   guest RAM too small for the kernel
 *   -E2BIG    command line longer than the kernel accepts  other    the file could not be read */
int boot_linux_load(struct machine *m, const struct boot_linux_config *cfg, struct boot_linux_result *out,
                    char **error);

#endif
