/* virtio-gpu commands: the control queue (resources, backing, transfers, scanouts, flushes, display info,
 * EDID) and the cursor queue. Every field comes from the guest: ids, indices, rectangles, offsets and backing
 * entries are checked with overflow-free arithmetic before use, host memory for resources is capped, and a
 * bad command gets an error response and a rate-limited log line, never more. */
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "virtio_gpu.h"
#include "virtio_pci.h"

#define BYTES_PER_PIXEL 4
#define REQ_MAX 56 /* the largest fixed request (TRANSFER_TO_HOST_2D, UPDATE_CURSOR) */

/* One control-queue request being handled. */
struct gpu_req {
    struct virtio_gpu *g;
    struct virtqueue *vq;
    struct virtq_elem *e;
    uint8_t cmd[REQ_MAX]; /* the request, header first */
    uint32_t type;
    bool faulted; /* a copy raised a device error: nothing more to do with this element */
};

static const char *cmd_name(uint32_t type)
{
    switch (type) {
    case VIRTIO_GPU_CMD_GET_DISPLAY_INFO:
        return "GET_DISPLAY_INFO";
    case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D:
        return "RESOURCE_CREATE_2D";
    case VIRTIO_GPU_CMD_RESOURCE_UNREF:
        return "RESOURCE_UNREF";
    case VIRTIO_GPU_CMD_SET_SCANOUT:
        return "SET_SCANOUT";
    case VIRTIO_GPU_CMD_RESOURCE_FLUSH:
        return "RESOURCE_FLUSH";
    case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D:
        return "TRANSFER_TO_HOST_2D";
    case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING:
        return "RESOURCE_ATTACH_BACKING";
    case VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING:
        return "RESOURCE_DETACH_BACKING";
    case VIRTIO_GPU_CMD_GET_CAPSET_INFO:
        return "GET_CAPSET_INFO";
    case VIRTIO_GPU_CMD_GET_CAPSET:
        return "GET_CAPSET";
    case VIRTIO_GPU_CMD_GET_EDID:
        return "GET_EDID";
    case VIRTIO_GPU_CMD_UPDATE_CURSOR:
        return "UPDATE_CURSOR";
    case VIRTIO_GPU_CMD_MOVE_CURSOR:
        return "MOVE_CURSOR";
    default:
        return "unknown command";
    }
}

/* Logs a guest mistake (rate-limited) and returns the error response code. */
static uint32_t __attribute__((format(printf, 3, 4)))
guest_error(struct gpu_req *r, uint32_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    r->g->guest_errors++;
    log_message_ratelimited(&r->g->rl, LOG_LEVEL_WARN, "virtio-gpu: %s (0x%04x): %s", cmd_name(r->type),
                            r->type, what);
    g_free(what);
    return code;
}

/* Reads the fixed part of the request (size bytes, header included) into r->cmd. */
static bool read_request(struct gpu_req *r, size_t size)
{
    if (r->e->out_len < size)
        return false;
    if (virtq_elem_copy_from(r->vq, r->e, 0, r->cmd, size) != (ssize_t)size) {
        r->faulted = true;
        return false;
    }
    return true;
}

/* Writes the response (resp, len bytes, header space first) with the request's fence echoed, and completes
 * the request. A response that does not fit becomes a bare ERR_UNSPEC header; with no room even for that, the
 * request completes with nothing written. */
static void respond(struct gpu_req *r, uint32_t type, uint8_t *resp, size_t len)
{
    if (r->faulted)
        return;
    if (r->e->in_len < len) {
        guest_error(r, 0, "response buffer of %llu bytes, the response takes %zu",
                    (unsigned long long)r->e->in_len, len);
        type = VIRTIO_GPU_RESP_ERR_UNSPEC;
        len = VIRTIO_GPU_HDR_SIZE;
        if (r->e->in_len < len) {
            virtqueue_push(r->vq, r->e, 0);
            return;
        }
    }
    uint32_t flags = le32_load(r->cmd + 4) & (VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX);
    memset(resp, 0, VIRTIO_GPU_HDR_SIZE);
    le32_store(resp, type);
    le32_store(resp + 4, flags);
    if (flags & VIRTIO_GPU_FLAG_FENCE) {
        memcpy(resp + 8, r->cmd + 8, 8);   /* fence_id */
        memcpy(resp + 16, r->cmd + 16, 4); /* ctx_id */
    }
    if (flags & VIRTIO_GPU_FLAG_INFO_RING_IDX)
        resp[20] = r->cmd[20];
    if (virtq_elem_copy_to(r->vq, r->e, 0, resp, len) != (ssize_t)len)
        return; /* device error raised; the push would be dropped */
    virtqueue_push(r->vq, r->e, (uint32_t)len);
}

