/* Unit tests of emu segmentation: segment register, LDTR and TR loads and far JMP/CALL/RET, with descriptor
 * tables in a byte-array memory. */
#include <string.h>

#include <glib.h>

#include "emu/segment.h"
#include "emu_test_mem.h"

#define K64ADDR 0xffffffff81000000ull

struct env {
    struct tmem t;
    struct emu_sys_mem mem;
    struct emu_state s;
    struct emu_fault f;
};

static void env_start(struct env *e, bool long_mode, unsigned cpl)
{
    memset(e, 0, sizeof(*e));
    tmem_init(&e->t, &e->mem);
    env_gdt(&e->t);
    if (long_mode)
        env_long64(&e->s, cpl);
    else
        env_prot32(&e->s, cpl);
}

static void env_end(struct env *e)
{
    tmem_free(&e->t);
}

static int load(struct env *e, enum emu_seg seg, uint16_t sel)
{
    return emu_load_segment(&e->s, &e->mem, seg, sel, &e->f);
}

static void expect_fault(struct env *e, int r, unsigned vector, uint32_t error)
{
    g_assert_cmpint(r, ==, EMU_FAULT);
    g_assert_cmpuint(e->f.vector, ==, vector);
    g_assert_cmphex(e->f.error_code, ==, error);
}

static void test_real_base_is_selector_times_16(void)
{
    struct env e;
    env_start(&e, false, 0);
    e.s.cr0 = 0;
    e.s.seg[EMU_DS] = seg_cache(0, 0, 0xffffffff, 0x93); /* "unreal" limit from protected mode */
    g_assert_cmpint(load(&e, EMU_DS, 0x1234), ==, 0);
    assert_seg(&e.s.seg[EMU_DS], 0x1234, 0x12340, 0xffffffff, 0x93);
    g_assert_cmpint(emu_far_jmp(&e.s, &e.mem, 0xf000, 0xfff0, 2, &e.f), ==, 0);
    g_assert_cmphex(e.s.seg[EMU_CS].base, ==, 0xf0000);
    g_assert_cmphex(e.s.rip, ==, 0xfff0);
    g_assert_cmpuint(e.t.writes, ==, 0);
    env_end(&e);
}

static void test_v86_segments(void)
{
    struct env e;
    env_start(&e, false, 0);
    e.s.rflags |= EMU_FLAG_VM;
    g_assert_cmpint(load(&e, EMU_ES, 0xb800), ==, 0);
    assert_seg(&e.s.seg[EMU_ES], 0xb800, 0xb8000, 0xffff, 0xf3);
    env_end(&e);
}

static void test_null_ss_gp(void)
{
    struct env e;
    env_start(&e, false, 0);
    expect_fault(&e, load(&e, EMU_SS, 0), EMU_EXC_GP, 0);
    expect_fault(&e, load(&e, EMU_SS, 3), EMU_EXC_GP, 0);
    assert_seg(&e.s.seg[EMU_SS], K_DS, 0, 0xffffffff, ATTR_K_DS);
    env_end(&e);
}

static void test_null_ss_in_64bit_mode(void)
{
    struct env e;
    env_start(&e, true, 0);
    g_assert_cmpint(load(&e, EMU_SS, 0), ==, 0);
    assert_seg(&e.s.seg[EMU_SS], 0, 0, 0, EMU_SEG_UNUSABLE);
    expect_fault(&e, load(&e, EMU_SS, 3), EMU_EXC_GP, 0); /* RPL != CPL */
    env_end(&e);
    env_start(&e, true, 3);
    expect_fault(&e, load(&e, EMU_SS, 3), EMU_EXC_GP, 0);
    env_end(&e);
}

static void test_null_ds_unusable(void)
{
    struct env e;
    env_start(&e, false, 3);
    e.s.seg[EMU_DS].base = 0x5000;
    g_assert_cmpint(load(&e, EMU_DS, 3), ==, 0);
    assert_seg(&e.s.seg[EMU_DS], 3, 0, 0, EMU_SEG_UNUSABLE);
    expect_fault(&e, load(&e, EMU_CS, 0), EMU_EXC_GP, 0);
    env_end(&e);
}

