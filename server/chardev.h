/* Character-device backends (stdio, file, unix socket, none) behind one byte-stream interface, used by the serial
 * console and later by virtio-serial ports. Writes are thread-safe and never block the caller; input is delivered
 * on the GLib main loop. */
#ifndef DESKVM_CHARDEV_H
#define DESKVM_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum chardev_kind {
    CHARDEV_NONE,
    CHARDEV_STDIO,
    CHARDEV_FILE,
    CHARDEV_UNIX,
};

struct chardev_spec {
    enum chardev_kind kind;
    char *path; /* absolute, for FILE and UNIX */
};

/* Parses "none", "stdio", "file:PATH" or "unix:PATH" (a listening socket; QEMU's ",server,nowait" flags are
 * accepted). On error returns false with a message in *error (caller frees). */
bool chardev_spec_parse(const char *s, struct chardev_spec *out, char **error);
void chardev_spec_clear(struct chardev_spec *spec);
char *chardev_spec_to_string(const struct chardev_spec *spec);

struct chardev;

/* Called on the main loop with bytes that arrived from outside (terminal, socket client). */
typedef void (*chardev_receive_fn)(void *opaque, const uint8_t *buf, size_t len);
/* Called on the main loop when a client connects (true) or leaves (false). */
typedef void (*chardev_event_fn)(void *opaque, bool connected);

/* Bytes queued for a slow reader before further output is dropped. */
#define CHARDEV_OUTPUT_LIMIT (64 * 1024)

struct chardev *chardev_open(const struct chardev_spec *spec, char **error);
void chardev_set_handlers(struct chardev *chr, chardev_receive_fn receive, chardev_event_fn event, void *opaque);
/* Queues bytes for output. Returns how many were accepted; bytes beyond the output limit, or written while no
 * client is connected to a socket backend, are dropped and counted. */
size_t chardev_write(struct chardev *chr, const void *buf, size_t len);
bool chardev_is_connected(struct chardev *chr);
uint64_t chardev_dropped_bytes(struct chardev *chr);
/* Writes out what is queued (bounded by timeout_ms), for orderly shutdown. */
void chardev_flush(struct chardev *chr, int timeout_ms);
void chardev_close(struct chardev *chr);

#endif
