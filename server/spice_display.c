/* The SPICE simple display: a QXL instance of our own that turns a gpu/display.h display (bochs-display,
 * virtio-gpu) into QXL commands, the way QEMU serves non-QXL video cards.
 *
 * One host memslot (group 0, slot 0, generation 0, the whole address space, offset 0) makes every QXLPHYSICAL
 * a plain host pointer. The primary surface mirrors the display's mode; each damaged rectangle becomes a
 * QXL_DRAW_COPY of a private copy of its pixels, after a compare against a mirror of what the client was
 * last sent shrinks it to the rows and 32-pixel column blocks that really changed (a dumb framebuffer's
 * damage is whole pages). Commands wait in a bounded queue that spice-server's worker thread drains through
 * get_command; while it is full, damage accumulates and is retried on a timer, so a slow client costs a
 * bounded amount of memory and sees the latest pixels. Cursor shapes and moves go through a second queue. */
#include <stddef.h>
#include <string.h>

#include "log.h"
#include "spice_internal.h"

#define SIMPLE_DISPLAY_COLUMN_BLOCK 32
/* Commands and pixel bytes in flight before damage is held back. */
#define SIMPLE_DISPLAY_QUEUE_MAX 256
#define SIMPLE_DISPLAY_BYTES_MAX (64u << 20)
#define SIMPLE_DISPLAY_RETRY_MS 20
#define SIMPLE_DISPLAY_CURSOR_QUEUE_MAX 64
/* The black screen shown while the display is off. */
#define SIMPLE_DISPLAY_OFF_WIDTH 640
#define SIMPLE_DISPLAY_OFF_HEIGHT 480

/* Everything spice-server may read until it releases the command: the command, the image and the pixels. */
struct simple_update {
    enum { UPDATE_DRAW, UPDATE_CURSOR } kind;
    struct spice_display *sd;
    size_t bytes;
    union {
        struct {
            QXLDrawable drawable;
            QXLImage image;
        } draw;
        struct {
            QXLCursorCmd cmd;
            QXLCursor *shape; /* CURSOR_SET only; header + ARGB pixels */
        } cursor;
    };
    uint8_t pixels[];
};

struct spice_display {
    QXLInstance qxl;
    SpiceServer *server;
    struct display *display;
    struct display_listener *listener;

    /* Main thread only. */
    uint32_t *primary; /* what spice renders into; width x height x 4 */
    uint32_t *mirror;  /* what the client was sent */
    int width, height;
    pixman_image_t *surface; /* the display's surface (our reference) */
    pixman_region32_t pending; /* damage held back while the queue was full */
    guint retry_source;
    uint64_t image_serial;
    pixman_image_t *cursor_image; /* the last shape sent (our reference) */
    int cursor_hot_x, cursor_hot_y;
    bool cursor_visible;

    /* Shared with the worker thread. */
    GMutex lock;
    GQueue draws;   /* struct simple_update *, oldest first */
    GQueue cursors; /* struct simple_update * */
    size_t queued_bytes;
};

static struct spice_display *of_qxl(QXLInstance *qin)
{
    return SPICE_CONTAINEROF(qin, struct spice_display, qxl);
}

/* ---- worker-thread callbacks */

static void qxl_attached_worker(QXLInstance *qin)
{
    (void)qin;
}

static void qxl_set_compression_level(QXLInstance *qin, int level)
{
    (void)qin;
    (void)level;
}

static void qxl_get_init_info(QXLInstance *qin, QXLDevInitInfo *info)
{
    (void)qin;
    memset(info, 0, sizeof(*info));
    info->num_memslots_groups = 1;
    info->num_memslots = 1;
    info->memslot_gen_bits = 8;
    info->memslot_id_bits = 8;
    info->internal_groupslot_id = 0;
    info->qxl_ram_size = 16u << 20;
    info->n_surfaces = 1;
}

