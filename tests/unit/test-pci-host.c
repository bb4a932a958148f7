/* Proves the host bridge: ECAM agrees with CF8/CFC and reaches extended config space, CF8 ignores the
 * extended register bits, 0xCF9 reaches the reset control register, and the firmware-style allocator places
 * every BAR aligned, without overlap, inside the windows, and redoes it after a reset. */
#include <errno.h>

#include <glib.h>

#include "device_harness.h"
#include "machine.h"
#include "pci.h"
#include "pci_host.h"
#include "pci_testdev.h"
#include "pit.h"
#include "sysctl_ports.h"

#define MiB (1024ULL * 1024)
#define GiB (1024ULL * MiB)
#define TD PCI_TESTDEV_SLOT
#define BAR(n) (PCI_BASE_ADDRESS_0 + 4 * (n))

static const struct machine_device *const board[] = {&pci_host_device, &pci_testdev_device};
/* The PC board's order: sysctl_ports owns 0xCF9 until the host bridge takes 0xCF8-0xCFF over. */
static const struct machine_device *const board_with_sysctl[] = {&pit_device, &sysctl_ports_device,
                                                                 &pci_host_device, &pci_testdev_device};

static void machine_up(struct machine *m)
{
    dh_machine_init(m, board, G_N_ELEMENTS(board), 1, 64 * MiB);
}

static uint32_t cf8_read(struct machine *m, unsigned slot, unsigned fn, unsigned reg, unsigned size)
{
    io_bus_write(&m->pio, PCI_CONFIG_ADDRESS, 4,
                 PCI_CONFIG_ADDRESS_ENABLE | slot << 11 | fn << 8 | (reg & 0xfc));
    return (uint32_t)dh_pio_read_unchecked(m, PCI_CONFIG_DATA + (reg & 3), size);
}

static void cf8_write(struct machine *m, unsigned slot, unsigned fn, unsigned reg, uint32_t v, unsigned size)
{
    io_bus_write(&m->pio, PCI_CONFIG_ADDRESS, 4,
                 PCI_CONFIG_ADDRESS_ENABLE | slot << 11 | fn << 8 | (reg & 0xfc));
    io_bus_write(&m->pio, PCI_CONFIG_DATA + (reg & 3), size, v);
}

static uint64_t ecam_addr(unsigned bus, unsigned slot, unsigned fn, unsigned reg)
{
    return PCI_ECAM_BASE + ((uint64_t)bus << 20 | slot << 15 | fn << 12 | reg);
}

static uint64_t ecam_read(struct machine *m, unsigned bus, unsigned slot, unsigned fn, unsigned reg,
                          unsigned size)
{
    return dh_mmio_read(m, ecam_addr(bus, slot, fn, reg), size);
}

static void ecam_write(struct machine *m, unsigned slot, unsigned fn, unsigned reg, uint64_t v, unsigned size)
{
    dh_mmio_write(m, ecam_addr(0, slot, fn, reg), size, v);
}

/* ---------------------------------------------------------------- ECAM */

static void test_ecam_matches_cf8(void)
{
    struct machine m;
    machine_up(&m);
    static const unsigned slots[] = {0, TD, 7};
    for (unsigned i = 0; i < G_N_ELEMENTS(slots); i++) {
        for (unsigned reg = 0; reg < 256; reg += 4) {
            uint32_t c = cf8_read(&m, slots[i], 0, reg, 4);
            g_assert_cmphex(ecam_read(&m, 0, slots[i], 0, reg, 4), ==, c);
            g_assert_cmphex(ecam_read(&m, 0, slots[i], 0, reg + 2, 2), ==, c >> 16);
            g_assert_cmphex(ecam_read(&m, 0, slots[i], 0, reg + 3, 1), ==, c >> 24);
            g_assert_cmphex(ecam_read(&m, 0, slots[i], 0, reg + 1, 2), ==, (c >> 8) & 0xffff);
        }
    }
    g_assert_cmphex(ecam_read(&m, 0, 0, 0, 0, 4), ==, 0x00081b36);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, 0, 4), ==, 0x00051b36);

    /* Writes through one path are seen through the other. */
    ecam_write(&m, TD, 0, BAR(0), 0xc0004000, 4);
    g_assert_cmphex(cf8_read(&m, TD, 0, BAR(0), 4), ==, 0xc0004000);
    cf8_write(&m, TD, 0, PCI_INTERRUPT_LINE, 0x0a, 1);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, PCI_INTERRUPT_LINE, 1), ==, 0x0a);
    ecam_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    uint64_t v;
    g_assert_true(io_bus_read(&m.mmio, 0xc0004000, 4, &v));
    g_assert_cmphex(v, ==, PCI_TESTDEV_MAGIC);
    /* Read-only bits hold through ECAM too. */
    ecam_write(&m, TD, 0, PCI_VENDOR_ID, 0, 4);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, 0, 4), ==, 0x00051b36);
    dh_machine_fini(&m);
}

