/* virtio modern PCI transport: capabilities, the BAR 4 register structures, MSI-X and INTx delivery. */
#include "virtio_pci.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "log.h"
#include "machine.h"

/* ---------------------------------------------------------------- interrupts */

static void vp_interrupt(void *opaque, uint8_t isr_bit, uint16_t vector)
{
    struct virtio_pci *vp = opaque;
    if (pci_msix_enabled(&vp->pci)) {
        /* Vectors were checked against the table when the driver wrote them. */
        if (vector != VIRTIO_MSI_NO_VECTOR)
            pci_msi_notify(&vp->pci, vector);
        return;
    }
    vp->vdev.isr |= isr_bit;
    pci_set_irq(&vp->pci, 1);
}

static bool vp_dma_allowed(void *opaque)
{
    struct virtio_pci *vp = opaque;
    return pci_bus_master_enabled(&vp->pci);
}

static void vp_transport_reset(void *opaque)
{
    struct virtio_pci *vp = opaque;
    pci_set_irq(&vp->pci, 0);
}

static const struct virtio_transport_ops vp_transport = {vp_interrupt, vp_dma_allowed, vp_transport_reset};

/* A vector the driver asks for: one the MSI-X table has, else "no vector" (4.1.5.1.2: the driver reads it
 * back to see the mapping failed). */
