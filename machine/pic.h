/* The PC's pair of Intel 8259A programmable interrupt controllers (master at ports 0x20-0x21, slave at
 * 0xA0-0xA1, cascaded on master IR2) and the ELCR edge/level registers at 0x4D0-0x4D1. */
#ifndef DESKVM_PIC_H
#define DESKVM_PIC_H

#include <stdbool.h>
#include <stdint.h>

#include "machine.h"

#define PIC_MASTER_BASE 0x20
#define PIC_SLAVE_BASE 0xA0
#define PIC_ELCR_BASE 0x4D0
#define PIC_CASCADE_IRQ 2
#define PIC_IRQ_COUNT 16

/* ICW1 (written to A0=0 with D4 set) */
#define PIC_ICW1_IC4 0x01
#define PIC_ICW1_SNGL 0x02
#define PIC_ICW1_LTIM 0x08
#define PIC_ICW1_INIT 0x10
/* ICW4 */
#define PIC_ICW4_UPM 0x01
#define PIC_ICW4_AEOI 0x02
#define PIC_ICW4_SFNM 0x10
/* OCW3 (A0=0, D4=0, D3=1) */
#define PIC_OCW3_RIS 0x01
#define PIC_OCW3_RR 0x02
#define PIC_OCW3_P 0x04
#define PIC_OCW3_SEL 0x08
#define PIC_OCW3_SMM 0x20
#define PIC_OCW3_ESMM 0x40

/* One 8259A. Plain data, so it can be saved and restored as is. */
struct pic_chip {
    uint8_t irr;         /* interrupt request register */
    uint8_t isr;         /* in-service register */
    uint8_t imr;         /* interrupt mask register (OCW1) */
    uint8_t pins;        /* current IR input levels: edges are detected against these */
    uint8_t elcr;        /* 1 = level-sensitive input (ELCR) */
    uint8_t elcr_mask;   /* ELCR bits that may be set */
    uint8_t vector_base; /* ICW2 T7-T3 */
    uint8_t icw3;        /* cascade configuration, stored only */
    uint8_t init_step;   /* 0: operational; 2, 3 or 4: the next A0=1 write is that ICW */
    uint8_t highest;     /* IR level with the highest priority (rotation moves it) */
    bool icw4_expected;  /* ICW1 IC4 */
    bool single;         /* ICW1 SNGL */
    bool ltim;           /* ICW1 LTIM: all inputs level-sensitive */
    bool auto_eoi;       /* ICW4 AEOI */
    bool rotate_on_aeoi; /* OCW2 rotate in automatic EOI mode */
    bool sfnm;           /* ICW4 special fully nested mode */
    bool special_mask;   /* OCW3 SMM */
    bool poll;           /* OCW3 P: the next A0=0 read is a poll */
    bool read_isr;       /* OCW3 RR/RIS: A0=0 reads return ISR instead of IRR */
};

struct pic {
    struct machine *m;
    struct pic_chip chip[2]; /* master, slave */
    bool int_out;            /* the master's INT output */
    /* Called whenever INT changes (to wake a halted CPU, or to drive LINT0 of the local APICs). */
    void (*int_changed)(void *opaque, bool level);
    void *int_opaque;
};

extern const struct machine_device pic_device; /* stores into m->pic */

/* An input wire: irq 0-7 master IR0-7, 8-15 slave IR0-7 (IR2 of the master is the cascade and ignores this).
 * Has the irq_line handler signature. */
void pic_set_irq(void *pic, unsigned irq, int level);
/* The INT output: an unmasked request outranks everything in service. */
bool pic_has_interrupt(struct pic *p);
/* The INTA cycle: returns the vector (ICW2 base + level, from the slave when the master picks IR2) and moves
 * the request into service. With no request left, returns the spurious IR7 vector of the chip concerned. */
int pic_acknowledge(struct pic *p);
void pic_set_int_handler(struct pic *p, void (*fn)(void *opaque, bool level), void *opaque);
void pic_reset(struct pic *p);

#endif