/* ---------------------------------------------------------------- resources */

static pixman_format_code_t pixman_format(uint32_t format)
{
    /* virtio names the bytes in memory order; pixman names bits of a little-endian 32-bit word. */
    switch (format) {
    case VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM:
        return PIXMAN_a8r8g8b8;
    case VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM:
        return PIXMAN_x8r8g8b8;
    case VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM:
        return PIXMAN_b8g8r8a8;
    case VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM:
        return PIXMAN_b8g8r8x8;
    case VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM:
        return PIXMAN_a8b8g8r8;
    case VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM:
        return PIXMAN_r8g8b8x8;
    case VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM:
        return PIXMAN_r8g8b8a8;
    case VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM:
        return PIXMAN_x8b8g8r8;
    default:
        return 0;
    }
}

static void pixels_unref(pixman_image_t *image, void *data)
{
    (void)image;
    struct virtio_gpu_pixels *p = data;
    if (g_atomic_int_dec_and_test(&p->refs))
        g_free(p);
}

/* An image on (part of) a resource's pixels that keeps them alive. */
static pixman_image_t *pixels_image(struct virtio_gpu_resource *res, uint32_t x, uint32_t y, uint32_t w,
                                    uint32_t h)
{
    uint8_t *start = res->pixels->data + (size_t)y * res->stride + (size_t)x * BYTES_PER_PIXEL;
    pixman_image_t *img = pixman_image_create_bits(pixman_format(res->format), (int)w, (int)h,
                                                   (uint32_t *)(void *)start, (int)res->stride);
    if (!img)
        return NULL;
    g_atomic_int_inc(&res->pixels->refs);
    pixman_image_set_destroy_function(img, pixels_unref, res->pixels);
    return img;
}

static struct virtio_gpu_resource *find_resource(struct virtio_gpu *g, uint32_t id)
{
    return id ? g_hash_table_lookup(g->resources, GUINT_TO_POINTER(id)) : NULL;
}

/* Whether the rectangle lies inside the resource (empty rectangles too), without overflowing. */
static bool rect_inside(const struct virtio_gpu_resource *res, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
    return x <= res->width && w <= res->width - x && y <= res->height && h <= res->height - y;
}

static void free_backing(struct virtio_gpu *g, struct virtio_gpu_resource *res)
{
    uint64_t cost = (uint64_t)res->nbacking * sizeof(*res->backing);
    g_clear_pointer(&res->backing, g_free);
    res->nbacking = 0;
    res->backing_len = 0;
    res->hostmem -= cost;
    g->hostmem -= cost;
}

static void scanout_off(struct virtio_gpu *g, unsigned i)
{
    struct virtio_gpu_scanout *s = &g->scanouts[i];
    if (!s->resource_id)
        return;
    struct virtio_gpu_resource *res = find_resource(g, s->resource_id);
    if (res)
        res->scanouts &= ~(1u << i);
    s->resource_id = 0;
    s->x = s->y = s->w = s->h = 0;
    display_set_surface(&s->display, NULL);
}

/* Takes the resource out of the table and frees it; scanouts showing it go off first, so no surface is left
 * pointing at it (front ends holding an image of it keep its pixels alive until they let go). */