static int pop_command(struct spice_display *sd, GQueue *q, struct QXLCommandExt *ext)
{
    g_mutex_lock(&sd->lock);
    struct simple_update *u = g_queue_pop_head(q);
    if (u)
        sd->queued_bytes -= u->bytes;
    g_mutex_unlock(&sd->lock);
    if (!u)
        return 0;
    memset(ext, 0, sizeof(*ext));
    if (u->kind == UPDATE_DRAW) {
        ext->cmd.type = QXL_CMD_DRAW;
        ext->cmd.data = (QXLPHYSICAL)(uintptr_t)&u->draw.drawable;
    } else {
        ext->cmd.type = QXL_CMD_CURSOR;
        ext->cmd.data = (QXLPHYSICAL)(uintptr_t)&u->cursor.cmd;
    }
    ext->group_id = 0;
    return 1;
}

static int qxl_get_command(QXLInstance *qin, struct QXLCommandExt *ext)
{
    struct spice_display *sd = of_qxl(qin);
    return pop_command(sd, &sd->draws, ext);
}

static int qxl_get_cursor_command(QXLInstance *qin, struct QXLCommandExt *ext)
{
    struct spice_display *sd = of_qxl(qin);
    return pop_command(sd, &sd->cursors, ext);
}

/* Whether to be woken (1) or there is work already (0). */
static int request_notification(struct spice_display *sd, GQueue *q)
{
    g_mutex_lock(&sd->lock);
    bool empty = g_queue_is_empty(q);
    g_mutex_unlock(&sd->lock);
    return empty ? 1 : 0;
}

static int qxl_req_cmd_notification(QXLInstance *qin)
{
    struct spice_display *sd = of_qxl(qin);
    return request_notification(sd, &sd->draws);
}

static int qxl_req_cursor_notification(QXLInstance *qin)
{
    struct spice_display *sd = of_qxl(qin);
    return request_notification(sd, &sd->cursors);
}

static void free_update(struct simple_update *u)
{
    if (u->kind == UPDATE_CURSOR)
        g_free(u->cursor.shape);
    g_free(u);
}

static void qxl_release_resource(QXLInstance *qin, struct QXLReleaseInfoExt info)
{
    (void)qin;
    /* Only the update itself: spice-server may release the last ones while the display is being freed. */
    free_update((struct simple_update *)(uintptr_t)info.info->id);
}

static void qxl_notify_update(QXLInstance *qin, uint32_t update_id)
{
    (void)qin;
    (void)update_id;
}

static int qxl_flush_resources(QXLInstance *qin)
{
    (void)qin;
    return 0;
}

static void qxl_async_complete(QXLInstance *qin, uint64_t cookie)
{
    (void)qin;
    (void)cookie;
}

static void qxl_update_area_complete(QXLInstance *qin, uint32_t surface_id, struct QXLRect *rects, uint32_t n)
{
    (void)qin;
    (void)surface_id;
    (void)rects;
    (void)n;
}

static void qxl_set_client_capabilities(QXLInstance *qin, uint8_t present, uint8_t caps[SPICE_CAPABILITIES_SIZE])
{
    (void)qin;
    (void)present;
    (void)caps;
}

/* Main thread. A client's window size goes to the device (virtio-gpu tells the guest, as QEMU does); a
 * device that cannot resize says "unsupported", so spice-server hands the request to the guest's vdagent. */
static int qxl_client_monitors_config(QXLInstance *qin, VDAgentMonitorsConfig *config)
{
    struct spice_display *sd = of_qxl(qin);
    bool can_resize = sd->display->ops && sd->display->ops->request_resize;
    if (!config || !can_resize)
        return can_resize ? 1 : 0;
    if (config->num_of_monitors < 1)
        return 1;
    VDAgentMonConfig *head = &config->monitors[0];
    if (head->width >= 16 && head->height >= 16 && head->width <= 16384 && head->height <= 16384) {
        if (!display_request_resize(sd->display, head->width, head->height))
            log_debug("spice: the display refused a resize to %ux%u", head->width, head->height);
    }
    return 1;
}

