/* spice-server's core interface (timers, file descriptor watches, channel events) on the GLib default main
 * context, which deskvm's main loop runs. spice-server calls it only from the thread that called
 * spice_server_init (the main thread); its QXL workers have loops of their own. */
#ifndef DESKVM_SPICE_CORE_H
#define DESKVM_SPICE_CORE_H

#include <spice.h>

/* The interface to hand to spice_server_init. channel_event goes to the handler below. */
SpiceCoreInterface *spice_core_glib(void);

/* Where channel events (SPICE_CHANNEL_EVENT_CONNECTED/INITIALIZED/DISCONNECTED) go; NULL drops them. One
 * handler per process, as there is one SPICE server. */
typedef void (*spice_core_channel_event_fn)(void *opaque, int event, SpiceChannelEventInfo *info);
void spice_core_set_channel_event_handler(spice_core_channel_event_fn fn, void *opaque);

/* Sends spice-server's GLib messages (domain "Spice") to deskvm's log, rate-limited. */
void spice_core_route_logs(void);

/* Timers and watches still registered (for leak checks in tests). */
unsigned spice_core_live_objects(void);

#endif