static void destroy_resource(struct virtio_gpu *g, struct virtio_gpu_resource *res)
{
    for (unsigned i = 0; i < g->num_scanouts; i++)
        if (res->scanouts & (1u << i))
            scanout_off(g, i);
    g_hash_table_remove(g->resources, GUINT_TO_POINTER(res->id));
    free_backing(g, res);
    g->hostmem -= res->hostmem;
    pixman_image_unref(res->image); /* drops its reference on the pixels */
    g_free(res);
}

void virtio_gpu_drop_all(struct virtio_gpu *g)
{
    for (unsigned i = 0; i < g->num_scanouts; i++) {
        struct display *d = &g->scanouts[i].display;
        scanout_off(g, i);
        if (d->cursor.image || d->cursor.visible) {
            display_set_cursor(d, NULL, 0, 0);
            display_move_cursor(d, 0, 0, false);
        }
    }
    GList *all = g_hash_table_get_values(g->resources);
    for (GList *l = all; l; l = l->next)
        destroy_resource(g, l->data);
    g_list_free(all);
    g->hostmem = 0;
}

static uint32_t cmd_resource_create_2d(struct gpu_req *r)
{
    struct virtio_gpu *g = r->g;
    uint32_t id = le32_load(r->cmd + 24), format = le32_load(r->cmd + 28);
    uint32_t w = le32_load(r->cmd + 32), h = le32_load(r->cmd + 36);
    if (!id)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "resource id 0");
    if (find_resource(g, id))
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "resource %u exists already", id);
    if (!pixman_format(format))
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "resource %u: format %u unsupported", id,
                           format);
    if (!w || !h || w > VIRTIO_GPU_MAX_DIMENSION || h > VIRTIO_GPU_MAX_DIMENSION)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "resource %u: size %ux%u (1..%d)", id, w,
                           h, VIRTIO_GPU_MAX_DIMENSION);
    if (g_hash_table_size(g->resources) >= VIRTIO_GPU_MAX_RESOURCES)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY, "more than %d resources",
                           VIRTIO_GPU_MAX_RESOURCES);
    uint32_t stride = w * BYTES_PER_PIXEL;
    uint64_t bytes = (uint64_t)stride * h, cost = bytes + VIRTIO_GPU_RESOURCE_OVERHEAD;
    if (cost > g->hostmem_max - g->hostmem)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY,
                           "resource %u: %ux%u would take resources past the %llu MiB cap", id, w, h,
                           (unsigned long long)(g->hostmem_max >> 20));
    struct virtio_gpu_pixels *p = g_try_malloc0(sizeof(*p) + bytes);
    if (!p)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY, "resource %u: no memory for %ux%u", id, w,
                           h);
    p->refs = 1; /* the resource's own reference, handed to its image below */
    p->size = bytes;
    struct virtio_gpu_resource *res = g_new0(struct virtio_gpu_resource, 1);
    res->id = id;
    res->format = format;
    res->width = w;
    res->height = h;
    res->stride = stride;
    res->pixels = p;
    res->image = pixman_image_create_bits(pixman_format(format), (int)w, (int)h, (uint32_t *)(void *)p->data,
                                          (int)stride);
    if (!res->image) {
        g_free(p);
        g_free(res);
        return guest_error(r, VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY, "resource %u: no image for %ux%u", id, w, h);
    }
    pixman_image_set_destroy_function(res->image, pixels_unref, p);
    res->hostmem = cost;
    g->hostmem += cost;
    g_hash_table_insert(g->resources, GUINT_TO_POINTER(id), res);
    return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_resource_unref(struct gpu_req *r)
{
    uint32_t id = le32_load(r->cmd + 24);
    struct virtio_gpu_resource *res = find_resource(r->g, id);
    if (!res)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "no resource %u", id);
    destroy_resource(r->g, res);
    return VIRTIO_GPU_RESP_OK_NODATA;
}

/* ---------------------------------------------------------------- backing */

