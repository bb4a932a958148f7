/* Interpreter speed of the emu software CPU without a machine around it: the guest-mips integer loop and the
 * compiled-C workload of the differential tests, run in 64-bit kernel mode; prints million instructions per
 * second of host time. Used by bench_emu_boot.py and while tuning the interpreter.
 * Usage: bench-emu-speed [seconds-per-case] */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "emu-exec-fixture.h"
#include "emu-exec-workload.h"
#include "emu-workload.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The loop of tests/guest/programs/guest-mips.c: 8 instructions per iteration, then HLT. */
static const uint8_t mips_loop[] = {
    0x48, 0x01, 0xd8,       /* add %rbx,%rax */
    0x48, 0x83, 0xf3, 0x55, /* xor $0x55,%rbx */
    0x48, 0x6b, 0xc0, 0x03, /* imul $3,%rax,%rax */
    0x48, 0xd1, 0xe3,       /* shl %rbx */
    0x48, 0x09, 0xc3,       /* or %rax,%rbx */
    0x48, 0x83, 0xe8, 0x07, /* sub $7,%rax */
    0x48, 0xff, 0xc9,       /* dec %rcx */
    0x75, 0xe6,             /* jnz 0 */
    0xf4,                   /* hlt */
};

static enum emu_exec_status run_to_halt(void)
{
    enum emu_exec_status st;
    while ((st = emu_exec(&cpu, 1u << 24)) == EMU_EXEC_BUDGET)
        ;
    return st;
}

static double bench_loop(double budget)
{
    uint64_t insns = 0;
    double t0 = now_s(), t;
    do {
        setup_long();
        put(CODE, mips_loop, sizeof(mips_loop));
        REG(RAX) = 1;
        REG(RBX) = 3;
        REG(RCX) = 2000000;
        uint64_t before = cpu.icount;
        if (run_to_halt() != EMU_EXEC_HALT) {
            fprintf(stderr, "bench-emu-speed: the loop did not end in HLT\n");
            exit(1);
        }
        insns += cpu.icount - before;
        teardown();
        t = now_s();
    } while (t - t0 < budget);
    return (double)insns / (t - t0) / 1e6;
}

static double bench_workload(double budget)
{
    static uint8_t native_buf[65536];
    uint64_t expect = emu_workload(native_buf), insns = 0;
    double t0 = now_s(), t;
    do {
        setup_long();
        put(EMU_WORKLOAD_BASE, emu_workload_o2, sizeof(emu_workload_o2));
        put8(CODE, 0xf4);
        put64(STACK_TOP - 8, CODE);
        REG(RSP) = STACK_TOP - 8;
        REG(RDI) = 0x600000;
        cpu.s.rip = EMU_WORKLOAD_O2_ENTRY;
        uint64_t before = cpu.icount;
        if (run_to_halt() != EMU_EXEC_HALT || REG(RAX) != expect) {
            fprintf(stderr, "bench-emu-speed: the workload computed a wrong result\n");
            exit(1);
        }
        insns += cpu.icount - before;
        teardown();
        t = now_s();
    } while (t - t0 < budget);
    return (double)insns / (t - t0) / 1e6;
}

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 2.0;
    printf("integer-loop-mips %.1f\n", bench_loop(budget));
    printf("compiled-workload-mips %.1f\n", bench_workload(budget));
    return 0;
}