static const QXLInterface simple_display_interface = {
    .base =
        {
            .type = SPICE_INTERFACE_QXL,
            .description = "deskvm simple display",
            .major_version = SPICE_INTERFACE_QXL_MAJOR,
            .minor_version = SPICE_INTERFACE_QXL_MINOR,
        },
    .attached_worker = qxl_attached_worker,
    .set_compression_level = qxl_set_compression_level,
    .get_init_info = qxl_get_init_info,
    .get_command = qxl_get_command,
    .req_cmd_notification = qxl_req_cmd_notification,
    .release_resource = qxl_release_resource,
    .get_cursor_command = qxl_get_cursor_command,
    .req_cursor_notification = qxl_req_cursor_notification,
    .notify_update = qxl_notify_update,
    .flush_resources = qxl_flush_resources,
    .async_complete = qxl_async_complete,
    .update_area_complete = qxl_update_area_complete,
    .set_client_capabilities = qxl_set_client_capabilities,
    .client_monitors_config = qxl_client_monitors_config,
};

/* ---- main thread: building commands */

static void queue_update(struct spice_display *sd, GQueue *q, struct simple_update *u, unsigned max)
{
    struct simple_update *dropped = NULL;
    g_mutex_lock(&sd->lock);
    if (g_queue_get_length(q) >= max) {
        dropped = g_queue_pop_head(q);
        sd->queued_bytes -= dropped->bytes;
    }
    g_queue_push_tail(q, u);
    sd->queued_bytes += u->bytes;
    g_mutex_unlock(&sd->lock);
    if (dropped)
        free_update(dropped);
    spice_qxl_wakeup(&sd->qxl);
}

static bool queue_has_room(struct spice_display *sd)
{
    g_mutex_lock(&sd->lock);
    bool room = g_queue_get_length(&sd->draws) < SIMPLE_DISPLAY_QUEUE_MAX &&
                sd->queued_bytes < SIMPLE_DISPLAY_BYTES_MAX;
    g_mutex_unlock(&sd->lock);
    return room;
}

static void drop_queue(struct spice_display *sd, GQueue *q)
{
    g_mutex_lock(&sd->lock);
    struct simple_update *u;
    while ((u = g_queue_pop_head(q))) {
        sd->queued_bytes -= u->bytes;
        free_update(u);
    }
    g_mutex_unlock(&sd->lock);
}

static uint32_t mm_time_now(void)
{
    return (uint32_t)(g_get_monotonic_time() / 1000);
}

/* A QXL_DRAW_COPY of the box (x, y, w, h) of the mirror, which already holds the new pixels. */
static void queue_draw(struct spice_display *sd, int x, int y, int w, int h)
{
    size_t stride = (size_t)w * 4;
    struct simple_update *u = g_malloc0(sizeof(*u) + stride * (size_t)h);
    u->kind = UPDATE_DRAW;
    u->sd = sd;
    u->bytes = stride * (size_t)h;
    for (int row = 0; row < h; row++)
        memcpy(u->pixels + stride * (size_t)row, sd->mirror + (size_t)(y + row) * (size_t)sd->width + (size_t)x,
               stride);

    QXLImage *img = &u->draw.image;
    img->descriptor.type = SPICE_IMAGE_TYPE_BITMAP;
    img->descriptor.flags = 0;
    img->descriptor.width = (uint32_t)w;
    img->descriptor.height = (uint32_t)h;
    QXL_SET_IMAGE_ID(img, QXL_IMAGE_GROUP_DEVICE, ++sd->image_serial);
    img->bitmap.flags = QXL_BITMAP_DIRECT | QXL_BITMAP_TOP_DOWN;
    img->bitmap.format = SPICE_BITMAP_FMT_32BIT;
    img->bitmap.x = (uint32_t)w;
    img->bitmap.y = (uint32_t)h;
    img->bitmap.stride = (uint32_t)stride;
    img->bitmap.palette = 0;
    img->bitmap.data = (QXLPHYSICAL)(uintptr_t)u->pixels;

    QXLDrawable *dr = &u->draw.drawable;
    dr->release_info.id = (uint64_t)(uintptr_t)u;
    dr->surface_id = 0;
    dr->effect = QXL_EFFECT_OPAQUE;
    dr->type = QXL_DRAW_COPY;
    dr->bbox.left = x;
    dr->bbox.top = y;
    dr->bbox.right = x + w;
    dr->bbox.bottom = y + h;
    dr->clip.type = SPICE_CLIP_TYPE_NONE;
    dr->mm_time = mm_time_now();
    for (int i = 0; i < 3; i++)
        dr->surfaces_dest[i] = -1;
    dr->u.copy.rop_descriptor = SPICE_ROPD_OP_PUT;
    dr->u.copy.src_bitmap = (QXLPHYSICAL)(uintptr_t)img;
    dr->u.copy.src_area.left = 0;
    dr->u.copy.src_area.top = 0;
    dr->u.copy.src_area.right = w;
    dr->u.copy.src_area.bottom = h;
    queue_update(sd, &sd->draws, u, G_MAXUINT);
}

