/* PCI functions on bus 0: config space with enforced read-only and write-1-to-clear bits, capability lists,
 * BARs that appear on the machine's I/O buses as the guest enables them, and INTx routing. */
#ifndef DESKVM_PCI_H
#define DESKVM_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io_bus.h"
#include "pci_msi.h"

struct machine;

/* Geometry. One bus (0), 32 slots of 8 functions; devfn = slot << 3 | fn. */
#define PCI_SLOT_COUNT 32
#define PCI_FUNC_COUNT 8
#define PCI_DEVFN_COUNT (PCI_SLOT_COUNT * PCI_FUNC_COUNT)
#define PCI_DEVFN(slot, fn) ((unsigned)(slot) << 3 | (unsigned)(fn))
#define PCI_CONFIG_SPACE_SIZE 256   /* conventional PCI */
#define PCIE_CONFIG_SPACE_SIZE 4096 /* PCI Express extended config space */
#define PCI_BAR_COUNT 6
#define PCI_INTX_PINS 4

/* Type 0 configuration header (PCI Local Bus 3.0, 6.1). */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CLASS_DEVICE 0x0a
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER 0x0d
#define PCI_HEADER_TYPE 0x0e
#define PCI_BIST 0x0f
#define PCI_BASE_ADDRESS_0 0x10
#define PCI_CARDBUS_CIS 0x28
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_ROM_ADDRESS 0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d
#define PCI_MIN_GNT 0x3e
#define PCI_MAX_LAT 0x3f
#define PCI_CAP_START 0x40 /* first byte after the header, where capabilities go */

#define PCI_COMMAND_IO 0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_PARITY 0x0040
#define PCI_COMMAND_SERR 0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400

#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_STATUS_66MHZ 0x0020
#define PCI_STATUS_PARITY 0x0100 /* master data parity error, RW1C */
#define PCI_STATUS_SIG_TARGET_ABORT 0x0800
#define PCI_STATUS_REC_TARGET_ABORT 0x1000
#define PCI_STATUS_REC_MASTER_ABORT 0x2000
#define PCI_STATUS_SIG_SYSTEM_ERROR 0x4000
#define PCI_STATUS_DETECTED_PARITY 0x8000

#define PCI_HEADER_TYPE_NORMAL 0x00
#define PCI_HEADER_TYPE_MULTI_FUNCTION 0x80

/* The read-only low bits of a BAR, also used as the flags of pci_register_bar. */
#define PCI_BASE_ADDRESS_SPACE_IO 0x01
#define PCI_BASE_ADDRESS_MEM_TYPE_64 0x04
#define PCI_BASE_ADDRESS_MEM_PREFETCH 0x08
#define PCI_BASE_ADDRESS_MEM_MASK (~0x0fULL)
#define PCI_BASE_ADDRESS_IO_MASK (~0x03ULL)
#define PCI_BAR_MEM32 0
#define PCI_BAR_IO PCI_BASE_ADDRESS_SPACE_IO
#define PCI_BAR_MEM64 PCI_BASE_ADDRESS_MEM_TYPE_64
#define PCI_BAR_PREFETCH PCI_BASE_ADDRESS_MEM_PREFETCH

/* Capability IDs (PCI Code and ID Assignment). */
#define PCI_CAP_ID_PM 0x01
#define PCI_CAP_ID_MSI 0x05
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_EXP 0x10
#define PCI_CAP_ID_MSIX 0x11
#define PCI_EXT_CAP_ID_VNDR 0x000b
#define PCI_EXT_CAP_START 0x100

/* Class codes used here (base << 16 | sub << 8 | prog-if). */
#define PCI_CLASS_BRIDGE_HOST 0x060000

/* INTx: slot S, pin P (0 = INTA) is wired to GSI 16 + ((S + P) % 4), the classic swizzle (the DSDT's _PRT uses
 * pci_intx_gsi). Lines are level-triggered; a _PRT entry naming a GSI implies active low, which is how Linux
 * programs the IOAPIC pin. The wire carries "asserted = 1" either way: the IOAPIC model does not invert. */
#define PCI_INTX_GSI_BASE 16

struct pci_device;
struct pci_bus;

/* Config-space hooks for a device's own registers. NULL means the generic behaviour. offset + size never
 * crosses a dword and stays inside the function's config space. A hook usually calls pci_config_read_default
 * / pci_config_write_default and adds its side effects. */
