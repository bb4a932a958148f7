/* Unit tests of the emu interpreter: machine-code snippets run in long, protected and real mode on a real
 * machine's RAM, checked register by register; faults delivered through a guest IDT; REP restart; events. */
#include <math.h>
#include <string.h>

#include <glib.h>

#include "emu-exec-code.h"
#include "emu-exec-fixture.h"
#include "emu/flags.h"

/* ---- group 1: integer core ---- */

static void test_mov_forms(void)
{
    setup_long();
    load_run(code_mov, sizeof(code_mov));
    g_assert_cmphex(REG(RAX), ==, 0x11223344); /* moffs load, zero-extended */
    g_assert_cmphex(REG(RBX), ==, 0xffffffff);
    g_assert_cmphex(REG(RCX), ==, 5); /* 32-bit write cleared the upper half */
    g_assert_cmphex(REG(RDX), ==, 0x7f80);
    g_assert_cmphex(REG(R8), ==, 0x1122334455667788);
    g_assert_cmphex(REG(R9), ==, 0x77);
    g_assert_cmphex(REG(R10), ==, 0xffffffffffffff88);
    g_assert_cmphex(REG(R11), ==, 0xffffffff80000000);
    g_assert_cmphex(REG(R12), ==, 0x1122334455667788 + 4 * 0xffffffffull + 0x10);
    g_assert_cmphex(REG(R13), ==, CODE + 0x70);
    g_assert_cmphex(REG(R14), ==, 2);
    g_assert_cmphex(REG(R15), ==, 1);
    g_assert_cmphex(get(CODE + 0x181, 1), ==, 0x99);
    g_assert_cmphex(cpu.s.rip, ==, CODE + sizeof(code_mov));
    g_assert_cmpuint(cpu.icount, ==, 20);
    teardown();
}

static void test_alu(void)
{
    setup_long();
    load_run(code_alu, sizeof(code_alu));
    g_assert_cmphex(REG(RAX), ==, 0);
    g_assert_cmphex(REG(RBX), ==, 1);
    g_assert_cmphex(REG(RCX), ==, 0xfffffffffffffffe);
    g_assert_cmphex(REG(RDX), ==, ~0ull);
    g_assert_cmphex(REG(RSI), ==, 0x80000000);
    g_assert_cmphex(REG(R8), ==, EMU_FLAG_FIXED1 | EMU_FLAG_CF | EMU_FLAG_PF | EMU_FLAG_SF | EMU_FLAG_OF);
    g_assert_cmphex(REG(RDI), ==, 0xffff0000);
    g_assert_cmphex(REG(R9), ==, 1); /* INC kept CF */
    g_assert_cmphex(REG(R10), ==, 0x80);
    g_assert_cmphex(REG(R11), ==, EMU_FLAG_FIXED1 | EMU_FLAG_AF | EMU_FLAG_SF | EMU_FLAG_OF);
    g_assert_cmphex(REG(R12), ==, 0x80000030);
    g_assert_cmphex(REG(R13), ==, 0xaa);
    g_assert_cmphex(REG(R14), ==, 1);
    g_assert_cmphex(REG(R15), ==, 0);
    teardown();
}

static void test_muldiv(void)
{
    setup_long();
    load_run(code_muldiv, sizeof(code_muldiv));
    unsigned __int128 p = (unsigned __int128)0x123456789ull * 0x1000000000ull;
    g_assert_cmphex(REG(R8), ==, (uint64_t)p);
    g_assert_cmphex(REG(R9), ==, (uint64_t)(p >> 64));
    g_assert_cmphex(REG(R10), ==, 0xfffffffd);
    g_assert_cmphex(REG(R11), ==, 0xffffffff);
    g_assert_cmphex(REG(R12), ==, (uint64_t)-10);
    g_assert_cmphex(REG(R13), ==, (uint64_t)-6);
    g_assert_cmphex(REG(R14), ==, 0xffff0010);
    g_assert_cmphex(REG(RAX), ==, (uint64_t)-6);
    g_assert_cmphex(REG(R15), ==, ~0ull);
    teardown();
}

static void test_div_zero(void)
{
    setup_long();
    load_run(code_div0, sizeof(code_div0));
    assert_exception64(EMU_EXC_DE, false, 0, CODE + 7);
    g_assert_cmphex(REG(RAX), ==, 1);
    teardown();
}

static void test_shift(void)
{
    setup_long();
    load_run(code_shift, sizeof(code_shift));
    uint64_t mask = EMU_FLAG_CF | EMU_FLAG_ZF | EMU_FLAG_SF | EMU_FLAG_OF | EMU_FLAG_PF;
    g_assert_cmphex(REG(RAX), ==, 2);
    g_assert_cmphex(REG(R8) & mask, ==, EMU_FLAG_CF | EMU_FLAG_OF);
    g_assert_cmphex(REG(RBX), ==, 0xf0);
    g_assert_cmphex(REG(R9), ==, REG(R8)); /* count 32 masks to 0: flags untouched */
    g_assert_cmphex(REG(RDX), ==, ~0ull);
    g_assert_cmphex(REG(RSI), ==, 0x78123456);
    g_assert_cmphex(REG(RDI), ==, 0x17);
    g_assert_cmphex(REG(R10), ==, 0x8000000000000000);
    g_assert_cmphex(REG(R11), ==, 0x40);
    g_assert_cmphex(REG(R12), ==, 0xf);
    teardown();
}

