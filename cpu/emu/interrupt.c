/* emu exception and interrupt delivery, double/triple fault escalation, and IRET. */
#include "emu/interrupt.h"

#include "log.h"

static struct log_ratelimit interrupt_rl = LOG_RATELIMIT_INIT(5000, 10);

#define FLAGS_IRET_BASE                                                                                      \
    (EMU_FLAG_CF | EMU_FLAG_PF | EMU_FLAG_AF | EMU_FLAG_ZF | EMU_FLAG_SF | EMU_FLAG_TF | EMU_FLAG_DF |       \
     EMU_FLAG_OF | EMU_FLAG_NT)

bool emu_vector_has_error(unsigned vector)
{
    return vector == EMU_EXC_DF || (vector >= EMU_EXC_TS && vector <= EMU_EXC_PF) || vector == EMU_EXC_AC ||
           vector == 21;
}

/* Faults (as opposed to traps and aborts) save RF=1 so the restarted instruction skips its breakpoint. */
static bool vector_is_fault(unsigned vector)
{
    switch (vector) {
    case EMU_EXC_DE:
    case EMU_EXC_BR:
    case EMU_EXC_UD:
    case EMU_EXC_NM:
    case EMU_EXC_TS:
    case EMU_EXC_NP:
    case EMU_EXC_SS:
    case EMU_EXC_GP:
    case EMU_EXC_PF:
    case EMU_EXC_MF:
    case EMU_EXC_AC:
    case EMU_EXC_XM:
    case 20:
    case 21:
        return true;
    default:
        return false;
    }
}

static bool kind_is_software(enum emu_event_kind kind)
{
    return kind == EMU_EVENT_SOFT_INT || kind == EMU_EVENT_INT3 || kind == EMU_EVENT_INTO ||
           kind == EMU_EVENT_INT1;
}

