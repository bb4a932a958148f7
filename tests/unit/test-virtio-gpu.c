/* Proves virtio-gpu as a guest driver sees it, through the test virtio driver on the test accelerator: PCI
 * identity and configuration space, every 2D command's happy path (resources, backing in several pieces,
 * transfers of a known pattern, scanouts, flushes becoming exact damage, display info and EDID, fences), the
 * cursor queue, resize requests raising the display event, and hostile values (ids, rectangles, offsets,
 * backing entries, short buffers, the memory cap, unref of the scanout resource) each answered with the right
 * error and nothing worse. */
#include <string.h>

#include <glib.h>

#include "device_harness.h"
#include "pci_host.h"
#include "virtio_driver.h"
#include "virtio_gpu.h"

#define QSIZE VIRTIO_GPU_QUEUE_SIZE
#define REQ 0x200000ULL      /* request */
#define ENTRIES 0x210000ULL  /* backing entries (up to 256 KiB) */
#define RESP 0x260000ULL     /* response */
#define BACKING 0x1000000ULL /* pixel memory the guest hands over */
#define F_EDID F(VIRTIO_GPU_F_EDID)

static struct virtio_gpu *gpu;
static uint16_t next_desc;

static void setup_cfg(const struct virtio_gpu_config *cfg, bool init)
{
    static const struct machine_device *const board[] = {&pci_host_device};
    dh_log_capture();
    dh_machine_init(&vd_m, board, G_N_ELEMENTS(board), 1, 64 * MiB);
    dh_record_irqs(&vd_m, &vd_rec, DH_ANY_GSI | DH_MSI);
    char *err = NULL;
    gpu = virtio_gpu_new(&vd_m, SLOT, cfg, &err);
    g_assert_null(err);
    g_assert_nonnull(gpu);
    gpu->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 100000); /* every line, for vd_assert_logged */
    g_assert_cmpint(pci_host_assign_resources(vd_m.pci), ==, 0);
    vd_probe();
    vd_msix_enable();
    if (init) {
        g_assert_cmphex(vd_init_queues(F(VIRTIO_F_VERSION_1) | F_EDID, true, 2, QSIZE, QSIZE), ==,
                        F(VIRTIO_F_VERSION_1) | F_EDID);
        next_desc = 0;
    }
}

static void setup(void)
{
    const struct virtio_gpu_config cfg = {.width = 800, .height = 600};
    setup_cfg(&cfg, true);
}

static void teardown(void)
{
    virtio_gpu_free(gpu);
    gpu = NULL;
    dh_machine_fini(&vd_m);
}

static struct display *disp(void)
{
    return &gpu->scanouts[0].display;
}

/* ---------------------------------------------------------------- the driver side */

struct seg {
    uint64_t addr;
    uint32_t len;
    bool write;
};

/* Puts one chain on queue n, kicks and checks it completed with one interrupt (vector n + 1); returns the
 * used length. */
