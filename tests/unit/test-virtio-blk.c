/* virtio-blk on a real machine, driven by the test virtio driver: identity and configuration, reads and
 * writes against raw and qcow2 images, flush, GET_ID, discard and write zeroes read back, read-only disks,
 * hostile requests (each answered with IOERR/UNSUPP or handed back, the device staying usable), the in-flight
 * bound, reset with requests in flight, the machine device and the --disk parser. I/O completes on the worker
 * thread: the test waits for used-ring entries with the machine lock released. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "block_test_util.h"
#include "log.h"
#include "pci_host.h"
#include "virtio_blk.h"
#include "virtio_driver.h"

#define DISK_SIZE (8 * MiB)
#define DISK_SECTORS (DISK_SIZE / 512)
#define QSIZE VIRTIO_BLK_QUEUE_SIZE
#define HDR(i) (0x300000ULL + (uint64_t)(i)*0x40) /* request header, status byte at +0x20 */
#define STATUS(i) (HDR(i) + 0x20)
#define BUF(i) (0x800000ULL + (uint64_t)(i)*0x40000) /* 256 KiB data buffers */
#define INDIRECT_TABLE 0x3f0000ULL
#define WANT_ALL (F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_INDIRECT_DESC) | 0xffffffULL)

static char *tmp_dir;
static struct virtio_blk *disk;
static uint16_t next_desc;

/* ---------------------------------------------------------------- set-up */

static char *tmp_path(const char *name)
{
    return g_build_filename(tmp_dir, name, NULL);
}

/* A raw image whose sector s holds bytes (s * 3 + k) & 0xff. */
static char *make_raw(const char *name)
{
    char *path = tmp_path(name);
    g_autofree uint8_t *data = g_malloc(DISK_SIZE);
    for (uint64_t i = 0; i < DISK_SIZE; i++)
        data[i] = (uint8_t)((i / 512) * 3 + i % 512);
    g_assert_true(g_file_set_contents(path, (const char *)data, DISK_SIZE, NULL));
    return path;
}

static char *make_qcow2(const char *name)
{
    char *path = tmp_path(name);
    block_test_create(path, &(struct block_create_options){.format = "qcow2", .size = DISK_SIZE});
    return path;
}

static uint8_t raw_byte(uint64_t off)
{
    return (uint8_t)((off / 512) * 3 + off % 512);
}

