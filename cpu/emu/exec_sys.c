/* emu interpreter: system instructions (port I/O, control and debug registers, descriptor tables, segment
 * loads, MSRs, CPUID, TSC, fast system calls) and the FPU/SSE state instructions the kernel needs. */
#include "emu/exec.h"

#include "emu/syscall.h"

/* CR4 bits this CPU accepts (the features CPUID advertises). */
#define CR4_VALID                                                                                            \
    (EMU_CR4_VME | EMU_CR4_PVI | EMU_CR4_TSD | EMU_CR4_DE | EMU_CR4_PSE | EMU_CR4_PAE | EMU_CR4_MCE |        \
     EMU_CR4_PGE | EMU_CR4_PCE | EMU_CR4_OSFXSR | EMU_CR4_OSXMMEXCPT)
#define CR4_FLUSH (EMU_CR4_PGE | EMU_CR4_PAE | EMU_CR4_PSE | EMU_CR4_SMEP | EMU_CR4_SMAP | EMU_CR4_PCIDE)
#define CR0_FLUSH (EMU_CR0_PG | EMU_CR0_WP | EMU_CR0_PE)
#define MXCSR_VALID 0xffffu

static int need_cpl0(struct exec_ctx *x)
{
    return x_cpl(x) != 0 ? x_fault(x, EMU_EXC_GP, 0) : XR_OK;
}

static int sys_done(struct exec_ctx *x, int r, const struct emu_fault *f)
{
    if (r)
        return x_fault_from(x, f);
    return XR_OK;
}

static int io_allowed(struct exec_ctx *x)
{
    if ((x->s->cr0 & EMU_CR0_PE) && (x_cpl(x) > x_iopl(x) || (x->s->rflags & EMU_FLAG_VM)))
        return x_fault(x, EMU_EXC_GP, 0);
    return XR_OK;
}

static int write_cr0(struct exec_ctx *x, uint64_t v)
{
    struct emu_state *s = x->s;
    if (v >> 32)
        return x_fault(x, EMU_EXC_GP, 0);
    v |= EMU_CR0_ET;
    if (((v & EMU_CR0_PG) && !(v & EMU_CR0_PE)) || ((v & EMU_CR0_NW) && !(v & EMU_CR0_CD)))
        return x_fault(x, EMU_EXC_GP, 0);
    bool pg_on = (v & EMU_CR0_PG) && !(s->cr0 & EMU_CR0_PG);
    bool pg_off = !(v & EMU_CR0_PG) && (s->cr0 & EMU_CR0_PG);
    if (pg_on && (s->efer & EMU_EFER_LME)) {
        if (!(s->cr4 & EMU_CR4_PAE) || (s->seg[EMU_CS].attr & EMU_SEG_L))
            return x_fault(x, EMU_EXC_GP, 0);
    } else if (pg_on && (s->cr4 & EMU_CR4_PAE) && !emu_mmu_pdptes_valid(x->mmu, s->cr3)) {
        return x_fault(x, EMU_EXC_GP, 0);
    }
    if (pg_off && emu_code64(s))
        return x_fault(x, EMU_EXC_GP, 0);
    uint64_t old = s->cr0;
    s->cr0 = v;
    if (pg_on && (s->efer & EMU_EFER_LME))
        s->efer |= EMU_EFER_LMA;
    if (pg_off)
        s->efer &= ~EMU_EFER_LMA;
    if ((old ^ v) & CR0_FLUSH)
        emu_tlb_flush_all(x->mmu);
    return XR_OK;
}

static int write_cr4(struct exec_ctx *x, uint64_t v)
{
    struct emu_state *s = x->s;
    if (v & ~(uint64_t)CR4_VALID)
        return x_fault(x, EMU_EXC_GP, 0);
    if (emu_long_mode(s) && !(v & EMU_CR4_PAE))
        return x_fault(x, EMU_EXC_GP, 0);
    if ((s->cr0 & EMU_CR0_PG) && !emu_long_mode(s) && (v & EMU_CR4_PAE) && !(s->cr4 & EMU_CR4_PAE) &&
        !emu_mmu_pdptes_valid(x->mmu, s->cr3))
        return x_fault(x, EMU_EXC_GP, 0);
    uint64_t old = s->cr4;
    s->cr4 = v;
    if ((old ^ v) & CR4_FLUSH)
        emu_tlb_flush_all(x->mmu);
    return XR_OK;
}

