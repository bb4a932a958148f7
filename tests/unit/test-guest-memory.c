/* Proves the guest RAM layout around the PCI hole, the bounds checks, copies, LE scalars and dirty logging.
 */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "guest_memory.h"

#define MiB (1024ULL * 1024)
#define GiB (1024ULL * MiB)
#define HIGH GUEST_MEMORY_HIGH_BASE
#define LOW_END GUEST_MEMORY_LOW_LIMIT

static void test_init_rejects_bad_sizes(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 0), ==, -EINVAL);
    g_assert_null(gm.base);
    g_assert_cmpint(guest_memory_init(&gm, 4095), ==, -EINVAL);
    g_assert_cmpint(guest_memory_init(&gm, MiB + 1), ==, -EINVAL);
    g_assert_cmpint(guest_memory_init(&gm, MiB + 2048), ==, -EINVAL);
    g_assert_null(gm.base);
    g_assert_cmpuint(gm.nslots, ==, 0);
    /* A single page is the smallest valid RAM. */
    g_assert_cmpint(guest_memory_init(&gm, GUEST_PAGE_SIZE), ==, 0);
    g_assert_cmpuint(gm.nslots, ==, 1);
    g_assert_cmpuint(gm.slots[0].size, ==, GUEST_PAGE_SIZE);
    guest_memory_destroy(&gm);
}

static void test_layout_512m(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 512 * MiB), ==, 0);
    g_assert_cmpuint(gm.ram_size, ==, 512 * MiB);
    g_assert_cmpuint(gm.nslots, ==, 1);
    g_assert_cmpuint(gm.slots[0].gpa, ==, 0);
    g_assert_cmpuint(gm.slots[0].size, ==, 512 * MiB);
    g_assert_true(gm.slots[0].host == gm.base);
    g_assert_null(gm.slots[0].dirty);
    g_assert_false(guest_memory_is_ram(&gm, 512 * MiB, 1));
    g_assert_false(guest_memory_is_ram(&gm, HIGH, 1));
    guest_memory_destroy(&gm);
    g_assert_null(gm.base);
}

static void test_layout_exactly_low_limit(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, LOW_END), ==, 0);
    g_assert_cmpuint(gm.nslots, ==, 1);
    g_assert_cmpuint(gm.slots[0].gpa, ==, 0);
    g_assert_cmpuint(gm.slots[0].size, ==, 0xB0000000ULL);
    g_assert_true(guest_memory_is_ram(&gm, LOW_END - 1, 1));
    g_assert_false(guest_memory_is_ram(&gm, LOW_END, 1));
    g_assert_false(guest_memory_is_ram(&gm, HIGH, 1));
    guest_memory_destroy(&gm);
}

static void check_split_layout(uint64_t ram)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, ram), ==, 0);
    g_assert_cmpuint(gm.nslots, ==, 2);
    g_assert_cmpuint(gm.slots[0].gpa, ==, 0);
    g_assert_cmpuint(gm.slots[0].size, ==, 0xB0000000ULL);
    g_assert_cmpuint(gm.slots[1].gpa, ==, 0x100000000ULL);
    g_assert_cmpuint(gm.slots[1].size, ==, ram - 0xB0000000ULL);
    g_assert_true(gm.slots[0].host == gm.base);
    g_assert_true(gm.slots[1].host == gm.base + 0xB0000000ULL);
    g_assert_true(guest_memory_is_ram(&gm, HIGH + ram - LOW_END - 1, 1));
    g_assert_false(guest_memory_is_ram(&gm, HIGH + ram - LOW_END, 1));
    guest_memory_destroy(&gm);
}

static void test_layout_4g(void)
{
    check_split_layout(4 * GiB);
}

static void test_layout_6g(void)
{
    check_split_layout(6 * GiB);
}

