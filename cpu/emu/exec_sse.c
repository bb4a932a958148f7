/* emu interpreter: SSE/SSE2 on XMM registers: moves, logic, packed integers and floating point (the host's
 * SSE unit under the guest's MXCSR). MMX register forms and SSE3 and later are not implemented. */
#include "emu/exec.h"

#include <emmintrin.h>

union xmm {
    uint8_t b[16];
    uint16_t w[8];
    uint32_t d[4];
    uint64_t q[2];
    int8_t sb[16];
    int16_t sw[8];
    int32_t sd[4];
};

static union xmm *xreg(struct exec_ctx *x, unsigned i)
{
    return (union xmm *)x->s->fx.xmm[i & 15];
}

/* The r/m source: an XMM register, or size bytes of memory (zero-filled above), aligned to 16 if asked. */
static int src_rm(struct exec_ctx *x, unsigned size, bool aligned, union xmm *v)
{
    if (!(x->in->flags & X86_INSN_MEM)) {
        *v = *xreg(x, x->in->rm);
        return XR_OK;
    }
    uint64_t off = x_ea(x);
    memset(v, 0, sizeof(*v));
    if (aligned && ((off + x_seg_base(x, x->in->seg)) & 15))
        return x_fault(x, EMU_EXC_GP, 0);
    return x_read_buf(x, x->in->seg, off, size, v);
}

/* Stores size bytes of v to the r/m operand (a register receives all 16 bytes). */
static int store_rm(struct exec_ctx *x, unsigned size, bool aligned, const union xmm *v)
{
    if (!(x->in->flags & X86_INSN_MEM)) {
        *xreg(x, x->in->rm) = *v;
        return XR_OK;
    }
    uint64_t off = x_ea(x);
    if (aligned && ((off + x_seg_base(x, x->in->seg)) & 15))
        return x_fault(x, EMU_EXC_GP, 0);
    return x_write_buf(x, x->in->seg, off, size, v);
}