static void test_bits(void)
{
    setup_long();
    load_run(code_bits, sizeof(code_bits));
    g_assert_cmphex(REG(RBX), ==, 8);
    g_assert_cmphex(REG(RCX), ==, 8);
    g_assert_cmphex(REG(RDX), ==, 0xdead); /* BSF of 0 keeps the destination */
    g_assert_cmphex(REG(R11), ==, 1);
    g_assert_cmphex(REG(RAX), ==, 0x44332211);
    g_assert_cmphex(REG(R8), ==, 0x8000000000000000);
    g_assert_cmphex(REG(R9), ==, 1);
    g_assert_cmphex(get(DATA + 4, 4), ==, 8); /* BTS m32, r32 with offset 35 */
    g_assert_cmphex(get(DATA, 4), ==, 0);
    teardown();
}

static void test_cmov_setcc(void)
{
    setup_long();
    load_run(code_cmov, sizeof(code_cmov));
    g_assert_cmphex(REG(RAX), ==, 0xffffffff); /* false CMOV r32 still zero-extends */
    g_assert_cmphex(REG(RCX), ==, 5);
    g_assert_cmphex(REG(RDX), ==, 1);
    g_assert_cmphex(REG(RSI), ==, 0);
    g_assert_cmphex(REG(RDI), ==, 1);
    teardown();
}

static void test_atomics(void)
{
    setup_long();
    put32(DATA + 8, 0xcafe);
    put64(DATA + 0x20, 0x0000000900000005ull);
    load_run(code_atomic, sizeof(code_atomic));
    g_assert_cmphex(REG(R8), ==, 1);
    g_assert_cmphex(REG(R9), ==, 0);
    g_assert_cmphex(REG(R12), ==, 20);
    g_assert_cmphex(REG(R10), ==, 20);
    g_assert_cmphex(get(DATA, 8), ==, 23);
    g_assert_cmphex(REG(R11), ==, 0xcafe);
    g_assert_cmphex(get(DATA + 8, 4), ==, 0x11111111);
    g_assert_cmphex(get(DATA + 0x10, 8), ==, 3);
    g_assert_cmphex(get(DATA + 0x18, 8), ==, 4);
    g_assert_cmphex(REG(R13), ==, 1);
    g_assert_cmphex(REG(R14), ==, 0);
    g_assert_cmphex(REG(RAX), ==, 5);
    g_assert_cmphex(REG(RDX), ==, 9);
    teardown();
}

static void test_stack(void)
{
    setup_long();
    put64(DATA, 0xbeef);
    put64(DATA + 8, CODE + 0x45);
    load_run(code_stack, sizeof(code_stack));
    g_assert_cmphex(REG(RAX), ==, 0x42);
    g_assert_cmphex(REG(RBX), ==, 0x1234);
    g_assert_cmphex(REG(R12), ==, 0x7ffd8);
    g_assert_cmphex(REG(R13), ==, 0x7fff8);
    g_assert_cmphex(REG(R14), ==, 0x80000);
    g_assert_cmphex(REG(RBP), ==, 0x12345);
    g_assert_cmphex(REG(R15), ==, 0xbeef);
    g_assert_cmphex(REG(R8), ==, 0);
    g_assert_cmphex(REG(RSP), ==, 0x80000);
    g_assert_cmphex(cpu.s.rip, ==, CODE + 0x46);
    teardown();
}

static void test_pushf_popf_cpl3(void)
{
    /* POPF at CPL 3 with IOPL 0 changes neither IF nor IOPL, silently. */
    static const uint8_t code[] = {
        0x68, 0x00, 0x32, 0x00, 0x00, /* push 0x3200 (IF, IOPL 3) */
        0x9d,                         /* popf */
        0x9c,                         /* pushf */
        0x58,                         /* pop rax */
        0xcc,                         /* int3 */
    };
    setup_long();
    put(CODE, code, sizeof(code));
    enter_user_mode();
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(REG(RAX), ==, EMU_FLAG_FIXED1);
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * 3 + 1);
    teardown();
}

/* ---- group 3: strings ---- */

static void test_strings(void)
{
    setup_long();
    for (unsigned i = 0; i < 256; i++)
        put8(DATA + i, (uint8_t)i);
    put8(0x186000, 0xab);
    for (unsigned i = 1; i < 32; i++)
        put8(0x186000 + i, (uint8_t)(0x40 + i));
    put32(0x184000, 1);
    put32(0x184004, 2);
    put32(0x184008, 3);
    load_run(code_string, sizeof(code_string));
    for (unsigned i = 0; i < 100; i++)
        g_assert_cmphex(get(0x181000 + i, 1), ==, i);
    g_assert_cmphex(get(0x181000 + 100, 1), ==, 0);
    g_assert_cmphex(get(0x182000, 8), ==, 0x0101010101010101);
    g_assert_cmphex(get(0x182000 + 599 * 8, 8), ==, 0x0101010101010101);
    g_assert_cmphex(get(0x182000 + 600 * 8, 8), ==, 0);
    g_assert_cmphex(REG(R8), ==, 1);
    g_assert_cmphex(REG(R9), ==, 0);
    g_assert_cmphex(REG(R10), ==, DATA + 0x56);
    g_assert_cmphex(REG(R11), ==, 1000 - 0x56);
    for (unsigned i = 0; i <= 16; i++) /* overlapping forward copy replicates the first byte */
        g_assert_cmphex(get(0x186000 + i, 1), ==, 0xab);
    g_assert_cmphex(get(0x186011, 1), ==, 0x51);
    g_assert_cmphex(get(0x185000, 4), ==, 1);
    g_assert_cmphex(get(0x185004, 4), ==, 2);
    g_assert_cmphex(get(0x185008, 4), ==, 3);
    g_assert_cmphex(REG(R12), ==, 0x183ffc);
    g_assert_cmphex(REG(R13), ==, 0x184ffc);
    g_assert_cmphex(REG(RAX), ==, 0x0101010101011110);
    g_assert_cmphex(REG(R14), ==, DATA + 0x12);
    teardown();
}

