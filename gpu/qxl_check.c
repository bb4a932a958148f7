/* qxl: what a ring entry must look like before spice-server's worker sees it.
 *
 * spice-server 0.15 parses the guest's command structures itself (red-parse-qxl), copying them before use,
 * but it is not hostile-proof: several shapes abort the process (spice_error on an unknown command type,
 * spice_assert on clip-rectangle or glyph sizes that disagree with their data, spice_critical on
 * slot/generation ids) or crash it (a clip or source image that does not translate leaves a NULL the renderer
 * later dereferences). The device therefore admits only what it can check:
 *  - command types spice knows on the ring where it expects them;
 *  - the command structure inside a registered slot;
 *  - surface commands for surfaces 1..n_surfaces-1 with a format spice's canvas supports;
 *  - drawables on a valid surface, with no clip or a clip-rectangle list whose chunks add up to num_rects
 *    rectangles, every image (source, pattern brush, mask) translating with consistent bitmap, palette and
 *    chunk sizes or naming a surface spice has, and only the drawing types whose parse is checked here (the
 *    path and glyph parsers behind STROKE and TEXT assert on malformed data: those are refused; Linux's qxl
 *    driver emits neither).
 * The guest can still change memory between this check and spice's own read; spice copies as it parses, so
 * such a race needs a deliberately racing guest, which then takes down only its own VM process.
 */
#include "qxl.h"

#include <string.h>

/* Chunks followed before giving up (spice-server allows more; Linux uses one). */
#define QXL_CHECK_MAX_CHUNKS 1024
/* spice-server's cap on the data of one field. */
#define QXL_CHECK_MAX_DATA 0x7fffffffull

bool qxl_surface_format_valid(uint32_t format)
{
    switch (format) {
    case SPICE_SURFACE_FMT_1_A:
    case SPICE_SURFACE_FMT_8_A:
    case SPICE_SURFACE_FMT_16_555:
    case SPICE_SURFACE_FMT_16_565:
    case SPICE_SURFACE_FMT_32_xRGB:
    case SPICE_SURFACE_FMT_32_ARGB:
        return true;
    default:
        return false;
    }
}

void qxl_surfaces_forget(struct qxl_device *q)
{
    g_mutex_lock(&q->lock);
    memset(q->live_surfaces, 0, sizeof(q->live_surfaces));
    q->primary_in_spice = false;
    g_mutex_unlock(&q->lock);
}

void qxl_set_primary_in_spice(struct qxl_device *q, bool in)
{
    g_mutex_lock(&q->lock);
    q->primary_in_spice = in;
    g_mutex_unlock(&q->lock);
}

void qxl_set_primary_size(struct qxl_device *q, uint32_t width, uint32_t height)
{
    g_mutex_lock(&q->lock);
    q->surface_size[0][0] = width;
    q->surface_size[0][1] = height;
    g_mutex_unlock(&q->lock);
}

/* The size of a surface spice has, false if it has none by that id. */
static bool surface_dims(struct qxl_device *q, uint32_t id, uint32_t *w, uint32_t *h)
{
    if (id >= QXL_N_SURFACES)
        return false;
    g_mutex_lock(&q->lock);
    bool live = id == 0 ? q->primary_in_spice : (q->live_surfaces[id / 64] >> (id % 64)) & 1;
    *w = q->surface_size[id][0];
    *h = q->surface_size[id][1];
    g_mutex_unlock(&q->lock);
    return live;
}

static bool surface_live(struct qxl_device *q, uint32_t id)
{
    if (id >= QXL_N_SURFACES)
        return false;
    g_mutex_lock(&q->lock);
    bool live = id == 0 ? q->primary_in_spice : (q->live_surfaces[id / 64] >> (id % 64)) & 1;
    g_mutex_unlock(&q->lock);
    return live;
}

static void surface_set_live(struct qxl_device *q, uint32_t id, bool live, const QXLSurface *s)
{
    g_mutex_lock(&q->lock);
    if (live && s) {
        q->surface_size[id][0] = s->width;
        q->surface_size[id][1] = s->height;
    }
    if (live)
        q->live_surfaces[id / 64] |= 1ull << (id % 64);
    else
        q->live_surfaces[id / 64] &= ~(1ull << (id % 64));
    g_mutex_unlock(&q->lock);
}

