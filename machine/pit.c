/* Intel 8254 PIT: counters computed from virtual time, counter 0's OUT edges delivered by one vtimer. */
#include "pit.h"

#include <errno.h>
#include <string.h>

#include "log.h"

/* Control word (port 0x43) */
#define PIT_CW_SC_SHIFT 6
#define PIT_CW_RW_SHIFT 4
#define PIT_CW_M_SHIFT 1
#define PIT_CW_BCD 0x01
#define PIT_SC_READBACK 3
#define PIT_RB_NOT_COUNT 0x20
#define PIT_RB_NOT_STATUS 0x10
/* Status byte (read-back) */
#define PIT_STATUS_OUT 0x80
#define PIT_STATUS_NULL_COUNT 0x40

#define PIT_RW_LSB 1
#define PIT_RW_MSB 2
#define PIT_RW_LSB_MSB 3

/* Counter 0 interrupts closer together than this (about 50 us) are merged: a guest programming a tiny reload
 * must not turn the timer thread into a busy loop. */
#define PIT_MIN_IRQ_TICKS 60

static struct log_ratelimit pit_rl = LOG_RATELIMIT_INIT(5000, 5);

static uint64_t ns_to_ticks(int64_t ns)
{
    if (ns <= 0)
        return 0;
    return (uint64_t)((unsigned __int128)ns * PIT_FREQ_HZ / NSEC_PER_SEC);
}

/* The first nanosecond at which `ticks` clock periods have elapsed (inverse of ns_to_ticks). */
static int64_t ticks_to_ns(uint64_t ticks)
{
    unsigned __int128 ns = ((unsigned __int128)ticks * NSEC_PER_SEC + PIT_FREQ_HZ - 1) / PIT_FREQ_HZ;
    return ns > INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)ns;
}

static int64_t pit_now(struct pit *pit)
{
    return vclock_now(pit->m->clock);
}

static uint32_t pit_modulus(const struct pit_channel *c)
{
    return c->bcd ? 10000 : 65536;
}

/* Clock periods counted since the count was loaded (or the gate restarted it). */
static uint64_t pit_elapsed(const struct pit_channel *c, int64_t now)
{
    return c->ticks_base + (c->running ? ns_to_ticks(now - c->run_start_ns) : 0);
}

static uint16_t bin_to_bcd(uint32_t v)
{
    return (uint16_t)(((v / 1000 % 10) << 12) | ((v / 100 % 10) << 8) | ((v / 10 % 10) << 4) | (v % 10));
}

/* Invalid BCD digits (A-F) have no defined meaning on the chip; they are taken at face value. */
static uint32_t bcd_to_bin(uint16_t v)
{
    return ((v >> 12) & 0xF) * 1000u + ((v >> 8) & 0xF) * 100u + ((v >> 4) & 0xF) * 10u + (v & 0xF);
}

/* The counting element's value after d clock periods, in the channel's binary/BCD format. */
static uint16_t pit_count_at(const struct pit_channel *c, uint64_t d)
{
    uint64_t n = c->reload, mod = pit_modulus(c), v;
    if (!c->loaded) {
        v = n % mod;
    } else {
        switch (c->mode) {
        case 2:
            v = (n - d % n) % mod;
            break;
        case 3: {
            uint64_t p = d % n, high = (n + 1) / 2;
            v = (p < high ? n - 2 * p : (n & ~1ull) - 2 * (p - high)) % mod;
            break;
        }
        default: /* 0, 1, 4, 5: count down through zero and wrap */
            v = (n + mod - d % mod) % mod;
            break;
        }
    }
    return c->bcd ? bin_to_bcd((uint32_t)v) : (uint16_t)v;
}

static bool pit_out_at(const struct pit_channel *c, uint64_t d)
{
    uint64_t n = c->reload;
    if (!c->loaded)
        return c->mode != 0;
    switch (c->mode) {
    case 0:
        return d >= n;
    case 1:
        return !c->triggered || d >= n;
    case 2:
        return !c->running || d % n != n - 1;
    case 3:
        return !c->running || d % n < (n + 1) / 2;
    case 4:
        return d != n;
    default: /* 5 */
        return !c->triggered || d != n;
    }
}

/* The tick (value of d) of the next OUT rising edge after d, or 0 if OUT will not rise by counting alone. */
static uint64_t pit_next_edge(const struct pit_channel *c, uint64_t d)
{
    uint64_t n = c->reload;
    if (!c->loaded || !c->running)
        return 0;
    switch (c->mode) {
    case 0:
    case 1:
        return d < n ? n : 0;
    case 2:
    case 3:
        return (d / n + 1) * n;
    default: /* 4, 5: OUT is low for the one period at d == n */
        return d <= n ? n + 1 : 0;
    }
}

static int64_t pit_tick_time(const struct pit_channel *c, uint64_t tick)
{
    return c->run_start_ns + ticks_to_ns(tick - c->ticks_base);
}

static void pit_schedule(struct pit *pit)
{
    struct pit_channel *c = &pit->ch[0];
    uint64_t e = pit_next_edge(c, pit_elapsed(c, pit_now(pit)));
    if (!e) {
        vtimer_cancel(&pit->timer);
        return;
    }
    pit->next_edge_tick = e;
    vtimer_arm(&pit->timer, pit_tick_time(c, e));
}