static void test_rep_page_fault_restart(void)
{
    setup_long();
    put(CODE, code_rep_pf, sizeof(code_rep_pf));
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    assert_exception64(EMU_EXC_PF, true, EMU_PF_W, CODE + 16);
    g_assert_cmphex(cpu.s.cr2, ==, UNMAPPED);
    g_assert_cmphex(REG(RDI), ==, UNMAPPED); /* the first page is done */
    g_assert_cmphex(REG(RCX), ==, 0x1000);
    g_assert_cmphex(get(UNMAPPED - 1, 1), ==, 0x5a);
    /* Map the page and return: the instruction resumes where it stopped. */
    put64(PT + 8 * 0x10, UNMAPPED | 3);
    emu_tlb_flush_all(&cpu.mmu);
    g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.rip, ==, CODE + sizeof(code_rep_pf));
    g_assert_cmphex(REG(RCX), ==, 0);
    g_assert_cmphex(REG(RDI), ==, UNMAPPED + 0x1000);
    g_assert_cmphex(get(UNMAPPED + 0xfff, 1), ==, 0x5a);
    g_assert_cmphex(REG(RSP), ==, STACK_TOP);
    teardown();
}

static void test_rep_interrupted(void)
{
    setup_long();
    put(CODE, code_rep_long, sizeof(code_rep_long));
    /* mov, mov, mov, sti and one pass of the REP: the budget ends inside the REP. */
    g_assert_cmpint(emu_exec(&cpu, 5), ==, EMU_EXEC_BUDGET);
    g_assert_cmphex(cpu.s.rip, ==, CODE + 17);
    g_assert_cmphex(REG(RCX), <, 0x30000);
    g_assert_cmphex(REG(RCX), >, 0);
    g_assert_cmphex(REG(RDI), ==, 0x400000 + 0x30000 - REG(RCX));
    /* An interrupt between iterations returns to the REP instruction. */
    tb.irq_vector = 0x41;
    cpu.interrupt_hint = 1;
    uint64_t left = REG(RCX);
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * 0x41 + 1);
    g_assert_cmphex(get(REG(RSP), 8), ==, CODE + 17);
    g_assert_cmphex(REG(RCX), ==, left);
    g_assert_cmpuint(tb.acks, ==, 1);
    g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.rip, ==, CODE + sizeof(code_rep_long));
    g_assert_cmphex(REG(RCX), ==, 0);
    g_assert_cmphex(get(0x400000 + 0x2ffff, 1), ==, 0x77);
    g_assert_cmphex(get(0x400000 + 0x30000, 1), ==, 0);
    teardown();
}

/* ---- faults ---- */

static void test_gp_noncanonical(void)
{
    setup_long();
    load_run(code_faults, sizeof(code_faults));
    assert_exception64(EMU_EXC_GP, true, 0, CODE + 17);
    g_assert_cmphex(REG(RBX), ==, 7);
    teardown();
}

static void test_ud(void)
{
    setup_long();
    load_run(code_ud, sizeof(code_ud));
    assert_exception64(EMU_EXC_UD, false, 0, CODE);
    teardown();
}

static void test_pf_read_only(void)
{
    setup_long();
    load_run(code_ro, sizeof(code_ro));
    assert_exception64(EMU_EXC_PF, true, EMU_PF_P | EMU_PF_W, CODE + 12);
    g_assert_cmphex(cpu.s.cr2, ==, READ_ONLY);
    teardown();
}

static void test_pf_pop_keeps_rsp(void)
{
    setup_long();
    load_run(code_pop_pf, sizeof(code_pop_pf));
    assert_exception64(EMU_EXC_PF, true, EMU_PF_W, CODE + 7);
    g_assert_cmphex(cpu.s.cr2, ==, UNMAPPED + 8);
    g_assert_cmphex(get(REG(RSP) + 8 * 4, 8), ==, STACK_TOP); /* the interrupted RSP was not popped */
    teardown();
}

static void test_fetch_across_pages(void)
{
    setup_long();
    put(0x1ffffb, code_mode64, sizeof(code_mode64));
    cpu.s.rip = 0x1ffffb;
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(REG(R15), ==, 0x123456789abcdef);
    teardown();

    setup_long();
    put(UNMAPPED - 5, code_mode64, 5);
    cpu.s.rip = UNMAPPED - 5;
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    assert_exception64(EMU_EXC_PF, true, EMU_PF_I, UNMAPPED - 5);
    g_assert_cmphex(cpu.s.cr2, ==, UNMAPPED);
    teardown();
}