static uint32_t submit(unsigned n, const struct seg *segs, unsigned nsegs)
{
    struct vd_queue *x = &vd_q[n];
    uint16_t head = next_desc % QSIZE;
    for (unsigned i = 0; i < nsegs; i++) {
        uint16_t d = (uint16_t)((next_desc + i) % QSIZE);
        uint16_t flags = (segs[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < nsegs ? VIRTQ_DESC_F_NEXT : 0);
        vd_set_desc(x->desc, d, segs[i].addr, segs[i].len, flags, (uint16_t)((d + 1) % QSIZE));
    }
    next_desc = (uint16_t)(next_desc + nsegs);
    uint16_t before = vd_used_idx(x);
    vd_rec.nmsi = 0;
    vd_avail_add(x, head);
    vd_kick(n);
    g_assert_cmpuint(vd_used_idx(x), ==, (uint16_t)(before + 1));
    g_assert_cmpuint(vd_rec.nmsi, ==, 1);
    vd_assert_msi(0, n + 1);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    uint32_t id, len;
    uint64_t e = x->used + 4 + 8 * (uint64_t)(before % QSIZE);
    g_assert_cmpint(guest_mem_read_u32(&vd_m.mem, e, &id), ==, 0);
    g_assert_cmpint(guest_mem_read_u32(&vd_m.mem, e + 4, &len), ==, 0);
    g_assert_cmpuint(id, ==, head);
    return len;
}

static void hdr(uint8_t *b, uint32_t type)
{
    memset(b, 0, VIRTIO_GPU_HDR_SIZE);
    le32_store(b, type);
}

/* A control request of len bytes with a resp_len-byte response buffer; returns the response type and checks
 * the used length is what a response of that type takes. */
static uint32_t ctrl_resp(const uint8_t *req, uint32_t len, uint32_t resp_len)
{
    g_assert_cmpint(guest_mem_write(&vd_m.mem, REQ, req, len), ==, 0);
    g_assert_cmpint(guest_mem_fill(&vd_m.mem, RESP, 0xee, resp_len), ==, 0);
    const struct seg segs[] = {{REQ, len, false}, {RESP, resp_len, true}};
    uint32_t used = submit(VIRTIO_GPU_CTRLQ, segs, 2);
    uint32_t type;
    g_assert_cmpint(guest_mem_read_u32(&vd_m.mem, RESP, &type), ==, 0);
    if (type == VIRTIO_GPU_RESP_OK_DISPLAY_INFO)
        g_assert_cmpuint(used, ==, VIRTIO_GPU_DISPLAY_INFO_SIZE);
    else if (type == VIRTIO_GPU_RESP_OK_EDID)
        g_assert_cmpuint(used, ==, VIRTIO_GPU_RESP_EDID_SIZE);
    else
        g_assert_cmpuint(used, ==, VIRTIO_GPU_HDR_SIZE);
    return type;
}

static uint32_t ctrl(const uint8_t *req, uint32_t len)
{
    return ctrl_resp(req, len, VIRTIO_GPU_HDR_SIZE);
}

static uint32_t create_2d(uint32_t id, uint32_t format, uint32_t w, uint32_t h)
{
    uint8_t b[VIRTIO_GPU_RESOURCE_CREATE_2D_SIZE];
    hdr(b, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
    le32_store(b + 24, id);
    le32_store(b + 28, format);
    le32_store(b + 32, w);
    le32_store(b + 36, h);
    return ctrl(b, sizeof(b));
}

static uint32_t simple_id_cmd(uint32_t type, uint32_t id)
{
    uint8_t b[32];
    hdr(b, type);
    le32_store(b + 24, id);
    le32_store(b + 28, 0);
    return ctrl(b, sizeof(b));
}

static uint32_t unref(uint32_t id)
{
    return simple_id_cmd(VIRTIO_GPU_CMD_RESOURCE_UNREF, id);
}

static uint32_t detach(uint32_t id)
{
    return simple_id_cmd(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, id);
}

/* Attach with nr_entries = n_claimed and the first n entries written (in their own descriptor). */
static uint32_t attach_raw(uint32_t id, uint32_t n_claimed, const uint64_t *gpa, const uint32_t *len,
                           unsigned n)
{
    uint8_t b[VIRTIO_GPU_ATTACH_BACKING_SIZE];
    hdr(b, VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING);
    le32_store(b + 24, id);
    le32_store(b + 28, n_claimed);
    g_assert_cmpint(guest_mem_write(&vd_m.mem, REQ, b, sizeof(b)), ==, 0);
    for (unsigned i = 0; i < n; i++) {
        uint8_t e[16] = {0};
        le64_store(e, gpa[i]);
        le32_store(e + 8, len[i]);
        g_assert_cmpint(guest_mem_write(&vd_m.mem, ENTRIES + 16ULL * i, e, 16), ==, 0);
    }
    const struct seg segs[] = {{REQ, sizeof(b), false}, {ENTRIES, 16 * n, false}, {RESP, 24, true}};
    uint32_t used = submit(VIRTIO_GPU_CTRLQ, n ? segs : (const struct seg[]){segs[0], segs[2]}, n ? 3 : 2);
    g_assert_cmpuint(used, ==, VIRTIO_GPU_HDR_SIZE);
    uint32_t type;
    g_assert_cmpint(guest_mem_read_u32(&vd_m.mem, RESP, &type), ==, 0);
    return type;
}

static uint32_t attach(uint32_t id, const uint64_t *gpa, const uint32_t *len, unsigned n)
{
    return attach_raw(id, n, gpa, len, n);
}

static uint32_t transfer(uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint64_t offset)
{
    uint8_t b[VIRTIO_GPU_TRANSFER_TO_HOST_2D_SIZE];
    hdr(b, VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D);
    le32_store(b + 24, x);
    le32_store(b + 28, y);
    le32_store(b + 32, w);
    le32_store(b + 36, h);
    le64_store(b + 40, offset);
    le32_store(b + 48, id);
    le32_store(b + 52, 0);
    return ctrl(b, sizeof(b));
}

static uint32_t set_scanout(uint32_t sid, uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
    uint8_t b[VIRTIO_GPU_SET_SCANOUT_SIZE];
    hdr(b, VIRTIO_GPU_CMD_SET_SCANOUT);
    le32_store(b + 24, x);
    le32_store(b + 28, y);
    le32_store(b + 32, w);
    le32_store(b + 36, h);
    le32_store(b + 40, sid);
    le32_store(b + 44, id);
    return ctrl(b, sizeof(b));
}

static uint32_t flush(uint32_t id, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
    uint8_t b[VIRTIO_GPU_RESOURCE_FLUSH_SIZE];
    hdr(b, VIRTIO_GPU_CMD_RESOURCE_FLUSH);
    le32_store(b + 24, x);
    le32_store(b + 28, y);
    le32_store(b + 32, w);
    le32_store(b + 36, h);
    le32_store(b + 40, id);
    le32_store(b + 44, 0);
    return ctrl(b, sizeof(b));
}

static void cursor_cmd(uint32_t type, uint32_t sid, int32_t x, int32_t y, uint32_t id, uint32_t hx,
                       uint32_t hy)
{
    uint8_t b[VIRTIO_GPU_CURSOR_SIZE] = {0};
    hdr(b, type);
    le32_store(b + 24, sid);
    le32_store(b + 28, (uint32_t)x);
    le32_store(b + 32, (uint32_t)y);
    le32_store(b + 40, id);
    le32_store(b + 44, hx);
    le32_store(b + 48, hy);
    g_assert_cmpint(guest_mem_write(&vd_m.mem, REQ, b, sizeof(b)), ==, 0);
    const struct seg segs[] = {{REQ, sizeof(b), false}};
    g_assert_cmpuint(submit(VIRTIO_GPU_CURSORQ, segs, 1), ==, 0);
}

/* The pattern pixel (x, y) of a resource, as the x8r8g8b8 word the guest stores. */
static uint32_t pattern(uint32_t x, uint32_t y)
{
    return (x & 0xff) << 16 | (y & 0xff) << 8 | ((7 * x + 3 * y) & 0xff);
}

/* Backing for a w x h resource in three pieces at scattered places (sizes not multiples of a row), filled
 * with the pattern; returns the entries through gpa/len. */
static void scattered_backing(uint32_t w, uint32_t h, uint64_t gpa[3], uint32_t len[3], uint32_t salt)
{
    uint32_t total = w * h * 4;
    len[0] = total / 3 + 4;
    len[1] = total / 3 - 8;
    len[2] = total - len[0] - len[1];
    gpa[0] = BACKING + 0x600000;
    gpa[1] = BACKING + 0x100000;
    gpa[2] = BACKING + 0xb00000 + 4;
    uint8_t *linear = g_malloc(total);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            le32_store(linear + 4 * ((size_t)y * w + x), pattern(x, y) ^ salt);
    uint32_t off = 0;
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(guest_mem_write(&vd_m.mem, gpa[i], linear + off, len[i]), ==, 0);
        off += len[i];
    }
    g_free(linear);
}

static uint32_t surface_pixel(pixman_image_t *s, int x, int y)
{
    const uint8_t *row = (const uint8_t *)pixman_image_get_data(s) + (size_t)y * pixman_image_get_stride(s);
    return le32_load(row + 4 * x) & 0xffffff;
}

/* The display's damage is exactly one rectangle. */
static void assert_damage(int x, int y, int w, int h)
{
    pixman_region32_t *r = &disp()->damage;
    g_assert_cmpint(pixman_region32_n_rects(r), ==, 1);
    const pixman_box32_t *b = pixman_region32_extents(r);
    g_assert_cmpint(b->x1, ==, x);
    g_assert_cmpint(b->y1, ==, y);
    g_assert_cmpint(b->x2 - b->x1, ==, w);
    g_assert_cmpint(b->y2 - b->y1, ==, h);
}

/* Resource id with a w x h pattern resource shown on scanout 0. */
static void shown_resource(uint32_t id, uint32_t w, uint32_t h)
{
    uint64_t gpa[3];
    uint32_t len[3];
    g_assert_cmphex(create_2d(id, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, w, h), ==, VIRTIO_GPU_RESP_OK_NODATA);
    scattered_backing(w, h, gpa, len, 0);
    g_assert_cmphex(attach(id, gpa, len, 3), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(transfer(id, 0, 0, w, h, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(set_scanout(0, id, 0, 0, w, h), ==, VIRTIO_GPU_RESP_OK_NODATA);
}

/* ---------------------------------------------------------------- identity, display info, EDID */

static void test_identity(void)
{
    const struct virtio_gpu_config cfg = {0};
    setup_cfg(&cfg, false);
    g_assert_cmphex(vd_cfg_read(PCI_VENDOR_ID, 2), ==, 0x1af4);
    g_assert_cmphex(vd_cfg_read(PCI_DEVICE_ID, 2), ==, 0x1050);
    g_assert_cmphex(vd_cfg_read(PCI_REVISION_ID, 4) >> 8, ==, 0x038000);
    g_assert_cmphex(vd_device_features(), ==, VIRTIO_CORE_FEATURES | F_EDID);
    g_assert_cmpuint(vd_dev.device.length, ==, VIRTIO_GPU_CONFIG_SIZE);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_GPU_CFG_EVENTS_READ, 4), ==, 0);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_GPU_CFG_NUM_SCANOUTS, 4), ==, 1);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_GPU_CFG_NUM_CAPSETS, 4), ==, 0);
    /* default preferred mode, and the display the front ends find */
    g_assert_cmpuint(gpu->scanouts[0].width, ==, 1024);
    g_assert_cmpuint(gpu->scanouts[0].height, ==, 768);
    g_assert_true(display_find(&vd_m, "video0", 0) == disp());
    g_assert_true(display_find(&vd_m, "virtio-gpu", 0) == disp());
    g_assert_null(display_find(&vd_m, "video0", 1));
    g_assert_null(disp()->surface);
    teardown();
}

