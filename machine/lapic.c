/* Local APIC (xAPIC): registers, interrupt acceptance and priority, EOI, IPIs, LVT, MSRs, per-CPU MMIO page.
 */
#include "lapic.h"

#include <errno.h>
#include <string.h>

#include "irqchip.h"
#include "lapic_timer.h"
#include "log.h"

static struct log_ratelimit lapic_rl = LOG_RATELIMIT_INIT(5000, 10);

/* Writable bits of each LVT entry (timer, thermal, perf, LINT0, LINT1, error). */
static const uint32_t lvt_writable[LAPIC_LVT_COUNT] = {
    0x000700FF, 0x000107FF, 0x000107FF, 0x0001A7FF, 0x0001A7FF, 0x000100FF,
};

#define ICR_LOW_WRITABLE 0x000CCFFFu
#define ICR_HIGH_WRITABLE 0xFF000000u

/* ---- 256-bit vector registers */

static int vec_highest(const uint32_t r[8])
{
    for (int i = 7; i >= 0; i--)
        if (r[i])
            return i * 32 + 31 - __builtin_clz(r[i]);
    return -1;
}

static bool vec_test(const uint32_t r[8], unsigned v)
{
    return r[v / 32] & (1u << (v % 32));
}

static void vec_set(uint32_t r[8], unsigned v)
{
    r[v / 32] |= 1u << (v % 32);
}

static void vec_clear(uint32_t r[8], unsigned v)
{
    r[v / 32] &= ~(1u << (v % 32));
}

/* ---- state */

bool lapic_hw_enabled(const struct lapic *l)
{
    return l->apic_base & LAPIC_BASE_ENABLE;
}

bool lapic_sw_enabled(const struct lapic *l)
{
    return l->svr & LAPIC_SVR_ENABLE;
}

static void lapic_kick(struct lapic *l)
{
    if (l->kick)
        l->kick(l->kick_opaque);
}

void lapic_set_kick(struct lapic *l, void (*fn)(void *opaque), void *opaque)
{
    l->kick = fn;
    l->kick_opaque = opaque;
}

/* PPR: the TPR, or the class of the highest in-service vector if that is higher. */
static uint32_t lapic_ppr(const struct lapic *l)
{
    int isrv = vec_highest(l->isr);
    uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xF0;
    return (l->tpr & 0xF0) >= isr_class ? l->tpr : isr_class;
}

uint32_t lapic_arbitration_priority(struct lapic *l)
{
    int irrv = vec_highest(l->irr), isrv = vec_highest(l->isr);
    uint32_t tpr = l->tpr & 0xF0;
    uint32_t irr = irrv < 0 ? 0 : (uint32_t)irrv & 0xF0, isr = isrv < 0 ? 0 : (uint32_t)isrv & 0xF0;
    if (tpr >= irr && tpr > isr)
        return l->tpr;
    uint32_t apr = tpr > isr ? tpr : isr;
    return apr > irr ? apr : irr;
}

bool lapic_has_interrupt(struct lapic *l)
{
    if (!lapic_hw_enabled(l))
        return false;
    int v = vec_highest(l->irr);
    return v >= 0 && ((uint32_t)v & 0xF0) > (lapic_ppr(l) & 0xF0);
}

static void lapic_update(struct lapic *l)
{
    if (lapic_has_interrupt(l))
        lapic_kick(l);
}

int lapic_acknowledge(struct lapic *l)
{
    if (!lapic_has_interrupt(l))
        return l->svr & 0xFF;
    int v = vec_highest(l->irr);
    vec_clear(l->irr, v);
    vec_set(l->isr, v);
    return v;
}

/* Errors latch in the pending ESR and raise the error LVT once per new bit, which bounds the recursion when
 * the error vector is itself illegal. */
static void lapic_set_error(struct lapic *l, uint32_t bits)
{
    if ((l->esr_pending & bits) == bits)
        return;
    l->esr_pending |= bits;
    lapic_raise_lvt(l, LAPIC_LVT_ERROR);
}

