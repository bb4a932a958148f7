/* qxl on a real machine (test accelerator, no SPICE server attached, so async I/O completes at once): PCI
 * identity and BARs, the ROM (magic, modes, slot geometry, monitors config and its CRC), the RAM header, INTx
 * following int_pending & int_mask, memory slots with good and hostile ranges, hostile command-ring entries,
 * async I/O serialization, the release ring, the primary surface becoming the published surface (negative
 * stride too), hostile primaries, resize requests and reset. */
#include <string.h>

#include <glib/gstdio.h>

#include <glib.h>

#include "device_harness.h"
#include "log.h"
#include "pci_host.h"
#include "qxl.h"
#include "spice_core.h"

#define DEVFN PCI_DEVFN(QXL_PCI_SLOT, 0)
/* The interrupts Linux's qxl driver unmasks. */
#define LINUX_INT_MASK                                                                                       \
    (QXL_INTERRUPT_DISPLAY | QXL_INTERRUPT_CURSOR | QXL_INTERRUPT_IO_CMD |                                   \
     QXL_INTERRUPT_CLIENT_MONITORS_CONFIG)

static struct machine m;
static struct irq_recorder rec;
static struct qxl_device *q;
static unsigned gsi;

static void cfg_select(unsigned reg)
{
    dh_outl(&m, PCI_CONFIG_ADDRESS, PCI_CONFIG_ADDRESS_ENABLE | DEVFN << 8 | (reg & 0xfc));
}

static uint32_t cfg_read(unsigned reg, unsigned size)
{
    cfg_select(reg);
    return (uint32_t)dh_pio_read(&m, PCI_CONFIG_DATA + (reg & 3), size);
}

static void cfg_write(unsigned reg, uint32_t v, unsigned size)
{
    cfg_select(reg);
    dh_pio_write(&m, PCI_CONFIG_DATA + (reg & 3), size, v);
}

static uint64_t bar(unsigned n)
{
    uint32_t v = cfg_read(PCI_BASE_ADDRESS_0 + 4 * n, 4);
    return n == QXL_BAR_IO ? (v & ~3u) : (v & ~0xfu);
}

static void setup(void)
{
    static const struct machine_device *const board[] = {&pci_host_device, &qxl_device};
    struct machine_config cfg = {
        .ram_size = 64 << 20, .cpus = 1, .display_width = 800, .display_height = 600};
    dh_machine_init_cfg(&m, &cfg, board, G_N_ELEMENTS(board));
    g_assert_nonnull(m.displays);
    q = m.displays->opaque;
    g_assert_cmpint(pci_host_assign_resources(m.pci), ==, 0);
    gsi = pci_intx_gsi(QXL_PCI_SLOT, 0);
    dh_record_irqs(&m, &rec, DH_GSI(gsi));
    dh_log_capture();
}

static void teardown(void)
{
    log_set_fd(2);
    dh_machine_fini(&m);
    q = NULL;
}

static void io(unsigned port, uint8_t v)
{
    dh_outb(&m, (uint16_t)(bar(QXL_BAR_IO) + port), v);
}

static uint32_t rom32(unsigned off)
{
    return (uint32_t)dh_mmio_read(&m, bar(QXL_BAR_ROM) + off, 4);
}

/* Linux's CRC32 (reflected, polynomial 0xedb88320, seed 0, no final inversion), computed bit by bit. */
static uint32_t crc_reference(const uint8_t *p, size_t n)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ CLIENT_MONITORS_CONFIG_CRC32_POLY : crc >> 1;
    }
    return crc;
}

/* A guest physical address in slot id at offset. */
static QXLPHYSICAL phys(unsigned id, uint64_t off)
{
    return (uint64_t)id << 56 | off;
}

/* What Linux does: main slot 1 = BAR0 up to the RAM header, surfaces slot 2 = BAR1. */
static void add_linux_slots(void)
{
    q->hdr->mem_slot.mem_start = bar(QXL_BAR_RAM);
    q->hdr->mem_slot.mem_end = bar(QXL_BAR_RAM) + q->ram_header_offset;
    io(QXL_IO_MEMSLOT_ADD_ASYNC, 1);
    q->hdr->mem_slot.mem_start = bar(QXL_BAR_VRAM);
    q->hdr->mem_slot.mem_end = bar(QXL_BAR_VRAM) + QXL_VRAM_SIZE;
    io(QXL_IO_MEMSLOT_ADD_ASYNC, 2);
    g_assert_true(q->slots[1].active && q->slots[2].active);
}

/* ---------------------------------------------------------------- PCI, ROM, RAM header */

static void test_pci_identity(void)
{
    setup();
    g_assert_cmphex(cfg_read(PCI_VENDOR_ID, 2), ==, 0x1b36);
    g_assert_cmphex(cfg_read(PCI_DEVICE_ID, 2), ==, 0x0100);
    g_assert_cmphex(cfg_read(PCI_REVISION_ID, 1), ==, QXL_PCI_REVISION);
    g_assert_cmphex(cfg_read(PCI_REVISION_ID, 4) >> 8, ==, 0x030000);
    g_assert_cmphex(cfg_read(PCI_INTERRUPT_PIN, 1), ==, 1);
    static const struct {
        unsigned n;
        uint32_t size, type;
    } bars[] = {{0, QXL_RAM_SIZE, 0}, {1, QXL_VRAM_SIZE, 0}, {2, QXL_ROM_SIZE, 0}, {3, QXL_IO_SIZE, 1}};
    uint16_t cmd = (uint16_t)cfg_read(PCI_COMMAND, 2);
    cfg_write(PCI_COMMAND, 0, 2);
    for (unsigned i = 0; i < G_N_ELEMENTS(bars); i++) {
        unsigned reg = PCI_BASE_ADDRESS_0 + 4 * bars[i].n;
        uint32_t old = cfg_read(reg, 4);
        cfg_write(reg, ~0u, 4);
        uint32_t mask = cfg_read(reg, 4);
        cfg_write(reg, old, 4);
        uint32_t size_mask = bars[i].type ? (mask & ~3u) : (mask & ~0xfu);
        g_assert_cmphex(mask & (bars[i].type ? 1u : 0xfu), ==, bars[i].type);
        g_assert_cmphex(~size_mask + 1, ==, bars[i].size);
    }
    cfg_write(PCI_COMMAND, cmd, 2);
    g_assert_cmphex(cfg_read(PCI_BASE_ADDRESS_0 + 16, 4), ==, 0);
    teardown();
}

