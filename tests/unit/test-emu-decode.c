/* Unit tests of the emu x86 decoder: exact decodings, truncation/limit properties, and lengths against
 * objdump. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "emu/decode.h"

#define M16 X86_MODE_16
#define M32 X86_MODE_32
#define M64 X86_MODE_64
#define NOREG X86_REG_NONE

static size_t parse_hex(const char *hex, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    while (*hex) {
        if (*hex == ' ') {
            hex++;
            continue;
        }
        g_assert_true(g_ascii_isxdigit(hex[0]) && g_ascii_isxdigit(hex[1]));
        g_assert_cmpuint(n, <, cap);
        buf[n++] = (uint8_t)(g_ascii_xdigit_value(hex[0]) << 4 | g_ascii_xdigit_value(hex[1]));
        hex += 2;
    }
    return n;
}

/* Decodes exactly the given bytes from a heap buffer of that size, so valgrind sees any over-read. */
static int dec(enum x86_mode mode, const char *hex, struct x86_insn *in)
{
    uint8_t tmp[64];
    size_t n = parse_hex(hex, tmp, sizeof(tmp));
    uint8_t *buf = g_memdup2(tmp, n);
    int r = x86_decode(buf, n, mode, in);
    g_free(buf);
    return r;
}

static struct x86_insn ok(enum x86_mode mode, const char *hex, int len, unsigned op)
{
    struct x86_insn in;
    int r = dec(mode, hex, &in);
    if (r != len || in.op != op) {
        g_test_message("%s (mode %d): got %d %s, want %d %s", hex, mode, r, r > 0 ? x86_op_name(in.op) : "",
                       len, x86_op_name(op));
    }
    g_assert_cmpint(r, ==, len);
    g_assert_cmpstr(x86_op_name(in.op), ==, x86_op_name(op));
    g_assert_cmpuint(in.len, ==, (unsigned)len);
    return in;
}

static void fails(enum x86_mode mode, const char *hex, int code)
{
    struct x86_insn in;
    int r = dec(mode, hex, &in);
    if (r != code) {
        g_test_message("%s (mode %d): got %d (%s), want %d", hex, mode, r, r > 0 ? x86_op_name(in.op) : "",
                       code);
    }
    g_assert_cmpint(r, ==, code);
}

static void check_mem(const struct x86_insn *in, unsigned base, unsigned index, unsigned scale, int64_t disp)
{
    g_assert_true(in->flags & X86_INSN_MEM);
    g_assert_cmpuint(in->base, ==, base);
    g_assert_cmpuint(in->index, ==, index);
    g_assert_cmpuint(in->scale, ==, scale);
    g_assert_cmpint(in->disp, ==, disp);
}

static void test_struct_size(void)
{
    g_assert_cmpuint(sizeof(struct x86_insn), ==, 40);
    g_assert_cmpstr(x86_op_name(X86_OP_ADD), ==, "ADD");
    g_assert_cmpstr(x86_op_name(X86_OP_COUNT), ==, "?");
}

static void test_addr16_forms(void)
{
    static const struct {
        const char *hex;
        int len;
        unsigned base, index;
        int64_t disp;
        unsigned seg;
    } c[] = {
        {"8b 00", 2, 3, 6, 0, X86_SEG_DS},
        {"8b 01", 2, 3, 7, 0, X86_SEG_DS},
        {"8b 02", 2, 5, 6, 0, X86_SEG_SS},
        {"8b 03", 2, 5, 7, 0, X86_SEG_SS},
        {"8b 04", 2, 6, NOREG, 0, X86_SEG_DS},
        {"8b 05", 2, 7, NOREG, 0, X86_SEG_DS},
        {"8b 06 34 12", 4, NOREG, NOREG, 0x1234, X86_SEG_DS},
        {"8b 07", 2, 3, NOREG, 0, X86_SEG_DS},
        {"8b 46 fe", 3, 5, NOREG, -2, X86_SEG_SS},
        {"8b 40 7f", 3, 3, 6, 127, X86_SEG_DS},
        {"8b 86 00 80", 4, 5, NOREG, -0x8000, X86_SEG_SS},
        {"8b 87 ff 7f", 4, 3, NOREG, 0x7fff, X86_SEG_DS},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(c); i++) {
        struct x86_insn in = ok(M16, c[i].hex, c[i].len, X86_OP_MOV);
        check_mem(&in, c[i].base, c[i].index, 0, c[i].disp);
        g_assert_cmpuint(in.seg, ==, c[i].seg);
        g_assert_cmpuint(in.addrsize, ==, 2);
        g_assert_cmpuint(in.opsize, ==, 2);
        g_assert_cmpuint(in.disp_size, ==, (unsigned)c[i].len - 2);
    }
    /* 67 in 16-bit code selects 32-bit addressing (SIB), 66 a 32-bit operand. */
    struct x86_insn in = ok(M16, "66 67 8b 44 8d 10", 6, X86_OP_MOV);
    check_mem(&in, 5, 1, 2, 0x10);
    g_assert_cmpuint(in.seg, ==, X86_SEG_SS);
    g_assert_cmpuint(in.opsize, ==, 4);
    g_assert_cmpuint(in.addrsize, ==, 4);
}

static void test_addr32_forms(void)
{
    struct x86_insn in = ok(M32, "8b 05 78 56 34 12", 6, X86_OP_MOV);
    check_mem(&in, NOREG, NOREG, 0, 0x12345678);
    g_assert_false(in.flags & X86_INSN_RIP_REL);
    in = ok(M32, "8b 04 24", 3, X86_OP_MOV);
    check_mem(&in, 4, NOREG, 0, 0);
    g_assert_cmpuint(in.seg, ==, X86_SEG_SS);
    g_assert_true(in.flags & X86_INSN_SIB);
    in = ok(M32, "8b 04 8d 00 00 00 80", 7, X86_OP_MOV); /* no base: disp32 + index*4 */
    check_mem(&in, NOREG, 1, 2, INT32_MIN);
    in = ok(M32, "8b 44 d8 f0", 4, X86_OP_MOV);
    check_mem(&in, 0, 3, 3, -16);
    in = ok(M32, "8b 84 65 00 01 00 00", 7, X86_OP_MOV); /* ebp base with index, mod 2 */
    check_mem(&in, 5, NOREG, 1, 0x100);
    g_assert_cmpuint(in.seg, ==, X86_SEG_SS);
    in = ok(M32, "26 8b 45 08", 4, X86_OP_MOV);
    g_assert_cmpuint(in.seg, ==, X86_SEG_ES);
    g_assert_true(in.prefixes & X86_PFX_SEG);
    in = ok(M32, "67 8b 07", 3, X86_OP_MOV); /* 16-bit addressing in 32-bit code */
    check_mem(&in, 3, NOREG, 0, 0);
    g_assert_cmpuint(in.addrsize, ==, 2);
    in = ok(M32, "8b c1", 2, X86_OP_MOV);
    g_assert_false(in.flags & X86_INSN_MEM);
    g_assert_cmpuint(in.mod, ==, 3);
    g_assert_cmpuint(in.rm, ==, 1);
    g_assert_cmpuint(in.reg, ==, 0);
}

