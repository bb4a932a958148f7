/* bochs-display: DISPI registers, EDID, the VRAM BAR as guest-memory device RAM, damage from dirty logging.
 */
#include "bochs_display.h"

#include <errno.h>
#include <string.h>

#include "log.h"

static struct log_ratelimit bochs_rl = LOG_RATELIMIT_INIT(5000, 10);

/* ---------------------------------------------------------------- EDID (VESA E-EDID 1.4) */

/* Reduced-blanking timing for the preferred mode (CVT-RB style: fixed horizontal blanking, enough vertical
 * blanking for ~460 us), at 60 Hz or the highest rate whose pixel clock fits the 16-bit field. */
struct edid_timing {
    unsigned hfront, hsync, hblank, vfront, vsync, vblank, refresh;
    uint64_t pixel_clock_hz;
};

static void edid_timing(unsigned w, unsigned h, struct edid_timing *t)
{
    t->hfront = 48, t->hsync = 32, t->hblank = 160;
    t->vfront = 3, t->vsync = 6;
    t->vblank = MAX(15u, (h * 284 + 9999) / 10000 + 1);
    uint64_t total = (uint64_t)(w + t->hblank) * (h + t->vblank);
    t->refresh = 60;
    if (total * t->refresh > 655350000ull)
        t->refresh = MAX(1u, (unsigned)(655350000ull / total));
    t->pixel_clock_hz = total * t->refresh;
}

static void edid_descriptor_text(uint8_t *d, uint8_t tag, const char *text)
{
    memset(d, 0, 18);
    d[3] = tag;
    size_t n = MIN(strlen(text), (size_t)13);
    memcpy(d + 5, text, n);
    if (n < 13) {
        d[5 + n] = 0x0a;
        memset(d + 6 + n, 0x20, 13 - n - 1);
    }
}

