/* emu interpreter: segmented and linear memory access, operands, stack, near branches (the loop is in
 * exec_loop.c). */
#include "emu/exec.h"

#include "log.h"

static struct log_ratelimit exec_rl = LOG_RATELIMIT_INIT(5000, 10);

int x_unimplemented(struct exec_ctx *x)
{
    log_message_ratelimited(
        &exec_rl, LOG_LEVEL_WARN,
        "emu: unimplemented instruction %s (map %u opcode 0x%02x modrm 0x%02x prefix %u) at "
        "%04x:%016llx",
        x86_op_name(x->in->op), x->in->map, x->in->opcode, x->in->modrm, x->in->mandatory,
        x->s->seg[EMU_CS].selector, (unsigned long long)x->rip);
    /* The guest gets #UD, as from a CPU without the instruction: a process gets SIGILL, the kernel reports an
     * invalid opcode with its address; deskvm itself never stops on guest code. */
    return x_fault(x, EMU_EXC_UD, 0);
}

/* ---- linear and segmented accesses ---- */

int x_read_lin(struct exec_ctx *x, uint64_t lin, unsigned size, unsigned access, void *buf)
{
    void *h = emu_tlb_host_read(x->mmu, emu_mmu_index(x->s, access), lin, size);
    if (h) {
        memcpy(buf, h, size);
        return XR_OK;
    }
    struct emu_fault f;
    if (!emu_mem_read(x->mmu, lin, size, access, buf, &f))
        return x_fault_from(x, &f);
    return XR_OK;
}

int x_write_lin(struct exec_ctx *x, uint64_t lin, unsigned size, unsigned access, const void *buf)
{
    void *h = emu_tlb_host_write(x->mmu, emu_mmu_index(x->s, access), lin, size);
    if (h) {
        memcpy(h, buf, size);
        return XR_OK;
    }
    struct emu_fault f;
    if (!emu_mem_write(x->mmu, lin, size, access, buf, &f))
        return x_fault_from(x, &f);
    return XR_OK;
}

static int seg_fault(struct exec_ctx *x, unsigned seg)
{
    return x_fault(x, seg == EMU_SS ? EMU_EXC_SS : EMU_EXC_GP, 0);
}

int x_linear(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, bool write, uint64_t *lin)
{
    const struct emu_state *s = x->s;
    const struct emu_segment *sg = &s->seg[seg];

    if (x->mode == X86_MODE_64) {
        uint64_t a = off + (seg >= EMU_FS ? sg->base : 0);
        if (!emu_canonical(a) || !emu_canonical(a + size - 1))
            return seg_fault(x, seg);
        *lin = a;
        return XR_OK;
    }
    unsigned type = sg->attr & EMU_SEG_TYPE_MASK;
    bool expand_down = false;
    if (x_protected(x)) {
        if ((sg->attr & EMU_SEG_UNUSABLE) || !(sg->attr & EMU_SEG_S))
            return seg_fault(x, seg);
        if (type & EMU_DESC_CODE) {
            if (write || !(type & EMU_DESC_RW))
                return seg_fault(x, seg);
        } else {
            if (write && !(type & EMU_DESC_RW))
                return seg_fault(x, seg);
            expand_down = type & EMU_DESC_DC;
        }
    }
    uint64_t last = off + size - 1;
    if (expand_down) {
        uint64_t upper = (sg->attr & EMU_SEG_DB) ? 0xffffffffull : 0xffffull;
        if (off <= sg->limit || last > upper)
            return seg_fault(x, seg);
    } else if (last > sg->limit) {
        return seg_fault(x, seg);
    }
    *lin = (uint32_t)(sg->base + off);
    return XR_OK;
}

int x_read_buf(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, void *buf)
{
    uint64_t lin;
    int r = x_linear(x, seg, off, size, false, &lin);
    return r ? r : x_read_lin(x, lin, size, 0, buf);
}

int x_write_buf(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, const void *buf)
{
    uint64_t lin;
    int r = x_linear(x, seg, off, size, true, &lin);
    return r ? r : x_write_lin(x, lin, size, 0, buf);
}

