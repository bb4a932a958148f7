/* emu memory management: the x86 page walker (no paging, 32-bit, PAE, 4-level), a software TLB, and the
 * interpreter's linear-address memory accesses (RAM, ROM, MMIO, page crossings, self-modifying code). */
#ifndef DESKVM_EMU_MMU_H
#define DESKVM_EMU_MMU_H

#include <stdbool.h>
#include <stdint.h>

#include "emu/state.h"
#include "guest_memory.h"

struct machine;

/* Physical address width; CPUID 0x80000008 EAX[7:0] must report it. Paging-structure bits from here up to bit
 * 51 (62 in PAE paging) are reserved. */
#define EMU_MAXPHYADDR 40

/* What an access does, plus modifiers. */
#define EMU_ACCESS_READ 0u
#define EMU_ACCESS_WRITE 1u
#define EMU_ACCESS_EXEC 2u
#define EMU_ACCESS_KIND_MASK 3u
/* An implicit supervisor access (GDT, LDT, IDT, TSS, the stack of an interrupt delivery): supervisor whatever
 * the CPL, and SMAP applies even with EFLAGS.AC=1 (SDM vol. 3, 4.6). */
#define EMU_ACCESS_IMPLICIT 4u
/* emu_mmu_translate only: no permission check and no A/D update (debugger, monitor). */
#define EMU_ACCESS_PROBE 8u
/* emu_mem_read only: the read of a read-modify-write; translated as a write so a read-only page faults with
 * W=1 before anything is read, and the following write hits the TLB. */
#define EMU_ACCESS_RMW 16u

/* Effective permissions of a translation (all levels combined). */
#define EMU_PERM_WRITE 1u
#define EMU_PERM_USER 2u
#define EMU_PERM_EXEC 4u

struct emu_translation {
    uint64_t phys;      /* physical address of the linear address */
    uint64_t page_size; /* 4 KiB, 2 MiB, 4 MiB or 1 GiB; 4 KiB without paging */
    unsigned perms;     /* EMU_PERM_* */
    bool global;        /* G in the leaf and CR4.PGE */
    bool dirty;         /* the leaf's D bit is set (always true without paging) */
};

/* An exception for the interpreter to raise: #PF with its error code and CR2, or #GP(0) for a non-canonical
 * address in long mode (the caller should have checked that and raised #SS for stack accesses). */
struct emu_fault {
    uint64_t cr2;
    uint32_t error_code;
    uint8_t vector;
};

/* ---- Software TLB ----
 * Direct-mapped, EMU_TLB_SIZE entries per MMU index. The index is the privilege class of the access, so CPL
 * or EFLAGS.AC changes need no flush. One entry caches one 4 KiB virtual page (large pages are cached
 * piecewise) with a tag per access kind; a tag equals the page address only when that access may go straight
 * to host memory at lin + addend. EMU_TLB_SLOW in a tag keeps the translation but forces the slow path (MMIO,
 * ROM writes, writes to pages holding decoded code, writes while dirty logging is on); EMU_TLB_INVALID means
 * "walk the page tables". Write tags are valid only when the leaf's D bit is already set, so the first write
 * walks and sets D.
 *
 * When callers must flush:
 *   MOV CR3 (PCIDE=0)                                   emu_tlb_flush_nonglobal
 *   INVLPG                                              emu_tlb_flush_page (global entries too)
 *   CR0.PG/WP, CR4.PGE/PAE/PSE/SMEP/SMAP/PCIDE, EFER.NXE changes, task switches with a CR3 load when PGE=0,
 *   guest_memory_dirty_log_start (fast write tags filled before it would bypass the dirty log),
 *   device memory mapped, moved, unmapped or logged (the emu backend's guest_memory_listener)
 *                                                       emu_tlb_flush_all
 * Changes of CPL or EFLAGS.AC need nothing. Code-page marking updates the TLB itself. */
enum emu_mmu_index {
    EMU_MMU_SUPER = 0,      /* CPL 0-2, SMAP off or EFLAGS.AC=1 (explicit accesses) */
    EMU_MMU_SUPER_SMAP = 1, /* CPL 0-2 with SMAP on and AC=0, and implicit supervisor accesses under SMAP */
    EMU_MMU_USER = 2,       /* CPL 3 */
    EMU_MMU_INDEXES = 3,
};

#define EMU_TLB_BITS 8
#define EMU_TLB_SIZE (1u << EMU_TLB_BITS)
#define EMU_PAGE_MASK (~0xFFFull)
#define EMU_TLB_INVALID 1ull
#define EMU_TLB_SLOW 2ull

