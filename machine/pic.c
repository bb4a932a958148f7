/* Intel 8259A PIC pair with ELCR, after the 8259A datasheet (ICW1-4, OCW1-3) and the PIIX ELCR. */
#include "pic.h"

#include <string.h>

#include "log.h"

static struct log_ratelimit pic_rl = LOG_RATELIMIT_INIT(5000, 10);

/* ELCR: IRQ 0, 1, 2, 8 and 13 are always edge-triggered on a PC. */
static const uint8_t elcr_writable[2] = {0xF8, 0xDE};

static uint8_t level_mask(const struct pic_chip *c)
{
    return c->ltim ? 0xFF : c->elcr;
}

/* Priority rank of a set of levels: 0 is the highest-priority level present, 8 means none. */
static unsigned chip_rank(const struct pic_chip *c, uint8_t levels)
{
    for (unsigned r = 0; r < 8; r++)
        if (levels & (1u << ((c->highest + r) & 7)))
            return r;
    return 8;
}

/* The level that would interrupt the CPU now, or -1. Fully nested: a request must outrank everything in
 * service, except that in special mask mode only unmasked in-service levels count, and in special fully
 * nested mode the cascade input may interrupt its own in-service level (a higher slave request). */
static int chip_pending(const struct pic_chip *c, bool master)
{
    unsigned req = chip_rank(c, c->irr & ~c->imr);
    if (req == 8)
        return -1;
    uint8_t busy = c->special_mask ? c->isr & ~c->imr : c->isr;
    unsigned level = (c->highest + req) & 7;
    if (master && c->sfnm && level == PIC_CASCADE_IRQ)
        busy &= ~(1u << PIC_CASCADE_IRQ);
    return req < chip_rank(c, busy) ? (int)level : -1;
}

static void chip_set_input(struct pic_chip *c, unsigned ir, bool level)
{
    uint8_t bit = 1u << ir;
    bool was = c->pins & bit;
    c->pins = level ? c->pins | bit : c->pins & ~bit;
    if (level_mask(c) & bit) {
        /* Level-sensitive: the request follows the wire and vanishes with it. */
        c->irr = level ? c->irr | bit : c->irr & ~bit;
    } else if (level && !was) {
        /* Edge: latched on the rising edge and held until acknowledged, so a pulse is never lost. */
        c->irr |= bit;
    }
}

/* Level-sensitive requests always mirror their pins (after ELCR or ICW1 changes which inputs are level). */
static void chip_resync_levels(struct pic_chip *c)
{
    uint8_t lv = level_mask(c);
    c->irr = (c->irr & ~lv) | (c->pins & lv);
}

static void chip_intack(struct pic_chip *c, unsigned level)
{
    uint8_t bit = 1u << level;
    if (c->auto_eoi) {
        if (c->rotate_on_aeoi)
            c->highest = (level + 1) & 7;
    } else {
        c->isr |= bit;
    }
    /* A level-sensitive request stays while its wire is high; the ISR bit holds it off until the EOI. */
    if (!(level_mask(c) & bit))
        c->irr &= ~bit;
}

static void pic_update(struct pic *p)
{
    chip_set_input(&p->chip[0], PIC_CASCADE_IRQ, chip_pending(&p->chip[1], false) >= 0);
    bool out = chip_pending(&p->chip[0], true) >= 0;
    if (out != p->int_out) {
        p->int_out = out;
        if (p->int_changed)
            p->int_changed(p->int_opaque, out);
    }
}

void pic_set_irq(void *opaque, unsigned irq, int level)
{
    struct pic *p = opaque;
    if (irq >= PIC_IRQ_COUNT || irq == PIC_CASCADE_IRQ) {
        log_message_ratelimited(&pic_rl, LOG_LEVEL_WARN, "pic: input %u cannot be driven", irq);
        return;
    }
    chip_set_input(&p->chip[irq >> 3], irq & 7, level != 0);
    pic_update(p);
}

bool pic_has_interrupt(struct pic *p)
{
    return p->int_out;
}

int pic_acknowledge(struct pic *p)
{
    struct pic_chip *master = &p->chip[0], *slave = &p->chip[1];
    int vector;
    int level = chip_pending(master, true);
    if (level < 0) {
        /* The request went away before INTA: the 8259A answers with IR7 and sets no ISR bit. */
        vector = master->vector_base | 7;
    } else {
        chip_intack(master, level);
        if (level == PIC_CASCADE_IRQ && !master->single) {
            int sl = chip_pending(slave, false);
            if (sl < 0) {
                vector = slave->vector_base | 7;
            } else {
                chip_intack(slave, sl);
                vector = slave->vector_base | sl;
            }
        } else {
            vector = master->vector_base | level;
        }
    }
    pic_update(p);
    return vector;
}

