/* Unit tests of the emu ALU and lazy flags: every operation and size against the host CPU (inline-asm stubs),
 * with the flags the SDM leaves undefined masked, plus condition-code evaluation and #DE detection. */
#include "diff_params.h"
#include <cpuid.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

#include "emu/alu.h"

#define ARITH ((uint64_t)EMU_FLAGS_ARITH)
#define CF EMU_FLAG_CF
#define PF EMU_FLAG_PF
#define AF EMU_FLAG_AF
#define ZF EMU_FLAG_ZF
#define SF EMU_FLAG_SF
#define OF EMU_FLAG_OF

/* Register images around one instruction: a is the destination (or RAX for MUL/DIV), b the source, c RCX (the
 * shift count), d RDX (or the CMPXCHG accumulator). */
struct regs {
    uint64_t a, b, c, d, flags;
};

/* ---- host stubs: load the flags with POPF, run the instruction, read them back with PUSHF. The red zone
 * below RSP may hold compiler data, so the pushes go 128 bytes further down; LEA leaves the flags alone. */
#define PRE "lea -128(%%rsp), %%rsp\n\tpush %[f]\n\tpopfq\n\t"
#define POST "\n\tpushfq\n\tpop %[f]\n\tlea 128(%%rsp), %%rsp"
#define IO [a] "+r"(a), [b] "+r"(b), [c] "+c"(c), [d] "+d"(d), [f] "+r"(f)
#define BODY(S8, S16, S32, S64)                                                                              \
    uint64_t a = x->a, b = x->b, c = x->c, d = x->d, f = x->flags;                                           \
    switch (size) {                                                                                          \
    case 1:                                                                                                  \
        S8;                                                                                                  \
        break;                                                                                               \
    case 2:                                                                                                  \
        S16;                                                                                                 \
        break;                                                                                               \
    case 4:                                                                                                  \
        S32;                                                                                                 \
        break;                                                                                               \
    default:                                                                                                 \
        S64;                                                                                                 \
        break;                                                                                               \
    }                                                                                                        \
    x->a = a, x->b = b, x->c = c, x->d = d, x->flags = f;

#define ASM(t) __asm__ volatile(PRE t POST : IO::"cc")

/* insn src, dst */
#define HOST2(fn, i)                                                                                         \
    static void fn(unsigned size, struct regs *x)                                                            \
    {                                                                                                        \
        BODY(ASM(i "b %b[b], %b[a]"), ASM(i "w %w[b], %w[a]"), ASM(i "l %k[b], %k[a]"),                      \
             ASM(i "q %q[b], %q[a]"))                                                                        \
    }
/* no byte form */
#define HOST2W(fn, i)                                                                                        \
    static void fn(unsigned size, struct regs *x)                                                            \
    {                                                                                                        \
        BODY((void)0, ASM(i "w %w[b], %w[a]"), ASM(i "l %k[b], %k[a]"), ASM(i "q %q[b], %q[a]"))             \
    }
#define HOST1(fn, i)                                                                                         \
    static void fn(unsigned size, struct regs *x)                                                            \
    {                                                                                                        \
        BODY(ASM(i "b %b[a]"), ASM(i "w %w[a]"), ASM(i "l %k[a]"), ASM(i "q %q[a]"))                         \
    }
#define HOSTCL(fn, i)                                                                                        \
    static void fn(unsigned size, struct regs *x)                                                            \
    {                                                                                                        \
        BODY(ASM(i "b %%cl, %b[a]"), ASM(i "w %%cl, %w[a]"), ASM(i "l %%cl, %k[a]"), ASM(i "q %%cl, %q[a]")) \
    }
#define HOSTCLD(fn, i)                                                                                       \
    static void fn(unsigned size, struct regs *x)                                                            \
    {                                                                                                        \
        BODY((void)0, ASM(i "w %%cl, %w[b], %w[a]"), ASM(i "l %%cl, %k[b], %k[a]"),                          \
             ASM(i "q %%cl, %q[b], %q[a]"))                                                                  \
    }
/* one-operand MUL/IMUL/DIV/IDIV: RAX/RDX implied, source in b */
#define ASMAD(t)                                                                                             \
    __asm__ volatile(PRE t POST : [a] "+a"(a), [b] "+r"(b), [c] "+c"(c), [d] "+d"(d), [f] "+r"(f)::"cc")
#define HOSTAD(fn, i)                                                                                        \
    static void fn(unsigned size, struct regs *x)                                                            \
    {                                                                                                        \
        BODY(ASMAD(i "b %b[b]"), ASMAD(i "w %w[b]"), ASMAD(i "l %k[b]"), ASMAD(i "q %q[b]"))                 \
    }
/* CMPXCHG: accumulator in d (bound to RAX here), destination a, source b */
#define ASMCX(t)                                                                                             \
    __asm__ volatile(PRE t POST : [a] "+r"(a), [b] "+r"(b), [c] "+c"(c), [d] "+a"(d), [f] "+r"(f)::"cc")

HOST2(host_add, "add")
HOST2(host_adc, "adc")
HOST2(host_sub, "sub")
HOST2(host_sbb, "sbb")
HOST2(host_cmp, "cmp")
HOST2(host_and, "and")
HOST2(host_or, "or")
HOST2(host_xor, "xor")
HOST2(host_test, "test")
HOST2(host_xadd, "xadd")
HOST1(host_inc, "inc")
HOST1(host_dec, "dec")
HOST1(host_neg, "neg")
HOST1(host_not, "not")
HOSTCL(host_shl, "shl")
HOSTCL(host_shr, "shr")
HOSTCL(host_sar, "sar")
HOSTCL(host_rol, "rol")
HOSTCL(host_ror, "ror")
HOSTCL(host_rcl, "rcl")
HOSTCL(host_rcr, "rcr")
HOSTCLD(host_shld, "shld")
HOSTCLD(host_shrd, "shrd")
HOSTAD(host_mul, "mul")
HOSTAD(host_imul1, "imul")
HOSTAD(host_div, "div")
HOSTAD(host_idiv, "idiv")
HOST2W(host_imul2, "imul")
HOST2W(host_bt, "bt")
HOST2W(host_bts, "bts")
HOST2W(host_btr, "btr")
HOST2W(host_btc, "btc")
HOST2W(host_bsf, "bsf")
HOST2W(host_bsr, "bsr")
HOST2W(host_popcnt, "popcnt")
HOST2W(host_lzcnt, "lzcnt")
HOST2W(host_tzcnt, "tzcnt")

