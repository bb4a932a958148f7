/* Split virtqueues: ring access with the driver running concurrently, the chain walker, completions. */
#include "virtqueue.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <glib.h>

#include "guest_memory.h"
#include "virtio.h"

/* Ring indices are shared with driver threads on other vCPUs, so they are read and written as single atomic
 * 16-bit accesses through host pointers; guest memory is little-endian. */
static inline uint16_t le16_host(uint16_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return v;
#else
    return __builtin_bswap16(v);
#endif
}

/* Ring field offsets (2.6.6, 2.6.8). */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING 4
#define USED_FLAGS 0
#define USED_IDX 2
#define USED_RING 4

void virtqueue_init(struct virtqueue *vq, struct virtio_device *vdev, uint16_t index, uint16_t max_size)
{
    memset(vq, 0, sizeof(*vq));
    vq->vdev = vdev;
    vq->index = index;
    vq->max_size = max_size;
    virtqueue_reset(vq);
}

void virtqueue_reset(struct virtqueue *vq)
{
    vq->size = vq->max_size;
    vq->enabled = false;
    vq->msix_vector = VIRTIO_MSI_NO_VECTOR;
    vq->desc_addr = vq->avail_addr = vq->used_addr = 0;
    vq->last_avail_idx = vq->used_idx = 0;
    vq->signalled_used = 0;
    vq->signalled_used_valid = false;
    vq->inflight = 0;
}

static bool area_ok(struct virtio_device *vdev, uint64_t gpa, uint64_t len, uint64_t align, bool writable)
{
    const struct guest_ram_slot *s = guest_memory_find(vdev->mem, gpa, len);
    return !(gpa & (align - 1)) && s && !(writable && s->readonly);
}

int virtqueue_enable(struct virtqueue *vq)
{
    struct virtio_device *vdev = vq->vdev;
    const char *bad = NULL;
    if (!area_ok(vdev, vq->desc_addr, VIRTQ_DESC_BYTES(vq->size), VIRTQ_DESC_ALIGN, false))
        bad = "descriptor table";
    else if (!area_ok(vdev, vq->avail_addr, VIRTQ_AVAIL_BYTES(vq->size), VIRTQ_AVAIL_ALIGN, false))
        bad = "available ring";
    else if (!area_ok(vdev, vq->used_addr, VIRTQ_USED_BYTES(vq->size), VIRTQ_USED_ALIGN, true))
        bad = "used ring";
    if (bad) {
        virtio_device_error(vdev, "queue %u: %s is misaligned or not in guest RAM", vq->index, bad);
        return -EINVAL;
    }
    vq->enabled = true;
    vq->last_avail_idx = vq->used_idx = 0;
    vq->signalled_used_valid = false;
    return 0;
}

bool virtqueue_ready(const struct virtqueue *vq)
{
    const struct virtio_device *vdev = vq->vdev;
    return vq->enabled && virtio_driver_ok(vdev) && !vdev->broken;
}

/* ---------------------------------------------------------------- ring fields */

static bool ring_load16(struct virtqueue *vq, uint64_t gpa, int order, uint16_t *v)
{
    const uint16_t *p = guest_mem_map_read(vq->vdev->mem, gpa, 2);
    if (!p) {
        virtio_device_error(vq->vdev, "queue %u: ring field at 0x%llx is not in guest RAM", vq->index,
                            (unsigned long long)gpa);
        return false;
    }
    *v = le16_host(order == __ATOMIC_ACQUIRE ? __atomic_load_n(p, __ATOMIC_ACQUIRE)
                                             : __atomic_load_n(p, __ATOMIC_RELAXED));
    return true;
}

static bool ring_store16(struct virtqueue *vq, uint64_t gpa, int order, uint16_t v)
{
    uint16_t *p = guest_mem_map_write(vq->vdev->mem, gpa, 2);
    if (!p) {
        virtio_device_error(vq->vdev, "queue %u: ring field at 0x%llx is not in guest RAM", vq->index,
                            (unsigned long long)gpa);
        return false;
    }
    if (order == __ATOMIC_RELEASE)
        __atomic_store_n(p, le16_host(v), __ATOMIC_RELEASE);
    else
        __atomic_store_n(p, le16_host(v), __ATOMIC_RELAXED);
    return true;
}

