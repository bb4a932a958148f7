/* Unit tests of the emu MMU: page walks in every paging mode with exact #PF error codes and CR2, A/D bits,
 * the software TLB and its flushes, page-crossing accesses, MMIO, ROM and the self-modifying-code hook. Page
 * tables are built in the guest RAM of a real machine. */
#include <string.h>

#include <glib.h>

#include "device_harness.h"
#include "emu/mmu.h"
#include "machine.h"

#define RAM_SIZE (32ull << 20)
#define ROM_BASE 0xFFFF0000ull
#define ROM_SIZE 0x10000u
#define MMIO_BASE 0xFEB00000ull
#define MMIO_UNCLAIMED 0xFEC80000ull

/* Paging-structure entry bits. */
#define P 0x1ull
#define RW 0x2ull
#define US 0x4ull
#define A 0x20ull
#define D 0x40ull
#define PS 0x80ull
#define G 0x100ull
#define XD (1ull << 63)

#define SZ_4K 0x1000ull
#define SZ_2M 0x200000ull
#define SZ_4M 0x400000ull
#define SZ_1G 0x40000000ull

static struct machine m;
static struct emu_state cpu;
static struct emu_mmu mmu;
static uint64_t next_table;

/* ---- a fake MMIO device whose "memory" holds byte (offset ^ 0x5A) ---- */

struct mmio_access {
    uint64_t offset, value;
    unsigned size;
    bool write;
};
static struct mmio_access dev_log[32];
static unsigned dev_n;

static uint64_t pattern(uint64_t off, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)(((off + i) ^ 0x5A) & 0xFF) << (8 * i);
    return v;
}

static uint64_t dev_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque;
    g_assert_cmpuint(dev_n, <, G_N_ELEMENTS(dev_log));
    dev_log[dev_n++] = (struct mmio_access){.offset = offset, .size = size};
    return pattern(offset, size);
}

static void dev_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    (void)opaque;
    g_assert_cmpuint(dev_n, <, G_N_ELEMENTS(dev_log));
    dev_log[dev_n++] = (struct mmio_access){.offset = offset, .value = value, .size = size, .write = true};
}

static const struct io_ops dev_ops = {dev_read, dev_write};

static void assert_dev(unsigned i, bool write, uint64_t offset, unsigned size)
{
    g_assert_cmpuint(i, <, dev_n);
    g_assert_cmpint(dev_log[i].write, ==, write);
    g_assert_cmphex(dev_log[i].offset, ==, offset);
    g_assert_cmpuint(dev_log[i].size, ==, size);
}

/* ---- code-write recorder ---- */

struct code_write {
    uint64_t phys;
    unsigned len;
};
static struct code_write smc_log[16];
static unsigned smc_n;

static void on_code_write(void *opaque, uint64_t phys, unsigned len)
{
    g_assert_true(opaque == &smc_n);
    g_assert_cmpuint(smc_n, <, G_N_ELEMENTS(smc_log));
    smc_log[smc_n++] = (struct code_write){phys, len};
}

/* ---- fixture ---- */

static void setup(void)
{
    memset(&cpu, 0, sizeof(cpu));
    dh_machine_init(&m, NULL, 0, 1, RAM_SIZE);
    static uint8_t rom[ROM_SIZE];
    for (unsigned i = 0; i < ROM_SIZE; i++)
        rom[i] = (uint8_t)(i * 7 + 3);
    g_assert_cmpint(guest_memory_add_rom(&m.mem, ROM_BASE, rom, sizeof(rom)), ==, 0);
    g_assert_cmpint(io_bus_register(&m.mmio, MMIO_BASE, 0x1000, &dev_ops, NULL, "fake", NULL), ==, 0);
    g_assert_cmpint(emu_mmu_init(&mmu, &cpu, &m), ==, 0);
    emu_mmu_set_code_write_handler(&mmu, on_code_write, &smc_n);
    next_table = 0x100000;
    dev_n = 0;
    smc_n = 0;
}

static void teardown(void)
{
    emu_mmu_destroy(&mmu);
    dh_machine_fini(&m);
}

static uint64_t p64(uint64_t gpa)
{
    uint64_t v;
    g_assert_cmpint(guest_mem_read_u64(&m.mem, gpa, &v), ==, 0);
    return v;
}

static void set64(uint64_t gpa, uint64_t v)
{
    g_assert_cmpint(guest_mem_write_u64(&m.mem, gpa, v), ==, 0);
}

static uint32_t p32(uint64_t gpa)
{
    uint32_t v;
    g_assert_cmpint(guest_mem_read_u32(&m.mem, gpa, &v), ==, 0);
    return v;
}

static void set32(uint64_t gpa, uint32_t v)
{
    g_assert_cmpint(guest_mem_write_u32(&m.mem, gpa, v), ==, 0);
}

static uint64_t alloc_page(void)
{
    uint64_t p = next_table;
    next_table += SZ_4K;
    g_assert_cmpuint(next_table, <=, 0x800000);
    g_assert_cmpint(guest_mem_fill(&m.mem, p, 0, SZ_4K), ==, 0);
    return p;
}

static void set_cpl(unsigned cpl)
{
    cpu.seg[EMU_CS].attr = (uint16_t)((cpu.seg[EMU_CS].attr & ~EMU_SEG_DPL_MASK) | cpl << EMU_SEG_DPL_SHIFT);
}

static void mode_long(void)
{
    cpu.cr0 = EMU_CR0_PE | EMU_CR0_PG | EMU_CR0_WP;
    cpu.cr4 = EMU_CR4_PAE | EMU_CR4_PGE;
    cpu.efer = EMU_EFER_LME | EMU_EFER_LMA | EMU_EFER_NXE;
    cpu.seg[EMU_CS].attr = EMU_SEG_P | EMU_SEG_S | EMU_SEG_L | 0xB;
    cpu.cr3 = alloc_page();
    emu_tlb_flush_all(&mmu);
}

static void mode_pae(void)
{
    cpu.cr0 = EMU_CR0_PE | EMU_CR0_PG | EMU_CR0_WP;
    cpu.cr4 = EMU_CR4_PAE;
    cpu.efer = EMU_EFER_NXE;
    cpu.seg[EMU_CS].attr = EMU_SEG_P | EMU_SEG_S | EMU_SEG_DB | 0xB;
    cpu.cr3 = alloc_page();
    emu_tlb_flush_all(&mmu);
}

static void mode_32(void)
{
    cpu.cr0 = EMU_CR0_PE | EMU_CR0_PG | EMU_CR0_WP;
    cpu.cr4 = EMU_CR4_PSE;
    cpu.efer = 0;
    cpu.seg[EMU_CS].attr = EMU_SEG_P | EMU_SEG_S | EMU_SEG_DB | 0xB;
    cpu.cr3 = alloc_page();
    emu_tlb_flush_all(&mmu);
}

/* The address of the 4-level entry for lin at level (4 = PML4E ... 1 = PTE), creating missing tables with
 * P|RW|US on the way down. */
static uint64_t lm_entry(uint64_t lin, int level)
{
    uint64_t table = cpu.cr3 & ~0xFFFull;
    for (int l = 4;; l--) {
        uint64_t ea = table + ((lin >> (12 + 9 * (l - 1))) & 511) * 8;
        if (l == level)
            return ea;
        uint64_t e = p64(ea);
        if (!(e & P)) {
            e = alloc_page() | P | RW | US;
            set64(ea, e);
        }
        table = e & 0xFFFFFFFFF000ull;
    }
}

