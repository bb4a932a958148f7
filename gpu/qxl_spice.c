/* qxl: the QXLInterface spice-server's worker calls, attaching to the SPICE server, and publishing the
 * primary surface spice renders to the display core (VNC, screendump) through update_area (see qxl.h for
 * threads). */
#include "qxl.h"

#include <string.h>

#include "log.h"

#define QXL_RENDER_HZ 30
/* More rectangles than this from one update_area: take their bounding box. */
#define QXL_RENDER_MAX_RECTS 256

static struct qxl_device *from_qin(QXLInstance *qin)
{
    return container_of(qin, struct qxl_device, qxl);
}

/* ---------------------------------------------------------------- worker callbacks */

static void if_attached_worker(QXLInstance *qin)
{
    (void)qin;
}

static void if_set_compression_level(QXLInstance *qin, int level)
{
    (void)qin;
    (void)level;
}

static void if_get_init_info(QXLInstance *qin, QXLDevInitInfo *info)
{
    (void)qin;
    memset(info, 0, sizeof(*info));
    info->num_memslots_groups = 2; /* QXL_GROUP_HOST (unused), QXL_GROUP_GUEST */
    info->num_memslots = QXL_SPICE_SLOTS;
    info->memslot_gen_bits = QXL_SLOT_GEN_BITS;
    info->memslot_id_bits = QXL_SLOT_ID_BITS;
    info->qxl_ram_size = QXL_RAM_SIZE;
    info->internal_groupslot_id = 0;
    info->n_surfaces = QXL_N_SURFACES;
}

static int if_get_command(QXLInstance *qin, QXLCommandExt *ext)
{
    return qxl_ring_pop(from_qin(qin), false, ext);
}

static int if_req_cmd_notification(QXLInstance *qin)
{
    return qxl_ring_wait(from_qin(qin), false);
}

static int if_get_cursor_command(QXLInstance *qin, QXLCommandExt *ext)
{
    struct qxl_device *q = from_qin(qin);
    if (!qxl_ring_pop(q, true, ext))
        return 0;
    qxl_cursor_note(q, ext->cmd.data);
    return 1;
}

static int if_req_cursor_notification(QXLInstance *qin)
{
    return qxl_ring_wait(from_qin(qin), true);
}

static void if_release_resource(QXLInstance *qin, QXLReleaseInfoExt ext)
{
    /* Everything spice releases came from the guest's rings (group 1); info points into a slot, i.e. into
     * BAR memory the device owns for its whole life. */
    if (ext.group_id != QXL_GROUP_GUEST || !ext.info)
        return;
    qxl_release(from_qin(qin), ext.info, false);
}

static void if_notify_update(QXLInstance *qin, uint32_t update_id)
{
    (void)qin;
    (void)update_id;
}

static int if_flush_resources(QXLInstance *qin)
{
    struct qxl_device *q = from_qin(qin);
    g_mutex_lock(&q->lock);
    int n = (int)q->free_resources;
    g_mutex_unlock(&q->lock);
    if (n)
        qxl_release(q, NULL, true);
    return n;
}

static void if_async_complete(QXLInstance *qin, uint64_t cookie)
{
    struct qxl_device *q = from_qin(qin);
    switch (cookie & QXL_COOKIE_KIND_MASK) {
    case QXL_COOKIE_IO:
        qxl_async_done(q, cookie, true);
        break;
    case QXL_COOKIE_RENDER:
        g_mutex_lock(&q->lock);
        q->render_busy = false;
        g_mutex_unlock(&q->lock);
        qxl_schedule_main_work(q);
        break;
    default:
        log_warn("qxl: async completion with unknown cookie 0x%llx", (unsigned long long)cookie);
        break;
    }
}

static void if_update_area_complete(QXLInstance *qin, uint32_t surface_id, QXLRect *rects, uint32_t n)
{
    struct qxl_device *q = from_qin(qin);
    if (surface_id != 0)
        return;
    g_mutex_lock(&q->lock);
    if (n > QXL_RENDER_MAX_RECTS) {
        pixman_region32_union_rect(&q->render_dirty, &q->render_dirty, 0, 0, QXL_PRIMARY_MAX,
                                   QXL_PRIMARY_MAX);
    } else {
        for (uint32_t i = 0; i < n; i++) {
            const QXLRect *r = &rects[i];
            if (r->left < r->right && r->top < r->bottom)
                pixman_region32_union_rect(&q->render_dirty, &q->render_dirty, r->left, r->top,
                                           (unsigned)(r->right - r->left), (unsigned)(r->bottom - r->top));
        }
    }
    g_mutex_unlock(&q->lock);
}