static void pit_timer_cb(void *opaque)
{
    struct pit *pit = opaque;
    struct pit_channel *c = &pit->ch[0];
    /* ISA IRQ 0 is edge-triggered: each rising edge of OUT0 is one pulse on the line. */
    irq_pulse(machine_gsi(pit->m, 0));
    if (c->mode != 2 && c->mode != 3)
        return;
    uint64_t n = c->reload, e = pit->next_edge_tick;
    uint64_t next = e + n;
    if (n < PIT_MIN_IRQ_TICKS) {
        next = e + (PIT_MIN_IRQ_TICKS + n - 1) / n * n;
        pit->lost_edges += (next - e) / n - 1;
    }
    /* Behind by more than a few periods (host stall): drop the backlog rather than replay it. */
    uint64_t d = pit_elapsed(c, pit_now(pit));
    if (d >= next + (uint64_t)PIT_MAX_CATCHUP * n) {
        uint64_t skip_to = (d / n + 1) * n;
        pit->lost_edges += (skip_to - next) / n;
        next = skip_to;
    }
    pit->next_edge_tick = next;
    vtimer_arm(&pit->timer, pit_tick_time(c, next));
}

static void pit_latch_count(struct pit_channel *c, int64_t now)
{
    if (c->latch_bytes)
        return; /* a latched count is held until read */
    c->latched_count = pit_count_at(c, pit_elapsed(c, now));
    c->latch_bytes = c->rw == PIT_RW_LSB_MSB ? 2 : 1;
    c->latch_msb_next = c->rw == PIT_RW_MSB;
}

static void pit_latch_status(struct pit_channel *c, int64_t now)
{
    if (c->status_latched)
        return;
    c->latched_status = (uint8_t)((pit_out_at(c, pit_elapsed(c, now)) ? PIT_STATUS_OUT : 0) |
                                  (c->null_count ? PIT_STATUS_NULL_COUNT : 0) | (c->rw << PIT_CW_RW_SHIFT) |
                                  (c->mode << PIT_CW_M_SHIFT) | (c->bcd ? PIT_CW_BCD : 0));
    c->status_latched = true;
}

static void pit_write_control(struct pit *pit, uint8_t v)
{
    int64_t now = pit_now(pit);
    unsigned sc = v >> PIT_CW_SC_SHIFT, rw = (v >> PIT_CW_RW_SHIFT) & 3;
    if (sc == PIT_SC_READBACK) {
        for (unsigned i = 0; i < PIT_CHANNELS; i++) {
            if (!(v & (2u << i)))
                continue;
            if (!(v & PIT_RB_NOT_STATUS))
                pit_latch_status(&pit->ch[i], now);
            if (!(v & PIT_RB_NOT_COUNT))
                pit_latch_count(&pit->ch[i], now);
        }
        return;
    }
    struct pit_channel *c = &pit->ch[sc];
    if (rw == 0) {
        pit_latch_count(c, now);
        return;
    }
    unsigned mode = (v >> PIT_CW_M_SHIFT) & 7;
    c->mode = (uint8_t)(mode > 5 ? mode - 4 : mode); /* 6 and 7 are aliases of 2 and 3 */
    c->rw = (uint8_t)rw;
    c->bcd = v & PIT_CW_BCD;
    c->loaded = false;
    c->null_count = true;
    c->triggered = false;
    c->running = false;
    c->ticks_base = 0;
    c->write_msb_next = false;
    c->read_msb_next = false;
    c->latch_bytes = 0;
    c->status_latched = false;
    if (sc == 0)
        pit_schedule(pit);
}

static void pit_load_count(struct pit *pit, struct pit_channel *c, uint16_t value)
{
    uint32_t mod = pit_modulus(c);
    uint32_t n = (c->bcd ? bcd_to_bin(value) : value) % mod;
    c->reload = n ? n : mod;
    if (c->reload == 1 && (c->mode == 2 || c->mode == 3))
        log_message_ratelimited(&pit_rl, LOG_LEVEL_DEBUG, "pit: count 1 is illegal in mode %u", c->mode);
    c->loaded = true;
    if (c->mode == 1 || c->mode == 5)
        return; /* waits for a gate rising edge */
    c->null_count = false;
    c->ticks_base = 0;
    c->run_start_ns = pit_now(pit);
    c->running = c->gate;
}

static void pit_write_count(struct pit *pit, unsigned ch, uint8_t v)
{
    struct pit_channel *c = &pit->ch[ch];
    switch (c->rw) {
    case PIT_RW_LSB:
        pit_load_count(pit, c, v);
        break;
    case PIT_RW_MSB:
        pit_load_count(pit, c, (uint16_t)(v << 8));
        break;
    default:
        if (!c->write_msb_next) {
            c->write_lsb = v;
            c->write_msb_next = true;
            if (c->mode == 0) {
                /* Mode 0: the first byte stops counting and drives OUT low. */
                c->loaded = false;
                c->running = false;
            }
            return;
        }
        c->write_msb_next = false;
        pit_load_count(pit, c, (uint16_t)(c->write_lsb | v << 8));
        break;
    }
    if (ch == 0)
        pit_schedule(pit);
}

