/* The emu interpreter loop: events, fetch and decode, dispatch, exception delivery; segmented memory access.
 */
#include "emu/exec.h"

/* One 8-byte load that the compiler cannot combine with its neighbours. */
static inline uint64_t load_u64(const uint64_t *p)
{
    uint64_t v;
    __asm__("movq %1, %0" : "=r"(v) : "m"(*p));
    return v;
}

#include <glib.h>

#include "emu/interrupt.h"
#include "log.h"

static struct log_ratelimit exec_rl = LOG_RATELIMIT_INIT(5000, 10);

int emu_trace_level;

int x_unimplemented(struct exec_ctx *x)
{
    log_message_ratelimited(
        &exec_rl, LOG_LEVEL_WARN,
        "emu: unimplemented instruction %s (map %u opcode 0x%02x modrm 0x%02x prefix %u) at "
        "%04x:%016llx",
        x86_op_name(x->in.op), x->in.map, x->in.opcode, x->in.modrm, x->in.mandatory,
        x->s->seg[EMU_CS].selector, (unsigned long long)x->rip);
    /* The guest gets #UD, as from a CPU without the instruction: a process gets SIGILL, the kernel reports an
     * invalid opcode with its address; deskvm itself never stops on guest code. */
    return x_fault(x, EMU_EXC_UD, 0);
}

/* ---- the memory interface of the segment and interrupt modules ---- */

static bool sys_read(void *opaque, uint64_t lin, unsigned size, unsigned access, void *out,
                     struct emu_fault *f)
{
    return emu_mem_read(opaque, lin, size, access, out, f);
}

