/* A PCI test function (1b36:0005, class 0x00ff00) with one BAR of each kind, registers that echo and record
 * writes, and triggers for INTx, MSI/MSI-X and a one-dword DMA: for unit tests and boot payloads. */
#ifndef DESKVM_PCI_TESTDEV_H
#define DESKVM_PCI_TESTDEV_H

#include <stdint.h>

#include "machine.h"
#include "pci.h"

#define PCI_TESTDEV_VENDOR_ID 0x1b36
#define PCI_TESTDEV_DEVICE_ID 0x0005
#define PCI_TESTDEV_CLASS 0x00ff00
#define PCI_TESTDEV_SLOT 31 /* where pci_testdev_device puts it: INTA is GSI 19 */

/* BAR0: 4 KiB 32-bit MMIO: the registers below at 0x00-0x3B, the MSI-X table (8 vectors) at 0x800, its PBA at
 *       0xC00.
 * BAR1: 32 bytes of I/O: the registers 0x00-0x1F again.
 * BAR2: 1 MiB 64-bit prefetchable MMIO: 4 KiB of scratch memory repeated over the whole BAR; any access size.
 * Registers are dwords. Naturally aligned reads of 1, 2, 4 or 8 bytes work (8 = two registers); writes take
 * effect when they are 4 or 8 bytes and aligned. Every write to BAR0/1/2 (outside the MSI-X structures) is
 * counted and recorded, whatever its size, before it acts. */
#define PCI_TESTDEV_BAR_REGS 0
#define PCI_TESTDEV_BAR_IO 1
#define PCI_TESTDEV_BAR_MEM 2
#define PCI_TESTDEV_REGS_SIZE 0x1000
#define PCI_TESTDEV_IO_SIZE 0x20
#define PCI_TESTDEV_MEM_SIZE 0x100000
#define PCI_TESTDEV_SCRATCH_SIZE 0x1000

#define PCI_TESTDEV_ID 0x00            /* RO: PCI_TESTDEV_MAGIC */
#define PCI_TESTDEV_SCRATCH 0x04       /* RW: echoes what was written */
#define PCI_TESTDEV_INTX 0x08          /* RW: bit 0 is the level driven on INTA */
#define PCI_TESTDEV_NOTIFY 0x0c        /* W: pci_msi_notify(dev, value); R: its result (-EINVAL as int32) */
#define PCI_TESTDEV_WRITE_COUNT 0x10   /* RO: writes seen (wraps) */
#define PCI_TESTDEV_LAST_BAR 0x14      /* RO: BAR of the last write */
#define PCI_TESTDEV_LAST_OFFSET 0x18   /* RO: its offset within that BAR */
#define PCI_TESTDEV_LAST_SIZE 0x1c     /* RO: its size in bytes */
#define PCI_TESTDEV_LAST_VALUE_LO 0x20 /* RO: its value */
#define PCI_TESTDEV_LAST_VALUE_HI 0x24
#define PCI_TESTDEV_DMA_ADDR_LO 0x28 /* RW: guest physical address for DMA */
#define PCI_TESTDEV_DMA_ADDR_HI 0x2c
#define PCI_TESTDEV_DMA_VALUE 0x30  /* RW: the dword to write / the dword read */
#define PCI_TESTDEV_DMA_CTRL 0x34   /* W: one of the commands below; R: 0 */
#define PCI_TESTDEV_DMA_STATUS 0x38 /* RO: result of the last command */
#define PCI_TESTDEV_MSIX_TABLE 0x800
#define PCI_TESTDEV_MSIX_PBA 0xc00
#define PCI_TESTDEV_MSIX_VECTORS 8
#define PCI_TESTDEV_MSI_VECTORS 4 /* 64-bit, per-vector masking */

#define PCI_TESTDEV_MAGIC 0x54534554u /* "TEST" */
#define PCI_TESTDEV_DMA_WRITE 1       /* DMA_VALUE -> guest memory at DMA_ADDR */
#define PCI_TESTDEV_DMA_READ 2        /* guest memory at DMA_ADDR -> DMA_VALUE */
#define PCI_TESTDEV_DMA_OK 0
#define PCI_TESTDEV_DMA_NO_MASTER 1 /* bus mastering is off: nothing was accessed */
#define PCI_TESTDEV_DMA_FAULT 2     /* not RAM */
#define PCI_TESTDEV_DMA_BAD_CMD 3

/* Extended config space: a vendor-specific extended capability at 0x100 whose dword at +8 is a guest-writable
 * scratch register and whose dword at +12 reads PCI_TESTDEV_MAGIC. */
#define PCI_TESTDEV_VSEC 0x100
#define PCI_TESTDEV_VSEC_SCRATCH 0x108
#define PCI_TESTDEV_VSEC_MAGIC 0x10c

struct pci_testdev {
    struct pci_device pci;
    struct machine *m;
    uint32_t scratch;
    uint32_t intx;
    uint32_t notify_result;
    uint32_t write_count;
    uint32_t last_bar, last_offset, last_size;
    uint64_t last_value;
    uint64_t dma_addr;
    uint32_t dma_value, dma_status;
    uint8_t mem[PCI_TESTDEV_SCRATCH_SIZE];
};

/* Creates one at slot/fn of bus (tests create several). NULL with *error on failure. */
struct pci_testdev *pci_testdev_new(struct pci_bus *bus, unsigned slot, unsigned fn, char **error);
void pci_testdev_free(struct pci_testdev *td);
/* Device registers back to power-on values (PCI config state is reset by the host bridge). */
void pci_testdev_reset(struct pci_testdev *td);

/* One test function at PCI_TESTDEV_SLOT, function 0; needs pci_host_device listed before it. */
extern const struct machine_device pci_testdev_device;

#endif
