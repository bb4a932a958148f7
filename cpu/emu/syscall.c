/* emu SYSCALL/SYSRET, SYSENTER/SYSEXIT and SWAPGS. */
#include "emu/syscall.h"

/* The fixed descriptor caches these instructions load instead of reading the GDT. */
static struct emu_segment flat_code(uint16_t sel, unsigned dpl, bool code64)
{
    return (struct emu_segment){
        .selector = sel,
        .limit = 0xffffffff,
        .attr =
            (uint16_t)(EMU_DESC_CODE | EMU_DESC_RW | EMU_DESC_ACCESSED | EMU_SEG_S |
                       dpl << EMU_SEG_DPL_SHIFT | EMU_SEG_P | EMU_SEG_G | (code64 ? EMU_SEG_L : EMU_SEG_DB)),
    };
}

static struct emu_segment flat_data(uint16_t sel, unsigned dpl)
{
    return (struct emu_segment){
        .selector = sel,
        .limit = 0xffffffff,
        .attr = (uint16_t)(EMU_DESC_RW | EMU_DESC_ACCESSED | EMU_SEG_S | dpl << EMU_SEG_DPL_SHIFT |
                           EMU_SEG_P | EMU_SEG_G | EMU_SEG_DB),
    };
}

int emu_syscall(struct emu_state *s, uint64_t next_rip, struct emu_fault *f)
{
    uint16_t sel = (uint16_t)(s->msr.star >> 32) & 0xfffc;
    bool from64 = emu_code64(s);

    if (!(s->efer & EMU_EFER_SCE) || !emu_long_mode(s))
        return emu_fault_raise(f, EMU_EXC_UD, 0);
    s->regs[EMU_RCX] = next_rip;
    s->regs[EMU_R11] = s->rflags & ~(uint64_t)EMU_FLAG_RF;
    s->rflags = (s->rflags & ~(s->msr.sfmask | EMU_FLAG_RF)) | EMU_FLAG_FIXED1;
    s->seg[EMU_CS] = flat_code(sel, 0, true);
    s->seg[EMU_SS] = flat_data((uint16_t)(sel + 8), 0);
    s->rip = from64 ? s->msr.lstar : s->msr.cstar;
    return 0;
}

int emu_sysret(struct emu_state *s, unsigned opsize, struct emu_fault *f)
{
    uint16_t sel = (uint16_t)(s->msr.star >> 48);

    if (!(s->efer & EMU_EFER_SCE) || !emu_code64(s))
        return emu_fault_raise(f, EMU_EXC_UD, 0);
    if (emu_cpl(s) != 0)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    if (opsize == 8) {
        if (!emu_canonical(s->regs[EMU_RCX]))
            return emu_fault_raise(f, EMU_EXC_GP, 0);
        s->seg[EMU_CS] = flat_code((uint16_t)((sel + 16) | 3), 3, true);
        s->rip = s->regs[EMU_RCX];
    } else {
        s->seg[EMU_CS] = flat_code((uint16_t)(sel | 3), 3, false);
        s->rip = (uint32_t)s->regs[EMU_RCX];
    }
    s->seg[EMU_SS] = flat_data((uint16_t)((sel + 8) | 3), 3);
    s->rflags = (s->regs[EMU_R11] & 0x3C7FD7) | EMU_FLAG_FIXED1;
    return 0;
}

int emu_sysenter(struct emu_state *s, struct emu_fault *f)
{
    uint16_t sel = (uint16_t)s->msr.sysenter_cs & 0xfffc;
    bool lm = emu_long_mode(s);

    if (!(s->cr0 & EMU_CR0_PE) || sel == 0)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    s->rflags &= ~(uint64_t)(EMU_FLAG_VM | EMU_FLAG_IF | EMU_FLAG_RF);
    s->seg[EMU_CS] = flat_code(sel, 0, lm);
    s->seg[EMU_SS] = flat_data((uint16_t)(sel + 8), 0);
    s->rip = lm ? s->msr.sysenter_eip : (uint32_t)s->msr.sysenter_eip;
    s->regs[EMU_RSP] = lm ? s->msr.sysenter_esp : (uint32_t)s->msr.sysenter_esp;
    return 0;
}

int emu_sysexit(struct emu_state *s, unsigned opsize, struct emu_fault *f)
{
    uint16_t sel = (uint16_t)s->msr.sysenter_cs & 0xfffc;

    if (!(s->cr0 & EMU_CR0_PE) || (s->rflags & EMU_FLAG_VM) || emu_cpl(s) != 0 || sel == 0)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    if (opsize == 8) {
        if (!emu_code64(s))
            return emu_fault_raise(f, EMU_EXC_UD, 0);
        if (!emu_canonical(s->regs[EMU_RDX]) || !emu_canonical(s->regs[EMU_RCX]))
            return emu_fault_raise(f, EMU_EXC_GP, 0);
        s->seg[EMU_CS] = flat_code((uint16_t)((sel + 32) | 3), 3, true);
        s->seg[EMU_SS] = flat_data((uint16_t)((sel + 40) | 3), 3);
        s->rip = s->regs[EMU_RDX];
        s->regs[EMU_RSP] = s->regs[EMU_RCX];
    } else {
        s->seg[EMU_CS] = flat_code((uint16_t)((sel + 16) | 3), 3, false);
        s->seg[EMU_SS] = flat_data((uint16_t)((sel + 24) | 3), 3);
        s->rip = (uint32_t)s->regs[EMU_RDX];
        s->regs[EMU_RSP] = (uint32_t)s->regs[EMU_RCX];
    }
    return 0;
}

int emu_swapgs(struct emu_state *s, struct emu_fault *f)
{
    uint64_t t;

    if (!emu_code64(s))
        return emu_fault_raise(f, EMU_EXC_UD, 0);
    if (emu_cpl(s) != 0)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    t = s->seg[EMU_GS].base;
    s->seg[EMU_GS].base = s->msr.kernel_gs_base;
    s->msr.kernel_gs_base = t;
    return 0;
}