static int exec_mov_cr(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    unsigned size = x->mode == X86_MODE_64 ? 8 : 4;
    int r;

    if ((r = need_cpl0(x)))
        return r;
    if (in->opcode == 0x20) { /* read */
        uint64_t v;
        switch (in->reg) {
        case 0:
            v = s->cr0;
            break;
        case 2:
            v = s->cr2;
            break;
        case 3:
            v = s->cr3;
            break;
        case 4:
            v = s->cr4;
            break;
        default:
            v = emu_cpu_read_cr8(x->cpu);
            break;
        }
        x_set_reg(x, in->rm, size, v);
        return XR_OK;
    }
    uint64_t v = x_get_reg(x, in->rm, size);
    switch (in->reg) {
    case 0:
        return write_cr0(x, v);
    case 2:
        s->cr2 = v;
        return XR_OK;
    case 3:
        if (emu_long_mode(s) && (v >> EMU_MAXPHYADDR))
            return x_fault(x, EMU_EXC_GP, 0);
        if ((s->cr0 & EMU_CR0_PG) && (s->cr4 & EMU_CR4_PAE) && !emu_long_mode(s) &&
            !emu_mmu_pdptes_valid(x->mmu, v))
            return x_fault(x, EMU_EXC_GP, 0);
        s->cr3 = v;
        emu_tlb_flush_nonglobal(x->mmu);
        return XR_OK;
    case 4:
        return write_cr4(x, v);
    default:
        if (v & ~0xfull)
            return x_fault(x, EMU_EXC_GP, 0);
        emu_cpu_write_cr8(x->cpu, v);
        return XR_OK;
    }
}

static int exec_mov_dr(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    unsigned size = x->mode == X86_MODE_64 ? 8 : 4, n = in->reg;
    int r;

    if ((r = need_cpl0(x)))
        return r;
    if (n == 4 || n == 5) {
        if (s->cr4 & EMU_CR4_DE)
            return x_fault(x, EMU_EXC_UD, 0);
        n += 2;
    }
    if (in->opcode == 0x21) {
        x_set_reg(x, in->rm, size, s->dr[n]);
        return XR_OK;
    }
    uint64_t v = x_get_reg(x, in->rm, size);
    if ((n == 6 || n == 7) && (v >> 32))
        return x_fault(x, EMU_EXC_GP, 0);
    /* Stored only: breakpoints and single-step are not emulated. */
    if (n == 6)
        v = (v & 0xe00f) | 0xffff0ff0;
    else if (n == 7)
        v = (v & ~0xd800ull) | 0x400;
    s->dr[n] = v;
    return XR_OK;
}

/* Stores a selector or other 16-bit system value: 16 bits to memory, zero-extended to a register. */
static int store_sys16(struct exec_ctx *x, uint64_t v)
{
    struct x_op dst;
    x_op_rm(x, &dst);
    if (dst.mem)
        return x_write(x, dst.seg, dst.off, 2, v & 0xffff);
    x_set_reg(x, dst.reg, x->in->opsize, v & (x->in->opsize == 2 ? 0xffff : ~0ull));
    return XR_OK;
}

static int load_seg(struct exec_ctx *x, unsigned seg, uint16_t sel)
{
    struct emu_fault f;
    if (emu_load_segment(x->s, &x->sysmem, (enum emu_seg)seg, sel, &f))
        return x_fault_from(x, &f);
    if (seg == EMU_SS)
        x->shadow = true;
    return XR_OK;
}