static void host_cmpxchg(unsigned size, struct regs *x)
{
    BODY(ASMCX("cmpxchgb %b[b], %b[a]"), ASMCX("cmpxchgw %w[b], %w[a]"), ASMCX("cmpxchgl %k[b], %k[a]"),
         ASMCX("cmpxchgq %q[b], %q[a]"))
}

/* 66 0F C8 is "bswap ax", which assemblers refuse to spell. */
static void host_bswap(unsigned size, struct regs *x)
{
    BODY((void)0, ASMAD(".byte 0x66, 0x0f, 0xc8"), ASMAD("bswap %k[a]"), ASMAD("bswap %q[a]"))
}

/* ---- emu side, with the interpreter's register write-back rule (8/16-bit merge, 32-bit zero-extension) */
static uint64_t wb(unsigned size, uint64_t old, uint64_t v)
{
    if (size >= 4)
        return v & emu_size_mask(size);
    return (old & ~emu_size_mask(size)) | (v & emu_size_mask(size));
}

#define EMU2(fn, call)                                                                                       \
    static void fn(struct emu_state *s, unsigned size, struct regs *x)                                       \
    {                                                                                                        \
        x->a = wb(size, x->a, call(s, size, x->a, x->b));                                                    \
    }
EMU2(emu_add, emu_alu_add)
EMU2(emu_adc, emu_alu_adc)
EMU2(emu_sub, emu_alu_sub)
EMU2(emu_sbb, emu_alu_sbb)
EMU2(emu_and, emu_alu_and)
EMU2(emu_or, emu_alu_or)
EMU2(emu_xor, emu_alu_xor)
EMU2(emu_bts, emu_alu_bts)
EMU2(emu_btr, emu_alu_btr)
EMU2(emu_btc, emu_alu_btc)

static void emu_popcnt_src(struct emu_state *s, unsigned size, struct regs *x)
{
    x->a = wb(size, x->a, emu_alu_popcnt(s, size, x->b));
}
static void emu_lzcnt_src(struct emu_state *s, unsigned size, struct regs *x)
{
    x->a = wb(size, x->a, emu_alu_lzcnt(s, size, x->b));
}
static void emu_tzcnt_src(struct emu_state *s, unsigned size, struct regs *x)
{
    x->a = wb(size, x->a, emu_alu_tzcnt(s, size, x->b));
}
static void emu_cmp(struct emu_state *s, unsigned size, struct regs *x)
{
    emu_alu_cmp(s, size, x->a, x->b);
}
static void emu_test(struct emu_state *s, unsigned size, struct regs *x)
{
    emu_alu_test(s, size, x->a, x->b);
}
static void emu_bt(struct emu_state *s, unsigned size, struct regs *x)
{
    emu_alu_bt(s, size, x->a, x->b);
}
static void emu_xadd(struct emu_state *s, unsigned size, struct regs *x)
{
    uint64_t old = x->a;
    x->a = wb(size, x->a, emu_alu_xadd(s, size, x->a, x->b));
    x->b = wb(size, x->b, old);
}
static void emu_cmpxchg(struct emu_state *s, unsigned size, struct regs *x)
{
    if (emu_alu_cmp(s, size, x->d, x->a))
        x->a = wb(size, x->a, x->b);
    else
        x->d = wb(size, x->d, x->a);
}
static void emu_inc(struct emu_state *s, unsigned size, struct regs *x)
{
    x->a = wb(size, x->a, emu_alu_inc(s, size, x->a));
}
static void emu_dec(struct emu_state *s, unsigned size, struct regs *x)
{
    x->a = wb(size, x->a, emu_alu_dec(s, size, x->a));
}
static void emu_neg(struct emu_state *s, unsigned size, struct regs *x)
{
    x->a = wb(size, x->a, emu_alu_neg(s, size, x->a));
}
static void emu_not(struct emu_state *s, unsigned size, struct regs *x)
{
    (void)s;
    x->a = wb(size, x->a, emu_alu_not(size, x->a));
}
#define EMUCL(fn, call)                                                                                      \
    static void fn(struct emu_state *s, unsigned size, struct regs *x)                                       \
    {                                                                                                        \
        x->a = wb(size, x->a, call(s, size, x->a, (unsigned)(x->c & 0xff)));                                 \
    }
EMUCL(emu_shl, emu_alu_shl)
EMUCL(emu_shr, emu_alu_shr)
EMUCL(emu_sar, emu_alu_sar)
EMUCL(emu_rol, emu_alu_rol)
EMUCL(emu_ror, emu_alu_ror)
EMUCL(emu_rcl, emu_alu_rcl)
EMUCL(emu_rcr, emu_alu_rcr)
static void emu_shld(struct emu_state *s, unsigned size, struct regs *x)
{
    x->a = wb(size, x->a, emu_alu_shld(s, size, x->a, x->b, (unsigned)(x->c & 0xff)));
}
static void emu_shrd(struct emu_state *s, unsigned size, struct regs *x)
{
    x->a = wb(size, x->a, emu_alu_shrd(s, size, x->a, x->b, (unsigned)(x->c & 0xff)));
}
static void emu_bsf(struct emu_state *s, unsigned size, struct regs *x)
{
    uint64_t r = emu_alu_bsf(s, size, x->b, x->a);
    if (x->b & emu_size_mask(size)) /* a zero source leaves the register alone, upper half included */
        x->a = wb(size, x->a, r);
}
static void emu_bsr(struct emu_state *s, unsigned size, struct regs *x)
{
    uint64_t r = emu_alu_bsr(s, size, x->b, x->a);
    if (x->b & emu_size_mask(size))
        x->a = wb(size, x->a, r);
}
static void emu_bswap(struct emu_state *s, unsigned size, struct regs *x)
{
    (void)s;
    x->a = wb(size, x->a, emu_alu_bswap(size, x->a));
}

/* One-operand MUL/IMUL: AX = AL * src for bytes, else rDX:rAX. */
static void mul_wb(unsigned size, struct regs *x, uint64_t lo, uint64_t hi)
{
    if (size == 1) {
        x->a = wb(2, x->a, hi << 8 | lo);
    } else {
        x->a = wb(size, x->a, lo);
        x->d = wb(size, x->d, hi);
    }
}
static void emu_mul(struct emu_state *s, unsigned size, struct regs *x)
{
    uint64_t hi, lo = emu_alu_mul(s, size, x->a, x->b, &hi);
    mul_wb(size, x, lo, hi);
}
static void emu_imul1(struct emu_state *s, unsigned size, struct regs *x)
{
    uint64_t hi, lo = emu_alu_imul(s, size, x->a, x->b, &hi);
    mul_wb(size, x, lo, hi);
}
static void emu_imul2(struct emu_state *s, unsigned size, struct regs *x)
{
    x->a = wb(size, x->a, emu_alu_imul(s, size, x->a, x->b, NULL));
}