/* Copies the display's pixels in the box into `fresh` (x8r8g8b8, box-sized) whatever the surface format. */
static void read_box(struct spice_display *sd, const pixman_box32_t *b, pixman_image_t *fresh)
{
    pixman_image_composite32(PIXMAN_OP_SRC, sd->surface, NULL, fresh, b->x1, b->y1, 0, 0, 0, 0, b->x2 - b->x1,
                             b->y2 - b->y1);
}

/* Sends what changed inside box: rows and 32-pixel column blocks that differ from the mirror (all of the box
 * when force), as one drawable per run of changed rows. */
static void send_box(struct spice_display *sd, const pixman_box32_t *b, bool force)
{
    int bw = b->x2 - b->x1, bh = b->y2 - b->y1;
    if (bw <= 0 || bh <= 0)
        return;
    pixman_image_t *fresh = pixman_image_create_bits(PIXMAN_x8r8g8b8, bw, bh, NULL, 0);
    if (!fresh)
        return;
    read_box(sd, b, fresh);
    const uint32_t *fp = pixman_image_get_data(fresh);
    size_t fstride = (size_t)pixman_image_get_stride(fresh) / 4;
    int run_start = -1, run_x1 = bw, run_x2 = 0;
    for (int row = 0; row <= bh; row++) {
        int x1 = bw, x2 = 0;
        if (row < bh) {
            const uint32_t *src = fp + (size_t)row * fstride;
            uint32_t *dst = sd->mirror + (size_t)(b->y1 + row) * (size_t)sd->width + (size_t)b->x1;
            for (int bx = 0; bx < bw; bx += SIMPLE_DISPLAY_COLUMN_BLOCK) {
                int n = MIN(SIMPLE_DISPLAY_COLUMN_BLOCK, bw - bx);
                if (force || memcmp(src + bx, dst + bx, (size_t)n * 4)) {
                    memcpy(dst + bx, src + bx, (size_t)n * 4);
                    x1 = MIN(x1, bx);
                    x2 = MAX(x2, bx + n);
                }
            }
        }
        if (x2 > x1) {
            if (run_start < 0)
                run_start = row;
            run_x1 = MIN(run_x1, x1);
            run_x2 = MAX(run_x2, x2);
        } else if (run_start >= 0) {
            queue_draw(sd, b->x1 + run_x1, b->y1 + run_start, run_x2 - run_x1, row - run_start);
            run_start = -1;
            run_x1 = bw;
            run_x2 = 0;
        }
    }
    pixman_image_unref(fresh);
}

static gboolean retry_pending(gpointer opaque);

/* Sends region now, or holds it back (with what is already held) while the queue is full. */
static void send_region(struct spice_display *sd, const pixman_region32_t *region)
{
    if (!sd->surface)
        return;
    pixman_region32_union(&sd->pending, &sd->pending, (pixman_region32_t *)region);
    if (!pixman_region32_not_empty(&sd->pending))
        return;
    if (!queue_has_room(sd)) {
        if (!sd->retry_source)
            sd->retry_source = g_timeout_add(SIMPLE_DISPLAY_RETRY_MS, retry_pending, sd);
        return;
    }
    int n;
    const pixman_box32_t *boxes = pixman_region32_rectangles(&sd->pending, &n);
    for (int i = 0; i < n; i++)
        send_box(sd, &boxes[i], false);
    pixman_region32_clear(&sd->pending);
}

