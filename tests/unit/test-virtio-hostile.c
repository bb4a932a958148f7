/* Hostile rings against the virtio core: loops, indices and addresses out of range, buffers in MMIO or across
 * the PCI hole, oversized chains, bad indirect tables, an available index that jumps. Each must end in
 * DEVICE_NEEDS_RESET with a configuration interrupt and a log line, never a crash or hang, and the device
 * must work again after a reset. */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "virtio_driver.h"

/* ---------------------------------------------------------------- hostile rings */

/* After the guest broke the rules: NEEDS_RESET, one configuration interrupt, the reason in the log, nothing
 * completed and nothing processed any more; then a reset brings the device back. */
static void assert_broken_then_recover(const char *logged, unsigned config_msis_before)
{
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_DRIVER_OK, ==, VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_cmpuint(vd_rec.nmsi, ==, config_msis_before + 1);
    vd_assert_msi(config_msis_before, 0);
    vd_assert_logged(logged);
    vd_assert_logged("device needs reset");
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 0);
    /* Broken stays broken: more work is not looked at, no more interrupts. */
    vd_submit_simple(0, 60, 8);
    unsigned n = vd_echo.notifies;
    vd_kick(0);
    g_assert_cmpuint(vd_echo.notifies, ==, n);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 0);
    g_assert_cmpuint(vd_rec.nmsi, ==, config_msis_before + 1);
    /* The vd_status bit cannot be cleared by the driver, only by a reset. */
    vd_set_status(vd_status() & ~VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, VIRTIO_CONFIG_S_NEEDS_RESET);

    vd_init(STD_FEATURES, true);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    vd_submit_simple(0, 0, 40);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 1);
    vd_assert_used(&vd_q[0], 0, 0, 40);
    vd_assert_echoed(0, 40);
    vd_assert_msi(vd_rec.nmsi - 1, 1);
}

typedef void (*hostile_fn)(struct vd_queue *x);

static void h_loop(struct vd_queue *x)
{
    vd_set_desc(x->desc, 0, OUTBUF(0), 8, VIRTQ_DESC_F_NEXT, 1);
    vd_set_desc(x->desc, 1, OUTBUF(0), 8, VIRTQ_DESC_F_NEXT, 2);
    vd_set_desc(x->desc, 2, OUTBUF(0), 8, VIRTQ_DESC_F_NEXT, 0);
    vd_avail_add(x, 0);
}

static void h_self_loop(struct vd_queue *x)
{
    vd_set_desc(x->desc, 9, INBUF(0), 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 9);
    vd_avail_add(x, 9);
}

