/* Proves region registration and overlap checks, dispatch with relative offsets and size masking, unmapped
 * accesses, handlers that move their own region, and the re-entrancy guard. */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "io_bus.h"
#include "log.h"

/* A fake device that records its last access. */
struct dev {
    struct io_bus *bus;
    uint64_t read_value;
    unsigned reads, writes;
    uint64_t last_offset, last_value;
    unsigned last_size;
    struct io_guard guard;

    /* nested access made from inside a handler */
    uint64_t nested_addr;
    bool nested_ok;
    uint64_t nested_value;

    /* BAR-move simulation */
    uint64_t base, len;
};

static uint64_t dev_read(void *opaque, uint64_t offset, unsigned size)
{
    struct dev *d = opaque;
    d->reads++;
    d->last_offset = offset;
    d->last_size = size;
    return d->read_value;
}

static void dev_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct dev *d = opaque;
    d->writes++;
    d->last_offset = offset;
    d->last_size = size;
    d->last_value = value;
}

static const struct io_ops dev_ops = {dev_read, dev_write};

static void test_register_and_dispatch(void)
{
    struct io_bus bus;
    io_bus_init(&bus, "mmio");
    struct dev a = {.read_value = 0xAB}, b = {.read_value = 0xCD};
    g_assert_cmpint(io_bus_register(&bus, 0x1000, 0x100, &dev_ops, &a, "a", NULL), ==, 0);
    g_assert_cmpint(io_bus_register(&bus, 0x400, 0x10, &dev_ops, &b, "b", NULL), ==, 0);
    g_assert_cmpuint(bus.count, ==, 2);
    /* kept sorted by base */
    g_assert_cmphex(bus.regions[0].base, ==, 0x400);
    g_assert_cmphex(bus.regions[1].base, ==, 0x1000);

    const struct io_region *r = io_bus_find(&bus, 0x10FC, 4);
    g_assert_nonnull(r);
    g_assert_true(r->opaque == &a);
    g_assert_cmpstr(r->name, ==, "a");
    g_assert_cmphex(r->base, ==, 0x1000);
    g_assert_cmphex(r->len, ==, 0x100);
    g_assert_true(io_bus_find(&bus, 0x400, 1)->opaque == &b);
    g_assert_true(io_bus_find(&bus, 0x40F, 1)->opaque == &b);
    g_assert_null(io_bus_find(&bus, 0x40F, 2));
    g_assert_null(io_bus_find(&bus, 0x3FF, 1));
    g_assert_null(io_bus_find(&bus, 0x410, 1));
    g_assert_null(io_bus_find(&bus, 0x1000, 0));
    g_assert_null(io_bus_find(&bus, UINT64_MAX, 2));

    uint64_t v = 0;
    g_assert_true(io_bus_read(&bus, 0x1044, 4, &v));
    g_assert_cmphex(v, ==, 0xAB);
    g_assert_cmpuint(a.reads, ==, 1);
    g_assert_cmphex(a.last_offset, ==, 0x44);
    g_assert_cmpuint(a.last_size, ==, 4);

    g_assert_true(io_bus_write(&bus, 0x40E, 2, 0x1234));
    g_assert_cmpuint(b.writes, ==, 1);
    g_assert_cmphex(b.last_offset, ==, 0xE);
    g_assert_cmpuint(b.last_size, ==, 2);
    g_assert_cmphex(b.last_value, ==, 0x1234);
    g_assert_cmpuint(a.writes, ==, 0);
    g_assert_cmpuint(bus.unmapped_accesses, ==, 0);
    io_bus_destroy(&bus);
    g_assert_null(bus.regions);
    g_assert_cmpuint(bus.count, ==, 0);
}

