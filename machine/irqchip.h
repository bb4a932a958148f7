/* The userspace irqchip: routes the machine's interrupt wires to the 8259 pair and the IOAPIC, carries
 * interrupt messages (IOAPIC, MSI, IPIs) over the APIC bus to the local APICs, and answers the vCPU's
 * interrupt questions.
 *
 * Interrupt wiring (what the ACPI MADT describes):
 * - Machine wire n (machine_gsi(m, n)) for n < 16 is ISA IRQ n: it drives PIC input n and IOAPIC pin n,
 *   except ISA IRQ 0 (PIT), which drives IOAPIC pin 2 (MADT source override IRQ 0 -> GSI 2, edge).
 *   Wire 2 drives nothing: the PIC's IR2 is the cascade and IOAPIC pin 2 belongs to IRQ 0.
 * - ISA IRQ 9 is the ACPI SCI: override IRQ 9 -> GSI 9, level, active high.
 * - Other ISA IRQs are GSI n, edge, active high.
 * - Wires 16-23 are the PCI INTx GSIs 16-23 (IOAPIC pins only): level, active low.
 * Wires carry the asserted state (1 = interrupt requested) whatever the electrical polarity, and the
 * controllers do not invert them. The IOAPIC has ID 0 at IOAPIC_BASE with GSI base 0; local APIC IDs are the
 * vCPU numbers.
 *
 * All calls are made holding the machine lock. */
#ifndef DESKVM_IRQCHIP_H
#define DESKVM_IRQCHIP_H

#include <stdbool.h>
#include <stdint.h>

#include "machine.h"

#define IRQCHIP_ISA_IRQS 16
#define IRQCHIP_TIMER_GSI 2 /* ISA IRQ 0 */
#define IRQCHIP_SCI_IRQ 9
#define IRQCHIP_PCI_GSI_BASE 16
#define IRQCHIP_PCI_GSI_COUNT 8

/* The IOAPIC pin an ISA IRQ or PCI GSI wire drives, or -1 (wire 2, out of range). */
int irqchip_wire_to_gsi(unsigned wire);

/* One message on the APIC bus. */
struct apic_message {
    unsigned delivery_mode; /* LAPIC_DM_* */
    uint8_t vector;
    uint8_t dest;       /* APIC ID, or logical destination */
    bool logical;       /* logical (flat/cluster per receiver's DFR) or physical destination */
    bool level_trigger; /* sets the TMR bit: EOI is broadcast to the IOAPIC */
    unsigned shorthand; /* LAPIC_SHORTHAND_* (IPIs only) */
    unsigned source;    /* sending CPU, for the self / all-but-self shorthands */
};

/* Delivers to every APIC the destination names; lowest priority picks the one enabled target with the lowest
 * arbitration priority (ties: lowest CPU number). */
void apic_bus_deliver(struct machine *m, const struct apic_message *msg);
/* A local APIC's EOI of a level-triggered vector, to the IOAPIC. */
void irqchip_broadcast_eoi(struct machine *m, uint8_t vector);

/* ---- the vCPU's side */
/* Whether the CPU's INTR is up: an ExtINT from the PIC (virtual wire, or no enabled APIC), or a local APIC
 * interrupt above its processor priority. */
bool irqchip_cpu_has_interrupt(struct machine *m, unsigned cpu);
/* The whole acknowledge: the PIC's vector for ExtINT, else the local APIC's (spurious vector if nothing is
 * deliverable any more). Call when the CPU accepts an external interrupt (IF=1, at an instruction boundary).
 */
int irqchip_cpu_acknowledge(struct machine *m, unsigned cpu);

/* Makes the PIC, IOAPIC and local APICs present in m the machine's irqchip (machine_set_irqchip) and connects
 * the PIC's INT to LINT0 of every local APIC. */
void irqchip_userspace_install(struct machine *m);
/* The same as a device; list it after pic_device, ioapic_device and lapic_device. */
extern const struct machine_device irqchip_device;

#endif
