/* i8042 keyboard controller with PS/2 keyboard and mouse. */
#include "i8042.h"

#include <errno.h>
#include <string.h>

#include "input.h"
#include "log.h"
#include "scancode.h"

/* Command byte at power-on, as firmware leaves it: keyboard interrupt, system flag, translation, aux off. */
#define I8042_CTR_DEFAULT (I8042_CTR_KBDINT | I8042_CTR_SYS | I8042_CTR_AUXDIS | I8042_CTR_XLATE)
#define I8042_OUTPORT_DEFAULT 0xCF /* reset and A20 high, clock/data lines idle */

static struct log_ratelimit i8042_rl = LOG_RATELIMIT_INIT(5000, 5);

/* Scan code set 2 to set 1, as the controller translates (the key's make code; breaks add 0x80). Codes not
 * listed pass through unchanged. */
static const uint8_t xlate_set2[256] = {
    [0x01] = 0x43, [0x03] = 0x3F, [0x0F] = 0x59, [0x37] = 0x5E, [0x3F] = 0x5F, [0x48] = 0x6C,
    [0x5E] = 0x63, [0x6D] = 0x7E, [0x04] = 0x3D, [0x05] = 0x3B, [0x06] = 0x3C, [0x07] = 0x58, [0x09] = 0x44,
    [0x0A] = 0x42, [0x0B] = 0x40, [0x0C] = 0x3E, [0x0D] = 0x0F, [0x0E] = 0x29, [0x11] = 0x38, [0x12] = 0x2A,
    [0x13] = 0x70, [0x14] = 0x1D, [0x15] = 0x10, [0x16] = 0x02, [0x1A] = 0x2C, [0x1B] = 0x1F, [0x1C] = 0x1E,
    [0x1D] = 0x11, [0x1E] = 0x03, [0x1F] = 0x5B, [0x21] = 0x2E, [0x22] = 0x2D, [0x23] = 0x20, [0x24] = 0x12,
    [0x25] = 0x05, [0x26] = 0x04, [0x27] = 0x5C, [0x29] = 0x39, [0x2A] = 0x2F, [0x2B] = 0x21, [0x2C] = 0x14,
    [0x2D] = 0x13, [0x2E] = 0x06, [0x2F] = 0x5D, [0x31] = 0x31, [0x32] = 0x30, [0x33] = 0x23, [0x34] = 0x22,
    [0x35] = 0x15, [0x36] = 0x07, [0x3A] = 0x32, [0x3B] = 0x24, [0x3C] = 0x16, [0x3D] = 0x08, [0x3E] = 0x09,
    [0x41] = 0x33, [0x42] = 0x25, [0x43] = 0x17, [0x44] = 0x18, [0x45] = 0x0B, [0x46] = 0x0A, [0x49] = 0x34,
    [0x4A] = 0x35, [0x4B] = 0x26, [0x4C] = 0x27, [0x4D] = 0x19, [0x4E] = 0x0C, [0x51] = 0x73, [0x52] = 0x28,
    [0x54] = 0x1A, [0x55] = 0x0D, [0x58] = 0x3A, [0x59] = 0x36, [0x5A] = 0x1C, [0x5B] = 0x1B, [0x5D] = 0x2B,
    [0x61] = 0x56, [0x64] = 0x79, [0x66] = 0x0E, [0x67] = 0x7B, [0x69] = 0x4F, [0x6A] = 0x7D, [0x6B] = 0x4B,
    [0x6C] = 0x47, [0x70] = 0x52, [0x71] = 0x53, [0x72] = 0x50, [0x73] = 0x4C, [0x74] = 0x4D, [0x75] = 0x48,
    [0x76] = 0x01, [0x77] = 0x45, [0x78] = 0x57, [0x79] = 0x4E, [0x7A] = 0x51, [0x7B] = 0x4A, [0x7C] = 0x37,
    [0x7D] = 0x49, [0x7E] = 0x46, [0x83] = 0x41, [0x84] = 0x54,
};

/* ---- queues */

