/* bochs-display on a real machine: PCI identity and BAR sizing through CF8/CFC, DISPI registers, EDID, the
 * QEMU extended registers, the mode Linux's bochs driver sets becoming a surface over VRAM, guest writes into
 * the mapped framebuffer becoming damage, BAR moves remapping the memory (and telling the CPU backend),
 * reset, and hostile register values that must leave the surface inside VRAM or off. */
#include <string.h>

#include <glib.h>

#include "bochs_display.h"
#include "device_harness.h"
#include "log.h"
#include "pci_host.h"

#define MiB (1ull << 20)
#define DEVFN PCI_DEVFN(BOCHS_DISPLAY_SLOT, 0)

static struct machine m;

/* ---------------------------------------------------------------- set-up and accessors */

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

static void setup_res(unsigned w, unsigned h)
{
    static const struct machine_device *const board[] = {&pci_host_device, &bochs_display_device};
    struct machine_config cfg = {.ram_size = 64 * MiB, .cpus = 1, .display_width = w, .display_height = h};
    dh_machine_init_cfg(&m, &cfg, board, G_N_ELEMENTS(board));
    g_assert_nonnull(m.bochs);
}

static void setup(void)
{
    setup_res(0, 0);
}

static uint64_t bar(unsigned n)
{
    return cfg_read(PCI_BASE_ADDRESS_0 + 4 * n, 4) & ~0xfu;
}

/* Firmware's placement: BAR0 (VRAM) and BAR2 (registers) in the 32-bit window, memory decoding on. */
static void setup_mapped(void)
{
    setup();
    g_assert_cmpint(pci_host_assign_resources(m.pci), ==, 0);
    g_assert_cmphex(cfg_read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, ==, PCI_COMMAND_MEMORY);
}

static uint16_t dispi_read(unsigned index)
{
    return (uint16_t)dh_mmio_read(&m, bar(2) + BOCHS_MMIO_DISPI + 2 * index, 2);
}

static void dispi_write(unsigned index, uint16_t v)
{
    dh_mmio_write(&m, bar(2) + BOCHS_MMIO_DISPI + 2 * index, 2, v);
}