static void test_not_present(void)
{
    struct env e;
    env_start(&e, false, 0);
    put64(&e.t, GDT_BASE + FREE_SEL, desc(0, 0xfffff, 0x13, 0xc));
    expect_fault(&e, load(&e, EMU_DS, FREE_SEL), EMU_EXC_NP, FREE_SEL);
    expect_fault(&e, load(&e, EMU_SS, FREE_SEL), EMU_EXC_SS, FREE_SEL);
    assert_seg(&e.s.seg[EMU_DS], K_DS, 0, 0xffffffff, ATTR_K_DS);
    g_assert_cmpuint(e.t.writes, ==, 0);
    env_end(&e);
}

static void test_privilege_checks(void)
{
    struct env e;
    env_start(&e, false, 3);
    expect_fault(&e, load(&e, EMU_DS, K_DS | 3), EMU_EXC_GP, K_DS); /* CPL 3 > DPL 0 */
    expect_fault(&e, load(&e, EMU_SS, K_DS | 3), EMU_EXC_GP, K_DS); /* DPL != CPL */
    expect_fault(&e, load(&e, EMU_SS, U_DS | 2), EMU_EXC_GP, U_DS); /* RPL != CPL */
    env_end(&e);
    env_start(&e, false, 0);
    expect_fault(&e, load(&e, EMU_DS, FREE_SEL), EMU_EXC_GP, FREE_SEL); /* an all-zero (system) descriptor */
    env_end(&e);
}

static void test_rpl_above_dpl_gp(void)
{
    struct env e;
    env_start(&e, false, 0);
    expect_fault(&e, load(&e, EMU_DS, K_DS | 3), EMU_EXC_GP, K_DS);
    expect_fault(&e, load(&e, EMU_SS, U_DS), EMU_EXC_GP, U_DS); /* DPL 3 stack at CPL 0 */
    g_assert_cmpint(load(&e, EMU_DS, U_DS | 3), ==, 0);         /* DPL 3 data is usable from ring 0 */
    env_end(&e);
}

static void test_accessed_bit_and_cache(void)
{
    struct env e;
    env_start(&e, false, 0);
    put64(&e.t, GDT_BASE + 0x70, desc(0x12345678, 0xabcde, 0x92, 0x8));
    put64(&e.t, GDT_BASE + 0x78, desc(0x9000, 0x12345, 0x92, 0x4));
    g_assert_cmpint(load(&e, EMU_FS, 0x70), ==, 0);
    g_assert_cmphex(e.t.ram[GDT_BASE + 0x75], ==, 0x93);
    g_assert_cmphex(e.t.last_write_access, ==, EMU_ACCESS_IMPLICIT);
    assert_seg(&e.s.seg[EMU_FS], 0x70, 0x12345678, 0xabcdefff, 0x893);
    g_assert_cmpint(load(&e, EMU_SS, 0x78), ==, 0);
    g_assert_cmphex(e.t.ram[GDT_BASE + 0x7d], ==, 0x93);
    assert_seg(&e.s.seg[EMU_SS], 0x78, 0x9000, 0x12345, 0x493);
    g_assert_cmpuint(e.t.writes, ==, 2);
    g_assert_cmpint(load(&e, EMU_GS, 0x70), ==, 0); /* already accessed: no write */
    g_assert_cmpuint(e.t.writes, ==, 2);
    env_end(&e);
}

static void test_type_checks(void)
{
    struct env e;
    env_start(&e, false, 3);
    put64(&e.t, GDT_BASE + 0x70, desc(0, 0xfffff, 0x98, 0xc)); /* execute-only code, DPL 0 */
    put64(&e.t, GDT_BASE + 0x78, desc(0, 0xfffff, 0x9f, 0xc)); /* conforming readable code, DPL 0 */
    put64(&e.t, GDT_BASE + 0x80, desc(0, 0xfffff, 0xf1, 0xc)); /* read-only data, DPL 3 */
    expect_fault(&e, load(&e, EMU_DS, 0x73), EMU_EXC_GP, 0x70);
    g_assert_cmpint(load(&e, EMU_DS, 0x7b), ==, 0);
    g_assert_cmphex(e.s.seg[EMU_DS].attr, ==, 0xc9f);
    g_assert_cmpint(load(&e, EMU_ES, 0x83), ==, 0);
    expect_fault(&e, load(&e, EMU_SS, 0x83), EMU_EXC_GP, 0x80);               /* SS must be writable */
    expect_fault(&e, load(&e, EMU_DS, TSS32_SEL | 3), EMU_EXC_GP, TSS32_SEL); /* system descriptor */
    expect_fault(&e, load(&e, EMU_DS, 0x103), EMU_EXC_GP, 0x100);             /* beyond the GDT limit */
    env_end(&e);
}

