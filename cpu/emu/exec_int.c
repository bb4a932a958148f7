/* emu interpreter: the integer core (moves, ALU, multiply/divide, shifts, bit ops, stack, flags). */
#include "emu/exec.h"

/* ADD..CMP and TEST in the forms E,G / G,E / E,I. */
static int exec_alu2(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    unsigned size = in->opsize, op = in->op;
    bool writes = op != X86_OP_CMP && op != X86_OP_TEST;
    struct x_op dst;
    uint64_t a, b;
    int r;

    if (in->form == X86_FORM_G_E) {
        struct x_op src;
        x_op_rm(x, &src);
        if ((r = x_op_read(x, &src, size, &b)))
            return r;
        a = x_get_reg(x, in->reg, size);
        uint64_t v = x_alu_binary(x->s, op, size, a, b);
        if (writes)
            x_set_reg(x, in->reg, size, v);
        return XR_OK;
    }
    b = in->form == X86_FORM_E_I ? in->imm : x_get_reg(x, in->reg, size);
    x_op_rm(x, &dst);
    if (!writes) {
        if ((r = x_op_read(x, &dst, size, &a)))
            return r;
        x_alu_binary(x->s, op, size, a, b);
        return XR_OK;
    }
    if ((r = x_op_read_rmw(x, &dst, size, &a)))
        return r;
    return x_op_write_rmw(x, &dst, size, a, x_alu_binary(x->s, op, size, a, b));
}

static int exec_unary(struct exec_ctx *x)
{
    unsigned size = x->in->opsize;
    struct x_op dst;
    uint64_t a, v;
    int r;

    x_op_rm(x, &dst);
    if ((r = x_op_read_rmw(x, &dst, size, &a)))
        return r;
    switch (x->in->op) {
    case X86_OP_INC:
        v = emu_alu_inc(x->s, size, a);
        break;
    case X86_OP_DEC:
        v = emu_alu_dec(x->s, size, a);
        break;
    case X86_OP_NOT:
        v = emu_alu_not(size, a);
        break;
    default:
        v = emu_alu_neg(x->s, size, a);
        break;
    }
    return x_op_write_rmw(x, &dst, size, a, v);
}

static int exec_muldiv(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    unsigned size = in->opsize;
    struct x_op src;
    uint64_t b, hi, lo;
    int r;

    x_op_rm(x, &src);
    if ((r = x_op_read(x, &src, size, &b)))
        return r;
    if (in->op == X86_OP_IMUL && in->form == X86_FORM_G_E) {
        x_set_reg(x, in->reg, size, emu_alu_imul(s, size, x_get_reg(x, in->reg, size), b, NULL));
        return XR_OK;
    }
    if (in->op == X86_OP_IMUL && in->form == X86_FORM_G_E_I) {
        x_set_reg(x, in->reg, size, emu_alu_imul(s, size, b, in->imm, NULL));
        return XR_OK;
    }
    uint64_t acc = s->regs[EMU_RAX];
    if (in->op == X86_OP_MUL || in->op == X86_OP_IMUL) {
        lo = in->op == X86_OP_MUL ? emu_alu_mul(s, size, acc, b, &hi) : emu_alu_imul(s, size, acc, b, &hi);
        if (size == 1) {
            x_set_reg(x, EMU_RAX, 2, hi << 8 | lo);
        } else {
            x_set_reg(x, EMU_RAX, size, lo);
            x_set_reg(x, EMU_RDX, size, hi);
        }
        return XR_OK;
    }
    uint64_t q, rem;
    bool ok;
    if (size == 1) {
        hi = (acc >> 8) & 0xff;
        lo = acc & 0xff;
    } else {
        hi = s->regs[EMU_RDX] & emu_size_mask(size);
        lo = acc & emu_size_mask(size);
    }
    ok = in->op == X86_OP_DIV ? emu_alu_div(size, hi, lo, b, &q, &rem)
                              : emu_alu_idiv(size, hi, lo, b, &q, &rem);
    if (!ok)
        return x_fault(x, EMU_EXC_DE, 0);
    if (size == 1) {
        x_set_reg(x, EMU_RAX, 2, (rem & 0xff) << 8 | (q & 0xff));
    } else {
        x_set_reg(x, EMU_RAX, size, q);
        x_set_reg(x, EMU_RDX, size, rem);
    }
    return XR_OK;
}