/* What drivers/gpu/drm/tiny/bochs.c does to set a mode at 32 bpp, then to show the frame at offset 0. */
static void linux_setmode(unsigned w, unsigned h)
{
    uint64_t vram = dispi_read(VBE_DISPI_INDEX_VIDEO_MEMORY_64K) * 65536ull;
    dh_mmio_write(&m, bar(2) + BOCHS_MMIO_VGA, 1, 0x20); /* unblank through the VGA attribute port */
    dispi_write(VBE_DISPI_INDEX_ENABLE, 0);
    dispi_write(VBE_DISPI_INDEX_BPP, 32);
    dispi_write(VBE_DISPI_INDEX_XRES, (uint16_t)w);
    dispi_write(VBE_DISPI_INDEX_YRES, (uint16_t)h);
    dispi_write(VBE_DISPI_INDEX_BANK, 0);
    dispi_write(VBE_DISPI_INDEX_VIRT_WIDTH, (uint16_t)w);
    dispi_write(VBE_DISPI_INDEX_VIRT_HEIGHT, (uint16_t)(vram / (w * 4)));
    dispi_write(VBE_DISPI_INDEX_X_OFFSET, 0);
    dispi_write(VBE_DISPI_INDEX_Y_OFFSET, 0);
    dispi_write(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
}

static pixman_image_t *surface(void)
{
    return m.bochs->display.surface;
}

/* Every surface the device shows lies inside VRAM. */
static void assert_surface_inside_vram(void)
{
    pixman_image_t *s = surface();
    if (!s)
        return;
    const uint8_t *bits = (const uint8_t *)pixman_image_get_data(s);
    uint64_t stride = (uint64_t)pixman_image_get_stride(s);
    uint64_t bpp = PIXMAN_FORMAT_BPP(pixman_image_get_format(s)) / 8;
    uint64_t h = (uint64_t)pixman_image_get_height(s), w = (uint64_t)pixman_image_get_width(s);
    g_assert_true(bits >= m.bochs->vram);
    g_assert_cmpuint((uint64_t)(bits - m.bochs->vram) + stride * (h - 1) + w * bpp, <=, m.bochs->vram_size);
}

/* ---------------------------------------------------------------- PCI */

static void test_pci_identity(void)
{
    setup();
    g_assert_cmphex(cfg_read(PCI_VENDOR_ID, 2), ==, 0x1234);
    g_assert_cmphex(cfg_read(PCI_DEVICE_ID, 2), ==, 0x1111);
    g_assert_cmphex(cfg_read(PCI_CLASS_PROG, 1), ==, 0x00);
    g_assert_cmphex(cfg_read(PCI_CLASS_DEVICE, 2), ==, 0x0380);
    g_assert_cmphex(cfg_read(PCI_HEADER_TYPE, 1), ==, 0x00);
    g_assert_cmphex(cfg_read(PCI_SUBSYSTEM_VENDOR_ID, 2), ==, 0x1af4);
    g_assert_cmphex(cfg_read(PCI_INTERRUPT_PIN, 1), ==, 0);
    dh_machine_fini(&m);
}

static void test_pci_bar_sizing(void)
{
    setup();
    for (unsigned n = 0; n < PCI_BAR_COUNT; n++)
        cfg_write(PCI_BASE_ADDRESS_0 + 4 * n, 0xffffffff, 4);
    g_assert_cmphex(cfg_read(PCI_BASE_ADDRESS_0, 4), ==, (uint32_t) ~(16 * MiB - 1) | PCI_BAR_PREFETCH);
    g_assert_cmphex(cfg_read(PCI_BASE_ADDRESS_0 + 4, 4), ==, 0);
    g_assert_cmphex(cfg_read(PCI_BASE_ADDRESS_0 + 8, 4), ==, (uint32_t) ~(BOCHS_MMIO_SIZE - 1));
    for (unsigned n = 3; n < PCI_BAR_COUNT; n++)
        g_assert_cmphex(cfg_read(PCI_BASE_ADDRESS_0 + 4 * n, 4), ==, 0);
    dh_machine_fini(&m);
}

static void test_pci_vram_scales_with_resolution(void)
{
    setup_res(2560, 1600); /* two 32-bpp frames need 31.25 MiB */
    g_assert_cmpuint(m.bochs->vram_size, ==, 32 * MiB);
    cfg_write(PCI_BASE_ADDRESS_0, 0xffffffff, 4);
    g_assert_cmphex(cfg_read(PCI_BASE_ADDRESS_0, 4), ==, (uint32_t) ~(32 * MiB - 1) | PCI_BAR_PREFETCH);
    dh_machine_fini(&m);
}

/* ---------------------------------------------------------------- registers */

static void test_dispi_id_and_memory(void)
{
    setup_mapped();
    g_assert_cmphex(dispi_read(VBE_DISPI_INDEX_ID), ==, VBE_DISPI_ID5);
    g_assert_cmpuint(dispi_read(VBE_DISPI_INDEX_VIDEO_MEMORY_64K), ==, 16 * MiB / 65536);
    dispi_write(VBE_DISPI_INDEX_ID, VBE_DISPI_ID0 + 2);
    g_assert_cmphex(dispi_read(VBE_DISPI_INDEX_ID), ==, VBE_DISPI_ID0 + 2);
    dispi_write(VBE_DISPI_INDEX_ID, 0x1234); /* not an ID: ignored */
    g_assert_cmphex(dispi_read(VBE_DISPI_INDEX_ID), ==, VBE_DISPI_ID0 + 2);
    dispi_write(VBE_DISPI_INDEX_VIDEO_MEMORY_64K, 1); /* read-only */
    g_assert_cmpuint(dispi_read(VBE_DISPI_INDEX_VIDEO_MEMORY_64K), ==, 256);
    /* GETCAPS: the maxima instead of the values */
    dispi_write(VBE_DISPI_INDEX_XRES, 800);
    dispi_write(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_GETCAPS);
    g_assert_cmpuint(dispi_read(VBE_DISPI_INDEX_XRES), ==, VBE_DISPI_MAX_XRES);
    g_assert_cmpuint(dispi_read(VBE_DISPI_INDEX_YRES), ==, VBE_DISPI_MAX_YRES);
    g_assert_cmpuint(dispi_read(VBE_DISPI_INDEX_BPP), ==, VBE_DISPI_MAX_BPP);
    dispi_write(VBE_DISPI_INDEX_ENABLE, 0);
    g_assert_cmpuint(dispi_read(VBE_DISPI_INDEX_XRES), ==, 800);
    dh_machine_fini(&m);
}

static void test_dispi_round_trip(void)
{
    setup_mapped();
    static const unsigned regs[] = {VBE_DISPI_INDEX_XRES,       VBE_DISPI_INDEX_YRES,
                                    VBE_DISPI_INDEX_BPP,        VBE_DISPI_INDEX_BANK,
                                    VBE_DISPI_INDEX_VIRT_WIDTH, VBE_DISPI_INDEX_VIRT_HEIGHT,
                                    VBE_DISPI_INDEX_X_OFFSET,   VBE_DISPI_INDEX_Y_OFFSET};
    for (unsigned i = 0; i < G_N_ELEMENTS(regs); i++)
        dispi_write(regs[i], (uint16_t)(0x1111 * (i + 1)));
    for (unsigned i = 0; i < G_N_ELEMENTS(regs); i++)
        g_assert_cmphex(dispi_read(regs[i]), ==, 0x1111 * (i + 1));
    /* byte writes change one half; a dword write sets two registers */
    dh_mmio_write(&m, bar(2) + BOCHS_MMIO_DISPI + 2 * VBE_DISPI_INDEX_XRES + 1, 1, 0xab);
    g_assert_cmphex(dispi_read(VBE_DISPI_INDEX_XRES), ==, 0xab11);
    dh_mmio_write(&m, bar(2) + BOCHS_MMIO_DISPI + 2 * VBE_DISPI_INDEX_XRES, 4, 0x02580320);
    g_assert_cmphex(dispi_read(VBE_DISPI_INDEX_XRES), ==, 800);
    g_assert_cmphex(dispi_read(VBE_DISPI_INDEX_YRES), ==, 600);
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + BOCHS_MMIO_DISPI + 2 * VBE_DISPI_INDEX_XRES, 4), ==,
                    0x02580320);
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + BOCHS_MMIO_DISPI + 2 * VBE_DISPI_INDEX_YRES + 1, 1), ==, 0x02);
    dh_machine_fini(&m);
}

