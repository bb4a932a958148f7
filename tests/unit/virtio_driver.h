/* A small virtio 1.x driver for device tests (capability probing, feature negotiation, split-ring set-up in
 * guest RAM, requests, notifications), and the "echo" test device it drives on a real machine. */
#ifndef DESKVM_TESTS_VIRTIO_DRIVER_H
#define DESKVM_TESTS_VIRTIO_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "device_harness.h"
#include "machine.h"
#include "pci.h"
#include "virtio.h"
#include "virtio_pci.h"
#include "virtqueue.h"

#define MiB (1024ULL * 1024)
#define SLOT 4
#define ECHO_TYPE 0x3f /* not a real device type */
#define ECHO_QUEUES 2
#define ECHO_QMAX 256
#define ECHO_MAGIC 0x4f484345u    /* "ECHO" */
#define ECHO_F_DEVICE (1ULL << 0) /* a device-type feature bit */
#define MSI_ADDR 0xfee00000u
#define MSI_DATA(v) (0x40u + (v)) /* what vd_msix_enable programs for vector v */
#define F(bit) VIRTIO_F_BIT(bit)
#define STD_FEATURES (F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_INDIRECT_DESC) | ECHO_F_DEVICE)

/* Request buffers of vd_submit_simple: request i reads OUTBUF(i) and writes INBUF(i) (4 KiB each). */
#define DATA 0x400000ULL
#define OUTBUF(i) (DATA + (uint64_t)(i)*0x2000)
#define INBUF(i) (DATA + 0x1000 + (uint64_t)(i)*0x2000)

/* The echo device: 2 queues of up to 256 entries; config space: magic (RO), scratch (RW), a 64-bit constant.
 */
struct vd_echo {
    struct virtio_pci *vp;
    uint32_t scratch;
    unsigned notifies, resets;
    uint64_t features; /* what set_features was last offered */
    bool veto;         /* refuse every feature set */
    bool hold;         /* keep popped elements in held[] instead of completing them */
    bool notify_each;  /* interrupt check after every completion instead of once per kick */
    unsigned nheld;
    struct virtq_elem *held[64];
};

/* A virtio structure found through the capability list. */
struct vd_cap {
    unsigned pos; /* config-space offset of the capability, 0: not found */
    uint8_t bar;
    uint32_t offset, length;
};

struct vd_driver {
    struct vd_cap common, notify, isr, device, pcicfg;
    uint32_t notify_mult;
    unsigned msix_cap;
    uint64_t bar[PCI_BAR_COUNT];
};

/* The driver's view of one split queue. */
struct vd_queue {
    uint16_t size;
    uint64_t desc, avail, used;
    uint16_t avail_idx;
};

extern struct vd_echo vd_echo;
extern const struct virtio_device_ops vd_echo_ops;
extern struct machine vd_m;
extern struct irq_recorder vd_rec;
extern unsigned vd_gsi; /* the echo function's INTx line */
extern struct vd_driver vd_dev;
extern struct vd_queue vd_q[ECHO_QUEUES];

/* Copies min(readable, writable) bytes across, pushes and frees elem. */
void vd_echo_complete(struct virtqueue *vq, struct virtq_elem *elem);

/* A machine (PCI host bridge + echo at SLOT, resources assigned) with the log captured for vd_assert_logged.
 */
void vd_setup_ram(uint64_t ram);
void vd_setup(void); /* 64 MiB */
void vd_teardown(void);
void vd_assert_logged(const char *needle);

/* Configuration space through ECAM. */
uint32_t vd_cfg_read(unsigned reg, unsigned size);
void vd_cfg_write(unsigned reg, uint32_t v, unsigned size);
/* Walks the capability list and reads the BARs into vd_dev. */
void vd_probe(void);
void vd_msix_enable(void); /* also turns bus mastering on */
void vd_bus_master_only(void);

/* The virtio structures. */
uint64_t vd_common_rd(unsigned off, unsigned size);
void vd_common_wr(unsigned off, uint64_t v, unsigned size);
uint8_t vd_status(void);
void vd_set_status(uint8_t s);
uint8_t vd_isr_read(void);
uint64_t vd_devcfg_rd(unsigned off, unsigned size);
uint64_t vd_device_features(void);
uint64_t vd_driver_features(void);
void vd_write_driver_features(uint64_t f);

/* Queue n (of the device's max entries) set up with size entries at its place in guest RAM, cleared, with
 * MSI-X vector `vector`, and enabled. */
void vd_queue_setup(unsigned n, uint16_t max, uint16_t size, uint16_t vector);
/* The initialisation sequence (virtio 1.1, 3.1.1): reset, ACKNOWLEDGE, DRIVER, features & want, FEATURES_OK
 * read back, queues 0 to nqueues - 1 (vector n + 1 for queue n with msix, else none), DRIVER_OK. Returns the
 * negotiated features. */
uint64_t vd_init_queues(uint64_t want, bool msix, unsigned nqueues, uint16_t max, uint16_t size);
/* vd_init_queues for the echo device. */
void vd_init_size(uint64_t want, bool msix, uint16_t size);
void vd_init(uint64_t want, bool msix);
void vd_start(uint64_t want); /* probe, MSI-X, init */

/* Guest RAM and rings. */
void vd_mem_w16(uint64_t a, uint16_t v);
uint16_t vd_mem_r16(uint64_t a);
void vd_set_desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
void vd_avail_add(struct vd_queue *x, uint16_t head);
void vd_kick(unsigned n);
uint16_t vd_used_idx(const struct vd_queue *x);
void vd_assert_used(const struct vd_queue *x, uint16_t i, uint32_t id, uint32_t len);

/* Request i on queue n: descriptors 2i, 2i+1 (mod size), len bytes of pattern out, 4 KiB in. */
void vd_submit_simple(unsigned n, unsigned i, uint32_t len);
void vd_assert_echoed(unsigned i, uint32_t len);
/* The i-th recorded MSI is MSI-X vector `vector`. */
void vd_assert_msi(unsigned i, unsigned vector);

#endif