/* Maps lin to phys with a leaf of the given size and flags; returns the leaf entry's address. */
static uint64_t lm_map(uint64_t lin, uint64_t phys, uint64_t size, uint64_t flags)
{
    int level = size == SZ_1G ? 3 : size == SZ_2M ? 2 : 1;
    uint64_t ea = lm_entry(lin, level);
    set64(ea, phys | flags | (level > 1 ? PS : 0));
    return ea;
}

/* PAE: PDPTEs get P only (their other low bits are reserved). */
static uint64_t pae_entry(uint64_t lin, int level)
{
    uint64_t ea = (cpu.cr3 & 0xFFFFFFE0u) + ((lin >> 30) & 3) * 8;
    if (level == 3)
        return ea;
    uint64_t e = p64(ea);
    if (!(e & P)) {
        e = alloc_page() | P;
        set64(ea, e);
    }
    ea = (e & 0xFFFFFF000ull) + ((lin >> 21) & 511) * 8;
    if (level == 2)
        return ea;
    e = p64(ea);
    if (!(e & P)) {
        e = alloc_page() | P | RW | US;
        set64(ea, e);
    }
    return (e & 0xFFFFFF000ull) + ((lin >> 12) & 511) * 8;
}

static uint64_t pae_map(uint64_t lin, uint64_t phys, uint64_t size, uint64_t flags)
{
    uint64_t ea = pae_entry(lin, size == SZ_2M ? 2 : 1);
    set64(ea, phys | flags | (size == SZ_2M ? PS : 0));
    return ea;
}

static uint64_t m32_entry(uint64_t lin, int level)
{
    uint64_t ea = (cpu.cr3 & 0xFFFFF000u) + ((lin >> 22) & 1023) * 4;
    if (level == 2)
        return ea;
    uint32_t e = p32(ea);
    if (!(e & P)) {
        e = (uint32_t)(alloc_page() | P | RW | US);
        set32(ea, e);
    }
    return (e & 0xFFFFF000u) + ((lin >> 12) & 1023) * 4;
}

static uint64_t m32_map(uint64_t lin, uint64_t phys, uint64_t size, uint64_t flags)
{
    uint64_t ea = m32_entry(lin, size == SZ_4M ? 2 : 1);
    set32(ea, (uint32_t)(phys | flags | (size == SZ_4M ? PS : 0)));
    return ea;
}

/* ---- access helpers ---- */

static uint64_t rd(uint64_t lin, unsigned size)
{
    uint64_t v = 0;
    struct emu_fault f;
    g_assert_true(emu_mem_read(&mmu, lin, size, 0, &v, &f));
    return v;
}

static void wr(uint64_t lin, unsigned size, uint64_t v)
{
    struct emu_fault f;
    g_assert_true(emu_mem_write(&mmu, lin, size, 0, &v, &f));
}

static void assert_pf(struct emu_fault f, uint32_t ec, uint64_t cr2)
{
    g_assert_cmpuint(f.vector, ==, EMU_EXC_PF);
    g_assert_cmphex(f.error_code, ==, ec);
    g_assert_cmphex(f.cr2, ==, cr2);
}

static void rd_faults(uint64_t lin, unsigned size, unsigned access, uint32_t ec, uint64_t cr2)
{
    uint8_t buf[16];
    struct emu_fault f;
    g_assert_false(emu_mem_read(&mmu, lin, size, access, buf, &f));
    assert_pf(f, ec, cr2);
}

static void wr_faults(uint64_t lin, unsigned size, uint32_t ec, uint64_t cr2)
{
    uint8_t buf[16];
    memset(buf, 0xEE, sizeof(buf));
    struct emu_fault f;
    g_assert_false(emu_mem_write(&mmu, lin, size, 0, buf, &f));
    assert_pf(f, ec, cr2);
}

static void fetch_faults(uint64_t lin, uint32_t ec)
{
    struct emu_fetch out;
    struct emu_fault f;
    g_assert_false(emu_mem_fetch(&mmu, lin, &out, &f));
    assert_pf(f, ec, lin);
}

static struct emu_translation xlate(uint64_t lin, unsigned access)
{
    struct emu_translation t;
    struct emu_fault f;
    g_assert_true(emu_mmu_translate(&mmu, lin, access, &t, &f));
    return t;
}

/* ---- tests ---- */

static void test_nopaging_identity(void)
{
    setup();
    cpu.cr0 = EMU_CR0_PE;
    wr(0x5008, 8, 0x1122334455667788ull);
    g_assert_cmphex(p64(0x5008), ==, 0x1122334455667788ull);
    g_assert_cmphex(rd(0x5008, 4), ==, 0x55667788);
    struct emu_translation t = xlate(0x5008, EMU_ACCESS_WRITE);
    g_assert_cmphex(t.phys, ==, 0x5008);
    g_assert_cmphex(t.page_size, ==, SZ_4K);
    g_assert_cmpuint(t.perms, ==, EMU_PERM_WRITE | EMU_PERM_USER | EMU_PERM_EXEC);
    /* outside long mode linear addresses are 32 bits */
    g_assert_cmphex(rd(0x100005008ull, 8), ==, 0x1122334455667788ull);
    teardown();
}

static void test_32bit_4k_4m(void)
{
    setup();
    mode_32();
    m32_map(0x40001000, 0x800000, SZ_4K, P | RW);
    set64(0x800010, 0xCAFEF00DDEADBEEFull);
    g_assert_cmphex(rd(0x40001010, 8), ==, 0xCAFEF00DDEADBEEFull);
    struct emu_translation t = xlate(0x40001010, EMU_ACCESS_READ);
    g_assert_cmphex(t.phys, ==, 0x800010);
    g_assert_cmphex(t.page_size, ==, SZ_4K);
    g_assert_cmpuint(t.perms, ==, EMU_PERM_WRITE | EMU_PERM_EXEC);

    m32_map(0x80000000, 0x1000000, SZ_4M, P | RW);
    set32(0x1123454, 0x600DF00D);
    g_assert_cmphex(rd(0x80123454, 4), ==, 0x600DF00D);
    t = xlate(0x80123454, EMU_ACCESS_READ);
    g_assert_cmphex(t.phys, ==, 0x1123454);
    g_assert_cmphex(t.page_size, ==, SZ_4M);

    /* PSE-36: PDE bits 20:13 are physical bits 39:32 */
    set32(m32_entry(0xC0000000, 2), 0x00400000u | 0x12u << 13 | (uint32_t)(P | PS));
    g_assert_cmphex(xlate(0xC0012345, EMU_ACCESS_READ).phys, ==, 0x1200412345ull);

    /* without CR4.PSE the PS bit is ignored: the PDE points to a page table (here all zeros) */
    cpu.cr4 &= ~EMU_CR4_PSE;
    emu_tlb_flush_all(&mmu);
    rd_faults(0x80123454, 4, 0, 0, 0x80123454);
    teardown();
}

