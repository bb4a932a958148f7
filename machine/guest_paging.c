/* Software page walk over guest RAM (Intel SDM vol. 3, chapter 4). */
#include "guest_paging.h"

#include <errno.h>

#define CR0_PG (1ull << 31)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)

#define PTE_P (1ull << 0)
#define PTE_PS (1ull << 7)
#define PTE_ADDR 0x000ffffffffff000ull /* bits 51:12 */

/* One table entry of `size` bytes (4 or 8) at table + index * size. */
static int read_entry(struct guest_memory *gm, uint64_t table, unsigned index, unsigned size, uint64_t *e)
{
    if (size == 4) {
        uint32_t v;
        if (guest_mem_read_u32(gm, table + index * 4u, &v) < 0)
            return -EFAULT;
        *e = v;
    } else if (guest_mem_read_u64(gm, table + index * 8u, e) < 0) {
        return -EFAULT;
    }
    return (*e & PTE_P) ? 0 : -EFAULT;
}

static void leaf(uint64_t base, uint64_t va, unsigned page_bits, uint64_t *gpa, uint64_t *page_left)
{
    uint64_t mask = (1ull << page_bits) - 1;
    *gpa = (base & ~mask) | (va & mask);
    *page_left = (mask & ~va) + 1;
}

/* 32-bit paging: a page directory of 4-byte entries, 4 MiB pages with CR4.PSE (PSE-36 gives bits 39:32). */
static int walk32(struct guest_memory *gm, const struct guest_paging *p, uint32_t va, uint64_t *gpa,
                  uint64_t *page_left)
{
    uint64_t pde, pte;
    if (read_entry(gm, p->cr3 & 0xfffff000u, va >> 22, 4, &pde) < 0)
        return -EFAULT;
    if ((pde & PTE_PS) && (p->cr4 & CR4_PSE)) {
        uint64_t base = (pde & 0xffc00000u) | ((pde >> 13) & 0xff) << 32;
        leaf(base, va, 22, gpa, page_left);
        return 0;
    }
    if (read_entry(gm, pde & 0xfffff000u, (va >> 12) & 0x3ff, 4, &pte) < 0)
        return -EFAULT;
    leaf(pte & 0xfffff000u, va, 12, gpa, page_left);
    return 0;
}

/* PAE and 4/5-level paging: 8-byte entries, 9 bits per level; large pages at the 1 GiB and 2 MiB levels. */
static int walk64(struct guest_memory *gm, const struct guest_paging *p, uint64_t va, unsigned levels,
                  uint64_t *gpa, uint64_t *page_left)
{
    uint64_t table, e;
    unsigned shift;
    if (levels == 3) {
        /* The four PDPTEs: CR3 bits 31:5, indexed by va bits 31:30. */
        if (read_entry(gm, p->cr3 & 0xffffffe0u, (unsigned)(va >> 30) & 3, 8, &e) < 0)
            return -EFAULT;
        table = e & PTE_ADDR;
        shift = 21;
    } else {
        table = p->cr3 & PTE_ADDR;
        shift = 12 + 9 * (levels - 1);
    }
    for (;;) {
        if (read_entry(gm, table, (unsigned)(va >> shift) & 0x1ff, 8, &e) < 0)
            return -EFAULT;
        if (shift == 12) {
            leaf(e & PTE_ADDR, va, 12, gpa, page_left);
            return 0;
        }
        if ((e & PTE_PS) && (shift == 21 || shift == 30)) {
            leaf(e & PTE_ADDR, va, shift, gpa, page_left);
            return 0;
        }
        table = e & PTE_ADDR;
        shift -= 9;
    }
}

int guest_paging_translate(struct guest_memory *gm, const struct guest_paging *p, uint64_t va, uint64_t *gpa,
                           uint64_t *page_left)
{
    bool long_mode = p->efer & EFER_LMA;
    if (!(p->cr0 & CR0_PG)) {
        *gpa = long_mode ? va : (uint32_t)va;
        *page_left = GUEST_PAGE_SIZE - (*gpa & (GUEST_PAGE_SIZE - 1));
        return 0;
    }
    if (long_mode) {
        unsigned bits = (p->cr4 & CR4_LA57) ? 57 : 48;
        int64_t sx = (int64_t)(va << (64 - bits)) >> (64 - bits);
        if ((uint64_t)sx != va)
            return -EFAULT;
        return walk64(gm, p, va, bits == 57 ? 5 : 4, gpa, page_left);
    }
    if (p->cr4 & CR4_PAE)
        return walk64(gm, p, (uint32_t)va, 3, gpa, page_left);
    return walk32(gm, p, (uint32_t)va, gpa, page_left);
}

static size_t copy(struct guest_memory *gm, const struct guest_paging *p, uint64_t va, uint8_t *buf,
                   size_t len, bool write)
{
    size_t done = 0;
    while (done < len) {
        uint64_t gpa, left;
        if (guest_paging_translate(gm, p, va + done, &gpa, &left) < 0)
            break;
        size_t n = len - done < left ? len - done : (size_t)left;
        int r = write ? guest_mem_write(gm, gpa, buf + done, n) : guest_mem_read(gm, gpa, buf + done, n);
        if (r < 0)
            break;
        done += n;
    }
    return done;
}

size_t guest_paging_read(struct guest_memory *gm, const struct guest_paging *p, uint64_t va, void *buf,
                         size_t len)
{
    return copy(gm, p, va, buf, len, false);
}

size_t guest_paging_write(struct guest_memory *gm, const struct guest_paging *p, uint64_t va, const void *buf,
                          size_t len)
{
    return copy(gm, p, va, (uint8_t *)(uintptr_t)buf, len, true);
}