static uint64_t div_hi(unsigned size, const struct regs *x)
{
    return size == 1 ? x->a >> 8 : x->d;
}
static void div_wb(unsigned size, struct regs *x, uint64_t q, uint64_t r)
{
    mul_wb(size, x, q, r);
}
static void emu_div(struct emu_state *s, unsigned size, struct regs *x)
{
    uint64_t q, r;
    (void)s;
    g_assert_true(emu_alu_div(size, div_hi(size, x), x->a, x->b, &q, &r));
    div_wb(size, x, q, r);
}
static void emu_idiv(struct emu_state *s, unsigned size, struct regs *x)
{
    uint64_t q, r;
    (void)s;
    g_assert_true(emu_alu_idiv(size, div_hi(size, x), x->a, x->b, &q, &r));
    div_wb(size, x, q, r);
}

/* ---- undefined flags: the flags not compared (Intel SDM vol. 2, "Flags Affected" of each instruction) */
static unsigned masked_count(unsigned size, const struct regs *x)
{
    return (unsigned)x->c & (size == 8 ? 63 : 31);
}
static uint64_t undef_none(unsigned size, const struct regs *x, bool *res)
{
    (void)size, (void)x, (void)res;
    return 0;
}
/* AND/OR/XOR/TEST: "The state of the AF flag is undefined." */
static uint64_t undef_logic(unsigned size, const struct regs *x, bool *res)
{
    (void)size, (void)x, (void)res;
    return AF;
}
/* SAL/SAR/SHL/SHR: OF defined only for 1-bit shifts; AF undefined for a non-zero count; CF undefined for
 * SHL/SHR when the count is >= the operand width. */
static uint64_t undef_shl_shr(unsigned size, const struct regs *x, bool *res)
{
    unsigned n = masked_count(size, x);
    (void)res;
    if (n == 0)
        return 0;
    return AF | (n != 1 ? OF : 0) | (n >= 8 * size ? CF : 0);
}
static uint64_t undef_sar(unsigned size, const struct regs *x, bool *res)
{
    unsigned n = masked_count(size, x);
    (void)res;
    return n == 0 ? 0 : AF | (n != 1 ? OF : 0);
}
/* RCL/RCR/ROL/ROR: OF defined only for 1-bit rotates. */
static uint64_t undef_rot(unsigned size, const struct regs *x, bool *res)
{
    (void)res;
    return masked_count(size, x) != 1 ? OF : 0;
}
/* SHLD/SHRD: OF defined only for 1-bit shifts, AF undefined after a shift; a count above the operand width
 * leaves the result and all flags undefined (16-bit only). */
static uint64_t undef_shd(unsigned size, const struct regs *x, bool *res)
{
    unsigned n = masked_count(size, x);
    if (n == 0)
        return 0;
    if (n > 8 * size) {
        *res = true;
        return ARITH;
    }
    return AF | (n != 1 ? OF : 0);
}
/* MUL/IMUL: SF, ZF, AF and PF undefined. */
static uint64_t undef_mul(unsigned size, const struct regs *x, bool *res)
{
    (void)size, (void)x, (void)res;
    return SF | ZF | AF | PF;
}
/* DIV/IDIV: all six undefined. */
static uint64_t undef_all(unsigned size, const struct regs *x, bool *res)
{
    (void)size, (void)x, (void)res;
    return ARITH;
}
/* BT/BTS/BTR/BTC: OF, SF, AF and PF undefined (ZF unaffected). */
static uint64_t undef_bt(unsigned size, const struct regs *x, bool *res)
{
    (void)size, (void)x, (void)res;
    return OF | SF | AF | PF;
}
/* BSF/BSR: CF, OF, SF, AF and PF undefined. */
static uint64_t undef_bsx(unsigned size, const struct regs *x, bool *res)
{
    (void)size, (void)x, (void)res;
    return CF | OF | SF | AF | PF;
}
/* LZCNT/TZCNT: OF, SF, PF and AF undefined. */
static uint64_t undef_cnt(unsigned size, const struct regs *x, bool *res)
{
    (void)size, (void)x, (void)res;
    return OF | SF | PF | AF;
}
/* BSWAP of a 16-bit register: result undefined. */
static uint64_t undef_bswap(unsigned size, const struct regs *x, bool *res)
{
    (void)x;
    *res = size == 2;
    return 0;
}

/* ---- the harness */
enum operands { OPS_BIN, OPS_UN, OPS_SHIFT, OPS_SHD, OPS_DIV, OPS_IDIV, OPS_CX };

struct op {
    const char *name;
    unsigned sizes; /* bit n set: size n supported */
    enum operands kind;
    void (*host)(unsigned size, struct regs *x);
    void (*emu)(struct emu_state *s, unsigned size, struct regs *x);
    uint64_t (*undef)(unsigned size, const struct regs *x, bool *result_undefined);
    unsigned feature; /* FEAT_* the host needs */
};

enum { FEAT_NONE, FEAT_POPCNT, FEAT_LZCNT, FEAT_BMI1 };
#define ALL (1u << 1 | 1u << 2 | 1u << 4 | 1u << 8)
#define WIDE (1u << 2 | 1u << 4 | 1u << 8)