static void test_addr64_forms(void)
{
    struct x86_insn in = ok(M64, "48 8b 05 f0 ff ff ff", 7, X86_OP_MOV);
    g_assert_true(in.flags & X86_INSN_RIP_REL);
    check_mem(&in, NOREG, NOREG, 0, -16);
    g_assert_cmpuint(in.opsize, ==, 8);
    g_assert_cmpuint(in.addrsize, ==, 8);
    in = ok(M64, "67 8b 05 10 00 00 00", 7, X86_OP_MOV); /* EIP-relative */
    g_assert_true(in.flags & X86_INSN_RIP_REL);
    g_assert_cmpuint(in.addrsize, ==, 4);
    in = ok(M64, "8b 04 25 78 56 34 12", 7, X86_OP_MOV); /* absolute disp32 via SIB, not RIP-relative */
    g_assert_false(in.flags & X86_INSN_RIP_REL);
    check_mem(&in, NOREG, NOREG, 0, 0x12345678);
    in = ok(M64, "41 8b 04 24", 4, X86_OP_MOV); /* [r12] needs a SIB */
    check_mem(&in, 12, NOREG, 0, 0);
    g_assert_cmpuint(in.seg, ==, X86_SEG_DS);
    in = ok(M64, "41 8b 45 00", 4, X86_OP_MOV); /* [r13] needs a disp8 */
    check_mem(&in, 13, NOREG, 0, 0);
    in =
        ok(M64, "43 8b 04 25 00 01 00 00", 8, X86_OP_MOV); /* SIB base 101 mod 00 with REX.B: still no base */
    check_mem(&in, NOREG, 12, 0, 0x100);
    in = ok(M64, "4e 8b 7c a5 08", 5, X86_OP_MOV);
    check_mem(&in, 5, 12, 2, 8);
    g_assert_cmpuint(in.reg, ==, 15);
    g_assert_cmpuint(in.rex, ==, 0x4e);
    in = ok(M64, "65 48 8b 04 25 28 00 00 00", 9, X86_OP_MOV);
    g_assert_cmpuint(in.seg, ==, X86_SEG_GS);
    in = ok(M64, "2e 8b 00", 3, X86_OP_MOV); /* CS override ignored in 64-bit mode */
    g_assert_false(in.prefixes & X86_PFX_SEG);
    g_assert_cmpuint(in.seg, ==, X86_SEG_DS);
    in = ok(M64, "48 8d 64 24 f8", 5, X86_OP_LEA);
    check_mem(&in, 4, NOREG, 0, -8);
    g_assert_cmpuint(in.form, ==, X86_FORM_G_E);
    g_assert_cmpuint(in.reg, ==, 4);
}

static void test_prefixes(void)
{
    struct x86_insn in = ok(M64, "48 66 89 c0", 4, X86_OP_MOV); /* REX before 66 is ignored */
    g_assert_cmpuint(in.opsize, ==, 2);
    g_assert_cmpuint(in.rex, ==, 0);
    g_assert_false(in.prefixes & X86_PFX_REX);
    g_assert_true(in.flags & X86_INSN_HIGH_BYTE);
    in = ok(M64, "66 48 89 c0", 4, X86_OP_MOV); /* REX.W beats 66 */
    g_assert_cmpuint(in.opsize, ==, 8);
    in = ok(M64, "41 48 89 c0", 3 + 1, X86_OP_MOV); /* only the last REX counts */
    g_assert_cmpuint(in.rm, ==, 0);
    g_assert_cmpuint(in.opsize, ==, 8);
    in = ok(M64, "f2 f3 a6", 3, X86_OP_CMPS);
    g_assert_true(in.prefixes & X86_PFX_REP);
    g_assert_false(in.prefixes & X86_PFX_REPNE);
    in = ok(M64, "f3 f2 48 a7", 4, X86_OP_CMPS);
    g_assert_true(in.prefixes & X86_PFX_REPNE);
    g_assert_cmpuint(in.opsize, ==, 8);
    in = ok(M32, "f3 a5", 2, X86_OP_MOVS);
    g_assert_cmpuint(in.opsize, ==, 4);
    in = ok(M16, "f3 66 ab", 3, X86_OP_STOS);
    g_assert_cmpuint(in.opsize, ==, 4);
    g_assert_cmpuint(in.mandatory, ==, X86_MP_F3);
    in = ok(M64, "f3 48 ab", 3, X86_OP_STOS);
    g_assert_cmpuint(in.opsize, ==, 8);
    in = ok(M64, "67 e3 fe", 3, X86_OP_JCXZ);
    g_assert_cmpuint(in.addrsize, ==, 4);
    in = ok(M64, "f0 01 00", 3, X86_OP_ADD);
    g_assert_true(in.prefixes & X86_PFX_LOCK);
}

static void test_byte_registers(void)
{
    struct x86_insn in = ok(M64, "88 e0", 2, X86_OP_MOV); /* mov al, ah */
    g_assert_true(in.flags & X86_INSN_HIGH_BYTE);
    g_assert_cmpuint(in.opsize, ==, 1);
    g_assert_cmpuint(in.reg, ==, 4);
    in = ok(M64, "40 88 e0", 3, X86_OP_MOV); /* mov al, spl */
    g_assert_false(in.flags & X86_INSN_HIGH_BYTE);
    g_assert_cmpuint(in.rex, ==, 0x40);
    in = ok(M64, "44 88 e0", 3, X86_OP_MOV); /* mov al, r12b */
    g_assert_cmpuint(in.reg, ==, 12);
    in = ok(M64, "40 b6 01", 3, X86_OP_MOV); /* mov sil, 1 */
    g_assert_cmpuint(in.rm, ==, 6);
    g_assert_cmpuint(in.mod, ==, 3);
    g_assert_false(in.flags & X86_INSN_HIGH_BYTE);
    in = ok(M64, "0f b6 c4", 3, X86_OP_MOVZX); /* movzx eax, ah */
    g_assert_true(in.flags & X86_INSN_HIGH_BYTE);
    g_assert_cmpuint(in.opsize, ==, 4);
}

