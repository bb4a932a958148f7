/* The host side of a virtio-serial port: what a port backend (a unix socket today, spice-server's vdagent
 * char device later) implements, and what it calls on the port. A port is a named byte stream between the
 * guest (/dev/virtio-ports/NAME) and one backend; both ends open and close it independently and data flows
 * both ways with flow control and bounded buffering.
 *
 * Threads: the device side runs under the machine lock, on vCPU threads (guest kicks) or the main loop. The
 * backend's ops are called with the machine lock held, from either; a backend must not block in them and must
 * not take a lock of its own that it also holds while calling the serial_port_* functions below (those take
 * the machine lock themselves: the order is machine lock, then the backend's lock). */
#ifndef DESKVM_SERIAL_PORT_H
#define DESKVM_SERIAL_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct serial_port;

struct serial_port_backend_ops {
    /* The guest opened (true) or closed (false) the port; also false when the guest's driver resets the
     * device while the port was open. */
    void (*guest_open)(void *opaque, bool open);
    /* Bytes the guest wrote. Returns how many the backend took; fewer than len means it is full: the port
     * keeps the rest in the guest's buffer (the guest then blocks) until the backend calls
     * serial_port_resume_guest_data. May be NULL: guest data is then discarded. */
    size_t (*guest_data)(void *opaque, const uint8_t *buf, size_t len);
    /* serial_port_host_write took fewer bytes than offered (or serial_port_host_room was 0) and there is room
     * again: the backend may offer more. May be NULL. */
    void (*host_room)(void *opaque);
};

/* Binds a backend to the port (one at a time; NULL ops detach). Called before the guest runs or under the
 * machine lock. */
void serial_port_attach(struct serial_port *p, const struct serial_port_backend_ops *ops, void *opaque);
const char *serial_port_name(const struct serial_port *p);

/* The host side connected or went away (e.g. a socket client): the guest gets PORT_OPEN 1/0 (reading the port
 * gives end-of-file while the host is not connected, and writes block). */
void serial_port_set_host_connected(struct serial_port *p, bool connected);
/* Queues host bytes for the guest; returns how many fit (the per-port host queue is bounded). Bytes reach the
 * guest while it has the port open and posts receive buffers; they wait otherwise. */
size_t serial_port_host_write(struct serial_port *p, const void *buf, size_t len);
/* How many bytes serial_port_host_write would take now. */
size_t serial_port_host_room(struct serial_port *p);
/* The backend has room again after guest_data took less than offered. */
void serial_port_resume_guest_data(struct serial_port *p);
bool serial_port_guest_is_open(struct serial_port *p);

#endif
