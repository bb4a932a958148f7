/* The VNC front end: a libvncserver screen fed by one display (gpu/display.h) and feeding the machine's input
 * router (machine/input.h). libvncserver runs on a thread of its own; the main loop only hands it display
 * changes and new connections, and takes input events back (see vnc_internal.h for the split). */
#ifndef DESKVM_VNC_H
#define DESKVM_VNC_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "vnc_spec.h"

struct machine;
struct input;
struct vnc;

/* At most this many clients at once; more are disconnected right after accept. */
#define VNC_MAX_CLIENTS 64
/* VNC authentication (DES) uses this many password characters; the rest are ignored by the protocol. */
#define VNC_PASSWORD_MAX 8

/* Starts serving spec. m may be NULL or have no display: clients then see a black 640x480 screen. in may be
 * NULL (no input). keymap_layout is the --keymap layout (NULL: us). Returns NULL with *error on failure. */
struct vnc *vnc_start(const struct vnc_spec *spec, struct machine *m, struct input *in,
                      const char *keymap_layout, const char *desktop_name, char **error);
/* Disconnects every client, stops the thread and the listeners. NULL is fine. */
void vnc_stop(struct vnc *v);

/* QMP set_password / expire_password. set fails (false, *error) when the server runs without password=on. */
bool vnc_set_password(struct vnc *v, const char *password, char **error);
/* expire_at: g_get_real_time() microseconds after which the password stops working; 0 = never; <0 = now. */
void vnc_expire_password(struct vnc *v, gint64 expire_at);

struct vnc_client_info {
    char host[64];
    char service[16];
    const char *family; /* "ipv4", "ipv6", "unix" */
    bool websocket;
};
struct vnc_server_info {
    char host[64];
    char service[16];
    const char *family;
    const char *auth; /* "none" or "vnc" */
    unsigned nclients;
    struct vnc_client_info clients[VNC_MAX_CLIENTS];
};
/* A snapshot for QMP query-vnc. */
void vnc_query(struct vnc *v, struct vnc_server_info *out);

#endif