static void test_qext_registers(void)
{
    setup_mapped();
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + BOCHS_QEXT_REG_SIZE, 4), ==, BOCHS_QEXT_SIZE);
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + BOCHS_QEXT_REG_ENDIANNESS, 4), ==, BOCHS_QEXT_LITTLE_ENDIAN);
    linux_setmode(640, 480);
    g_assert_cmpint(pixman_image_get_format(surface()), ==, PIXMAN_x8r8g8b8);
    dh_mmio_write(&m, bar(2) + BOCHS_QEXT_REG_ENDIANNESS, 4, BOCHS_QEXT_BIG_ENDIAN);
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + BOCHS_QEXT_REG_ENDIANNESS, 4), ==, BOCHS_QEXT_BIG_ENDIAN);
    g_assert_cmpint(pixman_image_get_format(surface()), ==, PIXMAN_b8g8r8x8);
    dh_mmio_write(&m, bar(2) + BOCHS_QEXT_REG_ENDIANNESS, 4, 0x12345678); /* neither: ignored */
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + BOCHS_QEXT_REG_ENDIANNESS, 4), ==, BOCHS_QEXT_BIG_ENDIAN);
    dh_mmio_write(&m, bar(2) + BOCHS_QEXT_REG_SIZE, 4, 0); /* read-only */
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + BOCHS_QEXT_REG_SIZE, 4), ==, BOCHS_QEXT_SIZE);
    dh_machine_fini(&m);
}

/* ---------------------------------------------------------------- EDID */

