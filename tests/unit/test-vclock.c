/* Proves the virtual clock: manual time and timer ordering, periodic and past timers, and the real-time
 * mode's pause/resume continuity and timer thread. */
#include <glib.h>

#include "vclock.h"

#define MS 1000000LL

/* Manual mode: records (timer id, vclock_now()) for every callback. */
struct fired {
    int id;
    int64_t now;
};

struct tracker {
    struct vclock *clock;
    GArray *log; /* struct fired */
};

struct ttimer {
    struct vtimer t;
    struct tracker *tr;
    int id;
    int64_t period;           /* re-arm this far ahead after firing, if > 0 */
    int64_t period_until;     /* ... while the next expiry is <= this */
    struct vtimer *arm_other; /* arm this timer ... */
    int64_t arm_other_at;     /* ... at this absolute time */
    struct vtimer *cancel_other;
};

static void ttimer_cb(void *opaque)
{
    struct ttimer *x = opaque;
    struct fired f = {x->id, vclock_now(x->tr->clock)};
    g_array_append_val(x->tr->log, f);
    g_assert_false(vtimer_is_armed(&x->t));
    if (x->period > 0 && f.now + x->period <= x->period_until)
        vtimer_arm(&x->t, f.now + x->period);
    if (x->arm_other)
        vtimer_arm(x->arm_other, x->arm_other_at);
    if (x->cancel_other)
        vtimer_cancel(x->cancel_other);
}

static void tracker_init(struct tracker *tr)
{
    tr->clock = vclock_new(true, NULL);
    tr->log = g_array_new(FALSE, FALSE, sizeof(struct fired));
}

static void tracker_fini(struct tracker *tr)
{
    vclock_free(tr->clock);
    g_array_unref(tr->log);
}

static void ttimer_init(struct ttimer *x, struct tracker *tr, int id)
{
    *x = (struct ttimer){.tr = tr, .id = id};
    vtimer_init(&x->t, tr->clock, ttimer_cb, x);
}

static void assert_fired(struct tracker *tr, const struct fired *expect, unsigned n)
{
    g_assert_cmpuint(tr->log->len, ==, n);
    for (unsigned i = 0; i < n; i++) {
        g_assert_cmpint(g_array_index(tr->log, struct fired, i).id, ==, expect[i].id);
        g_assert_cmpint(g_array_index(tr->log, struct fired, i).now, ==, expect[i].now);
    }
    g_array_set_size(tr->log, 0);
}

static void test_manual_advance(void)
{
    struct vclock *c = vclock_new(true, NULL);
    g_assert_true(vclock_is_manual(c));
    g_assert_cmpint(vclock_now(c), ==, 0);
    g_assert_cmpint(vclock_advance(c, 100), ==, 100);
    g_assert_cmpint(vclock_now(c), ==, 100);
    g_assert_cmpint(vclock_advance(c, 0), ==, 100);
    /* time never goes backwards */
    g_assert_cmpint(vclock_advance(c, -50), ==, 100);
    g_assert_cmpint(vclock_now(c), ==, 100);
    g_assert_cmpint(vclock_advance(c, 5 * NSEC_PER_SEC), ==, 5 * NSEC_PER_SEC + 100);
    /* starting/stopping a manual clock does not make it follow the host */
    vclock_start(c);
    g_usleep(2000);
    g_assert_cmpint(vclock_now(c), ==, 5 * NSEC_PER_SEC + 100);
    vclock_stop(c);
    g_assert_cmpint(vclock_now(c), ==, 5 * NSEC_PER_SEC + 100);
    vclock_free(c);
}