static void test_pae_4k_2m(void)
{
    setup();
    mode_pae();
    uint64_t pte = pae_map(0x00401000, 0x801000, SZ_4K, P | RW);
    uint64_t pde2m = pae_map(0x40200000, 0x1200000, SZ_2M, P | RW);
    set64(0x801008, 0x0102030405060708ull);
    set64(0x1234560, 0x1111222233334444ull);
    uint64_t pdpte0 = p64(pae_entry(0x00401000, 3));
    g_assert_cmphex(rd(0x00401008, 8), ==, 0x0102030405060708ull);
    g_assert_cmphex(rd(0x40234560, 8), ==, 0x1111222233334444ull);
    g_assert_cmphex(xlate(0x40234560, 0).page_size, ==, SZ_2M);
    /* the PDPTE has no accessed bit (bit 5 is reserved there); the PDE and PTE get theirs */
    g_assert_cmphex(p64(pae_entry(0x00401000, 3)), ==, pdpte0);
    g_assert_cmphex(p64(pae_entry(0x00401000, 2)) & A, ==, A);
    g_assert_cmphex(p64(pte), ==, 0x801000 | P | RW | A);
    g_assert_cmphex(p64(pde2m), ==, 0x1200000 | P | RW | PS | A);
    /* the PDPTE is walked, not cached, so a second access still works */
    emu_tlb_flush_all(&mmu);
    g_assert_cmphex(rd(0x00401008, 8), ==, 0x0102030405060708ull);

    /* reserved bits: bit 13 of a 2 MiB PDE; R/W in a PDPTE */
    set64(pde2m, p64(pde2m) | (1ull << 13));
    emu_tlb_flush_all(&mmu);
    rd_faults(0x40234560, 8, 0, EMU_PF_P | EMU_PF_RSVD, 0x40234560);
    g_assert_true(emu_mmu_pdptes_valid(&mmu, cpu.cr3));
    set64(pae_entry(0x00401000, 3), pdpte0 | RW);
    g_assert_false(emu_mmu_pdptes_valid(&mmu, cpu.cr3));
    rd_faults(0x00401008, 8, 0, EMU_PF_P | EMU_PF_RSVD, 0x00401008);
    teardown();
}

static void test_long_page_sizes(void)
{
    setup();
    mode_long();
    lm_map(0x7F0000001000ull, 0x802000, SZ_4K, P | RW | US);
    lm_map(0xFFFF888000000000ull, 0, SZ_1G, P | RW);
    lm_map(0xFFFFFFFF81000000ull, 0x1000000, SZ_2M, P | RW);
    lm_map(0x200000, 0x200000, SZ_2M, P | RW); /* identity */
    set64(0x802ff8, 0xA1A2A3A4A5A6A7A8ull);
    set64(0x1001230, 0xB1B2B3B4B5B6B7B8ull);
    set64(0x234560, 0xC1C2C3C4C5C6C7C8ull);
    g_assert_cmphex(rd(0x7F0000001FF8ull, 8), ==, 0xA1A2A3A4A5A6A7A8ull);
    g_assert_cmphex(rd(0xFFFF888000802FF8ull, 8), ==, 0xA1A2A3A4A5A6A7A8ull);
    g_assert_cmphex(rd(0xFFFFFFFF81001230ull, 8), ==, 0xB1B2B3B4B5B6B7B8ull);
    g_assert_cmphex(rd(0x234560, 8), ==, 0xC1C2C3C4C5C6C7C8ull);
    struct emu_translation t = xlate(0xFFFF888012345678ull, 0);
    g_assert_cmphex(t.phys, ==, 0x12345678);
    g_assert_cmphex(t.page_size, ==, SZ_1G);
    g_assert_cmpuint(t.perms, ==, EMU_PERM_WRITE | EMU_PERM_EXEC);
    t = xlate(0xFFFFFFFF811FFFFFull, 0);
    g_assert_cmphex(t.phys, ==, 0x11FFFFF);
    g_assert_cmphex(t.page_size, ==, SZ_2M);
    t = xlate(0x7F0000001FF8ull, 0);
    g_assert_cmphex(t.phys, ==, 0x802FF8);
    g_assert_cmphex(t.page_size, ==, SZ_4K);
    g_assert_cmpuint(t.perms, ==, EMU_PERM_WRITE | EMU_PERM_USER | EMU_PERM_EXEC);
    teardown();
}

static void test_not_present(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x7F0000201000ull;
    lm_map(lin, 0x800000, SZ_4K, P | RW | US);
    rd_faults(0x7E0000000000ull, 8, 0, 0, 0x7E0000000000ull);   /* PML4E */
    rd_faults(0x7F0040000000ull, 8, 0, 0, 0x7F0040000000ull);   /* PDPTE */
    rd_faults(0x7F0000400000ull, 8, 0, 0, 0x7F0000400000ull);   /* PDE */
    rd_faults(lin + SZ_4K + 0x10, 8, 0, 0, lin + SZ_4K + 0x10); /* PTE */
    wr_faults(lin + SZ_4K + 0x10, 4, EMU_PF_W, lin + SZ_4K + 0x10);
    set_cpl(3);
    wr_faults(lin + SZ_4K + 0x10, 4, EMU_PF_W | EMU_PF_U, lin + SZ_4K + 0x10);
    fetch_faults(lin + SZ_4K, EMU_PF_U | EMU_PF_I);
    set_cpl(0);
    fetch_faults(lin + SZ_4K, EMU_PF_I);
    /* the mapped page itself works */
    wr(lin, 8, 42);
    g_assert_cmphex(p64(0x800000), ==, 42);
    teardown();
}

static void test_write_protect(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x10000, pte = lm_map(lin, 0x800000, SZ_4K, P | US);
    set_cpl(3);
    wr_faults(lin, 4, EMU_PF_P | EMU_PF_W | EMU_PF_U, lin);
    set_cpl(0);
    wr_faults(lin + 8, 4, EMU_PF_P | EMU_PF_W, lin + 8);
    g_assert_cmphex(p64(pte), ==, 0x800000 | P | US); /* faulting accesses leave A/D alone */
    /* with CR0.WP clear the supervisor writes read-only pages (and sets D), the user still cannot */
    cpu.cr0 &= ~EMU_CR0_WP;
    emu_tlb_flush_all(&mmu);
    wr(lin + 8, 4, 0x12345678);
    g_assert_cmphex(p64(0x800008), ==, 0x12345678);
    g_assert_cmphex(p64(pte), ==, 0x800000 | P | US | A | D);
    set_cpl(3);
    wr_faults(lin, 4, EMU_PF_P | EMU_PF_W | EMU_PF_U, lin);
    /* read-only at an upper level wins over a writable PTE */
    cpu.cr0 |= EMU_CR0_WP;
    emu_tlb_flush_all(&mmu);
    uint64_t lin2 = 0x40000000ull;
    lm_map(lin2, 0x801000, SZ_4K, P | RW | US);
    uint64_t pdpte = lm_entry(lin2, 3);
    set64(pdpte, p64(pdpte) & ~RW);
    wr_faults(lin2, 8, EMU_PF_P | EMU_PF_W | EMU_PF_U, lin2);
    g_assert_cmphex(rd(lin2, 8), ==, 0);
    teardown();
}

