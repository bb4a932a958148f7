/* The BIOS-style e820 memory map a Linux guest receives in its boot_params, derived from the machine's RAM
 * layout (guest_memory.h) and the fixed reserved ranges of docs/machine.md. */
#ifndef DESKVM_E820_H
#define DESKVM_E820_H

#include <stdint.h>

#include "guest_memory.h"

/* Entry types (ACPI "Address Range Types"). */
#define E820_TYPE_RAM 1
#define E820_TYPE_RESERVED 2
#define E820_TYPE_ACPI 3
#define E820_TYPE_NVS 4

/* The zero page holds at most this many entries. */
#define E820_MAX_ENTRIES_ZEROPAGE 128

/* Fixed ranges of the PC map. */
#define E820_EBDA_START 0x9FC00ULL  /* extended BIOS data area, as on a real PC: 0x9FC00-0x9FFFF reserved */
#define E820_LOW_RAM_END 0xA0000ULL /* 0xA0000-0xDFFFF: legacy VGA/option ROM hole, not in the map */
#define E820_BIOS_START 0xE0000ULL  /* 0xE0000-0xFFFFF reserved: ACPI tables (RSDP scan area) */
#define E820_HIGH_MEMORY 0x100000ULL
#define E820_ECAM_BASE GUEST_MEMORY_LOW_LIMIT /* PCI MMCONFIG, buses 0-255 */
#define E820_ECAM_SIZE 0x10000000ULL

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

/* Fills out[0..max) with the map of a machine with this memory, sorted by address and non-overlapping.
 * Returns the number of entries written (at most 6, fewer if max is smaller). */
unsigned e820_build(const struct guest_memory *gm, struct e820_entry *out, unsigned max);

#endif