static int sse_moves(struct exec_ctx *x, bool *handled)
{
    const struct x86_insn *in = x->in;
    unsigned mp = in->mandatory;
    bool mem = in->flags & X86_INSN_MEM;
    union xmm v, *g = xreg(x, in->reg);
    int r;

    *handled = true;
    switch (in->opcode) {
    case 0x10: /* MOVUPS/MOVUPD/MOVSS/MOVSD load */
    case 0x11: {
        unsigned size = mp == X86_MP_F3 ? 4 : mp == X86_MP_F2 ? 8 : 16;
        if (in->opcode == 0x10) {
            if ((r = src_rm(x, size, false, &v)))
                return r;
            if (size == 16 || mem)
                *g = v;
            else
                memcpy(g, &v, size); /* register MOVSS/MOVSD merge the low element */
            return XR_OK;
        }
        if (!mem && size < 16) {
            memcpy(xreg(x, in->rm), g, size);
            return XR_OK;
        }
        return store_rm(x, size, false, g);
    }
    case 0x28: /* MOVAPS/MOVAPD */
        if ((r = src_rm(x, 16, true, &v)))
            return r;
        *g = v;
        return XR_OK;
    case 0x29:
    case 0x2b: /* MOVNTPS/MOVNTPD */
        return store_rm(x, 16, true, g);
    case 0x6f: /* MOVDQA / MOVDQU */
        if (mp != X86_MP_66 && mp != X86_MP_F3)
            break;
        if ((r = src_rm(x, 16, mp == X86_MP_66, &v)))
            return r;
        *g = v;
        return XR_OK;
    case 0x7f:
        if (mp != X86_MP_66 && mp != X86_MP_F3)
            break;
        return store_rm(x, 16, mp == X86_MP_66, g);
    case 0xe7: /* MOVNTDQ */
        if (mp != X86_MP_66)
            break;
        return store_rm(x, 16, true, g);
    case 0x6e: { /* MOVD/MOVQ xmm, r/m */
        struct x_op src;
        uint64_t val;
        if (mp != X86_MP_66)
            break;
        x_op_rm(x, &src);
        if ((r = x_op_read(x, &src, in->opsize, &val)))
            return r;
        memset(g, 0, sizeof(*g));
        g->q[0] = val;
        return XR_OK;
    }
    case 0x7e:
        if (mp == X86_MP_66) { /* MOVD/MOVQ r/m, xmm */
            struct x_op dst;
            x_op_rm(x, &dst);
            return x_op_write(x, &dst, in->opsize, g->q[0] & emu_size_mask(in->opsize));
        }
        if (mp == X86_MP_F3) { /* MOVQ xmm, xmm/m64 */
            if ((r = src_rm(x, 8, false, &v)))
                return r;
            g->q[0] = v.q[0];
            g->q[1] = 0;
            return XR_OK;
        }
        break;
    case 0xd6: /* MOVQ xmm/m64, xmm */
        if (mp != X86_MP_66)
            break;
        if (!mem) {
            union xmm *d = xreg(x, in->rm);
            d->q[0] = g->q[0];
            d->q[1] = 0;
            return XR_OK;
        }
        return store_rm(x, 8, false, g);
    case 0x12: /* MOVLPS/MOVLPD m64 load; MOVHLPS */
    case 0x16: /* MOVHPS/MOVHPD m64 load; MOVLHPS */
        if (mp != X86_MP_NONE && mp != X86_MP_66)
            break;
        if ((r = src_rm(x, 8, false, &v)))
            return r;
        if (in->opcode == 0x12)
            g->q[0] = mem ? v.q[0] : v.q[1];
        else
            g->q[1] = v.q[0];
        return XR_OK;
    case 0x14: /* UNPCKLPS/UNPCKLPD */
    case 0x15: /* UNPCKHPS/UNPCKHPD */
        if (mp != X86_MP_NONE && mp != X86_MP_66)
            break;
        if ((r = src_rm(x, 16, true, &v)))
            return r;
        if (mp == X86_MP_66) {
            unsigned h = in->opcode & 1;
            union xmm t = {.q = {g->q[h], v.q[h]}};
            *g = t;
        } else {
            unsigned h = (in->opcode & 1) * 2;
            union xmm t = {.d = {g->d[h], v.d[h], g->d[h + 1], v.d[h + 1]}};
            *g = t;
        }
        return XR_OK;
    case 0x50: { /* MOVMSKPS/MOVMSKPD r32, xmm */
        const union xmm *src = xreg(x, in->rm);
        uint32_t mask = 0;
        if (mp == X86_MP_66)
            mask = (uint32_t)(src->q[0] >> 63) | (uint32_t)(src->q[1] >> 63) << 1;
        else if (mp == X86_MP_NONE)
            for (unsigned i = 0; i < 4; i++)
                mask |= (src->d[i] >> 31) << i;
        else
            break;
        x_set_reg(x, in->reg, 4, mask);
        return XR_OK;
    }
    case 0xc6: /* SHUFPD (SHUFPS is with the packed-integer shuffles) */
        if (mp != X86_MP_66)
            break;
        if ((r = src_rm(x, 16, true, &v)))
            return r;
        {
            union xmm t = {.q = {g->q[in->imm & 1], v.q[(in->imm >> 1) & 1]}};
            *g = t;
        }
        return XR_OK;
    case 0xc4: { /* PINSRW xmm, r32/m16, imm8 */
        struct x_op src;
        uint64_t w;
        if (mp != X86_MP_66)
            break;
        x_op_rm(x, &src);
        if ((r = x_op_read(x, &src, 2, &w)))
            return r;
        g->w[in->imm & 7] = (uint16_t)w;
        return XR_OK;
    }
    case 0xc5: /* PEXTRW r32, xmm, imm8 */
        if (mp != X86_MP_66)
            break;
        x_set_reg(x, in->reg, 4, xreg(x, in->rm)->w[in->imm & 7]);
        return XR_OK;
    case 0x13: /* MOVLPS/MOVLPD store */
    case 0x17: /* MOVHPS/MOVHPD store */
        if (mp != X86_MP_NONE && mp != X86_MP_66)
            break;
        v.q[0] = g->q[in->opcode == 0x17];
        return store_rm(x, 8, false, &v);
    }
    *handled = false;
    return XR_OK;
}

static void shuffle32(union xmm *d, const union xmm *s, unsigned imm, unsigned first, unsigned n)
{
    union xmm t = *d;
    for (unsigned i = 0; i < n; i++)
        t.d[first + i] = s->d[(imm >> (2 * i)) & 3];
    *d = t;
}

static void shuffle16(union xmm *d, const union xmm *s, unsigned imm, unsigned base)
{
    union xmm t = *s;
    for (unsigned i = 0; i < 4; i++)
        t.w[base + i] = s->w[base + ((imm >> (2 * i)) & 3)];
    *d = t;
}

