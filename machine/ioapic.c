/* I/O APIC: register window, redirection table, edge/level pin logic with remote IRR, messages out as MSIs.
 */
#include "ioapic.h"

#include <string.h>

#include "log.h"

static struct log_ratelimit ioapic_rl = LOG_RATELIMIT_INIT(5000, 10);

struct msi_message ioapic_entry_message(uint64_t e)
{
    uint32_t dest = (e >> IOAPIC_RTE_DEST_SHIFT) & 0xFF;
    uint32_t mode = (e & IOAPIC_RTE_DELMOD_MASK) >> IOAPIC_RTE_DELMOD_SHIFT;
    struct msi_message msg;
    msg.address = MSI_ADDR_BASE | dest << MSI_ADDR_DEST_ID_SHIFT;
    if (e & IOAPIC_RTE_DESTMOD_LOGICAL)
        msg.address |= MSI_ADDR_DEST_MODE_LOGICAL;
    msg.data = (uint32_t)(e & IOAPIC_RTE_VECTOR_MASK) | mode << MSI_DATA_DELIVERY_MODE_SHIFT;
    if (e & IOAPIC_RTE_TRIGGER_LEVEL)
        msg.data |= MSI_DATA_TRIGGER_LEVEL | MSI_DATA_LEVEL_ASSERT;
    return msg;
}

/* Only fixed and lowest-priority interrupts are level-triggered; SMI, NMI, INIT and ExtINT are edge whatever
 * the trigger bit says, so they never wait for an EOI that will not come. */
static bool entry_is_level(uint64_t e)
{
    unsigned mode = (e & IOAPIC_RTE_DELMOD_MASK) >> IOAPIC_RTE_DELMOD_SHIFT;
    return (e & IOAPIC_RTE_TRIGGER_LEVEL) && (mode == IOAPIC_DM_FIXED || mode == IOAPIC_DM_LOWEST);
}

static void ioapic_send(struct ioapic *io, unsigned pin)
{
    uint64_t *e = &io->redtbl[pin];
    struct msi_message msg = ioapic_entry_message(*e);
    if (entry_is_level(*e))
        *e |= IOAPIC_RTE_REMOTE_IRR;
    machine_send_msi(io->m, &msg);
}

/* A level-triggered pin delivers while asserted, unmasked and not awaiting an EOI. */
static void ioapic_service_level(struct ioapic *io, unsigned pin)
{
    uint64_t e = io->redtbl[pin];
    if ((io->pins & (1u << pin)) && entry_is_level(e) && !(e & (IOAPIC_RTE_MASKED | IOAPIC_RTE_REMOTE_IRR)))
        ioapic_send(io, pin);
}

void ioapic_set_irq(void *opaque, unsigned pin, int level)
{
    struct ioapic *io = opaque;
    if (pin >= IOAPIC_NUM_PINS) {
        log_message_ratelimited(&ioapic_rl, LOG_LEVEL_WARN, "ioapic: no input pin %u", pin);
        return;
    }
    uint32_t bit = 1u << pin;
    bool was = io->pins & bit;
    io->pins = level ? io->pins | bit : io->pins & ~bit;
    uint64_t e = io->redtbl[pin];
    if (entry_is_level(e))
        ioapic_service_level(io, pin);
    else if (level && !was && !(e & IOAPIC_RTE_MASKED))
        ioapic_send(io, pin); /* an edge on a masked pin is lost, as the datasheet says */
}

void ioapic_eoi(struct ioapic *io, uint8_t vector)
{
    for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
        uint64_t *e = &io->redtbl[pin];
        if ((*e & IOAPIC_RTE_VECTOR_MASK) != vector || !(*e & IOAPIC_RTE_REMOTE_IRR))
            continue;
        *e &= ~IOAPIC_RTE_REMOTE_IRR;
        ioapic_service_level(io, pin);
    }
}

static uint32_t ioapic_read_reg(struct ioapic *io, uint32_t index)
{
    switch (index) {
    case IOAPIC_REG_ID:
        return io->id;
    case IOAPIC_REG_VER:
        return IOAPIC_VER_VALUE;
    case IOAPIC_REG_ARB:
        return io->id; /* the arbitration ID is loaded from the APIC ID */
    }
    if (index >= IOAPIC_REG_REDTBL && index < IOAPIC_REG_REDTBL + 2 * IOAPIC_NUM_PINS) {
        uint64_t e = io->redtbl[(index - IOAPIC_REG_REDTBL) / 2];
        return index & 1 ? e >> 32 : (uint32_t)e;
    }
    log_message_ratelimited(&ioapic_rl, LOG_LEVEL_DEBUG, "ioapic: read of unknown register 0x%x", index);
    return 0;
}

