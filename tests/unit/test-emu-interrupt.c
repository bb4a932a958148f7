/* Unit tests of emu event delivery, IRET and the fast system call instructions, with byte-exact stack frames.
 */
#include <string.h>

#include <glib.h>

#include "emu/interrupt.h"
#include "emu/syscall.h"
#include "emu_test_mem.h"

struct env {
    struct tmem t;
    struct emu_sys_mem mem;
    struct emu_state s;
    struct emu_fault last;
};

static void env_start(struct env *e)
{
    memset(e, 0, sizeof(*e));
    tmem_init(&e->t, &e->mem);
    env_gdt(&e->t);
}

static void env_end(struct env *e)
{
    tmem_free(&e->t);
}

static void gate32(struct env *e, unsigned vec, uint16_t sel, uint32_t off, unsigned type, unsigned dpl)
{
    put64(&e->t, IDT_BASE + vec * 8, gate(sel, off, type, dpl, 0));
}

static void gate64(struct env *e, unsigned vec, uint64_t off, unsigned type, unsigned dpl, unsigned ist)
{
    put64(&e->t, IDT_BASE + vec * 16, gate(K_CS64, off, type, dpl, ist));
    put64(&e->t, IDT_BASE + vec * 16 + 8, off >> 32);
}

static int deliver(struct env *e, unsigned vec, enum emu_event_kind kind, uint32_t err, unsigned len)
{
    return emu_deliver_event(&e->s, &e->mem, vec, kind, err, len, &e->last);
}

#define K64(x) (0xffffffff81000000ull + (x))

/* ---- real mode ---- */

static void real_state(struct env *e)
{
    memset(&e->s, 0, sizeof(e->s));
    e->s.seg[EMU_CS] = seg_cache(0x0f00, 0xf000, 0xffff, 0x9b);
    e->s.seg[EMU_SS] = seg_cache(0x1000, 0x10000, 0xffff, 0x93);
    e->s.regs[EMU_RSP] = 0x100;
    e->s.rip = 0x102;
    e->s.rflags = EMU_FLAG_FIXED1 | EMU_FLAG_IF | EMU_FLAG_TF | EMU_FLAG_AC | EMU_FLAG_CF;
    e->s.idtr = (struct emu_dtable){0, 0x3ff};
    put16(&e->t, 0x21 * 4, 0x5678);
    put16(&e->t, 0x21 * 4 + 2, 0x1234);
}

static void test_real_int_via_ivt(void)
{
    struct env e;
    env_start(&e);
    real_state(&e);
    g_assert_cmpint(deliver(&e, 0x21, EMU_EVENT_SOFT_INT, 0, 2), ==, EMU_EVENT_DELIVERED);
    assert_seg(&e.s.seg[EMU_CS], 0x1234, 0x12340, 0xffff, 0x9b);
    g_assert_cmphex(e.s.rip, ==, 0x5678);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0xfa);
    g_assert_cmphex(e.s.rflags, ==, EMU_FLAG_FIXED1 | EMU_FLAG_CF);
    g_assert_cmphex(get16(&e.t, 0x100fa), ==, 0x0102);
    g_assert_cmphex(get16(&e.t, 0x100fc), ==, 0x0f00);
    g_assert_cmphex(get16(&e.t, 0x100fe), ==, 0x0303);
    g_assert_cmphex(get16(&e.t, 0x100f8), ==, 0);
    g_assert_cmpuint(e.t.writes, ==, 3);

    /* IRET restores IP, CS and FLAGS; the 16-bit image does not hold AC, which stays clear. */
    g_assert_cmpint(emu_iret(&e.s, &e.mem, 2, &e.last), ==, 0);
    assert_seg(&e.s.seg[EMU_CS], 0x0f00, 0xf000, 0xffff, 0x9b);
    g_assert_cmphex(e.s.rip, ==, 0x102);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x100);
    g_assert_cmphex(e.s.rflags, ==, 0x303);
    env_end(&e);
}

/* ---- 32-bit protected mode ---- */

static void test_prot32_interrupt_gate_clears_if(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 0);
    e.s.rflags = EMU_FLAG_FIXED1 | EMU_FLAG_IF | EMU_FLAG_TF | EMU_FLAG_NT | EMU_FLAG_CF;
    gate32(&e, 0x20, K_CS32, 0x102030, EMU_DESC_INT_GATE, 0);
    g_assert_cmpint(deliver(&e, 0x20, EMU_EVENT_EXTINT, 0, 0), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x7ff4);
    g_assert_cmphex(get32(&e.t, 0x7ff4), ==, 0x401000);
    g_assert_cmphex(get32(&e.t, 0x7ff8), ==, K_CS32);
    g_assert_cmphex(get32(&e.t, 0x7ffc), ==, 0x4303);
    g_assert_cmphex(get32(&e.t, 0x7ff0), ==, 0);
    assert_seg(&e.s.seg[EMU_CS], K_CS32, 0, 0xffffffff, ATTR_K_CS32);
    assert_seg(&e.s.seg[EMU_SS], K_DS, 0, 0xffffffff, ATTR_K_DS);
    g_assert_cmphex(e.s.rip, ==, 0x102030);
    g_assert_cmphex(e.s.rflags, ==, EMU_FLAG_FIXED1 | EMU_FLAG_CF);
    env_end(&e);
}

