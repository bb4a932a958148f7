/* The machine's virtual clock and timers. In real-time mode virtual time follows the host's CLOCK_MONOTONIC while
 * the VM runs and stands still while it is paused; in manual mode (test accelerator) it moves only when a test
 * advances it. Every guest-visible time source (PIT, RTC, LAPIC timer, PM timer, TSC) derives from this one clock,
 * so they always agree. Timer callbacks run with the machine lock held, on the timer thread (real-time mode) or in
 * vclock_advance (manual mode). */
#ifndef DESKVM_VCLOCK_H
#define DESKVM_VCLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#define NSEC_PER_SEC 1000000000LL

struct vclock;

struct vtimer {
    struct vclock *clock;
    int64_t expire_ns; /* virtual time */
    void (*cb)(void *opaque);
    void *opaque;
    bool armed;
};

/* lock: the machine lock callbacks run under (taken by the timer thread), may be NULL in unit tests. */
struct vclock *vclock_new(bool manual, GRecMutex *lock);
void vclock_free(struct vclock *c);
bool vclock_is_manual(const struct vclock *c);

int64_t vclock_now(struct vclock *c);
/* Stop/restart the flow of virtual time (VM paused/resumed). Timers do not fire while stopped. */
void vclock_stop(struct vclock *c);
void vclock_start(struct vclock *c);
bool vclock_is_running(struct vclock *c);

/* Manual mode only: moves time forward by ns, firing due timers in expiry order with vclock_now() equal to each
 * timer's expiry while it runs. Call with the machine lock held. Returns the new time. */
int64_t vclock_advance(struct vclock *c, int64_t ns);
/* The earliest armed timer's expiry, or INT64_MAX. */
int64_t vclock_next_deadline(struct vclock *c);

/* Real-time mode: starts the thread that fires timers. */
void vclock_start_thread(struct vclock *c);

void vtimer_init(struct vtimer *t, struct vclock *c, void (*cb)(void *opaque), void *opaque);
/* (Re)arms the timer to fire at virtual time expire_ns (in the past: as soon as possible). */
void vtimer_arm(struct vtimer *t, int64_t expire_ns);
void vtimer_cancel(struct vtimer *t);
bool vtimer_is_armed(struct vtimer *t);

#endif
