/* Proves MSI and MSI-X: exact messages for 32/64-bit MSI and multiple messages, per-vector masking with
 * pending bits, the MSI-X table and PBA in a BAR (access sizes, reserved bits), vector and function masks
 * with delivery on unmask, vector range checks, and which mechanism pci_msi_notify picks. */
#include <errno.h>

#include <glib.h>

#include "device_harness.h"
#include "machine.h"
#include "pci.h"
#include "pci_host.h"
#include "pci_msi.h"
#include "pci_testdev.h"

#define MiB (1024ULL * 1024)
#define SLOT 3 /* INTA on GSI 19 */
#define GSI 19
#define BAR0_ADDR 0xc0000000ULL
#define TABLE 0x000
#define PBA 0x800

static struct irq_recorder rec;

static void assert_msg(unsigned i, uint64_t addr, uint32_t data)
{
    g_assert_cmpuint(rec.nmsi, >, i);
    g_assert_cmphex(rec.msi[i].address, ==, addr);
    g_assert_cmphex(rec.msi[i].data, ==, data);
}

/* A function with the interrupt capabilities a test asks for; BAR0 (4 KiB) only holds MSI-X structures. */
struct msidev {
    struct pci_device pci;
};

struct msidev_cfg {
    unsigned msi_vectors; /* 0: no MSI */
    bool msi64, maskable;
    unsigned msix_vectors; /* 0: no MSI-X */
};

static struct machine m;
static struct msidev dev;

static void setup(const struct msidev_cfg *c)
{
    static const struct machine_device *const board[] = {&pci_host_device};
    dh_machine_init(&m, board, G_N_ELEMENTS(board), 1, 64 * MiB);
    dh_record_irqs(&m, &rec, DH_ANY_GSI | DH_MSI);

    static const struct pci_device_info info = {
        .name = "msidev", .vendor_id = 0x1234, .device_id = 0x5678, .interrupt_pin = 1};
    pci_device_init(&dev.pci, &info);
    g_assert_cmpint(pci_register_bar(&dev.pci, 0, PCI_BAR_MEM32, 4096, NULL, NULL), ==, 0);
    if (c->msi_vectors)
        g_assert_cmpint(pci_msi_init(&dev.pci, c->msi_vectors, c->msi64, c->maskable), >=, 0x40);
    if (c->msix_vectors)
        g_assert_cmpint(pci_msix_init(&dev.pci, c->msix_vectors, 0, TABLE, 0, PBA), >=, 0x40);
    g_assert_cmpint(pci_register_device(m.pci, &dev.pci, SLOT, 0), ==, 0);
}

static void teardown(void)
{
    pci_unregister_device(&dev.pci);
    dh_machine_fini(&m);
}

/* Config space through ECAM, the way Linux reaches it. */
static uint32_t cfg_read(unsigned reg, unsigned size)
{
    return (uint32_t)dh_mmio_read(&m, PCI_ECAM_BASE + (SLOT << 15) + reg, size);
}

static void cfg_write(unsigned reg, uint32_t v, unsigned size)
{
    dh_mmio_write(&m, PCI_ECAM_BASE + (SLOT << 15) + reg, size, v);
}

static void bus_master(bool on)
{
    uint16_t cmd = (uint16_t)(cfg_read(PCI_COMMAND, 2) & ~PCI_COMMAND_MASTER);
    cfg_write(PCI_COMMAND, cmd | (on ? PCI_COMMAND_MASTER : 0), 2);
}

static void map_bar0(void)
{
    cfg_write(PCI_BASE_ADDRESS_0, (uint32_t)BAR0_ADDR, 4);
    cfg_write(PCI_COMMAND, cfg_read(PCI_COMMAND, 2) | PCI_COMMAND_MEMORY, 2);
}

static uint64_t bar_read(uint64_t off, unsigned size)
{
    return dh_mmio_read(&m, BAR0_ADDR + off, size);
}

static void bar_write(uint64_t off, uint64_t v, unsigned size)
{
    dh_mmio_write(&m, BAR0_ADDR + off, size, v);
}