static bool q_push(struct ps2_queue *q, uint8_t b)
{
    if (q->count >= I8042_QUEUE_SIZE)
        return false;
    q->data[(q->head + q->count) % I8042_QUEUE_SIZE] = b;
    q->count++;
    return true;
}

static uint8_t q_pop(struct ps2_queue *q)
{
    uint8_t b = q->data[q->head];
    q->head = (q->head + 1) % I8042_QUEUE_SIZE;
    q->count--;
    return b;
}

static void q_clear(struct ps2_queue *q)
{
    q->head = q->count = 0;
}

static void i8042_drop(struct i8042 *c, const char *what)
{
    c->dropped++;
    log_message_ratelimited(&i8042_rl, LOG_LEVEL_DEBUG, "i8042: %s queue full, byte dropped", what);
}

static void kbd_send(struct i8042 *c, uint8_t b)
{
    c->kbd.last_sent = b;
    if (!q_push(&c->kbd.q, b))
        i8042_drop(c, "keyboard");
}

static void mouse_send(struct i8042 *c, uint8_t b)
{
    c->mouse.last_sent = b;
    if (!q_push(&c->mouse.q, b))
        i8042_drop(c, "mouse");
}

static void ctrl_send(struct i8042 *c, uint8_t b, enum i8042_source src)
{
    if (c->ctrl_count >= I8042_CTRL_QUEUE_SIZE) {
        i8042_drop(c, "controller");
        return;
    }
    unsigned i = (c->ctrl_head + c->ctrl_count) % I8042_CTRL_QUEUE_SIZE;
    c->ctrl_q[i][0] = b;
    c->ctrl_q[i][1] = (uint8_t)src;
    c->ctrl_count++;
}

/* ---- output buffer and interrupts */

static void i8042_update_irqs(struct i8042 *c)
{
    uint8_t ctr = c->ram[0];
    bool irq1 = c->obf && c->out_source == I8042_SRC_KBD && (ctr & I8042_CTR_KBDINT);
    bool irq12 = c->obf && c->out_source == I8042_SRC_AUX && (ctr & I8042_CTR_AUXINT);
    if (irq1 != c->irq1_level) {
        c->irq1_level = irq1;
        irq_set_level(machine_gsi(c->m, I8042_KBD_IRQ), irq1);
    }
    if (irq12 != c->irq12_level) {
        c->irq12_level = irq12;
        irq_set_level(machine_gsi(c->m, I8042_AUX_IRQ), irq12);
    }
}

static void i8042_output(struct i8042 *c, uint8_t b, enum i8042_source src)
{
    c->obf = true;
    c->out_byte = b;
    c->out_source = (uint8_t)src;
}

/* Fills an empty output buffer: controller replies first, then the keyboard, then the mouse (each only while
 * its interface is enabled). Keyboard bytes go through set 2 -> set 1 translation if the command byte asks.
 */
static void i8042_refill(struct i8042 *c)
{
    if (!c->obf && c->ctrl_count) {
        uint8_t *e = c->ctrl_q[c->ctrl_head];
        c->ctrl_head = (c->ctrl_head + 1) % I8042_CTRL_QUEUE_SIZE;
        c->ctrl_count--;
        i8042_output(c, e[0], (enum i8042_source)e[1]);
    }
    while (!c->obf && c->kbd.q.count && !(c->ram[0] & I8042_CTR_KBDDIS)) {
        uint8_t b = q_pop(&c->kbd.q);
        if (c->ram[0] & I8042_CTR_XLATE) {
            if (b == 0xF0) {
                c->xlate_break = true;
                continue;
            }
            if (xlate_set2[b])
                b = xlate_set2[b];
            if (c->xlate_break && b < 0x80)
                b |= 0x80;
            c->xlate_break = false;
        }
        i8042_output(c, b, I8042_SRC_KBD);
    }
    if (!c->obf && c->mouse.q.count && !(c->ram[0] & I8042_CTR_AUXDIS))
        i8042_output(c, q_pop(&c->mouse.q), I8042_SRC_AUX);
    i8042_update_irqs(c);
}

/* ---- keyboard */

static void kbd_defaults(struct i8042_kbd *k)
{
    k->scancode_set = 2;
    k->typematic = 0x2B; /* 10.9 characters/s after 500 ms */
    k->expecting = 0;
}

