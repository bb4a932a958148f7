/* Unit tests for the gdbstub's pure layers: packet framing (gdb_packet), the x86 register file (gdb_x86). */
#include <string.h>

#include <glib.h>

#include "gdb_packet.h"
#include "gdb_x86.h"

/* ---- a recorder for parser output ---- */

struct rec {
    GPtrArray *events; /* "P:<data>", "BAD", "LONG", "+", "-", "^C" */
    int stop_after;    /* return false after this many events (0: never) */
};

static bool record(void *opaque, enum gdb_input what, const char *data, size_t len)
{
    struct rec *r = opaque;
    char *e = NULL;
    switch (what) {
    case GDB_INPUT_PACKET:
        g_assert_cmpuint(data[len], ==, 0);
        e = g_strdup_printf("P:%.*s", (int)len, data);
        break;
    case GDB_INPUT_BAD_CHECKSUM:
        e = g_strdup("BAD");
        break;
    case GDB_INPUT_TOO_LONG:
        e = g_strdup("LONG");
        break;
    case GDB_INPUT_ACK:
        e = g_strdup("+");
        break;
    case GDB_INPUT_NAK:
        e = g_strdup("-");
        break;
    case GDB_INPUT_INTERRUPT:
        e = g_strdup("^C");
        break;
    }
    g_ptr_array_add(r->events, e);
    return !(r->stop_after && (int)r->events->len >= r->stop_after);
}

static struct gdb_parser *parser_new(void)
{
    struct gdb_parser *p = g_new(struct gdb_parser, 1);
    gdb_parser_init(p);
    return p;
}

/* Feeds s (one byte at a time when bytewise) and returns the events joined with '|'. */
static char *feed(struct gdb_parser *p, const char *s, size_t n, bool bytewise)
{
    struct rec r = {g_ptr_array_new_with_free_func(g_free), 0};
    if (bytewise) {
        for (size_t i = 0; i < n; i++)
            gdb_parser_feed(p, s + i, 1, record, &r);
    } else {
        gdb_parser_feed(p, s, n, record, &r);
    }
    g_ptr_array_add(r.events, NULL);
    char *joined = g_strjoinv("|", (char **)r.events->pdata);
    g_ptr_array_unref(r.events);
    return joined;
}

static char *feed_str(struct gdb_parser *p, const char *s)
{
    return feed(p, s, strlen(s), false);
}

static void test_framing_simple(void)
{
    g_autofree struct gdb_parser *p = parser_new();
    g_autofree char *a = feed_str(p, "$g#67");
    g_assert_cmpstr(a, ==, "P:g");
    g_autofree char *b = feed_str(p, "+$m0,4#fd-");
    g_assert_cmpstr(b, ==, "+|P:m0,4|-");
}

static void test_framing_split(void)
{
    g_autofree struct gdb_parser *p = parser_new();
    const char *s = "$qSupported:multiprocess+#c6$?#3f";
    g_autofree char *a = feed(p, s, strlen(s), true);
    g_assert_cmpstr(a, ==, "P:qSupported:multiprocess+|P:?");
}

static void test_framing_bad_checksum(void)
{
    g_autofree struct gdb_parser *p = parser_new();
    g_autofree char *a = feed_str(p, "$g#68$g#67");
    g_assert_cmpstr(a, ==, "BAD|P:g");
    /* Not hex in the checksum; the '$' there starts the next packet. */
    g_autofree char *b = feed_str(p, "$g#z7$g#6$g#67");
    g_assert_cmpstr(b, ==, "BAD|BAD|P:g");
    /* Upper-case checksum digits are fine. */
    g_autofree char *c = feed_str(p, "$m0,4#FD");
    g_assert_cmpstr(c, ==, "P:m0,4");
}

static void test_framing_interrupt_only_outside(void)
{
    g_autofree struct gdb_parser *p = parser_new();
    /* 0x03 inside a packet is data (binary 'X' payloads); outside it is the interrupt. */
    const char in[] = "\x03$X0,1:\x03#22\x03";
    g_autofree char *a = feed(p, in, sizeof(in) - 1, false);
    g_assert_cmpstr(a, ==, "^C|P:X0,1:\x03|^C");
}

static void test_framing_escapes(void)
{
    g_autofree struct gdb_parser *p = parser_new();
    /* "}]" is '}' ^ 0x20 = '}', "}\x03" is '#', "}\x04" is '$'; the checksum covers the escaped bytes. */
    const char body[] = "X0,3:}]}\x03}\x04";
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof(body) - 1; i++)
        sum += (unsigned char)body[i];
    g_autofree char *pkt = g_strdup_printf("$%s#%02x", body, sum & 0xff);
    g_autofree char *a = feed_str(p, pkt);
    g_assert_cmpstr(a, ==, "P:X0,3:}#$");
}

