/* A small virtio driver for device tests and the "echo" device it drives (not a real device type: it copies
 * what it reads from a request into the buffers it may write). */
#include "virtio_driver.h"

#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "log.h"
#include "pci_host.h"

/* ---------------------------------------------------------------- the echo device */

struct vd_echo vd_echo;

static uint64_t echo_config_read(void *opaque, unsigned offset, unsigned size)
{
    struct vd_echo *e = opaque;
    uint8_t img[16];
    le32_store(img, ECHO_MAGIC);
    le32_store(img + 4, e->scratch);
    le64_store(img + 8, 0x1122334455667788ULL);
    return le_load_n(img + offset, size);
}

static void echo_config_write(void *opaque, unsigned offset, uint64_t value, unsigned size)
{
    struct vd_echo *e = opaque;
    if (offset == 4 && size == 4)
        e->scratch = (uint32_t)value;
}

static bool echo_set_features(void *opaque, uint64_t features)
{
    struct vd_echo *e = opaque;
    e->features = features;
    return !e->veto;
}

void vd_echo_complete(struct virtqueue *vq, struct virtq_elem *elem)
{
    uint8_t buf[4096];
    uint64_t n = MIN(elem->out_len, elem->in_len);
    for (uint64_t off = 0; off < n;) {
        size_t chunk = (size_t)MIN(sizeof(buf), n - off);
        g_assert_cmpint(virtq_elem_copy_from(vq, elem, off, buf, chunk), ==, (ssize_t)chunk);
        g_assert_cmpint(virtq_elem_copy_to(vq, elem, off, buf, chunk), ==, (ssize_t)chunk);
        off += chunk;
    }
    virtqueue_push(vq, elem, (uint32_t)n);
    virtq_elem_free(elem);
}

static void echo_queue_notify(void *opaque, struct virtqueue *vq)
{
    struct vd_echo *e = opaque;
    e->notifies++;
    struct virtq_elem *elem;
    while ((elem = virtqueue_pop(vq))) {
        if (e->hold) {
            g_assert_cmpuint(e->nheld, <, G_N_ELEMENTS(e->held));
            e->held[e->nheld++] = elem;
            continue;
        }
        vd_echo_complete(vq, elem);
        if (e->notify_each)
            virtqueue_notify(vq);
    }
    if (!e->notify_each)
        virtqueue_notify(vq);
}

static void echo_reset(void *opaque)
{
    struct vd_echo *e = opaque;
    e->resets++;
    e->scratch = 0;
    e->features = 0;
    /* Elements in flight stay with the device model until it frees them; a real device would cancel. */
}

const struct virtio_device_ops vd_echo_ops = {
    .config_read = echo_config_read,
    .config_write = echo_config_write,
    .set_features = echo_set_features,
    .queue_notify = echo_queue_notify,
    .reset = echo_reset,
};

/* ---------------------------------------------------------------- machine, log capture */

struct machine vd_m;
struct irq_recorder vd_rec;
unsigned vd_gsi;

void vd_assert_logged(const char *needle)
{
    dh_assert_logged(needle);
}

void vd_setup_ram(uint64_t ram)
{
    static const struct machine_device *const board[] = {&pci_host_device};
    dh_log_capture();
    dh_machine_init(&vd_m, board, G_N_ELEMENTS(board), 1, ram);
    dh_record_irqs(&vd_m, &vd_rec, DH_ANY_GSI | DH_MSI);
    memset(&vd_echo, 0, sizeof(vd_echo));
    const struct virtio_pci_config cfg = {
        .dev = {.name = "echo",
                .device_type = ECHO_TYPE,
                .features = ECHO_F_DEVICE,
                .config_size = 16,
                .num_queues = ECHO_QUEUES,
                .queue_max_size = ECHO_QMAX,
                .ops = &vd_echo_ops,
                .opaque = &vd_echo},
        .class_code = 0x00ff00,
    };
    char *err = NULL;
    vd_echo.vp = virtio_pci_create(vd_m.pci, SLOT, 0, &cfg, &err);
    g_assert_null(err);
    g_assert_nonnull(vd_echo.vp);
    g_assert_cmpint(pci_host_assign_resources(vd_m.pci), ==, 0);
    vd_gsi = pci_intx_gsi(SLOT, 0);
}

