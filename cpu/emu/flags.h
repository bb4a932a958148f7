/* Lazy arithmetic flags of the emu software CPU: recording a flag-setting operation (encoding in state.h,
 * enum emu_cc_op), materializing RFLAGS, and evaluating the 16 condition codes (Jcc/SETcc/CMOVcc) cheaply. */
#ifndef DESKVM_EMU_FLAGS_H
#define DESKVM_EMU_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

#include "emu/state.h"

/* Condition codes, the low nibble of Jcc/SETcc/CMOVcc (Intel SDM vol. 1, appendix B). */
enum emu_cond_code {
    EMU_COND_O,
    EMU_COND_NO,
    EMU_COND_B,
    EMU_COND_AE,
    EMU_COND_E,
    EMU_COND_NE,
    EMU_COND_BE,
    EMU_COND_A,
    EMU_COND_S,
    EMU_COND_NS,
    EMU_COND_P,
    EMU_COND_NP,
    EMU_COND_L,
    EMU_COND_GE,
    EMU_COND_LE,
    EMU_COND_G,
};

/* Operand sizes are 1, 2, 4 or 8 bytes everywhere in this module and in alu.h. */
static inline uint64_t emu_size_mask(unsigned size)
{
    return ~0ull >> (64 - 8 * size);
}

static inline uint64_t emu_sign_extend(unsigned size, uint64_t v)
{
    unsigned sh = 64 - 8 * size;
    return (uint64_t)((int64_t)(v << sh) >> sh);
}

/* Records a lazily evaluated operation; the values are truncated to the operand size here. */
static inline void emu_flags_set(struct emu_state *s, unsigned cls, unsigned size, uint64_t dst, uint64_t src,
                                 uint64_t src2)
{
    uint64_t m = emu_size_mask(size);
    s->cc_op = EMU_CC_OP(cls, size);
    s->cc_dst = dst & m;
    s->cc_src = src & m;
    s->cc_src2 = src2 & m;
}

/* The full RFLAGS value with the arithmetic flags materialized; the state is not changed. */
uint64_t emu_flags_get(const struct emu_state *s);

/* Materializes the arithmetic flags into s->rflags and switches to EMU_CC_EAGER. */
void emu_flags_materialize(struct emu_state *s);

/* RFLAGS = (RFLAGS & ~mask) | (value & mask), bit 1 kept set; for POPF, SAHF, IRET and flag-only updates.
 * The caller decides which bits the current mode may change. */
void emu_flags_write(struct emu_state *s, uint64_t value, uint64_t mask);

/* Sets all arithmetic flags at once (the other RFLAGS bits are kept), without materializing first. */
static inline void emu_flags_set_eager(struct emu_state *s, uint64_t arith)
{
    s->rflags = (s->rflags & ~(uint64_t)EMU_FLAGS_ARITH) | (arith & EMU_FLAGS_ARITH);
    s->cc_op = EMU_CC_EAGER;
}

/* A condition code evaluated on a materialized RFLAGS value. */
static inline bool emu_cond_flags(uint64_t f, unsigned cc)
{
    bool r;
    switch ((cc >> 1) & 7) {
    case 0:
        r = f & EMU_FLAG_OF;
        break;
    case 1:
        r = f & EMU_FLAG_CF;
        break;
    case 2:
        r = f & EMU_FLAG_ZF;
        break;
    case 3:
        r = f & (EMU_FLAG_CF | EMU_FLAG_ZF);
        break;
    case 4:
        r = f & EMU_FLAG_SF;
        break;
    case 5:
        r = f & EMU_FLAG_PF;
        break;
    case 6:
        r = !(f & EMU_FLAG_SF) != !(f & EMU_FLAG_OF);
        break;
    default:
        r = (f & EMU_FLAG_ZF) || !(f & EMU_FLAG_SF) != !(f & EMU_FLAG_OF);
        break;
    }
    return r ^ (cc & 1);
}

/* Condition code cc (0-15) on the current state. CMP/SUB, TEST/logic and "result == 0 / < 0" tests are
 * answered from the recorded operands; everything else materializes the flags. */
/* Always inlined: with a constant cc (the fast Jcc/CMOVcc/SETcc handlers exist per condition) it folds to
 * a few compares. */
static inline __attribute__((always_inline)) bool emu_cond(const struct emu_state *s, unsigned cc)
{
    unsigned cls = s->cc_op >> 2;
    unsigned sh = 64 - (8u << (s->cc_op & 3));
    uint64_t d = s->cc_dst;
    bool r;

    if (cls == EMU_CC_EAGER)
        return emu_cond_flags(s->rflags, cc);
    switch ((cc >> 1) & 7) {
    case 2: /* E: every lazy class but MUL/IMUL (ZF = 0) derives ZF from the result */
        r = d == 0 && cls < EMU_CC_MUL;
        break;
    case 4: /* S */
        r = (int64_t)(d << sh) < 0;
        break;
    case 1: /* B */
        if (cls == EMU_CC_SUB)
            r = s->cc_src < s->cc_src2;
        else if (cls == EMU_CC_ADD)
            r = d < s->cc_src;
        else if (cls == EMU_CC_ADC) /* carry out of the top bit, for ADC chains in bignum code */
            r = (int64_t)(((s->cc_src & s->cc_src2) | ((s->cc_src | s->cc_src2) & ~d)) << sh) < 0;
        else if (cls == EMU_CC_SBB)
            r = (int64_t)(((~s->cc_src & s->cc_src2) | ((~s->cc_src | s->cc_src2) & d)) << sh) < 0;
        else if (cls == EMU_CC_LOGIC)
            r = false;
        else if (cls == EMU_CC_INC || cls == EMU_CC_DEC || (cls >= EMU_CC_SHL && cls <= EMU_CC_IMUL))
            r = s->cc_src & 1;
        else
            return emu_cond_flags(emu_flags_get(s), cc);
        break;
    case 3: /* BE */
        if (cls == EMU_CC_SUB)
            r = s->cc_src <= s->cc_src2;
        else if (cls == EMU_CC_LOGIC)
            r = d == 0;
        else
            return emu_cond_flags(emu_flags_get(s), cc);
        break;
    case 6: /* L */
        if (cls == EMU_CC_SUB)
            r = (int64_t)(s->cc_src << sh) < (int64_t)(s->cc_src2 << sh);
        else if (cls == EMU_CC_LOGIC)
            r = (int64_t)(d << sh) < 0;
        else
            return emu_cond_flags(emu_flags_get(s), cc);
        break;
    case 7: /* LE */
        if (cls == EMU_CC_SUB)
            r = (int64_t)(s->cc_src << sh) <= (int64_t)(s->cc_src2 << sh);
        else if (cls == EMU_CC_LOGIC)
            r = (int64_t)(d << sh) <= 0;
        else
            return emu_cond_flags(emu_flags_get(s), cc);
        break;
    default:
        return emu_cond_flags(emu_flags_get(s), cc);
    }
    return r ^ (cc & 1);
}

/* CF alone, e.g. the carry-in of ADC/SBB/RCL/RCR. */
static inline unsigned emu_flags_cf(const struct emu_state *s)
{
    return emu_cond(s, EMU_COND_B);
}

#endif