static uint64_t used_event_addr(const struct virtqueue *vq)
{
    return vq->avail_addr + AVAIL_RING + 2 * (uint64_t)vq->size;
}

static uint64_t avail_event_addr(const struct virtqueue *vq)
{
    return vq->used_addr + USED_RING + VIRTQ_USED_ELEM_SIZE * (uint64_t)vq->size;
}

/* ---------------------------------------------------------------- the chain walker */

struct walk {
    struct virtqueue *vq;
    struct virtq_elem *elem;
    uint64_t bytes;
};

static void *chain_error(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void *chain_error(struct walk *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    virtio_device_error(w->vq->vdev, "queue %u, chain at head %u: %s", w->vq->index, w->elem->head, msg);
    g_free(msg);
    g_free(w->elem);
    w->elem = NULL;
    return NULL;
}

static struct virtq_elem *elem_new(unsigned capacity)
{
    struct virtq_elem *e = g_malloc0(sizeof(*e) + capacity * sizeof(struct virtq_seg));
    e->capacity = capacity;
    return e;
}

/* Adds one buffer descriptor; false (and the device error raised) if it breaks a rule. */
static bool add_segment(struct walk *w, uint64_t addr, uint32_t len, bool writable)
{
    struct virtq_elem *e = w->elem;
    if (!writable && e->in_num) {
        chain_error(w, "device-readable descriptor after a device-writable one");
        return false;
    }
    if (len == 0)
        return true;
    const struct guest_ram_slot *s = guest_memory_find(w->vq->vdev->mem, addr, len);
    if (!s || (writable && s->readonly)) {
        chain_error(w, "buffer 0x%llx+0x%x is not in %sguest RAM", (unsigned long long)addr, len,
                    writable ? "writable " : "");
        return false;
    }
    w->bytes += len;
    if (w->bytes > VIRTQ_CHAIN_MAX_BYTES) {
        chain_error(w, "more than %llu bytes of buffers", (unsigned long long)VIRTQ_CHAIN_MAX_BYTES);
        return false;
    }
    unsigned n = e->out_num + e->in_num;
    if (n == VIRTQ_CHAIN_MAX_SEGS) {
        chain_error(w, "more than %u buffers", VIRTQ_CHAIN_MAX_SEGS);
        return false;
    }
    if (n == e->capacity) {
        unsigned cap = MIN(e->capacity * 2, VIRTQ_CHAIN_MAX_SEGS);
        e = g_realloc(e, sizeof(*e) + cap * sizeof(struct virtq_seg));
        e->capacity = cap;
        w->elem = e;
    }
    e->seg[n] = (struct virtq_seg){addr, len};
    if (writable) {
        e->in_num++;
        e->in_len += len;
    } else {
        e->out_num++;
        e->out_len += len;
    }
    return true;
}

/* Walks the chain at head: through the descriptor table and at most one indirect table. A table of n entries
 * yields at most n descriptors, so a longer walk is a loop; every index and address is checked before use. */
static struct virtq_elem *walk_chain(struct virtqueue *vq, uint16_t head)
{
    struct virtio_device *vdev = vq->vdev;
    struct walk w = {vq, elem_new(8), 0};
    w.elem->head = head;
    w.elem->queue = vq->index;
    w.elem->epoch = vdev->reset_epoch;

    uint64_t table = vq->desc_addr;
    uint32_t table_size = vq->size, steps = 0, i = head;
    bool in_indirect = false;
    for (;;) {
        uint8_t d[VIRTQ_DESC_SIZE];
        if (++steps > table_size)
            return chain_error(&w, "descriptor loop (more than %u descriptors in the %s table)", table_size,
                               in_indirect ? "indirect" : "descriptor");
        if (guest_mem_read(vdev->mem, table + (uint64_t)i * VIRTQ_DESC_SIZE, d, sizeof(d)) < 0)
            return chain_error(&w, "descriptor %u at 0x%llx is not in guest RAM", i,
                               (unsigned long long)(table + (uint64_t)i * VIRTQ_DESC_SIZE));
        uint64_t addr = le64_load(d);
        uint32_t len = le32_load(d + 8);
        uint16_t flags = le16_load(d + 12);
        uint16_t next = le16_load(d + 14);

        if (flags & VIRTQ_DESC_F_INDIRECT) {
            if (!virtio_has_feature(vdev, VIRTIO_F_INDIRECT_DESC))
                return chain_error(&w, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
            if (in_indirect)
                return chain_error(&w, "indirect descriptor inside an indirect table");
            if (flags & VIRTQ_DESC_F_NEXT)
                return chain_error(&w, "indirect descriptor with VIRTQ_DESC_F_NEXT");
            if (len == 0 || len % VIRTQ_DESC_SIZE || len / VIRTQ_DESC_SIZE > VIRTQ_INDIRECT_MAX)
                return chain_error(&w, "indirect table of %u bytes", len);
            if (!guest_memory_find(vdev->mem, addr, len))
                return chain_error(&w, "indirect table 0x%llx+0x%x is not in guest RAM",
                                   (unsigned long long)addr, len);
            table = addr;
            table_size = len / VIRTQ_DESC_SIZE;
            in_indirect = true;
            steps = 0;
            i = 0;
            continue;
        }
        if (!add_segment(&w, addr, len, flags & VIRTQ_DESC_F_WRITE))
            return NULL;
        if (!(flags & VIRTQ_DESC_F_NEXT))
            return w.elem;
        if (next >= table_size)
            return chain_error(&w, "next index %u beyond the %u-entry %s table", next, table_size,
                               in_indirect ? "indirect" : "descriptor");
        i = next;
    }
}

/* ---------------------------------------------------------------- popping */

/* How many chains the driver has made available; false after a device error. */
static bool avail_pending(struct virtqueue *vq, uint16_t *pending)
{
    uint16_t idx;
    if (!ring_load16(vq, vq->avail_addr + AVAIL_IDX, __ATOMIC_ACQUIRE, &idx))
        return false;
    uint16_t n = (uint16_t)(idx - vq->last_avail_idx);
    if (n > vq->size) {
        virtio_device_error(vq->vdev,
                            "queue %u: available index moved from %u to %u, more than the queue size %u",
                            vq->index, vq->last_avail_idx, idx, vq->size);
        return false;
    }
    *pending = n;
    return true;
}

struct virtq_elem *virtqueue_pop(struct virtqueue *vq)
{
    struct virtio_device *vdev = vq->vdev;
    if (!virtqueue_ready(vq) || !virtio_dma_allowed(vdev))
        return NULL;
    bool event_idx = virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX);
    uint16_t pending;
    if (!avail_pending(vq, &pending))
        return NULL;
    if (!pending) {
        if (!event_idx)
            return NULL;
        /* Ask for a notification at the next chain, then look again: the driver may have added one before it
         * could see the request. */
        if (!ring_store16(vq, avail_event_addr(vq), __ATOMIC_RELAXED, vq->last_avail_idx))
            return NULL;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!avail_pending(vq, &pending) || !pending)
            return NULL;
    }
    uint16_t head;
    if (!ring_load16(vq, vq->avail_addr + AVAIL_RING + 2 * (uint64_t)(vq->last_avail_idx % vq->size),
                     __ATOMIC_RELAXED, &head))
        return NULL;
    if (head >= vq->size) {
        virtio_device_error(vdev, "queue %u: available ring entry %u names descriptor %u of %u", vq->index,
                            vq->last_avail_idx, head, vq->size);
        return NULL;
    }
    struct virtq_elem *elem = walk_chain(vq, head);
    if (!elem)
        return NULL;
    vq->last_avail_idx++;
    vq->inflight++;
    if (event_idx)
        ring_store16(vq, avail_event_addr(vq), __ATOMIC_RELAXED, vq->last_avail_idx);
    return elem;
}