static void test_user_supervisor(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x10000;
    lm_map(lin, 0x800000, SZ_4K, P | RW);
    set64(0x800000, 77);
    set_cpl(3);
    rd_faults(lin, 8, 0, EMU_PF_P | EMU_PF_U, lin);
    fetch_faults(lin, EMU_PF_P | EMU_PF_U | EMU_PF_I);
    /* an implicit supervisor access (e.g. the IDT during delivery) is allowed from CPL 3 */
    uint64_t v = 0;
    struct emu_fault f;
    g_assert_true(emu_mem_read(&mmu, lin, 8, EMU_ACCESS_IMPLICIT, &v, &f));
    g_assert_cmpuint(v, ==, 77);
    /* U/S clear at an upper level makes a user PTE supervisor-only */
    uint64_t lin2 = 0x40000000ull;
    lm_map(lin2, 0x801000, SZ_4K, P | RW | US);
    uint64_t pde = lm_entry(lin2, 2);
    set64(pde, p64(pde) & ~US);
    rd_faults(lin2, 8, 0, EMU_PF_P | EMU_PF_U, lin2);
    set_cpl(0);
    g_assert_cmphex(rd(lin2, 8), ==, 0);
    teardown();
}

static void test_nx(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x10000;
    lm_map(lin, 0x800000, SZ_4K, P | RW | US | XD);
    fetch_faults(lin + 5, EMU_PF_P | EMU_PF_I);
    set_cpl(3);
    fetch_faults(lin + 5, EMU_PF_P | EMU_PF_U | EMU_PF_I);
    g_assert_cmphex(rd(lin, 8), ==, 0); /* reading is fine */
    set_cpl(0);
    /* XD at the PML4 level */
    uint64_t lin2 = 0x8000000000ull;
    lm_map(lin2, 0x801000, SZ_4K, P | RW);
    struct emu_fetch out;
    struct emu_fault f;
    g_assert_true(emu_mem_fetch(&mmu, lin2, &out, &f));
    uint64_t pml4e = lm_entry(lin2, 4);
    set64(pml4e, p64(pml4e) | XD);
    emu_tlb_flush_all(&mmu);
    fetch_faults(lin2, EMU_PF_P | EMU_PF_I);
    g_assert_cmpuint(xlate(lin2, 0).perms, ==, EMU_PERM_WRITE);
    /* with EFER.NXE clear, bit 63 is reserved, and I/D is not reported */
    cpu.efer &= ~EMU_EFER_NXE;
    emu_tlb_flush_all(&mmu);
    rd_faults(lin, 8, 0, EMU_PF_P | EMU_PF_RSVD, lin);
    fetch_faults(lin, EMU_PF_P | EMU_PF_RSVD);
    teardown();

    /* 32-bit paging has no XD: NXE set there gives no I/D bit */
    setup();
    mode_32();
    cpu.efer = EMU_EFER_NXE;
    fetch_faults(0x10000, 0);
    teardown();
}

static void test_smep_smap(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x10000;
    lm_map(lin, 0x800000, SZ_4K, P | RW | US);
    set64(0x800000, 99);
    struct emu_fetch out;
    struct emu_fault f;
    g_assert_true(emu_mem_fetch(&mmu, lin, &out, &f));
    cpu.cr4 |= EMU_CR4_SMEP | EMU_CR4_SMAP;
    emu_tlb_flush_all(&mmu);
    fetch_faults(lin, EMU_PF_P | EMU_PF_I);
    rd_faults(lin, 8, 0, EMU_PF_P, lin);
    wr_faults(lin, 8, EMU_PF_P | EMU_PF_W, lin);
    /* EFLAGS.AC lifts SMAP for explicit accesses only, and the TLB keeps the two apart */
    cpu.rflags |= EMU_FLAG_AC;
    g_assert_cmpuint(rd(lin, 8), ==, 99);
    wr(lin, 8, 100);
    rd_faults(lin, 8, EMU_ACCESS_IMPLICIT, EMU_PF_P, lin);
    cpu.rflags &= ~EMU_FLAG_AC;
    rd_faults(lin, 8, 0, EMU_PF_P, lin);
    /* CPL 3 is unaffected */
    set_cpl(3);
    g_assert_cmpuint(rd(lin, 8), ==, 100);
    g_assert_true(emu_mem_fetch(&mmu, lin, &out, &f));
    teardown();
}

static void test_reserved_bits(void)
{
    g_assert_cmpuint(EMU_MAXPHYADDR, ==, 40);
    setup();
    mode_long();
    uint64_t lin = 0x10000, pte = lm_map(lin, 0x800000, SZ_4K, P | RW | US);
    uint64_t pml4e = lm_entry(lin, 4);
    uint64_t e = p64(pml4e);
    set64(pml4e, e | PS);
    rd_faults(lin, 8, 0, EMU_PF_P | EMU_PF_RSVD, lin);
    g_assert_cmphex(p64(pml4e), ==, e | PS); /* no A bit on a faulting walk */
    set64(pml4e, e);
    /* bit 40 is above MAXPHYADDR, bit 51 the last reserved one, bit 52 is ignored */
    set64(pte, 0x800000 | P | RW | US | 1ull << 40);
    set_cpl(3);
    wr_faults(lin, 8, EMU_PF_P | EMU_PF_W | EMU_PF_U | EMU_PF_RSVD, lin);
    set64(pte, 0x800000 | P | RW | US | 1ull << 51);
    rd_faults(lin, 8, 0, EMU_PF_P | EMU_PF_U | EMU_PF_RSVD, lin);
    set64(pte, 0x800000 | P | RW | US | 1ull << 52);
    g_assert_cmphex(rd(lin, 8), ==, 0);
    set_cpl(0);
    /* the low reserved bits of large pages */
    uint64_t pdpte = lm_map(0x40000000ull, 0, SZ_1G, P | RW | 1ull << 13);
    rd_faults(0x40000010ull, 8, 0, EMU_PF_P | EMU_PF_RSVD, 0x40000010ull);
    set64(pdpte, p64(pdpte) & ~(1ull << 13));
    g_assert_cmphex(rd(0x40800000ull, 8), ==, p64(0x800000));
    lm_map(0x80000000ull, 0x200000, SZ_2M, P | RW | 1ull << 20);
    rd_faults(0x80000000ull, 1, 0, EMU_PF_P | EMU_PF_RSVD, 0x80000000ull);
    teardown();

    setup();
    mode_32();
    m32_map(0x80000000, 0x1000000, SZ_4M, P | RW | 1ull << 21);
    rd_faults(0x80000004, 4, 0, EMU_PF_P | EMU_PF_RSVD, 0x80000004);
    teardown();
}