static void test_framing_garbage_and_restart(void)
{
    g_autofree struct gdb_parser *p = parser_new();
    /* Noise outside packets is ignored; a '$' inside a packet abandons it. */
    g_autofree char *a = feed_str(p, "hello\r\n$qAtt$g#67");
    g_assert_cmpstr(a, ==, "P:g");
}

static void test_framing_too_long(void)
{
    g_autofree struct gdb_parser *p = parser_new();
    size_t n = GDB_PACKET_MAX + 100;
    GString *s = g_string_new("$");
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        g_string_append_c(s, 'a');
        sum += 'a';
    }
    g_string_append_printf(s, "#%02x$g#67", sum & 0xff);
    g_autofree char *a = feed(p, s->str, s->len, false);
    g_assert_cmpstr(a, ==, "LONG|P:g");
    /* Exactly the maximum is fine. */
    g_string_assign(s, "$");
    sum = 0;
    for (size_t i = 0; i < GDB_PACKET_MAX; i++) {
        g_string_append_c(s, 'b');
        sum += 'b';
    }
    g_string_append_printf(s, "#%02x", sum & 0xff);
    g_autofree char *b = feed(p, s->str, s->len, false);
    g_assert_cmpuint(strlen(b), ==, 2 + GDB_PACKET_MAX);
    g_string_free(s, TRUE);
}

static void test_framing_stop_feeding(void)
{
    g_autofree struct gdb_parser *p = parser_new();
    struct rec r = {g_ptr_array_new_with_free_func(g_free), 1};
    gdb_parser_feed(p, "$g#67$g#67+", 11, record, &r);
    g_assert_cmpuint(r.events->len, ==, 1);
    g_ptr_array_unref(r.events);
}

static void test_framing_random_bytes(void)
{
    /* Hostile input: random bytes never crash the parser, and it finds the next good packet. */
    g_autofree struct gdb_parser *p = parser_new();
    GRand *rnd = g_rand_new_with_seed(1234);
    for (int round = 0; round < 200; round++) {
        uint8_t junk[512];
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (uint8_t)g_rand_int_range(rnd, 0, 256);
        struct rec r = {g_ptr_array_new_with_free_func(g_free), 0};
        gdb_parser_feed(p, junk, sizeof(junk), record, &r);
        g_ptr_array_unref(r.events);
        /* A '#' ends any packet the junk opened, with a bad checksum at worst; then a good one parses. */
        g_autofree char *a = feed_str(p, "#00$g#67");
        g_assert_true(g_str_has_suffix(a, "P:g"));
    }
    g_rand_free(rnd);
}

static void test_encode(void)
{
    GByteArray *out = g_byte_array_new();
    gdb_packet_put(out, "OK", 2);
    g_assert_cmpmem(out->data, out->len, "$OK#9a", 6);
    g_byte_array_set_size(out, 0);
    /* '$', '#', '}' and '*' are escaped; the checksum covers the escapes. */
    gdb_packet_put(out, "a$#}*", 5);
    g_assert_cmpmem(out->data, out->len, "$a}\x04}\x03}]}\x0a#c3", 13);
    /* What the encoder writes, the parser reads back. */
    g_autofree struct gdb_parser *p = parser_new();
    struct rec r = {g_ptr_array_new_with_free_func(g_free), 0};
    gdb_parser_feed(p, out->data, out->len, record, &r);
    g_assert_cmpuint(r.events->len, ==, 1);
    g_assert_cmpstr(r.events->pdata[0], ==, "P:a$#}*");
    g_ptr_array_unref(r.events);
    g_byte_array_unref(out);
}

static void test_hex(void)
{
    uint64_t v, a, l;
    const char *s = "ffffffff81000000,40";
    const char *p = s;
    g_assert_true(gdb_addr_len(&p, s + strlen(s), &a, &l));
    g_assert_cmphex(a, ==, 0xffffffff81000000ull);
    g_assert_cmphex(l, ==, 0x40);
    g_assert_true(p == s + strlen(s));
    /* 17 digits overflow; no digits, a missing comma or a missing length are errors. */
    s = "10000000000000000";
    p = s;
    g_assert_false(gdb_hex_u64(&p, s + strlen(s), &v));
    s = ",4";
    p = s;
    g_assert_false(gdb_addr_len(&p, s + 2, &a, &l));
    s = "1000";
    p = s;
    g_assert_false(gdb_addr_len(&p, s + 4, &a, &l));
    s = "1000,";
    p = s;
    g_assert_false(gdb_addr_len(&p, s + 5, &a, &l));
    /* The end pointer bounds the scan. */
    s = "12345";
    p = s;
    g_assert_true(gdb_hex_u64(&p, s + 2, &v));
    g_assert_cmphex(v, ==, 0x12);
    uint8_t b[3];
    g_assert_true(gdb_hex_decode("0aFf10", 3, b));
    g_assert_cmphex(b[0], ==, 0x0a);
    g_assert_cmphex(b[1], ==, 0xff);
    g_assert_cmphex(b[2], ==, 0x10);
    g_assert_false(gdb_hex_decode("0g", 1, b));
    g_autoptr(GString) h = g_string_new(NULL);
    gdb_hex_append(h, b, 3);
    g_assert_cmpstr(h->str, ==, "0aff10");
}