static void test_ldt(void)
{
    struct env e;
    env_start(&e, false, 0);
    put64(&e.t, GDT_BASE + 0x88, desc(0x5000, 0xff, 0x82, 0));
    put64(&e.t, 0x5008, desc(0x7700, 0xfff, 0x93, 0x4));
    expect_fault(&e, load(&e, EMU_DS, 0x0c), EMU_EXC_GP, 0x0c); /* LDTR unusable */
    g_assert_cmpint(emu_load_ldtr(&e.s, &e.mem, 0x88, &e.f), ==, 0);
    assert_seg(&e.s.ldtr, 0x88, 0x5000, 0xff, 0x82);
    g_assert_cmpint(load(&e, EMU_DS, 0x0c), ==, 0);
    assert_seg(&e.s.seg[EMU_DS], 0x0c, 0x7700, 0xfff, 0x493);
    expect_fault(&e, load(&e, EMU_DS, 0x104), EMU_EXC_GP, 0x104); /* beyond the LDT limit */
    expect_fault(&e, emu_load_ldtr(&e.s, &e.mem, K_DS, &e.f), EMU_EXC_GP, K_DS);
    g_assert_cmpint(emu_load_ldtr(&e.s, &e.mem, 0, &e.f), ==, 0);
    g_assert_cmphex(e.s.ldtr.attr, ==, EMU_SEG_UNUSABLE);
    env_end(&e);
    env_start(&e, false, 3);
    expect_fault(&e, emu_load_ldtr(&e.s, &e.mem, 0x88, &e.f), EMU_EXC_GP, 0);
    env_end(&e);
}

static void test_ltr_sets_busy(void)
{
    struct env e;
    env_start(&e, false, 0);
    put64(&e.t, GDT_BASE + 0x90, desc(0x3000, 0x67, 0x89, 0));
    g_assert_cmpint(emu_load_tr(&e.s, &e.mem, 0x90, &e.f), ==, 0);
    g_assert_cmphex(e.t.ram[GDT_BASE + 0x95], ==, 0x8b);
    assert_seg(&e.s.tr, 0x90, 0x3000, 0x67, 0x8b);
    expect_fault(&e, emu_load_tr(&e.s, &e.mem, 0x90, &e.f), EMU_EXC_GP, 0x90); /* busy now */
    expect_fault(&e, emu_load_tr(&e.s, &e.mem, 0, &e.f), EMU_EXC_GP, 0);
    put64(&e.t, GDT_BASE + 0x98, desc(0x3000, 0x67, 0x09, 0));
    expect_fault(&e, emu_load_tr(&e.s, &e.mem, 0x98, &e.f), EMU_EXC_NP, 0x98);
    expect_fault(&e, emu_load_tr(&e.s, &e.mem, 0x9c, &e.f), EMU_EXC_GP, 0x9c); /* TI=1 */
    env_end(&e);
}

static void test_ltr_long_mode_16_byte(void)
{
    struct env e;
    env_start(&e, true, 0);
    put64(&e.t, GDT_BASE + 0xa0, desc(0x3000, 0x67, 0x89, 0));
    put64(&e.t, GDT_BASE + 0xa8, 0xffffffff);
    g_assert_cmpint(emu_load_tr(&e.s, &e.mem, 0xa0, &e.f), ==, 0);
    assert_seg(&e.s.tr, 0xa0, 0xffffffff00003000ull, 0x67, 0x8b);
    put64(&e.t, GDT_BASE + 0xb0, desc(0x3000, 0x67, 0x89, 0));
    put64(&e.t, GDT_BASE + 0xb8, 0x00000a0000000000ull); /* type bits in the upper half must be 0 */
    expect_fault(&e, emu_load_tr(&e.s, &e.mem, 0xb0, &e.f), EMU_EXC_GP, 0xb0);
    put64(&e.t, GDT_BASE + 0xc0, desc(0x3000, 0x67, 0x81, 0)); /* 16-bit TSS: not in long mode */
    expect_fault(&e, emu_load_tr(&e.s, &e.mem, 0xc0, &e.f), EMU_EXC_GP, 0xc0);
    expect_fault(&e, emu_load_tr(&e.s, &e.mem, 0xf8, &e.f), EMU_EXC_GP, 0xf8); /* 16 bytes pass the limit */
    env_end(&e);
}

