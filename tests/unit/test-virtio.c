/* Proves the virtio core and its modern PCI transport with the echo device and the test driver: capability
 * layout, the PCI configuration access window, feature negotiation and its refusals, queue set-up and
 * shrinking, reset, direct and indirect chains, and MSI-X / INTx delivery with EVENT_IDX and NO_INTERRUPT
 * suppression counted exactly. */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "virtio_driver.h"

/* ---------------------------------------------------------------- identity and capabilities */

static void test_pci_identity(void)
{
    vd_setup();
    g_assert_cmphex(vd_cfg_read(PCI_VENDOR_ID, 2), ==, 0x1af4);
    g_assert_cmphex(vd_cfg_read(PCI_DEVICE_ID, 2), ==, 0x1040 + ECHO_TYPE);
    g_assert_cmphex(vd_cfg_read(PCI_REVISION_ID, 1), ==, 1);
    g_assert_cmphex(vd_cfg_read(PCI_SUBSYSTEM_VENDOR_ID, 2), ==, 0x1af4);
    g_assert_cmphex(vd_cfg_read(PCI_SUBSYSTEM_ID, 2), >=, 0x40);
    g_assert_cmphex(vd_cfg_read(PCI_REVISION_ID, 4) >> 8, ==, 0x00ff00);
    g_assert_cmphex(vd_cfg_read(PCI_INTERRUPT_PIN, 1), ==, 1);
    /* BAR 4: 64-bit prefetchable, 16 KiB (size vd_probe); BAR 1: 32-bit, holds MSI-X. */
    g_assert_cmphex(vd_cfg_read(PCI_BASE_ADDRESS_0 + 16, 4) & 0xf, ==, PCI_BAR_MEM64 | PCI_BAR_PREFETCH);
    uint32_t old = vd_cfg_read(PCI_BASE_ADDRESS_0 + 16, 4);
    uint16_t cmd = (uint16_t)vd_cfg_read(PCI_COMMAND, 2);
    vd_cfg_write(PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY, 2);
    vd_cfg_write(PCI_BASE_ADDRESS_0 + 16, 0xffffffff, 4);
    g_assert_cmphex(vd_cfg_read(PCI_BASE_ADDRESS_0 + 16, 4), ==, 0xffffc00c);
    vd_cfg_write(PCI_BASE_ADDRESS_0 + 16, old, 4);
    vd_cfg_write(PCI_COMMAND, cmd, 2);

    vd_probe();
    g_assert_cmpuint(vd_dev.common.pos, !=, 0);
    g_assert_cmpuint(vd_dev.common.bar, ==, 4);
    g_assert_cmphex(vd_dev.common.offset, ==, 0x0000);
    g_assert_cmphex(vd_dev.common.length, ==, 0x38);
    g_assert_cmpuint(vd_dev.isr.bar, ==, 4);
    g_assert_cmphex(vd_dev.isr.offset, ==, 0x1000);
    g_assert_cmphex(vd_dev.isr.length, ==, 1);
    g_assert_cmpuint(vd_dev.device.bar, ==, 4);
    g_assert_cmphex(vd_dev.device.offset, ==, 0x2000);
    g_assert_cmphex(vd_dev.device.length, ==, 16);
    g_assert_cmpuint(vd_dev.notify.bar, ==, 4);
    g_assert_cmphex(vd_dev.notify.offset, ==, 0x3000);
    g_assert_cmphex(vd_dev.notify.length, ==, ECHO_QUEUES * 4);
    g_assert_cmpuint(vd_dev.notify_mult, ==, 4);
    g_assert_cmpuint(vd_dev.pcicfg.pos, !=, 0);
    g_assert_cmphex(vd_cfg_read(vd_dev.notify.pos + VIRTIO_PCI_CAP_LEN, 1), ==, 20);
    g_assert_cmphex(vd_cfg_read(vd_dev.pcicfg.pos + VIRTIO_PCI_CAP_LEN, 1), ==, 20);
    g_assert_cmphex(vd_cfg_read(vd_dev.common.pos + VIRTIO_PCI_CAP_LEN, 1), ==, 16);
    /* MSI-X: config vector + one per queue, table and PBA in BAR 1. */
    g_assert_cmpuint(vd_dev.msix_cap, !=, 0);
    g_assert_cmphex(vd_cfg_read(vd_dev.msix_cap + PCI_MSIX_FLAGS, 2), ==, ECHO_QUEUES);
    g_assert_cmphex(vd_cfg_read(vd_dev.msix_cap + PCI_MSIX_TABLE, 4), ==, 0x000 | 1);
    g_assert_cmphex(vd_cfg_read(vd_dev.msix_cap + PCI_MSIX_PBA, 4), ==, 0x800 | 1);
    g_assert_cmphex(vd_dev.bar[4] & 0x3fff, ==, 0);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_NUMQ, 2), ==, ECHO_QUEUES);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);
    vd_teardown();
}

