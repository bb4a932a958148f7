/* Interrupt wiring: an irq_line is one wire (level 0/1) from a device to a controller input; an MSI is a message
 * (address, data) written towards the local APICs. Devices only ever see these two, never the controllers. */
#ifndef DESKVM_IRQ_H
#define DESKVM_IRQ_H

#include <stdint.h>

typedef void (*irq_handler_fn)(void *opaque, unsigned n, int level);

struct irq_line {
    irq_handler_fn handler; /* NULL: a line connected to nothing */
    void *opaque;
    unsigned n; /* input number on the receiving side (pin, GSI) */
};

static inline void irq_set_level(const struct irq_line *line, int level)
{
    if (line && line->handler)
        line->handler(line->opaque, line->n, level ? 1 : 0);
}

static inline void irq_raise(const struct irq_line *line)
{
    irq_set_level(line, 1);
}

static inline void irq_lower(const struct irq_line *line)
{
    irq_set_level(line, 0);
}

/* An edge for edge-triggered inputs (PIT, RTC through the PIC). */
static inline void irq_pulse(const struct irq_line *line)
{
    irq_set_level(line, 1);
    irq_set_level(line, 0);
}

/* x86 MSI address/data layout (Intel SDM vol. 3, 11.11). */
#define MSI_ADDR_BASE 0xFEE00000u
#define MSI_ADDR_MASK 0xFFF00000u
#define MSI_ADDR_DEST_ID_SHIFT 12
#define MSI_ADDR_DEST_ID_MASK 0xFFu
#define MSI_ADDR_REDIRECTION_HINT (1u << 3)
#define MSI_ADDR_DEST_MODE_LOGICAL (1u << 2)
#define MSI_DATA_VECTOR_MASK 0xFFu
#define MSI_DATA_DELIVERY_MODE_SHIFT 8
#define MSI_DATA_DELIVERY_MODE_MASK 0x7u
#define MSI_DATA_LEVEL_ASSERT (1u << 14)
#define MSI_DATA_TRIGGER_LEVEL (1u << 15)

struct msi_message {
    uint64_t address;
    uint32_t data;
};

#endif