static void test_ecam_absent_and_bad_accesses(void)
{
    struct machine m;
    machine_up(&m);
    g_assert_cmphex(ecam_read(&m, 0, 7, 0, 0, 4), ==, 0xffffffff);
    g_assert_cmphex(ecam_read(&m, 0, TD, 5, 0, 2), ==, 0xffff);
    g_assert_cmphex(ecam_read(&m, 1, 0, 0, 0, 4), ==, 0xffffffff);
    g_assert_cmphex(ecam_read(&m, 255, 31, 7, 0xffc, 4), ==, 0xffffffff);
    ecam_write(&m, 7, 0, PCI_COMMAND, 0xffff, 2); /* dropped */
    /* The window is exactly 256 buses. */
    g_assert_nonnull(io_bus_find(&m.mmio, PCI_ECAM_BASE + PCI_ECAM_SIZE - 1, 1));
    g_assert_null(io_bus_find(&m.mmio, PCI_ECAM_BASE + PCI_ECAM_SIZE, 1));
    g_assert_null(io_bus_find(&m.mmio, PCI_ECAM_BASE - 1, 1));
    /* An access crossing a dword is refused, not split. */
    g_assert_cmphex(ecam_read(&m, 0, 0, 0, 2, 4), ==, 0xffffffff);
    g_assert_cmphex(ecam_read(&m, 0, 0, 0, 3, 2), ==, 0xffff);
    ecam_write(&m, TD, 0, PCI_INTERRUPT_LINE - 2, 0x55555555, 4);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, PCI_INTERRUPT_LINE, 1), ==, 0);
    /* An aligned qword is two dwords. */
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, 0, 8), ==,
                    0x0010000000051b36ULL); /* IDs, then status (cap list) | command */
    ecam_write(&m, TD, 0, BAR(2), 0x00000001c0100000ULL, 8);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, BAR(2), 4), ==, 0xc010000c);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, BAR(3), 4), ==, 0x1);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, 4, 8), ==, 0xffffffffffffffffULL); /* misaligned qword */
    dh_machine_fini(&m);
}

static void test_ecam_extended_space(void)
{
    struct machine m;
    machine_up(&m);
    /* The test function has 4 KiB: a vendor-specific extended capability at 0x100, the end of the list. */
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, PCI_TESTDEV_VSEC, 4), ==, 0x0001000b);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, PCI_TESTDEV_VSEC + 4, 4), ==, 0x01000001);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, PCI_TESTDEV_VSEC_MAGIC, 4), ==, PCI_TESTDEV_MAGIC);
    ecam_write(&m, TD, 0, PCI_TESTDEV_VSEC_SCRATCH, 0x12345678, 4);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, PCI_TESTDEV_VSEC_SCRATCH, 4), ==, 0x12345678);
    ecam_write(&m, TD, 0, PCI_TESTDEV_VSEC_SCRATCH + 1, 0xaa, 1);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, PCI_TESTDEV_VSEC_SCRATCH, 4), ==, 0x1234aa78);
    ecam_write(&m, TD, 0, PCI_TESTDEV_VSEC_MAGIC, 0, 4);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, PCI_TESTDEV_VSEC_MAGIC, 4), ==, PCI_TESTDEV_MAGIC);
    /* Unused extended space of an express function reads 0 ... */
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, 0x200, 4), ==, 0);
    g_assert_cmphex(ecam_read(&m, 0, TD, 0, 0xffc, 4), ==, 0);
    /* ... a conventional function (the host bridge) has none: all ones, writes dropped. */
    g_assert_cmphex(ecam_read(&m, 0, 0, 0, 0x100, 4), ==, 0xffffffff);
    ecam_write(&m, 0, 0, 0x100, 0, 4);
    g_assert_cmphex(ecam_read(&m, 0, 0, 0, 0x100, 4), ==, 0xffffffff);
    g_assert_cmphex(ecam_read(&m, 0, 0, 0, 0xfff, 1), ==, 0xff);
    dh_machine_fini(&m);
}