enum emu_tlb_mem { EMU_TLB_RAM, EMU_TLB_ROM, EMU_TLB_MMIO };

struct emu_tlb_entry {
    uint64_t tag_read, tag_write, tag_exec;
    uintptr_t addend; /* host address = lin + addend, for RAM and ROM */
    uint64_t vpage;   /* the virtual page, whatever the tags say */
    uint64_t phys_page;
    uint64_t page_mask; /* ~(size - 1) of the guest page this was cut from, for INVLPG in large pages */
    uint8_t mem;        /* enum emu_tlb_mem */
    bool global;
    uint8_t pad[6]; /* 64 bytes: one cache line when the context is 64-byte aligned */
};
_Static_assert(sizeof(struct emu_tlb_entry) == 64, "TLB entries are one cache line");

struct emu_tlb {
    struct emu_tlb_entry e[EMU_MMU_INDEXES][EMU_TLB_SIZE];
    /* Linear range covered by entries cut from large pages (empty when lo > hi): INVLPG inside it scans. */
    uint64_t large_lo, large_hi;
};

/* Called for every write by emu_mem_write (or emu_mmu_notify_phys_write) that touches a page marked as
 * holding decoded code, after the bytes were written; [phys, phys+len) lies in one page. */
typedef void emu_code_write_fn(void *opaque, uint64_t phys, unsigned len);

/* The memory context of one vCPU. Any allocation works; 64-byte alignment keeps each TLB entry in one cache
 * line. */
struct emu_mmu {
    struct emu_state *cpu;
    struct machine *m;
    struct emu_tlb tlb;
    /* One bit per 4 KiB page of each writable RAM slot (indexed like m->mem.slots), set while the page holds
     * decoded code. */
    unsigned long *code_pages[GUEST_MEMORY_MAX_SLOTS];
    /* Per page, a generation bumped by every write that finds the page marked (and unmarks it). */
    uint32_t *code_gen[GUEST_MEMORY_MAX_SLOTS];
    emu_code_write_fn *on_code_write;
    void *code_opaque;
    /* Counters for tuning (slow-path events only; fast hits are not counted). */
    uint64_t walks, mmio_accesses, code_writes, rom_writes_dropped;
    uint64_t id; /* unique for the process's lifetime (caches keyed by this context use it) */
};

/* Binds the context to a vCPU state and a machine whose memory is set up. 0 or -ENOMEM. */
int emu_mmu_init(struct emu_mmu *mmu, struct emu_state *cpu, struct machine *m);
void emu_mmu_destroy(struct emu_mmu *mmu);
void emu_mmu_set_code_write_handler(struct emu_mmu *mmu, emu_code_write_fn *fn, void *opaque);

/* The MMU index of an access with the given EMU_ACCESS_IMPLICIT modifier in the current CPU state. */
static inline unsigned emu_mmu_index(const struct emu_state *s, unsigned access)
{
    bool implicit = access & EMU_ACCESS_IMPLICIT;
    if (!implicit && emu_cpl(s) == 3)
        return EMU_MMU_USER;
    if ((s->cr4 & EMU_CR4_SMAP) && (implicit || !(s->rflags & EMU_FLAG_AC)))
        return EMU_MMU_SUPER_SMAP;
    return EMU_MMU_SUPER;
}

/* Walks the page tables for lin (EMU_ACCESS_* kind and modifiers) in the current mode, checks permissions and
 * reserved bits and sets A (every level walked) and D (the leaf, on writes) only when the access is allowed.
 * Does not use or fill the TLB. Returns true, or false with *fault filled in.
 * Choices: the PAE PDPTEs are read from memory at walk time, not cached at CR3 load (a reserved bit in one is
 * a #PF with RSVD here, not a #GP at MOV CR3; see emu_mmu_pdptes_valid); a paging-structure entry outside
 * writable RAM (MMIO, ROM, unmapped) reads as 0, i.e. not present, so the access takes an ordinary #PF. */
bool emu_mmu_translate(struct emu_mmu *mmu, uint64_t lin, unsigned access, struct emu_translation *out,
                       struct emu_fault *fault);
/* For MOV CR3/CR0/CR4 in PAE (not long) mode: false if a present PDPTE at cr3 has reserved bits set, where
 * the SDM makes the MOV raise #GP(0). */
bool emu_mmu_pdptes_valid(struct emu_mmu *mmu, uint64_t cr3);

void emu_tlb_flush_all(struct emu_mmu *mmu);
void emu_tlb_flush_nonglobal(struct emu_mmu *mmu);
void emu_tlb_flush_page(struct emu_mmu *mmu, uint64_t lin);