static void test_sizes_and_masking(void)
{
    struct io_bus bus;
    io_bus_init(&bus, "mmio");
    struct dev a = {.read_value = 0x1122334455667788ULL};
    g_assert_cmpint(io_bus_register(&bus, 0x2000, 0x10, &dev_ops, &a, "a", NULL), ==, 0);
    static const struct {
        unsigned size;
        uint64_t mask;
    } sizes[] = {{1, 0xFF}, {2, 0xFFFF}, {4, 0xFFFFFFFF}, {8, UINT64_MAX}};
    for (unsigned i = 0; i < G_N_ELEMENTS(sizes); i++) {
        uint64_t v = 0;
        g_assert_true(io_bus_read(&bus, 0x2008, sizes[i].size, &v));
        g_assert_cmphex(v, ==, 0x1122334455667788ULL & sizes[i].mask);
        g_assert_cmpuint(a.last_size, ==, sizes[i].size);
        g_assert_cmphex(a.last_offset, ==, 8);

        g_assert_true(io_bus_write(&bus, 0x2008, sizes[i].size, 0xF0E1D2C3B4A59687ULL));
        g_assert_cmphex(a.last_value, ==, 0xF0E1D2C3B4A59687ULL & sizes[i].mask);
        g_assert_cmpuint(a.last_size, ==, sizes[i].size);
    }
    g_assert_cmpuint(a.reads, ==, 4);
    g_assert_cmpuint(a.writes, ==, 4);
    io_bus_destroy(&bus);
}

static void test_overlap_detection(void)
{
    struct io_bus bus;
    io_bus_init(&bus, "pio");
    struct dev a = {0}, b = {0};
    g_assert_cmpint(io_bus_register(&bus, 0x100, 0x10, &dev_ops, &a, "a", NULL), ==, 0);
    /* identical */
    g_assert_cmpint(io_bus_register(&bus, 0x100, 0x10, &dev_ops, &b, "b", NULL), ==, -EEXIST);
    /* partial overlap at the start and at the end */
    g_assert_cmpint(io_bus_register(&bus, 0xF8, 0x10, &dev_ops, &b, "b", NULL), ==, -EEXIST);
    g_assert_cmpint(io_bus_register(&bus, 0xFF, 2, &dev_ops, &b, "b", NULL), ==, -EEXIST);
    g_assert_cmpint(io_bus_register(&bus, 0x108, 0x10, &dev_ops, &b, "b", NULL), ==, -EEXIST);
    g_assert_cmpint(io_bus_register(&bus, 0x10F, 1, &dev_ops, &b, "b", NULL), ==, -EEXIST);
    /* containing and contained */
    g_assert_cmpint(io_bus_register(&bus, 0xF0, 0x30, &dev_ops, &b, "b", NULL), ==, -EEXIST);
    g_assert_cmpint(io_bus_register(&bus, 0, UINT64_MAX, &dev_ops, &b, "b", NULL), ==, -EEXIST);
    g_assert_cmpint(io_bus_register(&bus, 0x104, 4, &dev_ops, &b, "b", NULL), ==, -EEXIST);
    g_assert_cmpuint(bus.count, ==, 1);
    /* adjacent on both sides is fine */
    g_assert_cmpint(io_bus_register(&bus, 0xF0, 0x10, &dev_ops, &b, "below", NULL), ==, 0);
    g_assert_cmpint(io_bus_register(&bus, 0x110, 0x10, &dev_ops, &b, "above", NULL), ==, 0);
    g_assert_cmpuint(bus.count, ==, 3);
    /* a gap-filling region that overlaps the neighbour beyond the gap is refused */
    g_assert_cmpint(io_bus_register(&bus, 0x120, 0x10, &dev_ops, &b, "gap", NULL), ==, 0);
    g_assert_cmpint(io_bus_register(&bus, 0xE0, 0x11, &dev_ops, &b, "x", NULL), ==, -EEXIST);
    g_assert_cmpint(io_bus_register(&bus, 0xE0, 0x10, &dev_ops, &b, "x", NULL), ==, 0);

    /* empty, wrapping and op-less regions are invalid */
    g_assert_cmpint(io_bus_register(&bus, 0x1000, 0, &dev_ops, &b, "b", NULL), ==, -EINVAL);
    g_assert_cmpint(io_bus_register(&bus, UINT64_MAX, 2, &dev_ops, &b, "b", NULL), ==, -EINVAL);
    g_assert_cmpint(io_bus_register(&bus, 0x8000, UINT64_MAX, &dev_ops, &b, "b", NULL), ==, -EINVAL);
    g_assert_cmpint(io_bus_register(&bus, 0x1000, 4, NULL, &b, "b", NULL), ==, -EINVAL);
    /* ending exactly at the top of the address space is not wrapping */
    g_assert_cmpint(io_bus_register(&bus, UINT64_MAX, 1, &dev_ops, &b, "top", NULL), ==, 0);
    g_assert_true(io_bus_find(&bus, UINT64_MAX, 1)->opaque == &b);
    g_assert_cmpint(io_bus_register(&bus, UINT64_MAX - 3, 4, &dev_ops, &b, "top2", NULL), ==, -EEXIST);
    g_assert_cmpuint(bus.count, ==, 6);
    io_bus_destroy(&bus);
}