static void test_operand_sizes_64(void)
{
    static const struct {
        const char *hex;
        int len;
        unsigned op, opsize;
    } c[] = {
        {"50", 1, X86_OP_PUSH, 8},
        {"66 50", 2, X86_OP_PUSH, 2},
        {"41 5f", 2, X86_OP_POP, 8},
        {"ff 30", 2, X86_OP_PUSH, 8},
        {"8f 00", 2, X86_OP_POP, 8},
        {"9c", 1, X86_OP_PUSHF, 8},
        {"c3", 1, X86_OP_RET, 8},
        {"ff d0", 2, X86_OP_CALL, 8},
        {"ff 20", 2, X86_OP_JMP, 8},
        {"e8 00 00 00 00", 5, X86_OP_CALL, 8},
        {"66 e8 00 00", 4, X86_OP_CALL, 2},
        {"0f 22 d8", 3, X86_OP_MOV_CR, 8},
        {"66 0f 20 c0", 4, X86_OP_MOV_CR, 8},
        {"0f 01 10", 3, X86_OP_LGDT, 8},
        {"66 0f 01 18", 4, X86_OP_LIDT, 8},
        {"c9", 1, X86_OP_LEAVE, 8},
        {"0f a0", 2, X86_OP_PUSH_SEG, 8},
        {"48 e5 10", 3, X86_OP_IN, 4},
        {"66 ed", 2, X86_OP_IN, 2},
        {"48 cf", 2, X86_OP_IRET, 8},
        {"cf", 1, X86_OP_IRET, 4},
        {"48 63 c1", 3, X86_OP_MOVSXD, 8},
        {"48 98", 2, X86_OP_CBW, 8},
        {"48 0f c8", 3, X86_OP_BSWAP, 8},
        {"48 0f 07", 3, X86_OP_SYSRET, 8},
        {"e3 00", 2, X86_OP_JCXZ, 8},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(c); i++) {
        struct x86_insn in = ok(M64, c[i].hex, c[i].len, c[i].op);
        g_assert_cmpuint(in.opsize, ==, c[i].opsize);
    }
    struct x86_insn in = ok(M32, "0f 20 c0", 3, X86_OP_MOV_CR);
    g_assert_cmpuint(in.opsize, ==, 4);
    in = ok(M32, "50", 1, X86_OP_PUSH);
    g_assert_cmpuint(in.opsize, ==, 4);
    in = ok(M16, "50", 1, X86_OP_PUSH);
    g_assert_cmpuint(in.opsize, ==, 2);
    in = ok(M64, "41 50", 2, X86_OP_PUSH);
    g_assert_cmpuint(in.rm, ==, 8);
    g_assert_false(in.flags & X86_INSN_MODRM);
}

static void test_immediates(void)
{
    struct x86_insn in = ok(M32, "83 c0 ff", 3, X86_OP_ADD); /* imm8 sign-extended */
    g_assert_cmpuint(in.imm, ==, UINT64_MAX);
    g_assert_cmpuint(in.form, ==, X86_FORM_E_I);
    in = ok(M64, "6a 80", 2, X86_OP_PUSH);
    g_assert_cmpuint(in.imm, ==, (uint64_t)-128);
    in = ok(M64, "68 00 00 00 80", 5, X86_OP_PUSH);
    g_assert_cmpuint(in.imm, ==, 0xffffffff80000000ull);
    in = ok(M32, "68 00 00 00 80", 5, X86_OP_PUSH);
    g_assert_cmpuint(in.imm, ==, 0x80000000u);
    in = ok(M64, "48 b8 ef cd ab 89 67 45 23 01", 10, X86_OP_MOV);
    g_assert_cmpuint(in.imm, ==, 0x0123456789abcdefull);
    g_assert_cmpuint(in.imm_size, ==, 8);
    g_assert_cmpuint(in.rm, ==, 0);
    g_assert_cmpuint(in.mod, ==, 3);
    in = ok(M64, "66 48 bf 01 00 00 00 00 00 00 80", 11, X86_OP_MOV); /* REX with 66: still imm64 */
    g_assert_cmpuint(in.imm, ==, 0x8000000000000001ull);
    g_assert_cmpuint(in.rm, ==, 7);
    in = ok(M64, "41 b8 01 00 00 00", 6, X86_OP_MOV);
    g_assert_cmpuint(in.rm, ==, 8);
    in = ok(M64, "48 c7 c0 ff ff ff ff", 7, X86_OP_MOV); /* imm32 sign-extended to 64 */
    g_assert_cmpuint(in.imm, ==, UINT64_MAX);
    in = ok(M16, "b8 34 12", 3, X86_OP_MOV);
    g_assert_cmpuint(in.imm, ==, 0x1234);
    in = ok(M32, "c8 10 00 01", 4, X86_OP_ENTER);
    g_assert_cmpuint(in.imm, ==, 16);
    g_assert_cmpuint(in.imm2, ==, 1);
    in = ok(M32, "ea 78 56 34 12 08 00", 7, X86_OP_JMPF);
    g_assert_cmpuint(in.imm, ==, 0x12345678);
    g_assert_cmpuint(in.imm2, ==, 8);
    g_assert_cmpuint(in.form, ==, X86_FORM_FAR);
    in = ok(M16, "ea 34 12 00 f0", 5, X86_OP_JMPF);
    g_assert_cmpuint(in.imm, ==, 0x1234);
    g_assert_cmpuint(in.imm2, ==, 0xf000);
    in = ok(M16, "66 9a 78 56 34 12 10 00", 8, X86_OP_CALLF);
    g_assert_cmpuint(in.imm, ==, 0x12345678);
    in = ok(M64, "c2 08 00", 3, X86_OP_RET);
    g_assert_cmpuint(in.imm, ==, 8);
    in = ok(M64, "74 fe", 2, X86_OP_JCC);
    g_assert_cmpuint(in.imm, ==, (uint64_t)-2);
    g_assert_cmpuint(in.opcode & 15, ==, 4);
    in = ok(M64, "0f 85 00 01 00 00", 6, X86_OP_JCC);
    g_assert_cmpuint(in.imm, ==, 0x100);
    in = ok(M16, "0f 84 fe ff", 4, X86_OP_JCC);
    g_assert_cmpuint(in.imm, ==, (uint64_t)-2);
    in = ok(M32, "f6 00 12", 3, X86_OP_TEST);
    g_assert_cmpuint(in.imm, ==, 0x12);
    in = ok(M32, "f6 10", 2, X86_OP_NOT);
    in = ok(M32, "f7 c8 78 56 34 12", 6, X86_OP_TEST); /* /1 alias of TEST */
    in = ok(M32, "66 f7 c0 34 12", 5, X86_OP_TEST);
    g_assert_cmpuint(in.imm, ==, 0x1234);
    in = ok(M32, "69 c0 10 00 00 00", 6, X86_OP_IMUL);
    g_assert_cmpuint(in.form, ==, X86_FORM_G_E_I);
    in = ok(M32, "0f a4 c2 05", 4, X86_OP_SHLD);
    g_assert_cmpuint(in.imm, ==, 5);
    in = ok(M32, "c1 e0 04", 3, X86_OP_SHL);
    in = ok(M32, "d1 f8", 2, X86_OP_SAR);
    g_assert_cmpuint(in.form, ==, X86_FORM_E_1);
    in = ok(M64, "0f ba 68 08 05", 5, X86_OP_BTS);
    in = ok(M64, "04 7f", 2, X86_OP_ADD); /* accumulator form presented as rm = 0 */
    g_assert_cmpuint(in.mod, ==, 3);
    g_assert_cmpuint(in.rm, ==, 0);
    g_assert_cmpuint(in.opsize, ==, 1);
    in = ok(M64, "48 3d 00 00 00 80", 6, X86_OP_CMP);
    g_assert_cmpuint(in.imm, ==, 0xffffffff80000000ull);
    in = ok(M64, "c7 f8 10 00 00 00", 6, X86_OP_XBEGIN);
    in = ok(M64, "c6 f8 01", 3, X86_OP_XABORT);
}