static void lapic_accept_fixed(struct lapic *l, uint8_t vector, bool level)
{
    if (vector < 16) {
        lapic_set_error(l, LAPIC_ESR_RECV_ILLEGAL_VECTOR);
        return;
    }
    vec_set(l->irr, vector);
    if (level)
        vec_set(l->tmr, vector);
    else
        vec_clear(l->tmr, vector);
    lapic_update(l);
}

void lapic_deliver(struct lapic *l, unsigned delivery_mode, uint8_t vector, bool level_trigger)
{
    if (!lapic_hw_enabled(l))
        return;
    switch (delivery_mode) {
    case LAPIC_DM_FIXED:
    case LAPIC_DM_LOWEST:
        /* A software-disabled APIC keeps what it holds but accepts no new fixed interrupts. */
        if (lapic_sw_enabled(l))
            lapic_accept_fixed(l, vector, level_trigger);
        return;
    case LAPIC_DM_NMI:
        l->nmi_pending = true;
        break;
    case LAPIC_DM_INIT:
        /* A STARTUP that arrived before this INIT is stale; one that arrives after it (even before the CPU has
         * processed the INIT) must survive, or a slow vCPU thread misses its only wake-up. */
        l->init_pending = true;
        l->sipi_pending = false;
        break;
    case LAPIC_DM_STARTUP:
        l->sipi_pending = true;
        l->sipi_vector = vector;
        break;
    case LAPIC_DM_EXTINT:
        l->extint_pending = true;
        break;
    case LAPIC_DM_SMI:
        log_message_ratelimited(&lapic_rl, LOG_LEVEL_WARN, "lapic%u: SMI ignored (no SMM)", l->index);
        return;
    default:
        log_message_ratelimited(&lapic_rl, LOG_LEVEL_WARN, "lapic%u: reserved delivery mode %u ignored",
                                l->index, delivery_mode);
        return;
    }
    lapic_kick(l);
}

/* A local interrupt source fires through its LVT entry. */
void lapic_raise_lvt(struct lapic *l, enum lapic_lvt which)
{
    uint32_t lvt = l->lvt[which];
    if (!lapic_hw_enabled(l) || (lvt & LAPIC_LVT_MASKED))
        return;
    unsigned mode = (lvt >> LAPIC_LVT_DELMOD_SHIFT) & 7;
    /* The timer and error entries have no delivery mode field: always fixed. */
    if (which == LAPIC_LVT_TIMER || which == LAPIC_LVT_ERROR)
        mode = LAPIC_DM_FIXED;
    bool level = (which == LAPIC_LVT_LINT0 || which == LAPIC_LVT_LINT1) && (lvt & LAPIC_LVT_TRIGGER_LEVEL);
    if (mode == LAPIC_DM_FIXED)
        lapic_accept_fixed(l, lvt & LAPIC_LVT_VECTOR_MASK, level);
    else
        lapic_deliver(l, mode, lvt & LAPIC_LVT_VECTOR_MASK, false);
}

void lapic_set_lint(struct lapic *l, unsigned pin, bool level)
{
    if (pin > 1)
        return;
    bool was = l->lint_level[pin];
    l->lint_level[pin] = level;
    if (!level || was)
        return;
    if (!lapic_hw_enabled(l)) {
        /* A globally disabled APIC passes LINT0 through as INTR and LINT1 as NMI. */
        if (pin == 1)
            l->nmi_pending = true;
        lapic_kick(l);
        return;
    }
    enum lapic_lvt which = pin ? LAPIC_LVT_LINT1 : LAPIC_LVT_LINT0;
    uint32_t lvt = l->lvt[which];
    if (lvt & LAPIC_LVT_MASKED)
        return;
    if (((lvt >> LAPIC_LVT_DELMOD_SHIFT) & 7) == LAPIC_DM_EXTINT)
        lapic_kick(l); /* ExtINT follows the pin level; the CPU asks the PIC */
    else
        lapic_raise_lvt(l, which);
}