static void test_unregister(void)
{
    struct io_bus bus;
    io_bus_init(&bus, "pio");
    struct dev a = {.read_value = 1}, b = {.read_value = 2};
    g_assert_cmpint(io_bus_register(&bus, 0x60, 1, &dev_ops, &a, "a", NULL), ==, 0);
    g_assert_cmpint(io_bus_register(&bus, 0x64, 1, &dev_ops, &b, "b", NULL), ==, 0);
    g_assert_cmpint(io_bus_unregister(&bus, 0x60, &b), ==, -ENOENT);
    g_assert_cmpint(io_bus_unregister(&bus, 0x61, &a), ==, -ENOENT);
    g_assert_cmpuint(bus.count, ==, 2);
    g_assert_cmpint(io_bus_unregister(&bus, 0x60, &a), ==, 0);
    g_assert_cmpint(io_bus_unregister(&bus, 0x60, &a), ==, -ENOENT);
    g_assert_cmpuint(bus.count, ==, 1);
    uint64_t v;
    g_assert_false(io_bus_read(&bus, 0x60, 1, &v));
    g_assert_cmphex(v, ==, 0xFF);
    g_assert_cmpuint(a.reads, ==, 0);
    g_assert_true(io_bus_read(&bus, 0x64, 1, &v));
    g_assert_cmphex(v, ==, 2);
    /* the freed range can be taken again */
    g_assert_cmpint(io_bus_register(&bus, 0x60, 4, &dev_ops, &b, "b2", NULL), ==, 0);
    g_assert_true(io_bus_read(&bus, 0x62, 1, &v));
    g_assert_cmphex(b.last_offset, ==, 2);
    io_bus_destroy(&bus);
}

static void test_unmapped_all_ones(void)
{
    struct io_bus bus;
    io_bus_init(&bus, "mmio");
    struct dev a = {.read_value = 0}, b = {.read_value = 0};
    g_assert_cmpint(io_bus_register(&bus, 0x100, 4, &dev_ops, &a, "a", NULL), ==, 0);
    g_assert_cmpint(io_bus_register(&bus, 0x104, 4, &dev_ops, &b, "b", NULL), ==, 0);

    static const struct {
        unsigned size;
        uint64_t ones;
    } sizes[] = {{1, 0xFF}, {2, 0xFFFF}, {4, 0xFFFFFFFF}, {8, UINT64_MAX}};
    uint64_t expect_unmapped = 0;
    for (unsigned i = 0; i < G_N_ELEMENTS(sizes); i++) {
        uint64_t v = 0x5555;
        g_assert_false(io_bus_read(&bus, 0x2000, sizes[i].size, &v));
        g_assert_cmphex(v, ==, sizes[i].ones);
        g_assert_cmpuint(bus.unmapped_accesses, ==, ++expect_unmapped);
        g_assert_false(io_bus_write(&bus, 0x2000, sizes[i].size, 0));
        g_assert_cmpuint(bus.unmapped_accesses, ==, ++expect_unmapped);
    }

    /* straddling two regions, or a region's end, is unmapped and reaches neither device */
    uint64_t v = 0;
    g_assert_false(io_bus_read(&bus, 0x102, 4, &v));
    g_assert_cmphex(v, ==, 0xFFFFFFFF);
    g_assert_false(io_bus_write(&bus, 0x103, 2, 0));
    g_assert_false(io_bus_read(&bus, 0x104, 8, &v));
    g_assert_cmphex(v, ==, UINT64_MAX);
    g_assert_false(io_bus_read(&bus, 0xFF, 2, &v));
    g_assert_cmphex(v, ==, 0xFFFF);
    g_assert_cmpuint(bus.unmapped_accesses, ==, expect_unmapped + 4);
    g_assert_cmpuint(a.reads + a.writes + b.reads + b.writes, ==, 0);

    /* an access wrapping the address space never matches */
    g_assert_false(io_bus_read(&bus, UINT64_MAX, 2, &v));
    g_assert_cmphex(v, ==, 0xFFFF);
    /* a zero-sized access is refused without a shift by 0 bits misbehaving */
    g_assert_false(io_bus_read(&bus, 0x100, 0, &v));
    g_assert_cmpuint(a.reads, ==, 0);
    io_bus_destroy(&bus);
}