static uint32_t cmd_attach_backing(struct gpu_req *r)
{
    struct virtio_gpu *g = r->g;
    uint32_t id = le32_load(r->cmd + 24), n = le32_load(r->cmd + 28);
    struct virtio_gpu_resource *res = find_resource(g, id);
    if (!res)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "no resource %u", id);
    if (res->backing)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_UNSPEC, "resource %u has backing already", id);
    if (!n || n > VIRTIO_GPU_MAX_BACKING_ENTRIES)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "resource %u: %u entries (1..%d)", id, n,
                           VIRTIO_GPU_MAX_BACKING_ENTRIES);
    uint64_t raw_len = (uint64_t)n * VIRTIO_GPU_MEM_ENTRY_SIZE;
    if (r->e->out_len - VIRTIO_GPU_ATTACH_BACKING_SIZE < raw_len)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_UNSPEC,
                           "resource %u: %u entries in a request of %llu bytes", id, n,
                           (unsigned long long)r->e->out_len);
    uint64_t cost = (uint64_t)n * sizeof(struct virtio_gpu_backing_entry);
    if (cost > g->hostmem_max - g->hostmem)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY,
                           "resource %u: %u entries past the memory cap", id, n);
    uint8_t *raw = g_try_malloc(raw_len);
    struct virtio_gpu_backing_entry *b = g_try_new(struct virtio_gpu_backing_entry, n);
    if (!raw || !b) {
        g_free(raw);
        g_free(b);
        return guest_error(r, VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY, "resource %u: no memory for %u entries", id,
                           n);
    }
    if (virtq_elem_copy_from(r->vq, r->e, VIRTIO_GPU_ATTACH_BACKING_SIZE, raw, raw_len) != (ssize_t)raw_len) {
        r->faulted = true;
        g_free(raw);
        g_free(b);
        return VIRTIO_GPU_RESP_ERR_UNSPEC;
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t gpa = le64_load(raw + 16 * (size_t)i);
        uint32_t len = le32_load(raw + 16 * (size_t)i + 8);
        if (!len || !guest_memory_is_ram(&g->m->mem, gpa, len)) {
            g_free(raw);
            g_free(b);
            return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
                               "resource %u: entry %u (0x%llx, %u bytes) is not guest RAM", id, i,
                               (unsigned long long)gpa, len);
        }
        b[i] = (struct virtio_gpu_backing_entry){.gpa = gpa, .start = total, .len = len};
        total += len; /* at most 16384 * 4 GiB: no overflow */
    }
    g_free(raw);
    if (total < (uint64_t)res->stride * res->height) {
        g_free(b);
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
                           "resource %u: backing of %llu bytes for %llu bytes of pixels", id,
                           (unsigned long long)total, (unsigned long long)res->stride * res->height);
    }
    res->backing = b;
    res->nbacking = n;
    res->backing_len = total;
    res->hostmem += cost;
    g->hostmem += cost;
    return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_detach_backing(struct gpu_req *r)
{
    uint32_t id = le32_load(r->cmd + 24);
    struct virtio_gpu_resource *res = find_resource(r->g, id);
    if (!res)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "no resource %u", id);
    if (!res->backing)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_UNSPEC, "resource %u has no backing", id);
    /* The host copy of the pixels stays: a scanout showing the resource keeps showing them. */
    free_backing(r->g, res);
    return VIRTIO_GPU_RESP_OK_NODATA;
}

/* Copies len bytes at offset off of the backing (checked to lie inside it) into dst; each piece goes through
 * the guest-memory API again, so memory that stopped being RAM is refused rather than read. */
static bool backing_read(struct virtio_gpu *g, const struct virtio_gpu_resource *res, uint64_t off,
                         uint8_t *dst, size_t len)
{
    unsigned lo = 0, hi = res->nbacking;
    while (hi - lo > 1) { /* the last entry starting at or before off */
        unsigned mid = lo + (hi - lo) / 2;
        if (res->backing[mid].start <= off)
            lo = mid;
        else
            hi = mid;
    }
    for (unsigned i = lo; len; i++) {
        if (i >= res->nbacking)
            return false;
        const struct virtio_gpu_backing_entry *e = &res->backing[i];
        uint64_t within = off - e->start;
        size_t chunk = (size_t)MIN((uint64_t)e->len - within, (uint64_t)len);
        if (guest_mem_read(&g->m->mem, e->gpa + within, dst, chunk) < 0)
            return false;
        dst += chunk;
        off += chunk;
        len -= chunk;
    }
    return true;
}