static void test_find_boundaries(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 4 * GiB), ==, 0);
    const struct guest_ram_slot *lo = &gm.slots[0], *hi = &gm.slots[1];
    uint64_t hi_end = HIGH + 0x50000000ULL;

    /* start and end of the low slot */
    g_assert_true(guest_memory_find(&gm, 0, 1) == lo);
    g_assert_true(guest_memory_find(&gm, 0, LOW_END) == lo);
    g_assert_null(guest_memory_find(&gm, 0, LOW_END + 1));
    g_assert_true(guest_memory_find(&gm, LOW_END - 1, 1) == lo);
    g_assert_true(guest_memory_find(&gm, LOW_END - 8, 8) == lo);
    /* straddling the end of low RAM */
    g_assert_null(guest_memory_find(&gm, LOW_END - 1, 2));
    g_assert_null(guest_memory_find(&gm, LOW_END - 4, 8));
    /* inside the hole */
    g_assert_null(guest_memory_find(&gm, LOW_END, 1));
    g_assert_null(guest_memory_find(&gm, 0xC0000000ULL, 4));
    g_assert_null(guest_memory_find(&gm, 0xFEE00000ULL, 4));
    g_assert_null(guest_memory_find(&gm, HIGH - 1, 1));
    /* straddling the 4 GiB boundary, and a range spanning the whole hole */
    g_assert_null(guest_memory_find(&gm, HIGH - 1, 2));
    g_assert_null(guest_memory_find(&gm, HIGH - 4, 8));
    g_assert_null(guest_memory_find(&gm, 0, HIGH + 1));
    /* start and end of the high slot */
    g_assert_true(guest_memory_find(&gm, HIGH, 1) == hi);
    g_assert_true(guest_memory_find(&gm, HIGH, 0x50000000ULL) == hi);
    g_assert_null(guest_memory_find(&gm, HIGH, 0x50000001ULL));
    g_assert_true(guest_memory_find(&gm, hi_end - 1, 1) == hi);
    g_assert_null(guest_memory_find(&gm, hi_end - 1, 2));
    g_assert_null(guest_memory_find(&gm, hi_end, 1));
    /* empty and overflowing ranges never match */
    g_assert_null(guest_memory_find(&gm, 0, 0));
    g_assert_null(guest_memory_find(&gm, 0x1000, 0));
    g_assert_null(guest_memory_find(&gm, UINT64_MAX - 1, 4));
    g_assert_null(guest_memory_find(&gm, UINT64_MAX, 1));
    g_assert_null(guest_memory_find(&gm, UINT64_MAX, UINT64_MAX));
    g_assert_null(guest_memory_find(&gm, 1, UINT64_MAX));
    g_assert_null(guest_memory_find(&gm, 0, UINT64_MAX));
    g_assert_null(guest_memory_find(&gm, 0x1000, UINT64_MAX - 0xFFF)); /* end wraps to exactly 0 */
    g_assert_null(guest_memory_find(&gm, HIGH, UINT64_MAX - HIGH + 2));
    /* the same through the copy API */
    uint8_t b[4];
    g_assert_cmpint(guest_mem_read(&gm, UINT64_MAX - 1, b, 4), ==, -EFAULT);
    g_assert_cmpint(guest_mem_write(&gm, UINT64_MAX - 1, b, 4), ==, -EFAULT);
    g_assert_cmpint(guest_mem_fill(&gm, UINT64_MAX - 1, 0, 4), ==, -EFAULT);
    g_assert_null(guest_mem_map_read(&gm, UINT64_MAX - 1, 4));
    g_assert_null(guest_mem_map_write(&gm, UINT64_MAX - 1, 4));
    guest_memory_destroy(&gm);
}

static void test_copy_round_trip(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 4 * GiB), ==, 0);
    uint8_t src[300], dst[300];
    for (unsigned i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 7 + 3);
    const uint64_t addrs[] = {0, 0x1FFF, LOW_END - sizeof(src), HIGH, HIGH + 0x50000000ULL - sizeof(src)};
    for (unsigned k = 0; k < G_N_ELEMENTS(addrs); k++) {
        memset(dst, 0, sizeof(dst));
        g_assert_cmpint(guest_mem_write(&gm, addrs[k], src, sizeof(src)), ==, 0);
        g_assert_cmpint(guest_mem_read(&gm, addrs[k], dst, sizeof(dst)), ==, 0);
        g_assert_cmpmem(dst, sizeof(dst), src, sizeof(src));
    }
    /* the high slot is backed by the mapping right after the low slot */
    g_assert_cmpmem(gm.base + LOW_END, sizeof(src), src, sizeof(src));

    g_assert_cmpint(guest_mem_fill(&gm, 0x10001, 0xA5, 100), ==, 0);
    g_assert_cmpint(guest_mem_read(&gm, 0x10000, dst, 102), ==, 0);
    g_assert_cmpuint(dst[0], ==, 0);
    for (unsigned i = 1; i <= 100; i++)
        g_assert_cmpuint(dst[i], ==, 0xA5);
    g_assert_cmpuint(dst[101], ==, 0);

    /* zero-length copies succeed anywhere and touch nothing */
    memset(dst, 0x77, sizeof(dst));
    g_assert_cmpint(guest_mem_read(&gm, LOW_END, dst, 0), ==, 0);
    g_assert_cmpint(guest_mem_write(&gm, LOW_END, src, 0), ==, 0);
    g_assert_cmpint(guest_mem_fill(&gm, LOW_END, 0, 0), ==, 0);
    g_assert_cmpuint(dst[0], ==, 0x77);
    guest_memory_destroy(&gm);
}

