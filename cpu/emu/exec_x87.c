/* emu interpreter: the x87 FPU. Values are 80-bit extended reals computed by the host's own x87 unit under
 * the guest's control word (precision, rounding; host exceptions masked), so results are bit-exact. ST(i)
 * live in the FXSAVE image in stack order; the abridged tag has a bit per physical register. Unmasked
 * exceptions set FSW.ES and raise #MF at the next waiting x87 instruction (CR0.NE=1). Not implemented:
 * FBLD/FBSTP, FSAVE's 16-bit formats, the precise FIP/FDP/FOP bookkeeping (left 0). */
#include "emu/exec.h"

typedef long double f80;

#define FSW_IE 0x0001u
#define FSW_SF 0x0040u
#define FSW_ES 0x0080u
#define FSW_C0 0x0100u
#define FSW_C1 0x0200u
#define FSW_C2 0x0400u
#define FSW_C3 0x4000u
#define FSW_B 0x8000u
#define FSW_CC (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)

/* ---- host FPU environment ---- */

static uint16_t host_begin(const struct emu_state *s)
{
    uint16_t old, cw = (uint16_t)(s->fx.fcw | 0x3f);
    __asm__ volatile("fnstcw %0" : "=m"(old));
    __asm__ volatile("fnclex\n\tfldcw %0" : : "m"(cw));
    return old;
}

/* Restores the host and merges the exception flags into the guest's FSW. Returns false when an unmasked
 * exception suppresses the result (invalid, denormal, zero-divide; for stores to memory also overflow and
 * underflow): the destination is not written and nothing is popped. Unmasked overflow/underflow of register
 * results are delivered with the masked result rather than the SDM's rebiased one. */
static bool host_end(struct emu_state *s, uint16_t old, bool store)
{
    uint16_t sw;
    __asm__ volatile("fnstsw %0\n\tfnclex\n\tfldcw %1" : "=m"(sw) : "m"(old));
    unsigned flags = sw & 0x3f, unmasked = flags & ~s->fx.fcw & 0x3f;
    /* C1 reports the rounding direction of the operation (stack faults and compares set it afterwards). */
    s->fx.fsw = (uint16_t)((s->fx.fsw & ~FSW_C1) | (sw & FSW_C1) | flags);
    if (unmasked)
        s->fx.fsw |= FSW_ES | FSW_B;
    return !(unmasked & (store ? 0x1fu : 0x07u));
}

/* ---- the register stack ---- */

static unsigned top(const struct emu_state *s)
{
    return (s->fx.fsw >> 11) & 7;
}

static void set_top(struct emu_state *s, unsigned t)
{
    s->fx.fsw = (uint16_t)((s->fx.fsw & ~0x3800u) | (t & 7) << 11);
}

static bool valid(const struct emu_state *s, unsigned i)
{
    return (s->fx.ftw >> ((top(s) + i) & 7)) & 1;
}

static f80 st(const struct emu_state *s, unsigned i)
{
    f80 v = 0;
    memcpy(&v, s->fx.st[i & 7], 10);
    return v;
}

static void set_st(struct emu_state *s, unsigned i, f80 v)
{
    memcpy(s->fx.st[i & 7], &v, 10);
    memset(s->fx.st[i & 7] + 10, 0, 6);
    s->fx.ftw |= (uint8_t)(1u << ((top(s) + i) & 7));
}

static f80 indefinite(void)
{
    return -__builtin_nanl("");
}

/* A stack fault (overflow when over, else underflow): false when IE is unmasked and the operation must not
 * write its result. */
static bool stack_fault(struct emu_state *s, bool over)
{
    s->fx.fsw = (uint16_t)((s->fx.fsw & ~FSW_C1) | FSW_IE | FSW_SF | (over ? FSW_C1 : 0));
    if (!(s->fx.fcw & FSW_IE)) {
        s->fx.fsw |= FSW_ES | FSW_B;
        return false;
    }
    return true;
}