static void test_self_modifying_code(void)
{
    static const uint8_t one[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4}; /* mov eax, 1; hlt */
    /* The guest patches the immediate of the instruction it has just run, then runs it again. */
    static const uint8_t patcher[] = {
        0xc6, 0x04, 0x25, 0x01, 0x00, 0x10, 0x00, 0x07, /* mov byte ptr [0x100001], 7 */
        0xe9, 0xf3, 0xff, 0xff, 0xff,                   /* jmp 0x100000 */
    };
    setup_long();
    load_run(one, sizeof(one));
    g_assert_cmphex(REG(RAX), ==, 1);
    put(CODE + 0x100, patcher, sizeof(patcher));
    put(CODE + 0x100 + 9, &(int32_t){-(int32_t)(0x100 + sizeof(patcher))}, 4);
    cpu.s.rip = CODE + 0x100;
    g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(REG(RAX), ==, 7);
    /* And a change behind the CPU's back (DMA, the debugger). */
    put8(CODE + 1, 9);
    cpu.s.rip = CODE;
    g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(REG(RAX), ==, 9);
    teardown();

    /* A longer block (compared 16 bytes at a time): changes at its start, in the middle and in the tail. */
    static const uint8_t four[] = {
        0xb8, 0x01, 0x00, 0x00, 0x00, /* mov eax, 1 */
        0xbb, 0x02, 0x00, 0x00, 0x00, /* mov ebx, 2 */
        0xb9, 0x03, 0x00, 0x00, 0x00, /* mov ecx, 3 */
        0xba, 0x04, 0x00, 0x00, 0x00, /* mov edx, 4 */
        0xf4,                         /* hlt */
    };
    static const struct {
        unsigned offset;
        uint8_t value;
    } patches[] = {{1, 0x11}, {6, 0x22}, {11, 0x33}, {16, 0x44}, {19, 0x55}};
    setup_long();
    load_run(four, sizeof(four));
    g_assert_cmphex(REG(RDX), ==, 4);
    for (unsigned i = 0; i < G_N_ELEMENTS(patches); i++) {
        put8(CODE + patches[i].offset, patches[i].value);
        cpu.s.rip = CODE;
        g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
        uint64_t expect[4] = {0x11, 2, 3, 4};
        if (i >= 1)
            expect[1] = 0x22;
        if (i >= 2)
            expect[2] = 0x33;
        if (i >= 3)
            expect[3] = 0x44;
        if (i >= 4)
            expect[3] = 0x55000044;
        g_assert_cmphex(REG(RAX), ==, expect[0]);
        g_assert_cmphex(REG(RBX), ==, expect[1]);
        g_assert_cmphex(REG(RCX), ==, expect[2]);
        g_assert_cmphex(REG(RDX), ==, expect[3]);
    }
    teardown();
}

/* ---- group 5: SSE2 and FPU state ---- */

static void test_sse(void)
{
    static const char str[16] = "Hello, emu!\0xyz";
    setup_long();
    put(DATA, str, sizeof(str));
    load_run(code_sse, sizeof(code_sse));
    g_assert_cmphex(REG(R8), ==, 11); /* strlen the glibc way */
    g_assert_cmphex(REG(R9), ==, 0x55667788);
    g_assert_cmphex(get(DATA + 0x100, 8), ==, 0x5555666677778888);
    g_assert_cmphex(get(DATA + 0x108, 8), ==, 0x1111222233334444);
    g_assert_cmphex(get(DATA + 0x110, 8), ==, 0x3333444411112222);
    g_assert_cmphex(get(DATA + 0x118, 8), ==, 0x7777888855556666);
    g_assert_cmphex(get(DATA + 0x120, 8), ==, 0x5555666633334444);
    g_assert_cmphex(get(DATA + 0x128, 8), ==, 0x77778888);
    g_assert_cmphex(get(DATA + 0x130, 8), ==, 0x5555666677778888);
    g_assert_cmphex(get(DATA + 0x138, 8), ==, 0);
    g_assert_cmphex(REG(R10), ==, 0xd8d8ca90);
    g_assert_cmphex(get(DATA + 0x140, 4), ==, 0x1f80);
    g_assert_cmphex(cpu.s.fx.mxcsr, ==, 0x1fc0);
    g_assert_cmphex(get(DATA + 0x148, 2), ==, 0x37f);
    g_assert_cmphex(REG(R11), ==, 0x1122334455660000);
    g_assert_cmphex(get(DATA + 0x200, 2), ==, 0x37f);
    g_assert_cmphex(get(DATA + 0x200 + 24, 4), ==, 0x1fc0);
    g_assert_cmphex(get(DATA + 0x200 + 160 + 2 * 16, 8), ==, 0x5555666677778888);
    /* MOVDQA with a misaligned operand: #GP(0). */
    assert_exception64(EMU_EXC_GP, true, 0, CODE + sizeof(code_sse) - 10);
    teardown();
}

static void test_sse_fp(void)
{
    setup_long();
    load_run(code_ssefp, sizeof(code_ssefp));
    double d;
    memcpy(&d, cpu.s.fx.xmm[0], 8);
    g_assert_cmpfloat(d, ==, 10.0);
    g_assert_cmphex(REG(RBX), ==, 10);
    memcpy(&d, cpu.s.fx.xmm[2], 8);
    g_assert_cmpfloat(d, ==, sqrt(2.0));
    g_assert_cmphex(REG(R8), ==, 1);
    g_assert_cmphex(REG(R9), ==, ~0ull);
    g_assert_cmphex(REG(R10), ==, 0x7ff0000000000000); /* +inf */
    g_assert_cmphex(REG(R11), ==, 1);
    g_assert_cmphex(REG(R12), ==, 0);
    g_assert_cmphex(get(DATA, 8), ==, 0x4010000000000000);     /* 4.0 */
    g_assert_cmphex(get(DATA + 8, 8), ==, 0x4034000000000000); /* 20.0 */
    uint64_t mxcsr = get(DATA + 0x10, 4);
    teardown();
    if (under_valgrind())
        return;                                      /* valgrind does not model the MXCSR exception flags */
    g_assert_cmphex(mxcsr, ==, 0x1f80 | 0x20 | 0x4); /* PE and ZE raised, masked */

    /* Zero-divide unmasked: #XM, the destination untouched, ZE recorded. */
    setup_long();
    cpu.s.cr4 |= EMU_CR4_OSXMMEXCPT;
    put32(DATA, 0x1f80 & ~0x200u);
    load_run(code_xm, sizeof(code_xm));
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * EMU_EXC_XM + 1);
    g_assert_cmphex(get(REG(RSP), 8), ==, CODE + sizeof(code_xm) - 5);
    memcpy(&d, cpu.s.fx.xmm[1], 8);
    g_assert_cmpfloat(d, ==, 2.0);
    g_assert_cmphex(cpu.s.fx.mxcsr & 0x3f, ==, 0x4);
    teardown();
}

