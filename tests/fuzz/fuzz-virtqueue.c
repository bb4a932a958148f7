/* libFuzzer target for the virtqueue chain walker: the input picks the queue size, the negotiated ring
 * features and where the rings are, and its remainder is guest RAM (descriptors, indirect tables, ring
 * indices). The device pops, copies, completes and notifies until the ring is empty or the device declares
 * itself broken. Any crash, sanitizer report, leak or hang is a bug: the walker must survive every ring. */
#include <stdint.h>
#include <string.h>

#include "guest_memory.h"
#include "log.h"
#include "virtio.h"
#include "virtqueue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_SIZE 0x4000
#define ADDR_SPAN 0x5000 /* ring addresses reach a little past RAM */
#define HEADER 10

enum {
    IN_INDIRECT = 1,
    IN_EVENT_IDX = 2,
    IN_HOLD = 4,   /* complete nothing: elements are freed unpushed */
    IN_SECOND = 8, /* after the first round, the driver moves avail->idx and kicks again */
};

static uint64_t cfg_read(void *opaque, unsigned offset, unsigned size)
{
    (void)opaque;
    (void)offset;
    (void)size;
    return 0;
}

static unsigned interrupts;

static void on_interrupt(void *opaque, uint8_t isr_bit, uint16_t vector)
{
    (void)opaque;
    (void)isr_bit;
    (void)vector;
    interrupts++;
}

static bool dma_ok(void *opaque)
{
    (void)opaque;
    return true;
}

static const struct virtio_device_ops ops = {.config_read = cfg_read};
static const struct virtio_transport_ops transport = {.interrupt = on_interrupt, .dma_allowed = dma_ok};

static void drain(struct virtqueue *vq, bool hold)
{
    uint8_t buf[64];
    /* A healthy queue yields at most size chains per round; the bound only guards the harness. */
    for (unsigned n = 0; n < 2u * vq->size + 2; n++) {
        struct virtq_elem *e = virtqueue_pop(vq);
        if (!e)
            return;
        if (e->out_num + e->in_num > VIRTQ_CHAIN_MAX_SEGS || e->out_len + e->in_len > VIRTQ_CHAIN_MAX_BYTES)
            __builtin_trap();
        ssize_t r = virtq_elem_copy_from(vq, e, e->out_len / 2, buf, sizeof(buf));
        ssize_t w = virtq_elem_copy_to(vq, e, 0, buf, r > 0 ? (size_t)r : 0);
        if (!hold) {
            virtqueue_push(vq, e, w > 0 ? (uint32_t)w : 0);
            virtqueue_notify(vq);
        }
        virtq_elem_free(e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        log_set_level(LOG_LEVEL_ERROR);
        quiet = true;
    }
    if (size < HEADER)
        return 0;
    struct guest_memory mem;
    if (guest_memory_init(&mem, RAM_SIZE) < 0)
        __builtin_trap();
    memcpy(mem.slots[0].host, data + HEADER, size - HEADER < RAM_SIZE ? size - HEADER : RAM_SIZE);

    struct virtio_device vdev;
    const struct virtio_device_config cfg = {
        .name = "fuzz", .device_type = 0x3f, .num_queues = 1, .queue_max_size = 256, .ops = &ops};
    if (virtio_device_init(&vdev, &mem, &cfg) < 0)
        __builtin_trap();
    vdev.transport = &transport;

    uint8_t flags = data[1];
    uint64_t features = VIRTIO_F_BIT(VIRTIO_F_VERSION_1);
    if (flags & IN_INDIRECT)
        features |= VIRTIO_F_BIT(VIRTIO_F_INDIRECT_DESC);
    if (flags & IN_EVENT_IDX)
        features |= VIRTIO_F_BIT(VIRTIO_F_EVENT_IDX);
    virtio_set_status(&vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    virtio_set_driver_features_window(&vdev, (uint32_t)features);
    vdev.driver_feature_select = 1;
    virtio_set_driver_features_window(&vdev, (uint32_t)(features >> 32));
    virtio_set_status(&vdev,
                      VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);

    struct virtqueue *vq = &vdev.queues[0];
    vq->size = (uint16_t)(1u << (1 + data[0] % 8));
    vq->desc_addr = le16_load(data + 2) % ADDR_SPAN;
    vq->avail_addr = le16_load(data + 4) % ADDR_SPAN;
    vq->used_addr = le16_load(data + 6) % ADDR_SPAN;
    vq->msix_vector = 0;
    if (virtqueue_enable(vq) == 0) {
        virtio_set_status(&vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
        drain(vq, flags & IN_HOLD);
        if ((flags & IN_SECOND) && !vdev.broken) {
            guest_mem_write_u16(&mem, vq->avail_addr + 2, le16_load(data + 8));
            drain(vq, flags & IN_HOLD);
        }
        if (vdev.broken && !(virtio_get_status(&vdev) & VIRTIO_CONFIG_S_NEEDS_RESET))
            __builtin_trap();
    }
    /* A reset always brings the device back to a clean state. */
    virtio_device_reset(&vdev);
    if (vdev.broken || vdev.status || vq->enabled || vq->inflight)
        __builtin_trap();
    virtio_device_cleanup(&vdev);
    guest_memory_destroy(&mem);
    return 0;
}
