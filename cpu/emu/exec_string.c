/* emu interpreter: string instructions (MOVS, STOS, LODS, CMPS, SCAS, INS, OUTS) with REP/REPE/REPNE. REP is
 * restartable: the registers advance per element, and a long REP returns to the run loop every
 * STRING_CHUNK elements (RIP left on the instruction) so events are taken between iterations. */
#include "emu/exec.h"

/* Elements per pass through the run loop: slow path, and bytes for the RAM fast path. */
#define STRING_CHUNK 256
#define STRING_FAST_BYTES 65536

/* I/O permission: CPL ≤ IOPL in protected mode; the TSS I/O bitmap is not consulted (no access beyond
 * IOPL). */
static int io_allowed(struct exec_ctx *x)
{
    if ((x->s->cr0 & EMU_CR0_PE) && (x_cpl(x) > x_iopl(x) || (x->s->rflags & EMU_FLAG_VM)))
        return x_fault(x, EMU_EXC_GP, 0);
    return XR_OK;
}

/* One element; *si and *di advance by delta. */
static int string_step(struct exec_ctx *x, uint64_t *si, uint64_t *di, int64_t delta)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    unsigned size = in->opsize;
    uint64_t am = x_addr_mask(x), a, b;
    int r;

    switch (in->op) {
    case X86_OP_MOVS:
        if ((r = x_read(x, in->seg, *si, size, &a)) || (r = x_write(x, EMU_ES, *di, size, a)))
            return r;
        *si = (*si + (uint64_t)delta) & am;
        *di = (*di + (uint64_t)delta) & am;
        return XR_OK;
    case X86_OP_STOS:
        if ((r = x_write(x, EMU_ES, *di, size, s->regs[EMU_RAX])))
            return r;
        *di = (*di + (uint64_t)delta) & am;
        return XR_OK;
    case X86_OP_LODS:
        if ((r = x_read(x, in->seg, *si, size, &a)))
            return r;
        x_set_reg(x, EMU_RAX, size, a);
        *si = (*si + (uint64_t)delta) & am;
        return XR_OK;
    case X86_OP_CMPS:
        if ((r = x_read(x, in->seg, *si, size, &a)) || (r = x_read(x, EMU_ES, *di, size, &b)))
            return r;
        emu_alu_cmp(s, size, a, b);
        *si = (*si + (uint64_t)delta) & am;
        *di = (*di + (uint64_t)delta) & am;
        return XR_OK;
    case X86_OP_SCAS:
        if ((r = x_read(x, EMU_ES, *di, size, &b)))
            return r;
        emu_alu_cmp(s, size, s->regs[EMU_RAX], b);
        *di = (*di + (uint64_t)delta) & am;
        return XR_OK;
    case X86_OP_INS: {
        uint64_t lin;
        uint8_t probe[4];
        /* Check the destination before the port read, which may have side effects. */
        if ((r = x_linear(x, EMU_ES, *di, size, true, &lin)) ||
            (r = x_read_lin(x, lin, size, EMU_ACCESS_RMW, probe)))
            return r;
        uint64_t v = emu_port_in(x->cpu, (uint16_t)s->regs[EMU_RDX], size);
        if ((r = x_write_lin(x, lin, size, 0, &v)))
            return r;
        *di = (*di + (uint64_t)delta) & am;
        return XR_OK;
    }
    default: /* OUTS */
        if ((r = x_read(x, in->seg, *si, size, &a)))
            return r;
        emu_port_out(x->cpu, (uint16_t)s->regs[EMU_RDX], size, (uint32_t)a);
        *si = (*si + (uint64_t)delta) & am;
        return XR_OK;
    }
}

/* The RAM fast path of REP MOVS/STOS with DF=0: whole runs inside one page of the source and the destination.
 * Returns the number of elements done (0: take the slow path for the next element). */
