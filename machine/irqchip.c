/* Userspace irqchip glue: GSI routing to PIC and IOAPIC, the APIC bus (MSI, IOAPIC messages, IPIs), CPU INTR.
 */
#include "irqchip.h"

#include "ioapic.h"
#include "lapic.h"
#include "log.h"
#include "pic.h"

static struct log_ratelimit irqchip_rl = LOG_RATELIMIT_INIT(5000, 10);

int irqchip_wire_to_gsi(unsigned wire)
{
    if (wire == 0)
        return IRQCHIP_TIMER_GSI;
    if (wire == 2 || wire >= MACHINE_GSI_COUNT)
        return -1;
    return (int)wire;
}

static bool lapic_targeted(const struct lapic *l, const struct apic_message *msg)
{
    switch (msg->shorthand) {
    case LAPIC_SHORTHAND_SELF:
        return l->index == msg->source;
    case LAPIC_SHORTHAND_ALL:
        return true;
    case LAPIC_SHORTHAND_OTHERS:
        return l->index != msg->source;
    default:
        return lapic_match_dest(l, msg->dest, msg->logical);
    }
}

void apic_bus_deliver(struct machine *m, const struct apic_message *msg)
{
    struct lapic *lowest = NULL;
    uint32_t lowest_apr = 0;
    for (unsigned i = 0; i < m->config.cpus && i < MACHINE_MAX_CPUS; i++) {
        struct lapic *l = m->lapic[i];
        if (!l || !lapic_hw_enabled(l) || !lapic_targeted(l, msg))
            continue;
        if (msg->delivery_mode != LAPIC_DM_LOWEST) {
            lapic_deliver(l, msg->delivery_mode, msg->vector, msg->level_trigger);
            continue;
        }
        if (!lapic_sw_enabled(l))
            continue;
        uint32_t apr = lapic_arbitration_priority(l);
        if (!lowest || apr < lowest_apr) {
            lowest = l;
            lowest_apr = apr;
        }
    }
    if (lowest)
        lapic_deliver(lowest, LAPIC_DM_FIXED, msg->vector, msg->level_trigger);
}

void irqchip_broadcast_eoi(struct machine *m, uint8_t vector)
{
    if (m->ioapic)
        ioapic_eoi(m->ioapic, vector);
}

static void userspace_set_gsi(void *opaque, unsigned wire, int level)
{
    struct machine *m = opaque;
    if (wire >= MACHINE_GSI_COUNT) {
        log_message_ratelimited(&irqchip_rl, LOG_LEVEL_WARN, "irqchip: no GSI %u", wire);
        return;
    }
    if (wire < IRQCHIP_ISA_IRQS && wire != PIC_CASCADE_IRQ && m->pic)
        pic_set_irq(m->pic, wire, level);
    int gsi = irqchip_wire_to_gsi(wire);
    if (gsi >= 0 && m->ioapic)
        ioapic_set_irq(m->ioapic, gsi, level);
}

/* MSI address/data (SDM 11.11) to an APIC bus message. The APIC bus carries no SIPIs or reserved modes from
 * devices. */
static void userspace_send_msi(void *opaque, const struct msi_message *msi)
{
    struct machine *m = opaque;
    if ((msi->address & ~0xFFFFFull) != MSI_ADDR_BASE) {
        log_message_ratelimited(&irqchip_rl, LOG_LEVEL_WARN,
                                "irqchip: MSI to 0x%llx is outside the interrupt "
                                "range",
                                (unsigned long long)msi->address);
        return;
    }
    struct apic_message msg = {
        .delivery_mode = (msi->data >> MSI_DATA_DELIVERY_MODE_SHIFT) & MSI_DATA_DELIVERY_MODE_MASK,
        .vector = msi->data & MSI_DATA_VECTOR_MASK,
        .dest = (msi->address >> MSI_ADDR_DEST_ID_SHIFT) & MSI_ADDR_DEST_ID_MASK,
        .logical = msi->address & MSI_ADDR_DEST_MODE_LOGICAL,
        .level_trigger = msi->data & MSI_DATA_TRIGGER_LEVEL,
        .shorthand = LAPIC_SHORTHAND_NONE,
    };
    switch (msg.delivery_mode) {
    case LAPIC_DM_FIXED:
    case LAPIC_DM_LOWEST:
        break;
    case LAPIC_DM_SMI:
    case LAPIC_DM_NMI:
    case LAPIC_DM_INIT:
    case LAPIC_DM_EXTINT:
        msg.level_trigger = false;
        break;
    default:
        log_message_ratelimited(&irqchip_rl, LOG_LEVEL_WARN, "irqchip: MSI with reserved delivery mode %u",
                                msg.delivery_mode);
        return;
    }
    apic_bus_deliver(m, &msg);
}

static const struct irqchip_ops userspace_ops = {userspace_set_gsi, userspace_send_msi};

/* The 8259's INT is wired to LINT0 of every processor (MP spec); firmware and the OS unmask it on the BSP
 * only. */
static void pic_int_changed(void *opaque, bool level)
{
    struct machine *m = opaque;
    for (unsigned i = 0; i < m->config.cpus && i < MACHINE_MAX_CPUS; i++)
        if (m->lapic[i])
            lapic_set_lint(m->lapic[i], 0, level);
}

static struct lapic *cpu_lapic(struct machine *m, unsigned cpu)
{
    return cpu < m->config.cpus && cpu < MACHINE_MAX_CPUS ? m->lapic[cpu] : NULL;
}

static bool cpu_takes_extint(struct machine *m, unsigned cpu)
{
    if (!m->pic || !pic_has_interrupt(m->pic))
        return false;
    struct lapic *l = cpu_lapic(m, cpu);
    if (!l)
        return cpu == 0; /* no local APIC: the PIC drives the BSP's INTR */
    return lapic_extint_pending(l);
}

bool irqchip_cpu_has_interrupt(struct machine *m, unsigned cpu)
{
    if (cpu_takes_extint(m, cpu))
        return true;
    struct lapic *l = cpu_lapic(m, cpu);
    return l && lapic_has_interrupt(l);
}

int irqchip_cpu_acknowledge(struct machine *m, unsigned cpu)
{
    struct lapic *l = cpu_lapic(m, cpu);
    if (cpu_takes_extint(m, cpu)) {
        if (l)
            lapic_clear_extint(l);
        return pic_acknowledge(m->pic);
    }
    if (l && lapic_hw_enabled(l))
        return lapic_acknowledge(l);
    if (m->pic)
        return pic_acknowledge(m->pic); /* INTR went away: the 8259 answers IR7 */
    log_message_ratelimited(&irqchip_rl, LOG_LEVEL_WARN, "irqchip: CPU %u acknowledges with no controller",
                            cpu);
    return -1;
}

void irqchip_userspace_install(struct machine *m)
{
    machine_set_irqchip(m, &userspace_ops, m);
    if (m->pic) {
        pic_set_int_handler(m->pic, pic_int_changed, m);
        pic_int_changed(m, pic_has_interrupt(m->pic));
    }
}

static int irqchip_create(struct machine *m, char **error)
{
    (void)error;
    irqchip_userspace_install(m);
    return 0;
}

static void irqchip_destroy(struct machine *m)
{
    if (m->irqchip == &userspace_ops)
        machine_set_irqchip(m, NULL, NULL);
    if (m->pic)
        pic_set_int_handler(m->pic, NULL, NULL);
}

const struct machine_device irqchip_device = {"irqchip", irqchip_create, NULL, irqchip_destroy};