void virtq_elem_free(struct virtq_elem *elem)
{
    g_free(elem);
}

/* ---------------------------------------------------------------- copying */

static ssize_t elem_copy(struct virtqueue *vq, const struct virtq_elem *elem, bool to_guest, uint64_t offset,
                         uint8_t *buf, size_t len)
{
    struct virtio_device *vdev = vq->vdev;
    if (!virtio_dma_allowed(vdev))
        return -EPERM;
    unsigned first = to_guest ? elem->out_num : 0;
    unsigned n = to_guest ? elem->in_num : elem->out_num;
    size_t done = 0;
    for (unsigned k = 0; k < n && done < len; k++) {
        const struct virtq_seg *s = &elem->seg[first + k];
        if (offset >= s->len) {
            offset -= s->len;
            continue;
        }
        size_t chunk = MIN((uint64_t)s->len - offset, len - done);
        int r = to_guest ? guest_mem_write(vdev->mem, s->addr + offset, buf + done, chunk)
                         : guest_mem_read(vdev->mem, s->addr + offset, buf + done, chunk);
        if (r < 0) {
            virtio_device_error(vdev, "queue %u: buffer 0x%llx+0x%zx is no longer guest RAM", vq->index,
                                (unsigned long long)(s->addr + offset), chunk);
            return -EFAULT;
        }
        done += chunk;
        offset = 0;
    }
    return (ssize_t)done;
}