static void assert_edid_valid(const uint8_t *e, unsigned w, unsigned h)
{
    static const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    g_assert_cmpmem(e, 8, header, 8);
    uint8_t sum = 0;
    for (int i = 0; i < EDID_LENGTH; i++)
        sum = (uint8_t)(sum + e[i]);
    g_assert_cmpuint(sum, ==, 0);
    g_assert_cmpuint(e[18], ==, 1);
    g_assert_cmpuint(e[19], ==, 4);
    g_assert_cmpuint(e[126], ==, 0);      /* no extensions */
    g_assert_cmphex(e[24] & 0x02, ==, 2); /* the first detailed timing is preferred */
    /* the first descriptor is a detailed timing of w x h */
    const uint8_t *d = e + 54;
    unsigned clk = d[0] | d[1] << 8;
    g_assert_cmpuint(clk, >, 0);
    g_assert_cmpuint(d[2] | (d[4] >> 4) << 8, ==, w);
    g_assert_cmpuint(d[5] | (d[7] >> 4) << 8, ==, h);
    unsigned hblank = d[3] | (d[4] & 15) << 8, vblank = d[6] | (d[7] & 15) << 8;
    unsigned hfp = d[8] | (d[11] >> 6) << 8, hsw = d[9] | ((d[11] >> 4) & 3) << 8;
    unsigned vfp = (d[10] >> 4) | ((d[11] >> 2) & 3) << 4, vsw = (d[10] & 15) | (d[11] & 3) << 4;
    g_assert_cmpuint(hfp + hsw, <, hblank);
    g_assert_cmpuint(vfp + vsw, <, vblank);
    /* refresh from the timing: 60 Hz, or lower for modes whose clock would not fit */
    double hz = clk * 10000.0 / ((w + hblank) * (double)(h + vblank));
    g_assert_cmpfloat(hz, >, 0.9);
    g_assert_cmpfloat(hz, <, 60.5);
    /* range limits contain it */
    g_assert_cmphex(e[72 + 3], ==, 0xfd);
    g_assert_cmpuint(e[72 + 5], <=, (unsigned)hz);
    g_assert_cmpuint(e[72 + 6], >=, (unsigned)(hz + 0.5));
    g_assert_cmpuint(e[72 + 9] * 10u, >=, clk / 100);
    /* the product name */
    g_assert_cmphex(e[90 + 3], ==, 0xfc);
    g_assert_cmpmem(e + 95, 7, "deskvm\n", 7);
}

static void test_edid_through_mmio(void)
{
    setup_res(1280, 800);
    g_assert_cmpint(pci_host_assign_resources(m.pci), ==, 0);
    uint8_t e[EDID_LENGTH];
    /* Linux reads it byte by byte */
    for (unsigned i = 0; i < EDID_LENGTH; i++)
        e[i] = (uint8_t)dh_mmio_read(&m, bar(2) + BOCHS_MMIO_EDID + i, 1);
    assert_edid_valid(e, 1280, 800);
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + 4, 4), ==, 0x00ffffff);
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + EDID_LENGTH, 4), ==, 0); /* beyond the block */
    dh_mmio_write(&m, bar(2) + 8, 4, 0);                               /* read-only */
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + 8, 1), ==, e[8]);
    dh_machine_fini(&m);
}

static void test_edid_sizes(void)
{
    static const unsigned sizes[][2] = {{320, 200},   {1024, 768},  {1366, 768}, {1920, 1080},
                                        {3840, 2160}, {4095, 4095}, {4095, 200}};
    for (unsigned i = 0; i < G_N_ELEMENTS(sizes); i++) {
        uint8_t e[EDID_LENGTH];
        bochs_display_build_edid(e, sizes[i][0], sizes[i][1]);
        assert_edid_valid(e, sizes[i][0], sizes[i][1]);
    }
    /* the established and standard timings include the usual modes */
    uint8_t e[EDID_LENGTH];
    bochs_display_build_edid(e, 1024, 768);
    g_assert_cmphex(e[35], ==, 0x21);
    g_assert_cmphex(e[36], ==, 0x08);
    g_assert_cmphex(e[38 + 2 * 7], ==, 1920 / 8 - 31);
    g_assert_cmphex(e[39 + 2 * 7], ==, 0xc0);
}