static gboolean all_bytes(const uint8_t *p, size_t len, uint8_t v)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != v)
            return FALSE;
    return TRUE;
}

static void test_efault_copies_nothing(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 4 * GiB), ==, 0);
    uint8_t buf[64];
    uint8_t ones[64];
    memset(ones, 0xEE, sizeof(ones));
    g_assert_cmpint(guest_mem_fill(&gm, LOW_END - 32, 0x11, 32), ==, 0);
    g_assert_cmpint(guest_mem_fill(&gm, HIGH, 0x22, 32), ==, 0);

    /* a read straddling low RAM's end leaves the buffer untouched */
    memset(buf, 0x5A, sizeof(buf));
    g_assert_cmpint(guest_mem_read(&gm, LOW_END - 32, buf, 64), ==, -EFAULT);
    g_assert_true(all_bytes(buf, sizeof(buf), 0x5A));
    g_assert_cmpint(guest_mem_read(&gm, HIGH - 32, buf, 64), ==, -EFAULT);
    g_assert_true(all_bytes(buf, sizeof(buf), 0x5A));

    /* a write or fill straddling the end changes no RAM byte */
    g_assert_cmpint(guest_mem_write(&gm, LOW_END - 32, ones, 64), ==, -EFAULT);
    g_assert_cmpint(guest_mem_fill(&gm, LOW_END - 32, 0xEE, 64), ==, -EFAULT);
    g_assert_cmpint(guest_mem_write(&gm, HIGH - 32, ones, 64), ==, -EFAULT);
    g_assert_cmpint(guest_mem_fill(&gm, HIGH - 32, 0xEE, 64), ==, -EFAULT);
    g_assert_cmpint(guest_mem_read(&gm, LOW_END - 32, buf, 32), ==, 0);
    g_assert_true(all_bytes(buf, 32, 0x11));
    g_assert_cmpint(guest_mem_read(&gm, HIGH, buf, 32), ==, 0);
    g_assert_true(all_bytes(buf, 32, 0x22));

    /* scalar reads leave *v untouched on -EFAULT */
    uint64_t v64 = 0x0123456789ABCDEFULL;
    uint32_t v32 = 0xCAFEBABE;
    uint16_t v16 = 0xBEEF;
    uint8_t v8 = 0x42;
    g_assert_cmpint(guest_mem_read_u64(&gm, LOW_END - 7, &v64), ==, -EFAULT);
    g_assert_cmpint(guest_mem_read_u32(&gm, LOW_END - 3, &v32), ==, -EFAULT);
    g_assert_cmpint(guest_mem_read_u16(&gm, LOW_END - 1, &v16), ==, -EFAULT);
    g_assert_cmpint(guest_mem_read_u8(&gm, LOW_END, &v8), ==, -EFAULT);
    g_assert_cmphex(v64, ==, 0x0123456789ABCDEFULL);
    g_assert_cmphex(v32, ==, 0xCAFEBABE);
    g_assert_cmphex(v16, ==, 0xBEEF);
    g_assert_cmphex(v8, ==, 0x42);
    g_assert_cmpint(guest_mem_write_u64(&gm, LOW_END - 7, 0), ==, -EFAULT);
    g_assert_cmpint(guest_mem_read(&gm, LOW_END - 32, buf, 32), ==, 0);
    g_assert_true(all_bytes(buf, 32, 0x11));
    guest_memory_destroy(&gm);
}