static void test_cf8_ignores_extended_register_bits(void)
{
    struct machine m;
    machine_up(&m);
    ecam_write(&m, TD, 0, PCI_TESTDEV_VSEC_SCRATCH, 0x11223344, 4);
    /* Bits 27:24 would select 0x108; mechanism #1 only reaches 0x08 (the class/revision dword). */
    io_bus_write(&m.pio, PCI_CONFIG_ADDRESS, 4, PCI_CONFIG_ADDRESS_ENABLE | 1u << 24 | TD << 11 | 0x08);
    g_assert_cmphex(dh_pio_read_unchecked(&m, PCI_CONFIG_ADDRESS, 4), ==,
                    PCI_CONFIG_ADDRESS_ENABLE | TD << 11 | 0x08);
    g_assert_cmphex(dh_pio_read_unchecked(&m, PCI_CONFIG_DATA, 4), ==, 0x00ff0000);
    dh_machine_fini(&m);
}

/* ---------------------------------------------------------------- 0xCF9 */

static unsigned reset_requests;

static void on_request(void *opaque, enum machine_request req)
{
    (void)opaque;
    if (req == MACHINE_REQUEST_RESET)
        reset_requests++;
}

static void test_cf9_reaches_reset_control(void)
{
    struct machine m;
    dh_machine_init(&m, board_with_sysctl, G_N_ELEMENTS(board_with_sysctl), 1, 64 * MiB);
    reset_requests = 0;
    machine_set_request_handler(&m, on_request, NULL);
    g_assert_false(m.sysctl_ports->rcr_registered);
    const struct io_region *r = io_bus_find(&m.pio, 0xcf9, 1);
    g_assert_nonnull(r);
    g_assert_cmpstr(r->name, ==, "pci-config");
    /* Linux's "reboot=pci": SYS_RST first, then SYS_RST | RST_CPU. */
    io_bus_write(&m.pio, 0xcf9, 1, SYSCTL_RCR_SYS_RST);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcf9, 1), ==, SYSCTL_RCR_SYS_RST);
    g_assert_cmpuint(reset_requests, ==, 0);
    io_bus_write(&m.pio, 0xcf9, 1, SYSCTL_RCR_SYS_RST | SYSCTL_RCR_RST_CPU);
    g_assert_cmpuint(reset_requests, ==, 1);
    /* The config mechanism still works beside it. */
    g_assert_cmphex(cf8_read(&m, 0, 0, 0, 4), ==, 0x00081b36);
    dh_machine_fini(&m);

    /* Without sysctl_ports, 0xCF9 floats. */
    machine_up(&m);
    g_assert_cmphex(dh_pio_read_unchecked(&m, 0xcf9, 1), ==, 0xff);
    io_bus_write(&m.pio, 0xcf9, 1, 0x06);
    dh_machine_fini(&m);
}

/* ---------------------------------------------------------------- resource assignment */

struct bardev {
    struct pci_device pci;
};

static struct bardev *bardev_new(struct machine *m, unsigned slot, const unsigned *flags,
                                 const uint64_t *sizes, unsigned nbars)
{
    static const struct pci_device_info info = {
        .name = "bardev", .vendor_id = 0x1234, .device_id = 0x1111, .interrupt_pin = 2};
    struct bardev *b = g_new0(struct bardev, 1);
    pci_device_init(&b->pci, &info);
    for (unsigned i = 0, n = 0; i < nbars; i++) {
        g_assert_cmpint(pci_register_bar(&b->pci, n, flags[i], sizes[i], NULL, NULL), ==, 0);
        n += (flags[i] & PCI_BAR_MEM64) ? 2 : 1;
    }
    g_assert_cmpint(pci_register_device(m->pci, &b->pci, slot, 0), ==, 0);
    return b;
}