static void test_far_jmp_rules(void)
{
    struct env e;
    env_start(&e, false, 3);
    put64(&e.t, GDT_BASE + 0x78, desc(0, 0xfffff, 0x9f, 0xc)); /* conforming code, DPL 0 */
    put64(&e.t, GDT_BASE + 0x80, desc(0, 0x0ffff, 0xfb, 0x4)); /* 64 KiB user code */
    put64(&e.t, GDT_BASE + 0x88, desc(0, 0, 0xec, 0));         /* call gate */
    g_assert_cmpint(emu_far_jmp(&e.s, &e.mem, 0x78, 0x1234, 4, &e.f), ==, 0);
    assert_seg(&e.s.seg[EMU_CS], 0x7b, 0, 0xffffffff, 0xcff); /* conforming: CPL stays 3, cached DPL too */
    g_assert_cmpuint(emu_cpl(&e.s), ==, 3);
    g_assert_cmphex(e.s.rip, ==, 0x1234);
    expect_fault(&e, emu_far_jmp(&e.s, &e.mem, K_CS32, 0, 4, &e.f), EMU_EXC_GP, K_CS32);
    expect_fault(&e, emu_far_jmp(&e.s, &e.mem, 0x83, 0x10000, 4, &e.f), EMU_EXC_GP, 0); /* past the limit */
    expect_fault(&e, emu_far_jmp(&e.s, &e.mem, 0x8b, 0, 4, &e.f), EMU_EXC_GP, 0x88);
    expect_fault(&e, emu_far_jmp(&e.s, &e.mem, U_DS | 3, 0, 4, &e.f), EMU_EXC_GP, U_DS);
    g_assert_cmphex(e.s.rip, ==, 0x1234);
    env_end(&e);
}

static void test_far_call_ret_round_trip(void)
{
    struct env e;
    env_start(&e, false, 0);
    g_assert_cmpint(emu_far_call(&e.s, &e.mem, K_CS32, 0x2000, 4, 0x401007, &e.f), ==, 0);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x7ff8);
    g_assert_cmphex(get32(&e.t, 0x7ff8), ==, 0x401007);
    g_assert_cmphex(get32(&e.t, 0x7ffc), ==, K_CS32);
    g_assert_cmphex(e.s.rip, ==, 0x2000);
    g_assert_cmpint(emu_far_ret(&e.s, &e.mem, 4, 4, &e.f), ==, 0);
    g_assert_cmphex(e.s.rip, ==, 0x401007);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8004);
    assert_seg(&e.s.seg[EMU_CS], K_CS32, 0, 0xffffffff, ATTR_K_CS32);
    env_end(&e);
}

static void test_far_ret_to_outer_level(void)
{
    struct env e;
    env_start(&e, false, 0);
    put32(&e.t, 0x8000, 0x401000);
    put32(&e.t, 0x8004, U_CS32 | 3);
    put32(&e.t, 0x8010, 0x6000); /* after 8 bytes of parameters */
    put32(&e.t, 0x8014, U_DS | 3);
    e.s.seg[EMU_ES] = seg_cache(U_DS | 3, 0, 0xffffffff, ATTR_U_DS);
    g_assert_cmpint(emu_far_ret(&e.s, &e.mem, 4, 8, &e.f), ==, 0);
    assert_seg(&e.s.seg[EMU_CS], U_CS32 | 3, 0, 0xffffffff, ATTR_U_CS32);
    assert_seg(&e.s.seg[EMU_SS], U_DS | 3, 0, 0xffffffff, ATTR_U_DS);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x6008);
    g_assert_cmphex(e.s.rip, ==, 0x401000);
    assert_seg(&e.s.seg[EMU_DS], 0, 0, 0xffffffff, EMU_SEG_UNUSABLE); /* DPL 0 data nulled */
    assert_seg(&e.s.seg[EMU_ES], U_DS | 3, 0, 0xffffffff, ATTR_U_DS);
    env_end(&e);
}