static void push(struct emu_state *s, f80 v)
{
    if (valid(s, 7) && !stack_fault(s, true))
        return;
    if (valid(s, 7))
        v = indefinite();
    memmove(s->fx.st[1], s->fx.st[0], 7 * 16);
    set_top(s, top(s) - 1);
    set_st(s, 0, v);
}

static void pop(struct emu_state *s)
{
    s->fx.ftw &= (uint8_t) ~(1u << top(s));
    memmove(s->fx.st[0], s->fx.st[1], 7 * 16);
    memset(s->fx.st[7], 0, 16);
    set_top(s, top(s) + 1);
}

/* Reads ST(i) for an operation; an empty register is a stack underflow (the masked response is the indefinite
 * QNaN). false: the operation must not complete. */
static bool operand(struct emu_state *s, unsigned i, f80 *v)
{
    if (valid(s, i)) {
        *v = st(s, i);
        return true;
    }
    *v = indefinite();
    return stack_fault(s, false);
}

/* ---- memory operands ---- */

static int read_real(struct exec_ctx *x, unsigned size, f80 *v, bool *ok)
{
    union {
        uint8_t b[10];
        float f;
        double d;
    } buf = {{0}};
    struct x_op m;
    int r;

    x_op_rm(x, &m);
    if ((r = x_read_buf(x, m.seg, m.off, size, buf.b)))
        return r;
    /* The loads are asm so that they stay between host_begin and host_end (the compiler does not know the
     * control word matters). */
    uint16_t old = host_begin(x->s);
    if (size == 4)
        __asm__ volatile("flds %1" : "=t"(*v) : "m"(buf.f));
    else if (size == 8)
        __asm__ volatile("fldl %1" : "=t"(*v) : "m"(buf.d));
    else
        memcpy(v, buf.b, 10);
    *ok = host_end(x->s, old, false);
    return XR_OK;
}

static int read_int(struct exec_ctx *x, unsigned size, f80 *v)
{
    struct x_op m;
    uint64_t i;
    int r;

    x_op_rm(x, &m);
    if ((r = x_read(x, m.seg, m.off, size, &i)))
        return r;
    *v = (f80)(int64_t)emu_sign_extend(size, i);
    return XR_OK;
}

static int write_real(struct exec_ctx *x, unsigned size, f80 v)
{
    union {
        uint8_t b[10];
        float f;
        double d;
    } buf;
    struct x_op m;
    uint16_t old = host_begin(x->s);

    if (size == 4)
        __asm__ volatile("fstps %0" : "=m"(buf.f) : "t"(v) : "st");
    else if (size == 8)
        __asm__ volatile("fstpl %0" : "=m"(buf.d) : "t"(v) : "st");
    else
        memcpy(buf.b, &v, 10);
    if (!host_end(x->s, old, true))
        return XR_RETRY; /* suppressed: no store, no pop */
    x_op_rm(x, &m);
    return x_write_buf(x, m.seg, m.off, size, buf.b);
}

/* FIST/FISTP (rounding by the control word) and FISTTP (truncating). */
static int write_int(struct exec_ctx *x, unsigned size, f80 v, bool truncate)
{
    struct x_op m;
    int64_t i64 = 0;
    int32_t i32 = 0;
    int16_t i16 = 0;
    uint64_t out;
    uint16_t old = host_begin(x->s);

    if (size == 8) {
        if (truncate)
            __asm__ volatile("fisttpll %0" : "=m"(i64) : "t"(v) : "st");
        else
            __asm__ volatile("fistpll %0" : "=m"(i64) : "t"(v) : "st");
        out = (uint64_t)i64;
    } else if (size == 4) {
        if (truncate)
            __asm__ volatile("fisttpl %0" : "=m"(i32) : "t"(v) : "st");
        else
            __asm__ volatile("fistpl %0" : "=m"(i32) : "t"(v) : "st");
        out = (uint32_t)i32;
    } else {
        if (truncate)
            __asm__ volatile("fisttps %0" : "=m"(i16) : "t"(v) : "st");
        else
            __asm__ volatile("fistps %0" : "=m"(i16) : "t"(v) : "st");
        out = (uint16_t)i16;
    }
    if (!host_end(x->s, old, true))
        return XR_RETRY;
    x_op_rm(x, &m);
    return x_write(x, m.seg, m.off, size, out);
}