ssize_t virtq_elem_copy_from(struct virtqueue *vq, const struct virtq_elem *elem, uint64_t offset, void *buf,
                             size_t len)
{
    return elem_copy(vq, elem, false, offset, buf, len);
}

ssize_t virtq_elem_copy_to(struct virtqueue *vq, const struct virtq_elem *elem, uint64_t offset,
                           const void *buf, size_t len)
{
    return elem_copy(vq, elem, true, offset, (uint8_t *)(uintptr_t)buf, len);
}

/* ---------------------------------------------------------------- completing */

void virtqueue_push(struct virtqueue *vq, const struct virtq_elem *elem, uint32_t written)
{
    struct virtio_device *vdev = vq->vdev;
    if (elem->epoch != vdev->reset_epoch || elem->queue != vq->index)
        return; /* popped before a reset: the ring it came from is gone */
    if (vq->inflight)
        vq->inflight--;
    if (vdev->broken || !vq->enabled || !virtio_dma_allowed(vdev))
        return;
    if (written > elem->in_len)
        written = (uint32_t)elem->in_len;
    uint64_t gpa = vq->used_addr + USED_RING + (uint64_t)(vq->used_idx % vq->size) * VIRTQ_USED_ELEM_SIZE;
    uint8_t *e = guest_mem_map_write(vdev->mem, gpa, VIRTQ_USED_ELEM_SIZE);
    if (!e) {
        virtio_device_error(vdev, "queue %u: used ring entry at 0x%llx is not in guest RAM", vq->index,
                            (unsigned long long)gpa);
        return;
    }
    le32_store(e, elem->head);
    le32_store(e + 4, written);
    vq->used_idx++;
    /* The entry is visible before the index that publishes it. */
    ring_store16(vq, vq->used_addr + USED_IDX, __ATOMIC_RELEASE, vq->used_idx);
}

/* 2.6.7.2: interrupt when the used index passed used_event since the last interrupt. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

bool virtqueue_notify(struct virtqueue *vq)
{
    struct virtio_device *vdev = vq->vdev;
    if (!vq->enabled || vdev->broken || !virtio_driver_ok(vdev) || !virtio_dma_allowed(vdev))
        return false;
    uint16_t old = vq->signalled_used;
    bool valid = vq->signalled_used_valid;
    if (valid && old == vq->used_idx)
        return false; /* nothing completed since the last interrupt */
    /* The driver's suppression fields are read only after our used index is visible to it, so that a driver
     * that changes them concurrently either sees the new entries or gets the interrupt. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    bool send;
    if (virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX)) {
        uint16_t event;
        if (!ring_load16(vq, used_event_addr(vq), __ATOMIC_RELAXED, &event))
            return false;
        send = !valid || need_event(event, vq->used_idx, old);
    } else {
        uint16_t flags;
        if (!ring_load16(vq, vq->avail_addr + AVAIL_FLAGS, __ATOMIC_RELAXED, &flags))
            return false;
        send = !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
    }
    vq->signalled_used = vq->used_idx;
    vq->signalled_used_valid = true;
    if (send)
        virtio_raise_interrupt(vdev, VIRTIO_ISR_QUEUE, vq->msix_vector);
    return send;
}