void vd_setup(void)
{
    vd_setup_ram(64 * MiB);
}

void vd_teardown(void)
{
    for (unsigned i = 0; i < vd_echo.nheld; i++)
        virtq_elem_free(vd_echo.held[i]);
    virtio_pci_free(vd_echo.vp);
    dh_machine_fini(&vd_m);
    log_set_fd(STDERR_FILENO);
}

/* ---------------------------------------------------------------- the driver: config space and BARs */

uint32_t vd_cfg_read(unsigned reg, unsigned size)
{
    return (uint32_t)dh_mmio_read(&vd_m, PCI_ECAM_BASE + (SLOT << 15) + reg, size);
}

void vd_cfg_write(unsigned reg, uint32_t v, unsigned size)
{
    dh_mmio_write(&vd_m, PCI_ECAM_BASE + (SLOT << 15) + reg, size, v);
}

struct vd_driver vd_dev;

static uint64_t bar_addr(unsigned n)
{
    uint32_t lo = vd_cfg_read(PCI_BASE_ADDRESS_0 + 4 * n, 4);
    uint64_t a = lo & ~0xfULL;
    if (lo & PCI_BASE_ADDRESS_MEM_TYPE_64)
        a |= (uint64_t)vd_cfg_read(PCI_BASE_ADDRESS_0 + 4 * (n + 1), 4) << 32;
    return a;
}

