/* Lazy arithmetic flags of the emu software CPU: materialization from the recorded operation. */
#include "emu/flags.h"

static uint64_t flags_zsp(uint64_t d, unsigned sh)
{
    uint64_t f = 0;
    if (d == 0)
        f |= EMU_FLAG_ZF;
    if ((int64_t)(d << sh) < 0)
        f |= EMU_FLAG_SF;
    if (!__builtin_parity((unsigned)(d & 0xff)))
        f |= EMU_FLAG_PF;
    return f;
}

static uint64_t flags_arith(const struct emu_state *s)
{
    unsigned cls = s->cc_op >> 2;
    unsigned top = (8u << (s->cc_op & 3)) - 1;
    uint64_t d = s->cc_dst, a = s->cc_src, b = s->cc_src2, f;

    if (cls == EMU_CC_EAGER || cls >= EMU_CC_CLASSES)
        return s->rflags & EMU_FLAGS_ARITH;
    f = flags_zsp(d, 63 - top);
    switch (cls) {
    case EMU_CC_ADD:
    case EMU_CC_ADC:
        f |= ((((a & b) | ((a | b) & ~d)) >> top) & 1) * EMU_FLAG_CF;
        f |= ((((a ^ d) & (b ^ d)) >> top) & 1) * EMU_FLAG_OF;
        f |= (a ^ b ^ d) & EMU_FLAG_AF;
        break;
    case EMU_CC_SUB:
    case EMU_CC_SBB:
        f |= ((((~a & b) | ((~a | b) & d)) >> top) & 1) * EMU_FLAG_CF;
        f |= ((((a ^ b) & (a ^ d)) >> top) & 1) * EMU_FLAG_OF;
        f |= (a ^ b ^ d) & EMU_FLAG_AF;
        break;
    case EMU_CC_LOGIC:
        break;
    case EMU_CC_INC:
        f |= (a & 1) * EMU_FLAG_CF;
        f |= (d == 1ull << top) * EMU_FLAG_OF;
        f |= ((d & 0xf) == 0) * EMU_FLAG_AF;
        break;
    case EMU_CC_DEC:
        f |= (a & 1) * EMU_FLAG_CF;
        f |= (d == (1ull << top) - 1) * EMU_FLAG_OF;
        f |= ((d & 0xf) == 0xf) * EMU_FLAG_AF;
        break;
    default: /* shifts, MUL, IMUL */
        f |= (a & 1) * EMU_FLAG_CF;
        f |= (b & 1) * EMU_FLAG_OF;
        if (cls >= EMU_CC_MUL) /* the undefined ZF of MUL/IMUL is 0 on Intel hardware */
            f &= ~(uint64_t)EMU_FLAG_ZF;
        break;
    }
    return f;
}

uint64_t emu_flags_get(const struct emu_state *s)
{
    return (s->rflags & ~(uint64_t)EMU_FLAGS_ARITH) | flags_arith(s) | EMU_FLAG_FIXED1;
}

void emu_flags_materialize(struct emu_state *s)
{
    s->rflags = emu_flags_get(s);
    s->cc_op = EMU_CC_EAGER;
}

void emu_flags_write(struct emu_state *s, uint64_t value, uint64_t mask)
{
    s->rflags = (emu_flags_get(s) & ~mask) | (value & mask) | EMU_FLAG_FIXED1;
    s->cc_op = EMU_CC_EAGER;
}