/* The linear address, with the 64-bit-mode case (no limits, bases only for FS and GS) inline. */
static inline int linear_fast(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, bool write,
                              uint64_t *lin)
{
    if (x->mode == X86_MODE_64) {
        uint64_t a = off + (seg >= EMU_FS ? x->s->seg[seg].base : 0);
        if (!emu_canonical(a) || !emu_canonical(a + size - 1))
            return seg_fault(x, seg);
        *lin = a;
        return XR_OK;
    }
    return x_linear(x, seg, off, size, write, lin);
}

int x_read(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, uint64_t *v)
{
    uint64_t lin, val = 0;
    int r = linear_fast(x, seg, off, size, false, &lin);
    if (r)
        return r;
    const void *h = emu_tlb_host_read(x->mmu, emu_mmu_index(x->s, 0), lin, size);
    if (h) {
        *v = x_load_n(h, size);
        return XR_OK;
    }
    r = x_read_lin(x, lin, size, 0, &val);
    *v = val;
    return r;
}

int x_write(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, uint64_t v)
{
    uint64_t lin;
    int r = linear_fast(x, seg, off, size, true, &lin);
    if (r)
        return r;
    void *h = emu_tlb_host_write(x->mmu, emu_mmu_index(x->s, 0), lin, size);
    if (h) {
        x_store_n(h, size, v);
        return XR_OK;
    }
    return x_write_lin(x, lin, size, 0, &v);
}

/* ---- operands ---- */

uint64_t x_ea(const struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    uint64_t a = (uint64_t)in->disp;
    if (in->flags & X86_INSN_RIP_REL)
        a += x->next_rip;
    if (in->base != X86_REG_NONE)
        a += x->s->regs[in->base];
    if (in->index != X86_REG_NONE)
        a += x->s->regs[in->index] << in->scale;
    return a & emu_size_mask(in->addrsize);
}

void x_op_rm(struct exec_ctx *x, struct x_op *op)
{
    op->host = NULL;
    if (x->in->flags & X86_INSN_MEM) {
        op->mem = true;
        op->seg = x->in->seg;
        op->off = x_ea(x);
        op->reg = 0;
    } else {
        op->mem = false;
        op->reg = x->in->rm;
        op->seg = 0;
        op->off = 0;
    }
}

int x_op_read(struct exec_ctx *x, const struct x_op *op, unsigned size, uint64_t *v)
{
    if (!op->mem) {
        *v = x_get_reg(x, op->reg, size);
        return XR_OK;
    }
    return x_read(x, op->seg, op->off, size, v);
}

int x_op_write(struct exec_ctx *x, const struct x_op *op, unsigned size, uint64_t v)
{
    if (!op->mem) {
        x_set_reg(x, op->reg, size, v);
        return XR_OK;
    }
    return x_write(x, op->seg, op->off, size, v);
}

int x_op_read_rmw(struct exec_ctx *x, struct x_op *op, unsigned size, uint64_t *v)
{
    if (!op->mem) {
        *v = x_get_reg(x, op->reg, size);
        return XR_OK;
    }
    uint64_t lin, val = 0;
    int r = x_linear(x, op->seg, op->off, size, true, &lin);
    if (r)
        return r;
    unsigned idx = emu_mmu_index(x->s, 0);
    void *h = emu_tlb_host_write(x->mmu, idx, lin, size);
    if (!h) {
        struct emu_fault f;
        if (!emu_mem_read(x->mmu, lin, size, EMU_ACCESS_RMW, &val, &f))
            return x_fault_from(x, &f);
        h = emu_tlb_host_write(x->mmu, idx, lin, size);
        if (!h) { /* MMIO, ROM, code page or crossing: plain write later */
            op->host = NULL;
            *v = val;
            return XR_OK;
        }
    }
    op->host = h;
    if (x->in->prefixes & X86_PFX_LOCK) {
        switch (size) {
        case 1:
            val = __atomic_load_n((uint8_t *)h, __ATOMIC_ACQUIRE);
            break;
        case 2:
            val = __atomic_load_n((uint16_t *)h, __ATOMIC_ACQUIRE);
            break;
        case 4:
            val = __atomic_load_n((uint32_t *)h, __ATOMIC_ACQUIRE);
            break;
        default:
            val = __atomic_load_n((uint64_t *)h, __ATOMIC_ACQUIRE);
            break;
        }
    } else {
        val = x_load_n(h, size);
    }
    *v = val;
    return XR_OK;
}