static const struct op ops[] = {
    {"add", ALL, OPS_BIN, host_add, emu_add, undef_none, 0},
    {"adc", ALL, OPS_BIN, host_adc, emu_adc, undef_none, 0},
    {"sub", ALL, OPS_BIN, host_sub, emu_sub, undef_none, 0},
    {"sbb", ALL, OPS_BIN, host_sbb, emu_sbb, undef_none, 0},
    {"cmp", ALL, OPS_BIN, host_cmp, emu_cmp, undef_none, 0},
    {"and", ALL, OPS_BIN, host_and, emu_and, undef_logic, 0},
    {"or", ALL, OPS_BIN, host_or, emu_or, undef_logic, 0},
    {"xor", ALL, OPS_BIN, host_xor, emu_xor, undef_logic, 0},
    {"test", ALL, OPS_BIN, host_test, emu_test, undef_logic, 0},
    {"xadd", ALL, OPS_BIN, host_xadd, emu_xadd, undef_none, 0},
    {"cmpxchg", ALL, OPS_CX, host_cmpxchg, emu_cmpxchg, undef_none, 0},
    {"inc", ALL, OPS_UN, host_inc, emu_inc, undef_none, 0},
    {"dec", ALL, OPS_UN, host_dec, emu_dec, undef_none, 0},
    {"neg", ALL, OPS_UN, host_neg, emu_neg, undef_none, 0},
    {"not", ALL, OPS_UN, host_not, emu_not, undef_none, 0},
    {"shl", ALL, OPS_SHIFT, host_shl, emu_shl, undef_shl_shr, 0},
    {"shr", ALL, OPS_SHIFT, host_shr, emu_shr, undef_shl_shr, 0},
    {"sar", ALL, OPS_SHIFT, host_sar, emu_sar, undef_sar, 0},
    {"rol", ALL, OPS_SHIFT, host_rol, emu_rol, undef_rot, 0},
    {"ror", ALL, OPS_SHIFT, host_ror, emu_ror, undef_rot, 0},
    {"rcl", ALL, OPS_SHIFT, host_rcl, emu_rcl, undef_rot, 0},
    {"rcr", ALL, OPS_SHIFT, host_rcr, emu_rcr, undef_rot, 0},
    {"shld", WIDE, OPS_SHD, host_shld, emu_shld, undef_shd, 0},
    {"shrd", WIDE, OPS_SHD, host_shrd, emu_shrd, undef_shd, 0},
    {"mul", ALL, OPS_BIN, host_mul, emu_mul, undef_mul, 0},
    {"imul1", ALL, OPS_BIN, host_imul1, emu_imul1, undef_mul, 0},
    {"imul2", WIDE, OPS_BIN, host_imul2, emu_imul2, undef_mul, 0},
    {"div", ALL, OPS_DIV, host_div, emu_div, undef_all, 0},
    {"idiv", ALL, OPS_IDIV, host_idiv, emu_idiv, undef_all, 0},
    {"bt", WIDE, OPS_BIN, host_bt, emu_bt, undef_bt, 0},
    {"bts", WIDE, OPS_BIN, host_bts, emu_bts, undef_bt, 0},
    {"btr", WIDE, OPS_BIN, host_btr, emu_btr, undef_bt, 0},
    {"btc", WIDE, OPS_BIN, host_btc, emu_btc, undef_bt, 0},
    {"bsf", WIDE, OPS_BIN, host_bsf, emu_bsf, undef_bsx, 0},
    {"bsr", WIDE, OPS_BIN, host_bsr, emu_bsr, undef_bsx, 0},
    {"popcnt", WIDE, OPS_BIN, host_popcnt, emu_popcnt_src, undef_none, FEAT_POPCNT},
    {"lzcnt", WIDE, OPS_BIN, host_lzcnt, emu_lzcnt_src, undef_cnt, FEAT_LZCNT},
    {"tzcnt", WIDE, OPS_BIN, host_tzcnt, emu_tzcnt_src, undef_cnt, FEAT_BMI1},
    {"bswap", WIDE, OPS_UN, host_bswap, emu_bswap, undef_bswap, 0},
};

/* The flags each condition-code pair reads. */
static const uint64_t cond_reads[8] = {OF, CF, ZF, CF | ZF, SF, PF, SF | OF, ZF | SF | OF};

struct stats {
    unsigned cases, conds, undef_differs, undef_results;
    uint64_t undef_diff_bits;
};

static GRand *rng;

static uint64_t rnd64(void)
{
    return (uint64_t)g_rand_int(rng) << 32 | g_rand_int(rng);
}

/* Puts the emu into a random lazy state (a random recorded operation) or a random eager one; the host starts
 * from the same materialized flags. */
static void random_flags(struct emu_state *s, bool lazy)
{
    static const unsigned sizes[4] = {1, 2, 4, 8};
    unsigned size = sizes[g_rand_int_range(rng, 0, 4)];
    uint64_t a = rnd64() >> g_rand_int_range(rng, 0, 64), b = rnd64() >> g_rand_int_range(rng, 0, 64);

    memset(s, 0, sizeof(*s));
    s->rflags = (rnd64() & ARITH) | EMU_FLAG_FIXED1 | EMU_FLAG_IF;
    if (!lazy)
        return;
    switch (g_rand_int_range(rng, 0, 10)) {
    case 0:
        emu_alu_add(s, size, a, b);
        break;
    case 1:
        emu_alu_adc(s, size, a, b);
        break;
    case 2:
        emu_alu_sub(s, size, a, b);
        break;
    case 3:
        emu_alu_sbb(s, size, a, b);
        break;
    case 4:
        emu_alu_xor(s, size, a, b);
        break;
    case 5:
        emu_alu_inc(s, size, a);
        break;
    case 6:
        emu_alu_dec(s, size, a);
        break;
    case 7:
        emu_alu_shl(s, size, a, (unsigned)b);
        break;
    case 8:
        emu_alu_sar(s, size, a, (unsigned)b);
        break;
    default:
        emu_alu_imul(s, size, a, b, NULL);
        break;
    }
}

static bool under_valgrind(void)
{
#if __has_include(<valgrind/valgrind.h>)
    return RUNNING_ON_VALGRIND;
#else
    return false;
#endif
}

