/* The 64-bit entry environment for a directly booted kernel: a flat GDT, identity page tables for the first
 * 4 GiB (2 MiB pages) and the matching CPU state. */
#ifndef DESKVM_BOOT_PAGETABLES_H
#define DESKVM_BOOT_PAGETABLES_H

#include <stdint.h>

#include "boot_linux.h"
#include "guest_memory.h"

/* Page table entry bits. */
#define BOOT_PTE_P 0x001ULL
#define BOOT_PTE_RW 0x002ULL
#define BOOT_PTE_A 0x020ULL
#define BOOT_PTE_D 0x040ULL
#define BOOT_PTE_PS 0x080ULL

#define BOOT_GDT_ENTRIES 4
/* Flat descriptors: 64-bit code (L=1, D=0) and 32/64-bit data, both with the accessed bit preset so the CPU
 * never writes the GDT. */
#define BOOT_GDT_CODE64 0x00AF9B000000FFFFULL
#define BOOT_GDT_DATA 0x00CF93000000FFFFULL

/* Writes the GDT (BOOT_GDT_ADDR) and page tables (BOOT_PML4_ADDR...) into guest RAM and fills *cpu for long
 * mode at rip with rsi = boot_params. Returns 0 or -EFAULT if that low RAM is missing. */
int boot_pagetables_setup(struct guest_memory *gm, uint64_t rip, uint64_t boot_params,
                          struct boot_cpu_state *cpu);

#endif