static void test_resolution_validation(void)
{
    char *why = NULL;
    g_assert_true(bochs_display_resolution_valid(1024, 768, &why));
    g_assert_true(bochs_display_resolution_valid(320, 200, &why));
    g_assert_true(bochs_display_resolution_valid(3840, 2160, &why));
    g_assert_null(why);
    static const unsigned bad[][2] = {{319, 200}, {320, 199}, {4096, 768}, {1024, 4096}, {0, 0}};
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(bochs_display_resolution_valid(bad[i][0], bad[i][1], &why));
        g_assert_nonnull(why);
        g_clear_pointer(&why, g_free);
    }
    g_assert_cmpuint(bochs_display_vram_size(1024, 768), ==, 16 * MiB);
    g_assert_cmpuint(bochs_display_vram_size(1920, 1080), ==, 16 * MiB);
    g_assert_cmpuint(bochs_display_vram_size(1920, 1200), ==, 32 * MiB);
    g_assert_cmpuint(bochs_display_vram_size(3840, 2160), ==, 64 * MiB);
}

/* ---------------------------------------------------------------- modes */

static void test_mode_linux_sequence(void)
{
    setup_mapped();
    g_assert_null(surface());
    linux_setmode(1024, 768);
    pixman_image_t *s = surface();
    g_assert_nonnull(s);
    g_assert_cmpint(pixman_image_get_width(s), ==, 1024);
    g_assert_cmpint(pixman_image_get_height(s), ==, 768);
    g_assert_cmpint(pixman_image_get_stride(s), ==, 4096);
    g_assert_cmpint(pixman_image_get_format(s), ==, PIXMAN_x8r8g8b8);
    /* the surface is VRAM itself, which is what the guest sees at BAR0 */
    g_assert_true((uint8_t *)pixman_image_get_data(s) == m.bochs->vram);
    g_assert_true(guest_mem_map_read(&m.mem, bar(0), 4) == m.bochs->vram);
    /* a page flip to the second buffer: Y_OFFSET 768 */
    uint64_t gen = m.bochs->display.surface_gen;
    dispi_write(VBE_DISPI_INDEX_Y_OFFSET, 768);
    s = surface();
    g_assert_cmpuint(m.bochs->display.surface_gen, ==, gen + 1);
    g_assert_true((uint8_t *)pixman_image_get_data(s) == m.bochs->vram + 768 * 4096);
    /* rewriting the same values changes nothing */
    dispi_write(VBE_DISPI_INDEX_Y_OFFSET, 768);
    dispi_write(VBE_DISPI_INDEX_VIRT_WIDTH, 1024);
    g_assert_cmpuint(m.bochs->display.surface_gen, ==, gen + 1);
    /* 16 bpp with a wider virtual screen and an x offset */
    dispi_write(VBE_DISPI_INDEX_ENABLE, 0);
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_BPP, 16);
    dispi_write(VBE_DISPI_INDEX_XRES, 640);
    dispi_write(VBE_DISPI_INDEX_YRES, 480);
    dispi_write(VBE_DISPI_INDEX_VIRT_WIDTH, 800);
    dispi_write(VBE_DISPI_INDEX_X_OFFSET, 16);
    dispi_write(VBE_DISPI_INDEX_Y_OFFSET, 2);
    dispi_write(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
    s = surface();
    g_assert_nonnull(s);
    g_assert_cmpint(pixman_image_get_format(s), ==, PIXMAN_r5g6b5);
    g_assert_cmpint(pixman_image_get_stride(s), ==, 1600);
    g_assert_true((uint8_t *)pixman_image_get_data(s) == m.bochs->vram + 2 * 1600 + 16 * 2);
    assert_surface_inside_vram();
    dh_machine_fini(&m);
}