static void msix_entry(unsigned v, uint64_t addr, uint32_t data, bool masked)
{
    uint64_t e = TABLE + v * PCI_MSIX_ENTRY_SIZE;
    bar_write(e + PCI_MSIX_ENTRY_LOWER_ADDR, (uint32_t)addr, 4);
    bar_write(e + PCI_MSIX_ENTRY_UPPER_ADDR, (uint32_t)(addr >> 32), 4);
    bar_write(e + PCI_MSIX_ENTRY_DATA, data, 4);
    bar_write(e + PCI_MSIX_ENTRY_VECTOR_CTRL, masked, 4);
}

/* ---------------------------------------------------------------- MSI */

static void test_msi_32bit_delivery(void)
{
    setup(&(struct msidev_cfg){.msi_vectors = 1});
    const unsigned cap = 0x40;
    g_assert_cmphex(cfg_read(PCI_CAPABILITY_LIST, 1), ==, cap);
    g_assert_cmphex(cfg_read(cap, 4), ==, PCI_CAP_ID_MSI); /* next 0, flags: 1 vector, 32-bit, no masking */
    cfg_write(cap + PCI_MSI_ADDRESS_LO, 0xfee01003, 4);
    g_assert_cmphex(cfg_read(cap + PCI_MSI_ADDRESS_LO, 4), ==, 0xfee01000);
    cfg_write(cap + PCI_MSI_DATA_32, 0xffff4041, 4); /* the data register is 16 bits */
    g_assert_cmphex(cfg_read(cap + PCI_MSI_DATA_32, 4), ==, 0x4041);
    bus_master(true);
    /* Not enabled yet: INTx. */
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_INTX);
    g_assert_cmpint(rec.level[GSI], ==, 1);
    pci_set_irq(&dev.pci, 0);
    g_assert_cmpint(rec.level[GSI], ==, 0);

    cfg_write(cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE, 2);
    g_assert_true(pci_msi_enabled(&dev.pci));
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_SENT);
    g_assert_cmpuint(rec.nmsi, ==, 1);
    assert_msg(0, 0xfee01000, 0x4041);
    g_assert_cmpint(rec.level[GSI], ==, 0);
    /* One vector: anything else is out of range. */
    g_assert_cmpint(pci_msi_notify(&dev.pci, 1), ==, -EINVAL);
    g_assert_cmpuint(rec.nmsi, ==, 1);
    teardown();
}

static void test_msi_64bit_delivery(void)
{
    setup(&(struct msidev_cfg){.msi_vectors = 1, .msi64 = true});
    const unsigned cap = 0x40;
    g_assert_cmphex(cfg_read(cap + PCI_MSI_FLAGS, 2), ==, PCI_MSI_FLAGS_64BIT);
    cfg_write(cap + PCI_MSI_ADDRESS_LO, 0xfee02000, 4);
    cfg_write(cap + PCI_MSI_ADDRESS_HI, 0x00000001, 4);
    cfg_write(cap + PCI_MSI_DATA_64, 0x0031, 2);
    cfg_write(cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE, 2);
    bus_master(true);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_SENT);
    assert_msg(0, 0x1fee02000ULL, 0x31);
    cfg_write(cap + PCI_MSI_ADDRESS_HI, 0, 4);
    pci_msi_notify(&dev.pci, 0);
    assert_msg(1, 0xfee02000ULL, 0x31);
    teardown();
}

