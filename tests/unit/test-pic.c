/* Proves the 8259A pair: ICW sequence and vector bases, IMR, fully nested priority with ISR, EOI commands,
 * auto-EOI, rotation, poll mode, special mask mode, edge vs ELCR level inputs, the cascade and spurious IR7.
 */
#include <glib.h>

#include "device_harness.h"
#include "log.h"
#include "machine.h"
#include "pic.h"

struct fixture {
    struct machine m;
    unsigned int_changes;
    bool int_level;
};

static void int_changed(void *opaque, bool level)
{
    struct fixture *f = opaque;
    f->int_changes++;
    f->int_level = level;
}

static const struct machine_device *const devices[] = {&pic_device};

static void setup(struct fixture *f)
{
    f->int_changes = 0;
    f->int_level = false;
    dh_machine_init(&f->m, devices, G_N_ELEMENTS(devices), 1, 1 << 20);
    g_assert_nonnull(f->m.pic);
    pic_set_int_handler(f->m.pic, int_changed, f);
}

static void teardown(struct fixture *f)
{
    dh_machine_fini(&f->m);
}

static void irq(struct fixture *f, unsigned n, int level)
{
    pic_set_irq(f->m.pic, n, level);
}

static void pulse(struct fixture *f, unsigned n)
{
    irq(f, n, 1);
    irq(f, n, 0);
}

/* The PC sequence: edge, cascade on IR2, 8086 mode, with the given ICW4 extra bits. */
static void init_pics(struct fixture *f, uint8_t master_base, uint8_t slave_base, uint8_t icw4)
{
    dh_outb(&f->m, 0x20, 0x11);
    dh_outb(&f->m, 0x21, master_base);
    dh_outb(&f->m, 0x21, 0x04);
    dh_outb(&f->m, 0x21, 0x01 | icw4);
    dh_outb(&f->m, 0xA0, 0x11);
    dh_outb(&f->m, 0xA1, slave_base);
    dh_outb(&f->m, 0xA1, 0x02);
    dh_outb(&f->m, 0xA1, 0x01 | icw4);
}

static uint8_t read_isr(struct fixture *f, uint16_t base)
{
    dh_outb(&f->m, base, 0x0B);
    return dh_inb(&f->m, base);
}

static uint8_t read_irr(struct fixture *f, uint16_t base)
{
    dh_outb(&f->m, base, 0x0A);
    return dh_inb(&f->m, base);
}

static void test_init_vector_base(void)
{
    struct fixture f;
    setup(&f);
    dh_outb(&f.m, 0x21, 0x5A);
    init_pics(&f, 0x37, 0x70, 0);                  /* T2-T0 of ICW2 are ignored */
    g_assert_cmphex(dh_inb(&f.m, 0x21), ==, 0x00); /* ICW1 clears the IMR */
    g_assert_cmphex(dh_inb(&f.m, 0xA1), ==, 0x00);
    g_assert_false(pic_has_interrupt(f.m.pic));
    pulse(&f, 1);
    g_assert_true(pic_has_interrupt(f.m.pic));
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x31);
    g_assert_false(pic_has_interrupt(f.m.pic));
    dh_outb(&f.m, 0x20, 0x20);
    pulse(&f, 14);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x76);
    /* Without IC4 no ICW4 is expected: the third write after ICW1 (single mode) is the IMR. */
    dh_outb(&f.m, 0x20, 0x12); /* SNGL, no IC4 */
    dh_outb(&f.m, 0x21, 0x08);
    dh_outb(&f.m, 0x21, 0xF0);
    g_assert_cmphex(dh_inb(&f.m, 0x21), ==, 0xF0);
    teardown(&f);
}

static void test_imr_masks(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    dh_outb(&f.m, 0x21, 0x02);
    g_assert_cmphex(dh_inb(&f.m, 0x21), ==, 0x02);
    pulse(&f, 1);
    g_assert_false(pic_has_interrupt(f.m.pic));
    g_assert_cmphex(read_irr(&f, 0x20), ==, 0x02); /* requested, but masked */
    g_assert_cmpuint(f.int_changes, ==, 0);
    dh_outb(&f.m, 0x21, 0x00);
    g_assert_true(pic_has_interrupt(f.m.pic));
    g_assert_cmpuint(f.int_changes, ==, 1);
    g_assert_true(f.int_level);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x21);
    g_assert_cmpuint(f.int_changes, ==, 2);
    g_assert_false(f.int_level);
    dh_outb(&f.m, 0x20, 0x20);
    /* masking the slave's line on the master hides every slave IRQ */
    dh_outb(&f.m, 0x21, 0x04);
    pulse(&f, 12);
    g_assert_false(pic_has_interrupt(f.m.pic));
    dh_outb(&f.m, 0x21, 0x00);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x2C);
    teardown(&f);
}

