/* libFuzzer target for the qxl device: a PC machine with qxl-vga (no SPICE server, so async I/O completes at
 * once) driven by a hostile guest. The input is a program of operations: raw writes into BAR0 (command
 * structures, images, chunk lists, clip lists), writes into the RAM header (rings, int_mask, mem_slot,
 * create_surface, update_area), I/O port writes, ring entries with chosen types and QXLPHYSICALs, popping the
 * rings through the checks spice-server's worker would call (qxl_check.c), releases into the release ring,
 * resize requests, render collection, and structured drawables and surface commands built from plausible
 * parts (so that many pass the checks). Every entry the checks pass is a structure spice-server must be able
 * to parse without aborting; the target additionally asserts that the command data it admits lies inside BAR
 * memory.
 *
 * With FUZZ_QXL_SPICE=1 the device is attached to a real spice-server (unix socket in a temporary directory,
 * created once), and instead of popping the rings itself the program notifies spice-server's worker and waits
 * for it to take the entries: then whatever the checks admit is parsed and rendered by spice-server, and an
 * abort or crash inside it is a finding. Slow (threads, timeouts), but it tests the checks against the real
 * consumer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "fuzz_machine.h"
#include "pci.h"
#include "qxl.h"
#include "spice_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM (16u << 20)
#define WORK (2u << 20) /* the part of BAR0 the program writes into */

static struct qxl_device *find_qxl(struct machine *m)
{
    for (struct display *d = m->displays; d; d = d->next)
        if (!strcmp(d->model, "qxl-vga"))
            return d->opaque;
    return NULL;
}

static void io(struct machine *m, struct qxl_device *q, unsigned port, uint8_t v)
{
    uint64_t base = pci_bar_address(&q->pci, QXL_BAR_IO);
    io_bus_write(&m->pio, base + port % QXL_IO_SIZE, 1, v);
}

/* A QXLPHYSICAL: mostly in slots 1 or 2 near the work area, sometimes anything. */
static QXLPHYSICAL phys(struct cursor *c)
{
    uint8_t kind = (uint8_t)take(c, 1);
    if (kind < 16)
        return take(c, 8);
    unsigned slot = kind & 1 ? 2 : 1;
    return (uint64_t)slot << 56 | take(c, 3) % (WORK + 0x1000);
}

static void push(struct qxl_device *q, bool cursor, uint32_t type, QXLPHYSICAL data)
{
    QXLCommand cmd = {.data = data, .type = type};
    if (cursor) {
        QXLCursorRing *r = &q->hdr->cursor_ring;
        memcpy(&r->items[r->prod % QXL_CURSOR_RING_SIZE].el, &cmd, sizeof(cmd));
        r->prod++;
    } else {
        QXLCommandRing *r = &q->hdr->cmd_ring;
        memcpy(&r->items[r->prod % QXL_COMMAND_RING_SIZE].el, &cmd, sizeof(cmd));
        r->prod++;
    }
}

/* Structured commands: drawables built from plausible parts, so that many pass the checks and reach spice's
 * parser and renderer with odd but well-formed contents. Areas in BAR0: drawables, clip lists, images,
 * pixels. */
#define S_DRAW 0x20000u
#define S_CLIP 0x30000u
#define S_IMAGE 0x40000u
#define S_PIXELS 0x80000u

static int32_t small(struct cursor *c)
{
    return (int32_t)(take(c, 1) % 80) - 4;
}

static void rect(struct cursor *c, QXLRect *r)
{
    r->left = small(c);
    r->top = small(c);
    r->right = r->left + small(c);
    r->bottom = r->top + small(c);
}

/* An image (bitmap of any format, direct or in one chunk, maybe a palette; or a surface) at slot i. */
static QXLPHYSICAL structured_image(struct qxl_device *q, struct cursor *c, unsigned i)
{
    QXLImage img;
    memset(&img, 0, sizeof(img));
    uint64_t at = S_IMAGE + (i % 16) * 0x800;
    uint8_t kind = (uint8_t)take(c, 1);
    if (kind % 5 == 0) {
        img.descriptor.type = SPICE_IMAGE_TYPE_SURFACE;
        img.surface_image.surface_id = (uint32_t)take(c, 1) % 4;
    } else {
        static const unsigned bpp[] = {0, 1, 1, 4, 4, 8, 16, 24, 32, 32, 8};
        QXLBitmap *b = &img.bitmap;
        b->format = (uint8_t)(take(c, 1) % 11);
        b->flags = (uint8_t)take(c, 1) & 7;
        b->x = 1 + (uint32_t)take(c, 1) % 32;
        b->y = 1 + (uint32_t)take(c, 1) % 32;
        b->stride = (b->x * bpp[b->format] + 7) / 8 + (uint32_t)take(c, 1) % 8;
        uint64_t data = S_PIXELS + (i % 16) * 0x4000;
        if (b->flags & QXL_BITMAP_DIRECT) {
            b->data = (uint64_t)1 << 56 | data;
        } else { /* one chunk holding y * stride bytes */
            QXLDataChunk ch = {.data_size = b->y * b->stride};
            memcpy(q->ram + data, &ch, sizeof(ch));
            b->data = (uint64_t)1 << 56 | data;
        }
        if (kind & 0x80) { /* a palette right after the image */
            QXLPalette pal = {.unique = take(c, 2), .num_ents = (uint16_t)(1u << (kind & 7 ? 8 : 1))};
            memcpy(q->ram + at + 0x100, &pal, sizeof(pal));
            b->palette = (uint64_t)1 << 56 | (at + 0x100);
        }
        img.descriptor.type = SPICE_IMAGE_TYPE_BITMAP;
        img.descriptor.width = b->x;
        img.descriptor.height = b->y;
    }
    memcpy(q->ram + at, &img, sizeof(img));
    return (uint64_t)1 << 56 | at;
}