static uint32_t cmd_transfer_to_host_2d(struct gpu_req *r)
{
    struct virtio_gpu *g = r->g;
    uint32_t x = le32_load(r->cmd + 24), y = le32_load(r->cmd + 28), w = le32_load(r->cmd + 32),
             h = le32_load(r->cmd + 36);
    uint64_t offset = le64_load(r->cmd + 40);
    uint32_t id = le32_load(r->cmd + 48);
    struct virtio_gpu_resource *res = find_resource(g, id);
    if (!res)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "no resource %u", id);
    if (!res->backing)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_UNSPEC, "resource %u has no backing", id);
    if (!rect_inside(res, x, y, w, h))
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "rectangle %ux%u+%u+%u outside %ux%u", w,
                           h, x, y, res->width, res->height);
    if (!w || !h)
        return VIRTIO_GPU_RESP_OK_NODATA;
    /* Row i of the rectangle is at offset + i * stride in the backing (the guest's buffer has the resource's
     * layout); the last byte read must lie inside the backing. */
    uint64_t row_bytes = (uint64_t)w * BYTES_PER_PIXEL, span = (uint64_t)(h - 1) * res->stride + row_bytes;
    if (offset > res->backing_len || span > res->backing_len - offset)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
                           "resource %u: %ux%u at offset %llu reads past its %llu-byte backing", id, w, h,
                           (unsigned long long)offset, (unsigned long long)res->backing_len);
    if (!virtio_dma_allowed(&g->vp->vdev))
        return guest_error(r, VIRTIO_GPU_RESP_ERR_UNSPEC, "bus mastering is off");
    for (uint32_t i = 0; i < h; i++) {
        uint8_t *dst = res->pixels->data + (size_t)(y + i) * res->stride + (size_t)x * BYTES_PER_PIXEL;
        if (!backing_read(g, res, offset + (uint64_t)i * res->stride, dst, (size_t)row_bytes))
            return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
                               "resource %u: backing no longer guest RAM", id);
    }
    return VIRTIO_GPU_RESP_OK_NODATA;
}

/* ---------------------------------------------------------------- scanouts */

static uint32_t cmd_set_scanout(struct gpu_req *r)
{
    struct virtio_gpu *g = r->g;
    uint32_t x = le32_load(r->cmd + 24), y = le32_load(r->cmd + 28), w = le32_load(r->cmd + 32),
             h = le32_load(r->cmd + 36);
    uint32_t sid = le32_load(r->cmd + 40), id = le32_load(r->cmd + 44);
    if (sid >= g->num_scanouts)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID, "scanout %u (the device has %u)", sid,
                           g->num_scanouts);
    if (!id) {
        scanout_off(g, sid);
        return VIRTIO_GPU_RESP_OK_NODATA;
    }
    struct virtio_gpu_resource *res = find_resource(g, id);
    if (!res)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "no resource %u", id);
    if (!w || !h || !rect_inside(res, x, y, w, h))
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "scanout rectangle %ux%u+%u+%u in %ux%u",
                           w, h, x, y, res->width, res->height);
    struct virtio_gpu_scanout *s = &g->scanouts[sid];
    if (s->resource_id == id && s->x == x && s->y == y && s->w == w && s->h == h)
        return VIRTIO_GPU_RESP_OK_NODATA; /* unchanged: consumers keep their surface */
    pixman_image_t *surface;
    if (x == 0 && y == 0 && w == res->width && h == res->height)
        surface = pixman_image_ref(res->image);
    else
        surface = pixels_image(res, x, y, w, h);
    if (!surface)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY, "no memory for the scanout image");
    scanout_off(g, sid);
    s->resource_id = id;
    s->x = x, s->y = y, s->w = w, s->h = h;
    res->scanouts |= 1u << sid;
    display_set_surface(&s->display, surface);
    pixman_image_unref(surface);
    return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_resource_flush(struct gpu_req *r)
{
    struct virtio_gpu *g = r->g;
    uint32_t x = le32_load(r->cmd + 24), y = le32_load(r->cmd + 28), w = le32_load(r->cmd + 32),
             h = le32_load(r->cmd + 36);
    uint32_t id = le32_load(r->cmd + 40);
    struct virtio_gpu_resource *res = find_resource(g, id);
    if (!res)
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "no resource %u", id);
    if (!rect_inside(res, x, y, w, h))
        return guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "rectangle %ux%u+%u+%u outside %ux%u", w,
                           h, x, y, res->width, res->height);
    /* The flushed rectangle, cut to what each scanout shows of the resource, is that scanout's damage. */
    for (unsigned i = 0; i < g->num_scanouts; i++) {
        struct virtio_gpu_scanout *s = &g->scanouts[i];
        if (!(res->scanouts & (1u << i)))
            continue;
        uint32_t x1 = MAX(x, s->x), y1 = MAX(y, s->y);
        uint32_t x2 = MIN(x + w, s->x + s->w), y2 = MIN(y + h, s->y + s->h); /* all <= 16384: no overflow */
        if (x1 < x2 && y1 < y2)
            display_add_damage(&s->display, (int)(x1 - s->x), (int)(y1 - s->y), (int)(x2 - x1),
                               (int)(y2 - y1));
    }
    return VIRTIO_GPU_RESP_OK_NODATA;
}

