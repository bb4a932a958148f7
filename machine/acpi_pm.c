/* ACPI PM register block: PM1 event/control, PM timer, GPE0; SCI on GSI 9; S5 powers the machine off. */
#include "acpi_pm.h"

#include <string.h>

#include <glib.h>

#include "log.h"

static struct log_ratelimit pm_log_rl = LOG_RATELIMIT_INIT(5000, 5);

/* Events that can raise the SCI when both their STS and EN bits are set. */
#define PM1_EN_WRITABLE                                                                                      \
    (ACPI_PM1_TMR_EN | ACPI_PM1_GBL_EN | ACPI_PM1_PWRBTN_EN | ACPI_PM1_SLPBTN_EN | ACPI_PM1_RTC_EN)
#define PM1_CNT_STORED (ACPI_PM1_SLP_TYP_MASK | ACPI_PM1_BM_RLD)

/* ---- PM timer: 3.579545 MHz ticks since virtual time 0; the guest sees the low 32 bits. */

static uint64_t timer_ticks(struct acpi_pm *pm)
{
    int64_t now = vclock_now(pm->m->clock);
    if (now < 0)
        now = 0;
    return (uint64_t)((unsigned __int128)now * ACPI_PM_TIMER_HZ / NSEC_PER_SEC);
}

/* Bit 31 toggles once every 2^31 ticks (about 10 minutes). */
static uint64_t timer_period(struct acpi_pm *pm)
{
    return timer_ticks(pm) >> 31;
}

uint32_t acpi_pm_timer_read(struct acpi_pm *pm)
{
    return (uint32_t)timer_ticks(pm);
}

static bool tmr_sts(struct acpi_pm *pm)
{
    return timer_period(pm) != pm->tmr_period_seen;
}

static uint16_t pm1_sts(struct acpi_pm *pm)
{
    return (uint16_t)(pm->pm1_sts | (tmr_sts(pm) ? ACPI_PM1_TMR_STS : 0));
}

static void update_sci(struct acpi_pm *pm)
{
    int level = (pm1_sts(pm) & pm->pm1_en & PM1_EN_WRITABLE) != 0 || (pm->gpe0_sts & pm->gpe0_en) != 0;
    if (level != pm->sci_level) {
        pm->sci_level = level;
        irq_set_level(machine_gsi(pm->m, ACPI_SCI_IRQ), level);
    }
}

/* The overflow event needs a timer only while it could raise the SCI: TMR_EN set and TMR_STS not yet set. */
static void tmr_rearm(struct acpi_pm *pm)
{
    if (!(pm->pm1_en & ACPI_PM1_TMR_EN) || tmr_sts(pm)) {
        vtimer_cancel(&pm->tmr_timer);
        return;
    }
    unsigned __int128 target = (unsigned __int128)(pm->tmr_period_seen + 1) << 31;
    unsigned __int128 ns = (target * NSEC_PER_SEC + ACPI_PM_TIMER_HZ - 1) / ACPI_PM_TIMER_HZ;
    vtimer_arm(&pm->tmr_timer, ns > INT64_MAX ? INT64_MAX : (int64_t)ns);
}

static void tmr_expired(void *opaque)
{
    struct acpi_pm *pm = opaque;
    update_sci(pm);
    tmr_rearm(pm);
}

/* ---- register handlers: `mask` marks the bits the access covers */

static uint32_t pm1_sts_read(struct acpi_pm *pm)
{
    return pm1_sts(pm);
}

static void pm1_sts_write(struct acpi_pm *pm, uint32_t value, uint32_t mask)
{
    uint32_t clear = value & mask; /* write 1 to clear */
    pm->pm1_sts &= (uint16_t)~clear;
    if (clear & ACPI_PM1_TMR_STS)
        pm->tmr_period_seen = timer_period(pm);
    tmr_rearm(pm);
}

static uint32_t pm1_en_read(struct acpi_pm *pm)
{
    return pm->pm1_en;
}

