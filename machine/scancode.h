/* PC keyboard scan codes and Linux evdev key codes: set 1 (what SPICE and the QEMU VNC extended key event
 * send, and what the i8042 delivers with translation on), set 2 (what a PS/2 keyboard sends), QEMU key
 * numbers (set 1 with 0x80 for the 0xE0 prefix) and the QMP qcode names, all keyed by evdev code. */
#ifndef DESKVM_SCANCODE_H
#define DESKVM_SCANCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Linux evdev key codes used by name in deskvm (input-event-codes.h). */
#define KEY_RESERVED 0
#define KEY_ESC 1
#define KEY_1 2
#define KEY_2 3
#define KEY_0 11
#define KEY_Q 16
#define KEY_W 17
#define KEY_Y 21
#define KEY_ENTER 28
#define KEY_LEFTCTRL 29
#define KEY_A 30
#define KEY_LEFTSHIFT 42
#define KEY_Z 44
#define KEY_RIGHTSHIFT 54
#define KEY_LEFTALT 56
#define KEY_SPACE 57
#define KEY_CAPSLOCK 58
#define KEY_NUMLOCK 69
#define KEY_SCROLLLOCK 70
#define KEY_102ND 86
#define KEY_KPENTER 96
#define KEY_RIGHTCTRL 97
#define KEY_SYSRQ 99
#define KEY_RIGHTALT 100
#define KEY_UP 103
#define KEY_PAUSE 119
#define KEY_LEFTMETA 125
#define KEY_COMPOSE 127
#define KEY_MAX 0x2ff
#define KEY_CNT (KEY_MAX + 1)

/* A scan code of set 1 or set 2 in one number: the byte, with 0xE000 added for the 0xE0 prefix. */
#define SCANCODE_E0 0xE000u

/* The set-1 code of an evdev key (0 if the key has none). Pause has no single code: it is the sequence
 * E1 1D 45 E1 9D C5, which scancode_encode_set1 produces. */
unsigned scancode_evdev_to_set1(unsigned evdev);
/* The evdev key of a set-1 code (byte | SCANCODE_E0 for prefixed ones), 0 if unknown. */
unsigned scancode_set1_to_evdev(unsigned code);
/* The set-2 code of an evdev key (0 if none). */
unsigned scancode_evdev_to_set2(unsigned evdev);
unsigned scancode_set2_to_evdev(unsigned code);

/* QEMU key numbers (QMP send-key {"type": "number"}): set 1, with 0x80 set instead of the 0xE0 prefix. */
unsigned scancode_qnum_to_evdev(unsigned qnum);
unsigned scancode_evdev_to_qnum(unsigned evdev);

/* QMP QKeyCode names ("a", "ret", "shift_r", ...). Returns the evdev key or 0 for an unknown name. */
unsigned scancode_qcode_to_evdev(const char *name);
/* The first QKeyCode name of an evdev key, NULL if none. */
const char *scancode_evdev_to_qcode(unsigned evdev);

/* The bytes a keyboard sends for a key press or release: up to 8 (Pause). Returns the count, 0 for a key the
 * set cannot express (and for the release of Pause, which has none). */
#define SCANCODE_MAX_BYTES 8
size_t scancode_encode_set1(unsigned evdev, bool down, uint8_t out[SCANCODE_MAX_BYTES]);
size_t scancode_encode_set2(unsigned evdev, bool down, uint8_t out[SCANCODE_MAX_BYTES]);

/* Turns a stream of set-1 bytes (SPICE delivers them one at a time) back into key events. */
struct scancode_decoder {
    uint8_t prefix;    /* 0, 0xE0 or 0xE1 */
    uint8_t pause_len; /* bytes of the Pause sequence seen so far */
};

/* Feeds one byte; returns true with *evdev and *down when it completes a key event. Unknown codes complete
 * with *evdev = 0. */
bool scancode_decoder_feed(struct scancode_decoder *d, uint8_t byte, unsigned *evdev, bool *down);

/* Every evdev key the tables know, in table order (for capability bitmaps and tests). */
size_t scancode_known_keys(const uint16_t **keys);

#endif