/* ---- registers ---- */

static struct gdb_x86_cpu sample_cpu(void)
{
    struct gdb_x86_cpu c = {0};
    c.r = (struct vcpu_regs){.rax = 0x1111,
                             .rbx = 0x2222,
                             .rcx = 0x3333,
                             .rdx = 0x4444,
                             .rsi = 0x5555,
                             .rdi = 0x6666,
                             .rsp = 0x7777,
                             .rbp = 0x8888,
                             .r8 = 8,
                             .r15 = 15,
                             .rip = 0xffffffff81000000ull,
                             .rflags = 0x246};
    c.s.cs.selector = 0x10;
    c.s.ss.selector = 0x18;
    c.s.fs.base = 0xabc000;
    c.s.gs.base = 0xffff888000000000ull;
    c.s.cr0 = 0x80050033;
    c.s.cr3 = 0x1234000;
    c.s.efer = 0xd01;
    return c;
}

static void test_regs_layout(void)
{
    struct gdb_x86_cpu c = sample_cpu();
    g_autoptr(GString) h = g_string_new(NULL);
    gdb_x86_regs_hex(&c, h);
    /* 16 GPRs + rip (8 bytes) + eflags and 6 selectors (4) + 8 x87 (10) + 8 x87 control (4) + 16 xmm (16) +
     * mxcsr (4) + fs_base, gs_base and 6 system registers (8). */
    unsigned bytes = 17 * 8 + 7 * 4 + 8 * 10 + 8 * 4 + 16 * 16 + 4 + 8 * 8;
    g_assert_cmpuint(h->len, ==, 2 * bytes);
    /* gdb's order: rax rbx rcx rdx rsi rdi rbp rsp, little-endian. */
    g_assert_true(g_str_has_prefix(h->str, "1111000000000000"
                                           "2222000000000000"
                                           "3333000000000000"
                                           "4444000000000000"
                                           "5555000000000000"
                                           "6666000000000000"
                                           "8888000000000000"
                                           "7777000000000000"
                                           "0800000000000000"));
    g_assert_cmpmem(h->str + 16 * 16, 16 + 8 + 8,
                    "00000081ffffffff"
                    "46020000"
                    "10000000",
                    32);
    /* x87/SSE are unavailable. */
    g_assert_cmpmem(h->str + 2 * (17 * 8 + 7 * 4), 20, "xxxxxxxxxxxxxxxxxxxx", 20);
    /* cr3 is the 4th of the last 6 registers... counting from the end: efer, cr8, cr4, cr3. */
    g_assert_cmpmem(h->str + h->len - 16, 16, "010d000000000000", 16);
    g_assert_cmpmem(h->str + h->len - 4 * 16, 16, "0040230100000000", 16);
    g_assert_cmpuint(gdb_x86_reg_size(GDB_X86_REG_RIP), ==, 8);
    g_assert_cmpuint(gdb_x86_reg_size(GDB_X86_NREGS), ==, 0);
    g_autoptr(GString) one = g_string_new(NULL);
    gdb_x86_reg_hex(&c, 57, one); /* fs_base */
    g_assert_cmpstr(one->str, ==, "00c0ab0000000000");
}

static void test_regs_write(void)
{
    struct gdb_x86_cpu c = sample_cpu();
    uint8_t v[8] = {0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0};
    g_assert_true(gdb_x86_reg_write(&c, 2, v)); /* rcx */
    g_assert_cmphex(c.r.rcx, ==, 0x12345678);
    g_assert_true(gdb_x86_reg_write(&c, 6, v)); /* rbp, not rsp */
    g_assert_cmphex(c.r.rbp, ==, 0x12345678);
    g_assert_cmphex(c.r.rsp, ==, 0x7777);
    /* eflags is 32 bits. */
    uint8_t f[4] = {0x02, 0x03, 0, 0};
    g_assert_true(gdb_x86_reg_write(&c, 17, f));
    g_assert_cmphex(c.r.rflags, ==, 0x302);
    /* A selector may be "written" with its own value only; x87 registers cannot be written. */
    uint8_t cs_same[4] = {0x10, 0, 0, 0}, cs_other[4] = {0x33, 0, 0, 0};
    g_assert_true(gdb_x86_reg_write(&c, 18, cs_same));
    g_assert_false(gdb_x86_reg_write(&c, 18, cs_other));
    uint8_t st[10] = {0};
    g_assert_false(gdb_x86_reg_write(&c, 24, st));
    g_assert_false(gdb_x86_reg_write(&c, GDB_X86_NREGS, v));
    /* cr3 through the system feature. */
    g_assert_true(gdb_x86_reg_write(&c, 61, v));
    g_assert_cmphex(c.s.cr3, ==, 0x12345678);
}