static void test_msi_multiple_messages(void)
{
    setup(&(struct msidev_cfg){.msi_vectors = 4, .msi64 = true});
    const unsigned cap = 0x40;
    g_assert_cmphex(cfg_read(cap + PCI_MSI_FLAGS, 2), ==, PCI_MSI_FLAGS_64BIT | 2 << 1);
    cfg_write(cap + PCI_MSI_ADDRESS_LO, 0xfee00000, 4);
    cfg_write(cap + PCI_MSI_DATA_64, 0x40, 2);
    bus_master(true);
    cfg_write(cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | 2 << 4, 2); /* 4 messages */
    pci_msi_notify(&dev.pci, 3);
    pci_msi_notify(&dev.pci, 1);
    assert_msg(0, 0xfee00000, 0x43);
    assert_msg(1, 0xfee00000, 0x41);
    cfg_write(cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | 1 << 4, 2); /* only 2 granted: vectors fold */
    pci_msi_notify(&dev.pci, 3);
    assert_msg(2, 0xfee00000, 0x41);
    cfg_write(cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE, 2); /* 1 granted */
    pci_msi_notify(&dev.pci, 3);
    assert_msg(3, 0xfee00000, 0x40);
    cfg_write(cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | 7 << 4, 2); /* more than asked: clamped to 4 */
    pci_msi_notify(&dev.pci, 2);
    assert_msg(4, 0xfee00000, 0x42);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 4), ==, -EINVAL);
    g_assert_cmpuint(rec.nmsi, ==, 5);
    teardown();
}

static void test_msi_mask_and_pending(void)
{
    setup(&(struct msidev_cfg){.msi_vectors = 4, .msi64 = true, .maskable = true});
    const unsigned cap = 0x40;
    g_assert_cmphex(cfg_read(cap + PCI_MSI_FLAGS, 2), ==,
                    PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | 2 << 1);
    g_assert_cmphex(cfg_read(PCI_CAPABILITY_LIST, 1), ==, cap);
    cfg_write(cap + PCI_MSI_ADDRESS_LO, 0xfee00000, 4);
    cfg_write(cap + PCI_MSI_DATA_64, 0x60, 2);
    cfg_write(cap + PCI_MSI_MASK_64, 0xffffffff, 4);
    g_assert_cmphex(cfg_read(cap + PCI_MSI_MASK_64, 4), ==, 0xf); /* one bit per possible vector */
    cfg_write(cap + PCI_MSI_MASK_64, 0x2, 4);
    cfg_write(cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | 2 << 4, 2);
    bus_master(true);

    g_assert_cmpint(pci_msi_notify(&dev.pci, 1), ==, PCI_NOTIFY_PENDING);
    g_assert_cmpuint(rec.nmsi, ==, 0);
    g_assert_cmphex(cfg_read(cap + PCI_MSI_PENDING_64, 4), ==, 0x2);
    cfg_write(cap + PCI_MSI_PENDING_64, 0, 4); /* read-only for software */
    g_assert_cmphex(cfg_read(cap + PCI_MSI_PENDING_64, 4), ==, 0x2);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_SENT);
    assert_msg(0, 0xfee00000, 0x60);
    /* Unmasking delivers what was held, once. */
    cfg_write(cap + PCI_MSI_MASK_64, 0, 4);
    g_assert_cmpuint(rec.nmsi, ==, 2);
    assert_msg(1, 0xfee00000, 0x61);
    g_assert_cmphex(cfg_read(cap + PCI_MSI_PENDING_64, 4), ==, 0);
    cfg_write(cap + PCI_MSI_MASK_64, 0, 4);
    g_assert_cmpuint(rec.nmsi, ==, 2);
    /* A reset forgets pending vectors. */
    cfg_write(cap + PCI_MSI_MASK_64, 0x8, 4);
    pci_msi_notify(&dev.pci, 3);
    g_assert_cmphex(cfg_read(cap + PCI_MSI_PENDING_64, 4), ==, 0x8);
    machine_reset(&m);
    g_assert_cmphex(cfg_read(cap + PCI_MSI_PENDING_64, 4), ==, 0);
    g_assert_cmphex(cfg_read(cap + PCI_MSI_MASK_64, 4), ==, 0);
    g_assert_false(pci_msi_enabled(&dev.pci));
    teardown();
}

static void test_msi_needs_bus_master(void)
{
    setup(&(struct msidev_cfg){.msi_vectors = 1});
    cfg_write(0x40 + PCI_MSI_ADDRESS_LO, 0xfee00000, 4);
    cfg_write(0x40 + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE, 2);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_DROPPED);
    g_assert_cmpuint(rec.nmsi, ==, 0);
    g_assert_cmpint(rec.level[GSI], ==, 0);
    bus_master(true);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_SENT);
    g_assert_cmpuint(rec.nmsi, ==, 1);
    teardown();
}