static void test_config_space(void)
{
    vd_setup();
    vd_probe();
    g_assert_cmphex(vd_devcfg_rd(0, 4), ==, ECHO_MAGIC);
    g_assert_cmphex(vd_devcfg_rd(8, 8), ==, 0x1122334455667788ULL);
    g_assert_cmphex(vd_devcfg_rd(9, 1), ==, 0x77);
    g_assert_cmphex(vd_devcfg_rd(14, 2), ==, 0x1122);
    dh_mmio_write(&vd_m, vd_dev.bar[4] + 0x2000 + 4, 4, 0xdeadbeef);
    g_assert_cmphex(vd_echo.scratch, ==, 0xdeadbeef);
    g_assert_cmphex(vd_devcfg_rd(4, 4), ==, 0xdeadbeef);
    /* Past the 16 bytes, or straddling the end: 0, and nothing reaches the device. */
    g_assert_cmphex(vd_devcfg_rd(16, 4), ==, 0);
    g_assert_cmphex(vd_devcfg_rd(12, 8), ==, 0);
    dh_mmio_write(&vd_m, vd_dev.bar[4] + 0x2000 + 16, 4, 1);
    /* Generation moves when the device says its configuration changed. */
    uint8_t gen = (uint8_t)vd_common_rd(VIRTIO_PCI_COMMON_CFGGENERATION, 1);
    virtio_config_changed(virtio_pci_vdev(vd_echo.vp));
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_CFGGENERATION, 1), ==, (uint8_t)(gen + 1));
    g_assert_cmpuint(vd_rec.nmsi, ==, 0); /* the driver is not up: no interrupt */
    vd_teardown();
}

/* The PCI configuration access capability reaches BAR 4 through config space alone. */
static void test_pci_cfg_window(void)
{
    vd_setup();
    vd_probe();
    unsigned c = vd_dev.pcicfg.pos;
    vd_cfg_write(c + VIRTIO_PCI_CAP_BAR, 4, 1);
    vd_cfg_write(c + VIRTIO_PCI_CAP_OFFSET, 0x2000, 4);
    vd_cfg_write(c + VIRTIO_PCI_CAP_LENGTH, 4, 4);
    g_assert_cmphex(vd_cfg_read(c + VIRTIO_PCI_CFG_DATA, 4), ==, ECHO_MAGIC);
    vd_cfg_write(c + VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_COMMON_NUMQ, 4);
    vd_cfg_write(c + VIRTIO_PCI_CAP_LENGTH, 2, 4);
    g_assert_cmphex(vd_cfg_read(c + VIRTIO_PCI_CFG_DATA, 4), ==, ECHO_QUEUES);
    vd_cfg_write(c + VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_COMMON_STATUS, 4);
    vd_cfg_write(c + VIRTIO_PCI_CAP_LENGTH, 1, 4);
    vd_cfg_write(c + VIRTIO_PCI_CFG_DATA, VIRTIO_CONFIG_S_ACKNOWLEDGE, 4);
    g_assert_cmphex(vd_status(), ==, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    /* Misaligned window or another BAR: reads 0, writes nothing. */
    vd_cfg_write(c + VIRTIO_PCI_CAP_OFFSET, 0x2001, 4);
    vd_cfg_write(c + VIRTIO_PCI_CAP_LENGTH, 4, 4);
    g_assert_cmphex(vd_cfg_read(c + VIRTIO_PCI_CFG_DATA, 4), ==, 0);
    vd_cfg_write(c + VIRTIO_PCI_CAP_BAR, 1, 1);
    vd_cfg_write(c + VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_COMMON_STATUS, 4);
    vd_cfg_write(c + VIRTIO_PCI_CAP_LENGTH, 1, 4);
    vd_cfg_write(c + VIRTIO_PCI_CFG_DATA, 0, 4);
    g_assert_cmphex(vd_status(), ==, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    vd_teardown();
}

/* ---------------------------------------------------------------- features */

static void test_features_offer(void)
{
    vd_setup();
    vd_probe();
    g_assert_cmphex(vd_device_features(), ==,
                    F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_INDIRECT_DESC) | F(VIRTIO_F_EVENT_IDX) |
                        ECHO_F_DEVICE);
    vd_common_wr(VIRTIO_PCI_COMMON_DFSELECT, 2, 4);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_DF, 4), ==, 0);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_DFSELECT, 4), ==, 2);
    vd_init(STD_FEATURES, false);
    g_assert_cmphex(vd_echo.features, ==, STD_FEATURES);
    g_assert_cmphex(vd_driver_features(), ==, STD_FEATURES);
    /* Frozen after FEATURES_OK. */
    vd_write_driver_features(F(VIRTIO_F_VERSION_1));
    g_assert_cmphex(vd_driver_features(), ==, STD_FEATURES);
    g_assert_true(virtio_has_feature(virtio_pci_vdev(vd_echo.vp), VIRTIO_F_INDIRECT_DESC));
    g_assert_false(virtio_has_feature(virtio_pci_vdev(vd_echo.vp), VIRTIO_F_EVENT_IDX));
    vd_teardown();
}