void bochs_display_build_edid(uint8_t e[EDID_LENGTH], unsigned w, unsigned h)
{
    static const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    memset(e, 0, EDID_LENGTH);
    memcpy(e, header, sizeof(header));
    /* Manufacturer "DVM": three 5-bit letters ('A' = 1), big-endian. */
    uint16_t mfg = (uint16_t)(('D' - '@') << 10 | ('V' - '@') << 5 | ('M' - '@'));
    e[8] = (uint8_t)(mfg >> 8), e[9] = (uint8_t)mfg;
    e[10] = 0x01;                                                      /* product code 1 */
    e[16] = 1;                                                         /* week of manufacture */
    e[17] = 2024 - 1990;                                               /* year */
    e[18] = 1, e[19] = 4;                                              /* EDID 1.4 */
    e[20] = 0x80 | 2 << 4;                                             /* digital input, 8 bits per primary */
    unsigned wmm = (w * 254 + 480) / 960, hmm = (h * 254 + 480) / 960; /* at 96 dpi */
    e[21] = (uint8_t)MIN((wmm + 5) / 10, 255u);
    e[22] = (uint8_t)MIN((hmm + 5) / 10, 255u);
    e[23] = 120;  /* gamma 2.2 */
    e[24] = 0x06; /* sRGB default colour space; the first detailed timing is the preferred mode */
    /* sRGB chromaticity: red, green, blue, white x/y in 1/1024. */
    static const uint16_t chroma[8] = {655, 338, 307, 614, 154, 61, 320, 337};
    e[25] = (uint8_t)((chroma[0] & 3) << 6 | (chroma[1] & 3) << 4 | (chroma[2] & 3) << 2 | (chroma[3] & 3));
    e[26] = (uint8_t)((chroma[4] & 3) << 6 | (chroma[5] & 3) << 4 | (chroma[6] & 3) << 2 | (chroma[7] & 3));
    for (int i = 0; i < 8; i++)
        e[27 + i] = (uint8_t)(chroma[i] >> 2);
    e[35] = 0x21; /* established timings: 640x480@60, 800x600@60 */
    e[36] = 0x08; /* 1024x768@60 */
    /* Standard timings: (width / 8 - 31), aspect (0 16:10, 1 4:3, 2 5:4, 3 16:9) << 6 | (refresh - 60). */
    static const struct {
        uint16_t w;
        uint8_t aspect;
    } std[8] = {{1152, 1}, {1280, 3}, {1280, 0}, {1280, 2}, {1440, 0}, {1600, 3}, {1680, 0}, {1920, 3}};
    for (int i = 0; i < 8; i++) {
        e[38 + 2 * i] = (uint8_t)(std[i].w / 8 - 31);
        e[39 + 2 * i] = (uint8_t)(std[i].aspect << 6);
    }

    /* Descriptor 1: the preferred mode as a detailed timing. */
    struct edid_timing t;
    edid_timing(w, h, &t);
    uint8_t *d = e + 54;
    unsigned clk = (unsigned)((t.pixel_clock_hz + 5000) / 10000);
    unsigned hback_sync = t.hfront, hsw = t.hsync, vfp = t.vfront, vsw = t.vsync;
    d[0] = (uint8_t)clk, d[1] = (uint8_t)(clk >> 8);
    d[2] = (uint8_t)w, d[3] = (uint8_t)t.hblank, d[4] = (uint8_t)((w >> 8) << 4 | (t.hblank >> 8));
    d[5] = (uint8_t)h, d[6] = (uint8_t)t.vblank, d[7] = (uint8_t)((h >> 8) << 4 | (t.vblank >> 8));
    d[8] = (uint8_t)hback_sync, d[9] = (uint8_t)hsw;
    d[10] = (uint8_t)((vfp & 15) << 4 | (vsw & 15));
    d[11] = (uint8_t)((hback_sync >> 8) << 6 | (hsw >> 8) << 4 | (vfp >> 4) << 2 | (vsw >> 4));
    d[12] = (uint8_t)wmm, d[13] = (uint8_t)hmm, d[14] = (uint8_t)((wmm >> 8) << 4 | (hmm >> 8));
    d[17] = 0x1a; /* digital separate sync, hsync +, vsync - */

    /* Descriptor 2: range limits that contain the preferred mode. */
    d = e + 72;
    unsigned hfreq_khz = (unsigned)(t.pixel_clock_hz / (w + t.hblank) / 1000);
    d[3] = 0xfd;
    d[5] = (uint8_t)MIN(50u, t.refresh);
    d[6] = (uint8_t)MAX(75u, t.refresh);
    d[7] = (uint8_t)MIN(30u, hfreq_khz);
    d[8] = (uint8_t)MIN(MAX(80u, hfreq_khz + 1), 255u);
    d[9] = (uint8_t)MIN((unsigned)(t.pixel_clock_hz / 10000000) + 2, 255u);
    d[10] = 0x01; /* range limits only */
    d[11] = 0x0a;
    memset(d + 12, 0x20, 6);

    edid_descriptor_text(e + 90, 0xfc, "deskvm"); /* display product name */
    memset(e + 108, 0, 18);
    e[108 + 3] = 0x10; /* dummy descriptor */

    uint8_t sum = 0;
    for (int i = 0; i < EDID_LENGTH - 1; i++)
        sum = (uint8_t)(sum + e[i]);
    e[EDID_LENGTH - 1] = (uint8_t)(256 - sum);
}

bool bochs_display_resolution_valid(unsigned w, unsigned h, char **why)
{
    if (w < BOCHS_RES_MIN_WIDTH || h < BOCHS_RES_MIN_HEIGHT || w > BOCHS_RES_MAX || h > BOCHS_RES_MAX) {
        *why = g_strdup_printf("%ux%u is outside %ux%u .. %ux%u", w, h, BOCHS_RES_MIN_WIDTH,
                               BOCHS_RES_MIN_HEIGHT, BOCHS_RES_MAX, BOCHS_RES_MAX);
        return false;
    }
    if (bochs_display_vram_size(w, h) > BOCHS_VRAM_MAX) {
        *why = g_strdup_printf("%ux%u needs more than %u MiB of video memory", w, h, BOCHS_VRAM_MAX >> 20);
        return false;
    }
    return true;
}