/* Walks the capability list as a driver does and keeps the first virtio structure of each type. */
void vd_probe(void)
{
    memset(&vd_dev, 0, sizeof(vd_dev));
    g_assert_true(vd_cfg_read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    unsigned pos = vd_cfg_read(PCI_CAPABILITY_LIST, 1) & ~3u;
    for (unsigned n = 0; pos && n < 48; n++) {
        unsigned id = vd_cfg_read(pos, 1);
        if (id == PCI_CAP_ID_MSIX)
            vd_dev.msix_cap = pos;
        if (id == PCI_CAP_ID_VNDR) {
            struct vd_cap c = {pos, (uint8_t)vd_cfg_read(pos + VIRTIO_PCI_CAP_BAR, 1),
                               vd_cfg_read(pos + VIRTIO_PCI_CAP_OFFSET, 4),
                               vd_cfg_read(pos + VIRTIO_PCI_CAP_LENGTH, 4)};
            struct vd_cap *slot[] = {NULL,        &vd_dev.common, &vd_dev.notify,
                                     &vd_dev.isr, &vd_dev.device, &vd_dev.pcicfg};
            unsigned type = vd_cfg_read(pos + VIRTIO_PCI_CAP_CFG_TYPE, 1);
            g_assert_cmpuint(type, >=, 1);
            g_assert_cmpuint(type, <=, 5);
            if (!slot[type]->pos)
                *slot[type] = c;
            if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
                vd_dev.notify_mult = vd_cfg_read(pos + VIRTIO_PCI_NOTIFY_CAP_MULT, 4);
        }
        pos = vd_cfg_read(pos + 1, 1) & ~3u;
    }
    for (unsigned n = 0; n < PCI_BAR_COUNT; n++)
        vd_dev.bar[n] = bar_addr(n);
}

uint64_t vd_common_rd(unsigned off, unsigned size)
{
    return dh_mmio_read(&vd_m, vd_dev.bar[vd_dev.common.bar] + vd_dev.common.offset + off, size);
}

void vd_common_wr(unsigned off, uint64_t v, unsigned size)
{
    dh_mmio_write(&vd_m, vd_dev.bar[vd_dev.common.bar] + vd_dev.common.offset + off, size, v);
}

uint8_t vd_status(void)
{
    return (uint8_t)vd_common_rd(VIRTIO_PCI_COMMON_STATUS, 1);
}

void vd_set_status(uint8_t s)
{
    vd_common_wr(VIRTIO_PCI_COMMON_STATUS, s, 1);
}

uint8_t vd_isr_read(void)
{
    return (uint8_t)dh_mmio_read(&vd_m, vd_dev.bar[vd_dev.isr.bar] + vd_dev.isr.offset, 1);
}

uint64_t vd_devcfg_rd(unsigned off, unsigned size)
{
    return dh_mmio_read(&vd_m, vd_dev.bar[vd_dev.device.bar] + vd_dev.device.offset + off, size);
}

uint64_t vd_device_features(void)
{
    vd_common_wr(VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
    uint64_t f = vd_common_rd(VIRTIO_PCI_COMMON_DF, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
    return f | vd_common_rd(VIRTIO_PCI_COMMON_DF, 4) << 32;
}

void vd_write_driver_features(uint64_t f)
{
    vd_common_wr(VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_GF, (uint32_t)f, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_GF, f >> 32, 4);
}

uint64_t vd_driver_features(void)
{
    vd_common_wr(VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    uint64_t f = vd_common_rd(VIRTIO_PCI_COMMON_GF, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
    return f | vd_common_rd(VIRTIO_PCI_COMMON_GF, 4) << 32;
}

/* Bus mastering on, MSI-X on with vector v -> (MSI_ADDR, MSI_DATA(v)), unmasked. */
void vd_msix_enable(void)
{
    vd_cfg_write(PCI_COMMAND, vd_cfg_read(PCI_COMMAND, 2) | PCI_COMMAND_MASTER, 2);
    uint32_t table = vd_cfg_read(vd_dev.msix_cap + PCI_MSIX_TABLE, 4);
    uint64_t base = vd_dev.bar[table & PCI_MSIX_BIR_MASK] + (table & ~7u);
    unsigned n = (vd_cfg_read(vd_dev.msix_cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1;
    for (unsigned v = 0; v < n; v++) {
        uint64_t e = base + v * PCI_MSIX_ENTRY_SIZE;
        dh_writel(&vd_m, e + PCI_MSIX_ENTRY_LOWER_ADDR, MSI_ADDR);
        dh_writel(&vd_m, e + PCI_MSIX_ENTRY_UPPER_ADDR, 0);
        dh_writel(&vd_m, e + PCI_MSIX_ENTRY_DATA, MSI_DATA(v));
        dh_writel(&vd_m, e + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
    }
    vd_cfg_write(vd_dev.msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
}

void vd_bus_master_only(void)
{
    vd_cfg_write(PCI_COMMAND, vd_cfg_read(PCI_COMMAND, 2) | PCI_COMMAND_MASTER, 2);
}

/* ---------------------------------------------------------------- the driver: queues */

struct vd_queue vd_q[ECHO_QUEUES];

static uint64_t queue_base(unsigned n)
{
    return 0x100000 + n * 0x20000ULL;
}

void vd_mem_w16(uint64_t a, uint16_t v)
{
    g_assert_cmpint(guest_mem_write_u16(&vd_m.mem, a, v), ==, 0);
}

uint16_t vd_mem_r16(uint64_t a)
{
    uint16_t v;
    g_assert_cmpint(guest_mem_read_u16(&vd_m.mem, a, &v), ==, 0);
    return v;
}

static uint32_t mem_r32(uint64_t a)
{
    uint32_t v;
    g_assert_cmpint(guest_mem_read_u32(&vd_m.mem, a, &v), ==, 0);
    return v;
}

void vd_set_desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t b[VIRTQ_DESC_SIZE];
    le64_store(b, addr);
    le32_store(b + 8, len);
    le16_store(b + 12, flags);
    le16_store(b + 14, next);
    g_assert_cmpint(guest_mem_write(&vd_m.mem, table + (uint64_t)i * VIRTQ_DESC_SIZE, b, sizeof(b)), ==, 0);
}

void vd_avail_add(struct vd_queue *x, uint16_t head)
{
    vd_mem_w16(x->avail + 4 + 2 * (uint64_t)(x->avail_idx % x->size), head);
    x->avail_idx++;
    vd_mem_w16(x->avail + 2, x->avail_idx);
}

void vd_kick(unsigned n)
{
    dh_mmio_write(&vd_m, vd_dev.bar[vd_dev.notify.bar] + vd_dev.notify.offset + n * vd_dev.notify_mult, 2, n);
}

uint16_t vd_used_idx(const struct vd_queue *x)
{
    return vd_mem_r16(x->used + 2);
}

void vd_assert_used(const struct vd_queue *x, uint16_t i, uint32_t id, uint32_t len)
{
    uint64_t e = x->used + 4 + 8 * (uint64_t)(i % x->size);
    g_assert_cmpuint(mem_r32(e), ==, id);
    g_assert_cmpuint(mem_r32(e + 4), ==, len);
}

void vd_queue_setup(unsigned n, uint16_t max, uint16_t size, uint16_t vector)
{
    g_assert_cmpuint(n, <, ECHO_QUEUES);
    struct vd_queue *x = &vd_q[n];
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SELECT, n, 2);
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, max);
    if (size != max)
        vd_common_wr(VIRTIO_PCI_COMMON_Q_SIZE, size, 2);
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, size);
    *x = (struct vd_queue){size, queue_base(n), queue_base(n) + 0x8000, queue_base(n) + 0x10000, 0};
    g_assert_cmpint(guest_mem_fill(&vd_m.mem, queue_base(n), 0, 0x20000), ==, 0);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_MSIX, vector, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)x->desc, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_DESCHI, x->desc >> 32, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_AVAILLO, x->avail, 8);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)x->used, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_USEDHI, x->used >> 32, 4);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_NOFF, 2), ==, n);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), ==, 1);
}