static void negotiate_expect_refusal(uint64_t f, const char *logged)
{
    vd_set_status(0);
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    vd_write_driver_features(f);
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    g_assert_cmphex(vd_status(), ==, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    g_assert_false(virtio_has_feature(virtio_pci_vdev(vd_echo.vp), VIRTIO_F_VERSION_1));
    if (logged)
        vd_assert_logged(logged);
}

static void test_features_refusals(void)
{
    vd_setup();
    vd_probe();
    negotiate_expect_refusal(ECHO_F_DEVICE | F(VIRTIO_F_INDIRECT_DESC), "VIRTIO_F_VERSION_1");
    negotiate_expect_refusal(0, NULL);
    negotiate_expect_refusal(F(VIRTIO_F_VERSION_1) | (1ULL << 5), "not offered");
    negotiate_expect_refusal(F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_RING_PACKED), "not offered");
    negotiate_expect_refusal(F(VIRTIO_F_VERSION_1) | (1ULL << 63), "not offered");
    g_assert_cmpuint(vd_echo.features, ==, 0); /* the device was never asked */
    vd_echo.veto = true;
    negotiate_expect_refusal(F(VIRTIO_F_VERSION_1), NULL);
    g_assert_cmphex(vd_echo.features, ==, F(VIRTIO_F_VERSION_1));
    /* DRIVER_OK without FEATURES_OK does not stick either, and the queues stay idle. */
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_cmphex(vd_status(), ==, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    /* A refused driver can vd_start over and succeed. */
    vd_echo.veto = false;
    vd_init(STD_FEATURES, false);
    vd_teardown();
}

/* ---------------------------------------------------------------- queues and reset */

static void test_queue_size_shrink(void)
{
    vd_setup();
    vd_probe();
    vd_msix_enable();
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    const uint16_t refused[] = {0, 100, 512, 3, 0xffff};
    for (unsigned i = 0; i < G_N_ELEMENTS(refused); i++) {
        vd_common_wr(VIRTIO_PCI_COMMON_Q_SIZE, refused[i], 2);
        g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, ECHO_QMAX);
    }
    vd_assert_logged("size 100 refused");
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SIZE, 2, 2);
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, 2);
    /* Queues past num_queues do not exist: size 0, writes go nowhere. */
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SELECT, 7, 2);
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, 0);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SIZE, 4, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), ==, 0);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);

    /* An 8-entry queue runs through its ring several times: 40 requests, 4 descriptors' worth each. */
    vd_init_size(STD_FEATURES, true, 8);
    for (unsigned i = 0; i < 40; i++) {
        vd_submit_simple(0, i % 4, 100 + i);
        vd_kick(0);
        g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, i + 1);
        vd_assert_used(&vd_q[0], (uint16_t)i, (2 * (i % 4)) % 8, 100 + i);
        vd_assert_echoed(i % 4, 100 + i);
        vd_rec.nmsi = 0;
    }
    vd_teardown();
}