static void test_null_ops(void)
{
    struct io_bus bus;
    io_bus_init(&bus, "mmio");
    static const struct io_ops read_only = {dev_read, NULL};
    static const struct io_ops write_only = {NULL, dev_write};
    struct dev a = {.read_value = 0x77}, b = {.read_value = 0x88};
    g_assert_cmpint(io_bus_register(&bus, 0x10, 4, &read_only, &a, "ro", NULL), ==, 0);
    g_assert_cmpint(io_bus_register(&bus, 0x20, 4, &write_only, &b, "wo", NULL), ==, 0);
    uint64_t v;
    /* the access is claimed (not unmapped): writes are ignored, reads float high */
    g_assert_true(io_bus_write(&bus, 0x10, 4, 1));
    g_assert_true(io_bus_read(&bus, 0x10, 4, &v));
    g_assert_cmphex(v, ==, 0x77);
    g_assert_true(io_bus_read(&bus, 0x20, 2, &v));
    g_assert_cmphex(v, ==, 0xFFFF);
    g_assert_true(io_bus_write(&bus, 0x20, 4, 0x99));
    g_assert_cmphex(b.last_value, ==, 0x99);
    g_assert_cmpuint(b.reads, ==, 0);
    g_assert_cmpuint(bus.unmapped_accesses, ==, 0);
    io_bus_destroy(&bus);
}

/* A write of a new base to offset 0 moves the region there, like a PCI BAR write, and registers enough filler
 * regions that the region array is reallocated under the running dispatch. */
static void bar_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct dev *d = opaque;
    dev_write(opaque, offset, value, size);
    if (offset != 0)
        return;
    static const struct io_ops ops = {dev_read, bar_write};
    g_assert_cmpint(io_bus_unregister(d->bus, d->base, d), ==, 0);
    g_assert_cmpint(io_bus_register(d->bus, value, d->len, &ops, d, "bar", &d->guard), ==, 0);
    d->base = value;
    static uint64_t fillers;
    unsigned before = d->bus->capacity;
    while (d->bus->capacity == before) {
        uint64_t base = 0x100000 + fillers++ * 0x10;
        g_assert_cmpint(io_bus_register(d->bus, base, 4, &dev_ops, NULL, "filler", NULL), ==, 0);
    }
}

static void test_handler_moves_own_region(void)
{
    struct io_bus bus;
    io_bus_init(&bus, "mmio");
    static const struct io_ops ops = {dev_read, bar_write};
    struct dev d = {.bus = &bus, .read_value = 0x42, .base = 0xE0000000, .len = 0x1000};
    g_assert_cmpint(io_bus_register(&bus, d.base, d.len, &ops, &d, "bar", &d.guard), ==, 0);

    g_assert_true(io_bus_write(&bus, 0xE0000000, 4, 0xF0000000));
    g_assert_cmpuint(d.writes, ==, 1);
    g_assert_false(d.guard.active);
    g_assert_cmphex(d.base, ==, 0xF0000000);

    uint64_t v;
    g_assert_false(io_bus_read(&bus, 0xE0000010, 4, &v));
    g_assert_cmphex(v, ==, 0xFFFFFFFF);
    g_assert_cmpuint(d.reads, ==, 0);
    g_assert_true(io_bus_read(&bus, 0xF0000010, 4, &v));
    g_assert_cmphex(v, ==, 0x42);
    g_assert_cmpuint(d.reads, ==, 1);
    g_assert_cmphex(d.last_offset, ==, 0x10);

    /* and back again */
    g_assert_true(io_bus_write(&bus, 0xF0000000, 4, 0xE0000000));
    g_assert_true(io_bus_read(&bus, 0xE0000FFC, 4, &v));
    g_assert_cmphex(d.last_offset, ==, 0xFFC);
    g_assert_false(io_bus_read(&bus, 0xF0000000, 4, &v));
    g_assert_cmpuint(bus.refused_reentries, ==, 0);
    io_bus_destroy(&bus);
}

/* Makes a nested read of d->nested_addr from inside the handler. */
static uint64_t nesting_read(void *opaque, uint64_t offset, unsigned size)
{
    struct dev *d = opaque;
    dev_read(opaque, offset, size);
    d->nested_value = 0x5A5A;
    d->nested_ok = io_bus_read(d->bus, d->nested_addr, 4, &d->nested_value);
    return d->read_value;
}