static void test_msi_enable_silences_intx(void)
{
    setup(&(struct msidev_cfg){.msi_vectors = 1});
    pci_set_irq(&dev.pci, 1);
    g_assert_cmpint(rec.level[GSI], ==, 1);
    cfg_write(0x40 + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE, 2);
    g_assert_cmpint(rec.level[GSI], ==, 0);
    cfg_write(0x40 + PCI_MSI_FLAGS, 0, 2);
    g_assert_cmpint(rec.level[GSI], ==, 1);
    pci_set_irq(&dev.pci, 0);
    teardown();
}

/* ---------------------------------------------------------------- MSI-X */

static const struct msidev_cfg msix4 = {.msi_vectors = 1, .msix_vectors = 4};
#define MSIX_CAP 0x4c /* after the 10-byte 32-bit MSI capability at 0x40 */

static void test_msix_capability(void)
{
    setup(&msix4);
    g_assert_cmphex(cfg_read(0x41, 1), ==, MSIX_CAP);
    g_assert_cmphex(cfg_read(MSIX_CAP, 2), ==, PCI_CAP_ID_MSIX);
    g_assert_cmphex(cfg_read(MSIX_CAP + PCI_MSIX_FLAGS, 2), ==, 3);
    g_assert_cmphex(cfg_read(MSIX_CAP + PCI_MSIX_TABLE, 4), ==, TABLE | 0);
    g_assert_cmphex(cfg_read(MSIX_CAP + PCI_MSIX_PBA, 4), ==, PBA | 0);
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, 0xffff, 2);
    g_assert_cmphex(cfg_read(MSIX_CAP + PCI_MSIX_FLAGS, 2), ==, 0xc003);
    cfg_write(MSIX_CAP + PCI_MSIX_TABLE, 0x12345678, 4);
    cfg_write(MSIX_CAP + PCI_MSIX_PBA, 0x12345678, 4);
    g_assert_cmphex(cfg_read(MSIX_CAP + PCI_MSIX_TABLE, 4), ==, TABLE);
    g_assert_cmphex(cfg_read(MSIX_CAP + PCI_MSIX_PBA, 4), ==, PBA);
    g_assert_true(pci_msix_enabled(&dev.pci));
    teardown();
}

