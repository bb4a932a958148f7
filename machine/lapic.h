/* The local APIC of each vCPU (xAPIC mode, Intel SDM vol. 3 ch. 11): interrupt acceptance and priorities,
 * IPIs, LVT and the APIC timer (one-shot, periodic, TSC-deadline) on the virtual clock, plus the
 * IA32_APIC_BASE and IA32_TSC_DEADLINE MSRs for the CPU. All calls are made holding the machine lock. */
#ifndef DESKVM_LAPIC_H
#define DESKVM_LAPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "machine.h"

#define LAPIC_BASE 0xFEE00000u
#define LAPIC_MMIO_SIZE 0x1000u

/* The APIC timer's input clock before the divider (the "bus"/core crystal clock for CPUID 0x15/0x16).
 * At 1 GHz one tick is one virtual nanosecond. */
#define LAPIC_BUS_HZ 1000000000ULL
/* The guest TSC runs at this fixed rate of the virtual clock (plus whatever offset the CPU keeps). */
#define DESKVM_TSC_HZ 2000000000ULL
/* Periodic timer interrupts are never closer than this, so a guest cannot make the host spin on timer
 * callbacks. */
#define LAPIC_TIMER_MIN_PERIOD_NS 50000

/* Registers (offsets in the 4 KiB page; each is 32 bits at a 16-byte boundary) */
#define LAPIC_REG_ID 0x020
#define LAPIC_REG_VERSION 0x030
#define LAPIC_REG_TPR 0x080
#define LAPIC_REG_APR 0x090
#define LAPIC_REG_PPR 0x0A0
#define LAPIC_REG_EOI 0x0B0
#define LAPIC_REG_RRD 0x0C0
#define LAPIC_REG_LDR 0x0D0
#define LAPIC_REG_DFR 0x0E0
#define LAPIC_REG_SVR 0x0F0
#define LAPIC_REG_ISR 0x100 /* 8 registers, 0x100-0x170 */
#define LAPIC_REG_TMR 0x180
#define LAPIC_REG_IRR 0x200
#define LAPIC_REG_ESR 0x280
#define LAPIC_REG_ICR_LOW 0x300
#define LAPIC_REG_ICR_HIGH 0x310
#define LAPIC_REG_LVT_TIMER 0x320
#define LAPIC_REG_LVT_THERMAL 0x330
#define LAPIC_REG_LVT_PERF 0x340
#define LAPIC_REG_LVT_LINT0 0x350
#define LAPIC_REG_LVT_LINT1 0x360
#define LAPIC_REG_LVT_ERROR 0x370
#define LAPIC_REG_TIMER_ICR 0x380
#define LAPIC_REG_TIMER_CCR 0x390
#define LAPIC_REG_TIMER_DCR 0x3E0

#define LAPIC_VERSION_VALUE 0x00050014u /* version 0x14, max LVT entry 5 */

#define LAPIC_SVR_ENABLE (1u << 8)
#define LAPIC_SVR_FOCUS_DISABLE (1u << 9)
#define LAPIC_DFR_FLAT 0xFu
#define LAPIC_DFR_CLUSTER 0x0u

/* LVT entry bits */
#define LAPIC_LVT_VECTOR_MASK 0xFFu
#define LAPIC_LVT_DELMOD_SHIFT 8
#define LAPIC_LVT_DELIVS (1u << 12)
#define LAPIC_LVT_POLARITY_LOW (1u << 13)
#define LAPIC_LVT_REMOTE_IRR (1u << 14)
#define LAPIC_LVT_TRIGGER_LEVEL (1u << 15)
#define LAPIC_LVT_MASKED (1u << 16)
#define LAPIC_LVT_TIMER_MODE_SHIFT 17
#define LAPIC_TIMER_ONESHOT 0u
#define LAPIC_TIMER_PERIODIC 1u
#define LAPIC_TIMER_TSC_DEADLINE 2u