static void kbd_write(struct i8042 *c, uint8_t v)
{
    struct i8042_kbd *k = &c->kbd;
    uint8_t cmd = k->expecting;
    k->expecting = 0;
    switch (cmd) {
    case 0xED: /* set LEDs */
        if (!(v & 0x80)) {
            k->leds = v & 0x07;
            kbd_send(c, PS2_ACK);
            if (c->m->input) /* PS/2's LED bits are the input interface's */
                input_set_leds(c->m->input, k->leds);
            return;
        }
        break; /* a command instead of data */
    case 0xF3: /* typematic rate/delay */
        if (!(v & 0x80)) {
            k->typematic = v;
            kbd_send(c, PS2_ACK);
            return;
        }
        break;
    case 0xF0: /* scan code set: 0 reads, 1-3 select */
        if (v <= 3) {
            kbd_send(c, PS2_ACK);
            if (v == 0)
                kbd_send(c, k->scancode_set);
            else
                k->scancode_set = v;
            return;
        }
        if (v < 0xED) {
            kbd_send(c, PS2_RESEND);
            return;
        }
        break;
    default:
        break;
    }
    switch (v) {
    case 0xED:
    case 0xF0:
    case 0xF3:
        kbd_send(c, PS2_ACK);
        k->expecting = v;
        break;
    case 0xEE:
        kbd_send(c, PS2_ECHO);
        break;
    case 0xF2: /* identify: MF2 keyboard */
        kbd_send(c, PS2_ACK);
        kbd_send(c, 0xAB);
        kbd_send(c, 0x83);
        break;
    case 0xF4: /* enable scanning; the keyboard's buffer is cleared */
        q_clear(&k->q);
        k->scanning = true;
        kbd_send(c, PS2_ACK);
        break;
    case 0xF5: /* disable scanning and restore defaults */
        q_clear(&k->q);
        kbd_defaults(k);
        k->scanning = false;
        kbd_send(c, PS2_ACK);
        break;
    case 0xF6:
        q_clear(&k->q);
        kbd_defaults(k);
        kbd_send(c, PS2_ACK);
        break;
    case 0xF7:
    case 0xF8:
    case 0xF9:
    case 0xFA:
    case 0xFB:
    case 0xFC:
    case 0xFD:
        kbd_send(c, PS2_ACK); /* set-3 key type commands: accepted, no effect */
        break;
    case 0xFE:
        kbd_send(c, k->last_sent);
        break;
    case 0xFF: /* reset: ACK, then basic assurance test passed */
        q_clear(&k->q);
        kbd_defaults(k);
        k->leds = 0;
        k->scanning = true;
        kbd_send(c, PS2_ACK);
        kbd_send(c, PS2_BAT_OK);
        break;
    default:
        log_message_ratelimited(&i8042_rl, LOG_LEVEL_DEBUG, "i8042: unknown keyboard command 0x%02x", v);
        kbd_send(c, PS2_RESEND);
        break;
    }
}

/* ---- mouse */

