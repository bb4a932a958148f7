/* The display interface: what a display device publishes (a surface, damage, a hardware cursor, mode changes,
 * a resize hook) and what front ends (screendump, VNC, SPICE) consume, without either side knowing the other.
 */
#ifndef DESKVM_DISPLAY_H
#define DESKVM_DISPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <pixman.h>

struct machine;
struct display;

/* Frames per second of the refresh the display core runs while anyone listens: it polls devices that cannot
 * report damage (a dumb framebuffer's write tracking). */
#define DISPLAY_REFRESH_HZ 30
/* Damage and cursor changes a device reports bring the next refresh forward instead of waiting for the timer,
 * at most this often: front ends see a guest's flush within a frame, not a third of a second later. */
#define DISPLAY_WAKE_MAX_HZ 60
/* Hardware cursor images are at most this big (virtio-gpu and QXL use 64x64). */
#define DISPLAY_CURSOR_MAX 256

struct display_cursor {
    pixman_image_t *image; /* PIXMAN_a8r8g8b8, or NULL: no shape (the cursor is invisible) */
    int hot_x, hot_y;      /* hotspot inside the image */
    int x, y;              /* where the hotspot is, in surface pixels */
    bool visible;
};

/* What a display device implements. All calls hold the machine lock. */
struct display_ops {
    /* Consumers are about to collect damage: a device that cannot see guest writes (a dumb framebuffer) turns
     * its write tracking into display_add_damage here. May be NULL. */
    void (*refresh)(struct display *d);
    /* Someone listens (on) or nobody does any more (off): a device may track damage only while wanted. */
    void (*set_tracking)(struct display *d, bool on);
    /* A client asks for width x height. True if the device passed the request on to the guest; the new mode
     * arrives later as a surface change, if the guest acts on it. NULL: the mode is the guest's alone. */
    bool (*request_resize)(struct display *d, unsigned width, unsigned height);
    /* A device that speaks SPICE's QXL interface itself (qxl) takes the SPICE server here (a SpiceServer *,
     * void * to keep spice headers out of this interface) and adds its own QXL instance; the SPICE front end
     * then feeds no simple display from the surface. Main loop, machine lock not held. False with *error when
     * it could not. NULL for every other device. */
    bool (*spice_attach)(struct display *d, void *spice_server, char **error);
    /* The SPICE server is going away: remove the QXL instance. May be NULL. */
    void (*spice_detach)(struct display *d);
};

/* What a consumer implements. Called on the main loop without the machine lock, from display_refresh. */
struct display_listener_ops {
    /* A new surface (mode change, pan, or the first call after subscribing): all its pixels are new. surface
     * is NULL while the display is off. The consumer may keep a reference (pixman_image_ref) to read pixels
     * later; they stay readable while the machine exists, though the guest keeps writing into them. */
    void (*surface)(void *opaque, struct display *d, pixman_image_t *surface);
    /* Pixels inside region (surface coordinates, clipped to the surface) changed since the last call. */
    void (*damage)(void *opaque, struct display *d, const pixman_region32_t *region);
    /* The cursor's shape, position or visibility changed. May be NULL. */
    void (*cursor)(void *opaque, struct display *d, const struct display_cursor *cursor);
};

struct display_listener {
    const struct display_listener_ops *ops;
    void *opaque;
    uint64_t surface_gen; /* the surface it last saw (0: none yet) */
    uint64_t cursor_gen;
};

/* One output (head) of a display device; embedded in the device's state. */
struct display {
    const char *name;  /* the device id QMP knows it by ("video0") */
    const char *model; /* the device model ("bochs-display") */
    unsigned head;
    const struct display_ops *ops;
    void *opaque; /* the device */
    struct machine *m;
    struct display *next; /* m->displays */

    /* Device side: changed under the machine lock. */
    pixman_image_t *surface;
    uint64_t surface_gen;
    pixman_region32_t damage; /* accumulated since the last display_refresh */
    struct display_cursor cursor;
    uint64_t cursor_gen;

    /* Consumer side: main loop only. */
    GPtrArray *listeners; /* struct display_listener * */
    guint refresh_source;

    /* Early refreshes (DISPLAY_WAKE_MAX_HZ), under the machine lock: devices schedule one on the default main
     * context from whichever thread reports the change. */
    bool wake_wanted;    /* someone listens */
    GSource *wake;       /* the scheduled early refresh, if any */
    gint64 last_refresh; /* monotonic microseconds of the last hand-over */
};

/* ---- devices (machine lock held) */

void display_init(struct display *d, struct machine *m, const char *name, const char *model, unsigned head,
                  const struct display_ops *ops, void *opaque);
/* Publishes d in m->displays (creation order), or takes it out again; unregister drops the surface, cursor
 * and any listener left (it does not call them). */
void display_register(struct display *d);
void display_unregister(struct display *d);
/* A new surface (takes its own reference; NULL: display off). Damage collected so far is dropped: consumers
 * take the new surface whole. */
void display_set_surface(struct display *d, pixman_image_t *surface);
/* Marks a rectangle changed (clipped to the surface; nothing without one). */
void display_add_damage(struct display *d, int x, int y, int width, int height);
/* Cursor shape (image may be NULL; a reference is taken) with its hotspot, and position/visibility. */
void display_set_cursor(struct display *d, pixman_image_t *image, int hot_x, int hot_y);
void display_move_cursor(struct display *d, int x, int y, bool visible);

/* ---- consumers (main loop) */

/* The display with QMP id or model name `name` and head, or the first display when name is NULL. */
struct display *display_find(struct machine *m, const char *name, unsigned head);
/* Passes a client's wish for width x height to the device (taking the machine lock): true if the device told
 * the guest, false if it has no way to (or refused the size). The new mode arrives later as a surface change.
 */
bool display_request_resize(struct display *d, unsigned width, unsigned height);
/* The current surface with a reference the caller drops (pixman_image_unref), or NULL while the display is
 * off. Call holding the machine lock. */
pixman_image_t *display_get_surface(struct display *d);
/* Subscribes: from the next display_refresh on, the consumer gets the surface, then damage and cursor
 * changes. The first listener switches the device's tracking on and starts the refresh timer
 * (DISPLAY_REFRESH_HZ on the default main context); the last one leaving stops both. */
struct display_listener *display_add_listener(struct display *d, const struct display_listener_ops *ops,
                                              void *opaque);
void display_remove_listener(struct display *d, struct display_listener *l);
/* Collects what changed (takes the machine lock for the device's refresh and the hand-over, then drops it)
 * and tells every listener. The timer calls this; a consumer may call it too, to be up to date now. */
void display_refresh(struct display *d);

#endif