static void if_set_client_capabilities(QXLInstance *qin, uint8_t present,
                                       uint8_t caps[SPICE_CAPABILITIES_SIZE])
{
    struct qxl_device *q = from_qin(qin);
    g_mutex_lock(&q->lock);
    QXLRom *rom = (QXLRom *)q->rom;
    rom->client_present = present;
    memcpy(rom->client_capabilities, caps, sizeof(rom->client_capabilities));
    g_mutex_unlock(&q->lock);
    qxl_raise(q, QXL_INTERRUPT_CLIENT, true);
}

/* Whether the guest driver handles QXL_INTERRUPT_CLIENT_MONITORS_CONFIG (Linux's does; very old Windows
 * drivers set the mask to 0 or ~0 and do not). */
static bool guest_takes_monitors_config(struct qxl_device *q)
{
    uint32_t mask = __atomic_load_n(&q->hdr->int_mask, __ATOMIC_ACQUIRE);
    return mask != 0 && mask != ~0u && (mask & QXL_INTERRUPT_CLIENT_MONITORS_CONFIG);
}

static int if_client_monitors_config(QXLInstance *qin, VDAgentMonitorsConfig *mc)
{
    struct qxl_device *q = from_qin(qin);
    if (!guest_takes_monitors_config(q))
        return 0;
    if (!mc)
        return 1;
    uint32_t heads[QXL_MAX_HEADS][4];
    unsigned n = MIN(mc->num_of_monitors, QXL_MAX_HEADS);
    for (unsigned i = 0; i < n; i++) {
        const VDAgentMonConfig *c = &mc->monitors[i];
        heads[i][0] = (uint32_t)MAX(c->x, 0);
        heads[i][1] = (uint32_t)MAX(c->y, 0);
        heads[i][2] = MIN(c->width, QXL_PRIMARY_MAX);
        heads[i][3] = MIN(c->height, QXL_PRIMARY_MAX);
    }
    qxl_set_client_monitors(q, (const uint32_t(*)[4])heads, n, true);
    return 1;
}

const QXLInterface qxl_spice_interface = {
    .base =
        {
            .type = SPICE_INTERFACE_QXL,
            .description = "deskvm qxl",
            .major_version = SPICE_INTERFACE_QXL_MAJOR,
            .minor_version = SPICE_INTERFACE_QXL_MINOR,
        },
    .attached_worker = if_attached_worker,
    .set_compression_level = if_set_compression_level,
    .get_init_info = if_get_init_info,
    .get_command = if_get_command,
    .req_cmd_notification = if_req_cmd_notification,
    .release_resource = if_release_resource,
    .get_cursor_command = if_get_cursor_command,
    .req_cursor_notification = if_req_cursor_notification,
    .notify_update = if_notify_update,
    .flush_resources = if_flush_resources,
    .async_complete = if_async_complete,
    .update_area_complete = if_update_area_complete,
    .set_client_capabilities = if_set_client_capabilities,
    .client_monitors_config = if_client_monitors_config,
};

/* ---------------------------------------------------------------- the hardware cursor */