static void test_prot32_trap_gate_keeps_if(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 0);
    e.s.rflags |= EMU_FLAG_TF;
    gate32(&e, 0x80, K_CS32, 0x108000, EMU_DESC_TRAP_GATE, 3);
    g_assert_cmpint(deliver(&e, 0x80, EMU_EVENT_SOFT_INT, 0, 2), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.rflags, ==, EMU_FLAG_FIXED1 | EMU_FLAG_IF);
    g_assert_cmphex(get32(&e.t, 0x7ffc), ==, 0x302); /* no RF for INT n */
    g_assert_cmphex(e.s.rip, ==, 0x108000);
    env_end(&e);
}

static void test_prot32_gp_pushes_error_and_rf(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 0);
    gate32(&e, EMU_EXC_GP, K_CS32, 0x130000, EMU_DESC_INT_GATE, 0);
    g_assert_cmpint(deliver(&e, EMU_EXC_GP, EMU_EVENT_EXCEPTION, 0x1234, 0), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x7ff0);
    g_assert_cmphex(get32(&e.t, 0x7ff0), ==, 0x1234);
    g_assert_cmphex(get32(&e.t, 0x7ff4), ==, 0x401000);
    g_assert_cmphex(get32(&e.t, 0x7ff8), ==, K_CS32);
    g_assert_cmphex(get32(&e.t, 0x7ffc), ==, 0x10202);
    g_assert_cmphex(e.s.rflags, ==, EMU_FLAG_FIXED1);
    env_end(&e);
}

static void test_prot32_pf_writes_cr2_and_error(void)
{
    struct env e;
    struct emu_fault pf = {.vector = EMU_EXC_PF, .error_code = EMU_PF_W | EMU_PF_U, .cr2 = 0xdeadb000};
    env_start(&e);
    env_prot32(&e.s, 0);
    gate32(&e, EMU_EXC_PF, K_CS32, 0x140000, EMU_DESC_INT_GATE, 0);
    g_assert_cmpint(emu_deliver_fault(&e.s, &e.mem, &pf, &e.last), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.cr2, ==, 0xdeadb000);
    g_assert_cmphex(get32(&e.t, 0x7ff0), ==, 6);
    g_assert_cmphex(e.s.rip, ==, 0x140000);
    env_end(&e);
}

static void test_prot32_ring3_to_ring0_and_iret(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 3);
    e.s.rflags = 0x202 | EMU_FLAG_CF;
    put32(&e.t, TSS_BASE + 4, 0x9000);
    put16(&e.t, TSS_BASE + 8, K_DS);
    gate32(&e, 0x30, K_CS32, 0x300000, EMU_DESC_INT_GATE, 0);
    g_assert_cmpint(deliver(&e, 0x30, EMU_EVENT_EXTINT, 0, 0), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8fec);
    g_assert_cmphex(get32(&e.t, 0x8fec), ==, 0x401000);
    g_assert_cmphex(get32(&e.t, 0x8ff0), ==, U_CS32 | 3);
    g_assert_cmphex(get32(&e.t, 0x8ff4), ==, 0x203);
    g_assert_cmphex(get32(&e.t, 0x8ff8), ==, 0x7000);
    g_assert_cmphex(get32(&e.t, 0x8ffc), ==, U_DS | 3);
    g_assert_cmphex(e.t.last_write_access, ==, EMU_ACCESS_IMPLICIT);
    assert_seg(&e.s.seg[EMU_SS], K_DS, 0, 0xffffffff, ATTR_K_DS);
    assert_seg(&e.s.seg[EMU_CS], K_CS32, 0, 0xffffffff, ATTR_K_CS32);
    assert_seg(&e.s.seg[EMU_DS], U_DS | 3, 0, 0xffffffff, ATTR_U_DS);
    g_assert_cmphex(e.s.rip, ==, 0x300000);
    g_assert_cmphex(e.s.rflags, ==, 0x3);

    /* The handler leaves a ring-0 segment in DS: IRET to ring 3 nulls it, keeps ES. */
    e.s.seg[EMU_DS] = seg_cache(K_DS, 0, 0xffffffff, ATTR_K_DS);
    g_assert_cmpint(emu_iret(&e.s, &e.mem, 4, &e.last), ==, 0);
    assert_seg(&e.s.seg[EMU_CS], U_CS32 | 3, 0, 0xffffffff, ATTR_U_CS32);
    assert_seg(&e.s.seg[EMU_SS], U_DS | 3, 0, 0xffffffff, ATTR_U_DS);
    assert_seg(&e.s.seg[EMU_ES], U_DS | 3, 0, 0xffffffff, ATTR_U_DS);
    g_assert_cmphex(e.s.seg[EMU_DS].selector, ==, 0);
    g_assert_cmphex(e.s.seg[EMU_DS].attr, ==, EMU_SEG_UNUSABLE);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x7000);
    g_assert_cmphex(e.s.rip, ==, 0x401000);
    g_assert_cmphex(e.s.rflags, ==, 0x203);
    env_end(&e);
}

