/* Intel 8254 PIT at ports 0x40-0x43: three counters at 1.193182 MHz of virtual time. Counter 0's OUT drives
 * ISA IRQ 0; counter 2's gate and OUT are wired to port 0x61. */
#ifndef DESKVM_PIT_H
#define DESKVM_PIT_H

#include <stdbool.h>
#include <stdint.h>

#include "machine.h"

#define PIT_FREQ_HZ 1193182
#define PIT_BASE_PORT 0x40
#define PIT_CHANNELS 3

/* How far (in periods) counter 0's interrupt may fall behind before missed periods are dropped instead of
 * delivered back to back. */
#define PIT_MAX_CATCHUP 4

struct pit_channel {
    /* programming (from the control word) */
    uint8_t mode; /* 0-5 */
    uint8_t rw;   /* access: 1 LSB, 2 MSB, 3 LSB then MSB */
    bool bcd;
    uint32_t reload; /* N: 1..65536 (binary) or 1..10000 (BCD); a written 0 means the maximum */
    bool loaded;     /* a complete count was written since the control word */
    bool null_count; /* count written but not yet transferred to the counting element */
    bool gate;
    bool triggered; /* modes 1 and 5: a gate rising edge started the count */

    /* counting: d = ticks_base + ticks since run_start_ns while running */
    bool running;
    uint64_t ticks_base;
    int64_t run_start_ns;

    /* byte-access state machines */
    bool write_msb_next;
    uint8_t write_lsb;
    bool read_msb_next;
    uint8_t latch_bytes; /* bytes of a latched count still to read (0: not latched) */
    uint16_t latched_count;
    bool latch_msb_next;
    bool status_latched;
    uint8_t latched_status;
};

struct pit {
    struct machine *m;
    struct pit_channel ch[PIT_CHANNELS];
    struct vtimer timer;     /* counter 0's next OUT rising edge */
    uint64_t next_edge_tick; /* d value of that edge */
    uint64_t lost_edges;     /* periods dropped after falling behind */
};

extern const struct machine_device pit_device;

/* Gate input of counter ch (0-2); only counter 2's is wired (port 0x61), 0 and 1 are tied high on a PC. */
void pit_set_gate(struct pit *pit, unsigned ch, bool level);
bool pit_get_gate(struct pit *pit, unsigned ch);
/* OUT of counter ch now. */
bool pit_get_out(struct pit *pit, unsigned ch);

#endif