/* ---------------------------------------------------------------- display information */

static void cmd_get_display_info(struct gpu_req *r)
{
    uint8_t resp[VIRTIO_GPU_DISPLAY_INFO_SIZE] = {0};
    for (unsigned i = 0; i < r->g->num_scanouts; i++) {
        uint8_t *p = resp + VIRTIO_GPU_HDR_SIZE + 24 * i; /* rect, le32 enabled, le32 flags */
        le32_store(p + 8, r->g->scanouts[i].width);
        le32_store(p + 12, r->g->scanouts[i].height);
        le32_store(p + 16, 1);
    }
    respond(r, VIRTIO_GPU_RESP_OK_DISPLAY_INFO, resp, sizeof(resp));
}

static void cmd_get_edid(struct gpu_req *r)
{
    uint8_t resp[VIRTIO_GPU_RESP_EDID_SIZE] = {0};
    uint32_t sid = le32_load(r->cmd + 24);
    if (!virtio_has_feature(&r->g->vp->vdev, VIRTIO_GPU_F_EDID)) {
        respond(r, guest_error(r, VIRTIO_GPU_RESP_ERR_UNSPEC, "EDID feature not negotiated"), resp,
                VIRTIO_GPU_HDR_SIZE);
        return;
    }
    if (sid >= r->g->num_scanouts) {
        respond(r, guest_error(r, VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID, "scanout %u", sid), resp,
                VIRTIO_GPU_HDR_SIZE);
        return;
    }
    le32_store(resp + VIRTIO_GPU_HDR_SIZE, EDID_LENGTH);
    edid_build(resp + VIRTIO_GPU_HDR_SIZE + 8, r->g->scanouts[sid].width, r->g->scanouts[sid].height);
    respond(r, VIRTIO_GPU_RESP_OK_EDID, resp, sizeof(resp));
}

/* ---------------------------------------------------------------- the control queue */

static size_t request_size(uint32_t type)
{
    switch (type) {
    case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D:
        return VIRTIO_GPU_RESOURCE_CREATE_2D_SIZE;
    case VIRTIO_GPU_CMD_RESOURCE_UNREF:
        return VIRTIO_GPU_RESOURCE_UNREF_SIZE;
    case VIRTIO_GPU_CMD_SET_SCANOUT:
        return VIRTIO_GPU_SET_SCANOUT_SIZE;
    case VIRTIO_GPU_CMD_RESOURCE_FLUSH:
        return VIRTIO_GPU_RESOURCE_FLUSH_SIZE;
    case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D:
        return VIRTIO_GPU_TRANSFER_TO_HOST_2D_SIZE;
    case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING:
        return VIRTIO_GPU_ATTACH_BACKING_SIZE;
    case VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING:
        return VIRTIO_GPU_DETACH_BACKING_SIZE;
    case VIRTIO_GPU_CMD_GET_EDID:
        return VIRTIO_GPU_GET_EDID_SIZE;
    case VIRTIO_GPU_CMD_GET_CAPSET_INFO:
    case VIRTIO_GPU_CMD_GET_CAPSET:
        return 32;
    default:
        return VIRTIO_GPU_HDR_SIZE;
    }
}