static void test_prot32_int_n_dpl_violation(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 3);
    e.s.rip = 0x401002; /* after CD 40 */
    put32(&e.t, TSS_BASE + 4, 0x9000);
    put16(&e.t, TSS_BASE + 8, K_DS);
    gate32(&e, 0x40, K_CS32, 0x400000, EMU_DESC_INT_GATE, 0);
    gate32(&e, EMU_EXC_GP, K_CS32, 0x130000, EMU_DESC_INT_GATE, 0);
    g_assert_cmpint(deliver(&e, 0x40, EMU_EVENT_SOFT_INT, 0, 2), ==, EMU_EVENT_DELIVERED);
    g_assert_cmpuint(e.last.vector, ==, EMU_EXC_GP);
    g_assert_cmphex(e.last.error_code, ==, 0x40 * 8 + 2);
    g_assert_cmphex(e.s.rip, ==, 0x130000);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8fe8);
    g_assert_cmphex(get32(&e.t, 0x8fe8), ==, 0x202);
    g_assert_cmphex(get32(&e.t, 0x8fec), ==, 0x401000); /* the INT instruction */
    g_assert_cmphex(get32(&e.t, 0x8ff0), ==, U_CS32 | 3);
    g_assert_cmphex(get32(&e.t, 0x8ff4), ==, 0x10202);
    env_end(&e);
}

static void test_prot32_int3_allowed_by_dpl3_gate(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 3);
    put32(&e.t, TSS_BASE + 4, 0x9000);
    put16(&e.t, TSS_BASE + 8, K_DS);
    gate32(&e, EMU_EXC_BP, K_CS32, 0x30000, EMU_DESC_TRAP_GATE, 3);
    g_assert_cmpint(deliver(&e, EMU_EXC_BP, EMU_EVENT_INT3, 0, 1), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.rip, ==, 0x30000);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8fec);
    g_assert_cmphex(get32(&e.t, 0x8fec), ==, 0x401000);
    g_assert_cmphex(e.s.rflags, ==, 0x202);
    env_end(&e);
}

static void test_prot32_extint_not_present_np_serial(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 0);
    put64(&e.t, IDT_BASE + 0x21 * 8, gate(K_CS32, 0x210000, EMU_DESC_INT_GATE, 0, 0) & ~(1ull << 47));
    gate32(&e, EMU_EXC_NP, K_CS32, 0x110000, EMU_DESC_INT_GATE, 0);
    gate32(&e, EMU_EXC_DF, K_CS32, 0x80000, EMU_DESC_INT_GATE, 0);
    g_assert_cmpint(deliver(&e, 0x21, EMU_EVENT_EXTINT, 0, 0), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.rip, ==, 0x110000); /* benign first event: #NP delivered, no #DF */
    g_assert_cmphex(get32(&e.t, 0x7ff0), ==, 0x21 * 8 + 2 + 1);
    g_assert_cmphex(get32(&e.t, 0x7ffc), ==, 0x10202);
    env_end(&e);
}

static void test_prot32_contributory_twice_double_fault(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 0);
    put64(&e.t, IDT_BASE + EMU_EXC_GP * 8, gate(K_CS32, 0x130000, EMU_DESC_INT_GATE, 0, 0) & ~(1ull << 47));
    gate32(&e, EMU_EXC_NP, K_CS32, 0x110000, EMU_DESC_INT_GATE, 0);
    gate32(&e, EMU_EXC_DF, K_CS32, 0x80000, EMU_DESC_INT_GATE, 0);
    g_assert_cmpint(deliver(&e, EMU_EXC_GP, EMU_EVENT_EXCEPTION, 0, 0), ==, EMU_EVENT_DELIVERED);
    g_assert_cmpuint(e.last.vector, ==, EMU_EXC_NP);
    g_assert_cmphex(e.last.error_code, ==, EMU_EXC_GP * 8 + 2 + 1);
    g_assert_cmphex(e.s.rip, ==, 0x80000);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x7ff0);
    g_assert_cmphex(get32(&e.t, 0x7ff0), ==, 0);
    g_assert_cmphex(get32(&e.t, 0x7ff4), ==, 0x401000);
    g_assert_cmphex(get32(&e.t, 0x7ffc), ==, 0x202); /* #DF is an abort: no RF */
    env_end(&e);
}