static void test_priority_nesting(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    pulse(&f, 3);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x23);
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x08);
    pulse(&f, 5);
    g_assert_false(pic_has_interrupt(f.m.pic)); /* lower priority than IR3 in service */
    pulse(&f, 1);
    g_assert_true(pic_has_interrupt(f.m.pic)); /* higher priority nests */
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x21);
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x0A);
    g_assert_cmphex(read_irr(&f, 0x20), ==, 0x20);
    dh_outb(&f.m, 0x20, 0x20); /* non-specific EOI ends the highest: IR1 */
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x08);
    g_assert_false(pic_has_interrupt(f.m.pic));
    dh_outb(&f.m, 0x20, 0x20);
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x00);
    g_assert_true(pic_has_interrupt(f.m.pic));
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x25);
    /* two requests at once: the lowest-numbered wins */
    pulse(&f, 7);
    pulse(&f, 6);
    dh_outb(&f.m, 0x20, 0x20);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x26);
    teardown(&f);
}

static void test_specific_eoi(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    pulse(&f, 3);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x23);
    pulse(&f, 1);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x21);
    dh_outb(&f.m, 0x20, 0x63); /* specific EOI for IR3, not the highest in service */
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x02);
    dh_outb(&f.m, 0x20, 0x65); /* EOI for a level not in service changes nothing */
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x02);
    dh_outb(&f.m, 0x20, 0x61);
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x00);
    teardown(&f);
}

static void test_auto_eoi(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0x02);
    pulse(&f, 4);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x24);
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x00);
    pulse(&f, 6); /* nothing in service blocks it */
    g_assert_true(pic_has_interrupt(f.m.pic));
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x26);
    teardown(&f);
}

static void test_rotation(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    pulse(&f, 0);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x20);
    dh_outb(&f.m, 0x20, 0xA0); /* rotate on non-specific EOI: IR0 becomes the lowest */
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x00);
    pulse(&f, 0);
    pulse(&f, 7);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x27); /* IR7 now outranks IR0 */
    dh_outb(&f.m, 0x20, 0xE7); /* rotate on specific EOI for IR7: IR0 highest again */
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x20);
    dh_outb(&f.m, 0x20, 0x20);
    /* set priority: IR4 lowest, so IR5 highest */
    dh_outb(&f.m, 0x20, 0xC4);
    pulse(&f, 3);
    pulse(&f, 6);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x26);
    /* in this order the nesting check ranks IR3 below IR6 in service */
    g_assert_false(pic_has_interrupt(f.m.pic));
    dh_outb(&f.m, 0x20, 0x20);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x23);
    dh_outb(&f.m, 0x20, 0x20);
    teardown(&f);
}

static void test_rotate_in_aeoi(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0x02);
    dh_outb(&f.m, 0x20, 0x80); /* rotate in automatic EOI mode */
    pulse(&f, 3);
    pulse(&f, 5);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x23);
    pulse(&f, 3);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x25); /* IR3 went to the bottom */
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x23);
    teardown(&f);
}

static void test_poll_mode(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    dh_outb(&f.m, 0x20, 0x0C);
    g_assert_cmphex(dh_inb(&f.m, 0x20), ==, 0x00); /* nothing pending */
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x00);
    pulse(&f, 5);
    pulse(&f, 3);
    dh_outb(&f.m, 0x20, 0x0C);
    g_assert_cmphex(dh_inb(&f.m, 0x20), ==, 0x83);
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x08); /* the poll read acted as INTA */
    g_assert_cmphex(read_irr(&f, 0x20), ==, 0x20);
    g_assert_false(pic_has_interrupt(f.m.pic));
    /* the poll is one-shot: the next read is a status read again */
    g_assert_cmphex(dh_inb(&f.m, 0x20), ==, 0x20);
    teardown(&f);
}