void qxl_cursor_note(struct qxl_device *q, QXLPHYSICAL phys)
{
    const uint8_t *p = qxl_phys_to_host(q, phys, sizeof(QXLCursorCmd));
    if (!p)
        return;
    QXLCursorCmd cmd;
    memcpy(&cmd, p, sizeof(cmd));
    uint32_t *pixels = NULL;
    QXLCursorHeader h = {0};
    if (cmd.type == QXL_CURSOR_SET) {
        /* Only 32-bit ARGB shapes in one chunk (what Linux sends); others leave the shape empty. */
        const uint8_t *sp = qxl_phys_to_host(q, cmd.u.set.shape, sizeof(QXLCursor));
        QXLCursor cur;
        if (sp) {
            memcpy(&cur, sp, sizeof(cur));
            h = cur.header;
            uint64_t bytes = (uint64_t)h.width * h.height * 4;
            const uint8_t *data = qxl_phys_to_host(q, cmd.u.set.shape, sizeof(QXLCursor) + bytes);
            if (h.type == SPICE_CURSOR_TYPE_ALPHA && h.width && h.height && h.width <= DISPLAY_CURSOR_MAX &&
                h.height <= DISPLAY_CURSOR_MAX && cur.chunk.data_size >= bytes && data) {
                pixels = g_malloc(bytes);
                memcpy(pixels, data + sizeof(QXLCursor), bytes);
            }
        }
    } else if (cmd.type != QXL_CURSOR_MOVE && cmd.type != QXL_CURSOR_HIDE) {
        return;
    }
    g_mutex_lock(&q->lock);
    if (cmd.type == QXL_CURSOR_SET) {
        g_free(q->cursor.pixels);
        q->cursor.pixels = pixels;
        q->cursor.width = h.width;
        q->cursor.height = h.height;
        q->cursor.hot_x = MIN(h.hot_spot_x, h.width);
        q->cursor.hot_y = MIN(h.hot_spot_y, h.height);
        q->cursor.shape_new = true;
        q->cursor.visible = cmd.u.set.visible;
        q->cursor.x = cmd.u.set.position.x;
        q->cursor.y = cmd.u.set.position.y;
    } else if (cmd.type == QXL_CURSOR_MOVE) {
        q->cursor.visible = true;
        q->cursor.x = cmd.u.position.x;
        q->cursor.y = cmd.u.position.y;
    } else {
        q->cursor.visible = false;
    }
    q->cursor.pos_new = true;
    g_mutex_unlock(&q->lock);
    qxl_schedule_main_work(q);
}

void qxl_cursor_publish(struct qxl_device *q)
{
    g_mutex_lock(&q->lock);
    bool shape_new = q->cursor.shape_new, pos_new = q->cursor.pos_new;
    pixman_image_t *img = NULL;
    if (shape_new && q->cursor.pixels) {
        img = pixman_image_create_bits(PIXMAN_a8r8g8b8, (int)q->cursor.width, (int)q->cursor.height, NULL, 0);
        if (img)
            memcpy(pixman_image_get_data(img), q->cursor.pixels,
                   (size_t)q->cursor.width * q->cursor.height * 4);
    }
    int hot_x = q->cursor.hot_x, hot_y = q->cursor.hot_y, x = q->cursor.x, y = q->cursor.y;
    bool visible = q->cursor.visible;
    q->cursor.shape_new = q->cursor.pos_new = false;
    g_mutex_unlock(&q->lock);
    if (shape_new)
        display_set_cursor(&q->display, img, hot_x, hot_y);
    if (img)
        pixman_image_unref(img);
    if (pos_new)
        display_move_cursor(&q->display, x, y, visible);
}

/* ---------------------------------------------------------------- display publishing (machine lock) */

static pixman_format_code_t primary_pixman_format(uint32_t format)
{
    switch (format) {
    case SPICE_SURFACE_FMT_32_xRGB:
    case SPICE_SURFACE_FMT_32_ARGB:
        return PIXMAN_x8r8g8b8;
    case SPICE_SURFACE_FMT_16_565:
        return PIXMAN_r5g6b5;
    case SPICE_SURFACE_FMT_16_555:
        return PIXMAN_x1r5g5b5;
    default:
        return 0;
    }
}

void qxl_render_primary_changed(struct qxl_device *q)
{
    if (q->shadow)
        pixman_image_unref(q->shadow);
    q->shadow = NULL;
    pixman_format_code_t fmt = q->primary.active ? primary_pixman_format(q->primary.format) : 0;
    if (fmt)
        q->shadow = pixman_image_create_bits(fmt, (int)q->primary.width, (int)q->primary.height, NULL, 0);
    q->shadow_full = true;
    g_mutex_lock(&q->lock);
    pixman_region32_clear(&q->render_dirty);
    g_mutex_unlock(&q->lock);
    display_set_surface(&q->display, q->shadow);
}