static void mouse_defaults(struct i8042_mouse *ms)
{
    ms->reporting = false;
    ms->remote = false;
    ms->scaling_2to1 = false;
    ms->resolution = 2; /* 4 counts/mm */
    ms->rate = 100;
    ms->expecting = 0;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Returns false (and sends nothing) when the packet does not fit the queue. */
static bool mouse_packet(struct i8042 *c, int dx, int dy, int dz)
{
    struct i8042_mouse *ms = &c->mouse;
    unsigned len = ms->id == 3 ? 4 : 3;
    if (I8042_QUEUE_SIZE - ms->q.count < len) {
        i8042_drop(c, "mouse");
        return false;
    }
    int x = clampi(dx, -256, 255), y = clampi(dy, -256, 255);
    uint8_t b0 = 0x08 | (ms->buttons & 0x07);
    if (x < 0)
        b0 |= 0x10;
    if (y < 0)
        b0 |= 0x20;
    if (x != dx)
        b0 |= 0x40;
    if (y != dy)
        b0 |= 0x80;
    mouse_send(c, b0);
    mouse_send(c, (uint8_t)x);
    mouse_send(c, (uint8_t)y);
    if (len == 4)
        mouse_send(c, (uint8_t)clampi(dz, -8, 7));
    return true;
}

static void mouse_write(struct i8042 *c, uint8_t v)
{
    struct i8042_mouse *ms = &c->mouse;
    if (ms->wrap && v != 0xEC && v != 0xFF) {
        mouse_send(c, v); /* wrap mode echoes */
        return;
    }
    uint8_t cmd = ms->expecting;
    ms->expecting = 0;
    if (cmd == 0xF3) { /* sample rate; 200, 100, 80 in a row unlocks the wheel */
        ms->rate = v;
        ms->last_rates[0] = ms->last_rates[1];
        ms->last_rates[1] = ms->last_rates[2];
        ms->last_rates[2] = v;
        if (ms->last_rates[0] == 200 && ms->last_rates[1] == 100 && ms->last_rates[2] == 80)
            ms->id = 3;
        mouse_send(c, PS2_ACK);
        return;
    }
    if (cmd == 0xE8) {
        ms->resolution = v & 3;
        mouse_send(c, PS2_ACK);
        return;
    }
    switch (v) {
    case 0xE6:
        ms->scaling_2to1 = false;
        mouse_send(c, PS2_ACK);
        break;
    case 0xE7:
        ms->scaling_2to1 = true;
        mouse_send(c, PS2_ACK);
        break;
    case 0xE8:
    case 0xF3:
        ms->expecting = v;
        mouse_send(c, PS2_ACK);
        break;
    case 0xE9: { /* status request */
        uint8_t s = (uint8_t)((ms->remote ? 0x40 : 0) | (ms->reporting ? 0x20 : 0) |
                              (ms->scaling_2to1 ? 0x10 : 0) | ((ms->buttons & 1) ? 0x04 : 0) |
                              ((ms->buttons & 4) ? 0x02 : 0) | ((ms->buttons & 2) ? 0x01 : 0));
        mouse_send(c, PS2_ACK);
        mouse_send(c, s);
        mouse_send(c, ms->resolution);
        mouse_send(c, ms->rate);
        break;
    }
    case 0xEA:
        ms->remote = false;
        mouse_send(c, PS2_ACK);
        break;
    case 0xEB: /* read data: motion is not accumulated, so it is always zero */
        mouse_send(c, PS2_ACK);
        mouse_packet(c, 0, 0, 0);
        break;
    case 0xEC:
        ms->wrap = false;
        mouse_send(c, PS2_ACK);
        break;
    case 0xEE:
        ms->wrap = true;
        mouse_send(c, PS2_ACK);
        break;
    case 0xF0:
        ms->remote = true;
        mouse_send(c, PS2_ACK);
        break;
    case 0xF2:
        mouse_send(c, PS2_ACK);
        mouse_send(c, ms->id);
        break;
    case 0xF4:
        ms->reporting = true;
        mouse_send(c, PS2_ACK);
        break;
    case 0xF5:
        ms->reporting = false;
        mouse_send(c, PS2_ACK);
        break;
    case 0xF6:
        mouse_defaults(ms);
        mouse_send(c, PS2_ACK);
        break;
    case 0xFE:
        mouse_send(c, ms->last_sent);
        break;
    case 0xFF:
        q_clear(&ms->q);
        mouse_defaults(ms);
        ms->wrap = false;
        ms->id = 0;
        memset(ms->last_rates, 0, sizeof(ms->last_rates));
        mouse_send(c, PS2_ACK);
        mouse_send(c, PS2_BAT_OK);
        mouse_send(c, 0x00);
        break;
    default:
        log_message_ratelimited(&i8042_rl, LOG_LEVEL_DEBUG, "i8042: unknown mouse command 0x%02x", v);
        mouse_send(c, PS2_RESEND);
        break;
    }
}

/* ---- controller */

static void i8042_write_outport(struct i8042 *c, uint8_t v)
{
    /* A20 is never masked (no real-mode firmware runs); the bit is kept for reads. */
    c->outport = v & (uint8_t) ~(I8042_OUT_KBD_OBF | I8042_OUT_AUX_OBF);
    if (!(v & I8042_OUT_RESET))
        machine_request(c->m, MACHINE_REQUEST_RESET);
}

static uint8_t i8042_read_outport(struct i8042 *c)
{
    uint8_t v = c->outport;
    if (c->obf)
        v |= c->out_source == I8042_SRC_AUX ? I8042_OUT_AUX_OBF : I8042_OUT_KBD_OBF;
    return v;
}

static void i8042_command(struct i8042 *c, uint8_t cmd)
{
    c->expecting = 0;
    if (cmd >= I8042_CMD_READ_RAM && cmd < I8042_CMD_READ_RAM + 0x20) {
        ctrl_send(c, c->ram[cmd & 0x1F], I8042_SRC_KBD);
        return;
    }
    if (cmd >= I8042_CMD_WRITE_RAM && cmd < I8042_CMD_WRITE_RAM + 0x20) {
        c->expecting = cmd;
        return;
    }
    if (cmd >= I8042_CMD_PULSE) {
        if (!(cmd & I8042_OUT_RESET))
            machine_request(c->m, MACHINE_REQUEST_RESET);
        return;
    }
    switch (cmd) {
    case I8042_CMD_AUX_DISABLE:
        c->ram[0] |= I8042_CTR_AUXDIS;
        break;
    case I8042_CMD_AUX_ENABLE:
        c->ram[0] &= (uint8_t)~I8042_CTR_AUXDIS;
        break;
    case I8042_CMD_AUX_TEST:
    case I8042_CMD_KBD_TEST:
        ctrl_send(c, 0x00, I8042_SRC_KBD); /* no clock or data line stuck */
        break;
    case I8042_CMD_SELF_TEST:
        c->ram[0] |= I8042_CTR_SYS;
        ctrl_send(c, I8042_SELF_TEST_OK, I8042_SRC_KBD);
        break;
    case I8042_CMD_KBD_DISABLE:
        c->ram[0] |= I8042_CTR_KBDDIS;
        break;
    case I8042_CMD_KBD_ENABLE:
        c->ram[0] &= (uint8_t)~I8042_CTR_KBDDIS;
        break;
    case I8042_CMD_READ_INPUT:
        ctrl_send(c, 0x80, I8042_SRC_KBD); /* keyboard not inhibited */
        break;
    case I8042_CMD_READ_OUTPUT:
        ctrl_send(c, i8042_read_outport(c), I8042_SRC_KBD);
        break;
    case I8042_CMD_WRITE_OUTPUT:
    case I8042_CMD_KBD_LOOP:
    case I8042_CMD_AUX_LOOP:
    case I8042_CMD_AUX_SEND:
        c->expecting = cmd;
        break;
    case I8042_CMD_READ_TEST:
        ctrl_send(c, 0x00, I8042_SRC_KBD);
        break;
    default:
        log_message_ratelimited(&i8042_rl, LOG_LEVEL_DEBUG, "i8042: unknown controller command 0x%02x", cmd);
        break;
    }
}

static void i8042_write_data(struct i8042 *c, uint8_t v)
{
    uint8_t cmd = c->expecting;
    c->expecting = 0;
    if (cmd >= I8042_CMD_WRITE_RAM && cmd < I8042_CMD_WRITE_RAM + 0x20) {
        c->ram[cmd & 0x1F] = v;
        return;
    }
    switch (cmd) {
    case I8042_CMD_WRITE_OUTPUT:
        i8042_write_outport(c, v);
        break;
    case I8042_CMD_KBD_LOOP:
        ctrl_send(c, v, I8042_SRC_KBD);
        break;
    case I8042_CMD_AUX_LOOP:
        ctrl_send(c, v, I8042_SRC_AUX);
        break;
    case I8042_CMD_AUX_SEND:
        mouse_write(c, v);
        break;
    default:
        kbd_write(c, v);
        break;
    }
}

static uint8_t i8042_read_status(struct i8042 *c)
{
    uint8_t s = I8042_STR_KEYLOCK;
    if (c->obf)
        s |= I8042_STR_OBF | (c->out_source == I8042_SRC_AUX ? I8042_STR_AUXDATA : 0);
    if (c->ram[0] & I8042_CTR_SYS)
        s |= I8042_STR_SYS;
    if (c->last_write_cmd)
        s |= I8042_STR_CMD;
    return s;
}

static uint8_t i8042_read_data(struct i8042 *c)
{
    /* With nothing new, the buffer still holds the last byte. */
    c->obf = false;
    uint8_t b = c->out_byte;
    /* The line drops before the next byte is loaded, so edge-triggered inputs see every byte. */
    i8042_update_irqs(c);
    i8042_refill(c);
    return b;
}

static uint64_t i8042_data_read(void *opaque, uint64_t offset, unsigned size)
{
    return i8042_read_data(opaque);
}

static void i8042_data_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct i8042 *c = opaque;
    c->last_write_cmd = false;
    i8042_write_data(c, (uint8_t)value);
    i8042_refill(c);
}