static void test_scalars_little_endian(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 6 * GiB), ==, 0);
    uint8_t b[8];

    g_assert_cmpint(guest_mem_write_u32(&gm, 0x100, 0x11223344), ==, 0);
    g_assert_cmpint(guest_mem_read(&gm, 0x100, b, 4), ==, 0);
    g_assert_cmphex(b[0], ==, 0x44);
    g_assert_cmphex(b[1], ==, 0x33);
    g_assert_cmphex(b[2], ==, 0x22);
    g_assert_cmphex(b[3], ==, 0x11);

    g_assert_cmpint(guest_mem_write_u16(&gm, 0x201, 0xA1B2), ==, 0);
    g_assert_cmpint(guest_mem_read(&gm, 0x201, b, 2), ==, 0);
    g_assert_cmphex(b[0], ==, 0xB2);
    g_assert_cmphex(b[1], ==, 0xA1);

    g_assert_cmpint(guest_mem_write_u64(&gm, 0x303, 0x0102030405060708ULL), ==, 0);
    g_assert_cmpint(guest_mem_read(&gm, 0x303, b, 8), ==, 0);
    for (unsigned i = 0; i < 8; i++)
        g_assert_cmphex(b[i], ==, 8 - i);

    static const uint8_t raw[8] = {0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01};
    g_assert_cmpint(guest_mem_write(&gm, 0x400, raw, 8), ==, 0);
    uint8_t v8;
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    g_assert_cmpint(guest_mem_read_u8(&gm, 0x400, &v8), ==, 0);
    g_assert_cmpint(guest_mem_read_u16(&gm, 0x400, &v16), ==, 0);
    g_assert_cmpint(guest_mem_read_u32(&gm, 0x400, &v32), ==, 0);
    g_assert_cmpint(guest_mem_read_u64(&gm, 0x400, &v64), ==, 0);
    g_assert_cmphex(v8, ==, 0xEF);
    g_assert_cmphex(v16, ==, 0xCDEF);
    g_assert_cmphex(v32, ==, 0x89ABCDEF);
    g_assert_cmphex(v64, ==, 0x0123456789ABCDEFULL);

    /* the last valid offsets of both slots */
    uint64_t ends[] = {LOW_END, HIGH + 6 * GiB - LOW_END};
    for (unsigned k = 0; k < G_N_ELEMENTS(ends); k++) {
        uint64_t e = ends[k];
        g_assert_cmpint(guest_mem_write_u8(&gm, e - 1, 0x5C), ==, 0);
        g_assert_cmpint(guest_mem_read_u8(&gm, e - 1, &v8), ==, 0);
        g_assert_cmphex(v8, ==, 0x5C);
        g_assert_cmpint(guest_mem_write_u16(&gm, e - 2, 0x1234), ==, 0);
        g_assert_cmpint(guest_mem_read_u16(&gm, e - 2, &v16), ==, 0);
        g_assert_cmphex(v16, ==, 0x1234);
        g_assert_cmpint(guest_mem_write_u32(&gm, e - 4, 0xDEADBEEF), ==, 0);
        g_assert_cmpint(guest_mem_read_u32(&gm, e - 4, &v32), ==, 0);
        g_assert_cmphex(v32, ==, 0xDEADBEEF);
        g_assert_cmpint(guest_mem_write_u64(&gm, e - 8, 0xFEEDFACE12345678ULL), ==, 0);
        g_assert_cmpint(guest_mem_read_u64(&gm, e - 8, &v64), ==, 0);
        g_assert_cmphex(v64, ==, 0xFEEDFACE12345678ULL);
        g_assert_cmpint(guest_mem_write_u8(&gm, e, 0), ==, -EFAULT);
        g_assert_cmpint(guest_mem_write_u16(&gm, e - 1, 0), ==, -EFAULT);
        g_assert_cmpint(guest_mem_write_u32(&gm, e - 3, 0), ==, -EFAULT);
        g_assert_cmpint(guest_mem_write_u64(&gm, e - 7, 0), ==, -EFAULT);
        g_assert_cmpint(guest_mem_read_u64(&gm, e - 8, &v64), ==, 0);
        g_assert_cmphex(v64, ==, 0xFEEDFACE12345678ULL);
    }
    guest_memory_destroy(&gm);
}

static void test_map_aliases(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 4 * GiB), ==, 0);
    uint8_t *w = guest_mem_map_write(&gm, 0x2000, 16);
    const uint8_t *r = guest_mem_map_read(&gm, 0x2000, 16);
    g_assert_nonnull(w);
    g_assert_true((const void *)w == (const void *)r);
    g_assert_true(w == gm.base + 0x2000);
    w[3] = 0x9C;
    uint8_t v;
    g_assert_cmpint(guest_mem_read_u8(&gm, 0x2003, &v), ==, 0);
    g_assert_cmphex(v, ==, 0x9C);
    g_assert_cmpint(guest_mem_write_u8(&gm, 0x2005, 0x3D), ==, 0);
    g_assert_cmphex(r[5], ==, 0x3D);

    uint8_t *hw = guest_mem_map_write(&gm, HIGH + 0x10, 4);
    g_assert_true(hw == gm.base + LOW_END + 0x10);
    g_assert_true(guest_mem_map_read(&gm, HIGH + 0x10, 4) == (const void *)hw);
    g_assert_null(guest_mem_map_read(&gm, LOW_END - 8, 16));
    g_assert_null(guest_mem_map_write(&gm, LOW_END - 8, 16));
    g_assert_null(guest_mem_map_read(&gm, 0x2000, 0));
    guest_memory_destroy(&gm);
}