static void nesting_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct dev *d = opaque;
    dev_write(opaque, offset, value, size);
    d->nested_ok = io_bus_write(d->bus, d->nested_addr, 4, value);
}

static const struct io_ops nesting_ops = {nesting_read, nesting_write};

static void test_reentrancy_guard_refuses_self(void)
{
    struct io_bus bus;
    io_bus_init(&bus, "mmio");
    struct dev d = {.bus = &bus, .read_value = 0x1234, .nested_addr = 0x1004};
    g_assert_cmpint(io_bus_register(&bus, 0x1000, 0x10, &nesting_ops, &d, "dma", &d.guard), ==, 0);

    uint64_t v;
    g_assert_true(io_bus_read(&bus, 0x1000, 4, &v));
    g_assert_cmphex(v, ==, 0x1234);
    g_assert_cmpuint(d.reads, ==, 1); /* the nested read never reached the handler */
    g_assert_false(d.nested_ok);
    g_assert_cmphex(d.nested_value, ==, 0xFFFFFFFF);
    g_assert_cmpuint(bus.refused_reentries, ==, 1);
    g_assert_cmpuint(bus.unmapped_accesses, ==, 0);
    g_assert_false(d.guard.active);

    g_assert_true(io_bus_write(&bus, 0x1008, 4, 7));
    g_assert_cmpuint(d.writes, ==, 1);
    g_assert_false(d.nested_ok);
    g_assert_cmpuint(bus.refused_reentries, ==, 2);

    /* the guard is released afterwards: a top-level access works again */
    d.nested_addr = 0x9999; /* unmapped: the nested access is not refused by the guard */
    g_assert_true(io_bus_read(&bus, 0x1004, 4, &v));
    g_assert_cmpuint(d.reads, ==, 2);
    g_assert_cmpuint(bus.refused_reentries, ==, 2);
    g_assert_cmpuint(bus.unmapped_accesses, ==, 1);
    io_bus_destroy(&bus);
}

static void test_reentrancy_guard_shared_by_regions(void)
{
    struct io_bus bus;
    io_bus_init(&bus, "pio");
    struct dev d = {.bus = &bus, .read_value = 1, .nested_addr = 0x200};
    /* two regions of one device share its guard */
    g_assert_cmpint(io_bus_register(&bus, 0x100, 4, &nesting_ops, &d, "ctl", &d.guard), ==, 0);
    g_assert_cmpint(io_bus_register(&bus, 0x200, 4, &dev_ops, &d, "data", &d.guard), ==, 0);
    uint64_t v;
    g_assert_true(io_bus_read(&bus, 0x100, 1, &v));
    g_assert_false(d.nested_ok);
    g_assert_cmpuint(d.reads, ==, 1);
    g_assert_cmpuint(bus.refused_reentries, ==, 1);
    io_bus_destroy(&bus);
}

static void test_reentrancy_other_device_allowed(void)
{
    struct io_bus bus;
    io_bus_init(&bus, "mmio");
    struct dev d = {.bus = &bus, .read_value = 1, .nested_addr = 0x2000};
    struct dev plain = {.read_value = 0xBEEF};
    struct dev guarded = {.read_value = 0xF00D};
    g_assert_cmpint(io_bus_register(&bus, 0x1000, 0x10, &nesting_ops, &d, "dma", &d.guard), ==, 0);
    g_assert_cmpint(io_bus_register(&bus, 0x2000, 0x10, &dev_ops, &plain, "plain", NULL), ==, 0);
    g_assert_cmpint(io_bus_register(&bus, 0x3000, 0x10, &dev_ops, &guarded, "guarded", &guarded.guard), ==,
                    0);

    /* to a device without a guard */
    uint64_t v;
    g_assert_true(io_bus_read(&bus, 0x1000, 4, &v));
    g_assert_true(d.nested_ok);
    g_assert_cmphex(d.nested_value, ==, 0xBEEF);
    g_assert_cmpuint(plain.reads, ==, 1);
    /* to a device with a guard of its own */
    d.nested_addr = 0x3004;
    g_assert_true(io_bus_read(&bus, 0x1000, 4, &v));
    g_assert_true(d.nested_ok);
    g_assert_cmphex(d.nested_value, ==, 0xF00D);
    g_assert_cmphex(guarded.last_offset, ==, 4);
    g_assert_false(guarded.guard.active);
    g_assert_true(io_bus_write(&bus, 0x1000, 4, 0xAA));
    g_assert_true(d.nested_ok);
    g_assert_cmphex(guarded.last_value, ==, 0xAA);
    g_assert_cmpuint(bus.refused_reentries, ==, 0);
    io_bus_destroy(&bus);
}