static void test_manual_expiry_order(void)
{
    struct tracker tr;
    tracker_init(&tr);
    struct ttimer a, b, c, d;
    ttimer_init(&a, &tr, 1);
    ttimer_init(&b, &tr, 2);
    ttimer_init(&c, &tr, 3);
    ttimer_init(&d, &tr, 4);
    g_assert_cmpint(vclock_next_deadline(tr.clock), ==, INT64_MAX);
    vtimer_arm(&a.t, 300);
    vtimer_arm(&b.t, 100);
    vtimer_arm(&c.t, 200);
    vtimer_arm(&d.t, 1001);
    g_assert_true(vtimer_is_armed(&a.t));
    g_assert_cmpint(vclock_next_deadline(tr.clock), ==, 100);

    /* a timer due exactly at the target fires; one 1 ns later does not */
    g_assert_cmpint(vclock_advance(tr.clock, 1000), ==, 1000);
    assert_fired(&tr, (const struct fired[]){{2, 100}, {3, 200}, {1, 300}}, 3);
    g_assert_cmpint(vclock_now(tr.clock), ==, 1000);
    g_assert_false(vtimer_is_armed(&a.t));
    g_assert_true(vtimer_is_armed(&d.t));
    g_assert_cmpint(vclock_next_deadline(tr.clock), ==, 1001);
    vclock_advance(tr.clock, 1);
    assert_fired(&tr, (const struct fired[]){{4, 1001}}, 1);
    g_assert_cmpint(vclock_next_deadline(tr.clock), ==, INT64_MAX);

    /* equal expiries both fire, each once */
    vtimer_arm(&a.t, 2000);
    vtimer_arm(&b.t, 2000);
    vclock_advance(tr.clock, 999);
    g_assert_cmpuint(tr.log->len, ==, 2); /* the order among equal expiries is not specified */
    struct fired f0 = g_array_index(tr.log, struct fired, 0), f1 = g_array_index(tr.log, struct fired, 1);
    g_assert_cmpint(f0.id + f1.id, ==, 3);
    g_assert_cmpint(f0.now, ==, 2000);
    g_assert_cmpint(f1.now, ==, 2000);
    tracker_fini(&tr);
}

static void test_manual_periodic_rearm(void)
{
    struct tracker tr;
    tracker_init(&tr);
    struct ttimer p, q;
    ttimer_init(&p, &tr, 1);
    ttimer_init(&q, &tr, 2);
    p.period = 100;
    p.period_until = INT64_MAX;
    vtimer_arm(&p.t, 100);
    vtimer_arm(&q.t, 250);
    vclock_advance(tr.clock, 500);
    assert_fired(&tr, (const struct fired[]){{1, 100}, {1, 200}, {2, 250}, {1, 300}, {1, 400}, {1, 500}}, 6);
    g_assert_true(vtimer_is_armed(&p.t));
    g_assert_cmpint(vclock_next_deadline(tr.clock), ==, 600);
    /* one big step still fires every period, at its own time */
    vclock_advance(tr.clock, 350);
    assert_fired(&tr, (const struct fired[]){{1, 600}, {1, 700}, {1, 800}}, 3);
    g_assert_cmpint(vclock_now(tr.clock), ==, 850);
    vtimer_cancel(&p.t);
    tracker_fini(&tr);
}

static void test_manual_past_timer_fires_now(void)
{
    struct tracker tr;
    tracker_init(&tr);
    struct ttimer a, b, c;
    ttimer_init(&a, &tr, 1);
    ttimer_init(&b, &tr, 2);
    ttimer_init(&c, &tr, 3);
    /* a at 500 arms b in the past: b fires in the same advance, at a's time (time does not go back) */
    a.arm_other = &b.t;
    a.arm_other_at = 100;
    vtimer_arm(&a.t, 500);
    vtimer_arm(&c.t, 700);
    vclock_advance(tr.clock, 1000);
    assert_fired(&tr, (const struct fired[]){{1, 500}, {2, 500}, {3, 700}}, 3);

    /* arming for the past outside a callback fires at the next advance, at the current time */
    vtimer_arm(&b.t, 10);
    g_assert_cmpint(vclock_next_deadline(tr.clock), ==, 10);
    vclock_advance(tr.clock, 0);
    assert_fired(&tr, (const struct fired[]){{2, 1000}}, 1);

    /* a callback arming another timer later within the same step also fires in it */
    a.arm_other = &b.t;
    a.arm_other_at = 1600;
    vtimer_arm(&a.t, 1200);
    vclock_advance(tr.clock, 1000);
    assert_fired(&tr, (const struct fired[]){{1, 1200}, {2, 1600}}, 2);
    tracker_fini(&tr);
}

