/* Virtual clock: host-monotonic or manual time, a sorted timer list, and the thread that fires timers. */
#include "vclock.h"

#include <time.h>

#include "log.h"

/* A guest that programs a timer with a zero or tiny period must not wedge the machine: after this many firings in
 * one pass the rest waits for the next pass. */
#define VCLOCK_MAX_FIRINGS_PER_PASS 100000

struct vclock {
    bool manual;
    GRecMutex *machine_lock;
    GMutex lock; /* protects everything below; always taken after the machine lock */
    GCond cond;
    bool running;
    int64_t offset;     /* real-time mode: virtual = host - offset while running */
    int64_t stopped_at; /* virtual time when stopped (and the manual clock's value) */
    GList *timers;      /* struct vtimer *, sorted by expiry */
    GThread *thread;
    bool quit;
};

static int64_t host_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

struct vclock *vclock_new(bool manual, GRecMutex *lock)
{
    struct vclock *c = g_new0(struct vclock, 1);
    c->manual = manual;
    c->machine_lock = lock;
    g_mutex_init(&c->lock);
    g_cond_init(&c->cond);
    c->running = false;
    c->stopped_at = 0;
    return c;
}

void vclock_free(struct vclock *c)
{
    if (!c)
        return;
    if (c->thread) {
        g_mutex_lock(&c->lock);
        c->quit = true;
        g_cond_signal(&c->cond);
        g_mutex_unlock(&c->lock);
        g_thread_join(c->thread);
    }
    g_list_free(c->timers);
    g_cond_clear(&c->cond);
    g_mutex_clear(&c->lock);
    g_free(c);
}

bool vclock_is_manual(const struct vclock *c)
{
    return c->manual;
}

static int64_t now_locked(struct vclock *c)
{
    if (c->manual || !c->running)
        return c->stopped_at;
    return host_ns() - c->offset;
}

int64_t vclock_now(struct vclock *c)
{
    g_mutex_lock(&c->lock);
    int64_t n = now_locked(c);
    g_mutex_unlock(&c->lock);
    return n;
}

void vclock_stop(struct vclock *c)
{
    g_mutex_lock(&c->lock);
    if (c->running) {
        c->stopped_at = now_locked(c);
        c->running = false;
    }
    g_mutex_unlock(&c->lock);
}

void vclock_start(struct vclock *c)
{
    g_mutex_lock(&c->lock);
    if (!c->running) {
        c->offset = host_ns() - c->stopped_at;
        c->running = true;
        g_cond_signal(&c->cond);
    }
    g_mutex_unlock(&c->lock);
}

bool vclock_is_running(struct vclock *c)
{
    g_mutex_lock(&c->lock);
    bool r = c->running;
    g_mutex_unlock(&c->lock);
    return r;
}

/* Inserts after every timer due at the same time or earlier, so equal deadlines fire in arming order. */
static GList *insert_by_expiry(GList *list, struct vtimer *t)
{
    GList *l = list;
    GList *last = NULL;
    while (l && ((struct vtimer *)l->data)->expire_ns <= t->expire_ns) {
        last = l;
        l = l->next;
    }
    if (!last)
        return g_list_prepend(list, t);
    return g_list_insert_before(list, l, t);
}

static struct log_ratelimit storm_rl = LOG_RATELIMIT_INIT(5000, 5);

void vtimer_init(struct vtimer *t, struct vclock *c, void (*cb)(void *opaque), void *opaque)
{
    t->clock = c;
    t->cb = cb;
    t->opaque = opaque;
    t->armed = false;
    t->expire_ns = 0;
}

void vtimer_arm(struct vtimer *t, int64_t expire_ns)
{
    struct vclock *c = t->clock;
    g_mutex_lock(&c->lock);
    if (t->armed)
        c->timers = g_list_remove(c->timers, t);
    t->expire_ns = expire_ns;
    t->armed = true;
    c->timers = insert_by_expiry(c->timers, t);
    if (c->timers->data == t)
        g_cond_signal(&c->cond);
    g_mutex_unlock(&c->lock);
}