uint64_t bochs_display_vram_size(unsigned w, unsigned h)
{
    uint64_t need = (uint64_t)w * h * 4 * 2, size = BOCHS_VRAM_MIN;
    while (size < need)
        size <<= 1;
    return size;
}

/* ---------------------------------------------------------------- mode and surface */

/* The mode the registers describe, or format 0 when there is none the device can show (disabled, an
 * unsupported depth, or a frame that would not lie inside VRAM). */
static void compute_mode(const struct bochs_display *b, struct bochs_mode *mode, const char **why)
{
    const uint16_t *r = b->dispi;
    memset(mode, 0, sizeof(*mode));
    *why = NULL;
    if (!(r[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_ENABLED))
        return;
    pixman_format_code_t format;
    switch (r[VBE_DISPI_INDEX_BPP]) {
    case 16:
        format = PIXMAN_r5g6b5;
        mode->bytepp = 2;
        break;
    case 32:
        format = b->endianness == BOCHS_QEXT_BIG_ENDIAN ? PIXMAN_b8g8r8x8 : PIXMAN_x8r8g8b8;
        mode->bytepp = 4;
        break;
    default:
        *why = "unsupported bits per pixel";
        return;
    }
    mode->width = r[VBE_DISPI_INDEX_XRES];
    mode->height = r[VBE_DISPI_INDEX_YRES];
    unsigned virt_width = MAX(r[VBE_DISPI_INDEX_VIRT_WIDTH], mode->width);
    mode->stride = virt_width * mode->bytepp;
    mode->offset = (uint64_t)r[VBE_DISPI_INDEX_Y_OFFSET] * mode->stride +
                   (uint64_t)r[VBE_DISPI_INDEX_X_OFFSET] * mode->bytepp;
    if (mode->width < BOCHS_MODE_MIN || mode->height < BOCHS_MODE_MIN) {
        *why = "mode smaller than 64x64";
        return;
    }
    /* pixman reads 32-bit words: the start and the stride must be word aligned (odd sizes at 16 bpp). */
    if (mode->offset % 4 || mode->stride % 4) {
        *why = "framebuffer start or stride not 4-byte aligned";
        return;
    }
    uint64_t last = mode->offset + (uint64_t)mode->stride * (mode->height - 1) + mode->width * mode->bytepp;
    if (last > b->vram_size) {
        *why = "frame does not fit in video memory";
        return;
    }
    mode->format = format;
}

static bool mode_equal(const struct bochs_mode *a, const struct bochs_mode *b)
{
    return a->format == b->format && a->width == b->width && a->height == b->height &&
           a->bytepp == b->bytepp && a->stride == b->stride && a->offset == b->offset;
}

static void update_mode(struct bochs_display *b)
{
    struct bochs_mode mode;
    const char *why;
    compute_mode(b, &mode, &why);
    if (why)
        log_message_ratelimited(
            &bochs_rl, LOG_LEVEL_WARN,
            "bochs-display: guest mode %ux%u, %u bpp, virtual width %u, offset %u,%u refused: %s",
            b->dispi[VBE_DISPI_INDEX_XRES], b->dispi[VBE_DISPI_INDEX_YRES], b->dispi[VBE_DISPI_INDEX_BPP],
            b->dispi[VBE_DISPI_INDEX_VIRT_WIDTH], b->dispi[VBE_DISPI_INDEX_X_OFFSET],
            b->dispi[VBE_DISPI_INDEX_Y_OFFSET], why);
    if (!mode.format)
        memset(&mode, 0, sizeof(mode)); /* every way of being off is the same "off" */
    if (mode_equal(&mode, &b->mode))
        return;
    b->mode = mode;
    pixman_image_t *surface = NULL;
    if (mode.format)
        surface = pixman_image_create_bits(mode.format, (int)mode.width, (int)mode.height,
                                           (uint32_t *)(void *)(b->vram + mode.offset), (int)mode.stride);
    display_set_surface(&b->display, surface);
    if (surface)
        pixman_image_unref(surface);
    b->full_damage = true;
}

/* ---------------------------------------------------------------- DISPI registers */

static uint16_t dispi_read(const struct bochs_display *b, unsigned index)
{
    if (b->dispi[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_GETCAPS) {
        switch (index) {
        case VBE_DISPI_INDEX_XRES:
            return VBE_DISPI_MAX_XRES;
        case VBE_DISPI_INDEX_YRES:
            return VBE_DISPI_MAX_YRES;
        case VBE_DISPI_INDEX_BPP:
            return VBE_DISPI_MAX_BPP;
        }
    }
    if (index == VBE_DISPI_INDEX_VIDEO_MEMORY_64K)
        return (uint16_t)(b->vram_size >> 16);
    return b->dispi[index];
}

static void dispi_write(struct bochs_display *b, unsigned index, uint16_t v)
{
    switch (index) {
    case VBE_DISPI_INDEX_ID:
        if (v >= VBE_DISPI_ID0 && v <= VBE_DISPI_ID5)
            b->dispi[index] = v;
        return;
    case VBE_DISPI_INDEX_VIDEO_MEMORY_64K:
        return;
    default:
        b->dispi[index] = v;
        update_mode(b);
        return;
    }
}

/* ---------------------------------------------------------------- register BAR */

static uint8_t mmio_byte(const struct bochs_display *b, uint64_t off)
{
    if (off < BOCHS_MMIO_EDID + BOCHS_MMIO_EDID_SIZE)
        return off < EDID_LENGTH ? b->edid[off] : 0;
    if (off >= BOCHS_MMIO_DISPI && off < BOCHS_MMIO_DISPI + 2 * VBE_DISPI_INDEX_NB) {
        unsigned i = (unsigned)(off - BOCHS_MMIO_DISPI);
        return (uint8_t)(dispi_read(b, i / 2) >> (8 * (i % 2)));
    }
    if (off >= BOCHS_MMIO_QEXT && off < BOCHS_MMIO_QEXT + BOCHS_QEXT_SIZE) {
        unsigned i = (unsigned)(off - BOCHS_MMIO_QEXT);
        uint32_t v = i < 4 ? BOCHS_QEXT_SIZE : b->endianness;
        return (uint8_t)(v >> (8 * (i % 4)));
    }
    return 0;
}

static uint64_t mmio_read(void *opaque, uint64_t offset, unsigned size)
{
    const struct bochs_display *b = opaque;
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)mmio_byte(b, offset + i) << (8 * i);
    return v;
}

static void mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct bochs_display *b = opaque;
    uint64_t end = offset + size;
    if (offset >= BOCHS_MMIO_DISPI && end <= BOCHS_MMIO_DISPI + 2 * VBE_DISPI_INDEX_NB) {
        /* Each register touched gets its new bytes merged in, then one write (a byte write changes half). */
        for (unsigned idx = (unsigned)(offset - BOCHS_MMIO_DISPI) / 2;
             BOCHS_MMIO_DISPI + 2 * (uint64_t)idx < end; idx++) {
            uint16_t v = b->dispi[idx];
            for (unsigned k = 0; k < 2; k++) {
                uint64_t a = BOCHS_MMIO_DISPI + 2 * (uint64_t)idx + k;
                if (a >= offset && a < end)
                    v = (uint16_t)((v & ~(0xff << (8 * k))) | ((value >> (8 * (a - offset))) & 0xff)
                                                                  << (8 * k));
            }
            dispi_write(b, idx, v);
        }
        return;
    }
    if (offset == BOCHS_QEXT_REG_ENDIANNESS && size == 4) {
        if (value == BOCHS_QEXT_LITTLE_ENDIAN || value == BOCHS_QEXT_BIG_ENDIAN) {
            b->endianness = (uint32_t)value;
            update_mode(b);
        }
        return;
    }
    if (offset >= BOCHS_MMIO_VGA && end <= BOCHS_MMIO_VGA + BOCHS_MMIO_VGA_SIZE)
        return; /* Linux blanks/unblanks through the VGA attribute port; there is no VGA here */
    log_message_ratelimited(&bochs_rl, LOG_LEVEL_DEBUG,
                            "bochs-display: %u-byte write 0x%llx at 0x%llx ignored", size,
                            (unsigned long long)value, (unsigned long long)offset);
}