static void bardev_free(struct bardev *b)
{
    pci_unregister_device(&b->pci);
    g_free(b);
}

struct placed {
    uint64_t addr, size;
    bool io;
};

/* Checks every BAR on the bus against the rules and returns how many there are. */
static unsigned check_assignment(struct machine *m, struct placed *out, unsigned max)
{
    unsigned n = 0;
    for (unsigned devfn = 0; devfn < PCI_DEVFN_COUNT; devfn++) {
        struct pci_device *d = m->pci->devices[devfn];
        if (!d)
            continue;
        bool has_io = false, has_mem = false;
        for (unsigned b = 0; b < PCI_BAR_COUNT; b++) {
            const struct pci_bar *bar = &d->bars[b];
            if (!bar->size)
                continue;
            g_assert_cmpuint(n, <, max);
            struct placed p = {pci_bar_address(d, b), bar->size, bar->flags & PCI_BAR_IO};
            g_assert_cmphex(p.addr & (p.size - 1), ==, 0);
            if (p.io) {
                has_io = true;
                g_assert_cmphex(p.addr, >=, PCI_IO_BASE);
                g_assert_cmphex(p.addr + p.size, <=, PCI_IO_BASE + PCI_IO_SIZE);
            } else {
                has_mem = true;
                uint64_t base64 = pci_mmio64_base(m->config.ram_size);
                bool in32 = p.addr >= PCI_MMIO32_BASE && p.addr + p.size <= PCI_MMIO32_BASE + PCI_MMIO32_SIZE;
                bool in64 = p.addr >= base64 && p.addr + p.size <= base64 + PCI_MMIO64_SIZE;
                g_assert_true(in32 || ((bar->flags & PCI_BAR_MEM64) && in64));
            }
            /* Mapped where the BAR says, with no other owner. */
            const struct io_region *r = io_bus_find(p.io ? &m->pio : &m->mmio, p.addr, 1);
            g_assert_nonnull(r);
            g_assert_true(r->opaque == bar);
            g_assert_cmphex(r->base, ==, p.addr);
            g_assert_cmphex(r->len, ==, p.size);
            for (unsigned j = 0; j < n; j++)
                if (out[j].io == p.io)
                    g_assert_true(p.addr + p.size <= out[j].addr || out[j].addr + out[j].size <= p.addr);
            out[n++] = p;
        }
        uint16_t cmd = pci_command(d);
        g_assert_cmphex(cmd & PCI_COMMAND_IO, ==, has_io ? PCI_COMMAND_IO : 0);
        g_assert_cmphex(cmd & PCI_COMMAND_MEMORY, ==, has_mem ? PCI_COMMAND_MEMORY : 0);
        unsigned pin = d->config[PCI_INTERRUPT_PIN];
        if (pin)
            g_assert_cmpuint(d->config[PCI_INTERRUPT_LINE], ==, pci_intx_gsi(d->slot, pin - 1));
    }
    return n;
}