/* An unmasked x87 exception suppresses the result, sets ES, survives FNSTENV/FLDENV and raises #MF at the
 * next waiting instruction. */
static void test_x87_pending_exception(void)
{
    if (under_valgrind()) {
        g_test_skip("valgrind does not model x87 exception flags");
        return;
    }
    setup_long();
    put32(DATA, 0x37f & ~0x4u); /* zero-divide unmasked */
    load_run(code_x87_mf, sizeof(code_x87_mf));
    g_assert_cmphex(REG(RAX) & 0xffff, ==, 0x8000 | 0x3000 | 0x80 | 0x4);
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * EMU_EXC_MF + 1);
    g_assert_cmphex(get(REG(RSP), 8), ==, CODE + sizeof(code_x87_mf) - 2); /* the FWAIT */
    g_assert_cmphex(get(DATA + 0x10, 2), ==, 0x37b);
    long double st0;
    memcpy(&st0, cpu.s.fx.st[0], 10);
    g_assert_cmpfloat((double)st0, ==, 1.0); /* the division did not happen */
    teardown();
}

static void test_triple_fault(void)
{
    setup_long();
    cpu.s.idtr.limit = 0; /* every vector is outside the IDT */
    put(CODE, code_ud, sizeof(code_ud));
    g_assert_cmpint(run(), ==, EMU_EXEC_TRIPLE_FAULT);
    teardown();
}

static void test_ss_limit_protected32(void)
{
    static const uint8_t code[] = {
        0xbd, 0x00, 0x00, 0x10, 0x00, /* mov ebp, 0x100000 */
        0x8b, 0x45, 0x00,             /* mov eax, [ebp] (SS by default) */
        0xf4,
    };
    setup_prot32();
    cpu.s.seg[EMU_SS].limit = 0xfffff;
    load_run(code, sizeof(code));
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * EMU_EXC_SS + 1);
    g_assert_cmphex(get(REG(RSP), 4), ==, 0);
    g_assert_cmphex(get(REG(RSP) + 4, 4), ==, CODE + 5);
    teardown();
}

/* ---- events ---- */

static void test_nmi_blocked_until_iret(void)
{
    static const uint8_t code[] = {0x90, 0x90, 0x90, 0xf4}; /* nop; nop; nop; hlt */
    setup_long();
    put(CODE, code, sizeof(code));
    tb.nmi = true;
    cpu.interrupt_hint = 1;
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT); /* NMI taken even with IF=0 */
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * EMU_EXC_NMI + 1);
    g_assert_cmphex(get(REG(RSP), 8), ==, CODE);
    g_assert_true(cpu.s.nmi_blocked);
    /* A second NMI waits for the handler's IRETQ. */
    tb.nmi = true;
    cpu.interrupt_hint = 1;
    cpu.s.halted = false;
    g_assert_cmpint(emu_exec(&cpu, 1), ==, EMU_EXEC_BUDGET); /* the handler's IRETQ */
    g_assert_false(cpu.s.nmi_blocked);
    g_assert_true(tb.nmi);
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * EMU_EXC_NMI + 1);
    g_assert_false(tb.nmi);
    teardown();
}

/* A compare and the branch after it run as one fused handler, yet a budget of one instruction still stops
 * between them, and the branch goes the right way from either side. */
static void check_fused_branch(uint64_t rax, uint64_t rbx, bool taken)
{
    /* cmp rax, rbx; je +1; hlt; hlt */
    static const uint8_t code[] = {0x48, 0x39, 0xd8, 0x74, 0x01, 0xf4, 0xf4};
    setup_long();
    put(CODE, code, sizeof(code));
    REG(RAX) = rax;
    REG(RBX) = rbx;
    uint64_t icount = cpu.icount;
    g_assert_cmpint(emu_exec(&cpu, 1), ==, EMU_EXEC_BUDGET);
    g_assert_cmphex(cpu.s.rip, ==, CODE + 3);
    g_assert_cmpuint(cpu.icount, ==, icount + 1);
    g_assert_cmpint(emu_exec(&cpu, 1), ==, EMU_EXEC_BUDGET);
    g_assert_cmphex(cpu.s.rip, ==, CODE + (taken ? 6 : 5));
    g_assert_cmpuint(cpu.icount, ==, icount + 2);
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.rip, ==, CODE + (taken ? 7 : 6));
    /* Unsplit: the whole pair in one go. */
    cpu.s.rip = CODE;
    cpu.s.halted = false;
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.rip, ==, CODE + (taken ? 7 : 6));
    g_assert_cmpuint(cpu.icount, ==, icount + 6);
    teardown();
}

static void test_fused_branch_split(void)
{
    check_fused_branch(5, 5, true);
    check_fused_branch(5, 6, false);
    check_fused_branch(0x100000005ull, 5, false); /* a 64-bit compare: the upper half counts */
}

/* With code tracking (one vCPU), decoded blocks trust the page generation: writes by the guest itself and
 * device writes through the memory API still reach the next run of the block; a write that tells nobody (a
 * raw host store) is not seen, which shows the bytes are no longer compared. */
static void dma_observer(void *opaque, uint64_t gpa, uint64_t len)
{
    emu_mmu_notify_phys_write(opaque, gpa, len);
}

