/* Fixture of the emu interpreter tests: test doubles of the backend services (emu.c), a machine with guest
 * RAM, page tables, GDT and IDT, and CPU set-ups for long, protected and real mode. */
#include "emu-exec-fixture.h"

#include <string.h>

#include <glib.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

#include "device_harness.h"
#include "emu/flags.h"

/* ---- test doubles of the backend services (emu.c) ---- */

struct emu_test_backend tb;

int emu_cpu_acknowledge_interrupt(struct emu_cpu *c)
{
    (void)c;
    int v = tb.irq_vector;
    tb.irq_vector = -1;
    if (v >= 0)
        tb.acks++;
    return v;
}

bool emu_cpu_take_nmi(struct emu_cpu *c)
{
    (void)c;
    bool n = tb.nmi;
    tb.nmi = false;
    return n;
}

bool emu_cpu_handle_init_sipi(struct emu_cpu *c)
{
    (void)c;
    return false;
}

void emu_cpuid(struct emu_cpu *c, uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    (void)c;
    out[0] = leaf;
    out[1] = leaf ^ 0x5555;
    out[2] = subleaf + 0x11;
    out[3] = 0x22;
}

bool emu_msr_read(struct emu_cpu *c, uint32_t msr, uint64_t *value)
{
    if (msr == 0xc0000080) {
        *value = c->s.efer;
        return true;
    }
    if (msr == 0x10) {
        *value = 0x123456789ull;
        return true;
    }
    return false;
}

bool emu_msr_write(struct emu_cpu *c, uint32_t msr, uint64_t value)
{
    tb.msr_writes++;
    if (msr != 0xc0000080)
        return false;
    c->s.efer = (value & (EMU_EFER_SCE | EMU_EFER_LME | EMU_EFER_NXE)) | (c->s.efer & EMU_EFER_LMA);
    return true;
}

uint64_t emu_read_tsc(struct emu_cpu *c)
{
    (void)c;
    return 0x1122334455ull;
}

uint32_t emu_port_in(struct emu_cpu *c, uint16_t port, unsigned size)
{
    (void)c;
    (void)port;
    return tb.in_value & (uint32_t)(size == 4 ? ~0u : (1u << (8 * size)) - 1);
}

void emu_port_out(struct emu_cpu *c, uint16_t port, unsigned size, uint32_t value)
{
    (void)c;
    if (tb.nout < G_N_ELEMENTS(tb.out_port)) {
        tb.out_port[tb.nout] = port;
        tb.out_size[tb.nout] = size;
        tb.out_value[tb.nout] = value;
        tb.nout++;
    }
}

uint64_t emu_cpu_read_cr8(struct emu_cpu *c)
{
    (void)c;
    return 0;
}

void emu_cpu_write_cr8(struct emu_cpu *c, uint64_t value)
{
    (void)c;
    (void)value;
}

/* ---- fixture ---- */

struct machine tmach;
struct emu_cpu cpu;

void put(uint64_t gpa, const void *data, size_t n)
{
    g_assert_cmpint(guest_mem_write(&tmach.mem, gpa, data, n), ==, 0);
}

void put8(uint64_t gpa, uint8_t v)
{
    put(gpa, &v, 1);
}

void put32(uint64_t gpa, uint32_t v)
{
    put(gpa, &v, 4);
}

void put64(uint64_t gpa, uint64_t v)
{
    put(gpa, &v, 8);
}

uint64_t get(uint64_t gpa, unsigned size)
{
    uint64_t v = 0;
    g_assert_cmpint(guest_mem_read(&tmach.mem, gpa, &v, size), ==, 0);
    return v;
}

void set_seg(unsigned r, uint16_t sel, uint64_t base, uint32_t limit, uint16_t attr)
{
    cpu.s.seg[r] = (struct emu_segment){.base = base, .limit = limit, .selector = sel, .attr = attr};
}