static void handle_ctrl(struct virtio_gpu *g, struct virtqueue *vq, struct virtq_elem *e)
{
    struct gpu_req r = {.g = g, .vq = vq, .e = e};
    uint8_t resp[VIRTIO_GPU_HDR_SIZE];
    if (!read_request(&r, VIRTIO_GPU_HDR_SIZE)) {
        if (!r.faulted)
            guest_error(&r, 0, "request of %llu bytes, shorter than a header",
                        (unsigned long long)e->out_len);
        memset(r.cmd, 0, sizeof(r.cmd)); /* no fence to echo */
        respond(&r, VIRTIO_GPU_RESP_ERR_UNSPEC, resp, sizeof(resp));
        return;
    }
    r.type = le32_load(r.cmd);
    size_t need = request_size(r.type);
    if (!read_request(&r, need)) {
        if (!r.faulted)
            respond(&r,
                    guest_error(&r, VIRTIO_GPU_RESP_ERR_UNSPEC, "request of %llu bytes, needs %zu",
                                (unsigned long long)e->out_len, need),
                    resp, sizeof(resp));
        return;
    }
    uint32_t code;
    switch (r.type) {
    case VIRTIO_GPU_CMD_GET_DISPLAY_INFO:
        cmd_get_display_info(&r);
        return;
    case VIRTIO_GPU_CMD_GET_EDID:
        cmd_get_edid(&r);
        return;
    case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D:
        code = cmd_resource_create_2d(&r);
        break;
    case VIRTIO_GPU_CMD_RESOURCE_UNREF:
        code = cmd_resource_unref(&r);
        break;
    case VIRTIO_GPU_CMD_SET_SCANOUT:
        code = cmd_set_scanout(&r);
        break;
    case VIRTIO_GPU_CMD_RESOURCE_FLUSH:
        code = cmd_resource_flush(&r);
        break;
    case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D:
        code = cmd_transfer_to_host_2d(&r);
        break;
    case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING:
        code = cmd_attach_backing(&r);
        break;
    case VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING:
        code = cmd_detach_backing(&r);
        break;
    case VIRTIO_GPU_CMD_GET_CAPSET_INFO:
    case VIRTIO_GPU_CMD_GET_CAPSET:
        code = guest_error(&r, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "the device has no capability sets");
        break;
    default:
        code = guest_error(&r, VIRTIO_GPU_RESP_ERR_UNSPEC, "unsupported");
        break;
    }
    respond(&r, code, resp, sizeof(resp));
}

void virtio_gpu_process_ctrl(struct virtio_gpu *g, struct virtqueue *vq)
{
    struct virtq_elem *e;
    while ((e = virtqueue_pop(vq))) {
        handle_ctrl(g, vq, e);
        virtq_elem_free(e);
    }
    virtqueue_notify(vq);
}

/* ---------------------------------------------------------------- the cursor queue */

static int clamp_int(int64_t v)
{
    return (int)CLAMP(v, (int64_t)INT_MIN, (int64_t)INT_MAX);
}

/* The format to read a cursor resource's pixels in: its own, with the padding byte taken as alpha. */
static pixman_format_code_t cursor_source_format(pixman_format_code_t f)
{
    switch (f) {
    case PIXMAN_x8r8g8b8:
        return PIXMAN_a8r8g8b8;
    case PIXMAN_b8g8r8x8:
        return PIXMAN_b8g8r8a8;
    case PIXMAN_x8b8g8r8:
        return PIXMAN_a8b8g8r8;
    case PIXMAN_r8g8b8x8:
        return PIXMAN_r8g8b8a8;
    default:
        return f;
    }
}