/* ---- arithmetic ---- */

/* reg: 0 add, 1 mul, 4 a-b, 5 b-a, 6 a/b, 7 b/a (the D8 encoding). false: suppressed by an unmasked
 * exception. The status word is read inside the asm: a later spill of the result would change C1. */
static bool arith(struct emu_state *s, unsigned reg, f80 a, f80 b, f80 *out)
{
    uint16_t sw, old = host_begin(s);
    f80 r;
    switch (reg) {
    case 0:
        __asm__ volatile("fadd %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    case 1:
        __asm__ volatile("fmul %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    case 4:
        __asm__ volatile("fsub %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    case 5:
        __asm__ volatile("fsubr %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    case 6:
        __asm__ volatile("fdiv %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    default:
        __asm__ volatile("fdivr %%st(1), %%st\n\tfnstsw %1" : "=t"(r), "=m"(sw) : "0"(a), "u"(b));
        break;
    }
    *out = r;
    bool ok = host_end(s, old, false);
    s->fx.fsw = (uint16_t)((s->fx.fsw & ~FSW_C1) | (sw & FSW_C1));
    return ok;
}

/* FCOM family: condition codes (or, for FCOMI, EFLAGS); unordered compares signal only for SNaN. */
static bool compare(struct exec_ctx *x, f80 a, f80 b, bool unordered_quiet, bool to_eflags)
{
    struct emu_state *s = x->s;
    uint16_t sw, old = host_begin(s);
    if (unordered_quiet)
        __asm__ volatile("fucomi %%st(1), %%st\n\tfnstsw %0" : "=m"(sw) : "t"(a), "u"(b) : "cc");
    else
        __asm__ volatile("fcomi %%st(1), %%st\n\tfnstsw %0" : "=m"(sw) : "t"(a), "u"(b) : "cc");
    (void)sw;
    if (!host_end(s, old, false))
        return false;
    bool un = a != a || b != b, lt = !un && a < b, eq = !un && a == b;
    if (to_eflags) {
        emu_flags_set_eager(s, un   ? EMU_FLAG_ZF | EMU_FLAG_PF | EMU_FLAG_CF
                               : lt ? EMU_FLAG_CF
                               : eq ? EMU_FLAG_ZF
                                    : 0);
        s->fx.fsw &= (uint16_t)~FSW_C1;
    } else {
        uint16_t cc = un ? FSW_C3 | FSW_C2 | FSW_C0 : lt ? FSW_C0 : eq ? FSW_C3 : 0;
        s->fx.fsw = (uint16_t)((s->fx.fsw & ~FSW_CC) | cc);
    }
    return true;
}

/* FXAM: the class of ST(0) in C3 C2 C0, its sign in C1. */
static void examine(struct emu_state *s)
{
    uint16_t cc;
    f80 v = st(s, 0);
    uint8_t raw[10];
    memcpy(raw, s->fx.st[0], 10);
    unsigned exp = (raw[9] & 0x7f) << 8 | raw[8];
    if (!valid(s, 0))
        cc = FSW_C3 | FSW_C0;
    else if (v != v)
        cc = FSW_C0;
    else if (__builtin_isinf(v))
        cc = FSW_C2 | FSW_C0;
    else if (v == 0)
        cc = FSW_C3;
    else if (exp == 0)
        cc = FSW_C3 | FSW_C2;
    else
        cc = FSW_C2;
    if (raw[9] & 0x80)
        cc |= FSW_C1;
    s->fx.fsw = (uint16_t)((s->fx.fsw & ~FSW_CC) | cc);
}

/* The D9 E0-FF group on ST(0) (and ST(1)). */
static int unary(struct exec_ctx *x, unsigned code)
{
    struct emu_state *s = x->s;
    f80 a, b;
    uint16_t sw = 0, old;

    switch (code) {
    case 0xe0:
    case 0xe1:
    case 0xfa:
    case 0xfc:
    case 0xfe:
    case 0xff:
    case 0xf0:
        if (!operand(s, 0, &a))
            return XR_OK;
        old = host_begin(s);
        switch (code) {
        case 0xe0:
            __asm__ volatile("fchs\n\tfnstsw %1" : "+t"(a), "=m"(sw));
            break;
        case 0xe1:
            __asm__ volatile("fabs\n\tfnstsw %1" : "+t"(a), "=m"(sw));
            break;
        case 0xfa:
            __asm__ volatile("fsqrt\n\tfnstsw %1" : "+t"(a), "=m"(sw));
            break;
        case 0xfc:
            __asm__ volatile("frndint\n\tfnstsw %1" : "+t"(a), "=m"(sw));
            break;
        case 0xfe:
            __asm__ volatile("fsin\n\tfnstsw %1" : "+t"(a), "=m"(sw));
            break;
        case 0xff:
            __asm__ volatile("fcos\n\tfnstsw %1" : "+t"(a), "=m"(sw));
            break;
        default:
            __asm__ volatile("f2xm1\n\tfnstsw %1" : "+t"(a), "=m"(sw));
            break;
        }
        if (!host_end(s, old, false))
            return XR_OK;
        s->fx.fsw = (uint16_t)((s->fx.fsw & ~(FSW_C1 | FSW_C2)) | (sw & (FSW_C1 | FSW_C2)));
        set_st(s, 0, a);
        return XR_OK;
    case 0xf1:
    case 0xf3:
    case 0xf9:
    case 0xfd:
    case 0xf8:
    case 0xf5:
        if (!operand(s, 0, &a) || !operand(s, 1, &b))
            return XR_OK;
        old = host_begin(s);
        switch (code) {
        case 0xf1:
            __asm__ volatile("fyl2x\n\tfnstsw %1" : "=t"(a), "=m"(sw) : "0"(a), "u"(b) : "st(1)");
            break;
        case 0xf3:
            __asm__ volatile("fpatan\n\tfnstsw %1" : "=t"(a), "=m"(sw) : "0"(a), "u"(b) : "st(1)");
            break;
        case 0xf9:
            __asm__ volatile("fyl2xp1\n\tfnstsw %1" : "=t"(a), "=m"(sw) : "0"(a), "u"(b) : "st(1)");
            break;
        case 0xfd:
            __asm__ volatile("fscale\n\tfnstsw %1" : "+t"(a), "=m"(sw) : "u"(b));
            break;
        case 0xf8:
            __asm__ volatile("fprem\n\tfnstsw %1" : "+t"(a), "=m"(sw) : "u"(b));
            break;
        default:
            __asm__ volatile("fprem1\n\tfnstsw %1" : "+t"(a), "=m"(sw) : "u"(b));
            break;
        }
        if (!host_end(s, old, false))
            return XR_OK;
        if (code == 0xf8 || code == 0xf5)
            s->fx.fsw = (uint16_t)((s->fx.fsw & ~FSW_CC) | (sw & FSW_CC));
        else
            s->fx.fsw = (uint16_t)((s->fx.fsw & ~FSW_C1) | (sw & FSW_C1));
        if (code == 0xf1 || code == 0xf3 || code == 0xf9) { /* result to ST(1), pop */
            set_st(s, 1, a);
            pop(s);
        } else {
            set_st(s, 0, a);
        }
        return XR_OK;
    case 0xf2:
    case 0xfb:
    case 0xf4: /* FPTAN, FSINCOS, FXTRACT: ST(0) replaced, one value pushed */
        if (!operand(s, 0, &a))
            return XR_OK;
        old = host_begin(s);
        if (code == 0xf2)
            __asm__ volatile("fptan\n\tfnstsw %2" : "=t"(b), "=u"(a), "=m"(sw) : "0"(a));
        else if (code == 0xfb)
            __asm__ volatile("fsincos\n\tfnstsw %2" : "=t"(b), "=u"(a), "=m"(sw) : "0"(a));
        else
            __asm__ volatile("fxtract\n\tfnstsw %2" : "=t"(b), "=u"(a), "=m"(sw) : "0"(a));
        if (!host_end(s, old, false))
            return XR_OK;
        s->fx.fsw = (uint16_t)((s->fx.fsw & ~(FSW_C1 | FSW_C2)) | (sw & (FSW_C1 | FSW_C2)));
        if (sw & FSW_C2) /* operand out of range: nothing changes */
            return XR_OK;
        set_st(s, 0, a);
        push(s, b);
        return XR_OK;
    case 0xe4: /* FTST */
        if (!operand(s, 0, &a))
            return XR_OK;
        compare(x, a, 0.0L, false, false);
        return XR_OK;
    case 0xe5:
        examine(s);
        return XR_OK;
    case 0xe8:
        push(s, 1.0L);
        return XR_OK;
    case 0xe9:
        push(s, 3.32192809488736234781L);
        return XR_OK; /* log2(10) */
    case 0xea:
        push(s, 1.44269504088896340736L);
        return XR_OK; /* log2(e) */
    case 0xeb:
        push(s, 3.14159265358979323851L);
        return XR_OK;
    case 0xec:
        push(s, 0.301029995663981195214L);
        return XR_OK; /* log10(2) */
    case 0xed:
        push(s, 0.693147180559945309417L);
        return XR_OK; /* ln(2) */
    case 0xee:
        push(s, 0.0L);
        return XR_OK;
    case 0xf6:
        set_top(s, top(s) - 1);
        return XR_OK; /* FDECSTP */
    case 0xf7:
        set_top(s, top(s) + 1);
        return XR_OK; /* FINCSTP */
    default:
        return x_unimplemented(x);
    }
}

/* FSTENV/FLDENV (and the environment part of FSAVE/FRSTOR), 32-bit protected-mode layout (28 bytes). */
static uint16_t full_tag(const struct emu_state *s)
{
    uint16_t tw = 0;
    for (unsigned p = 0; p < 8; p++) {
        unsigned i = (p - top(s)) & 7, tag = 3;
        if ((s->fx.ftw >> p) & 1) {
            f80 v = st(s, i);
            tag = v == 0 ? 1 : (v != v || __builtin_isinf(v)) ? 2 : 0;
        }
        tw |= (uint16_t)(tag << (2 * p));
    }
    return tw;
}

static int store_env(struct exec_ctx *x, uint64_t off, unsigned seg)
{
    const struct emu_state *s = x->s;
    uint32_t env[7] = {
        s->fx.fcw | 0xffff0000u, s->fx.fsw | 0xffff0000u, full_tag(s) | 0xffff0000u, 0, 0, 0, 0};
    int r = x_write_buf(x, seg, off, 16, env);
    return r ? r : x_write_buf(x, seg, (off + 16) & x_addr_mask(x), 12, env + 4);
}

static int load_env(struct exec_ctx *x, uint64_t off, unsigned seg)
{
    struct emu_state *s = x->s;
    uint32_t env[7];
    int r = x_read_buf(x, seg, off, 16, env);
    if (r || (r = x_read_buf(x, seg, (off + 16) & x_addr_mask(x), 12, env + 4)))
        return r;
    s->fx.fcw = (uint16_t)env[0];
    s->fx.fsw = (uint16_t)env[1];
    uint8_t ftw = 0;
    for (unsigned p = 0; p < 8; p++) {
        if (((env[2] >> (2 * p)) & 3) != 3)
            ftw |= (uint8_t)(1u << p);
    }
    s->fx.ftw = ftw;
    /* An unmasked pending exception in the loaded status becomes visible as ES. */
    if (s->fx.fsw & ~s->fx.fcw & 0x3f)
        s->fx.fsw |= FSW_ES | FSW_B;
    else
        s->fx.fsw &= (uint16_t) ~(FSW_ES | FSW_B);
    return XR_OK;
}

/* FNSAVE / FRSTOR: the environment then ST(0)-ST(7) as 80-bit values. */
static int save_restore(struct exec_ctx *x, bool save)
{
    struct emu_state *s = x->s;
    struct x_op m;
    uint8_t regs[80];
    int r;

    x_op_rm(x, &m);
    if (save) {
        for (unsigned i = 0; i < 8; i++)
            memcpy(regs + 10 * i, s->fx.st[i], 10);
        if ((r = store_env(x, m.off, m.seg)))
            return r;
        for (unsigned i = 0; i < 80; i += 16) {
            unsigned n = 80 - i < 16 ? 80 - i : 16;
            if ((r = x_write_buf(x, m.seg, (m.off + 28 + i) & x_addr_mask(x), n, regs + i)))
                return r;
        }
        /* FNSAVE then initializes the FPU like FNINIT. */
        s->fx.fcw = 0x37f;
        s->fx.fsw = 0;
        s->fx.ftw = 0;
        return XR_OK;
    }
    for (unsigned i = 0; i < 80; i += 16) {
        unsigned n = 80 - i < 16 ? 80 - i : 16;
        if ((r = x_read_buf(x, m.seg, (m.off + 28 + i) & x_addr_mask(x), n, regs + i)))
            return r;
    }
    if ((r = load_env(x, m.off, m.seg)))
        return r;
    for (unsigned i = 0; i < 8; i++) {
        memcpy(s->fx.st[i], regs + 10 * i, 10);
        memset(s->fx.st[i] + 10, 0, 6);
    }
    return XR_OK;
}

static bool fcmov_cond(const struct emu_state *s, unsigned esc, unsigned reg)
{
    static const uint8_t cc[4] = {EMU_COND_B, EMU_COND_E, EMU_COND_BE, EMU_COND_P};
    bool c = emu_cond(s, cc[reg & 3]);
    return esc == 3 ? !c : c;
}

static int exec_reg_form(struct exec_ctx *x, unsigned esc, unsigned reg, unsigned i)
{
    struct emu_state *s = x->s;
    unsigned code = x->in->modrm;
    f80 a, b, r;

    switch (esc) {
    case 0: /* D8: ST(0) = ST(0) op ST(i); FCOM/FCOMP */
        if (!operand(s, 0, &a) || !operand(s, i, &b))
            return XR_OK;
        if (reg == 2 || reg == 3) {
            if (compare(x, a, b, false, false) && reg == 3)
                pop(s);
            return XR_OK;
        }
        if (arith(s, reg, a, b, &r))
            set_st(s, 0, r);
        return XR_OK;
    case 1:
        if (reg == 0) { /* FLD ST(i) */
            if (!operand(s, i, &a))
                return XR_OK;
            push(s, a);
            return XR_OK;
        }
        if (reg == 1) { /* FXCH */
            if (!operand(s, 0, &a) || !operand(s, i, &b))
                return XR_OK;
            set_st(s, 0, b);
            set_st(s, i, a);
            return XR_OK;
        }
        if (code == 0xd0) /* FNOP */
            return XR_OK;
        return unary(x, code);
    case 2:
    case 3:
        if (reg < 4) { /* FCMOVcc */
            if (!operand(s, i, &b))
                return XR_OK;
            if (fcmov_cond(s, esc, reg))
                set_st(s, 0, b);
            return XR_OK;
        }
        if (esc == 2 && code == 0xe9) { /* FUCOMPP */
            if (!operand(s, 0, &a) || !operand(s, 1, &b))
                return XR_OK;
            if (compare(x, a, b, true, false)) {
                pop(s);
                pop(s);
            }
            return XR_OK;
        }
        if (esc == 3 && (reg == 5 || reg == 6)) { /* FUCOMI, FCOMI */
            if (!operand(s, 0, &a) || !operand(s, i, &b))
                return XR_OK;
            compare(x, a, b, reg == 5, true);
            return XR_OK;
        }
        break;
    case 4: /* DC: ST(i) = ST(0) op' ST(i) */
    case 6: /* DE: the same, then pop; DE D9 is FCOMPP */
        if (esc == 6 && code == 0xd9) {
            if (!operand(s, 0, &a) || !operand(s, 1, &b))
                return XR_OK;
            if (compare(x, a, b, false, false)) {
                pop(s);
                pop(s);
            }
            return XR_OK;
        }
        if (reg == 2 || reg == 3)
            break;
        if (!operand(s, 0, &a) || !operand(s, i, &b))
            return XR_OK;
        if (!(reg >= 4 ? arith(s, reg, a, b, &r) : arith(s, reg, b, a, &r)))
            return XR_OK;
        set_st(s, i, r);
        if (esc == 6)
            pop(s);
        return XR_OK;
    case 5:
        if (reg == 0) { /* FFREE */
            s->fx.ftw &= (uint8_t) ~(1u << ((top(s) + i) & 7));
            return XR_OK;
        }
        if (reg == 2 || reg == 3) { /* FST/FSTP ST(i) */
            if (!operand(s, 0, &a))
                return XR_OK;
            /* A register keeps all 80 bits: nothing is rounded, so C1 ("rounded up") is cleared. */
            s->fx.fsw &= (uint16_t)~FSW_C1;
            set_st(s, i, a);
            if (reg == 3)
                pop(s);
            return XR_OK;
        }
        if (reg == 4 || reg == 5) { /* FUCOM/FUCOMP */
            if (!operand(s, 0, &a) || !operand(s, i, &b))
                return XR_OK;
            if (compare(x, a, b, true, false) && reg == 5)
                pop(s);
            return XR_OK;
        }
        break;
    case 7:
        if (reg == 5 || reg == 6) { /* FUCOMIP, FCOMIP */
            if (!operand(s, 0, &a) || !operand(s, i, &b))
                return XR_OK;
            if (compare(x, a, b, reg == 5, true))
                pop(s);
            return XR_OK;
        }
        break;
    }
    return x_unimplemented(x);
}

static int exec_mem_form(struct exec_ctx *x, unsigned esc, unsigned reg)
{
    static const uint8_t real_size[8] = {4, 0, 0, 0, 8, 0, 0, 0};
    static const uint8_t int_size[8] = {0, 0, 4, 4, 0, 8, 2, 2};
    struct emu_state *s = x->s;
    struct x_op m;
    f80 a, b, r;
    int rc;

    if (esc == 0 || esc == 2 || esc == 4 || esc == 6) { /* arithmetic with a memory operand */
        bool ok = true;
        if ((rc = (esc == 0 || esc == 4) ? read_real(x, real_size[esc], &b, &ok)
                                         : read_int(x, esc == 2 ? 4 : 2, &b)))
            return rc;
        if (!ok)
            return XR_OK;
        if (!operand(s, 0, &a))
            return XR_OK;
        if (reg == 2 || reg == 3) {
            if (compare(x, a, b, false, false) && reg == 3)
                pop(s);
            return XR_OK;
        }
        if (arith(s, reg, a, b, &r))
            set_st(s, 0, r);
        return XR_OK;
    }
    x_op_rm(x, &m);
    switch (esc << 3 | reg) {
    case 1 << 3 | 0:   /* FLD m32 */
    case 5 << 3 | 0:   /* FLD m64 */
    case 3 << 3 | 5: { /* FLD m80 */
        bool ok;
        if ((rc = read_real(x, esc == 1 ? 4 : esc == 5 ? 8 : 10, &a, &ok)))
            return rc;
        if (ok)
            push(s, a);
        return XR_OK;
    }
    case 3 << 3 | 0: /* FILD m32 */
    case 7 << 3 | 0: /* FILD m16 */
    case 7 << 3 | 5: /* FILD m64 */
        if ((r = read_int(x, esc == 3 ? 4 : reg == 0 ? 2 : 8, &a)))
            return r;
        push(s, a);
        return XR_OK;
    case 1 << 3 | 2:
    case 1 << 3 | 3: /* FST(P) m32 */
    case 5 << 3 | 2:
    case 5 << 3 | 3: /* FST(P) m64 */
    case 3 << 3 | 7: /* FSTP m80 */
        if (!operand(s, 0, &a) && !valid(s, 0))
            return XR_OK;
        if ((rc = write_real(x, esc == 1 ? 4 : esc == 5 ? 8 : 10, a)))
            return rc == XR_RETRY ? XR_OK : rc;
        if (reg != 2)
            pop(s);
        return XR_OK;
    case 3 << 3 | 1:
    case 3 << 3 | 2:
    case 3 << 3 | 3: /* FISTTP/FIST/FISTP m32 */
    case 5 << 3 | 1: /* FISTTP m64 */
    case 7 << 3 | 1:
    case 7 << 3 | 2:
    case 7 << 3 | 3: /* FISTTP/FIST/FISTP m16 */
    case 7 << 3 | 7: /* FISTP m64 */
        if (!operand(s, 0, &a) && !valid(s, 0))
            return XR_OK;
        if ((rc = write_int(x, esc == 5 || reg == 7 ? 8 : int_size[esc], a, reg == 1)))
            return rc == XR_RETRY ? XR_OK : rc;
        if (reg != 2)
            pop(s);
        return XR_OK;
    case 1 << 3 | 4: /* FLDENV */
        return load_env(x, m.off, m.seg);
    case 1 << 3 | 6: /* FNSTENV: also masks all exceptions */
        if ((r = store_env(x, m.off, m.seg)))
            return r;
        s->fx.fcw |= 0x3f;
        s->fx.fsw &= (uint16_t) ~(FSW_ES | FSW_B); /* nothing is unmasked any more */
        return XR_OK;
    case 5 << 3 | 4: /* FRSTOR */
        return save_restore(x, false);
    case 5 << 3 | 6: /* FNSAVE */
        return save_restore(x, true);
    default:
        return x_unimplemented(x);
    }
}

/* Control instructions that do not wait for pending exceptions. */
static bool non_waiting(const struct x86_insn *in)
{
    unsigned esc = in->opcode & 7, reg = (in->modrm >> 3) & 7;
    if (in->mod == 3)
        return (esc == 3 && (in->modrm == 0xe2 || in->modrm == 0xe3)) || (esc == 7 && in->modrm == 0xe0);
    return (esc == 1 && (reg == 6 || reg == 7)) || (esc == 5 && (reg == 6 || reg == 7));
}

int exec_x87(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    unsigned esc = in->opcode & 7, reg = (in->modrm >> 3) & 7;
    uint64_t v;
    int r;

    if ((s->cr0 & (EMU_CR0_EM | EMU_CR0_TS)))
        return x_fault(x, EMU_EXC_NM, 0);
    if (!non_waiting(in) && (s->fx.fsw & FSW_ES) && (s->cr0 & EMU_CR0_NE))
        return x_fault(x, EMU_EXC_MF, 0);
    if (in->mod == 3) {
        switch (in->modrm | esc << 8) {
        case 0x3e3: /* FNINIT */
            s->fx.fcw = 0x37f;
            s->fx.fsw = 0;
            s->fx.ftw = 0;
            s->fx.fop = 0;
            s->fx.fip = s->fx.fdp = 0;
            return XR_OK;
        case 0x3e2: /* FNCLEX */
            s->fx.fsw &= 0x7f00;
            return XR_OK;
        case 0x7e0: /* FNSTSW AX */
            x_set_reg(x, EMU_RAX, 2, s->fx.fsw);
            return XR_OK;
        }
        return exec_reg_form(x, esc, reg, in->modrm & 7);
    }
    struct x_op m;
    x_op_rm(x, &m);
    if (esc == 1 && reg == 7) /* FNSTCW m16 */
        return x_write(x, m.seg, m.off, 2, s->fx.fcw);
    if (esc == 5 && reg == 7) /* FNSTSW m16 */
        return x_write(x, m.seg, m.off, 2, s->fx.fsw);
    if (esc == 1 && reg == 5) { /* FLDCW m16 */
        if ((r = x_read(x, m.seg, m.off, 2, &v)))
            return r;
        s->fx.fcw = (uint16_t)(v | 0x40);
        if (s->fx.fsw & ~s->fx.fcw & 0x3f)
            s->fx.fsw |= FSW_ES | FSW_B;
        else
            s->fx.fsw &= (uint16_t) ~(FSW_ES | FSW_B);
        return XR_OK;
    }
    return exec_mem_form(x, esc, reg);
}