/* Collects dirty page addresses into a GArray of uint64_t. */
static void collect_cb(void *opaque, uint64_t page_gpa)
{
    g_array_append_val((GArray *)opaque, page_gpa);
}

static GArray *collect(struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    guest_memory_dirty_log_collect(gm, gpa, len, collect_cb, a);
    return a;
}

/* Asserts the whole-memory dirty set is exactly the n given pages (in order), and that collecting cleared it.
 */
static void assert_dirty(struct guest_memory *gm, const uint64_t *pages, unsigned n)
{
    GArray *a = collect(gm, 0, UINT64_MAX);
    g_assert_cmpuint(a->len, ==, n);
    for (unsigned i = 0; i < n; i++)
        g_assert_cmphex(g_array_index(a, uint64_t, i), ==, pages[i]);
    g_array_unref(a);
    a = collect(gm, 0, UINT64_MAX);
    g_assert_cmpuint(a->len, ==, 0);
    g_array_unref(a);
}

static void test_dirty_log_marks_touched_pages(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 16 * MiB), ==, 0);
    g_assert_cmpint(guest_memory_dirty_log_start(&gm), ==, 0);
    g_assert_true(gm.dirty_logging);
    assert_dirty(&gm, NULL, 0);

    uint8_t buf[16] = {1};
    g_assert_cmpint(guest_mem_write(&gm, 0x1000, buf, 1), ==, 0);
    assert_dirty(&gm, (const uint64_t[]){0x1000}, 1);

    /* a write crossing a page boundary marks both pages */
    g_assert_cmpint(guest_mem_write(&gm, 0x2FFE, buf, 4), ==, 0);
    assert_dirty(&gm, (const uint64_t[]){0x2000, 0x3000}, 2);

    /* a write ending exactly on a page boundary marks only its page */
    g_assert_cmpint(guest_mem_write(&gm, 0x3FF0, buf, 16), ==, 0);
    assert_dirty(&gm, (const uint64_t[]){0x3000}, 1);

    g_assert_cmpint(guest_mem_fill(&gm, 0x5000, 0, 0x2000), ==, 0);
    assert_dirty(&gm, (const uint64_t[]){0x5000, 0x6000}, 2);

    g_assert_nonnull(guest_mem_map_write(&gm, 0x8800, 0x1000));
    assert_dirty(&gm, (const uint64_t[]){0x8000, 0x9000}, 2);

    g_assert_cmpint(guest_mem_write_u8(&gm, 0xA000, 1), ==, 0);
    g_assert_cmpint(guest_mem_write_u16(&gm, 0xBFFF, 1), ==, 0);
    g_assert_cmpint(guest_mem_write_u32(&gm, 0xD010, 1), ==, 0);
    g_assert_cmpint(guest_mem_write_u64(&gm, 0xFFFFF8, 1), ==, 0); /* last pages of RAM */
    assert_dirty(&gm, (const uint64_t[]){0xA000, 0xB000, 0xC000, 0xD000, 0xFFF000}, 5);

    /* repeated writes to one page report it once */
    for (unsigned i = 0; i < 10; i++)
        g_assert_cmpint(guest_mem_write_u32(&gm, 0x7000 + 4 * i, i), ==, 0);
    assert_dirty(&gm, (const uint64_t[]){0x7000}, 1);
    guest_memory_destroy(&gm);
}

static void test_dirty_log_reads_and_faults_do_not_mark(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 16 * MiB), ==, 0);
    g_assert_cmpint(guest_memory_dirty_log_start(&gm), ==, 0);
    uint8_t buf[64];
    uint32_t v;
    g_assert_cmpint(guest_mem_read(&gm, 0x1000, buf, sizeof(buf)), ==, 0);
    g_assert_cmpint(guest_mem_read_u32(&gm, 0x2000, &v), ==, 0);
    g_assert_nonnull(guest_mem_map_read(&gm, 0x3000, 0x2000));
    /* refused writes mark nothing either */
    g_assert_cmpint(guest_mem_write(&gm, 16 * MiB - 8, buf, 16), ==, -EFAULT);
    g_assert_cmpint(guest_mem_fill(&gm, 16 * MiB - 8, 0, 16), ==, -EFAULT);
    g_assert_null(guest_mem_map_write(&gm, 16 * MiB - 8, 16));
    assert_dirty(&gm, NULL, 0);
    guest_memory_destroy(&gm);
}