static uint16_t vp_checked_vector(const struct virtio_pci *vp, uint64_t v)
{
    return v < vp->pci.msix.vectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

/* ---------------------------------------------------------------- common configuration */

static struct virtqueue *selected_queue(struct virtio_pci *vp)
{
    return vp->queue_select < vp->vdev.num_queues ? &vp->vdev.queues[vp->queue_select] : NULL;
}

static uint64_t rd_dfselect(struct virtio_pci *vp)
{
    return vp->vdev.device_feature_select;
}

static void wr_dfselect(struct virtio_pci *vp, uint64_t v)
{
    vp->vdev.device_feature_select = (uint32_t)v;
}

static uint64_t rd_df(struct virtio_pci *vp)
{
    return virtio_get_device_features_window(&vp->vdev);
}

static uint64_t rd_gfselect(struct virtio_pci *vp)
{
    return vp->vdev.driver_feature_select;
}

static void wr_gfselect(struct virtio_pci *vp, uint64_t v)
{
    vp->vdev.driver_feature_select = (uint32_t)v;
}

static uint64_t rd_gf(struct virtio_pci *vp)
{
    return virtio_get_driver_features_window(&vp->vdev);
}

static void wr_gf(struct virtio_pci *vp, uint64_t v)
{
    virtio_set_driver_features_window(&vp->vdev, (uint32_t)v);
}

static uint64_t rd_msix(struct virtio_pci *vp)
{
    return vp->vdev.config_vector;
}

static void wr_msix(struct virtio_pci *vp, uint64_t v)
{
    vp->vdev.config_vector = vp_checked_vector(vp, v);
}

static uint64_t rd_numq(struct virtio_pci *vp)
{
    return vp->vdev.num_queues;
}

static uint64_t rd_status(struct virtio_pci *vp)
{
    return virtio_get_status(&vp->vdev);
}

static void wr_status(struct virtio_pci *vp, uint64_t v)
{
    if (v == 0)
        vp->queue_select = 0;
    virtio_set_status(&vp->vdev, (uint8_t)v);
}

static uint64_t rd_cfggen(struct virtio_pci *vp)
{
    return vp->vdev.config_generation;
}

static uint64_t rd_qselect(struct virtio_pci *vp)
{
    return vp->queue_select;
}

static void wr_qselect(struct virtio_pci *vp, uint64_t v)
{
    vp->queue_select = (uint16_t)v;
}

static uint64_t rd_qsize(struct virtio_pci *vp)
{
    struct virtqueue *vq = selected_queue(vp);
    return vq ? vq->size : 0; /* 0: no such queue */
}

/* Queue layout registers are the driver's until it enables the queue (4.1.4.3.2). */
static struct virtqueue *configurable_queue(struct virtio_pci *vp, const char *what)
{
    struct virtqueue *vq = selected_queue(vp);
    if (vq && vq->enabled) {
        log_message_ratelimited(&vp->rl, LOG_LEVEL_WARN, "virtio %s: %s of enabled queue %u not changed",
                                vp->vdev.name, what, vq->index);
        return NULL;
    }
    return vq;
}

static void wr_qsize(struct virtio_pci *vp, uint64_t v)
{
    struct virtqueue *vq = configurable_queue(vp, "size");
    if (!vq)
        return;
    /* Split rings are a power of two in size (2.6); the driver may only shrink them. */
    if (v == 0 || v > vq->max_size || (v & (v - 1))) {
        log_message_ratelimited(&vp->rl, LOG_LEVEL_WARN, "virtio %s: queue %u size %llu refused (max %u)",
                                vp->vdev.name, vq->index, (unsigned long long)v, vq->max_size);
        return;
    }
    vq->size = (uint16_t)v;
}

static uint64_t rd_qmsix(struct virtio_pci *vp)
{
    struct virtqueue *vq = selected_queue(vp);
    return vq ? vq->msix_vector : VIRTIO_MSI_NO_VECTOR;
}

static void wr_qmsix(struct virtio_pci *vp, uint64_t v)
{
    struct virtqueue *vq = selected_queue(vp);
    if (vq)
        vq->msix_vector = vp_checked_vector(vp, v);
}

static uint64_t rd_qenable(struct virtio_pci *vp)
{
    struct virtqueue *vq = selected_queue(vp);
    return vq && vq->enabled;
}

static void wr_qenable(struct virtio_pci *vp, uint64_t v)
{
    struct virtqueue *vq = selected_queue(vp);
    /* Writing 0 is not allowed (a queue is disabled by a device reset); writing 1 again changes nothing. */
    if (vq && v == 1 && !vq->enabled)
        virtqueue_enable(vq);
}

static uint64_t rd_qnoff(struct virtio_pci *vp)
{
    struct virtqueue *vq = selected_queue(vp);
    return vq ? vq->index : 0;
}

static uint64_t rd_qdesc(struct virtio_pci *vp)
{
    struct virtqueue *vq = selected_queue(vp);
    return vq ? vq->desc_addr : 0;
}

static void wr_qdesc(struct virtio_pci *vp, uint64_t v)
{
    struct virtqueue *vq = configurable_queue(vp, "descriptor table address");
    if (vq)
        vq->desc_addr = v;
}

static uint64_t rd_qavail(struct virtio_pci *vp)
{
    struct virtqueue *vq = selected_queue(vp);
    return vq ? vq->avail_addr : 0;
}

static void wr_qavail(struct virtio_pci *vp, uint64_t v)
{
    struct virtqueue *vq = configurable_queue(vp, "available ring address");
    if (vq)
        vq->avail_addr = v;
}

static uint64_t rd_qused(struct virtio_pci *vp)
{
    struct virtqueue *vq = selected_queue(vp);
    return vq ? vq->used_addr : 0;
}

static void wr_qused(struct virtio_pci *vp, uint64_t v)
{
    struct virtqueue *vq = configurable_queue(vp, "used ring address");
    if (vq)
        vq->used_addr = v;
}

struct common_reg {
    uint8_t offset, width;
    const char *name;
    uint64_t (*read)(struct virtio_pci *vp);
    void (*write)(struct virtio_pci *vp, uint64_t v); /* NULL: read-only */
};

static const struct common_reg common_regs[] = {
    {VIRTIO_PCI_COMMON_DFSELECT, 4, "device_feature_select", rd_dfselect, wr_dfselect},
    {VIRTIO_PCI_COMMON_DF, 4, "device_feature", rd_df, NULL},
    {VIRTIO_PCI_COMMON_GFSELECT, 4, "driver_feature_select", rd_gfselect, wr_gfselect},
    {VIRTIO_PCI_COMMON_GF, 4, "driver_feature", rd_gf, wr_gf},
    {VIRTIO_PCI_COMMON_MSIX, 2, "msix_config", rd_msix, wr_msix},
    {VIRTIO_PCI_COMMON_NUMQ, 2, "num_queues", rd_numq, NULL},
    {VIRTIO_PCI_COMMON_STATUS, 1, "device_status", rd_status, wr_status},
    {VIRTIO_PCI_COMMON_CFGGENERATION, 1, "config_generation", rd_cfggen, NULL},
    {VIRTIO_PCI_COMMON_Q_SELECT, 2, "queue_select", rd_qselect, wr_qselect},
    {VIRTIO_PCI_COMMON_Q_SIZE, 2, "queue_size", rd_qsize, wr_qsize},
    {VIRTIO_PCI_COMMON_Q_MSIX, 2, "queue_msix_vector", rd_qmsix, wr_qmsix},
    {VIRTIO_PCI_COMMON_Q_ENABLE, 2, "queue_enable", rd_qenable, wr_qenable},
    {VIRTIO_PCI_COMMON_Q_NOFF, 2, "queue_notify_off", rd_qnoff, NULL},
    {VIRTIO_PCI_COMMON_Q_DESCLO, 8, "queue_desc", rd_qdesc, wr_qdesc},
    {VIRTIO_PCI_COMMON_Q_AVAILLO, 8, "queue_driver", rd_qavail, wr_qavail},
    {VIRTIO_PCI_COMMON_Q_USEDLO, 8, "queue_device", rd_qused, wr_qused},
};

/* The register an access hits: it must cover the whole field, or (for 64-bit fields) one 32-bit half of it,
 * which is how drivers without 64-bit MMIO write them (4.1.3.1). *shift says which half. */
static const struct common_reg *common_find(uint64_t offset, unsigned size, unsigned *shift)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(common_regs); i++) {
        const struct common_reg *r = &common_regs[i];
        if (offset < r->offset || offset >= (uint64_t)r->offset + r->width)
            continue;
        unsigned rel = (unsigned)(offset - r->offset);
        if (size == r->width && rel == 0) {
            *shift = 0;
            return r;
        }
        if (r->width == 8 && size == 4 && (rel == 0 || rel == 4)) {
            *shift = 8 * rel;
            return r;
        }
        return NULL;
    }
    return NULL;
}

