/* SpiceCoreInterface on GLib (see spice_core.h).
 *
 * Timers are one-shot: timer_start (re)arms a GLib timeout source, and a firing timer forgets its source
 * before calling back, because the callback commonly re-arms or removes its own timer. Watches are GLib unix
 * fd sources, which poll level-triggered as spice-server expects; a mask of 0 (spice's flow control) takes the
 * fd out of the poll set instead of leaving a hang-up to spin, and hang-ups and errors are reported as
 * readable so spice reads the end of the stream and cleans up. A watch removed from inside its own callback
 * is safe: GLib keeps the source alive until its dispatch returns. */
#include "spice_core.h"

#include <glib-unix.h>
#include <glib.h>

#include "log.h"

struct SpiceTimer {
    SpiceTimerFunc func;
    void *opaque;
    GSource *source; /* armed: the pending timeout (our reference) */
};

struct watch_source {
    GSource base;
    gpointer tag;
    int fd;
    int mask; /* SPICE_WATCH_EVENT_* wanted */
    SpiceWatchFunc func;
    void *opaque;
};

struct SpiceWatch {
    struct watch_source *source;
};

static unsigned live_objects;
static spice_core_channel_event_fn channel_event_fn;
static void *channel_event_opaque;

unsigned spice_core_live_objects(void)
{
    return live_objects;
}

void spice_core_set_channel_event_handler(spice_core_channel_event_fn fn, void *opaque)
{
    channel_event_fn = fn;
    channel_event_opaque = opaque;
}

/* ---- timers */

static SpiceTimer *core_timer_add(SpiceTimerFunc func, void *opaque)
{
    SpiceTimer *t = g_new0(SpiceTimer, 1);
    t->func = func;
    t->opaque = opaque;
    live_objects++;
    return t;
}

static gboolean timer_fired(gpointer data)
{
    SpiceTimer *t = data;
    /* GLib holds the source during dispatch; drop ours first, the callback may re-arm or remove t. */
    GSource *source = t->source;
    t->source = NULL;
    g_source_unref(source);
    t->func(t->opaque);
    return G_SOURCE_REMOVE;
}

static void core_timer_cancel(SpiceTimer *t)
{
    if (!t->source)
        return;
    g_source_destroy(t->source);
    g_source_unref(t->source);
    t->source = NULL;
}

static void core_timer_start(SpiceTimer *t, uint32_t ms)
{
    core_timer_cancel(t);
    t->source = g_timeout_source_new(ms);
    g_source_set_callback(t->source, timer_fired, t, NULL);
    g_source_set_name(t->source, "spice-timer");
    g_source_attach(t->source, NULL);
}

static void core_timer_remove(SpiceTimer *t)
{
    core_timer_cancel(t);
    g_free(t);
    live_objects--;
}

/* ---- watches */

static GIOCondition condition_of(int mask)
{
    GIOCondition c = 0;
    if (mask & SPICE_WATCH_EVENT_READ)
        c |= G_IO_IN;
    if (mask & SPICE_WATCH_EVENT_WRITE)
        c |= G_IO_OUT;
    /* Hang-ups and errors only while spice wants the fd at all: otherwise a closed peer would wake us forever. */
    if (c)
        c |= G_IO_HUP | G_IO_ERR;
    return c;
}

static gboolean watch_dispatch(GSource *base, GSourceFunc unused, gpointer unused_data)
{
    (void)unused;
    (void)unused_data;
    struct watch_source *w = (struct watch_source *)base;
    GIOCondition got = g_source_query_unix_fd(base, w->tag);
    int events = 0;
    if (got & (G_IO_IN | G_IO_HUP | G_IO_ERR))
        events |= SPICE_WATCH_EVENT_READ;
    if (got & G_IO_OUT)
        events |= SPICE_WATCH_EVENT_WRITE;
    events &= w->mask;
    /* A hang-up while spice only waits to write: let it find out by writing. */
    if (!events && (got & (G_IO_HUP | G_IO_ERR)))
        events = w->mask;
    if (events)
        w->func(w->fd, events, w->opaque);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs watch_funcs = {.dispatch = watch_dispatch};

static SpiceWatch *core_watch_add(int fd, int mask, SpiceWatchFunc func, void *opaque)
{
    struct watch_source *s = (struct watch_source *)g_source_new(&watch_funcs, sizeof(struct watch_source));
    s->fd = fd;
    s->mask = mask;
    s->func = func;
    s->opaque = opaque;
    s->tag = g_source_add_unix_fd(&s->base, fd, condition_of(mask));
    g_source_set_name(&s->base, "spice-watch");
    g_source_attach(&s->base, NULL);
    SpiceWatch *w = g_new0(SpiceWatch, 1);
    w->source = s;
    live_objects++;
    return w;
}

static void core_watch_update_mask(SpiceWatch *w, int mask)
{
    w->source->mask = mask;
    g_source_modify_unix_fd(&w->source->base, w->source->tag, condition_of(mask));
}

static void core_watch_remove(SpiceWatch *w)
{
    g_source_destroy(&w->source->base);
    g_source_unref(&w->source->base);
    g_free(w);
    live_objects--;
}

/* ---- channel events */

static void core_channel_event(int event, SpiceChannelEventInfo *info)
{
    if (channel_event_fn)
        channel_event_fn(channel_event_opaque, event, info);
}

static SpiceCoreInterface core = {
    .base =
        {
            .type = SPICE_INTERFACE_CORE,
            .description = "deskvm GLib core",
            .major_version = SPICE_INTERFACE_CORE_MAJOR,
            .minor_version = SPICE_INTERFACE_CORE_MINOR,
        },
    .timer_add = core_timer_add,
    .timer_start = core_timer_start,
    .timer_cancel = core_timer_cancel,
    .timer_remove = core_timer_remove,
    .watch_add = core_watch_add,
    .watch_update_mask = core_watch_update_mask,
    .watch_remove = core_watch_remove,
    .channel_event = core_channel_event,
};

SpiceCoreInterface *spice_core_glib(void)
{
    return &core;
}

/* ---- spice-server's messages */

static GMutex log_lock;
static struct log_ratelimit log_rl = LOG_RATELIMIT_INIT(10000, 20);

/* spice-server logs through GLib (domain "Spice"), from the main thread and its workers, often about what a
 * client did (a wrong password, a protocol error): into deskvm's log, rate-limited. */
static void on_spice_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer unused)
{
    (void)domain;
    (void)unused;
    enum log_level l = (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) ? LOG_LEVEL_WARN
                       : (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO))                      ? LOG_LEVEL_INFO
                                                                                                 : LOG_LEVEL_DEBUG;
    if (l == LOG_LEVEL_DEBUG && log_get_level() < LOG_LEVEL_DEBUG)
        return;
    g_mutex_lock(&log_lock);
    log_message_ratelimited(&log_rl, l, "spice-server: %s", message);
    g_mutex_unlock(&log_lock);
}

void spice_core_route_logs(void)
{
    g_log_set_handler("Spice", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION, on_spice_log, NULL);
}