static uint64_t i8042_cmd_read(void *opaque, uint64_t offset, unsigned size)
{
    return i8042_read_status(opaque);
}

static void i8042_cmd_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct i8042 *c = opaque;
    c->last_write_cmd = true;
    i8042_command(c, (uint8_t)value);
    i8042_refill(c);
}

static const struct io_ops i8042_data_ops = {.read = i8042_data_read, .write = i8042_data_write};
static const struct io_ops i8042_cmd_ops = {.read = i8042_cmd_read, .write = i8042_cmd_write};

void i8042_keyboard_push(struct i8042 *c, const uint8_t *scancodes, size_t n)
{
    machine_lock(c->m);
    if (c->kbd.scanning) {
        for (size_t i = 0; i < n; i++)
            kbd_send(c, scancodes[i]);
        i8042_refill(c);
    }
    machine_unlock(c->m);
}

void i8042_mouse_push(struct i8042 *c, int dx, int dy, int dz, unsigned buttons)
{
    machine_lock(c->m);
    c->mouse.buttons = (uint8_t)(buttons & 0x07);
    if (c->mouse.reporting && !c->mouse.remote && !c->mouse.wrap) {
        mouse_packet(c, dx, dy, dz);
        i8042_refill(c);
    }
    machine_unlock(c->m);
}