static uint64_t common_read(struct virtio_pci *vp, uint64_t offset, unsigned size)
{
    unsigned shift;
    const struct common_reg *r = common_find(offset, size, &shift);
    if (!r) {
        log_message_ratelimited(&vp->rl, LOG_LEVEL_DEBUG, "virtio %s: %u-byte read of common config 0x%llx",
                                vp->vdev.name, size, (unsigned long long)offset);
        return 0;
    }
    uint64_t v = r->read(vp) >> shift;
    return size == 8 ? v : v & ((1ULL << (8 * size)) - 1);
}

static void common_write(struct virtio_pci *vp, uint64_t offset, uint64_t value, unsigned size)
{
    unsigned shift;
    const struct common_reg *r = common_find(offset, size, &shift);
    if (!r || !r->write) {
        log_message_ratelimited(&vp->rl, LOG_LEVEL_WARN,
                                "virtio %s: %u-byte write of 0x%llx to common config 0x%llx%s%s ignored",
                                vp->vdev.name, size, (unsigned long long)value, (unsigned long long)offset,
                                r ? ", read-only " : "", r ? r->name : "");
        return;
    }
    if (r->width == 8 && size == 4) {
        uint64_t keep = r->read(vp) & ~(0xffffffffULL << shift);
        value = keep | (value & 0xffffffffULL) << shift;
    }
    r->write(vp, value);
}

/* ---------------------------------------------------------------- BAR 4 */

static uint64_t isr_read(struct virtio_pci *vp)
{
    /* Reading acknowledges: the bits clear and the INTx line drops (4.1.4.5). */
    uint8_t v = vp->vdev.isr;
    vp->vdev.isr = 0;
    pci_set_irq(&vp->pci, 0);
    return v;
}

static void notify_write(struct virtio_pci *vp, uint64_t offset, unsigned size)
{
    uint64_t n = offset / VIRTIO_PCI_NOTIFY_MULTIPLIER;
    if (offset % VIRTIO_PCI_NOTIFY_MULTIPLIER || size > 4 || n >= vp->vdev.num_queues) {
        log_message_ratelimited(&vp->rl, LOG_LEVEL_WARN, "virtio %s: %u-byte notify at 0x%llx ignored",
                                vp->vdev.name, size, (unsigned long long)offset);
        return;
    }
    struct virtqueue *vq = &vp->vdev.queues[n];
    if (virtqueue_ready(vq) && vp->vdev.ops->queue_notify)
        vp->vdev.ops->queue_notify(vp->vdev.opaque, vq);
}

static uint64_t bar4_read(void *opaque, uint64_t offset, unsigned size)
{
    struct virtio_pci *vp = opaque;
    uint64_t rel = offset % VIRTIO_PCI_REGION_SIZE;
    switch (offset - rel) {
    case VIRTIO_PCI_COMMON_OFFSET:
        return common_read(vp, rel, size);
    case VIRTIO_PCI_ISR_OFFSET:
        return rel == 0 ? isr_read(vp) : 0;
    case VIRTIO_PCI_DEVICE_OFFSET:
        return virtio_config_read(&vp->vdev, (unsigned)rel, size);
    default:
        return 0; /* notify: write-only */
    }
}