static void test_assign_aligned_disjoint_in_windows(void)
{
    struct machine m;
    machine_up(&m);
    char *err = NULL;
    struct pci_testdev *extra[4];
    for (unsigned i = 0; i < 4; i++)
        g_assert_nonnull(extra[i] = pci_testdev_new(m.pci, 1 + i, 0, &err));
    static const unsigned f[] = {PCI_BAR_MEM32, PCI_BAR_IO, PCI_BAR_MEM64, PCI_BAR_IO, PCI_BAR_MEM32};
    static const uint64_t s[] = {16, 4, 64 * MiB, 256, 256 * MiB};
    struct bardev *b = bardev_new(&m, 9, f, s, G_N_ELEMENTS(f));
    /* A guest-ish mess beforehand: decoding on at overlapping addresses. */
    cf8_write(&m, TD, 0, BAR(0), 0xc0000000, 4);
    cf8_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);

    g_assert_cmpint(pci_host_assign_resources(m.pci), ==, 0);
    struct placed p[64];
    g_assert_cmpuint(check_assignment(&m, p, G_N_ELEMENTS(p)), ==, 5 * 3 + 5);
    /* Largest first from the window base; everything fits below 4 GiB, 64-bit BARs included. */
    /* (bardev's BARs: 0 mem32 16 B, 1 I/O 4 B, 2-3 mem64 64 MiB, 4 I/O 256 B, 5 mem32 256 MiB) */
    g_assert_cmphex(pci_bar_address(&b->pci, 5), ==, PCI_MMIO32_BASE);
    g_assert_cmphex(pci_bar_address(&b->pci, 2), ==, PCI_MMIO32_BASE + 256 * MiB);
    g_assert_cmphex(pci_bar_address(&extra[0]->pci, 2), ==, PCI_MMIO32_BASE + 320 * MiB);
    g_assert_cmphex(pci_bar_address(&b->pci, 4), ==, PCI_IO_BASE);
    /* Assignment never turns bus mastering on, nor off where the guest had set it. */
    g_assert_cmphex(pci_command(&b->pci) & PCI_COMMAND_MASTER, ==, 0);
    g_assert_cmphex(pci_command(&extra[0]->pci) & PCI_COMMAND_MASTER, ==, 0);
    g_assert_cmphex(pci_command(pci_bus_get_device(m.pci, TD, 0)) & PCI_COMMAND_MASTER, ==,
                    PCI_COMMAND_MASTER);
    /* And the devices answer where they were put. */
    uint64_t v;
    g_assert_true(io_bus_read(&m.mmio, pci_bar_address(&extra[3]->pci, 0), 4, &v));
    g_assert_cmphex(v, ==, PCI_TESTDEV_MAGIC);
    g_assert_true(io_bus_read(&m.pio, pci_bar_address(&extra[3]->pci, 1), 4, &v));
    g_assert_cmphex(v, ==, PCI_TESTDEV_MAGIC);
    bardev_free(b);
    for (unsigned i = 0; i < 4; i++)
        pci_testdev_free(extra[i]);
    dh_machine_fini(&m);
}

static void test_assign_64bit_goes_high_when_32bit_window_needed(void)
{
    struct machine m;
    machine_up(&m);
    static const unsigned f64[] = {PCI_BAR_MEM64 | PCI_BAR_PREFETCH};
    static const uint64_t s64[] = {512 * MiB};
    static const unsigned f32[] = {PCI_BAR_MEM32, PCI_BAR_MEM32, PCI_BAR_MEM32};
    static const uint64_t s32[] = {512 * MiB, 256 * MiB, 128 * MiB};
    struct bardev *a = bardev_new(&m, 1, f64, s64, 1);
    struct bardev *b = bardev_new(&m, 2, f32, s32, 3);
    g_assert_cmpint(pci_host_assign_resources(m.pci), ==, 0);
    struct placed p[16];
    g_assert_cmpuint(check_assignment(&m, p, G_N_ELEMENTS(p)), ==, 4 + 3);
    /* 512 + 256 + 128 MiB of 32-bit-only BARs leave no room for the 64-bit one below 4 GiB. */
    g_assert_cmphex(pci_bar_address(&a->pci, 0), ==, PCI_MMIO64_BASE);
    g_assert_cmphex(pci_bar_address(&b->pci, 0), ==, PCI_MMIO32_BASE);
    g_assert_cmphex(pci_bar_address(&b->pci, 1), ==, PCI_MMIO32_BASE + 512 * MiB);
    g_assert_cmphex(pci_bar_address(&b->pci, 2), ==, PCI_MMIO32_BASE + 768 * MiB);
    bardev_free(a);
    bardev_free(b);
    dh_machine_fini(&m);
}

