/* qxl: PCI function, ROM and RAM header, rings, memory slots and the I/O ports (see qxl.h).
 *
 * spice-server 0.15 aborts (spice_critical / spice_return_if_fail / spice_error / g_error) on some values;
 * what keeps each of those out of the guest's reach (ring entries themselves: qxl_check.c):
 *  - a slot id >= num_memslots or a wrong generation in any QXLPHYSICAL: we declare 2^8 slots and 0
 * generation bits (qxl.h), so every 64-bit value decodes to a valid slot with the only generation;
 *  - update_area on a surface that does not exist, or an empty / negative area, or while the VM is stopped:
 *    the device forwards update_area for the primary it created itself only, with the area clipped to it;
 *  - destroy_surface_wait (synchronous) for a surface other than 0; creating a primary twice; unsupported
 *    surface formats (g_error in the canvas): checked before forwarding;
 *  - OOM while stopped: NOTIFY_OOM is dropped unless the VM clock runs.
 * Every value the device passes in an I/O request is a copy it checked.
 */
#include "qxl.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <zlib.h>

#include "log.h"
#include "vclock.h"

/* Messages that are not about one device instance. */
static struct log_ratelimit qxl_rl = LOG_RATELIMIT_INIT(5000, 10);

#define QXL_RELEASE_BUNCH 32

void qxl_guest_bug(struct qxl_device *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    __atomic_fetch_add(&q->guest_bugs, 1, __ATOMIC_RELAXED);
    log_message_ratelimited(&q->guest_rl, LOG_LEVEL_WARN, "qxl: guest bug: %s", msg);
    g_free(msg);
}

/* ---------------------------------------------------------------- ROM */

static const struct {
    uint32_t w, h;
} qxl_modes[] = {
    {640, 480},  {800, 480},  {800, 600},   {832, 624},   {960, 640},   {1024, 600},
    {1024, 768}, {1152, 864}, {1152, 870},  {1280, 720},  {1280, 760},  {1280, 768},
    {1280, 800}, {1280, 960}, {1280, 1024}, {1360, 768},  {1366, 768},  {1400, 1050},
    {1440, 900}, {1600, 900}, {1600, 1200}, {1680, 1050}, {1920, 1080},
};

uint32_t qxl_monitors_crc(const void *p, size_t len)
{
    /* As QEMU computes it (Linux's crc32 seeding): zlib's pre/post inversion undone. */
    return (uint32_t)crc32(0xffffffffu, p, (uInt)len) ^ 0xffffffffu;
}

static void rom_init(struct qxl_device *q)
{
    memset(q->rom, 0, sizeof(q->rom));
    QXLRom *rom = (QXLRom *)q->rom;
    uint32_t modes_offset = (sizeof(QXLRom) + 7) & ~7u;
    rom->magic = QXL_ROM_MAGIC;
    rom->id = 0;
    rom->log_level = 0;
    rom->modes_offset = modes_offset;
    rom->pages_offset = QXL_SURFACE0_AREA_SIZE;
    rom->num_pages = (q->ram_header_offset - QXL_SURFACE0_AREA_SIZE) / 4096;
    rom->draw_area_offset = 0;
    rom->surface0_area_size = QXL_SURFACE0_AREA_SIZE;
    rom->ram_header_offset = q->ram_header_offset;
    rom->n_surfaces = QXL_N_SURFACES;
    rom->slots_start = QXL_SLOT_FIRST;
    rom->slots_end = QXL_SLOT_LAST;
    rom->slot_gen_bits = QXL_SLOT_GEN_BITS;
    rom->slot_id_bits = QXL_SLOT_ID_BITS;
    rom->slot_generation = 0;
    QXLModes *modes = (QXLModes *)(q->rom + modes_offset);
    modes->n_modes = G_N_ELEMENTS(qxl_modes);
    for (unsigned i = 0; i < G_N_ELEMENTS(qxl_modes); i++) {
        QXLMode *md = &modes->modes[i];
        md->id = i;
        md->x_res = qxl_modes[i].w;
        md->y_res = qxl_modes[i].h;
        md->bits = 32;
        md->stride = qxl_modes[i].w * 4;
        md->x_mili = qxl_modes[i].w * 254 / 96 * 10; /* 96 dpi */
        md->y_mili = qxl_modes[i].h * 254 / 96 * 10;
        md->orientation = 0;
    }
    G_STATIC_ASSERT(sizeof(QXLRom) + 8 + 4 + G_N_ELEMENTS(qxl_modes) * sizeof(QXLMode) <= QXL_ROM_SIZE);
    rom->client_monitors_config_crc =
        qxl_monitors_crc(&rom->client_monitors_config, sizeof(rom->client_monitors_config));
}

void qxl_set_client_monitors(struct qxl_device *q, const uint32_t (*heads)[4], unsigned n, bool from_worker)
{
    g_mutex_lock(&q->lock);
    QXLRom *rom = (QXLRom *)q->rom;
    memset(&rom->client_monitors_config, 0, sizeof(rom->client_monitors_config));
    n = MIN(n, QXL_MAX_HEADS);
    rom->client_monitors_config.count = (uint16_t)n;
    for (unsigned i = 0; i < n; i++) {
        QXLURect *r = &rom->client_monitors_config.heads[i];
        r->left = heads[i][0];
        r->top = heads[i][1];
        r->right = heads[i][0] + heads[i][2];
        r->bottom = heads[i][1] + heads[i][3];
    }
    rom->client_monitors_config_crc =
        qxl_monitors_crc(&rom->client_monitors_config, sizeof(rom->client_monitors_config));
    g_mutex_unlock(&q->lock);
    qxl_raise(q, QXL_INTERRUPT_CLIENT_MONITORS_CONFIG, from_worker);
}

