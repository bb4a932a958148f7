/* Unit tests for the debugger's software page walk (machine/guest_paging): every paging mode, large pages,
 * not-present entries, page-crossing copies and hostile page tables. */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "guest_paging.h"

#define MiB (1ull << 20)
#define CR0_PG (1ull << 31)
#define CR0_PE 1ull
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)
#define P 1ull
#define RW 2ull
#define PS 0x80ull

static struct guest_memory gm;

static void setup(void)
{
    g_assert_cmpint(guest_memory_init(&gm, 16 * MiB), ==, 0);
}

static void teardown(void)
{
    guest_memory_destroy(&gm);
}

static void put64(uint64_t gpa, uint64_t v)
{
    g_assert_cmpint(guest_mem_write_u64(&gm, gpa, v), ==, 0);
}

static void put32(uint64_t gpa, uint32_t v)
{
    g_assert_cmpint(guest_mem_write_u32(&gm, gpa, v), ==, 0);
}

static uint64_t tr(const struct guest_paging *p, uint64_t va, uint64_t *left)
{
    uint64_t gpa = ~0ull, l = 0;
    g_assert_cmpint(guest_paging_translate(&gm, p, va, &gpa, &l), ==, 0);
    if (left)
        *left = l;
    return gpa;
}

static bool unmapped(const struct guest_paging *p, uint64_t va)
{
    uint64_t gpa, l;
    return guest_paging_translate(&gm, p, va, &gpa, &l) == -EFAULT;
}

static void test_no_paging(void)
{
    setup();
    struct guest_paging p = {.cr0 = CR0_PE};
    uint64_t left;
    g_assert_cmphex(tr(&p, 0x123456, &left), ==, 0x123456);
    g_assert_cmpuint(left, ==, 0x1000 - 0x456);
    /* Outside long mode linear addresses are 32 bits. */
    g_assert_cmphex(tr(&p, 0x100001000ull, NULL), ==, 0x1000);
    teardown();
}

/* 4-level: PML4 at 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000. */
static struct guest_paging long_mode_tables(void)
{
    put64(0x1000 + 0 * 8, 0x2000 | P | RW);
    put64(0x1000 + 511 * 8, 0x2000 | P | RW); /* the top of the address space shares the tables */
    put64(0x2000 + 0 * 8, 0x3000 | P | RW);
    put64(0x2000 + 1 * 8, 0x40000000ull | P | RW | PS); /* 1 GiB page at VA 1 GiB -> PA 1 GiB */
    put64(0x2000 + 510 * 8, 0x3000 | P | RW);
    put64(0x3000 + 0 * 8, 0x4000 | P | RW);
    put64(0x3000 + 1 * 8, 0x600000 | P | RW | PS);         /* 2 MiB page at VA 2 MiB -> PA 6 MiB */
    put64(0x4000 + 5 * 8, 0x9000 | P | RW);                /* VA 0x5000 -> PA 0x9000 */
    put64(0x4000 + 6 * 8, 0xa000 | P | RW | (1ull << 63)); /* NX does not matter to a debugger */
    return (struct guest_paging){
        .cr0 = CR0_PG | CR0_PE, .cr3 = 0x1000, .cr4 = CR4_PAE, .efer = EFER_LMA | 0x100};
}

static void test_long_mode(void)
{
    setup();
    struct guest_paging p = long_mode_tables();
    uint64_t left;
    g_assert_cmphex(tr(&p, 0x5123, &left), ==, 0x9123);
    g_assert_cmpuint(left, ==, 0xedd);
    g_assert_cmphex(tr(&p, 0x6000, NULL), ==, 0xa000);
    g_assert_cmphex(tr(&p, 0x200000 + 0x12345, &left), ==, 0x612345);
    g_assert_cmpuint(left, ==, 0x200000 - 0x12345);
    g_assert_cmphex(tr(&p, 0x40000000ull + 0x1234567, &left), ==, 0x41234567);
    g_assert_cmpuint(left, ==, 0x40000000ull - 0x1234567);
    /* Kernel-style address: PML4 511, PDPT 510, PD 0, PT 5. */
    g_assert_cmphex(tr(&p, 0xffffffff80005010ull, NULL), ==, 0x9010);
    g_assert_true(unmapped(&p, 0x7000));                /* PTE not present */
    g_assert_true(unmapped(&p, 0x400000));              /* PDE not present */
    g_assert_true(unmapped(&p, 0x0000800000000000ull)); /* not canonical */
    g_assert_true(unmapped(&p, 0x0000008000000000ull)); /* PML4 entry 1 not present */
    teardown();
}

static void test_five_level(void)
{
    setup();
    struct guest_paging p = long_mode_tables();
    /* PML5 at 0x5000: entry 0 -> the PML4 above; 57-bit canonical addresses. */
    put64(0x5000, 0x1000 | P | RW);
    p.cr3 = 0x5000;
    p.cr4 |= CR4_LA57;
    g_assert_cmphex(tr(&p, 0x5008, NULL), ==, 0x9008);
    g_assert_true(unmapped(&p, 0x0100000000000000ull)); /* not canonical for 57 bits */
    g_assert_true(unmapped(&p, 0x0001000000000000ull)); /* PML5 entry 1 not present */
    teardown();
}

