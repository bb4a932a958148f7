/* ACPI table builder: lays out RSDP, FACS, XSDT, RSDT, FADT, MADT, MCFG and DSDT in 0xE0000-0xFFFFF. */
#include "acpi_tables.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "acpi_pm.h"
#include "aml.h"
#include "pci.h"
#include "pci_host.h"
#include "rtc.h"

/* ---- generic table plumbing */

struct layout {
    uint8_t *buf; /* host copy of ACPI_TABLES_SIZE bytes, written to the guest at the end */
    size_t used;
};

/* Offset of a fresh zeroed area of len bytes, or SIZE_MAX when the range is full. */
static size_t carve(struct layout *l, size_t len, size_t align)
{
    size_t at = (l->used + align - 1) & ~(align - 1);
    if (at > ACPI_TABLES_SIZE || len > ACPI_TABLES_SIZE - at)
        return SIZE_MAX;
    l->used = at + len;
    return at;
}

static uint32_t gpa_of(size_t offset)
{
    return (uint32_t)(ACPI_TABLES_BASE + offset);
}

static void put_id(uint8_t *dst, const char *id, size_t n)
{
    size_t len = strlen(id);
    memset(dst, ' ', n);
    memcpy(dst, id, len < n ? len : n);
}

/* The common header (5.2.6); the checksum is filled in by finish(). */
static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t revision)
{
    memcpy(t, sig, 4);
    le32_store(t + 4, len);
    t[8] = revision;
    put_id(t + 10, ACPI_OEM_ID, 6);
    put_id(t + 16, ACPI_OEM_TABLE_ID, 8);
    le32_store(t + 24, 1);
    memcpy(t + 28, ACPI_CREATOR_ID, 4);
    le32_store(t + 32, 1);
}

/* Makes bytes [0, len) sum to zero through the checksum byte at `at`. */
static void checksum(uint8_t *t, size_t len, size_t at)
{
    uint8_t sum = 0;
    t[at] = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + t[i]);
    t[at] = (uint8_t)-sum;
}

static void finish(uint8_t *t)
{
    checksum(t, le32_load(t + 4), 9);
}

/* Generic Address Structure (5.2.3.2). */
#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2
#define GAS_ACCESS_DWORD 3

static void gas(uint8_t *p, uint8_t space, uint8_t bit_width, uint8_t access, uint64_t address)
{
    p[0] = space;
    p[1] = bit_width;
    p[2] = 0; /* bit offset */
    p[3] = access;
    le64_store(p + 4, address);
}

/* ---- FADT (5.2.9) */

#define FADT_WBINVD (1u << 0)
#define FADT_PROC_C1 (1u << 2)
#define FADT_PWR_BUTTON (1u << 4) /* set: no fixed-feature power button; ours is fixed-feature, so clear */
#define FADT_SLP_BUTTON (1u << 5) /* set: no fixed-feature sleep button */
#define FADT_FIX_RTC (1u << 6)    /* set: no RTC wake status in PM1 */
#define FADT_TMR_VAL_EXT (1u << 8)
#define FADT_RESET_REG_SUP (1u << 10)

#define IAPC_LEGACY_DEVICES (1u << 0)
#define IAPC_8042 (1u << 1)