static void test_special_mask_mode(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    pulse(&f, 3);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x23);
    dh_outb(&f.m, 0x21, 0x08);
    pulse(&f, 5);
    g_assert_false(pic_has_interrupt(f.m.pic));
    dh_outb(&f.m, 0x20, 0x68); /* set special mask mode: masked in-service IR3 no longer blocks */
    g_assert_true(pic_has_interrupt(f.m.pic));
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x25);
    dh_outb(&f.m, 0x20, 0x48); /* reset special mask mode */
    dh_outb(&f.m, 0x20, 0x65);
    pulse(&f, 6);
    g_assert_false(pic_has_interrupt(f.m.pic)); /* IR3 blocks again */
    teardown(&f);
}

static void test_edge_latch(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    pulse(&f, 4); /* the edge is latched though the line is already low */
    g_assert_true(pic_has_interrupt(f.m.pic));
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x24);
    dh_outb(&f.m, 0x20, 0x20);
    irq(&f, 4, 1);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x24);
    dh_outb(&f.m, 0x20, 0x20);
    irq(&f, 4, 1); /* still high: no new edge, no new request */
    g_assert_false(pic_has_interrupt(f.m.pic));
    irq(&f, 4, 0);
    irq(&f, 4, 1);
    g_assert_true(pic_has_interrupt(f.m.pic));
    teardown(&f);
}

static void test_elcr_level(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    dh_outb(&f.m, 0x4D0, 0xFF);
    dh_outb(&f.m, 0x4D1, 0xFF);
    g_assert_cmphex(dh_inb(&f.m, 0x4D0), ==, 0xF8); /* IRQ 0, 1, 2 always edge */
    g_assert_cmphex(dh_inb(&f.m, 0x4D1), ==, 0xDE); /* IRQ 8 and 13 always edge */
    uint64_t both = 0;
    g_assert_true(io_bus_read(&f.m.pio, 0x4D0, 2, &both));
    g_assert_cmphex(both, ==, 0xDEF8);
    dh_outb(&f.m, 0x4D0, 0x20);
    dh_outb(&f.m, 0x4D1, 0x00);
    irq(&f, 5, 1);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x25);
    g_assert_cmphex(read_irr(&f, 0x20), ==, 0x20); /* a level request stays while the line is high */
    g_assert_false(pic_has_interrupt(f.m.pic));    /* held off by ISR */
    dh_outb(&f.m, 0x20, 0x20);
    g_assert_true(pic_has_interrupt(f.m.pic)); /* still asserted after EOI: interrupts again */
    irq(&f, 5, 0);
    g_assert_false(pic_has_interrupt(f.m.pic)); /* and the request vanishes with the line */
    g_assert_cmphex(read_irr(&f, 0x20), ==, 0x00);
    /* switching an asserted input to level makes it a request at once */
    irq(&f, 6, 1);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x26);
    dh_outb(&f.m, 0x20, 0x20);
    g_assert_false(pic_has_interrupt(f.m.pic));
    dh_outb(&f.m, 0x4D0, 0x40);
    g_assert_true(pic_has_interrupt(f.m.pic));
    teardown(&f);
}

static void test_cascade(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    pulse(&f, 10);
    g_assert_true(pic_has_interrupt(f.m.pic));
    g_assert_cmphex(read_irr(&f, 0x20), ==, 0x04); /* the slave's INT on master IR2 */
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x2A);
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x04);
    g_assert_cmphex(read_isr(&f, 0xA0), ==, 0x04);
    /* a higher master request still nests over the slave (IR1 > IR2) but IR3 does not */
    pulse(&f, 3);
    g_assert_false(pic_has_interrupt(f.m.pic));
    pulse(&f, 1);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x21);
    dh_outb(&f.m, 0x20, 0x20);
    /* slave first, then master EOI */
    dh_outb(&f.m, 0xA0, 0x20);
    g_assert_false(pic_has_interrupt(f.m.pic));
    dh_outb(&f.m, 0x20, 0x20);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x23);
    teardown(&f);
}

/* Special fully nested mode: a higher-priority slave request nests over the slave level in service. */
static void test_special_fully_nested(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    pulse(&f, 10);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x2A);
    pulse(&f, 9);
    g_assert_false(pic_has_interrupt(f.m.pic)); /* fully nested: IR2 in service on the master blocks */
    init_pics(&f, 0x20, 0x28, PIC_ICW4_SFNM);
    pulse(&f, 10);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x2A);
    pulse(&f, 11);
    g_assert_false(pic_has_interrupt(f.m.pic)); /* lower on the slave: still blocked by the slave's ISR */
    pulse(&f, 9);
    g_assert_true(pic_has_interrupt(f.m.pic));
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x29);
    g_assert_cmphex(read_isr(&f, 0xA0), ==, 0x06);
    teardown(&f);
}

