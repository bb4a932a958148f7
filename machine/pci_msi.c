/* MSI and MSI-X capabilities, the MSI-X table and PBA, and message delivery for PCI functions. */
#include "pci_msi.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "log.h"
#include "machine.h"
#include "pci.h"

static struct log_ratelimit msi_rl = LOG_RATELIMIT_INIT(5000, 10);

static bool is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* A message is a memory write by the function, so it needs bus mastering like any DMA. */
static int msi_send(struct pci_device *dev, const struct msi_message *msg)
{
    if (!dev->bus || !pci_bus_master_enabled(dev)) {
        log_message_ratelimited(&msi_rl, LOG_LEVEL_DEBUG, "pci %s: interrupt message dropped, bus master off",
                                dev->name);
        return PCI_NOTIFY_DROPPED;
    }
    machine_send_msi(dev->bus->m, msg);
    return PCI_NOTIFY_SENT;
}

/* ---------------------------------------------------------------- MSI */

static unsigned msi_size(const struct pci_msi *msi)
{
    if (msi->is64)
        return msi->maskable ? 0x18 : 0x0e;
    return msi->maskable ? 0x14 : 0x0a;
}

static unsigned msi_data_reg(const struct pci_msi *msi)
{
    return msi->cap + (msi->is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32);
}

static unsigned msi_mask_reg(const struct pci_msi *msi)
{
    return msi->cap + (msi->is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32);
}

static unsigned msi_pending_reg(const struct pci_msi *msi)
{
    return msi->cap + (msi->is64 ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32);
}

static uint32_t vector_bits(unsigned n)
{
    return n >= 32 ? 0xffffffffu : (1u << n) - 1;
}