struct pci_device_ops {
    uint32_t (*config_read)(struct pci_device *dev, unsigned offset, unsigned size);
    void (*config_write)(struct pci_device *dev, unsigned offset, uint32_t value, unsigned size);
    /* BAR n started decoding at addr (mapped) or stopped decoding at addr, whatever the cause (config write,
     * firmware assignment, reset, unregistering): for a device that backs a BAR with guest-memory device RAM
     * (a framebuffer) and moves it along. */
    void (*bar_mapped)(struct pci_device *dev, unsigned n, bool mapped, uint64_t addr);
};

struct pci_device_info {
    const char *name; /* for messages and region names; must outlive the device */
    uint16_t vendor_id, device_id;
    uint32_t class_code; /* base class << 16 | subclass << 8 | programming interface */
    uint8_t revision;
    uint16_t subsystem_vendor_id, subsystem_id;
    uint8_t interrupt_pin; /* 0: none, 1..4: INTA..INTD */
    bool express;          /* 4 KiB config space (extended capabilities reachable through ECAM) */
    const struct pci_device_ops *ops;
};

struct pci_bar {
    uint64_t size;   /* power of two; 0: not implemented (also the upper half of a 64-bit BAR) */
    uint8_t flags;   /* PCI_BAR_IO / PCI_BAR_MEM32 / PCI_BAR_MEM64 [| PCI_BAR_PREFETCH] */
    bool upper_half; /* this BAR holds the high dword of the BAR below it */
    uint8_t index;
    const struct io_ops *ops; /* the device's handlers; offsets are relative to the BAR */
    void *opaque;
    struct pci_device *dev;
    bool mapped; /* registered on m->pio or m->mmio at mapped_addr */
    uint64_t mapped_addr;
    uint64_t refused_addr; /* last address that could not be mapped (logged once), 0: none */
};

/* Embed in the device's state and reach the device with container_of. Plain data apart from the pointers set
 * up at creation. */
struct pci_device {
    const char *name;
    const struct pci_device_ops *ops;
    struct pci_bus *bus; /* NULL while not registered */
    uint8_t slot, fn;
    uint16_t config_size;
    uint8_t cap_last;      /* offset of the last capability in the list, 0: none */
    uint16_t cap_next;     /* where the next capability goes */
    uint16_t ext_cap_last; /* same for the extended list */
    uint16_t ext_cap_next; /* where the next extended capability goes */
    bool intx_level;       /* what the device drives on its pin, before INTx disable */
    struct io_guard guard; /* shared by all the device's BARs */
    struct pci_bar bars[PCI_BAR_COUNT];
    struct pci_msi msi;
    struct pci_msix msix;
    uint8_t config[PCIE_CONFIG_SPACE_SIZE];
    uint8_t wmask[PCIE_CONFIG_SPACE_SIZE];   /* bits the guest may write */
    uint8_t w1cmask[PCIE_CONFIG_SPACE_SIZE]; /* bits the guest clears by writing 1 */
};

struct pci_bus {
    struct machine *m;
    struct pci_device *devices[PCI_DEVFN_COUNT]; /* by devfn */
    uint8_t gsi_level[PCI_INTX_PINS];            /* last level driven on GSI 16 + i */
    bool resources_assigned;                     /* pci_host_assign_resources ran: redo it after a reset */
};

#ifndef container_of
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#endif

/* ---- building a function (at device creation, before pci_register_device) */

/* Fills in the header: IDs, class, pin, the writable command bits and RW1C status bits. */
void pci_device_init(struct pci_device *dev, const struct pci_device_info *info);
/* Declares BAR n: flags as above, size a power of two (memory >= 16 bytes, I/O 4..256 bytes); a 64-bit BAR
 * also takes n + 1. ops/opaque handle accesses (ops may be NULL for a BAR that only holds MSI-X structures).
 * Returns 0 or -EINVAL. */
int pci_register_bar(struct pci_device *dev, unsigned n, unsigned flags, uint64_t size,
                     const struct io_ops *ops, void *opaque);
/* Appends a capability of size bytes (>= 2) to the list, dword aligned, with its ID and next pointer filled
 * in; the rest is zero and read-only until the caller sets masks. Returns its offset or -ENOSPC. */
