/* The GDB remote serial protocol's byte layer, without I/O: "$data#cs" framing with checksums and "}"
 * escapes,
 * +/- acknowledgements, the 0x03 interrupt byte, and the hex and "addr,len" syntax inside packets. */
#ifndef DESKVM_GDB_PACKET_H
#define DESKVM_GDB_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

/* The longest packet accepted (payload bytes after unescaping); the stub advertises it as PacketSize. */
#define GDB_PACKET_MAX 0x4000

enum gdb_input {
    GDB_INPUT_PACKET,       /* a packet with a good checksum: data/len, NUL-terminated */
    GDB_INPUT_BAD_CHECKSUM, /* a packet that must be NAKed ('-') */
    GDB_INPUT_TOO_LONG,     /* a packet longer than GDB_PACKET_MAX: its data is dropped */
    GDB_INPUT_ACK,          /* '+' */
    GDB_INPUT_NAK,          /* '-': the peer wants the last packet again */
    GDB_INPUT_INTERRUPT,    /* 0x03 outside a packet */
};

/* Returns false to stop feeding (the connection is going away). */
typedef bool (*gdb_input_fn)(void *opaque, enum gdb_input what, const char *data, size_t len);

struct gdb_parser {
    uint8_t state;
    bool escape;
    bool overflow;
    uint8_t sum;
    uint8_t got_sum;
    size_t len;
    char buf[GDB_PACKET_MAX + 1];
};

void gdb_parser_init(struct gdb_parser *p);
/* Parses n bytes, calling fn for each complete unit; other bytes outside packets are dropped. */
void gdb_parser_feed(struct gdb_parser *p, const void *data, size_t n, gdb_input_fn fn, void *opaque);

/* Appends the packet "$<data, escaped>#cs" to out. */
void gdb_packet_put(GByteArray *out, const void *data, size_t len);

/* Appends len bytes as lowercase hex. */
void gdb_hex_append(GString *out, const void *data, size_t len);
/* Decodes exactly 2*n hex digits from s into out. */
bool gdb_hex_decode(const char *s, size_t n, uint8_t *out);
/* Reads a hex number of 1 to 16 digits at *p (not beyond end) and advances *p past it. */
bool gdb_hex_u64(const char **p, const char *end, uint64_t *out);
/* "ADDR,LEN" at *p, each a hex number; advances *p past them. */
bool gdb_addr_len(const char **p, const char *end, uint64_t *addr, uint64_t *len);

#endif