static int exec_segment(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    struct x_op m;
    uint64_t v, off;
    int r;

    switch (in->op) {
    case X86_OP_MOV_SEG:
        if (in->opcode == 0x8c)
            return store_sys16(x, s->seg[in->reg].selector);
        x_op_rm(x, &m);
        if ((r = x_op_read(x, &m, 2, &v)))
            return r;
        return load_seg(x, in->reg, (uint16_t)v);
    case X86_OP_PUSH_SEG:
        return x_push(x, in->opsize, s->seg[in->reg].selector);
    case X86_OP_POP_SEG:
        if ((r = x_stack_read(x, 0, in->opsize, &v)) || (r = load_seg(x, in->reg, (uint16_t)v)))
            return r;
        x_set_sp(x, s->regs[EMU_RSP] + in->opsize);
        return XR_OK;
    default: { /* LES, LDS, LSS, LFS, LGS */
        static const uint8_t segs[] = {
            [X86_OP_LES - X86_OP_LES] = EMU_ES, [X86_OP_LDS - X86_OP_LES] = EMU_DS,
            [X86_OP_LSS - X86_OP_LES] = EMU_SS, [X86_OP_LFS - X86_OP_LES] = EMU_FS,
            [X86_OP_LGS - X86_OP_LES] = EMU_GS,
        };
        x_op_rm(x, &m);
        if ((r = x_read(x, m.seg, m.off, in->opsize, &off)) ||
            (r = x_read(x, m.seg, (m.off + in->opsize) & x_addr_mask(x), 2, &v)) ||
            (r = load_seg(x, segs[in->op - X86_OP_LES], (uint16_t)v)))
            return r;
        x_set_reg(x, in->reg, in->opsize, off);
        return XR_OK;
    }
    }
}

static int exec_dtable(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    bool idt = in->op == X86_OP_SIDT || in->op == X86_OP_LIDT;
    struct emu_dtable *t = idt ? &s->idtr : &s->gdtr;
    unsigned bsize = x->mode == X86_MODE_64 ? 8 : 4;
    struct x_op m;
    uint64_t limit, base;
    int r;

    x_op_rm(x, &m);
    if (in->op == X86_OP_SGDT || in->op == X86_OP_SIDT) {
        if ((r = x_write(x, m.seg, m.off, 2, t->limit)) ||
            (r = x_write(x, m.seg, (m.off + 2) & x_addr_mask(x), bsize, t->base)))
            return r;
        return XR_OK;
    }
    if ((r = need_cpl0(x)) || (r = x_read(x, m.seg, m.off, 2, &limit)) ||
        (r = x_read(x, m.seg, (m.off + 2) & x_addr_mask(x), bsize, &base)))
        return r;
    if (bsize == 8 && !emu_canonical(base))
        return x_fault(x, EMU_EXC_GP, 0);
    if (in->opsize == 2 && bsize == 4)
        base &= 0xffffff;
    t->limit = (uint16_t)limit;
    t->base = base;
    return XR_OK;
}

/* LAR, LSL, VERR, VERW: ZF says whether the selector names a descriptor visible at this privilege level. */
static int exec_desc_query(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    struct x_op src;
    struct emu_desc d;
    struct emu_fault f;
    uint64_t sel;
    int r;

    if (!x_protected(x))
        return x_fault(x, EMU_EXC_UD, 0);
    x_op_rm(x, &src);
    if ((r = x_op_read(x, &src, 2, &sel)))
        return r;
    bool ok = (sel & 0xfffc) != 0;
    if (ok && emu_desc_fetch(s, &x->sysmem, (uint16_t)sel, false, EMU_EXC_GP, 0, &d, &f))
        ok = false; /* outside the table: ZF=0, no fault */
    if (ok) {
        unsigned type = emu_desc_type(&d), dpl = emu_desc_dpl(&d), rpl = sel & 3, cpl = x_cpl(x);
        bool conforming_code = emu_desc_is_seg(&d) && (type & 0xc) == 0xc;
        if (!conforming_code && (dpl < cpl || dpl < rpl))
            ok = false;
        if (emu_desc_is_seg(&d)) {
            if (in->op == X86_OP_VERR)
                ok = ok && (!(type & EMU_DESC_CODE) || (type & EMU_DESC_RW));
            else if (in->op == X86_OP_VERW)
                ok = ok && !(type & EMU_DESC_CODE) && (type & EMU_DESC_RW);
        } else if (in->op == X86_OP_VERR || in->op == X86_OP_VERW) {
            ok = false;
        } else {
            /* System descriptors LAR/LSL accept: LDT and TSS (LAR also call/task gates, legacy mode only). */
            bool lsl_types =
                type == 2 || type == 9 || type == 11 || (!emu_long_mode(s) && (type == 1 || type == 3));
            bool lar_gate = !emu_long_mode(s) && (type == 4 || type == 5 || type == 12);
            ok = ok && (lsl_types || (in->op == X86_OP_LAR && lar_gate));
        }
    }
    emu_flags_write(s, ok ? EMU_FLAG_ZF : 0, EMU_FLAG_ZF);
    if (!ok || in->op == X86_OP_VERR || in->op == X86_OP_VERW)
        return XR_OK;
    uint64_t v;
    if (in->op == X86_OP_LSL) {
        v = (d.lo & 0xffff) | ((d.lo >> 32) & 0xf0000);
        if (d.lo & (1ull << 55))
            v = (v << 12) | 0xfff;
    } else {
        v = d.lo >> 32 & 0x00f0ff00;
    }
    x_set_reg(x, in->reg, in->opsize, v);
    return XR_OK;
}

