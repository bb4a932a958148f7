/* Long-mode entry state: GDT, identity page tables and control registers for the kernel's 64-bit entry. */
#include "boot_pagetables.h"

#include <errno.h>
#include <string.h>

#define PD_COUNT 4 /* 4 x 1 GiB */
#define PAGE_2M 0x200000ULL
#define LEAF_2M (BOOT_PTE_P | BOOT_PTE_RW | BOOT_PTE_A | BOOT_PTE_D | BOOT_PTE_PS)

static int write_gdt(struct guest_memory *gm)
{
    uint8_t gdt[BOOT_GDT_ENTRIES * 8];
    memset(gdt, 0, sizeof(gdt));
    le64_store(gdt + BOOT_CS_SELECTOR, BOOT_GDT_CODE64);
    le64_store(gdt + BOOT_DS_SELECTOR, BOOT_GDT_DATA);
    return guest_mem_write(gm, BOOT_GDT_ADDR, gdt, sizeof(gdt));
}

static int write_page_tables(struct guest_memory *gm)
{
    uint8_t *pml4 = guest_mem_map_write(gm, BOOT_PML4_ADDR, GUEST_PAGE_SIZE);
    uint8_t *pdpt = guest_mem_map_write(gm, BOOT_PDPT_ADDR, GUEST_PAGE_SIZE);
    uint8_t *pd = guest_mem_map_write(gm, BOOT_PD_ADDR, PD_COUNT * GUEST_PAGE_SIZE);
    if (!pml4 || !pdpt || !pd)
        return -EFAULT;
    memset(pml4, 0, GUEST_PAGE_SIZE);
    memset(pdpt, 0, GUEST_PAGE_SIZE);
    le64_store(pml4, BOOT_PDPT_ADDR | BOOT_PTE_P | BOOT_PTE_RW);
    for (unsigned i = 0; i < PD_COUNT; i++)
        le64_store(pdpt + 8 * i, (BOOT_PD_ADDR + i * GUEST_PAGE_SIZE) | BOOT_PTE_P | BOOT_PTE_RW);
    /* Accessed and dirty preset: a software page walker never has to write these tables. */
    for (uint64_t j = 0; j < PD_COUNT * 512; j++)
        le64_store(pd + 8 * j, j * PAGE_2M | LEAF_2M);
    return 0;
}

static struct boot_segment flat_segment(uint16_t selector, uint8_t type, uint8_t l, uint8_t db)
{
    return (struct boot_segment){.base = 0, .limit = 0xFFFFFFFF, .selector = selector, .type = type,
                                 .present = 1, .dpl = 0, .db = db, .s = 1, .l = l, .g = 1};
}

int boot_pagetables_setup(struct guest_memory *gm, uint64_t rip, uint64_t boot_params,
                          struct boot_cpu_state *cpu)
{
    int r = write_gdt(gm);
    if (r == 0)
        r = write_page_tables(gm);
    if (r < 0)
        return r;
    memset(cpu, 0, sizeof(*cpu));
    cpu->rip = rip;
    cpu->rsi = boot_params;
    cpu->rsp = BOOT_STACK_TOP;
    cpu->rflags = 0x2; /* reserved bit 1; interrupts off */
    cpu->cr0 = BOOT_CR0_PE | BOOT_CR0_ET | BOOT_CR0_NE | BOOT_CR0_PG;
    cpu->cr3 = BOOT_PML4_ADDR;
    cpu->cr4 = BOOT_CR4_PAE;
    cpu->efer = BOOT_EFER_LME | BOOT_EFER_LMA;
    cpu->cs = flat_segment(BOOT_CS_SELECTOR, 0xB, 1, 0);
    cpu->ds = flat_segment(BOOT_DS_SELECTOR, 0x3, 0, 1);
    cpu->es = cpu->ds;
    cpu->fs = cpu->ds;
    cpu->gs = cpu->ds;
    cpu->ss = cpu->ds;
    /* VMX insists on a usable busy TSS in TR even though long-mode boot code never touches it. */
    cpu->tr = (struct boot_segment){.limit = 0xFFFF, .type = 0xB, .present = 1};
    cpu->ldt = (struct boot_segment){.limit = 0xFFFF, .type = 0x2, .unusable = 1};
    cpu->gdt = (struct boot_dtable){.base = BOOT_GDT_ADDR, .limit = BOOT_GDT_ENTRIES * 8 - 1};
    cpu->idt = (struct boot_dtable){.base = 0, .limit = 0};
    return 0;
}