/* Immediate shifts (0F 71-73 with 66): ModRM.reg selects the operation, rm the register. */
static int sse_shift_imm(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    union xmm *d = xreg(x, in->rm), t;
    unsigned reg = (in->modrm >> 3) & 7, n = (unsigned)in->imm & 0xff;

    if (in->mandatory != X86_MP_66)
        return x_unimplemented(x);
    memset(&t, 0, sizeof(t));
    if (in->opcode == 0x73 && (reg == 3 || reg == 7)) { /* PSRLDQ / PSLLDQ: bytes */
        for (unsigned i = 0; i < 16; i++) {
            int src = reg == 3 ? (int)(i + n) : (int)i - (int)n;
            t.b[i] = n < 16 && src >= 0 && src < 16 ? d->b[src] : 0;
        }
        *d = t;
        return XR_OK;
    }
    unsigned lanes = in->opcode == 0x71 ? 8 : in->opcode == 0x72 ? 4 : 2, bits = 128 / lanes;
    for (unsigned i = 0; i < lanes; i++) {
        uint64_t v = lanes == 8 ? d->w[i] : lanes == 4 ? d->d[i] : d->q[i], res;
        if (reg == 2)
            res = n >= bits ? 0 : v >> n;
        else if (reg == 6)
            res = n >= bits ? 0 : v << n;
        else /* 4: arithmetic right */
            res = (uint64_t)((int64_t)emu_sign_extend(bits / 8, v) >> (n >= bits ? bits - 1 : n));
        if (lanes == 8)
            t.w[i] = (uint16_t)res;
        else if (lanes == 4)
            t.d[i] = (uint32_t)res;
        else
            t.q[i] = res;
    }
    *d = t;
    return XR_OK;
}

/* The opcodes sse_binary implements (66 prefix unless noted there). */
static bool binary_op(unsigned op)
{
    switch (op) {
    case 0x54:
    case 0x55:
    case 0x56:
    case 0x57:
    case 0x60:
    case 0x61:
    case 0x62:
    case 0x63:
    case 0x64:
    case 0x65:
    case 0x66:
    case 0x67:
    case 0x68:
    case 0x69:
    case 0x6a:
    case 0x6b:
    case 0x6c:
    case 0x6d:
    case 0x70:
    case 0x74:
    case 0x75:
    case 0x76:
    case 0xc6:
    case 0xd1:
    case 0xd2:
    case 0xd3:
    case 0xd4:
    case 0xd5:
    case 0xd8:
    case 0xd9:
    case 0xda:
    case 0xdb:
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf:
    case 0xe0:
    case 0xe1:
    case 0xe2:
    case 0xe3:
    case 0xe4:
    case 0xe5:
    case 0xe8:
    case 0xe9:
    case 0xea:
    case 0xeb:
    case 0xec:
    case 0xed:
    case 0xee:
    case 0xef:
    case 0xf1:
    case 0xf2:
    case 0xf3:
    case 0xf4:
    case 0xf5:
    case 0xf6:
    case 0xf8:
    case 0xf9:
    case 0xfa:
    case 0xfb:
    case 0xfc:
    case 0xfd:
    case 0xfe:
        return true;
    default:
        return false;
    }
}

/* Saturating, multiplying, averaging, packing and register-count shift operations, done with the host's SSE2
 * (same semantics by construction). false: not one of them. */
static bool int_arith(unsigned op, union xmm *d, const union xmm *src)
{
    __m128i a = _mm_loadu_si128((const __m128i *)d), b = _mm_loadu_si128((const __m128i *)src), r;
    // clang-format off
    switch (op) {
    case 0xd1: r = _mm_srl_epi16(a, b); break;
    case 0xd2: r = _mm_srl_epi32(a, b); break;
    case 0xd3: r = _mm_srl_epi64(a, b); break;
    case 0xe1: r = _mm_sra_epi16(a, b); break;
    case 0xe2: r = _mm_sra_epi32(a, b); break;
    case 0xf1: r = _mm_sll_epi16(a, b); break;
    case 0xf2: r = _mm_sll_epi32(a, b); break;
    case 0xf3: r = _mm_sll_epi64(a, b); break;
    case 0xd5: r = _mm_mullo_epi16(a, b); break;
    case 0xe5: r = _mm_mulhi_epi16(a, b); break;
    case 0xe4: r = _mm_mulhi_epu16(a, b); break;
    case 0xf4: r = _mm_mul_epu32(a, b); break;
    case 0xf5: r = _mm_madd_epi16(a, b); break;
    case 0xf6: r = _mm_sad_epu8(a, b); break;
    case 0xd8: r = _mm_subs_epu8(a, b); break;
    case 0xd9: r = _mm_subs_epu16(a, b); break;
    case 0xdc: r = _mm_adds_epu8(a, b); break;
    case 0xdd: r = _mm_adds_epu16(a, b); break;
    case 0xe8: r = _mm_subs_epi8(a, b); break;
    case 0xe9: r = _mm_subs_epi16(a, b); break;
    case 0xec: r = _mm_adds_epi8(a, b); break;
    case 0xed: r = _mm_adds_epi16(a, b); break;
    case 0xe0: r = _mm_avg_epu8(a, b); break;
    case 0xe3: r = _mm_avg_epu16(a, b); break;
    case 0xea: r = _mm_min_epi16(a, b); break;
    case 0xee: r = _mm_max_epi16(a, b); break;
    case 0x63: r = _mm_packs_epi16(a, b); break;
    case 0x67: r = _mm_packus_epi16(a, b); break;
    case 0x6b: r = _mm_packs_epi32(a, b); break;
    default: return false;
    }
    // clang-format on
    _mm_storeu_si128((__m128i *)d, r);
    return true;
}

