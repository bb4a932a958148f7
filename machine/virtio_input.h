/* virtio-input (virtio 1.1, 5.8; device type 18) over the PCI transport: a keyboard and an absolute tablet
 * that take events from the input interface and hand them to the guest as evdev events on the event queue;
 * LED changes come back on the status queue. */
#ifndef DESKVM_VIRTIO_INPUT_H
#define DESKVM_VIRTIO_INPUT_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "machine.h"

/* PCI slots on the PC board (virtio-blk uses 8 and up, pci-testdev 31). */
#define VIRTIO_KEYBOARD_SLOT 4
#define VIRTIO_TABLET_SLOT 5

/* Configuration space (5.8.4): select, subsel, size, 5 reserved bytes, then a 128-byte union. */
#define VIRTIO_INPUT_CFG_SELECT 0
#define VIRTIO_INPUT_CFG_SUBSEL 1
#define VIRTIO_INPUT_CFG_SIZE 2
#define VIRTIO_INPUT_CFG_UNION 8
#define VIRTIO_INPUT_CFG_UNION_SIZE 128
#define VIRTIO_INPUT_CONFIG_SIZE (VIRTIO_INPUT_CFG_UNION + VIRTIO_INPUT_CFG_UNION_SIZE)

#define VIRTIO_INPUT_CFG_UNSET 0x00
#define VIRTIO_INPUT_CFG_ID_NAME 0x01
#define VIRTIO_INPUT_CFG_ID_SERIAL 0x02
#define VIRTIO_INPUT_CFG_ID_DEVIDS 0x03
#define VIRTIO_INPUT_CFG_PROP_BITS 0x10
#define VIRTIO_INPUT_CFG_EV_BITS 0x11
#define VIRTIO_INPUT_CFG_ABS_INFO 0x12

/* Queues. */
#define VIRTIO_INPUT_EVENTQ 0
#define VIRTIO_INPUT_STATUSQ 1
#define VIRTIO_INPUT_QUEUE_SIZE 64
/* struct virtio_input_event: le16 type, le16 code, le32 value. */
#define VIRTIO_INPUT_EVENT_SIZE 8

/* evdev event types and codes (Linux input-event-codes.h). */
#define EV_SYN 0x00
#define EV_KEY 0x01
#define EV_REL 0x02
#define EV_ABS 0x03
#define EV_MSC 0x04
#define EV_LED 0x11
#define EV_REP 0x14
#define SYN_REPORT 0
#define REL_HWHEEL 0x06
#define REL_WHEEL 0x08
#define ABS_X 0x00
#define ABS_Y 0x01
#define BTN_LEFT 0x110
#define BTN_RIGHT 0x111
#define BTN_MIDDLE 0x112
#define BTN_SIDE 0x113
#define BTN_EXTRA 0x114
#define LED_NUML 0x00
#define LED_CAPSL 0x01
#define LED_SCROLLL 0x02
#define BUS_VIRTUAL 0x06

/* ID_DEVIDS: bus, vendor (QEMU's 0x0627, which guests already know), product per kind, version. */
#define VIRTIO_INPUT_VENDOR 0x0627
#define VIRTIO_INPUT_PRODUCT_KEYBOARD 0x0001
#define VIRTIO_INPUT_PRODUCT_TABLET 0x0003
#define VIRTIO_INPUT_VERSION 0x0001

/* Events kept for a guest that has no buffers posted; the oldest whole report goes first when full. */
#define VIRTIO_INPUT_PENDING_MAX 256

enum virtio_input_kind { VIRTIO_INPUT_KEYBOARD, VIRTIO_INPUT_TABLET };

struct virtio_input_event {
    uint16_t type, code;
    uint32_t value;
};

struct virtio_input {
    struct virtio_pci *vp;
    struct machine *m;
    struct input_handler *handler;
    enum virtio_input_kind kind;
    const char *name;
    char serial[32];
    uint8_t select, subsel;
    unsigned leds; /* INPUT_LED_* from the status queue */
    struct virtio_input_event pending[VIRTIO_INPUT_PENDING_MAX];
    unsigned p_head, p_count;
    unsigned unsynced; /* events of the report being built, not yet ended by SYN_REPORT */
    uint64_t dropped_events;
    struct log_ratelimit rl;
};

extern const struct machine_device virtio_keyboard_device;
extern const struct machine_device virtio_tablet_device;

/* One device at slot (function 0), registered with m->input. NULL with *error on failure. */
struct virtio_input *virtio_input_new(struct machine *m, unsigned slot, enum virtio_input_kind kind,
                                      char **error);
void virtio_input_free(struct virtio_input *d);
/* The device at a slot, NULL if there is none (or something else). */
struct virtio_input *virtio_input_at(struct machine *m, unsigned slot);

#endif
