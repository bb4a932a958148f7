/* Integer ALU of the emu software CPU: the operations not inlined (shifts, divides, bit and BCD ops). */
#include "emu/alu.h"

/* Replaces CF and OF, keeping the other arithmetic flags (rotates). */
static void flags_cf_of(struct emu_state *s, uint64_t cf, uint64_t of)
{
    emu_flags_write(s, (cf & 1) * EMU_FLAG_CF | (of & 1) * EMU_FLAG_OF, EMU_FLAG_CF | EMU_FLAG_OF);
}

static uint64_t zsp(unsigned size, uint64_t r)
{
    uint64_t f = 0;
    if (r == 0)
        f |= EMU_FLAG_ZF;
    if ((r >> (8 * size - 1)) & 1)
        f |= EMU_FLAG_SF;
    if (!__builtin_parity((unsigned)(r & 0xff)))
        f |= EMU_FLAG_PF;
    return f;
}

/* OF is defined for 1-bit shifts and rotates only. For larger counts Intel hardware reports the OF of a
 * 1-bit operation on the original value, and so does the emu: for left shifts, its top 2 bits XORed. */

uint64_t emu_alu_rol(struct emu_state *s, unsigned size, uint64_t a, unsigned count)
{
    unsigned bits = 8 * size, c;
    uint64_t m = emu_size_mask(size), r;

    a &= m;
    count &= emu_alu_count_mask(size);
    if (!count)
        return a;
    c = count & (bits - 1);
    r = c ? ((a << c) | (a >> (bits - c))) & m : a;
    flags_cf_of(s, r, emu_alu_of_left(bits, a));
    return r;
}

uint64_t emu_alu_ror(struct emu_state *s, unsigned size, uint64_t a, unsigned count)
{
    unsigned bits = 8 * size, c;
    uint64_t m = emu_size_mask(size), r;

    a &= m;
    count &= emu_alu_count_mask(size);
    if (!count)
        return a;
    c = count & (bits - 1);
    r = c ? ((a >> c) | (a << (bits - c))) & m : a;
    flags_cf_of(s, r >> (bits - 1), (a >> (bits - 1)) ^ a);
    return r;
}

/* RCL/RCR rotate the (width + 1)-bit value CF:a; 8- and 16-bit counts are taken mod 9 / 17 after masking. */
static unsigned rc_count(unsigned size, unsigned count)
{
    count &= emu_alu_count_mask(size);
    if (size == 1)
        return count % 9;
    if (size == 2)
        return count % 17;
    return count;
}

uint64_t emu_alu_rcl(struct emu_state *s, unsigned size, uint64_t a, unsigned count)
{
    unsigned bits = 8 * size, n = bits + 1;
    uint64_t m = emu_size_mask(size), r, cf;
    unsigned __int128 w;

    a &= m;
    count = rc_count(size, count);
    if (!count)
        return a;
    w = ((unsigned __int128)emu_flags_cf(s) << bits) | a;
    w = (w << count) | (w >> (n - count));
    r = (uint64_t)w & m;
    cf = (uint64_t)(w >> bits) & 1;
    flags_cf_of(s, cf, emu_alu_of_left(bits, a));
    return r;
}

uint64_t emu_alu_rcr(struct emu_state *s, unsigned size, uint64_t a, unsigned count)
{
    unsigned bits = 8 * size, n = bits + 1;
    uint64_t m = emu_size_mask(size), r, cf, cf_in;
    unsigned __int128 w;

    a &= m;
    count = rc_count(size, count);
    if (!count)
        return a;
    cf_in = emu_flags_cf(s);
    w = ((unsigned __int128)cf_in << bits) | a;
    w = (w >> count) | (w << (n - count));
    r = (uint64_t)w & m;
    cf = (uint64_t)(w >> bits) & 1;
    flags_cf_of(s, cf, (a >> (bits - 1)) ^ cf_in);
    return r;
}

/* 16-bit SHLD/SHRD with counts above 16 are undefined in the SDM; hardware behaves as if shifting the 48-bit
 * value dst:src:dst, which the formulas below reproduce for every count. */
uint64_t emu_alu_shld(struct emu_state *s, unsigned size, uint64_t dst, uint64_t src, unsigned count)
{
    unsigned bits = 8 * size;
    uint64_t m = emu_size_mask(size), r, cf;

    dst &= m;
    src &= m;
    count &= emu_alu_count_mask(size);
    if (!count)
        return dst;
    if (size == 2) {
        unsigned __int128 v = ((unsigned __int128)dst << 32) | (src << 16) | dst;
        r = (uint64_t)((v << count) >> 32) & m;
        cf = (uint64_t)(v >> (48 - count)) & 1;
    } else {
        r = ((dst << count) | (src >> (bits - count))) & m;
        cf = (dst >> (bits - count)) & 1;
    }
    emu_flags_set(s, EMU_CC_SHL, size, r, cf, emu_alu_of_left(bits, dst));
    return r;
}