static uint64_t mask_of(unsigned size)
{
    return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

/* SDM table 6-4 classes. */
enum exc_class { EXC_BENIGN, EXC_CONTRIBUTORY, EXC_PAGE_FAULT, EXC_DOUBLE_FAULT };

static enum exc_class exc_class_of(unsigned vector, enum emu_event_kind kind)
{
    if (kind != EMU_EVENT_EXCEPTION)
        return EXC_BENIGN;
    switch (vector) {
    case EMU_EXC_DE:
    case EMU_EXC_TS:
    case EMU_EXC_NP:
    case EMU_EXC_SS:
    case EMU_EXC_GP:
        return EXC_CONTRIBUTORY;
    case EMU_EXC_PF:
        return EXC_PAGE_FAULT;
    case EMU_EXC_DF:
        return EXC_DOUBLE_FAULT;
    default:
        return EXC_BENIGN;
    }
}

/* SDM table 6-5: does a second exception while delivering the first make a #DF? */
static bool makes_double_fault(enum exc_class first, unsigned second_vector)
{
    enum exc_class second = exc_class_of(second_vector, EMU_EVENT_EXCEPTION);

    if (first == EXC_CONTRIBUTORY)
        return second == EXC_CONTRIBUTORY;
    if (first == EXC_PAGE_FAULT)
        return second == EXC_CONTRIBUTORY || second == EXC_PAGE_FAULT;
    return false;
}

static int deliver_real(struct emu_state *s, const struct emu_sys_mem *mem, unsigned vector,
                        struct emu_fault *f)
{
    struct emu_segment cs = s->seg[EMU_CS];
    struct emu_stack st;
    uint8_t ivt[4];

    if ((uint64_t)vector * 4 + 3 > s->idtr.limit)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    if (!mem->read(mem->opaque, emu_lin(s, s->idtr.base + vector * 4), 4, 0, ivt, f))
        return EMU_FAULT;
    emu_stack_init(&st, s, &s->seg[EMU_SS], s->regs[EMU_RSP], false);
    if (emu_stack_push(&st, mem, s->rflags & 0xffff, 2, f) ||
        emu_stack_push(&st, mem, s->seg[EMU_CS].selector, 2, f) ||
        emu_stack_push(&st, mem, s->rip & 0xffff, 2, f))
        return EMU_FAULT;
    emu_load_real(s, &cs, (uint16_t)(ivt[2] | ivt[3] << 8));
    emu_stack_commit(s, &st);
    s->seg[EMU_CS] = cs;
    s->rip = (uint16_t)(ivt[0] | ivt[1] << 8);
    s->rflags &= ~(uint64_t)(EMU_FLAG_IF | EMU_FLAG_TF | EMU_FLAG_AC);
    return 0;
}

/* Reads size bytes at off in the current TSS, or raises #TS(TR selector + EXT). */
static int tss_read(struct emu_state *s, const struct emu_sys_mem *mem, uint32_t off, unsigned size,
                    uint32_t ext, uint64_t *v, struct emu_fault *f)
{
    uint8_t buf[8];

    *v = 0;
    if ((s->tr.attr & EMU_SEG_UNUSABLE) || off + size - 1 > s->tr.limit)
        return emu_fault_raise(f, EMU_EXC_TS, (s->tr.selector & 0xfffc) | ext);
    if (!mem->read(mem->opaque, emu_lin(s, s->tr.base + off), size, EMU_ACCESS_IMPLICIT, buf, f))
        return EMU_FAULT;
    for (unsigned i = size; i-- > 0;)
        *v = *v << 8 | buf[i];
    return 0;
}

/* The ring new_cpl stack of a legacy (16/32-bit) TSS, with the #TS/#SS checks of its SS. */
static int tss_legacy_stack(struct emu_state *s, const struct emu_sys_mem *mem, unsigned new_cpl,
                            uint32_t ext, struct emu_segment *ssc, uint64_t *sp, struct emu_fault *f)
{
    bool tss32 = (s->tr.attr & EMU_SEG_TYPE_MASK) & 8;
    uint64_t ss;
    struct emu_desc d;
    uint16_t sel;
    unsigned type;

    if (tss32 ? tss_read(s, mem, 4 + 8 * new_cpl, 4, ext, sp, f) ||
                    tss_read(s, mem, 8 + 8 * new_cpl, 2, ext, &ss, f)
              : tss_read(s, mem, 2 + 4 * new_cpl, 2, ext, sp, f) ||
                    tss_read(s, mem, 4 + 4 * new_cpl, 2, ext, &ss, f))
        return EMU_FAULT;
    sel = (uint16_t)ss;
    if ((sel & 0xfffc) == 0)
        return emu_fault_raise(f, EMU_EXC_TS, ext);
    if ((sel & EMU_SEL_RPL) != new_cpl)
        return emu_fault_raise(f, EMU_EXC_TS, (sel & 0xfffc) | ext);
    if (emu_desc_fetch(s, mem, sel, false, EMU_EXC_TS, ext, &d, f))
        return EMU_FAULT;
    type = emu_desc_type(&d);
    if (!emu_desc_is_seg(&d) || (type & EMU_DESC_CODE) || !(type & EMU_DESC_RW) ||
        emu_desc_dpl(&d) != new_cpl)
        return emu_fault_raise(f, EMU_EXC_TS, (sel & 0xfffc) | ext);
    if (!emu_desc_present(&d))
        return emu_fault_raise(f, EMU_EXC_SS, (sel & 0xfffc) | ext);
    if (emu_desc_set_accessed(mem, &d, f))
        return EMU_FAULT;
    emu_desc_to_cache(&d, sel, ssc);
    return 0;
}

static int deliver_protected(struct emu_state *s, const struct emu_sys_mem *mem, unsigned vector,
                             enum emu_event_kind kind, uint32_t error_code, struct emu_fault *f)
{
    bool lm = emu_long_mode(s), v86 = (s->rflags & EMU_FLAG_VM) != 0;
    bool soft = kind == EMU_EVENT_SOFT_INT || kind == EMU_EVENT_INT3 || kind == EMU_EVENT_INTO;
    uint32_t ext = soft ? 0 : 1, idt_err = vector * 8 + 2 + ext;
    unsigned gsize = lm ? 16 : 8, cpl = emu_cpl(s), gtype, ist, new_cpl, psize, ctype;
    uint64_t glo, ghi = 0, off, flags, sp;
    struct emu_segment csc, ssc = s->seg[EMU_SS];
    struct emu_desc cd;
    struct emu_stack st;
    uint8_t gate[16];
    uint16_t sel;
    bool inter, push_err;

    if (v86 && kind == EMU_EVENT_SOFT_INT && ((s->rflags & EMU_FLAG_IOPL) >> 12) < 3)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    if ((uint64_t)vector * gsize + gsize - 1 > s->idtr.limit)
        return emu_fault_raise(f, EMU_EXC_GP, idt_err);
    if (!mem->read(mem->opaque, emu_lin(s, s->idtr.base + (uint64_t)vector * gsize), gsize,
                   EMU_ACCESS_IMPLICIT, gate, f))
        return EMU_FAULT;
    glo = 0;
    for (unsigned i = 8; i-- > 0;)
        glo = glo << 8 | gate[i];
    if (lm)
        for (unsigned i = 16; i-- > 8;)
            ghi = ghi << 8 | gate[i];
    gtype = (glo >> 40) & 0xf;
    if ((glo >> 44) & 1)
        return emu_fault_raise(f, EMU_EXC_GP, idt_err);
    if (lm ? gtype != EMU_DESC_INT_GATE && gtype != EMU_DESC_TRAP_GATE
           : gtype != EMU_DESC_TASK_GATE && gtype != EMU_DESC_INT_GATE16 && gtype != EMU_DESC_TRAP_GATE16 &&
                 gtype != EMU_DESC_INT_GATE && gtype != EMU_DESC_TRAP_GATE)
        return emu_fault_raise(f, EMU_EXC_GP, idt_err);
    if (soft && ((glo >> 45) & 3) < cpl)
        return emu_fault_raise(f, EMU_EXC_GP, idt_err);
    if (!((glo >> 47) & 1))
        return emu_fault_raise(f, EMU_EXC_NP, idt_err);
    if (gtype == EMU_DESC_TASK_GATE) {
        log_message_ratelimited(&interrupt_rl, LOG_LEVEL_WARN,
                                "emu: task gate for vector %u not supported (no task switching), #GP",
                                vector);
        return emu_fault_raise(f, EMU_EXC_GP, idt_err);
    }
    psize = lm ? 8 : (gtype & 8) ? 4 : 2;
    sel = (uint16_t)(glo >> 16);
    off = (glo & 0xffff) | ((glo >> 32) & 0xffff0000);
    if (lm)
        off |= (ghi & 0xffffffffull) << 32;
    else if (psize == 2)
        off &= 0xffff;
    ist = lm ? (glo >> 32) & 7 : 0;

    /* The handler's code segment. */
    if ((sel & 0xfffc) == 0)
        return emu_fault_raise(f, EMU_EXC_GP, ext);
    if (emu_desc_fetch(s, mem, sel, false, EMU_EXC_GP, ext, &cd, f))
        return EMU_FAULT;
    ctype = emu_desc_type(&cd);
    if (!emu_desc_is_seg(&cd) || !(ctype & EMU_DESC_CODE) || emu_desc_dpl(&cd) > cpl)
        return emu_fault_raise(f, EMU_EXC_GP, (sel & 0xfffc) | ext);
    if (!emu_desc_present(&cd))
        return emu_fault_raise(f, EMU_EXC_NP, (sel & 0xfffc) | ext);
    if (lm && (!((cd.lo >> 53) & 1) || ((cd.lo >> 54) & 1)))
        return emu_fault_raise(f, EMU_EXC_GP, (sel & 0xfffc) | ext);
    new_cpl = (ctype & EMU_DESC_DC) ? cpl : emu_desc_dpl(&cd);
    inter = new_cpl < cpl;
    if (v86 && (!inter || new_cpl != 0))
        return emu_fault_raise(f, EMU_EXC_GP, (sel & 0xfffc) | ext);
    if (lm ? !emu_canonical(off) : false)
        return emu_fault_raise(f, EMU_EXC_GP, ext);
    if (emu_desc_set_accessed(mem, &cd, f))
        return EMU_FAULT;
    emu_desc_to_cache(&cd, sel, &csc);
    emu_cs_set_cpl(&csc, new_cpl);
    if (!lm && off > csc.limit)
        return emu_fault_raise(f, EMU_EXC_GP, ext);

    /* The stack. */
    if (lm) {
        sp = s->regs[EMU_RSP];
        if (ist && tss_read(s, mem, 0x24 + 8 * (ist - 1), 8, ext, &sp, f))
            return EMU_FAULT;
        if (!ist && inter && tss_read(s, mem, 4 + 8 * new_cpl, 8, ext, &sp, f))
            return EMU_FAULT;
        if (inter)
            ssc = (struct emu_segment){.selector = (uint16_t)new_cpl,
                                       .attr = (uint16_t)(EMU_SEG_UNUSABLE | new_cpl << EMU_SEG_DPL_SHIFT)};
        emu_stack_init(&st, s, &ssc, sp & ~0xfull, true);
    } else if (inter) {
        if (tss_legacy_stack(s, mem, new_cpl, ext, &ssc, &sp, f))
            return EMU_FAULT;
        emu_stack_init(&st, s, &ssc, sp, false);
        st.ss_error = (ssc.selector & 0xfffc) | ext;
    } else {
        emu_stack_init(&st, s, &ssc, s->regs[EMU_RSP], false);
    }
    if (!st.ss_error)
        st.ss_error = ext;
    st.access = new_cpl < 3 ? EMU_ACCESS_IMPLICIT : 0;

    flags = s->rflags;
    if (kind == EMU_EVENT_EXCEPTION && vector_is_fault(vector))
        flags |= EMU_FLAG_RF;
    push_err = kind == EMU_EVENT_EXCEPTION && emu_vector_has_error(vector);
    if (v86 && (emu_stack_push(&st, mem, s->seg[EMU_GS].selector, psize, f) ||
                emu_stack_push(&st, mem, s->seg[EMU_FS].selector, psize, f) ||
                emu_stack_push(&st, mem, s->seg[EMU_DS].selector, psize, f) ||
                emu_stack_push(&st, mem, s->seg[EMU_ES].selector, psize, f)))
        return EMU_FAULT;
    if ((lm || inter) && (emu_stack_push(&st, mem, s->seg[EMU_SS].selector, psize, f) ||
                          emu_stack_push(&st, mem, s->regs[EMU_RSP] & mask_of(psize), psize, f)))
        return EMU_FAULT;
    if (emu_stack_push(&st, mem, flags & mask_of(psize), psize, f) ||
        emu_stack_push(&st, mem, s->seg[EMU_CS].selector, psize, f) ||
        emu_stack_push(&st, mem, s->rip & mask_of(psize), psize, f) ||
        (push_err && emu_stack_push(&st, mem, error_code, psize, f)))
        return EMU_FAULT;

    if (v86) {
        static const enum emu_seg data[] = {EMU_ES, EMU_DS, EMU_FS, EMU_GS};
        for (unsigned i = 0; i < 4; i++)
            s->seg[data[i]] = (struct emu_segment){.attr = EMU_SEG_UNUSABLE};
    }
    s->seg[EMU_SS] = ssc;
    s->seg[EMU_CS] = csc;
    if (st.mask == 0xffff)
        s->regs[EMU_RSP] = (s->regs[EMU_RSP] & ~0xffffull) | st.sp;
    else
        s->regs[EMU_RSP] = st.sp;
    s->rip = off;
    s->rflags &= ~(uint64_t)(EMU_FLAG_TF | EMU_FLAG_NT | EMU_FLAG_RF | EMU_FLAG_VM);
    if (!(gtype & 1))
        s->rflags &= ~(uint64_t)EMU_FLAG_IF;
    return 0;
}

int emu_deliver_event(struct emu_state *s, const struct emu_sys_mem *mem, unsigned vector,
                      enum emu_event_kind kind, uint32_t error_code, unsigned insn_len,
                      struct emu_fault *last)
{
    struct emu_fault nf;
    uint64_t event_rip = s->rip;

    vector &= 0xff;
    for (unsigned attempt = 0; attempt < 4; attempt++) {
        int r = (s->cr0 & EMU_CR0_PE) ? deliver_protected(s, mem, vector, kind, error_code, &nf)
                                      : deliver_real(s, mem, vector, &nf);
        if (r == 0) {
            if (kind == EMU_EVENT_NMI)
                s->nmi_blocked = true;
            s->halted = false;
            s->irq_shadow_rip = 0;
            return EMU_EVENT_DELIVERED;
        }
        if (last)
            *last = nf;
        if (exc_class_of(vector, kind) == EXC_DOUBLE_FAULT)
            break;
        if (nf.vector == EMU_EXC_PF)
            s->cr2 = nf.cr2;
        /* A fault while delivering INT n belongs to the INT instruction. */
        if (kind_is_software(kind) && attempt == 0)
            s->rip = event_rip - insn_len;
        if (makes_double_fault(exc_class_of(vector, kind), nf.vector)) {
            vector = EMU_EXC_DF;
            error_code = 0;
        } else {
            vector = nf.vector;
            error_code = nf.error_code;
        }
        kind = EMU_EVENT_EXCEPTION;
    }
    s->rip = event_rip;
    return EMU_EVENT_TRIPLE_FAULT;
}

int emu_deliver_fault(struct emu_state *s, const struct emu_sys_mem *mem, const struct emu_fault *fault,
                      struct emu_fault *last)
{
    if (fault->vector == EMU_EXC_PF)
        s->cr2 = fault->cr2;
    return emu_deliver_event(s, mem, fault->vector, EMU_EVENT_EXCEPTION, fault->error_code, 0, last);
}

/* The RFLAGS bits IRET may load at this CPL and IOPL. */
static uint64_t iret_flags_mask(unsigned opsize, unsigned cpl, unsigned iopl)
{
    uint64_t m = FLAGS_IRET_BASE;

    if (opsize >= 4)
        m |= EMU_FLAG_RF | EMU_FLAG_AC | EMU_FLAG_ID;
    if (cpl <= iopl)
        m |= EMU_FLAG_IF;
    if (cpl == 0) {
        m |= EMU_FLAG_IOPL;
        if (opsize >= 4)
            m |= EMU_FLAG_VIF | EMU_FLAG_VIP;
    }
    return m & mask_of(opsize);
}

static void write_flags(struct emu_state *s, uint64_t value, uint64_t mask)
{
    s->rflags = (s->rflags & ~mask) | (value & mask) | EMU_FLAG_FIXED1;
}

/* IRET from CPL 0 with VM=1 in the popped EFLAGS: back to virtual-8086 mode (legacy protected mode only). */
static int iret_to_v86(struct emu_state *s, const struct emu_sys_mem *mem, struct emu_stack *st, uint64_t ip,
                       uint64_t cs, uint64_t flags, struct emu_fault *f)
{
    uint64_t v[6]; /* ESP, SS, ES, DS, FS, GS */
    static const enum emu_seg order[] = {EMU_SS, EMU_ES, EMU_DS, EMU_FS, EMU_GS};

    for (unsigned i = 0; i < 6; i++)
        if (emu_stack_pop(st, mem, &v[i], 4, f))
            return EMU_FAULT;
    if (ip > 0xffff)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    write_flags(s, flags, 0x3f7fd5); /* everything but bit 15 and the reserved ones; VM becomes 1 */
    emu_load_real(s, &s->seg[EMU_CS], (uint16_t)cs);
    for (unsigned i = 0; i < 5; i++)
        emu_load_real(s, &s->seg[order[i]], (uint16_t)v[i + 1]);
    s->regs[EMU_RSP] = (uint32_t)v[0];
    s->rip = ip;
    s->nmi_blocked = false;
    return 0;
}

int emu_iret(struct emu_state *s, const struct emu_sys_mem *mem, unsigned opsize, struct emu_fault *f)
{
    unsigned cpl = emu_cpl(s), iopl = (s->rflags & EMU_FLAG_IOPL) >> 12, rpl;
    bool lm = emu_long_mode(s), code64 = emu_code64(s), to64;
    struct emu_segment csc, ssc;
    struct emu_stack st, nst;
    uint64_t ip, cs, flags, nsp = 0, nss = 0;

    if (opsize != 2 && opsize != 4 && opsize != 8)
        return emu_fault_raise(f, EMU_EXC_UD, 0);
    if ((s->cr0 & EMU_CR0_PE) && (s->rflags & EMU_FLAG_VM) && iopl < 3)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    if ((s->cr0 & EMU_CR0_PE) && !(s->rflags & EMU_FLAG_VM) && (s->rflags & EMU_FLAG_NT)) {
        if (!lm)
            log_message_ratelimited(&interrupt_rl, LOG_LEVEL_WARN,
                                    "emu: IRET with NT=1 (task return) not supported, #GP");
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    }
    emu_stack_init(&st, s, &s->seg[EMU_SS], s->regs[EMU_RSP], code64);
    if (emu_stack_pop(&st, mem, &ip, opsize, f) || emu_stack_pop(&st, mem, &cs, opsize, f) ||
        emu_stack_pop(&st, mem, &flags, opsize, f))
        return EMU_FAULT;

    if (!(s->cr0 & EMU_CR0_PE) || (s->rflags & EMU_FLAG_VM)) {
        bool v86 = (s->rflags & EMU_FLAG_VM) != 0;
        uint64_t m = iret_flags_mask(opsize, 0, 3) & ~(uint64_t)(EMU_FLAG_VIF | EMU_FLAG_VIP);
        csc = s->seg[EMU_CS];
        emu_load_real(s, &csc, (uint16_t)cs);
        ip &= mask_of(opsize);
        if (ip > csc.limit)
            return emu_fault_raise(f, EMU_EXC_GP, 0);
        if (v86)
            m &= ~(uint64_t)EMU_FLAG_IOPL;
        emu_stack_commit(s, &st);
        s->seg[EMU_CS] = csc;
        s->rip = ip;
        write_flags(s, flags, m);
        s->nmi_blocked = false;
        return 0;
    }

    if (!lm && (flags & EMU_FLAG_VM) && cpl == 0 && opsize == 4)
        return iret_to_v86(s, mem, &st, ip, cs, flags, f);

    if (emu_check_return_cs(s, mem, (uint16_t)cs, &csc, f))
        return EMU_FAULT;
    rpl = cs & EMU_SEL_RPL;
    to64 = lm && (csc.attr & EMU_SEG_L);
    if (code64 || rpl > cpl) {
        if (emu_stack_pop(&st, mem, &nsp, opsize, f) || emu_stack_pop(&st, mem, &nss, opsize, f))
            return EMU_FAULT;
        if (emu_check_ss(s, mem, (uint16_t)nss, rpl, to64, &ssc, f))
            return EMU_FAULT;
    }
    if (to64) {
        if (!emu_canonical(ip))
            return emu_fault_raise(f, EMU_EXC_GP, 0);
    } else {
        ip &= mask_of(opsize < 8 ? opsize : 4);
        if (ip > csc.limit)
            return emu_fault_raise(f, EMU_EXC_GP, 0);
    }

    write_flags(s, flags, iret_flags_mask(opsize, cpl, iopl));
    s->seg[EMU_CS] = csc;
    s->rip = ip;
    if (code64 || rpl > cpl) {
        s->seg[EMU_SS] = ssc;
        if (lm) {
            s->regs[EMU_RSP] = nsp;
        } else {
            emu_stack_init(&nst, s, &ssc, nsp, false);
            emu_stack_commit(s, &nst);
        }
        if (rpl > cpl)
            emu_null_outer_segments(s);
    } else {
        emu_stack_commit(s, &st);
    }
    s->nmi_blocked = false;
    return 0;
}