static void test_manual_cancel_and_rearm(void)
{
    struct tracker tr;
    tracker_init(&tr);
    struct ttimer a, b, c;
    ttimer_init(&a, &tr, 1);
    ttimer_init(&b, &tr, 2);
    ttimer_init(&c, &tr, 3);

    vtimer_cancel(&a.t); /* not armed: no-op */
    vtimer_arm(&a.t, 100);
    vtimer_cancel(&a.t);
    g_assert_false(vtimer_is_armed(&a.t));
    g_assert_cmpint(vclock_next_deadline(tr.clock), ==, INT64_MAX);
    vclock_advance(tr.clock, 200);
    assert_fired(&tr, NULL, 0);

    /* re-arming moves the timer, both later and earlier */
    vtimer_arm(&a.t, 300);
    vtimer_arm(&a.t, 500);
    g_assert_cmpint(vclock_next_deadline(tr.clock), ==, 500);
    vclock_advance(tr.clock, 200); /* now 400 */
    assert_fired(&tr, NULL, 0);
    vtimer_arm(&b.t, 450);
    vtimer_arm(&b.t, 420);
    vclock_advance(tr.clock, 100);
    assert_fired(&tr, (const struct fired[]){{2, 420}, {1, 500}}, 2);

    /* a callback cancels a timer that is due in the same step */
    a.cancel_other = &c.t;
    vtimer_arm(&a.t, 600);
    vtimer_arm(&c.t, 650);
    vtimer_arm(&b.t, 700);
    vclock_advance(tr.clock, 500);
    assert_fired(&tr, (const struct fired[]){{1, 600}, {2, 700}}, 2);
    g_assert_false(vtimer_is_armed(&c.t));
    tracker_fini(&tr);
}

/* Real-time mode: a timer that signals the test thread when it fires. */
struct rt_timer {
    struct vtimer t;
    struct vclock *clock;
    GRecMutex *machine_lock;
    GMutex mutex;
    GCond cond;
    int fired;
    GThread *thread;
    int64_t fired_at;
    gboolean lock_was_free; /* could another thread take the machine lock during the callback? */
};

static gpointer try_machine_lock(gpointer data)
{
    GRecMutex *lock = data;
    if (!g_rec_mutex_trylock(lock))
        return GINT_TO_POINTER(FALSE);
    g_rec_mutex_unlock(lock);
    return GINT_TO_POINTER(TRUE);
}

static void rt_cb(void *opaque)
{
    struct rt_timer *x = opaque;
    GThread *probe = g_thread_new("probe", try_machine_lock, x->machine_lock);
    gboolean free_lock = GPOINTER_TO_INT(g_thread_join(probe));
    g_mutex_lock(&x->mutex);
    x->fired++;
    x->thread = g_thread_self();
    x->fired_at = vclock_now(x->clock);
    x->lock_was_free = free_lock;
    g_cond_broadcast(&x->cond);
    g_mutex_unlock(&x->mutex);
}

static void rt_init(struct rt_timer *x, struct vclock *c, GRecMutex *lock)
{
    *x = (struct rt_timer){.clock = c, .machine_lock = lock};
    g_mutex_init(&x->mutex);
    g_cond_init(&x->cond);
    vtimer_init(&x->t, c, rt_cb, x);
}

static void rt_fini(struct rt_timer *x)
{
    g_mutex_clear(&x->mutex);
    g_cond_clear(&x->cond);
}

static int rt_count(struct rt_timer *x)
{
    g_mutex_lock(&x->mutex);
    int n = x->fired;
    g_mutex_unlock(&x->mutex);
    return n;
}

static void rt_reset(struct rt_timer *x)
{
    g_mutex_lock(&x->mutex);
    x->fired = 0;
    g_mutex_unlock(&x->mutex);
}

/* Waits up to timeout_ms for the timer to have fired; returns the fire count. */
static int rt_wait(struct rt_timer *x, int64_t timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000;
    g_mutex_lock(&x->mutex);
    while (!x->fired && g_cond_wait_until(&x->cond, &x->mutex, deadline))
        ;
    int n = x->fired;
    g_mutex_unlock(&x->mutex);
    return n;
}

static void test_realtime_stopped_and_running(void)
{
    struct vclock *c = vclock_new(false, NULL);
    g_assert_false(vclock_is_manual(c));
    g_assert_false(vclock_is_running(c));
    g_assert_cmpint(vclock_now(c), ==, 0);
    g_usleep(20000);
    g_assert_cmpint(vclock_now(c), ==, 0);

    vclock_start(c);
    g_assert_true(vclock_is_running(c));
    int64_t t0 = vclock_now(c);
    g_assert_cmpint(t0, >=, 0);
    g_assert_cmpint(t0, <, 20 * MS);
    g_usleep(50000);
    int64_t t1 = vclock_now(c);
    g_assert_cmpint(t1 - t0, >=, 40 * MS);
    g_assert_cmpint(t1 - t0, <=, 500 * MS);
    /* monotonic */
    int64_t prev = t1;
    for (int i = 0; i < 1000; i++) {
        int64_t n = vclock_now(c);
        g_assert_cmpint(n, >=, prev);
        prev = n;
    }

    /* a pause freezes time, and resuming continues from there without jumping over the pause */
    vclock_stop(c);
    g_assert_false(vclock_is_running(c));
    int64_t frozen = vclock_now(c);
    g_usleep(100000);
    g_assert_cmpint(vclock_now(c), ==, frozen);
    vclock_start(c);
    int64_t resumed = vclock_now(c);
    g_assert_cmpint(resumed, >=, frozen);
    g_assert_cmpint(resumed - frozen, <, 50 * MS);
    /* stopping or starting twice changes nothing */
    vclock_start(c);
    g_assert_cmpint(vclock_now(c) - resumed, <, 50 * MS);
    vclock_stop(c);
    frozen = vclock_now(c);
    vclock_stop(c);
    g_assert_cmpint(vclock_now(c), ==, frozen);
    vclock_free(c);
}