static void test_msix_table_writes(void)
{
    setup(&msix4);
    map_bar0();
    for (unsigned v = 0; v < 4; v++) {
        g_assert_cmphex(bar_read(TABLE + v * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), ==,
                        1); /* masked at reset */
        g_assert_cmphex(bar_read(TABLE + v * 16 + PCI_MSIX_ENTRY_DATA, 4), ==, 0);
    }
    const uint64_t e = TABLE + 2 * 16;
    bar_write(e + PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee03003, 4);
    bar_write(e + PCI_MSIX_ENTRY_UPPER_ADDR, 0x2, 4);
    bar_write(e + PCI_MSIX_ENTRY_DATA, 0xabcd0051, 4);
    g_assert_cmphex(bar_read(e + PCI_MSIX_ENTRY_LOWER_ADDR, 4), ==, 0xfee03000);
    g_assert_cmphex(bar_read(e + PCI_MSIX_ENTRY_UPPER_ADDR, 4), ==, 0x2);
    g_assert_cmphex(bar_read(e + PCI_MSIX_ENTRY_DATA, 4), ==, 0xabcd0051);
    bar_write(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 0xffffffff, 4);
    g_assert_cmphex(bar_read(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), ==, 1); /* reserved bits stay 0 */
    bar_write(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
    g_assert_cmphex(bar_read(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), ==, 0);
    /* Neighbouring entries untouched. */
    g_assert_cmphex(bar_read(TABLE + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), ==, 1);
    g_assert_cmphex(bar_read(TABLE + 48 + PCI_MSIX_ENTRY_LOWER_ADDR, 4), ==, 0);
    /* Past the table (and the PBA) the BAR has nothing: reads 0, writes vanish. */
    g_assert_cmphex(bar_read(TABLE + 64, 4), ==, 0);
    bar_write(TABLE + 64, 0xffffffff, 4);
    g_assert_cmphex(bar_read(PBA + 8, 4), ==, 0);
    teardown();
}

static void test_msix_access_sizes(void)
{
    setup(&msix4);
    map_bar0();
    const uint64_t e = TABLE + 16;
    bar_write(e + 0, 0x00000001fee04000ULL, 8);
    bar_write(e + 8, 0x0000000000000061ULL, 8); /* data 0x61, unmasked */
    g_assert_cmphex(bar_read(e + 0, 8), ==, 0x00000001fee04000ULL);
    g_assert_cmphex(bar_read(e + 8, 8), ==, 0x61);
    g_assert_cmphex(bar_read(e + PCI_MSIX_ENTRY_LOWER_ADDR, 4), ==, 0xfee04000);
    g_assert_cmphex(bar_read(e + PCI_MSIX_ENTRY_UPPER_ADDR, 4), ==, 1);
    g_assert_cmphex(bar_read(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), ==, 0);
    /* Misaligned accesses are refused. */
    bar_write(e + 2, 0xffffffff, 4);
    g_assert_cmphex(bar_read(e + 0, 4), ==, 0xfee04000);
    g_assert_cmphex(bar_read(e + 2, 4), ==, 0);
    bar_write(e + 4, 0xffffffffffffffffULL, 8);
    g_assert_cmphex(bar_read(e + 8, 4), ==, 0x61);
    g_assert_cmphex(bar_read(e + 4, 8), ==, 0);
    /* The 8-byte write to the mask half re-masks. */
    bar_write(e + 8, 0x0000000100000062ULL, 8);
    g_assert_cmphex(bar_read(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), ==, 1);
    g_assert_cmphex(bar_read(e + PCI_MSIX_ENTRY_DATA, 4), ==, 0x62);
    teardown();
}

static void test_msix_vector_mask_pending(void)
{
    setup(&msix4);
    map_bar0();
    bus_master(true);
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
    msix_entry(0, 0xfee05000, 0x71, false);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_SENT);
    assert_msg(0, 0xfee05000, 0x71);

    bar_write(TABLE + PCI_MSIX_ENTRY_VECTOR_CTRL, 1, 4);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_PENDING);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_PENDING);
    g_assert_cmpuint(rec.nmsi, ==, 1);
    g_assert_true(pci_msix_is_pending(&dev.pci, 0));
    g_assert_cmphex(bar_read(PBA, 8), ==, 0x1);
    g_assert_cmphex(bar_read(PBA, 4), ==, 0x1);
    bar_write(PBA, 0, 8); /* read-only */
    g_assert_cmphex(bar_read(PBA, 8), ==, 0x1);
    /* The guest may reprogram while masked; delivery uses the entry as it is at unmask time. */
    bar_write(TABLE + PCI_MSIX_ENTRY_DATA, 0x72, 4);
    bar_write(TABLE + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
    g_assert_cmpuint(rec.nmsi, ==, 2);
    assert_msg(1, 0xfee05000, 0x72);
    g_assert_false(pci_msix_is_pending(&dev.pci, 0));
    g_assert_cmphex(bar_read(PBA, 8), ==, 0);
    /* A masked vector that never fired sends nothing on unmask. */
    msix_entry(3, 0xfee06000, 0x73, true);
    bar_write(TABLE + 3 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
    g_assert_cmpuint(rec.nmsi, ==, 2);
    teardown();
}

static void test_msix_function_mask(void)
{
    setup(&msix4);
    map_bar0();
    bus_master(true);
    for (unsigned v = 0; v < 4; v++)
        msix_entry(v, 0xfee00000 | v << 12, 0x80 + v, false);
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 2), ==, PCI_NOTIFY_PENDING);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 1), ==, PCI_NOTIFY_PENDING);
    g_assert_cmpuint(rec.nmsi, ==, 0);
    g_assert_cmphex(bar_read(PBA, 4), ==, 0x6);
    /* Per-vector unmask does not override the function mask. */
    bar_write(TABLE + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
    g_assert_cmpuint(rec.nmsi, ==, 0);
    /* Vector 2 individually masked too: only vector 1 goes out when the function mask drops. */
    bar_write(TABLE + 32 + PCI_MSIX_ENTRY_VECTOR_CTRL, 1, 4);
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
    g_assert_cmpuint(rec.nmsi, ==, 1);
    assert_msg(0, 0xfee01000, 0x81);
    g_assert_cmphex(bar_read(PBA, 4), ==, 0x4);
    bar_write(TABLE + 32 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
    g_assert_cmpuint(rec.nmsi, ==, 2);
    assert_msg(1, 0xfee02000, 0x82);
    g_assert_cmphex(bar_read(PBA, 4), ==, 0);
    teardown();
}

static void test_msix_vector_range(void)
{
    setup(&msix4);
    map_bar0();
    bus_master(true);
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
    for (unsigned v = 0; v < 4; v++)
        msix_entry(v, 0xfee00000, v, false);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 3), ==, PCI_NOTIFY_SENT);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 4), ==, -EINVAL);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0xffff), ==, -EINVAL);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0xffffffffu), ==, -EINVAL);
    g_assert_cmpuint(rec.nmsi, ==, 1);
    g_assert_false(pci_msix_is_pending(&dev.pci, 4));
    /* The range does not depend on the mode: INTx mode checks it too. */
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, 0, 2);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 4), ==, -EINVAL);
    g_assert_cmpint(rec.level[GSI], ==, 0);
    teardown();
}