static int exec_shift(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    unsigned size = in->opsize, count;
    struct x_op dst;
    uint64_t a, v;
    int r;

    switch (in->form) {
    case X86_FORM_E_1:
        count = 1;
        break;
    case X86_FORM_E_CL:
    case X86_FORM_E_G_CL:
        count = (unsigned)s->regs[EMU_RCX] & 0xff;
        break;
    default:
        count = (unsigned)in->imm & 0xff;
        break;
    }
    x_op_rm(x, &dst);
    if ((r = x_op_read_rmw(x, &dst, size, &a)))
        return r;
    /* A masked count of 0 changes no flags and no memory, but a 32-bit register is still written
     * (zero-extended), as on hardware. */
    if ((count & (size == 8 ? 63 : 31)) == 0) {
        if (!dst.mem && size == 4)
            x_set_reg(x, dst.reg, 4, a);
        return XR_OK;
    }
    switch (in->op) {
    case X86_OP_ROL:
        v = emu_alu_rol(s, size, a, count);
        break;
    case X86_OP_ROR:
        v = emu_alu_ror(s, size, a, count);
        break;
    case X86_OP_RCL:
        v = emu_alu_rcl(s, size, a, count);
        break;
    case X86_OP_RCR:
        v = emu_alu_rcr(s, size, a, count);
        break;
    case X86_OP_SHL:
        v = emu_alu_shl(s, size, a, count);
        break;
    case X86_OP_SHR:
        v = emu_alu_shr(s, size, a, count);
        break;
    case X86_OP_SAR:
        v = emu_alu_sar(s, size, a, count);
        break;
    case X86_OP_SHLD:
        v = emu_alu_shld(s, size, a, x_get_reg(x, in->reg, size), count);
        break;
    default:
        v = emu_alu_shrd(s, size, a, x_get_reg(x, in->reg, size), count);
        break;
    }
    return x_op_write_rmw(x, &dst, size, a, v);
}

static int exec_bt(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    unsigned size = in->opsize, bits = size * 8;
    struct x_op dst;
    uint64_t bit, a, v;
    int r;

    x_op_rm(x, &dst);
    if (in->form == X86_FORM_E_I) {
        bit = in->imm & (bits - 1);
    } else {
        uint64_t off = x_get_reg(x, in->reg, size);
        bit = off & (bits - 1);
        if (dst.mem) {
            /* The register offset is signed and selects any bit relative to the address. */
            int64_t units = (int64_t)emu_sign_extend(size, off) >> (__builtin_ctz(bits));
            dst.off = (dst.off + (uint64_t)units * size) & emu_size_mask(in->addrsize);
        }
    }
    if (in->op == X86_OP_BT) {
        if ((r = x_op_read(x, &dst, size, &a)))
            return r;
        emu_alu_bt(s, size, a, bit);
        return XR_OK;
    }
    if ((r = x_op_read_rmw(x, &dst, size, &a)))
        return r;
    switch (in->op) {
    case X86_OP_BTS:
        v = emu_alu_bts(s, size, a, bit);
        break;
    case X86_OP_BTR:
        v = emu_alu_btr(s, size, a, bit);
        break;
    default:
        v = emu_alu_btc(s, size, a, bit);
        break;
    }
    return x_op_write_rmw(x, &dst, size, a, v);
}

static int exec_bitscan(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    unsigned size = in->opsize;
    struct x_op src;
    uint64_t b, v, old = x_get_reg(x, in->reg, size);
    int r;

    x_op_rm(x, &src);
    if ((r = x_op_read(x, &src, size, &b)))
        return r;
    /* Without BMI1/ABM in CPUID, TZCNT/LZCNT are BSF/BSR with an ignored F3 prefix. */
    if (in->op == X86_OP_BSF || in->op == X86_OP_TZCNT)
        v = emu_alu_bsf(x->s, size, b, old);
    else
        v = emu_alu_bsr(x->s, size, b, old);
    /* A zero source leaves the destination unchanged, upper half included. */
    if (b & emu_size_mask(size))
        x_set_reg(x, in->reg, size, v);
    return XR_OK;
}