/* ---- input interface handlers */

static void kbd_input_event(void *opaque, const struct input_event *ev)
{
    struct i8042 *c = opaque;
    if (ev->type != INPUT_EVENT_KEY)
        return;
    uint8_t bytes[SCANCODE_MAX_BYTES];
    size_t n = c->kbd.scancode_set == 1 ? scancode_encode_set1(ev->key.code, ev->key.down, bytes)
                                        : scancode_encode_set2(ev->key.code, ev->key.down, bytes);
    if (n)
        i8042_keyboard_push(c, bytes, n);
}

static bool kbd_input_active(void *opaque)
{
    struct i8042 *c = opaque;
    return c->kbd.scanning && !(c->ram[0] & I8042_CTR_KBDDIS);
}

static const struct input_handler_ops kbd_input_ops = {kbd_input_event, NULL, kbd_input_active};

static void mouse_input_event(void *opaque, const struct input_event *ev)
{
    struct i8042 *c = opaque;
    static const uint8_t button_bits[INPUT_BUTTON__MAX] = {
        [INPUT_BUTTON_LEFT] = 0x01, [INPUT_BUTTON_RIGHT] = 0x02, [INPUT_BUTTON_MIDDLE] = 0x04};
    switch (ev->type) {
    case INPUT_EVENT_REL:
        /* Bounded so that a report never needs more than a handful of packets. */
        if (ev->move.axis == INPUT_AXIS_X)
            c->host_dx = clampi(c->host_dx + clampi(ev->move.value, -4096, 4096), -4096, 4096);
        else
            c->host_dy = clampi(c->host_dy + clampi(ev->move.value, -4096, 4096), -4096, 4096);
        break;
    case INPUT_EVENT_BTN:
        if (ev->btn.button == INPUT_BUTTON_WHEEL_UP || ev->btn.button == INPUT_BUTTON_WHEEL_DOWN) {
            if (ev->btn.down)
                c->host_dz = clampi(c->host_dz + (ev->btn.button == INPUT_BUTTON_WHEEL_DOWN ? 1 : -1), -64, 64);
        } else if (ev->btn.down) {
            c->host_buttons |= button_bits[ev->btn.button];
        } else {
            c->host_buttons &= ~(unsigned)button_bits[ev->btn.button];
        }
        break;
    default:
        break;
    }
}