static void test_dirty_log_collect_range(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 16 * MiB), ==, 0);
    g_assert_cmpint(guest_memory_dirty_log_start(&gm), ==, 0);
    for (uint64_t p = 0; p < 8; p++)
        g_assert_cmpint(guest_mem_write_u8(&gm, p * GUEST_PAGE_SIZE + 5, 1), ==, 0);

    /* only pages intersecting [0x2800, 0x4800) are reported and cleared */
    GArray *a = collect(&gm, 0x2800, 0x2000);
    g_assert_cmpuint(a->len, ==, 3);
    g_assert_cmphex(g_array_index(a, uint64_t, 0), ==, 0x2000);
    g_assert_cmphex(g_array_index(a, uint64_t, 1), ==, 0x3000);
    g_assert_cmphex(g_array_index(a, uint64_t, 2), ==, 0x4000);
    g_array_unref(a);

    /* an empty range reports nothing, even one starting inside a dirty page */
    a = collect(&gm, 0x5800, 0);
    g_assert_cmpuint(a->len, ==, 0);
    g_array_unref(a);
    a = collect(&gm, 0x5000, 0);
    g_assert_cmpuint(a->len, ==, 0);
    g_array_unref(a);

    /* a range reaching past the top of the address space means "to the end" */
    a = collect(&gm, 0x6000, UINT64_MAX);
    g_assert_cmpuint(a->len, ==, 2);
    g_assert_cmphex(g_array_index(a, uint64_t, 0), ==, 0x6000);
    g_assert_cmphex(g_array_index(a, uint64_t, 1), ==, 0x7000);
    g_array_unref(a);

    assert_dirty(&gm, (const uint64_t[]){0x0000, 0x1000, 0x5000}, 3);
    guest_memory_destroy(&gm);
}

static void test_dirty_log_stop(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 16 * MiB), ==, 0);
    g_assert_cmpint(guest_memory_dirty_log_start(&gm), ==, 0);
    g_assert_nonnull(gm.slots[0].dirty);
    g_assert_cmpint(guest_mem_write_u8(&gm, 0x1000, 1), ==, 0);
    guest_memory_dirty_log_stop(&gm);
    g_assert_false(gm.dirty_logging);
    g_assert_null(gm.slots[0].dirty);

    /* writes while stopped are not recorded, and collecting is a no-op */
    g_assert_cmpint(guest_mem_write_u8(&gm, 0x2000, 1), ==, 0);
    g_assert_cmpint(guest_mem_fill(&gm, 0x3000, 1, 8), ==, 0);
    g_assert_nonnull(guest_mem_map_write(&gm, 0x4000, 8));
    assert_dirty(&gm, NULL, 0);

    /* restarting starts clean: nothing from before or during the stop */
    g_assert_cmpint(guest_memory_dirty_log_start(&gm), ==, 0);
    assert_dirty(&gm, NULL, 0);
    g_assert_cmpint(guest_mem_write_u8(&gm, 0x9000, 1), ==, 0);
    /* starting twice keeps the log */
    g_assert_cmpint(guest_memory_dirty_log_start(&gm), ==, 0);
    assert_dirty(&gm, (const uint64_t[]){0x9000}, 1);
    guest_memory_dirty_log_stop(&gm);
    guest_memory_dirty_log_stop(&gm);
    guest_memory_destroy(&gm);
}

static void test_dirty_log_high_slot(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 4 * GiB), ==, 0);
    g_assert_cmpint(guest_memory_dirty_log_start(&gm), ==, 0);
    g_assert_nonnull(gm.slots[0].dirty);
    g_assert_nonnull(gm.slots[1].dirty);
    uint64_t hi_end = HIGH + 0x50000000ULL;

    g_assert_cmpint(guest_mem_write_u32(&gm, HIGH + 0x10000, 1), ==, 0);
    assert_dirty(&gm, (const uint64_t[]){HIGH + 0x10000}, 1);

    g_assert_cmpint(guest_mem_write_u8(&gm, LOW_END - 1, 1), ==, 0);
    g_assert_cmpint(guest_mem_write_u16(&gm, HIGH + 0xFFF, 1), ==, 0);
    g_assert_cmpint(guest_mem_write_u64(&gm, hi_end - 8, 1), ==, 0);
    assert_dirty(
        &gm, (const uint64_t[]){LOW_END - GUEST_PAGE_SIZE, HIGH, HIGH + 0x1000, hi_end - GUEST_PAGE_SIZE}, 4);

    /* a range covering only the high slot leaves the low slot's pages alone */
    g_assert_cmpint(guest_mem_write_u8(&gm, 0, 1), ==, 0);
    g_assert_cmpint(guest_mem_write_u8(&gm, HIGH + 0x5000, 1), ==, 0);
    GArray *a = collect(&gm, HIGH, hi_end - HIGH);
    g_assert_cmpuint(a->len, ==, 1);
    g_assert_cmphex(g_array_index(a, uint64_t, 0), ==, HIGH + 0x5000);
    g_array_unref(a);
    assert_dirty(&gm, (const uint64_t[]){0}, 1);
    guest_memory_destroy(&gm);
}