static void handlers_64(void)
{
    static const uint8_t plain[] = {0xf4, 0x48, 0xcf}; /* hlt; iretq */
    static const uint8_t with_error[] = {0xf4, 0x48, 0x83, 0xc4,
                                         0x08, 0x48, 0xcf}; /* hlt; add rsp,8; iretq */
    for (unsigned v = 0; v < 256; v++) {
        uint64_t h = HANDLERS + 16 * v;
        bool err = v == 8 || (v >= 10 && v <= 14) || v == 17;
        put(h, err ? with_error : plain, err ? sizeof(with_error) : sizeof(plain));
        uint64_t lo = (h & 0xffff) | 0x08ull << 16 | 0x8eull << 40 | ((h >> 16) & 0xffff) << 48;
        put64(IDT + 16 * v, lo);
        put64(IDT + 16 * v + 8, h >> 32);
    }
}

static void handlers_32(void)
{
    static const uint8_t plain[] = {0xf4, 0xcf};                        /* hlt; iretd */
    static const uint8_t with_error[] = {0xf4, 0x83, 0xc4, 0x04, 0xcf}; /* hlt; add esp,4; iretd */
    for (unsigned v = 0; v < 256; v++) {
        uint64_t h = HANDLERS + 16 * v;
        bool err = v == 8 || (v >= 10 && v <= 14) || v == 17;
        put(h, err ? with_error : plain, err ? sizeof(with_error) : sizeof(plain));
        put64(IDT + 8 * v, (h & 0xffff) | 0x18ull << 16 | 0x8eull << 40 | ((h >> 16) & 0xffff) << 48);
    }
}

void setup(void)
{
    memset(&cpu, 0, sizeof(cpu));
    memset(&tb, 0, sizeof(tb));
    tb.irq_vector = -1;
    dh_machine_init(&tmach, NULL, 0, 1, RAM_SIZE);
    g_assert_cmpint(emu_mmu_init(&cpu.mmu, &cpu.s, &tmach), ==, 0);
    cpu.m = &tmach;

    /* 08 kernel code64, 10 kernel data, 18 code32, 20 user data, 28 user code64 (the SYSRET layout) */
    static const uint64_t gdt[] = {0,
                                   0x00af9b000000ffffull,
                                   0x00cf93000000ffffull,
                                   0x00cf9b000000ffffull,
                                   0x00cff3000000ffffull,
                                   0x00affb000000ffffull};
    put(GDT, gdt, sizeof(gdt));
    put64(PML4, PDPT | 3);
    put64(PDPT, PD | 3);
    for (unsigned i = 0; i < 8; i++)
        put64(PD + 8 * i, i == 1 ? PT | 3 : ((uint64_t)i << 21) | 0x83);
    for (unsigned j = 0; j < 512; j++)
        put64(PT + 8 * j, (0x200000 + 4096ull * j) | 3);
    put64(PT + 8 * 0x10, 0);             /* UNMAPPED */
    put64(PT + 8 * 0x11, READ_ONLY | 1); /* present, read-only */

    struct emu_state *s = &cpu.s;
    s->rflags = EMU_FLAG_FIXED1;
    s->fx.fcw = 0x37f;
    s->fx.mxcsr = 0x1f80;
    s->gdtr = (struct emu_dtable){GDT, sizeof(gdt) - 1};
    s->tr = (struct emu_segment){.base = 0x7000, .limit = 0x67, .selector = 0x30, .attr = 0x8b};
    s->regs[EMU_RSP] = STACK_TOP;
    s->rip = CODE;
}

void teardown(void)
{
    emu_mmu_destroy(&cpu.mmu);
    dh_machine_fini(&tmach);
}

void setup_long(void)
{
    setup();
    struct emu_state *s = &cpu.s;
    s->cr0 = EMU_CR0_PE | EMU_CR0_MP | EMU_CR0_ET | EMU_CR0_NE | EMU_CR0_WP | EMU_CR0_PG;
    s->cr4 = EMU_CR4_PAE | EMU_CR4_PGE | EMU_CR4_OSFXSR;
    s->efer = EMU_EFER_SCE | EMU_EFER_LME | EMU_EFER_LMA | EMU_EFER_NXE;
    s->cr3 = PML4;
    set_seg(EMU_CS, 0x08, 0, 0xffffffff, ATTR_CODE64);
    for (unsigned r = 0; r < EMU_SEG_COUNT; r++) {
        if (r != EMU_CS)
            set_seg(r, 0x10, 0, 0xffffffff, ATTR_DATA32);
    }
    s->idtr = (struct emu_dtable){IDT, 0xfff};
    handlers_64();
}

