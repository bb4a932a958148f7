/* bochs-display: DISPI registers, EDID, the VRAM BAR as guest-memory device RAM, damage from dirty logging.
 */
#include "bochs_display.h"

#include <errno.h>
#include <string.h>

#include "log.h"

static struct log_ratelimit bochs_rl = LOG_RATELIMIT_INIT(5000, 10);

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
    edid_build(b->edid, w, h);

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