static int exec_mov(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    unsigned size = in->opsize;
    struct x_op rm;
    uint64_t v;
    int r;

    x_op_rm(x, &rm);
    switch (in->form) {
    case X86_FORM_G_E:
        if ((r = x_op_read(x, &rm, size, &v)))
            return r;
        x_set_reg(x, in->reg, size, v);
        return XR_OK;
    case X86_FORM_E_G:
        return x_op_write(x, &rm, size, x_get_reg(x, in->reg, size));
    default: /* E_I */
        return x_op_write(x, &rm, size, in->imm);
    }
}

static int exec_movx(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    unsigned src_size;
    struct x_op rm;
    uint64_t v;
    int r;

    if (in->op == X86_OP_MOVSXD)
        src_size = in->opsize == 8 ? 4 : in->opsize;
    else
        src_size = (in->opcode & 1) ? 2 : 1;
    x_op_rm(x, &rm);
    if ((r = x_op_read(x, &rm, src_size, &v)))
        return r;
    if (in->op != X86_OP_MOVZX)
        v = emu_sign_extend(src_size, v);
    x_set_reg(x, in->reg, in->opsize, v);
    return XR_OK;
}

static int exec_xchg(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    unsigned size = in->opsize;
    struct x_op rm;
    uint64_t a, b = x_get_reg(x, in->reg, size);
    int r;

    x_op_rm(x, &rm);
    struct x86_insn locked;
    if (rm.mem) { /* XCHG with memory is always locked */
        locked = *in;
        locked.prefixes |= X86_PFX_LOCK;
        x->in = &locked;
    }
    r = x_op_read_rmw(x, &rm, size, &a);
    if (!r)
        r = x_op_write_rmw(x, &rm, size, a, b);
    x->in = in;
    if (r)
        return r;
    x_set_reg(x, in->reg, size, a);
    return XR_OK;
}

static int exec_cmpxchg(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    unsigned size = in->opsize;
    struct x_op dst;
    uint64_t a, acc = x_get_reg(x, EMU_RAX, size), src = x_get_reg(x, in->reg, size);
    int r;

    x_op_rm(x, &dst);
    if ((r = x_op_read_rmw(x, &dst, size, &a)))
        return r;
    bool equal = emu_alu_cmp(x->s, size, acc, a);
    if (!dst.mem) {
        if (equal)
            x_set_reg(x, dst.reg, size, src);
        else
            x_set_reg(x, EMU_RAX, size, a);
        return XR_OK;
    }
    /* The destination is written either way (a locked read-modify-write). */
    if ((r = x_op_write_rmw(x, &dst, size, a, equal ? src : a)))
        return r;
    if (!equal)
        x_set_reg(x, EMU_RAX, size, a);
    return XR_OK;
}

static int exec_xadd(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    unsigned size = in->opsize;
    struct x_op dst;
    uint64_t a, b = x_get_reg(x, in->reg, size);
    int r;

    x_op_rm(x, &dst);
    if ((r = x_op_read_rmw(x, &dst, size, &a)))
        return r;
    uint64_t sum = emu_alu_xadd(x->s, size, a, b);
    if (dst.mem) {
        if ((r = x_op_write_rmw(x, &dst, size, a, sum)))
            return r;
        x_set_reg(x, in->reg, size, a);
    } else {
        x_set_reg(x, in->reg, size, a);
        x_set_reg(x, dst.reg, size, sum);
    }
    return XR_OK;
}