/* One report: packets of at most 255 counts per axis (PS/2 y grows upwards) until the motion is sent. */
static void mouse_input_sync(void *opaque)
{
    struct i8042 *c = opaque;
    int dx = c->host_dx, dy = -c->host_dy, dz = c->host_dz;
    c->host_dx = c->host_dy = c->host_dz = 0;
    if (!dx && !dy && !dz && c->host_buttons == c->mouse.buttons)
        return; /* e.g. only a wheel button's release */
    do {
        int px = clampi(dx, -255, 255), py = clampi(dy, -255, 255), pz = clampi(dz, -8, 7);
        i8042_mouse_push(c, px, py, c->mouse.id == 3 ? pz : 0, c->host_buttons);
        dx -= px;
        dy -= py;
        dz = c->mouse.id == 3 ? dz - pz : 0;
    } while (dx || dy || dz);
}

static bool mouse_input_active(void *opaque)
{
    struct i8042 *c = opaque;
    return c->mouse.reporting;
}

static const struct input_handler_ops mouse_input_ops = {mouse_input_event, mouse_input_sync, mouse_input_active};

static void i8042_reset(struct machine *m)
{
    struct i8042 *c = m->i8042;
    memset(c->ram, 0, sizeof(c->ram));
    c->ram[0] = I8042_CTR_DEFAULT;
    c->outport = I8042_OUTPORT_DEFAULT;
    c->last_write_cmd = false;
    c->expecting = 0;
    c->obf = false;
    c->out_byte = 0;
    c->ctrl_head = c->ctrl_count = 0;
    c->xlate_break = false;
    memset(&c->kbd, 0, sizeof(c->kbd));
    kbd_defaults(&c->kbd);
    c->kbd.scanning = true;
    memset(&c->mouse, 0, sizeof(c->mouse));
    mouse_defaults(&c->mouse);
    c->host_dx = c->host_dy = c->host_dz = 0;
    c->host_buttons = 0;
    i8042_update_irqs(c);
}

static void i8042_destroy(struct machine *m)
{
    struct i8042 *c = m->i8042;
    if (!c)
        return;
    if (m->input) {
        input_handler_unregister(m->input, c->kbd_handler);
        input_handler_unregister(m->input, c->mouse_handler);
    }
    io_bus_unregister(&m->pio, I8042_DATA_PORT, c);
    io_bus_unregister(&m->pio, I8042_CMD_PORT, c);
    g_free(c);
    m->i8042 = NULL;
}

static int i8042_create(struct machine *m, char **error)
{
    struct i8042 *c = g_new0(struct i8042, 1);
    c->m = m;
    m->i8042 = c;
    int r = io_bus_register(&m->pio, I8042_DATA_PORT, 1, &i8042_data_ops, c, "i8042-data", NULL);
    if (r == 0)
        r = io_bus_register(&m->pio, I8042_CMD_PORT, 1, &i8042_cmd_ops, c, "i8042-cmd", NULL);
    if (r < 0) {
        *error = g_strdup_printf("ports 0x60/0x64: %s", g_strerror(-r));
        i8042_destroy(m);
        return r;
    }
    i8042_reset(m);
    if (m->input) {
        c->kbd_handler = input_handler_register(m->input, "deskvm PS/2 Keyboard", INPUT_CAP_KEYBOARD,
                                                INPUT_PRIORITY_PS2, &kbd_input_ops, c);
        c->mouse_handler = input_handler_register(m->input, "deskvm PS/2 Mouse", INPUT_CAP_MOUSE,
                                                  INPUT_PRIORITY_PS2, &mouse_input_ops, c);
    }
    return 0;
}

const struct machine_device i8042_device = {"i8042", i8042_create, i8042_reset, i8042_destroy};