uint64_t emu_alu_shrd(struct emu_state *s, unsigned size, uint64_t dst, uint64_t src, unsigned count)
{
    unsigned bits = 8 * size;
    uint64_t m = emu_size_mask(size), r, cf;

    dst &= m;
    src &= m;
    count &= emu_alu_count_mask(size);
    if (!count)
        return dst;
    if (size == 2) {
        uint64_t v = (dst << 32) | (src << 16) | dst;
        r = (v >> count) & m;
        cf = (v >> (count - 1)) & 1;
    } else {
        r = ((dst >> count) | (src << (bits - count))) & m;
        cf = (dst >> (count - 1)) & 1;
    }
    emu_flags_set(s, EMU_CC_SHR, size, r, cf, ((dst >> (bits - 1)) ^ src) & 1);
    return r;
}

bool emu_alu_div(unsigned size, uint64_t hi, uint64_t lo, uint64_t divisor, uint64_t *quot, uint64_t *rem)
{
    uint64_t m = emu_size_mask(size);

    hi &= m;
    lo &= m;
    divisor &= m;
    /* hi:lo / d fits in the operand size exactly when hi < d */
    if (divisor == 0 || hi >= divisor)
        return false;
    if (size == 8) {
        unsigned __int128 n = ((unsigned __int128)hi << 64) | lo;
        *quot = (uint64_t)(n / divisor);
        *rem = (uint64_t)(n % divisor);
    } else {
        uint64_t n = (hi << (8 * size)) | lo;
        *quot = n / divisor;
        *rem = n % divisor;
    }
    return true;
}

bool emu_alu_idiv(unsigned size, uint64_t hi, uint64_t lo, uint64_t divisor, uint64_t *quot, uint64_t *rem)
{
    uint64_t m = emu_size_mask(size);
    int64_t d = (int64_t)emu_sign_extend(size, divisor);
    __int128 n, q, r, qmax = (__int128)(m >> 1);

    if (d == 0)
        return false;
    if (size == 8) {
        n = (__int128)(((unsigned __int128)hi << 64) | lo);
    } else {
        unsigned sh = 64 - 16 * size;
        n = (int64_t)((((hi & m) << (8 * size)) | (lo & m)) << sh) >> sh;
    }
    /* the one quotient overflowing __int128 itself is MIN / -1; it is out of range for every size anyway */
    if (d == -1) {
        if (n < -qmax - 1 || n > qmax + 1)
            return false;
        q = -n;
        r = 0;
    } else {
        q = n / d;
        r = n % d;
    }
    if (q > qmax || q < -qmax - 1)
        return false;
    *quot = (uint64_t)q & m;
    *rem = (uint64_t)r & m;
    return true;
}

static uint64_t bit_test(struct emu_state *s, unsigned size, uint64_t a, uint64_t bit)
{
    uint64_t mask = 1ull << (bit & (8 * size - 1));
    emu_flags_write(s, (a & mask) ? EMU_FLAG_CF : 0, EMU_FLAG_CF);
    return mask;
}

void emu_alu_bt(struct emu_state *s, unsigned size, uint64_t a, uint64_t bit)
{
    bit_test(s, size, a, bit);
}

uint64_t emu_alu_bts(struct emu_state *s, unsigned size, uint64_t a, uint64_t bit)
{
    return (a | bit_test(s, size, a, bit)) & emu_size_mask(size);
}

uint64_t emu_alu_btr(struct emu_state *s, unsigned size, uint64_t a, uint64_t bit)
{
    return (a & ~bit_test(s, size, a, bit)) & emu_size_mask(size);
}

uint64_t emu_alu_btc(struct emu_state *s, unsigned size, uint64_t a, uint64_t bit)
{
    return (a ^ bit_test(s, size, a, bit)) & emu_size_mask(size);
}

/* BSF/BSR flags as on Intel hardware: ZF = (src == 0), PF from the index (ZF and PF set for src == 0), the
 * undefined CF, OF, SF and AF cleared. */
static uint64_t bit_scan(struct emu_state *s, uint64_t src, unsigned index, uint64_t old_dst)
{
    if (!src) {
        emu_flags_set_eager(s, EMU_FLAG_ZF | EMU_FLAG_PF);
        return old_dst;
    }
    emu_flags_set_eager(s, __builtin_parity(index) ? 0 : EMU_FLAG_PF);
    return index;
}

uint64_t emu_alu_bsf(struct emu_state *s, unsigned size, uint64_t src, uint64_t old_dst)
{
    src &= emu_size_mask(size);
    return bit_scan(s, src, src ? (unsigned)__builtin_ctzll(src) : 0, old_dst);
}