static void test_queue_registers_frozen_when_enabled(void)
{
    vd_setup();
    vd_start(STD_FEATURES);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SIZE, 16, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_DESCLO, 0x5000, 8);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_AVAILLO, 0x6000, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_USEDHI, 1, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_ENABLE, 0, 2);
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, ECHO_QMAX);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_DESCLO, 8), ==, vd_q[0].desc);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_AVAILLO, 4), ==, vd_q[0].avail);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_USEDHI, 4), ==, 0);
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), ==, 1);
    vd_assert_logged("of enabled queue 0 not changed");
    /* Odd-sized accesses to common config and writes to read-only fields do nothing. */
    vd_common_wr(VIRTIO_PCI_COMMON_NUMQ, 9, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SIZE + 1, 9, 1);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_NUMQ, 2), ==, ECHO_QUEUES);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_DFSELECT + 1, 2), ==, 0);
    /* Still works. */
    vd_submit_simple(0, 0, 64);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 1);
    vd_teardown();
}

static void test_reset_clears_everything(void)
{
    vd_setup();
    vd_probe();
    vd_bus_master_only(); /* INTx */
    vd_init_size(STD_FEATURES, false, 16);
    vd_common_wr(VIRTIO_PCI_COMMON_MSIX, 1, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_MSIX, 2), ==, 2);
    dh_mmio_write(&vd_m, vd_dev.bar[4] + 0x2000 + 4, 4, 0x1234);
    vd_submit_simple(0, 0, 32);
    vd_kick(0);
    g_assert_cmpint(vd_rec.level[vd_gsi], ==, 1);
    unsigned resets = vd_echo.resets;

    vd_set_status(0);
    g_assert_cmpuint(vd_echo.resets, ==, resets + 1);
    g_assert_cmpint(vd_rec.level[vd_gsi], ==, 0);
    g_assert_cmphex(vd_isr_read(), ==, 0);
    g_assert_cmphex(vd_status(), ==, 0);
    g_assert_cmphex(vd_driver_features(), ==, 0);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_SELECT, 2), ==, 0);
    g_assert_cmphex(vd_echo.scratch, ==, 0);
    for (unsigned n = 0; n < ECHO_QUEUES; n++) {
        vd_common_wr(VIRTIO_PCI_COMMON_Q_SELECT, n, 2);
        g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, ECHO_QMAX);
        g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), ==, 0);
        g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);
        g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_DESCLO, 8), ==, 0);
        g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_AVAILLO, 8), ==, 0);
        g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_USEDLO, 8), ==, 0);
    }
    /* A vd_kick after the reset reaches nobody. */
    unsigned notifies = vd_echo.notifies;
    vd_kick(0);
    g_assert_cmpuint(vd_echo.notifies, ==, notifies);
    /* The machine reset does the same. */
    vd_init(STD_FEATURES, false);
    virtio_pci_reset(vd_echo.vp);
    g_assert_cmphex(vd_status(), ==, 0);
    g_assert_cmpuint(vd_echo.resets, ==, resets + 3); /* vd_init wrote 0 once more */
    vd_teardown();
}

/* Elements popped before a reset must not land in the new rings. */
static void test_reset_drops_stale_completions(void)
{
    vd_setup();
    vd_start(STD_FEATURES);
    vd_echo.hold = true;
    vd_submit_simple(0, 0, 16);
    vd_kick(0);
    g_assert_cmpuint(vd_echo.nheld, ==, 1);
    g_assert_cmpuint(virtio_pci_queue(vd_echo.vp, 0)->inflight, ==, 1);
    vd_init(STD_FEATURES, true);
    vd_echo.hold = false;
    struct virtqueue *vq = virtio_pci_queue(vd_echo.vp, 0);
    vd_echo_complete(vq, vd_echo.held[0]);
    vd_echo.nheld = 0;
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 0);
    g_assert_cmpuint(vq->used_idx, ==, 0);
    /* Fresh requests still complete. */
    vd_submit_simple(0, 1, 16);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 1);
    vd_assert_used(&vd_q[0], 0, 2, 16);
    vd_teardown();
}