static void test_realtime_timer_thread_fires_under_lock(void)
{
    GRecMutex lock;
    g_rec_mutex_init(&lock);
    struct vclock *c = vclock_new(false, &lock);
    vclock_start_thread(c);
    vclock_start_thread(c); /* idempotent */
    vclock_start(c);
    struct rt_timer x;
    rt_init(&x, c, &lock);

    int64_t expire = vclock_now(c) + 20 * MS;
    gint64 host_start = g_get_monotonic_time();
    g_rec_mutex_lock(&lock); /* devices arm timers holding the machine lock */
    vtimer_arm(&x.t, expire);
    g_rec_mutex_unlock(&lock);
    g_assert_cmpint(rt_wait(&x, 2000), ==, 1);
    gint64 host_elapsed_us = g_get_monotonic_time() - host_start;

    g_assert_true(x.thread != g_thread_self());
    g_assert_false(x.lock_was_free);
    g_assert_cmpint(x.fired_at, >=, expire);
    g_assert_cmpint(host_elapsed_us, >=, 19000);
    g_assert_false(vtimer_is_armed(&x.t));

    /* a timer armed in the past fires promptly */
    rt_reset(&x);
    g_rec_mutex_lock(&lock);
    vtimer_arm(&x.t, 0);
    g_rec_mutex_unlock(&lock);
    g_assert_cmpint(rt_wait(&x, 2000), ==, 1);
    g_assert_false(x.lock_was_free);

    vclock_free(c);
    rt_fini(&x);
    g_rec_mutex_clear(&lock);
}

static void test_realtime_no_fire_while_stopped(void)
{
    GRecMutex lock;
    g_rec_mutex_init(&lock);
    struct vclock *c = vclock_new(false, &lock);
    vclock_start_thread(c);
    vclock_start(c);
    struct rt_timer x;
    rt_init(&x, c, &lock);

    int64_t expire = vclock_now(c) + 20 * MS;
    vtimer_arm(&x.t, expire);
    vclock_stop(c);
    int64_t stopped = vclock_now(c);
    g_usleep(100000);
    g_assert_cmpint(rt_count(&x), ==, 0);
    g_assert_true(vtimer_is_armed(&x.t));
    g_assert_cmpint(vclock_now(c), ==, stopped);

    /* after resuming, the remaining virtual time has to pass first */
    gint64 host_resume = g_get_monotonic_time();
    vclock_start(c);
    g_assert_cmpint(rt_wait(&x, 2000), ==, 1);
    g_assert_cmpint(x.fired_at, >=, expire);
    g_assert_cmpint(g_get_monotonic_time() - host_resume, >=, (expire - stopped) / 1000 - 1000);

    /* cancelled timers do not fire */
    rt_reset(&x);
    vtimer_arm(&x.t, vclock_now(c) + 10 * MS);
    vtimer_cancel(&x.t);
    g_assert_cmpint(rt_wait(&x, 60), ==, 0);

    vclock_free(c);
    rt_fini(&x);
    g_rec_mutex_clear(&lock);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/vclock/manual/advance-moves-time", test_manual_advance);
    g_test_add_func("/vclock/manual/timers-fire-in-expiry-order", test_manual_expiry_order);
    g_test_add_func("/vclock/manual/periodic-rearm-in-one-advance", test_manual_periodic_rearm);
    g_test_add_func("/vclock/manual/past-timer-fires-in-same-advance", test_manual_past_timer_fires_now);
    g_test_add_func("/vclock/manual/cancel-and-rearm", test_manual_cancel_and_rearm);
    g_test_add_func("/vclock/realtime/stopped-frozen-running-follows-host",
                    test_realtime_stopped_and_running);
    g_test_add_func("/vclock/realtime/timer-thread-fires-under-machine-lock",
                    test_realtime_timer_thread_fires_under_lock);
    g_test_add_func("/vclock/realtime/no-fire-while-stopped", test_realtime_no_fire_while_stopped);
    return g_test_run();
}