static uint64_t rom_read(void *opaque, uint64_t offset, unsigned size)
{
    struct qxl_device *q = opaque;
    uint64_t v = 0;
    g_mutex_lock(&q->lock);
    for (unsigned i = 0; i < size && offset + i < QXL_ROM_SIZE; i++)
        v |= (uint64_t)q->rom[offset + i] << (8 * i);
    g_mutex_unlock(&q->lock);
    return v;
}

static void rom_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    (void)opaque;
    log_message_ratelimited(&qxl_rl, LOG_LEVEL_DEBUG, "qxl: %u-byte ROM write 0x%llx at 0x%llx ignored", size,
                            (unsigned long long)value, (unsigned long long)offset);
}

static const struct io_ops rom_ops = {rom_read, rom_write};

/* ---------------------------------------------------------------- RAM header and rings */

static void ram_header_init(struct qxl_device *q)
{
    QXLRam *h = q->hdr;
    memset(h, 0, sizeof(*h));
    h->magic = QXL_RAM_MAGIC;
    SPICE_RING_INIT(&h->cmd_ring);
    SPICE_RING_INIT(&h->cursor_ring);
    SPICE_RING_INIT(&h->release_ring);
}

/* Ring geometry is the device's, not what the guest may have written into num_items. */
struct ring_view {
    uint32_t *prod, *cons, *notify_on_prod, *notify_on_cons;
    uint8_t *items;
    uint32_t n, item_stride;
};

/* A 32-bit field of the (packed) RAM header by its offset: the header is page aligned and every ring field
 * sits at a multiple of 4, which the asserts below check. */
#define HDR_PTR(q, field) ((void *)((uint8_t *)(q)->hdr + offsetof(QXLRam, field)))
G_STATIC_ASSERT(offsetof(QXLRam, cmd_ring) % 4 == 0 && offsetof(QXLRam, cursor_ring) % 4 == 0 &&
                offsetof(QXLRam, release_ring) % 4 == 0 && offsetof(QXLReleaseRing, items) % 4 == 0);

static struct ring_view cmd_ring_view(struct qxl_device *q, bool cursor)
{
    struct ring_view v;
    if (cursor)
        v = (struct ring_view){HDR_PTR(q, cursor_ring.prod),           HDR_PTR(q, cursor_ring.cons),
                               HDR_PTR(q, cursor_ring.notify_on_prod), HDR_PTR(q, cursor_ring.notify_on_cons),
                               HDR_PTR(q, cursor_ring.items),          QXL_CURSOR_RING_SIZE,
                               sizeof(q->hdr->cursor_ring.items[0])};
    else
        v = (struct ring_view){HDR_PTR(q, cmd_ring.prod),           HDR_PTR(q, cmd_ring.cons),
                               HDR_PTR(q, cmd_ring.notify_on_prod), HDR_PTR(q, cmd_ring.notify_on_cons),
                               HDR_PTR(q, cmd_ring.items),          QXL_COMMAND_RING_SIZE,
                               sizeof(q->hdr->cmd_ring.items[0])};
    return v;
}