static void test_assign_reports_exhaustion(void)
{
    struct machine m;
    machine_up(&m);
    /* 11 functions x 6 I/O BARs of 256 bytes = 66; the 16 KiB window holds 64. */
    static const unsigned f[] = {PCI_BAR_IO, PCI_BAR_IO, PCI_BAR_IO, PCI_BAR_IO, PCI_BAR_IO, PCI_BAR_IO};
    static const uint64_t s[] = {256, 256, 256, 256, 256, 256};
    struct bardev *b[11];
    for (unsigned i = 0; i < 11; i++)
        b[i] = bardev_new(&m, 1 + i, f, s, 6);
    g_assert_cmpint(pci_host_assign_resources(m.pci), ==, -ENOSPC);
    unsigned placed = 0;
    for (unsigned i = 0; i < 11; i++)
        for (unsigned n = 0; n < 6; n++)
            placed += pci_bar_address(&b[i]->pci, n) != 0;
    g_assert_cmpuint(placed, ==, 64);
    /* The last two in bus order lost; the test function's I/O BAR is smaller and came after them. */
    g_assert_cmphex(pci_bar_address(&b[10]->pci, 4), ==, 0);
    g_assert_cmphex(pci_bar_address(&b[10]->pci, 5), ==, 0);
    g_assert_cmphex(pci_bar_address(pci_bus_get_device(m.pci, TD, 0), 1), ==, 0);
    for (unsigned i = 0; i < 11; i++)
        bardev_free(b[i]);
    dh_machine_fini(&m);
}

static void test_mmio64_base_follows_ram(void)
{
    g_assert_cmphex(pci_mmio64_base(512 * MiB), ==, PCI_MMIO64_BASE);
    /* RAM above 2.75 GiB continues at 4 GiB: 30.75 GiB ends exactly at 32 GiB. */
    g_assert_cmphex(pci_mmio64_base(30 * GiB + 768 * MiB), ==, 32 * GiB);
    g_assert_cmphex(pci_mmio64_base(31 * GiB), ==, 64 * GiB);
    g_assert_cmphex(pci_mmio64_base(1024 * GiB), ==, 1056 * GiB);
    g_assert_cmphex(PCI_MMIO64_BASE + PCI_MMIO64_SIZE, <=, 1ULL << 36);
}

static void test_reset_redoes_assignment(void)
{
    struct machine m;
    machine_up(&m);
    struct pci_device *d = pci_bus_get_device(m.pci, TD, 0);
    g_assert_cmpint(pci_host_assign_resources(m.pci), ==, 0);
    uint64_t bar0 = pci_bar_address(d, 0), bar1 = pci_bar_address(d, 1), bar2 = pci_bar_address(d, 2);
    g_assert_cmphex(bar0, !=, 0);
    g_assert_cmphex(bar1, !=, 0);
    /* The guest moves things around and turns on bus mastering. */
    cf8_write(&m, TD, 0, BAR(0), 0xd0000000, 4);
    cf8_write(&m, TD, 0, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    machine_reset(&m);
    g_assert_cmphex(pci_bar_address(d, 0), ==, bar0);
    g_assert_cmphex(pci_bar_address(d, 1), ==, bar1);
    g_assert_cmphex(pci_bar_address(d, 2), ==, bar2);
    g_assert_cmphex(pci_command(d), ==, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    g_assert_null(io_bus_find(&m.mmio, 0xd0000000, 1));
    struct placed p[8];
    g_assert_cmpuint(check_assignment(&m, p, G_N_ELEMENTS(p)), ==, 3);
    dh_machine_fini(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pci-host/ecam/matches-cf8", test_ecam_matches_cf8);
    g_test_add_func("/pci-host/ecam/absent-and-misaligned-accesses", test_ecam_absent_and_bad_accesses);
    g_test_add_func("/pci-host/ecam/extended-config-space", test_ecam_extended_space);
    g_test_add_func("/pci-host/cf8/ignores-extended-register-bits", test_cf8_ignores_extended_register_bits);
    g_test_add_func("/pci-host/cf9/reaches-reset-control", test_cf9_reaches_reset_control);
    g_test_add_func("/pci-host/assign/aligned-disjoint-in-windows", test_assign_aligned_disjoint_in_windows);
    g_test_add_func("/pci-host/assign/64bit-goes-high-only-when-needed",
                    test_assign_64bit_goes_high_when_32bit_window_needed);
    g_test_add_func("/pci-host/assign/reports-exhaustion", test_assign_reports_exhaustion);
    g_test_add_func("/pci-host/assign/mmio64-base-follows-ram", test_mmio64_base_follows_ram);
    g_test_add_func("/pci-host/reset/redoes-assignment", test_reset_redoes_assignment);
    return g_test_run();
}