static bool host_cas(void *h, unsigned size, uint64_t old, uint64_t v)
{
    switch (size) {
    case 1: {
        uint8_t o = (uint8_t)old;
        return __atomic_compare_exchange_n((uint8_t *)h, &o, (uint8_t)v, false, __ATOMIC_SEQ_CST,
                                           __ATOMIC_SEQ_CST);
    }
    case 2: {
        uint16_t o = (uint16_t)old;
        return __atomic_compare_exchange_n((uint16_t *)h, &o, (uint16_t)v, false, __ATOMIC_SEQ_CST,
                                           __ATOMIC_SEQ_CST);
    }
    case 4: {
        uint32_t o = (uint32_t)old;
        return __atomic_compare_exchange_n((uint32_t *)h, &o, (uint32_t)v, false, __ATOMIC_SEQ_CST,
                                           __ATOMIC_SEQ_CST);
    }
    default:
        return __atomic_compare_exchange_n((uint64_t *)h, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
}

int x_op_write_rmw(struct exec_ctx *x, const struct x_op *op, unsigned size, uint64_t old, uint64_t v)
{
    if (!op->mem) {
        x_set_reg(x, op->reg, size, v);
        return XR_OK;
    }
    if (op->host) {
        if (x->in->prefixes & X86_PFX_LOCK)
            return host_cas(op->host, size, old, v) ? XR_OK : XR_RETRY;
        x_store_n(op->host, size, v);
        return XR_OK;
    }
    return x_write(x, op->seg, op->off, size, v);
}

/* ---- stack ---- */

unsigned x_stack_width(const struct exec_ctx *x)
{
    if (x->mode == X86_MODE_64)
        return 8;
    return (x->s->seg[EMU_SS].attr & EMU_SEG_DB) ? 4 : 2;
}

void x_set_sp(struct exec_ctx *x, uint64_t sp)
{
    x_set_reg(x, EMU_RSP, x_stack_width(x), sp);
}

int x_stack_read(struct exec_ctx *x, uint64_t sp_offset, unsigned size, uint64_t *v)
{
    uint64_t m = emu_size_mask(x_stack_width(x));
    return x_read(x, EMU_SS, (x->s->regs[EMU_RSP] + sp_offset) & m, size, v);
}

int x_stack_write(struct exec_ctx *x, uint64_t sp_offset, unsigned size, uint64_t v)
{
    uint64_t m = emu_size_mask(x_stack_width(x));
    return x_write(x, EMU_SS, (x->s->regs[EMU_RSP] + sp_offset) & m, size, v);
}

int x_push(struct exec_ctx *x, unsigned size, uint64_t v)
{
    uint64_t m = emu_size_mask(x_stack_width(x));
    uint64_t sp = (x->s->regs[EMU_RSP] - size) & m;
    int r = x_write(x, EMU_SS, sp, size, v);
    if (r)
        return r;
    x_set_sp(x, sp);
    return XR_OK;
}

int x_pop(struct exec_ctx *x, unsigned size, uint64_t *v)
{
    uint64_t m = emu_size_mask(x_stack_width(x));
    uint64_t sp = x->s->regs[EMU_RSP] & m;
    int r = x_read(x, EMU_SS, sp, size, v);
    if (r)
        return r;
    x_set_sp(x, sp + size);
    return XR_OK;
}

int x_branch(struct exec_ctx *x, uint64_t target, unsigned opsize)
{
    if (x->mode == X86_MODE_64) {
        if (opsize != 8)
            target &= emu_size_mask(opsize);
        if (!emu_canonical(target))
            return x_fault(x, EMU_EXC_GP, 0);
    } else {
        target &= emu_size_mask(opsize);
        if (target > x->s->seg[EMU_CS].limit)
            return x_fault(x, EMU_EXC_GP, 0);
    }
    x->next_rip = target;
    return XR_OK;
}