/* The driver's initialisation sequence for the one queue; returns the negotiated features. */
static uint64_t blk_init(uint64_t want, uint16_t size)
{
    uint64_t f = vd_init_queues(want, true, 1, QSIZE, size);
    next_desc = 0;
    /* Interrupts off unless a test counts them (the recorder holds DH_MSIS messages). */
    vd_mem_w16(vd_q[0].avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
    return f;
}

/* A machine with the PCI host bridge and one disk at SLOT, probed and initialised with `want`. */
static void setup_disk(const struct virtio_blk_conf *conf, uint64_t want)
{
    static const struct machine_device *const board[] = {&pci_host_device};
    dh_log_capture();
    dh_machine_init(&vd_m, board, G_N_ELEMENTS(board), 1, 64 * MiB);
    dh_record_irqs(&vd_m, &vd_rec, DH_ANY_GSI | DH_MSI);
    char *err = NULL;
    disk = virtio_blk_new(&vd_m, SLOT, 0, conf, &err);
    g_assert_null(err);
    g_assert_nonnull(disk);
    g_assert_cmpint(pci_host_assign_resources(vd_m.pci), ==, 0);
    vd_probe();
    vd_msix_enable();
    blk_init(want, QSIZE);
}

static void setup(const char *path, const char *format, bool ro, bool unmap)
{
    struct virtio_blk_conf conf = {
        .file = (char *)path, .format = (char *)format, .read_only = ro, .discard_unmap = unmap};
    setup_disk(&conf, WANT_ALL);
}

static void teardown(void)
{
    virtio_blk_free(disk);
    disk = NULL;
    dh_machine_fini(&vd_m);
    log_set_fd(STDERR_FILENO);
}

/* ---------------------------------------------------------------- requests */

struct seg {
    uint64_t addr;
    uint32_t len;
    bool writable;
};

/* Puts a chain into the descriptor table (after the previous one) and makes it available; returns its head.
 */
static uint16_t add_chain(const struct seg *s, unsigned n)
{
    struct vd_queue *x = &vd_q[0];
    uint16_t head = next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t cur = (uint16_t)((next_desc + i) % x->size), nxt = (uint16_t)((next_desc + i + 1) % x->size);
        uint16_t flags =
            (uint16_t)((s[i].writable ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        vd_set_desc(x->desc, cur, s[i].addr, s[i].len, flags, nxt);
    }
    next_desc = (uint16_t)((next_desc + n) % x->size);
    vd_avail_add(x, head);
    return head;
}

static void put_header(unsigned i, uint32_t type, uint64_t sector)
{
    uint8_t h[16];
    le32_store(h, type);
    le32_store(h + 4, 0);
    le64_store(h + 8, sector);
    g_assert_cmpint(guest_mem_write(&vd_m.mem, HDR(i), h, sizeof(h)), ==, 0);
    g_assert_cmpint(guest_mem_write_u8(&vd_m.mem, STATUS(i), 0xee), ==, 0);
}

/* Request i: header, one data buffer (readable for writes, writable for reads and GET_ID), status byte. */
static uint16_t submit(unsigned i, uint32_t type, uint64_t sector, uint64_t buf, uint32_t len)
{
    put_header(i, type, sector);
    bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
    struct seg s[3] = {{HDR(i), 16, false}, {buf, len, in}, {STATUS(i), 1, true}};
    if (!len) {
        s[1] = s[2];
        return add_chain(s, 2);
    }
    return add_chain(s, 3);
}

static uint8_t status_of(unsigned i)
{
    uint8_t v;
    g_assert_cmpint(guest_mem_read_u8(&vd_m.mem, STATUS(i), &v), ==, 0);
    return v;
}

/* Waits (machine lock released, so the worker can complete) until the used index reaches `want`. */
static void wait_used(uint16_t want)
{
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (vd_used_idx(&vd_q[0]) != want) {
        g_assert_cmpint(g_get_monotonic_time(), <, end);
        machine_unlock(&vd_m);
        g_usleep(50);
        machine_lock(&vd_m);
    }
}

/* One request from submission to its used entry: returns the status byte and checks the used length. */
static uint8_t run(uint32_t type, uint64_t sector, uint64_t buf, uint32_t len, uint32_t used_len)
{
    uint16_t idx = vd_used_idx(&vd_q[0]);
    uint16_t head = submit(0, type, sector, buf, len);
    vd_kick(0);
    wait_used((uint16_t)(idx + 1));
    vd_assert_used(&vd_q[0], idx, head, used_len);
    return status_of(0);
}

static uint8_t do_read(uint64_t sector, uint64_t buf, uint32_t len)
{
    return run(VIRTIO_BLK_T_IN, sector, buf, len, len + 1);
}

static uint8_t do_write(uint64_t sector, uint64_t buf, uint32_t len)
{
    return run(VIRTIO_BLK_T_OUT, sector, buf, len, 1);
}

static void fill(uint64_t gpa, uint32_t len, uint8_t seed)
{
    g_autofree uint8_t *b = g_malloc(len);
    for (uint32_t k = 0; k < len; k++)
        b[k] = (uint8_t)(seed + k * 13 + k / 512);
    g_assert_cmpint(guest_mem_write(&vd_m.mem, gpa, b, len), ==, 0);
}

static void assert_filled(uint64_t gpa, uint32_t len, uint8_t seed)
{
    g_autofree uint8_t *b = g_malloc(len);
    g_assert_cmpint(guest_mem_read(&vd_m.mem, gpa, b, len), ==, 0);
    for (uint32_t k = 0; k < len; k++)
        if (b[k] != (uint8_t)(seed + k * 13 + k / 512))
            g_error("byte %u of 0x%llx is 0x%02x, expected 0x%02x", k, (unsigned long long)gpa, b[k],
                    (uint8_t)(seed + k * 13 + k / 512));
}

static void assert_guest_zero(uint64_t gpa, uint32_t len)
{
    g_autofree uint8_t *b = g_malloc(len);
    g_assert_cmpint(guest_mem_read(&vd_m.mem, gpa, b, len), ==, 0);
    for (uint32_t k = 0; k < len; k++)
        if (b[k])
            g_error("byte %u of 0x%llx is 0x%02x, expected 0", k, (unsigned long long)gpa, b[k]);
}

/* Discard / write-zeroes request i with n segments (sector, count, flags). */
static uint8_t run_ranges(uint32_t type, const uint64_t (*r)[3], unsigned n)
{
    uint8_t payload[16 * 32];
    for (unsigned k = 0; k < n; k++) {
        le64_store(payload + 16 * k, r[k][0]);
        le32_store(payload + 16 * k + 8, (uint32_t)r[k][1]);
        le32_store(payload + 16 * k + 12, (uint32_t)r[k][2]);
    }
    g_assert_cmpint(guest_mem_write(&vd_m.mem, BUF(60), payload, 16 * n), ==, 0);
    uint16_t idx = vd_used_idx(&vd_q[0]);
    put_header(0, type, 0);
    struct seg s[3] = {{HDR(0), 16, false}, {BUF(60), 16 * n, false}, {STATUS(0), 1, true}};
    uint16_t head = add_chain(s, 3);
    vd_kick(0);
    wait_used((uint16_t)(idx + 1));
    vd_assert_used(&vd_q[0], idx, head, 1);
    return status_of(0);
}

static void assert_usable(void)
{
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    g_assert_cmpuint(do_read(1, BUF(1), 512), ==, VIRTIO_BLK_S_OK);
}

/* ---------------------------------------------------------------- identity and configuration */

static void test_probe_and_config(void)
{
    g_autofree char *path = make_raw("probe.img");
    setup(path, "raw", false, false);
    g_assert_cmphex(vd_cfg_read(PCI_VENDOR_ID, 2), ==, 0x1af4);
    g_assert_cmphex(vd_cfg_read(PCI_DEVICE_ID, 2), ==, 0x1042);
    g_assert_cmphex(vd_cfg_read(PCI_REVISION_ID, 4) >> 8, ==, 0x010000);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_NUMQ, 2), ==, 1);
    g_assert_cmphex(vd_dev.device.length, ==, VIRTIO_BLK_CFG_SIZE);
    uint64_t f = vd_device_features();
    uint64_t want = F(VIRTIO_BLK_F_SEG_MAX) | F(VIRTIO_BLK_F_BLK_SIZE) | F(VIRTIO_BLK_F_FLUSH) |
                    F(VIRTIO_BLK_F_TOPOLOGY) | F(VIRTIO_BLK_F_WRITE_ZEROES);
    g_assert_cmphex(f & 0xffffff, ==, want); /* no RO, no DISCARD with discard=ignore */
    g_assert_cmphex(vd_driver_features() & 0xffffff, ==, want);
    g_assert_cmphex(vd_devcfg_rd(VIRTIO_BLK_CFG_CAPACITY, 8), ==, DISK_SECTORS);
    g_assert_cmphex(vd_devcfg_rd(VIRTIO_BLK_CFG_CAPACITY, 4), ==, DISK_SECTORS);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_SEG_MAX, 4), ==, QSIZE - 2);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_BLK_SIZE, 4), ==, 512);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_PHYSICAL_BLOCK_EXP, 1), ==, 3);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_ALIGNMENT_OFFSET, 1), ==, 0);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_MIN_IO_SIZE, 2), ==, 8);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_OPT_IO_SIZE, 4), ==, 0);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_NUM_QUEUES, 2), ==, 1);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4), ==, 1u << 22);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4), ==, 16);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT, 4), ==, 8);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, 4), ==, 1u << 22);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 4), ==, 16);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1), ==, 0);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_SIZE - 4, 4), ==, 0);
    dh_assert_logged("virtio-blk0:");
    teardown();

    /* discard=unmap offers DISCARD and may_unmap; a qcow2 image suggests its cluster as the optimal size. */
    g_autofree char *q = make_qcow2("probe.qcow2");
    setup(q, "qcow2", false, true);
    g_assert_cmphex(vd_device_features() & F(VIRTIO_BLK_F_DISCARD), !=, 0);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1), ==, 1);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_BLK_CFG_OPT_IO_SIZE, 4), ==, 65536 / 512);
    g_assert_cmphex(vd_devcfg_rd(VIRTIO_BLK_CFG_CAPACITY, 8), ==, DISK_SECTORS);
    teardown();
}

