/* Host-differential tests of the emu interpreter: integer, memory-operand, x87 and SSE instruction sequences
 * run natively (in-process, user mode, an executable anonymous page) and in the emu with the same inputs, and
 * a compiled C workload run natively and in the emu; everything the instructions define must agree. */
#include "diff_params.h"
#include <string.h>
#include <sys/mman.h>

#include <glib.h>

#include "emu-exec-diff-code.h"
#include "emu-exec-fixture.h"
#include "emu-exec-workload.h"
#include "emu-workload.h"
#include "emu/flags.h"
#include "guest_memory.h"

/* ---- host-differential: the same instruction natively and in the emu ---- */

struct diff_regs {
    uint64_t r[4]; /* RAX, RBX, RCX, RDX */
    uint64_t flags;
    uint64_t ptr; /* RSI for the memory harness */
};

static uint64_t diff_value(GRand *rng)
{
    static const uint64_t edge[] = {
        0,
        1,
        2,
        ~0ull,
        0x7f,
        0x80,
        0xff,
        0x7fff,
        0x8000,
        0xffff,
        0x7fffffff,
        0x80000000,
        0xffffffff,
        0x7fffffffffffffff,
        0x8000000000000000,
        0x100000000,
        0x0f0f0f0f0f0f0f0f,
    };
    uint64_t r = (uint64_t)g_rand_int(rng) << 32 | g_rand_int(rng);
    switch (g_rand_int_range(rng, 0, 4)) {
    case 0:
        return edge[g_rand_int_range(rng, 0, G_N_ELEMENTS(edge))];
    case 1:
        return r & 0xff;
    default:
        return r;
    }
}

/* Runs each instruction of table natively (the stub between head and tail) and in the emu with the same
 * registers, flags and (with_mem) 32-byte buffer at RSI, and compares everything the instruction defines. */
static void host_differential(const struct diff_insn *table, size_t n, const uint8_t *head, size_t head_len,
                              const uint8_t *tail, size_t tail_len, bool with_mem, bool mxcsr_slot)
{
    const uint64_t arith = EMU_FLAGS_ARITH;
    if (under_valgrind()) {
        g_test_skip("valgrind's CPU model is not the host's");
        return;
    }
    uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        g_test_skip("no executable anonymous memory");
        return;
    }
    GRand *rng = g_rand_new_with_seed(diff_seed());
    unsigned cases = 0;
    setup_long();
    for (unsigned k = 0; k < n; k++) {
        const struct diff_insn *d = &table[k];
        memcpy(page, head, head_len);
        memcpy(page + head_len, d->bytes, d->len);
        memcpy(page + head_len + d->len, tail, tail_len);
        void (*native)(struct diff_regs *) = (void (*)(struct diff_regs *))(uintptr_t)page;
        uint8_t code[16];
        memcpy(code, d->bytes, d->len);
        code[d->len] = 0xf4; /* hlt */
        put(CODE, code, d->len + 1u);
        for (unsigned i = 0; i < 300 * diff_scale(); i++) {
            struct diff_regs in, host;
            uint8_t buf[32] __attribute__((aligned(16))), host_buf[32] __attribute__((aligned(16)));
            for (unsigned r = 0; r < 4; r++)
                in.r[r] = diff_value(rng);
            for (unsigned b = 0; b < sizeof(buf); b++)
                buf[b] = (uint8_t)g_rand_int(rng);
            if (d->shiftlike && d->shiftlike <= 2 && g_rand_boolean(rng))
                in.r[2] = g_rand_int_range(rng, 0, 70);
            if (d->shiftlike == 3)
                in.r[1] = g_rand_int_range(rng, 0, 128);
            if (d->shiftlike == 4) {
                in.r[0] &= 0xff;
                buf[8] |= 1;
            }
            if (g_rand_int_range(rng, 0, 4) == 0) /* CMPXCHG: make the comparison succeed sometimes */
                memcpy(buf, &in.r[0], 8);
            buf[30] |= 0x18; /* x87 control words: overflow and underflow stay masked (see exec_x87.c) */
            if (mxcsr_slot) {
                uint32_t mxcsr = 0x1f80 | (g_rand_int(rng) & 0x6000) | (g_rand_boolean(rng) ? 0x8040 : 0);
                memcpy(buf + 28, &mxcsr, 4);
            }
            in.flags = (g_rand_int(rng) & arith) | EMU_FLAG_FIXED1 | EMU_FLAG_IF;
            host = in;
            memcpy(host_buf, buf, sizeof(buf));
            host.ptr = (uint64_t)(uintptr_t)host_buf;
            native(&host);

            static const unsigned gpr[4] = {EMU_RAX, EMU_RBX, EMU_RCX, EMU_RDX};
            for (unsigned r = 0; r < 4; r++)
                cpu.s.regs[gpr[r]] = in.r[r];
            cpu.s.regs[EMU_RSI] = DATA;
            put(DATA, buf, sizeof(buf));
            cpu.s.rflags = in.flags;
            cpu.s.cc_op = EMU_CC_EAGER;
            cpu.s.rip = CODE;
            cpu.s.halted = false;
            g_assert_cmpint(run(), ==, EMU_EXEC_HALT);

            uint64_t undef = d->undefined_flags;
            if (d->shiftlike == 1 || d->shiftlike == 2) {
                unsigned wide =
                    strstr(d->text, "rax") || strstr(d->text, "rbx") || strstr(d->text, "qword") ? 63 : 31;
                if ((in.r[2] & wide) != 1)
                    undef |= EMU_FLAG_OF;
            }
            uint64_t fmask = arith & ~undef;
            bool same =
                cpu.s.rip == CODE + d->len + 1 && (emu_flags_get(&cpu.s) & fmask) == (host.flags & fmask);
            for (unsigned r = 0; r < 4; r++)
                same = same && cpu.s.regs[gpr[r]] == host.r[r];
            uint8_t emu_buf[32];
            g_assert_cmpint(guest_mem_read(&tmach.mem, DATA, emu_buf, sizeof(emu_buf)), ==, 0);
            if (with_mem)
                same = same && memcmp(emu_buf, host_buf, sizeof(emu_buf)) == 0;
            if (!same) {
                g_test_message("%s: in rax=%llx rbx=%llx rcx=%llx rdx=%llx fl=%llx mem=%llx", d->text,
                               (unsigned long long)in.r[0], (unsigned long long)in.r[1],
                               (unsigned long long)in.r[2], (unsigned long long)in.r[3],
                               (unsigned long long)in.flags, (unsigned long long)le64_load(buf));
                g_test_message("  host rax=%llx rbx=%llx rcx=%llx rdx=%llx fl=%llx mem=%llx",
                               (unsigned long long)host.r[0], (unsigned long long)host.r[1],
                               (unsigned long long)host.r[2], (unsigned long long)host.r[3],
                               (unsigned long long)(host.flags & fmask),
                               (unsigned long long)le64_load(host_buf));
                g_test_message("  emu  rax=%llx rbx=%llx rcx=%llx rdx=%llx fl=%llx mem=%llx rip=%llx",
                               (unsigned long long)REG(RAX), (unsigned long long)REG(RBX),
                               (unsigned long long)REG(RCX), (unsigned long long)REG(RDX),
                               (unsigned long long)(emu_flags_get(&cpu.s) & fmask),
                               (unsigned long long)le64_load(emu_buf), (unsigned long long)cpu.s.rip);
                for (unsigned b = 0; b < sizeof(emu_buf); b += 8) {
                    if (le64_load(emu_buf + b) != le64_load(host_buf + b))
                        g_test_message("  at +%u: host %llx emu %llx", b,
                                       (unsigned long long)le64_load(host_buf + b),
                                       (unsigned long long)le64_load(emu_buf + b));
                }
                g_test_fail();
                break;
            }
            cases++;
        }
    }
    g_test_message("%u cases compared", cases);
    teardown();
    g_rand_free(rng);
    munmap(page, 4096);
}