static void test_rom_contents(void)
{
    setup();
    g_assert_cmphex(rom32(offsetof(QXLRom, magic)), ==, 0x4f525851); /* "QXRO" */
    g_assert_cmphex(rom32(offsetof(QXLRom, ram_header_offset)), ==, QXL_RAM_SIZE - 8192);
    g_assert_cmphex(rom32(offsetof(QXLRom, surface0_area_size)), ==, QXL_SURFACE0_AREA_SIZE);
    g_assert_cmpuint(rom32(offsetof(QXLRom, n_surfaces)), ==, QXL_N_SURFACES);
    uint32_t slots = rom32(offsetof(QXLRom, slots_start));
    g_assert_cmphex(slots, ==, 1u | 7u << 8 | 0u << 16 | 8u << 24); /* start, end, gen bits, id bits */
    uint32_t modes = rom32(offsetof(QXLRom, modes_offset));
    uint32_t n = rom32(modes);
    g_assert_cmpuint(n, >=, 10);
    bool vga = false, fullhd = false;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t base = modes + 4 + i * (uint32_t)sizeof(QXLMode);
        uint32_t x = rom32(base + offsetof(QXLMode, x_res)), y = rom32(base + offsetof(QXLMode, y_res));
        g_assert_cmpuint(rom32(base + offsetof(QXLMode, id)), ==, i);
        g_assert_cmpuint(rom32(base + offsetof(QXLMode, bits)), ==, 32);
        g_assert_cmpuint(rom32(base + offsetof(QXLMode, stride)), ==, x * 4);
        vga |= x == 640 && y == 480;
        fullhd |= x == 1920 && y == 1080;
    }
    g_assert_true(vga && fullhd);
    /* the preferred mode is the client's monitors config from power-on, with the CRC Linux checks */
    uint8_t cfg[sizeof(((QXLRom *)0)->client_monitors_config)];
    for (unsigned i = 0; i < sizeof(cfg); i++)
        cfg[i] =
            (uint8_t)dh_mmio_read(&m, bar(QXL_BAR_ROM) + offsetof(QXLRom, client_monitors_config) + i, 1);
    g_assert_cmpuint(cfg[0], ==, 1);
    const QXLURect *head = (const QXLURect *)(const void *)(cfg + 4);
    g_assert_cmpuint(head->right, ==, 800);
    g_assert_cmpuint(head->bottom, ==, 600);
    g_assert_cmphex(rom32(offsetof(QXLRom, client_monitors_config_crc)), ==, crc_reference(cfg, sizeof(cfg)));
    /* the ROM is read-only */
    dh_mmio_write(&m, bar(QXL_BAR_ROM), 4, 0);
    g_assert_cmphex(rom32(0), ==, 0x4f525851);
    teardown();
}

static void test_ram_header(void)
{
    setup();
    uint64_t hdr = bar(QXL_BAR_RAM) + q->ram_header_offset;
    uint32_t v;
    g_assert_cmpint(guest_mem_read_u32(&m.mem, hdr, &v), ==, 0); /* BAR0 is guest memory */
    g_assert_cmphex(v, ==, 0x41525851);                          /* "QXRA" */
    g_assert_cmpint(guest_mem_read_u32(&m.mem, hdr + offsetof(QXLRam, cmd_ring.num_items), &v), ==, 0);
    g_assert_cmpuint(v, ==, 32);
    g_assert_cmpint(guest_mem_read_u32(&m.mem, hdr + offsetof(QXLRam, release_ring.num_items), &v), ==, 0);
    g_assert_cmpuint(v, ==, 8);
    /* guest scribbles, RESET puts it back */
    guest_mem_write_u32(&m.mem, hdr + offsetof(QXLRam, cmd_ring.num_items), 0x12345);
    guest_mem_write_u32(&m.mem, hdr + offsetof(QXLRam, cmd_ring.prod), 77);
    io(QXL_IO_RESET, 0);
    g_assert_cmpuint(q->hdr->cmd_ring.num_items, ==, 32);
    g_assert_cmpuint(q->hdr->cmd_ring.prod, ==, 0);
    teardown();
}

/* ---------------------------------------------------------------- interrupts and async I/O */