static void bar4_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct virtio_pci *vp = opaque;
    uint64_t rel = offset % VIRTIO_PCI_REGION_SIZE;
    switch (offset - rel) {
    case VIRTIO_PCI_COMMON_OFFSET:
        common_write(vp, rel, value, size);
        break;
    case VIRTIO_PCI_DEVICE_OFFSET:
        virtio_config_write(&vp->vdev, (unsigned)rel, value, size);
        break;
    case VIRTIO_PCI_NOTIFY_OFFSET:
        notify_write(vp, rel, size);
        break;
    default:
        break; /* ISR: read-only */
    }
}

static const struct io_ops bar4_ops = {bar4_read, bar4_write};

/* ---------------------------------------------------------------- PCI configuration access capability */

/* The BAR window the capability names, if it is one the function serves this way (4.1.4.7). */
static bool pci_cfg_window(const struct virtio_pci *vp, uint32_t *offset, unsigned *len)
{
    unsigned cap = vp->pci_cfg_cap;
    uint8_t bar = pci_config_get8(&vp->pci, cap + VIRTIO_PCI_CAP_BAR);
    *offset = pci_config_get32(&vp->pci, cap + VIRTIO_PCI_CAP_OFFSET);
    *len = pci_config_get32(&vp->pci, cap + VIRTIO_PCI_CAP_LENGTH);
    return bar == VIRTIO_PCI_BAR && (*len == 1 || *len == 2 || *len == 4) && !(*offset % *len) &&
           *offset <= VIRTIO_PCI_BAR_SIZE - *len;
}

static bool touches_cfg_data(const struct virtio_pci *vp, unsigned offset, unsigned size)
{
    unsigned data = vp->pci_cfg_cap + VIRTIO_PCI_CFG_DATA;
    return vp->pci_cfg_cap && offset < data + 4 && data < offset + size;
}

static uint32_t vp_config_read(struct pci_device *dev, unsigned offset, unsigned size)
{
    struct virtio_pci *vp = container_of(dev, struct virtio_pci, pci);
    if (touches_cfg_data(vp, offset, size)) {
        uint32_t win;
        unsigned len;
        uint32_t v = pci_cfg_window(vp, &win, &len) ? (uint32_t)bar4_read(vp, win, len) : 0;
        pci_config_set32(dev, vp->pci_cfg_cap + VIRTIO_PCI_CFG_DATA, v);
    }
    return pci_config_read_default(dev, offset, size);
}

static void vp_config_write(struct pci_device *dev, unsigned offset, uint32_t value, unsigned size)
{
    struct virtio_pci *vp = container_of(dev, struct virtio_pci, pci);
    pci_config_write_default(dev, offset, value, size);
    uint32_t win;
    unsigned len;
    if (touches_cfg_data(vp, offset, size) && pci_cfg_window(vp, &win, &len)) {
        uint32_t data = pci_config_get32(dev, vp->pci_cfg_cap + VIRTIO_PCI_CFG_DATA);
        bar4_write(vp, win, len == 4 ? data : data & ((1u << (8 * len)) - 1), len);
    }
}

static const struct pci_device_ops vp_pci_ops = {vp_config_read, vp_config_write};

/* ---------------------------------------------------------------- building the function */

static int add_vendor_cap(struct virtio_pci *vp, uint8_t type, unsigned cap_size, uint32_t offset,
                          uint32_t length)
{
    struct pci_device *d = &vp->pci;
    int cap = pci_add_capability(d, PCI_CAP_ID_VNDR, cap_size);
    if (cap < 0)
        return cap;
    pci_config_set8(d, cap + VIRTIO_PCI_CAP_LEN, (uint8_t)cap_size);
    pci_config_set8(d, cap + VIRTIO_PCI_CAP_CFG_TYPE, type);
    pci_config_set8(d, cap + VIRTIO_PCI_CAP_BAR, type == VIRTIO_PCI_CAP_PCI_CFG ? 0 : VIRTIO_PCI_BAR);
    pci_config_set32(d, cap + VIRTIO_PCI_CAP_OFFSET, offset);
    pci_config_set32(d, cap + VIRTIO_PCI_CAP_LENGTH, length);
    return cap;
}