static void test_mode_hostile_values(void)
{
    setup_mapped();
    dh_log_capture();
    linux_setmode(1024, 768);
    /* huge sizes: the frame would leave VRAM, so the display goes off */
    dispi_write(VBE_DISPI_INDEX_XRES, 0xffff);
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_XRES, 1024);
    g_assert_nonnull(surface());
    dispi_write(VBE_DISPI_INDEX_YRES, 0xffff);
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_YRES, 768);
    dh_assert_logged(
        "guest mode 1024x65535, 32 bpp, virtual width 1024, offset 0,0 refused: frame does not fit");
    /* depths the device cannot show */
    static const uint16_t bad_bpp[] = {0, 1, 4, 8, 15, 24, 33, 0xffff};
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_bpp); i++) {
        dispi_write(VBE_DISPI_INDEX_BPP, bad_bpp[i]);
        g_assert_null(surface());
    }
    dh_assert_logged("refused: unsupported bits per pixel");
    dispi_write(VBE_DISPI_INDEX_BPP, 32);
    g_assert_nonnull(surface());
    /* a virtual width below the width is raised to it */
    dispi_write(VBE_DISPI_INDEX_VIRT_WIDTH, 10);
    g_assert_cmpint(pixman_image_get_stride(surface()), ==, 4096);
    dispi_write(VBE_DISPI_INDEX_VIRT_WIDTH, 0xffff); /* 256 KiB rows: 768 of them do not fit */
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_VIRT_WIDTH, 1024);
    /* offsets: the last frame that fits, one line more, far beyond */
    uint16_t last_y = (uint16_t)(16 * MiB / 4096 - 768);
    dispi_write(VBE_DISPI_INDEX_Y_OFFSET, last_y);
    g_assert_nonnull(surface());
    assert_surface_inside_vram();
    dispi_write(VBE_DISPI_INDEX_Y_OFFSET, (uint16_t)(last_y + 1));
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_Y_OFFSET, 0xffff);
    dispi_write(VBE_DISPI_INDEX_X_OFFSET, 0xffff);
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_Y_OFFSET, last_y);
    dispi_write(VBE_DISPI_INDEX_X_OFFSET, 1); /* the last line would run one pixel past the end */
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_X_OFFSET, 0);
    g_assert_nonnull(surface());
    /* tiny modes */
    dispi_write(VBE_DISPI_INDEX_XRES, 0);
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_XRES, 63);
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_XRES, 64);
    g_assert_nonnull(surface());
    /* 16 bpp: odd virtual widths or x offsets break word alignment: refused */
    dispi_write(VBE_DISPI_INDEX_Y_OFFSET, 0);
    dispi_write(VBE_DISPI_INDEX_BPP, 16);
    dispi_write(VBE_DISPI_INDEX_XRES, 641);
    dispi_write(VBE_DISPI_INDEX_VIRT_WIDTH, 641);
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_XRES, 640);
    dispi_write(VBE_DISPI_INDEX_VIRT_WIDTH, 640);
    dispi_write(VBE_DISPI_INDEX_X_OFFSET, 3);
    g_assert_null(surface());
    dispi_write(VBE_DISPI_INDEX_X_OFFSET, 4);
    g_assert_nonnull(surface());
    assert_surface_inside_vram();
    /* every offset and size of the register BAR answers without harm */
    for (uint64_t off = 0; off < BOCHS_MMIO_SIZE; off++) {
        static const unsigned sizes[] = {1, 2, 4, 8};
        for (unsigned k = 0; k < G_N_ELEMENTS(sizes); k++) {
            if (off + sizes[k] > BOCHS_MMIO_SIZE)
                continue;
            dh_mmio_read(&m, bar(2) + off, sizes[k]);
            if (off >= BOCHS_MMIO_DISPI && off < BOCHS_MMIO_QEXT + BOCHS_QEXT_SIZE)
                dh_mmio_write(&m, bar(2) + off, sizes[k], 0xffffffffffffffffull);
            assert_surface_inside_vram();
        }
    }
    dh_machine_fini(&m);
}

static void test_reset_turns_display_off(void)
{
    setup_mapped();
    linux_setmode(800, 600);
    dispi_write(VBE_DISPI_INDEX_ID, VBE_DISPI_ID0);
    dh_mmio_write(&m, bar(2) + BOCHS_QEXT_REG_ENDIANNESS, 4, BOCHS_QEXT_BIG_ENDIAN);
    g_assert_nonnull(surface());
    machine_reset(&m);
    g_assert_null(surface());
    g_assert_cmphex(dispi_read(VBE_DISPI_INDEX_ID), ==, VBE_DISPI_ID5);
    g_assert_cmphex(dispi_read(VBE_DISPI_INDEX_ENABLE), ==, 0);
    g_assert_cmphex(dispi_read(VBE_DISPI_INDEX_XRES), ==, 0);
    g_assert_cmphex(dh_mmio_read(&m, bar(2) + BOCHS_QEXT_REG_ENDIANNESS, 4), ==, BOCHS_QEXT_LITTLE_ENDIAN);
    dh_machine_fini(&m);
}