void qxl_render_collect(struct qxl_device *q)
{
    if (!q->shadow || !q->primary.active)
        return;
    const struct qxl_primary *p = &q->primary;
    pixman_region32_t dirty;
    pixman_region32_init(&dirty);
    g_mutex_lock(&q->lock);
    pixman_region32_copy(&dirty, &q->render_dirty);
    pixman_region32_clear(&q->render_dirty);
    g_mutex_unlock(&q->lock);
    if (q->shadow_full) {
        pixman_region32_union_rect(&dirty, &dirty, 0, 0, p->width, p->height);
        q->shadow_full = false;
    }
    pixman_region32_intersect_rect(&dirty, &dirty, 0, 0, p->width, p->height);
    unsigned bpp = PIXMAN_FORMAT_BPP(pixman_image_get_format(q->shadow)) / 8;
    uint8_t *dst = (uint8_t *)pixman_image_get_data(q->shadow);
    int dst_stride = pixman_image_get_stride(q->shadow);
    int nrects;
    const pixman_box32_t *box = pixman_region32_rectangles(&dirty, &nrects);
    for (int i = 0; i < nrects; i++) {
        size_t len = (size_t)(box[i].x2 - box[i].x1) * bpp;
        for (int y = box[i].y1; y < box[i].y2; y++) {
            /* line0 and stride were checked against the slot at creation: every row is inside BAR memory. */
            const uint8_t *src = p->line0 + (ptrdiff_t)y * p->stride + (size_t)box[i].x1 * bpp;
            memcpy(dst + (ptrdiff_t)y * dst_stride + (size_t)box[i].x1 * bpp, src, len);
        }
        display_add_damage(&q->display, box[i].x1, box[i].y1, box[i].x2 - box[i].x1, box[i].y2 - box[i].y1);
    }
    pixman_region32_fini(&dirty);
}

void qxl_render_kick(struct qxl_device *q)
{
    if (!q->worker_attached || !q->primary.active || !qxl_vm_running(q))
        return;
    g_mutex_lock(&q->lock);
    bool busy = q->render_busy;
    q->render_busy = true;
    g_mutex_unlock(&q->lock);
    if (busy)
        return;
    QXLRect area = {
        .top = 0, .left = 0, .bottom = (int32_t)q->primary.height, .right = (int32_t)q->primary.width};
    spice_qxl_update_area_async(&q->qxl, 0, &area, 1, QXL_COOKIE_RENDER);
}

static gboolean render_tick(gpointer opaque)
{
    struct qxl_device *q = opaque;
    machine_lock(q->m);
    qxl_render_kick(q);
    machine_unlock(q->m);
    return G_SOURCE_CONTINUE;
}

bool qxl_request_resize(struct display *d, unsigned width, unsigned height)
{
    struct qxl_device *q = d->opaque;
    if (!guest_takes_monitors_config(q) || !width || !height || width > QXL_PRIMARY_MAX ||
        height > QXL_PRIMARY_MAX)
        return false;
    const uint32_t head[1][4] = {{0, 0, width, height}};
    qxl_set_client_monitors(q, head, 1, false);
    return true;
}

/* ---------------------------------------------------------------- attaching */

bool qxl_spice_attach(struct display *d, void *spice_server, char **error)
{
    struct qxl_device *q = d->opaque;
    if (q->server) {
        *error = g_strdup("qxl: already attached to a SPICE server");
        return false;
    }
    if (spice_server_add_interface(spice_server, &q->qxl.base) != 0) {
        *error = g_strdup("qxl: spice-server refused the QXL interface");
        return false;
    }
    q->server = spice_server;
    spice_qxl_set_device_info(&q->qxl, "pci/0000/02.0", 0, 1);
    machine_lock(q->m);
    q->worker_attached = true;
    machine_unlock(q->m);
    q->render_timer = g_timeout_add(1000 / QXL_RENDER_HZ, render_tick, q);
    return true;
}

void qxl_spice_detach(struct display *d)
{
    struct qxl_device *q = d->opaque;
    if (!q->server)
        return;
    if (q->render_timer)
        g_source_remove(q->render_timer);
    q->render_timer = 0;
    machine_lock(q->m);
    q->worker_attached = false;
    machine_unlock(q->m);
    spice_server_remove_interface(&q->qxl.base);
    q->server = NULL;
    g_mutex_lock(&q->lock);
    q->render_busy = false;
    uint64_t cookie = q->async_busy ? q->async_cookie : 0;
    g_mutex_unlock(&q->lock);
    if (cookie) { /* its completion will not come any more */
        machine_lock(q->m);
        qxl_async_done(q, cookie, false);
        machine_unlock(q->m);
    }
}
