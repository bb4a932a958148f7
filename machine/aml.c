/* AML byte-code writer: names, data objects, blocks with back-filled PkgLengths, resource templates. */
#include "aml.h"

#include <string.h>

#include <glib.h>

enum block_kind {
    BLOCK_SCOPE,
    BLOCK_DEVICE,
    BLOCK_METHOD,
    BLOCK_PACKAGE,
    BLOCK_BUFFER,
    BLOCK_RESOURCES,
};

/* Everything the writer produces must fit in one PkgLength, so anything larger is refused early. */
#define AML_MAX_OUTPUT ((size_t)AML_PKGLENGTH_MAX)

void aml_init(struct aml *a)
{
    memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
    g_free(a->data);
    aml_init(a);
}

static bool reserve(struct aml *a, size_t n)
{
    if (a->failed)
        return false;
    if (n > AML_MAX_OUTPUT - a->len) {
        a->failed = true;
        return false;
    }
    if (a->len + n > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->len + n)
            cap *= 2;
        a->data = g_realloc(a->data, cap);
        a->cap = cap;
    }
    return true;
}

void aml_raw(struct aml *a, const void *bytes, size_t n)
{
    if (!reserve(a, n))
        return;
    if (n)
        memcpy(a->data + a->len, bytes, n);
    a->len += n;
}

static void put_le(struct aml *a, uint64_t v, unsigned bytes)
{
    uint8_t b[8];
    for (unsigned i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    aml_raw(a, b, bytes);
}

void aml_u8(struct aml *a, uint8_t v)
{
    put_le(a, v, 1);
}

void aml_u16(struct aml *a, uint16_t v)
{
    put_le(a, v, 2);
}

void aml_u32(struct aml *a, uint32_t v)
{
    put_le(a, v, 4);
}

void aml_u64(struct aml *a, uint64_t v)
{
    put_le(a, v, 8);
}

/* PkgLength counts its own bytes. The lead byte's top two bits say how many bytes follow; with none it holds
 * the length in 6 bits, otherwise its low nibble holds the lowest 4 bits and each following byte the next 8.
 */
size_t aml_pkglength_encode(uint64_t body_len, uint8_t out[4])
{
    for (unsigned n = 1; n <= 4; n++) {
        uint64_t total = body_len + n;
        uint64_t limit = n == 1 ? 0x3F : (1ull << (4 + 8 * (n - 1))) - 1;
        if (total > limit)
            continue;
        if (n == 1) {
            out[0] = (uint8_t)total;
            return 1;
        }
        out[0] = (uint8_t)((n - 1) << 6 | (total & 0x0F));
        for (unsigned i = 1; i < n; i++)
            out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
        return n;
    }
    return 0;
}

static size_t integer_encode(uint64_t v, uint8_t out[9])
{
    if (v == 0) {
        out[0] = AML_ZERO_OP;
        return 1;
    }
    if (v == 1) {
        out[0] = AML_ONE_OP;
        return 1;
    }
    if (v == UINT64_MAX) {
        out[0] = AML_ONES_OP;
        return 1;
    }
    unsigned bytes;
    if (v <= 0xFF) {
        out[0] = AML_BYTE_PREFIX;
        bytes = 1;
    } else if (v <= 0xFFFF) {
        out[0] = AML_WORD_PREFIX;
        bytes = 2;
    } else if (v <= 0xFFFFFFFF) {
        out[0] = AML_DWORD_PREFIX;
        bytes = 4;
    } else {
        out[0] = AML_QWORD_PREFIX;
        bytes = 8;
    }
    for (unsigned i = 0; i < bytes; i++)
        out[1 + i] = (uint8_t)(v >> (8 * i));
    return 1 + bytes;
}

void aml_integer(struct aml *a, uint64_t v)
{
    uint8_t b[9];
    aml_raw(a, b, integer_encode(v, b));
}

void aml_string(struct aml *a, const char *s)
{
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p > 0x7F) { /* AsciiCharList: 0x01-0x7F */
            a->failed = true;
            return;
        }
    }
    aml_u8(a, AML_STRING_PREFIX);
    aml_raw(a, s, strlen(s) + 1);
}

static bool is_lead_char(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_lead_char(c) || (c >= '0' && c <= '9');
}

void aml_name_string(struct aml *a, const char *path)
{
    const char *p = path;
    bool root = false;
    size_t parents = 0;
    if (*p == '\\') {
        root = true;
        p++;
    } else {
        for (; *p == '^'; p++)
            parents++;
    }
    uint8_t segs[255][4];
    unsigned nsegs = 0;
    while (*p) {
        size_t n = strcspn(p, ".");
        if (nsegs == G_N_ELEMENTS(segs) || n < 1 || n > 4 || !is_lead_char(p[0]))
            goto bad;
        for (size_t i = 0; i < 4; i++) {
            if (i < n && !is_name_char(p[i]))
                goto bad;
            segs[nsegs][i] = i < n ? (uint8_t)p[i] : '_';
        }
        nsegs++;
        p += n;
        if (*p == '.' && !*++p)
            goto bad; /* a trailing dot */
    }
    if (root)
        aml_u8(a, AML_ROOT_CHAR);
    for (size_t i = 0; i < parents; i++)
        aml_u8(a, AML_PARENT_PREFIX_CHAR);
    if (nsegs == 0) {
        aml_u8(a, 0x00); /* NullName */
        return;
    }
    if (nsegs == 2) {
        aml_u8(a, AML_DUAL_NAME_PREFIX);
    } else if (nsegs > 2) {
        aml_u8(a, AML_MULTI_NAME_PREFIX);
        aml_u8(a, (uint8_t)nsegs);
    }
    aml_raw(a, segs, 4 * (size_t)nsegs);
    return;
bad:
    a->failed = true;
}