static void test_prot32_triple_fault(void)
{
    struct env e;
    struct emu_fault pf = {.vector = EMU_EXC_PF, .error_code = 0, .cr2 = 0x1000};
    env_start(&e);
    env_prot32(&e.s, 0);
    gate32(&e, EMU_EXC_PF, K_CS32, 0x140000, EMU_DESC_INT_GATE, 0);
    gate32(&e, EMU_EXC_DF, K_CS32, 0x80000, EMU_DESC_INT_GATE, 0);
    e.t.fault_lo = 0x7000;
    e.t.fault_hi = 0x8000;
    g_assert_cmpint(emu_deliver_fault(&e.s, &e.mem, &pf, &e.last), ==, EMU_EVENT_TRIPLE_FAULT);
    g_assert_cmpuint(e.last.vector, ==, EMU_EXC_PF);
    g_assert_cmphex(e.s.cr2, ==, 0x7ffc);
    g_assert_cmphex(e.s.rip, ==, 0x401000);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8000);
    assert_seg(&e.s.seg[EMU_CS], K_CS32, 0, 0xffffffff, ATTR_K_CS32);
    g_assert_cmpuint(e.t.writes, ==, 0);
    env_end(&e);
}

static void test_prot32_task_gate_unsupported(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 0);
    gate32(&e, 0x22, TSS32_SEL, 0, EMU_DESC_TASK_GATE, 0);
    gate32(&e, EMU_EXC_GP, K_CS32, 0x130000, EMU_DESC_INT_GATE, 0);
    g_assert_cmpint(deliver(&e, 0x22, EMU_EVENT_EXTINT, 0, 0), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.rip, ==, 0x130000);
    g_assert_cmphex(get32(&e.t, 0x7ff0), ==, 0x22 * 8 + 3);
    env_end(&e);
}

static void test_prot32_iret_if_needs_cpl_le_iopl(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 3);
    put32(&e.t, 0x7000, 0x401234);
    put32(&e.t, 0x7004, U_CS32 | 3);
    put32(&e.t, 0x7008, EMU_FLAG_IOPL | EMU_FLAG_FIXED1 | EMU_FLAG_CF); /* IF=0, IOPL=3 */
    g_assert_cmpint(emu_iret(&e.s, &e.mem, 4, &e.last), ==, 0);
    g_assert_cmphex(e.s.rflags, ==, 0x203);
    g_assert_cmphex(e.s.rip, ==, 0x401234);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x700c);
    env_end(&e);
}

static void test_prot32_iret_to_inner_level_gp(void)
{
    struct env e;
    env_start(&e);
    env_prot32(&e.s, 3);
    put32(&e.t, 0x7000, 0x401234);
    put32(&e.t, 0x7004, K_CS32);
    put32(&e.t, 0x7008, 0x202);
    g_assert_cmpint(emu_iret(&e.s, &e.mem, 4, &e.last), ==, EMU_FAULT);
    g_assert_cmpuint(e.last.vector, ==, EMU_EXC_GP);
    g_assert_cmphex(e.last.error_code, ==, K_CS32);
    g_assert_cmphex(e.s.rip, ==, 0x401000);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x7000);
    env_end(&e);
}

/* ---- long mode ---- */

