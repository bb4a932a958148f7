/* libFuzzer target for virtio-serial: a PC machine whose board made a virtio-serial device with two ports
 * (max_nr_ports 4, so id 3 is a queue pair without a port), the driver up on all ten queues, a fake backend
 * on port 1 whose capacity the input sets. The input is a program of control messages from the guest (any
 * event, id, value and length), control and data buffers of any size on any queue, host-side actions
 * (connect, disconnect, writes, resume) and driver restarts. Any crash, sanitizer report, leak or hang is a
 * bug: a hostile guest must never take deskvm down. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_machine.h"
#include "pci.h"
#include "virtio_pci.h"
#include "virtio_serial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM (16u << 20)
#define NPORTS_MAX 4
#define NQUEUES (2 * (NPORTS_MAX + 1))
#define QSIZE 16
#define RING(n) (0x10000ULL + 0x4000ULL * (n)) /* desc, avail at +0x1000, used at +0x2000 */
#define BUFAREA(n) (0x100000ULL + 0x40000ULL * (n))
#define BUF_MAX 0x3000

/* The fake backend: takes up to `room` bytes, then is full until the input gives it more. */
struct fake {
    size_t room;
    uint64_t taken;
    unsigned opens, closes, room_calls;
};

static void fb_open(void *opaque, bool open)
{
    struct fake *f = opaque;
    if (open)
        f->opens++;
    else
        f->closes++;
}

static size_t fb_data(void *opaque, const uint8_t *buf, size_t len)
{
    struct fake *f = opaque;
    (void)buf;
    size_t take_n = MIN(len, f->room);
    f->room -= take_n;
    f->taken += take_n;
    return take_n;
}

static void fb_room(void *opaque)
{
    struct fake *f = opaque;
    f->room_calls++;
}

static const struct serial_port_backend_ops fake_ops = {fb_open, fb_data, fb_room};

static void driver_up(struct virtio_device *vdev, bool multiport)
{
    fuzz_virtio_driver_up(vdev, multiport ? 1u << VIRTIO_CONSOLE_F_MULTIPORT : 0, NQUEUES, QSIZE, RING(0),
                          RING(1) - RING(0));
}