static void test_spurious(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    dh_outb(&f.m, 0x4D0, 0x20);
    dh_outb(&f.m, 0x4D1, 0x04); /* IRQ 5 and IRQ 10 level */
    irq(&f, 5, 1);
    g_assert_true(pic_has_interrupt(f.m.pic));
    irq(&f, 5, 0); /* gone before INTA */
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x27);
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x00); /* IR7 spurious sets no ISR bit */
    /* the slave's request vanishes after it reached the master: master IR2 in service, slave answers IR7 */
    irq(&f, 10, 1);
    irq(&f, 10, 0);
    g_assert_true(pic_has_interrupt(f.m.pic)); /* the master latched the edge on IR2 */
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x2F);
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x04);
    g_assert_cmphex(read_isr(&f, 0xA0), ==, 0x00);
    teardown(&f);
}

static void test_hostile_input(void)
{
    struct fixture f;
    setup(&f);
    log_set_level(LOG_LEVEL_ERROR);
    init_pics(&f, 0x20, 0x28, 0);
    irq(&f, 2, 1); /* the cascade input is not a device wire */
    irq(&f, 16, 1);
    irq(&f, 0xFFFFFFFF, 1);
    g_assert_false(pic_has_interrupt(f.m.pic));
    /* a 16-bit access touches both ports of a chip */
    g_assert_true(io_bus_write(&f.m.pio, 0x20, 2, 0x5A0A));
    g_assert_cmphex(dh_inb(&f.m, 0x21), ==, 0x5A);
    /* MCS-80 mode is not emulated but leaves a working chip */
    dh_outb(&f.m, 0x20, 0x11);
    dh_outb(&f.m, 0x21, 0x40);
    dh_outb(&f.m, 0x21, 0x04);
    dh_outb(&f.m, 0x21, 0x00);
    dh_outb(&f.m, 0x21, 0x01);
    pulse(&f, 0);
    g_assert_false(pic_has_interrupt(f.m.pic));
    pulse(&f, 1);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x41);
    log_set_level(LOG_LEVEL_INFO);
    teardown(&f);
}

static void test_reset(void)
{
    struct fixture f;
    setup(&f);
    init_pics(&f, 0x20, 0x28, 0);
    dh_outb(&f.m, 0x4D0, 0x20);
    pulse(&f, 3);
    g_assert_cmpint(pic_acknowledge(f.m.pic), ==, 0x23);
    machine_reset(&f.m);
    g_assert_cmphex(dh_inb(&f.m, 0x4D0), ==, 0x00);
    g_assert_cmphex(read_isr(&f, 0x20), ==, 0x00);
    g_assert_cmphex(dh_inb(&f.m, 0x21), ==, 0x00);
    g_assert_false(pic_has_interrupt(f.m.pic));
    teardown(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pic/init/icw-sequence-sets-vector-base", test_init_vector_base);
    g_test_add_func("/pic/imr/masked-request-waits-in-irr", test_imr_masks);
    g_test_add_func("/pic/priority/higher-nests-lower-waits-for-eoi", test_priority_nesting);
    g_test_add_func("/pic/eoi/specific-clears-named-level", test_specific_eoi);
    g_test_add_func("/pic/eoi/auto-eoi-sets-no-isr", test_auto_eoi);
    g_test_add_func("/pic/priority/rotation-commands", test_rotation);
    g_test_add_func("/pic/priority/rotate-in-auto-eoi", test_rotate_in_aeoi);
    g_test_add_func("/pic/ocw3/poll-acts-as-inta", test_poll_mode);
    g_test_add_func("/pic/ocw3/special-mask-mode", test_special_mask_mode);
    g_test_add_func("/pic/trigger/edge-latched-until-ack", test_edge_latch);
    g_test_add_func("/pic/trigger/elcr-level-follows-line", test_elcr_level);
    g_test_add_func("/pic/cascade/slave-vector-through-ir2", test_cascade);
    g_test_add_func("/pic/cascade/special-fully-nested-mode", test_special_fully_nested);
    g_test_add_func("/pic/spurious/ir7-when-request-vanishes", test_spurious);
    g_test_add_func("/pic/hostile/bad-inputs-and-modes", test_hostile_input);
    g_test_add_func("/pic/reset/power-on-state", test_reset);
    return g_test_run();
}
