/* The ACPI tables of deskvm's PC (ACPI 6.x): RSDP, RSDT/XSDT, FADT with FACS and DSDT, MADT and MCFG, written
 * into guest RAM for a Linux guest booted without firmware. */
#ifndef DESKVM_ACPI_TABLES_H
#define DESKVM_ACPI_TABLES_H

#include <stdint.h>

#include "machine.h"

/* Where the tables live: guest RAM 0xE0000-0xFFFFF, which the e820 map marks reserved (E820_BIOS_START). The
 * RSDP comes first, at 0xE0000 (16-byte aligned), so a guest scanning 0xE0000-0xFFFFF finds it even without
 * boot_params.acpi_rsdp_addr; the other tables follow it in the same range. */
#define ACPI_TABLES_BASE 0xE0000ULL
#define ACPI_TABLES_SIZE 0x20000ULL
#define ACPI_RSDP_ADDR ACPI_TABLES_BASE

/* Fixed platform facts the tables announce (docs/machine.md, irqchip.h); PCI windows and INTx routing come
 * from pci_host.h and pci.h, the PM block from acpi_pm.h, the CMOS century register from rtc.h. */
#define ACPI_LAPIC_ADDR 0xFEE00000u
#define ACPI_IOAPIC_ADDR 0xFEC00000u
#define ACPI_IOAPIC_ID 0 /* the I/O APIC's ID register must reset to this */
#define ACPI_IOAPIC_GSI_BASE 0
#define ACPI_RESET_PORT 0xCF9
#define ACPI_RESET_VALUE 0x06

#define ACPI_OEM_ID "DESKVM"
#define ACPI_OEM_TABLE_ID "DESKVMPC"
#define ACPI_CREATOR_ID "DKVM"

/* Table sizes (fixed or per CPU) and header layout, exported for tests. */
#define ACPI_HEADER_SIZE 36
#define ACPI_RSDP_SIZE 36
#define ACPI_FADT_SIZE 276 /* revision 6 */
#define ACPI_FACS_SIZE 64
#define ACPI_MCFG_SIZE 60
#define ACPI_MADT_LAPIC_ENTRY_SIZE 8

/* Builds every table for m->config.cpus CPUs and writes them into guest memory at ACPI_TABLES_BASE (the whole
 * range ACPI_TABLES_BASE..+ACPI_TABLES_SIZE is rewritten, unused bytes zeroed). *rsdp_gpa gets the RSDP's
 * guest physical address for boot_params.acpi_rsdp_addr. Returns 0, or a negative errno with *error saying
 * why. */
int acpi_tables_build(struct machine *m, uint64_t *rsdp_gpa, char **error);

#endif