/* Two-operand 128-bit operations xmm, xmm/m128 (memory aligned). */
static int sse_binary(struct exec_ctx *x, bool *handled)
{
    const struct x86_insn *in = x->in;
    unsigned op = in->opcode, mp = in->mandatory;
    union xmm s, *d = xreg(x, in->reg), t;
    int r;

    *handled = true;
    bool ps_logic = op >= 0x54 && op <= 0x57 && (mp == X86_MP_NONE || mp == X86_MP_66);
    bool shuf = op == 0x70 || (op == 0xc6 && mp == X86_MP_NONE);
    if ((!ps_logic && !shuf && mp != X86_MP_66) || (op == 0xc6 && mp != X86_MP_NONE) || !binary_op(op)) {
        *handled = false;
        return XR_OK;
    }
    if ((r = src_rm(x, 16, true, &s)))
        return r;
    if (int_arith(op, d, &s))
        return XR_OK;
    t = *d;
    // clang-format off
    switch (op) {
    case 0x54: case 0xdb: t.q[0] &= s.q[0]; t.q[1] &= s.q[1]; break;           /* ANDPS, PAND */
    case 0x55: case 0xdf: t.q[0] = ~t.q[0] & s.q[0]; t.q[1] = ~t.q[1] & s.q[1]; break; /* ANDNPS, PANDN */
    case 0x56: case 0xeb: t.q[0] |= s.q[0]; t.q[1] |= s.q[1]; break;           /* ORPS, POR */
    case 0x57: case 0xef: t.q[0] ^= s.q[0]; t.q[1] ^= s.q[1]; break;           /* XORPS, PXOR */
    case 0x74: for (unsigned i = 0; i < 16; i++) t.b[i] = t.b[i] == s.b[i] ? 0xff : 0; break;
    case 0x75: for (unsigned i = 0; i < 8; i++) t.w[i] = t.w[i] == s.w[i] ? 0xffff : 0; break;
    case 0x76: for (unsigned i = 0; i < 4; i++) t.d[i] = t.d[i] == s.d[i] ? ~0u : 0; break;
    case 0x64: for (unsigned i = 0; i < 16; i++) t.b[i] = t.sb[i] > s.sb[i] ? 0xff : 0; break;
    case 0x65: for (unsigned i = 0; i < 8; i++) t.w[i] = t.sw[i] > s.sw[i] ? 0xffff : 0; break;
    case 0x66: for (unsigned i = 0; i < 4; i++) t.d[i] = t.sd[i] > s.sd[i] ? ~0u : 0; break;
    case 0xda: for (unsigned i = 0; i < 16; i++) t.b[i] = t.b[i] < s.b[i] ? t.b[i] : s.b[i]; break;
    case 0xde: for (unsigned i = 0; i < 16; i++) t.b[i] = t.b[i] > s.b[i] ? t.b[i] : s.b[i]; break;
    case 0xf8: for (unsigned i = 0; i < 16; i++) t.b[i] = (uint8_t)(t.b[i] - s.b[i]); break;
    case 0xf9: for (unsigned i = 0; i < 8; i++) t.w[i] = (uint16_t)(t.w[i] - s.w[i]); break;
    case 0xfa: for (unsigned i = 0; i < 4; i++) t.d[i] -= s.d[i]; break;
    case 0xfb: for (unsigned i = 0; i < 2; i++) t.q[i] -= s.q[i]; break;
    case 0xfc: for (unsigned i = 0; i < 16; i++) t.b[i] = (uint8_t)(t.b[i] + s.b[i]); break;
    case 0xfd: for (unsigned i = 0; i < 8; i++) t.w[i] = (uint16_t)(t.w[i] + s.w[i]); break;
    case 0xfe: for (unsigned i = 0; i < 4; i++) t.d[i] += s.d[i]; break;
    case 0xd4: for (unsigned i = 0; i < 2; i++) t.q[i] += s.q[i]; break;
    case 0x60: for (unsigned i = 0; i < 8; i++) { t.b[2 * i] = d->b[i]; t.b[2 * i + 1] = s.b[i]; } break;
    case 0x61: for (unsigned i = 0; i < 4; i++) { t.w[2 * i] = d->w[i]; t.w[2 * i + 1] = s.w[i]; } break;
    case 0x62: for (unsigned i = 0; i < 2; i++) { t.d[2 * i] = d->d[i]; t.d[2 * i + 1] = s.d[i]; } break;
    case 0x6c: t.q[1] = s.q[0]; break;
    case 0x68:
        for (unsigned i = 0; i < 8; i++) { t.b[2 * i] = d->b[8 + i]; t.b[2 * i + 1] = s.b[8 + i]; }
        break;
    case 0x69:
        for (unsigned i = 0; i < 4; i++) { t.w[2 * i] = d->w[4 + i]; t.w[2 * i + 1] = s.w[4 + i]; }
        break;
    case 0x6a:
        for (unsigned i = 0; i < 2; i++) { t.d[2 * i] = d->d[2 + i]; t.d[2 * i + 1] = s.d[2 + i]; }
        break;
    case 0x6d: t.q[0] = d->q[1]; t.q[1] = s.q[1]; break;
    case 0x70: /* PSHUFD, PSHUFHW (F3), PSHUFLW (F2) */
        if (mp == X86_MP_66)
            shuffle32(&t, &s, (unsigned)in->imm, 0, 4);
        else if (mp == X86_MP_F3)
            shuffle16(&t, &s, (unsigned)in->imm, 4);
        else if (mp == X86_MP_F2)
            shuffle16(&t, &s, (unsigned)in->imm, 0);
        else
            return x_unimplemented(x); /* PSHUFW on MMX registers */
        break;
    case 0xc6: { /* SHUFPS (SHUFPD is not implemented) */
        union xmm a = *d;
        t.d[0] = a.d[in->imm & 3];
        t.d[1] = a.d[(in->imm >> 2) & 3];
        t.d[2] = s.d[(in->imm >> 4) & 3];
        t.d[3] = s.d[(in->imm >> 6) & 3];
        break;
    }
    default:
        *handled = false;
        return XR_OK;
    }
    // clang-format on
    *d = t;
    return XR_OK;
}