uint64_t emu_alu_bsr(struct emu_state *s, unsigned size, uint64_t src, uint64_t old_dst)
{
    src &= emu_size_mask(size);
    return bit_scan(s, src, src ? 63 - (unsigned)__builtin_clzll(src) : 0, old_dst);
}

uint64_t emu_alu_popcnt(struct emu_state *s, unsigned size, uint64_t src)
{
    src &= emu_size_mask(size);
    emu_flags_set_eager(s, src ? 0 : EMU_FLAG_ZF);
    return (uint64_t)__builtin_popcountll(src);
}

uint64_t emu_alu_lzcnt(struct emu_state *s, unsigned size, uint64_t src)
{
    uint64_t r;
    src &= emu_size_mask(size);
    r = src ? (uint64_t)__builtin_clzll(src) - (64 - 8 * size) : 8 * size;
    emu_flags_set_eager(s, (src ? 0 : EMU_FLAG_CF) | (r ? 0 : EMU_FLAG_ZF));
    return r;
}

uint64_t emu_alu_tzcnt(struct emu_state *s, unsigned size, uint64_t src)
{
    uint64_t r;
    src &= emu_size_mask(size);
    r = src ? (uint64_t)__builtin_ctzll(src) : 8 * size;
    emu_flags_set_eager(s, (src ? 0 : EMU_FLAG_CF) | (r ? 0 : EMU_FLAG_ZF));
    return r;
}

uint64_t emu_alu_bswap(unsigned size, uint64_t a)
{
    if (size == 8)
        return __builtin_bswap64(a);
    if (size == 4)
        return __builtin_bswap32((uint32_t)a);
    return 0;
}

uint64_t emu_alu_daa(struct emu_state *s, uint64_t al)
{
    uint64_t f = emu_flags_get(s), a = al & 0xff, old_a = a, cf = 0, af = 0;

    if ((a & 0xf) > 9 || (f & EMU_FLAG_AF)) {
        a = (a + 6) & 0xff;
        af = EMU_FLAG_AF;
    }
    if (old_a > 0x99 || (f & EMU_FLAG_CF)) {
        a = (a + 0x60) & 0xff;
        cf = EMU_FLAG_CF;
    }
    emu_flags_set_eager(s, cf | af | zsp(1, a));
    return a;
}

uint64_t emu_alu_das(struct emu_state *s, uint64_t al)
{
    uint64_t f = emu_flags_get(s), a = al & 0xff, old_a = a, cf = 0, af = 0;

    if ((a & 0xf) > 9 || (f & EMU_FLAG_AF)) {
        if (a < 6 || (f & EMU_FLAG_CF))
            cf = EMU_FLAG_CF;
        a = (a - 6) & 0xff;
        af = EMU_FLAG_AF;
    }
    if (old_a > 0x99 || (f & EMU_FLAG_CF)) {
        a = (a - 0x60) & 0xff;
        cf = EMU_FLAG_CF;
    }
    emu_flags_set_eager(s, cf | af | zsp(1, a));
    return a;
}

uint64_t emu_alu_aaa(struct emu_state *s, uint64_t ax)
{
    uint64_t f = emu_flags_get(s), adj = 0;

    ax &= 0xffff;
    if ((ax & 0xf) > 9 || (f & EMU_FLAG_AF)) {
        ax = (ax + 0x106) & 0xffff;
        adj = EMU_FLAG_AF | EMU_FLAG_CF;
    }
    ax &= 0xff0f;
    emu_flags_set_eager(s, adj | zsp(1, ax & 0xff));
    return ax;
}

uint64_t emu_alu_aas(struct emu_state *s, uint64_t ax)
{
    uint64_t f = emu_flags_get(s), adj = 0;

    ax &= 0xffff;
    if ((ax & 0xf) > 9 || (f & EMU_FLAG_AF)) {
        ax = (ax - 6) & 0xffff;
        ax = (ax - 0x100) & 0xffff;
        adj = EMU_FLAG_AF | EMU_FLAG_CF;
    }
    ax &= 0xff0f;
    emu_flags_set_eager(s, adj | zsp(1, ax & 0xff));
    return ax;
}

bool emu_alu_aam(struct emu_state *s, uint64_t ax, uint8_t base, uint64_t *new_ax)
{
    uint64_t al = ax & 0xff;

    if (base == 0)
        return false;
    *new_ax = ((al / base) << 8) | (al % base);
    emu_flags_set(s, EMU_CC_LOGIC, 1, al % base, 0, 0);
    return true;
}

/* The undefined CF/OF/AF of AAD are those of the final 8-bit addition, as on hardware. */
uint64_t emu_alu_aad(struct emu_state *s, uint64_t ax, uint8_t base)
{
    uint64_t al = ax & 0xff, ah = (ax >> 8) & 0xff;
    return emu_alu_add(s, 1, al, (ah * base) & 0xff);
}