static gboolean retry_pending(gpointer opaque)
{
    struct spice_display *sd = opaque;
    sd->retry_source = 0;
    pixman_region32_t none;
    pixman_region32_init(&none);
    send_region(sd, &none);
    pixman_region32_fini(&none);
    return G_SOURCE_REMOVE;
}

static void destroy_primary(struct spice_display *sd)
{
    if (!sd->primary)
        return;
    drop_queue(sd, &sd->draws);
    spice_qxl_destroy_primary_surface(&sd->qxl, 0);
    g_free(sd->primary);
    g_free(sd->mirror);
    sd->primary = sd->mirror = NULL;
    sd->width = sd->height = 0;
}

/* ---- display listener */

static void on_surface(void *opaque, struct display *d, pixman_image_t *surface)
{
    (void)d;
    struct spice_display *sd = opaque;
    pixman_region32_clear(&sd->pending);
    if (sd->surface)
        pixman_image_unref(sd->surface);
    /* While the guest shows nothing, clients get a black screen (as screendump does) rather than none. */
    sd->surface = surface ? pixman_image_ref(surface)
                          : pixman_image_create_bits(PIXMAN_x8r8g8b8, SIMPLE_DISPLAY_OFF_WIDTH,
                                                     SIMPLE_DISPLAY_OFF_HEIGHT, NULL, 0);
    surface = sd->surface;
    int w = pixman_image_get_width(surface), h = pixman_image_get_height(surface);
    if (w != sd->width || h != sd->height) {
        destroy_primary(sd);
        sd->width = w;
        sd->height = h;
        sd->primary = g_malloc0((size_t)w * (size_t)h * 4);
        sd->mirror = g_malloc0((size_t)w * (size_t)h * 4);
        QXLDevSurfaceCreate create = {
            .width = (uint32_t)w,
            .height = (uint32_t)h,
            .stride = w * 4,
            .format = SPICE_SURFACE_FMT_32_xRGB,
            .position = 0,
            .mouse_mode = 1, /* client (tablet) mouse mode is allowed only with this */
            .flags = 0,
            .type = 0,
            .mem = (uint64_t)(uintptr_t)sd->primary,
            .group_id = 0,
        };
        spice_qxl_create_primary_surface(&sd->qxl, 0, &create);
    } else {
        drop_queue(sd, &sd->draws);
    }
    pixman_box32_t all = {0, 0, w, h};
    send_box(sd, &all, true);
}

static void on_damage(void *opaque, struct display *d, const pixman_region32_t *region)
{
    (void)d;
    send_region(opaque, region);
}

static QXLCursor *cursor_shape(pixman_image_t *image, int hot_x, int hot_y)
{
    int w = pixman_image_get_width(image), h = pixman_image_get_height(image);
    size_t bytes = (size_t)w * (size_t)h * 4;
    QXLCursor *c = g_malloc0(sizeof(*c) + bytes);
    c->header.unique = 0;
    c->header.type = SPICE_CURSOR_TYPE_ALPHA;
    c->header.width = (uint16_t)w;
    c->header.height = (uint16_t)h;
    c->header.hot_spot_x = (uint16_t)CLAMP(hot_x, 0, w - 1);
    c->header.hot_spot_y = (uint16_t)CLAMP(hot_y, 0, h - 1);
    c->data_size = (uint32_t)bytes;
    c->chunk.data_size = (uint32_t)bytes;
    /* The packed header leaves the pixels unaligned for pixman: convert in a buffer of our own. */
    pixman_image_t *dst = pixman_image_create_bits(PIXMAN_a8r8g8b8, w, h, NULL, w * 4);
    pixman_image_composite32(PIXMAN_OP_SRC, image, NULL, dst, 0, 0, 0, 0, 0, 0, w, h);
    memcpy((uint8_t *)c + offsetof(QXLCursor, chunk) + offsetof(QXLDataChunk, data), pixman_image_get_data(dst),
           bytes);
    pixman_image_unref(dst);
    return c;
}