/* ---- floating point: executed with the host's SSE unit under the guest's MXCSR (rounding, DAZ, FTZ), all
 * host exceptions masked; guest-unmasked exceptions raise #XM (or #UD without CR4.OSXMMEXCPT) before anything
 * is written. ---- */

static unsigned fp_begin(const struct exec_ctx *x)
{
    unsigned host = _mm_getcsr();
    _mm_setcsr((x->s->fx.mxcsr & ~0x3fu) | 0x1f80u);
    return host;
}

static int fp_end(struct exec_ctx *x, unsigned host)
{
    unsigned flags = _mm_getcsr() & 0x3fu;
    _mm_setcsr(host);
    if (flags & ~(x->s->fx.mxcsr >> 7) & 0x3fu) {
        x->s->fx.mxcsr |= flags; /* the flags are set even when the exception is raised */
        return x_fault(x, (x->s->cr4 & EMU_CR4_OSXMMEXCPT) ? EMU_EXC_XM : EMU_EXC_UD, 0);
    }
    x->s->fx.mxcsr |= flags;
    return XR_OK;
}

/* The compiler does not know that MXCSR affects arithmetic: operands pass through an empty volatile asm after
 * fp_begin and results through another before fp_end, which keeps the computation between the two (volatile
 * operations stay in order). */
#define PIN(v) __asm__ volatile("" : "+x"(v))
#define PIN_GPR(v) __asm__ volatile("" : "+r"(v))

static __m128 ps(const union xmm *v)
{
    __m128 r = _mm_loadu_ps((const float *)v);
    PIN(r);
    return r;
}

static __m128d pd(const union xmm *v)
{
    __m128d r = _mm_loadu_pd((const double *)v);
    PIN(r);
    return r;
}

static __m128i pi(const union xmm *v)
{
    __m128i r = _mm_loadu_si128((const __m128i *)v);
    PIN(r);
    return r;
}

static void put_ps(union xmm *v, __m128 r)
{
    PIN(r);
    _mm_storeu_ps((float *)v, r);
}

static void put_pd(union xmm *v, __m128d r)
{
    PIN(r);
    _mm_storeu_pd((double *)v, r);
}

static void put_pi(union xmm *v, __m128i r)
{
    PIN(r);
    _mm_storeu_si128((__m128i *)v, r);
}