static void test_moffs(void)
{
    struct x86_insn in = ok(M64, "a1 88 77 66 55 44 33 22 11", 9, X86_OP_MOV);
    check_mem(&in, NOREG, NOREG, 0, 0x1122334455667788ll);
    g_assert_cmpuint(in.form, ==, X86_FORM_G_E);
    g_assert_cmpuint(in.reg, ==, 0);
    g_assert_cmpuint(in.disp_size, ==, 8);
    in = ok(M64, "67 a3 44 33 22 11", 6, X86_OP_MOV);
    g_assert_cmpuint(in.form, ==, X86_FORM_E_G);
    check_mem(&in, NOREG, NOREG, 0, 0x11223344);
    in = ok(M64, "48 a1 00 00 00 00 00 00 00 80", 10, X86_OP_MOV);
    g_assert_cmpuint(in.opsize, ==, 8);
    in = ok(M32, "a0 00 00 00 80", 5, X86_OP_MOV);
    g_assert_cmpuint(in.disp, ==, 0x80000000ll);
    g_assert_cmpuint(in.opsize, ==, 1);
    in = ok(M16, "a1 34 12", 3, X86_OP_MOV);
    g_assert_cmpuint(in.disp, ==, 0x1234);
    in = ok(M16, "64 a1 34 12", 4, X86_OP_MOV);
    g_assert_cmpuint(in.seg, ==, X86_SEG_FS);
}

static void test_invalid(void)
{
    static const char *const i64[] = {"06", "07",    "0e",    "16",       "17",
                                      "1e", "1f",    "27",    "2f",       "37",
                                      "3f", "60",    "61",    "82 c0 01", "9a 00 00 00 00 00 00",
                                      "ce", "d4 0a", "d5 0a", "d6",       "ea 00 00 00 00 00 00"};
    for (size_t i = 0; i < G_N_ELEMENTS(i64); i++) {
        fails(M64, i64[i], X86_DECODE_UD);
    }
    ok(M32, "0f 01 f9", 3, X86_OP_RDTSCP);
    fails(M32, "0f 01 f8", X86_DECODE_UD); /* SWAPGS is 64-bit only */
    ok(M64, "0f 01 f8", 3, X86_OP_SWAPGS);
    ok(M32, "d4 0a", 2, X86_OP_AAM);
    ok(M32, "40", 1, X86_OP_INC);
    struct x86_insn sr = ok(M32, "1e", 1, X86_OP_PUSH_SEG);
    g_assert_cmpuint(sr.reg, ==, X86_SEG_DS);
    sr = ok(M64, "0f a9", 2, X86_OP_POP_SEG);
    g_assert_cmpuint(sr.reg, ==, X86_SEG_GS);
    g_assert_cmpuint(sr.opsize, ==, 8);
    sr = ok(M32, "64 f3 a4", 3, X86_OP_MOVS); /* the override applies to the string source */
    g_assert_cmpuint(sr.seg, ==, X86_SEG_FS);
    struct x86_insn in = ok(M64, "40 90", 2, X86_OP_NOP); /* 40 is REX in 64-bit mode */
    in = ok(M64, "41 90", 2, X86_OP_XCHG);
    g_assert_cmpuint(in.rm, ==, 8);
    ok(M64, "f3 90", 2, X86_OP_PAUSE);
    /* LOCK */
    fails(M64, "f0 01 c0", X86_DECODE_UD);
    fails(M64, "f0 90", X86_DECODE_UD);
    fails(M64, "f0 39 00", X86_DECODE_UD);
    fails(M64, "f0 80 38 00", X86_DECODE_UD);
    fails(M64, "f0 ff 30", X86_DECODE_UD);
    fails(M64, "f0 0f a3 00", X86_DECODE_UD);
    fails(M64, "f0 8b 00", X86_DECODE_UD);
    ok(M64, "f0 87 00", 3, X86_OP_XCHG);
    ok(M64, "f0 ff 00", 3, X86_OP_INC);
    ok(M64, "f0 48 0f b1 0a", 5, X86_OP_CMPXCHG);
    ok(M64, "f0 0f ba 28 01", 5, X86_OP_BTS);
    ok(M64, "f0 f7 18", 3, X86_OP_NEG);
    /* Registers, memory-only and reserved forms. */
    fails(M32, "8d c0", X86_DECODE_UD);
    fails(M64, "ff d8", X86_DECODE_UD);
    fails(M64, "ff 38", X86_DECODE_UD);
    fails(M64, "fe 10", X86_DECODE_UD);
    fails(M64, "8f 08", X86_DECODE_UD);
    fails(M64, "c6 08 00", X86_DECODE_UD);
    fails(M64, "c6 f9 00", X86_DECODE_UD);
    fails(M64, "8e c8", X86_DECODE_UD); /* mov cs, ax */
    fails(M64, "8c f0", X86_DECODE_UD);
    in = ok(M64, "44 8e d8", 3, X86_OP_MOV_SEG); /* REX.R does not extend Sreg */
    g_assert_cmpuint(in.reg, ==, X86_SEG_DS);
    fails(M64, "0f 20 c8", X86_DECODE_UD);         /* CR1 */
    in = ok(M64, "44 0f 20 c0", 4, X86_OP_MOV_CR); /* CR8 */
    g_assert_cmpuint(in.reg, ==, 8);
    fails(M64, "44 0f 21 c0", X86_DECODE_UD);
    in = ok(M64, "0f 22 18", 3, X86_OP_MOV_CR); /* mod is ignored */
    g_assert_cmpuint(in.mod, ==, 3);
    g_assert_cmpuint(in.reg, ==, 3);
    g_assert_false(in.flags & X86_INSN_MEM);
    fails(M64, "0f 0b", X86_DECODE_UD);
    fails(M64, "0f 0f c0 b4", X86_DECODE_UD); /* 3DNow! */
    fails(M64, "0f ff c0", X86_DECODE_UD);
    fails(M64, "0f c7 c8", X86_DECODE_UD);
    fails(M64, "d9 08", X86_DECODE_UD);
    fails(M32, "dd 28", X86_DECODE_UD);
    fails(M64, "0f b8 c0", X86_DECODE_UD);
}

