/* emu segmentation: descriptor lookups and checked segment, CS, LDTR and TR loads. */
#include "emu/segment.h"

#include "log.h"

static struct log_ratelimit segment_rl = LOG_RATELIMIT_INIT(5000, 10);

int emu_fault_raise(struct emu_fault *f, unsigned vector, uint32_t error_code)
{
    f->vector = (uint8_t)vector;
    f->error_code = error_code;
    f->cr2 = 0;
    return EMU_FAULT;
}

static uint64_t get_le(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = size; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned size)
{
    for (unsigned i = 0; i < size; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t size_mask(unsigned size)
{
    return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

static bool protected_mode(const struct emu_state *s)
{
    return (s->cr0 & EMU_CR0_PE) && !(s->rflags & EMU_FLAG_VM);
}

int emu_desc_fetch(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, bool wide,
                   unsigned vector, uint32_t ext, struct emu_desc *d, struct emu_fault *f)
{
    uint32_t err = (sel & 0xfffcu) | ext;
    uint64_t base;
    uint32_t limit;
    unsigned len = wide ? 16 : 8;
    uint8_t buf[16];

    if (sel & EMU_SEL_TI) {
        if ((s->ldtr.attr & EMU_SEG_UNUSABLE) || !(s->ldtr.attr & EMU_SEG_P))
            return emu_fault_raise(f, vector, err);
        base = s->ldtr.base;
        limit = s->ldtr.limit;
    } else {
        base = s->gdtr.base;
        limit = s->gdtr.limit;
    }
    if ((uint64_t)(sel & EMU_SEL_INDEX_MASK) + len - 1 > limit)
        return emu_fault_raise(f, vector, err);
    d->addr = emu_lin(s, base + (sel & EMU_SEL_INDEX_MASK));
    if (!mem->read(mem->opaque, d->addr, len, EMU_ACCESS_IMPLICIT, buf, f))
        return EMU_FAULT;
    d->lo = get_le(buf, 8);
    d->hi = wide ? get_le(buf + 8, 8) : 0;
    return 0;
}

int emu_desc_set_accessed(const struct emu_sys_mem *mem, struct emu_desc *d, struct emu_fault *f)
{
    uint8_t access = (uint8_t)(d->lo >> 40);

    if (!emu_desc_is_seg(d) || (access & EMU_DESC_ACCESSED))
        return 0;
    access |= EMU_DESC_ACCESSED;
    if (!mem->write(mem->opaque, d->addr + 5, 1, EMU_ACCESS_IMPLICIT, &access, f))
        return EMU_FAULT;
    d->lo |= (uint64_t)EMU_DESC_ACCESSED << 40;
    return 0;
}

void emu_desc_to_cache(const struct emu_desc *d, uint16_t sel, struct emu_segment *out)
{
    uint32_t limit = (uint32_t)(d->lo & 0xffff) | (uint32_t)((d->lo >> 32) & 0xf0000);

    out->selector = sel;
    out->base = ((d->lo >> 16) & 0xffffff) | ((d->lo >> 56) & 0xff) << 24;
    if (!emu_desc_is_seg(d))
        out->base |= (d->hi & 0xffffffffull) << 32;
    out->limit = (d->lo & (1ull << 55)) ? limit << 12 | 0xfff : limit;
    out->attr = (uint16_t)emu_desc_attr(d);
}

void emu_cs_set_cpl(struct emu_segment *cs, unsigned cpl)
{
    cs->selector = (uint16_t)((cs->selector & ~EMU_SEL_RPL) | cpl);
    cs->attr = (uint16_t)((cs->attr & ~EMU_SEG_DPL_MASK) | cpl << EMU_SEG_DPL_SHIFT);
}

void emu_load_real(const struct emu_state *s, struct emu_segment *r, uint16_t sel)
{
    r->selector = sel;
    r->base = (uint64_t)sel << 4;
    if (s->rflags & EMU_FLAG_VM) {
        r->limit = 0xffff;
        r->attr = EMU_SEG_P | EMU_SEG_S | 3 << EMU_SEG_DPL_SHIFT | EMU_DESC_RW | EMU_DESC_ACCESSED;
    }
}

int emu_check_ss(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, unsigned new_cpl,
                 bool to64, struct emu_segment *out, struct emu_fault *f)
{
    struct emu_desc d;
    unsigned type;

    if ((sel & 0xfffc) == 0) {
        if (!to64 || new_cpl == 3 || (sel & EMU_SEL_RPL) != new_cpl)
            return emu_fault_raise(f, EMU_EXC_GP, 0);
        *out = (struct emu_segment){.selector = sel,
                                    .attr = (uint16_t)(EMU_SEG_UNUSABLE | new_cpl << EMU_SEG_DPL_SHIFT)};
        return 0;
    }
    if ((sel & EMU_SEL_RPL) != new_cpl)
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if (emu_desc_fetch(s, mem, sel, false, EMU_EXC_GP, 0, &d, f))
        return EMU_FAULT;
    type = emu_desc_type(&d);
    if (!emu_desc_is_seg(&d) || (type & EMU_DESC_CODE) || !(type & EMU_DESC_RW) ||
        emu_desc_dpl(&d) != new_cpl)
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if (!emu_desc_present(&d))
        return emu_fault_raise(f, EMU_EXC_SS, sel & 0xfffc);
    if (emu_desc_set_accessed(mem, &d, f))
        return EMU_FAULT;
    emu_desc_to_cache(&d, sel, out);
    return 0;
}

static int check_data_seg(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel,
                          struct emu_segment *out, struct emu_fault *f)
{
    struct emu_desc d;
    unsigned type, dpl;

    if ((sel & 0xfffc) == 0) {
        *out = (struct emu_segment){.selector = sel, .attr = EMU_SEG_UNUSABLE};
        return 0;
    }
    if (emu_desc_fetch(s, mem, sel, false, EMU_EXC_GP, 0, &d, f))
        return EMU_FAULT;
    type = emu_desc_type(&d);
    dpl = emu_desc_dpl(&d);
    if (!emu_desc_is_seg(&d) || (type & (EMU_DESC_CODE | EMU_DESC_RW)) == EMU_DESC_CODE)
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    /* Conforming code is readable from any level; everything else needs RPL and CPL ≤ DPL. */
    if ((type & (EMU_DESC_CODE | EMU_DESC_DC)) != (EMU_DESC_CODE | EMU_DESC_DC) &&
        ((sel & EMU_SEL_RPL) > dpl || emu_cpl(s) > dpl))
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if (!emu_desc_present(&d))
        return emu_fault_raise(f, EMU_EXC_NP, sel & 0xfffc);
    if (emu_desc_set_accessed(mem, &d, f))
        return EMU_FAULT;
    emu_desc_to_cache(&d, sel, out);
    return 0;
}

/* A code segment for far JMP/CALL at the current privilege level. */
static int check_jmp_cs(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel,
                        struct emu_segment *out, struct emu_fault *f)
{
    unsigned cpl = emu_cpl(s), type, dpl;
    struct emu_desc d;

    if ((sel & 0xfffc) == 0)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    if (emu_desc_fetch(s, mem, sel, false, EMU_EXC_GP, 0, &d, f))
        return EMU_FAULT;
    type = emu_desc_type(&d);
    dpl = emu_desc_dpl(&d);
    if (!emu_desc_is_seg(&d)) {
        log_message_ratelimited(&segment_rl, LOG_LEVEL_WARN,
                                "emu: far transfer to system descriptor %#x (type %u) unsupported, #GP", sel,
                                type);
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    }
    if (!(type & EMU_DESC_CODE))
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if (type & EMU_DESC_DC) {
        if (dpl > cpl)
            return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    } else if ((sel & EMU_SEL_RPL) > cpl || dpl != cpl) {
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    }
    if (!emu_desc_present(&d))
        return emu_fault_raise(f, EMU_EXC_NP, sel & 0xfffc);
    if (emu_long_mode(s) && (d.lo & (1ull << 53)) && (d.lo & (1ull << 54)))
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if (emu_desc_set_accessed(mem, &d, f))
        return EMU_FAULT;
    emu_desc_to_cache(&d, sel, out);
    emu_cs_set_cpl(out, cpl);
    return 0;
}

int emu_check_return_cs(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel,
                        struct emu_segment *out, struct emu_fault *f)
{
    unsigned rpl = sel & EMU_SEL_RPL, type, dpl;
    struct emu_desc d;

    if ((sel & 0xfffc) == 0)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    if (emu_desc_fetch(s, mem, sel, false, EMU_EXC_GP, 0, &d, f))
        return EMU_FAULT;
    type = emu_desc_type(&d);
    dpl = emu_desc_dpl(&d);
    if (!emu_desc_is_seg(&d) || !(type & EMU_DESC_CODE) || rpl < emu_cpl(s))
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if ((type & EMU_DESC_DC) ? dpl > rpl : dpl != rpl)
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if (!emu_desc_present(&d))
        return emu_fault_raise(f, EMU_EXC_NP, sel & 0xfffc);
    if (emu_long_mode(s) && (d.lo & (1ull << 53)) && (d.lo & (1ull << 54)))
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if (emu_desc_set_accessed(mem, &d, f))
        return EMU_FAULT;
    emu_desc_to_cache(&d, sel, out);
    emu_cs_set_cpl(out, rpl);
    return 0;
}

void emu_null_outer_segments(struct emu_state *s)
{
    static const enum emu_seg segs[] = {EMU_ES, EMU_DS, EMU_FS, EMU_GS};
    unsigned cpl = emu_cpl(s);

    for (unsigned i = 0; i < 4; i++) {
        struct emu_segment *r = &s->seg[segs[i]];
        unsigned type = r->attr & EMU_SEG_TYPE_MASK;
        unsigned dpl = (r->attr & EMU_SEG_DPL_MASK) >> EMU_SEG_DPL_SHIFT;

        if (r->attr & EMU_SEG_UNUSABLE)
            continue;
        if ((type & (EMU_DESC_CODE | EMU_DESC_DC)) == (EMU_DESC_CODE | EMU_DESC_DC) || dpl >= cpl)
            continue;
        r->selector = 0;
        r->attr = EMU_SEG_UNUSABLE;
    }
}

int emu_load_segment(struct emu_state *s, const struct emu_sys_mem *mem, enum emu_seg seg, uint16_t sel,
                     struct emu_fault *f)
{
    struct emu_segment c;

    if ((unsigned)seg >= EMU_SEG_COUNT)
        return emu_fault_raise(f, EMU_EXC_UD, 0);
    if (!protected_mode(s)) {
        emu_load_real(s, &s->seg[seg], sel);
        return 0;
    }
    if (seg == EMU_SS) {
        if (emu_check_ss(s, mem, sel, emu_cpl(s), emu_code64(s), &c, f))
            return EMU_FAULT;
    } else if (seg == EMU_CS) {
        if (check_jmp_cs(s, mem, sel, &c, f))
            return EMU_FAULT;
    } else if (check_data_seg(s, mem, sel, &c, f)) {
        return EMU_FAULT;
    }
    s->seg[seg] = c;
    return 0;
}

/* The offset of a far transfer into code segment cs: canonical for 64-bit code, else within the limit. */
static int check_target(const struct emu_state *s, const struct emu_segment *cs, uint64_t *off,
                        unsigned opsize, struct emu_fault *f)
{
    if (emu_long_mode(s) && (cs->attr & EMU_SEG_L)) {
        if (!emu_canonical(*off))
            return emu_fault_raise(f, EMU_EXC_GP, 0);
        return 0;
    }
    *off &= size_mask(opsize < 8 ? opsize : 4);
    if (*off > cs->limit)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    return 0;
}

int emu_far_jmp(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, uint64_t offset,
                unsigned opsize, struct emu_fault *f)
{
    struct emu_segment c = s->seg[EMU_CS];

    if (!protected_mode(s))
        emu_load_real(s, &c, sel);
    else if (check_jmp_cs(s, mem, sel, &c, f))
        return EMU_FAULT;
    if (check_target(s, &c, &offset, opsize, f))
        return EMU_FAULT;
    s->seg[EMU_CS] = c;
    s->rip = offset;
    return 0;
}

int emu_far_call(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, uint64_t offset,
                 unsigned opsize, uint64_t ret_rip, struct emu_fault *f)
{
    struct emu_segment c = s->seg[EMU_CS];
    struct emu_stack st;

    if (!protected_mode(s))
        emu_load_real(s, &c, sel);
    else if (check_jmp_cs(s, mem, sel, &c, f))
        return EMU_FAULT;
    if (check_target(s, &c, &offset, opsize, f))
        return EMU_FAULT;
    emu_stack_init(&st, s, &s->seg[EMU_SS], s->regs[EMU_RSP], emu_code64(s));
    if (emu_stack_push(&st, mem, s->seg[EMU_CS].selector, opsize, f) ||
        emu_stack_push(&st, mem, ret_rip, opsize, f))
        return EMU_FAULT;
    emu_stack_commit(s, &st);
    s->seg[EMU_CS] = c;
    s->rip = offset;
    return 0;
}

int emu_far_ret(struct emu_state *s, const struct emu_sys_mem *mem, unsigned opsize, uint16_t pop_bytes,
                struct emu_fault *f)
{
    struct emu_stack st, nst;
    struct emu_segment c, ssc;
    uint64_t ip, cs, nsp, nss;
    uint16_t sel;
    unsigned rpl;
    bool to64;

    emu_stack_init(&st, s, &s->seg[EMU_SS], s->regs[EMU_RSP], emu_code64(s));
    if (emu_stack_pop(&st, mem, &ip, opsize, f) || emu_stack_pop(&st, mem, &cs, opsize, f))
        return EMU_FAULT;
    sel = (uint16_t)cs;
    if (!protected_mode(s)) {
        c = s->seg[EMU_CS];
        emu_load_real(s, &c, sel);
        if (check_target(s, &c, &ip, opsize, f))
            return EMU_FAULT;
        st.sp = (st.sp + pop_bytes) & st.mask;
        emu_stack_commit(s, &st);
        s->seg[EMU_CS] = c;
        s->rip = ip;
        return 0;
    }
    if (emu_check_return_cs(s, mem, sel, &c, f))
        return EMU_FAULT;
    rpl = sel & EMU_SEL_RPL;
    if (rpl == emu_cpl(s)) {
        if (check_target(s, &c, &ip, opsize, f))
            return EMU_FAULT;
        st.sp = (st.sp + pop_bytes) & st.mask;
        emu_stack_commit(s, &st);
        s->seg[EMU_CS] = c;
        s->rip = ip;
        return 0;
    }
    st.sp = (st.sp + pop_bytes) & st.mask;
    if (emu_stack_pop(&st, mem, &nsp, opsize, f) || emu_stack_pop(&st, mem, &nss, opsize, f))
        return EMU_FAULT;
    to64 = emu_long_mode(s) && (c.attr & EMU_SEG_L);
    if (emu_check_ss(s, mem, (uint16_t)nss, rpl, to64, &ssc, f) || check_target(s, &c, &ip, opsize, f))
        return EMU_FAULT;
    emu_stack_init(&nst, s, &ssc, nsp + pop_bytes, to64);
    s->seg[EMU_CS] = c;
    s->seg[EMU_SS] = ssc;
    emu_stack_commit(s, &nst);
    s->rip = ip;
    emu_null_outer_segments(s);
    return 0;
}

/* The common part of LLDT and LTR: a GDT system descriptor of one of the given types. */
static int fetch_system(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, struct emu_desc *d,
                        struct emu_fault *f)
{
    bool wide = emu_long_mode(s);

    if (!protected_mode(s))
        return emu_fault_raise(f, EMU_EXC_UD, 0);
    if (emu_cpl(s) != 0)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    if (sel & EMU_SEL_TI)
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if (emu_desc_fetch(s, mem, sel, wide, EMU_EXC_GP, 0, d, f))
        return EMU_FAULT;
    if (wide && (((d->hi >> 40) & 0x1f) != 0 ||
                 !emu_canonical(((d->hi & 0xffffffffull) << 32) | ((d->lo >> 16) & 0xffffff) |
                                ((d->lo >> 56) & 0xff) << 24)))
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    return 0;
}

int emu_load_ldtr(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, struct emu_fault *f)
{
    struct emu_desc d;

    if (protected_mode(s) && emu_cpl(s) == 0 && (sel & 0xfffc) == 0) {
        s->ldtr = (struct emu_segment){.selector = sel, .attr = EMU_SEG_UNUSABLE};
        return 0;
    }
    if (fetch_system(s, mem, sel, &d, f))
        return EMU_FAULT;
    if (emu_desc_is_seg(&d) || emu_desc_type(&d) != EMU_DESC_LDT)
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if (!emu_desc_present(&d))
        return emu_fault_raise(f, EMU_EXC_NP, sel & 0xfffc);
    emu_desc_to_cache(&d, sel, &s->ldtr);
    return 0;
}

int emu_load_tr(struct emu_state *s, const struct emu_sys_mem *mem, uint16_t sel, struct emu_fault *f)
{
    struct emu_desc d;
    unsigned type;
    uint8_t access;

    if (protected_mode(s) && emu_cpl(s) == 0 && (sel & 0xfffc) == 0)
        return emu_fault_raise(f, EMU_EXC_GP, 0);
    if (fetch_system(s, mem, sel, &d, f))
        return EMU_FAULT;
    type = emu_desc_type(&d);
    if (emu_desc_is_seg(&d) ||
        !(type == EMU_DESC_TSS_AVAIL || (type == EMU_DESC_TSS16_AVAIL && !emu_long_mode(s))))
        return emu_fault_raise(f, EMU_EXC_GP, sel & 0xfffc);
    if (!emu_desc_present(&d))
        return emu_fault_raise(f, EMU_EXC_NP, sel & 0xfffc);
    access = (uint8_t)(d.lo >> 40) | 2; /* available → busy */
    if (!mem->write(mem->opaque, d.addr + 5, 1, EMU_ACCESS_IMPLICIT, &access, f))
        return EMU_FAULT;
    d.lo |= 2ull << 40;
    emu_desc_to_cache(&d, sel, &s->tr);
    return 0;
}

/* ---- Stack access ---- */

void emu_stack_init(struct emu_stack *st, const struct emu_state *s, const struct emu_segment *ss,
                    uint64_t sp, bool flat64)
{
    *st = (struct emu_stack){.flat64 = flat64, .lin32 = !emu_long_mode(s)};
    if (flat64) {
        st->mask = ~0ull;
    } else {
        st->base = ss->base;
        st->limit = ss->limit;
        st->attr = ss->attr;
        st->mask = (ss->attr & EMU_SEG_DB) ? 0xffffffffull : 0xffff;
    }
    st->sp = sp & st->mask;
}

static bool stack_in_limit(const struct emu_stack *st, uint64_t off, unsigned size)
{
    uint64_t last = off + size - 1;

    if ((st->attr & (EMU_SEG_S | EMU_DESC_CODE | EMU_DESC_DC)) == (EMU_SEG_S | EMU_DESC_DC))
        return off > st->limit && last <= st->mask; /* expand-down: valid above the limit */
    return last <= st->limit;
}

static int stack_addr(const struct emu_stack *st, uint64_t off, unsigned size, uint64_t *lin,
                      struct emu_fault *f)
{
    if (st->flat64) {
        if (!emu_canonical(off) || !emu_canonical(off + size - 1))
            return emu_fault_raise(f, EMU_EXC_SS, st->ss_error);
        *lin = off;
        return 0;
    }
    if (!stack_in_limit(st, off, size))
        return emu_fault_raise(f, EMU_EXC_SS, st->ss_error);
    *lin = st->base + off;
    if (st->lin32)
        *lin = (uint32_t)*lin;
    return 0;
}

int emu_stack_push(struct emu_stack *st, const struct emu_sys_mem *mem, uint64_t v, unsigned size,
                   struct emu_fault *f)
{
    uint64_t nsp = (st->sp - size) & st->mask, lin;
    uint8_t buf[8];

    if (stack_addr(st, nsp, size, &lin, f))
        return EMU_FAULT;
    put_le(buf, v, size);
    if (!mem->write(mem->opaque, lin, size, st->access, buf, f))
        return EMU_FAULT;
    st->sp = nsp;
    return 0;
}

int emu_stack_pop(struct emu_stack *st, const struct emu_sys_mem *mem, uint64_t *v, unsigned size,
                  struct emu_fault *f)
{
    uint64_t lin;
    uint8_t buf[8];

    if (stack_addr(st, st->sp, size, &lin, f))
        return EMU_FAULT;
    if (!mem->read(mem->opaque, lin, size, st->access, buf, f))
        return EMU_FAULT;
    *v = get_le(buf, size);
    st->sp = (st->sp + size) & st->mask;
    return 0;
}

void emu_stack_commit(struct emu_state *s, const struct emu_stack *st)
{
    if (st->mask == 0xffff)
        s->regs[EMU_RSP] = (s->regs[EMU_RSP] & ~0xffffull) | st->sp;
    else
        s->regs[EMU_RSP] = st->sp;
}