static void build_fadt(uint8_t *t, uint32_t facs, uint32_t dsdt)
{
    header(t, "FACP", ACPI_FADT_SIZE, 6);
    le32_store(t + 36, facs);
    le32_store(t + 40, dsdt);
    t[45] = 0; /* preferred PM profile: unspecified */
    le16_store(t + 46, ACPI_SCI_IRQ);
    le32_store(t + 48, 0); /* SMI_CMD: none, always in ACPI mode */
    le32_store(t + 56, ACPI_PM1A_EVT_BLK);
    le32_store(t + 64, ACPI_PM1A_CNT_BLK);
    le32_store(t + 76, ACPI_PM_TMR_BLK);
    le32_store(t + 80, ACPI_GPE0_BLK);
    t[88] = ACPI_PM1_EVT_LEN;
    t[89] = ACPI_PM1_CNT_LEN;
    t[91] = ACPI_PM_TMR_LEN;
    t[92] = ACPI_GPE0_BLK_LEN;
    le16_store(t + 96, 101);  /* P_LVL2_LAT > 100: no C2 */
    le16_store(t + 98, 1001); /* P_LVL3_LAT > 1000: no C3 */
    t[108] = RTC_CENTURY;
    le16_store(t + 109, IAPC_LEGACY_DEVICES | IAPC_8042);
    le32_store(t + 112, FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_FIX_RTC | FADT_TMR_VAL_EXT |
                            FADT_RESET_REG_SUP);
    gas(t + 116, GAS_SYSTEM_IO, 8, GAS_ACCESS_BYTE, ACPI_RESET_PORT);
    t[128] = ACPI_RESET_VALUE;
    t[131] = 0; /* FADT minor version */
    le64_store(t + 132, facs);
    le64_store(t + 140, dsdt);
    gas(t + 148, GAS_SYSTEM_IO, 8 * ACPI_PM1_EVT_LEN, GAS_ACCESS_WORD, ACPI_PM1A_EVT_BLK);
    gas(t + 172, GAS_SYSTEM_IO, 8 * ACPI_PM1_CNT_LEN, GAS_ACCESS_WORD, ACPI_PM1A_CNT_BLK);
    gas(t + 208, GAS_SYSTEM_IO, 8 * ACPI_PM_TMR_LEN, GAS_ACCESS_DWORD, ACPI_PM_TMR_BLK);
    gas(t + 220, GAS_SYSTEM_IO, 8 * ACPI_GPE0_BLK_LEN, GAS_ACCESS_BYTE, ACPI_GPE0_BLK);
    finish(t);
}

/* ---- FACS (5.2.10): only there because a FADT that is not hardware-reduced needs one; no waking vector. */

static void build_facs(uint8_t *t)
{
    memcpy(t, "FACS", 4);
    le32_store(t + 4, ACPI_FACS_SIZE);
    t[32] = 2; /* version */
}

/* ---- MADT (5.2.12) */

#define MADT_PCAT_COMPAT (1u << 0)
#define MADT_TYPE_LAPIC 0
#define MADT_TYPE_IOAPIC 1
#define MADT_TYPE_ISO 2
#define MADT_TYPE_LAPIC_NMI 4
#define MPS_INTI_ACTIVE_HIGH 0x1
#define MPS_INTI_LEVEL (0x3 << 2)

static size_t madt_size(unsigned cpus)
{
    return 44 + (size_t)cpus * ACPI_MADT_LAPIC_ENTRY_SIZE + 12 + 2 * 10 + 6;
}

static void build_madt(uint8_t *t, unsigned cpus)
{
    uint32_t len = (uint32_t)madt_size(cpus);
    header(t, "APIC", len, 4);
    le32_store(t + 36, ACPI_LAPIC_ADDR);
    le32_store(t + 40, MADT_PCAT_COMPAT);
    uint8_t *p = t + 44;
    for (unsigned i = 0; i < cpus; i++) {
        p[0] = MADT_TYPE_LAPIC;
        p[1] = ACPI_MADT_LAPIC_ENTRY_SIZE;
        p[2] = (uint8_t)i;    /* ACPI processor UID, = the \_SB.Cxxx device's _UID */
        p[3] = (uint8_t)i;    /* APIC ID */
        le32_store(p + 4, 1); /* enabled */
        p += ACPI_MADT_LAPIC_ENTRY_SIZE;
    }
    p[0] = MADT_TYPE_IOAPIC;
    p[1] = 12;
    p[2] = ACPI_IOAPIC_ID;
    le32_store(p + 4, ACPI_IOAPIC_ADDR);
    le32_store(p + 8, ACPI_IOAPIC_GSI_BASE);
    p += 12;
    /* The PIT's IRQ 0 is wired to IOAPIC pin 2 (flags 0: conforms to ISA, i.e. edge, active high). */
    static const struct {
        uint8_t irq;
        uint32_t gsi;
        uint16_t flags;
    } overrides[] = {
        {0, 2, 0},
        {ACPI_SCI_IRQ, ACPI_SCI_IRQ, MPS_INTI_LEVEL | MPS_INTI_ACTIVE_HIGH},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(overrides); i++) {
        p[0] = MADT_TYPE_ISO;
        p[1] = 10;
        p[2] = 0; /* ISA */
        p[3] = overrides[i].irq;
        le32_store(p + 4, overrides[i].gsi);
        le16_store(p + 8, overrides[i].flags);
        p += 10;
    }
    p[0] = MADT_TYPE_LAPIC_NMI;
    p[1] = 6;
    p[2] = 0xFF; /* all processors */
    le16_store(p + 3, 0);
    p[5] = 1; /* LINT1 */
    finish(t);
}