static void test_system_and_x87(void)
{
    struct x86_insn in = ok(M64, "0f c7 0e", 3, X86_OP_CMPXCHG8B);
    g_assert_cmpuint(in.opsize, ==, 4);
    in = ok(M64, "48 0f c7 0e", 4, X86_OP_CMPXCHG8B); /* CMPXCHG16B */
    g_assert_cmpuint(in.opsize, ==, 8);
    ok(M64, "0f 01 38", 3, X86_OP_INVLPG);
    ok(M64, "0f 01 ca", 3, X86_OP_CLAC);
    in = ok(M64, "0f 01 e0", 3, X86_OP_SMSW);
    g_assert_cmpuint(in.mod, ==, 3);
    ok(M16, "0f 01 16 00 10", 5, X86_OP_LGDT);
    ok(M64, "0f 00 d8", 3, X86_OP_LTR);
    ok(M64, "0f 03 c0", 3, X86_OP_LSL);
    ok(M64, "0f 05", 2, X86_OP_SYSCALL);
    ok(M64, "0f 30", 2, X86_OP_WRMSR);
    ok(M64, "0f 32", 2, X86_OP_RDMSR);
    ok(M64, "0f 31", 2, X86_OP_RDTSC);
    ok(M64, "0f a2", 2, X86_OP_CPUID);
    ok(M32, "0f 34", 2, X86_OP_SYSENTER);
    ok(M64, "0f ae e8", 3, X86_OP_LFENCE);
    ok(M64, "0f ae f0", 3, X86_OP_MFENCE);
    in = ok(M64, "48 0f ae 00", 4, X86_OP_FXSAVE);
    g_assert_cmpuint(in.opsize, ==, 8);
    ok(M64, "0f ae 38", 3, X86_OP_CLFLUSH);
    ok(M64, "f3 48 0f ae c0", 5, X86_OP_RDFSBASE);
    fails(M32, "f3 0f ae c0", X86_DECODE_UD);
    ok(M64, "0f 18 08", 3, X86_OP_NOP); /* PREFETCHT0 */
    ok(M64, "0f 0d 08", 3, X86_OP_NOP); /* PREFETCHW */
    ok(M64, "0f 1f 44 00 00", 5, X86_OP_NOP);
    ok(M64, "66 2e 0f 1f 84 00 00 00 00 00", 10, X86_OP_NOP);
    ok(M64, "f3 0f 1e fa", 4, X86_OP_NOP); /* ENDBR64 */
    in = ok(M64, "d9 e8", 2, X86_OP_X87);  /* FLD1 */
    g_assert_cmpuint(in.mod, ==, 3);
    in = ok(M64, "dd 44 24 08", 4, X86_OP_X87);
    check_mem(&in, 4, NOREG, 0, 8);
    ok(M16, "df 06 00 10", 4, X86_OP_X87);
    ok(M64, "9b", 1, X86_OP_WAIT);
    ok(M64, "db e3", 2, X86_OP_X87); /* FNINIT */
}

static void test_sse_and_vex(void)
{
    struct x86_insn in = ok(M64, "66 0f 6f c1", 4, X86_OP_SSE); /* movdqa */
    g_assert_cmpuint(in.mandatory, ==, X86_MP_66);
    g_assert_cmpuint(in.map, ==, X86_MAP_0F);
    g_assert_cmpuint(in.opcode, ==, 0x6f);
    g_assert_cmpuint(in.opsize, ==, 4);
    in = ok(M64, "f3 0f 6f 00", 4, X86_OP_SSE);
    g_assert_cmpuint(in.mandatory, ==, X86_MP_F3);
    fails(M64, "f2 0f 6f 00", X86_DECODE_UD);
    in = ok(M64, "66 48 0f 6e c0", 5, X86_OP_SSE); /* movq xmm0, rax */
    g_assert_cmpuint(in.opsize, ==, 8);
    in = ok(M64, "0f 10 05 00 00 00 00", 7, X86_OP_SSE);
    g_assert_true(in.flags & X86_INSN_RIP_REL);
    ok(M64, "66 0f 73 fa 04", 5, X86_OP_SSE);    /* pslldq */
    fails(M64, "0f 73 fa 04", X86_DECODE_UD);    /* no MMX form of pslldq */
    fails(M64, "66 0f 73 38 04", X86_DECODE_UD); /* shift-by-immediate takes a register */
    ok(M64, "0f d7 c1", 3, X86_OP_SSE);          /* pmovmskb */
    fails(M64, "66 0f d7 00", X86_DECODE_UD);
    ok(M64, "f2 0f f0 00", 4, X86_OP_SSE);    /* lddqu */
    ok(M64, "66 0f c2 c1 00", 5, X86_OP_SSE); /* cmppd imm8 */
    ok(M64, "0f 77", 2, X86_OP_EMMS);
    ok(M64, "0f c3 00", 3, X86_OP_MOVNTI);
    fails(M64, "0f c3 c0", X86_DECODE_UD);
    ok(M64, "f3 48 0f b8 c1", 5, X86_OP_POPCNT);
    in = ok(M64, "f3 48 0f bc c1", 5, X86_OP_TZCNT);
    g_assert_cmpuint(in.opsize, ==, 8);
    in = ok(M64, "66 f3 0f bd c1", 5, X86_OP_LZCNT);
    g_assert_cmpuint(in.opsize, ==, 2);
    ok(M64, "48 0f bc c1", 4, X86_OP_BSF);
    in = ok(M64, "66 0f 3a 0f c1 08", 6, X86_OP_SSE); /* palignr */
    g_assert_cmpuint(in.map, ==, X86_MAP_0F3A);
    g_assert_cmpuint(in.imm, ==, 8);
    in = ok(M64, "66 0f 38 00 c1", 5, X86_OP_SSE); /* pshufb */
    g_assert_cmpuint(in.map, ==, X86_MAP_0F38);
    fails(M64, "f3 0f 38 00 c1", X86_DECODE_UD);
    ok(M64, "f2 48 0f 38 f1 c1", 6, X86_OP_CRC32);
    ok(M64, "0f 38 f0 00", 4, X86_OP_MOVBE);
    fails(M64, "0f 38 f0 c0", X86_DECODE_UD);
    ok(M64, "66 0f 38 f6 c1", 5, X86_OP_ADCX);
    /* VEX/EVEX: length only, marked for #UD. */
    in = ok(M64, "c5 f8 77", 3, X86_OP_AVX);
    g_assert_true(in.prefixes & X86_PFX_VEX);
    ok(M64, "c4 e2 79 18 00", 5, X86_OP_AVX);
    ok(M64, "c4 e3 79 04 c0 01", 6, X86_OP_AVX);
    ok(M64, "c5 fd 70 c1 1b", 5, X86_OP_AVX);
    ok(M64, "c5 f9 6f 05 00 00 00 00", 8, X86_OP_AVX);
    in = ok(M64, "62 f1 7c 48 10 40 01", 7, X86_OP_AVX);
    g_assert_cmpuint(in.map, ==, 1);
    ok(M32, "c5 f8 77", 3, X86_OP_AVX);
    ok(M32, "c5 00", 2, X86_OP_LDS);
    ok(M32, "c4 06", 2, X86_OP_LES);
    ok(M32, "62 00", 2, X86_OP_BOUND);
    ok(M32, "62 f1 7c 48 10 00", 6, X86_OP_AVX);
    fails(M64, "66 c5 f8 77", X86_DECODE_UD);
    fails(M64, "48 c5 f8 77", X86_DECODE_UD);
    fails(M64, "c4 e0 79 18 00", X86_DECODE_UD); /* VEX map 0 */
}

