/* virtio-gpu (virtio 1.1, 5.7; device type 16), 2D only, over the PCI transport: guest resources live as host
 * pixman images filled from guest backing pages by TRANSFER_TO_HOST_2D; a scanout shows (part of) one
 * resource as a display surface, RESOURCE_FLUSH turns into exact damage, the cursor queue into the display
 * cursor. What the guest sends is hostile: see docs/display.md for the checks. */
#ifndef DESKVM_VIRTIO_GPU_H
#define DESKVM_VIRTIO_GPU_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <pixman.h>

#include "display.h"
#include "edid.h"
#include "log.h"
#include "machine.h"

struct virtqueue;

#define VIRTIO_GPU_SLOT 2         /* 00:02.0, where bochs-display would be (the two are exclusive) */
#define VIRTIO_GPU_CLASS 0x038000 /* display controller, other: no legacy VGA */

/* Feature bits (5.7.3). */
#define VIRTIO_GPU_F_VIRGL 0
#define VIRTIO_GPU_F_EDID 1

/* Configuration space (5.7.4): le32 events_read, events_clear, num_scanouts, num_capsets. */
#define VIRTIO_GPU_CFG_EVENTS_READ 0
#define VIRTIO_GPU_CFG_EVENTS_CLEAR 4
#define VIRTIO_GPU_CFG_NUM_SCANOUTS 8
#define VIRTIO_GPU_CFG_NUM_CAPSETS 12
#define VIRTIO_GPU_CONFIG_SIZE 16
#define VIRTIO_GPU_EVENT_DISPLAY 1

#define VIRTIO_GPU_CTRLQ 0
#define VIRTIO_GPU_CURSORQ 1
#define VIRTIO_GPU_QUEUE_SIZE 256

/* Command and response types (5.7.6.7). */
#define VIRTIO_GPU_CMD_GET_DISPLAY_INFO 0x0100
#define VIRTIO_GPU_CMD_RESOURCE_CREATE_2D 0x0101
#define VIRTIO_GPU_CMD_RESOURCE_UNREF 0x0102
#define VIRTIO_GPU_CMD_SET_SCANOUT 0x0103
#define VIRTIO_GPU_CMD_RESOURCE_FLUSH 0x0104
#define VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D 0x0105
#define VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING 0x0106
#define VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING 0x0107
#define VIRTIO_GPU_CMD_GET_CAPSET_INFO 0x0108
#define VIRTIO_GPU_CMD_GET_CAPSET 0x0109
#define VIRTIO_GPU_CMD_GET_EDID 0x010a
#define VIRTIO_GPU_CMD_UPDATE_CURSOR 0x0300
#define VIRTIO_GPU_CMD_MOVE_CURSOR 0x0301
#define VIRTIO_GPU_RESP_OK_NODATA 0x1100
#define VIRTIO_GPU_RESP_OK_DISPLAY_INFO 0x1101
#define VIRTIO_GPU_RESP_OK_EDID 0x1104
#define VIRTIO_GPU_RESP_ERR_UNSPEC 0x1200
#define VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY 0x1201
#define VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID 0x1202
#define VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID 0x1203
#define VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID 0x1204
#define VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER 0x1205

/* struct virtio_gpu_ctrl_hdr: le32 type, le32 flags, le64 fence_id, le32 ctx_id, u8 ring_idx, u8 padding[3].
 */
#define VIRTIO_GPU_FLAG_FENCE 1
#define VIRTIO_GPU_FLAG_INFO_RING_IDX 2
#define VIRTIO_GPU_HDR_SIZE 24

/* Request sizes (header included) and the fields' offsets. */
#define VIRTIO_GPU_RECT_SIZE 16                /* le32 x, y, width, height */
#define VIRTIO_GPU_RESOURCE_CREATE_2D_SIZE 40  /* resource_id, format, width, height */
#define VIRTIO_GPU_RESOURCE_UNREF_SIZE 32      /* resource_id, padding */
#define VIRTIO_GPU_SET_SCANOUT_SIZE 48         /* rect, scanout_id, resource_id */
#define VIRTIO_GPU_RESOURCE_FLUSH_SIZE 48      /* rect, resource_id, padding */
#define VIRTIO_GPU_TRANSFER_TO_HOST_2D_SIZE 56 /* rect, le64 offset, resource_id, padding */
#define VIRTIO_GPU_ATTACH_BACKING_SIZE 32      /* resource_id, nr_entries; then the entries */
#define VIRTIO_GPU_MEM_ENTRY_SIZE 16           /* le64 addr, le32 length, padding */
#define VIRTIO_GPU_DETACH_BACKING_SIZE 32      /* resource_id, padding */
#define VIRTIO_GPU_GET_EDID_SIZE 32            /* scanout, padding */
#define VIRTIO_GPU_CURSOR_SIZE 56 /* pos (scanout_id, x, y, padding), resource_id, hot_x, hot_y, padding */
/* Response sizes. */
#define VIRTIO_GPU_MAX_SCANOUTS 16
#define VIRTIO_GPU_DISPLAY_INFO_SIZE (VIRTIO_GPU_HDR_SIZE + VIRTIO_GPU_MAX_SCANOUTS * 24)
#define VIRTIO_GPU_EDID_BLOB_MAX 1024
#define VIRTIO_GPU_RESP_EDID_SIZE (VIRTIO_GPU_HDR_SIZE + 8 + VIRTIO_GPU_EDID_BLOB_MAX)