static void run_case(const struct op *op, unsigned size, const struct regs *in, bool lazy, struct stats *st)
{
    struct emu_state s;
    struct regs h = *in, e = *in;
    bool res_undef = false;
    uint64_t undef, ef, hf, before;

    random_flags(&s, lazy);
    before = emu_flags_get(&s);
    h.flags = before & (ARITH | EMU_FLAG_FIXED1);
    op->host(size, &h);
    op->emu(&s, size, &e);
    undef = op->undef(size, in, &res_undef);
    ef = emu_flags_get(&s);
    hf = h.flags;
    st->cases++;

    if (under_valgrind()) {
        /* valgrind's own x86 model is the "host" then; it zero-extends both registers of a 32-bit CMPXCHG, so
         * only the operand-size bits are compared (AX for byte MUL/DIV) */
        uint64_t m = size == 1 ? 0xffff : emu_size_mask(size);
        h.a &= m, h.b &= m, h.d &= m, e.a &= m, e.b &= m, e.d &= m;
    }
    if (res_undef && memcmp(&h, &e, offsetof(struct regs, flags)) != 0)
        st->undef_results++;
    if (!res_undef && memcmp(&h, &e, offsetof(struct regs, flags)) != 0) {
        g_test_message("%s size %u a=%#" G_GINT64_MODIFIER "x b=%#" G_GINT64_MODIFIER
                       "x c=%#" G_GINT64_MODIFIER "x d=%#" G_GINT64_MODIFIER "x flags=%#" G_GINT64_MODIFIER
                       "x: host a=%#" G_GINT64_MODIFIER "x b=%#" G_GINT64_MODIFIER "x d=%#" G_GINT64_MODIFIER
                       "x, emu a=%#" G_GINT64_MODIFIER "x b=%#" G_GINT64_MODIFIER "x d=%#" G_GINT64_MODIFIER
                       "x",
                       op->name, size, in->a, in->b, in->c, in->d, before, h.a, h.b, h.d, e.a, e.b, e.d);
        g_test_fail();
        return;
    }
    if ((ef ^ hf) & ARITH & ~undef) {
        g_test_message("%s size %u a=%#" G_GINT64_MODIFIER "x b=%#" G_GINT64_MODIFIER
                       "x c=%#" G_GINT64_MODIFIER "x flags in %#" G_GINT64_MODIFIER
                       "x (%s): host %#" G_GINT64_MODIFIER "x emu %#" G_GINT64_MODIFIER
                       "x (compared %#" G_GINT64_MODIFIER "x)",
                       op->name, size, in->a, in->b, in->c, before, lazy ? "lazy" : "eager", hf & ARITH,
                       ef & ARITH, ARITH & ~undef);
        g_test_fail();
        return;
    }
    if ((ef ^ before) & ~ARITH) {
        g_test_message("%s changed non-arithmetic flags", op->name);
        g_test_fail();
        return;
    }
    if ((ef ^ hf) & ARITH & undef) {
        if (g_test_verbose() && st->undef_differs < 6)
            g_test_message("%s size %u a=%#" G_GINT64_MODIFIER "x b=%#" G_GINT64_MODIFIER
                           "x c=%#" G_GINT64_MODIFIER "x flags in %#" G_GINT64_MODIFIER
                           "x: undefined flags host %#" G_GINT64_MODIFIER "x emu %#" G_GINT64_MODIFIER "x",
                           op->name, size, in->a, in->b, in->c & 0xff, before & ARITH, hf & ARITH & undef,
                           ef & ARITH & undef);
        st->undef_differs++;
        st->undef_diff_bits |= (ef ^ hf) & ARITH & undef;
    }
    for (unsigned cc = 0; cc < 16; cc++) {
        bool lazy_cc = emu_cond(&s, cc);
        if (lazy_cc != emu_cond_flags(ef, cc)) {
            g_test_message(
                "%s size %u: emu_cond(%u) = %d disagrees with the materialized flags %#" G_GINT64_MODIFIER
                "x",
                op->name, size, cc, lazy_cc, ef);
            g_test_fail();
            return;
        }
        if (!(cond_reads[cc >> 1] & undef)) {
            st->conds++;
            if (lazy_cc != emu_cond_flags(hf, cc)) {
                g_test_message("%s size %u: emu_cond(%u) = %d, host flags %#" G_GINT64_MODIFIER "x", op->name,
                               size, cc, lazy_cc, hf);
                g_test_fail();
                return;
            }
        }
    }
}

/* Edge operands: small values, sign boundaries and bit patterns of every width, and a few random ones. */
static unsigned edge_values(unsigned size, uint64_t *v)
{
    static const uint64_t fixed[] = {
        0,
        1,
        2,
        3,
        6,
        9,
        0xf,
        0x10,
        0x1f,
        0x20,
        0x3f,
        0x40,
        0x7f,
        0x80,
        0x81,
        0x99,
        0x9a,
        0xfe,
        0xff,
        0x100,
        0x7fff,
        0x8000,
        0xffff,
        0x10000,
        0x7fffffff,
        0x80000000,
        0xffffffff,
        0x100000000ull,
        0x7fffffffffffffffull,
        0x8000000000000000ull,
        0xffffffffffffffffull,
        0x5555555555555555ull,
        0xaaaaaaaaaaaaaaaaull,
        0x0123456789abcdefull,
    };
    uint64_t m = emu_size_mask(size), sign = 1ull << (8 * size - 1);
    unsigned n = 0;
    for (unsigned i = 0; i < G_N_ELEMENTS(fixed); i++)
        v[n++] = fixed[i] & m;
    v[n++] = sign - 1;
    v[n++] = sign + 1;
    v[n++] = m - 1;
    for (unsigned i = 0; i < 4; i++)
        v[n++] = rnd64() & m;
    return n;
}

/* Inputs carry random bits above the operand size: the host must ignore or preserve them as the emu does. */
static uint64_t garbage(unsigned size, uint64_t v)
{
    if (size == 8 || g_rand_boolean(rng))
        return v;
    return v | (rnd64() & ~emu_size_mask(size));
}

static bool host_has(unsigned feature)
{
    unsigned a, b, c, d;
    switch (feature) {
    case FEAT_POPCNT:
        return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_POPCNT);
    case FEAT_LZCNT:
        return __get_cpuid(0x80000001, &a, &b, &c, &d) && (c & bit_LZCNT);
    case FEAT_BMI1:
        return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_BMI);
    default:
        return true;
    }
}

/* A dividend/divisor pair that does not fault, by an independent check on 128-bit values. */
static bool div_faults(bool sign, unsigned size, const struct regs *x)
{
    unsigned bits = 8 * size;
    uint64_t m = emu_size_mask(size);
    uint64_t hi = (size == 1 ? x->a >> 8 : x->d) & m, lo = x->a & m;
    if (!sign) {
        unsigned __int128 n = (unsigned __int128)hi << bits | lo, d = x->b & m;
        return d == 0 || n / d > m;
    }
    __int128 n = (__int128)((unsigned __int128)emu_sign_extend(size, hi) << bits | lo);
    __int128 d = (int64_t)emu_sign_extend(size, x->b), q;
    if (d == 0)
        return true;
    if (size == 8 && d == -1 && hi == 0x8000000000000000ull && lo == 0)
        return true;
    q = n / d;
    return q > (__int128)(m >> 1) || q < -(__int128)(m >> 1) - 1;
}