bool lapic_extint_pending(struct lapic *l)
{
    if (!lapic_hw_enabled(l))
        return l->lint_level[0];
    uint32_t lvt0 = l->lvt[LAPIC_LVT_LINT0];
    bool virtual_wire =
        !(lvt0 & LAPIC_LVT_MASKED) && ((lvt0 >> LAPIC_LVT_DELMOD_SHIFT) & 7) == LAPIC_DM_EXTINT;
    return l->extint_pending || (virtual_wire && l->lint_level[0]);
}

void lapic_clear_extint(struct lapic *l)
{
    l->extint_pending = false;
}

bool lapic_take_nmi(struct lapic *l)
{
    bool r = l->nmi_pending;
    l->nmi_pending = false;
    return r;
}

bool lapic_take_sipi(struct lapic *l, uint8_t *vector)
{
    if (!l->sipi_pending)
        return false;
    l->sipi_pending = false;
    *vector = l->sipi_vector;
    return true;
}

/* ---- EOI and IPIs */

static void lapic_eoi(struct lapic *l)
{
    int v = vec_highest(l->isr);
    if (v < 0)
        return;
    vec_clear(l->isr, v);
    if (vec_test(l->tmr, v))
        irqchip_broadcast_eoi(l->m, v);
    lapic_update(l);
}

static void lapic_send_ipi(struct lapic *l)
{
    uint32_t lo = l->icr_low;
    struct apic_message msg = {
        .delivery_mode = (lo >> LAPIC_ICR_DELMOD_SHIFT) & 7,
        .vector = lo & 0xFF,
        .dest = l->icr_high >> 24,
        .logical = lo & LAPIC_ICR_DEST_LOGICAL,
        .level_trigger = lo & LAPIC_ICR_TRIGGER_LEVEL,
        .shorthand = (lo >> LAPIC_ICR_SHORTHAND_SHIFT) & 3,
        .source = l->index,
    };
    switch (msg.delivery_mode) {
    case LAPIC_DM_FIXED:
    case LAPIC_DM_LOWEST:
        if (msg.vector < 16) {
            lapic_set_error(l, LAPIC_ESR_SEND_ILLEGAL_VECTOR);
            return;
        }
        break;
    case LAPIC_DM_INIT:
        /* INIT level de-assert only resynchronises arbitration IDs: nothing to model. */
        if (msg.level_trigger && !(lo & LAPIC_ICR_LEVEL_ASSERT))
            return;
        msg.level_trigger = false;
        break;
    case LAPIC_DM_SMI:
    case LAPIC_DM_NMI:
    case LAPIC_DM_STARTUP:
        msg.level_trigger = false;
        break;
    default:
        log_message_ratelimited(&lapic_rl, LOG_LEVEL_WARN, "lapic%u: IPI with reserved delivery mode %u",
                                l->index, msg.delivery_mode);
        return;
    }
    apic_bus_deliver(l->m, &msg);
}

bool lapic_match_dest(const struct lapic *l, uint8_t dest, bool logical)
{
    if (dest == 0xFF)
        return true; /* broadcast, physical or logical */
    if (!logical)
        return (l->id >> 24) == dest;
    uint8_t ldr = l->ldr >> 24;
    if ((l->dfr >> 28) == LAPIC_DFR_FLAT)
        return ldr & dest;
    return (ldr >> 4) == (dest >> 4) && (ldr & dest & 0xF);
}

/* ---- registers */

static void lapic_write_lvt(struct lapic *l, enum lapic_lvt which, uint32_t value)
{
    uint32_t old = l->lvt[which];
    uint32_t nv = (old & ~lvt_writable[which]) | (value & lvt_writable[which]);
    if (!lapic_sw_enabled(l))
        nv |= LAPIC_LVT_MASKED; /* a software-disabled APIC keeps every LVT masked */
    l->lvt[which] = nv;
    if (which == LAPIC_LVT_TIMER)
        lapic_timer_lvt_changed(l, old);
    if (which == LAPIC_LVT_LINT0 && lapic_extint_pending(l))
        lapic_kick(l);
}

