/* virtio device core: features, status, reset, configuration space, interrupts and device errors. */
#include "virtio.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <glib.h>

#include "virtqueue.h"

static bool is_pow2(unsigned v)
{
    return v && !(v & (v - 1));
}

int virtio_device_init(struct virtio_device *vdev, struct guest_memory *mem,
                       const struct virtio_device_config *cfg)
{
    memset(vdev, 0, sizeof(*vdev));
    if (!cfg->ops || !cfg->ops->config_read || cfg->num_queues < 1 || cfg->num_queues > VIRTIO_QUEUES_MAX ||
        cfg->config_size > VIRTIO_CONFIG_SPACE_MAX || !is_pow2(cfg->queue_max_size) ||
        cfg->queue_max_size < 2 || cfg->queue_max_size > VIRTQUEUE_MAX_SIZE)
        return -EINVAL;
    vdev->name = cfg->name ? cfg->name : "virtio";
    vdev->device_type = cfg->device_type;
    vdev->mem = mem;
    vdev->ops = cfg->ops;
    vdev->opaque = cfg->opaque;
    /* The device type owns the bits outside the transport range; the core decides those inside it. */
    vdev->host_features = (cfg->features & ~VIRTIO_TRANSPORT_FEATURES_MASK) | VIRTIO_CORE_FEATURES;
    vdev->config_size = cfg->config_size;
    vdev->num_queues = cfg->num_queues;
    vdev->queues = g_new0(struct virtqueue, cfg->num_queues);
    for (unsigned i = 0; i < cfg->num_queues; i++)
        virtqueue_init(&vdev->queues[i], vdev, (uint16_t)i, cfg->queue_max_size);
    vdev->error_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 10);
    vdev->config_vector = VIRTIO_MSI_NO_VECTOR;
    return 0;
}

void virtio_device_cleanup(struct virtio_device *vdev)
{
    g_free(vdev->queues);
    vdev->queues = NULL;
    vdev->num_queues = 0;
}

void virtio_device_reset(struct virtio_device *vdev)
{
    vdev->status = 0;
    vdev->driver_features = 0;
    vdev->device_feature_select = vdev->driver_feature_select = 0;
    vdev->config_vector = VIRTIO_MSI_NO_VECTOR;
    vdev->isr = 0;
    vdev->broken = false;
    vdev->reset_epoch++;
    for (unsigned i = 0; i < vdev->num_queues; i++)
        virtqueue_reset(&vdev->queues[i]);
    if (vdev->transport && vdev->transport->reset)
        vdev->transport->reset(vdev->transport_opaque);
    if (vdev->ops->reset)
        vdev->ops->reset(vdev->opaque);
}

uint8_t virtio_get_status(const struct virtio_device *vdev)
{
    return (uint8_t)(vdev->status | (vdev->broken ? VIRTIO_CONFIG_S_NEEDS_RESET : 0));
}

/* FEATURES_OK sticks only for a subset of the offer that includes VERSION_1 (there is no legacy interface to
 * fall back to) and that the device type accepts. */
static bool features_acceptable(struct virtio_device *vdev)
{
    uint64_t f = vdev->driver_features;
    if (f & ~vdev->host_features) {
        log_message_ratelimited(&vdev->error_rl, LOG_LEVEL_WARN,
                                "virtio %s: driver accepted features 0x%llx that were not offered",
                                vdev->name, (unsigned long long)(f & ~vdev->host_features));
        return false;
    }
    if (!(f & VIRTIO_F_BIT(VIRTIO_F_VERSION_1))) {
        log_message_ratelimited(
            &vdev->error_rl, LOG_LEVEL_WARN,
            "virtio %s: driver did not accept VIRTIO_F_VERSION_1 (legacy is not supported)", vdev->name);
        return false;
    }
    return !vdev->ops->set_features || vdev->ops->set_features(vdev->opaque, f);
}

void virtio_set_status(struct virtio_device *vdev, uint8_t status)
{
    if (status == 0) {
        virtio_device_reset(vdev);
        return;
    }
    status &= (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
    uint8_t old = vdev->status;
    if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK) &&
        !features_acceptable(vdev))
        status &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
    /* DRIVER_OK without negotiated features would run the rings with undefined features. */
    if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !(status & VIRTIO_CONFIG_S_FEATURES_OK)) {
        log_message_ratelimited(&vdev->error_rl, LOG_LEVEL_WARN,
                                "virtio %s: DRIVER_OK without FEATURES_OK ignored", vdev->name);
        status &= (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK;
    }
    vdev->status = status;
}

uint32_t virtio_get_device_features_window(const struct virtio_device *vdev)
{
    if (vdev->device_feature_select > 1)
        return 0;
    return (uint32_t)(vdev->host_features >> (32 * vdev->device_feature_select));
}

uint32_t virtio_get_driver_features_window(const struct virtio_device *vdev)
{
    if (vdev->driver_feature_select > 1)
        return 0;
    return (uint32_t)(vdev->driver_features >> (32 * vdev->driver_feature_select));
}

void virtio_set_driver_features_window(struct virtio_device *vdev, uint32_t value)
{
    /* Features are frozen once FEATURES_OK is set; windows past bit 63 hold nothing. */
    if ((vdev->status & VIRTIO_CONFIG_S_FEATURES_OK) || vdev->driver_feature_select > 1)
        return;
    unsigned shift = 32 * vdev->driver_feature_select;
    vdev->driver_features = (vdev->driver_features & ~(0xffffffffULL << shift)) | (uint64_t)value << shift;
}

static bool config_access_ok(const struct virtio_device *vdev, unsigned offset, unsigned size)
{
    return (size == 1 || size == 2 || size == 4 || size == 8) && offset < vdev->config_size &&
           size <= vdev->config_size - offset;
}

uint64_t virtio_config_read(struct virtio_device *vdev, unsigned offset, unsigned size)
{
    if (!config_access_ok(vdev, offset, size))
        return 0;
    return vdev->ops->config_read(vdev->opaque, offset, size);
}

void virtio_config_write(struct virtio_device *vdev, unsigned offset, uint64_t value, unsigned size)
{
    if (config_access_ok(vdev, offset, size) && vdev->ops->config_write)
        vdev->ops->config_write(vdev->opaque, offset, value, size);
}

void virtio_raise_interrupt(struct virtio_device *vdev, uint8_t isr_bit, uint16_t vector)
{
    if (vdev->transport && vdev->transport->interrupt)
        vdev->transport->interrupt(vdev->transport_opaque, isr_bit, vector);
}

bool virtio_dma_allowed(const struct virtio_device *vdev)
{
    return !vdev->transport || !vdev->transport->dma_allowed ||
           vdev->transport->dma_allowed(vdev->transport_opaque);
}

void virtio_config_changed(struct virtio_device *vdev)
{
    vdev->config_generation++;
    if (virtio_driver_ok(vdev))
        virtio_raise_interrupt(vdev, VIRTIO_ISR_CONFIG, vdev->config_vector);
}

void virtio_device_error(struct virtio_device *vdev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    log_message_ratelimited(&vdev->error_rl, LOG_LEVEL_WARN, "virtio %s: %s; device needs reset", vdev->name,
                            msg);
    g_free(msg);
    if (vdev->broken)
        return;
    vdev->broken = true;
    /* The spec asks for a configuration change notification once the driver can take it (2.1.2). */
    if (virtio_driver_ok(vdev))
        virtio_raise_interrupt(vdev, VIRTIO_ISR_CONFIG, vdev->config_vector);
}