static void gen_case(const struct op *op, unsigned size, uint64_t a, uint64_t b, struct regs *x)
{
    memset(x, 0, sizeof(*x));
    x->a = garbage(size, a);
    x->b = garbage(size, b);
    x->c = rnd64();
    x->d = rnd64();
    switch (op->kind) {
    case OPS_DIV:
    case OPS_IDIV:
        /* mostly a high half below the divisor, so most cases divide */
        if (g_rand_int_range(rng, 0, 4)) {
            uint64_t d = b & emu_size_mask(size);
            uint64_t hi =
                op->kind == OPS_DIV ? (d ? rnd64() % d : 0) : (uint64_t) - (int64_t)(a >> (8 * size - 1) & 1);
            if (size == 1)
                x->a = (x->a & ~0xff00ull) | (hi & 0xff) << 8;
            else
                x->d = hi;
        }
        break;
    case OPS_CX:
        x->d = g_rand_boolean(rng) ? x->a : garbage(size, rnd64() >> g_rand_int_range(rng, 0, 64));
        break;
    default:
        break;
    }
}

static void run_op(const struct op *op, unsigned n_random)
{
    struct stats st = {0};
    uint64_t edges[64];

    if (!host_has(op->feature)) {
        g_test_skip("the host CPU lacks this instruction");
        return;
    }
    for (unsigned size = 1; size <= 8; size *= 2) {
        struct regs x;
        unsigned n, i, j, k = 0;
        if (!(op->sizes & (1u << size)))
            continue;
        if (op->host == host_bswap && size == 2 && under_valgrind())
            continue; /* valgrind does not decode 66 0F C8 */
        n = edge_values(size, edges);
        if (op->kind == OPS_SHIFT || op->kind == OPS_SHD) {
            for (i = 0; i < n; i++)
                for (unsigned c = 0; c < 2 * 8 * size + 3 && c < 132; c++) {
                    gen_case(op, size, edges[i], edges[(i * 7 + c) % n], &x);
                    x.c = (x.c & ~0xffull) | (c & 0xff);
                    run_case(op, size, &x, (k++ & 1) != 0, &st);
                }
        } else {
            for (i = 0; i < n; i++)
                for (j = 0; j < (op->kind == OPS_UN ? 1 : n); j++) {
                    gen_case(op, size, edges[i], edges[j], &x);
                    if ((op->kind == OPS_DIV || op->kind == OPS_IDIV) &&
                        div_faults(op->kind == OPS_IDIV, size, &x))
                        continue;
                    run_case(op, size, &x, (k++ & 1) != 0, &st);
                }
        }
        for (i = 0; i < n_random; i++) {
            gen_case(op, size, rnd64() >> g_rand_int_range(rng, 0, 64),
                     rnd64() >> g_rand_int_range(rng, 0, 64), &x);
            if ((op->kind == OPS_DIV || op->kind == OPS_IDIV) && div_faults(op->kind == OPS_IDIV, size, &x))
                continue;
            run_case(op, size, &x, (i & 1) != 0, &st);
        }
    }
    g_test_message("%s: %u cases, %u condition checks; undefined flags differ from the host in %u cases "
                   "(bits %#" G_GINT64_MODIFIER "x), undefined results in %u",
                   op->name, st.cases, st.conds, st.undef_differs, st.undef_diff_bits, st.undef_results);
    g_assert_cmpuint(st.cases, >, 100);
}

static void test_op(gconstpointer data)
{
    run_op(data, 5000 * diff_scale());
}

/* ---- #DE detection: never executed on the host */
static void test_div_faults(void)
{
    uint64_t q = 0x1234, r = 0x5678;

    for (unsigned size = 1; size <= 8; size *= 2) {
        uint64_t m = emu_size_mask(size), sign = 1ull << (8 * size - 1);
        g_assert_false(emu_alu_div(size, 0, 1, 0, &q, &r));
        g_assert_false(emu_alu_idiv(size, 0, 1, 0, &q, &r));
        g_assert_false(emu_alu_div(size, 1, 0, 1, &q, &r)); /* quotient 2^n */
        g_assert_false(emu_alu_div(size, m, m, m, &q, &r));
        g_assert_true(emu_alu_div(size, m - 1, m, m, &q, &r)); /* largest quotient that fits */
        g_assert_cmpuint(q, ==, m);
        g_assert_cmpuint(r, ==, m - 1);
        /* INT_MIN / -1 of the double-size dividend and of the operand-size one */
        g_assert_false(emu_alu_idiv(size, sign, 0, m, &q, &r));
        g_assert_false(emu_alu_idiv(size, m, sign, m, &q, &r));
        g_assert_true(emu_alu_idiv(size, m, sign + 1, m, &q, &r));
        g_assert_cmpuint(q, ==, sign - 1);
        g_assert_cmpuint(r, ==, 0);
        /* -2^(n-1) is a valid quotient, +2^(n-1) is not */
        g_assert_true(emu_alu_idiv(size, m, sign, 1, &q, &r));
        g_assert_cmpuint(q, ==, sign);
        g_assert_false(emu_alu_idiv(size, 0, sign, 1, &q, &r));
    }
    /* nothing written on #DE */
    q = r = 7;
    g_assert_false(emu_alu_idiv(8, 0x8000000000000000ull, 0, ~0ull, &q, &r));
    g_assert_cmpuint(q, ==, 7);
    g_assert_cmpuint(r, ==, 7);
}

/* ---- BCD adjustments (invalid in 64-bit mode, so checked against the SDM pseudocode's worked values) */
static uint64_t arith_after(struct emu_state *s)
{
    return emu_flags_get(s) & ARITH;
}

