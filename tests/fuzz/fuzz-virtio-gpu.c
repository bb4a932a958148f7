/* libFuzzer target for virtio-gpu's command processors: a PC machine with a virtio-gpu (two scanouts, a small
 * memory cap) whose driver is already up; the input is a program of control-queue and cursor-queue requests
 * (command type picked from the known ones, body and buffer lengths from the input, the request sometimes
 * split over two descriptors), guest RAM writes (backing pixels, entry lists), resize requests and device
 * resets. Any crash, sanitizer report, leak or hang is a bug: a hostile guest must never take deskvm down. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_machine.h"
#include "pci.h"
#include "virtio_gpu.h"
#include "virtio_pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM (16u << 20)
#define QSIZE 16
#define RING(n) (0x10000ULL + 0x10000ULL * (n)) /* desc, avail at +0x1000, used at +0x2000 */
#define REQ 0x30000ULL
#define RESP 0x38000ULL
#define REQ_MAX 0x4000
#define RESP_MAX 0x800
#define DATA 0x100000ULL /* where RAM writes go: backing the guest hands over */

static const uint32_t types[] = {
    VIRTIO_GPU_CMD_GET_DISPLAY_INFO,
    VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
    VIRTIO_GPU_CMD_RESOURCE_UNREF,
    VIRTIO_GPU_CMD_SET_SCANOUT,
    VIRTIO_GPU_CMD_RESOURCE_FLUSH,
    VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D,
    VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING,
    VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING,
    VIRTIO_GPU_CMD_GET_CAPSET_INFO,
    VIRTIO_GPU_CMD_GET_CAPSET,
    VIRTIO_GPU_CMD_GET_EDID,
    VIRTIO_GPU_CMD_UPDATE_CURSOR,
    VIRTIO_GPU_CMD_MOVE_CURSOR,
};

/* The driver's side: reset, features, both queues, DRIVER_OK. */
static void driver_up(struct virtio_device *vdev, bool edid)
{
    fuzz_virtio_driver_up(vdev, edid ? 1u << VIRTIO_GPU_F_EDID : 0, 2, QSIZE, RING(0), RING(1) - RING(0));
}

static void set_desc(struct machine *m, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint8_t b[16];
    le64_store(b, addr);
    le32_store(b + 8, len);
    le16_store(b + 12, flags);
    le16_store(b + 14, next);
    guest_mem_write(&m->mem, table + 16ULL * i, b, sizeof(b));
}

/* One request on queue n: the command type from the table (or raw), the rest of the body from the input. */
static void request(struct machine *m, struct virtio_gpu *g, unsigned n, struct cursor *c,
                    uint16_t *avail_idx)
{
    static uint8_t body[REQ_MAX];
    uint32_t len = (uint32_t)(take(c, 2) % REQ_MAX);
    uint32_t resp_len = n == VIRTIO_GPU_CTRLQ ? (uint32_t)(take(c, 2) % RESP_MAX) : 0;
    uint32_t split = (uint32_t)take(c, 1);
    uint8_t pick = (uint8_t)take(c, 1);
    uint32_t body_len = (uint32_t)MIN((size_t)MIN(len, 64u), c->left);
    memset(body, 0, len);
    memcpy(body, c->p, body_len); /* the fixed part from the input; entry lists come from RAM writes */
    c->p += body_len;
    c->left -= body_len;
    if (len >= 4 && pick < 2 * G_N_ELEMENTS(types))
        le32_store(body, types[pick % G_N_ELEMENTS(types)]);
    guest_mem_write(&m->mem, REQ, body, len);
    if (len > 64) /* a longer request carries an entry list: take it from the data area */
        guest_mem_write(&m->mem, REQ + 64, guest_mem_map_read(&m->mem, DATA, len - 64), len - 64);

    uint64_t desc = RING(n);
    unsigned nd = 0;
    uint32_t first = split && split < len ? split : len;
    set_desc(m, desc, nd, REQ, first, VIRTQ_DESC_F_NEXT, (uint16_t)(nd + 1));
    nd++;
    if (first < len) {
        set_desc(m, desc, nd, REQ + first, len - first, VIRTQ_DESC_F_NEXT, (uint16_t)(nd + 1));
        nd++;
    }
    if (resp_len) {
        set_desc(m, desc, nd, RESP, resp_len, VIRTQ_DESC_F_WRITE, 0);
        nd++;
    } else {
        set_desc(m, desc, nd - 1, nd == 1 ? REQ : REQ + first, nd == 1 ? len : len - first, 0, 0);
    }
    uint64_t avail = RING(n) + 0x1000;
    guest_mem_write_u16(&m->mem, avail + 4 + 2 * (*avail_idx % QSIZE), 0);
    (*avail_idx)++;
    guest_mem_write_u16(&m->mem, avail + 2, *avail_idx);
    struct virtio_device *vdev = &g->vp->vdev;
    if (virtqueue_ready(&vdev->queues[n]))
        vdev->ops->queue_notify(vdev->opaque, &vdev->queues[n]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct machine m;
    struct pc_config cfg = {.ram_size = RAM, .cpus = 1, .manual_clock = true};
    fuzz_machine_init(&m, &cfg);
    char *err = NULL;
    machine_lock(&m);
    const struct virtio_gpu_config gcfg = {
        .num_scanouts = 2, .width = 640, .height = 480, .hostmem_max = 8u << 20};
    struct virtio_gpu *g = virtio_gpu_new(&m, VIRTIO_GPU_SLOT, &gcfg, &err);
    if (!g) {
        g_free(err);
        __builtin_trap();
    }
    pci_config_set16(&g->vp->pci, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    struct cursor c = {data, size};
    struct virtio_device *vdev = &g->vp->vdev;
    uint16_t avail_idx[2] = {0, 0};
    driver_up(vdev, take(&c, 1) & 1);
    for (unsigned ops = 0; c.left && ops < 256; ops++) {
        switch (take(&c, 1) % 8) {
        case 0:
        case 1:
        case 2:
            request(&m, g, VIRTIO_GPU_CTRLQ, &c, &avail_idx[0]);
            break;
        case 3:
            request(&m, g, VIRTIO_GPU_CURSORQ, &c, &avail_idx[1]);
            break;
        case 4:
        case 5: { /* backing pixels and entry lists */
            uint64_t addr = DATA + take(&c, 3) % (RAM - DATA - 8);
            uint64_t val = take(&c, 8);
            guest_mem_write(&m.mem, addr, &val, 8);
            break;
        }
        case 6: { /* a client asks for a size */
            unsigned head = (unsigned)take(&c, 1) % 3;
            struct display *d = display_find(&m, "video0", head);
            if (d)
                display_request_resize(d, (unsigned)take(&c, 2), (unsigned)take(&c, 2));
            uint32_t clear = (uint32_t)take(&c, 1);
            virtio_config_write(vdev, VIRTIO_GPU_CFG_EVENTS_CLEAR, clear, 4);
            break;
        }
        case 7: /* the driver starts over */
            driver_up(vdev, take(&c, 1) & 1);
            avail_idx[0] = avail_idx[1] = 0;
            break;
        }
    }
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz-virtio-gpu: %llu guest errors, %u resources, scanout 0 %s, cursor %s, %s\n",
                (unsigned long long)g->guest_errors, g_hash_table_size(g->resources),
                g->scanouts[0].display.surface ? "on" : "off",
                g->scanouts[0].display.cursor.image ? "set" : "none", vdev->broken ? "broken" : "healthy");
    virtio_gpu_free(g);
    machine_unlock(&m);
    machine_destroy(&m);
    return 0;
}