/* Delivery modes (ICR, LVT, MSI data) */
#define LAPIC_DM_FIXED 0u
#define LAPIC_DM_LOWEST 1u
#define LAPIC_DM_SMI 2u
#define LAPIC_DM_NMI 4u
#define LAPIC_DM_INIT 5u
#define LAPIC_DM_STARTUP 6u
#define LAPIC_DM_EXTINT 7u

/* ICR low */
#define LAPIC_ICR_DELMOD_SHIFT 8
#define LAPIC_ICR_DEST_LOGICAL (1u << 11)
#define LAPIC_ICR_DELIVS (1u << 12)
#define LAPIC_ICR_LEVEL_ASSERT (1u << 14)
#define LAPIC_ICR_TRIGGER_LEVEL (1u << 15)
#define LAPIC_ICR_SHORTHAND_SHIFT 18
#define LAPIC_SHORTHAND_NONE 0u
#define LAPIC_SHORTHAND_SELF 1u
#define LAPIC_SHORTHAND_ALL 2u
#define LAPIC_SHORTHAND_OTHERS 3u

/* ESR bits */
#define LAPIC_ESR_SEND_ILLEGAL_VECTOR (1u << 5)
#define LAPIC_ESR_RECV_ILLEGAL_VECTOR (1u << 6)
#define LAPIC_ESR_ILLEGAL_REGISTER (1u << 7)

/* IA32_APIC_BASE (MSR 0x1B) */
#define LAPIC_MSR_APIC_BASE 0x1B
#define LAPIC_MSR_TSC_DEADLINE 0x6E0
#define LAPIC_BASE_BSP (1ull << 8)
#define LAPIC_BASE_X2APIC (1ull << 10)
#define LAPIC_BASE_ENABLE (1ull << 11)
#define LAPIC_BASE_ADDR_MASK 0x000FFFFFFFFFF000ull

enum lapic_lvt {
    LAPIC_LVT_TIMER,
    LAPIC_LVT_THERMAL,
    LAPIC_LVT_PERF,
    LAPIC_LVT_LINT0,
    LAPIC_LVT_LINT1,
    LAPIC_LVT_ERROR,
    LAPIC_LVT_COUNT
};

/* One local APIC. Plain data except the timer and the kick hook, which are re-established after a restore. */
struct lapic {
    struct machine *m;
    unsigned index;     /* vCPU number; also the initial APIC ID */
    uint64_t apic_base; /* IA32_APIC_BASE */
    uint32_t id;        /* bits 31:24 */
    uint32_t tpr, ldr, dfr, svr;
    uint32_t esr;         /* as last latched by a write */
    uint32_t esr_pending; /* errors since that write */
    uint32_t icr_low, icr_high;
    uint32_t lvt[LAPIC_LVT_COUNT];
    uint32_t isr[8], tmr[8], irr[8];
    /* Timer: counting since timer_start_ns from timer_initial (one-shot / periodic). */
    uint32_t timer_initial, timer_dcr;
    bool timer_running;
    int64_t timer_start_ns;
    uint64_t tsc_deadline; /* IA32_TSC_DEADLINE as written; 0 = disarmed */
    struct vtimer timer;
    bool lint_level[2];  /* LINT0, LINT1 input pins */
    bool extint_pending; /* an ExtINT message: the CPU fetches the vector from the PIC */
    bool nmi_pending, init_pending, sipi_pending;
    uint8_t sipi_vector;
    /* Set by the CPU backend; called whenever this CPU has something new to take (an interrupt became
     * deliverable, NMI, INIT, SIPI, ExtINT), so a halted or running vCPU notices. Must not block. */
    void (*kick)(void *opaque);
    void *kick_opaque;
};

extern const struct machine_device lapic_device; /* one per CPU into m->lapic[i], MMIO page at LAPIC_BASE */

/* ---- the CPU's side */
/* A fixed/lowest-priority interrupt outranks the processor priority (PPR). */
bool lapic_has_interrupt(struct lapic *l);
/* The INTA equivalent: moves the highest IRR vector into ISR and returns it, or the spurious vector (SVR)
 * when nothing is deliverable (the ISR is then untouched). */
