/* emu interpreter: control flow (near and far branches, calls, returns, loops, INT n, IRET, HLT). */
#include "emu/exec.h"

#include "emu/interrupt.h"

/* After a far transfer done by the segment or interrupt module, which sets s->rip itself. */
static int far_done(struct exec_ctx *x, int r, const struct emu_fault *f)
{
    if (r)
        return x_fault_from(x, f);
    x->next_rip = x->s->rip;
    return XR_OK;
}

/* The operand of an indirect far transfer: offset (operand size) then selector. */
static int read_far_ptr(struct exec_ctx *x, uint16_t *sel, uint64_t *off)
{
    struct x_op m;
    uint64_t v;
    int r;

    x_op_rm(x, &m);
    if ((r = x_read(x, m.seg, m.off, x->in->opsize, off)))
        return r;
    if ((r = x_read(x, m.seg, (m.off + x->in->opsize) & x_addr_mask(x), 2, &v)))
        return r;
    *sel = (uint16_t)v;
    return XR_OK;
}

static int exec_loop(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    uint64_t mask = x_addr_mask(x);
    uint64_t count = x->s->regs[EMU_RCX] & mask;
    bool taken;

    if (in->op == X86_OP_JCXZ) {
        taken = count == 0;
    } else {
        count = (count - 1) & mask;
        taken = count != 0;
        if (in->op == X86_OP_LOOPE)
            taken = taken && emu_cond(x->s, EMU_COND_E);
        else if (in->op == X86_OP_LOOPNE)
            taken = taken && !emu_cond(x->s, EMU_COND_E);
    }
    if (taken) {
        int r = x_branch(x, x->next_rip + in->imm, in->opsize);
        if (r)
            return r;
    }
    if (in->op != X86_OP_JCXZ)
        x_set_reg(x, EMU_RCX, in->addrsize, count);
    return XR_OK;
}

int exec_ctrl(struct exec_ctx *x)
{
    const struct x86_insn *in = x->in;
    struct emu_state *s = x->s;
    unsigned size = in->opsize;
    struct emu_fault f;
    uint64_t target, ret;
    uint16_t sel;
    int r;

    switch (in->op) {
    case X86_OP_JCC:
        if (!emu_cond(s, in->opcode & 15))
            return XR_OK;
        return x_branch(x, x->next_rip + in->imm, size);
    case X86_OP_JMP:
        if (in->form == X86_FORM_J)
            return x_branch(x, x->next_rip + in->imm, size);
        {
            struct x_op src;
            x_op_rm(x, &src);
            if ((r = x_op_read(x, &src, size, &target)))
                return r;
        }
        return x_branch(x, target, size);
    case X86_OP_CALL:
        ret = x->next_rip;
        if (in->form == X86_FORM_J) {
            target = ret + in->imm;
        } else {
            struct x_op src;
            x_op_rm(x, &src);
            if ((r = x_op_read(x, &src, size, &target)))
                return r;
        }
        if ((r = x_branch(x, target, size)))
            return r;
        return x_push(x, size, ret);
    case X86_OP_RET:
        if ((r = x_stack_read(x, 0, size, &target)))
            return r;
        if ((r = x_branch(x, target, size)))
            return r;
        x_set_sp(x, s->regs[EMU_RSP] + size + (in->form == X86_FORM_I ? (in->imm & 0xffff) : 0));
        return XR_OK;
    case X86_OP_LOOP:
    case X86_OP_LOOPE:
    case X86_OP_LOOPNE:
    case X86_OP_JCXZ:
        return exec_loop(x);
    case X86_OP_JMPF:
    case X86_OP_CALLF:
        if (in->form == X86_FORM_FAR) {
            sel = in->imm2;
            target = in->imm;
        } else if ((r = read_far_ptr(x, &sel, &target))) {
            return r;
        }
        if (in->op == X86_OP_JMPF)
            r = emu_far_jmp(s, &x->sysmem, sel, target, size, &f);
        else
            r = emu_far_call(s, &x->sysmem, sel, target, size, x->next_rip, &f);
        return far_done(x, r, &f);
    case X86_OP_RETF:
        r = emu_far_ret(s, &x->sysmem, size, in->form == X86_FORM_I ? (uint16_t)in->imm : 0, &f);
        return far_done(x, r, &f);
    case X86_OP_IRET:
        emu_flags_materialize(s);
        r = emu_iret(s, &x->sysmem, size, &f);
        return far_done(x, r, &f);
    case X86_OP_INT:
        x->vector = (uint8_t)in->imm;
        return XR_SOFTINT;
    case X86_OP_INT3:
        x->vector = EMU_EXC_BP;
        return XR_SOFTINT;
    case X86_OP_INTO:
        if (!emu_cond(s, EMU_COND_O))
            return XR_OK;
        x->vector = EMU_EXC_OF;
        return XR_SOFTINT;
    case X86_OP_INT1:
        x->vector = EMU_EXC_DB;
        return XR_SOFTINT;
    case X86_OP_HLT:
        if (x_cpl(x) != 0)
            return x_fault(x, EMU_EXC_GP, 0);
        return XR_HALT;
    default:
        return x_unimplemented(x);
    }
}