/* Whether spice-server will create this surface (its red_validate_surface and data translation). */
static bool surface_create_ok(struct qxl_device *q, const QXLSurface *s)
{
    unsigned bits = s->format == SPICE_SURFACE_FMT_1_A                                                 ? 1
                    : s->format == SPICE_SURFACE_FMT_8_A                                               ? 8
                    : s->format == SPICE_SURFACE_FMT_16_555 || s->format == SPICE_SURFACE_FMT_16_565   ? 16
                    : s->format == SPICE_SURFACE_FMT_32_xRGB || s->format == SPICE_SURFACE_FMT_32_ARGB ? 32
                                                                                                       : 0;
    if (!bits || s->stride == INT32_MIN || !s->width || !s->height)
        return false;
    uint64_t astride = s->stride < 0 ? (uint64_t)(-(int64_t)s->stride) : (uint64_t)s->stride;
    if (((uint64_t)s->width * bits + 7) / 8 > astride)
        return false;
    uint64_t size = (uint64_t)s->height * astride;
    return size <= QXL_CHECK_MAX_DATA && qxl_phys_to_host(q, s->data, size) != NULL;
}

/* The total data of the chunk list whose first chunk header is at phys (its data following it), or -1 when a
 * chunk does not translate or the list is too long. */
static int64_t chunks_size(struct qxl_device *q, QXLPHYSICAL phys)
{
    uint64_t total = 0;
    for (unsigned n = 0; phys; n++) {
        if (n >= QXL_CHECK_MAX_CHUNKS)
            return -1;
        const uint8_t *p = qxl_phys_to_host(q, phys, sizeof(QXLDataChunk));
        if (!p)
            return -1;
        QXLDataChunk c;
        memcpy(&c, p, sizeof(c));
        if (!qxl_phys_to_host(q, phys, sizeof(QXLDataChunk) + (uint64_t)c.data_size))
            return -1;
        total += c.data_size;
        if (total > QXL_CHECK_MAX_DATA)
            return -1;
        phys = c.next_chunk;
    }
    return (int64_t)total;
}

static const unsigned bitmap_bpp[] = {0, 1, 1, 4, 4, 8, 16, 24, 32, 32, 8}; /* by SPICE_BITMAP_FMT_* */

/* Images spice-server decodes without aborting: bitmaps whose sizes agree (and whose palette covers every
 * index, or the decoder reads past it) and surfaces it has. QUIC images are refused: a malformed one makes
 * the decoder fail and the renderer abort (spice_return_if_fail on the missing image); guests send bitmaps.
 */

static bool image_ok(struct qxl_device *q, QXLPHYSICAL phys, bool is_mask)
{
    const uint8_t *p = qxl_phys_to_host(q, phys, sizeof(QXLImage));
    if (!p)
        return false;
    QXLImage img;
    memcpy(&img, p, sizeof(img));
    switch (img.descriptor.type) {
    case SPICE_IMAGE_TYPE_BITMAP: {
        const QXLBitmap *b = &img.bitmap;
        if (b->format == SPICE_BITMAP_FMT_INVALID || b->format >= G_N_ELEMENTS(bitmap_bpp) || !b->x || !b->y)
            return false;
        bool rgb = b->format >= SPICE_BITMAP_FMT_16BIT;
        if (!rgb && !b->palette && !is_mask)
            return false;
        if (b->stride < ((uint64_t)b->x * bitmap_bpp[b->format] + 7) / 8)
            return false;
        if (b->palette) {
            const uint8_t *pp = qxl_phys_to_host(q, b->palette, sizeof(QXLPalette));
            if (!pp)
                return false;
            QXLPalette pal;
            memcpy(&pal, pp, sizeof(pal));
            if (!qxl_phys_to_host(q, b->palette, sizeof(QXLPalette) + (uint64_t)pal.num_ents * 4))
                return false;
            if (!rgb && b->format != SPICE_BITMAP_FMT_INVALID && pal.num_ents < 1u << bitmap_bpp[b->format])
                return false;
        }
        uint64_t size = (uint64_t)b->y * b->stride;
        if (size > QXL_CHECK_MAX_DATA)
            return false;
        if (b->flags & QXL_BITMAP_DIRECT)
            return qxl_phys_to_host(q, b->data, size) != NULL;
        return chunks_size(q, b->data) == (int64_t)size;
    }
    case SPICE_IMAGE_TYPE_SURFACE:
        return surface_live(q, img.surface_image.surface_id);
    default:
        return false;
    }
}