static void test_get_id(void)
{
    g_autofree char *path = make_raw("id.img");
    setup(path, "raw", false, false);
    g_assert_cmpint(guest_mem_fill(&vd_m.mem, BUF(2), 0x55, 64), ==, 0);
    g_assert_cmpuint(run(VIRTIO_BLK_T_GET_ID, 0, BUF(2), 20, 21), ==, VIRTIO_BLK_S_OK);
    char id[21] = {0};
    g_assert_cmpint(guest_mem_read(&vd_m.mem, BUF(2), id, 20), ==, 0);
    g_assert_cmpstr(id, ==, "deskvm-disk0");
    assert_guest_zero(BUF(2) + 12, 8);
    uint8_t after;
    g_assert_cmpint(guest_mem_read_u8(&vd_m.mem, BUF(2) + 20, &after), ==, 0);
    g_assert_cmphex(after, ==, 0x55);
    /* A short buffer gets what fits. */
    g_assert_cmpint(guest_mem_fill(&vd_m.mem, BUF(2), 0x55, 64), ==, 0);
    g_assert_cmpuint(run(VIRTIO_BLK_T_GET_ID, 0, BUF(2), 6, 7), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpint(guest_mem_read(&vd_m.mem, BUF(2), id, 7), ==, 0);
    g_assert_cmpint(memcmp(id, "deskvm\x55", 7), ==, 0);
    teardown();
}

/* ---------------------------------------------------------------- reads and writes */

static void roundtrip(const char *path, const char *format, bool prefilled)
{
    setup(path, format, false, false);
    vd_mem_w16(vd_q[0].avail, 0);
    unsigned msi_before = vd_rec.nmsi;
    /* Read what the host put there. */
    if (prefilled) {
        g_assert_cmpuint(do_read(100, BUF(0), 4096), ==, VIRTIO_BLK_S_OK);
        g_autofree uint8_t *b = g_malloc(4096);
        g_assert_cmpint(guest_mem_read(&vd_m.mem, BUF(0), b, 4096), ==, 0);
        for (unsigned k = 0; k < 4096; k++)
            g_assert_cmphex(b[k], ==, raw_byte(100 * 512 + k));
    } else {
        g_assert_cmpuint(do_read(100, BUF(0), 4096), ==, VIRTIO_BLK_S_OK);
        assert_guest_zero(BUF(0), 4096);
    }
    g_assert_cmpuint(vd_rec.nmsi, ==, msi_before + 1);
    vd_assert_msi(vd_rec.nmsi - 1, 1);
    vd_mem_w16(vd_q[0].avail, VIRTQ_AVAIL_F_NO_INTERRUPT);

    /* A write across a qcow2 cluster boundary (sector 127/128) in three data segments, then read back. */
    fill(BUF(1), 3 * 4096, 0x21);
    uint16_t idx = vd_used_idx(&vd_q[0]);
    put_header(0, VIRTIO_BLK_T_OUT, 120);
    struct seg s[5] = {{HDR(0), 16, false},
                       {BUF(1), 4096, false},
                       {BUF(1) + 4096, 512, false},
                       {BUF(1) + 4608, 3 * 4096 - 4608, false},
                       {STATUS(0), 1, true}};
    uint16_t head = add_chain(s, 5);
    vd_kick(0);
    wait_used((uint16_t)(idx + 1));
    vd_assert_used(&vd_q[0], idx, head, 1);
    g_assert_cmpuint(status_of(0), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpuint(run(VIRTIO_BLK_T_FLUSH, 0, 0, 0, 1), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpint(guest_mem_fill(&vd_m.mem, BUF(2), 0, 3 * 4096), ==, 0);
    /* Read it back into two segments of the writable side, the status byte sharing the second. */
    idx = vd_used_idx(&vd_q[0]);
    put_header(3, VIRTIO_BLK_T_IN, 120);
    g_assert_cmpint(guest_mem_write_u8(&vd_m.mem, BUF(2) + 3 * 4096, 0xee), ==, 0);
    struct seg r[3] = {{HDR(3), 16, false}, {BUF(2), 1000, true}, {BUF(2) + 1000, 3 * 4096 - 1000 + 1, true}};
    head = add_chain(r, 3);
    vd_kick(0);
    wait_used((uint16_t)(idx + 1));
    vd_assert_used(&vd_q[0], idx, head, 3 * 4096 + 1);
    assert_filled(BUF(2), 3 * 4096, 0x21);
    uint8_t st;
    g_assert_cmpint(guest_mem_read_u8(&vd_m.mem, BUF(2) + 3 * 4096, &st), ==, 0);
    g_assert_cmpuint(st, ==, VIRTIO_BLK_S_OK);
    /* The last sector of the disk, and a zero-length read right at its end. */
    fill(BUF(3), 512, 0x77);
    g_assert_cmpuint(do_write(DISK_SECTORS - 1, BUF(3), 512), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpuint(do_read(DISK_SECTORS - 1, BUF(4), 512), ==, VIRTIO_BLK_S_OK);
    assert_filled(BUF(4), 512, 0x77);
    g_assert_cmpuint(run(VIRTIO_BLK_T_IN, DISK_SECTORS, BUF(4), 0, 1), ==, VIRTIO_BLK_S_OK);
    teardown();

    /* On the image itself after close. */
    GError *err = NULL;
    struct block_image *img = block_test_open(path, format, BLOCK_OPEN_READ_ONLY);
    g_autofree uint8_t *b = g_malloc(3 * 4096);
    g_assert_cmpint(block_read(img, 120 * 512, b, 3 * 4096, &err), ==, 0);
    for (uint32_t k = 0; k < 3 * 4096; k++)
        g_assert_cmphex(b[k], ==, (uint8_t)(0x21 + k * 13 + k / 512));
    g_assert_cmpint(block_read(img, 119 * 512, b, 512, &err), ==, 0);
    for (uint32_t k = 0; k < 512; k++)
        g_assert_cmphex(b[k], ==, prefilled ? raw_byte(119 * 512 + k) : 0);
    if (!strcmp(format, "qcow2"))
        block_test_assert_clean(img);
    block_close(img, NULL);
}

static void test_raw_roundtrip(void)
{
    g_autofree char *path = make_raw("rw.img");
    roundtrip(path, "raw", true);
}

static void test_qcow2_roundtrip(void)
{
    g_autofree char *path = make_qcow2("rw.qcow2");
    roundtrip(path, "qcow2", false);
}

/* Many requests in flight at once, all completed, each with its own data. */
static void test_many_in_flight(void)
{
    g_autofree char *path = make_raw("many.img");
    setup(path, "raw", false, false);
    const unsigned n = 48;
    for (unsigned i = 0; i < n; i++)
        submit(i, VIRTIO_BLK_T_IN, 16 * i, BUF(i), 8192);
    vd_kick(0);
    wait_used((uint16_t)n);
    g_assert_cmpuint(vd_rec.nmsi, ==, 0);
    for (unsigned i = 0; i < n; i++) {
        g_assert_cmpuint(status_of(i), ==, VIRTIO_BLK_S_OK);
        uint8_t b[8192];
        g_assert_cmpint(guest_mem_read(&vd_m.mem, BUF(i), b, sizeof(b)), ==, 0);
        for (unsigned k = 0; k < sizeof(b); k += 511)
            g_assert_cmphex(b[k], ==, raw_byte(16 * i * 512 + k));
    }
    teardown();
}

/* The driver negotiates no FLUSH: the device writes through; writes still land. And FLUSH itself works. */
static void test_flush(void)
{
    g_autofree char *path = make_raw("flush.img");
    struct virtio_blk_conf conf = {.file = path, .format = "raw"};
    setup_disk(&conf, WANT_ALL & ~F(VIRTIO_BLK_F_FLUSH));
    g_assert_cmphex(vd_driver_features() & F(VIRTIO_BLK_F_FLUSH), ==, 0);
    fill(BUF(0), 1024, 0x42);
    g_assert_cmpuint(do_write(8, BUF(0), 1024), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpuint(run(VIRTIO_BLK_T_FLUSH, 0, 0, 0, 1), ==, VIRTIO_BLK_S_OK);
    int fd = open(path, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    uint8_t b[1024];
    g_assert_cmpint(pread(fd, b, sizeof(b), 8 * 512), ==, sizeof(b));
    close(fd);
    for (unsigned k = 0; k < sizeof(b); k++)
        g_assert_cmphex(b[k], ==, (uint8_t)(0x42 + k * 13 + k / 512));
    teardown();
}

/* ---------------------------------------------------------------- discard and write zeroes */

static void check_zeroing(const char *path, const char *format)
{
    setup(path, format, false, true);
    fill(BUF(0), 64 * 1024, 0x10);
    g_assert_cmpuint(do_write(256, BUF(0), 64 * 1024), ==, VIRTIO_BLK_S_OK);
    /* Discard 64 KiB aligned (a whole qcow2 cluster), write zeroes in two segments, one with UNMAP. */
    const uint64_t discard[][3] = {{256, 128, 0}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_DISCARD, discard, 1), ==, VIRTIO_BLK_S_OK);
    fill(BUF(0), 64 * 1024, 0x30);
    g_assert_cmpuint(do_write(512, BUF(0), 64 * 1024), ==, VIRTIO_BLK_S_OK);
    const uint64_t zero[][3] = {{512, 8, 0}, {600, 16, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_WRITE_ZEROES, zero, 2), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpuint(do_read(256, BUF(1), 64 * 1024), ==, VIRTIO_BLK_S_OK);
    assert_guest_zero(BUF(1), 64 * 1024);
    g_assert_cmpuint(do_read(512, BUF(2), 64 * 1024), ==, VIRTIO_BLK_S_OK);
    assert_guest_zero(BUF(2), 8 * 512);
    g_autofree uint8_t *b = g_malloc(64 * 1024);
    g_assert_cmpint(guest_mem_read(&vd_m.mem, BUF(2), b, 64 * 1024), ==, 0);
    for (uint32_t k = 8 * 512; k < 64 * 1024; k++) {
        bool zeroed = k >= 88 * 512 && k < 104 * 512;
        g_assert_cmphex(b[k], ==, zeroed ? 0 : (uint8_t)(0x30 + k * 13 + k / 512));
    }
    /* Flags the type does not have, limits, ranges. */
    const uint64_t unmap_discard[][3] = {{0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_DISCARD, unmap_discard, 1), ==, VIRTIO_BLK_S_UNSUPP);
    const uint64_t bad_flag[][3] = {{0, 8, 2}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_WRITE_ZEROES, bad_flag, 1), ==, VIRTIO_BLK_S_UNSUPP);
    const uint64_t beyond[][3] = {{DISK_SECTORS - 4, 8, 0}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_WRITE_ZEROES, beyond, 1), ==, VIRTIO_BLK_S_IOERR);
    const uint64_t wrap[][3] = {{UINT64_MAX - 2, 8, 0}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_DISCARD, wrap, 1), ==, VIRTIO_BLK_S_IOERR);
    const uint64_t too_long[][3] = {{0, (1u << 22) + 1, 0}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_WRITE_ZEROES, too_long, 1), ==, VIRTIO_BLK_S_IOERR);
    uint64_t many[17][3] = {{0}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_DISCARD, (const uint64_t(*)[3])many, 17), ==,
                     VIRTIO_BLK_S_IOERR);
    assert_usable();
    teardown();

    GError *err = NULL;
    struct block_image *img = block_test_open(path, format, BLOCK_OPEN_READ_ONLY);
    g_assert_cmpint(block_read(img, 600 * 512, b, 16 * 512, &err), ==, 0);
    for (uint32_t k = 0; k < 16 * 512; k++)
        g_assert_cmphex(b[k], ==, 0);
    if (!strcmp(format, "qcow2"))
        block_test_assert_clean(img);
    block_close(img, NULL);
}

static void test_zeroing_raw(void)
{
    g_autofree char *path = make_raw("zero.img");
    check_zeroing(path, "raw");
}

static void test_zeroing_qcow2(void)
{
    g_autofree char *path = make_qcow2("zero.qcow2");
    check_zeroing(path, "qcow2");
}

/* discard=ignore: DISCARD is not offered and answered UNSUPP; write zeroes still zeroes. */
static void test_discard_ignore(void)
{
    g_autofree char *path = make_raw("ignore.img");
    setup(path, "raw", false, false);
    const uint64_t r[][3] = {{0, 8, 0}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_DISCARD, r, 1), ==, VIRTIO_BLK_S_UNSUPP);
    g_assert_cmpuint(do_read(0, BUF(0), 4096), ==, VIRTIO_BLK_S_OK);
    g_assert_cmphex(((uint8_t *)guest_mem_map_read(&vd_m.mem, BUF(0), 1))[0], ==, raw_byte(0));
    const uint64_t z[][3] = {{0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_WRITE_ZEROES, z, 1), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpuint(do_read(0, BUF(0), 4096), ==, VIRTIO_BLK_S_OK);
    assert_guest_zero(BUF(0), 4096);
    teardown();
}

/* ---------------------------------------------------------------- read-only disks */

static void test_read_only(void)
{
    g_autofree char *path = make_raw("ro.img");
    setup(path, "raw", true, true);
    uint64_t f = vd_device_features();
    g_assert_cmphex(f & F(VIRTIO_BLK_F_RO), !=, 0);
    g_assert_cmphex(f & (F(VIRTIO_BLK_F_DISCARD) | F(VIRTIO_BLK_F_WRITE_ZEROES)), ==, 0);
    fill(BUF(0), 4096, 0x99);
    g_assert_cmpuint(do_write(0, BUF(0), 4096), ==, VIRTIO_BLK_S_IOERR);
    dh_assert_logged("read-only");
    const uint64_t r[][3] = {{0, 8, 0}};
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_WRITE_ZEROES, r, 1), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(run_ranges(VIRTIO_BLK_T_DISCARD, r, 1), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(run(VIRTIO_BLK_T_FLUSH, 0, 0, 0, 1), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpuint(do_read(0, BUF(1), 4096), ==, VIRTIO_BLK_S_OK);
    for (unsigned k = 0; k < 4096; k += 7)
        g_assert_cmphex(((uint8_t *)guest_mem_map_read(&vd_m.mem, BUF(1), 4096))[k], ==, raw_byte(k));
    /* Another reader may share the image; a writer may not. */
    GError *err = NULL;
    struct block_image *other = block_open(path, "raw", BLOCK_OPEN_READ_ONLY, &err);
    g_assert_no_error(err);
    block_close(other, NULL);
    g_assert_null(block_open(path, "raw", 0, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    teardown();
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    for (unsigned k = 0; k < 4096; k++)
        g_assert_cmphex((uint8_t)data[k], ==, raw_byte(k));
}

/* ---------------------------------------------------------------- hostile requests */

static void test_hostile(void)
{
    g_autofree char *path = make_raw("hostile.img");
    setup(path, "raw", false, false);
    uint16_t idx;

    /* An 8-byte header. */
    idx = vd_used_idx(&vd_q[0]);
    put_header(0, VIRTIO_BLK_T_IN, 0);
    struct seg shorthdr[3] = {{HDR(0), 8, false}, {BUF(0), 512, true}, {STATUS(0), 1, true}};
    uint16_t head = add_chain(shorthdr, 3);
    vd_kick(0);
    wait_used((uint16_t)(idx + 1));
    vd_assert_used(&vd_q[0], idx, head, 1);
    g_assert_cmpuint(status_of(0), ==, VIRTIO_BLK_S_IOERR);
    dh_assert_logged("request header of 8 bytes");
    assert_usable();

    /* Past the end; sector + length past 2^64; sector * 512 past 2^64; an odd length. */
    g_assert_cmpuint(run(VIRTIO_BLK_T_IN, DISK_SECTORS, BUF(0), 512, 1), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(run(VIRTIO_BLK_T_IN, DISK_SECTORS - 1, BUF(0), 1024, 1), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(do_write(UINT64_MAX - 1, BUF(0), 1024), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(do_write(1ULL << 56, BUF(0), 512), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(run(VIRTIO_BLK_T_IN, 0, BUF(0), 700, 1), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(do_write(0, BUF(0), 513), ==, VIRTIO_BLK_S_IOERR);
    dh_assert_logged("write of 2 sectors at sector 18446744073709551614: beyond the disk");
    dh_assert_logged("write of 1 sectors at sector 72057594037927936: beyond the disk");
    dh_assert_logged("not a multiple of 512");
    /* Unknown types. */
    g_assert_cmpuint(run(99, 0, 0, 0, 1), ==, VIRTIO_BLK_S_UNSUPP);
    g_assert_cmpuint(run(2, 0, 0, 0, 1), ==, VIRTIO_BLK_S_UNSUPP);
    dh_assert_logged("unsupported request type 99");
    assert_usable();

    /* No status byte: a header alone, and a write whose "status" descriptor is device-readable. Nothing is
     * written anywhere; the buffers come back with length 0. */
    idx = vd_used_idx(&vd_q[0]);
    put_header(0, VIRTIO_BLK_T_OUT, 0);
    struct seg only_hdr[1] = {{HDR(0), 16, false}};
    head = add_chain(only_hdr, 1);
    vd_kick(0);
    wait_used((uint16_t)(idx + 1));
    vd_assert_used(&vd_q[0], idx, head, 0);
    fill(BUF(0), 512, 0x66);
    put_header(0, VIRTIO_BLK_T_OUT, 0);
    struct seg ro_status[3] = {{HDR(0), 16, false}, {BUF(0), 512, false}, {STATUS(0), 1, false}};
    head = add_chain(ro_status, 3);
    vd_kick(0);
    wait_used((uint16_t)(idx + 2));
    vd_assert_used(&vd_q[0], idx + 1, head, 0);
    g_assert_cmphex(status_of(0), ==, 0xee);
    dh_assert_logged("without a writable status byte");
    g_assert_cmpuint(do_read(0, BUF(1), 512), ==, VIRTIO_BLK_S_OK);
    g_assert_cmphex(((uint8_t *)guest_mem_map_read(&vd_m.mem, BUF(1), 1))[0], ==, raw_byte(0));

    /* More segments than seg_max, through an indirect table of header + 255 data + status. */
    idx = vd_used_idx(&vd_q[0]);
    put_header(0, VIRTIO_BLK_T_IN, 0);
    unsigned nseg = VIRTIO_BLK_SEG_MAX + 3;
    for (unsigned k = 0; k < nseg; k++) {
        uint64_t a = k == 0 ? HDR(0) : k == nseg - 1 ? STATUS(0) : BUF(0) + 512 * (k - 1);
        uint32_t len = k == 0 ? 16 : k == nseg - 1 ? 1 : 512;
        uint16_t flags = (uint16_t)((k ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < nseg ? VIRTQ_DESC_F_NEXT : 0));
        vd_set_desc(INDIRECT_TABLE, k, a, len, flags, (uint16_t)(k + 1));
    }
    vd_set_desc(vd_q[0].desc, next_desc, INDIRECT_TABLE, nseg * 16, VIRTQ_DESC_F_INDIRECT, 0);
    head = next_desc++;
    vd_avail_add(&vd_q[0], head);
    vd_kick(0);
    wait_used((uint16_t)(idx + 1));
    g_assert_cmpuint(status_of(0), ==, VIRTIO_BLK_S_IOERR); /* (its log line is past the rate limit) */
    /* seg_max data segments are fine. */
    idx = vd_used_idx(&vd_q[0]);
    nseg = VIRTIO_BLK_SEG_MAX + 2;
    vd_set_desc(INDIRECT_TABLE, nseg - 1, STATUS(0), 1, VIRTQ_DESC_F_WRITE, 0);
    vd_set_desc(vd_q[0].desc, next_desc, INDIRECT_TABLE, nseg * 16, VIRTQ_DESC_F_INDIRECT, 0);
    head = next_desc++;
    vd_avail_add(&vd_q[0], head);
    vd_kick(0);
    wait_used((uint16_t)(idx + 1));
    vd_assert_used(&vd_q[0], idx, head, VIRTIO_BLK_SEG_MAX * 512 + 1);
    g_assert_cmpuint(status_of(0), ==, VIRTIO_BLK_S_OK);
    assert_usable();
    teardown();
}

/* A driver that keeps re-offering the same heads cannot get more than a queue's worth of requests in flight:
 * while the worker cannot complete (the lock is held), the device stops taking chains off the ring. */
static void test_in_flight_bounded(void)
{
    g_autofree char *path = make_raw("bound.img");
    struct virtio_blk_conf conf = {.file = path, .format = "raw"};
    setup_disk(&conf, WANT_ALL);
    blk_init(WANT_ALL, 16);
    struct virtqueue *vq = virtio_pci_queue(virtio_blk_pci(disk), 0);
    uint16_t heads[5];
    for (unsigned i = 0; i < 5; i++)
        heads[i] = submit(i, VIRTIO_BLK_T_IN, i, BUF(i), 512);
    for (unsigned i = 5; i < 16; i++)
        vd_avail_add(&vd_q[0], heads[i % 5]);
    vd_kick(0);
    g_assert_cmpuint(vq->last_avail_idx, ==, 16);
    for (unsigned i = 0; i < 16; i++)
        vd_avail_add(&vd_q[0], heads[i % 5]);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 0); /* the lock is ours: nothing completed yet */
    g_assert_cmpuint(vq->last_avail_idx, ==, 16);
    wait_used(32);
    g_assert_cmpuint(vq->last_avail_idx, ==, 32);
    for (unsigned i = 0; i < 5; i++)
        g_assert_cmpuint(status_of(i), ==, VIRTIO_BLK_S_OK);
    assert_usable();
    teardown();
}

/* Device reset and machine reset with requests queued and executing: nothing completes into the old rings,
 * nothing leaks (valgrind), and the re-initialised device works. */
static void test_reset_in_flight(void)
{
    g_autofree char *path = make_raw("reset.img");
    setup(path, "raw", false, false);
    for (unsigned i = 0; i < 40; i++) {
        fill(BUF(i), 128 * 1024, (uint8_t)i);
        submit(i, VIRTIO_BLK_T_OUT, 256 * i, BUF(i), 128 * 1024);
    }
    vd_kick(0);
    machine_unlock(&vd_m);
    g_usleep(200);
    machine_lock(&vd_m);
    uint16_t done = vd_used_idx(&vd_q[0]);
    vd_set_status(0);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, done);
    g_assert_cmpuint(virtio_pci_queue(virtio_blk_pci(disk), 0)->inflight, ==, 0);
    machine_unlock(&vd_m);
    g_usleep(2000);
    machine_lock(&vd_m);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, done);
    blk_init(WANT_ALL, QSIZE);
    assert_usable();

    for (unsigned i = 0; i < 40; i++)
        submit(i, VIRTIO_BLK_T_IN, 256 * i, BUF(i), 128 * 1024);
    vd_kick(0);
    virtio_blk_reset(disk);
    g_assert_cmphex(vd_status(), ==, 0);
    blk_init(WANT_ALL, QSIZE);
    assert_usable();
    /* Destroying the disk with requests queued waits for them. */
    for (unsigned i = 0; i < 40; i++)
        submit(i, VIRTIO_BLK_T_OUT, 256 * i, BUF(i), 128 * 1024);
    vd_kick(0);
    teardown();
}

/* ---------------------------------------------------------------- the machine device */

static void test_machine_device(void)
{
    g_autofree char *a = make_raw("m0.img");
    g_autofree char *b = make_qcow2("m1.qcow2");
    g_autofree char *missing = tmp_path("missing.img");
    struct virtio_blk_conf disks[3] = {{.file = a, .format = "raw"},
                                       {.file = b, .format = "qcow2", .read_only = true},
                                       {.file = missing, .format = "raw"}};
    static const struct machine_device *const board[] = {&pci_host_device, &virtio_blk_device};
    struct machine_config cfg = {.ram_size = 64 * MiB, .cpus = 1, .disks = disks, .ndisks = 2};
    dh_log_capture();
    dh_machine_init_cfg(&vd_m, &cfg, board, G_N_ELEMENTS(board));
    g_assert_nonnull(virtio_blk_at(&vd_m, VIRTIO_BLK_FIRST_SLOT));
    g_assert_nonnull(virtio_blk_at(&vd_m, VIRTIO_BLK_FIRST_SLOT + 1));
    g_assert_null(virtio_blk_at(&vd_m, VIRTIO_BLK_FIRST_SLOT + 2));
    g_assert_null(virtio_blk_at(&vd_m, 0));
    struct pci_device *p = pci_bus_get_device(vd_m.pci, VIRTIO_BLK_FIRST_SLOT + 1, 0);
    g_assert_nonnull(p);
    g_assert_cmphex(pci_config_get16(p, PCI_DEVICE_ID), ==, 0x1042);
    /* The images are in use: a second writer is refused. */
    GError *err = NULL;
    g_assert_null(block_open(a, "raw", 0, &err));
    g_clear_error(&err);
    machine_reset(&vd_m);
    dh_machine_fini(&vd_m);
    struct block_image *img = block_open(a, "raw", 0, &err);
    g_assert_no_error(err);
    block_close(img, NULL);

    /* The third image does not open: machine_init fails naming it, and the disks made before are gone. */
    cfg.ndisks = 3;
    char *why = NULL;
    g_assert_cmpint(machine_init(&vd_m, &cfg, board, G_N_ELEMENTS(board), &why), <, 0);
    g_assert_nonnull(strstr(why, "missing.img"));
    g_free(why);
    img = block_open(a, "raw", 0, &err);
    g_assert_no_error(err);
    block_close(img, NULL);
    log_set_fd(STDERR_FILENO);
}

/* ---------------------------------------------------------------- --disk */

static void test_conf_parse(void)
{
    struct virtio_blk_conf c;
    char *err = NULL;
    g_assert_true(virtio_blk_conf_parse("file=/a/b.img", &c, &err));
    g_assert_cmpstr(c.file, ==, "/a/b.img");
    g_assert_null(c.format);
    g_assert_false(c.read_only);
    g_assert_cmpint(c.cache, ==, VIRTIO_BLK_CACHE_WRITEBACK);
    g_assert_false(c.discard_unmap);
    virtio_blk_conf_clear(&c);
    g_assert_true(
        virtio_blk_conf_parse("file=/x,,y.img,format=qcow2,readonly=on,cache=none,discard=unmap", &c, &err));
    g_assert_cmpstr(c.file, ==, "/x,y.img");
    g_assert_cmpstr(c.format, ==, "qcow2");
    g_assert_true(c.read_only);
    g_assert_cmpint(c.cache, ==, VIRTIO_BLK_CACHE_NONE);
    g_assert_true(c.discard_unmap);
    virtio_blk_conf_clear(&c);
    g_assert_true(virtio_blk_conf_parse("cache=unsafe,file=rel.img,readonly=off,discard=ignore", &c, &err));
    g_assert_true(g_path_is_absolute(c.file));
    g_assert_true(g_str_has_suffix(c.file, "/rel.img"));
    g_assert_cmpint(c.cache, ==, VIRTIO_BLK_CACHE_UNSAFE);
    g_assert_cmpuint(c.l2_cache_size, ==, 0);
    virtio_blk_conf_clear(&c);
    g_assert_true(virtio_blk_conf_parse("file=/d.qcow2,l2-cache-size=4M", &c, &err));
    g_assert_cmpuint(c.l2_cache_size, ==, 4u << 20);
    virtio_blk_conf_clear(&c);

    static const struct {
        const char *spec, *msg;
    } bad[] = {
        {"", "empty parameter"},
        {"format=raw", "needs file=PATH"},
        {"file=", "needs a file name"},
        {"file=a,format=vmdk", "format 'vmdk' is not raw or qcow2"},
        {"file=a,readonly=maybe", "readonly 'maybe' is not on or off"},
        {"file=a,cache=directsync", "cache 'directsync' is not writeback, none or unsafe"},
        {"file=a,discard=trim", "discard 'trim' is not unmap or ignore"},
        {"file=a,size=1G", "unknown parameter 'size'"},
        {"file=a,l2-cache-size=1k", "l2-cache-size '1k' is not a size from 64K to 1G"},
        {"file=a,l2-cache-size=lots", "l2-cache-size 'lots' is not a size"},
        {"file=a,file=b", "file= given twice"},
        {"file=a,readonly", "'readonly' is not key=value"},
        {"file=a,", "empty parameter"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        memset(&c, 0x5a, sizeof(c));
        g_assert_false(virtio_blk_conf_parse(bad[i].spec, &c, &err));
        g_assert_nonnull(err);
        if (!strstr(err, bad[i].msg))
            g_error("'%s': message '%s' lacks '%s'", bad[i].spec, err, bad[i].msg);
        g_assert_null(c.file);
        g_clear_pointer(&err, g_free);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmp_dir = block_test_dir_new("test-virtio-blk-XXXXXX");
    g_test_add_func("/virtio-blk/probe/features-and-config", test_probe_and_config);
    g_test_add_func("/virtio-blk/get-id/serial", test_get_id);
    g_test_add_func("/virtio-blk/io/raw-roundtrip", test_raw_roundtrip);
    g_test_add_func("/virtio-blk/io/qcow2-roundtrip", test_qcow2_roundtrip);
    g_test_add_func("/virtio-blk/io/many-in-flight", test_many_in_flight);
    g_test_add_func("/virtio-blk/io/flush-and-write-through", test_flush);
    g_test_add_func("/virtio-blk/zeroing/raw-discard-write-zeroes", test_zeroing_raw);
    g_test_add_func("/virtio-blk/zeroing/qcow2-discard-write-zeroes", test_zeroing_qcow2);
    g_test_add_func("/virtio-blk/zeroing/discard-ignore", test_discard_ignore);
    g_test_add_func("/virtio-blk/read-only/refuses-writes", test_read_only);
    g_test_add_func("/virtio-blk/hostile/bad-requests-answered", test_hostile);
    g_test_add_func("/virtio-blk/hostile/in-flight-bounded", test_in_flight_bounded);
    g_test_add_func("/virtio-blk/reset/with-requests-in-flight", test_reset_in_flight);
    g_test_add_func("/virtio-blk/machine/disks-created-reset-destroyed", test_machine_device);
    g_test_add_func("/virtio-blk/option/parse", test_conf_parse);
    int rc = g_test_run();
    block_test_dir_free(tmp_dir);
    return rc;
}