static void h_indirect_loop(struct vd_queue *x)
{
    const uint64_t t = 0x600000;
    vd_set_desc(t, 0, OUTBUF(0), 8, VIRTQ_DESC_F_NEXT, 1);
    vd_set_desc(t, 1, OUTBUF(0), 8, VIRTQ_DESC_F_NEXT, 0);
    vd_set_desc(x->desc, 0, t, 2 * VIRTQ_DESC_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
    vd_avail_add(x, 0);
}

static void h_next_out_of_range(struct vd_queue *x)
{
    vd_set_desc(x->desc, 0, OUTBUF(0), 8, VIRTQ_DESC_F_NEXT, x->size);
    vd_avail_add(x, 0);
}

static void h_indirect_next_out_of_range(struct vd_queue *x)
{
    const uint64_t t = 0x600000;
    vd_set_desc(t, 0, OUTBUF(0), 8, VIRTQ_DESC_F_NEXT, 3);
    vd_set_desc(x->desc, 0, t, 3 * VIRTQ_DESC_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
    vd_avail_add(x, 0);
}

static void h_head_out_of_range(struct vd_queue *x)
{
    vd_avail_add(x, (uint16_t)(x->size + 44));
}

static void h_addr_past_ram(struct vd_queue *x)
{
    vd_set_desc(x->desc, 0, OUTBUF(0), 8, VIRTQ_DESC_F_NEXT, 1);
    vd_set_desc(x->desc, 1, 64 * MiB - 0x800, 0x1000, VIRTQ_DESC_F_WRITE, 0);
    vd_avail_add(x, 0);
}

static void h_addr_in_mmio(struct vd_queue *x)
{
    /* The device's own BAR: DMA must never reach MMIO. */
    vd_set_desc(x->desc, 0, vd_dev.bar[4], 0x100, 0, 0);
    vd_avail_add(x, 0);
}

static void h_addr_wraps(struct vd_queue *x)
{
    vd_set_desc(x->desc, 0, 0xfffffffffffff000ULL, 0x2000, 0, 0);
    vd_avail_add(x, 0);
}

static void h_total_too_long(struct vd_queue *x)
{
    /* 33 x 32 MiB of the same RAM: every segment is fine, the sum is over 1 GiB. */
    for (unsigned i = 0; i < 33; i++)
        vd_set_desc(x->desc, i, 0x1000000, 0x2000000, i < 32 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    vd_avail_add(x, 0);
}

static void h_nested_indirect(struct vd_queue *x)
{
    const uint64_t t = 0x600000, t2 = 0x601000;
    vd_set_desc(t2, 0, OUTBUF(0), 8, 0, 0);
    vd_set_desc(t, 0, OUTBUF(0), 8, VIRTQ_DESC_F_NEXT, 1);
    vd_set_desc(t, 1, t2, VIRTQ_DESC_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
    vd_set_desc(x->desc, 0, t, 2 * VIRTQ_DESC_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
    vd_avail_add(x, 0);
}

static void h_indirect_bad_length(struct vd_queue *x)
{
    vd_set_desc(0x600000, 0, OUTBUF(0), 8, 0, 0);
    vd_set_desc(x->desc, 0, 0x600000, 24, VIRTQ_DESC_F_INDIRECT, 0);
    vd_avail_add(x, 0);
}

static void h_indirect_zero_length(struct vd_queue *x)
{
    vd_set_desc(x->desc, 0, 0x600000, 0, VIRTQ_DESC_F_INDIRECT, 0);
    vd_avail_add(x, 0);
}

static void h_indirect_too_big(struct vd_queue *x)
{
    vd_set_desc(x->desc, 0, 0x600000, (VIRTQ_INDIRECT_MAX + 1) * VIRTQ_DESC_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
    vd_avail_add(x, 0);
}

static void h_indirect_table_past_ram(struct vd_queue *x)
{
    vd_set_desc(x->desc, 0, 64 * MiB - 0x10, 2 * VIRTQ_DESC_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
    vd_avail_add(x, 0);
}

static void h_indirect_with_next(struct vd_queue *x)
{
    vd_set_desc(0x600000, 0, OUTBUF(0), 8, 0, 0);
    vd_set_desc(x->desc, 0, 0x600000, VIRTQ_DESC_SIZE, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    vd_set_desc(x->desc, 1, OUTBUF(0), 8, 0, 0);
    vd_avail_add(x, 0);
}

static void h_avail_jump(struct vd_queue *x)
{
    vd_set_desc(x->desc, 0, OUTBUF(0), 8, 0, 0);
    vd_mem_w16(x->avail + 4, 0);
    x->avail_idx = (uint16_t)(x->size + 1);
    vd_mem_w16(x->avail + 2, x->avail_idx);
}

static void h_read_after_write(struct vd_queue *x)
{
    vd_set_desc(x->desc, 0, INBUF(0), 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    vd_set_desc(x->desc, 1, OUTBUF(0), 8, 0, 0);
    vd_avail_add(x, 0);
}

struct hostile_case {
    const char *path;
    hostile_fn fn;
    const char *logged;
};

static const struct hostile_case hostile_cases[] = {
    {"/virtio/hostile/descriptor-loop", h_loop, "descriptor loop"},
    {"/virtio/hostile/descriptor-self-loop", h_self_loop, "descriptor loop"},
    {"/virtio/hostile/indirect-loop", h_indirect_loop, "indirect table)"},
    {"/virtio/hostile/next-out-of-range", h_next_out_of_range, "next index 256 beyond the 256-entry"},
    {"/virtio/hostile/indirect-next-out-of-range", h_indirect_next_out_of_range,
     "next index 3 beyond the 3-entry"},
    {"/virtio/hostile/head-out-of-range", h_head_out_of_range, "names descriptor 300 of 256"},
    {"/virtio/hostile/address-past-ram", h_addr_past_ram,
     "buffer 0x3fff800+0x1000 is not in writable guest RAM"},
    {"/virtio/hostile/address-in-mmio", h_addr_in_mmio, "is not in guest RAM"},
    {"/virtio/hostile/address-wraps", h_addr_wraps, "buffer 0xfffffffffffff000+0x2000"},
    {"/virtio/hostile/total-length-overflow", h_total_too_long, "more than 1073741824 bytes"},
    {"/virtio/hostile/indirect-inside-indirect", h_nested_indirect, "indirect descriptor inside an indirect"},
    {"/virtio/hostile/indirect-bad-length", h_indirect_bad_length, "indirect table of 24 bytes"},
    {"/virtio/hostile/indirect-zero-length", h_indirect_zero_length, "indirect table of 0 bytes"},
    {"/virtio/hostile/indirect-too-big", h_indirect_too_big, "indirect table of 16400 bytes"},
    {"/virtio/hostile/indirect-table-past-ram", h_indirect_table_past_ram, "indirect table 0x3fffff0+0x20"},
    {"/virtio/hostile/indirect-with-next", h_indirect_with_next,
     "indirect descriptor with VIRTQ_DESC_F_NEXT"},
    {"/virtio/hostile/avail-idx-jump", h_avail_jump, "available index moved from 0 to 257"},
    {"/virtio/hostile/readable-after-writable", h_read_after_write, "device-readable descriptor after"},
};

static void test_hostile(gconstpointer data)
{
    const struct hostile_case *c = data;
    vd_setup();
    vd_start(STD_FEATURES);
    c->fn(&vd_q[0]);
    vd_kick(0);
    assert_broken_then_recover(c->logged, 0);
    vd_teardown();
}

/* Indirect descriptors the driver did not negotiate are refused too. */
static void test_hostile_indirect_not_negotiated(void)
{
    vd_setup();
    vd_start(F(VIRTIO_F_VERSION_1));
    vd_set_desc(0x600000, 0, OUTBUF(0), 8, 0, 0);
    vd_set_desc(vd_q[0].desc, 0, 0x600000, VIRTQ_DESC_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
    vd_avail_add(&vd_q[0], 0);
    vd_kick(0);
    assert_broken_then_recover("without VIRTIO_F_INDIRECT_DESC", 0);
    vd_teardown();
}

/* Rings the driver places badly are caught when it enables the queue. */
static void test_hostile_ring_addresses(void)
{
    vd_setup();
    vd_start(STD_FEATURES);
    vd_set_status(0);
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    vd_write_driver_features(STD_FEATURES);
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_DESCLO, 0x100000, 8);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_AVAILLO, 0x108000, 8);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_USEDLO, 0x110002, 8); /* used ring must be 4-aligned */
    vd_common_wr(VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), ==, 0);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, VIRTIO_CONFIG_S_NEEDS_RESET);
    vd_assert_logged("queue 0: used ring is misaligned or not in guest RAM");
    g_assert_cmpuint(vd_rec.nmsi, ==, 0); /* DRIVER_OK was not set: no interrupt yet */
    vd_init(STD_FEATURES, true);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    /* A descriptor table running past the end of RAM. */
    vd_set_status(0);
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    vd_write_driver_features(STD_FEATURES);
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_DESCLO, 64 * MiB - 0x800, 8);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    vd_assert_logged("queue 0: descriptor table is misaligned or not in guest RAM");
    vd_teardown();
}

/* The INTx flavour of a device error: ISR bit 1 and the line. */
static void test_hostile_intx(void)
{
    vd_setup();
    vd_probe();
    vd_bus_master_only();
    vd_init(STD_FEATURES, false);
    h_loop(&vd_q[0]);
    vd_kick(0);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmpint(vd_rec.level[vd_gsi], ==, 1);
    g_assert_cmphex(vd_isr_read(), ==, VIRTIO_ISR_CONFIG);
    g_assert_cmpint(vd_rec.level[vd_gsi], ==, 0);
    vd_teardown();
}

/* Guest RAM on both sides of the PCI hole: a buffer that spans the hole is refused, one above it works. */
static void test_hostile_spans_mmio_hole(void)
{
    vd_setup_ram(GUEST_MEMORY_LOW_LIMIT + 2 * MiB);
    vd_start(STD_FEATURES);
    struct vd_queue *x = &vd_q[0];
    g_assert_cmpint(guest_mem_fill(&vd_m.mem, GUEST_MEMORY_HIGH_BASE, 0x77, 16), ==, 0);
    vd_set_desc(x->desc, 0, GUEST_MEMORY_HIGH_BASE, 16, VIRTQ_DESC_F_NEXT, 1);
    vd_set_desc(x->desc, 1, GUEST_MEMORY_HIGH_BASE + 0x1000, 16, VIRTQ_DESC_F_WRITE, 0);
    vd_avail_add(x, 0);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(x), ==, 1);
    vd_assert_used(x, 0, 0, 16);
    uint8_t b;
    g_assert_cmpint(guest_mem_read_u8(&vd_m.mem, GUEST_MEMORY_HIGH_BASE + 0x100f, &b), ==, 0);
    g_assert_cmphex(b, ==, 0x77);

    vd_set_desc(x->desc, 2, GUEST_MEMORY_LOW_LIMIT - 0x1000, 0x2000, 0, 0);
    vd_avail_add(x, 2);
    vd_kick(0);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, VIRTIO_CONFIG_S_NEEDS_RESET);
    vd_assert_logged("buffer 0xaffff000+0x2000 is not in guest RAM");
    g_assert_cmpuint(vd_used_idx(x), ==, 1);
    vd_teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (unsigned i = 0; i < G_N_ELEMENTS(hostile_cases); i++)
        g_test_add_data_func(hostile_cases[i].path, &hostile_cases[i], test_hostile);
    g_test_add_func("/virtio/hostile/indirect-not-negotiated", test_hostile_indirect_not_negotiated);
    g_test_add_func("/virtio/hostile/ring-addresses", test_hostile_ring_addresses);
    g_test_add_func("/virtio/hostile/intx-config-interrupt", test_hostile_intx);
    g_test_add_func("/virtio/hostile/spans-mmio-hole", test_hostile_spans_mmio_hole);
    return g_test_run();
}