void vtimer_cancel(struct vtimer *t)
{
    struct vclock *c = t->clock;
    if (!c)
        return;
    g_mutex_lock(&c->lock);
    if (t->armed) {
        c->timers = g_list_remove(c->timers, t);
        t->armed = false;
    }
    g_mutex_unlock(&c->lock);
}

bool vtimer_is_armed(struct vtimer *t)
{
    if (!t->clock)
        return false;
    g_mutex_lock(&t->clock->lock);
    bool a = t->armed;
    g_mutex_unlock(&t->clock->lock);
    return a;
}

int64_t vclock_next_deadline(struct vclock *c)
{
    g_mutex_lock(&c->lock);
    int64_t d = c->timers ? ((struct vtimer *)c->timers->data)->expire_ns : INT64_MAX;
    g_mutex_unlock(&c->lock);
    return d;
}

/* Pops the first timer if it is due at `now`; returns it (disarmed) or NULL. Called with c->lock held. */
static struct vtimer *pop_due(struct vclock *c, int64_t now)
{
    if (!c->timers)
        return NULL;
    struct vtimer *t = c->timers->data;
    if (t->expire_ns > now)
        return NULL;
    c->timers = g_list_delete_link(c->timers, c->timers);
    t->armed = false;
    return t;
}

int64_t vclock_advance(struct vclock *c, int64_t ns)
{
    g_mutex_lock(&c->lock);
    if (ns < 0)
        ns = 0;
    int64_t target = ns > INT64_MAX - c->stopped_at ? INT64_MAX : c->stopped_at + ns;
    for (unsigned fired = 0;; fired++) {
        if (fired == VCLOCK_MAX_FIRINGS_PER_PASS) {
            log_message_ratelimited(&storm_rl, LOG_LEVEL_WARN, "vclock: timer storm; deferring the rest");
            break;
        }
        struct vtimer *t = pop_due(c, target);
        if (!t)
            break;
        if (t->expire_ns > c->stopped_at)
            c->stopped_at = t->expire_ns;
        g_mutex_unlock(&c->lock);
        t->cb(t->opaque);
        g_mutex_lock(&c->lock);
    }
    c->stopped_at = target;
    g_mutex_unlock(&c->lock);
    return target;
}

static gpointer timer_thread(gpointer data)
{
    struct vclock *c = data;
    g_mutex_lock(&c->lock);
    while (!c->quit) {
        if (!c->running || !c->timers) {
            g_cond_wait(&c->cond, &c->lock);
            continue;
        }
        int64_t now = now_locked(c);
        int64_t next = ((struct vtimer *)c->timers->data)->expire_ns;
        if (next > now) {
            gint64 wake = g_get_monotonic_time() + (next - now + 999) / 1000;
            g_cond_wait_until(&c->cond, &c->lock, wake);
            continue;
        }
        /* Fire everything due, under the machine lock (taken before our own lock, as everywhere). */
        g_mutex_unlock(&c->lock);
        if (c->machine_lock)
            g_rec_mutex_lock(c->machine_lock);
        g_mutex_lock(&c->lock);
        struct vtimer *t;
        unsigned fired = 0;
        while (c->running && (t = pop_due(c, now_locked(c)))) {
            g_mutex_unlock(&c->lock);
            t->cb(t->opaque);
            g_mutex_lock(&c->lock);
            if (++fired == VCLOCK_MAX_FIRINGS_PER_PASS) {
                log_message_ratelimited(&storm_rl, LOG_LEVEL_WARN, "vclock: timer storm; pausing timers 1 ms");
                g_mutex_unlock(&c->lock);
                if (c->machine_lock)
                    g_rec_mutex_unlock(c->machine_lock);
                g_usleep(1000);
                if (c->machine_lock)
                    g_rec_mutex_lock(c->machine_lock);
                g_mutex_lock(&c->lock);
                fired = 0;
            }
        }
        g_mutex_unlock(&c->lock);
        if (c->machine_lock)
            g_rec_mutex_unlock(c->machine_lock);
        g_mutex_lock(&c->lock);
    }
    g_mutex_unlock(&c->lock);
    return NULL;
}

void vclock_start_thread(struct vclock *c)
{
    if (c->manual || c->thread)
        return;
    c->thread = g_thread_new("deskvm-timers", timer_thread, c);
}
