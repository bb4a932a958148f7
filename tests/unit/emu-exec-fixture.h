/* Fixture shared by the emu interpreter tests (test-emu-exec, test-emu-exec-diff): guest memory layout, CPU
 * set-ups, memory accessors and the recording test doubles of the backend services. */
#ifndef DESKVM_EMU_EXEC_FIXTURE_H
#define DESKVM_EMU_EXEC_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "emu/cpu.h"
#include "machine.h"

#define RAM_SIZE (16u << 20)
#define GDT 0x500
#define PML4 0x1000
#define PDPT 0x2000
#define PD 0x3000
#define PT 0x5000 /* 4 KiB pages for 0x200000-0x3fffff */
#define IDT 0x6000
#define HANDLERS 0x8000 /* vector v at HANDLERS + 16 * v */
#define STACK_TOP 0x80000
#define CODE 0x100000
#define DATA 0x180000
#define UNMAPPED 0x210000 /* not present */
#define READ_ONLY 0x211000

#define ATTR_CODE64 (0x9b | EMU_SEG_L | EMU_SEG_G)
#define ATTR_CODE32 (0x9b | EMU_SEG_DB | EMU_SEG_G)
#define ATTR_DATA32 (0x93 | EMU_SEG_DB | EMU_SEG_G)

/* What the test doubles of the backend services saw and will answer. */
struct emu_test_backend {
    int irq_vector; /* what the interrupt controller hands out next, -1: nothing */
    unsigned acks;
    bool nmi;
    unsigned nout;
    uint16_t out_port[8];
    unsigned out_size[8];
    uint32_t out_value[8];
    uint32_t in_value;
    unsigned msr_writes;
};

extern struct emu_test_backend tb;
extern struct machine tmach;
extern struct emu_cpu cpu;

#define REG(r) (cpu.s.regs[EMU_##r])

void put(uint64_t gpa, const void *data, size_t n);
void put8(uint64_t gpa, uint8_t v);
void put32(uint64_t gpa, uint32_t v);
void put64(uint64_t gpa, uint64_t v);
uint64_t get(uint64_t gpa, unsigned size);
void set_seg(unsigned r, uint16_t sel, uint64_t base, uint32_t limit, uint16_t attr);
void setup(void);
void teardown(void);
void setup_long(void);
void setup_prot32(void);
void setup_real(void);
enum emu_exec_status run(void);
void enter_user_mode(void);
enum emu_exec_status resume(void);
void load_run(const void *code, size_t n);
void assert_exception64(unsigned vector, bool has_error, uint64_t error, uint64_t rip);
bool under_valgrind(void);

#endif