static int fpu_check(struct exec_ctx *x, bool sse)
{
    struct emu_state *s = x->s;
    if ((s->cr0 & EMU_CR0_EM) || (sse && !(s->cr4 & EMU_CR4_OSFXSR)))
        return x_fault(x, EMU_EXC_UD, 0);
    if (s->cr0 & EMU_CR0_TS)
        return x_fault(x, EMU_EXC_NM, 0);
    return XR_OK;
}

static int exec_fxstate(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    struct x_op m;
    uint64_t v;
    int r;

    if ((r = fpu_check(x, in->op == X86_OP_LDMXCSR || in->op == X86_OP_STMXCSR)))
        return r;
    x_op_rm(x, &m);
    switch (in->op) {
    case X86_OP_LDMXCSR:
        if ((r = x_read(x, m.seg, m.off, 4, &v)))
            return r;
        if (v & ~(uint64_t)MXCSR_VALID)
            return x_fault(x, EMU_EXC_GP, 0);
        s->fx.mxcsr = (uint32_t)v;
        return XR_OK;
    case X86_OP_STMXCSR:
        return x_write(x, m.seg, m.off, 4, s->fx.mxcsr);
    case X86_OP_FXSAVE: {
        if ((m.off + x_seg_base(x, m.seg)) & 15)
            return x_fault(x, EMU_EXC_GP, 0);
        struct emu_fxsave img = s->fx;
        img.mxcsr_mask = MXCSR_VALID;
        const uint8_t *p = (const uint8_t *)&img;
        /* The reserved tail (bytes 464-511) is left alone, as hardware does. */
        for (unsigned i = 0; i < 464; i += 16) {
            if ((r = x_write_buf(x, m.seg, (m.off + i) & x_addr_mask(x), 16, p + i)))
                return r;
        }
        return XR_OK;
    }
    default: { /* FXRSTOR */
        struct emu_fxsave img;
        uint8_t *p = (uint8_t *)&img;
        if ((m.off + x_seg_base(x, m.seg)) & 15)
            return x_fault(x, EMU_EXC_GP, 0);
        for (unsigned i = 0; i < 512; i += 16) {
            if ((r = x_read_buf(x, m.seg, (m.off + i) & x_addr_mask(x), 16, p + i)))
                return r;
        }
        if (img.mxcsr & ~(uint32_t)MXCSR_VALID)
            return x_fault(x, EMU_EXC_GP, 0);
        img.mxcsr_mask = s->fx.mxcsr_mask;
        memcpy(img.reserved2, s->fx.reserved2, sizeof(img.reserved2));
        s->fx = img;
        return XR_OK;
    }
    }
}