/* ---- device slots (RAM-like BARs) */

static unsigned changes[GUEST_MEMORY_MAX_SLOTS];
static void on_slot_changed(void *opaque, unsigned index)
{
    changes[index]++;
}
static const struct guest_memory_listener change_counter = {on_slot_changed, NULL};

static void test_device_slot_map_move_unmap(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 16 * MiB), ==, 0);
    memset(changes, 0, sizeof(changes));
    gm.listener = &change_counter;
    uint8_t *host = NULL;
    int idx = guest_memory_add_device(&gm, 4 * MiB, &host);
    g_assert_cmpint(idx, ==, 1);
    g_assert_nonnull(host);
    g_assert_true(gm.slots[idx].unmapped);
    g_assert_null(guest_memory_find(&gm, GUEST_MEMORY_UNMAPPED_GPA, 1)); /* unmapped: nothing reaches it */
    g_assert_cmpuint(changes[idx], ==, 0);

    g_assert_cmpint(guest_memory_map_device(&gm, (unsigned)idx, 0xC0000000), ==, 0);
    g_assert_cmpuint(changes[idx], ==, 1);
    g_assert_true(guest_mem_map_read(&gm, 0xC0000000 + 16, 4) == host + 16);
    g_assert_true(guest_memory_is_ram(&gm, 0xC0000000, 4 * MiB));
    g_assert_false(guest_memory_is_ram(&gm, 0xC0000000, 4 * MiB + 1));
    g_assert_cmpint(guest_mem_write_u32(&gm, 0xC0000100, 0x12345678), ==, 0);
    g_assert_cmpint(guest_memory_map_device(&gm, (unsigned)idx, 0xC0000000), ==, 0); /* same place: no news */
    g_assert_cmpuint(changes[idx], ==, 1);

    /* moved: the bytes follow, the old place is a hole */
    g_assert_cmpint(guest_memory_map_device(&gm, (unsigned)idx, 0xD0000000), ==, 0);
    g_assert_cmpuint(changes[idx], ==, 2);
    uint32_t v;
    g_assert_cmpint(guest_mem_read_u32(&gm, 0xD0000100, &v), ==, 0);
    g_assert_cmphex(v, ==, 0x12345678);
    g_assert_cmpint(guest_mem_read_u32(&gm, 0xC0000100, &v), ==, -EFAULT);

    /* refused places leave it unmapped */
    g_assert_cmpint(guest_memory_map_device(&gm, (unsigned)idx, 8 * MiB), ==, -EEXIST); /* over RAM */
    g_assert_true(gm.slots[idx].unmapped);
    g_assert_cmpint(guest_memory_map_device(&gm, (unsigned)idx, 0xD0000800), ==, -EINVAL); /* unaligned */
    g_assert_cmpint(guest_memory_map_device(&gm, (unsigned)idx, UINT64_MAX & ~0xFFFULL), ==, -EINVAL);
    g_assert_cmpint(guest_memory_map_device(&gm, 0, 0xD0000000), ==, -EINVAL); /* RAM is not a device slot */
    g_assert_cmpint(guest_memory_map_device(&gm, 7, 0xD0000000), ==, -EINVAL);
    g_assert_cmpint(guest_memory_map_device(&gm, (unsigned)idx, 0xD0000000), ==, 0);
    unsigned before = changes[idx];
    guest_memory_unmap_device(&gm, (unsigned)idx);
    guest_memory_unmap_device(&gm, (unsigned)idx);
    g_assert_cmpuint(changes[idx], ==, before + 1);
    g_assert_false(guest_memory_is_ram(&gm, 0xD0000000, 4));
    g_assert_cmpint(guest_memory_add_device(&gm, 4097, &host), ==, -EINVAL);
    guest_memory_destroy(&gm);
}

static void collect_offset_cb(void *opaque, uint64_t off)
{
    g_array_append_val((GArray *)opaque, off);
}