static void test_bcd(void)
{
    struct emu_state s;
    uint64_t ax;

    memset(&s, 0, sizeof(s));
    /* 0x79 + 0x35 = 0xae -> DAA -> 0x14, CF (BCD 79 + 35 = 114) */
    emu_alu_add(&s, 1, 0x79, 0x35);
    g_assert_cmpuint(emu_alu_daa(&s, 0xae), ==, 0x14);
    g_assert_cmpuint(arith_after(&s) & (CF | AF), ==, CF | AF);
    /* 0x38 + 0x29 = 0x61 with AF -> 0x67 */
    emu_alu_add(&s, 1, 0x38, 0x29);
    g_assert_cmpuint(emu_alu_daa(&s, 0x61), ==, 0x67);
    g_assert_cmpuint(arith_after(&s) & CF, ==, 0);
    /* 0x35 - 0x47 = 0xee, CF -> DAS -> 0x88, CF (BCD 35 - 47 = -12 -> 88 borrow) */
    emu_alu_sub(&s, 1, 0x35, 0x47);
    g_assert_cmpuint(emu_alu_das(&s, 0xee), ==, 0x88);
    g_assert_cmpuint(arith_after(&s) & (CF | AF), ==, CF | AF);
    /* unpacked: 8 + 9 = 0x11 with AF -> AAA -> AX 0x0107 */
    emu_alu_add(&s, 1, 8, 9);
    g_assert_cmpuint(emu_alu_aaa(&s, 0x0011), ==, 0x0107);
    g_assert_cmpuint(arith_after(&s) & (CF | AF), ==, CF | AF);
    emu_alu_add(&s, 1, 2, 3);
    g_assert_cmpuint(emu_alu_aaa(&s, 0x0205), ==, 0x0205);
    g_assert_cmpuint(arith_after(&s) & (CF | AF), ==, 0);
    /* 3 - 5 = 0xfe with AF -> AAS -> AX 0xff08 (AH borrowed) */
    emu_alu_sub(&s, 1, 3, 5);
    g_assert_cmpuint(emu_alu_aas(&s, 0x00fe), ==, 0xff08);
    g_assert_cmpuint(arith_after(&s) & (CF | AF), ==, CF | AF);
    /* AAM 10: 63 -> AX 0x0603; AAD 10: 0x0603 -> 63 */
    g_assert_true(emu_alu_aam(&s, 0x003f, 10, &ax));
    g_assert_cmpuint(ax, ==, 0x0603);
    g_assert_cmpuint(arith_after(&s) & (ZF | SF), ==, 0);
    g_assert_cmpuint(emu_alu_aad(&s, 0x0603, 10), ==, 63);
    g_assert_cmpuint(emu_alu_aad(&s, 0x0000, 10), ==, 0);
    g_assert_cmpuint(arith_after(&s) & ZF, ==, ZF);
    ax = 0xdead;
    g_assert_false(emu_alu_aam(&s, 0x003f, 0, &ax));
    g_assert_cmpuint(ax, ==, 0xdead);
}

/* ---- BCD adjustments against the host: they are invalid in 64-bit mode, so the host runs them in a 32-bit
 * compatibility-mode code segment (Linux's __USER32_CS, 0x23) reached by a 64-bit far call on a stack below 4
 * GiB; the stub returns through a far jump to a 64-bit LRETQ (__USER_CS, 0x33). */
#define USER32_CS 0x23
#define USER64_CS 0x33

static uint8_t *compat_code, *compat_stack;
static uint64_t compat_saved_rsp __asm__("deskvm_test_emu_alu_saved_rsp") __attribute__((used));

/* Runs insn (32-bit code) with AX = ax and the given flags; returns EAX and stores the flags after it. */
static uint64_t compat_run(const uint8_t *insn, unsigned len, uint64_t ax, uint64_t flags,
                           uint64_t *flags_out)
{
    struct __attribute__((packed)) {
        uint64_t offset;
        uint16_t selector;
    } target = {(uint64_t)(uintptr_t)compat_code, USER32_CS};
    uint32_t back;
    uint64_t top = (uint64_t)(uintptr_t)compat_stack + 4096;
    unsigned n = 0;

    compat_code[n++] = 0x51; /* push ecx */
    compat_code[n++] = 0x9d; /* popfd */
    memcpy(compat_code + n, insn, len);
    n += len;
    compat_code[n++] = 0x9c; /* pushfd */
    compat_code[n++] = 0x59; /* pop ecx */
    compat_code[n++] = 0xea; /* jmp far USER64_CS:back */
    back = (uint32_t)(uintptr_t)compat_code + n + 6;
    memcpy(compat_code + n, &back, 4);
    n += 4;
    compat_code[n++] = USER64_CS;
    compat_code[n++] = 0;
    compat_code[n++] = 0x48; /* lretq */
    compat_code[n++] = 0xcb;
    __asm__ volatile("mov %%rsp, deskvm_test_emu_alu_saved_rsp(%%rip)\n\t"
                     "mov %[top], %%rsp\n\t"
                     "rex64 lcall *(%[target])\n\t"
                     "mov deskvm_test_emu_alu_saved_rsp(%%rip), %%rsp"
                     : "+a"(ax), "+c"(flags)
                     : [target] "r"(&target), [top] "r"(top)
                     : "memory", "cc");
    *flags_out = flags;
    return ax & 0xffff;
}