/* ADD, MUL, SUB, MIN, DIV, MAX, SQRT in the PS/PD/SS/SD forms. */
static void fp_arith(unsigned op, unsigned mp, const union xmm *a, const union xmm *b, union xmm *r)
{
    __m128 fa = ps(a), fb = ps(b);
    __m128d da = pd(a), db = pd(b);
    // clang-format off
    switch (mp) {
    case X86_MP_NONE:
        switch (op) {
        case 0x51: put_ps(r, _mm_sqrt_ps(fb)); break;
        case 0x58: put_ps(r, _mm_add_ps(fa, fb)); break;
        case 0x59: put_ps(r, _mm_mul_ps(fa, fb)); break;
        case 0x5c: put_ps(r, _mm_sub_ps(fa, fb)); break;
        case 0x5d: put_ps(r, _mm_min_ps(fa, fb)); break;
        case 0x5e: put_ps(r, _mm_div_ps(fa, fb)); break;
        default: put_ps(r, _mm_max_ps(fa, fb)); break;
        }
        break;
    case X86_MP_66:
        switch (op) {
        case 0x51: put_pd(r, _mm_sqrt_pd(db)); break;
        case 0x58: put_pd(r, _mm_add_pd(da, db)); break;
        case 0x59: put_pd(r, _mm_mul_pd(da, db)); break;
        case 0x5c: put_pd(r, _mm_sub_pd(da, db)); break;
        case 0x5d: put_pd(r, _mm_min_pd(da, db)); break;
        case 0x5e: put_pd(r, _mm_div_pd(da, db)); break;
        default: put_pd(r, _mm_max_pd(da, db)); break;
        }
        break;
    case X86_MP_F3:
        switch (op) {
        case 0x51: put_ps(r, _mm_move_ss(fa, _mm_sqrt_ss(fb))); break;
        case 0x58: put_ps(r, _mm_add_ss(fa, fb)); break;
        case 0x59: put_ps(r, _mm_mul_ss(fa, fb)); break;
        case 0x5c: put_ps(r, _mm_sub_ss(fa, fb)); break;
        case 0x5d: put_ps(r, _mm_min_ss(fa, fb)); break;
        case 0x5e: put_ps(r, _mm_div_ss(fa, fb)); break;
        default: put_ps(r, _mm_max_ss(fa, fb)); break;
        }
        break;
    default:
        switch (op) {
        case 0x51: put_pd(r, _mm_sqrt_sd(da, db)); break;
        case 0x58: put_pd(r, _mm_add_sd(da, db)); break;
        case 0x59: put_pd(r, _mm_mul_sd(da, db)); break;
        case 0x5c: put_pd(r, _mm_sub_sd(da, db)); break;
        case 0x5d: put_pd(r, _mm_min_sd(da, db)); break;
        case 0x5e: put_pd(r, _mm_div_sd(da, db)); break;
        default: put_pd(r, _mm_max_sd(da, db)); break;
        }
        break;
    }
    // clang-format on
}

/* CMPPS/PD/SS/SD predicates 0-7 (the scalar forms compare only the low element, which matters for the flags).
 */
static void fp_cmp(unsigned mp, unsigned pred, const union xmm *a, const union xmm *b, union xmm *r)
{
    __m128 fa, fb, f;
    __m128d da, db, d;
    // clang-format off
    switch (mp) {
    case X86_MP_NONE:
        fa = ps(a), fb = ps(b);
        switch (pred & 7) {
        case 0: f = _mm_cmpeq_ps(fa, fb); break;
        case 1: f = _mm_cmplt_ps(fa, fb); break;
        case 2: f = _mm_cmple_ps(fa, fb); break;
        case 3: f = _mm_cmpunord_ps(fa, fb); break;
        case 4: f = _mm_cmpneq_ps(fa, fb); break;
        case 5: f = _mm_cmpnlt_ps(fa, fb); break;
        case 6: f = _mm_cmpnle_ps(fa, fb); break;
        default: f = _mm_cmpord_ps(fa, fb); break;
        }
        put_ps(r, f);
        break;
    case X86_MP_F3:
        fa = ps(a), fb = ps(b);
        switch (pred & 7) {
        case 0: f = _mm_cmpeq_ss(fa, fb); break;
        case 1: f = _mm_cmplt_ss(fa, fb); break;
        case 2: f = _mm_cmple_ss(fa, fb); break;
        case 3: f = _mm_cmpunord_ss(fa, fb); break;
        case 4: f = _mm_cmpneq_ss(fa, fb); break;
        case 5: f = _mm_cmpnlt_ss(fa, fb); break;
        case 6: f = _mm_cmpnle_ss(fa, fb); break;
        default: f = _mm_cmpord_ss(fa, fb); break;
        }
        put_ps(r, f);
        break;
    case X86_MP_66:
        da = pd(a), db = pd(b);
        switch (pred & 7) {
        case 0: d = _mm_cmpeq_pd(da, db); break;
        case 1: d = _mm_cmplt_pd(da, db); break;
        case 2: d = _mm_cmple_pd(da, db); break;
        case 3: d = _mm_cmpunord_pd(da, db); break;
        case 4: d = _mm_cmpneq_pd(da, db); break;
        case 5: d = _mm_cmpnlt_pd(da, db); break;
        case 6: d = _mm_cmpnle_pd(da, db); break;
        default: d = _mm_cmpord_pd(da, db); break;
        }
        put_pd(r, d);
        break;
    default:
        da = pd(a), db = pd(b);
        switch (pred & 7) {
        case 0: d = _mm_cmpeq_sd(da, db); break;
        case 1: d = _mm_cmplt_sd(da, db); break;
        case 2: d = _mm_cmple_sd(da, db); break;
        case 3: d = _mm_cmpunord_sd(da, db); break;
        case 4: d = _mm_cmpneq_sd(da, db); break;
        case 5: d = _mm_cmpnlt_sd(da, db); break;
        case 6: d = _mm_cmpnle_sd(da, db); break;
        default: d = _mm_cmpord_sd(da, db); break;
        }
        put_pd(r, d);
        break;
    }
    // clang-format on
}

