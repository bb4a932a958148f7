/* The PCI host bridge: function 00:00.0, configuration mechanism #1 at ports 0xCF8-0xCFF, the ECAM window,
 * the firmware-style BAR allocator, and the address windows the ACPI tables (_CRS, MCFG) describe. */
#ifndef DESKVM_PCI_HOST_H
#define DESKVM_PCI_HOST_H

#include <stdint.h>

#include "machine.h"
#include "pci.h"

/* A neutral "generic PCIe host bridge" (Red Hat's 1b36:0008). No Linux driver or quirk binds to it, unlike
 * Q35's 8086:29C0, which intel-agp/intel-gtt recognise (as G33) and which implies MCH registers (PCIEXBAR,
 * PAM, SMRAM) that firmware would program and that we do not have. */
#define PCI_HOST_VENDOR_ID 0x1b36
#define PCI_HOST_DEVICE_ID 0x0008

/* Configuration mechanism #1 (PCI Local Bus 3.0, 3.2.2.3.2). Only dword accesses to 0xCF8 reach
 * CONFIG_ADDRESS; byte 0xCF9 is the reset control register, forwarded to sysctl_ports. Register bits 27:24
 * (extended registers) are not honoured: this path reaches the first 256 bytes only. */
#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA 0xcfc
#define PCI_CONFIG_ADDRESS_ENABLE 0x80000000u
#define PCI_CONFIG_ADDRESS_MASK 0x80fffffcu /* enable, bus, device, function, dword register */

/* Windows, for the DSDT's _CRS and the MCFG table. */
#define PCI_ECAM_BASE 0xB0000000ULL
#define PCI_ECAM_BUSES 256
#define PCI_ECAM_SIZE ((uint64_t)PCI_ECAM_BUSES << 20) /* bus << 20 | dev << 15 | fn << 12 | reg */
#define PCI_MMIO32_BASE 0xC0000000ULL
#define PCI_MMIO32_SIZE 0x3EC00000ULL /* up to 0xFEBFFFFF, below the IOAPIC */
#define PCI_IO_BASE 0xC000
#define PCI_IO_SIZE 0x4000 /* up to 0xFFFF */
/* The 64-bit window starts at 32 GiB, or for guests whose RAM reaches past that, at the first multiple of its
 * size above RAM: use pci_mmio64_base(ram_size) for the actual base. 32 GiB + 32 GiB keeps the window inside
 * 36 physical address bits for every guest with < 30.75 GiB of RAM, so it works on any host CPU. BARs only go
 * there when the 32-bit window cannot hold them (it is tried first, for guests and drivers that want 32-bit
 * BARs). */
#define PCI_MMIO64_BASE 0x800000000ULL
#define PCI_MMIO64_SIZE 0x800000000ULL

uint64_t pci_mmio64_base(uint64_t ram_size);

struct pci_host {
    struct pci_bus bus; /* m->pci */
    struct pci_device bridge;
    uint32_t config_address;
    struct io_guard guard;
};

/* Creates the bus and the bridge; m->pci points at the bus. List it before every PCI device, and after
 * sysctl_ports (whose port 0xCF9 it takes over and forwards). */
extern const struct machine_device pci_host_device;

/* What firmware would do before booting Linux: places every BAR of every function, naturally aligned, largest
 * first: memory BARs in the 32-bit window (64-bit BARs move to the 64-bit window only when the 32-bit one is
 * needed for the 32-bit-only BARs), I/O BARs in PCI_IO_BASE..+SIZE; then enables I/O and memory decoding
 * where something was placed and sets the interrupt line register to the pin's GSI. Bus mastering stays off.
 * Remembered, and redone after each machine reset. Returns 0, or -ENOSPC if some BAR did not fit (it is left
 * at 0, unmapped). */
int pci_host_assign_resources(struct pci_bus *bus);

#endif