static uint8_t pit_read_count(struct pit *pit, unsigned ch)
{
    struct pit_channel *c = &pit->ch[ch];
    if (c->status_latched) {
        c->status_latched = false;
        return c->latched_status;
    }
    if (c->latch_bytes) {
        uint8_t b = c->latch_msb_next ? (uint8_t)(c->latched_count >> 8) : (uint8_t)c->latched_count;
        c->latch_bytes--;
        c->latch_msb_next = !c->latch_msb_next;
        return b;
    }
    uint16_t count = pit_count_at(c, pit_elapsed(c, pit_now(pit)));
    bool msb = c->rw == PIT_RW_MSB;
    if (c->rw == PIT_RW_LSB_MSB) {
        msb = c->read_msb_next;
        c->read_msb_next = !c->read_msb_next;
    }
    return msb ? (uint8_t)(count >> 8) : (uint8_t)count;
}

static uint64_t pit_io_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pit *pit = opaque;
    uint64_t v = 0;
    /* A wider access reaches consecutive 8-bit ports, as on the ISA bus. */
    for (unsigned i = 0; i < size; i++) {
        uint64_t off = offset + i;
        uint8_t b = off < PIT_CHANNELS ? pit_read_count(pit, (unsigned)off) : 0xFF; /* 0x43 is write-only */
        v |= (uint64_t)b << (8 * i);
    }
    return v;
}

static void pit_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct pit *pit = opaque;
    for (unsigned i = 0; i < size; i++) {
        uint64_t off = offset + i;
        uint8_t b = (uint8_t)(value >> (8 * i));
        if (off < PIT_CHANNELS)
            pit_write_count(pit, (unsigned)off, b);
        else
            pit_write_control(pit, b);
    }
}

static const struct io_ops pit_ops = {.read = pit_io_read, .write = pit_io_write};

void pit_set_gate(struct pit *pit, unsigned ch, bool level)
{
    if (ch >= PIT_CHANNELS)
        return;
    struct pit_channel *c = &pit->ch[ch];
    if (c->gate == level)
        return;
    int64_t now = pit_now(pit);
    c->gate = level;
    if (level) {
        if (c->loaded) {
            switch (c->mode) {
            case 0:
            case 4: /* resume where the count stopped */
                break;
            case 1:
            case 5: /* trigger: (re)load and start */
                c->triggered = true;
                c->null_count = false;
                c->ticks_base = 0;
                break;
            default: /* 2, 3: reload and restart */
                c->ticks_base = 0;
                break;
            }
            if (!c->running || c->mode == 1 || c->mode == 5) {
                c->run_start_ns = now;
                c->running = true;
            }
        }
    } else if (c->running && c->mode != 1 && c->mode != 5) {
        /* Gate low suspends counting in modes 0, 2, 3 and 4 (and forces OUT high in 2 and 3). */
        c->ticks_base = pit_elapsed(c, now);
        c->running = false;
    }
    if (ch == 0)
        pit_schedule(pit);
}

bool pit_get_gate(struct pit *pit, unsigned ch)
{
    return ch < PIT_CHANNELS && pit->ch[ch].gate;
}

bool pit_get_out(struct pit *pit, unsigned ch)
{
    if (ch >= PIT_CHANNELS)
        return false;
    const struct pit_channel *c = &pit->ch[ch];
    return pit_out_at(c, pit_elapsed(c, pit_now(pit)));
}

static void pit_reset(struct machine *m)
{
    struct pit *pit = m->pit;
    vtimer_cancel(&pit->timer);
    for (unsigned i = 0; i < PIT_CHANNELS; i++) {
        struct pit_channel *c = &pit->ch[i];
        memset(c, 0, sizeof(*c));
        c->rw = PIT_RW_LSB_MSB;
        c->reload = pit_modulus(c);
        c->null_count = true;
        c->gate = i != 2; /* counters 0 and 1 have their gates tied high; counter 2's is port 0x61 bit 0 */
    }
    pit->next_edge_tick = 0;
}

static int pit_create(struct machine *m, char **error)
{
    struct pit *pit = g_new0(struct pit, 1);
    pit->m = m;
    vtimer_init(&pit->timer, m->clock, pit_timer_cb, pit);
    int r = io_bus_register(&m->pio, PIT_BASE_PORT, 4, &pit_ops, pit, "pit", NULL);
    if (r < 0) {
        *error = g_strdup_printf("ports 0x40-0x43: %s", g_strerror(-r));
        g_free(pit);
        return r;
    }
    m->pit = pit;
    pit_reset(m);
    return 0;
}

static void pit_destroy(struct machine *m)
{
    struct pit *pit = m->pit;
    if (!pit)
        return;
    vtimer_cancel(&pit->timer);
    io_bus_unregister(&m->pio, PIT_BASE_PORT, pit);
    g_free(pit);
    m->pit = NULL;
}

const struct machine_device pit_device = {"pit", pit_create, pit_reset, pit_destroy};