static void test_code_tracking(void)
{
    /* mov eax, 1; mov ebx, 2; mov ecx, 3; mov edx, 4; hlt */
    static const uint8_t four[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0xbb, 0x02, 0x00, 0x00, 0x00, 0xb9,
                                   0x03, 0x00, 0x00, 0x00, 0xba, 0x04, 0x00, 0x00, 0x00, 0xf4};
    /* mov byte ptr [0x100010], 0x44; jmp 0x100000 */
    static const uint8_t patcher[] = {0xc6, 0x04, 0x25, 0x10, 0x00, 0x10, 0x00, 0x44, 0xe9, 0, 0, 0, 0};
    setup_long();
    uint8_t *host = guest_mem_map_write(&tmach.mem, CODE, 16);
    cpu.code_tracking = true;
    tmach.mem.write_observer = dma_observer;
    tmach.mem.write_observer_opaque = &cpu.mmu;
    load_run(four, sizeof(four));
    g_assert_cmphex(REG(RDX), ==, 4);
    g_assert_nonnull(emu_code_page_gen(&cpu.mmu, CODE));
    g_assert_true(emu_code_page_marked(&cpu.mmu, CODE));

    /* The guest patches the block's page (its TLB write entry for the page went slow when it was marked). */
    put(CODE + 0x100, patcher, sizeof(patcher));
    put(CODE + 0x100 + 9, &(int32_t){-(int32_t)(0x100 + sizeof(patcher))}, 4);
    cpu.s.rip = CODE + 0x100;
    g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(REG(RDX), ==, 0x44);

    /* A device write through the memory API. */
    put8(CODE + 6, 0x22);
    cpu.s.rip = CODE;
    g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(REG(RBX), ==, 0x22);
    g_assert_cmphex(REG(RDX), ==, 0x44);

    /* A store nobody is told about (the run above decoded the block again and marked the page): the decoded
     * block stands. */
    host[11] = 0x33;
    cpu.s.rip = CODE;
    g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(REG(RCX), ==, 3);
    /* ... until the write is reported. */
    guest_mem_write_done(&tmach.mem, CODE + 11, 1);
    cpu.s.rip = CODE;
    g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(REG(RCX), ==, 0x33);
    tmach.mem.write_observer = NULL;
    teardown();
}

static void test_sti_shadow(void)
{
    setup_long();
    tb.irq_vector = 0x40;
    cpu.interrupt_hint = 1;
    load_run(code_sti, sizeof(code_sti));
    /* Not before the NOP after STI; before the HLT. */
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * 0x40 + 1);
    g_assert_cmphex(get(REG(RSP), 8), ==, CODE + 2);
    g_assert_cmpuint(tb.acks, ==, 1);
    teardown();

    setup_long();
    tb.irq_vector = 0x40;
    cpu.interrupt_hint = 1;
    load_run(code_sti_hlt, sizeof(code_sti_hlt));
    /* STI; HLT: the HLT runs first, and the interrupt wakes it. */
    g_assert_cmphex(cpu.s.rip, ==, CODE + 2);
    g_assert_true(cpu.s.halted);
    g_assert_cmpuint(tb.acks, ==, 0);
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * 0x40 + 1);
    g_assert_cmphex(get(REG(RSP), 8), ==, CODE + 2);
    teardown();
}

static void test_int_n(void)
{
    setup_long();
    load_run(code_int, sizeof(code_int));
    assert_exception64(0x30, false, 0, CODE + 2);
    /* The handler's IRETQ comes back to the HLT after INT. */
    g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.rip, ==, CODE + 3);
    g_assert_cmphex(REG(RSP), ==, STACK_TOP);
    teardown();
}

static void test_exit_request(void)
{
    setup_long();
    put(CODE, code_mov, sizeof(code_mov));
    cpu.exit_request = 1;
    g_assert_cmpint(run(), ==, EMU_EXEC_EXIT_REQUEST);
    g_assert_cmphex(cpu.s.rip, ==, CODE);
    cpu.exit_request = 0;
    g_assert_cmpint(emu_exec(&cpu, 3), ==, EMU_EXEC_BUDGET);
    g_assert_cmpuint(cpu.icount, ==, 3);
    teardown();
}

/* ---- group 4: system ---- */

static void test_syscall_sysret(void)
{
    setup_long();
    put(CODE, code_syscall_user, sizeof(code_syscall_user));
    put(CODE + 0x800, code_syscall_kernel, sizeof(code_syscall_kernel));
    put64(DATA + 0x10, 0x5eed);
    enter_user_mode();
    cpu.s.msr.star = 0x0018000800000000ull;
    cpu.s.msr.lstar = CODE + 0x800;
    cpu.s.msr.sfmask = EMU_FLAG_IF | EMU_FLAG_DF;
    cpu.s.msr.kernel_gs_base = DATA;
    cpu.s.rflags |= EMU_FLAG_IF;
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(REG(R15), ==, 42);
    g_assert_cmphex(REG(RBX), ==, 0x5eed);
    g_assert_cmphex(REG(RCX), ==, CODE + 7);
    g_assert_cmphex(REG(R11) & EMU_FLAG_IF, ==, EMU_FLAG_IF);
    g_assert_cmphex(cpu.s.seg[EMU_GS].base, ==, 0);
    g_assert_cmphex(cpu.s.msr.kernel_gs_base, ==, DATA);
    /* Back in ring 3, the INT3 went to its handler through the ring-0 stack of the TSS. */
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * 3 + 1);
    g_assert_cmphex(get(REG(RSP) + 8, 8), ==, 0x2b);
    g_assert_cmphex(get(REG(RSP), 8), ==, CODE + sizeof(code_syscall_user));
    teardown();
}

static void test_far_call_compat_to_64(void)
{
    setup_long();
    set_seg(EMU_CS, 0x18, 0, 0xffffffff, ATTR_CODE32); /* compatibility mode */
    put(CODE, code_farcall32, sizeof(code_farcall32));
    put(CODE + 0x400, code_farret_target, sizeof(code_farret_target));
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(REG(RSI), ==, 0x77);
    g_assert_cmphex(cpu.s.seg[EMU_CS].selector, ==, 0x18);
    g_assert_false(emu_code64(&cpu.s));
    g_assert_cmphex(cpu.s.rip, ==, CODE + sizeof(code_farcall32));
    g_assert_cmphex(REG(RSP), ==, STACK_TOP);
    teardown();
}