static void test_ad_bits(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x7F0000201000ull;
    uint64_t pte = lm_map(lin, 0x800000, SZ_4K, P | RW | US);
    uint64_t ea[5] = {0, pte, lm_entry(lin, 2), lm_entry(lin, 3), lm_entry(lin, 4)};
    uint64_t orig[5];
    for (int l = 1; l <= 4; l++)
        orig[l] = p64(ea[l]);
    rd(lin, 8);
    for (int l = 1; l <= 4; l++)
        g_assert_cmphex(p64(ea[l]), ==, orig[l] | A);
    wr(lin, 8, 5);
    g_assert_cmphex(p64(pte), ==, orig[1] | A | D);
    for (int l = 2; l <= 4; l++)
        g_assert_cmphex(p64(ea[l]), ==, orig[l] | A);

    /* a faulting write (read-only page, WP) on fresh tables sets nothing anywhere */
    uint64_t lin2 = 0x7E0000000000ull;
    uint64_t pte2 = lm_map(lin2, 0x801000, SZ_4K, P | US);
    uint64_t ea2[5] = {0, pte2, lm_entry(lin2, 2), lm_entry(lin2, 3), lm_entry(lin2, 4)};
    for (int l = 1; l <= 4; l++)
        orig[l] = p64(ea2[l]);
    wr_faults(lin2, 8, EMU_PF_P | EMU_PF_W, lin2);
    for (int l = 1; l <= 4; l++)
        g_assert_cmphex(p64(ea2[l]), ==, orig[l]);
    /* a fetch sets A but not D */
    struct emu_fetch out;
    struct emu_fault f;
    g_assert_true(emu_mem_fetch(&mmu, lin2, &out, &f));
    g_assert_cmphex(p64(pte2), ==, orig[1] | A);

    /* a 2 MiB leaf gets D in the PDE */
    uint64_t pde = lm_map(0xFFFFFFFF81000000ull, 0x1000000, SZ_2M, P | RW);
    wr(0xFFFFFFFF81000010ull, 4, 1);
    g_assert_cmphex(p64(pde), ==, 0x1000000 | P | RW | PS | A | D);
    /* a probe translation sets nothing */
    uint64_t pte3 = lm_map(0x20000, 0x802000, SZ_4K, P | RW);
    struct emu_translation t = xlate(0x20000, EMU_ACCESS_WRITE | EMU_ACCESS_PROBE);
    g_assert_false(t.dirty);
    g_assert_cmphex(p64(pte3), ==, 0x802000 | P | RW);
    teardown();

    setup();
    mode_32();
    uint64_t pte32 = m32_map(0x400000, 0x800000, SZ_4K, P | RW);
    uint64_t pde32 = m32_entry(0x400000, 2);
    uint32_t pde_orig = p32(pde32);
    wr(0x400010, 4, 3);
    g_assert_cmphex(p32(pte32), ==, 0x800000 | P | RW | A | D);
    g_assert_cmphex(p32(pde32), ==, pde_orig | A);
    teardown();
}

static void test_tlb_hit(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x10000, pte = lm_map(lin, 0x800000, SZ_4K, P | RW);
    set64(0x800000, 111);
    set64(0x801000, 222);
    g_assert_cmpuint(rd(lin, 8), ==, 111);
    uint64_t walks = mmu.walks;
    /* without INVLPG the cached translation stays in use */
    set64(pte, 0x801000 | P | RW | A);
    g_assert_cmpuint(rd(lin, 8), ==, 111);
    g_assert_cmpuint(mmu.walks, ==, walks);
    g_assert_true(emu_tlb_host_read(&mmu, EMU_MMU_SUPER, lin, 8) == guest_mem_map_read(&m.mem, 0x800000, 8));
    /* a crossing access is the caller's slow path */
    g_assert_null(emu_tlb_host_read(&mmu, EMU_MMU_SUPER, lin + 4092, 8));
    g_assert_null(emu_tlb_host_read(&mmu, EMU_MMU_USER, lin, 8));
    /* translate always walks */
    g_assert_cmphex(xlate(lin, 0).phys, ==, 0x801000);
    emu_tlb_flush_page(&mmu, lin + 0x123);
    g_assert_cmpuint(rd(lin, 8), ==, 222);
    teardown();
}

static void test_tlb_invlpg_one_page(void)
{
    setup();
    mode_long();
    uint64_t l1 = 0x10000, l2 = 0x11000;
    uint64_t pte1 = lm_map(l1, 0x800000, SZ_4K, P | RW), pte2 = lm_map(l2, 0x801000, SZ_4K, P | RW);
    set64(0x800000, 1);
    set64(0x801000, 2);
    g_assert_cmpuint(rd(l1, 8), ==, 1);
    g_assert_cmpuint(rd(l2, 8), ==, 2);
    set64(pte1, 0x801000 | P | RW);
    set64(pte2, 0x800000 | P | RW);
    emu_tlb_flush_page(&mmu, l1);
    g_assert_cmpuint(rd(l1, 8), ==, 2);
    g_assert_cmpuint(rd(l2, 8), ==, 2);
    emu_tlb_flush_page(&mmu, l2);
    g_assert_cmpuint(rd(l2, 8), ==, 1);
    teardown();
}

static void test_tlb_cr3_keeps_global(void)
{
    setup();
    mode_long();
    uint64_t lg = 0xFFFFFFFF80000000ull, ln = 0x10000;
    uint64_t pteg = lm_map(lg, 0x800000, SZ_4K, P | RW | G), pten = lm_map(ln, 0x800000, SZ_4K, P | RW);
    set64(0x800000, 1);
    set64(0x801000, 2);
    g_assert_cmpuint(rd(lg, 8), ==, 1);
    g_assert_cmpuint(rd(ln, 8), ==, 1);
    g_assert_true(xlate(lg, 0).global);
    g_assert_false(xlate(ln, 0).global);
    set64(pteg, 0x801000 | P | RW | G);
    set64(pten, 0x801000 | P | RW);
    emu_tlb_flush_nonglobal(&mmu);
    g_assert_cmpuint(rd(lg, 8), ==, 1);
    g_assert_cmpuint(rd(ln, 8), ==, 2);
    emu_tlb_flush_page(&mmu, lg); /* INVLPG drops global entries too */
    g_assert_cmpuint(rd(lg, 8), ==, 2);

    /* with CR4.PGE clear the G bit means nothing */
    cpu.cr4 &= ~EMU_CR4_PGE;
    emu_tlb_flush_all(&mmu);
    g_assert_false(xlate(lg, 0).global);
    g_assert_cmpuint(rd(lg, 8), ==, 2);
    set64(pteg, 0x800000 | P | RW | G);
    emu_tlb_flush_nonglobal(&mmu);
    g_assert_cmpuint(rd(lg, 8), ==, 1);
    teardown();
}

static void test_tlb_read_entry_needs_dirty(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x10000, pte = lm_map(lin, 0x800000, SZ_4K, P | RW);
    rd(lin, 8);
    g_assert_cmphex(p64(pte), ==, 0x800000 | P | RW | A);
    g_assert_nonnull(emu_tlb_host_read(&mmu, EMU_MMU_SUPER, lin, 8));
    g_assert_null(emu_tlb_host_write(&mmu, EMU_MMU_SUPER, lin, 8));
    wr(lin, 8, 9);
    g_assert_cmphex(p64(pte), ==, 0x800000 | P | RW | A | D);
    g_assert_nonnull(emu_tlb_host_write(&mmu, EMU_MMU_SUPER, lin, 8));
    g_assert_cmpuint(p64(0x800000), ==, 9);
    /* an RMW read translates as a write: it sets D and faults with W on a read-only page */
    uint64_t lin2 = 0x11000, pte2 = lm_map(lin2, 0x801000, SZ_4K, P | RW);
    uint64_t v;
    struct emu_fault f;
    g_assert_true(emu_mem_read(&mmu, lin2, 8, EMU_ACCESS_RMW, &v, &f));
    g_assert_cmphex(p64(pte2), ==, 0x801000 | P | RW | A | D);
    uint64_t lin3 = 0x12000;
    lm_map(lin3, 0x802000, SZ_4K, P);
    g_assert_cmpuint(rd(lin3, 8), ==, 0);
    rd_faults(lin3, 8, EMU_ACCESS_RMW, EMU_PF_P | EMU_PF_W, lin3);
    teardown();
}

