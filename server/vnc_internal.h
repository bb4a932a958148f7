/* What the VNC front end's files share. Threads: the main loop owns the listeners, the display listener and
 * the input router calls; the VNC thread owns the libvncserver screen, the shadow framebuffer and every
 * client. They meet only in the fields under `lock`. */
#ifndef DESKVM_VNC_INTERNAL_H
#define DESKVM_VNC_INTERNAL_H

#include <rfb/rfb.h>

#include <pixman.h>

#include "display.h"
#include "log.h"
#include "vnc.h"

/* Input events queued by the VNC thread for the main loop; a client flooding faster than the guest takes them
 * loses events beyond this. */
#define VNC_INPUT_QUEUE_MAX 4096
/* Authentication failures allowed in VNC_AUTH_FAIL_WINDOW_US before every attempt fails until the window
 * ends. */
#define VNC_AUTH_FAIL_MAX 10
#define VNC_AUTH_FAIL_WINDOW_US (10 * G_USEC_PER_SEC)

enum vnc_event_kind {
    VNC_EV_KEYSYM,  /* value: X11 keysym */
    VNC_EV_KEYCODE, /* value: evdev key (extended key event) */
    VNC_EV_POINTER, /* x, y in pixels of a width x height screen; mask: RFB button mask */
    VNC_EV_RELEASE, /* a client went away: release whatever is held */
    VNC_EV_RESIZE,  /* a client asks for width x height */
};

struct vnc_event {
    enum vnc_event_kind kind;
    bool down;
    uint32_t value;
    int x, y, mask, width, height;
};

/* cl->clientData. */
struct vnc_client {
    struct vnc *v;
    rfbClientPtr cl;
    struct vnc_client_info info;
    bool extkey_acked;  /* QEMU extended key events announced to the client */
    bool ptrtype_acked; /* QEMU pointer type change (absolute) announced */
};

/* An accepted connection on its way to the VNC thread (libvncserver tells WebSocket from RFB itself). */
struct vnc_pending_fd {
    int fd;
};

struct vnc {
    struct vnc_spec spec;
    struct machine *m;
    struct display *display;
    struct input *in;
    struct display_listener *listener;
    char *desktop_name;

    /* main loop: listening sockets */
    int listen_fd[2];
    guint listen_watch[2];
    char listen_host[64], listen_service[16];
    const char *listen_family;

    GThread *thread;
    gint quit; /* atomic */
    /* eventfd: the main loop handed something over; wakes the thread out of libvncserver's select */
    int wake_fd;

    GMutex lock;
    /* [lock] main loop -> VNC thread */
    bool surface_pending;
    pixman_image_t *new_surface;
    pixman_region32_t damage;
    bool cursor_pending;
    pixman_image_t *cursor_image;
    int cursor_hot_x, cursor_hot_y;
    bool cursor_visible;
    bool cursor_pos_pending; /* the guest moved its cursor (its hotspot) to cursor_x, cursor_y */
    int cursor_x, cursor_y;
    GArray *new_fds; /* struct vnc_pending_fd */
    /* [lock] VNC thread -> main loop */
    GArray *events;     /* struct vnc_event */
    GPtrArray *garbage; /* pixman images the VNC thread is done with: only the main loop (un)refs them */
    guint drain_source;
    uint64_t events_dropped;
    /* [lock] authentication */
    char password[VNC_PASSWORD_MAX + 1];
    bool have_password;
    gint64 expire_at; /* 0 never, else real-time microseconds */
    gint64 fail_window_start;
    unsigned fail_count;
    /* [lock] clients, for query-vnc */
    GPtrArray *clients; /* struct vnc_client *, owned by the VNC thread */

    /* VNC thread */
    rfbScreenInfoPtr screen;
    pixman_image_t *surface; /* the guest surface the shadow follows (the main loop's reference), or NULL */
    pixman_image_t *source;  /* the VNC thread's own image over the surface's pixels (pixman objects are not
                              * thread-safe, their pixels are) */
    pixman_image_t *shadow;  /* x8r8g8b8 over shadow_bits: what clients see */
    uint32_t *shadow_bits;

    /* main loop: keyboard and pointer state */
    struct keymap *keymap;
    unsigned held_mods;
    GHashTable *pressed; /* keysym -> evdev code it was pressed as */
    /* main loop: the cursor last handed to the thread (a reference, compared by identity) */
    pixman_image_t *shown_cursor;
    int shown_hot_x, shown_hot_y;
    bool shown_visible;
    int last_mask;
    struct log_ratelimit rl;        /* main loop */
    struct log_ratelimit rl_thread; /* VNC thread */
};

/* vnc_input.c: libvncserver input hooks (VNC thread) and the main-loop side that feeds the input router. */
void vnc_input_init(struct vnc *v, rfbScreenInfoPtr s);
void vnc_input_queue(struct vnc *v, const struct vnc_event *ev);
/* Schedules the main-loop drain of events and garbage; call with v->lock held. */
void vnc_schedule_drain_locked(struct vnc *v);
void vnc_input_fini(struct vnc *v);

/* vnc_extkey.c: the QEMU extended key event and pointer type change extensions. */
void vnc_extkey_register(void);
/* Frees what enabling the extension for a client allocated (from clientGoneHook). */
void vnc_extkey_client_gone(rfbClientPtr cl);
/* The evdev key of an extended key event's keycode (0 if unknown). */
unsigned vnc_extkey_to_evdev(uint32_t keycode);

#endif