static void update_cursor(struct gpu_req *r)
{
    struct virtio_gpu *g = r->g;
    uint32_t sid = le32_load(r->cmd + 24);
    int32_t x = (int32_t)le32_load(r->cmd + 28), y = (int32_t)le32_load(r->cmd + 32);
    uint32_t id = le32_load(r->cmd + 40), hot_x = le32_load(r->cmd + 44), hot_y = le32_load(r->cmd + 48);
    if (sid >= g->num_scanouts) {
        guest_error(r, 0, "scanout %u (the device has %u)", sid, g->num_scanouts);
        return;
    }
    struct display *d = &g->scanouts[sid].display;
    if (r->type == VIRTIO_GPU_CMD_MOVE_CURSOR) {
        display_move_cursor(d, clamp_int((int64_t)x + d->cursor.hot_x),
                            clamp_int((int64_t)y + d->cursor.hot_y), d->cursor.image != NULL);
        return;
    }
    if (!id) { /* no cursor */
        display_set_cursor(d, NULL, 0, 0);
        display_move_cursor(d, x, y, false);
        return;
    }
    struct virtio_gpu_resource *res = find_resource(g, id);
    if (!res) {
        guest_error(r, 0, "no resource %u", id);
        return;
    }
    if (res->width > VIRTIO_GPU_CURSOR_DIM || res->height > VIRTIO_GPU_CURSOR_DIM) {
        guest_error(r, 0, "cursor resource %u is %ux%u (at most %dx%d)", id, res->width, res->height,
                    VIRTIO_GPU_CURSOR_DIM, VIRTIO_GPU_CURSOR_DIM);
        return;
    }
    /* A copy in the display's cursor format: the resource may change or go away while front ends show it.
     * The fourth byte is the cursor's alpha whatever the resource's format calls it: Linux creates dumb
     * buffers, its cursors among them, as B8G8R8X8 resources and writes ARGB8888 into them. */
    pixman_image_t *img =
        pixman_image_create_bits(PIXMAN_a8r8g8b8, (int)res->width, (int)res->height, NULL, 0);
    pixman_image_t *src =
        pixman_image_create_bits(cursor_source_format(pixman_format(res->format)), (int)res->width,
                                 (int)res->height, pixman_image_get_data(res->image), (int)res->stride);
    if (!img || !src) {
        if (img)
            pixman_image_unref(img);
        if (src)
            pixman_image_unref(src);
        guest_error(r, 0, "no memory for the cursor");
        return;
    }
    pixman_image_composite32(PIXMAN_OP_SRC, src, NULL, img, 0, 0, 0, 0, 0, 0, (int)res->width,
                             (int)res->height);
    pixman_image_unref(src);
    int hx = (int)MIN(hot_x, res->width - 1), hy = (int)MIN(hot_y, res->height - 1);
    display_set_cursor(d, img, hx, hy);
    pixman_image_unref(img);
    /* pos is the image's top-left corner (DRM's crtc_x/y); the display wants the hotspot's position. */
    display_move_cursor(d, clamp_int((int64_t)x + hx), clamp_int((int64_t)y + hy), true);
}

void virtio_gpu_process_cursor(struct virtio_gpu *g, struct virtqueue *vq)
{
    struct virtq_elem *e;
    while ((e = virtqueue_pop(vq))) {
        struct gpu_req r = {.g = g, .vq = vq, .e = e};
        if (read_request(&r, VIRTIO_GPU_CURSOR_SIZE)) {
            r.type = le32_load(r.cmd);
            if (r.type == VIRTIO_GPU_CMD_UPDATE_CURSOR || r.type == VIRTIO_GPU_CMD_MOVE_CURSOR)
                update_cursor(&r);
            else
                guest_error(&r, 0, "not a cursor command");
        } else if (!r.faulted) {
            guest_error(&r, 0, "cursor request of %llu bytes, needs %d", (unsigned long long)e->out_len,
                        VIRTIO_GPU_CURSOR_SIZE);
        }
        if (!r.faulted)
            virtqueue_push(vq, e, 0); /* the cursor queue has no responses */
        virtq_elem_free(e);
    }
    virtqueue_notify(vq);
}
