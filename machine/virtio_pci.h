/* virtio over PCI, modern transport only (virtio 1.1, 4.1): a PCI function 1af4:(1040 + device type) whose
 * common, notify, ISR and device configuration structures live in BAR 4, with MSI-X (table in BAR 1) and INTx
 * through the ISR. Device models build on virtio.h / virtqueue.h and get their function from
 * virtio_pci_create. */
#ifndef DESKVM_VIRTIO_PCI_H
#define DESKVM_VIRTIO_PCI_H

#include <stdint.h>

#include "pci.h"
#include "virtio.h"
#include "virtqueue.h"

#define VIRTIO_PCI_VENDOR_ID 0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE 0x1040 /* + device type */
#define VIRTIO_PCI_REVISION 1            /* non-transitional */
#define VIRTIO_PCI_SUBSYSTEM_ID 0x1100   /* >= 0x40 as the spec asks of modern devices */

/* Vendor capability (struct virtio_pci_cap) fields and types. */
#define VIRTIO_PCI_CAP_LEN 2
#define VIRTIO_PCI_CAP_CFG_TYPE 3
#define VIRTIO_PCI_CAP_BAR 4
#define VIRTIO_PCI_CAP_ID 5
#define VIRTIO_PCI_CAP_OFFSET 8
#define VIRTIO_PCI_CAP_LENGTH 12
#define VIRTIO_PCI_CAP_SIZE 16
#define VIRTIO_PCI_NOTIFY_CAP_MULT 16 /* notify_off_multiplier, in the 20-byte notify capability */
#define VIRTIO_PCI_CFG_DATA 16        /* pci_cfg_data, in the 20-byte PCI configuration access capability */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* Common configuration structure (4.1.4.3). */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF 0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF 0x0c
#define VIRTIO_PCI_COMMON_MSIX 0x10
#define VIRTIO_PCI_COMMON_NUMQ 0x12
#define VIRTIO_PCI_COMMON_STATUS 0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO 0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI 0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO 0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI 0x34
#define VIRTIO_PCI_COMMON_CFG_SIZE 0x38

/* BAR 4 (64-bit, prefetchable, 16 KiB): one 4 KiB page per structure. */
#define VIRTIO_PCI_BAR 4
#define VIRTIO_PCI_BAR_SIZE 0x4000
#define VIRTIO_PCI_COMMON_OFFSET 0x0000
#define VIRTIO_PCI_ISR_OFFSET 0x1000
#define VIRTIO_PCI_DEVICE_OFFSET 0x2000
#define VIRTIO_PCI_NOTIFY_OFFSET 0x3000
#define VIRTIO_PCI_REGION_SIZE 0x1000
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4 /* queue n is notified at NOTIFY_OFFSET + 4 * n */
/* BAR 1 (32-bit, 4 KiB): the MSI-X table (vector 0 .. num_queues) and its PBA. */
#define VIRTIO_PCI_MSIX_BAR 1
#define VIRTIO_PCI_MSIX_BAR_SIZE 0x1000
#define VIRTIO_PCI_MSIX_TABLE 0x000
#define VIRTIO_PCI_MSIX_PBA 0x800

struct virtio_pci {
    struct pci_device pci;
    struct virtio_device vdev;
    uint16_t queue_select;
    uint8_t pci_cfg_cap; /* offset of the PCI configuration access capability */
    struct log_ratelimit rl;
};

struct virtio_pci_config {
    struct virtio_device_config dev;
    uint32_t class_code; /* e.g. 0x010000 for storage */
};

/* Creates the function at slot/fn of bus and registers it. The MSI-X table has num_queues + 1 vectors. NULL
 * with *error on failure. */
struct virtio_pci *virtio_pci_create(struct pci_bus *bus, unsigned slot, unsigned fn,
                                     const struct virtio_pci_config *cfg, char **error);
/* Unregisters and frees (NULL is fine). The device type's ops are not called. */
void virtio_pci_free(struct virtio_pci *vp);
/* Machine reset: a virtio device reset (the host bridge resets the PCI configuration state). */
void virtio_pci_reset(struct virtio_pci *vp);

static inline struct virtio_device *virtio_pci_vdev(struct virtio_pci *vp)
{
    return &vp->vdev;
}

/* Queue n of the device (n < num_queues). */
static inline struct virtqueue *virtio_pci_queue(struct virtio_pci *vp, unsigned n)
{
    return &vp->vdev.queues[n];
}

#endif