static void on_cursor(void *opaque, struct display *d, const struct display_cursor *cur)
{
    (void)d;
    struct spice_display *sd = opaque;
    bool visible = cur->visible && cur->image;
    bool new_shape = cur->image != sd->cursor_image || cur->hot_x != sd->cursor_hot_x ||
                     cur->hot_y != sd->cursor_hot_y;
    struct simple_update *u = g_new0(struct simple_update, 1);
    u->kind = UPDATE_CURSOR;
    u->sd = sd;
    QXLCursorCmd *cmd = &u->cursor.cmd;
    cmd->release_info.id = (uint64_t)(uintptr_t)u;
    if (!visible) {
        cmd->type = QXL_CURSOR_HIDE;
    } else if (new_shape || !sd->cursor_visible) {
        cmd->type = QXL_CURSOR_SET;
        cmd->u.set.position.x = (int16_t)CLAMP(cur->x, G_MININT16, G_MAXINT16);
        cmd->u.set.position.y = (int16_t)CLAMP(cur->y, G_MININT16, G_MAXINT16);
        cmd->u.set.visible = 1;
        u->cursor.shape = cursor_shape(cur->image, cur->hot_x, cur->hot_y);
        cmd->u.set.shape = (QXLPHYSICAL)(uintptr_t)u->cursor.shape;
    } else {
        cmd->type = QXL_CURSOR_MOVE;
        cmd->u.position.x = (int16_t)CLAMP(cur->x, G_MININT16, G_MAXINT16);
        cmd->u.position.y = (int16_t)CLAMP(cur->y, G_MININT16, G_MAXINT16);
    }
    if (sd->cursor_image)
        pixman_image_unref(sd->cursor_image);
    sd->cursor_image = cur->image ? pixman_image_ref(cur->image) : NULL;
    sd->cursor_hot_x = cur->hot_x;
    sd->cursor_hot_y = cur->hot_y;
    sd->cursor_visible = visible;
    queue_update(sd, &sd->cursors, u, SIMPLE_DISPLAY_CURSOR_QUEUE_MAX);
}

static const struct display_listener_ops simple_display_listener = {
    .surface = on_surface,
    .damage = on_damage,
    .cursor = on_cursor,
};

struct spice_display *spice_display_new(SpiceServer *server, struct display *d, int id, char **error)
{
    struct spice_display *sd = g_new0(struct spice_display, 1);
    sd->server = server;
    sd->display = d;
    g_mutex_init(&sd->lock);
    g_queue_init(&sd->draws);
    g_queue_init(&sd->cursors);
    pixman_region32_init(&sd->pending);
    sd->qxl.base.sif = &simple_display_interface.base;
    sd->qxl.id = id;
    if (spice_server_add_interface(server, &sd->qxl.base) < 0) {
        *error = g_strdup("spice-server refused the display interface");
        pixman_region32_fini(&sd->pending);
        g_mutex_clear(&sd->lock);
        g_free(sd);
        return NULL;
    }
    QXLDevMemSlot slot = {
        .slot_group_id = 0,
        .slot_id = 0,
        .generation = 0,
        .virt_start = 0,
        .virt_end = UINTPTR_MAX,
        .addr_delta = 0,
        .qxl_ram_size = 0,
    };
    spice_qxl_add_memslot(&sd->qxl, &slot);
    g_autofree char *path = g_strdup_printf("pci/0000/%02x.0", 2);
    spice_qxl_set_device_info(&sd->qxl, path, 0, 1);
    sd->listener = display_add_listener(d, &simple_display_listener, sd);
    return sd;
}

void spice_display_free(struct spice_display *sd)
{
    if (!sd)
        return;
    display_remove_listener(sd->display, sd->listener);
    if (sd->retry_source)
        g_source_remove(sd->retry_source);
    destroy_primary(sd);
    spice_server_remove_interface(&sd->qxl.base);
    drop_queue(sd, &sd->draws);
    drop_queue(sd, &sd->cursors);
    if (sd->surface)
        pixman_image_unref(sd->surface);
    if (sd->cursor_image)
        pixman_image_unref(sd->cursor_image);
    pixman_region32_fini(&sd->pending);
    g_mutex_clear(&sd->lock);
    g_free(sd);
}