/* Element-size conversions 5A, 5B, E6. Returns false for an encoding without a meaning. */
static bool fp_convert(unsigned op, unsigned mp, const union xmm *a, const union xmm *b, union xmm *r)
{
    if (op == 0x5a) {
        if (mp == X86_MP_NONE)
            put_pd(r, _mm_cvtps_pd(ps(b)));
        else if (mp == X86_MP_66)
            put_ps(r, _mm_cvtpd_ps(pd(b)));
        else if (mp == X86_MP_F3)
            put_pd(r, _mm_cvtss_sd(pd(a), ps(b)));
        else
            put_ps(r, _mm_cvtsd_ss(ps(a), pd(b)));
        return true;
    }
    __m128i ib = pi(b);
    if (op == 0x5b) {
        if (mp == X86_MP_NONE)
            put_ps(r, _mm_cvtepi32_ps(ib));
        else if (mp == X86_MP_66)
            put_pi(r, _mm_cvtps_epi32(ps(b)));
        else if (mp == X86_MP_F3)
            put_pi(r, _mm_cvttps_epi32(ps(b)));
        else
            return false;
        return true;
    }
    /* E6 */
    if (mp == X86_MP_66)
        put_pi(r, _mm_cvttpd_epi32(pd(b)));
    else if (mp == X86_MP_F3)
        put_pd(r, _mm_cvtepi32_pd(ib));
    else if (mp == X86_MP_F2)
        put_pi(r, _mm_cvtpd_epi32(pd(b)));
    else
        return false;
    return true;
}