static int exec_cmpxchg8b(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    unsigned half = x->in->opsize == 8 ? 8 : 4;
    struct x_op m;
    uint64_t lin, cur[2] = {0, 0};
    int r;

    x_op_rm(x, &m);
    if ((r = x_linear(x, m.seg, m.off, 2 * half, true, &lin)))
        return r;
    /* The alignment of the linear address matters (and the host's LOCK CMPXCHG16B relies on it). */
    if (half == 8 && (lin & 15))
        return x_fault(x, EMU_EXC_GP, 0);
    uint64_t want_lo = s->regs[EMU_RAX] & emu_size_mask(half),
             want_hi = s->regs[EMU_RDX] & emu_size_mask(half);
    uint64_t new_lo = s->regs[EMU_RBX] & emu_size_mask(half), new_hi = s->regs[EMU_RCX] & emu_size_mask(half);
    bool equal;
    uint8_t buf[16];
    unsigned idx = emu_mmu_index(s, 0);
    void *h = emu_tlb_host_write(x->mmu, idx, lin, 2 * half);
    if (!h) {
        /* Fault now if the operand is not writable, and fill the TLB for the host pointer. */
        if ((r = x_read_lin(x, lin, 2 * half, EMU_ACCESS_RMW, buf)))
            return r;
        h = emu_tlb_host_write(x->mmu, idx, lin, 2 * half);
    }
    if (h && half == 4) {
        uint64_t expect = want_hi << 32 | want_lo;
        equal = __atomic_compare_exchange_n((uint64_t *)h, &expect, new_hi << 32 | new_lo, false,
                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        cur[0] = expect & 0xffffffffu;
        cur[1] = expect >> 32;
    } else if (h) { /* 16-byte aligned in guest and host alike */
        cur[0] = want_lo;
        cur[1] = want_hi;
        __asm__ volatile("lock cmpxchg16b %1"
                         : "=@ccz"(equal), "+m"(*(unsigned __int128 *)h), "+a"(cur[0]), "+d"(cur[1])
                         : "b"(new_lo), "c"(new_hi)
                         : "memory");
    } else { /* MMIO or a page crossing: not atomic */
        if ((r = x_read_lin(x, lin, 2 * half, EMU_ACCESS_RMW, buf)))
            return r;
        memcpy(&cur[0], buf, half);
        memcpy(&cur[1], buf + half, half);
        equal = cur[0] == want_lo && cur[1] == want_hi;
        if (equal) {
            memcpy(buf, &new_lo, half);
            memcpy(buf + half, &new_hi, half);
        }
        if ((r = x_write_lin(x, lin, 2 * half, 0, buf)))
            return r;
    }
    emu_flags_write(s, equal ? EMU_FLAG_ZF : 0, EMU_FLAG_ZF);
    if (!equal) {
        x_set_reg(x, EMU_RAX, half, cur[0]);
        x_set_reg(x, EMU_RDX, half, cur[1]);
    }
    return XR_OK;
}

/* ---- stack ---- */

static int exec_push(struct exec_ctx *x)
{
    unsigned size = x->in->opsize;
    uint64_t v;
    int r;

    if (x->in->form == X86_FORM_I) {
        v = x->in->imm;
    } else {
        struct x_op src;
        x_op_rm(x, &src);
        if ((r = x_op_read(x, &src, size, &v)))
            return r;
    }
    return x_push(x, size, v);
}

static int exec_pop(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    unsigned size = x->in->opsize;
    uint64_t v, old_sp = s->regs[EMU_RSP];
    struct x_op dst;
    int r;

    if ((r = x_pop(x, size, &v)))
        return r;
    /* A memory destination's address is computed with the incremented stack pointer. */
    x_op_rm(x, &dst);
    if ((r = x_op_write(x, &dst, size, v)))
        s->regs[EMU_RSP] = old_sp;
    return r;
}

static int exec_pusha(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    unsigned size = x->in->opsize;
    int r;

    for (unsigned i = 0; i < 8; i++) {
        uint64_t v = i == EMU_RSP ? s->regs[EMU_RSP] : s->regs[i];
        if ((r = x_stack_write(x, -(uint64_t)(size * (i + 1)), size, v)))
            return r;
    }
    x_set_sp(x, s->regs[EMU_RSP] - 8 * size);
    return XR_OK;
}

static int exec_popa(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    unsigned size = x->in->opsize;
    uint64_t v[8];
    int r;

    for (unsigned i = 0; i < 8; i++) {
        if ((r = x_stack_read(x, size * (7 - i), size, &v[i])))
            return r;
    }
    for (unsigned i = 0; i < 8; i++) {
        if (i != EMU_RSP)
            x_set_reg(x, i, size, v[i]);
    }
    x_set_sp(x, s->regs[EMU_RSP] + 8 * size);
    return XR_OK;
}

static int exec_pushf(struct exec_ctx *x)
{
    if ((x->s->rflags & EMU_FLAG_VM) && x_iopl(x) < 3)
        return x_fault(x, EMU_EXC_GP, 0);
    uint64_t f = emu_flags_get(x->s) & ~(uint64_t)(EMU_FLAG_VM | EMU_FLAG_RF);
    return x_push(x, x->in->opsize, f);
}

static int exec_popf(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    unsigned size = x->in->opsize;
    uint64_t v;
    int r;

    if ((s->rflags & EMU_FLAG_VM) && x_iopl(x) < 3)
        return x_fault(x, EMU_EXC_GP, 0);
    if ((r = x_pop(x, size, &v)))
        return r;
    uint64_t mask = EMU_FLAGS_ARITH | EMU_FLAG_TF | EMU_FLAG_IF | EMU_FLAG_DF | EMU_FLAG_NT | EMU_FLAG_IOPL |
                    EMU_FLAG_AC | EMU_FLAG_ID | EMU_FLAG_RF;
    unsigned cpl = x_cpl(x);
    if ((s->rflags & EMU_FLAG_VM) || cpl > 0)
        mask &= ~(uint64_t)EMU_FLAG_IOPL;
    if (!(s->rflags & EMU_FLAG_VM) && cpl > x_iopl(x))
        mask &= ~(uint64_t)EMU_FLAG_IF;
    if (size == 2)
        mask &= 0xffff;
    emu_flags_write(s, v & ~(uint64_t)EMU_FLAG_RF, mask);
    return XR_OK;
}

static int exec_enter(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    unsigned size = x->in->opsize, level = x->in->imm2 & 31;
    uint64_t m = emu_size_mask(x_stack_width(x));
    uint64_t sp = s->regs[EMU_RSP], bp = s->regs[EMU_RBP], v;
    int r;

    sp = (sp - size) & m;
    if ((r = x_write(x, EMU_SS, sp, size, bp)))
        return r;
    uint64_t frame = sp;
    if (level > 0) {
        for (unsigned i = 1; i < level; i++) {
            bp = (bp - size) & m;
            if ((r = x_read(x, EMU_SS, bp, size, &v)))
                return r;
            sp = (sp - size) & m;
            if ((r = x_write(x, EMU_SS, sp, size, v)))
                return r;
        }
        sp = (sp - size) & m;
        if ((r = x_write(x, EMU_SS, sp, size, frame)))
            return r;
    }
    sp = (sp - (x->in->imm & 0xffff)) & m;
    /* The new stack top must be accessible (a #SS/#PF here leaves the registers as they were). */
    if ((r = x_read(x, EMU_SS, sp, 1, &v)))
        return r;
    x_set_reg(x, EMU_RBP, size, frame);
    x_set_sp(x, sp);
    return XR_OK;
}

static int exec_leave(struct exec_ctx *x)
{
    unsigned size = x->in->opsize, w = x_stack_width(x);
    uint64_t bp = x->s->regs[EMU_RBP] & emu_size_mask(w), v;
    int r;

    if ((r = x_read(x, EMU_SS, bp, size, &v)))
        return r;
    x_set_sp(x, bp + size);
    x_set_reg(x, EMU_RBP, size, v);
    return XR_OK;
}

/* ---- flags ---- */

static int exec_flag_op(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    switch (x->in->op) {
    case X86_OP_CLC:
        emu_flags_write(s, 0, EMU_FLAG_CF);
        break;
    case X86_OP_STC:
        emu_flags_write(s, EMU_FLAG_CF, EMU_FLAG_CF);
        break;
    case X86_OP_CMC:
        emu_flags_write(s, emu_flags_cf(s) ? 0 : EMU_FLAG_CF, EMU_FLAG_CF);
        break;
    case X86_OP_CLD:
        s->rflags &= ~(uint64_t)EMU_FLAG_DF;
        break;
    case X86_OP_STD:
        s->rflags |= EMU_FLAG_DF;
        break;
    case X86_OP_CLI:
    case X86_OP_STI:
        if ((s->rflags & EMU_FLAG_VM) ? x_iopl(x) < 3 : x_protected(x) && x_cpl(x) > x_iopl(x))
            return x_fault(x, EMU_EXC_GP, 0);
        if (x->in->op == X86_OP_CLI) {
            s->rflags &= ~(uint64_t)EMU_FLAG_IF;
        } else if (!(s->rflags & EMU_FLAG_IF)) {
            s->rflags |= EMU_FLAG_IF;
            x->shadow = true;
        }
        break;
    case X86_OP_SAHF:
        emu_flags_write(s, x_get_reg(x, EMU_RAX, 2) >> 8,
                        EMU_FLAG_SF | EMU_FLAG_ZF | EMU_FLAG_AF | EMU_FLAG_PF | EMU_FLAG_CF);
        break;
    case X86_OP_LAHF:
        s->regs[EMU_RAX] = (s->regs[EMU_RAX] & ~0xff00ull) | (emu_flags_get(s) & 0xff) << 8;
        break;
    default: /* SALC */
        x_set_reg(x, EMU_RAX, 1, emu_flags_cf(s) ? 0xff : 0);
        break;
    }
    return XR_OK;
}

static int exec_bcd(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    uint64_t ax = s->regs[EMU_RAX] & 0xffff, v;

    switch (x->in->op) {
    case X86_OP_DAA:
        x_set_reg(x, EMU_RAX, 1, emu_alu_daa(s, ax));
        break;
    case X86_OP_DAS:
        x_set_reg(x, EMU_RAX, 1, emu_alu_das(s, ax));
        break;
    case X86_OP_AAA:
        x_set_reg(x, EMU_RAX, 2, emu_alu_aaa(s, ax));
        break;
    case X86_OP_AAS:
        x_set_reg(x, EMU_RAX, 2, emu_alu_aas(s, ax));
        break;
    case X86_OP_AAD:
        x_set_reg(x, EMU_RAX, 2, emu_alu_aad(s, ax, (uint8_t)x->in->imm));
        break;
    default:
        if (!emu_alu_aam(s, ax, (uint8_t)x->in->imm, &v))
            return x_fault(x, EMU_EXC_DE, 0);
        x_set_reg(x, EMU_RAX, 2, v);
        break;
    }
    return XR_OK;
}

int exec_int(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    uint64_t v;
    int r;

    switch (in->op) {
    case X86_OP_ADD:
    case X86_OP_OR:
    case X86_OP_ADC:
    case X86_OP_SBB:
    case X86_OP_AND:
    case X86_OP_SUB:
    case X86_OP_XOR:
    case X86_OP_CMP:
    case X86_OP_TEST:
        return exec_alu2(x);
    case X86_OP_INC:
    case X86_OP_DEC:
    case X86_OP_NOT:
    case X86_OP_NEG:
        return exec_unary(x);
    case X86_OP_MUL:
    case X86_OP_IMUL:
    case X86_OP_DIV:
    case X86_OP_IDIV:
        return exec_muldiv(x);
    case X86_OP_ROL:
    case X86_OP_ROR:
    case X86_OP_RCL:
    case X86_OP_RCR:
    case X86_OP_SHL:
    case X86_OP_SHR:
    case X86_OP_SAR:
    case X86_OP_SHLD:
    case X86_OP_SHRD:
        return exec_shift(x);
    case X86_OP_BT:
    case X86_OP_BTS:
    case X86_OP_BTR:
    case X86_OP_BTC:
        return exec_bt(x);
    case X86_OP_BSF:
    case X86_OP_BSR:
    case X86_OP_TZCNT:
    case X86_OP_LZCNT:
        return exec_bitscan(x);
    case X86_OP_POPCNT:
    case X86_OP_MOVBE: /* not in CPUID */
        return x_fault(x, EMU_EXC_UD, 0);
    case X86_OP_MOV:
    case X86_OP_MOVNTI:
        return exec_mov(x);
    case X86_OP_MOVZX:
    case X86_OP_MOVSX:
    case X86_OP_MOVSXD:
        return exec_movx(x);
    case X86_OP_LEA:
        x_set_reg(x, in->reg, in->opsize, x_ea(x));
        return XR_OK;
    case X86_OP_XCHG:
        return exec_xchg(x);
    case X86_OP_CMPXCHG:
        return exec_cmpxchg(x);
    case X86_OP_XADD:
        return exec_xadd(x);
    case X86_OP_CMPXCHG8B:
        return exec_cmpxchg8b(x);
    case X86_OP_BSWAP:
        x_set_reg(x, in->rm, in->opsize, emu_alu_bswap(in->opsize, x_get_reg(x, in->rm, in->opsize)));
        return XR_OK;
    case X86_OP_NOP:
    case X86_OP_PAUSE:
        return XR_OK;
    case X86_OP_WAIT:
        if ((s->cr0 & (EMU_CR0_TS | EMU_CR0_MP)) == (EMU_CR0_TS | EMU_CR0_MP))
            return x_fault(x, EMU_EXC_NM, 0);
        if ((s->fx.fsw & 0x80) && (s->cr0 & EMU_CR0_NE)) /* a pending unmasked x87 exception */
            return x_fault(x, EMU_EXC_MF, 0);
        return XR_OK;
    case X86_OP_CBW:
        x_set_reg(x, EMU_RAX, in->opsize, emu_sign_extend(in->opsize / 2, s->regs[EMU_RAX]));
        return XR_OK;
    case X86_OP_CWD:
        v = (s->regs[EMU_RAX] >> (in->opsize * 8 - 1)) & 1;
        x_set_reg(x, EMU_RDX, in->opsize, v ? ~0ull : 0);
        return XR_OK;
    case X86_OP_XLAT:
        if ((r = x_read(x, in->seg, (s->regs[EMU_RBX] + (s->regs[EMU_RAX] & 0xff)) & x_addr_mask(x), 1, &v)))
            return r;
        x_set_reg(x, EMU_RAX, 1, v);
        return XR_OK;
    case X86_OP_CMOVCC: {
        struct x_op src;
        x_op_rm(x, &src);
        if ((r = x_op_read(x, &src, in->opsize, &v)))
            return r;
        if (emu_cond(s, in->opcode & 15))
            x_set_reg(x, in->reg, in->opsize, v);
        else if (in->opsize == 4)
            s->regs[in->reg] = (uint32_t)s->regs[in->reg];
        return XR_OK;
    }
    case X86_OP_SETCC: {
        struct x_op dst;
        x_op_rm(x, &dst);
        return x_op_write(x, &dst, 1, emu_cond(s, in->opcode & 15));
    }
    case X86_OP_PUSH:
        return exec_push(x);
    case X86_OP_POP:
        return exec_pop(x);
    case X86_OP_PUSHA:
        return exec_pusha(x);
    case X86_OP_POPA:
        return exec_popa(x);
    case X86_OP_PUSHF:
        return exec_pushf(x);
    case X86_OP_POPF:
        return exec_popf(x);
    case X86_OP_ENTER:
        return exec_enter(x);
    case X86_OP_LEAVE:
        return exec_leave(x);
    case X86_OP_CLC:
    case X86_OP_STC:
    case X86_OP_CMC:
    case X86_OP_CLD:
    case X86_OP_STD:
    case X86_OP_CLI:
    case X86_OP_STI:
    case X86_OP_SAHF:
    case X86_OP_LAHF:
    case X86_OP_SALC:
        return exec_flag_op(x);
    case X86_OP_DAA:
    case X86_OP_DAS:
    case X86_OP_AAA:
    case X86_OP_AAS:
    case X86_OP_AAM:
    case X86_OP_AAD:
        return exec_bcd(x);
    default:
        return x_unimplemented(x);
    }
}