static void test_limits(void)
{
    static const char *const long_insn = "2e 67 48 81 84 88 78 56 34 12 ef be ad de";
    uint8_t buf[16];
    size_t n = parse_hex(long_insn, buf, sizeof(buf));
    struct x86_insn in = ok(M64, long_insn, (int)n, X86_OP_ADD);
    check_mem(&in, 0, 1, 2, 0x12345678);
    g_assert_cmpuint(in.imm, ==, 0xffffffffdeadbeefull);
    g_assert_cmpuint(in.addrsize, ==, 4);
    for (size_t k = 0; k < n; k++) {
        uint8_t *p = g_memdup2(buf, k ? k : 1);
        g_assert_cmpint(x86_decode(p, k, M64, &in), ==, X86_DECODE_NEED_MORE);
        g_free(p);
    }
    /* 15 bytes is the limit: 14 prefixes + NOP decodes, one more byte does not. */
    char hex[128] = "";
    for (int i = 0; i < 14; i++) {
        g_strlcat(hex, "66 ", sizeof(hex));
    }
    char nop15[128], nop16[128], add16[128];
    g_snprintf(nop15, sizeof(nop15), "%s90", hex);
    g_snprintf(nop16, sizeof(nop16), "66 %s90", hex);
    g_snprintf(add16, sizeof(add16), "%s01 c0", hex);
    ok(M32, nop15, 15, X86_OP_NOP);
    fails(M32, nop16, X86_DECODE_TOO_LONG);
    fails(M32, add16, X86_DECODE_TOO_LONG);
    fails(M64, "f0 f0 f0 f0 f0 f0 f0 f0 f0 f0 f0 f0 f0 f0 f0 f0 f0 f0 f0 f0", X86_DECODE_TOO_LONG);
    fails(M64, "26 2e 36 3e 64 65 66 67 f2 f3 26 2e", X86_DECODE_NEED_MORE);
    fails(M64, "", X86_DECODE_NEED_MORE);
    ok(M64, "2e 2e 67 48 81 84 88 78 56 34 12 ef be ad de", 15, X86_OP_ADD);
    fails(M64, "2e 2e 2e 67 48 81 84 88 78 56 34 12 ef be ad de", X86_DECODE_TOO_LONG);
    fails(M64, "2e 2e 2e 67 48 81 84 88 78 56", X86_DECODE_NEED_MORE);
}

/* xorshift64*: deterministic test data. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* For arbitrary bytes: a length never depends on bytes past it, every shorter prefix of an instruction is
 * NEED_MORE, and errors stay errors when fewer bytes are available. */
static void test_random_consistency(void)
{
    static const uint8_t pfx[] = {0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x2e, 0x64,
                                  0x48, 0x41, 0x0f, 0x0f, 0xc4, 0xc5, 0x62};
    uint64_t s = 0x9e3779b97f4a7c15ull;
    unsigned counts[4] = {0};
    for (int iter = 0; iter < 60000; iter++) {
        uint8_t buf[16];
        for (int i = 0; i < 16; i++) {
            uint64_t v = rng_next(&s);
            buf[i] = (i < 3 && (v & 0x300) == 0) ? pfx[(v >> 16) % sizeof(pfx)] : (uint8_t)v;
        }
        enum x86_mode mode = (enum x86_mode)(iter % 3);
        struct x86_insn in, in2;
        int r = x86_decode(buf, sizeof(buf), mode, &in);
        g_assert_cmpint(r, !=, X86_DECODE_NEED_MORE);
        g_assert_true(r == X86_DECODE_UD || r == X86_DECODE_TOO_LONG || (r >= 1 && r <= 15));
        counts[r > 0 ? 0 : -r]++;
        if (r > 0) {
            g_assert_cmpuint(in.len, ==, (unsigned)r);
            g_assert_true(in.opsize == 1 || in.opsize == 2 || in.opsize == 4 || in.opsize == 8);
            g_assert_true(in.addrsize == 2 || in.addrsize == 4 || in.addrsize == 8);
            g_assert_cmpuint(in.op, <, X86_OP_COUNT);
            g_assert_cmpuint(in.op, !=, X86_OP_INVALID);
        }
        int first = r > 0 ? r : 16;
        for (int k = 0; k < first; k++) {
            uint8_t *p = g_memdup2(buf, k ? (size_t)k : 1);
            int r2 = x86_decode(p, (size_t)k, mode, &in2);
            g_free(p);
            if (r > 0) {
                g_assert_cmpint(r2, ==, X86_DECODE_NEED_MORE);
            } else {
                g_assert_true(r2 == X86_DECODE_NEED_MORE || r2 == r);
            }
        }
        if (r > 0) {
            uint8_t *p = g_memdup2(buf, (size_t)r);
            g_assert_cmpint(x86_decode(p, (size_t)r, mode, &in2), ==, r);
            g_free(p);
            g_assert_cmpmem(&in, sizeof(in), &in2, sizeof(in2));
        }
    }
    g_test_message("random: %u decoded, %u #UD, %u too long", counts[0], counts[-X86_DECODE_UD],
                   counts[-X86_DECODE_TOO_LONG]);
    g_assert_cmpuint(counts[0], >, 30000);
}

/* ---- differential lengths against GNU objdump.
 * Every case sits at the start of its own 32-byte slot, padded with NOPs: whatever objdump makes of the bytes
 * after the first instruction ends within 30 bytes, so each slot starts in sync. */
#define SLOT 32

struct case_set {
    GByteArray *blob;
};

static void add_case(struct case_set *cs, const uint8_t *bytes, size_t n)
{
    uint8_t slot[SLOT];
    memset(slot, 0x90, sizeof(slot));
    memcpy(slot, bytes, MIN(n, (size_t)16));
    g_byte_array_append(cs->blob, slot, SLOT);
}

static void add_composed(struct case_set *cs, const char *prefix, const char *opcode, const uint8_t *modrm,
                         size_t modrm_len)
{
    static const uint8_t tail[] = {0x7f, 0x80, 0x01, 0xff, 0x10, 0x20, 0x30, 0x40,
                                   0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0};
    uint8_t b[48];
    size_t n = parse_hex(prefix, b, sizeof(b));
    n += parse_hex(opcode, b + n, sizeof(b) - n);
    memcpy(b + n, modrm, modrm_len);
    n += modrm_len;
    memcpy(b + n, tail, sizeof(tail));
    add_case(cs, b, MIN(n + sizeof(tail), (size_t)16));
}

static const uint8_t modrm_full[][2] = {
    {0x00}, {0x05}, {0x04, 0x24}, {0x04, 0x25}, {0x44, 0x8d}, {0x84, 0x4c}, {0x45}, {0x85},
    {0x06}, {0x46}, {0x86},       {0x0c, 0x65}, {0x14, 0xe5}, {0xc0},       {0xc9}, {0xd2},
    {0xdb}, {0xe4}, {0xed},       {0xf6},       {0xff},       {0x38},       {0xf8}, {0xe8},
};
static const uint8_t modrm_small[][2] = {{0x05}, {0x44, 0x8d}, {0xc0}, {0x86}};