void pic_set_int_handler(struct pic *p, void (*fn)(void *opaque, bool level), void *opaque)
{
    p->int_changed = fn;
    p->int_opaque = opaque;
}

/* ICW1 starts initialisation: edge sense reset, IMR cleared, IR7 lowest priority, SMM off, status read = IRR,
 * and ICW4 functions zero unless IC4 asks for an ICW4. In-service bits are dropped too, so a re-initialised
 * chip cannot stay blocked by a level nobody will ever EOI. */
static void chip_icw1(struct pic_chip *c, uint8_t v)
{
    c->icw4_expected = v & PIC_ICW1_IC4;
    c->single = v & PIC_ICW1_SNGL;
    c->ltim = v & PIC_ICW1_LTIM;
    c->irr = 0;
    c->isr = 0;
    c->imr = 0;
    c->highest = 0;
    c->special_mask = false;
    c->poll = false;
    c->read_isr = false;
    c->auto_eoi = false;
    c->rotate_on_aeoi = false;
    c->sfnm = false;
    c->icw3 = 0;
    chip_resync_levels(c);
    c->init_step = 2;
}

static void chip_ocw2(struct pic_chip *c, uint8_t v)
{
    unsigned cmd = v >> 5, level = v & 7;
    switch (cmd) {
    case 1:   /* non-specific EOI */
    case 5: { /* rotate on non-specific EOI */
        unsigned r = chip_rank(c, c->isr);
        if (r == 8)
            return;
        unsigned l = (c->highest + r) & 7;
        c->isr &= ~(1u << l);
        if (cmd == 5)
            c->highest = (l + 1) & 7;
        return;
    }
    case 3: /* specific EOI */
        c->isr &= ~(1u << level);
        return;
    case 7: /* rotate on specific EOI */
        c->isr &= ~(1u << level);
        c->highest = (level + 1) & 7;
        return;
    case 4: /* set rotate in automatic EOI mode */
    case 0: /* clear rotate in automatic EOI mode */
        c->rotate_on_aeoi = cmd == 4;
        return;
    case 6: /* set priority: the given level becomes the lowest */
        c->highest = (level + 1) & 7;
        return;
    default: /* 2: no operation */
        return;
    }
}

static void chip_ocw3(struct pic_chip *c, uint8_t v)
{
    if (v & PIC_OCW3_P)
        c->poll = true;
    if (v & PIC_OCW3_RR)
        c->read_isr = v & PIC_OCW3_RIS;
    if (v & PIC_OCW3_ESMM)
        c->special_mask = v & PIC_OCW3_SMM;
}

static void chip_write_data(struct pic_chip *c, uint8_t v, unsigned index)
{
    switch (c->init_step) {
    case 2:
        c->vector_base = v & 0xF8;
        c->init_step = !c->single ? 3 : c->icw4_expected ? 4 : 0;
        break;
    case 3:
        c->icw3 = v;
        c->init_step = c->icw4_expected ? 4 : 0;
        break;
    case 4:
        if (!(v & PIC_ICW4_UPM))
            log_message_ratelimited(&pic_rl, LOG_LEVEL_WARN, "pic%u: MCS-80/85 mode is not supported", index);
        c->auto_eoi = v & PIC_ICW4_AEOI;
        c->sfnm = v & PIC_ICW4_SFNM;
        c->init_step = 0;
        break;
    default:
        c->imr = v;
        break;
    }
}

/* Poll command: the read acts as the INTA cycle and reports (I, W2-W0). */
static uint8_t chip_poll(struct pic_chip *c, bool master)
{
    c->poll = false;
    int level = chip_pending(c, master);
    if (level < 0)
        return 0;
    chip_intack(c, level);
    return 0x80 | level;
}

static uint8_t pic_read_byte(struct pic *p, unsigned index, unsigned a0)
{
    struct pic_chip *c = &p->chip[index];
    if (a0)
        return c->imr;
    if (c->poll) {
        uint8_t v = chip_poll(c, index == 0);
        pic_update(p);
        return v;
    }
    return c->read_isr ? c->isr : c->irr;
}