int pci_msi_init(struct pci_device *dev, unsigned vectors, bool is64, bool maskable)
{
    if (dev->msi.cap || !is_pow2(vectors) || vectors > PCI_MSI_MAX_VECTORS)
        return -EINVAL;
    struct pci_msi msi = {0, (uint8_t)vectors, is64, maskable};
    int off = pci_add_capability(dev, PCI_CAP_ID_MSI, msi_size(&msi));
    if (off < 0)
        return off;
    msi.cap = (uint8_t)off;
    dev->msi = msi;

    unsigned log2 = (unsigned)__builtin_ctz(vectors);
    uint16_t flags = (uint16_t)(log2 << 1);
    if (is64)
        flags |= PCI_MSI_FLAGS_64BIT;
    if (maskable)
        flags |= PCI_MSI_FLAGS_MASKBIT;
    pci_config_set16(dev, off + PCI_MSI_FLAGS, flags);
    pci_config_set_wmask(dev, off + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    pci_config_set_wmask(dev, off + PCI_MSI_ADDRESS_LO, 4, 0xfffffffcu);
    if (is64)
        pci_config_set_wmask(dev, off + PCI_MSI_ADDRESS_HI, 4, 0xffffffffu);
    pci_config_set_wmask(dev, msi_data_reg(&msi), 2, 0xffff);
    if (maskable)
        pci_config_set_wmask(dev, msi_mask_reg(&msi), 4, vector_bits(vectors));
    return off;
}

bool pci_msi_enabled(const struct pci_device *dev)
{
    return dev->msi.cap && (pci_config_get16(dev, dev->msi.cap + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_ENABLE);
}

/* Multiple Message Enable, clamped to what the function asked for (a guest may write more). */
static unsigned msi_enabled_vectors(const struct pci_device *dev)
{
    uint16_t flags = pci_config_get16(dev, dev->msi.cap + PCI_MSI_FLAGS);
    unsigned mme = (flags & PCI_MSI_FLAGS_QSIZE) >> 4;
    unsigned mmc = (flags & PCI_MSI_FLAGS_QMASK) >> 1;
    return 1u << (mme < mmc ? mme : mmc);
}

static struct msi_message msi_message(const struct pci_device *dev, unsigned vector)
{
    const struct pci_msi *msi = &dev->msi;
    unsigned n = msi_enabled_vectors(dev);
    uint32_t data = pci_config_get16(dev, msi_data_reg(msi));
    uint64_t addr = pci_config_get32(dev, msi->cap + PCI_MSI_ADDRESS_LO);
    if (msi->is64)
        addr |= (uint64_t)pci_config_get32(dev, msi->cap + PCI_MSI_ADDRESS_HI) << 32;
    return (struct msi_message){addr, (data & ~(n - 1)) | (vector & (n - 1))};
}

static int msi_notify(struct pci_device *dev, unsigned vector)
{
    const struct pci_msi *msi = &dev->msi;
    vector &= msi_enabled_vectors(dev) - 1;
    if (msi->maskable && (pci_config_get32(dev, msi_mask_reg(msi)) & (1u << vector))) {
        unsigned reg = msi_pending_reg(msi);
        pci_config_set32(dev, reg, pci_config_get32(dev, reg) | 1u << vector);
        return PCI_NOTIFY_PENDING;
    }
    struct msi_message msg = msi_message(dev, vector);
    return msi_send(dev, &msg);
}

static void msi_deliver_unmasked(struct pci_device *dev)
{
    const struct pci_msi *msi = &dev->msi;
    if (!msi->maskable || !pci_msi_enabled(dev))
        return;
    unsigned reg = msi_pending_reg(msi);
    uint32_t pending = pci_config_get32(dev, reg);
    uint32_t ready = pending & ~pci_config_get32(dev, msi_mask_reg(msi));
    for (unsigned v = 0; ready; v++, ready >>= 1) {
        if (!(ready & 1))
            continue;
        pending &= ~(1u << v);
        pci_config_set32(dev, reg, pending);
        struct msi_message msg = msi_message(dev, v);
        msi_send(dev, &msg);
    }
}

/* ---------------------------------------------------------------- MSI-X */

static uint64_t msix_table_len(const struct pci_msix *x)
{
    return (uint64_t)x->vectors * PCI_MSIX_ENTRY_SIZE;
}

static uint64_t msix_pba_len(const struct pci_msix *x)
{
    return ((uint64_t)x->vectors + 63) / 64 * 8;
}

static void msix_mask_all_vectors(struct pci_msix *x)
{
    memset(x->table, 0, msix_table_len(x));
    memset(x->pba, 0, msix_pba_len(x));
    for (unsigned v = 0; v < x->vectors; v++)
        x->table[v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
}

int pci_msix_init(struct pci_device *dev, unsigned nvectors, unsigned table_bar, uint32_t table_offset,
                  unsigned pba_bar, uint32_t pba_offset)
{
    if (dev->msix.cap || nvectors < 1 || nvectors > PCI_MSIX_MAX_VECTORS || table_bar >= PCI_BAR_COUNT ||
        pba_bar >= PCI_BAR_COUNT || (table_offset & 7) || (pba_offset & 7))
        return -EINVAL;
    const struct pci_bar *tb = &dev->bars[table_bar], *pb = &dev->bars[pba_bar];
    if (!tb->size || (tb->flags & PCI_BAR_IO) || !pb->size || (pb->flags & PCI_BAR_IO))
        return -EINVAL;
    struct pci_msix x = {.vectors = (uint16_t)nvectors,
                         .table_bar = (uint8_t)table_bar,
                         .pba_bar = (uint8_t)pba_bar,
                         .table_offset = table_offset,
                         .pba_offset = pba_offset};
    if (table_offset + msix_table_len(&x) > tb->size || pba_offset + msix_pba_len(&x) > pb->size)
        return -EINVAL;
    if (table_bar == pba_bar &&
        ranges_overlap(table_offset, msix_table_len(&x), pba_offset, msix_pba_len(&x)))
        return -EINVAL;
    int off = pci_add_capability(dev, PCI_CAP_ID_MSIX, PCI_MSIX_CAP_SIZE);
    if (off < 0)
        return off;
    x.cap = (uint8_t)off;
    pci_config_set16(dev, off + PCI_MSIX_FLAGS, (uint16_t)(nvectors - 1));
    pci_config_set_wmask(dev, off + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    pci_config_set32(dev, off + PCI_MSIX_TABLE, table_offset | table_bar);
    pci_config_set32(dev, off + PCI_MSIX_PBA, pba_offset | pba_bar);
    x.table = g_malloc(msix_table_len(&x));
    x.pba = g_malloc(msix_pba_len(&x));
    msix_mask_all_vectors(&x);
    dev->msix = x;
    return off;
}

static uint16_t msix_flags(const struct pci_device *dev)
{
    return pci_config_get16(dev, dev->msix.cap + PCI_MSIX_FLAGS);
}

bool pci_msix_enabled(const struct pci_device *dev)
{
    return dev->msix.cap && (msix_flags(dev) & PCI_MSIX_FLAGS_ENABLE);
}

static bool msix_masked(const struct pci_device *dev, unsigned v)
{
    const uint8_t *e = dev->msix.table + (size_t)v * PCI_MSIX_ENTRY_SIZE;
    return (msix_flags(dev) & PCI_MSIX_FLAGS_MASKALL) ||
           (e[PCI_MSIX_ENTRY_VECTOR_CTRL] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

bool pci_msix_is_pending(const struct pci_device *dev, unsigned vector)
{
    const struct pci_msix *x = &dev->msix;
    return x->cap && vector < x->vectors && (x->pba[vector / 64] >> (vector % 64) & 1);
}

static int msix_send(struct pci_device *dev, unsigned v)
{
    const uint8_t *e = dev->msix.table + (size_t)v * PCI_MSIX_ENTRY_SIZE;
    struct msi_message msg = {le64_load(e + PCI_MSIX_ENTRY_LOWER_ADDR), le32_load(e + PCI_MSIX_ENTRY_DATA)};
    return msi_send(dev, &msg);
}

static int msix_notify(struct pci_device *dev, unsigned v)
{
    if (msix_masked(dev, v)) {
        dev->msix.pba[v / 64] |= 1ULL << (v % 64);
        return PCI_NOTIFY_PENDING;
    }
    return msix_send(dev, v);
}

static void msix_deliver_if_unmasked(struct pci_device *dev, unsigned v)
{
    if (!pci_msix_is_pending(dev, v) || !pci_msix_enabled(dev) || msix_masked(dev, v))
        return;
    dev->msix.pba[v / 64] &= ~(1ULL << (v % 64));
    msix_send(dev, v);
}

/* Table entry bytes the guest may change: the address (dword aligned), its high half, the data, and the mask
 * bit of the vector control word (the rest of it is reserved). */
static uint8_t msix_entry_wmask(unsigned byte)
{
    if (byte == PCI_MSIX_ENTRY_LOWER_ADDR)
        return 0xfc;
    if (byte == PCI_MSIX_ENTRY_VECTOR_CTRL)
        return PCI_MSIX_ENTRY_CTRL_MASKBIT;
    if (byte > PCI_MSIX_ENTRY_VECTOR_CTRL)
        return 0;
    return 0xff;
}

/* off is relative to the structure; accesses must be naturally aligned (so never span entries) and at most 8
 * bytes. Anything else is logged; reads of it return 0. */
static bool msix_access_ok(struct pci_device *dev, const char *what, uint64_t off, unsigned size)
{
    if (is_pow2(size) && size <= 8 && !(off & (size - 1)))
        return true;
    log_message_ratelimited(&msi_rl, LOG_LEVEL_WARN, "pci %s: misaligned %u-byte MSI-X %s access at 0x%llx",
                            dev->name, size, what, (unsigned long long)off);
    return false;
}

static void msix_table_access(struct pci_device *dev, uint64_t off, unsigned size, bool is_write,
                              uint64_t *value)
{
    if (!msix_access_ok(dev, "table", off, size)) {
        if (!is_write)
            *value = 0;
        return;
    }
    uint8_t *p = dev->msix.table + off;
    if (!is_write) {
        uint64_t v = 0;
        for (unsigned i = 0; i < size; i++)
            v |= (uint64_t)p[i] << (8 * i);
        *value = v;
        return;
    }
    for (unsigned i = 0; i < size; i++) {
        uint8_t m = msix_entry_wmask((unsigned)((off + i) % PCI_MSIX_ENTRY_SIZE));
        p[i] = (uint8_t)((p[i] & ~m) | ((*value >> (8 * i)) & m));
    }
    msix_deliver_if_unmasked(dev, (unsigned)(off / PCI_MSIX_ENTRY_SIZE));
}

static void msix_pba_access(struct pci_device *dev, uint64_t off, unsigned size, bool is_write,
                            uint64_t *value)
{
    if (is_write) /* read-only for software */
        return;
    *value = 0;
    if (!msix_access_ok(dev, "PBA", off, size))
        return;
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        uint64_t word = dev->msix.pba[(off + i) / 8];
        v |= ((word >> (8 * ((off + i) % 8))) & 0xff) << (8 * i);
    }
    *value = v;
}

bool pci_msix_bar_access(struct pci_device *dev, unsigned bar, uint64_t offset, unsigned size, bool is_write,
                         uint64_t *value)
{
    const struct pci_msix *x = &dev->msix;
    if (!x->cap)
        return false;
    if (bar == x->table_bar && offset >= x->table_offset && offset - x->table_offset < msix_table_len(x)) {
        msix_table_access(dev, offset - x->table_offset, size, is_write, value);
        return true;
    }
    if (bar == x->pba_bar && offset >= x->pba_offset && offset - x->pba_offset < msix_pba_len(x)) {
        msix_pba_access(dev, offset - x->pba_offset, size, is_write, value);
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- both */

void pci_msi_config_written(struct pci_device *dev, unsigned offset, unsigned size)
{
    if (dev->msi.cap && ranges_overlap(offset, size, dev->msi.cap, msi_size(&dev->msi)))
        msi_deliver_unmasked(dev);
    if (dev->msix.cap && ranges_overlap(offset, size, dev->msix.cap, PCI_MSIX_CAP_SIZE) &&
        pci_msix_enabled(dev) && !(msix_flags(dev) & PCI_MSIX_FLAGS_MASKALL)) {
        for (unsigned v = 0; v < dev->msix.vectors; v++)
            msix_deliver_if_unmasked(dev, v);
    }
}

int pci_msi_notify(struct pci_device *dev, unsigned vector)
{
    unsigned limit = 1;
    if (dev->msix.cap && dev->msix.vectors > limit)
        limit = dev->msix.vectors;
    if (dev->msi.cap && dev->msi.vectors > limit)
        limit = dev->msi.vectors;
    if (vector >= limit || (pci_msix_enabled(dev) && vector >= dev->msix.vectors)) {
        log_message_ratelimited(&msi_rl, LOG_LEVEL_WARN, "pci %s: interrupt vector %u out of range",
                                dev->name, vector);
        return -EINVAL;
    }
    if (pci_msix_enabled(dev))
        return msix_notify(dev, vector);
    if (pci_msi_enabled(dev))
        return msi_notify(dev, vector);
    pci_set_irq(dev, 1);
    return PCI_NOTIFY_INTX;
}

void pci_msi_reset(struct pci_device *dev)
{
    if (dev->msi.cap && dev->msi.maskable)
        pci_config_set32(dev, msi_pending_reg(&dev->msi), 0);
    if (dev->msix.cap)
        msix_mask_all_vectors(&dev->msix);
}

void pci_msi_cleanup(struct pci_device *dev)
{
    g_free(dev->msix.table);
    g_free(dev->msix.pba);
    dev->msix.table = NULL;
    dev->msix.pba = NULL;
    dev->msix.cap = 0;
    dev->msix.vectors = 0;
}