/* Three letters in 5 bits each (A = 1) and four hex digits in 4 bits each, stored as a big-endian 32-bit
 * value. */
bool aml_eisaid_encode(const char *id, uint32_t *out)
{
    if (strlen(id) != 7)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z')
            return false;
        v = v << 5 | (uint32_t)(id[i] - 'A' + 1);
    }
    for (int i = 3; i < 7; i++) {
        int d = g_ascii_xdigit_value(id[i]);
        if (d < 0 || (id[i] >= 'a' && id[i] <= 'f'))
            return false;
        v = v << 4 | (uint32_t)d;
    }
    *out = GUINT32_SWAP_LE_BE(v);
    return true;
}

void aml_eisaid(struct aml *a, const char *id)
{
    uint32_t v;
    if (!aml_eisaid_encode(id, &v)) {
        a->failed = true;
        return;
    }
    /* Always a DWord, as ASL compilers emit it, so the value reads as an EISA ID when disassembled. */
    aml_u8(a, AML_DWORD_PREFIX);
    aml_u32(a, v);
}

void aml_name(struct aml *a, const char *name)
{
    aml_u8(a, AML_NAME_OP);
    aml_name_string(a, name);
}

void aml_return(struct aml *a)
{
    aml_u8(a, AML_RETURN_OP);
}

void aml_name_integer(struct aml *a, const char *name, uint64_t v)
{
    aml_name(a, name);
    aml_integer(a, v);
}

void aml_name_eisaid(struct aml *a, const char *name, const char *id)
{
    aml_name(a, name);
    aml_eisaid(a, id);
}

void aml_name_str(struct aml *a, const char *name, const char *s)
{
    aml_name(a, name);
    aml_string(a, s);
}

static void open_block(struct aml *a, enum block_kind kind)
{
    if (a->failed)
        return;
    if (a->depth == AML_MAX_DEPTH) {
        a->failed = true;
        return;
    }
    a->open[a->depth].mark = a->len;
    a->open[a->depth].kind = (uint8_t)kind;
    a->depth++;
}

void aml_scope_begin(struct aml *a, const char *name)
{
    aml_u8(a, AML_SCOPE_OP);
    open_block(a, BLOCK_SCOPE);
    aml_name_string(a, name);
}

void aml_device_begin(struct aml *a, const char *name)
{
    aml_u8(a, AML_EXT_OP_PREFIX);
    aml_u8(a, AML_EXT_DEVICE_OP);
    open_block(a, BLOCK_DEVICE);
    aml_name_string(a, name);
}

void aml_method_begin(struct aml *a, const char *name, unsigned nargs, bool serialized)
{
    if (nargs > 7) {
        a->failed = true;
        return;
    }
    aml_u8(a, AML_METHOD_OP);
    open_block(a, BLOCK_METHOD);
    aml_name_string(a, name);
    aml_u8(a, (uint8_t)(nargs | (serialized ? 1u << 3 : 0)));
}

void aml_package_begin(struct aml *a, unsigned nelements)
{
    if (nelements > 255) {
        a->failed = true;
        return;
    }
    aml_u8(a, AML_PACKAGE_OP);
    open_block(a, BLOCK_PACKAGE);
    aml_u8(a, (uint8_t)nelements);
}

void aml_buffer_begin(struct aml *a)
{
    aml_u8(a, AML_BUFFER_OP);
    open_block(a, BLOCK_BUFFER);
}

/* Inserts the innermost block's PkgLength (and, for a Buffer, its BufferSize) at its mark. */
static void close_block(struct aml *a)
{
    if (a->failed)
        return;
    if (a->depth == 0) {
        a->failed = true;
        return;
    }
    a->depth--;
    size_t mark = a->open[a->depth].mark;
    enum block_kind kind = a->open[a->depth].kind;
    size_t body = a->len - mark;
    uint8_t head[4 + 9];
    size_t nsize = 0;
    uint8_t size_enc[9];
    if (kind == BLOCK_BUFFER || kind == BLOCK_RESOURCES)
        nsize = integer_encode(body, size_enc);
    size_t npkg = aml_pkglength_encode(body + nsize, head);
    if (npkg == 0) {
        a->failed = true;
        return;
    }
    memcpy(head + npkg, size_enc, nsize);
    size_t nhead = npkg + nsize;
    if (!reserve(a, nhead))
        return;
    memmove(a->data + mark + nhead, a->data + mark, body);
    memcpy(a->data + mark, head, nhead);
    a->len += nhead;
}