/* ---------------------------------------------------------------- damage */

struct seen {
    unsigned surfaces, damages;
    pixman_region32_t damage;
};

static void seen_surface(void *opaque, struct display *d, pixman_image_t *s)
{
    struct seen *r = opaque;
    r->surfaces++;
    pixman_region32_clear(&r->damage);
}

static void seen_damage(void *opaque, struct display *d, const pixman_region32_t *region)
{
    struct seen *r = opaque;
    r->damages++;
    pixman_region32_union(&r->damage, &r->damage, (pixman_region32_t *)region);
}

static const struct display_listener_ops seen_ops = {seen_surface, seen_damage, NULL};

static void assert_damage(struct seen *r, int x, int y, int w, int h)
{
    pixman_region32_t want;
    pixman_region32_init_rect(&want, x, y, (unsigned)w, (unsigned)h);
    const pixman_box32_t *e = pixman_region32_extents(&r->damage);
    if (!pixman_region32_equal(&want, &r->damage))
        g_error("damage extents (%d,%d)-(%d,%d), %d boxes; want (%d,%d)-(%d,%d)", e->x1, e->y1, e->x2, e->y2,
                pixman_region32_n_rects(&r->damage), x, y, x + w, y + h);
    pixman_region32_fini(&want);
    pixman_region32_clear(&r->damage);
}

static void test_damage_from_framebuffer_writes(void)
{
    setup_mapped();
    struct seen r = {0};
    pixman_region32_init(&r.damage);
    struct display *d = &m.bochs->display;
    linux_setmode(1280, 720); /* 5120-byte rows: pages and rows do not line up */
    struct display_listener *l = display_add_listener(d, &seen_ops, &r);
    g_assert_true(m.mem.slots[m.bochs->vram_slot].logging);
    display_refresh(d);
    g_assert_cmpuint(r.surfaces, ==, 1);
    display_refresh(d); /* tracking began with a full frame, which the surface covered */
    pixman_region32_clear(&r.damage);

    uint64_t fb = bar(0);
    /* pixel (10, 5): byte 25640, in the page 24576..28671, which holds the end of row 4 and most of row 5 */
    g_assert_cmpint(guest_mem_write_u32(&m.mem, fb + 5 * 5120 + 40, 0x00ff0000), ==, 0);
    display_refresh(d);
    assert_damage(&r, 0, 4, 1280, 2);
    /* nothing new: no damage */
    unsigned n = r.damages;
    display_refresh(d);
    g_assert_cmpuint(r.damages, ==, n);
    /* a page inside one row: only the pixels it covers (row 1 is bytes 5120..10239; page 8192..12287 covers
     * x 768..1279 of row 1 and the start of row 2) */
    g_assert_cmpint(guest_mem_write_u8(&m.mem, fb + 9000, 1), ==, 0);
    display_refresh(d);
    assert_damage(&r, 0, 1, 1280, 2);
    /* the last page of the frame, and a write past the frame (second buffer) that is not visible */
    g_assert_cmpint(guest_mem_write_u8(&m.mem, fb + 720 * 5120 - 1, 1), ==, 0);
    g_assert_cmpint(guest_mem_write_u8(&m.mem, fb + 720 * 5120 + 100000, 1), ==, 0);
    display_refresh(d);
    /* 3686399 is in page 3682304..3686399: row 719 from x 256 (3681280 + 1024) */
    assert_damage(&r, 256, 719, 1024, 1);
    /* the pixels the guest wrote are what the surface shows */
    uint32_t *px = pixman_image_get_data(surface());
    g_assert_cmphex(px[5 * 1280 + 10], ==, 0x00ff0000);

    display_remove_listener(d, l);
    g_assert_false(m.mem.slots[m.bochs->vram_slot].logging);
    pixman_region32_fini(&r.damage);
    dh_machine_fini(&m);
}

/* ---------------------------------------------------------------- the VRAM BAR as memory */

static unsigned slot_changes;
static void count_slot_changed(void *opaque, unsigned index)
{
    g_assert_cmpuint(index, ==, m.bochs->vram_slot);
    slot_changes++;
}
static const struct guest_memory_listener counting_listener = {count_slot_changed, NULL};