/* Formats (enum virtio_gpu_formats): named by their bytes in memory. */
#define VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM 1
#define VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM 2
#define VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM 3
#define VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM 4
#define VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM 67
#define VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM 68
#define VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM 121
#define VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM 134

/* Limits a hostile guest meets. */
#define VIRTIO_GPU_MAX_BACKING_ENTRIES 16384
#define VIRTIO_GPU_MAX_DIMENSION 16384 /* resource width and height */
#define VIRTIO_GPU_MAX_RESOURCES 65536
#define VIRTIO_GPU_HOSTMEM_DEFAULT (256ULL << 20) /* pixels + bookkeeping of every resource together */
#define VIRTIO_GPU_RESOURCE_OVERHEAD 1024         /* what a resource costs besides its pixels, for the cap */
#define VIRTIO_GPU_CURSOR_DIM 64                  /* cursor resources are at most 64x64 */

/* The pixels of a resource, shared with every surface made from it (a front end may still hold one after the
 * guest unrefs the resource): freed when the last image drops its reference. */
struct virtio_gpu_pixels {
    gint refs;
    size_t size;
    uint8_t data[];
};

struct virtio_gpu_backing_entry {
    uint64_t gpa;
    uint64_t start; /* offset of its first byte in the backing */
    uint32_t len;
};

struct virtio_gpu_resource {
    uint32_t id;
    uint32_t format; /* VIRTIO_GPU_FORMAT_* */
    uint32_t width, height, stride;
    struct virtio_gpu_pixels *pixels;
    pixman_image_t *image;                    /* the whole resource */
    struct virtio_gpu_backing_entry *backing; /* NULL: none attached */
    unsigned nbacking;
    uint64_t backing_len;
    uint64_t hostmem;  /* what it counts against the cap (pixels, bookkeeping, backing entries) */
    uint32_t scanouts; /* bit i: scanout i shows it */
};

struct virtio_gpu_scanout {
    struct display display;
    unsigned width, height; /* the preferred mode: GET_DISPLAY_INFO, GET_EDID */
    uint32_t resource_id;   /* 0: off */
    uint32_t x, y, w, h;    /* the part of the resource shown */
};

struct virtio_gpu_config {
    unsigned num_scanouts;  /* 1..VIRTIO_GPU_MAX_SCANOUTS; 0 means 1 */
    unsigned width, height; /* preferred mode of every scanout; 0: 1024x768 */
    uint64_t hostmem_max;   /* 0: VIRTIO_GPU_HOSTMEM_DEFAULT */
};

struct virtio_gpu {
    struct virtio_pci *vp;
    struct machine *m;
    unsigned num_scanouts;
    struct virtio_gpu_scanout scanouts[VIRTIO_GPU_MAX_SCANOUTS];
    GHashTable *resources; /* id -> struct virtio_gpu_resource * */
    uint64_t hostmem, hostmem_max;
    uint32_t events_read;
    uint64_t guest_errors; /* commands answered with an error (tests look at it) */
    struct log_ratelimit rl;
};

/* Adds virtio-gpu at VIRTIO_GPU_SLOT with one scanout whose preferred mode is m->config.display_width x
 * display_height; needs pci_host_device listed before it. */
extern const struct machine_device virtio_gpu_device;

/* One device at slot (function 0) with its displays registered: scanout N is head N of "video0" (model
 * "virtio-gpu"). NULL with *error on failure. */
struct virtio_gpu *virtio_gpu_new(struct machine *m, unsigned slot, const struct virtio_gpu_config *cfg,
                                  char **error);
void virtio_gpu_free(struct virtio_gpu *g);
/* The device at a slot, NULL if there is none (or something else). */
struct virtio_gpu *virtio_gpu_at(struct machine *m, unsigned slot);

/* Whether width x height is a mode the device can offer (--resolution, resize requests). */
bool virtio_gpu_resolution_valid(unsigned width, unsigned height, char **why);

/* ---- internal: the command processor (virtio_gpu_cmd.c) */

void virtio_gpu_process_ctrl(struct virtio_gpu *g, struct virtqueue *vq);
void virtio_gpu_process_cursor(struct virtio_gpu *g, struct virtqueue *vq);
/* Drops every resource and turns every scanout and cursor off (device reset, destroy). */
void virtio_gpu_drop_all(struct virtio_gpu *g);

#endif
