/* Intel 8042 keyboard controller (ports 0x60/0x64) with a PS/2 keyboard (IRQ 1) and mouse (IRQ 12), the
 * output port's reset and A20 lines, and the input API front ends use to type and move. */
#ifndef DESKVM_I8042_H
#define DESKVM_I8042_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "machine.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64 /* status on read */
#define I8042_KBD_IRQ 1
#define I8042_AUX_IRQ 12

/* Status register */
#define I8042_STR_OBF 0x01
#define I8042_STR_IBF 0x02
#define I8042_STR_SYS 0x04
#define I8042_STR_CMD 0x08     /* last write went to the command port */
#define I8042_STR_KEYLOCK 0x10 /* 1: keyboard not inhibited */
#define I8042_STR_AUXDATA 0x20
#define I8042_STR_TIMEOUT 0x40
#define I8042_STR_PARITY 0x80

/* Command byte (controller RAM byte 0) */
#define I8042_CTR_KBDINT 0x01
#define I8042_CTR_AUXINT 0x02
#define I8042_CTR_SYS 0x04
#define I8042_CTR_IGNKEYLOCK 0x08
#define I8042_CTR_KBDDIS 0x10
#define I8042_CTR_AUXDIS 0x20
#define I8042_CTR_XLATE 0x40

/* Output port */
#define I8042_OUT_RESET 0x01 /* active low: 0 resets the CPU */
#define I8042_OUT_A20 0x02
#define I8042_OUT_KBD_OBF 0x10
#define I8042_OUT_AUX_OBF 0x20

/* Controller commands */
#define I8042_CMD_READ_RAM 0x20  /* 0x20-0x3F */
#define I8042_CMD_WRITE_RAM 0x60 /* 0x60-0x7F */
#define I8042_CMD_AUX_DISABLE 0xA7
#define I8042_CMD_AUX_ENABLE 0xA8
#define I8042_CMD_AUX_TEST 0xA9
#define I8042_CMD_SELF_TEST 0xAA
#define I8042_CMD_KBD_TEST 0xAB
#define I8042_CMD_KBD_DISABLE 0xAD
#define I8042_CMD_KBD_ENABLE 0xAE
#define I8042_CMD_READ_INPUT 0xC0
#define I8042_CMD_READ_OUTPUT 0xD0
#define I8042_CMD_WRITE_OUTPUT 0xD1
#define I8042_CMD_KBD_LOOP 0xD2
#define I8042_CMD_AUX_LOOP 0xD3
#define I8042_CMD_AUX_SEND 0xD4
#define I8042_CMD_READ_TEST 0xE0
#define I8042_CMD_PULSE 0xF0 /* 0xF0-0xFF: pulse output port bits 0-3 whose command bits are 0 */

#define I8042_SELF_TEST_OK 0x55

/* PS/2 device bytes */
#define PS2_ACK 0xFA
#define PS2_RESEND 0xFE
#define PS2_BAT_OK 0xAA
#define PS2_ECHO 0xEE

#define I8042_QUEUE_SIZE 64
#define I8042_CTRL_QUEUE_SIZE 8

struct ps2_queue {
    uint8_t data[I8042_QUEUE_SIZE];
    unsigned head, count;
};

struct i8042_kbd {
    bool scanning;
    uint8_t scancode_set;
    uint8_t leds;
    uint8_t typematic;
    uint8_t expecting; /* command whose data byte comes next, or 0 */
    uint8_t last_sent;
    struct ps2_queue q;
};

struct i8042_mouse {
    bool reporting;
    bool remote;
    bool wrap;
    bool scaling_2to1;
    uint8_t resolution;
    uint8_t rate;
    uint8_t id; /* 0: standard, 3: IntelliMouse (wheel) */
    uint8_t last_rates[3];
    uint8_t buttons;
    uint8_t expecting;
    uint8_t last_sent;
    struct ps2_queue q;
};

enum i8042_source { I8042_SRC_KBD, I8042_SRC_AUX };

struct i8042 {
    struct machine *m;
    uint8_t ram[32]; /* byte 0 is the command byte */
    uint8_t outport;
    bool last_write_cmd;
    uint8_t expecting; /* controller command whose data byte comes next, or 0 */

    bool obf;
    uint8_t out_byte;
    uint8_t out_source; /* enum i8042_source */
    /* Controller replies, ahead of device data: byte and source pairs. */
    uint8_t ctrl_q[I8042_CTRL_QUEUE_SIZE][2];
    unsigned ctrl_head, ctrl_count;
    bool xlate_break; /* translation saw 0xF0 */

    struct i8042_kbd kbd;
    struct i8042_mouse mouse;
    bool irq1_level, irq12_level;
    uint64_t dropped;

    /* The input interface's keyboard and mouse (evdev keys become set 2, or set 1 if the guest chose it);
     * motion and wheel steps add up until the end of a report, then go out as packets. */
    struct input_handler *kbd_handler, *mouse_handler;
    int host_dx, host_dy, host_dz; /* pixels, y down; wheel steps, down positive */
    unsigned host_buttons;         /* bit 0 left, 1 right, 2 middle */
};

extern const struct machine_device i8042_device;

/* Key events in scan code set 2 (make codes, 0xF0 break prefix, 0xE0/0xE1 prefixes), as a keyboard sends
 * them; the controller translates them to set 1 when the command byte asks. Dropped while the keyboard is not
 * scanning or its queue is full. Takes the machine lock. */
void i8042_keyboard_push(struct i8042 *i8042, const uint8_t *scancodes, size_t n);
/* Relative motion in PS/2 terms (dy > 0 is up; dz > 0 scrolls down, sent only by an IntelliMouse) and buttons
 * (bit 0 left, 1 right, 2 middle). One packet per call while reporting is enabled; takes the machine lock. */
void i8042_mouse_push(struct i8042 *i8042, int dx, int dy, int dz, unsigned buttons);

#endif