static void test_bar_move_remaps_memory(void)
{
    setup_mapped();
    dh_log_capture();
    m.mem.listener = &counting_listener;
    slot_changes = 0;
    uint64_t a = bar(0);
    g_assert_true(guest_memory_is_ram(&m.mem, a, 16 * MiB));
    g_assert_cmpint(guest_mem_write_u32(&m.mem, a + 0x1000, 0xdeadbeef), ==, 0);

    /* move it 32 MiB up, as a guest rewriting the BAR does (decoding stays on) */
    uint64_t b = a + 32 * MiB;
    cfg_write(PCI_BASE_ADDRESS_0, (uint32_t)b, 4);
    g_assert_cmphex(bar(0), ==, b);
    g_assert_cmpuint(slot_changes, ==, 2); /* unmapped, mapped */
    g_assert_false(guest_memory_is_ram(&m.mem, a, 4));
    g_assert_true(guest_memory_is_ram(&m.mem, b, 16 * MiB));
    uint32_t v = 0;
    g_assert_cmpint(guest_mem_read_u32(&m.mem, b + 0x1000, &v), ==, 0);
    g_assert_cmphex(v, ==, 0xdeadbeef);
    g_assert_cmpint(guest_mem_read_u32(&m.mem, a + 0x1000, &v), ==, -EFAULT);

    /* memory decoding off: no longer memory anywhere; on again: back at b */
    uint16_t cmd = (uint16_t)cfg_read(PCI_COMMAND, 2);
    cfg_write(PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY, 2);
    g_assert_false(guest_memory_is_ram(&m.mem, b, 4));
    g_assert_cmpuint(slot_changes, ==, 3);
    cfg_write(PCI_COMMAND, cmd, 2);
    g_assert_true(guest_memory_is_ram(&m.mem, b, 4));
    g_assert_cmpuint(slot_changes, ==, 4);

    /* a BAR over guest RAM is refused: the slot stays unmapped and RAM stays RAM */
    cfg_write(PCI_BASE_ADDRESS_0, 0, 4);
    g_assert_false(guest_memory_is_ram(&m.mem, b, 4));
    cfg_write(PCI_BASE_ADDRESS_0, 0x1000000, 4);
    g_assert_true(guest_mem_map_read(&m.mem, 0x1000000, 4) == m.mem.base + 0x1000000);
    dh_assert_logged("BAR0 at 0x1000000 (0x1000000 bytes) overlaps RAM; left unmapped");

    /* the bus path (before a CPU sees the new map) reaches the same bytes */
    cfg_write(PCI_BASE_ADDRESS_0, (uint32_t)a, 4);
    g_assert_cmphex(dh_mmio_read(&m, a + 0x1000, 4), ==, 0xdeadbeef);
    m.mem.listener = NULL;
    dh_machine_fini(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/bochs-display/pci/identity", test_pci_identity);
    g_test_add_func("/bochs-display/pci/bar-sizing", test_pci_bar_sizing);
    g_test_add_func("/bochs-display/pci/vram-scales-with-resolution", test_pci_vram_scales_with_resolution);
    g_test_add_func("/bochs-display/dispi/id-memory-getcaps", test_dispi_id_and_memory);
    g_test_add_func("/bochs-display/dispi/round-trip-and-partial-writes", test_dispi_round_trip);
    g_test_add_func("/bochs-display/qext/size-and-endianness", test_qext_registers);
    g_test_add_func("/bochs-display/edid/valid-through-mmio", test_edid_through_mmio);
    g_test_add_func("/bochs-display/edid/valid-for-all-sizes", test_edid_sizes);
    g_test_add_func("/bochs-display/resolution/validation-and-vram", test_resolution_validation);
    g_test_add_func("/bochs-display/mode/linux-sequence-and-pan", test_mode_linux_sequence);
    g_test_add_func("/bochs-display/mode/hostile-values-stay-inside-vram", test_mode_hostile_values);
    g_test_add_func("/bochs-display/mode/reset-turns-display-off", test_reset_turns_display_off);
    g_test_add_func("/bochs-display/damage/framebuffer-writes-become-rows",
                    test_damage_from_framebuffer_writes);
    g_test_add_func("/bochs-display/bar/move-remaps-memory", test_bar_move_remaps_memory);
    return g_test_run();
}