static void test_tlb_invlpg_large_page(void)
{
    setup();
    mode_long();
    uint64_t lin = 0xFFFFFFFF81000000ull, pde = lm_map(lin, 0x1000000, SZ_2M, P | RW);
    set64(0x1001000, 1);
    set64(0x1005000, 2);
    set64(0x1201000, 3);
    set64(0x1205000, 4);
    g_assert_cmpuint(rd(lin + 0x1000, 8), ==, 1);
    g_assert_cmpuint(rd(lin + 0x5000, 8), ==, 2);
    set64(pde, 0x1200000 | P | RW | PS);
    /* INVLPG of any address in the large page drops all of its cached pieces */
    emu_tlb_flush_page(&mmu, lin + 0x100000);
    g_assert_cmpuint(rd(lin + 0x1000, 8), ==, 3);
    g_assert_cmpuint(rd(lin + 0x5000, 8), ==, 4);
    teardown();
}

static void test_cross_page(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x10000;
    lm_map(lin, 0x805000, SZ_4K, P | RW);
    lm_map(lin + SZ_4K, 0x803000, SZ_4K, P | RW);
    wr(lin + 4092, 8, 0x8877665544332211ull);
    g_assert_cmphex(p32(0x805FFC), ==, 0x44332211);
    g_assert_cmphex(p32(0x803000), ==, 0x88776655);
    g_assert_cmphex(rd(lin + 4092, 8), ==, 0x8877665544332211ull);
    g_assert_cmphex(rd(lin + 4094, 4), ==, 0x66554433);
    uint8_t in[16], out[16];
    for (unsigned i = 0; i < 16; i++)
        in[i] = (uint8_t)(0xC0 + i);
    struct emu_fault f;
    g_assert_true(emu_mem_write(&mmu, lin + 4086, 16, 0, in, &f));
    g_assert_true(emu_mem_read(&mmu, lin + 4086, 16, 0, out, &f));
    g_assert_cmpmem(in, 16, out, 16);
    g_assert_cmphex(p64(0x803000), ==, 0x0000CFCECDCCCBCAull);
    teardown();
}

static void test_cross_page_fault(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x10000;
    lm_map(lin, 0x805000, SZ_4K, P | RW);
    wr_faults(lin + 4090, 8, EMU_PF_W, lin + SZ_4K);
    g_assert_cmphex(p64(0x805FF8), ==, 0); /* no partial write */
    rd_faults(lin + 4090, 16, 0, 0, lin + SZ_4K);
    lm_map(lin + SZ_4K, 0x806000, SZ_4K, P); /* read-only */
    wr_faults(lin + 4090, 8, EMU_PF_P | EMU_PF_W, lin + SZ_4K);
    g_assert_cmphex(p64(0x805FF8), ==, 0);
    g_assert_cmphex(rd(lin + 4090, 8), ==, 0);
    teardown();
}

static void test_mmio(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x7F0000000000ull;
    lm_map(lin, MMIO_BASE, SZ_4K, P | RW);
    g_assert_cmphex(rd(lin + 8, 4), ==, pattern(8, 4));
    g_assert_cmpuint(dev_n, ==, 1);
    assert_dev(0, false, 8, 4);
    wr(lin + 0x10, 8, 0x0123456789ABCDEFull);
    assert_dev(1, true, 0x10, 8);
    g_assert_cmphex(dev_log[1].value, ==, 0x0123456789ABCDEFull);
    /* unaligned accesses are split into naturally aligned pieces */
    g_assert_cmphex(rd(lin + 2, 4), ==, pattern(2, 4));
    assert_dev(2, false, 2, 2);
    assert_dev(3, false, 4, 2);
    g_assert_cmphex(rd(lin + 1, 4), ==, pattern(1, 4));
    assert_dev(4, false, 1, 1);
    assert_dev(5, false, 2, 2);
    assert_dev(6, false, 4, 1);
    uint8_t buf[16];
    struct emu_fault f;
    g_assert_true(emu_mem_read(&mmu, lin + 0x20, 16, 0, buf, &f));
    assert_dev(7, false, 0x20, 8);
    assert_dev(8, false, 0x28, 8);
    g_assert_cmpuint(dev_n, ==, 9);
    g_assert_cmphex(le64_load(buf + 8), ==, pattern(0x28, 8));
    /* the TLB keeps the translation but every access still reaches the device */
    rd(lin + 8, 4);
    g_assert_cmpuint(dev_n, ==, 10);
    teardown();

    setup();
    cpu.cr0 = EMU_CR0_PE; /* no paging */
    wr(MMIO_BASE + 0x40, 2, 0xBEEF);
    assert_dev(0, true, 0x40, 2);
    g_assert_cmphex(dev_log[0].value, ==, 0xBEEF);
    g_assert_cmphex(rd(MMIO_UNCLAIMED, 4), ==, 0xFFFFFFFF);
    wr(MMIO_UNCLAIMED, 4, 0); /* dropped */
    g_assert_cmpuint(dev_n, ==, 1);
    teardown();
}

static void test_rom(void)
{
    setup();
    cpu.cr0 = EMU_CR0_PE;
    uint8_t expect = (uint8_t)(0x10 * 7 + 3);
    g_assert_cmphex(rd(ROM_BASE + 0x10, 1), ==, expect);
    wr(ROM_BASE + 0x10, 1, 0);
    wr(ROM_BASE + 0x10, 1, 0); /* the second one through the TLB entry */
    g_assert_cmphex(rd(ROM_BASE + 0x10, 1), ==, expect);
    g_assert_cmpuint(mmu.rom_writes_dropped, ==, 2);
    /* a 32-bit linear address wraps at 4 GiB: two ROM bytes, then RAM at 0 */
    set32(0, 0xAABBCCDD);
    uint32_t top = (uint8_t)((ROM_SIZE - 2) * 7 + 3) | (uint8_t)((ROM_SIZE - 1) * 7 + 3) << 8;
    g_assert_cmphex(rd(0xFFFFFFFE, 4), ==, top | 0xCCDDu << 16);
    /* instruction bytes come straight from the ROM mapping */
    struct emu_fetch out;
    struct emu_fault f;
    g_assert_true(emu_mem_fetch(&mmu, 0xFFFFFFF0, &out, &f));
    g_assert_nonnull(out.host);
    g_assert_cmpuint(out.avail, ==, 16);
    g_assert_cmphex(out.phys, ==, 0xFFFFFFF0);
    g_assert_cmphex(out.host[0], ==, (uint8_t)((ROM_SIZE - 16) * 7 + 3));
    /* ROM is not RAM: no code pages there */
    g_assert_false(emu_code_page_mark(&mmu, ROM_BASE));
    g_assert_false(emu_code_page_mark(&mmu, MMIO_BASE));
    teardown();
}

