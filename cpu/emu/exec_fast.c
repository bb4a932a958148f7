/* emu interpreter: specialised handlers for the instruction forms that dominate 64-bit code (register and
 * simple memory ALU operations, moves, LEA, PUSH/POP, near branches), chosen once when a block is decoded.
 * Everything else goes through the per-area handlers. */
#include "emu/exec.h"

/* ---- memory: the TLB fast path inline, everything else through exec.c ---- */

static inline __attribute__((always_inline)) uint64_t fast_ea(const struct exec_ctx *x,
                                                              const struct x86_insn *in)
{
    const uint64_t *regs = x->s->regs;
    uint64_t a = (uint64_t)in->disp;
    if (in->flags & X86_INSN_RIP_REL)
        a += x->next_rip;
    if (in->base != X86_REG_NONE)
        a += regs[in->base];
    if (in->index != X86_REG_NONE)
        a += regs[in->index] << in->scale;
    if (in->addrsize != 8)
        a &= emu_size_mask(in->addrsize);
    return a;
}

/* The host address of [off, off+size) in 64-bit code when the TLB maps it to RAM inside one page (a tag only
 * matches a canonical page, so nothing else needs checking), else NULL. */
static inline const void *tlb_read(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size)
{
    if (seg >= EMU_FS)
        return NULL;
    const struct emu_tlb_entry *e = &x->mmu->tlb.e[x->mmu_idx][(off >> 12) & (EMU_TLB_SIZE - 1)];
    if (__builtin_expect(e->tag_read != (off & EMU_PAGE_MASK) || (off & 0xfff) > 4096 - size, 0))
        return NULL;
    return (const void *)(uintptr_t)(off + e->addend);
}

static inline void *tlb_write(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size)
{
    if (seg >= EMU_FS)
        return NULL;
    const struct emu_tlb_entry *e = &x->mmu->tlb.e[x->mmu_idx][(off >> 12) & (EMU_TLB_SIZE - 1)];
    if (__builtin_expect(e->tag_write != (off & EMU_PAGE_MASK) || (off & 0xfff) > 4096 - size, 0))
        return NULL;
    return (void *)(uintptr_t)(off + e->addend);
}

/* Loads/stores for fast handlers (x and bi in scope): anything but a TLB hit on RAM (a miss, MMIO, a page
 * crossing, FS/GS, a fault) hands the whole instruction to the generic path, so fast handlers keep no
 * address-taken locals and their calls to the next instruction stay jumps. A store comes before any other
 * change the instruction makes. */
#define FAST_LOAD(v, seg, off, size)                                                                         \
    do {                                                                                                     \
        const void *p_ = tlb_read(x, seg, off, size);                                                        \
        if (!p_)                                                                                             \
            return exec_block_generic(x, bi);                                                                \
        v = x_load_n(p_, size);                                                                              \
    } while (0)
#define FAST_STORE(seg, off, size, val)                                                                      \
    do {                                                                                                     \
        void *p_ = tlb_write(x, seg, off, size);                                                             \
        if (!p_)                                                                                             \
            return exec_block_generic(x, bi);                                                                \
        x_store_n(p_, size, val);                                                                            \
    } while (0)

/* A register written with a 4- or 8-byte result (4: zero-extended, as on hardware). */
static inline void set_reg48(uint64_t *regs, unsigned r, unsigned size, uint64_t v)
{
    regs[r] = size == 4 ? (uint32_t)v : v;
}

/* Registers of any size for the block instruction bi (x->in is not kept up to date inside a block). */
static inline uint64_t get_reg(const struct exec_ctx *x, const struct block_insn *bi, unsigned r,
                               unsigned size)
{
    return x_reg_read(x->s->regs, bi->in.flags & X86_INSN_HIGH_BYTE, r, size);
}

static inline void set_reg(struct exec_ctx *x, const struct block_insn *bi, unsigned r, unsigned size,
                           uint64_t v)
{
    x_reg_write(x->s->regs, bi->in.flags & X86_INSN_HIGH_BYTE, r, size, v);
}

/* ---- ALU: ADD OR ADC SBB AND SUB XOR, and CMP/TEST that only record flags ---- */

#define ALU_WRITES(op) ((op) != X86_OP_CMP && (op) != X86_OP_TEST)