static void test_long_ring3_to_ring0_and_iretq(void)
{
    struct env e;
    env_start(&e);
    env_long64(&e.s, 3);
    e.s.rflags = 0x202 | EMU_FLAG_ZF;
    put64(&e.t, TSS_BASE + 4, 0x9008);
    gate64(&e, 0x30, K64(0x234567), EMU_DESC_INT_GATE, 0, 0);
    g_assert_cmpint(deliver(&e, 0x30, EMU_EVENT_EXTINT, 0, 0), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8fd8);
    g_assert_cmphex(get64(&e.t, 0x8fd8), ==, 0x401000);
    g_assert_cmphex(get64(&e.t, 0x8fe0), ==, U_CS64 | 3);
    g_assert_cmphex(get64(&e.t, 0x8fe8), ==, 0x242);
    g_assert_cmphex(get64(&e.t, 0x8ff0), ==, 0x7008);
    g_assert_cmphex(get64(&e.t, 0x8ff8), ==, 0x48 | 3);
    g_assert_cmphex(get64(&e.t, 0x8fd0), ==, 0);
    assert_seg(&e.s.seg[EMU_CS], K_CS64, 0, 0xffffffff, ATTR_K_CS64);
    assert_seg(&e.s.seg[EMU_SS], 0, 0, 0, EMU_SEG_UNUSABLE);
    g_assert_cmphex(e.s.rip, ==, K64(0x234567));
    g_assert_cmphex(e.s.rflags, ==, 0x42);

    g_assert_cmpint(emu_iret(&e.s, &e.mem, 8, &e.last), ==, 0);
    assert_seg(&e.s.seg[EMU_CS], U_CS64 | 3, 0, 0xffffffff, ATTR_U_CS64);
    assert_seg(&e.s.seg[EMU_SS], 0x48 | 3, 0, 0xffffffff, ATTR_U_DS);
    assert_seg(&e.s.seg[EMU_DS], 0x48 | 3, 0, 0xffffffff, ATTR_U_DS);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x7008);
    g_assert_cmphex(e.s.rip, ==, 0x401000);
    g_assert_cmphex(e.s.rflags, ==, 0x242);
    env_end(&e);
}

static void test_long_ring0_aligns_and_pushes_ss(void)
{
    struct env e;
    env_start(&e);
    env_long64(&e.s, 0);
    gate64(&e, EMU_EXC_PF, K64(0x1400), EMU_DESC_INT_GATE, 0, 0);
    e.s.cr2 = 0x5000;
    g_assert_cmpint(deliver(&e, EMU_EXC_PF, EMU_EVENT_EXCEPTION, EMU_PF_W, 0), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8ee0);
    g_assert_cmphex(get64(&e.t, 0x8ee0), ==, EMU_PF_W);
    g_assert_cmphex(get64(&e.t, 0x8ee8), ==, 0x401000);
    g_assert_cmphex(get64(&e.t, 0x8ef0), ==, K_CS64);
    g_assert_cmphex(get64(&e.t, 0x8ef8), ==, 0x10202);
    g_assert_cmphex(get64(&e.t, 0x8f00), ==, 0x8f18);
    g_assert_cmphex(get64(&e.t, 0x8f08), ==, K_DS64);
    assert_seg(&e.s.seg[EMU_SS], K_DS64, 0, 0xffffffff, ATTR_K_DS);
    g_assert_cmphex(e.s.rip, ==, K64(0x1400));
    g_assert_cmphex(e.s.cr2, ==, 0x5000);
    env_end(&e);
}

static void test_long_ist_switch_and_nmi_blocking(void)
{
    struct env e;
    env_start(&e);
    env_long64(&e.s, 0);
    put64(&e.t, TSS_BASE + 0x2c, 0xb008); /* IST2 */
    gate64(&e, EMU_EXC_NMI, K64(0x200), EMU_DESC_INT_GATE, 0, 2);
    g_assert_cmpint(deliver(&e, EMU_EXC_NMI, EMU_EVENT_NMI, 0, 0), ==, EMU_EVENT_DELIVERED);
    g_assert_true(e.s.nmi_blocked);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0xafd8);
    g_assert_cmphex(get64(&e.t, 0xafd8), ==, 0x401000);
    g_assert_cmphex(get64(&e.t, 0xaff0), ==, 0x8f18);
    g_assert_cmphex(get64(&e.t, 0xaff8), ==, K_DS64);
    assert_seg(&e.s.seg[EMU_SS], K_DS64, 0, 0xffffffff, ATTR_K_DS);

    g_assert_cmpint(emu_iret(&e.s, &e.mem, 8, &e.last), ==, 0);
    g_assert_false(e.s.nmi_blocked);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8f18);
    g_assert_cmphex(e.s.rip, ==, 0x401000);
    g_assert_cmphex(e.s.rflags, ==, 0x202);
    env_end(&e);
}

static void test_long_noncanonical_handler_gp(void)
{
    struct env e;
    env_start(&e);
    env_long64(&e.s, 0);
    gate64(&e, 0x33, 0x0000800000000000ull, EMU_DESC_INT_GATE, 0, 0);
    gate64(&e, EMU_EXC_GP, K64(0x1300), EMU_DESC_INT_GATE, 0, 0);
    g_assert_cmpint(deliver(&e, 0x33, EMU_EVENT_EXTINT, 0, 0), ==, EMU_EVENT_DELIVERED);
    g_assert_cmpuint(e.last.vector, ==, EMU_EXC_GP);
    g_assert_cmphex(e.last.error_code, ==, 1);
    g_assert_cmphex(e.s.rip, ==, K64(0x1300));
    g_assert_cmphex(get64(&e.t, 0x8ee0), ==, 1);
    env_end(&e);
}