static void test_device_slot_dirty_log(void)
{
    struct guest_memory gm;
    g_assert_cmpint(guest_memory_init(&gm, 16 * MiB), ==, 0);
    memset(changes, 0, sizeof(changes));
    gm.listener = &change_counter;
    uint8_t *host = NULL;
    unsigned idx = (unsigned)guest_memory_add_device(&gm, 1 * MiB, &host);
    g_assert_cmpint(guest_memory_map_device(&gm, idx, 0xC0000000), ==, 0);
    g_assert_cmpint(guest_memory_slot_dirty_log_start(&gm, idx), ==, 0);
    g_assert_cmpuint(changes[idx], ==, 2); /* mapped, then logged: the CPU backend must hear about both */
    g_assert_cmpuint(gm.slot_logging, ==, 1);
    g_assert_false(gm.dirty_logging);
    g_assert_null(gm.slots[0].dirty); /* RAM is not logged */
    g_assert_cmpint(guest_mem_write_u8(&gm, 0xC0003001, 1), ==, 0);
    g_assert_cmpint(guest_mem_write_u8(&gm, 0xC0005000, 1), ==, 0);
    g_assert_cmpint(guest_mem_write_u8(&gm, 0x1000, 1), ==, 0);
    GArray *a = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    guest_memory_slot_dirty_collect(&gm, idx, 0x4000, 1 * MiB, collect_offset_cb, a); /* from 0x4000 on */
    g_assert_cmpuint(a->len, ==, 1);
    g_assert_cmphex(g_array_index(a, uint64_t, 0), ==, 0x5000);
    g_array_set_size(a, 0);
    guest_memory_slot_dirty_collect(&gm, idx, 0, UINT64_MAX, collect_offset_cb, a);
    g_assert_cmpuint(a->len, ==, 1);
    g_assert_cmphex(g_array_index(a, uint64_t, 0), ==, 0x3000);
    g_array_set_size(a, 0);
    guest_memory_slot_dirty_collect(&gm, idx, 0, 1 * MiB, collect_offset_cb, a);
    g_assert_cmpuint(a->len, ==, 0);
    /* the global log comes and goes without taking the slot's log with it */
    g_assert_cmpint(guest_memory_dirty_log_start(&gm), ==, 0);
    guest_memory_dirty_log_stop(&gm);
    g_assert_nonnull(gm.slots[idx].dirty);
    g_assert_null(gm.slots[0].dirty);
    g_assert_cmpint(guest_mem_write_u8(&gm, 0xC0000000, 1), ==, 0);
    guest_memory_slot_dirty_collect(&gm, idx, 0, 1 * MiB, collect_offset_cb, a);
    g_assert_cmpuint(a->len, ==, 1);
    guest_memory_slot_dirty_log_stop(&gm, idx);
    g_assert_null(gm.slots[idx].dirty);
    g_assert_cmpuint(gm.slot_logging, ==, 0);
    g_assert_cmpuint(changes[idx], ==, 3);
    g_assert_cmpint(guest_memory_slot_dirty_log_start(&gm, 9), ==, -EINVAL);
    g_array_unref(a);
    guest_memory_destroy(&gm);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/guest-memory/init/rejects-zero-and-unaligned", test_init_rejects_bad_sizes);
    g_test_add_func("/guest-memory/layout/512m-one-slot", test_layout_512m);
    g_test_add_func("/guest-memory/layout/2.75g-one-slot", test_layout_exactly_low_limit);
    g_test_add_func("/guest-memory/layout/4g-split-around-hole", test_layout_4g);
    g_test_add_func("/guest-memory/layout/6g-split-around-hole", test_layout_6g);
    g_test_add_func("/guest-memory/find/slot-edges-hole-and-overflow", test_find_boundaries);
    g_test_add_func("/guest-memory/copy/round-trip", test_copy_round_trip);
    g_test_add_func("/guest-memory/copy/efault-copies-nothing", test_efault_copies_nothing);
    g_test_add_func("/guest-memory/scalar/little-endian-and-slot-ends", test_scalars_little_endian);
    g_test_add_func("/guest-memory/map/read-and-write-alias", test_map_aliases);
    g_test_add_func("/guest-memory/dirty/marks-exactly-touched-pages", test_dirty_log_marks_touched_pages);
    g_test_add_func("/guest-memory/dirty/reads-and-faults-do-not-mark",
                    test_dirty_log_reads_and_faults_do_not_mark);
    g_test_add_func("/guest-memory/dirty/collect-range-clears-only-range", test_dirty_log_collect_range);
    g_test_add_func("/guest-memory/dirty/stop-frees-and-stops-marking", test_dirty_log_stop);
    g_test_add_func("/guest-memory/dirty/high-slot", test_dirty_log_high_slot);
    g_test_add_func("/guest-memory/device/map-move-unmap", test_device_slot_map_move_unmap);
    g_test_add_func("/guest-memory/device/slot-dirty-log", test_device_slot_dirty_log);
    return g_test_run();
}
