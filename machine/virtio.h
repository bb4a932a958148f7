/* virtio 1.x device core, independent of the transport: feature negotiation, device status and reset, the
 * device-specific configuration space, interrupts and device errors (DEVICE_NEEDS_RESET). */
#ifndef DESKVM_VIRTIO_H
#define DESKVM_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_memory.h"
#include "log.h"

/* Device status (virtio 1.1, 2.1). */
#define VIRTIO_CONFIG_S_ACKNOWLEDGE 0x01
#define VIRTIO_CONFIG_S_DRIVER 0x02
#define VIRTIO_CONFIG_S_DRIVER_OK 0x04
#define VIRTIO_CONFIG_S_FEATURES_OK 0x08
#define VIRTIO_CONFIG_S_NEEDS_RESET 0x40
#define VIRTIO_CONFIG_S_FAILED 0x80

/* Reserved feature bits (virtio 1.1, 6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED 34
#define VIRTIO_F_IN_ORDER 35
#define VIRTIO_F_BIT(n) (1ULL << (n))
/* What the core offers on top of the device type's own bits (24..40 are the transport's range). */
#define VIRTIO_CORE_FEATURES                                                                                 \
    (VIRTIO_F_BIT(VIRTIO_F_VERSION_1) | VIRTIO_F_BIT(VIRTIO_F_INDIRECT_DESC) |                               \
     VIRTIO_F_BIT(VIRTIO_F_EVENT_IDX))
#define VIRTIO_TRANSPORT_FEATURES_MASK (((1ULL << 41) - 1) & ~((1ULL << 24) - 1))

/* Device types (virtio 1.1, 5). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_GPU 16
#define VIRTIO_ID_INPUT 18

/* "No interrupt for this" in msix_config / queue_msix_vector. */
#define VIRTIO_MSI_NO_VECTOR 0xffff

/* ISR status bits (virtio 1.1, 4.1.4.5). */
#define VIRTIO_ISR_QUEUE 0x1
#define VIRTIO_ISR_CONFIG 0x2

#define VIRTIO_QUEUES_MAX 64 /* per device; the MSI-X table holds one vector per queue plus the config one   \
                              */
#define VIRTIO_CONFIG_SPACE_MAX 0x1000

struct virtio_device;
struct virtqueue;

/* What a device type supplies. Every callback runs with the machine lock held; all but config_read may be
 * NULL. */
struct virtio_device_ops {
    /* Device-specific configuration space: offset + size lie within config_size, size is 1, 2, 4 or 8. */
    uint64_t (*config_read)(void *opaque, unsigned offset, unsigned size);
    void (*config_write)(void *opaque, unsigned offset, uint64_t value, unsigned size);
    /* The driver set FEATURES_OK with these features (already checked against the offer and VERSION_1);
     * return false to refuse them (FEATURES_OK then does not stick). */
    bool (*set_features)(void *opaque, uint64_t features);
    /* The driver notified queue vq (only while DRIVER_OK is set, the queue is enabled and the device is not
     * broken). The device pops buffers with virtqueue_pop. */
    void (*queue_notify)(void *opaque, struct virtqueue *vq);
    /* Device reset (the driver wrote 0 to device_status, or the machine resets): drop every element in
     * flight (pushes of elements popped before the reset are ignored anyway) and return to power-on state. */
    void (*reset)(void *opaque);
};

/* How the core reaches its transport. */
struct virtio_transport_ops {
    /* Raise an interrupt: isr_bit is VIRTIO_ISR_QUEUE or VIRTIO_ISR_CONFIG, vector the MSI-X vector. */
    void (*interrupt)(void *opaque, uint8_t isr_bit, uint16_t vector);
    /* May the device access guest memory now (PCI bus mastering)? */
    bool (*dma_allowed)(void *opaque);
    /* The ISR was cleared by a reset: lower the interrupt line. */
    void (*reset)(void *opaque);
};

struct virtio_device {
    const char *name;     /* for messages; must outlive the device */
    uint16_t device_type; /* VIRTIO_ID_* */
    struct guest_memory *mem;
    const struct virtio_device_ops *ops;
    void *opaque; /* the device model's state, passed to ops */
    const struct virtio_transport_ops *transport;
    void *transport_opaque;