static const struct io_ops mmio_ops = {mmio_read, mmio_write};

/* ---------------------------------------------------------------- VRAM BAR */

/* BAR0 decodes as guest memory (the device slot); these handlers only see accesses that reach the bus while
 * the slot is not mapped there yet (a vCPU's stale TLB entry right after a BAR move). */
static uint64_t vram_read(void *opaque, uint64_t offset, unsigned size)
{
    const struct bochs_display *b = opaque;
    uint64_t v = 0;
    for (unsigned i = 0; i < size && offset + i < b->vram_size; i++)
        v |= (uint64_t)b->vram[offset + i] << (8 * i);
    return v;
}

static void vram_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct bochs_display *b = opaque;
    for (unsigned i = 0; i < size && offset + i < b->vram_size; i++)
        b->vram[offset + i] = (uint8_t)(value >> (8 * i));
    b->full_damage = true;
}

static const struct io_ops vram_ops = {vram_read, vram_write};

static void bar_mapped(struct pci_device *dev, unsigned n, bool mapped, uint64_t addr)
{
    struct bochs_display *b = container_of(dev, struct bochs_display, pci);
    if (n != BOCHS_BAR_VRAM)
        return;
    if (!mapped) {
        guest_memory_unmap_device(&b->m->mem, b->vram_slot);
        return;
    }
    int r = guest_memory_map_device(&b->m->mem, b->vram_slot, addr);
    if (r < 0)
        log_message_ratelimited(
            &bochs_rl, LOG_LEVEL_WARN,
            "bochs-display: framebuffer at 0x%llx not mapped as memory (%s); slow path only",
            (unsigned long long)addr, g_strerror(-r));
}

