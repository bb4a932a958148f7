/* Guest CPU speed probe for benchmarks: runs a fixed loop of integer instructions (8 per iteration: ALU, multiply,
 * shift, branch) and prints how many million instructions per second the CPU executed, measured with the guest's
 * own monotonic clock. Usage: guest-mips [iterations] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define INSNS_PER_ITERATION 8

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t iterations = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000ULL;
    if (iterations == 0)
        iterations = 1;
    uint64_t a = 1, b = 3, n = iterations;
    double t0 = now_s();
    __asm__ volatile("1:\n\t"
                     "add %[b], %[a]\n\t"
                     "xor $0x55, %[b]\n\t"
                     "imul $3, %[a], %[a]\n\t"
                     "shl $1, %[b]\n\t"
                     "or %[a], %[b]\n\t"
                     "sub $7, %[a]\n\t"
                     "dec %[n]\n\t"
                     "jnz 1b"
                     : [a] "+r"(a), [b] "+r"(b), [n] "+r"(n)
                     :
                     : "cc");
    double secs = now_s() - t0;
    double mips = (double)iterations * INSNS_PER_ITERATION / secs / 1e6;
    printf("DESKVM-MIPS: iterations=%llu seconds=%.3f mips=%.1f check=%llx\n", (unsigned long long)iterations, secs,
           mips, (unsigned long long)(a ^ b));
    return 0;
}