/* ---------------------------------------------------------------- I/O */

static void test_direct_chain(void)
{
    vd_setup();
    vd_start(STD_FEATURES);
    /* Two readable segments (5 + 300 bytes) and two writable ones (100 + 4096) on queue 1: 305 bytes vd_echo.
     */
    struct vd_queue *x = &vd_q[1];
    uint8_t src[305];
    for (unsigned i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i ^ 0x5a);
    g_assert_cmpint(guest_mem_write(&vd_m.mem, 0x500000, src, 5), ==, 0);
    g_assert_cmpint(guest_mem_write(&vd_m.mem, 0x510000, src + 5, 300), ==, 0);
    vd_set_desc(x->desc, 10, 0x500000, 5, VIRTQ_DESC_F_NEXT, 3);
    vd_set_desc(x->desc, 3, 0x510000, 300, VIRTQ_DESC_F_NEXT, 200);
    vd_set_desc(x->desc, 200, 0x520000, 100, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 7);
    vd_set_desc(x->desc, 7, 0x530000, 4096, VIRTQ_DESC_F_WRITE, 0);
    vd_avail_add(x, 10);
    vd_kick(1);
    g_assert_cmpuint(vd_used_idx(x), ==, 1);
    vd_assert_used(x, 0, 10, 305);
    uint8_t got[305];
    g_assert_cmpint(guest_mem_read(&vd_m.mem, 0x520000, got, 100), ==, 0);
    g_assert_cmpint(guest_mem_read(&vd_m.mem, 0x530000, got + 100, 205), ==, 0);
    g_assert_cmpmem(got, sizeof(got), src, sizeof(src));
    /* Exactly one MSI-X message, queue 1's vector (2). */
    g_assert_cmpuint(vd_rec.nmsi, ==, 1);
    vd_assert_msi(0, 2);
    g_assert_cmpuint(vd_rec.calls[vd_gsi], ==, 0);
    /* Queue 0 is independent. */
    vd_submit_simple(0, 0, 10);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 1);
    vd_assert_msi(1, 1);
    g_assert_cmpuint(vd_rec.nmsi, ==, 2);
    g_assert_cmpuint(virtio_pci_queue(vd_echo.vp, 1)->inflight, ==, 0);
    vd_teardown();
}