static uint64_t string_fast(struct exec_ctx *x, uint64_t si, uint64_t di, uint64_t count)
{
    const struct x86_insn *in = x->in;
    unsigned size = in->opsize;
    uint64_t am = x_addr_mask(x), dlin, slin = 0;
    unsigned idx = emu_mmu_index(x->s, 0);

    uint64_t n = (4096 - (di & 0xfff)) / size; /* segment bases are page aligned in practice */
    if (in->op == X86_OP_MOVS) {
        uint64_t ns = (4096 - (si & 0xfff)) / size;
        n = ns < n ? ns : n;
    }
    n = count < n ? count : n;
    if (n == 0 || di + n * size - 1 > am || si + n * size - 1 > am)
        return 0;
    uint64_t bytes = n * size;
    /* x_linear may raise a fault into x; the slow path will raise it again for the precise element. */
    if (x_linear(x, EMU_ES, di, (unsigned)bytes, true, &dlin) != XR_OK)
        return 0;
    uint8_t *d = emu_tlb_host_write(x->mmu, idx, dlin, (unsigned)bytes);
    if (!d)
        return 0;
    if (in->op == X86_OP_STOS) {
        uint64_t v = x->s->regs[EMU_RAX] & emu_size_mask(size);
        if (size == 1 || v == 0) { /* bytes, or zeroing (clear_page, memset 0): one memset */
            memset(d, (int)(v & 0xff), bytes);
        } else if (size == 8) {
            for (uint64_t i = 0; i < n; i++)
                memcpy(d + i * 8, &v, 8);
        } else if (size == 4) {
            uint32_t v4 = (uint32_t)v;
            for (uint64_t i = 0; i < n; i++)
                memcpy(d + i * 4, &v4, 4);
        } else {
            uint16_t v2 = (uint16_t)v;
            for (uint64_t i = 0; i < n; i++)
                memcpy(d + i * 2, &v2, 2);
        }
        return n;
    }
    if (x_linear(x, in->seg, si, (unsigned)bytes, false, &slin) != XR_OK)
        return 0;
    const uint8_t *src = emu_tlb_host_read(x->mmu, idx, slin, (unsigned)bytes);
    if (!src)
        return 0;
    if (d > src && d < src + bytes) {
        /* Overlap with the destination ahead: the architectural result is a forward element copy. */
        for (uint64_t i = 0; i < n; i++)
            memmove(d + i * size, src + i * size, size);
    } else {
        memmove(d, src, bytes);
    }
    return n;
}

/* Writes back the index registers the instruction uses (others keep their upper bits). */
static void commit_pointers(struct exec_ctx *x, uint64_t si, uint64_t di)
{
    unsigned op = x->in->op;
    if (op != X86_OP_STOS && op != X86_OP_SCAS && op != X86_OP_INS)
        x_set_reg(x, EMU_RSI, x->in->addrsize, si);
    if (op != X86_OP_LODS && op != X86_OP_OUTS)
        x_set_reg(x, EMU_RDI, x->in->addrsize, di);
}

int exec_string(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    unsigned size = in->opsize;
    uint64_t am = x_addr_mask(x);
    uint64_t si = s->regs[EMU_RSI] & am, di = s->regs[EMU_RDI] & am;
    int64_t delta = (s->rflags & EMU_FLAG_DF) ? -(int64_t)size : (int64_t)size;
    bool rep = in->prefixes & (X86_PFX_REP | X86_PFX_REPNE);
    int r;

    if ((in->op == X86_OP_INS || in->op == X86_OP_OUTS) && (r = io_allowed(x)))
        return r;
    if (!rep) {
        if ((r = string_step(x, &si, &di, delta)))
            return r;
        commit_pointers(x, si, di);
        return XR_OK;
    }

    bool conditional = in->op == X86_OP_CMPS || in->op == X86_OP_SCAS;
    bool repne = in->prefixes & X86_PFX_REPNE;
    bool fast = (in->op == X86_OP_MOVS || in->op == X86_OP_STOS) && delta > 0;
    uint64_t count = s->regs[EMU_RCX] & am;
    uint64_t budget = fast ? STRING_FAST_BYTES / size : STRING_CHUNK;

    while (count != 0) {
        if (budget == 0) {
            x->next_rip = x->rip; /* resume after the run loop had a look at events */
            return XR_OK;
        }
        uint64_t done = fast ? string_fast(x, si, di, count) : 0;
        if (done) {
            si = (si + done * size) & am;
            di = (di + done * size) & am;
            count -= done;
            budget = done < budget ? budget - done : 0;
        } else {
            r = string_step(x, &si, &di, delta);
            if (r)
                return r;
            count--;
            budget--;
        }
        commit_pointers(x, si, di);
        x_set_reg(x, EMU_RCX, in->addrsize, count);
        if (conditional && emu_cond(s, EMU_COND_E) == repne)
            break;
    }
    return XR_OK;
}