static void test_lretq_reloads_cs(void)
{
    struct env e;
    env_start(&e, true, 0);
    put32(&e.t, 0x8f18, 0x1000000);
    put32(&e.t, 0x8f1c, K_CS64);
    e.s.seg[EMU_CS] = seg_cache(K_CS32, 0, 0xffffffff, ATTR_K_CS32); /* compatibility mode */
    g_assert_cmpint(emu_far_ret(&e.s, &e.mem, 4, 0, &e.f), ==, 0);
    g_assert_cmphex(e.s.rip, ==, 0x1000000);
    assert_seg(&e.s.seg[EMU_CS], K_CS64, 0, 0xffffffff, ATTR_K_CS64);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8f20);
    env_end(&e);
    env_start(&e, true, 0);
    put64(&e.t, 0x8f18, K64ADDR);
    put64(&e.t, 0x8f20, K_CS64);
    g_assert_cmpint(emu_far_ret(&e.s, &e.mem, 8, 0, &e.f), ==, 0);
    g_assert_cmphex(e.s.rip, ==, K64ADDR);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8f28);
    env_end(&e);
}

static void test_stack_fault_leaves_state(void)
{
    struct env e;
    env_start(&e, false, 0);
    e.t.fault_lo = 0x7000;
    e.t.fault_hi = 0x8000;
    expect_fault(&e, emu_far_call(&e.s, &e.mem, K_CS32, 0x2000, 4, 0x401007, &e.f), EMU_EXC_PF, EMU_PF_W);
    g_assert_cmphex(e.f.cr2, ==, 0x7ffc);
    g_assert_cmphex(e.s.regs[EMU_RSP], ==, 0x8000);
    g_assert_cmphex(e.s.rip, ==, 0x401000);
    /* A 16-bit stack segment with a small limit: #SS(0). */
    e.s.seg[EMU_SS] = seg_cache(K_DS, 0x10000, 0xfff, 0x93);
    e.s.regs[EMU_RSP] = 0x2000;
    expect_fault(&e, emu_far_call(&e.s, &e.mem, K_CS32, 0x2000, 2, 0x1007, &e.f), EMU_EXC_SS, 0);
    env_end(&e);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/emu/segment/real/base-is-selector-times-16", test_real_base_is_selector_times_16);
    g_test_add_func("/emu/segment/v86/64k-dpl3-data", test_v86_segments);
    g_test_add_func("/emu/segment/null-ss-gp", test_null_ss_gp);
    g_test_add_func("/emu/segment/null-ss-allowed-64bit-ring0", test_null_ss_in_64bit_mode);
    g_test_add_func("/emu/segment/null-ds-unusable-null-cs-gp", test_null_ds_unusable);
    g_test_add_func("/emu/segment/not-present-np-or-ss-with-selector", test_not_present);
    g_test_add_func("/emu/segment/cpl-above-dpl-gp", test_privilege_checks);
    g_test_add_func("/emu/segment/rpl-above-dpl-gp", test_rpl_above_dpl_gp);
    g_test_add_func("/emu/segment/accessed-bit-and-cache", test_accessed_bit_and_cache);
    g_test_add_func("/emu/segment/type-and-limit-checks", test_type_checks);
    g_test_add_func("/emu/segment/lldt-and-ldt-lookup", test_ldt);
    g_test_add_func("/emu/segment/ltr-sets-busy", test_ltr_sets_busy);
    g_test_add_func("/emu/segment/ltr-long-mode-16-byte", test_ltr_long_mode_16_byte);
    g_test_add_func("/emu/segment/far-jmp-rules", test_far_jmp_rules);
    g_test_add_func("/emu/segment/far-call-ret-round-trip", test_far_call_ret_round_trip);
    g_test_add_func("/emu/segment/far-ret-to-outer-level", test_far_ret_to_outer_level);
    g_test_add_func("/emu/segment/lret-reloads-cs-64", test_lretq_reloads_cs);
    g_test_add_func("/emu/segment/stack-fault-leaves-state", test_stack_fault_leaves_state);
    return g_test_run();
}