/* Compatibility mode needs the kernel's 32-bit code segment (ia32 emulation); probe it in a child. */
static bool compat_available(void)
{
    static const uint8_t nop = 0x90;
    uint64_t f;
    int status;
    pid_t pid;

    if (under_valgrind())
        return false;
    compat_code =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    compat_stack = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (compat_code == MAP_FAILED || compat_stack == MAP_FAILED)
        return false;
    pid = fork();
    if (pid == 0) {
        compat_run(&nop, 1, 0, EMU_FLAG_FIXED1, &f);
        _exit(0);
    }
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

enum bcd_op { BCD_DAA, BCD_DAS, BCD_AAA, BCD_AAS, BCD_AAM, BCD_AAD };

static uint64_t emu_bcd(struct emu_state *s, enum bcd_op op, uint64_t ax, uint8_t base)
{
    uint64_t r = 0;
    switch (op) {
    case BCD_DAA:
        return (ax & 0xff00) | emu_alu_daa(s, ax & 0xff);
    case BCD_DAS:
        return (ax & 0xff00) | emu_alu_das(s, ax & 0xff);
    case BCD_AAA:
        return emu_alu_aaa(s, ax);
    case BCD_AAS:
        return emu_alu_aas(s, ax);
    case BCD_AAM:
        g_assert_true(emu_alu_aam(s, ax, base, &r));
        return r;
    default:
        return emu_alu_aad(s, ax, base);
    }
}

static void test_bcd_host(void)
{
    /* SDM: DAA/DAS leave OF undefined; AAA/AAS OF, SF, ZF and PF; AAM/AAD OF, AF and CF. */
    static const struct {
        enum bcd_op op;
        uint8_t opcode;
        uint64_t undef;
    } insns[] = {
        {BCD_DAA, 0x27, OF},
        {BCD_DAS, 0x2f, OF},
        {BCD_AAA, 0x37, OF | SF | ZF | PF},
        {BCD_AAS, 0x3f, OF | SF | ZF | PF},
        {BCD_AAM, 0xd4, OF | AF | CF},
        {BCD_AAD, 0xd5, OF | AF | CF},
    };
    static const uint8_t bases[] = {10, 1, 2, 7, 16, 100, 255};
    static const uint8_t highs[] = {0, 1, 9, 0x12, 0x7f, 0x80, 0xff};
    unsigned cases = 0, undef_differs = 0;

    if (!compat_available()) {
        g_test_skip("no 32-bit compatibility-mode code segment (valgrind, or ia32 emulation off)");
        return;
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(insns); i++) {
        bool has_base = insns[i].op >= BCD_AAM;
        for (unsigned bi = 0; bi < (has_base ? G_N_ELEMENTS(bases) : 1); bi++)
            for (unsigned hi = 0; hi < G_N_ELEMENTS(highs); hi++)
                for (unsigned al = 0; al < 256; al++)
                    for (unsigned fl = 0; fl < 4; fl++) {
                        uint8_t insn[2] = {insns[i].opcode, bases[bi]};
                        uint64_t ax = (uint64_t)highs[hi] << 8 | al, hf, ef, hax, eax;
                        uint64_t fin = EMU_FLAG_FIXED1 | (fl & 1 ? CF : 0) | (fl & 2 ? AF : 0) |
                                       (g_rand_int(rng) & (OF | SF | ZF | PF));
                        struct emu_state s;

                        memset(&s, 0, sizeof(s));
                        s.rflags = fin;
                        hax = compat_run(insn, has_base ? 2 : 1, ax, fin, &hf);
                        eax = emu_bcd(&s, insns[i].op, ax, bases[bi]);
                        ef = emu_flags_get(&s);
                        cases++;
                        if (hax != eax || ((hf ^ ef) & ARITH & ~insns[i].undef)) {
                            g_test_message(
                                "bcd %#x base %u ax %#" G_GINT64_MODIFIER "x flags %#" G_GINT64_MODIFIER
                                "x: host ax %#" G_GINT64_MODIFIER "x flags %#" G_GINT64_MODIFIER
                                "x, emu ax %#" G_GINT64_MODIFIER "x flags %#" G_GINT64_MODIFIER "x",
                                insns[i].opcode, bases[bi], ax, fin, hax, hf & ARITH, eax, ef & ARITH);
                            g_test_fail();
                            return;
                        }
                        if ((hf ^ ef) & ARITH & insns[i].undef) {
                            if (g_test_verbose() && undef_differs < 20)
                                g_test_message("bcd %#x base %u ax %#" G_GINT64_MODIFIER
                                               "x flags %#" G_GINT64_MODIFIER
                                               "x: undefined flags host %#" G_GINT64_MODIFIER
                                               "x emu %#" G_GINT64_MODIFIER "x",
                                               insns[i].opcode, bases[bi], ax, fin & ARITH,
                                               hf & insns[i].undef, ef & insns[i].undef);
                            undef_differs++;
                        }
                    }
    }
    g_test_message("bcd: %u cases in compatibility mode; undefined flags differ from the host in %u", cases,
                   undef_differs);
}

/* ---- lazy state round trips */
static void test_flags_write(void)
{
    struct emu_state s;

    memset(&s, 0, sizeof(s));
    s.rflags = EMU_FLAG_FIXED1 | EMU_FLAG_IF;
    emu_alu_sub(&s, 4, 1, 2); /* CF SF AF PF, lazily */
    g_assert_cmpuint(s.cc_op >> 2, ==, EMU_CC_SUB);
    g_assert_cmpuint(emu_flags_get(&s), ==, EMU_FLAG_FIXED1 | EMU_FLAG_IF | CF | SF | AF | PF);
    /* SAHF-style partial write keeps OF and the lazily computed rest */
    emu_flags_write(&s, ZF, CF | ZF | PF | AF | SF);
    g_assert_cmpuint(s.cc_op, ==, EMU_CC_EAGER);
    g_assert_cmpuint(emu_flags_get(&s), ==, EMU_FLAG_FIXED1 | EMU_FLAG_IF | ZF);
    /* POPF-style write cannot clear bit 1 */
    emu_flags_write(&s, 0, ~0ull);
    g_assert_cmpuint(emu_flags_get(&s), ==, EMU_FLAG_FIXED1);
    emu_alu_inc(&s, 8, ~0ull); /* CF preserved through INC from an eager state */
    emu_flags_write(&s, CF, CF);
    emu_alu_dec(&s, 1, 0);
    g_assert_cmpuint(emu_flags_get(&s) & ARITH, ==, CF | SF | AF | PF);
    emu_flags_materialize(&s);
    g_assert_cmpuint(s.cc_op, ==, EMU_CC_EAGER);
    g_assert_cmpuint(s.rflags & ARITH, ==, CF | SF | AF | PF);
    emu_flags_set_eager(&s, OF);
    g_assert_cmpuint(emu_flags_get(&s), ==, EMU_FLAG_FIXED1 | OF);
}

static void log_host_cpu(void)
{
    unsigned a = 0, b = 0, c = 0, d = 0, brand[12] = {0};
    char name[49] = "";

    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2],
                        &brand[4 * i + 3]);
        memcpy(name, brand, 48);
    }
    __get_cpuid(1, &a, &b, &c, &d);
    g_test_message("host CPU: \"%s\" family %#x model %#x stepping %u", g_strstrip(name),
                   ((a >> 8) & 0xf) + ((a >> 20) & 0xff), ((a >> 4) & 0xf) | ((a >> 12) & 0xf0), a & 0xf);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    rng = g_rand_new_with_seed(diff_seed());
    log_host_cpu();
    for (unsigned i = 0; i < G_N_ELEMENTS(ops); i++) {
        char *path = g_strdup_printf("/emu-alu/host/%s", ops[i].name);
        g_test_add_data_func(path, &ops[i], test_op);
        g_free(path);
    }
    g_test_add_func("/emu-alu/div/de-detected-before-dividing", test_div_faults);
    g_test_add_func("/emu-alu/bcd/sdm-examples", test_bcd);
    g_test_add_func("/emu-alu/bcd/host-compat-mode", test_bcd_host);
    g_test_add_func("/emu-alu/flags/write-and-materialize", test_flags_write);
    ret = g_test_run();
    g_rand_free(rng);
    return ret;
}