    uint64_t host_features;   /* offered: VIRTIO_CORE_FEATURES | the device type's */
    uint64_t driver_features; /* written by the driver; what is in effect once FEATURES_OK sticks */
    uint32_t device_feature_select, driver_feature_select;
    uint8_t status;
    uint8_t config_generation;
    uint16_t config_vector;
    uint8_t isr;
    bool broken; /* a device error happened: nothing is processed until the driver resets the device */
    uint32_t reset_epoch; /* counts resets, so that elements popped before one are recognised */
    unsigned config_size;
    unsigned num_queues;
    struct virtqueue *queues; /* num_queues of them */
    struct log_ratelimit error_rl;
};

struct virtio_device_config {
    const char *name;
    uint16_t device_type;
    uint64_t features;       /* the device type's feature bits; the core adds VIRTIO_CORE_FEATURES */
    unsigned config_size;    /* bytes of device-specific configuration, <= VIRTIO_CONFIG_SPACE_MAX */
    unsigned num_queues;     /* 1..VIRTIO_QUEUES_MAX */
    uint16_t queue_max_size; /* a power of two, 2..VIRTQUEUE_MAX_SIZE; every queue gets it */
    const struct virtio_device_ops *ops;
    void *opaque;
};

/* Sets up vdev in its reset state (the transport fills in transport/transport_opaque). Returns 0 or -EINVAL
 * for a configuration outside the limits above. */
int virtio_device_init(struct virtio_device *vdev, struct guest_memory *mem,
                       const struct virtio_device_config *cfg);
void virtio_device_cleanup(struct virtio_device *vdev);

/* Device reset: status, features, vectors, ISR and every queue back to their reset values, then the device
 * type's reset callback. */
void virtio_device_reset(struct virtio_device *vdev);

/* The status register as the driver reads it (NEEDS_RESET included). */
uint8_t virtio_get_status(const struct virtio_device *vdev);
/* A driver write to device_status: 0 resets, FEATURES_OK is checked (see the validation rules in
 * docs/virtio.md), NEEDS_RESET is the device's own bit and cannot be written. */
void virtio_set_status(struct virtio_device *vdev, uint8_t status);

/* The 32-bit feature windows (device_feature_select / driver_feature_select pick the half). */
uint32_t virtio_get_device_features_window(const struct virtio_device *vdev);
uint32_t virtio_get_driver_features_window(const struct virtio_device *vdev);
void virtio_set_driver_features_window(struct virtio_device *vdev, uint32_t value);

/* Whether a feature is in effect (negotiated: FEATURES_OK was accepted). */
static inline bool virtio_has_feature(const struct virtio_device *vdev, unsigned bit)
{
    return (vdev->status & VIRTIO_CONFIG_S_FEATURES_OK) && (vdev->driver_features >> bit & 1);
}

static inline bool virtio_driver_ok(const struct virtio_device *vdev)
{
    return vdev->status & VIRTIO_CONFIG_S_DRIVER_OK;
}

/* Driver accesses to the device-specific configuration space; out-of-range parts read as 0 and are not
 * written. */
uint64_t virtio_config_read(struct virtio_device *vdev, unsigned offset, unsigned size);
void virtio_config_write(struct virtio_device *vdev, unsigned offset, uint64_t value, unsigned size);

/* The device changed its configuration: bumps config_generation and sends a configuration change interrupt
 * (once the driver is up). */
void virtio_config_changed(struct virtio_device *vdev);

/* Something the guest did makes the device unusable: sets DEVICE_NEEDS_RESET, logs (rate-limited) and sends a
 * configuration change interrupt; virtqueue_pop returns NULL and pushes are dropped until the driver resets
 * the device. */
void virtio_device_error(struct virtio_device *vdev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The transport's side. */
void virtio_raise_interrupt(struct virtio_device *vdev, uint8_t isr_bit, uint16_t vector);
bool virtio_dma_allowed(const struct virtio_device *vdev);

#endif