int lapic_acknowledge(struct lapic *l);
/* Each returns true once per event and clears it. lapic_take_init also puts the APIC into its INIT state (all
 * but the ID and IA32_APIC_BASE reset, pending SIPIs dropped). Call lapic_take_sipi only while the CPU waits
 * for SIPI (a SIPI at any other time is to be ignored); *vector is the start page number. */
bool lapic_take_nmi(struct lapic *l);
bool lapic_take_init(struct lapic *l);
bool lapic_take_sipi(struct lapic *l, uint8_t *vector);
/* LINT0 in ExtINT mode with the pin up, or an ExtINT message latched: the vector is the PIC's. */
bool lapic_extint_pending(struct lapic *l);
void lapic_clear_extint(struct lapic *l);
void lapic_set_kick(struct lapic *l, void (*fn)(void *opaque), void *opaque);

/* IA32_APIC_BASE. lapic_set_base returns -EINVAL when reserved bits (or x2APIC enable) are set: the CPU
 * raises #GP. Clearing the global enable bit puts the APIC into its power-on state; while disabled it takes
 * no messages and its page is unmapped. The BSP bit is read-only. Relocation is not supported: the page stays
 * at LAPIC_BASE. */
uint64_t lapic_get_base(struct lapic *l);
int lapic_set_base(struct lapic *l, uint64_t value);
bool lapic_hw_enabled(const struct lapic *l);
bool lapic_sw_enabled(const struct lapic *l);

/* IA32_TSC_DEADLINE. msr is the value the guest writes (0 disarms); deadline_ns is the virtual time at which
 * the guest's TSC reaches it, converted by the CPU (deskvm_tsc_to_ns of msr minus the CPU's TSC offset).
 * Ignored unless the LVT timer is in TSC-deadline mode; the MSR reads back 0 once the timer fired or outside
 * that mode. */
void lapic_set_tsc_deadline(struct lapic *l, uint64_t msr, int64_t deadline_ns);
uint64_t lapic_get_tsc_deadline(struct lapic *l);

static inline uint64_t deskvm_ns_to_tsc(int64_t ns)
{
    if (ns <= 0)
        return 0;
    return (uint64_t)((unsigned __int128)ns * DESKVM_TSC_HZ / NSEC_PER_SEC);
}

/* Rounds up, so a deadline never fires before the TSC reaches it. */
static inline int64_t deskvm_tsc_to_ns(uint64_t tsc)
{
    unsigned __int128 ns = ((unsigned __int128)tsc * NSEC_PER_SEC + DESKVM_TSC_HZ - 1) / DESKVM_TSC_HZ;
    return ns > INT64_MAX ? INT64_MAX : (int64_t)ns;
}

/* ---- the APIC bus's side (irqchip.c) */
/* Whether a message's destination names this APIC (physical ID, logical flat/cluster, broadcast 0xFF). */
bool lapic_match_dest(const struct lapic *l, uint8_t dest, bool logical);
/* Arbitration priority, for lowest-priority delivery. */
uint32_t lapic_arbitration_priority(struct lapic *l);
/* Accepts an interrupt message of the given delivery mode (LAPIC_DM_*). */
void lapic_deliver(struct lapic *l, unsigned delivery_mode, uint8_t vector, bool level_trigger);
/* An input pin: 0 = LINT0, 1 = LINT1. */
void lapic_set_lint(struct lapic *l, unsigned pin, bool level);

/* Power-on state (ID = index, enabled, BSP bit for CPU 0). */
void lapic_reset(struct lapic *l);
/* What PC firmware leaves on the BSP (MP spec virtual wire mode): software-enabled, LINT0 ExtINT, LINT1 NMI.
 */
void lapic_setup_virtual_wire(struct lapic *l);
/* MMIO register access, for the CPU whose APIC this is. */
uint32_t lapic_read_reg(struct lapic *l, uint32_t offset);
void lapic_write_reg(struct lapic *l, uint32_t offset, uint32_t value);

#endif
