/* The I/O APIC (after the Intel 82093AA, version 0x20 with the EOI register): 24 input pins whose redirection
 * entries turn wire levels into interrupt messages for the local APICs, sent as MSIs through
 * machine_send_msi. */
#ifndef DESKVM_IOAPIC_H
#define DESKVM_IOAPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "machine.h"

#define IOAPIC_BASE 0xFEC00000u
#define IOAPIC_MMIO_SIZE 0x1000u
#define IOAPIC_NUM_PINS 24

/* Memory-mapped registers */
#define IOAPIC_IOREGSEL 0x00
#define IOAPIC_IOWIN 0x10
#define IOAPIC_EOI 0x40

/* Indirect registers (IOREGSEL values) */
#define IOAPIC_REG_ID 0x00
#define IOAPIC_REG_VER 0x01
#define IOAPIC_REG_ARB 0x02
#define IOAPIC_REG_REDTBL 0x10 /* entry n: low dword 0x10 + 2n, high dword 0x11 + 2n */

#define IOAPIC_VERSION 0x20
#define IOAPIC_VER_VALUE ((uint32_t)(IOAPIC_NUM_PINS - 1) << 16 | IOAPIC_VERSION)
#define IOAPIC_ID_SHIFT 24
#define IOAPIC_ID_MASK 0x0F000000u

/* Redirection table entry */
#define IOAPIC_RTE_VECTOR_MASK 0xFFull
#define IOAPIC_RTE_DELMOD_SHIFT 8
#define IOAPIC_RTE_DELMOD_MASK (7ull << 8)
#define IOAPIC_RTE_DESTMOD_LOGICAL (1ull << 11)
#define IOAPIC_RTE_DELIVS (1ull << 12)
#define IOAPIC_RTE_INTPOL_LOW (1ull << 13)
#define IOAPIC_RTE_REMOTE_IRR (1ull << 14)
#define IOAPIC_RTE_TRIGGER_LEVEL (1ull << 15)
#define IOAPIC_RTE_MASKED (1ull << 16)
#define IOAPIC_RTE_DEST_SHIFT 56
/* Bits software may write; delivery status and remote IRR are read-only, the rest reserved. */
#define IOAPIC_RTE_WRITABLE (0xFF00000000000000ull | 0x1AFFFull)

/* Delivery modes (also the MSI data / ICR encodings) */
#define IOAPIC_DM_FIXED 0
#define IOAPIC_DM_LOWEST 1
#define IOAPIC_DM_SMI 2
#define IOAPIC_DM_NMI 4
#define IOAPIC_DM_INIT 5
#define IOAPIC_DM_EXTINT 7

/* Input levels are logical (1 = asserted): the polarity bit is stored for the guest but does not invert the
 * wire, because devices drive irq_lines with the asserted state, whatever the electrical level of the real
 * signal. */
struct ioapic {
    struct machine *m;
    uint32_t ioregsel;
    uint32_t id; /* bits 27:24 */
    uint64_t redtbl[IOAPIC_NUM_PINS];
    uint32_t pins; /* asserted inputs */
    struct io_guard guard;
};

extern const struct machine_device ioapic_device; /* stores into m->ioapic */

/* An input wire (pin 0-23); has the irq_line handler signature. */
void ioapic_set_irq(void *ioapic, unsigned pin, int level);
/* A local APIC's EOI broadcast for a level-triggered vector: clears remote IRR of every level entry with that
 * vector and delivers again if the pin is still asserted. */
void ioapic_eoi(struct ioapic *io, uint8_t vector);
/* The MSI-format message an entry sends. */
struct msi_message ioapic_entry_message(uint64_t entry);
void ioapic_reset(struct ioapic *io);

#endif
