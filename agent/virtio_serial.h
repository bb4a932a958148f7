/* virtio-serial: the virtio console device (virtio 1.1, 5.3; device type 3, PCI 1af4:1043) with
 * VIRTIO_CONSOLE_F_MULTIPORT, offering named ports (/dev/virtio-ports/NAME in a Linux guest) whose host ends
 * are port backends (serial_port.h). Port 0, the console port, is not offered; named ports get ids from 1. */
#ifndef DESKVM_VIRTIO_SERIAL_H
#define DESKVM_VIRTIO_SERIAL_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "log.h"
#include "machine.h"
#include "serial_port.h"

#define VIRTIO_SERIAL_SLOT 6 /* 00:06.0 on the PC board */

/* Feature bits (5.3.3). */
#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_MULTIPORT 1
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

/* Configuration space (5.3.4): le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr. */
#define VIRTIO_CONSOLE_CFG_COLS 0
#define VIRTIO_CONSOLE_CFG_ROWS 2
#define VIRTIO_CONSOLE_CFG_MAX_NR_PORTS 4
#define VIRTIO_CONSOLE_CFG_EMERG_WR 8
#define VIRTIO_CONSOLE_CONFIG_SIZE 12

/* Control messages (5.3.6.2): le32 id, le16 event, le16 value, then (PORT_NAME) the name without a NUL. */
#define VIRTIO_CONSOLE_DEVICE_READY 0
#define VIRTIO_CONSOLE_PORT_ADD 1
#define VIRTIO_CONSOLE_PORT_REMOVE 2
#define VIRTIO_CONSOLE_PORT_READY 3
#define VIRTIO_CONSOLE_CONSOLE_PORT 4
#define VIRTIO_CONSOLE_RESIZE 5
#define VIRTIO_CONSOLE_PORT_OPEN 6
#define VIRTIO_CONSOLE_PORT_NAME 7
#define VIRTIO_CONSOLE_CONTROL_SIZE 8

/* Queues: port 0 receive/transmit, control receive/transmit (host to guest, guest to host), then a
 * receive/transmit pair per port from 1. */
#define VIRTIO_SERIAL_CTRL_RX 2
#define VIRTIO_SERIAL_CTRL_TX 3
#define VIRTIO_SERIAL_PORT_RX(id) ((id) == 0 ? 0u : 2u + 2u * (id))
#define VIRTIO_SERIAL_PORT_TX(id) (VIRTIO_SERIAL_PORT_RX(id) + 1u)
#define VIRTIO_SERIAL_QUEUE_SIZE 128

/* max_nr_ports: 31 gives 64 queues, the transport's limit. Port 0 is reserved, so 30 named ports. */
#define VIRTIO_SERIAL_MAX_NR_PORTS 31
#define VIRTIO_SERIAL_PORTS_MAX (VIRTIO_SERIAL_MAX_NR_PORTS - 1)
#define VIRTIO_SERIAL_NAME_MAX 127
/* Host bytes queued per port for the guest; control messages waiting for guest buffers. */
#define VIRTIO_SERIAL_HOST_QUEUE_MAX (256 * 1024)
#define VIRTIO_SERIAL_CTRL_PENDING_MAX 256
/* Guest bytes copied out of a transmit buffer at a time. */
#define VIRTIO_SERIAL_TX_CHUNK 4096

/* What the board creates: port names, in id order from 1. */
struct virtio_serial_conf {
    unsigned nports;
    const char *names[VIRTIO_SERIAL_PORTS_MAX];
    unsigned max_nr_ports; /* 0: VIRTIO_SERIAL_MAX_NR_PORTS; otherwise nports + 1 .. that (tests use fewer) */
};

/* Whether NAME can name a port (1..VIRTIO_SERIAL_NAME_MAX printable ASCII characters, no '/' or space). */
bool virtio_serial_name_valid(const char *name, char **error);

struct virtio_serial;

extern const struct machine_device virtio_serial_device; /* uses m->config.virtio_serial */

struct virtio_serial *virtio_serial_new(struct machine *m, unsigned slot,
                                        const struct virtio_serial_conf *conf, char **error);
void virtio_serial_free(struct virtio_serial *vs);
/* The device at slot, NULL if none. */
struct virtio_serial *virtio_serial_at(struct machine *m, unsigned slot);
/* A port by name (NULL if none). */
struct serial_port *virtio_serial_port(struct virtio_serial *vs, const char *name);
/* Device-level counters for tests and logs. */
struct virtio_serial_stats {
    uint64_t guest_errors;        /* bad control messages and buffers */
    uint64_t ctrl_dropped;        /* control messages dropped: the guest posted no control buffers */
    uint64_t guest_bytes_dropped; /* guest data with nowhere to go (no backend) */
};
void virtio_serial_get_stats(struct virtio_serial *vs, struct virtio_serial_stats *out);

#endif