/* ---- MCFG (PCI Firmware Specification 3.x, 4.1.2) */

static void build_mcfg(uint8_t *t)
{
    header(t, "MCFG", ACPI_MCFG_SIZE, 1);
    le64_store(t + 44, PCI_ECAM_BASE);
    le16_store(t + 52, 0);      /* segment */
    t[54] = 0;                  /* first bus */
    t[55] = PCI_ECAM_BUSES - 1; /* last bus */
    finish(t);
}

/* ---- DSDT (AML) */

static void build_pci_crs(struct aml *a, uint64_t mmio64_base)
{
    aml_name(a, "_CRS");
    aml_resources_begin(a);
    aml_res_word_bus_number(a, 0, 255);
    aml_res_io(a, 0x0CF8, 0x0CF8, 1, 8); /* the configuration ports themselves */
    aml_res_word_io(a, 0x0000, 0x0CF7);
    aml_res_word_io(a, 0x0D00, 0xFFFF);
    aml_res_dword_memory(a, AML_MEM_CACHEABLE, 0x000A0000, 0x000BFFFF); /* legacy VGA */
    aml_res_dword_memory(a, AML_MEM_NON_CACHEABLE, PCI_MMIO32_BASE, PCI_MMIO32_BASE + PCI_MMIO32_SIZE - 1);
    aml_res_qword_memory(a, AML_MEM_CACHEABLE, mmio64_base, mmio64_base + PCI_MMIO64_SIZE - 1);
    aml_resources_end(a);
}

/* Every slot's INTA-INTD go straight to IOAPIC inputs 16-23 (GSI 16 + (slot + pin) % 4, pci_intx_gsi). With
 * no link device Linux programs them level-triggered, active low; the wires carry the logical level either
 * way. */
static void build_pci_prt(struct aml *a)
{
    aml_name(a, "_PRT");
    aml_package_begin(a, PCI_SLOT_COUNT * PCI_INTX_PINS);
    for (unsigned slot = 0; slot < PCI_SLOT_COUNT; slot++) {
        for (unsigned pin = 0; pin < PCI_INTX_PINS; pin++) {
            aml_package_begin(a, 4);
            aml_integer(a, (uint64_t)slot << 16 | 0xFFFF); /* any function of the slot */
            aml_integer(a, pin);
            aml_integer(a, 0); /* no link device: the last field is a GSI */
            aml_integer(a, pci_intx_gsi(slot, pin));
            aml_end(a);
        }
    }
    aml_end(a);
}

static void build_isa_device(struct aml *a, const char *name, const char *hid, unsigned uid, uint16_t port,
                             uint8_t len, int irq)
{
    aml_device_begin(a, name);
    aml_name_eisaid(a, "_HID", hid);
    aml_name_integer(a, "_UID", uid);
    aml_name(a, "_CRS");
    aml_resources_begin(a);
    if (len)
        aml_res_io(a, port, port, 1, len);
    if (irq >= 0)
        aml_res_irq_noflags(a, (unsigned)irq);
    aml_resources_end(a);
    aml_end(a);
}