/* Each (operation, size) pair gets its own functions, so the switch above folds away. */
#define ALU_HANDLERS(OP, SZ)                                                                                 \
    static int alu_rr_##OP##_##SZ(struct exec_ctx *x, const struct block_insn *bi)                           \
    {                                                                                                        \
        uint64_t *regs = x->s->regs;                                                                         \
        uint64_t v = x_alu_binary(x->s, X86_OP_##OP, SZ, regs[bi->dst], regs[bi->src]);                      \
        if (ALU_WRITES(X86_OP_##OP))                                                                         \
            regs[bi->dst] = v;                                                                               \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int alu_ri_##OP##_##SZ(struct exec_ctx *x, const struct block_insn *bi)                           \
    {                                                                                                        \
        uint64_t *regs = x->s->regs;                                                                         \
        uint64_t v = x_alu_binary(x->s, X86_OP_##OP, SZ, regs[bi->dst], bi->in.imm);                         \
        if (ALU_WRITES(X86_OP_##OP))                                                                         \
            regs[bi->dst] = v;                                                                               \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int alu_rm_##OP##_##SZ(struct exec_ctx *x, const struct block_insn *bi)                           \
    {                                                                                                        \
        uint64_t *regs = x->s->regs, b;                                                                      \
        FAST_LOAD(b, bi->in.seg, fast_ea(x, &bi->in), SZ);                                                   \
        uint64_t v = x_alu_binary(x->s, X86_OP_##OP, SZ, regs[bi->dst], b);                                  \
        if (ALU_WRITES(X86_OP_##OP))                                                                         \
            regs[bi->dst] = v;                                                                               \
        return x_next64(x, bi);                                                                              \
    }

#define ALU_OPS(X, SZ)                                                                                       \
    X(ADD, SZ) X(OR, SZ) X(ADC, SZ) X(SBB, SZ) X(AND, SZ) X(SUB, SZ) X(XOR, SZ) X(CMP, SZ) X(TEST, SZ)
ALU_OPS(ALU_HANDLERS, 4)
ALU_OPS(ALU_HANDLERS, 8)

/* CMP/TEST with a memory first operand: read-only (register sources of 4/8 bytes; immediates also 1). */
#define ALU_MEM_CMP_HANDLERS(OP, SZ)                                                                         \
    static int alu_mr_##OP##_##SZ(struct exec_ctx *x, const struct block_insn *bi)                           \
    {                                                                                                        \
        uint64_t a;                                                                                          \
        FAST_LOAD(a, bi->in.seg, fast_ea(x, &bi->in), SZ);                                                   \
        x_alu_binary(x->s, X86_OP_##OP, SZ, a, x->s->regs[bi->src]);                                         \
        return x_next64(x, bi);                                                                              \
    }
#define ALU_MEM_CMP_IMM_HANDLERS(OP, SZ)                                                                     \
    static int alu_mi_##OP##_##SZ(struct exec_ctx *x, const struct block_insn *bi)                           \
    {                                                                                                        \
        uint64_t a;                                                                                          \
        FAST_LOAD(a, bi->in.seg, fast_ea(x, &bi->in), SZ);                                                   \
        x_alu_binary(x->s, X86_OP_##OP, SZ, a, bi->in.imm);                                                  \
        return x_next64(x, bi);                                                                              \
    }
ALU_MEM_CMP_HANDLERS(CMP, 4)
ALU_MEM_CMP_HANDLERS(CMP, 8)
ALU_MEM_CMP_HANDLERS(TEST, 4)
ALU_MEM_CMP_HANDLERS(TEST, 8)
ALU_MEM_CMP_IMM_HANDLERS(CMP, 1)
ALU_MEM_CMP_IMM_HANDLERS(CMP, 4)
ALU_MEM_CMP_IMM_HANDLERS(CMP, 8)
ALU_MEM_CMP_IMM_HANDLERS(TEST, 1)
ALU_MEM_CMP_IMM_HANDLERS(TEST, 4)
ALU_MEM_CMP_IMM_HANDLERS(TEST, 8)

/* ---- INC/DEC on registers ---- */

#define INCDEC_HANDLERS(SZ)                                                                                  \
    static int inc_r_##SZ(struct exec_ctx *x, const struct block_insn *bi)                                   \
    {                                                                                                        \
        uint64_t *p = &x->s->regs[bi->dst];                                                                  \
        *p = emu_alu_inc(x->s, SZ, *p);                                                                      \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int dec_r_##SZ(struct exec_ctx *x, const struct block_insn *bi)                                   \
    {                                                                                                        \
        uint64_t *p = &x->s->regs[bi->dst];                                                                  \
        *p = emu_alu_dec(x->s, SZ, *p);                                                                      \
        return x_next64(x, bi);                                                                              \
    }
INCDEC_HANDLERS(4)
INCDEC_HANDLERS(8)

/* ---- shifts and rotates of registers: a count known when decoded (imm8 or 1) in src, or CL. A count that is
 * 0 after masking leaves the flags alone and still zero-extends a 32-bit register, as the ALU functions do.
 * ---- */

#define SHIFT_HANDLERS(NAME, FN, SZ)                                                                         \
    static int NAME##_rc_##SZ(struct exec_ctx *x, const struct block_insn *bi)                               \
    {                                                                                                        \
        uint64_t *p = &x->s->regs[bi->dst];                                                                  \
        *p = FN(x->s, SZ, *p, bi->src);                                                                      \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int NAME##_rcl_##SZ(struct exec_ctx *x, const struct block_insn *bi)                              \
    {                                                                                                        \
        uint64_t *p = &x->s->regs[bi->dst];                                                                  \
        *p = FN(x->s, SZ, *p, (unsigned)x->s->regs[EMU_RCX] & 0xff);                                         \
        return x_next64(x, bi);                                                                              \
    }
#define SHIFT_OPS(X, SZ)                                                                                     \
    X(shl, emu_alu_shl, SZ)                                                                                  \
    X(shr, emu_alu_shr, SZ) X(sar, emu_alu_sar, SZ) X(rol, emu_alu_rol, SZ) X(ror, emu_alu_ror, SZ)
SHIFT_OPS(SHIFT_HANDLERS, 4)
SHIFT_OPS(SHIFT_HANDLERS, 8)

/* NOT/NEG of registers. */
#define NOTNEG_HANDLERS(SZ)                                                                                  \
    static int not_r_##SZ(struct exec_ctx *x, const struct block_insn *bi)                                   \
    {                                                                                                        \
        uint64_t *p = &x->s->regs[bi->dst];                                                                  \
        *p = emu_alu_not(SZ, *p);                                                                            \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int neg_r_##SZ(struct exec_ctx *x, const struct block_insn *bi)                                   \
    {                                                                                                        \
        uint64_t *p = &x->s->regs[bi->dst];                                                                  \
        *p = emu_alu_neg(x->s, SZ, *p);                                                                      \
        return x_next64(x, bi);                                                                              \
    }
NOTNEG_HANDLERS(4)
NOTNEG_HANDLERS(8)

/* ---- byte-register ALU operations (AL..BH and SPL..R15B) ---- */

#define ALU_BYTE_HANDLERS(OP, SZ)                                                                            \
    static int alu_rr_##OP##_b(struct exec_ctx *x, const struct block_insn *bi)                              \
    {                                                                                                        \
        uint64_t v =                                                                                         \
            x_alu_binary(x->s, X86_OP_##OP, 1, get_reg(x, bi, bi->dst, 1), get_reg(x, bi, bi->src, 1));      \
        if (ALU_WRITES(X86_OP_##OP))                                                                         \
            set_reg(x, bi, bi->dst, 1, v);                                                                   \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int alu_ri_##OP##_b(struct exec_ctx *x, const struct block_insn *bi)                              \
    {                                                                                                        \
        uint64_t v = x_alu_binary(x->s, X86_OP_##OP, 1, get_reg(x, bi, bi->dst, 1), bi->in.imm);             \
        if (ALU_WRITES(X86_OP_##OP))                                                                         \
            set_reg(x, bi, bi->dst, 1, v);                                                                   \
        return x_next64(x, bi);                                                                              \
    }
ALU_OPS(ALU_BYTE_HANDLERS, 1)

/* ---- read-modify-write ALU operations on memory (no LOCK): straight on the host page when the TLB has a
 * writable RAM entry, else the generic path (which also raises the faults) ---- */

static inline void *fast_rmw_host(struct exec_ctx *x, const struct block_insn *bi, unsigned size)
{
    uint64_t off = fast_ea(x, &bi->in);
    if (bi->in.seg >= EMU_FS)
        return NULL;
    const struct emu_tlb_entry *e = &x->mmu->tlb.e[x->mmu_idx][(off >> 12) & (EMU_TLB_SIZE - 1)];
    if (e->tag_write != (off & EMU_PAGE_MASK) || (off & 0xfff) > 4096 - size)
        return NULL;
    return (void *)(uintptr_t)(off + e->addend);
}

#define ALU_RMW_HANDLERS(OP, SZ)                                                                             \
    static int alu_mwr_##OP##_##SZ(struct exec_ctx *x, const struct block_insn *bi)                          \
    {                                                                                                        \
        void *h = fast_rmw_host(x, bi, SZ);                                                                  \
        if (!h)                                                                                              \
            return exec_block_generic(x, bi);                                                                \
        x_store_n(h, SZ, x_alu_binary(x->s, X86_OP_##OP, SZ, x_load_n(h, SZ), get_reg(x, bi, bi->src, SZ))); \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int alu_mwi_##OP##_##SZ(struct exec_ctx *x, const struct block_insn *bi)                          \
    {                                                                                                        \
        void *h = fast_rmw_host(x, bi, SZ);                                                                  \
        if (!h)                                                                                              \
            return exec_block_generic(x, bi);                                                                \
        x_store_n(h, SZ, x_alu_binary(x->s, X86_OP_##OP, SZ, x_load_n(h, SZ), bi->in.imm));                  \
        return x_next64(x, bi);                                                                              \
    }
#define ALU_RMW_OPS(X, SZ) X(ADD, SZ) X(OR, SZ) X(ADC, SZ) X(SBB, SZ) X(AND, SZ) X(SUB, SZ) X(XOR, SZ)
ALU_RMW_OPS(ALU_RMW_HANDLERS, 1)
ALU_RMW_OPS(ALU_RMW_HANDLERS, 4)
ALU_RMW_OPS(ALU_RMW_HANDLERS, 8)

#define INCDEC_MEM_HANDLERS(SZ)                                                                              \
    static int inc_m_##SZ(struct exec_ctx *x, const struct block_insn *bi)                                   \
    {                                                                                                        \
        void *h = fast_rmw_host(x, bi, SZ);                                                                  \
        if (!h)                                                                                              \
            return exec_block_generic(x, bi);                                                                \
        x_store_n(h, SZ, emu_alu_inc(x->s, SZ, x_load_n(h, SZ)));                                            \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int dec_m_##SZ(struct exec_ctx *x, const struct block_insn *bi)                                   \
    {                                                                                                        \
        void *h = fast_rmw_host(x, bi, SZ);                                                                  \
        if (!h)                                                                                              \
            return exec_block_generic(x, bi);                                                                \
        x_store_n(h, SZ, emu_alu_dec(x->s, SZ, x_load_n(h, SZ)));                                            \
        return x_next64(x, bi);                                                                              \
    }
INCDEC_MEM_HANDLERS(4)
INCDEC_MEM_HANDLERS(8)

/* MUL r/m64 (register): RDX:RAX = RAX * r64. */
static int mul_r_8(struct exec_ctx *x, const struct block_insn *bi)
{
    uint64_t *regs = x->s->regs, hi;
    regs[EMU_RAX] = emu_alu_mul(x->s, 8, regs[EMU_RAX], regs[bi->src], &hi);
    regs[EMU_RDX] = hi;
    return x_next64(x, bi);
}

/* MOV between byte or word registers. */
static int mov_rr_bw(struct exec_ctx *x, const struct block_insn *bi)
{
    set_reg(x, bi, bi->dst, bi->in.opsize, get_reg(x, bi, bi->src, bi->in.opsize));
    return x_next64(x, bi);
}

/* IMUL r, r/m(register), imm and IMUL r, r/m(register). */
#define IMUL_HANDLERS(SZ)                                                                                    \
    static int imul_rri_##SZ(struct exec_ctx *x, const struct block_insn *bi)                                \
    {                                                                                                        \
        uint64_t *regs = x->s->regs;                                                                         \
        regs[bi->dst] = emu_alu_imul(x->s, SZ, regs[bi->src], bi->in.imm, NULL);                             \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int imul_rr_##SZ(struct exec_ctx *x, const struct block_insn *bi)                                 \
    {                                                                                                        \
        uint64_t *regs = x->s->regs;                                                                         \
        regs[bi->dst] = emu_alu_imul(x->s, SZ, regs[bi->dst], regs[bi->src], NULL);                          \
        return x_next64(x, bi);                                                                              \
    }
IMUL_HANDLERS(4)
IMUL_HANDLERS(8)

/* ---- moves ---- */

static int mov_rr_4(struct exec_ctx *x, const struct block_insn *bi)
{
    x->s->regs[bi->dst] = (uint32_t)x->s->regs[bi->src];
    return x_next64(x, bi);
}

static int mov_rr_8(struct exec_ctx *x, const struct block_insn *bi)
{
    x->s->regs[bi->dst] = x->s->regs[bi->src];
    return x_next64(x, bi);
}

/* 4 or 8 bytes: the decoder already sized the immediate. */
static int mov_ri(struct exec_ctx *x, const struct block_insn *bi)
{
    x->s->regs[bi->dst] = bi->in.imm;
    return x_next64(x, bi);
}

static int mov_load(struct exec_ctx *x, const struct block_insn *bi)
{
    uint64_t v;
    FAST_LOAD(v, bi->in.seg, fast_ea(x, &bi->in), bi->in.opsize);
    set_reg(x, bi, bi->in.reg, bi->in.opsize, v);
    return x_next64(x, bi);
}

/* The common cases without the size and address-form switches: 4/8-byte moves with a [base + disp] operand
 * (64-bit address size, no index, not RIP-relative). */
#define EA_BASE(x, bi) ((uint64_t)(bi)->in.disp + (x)->s->regs[(bi)->in.base])
#define MOV_BASE_HANDLERS(SZ)                                                                                \
    static int mov_load_base_##SZ(struct exec_ctx *x, const struct block_insn *bi)                           \
    {                                                                                                        \
        uint64_t v;                                                                                          \
        FAST_LOAD(v, bi->in.seg, EA_BASE(x, bi), SZ);                                                        \
        x->s->regs[bi->dst] = v;                                                                             \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int mov_store_base_##SZ(struct exec_ctx *x, const struct block_insn *bi)                          \
    {                                                                                                        \
        FAST_STORE(bi->in.seg, EA_BASE(x, bi), SZ, x->s->regs[bi->src]);                                     \
        return x_next64(x, bi);                                                                              \
    }
MOV_BASE_HANDLERS(4)
MOV_BASE_HANDLERS(8)

static int mov_store(struct exec_ctx *x, const struct block_insn *bi)
{
    unsigned size = bi->in.opsize;
    FAST_STORE(bi->in.seg, fast_ea(x, &bi->in), size, get_reg(x, bi, bi->in.reg, size));
    return x_next64(x, bi);
}

static int mov_store_imm(struct exec_ctx *x, const struct block_insn *bi)
{
    FAST_STORE(bi->in.seg, fast_ea(x, &bi->in), bi->in.opsize, bi->in.imm);
    return x_next64(x, bi);
}

/* MOVZX/MOVSX/MOVSXD with the source size in src (the source register is in.rm, the destination in.reg). */
static inline int movx(struct exec_ctx *x, const struct block_insn *bi, bool sign)
{
    const struct x86_insn *in = &bi->in;
    unsigned src_size = bi->src;
    uint64_t v;
    if (in->flags & X86_INSN_MEM) {
        FAST_LOAD(v, in->seg, fast_ea(x, in), src_size);
    } else {
        v = get_reg(x, bi, in->rm, src_size);
    }
    if (sign)
        v = emu_sign_extend(src_size, v);
    set_reg(x, bi, in->reg, in->opsize, v);
    return x_next64(x, bi);
}

static int movzx(struct exec_ctx *x, const struct block_insn *bi)
{
    return movx(x, bi, false);
}

static int movsx(struct exec_ctx *x, const struct block_insn *bi)
{
    return movx(x, bi, true);
}

static int lea(struct exec_ctx *x, const struct block_insn *bi)
{
    set_reg48(x->s->regs, bi->dst, bi->in.opsize, fast_ea(x, &bi->in));
    return x_next64(x, bi);
}

/* ---- stack (64-bit mode: 8-byte pushes and pops, SS has no base) ---- */

static int push_r(struct exec_ctx *x, const struct block_insn *bi)
{
    uint64_t *regs = x->s->regs, sp = regs[EMU_RSP] - 8;
    FAST_STORE(EMU_SS, sp, 8, regs[bi->src]);
    regs[EMU_RSP] = sp;
    return x_next64(x, bi);
}

static int push_i(struct exec_ctx *x, const struct block_insn *bi)
{
    uint64_t *regs = x->s->regs, sp = regs[EMU_RSP] - 8;
    FAST_STORE(EMU_SS, sp, 8, bi->in.imm);
    regs[EMU_RSP] = sp;
    return x_next64(x, bi);
}

static int pop_r(struct exec_ctx *x, const struct block_insn *bi)
{
    uint64_t *regs = x->s->regs, sp = regs[EMU_RSP], v;
    FAST_LOAD(v, EMU_SS, sp, 8);
    regs[EMU_RSP] = sp + 8; /* POP RSP: the popped value wins */
    regs[bi->dst] = v;
    return x_next64(x, bi);
}

/* ---- near branches (64-bit operand size); JMP, CALL and RET end their block ---- */

/* One handler per condition code, so emu_cond folds. */
#define JCC_HANDLER(CC)                                                                                      \
    static int jcc_##CC(struct exec_ctx *x, const struct block_insn *bi)                                     \
    {                                                                                                        \
        if (!emu_cond(x->s, CC))                                                                             \
            return x_next64(x, bi);                                                                          \
        uint64_t target = x->next_rip + bi->in.imm;                                                          \
        if (!emu_canonical(target))                                                                          \
            return x_stop(x, bi, x_fault(x, EMU_EXC_GP, 0));                                                 \
        x->next_rip = target;                                                                                \
        return x_stop(x, bi, XR_TAKEN);                                                                      \
    }                                                                                                        \
    static int cmov_rr_##CC(struct exec_ctx *x, const struct block_insn *bi)                                 \
    {                                                                                                        \
        uint64_t *regs = x->s->regs;                                                                         \
        /* 32-bit CMOV zero-extends the destination even when the condition is false. */                     \
        uint64_t v = emu_cond(x->s, CC) ? regs[bi->src] : regs[bi->dst];                                     \
        set_reg48(regs, bi->dst, bi->in.opsize, v);                                                          \
        return x_next64(x, bi);                                                                              \
    }                                                                                                        \
    static int setcc_r_##CC(struct exec_ctx *x, const struct block_insn *bi)                                 \
    {                                                                                                        \
        set_reg(x, bi, bi->in.rm, 1, emu_cond(x->s, CC));                                                    \
        return x_next64(x, bi);                                                                              \
    }
#define COND_CODES(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
COND_CODES(JCC_HANDLER)

#define COND_TABLE_ENTRY(CC) jcc_##CC,
static block_fn *const jcc_handlers[16] = {COND_CODES(COND_TABLE_ENTRY)};
#undef COND_TABLE_ENTRY
#define COND_TABLE_ENTRY(CC) cmov_rr_##CC,
static block_fn *const cmov_handlers[16] = {COND_CODES(COND_TABLE_ENTRY)};
#undef COND_TABLE_ENTRY
#define COND_TABLE_ENTRY(CC) setcc_r_##CC,
static block_fn *const setcc_handlers[16] = {COND_CODES(COND_TABLE_ENTRY)};
#undef COND_TABLE_ENTRY

bool exec_fast_is_cond_branch(block_fn *fn)
{
    for (unsigned cc = 0; cc < 16; cc++)
        if (fn == jcc_handlers[cc])
            return true;
    return false;
}

static int jmp_rel(struct exec_ctx *x, const struct block_insn *bi)
{
    uint64_t target = x->next_rip + bi->in.imm;
    if (!emu_canonical(target))
        return x_stop(x, bi, x_fault(x, EMU_EXC_GP, 0));
    x->next_rip = target;
    return XR_OK;
}

static int call_rel(struct exec_ctx *x, const struct block_insn *bi)
{
    uint64_t *regs = x->s->regs, sp = regs[EMU_RSP] - 8, ret = x->next_rip, target = ret + bi->in.imm;
    if (!emu_canonical(target))
        return x_stop(x, bi, x_fault(x, EMU_EXC_GP, 0));
    FAST_STORE(EMU_SS, sp, 8, ret);
    regs[EMU_RSP] = sp;
    x->next_rip = target;
    return XR_OK;
}

static int ret_near(struct exec_ctx *x, const struct block_insn *bi)
{
    uint64_t *regs = x->s->regs, sp = regs[EMU_RSP], target;
    FAST_LOAD(target, EMU_SS, sp, 8);
    if (!emu_canonical(target))
        return exec_block_generic(x, bi);
    regs[EMU_RSP] = sp + 8;
    x->next_rip = target;
    return XR_OK;
}

/* ---- CMP/TEST fused with the Jcc after them: the flags are recorded as usual and the condition comes
 * straight from the operands ---- */

static inline bool cond_cmp(const struct emu_state *s, unsigned cc, unsigned size, uint64_t a, uint64_t b)
{
    unsigned sh = 64 - 8 * size;
    a &= emu_size_mask(size);
    b &= emu_size_mask(size);
    bool r;
    switch ((cc >> 1) & 7) {
    case 1: /* B */
        r = a < b;
        break;
    case 2: /* E */
        r = a == b;
        break;
    case 3: /* BE */
        r = a <= b;
        break;
    case 4: /* S */
        r = (int64_t)((a - b) << sh) < 0;
        break;
    case 6: /* L */
        r = (int64_t)(a << sh) < (int64_t)(b << sh);
        break;
    case 7: /* LE */
        r = (int64_t)(a << sh) <= (int64_t)(b << sh);
        break;
    default: /* O, P */
        return emu_cond(s, cc);
    }
    return r ^ (cc & 1);
}

static inline bool cond_test(const struct emu_state *s, unsigned cc, unsigned size, uint64_t a, uint64_t b)
{
    unsigned sh = 64 - 8 * size;
    int64_t v = (int64_t)((a & b) << sh);
    bool r;
    switch ((cc >> 1) & 7) {
    case 0: /* O */
    case 1: /* B */
        r = false;
        break;
    case 2: /* E */
    case 3: /* BE */
        r = v == 0;
        break;
    case 4: /* S */
    case 6: /* L */
        r = v < 0;
        break;
    case 7: /* LE */
        r = v <= 0;
        break;
    default: /* P */
        return emu_cond(s, cc);
    }
    return r ^ (cc & 1);
}

#define FUSED_HANDLERS(OP, COND, SZ)                                                                         \
    static int fused_##OP##_rr_##SZ(struct exec_ctx *x, const struct block_insn *bi)                         \
    {                                                                                                        \
        const uint64_t *regs = x->s->regs;                                                                   \
        return fused_branch(x, bi, COND(x->s, (bi + 1)->in.opcode & 15, SZ, regs[bi->dst], regs[bi->src]));  \
    }                                                                                                        \
    static int fused_##OP##_ri_##SZ(struct exec_ctx *x, const struct block_insn *bi)                         \
    {                                                                                                        \
        const uint64_t *regs = x->s->regs;                                                                   \
        return fused_branch(x, bi, COND(x->s, (bi + 1)->in.opcode & 15, SZ, regs[bi->dst], bi->in.imm));     \
    }

/* After the comparison: the branch at bi + 1 (if it is part of this run of the block). */
static inline int fused_branch(struct exec_ctx *x, const struct block_insn *bi, bool taken)
{
    const struct block_insn *j = bi + 1;
    if (j == x->end)
        return XR_OK;
    x->next_rip += j->in.len;
    if (!taken)
        return x_next64(x, j);
    uint64_t target = x->next_rip + j->in.imm;
    if (!emu_canonical(target))
        return x_stop(x, j, x_fault(x, EMU_EXC_GP, 0));
    x->next_rip = target;
    return x_stop(x, j, XR_TAKEN);
}

/* The comparison's flags are recorded first (through the plain handler's ALU), then the branch decides. */
#define FUSED_CMP(s, cc, SZ, a, b) (emu_alu_sub(s, SZ, a, b), cond_cmp(s, cc, SZ, a, b))
#define FUSED_TEST(s, cc, SZ, a, b) (emu_alu_and(s, SZ, a, b), cond_test(s, cc, SZ, a, b))
FUSED_HANDLERS(CMP, FUSED_CMP, 4)
FUSED_HANDLERS(CMP, FUSED_CMP, 8)
FUSED_HANDLERS(TEST, FUSED_TEST, 4)
FUSED_HANDLERS(TEST, FUSED_TEST, 8)

void exec_fast_fuse(struct block_insn *insns, unsigned n)
{
    static const struct {
        block_fn *plain, *fused;
    } pairs[] = {
        {alu_rr_CMP_4, fused_CMP_rr_4},   {alu_rr_CMP_8, fused_CMP_rr_8},   {alu_ri_CMP_4, fused_CMP_ri_4},
        {alu_ri_CMP_8, fused_CMP_ri_8},   {alu_rr_TEST_4, fused_TEST_rr_4}, {alu_rr_TEST_8, fused_TEST_rr_8},
        {alu_ri_TEST_4, fused_TEST_ri_4}, {alu_ri_TEST_8, fused_TEST_ri_8},
    };
    for (unsigned i = 0; i + 1 < n; i++) {
        if (!exec_fast_is_cond_branch(insns[i + 1].fn))
            continue;
        for (unsigned k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
            if (insns[i].fn == pairs[k].plain) {
                insns[i].fn = pairs[k].fused;
                break;
            }
        }
    }
}

/* ---- NOP ---- */

static int nop(struct exec_ctx *x, const struct block_insn *bi)
{
    return x_next64(x, bi);
}

/* ---- choosing a handler ---- */

static block_fn *alu_handler(unsigned op, unsigned size, char kind)
{
#define ALU_CASE(OP, SZ)                                                                                     \
    if (op == X86_OP_##OP && size == SZ)                                                                     \
        return kind == 'r' ? alu_rr_##OP##_##SZ : kind == 'i' ? alu_ri_##OP##_##SZ : alu_rm_##OP##_##SZ;
    ALU_OPS(ALU_CASE, 4)
    ALU_OPS(ALU_CASE, 8)
#undef ALU_CASE
#define ALU_CASE(OP, SZ)                                                                                     \
    if (op == X86_OP_##OP && size == 1 && kind != 'm')                                                       \
        return kind == 'r' ? alu_rr_##OP##_b : alu_ri_##OP##_b;
    ALU_OPS(ALU_CASE, 1)
#undef ALU_CASE
    return NULL;
}

/* Read-modify-write on memory: kind 'r' (register source) or 'i' (immediate). */
static block_fn *alu_rmw_handler(unsigned op, unsigned size, char kind)
{
#define ALU_CASE(OP, SZ)                                                                                     \
    if (op == X86_OP_##OP && size == SZ)                                                                     \
        return kind == 'r' ? alu_mwr_##OP##_##SZ : alu_mwi_##OP##_##SZ;
    ALU_RMW_OPS(ALU_CASE, 1)
    ALU_RMW_OPS(ALU_CASE, 4)
    ALU_RMW_OPS(ALU_CASE, 8)
#undef ALU_CASE
    return NULL;
}

static block_fn *shift_handler(unsigned op, unsigned size, bool cl)
{
#define SHIFT_CASE(NAME, FN, SZ)                                                                             \
    if (size == SZ && op == X86_OP_##NAME##_ID)                                                              \
        return cl ? NAME##_rcl_##SZ : NAME##_rc_##SZ;
#define X86_OP_shl_ID X86_OP_SHL
#define X86_OP_shr_ID X86_OP_SHR
#define X86_OP_sar_ID X86_OP_SAR
#define X86_OP_rol_ID X86_OP_ROL
#define X86_OP_ror_ID X86_OP_ROR
    SHIFT_OPS(SHIFT_CASE, 4)
    SHIFT_OPS(SHIFT_CASE, 8)
#undef SHIFT_CASE
    return NULL;
}

static bool is_alu(unsigned op)
{
    switch (op) {
    case X86_OP_ADD:
    case X86_OP_OR:
    case X86_OP_ADC:
    case X86_OP_SBB:
    case X86_OP_AND:
    case X86_OP_SUB:
    case X86_OP_XOR:
    case X86_OP_CMP:
    case X86_OP_TEST:
        return true;
    default:
        return false;
    }
}

static block_fn *alu_pick(struct block_insn *bi)
{
    const struct x86_insn *in = &bi->in;
    unsigned size = in->opsize;
    bool mem = in->flags & X86_INSN_MEM;

    if (in->prefixes & X86_PFX_LOCK)
        return NULL;
    if (!mem && (size == 1 || size == 4 || size == 8)) {
        switch (in->form) {
        case X86_FORM_E_G:
            bi->dst = in->rm;
            bi->src = in->reg;
            return alu_handler(in->op, size, 'r');
        case X86_FORM_G_E:
            bi->dst = in->reg;
            bi->src = in->rm;
            return alu_handler(in->op, size, 'r');
        case X86_FORM_E_I:
            bi->dst = in->rm;
            return alu_handler(in->op, size, 'i');
        default:
            return NULL;
        }
    }
    if (!mem)
        return NULL;
    if (in->form == X86_FORM_G_E && (size == 4 || size == 8)) {
        bi->dst = in->reg;
        return alu_handler(in->op, size, 'm');
    }
    if (in->op != X86_OP_CMP && in->op != X86_OP_TEST) {
        if (size != 1 && size != 4 && size != 8)
            return NULL;
        if (in->form == X86_FORM_E_G) {
            bi->src = in->reg;
            return alu_rmw_handler(in->op, size, 'r');
        }
        return in->form == X86_FORM_E_I ? alu_rmw_handler(in->op, size, 'i') : NULL;
    }
    /* Read-only CMP/TEST with memory as the first operand. */
    if (in->form == X86_FORM_E_G && (size == 4 || size == 8)) {
        bi->src = in->reg;
        if (in->op == X86_OP_CMP)
            return size == 4 ? alu_mr_CMP_4 : alu_mr_CMP_8;
        return size == 4 ? alu_mr_TEST_4 : alu_mr_TEST_8;
    }
    if (in->form == X86_FORM_E_I && (size == 1 || size == 4 || size == 8)) {
        if (in->op == X86_OP_CMP)
            return size == 1 ? alu_mi_CMP_1 : size == 4 ? alu_mi_CMP_4 : alu_mi_CMP_8;
        return size == 1 ? alu_mi_TEST_1 : size == 4 ? alu_mi_TEST_4 : alu_mi_TEST_8;
    }
    return NULL;
}

/* A [base + disp] memory operand with a 64-bit address. */
static bool simple_base(const struct x86_insn *in)
{
    return (in->flags & X86_INSN_MEM) && !(in->flags & X86_INSN_RIP_REL) && in->base != X86_REG_NONE &&
           in->index == X86_REG_NONE && in->addrsize == 8;
}

static block_fn *mov_pick(struct block_insn *bi)
{
    const struct x86_insn *in = &bi->in;
    unsigned size = in->opsize;
    bool mem = in->flags & X86_INSN_MEM;

    if (!mem && (size == 1 || size == 2) && (in->form == X86_FORM_E_G || in->form == X86_FORM_G_E)) {
        bi->dst = in->form == X86_FORM_E_G ? in->rm : in->reg;
        bi->src = in->form == X86_FORM_E_G ? in->reg : in->rm;
        return mov_rr_bw;
    }
    if (!mem) {
        if (size != 4 && size != 8)
            return NULL;
        switch (in->form) {
        case X86_FORM_E_G:
            bi->dst = in->rm;
            bi->src = in->reg;
            return size == 4 ? mov_rr_4 : mov_rr_8;
        case X86_FORM_G_E:
            bi->dst = in->reg;
            bi->src = in->rm;
            return size == 4 ? mov_rr_4 : mov_rr_8;
        case X86_FORM_E_I:
            bi->dst = in->rm;
            return size == 4 && (in->imm >> 32) ? NULL : mov_ri;
        default:
            return NULL;
        }
    }
    switch (in->form) {
    case X86_FORM_G_E:
        if (simple_base(in) && (size == 4 || size == 8)) {
            bi->dst = in->reg;
            return size == 4 ? mov_load_base_4 : mov_load_base_8;
        }
        return mov_load;
    case X86_FORM_E_G:
        if (simple_base(in) && (size == 4 || size == 8)) {
            bi->src = in->reg;
            return size == 4 ? mov_store_base_4 : mov_store_base_8;
        }
        return mov_store;
    case X86_FORM_E_I:
        return mov_store_imm;
    default:
        return NULL;
    }
}

block_fn *exec_fast_handler(struct block_insn *bi, enum x86_mode mode)
{
    const struct x86_insn *in = &bi->in;
    unsigned size = in->opsize;
    bool mem = in->flags & X86_INSN_MEM;

    if (mode != X86_MODE_64 || in->map > X86_MAP_0F)
        return NULL;
    if (is_alu(in->op))
        return alu_pick(bi);
    switch (in->op) {
    case X86_OP_MOV:
        return mov_pick(bi);
    case X86_OP_LEA:
        if (size != 4 && size != 8)
            return NULL;
        bi->dst = in->reg;
        return lea;
    case X86_OP_MOVZX:
    case X86_OP_MOVSX:
    case X86_OP_MOVSXD:
        if (in->op == X86_OP_MOVSXD)
            bi->src = size == 8 ? 4 : (uint8_t)size;
        else
            bi->src = (in->opcode & 1) ? 2 : 1;
        return in->op == X86_OP_MOVZX ? movzx : movsx;
    case X86_OP_INC:
    case X86_OP_DEC:
        if (size != 4 && size != 8)
            return NULL;
        if (mem) {
            if (in->prefixes & X86_PFX_LOCK)
                return NULL;
            if (in->op == X86_OP_INC)
                return size == 4 ? inc_m_4 : inc_m_8;
            return size == 4 ? dec_m_4 : dec_m_8;
        }
        bi->dst = in->rm;
        if (in->op == X86_OP_INC)
            return size == 4 ? inc_r_4 : inc_r_8;
        return size == 4 ? dec_r_4 : dec_r_8;
    case X86_OP_NOT:
    case X86_OP_NEG:
        if (mem || (size != 4 && size != 8))
            return NULL;
        bi->dst = in->rm;
        if (in->op == X86_OP_NOT)
            return size == 4 ? not_r_4 : not_r_8;
        return size == 4 ? neg_r_4 : neg_r_8;
    case X86_OP_MUL:
        if (mem || size != 8)
            return NULL;
        bi->src = in->rm;
        return mul_r_8;
    case X86_OP_SHL:
    case X86_OP_SHR:
    case X86_OP_SAR:
    case X86_OP_ROL:
    case X86_OP_ROR:
        if (mem || (size != 4 && size != 8))
            return NULL;
        bi->dst = in->rm;
        if (in->form == X86_FORM_E_CL)
            return shift_handler(in->op, size, true);
        if (in->form == X86_FORM_E_1)
            bi->src = 1;
        else if (in->form == X86_FORM_E_I)
            bi->src = (uint8_t)in->imm;
        else
            return NULL;
        return shift_handler(in->op, size, false);
    case X86_OP_IMUL:
        if (mem || (size != 4 && size != 8))
            return NULL;
        bi->dst = in->reg;
        bi->src = in->rm;
        if (in->form == X86_FORM_G_E_I)
            return size == 4 ? imul_rri_4 : imul_rri_8;
        if (in->form == X86_FORM_G_E)
            return size == 4 ? imul_rr_4 : imul_rr_8;
        return NULL;
    case X86_OP_PUSH:
        if (size != 8)
            return NULL;
        if (in->form == X86_FORM_I)
            return push_i;
        if (in->form != X86_FORM_E || mem)
            return NULL;
        bi->src = in->rm;
        return push_r;
    case X86_OP_POP:
        if (size != 8 || in->form != X86_FORM_E || mem)
            return NULL;
        bi->dst = in->rm;
        return pop_r;
    case X86_OP_JCC:
        return size == 8 ? jcc_handlers[in->opcode & 15] : NULL;
    case X86_OP_JMP:
        return size == 8 && in->form == X86_FORM_J ? jmp_rel : NULL;
    case X86_OP_CALL:
        return size == 8 && in->form == X86_FORM_J ? call_rel : NULL;
    case X86_OP_RET:
        return size == 8 && in->form == X86_FORM_NONE ? ret_near : NULL;
    case X86_OP_CMOVCC:
        if (mem || (size != 4 && size != 8))
            return NULL;
        bi->dst = in->reg;
        bi->src = in->rm;
        return cmov_handlers[in->opcode & 15];
    case X86_OP_SETCC:
        return mem ? NULL : setcc_handlers[in->opcode & 15];
    case X86_OP_NOP:
        return nop;
    default:
        return NULL;
    }
}