static void test_host_differential(void)
{
    host_differential(diff_insns, G_N_ELEMENTS(diff_insns), stub_head, sizeof(stub_head), stub_tail,
                      sizeof(stub_tail), false, false);
}

static void test_host_differential_x87(void)
{
    host_differential(diff_x87_insns, G_N_ELEMENTS(diff_x87_insns), stubm_head, sizeof(stubm_head),
                      stubm_tail, sizeof(stubm_tail), true, false);
}

static void test_host_differential_memory(void)
{
    host_differential(diff_mem_insns, G_N_ELEMENTS(diff_mem_insns), stubm_head, sizeof(stubm_head),
                      stubm_tail, sizeof(stubm_tail), true, false);
}

static void test_host_differential_sse(void)
{
    host_differential(diff_sse_insns, G_N_ELEMENTS(diff_sse_insns), stubm_head, sizeof(stubm_head),
                      stubm_tail, sizeof(stubm_tail), true, true);
}

/* Compiled C: the emu's result must equal the same source's native result. */
static void run_workload(const uint8_t *image, size_t size, uint64_t entry)
{
    static uint8_t native_buf[65536];
    uint64_t expect = emu_workload(native_buf);
    setup_long();
    put(EMU_WORKLOAD_BASE, image, size);
    put8(CODE, 0xf4); /* the return address: hlt */
    put64(STACK_TOP - 8, CODE);
    REG(RSP) = STACK_TOP - 8;
    REG(RDI) = 0x600000;
    cpu.s.rip = entry;
    enum emu_exec_status st;
    while ((st = run()) == EMU_EXEC_BUDGET)
        ;
    g_assert_cmpint(st, ==, EMU_EXEC_HALT);
    g_assert_cmphex(cpu.s.rip, ==, CODE + 1);
    g_assert_cmphex(REG(RAX), ==, expect);
    g_test_message("%llu instructions", (unsigned long long)cpu.icount);
    teardown();
}

static void test_compiled_workload(void)
{
    run_workload(emu_workload_o2, sizeof(emu_workload_o2), EMU_WORKLOAD_O2_ENTRY);
    run_workload(emu_workload_o3, sizeof(emu_workload_o3), EMU_WORKLOAD_O3_ENTRY);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/emu-exec-diff/int/registers", test_host_differential);
    g_test_add_func("/emu-exec-diff/int/memory-operands", test_host_differential_memory);
    g_test_add_func("/emu-exec-diff/x87/sequences", test_host_differential_x87);
    g_test_add_func("/emu-exec-diff/sse/sequences", test_host_differential_sse);
    g_test_add_func("/emu-exec-diff/compiled-c-workload", test_compiled_workload);
    return g_test_run();
}