static const struct pci_device_ops bochs_pci_ops = {.bar_mapped = bar_mapped};

/* ---------------------------------------------------------------- display interface */

struct damage_walk {
    struct bochs_display *b;
    uint64_t start, end; /* the frame's bytes in VRAM */
};

/* A dirty page becomes the rows it touches, or the part of one row when it lies within a single row. */
static void dirty_page(void *opaque, uint64_t page)
{
    struct damage_walk *w = opaque;
    const struct bochs_mode *m = &w->b->mode;
    uint64_t lo = MAX(page, w->start), hi = MIN(page + GUEST_PAGE_SIZE, w->end);
    if (lo >= hi)
        return;
    uint64_t y0 = (lo - w->start) / m->stride, y1 = (hi - 1 - w->start) / m->stride;
    int x = 0, width = (int)m->width;
    if (y0 == y1) {
        uint64_t x0 = (lo - w->start) % m->stride / m->bytepp,
                 x1 = (hi - 1 - w->start) % m->stride / m->bytepp;
        if (x0 >= m->width)
            return; /* only the padding beyond the visible width */
        x = (int)x0;
        width = (int)(MIN(x1, (uint64_t)m->width - 1) - x0 + 1);
    }
    display_add_damage(&w->b->display, x, (int)y0, width, (int)(y1 - y0 + 1));
}

static void bochs_refresh(struct display *d)
{
    struct bochs_display *b = d->opaque;
    if (!b->mode.format)
        return;
    struct damage_walk w = {b, b->mode.offset, b->mode.offset + (uint64_t)b->mode.stride * b->mode.height};
    if (b->tracking)
        guest_memory_slot_dirty_collect(&b->m->mem, b->vram_slot, w.start, w.end - w.start, dirty_page, &w);
    if (b->full_damage) {
        b->full_damage = false;
        display_add_damage(d, 0, 0, (int)b->mode.width, (int)b->mode.height);
    }
}