static void lapic_write_svr(struct lapic *l, uint32_t value)
{
    l->svr = value & (0xFF | LAPIC_SVR_ENABLE | LAPIC_SVR_FOCUS_DISABLE);
    if (!lapic_sw_enabled(l))
        for (unsigned i = 0; i < LAPIC_LVT_COUNT; i++)
            l->lvt[i] |= LAPIC_LVT_MASKED;
    lapic_update(l);
}

static bool lvt_index(uint32_t offset, enum lapic_lvt *which)
{
    if (offset < LAPIC_REG_LVT_TIMER || offset > LAPIC_REG_LVT_ERROR)
        return false;
    *which = (enum lapic_lvt)((offset - LAPIC_REG_LVT_TIMER) / 0x10);
    return true;
}

uint32_t lapic_read_reg(struct lapic *l, uint32_t offset)
{
    enum lapic_lvt which;
    if (offset >= LAPIC_REG_ISR && offset < LAPIC_REG_ISR + 0x80)
        return l->isr[(offset - LAPIC_REG_ISR) / 0x10];
    if (offset >= LAPIC_REG_TMR && offset < LAPIC_REG_TMR + 0x80)
        return l->tmr[(offset - LAPIC_REG_TMR) / 0x10];
    if (offset >= LAPIC_REG_IRR && offset < LAPIC_REG_IRR + 0x80)
        return l->irr[(offset - LAPIC_REG_IRR) / 0x10];
    if (lvt_index(offset, &which))
        return l->lvt[which];
    switch (offset) {
    case LAPIC_REG_ID:
        return l->id;
    case LAPIC_REG_VERSION:
        return LAPIC_VERSION_VALUE;
    case LAPIC_REG_TPR:
        return l->tpr;
    case LAPIC_REG_APR:
        return lapic_arbitration_priority(l);
    case LAPIC_REG_PPR:
        return lapic_ppr(l);
    case LAPIC_REG_EOI:
    case LAPIC_REG_RRD:
        return 0;
    case LAPIC_REG_LDR:
        return l->ldr;
    case LAPIC_REG_DFR:
        return l->dfr;
    case LAPIC_REG_SVR:
        return l->svr;
    case LAPIC_REG_ESR:
        return l->esr;
    case LAPIC_REG_ICR_LOW:
        return l->icr_low;
    case LAPIC_REG_ICR_HIGH:
        return l->icr_high;
    case LAPIC_REG_TIMER_ICR:
        return l->timer_initial;
    case LAPIC_REG_TIMER_CCR:
        return lapic_timer_current_count(l);
    case LAPIC_REG_TIMER_DCR:
        return l->timer_dcr;
    }
    lapic_set_error(l, LAPIC_ESR_ILLEGAL_REGISTER);
    return 0;
}

