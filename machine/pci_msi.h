/* Message-signalled interrupts for PCI functions: the MSI and MSI-X capabilities, the MSI-X table and
 * pending-bit array inside a BAR, and pci_msi_notify, the one call a device uses to interrupt the guest. */
#ifndef DESKVM_PCI_MSI_H
#define DESKVM_PCI_MSI_H

#include <stdbool.h>
#include <stdint.h>

struct pci_device;

/* MSI capability (PCI Local Bus 3.0, 6.8.1). Offsets relative to the capability. */
#define PCI_MSI_FLAGS 0x02
#define PCI_MSI_FLAGS_ENABLE 0x0001
#define PCI_MSI_FLAGS_QMASK 0x000e /* Multiple Message Capable, log2 */
#define PCI_MSI_FLAGS_QSIZE 0x0070 /* Multiple Message Enable, log2 */
#define PCI_MSI_FLAGS_64BIT 0x0080
#define PCI_MSI_FLAGS_MASKBIT 0x0100 /* per-vector masking capable */
#define PCI_MSI_ADDRESS_LO 0x04
#define PCI_MSI_ADDRESS_HI 0x08 /* 64-bit layout only */
#define PCI_MSI_DATA_32 0x08
#define PCI_MSI_MASK_32 0x0c
#define PCI_MSI_PENDING_32 0x10
#define PCI_MSI_DATA_64 0x0c
#define PCI_MSI_MASK_64 0x10
#define PCI_MSI_PENDING_64 0x14
#define PCI_MSI_MAX_VECTORS 32

/* MSI-X capability (PCI Local Bus 3.0, 6.8.2). */
#define PCI_MSIX_FLAGS 0x02
#define PCI_MSIX_FLAGS_QSIZE 0x07ff /* table size - 1 */
#define PCI_MSIX_FLAGS_MASKALL 0x4000
#define PCI_MSIX_FLAGS_ENABLE 0x8000
#define PCI_MSIX_TABLE 0x04
#define PCI_MSIX_PBA 0x08
#define PCI_MSIX_BIR_MASK 0x7
#define PCI_MSIX_CAP_SIZE 12
#define PCI_MSIX_MAX_VECTORS 2048
/* Table entries, 16 bytes each. */
#define PCI_MSIX_ENTRY_SIZE 16
#define PCI_MSIX_ENTRY_LOWER_ADDR 0x0
#define PCI_MSIX_ENTRY_UPPER_ADDR 0x4
#define PCI_MSIX_ENTRY_DATA 0x8
#define PCI_MSIX_ENTRY_VECTOR_CTRL 0xc
#define PCI_MSIX_ENTRY_CTRL_MASKBIT 0x1

struct pci_msi {
    uint8_t cap;     /* capability offset; 0: the function has no MSI */
    uint8_t vectors; /* Multiple Message Capable: 1, 2, 4, 8, 16 or 32 */
    bool is64;
    bool maskable;
};

struct pci_msix {
    uint8_t cap; /* capability offset; 0: the function has no MSI-X */
    uint16_t vectors;
    uint8_t table_bar, pba_bar;
    uint32_t table_offset, pba_offset;
    uint8_t *table; /* vectors * 16 bytes, exactly as the guest sees them */
    uint64_t *pba;  /* pending bits, one per vector */
};

/* Adds an MSI capability asking for `vectors` messages (a power of two, 1..32), with a 64-bit address and
 * per-vector mask/pending registers if asked. Returns the capability offset or a negative errno. */
int pci_msi_init(struct pci_device *dev, unsigned vectors, bool is64, bool maskable);

/* Adds an MSI-X capability with nvectors (1..2048) whose table and pending-bit array live in memory BARs
 * already declared with pci_register_bar (they may share one BAR); offsets are 8-byte aligned and the
 * structures must fit in their BARs without overlapping each other. Accesses to those ranges are served here,
 * the rest of the BAR still goes to the device's ops. Every vector starts masked. Returns the capability
 * offset or a negative errno. */
int pci_msix_init(struct pci_device *dev, unsigned nvectors, unsigned table_bar, uint32_t table_offset,
                  unsigned pba_bar, uint32_t pba_offset);

bool pci_msi_enabled(const struct pci_device *dev);
bool pci_msix_enabled(const struct pci_device *dev);

/* What pci_msi_notify did. */
enum pci_notify_result {
    PCI_NOTIFY_SENT,    /* an MSI-X or MSI message went to the irqchip */
    PCI_NOTIFY_PENDING, /* the vector is masked: its pending bit is set, delivery follows the unmask */
    PCI_NOTIFY_INTX,    /* neither is enabled: the INTx pin was asserted (the device lowers it on its ack) */
    PCI_NOTIFY_DROPPED, /* bus mastering is off: a function may not send messages */
};

/* Signals interrupt `vector` the way the guest set the function up: MSI-X if enabled, else MSI (a vector
 * beyond the enabled message count folds onto the enabled ones), else INTx. Returns an enum
 * pci_notify_result, or -EINVAL for a vector the function does not have (at most max(MSI-X table size, MSI
 * vectors, 1)); vector numbers often come from guest-written registers, so that is logged, rate-limited, not
 * fatal. */
int pci_msi_notify(struct pci_device *dev, unsigned vector);

/* Whether an MSI-X vector's pending bit is set (tests, devices that poll). */
bool pci_msix_is_pending(const struct pci_device *dev, unsigned vector);

/* ---- for the PCI core */

/* After a guest write to [offset, offset+size) of config space. */
void pci_msi_config_written(struct pci_device *dev, unsigned offset, unsigned size);
/* Serves an access to BAR `bar` at offset if it falls in the MSI-X table or PBA; returns false otherwise. */
bool pci_msix_bar_access(struct pci_device *dev, unsigned bar, uint64_t offset, unsigned size, bool is_write,
                         uint64_t *value);
/* Masks every MSI-X vector and clears the pending bits (config-space state is reset by the core). */
void pci_msi_reset(struct pci_device *dev);
void pci_msi_cleanup(struct pci_device *dev);

#endif
