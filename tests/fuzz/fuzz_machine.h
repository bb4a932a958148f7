/* What the machine-level libFuzzer targets share: reading the input as a little-endian byte stream that runs out
 * into zeros (so any input is a whole program), a fresh PC machine whose reset/power-off requests are dropped
 * (the fuzz program, not the guest, decides when the run ends), and a virtio driver bringing a device up on
 * rings at fixed guest addresses. Header-only: each target is one translation unit
 * linked with the machine sources (see the FUZZ rules in Makefile.am). */
#ifndef DESKVM_FUZZ_MACHINE_H
#define DESKVM_FUZZ_MACHINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <glib.h>

#include "log.h"
#include "machine.h"
#include "pc.h"
#include "virtio.h"
#include "virtqueue.h"

/* The unread rest of the fuzz input. */
struct cursor {
    const uint8_t *p;
    size_t left;
};

/* The next N (up to 8) input bytes as a little-endian number; bytes past the end read as 0. */
static inline uint64_t take(struct cursor *c, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        uint8_t b = 0;
        if (c->left) {
            b = *c->p++;
            c->left--;
        }
        v |= (uint64_t)b << (8 * i);
    }
    return v;
}

static inline void fuzz_ignore_request(void *opaque, enum machine_request req)
{
    (void)opaque;
    (void)req;
}

/* Builds the machine CFG describes into M (traps if it can't: the set-up is the target's, not the input's).
 * The first call quiets the log to errors; FUZZ_VERBOSE=1 shows everything the devices complain about, for
 * writing seeds. */
static inline void fuzz_machine_init(struct machine *m, const struct pc_config *cfg)
{
    static bool log_set;
    if (!log_set) {
        log_set_level(getenv("FUZZ_VERBOSE") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
        log_set = true;
    }
    char *err = NULL;
    if (pc_machine_init(m, cfg, &err) < 0) {
        g_free(err);
        __builtin_trap();
    }
    machine_set_request_handler(m, fuzz_ignore_request, NULL);
}

/* The driver's side of a modern virtio device: reset, FEATURES (the low 32 bits; VERSION_1 always), then queues
 * 0..NQUEUES-1 of QSIZE entries, queue n's descriptor table at RING0 + n * RING_STRIDE with its available ring
 * 0x1000 and its used ring 0x2000 above, and DRIVER_OK. */
static inline void fuzz_virtio_driver_up(struct virtio_device *vdev, uint32_t features, unsigned nqueues,
                                         uint16_t qsize, uint64_t ring0, uint64_t ring_stride)
{
    virtio_set_status(vdev, 0);
    virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    vdev->driver_feature_select = 0;
    virtio_set_driver_features_window(vdev, features);
    vdev->driver_feature_select = 1;
    virtio_set_driver_features_window(vdev, 1u << (VIRTIO_F_VERSION_1 - 32));
    uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    virtio_set_status(vdev, s);
    for (unsigned n = 0; n < nqueues; n++) {
        struct virtqueue *vq = &vdev->queues[n];
        uint64_t ring = ring0 + ring_stride * n;
        vq->size = qsize;
        vq->msix_vector = VIRTIO_MSI_NO_VECTOR;
        vq->desc_addr = ring;
        vq->avail_addr = ring + 0x1000;
        vq->used_addr = ring + 0x2000;
        virtqueue_enable(vq);
    }
    virtio_set_status(vdev, s | VIRTIO_CONFIG_S_DRIVER_OK);
}

#endif