static size_t modrm_len(const uint8_t *m)
{
    return (m[0] & 0xc7) == 0x04 || (m[0] & 0xc7) == 0x44 || (m[0] & 0xc7) == 0x84 ? 2 : 1;
}

static void build_cases(struct case_set *cs, enum x86_mode mode)
{
    static const char *const full_pfx[] = {""};
    static const char *const small_pfx[] = {"66", "67", "f3", "f2", "f0", "66 67", "f3 66", "2e", "64"};
    static const char *const rex_pfx[] = {"48", "41", "44", "4c", "40", "66 48", "48 66", "f0 48"};
    static const char *const esc[] = {"", "0f "};
    char op[16];

    for (int e = 0; e < 2; e++) {
        for (int o = 0; o < 256; o++) {
            g_snprintf(op, sizeof(op), "%s%02x", esc[e], o);
            for (size_t p = 0; p < G_N_ELEMENTS(full_pfx); p++) {
                for (size_t m = 0; m < G_N_ELEMENTS(modrm_full); m++) {
                    add_composed(cs, full_pfx[p], op, modrm_full[m], modrm_len(modrm_full[m]));
                }
            }
            for (size_t p = 0; p < G_N_ELEMENTS(small_pfx); p++) {
                for (size_t m = 0; m < G_N_ELEMENTS(modrm_small); m++) {
                    add_composed(cs, small_pfx[p], op, modrm_small[m], modrm_len(modrm_small[m]));
                }
            }
            for (size_t p = 0; mode == X86_MODE_64 && p < G_N_ELEMENTS(rex_pfx); p++) {
                for (size_t m = 0; m < G_N_ELEMENTS(modrm_small); m++) {
                    add_composed(cs, rex_pfx[p], op, modrm_small[m], modrm_len(modrm_small[m]));
                }
            }
        }
    }
    static const char *const map3_pfx[] = {"", "66", "f2", "f3"};
    for (int e = 0; e < 2; e++) {
        for (int o = 0; o < 256; o++) {
            g_snprintf(op, sizeof(op), "0f %s %02x", e ? "3a" : "38", o);
            for (size_t p = 0; p < G_N_ELEMENTS(map3_pfx); p++) {
                for (size_t m = 0; m < 4; m++) {
                    add_composed(cs, map3_pfx[p], op, modrm_small[m], modrm_len(modrm_small[m]));
                }
            }
        }
    }
    for (int o = 0xd8; o <= 0xdf; o++) {
        for (int m = 0; m < 256; m++) {
            uint8_t mb[2] = {(uint8_t)m, 0x24};
            g_snprintf(op, sizeof(op), "%02x", o);
            add_composed(cs, "", op, mb, modrm_len(mb));
        }
    }
    /* Random bytes, a third of them behind random prefixes and escapes. */
    static const uint8_t pfx[] = {0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64,
                                  0x65, 0x0f, 0x0f, 0x40, 0x48, 0x4c, 0x41, 0xc4, 0xc5, 0x62};
    uint64_t s = 0x0123456789abcdefull + (uint64_t)mode;
    for (int i = 0; i < 20000; i++) {
        uint8_t b[16];
        int npfx = (i % 3 == 0) ? (int)(rng_next(&s) % 5) : 0;
        for (int k = 0; k < 16; k++) {
            uint64_t v = rng_next(&s);
            b[k] = k < npfx ? pfx[(v >> 20) % sizeof(pfx)] : (uint8_t)(v >> 24);
        }
        add_case(cs, b, sizeof(b));
    }
}

/* objdump prints prefixes it could not attach (a REX followed by a legacy prefix, with the prefixes before
 * it) as an instruction of their own, e.g. "data16 rex.W"; such lines are merged with the instruction that
 * follows. */
static gboolean is_orphan_prefix(const char *text)
{
    static const char *const names[] = {"data16", "data32", "addr16", "addr32", "lock", "repz", "repnz",
                                        "rep",    "es",     "cs",     "ss",     "ds",   "fs",   "gs"};
    g_auto(GStrv) words = g_strsplit(text, " ", -1);
    gboolean all = words[0] != NULL;
    for (size_t w = 0; words[w] && all; w++) {
        gboolean known = g_str_has_prefix(words[w], "rex");
        for (size_t i = 0; i < G_N_ELEMENTS(names) && !known; i++) {
            known = strcmp(words[w], names[i]) == 0;
        }
        all = known;
    }
    return all;
}

struct objdump_job {
    enum x86_mode mode;
    const char *objdump;
    GString *log;
    unsigned cases, same, mismatch, desync;
};

static const char *const objdump_arch[] = {"i8086", "i386", "i386:x86-64"};