static void pic_write_byte(struct pic *p, unsigned index, unsigned a0, uint8_t v)
{
    struct pic_chip *c = &p->chip[index];
    if (a0)
        chip_write_data(c, v, index);
    else if (v & PIC_ICW1_INIT)
        chip_icw1(c, v);
    else if (v & PIC_OCW3_SEL)
        chip_ocw3(c, v);
    else
        chip_ocw2(c, v);
    pic_update(p);
}

/* Registers are 8 bits wide; a wider access touches consecutive ports, as on the ISA bus. */
static uint64_t pic_read(struct pic *p, unsigned index, uint64_t offset, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size && offset + i < 2; i++)
        v |= (uint64_t)pic_read_byte(p, index, offset + i) << (8 * i);
    return v;
}

static void pic_write(struct pic *p, unsigned index, uint64_t offset, uint64_t value, unsigned size)
{
    for (unsigned i = 0; i < size && offset + i < 2; i++)
        pic_write_byte(p, index, offset + i, value >> (8 * i));
}

static uint64_t master_read(void *opaque, uint64_t offset, unsigned size)
{
    return pic_read(opaque, 0, offset, size);
}

static void master_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    pic_write(opaque, 0, offset, value, size);
}

static uint64_t slave_read(void *opaque, uint64_t offset, unsigned size)
{
    return pic_read(opaque, 1, offset, size);
}

static void slave_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    pic_write(opaque, 1, offset, value, size);
}

static uint64_t elcr_read(void *opaque, uint64_t offset, unsigned size)
{
    struct pic *p = opaque;
    uint64_t v = 0;
    for (unsigned i = 0; i < size && offset + i < 2; i++)
        v |= (uint64_t)p->chip[offset + i].elcr << (8 * i);
    return v;
}

static void elcr_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct pic *p = opaque;
    for (unsigned i = 0; i < size && offset + i < 2; i++) {
        struct pic_chip *c = &p->chip[offset + i];
        c->elcr = (value >> (8 * i)) & c->elcr_mask;
        chip_resync_levels(c);
    }
    pic_update(p);
}

static const struct io_ops master_ops = {master_read, master_write};
static const struct io_ops slave_ops = {slave_read, slave_write};
static const struct io_ops elcr_ops = {elcr_read, elcr_write};

/* Power-on: uninitialised chips (vector base 0, nothing masked), all inputs edge-triggered. Input levels are
 * kept: they belong to the devices driving the wires. */
void pic_reset(struct pic *p)
{
    for (unsigned i = 0; i < 2; i++) {
        struct pic_chip *c = &p->chip[i];
        uint8_t pins = c->pins;
        memset(c, 0, sizeof(*c));
        c->pins = pins;
        c->elcr_mask = elcr_writable[i];
    }
    /* The cascade input is re-derived from the slave, not remembered. */
    p->chip[0].pins &= ~(1u << PIC_CASCADE_IRQ);
    pic_update(p);
}

static int pic_create(struct machine *m, char **error)
{
    struct pic *p = g_new0(struct pic, 1);
    p->m = m;
    int r = io_bus_register(&m->pio, PIC_MASTER_BASE, 2, &master_ops, p, "pic-master", NULL);
    if (r == 0) {
        r = io_bus_register(&m->pio, PIC_SLAVE_BASE, 2, &slave_ops, p, "pic-slave", NULL);
        if (r == 0) {
            r = io_bus_register(&m->pio, PIC_ELCR_BASE, 2, &elcr_ops, p, "elcr", NULL);
            if (r < 0)
                io_bus_unregister(&m->pio, PIC_SLAVE_BASE, p);
        }
        if (r < 0)
            io_bus_unregister(&m->pio, PIC_MASTER_BASE, p);
    }
    if (r < 0) {
        *error = g_strdup_printf("cannot register ports: %s", g_strerror(-r));
        g_free(p);
        return r;
    }
    pic_reset(p);
    m->pic = p;
    return 0;
}

static void pic_device_reset(struct machine *m)
{
    pic_reset(m->pic);
}

static void pic_destroy(struct machine *m)
{
    struct pic *p = m->pic;
    if (!p)
        return;
    io_bus_unregister(&m->pio, PIC_MASTER_BASE, p);
    io_bus_unregister(&m->pio, PIC_SLAVE_BASE, p);
    io_bus_unregister(&m->pio, PIC_ELCR_BASE, p);
    g_free(p);
    m->pic = NULL;
}

const struct machine_device pic_device = {"pic", pic_create, pic_device_reset, pic_destroy};