static void test_irq_and_async(void)
{
    setup();
    /* async I/O without a SPICE server completes at once: IO_CMD pending, INTx only while unmasked */
    q->hdr->int_mask = 0;
    q->hdr->mem_slot.mem_start = bar(QXL_BAR_RAM);
    q->hdr->mem_slot.mem_end = bar(QXL_BAR_RAM) + 4096;
    io(QXL_IO_MEMSLOT_ADD_ASYNC, 1);
    g_assert_cmphex(q->hdr->int_pending, ==, QXL_INTERRUPT_IO_CMD);
    g_assert_cmpint(rec.level[gsi], ==, 0);
    q->hdr->int_mask = LINUX_INT_MASK;
    io(QXL_IO_UPDATE_IRQ, 0);
    g_assert_cmpint(rec.level[gsi], ==, 1);
    g_assert_cmphex(cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, ==, PCI_STATUS_INTERRUPT);
    /* Linux's handler: xchg int_pending to 0, then UPDATE_IRQ drops the line */
    q->hdr->int_pending = 0;
    g_assert_cmpint(rec.level[gsi], ==, 1);
    io(QXL_IO_UPDATE_IRQ, 0);
    g_assert_cmpint(rec.level[gsi], ==, 0);

    /* one async I/O at a time: a second one while the first is in flight is refused without an interrupt */
    q->async_busy = true;
    q->async_io = QXL_IO_MEMSLOT_ADD_ASYNC;
    q->async_cookie = QXL_COOKIE_IO | 999u << 8 | QXL_IO_MEMSLOT_ADD_ASYNC;
    unsigned bugs = q->guest_bugs;
    io(QXL_IO_CREATE_PRIMARY_ASYNC, 0);
    g_assert_cmpuint(q->guest_bugs, ==, bugs + 1);
    dh_assert_logged("async I/O 18 while 17 is in flight");
    g_assert_cmphex(q->hdr->int_pending, ==, 0);
    /* a stale completion (another cookie) is ignored; the right one raises IO_CMD */
    qxl_async_done(q, QXL_COOKIE_IO | 998u << 8 | QXL_IO_MEMSLOT_ADD_ASYNC, false);
    g_assert_cmphex(q->hdr->int_pending, ==, 0);
    g_assert_true(q->async_busy);
    qxl_async_done(q, q->async_cookie, false);
    g_assert_false(q->async_busy);
    g_assert_cmphex(q->hdr->int_pending, ==, QXL_INTERRUPT_IO_CMD);
    g_assert_cmpint(rec.level[gsi], ==, 1);
    /* INTx disable in the command register masks the pin */
    cfg_write(PCI_COMMAND, cfg_read(PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE, 2);
    g_assert_cmpint(rec.level[gsi], ==, 0);
    teardown();
}

/* ---------------------------------------------------------------- memory slots */

static void test_memslots(void)
{
    setup();
    uint64_t b0 = bar(QXL_BAR_RAM), b1 = bar(QXL_BAR_VRAM);
    add_linux_slots();
    g_assert_true(qxl_phys_to_host(q, phys(1, 0x1000), 16) == q->ram + 0x1000);
    g_assert_true(qxl_phys_to_host(q, phys(2, 0x10), 16) == q->vram + 0x10);
    g_assert_null(qxl_phys_to_host(q, phys(1, q->ram_header_offset - 8), 16)); /* crosses the slot's end */
    g_assert_null(qxl_phys_to_host(q, phys(3, 0), 1));                         /* not registered */
    g_assert_null(qxl_phys_to_host(q, phys(200, 0), 1));                       /* beyond the slots */
    g_assert_null(qxl_phys_to_host(q, phys(1, ~0ull >> 8), 2));                /* offset overflow */

    static const struct {
        uint64_t start, end;
        unsigned id;
        const char *log;
    } bad[] = {
        {0x100000, 0x200000, 3, "is not inside BAR0 or BAR1"}, /* guest RAM */
        {0, 0, 3, "empty or reversed"},
        {0, 0, 3, "empty or reversed"},
        {0, 0, 9, "memslot 9 out of range"},
        {0, 0, 1, "memslot 1 already active"},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        uint64_t s = bad[i].start, e = bad[i].end;
        if (i == 1) { /* reversed */
            s = b0 + 0x2000;
            e = b0 + 0x1000;
        } else if (i == 2) { /* wraps past the end of the address space */
            s = b0;
            e = b0 - 1;
        } else if (i >= 3) {
            s = b0;
            e = b0 + 0x1000;
        }
        q->hdr->mem_slot.mem_start = s;
        q->hdr->mem_slot.mem_end = e;
        unsigned bugs = q->guest_bugs;
        io(QXL_IO_MEMSLOT_ADD, (uint8_t)bad[i].id);
        g_assert_cmpuint(q->guest_bugs, ==, bugs + 1);
        dh_assert_logged(bad[i].log);
    }
    g_assert_false(q->slots[3].active);
    /* a range that starts in BAR1 but runs past its end */
    q->hdr->mem_slot.mem_start = b1 + 0x1000;
    q->hdr->mem_slot.mem_end = b1 + QXL_VRAM_SIZE + 0x1000;
    io(QXL_IO_MEMSLOT_ADD, 4);
    g_assert_false(q->slots[4].active);
    /* delete, then the slot translates nothing */
    io(QXL_IO_MEMSLOT_DEL, 2);
    g_assert_null(qxl_phys_to_host(q, phys(2, 0x10), 16));
    io(QXL_IO_MEMSLOT_DEL, 2);
    dh_assert_logged("delete of memslot 2, which is not active");
    teardown();
}

/* ---------------------------------------------------------------- command ring */

static void push(unsigned type, QXLPHYSICAL data)
{
    QXLCommandRing *r = &q->hdr->cmd_ring;
    uint32_t prod = r->prod;
    r->items[prod % QXL_COMMAND_RING_SIZE].el = (QXLCommand){.data = data, .type = type};
    r->prod = prod + 1;
}

static void test_command_ring(void)
{
    setup();
    add_linux_slots();
    q->hdr->int_mask = LINUX_INT_MASK;
    QXLCommandExt ext;
    g_assert_false(qxl_ring_pop(q, false, &ext)); /* empty */
    g_assert_true(qxl_ring_wait(q, false));       /* and asks the guest to notify */
    g_assert_cmpuint(q->hdr->cmd_ring.notify_on_prod, ==, 1);

    /* a valid drawable at 0x10000 in the main slot */
    QXLDrawable *dr = (QXLDrawable *)(void *)(q->ram + 0x10000);
    memset(dr, 0, sizeof(*dr));
    dr->surface_id = 0;
    QXLSurfaceCmd *sc = (QXLSurfaceCmd *)(void *)(q->ram + 0x11000);

    unsigned bugs = q->guest_bugs;
    push(77, phys(1, 0x10000));                             /* unknown type */
    push(QXL_CMD_CURSOR, phys(1, 0x10000));                 /* cursor command on the display ring */
    push(QXL_CMD_NOP, phys(1, 0x10000));                    /* NOP: spice_error in spice-server */
    push(QXL_CMD_DRAW, phys(1, q->ram_header_offset - 16)); /* crosses the slot's end */
    push(QXL_CMD_DRAW, phys(5, 0));                         /* unregistered slot */
    push(QXL_CMD_DRAW, phys(255, 0x10000));                 /* slot id beyond the device's slots */
    push(QXL_CMD_SURFACE, phys(1, 0x11000));                /* surface command for surface 0 */
    memset(sc, 0, sizeof(*sc));
    g_assert_false(qxl_ring_pop(q, false, &ext));
    g_assert_cmpuint(q->guest_bugs, ==, bugs + 7);
    dh_assert_logged("command ring: command type 77 unknown");
    dh_assert_logged("command type 3 on the command ring");
    dh_assert_logged("outside the memory slots");
    dh_assert_logged("surface command for surface 0");
    g_assert_cmpuint(q->hdr->cmd_ring.cons, ==, 7);

    /* a surface create with a format spice's canvas would abort on */
    sc->surface_id = 5;
    sc->type = QXL_SURFACE_CMD_CREATE;
    sc->u.surface_create.format = 33;
    push(QXL_CMD_SURFACE, phys(1, 0x11000));
    dr->surface_id = QXL_N_SURFACES;
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_false(qxl_ring_pop(q, false, &ext));
    dh_assert_logged("surface 5: format 33");
    dh_assert_logged("drawing on surface 1024");

    /* a copy may read a surface only once a surface command created it (and not after it is destroyed) */
    QXLImage *img = (QXLImage *)(void *)(q->ram + 0x12000);
    memset(img, 0, sizeof(*img));
    img->descriptor.type = SPICE_IMAGE_TYPE_SURFACE;
    img->surface_image.surface_id = 7;
    dr->surface_id = 0;
    dr->type = QXL_DRAW_COPY;
    dr->u.copy.src_bitmap = phys(1, 0x12000);
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_false(qxl_ring_pop(q, false, &ext));
    dh_assert_logged("drawable type 3 refused: nested structure");
    memset(sc, 0, sizeof(*sc));
    sc->surface_id = 7;
    sc->type = QXL_SURFACE_CMD_CREATE;
    sc->u.surface_create = (QXLSurface){
        .format = SPICE_SURFACE_FMT_32_xRGB, .width = 16, .height = 16, .stride = 64, .data = phys(2, 0)};
    push(QXL_CMD_SURFACE, phys(1, 0x11000));
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_true(qxl_ring_pop(q, false, &ext) && ext.cmd.type == QXL_CMD_SURFACE);
    g_assert_true(qxl_ring_pop(q, false, &ext) && ext.cmd.type == QXL_CMD_DRAW);
    sc->type = QXL_SURFACE_CMD_DESTROY;
    push(QXL_CMD_SURFACE, phys(1, 0x11000));
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_true(qxl_ring_pop(q, false, &ext) && ext.cmd.type == QXL_CMD_SURFACE);
    g_assert_false(qxl_ring_pop(q, false, &ext));
    /* a QUIC image is refused (spice's renderer aborts when one does not decode) */
    img->descriptor.type = SPICE_IMAGE_TYPE_QUIC;
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_false(qxl_ring_pop(q, false, &ext));
    dr->type = QXL_DRAW_NOP;

    /* the valid one passes with the guest group; popping the entry Linux asked about raises DISPLAY */
    dr->surface_id = 0;
    q->hdr->cmd_ring.notify_on_cons = q->hdr->cmd_ring.cons + 1;
    q->hdr->int_pending = 0;
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_true(qxl_ring_pop(q, false, &ext));
    g_assert_cmpuint(ext.cmd.type, ==, QXL_CMD_DRAW);
    g_assert_cmphex(ext.cmd.data, ==, phys(1, 0x10000));
    g_assert_cmpuint(ext.group_id, ==, QXL_GROUP_GUEST);
    g_assert_cmphex(q->hdr->int_pending, ==, QXL_INTERRUPT_DISPLAY);
    g_assert_cmpint(rec.level[gsi], ==, 1);

    /* the cursor ring takes cursor commands only */
    QXLCursorRing *cr = &q->hdr->cursor_ring;
    cr->items[0].el = (QXLCommand){.data = phys(1, 0x10000), .type = QXL_CMD_DRAW};
    cr->items[1].el = (QXLCommand){.data = phys(1, 0x10000), .type = QXL_CMD_CURSOR};
    cr->prod = 2;
    g_assert_true(qxl_ring_pop(q, true, &ext));
    g_assert_cmpuint(ext.cmd.type, ==, QXL_CMD_CURSOR);
    dh_assert_logged("command type 1 on the cursor ring");

    /* a producer index far ahead of the consumer is nonsense: everything is dropped */
    q->hdr->cmd_ring.prod = q->hdr->cmd_ring.cons + 1000;
    g_assert_false(qxl_ring_pop(q, false, &ext));
    g_assert_cmpuint(q->hdr->cmd_ring.cons, ==, q->hdr->cmd_ring.prod);
    dh_assert_logged("entries ahead of consumer");
    /* a guest-written num_items does not change the ring geometry the device uses */
    q->hdr->cmd_ring.num_items = 0xffffffff;
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_true(qxl_ring_pop(q, false, &ext));
    teardown();
}

/* ---------------------------------------------------------------- release ring */

static void test_release_ring(void)
{
    setup();
    q->hdr->int_mask = LINUX_INT_MASK;
    QXLReleaseInfo *info = (QXLReleaseInfo *)(void *)(q->ram + 0x20000);
    for (unsigned i = 0; i < 31; i++) {
        info[i].id = 1000 + i;
        qxl_release(q, &info[i], false);
    }
    QXLReleaseRing *r = &q->hdr->release_ring;
    g_assert_cmpuint(r->prod, ==, 0); /* still collecting a bunch */
    g_assert_cmpuint(r->items[0].el, ==, 1000);
    io(QXL_IO_FLUSH_RELEASE, 0); /* the guest wants them now */
    g_assert_cmpuint(r->prod, ==, 1);
    g_assert_cmpuint(r->items[1].el, ==, 0);
    /* the chain: head in the ring, each release_info's next naming the following id */
    uint64_t id = r->items[0].el;
    unsigned n = 0;
    while (id) {
        g_assert_cmpuint(id, ==, 1000 + n);
        id = info[id - 1000].next;
        n++;
    }
    g_assert_cmpuint(n, ==, 31);
    /* the guest never consumes: the ring fills to 7 pushed bunches and stays there; more releases chain up */
    for (unsigned i = 0; i < 400; i++) {
        info[i % 300].id = 5000 + i;
        qxl_release(q, &info[i % 300], true);
    }
    g_assert_cmpuint(r->prod - r->cons, ==, QXL_RELEASE_RING_SIZE - 1);
    g_assert_cmpuint(q->free_resources, >, 0);
    teardown();
}

/* ---------------------------------------------------------------- primary surface */

static void create_primary(unsigned w, unsigned h, int32_t stride, uint32_t format, QXLPHYSICAL mem)
{
    QXLSurfaceCreate *c = &q->hdr->create_surface;
    memset(c, 0, sizeof(*c));
    c->width = w;
    c->height = h;
    c->stride = stride;
    c->format = format;
    c->mem = mem;
    io(QXL_IO_CREATE_PRIMARY_ASYNC, 0);
}

static void check_shadow_copy(unsigned w, unsigned h, int32_t stride, const uint8_t *mem)
{
    pixman_image_t *s = display_get_surface(&q->display);
    g_assert_nonnull(s);
    g_assert_cmpint(pixman_image_get_width(s), ==, (int)w);
    g_assert_cmpint(pixman_image_get_height(s), ==, (int)h);
    qxl_render_collect(q);
    const uint32_t *px = pixman_image_get_data(s);
    int sstride = pixman_image_get_stride(s) / 4;
    for (unsigned y = 0; y < h; y++) {
        /* row y of the picture: with a negative stride the first row in memory is the bottom one */
        const uint8_t *row =
            stride > 0 ? mem + (size_t)y * (size_t)stride : mem + (size_t)(h - 1 - y) * (size_t)-stride;
        for (unsigned x = 0; x < w; x++) {
            uint32_t want;
            memcpy(&want, row + 4 * x, 4);
            if (px[y * sstride + x] != want)
                g_error("pixel %u,%u: 0x%08x, want 0x%08x", x, y, px[y * sstride + x], want);
        }
    }
    g_assert_true(pixman_region32_not_empty(&q->display.damage));
    pixman_image_unref(s);
}

static void test_primary(void)
{
    setup();
    add_linux_slots();
    q->hdr->int_mask = LINUX_INT_MASK;
    const unsigned w = 64, h = 48;
    uint8_t *mem = q->ram + 0x100000;
    for (unsigned i = 0; i < w * h * 4; i++)
        mem[i] = (uint8_t)(i * 7 + i / 256);
    g_assert_null(q->display.surface);
    create_primary(w, h, (int32_t)w * 4, SPICE_SURFACE_FMT_32_xRGB, phys(1, 0x100000));
    g_assert_true(q->primary.active);
    g_assert_cmphex(q->hdr->int_pending, ==, QXL_INTERRUPT_IO_CMD);
    check_shadow_copy(w, h, (int32_t)w * 4, mem);

    /* with the primary there, drawables that read from it are checked against its size */
    QXLDrawable *dr = (QXLDrawable *)(void *)(q->ram + 0x10000);
    memset(dr, 0, sizeof(*dr));
    dr->type = QXL_COPY_BITS;
    dr->bbox = (QXLRect){.top = 0, .left = 0, .bottom = 16, .right = 16};
    dr->u.copy_bits.src_pos = (QXLPoint){10, 10};
    QXLCommandExt ext;
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_true(qxl_ring_pop(q, false, &ext));
    dr->u.copy_bits.src_pos = (QXLPoint){60, 10}; /* 60 + 16 > 64 */
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_false(qxl_ring_pop(q, false, &ext));
    dh_assert_logged("drawable type 4 refused: nested structure");
    dr->type = QXL_DRAW_FILL;
    dr->self_bitmap = 1;
    dr->self_bitmap_area = (QXLRect){.top = 0, .left = 0, .bottom = 8, .right = 8};
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_true(qxl_ring_pop(q, false, &ext));
    dr->self_bitmap_area = (QXLRect){.top = 0, .left = 0, .bottom = 8, .right = 20}; /* outside the bbox */
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    g_assert_false(qxl_ring_pop(q, false, &ext));
    dh_assert_logged("drawable type 1 refused: self bitmap area");

    /* twice is refused */
    unsigned bugs = q->guest_bugs;
    create_primary(w, h, (int32_t)w * 4, SPICE_SURFACE_FMT_32_xRGB, phys(1, 0x100000));
    g_assert_cmpuint(q->guest_bugs, ==, bugs + 1);
    dh_assert_logged("primary surface created twice");

    /* destroy: the display goes off; a bottom-up primary (negative stride) in the surfaces slot */
    io(QXL_IO_DESTROY_PRIMARY_ASYNC, 0);
    g_assert_false(q->primary.active);
    g_assert_null(q->display.surface);
    uint8_t *vmem = q->vram + 0x4000;
    for (unsigned i = 0; i < w * h * 4; i++)
        vmem[i] = (uint8_t)(i * 13 + 5);
    create_primary(w, h, -(int32_t)w * 4, SPICE_SURFACE_FMT_32_xRGB, phys(2, 0x4000));
    g_assert_true(q->primary.active);
    check_shadow_copy(w, h, -(int32_t)w * 4, vmem);
    io(QXL_IO_DESTROY_PRIMARY, 0);

    /* hostile primaries */
    static const struct {
        unsigned w, h;
        int32_t stride;
        uint32_t format;
        uint64_t off;
        const char *log;
    } bad[] = {
        {64, 48, 64 * 4, 7, 0, "primary surface format 7"},
        {0, 48, 64 * 4, SPICE_SURFACE_FMT_32_xRGB, 0, "primary surface 0x48"},
        {100000, 48, 64 * 4, SPICE_SURFACE_FMT_32_xRGB, 0, "primary surface 100000x48"},
        {64, 48, 63 * 4, SPICE_SURFACE_FMT_32_xRGB, 0, "stride 252 for 64 pixels"},
        {64, 48, INT32_MIN, SPICE_SURFACE_FMT_32_xRGB, 0, "outside the memory slots"},
        {4096, 4096, 4096 * 4, SPICE_SURFACE_FMT_32_xRGB, 0, "outside the memory slots"}, /* 64 MiB > slot */
        {64, 48, 64 * 4, SPICE_SURFACE_FMT_32_xRGB, QXL_RAM_SIZE - 0x100, "outside the memory slots"},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        q->hdr->int_pending = 0;
        bugs = q->guest_bugs;
        create_primary(bad[i].w, bad[i].h, bad[i].stride, bad[i].format, phys(1, bad[i].off));
        g_assert_cmpuint(q->guest_bugs, ==, bugs + 1);
        dh_assert_logged(bad[i].log);
        g_assert_false(q->primary.active);
        g_assert_null(q->display.surface);
        /* the async I/O still completes: Linux would otherwise wait 5 s */
        g_assert_cmphex(q->hdr->int_pending, ==, QXL_INTERRUPT_IO_CMD);
    }

    /* update area: hostile areas and other surfaces complete without reaching spice */
    q->hdr->update_surface = 0;
    q->hdr->update_area = (QXLRect){.top = 5, .left = 5, .bottom = 5, .right = 10};
    q->hdr->int_pending = 0;
    io(QXL_IO_UPDATE_AREA_ASYNC, 0);
    dh_assert_logged("update area 5,5..10,5 of surface 0");
    g_assert_cmphex(q->hdr->int_pending, ==, QXL_INTERRUPT_IO_CMD);
    q->hdr->update_surface = 3;
    q->hdr->update_area = (QXLRect){.top = 0, .left = 0, .bottom = 5, .right = 5};
    q->hdr->int_pending = 0;
    io(QXL_IO_UPDATE_AREA_ASYNC, 0);
    g_assert_cmphex(q->hdr->int_pending, ==, QXL_INTERRUPT_IO_CMD);
    /* destroy_surface_wait: surface 0 only; async destroy checks the range */
    bugs = q->guest_bugs;
    io(QXL_IO_DESTROY_SURFACE_WAIT, 5);
    io(QXL_IO_DESTROY_SURFACE_ASYNC, 0xff);
    g_assert_cmpuint(q->guest_bugs, ==, bugs + 1);
    teardown();
}

/* ---------------------------------------------------------------- resize and reset */

static void test_resize_and_reset(void)
{
    setup();
    /* not before the driver unmasks the monitors-config interrupt */
    q->hdr->int_mask = 0;
    machine_unlock(&m);
    g_assert_false(display_request_resize(&q->display, 1280, 720));
    q->hdr->int_mask = LINUX_INT_MASK;
    g_assert_false(display_request_resize(&q->display, 0, 720));
    g_assert_true(display_request_resize(&q->display, 1280, 720));
    machine_lock(&m);
    uint8_t cfg[sizeof(((QXLRom *)0)->client_monitors_config)];
    for (unsigned i = 0; i < sizeof(cfg); i++)
        cfg[i] =
            (uint8_t)dh_mmio_read(&m, bar(QXL_BAR_ROM) + offsetof(QXLRom, client_monitors_config) + i, 1);
    const QXLURect *head = (const QXLURect *)(const void *)(cfg + 4);
    g_assert_cmpuint(cfg[0], ==, 1);
    g_assert_cmpuint(head->right, ==, 1280);
    g_assert_cmpuint(head->bottom, ==, 720);
    g_assert_cmphex(rom32(offsetof(QXLRom, client_monitors_config_crc)), ==, crc_reference(cfg, sizeof(cfg)));
    g_assert_cmphex(q->hdr->int_pending, ==, QXL_INTERRUPT_CLIENT_MONITORS_CONFIG);
    g_assert_cmpint(rec.level[gsi], ==, 1);

    /* RESET: slots, primary and interrupts go; the header is fresh */
    add_linux_slots();
    create_primary(32, 32, 128, SPICE_SURFACE_FMT_32_xRGB, phys(1, 0));
    g_assert_true(q->primary.active);
    io(QXL_IO_RESET, 0);
    g_assert_false(q->slots[1].active || q->slots[2].active || q->primary.active);
    g_assert_cmphex(q->hdr->int_pending, ==, 0);
    g_assert_cmpint(rec.level[gsi], ==, 0);
    g_assert_null(q->display.surface);
    /* machine reset: the ROM's monitors config is back to the preferred mode */
    machine_reset(&m);
    g_assert_cmpuint(rom32(offsetof(QXLRom, client_monitors_config) + 4 + offsetof(QXLURect, right)), ==,
                     800);
    teardown();
}

/* Every I/O port with every value and no set-up: nothing may crash, hang or reach spice. */
static void test_io_sweep(void)
{
    setup();
    for (unsigned port = 0; port < QXL_IO_SIZE; port++) {
        if (port == QXL_IO_LOG)
            memset(q->hdr->log_buf, 'A', sizeof(q->hdr->log_buf)); /* no terminator */
        for (unsigned v = 0; v < 256; v += 51)
            io(port, (uint8_t)v);
        g_assert_cmpuint(dh_inb(&m, (uint16_t)(bar(QXL_BAR_IO) + port)), ==, 0xff);
    }
    dh_assert_logged("write 0x0 to I/O port 10"); /* DETACH_PRIMARY: qxl-2, unused by drivers */
    teardown();
}

/* ---------------------------------------------------------------- with a real spice-server */

static bool wait_pending(uint32_t bits, int ms)
{
    for (int i = 0; i < ms; i++) {
        g_main_context_iteration(NULL, FALSE);
        if ((__atomic_load_n(&q->hdr->int_pending, __ATOMIC_ACQUIRE) & bits) == bits) {
            __atomic_fetch_and(&q->hdr->int_pending, ~bits, __ATOMIC_SEQ_CST);
            io(QXL_IO_UPDATE_IRQ, 0);
            return true;
        }
        g_usleep(1000);
    }
    return false;
}

static void async_io_wait(unsigned port, uint8_t v)
{
    io(port, v);
    if (!wait_pending(QXL_INTERRUPT_IO_CMD, 10000))
        g_error("async I/O %u: no IO_CMD interrupt within 10 s", port);
}

static QXLDrawable *drawable_at(uint64_t off, uint64_t id)
{
    QXLDrawable *d = (QXLDrawable *)(void *)(q->ram + off);
    memset(d, 0, sizeof(*d));
    d->release_info.id = id;
    d->surface_id = 0;
    d->effect = QXL_EFFECT_OPAQUE;
    d->type = QXL_DRAW_FILL;
    d->bbox = (QXLRect){.top = 0, .left = 0, .bottom = 48, .right = 64};
    d->clip.type = SPICE_CLIP_TYPE_NONE;
    for (int i = 0; i < 3; i++)
        d->surfaces_dest[i] = -1;
    d->u.fill.brush.type = SPICE_BRUSH_TYPE_SOLID;
    d->u.fill.brush.u.color = 0x123456;
    d->u.fill.rop_descriptor = SPICE_ROPD_OP_PUT;
    return d;
}

/* spice-server's own log: warnings about refused guest data are expected here (GLib tests make them fatal);
 * criticals stay fatal (spice-server aborts on those itself). */
static GString *spice_log;
static GMutex spice_log_lock;

static void spice_log_handler(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer opaque)
{
    (void)domain;
    (void)opaque;
    if (level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO))
        return;
    g_mutex_lock(&spice_log_lock);
    g_string_append_printf(spice_log, "%s\n", msg);
    g_mutex_unlock(&spice_log_lock);
}