static void structured_drawable(struct qxl_device *q, struct cursor *c)
{
    unsigned slot = (unsigned)take(c, 1) % 8;
    QXLDrawable d;
    memset(&d, 0, sizeof(d));
    d.release_info.id = 0x1000 + slot;
    d.surface_id = take(c, 1) & 1 ? 0 : (uint32_t)take(c, 1) % 4;
    d.effect = (uint8_t)(take(c, 1) % 8);
    d.type = (uint8_t)(take(c, 1) % 15);
    d.self_bitmap = take(c, 1) & 1;
    rect(c, &d.self_bitmap_area);
    rect(c, &d.bbox);
    for (int i = 0; i < 3; i++)
        d.surfaces_dest[i] = take(c, 1) & 3 ? -1 : (int32_t)(take(c, 1) % 4);
    if (take(c, 1) & 1) { /* a clip list of n rectangles in one chunk */
        unsigned n = (unsigned)take(c, 1) % 4;
        uint64_t at = S_CLIP + slot * 0x200;
        QXLClipRects cr = {.num_rects = n, .chunk = {.data_size = n * (uint32_t)sizeof(QXLRect)}};
        memcpy(q->ram + at, &cr, sizeof(cr));
        for (unsigned i = 0; i < n; i++) {
            QXLRect r;
            rect(c, &r);
            memcpy(q->ram + at + sizeof(cr) + i * sizeof(r), &r, sizeof(r));
        }
        d.clip = (QXLClip){.type = SPICE_CLIP_TYPE_RECTS, .data = (uint64_t)1 << 56 | at};
    }
    /* the union's image, brush and mask fields sit at the same offsets in most drawing types: fill the bytes
     */
    uint8_t *u = (uint8_t *)&d.u;
    for (size_t i = 0; i < sizeof(d.u); i++)
        u[i] = (uint8_t)take(c, 1);
    switch (d.type) {
    case QXL_DRAW_FILL:
        d.u.fill.brush.type = (uint32_t)take(c, 1) % 3;
        if (d.u.fill.brush.type == SPICE_BRUSH_TYPE_PATTERN)
            d.u.fill.brush.u.pattern.pat = structured_image(q, c, slot * 2);
        d.u.fill.mask.bitmap = take(c, 1) & 1 ? structured_image(q, c, slot * 2 + 1) : 0;
        break;
    case QXL_DRAW_OPAQUE:
    case QXL_DRAW_COPY:
    case QXL_DRAW_BLEND:
    case QXL_DRAW_TRANSPARENT:
    case QXL_DRAW_ROP3:
        d.u.copy.src_bitmap = structured_image(q, c, slot * 2);
        rect(c, &d.u.copy.src_area);
        if (d.type == QXL_DRAW_COPY || d.type == QXL_DRAW_BLEND)
            d.u.copy.mask.bitmap = take(c, 1) & 1 ? structured_image(q, c, slot * 2 + 1) : 0;
        break;
    case QXL_DRAW_ALPHA_BLEND:
        d.u.alpha_blend.src_bitmap = structured_image(q, c, slot * 2);
        rect(c, &d.u.alpha_blend.src_area);
        break;
    case QXL_DRAW_COMPOSITE:
        d.u.composite.src = structured_image(q, c, slot * 2);
        d.u.composite.mask = take(c, 1) & 1 ? structured_image(q, c, slot * 2 + 1) : 0;
        d.u.composite.src_transform = d.u.composite.mask_transform = 0;
        break;
    case QXL_DRAW_BLACKNESS:
    case QXL_DRAW_WHITENESS:
    case QXL_DRAW_INVERS:
        d.u.blackness.mask.bitmap = take(c, 1) & 1 ? structured_image(q, c, slot * 2 + 1) : 0;
        break;
    case QXL_COPY_BITS:
        d.u.copy_bits.src_pos = (QXLPoint){small(c), small(c)};
        break;
    }
    memcpy(q->ram + S_DRAW + slot * 0x400, &d, sizeof(d));
    push(q, false, QXL_CMD_DRAW, (uint64_t)1 << 56 | (S_DRAW + slot * 0x400));
}