static bool sys_write(void *opaque, uint64_t lin, unsigned size, unsigned access, const void *in,
                      struct emu_fault *f)
{
    return emu_mem_write(opaque, lin, size, access, in, f);
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

/* Loads and stores of 1, 2, 4 or 8 bytes with constant-size copies (single moves). */
static inline uint64_t load_n(const void *p, unsigned size)
{
    switch (size) {
    case 1:
        return *(const uint8_t *)p;
    case 2: {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    default: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    }
}

static inline void store_n(void *p, unsigned size, uint64_t v)
{
    switch (size) {
    case 1:
        *(uint8_t *)p = (uint8_t)v;
        break;
    case 2:
        memcpy(p, &(uint16_t){(uint16_t)v}, 2);
        break;
    case 4:
        memcpy(p, &(uint32_t){(uint32_t)v}, 4);
        break;
    default:
        memcpy(p, &v, 8);
        break;
    }
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
        *v = load_n(h, size);
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
        store_n(h, size, v);
        return XR_OK;
    }
    return x_write_lin(x, lin, size, 0, &v);
}

/* ---- operands ---- */

uint64_t x_ea(const struct exec_ctx *x)
{
    const struct x86_insn *in = &x->in;
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
    if (x->in.flags & X86_INSN_MEM) {
        op->mem = true;
        op->seg = x->in.seg;
        op->off = x_ea(x);
        op->reg = 0;
    } else {
        op->mem = false;
        op->reg = x->in.rm;
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
    if (x->in.prefixes & X86_PFX_LOCK) {
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
        val = load_n(h, size);
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
        if (x->in.prefixes & X86_PFX_LOCK)
            return host_cas(op->host, size, old, v) ? XR_OK : XR_RETRY;
        store_n(op->host, size, v);
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

/* ---- fetch and decode ---- */

static enum x86_mode code_mode(const struct emu_state *s)
{
    if (emu_code64(s))
        return X86_MODE_64;
    if (!(s->rflags & EMU_FLAG_VM) && (s->seg[EMU_CS].attr & EMU_SEG_DB))
        return X86_MODE_32;
    return X86_MODE_16;
}

/* Decoded instructions, looked up by host address and code mode and validated against the instruction's
 * bytes, so self-modifying code needs no invalidation: changed bytes simply miss. One table per host thread
 * (vCPU threads each have one), allocated on first use. */
#define DCACHE_BITS 12
#define DCACHE_SIZE (1u << DCACHE_BITS)

struct dcache_entry {
    const uint8_t *host;
    uint8_t bytes[16];
    struct x86_insn in;
    uint8_t mode;
};

static GPrivate dcache_key = G_PRIVATE_INIT(g_free);

static struct dcache_entry *dcache_table(void)
{
    struct dcache_entry *t = g_private_get(&dcache_key);
    if (!t) {
        t = g_new0(struct dcache_entry, DCACHE_SIZE);
        g_private_set(&dcache_key, t);
    }
    return t;
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Whether the cached instruction's bytes are still the ones at host (avail bytes readable there). */
static inline bool dcache_match(const struct dcache_entry *e, const uint8_t *host, unsigned avail)
{
    unsigned len = e->in.len;
    if (len > avail)
        return false;
    if (avail < 16)
        return memcmp(e->bytes, host, len) == 0;
    uint64_t d0 = load64(host) ^ load64(e->bytes), d1 = load64(host + 8) ^ load64(e->bytes + 8);
    if (len <= 8)
        return (d0 & emu_size_mask(len)) == 0;
    return d0 == 0 && (d1 & (~0ull >> (64 - 8 * (len - 8)))) == 0;
}

static int fetch_decode(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    uint64_t lin;
    uint8_t buf[16];
    struct emu_fetch fe;
    struct emu_fault f;
    const uint8_t *bytes;
    unsigned avail;

    x->mode = code_mode(s);
    x->rip = s->rip;
    if (x->mode == X86_MODE_64) {
        if (!emu_canonical(s->rip))
            return x_fault(x, EMU_EXC_GP, 0);
        lin = s->rip;
    } else {
        if (s->rip > s->seg[EMU_CS].limit)
            return x_fault(x, EMU_EXC_GP, 0);
        lin = (uint32_t)(s->seg[EMU_CS].base + s->rip);
    }
    const struct emu_tlb_entry *te = &x->mmu->tlb.e[emu_mmu_index(s, 0)][(lin >> 12) & (EMU_TLB_SIZE - 1)];
    if (te->tag_exec == (lin & EMU_PAGE_MASK)) {
        bytes = (const uint8_t *)(uintptr_t)(lin + te->addend);
        avail = 4096 - (unsigned)(lin & 0xfff);
    } else {
        if (!emu_mem_fetch(x->mmu, lin, &fe, &f))
            return x_fault_from(x, &f);
        bytes = fe.host;
        avail = fe.avail;
    }
    int r;
    struct dcache_entry *e = NULL;
    if (bytes) {
        struct dcache_entry *t = x->dcache;
        e = &t[((uintptr_t)bytes ^ ((uintptr_t)bytes >> DCACHE_BITS)) & (DCACHE_SIZE - 1)];
        if (e->host == bytes && e->mode == x->mode && dcache_match(e, bytes, avail)) {
            x->in = e->in;
            r = e->in.len;
            goto decoded;
        }
    }
    if (avail > X86_MAX_INSN_LEN)
        avail = X86_MAX_INSN_LEN;
    if (!bytes) {
        if (!emu_mem_fetch_copy(x->mmu, lin, buf, avail, &f))
            return x_fault_from(x, &f);
        bytes = buf;
    }
    r = x86_decode(bytes, avail, x->mode, &x->in);
    if (r == X86_DECODE_NEED_MORE && avail < X86_MAX_INSN_LEN) {
        /* The instruction crosses into the next page: a fault there is the instruction's own. */
        e = NULL;
        if (bytes != buf)
            memcpy(buf, bytes, avail);
        uint64_t next = lin + avail;
        if (x->mode != X86_MODE_64)
            next = (uint32_t)next;
        if (!emu_mem_fetch_copy(x->mmu, next, buf + avail, X86_MAX_INSN_LEN - avail, &f))
            return x_fault_from(x, &f);
        r = x86_decode(buf, X86_MAX_INSN_LEN, x->mode, &x->in);
    }
    if (r == X86_DECODE_UD || r == X86_DECODE_NEED_MORE)
        return x_fault(x, EMU_EXC_UD, 0);
    if (r == X86_DECODE_TOO_LONG)
        return x_fault(x, EMU_EXC_GP, 0);
    if (e) {
        e->host = bytes;
        e->mode = (uint8_t)x->mode;
        e->in = x->in;
        memcpy(e->bytes, bytes, (unsigned)r);
    }
decoded:;
    uint64_t next_rip = s->rip + (unsigned)r;
    if (x->mode != X86_MODE_64) {
        if (next_rip - 1 > s->seg[EMU_CS].limit)
            return x_fault(x, EMU_EXC_GP, 0);
        next_rip &= x->mode == X86_MODE_32 ? 0xffffffffull : 0xffffull;
    }
    x->next_rip = next_rip;
    return XR_OK;
}

/* ---- dispatch ---- */

typedef int exec_area_fn(struct exec_ctx *x);

// clang-format off
static exec_area_fn *const exec_areas[X86_OP_COUNT] = {
    [X86_OP_ADD] = exec_int, [X86_OP_OR] = exec_int, [X86_OP_ADC] = exec_int, [X86_OP_SBB] = exec_int,
    [X86_OP_AND] = exec_int, [X86_OP_SUB] = exec_int, [X86_OP_XOR] = exec_int, [X86_OP_CMP] = exec_int,
    [X86_OP_INC] = exec_int, [X86_OP_DEC] = exec_int, [X86_OP_NOT] = exec_int, [X86_OP_NEG] = exec_int,
    [X86_OP_MUL] = exec_int, [X86_OP_IMUL] = exec_int, [X86_OP_DIV] = exec_int, [X86_OP_IDIV] = exec_int,
    [X86_OP_TEST] = exec_int, [X86_OP_ROL] = exec_int, [X86_OP_ROR] = exec_int, [X86_OP_RCL] = exec_int,
    [X86_OP_RCR] = exec_int, [X86_OP_SHL] = exec_int, [X86_OP_SHR] = exec_int, [X86_OP_SAR] = exec_int,
    [X86_OP_SHLD] = exec_int, [X86_OP_SHRD] = exec_int, [X86_OP_DAA] = exec_int, [X86_OP_DAS] = exec_int,
    [X86_OP_AAA] = exec_int, [X86_OP_AAS] = exec_int, [X86_OP_AAM] = exec_int, [X86_OP_AAD] = exec_int,
    [X86_OP_SALC] = exec_int, [X86_OP_PUSH] = exec_int, [X86_OP_POP] = exec_int, [X86_OP_PUSHA] = exec_int,
    [X86_OP_POPA] = exec_int, [X86_OP_PUSHF] = exec_int, [X86_OP_POPF] = exec_int, [X86_OP_ENTER] = exec_int,
    [X86_OP_LEAVE] = exec_int, [X86_OP_MOVSXD] = exec_int, [X86_OP_MOV] = exec_int, [X86_OP_MOVZX] = exec_int,
    [X86_OP_MOVSX] = exec_int, [X86_OP_LEA] = exec_int, [X86_OP_XCHG] = exec_int, [X86_OP_NOP] = exec_int,
    [X86_OP_PAUSE] = exec_int, [X86_OP_CBW] = exec_int, [X86_OP_CWD] = exec_int, [X86_OP_SAHF] = exec_int,
    [X86_OP_LAHF] = exec_int, [X86_OP_XLAT] = exec_int, [X86_OP_CMC] = exec_int, [X86_OP_CLC] = exec_int,
    [X86_OP_STC] = exec_int, [X86_OP_CLI] = exec_int, [X86_OP_STI] = exec_int, [X86_OP_CLD] = exec_int,
    [X86_OP_STD] = exec_int, [X86_OP_CMOVCC] = exec_int, [X86_OP_SETCC] = exec_int, [X86_OP_BT] = exec_int,
    [X86_OP_BTS] = exec_int, [X86_OP_BTR] = exec_int, [X86_OP_BTC] = exec_int, [X86_OP_BSF] = exec_int,
    [X86_OP_BSR] = exec_int, [X86_OP_TZCNT] = exec_int, [X86_OP_LZCNT] = exec_int, [X86_OP_POPCNT] = exec_int,
    [X86_OP_CMPXCHG] = exec_int, [X86_OP_XADD] = exec_int, [X86_OP_CMPXCHG8B] = exec_int,
    [X86_OP_BSWAP] = exec_int, [X86_OP_MOVNTI] = exec_int,
    [X86_OP_MOVBE] = exec_int, [X86_OP_WAIT] = exec_int,

    [X86_OP_JCC] = exec_ctrl, [X86_OP_JMP] = exec_ctrl, [X86_OP_CALL] = exec_ctrl, [X86_OP_RET] = exec_ctrl,
    [X86_OP_JMPF] = exec_ctrl, [X86_OP_CALLF] = exec_ctrl,
    [X86_OP_RETF] = exec_ctrl, [X86_OP_INT3] = exec_ctrl,
    [X86_OP_INT] = exec_ctrl, [X86_OP_INTO] = exec_ctrl, [X86_OP_INT1] = exec_ctrl, [X86_OP_IRET] = exec_ctrl,
    [X86_OP_LOOPNE] = exec_ctrl, [X86_OP_LOOPE] = exec_ctrl, [X86_OP_LOOP] = exec_ctrl,
    [X86_OP_JCXZ] = exec_ctrl, [X86_OP_HLT] = exec_ctrl,

    [X86_OP_MOVS] = exec_string, [X86_OP_CMPS] = exec_string, [X86_OP_STOS] = exec_string,
    [X86_OP_LODS] = exec_string, [X86_OP_SCAS] = exec_string, [X86_OP_INS] = exec_string,
    [X86_OP_OUTS] = exec_string,

    [X86_OP_IN] = exec_sys, [X86_OP_OUT] = exec_sys, [X86_OP_MOV_CR] = exec_sys, [X86_OP_MOV_DR] = exec_sys,
    [X86_OP_MOV_SEG] = exec_sys, [X86_OP_PUSH_SEG] = exec_sys, [X86_OP_POP_SEG] = exec_sys,
    [X86_OP_LES] = exec_sys, [X86_OP_LDS] = exec_sys, [X86_OP_LSS] = exec_sys, [X86_OP_LFS] = exec_sys,
    [X86_OP_LGS] = exec_sys, [X86_OP_SLDT] = exec_sys, [X86_OP_STR] = exec_sys, [X86_OP_LLDT] = exec_sys,
    [X86_OP_LTR] = exec_sys, [X86_OP_SGDT] = exec_sys, [X86_OP_SIDT] = exec_sys, [X86_OP_LGDT] = exec_sys,
    [X86_OP_LIDT] = exec_sys, [X86_OP_SMSW] = exec_sys, [X86_OP_LMSW] = exec_sys, [X86_OP_INVLPG] = exec_sys,
    [X86_OP_CLTS] = exec_sys, [X86_OP_INVD] = exec_sys, [X86_OP_WBINVD] = exec_sys, [X86_OP_WRMSR] = exec_sys,
    [X86_OP_RDMSR] = exec_sys, [X86_OP_RDTSC] = exec_sys,
    [X86_OP_RDTSCP] = exec_sys, [X86_OP_CPUID] = exec_sys,
    [X86_OP_CLFLUSH] = exec_sys, [X86_OP_CLFLUSHOPT] = exec_sys, [X86_OP_CLWB] = exec_sys,
    [X86_OP_LFENCE] = exec_sys, [X86_OP_MFENCE] = exec_sys, [X86_OP_SFENCE] = exec_sys,
    [X86_OP_SWAPGS] = exec_sys, [X86_OP_SYSCALL] = exec_sys, [X86_OP_SYSRET] = exec_sys,
    [X86_OP_SYSENTER] = exec_sys, [X86_OP_SYSEXIT] = exec_sys, [X86_OP_CLAC] = exec_sys,
    [X86_OP_STAC] = exec_sys, [X86_OP_LAR] = exec_sys, [X86_OP_LSL] = exec_sys, [X86_OP_VERR] = exec_sys,
    [X86_OP_VERW] = exec_sys, [X86_OP_XGETBV] = exec_sys, [X86_OP_RDPMC] = exec_sys,
    [X86_OP_RDFSBASE] = exec_sys, [X86_OP_RDGSBASE] = exec_sys, [X86_OP_WRFSBASE] = exec_sys,
    [X86_OP_WRGSBASE] = exec_sys, [X86_OP_RDPID] = exec_sys, [X86_OP_MONITOR] = exec_sys,
    [X86_OP_MWAIT] = exec_sys, [X86_OP_RSM] = exec_sys, [X86_OP_FXSAVE] = exec_sys,
    [X86_OP_FXRSTOR] = exec_sys, [X86_OP_LDMXCSR] = exec_sys, [X86_OP_STMXCSR] = exec_sys,
    [X86_OP_X87] = exec_x87, [X86_OP_SSE] = exec_sse, [X86_OP_EMMS] = exec_sys, [X86_OP_ARPL] = exec_sys,
    [X86_OP_BOUND] = exec_sys,
};
// clang-format on

/* Instructions that raise #UD on this CPU (features not advertised). */
static bool op_undefined(unsigned op)
{
    switch (op) {
    case X86_OP_AVX:
    case X86_OP_XABORT:
    case X86_OP_XBEGIN:
    case X86_OP_XSAVE:
    case X86_OP_XRSTOR:
    case X86_OP_XSAVEOPT:
    case X86_OP_CRC32:
    case X86_OP_ADCX:
    case X86_OP_ADOX:
    case X86_OP_RDRAND:
    case X86_OP_RDSEED:
    case X86_OP_INVALID:
        return true;
    default:
        return false;
    }
}

static int execute(struct exec_ctx *x)
{
    unsigned op = x->in.op;
    if (op < X86_OP_COUNT && exec_areas[op])
        return exec_areas[op](x);
    if (op_undefined(op))
        return x_fault(x, EMU_EXC_UD, 0);
    return x_unimplemented(x);
}

/* ---- events ---- */

/* Delivers an event with s->rip already set to the return address; false on a triple fault. */
static bool deliver(struct exec_ctx *x, unsigned vector, enum emu_event_kind kind, uint32_t error_code,
                    unsigned insn_len)
{
    emu_flags_materialize(x->s);
    return emu_deliver_event(x->s, &x->sysmem, vector, kind, error_code, insn_len, NULL) ==
           EMU_EVENT_DELIVERED;
}

static bool deliver_fault(struct exec_ctx *x)
{
    struct emu_fault f = {.cr2 = x->cr2, .error_code = x->error_code, .vector = x->vector};
    emu_flags_materialize(x->s);
    return emu_deliver_fault(x->s, &x->sysmem, &f, NULL) == EMU_EVENT_DELIVERED;
}

/* Takes a pending NMI, INIT/SIPI or external interrupt if the CPU can accept one now. Returns false on a
 * triple fault. While interrupts are masked (IF=0 or a shadow) the hint is parked in *deferred instead of
 * being polled on every instruction; the run loop re-arms it once IF=1. */
static bool check_events(struct emu_cpu *cpu, struct exec_ctx *x, bool *deferred)
{
    struct emu_state *s = &cpu->s;
    bool shadow = s->irq_shadow_rip != 0 && s->irq_shadow_rip == s->rip;

    if (shadow) {
        __atomic_store_n(&cpu->interrupt_hint, 0, __ATOMIC_RELEASE);
        *deferred = true;
        return true;
    }
    s->irq_shadow_rip = 0;
    __atomic_store_n(&cpu->interrupt_hint, 0, __ATOMIC_RELEASE);
    emu_cpu_handle_init_sipi(cpu);
    if (s->wait_for_sipi) {
        *deferred = true;
        return true;
    }
    if (!s->nmi_blocked && emu_cpu_take_nmi(cpu)) {
        s->halted = false;
        /* An interrupt may be pending as well. */
        __atomic_store_n(&cpu->interrupt_hint, 1, __ATOMIC_RELEASE);
        return deliver(x, EMU_EXC_NMI, EMU_EVENT_NMI, 0, 0);
    }
    if (!(s->rflags & EMU_FLAG_IF)) {
        *deferred = true;
        return true;
    }
    int vector = emu_cpu_acknowledge_interrupt(cpu);
    if (__builtin_expect(emu_trace_level >= 1, 0) && vector >= 0)
        log_message(LOG_LEVEL_INFO, "emu cpu%u: interrupt vector %d at %04x:%016llx", cpu->index, vector,
                    s->seg[EMU_CS].selector, (unsigned long long)s->rip);
    if (vector < 0)
        return true;
    /* More may be pending behind this one: look again after the handler's first instruction. */
    __atomic_store_n(&cpu->interrupt_hint, 1, __ATOMIC_RELEASE);
    s->halted = false;
    return deliver(x, (unsigned)vector & 0xff, EMU_EVENT_EXTINT, 0, 0);
}

static enum emu_exec_status run_loop(struct emu_cpu *cpu, uint64_t max_insns, bool *deferred)
{
    struct emu_state *s = &cpu->s;
    struct exec_ctx x = {
        .cpu = cpu,
        .s = s,
        .mmu = &cpu->mmu,
        .sysmem = {sys_read, sys_write, &cpu->mmu},
        .dcache = dcache_table(),
    };

    for (uint64_t n = 0; n < max_insns; n++) {
        if (__atomic_load_n(&cpu->exit_request, __ATOMIC_ACQUIRE))
            return EMU_EXEC_EXIT_REQUEST;
        if (*deferred && (s->rflags & EMU_FLAG_IF) && s->irq_shadow_rip != s->rip) {
            *deferred = false;
            __atomic_store_n(&cpu->interrupt_hint, 1, __ATOMIC_RELEASE);
        }
        if (__atomic_load_n(&cpu->interrupt_hint, __ATOMIC_ACQUIRE) && !check_events(cpu, &x, deferred))
            return EMU_EXEC_TRIPLE_FAULT;
        if (s->halted || s->wait_for_sipi)
            return EMU_EXEC_HALT;

        /* A faulting instruction leaves no trace in the flags; handlers write registers only once nothing can
         * fault any more. */
        /* Read the fields one by one: the compiler would otherwise merge neighbours into one 16-byte load, which
         * cannot be forwarded from the previous instruction's two 8-byte flag stores and stalls every
         * instruction (measured: the hottest spot of a Linux boot). */
        uint64_t rflags = load_u64(&s->rflags), cc_dst = load_u64(&s->cc_dst);
        uint64_t cc_src = load_u64(&s->cc_src), cc_src2 = load_u64(&s->cc_src2);
        uint32_t cc_op = s->cc_op;
        x.shadow = false;
        int r = fetch_decode(&x);
        if (__builtin_expect(emu_trace_level >= 2, 0) && r == XR_OK)
            log_message(LOG_LEVEL_INFO, "emu cpu%u: %04x:%016llx %s (%u bytes)", cpu->index,
                        s->seg[EMU_CS].selector, (unsigned long long)x.rip, x86_op_name(x.in.op), x.in.len);
        if (r == XR_OK) {
            do {
                r = execute(&x);
            } while (r == XR_RETRY);
        }
        switch (r) {
        case XR_OK:
            s->rip = x.next_rip;
            cpu->icount++;
            if (x.shadow)
                s->irq_shadow_rip = s->rip;
            else if (s->irq_shadow_rip)
                s->irq_shadow_rip = 0;
            break;
        case XR_SOFTINT: {
            static const uint8_t kinds[4] = {EMU_EVENT_SOFT_INT, EMU_EVENT_INT3, EMU_EVENT_INTO,
                                             EMU_EVENT_INT1};
            unsigned k = x.in.op == X86_OP_INT    ? 0
                         : x.in.op == X86_OP_INT3 ? 1
                         : x.in.op == X86_OP_INTO ? 2
                                                  : 3;
            s->rip = x.next_rip;
            cpu->icount++;
            if (!deliver(&x, x.vector, kinds[k], 0, x.in.len))
                return EMU_EXEC_TRIPLE_FAULT;
            break;
        }
        case XR_HALT:
            s->rip = x.next_rip;
            cpu->icount++;
            s->halted = true;
            s->irq_shadow_rip = x.shadow ? s->rip : 0;
            return EMU_EXEC_HALT;
        case XR_FAULT:
            s->rflags = rflags;
            s->cc_op = cc_op;
            s->cc_dst = cc_dst;
            s->cc_src = cc_src;
            s->cc_src2 = cc_src2;
            s->rip = x.rip;
            if (__builtin_expect(emu_trace_level >= 1, 0))
                log_message(LOG_LEVEL_INFO, "emu cpu%u: exception %u, error code 0x%x, at %04x:%016llx, cr2 0x%llx",
                            cpu->index, x.vector, x.error_code, s->seg[EMU_CS].selector, (unsigned long long)x.rip,
                            (unsigned long long)x.cr2);
            if (!deliver_fault(&x))
                return EMU_EXEC_TRIPLE_FAULT;
            break;
        default:
            s->rip = x.rip;
            return EMU_EXEC_ERROR;
        }
    }
    return EMU_EXEC_BUDGET;
}

enum emu_exec_status emu_exec(struct emu_cpu *cpu, uint64_t max_insns)
{
    bool deferred = false;
    enum emu_exec_status st = run_loop(cpu, max_insns, &deferred);
    /* A masked interrupt stays pending for the next call (and for the backend's HLT wakeup check). */
    if (deferred)
        __atomic_store_n(&cpu->interrupt_hint, 1, __ATOMIC_RELEASE);
    return st;
}