/* ---- Accesses on linear addresses (segmentation is the caller's job) ----
 * size is 1 to 16 bytes, little-endian in the buffer; an access may cross a page, in which case both pages
 * are translated before any byte moves (a fault on the second page reports its address in CR2 and writes
 * nothing, though the first page's A/D bits may already be set). Outside RAM, reads come from
 * ROM or from MMIO (the machine's mmio bus under the machine lock, split into naturally aligned pieces of at
 * most 8 bytes; unclaimed addresses read all ones); writes to ROM are dropped. access holds modifiers only
 * (EMU_ACCESS_IMPLICIT, and EMU_ACCESS_RMW for reads). Outside long mode, linear addresses are 32 bits and
 * wrap. Return true, or false with *fault filled in (nothing was accessed). */
bool emu_mem_read(struct emu_mmu *mmu, uint64_t lin, unsigned size, unsigned access, void *out,
                  struct emu_fault *fault);
bool emu_mem_write(struct emu_mmu *mmu, uint64_t lin, unsigned size, unsigned access, const void *in,
                   struct emu_fault *fault);

/* Instruction bytes at lin for the decoder. */
struct emu_fetch {
    const uint8_t
        *host;      /* lin's bytes in host memory, or NULL when the page is MMIO (use emu_mem_fetch_copy) */
    unsigned avail; /* bytes from lin to the end of its 4 KiB page */
    uint64_t phys;  /* physical address of lin (the decoded-block key) */
};
bool emu_mem_fetch(struct emu_mmu *mmu, uint64_t lin, struct emu_fetch *out, struct emu_fault *fault);
/* Copies len (at most 16) instruction bytes across pages and from MMIO; a fault reports the failing page. */
bool emu_mem_fetch_copy(struct emu_mmu *mmu, uint64_t lin, void *buf, unsigned len, struct emu_fault *fault);

/* The fast path only: the host address of [lin, lin+size) if the TLB says it is plain RAM (or ROM, for reads)
 * for this access in page, else NULL. The interpreter may inline these before calling the functions above. */
static inline void *emu_tlb_host_read(struct emu_mmu *mmu, unsigned idx, uint64_t lin, unsigned size)
{
    const struct emu_tlb_entry *e = &mmu->tlb.e[idx][(lin >> 12) & (EMU_TLB_SIZE - 1)];
    if (e->tag_read != (lin & EMU_PAGE_MASK) || (lin & 0xFFF) > 4096 - size)
        return NULL;
    return (void *)(uintptr_t)(lin + e->addend);
}
static inline void *emu_tlb_host_write(struct emu_mmu *mmu, unsigned idx, uint64_t lin, unsigned size)
{
    const struct emu_tlb_entry *e = &mmu->tlb.e[idx][(lin >> 12) & (EMU_TLB_SIZE - 1)];
    if (e->tag_write != (lin & EMU_PAGE_MASK) || (lin & 0xFFF) > 4096 - size)
        return NULL;
    return (void *)(uintptr_t)(lin + e->addend);
}

/* ---- Self-modifying code ----
 * The decoded-block cache marks each RAM page it decodes from; writes through emu_mem_write to a marked page
 * call the code-write handler, which drops the page's blocks (and may clear the mark once none are left).
 * Marking or clearing a non-RAM address does nothing (ROM cannot change; MMIO code is not the MMU's
 * business). Device DMA does not pass through here: the hook for it belongs in guest_mem_map_write /
 * guest_mem_write (machine/guest_memory.c), which should call emu_mmu_notify_phys_write for each vCPU's
 * context. */
bool emu_code_page_mark(struct emu_mmu *mmu, uint64_t phys);
void emu_code_page_clear(struct emu_mmu *mmu, uint64_t phys);
void emu_code_pages_clear_all(struct emu_mmu *mmu);
bool emu_code_page_marked(const struct emu_mmu *mmu, uint64_t phys);
/* Calls the code-write handler for each marked page in [phys, phys+len). */
void emu_mmu_notify_phys_write(struct emu_mmu *mmu, uint64_t phys, uint64_t len);
/* The generation word of the RAM page holding phys, or NULL outside writable RAM. A write through this MMU or
 * emu_mmu_notify_phys_write to a marked page increments it and unmarks the page, so "marked and the
 * generation I saw when I read the bytes" means the bytes are unchanged. Safe to read from any thread. */
const uint32_t *emu_code_page_gen(const struct emu_mmu *mmu, uint64_t phys);

#endif