static void pm1_en_write(struct acpi_pm *pm, uint32_t value, uint32_t mask)
{
    pm->pm1_en = (uint16_t)((pm->pm1_en & ~mask) | (value & mask & PM1_EN_WRITABLE));
    tmr_rearm(pm);
}

static uint32_t pm1_cnt_read(struct acpi_pm *pm)
{
    /* no SMI_CMD: the machine is always in ACPI mode */
    return ACPI_PM1_SCI_EN | (pm->pm1_cnt & PM1_CNT_STORED);
}

static void sleep_enter(struct acpi_pm *pm, unsigned slp_typ)
{
    if (slp_typ == ACPI_PM_SLP_TYP_S5) {
        log_info("acpi: guest entered S5, powering off");
        machine_request(pm->m, MACHINE_REQUEST_SHUTDOWN);
        return;
    }
    /* A guest waiting for WAK_STS after an unsupported sleep request carries on instead of spinning. */
    log_message_ratelimited(&pm_log_rl, LOG_LEVEL_WARN, "acpi: sleep type %u is not supported, ignored",
                            slp_typ);
    pm->pm1_sts |= ACPI_PM1_WAK_STS;
}

static void pm1_cnt_write(struct acpi_pm *pm, uint32_t value, uint32_t mask)
{
    pm->pm1_cnt = (uint16_t)((pm->pm1_cnt & ~mask) | (value & mask & PM1_CNT_STORED));
    /* GBL_RLS would tell SMM firmware the global lock is free; there is none. */
    if (value & mask & ACPI_PM1_SLP_EN)
        sleep_enter(pm, (pm->pm1_cnt & ACPI_PM1_SLP_TYP_MASK) >> ACPI_PM1_SLP_TYP_SHIFT);
}

static uint32_t pm_tmr_read(struct acpi_pm *pm)
{
    return acpi_pm_timer_read(pm);
}

static void pm_tmr_write(struct acpi_pm *pm, uint32_t value, uint32_t mask)
{
    log_message_ratelimited(&pm_log_rl, LOG_LEVEL_DEBUG, "acpi: write 0x%x to the PM timer ignored", value);
}

static uint32_t gpe0_sts_read(struct acpi_pm *pm)
{
    return pm->gpe0_sts;
}

static void gpe0_sts_write(struct acpi_pm *pm, uint32_t value, uint32_t mask)
{
    pm->gpe0_sts &= ~(value & mask);
}

static uint32_t gpe0_en_read(struct acpi_pm *pm)
{
    return pm->gpe0_en;
}

static void gpe0_en_write(struct acpi_pm *pm, uint32_t value, uint32_t mask)
{
    pm->gpe0_en = (pm->gpe0_en & ~mask) | (value & mask);
}

struct pm_reg {
    uint8_t offset; /* from ACPI_PM_BASE */
    uint8_t width;  /* bytes */
    const char *name;
    uint32_t (*read)(struct acpi_pm *pm);
    void (*write)(struct acpi_pm *pm, uint32_t value, uint32_t mask);
};

static const struct pm_reg pm_regs[] = {
    {ACPI_PM1A_EVT_BLK - ACPI_PM_BASE, 2, "PM1_STS", pm1_sts_read, pm1_sts_write},
    {ACPI_PM1A_EVT_BLK - ACPI_PM_BASE + 2, 2, "PM1_EN", pm1_en_read, pm1_en_write},
    {ACPI_PM1A_CNT_BLK - ACPI_PM_BASE, 2, "PM1_CNT", pm1_cnt_read, pm1_cnt_write},
    {ACPI_PM_TMR_BLK - ACPI_PM_BASE, 4, "PM_TMR", pm_tmr_read, pm_tmr_write},
    {ACPI_GPE0_BLK - ACPI_PM_BASE, 4, "GPE0_STS", gpe0_sts_read, gpe0_sts_write},
    {ACPI_GPE0_BLK - ACPI_PM_BASE + 4, 4, "GPE0_EN", gpe0_en_read, gpe0_en_write},
};

