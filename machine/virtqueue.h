/* Split virtqueues (virtio 1.1, 2.6): the validated descriptor-chain walker a device pops requests with,
 * copies to and from a request's guest buffers, and used-ring completion with interrupt suppression
 * (EVENT_IDX, VIRTQ_AVAIL_F_NO_INTERRUPT). */
#ifndef DESKVM_VIRTQUEUE_H
#define DESKVM_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct virtio_device;

/* Descriptor flags and ring flags (virtio 1.1, 2.6.5 - 2.6.8). */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

#define VIRTQ_DESC_SIZE 16
#define VIRTQ_USED_ELEM_SIZE 8
/* Ring alignment the driver must respect (2.6). */
#define VIRTQ_DESC_ALIGN 16
#define VIRTQ_AVAIL_ALIGN 2
#define VIRTQ_USED_ALIGN 4

/* Largest queue a device may offer. */
#define VIRTQUEUE_MAX_SIZE 1024
/* Limits on one chain: descriptors in an indirect table, segments in all, bytes in all. */
#define VIRTQ_INDIRECT_MAX 1024
#define VIRTQ_CHAIN_MAX_SEGS 1024
#define VIRTQ_CHAIN_MAX_BYTES (1ULL << 30)

/* Ring area sizes for a queue of `size` entries (with the EVENT_IDX trailer). */
#define VIRTQ_DESC_BYTES(size) ((uint64_t)(size)*VIRTQ_DESC_SIZE)
#define VIRTQ_AVAIL_BYTES(size) (6 + 2 * (uint64_t)(size))
#define VIRTQ_USED_BYTES(size) (6 + VIRTQ_USED_ELEM_SIZE * (uint64_t)(size))

struct virtqueue {
    struct virtio_device *vdev;
    uint16_t index;
    uint16_t max_size;
    uint16_t size; /* a power of two <= max_size */
    bool enabled;
    uint16_t msix_vector;
    uint64_t desc_addr, avail_addr, used_addr; /* guest physical */
    uint16_t last_avail_idx;                   /* next avail ring entry to consume */
    uint16_t used_idx;                         /* next used ring entry to fill (the value of used->idx) */
    uint16_t signalled_used;                   /* used_idx when the driver was last interrupted (EVENT_IDX) */
    bool signalled_used_valid;
    uint32_t inflight; /* popped, not yet pushed */
};

/* One buffer segment in guest physical memory. */
struct virtq_seg {
    uint64_t addr;
    uint32_t len;
};

/* A popped request: the chain's device-readable segments (out, driver -> device) followed by its
 * device-writable ones (in, device -> driver). Every segment lay wholly inside guest RAM when popped
 * (writable ones in writable RAM); zero-length descriptors are left out. Free with virtq_elem_free. */
struct virtq_elem {
    uint16_t head;  /* the chain's head index: its id in the used ring */
    uint16_t queue; /* index of the queue it came from */
    uint32_t epoch; /* the device's reset epoch when popped */
    unsigned out_num, in_num;
    uint64_t out_len, in_len; /* total bytes */
    unsigned capacity;
    struct virtq_seg seg[]; /* out_num readable, then in_num writable */
};

/* Called by the core. */
void virtqueue_init(struct virtqueue *vq, struct virtio_device *vdev, uint16_t index, uint16_t max_size);
void virtqueue_reset(struct virtqueue *vq);
/* The driver enables the queue: checks the ring areas (aligned, in RAM). Returns 0, or -EINVAL after raising
 * a device error. */
int virtqueue_enable(struct virtqueue *vq);

/* Whether the device should look at this queue: enabled, driver up, device not broken. */
bool virtqueue_ready(const struct virtqueue *vq);

/* The next available chain, walked and validated, or NULL if there is none (or the queue is not ready, or the
 * chain is bad: then the device is marked NEEDS_RESET; see docs/virtio.md for the rules). */
struct virtq_elem *virtqueue_pop(struct virtqueue *vq);
void virtq_elem_free(struct virtq_elem *elem);

/* Copies between a host buffer and the element's readable (copy_from) or writable (copy_to) segments,
 * starting `offset` bytes into them. Returns the bytes copied (fewer than len when the segments end), or
 * -EFAULT (device error raised). */
ssize_t virtq_elem_copy_from(struct virtqueue *vq, const struct virtq_elem *elem, uint64_t offset, void *buf,
                             size_t len);
ssize_t virtq_elem_copy_to(struct virtqueue *vq, const struct virtq_elem *elem, uint64_t offset,
                           const void *buf, size_t len);

/* Completes elem: puts (head, written) in the used ring and publishes it. Does not free elem and does not
 * interrupt (see virtqueue_notify). Elements popped before a device reset, or completions while the device
 * is broken, are dropped. written is clamped to elem->in_len. */
void virtqueue_push(struct virtqueue *vq, const struct virtq_elem *elem, uint32_t written);

/* Interrupts the driver for the completions pushed so far, unless it asked not to be (used_event with
 * EVENT_IDX, else VIRTQ_AVAIL_F_NO_INTERRUPT). Returns whether an interrupt was sent. */
bool virtqueue_notify(struct virtqueue *vq);

#endif
