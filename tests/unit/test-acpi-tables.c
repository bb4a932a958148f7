/* Proves the ACPI tables as a guest finds them in RAM: the RSDP where a legacy scan looks, every checksum,
 * the XSDT/RSDT pointers, and the FADT, MADT, MCFG and DSDT contents. With --dump DIR [--cpus N] it instead
 * writes each table to DIR/<SIG>.dat for tests/integration/test_acpi_iasl.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "acpi_pm.h"
#include "acpi_tables.h"
#include "aml.h"
#include "device_harness.h"
#include "machine.h"

static void setup(struct machine *m, unsigned cpus)
{
    dh_machine_init(m, NULL, 0, cpus, 32 << 20);
}

/* A table read back out of guest memory. */
static uint8_t *read_table(struct machine *m, uint64_t gpa, uint32_t *len_out)
{
    uint32_t len = 0;
    g_assert_cmpint(guest_mem_read_u32(&m->mem, gpa + 4, &len), ==, 0);
    g_assert_cmpuint(len, >=, ACPI_HEADER_SIZE);
    g_assert_cmpuint(gpa, >=, ACPI_TABLES_BASE);
    g_assert_cmpuint(gpa + len, <=, ACPI_TABLES_BASE + ACPI_TABLES_SIZE);
    uint8_t *t = g_malloc(len);
    g_assert_cmpint(guest_mem_read(&m->mem, gpa, t, len), ==, 0);
    *len_out = len;
    return t;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

struct tables {
    uint64_t rsdp;
    uint8_t rsdp_bytes[ACPI_RSDP_SIZE];
    uint64_t xsdt, rsdt, fadt, madt, mcfg, dsdt, facs;
};

/* Builds the tables and follows the pointers the way a guest does. */
static void build_and_walk(struct machine *m, struct tables *tb)
{
    char *err = NULL;
    memset(tb, 0, sizeof(*tb));
    g_assert_cmpint(acpi_tables_build(m, &tb->rsdp, &err), ==, 0);
    g_assert_null(err);
    g_assert_cmpint(guest_mem_read(&m->mem, tb->rsdp, tb->rsdp_bytes, ACPI_RSDP_SIZE), ==, 0);
    tb->rsdt = le32_load(tb->rsdp_bytes + 16);
    tb->xsdt = le64_load(tb->rsdp_bytes + 24);
    uint32_t len;
    uint8_t *x = read_table(m, tb->xsdt, &len);
    for (uint32_t off = ACPI_HEADER_SIZE; off + 8 <= len; off += 8) {
        uint64_t gpa = le64_load(x + off);
        char sig[5] = {0};
        g_assert_cmpint(guest_mem_read(&m->mem, gpa, sig, 4), ==, 0);
        if (!strcmp(sig, "FACP"))
            tb->fadt = gpa;
        else if (!strcmp(sig, "APIC"))
            tb->madt = gpa;
        else if (!strcmp(sig, "MCFG"))
            tb->mcfg = gpa;
        else
            g_error("unexpected XSDT entry %s", sig);
    }
    g_free(x);
    g_assert_cmpuint(tb->fadt, !=, 0);
    uint8_t *f = read_table(m, tb->fadt, &len);
    tb->facs = le64_load(f + 132);
    tb->dsdt = le64_load(f + 140);
    g_assert_cmpuint(le32_load(f + 36), ==, tb->facs);
    g_assert_cmpuint(le32_load(f + 40), ==, tb->dsdt);
    g_free(f);
}

static void test_rsdp(void)
{
    struct machine m;
    setup(&m, 1);
    struct tables tb;
    build_and_walk(&m, &tb);
    g_assert_cmphex(tb.rsdp, ==, ACPI_RSDP_ADDR);
    g_assert_cmphex(tb.rsdp % 16, ==, 0);
    g_assert_cmpuint(tb.rsdp, >=, 0xE0000);
    g_assert_cmpuint(tb.rsdp + ACPI_RSDP_SIZE, <=, 0x100000);
    g_assert_cmpmem(tb.rsdp_bytes, 8, "RSD PTR ", 8);
    g_assert_cmpmem(tb.rsdp_bytes + 9, 6, "DESKVM", 6);
    g_assert_cmpuint(tb.rsdp_bytes[15], ==, 2);
    g_assert_cmpuint(le32_load(tb.rsdp_bytes + 20), ==, ACPI_RSDP_SIZE);
    g_assert_cmphex(sum(tb.rsdp_bytes, 20), ==, 0);
    g_assert_cmphex(sum(tb.rsdp_bytes, ACPI_RSDP_SIZE), ==, 0);
    g_assert_cmphex(tb.rsdp_bytes[8], !=, 0); /* a real checksum, not an unset field */
    g_assert_cmphex(tb.xsdt, !=, 0);
    g_assert_cmphex(tb.rsdt, !=, 0);
    dh_machine_fini(&m);
}

/* A legacy scan of 0xE0000-0xFFFFF on 16-byte boundaries finds exactly one valid RSDP, ours. */
static void test_rsdp_scan(void)
{
    struct machine m;
    setup(&m, 2);
    struct tables tb;
    build_and_walk(&m, &tb);
    unsigned found = 0;
    for (uint64_t a = 0xE0000; a < 0x100000; a += 16) {
        uint8_t b[20];
        g_assert_cmpint(guest_mem_read(&m.mem, a, b, sizeof(b)), ==, 0);
        if (!memcmp(b, "RSD PTR ", 8) && sum(b, 20) == 0) {
            g_assert_cmphex(a, ==, tb.rsdp);
            found++;
        }
    }
    g_assert_cmpuint(found, ==, 1);
    dh_machine_fini(&m);
}

static void check_table(struct machine *m, uint64_t gpa, const char *sig, uint8_t revision)
{
    uint32_t len;
    uint8_t *t = read_table(m, gpa, &len);
    g_assert_cmpmem(t, 4, sig, 4);
    g_assert_cmpuint(t[8], ==, revision);
    g_assert_cmphex(sum(t, len), ==, 0);
    g_assert_cmpmem(t + 10, 6, ACPI_OEM_ID, 6);
    g_assert_cmpmem(t + 16, 8, ACPI_OEM_TABLE_ID, 8);
    g_assert_cmpmem(t + 28, 4, ACPI_CREATOR_ID, 4);
    g_assert_cmphex(gpa % 8, ==, 0);
    g_free(t);
}

static void test_checksums(void)
{
    for (unsigned cpus = 1; cpus <= MACHINE_MAX_CPUS; cpus *= 4) {
        struct machine m;
        setup(&m, cpus);
        struct tables tb;
        build_and_walk(&m, &tb);
        check_table(&m, tb.xsdt, "XSDT", 1);
        check_table(&m, tb.rsdt, "RSDT", 1);
        check_table(&m, tb.fadt, "FACP", 6);
        check_table(&m, tb.madt, "APIC", 4);
        check_table(&m, tb.mcfg, "MCFG", 1);
        check_table(&m, tb.dsdt, "DSDT", 2);
        uint32_t len;
        uint8_t *f = read_table(&m, tb.fadt, &len);
        g_assert_cmpuint(len, ==, ACPI_FADT_SIZE);
        g_free(f);
        /* the FACS has no checksum; it must be 64-byte aligned */
        uint8_t facs[ACPI_FACS_SIZE];
        g_assert_cmpint(guest_mem_read(&m.mem, tb.facs, facs, sizeof(facs)), ==, 0);
        g_assert_cmpmem(facs, 4, "FACS", 4);
        g_assert_cmpuint(le32_load(facs + 4), ==, ACPI_FACS_SIZE);
        g_assert_cmphex(tb.facs % 64, ==, 0);
        dh_machine_fini(&m);
    }
}

static void test_xsdt_and_rsdt_agree(void)
{
    struct machine m;
    setup(&m, 4);
    struct tables tb;
    build_and_walk(&m, &tb);
    uint32_t xl, rl;
    uint8_t *x = read_table(&m, tb.xsdt, &xl);
    uint8_t *r = read_table(&m, tb.rsdt, &rl);
    g_assert_cmpuint(xl, ==, ACPI_HEADER_SIZE + 3 * 8);
    g_assert_cmpuint(rl, ==, ACPI_HEADER_SIZE + 3 * 4);
    static const char *const order[] = {"FACP", "APIC", "MCFG"};
    for (int i = 0; i < 3; i++) {
        uint64_t gpa = le64_load(x + ACPI_HEADER_SIZE + 8 * i);
        g_assert_cmpuint(le32_load(r + ACPI_HEADER_SIZE + 4 * i), ==, gpa);
        char sig[4];
        g_assert_cmpint(guest_mem_read(&m.mem, gpa, sig, 4), ==, 0);
        g_assert_cmpmem(sig, 4, order[i], 4);
    }
    g_free(x);
    g_free(r);
    dh_machine_fini(&m);
}

static void check_madt(unsigned cpus)
{
    struct machine m;
    setup(&m, cpus);
    struct tables tb;
    build_and_walk(&m, &tb);
    uint32_t len;
    uint8_t *t = read_table(&m, tb.madt, &len);
    g_assert_cmphex(le32_load(t + 36), ==, 0xFEE00000);
    g_assert_cmphex(le32_load(t + 40), ==, 1); /* PCAT_COMPAT */
    unsigned lapics = 0, ioapics = 0, isos = 0, nmis = 0;
    bool irq0 = false, irq9 = false;
    for (uint32_t off = 44; off < len;) {
        const uint8_t *e = t + off;
        g_assert_cmpuint(e[1], >=, 2);
        g_assert_cmpuint(off + e[1], <=, len);
        switch (e[0]) {
        case 0:
            g_assert_cmpuint(e[1], ==, 8);
            g_assert_cmpuint(e[2], ==, lapics); /* UID */
            g_assert_cmpuint(e[3], ==, lapics); /* APIC ID */
            g_assert_cmphex(le32_load(e + 4), ==, 1);
            lapics++;
            break;
        case 1:
            g_assert_cmpuint(e[1], ==, 12);
            g_assert_cmpuint(e[2], ==, ACPI_IOAPIC_ID);
            g_assert_cmphex(le32_load(e + 4), ==, 0xFEC00000);
            g_assert_cmpuint(le32_load(e + 8), ==, 0);
            ioapics++;
            break;
        case 2:
            g_assert_cmpuint(e[1], ==, 10);
            g_assert_cmpuint(e[2], ==, 0);
            if (e[3] == 0) {
                g_assert_cmpuint(le32_load(e + 4), ==, 2);
                g_assert_cmphex(le16_load(e + 8), ==, 0x0000);
                irq0 = true;
            } else if (e[3] == 9) {
                g_assert_cmpuint(le32_load(e + 4), ==, 9);
                g_assert_cmphex(le16_load(e + 8), ==, 0x000D); /* level, active high */
                irq9 = true;
            }
            isos++;
            break;
        case 4:
            g_assert_cmpuint(e[1], ==, 6);
            g_assert_cmphex(e[2], ==, 0xFF);
            g_assert_cmpuint(e[5], ==, 1);
            nmis++;
            break;
        default:
            g_error("unexpected MADT entry type %u", e[0]);
        }
        off += e[1];
    }
    g_assert_cmpuint(lapics, ==, cpus);
    g_assert_cmpuint(ioapics, ==, 1);
    g_assert_cmpuint(isos, ==, 2);
    g_assert_true(irq0 && irq9);
    g_assert_cmpuint(nmis, ==, 1);
    g_assert_cmpuint(len, ==, 44 + 8 * cpus + 12 + 20 + 6);
    g_free(t);
    dh_machine_fini(&m);
}

static void test_madt_1(void)
{
    check_madt(1);
}

static void test_madt_4(void)
{
    check_madt(4);
}

static void test_madt_64(void)
{
    check_madt(64);
}

static void test_fadt(void)
{
    struct machine m;
    setup(&m, 1);
    struct tables tb;
    build_and_walk(&m, &tb);
    uint32_t len;
    uint8_t *f = read_table(&m, tb.fadt, &len);
    g_assert_cmpuint(le16_load(f + 46), ==, 9);    /* SCI_INT */
    g_assert_cmpuint(le32_load(f + 48), ==, 0);    /* SMI_CMD */
    g_assert_cmphex(le32_load(f + 56), ==, 0x600); /* PM1a_EVT_BLK */
    g_assert_cmphex(le32_load(f + 64), ==, 0x604); /* PM1a_CNT_BLK */
    g_assert_cmphex(le32_load(f + 76), ==, 0x608); /* PM_TMR_BLK */
    g_assert_cmphex(le32_load(f + 80), ==, 0x620); /* GPE0_BLK */
    g_assert_cmpuint(f[88], ==, 4);
    g_assert_cmpuint(f[89], ==, 2);
    g_assert_cmpuint(f[91], ==, 4);
    g_assert_cmpuint(f[92], ==, 8);
    g_assert_cmphex(le16_load(f + 109), ==, 0x0003); /* legacy devices, 8042 */
    uint32_t flags = le32_load(f + 112);
    g_assert_cmphex(flags, ==, 0x00000565);     /* WBINVD PROC_C1 SLP_BUTTON FIX_RTC TMR_VAL_EXT RESET */
    g_assert_cmphex(flags & (1u << 4), ==, 0);  /* fixed-feature power button */
    g_assert_cmphex(flags & (1u << 20), ==, 0); /* not hardware-reduced */
    static const uint8_t reset_gas[] = {1, 8, 0, 1, 0xF9, 0x0C, 0, 0, 0, 0, 0, 0};
    g_assert_cmpmem(f + 116, 12, reset_gas, 12);
    g_assert_cmphex(f[128], ==, 0x06);
    static const struct {
        unsigned off;
        uint8_t width;
        uint64_t addr;
    } x[] = {{148, 32, 0x600}, {172, 16, 0x604}, {208, 32, 0x608}, {220, 64, 0x620}};
    for (size_t i = 0; i < G_N_ELEMENTS(x); i++) {
        g_assert_cmpuint(f[x[i].off], ==, 1); /* system I/O */
        g_assert_cmpuint(f[x[i].off + 1], ==, x[i].width);
        g_assert_cmphex(le64_load(f + x[i].off + 4), ==, x[i].addr);
    }
    /* PM1b, PM2 and GPE1 are absent */
    g_assert_cmphex(le64_load(f + 160 + 4) | le64_load(f + 184 + 4) | le64_load(f + 196 + 4), ==, 0);
    g_free(f);
    dh_machine_fini(&m);
}

static void test_mcfg(void)
{
    struct machine m;
    setup(&m, 1);
    struct tables tb;
    build_and_walk(&m, &tb);
    uint32_t len;
    uint8_t *t = read_table(&m, tb.mcfg, &len);
    g_assert_cmpuint(len, ==, 60);
    g_assert_cmphex(le64_load(t + 44), ==, 0xB0000000);
    g_assert_cmpuint(le16_load(t + 52), ==, 0);
    g_assert_cmpuint(t[54], ==, 0);
    g_assert_cmpuint(t[55], ==, 255);
    g_free(t);
    dh_machine_fini(&m);
}

static bool contains(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return true;
    return false;
}

static void test_dsdt_objects(void)
{
    struct machine m;
    setup(&m, 4);
    struct tables tb;
    build_and_walk(&m, &tb);
    uint32_t len;
    uint8_t *d = read_table(&m, tb.dsdt, &len);
    static const uint8_t s5[] = {
        AML_NAME_OP,     '_', 'S',         '5',        '_', AML_PACKAGE_OP, 0x08, 0x04, AML_BYTE_PREFIX, 5,
        AML_BYTE_PREFIX, 5,   AML_ZERO_OP, AML_ZERO_OP};
    g_assert_true(contains(d, len, s5, sizeof(s5)));
    static const uint8_t pnp0a08[] = {'_', 'H', 'I', 'D', AML_DWORD_PREFIX, 0x41, 0xD0, 0x0A, 0x08};
    g_assert_true(contains(d, len, pnp0a08, sizeof(pnp0a08)));
    static const uint8_t com1_io[] = {0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00};
    g_assert_true(contains(d, len, com1_io, sizeof(com1_io)));
    /* _PRT: 128 entries; slot 2 pin C (2) goes to GSI 16 + (2 + 2) % 4 = 16 */
    static const uint8_t prt[] = {'_', 'P', 'R', 'T', AML_PACKAGE_OP};
    g_assert_true(contains(d, len, prt, sizeof(prt)));
    static const uint8_t entry[] = {
        AML_PACKAGE_OP,  0x0C, 0x04,        AML_DWORD_PREFIX, 0xFF, 0xFF, 0x02, 0x00,
        AML_BYTE_PREFIX, 0x02, AML_ZERO_OP, AML_BYTE_PREFIX,  16};
    g_assert_true(contains(d, len, entry, sizeof(entry)));
    g_assert_true(contains(d, len, "C003", 4));
    g_assert_false(contains(d, len, "C004", 4));
    g_free(d);
    dh_machine_fini(&m);
}

/* Only 0xE0000-0xFFFFF is written. */
static void test_writes_only_its_range(void)
{
    struct machine m;
    setup(&m, 1);
    g_assert_cmpint(guest_mem_fill(&m.mem, 0xD0000, 0xA5, 0x40000), ==, 0);
    struct tables tb;
    build_and_walk(&m, &tb);
    uint8_t below[0x10000], above[0x10000];
    g_assert_cmpint(guest_mem_read(&m.mem, 0xD0000, below, sizeof(below)), ==, 0);
    g_assert_cmpint(guest_mem_read(&m.mem, 0x100000, above, sizeof(above)), ==, 0);
    for (size_t i = 0; i < sizeof(below); i++) {
        g_assert_cmphex(below[i], ==, 0xA5);
        g_assert_cmphex(above[i], ==, 0xA5);
    }
    uint8_t last;
    g_assert_cmpint(guest_mem_read_u8(&m.mem, 0xFFFFF, &last), ==, 0);
    g_assert_cmphex(last, ==, 0); /* unused space zeroed */
    dh_machine_fini(&m);
}

/* ---- --dump mode */

static void dump_one(struct machine *m, const char *dir, const char *name, uint64_t gpa, uint32_t len)
{
    uint8_t *buf = g_malloc(len);
    if (guest_mem_read(&m->mem, gpa, buf, len) < 0)
        g_error("cannot read %s at 0x%llx", name, (unsigned long long)gpa);
    char *path = g_strdup_printf("%s/%s.dat", dir, name);
    GError *e = NULL;
    if (!g_file_set_contents(path, (const char *)buf, len, &e))
        g_error("%s", e->message);
    g_free(path);
    g_free(buf);
}

static int dump(const char *dir, unsigned cpus)
{
    struct machine m;
    setup(&m, cpus);
    struct tables tb;
    build_and_walk(&m, &tb);
    uint32_t len;
    dump_one(&m, dir, "RSDP", tb.rsdp, ACPI_RSDP_SIZE);
    dump_one(&m, dir, "FACS", tb.facs, ACPI_FACS_SIZE);
    const struct {
        const char *name;
        uint64_t gpa;
    } tables[] = {{"XSDT", tb.xsdt}, {"RSDT", tb.rsdt}, {"FACP", tb.fadt},
                  {"APIC", tb.madt}, {"MCFG", tb.mcfg}, {"DSDT", tb.dsdt}};
    for (size_t i = 0; i < G_N_ELEMENTS(tables); i++) {
        g_assert_cmpint(guest_mem_read_u32(&m.mem, tables[i].gpa + 4, &len), ==, 0);
        dump_one(&m, dir, tables[i].name, tables[i].gpa, len);
    }
    dh_machine_fini(&m);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--dump")) {
        unsigned cpus = 1;
        if (argc == 5 && !strcmp(argv[3], "--cpus")) {
            cpus = (unsigned)strtoul(argv[4], NULL, 10);
        } else if (argc != 3) {
            fprintf(stderr, "usage: %s --dump DIR [--cpus N]\n", argv[0]);
            return 2;
        }
        if (cpus < 1 || cpus > MACHINE_MAX_CPUS) {
            fprintf(stderr, "--cpus: 1 to %d\n", MACHINE_MAX_CPUS);
            return 2;
        }
        return dump(argv[2], cpus);
    }
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/acpi-tables/rsdp/aligned-in-scan-area-with-both-checksums", test_rsdp);
    g_test_add_func("/acpi-tables/rsdp/legacy-scan-finds-exactly-one", test_rsdp_scan);
    g_test_add_func("/acpi-tables/checksums/every-table-sums-to-zero", test_checksums);
    g_test_add_func("/acpi-tables/xsdt/entries-point-at-fadt-madt-mcfg", test_xsdt_and_rsdt_agree);
    g_test_add_func("/acpi-tables/madt/1-cpu", test_madt_1);
    g_test_add_func("/acpi-tables/madt/4-cpus", test_madt_4);
    g_test_add_func("/acpi-tables/madt/64-cpus", test_madt_64);
    g_test_add_func("/acpi-tables/fadt/pm-block-sci-reset-and-flags", test_fadt);
    g_test_add_func("/acpi-tables/mcfg/ecam-buses-0-255", test_mcfg);
    g_test_add_func("/acpi-tables/dsdt/pci-root-prt-com1-s5", test_dsdt_objects);
    g_test_add_func("/acpi-tables/build/writes-only-its-range", test_writes_only_its_range);
    return g_test_run();
}