static void bochs_set_tracking(struct display *d, bool on)
{
    struct bochs_display *b = d->opaque;
    if (on == b->tracking)
        return;
    if (on) {
        int r = guest_memory_slot_dirty_log_start(&b->m->mem, b->vram_slot);
        if (r < 0) {
            log_warn("bochs-display: no dirty logging for the framebuffer (%s): full frames only",
                     g_strerror(-r));
            return;
        }
    } else {
        guest_memory_slot_dirty_log_stop(&b->m->mem, b->vram_slot);
    }
    b->tracking = on;
    b->full_damage = true;
}

/* The guest learns about modes from the EDID alone, and bochs has no hotplug interrupt to make it look again.
 */
static const struct display_ops bochs_display_ops = {
    .refresh = bochs_refresh,
    .set_tracking = bochs_set_tracking,
};

/* ---------------------------------------------------------------- the machine device */

static void bochs_reset(struct machine *m)
{
    struct bochs_display *b = m->bochs;
    memset(b->dispi, 0, sizeof(b->dispi));
    b->dispi[VBE_DISPI_INDEX_ID] = VBE_DISPI_ID5;
    b->endianness = BOCHS_QEXT_LITTLE_ENDIAN;
    update_mode(b);
}

static void bochs_destroy(struct machine *m)
{
    struct bochs_display *b = m->bochs;
    if (!b)
        return;
    display_unregister(&b->display);
    pci_unregister_device(&b->pci);
    guest_memory_slot_dirty_log_stop(&m->mem, b->vram_slot);
    g_free(b);
    m->bochs = NULL;
}

static int bochs_create(struct machine *m, char **error)
{
    if (!m->pci) {
        *error = g_strdup("needs the PCI host bridge");
        return -EINVAL;
    }
    unsigned w = m->config.display_width ? m->config.display_width : 1024;
    unsigned h = m->config.display_height ? m->config.display_height : 768;
    char *why = NULL;
    if (!bochs_display_resolution_valid(w, h, &why)) {
        *error = g_strdup_printf("resolution %s", why);
        g_free(why);
        return -EINVAL;
    }
    struct bochs_display *b = g_new0(struct bochs_display, 1);
    b->m = m;
    b->width = w;
    b->height = h;
    b->vram_size = bochs_display_vram_size(w, h);
    int slot = guest_memory_add_device(&m->mem, b->vram_size, &b->vram);
    if (slot < 0) {
        *error = g_strdup_printf("video memory: %s", g_strerror(-slot));
        g_free(b);
        return slot;
    }
    b->vram_slot = (unsigned)slot;
    bochs_display_build_edid(b->edid, w, h);

    static const struct pci_device_info info = {
        .name = "bochs-display",
        .vendor_id = BOCHS_DISPLAY_VENDOR_ID,
        .device_id = BOCHS_DISPLAY_DEVICE_ID,
        .class_code = BOCHS_DISPLAY_CLASS,
        .subsystem_vendor_id = 0x1af4, /* QEMU's: Red Hat, QEMU */
        .subsystem_id = 0x1100,
        .ops = &bochs_pci_ops,
    };
    pci_device_init(&b->pci, &info);
    int r = pci_register_bar(&b->pci, BOCHS_BAR_VRAM, PCI_BAR_MEM32 | PCI_BAR_PREFETCH, b->vram_size,
                             &vram_ops, b);
    if (r == 0)
        r = pci_register_bar(&b->pci, BOCHS_BAR_MMIO, PCI_BAR_MEM32, BOCHS_MMIO_SIZE, &mmio_ops, b);
    if (r == 0)
        r = pci_register_device(m->pci, &b->pci, BOCHS_DISPLAY_SLOT, 0);
    if (r < 0) {
        *error = g_strdup_printf("PCI slot %u: %s", BOCHS_DISPLAY_SLOT, g_strerror(-r));
        g_free(b);
        return r;
    }
    display_init(&b->display, m, "video0", "bochs-display", 0, &bochs_display_ops, b);
    display_register(&b->display);
    m->bochs = b;
    bochs_reset(m);
    return 0;
}

const struct machine_device bochs_display_device = {"bochs-display", bochs_create, bochs_reset,
                                                    bochs_destroy};