static void test_indirect_chain(void)
{
    vd_setup();
    vd_start(STD_FEATURES);
    struct vd_queue *x = &vd_q[0];
    const uint64_t table = 0x600000;
    g_assert_cmpint(guest_mem_fill(&vd_m.mem, 0x500000, 0xab, 64), ==, 0);
    g_assert_cmpint(guest_mem_fill(&vd_m.mem, 0x500040, 0xcd, 64), ==, 0);
    vd_set_desc(table, 0, 0x500000, 64, VIRTQ_DESC_F_NEXT, 2);
    vd_set_desc(table, 2, 0x500040, 64, VIRTQ_DESC_F_NEXT, 1);
    vd_set_desc(table, 1, 0x520000, 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3); /* empty: skipped */
    vd_set_desc(table, 3, 0x520000, 128, VIRTQ_DESC_F_WRITE, 0);
    /* The WRITE flag on the descriptor naming the table means nothing. */
    vd_set_desc(x->desc, 5, table, 4 * VIRTQ_DESC_SIZE, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
    vd_echo.hold = true;
    vd_avail_add(x, 5);
    vd_kick(0);
    g_assert_cmpuint(vd_echo.nheld, ==, 1);
    struct virtq_elem *e = vd_echo.held[0];
    g_assert_cmpuint(e->head, ==, 5);
    g_assert_cmpuint(e->out_num, ==, 2);
    g_assert_cmpuint(e->in_num, ==, 1);
    g_assert_cmpuint(e->out_len, ==, 128);
    g_assert_cmpuint(e->in_len, ==, 128);
    g_assert_cmphex(e->seg[0].addr, ==, 0x500000);
    g_assert_cmphex(e->seg[1].addr, ==, 0x500040);
    g_assert_cmphex(e->seg[2].addr, ==, 0x520000);
    /* Copies honour offsets across segments and stop at the end. */
    uint8_t b[200];
    g_assert_cmpint(virtq_elem_copy_from(virtio_pci_queue(vd_echo.vp, 0), e, 60, b, 200), ==, 68);
    g_assert_cmphex(b[3], ==, 0xab);
    g_assert_cmphex(b[4], ==, 0xcd);
    vd_echo.nheld = 0;
    vd_echo_complete(virtio_pci_queue(vd_echo.vp, 0), e);
    g_assert_cmpuint(vd_used_idx(x), ==, 1);
    vd_assert_used(x, 0, 5, 128);
    uint8_t got[128];
    g_assert_cmpint(guest_mem_read(&vd_m.mem, 0x520000, got, 128), ==, 0);
    g_assert_cmphex(got[63], ==, 0xab);
    g_assert_cmphex(got[64], ==, 0xcd);
    vd_teardown();
}

/* ---------------------------------------------------------------- interrupts */

static void test_intx_isr(void)
{
    vd_setup();
    vd_probe();
    vd_bus_master_only();
    vd_init(STD_FEATURES, false);
    vd_submit_simple(0, 0, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 1);
    g_assert_cmpint(vd_rec.level[vd_gsi], ==, 1);
    g_assert_cmpuint(vd_rec.raises[vd_gsi], ==, 1);
    g_assert_true(vd_cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    g_assert_cmphex(vd_isr_read(), ==, VIRTIO_ISR_QUEUE);
    g_assert_cmpint(vd_rec.level[vd_gsi], ==, 0);
    g_assert_cmphex(vd_isr_read(), ==, 0);
    /* Configuration change: bit 1. Two causes pile up until read. */
    virtio_config_changed(virtio_pci_vdev(vd_echo.vp));
    vd_submit_simple(0, 1, 8);
    vd_kick(0);
    g_assert_cmpint(vd_rec.level[vd_gsi], ==, 1);
    g_assert_cmpuint(vd_rec.raises[vd_gsi], ==, 2);
    g_assert_cmphex(vd_isr_read(), ==, VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG);
    g_assert_cmpint(vd_rec.level[vd_gsi], ==, 0);
    g_assert_cmpuint(vd_rec.nmsi, ==, 0);
    /* INTx disable gates the line, not the ISR. */
    vd_cfg_write(PCI_COMMAND, vd_cfg_read(PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE, 2);
    vd_submit_simple(0, 2, 8);
    vd_kick(0);
    g_assert_cmpint(vd_rec.level[vd_gsi], ==, 0);
    g_assert_cmphex(vd_isr_read(), ==, VIRTIO_ISR_QUEUE);
    vd_teardown();
}

static void test_msix_vectors(void)
{
    vd_setup();
    vd_start(STD_FEATURES);
    /* Out-of-range vectors read back as NO_VECTOR. */
    vd_common_wr(VIRTIO_PCI_COMMON_MSIX, ECHO_QUEUES + 1, 2);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);
    vd_common_wr(VIRTIO_PCI_COMMON_MSIX, 0, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_MSIX, 0x100, 2);
    g_assert_cmphex(vd_common_rd(VIRTIO_PCI_COMMON_Q_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);
    /* Queue 0 without a vector: completions, no message, no INTx, no ISR. */
    vd_submit_simple(0, 0, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 1);
    g_assert_cmpuint(vd_rec.nmsi, ==, 0);
    g_assert_cmpuint(vd_rec.calls[vd_gsi], ==, 0);
    g_assert_cmphex(vd_isr_read(), ==, 0);
    /* Queues may share a vector: queue 0 onto the config vector. */
    vd_common_wr(VIRTIO_PCI_COMMON_Q_MSIX, 0, 2);
    vd_submit_simple(0, 1, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_rec.nmsi, ==, 1);
    vd_assert_msi(0, 0);
    virtio_config_changed(virtio_pci_vdev(vd_echo.vp));
    g_assert_cmpuint(vd_rec.nmsi, ==, 2);
    vd_assert_msi(1, 0);
    /* A masked vector holds the message until unmasked. */
    uint32_t table = vd_cfg_read(vd_dev.msix_cap + PCI_MSIX_TABLE, 4);
    uint64_t e2 = vd_dev.bar[table & 7] + (table & ~7u) + 2 * PCI_MSIX_ENTRY_SIZE;
    dh_writel(&vd_m, e2 + PCI_MSIX_ENTRY_VECTOR_CTRL, 1);
    vd_submit_simple(1, 0, 8);
    vd_kick(1);
    g_assert_cmpuint(vd_rec.nmsi, ==, 2);
    g_assert_true(pci_msix_is_pending(&vd_echo.vp->pci, 2));
    dh_writel(&vd_m, e2 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
    g_assert_cmpuint(vd_rec.nmsi, ==, 3);
    vd_assert_msi(2, 2);
    vd_teardown();
}

static void test_event_idx(void)
{
    vd_setup();
    vd_start(STD_FEATURES | F(VIRTIO_F_EVENT_IDX));
    vd_echo.notify_each = true;
    struct vd_queue *x = &vd_q[0];
    const uint64_t used_event = x->avail + 4 + 2 * (uint64_t)x->size;
    const uint64_t avail_event = x->used + 4 + 8 * (uint64_t)x->size;
    /* used_event 0: interrupt for the first completion. */
    vd_submit_simple(0, 0, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(x), ==, 1);
    g_assert_cmpuint(vd_rec.nmsi, ==, 1);
    g_assert_cmpuint(vd_mem_r16(avail_event), ==, 1);
    /* used_event 3: three completions in a row, one interrupt, when entry 3 is used. */
    vd_mem_w16(used_event, 3);
    for (unsigned i = 1; i <= 3; i++)
        vd_submit_simple(0, i, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(x), ==, 4);
    g_assert_cmpuint(vd_rec.nmsi, ==, 2);
    g_assert_cmpuint(vd_mem_r16(avail_event), ==, 4);
    /* used_event far ahead: none. */
    vd_mem_w16(used_event, 10);
    vd_submit_simple(0, 4, 8);
    vd_submit_simple(0, 5, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(x), ==, 6);
    g_assert_cmpuint(vd_rec.nmsi, ==, 2);
    /* used_event behind (already passed): none either. */
    vd_mem_w16(used_event, 5);
    vd_submit_simple(0, 6, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(x), ==, 7);
    g_assert_cmpuint(vd_rec.nmsi, ==, 2);
    /* used_event at the next entry: one. NO_INTERRUPT is ignored with EVENT_IDX. */
    vd_mem_w16(used_event, 7);
    vd_mem_w16(x->avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
    vd_submit_simple(0, 7, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_rec.nmsi, ==, 3);
    vd_assert_msi(2, 1);
    /* Nothing new completed: a second check stays quiet. */
    g_assert_false(virtqueue_notify(virtio_pci_queue(vd_echo.vp, 0)));
    g_assert_cmpuint(vd_rec.nmsi, ==, 3);
    vd_teardown();
}

static void test_no_interrupt_flag(void)
{
    vd_setup();
    vd_start(STD_FEATURES);
    struct vd_queue *x = &vd_q[0];
    vd_mem_w16(x->avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
    vd_submit_simple(0, 0, 8);
    vd_kick(0);
    vd_submit_simple(0, 1, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(x), ==, 2);
    g_assert_cmpuint(vd_rec.nmsi, ==, 0);
    vd_mem_w16(x->avail, 0);
    vd_submit_simple(0, 2, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(x), ==, 3);
    g_assert_cmpuint(vd_rec.nmsi, ==, 1);
    vd_assert_msi(0, 1);
    /* The device-side avail_event is not written without EVENT_IDX. */
    g_assert_cmpuint(vd_mem_r16(x->used + 4 + 8 * (uint64_t)x->size), ==, 0);
    vd_teardown();
}

static void test_bus_master_gates_dma(void)
{
    vd_setup();
    vd_start(STD_FEATURES);
    vd_cfg_write(PCI_COMMAND, vd_cfg_read(PCI_COMMAND, 2) & ~PCI_COMMAND_MASTER, 2);
    vd_submit_simple(0, 0, 8);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 0);
    g_assert_cmpuint(vd_rec.nmsi, ==, 0);
    vd_cfg_write(PCI_COMMAND, vd_cfg_read(PCI_COMMAND, 2) | PCI_COMMAND_MASTER, 2);
    vd_kick(0);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 1);
    g_assert_cmpuint(vd_rec.nmsi, ==, 1);
    /* Notifications for queues that do not exist, or misaligned, are dropped. */
    unsigned n = vd_echo.notifies;
    dh_mmio_write(&vd_m, vd_dev.bar[4] + 0x3000 + 4 * ECHO_QUEUES, 2, 0);
    dh_mmio_write(&vd_m, vd_dev.bar[4] + 0x3000 + 2, 2, 0);
    g_assert_cmpuint(vd_echo.notifies, ==, n);
    vd_assert_logged("notify at 0x2 ignored");
    vd_teardown();
}

/* ---------------------------------------------------------------- core limits */

static void test_core_rejects_bad_configs(void)
{
    struct virtio_device vdev;
    struct guest_memory mem = {0};
    struct virtio_device_config c = {
        .name = "x", .num_queues = 1, .queue_max_size = 256, .ops = &vd_echo_ops};
    g_assert_cmpint(virtio_device_init(&vdev, &mem, &c), ==, 0);
    g_assert_cmphex(vdev.host_features, ==, VIRTIO_CORE_FEATURES);
    virtio_device_cleanup(&vdev);
    c.queue_max_size = 100;
    g_assert_cmpint(virtio_device_init(&vdev, &mem, &c), ==, -EINVAL);
    c.queue_max_size = 2048;
    g_assert_cmpint(virtio_device_init(&vdev, &mem, &c), ==, -EINVAL);
    c.queue_max_size = 256;
    c.num_queues = VIRTIO_QUEUES_MAX + 1;
    g_assert_cmpint(virtio_device_init(&vdev, &mem, &c), ==, -EINVAL);
    c.num_queues = 0;
    g_assert_cmpint(virtio_device_init(&vdev, &mem, &c), ==, -EINVAL);
    c.num_queues = 1;
    c.config_size = VIRTIO_CONFIG_SPACE_MAX + 1;
    g_assert_cmpint(virtio_device_init(&vdev, &mem, &c), ==, -EINVAL);
    /* A device type cannot offer transport bits the core does not implement. */
    c.config_size = 0;
    c.features = F(VIRTIO_F_RING_PACKED) | F(VIRTIO_F_ACCESS_PLATFORM) | (1ULL << 41) | 1;
    g_assert_cmpint(virtio_device_init(&vdev, &mem, &c), ==, 0);
    g_assert_cmphex(vdev.host_features, ==, VIRTIO_CORE_FEATURES | (1ULL << 41) | 1);
    virtio_device_cleanup(&vdev);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio/pci/identity-and-capabilities", test_pci_identity);
    g_test_add_func("/virtio/pci/config-access-capability", test_pci_cfg_window);
    g_test_add_func("/virtio/config/read-write-generation", test_config_space);
    g_test_add_func("/virtio/features/offer-and-freeze", test_features_offer);
    g_test_add_func("/virtio/features/refusals", test_features_refusals);
    g_test_add_func("/virtio/queue/size-shrink-and-wrap", test_queue_size_shrink);
    g_test_add_func("/virtio/queue/registers-frozen-when-enabled", test_queue_registers_frozen_when_enabled);
    g_test_add_func("/virtio/reset/clears-everything", test_reset_clears_everything);
    g_test_add_func("/virtio/reset/drops-stale-completions", test_reset_drops_stale_completions);
    g_test_add_func("/virtio/io/direct-chain", test_direct_chain);
    g_test_add_func("/virtio/io/indirect-chain", test_indirect_chain);
    g_test_add_func("/virtio/irq/intx-isr-read-to-clear", test_intx_isr);
    g_test_add_func("/virtio/irq/msix-vectors", test_msix_vectors);
    g_test_add_func("/virtio/irq/event-idx-suppression", test_event_idx);
    g_test_add_func("/virtio/irq/no-interrupt-flag", test_no_interrupt_flag);
    g_test_add_func("/virtio/dma/bus-master-gates-queues", test_bus_master_gates_dma);
    g_test_add_func("/virtio/core/rejects-bad-configs", test_core_rejects_bad_configs);
    return g_test_run();
}
