/* Integer ALU of the emu software CPU: x86 arithmetic, logic, shift/rotate, multiply/divide, bit and BCD
 * operations on 1/2/4/8-byte operands, with their flags recorded in the emu state (lazily where it pays). */
#ifndef DESKVM_EMU_ALU_H
#define DESKVM_EMU_ALU_H

#include <stdbool.h>
#include <stdint.h>

#include "emu/flags.h"
#include "emu/state.h"

/* Conventions: size is 1, 2, 4 or 8; inputs may carry garbage above the operand size; results are truncated
 * (zero-extended to 64 bits). Writing the result back (merging 8/16-bit results, zero-extending 32-bit ones)
 * is the caller's job. Shift and rotate counts are the raw CL/imm8 value; the masking is done here. */

static inline uint64_t emu_alu_add(struct emu_state *s, unsigned size, uint64_t a, uint64_t b)
{
    uint64_t r = (a + b) & emu_size_mask(size);
    emu_flags_set(s, EMU_CC_ADD, size, r, a, b);
    return r;
}

static inline uint64_t emu_alu_adc(struct emu_state *s, unsigned size, uint64_t a, uint64_t b)
{
    uint64_t r = (a + b + emu_flags_cf(s)) & emu_size_mask(size);
    emu_flags_set(s, EMU_CC_ADC, size, r, a, b);
    return r;
}

static inline uint64_t emu_alu_sub(struct emu_state *s, unsigned size, uint64_t a, uint64_t b)
{
    uint64_t r = (a - b) & emu_size_mask(size);
    emu_flags_set(s, EMU_CC_SUB, size, r, a, b);
    return r;
}

static inline uint64_t emu_alu_sbb(struct emu_state *s, unsigned size, uint64_t a, uint64_t b)
{
    uint64_t r = (a - b - emu_flags_cf(s)) & emu_size_mask(size);
    emu_flags_set(s, EMU_CC_SBB, size, r, a, b);
    return r;
}

/* CMP, and CMPXCHG's comparison of the accumulator with the destination (returns ZF: equal). */
static inline bool emu_alu_cmp(struct emu_state *s, unsigned size, uint64_t a, uint64_t b)
{
    return emu_alu_sub(s, size, a, b) == 0;
}

static inline uint64_t emu_alu_neg(struct emu_state *s, unsigned size, uint64_t a)
{
    return emu_alu_sub(s, size, 0, a);
}

static inline uint64_t emu_alu_and(struct emu_state *s, unsigned size, uint64_t a, uint64_t b)
{
    uint64_t r = a & b & emu_size_mask(size);
    emu_flags_set(s, EMU_CC_LOGIC, size, r, 0, 0);
    return r;
}

static inline uint64_t emu_alu_or(struct emu_state *s, unsigned size, uint64_t a, uint64_t b)
{
    uint64_t r = (a | b) & emu_size_mask(size);
    emu_flags_set(s, EMU_CC_LOGIC, size, r, 0, 0);
    return r;
}

static inline uint64_t emu_alu_xor(struct emu_state *s, unsigned size, uint64_t a, uint64_t b)
{
    uint64_t r = (a ^ b) & emu_size_mask(size);
    emu_flags_set(s, EMU_CC_LOGIC, size, r, 0, 0);
    return r;
}

static inline void emu_alu_test(struct emu_state *s, unsigned size, uint64_t a, uint64_t b)
{
    emu_alu_and(s, size, a, b);
}

/* NOT changes no flags. */
static inline uint64_t emu_alu_not(unsigned size, uint64_t a)
{
    return ~a & emu_size_mask(size);
}

static inline uint64_t emu_alu_inc(struct emu_state *s, unsigned size, uint64_t a)
{
    uint64_t r = (a + 1) & emu_size_mask(size);
    emu_flags_set(s, EMU_CC_INC, size, r, emu_flags_cf(s), 0);
    return r;
}

static inline uint64_t emu_alu_dec(struct emu_state *s, unsigned size, uint64_t a)
{
    uint64_t r = (a - 1) & emu_size_mask(size);
    emu_flags_set(s, EMU_CC_DEC, size, r, emu_flags_cf(s), 0);
    return r;
}

