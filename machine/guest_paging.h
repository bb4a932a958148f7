/* Guest virtual memory as a debugger sees it: a software page walk over guest RAM with a vCPU's paging
 * registers (none, 32-bit, PAE, 4/5-level), without access checks or A/D updates, for either accelerator. */
#ifndef DESKVM_GUEST_PAGING_H
#define DESKVM_GUEST_PAGING_H

#include <stddef.h>
#include <stdint.h>

#include "guest_memory.h"

/* The registers that define the translation (from vcpu_sregs). */
struct guest_paging {
    uint64_t cr0, cr3, cr4, efer;
};

/* Translates va. Returns 0 with the physical address and the bytes left in its page (at least 1), or -EFAULT
 * when va is not mapped (not present, non-canonical, reserved bits, or a table outside RAM). */
int guest_paging_translate(struct guest_memory *gm, const struct guest_paging *p, uint64_t va, uint64_t *gpa,
                           uint64_t *page_left);
/* Copies up to len bytes of guest virtual memory, page by page, stopping at the first byte that is not mapped
 * RAM (or ROM, for reads). Returns the bytes copied. */
size_t guest_paging_read(struct guest_memory *gm, const struct guest_paging *p, uint64_t va, void *buf,
                         size_t len);
size_t guest_paging_write(struct guest_memory *gm, const struct guest_paging *p, uint64_t va, const void *buf,
                          size_t len);

#endif