static void test_pae(void)
{
    setup();
    /* PDPT (32-byte aligned) at 0x1020, PD at 0x2000, PT at 0x3000. */
    put64(0x1020 + 3 * 8, 0x2000 | P);
    put64(0x2000 + 511 * 8, 0x3000 | P | RW);
    put64(0x2000 + 0x10 * 8, 0x800000 | P | RW | PS);
    put64(0x3000 + 511 * 8, 0x7000 | P | RW);
    struct guest_paging p = {.cr0 = CR0_PG | CR0_PE, .cr3 = 0x1020, .cr4 = CR4_PAE};
    g_assert_cmphex(tr(&p, 0xfffff123ull, NULL), ==, 0x7123);
    g_assert_cmphex(tr(&p, 0xc2000000ull + 0x1234, NULL), ==, 0x801234);
    g_assert_true(unmapped(&p, 0x00001000)); /* PDPTE 0 not present */
    teardown();
}

static void test_32bit(void)
{
    setup();
    /* PD at 0x1000 (4-byte entries), PT at 0x2000; a 4 MiB page with PSE. */
    put32(0x1000 + 0x300 * 4, 0x2000 | P | RW);
    put32(0x2000 + 2 * 4, 0x5000 | P);
    put32(0x1000 + 1 * 4, 0x800000 | P | RW | PS);
    struct guest_paging p = {.cr0 = CR0_PG | CR0_PE, .cr3 = 0x1000, .cr4 = CR4_PSE};
    g_assert_cmphex(tr(&p, 0xc0002abcull, NULL), ==, 0x5abc);
    uint64_t left;
    g_assert_cmphex(tr(&p, 0x400000 + 0x12345, &left), ==, 0x812345);
    g_assert_cmpuint(left, ==, 0x400000 - 0x12345);
    /* Without CR4.PSE the PS bit is ignored: the entry points to a page table at 0x800000. */
    p.cr4 = 0;
    put32(0x800000 + 0x12 * 4, 0x6000 | P);
    g_assert_cmphex(tr(&p, 0x400000 + 0x12345, NULL), ==, 0x6345);
    teardown();
}

static void test_copy_across_pages(void)
{
    setup();
    struct guest_paging p = long_mode_tables();
    /* VA 0x5000 -> 0x9000 and 0x6000 -> 0xa000 are physically contiguous only by chance; map 0x6000
     * elsewhere. */
    put64(0x4000 + 6 * 8, 0xc000 | P | RW);
    uint8_t pat[32];
    for (unsigned i = 0; i < sizeof(pat); i++)
        pat[i] = (uint8_t)(0xa0 + i);
    g_assert_cmpuint(guest_paging_write(&gm, &p, 0x5ff0, pat, sizeof(pat)), ==, sizeof(pat));
    uint8_t phys[16];
    g_assert_cmpint(guest_mem_read(&gm, 0x9ff0, phys, 16), ==, 0);
    g_assert_cmpmem(phys, 16, pat, 16);
    g_assert_cmpint(guest_mem_read(&gm, 0xc000, phys, 16), ==, 0);
    g_assert_cmpmem(phys, 16, pat + 16, 16);
    uint8_t back[32] = {0};
    g_assert_cmpuint(guest_paging_read(&gm, &p, 0x5ff0, back, sizeof(back)), ==, sizeof(back));
    g_assert_cmpmem(back, sizeof(back), pat, sizeof(pat));
    /* A copy stops at the first unmapped page: 0x7000 is not present. */
    g_assert_cmpuint(guest_paging_read(&gm, &p, 0x6ff8, back, 16), ==, 8);
    g_assert_cmpuint(guest_paging_read(&gm, &p, 0x7000, back, 16), ==, 0);
    teardown();
}

static void test_hostile_tables(void)
{
    setup();
    /* Tables pointing outside RAM, to MMIO or to themselves never fault the host and end the walk. */
    put64(0x1000, 0xfee00000ull | P);              /* PDPT "in" the LAPIC page: not RAM */
    put64(0x1000 + 8, 0x1000 | P);                 /* PML4 entry 1 points to the PML4 itself */
    put64(0x1000 + 16, 0x000ffffffffff000ull | P); /* beyond any RAM */
    struct guest_paging p = {.cr0 = CR0_PG | CR0_PE, .cr3 = 0x1000, .cr4 = CR4_PAE, .efer = EFER_LMA};
    g_assert_true(unmapped(&p, 0x0));
    g_assert_true(unmapped(&p, 0x0000010000000000ull));
    /* Through the self-map the walk uses the PML4 as PDPT, whose entry 0 leaves RAM: a bounded walk. */
    g_assert_true(unmapped(&p, 0x0000008000000000ull));
    /* A CR3 beyond RAM. */
    p.cr3 = 0x7ffffffff000ull;
    g_assert_true(unmapped(&p, 0x1000));
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/guest-paging/off/identity-32-bit", test_no_paging);
    g_test_add_func("/guest-paging/long/4-level-4k-2m-1g-and-faults", test_long_mode);
    g_test_add_func("/guest-paging/long/5-level", test_five_level);
    g_test_add_func("/guest-paging/pae/3-level-4k-2m", test_pae);
    g_test_add_func("/guest-paging/32bit/4k-and-pse-4m", test_32bit);
    g_test_add_func("/guest-paging/copy/crosses-pages-stops-at-hole", test_copy_across_pages);
    g_test_add_func("/guest-paging/hostile/tables-outside-ram-and-loops", test_hostile_tables);
    return g_test_run();
}