void setup_prot32(void)
{
    setup();
    struct emu_state *s = &cpu.s;
    s->cr0 = EMU_CR0_PE | EMU_CR0_ET;
    set_seg(EMU_CS, 0x18, 0, 0xffffffff, ATTR_CODE32);
    for (unsigned r = 0; r < EMU_SEG_COUNT; r++) {
        if (r != EMU_CS)
            set_seg(r, 0x10, 0, 0xffffffff, ATTR_DATA32);
    }
    s->idtr = (struct emu_dtable){IDT, 0x7ff};
    handlers_32();
}

void setup_real(void)
{
    setup();
    struct emu_state *s = &cpu.s;
    s->cr0 = EMU_CR0_ET;
    set_seg(EMU_CS, 0x1000, 0x10000, 0xffff, 0x9b);
    set_seg(EMU_DS, 0x2000, 0x20000, 0xffff, 0x93);
    set_seg(EMU_ES, 0x2000, 0x20000, 0xffff, 0x93);
    set_seg(EMU_FS, 0, 0, 0xffff, 0x93);
    set_seg(EMU_GS, 0, 0, 0xffff, 0x93);
    set_seg(EMU_SS, 0x3000, 0x30000, 0xffff, 0x93);
    s->idtr = (struct emu_dtable){0, 0x3ff};
    s->regs[EMU_RSP] = 0xfffe;
    s->rip = 0;
    static const uint8_t handler[] = {0xf4, 0xcf}; /* hlt; iret */
    for (unsigned v = 0; v < 256; v++) {
        put(HANDLERS + 16 * v, handler, sizeof(handler));
        put32(4 * v, HANDLERS + 16 * v); /* segment 0 */
    }
}

enum emu_exec_status run(void)
{
    return emu_exec(&cpu, 1000000);
}

/* Ring 3 code and stack: the identity pages get U=1, and the TSS an RSP0. */
void enter_user_mode(void)
{
    put64(PML4, PDPT | 7);
    put64(PDPT, PD | 7);
    put64(PD, 0x87);
    set_seg(EMU_CS, 0x2b, 0, 0xffffffff, ATTR_CODE64 | 3 << EMU_SEG_DPL_SHIFT);
    set_seg(EMU_SS, 0x23, 0, 0xffffffff, ATTR_DATA32 | 3 << EMU_SEG_DPL_SHIFT);
    put64(0x7000 + 4, 0x90000);
    put64(IDT + 16 * 3, get(IDT + 16 * 3, 8) | 0x60ull << 40); /* INT3 allowed from ring 3 */
}

/* Continues after a HLT (what the backend does when the HLT is over). */
enum emu_exec_status resume(void)
{
    cpu.s.halted = false;
    return run();
}

void load_run(const void *code, size_t n)
{
    put(CODE, code, n);
    g_assert_cmpint(run(), ==, EMU_EXEC_HALT);
}

/* The CPU stopped in the 64-bit handler of vector, which received the frame [error code] rip cs rflags rsp
 * ss. */
void assert_exception64(unsigned vector, bool has_error, uint64_t error, uint64_t rip)
{
    g_assert_cmphex(cpu.s.rip, ==, HANDLERS + 16 * vector + 1);
    uint64_t sp = REG(RSP);
    if (has_error) {
        g_assert_cmphex(get(sp, 8), ==, error);
        sp += 8;
    }
    g_assert_cmphex(get(sp, 8), ==, rip);
    g_assert_cmphex(get(sp + 8, 8), ==, 0x08);
}

bool under_valgrind(void)
{
#if __has_include(<valgrind/valgrind.h>)
    return RUNNING_ON_VALGRIND;
#else
    return false;
#endif
}