/* XADD: the new destination is the sum (flags of ADD); the source register receives the old destination. */
static inline uint64_t emu_alu_xadd(struct emu_state *s, unsigned size, uint64_t dst, uint64_t src)
{
    return emu_alu_add(s, size, dst, src);
}

/* MUL / IMUL: returns the low half of a * b and stores the high half in *hi (may be NULL for the two- and
 * three-operand IMUL forms). CF = OF = the high half is significant; of the undefined flags, SF and PF follow
 * the low half and ZF and AF are 0, as on Intel hardware. */
static inline uint64_t emu_alu_mul(struct emu_state *s, unsigned size, uint64_t a, uint64_t b, uint64_t *hi)
{
    uint64_t m = emu_size_mask(size), lo, h;
    if (size == 8) {
        unsigned __int128 p = (unsigned __int128)a * b;
        lo = (uint64_t)p;
        h = (uint64_t)(p >> 64);
    } else {
        uint64_t p = (a & m) * (b & m);
        lo = p & m;
        h = (p >> (8 * size)) & m;
    }
    if (hi)
        *hi = h;
    emu_flags_set(s, EMU_CC_MUL, size, lo, h != 0, h != 0);
    return lo;
}

static inline uint64_t emu_alu_imul(struct emu_state *s, unsigned size, uint64_t a, uint64_t b, uint64_t *hi)
{
    uint64_t m = emu_size_mask(size), lo, h;
    bool ovf;
    if (size == 8) {
        __int128 p = (__int128)(int64_t)a * (int64_t)b;
        lo = (uint64_t)p;
        h = (uint64_t)(p >> 64);
        ovf = p != (__int128)(int64_t)lo;
    } else {
        int64_t p = (int64_t)emu_sign_extend(size, a) * (int64_t)emu_sign_extend(size, b);
        lo = (uint64_t)p & m;
        h = ((uint64_t)p >> (8 * size)) & m;
        ovf = (uint64_t)p != emu_sign_extend(size, lo);
    }
    if (hi)
        *hi = h;
    emu_flags_set(s, EMU_CC_IMUL, size, lo, ovf, ovf);
    return lo;
}

/* DIV / IDIV of the double-size dividend hi:lo (AH:AL, DX:AX, EDX:EAX, RDX:RAX) by divisor. Returns false,
 * with nothing written, when the CPU raises #DE (zero divisor or quotient out of range); the checks come
 * before any host division. The flags are undefined and left unchanged. */
bool emu_alu_div(unsigned size, uint64_t hi, uint64_t lo, uint64_t divisor, uint64_t *quot, uint64_t *rem);
bool emu_alu_idiv(unsigned size, uint64_t hi, uint64_t lo, uint64_t divisor, uint64_t *quot, uint64_t *rem);

/* Shifts and rotates: a masked count of 0 changes neither the value nor the flags. */
/* Shift counts are masked to 5 bits (6 for 64-bit operands). */
static inline unsigned emu_alu_count_mask(unsigned size)
{
    return size == 8 ? 63 : 31;
}

/* OF of a left shift by one: the top two bits of the operand differ. */
static inline uint64_t emu_alu_of_left(unsigned bits, uint64_t a)
{
    return ((a >> (bits - 1)) ^ (a >> (bits - 2))) & 1;
}

static inline uint64_t emu_alu_shl(struct emu_state *s, unsigned size, uint64_t a, unsigned count)
{
    unsigned bits = 8 * size;
    uint64_t m = emu_size_mask(size), r, cf;

    a &= m;
    count &= emu_alu_count_mask(size);
    if (!count)
        return a;
    r = (a << count) & m;
    /* a count beyond the width shifts everything out: CF is then 0, which is what hardware reports */
    cf = count <= bits ? (a >> (bits - count)) & 1 : 0;
    emu_flags_set(s, EMU_CC_SHL, size, r, cf, emu_alu_of_left(bits, a));
    return r;
}