static void test_long_pf_during_pf_double_fault_on_ist(void)
{
    struct env e;
    struct emu_fault pf = {.vector = EMU_EXC_PF, .error_code = EMU_PF_W, .cr2 = 0x1234};
    env_start(&e);
    env_long64(&e.s, 0);
    put64(&e.t, TSS_BASE + 0x24, 0xc000); /* IST1 */
    gate64(&e, EMU_EXC_PF, K64(0x1400), EMU_DESC_INT_GATE, 0, 0);
    gate64(&e, EMU_EXC_DF, K64(0x800), EMU_DESC_INT_GATE, 0, 1);
    e.t.fault_lo = 0x8000;
    e.t.fault_hi = 0x9000;
    g_assert_cmpint(emu_deliver_fault(&e.s, &e.mem, &pf, &e.last), ==, EMU_EVENT_DELIVERED);
    g_assert_cmpuint(e.last.vector, ==, EMU_EXC_PF);
    g_assert_cmphex(e.s.cr2, ==, 0x8f08);
    g_assert_cmphex(e.s.rip, ==, K64(0x800));
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0xbfd0);
    g_assert_cmphex(get64(&e.t, 0xbfd0), ==, 0);
    g_assert_cmphex(get64(&e.t, 0xbfd8), ==, 0x401000);
    g_assert_cmphex(get64(&e.t, 0xbfe8), ==, 0x202);
    g_assert_cmphex(get64(&e.t, 0xbff0), ==, 0x8f18);
    env_end(&e);
}

static void test_long_gate_type_checked(void)
{
    struct env e;
    env_start(&e);
    env_long64(&e.s, 0);
    gate64(&e, 0x34, K64(0x340), EMU_DESC_INT_GATE16, 0, 0); /* no 16-bit gates in long mode */
    gate64(&e, EMU_EXC_GP, K64(0x1300), EMU_DESC_INT_GATE, 0, 0);
    g_assert_cmpint(deliver(&e, 0x34, EMU_EVENT_SOFT_INT, 0, 2), ==, EMU_EVENT_DELIVERED);
    g_assert_cmphex(e.s.rip, ==, K64(0x1300));
    g_assert_cmphex(get64(&e.t, 0x8ee0), ==, 0x34 * 8 + 2);
    g_assert_cmphex(get64(&e.t, 0x8ee8), ==, 0x401000 - 2);
    env_end(&e);
}

static void test_long_iretq_nt_gp(void)
{
    struct env e;
    env_start(&e);
    env_long64(&e.s, 0);
    e.s.rflags |= EMU_FLAG_NT;
    g_assert_cmpint(emu_iret(&e.s, &e.mem, 8, &e.last), ==, EMU_FAULT);
    g_assert_cmpuint(e.last.vector, ==, EMU_EXC_GP);
    g_assert_cmphex(e.last.error_code, ==, 0);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8f18);
    env_end(&e);
}

/* ---- SYSCALL / SYSRET / SYSENTER / SYSEXIT / SWAPGS ---- */

static void syscall_msrs(struct emu_state *s)
{
    s->msr.star = (uint64_t)STAR_USER << 48 | (uint64_t)K_CS64 << 32;
    s->msr.lstar = K64(0x800000);
    s->msr.sfmask = EMU_FLAG_IF | EMU_FLAG_TF | EMU_FLAG_DF | EMU_FLAG_AC | EMU_FLAG_NT;
}

