/* The local APIC timer: one-shot and periodic counting from the initial count through the divider on the
 * virtual clock, and the TSC-deadline mode. Part of the lapic module; the register handlers in lapic.c call
 * these. */
#ifndef DESKVM_LAPIC_TIMER_H
#define DESKVM_LAPIC_TIMER_H

#include <stdint.h>

#include "lapic.h"

void lapic_timer_init(struct lapic *l);
/* Stops the timer and clears the count, divider and deadline. */
void lapic_timer_reset(struct lapic *l);
unsigned lapic_timer_mode(const struct lapic *l);
/* The divide configuration register's divisor: 1, 2, 4, ... 128. */
unsigned lapic_timer_divisor(uint32_t dcr);
uint32_t lapic_timer_current_count(struct lapic *l);
void lapic_timer_write_initial(struct lapic *l, uint32_t count);
void lapic_timer_write_dcr(struct lapic *l, uint32_t dcr);
/* Called after the LVT timer entry changed from old: a mode change disarms the timer. */
void lapic_timer_lvt_changed(struct lapic *l, uint32_t old);

/* Provided by lapic.c: raises a local interrupt through the given LVT entry (unless masked). */
void lapic_raise_lvt(struct lapic *l, enum lapic_lvt which);

#endif