static void test_smc(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x10000;
    lm_map(lin, 0x805000, SZ_4K, P | RW);
    lm_map(lin + SZ_4K, 0x803000, SZ_4K, P | RW);
    wr(lin + 0x10, 4, 1);
    wr(lin + 0x10, 4, 2); /* now a fast TLB write entry exists */
    g_assert_nonnull(emu_tlb_host_write(&mmu, EMU_MMU_SUPER, lin, 4));
    g_assert_cmpuint(smc_n, ==, 0);
    g_assert_true(emu_code_page_mark(&mmu, 0x805123));
    g_assert_true(emu_code_page_marked(&mmu, 0x805000));
    g_assert_false(emu_code_page_marked(&mmu, 0x803000));
    g_assert_null(emu_tlb_host_write(&mmu, EMU_MMU_SUPER, lin, 4));
    wr(lin + 0x20, 4, 0x90909090);
    g_assert_cmpuint(smc_n, ==, 1);
    g_assert_cmphex(smc_log[0].phys, ==, 0x805020);
    g_assert_cmpuint(smc_log[0].len, ==, 4);
    g_assert_cmphex(p32(0x805020), ==, 0x90909090); /* the bytes were written */
    /* the write moved the page's generation on and unmarked it: later writes are plain again */
    g_assert_cmpuint(*emu_code_page_gen(&mmu, 0x805000), ==, 1);
    g_assert_cmpuint(*emu_code_page_gen(&mmu, 0x803000), ==, 0);
    g_assert_false(emu_code_page_marked(&mmu, 0x805000));
    g_assert_null(emu_code_page_gen(&mmu, MMIO_BASE));
    wr(lin + 0x24, 4, 0x90909090);
    g_assert_cmpuint(smc_n, ==, 1);
    g_assert_cmpuint(*emu_code_page_gen(&mmu, 0x805000), ==, 1);
    emu_code_page_mark(&mmu, 0x805000);
    /* an unmarked page calls nothing; reads of a marked one neither */
    wr(lin + SZ_4K + 0x20, 4, 1);
    rd(lin + 0x20, 4);
    g_assert_cmpuint(smc_n, ==, 1);
    /* a crossing write reports the piece in the marked page */
    emu_code_page_clear(&mmu, 0x805000);
    emu_code_page_mark(&mmu, 0x803000);
    wr(lin + 4094, 8, 0);
    g_assert_cmpuint(smc_n, ==, 2);
    g_assert_cmphex(smc_log[1].phys, ==, 0x803000);
    g_assert_cmpuint(smc_log[1].len, ==, 6);
    /* a cleared page stops calling */
    wr(lin + 0x20, 4, 0);
    g_assert_cmpuint(smc_n, ==, 2);
    /* the hook for writes that bypass the MMU (DMA); the crossing write above unmarked 0x803000 */
    emu_mmu_notify_phys_write(&mmu, 0x802F00, 0x2000);
    g_assert_cmpuint(smc_n, ==, 2);
    emu_code_page_mark(&mmu, 0x803000);
    emu_mmu_notify_phys_write(&mmu, 0x802F00, 0x2000);
    g_assert_cmpuint(smc_n, ==, 3);
    g_assert_cmphex(smc_log[2].phys, ==, 0x803000);
    g_assert_cmpuint(smc_log[2].len, ==, 0x1000);
    g_assert_cmpuint(*emu_code_page_gen(&mmu, 0x803000), ==, 2);
    emu_code_pages_clear_all(&mmu);
    wr(lin + SZ_4K, 4, 0);
    g_assert_cmpuint(smc_n, ==, 3);
    /* a page marked before its TLB entry exists gets a slow write entry from the start */
    lm_map(lin + 2 * SZ_4K, 0x806000, SZ_4K, P | RW | D);
    emu_code_page_mark(&mmu, 0x806000);
    wr(lin + 2 * SZ_4K + 8, 2, 0);
    wr(lin + 2 * SZ_4K, 4, 0);
    g_assert_cmpuint(smc_n, ==, 4);
    g_assert_cmphex(smc_log[3].phys, ==, 0x806008);
    g_assert_cmpuint(smc_log[3].len, ==, 2);
    g_assert_cmpuint(*emu_code_page_gen(&mmu, 0x806000), ==, 1);
    teardown();
}

static void test_fetch(void)
{
    setup();
    mode_long();
    uint64_t lin = 0xFFFFFFFF81000000ull;
    lm_map(lin, 0x805000, SZ_4K, P | RW);
    lm_map(lin + SZ_4K, 0x803000, SZ_4K, P | RW);
    static const uint8_t code[] = {0x48, 0x89, 0xE5, 0xC3};
    g_assert_cmpint(guest_mem_write(&m.mem, 0x805FF0, code, sizeof(code)), ==, 0);
    struct emu_fetch out;
    struct emu_fault f;
    for (int pass = 0; pass < 2; pass++) { /* a walk, then a TLB hit */
        g_assert_true(emu_mem_fetch(&mmu, lin + 0xFF0, &out, &f));
        g_assert_true(out.host == guest_mem_map_read(&m.mem, 0x805FF0, 1));
        g_assert_cmpuint(out.avail, ==, 16);
        g_assert_cmphex(out.phys, ==, 0x805FF0);
        g_assert_cmpmem(out.host, 4, code, 4);
    }
    set32(0x805FFE, 0x0000C3C3);
    set32(0x803000, 0x44332211);
    uint8_t buf[6];
    g_assert_true(emu_mem_fetch_copy(&mmu, lin + 0xFFE, buf, 6, &f));
    static const uint8_t expect[] = {0xC3, 0xC3, 0x11, 0x22, 0x33, 0x44};
    g_assert_cmpmem(buf, 6, expect, 6);
    g_assert_false(emu_mem_fetch_copy(&mmu, lin + SZ_4K * 2 - 2, buf, 6, &f));
    assert_pf(f, EMU_PF_I, lin + SZ_4K * 2);
    /* code in MMIO has no host pointer but can be copied */
    uint64_t lm = 0x7F0000000000ull;
    lm_map(lm, MMIO_BASE, SZ_4K, P | RW);
    g_assert_true(emu_mem_fetch(&mmu, lm + 4, &out, &f));
    g_assert_null(out.host);
    g_assert_cmphex(out.phys, ==, MMIO_BASE + 4);
    g_assert_true(emu_mem_fetch_copy(&mmu, lm + 4, buf, 4, &f));
    g_assert_cmphex(le32_load(buf), ==, pattern(4, 4));
    teardown();
}

static void test_non_canonical(void)
{
    setup();
    mode_long();
    uint8_t buf[8];
    struct emu_fault f = {0};
    g_assert_false(emu_mem_read(&mmu, 0x0000800000000000ull, 8, 0, buf, &f));
    g_assert_cmpuint(f.vector, ==, EMU_EXC_GP);
    g_assert_cmpuint(f.error_code, ==, 0);
    teardown();
}

static void test_tables_outside_ram(void)
{
    setup();
    mode_long();
    uint64_t lin = 0x10000;
    lm_map(lin, 0x805000, SZ_4K, P | RW);
    /* a PML4E pointing at the MMIO device: the walk neither touches the device nor succeeds */
    uint64_t pml4e = lm_entry(lin, 4);
    set64(pml4e, MMIO_BASE | P | RW);
    rd_faults(lin, 8, 0, 0, lin);
    g_assert_cmpuint(dev_n, ==, 0);
    /* and one above the end of RAM */
    set64(pml4e, (RAM_SIZE + 0x100000) | P | RW);
    wr_faults(lin, 8, EMU_PF_W, lin);
    /* a CR3 in ROM */
    cpu.cr3 = ROM_BASE;
    emu_tlb_flush_all(&mmu);
    rd_faults(lin, 8, 0, 0, lin);
    teardown();
}