static uint32_t ld32(uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void st32(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

bool qxl_ring_wait(struct qxl_device *q, bool cursor)
{
    struct ring_view r = cmd_ring_view(q, cursor);
    if (ld32(r.cons) != ld32(r.prod))
        return false;
    st32(r.notify_on_prod, ld32(r.prod) + 1);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return ld32(r.cons) == ld32(r.prod);
}

void *qxl_phys_to_host(struct qxl_device *q, QXLPHYSICAL phys, uint64_t len)
{
    unsigned id = (unsigned)(phys >> (64 - QXL_SLOT_ID_BITS));
    uint64_t off = phys & QXL_PHYS_OFFSET_MASK;
    g_mutex_lock(&q->lock);
    struct qxl_slot s = id < QXL_GUEST_SLOTS ? q->slots[id] : (struct qxl_slot){0};
    g_mutex_unlock(&q->lock);
    if (!s.active || off > s.size || len > s.size - off)
        return NULL;
    uint8_t *base = s.bar == QXL_BAR_RAM ? q->ram : q->vram;
    return base + s.offset + off;
}

bool qxl_ring_pop(struct qxl_device *q, bool cursor, QXLCommandExt *ext)
{
    struct ring_view r = cmd_ring_view(q, cursor);
    for (unsigned tries = 0; tries < QXL_COMMAND_RING_SIZE; tries++) {
        uint32_t cons = ld32(r.cons), prod = ld32(r.prod);
        if (cons == prod)
            return false;
        if (prod - cons > r.n) {
            qxl_guest_bug(q, "%s ring: producer %u is %u entries ahead of consumer %u",
                          cursor ? "cursor" : "command", prod, prod - cons, cons);
            st32(r.cons, prod); /* drop the lot: their contents are meaningless */
            return false;
        }
        QXLCommand cmd;
        memcpy(&cmd, r.items + (size_t)(cons & (r.n - 1)) * r.item_stride, sizeof(cmd));
        st32(r.cons, cons + 1);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (cons + 1 == ld32(r.notify_on_cons))
            qxl_raise(q, cursor ? QXL_INTERRUPT_CURSOR : QXL_INTERRUPT_DISPLAY, q->worker_attached);
        if (!qxl_command_acceptable(q, cursor, &cmd))
            continue;
        memset(ext, 0, sizeof(*ext));
        ext->cmd = cmd;
        ext->group_id = QXL_GROUP_GUEST;
        ext->flags = 0;
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- release ring */

static uint8_t *release_item(struct qxl_device *q, uint32_t index)
{
    return (uint8_t *)HDR_PTR(q, release_ring.items) +
           (index & (QXL_RELEASE_RING_SIZE - 1)) * sizeof(q->hdr->release_ring.items[0]);
}

static uint64_t release_item_load(struct qxl_device *q, uint32_t index)
{
    uint64_t v;
    memcpy(&v, release_item(q, index), sizeof(v));
    return v;
}

static void release_item_store(struct qxl_device *q, uint32_t index, uint64_t v)
{
    memcpy(release_item(q, index), &v, sizeof(v));
}

/* Pushes the chain in the producer slot when a bunch is ready (or flush), if the ring has room. Called with
 * q->lock held. Returns bits to raise. */
static uint32_t release_push(struct qxl_device *q, bool flush)
{
    uint32_t *prodp = HDR_PTR(q, release_ring.prod), *consp = HDR_PTR(q, release_ring.cons);
    uint32_t prod = ld32(prodp), cons = ld32(consp);
    if (prod - cons + 1 >= QXL_RELEASE_RING_SIZE) /* full (the producer slot is the chain being built) */
        return 0;
    if (!q->free_resources || (!flush && q->free_resources < QXL_RELEASE_BUNCH))
        return 0;
    st32(prodp, prod + 1);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint32_t bits = prod + 1 == ld32(HDR_PTR(q, release_ring.notify_on_prod)) ? QXL_INTERRUPT_DISPLAY : 0;
    release_item_store(q, prod + 1, 0);
    q->free_resources = 0;
    q->last_release = NULL;
    return bits;
}

void qxl_release(struct qxl_device *q, QXLReleaseInfo *info, bool flush)
{
    g_mutex_lock(&q->lock);
    uint32_t prod = ld32(HDR_PTR(q, release_ring.prod));
    if (info) {
        uint64_t id = info->id;
        if (release_item_load(q, prod) == 0 || !q->last_release) {
            info->next = 0;
            release_item_store(q, prod, id);
        } else {
            q->last_release->next = id;
            info->next = 0;
        }
        q->last_release = info;
        q->free_resources++;
    }
    uint32_t bits = release_push(q, flush);
    g_mutex_unlock(&q->lock);
    if (bits)
        qxl_raise(q, bits, q->worker_attached);
}

/* ---------------------------------------------------------------- interrupts */

static gboolean main_work(gpointer opaque)
{
    struct qxl_device *q = opaque;
    g_mutex_lock(&q->lock);
    if (q->main_work) {
        g_source_unref(q->main_work);
        q->main_work = NULL;
    }
    g_mutex_unlock(&q->lock);
    machine_lock(q->m);
    qxl_update_irq(q);
    qxl_render_collect(q);
    qxl_cursor_publish(q);
    machine_unlock(q->m);
    return G_SOURCE_REMOVE;
}

void qxl_schedule_main_work(struct qxl_device *q)
{
    g_mutex_lock(&q->lock);
    if (!q->main_work) {
        q->main_work = g_idle_source_new();
        g_source_set_priority(q->main_work, G_PRIORITY_HIGH);
        g_source_set_callback(q->main_work, main_work, q, NULL);
        g_source_attach(q->main_work, NULL);
    }
    g_mutex_unlock(&q->lock);
}

void qxl_update_irq(struct qxl_device *q)
{
    uint32_t pending = __atomic_load_n(&q->hdr->int_pending, __ATOMIC_ACQUIRE);
    uint32_t mask = __atomic_load_n(&q->hdr->int_mask, __ATOMIC_ACQUIRE);
    pci_set_irq(&q->pci, (pending & mask) != 0);
}

void qxl_raise(struct qxl_device *q, uint32_t bits, bool from_worker)
{
    uint32_t old = __atomic_fetch_or(&q->hdr->int_pending, bits, __ATOMIC_SEQ_CST);
    if (from_worker) {
        if ((old & bits) != bits)
            qxl_schedule_main_work(q);
        return;
    }
    qxl_update_irq(q);
}

/* ---------------------------------------------------------------- memory slots */

static void slots_clear(struct qxl_device *q)
{
    g_mutex_lock(&q->lock);
    memset(q->slots, 0, sizeof(q->slots));
    g_mutex_unlock(&q->lock);
}

/* Registers the range the guest put in ram->mem_slot as slot id, if it lies inside BAR0 or BAR1. */
static bool memslot_add(struct qxl_device *q, uint32_t id, QXLDevMemSlot *out)
{
    if (id >= QXL_GUEST_SLOTS) {
        qxl_guest_bug(q, "memslot %u out of range", id);
        return false;
    }
    if (q->slots[id].active) {
        qxl_guest_bug(q, "memslot %u already active", id);
        return false;
    }
    QXLMemSlot ms;
    memcpy(&ms, &q->hdr->mem_slot, sizeof(ms));
    if (ms.mem_end <= ms.mem_start) {
        qxl_guest_bug(q, "memslot %u: empty or reversed range 0x%llx..0x%llx", id,
                      (unsigned long long)ms.mem_start, (unsigned long long)ms.mem_end);
        return false;
    }
    static const unsigned bars[] = {QXL_BAR_RAM, QXL_BAR_VRAM};
    for (unsigned i = 0; i < G_N_ELEMENTS(bars); i++) {
        uint64_t base = pci_bar_address(&q->pci, bars[i]), size = q->pci.bars[bars[i]].size;
        if (!base || ms.mem_start < base || ms.mem_end - base > size)
            continue;
        uint8_t *host = bars[i] == QXL_BAR_RAM ? q->ram : q->vram;
        struct qxl_slot s = {true, bars[i], ms.mem_start - base, ms.mem_end - ms.mem_start};
        g_mutex_lock(&q->lock);
        q->slots[id] = s;
        g_mutex_unlock(&q->lock);
        memset(out, 0, sizeof(*out)); /* spice-server copies the padding too */
        out->slot_group_id = QXL_GROUP_GUEST;
        out->slot_id = id;
        out->generation = 0;
        out->virt_start = (uintptr_t)(host + s.offset);
        out->virt_end = (uintptr_t)(host + s.offset + s.size);
        out->addr_delta = (uint64_t)(uintptr_t)(host + s.offset);
        return true;
    }
    qxl_guest_bug(q, "memslot %u: 0x%llx..0x%llx is not inside BAR0 or BAR1", id,
                  (unsigned long long)ms.mem_start, (unsigned long long)ms.mem_end);
    return false;
}

/* ---------------------------------------------------------------- primary surface */

static bool primary_from_guest(struct qxl_device *q, QXLDevSurfaceCreate *dev)
{
    QXLSurfaceCreate sc;
    memcpy(&sc, &q->hdr->create_surface, sizeof(sc));
    unsigned bpp = sc.format == SPICE_SURFACE_FMT_32_xRGB || sc.format == SPICE_SURFACE_FMT_32_ARGB ? 4
                   : sc.format == SPICE_SURFACE_FMT_16_565 || sc.format == SPICE_SURFACE_FMT_16_555 ? 2
                                                                                                    : 0;
    if (!bpp) {
        qxl_guest_bug(q, "primary surface format %u", sc.format);
        return false;
    }
    if (!sc.width || !sc.height || sc.width > QXL_PRIMARY_MAX || sc.height > QXL_PRIMARY_MAX) {
        qxl_guest_bug(q, "primary surface %ux%u", sc.width, sc.height);
        return false;
    }
    uint64_t astride = sc.stride < 0 ? (uint64_t)(-(int64_t)sc.stride) : (uint64_t)sc.stride;
    if (astride < (uint64_t)sc.width * bpp || astride % 4) {
        qxl_guest_bug(q, "primary surface stride %d for %u pixels", sc.stride, sc.width);
        return false;
    }
    uint64_t bytes = astride * sc.height;
    uint8_t *mem = qxl_phys_to_host(q, sc.mem, bytes);
    if (!mem || bytes > UINT32_MAX) {
        qxl_guest_bug(q, "primary surface memory 0x%llx (+%llu) outside the memory slots",
                      (unsigned long long)sc.mem, (unsigned long long)bytes);
        return false;
    }
    memset(dev, 0, sizeof(*dev)); /* spice-server copies the padding too */
    dev->width = sc.width;
    dev->height = sc.height;
    dev->stride = sc.stride;
    dev->format = sc.format;
    dev->position = sc.position;
    dev->mouse_mode = 1; /* client (absolute) mouse mode is allowed only with it; Linux leaves it 0 */
    dev->flags = sc.flags;
    dev->type = sc.type;
    dev->mem = sc.mem;
    dev->group_id = QXL_GROUP_GUEST;
    q->primary = (struct qxl_primary){
        .active = true,
        .width = sc.width,
        .height = sc.height,
        .stride = sc.stride,
        .format = sc.format,
        .line0 = sc.stride < 0 ? mem + astride * (sc.height - 1) : mem,
    };
    return true;
}

static void primary_gone(struct qxl_device *q)
{
    if (!q->primary.active)
        return;
    memset(&q->primary, 0, sizeof(q->primary));
    qxl_render_primary_changed(q);
}

/* ---------------------------------------------------------------- I/O ports */

bool qxl_vm_running(struct qxl_device *q)
{
    return q->m->clock && (vclock_is_manual(q->m->clock) || vclock_is_running(q->m->clock));
}

/* Everything spice-server holds for the guest goes; the RAM header starts over (QXL_IO_RESET, machine reset).
 * Synchronous spice calls are fine here: the worker never waits for the machine lock. */
static void hard_reset(struct qxl_device *q)
{
    if (q->worker_attached) {
        spice_qxl_reset_cursor(&q->qxl);
        spice_qxl_reset_image_cache(&q->qxl);
        spice_qxl_destroy_surfaces(&q->qxl);
        spice_qxl_reset_memslots(&q->qxl);
    }
    primary_gone(q);
    qxl_surfaces_forget(q);
    slots_clear(q);
    display_set_cursor(&q->display, NULL, 0, 0);
    g_mutex_lock(&q->lock);
    q->cursor.shape_new = q->cursor.pos_new = false;
    q->async_busy = false;
    q->last_release = NULL;
    q->free_resources = 0;
    g_mutex_unlock(&q->lock);
    ram_header_init(q);
    qxl_update_irq(q);
}

static bool async_begin(struct qxl_device *q, uint32_t io, uint64_t *cookie)
{
    g_mutex_lock(&q->lock);
    bool busy = q->async_busy;
    uint32_t busy_io = q->async_io;
    if (!busy) {
        q->async_busy = true;
        q->async_io = io;
        q->async_cookie = QXL_COOKIE_IO | (++q->io_seq & 0xffffffffffull) << 8 | io;
        q->async_effect = QXL_ASYNC_EFFECT_NONE;
        *cookie = q->async_cookie;
    }
    g_mutex_unlock(&q->lock);
    if (busy)
        qxl_guest_bug(q, "async I/O %u while %u is in flight", io, busy_io);
    return !busy;
}

void qxl_async_done(struct qxl_device *q, uint64_t cookie, bool from_worker)
{
    g_mutex_lock(&q->lock);
    bool ours = q->async_busy && q->async_cookie == cookie;
    int effect = ours ? q->async_effect : QXL_ASYNC_EFFECT_NONE;
    if (ours)
        q->async_busy = false;
    g_mutex_unlock(&q->lock);
    if (effect == QXL_ASYNC_EFFECT_PRIMARY_CREATED)
        qxl_set_primary_in_spice(q, true);
    else if (effect == QXL_ASYNC_EFFECT_ALL_DESTROYED)
        qxl_surfaces_forget(q);
    if (ours)
        qxl_raise(q, QXL_INTERRUPT_IO_CMD, from_worker);
}

/* Completes an async I/O that did not reach spice (no server, or nothing to do). */
static void async_finish_here(struct qxl_device *q, uint64_t cookie)
{
    qxl_async_done(q, cookie, false);
}

static void io_update_area(struct qxl_device *q, bool async)
{
    uint64_t cookie = 0;
    if (async && !async_begin(q, QXL_IO_UPDATE_AREA_ASYNC, &cookie))
        return;
    uint32_t surface = q->hdr->update_surface;
    QXLRect a;
    memcpy(&a, &q->hdr->update_area, sizeof(a));
    bool forward = true;
    if (surface >= QXL_N_SURFACES || a.left < 0 || a.top < 0 || a.left >= a.right || a.top >= a.bottom) {
        qxl_guest_bug(q, "update area %d,%d..%d,%d of surface %u", a.left, a.top, a.right, a.bottom, surface);
        forward = false;
    } else if (surface != 0 || !q->primary.active) {
        /* spice-server aborts on surfaces it does not have; the device knows only its primary for sure. */
        log_message_ratelimited(&qxl_rl, LOG_LEVEL_DEBUG, "qxl: update area of surface %u not forwarded",
                                surface);
        forward = false;
    } else {
        a.right = MIN(a.right, (int32_t)q->primary.width);
        a.bottom = MIN(a.bottom, (int32_t)q->primary.height);
        forward = a.left < a.right && a.top < a.bottom;
    }
    if (!q->worker_attached || !qxl_vm_running(q))
        forward = false;
    if (!forward) {
        if (async)
            async_finish_here(q, cookie);
        return;
    }
    if (async)
        spice_qxl_update_area_async(&q->qxl, 0, &a, 0, cookie);
    else
        spice_qxl_update_area(&q->qxl, 0, &a, NULL, 0, 0);
}

static void io_memslot_add(struct qxl_device *q, uint32_t id, bool async)
{
    uint64_t cookie = 0;
    if (async && !async_begin(q, QXL_IO_MEMSLOT_ADD_ASYNC, &cookie))
        return;
    QXLDevMemSlot ms;
    bool ok = memslot_add(q, id, &ms);
    if (!ok || !q->worker_attached) {
        if (async)
            async_finish_here(q, cookie);
        return;
    }
    if (async)
        spice_qxl_add_memslot_async(&q->qxl, &ms, cookie);
    else
        spice_qxl_add_memslot(&q->qxl, &ms);
}

static void io_memslot_del(struct qxl_device *q, uint32_t id)
{
    if (id >= QXL_GUEST_SLOTS || !q->slots[id].active) {
        qxl_guest_bug(q, "delete of memslot %u, which is not active", id);
        return;
    }
    g_mutex_lock(&q->lock);
    q->slots[id].active = false;
    g_mutex_unlock(&q->lock);
    if (q->worker_attached)
        spice_qxl_del_memslot(&q->qxl, QXL_GROUP_GUEST, id);
}

static void io_create_primary(struct qxl_device *q, bool async)
{
    uint64_t cookie = 0;
    if (async && !async_begin(q, QXL_IO_CREATE_PRIMARY_ASYNC, &cookie))
        return;
    QXLDevSurfaceCreate dev;
    bool ok = false;
    if (q->primary.active)
        qxl_guest_bug(q, "primary surface created twice");
    else
        ok = primary_from_guest(q, &dev);
    if (ok) {
        qxl_render_primary_changed(q);
        qxl_set_primary_size(q, q->primary.width, q->primary.height);
    }
    if (ok && async) {
        g_mutex_lock(&q->lock);
        q->async_effect = QXL_ASYNC_EFFECT_PRIMARY_CREATED;
        g_mutex_unlock(&q->lock);
    }
    if (!ok || !q->worker_attached) {
        if (async)
            async_finish_here(q, cookie);
        else if (ok)
            qxl_set_primary_in_spice(q, true);
        return;
    }
    if (async) {
        spice_qxl_create_primary_surface_async(&q->qxl, 0, &dev, cookie);
    } else {
        spice_qxl_create_primary_surface(&q->qxl, 0, &dev);
        qxl_set_primary_in_spice(q, true);
    }
}

static void io_destroy_primary(struct qxl_device *q, bool async)
{
    uint64_t cookie = 0;
    if (async && !async_begin(q, QXL_IO_DESTROY_PRIMARY_ASYNC, &cookie))
        return;
    bool had = q->primary.active;
    primary_gone(q);
    qxl_set_primary_in_spice(q, false);
    if (!had || !q->worker_attached) {
        if (async)
            async_finish_here(q, cookie);
        return;
    }
    if (async)
        spice_qxl_destroy_primary_surface_async(&q->qxl, 0, cookie);
    else
        spice_qxl_destroy_primary_surface(&q->qxl, 0);
}

static void io_destroy_surface(struct qxl_device *q, uint32_t id, bool async)
{
    uint64_t cookie = 0;
    if (async && !async_begin(q, QXL_IO_DESTROY_SURFACE_ASYNC, &cookie))
        return;
    /* spice-server's synchronous form insists on surface 0; both forms check the id against n_surfaces. */
    bool ok = async ? id < QXL_N_SURFACES : id == 0;
    if (!ok)
        qxl_guest_bug(q, "destroy surface %u", id);
    if (!ok || !q->worker_attached) {
        if (async)
            async_finish_here(q, cookie);
        return;
    }
    if (async)
        spice_qxl_destroy_surface_async(&q->qxl, id, cookie);
    else
        spice_qxl_destroy_surface_wait(&q->qxl, id);
}

static void io_destroy_all(struct qxl_device *q, bool async)
{
    uint64_t cookie = 0;
    if (async && !async_begin(q, QXL_IO_DESTROY_ALL_SURFACES_ASYNC, &cookie))
        return;
    primary_gone(q);
    qxl_set_primary_in_spice(q, false);
    if (async) {
        g_mutex_lock(&q->lock);
        q->async_effect = QXL_ASYNC_EFFECT_ALL_DESTROYED;
        g_mutex_unlock(&q->lock);
    }
    if (!q->worker_attached) {
        if (async)
            async_finish_here(q, cookie);
        else
            qxl_surfaces_forget(q);
        return;
    }
    if (async) {
        spice_qxl_destroy_surfaces_async(&q->qxl, cookie);
    } else {
        spice_qxl_destroy_surfaces(&q->qxl);
        qxl_surfaces_forget(q);
    }
}

static void io_simple_async(struct qxl_device *q, uint32_t io)
{
    uint64_t cookie = 0;
    if (!async_begin(q, io, &cookie))
        return;
    if (!q->worker_attached) {
        async_finish_here(q, cookie);
        return;
    }
    if (io == QXL_IO_FLUSH_SURFACES_ASYNC) {
        spice_qxl_flush_surfaces_async(&q->qxl, cookie);
        return;
    }
    /* QXL_IO_MONITORS_CONFIG_ASYNC: spice reads the QXLMonitorsConfig (count, max_allowed, heads) itself. */
    QXLPHYSICAL mc = q->hdr->monitors_config;
    if (!qxl_phys_to_host(q, mc, sizeof(QXLMonitorsConfig))) {
        qxl_guest_bug(q, "monitors config at 0x%llx outside the memory slots", (unsigned long long)mc);
        async_finish_here(q, cookie);
        return;
    }
    spice_qxl_monitors_config_async(&q->qxl, mc, QXL_GROUP_GUEST, cookie);
}

static void io_log(struct qxl_device *q)
{
    char buf[257];
    memcpy(buf, q->hdr->log_buf, sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = 0;
    for (char *c = buf; *c; c++)
        if (!g_ascii_isprint(*c))
            *c = *c == '\n' ? 0 : '?';
    log_message_ratelimited(&qxl_rl, LOG_LEVEL_DEBUG, "qxl: guest log: %s", buf);
}

static void io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct qxl_device *q = opaque;
    uint32_t v = (uint32_t)value;
    (void)size;
    switch (offset) {
    case QXL_IO_NOTIFY_CMD:
    case QXL_IO_NOTIFY_CURSOR:
        if (q->worker_attached)
            spice_qxl_wakeup(&q->qxl);
        break;
    case QXL_IO_UPDATE_AREA:
    case QXL_IO_UPDATE_AREA_ASYNC:
        io_update_area(q, offset == QXL_IO_UPDATE_AREA_ASYNC);
        break;
    case QXL_IO_UPDATE_IRQ:
        qxl_update_irq(q);
        break;
    case QXL_IO_NOTIFY_OOM:
        if (q->worker_attached && qxl_vm_running(q))
            spice_qxl_oom(&q->qxl);
        break;
    case QXL_IO_RESET:
        hard_reset(q);
        break;
    case QXL_IO_SET_MODE:
        log_message_ratelimited(&qxl_rl, LOG_LEVEL_DEBUG, "qxl: legacy SET_MODE %u ignored", v);
        break;
    case QXL_IO_LOG:
        io_log(q);
        break;
    case QXL_IO_MEMSLOT_ADD:
    case QXL_IO_MEMSLOT_ADD_ASYNC:
        io_memslot_add(q, v, offset == QXL_IO_MEMSLOT_ADD_ASYNC);
        break;
    case QXL_IO_MEMSLOT_DEL:
        io_memslot_del(q, v);
        break;
    case QXL_IO_CREATE_PRIMARY:
    case QXL_IO_CREATE_PRIMARY_ASYNC:
        io_create_primary(q, offset == QXL_IO_CREATE_PRIMARY_ASYNC);
        break;
    case QXL_IO_DESTROY_PRIMARY:
    case QXL_IO_DESTROY_PRIMARY_ASYNC:
        io_destroy_primary(q, offset == QXL_IO_DESTROY_PRIMARY_ASYNC);
        break;
    case QXL_IO_DESTROY_SURFACE_WAIT:
    case QXL_IO_DESTROY_SURFACE_ASYNC:
        io_destroy_surface(q, v, offset == QXL_IO_DESTROY_SURFACE_ASYNC);
        break;
    case QXL_IO_DESTROY_ALL_SURFACES:
    case QXL_IO_DESTROY_ALL_SURFACES_ASYNC:
        io_destroy_all(q, offset == QXL_IO_DESTROY_ALL_SURFACES_ASYNC);
        break;
    case QXL_IO_FLUSH_SURFACES_ASYNC:
    case QXL_IO_MONITORS_CONFIG_ASYNC:
        io_simple_async(q, (uint32_t)offset);
        break;
    case QXL_IO_FLUSH_RELEASE:
        qxl_release(q, NULL, true);
        break;
    default:
        qxl_guest_bug(q, "write 0x%x to I/O port %llu", v, (unsigned long long)offset);
        break;
    }
}

static uint64_t io_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque;
    (void)offset;
    (void)size;
    return 0xff; /* QEMU answers reads of the notification ports with 0xff */
}

static const struct io_ops io_ports_ops = {io_read, io_write};

/* ---------------------------------------------------------------- RAM-like BARs */

/* BAR0/BAR1 decode as guest memory (device slots); these see only accesses that reach the bus while a slot is
 * not mapped (a stale software-CPU TLB entry right after a BAR move). */
static uint64_t mem_read(uint8_t *base, uint64_t size, uint64_t offset, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n && offset + i < size; i++)
        v |= (uint64_t)base[offset + i] << (8 * i);
    return v;
}

static void mem_write(uint8_t *base, uint64_t size, uint64_t offset, uint64_t value, unsigned n)
{
    for (unsigned i = 0; i < n && offset + i < size; i++)
        base[offset + i] = (uint8_t)(value >> (8 * i));
}

static uint64_t ram_read(void *o, uint64_t off, unsigned n)
{
    return mem_read(((struct qxl_device *)o)->ram, QXL_RAM_SIZE, off, n);
}
static void ram_write(void *o, uint64_t off, uint64_t v, unsigned n)
{
    mem_write(((struct qxl_device *)o)->ram, QXL_RAM_SIZE, off, v, n);
}
static uint64_t vram_read(void *o, uint64_t off, unsigned n)
{
    return mem_read(((struct qxl_device *)o)->vram, QXL_VRAM_SIZE, off, n);
}
static void vram_write(void *o, uint64_t off, uint64_t v, unsigned n)
{
    mem_write(((struct qxl_device *)o)->vram, QXL_VRAM_SIZE, off, v, n);
}

static const struct io_ops ram_ops = {ram_read, ram_write};
static const struct io_ops vram_ops = {vram_read, vram_write};

static void bar_mapped(struct pci_device *dev, unsigned n, bool mapped, uint64_t addr)
{
    struct qxl_device *q = container_of(dev, struct qxl_device, pci);
    if (n != QXL_BAR_RAM && n != QXL_BAR_VRAM)
        return;
    unsigned slot = n == QXL_BAR_RAM ? q->ram_slot : q->vram_slot;
    if (!mapped) {
        guest_memory_unmap_device(&q->m->mem, slot);
        return;
    }
    int r = guest_memory_map_device(&q->m->mem, slot, addr);
    if (r < 0)
        log_message_ratelimited(&qxl_rl, LOG_LEVEL_WARN, "qxl: BAR%u at 0x%llx not mapped as memory (%s)", n,
                                (unsigned long long)addr, g_strerror(-r));
}

static const struct pci_device_ops qxl_pci_ops = {.bar_mapped = bar_mapped};

/* ---------------------------------------------------------------- the machine device */

static void qxl_display_refresh(struct display *d)
{
    qxl_render_collect(d->opaque);
}

static const struct display_ops qxl_display_ops = {
    .refresh = qxl_display_refresh,
    .request_resize = qxl_request_resize,
    .spice_attach = qxl_spice_attach,
    .spice_detach = qxl_spice_detach,
};

static struct qxl_device *find(struct machine *m)
{
    for (struct display *d = m->displays; d; d = d->next)
        if (d->ops == &qxl_display_ops)
            return d->opaque;
    return NULL;
}

/* The ROM starts out with one head of the preferred mode (--resolution) as the client's monitors config:
 * Linux reads it when it sets up its outputs, before any SPICE client asks for anything. */
static void rom_power_on(struct qxl_device *q)
{
    g_mutex_lock(&q->lock);
    rom_init(q);
    QXLRom *rom = (QXLRom *)q->rom;
    unsigned w = q->m->config.display_width ? q->m->config.display_width : 1024;
    unsigned h = q->m->config.display_height ? q->m->config.display_height : 768;
    rom->client_monitors_config.count = 1;
    rom->client_monitors_config.heads[0] = (QXLURect){.top = 0, .left = 0, .bottom = h, .right = w};
    rom->client_monitors_config_crc =
        qxl_monitors_crc(&rom->client_monitors_config, sizeof(rom->client_monitors_config));
    g_mutex_unlock(&q->lock);
}

static void qxl_reset(struct machine *m)
{
    struct qxl_device *q = find(m);
    if (!q)
        return;
    hard_reset(q);
    rom_power_on(q);
}

static void qxl_destroy(struct machine *m)
{
    struct qxl_device *q = find(m);
    if (!q)
        return;
    if (q->server)
        qxl_spice_detach(&q->display);
    g_mutex_lock(&q->lock);
    GSource *src = q->main_work;
    q->main_work = NULL;
    g_mutex_unlock(&q->lock);
    if (src) {
        g_source_destroy(src);
        g_source_unref(src);
    }
    display_unregister(&q->display);
    pci_unregister_device(&q->pci);
    if (q->shadow)
        pixman_image_unref(q->shadow);
    g_free(q->cursor.pixels);
    pixman_region32_fini(&q->render_dirty);
    g_mutex_clear(&q->lock);
    g_free(q);
}

static int qxl_create(struct machine *m, char **error)
{
    if (!m->pci) {
        *error = g_strdup("needs the PCI host bridge");
        return -EINVAL;
    }
    struct qxl_device *q = g_new0(struct qxl_device, 1);
    q->m = m;
    q->guest_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 20);
    g_mutex_init(&q->lock);
    pixman_region32_init(&q->render_dirty);
    int slot = guest_memory_add_device(&m->mem, QXL_RAM_SIZE, &q->ram);
    int vslot = slot < 0 ? slot : guest_memory_add_device(&m->mem, QXL_VRAM_SIZE, &q->vram);
    if (slot < 0 || vslot < 0) {
        *error = g_strdup_printf("device memory: %s", g_strerror(-(slot < 0 ? slot : vslot)));
        pixman_region32_fini(&q->render_dirty);
        g_mutex_clear(&q->lock);
        g_free(q);
        return slot < 0 ? slot : vslot;
    }
    q->ram_slot = (unsigned)slot;
    q->vram_slot = (unsigned)vslot;
    q->ram_header_offset = QXL_RAM_SIZE - ((sizeof(QXLRam) + 4095) & ~4095u);
    q->hdr = (QXLRam *)(void *)(q->ram + q->ram_header_offset);
    q->qxl.base.sif = &qxl_spice_interface.base;
    q->qxl.id = 0;
    rom_power_on(q);
    ram_header_init(q);

    static const struct pci_device_info info = {
        .name = "qxl-vga",
        .vendor_id = REDHAT_PCI_VENDOR_ID,
        .device_id = QXL_DEVICE_ID_STABLE,
        .class_code = QXL_PCI_CLASS,
        .revision = QXL_PCI_REVISION,
        .subsystem_vendor_id = 0x1af4, /* QEMU's: Red Hat, QEMU */
        .subsystem_id = 0x1100,
        .interrupt_pin = 1,
        .ops = &qxl_pci_ops,
    };
    pci_device_init(&q->pci, &info);
    int r = pci_register_bar(&q->pci, QXL_BAR_RAM, PCI_BAR_MEM32, QXL_RAM_SIZE, &ram_ops, q);
    if (r == 0)
        r = pci_register_bar(&q->pci, QXL_BAR_VRAM, PCI_BAR_MEM32, QXL_VRAM_SIZE, &vram_ops, q);
    if (r == 0)
        r = pci_register_bar(&q->pci, QXL_BAR_ROM, PCI_BAR_MEM32, QXL_ROM_SIZE, &rom_ops, q);
    if (r == 0)
        r = pci_register_bar(&q->pci, QXL_BAR_IO, PCI_BAR_IO, QXL_IO_SIZE, &io_ports_ops, q);
    if (r == 0)
        r = pci_register_device(m->pci, &q->pci, QXL_PCI_SLOT, 0);
    if (r < 0) {
        *error = g_strdup_printf("PCI slot %u: %s", QXL_PCI_SLOT, g_strerror(-r));
        pixman_region32_fini(&q->render_dirty);
        g_mutex_clear(&q->lock);
        g_free(q);
        return r;
    }
    display_init(&q->display, m, "video0", "qxl-vga", 0, &qxl_display_ops, q);
    display_register(&q->display);
    return 0;
}

const struct machine_device qxl_device = {"qxl-vga", qxl_create, qxl_reset, qxl_destroy};
