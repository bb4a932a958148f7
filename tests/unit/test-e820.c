/* Proves the e820 map: RAM around the legacy holes, reserved firmware and ECAM ranges, high RAM at 4 GiB. */
#include <glib.h>

#include "e820.h"
#include "guest_memory.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static unsigned build(uint64_t ram, struct e820_entry *map, unsigned max)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, ram), ==, 0);
    unsigned n = e820_build(&gm, map, max);
    guest_memory_destroy(&gm);
    return n;
}

static void assert_entry(const struct e820_entry *e, uint64_t addr, uint64_t end, uint32_t type)
{
    g_assert_cmphex(e->addr, ==, addr);
    g_assert_cmphex(e->addr + e->size, ==, end);
    g_assert_cmpuint(e->type, ==, type);
}

static void assert_sorted_disjoint(const struct e820_entry *map, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        g_assert_cmpuint(map[i].size, >, 0);
        if (i)
            g_assert_cmphex(map[i - 1].addr + map[i - 1].size, <=, map[i].addr);
    }
}

static void test_512m(void)
{
    struct e820_entry map[E820_MAX_ENTRIES_ZEROPAGE];
    unsigned n = build(512 * MiB, map, E820_MAX_ENTRIES_ZEROPAGE);
    g_assert_cmpuint(n, ==, 5);
    assert_entry(&map[0], 0, 0x9FC00, E820_TYPE_RAM);
    assert_entry(&map[1], 0x9FC00, 0xA0000, E820_TYPE_RESERVED);
    assert_entry(&map[2], 0xE0000, 0x100000, E820_TYPE_RESERVED);
    assert_entry(&map[3], 0x100000, 512 * MiB, E820_TYPE_RAM);
    assert_entry(&map[4], 0xB0000000, 0xC0000000, E820_TYPE_RESERVED);
    assert_sorted_disjoint(map, n);
}

static void test_3g(void)
{
    struct e820_entry map[E820_MAX_ENTRIES_ZEROPAGE];
    unsigned n = build(3 * GiB, map, E820_MAX_ENTRIES_ZEROPAGE);
    g_assert_cmpuint(n, ==, 6);
    assert_entry(&map[0], 0, 0x9FC00, E820_TYPE_RAM);
    assert_entry(&map[3], 0x100000, 0xB0000000, E820_TYPE_RAM);
    assert_entry(&map[4], 0xB0000000, 0xC0000000, E820_TYPE_RESERVED);
    assert_entry(&map[5], 0x100000000, 0x100000000 + 256 * MiB, E820_TYPE_RAM);
    assert_sorted_disjoint(map, n);
}

static void test_6g(void)
{
    struct e820_entry map[E820_MAX_ENTRIES_ZEROPAGE];
    unsigned n = build(6 * GiB, map, E820_MAX_ENTRIES_ZEROPAGE);
    g_assert_cmpuint(n, ==, 6);
    assert_entry(&map[1], 0x9FC00, 0xA0000, E820_TYPE_RESERVED);
    assert_entry(&map[2], 0xE0000, 0x100000, E820_TYPE_RESERVED);
    assert_entry(&map[3], 0x100000, 0xB0000000, E820_TYPE_RAM);
    assert_entry(&map[5], 0x100000000, 0x100000000 + 6 * GiB - 0xB0000000, E820_TYPE_RAM);
    assert_sorted_disjoint(map, n);
    uint64_t ram = 0;
    for (unsigned i = 0; i < n; i++)
        if (map[i].type == E820_TYPE_RAM)
            ram += map[i].size;
    /* Everything but the EBDA and the 0xA0000-0xFFFFF legacy area is usable. */
    g_assert_cmpuint(ram, ==, 6 * GiB - (0x100000 - 0x9FC00));
}

static void test_exactly_low_limit(void)
{
    struct e820_entry map[E820_MAX_ENTRIES_ZEROPAGE];
    unsigned n = build(0xB0000000, map, E820_MAX_ENTRIES_ZEROPAGE);
    g_assert_cmpuint(n, ==, 5);
    assert_entry(&map[3], 0x100000, 0xB0000000, E820_TYPE_RAM);
    assert_entry(&map[4], 0xB0000000, 0xC0000000, E820_TYPE_RESERVED);
}

static void test_tiny_ram(void)
{
    struct e820_entry map[E820_MAX_ENTRIES_ZEROPAGE];
    unsigned n = build(512 * 1024, map, E820_MAX_ENTRIES_ZEROPAGE);
    g_assert_cmpuint(n, ==, 4);
    assert_entry(&map[0], 0, 512 * 1024, E820_TYPE_RAM);
    assert_entry(&map[3], 0xB0000000, 0xC0000000, E820_TYPE_RESERVED);
    assert_sorted_disjoint(map, n);
}

static void test_max_respected(void)
{
    struct e820_entry map[3];
    g_assert_cmpuint(build(6 * GiB, map, 3), ==, 3);
    assert_entry(&map[2], 0xE0000, 0x100000, E820_TYPE_RESERVED);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/e820/512m/low-ram-and-reserved-ranges", test_512m);
    g_test_add_func("/e820/3g/low-ram-to-ecam-and-high-ram-at-4g", test_3g);
    g_test_add_func("/e820/6g/high-ram-holds-the-rest", test_6g);
    g_test_add_func("/e820/2.75g/no-high-ram", test_exactly_low_limit);
    g_test_add_func("/e820/512k/ram-ends-below-ebda", test_tiny_ram);
    g_test_add_func("/e820/max/entries-capped", test_max_respected);
    return g_test_run();
}