/* Runs in its own thread, one per mode, so the three objdump runs overlap. */
static gpointer objdump_compare(gpointer data)
{
    struct objdump_job *job = data;
    enum x86_mode mode = job->mode;
    const char *const *arch = objdump_arch;
    const char *objdump = job->objdump;

    struct case_set cs = {g_byte_array_new()};
    build_cases(&cs, mode);
    size_t nslots = cs.blob->len / SLOT;

    GError *err = NULL;
    gchar *path = NULL;
    int fd = g_file_open_tmp("emu-decode-XXXXXX.bin", &path, &err);
    g_assert_no_error(err);
    close(fd);
    g_file_set_contents(path, (const gchar *)cs.blob->data, cs.blob->len, &err);
    g_assert_no_error(err);

    const gchar *argv[] = {objdump,           "-D", "-z", "-b", "binary", "-m", arch[mode],
                           "--insn-width=16", path, NULL};
    gchar *out = NULL;
    gint status = 0;
    g_spawn_sync(NULL, (gchar **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out, NULL, &status,
                 &err);
    g_assert_no_error(err);
    g_assert_true(g_spawn_check_wait_status(status, NULL));
    g_unlink(path);

    /* offset -> (length, text) of each instruction objdump reports. */
    uint8_t *olen = g_malloc0(cs.blob->len + 16);
    const char **otext = g_malloc0((cs.blob->len + 16) * sizeof(*otext));
    for (char *line = out, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) {
            *next++ = 0;
        }
        char *colon = strstr(line, ":\t");
        if (!colon) {
            continue;
        }
        char *endp;
        unsigned long addr = strtoul(line, &endp, 16);
        if (endp != colon || addr >= cs.blob->len) {
            continue;
        }
        char *bytes = colon + 2, *tab = strchr(bytes, '\t');
        if (tab) {
            *tab = 0;
        }
        unsigned n = 0;
        for (char *p = bytes; *p; p++) {
            n += g_ascii_isxdigit(p[0]) && g_ascii_isxdigit(p[1]) && (p == bytes || p[-1] == ' ');
        }
        olen[addr] = (uint8_t)MIN(n, 255u);
        otext[addr] = tab ? g_strstrip(tab + 1) : "";
    }

    /* EMU_DECODE_DUMP=file lists the cases only one side decodes, for review. */
    FILE *dump = g_getenv("EMU_DECODE_DUMP") ? fopen(g_getenv("EMU_DECODE_DUMP"), "a") : NULL;
    unsigned same = 0, wait_merged = 0, orphan_split = 0, mismatch = 0, objdump_bad = 0, ours_ud = 0,
             ours_long = 0, desync = 0;
    for (size_t i = 0; i < nslots; i++) {
        const uint8_t *b = cs.blob->data + i * SLOT;
        size_t off = i * SLOT;
        unsigned want = 0, orphan_len = 0;
        gboolean orphan_sizes = FALSE;
        const char *text = NULL;
        while (off < (i + 1) * SLOT && olen[off] && otext[off] && is_orphan_prefix(otext[off])) {
            orphan_sizes |= strstr(otext[off], "data") || strstr(otext[off], "addr");
            orphan_len += olen[off];
            off += olen[off];
        }
        want = orphan_len;
        if (off < (i + 1) * SLOT && olen[off]) {
            want += olen[off];
            text = otext[off];
        }
        struct x86_insn in;
        int r = x86_decode(b, SLOT, mode, &in);
        if (!text) {
            desync++;
            continue;
        }
        if (strstr(text, "(bad)")) {
            objdump_bad++;
            if (dump && r > 0) {
                fprintf(dump, "BAD-OURS-%d %02x %02x %02x %02x %02x %02x | %s\n", r, b[0], b[1], b[2], b[3],
                        b[4], b[5], x86_op_name(in.op));
            }
            continue;
        }
        if (r == X86_DECODE_UD) {
            ours_ud++;
            if (dump) {
                fprintf(dump, "UD %02x %02x %02x %02x %02x %02x | %s\n", b[0], b[1], b[2], b[3], b[4], b[5],
                        text);
            }
            continue;
        }
        if (r == X86_DECODE_TOO_LONG) {
            ours_long++;
            continue;
        }
        if ((unsigned)r == want) {
            same++;
            continue;
        }
        /* Whitelisted: objdump shows WAIT (9B) and the x87 instruction after it as one ("fstcw" for
         * "fwait; fnstcw"); architecturally 9B is an instruction of its own. */
        struct x86_insn next;
        if (r > 0 && in.op == X86_OP_WAIT && x86_decode(b + r, SLOT - (size_t)r, mode, &next) > 0 &&
            next.op == X86_OP_X87 && (unsigned)r + next.len == want) {
            wait_merged++;
            continue;
        }
        /* Whitelisted: after splitting off orphan prefixes objdump decodes the rest without them, although a
         * 66/67 before an ignored REX still sets the operand/address size (e.g. "66 48 26 05 iw": objdump
         * "data16 rex.W" + "es add $imm32"). Accepted only if that is exactly the difference. */
        struct x86_insn rest;
        if (r > 0 && orphan_sizes && x86_decode(b + orphan_len, SLOT - orphan_len, mode, &rest) > 0 &&
            orphan_len + rest.len == want) {
            orphan_split++;
            continue;
        }
        mismatch++;
        if (mismatch <= 40) {
            g_autofree gchar *hex =
                g_strdup_printf("%02x %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x", b[0], b[1],
                                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]);
            g_string_append_printf(job->log, "mode %s: %s: ours %d (%s), objdump %u (%s)\n", arch[mode], hex,
                                   r, r > 0 ? x86_op_name(in.op) : "-", want, text);
        }
    }
    g_string_append_printf(
        job->log,
        "objdump %s: %zu cases, %u same length, %u mismatches, whitelisted: %u "
        "WAIT+x87 merged, %u 66/67 dropped with an orphan REX; skipped: %u objdump (bad), %u ours #UD, "
        "%u ours too long; %u desync\n",
        arch[mode], nslots, same, mismatch, wait_merged, orphan_split, objdump_bad, ours_ud, ours_long,
        desync);
    if (dump) {
        fclose(dump);
    }
    job->cases = (unsigned)nslots;
    job->same = same;
    job->mismatch = mismatch;
    job->desync = desync;

    g_free(olen);
    g_free(otext);
    g_free(out);
    g_free(path);
    g_byte_array_unref(cs.blob);
    return NULL;
}

/* Instruction lengths agree with objdump's for every case both decode, in all three modes. */
static void test_objdump(void)
{
    gchar *objdump = g_find_program_in_path("objdump");
    if (!objdump) {
        g_test_skip("objdump not installed");
        return;
    }
    struct objdump_job jobs[3];
    GThread *threads[3];
    for (int m = 0; m < 3; m++) {
        jobs[m] = (struct objdump_job){.mode = (enum x86_mode)m, .objdump = objdump, .log = g_string_new("")};
        threads[m] = g_thread_new("objdump", objdump_compare, &jobs[m]);
    }
    for (int m = 0; m < 3; m++) {
        g_thread_join(threads[m]);
        gchar **lines = g_strsplit(jobs[m].log->str, "\n", -1);
        for (gchar **l = lines; *l; l++) {
            if (**l) {
                g_test_message("%s", *l);
            }
        }
        g_strfreev(lines);
        g_string_free(jobs[m].log, TRUE);
    }
    for (int m = 0; m < 3; m++) {
        g_assert_cmpuint(jobs[m].mismatch, ==, 0);
        g_assert_cmpuint(jobs[m].desync, ==, 0);
        g_assert_cmpuint(jobs[m].same, >, jobs[m].cases / 2);
    }
    g_free(objdump);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/emu-decode/insn/struct-is-compact", test_struct_size);
    g_test_add_func("/emu-decode/modrm/addr16-forms", test_addr16_forms);
    g_test_add_func("/emu-decode/modrm/addr32-forms", test_addr32_forms);
    g_test_add_func("/emu-decode/modrm/addr64-forms-rex-and-rip", test_addr64_forms);
    g_test_add_func("/emu-decode/prefix/rex-last-rep-lock-combinations", test_prefixes);
    g_test_add_func("/emu-decode/operand/byte-registers-with-and-without-rex", test_byte_registers);
    g_test_add_func("/emu-decode/operand/sizes-default-64-in-long-mode", test_operand_sizes_64);
    g_test_add_func("/emu-decode/operand/immediates-extended-per-instruction", test_immediates);
    g_test_add_func("/emu-decode/operand/moffs-address-sized", test_moffs);
    g_test_add_func("/emu-decode/invalid/mode-lock-and-form-ud", test_invalid);
    g_test_add_func("/emu-decode/map0f/system-x87-and-hints", test_system_and_x87);
    g_test_add_func("/emu-decode/sse/mandatory-prefixes-3byte-maps-vex", test_sse_and_vex);
    g_test_add_func("/emu-decode/limits/need-more-at-every-cut-and-15-bytes", test_limits);
    g_test_add_func("/emu-decode/robust/random-bytes-consistent", test_random_consistency);
    g_test_add_func("/emu-decode/objdump/lengths-agree-16-32-64", test_objdump);
    return g_test_run();
}