static int exec_msr(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    uint32_t msr = (uint32_t)s->regs[EMU_RCX];
    uint64_t v;
    int r;

    if ((r = need_cpl0(x)))
        return r;
    if (x->in->op == X86_OP_RDMSR) {
        if (!emu_msr_read(x->cpu, msr, &v))
            return x_fault(x, EMU_EXC_GP, 0);
        s->regs[EMU_RAX] = (uint32_t)v;
        s->regs[EMU_RDX] = v >> 32;
        return XR_OK;
    }
    v = (uint32_t)s->regs[EMU_RAX] | s->regs[EMU_RDX] << 32;
    if (!emu_msr_write(x->cpu, msr, v))
        return x_fault(x, EMU_EXC_GP, 0);
    return XR_OK;
}

int exec_sys(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    struct emu_fault f;
    struct x_op m;
    uint64_t v;
    int r;

    switch (in->op) {
    case X86_OP_IN:
    case X86_OP_OUT: {
        uint16_t port = in->form == X86_FORM_I ? (uint16_t)(in->imm & 0xff) : (uint16_t)s->regs[EMU_RDX];
        if ((r = io_allowed(x)))
            return r;
        if (in->op == X86_OP_IN)
            x_set_reg(x, EMU_RAX, in->opsize, emu_port_in(x->cpu, port, in->opsize));
        else
            emu_port_out(x->cpu, port, in->opsize, (uint32_t)x_get_reg(x, EMU_RAX, in->opsize));
        return XR_OK;
    }
    case X86_OP_MOV_CR:
        return exec_mov_cr(x);
    case X86_OP_MOV_DR:
        return exec_mov_dr(x);
    case X86_OP_MOV_SEG:
    case X86_OP_PUSH_SEG:
    case X86_OP_POP_SEG:
    case X86_OP_LES:
    case X86_OP_LDS:
    case X86_OP_LSS:
    case X86_OP_LFS:
    case X86_OP_LGS:
        return exec_segment(x);
    case X86_OP_SGDT:
    case X86_OP_SIDT:
    case X86_OP_LGDT:
    case X86_OP_LIDT:
        return exec_dtable(x);
    case X86_OP_SLDT:
    case X86_OP_STR:
        if (!x_protected(x))
            return x_fault(x, EMU_EXC_UD, 0);
        return store_sys16(x, in->op == X86_OP_SLDT ? s->ldtr.selector : s->tr.selector);
    case X86_OP_LLDT:
    case X86_OP_LTR:
        x_op_rm(x, &m);
        if (!x_protected(x))
            return x_fault(x, EMU_EXC_UD, 0);
        if ((r = x_op_read(x, &m, 2, &v)))
            return r;
        if (in->op == X86_OP_LLDT)
            r = emu_load_ldtr(s, &x->sysmem, (uint16_t)v, &f);
        else
            r = emu_load_tr(s, &x->sysmem, (uint16_t)v, &f);
        return sys_done(x, r, &f);
    case X86_OP_SMSW:
        x_op_rm(x, &m);
        if (m.mem)
            return x_write(x, m.seg, m.off, 2, s->cr0 & 0xffff);
        x_set_reg(x, m.reg, in->opsize, s->cr0);
        return XR_OK;
    case X86_OP_LMSW:
        x_op_rm(x, &m);
        if ((r = need_cpl0(x)) || (r = x_op_read(x, &m, 2, &v)))
            return r;
        /* Loads PE, MP, EM and TS; PE can be set but not cleared. */
        return write_cr0(x, (s->cr0 & ~0xeull) | (v & 0xf) | (s->cr0 & EMU_CR0_PE));
    case X86_OP_CLTS:
        if ((r = need_cpl0(x)))
            return r;
        s->cr0 &= ~EMU_CR0_TS;
        return XR_OK;
    case X86_OP_INVLPG: {
        if ((r = need_cpl0(x)))
            return r;
        uint64_t off = x_ea(x), lin = off;
        if (x->mode != X86_MODE_64)
            lin = (uint32_t)(s->seg[in->seg].base + off);
        else if (in->seg >= EMU_FS)
            lin += s->seg[in->seg].base;
        emu_tlb_flush_page(x->mmu, lin);
        return XR_OK;
    }
    case X86_OP_INVD:
    case X86_OP_WBINVD:
        return need_cpl0(x);
    case X86_OP_CLFLUSH:
    case X86_OP_CLFLUSHOPT:
    case X86_OP_CLWB:
    case X86_OP_LFENCE:
    case X86_OP_MFENCE:
    case X86_OP_SFENCE:
        return XR_OK;
    case X86_OP_RDMSR:
    case X86_OP_WRMSR:
        return exec_msr(x);
    case X86_OP_RDTSC:
    case X86_OP_RDTSCP:
        if ((s->cr4 & EMU_CR4_TSD) && x_cpl(x) != 0)
            return x_fault(x, EMU_EXC_GP, 0);
        v = emu_read_tsc(x->cpu);
        s->regs[EMU_RAX] = (uint32_t)v;
        s->regs[EMU_RDX] = v >> 32;
        if (in->op == X86_OP_RDTSCP)
            s->regs[EMU_RCX] = (uint32_t)s->msr.tsc_aux;
        return XR_OK;
    case X86_OP_CPUID: {
        uint32_t out[4];
        emu_cpuid(x->cpu, (uint32_t)s->regs[EMU_RAX], (uint32_t)s->regs[EMU_RCX], out);
        s->regs[EMU_RAX] = out[0];
        s->regs[EMU_RBX] = out[1];
        s->regs[EMU_RCX] = out[2];
        s->regs[EMU_RDX] = out[3];
        return XR_OK;
    }
    case X86_OP_SWAPGS:
        return sys_done(x, emu_swapgs(s, &f), &f);
    case X86_OP_SYSCALL:
    case X86_OP_SYSRET:
    case X86_OP_SYSENTER:
    case X86_OP_SYSEXIT:
        emu_flags_materialize(s);
        if (in->op == X86_OP_SYSCALL)
            r = emu_syscall(s, x->next_rip, &f);
        else if (in->op == X86_OP_SYSRET)
            r = emu_sysret(s, in->opsize, &f);
        else if (in->op == X86_OP_SYSENTER)
            r = emu_sysenter(s, &f);
        else
            r = emu_sysexit(s, in->opsize, &f);
        if (r)
            return x_fault_from(x, &f);
        x->next_rip = s->rip;
        return XR_OK;
    case X86_OP_LAR:
    case X86_OP_LSL:
    case X86_OP_VERR:
    case X86_OP_VERW:
        return exec_desc_query(x);
    case X86_OP_FXSAVE:
    case X86_OP_FXRSTOR:
    case X86_OP_LDMXCSR:
    case X86_OP_STMXCSR:
        return exec_fxstate(x);
    case X86_OP_EMMS:
        return fpu_check(x, false);
    case X86_OP_RDPMC:
        return x_fault(x, EMU_EXC_GP, 0);
    case X86_OP_ARPL: {
        uint64_t d;
        if (!x_protected(x))
            return x_fault(x, EMU_EXC_UD, 0);
        x_op_rm(x, &m);
        if ((r = x_op_read_rmw(x, &m, 2, &d)))
            return r;
        uint64_t src = x_get_reg(x, in->reg, 2);
        bool adjust = (d & 3) < (src & 3);
        if (adjust && (r = x_op_write_rmw(x, &m, 2, d, (d & ~3ull) | (src & 3))))
            return r;
        emu_flags_write(s, adjust ? EMU_FLAG_ZF : 0, EMU_FLAG_ZF);
        return XR_OK;
    }
    case X86_OP_BOUND: {
        uint64_t lo, hi;
        unsigned size = in->opsize;
        x_op_rm(x, &m);
        if ((r = x_read(x, m.seg, m.off, size, &lo)) ||
            (r = x_read(x, m.seg, (m.off + size) & x_addr_mask(x), size, &hi)))
            return r;
        int64_t idx = (int64_t)emu_sign_extend(size, x_get_reg(x, in->reg, size));
        if (idx < (int64_t)emu_sign_extend(size, lo) || idx > (int64_t)emu_sign_extend(size, hi))
            return x_fault(x, EMU_EXC_BR, 0);
        return XR_OK;
    }
    default:
        /* Features CPUID does not advertise: SMAP, XSAVE, FSGSBASE, RDPID, MONITOR/MWAIT; and RSM. */
        return x_fault(x, EMU_EXC_UD, 0);
    }
}