static inline uint64_t emu_alu_shr(struct emu_state *s, unsigned size, uint64_t a, unsigned count)
{
    unsigned bits = 8 * size;
    uint64_t m = emu_size_mask(size), r;

    a &= m;
    count &= emu_alu_count_mask(size);
    if (!count)
        return a;
    r = a >> count;
    emu_flags_set(s, EMU_CC_SHR, size, r, (a >> (count - 1)) & 1, (a >> (bits - 1)) & 1);
    return r;
}

static inline uint64_t emu_alu_sar(struct emu_state *s, unsigned size, uint64_t a, unsigned count)
{
    int64_t sa = (int64_t)emu_sign_extend(size, a);
    uint64_t r;

    count &= emu_alu_count_mask(size);
    if (!count)
        return a & emu_size_mask(size);
    r = (uint64_t)(sa >> count) & emu_size_mask(size);
    emu_flags_set(s, EMU_CC_SAR, size, r, (uint64_t)(sa >> (count - 1)) & 1, 0);
    return r;
}

uint64_t emu_alu_rol(struct emu_state *s, unsigned size, uint64_t a, unsigned count);
uint64_t emu_alu_ror(struct emu_state *s, unsigned size, uint64_t a, unsigned count);
uint64_t emu_alu_rcl(struct emu_state *s, unsigned size, uint64_t a, unsigned count);
uint64_t emu_alu_rcr(struct emu_state *s, unsigned size, uint64_t a, unsigned count);
/* SHLD / SHRD shift dst, filling from src; size 2, 4 or 8. */
uint64_t emu_alu_shld(struct emu_state *s, unsigned size, uint64_t dst, uint64_t src, unsigned count);
uint64_t emu_alu_shrd(struct emu_state *s, unsigned size, uint64_t dst, uint64_t src, unsigned count);

/* BT/BTS/BTR/BTC on a value: CF = the selected bit (offset taken mod the operand width; memory forms with a
 * register offset must first move the address by (offset >> log2(width)) * size). Returns the new value. */
void emu_alu_bt(struct emu_state *s, unsigned size, uint64_t a, uint64_t bit);
uint64_t emu_alu_bts(struct emu_state *s, unsigned size, uint64_t a, uint64_t bit);
uint64_t emu_alu_btr(struct emu_state *s, unsigned size, uint64_t a, uint64_t bit);
uint64_t emu_alu_btc(struct emu_state *s, unsigned size, uint64_t a, uint64_t bit);

/* BSF / BSR: return the bit index; with src == 0 they set ZF and return old_dst, and the caller must then not
 * write the destination at all (hardware keeps all 64 bits, even for 32-bit operands). */
uint64_t emu_alu_bsf(struct emu_state *s, unsigned size, uint64_t src, uint64_t old_dst);
uint64_t emu_alu_bsr(struct emu_state *s, unsigned size, uint64_t src, uint64_t old_dst);

/* POPCNT / LZCNT / TZCNT (size 2, 4 or 8); the flags LZCNT/TZCNT leave undefined are cleared, as on Intel. */
uint64_t emu_alu_popcnt(struct emu_state *s, unsigned size, uint64_t src);
uint64_t emu_alu_lzcnt(struct emu_state *s, unsigned size, uint64_t src);
uint64_t emu_alu_tzcnt(struct emu_state *s, unsigned size, uint64_t src);

/* BSWAP (size 4 or 8; the 16-bit form, undefined in the SDM, yields 0 as on Intel and AMD hardware). No
 * flags. */
uint64_t emu_alu_bswap(unsigned size, uint64_t a);

/* BCD adjustments (legacy modes only): DAA/DAS take and return AL, AAA/AAS take and return AX, AAD takes AX
 * and the immediate base and returns AX. AAM returns false for a zero base (#DE), else stores the new AX. */
uint64_t emu_alu_daa(struct emu_state *s, uint64_t al);
uint64_t emu_alu_das(struct emu_state *s, uint64_t al);
uint64_t emu_alu_aaa(struct emu_state *s, uint64_t ax);
uint64_t emu_alu_aas(struct emu_state *s, uint64_t ax);
bool emu_alu_aam(struct emu_state *s, uint64_t ax, uint8_t base, uint64_t *new_ax);
uint64_t emu_alu_aad(struct emu_state *s, uint64_t ax, uint8_t base);

#endif