static void test_io_msr_cpuid(void)
{
    setup_long();
    tb.in_value = 0x5a;
    load_run(code_io, sizeof(code_io));
    g_assert_cmpuint(tb.nout, ==, 2);
    g_assert_cmpuint(tb.out_port[0], ==, 0x80);
    g_assert_cmpuint(tb.out_size[0], ==, 1);
    g_assert_cmphex(tb.out_value[0], ==, 0x12);
    g_assert_cmpuint(tb.out_port[1], ==, 0x3f8);
    g_assert_cmpuint(tb.out_size[1], ==, 2);
    g_assert_cmphex(tb.out_value[1], ==, 0xbeef);
    g_assert_cmphex(REG(R8), ==, 0x5a);
    g_assert_cmphex(REG(R9), ==, 0x5a);
    g_assert_cmphex(REG(RBX), ==, 0x80000001 ^ 0x5555);
    g_assert_cmphex(REG(R10), ==, 0xd01);
    g_assert_cmpuint(tb.msr_writes, ==, 1);
    g_assert_cmphex(REG(R11), ==, PML4);
    g_assert_cmphex(REG(R12), ==, 0x23456789);
    /* RDMSR of an unknown MSR: #GP(0) at the RDMSR. */
    assert_exception64(EMU_EXC_GP, true, 0, CODE + sizeof(code_io) - 3);
    teardown();
}

static void test_privileged_at_cpl3(void)
{
    static const uint8_t code[] = {0x0f, 0x20, 0xd8}; /* mov rax, cr3 */
    setup_long();
    put(CODE, code, sizeof(code));
    enter_user_mode();
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * EMU_EXC_GP + 1);
    g_assert_cmphex(REG(RSP), ==, 0x90000 - 6 * 8);
    g_assert_cmphex(get(REG(RSP) + 8, 8), ==, CODE);
    teardown();
}

static void test_protected32(void)
{
    setup_prot32();
    cpu.s.seg[EMU_DS].limit = 0x1fffff;
    load_run(code_prot32, sizeof(code_prot32));
    g_assert_cmphex(get(DATA + 0x20, 4), ==, 0x12345678);
    g_assert_cmphex(REG(RDX), ==, 0x5678);
    g_assert_cmphex(REG(RCX), ==, 0);
    g_assert_cmphex(REG(RSI), ==, DATA + 0x14);
    /* The load beyond the DS limit: #GP(0) through the 32-bit IDT. */
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * EMU_EXC_GP + 1);
    g_assert_cmphex(REG(RSP), ==, STACK_TOP - 16);
    g_assert_cmphex(get(REG(RSP), 4), ==, 0);
    g_assert_cmphex(get(REG(RSP) + 4, 4), ==, CODE + 42);
    g_assert_cmphex(get(REG(RSP) + 8, 4), ==, 0x18);
    g_assert_cmphex(REG(RAX), ==, 0x2468acf0);
    teardown();
}

static void test_real_mode(void)
{
    setup_real();
    put(0x10000, code_real, sizeof(code_real));
    put(0x20010, code_real_far, sizeof(code_real_far));
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(get(0x20014, 2), ==, 0x1234);
    g_assert_cmphex(REG(RCX), ==, 0x1235);
    g_assert_cmphex(REG(RDX), ==, 0x1235);
    g_assert_cmphex(REG(RDI), ==, 0x11112222);
    /* INT 0x21 through the IVT: FLAGS, CS, IP pushed on SS:SP. */
    g_assert_cmphex(cpu.s.seg[EMU_CS].selector, ==, 0);
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * 0x21 + 1);
    g_assert_cmphex(REG(RSP), ==, 0xfa);
    g_assert_cmphex(get(0x300fa, 2), ==, 0x21);
    g_assert_cmphex(get(0x300fc, 2), ==, 0x1000);
    /* IRET, then the far JMP to 2000:0010. */
    g_assert_cmpint(resume(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.seg[EMU_CS].selector, ==, 0x2000);
    g_assert_cmphex(cpu.s.seg[EMU_CS].base, ==, 0x20000);
    g_assert_cmphex(REG(RBP), ==, 0x4321);
    g_assert_cmphex(cpu.s.rip, ==, 0x14);
    teardown();
}

/* The SMP trampoline's way up: LGDT with a 32-bit base, CR0.PE, a 32-bit far jump, segment loads from the
 * GDT. */
static void test_real_to_protected(void)
{
    setup_real();
    put(0x10000, code_real_to_prot, sizeof(code_real_to_prot));
    put(0x100500, code_prot_entry, sizeof(code_prot_entry));
    put(0x20040, &(uint16_t){0x2f}, 2);
    put32(0x20042, GDT);
    put32(DATA, 0xfeedface);
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.gdtr.base, ==, GDT);
    g_assert_true(cpu.s.cr0 & EMU_CR0_PE);
    g_assert_cmphex(cpu.s.seg[EMU_CS].selector, ==, 0x18);
    g_assert_cmphex(cpu.s.seg[EMU_DS].base, ==, 0);
    g_assert_cmphex(cpu.s.seg[EMU_DS].limit, ==, 0xffffffff);
    g_assert_cmphex(REG(RBX), ==, 0xfeedface);
    g_assert_cmphex(REG(RSP), ==, 0x80000);
    g_assert_cmphex(cpu.s.rip, ==, 0x100500 + sizeof(code_prot_entry));
    g_assert_false(cpu.s.rflags & EMU_FLAG_IF);
    teardown();
}