static int sse_fp(struct exec_ctx *x, bool *handled)
{
    const struct x86_insn *in = x->in;
    unsigned op = in->opcode, mp = in->mandatory, host;
    union xmm s, r, *d = xreg(x, in->reg);
    bool scalar = mp == X86_MP_F3 || mp == X86_MP_F2;
    unsigned esize = scalar ? (mp == X86_MP_F3 ? 4 : 8) : 16;
    int rc;

    *handled = true;
    switch (op) {
    case 0x51:
    case 0x58:
    case 0x59:
    case 0x5c:
    case 0x5d:
    case 0x5e:
    case 0x5f:
    case 0xc2:
        if ((rc = src_rm(x, esize, !scalar, &s)))
            return rc;
        host = fp_begin(x);
        if (op == 0xc2)
            fp_cmp(mp, (unsigned)in->imm, d, &s, &r);
        else
            fp_arith(op, mp, d, &s, &r);
        break;
    case 0x5a:
    case 0x5b:
    case 0xe6: {
        /* Sources: CVTPS2PD and CVTDQ2PD read 8 bytes, the scalar forms their element, the rest 16. */
        unsigned size = (op == 0x5a && mp == X86_MP_NONE) || (op == 0xe6 && mp == X86_MP_F3) ? 8
                        : op == 0x5a && scalar                                               ? esize
                                                                                             : 16;
        if ((rc = src_rm(x, size, size == 16, &s)))
            return rc;
        host = fp_begin(x);
        if (!fp_convert(op, mp, d, &s, &r)) {
            _mm_setcsr(host);
            *handled = false;
            return XR_OK;
        }
        break;
    }
    case 0x2a: { /* CVTSI2SS/SD xmm, r/m32/64 */
        struct x_op src;
        uint64_t v;
        if (!scalar) {
            *handled = false;
            return XR_OK;
        }
        x_op_rm(x, &src);
        if ((rc = x_op_read(x, &src, in->opsize, &v)))
            return rc;
        host = fp_begin(x);
        if (mp == X86_MP_F3)
            put_ps(&r,
                   in->opsize == 8 ? _mm_cvtsi64_ss(ps(d), (int64_t)v) : _mm_cvtsi32_ss(ps(d), (int32_t)v));
        else
            put_pd(&r,
                   in->opsize == 8 ? _mm_cvtsi64_sd(pd(d), (int64_t)v) : _mm_cvtsi32_sd(pd(d), (int32_t)v));
        break;
    }
    case 0x2c:
    case 0x2d: { /* CVT(T)SS2SI / CVT(T)SD2SI r32/64, xmm/m */
        uint64_t v;
        if (!scalar) {
            *handled = false;
            return XR_OK;
        }
        if ((rc = src_rm(x, esize, false, &s)))
            return rc;
        host = fp_begin(x);
        bool w = in->opsize == 8, trunc = op == 0x2c;
        if (mp == X86_MP_F3)
            v = w ? (uint64_t)(trunc ? _mm_cvttss_si64(ps(&s)) : _mm_cvtss_si64(ps(&s)))
                  : (uint32_t)(trunc ? _mm_cvttss_si32(ps(&s)) : _mm_cvtss_si32(ps(&s)));
        else
            v = w ? (uint64_t)(trunc ? _mm_cvttsd_si64(pd(&s)) : _mm_cvtsd_si64(pd(&s)))
                  : (uint32_t)(trunc ? _mm_cvttsd_si32(pd(&s)) : _mm_cvtsd_si32(pd(&s)));
        PIN_GPR(v);
        if ((rc = fp_end(x, host)))
            return rc;
        x_set_reg(x, in->reg, w ? 8 : 4, v);
        return XR_OK;
    }
    case 0x2e:
    case 0x2f: { /* UCOMISS/UCOMISD, COMISS/COMISD */
        if (mp != X86_MP_NONE && mp != X86_MP_66) {
            *handled = false;
            return XR_OK;
        }
        bool dbl = mp == X86_MP_66;
        if ((rc = src_rm(x, dbl ? 8 : 4, false, &s)))
            return rc;
        /* The host's own (U)COMISS/SD: flags and exceptions exactly as the hardware has them. */
        bool zf, pf, cf;
        host = fp_begin(x);
        if (dbl) {
            __m128d a = pd(d), b = pd(&s);
            if (op == 0x2f)
                __asm__ volatile("comisd %3, %4" : "=@ccz"(zf), "=@ccp"(pf), "=@ccc"(cf) : "x"(b), "x"(a));
            else
                __asm__ volatile("ucomisd %3, %4" : "=@ccz"(zf), "=@ccp"(pf), "=@ccc"(cf) : "x"(b), "x"(a));
        } else {
            __m128 a = ps(d), b = ps(&s);
            if (op == 0x2f)
                __asm__ volatile("comiss %3, %4" : "=@ccz"(zf), "=@ccp"(pf), "=@ccc"(cf) : "x"(b), "x"(a));
            else
                __asm__ volatile("ucomiss %3, %4" : "=@ccz"(zf), "=@ccp"(pf), "=@ccc"(cf) : "x"(b), "x"(a));
        }
        if ((rc = fp_end(x, host)))
            return rc;
        emu_flags_set_eager(x->s, (zf ? EMU_FLAG_ZF : 0) | (pf ? EMU_FLAG_PF : 0) | (cf ? EMU_FLAG_CF : 0));
        return XR_OK;
    }
    default:
        *handled = false;
        return XR_OK;
    }
    if ((rc = fp_end(x, host)))
        return rc;
    *d = r;
    return XR_OK;
}

int exec_sse(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    bool handled;
    int r;

    if ((s->cr0 & EMU_CR0_EM) || !(s->cr4 & EMU_CR4_OSFXSR))
        return x_fault(x, EMU_EXC_UD, 0);
    if (s->cr0 & EMU_CR0_TS)
        return x_fault(x, EMU_EXC_NM, 0);
    if (in->map != X86_MAP_0F)
        return x_fault(x, EMU_EXC_UD, 0); /* SSSE3 and later are not advertised */
    if (in->opcode >= 0x71 && in->opcode <= 0x73)
        return sse_shift_imm(x);
    if (in->opcode == 0xd7) { /* PMOVMSKB r32, xmm */
        if (in->mandatory != X86_MP_66)
            return x_unimplemented(x);
        const union xmm *v = xreg(x, in->rm);
        uint32_t mask = 0;
        for (unsigned i = 0; i < 16; i++)
            mask |= (uint32_t)(v->b[i] >> 7) << i;
        x_set_reg(x, in->reg, 4, mask);
        return XR_OK;
    }
    r = sse_moves(x, &handled);
    if (handled)
        return r;
    r = sse_fp(x, &handled);
    if (handled)
        return r;
    r = sse_binary(x, &handled);
    if (handled)
        return r;
    return x_unimplemented(x);
}