/* Each region's opaque is its index; reads return index << 8 | offset. */
static uint64_t index_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)size;
    return (uint64_t)GPOINTER_TO_UINT(opaque) << 8 | offset;
}

static const struct io_ops index_ops = {index_read, NULL};

static void test_many_regions_random_order(void)
{
    enum { N = 1000 };
    struct io_bus bus;
    io_bus_init(&bus, "pio");
    unsigned order[N];
    for (unsigned i = 0; i < N; i++)
        order[i] = i;
    GRand *rand = g_rand_new_with_seed(1234);
    for (unsigned i = N - 1; i > 0; i--) {
        unsigned j = (unsigned)g_rand_int_range(rand, 0, (gint32)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* region i: [i * 16, i * 16 + 4 + i % 8) */
    for (unsigned k = 0; k < N; k++) {
        unsigned i = order[k];
        g_assert_cmpint(
            io_bus_register(&bus, i * 16ULL, 4 + i % 8, &index_ops, GUINT_TO_POINTER(i), "r", NULL), ==, 0);
    }
    g_assert_cmpuint(bus.count, ==, N);
    for (unsigned i = 1; i < N; i++)
        g_assert_cmpuint(bus.regions[i - 1].base, <, bus.regions[i].base);

    for (unsigned i = 0; i < N; i++) {
        uint64_t len = 4 + i % 8, v;
        for (uint64_t off = 0; off < 16; off++) {
            bool mapped = off < len;
            g_assert_cmpint(io_bus_read(&bus, i * 16ULL + off, 1, &v), ==, mapped);
            g_assert_cmphex(v, ==, mapped ? ((i << 8 | off) & 0xFF) : 0xFF);
        }
        g_assert_true(io_bus_read(&bus, i * 16ULL, 4, &v));
        g_assert_cmphex(v, ==, (uint64_t)i << 8);
        g_assert_cmpint(io_bus_read(&bus, i * 16ULL + len - 2, 4, &v), ==, false);
    }

    /* remove the odd ones in random order; the even ones still dispatch */
    for (unsigned k = 0; k < N; k++)
        if (order[k] % 2)
            g_assert_cmpint(io_bus_unregister(&bus, order[k] * 16ULL, GUINT_TO_POINTER(order[k])), ==, 0);
    g_assert_cmpuint(bus.count, ==, N / 2);
    for (unsigned i = 0; i < N; i++) {
        uint64_t v;
        g_assert_cmpint(io_bus_read(&bus, i * 16ULL + 2, 2, &v), ==, i % 2 == 0);
        g_assert_cmphex(v, ==, i % 2 ? 0xFFFF : ((uint64_t)i << 8 | 2) & 0xFFFF);
    }
    g_rand_free(rand);
    io_bus_destroy(&bus);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    log_set_level(LOG_LEVEL_ERROR); /* refused re-entries warn; keep the TAP output clean */

    g_test_add_func("/io-bus/dispatch/relative-offsets", test_register_and_dispatch);
    g_test_add_func("/io-bus/dispatch/sizes-mask-values", test_sizes_and_masking);
    g_test_add_func("/io-bus/dispatch/null-ops-claim-access", test_null_ops);
    g_test_add_func("/io-bus/register/overlap-and-invalid", test_overlap_detection);
    g_test_add_func("/io-bus/unregister/needs-base-and-opaque", test_unregister);
    g_test_add_func("/io-bus/unmapped/all-ones-and-counted", test_unmapped_all_ones);
    g_test_add_func("/io-bus/handler/moves-own-region", test_handler_moves_own_region);
    g_test_add_func("/io-bus/guard/refuses-nested-self-access", test_reentrancy_guard_refuses_self);
    g_test_add_func("/io-bus/guard/shared-by-device-regions", test_reentrancy_guard_shared_by_regions);
    g_test_add_func("/io-bus/guard/allows-other-device", test_reentrancy_other_device_allowed);
    g_test_add_func("/io-bus/lookup/1000-regions-random-order", test_many_regions_random_order);
    return g_test_run();
}