/* A brush is fine when solid or empty, or a pattern whose image checks out. */
static bool brush_ok(struct qxl_device *q, const QXLBrush *b)
{
    if (b->type == SPICE_BRUSH_TYPE_PATTERN)
        return image_ok(q, b->u.pattern.pat, false);
    return true;
}

/* A mask is optional; when given it must be what the renderer's mask path handles, a 1-bit bitmap, and check
 * out (spice ignores one that does not translate, but one that translates with inconsistent sizes would reach
 * the renderer). */
static bool mask_ok(struct qxl_device *q, const QXLQMask *m)
{
    if (!m->bitmap)
        return true;
    const uint8_t *p = qxl_phys_to_host(q, m->bitmap, sizeof(QXLImage));
    if (!p)
        return false;
    QXLImage img;
    memcpy(&img, p, sizeof(img));
    return img.descriptor.type == SPICE_IMAGE_TYPE_BITMAP &&
           (img.bitmap.format == SPICE_BITMAP_FMT_1BIT_LE || img.bitmap.format == SPICE_BITMAP_FMT_1BIT_BE) &&
           image_ok(q, m->bitmap, true);
}

static bool clip_ok(struct qxl_device *q, const QXLClip *c)
{
    if (c->type == SPICE_CLIP_TYPE_NONE)
        return true;
    if (c->type != SPICE_CLIP_TYPE_RECTS)
        return false;
    const uint8_t *p = qxl_phys_to_host(q, c->data, sizeof(QXLClipRects));
    if (!p)
        return false;
    QXLClipRects r;
    memcpy(&r, p, sizeof(r));
    int64_t size = chunks_size(q, c->data + offsetof(QXLClipRects, chunk));
    return size >= 0 && (uint64_t)r.num_rects * sizeof(QXLRect) == (uint64_t)size;
}

/* What spice-server's display_channel_draw insists on (spice_return_if_fail). */
static bool rect_ok(const QXLRect *r)
{
    return r->left >= 0 && r->top >= 0 && r->left < r->right && r->top < r->bottom;
}

static bool rect_inside(const QXLRect *in, const QXLRect *out)
{
    return in->left >= out->left && in->top >= out->top && in->right <= out->right &&
           in->bottom <= out->bottom;
}

static bool drawable_ok(struct qxl_device *q, const QXLDrawable *d, const char **why)
{
    /* A self bitmap is read from the destination over self_bitmap_area, which spice checks against nothing:
     * it must be a proper rectangle inside the bounding box (which spice keeps inside the surface). COPY and
     * BLEND ignore the flag. */
    if (d->self_bitmap && d->type != QXL_DRAW_COPY && d->type != QXL_DRAW_BLEND &&
        (!rect_ok(&d->self_bitmap_area) || !rect_inside(&d->self_bitmap_area, &d->bbox))) {
        *why = "self bitmap area";
        return false;
    }
    *why = "nested structure";
    if (d->surface_id >= QXL_N_SURFACES) {
        *why = "surface";
        return false;
    }
    for (unsigned i = 0; i < 3; i++)
        if (d->surfaces_dest[i] < -1 || d->surfaces_dest[i] >= (int32_t)QXL_N_SURFACES) {
            *why = "dependency surface";
            return false;
        }
    if (!clip_ok(q, &d->clip)) {
        *why = "clip";
        return false;
    }
    switch (d->type) {
    case QXL_DRAW_NOP:
        return true;
    case QXL_COPY_BITS: {
        /* the source rectangle (the bounding box's size at src_pos) must lie inside the surface */
        uint32_t w, h;
        const QXLPoint *src = &d->u.copy_bits.src_pos;
        int64_t bw = (int64_t)d->bbox.right - d->bbox.left, bh = (int64_t)d->bbox.bottom - d->bbox.top;
        return surface_dims(q, d->surface_id, &w, &h) && src->x >= 0 && src->y >= 0 && bw >= 0 && bh >= 0 &&
               src->x + bw <= (int64_t)w && src->y + bh <= (int64_t)h;
    }
    case QXL_DRAW_FILL:
        return brush_ok(q, &d->u.fill.brush) && mask_ok(q, &d->u.fill.mask);
    case QXL_DRAW_OPAQUE:
        return image_ok(q, d->u.opaque.src_bitmap, false) && brush_ok(q, &d->u.opaque.brush) &&
               mask_ok(q, &d->u.opaque.mask);
    case QXL_DRAW_COPY:
    case QXL_DRAW_BLEND:
        return image_ok(q, d->u.copy.src_bitmap, false) && mask_ok(q, &d->u.copy.mask);
    case QXL_DRAW_BLACKNESS:
    case QXL_DRAW_WHITENESS:
    case QXL_DRAW_INVERS:
        return mask_ok(q, &d->u.blackness.mask);
    case QXL_DRAW_ROP3:
        return image_ok(q, d->u.rop3.src_bitmap, false) && brush_ok(q, &d->u.rop3.brush) &&
               mask_ok(q, &d->u.rop3.mask);
    case QXL_DRAW_TRANSPARENT:
        return image_ok(q, d->u.transparent.src_bitmap, false);
    case QXL_DRAW_ALPHA_BLEND:
        return image_ok(q, d->u.alpha_blend.src_bitmap, false);
    case QXL_DRAW_COMPOSITE:
        return image_ok(q, d->u.composite.src, false) &&
               (!d->u.composite.mask || image_ok(q, d->u.composite.mask, false));
    default:
        *why = "drawing type";
        return false;
    }
}