static void assert_display_info(unsigned w, unsigned h)
{
    uint8_t b[VIRTIO_GPU_HDR_SIZE];
    hdr(b, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
    g_assert_cmphex(ctrl_resp(b, sizeof(b), VIRTIO_GPU_DISPLAY_INFO_SIZE), ==,
                    VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    uint8_t r[VIRTIO_GPU_DISPLAY_INFO_SIZE];
    g_assert_cmpint(guest_mem_read(&vd_m.mem, RESP, r, sizeof(r)), ==, 0);
    const uint8_t *p = r + VIRTIO_GPU_HDR_SIZE;
    g_assert_cmpuint(le32_load(p), ==, 0);
    g_assert_cmpuint(le32_load(p + 4), ==, 0);
    g_assert_cmpuint(le32_load(p + 8), ==, w);
    g_assert_cmpuint(le32_load(p + 12), ==, h);
    g_assert_cmpuint(le32_load(p + 16), ==, 1); /* enabled */
    for (unsigned i = 1; i < VIRTIO_GPU_MAX_SCANOUTS; i++)
        for (unsigned k = 0; k < 24; k++)
            g_assert_cmphex(p[24 * i + k], ==, 0);
}

static void assert_edid(unsigned w, unsigned h)
{
    uint8_t b[VIRTIO_GPU_GET_EDID_SIZE];
    hdr(b, VIRTIO_GPU_CMD_GET_EDID);
    le32_store(b + 24, 0);
    le32_store(b + 28, 0);
    g_assert_cmphex(ctrl_resp(b, sizeof(b), VIRTIO_GPU_RESP_EDID_SIZE), ==, VIRTIO_GPU_RESP_OK_EDID);
    uint8_t r[VIRTIO_GPU_RESP_EDID_SIZE], want[EDID_LENGTH];
    g_assert_cmpint(guest_mem_read(&vd_m.mem, RESP, r, sizeof(r)), ==, 0);
    g_assert_cmpuint(le32_load(r + VIRTIO_GPU_HDR_SIZE), ==, EDID_LENGTH);
    edid_build(want, w, h);
    g_assert_cmpmem(r + VIRTIO_GPU_HDR_SIZE + 8, EDID_LENGTH, want, EDID_LENGTH);
    /* the first detailed timing is w x h */
    const uint8_t *d = r + VIRTIO_GPU_HDR_SIZE + 8 + 54;
    g_assert_cmpuint(d[2] | (d[4] >> 4) << 8, ==, w);
    g_assert_cmpuint(d[5] | (d[7] >> 4) << 8, ==, h);
    for (unsigned i = VIRTIO_GPU_HDR_SIZE + 8 + EDID_LENGTH; i < sizeof(r); i++)
        g_assert_cmphex(r[i], ==, 0);
}

static void test_display_info_and_edid(void)
{
    setup();
    assert_display_info(800, 600);
    assert_edid(800, 600);
    /* a scanout the device does not have */
    uint8_t b[VIRTIO_GPU_GET_EDID_SIZE];
    hdr(b, VIRTIO_GPU_CMD_GET_EDID);
    le32_store(b + 24, 1);
    le32_store(b + 28, 0);
    g_assert_cmphex(ctrl_resp(b, sizeof(b), VIRTIO_GPU_RESP_EDID_SIZE), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
    vd_assert_logged("GET_EDID");
    teardown();
}

static void test_edid_needs_feature(void)
{
    const struct virtio_gpu_config cfg = {.width = 800, .height = 600};
    setup_cfg(&cfg, false);
    g_assert_cmphex(vd_init_queues(F(VIRTIO_F_VERSION_1), true, 2, QSIZE, QSIZE), ==, F(VIRTIO_F_VERSION_1));
    next_desc = 0;
    uint8_t b[VIRTIO_GPU_GET_EDID_SIZE] = {0};
    hdr(b, VIRTIO_GPU_CMD_GET_EDID);
    g_assert_cmphex(ctrl_resp(b, sizeof(b), VIRTIO_GPU_RESP_EDID_SIZE), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    assert_display_info(800, 600); /* display info does not need it */
    teardown();
}

/* ---------------------------------------------------------------- the 2D path */

static void test_draw_and_flush(void)
{
    setup();
    const uint32_t W = 100, H = 50;
    shown_resource(7, W, H);
    pixman_image_t *s = disp()->surface;
    g_assert_nonnull(s);
    g_assert_cmpint(pixman_image_get_width(s), ==, W);
    g_assert_cmpint(pixman_image_get_height(s), ==, H);
    g_assert_cmphex(pixman_image_get_format(s), ==, PIXMAN_x8r8g8b8);
    for (uint32_t y = 0; y < H; y++)
        for (uint32_t x = 0; x < W; x++)
            g_assert_cmphex(surface_pixel(s, (int)x, (int)y), ==, pattern(x, y));
    uint64_t gen = disp()->surface_gen;

    /* a new frame in the guest's memory reaches the surface only where it is transferred */
    uint64_t gpa[3];
    uint32_t len[3];
    scattered_backing(W, H, gpa, len, 0x5a5a5a);
    g_assert_cmphex(transfer(7, 10, 5, 20, 7, 5 * W * 4 + 10 * 4), ==, VIRTIO_GPU_RESP_OK_NODATA);
    for (uint32_t y = 0; y < H; y++)
        for (uint32_t x = 0; x < W; x++) {
            bool in = x >= 10 && x < 30 && y >= 5 && y < 12;
            g_assert_cmphex(surface_pixel(s, (int)x, (int)y), ==, pattern(x, y) ^ (in ? 0x5a5a5a : 0));
        }
    /* the flushed rectangle is the damage, exactly */
    pixman_region32_clear(&disp()->damage);
    g_assert_cmphex(flush(7, 10, 5, 20, 7), ==, VIRTIO_GPU_RESP_OK_NODATA);
    assert_damage(10, 5, 20, 7);
    pixman_region32_clear(&disp()->damage);
    g_assert_cmphex(flush(7, 0, 0, W, H), ==, VIRTIO_GPU_RESP_OK_NODATA);
    assert_damage(0, 0, W, H);
    /* setting the same scanout again keeps the surface */
    g_assert_cmphex(set_scanout(0, 7, 0, 0, W, H), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(disp()->surface_gen, ==, gen);
    /* a flush of a resource nobody shows damages nothing */
    g_assert_cmphex(create_2d(8, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16, 16), ==, VIRTIO_GPU_RESP_OK_NODATA);
    pixman_region32_clear(&disp()->damage);
    g_assert_cmphex(flush(8, 0, 0, 16, 16), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_false(pixman_region32_not_empty(&disp()->damage));
    /* scanout off */
    g_assert_cmphex(set_scanout(0, 0, 0, 0, 0, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_null(disp()->surface);
    g_assert_cmpuint(gpu->guest_errors, ==, 0);
    teardown();
}

static void test_scanout_part(void)
{
    setup();
    const uint32_t W = 64, H = 48;
    shown_resource(3, W, H);
    g_assert_cmphex(set_scanout(0, 3, 10, 8, 40, 20), ==, VIRTIO_GPU_RESP_OK_NODATA);
    pixman_image_t *s = disp()->surface;
    g_assert_cmpint(pixman_image_get_width(s), ==, 40);
    g_assert_cmpint(pixman_image_get_height(s), ==, 20);
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 40; x++)
            g_assert_cmphex(surface_pixel(s, x, y), ==, pattern((uint32_t)x + 10, (uint32_t)y + 8));
    /* damage is the flushed rectangle cut to the shown part, in scanout coordinates */
    pixman_region32_clear(&disp()->damage);
    g_assert_cmphex(flush(3, 0, 0, 20, 15), ==, VIRTIO_GPU_RESP_OK_NODATA);
    assert_damage(0, 0, 10, 7);
    pixman_region32_clear(&disp()->damage);
    g_assert_cmphex(flush(3, 45, 20, 19, 28), ==, VIRTIO_GPU_RESP_OK_NODATA);
    assert_damage(35, 12, 5, 8);
    pixman_region32_clear(&disp()->damage);
    g_assert_cmphex(flush(3, 0, 0, 10, 48), ==, VIRTIO_GPU_RESP_OK_NODATA); /* left of the shown part */
    g_assert_false(pixman_region32_not_empty(&disp()->damage));
    teardown();
}

static void test_formats(void)
{
    setup();
    /* Each format named by its bytes in memory: a pixel with red 0x11, green 0x22, blue 0x33 must read back
     * as that colour whatever the order. */
    static const struct {
        uint32_t format;
        char order[5];
    } formats[] = {
        {VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, "BGRA"}, {VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, "BGRX"},
        {VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM, "ARGB"}, {VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM, "XRGB"},
        {VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM, "RGBA"}, {VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM, "XBGR"},
        {VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM, "ABGR"}, {VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM, "RGBX"},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(formats); i++) {
        uint32_t id = 100 + i;
        g_assert_cmphex(create_2d(id, formats[i].format, 16, 16), ==, VIRTIO_GPU_RESP_OK_NODATA);
        uint8_t px[16 * 16 * 4];
        for (unsigned p = 0; p < 16 * 16; p++)
            for (unsigned k = 0; k < 4; k++) {
                char c = formats[i].order[k];
                px[4 * p + k] = c == 'R' ? 0x11 : c == 'G' ? 0x22 : c == 'B' ? 0x33 : 0xff;
            }
        uint64_t gpa = BACKING + 0x10000ULL * i;
        uint32_t len = sizeof(px);
        g_assert_cmpint(guest_mem_write(&vd_m.mem, gpa, px, sizeof(px)), ==, 0);
        g_assert_cmphex(attach(id, &gpa, &len, 1), ==, VIRTIO_GPU_RESP_OK_NODATA);
        g_assert_cmphex(transfer(id, 0, 0, 16, 16, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
        g_assert_cmphex(set_scanout(0, id, 0, 0, 16, 16), ==, VIRTIO_GPU_RESP_OK_NODATA);
        pixman_image_t *out = pixman_image_create_bits(PIXMAN_x8r8g8b8, 16, 16, NULL, 0);
        pixman_image_composite32(PIXMAN_OP_SRC, disp()->surface, NULL, out, 0, 0, 0, 0, 0, 0, 16, 16);
        g_assert_cmphex(surface_pixel(out, 5, 9), ==, 0x112233);
        pixman_image_unref(out);
    }
    /* an unknown format */
    g_assert_cmphex(create_2d(1, 5, 16, 16), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    teardown();
}

static void test_fences(void)
{
    setup();
    uint8_t b[VIRTIO_GPU_RESOURCE_CREATE_2D_SIZE];
    hdr(b, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
    le32_store(b + 4, VIRTIO_GPU_FLAG_FENCE);
    le64_store(b + 8, 0x1122334455667788ULL);
    le32_store(b + 16, 7);
    le32_store(b + 24, 1);
    le32_store(b + 28, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
    le32_store(b + 32, 32);
    le32_store(b + 36, 32);
    g_assert_cmphex(ctrl(b, sizeof(b)), ==, VIRTIO_GPU_RESP_OK_NODATA);
    uint8_t r[VIRTIO_GPU_HDR_SIZE];
    g_assert_cmpint(guest_mem_read(&vd_m.mem, RESP, r, sizeof(r)), ==, 0);
    g_assert_cmphex(le32_load(r + 4), ==, VIRTIO_GPU_FLAG_FENCE);
    g_assert_cmphex(le64_load(r + 8), ==, 0x1122334455667788ULL);
    g_assert_cmpuint(le32_load(r + 16), ==, 7);
    /* the fence comes back with an error too */
    g_assert_cmphex(ctrl(b, sizeof(b)), ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmpint(guest_mem_read(&vd_m.mem, RESP, r, sizeof(r)), ==, 0);
    g_assert_cmphex(le32_load(r + 4), ==, VIRTIO_GPU_FLAG_FENCE);
    g_assert_cmphex(le64_load(r + 8), ==, 0x1122334455667788ULL);
    /* without the flag, no fence */
    le32_store(b + 4, 0);
    le32_store(b + 24, 2);
    g_assert_cmphex(ctrl(b, sizeof(b)), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpint(guest_mem_read(&vd_m.mem, RESP, r, sizeof(r)), ==, 0);
    g_assert_cmphex(le32_load(r + 4), ==, 0);
    g_assert_cmphex(le64_load(r + 8), ==, 0);
    teardown();
}

/* ---------------------------------------------------------------- cursor */

/* Linux's cursors are dumb buffers, which it creates as B8G8R8X8 resources and fills with ARGB8888: the
 * padding byte is the cursor's alpha. */
static void test_cursor_x8_alpha(void)
{
    setup();
    g_assert_cmphex(create_2d(11, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 64, 64), ==, VIRTIO_GPU_RESP_OK_NODATA);
    uint8_t px[64 * 64 * 4];
    for (unsigned p = 0; p < 64 * 64; p++) /* an opaque 8x8 box at the top left, transparent elsewhere */
        le32_store(px + 4 * p, p % 64 < 8 && p / 64 < 8 ? 0xff000000u | pattern(p % 64, p / 64) : 0);
    uint64_t gpa = BACKING;
    uint32_t len = sizeof(px);
    g_assert_cmpint(guest_mem_write(&vd_m.mem, gpa, px, sizeof(px)), ==, 0);
    g_assert_cmphex(attach(11, &gpa, &len, 1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(transfer(11, 0, 0, 64, 64, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    cursor_cmd(VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 50, 60, 11, 1, 2);
    const struct display_cursor *c = &disp()->cursor;
    g_assert_nonnull(c->image);
    const uint8_t *data = (const uint8_t *)pixman_image_get_data(c->image);
    int stride = pixman_image_get_stride(c->image);
    g_assert_cmphex(le32_load(data + 4 * 3 + (size_t)5 * stride), ==, 0xff000000u | pattern(3, 5));
    /* transparent, not opaque black */
    g_assert_cmphex(le32_load(data + 4 * 20 + (size_t)30 * stride), ==, 0);
    g_assert_cmpint(c->x, ==, 51);
    g_assert_cmpint(c->y, ==, 62);
    teardown();
}

static void test_cursor(void)
{
    setup();
    g_assert_cmphex(create_2d(9, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 64, 64), ==, VIRTIO_GPU_RESP_OK_NODATA);
    uint8_t px[64 * 64 * 4];
    for (unsigned p = 0; p < 64 * 64; p++)
        le32_store(px + 4 * p, 0x80000000u | pattern(p % 64, p / 64));
    uint64_t gpa = BACKING;
    uint32_t len = sizeof(px);
    g_assert_cmpint(guest_mem_write(&vd_m.mem, gpa, px, sizeof(px)), ==, 0);
    g_assert_cmphex(attach(9, &gpa, &len, 1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(transfer(9, 0, 0, 64, 64, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);

    uint64_t gen = disp()->cursor_gen;
    cursor_cmd(VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 100, 200, 9, 3, 4);
    const struct display_cursor *c = &disp()->cursor;
    g_assert_cmpuint(disp()->cursor_gen, >, gen);
    g_assert_nonnull(c->image);
    g_assert_cmpint(pixman_image_get_width(c->image), ==, 64);
    g_assert_cmphex(pixman_image_get_format(c->image), ==, PIXMAN_a8r8g8b8);
    for (int y = 0; y < 64; y += 7)
        for (int x = 0; x < 64; x += 5)
            g_assert_cmphex(le32_load((uint8_t *)pixman_image_get_data(c->image) +
                                      (size_t)y * pixman_image_get_stride(c->image) + 4 * x),
                            ==, 0x80000000u | pattern((uint32_t)x, (uint32_t)y));
    g_assert_cmpint(c->hot_x, ==, 3);
    g_assert_cmpint(c->hot_y, ==, 4);
    g_assert_cmpint(c->x, ==, 103); /* the hotspot's position */
    g_assert_cmpint(c->y, ==, 204);
    g_assert_true(c->visible);

    cursor_cmd(VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 10, 20, 0, 0, 0);
    g_assert_cmpint(c->x, ==, 13);
    g_assert_cmpint(c->y, ==, 24);
    g_assert_true(c->visible);
    /* the cursor is a copy: unref of its resource leaves it */
    g_assert_cmphex(unref(9), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_nonnull(c->image);

    /* hostile: unknown scanout, unknown resource, a resource too big for a cursor, a short request */
    pixman_image_t *before = c->image;
    cursor_cmd(VIRTIO_GPU_CMD_UPDATE_CURSOR, 5, 0, 0, 9, 0, 0);
    cursor_cmd(VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 0, 0, 9, 0, 0);
    vd_assert_logged("no resource 9");
    g_assert_cmphex(create_2d(10, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 65, 64), ==, VIRTIO_GPU_RESP_OK_NODATA);
    cursor_cmd(VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 0, 0, 10, 0, 0);
    vd_assert_logged("is 65x64");
    cursor_cmd(VIRTIO_GPU_CMD_GET_DISPLAY_INFO, 0, 0, 0, 0, 0, 0);
    vd_assert_logged("not a cursor command");
    const struct seg shortseg[] = {{REQ, 20, false}};
    g_assert_cmpuint(submit(VIRTIO_GPU_CURSORQ, shortseg, 1), ==, 0);
    vd_assert_logged("cursor request of 20 bytes");
    g_assert_true(c->image == before);
    g_assert_cmpint(c->x, ==, 13);
    /* extreme positions do not overflow */
    cursor_cmd(VIRTIO_GPU_CMD_MOVE_CURSOR, 0, INT32_MAX, INT32_MIN, 0, 0, 0);
    g_assert_cmpint(c->x, ==, INT32_MAX);
    g_assert_cmpint(c->y, ==, INT32_MIN + 4);
    /* resource 0: no cursor */
    cursor_cmd(VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 1, 2, 0, 0, 0);
    g_assert_null(c->image);
    g_assert_false(c->visible);
    teardown();
}

/* ---------------------------------------------------------------- resize requests */

static void test_resize(void)
{
    setup();
    vd_rec.nmsi = 0;
    g_assert_true(display_request_resize(disp(), 1280, 720));
    g_assert_cmpuint(vd_rec.nmsi, ==, 1);
    vd_assert_msi(0, 0); /* the configuration change vector */
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_GPU_CFG_EVENTS_READ, 4), ==, VIRTIO_GPU_EVENT_DISPLAY);
    assert_display_info(1280, 720);
    assert_edid(1280, 720);
    /* the driver acknowledges the event */
    dh_mmio_write(&vd_m, vd_dev.bar[vd_dev.device.bar] + vd_dev.device.offset + VIRTIO_GPU_CFG_EVENTS_CLEAR,
                  4, VIRTIO_GPU_EVENT_DISPLAY);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_GPU_CFG_EVENTS_READ, 4), ==, 0);
    /* the new mode reaches the display when the guest sets a scanout of that size */
    shown_resource(1, 1280, 720);
    g_assert_cmpint(pixman_image_get_width(disp()->surface), ==, 1280);
    /* sizes the device cannot offer are refused without bothering the guest */
    vd_rec.nmsi = 0;
    g_assert_false(display_request_resize(disp(), 100, 100));
    g_assert_false(display_request_resize(disp(), 5000, 700));
    g_assert_cmpuint(vd_rec.nmsi, ==, 0);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_GPU_CFG_EVENTS_READ, 4), ==, 0);
    assert_display_info(1280, 720);
    /* a device reset keeps the preferred mode */
    vd_set_status(0);
    g_assert_null(disp()->surface);
    g_assert_cmpuint(gpu->scanouts[0].width, ==, 1280);
    teardown();
}

/* ---------------------------------------------------------------- hostile values */

static void test_hostile_resources(void)
{
    setup();
    g_assert_cmphex(create_2d(0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16, 16), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    vd_assert_logged("resource id 0");
    g_assert_cmphex(create_2d(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16, 16), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(create_2d(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16, 16), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    vd_assert_logged("exists already");
    g_assert_cmphex(create_2d(2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0, 16), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(create_2d(2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0x40000000, 0x40000000), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(create_2d(2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0xffffffff, 1), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(unref(42), ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(unref(0), ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);

    /* scanouts */
    g_assert_cmphex(set_scanout(1, 1, 0, 0, 16, 16), ==, VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
    g_assert_cmphex(set_scanout(0xffffffff, 0, 0, 0, 0, 0), ==, VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
    g_assert_cmphex(set_scanout(0, 42, 0, 0, 16, 16), ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(set_scanout(0, 1, 0, 0, 17, 16), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(set_scanout(0, 1, 0xfffffff0, 0, 0x20, 16), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(set_scanout(0, 1, 8, 8, 0xfffffffc, 8), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(set_scanout(0, 1, 0, 0, 0, 16), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_null(disp()->surface);

    /* flushes */
    g_assert_cmphex(flush(42, 0, 0, 1, 1), ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(flush(1, 0, 0, 16, 17), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(flush(1, 0xffffffff, 0, 2, 1), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);

    /* transfers */
    g_assert_cmphex(transfer(1, 0, 0, 16, 16, 0), ==, VIRTIO_GPU_RESP_ERR_UNSPEC); /* no backing */
    vd_assert_logged("has no backing");
    uint64_t gpa = BACKING;
    uint32_t len = 16 * 16 * 4 + 64;
    g_assert_cmphex(attach(1, &gpa, &len, 1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(transfer(42, 0, 0, 1, 1, 0), ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(transfer(1, 0, 0, 17, 16, 0), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(transfer(1, 8, 0xfffffff8, 8, 0x10, 0), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(transfer(1, 0, 0, 16, 16, 0xffffffffffffff00ULL), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(transfer(1, 0, 0, 16, 16, 65), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    vd_assert_logged("reads past its");
    g_assert_cmphex(transfer(1, 0, 0, 16, 16, 64), ==, VIRTIO_GPU_RESP_OK_NODATA); /* the last byte fits */
    g_assert_cmphex(transfer(1, 3, 3, 0, 0, 0xffffffffffffffffULL), ==,
                    VIRTIO_GPU_RESP_OK_NODATA); /* empty */

    /* unknown and unsupported commands */
    uint8_t b[64] = {0};
    hdr(b, 0x0200); /* CTX_CREATE: 3D is not offered */
    g_assert_cmphex(ctrl(b, 64), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    hdr(b, 0xdeadbeef);
    g_assert_cmphex(ctrl(b, 24), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    vd_assert_logged("unknown command");
    hdr(b, VIRTIO_GPU_CMD_GET_CAPSET_INFO);
    g_assert_cmphex(ctrl(b, 32), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    hdr(b, VIRTIO_GPU_CMD_UPDATE_CURSOR); /* a cursor command on the control queue */
    g_assert_cmphex(ctrl(b, 56), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    teardown();
}

static void test_hostile_backing(void)
{
    setup();
    g_assert_cmphex(create_2d(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 32, 32), ==, VIRTIO_GPU_RESP_OK_NODATA);
    uint64_t hostmem = gpu->hostmem;
    uint64_t gpa[2] = {BACKING, BACKING + 0x10000};
    uint32_t len[2] = {2048, 2048};
    g_assert_cmphex(attach(42, gpa, len, 2), ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    /* outside RAM, across its end, wrapping around */
    uint64_t bad_gpa[] = {64 * MiB, 64 * MiB - 0x400, 0xfffffffffffff000ULL, 0xfee00000ULL};
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_gpa); i++) {
        uint64_t g2[2] = {BACKING, bad_gpa[i]};
        g_assert_cmphex(attach(1, g2, len, 2), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    }
    vd_assert_logged("is not guest RAM");
    /* a zero-length entry */
    uint32_t zl[2] = {4096, 0};
    g_assert_cmphex(attach(1, gpa, zl, 2), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    /* too many entries, none, more claimed than sent */
    g_assert_cmphex(attach_raw(1, VIRTIO_GPU_MAX_BACKING_ENTRIES + 1, gpa, len, 2), ==,
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(attach_raw(1, 0xffffffff, gpa, len, 2), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(attach_raw(1, 0, gpa, len, 0), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_cmphex(attach_raw(1, 1000, gpa, len, 2), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    vd_assert_logged("1000 entries in a request of");
    /* less backing than the resource has pixels */
    uint32_t small[2] = {2048, 2044};
    g_assert_cmphex(attach(1, gpa, small, 2), ==, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    g_assert_null(
        ((struct virtio_gpu_resource *)g_hash_table_lookup(gpu->resources, GUINT_TO_POINTER(1)))->backing);
    g_assert_cmpuint(gpu->hostmem, ==, hostmem);
    /* the most entries allowed work; attaching twice is refused without leaking the first list */
    static uint64_t many_gpa[VIRTIO_GPU_MAX_BACKING_ENTRIES];
    static uint32_t many_len[VIRTIO_GPU_MAX_BACKING_ENTRIES];
    for (unsigned i = 0; i < VIRTIO_GPU_MAX_BACKING_ENTRIES; i++) {
        many_gpa[i] = BACKING + 4ULL * i;
        many_len[i] = 4;
    }
    g_assert_cmphex(attach(1, many_gpa, many_len, VIRTIO_GPU_MAX_BACKING_ENTRIES), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    uint64_t attached = gpu->hostmem;
    g_assert_cmpuint(attached, >, hostmem);
    g_assert_cmphex(attach(1, gpa, len, 2), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    vd_assert_logged("has backing already");
    g_assert_cmpuint(gpu->hostmem, ==, attached);
    /* 16384 four-byte pieces in order are one linear buffer */
    for (unsigned i = 0; i < 32 * 32; i++)
        g_assert_cmpint(guest_mem_write_u32(&vd_m.mem, BACKING + 4ULL * i, pattern(i % 32, i / 32)), ==, 0);
    g_assert_cmphex(transfer(1, 0, 0, 32, 32, 0), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(set_scanout(0, 1, 0, 0, 32, 32), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(surface_pixel(disp()->surface, 31, 31), ==, pattern(31, 31));
    /* detach, then transfers have nothing to read; a second detach is an error */
    g_assert_cmphex(detach(1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(gpu->hostmem, ==, hostmem);
    g_assert_cmphex(detach(1), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    g_assert_cmphex(detach(42), ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(transfer(1, 0, 0, 32, 32, 0), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    /* the scanout keeps showing the host copy */
    g_assert_cmphex(surface_pixel(disp()->surface, 31, 31), ==, pattern(31, 31));
    teardown();
}

static void test_short_buffers(void)
{
    setup();
    /* a request shorter than a header: ERR_UNSPEC, no fence */
    uint8_t b[64] = {0};
    hdr(b, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
    g_assert_cmphex(ctrl(b, 8), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    vd_assert_logged("shorter than a header");
    /* shorter than its command */
    hdr(b, VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
    le32_store(b + 24, 1);
    g_assert_cmphex(ctrl(b, 36), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    vd_assert_logged("request of 36 bytes, needs 40");
    g_assert_cmpuint(g_hash_table_size(gpu->resources), ==, 0);
    /* a response buffer too small for display info gets a bare error header */
    hdr(b, VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
    g_assert_cmphex(ctrl_resp(b, 24, 100), ==, VIRTIO_GPU_RESP_ERR_UNSPEC);
    vd_assert_logged("the response takes 408");
    /* no room for even a header: completed with nothing written */
    g_assert_cmpint(guest_mem_write(&vd_m.mem, REQ, b, 24), ==, 0);
    g_assert_cmpint(guest_mem_write_u32(&vd_m.mem, RESP, 0x12345678), ==, 0);
    const struct seg tiny[] = {{REQ, 24, false}, {RESP, 10, true}};
    g_assert_cmpuint(submit(VIRTIO_GPU_CTRLQ, tiny, 2), ==, 0);
    uint32_t v;
    g_assert_cmpint(guest_mem_read_u32(&vd_m.mem, RESP, &v), ==, 0);
    g_assert_cmphex(v, ==, 0x12345678);
    /* no response buffer at all */
    const struct seg none[] = {{REQ, 24, false}};
    g_assert_cmpuint(submit(VIRTIO_GPU_CTRLQ, none, 1), ==, 0);
    /* the device still works */
    assert_display_info(800, 600);
    teardown();
}

static void test_unref_scanout_resource(void)
{
    setup();
    shown_resource(5, 40, 30);
    /* a front end holds the surface, as screendump or VNC would */
    pixman_image_t *held = display_get_surface(disp());
    g_assert_nonnull(held);
    g_assert_cmphex(unref(5), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_null(disp()->surface);
    g_assert_cmpuint(gpu->scanouts[0].resource_id, ==, 0);
    g_assert_cmphex(flush(5, 0, 0, 40, 30), ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    g_assert_cmphex(set_scanout(0, 5, 0, 0, 40, 30), ==, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
    /* the held image still reads the last frame (valgrind checks this is not freed memory) */
    g_assert_cmphex(surface_pixel(held, 39, 29), ==, pattern(39, 29));
    pixman_image_unref(held);
    /* the same with a partial scanout, and with a reset instead of unref */
    shown_resource(6, 40, 30);
    g_assert_cmphex(set_scanout(0, 6, 4, 4, 20, 20), ==, VIRTIO_GPU_RESP_OK_NODATA);
    held = display_get_surface(disp());
    vd_set_status(0);
    g_assert_null(disp()->surface);
    g_assert_cmpuint(g_hash_table_size(gpu->resources), ==, 0);
    g_assert_cmpuint(gpu->hostmem, ==, 0);
    g_assert_cmphex(surface_pixel(held, 0, 0), ==, pattern(4, 4));
    pixman_image_unref(held);
    teardown();
}

static void test_memory_cap(void)
{
    const struct virtio_gpu_config cfg = {.width = 800, .height = 600, .hostmem_max = 4 * MiB};
    setup_cfg(&cfg, true);
    g_assert_cmphex(create_2d(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 1000, 1000), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmphex(create_2d(2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 1000, 1000), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    vd_assert_logged("MiB cap");
    g_assert_cmphex(create_2d(2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16384, 16384), ==,
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    g_assert_cmphex(unref(1), ==, VIRTIO_GPU_RESP_OK_NODATA);
    g_assert_cmpuint(gpu->hostmem, ==, 0);
    g_assert_cmphex(create_2d(2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 1000, 1000), ==,
                    VIRTIO_GPU_RESP_OK_NODATA);
    /* many small resources hit the cap through their bookkeeping */
    unsigned made = 0;
    for (uint32_t id = 10; id < 1000; id++)
        if (create_2d(id, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 1, 1) == VIRTIO_GPU_RESP_OK_NODATA)
            made++;
    g_assert_cmpuint(made, <, 200);
    g_assert_cmpuint(gpu->hostmem, <=, 4 * MiB);
    teardown();
}

static void test_machine_device(void)
{
    static const struct machine_device *const board[] = {&pci_host_device, &virtio_gpu_device};
    struct machine m;
    const struct machine_config mc = {
        .ram_size = 64 * MiB, .cpus = 1, .display_width = 1280, .display_height = 800};
    dh_machine_init_cfg(&m, &mc, board, G_N_ELEMENTS(board));
    struct virtio_gpu *g = virtio_gpu_at(&m, VIRTIO_GPU_SLOT);
    g_assert_nonnull(g);
    g_assert_cmpuint(g->num_scanouts, ==, 1);
    g_assert_cmpuint(g->scanouts[0].width, ==, 1280);
    g_assert_cmpuint(g->scanouts[0].height, ==, 800);
    struct display *d = display_find(&m, NULL, 0);
    g_assert_true(d == &g->scanouts[0].display);
    g_assert_cmpstr(d->name, ==, "video0");
    g_assert_cmpstr(d->model, ==, "virtio-gpu");
    g_assert_null(virtio_gpu_at(&m, 3));
    machine_reset(&m);
    dh_machine_fini(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-gpu/identity", test_identity);
    g_test_add_func("/virtio-gpu/display-info-edid", test_display_info_and_edid);
    g_test_add_func("/virtio-gpu/edid-needs-feature", test_edid_needs_feature);
    g_test_add_func("/virtio-gpu/draw-and-flush", test_draw_and_flush);
    g_test_add_func("/virtio-gpu/scanout-part", test_scanout_part);
    g_test_add_func("/virtio-gpu/formats", test_formats);
    g_test_add_func("/virtio-gpu/fences", test_fences);
    g_test_add_func("/virtio-gpu/cursor", test_cursor);
    g_test_add_func("/virtio-gpu/cursor-x8-alpha", test_cursor_x8_alpha);
    g_test_add_func("/virtio-gpu/resize", test_resize);
    g_test_add_func("/virtio-gpu/hostile-resources", test_hostile_resources);
    g_test_add_func("/virtio-gpu/hostile-backing", test_hostile_backing);
    g_test_add_func("/virtio-gpu/short-buffers", test_short_buffers);
    g_test_add_func("/virtio-gpu/unref-scanout-resource", test_unref_scanout_resource);
    g_test_add_func("/virtio-gpu/memory-cap", test_memory_cap);
    g_test_add_func("/virtio-gpu/machine-device", test_machine_device);
    return g_test_run();
}
