/* MC146818A RTC/CMOS: time from the vclock, register C flags evaluated lazily, one vtimer while enabled. */
#include "rtc.h"

#include <errno.h>
#include <string.h>

#include "log.h"

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t rtc_now(struct rtc *rtc)
{
    return vclock_now(rtc->m->clock);
}

static bool rtc_divider_running(const struct rtc *rtc)
{
    return ((rtc->cmos[RTC_REG_A] & RTC_A_DV_MASK) >> RTC_A_DV_SHIFT) == RTC_A_DV_32KHZ;
}

/* Updates happen (the time advances) only with the divider running and SET clear. */
static bool rtc_running(const struct rtc *rtc)
{
    return rtc_divider_running(rtc) && !(rtc->cmos[RTC_REG_B] & RTC_B_SET);
}

/* Whole seconds of the divider chain completed by virtual time t. */
static int64_t rtc_seconds_at(const struct rtc *rtc, int64_t t)
{
    return floor_div(t - rtc->div_base_ns, NSEC_PER_SEC);
}

static int64_t rtc_wall_at(const struct rtc *rtc, int64_t t)
{
    return rtc->base_time + rtc_seconds_at(rtc, t) - rtc_seconds_at(rtc, rtc->base_ns);
}

/* Periodic interrupt period as a power of two of 1/65536 s (register A RS: 1 and 2 alias 8 and 9 with
 * a 32.768 kHz time base); 0 = off. */
static unsigned rtc_periodic_shift(const struct rtc *rtc)
{
    unsigned rs = rtc->cmos[RTC_REG_A] & RTC_A_RS_MASK;
    if (rs == 0)
        return 0;
    return rs <= 2 ? rs + 7 : rs;
}

static int64_t rtc_periodic_ticks_at(const struct rtc *rtc, int64_t t, unsigned shift)
{
    __int128 num = (__int128)(t - rtc->div_base_ns) * 65536;
    __int128 den = (__int128)NSEC_PER_SEC << shift;
    __int128 q = num / den;
    if (num % den != 0 && num < 0)
        q--;
    return (int64_t)q;
}

static int64_t rtc_periodic_tick_time(const struct rtc *rtc, int64_t k, unsigned shift)
{
    __int128 ns = ((__int128)k * ((__int128)NSEC_PER_SEC << shift) + 65535) / 65536;
    return rtc->div_base_ns + (int64_t)ns;
}

static uint8_t rtc_encode(const struct rtc *rtc, unsigned v)
{
    if (rtc->cmos[RTC_REG_B] & RTC_B_DM_BINARY)
        return (uint8_t)v;
    return (uint8_t)(((v / 10 % 10) << 4) | (v % 10));
}

static unsigned rtc_decode(const struct rtc *rtc, uint8_t v)
{
    if (rtc->cmos[RTC_REG_B] & RTC_B_DM_BINARY)
        return v;
    return (v >> 4) * 10u + (v & 0xF);
}

static uint8_t rtc_encode_hour(const struct rtc *rtc, unsigned h)
{
    if (rtc->cmos[RTC_REG_B] & RTC_B_24H)
        return rtc_encode(rtc, h);
    unsigned h12 = h % 12 ? h % 12 : 12;
    return (uint8_t)(rtc_encode(rtc, h12) | (h >= 12 ? RTC_HOUR_PM : 0));
}

/* The time and calendar registers for wall time `wall`, in the current format. */
static void rtc_time_to_regs(const struct rtc *rtc, int64_t wall, uint8_t *regs)
{
    struct tm tm;
    time_t t = (time_t)wall;
    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof(tm));
    unsigned year = (unsigned)(tm.tm_year + 1900) % 10000;
    regs[RTC_SECONDS] = rtc_encode(rtc, (unsigned)tm.tm_sec % 60);
    regs[RTC_MINUTES] = rtc_encode(rtc, (unsigned)tm.tm_min);
    regs[RTC_HOURS] = rtc_encode_hour(rtc, (unsigned)tm.tm_hour);
    regs[RTC_DAY_OF_WEEK] = rtc_encode(rtc, (unsigned)tm.tm_wday + 1); /* 1 = Sunday */
    regs[RTC_DAY_OF_MONTH] = rtc_encode(rtc, (unsigned)tm.tm_mday);
    regs[RTC_MONTH] = rtc_encode(rtc, (unsigned)tm.tm_mon + 1);
    regs[RTC_YEAR] = rtc_encode(rtc, year % 100);
    regs[RTC_CENTURY] = rtc_encode(rtc, year / 100);
}

/* Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil algorithm). */
static int64_t days_from_civil(int64_t y, unsigned mon, unsigned d)
{
    y -= mon <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (mon + (mon > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static unsigned clampu(unsigned v, unsigned lo, unsigned hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Wall time from the registers the guest wrote. Out-of-range values (any byte is possible) are clamped. */
static int64_t rtc_regs_to_time(const struct rtc *rtc)
{
    const uint8_t *r = rtc->cmos;
    unsigned sec = clampu(rtc_decode(rtc, r[RTC_SECONDS]), 0, 59);
    unsigned min = clampu(rtc_decode(rtc, r[RTC_MINUTES]), 0, 59);
    unsigned hour;
    if (r[RTC_REG_B] & RTC_B_24H) {
        hour = clampu(rtc_decode(rtc, r[RTC_HOURS]), 0, 23);
    } else {
        hour = clampu(rtc_decode(rtc, r[RTC_HOURS] & ~RTC_HOUR_PM), 1, 12) % 12;
        if (r[RTC_HOURS] & RTC_HOUR_PM)
            hour += 12;
    }
    unsigned day = clampu(rtc_decode(rtc, r[RTC_DAY_OF_MONTH]), 1, 31);
    unsigned mon = clampu(rtc_decode(rtc, r[RTC_MONTH]), 1, 12);
    unsigned year =
        clampu(rtc_decode(rtc, r[RTC_CENTURY]), 0, 99) * 100 + clampu(rtc_decode(rtc, r[RTC_YEAR]), 0, 99);
    return days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
}

static void rtc_store_time_regs(struct rtc *rtc, int64_t wall)
{
    uint8_t regs[RTC_BANK_SIZE];
    rtc_time_to_regs(rtc, wall, regs);
    static const uint8_t time_regs[] = {RTC_SECONDS,      RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK,
                                        RTC_DAY_OF_MONTH, RTC_MONTH,   RTC_YEAR,  RTC_CENTURY};
    for (unsigned i = 0; i < sizeof(time_regs); i++)
        rtc->cmos[time_regs[i]] = regs[time_regs[i]];
}

static bool rtc_alarm_matches(const struct rtc *rtc, int64_t wall)
{
    uint8_t regs[RTC_BANK_SIZE];
    rtc_time_to_regs(rtc, wall, regs);
    static const uint8_t pairs[][2] = {
        {RTC_SECONDS_ALARM, RTC_SECONDS}, {RTC_MINUTES_ALARM, RTC_MINUTES}, {RTC_HOURS_ALARM, RTC_HOURS}};
    for (unsigned i = 0; i < G_N_ELEMENTS(pairs); i++) {
        uint8_t alarm = rtc->cmos[pairs[i][0]];
        if ((alarm & RTC_ALARM_DONT_CARE) != RTC_ALARM_DONT_CARE && alarm != regs[pairs[i][1]])
            return false;
    }
    return true;
}

/* Brings register C's flags up to virtual time t. The clock's state is constant since flags_ns because every
 * change to it evaluates first. Only the last update in the interval is checked against the alarm. */
static void rtc_evaluate(struct rtc *rtc, int64_t t)
{
    if (t <= rtc->flags_ns)
        return;
    uint8_t *c = &rtc->cmos[RTC_REG_C];
    unsigned shift = rtc_periodic_shift(rtc);
    if (rtc_divider_running(rtc) && shift &&
        rtc_periodic_ticks_at(rtc, t, shift) > rtc_periodic_ticks_at(rtc, rtc->flags_ns, shift))
        *c |= RTC_C_PF;
    if (rtc_running(rtc) && rtc_seconds_at(rtc, t) > rtc_seconds_at(rtc, rtc->flags_ns)) {
        *c |= RTC_C_UF;
        if (rtc_alarm_matches(rtc, rtc_wall_at(rtc, t)))
            *c |= RTC_C_AF;
    }
    rtc->flags_ns = t;
}

static void rtc_update_irq(struct rtc *rtc)
{
    uint8_t b = rtc->cmos[RTC_REG_B], *c = &rtc->cmos[RTC_REG_C];
    bool irqf = ((*c & RTC_C_PF) && (b & RTC_B_PIE)) || ((*c & RTC_C_AF) && (b & RTC_B_AIE)) ||
                ((*c & RTC_C_UF) && (b & RTC_B_UIE));
    *c = (uint8_t)((*c & ~RTC_C_IRQF) | (irqf ? RTC_C_IRQF : 0));
    if (irqf != rtc->irq_level) {
        rtc->irq_level = irqf;
        irq_set_level(machine_gsi(rtc->m, 8), irqf);
    }
}

/* Arms the timer for the next event that would raise IRQF; none while the flag is already set (register C's
 * read brings it up to date and re-arms). */
static void rtc_schedule(struct rtc *rtc)
{
    int64_t now = rtc_now(rtc), next = INT64_MAX;
    uint8_t b = rtc->cmos[RTC_REG_B], c = rtc->cmos[RTC_REG_C];
    if (rtc_running(rtc) && (((b & RTC_B_UIE) && !(c & RTC_C_UF)) || ((b & RTC_B_AIE) && !(c & RTC_C_AF))))
        next = rtc->div_base_ns + (rtc_seconds_at(rtc, now) + 1) * NSEC_PER_SEC;
    unsigned shift = rtc_periodic_shift(rtc);
    if (rtc_divider_running(rtc) && shift && (b & RTC_B_PIE) && !(c & RTC_C_PF)) {
        int64_t p = rtc_periodic_tick_time(rtc, rtc_periodic_ticks_at(rtc, now, shift) + 1, shift);
        next = MIN(next, p);
    }
    if (next == INT64_MAX)
        vtimer_cancel(&rtc->timer);
    else
        vtimer_arm(&rtc->timer, next);
}

static void rtc_timer_cb(void *opaque)
{
    struct rtc *rtc = opaque;
    rtc_evaluate(rtc, rtc_now(rtc));
    rtc_update_irq(rtc);
    rtc_schedule(rtc);
}

/* Moves the time between the running clock and the registers when SET or the divider changed. */
static void rtc_clock_transition(struct rtc *rtc, bool was_running, bool divider_was_running, int64_t now)
{
    bool running = rtc_running(rtc);
    if (was_running && !running) {
        rtc_store_time_regs(rtc, rtc_wall_at(rtc, now));
    } else if (!was_running && running) {
        if (!divider_was_running)
            rtc->div_base_ns = now - NSEC_PER_SEC / 2; /* first update 500 ms after the divider starts */
        rtc->base_time = rtc_regs_to_time(rtc);
        rtc->base_ns = now;
    } else if (!divider_was_running && rtc_divider_running(rtc)) {
        rtc->div_base_ns = now - NSEC_PER_SEC / 2;
    }
}

static bool rtc_is_time_reg(unsigned idx)
{
    return idx <= RTC_YEAR || idx == RTC_CENTURY;
}

static bool rtc_is_alarm_reg(unsigned idx)
{
    return idx == RTC_SECONDS_ALARM || idx == RTC_MINUTES_ALARM || idx == RTC_HOURS_ALARM;
}

static uint8_t rtc_read_reg(struct rtc *rtc, unsigned idx)
{
    int64_t now = rtc_now(rtc);
    switch (idx) {
    case RTC_REG_A: {
        uint8_t a = rtc->cmos[RTC_REG_A] & ~RTC_A_UIP;
        if (rtc_running(rtc) && ((now - rtc->div_base_ns) % NSEC_PER_SEC + NSEC_PER_SEC) % NSEC_PER_SEC >=
                                    NSEC_PER_SEC - RTC_UIP_NS)
            a |= RTC_A_UIP;
        return a;
    }
    case RTC_REG_C: {
        rtc_evaluate(rtc, now);
        rtc_update_irq(rtc);
        uint8_t c = rtc->cmos[RTC_REG_C];
        rtc->cmos[RTC_REG_C] = 0;
        rtc_update_irq(rtc);
        rtc_schedule(rtc);
        return c;
    }
    case RTC_REG_D:
        return RTC_D_VRT;
    default:
        if (rtc_is_time_reg(idx) && !rtc_is_alarm_reg(idx) && rtc_running(rtc))
            rtc_store_time_regs(rtc, rtc_wall_at(rtc, now));
        return rtc->cmos[idx];
    }
}

static void rtc_write_reg(struct rtc *rtc, unsigned idx, uint8_t v)
{
    int64_t now = rtc_now(rtc);
    bool was_running = rtc_running(rtc), divider_was_running = rtc_divider_running(rtc);
    switch (idx) {
    case RTC_REG_A:
        rtc_evaluate(rtc, now);
        rtc->cmos[RTC_REG_A] = v & ~RTC_A_UIP;
        rtc_clock_transition(rtc, was_running, divider_was_running, now);
        break;
    case RTC_REG_B:
        rtc_evaluate(rtc, now);
        if (v & RTC_B_SET)
            v &= (uint8_t)~RTC_B_UIE; /* setting SET clears UIE */
        rtc->cmos[RTC_REG_B] = v;
        rtc_clock_transition(rtc, was_running, divider_was_running, now);
        break;
    case RTC_REG_C:
    case RTC_REG_D:
        return; /* read-only */
    default:
        if (rtc_is_time_reg(idx) && !rtc_is_alarm_reg(idx) && was_running) {
            /* Writing a running clock sets that field and carries on counting from the new time. */
            rtc_evaluate(rtc, now);
            rtc_store_time_regs(rtc, rtc_wall_at(rtc, now));
            rtc->cmos[idx] = v;
            rtc->base_time = rtc_regs_to_time(rtc);
            rtc->base_ns = now;
        } else {
            rtc->cmos[idx] = v;
        }
        if (!rtc_is_alarm_reg(idx) && !rtc_is_time_reg(idx))
            return;
        break;
    }
    rtc_update_irq(rtc);
    rtc_schedule(rtc);
}

static uint8_t rtc_port_read(struct rtc *rtc, unsigned port)
{
    switch (port) {
    case 1:
        return rtc_read_reg(rtc, rtc->index);
    case 3:
        return rtc->cmos[RTC_BANK_SIZE + rtc->index_hi];
    default:
        return 0xFF; /* the index ports are write-only */
    }
}

static void rtc_port_write(struct rtc *rtc, unsigned port, uint8_t v)
{
    switch (port) {
    case 0:
        rtc->index = v & ~RTC_NMI_DISABLE;
        rtc->nmi_disabled = v & RTC_NMI_DISABLE;
        break;
    case 1:
        rtc_write_reg(rtc, rtc->index, v);
        break;
    case 2:
        rtc->index_hi = v & (RTC_BANK_SIZE - 1);
        break;
    default:
        rtc->cmos[RTC_BANK_SIZE + rtc->index_hi] = v;
        break;
    }
}

static uint64_t rtc_io_read(void *opaque, uint64_t offset, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)rtc_port_read(opaque, (unsigned)(offset + i)) << (8 * i);
    return v;
}

static void rtc_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        rtc_port_write(opaque, (unsigned)(offset + i), (uint8_t)(value >> (8 * i)));
}

static const struct io_ops rtc_ops = {.read = rtc_io_read, .write = rtc_io_write};

static void rtc_set_time_phase(struct rtc *rtc, int64_t t, int64_t subsec_ns)
{
    int64_t now = rtc_now(rtc);
    rtc_evaluate(rtc, now);
    rtc->base_time = t;
    rtc->base_ns = now;
    rtc->div_base_ns = now - subsec_ns;
    rtc->flags_ns = now;
    if (!rtc_running(rtc))
        rtc_store_time_regs(rtc, t);
    rtc_schedule(rtc);
}

void rtc_set_time(struct rtc *rtc, time_t t)
{
    rtc_set_time_phase(rtc, (int64_t)t, 0);
}

time_t rtc_get_time(struct rtc *rtc)
{
    if (rtc_running(rtc))
        return (time_t)rtc_wall_at(rtc, rtc_now(rtc));
    return (time_t)rtc_regs_to_time(rtc);
}

static void rtc_put16(struct rtc *rtc, unsigned lo, uint16_t v)
{
    rtc->cmos[lo] = (uint8_t)v;
    rtc->cmos[lo + 1] = (uint8_t)(v >> 8);
}

/* Memory size fields as PC firmware leaves them (and as QEMU's firmware interface documents). */
static void rtc_init_nvram(struct rtc *rtc, const struct machine_config *cfg)
{
    uint64_t low = MIN(cfg->ram_size, GUEST_MEMORY_LOW_LIMIT);
    uint64_t high = cfg->ram_size - low;
    uint64_t mib = 1024 * 1024;
    rtc_put16(rtc, RTC_NVRAM_BASE_MEM_LO, 640);
    uint64_t ext_kib = low > mib ? (low - mib) / 1024 : 0;
    rtc_put16(rtc, RTC_NVRAM_EXT_MEM_LO, (uint16_t)MIN(ext_kib, 0xFFFF));
    rtc_put16(rtc, RTC_NVRAM_EXT_MEM2_LO, (uint16_t)MIN(ext_kib, 0xFFFF));
    uint64_t above16 = low > 16 * mib ? (low - 16 * mib) / 65536 : 0;
    rtc_put16(rtc, RTC_NVRAM_MEM_16M_LO, (uint16_t)MIN(above16, 0xFFFF));
    uint64_t above4g = MIN(high / 65536, 0xFFFFFF);
    rtc->cmos[RTC_NVRAM_MEM_4G_0] = (uint8_t)above4g;
    rtc->cmos[RTC_NVRAM_MEM_4G_1] = (uint8_t)(above4g >> 8);
    rtc->cmos[RTC_NVRAM_MEM_4G_2] = (uint8_t)(above4g >> 16);
    rtc->cmos[RTC_NVRAM_CPUS_MINUS_1] = (uint8_t)(cfg->cpus - 1);
    uint16_t sum = 0;
    for (unsigned i = 0x10; i <= 0x2D; i++)
        sum = (uint16_t)(sum + rtc->cmos[i]);
    rtc->cmos[RTC_NVRAM_CHECKSUM_HI] = (uint8_t)(sum >> 8);
    rtc->cmos[RTC_NVRAM_CHECKSUM_LO] = (uint8_t)sum;
}

/* The RESET pin: interrupt enables and flags clear; time, format and NVRAM are battery-backed and stay. */
static void rtc_reset(struct machine *m)
{
    struct rtc *rtc = m->rtc;
    rtc_evaluate(rtc, rtc_now(rtc));
    rtc->cmos[RTC_REG_B] &= (uint8_t) ~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
    rtc->cmos[RTC_REG_C] = 0;
    rtc->index = 0;
    rtc->index_hi = 0;
    rtc_update_irq(rtc);
    rtc_schedule(rtc);
}

static int rtc_create(struct machine *m, char **error)
{
    struct rtc *rtc = g_new0(struct rtc, 1);
    rtc->m = m;
    vtimer_init(&rtc->timer, m->clock, rtc_timer_cb, rtc);
    int r = io_bus_register(&m->pio, RTC_BASE_PORT, 4, &rtc_ops, rtc, "rtc-cmos", NULL);
    if (r < 0) {
        *error = g_strdup_printf("ports 0x70-0x73: %s", g_strerror(-r));
        g_free(rtc);
        return r;
    }
    m->rtc = rtc;
    rtc->cmos[RTC_REG_A] = (RTC_A_DV_32KHZ << RTC_A_DV_SHIFT) | 0x06; /* 1024 Hz periodic rate */
    rtc->cmos[RTC_REG_B] = RTC_B_24H;
    rtc->cmos[RTC_REG_D] = RTC_D_VRT;
    rtc_init_nvram(rtc, &m->config);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rtc->flags_ns = rtc_now(rtc);
    rtc_set_time_phase(rtc, ts.tv_sec, ts.tv_nsec); /* updates fall on the host's second boundaries */
    return 0;
}

static void rtc_destroy(struct machine *m)
{
    struct rtc *rtc = m->rtc;
    if (!rtc)
        return;
    vtimer_cancel(&rtc->timer);
    io_bus_unregister(&m->pio, RTC_BASE_PORT, rtc);
    if (rtc->irq_level)
        irq_set_level(machine_gsi(m, 8), 0);
    g_free(rtc);
    m->rtc = NULL;
}

const struct machine_device rtc_device = {"rtc", rtc_create, rtc_reset, rtc_destroy};