static void build_dsdt_body(struct aml *a, unsigned cpus, uint64_t mmio64_base)
{
    aml_scope_begin(a, "_SB"); /* names here resolve from the root already */

    aml_device_begin(a, "PCI0");
    aml_name_eisaid(a, "_HID", "PNP0A08");
    aml_name_eisaid(a, "_CID", "PNP0A03");
    aml_name_integer(a, "_SEG", 0);
    aml_name_integer(a, "_BBN", 0);
    aml_name_integer(a, "_UID", 0);
    build_pci_crs(a, mmio64_base);
    build_pci_prt(a);

    /* The ISA devices, decoded by the root bridge as behind an LPC bridge. */
    build_isa_device(a, "COM1", "PNP0501", 1, 0x3F8, 8, 4);
    build_isa_device(a, "RTC", "PNP0B00", 0, 0x70, 2, 8);
    aml_device_begin(a, "KBD");
    aml_name_eisaid(a, "_HID", "PNP0303");
    aml_name(a, "_CRS");
    aml_resources_begin(a);
    aml_res_io(a, 0x60, 0x60, 1, 1);
    aml_res_io(a, 0x64, 0x64, 1, 1);
    aml_res_irq_noflags(a, 1);
    aml_resources_end(a);
    aml_end(a);
    build_isa_device(a, "MOU", "PNP0F13", 0, 0, 0, 12);
    aml_end(a); /* PCI0 */

    /* Motherboard resources: keeps the OS off the ECAM window (Linux checks MCFG against these) and the PM
     * block. */
    aml_device_begin(a, "MRES");
    aml_name_eisaid(a, "_HID", "PNP0C02");
    aml_name_integer(a, "_UID", 0);
    aml_name(a, "_CRS");
    aml_resources_begin(a);
    aml_res_memory32_fixed(a, true, (uint32_t)PCI_ECAM_BASE, (uint32_t)PCI_ECAM_SIZE);
    aml_res_io(a, ACPI_PM_BASE, ACPI_PM_BASE, 1, ACPI_PM_IO_LEN);
    aml_resources_end(a);
    aml_end(a);

    /* One processor device per CPU; its _UID is the MADT's ACPI processor UID. */
    for (unsigned i = 0; i < cpus; i++) {
        char name[8];
        g_snprintf(name, sizeof(name), "C%03X", i);
        aml_device_begin(a, name);
        aml_name_str(a, "_HID", "ACPI0007");
        aml_name_integer(a, "_UID", i);
        aml_end(a);
    }
    aml_end(a); /* \_SB */

    /* \_S0 (working) and \_S5 (soft off), {SLP_TYPa, SLP_TYPb, reserved, reserved}; no sleep states. */
    aml_name(a, "_S0");
    aml_package_begin(a, 4);
    aml_integer(a, 0);
    aml_integer(a, 0);
    aml_integer(a, 0);
    aml_integer(a, 0);
    aml_end(a);
    aml_name(a, "_S5");
    aml_package_begin(a, 4);
    aml_integer(a, ACPI_PM_SLP_TYP_S5);
    aml_integer(a, ACPI_PM_SLP_TYP_S5);
    aml_integer(a, 0);
    aml_integer(a, 0);
    aml_end(a);
}

/* ---- RSDP (5.2.5), XSDT (5.2.8), RSDT (5.2.7) */

static void build_rsdp(uint8_t *t, uint32_t rsdt, uint64_t xsdt)
{
    memcpy(t, "RSD PTR ", 8);
    put_id(t + 9, ACPI_OEM_ID, 6);
    t[15] = 2; /* revision: ACPI 2.0+ with XSDT */
    le32_store(t + 16, rsdt);
    le32_store(t + 20, ACPI_RSDP_SIZE);
    le64_store(t + 24, xsdt);
    checksum(t, 20, 8);
    checksum(t, ACPI_RSDP_SIZE, 32);
}