static void test_msix_takes_precedence(void)
{
    setup(&msix4);
    map_bar0();
    bus_master(true);
    msix_entry(0, 0xfee0a000, 0xa0, false);
    cfg_write(0x40 + PCI_MSI_ADDRESS_LO, 0xfee0b000, 4);
    cfg_write(0x40 + PCI_MSI_DATA_32, 0xb0, 2);
    cfg_write(0x40 + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE, 2);
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_SENT);
    assert_msg(0, 0xfee0a000, 0xa0);
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, 0, 2);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_SENT);
    assert_msg(1, 0xfee0b000, 0xb0);
    /* MSI has one vector: vector 3 (valid for MSI-X) folds onto it. */
    g_assert_cmpint(pci_msi_notify(&dev.pci, 3), ==, PCI_NOTIFY_SENT);
    assert_msg(2, 0xfee0b000, 0xb0);
    cfg_write(0x40 + PCI_MSI_FLAGS, 0, 2);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_INTX);
    g_assert_cmpint(rec.level[GSI], ==, 1);
    /* MSI-X enabled silences INTx even with INTx disable clear. */
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
    g_assert_cmpint(rec.level[GSI], ==, 0);
    g_assert_cmpuint(rec.nmsi, ==, 3);
    teardown();
}

static void test_msix_needs_bus_master(void)
{
    setup(&msix4);
    map_bar0();
    msix_entry(0, 0xfee00000, 0x10, false);
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
    g_assert_cmpint(pci_msi_notify(&dev.pci, 0), ==, PCI_NOTIFY_DROPPED);
    g_assert_cmpuint(rec.nmsi, ==, 0);
    g_assert_false(pci_msix_is_pending(&dev.pci, 0));
    teardown();
}