/* A surface command: create (sizes mostly sane, data in BAR1) or destroy, for surfaces 1..3. */
static void structured_surface(struct qxl_device *q, struct cursor *c)
{
    unsigned id = 1 + (unsigned)take(c, 1) % 3;
    QXLSurfaceCmd sc;
    memset(&sc, 0, sizeof(sc));
    sc.release_info.id = 0x2000 + id;
    sc.surface_id = id;
    sc.type = take(c, 1) & 3 ? QXL_SURFACE_CMD_CREATE : QXL_SURFACE_CMD_DESTROY;
    static const uint32_t formats[] = {SPICE_SURFACE_FMT_32_xRGB, SPICE_SURFACE_FMT_32_ARGB,
                                       SPICE_SURFACE_FMT_16_565,  SPICE_SURFACE_FMT_16_555,
                                       SPICE_SURFACE_FMT_8_A,     SPICE_SURFACE_FMT_1_A};
    uint32_t w = 1 + (uint32_t)take(c, 1) % 64, h = 1 + (uint32_t)take(c, 1) % 64;
    sc.u.surface_create = (QXLSurface){.format = formats[take(c, 1) % G_N_ELEMENTS(formats)],
                                       .width = w,
                                       .height = h,
                                       .stride = (int32_t)(w * 4) * (take(c, 1) & 1 ? -1 : 1),
                                       .data = (uint64_t)2 << 56 | (id * 0x10000)};
    memcpy(q->ram + S_DRAW + 0x3000 + id * 0x100, &sc, sizeof(sc));
    push(q, false, QXL_CMD_SURFACE, (uint64_t)1 << 56 | (S_DRAW + 0x3000 + id * 0x100));
}

static void linux_slots(struct machine *m, struct qxl_device *q)
{
    q->hdr->mem_slot.mem_start = pci_bar_address(&q->pci, QXL_BAR_RAM);
    q->hdr->mem_slot.mem_end = q->hdr->mem_slot.mem_start + q->ram_header_offset;
    io(m, q, QXL_IO_MEMSLOT_ADD, 1);
    q->hdr->mem_slot.mem_start = pci_bar_address(&q->pci, QXL_BAR_VRAM);
    q->hdr->mem_slot.mem_end = q->hdr->mem_slot.mem_start + QXL_VRAM_SIZE;
    io(m, q, QXL_IO_MEMSLOT_ADD, 2);
}

static bool inside_bars(struct qxl_device *q, const uint8_t *p, uint64_t len)
{
    return (p >= q->ram && p + len <= q->ram + QXL_RAM_SIZE) ||
           (p >= q->vram && p + len <= q->vram + QXL_VRAM_SIZE);
}

static SpiceServer *spice_server(void)
{
    static SpiceServer *srv;
    static bool tried;
    if (tried)
        return srv;
    tried = true;
    if (!getenv("FUZZ_QXL_SPICE"))
        return NULL;
    /* spice-server's own warnings about refused guest data are expected; keep them out of the output */
    g_log_set_handler("Spice", G_LOG_LEVEL_MASK & ~(G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL),
                      g_log_default_handler, NULL);
    if (!getenv("FUZZ_VERBOSE"))
        g_setenv("G_MESSAGES_DEBUG", "", TRUE);
    char *dir = g_dir_make_tmp("fuzz-qxl-XXXXXX", NULL);
    char *sock = g_build_filename(dir, "spice.sock", NULL);
    srv = spice_server_new();
    spice_server_set_addr(srv, sock, SPICE_ADDR_FLAG_UNIX_ONLY);
    spice_server_set_noauth(srv);
    if (spice_server_init(srv, spice_core_glib()) < 0)
        __builtin_trap();
    g_unlink(sock); /* no client will come; the directory goes too */
    g_rmdir(dir);
    g_free(sock);
    g_free(dir);
    return srv;
}