static void ioapic_write_reg(struct ioapic *io, uint32_t index, uint32_t value)
{
    if (index == IOAPIC_REG_ID) {
        io->id = value & IOAPIC_ID_MASK;
        return;
    }
    if (index < IOAPIC_REG_REDTBL || index >= IOAPIC_REG_REDTBL + 2 * IOAPIC_NUM_PINS) {
        log_message_ratelimited(&ioapic_rl, LOG_LEVEL_DEBUG,
                                "ioapic: write of 0x%x to read-only or unknown "
                                "register 0x%x",
                                value, index);
        return;
    }
    unsigned pin = (index - IOAPIC_REG_REDTBL) / 2;
    uint64_t *e = &io->redtbl[pin];
    uint64_t nv = index & 1 ? (uint64_t)value << 32 | (uint32_t)*e : (*e & 0xFFFFFFFF00000000ull) | value;
    *e = (*e & ~IOAPIC_RTE_WRITABLE) | (nv & IOAPIC_RTE_WRITABLE);
    /* Remote IRR has no meaning for an edge entry; clearing it also lets software unstick a pin this way. */
    if (!entry_is_level(*e))
        *e &= ~IOAPIC_RTE_REMOTE_IRR;
    ioapic_service_level(io, pin); /* e.g. unmasking a still-asserted level input */
}

/* The registers are 32 bits wide at 16-byte spacing; narrower reads see part of one, other writes are
 * dropped. */
static uint64_t ioapic_mmio_read(void *opaque, uint64_t offset, unsigned size)
{
    struct ioapic *io = opaque;
    uint64_t reg = offset & ~0xFull, byte = offset & 0xF;
    if (byte + size > 4) {
        log_message_ratelimited(&ioapic_rl, LOG_LEVEL_WARN, "ioapic: bad %u-byte read at 0x%llx", size,
                                (unsigned long long)offset);
        return ~0ull;
    }
    uint32_t v;
    if (reg == IOAPIC_IOREGSEL)
        v = io->ioregsel;
    else if (reg == IOAPIC_IOWIN)
        v = ioapic_read_reg(io, io->ioregsel);
    else
        v = 0;
    return v >> (8 * byte);
}

static void ioapic_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct ioapic *io = opaque;
    if (offset == IOAPIC_IOREGSEL && size <= 4) {
        io->ioregsel = value & 0xFF; /* IOREGSEL is an 8-bit register */
        return;
    }
    if (size != 4) {
        log_message_ratelimited(&ioapic_rl, LOG_LEVEL_WARN, "ioapic: bad %u-byte write at 0x%llx", size,
                                (unsigned long long)offset);
        return;
    }
    if (offset == IOAPIC_IOWIN)
        ioapic_write_reg(io, io->ioregsel, value);
    else if (offset == IOAPIC_EOI)
        ioapic_eoi(io, value & 0xFF);
    else
        log_message_ratelimited(&ioapic_rl, LOG_LEVEL_DEBUG, "ioapic: write to unknown offset 0x%llx",
                                (unsigned long long)offset);
}

static const struct io_ops ioapic_ops = {ioapic_mmio_read, ioapic_mmio_write};

/* Power-on: ID 0, every entry masked, edge, vector 0. Pin levels belong to the devices and are kept. */
void ioapic_reset(struct ioapic *io)
{
    io->ioregsel = 0;
    io->id = 0;
    for (unsigned i = 0; i < IOAPIC_NUM_PINS; i++)
        io->redtbl[i] = IOAPIC_RTE_MASKED;
}

static int ioapic_create(struct machine *m, char **error)
{
    struct ioapic *io = g_new0(struct ioapic, 1);
    io->m = m;
    int r = io_bus_register(&m->mmio, IOAPIC_BASE, IOAPIC_MMIO_SIZE, &ioapic_ops, io, "ioapic", &io->guard);
    if (r < 0) {
        *error = g_strdup_printf("cannot register MMIO at 0x%x: %s", IOAPIC_BASE, g_strerror(-r));
        g_free(io);
        return r;
    }
    ioapic_reset(io);
    m->ioapic = io;
    return 0;
}

static void ioapic_device_reset(struct machine *m)
{
    ioapic_reset(m->ioapic);
}

static void ioapic_destroy(struct machine *m)
{
    if (!m->ioapic)
        return;
    io_bus_unregister(&m->mmio, IOAPIC_BASE, m->ioapic);
    g_free(m->ioapic);
    m->ioapic = NULL;
}

const struct machine_device ioapic_device = {"ioapic", ioapic_create, ioapic_device_reset, ioapic_destroy};
