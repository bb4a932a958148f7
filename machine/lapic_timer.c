/* Local APIC timer on the virtual clock: counts are computed from virtual time, never decremented by
 * callbacks. */
#include "lapic_timer.h"

static int64_t now_ns(struct lapic *l)
{
    return vclock_now(l->m->clock);
}

static int64_t ticks_to_ns(uint64_t ticks)
{
    return (int64_t)((unsigned __int128)ticks * NSEC_PER_SEC / LAPIC_BUS_HZ);
}

static uint64_t ns_to_ticks(int64_t ns)
{
    return ns <= 0 ? 0 : (uint64_t)((unsigned __int128)ns * LAPIC_BUS_HZ / NSEC_PER_SEC);
}

unsigned lapic_timer_mode(const struct lapic *l)
{
    return (l->lvt[LAPIC_LVT_TIMER] >> LAPIC_LVT_TIMER_MODE_SHIFT) & 3;
}

/* DCR bits 3,1,0: 000 = 2, 001 = 4, ..., 110 = 128, 111 = 1. */
unsigned lapic_timer_divisor(uint32_t dcr)
{
    unsigned code = (dcr & 3) | ((dcr >> 1) & 4);
    return 1u << ((code + 1) & 7);
}

/* Counter decrements since the count was loaded. */
static uint64_t elapsed_counts(struct lapic *l)
{
    return ns_to_ticks(now_ns(l) - l->timer_start_ns) / lapic_timer_divisor(l->timer_dcr);
}

static int64_t period_ns(struct lapic *l)
{
    return ticks_to_ns((uint64_t)l->timer_initial * lapic_timer_divisor(l->timer_dcr));
}

uint32_t lapic_timer_current_count(struct lapic *l)
{
    if (!l->timer_running || lapic_timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE)
        return 0;
    uint64_t done = elapsed_counts(l);
    if (lapic_timer_mode(l) == LAPIC_TIMER_PERIODIC)
        return l->timer_initial - done % l->timer_initial;
    return done >= l->timer_initial ? 0 : l->timer_initial - done;
}

/* The next expiry strictly after `after` for a count loaded at timer_start_ns. */
static int64_t next_expiry(struct lapic *l, int64_t after)
{
    int64_t period = period_ns(l);
    int64_t first = l->timer_start_ns + period;
    if (lapic_timer_mode(l) != LAPIC_TIMER_PERIODIC || first > after)
        return first;
    int64_t step = period < LAPIC_TIMER_MIN_PERIOD_NS ? LAPIC_TIMER_MIN_PERIOD_NS : period;
    /* Periods missed while the host was late are dropped rather than fired back to back. */
    int64_t n = (after - first) / step + 1;
    return first + n * step;
}

static void timer_fire(void *opaque)
{
    struct lapic *l = opaque;
    if (lapic_timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE) {
        if (!l->tsc_deadline)
            return;
        l->tsc_deadline = 0; /* the MSR reads 0 once the deadline has passed */
        lapic_raise_lvt(l, LAPIC_LVT_TIMER);
        return;
    }
    if (!l->timer_running)
        return;
    if (lapic_timer_mode(l) == LAPIC_TIMER_PERIODIC)
        vtimer_arm(&l->timer, next_expiry(l, now_ns(l)));
    else
        l->timer_running = false;
    lapic_raise_lvt(l, LAPIC_LVT_TIMER);
}

void lapic_timer_init(struct lapic *l)
{
    vtimer_init(&l->timer, l->m->clock, timer_fire, l);
}

static void timer_stop(struct lapic *l)
{
    vtimer_cancel(&l->timer);
    l->timer_running = false;
}

void lapic_timer_reset(struct lapic *l)
{
    timer_stop(l);
    l->timer_initial = 0;
    l->timer_dcr = 0;
    l->timer_start_ns = 0;
    l->tsc_deadline = 0;
}

static void timer_start(struct lapic *l, int64_t start)
{
    l->timer_start_ns = start;
    l->timer_running = true;
    vtimer_arm(&l->timer, next_expiry(l, start));
}

/* Writing the initial count loads the counter and starts it; 0 stops it. TSC-deadline mode ignores the write.
 */
void lapic_timer_write_initial(struct lapic *l, uint32_t count)
{
    if (lapic_timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE)
        return;
    l->timer_initial = count;
    if (count == 0)
        timer_stop(l);
    else
        timer_start(l, now_ns(l));
}

/* A new divider applies from now on to the count left, as if that count had been counted down at the new
 * rate. */
void lapic_timer_write_dcr(struct lapic *l, uint32_t dcr)
{
    dcr &= 0xB;
    if (!l->timer_running || lapic_timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE) {
        l->timer_dcr = dcr;
        return;
    }
    uint32_t left = lapic_timer_current_count(l);
    int64_t now = now_ns(l);
    l->timer_dcr = dcr;
    int64_t used = ticks_to_ns((uint64_t)(l->timer_initial - left) * lapic_timer_divisor(dcr));
    timer_start(l, now - used);
}

/* Moving into or out of TSC-deadline mode disarms the timer (SDM 11.5.4.1). */
void lapic_timer_lvt_changed(struct lapic *l, uint32_t old)
{
    unsigned old_mode = (old >> LAPIC_LVT_TIMER_MODE_SHIFT) & 3, mode = lapic_timer_mode(l);
    if (old_mode == mode)
        return;
    if (old_mode == LAPIC_TIMER_TSC_DEADLINE || mode == LAPIC_TIMER_TSC_DEADLINE) {
        timer_stop(l);
        l->timer_initial = 0;
        l->tsc_deadline = 0;
    } else if (l->timer_running) {
        vtimer_arm(&l->timer, next_expiry(l, now_ns(l)));
    }
}

void lapic_set_tsc_deadline(struct lapic *l, uint64_t msr, int64_t deadline_ns)
{
    if (lapic_timer_mode(l) != LAPIC_TIMER_TSC_DEADLINE)
        return;
    l->tsc_deadline = msr;
    if (!msr) {
        vtimer_cancel(&l->timer);
        return;
    }
    if (deadline_ns <= now_ns(l)) {
        vtimer_cancel(&l->timer);
        timer_fire(l);
        return;
    }
    vtimer_arm(&l->timer, deadline_ns);
}

uint64_t lapic_get_tsc_deadline(struct lapic *l)
{
    return lapic_timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE ? l->tsc_deadline : 0;
}