static int build(struct virtio_pci *vp, struct pci_bus *bus, const struct virtio_pci_config *cfg)
{
    struct virtio_device *vdev = &vp->vdev;
    int r = virtio_device_init(vdev, &bus->m->mem, &cfg->dev);
    if (r < 0)
        return r;
    vdev->transport = &vp_transport;
    vdev->transport_opaque = vp;
    vp->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 10);

    struct pci_device *d = &vp->pci;
    const struct pci_device_info info = {
        .name = vdev->name,
        .vendor_id = VIRTIO_PCI_VENDOR_ID,
        .device_id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + cfg->dev.device_type),
        .class_code = cfg->class_code,
        .revision = VIRTIO_PCI_REVISION,
        .subsystem_vendor_id = VIRTIO_PCI_VENDOR_ID,
        .subsystem_id = VIRTIO_PCI_SUBSYSTEM_ID,
        .interrupt_pin = 1,
        .ops = &vp_pci_ops,
    };
    pci_device_init(d, &info);
    r = pci_register_bar(d, VIRTIO_PCI_MSIX_BAR, PCI_BAR_MEM32, VIRTIO_PCI_MSIX_BAR_SIZE, NULL, NULL);
    if (r == 0)
        r = pci_register_bar(d, VIRTIO_PCI_BAR, PCI_BAR_MEM64 | PCI_BAR_PREFETCH, VIRTIO_PCI_BAR_SIZE,
                             &bar4_ops, vp);
    if (r == 0)
        r = pci_msix_init(d, vdev->num_queues + 1, VIRTIO_PCI_MSIX_BAR, VIRTIO_PCI_MSIX_TABLE,
                          VIRTIO_PCI_MSIX_BAR, VIRTIO_PCI_MSIX_PBA);
    if (r >= 0)
        r = add_vendor_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_COMMON_OFFSET,
                           VIRTIO_PCI_COMMON_CFG_SIZE);
    if (r >= 0)
        r = add_vendor_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_ISR_OFFSET, 1);
    if (r >= 0 && vdev->config_size)
        r = add_vendor_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_DEVICE_OFFSET,
                           vdev->config_size);
    if (r >= 0) {
        r = add_vendor_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_CAP_SIZE + 4, VIRTIO_PCI_NOTIFY_OFFSET,
                           vdev->num_queues * VIRTIO_PCI_NOTIFY_MULTIPLIER);
        if (r >= 0)
            pci_config_set32(d, r + VIRTIO_PCI_NOTIFY_CAP_MULT, VIRTIO_PCI_NOTIFY_MULTIPLIER);
    }
    if (r >= 0) {
        r = add_vendor_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, VIRTIO_PCI_CAP_SIZE + 4, 0, 0);
        if (r >= 0) {
            vp->pci_cfg_cap = (uint8_t)r;
            pci_config_set_wmask(d, r + VIRTIO_PCI_CAP_BAR, 1, 0xff);
            pci_config_set_wmask(d, r + VIRTIO_PCI_CAP_OFFSET, 4, 0xffffffffu);
            pci_config_set_wmask(d, r + VIRTIO_PCI_CAP_LENGTH, 4, 0xffffffffu);
            pci_config_set_wmask(d, r + VIRTIO_PCI_CFG_DATA, 4, 0xffffffffu);
        }
    }
    return r < 0 ? r : 0;
}

struct virtio_pci *virtio_pci_create(struct pci_bus *bus, unsigned slot, unsigned fn,
                                     const struct virtio_pci_config *cfg, char **error)
{
    struct virtio_pci *vp = g_new0(struct virtio_pci, 1);
    int r = build(vp, bus, cfg);
    if (r == 0)
        r = pci_register_device(bus, &vp->pci, slot, fn);
    if (r < 0) {
        *error = g_strdup_printf("virtio %s at slot %u function %u: %s", cfg->dev.name ? cfg->dev.name : "?",
                                 slot, fn, g_strerror(-r));
        pci_unregister_device(&vp->pci);
        virtio_device_cleanup(&vp->vdev);
        g_free(vp);
        return NULL;
    }
    return vp;
}

void virtio_pci_free(struct virtio_pci *vp)
{
    if (!vp)
        return;
    pci_unregister_device(&vp->pci);
    virtio_device_cleanup(&vp->vdev);
    g_free(vp);
}

void virtio_pci_reset(struct virtio_pci *vp)
{
    vp->queue_select = 0;
    virtio_device_reset(&vp->vdev);
}