/* An access may cover part of a register or several registers; bytes outside every register read as 0xFF. */
static uint64_t pm_io_read(void *opaque, uint64_t offset, unsigned size)
{
    struct acpi_pm *pm = opaque;
    uint64_t result = size >= 8 ? UINT64_MAX : (1ull << (8 * size)) - 1;
    for (size_t r = 0; r < G_N_ELEMENTS(pm_regs); r++) {
        const struct pm_reg *reg = &pm_regs[r];
        uint64_t lo = MAX(offset, reg->offset), hi = MIN(offset + size, (uint64_t)reg->offset + reg->width);
        if (lo >= hi)
            continue;
        uint32_t v = reg->read(pm);
        for (uint64_t b = lo; b < hi; b++) {
            uint64_t byte = (v >> (8 * (b - reg->offset))) & 0xFF;
            result &= ~(0xFFull << (8 * (b - offset)));
            result |= byte << (8 * (b - offset));
        }
    }
    return result;
}

static void pm_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct acpi_pm *pm = opaque;
    for (size_t r = 0; r < G_N_ELEMENTS(pm_regs); r++) {
        const struct pm_reg *reg = &pm_regs[r];
        uint64_t lo = MAX(offset, reg->offset), hi = MIN(offset + size, (uint64_t)reg->offset + reg->width);
        if (lo >= hi)
            continue;
        uint32_t v = 0, mask = 0;
        for (uint64_t b = lo; b < hi; b++) {
            v |= (uint32_t)((value >> (8 * (b - offset))) & 0xFF) << (8 * (b - reg->offset));
            mask |= 0xFFu << (8 * (b - reg->offset));
        }
        reg->write(pm, v, mask);
    }
    update_sci(pm);
}

static const struct io_ops pm_io_ops = {pm_io_read, pm_io_write};

void acpi_pm_press_power_button(struct acpi_pm *pm)
{
    pm->pm1_sts |= ACPI_PM1_PWRBTN_STS;
    update_sci(pm);
}

static void acpi_pm_reset(struct machine *m)
{
    struct acpi_pm *pm = m->acpi_pm;
    pm->pm1_sts = 0;
    pm->pm1_en = 0;
    pm->pm1_cnt = 0;
    pm->gpe0_sts = 0;
    pm->gpe0_en = 0;
    pm->tmr_period_seen = timer_period(pm);
    vtimer_cancel(&pm->tmr_timer);
    pm->sci_level = 0;
    irq_set_level(machine_gsi(m, ACPI_SCI_IRQ), 0);
}

static int acpi_pm_create(struct machine *m, char **error)
{
    struct acpi_pm *pm = g_new0(struct acpi_pm, 1);
    pm->m = m;
    vtimer_init(&pm->tmr_timer, m->clock, tmr_expired, pm);
    int r = io_bus_register(&m->pio, ACPI_PM_BASE, ACPI_PM_IO_LEN, &pm_io_ops, pm, "acpi-pm", &pm->guard);
    if (r < 0) {
        *error = g_strdup_printf("ports 0x%x-0x%x: %s", ACPI_PM_BASE, ACPI_PM_BASE + ACPI_PM_IO_LEN - 1,
                                 g_strerror(-r));
        g_free(pm);
        return r;
    }
    m->acpi_pm = pm;
    acpi_pm_reset(m);
    return 0;
}

static void acpi_pm_destroy(struct machine *m)
{
    struct acpi_pm *pm = m->acpi_pm;
    if (!pm)
        return;
    vtimer_cancel(&pm->tmr_timer);
    io_bus_unregister(&m->pio, ACPI_PM_BASE, pm);
    g_free(pm);
    m->acpi_pm = NULL;
}

const struct machine_device acpi_pm_device = {"acpi-pm", acpi_pm_create, acpi_pm_reset, acpi_pm_destroy};