int acpi_tables_build(struct machine *m, uint64_t *rsdp_gpa, char **error)
{
    unsigned cpus = m->config.cpus;
    if (cpus < 1 || cpus > MACHINE_MAX_CPUS) {
        *error = g_strdup_printf("ACPI tables: %u CPUs", cpus);
        return -EINVAL;
    }
    struct aml dsdt;
    aml_init(&dsdt);
    build_dsdt_body(&dsdt, cpus, pci_mmio64_base(m->config.ram_size));
    if (dsdt.failed || dsdt.depth != 0) {
        aml_free(&dsdt);
        *error = g_strdup("ACPI tables: the DSDT's AML could not be built");
        return -EINVAL;
    }

    /* Pointers between tables are known only after every table has its place. */
    enum { RSDP, FACS, XSDT, RSDT, FADT, MADT, MCFG, DSDT, NTABLES };
    enum { N_ENTRIES = 3 }; /* FADT, MADT, MCFG */
    const size_t sizes[NTABLES] = {
        [RSDP] = ACPI_RSDP_SIZE,
        [FACS] = ACPI_FACS_SIZE,
        [XSDT] = ACPI_HEADER_SIZE + 8 * N_ENTRIES,
        [RSDT] = ACPI_HEADER_SIZE + 4 * N_ENTRIES,
        [FADT] = ACPI_FADT_SIZE,
        [MADT] = madt_size(cpus),
        [MCFG] = ACPI_MCFG_SIZE,
        [DSDT] = ACPI_HEADER_SIZE + dsdt.len,
    };
    struct layout l = {g_malloc0(ACPI_TABLES_SIZE), 0};
    size_t at[NTABLES];
    for (int i = 0; i < NTABLES; i++) {
        at[i] = carve(&l, sizes[i], i == FACS ? 64 : 16);
        if (at[i] == SIZE_MAX) {
            g_free(l.buf);
            aml_free(&dsdt);
            *error = g_strdup_printf("ACPI tables: do not fit in %llu bytes",
                                     (unsigned long long)ACPI_TABLES_SIZE);
            return -ENOSPC;
        }
    }

    uint8_t *d = l.buf + at[DSDT];
    header(d, "DSDT", (uint32_t)sizes[DSDT], 2); /* revision 2: 64-bit integers */
    memcpy(d + ACPI_HEADER_SIZE, dsdt.data, dsdt.len);
    finish(d);
    aml_free(&dsdt);

    build_facs(l.buf + at[FACS]);
    build_fadt(l.buf + at[FADT], gpa_of(at[FACS]), gpa_of(at[DSDT]));
    build_madt(l.buf + at[MADT], cpus);
    build_mcfg(l.buf + at[MCFG]);

    const int entries[N_ENTRIES] = {FADT, MADT, MCFG};
    uint8_t *x = l.buf + at[XSDT], *r = l.buf + at[RSDT];
    header(x, "XSDT", (uint32_t)sizes[XSDT], 1);
    header(r, "RSDT", (uint32_t)sizes[RSDT], 1);
    for (int i = 0; i < N_ENTRIES; i++) {
        le64_store(x + ACPI_HEADER_SIZE + 8 * i, gpa_of(at[entries[i]]));
        le32_store(r + ACPI_HEADER_SIZE + 4 * i, gpa_of(at[entries[i]]));
    }
    finish(x);
    finish(r);
    build_rsdp(l.buf + at[RSDP], gpa_of(at[RSDT]), gpa_of(at[XSDT]));

    int ret = guest_mem_write(&m->mem, ACPI_TABLES_BASE, l.buf, ACPI_TABLES_SIZE);
    g_free(l.buf);
    if (ret < 0) {
        *error = g_strdup_printf("ACPI tables: guest RAM does not cover 0x%llx-0x%llx",
                                 (unsigned long long)ACPI_TABLES_BASE,
                                 (unsigned long long)(ACPI_TABLES_BASE + ACPI_TABLES_SIZE - 1));
        return ret;
    }
    *rsdp_gpa = ACPI_TABLES_BASE + at[RSDP];
    return 0;
}