static void test_enter_long_mode(void)
{
    setup_prot32();
    put(CODE, code_mode_switch, sizeof(code_mode_switch));
    put(CODE + 0x400, code_mode64, sizeof(code_mode64));
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
    g_assert_true(cpu.s.efer & EMU_EFER_LMA);
    g_assert_true(emu_code64(&cpu.s));
    g_assert_cmphex(REG(R15), ==, 0x123456789abcdef);
    g_assert_cmphex(cpu.s.rip, ==, CODE + 0x400 + sizeof(code_mode64));
    teardown();
}

/* Interpreter speed on a register loop with a load and a store (run with -m perf). */
static void test_perf_loop(void)
{
    static const uint8_t code[] = {
        0xb9, 0x00, 0x00, 0x00, 0x01,                   /* mov ecx, 0x1000000 */
        0x48, 0x83, 0xc0, 0x01,                         /* l: add rax, 1 */
        0x48, 0x8b, 0x14, 0x25, 0x00, 0x00, 0x18, 0x00, /* mov rdx, [0x180000] */
        0x48, 0x89, 0x14, 0x25, 0x08, 0x00, 0x18, 0x00, /* mov [0x180008], rdx */
        0xff, 0xc9,                                     /* dec ecx */
        0x75, 0xe8,                                     /* jne l */
        0xf4,                                           /* hlt */
    };
    if (!g_test_perf())
        return;
    setup_long();
    put(CODE, code, sizeof(code));
    gint64 t0 = g_get_monotonic_time();
    while (run() != EMU_EXEC_HALT)
        ;
    gint64 t1 = g_get_monotonic_time();
    g_assert_cmphex(REG(RAX), ==, 0x1000000);
    g_test_message("%.1f M instructions in %.3f s: %.1f MIPS", cpu.icount / 1e6, (t1 - t0) / 1e6,
                   (double)cpu.icount / (double)(t1 - t0));
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/emu-exec/int/mov-forms", test_mov_forms);
    g_test_add_func("/emu-exec/int/alu-flags", test_alu);
    g_test_add_func("/emu-exec/int/mul-div", test_muldiv);
    g_test_add_func("/emu-exec/int/div-by-zero-raises-de", test_div_zero);
    g_test_add_func("/emu-exec/int/shifts-rotates", test_shift);
    g_test_add_func("/emu-exec/int/bit-ops", test_bits);
    g_test_add_func("/emu-exec/int/cmov-setcc", test_cmov_setcc);
    g_test_add_func("/emu-exec/int/cmpxchg-xadd-xchg", test_atomics);
    g_test_add_func("/emu-exec/int/stack-call-enter-leave", test_stack);
    g_test_add_func("/emu-exec/int/popf-at-cpl3-keeps-if-iopl", test_pushf_popf_cpl3);
    g_test_add_func("/emu-exec/string/rep-movs-stos-cmps-scas", test_strings);
    g_test_add_func("/emu-exec/string/rep-restarts-after-page-fault", test_rep_page_fault_restart);
    g_test_add_func("/emu-exec/string/rep-interrupted-between-iterations", test_rep_interrupted);
    g_test_add_func("/emu-exec/fault/gp-non-canonical", test_gp_noncanonical);
    g_test_add_func("/emu-exec/fault/ud2", test_ud);
    g_test_add_func("/emu-exec/fault/pf-write-read-only", test_pf_read_only);
    g_test_add_func("/emu-exec/fault/pf-pop-keeps-rsp", test_pf_pop_keeps_rsp);
    g_test_add_func("/emu-exec/fault/fetch-across-pages", test_fetch_across_pages);
    g_test_add_func("/emu-exec/fault/self-modifying-code", test_self_modifying_code);
    g_test_add_func("/emu-exec/sse/moves-logic-packed-fxsave", test_sse);
    g_test_add_func("/emu-exec/x87/unmasked-exception-mf", test_x87_pending_exception);
    g_test_add_func("/emu-exec/fault/triple-fault", test_triple_fault);
    g_test_add_func("/emu-exec/fault/ss-limit-protected32", test_ss_limit_protected32);
    g_test_add_func("/emu-exec/sse/scalar-packed-fp-and-xm", test_sse_fp);
    g_test_add_func("/emu-exec/event/sti-shadow", test_sti_shadow);
    g_test_add_func("/emu-exec/event/nmi-blocked-until-iret", test_nmi_blocked_until_iret);
    g_test_add_func("/emu-exec/event/int-n-and-iretq", test_int_n);
    g_test_add_func("/emu-exec/event/exit-request-and-budget", test_exit_request);
    g_test_add_func("/emu-exec/sys/io-msr-cpuid-cr3", test_io_msr_cpuid);
    g_test_add_func("/emu-exec/sys/privileged-at-cpl3-gp", test_privileged_at_cpl3);
    g_test_add_func("/emu-exec/sys/syscall-swapgs-sysret", test_syscall_sysret);
    g_test_add_func("/emu-exec/sys/far-call-compat-to-64-and-back", test_far_call_compat_to_64);
    g_test_add_func("/emu-exec/mode/protected32", test_protected32);
    g_test_add_func("/emu-exec/mode/real", test_real_mode);
    g_test_add_func("/emu-exec/mode/real-to-protected", test_real_to_protected);
    g_test_add_func("/emu-exec/mode/enter-long-mode", test_enter_long_mode);
    g_test_add_func("/emu-exec/perf/loop", test_perf_loop);
    g_test_add_func("/emu-exec/blocks/fused-branch-split", test_fused_branch_split);
    g_test_add_func("/emu-exec/blocks/code-tracking", test_code_tracking);
    return g_test_run();
}