uint64_t vd_init_queues(uint64_t want, bool msix, unsigned nqueues, uint16_t max, uint16_t size)
{
    vd_set_status(0);
    g_assert_cmpuint(vd_status(), ==, 0);
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    uint64_t f = vd_device_features() & want;
    vd_write_driver_features(f);
    uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    vd_set_status(s);
    g_assert_cmphex(vd_status(), ==, s);
    if (msix) {
        vd_common_wr(VIRTIO_PCI_COMMON_MSIX, 0, 2);
        g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_MSIX, 2), ==, 0);
    }
    for (unsigned n = 0; n < nqueues; n++)
        vd_queue_setup(n, max, size, msix ? (uint16_t)(n + 1) : VIRTIO_MSI_NO_VECTOR);
    vd_set_status(s | VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_cmphex(vd_status(), ==, s | VIRTIO_CONFIG_S_DRIVER_OK);
    return f;
}

void vd_init_size(uint64_t want, bool msix, uint16_t size)
{
    vd_init_queues(want, msix, ECHO_QUEUES, ECHO_QMAX, size);
}

void vd_init(uint64_t want, bool msix)
{
    vd_init_size(want, msix, ECHO_QMAX);
}

/* Standard vd_start: vd_probe, MSI-X on, VERSION_1 + INDIRECT_DESC + the device bit. */
void vd_start(uint64_t want)
{
    vd_probe();
    vd_msix_enable();
    vd_init(want, true);
}

/* A one-out, one-in request using descriptors 2i, 2i+1 of queue n; the out buffer holds a pattern. */
void vd_submit_simple(unsigned n, unsigned i, uint32_t len)
{
    struct vd_queue *x = &vd_q[n];
    uint16_t h = (uint16_t)((2 * i) % x->size);
    for (uint32_t k = 0; k < len; k++)
        g_assert_cmpint(guest_mem_write_u8(&vd_m.mem, OUTBUF(i) + k, (uint8_t)(k * 7 + i)), ==, 0);
    vd_set_desc(x->desc, h, OUTBUF(i), len, VIRTQ_DESC_F_NEXT, (uint16_t)(h + 1));
    vd_set_desc(x->desc, h + 1u, INBUF(i), 0x1000, VIRTQ_DESC_F_WRITE, 0);
    vd_avail_add(x, h);
}

void vd_assert_echoed(unsigned i, uint32_t len)
{
    for (uint32_t k = 0; k < len; k++) {
        uint8_t b;
        g_assert_cmpint(guest_mem_read_u8(&vd_m.mem, INBUF(i) + k, &b), ==, 0);
        g_assert_cmphex(b, ==, (uint8_t)(k * 7 + i));
    }
}

void vd_assert_msi(unsigned i, unsigned vector)
{
    g_assert_cmpuint(vd_rec.nmsi, >, i);
    g_assert_cmphex(vd_rec.msi[i].address, ==, MSI_ADDR);
    g_assert_cmphex(vd_rec.msi[i].data, ==, MSI_DATA(vector));
}