/* One buffer on queue n (device-writable for receive queues), len bytes, the first bytes from the input. */
static void post(struct machine *m, struct virtio_device *vdev, unsigned n, struct cursor *c,
                 uint16_t *avail_idx, uint32_t len, bool writable)
{
    uint16_t slot = avail_idx[n] % QSIZE;
    uint64_t addr = BUFAREA(n) + (uint64_t)slot * BUF_MAX;
    if (!writable) {
        uint32_t from_input = (uint32_t)MIN((size_t)len, c->left);
        guest_mem_write(&m->mem, addr, c->p, from_input);
        c->p += from_input;
        c->left -= from_input;
    }
    uint8_t d[16];
    le64_store(d, addr);
    le32_store(d + 8, len);
    le16_store(d + 12, writable ? VIRTQ_DESC_F_WRITE : 0);
    le16_store(d + 14, 0);
    guest_mem_write(&m->mem, RING(n) + 16ULL * slot, d, sizeof(d));
    uint64_t avail = RING(n) + 0x1000;
    guest_mem_write_u16(&m->mem, avail + 4 + 2 * slot, slot);
    avail_idx[n]++;
    guest_mem_write_u16(&m->mem, avail + 2, avail_idx[n]);
    if (virtqueue_ready(&vdev->queues[n]))
        vdev->ops->queue_notify(vdev->opaque, &vdev->queues[n]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct machine m;
    const struct virtio_serial_conf conf = {
        .nports = 2, .names = {"org.deskvm.fuzz.0", "com.redhat.spice.0"}, .max_nr_ports = NPORTS_MAX};
    struct pc_config cfg = {.ram_size = RAM, .cpus = 1, .manual_clock = true, .virtio_serial = &conf};
    fuzz_machine_init(&m, &cfg);
    machine_lock(&m);
    struct virtio_serial *vs = virtio_serial_at(&m, VIRTIO_SERIAL_SLOT);
    if (!vs)
        __builtin_trap();
    struct pci_device *pd = pci_bus_get_device(m.pci, VIRTIO_SERIAL_SLOT, 0);
    pci_config_set16(pd, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    struct virtio_device *vdev = &container_of(pd, struct virtio_pci, pci)->vdev;
    struct serial_port *p1 = virtio_serial_port(vs, "org.deskvm.fuzz.0");
    struct fake fake = {0};
    serial_port_attach(p1, &fake_ops, &fake);
    struct cursor c = {data, size};
    uint16_t avail_idx[NQUEUES] = {0};
    driver_up(vdev, !(take(&c, 1) & 0x80));
    static uint8_t hostbuf[64 * 1024];
    for (unsigned ops = 0; c.left && ops < 512; ops++) {
        switch (take(&c, 1) % 8) {
        case 0:
        case 1: { /* a control message: mostly well-formed events with small ids, sometimes anything */
            uint8_t msg[16];
            uint32_t len = (uint32_t)take(&c, 1);
            len = len < 200 ? 8 : len % 17;
            uint32_t id = (uint32_t)take(&c, 1);
            le32_store(msg, id < 240 ? id % 6 : (uint32_t)take(&c, 4));
            le16_store(msg + 4, (uint16_t)(take(&c, 1) % 9));
            le16_store(msg + 6, (uint16_t)(take(&c, 1) % 3));
            memcpy(msg + 8, c.p, MIN((size_t)8, c.left));
            guest_mem_write(
                &m.mem, BUFAREA(VIRTIO_SERIAL_CTRL_TX) + (avail_idx[VIRTIO_SERIAL_CTRL_TX] % QSIZE) * BUF_MAX,
                msg, sizeof(msg));
            uint16_t slot = avail_idx[VIRTIO_SERIAL_CTRL_TX] % QSIZE;
            uint8_t d[16];
            le64_store(d, BUFAREA(VIRTIO_SERIAL_CTRL_TX) + (uint64_t)slot * BUF_MAX);
            le32_store(d + 8, len);
            le16_store(d + 12, 0);
            le16_store(d + 14, 0);
            guest_mem_write(&m.mem, RING(VIRTIO_SERIAL_CTRL_TX) + 16ULL * slot, d, sizeof(d));
            uint64_t avail = RING(VIRTIO_SERIAL_CTRL_TX) + 0x1000;
            guest_mem_write_u16(&m.mem, avail + 4 + 2 * slot, slot);
            avail_idx[VIRTIO_SERIAL_CTRL_TX]++;
            guest_mem_write_u16(&m.mem, avail + 2, avail_idx[VIRTIO_SERIAL_CTRL_TX]);
            if (virtqueue_ready(&vdev->queues[VIRTIO_SERIAL_CTRL_TX]))
                vdev->ops->queue_notify(vdev->opaque, &vdev->queues[VIRTIO_SERIAL_CTRL_TX]);
            break;
        }
        case 2: /* a control receive buffer */
            post(&m, vdev, VIRTIO_SERIAL_CTRL_RX, &c, avail_idx, (uint32_t)(take(&c, 2) % BUF_MAX), true);
            break;
        case 3: { /* guest data on a port's transmit queue (0..4: port 0, both ports, an unconfigured id) */
            unsigned id = (unsigned)take(&c, 1) % NPORTS_MAX;
            post(&m, vdev, VIRTIO_SERIAL_PORT_TX(id), &c, avail_idx, (uint32_t)(take(&c, 2) % BUF_MAX),
                 false);
            break;
        }
        case 4: { /* a receive buffer on a port */
            unsigned id = (unsigned)take(&c, 1) % NPORTS_MAX;
            post(&m, vdev, VIRTIO_SERIAL_PORT_RX(id), &c, avail_idx, (uint32_t)(take(&c, 2) % BUF_MAX), true);
            break;
        }
        case 5: { /* the host end */
            unsigned what = (unsigned)take(&c, 1);
            if (what % 4 == 0)
                serial_port_set_host_connected(p1, what & 0x10);
            else if (what % 4 == 1)
                serial_port_host_write(p1, hostbuf, take(&c, 2) % sizeof(hostbuf));
            else if (what % 4 == 2) {
                fake.room += take(&c, 2);
                serial_port_resume_guest_data(p1);
            } else
                serial_port_host_room(p1);
            break;
        }
        case 6: /* a notification on any queue, with nothing new */
            vdev->ops->queue_notify(vdev->opaque, &vdev->queues[take(&c, 1) % NQUEUES]);
            break;
        case 7: /* the driver starts over */
            driver_up(vdev, !(take(&c, 1) & 0x80));
            memset(avail_idx, 0, sizeof(avail_idx));
            break;
        }
    }
    if (getenv("FUZZ_VERBOSE")) {
        struct virtio_serial_stats st;
        virtio_serial_get_stats(vs, &st);
        fprintf(
            stderr,
            "fuzz-virtio-serial: %llu guest errors, %llu ctrl dropped, backend took %llu, opens %u/%u, %s\n",
            (unsigned long long)st.guest_errors, (unsigned long long)st.ctrl_dropped,
            (unsigned long long)fake.taken, fake.opens, fake.closes, vdev->broken ? "broken" : "healthy");
    }
    machine_unlock(&m);
    machine_destroy(&m);
    return 0;
}
