/* virtio-gpu: configuration space, queues, display hooks (resize requests), life cycle. The commands
 * themselves are in virtio_gpu_cmd.c. */
#include "virtio_gpu.h"

#include <errno.h>
#include <string.h>

#include "virtio_pci.h"

static const char device_name[] = "virtio-gpu";

/* ---------------------------------------------------------------- modes */

bool virtio_gpu_resolution_valid(unsigned w, unsigned h, char **why)
{
    if (w < EDID_MODE_MIN_WIDTH || h < EDID_MODE_MIN_HEIGHT || w > EDID_MODE_MAX || h > EDID_MODE_MAX) {
        *why = g_strdup_printf("%ux%u is outside %ux%u .. %ux%u", w, h, EDID_MODE_MIN_WIDTH,
                               EDID_MODE_MIN_HEIGHT, EDID_MODE_MAX, EDID_MODE_MAX);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- configuration space */

static uint64_t gpu_config_read(void *opaque, unsigned offset, unsigned size)
{
    struct virtio_gpu *g = opaque;
    uint8_t img[VIRTIO_GPU_CONFIG_SIZE];
    le32_store(img + VIRTIO_GPU_CFG_EVENTS_READ, g->events_read);
    le32_store(img + VIRTIO_GPU_CFG_EVENTS_CLEAR, 0);
    le32_store(img + VIRTIO_GPU_CFG_NUM_SCANOUTS, g->num_scanouts);
    le32_store(img + VIRTIO_GPU_CFG_NUM_CAPSETS, 0);
    return le_load_n(img + offset, size);
}

static void gpu_config_write(void *opaque, unsigned offset, uint64_t value, unsigned size)
{
    struct virtio_gpu *g = opaque;
    /* events_clear is the only writable field: each bit written as 1 clears that event. */
    for (unsigned i = 0; i < size; i++) {
        unsigned at = offset + i;
        if (at >= VIRTIO_GPU_CFG_EVENTS_CLEAR && at < VIRTIO_GPU_CFG_EVENTS_CLEAR + 4) {
            uint32_t bits = (uint32_t)((value >> (8 * i)) & 0xff) << (8 * (at - VIRTIO_GPU_CFG_EVENTS_CLEAR));
            g->events_read &= ~bits;
        }
    }
}

/* ---------------------------------------------------------------- queues and reset */

static void gpu_queue_notify(void *opaque, struct virtqueue *vq)
{
    struct virtio_gpu *g = opaque;
    if (vq->index == VIRTIO_GPU_CTRLQ)
        virtio_gpu_process_ctrl(g, vq);
    else
        virtio_gpu_process_cursor(g, vq);
}

static void gpu_reset(void *opaque)
{
    struct virtio_gpu *g = opaque;
    /* The next driver starts from nothing; the preferred modes (and a pending resize) stay. */
    virtio_gpu_drop_all(g);
    g->events_read = 0;
}

static const struct virtio_device_ops gpu_ops = {
    .config_read = gpu_config_read,
    .config_write = gpu_config_write,
    .queue_notify = gpu_queue_notify,
    .reset = gpu_reset,
};

/* ---------------------------------------------------------------- display interface */

/* A client wants width x height on this head: it becomes the head's preferred mode, and the guest hears of it
 * through the display event; the surface changes when (if) the guest sets a scanout of that size. */
static bool gpu_request_resize(struct display *d, unsigned width, unsigned height)
{
    struct virtio_gpu *g = d->opaque;
    char *why = NULL;
    if (d->head >= g->num_scanouts || !virtio_gpu_resolution_valid(width, height, &why)) {
        log_message_ratelimited(&g->rl, LOG_LEVEL_INFO, "virtio-gpu: resize to %ux%u refused: %s", width,
                                height, why ? why : "no such head");
        g_free(why);
        return false;
    }
    struct virtio_gpu_scanout *s = &g->scanouts[d->head];
    s->width = width;
    s->height = height;
    g->events_read |= VIRTIO_GPU_EVENT_DISPLAY;
    virtio_config_changed(&g->vp->vdev);
    return true;
}

static const struct display_ops gpu_display_ops = {
    .request_resize = gpu_request_resize,
};

/* ---------------------------------------------------------------- life cycle */

struct virtio_gpu *virtio_gpu_new(struct machine *m, unsigned slot, const struct virtio_gpu_config *cfg,
                                  char **error)
{
    unsigned n = cfg->num_scanouts ? cfg->num_scanouts : 1;
    unsigned w = cfg->width ? cfg->width : 1024, h = cfg->height ? cfg->height : 768;
    char *why = NULL;
    if (n > VIRTIO_GPU_MAX_SCANOUTS) {
        *error = g_strdup_printf("%u scanouts (at most %d)", n, VIRTIO_GPU_MAX_SCANOUTS);
        return NULL;
    }
    if (!virtio_gpu_resolution_valid(w, h, &why)) {
        *error = g_strdup_printf("resolution %s", why);
        g_free(why);
        return NULL;
    }
    struct virtio_gpu *g = g_new0(struct virtio_gpu, 1);
    g->m = m;
    g->num_scanouts = n;
    g->hostmem_max = cfg->hostmem_max ? cfg->hostmem_max : VIRTIO_GPU_HOSTMEM_DEFAULT;
    g->resources = g_hash_table_new(g_direct_hash, g_direct_equal);
    g->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 10);
    const struct virtio_pci_config pcfg = {
        .dev = {.name = device_name,
                .device_type = VIRTIO_ID_GPU,
                .features = VIRTIO_F_BIT(VIRTIO_GPU_F_EDID),
                .config_size = VIRTIO_GPU_CONFIG_SIZE,
                .num_queues = 2,
                .queue_max_size = VIRTIO_GPU_QUEUE_SIZE,
                .ops = &gpu_ops,
                .opaque = g},
        .class_code = VIRTIO_GPU_CLASS,
    };
    g->vp = virtio_pci_create(m->pci, slot, 0, &pcfg, error);
    if (!g->vp) {
        g_hash_table_unref(g->resources);
        g_free(g);
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        struct virtio_gpu_scanout *s = &g->scanouts[i];
        s->width = w;
        s->height = h;
        display_init(&s->display, m, "video0", "virtio-gpu", i, &gpu_display_ops, g);
        display_register(&s->display);
    }
    return g;
}

void virtio_gpu_free(struct virtio_gpu *g)
{
    if (!g)
        return;
    virtio_gpu_drop_all(g);
    for (unsigned i = 0; i < g->num_scanouts; i++)
        display_unregister(&g->scanouts[i].display);
    virtio_pci_free(g->vp);
    g_hash_table_unref(g->resources);
    g_free(g);
}

struct virtio_gpu *virtio_gpu_at(struct machine *m, unsigned slot)
{
    struct pci_device *p = m->pci ? pci_bus_get_device(m->pci, slot, 0) : NULL;
    if (!p || p->name != device_name)
        return NULL;
    return container_of(p, struct virtio_pci, pci)->vdev.opaque;
}

/* ---------------------------------------------------------------- the board's device */

static int gpu_create(struct machine *m, char **error)
{
    if (!m->pci) {
        *error = g_strdup("needs the PCI host bridge (list pci-host before it)");
        return -EINVAL;
    }
    const struct virtio_gpu_config cfg = {
        .num_scanouts = 1, .width = m->config.display_width, .height = m->config.display_height};
    return virtio_gpu_new(m, VIRTIO_GPU_SLOT, &cfg, error) ? 0 : -EINVAL;
}

static void gpu_machine_reset(struct machine *m)
{
    struct virtio_gpu *g = virtio_gpu_at(m, VIRTIO_GPU_SLOT);
    if (g)
        virtio_pci_reset(g->vp);
}

static void gpu_destroy(struct machine *m)
{
    virtio_gpu_free(virtio_gpu_at(m, VIRTIO_GPU_SLOT));
}

const struct machine_device virtio_gpu_device = {"virtio-gpu", gpu_create, gpu_machine_reset, gpu_destroy};