static void test_syscall_sysret_round_trip(void)
{
    struct emu_state s, before;
    struct emu_fault f;

    env_long64(&s, 3);
    syscall_msrs(&s);
    s.rflags = 0x202 | EMU_FLAG_RF | EMU_FLAG_CF | EMU_FLAG_AC;
    s.regs[EMU_RCX] = 0x1111;
    before = s;
    g_assert_cmpint(emu_syscall(&s, 0x401002, &f), ==, 0);
    g_assert_cmphex(s.regs[EMU_RCX], ==, 0x401002);
    g_assert_cmphex(s.regs[EMU_R11], ==, 0x40203);
    g_assert_cmphex(s.rflags, ==, 0x3);
    g_assert_cmphex(s.rip, ==, K64(0x800000));
    assert_seg(&s.seg[EMU_CS], K_CS64, 0, 0xffffffff, ATTR_K_CS64);
    assert_seg(&s.seg[EMU_SS], K_DS64, 0, 0xffffffff, ATTR_K_DS);
    g_assert_cmpuint(emu_cpl(&s), ==, 0);

    g_assert_cmpint(emu_sysret(&s, 8, &f), ==, 0);
    g_assert_cmphex(s.rip, ==, 0x401002);
    g_assert_cmphex(s.rflags, ==, 0x40203);
    before.rip = 0x401002;
    before.rflags = 0x40203;
    before.regs[EMU_RCX] = 0x401002;
    before.regs[EMU_R11] = 0x40203;
    g_assert_true(memcmp(&s, &before, sizeof(s)) == 0); /* back exactly, same caches as env_long64(3) */

    /* SYSRET without REX.W goes to compatibility mode. */
    s.seg[EMU_CS] = seg_cache(K_CS64, 0, 0xffffffff, ATTR_K_CS64);
    s.regs[EMU_RCX] = 0xffffffff00402000ull;
    g_assert_cmpint(emu_sysret(&s, 4, &f), ==, 0);
    assert_seg(&s.seg[EMU_CS], STAR_USER | 3, 0, 0xffffffff, ATTR_U_CS32);
    g_assert_cmphex(s.rip, ==, 0x402000);
}

static void test_syscall_ud_without_sce(void)
{
    struct emu_state s, before;
    struct emu_fault f;

    env_long64(&s, 3);
    syscall_msrs(&s);
    s.efer &= ~EMU_EFER_SCE;
    before = s;
    g_assert_cmpint(emu_syscall(&s, 0x401002, &f), ==, EMU_FAULT);
    g_assert_cmpuint(f.vector, ==, EMU_EXC_UD);
    g_assert_true(memcmp(&s, &before, sizeof(s)) == 0);
    s.seg[EMU_CS] = seg_cache(K_CS64, 0, 0xffffffff, ATTR_K_CS64);
    g_assert_cmpint(emu_sysret(&s, 8, &f), ==, EMU_FAULT);
    g_assert_cmpuint(f.vector, ==, EMU_EXC_UD);
}

static void test_sysret_checks(void)
{
    struct emu_state s;
    struct emu_fault f;

    env_long64(&s, 0);
    syscall_msrs(&s);
    s.regs[EMU_RCX] = 0x0000800000000000ull;
    g_assert_cmpint(emu_sysret(&s, 8, &f), ==, EMU_FAULT);
    g_assert_cmpuint(f.vector, ==, EMU_EXC_GP);
    g_assert_cmphex(f.error_code, ==, 0);
    assert_seg(&s.seg[EMU_CS], K_CS64, 0, 0xffffffff, ATTR_K_CS64);

    env_long64(&s, 3);
    syscall_msrs(&s);
    s.regs[EMU_RCX] = 0x401000;
    g_assert_cmpint(emu_sysret(&s, 8, &f), ==, EMU_FAULT);
    g_assert_cmpuint(f.vector, ==, EMU_EXC_GP);
}

static void test_sysenter_sysexit_round_trip(void)
{
    struct emu_state s;
    struct emu_fault f;

    env_prot32(&s, 3);
    s.msr.sysenter_cs = K_CS32;
    s.msr.sysenter_esp = 0x9000;
    s.msr.sysenter_eip = 0x1000000;
    g_assert_cmpint(emu_sysenter(&s, &f), ==, 0);
    assert_seg(&s.seg[EMU_CS], K_CS32, 0, 0xffffffff, ATTR_K_CS32);
    assert_seg(&s.seg[EMU_SS], K_DS, 0, 0xffffffff, ATTR_K_DS);
    g_assert_cmphex(s.rip, ==, 0x1000000);
    g_assert_cmphex(s.regs[EMU_RSP], ==, 0x9000);
    g_assert_cmphex(s.rflags, ==, 0x2);

    s.regs[EMU_RCX] = 0x7000;
    s.regs[EMU_RDX] = 0x401000;
    g_assert_cmpint(emu_sysexit(&s, 4, &f), ==, 0);
    assert_seg(&s.seg[EMU_CS], U_CS32 | 3, 0, 0xffffffff, ATTR_U_CS32);
    assert_seg(&s.seg[EMU_SS], U_DS | 3, 0, 0xffffffff, ATTR_U_DS);
    g_assert_cmphex(s.rip, ==, 0x401000);
    g_assert_cmphex(s.regs[EMU_RSP], ==, 0x7000);

    g_assert_cmpint(emu_sysexit(&s, 4, &f), ==, EMU_FAULT); /* now at CPL 3 */
    g_assert_cmpuint(f.vector, ==, EMU_EXC_GP);
    s.msr.sysenter_cs = 0;
    g_assert_cmpint(emu_sysenter(&s, &f), ==, EMU_FAULT);
    g_assert_cmpuint(f.vector, ==, EMU_EXC_GP);
}