void aml_end(struct aml *a)
{
    if (a->depth > 0 && a->open[a->depth - 1].kind == BLOCK_RESOURCES)
        a->failed = true; /* needs its end tag: aml_resources_end */
    close_block(a);
}

void aml_resources_begin(struct aml *a)
{
    aml_u8(a, AML_BUFFER_OP);
    open_block(a, BLOCK_RESOURCES);
}

static bool in_resources(struct aml *a)
{
    if (a->depth == 0 || a->open[a->depth - 1].kind != BLOCK_RESOURCES)
        a->failed = true;
    return !a->failed;
}

void aml_resources_end(struct aml *a)
{
    if (!in_resources(a))
        return;
    size_t mark = a->open[a->depth - 1].mark;
    uint8_t sum = AML_RES_END_TAG;
    for (size_t i = mark; i < a->len; i++)
        sum = (uint8_t)(sum + a->data[i]);
    aml_u8(a, AML_RES_END_TAG);
    aml_u8(a, (uint8_t)-sum);
    close_block(a);
}

/* The common part of Word/DWord/QWord address space descriptors (6.4.3.5.1-3): type, flags, then granularity,
 * minimum, maximum, translation offset and length, each `width` bytes. Windows are fixed and positively
 * decoded. */
static void address_space(struct aml *a, uint8_t tag, unsigned width, uint8_t space, uint8_t general,
                          uint8_t specific, uint64_t min, uint64_t max)
{
    if (!in_resources(a))
        return;
    if (max < min) {
        a->failed = true;
        return;
    }
    aml_u8(a, tag);
    aml_u16(a, (uint16_t)(3 + 5 * width));
    aml_u8(a, space);
    aml_u8(a, general);
    aml_u8(a, specific);
    put_le(a, 0, width);
    put_le(a, min, width);
    put_le(a, max, width);
    put_le(a, 0, width);
    put_le(a, max - min + 1, width);
}

void aml_res_word_bus_number(struct aml *a, uint16_t min, uint16_t max)
{
    address_space(a, AML_RES_WORD_ADDRESS, 2, AML_ADDR_SPACE_BUS_NUMBER,
                  AML_ADDR_MIN_FIXED | AML_ADDR_MAX_FIXED, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
    /* type-specific _RNG = 3: both ISA and non-ISA ranges */
    address_space(a, AML_RES_WORD_ADDRESS, 2, AML_ADDR_SPACE_IO, AML_ADDR_MIN_FIXED | AML_ADDR_MAX_FIXED,
                  0x03, min, max);
}

void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    if (!in_resources(a))
        return;
    aml_u8(a, AML_RES_IO);
    aml_u8(a, 0x01); /* decodes 16 address bits */
    aml_u16(a, min);
    aml_u16(a, max);
    aml_u8(a, align);
    aml_u8(a, len);
}

void aml_res_dword_memory(struct aml *a, enum aml_mem_cache cache, uint32_t min, uint32_t max)
{
    /* type-specific: _RW (bit 0) read-write, _MEM in bits 1-2 */
    address_space(a, AML_RES_DWORD_ADDRESS, 4, AML_ADDR_SPACE_MEMORY, AML_ADDR_MIN_FIXED | AML_ADDR_MAX_FIXED,
                  (uint8_t)(0x01 | (cache & 3) << 1), min, max);
}

void aml_res_qword_memory(struct aml *a, enum aml_mem_cache cache, uint64_t min, uint64_t max)
{
    if (min == 0 && max == UINT64_MAX) {
        a->failed = true; /* the length would not fit */
        return;
    }
    address_space(a, AML_RES_QWORD_ADDRESS, 8, AML_ADDR_SPACE_MEMORY, AML_ADDR_MIN_FIXED | AML_ADDR_MAX_FIXED,
                  (uint8_t)(0x01 | (cache & 3) << 1), min, max);
}

void aml_res_memory32_fixed(struct aml *a, bool writable, uint32_t base, uint32_t len)
{
    if (!in_resources(a))
        return;
    aml_u8(a, AML_RES_MEMORY32_FIXED);
    aml_u16(a, 9);
    aml_u8(a, writable ? 1 : 0);
    aml_u32(a, base);
    aml_u32(a, len);
}

void aml_res_interrupt(struct aml *a, unsigned flags, uint32_t gsi)
{
    if (!in_resources(a))
        return;
    aml_u8(a, AML_RES_EXT_INTERRUPT);
    aml_u16(a, 6); /* flags, table length, one interrupt */
    aml_u8(a, (uint8_t)(flags & 0x1F));
    aml_u8(a, 1);
    aml_u32(a, gsi);
}

void aml_res_irq_noflags(struct aml *a, unsigned irq)
{
    if (!in_resources(a))
        return;
    if (irq > 15) {
        a->failed = true;
        return;
    }
    aml_u8(a, AML_RES_IRQ_NOFLAGS);
    aml_u16(a, (uint16_t)(1u << irq));
}