bool qxl_command_acceptable(struct qxl_device *q, bool cursor, const QXLCommand *cmd)
{
    uint64_t need;
    switch (cmd->type) {
    case QXL_CMD_DRAW:
        need = sizeof(QXLDrawable);
        break;
    case QXL_CMD_UPDATE:
        need = sizeof(QXLUpdateCmd);
        break;
    case QXL_CMD_MESSAGE:
        need = sizeof(QXLMessage);
        break;
    case QXL_CMD_SURFACE:
        need = sizeof(QXLSurfaceCmd);
        break;
    case QXL_CMD_CURSOR:
        need = sizeof(QXLCursorCmd);
        break;
    default:
        qxl_guest_bug(q, "%s ring: command type %u unknown", cursor ? "cursor" : "command", cmd->type);
        return false;
    }
    if (cursor != (cmd->type == QXL_CMD_CURSOR)) {
        qxl_guest_bug(q, "command type %u on the %s ring", cmd->type, cursor ? "cursor" : "command");
        return false;
    }
    const uint8_t *p = qxl_phys_to_host(q, cmd->data, need);
    if (!p) {
        qxl_guest_bug(q, "command type %u at 0x%llx is outside the memory slots", cmd->type,
                      (unsigned long long)cmd->data);
        return false;
    }
    if (cmd->type == QXL_CMD_SURFACE) {
        QXLSurfaceCmd sc;
        memcpy(&sc, p, sizeof(sc));
        if (sc.surface_id == 0 || sc.surface_id >= QXL_N_SURFACES) {
            qxl_guest_bug(q, "surface command for surface %u", sc.surface_id);
            return false;
        }
        if (sc.type == QXL_SURFACE_CMD_CREATE && !qxl_surface_format_valid(sc.u.surface_create.format)) {
            qxl_guest_bug(q, "surface %u: format %u", sc.surface_id, sc.u.surface_create.format);
            return false;
        }
        /* spice processes ring entries in order, so its surfaces change exactly as these are admitted */
        /* (spice keeps the first of two creates for one id) */
        if (sc.type == QXL_SURFACE_CMD_CREATE && !surface_live(q, sc.surface_id))
            surface_set_live(q, sc.surface_id, surface_create_ok(q, &sc.u.surface_create),
                             &sc.u.surface_create);
        else if (sc.type == QXL_SURFACE_CMD_DESTROY)
            surface_set_live(q, sc.surface_id, false, NULL);
    } else if (cmd->type == QXL_CMD_UPDATE) {
        QXLUpdateCmd up;
        memcpy(&up, p, sizeof(up));
        if (!rect_ok(&up.area)) {
            qxl_guest_bug(q, "update command for area %d,%d..%d,%d", up.area.left, up.area.top, up.area.right,
                          up.area.bottom);
            return false;
        }
    } else if (cmd->type == QXL_CMD_DRAW) {
        QXLDrawable dr;
        memcpy(&dr, p, sizeof(dr));
        const char *why;
        if (!drawable_ok(q, &dr, &why)) {
            if (dr.surface_id >= QXL_N_SURFACES)
                qxl_guest_bug(q, "drawing on surface %u", dr.surface_id);
            else
                qxl_guest_bug(q, "drawable type %u refused: %s", dr.type, why);
            return false;
        }
    }
    return true;
}
