/* GDB remote protocol framing and hex helpers. */
#include "gdb_packet.h"

#include <string.h>

enum { ST_IDLE, ST_DATA, ST_SUM_HI, ST_SUM_LO };

static int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void gdb_parser_init(struct gdb_parser *p)
{
    p->state = ST_IDLE;
    p->escape = false;
    p->overflow = false;
    p->len = 0;
    p->buf[0] = 0;
}

static void start_packet(struct gdb_parser *p)
{
    p->state = ST_DATA;
    p->escape = false;
    p->overflow = false;
    p->sum = 0;
    p->len = 0;
}

void gdb_parser_feed(struct gdb_parser *p, const void *data, size_t n, gdb_input_fn fn, void *opaque)
{
    const uint8_t *b = data;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
        switch (p->state) {
        case ST_IDLE:
            if (c == '$')
                start_packet(p);
            else if (c == '+' && !fn(opaque, GDB_INPUT_ACK, NULL, 0))
                return;
            else if (c == '-' && !fn(opaque, GDB_INPUT_NAK, NULL, 0))
                return;
            else if (c == 0x03 && !fn(opaque, GDB_INPUT_INTERRUPT, NULL, 0))
                return;
            break;
        case ST_DATA:
            if (c == '#' && !p->escape) {
                p->state = ST_SUM_HI;
                break;
            }
            if (c == '$' && !p->escape) {
                /* A new start inside a packet: the peer gave up on the old one. */
                start_packet(p);
                break;
            }
            p->sum = (uint8_t)(p->sum + c);
            if (p->escape) {
                c ^= 0x20;
                p->escape = false;
            } else if (c == '}') {
                p->escape = true;
                break;
            }
            if (p->len < GDB_PACKET_MAX)
                p->buf[p->len++] = (char)c;
            else
                p->overflow = true;
            break;
        case ST_SUM_HI:
        case ST_SUM_LO: {
            int v = hex_value(c);
            if (v < 0) {
                /* A broken checksum; a '$' there starts the next packet. */
                p->state = ST_IDLE;
                p->len = 0;
                if (!fn(opaque, GDB_INPUT_BAD_CHECKSUM, NULL, 0))
                    return;
                if (c == '$')
                    start_packet(p);
                break;
            }
            if (p->state == ST_SUM_HI) {
                p->got_sum = (uint8_t)(v << 4);
                p->state = ST_SUM_LO;
                break;
            }
            p->state = ST_IDLE;
            p->buf[p->len] = 0;
            enum gdb_input what = GDB_INPUT_PACKET;
            if ((uint8_t)(p->got_sum | v) != p->sum)
                what = GDB_INPUT_BAD_CHECKSUM;
            else if (p->overflow)
                what = GDB_INPUT_TOO_LONG;
            bool ok = what == GDB_INPUT_PACKET;
            bool go = fn(opaque, what, ok ? p->buf : NULL, ok ? p->len : 0);
            p->len = 0;
            if (!go)
                return;
            break;
        }
        }
    }
}

void gdb_packet_put(GByteArray *out, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *d = data;
    uint8_t sum = 0;
    g_byte_array_append(out, (const guint8 *)"$", 1);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = d[i];
        if (c == '$' || c == '#' || c == '}' || c == '*') {
            uint8_t esc[2] = {'}', (uint8_t)(c ^ 0x20)};
            g_byte_array_append(out, esc, 2);
            sum = (uint8_t)(sum + esc[0] + esc[1]);
        } else {
            g_byte_array_append(out, &c, 1);
            sum = (uint8_t)(sum + c);
        }
    }
    uint8_t tail[3] = {'#', (uint8_t)hex[sum >> 4], (uint8_t)hex[sum & 15]};
    g_byte_array_append(out, tail, 3);
}

void gdb_hex_append(GString *out, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *d = data;
    for (size_t i = 0; i < len; i++) {
        g_string_append_c(out, hex[d[i] >> 4]);
        g_string_append_c(out, hex[d[i] & 15]);
    }
}

bool gdb_hex_decode(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value((unsigned char)s[2 * i]), lo = hex_value((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool gdb_hex_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    unsigned digits = 0;
    while (s < end && hex_value((unsigned char)*s) >= 0) {
        if (++digits > 16)
            return false;
        v = v << 4 | (uint64_t)hex_value((unsigned char)*s);
        s++;
    }
    if (!digits)
        return false;
    *out = v;
    *p = s;
    return true;
}

bool gdb_addr_len(const char **p, const char *end, uint64_t *addr, uint64_t *len)
{
    const char *s = *p;
    if (!gdb_hex_u64(&s, end, addr) || s >= end || *s != ',')
        return false;
    s++;
    if (!gdb_hex_u64(&s, end, len))
        return false;
    *p = s;
    return true;
}