void lapic_write_reg(struct lapic *l, uint32_t offset, uint32_t value)
{
    enum lapic_lvt which;
    if (lvt_index(offset, &which)) {
        lapic_write_lvt(l, which, value);
        return;
    }
    if (offset >= LAPIC_REG_ISR && offset < LAPIC_REG_IRR + 0x80)
        return; /* ISR, TMR, IRR are read-only */
    switch (offset) {
    case LAPIC_REG_ID:
        l->id = value & 0xFF000000u;
        return;
    case LAPIC_REG_TPR:
        l->tpr = value & 0xFF;
        lapic_update(l);
        return;
    case LAPIC_REG_EOI:
        lapic_eoi(l);
        return;
    case LAPIC_REG_LDR:
        l->ldr = value & 0xFF000000u;
        return;
    case LAPIC_REG_DFR:
        l->dfr = (value & 0xF0000000u) | 0x0FFFFFFFu;
        return;
    case LAPIC_REG_SVR:
        lapic_write_svr(l, value);
        return;
    case LAPIC_REG_ESR:
        /* A write latches the errors seen since the previous write (the value written does not matter). */
        l->esr = l->esr_pending;
        l->esr_pending = 0;
        return;
    case LAPIC_REG_ICR_LOW:
        l->icr_low = value & ICR_LOW_WRITABLE; /* delivery status reads idle: IPIs are delivered at once */
        lapic_send_ipi(l);
        return;
    case LAPIC_REG_ICR_HIGH:
        l->icr_high = value & ICR_HIGH_WRITABLE;
        return;
    case LAPIC_REG_TIMER_ICR:
        lapic_timer_write_initial(l, value);
        return;
    case LAPIC_REG_TIMER_DCR:
        lapic_timer_write_dcr(l, value);
        return;
    case LAPIC_REG_VERSION:
    case LAPIC_REG_APR:
    case LAPIC_REG_PPR:
    case LAPIC_REG_RRD:
    case LAPIC_REG_TIMER_CCR:
        return;
    }
    lapic_set_error(l, LAPIC_ESR_ILLEGAL_REGISTER);
}

/* ---- reset, INIT, MSR */

/* The state after INIT (SDM 11.4.7.3): like power-on except the APIC ID and IA32_APIC_BASE. */
static void lapic_init_state(struct lapic *l)
{
    l->tpr = 0;
    l->ldr = 0;
    l->dfr = 0xFFFFFFFFu;
    l->svr = 0xFF;
    l->esr = 0;
    l->esr_pending = 0;
    l->icr_low = 0;
    l->icr_high = 0;
    for (unsigned i = 0; i < LAPIC_LVT_COUNT; i++)
        l->lvt[i] = LAPIC_LVT_MASKED;
    memset(l->isr, 0, sizeof(l->isr));
    memset(l->tmr, 0, sizeof(l->tmr));
    memset(l->irr, 0, sizeof(l->irr));
    lapic_timer_reset(l);
    l->extint_pending = false;
    l->nmi_pending = false;
    l->init_pending = false;
    l->sipi_pending = false;
    l->sipi_vector = 0;
}

void lapic_reset(struct lapic *l)
{
    lapic_init_state(l);
    l->id = l->index << 24;
    l->apic_base = LAPIC_BASE | LAPIC_BASE_ENABLE | (l->index == 0 ? LAPIC_BASE_BSP : 0);
}

void lapic_setup_virtual_wire(struct lapic *l)
{
    lapic_write_reg(l, LAPIC_REG_SVR, l->svr | LAPIC_SVR_ENABLE);
    lapic_write_reg(l, LAPIC_REG_LVT_LINT0, LAPIC_DM_EXTINT << LAPIC_LVT_DELMOD_SHIFT);
    lapic_write_reg(l, LAPIC_REG_LVT_LINT1, LAPIC_DM_NMI << LAPIC_LVT_DELMOD_SHIFT);
}

bool lapic_take_init(struct lapic *l)
{
    if (!l->init_pending)
        return false;
    bool sipi = l->sipi_pending;
    uint8_t vector = l->sipi_vector;
    lapic_init_state(l);
    l->sipi_pending = sipi; /* only STARTUPs newer than the INIT are still pending (see lapic_deliver) */
    l->sipi_vector = vector;
    return true;
}

uint64_t lapic_get_base(struct lapic *l)
{
    return l->apic_base;
}