static void test_regs_roundtrip(void)
{
    struct gdb_x86_cpu c = sample_cpu(), d = {0};
    d.s.cs.selector = 0x10;
    d.s.ss.selector = 0x18;
    g_autoptr(GString) h = g_string_new(NULL);
    gdb_x86_regs_hex(&c, h);
    g_assert_true(gdb_x86_regs_write(&d, h->str, h->len));
    g_assert_cmpmem(&d.r, sizeof(d.r), &c.r, sizeof(c.r));
    g_assert_cmphex(d.s.gs.base, ==, c.s.gs.base);
    g_assert_cmphex(d.s.efer, ==, c.s.efer);
    /* The wrong length, bad hex, or a changed selector are refused and change nothing. */
    struct gdb_x86_cpu e = sample_cpu();
    g_assert_false(gdb_x86_regs_write(&e, h->str, h->len - 2));
    g_autofree char *bad = g_strdup(h->str);
    bad[3] = 'g';
    g_assert_false(gdb_x86_regs_write(&e, bad, h->len));
    g_autofree char *seg = g_strdup(h->str);
    seg[2 * (17 * 8 + 4)] = '3'; /* cs 0x10 -> 0x13 */
    e.r.rax = 0;
    g_assert_false(gdb_x86_regs_write(&e, seg, h->len));
    g_assert_cmphex(e.r.rax, ==, 0);
}

static void test_target_xml(void)
{
    const char *xml = gdb_x86_target_xml();
    g_assert_nonnull(strstr(xml, "<architecture>i386:x86-64</architecture>"));
    g_assert_nonnull(strstr(xml, "<feature name=\"org.gnu.gdb.i386.core\">"));
    g_assert_nonnull(strstr(xml, "<reg name=\"rip\" bitsize=\"64\" type=\"code_ptr\" regnum=\"16\"/>"));
    g_assert_nonnull(
        strstr(xml, "<reg name=\"efer\" bitsize=\"64\" type=\"int\" regnum=\"64\" group=\"system\"/>"));
    g_assert_nonnull(strstr(xml, "<field name=\"IF\" start=\"9\" end=\"9\"/>"));
    /* Every register once, features closed. */
    unsigned regs = 0, open = 0, close = 0;
    for (const char *p = xml; (p = strstr(p, "<reg ")); p++)
        regs++;
    for (const char *p = xml; (p = strstr(p, "<feature ")); p++)
        open++;
    for (const char *p = xml; (p = strstr(p, "</feature>")); p++)
        close++;
    g_assert_cmpuint(regs, ==, GDB_X86_NREGS);
    g_assert_cmpuint(open, ==, 4);
    g_assert_cmpuint(close, ==, 4);
    g_assert_true(g_str_has_suffix(xml, "</target>\n"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/gdbstub/framing/simple-packets-and-acks", test_framing_simple);
    g_test_add_func("/gdbstub/framing/byte-by-byte", test_framing_split);
    g_test_add_func("/gdbstub/framing/bad-checksum-is-reported", test_framing_bad_checksum);
    g_test_add_func("/gdbstub/framing/interrupt-byte-only-outside-packets",
                    test_framing_interrupt_only_outside);
    g_test_add_func("/gdbstub/framing/escapes-decoded-checksum-over-raw", test_framing_escapes);
    g_test_add_func("/gdbstub/framing/garbage-ignored-dollar-restarts", test_framing_garbage_and_restart);
    g_test_add_func("/gdbstub/framing/too-long-dropped-then-resyncs", test_framing_too_long);
    g_test_add_func("/gdbstub/framing/callback-stops-feeding", test_framing_stop_feeding);
    g_test_add_func("/gdbstub/framing/random-bytes-then-resync", test_framing_random_bytes);
    g_test_add_func("/gdbstub/encode/escapes-and-checksum", test_encode);
    g_test_add_func("/gdbstub/hex/numbers-bounded-and-validated", test_hex);
    g_test_add_func("/gdbstub/regs/g-packet-layout", test_regs_layout);
    g_test_add_func("/gdbstub/regs/write-single", test_regs_write);
    g_test_add_func("/gdbstub/regs/G-roundtrip-and-refusals", test_regs_roundtrip);
    g_test_add_func("/gdbstub/regs/target-xml-matches-layout", test_target_xml);
    return g_test_run();
}