static void collect_page(void *opaque, uint64_t page_gpa)
{
    GArray *pages = opaque;
    g_array_append_val(pages, page_gpa);
}

static unsigned dirty_pages(uint64_t *first)
{
    GArray *pages = g_array_new(false, false, sizeof(uint64_t));
    guest_memory_dirty_log_collect(&m.mem, 0, RAM_SIZE, collect_page, pages);
    unsigned n = pages->len;
    if (n)
        *first = g_array_index(pages, uint64_t, 0);
    g_array_free(pages, true);
    return n;
}

static void test_dirty_log(void)
{
    setup();
    cpu.cr0 = EMU_CR0_PE;
    wr(0x9000, 4, 1); /* a fast write entry exists before logging starts */
    g_assert_nonnull(emu_tlb_host_write(&mmu, EMU_MMU_SUPER, 0x9000, 4));
    g_assert_cmpint(guest_memory_dirty_log_start(&m.mem), ==, 0);
    emu_tlb_flush_all(&mmu);
    uint64_t page = 0;
    for (int round = 0; round < 2; round++) {
        wr(0x9010, 4, 2);
        wr(0x9020, 4, 3);
        g_assert_cmpuint(dirty_pages(&page), ==, 1);
        g_assert_cmphex(page, ==, 0x9000);
        g_assert_cmpuint(dirty_pages(&page), ==, 0);
    }
    guest_memory_dirty_log_stop(&m.mem);
    teardown();
}

static void collect_offset(void *opaque, uint64_t off)
{
    g_array_append_val((GArray *)opaque, off);
}

/* A device slot (framebuffer BAR) is RAM to the MMU wherever it is mapped; with its own dirty log on, writes
 * leave the fast path and are logged; after a move (and the backend's flush) the old place is gone. */
static void test_device_slot_logged_and_moved(void)
{
    setup();
    cpu.cr0 = EMU_CR0_PE;
    uint8_t *host = NULL;
    int idx = guest_memory_add_device(&m.mem, 1 << 20, &host);
    g_assert_cmpint(idx, >, 0);
    g_assert_cmpint(guest_memory_map_device(&m.mem, (unsigned)idx, 0xC0000000), ==, 0);
    emu_tlb_flush_all(&mmu);
    wr(0xC0002000, 4, 0x11223344);
    g_assert_cmphex(le32_load(host + 0x2000), ==, 0x11223344);
    g_assert_nonnull(emu_tlb_host_write(&mmu, EMU_MMU_SUPER, 0xC0002000, 4)); /* fast while not logged */

    g_assert_cmpint(guest_memory_slot_dirty_log_start(&m.mem, (unsigned)idx), ==, 0);
    emu_tlb_flush_all(&mmu);
    wr(0xC0002008, 4, 0x55);
    wr(0xC0007ffe, 4, 0x66); /* crosses into page 8 */
    g_assert_null(emu_tlb_host_write(&mmu, EMU_MMU_SUPER, 0xC0002000, 4));
    GArray *a = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    guest_memory_slot_dirty_collect(&m.mem, (unsigned)idx, 0, 1 << 20, collect_offset, a);
    g_assert_cmpuint(a->len, ==, 3);
    g_assert_cmphex(g_array_index(a, uint64_t, 0), ==, 0x2000);
    g_assert_cmphex(g_array_index(a, uint64_t, 1), ==, 0x7000);
    g_assert_cmphex(g_array_index(a, uint64_t, 2), ==, 0x8000);
    g_array_unref(a);
    g_assert_cmphex(le32_load(host + 0x2008), ==, 0x55);

    /* moved: the new address reaches the same bytes, the old one is unclaimed bus space */
    g_assert_cmpint(guest_memory_map_device(&m.mem, (unsigned)idx, 0xD0000000), ==, 0);
    emu_tlb_flush_all(&mmu);
    uint64_t v = 0;
    struct emu_fault f;
    g_assert_true(emu_mem_read(&mmu, 0xD0002000, 4, 0, &v, &f));
    g_assert_cmphex(v, ==, 0x11223344);
    g_assert_true(emu_mem_read(&mmu, 0xC0002000, 4, 0, &v, &f));
    g_assert_cmphex(v, ==, 0xffffffff);
    guest_memory_slot_dirty_log_stop(&m.mem, (unsigned)idx);
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/emu-mmu/nopaging/identity-and-32bit-wrap", test_nopaging_identity);
    g_test_add_func("/emu-mmu/32bit/4k-4m-pse36-and-pse-off", test_32bit_4k_4m);
    g_test_add_func("/emu-mmu/pae/4k-2m-no-pdpte-accessed-bit", test_pae_4k_2m);
    g_test_add_func("/emu-mmu/long/4k-2m-1g-pages", test_long_page_sizes);
    g_test_add_func("/emu-mmu/fault/not-present-each-level", test_not_present);
    g_test_add_func("/emu-mmu/fault/write-protect-user-supervisor-wp", test_write_protect);
    g_test_add_func("/emu-mmu/fault/user-access-to-supervisor-page", test_user_supervisor);
    g_test_add_func("/emu-mmu/fault/nx-fetch-sets-id", test_nx);
    g_test_add_func("/emu-mmu/fault/smep-smap-and-ac", test_smep_smap);
    g_test_add_func("/emu-mmu/fault/reserved-bits", test_reserved_bits);
    g_test_add_func("/emu-mmu/ad-bits/exact", test_ad_bits);
    g_test_add_func("/emu-mmu/tlb/hit-keeps-translation-until-invlpg", test_tlb_hit);
    g_test_add_func("/emu-mmu/tlb/invlpg-drops-one-page", test_tlb_invlpg_one_page);
    g_test_add_func("/emu-mmu/tlb/cr3-flush-keeps-global", test_tlb_cr3_keeps_global);
    g_test_add_func("/emu-mmu/tlb/read-entry-does-not-skip-dirty", test_tlb_read_entry_needs_dirty);
    g_test_add_func("/emu-mmu/tlb/invlpg-drops-whole-large-page", test_tlb_invlpg_large_page);
    g_test_add_func("/emu-mmu/cross-page/read-write-split", test_cross_page);
    g_test_add_func("/emu-mmu/cross-page/second-page-fault-writes-nothing", test_cross_page_fault);
    g_test_add_func("/emu-mmu/mmio/reaches-io-bus-in-aligned-pieces", test_mmio);
    g_test_add_func("/emu-mmu/rom/writes-ignored", test_rom);
    g_test_add_func("/emu-mmu/smc/callback-on-marked-pages-only", test_smc);
    g_test_add_func("/emu-mmu/fetch/host-pointer-copy-and-mmio", test_fetch);
    g_test_add_func("/emu-mmu/long/non-canonical-is-gp", test_non_canonical);
    g_test_add_func("/emu-mmu/walk/tables-outside-ram-not-present", test_tables_outside_ram);
    g_test_add_func("/emu-mmu/dirty-log/every-write-is-logged", test_dirty_log);
    g_test_add_func("/emu-mmu/device-slot/logged-writes-and-move", test_device_slot_logged_and_moved);
    return g_test_run();
}