int lapic_set_base(struct lapic *l, uint64_t value)
{
    if (value & ~(LAPIC_BASE_ADDR_MASK | LAPIC_BASE_ENABLE | LAPIC_BASE_BSP))
        return -EINVAL; /* reserved bits, or x2APIC which deskvm does not offer */
    if ((value & LAPIC_BASE_ADDR_MASK) != LAPIC_BASE)
        log_message_ratelimited(&lapic_rl, LOG_LEVEL_WARN, "lapic%u: relocation to 0x%llx not supported",
                                l->index, (unsigned long long)(value & LAPIC_BASE_ADDR_MASK));
    bool was = lapic_hw_enabled(l);
    l->apic_base = LAPIC_BASE | (value & LAPIC_BASE_ENABLE) | (l->apic_base & LAPIC_BASE_BSP);
    if (was && !lapic_hw_enabled(l)) {
        uint32_t id = l->id;
        lapic_init_state(l);
        l->id = id;
    }
    return 0;
}

/* ---- device: one APIC per CPU behind one page, dispatched by the calling vCPU */

static struct lapic *current_lapic(struct machine *m)
{
    unsigned cpu = machine_current_cpu();
    if (cpu >= m->config.cpus || !m->lapic[cpu]) {
        log_message_ratelimited(&lapic_rl, LOG_LEVEL_WARN, "lapic: access from unknown CPU %u", cpu);
        return NULL;
    }
    struct lapic *l = m->lapic[cpu];
    return lapic_hw_enabled(l) ? l : NULL;
}

/* Registers are 32 bits at 16-byte boundaries: reads may take part of one, writes must be whole aligned
 * dwords. */
static uint64_t lapic_mmio_read(void *opaque, uint64_t offset, unsigned size)
{
    struct lapic *l = current_lapic(opaque);
    unsigned byte = offset & 0xF;
    if (!l)
        return ~0ull;
    if (byte + size > 4) {
        log_message_ratelimited(&lapic_rl, LOG_LEVEL_WARN, "lapic%u: bad %u-byte read at 0x%llx", l->index,
                                size, (unsigned long long)offset);
        return 0;
    }
    return lapic_read_reg(l, offset - byte) >> (8 * byte);
}

static void lapic_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct lapic *l = current_lapic(opaque);
    if (!l)
        return;
    if (size != 4 || (offset & 0xF)) {
        log_message_ratelimited(&lapic_rl, LOG_LEVEL_WARN, "lapic%u: bad %u-byte write at 0x%llx", l->index,
                                size, (unsigned long long)offset);
        return;
    }
    lapic_write_reg(l, offset, value);
}

static const struct io_ops lapic_ops = {lapic_mmio_read, lapic_mmio_write};

static void lapic_destroy(struct machine *m)
{
    io_bus_unregister(&m->mmio, LAPIC_BASE, m);
    for (unsigned i = 0; i < MACHINE_MAX_CPUS; i++) {
        if (m->lapic[i])
            vtimer_cancel(&m->lapic[i]->timer);
        g_free(m->lapic[i]);
        m->lapic[i] = NULL;
    }
}

static void lapic_device_reset(struct machine *m)
{
    for (unsigned i = 0; i < m->config.cpus; i++)
        lapic_reset(m->lapic[i]);
    /* deskvm boots without firmware, so it leaves the BSP as PC firmware would. */
    lapic_setup_virtual_wire(m->lapic[0]);
}

static int lapic_create(struct machine *m, char **error)
{
    for (unsigned i = 0; i < m->config.cpus; i++) {
        struct lapic *l = g_new0(struct lapic, 1);
        l->m = m;
        l->index = i;
        lapic_timer_init(l);
        m->lapic[i] = l;
    }
    int r = io_bus_register(&m->mmio, LAPIC_BASE, LAPIC_MMIO_SIZE, &lapic_ops, m, "lapic", NULL);
    if (r < 0) {
        *error = g_strdup_printf("cannot register MMIO at 0x%x: %s", LAPIC_BASE, g_strerror(-r));
        lapic_destroy(m);
        return r;
    }
    lapic_device_reset(m);
    return 0;
}

const struct machine_device lapic_device = {"lapic", lapic_create, lapic_device_reset, lapic_destroy};