int pci_add_capability(struct pci_device *dev, uint8_t id, unsigned size);
/* Same for the extended list from 0x100 (express functions only); returns the offset, -EINVAL or -ENOSPC. */
int pci_add_ext_capability(struct pci_device *dev, uint16_t id, uint8_t version, unsigned size);
/* Offset of the first capability with this ID, 0 if none. */
unsigned pci_find_capability(const struct pci_device *dev, uint8_t id);

/* Device-side access to config space (no masks, no side effects). Little-endian; offsets must be in range. */
uint8_t pci_config_get8(const struct pci_device *dev, unsigned offset);
uint16_t pci_config_get16(const struct pci_device *dev, unsigned offset);
uint32_t pci_config_get32(const struct pci_device *dev, unsigned offset);
void pci_config_set8(struct pci_device *dev, unsigned offset, uint8_t v);
void pci_config_set16(struct pci_device *dev, unsigned offset, uint16_t v);
void pci_config_set32(struct pci_device *dev, unsigned offset, uint32_t v);
/* Sets the guest-writable (resp. write-1-to-clear) bits of size bytes at offset. */
void pci_config_set_wmask(struct pci_device *dev, unsigned offset, unsigned size, uint32_t mask);
void pci_config_set_w1cmask(struct pci_device *dev, unsigned offset, unsigned size, uint32_t mask);

/* The generic config access, for hooks to call. The write applies the masks, then reacts: command and BAR
 * changes remap BARs, INTx disable re-evaluates the pin, MSI/MSI-X changes deliver what became unmasked. */
uint32_t pci_config_read_default(struct pci_device *dev, unsigned offset, unsigned size);
void pci_config_write_default(struct pci_device *dev, unsigned offset, uint32_t value, unsigned size);

/* ---- the bus */

void pci_bus_init(struct pci_bus *bus, struct machine *m);
/* Puts the function at slot/fn. Returns 0, -EINVAL (bad slot/fn) or -EBUSY (taken). A function other than 0
 * is only found by guests if function 0 of its slot exists; the multi-function bit is kept up to date. */
int pci_register_device(struct pci_bus *bus, struct pci_device *dev, unsigned slot, unsigned fn);
/* Unmaps the BARs, drops INTx, leaves the bus and frees what pci_msix_init allocated. Safe on a function that
 * was never registered. */
void pci_unregister_device(struct pci_device *dev);
struct pci_device *pci_bus_get_device(const struct pci_bus *bus, unsigned slot, unsigned fn);

/* Guest config accesses (CF8/CFC and ECAM end here). reg + size must stay inside one dword; anything that
 * does not reach a function's config space (other bus, absent function, beyond its size) reads as all ones
 * and ignores writes. */
uint32_t pci_bus_config_read(struct pci_bus *bus, unsigned busnr, unsigned devfn, unsigned reg,
                             unsigned size);
void pci_bus_config_write(struct pci_bus *bus, unsigned busnr, unsigned devfn, unsigned reg, uint32_t value,
                          unsigned size);

/* Power-on state of the PCI part: every guest-writable config bit cleared (command 0, BARs 0, MSI/MSI-X off),
 * BARs unmapped, INTx dropped, MSI-X vectors masked, nothing pending. The host bridge's reset does this for
 * every function; devices reset only their own state. */
void pci_device_reset(struct pci_device *dev);

/* ---- BARs */

/* The address the BAR holds now (64-bit BARs combined), without the type bits. */
uint64_t pci_bar_address(const struct pci_device *dev, unsigned n);
/* Firmware-style assignment (does not change the command register). */
void pci_bar_set_address(struct pci_device *dev, unsigned n, uint64_t addr);

/* ---- interrupts */

/* GSI of slot's pin (0 = INTA .. 3 = INTD). */
unsigned pci_intx_gsi(unsigned slot, unsigned pin);
/* Drives the function's INTx pin. Status bit 3 follows the level; the line only rises while INTx disable is
 * clear and neither MSI nor MSI-X is enabled. Lines are shared: a GSI is high while any function on it is. */
void pci_set_irq(struct pci_device *dev, int level);

/* Bus mastering gates everything the function initiates: MSI/MSI-X messages are dropped while it is off, and
 * a device must check this before each DMA access to guest memory. */
static inline bool pci_bus_master_enabled(const struct pci_device *dev)
{
    return dev->config[PCI_COMMAND] & PCI_COMMAND_MASTER;
}

static inline uint16_t pci_command(const struct pci_device *dev)
{
    return (uint16_t)(dev->config[PCI_COMMAND] | dev->config[PCI_COMMAND + 1] << 8);
}

#endif