static bool spice_logged(const char *needle)
{
    g_mutex_lock(&spice_log_lock);
    bool found = strstr(spice_log->str, needle) != NULL;
    g_mutex_unlock(&spice_log_lock);
    return found;
}

/* Linux's sequence against spice-server's worker: slots and primary by async I/O and IO_CMD interrupts, then
 * ring entries that pass the device's checks but are nonsense inside (spice-server must refuse them without
 * aborting), then a solid fill that spice renders into the guest's primary and the device copies into the
 * published surface; the fill's release_info comes back through the release ring. */
static void test_spice_worker(void)
{
    setup();
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    spice_log = g_string_new(NULL);
    guint handler = g_log_set_handler("Spice", G_LOG_LEVEL_MASK, spice_log_handler, NULL);
    g_autofree char *dir = g_dir_make_tmp("qxl-spice-XXXXXX", NULL);
    g_assert_nonnull(dir);
    g_autofree char *sock = g_build_filename(dir, "spice.sock", NULL);
    SpiceServer *srv = spice_server_new();
    spice_server_set_addr(srv, sock, SPICE_ADDR_FLAG_UNIX_ONLY);
    spice_server_set_noauth(srv);
    g_assert_cmpint(spice_server_init(srv, spice_core_glib()), ==, 0);
    char *err = NULL;
    g_assert_true(q->display.ops->spice_attach(&q->display, srv, &err));
    g_assert_null(err);
    spice_server_vm_start(srv);

    q->hdr->int_mask = LINUX_INT_MASK;
    q->hdr->mem_slot.mem_start = bar(QXL_BAR_RAM);
    q->hdr->mem_slot.mem_end = bar(QXL_BAR_RAM) + q->ram_header_offset;
    async_io_wait(QXL_IO_MEMSLOT_ADD_ASYNC, 1);
    q->hdr->mem_slot.mem_start = bar(QXL_BAR_VRAM);
    q->hdr->mem_slot.mem_end = bar(QXL_BAR_VRAM) + QXL_VRAM_SIZE;
    async_io_wait(QXL_IO_MEMSLOT_ADD_ASYNC, 2);
    QXLSurfaceCreate *c = &q->hdr->create_surface;
    memset(c, 0, sizeof(*c));
    *c = (QXLSurfaceCreate){.width = 64,
                            .height = 48,
                            .stride = 256,
                            .format = SPICE_SURFACE_FMT_32_xRGB,
                            .mouse_mode = 1,
                            .mem = phys(1, 0x100000)};
    async_io_wait(QXL_IO_CREATE_PRIMARY_ASYNC, 0);
    g_assert_nonnull(q->display.surface);

    /* nonsense inside plausible commands */
    QXLDrawable *d = drawable_at(0x10000, 1);
    d->surface_id = 77; /* never created */
    d = drawable_at(0x10400, 2);
    d->type = 200; /* no such drawing */
    d = drawable_at(0x10800, 3);
    d->clip.type = SPICE_CLIP_TYPE_RECTS;
    d->clip.data = phys(200, 0x1000); /* an unregistered slot */
    d = drawable_at(0x10c00, 4);
    d->u.fill.brush.type = SPICE_BRUSH_TYPE_PATTERN;
    d->u.fill.brush.u.pattern.pat = phys(2, QXL_VRAM_SIZE - 4); /* image header past the slot's end */
    d = drawable_at(0x11000, 5);
    d->bbox = (QXLRect){.top = -100, .left = 5000, .bottom = -200, .right = 1};
    /* a copy from a surface spice does not have (the device refuses it before spice looks) */
    QXLImage *simg = (QXLImage *)(void *)(q->ram + 0x14000);
    memset(simg, 0, sizeof(*simg));
    simg->descriptor.type = SPICE_IMAGE_TYPE_SURFACE;
    simg->surface_image.surface_id = 33;
    d = drawable_at(0x14400, 10);
    d->type = QXL_DRAW_COPY;
    d->u.copy.src_bitmap = phys(1, 0x14000);
    d->u.copy.src_area = (QXLRect){.top = 0, .left = 0, .bottom = 4, .right = 4};
    d->u.copy.rop_descriptor = SPICE_ROPD_OP_PUT;
    push(QXL_CMD_DRAW, phys(1, 0x14400));
    QXLSurfaceCmd *sc = (QXLSurfaceCmd *)(void *)(q->ram + 0x11400);
    memset(sc, 0, sizeof(*sc));
    sc->release_info.id = 6;
    sc->surface_id = 5;
    sc->type = QXL_SURFACE_CMD_CREATE;
    sc->u.surface_create = (QXLSurface){.format = SPICE_SURFACE_FMT_32_xRGB,
                                        .width = 100000,
                                        .height = 100000,
                                        .stride = 4,
                                        .data = phys(2, 0)};
    QXLUpdateCmd *up = (QXLUpdateCmd *)(void *)(q->ram + 0x11800);
    memset(up, 0, sizeof(*up));
    up->release_info.id = 7;
    up->surface_id = 9;
    up->area = (QXLRect){.top = 0, .left = 0, .bottom = 10, .right = 10};
    push(QXL_CMD_DRAW, phys(1, 0x10000));
    push(QXL_CMD_DRAW, phys(1, 0x10400));
    push(QXL_CMD_DRAW, phys(1, 0x10800));
    push(QXL_CMD_DRAW, phys(1, 0x10c00));
    push(QXL_CMD_DRAW, phys(1, 0x11000));
    push(QXL_CMD_SURFACE, phys(1, 0x11400));
    push(QXL_CMD_UPDATE, phys(1, 0x11800));
    /* an empty update area on the primary, and a fill whose self bitmap area is empty: spice-server's
     * display_channel_draw aborts on both (found by fuzz-qxl with FUZZ_QXL_SPICE=1) */
    up = (QXLUpdateCmd *)(void *)(q->ram + 0x11900);
    memset(up, 0, sizeof(*up));
    up->release_info.id = 11;
    push(QXL_CMD_UPDATE, phys(1, 0x11900));
    d = drawable_at(0x14800, 12);
    d->self_bitmap = 1;
    d->self_bitmap_area = (QXLRect){.top = 3, .left = 3, .bottom = 3, .right = 9};
    push(QXL_CMD_DRAW, phys(1, 0x14800));
    /* a cursor command whose shape is outside every slot */
    QXLCursorCmd *cc = (QXLCursorCmd *)(void *)(q->ram + 0x11c00);
    memset(cc, 0, sizeof(*cc));
    cc->release_info.id = 8;
    cc->type = QXL_CURSOR_SET;
    cc->u.set.visible = 1;
    cc->u.set.shape = phys(1, q->ram_header_offset + 0x100);
    QXLCursorRing *cr = &q->hdr->cursor_ring;
    cr->items[cr->prod % QXL_CURSOR_RING_SIZE].el =
        (QXLCommand){.data = phys(1, 0x11c00), .type = QXL_CMD_CURSOR};
    cr->prod++;
    /* a real cursor: 2x2 ARGB at 10,20 with its hotspot at 1,1 */
    QXLCursor *shape = (QXLCursor *)(void *)(q->ram + 0x13000);
    memset(shape, 0, sizeof(*shape));
    shape->header = (QXLCursorHeader){.unique = 1,
                                      .type = SPICE_CURSOR_TYPE_ALPHA,
                                      .width = 2,
                                      .height = 2,
                                      .hot_spot_x = 1,
                                      .hot_spot_y = 1};
    shape->data_size = 16;
    shape->chunk.data_size = 16;
    static const uint32_t argb[4] = {0xff0000ff, 0x80ff0000, 0x00000000, 0xffffffff};
    memcpy(q->ram + 0x13000 + sizeof(QXLCursor), argb, sizeof(argb));
    cc = (QXLCursorCmd *)(void *)(q->ram + 0x13400);
    memset(cc, 0, sizeof(*cc));
    cc->release_info.id = 9;
    cc->type = QXL_CURSOR_SET;
    cc->u.set.visible = 1;
    cc->u.set.position = (QXLPoint16){10, 20};
    cc->u.set.shape = phys(1, 0x13000);
    cr->items[cr->prod % QXL_CURSOR_RING_SIZE].el =
        (QXLCommand){.data = phys(1, 0x13400), .type = QXL_CMD_CURSOR};
    cr->prod++;
    /* and the real thing */
    drawable_at(0x12000, 4242);
    push(QXL_CMD_DRAW, phys(1, 0x12000));
    io(QXL_IO_NOTIFY_CMD, 0);
    io(QXL_IO_NOTIFY_CURSOR, 0);

    bool filled = false;
    for (int i = 0; i < 10000 && !filled; i++) {
        qxl_render_kick(q);
        g_main_context_iteration(NULL, FALSE);
        qxl_render_collect(q);
        const uint32_t *px = pixman_image_get_data(q->shadow);
        filled = (px[0] & 0xffffff) == 0x123456 && (px[64 * 48 - 1] & 0xffffff) == 0x123456;
        g_usleep(1000);
    }
    g_assert_true(filled);
    g_assert_cmpuint(q->hdr->cmd_ring.cons, ==, q->hdr->cmd_ring.prod);
    /* the cursor reached the display core (the worker took it; the main loop published it) */
    for (int i = 0; i < 5000 && !q->display.cursor.image; i++) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    g_assert_nonnull(q->display.cursor.image);
    g_assert_cmpint(pixman_image_get_width(q->display.cursor.image), ==, 2);
    g_assert_cmphex(pixman_image_get_data(q->display.cursor.image)[1], ==, 0x80ff0000);
    g_assert_cmpint(q->display.cursor.hot_x, ==, 1);
    g_assert_cmpint(q->display.cursor.x, ==, 10);
    g_assert_cmpint(q->display.cursor.y, ==, 20);
    g_assert_true(q->display.cursor.visible);
    /* spice-server saw the nonsense and refused it (warnings, not aborts) */
    g_assert_true(spice_logged("surface 77"));
    /* and the device kept from spice what would have crashed it (an untranslatable clip list, a pattern
     * image past its slot, an unknown drawing type) */
    dh_assert_logged("drawable type 1 refused: clip");
    dh_assert_logged("drawable type 1 refused: nested structure");
    dh_assert_logged("drawable type 200 refused: drawing type");
    dh_assert_logged("drawable type 3 refused: nested structure");
    dh_assert_logged("update command for area 0,0..0,0");
    dh_assert_logged("drawable type 1 refused: self bitmap area");

    /* the fill's resource comes back: flush the release chain and look for id 4242 */
    bool released = false;
    for (int i = 0; i < 5000 && !released; i++) {
        io(QXL_IO_FLUSH_RELEASE, 0);
        QXLReleaseRing *r = &q->hdr->release_ring;
        for (uint32_t k = r->cons; k != r->prod && !released; k++) {
            uint64_t id = r->items[k % QXL_RELEASE_RING_SIZE].el;
            for (unsigned hops = 0; id && hops < 64 && !released; hops++) {
                released = id == 4242;
                uint64_t off = id == 4242 ? 0x12000
                               : id <= 5  ? 0x10000 + (id - 1) * 0x400
                               : id == 6  ? 0x11400
                               : id == 7  ? 0x11800
                               : id == 8  ? 0x11c00
                                          : 0x13400;
                id = id > 9 && id != 4242 ? 0 : ((QXLReleaseInfo *)(void *)(q->ram + off))->next;
            }
        }
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    g_assert_true(released);

    /* the guest's own update_area of the primary completes by interrupt */
    q->hdr->update_surface = 0;
    q->hdr->update_area = (QXLRect){.top = 0, .left = 0, .bottom = 48, .right = 64};
    async_io_wait(QXL_IO_UPDATE_AREA_ASYNC, 0);
    async_io_wait(QXL_IO_DESTROY_PRIMARY_ASYNC, 0);
    g_assert_null(q->display.surface);
    io(QXL_IO_RESET, 0); /* synchronous spice calls from the "vCPU" */

    q->display.ops->spice_detach(&q->display);
    spice_server_destroy(srv);
    while (g_main_context_iteration(NULL, FALSE))
        ;
    g_unlink(sock);
    g_rmdir(dir);
    g_log_remove_handler("Spice", handler);
    g_string_free(spice_log, TRUE);
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qxl/pci/identity-and-bars", test_pci_identity);
    g_test_add_func("/qxl/rom/contents", test_rom_contents);
    g_test_add_func("/qxl/ram/header-and-reset", test_ram_header);
    g_test_add_func("/qxl/irq/mask-pending-and-async", test_irq_and_async);
    g_test_add_func("/qxl/memslot/good-and-hostile", test_memslots);
    g_test_add_func("/qxl/ring/hostile-entries", test_command_ring);
    g_test_add_func("/qxl/release/chain-and-full-ring", test_release_ring);
    g_test_add_func("/qxl/primary/shadow-and-hostile", test_primary);
    g_test_add_func("/qxl/resize-and-reset", test_resize_and_reset);
    g_test_add_func("/qxl/io/sweep", test_io_sweep);
    g_test_add_func("/qxl/spice/worker-renders-and-survives-nonsense", test_spice_worker);
    return g_test_run();
}