/* The worker takes what the rings hold (or 200 ms pass: an entry it refuses stays taken all the same). */
static void let_worker_run(struct machine *m, struct qxl_device *q)
{
    io(m, q, QXL_IO_NOTIFY_CMD, 0);
    io(m, q, QXL_IO_NOTIFY_CURSOR, 0);
    for (int i = 0; i < 200; i++) {
        if (__atomic_load_n(&q->hdr->cmd_ring.cons, __ATOMIC_ACQUIRE) ==
                __atomic_load_n(&q->hdr->cmd_ring.prod, __ATOMIC_ACQUIRE) &&
            __atomic_load_n(&q->hdr->cursor_ring.cons, __ATOMIC_ACQUIRE) ==
                __atomic_load_n(&q->hdr->cursor_ring.prod, __ATOMIC_ACQUIRE))
            break;
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    qxl_render_kick(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct machine m;
    struct pc_config cfg = {.ram_size = RAM, .cpus = 1, .manual_clock = true, .qxl = true};
    fuzz_machine_init(&m, &cfg);
    machine_lock(&m);
    struct qxl_device *q = find_qxl(&m);
    if (!q)
        __builtin_trap();
    SpiceServer *srv = spice_server();
    char *err = NULL;
    if (srv) {
        if (!q->display.ops->spice_attach(&q->display, srv, &err))
            __builtin_trap();
        spice_server_vm_start(srv); /* a QXL instance added to a running server waits for the next start */
    }
    struct cursor c = {data, size};
    if (take(&c, 1) & 1)
        linux_slots(&m, q);
    unsigned popped = 0;
    for (unsigned ops = 0; c.left && ops < 256; ops++) {
        switch (take(&c, 1) % 14) {
        case 0:
        case 1: { /* structures in BAR0 */
            uint64_t off = take(&c, 3) % (WORK - 64);
            unsigned n = (unsigned)take(&c, 1) % 64;
            for (unsigned i = 0; i < n; i++)
                q->ram[off + i] = (uint8_t)take(&c, 1);
            break;
        }
        case 2: { /* a pointer-sized field somewhere in BAR0 pointing somewhere plausible */
            uint64_t off = take(&c, 3) % (WORK - 8);
            QXLPHYSICAL p = phys(&c);
            memcpy(q->ram + off, &p, 8);
            break;
        }
        case 3: { /* the RAM header */
            uint64_t off = take(&c, 2) % (sizeof(QXLRam) - 8);
            uint64_t v = take(&c, 8);
            memcpy((uint8_t *)q->hdr + off, &v, 8);
            break;
        }
        case 4:
            io(&m, q, (unsigned)take(&c, 1), (uint8_t)take(&c, 1));
            break;
        case 5:
        case 6: { /* a ring entry */
            uint8_t t = (uint8_t)take(&c, 1);
            push(q, t & 0x80, t & 0x40 ? t & 0x3f : (t & 7), phys(&c));
            break;
        }
        case 7:
        case 8: { /* the worker takes what it may */
            bool cursor = take(&c, 1) & 1;
            if (srv) {
                let_worker_run(&m, q);
                break;
            }
            QXLCommandExt ext;
            for (unsigned i = 0; i < 40 && qxl_ring_pop(q, cursor, &ext); i++) {
                popped++;
                if (ext.group_id != QXL_GROUP_GUEST || ext.cmd.type < QXL_CMD_DRAW ||
                    ext.cmd.type > QXL_CMD_SURFACE)
                    __builtin_trap();
                const uint8_t *p = qxl_phys_to_host(q, ext.cmd.data, 1);
                if (!p || !inside_bars(q, p, 1))
                    __builtin_trap();
                if (cursor)
                    qxl_cursor_note(q, ext.cmd.data);
            }
            qxl_ring_wait(q, cursor);
            break;
        }
        case 9: { /* spice releases a resource */
            uint64_t off = take(&c, 3) % (WORK - 8) & ~7ull;
            qxl_release(q, (QXLReleaseInfo *)(void *)(q->ram + off), take(&c, 1) & 1);
            break;
        }
        case 10: { /* a client asks for a size */
            struct display *d = display_find(&m, "video0", 0);
            machine_unlock(&m);
            if (d)
                display_request_resize(d, (unsigned)take(&c, 2), (unsigned)take(&c, 2));
            machine_lock(&m);
            break;
        }
        case 11: /* the display core collects */
            qxl_render_collect(q);
            qxl_cursor_publish(q);
            break;
        case 12:
            structured_drawable(q, &c);
            break;
        case 13:
            structured_surface(q, &c);
            break;
        }
    }
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz-qxl: %u guest bugs, %u commands admitted, primary %s\n", q->guest_bugs, popped,
                q->primary.active ? "on" : "off");
    if (srv) {
        let_worker_run(&m, q);
        spice_server_vm_stop(srv);
        q->display.ops->spice_detach(&q->display);
        /* Bounded: a timer that is always due again on a slow machine must not keep this going forever. */
        for (int i = 0; i < 64 && g_main_context_iteration(NULL, FALSE); i++)
            ;
    }
    machine_unlock(&m);
    machine_destroy(&m);
    return 0;
}