static void test_msix_reset_masks_all(void)
{
    setup(&msix4);
    map_bar0();
    bus_master(true);
    msix_entry(1, 0xfee00000, 0x11, false);
    cfg_write(MSIX_CAP + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
    pci_msi_notify(&dev.pci, 1);
    g_assert_true(pci_msix_is_pending(&dev.pci, 1));
    machine_reset(&m);
    g_assert_false(pci_msix_enabled(&dev.pci));
    g_assert_cmphex(cfg_read(MSIX_CAP + PCI_MSIX_FLAGS, 2), ==, 3);
    g_assert_false(pci_msix_is_pending(&dev.pci, 1));
    map_bar0();
    g_assert_cmphex(bar_read(TABLE + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), ==, 1);
    g_assert_cmphex(bar_read(TABLE + 16 + PCI_MSIX_ENTRY_DATA, 4), ==, 0);
    g_assert_cmpuint(rec.nmsi, ==, 0);
    teardown();
}

static void test_init_validation(void)
{
    static struct pci_device d;
    static const struct pci_device_info info = {.name = "v", .vendor_id = 1};
    pci_device_init(&d, &info);
    g_assert_cmpint(pci_register_bar(&d, 0, PCI_BAR_MEM32, 4096, NULL, NULL), ==, 0);
    g_assert_cmpint(pci_register_bar(&d, 1, PCI_BAR_IO, 256, NULL, NULL), ==, 0);
    g_assert_cmpint(pci_msi_init(&d, 3, false, false), ==, -EINVAL);
    g_assert_cmpint(pci_msi_init(&d, 64, false, false), ==, -EINVAL);
    g_assert_cmpint(pci_msix_init(&d, 0, 0, 0, 0, 0x800), ==, -EINVAL);
    g_assert_cmpint(pci_msix_init(&d, 2049, 0, 0, 0, 0x800), ==, -EINVAL);
    g_assert_cmpint(pci_msix_init(&d, 256, 0, 0, 0, 0x800), ==, -EINVAL);   /* table overlaps PBA */
    g_assert_cmpint(pci_msix_init(&d, 4, 0, 0xff8, 0, 0x800), ==, -EINVAL); /* past the BAR */
    g_assert_cmpint(pci_msix_init(&d, 4, 0, 0, 0, 0x1000), ==, -EINVAL);
    g_assert_cmpint(pci_msix_init(&d, 4, 1, 0, 0, 0x800), ==, -EINVAL); /* I/O BAR */
    g_assert_cmpint(pci_msix_init(&d, 4, 2, 0, 0, 0x800), ==, -EINVAL); /* no BAR 2 */
    g_assert_cmpint(pci_msix_init(&d, 4, 0, 4, 0, 0x800), ==, -EINVAL); /* not 8-byte aligned */
    g_assert_cmpint(pci_msix_init(&d, 4, 0, 0, 0, 0x804), ==, -EINVAL);
    g_assert_cmpint(pci_msix_init(&d, 4, 6, 0, 0, 0x800), ==, -EINVAL);
    g_assert_cmpint(pci_msix_init(&d, 128, 0, 0, 0, 0x800), ==, 0x40);
    g_assert_cmpint(pci_msix_init(&d, 4, 0, 0, 0, 0x800), ==, -EINVAL); /* only one */
    g_assert_cmpint(pci_msi_init(&d, 32, true, true), ==, 0x4c);
    g_assert_cmpint(pci_msi_init(&d, 1, false, false), ==, -EINVAL);
    g_assert_cmphex(le32_load(&d.wmask[0x4c + PCI_MSI_MASK_64]), ==, 0xffffffff);
    pci_unregister_device(&d);
    g_assert_null(d.msix.table);
}

/* ---------------------------------------------------------------- the test function's trigger */

static void test_testdev_notify_register(void)
{
    static const struct machine_device *const board[] = {&pci_host_device, &pci_testdev_device};
    dh_machine_init(&m, board, G_N_ELEMENTS(board), 1, 64 * MiB);
    dh_record_irqs(&m, &rec, DH_ANY_GSI | DH_MSI);
    g_assert_cmpint(pci_host_assign_resources(m.pci), ==, 0);
    struct pci_device *d = pci_bus_get_device(m.pci, PCI_TESTDEV_SLOT, 0);
    uint64_t regs = pci_bar_address(d, PCI_TESTDEV_BAR_REGS), io = pci_bar_address(d, PCI_TESTDEV_BAR_IO);
    unsigned msix = pci_find_capability(d, PCI_CAP_ID_MSIX);
    uint64_t ecam = PCI_ECAM_BASE + (PCI_TESTDEV_SLOT << 15);
    io_bus_write(&m.mmio, ecam + PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    io_bus_write(&m.mmio, ecam + msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    uint64_t e5 = regs + PCI_TESTDEV_MSIX_TABLE + 5 * 16;
    io_bus_write(&m.mmio, e5 + PCI_MSIX_ENTRY_LOWER_ADDR, 4, 0xfee00000);
    io_bus_write(&m.mmio, e5 + PCI_MSIX_ENTRY_DATA, 4, 0x45);
    io_bus_write(&m.mmio, e5 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);

    io_bus_write(&m.mmio, regs + PCI_TESTDEV_NOTIFY, 4, 5);
    assert_msg(0, 0xfee00000, 0x45);
    uint64_t v;
    io_bus_read(&m.mmio, regs + PCI_TESTDEV_NOTIFY, 4, &v);
    g_assert_cmpint((int32_t)v, ==, PCI_NOTIFY_SENT);
    /* Through the I/O BAR as well. */
    io_bus_write(&m.pio, io + PCI_TESTDEV_NOTIFY, 4, 5);
    assert_msg(1, 0xfee00000, 0x45);
    io_bus_write(&m.pio, io + PCI_TESTDEV_NOTIFY, 4, PCI_TESTDEV_MSIX_VECTORS);
    io_bus_read(&m.pio, io + PCI_TESTDEV_NOTIFY, 4, &v);
    g_assert_cmpint((int32_t)v, ==, -EINVAL);
    io_bus_write(&m.mmio, regs + PCI_TESTDEV_NOTIFY, 4, 4); /* still masked */
    io_bus_read(&m.mmio, regs + PCI_TESTDEV_NOTIFY, 4, &v);
    g_assert_cmpint((int32_t)v, ==, PCI_NOTIFY_PENDING);
    io_bus_read(&m.mmio, regs + PCI_TESTDEV_MSIX_PBA, 4, &v);
    g_assert_cmphex(v, ==, 0x10);
    g_assert_cmpuint(rec.nmsi, ==, 2);
    /* MSI-X structures are the core's: writes there are not recorded by the device. */
    io_bus_read(&m.mmio, regs + PCI_TESTDEV_LAST_OFFSET, 4, &v);
    g_assert_cmphex(v, ==, PCI_TESTDEV_NOTIFY);
    dh_machine_fini(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pci-msi/msi/32bit-delivery", test_msi_32bit_delivery);
    g_test_add_func("/pci-msi/msi/64bit-delivery", test_msi_64bit_delivery);
    g_test_add_func("/pci-msi/msi/multiple-messages-set-low-data-bits", test_msi_multiple_messages);
    g_test_add_func("/pci-msi/msi/mask-holds-pending-until-unmask", test_msi_mask_and_pending);
    g_test_add_func("/pci-msi/msi/needs-bus-master", test_msi_needs_bus_master);
    g_test_add_func("/pci-msi/msi/enable-silences-intx", test_msi_enable_silences_intx);
    g_test_add_func("/pci-msi/msix/capability-fields", test_msix_capability);
    g_test_add_func("/pci-msi/msix/table-writes-and-reserved-bits", test_msix_table_writes);
    g_test_add_func("/pci-msi/msix/table-access-sizes", test_msix_access_sizes);
    g_test_add_func("/pci-msi/msix/vector-mask-pending-then-unmask", test_msix_vector_mask_pending);
    g_test_add_func("/pci-msi/msix/function-mask", test_msix_function_mask);
    g_test_add_func("/pci-msi/msix/out-of-range-vector-is-an-error", test_msix_vector_range);
    g_test_add_func("/pci-msi/msix/precedence-over-msi-and-intx", test_msix_takes_precedence);
    g_test_add_func("/pci-msi/msix/needs-bus-master", test_msix_needs_bus_master);
    g_test_add_func("/pci-msi/msix/reset-masks-every-vector", test_msix_reset_masks_all);
    g_test_add_func("/pci-msi/init/validates-arguments", test_init_validation);
    g_test_add_func("/pci-msi/testdev/notify-register", test_testdev_notify_register);
    return g_test_run();
}