static void test_swapgs(void)
{
    struct emu_state s;
    struct emu_fault f;

    env_long64(&s, 0);
    s.seg[EMU_GS].base = 0x1111;
    s.msr.kernel_gs_base = K64(0x2222);
    g_assert_cmpint(emu_swapgs(&s, &f), ==, 0);
    g_assert_cmphex(s.seg[EMU_GS].base, ==, K64(0x2222));
    g_assert_cmphex(s.msr.kernel_gs_base, ==, 0x1111);

    env_long64(&s, 3);
    s.seg[EMU_GS].base = 0x1111;
    s.msr.kernel_gs_base = 0x2222;
    g_assert_cmpint(emu_swapgs(&s, &f), ==, EMU_FAULT);
    g_assert_cmpuint(f.vector, ==, EMU_EXC_GP);
    g_assert_cmphex(f.error_code, ==, 0);
    g_assert_cmphex(s.seg[EMU_GS].base, ==, 0x1111);
    g_assert_cmphex(s.msr.kernel_gs_base, ==, 0x2222);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/emu/interrupt/real/int-via-ivt-and-iret", test_real_int_via_ivt);
    g_test_add_func("/emu/interrupt/prot32/interrupt-gate-clears-if-tf-nt",
                    test_prot32_interrupt_gate_clears_if);
    g_test_add_func("/emu/interrupt/prot32/trap-gate-keeps-if", test_prot32_trap_gate_keeps_if);
    g_test_add_func("/emu/interrupt/prot32/gp-pushes-error-code-and-rf", test_prot32_gp_pushes_error_and_rf);
    g_test_add_func("/emu/interrupt/prot32/pf-writes-cr2-pushes-error", test_prot32_pf_writes_cr2_and_error);
    g_test_add_func("/emu/interrupt/prot32/ring3-to-ring0-tss-stack-and-iret",
                    test_prot32_ring3_to_ring0_and_iret);
    g_test_add_func("/emu/interrupt/prot32/int-n-dpl-violation-gp", test_prot32_int_n_dpl_violation);
    g_test_add_func("/emu/interrupt/prot32/int3-through-dpl3-gate", test_prot32_int3_allowed_by_dpl3_gate);
    g_test_add_func("/emu/interrupt/prot32/extint-gate-not-present-np-serial",
                    test_prot32_extint_not_present_np_serial);
    g_test_add_func("/emu/interrupt/prot32/contributory-twice-double-fault",
                    test_prot32_contributory_twice_double_fault);
    g_test_add_func("/emu/interrupt/prot32/fault-delivering-df-triple-fault", test_prot32_triple_fault);
    g_test_add_func("/emu/interrupt/prot32/task-gate-unsupported-gp", test_prot32_task_gate_unsupported);
    g_test_add_func("/emu/interrupt/prot32/iret-if-only-if-cpl-le-iopl",
                    test_prot32_iret_if_needs_cpl_le_iopl);
    g_test_add_func("/emu/interrupt/prot32/iret-to-inner-level-gp", test_prot32_iret_to_inner_level_gp);
    g_test_add_func("/emu/interrupt/long/ring3-to-ring0-and-iretq", test_long_ring3_to_ring0_and_iretq);
    g_test_add_func("/emu/interrupt/long/ring0-aligns-and-pushes-ss", test_long_ring0_aligns_and_pushes_ss);
    g_test_add_func("/emu/interrupt/long/ist-switch-and-nmi-blocking", test_long_ist_switch_and_nmi_blocking);
    g_test_add_func("/emu/interrupt/long/noncanonical-handler-gp-ext", test_long_noncanonical_handler_gp);
    g_test_add_func("/emu/interrupt/long/pf-during-pf-double-fault-on-ist",
                    test_long_pf_during_pf_double_fault_on_ist);
    g_test_add_func("/emu/interrupt/long/16-bit-gate-type-gp", test_long_gate_type_checked);
    g_test_add_func("/emu/interrupt/long/iretq-nt-gp", test_long_iretq_nt_gp);
    g_test_add_func("/emu/syscall/syscall-sysret-round-trip", test_syscall_sysret_round_trip);
    g_test_add_func("/emu/syscall/ud-without-sce", test_syscall_ud_without_sce);
    g_test_add_func("/emu/syscall/sysret-noncanonical-and-cpl3-gp", test_sysret_checks);
    g_test_add_func("/emu/syscall/sysenter-sysexit-round-trip", test_sysenter_sysexit_round_trip);
    g_test_add_func("/emu/syscall/swapgs-swaps-and-gp-at-cpl3", test_swapgs);
    return g_test_run();
}
