/* emu page walker, software TLB and linear-address memory accesses. */
#include "emu/mmu.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "log.h"
#include "machine.h"

/* Paging-structure entry bits (SDM vol. 3, 4.3-4.5). */
#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define PTE_G (1ull << 8)
#define PTE_XD (1ull << 63)

#define SIZE_4K 0x1000ull
#define SIZE_2M 0x200000ull
#define SIZE_4M 0x400000ull
#define SIZE_1G 0x40000000ull

#define PHYS_MASK ((1ull << EMU_MAXPHYADDR) - 1)
#define ADDR_4K (PHYS_MASK & ~0xFFFull)
/* Reserved address bits: MAXPHYADDR..51 in 4-level paging, MAXPHYADDR..62 in PAE paging. */
#define RSVD_HIGH_LM (((1ull << 52) - 1) & ~PHYS_MASK)
#define RSVD_HIGH_PAE (((1ull << 63) - 1) & ~PHYS_MASK)
/* A PAE PDPTE: bits 2:1, 8:5 and MAXPHYADDR..63 (it has no A, R/W, U/S or XD). */
#define RSVD_PDPTE (0x6ull | 0x1E0ull | ~PHYS_MASK)
/* Between the PAT bit and the address of a large page. */
#define RSVD_2M_LOW 0x1FE000ull   /* bits 20:13 */
#define RSVD_1G_LOW 0x3FFFE000ull /* bits 29:13 */
/* 32-bit paging, 4 MiB page with MAXPHYADDR 40: bits 20:13 are physical bits 39:32, bit 21 is reserved. */
#define RSVD_4M (1ull << 21)

#define BITS_PER_LONG (8 * sizeof(unsigned long))
#define MAX_LEVELS 4

static struct log_ratelimit mmu_log_rl = LOG_RATELIMIT_INIT(1000, 5);

/* ---- Page walk ---- */

struct walk {
    unsigned n;
    uint64_t gpa[MAX_LEVELS];
    uint64_t val[MAX_LEVELS];
    uint8_t width[MAX_LEVELS]; /* entry size: 4 or 8 */
    bool has_a[MAX_LEVELS];    /* PAE PDPTEs have no accessed bit */
};

static bool fault_pf(struct emu_fault *f, uint64_t lin, uint32_t ec)
{
    *f = (struct emu_fault){.vector = EMU_EXC_PF, .error_code = ec, .cr2 = lin};
    return false;
}

static uint64_t lin_mask(const struct emu_state *s, uint64_t lin)
{
    return emu_long_mode(s) ? lin : (uint32_t)lin;
}

/* Paging structures must live in writable RAM; anything else reads as a not-present entry. */
static uint64_t read_entry(struct emu_mmu *mmu, struct walk *w, uint64_t gpa, unsigned width, bool has_a)
{
    const struct guest_ram_slot *s = guest_memory_find(&mmu->m->mem, gpa, width);
    uint64_t v = 0;
    if (s && !s->readonly) {
        const uint8_t *p = s->host + (gpa - s->gpa);
        v = width == 8 ? __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED)
                       : __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED);
    }
    w->gpa[w->n] = gpa;
    w->val[w->n] = v;
    w->width[w->n] = (uint8_t)width;
    w->has_a[w->n] = has_a;
    w->n++;
    return v;
}

static void set_bits(struct emu_mmu *mmu, uint64_t gpa, unsigned width, uint64_t bits)
{
    /* map_write also records the page-table page in the dirty log, as the update is a write. */
    void *p = guest_mem_map_write(&mmu->m->mem, gpa, width);
    if (!p)
        return;
    if (width == 8)
        __atomic_fetch_or((uint64_t *)p, bits, __ATOMIC_SEQ_CST);
    else
        __atomic_fetch_or((uint32_t *)p, (uint32_t)bits, __ATOMIC_SEQ_CST);
}

/* The leaf of the walk and what it maps, before permission checks. Returns false with the fault on a
 * not-present entry or reserved bits. ec is the error code minus P and RSVD. */
struct leaf {
    uint64_t phys, size;
    bool user_ok, write_ok, nx, global;
};

static bool walk_4level(struct emu_mmu *mmu, struct walk *w, uint64_t lin, bool nxe, uint32_t ec,
                        struct leaf *l, struct emu_fault *f)
{
    const struct emu_state *s = mmu->cpu;
    uint64_t table = s->cr3 & ADDR_4K;
    uint64_t rsvd_xd = nxe ? 0 : PTE_XD;
    for (int level = 4; level >= 1; level--) {
        unsigned shift = 12 + 9 * (unsigned)(level - 1);
        uint64_t e = read_entry(mmu, w, table + ((lin >> shift) & 511) * 8, 8, true);
        if (!(e & PTE_P))
            return fault_pf(f, lin, ec);
        uint64_t rsvd = RSVD_HIGH_LM | rsvd_xd;
        uint64_t size = 0;
        if (level == 4)
            rsvd |= PTE_PS;
        else if (level == 3 && (e & PTE_PS)) {
            rsvd |= RSVD_1G_LOW;
            size = SIZE_1G;
        } else if (level == 2 && (e & PTE_PS)) {
            rsvd |= RSVD_2M_LOW;
            size = SIZE_2M;
        } else if (level == 1)
            size = SIZE_4K;
        if (e & rsvd)
            return fault_pf(f, lin, ec | EMU_PF_P | EMU_PF_RSVD);
        l->user_ok &= (e & PTE_US) != 0;
        l->write_ok &= (e & PTE_RW) != 0;
        l->nx |= nxe && (e & PTE_XD);
        if (size) {
            l->size = size;
            l->phys = (e & ADDR_4K & ~(size - 1)) | (lin & (size - 1));
            l->global = (e & PTE_G) != 0;
            return true;
        }
        table = e & ADDR_4K;
    }
    return true; /* not reached: level 1 always ends the walk */
}

static bool walk_pae(struct emu_mmu *mmu, struct walk *w, uint64_t lin, bool nxe, uint32_t ec, struct leaf *l,
                     struct emu_fault *f)
{
    const struct emu_state *s = mmu->cpu;
    uint64_t e = read_entry(mmu, w, (s->cr3 & 0xFFFFFFE0u) + ((lin >> 30) & 3) * 8, 8, false);
    if (!(e & PTE_P))
        return fault_pf(f, lin, ec);
    if (e & RSVD_PDPTE)
        return fault_pf(f, lin, ec | EMU_PF_P | EMU_PF_RSVD);
    uint64_t rsvd = RSVD_HIGH_PAE | (nxe ? 0 : PTE_XD);
    for (int level = 2; level >= 1; level--) {
        unsigned shift = level == 2 ? 21 : 12;
        e = read_entry(mmu, w, (e & ADDR_4K) + ((lin >> shift) & 511) * 8, 8, true);
        if (!(e & PTE_P))
            return fault_pf(f, lin, ec);
        bool large = level == 2 && (e & PTE_PS);
        if (e & (rsvd | (large ? RSVD_2M_LOW : 0)))
            return fault_pf(f, lin, ec | EMU_PF_P | EMU_PF_RSVD);
        l->user_ok &= (e & PTE_US) != 0;
        l->write_ok &= (e & PTE_RW) != 0;
        l->nx |= nxe && (e & PTE_XD);
        if (large || level == 1) {
            l->size = large ? SIZE_2M : SIZE_4K;
            l->phys = (e & ADDR_4K & ~(l->size - 1)) | (lin & (l->size - 1));
            l->global = (e & PTE_G) != 0;
            return true;
        }
    }
    return true;
}

static bool walk_32bit(struct emu_mmu *mmu, struct walk *w, uint64_t lin, uint32_t ec, struct leaf *l,
                       struct emu_fault *f)
{
    const struct emu_state *s = mmu->cpu;
    uint64_t e = read_entry(mmu, w, (s->cr3 & 0xFFFFF000u) + ((lin >> 22) & 1023) * 4, 4, true);
    if (!(e & PTE_P))
        return fault_pf(f, lin, ec);
    l->user_ok &= (e & PTE_US) != 0;
    l->write_ok &= (e & PTE_RW) != 0;
    if ((e & PTE_PS) && (s->cr4 & EMU_CR4_PSE)) {
        if (e & RSVD_4M)
            return fault_pf(f, lin, ec | EMU_PF_P | EMU_PF_RSVD);
        l->size = SIZE_4M;
        l->phys = (e & 0xFFC00000u) | ((e >> 13) & 0xFF) << 32 | (lin & (SIZE_4M - 1));
        l->global = (e & PTE_G) != 0;
        return true;
    }
    e = read_entry(mmu, w, (e & 0xFFFFF000u) + ((lin >> 12) & 1023) * 4, 4, true);
    if (!(e & PTE_P))
        return fault_pf(f, lin, ec);
    l->user_ok &= (e & PTE_US) != 0;
    l->write_ok &= (e & PTE_RW) != 0;
    l->size = SIZE_4K;
    l->phys = (e & 0xFFFFF000u) | (lin & 0xFFF);
    l->global = (e & PTE_G) != 0;
    return true;
}

/* The walk proper. user: a user-mode access; smap: SMAP forbids supervisor data accesses to user pages. */
static bool walk(struct emu_mmu *mmu, uint64_t lin, unsigned kind, bool user, bool smap, bool probe,
                 struct emu_translation *out, struct emu_fault *f)
{
    const struct emu_state *s = mmu->cpu;
    mmu->walks++;
    if (!(s->cr0 & EMU_CR0_PG)) {
        *out = (struct emu_translation){.phys = lin_mask(s, lin),
                                        .page_size = SIZE_4K,
                                        .perms = EMU_PERM_WRITE | EMU_PERM_USER | EMU_PERM_EXEC,
                                        .dirty = true};
        return true;
    }
    bool pae = s->cr4 & EMU_CR4_PAE;
    bool nxe = pae && (s->efer & EMU_EFER_NXE); /* XD exists only in PAE and 4-level entries */
    bool smep = s->cr4 & EMU_CR4_SMEP;
    uint32_t ec = (kind == EMU_ACCESS_WRITE ? EMU_PF_W : 0) | (user ? EMU_PF_U : 0) |
                  (kind == EMU_ACCESS_EXEC && (smep || nxe) ? EMU_PF_I : 0);
    struct walk w = {0};
    struct leaf l = {.user_ok = true, .write_ok = true};
    bool ok;
    if (emu_long_mode(s)) {
        if ((uint64_t)((int64_t)(lin << 16) >> 16) != lin) {
            *f = (struct emu_fault){.vector = EMU_EXC_GP};
            return false;
        }
        ok = walk_4level(mmu, &w, lin, nxe, ec, &l, f);
    } else {
        lin = (uint32_t)lin;
        ok = pae ? walk_pae(mmu, &w, lin, nxe, ec, &l, f) : walk_32bit(mmu, &w, lin, ec, &l, f);
    }
    if (!ok)
        return false;

    uint64_t leaf = w.val[w.n - 1];
    if (!probe) {
        bool denied;
        if (kind == EMU_ACCESS_EXEC)
            denied = l.nx || (user ? !l.user_ok : l.user_ok && smep);
        else if (user)
            denied = !l.user_ok || (kind == EMU_ACCESS_WRITE && !l.write_ok);
        else
            denied =
                (l.user_ok && smap) || (kind == EMU_ACCESS_WRITE && !l.write_ok && (s->cr0 & EMU_CR0_WP));
        if (denied)
            return fault_pf(f, lin, ec | EMU_PF_P);
        /* Only an access that is allowed marks the structures it used. */
        for (unsigned i = 0; i < w.n; i++) {
            uint64_t bits = w.has_a[i] ? PTE_A : 0;
            if (i == w.n - 1 && kind == EMU_ACCESS_WRITE)
                bits |= PTE_D;
            if (bits & ~w.val[i])
                set_bits(mmu, w.gpa[i], w.width[i], bits);
        }
        if (kind == EMU_ACCESS_WRITE)
            leaf |= PTE_D;
    }
    *out = (struct emu_translation){
        .phys = l.phys,
        .page_size = l.size,
        .perms =
            (l.write_ok ? EMU_PERM_WRITE : 0) | (l.user_ok ? EMU_PERM_USER : 0) | (l.nx ? 0 : EMU_PERM_EXEC),
        .global = l.global && (s->cr4 & EMU_CR4_PGE),
        .dirty = (leaf & PTE_D) != 0,
    };
    return true;
}

bool emu_mmu_translate(struct emu_mmu *mmu, uint64_t lin, unsigned access, struct emu_translation *out,
                       struct emu_fault *fault)
{
    unsigned idx = emu_mmu_index(mmu->cpu, access);
    return walk(mmu, lin_mask(mmu->cpu, lin), access & EMU_ACCESS_KIND_MASK, idx == EMU_MMU_USER,
                idx == EMU_MMU_SUPER_SMAP, access & EMU_ACCESS_PROBE, out, fault);
}

bool emu_mmu_pdptes_valid(struct emu_mmu *mmu, uint64_t cr3)
{
    for (unsigned i = 0; i < 4; i++) {
        struct walk w = {0};
        uint64_t e = read_entry(mmu, &w, (cr3 & 0xFFFFFFE0u) + i * 8, 8, false);
        if ((e & PTE_P) && (e & RSVD_PDPTE))
            return false;
    }
    return true;
}

/* ---- Code pages ---- */

static unsigned long *code_word(const struct emu_mmu *mmu, uint64_t phys, unsigned long *bit)
{
    const struct guest_memory *gm = &mmu->m->mem;
    for (unsigned i = 0; i < gm->nslots; i++) {
        const struct guest_ram_slot *s = &gm->slots[i];
        if (mmu->code_pages[i] && phys >= s->gpa && phys - s->gpa < s->size) {
            uint64_t page = (phys - s->gpa) / GUEST_PAGE_SIZE;
            *bit = 1UL << (page % BITS_PER_LONG);
            return &mmu->code_pages[i][page / BITS_PER_LONG];
        }
    }
    return NULL;
}

bool emu_code_page_marked(const struct emu_mmu *mmu, uint64_t phys)
{
    unsigned long bit;
    unsigned long *word = code_word(mmu, phys, &bit);
    return word && (__atomic_load_n(word, __ATOMIC_RELAXED) & bit);
}

bool emu_code_page_mark(struct emu_mmu *mmu, uint64_t phys)
{
    unsigned long bit;
    unsigned long *word = code_word(mmu, phys, &bit);
    if (!word)
        return false;
    if (__atomic_fetch_or(word, bit, __ATOMIC_SEQ_CST) & bit)
        return true;
    /* Fast write entries for this page would skip the check: send them to the slow path. */
    uint64_t page = phys & EMU_PAGE_MASK;
    for (unsigned idx = 0; idx < EMU_MMU_INDEXES; idx++)
        for (unsigned i = 0; i < EMU_TLB_SIZE; i++) {
            struct emu_tlb_entry *e = &mmu->tlb.e[idx][i];
            if (e->phys_page == page && e->mem == EMU_TLB_RAM && !(e->tag_write & EMU_TLB_INVALID))
                e->tag_write |= EMU_TLB_SLOW;
        }
    return true;
}

void emu_code_page_clear(struct emu_mmu *mmu, uint64_t phys)
{
    /* TLB entries stay on the slow path until refilled, which is harmless. */
    unsigned long bit;
    unsigned long *word = code_word(mmu, phys, &bit);
    if (word)
        __atomic_fetch_and(word, ~bit, __ATOMIC_RELAXED);
}

void emu_code_pages_clear_all(struct emu_mmu *mmu)
{
    const struct guest_memory *gm = &mmu->m->mem;
    for (unsigned i = 0; i < gm->nslots; i++)
        if (mmu->code_pages[i]) {
            uint64_t pages = gm->slots[i].size / GUEST_PAGE_SIZE;
            memset(mmu->code_pages[i], 0,
                   (pages + BITS_PER_LONG - 1) / BITS_PER_LONG * sizeof(unsigned long));
        }
}

static uint32_t *gen_word(const struct emu_mmu *mmu, uint64_t phys)
{
    const struct guest_memory *gm = &mmu->m->mem;
    for (unsigned i = 0; i < gm->nslots; i++) {
        const struct guest_ram_slot *s = &gm->slots[i];
        if (mmu->code_gen[i] && phys >= s->gpa && phys - s->gpa < s->size)
            return &mmu->code_gen[i][(phys - s->gpa) / GUEST_PAGE_SIZE];
    }
    return NULL;
}

const uint32_t *emu_code_page_gen(const struct emu_mmu *mmu, uint64_t phys)
{
    return gen_word(mmu, phys);
}

static void code_write(struct emu_mmu *mmu, uint64_t phys, unsigned len)
{
    unsigned long bit;
    unsigned long *word = code_word(mmu, phys, &bit);
    /* The writer has stored its bytes; the fence orders them before the look at the mark (a CPU marking the
     * page reads the bytes only after its mark is visible). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!word || !(__atomic_load_n(word, __ATOMIC_SEQ_CST) & bit))
        return;
    __atomic_fetch_add(gen_word(mmu, phys), 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_and(word, ~bit, __ATOMIC_SEQ_CST);
    mmu->code_writes++;
    if (mmu->on_code_write)
        mmu->on_code_write(mmu->code_opaque, phys, len);
}

void emu_mmu_notify_phys_write(struct emu_mmu *mmu, uint64_t phys, uint64_t len)
{
    uint64_t end = phys + len;
    if (len == 0 || end < phys)
        return;
    while (phys < end) {
        uint64_t page_end = (phys | 0xFFF) + 1;
        uint64_t n = MIN(end, page_end) - phys;
        code_write(mmu, phys, (unsigned)n);
        if (page_end == 0)
            break;
        phys = page_end;
    }
}

/* ---- TLB ---- */

static void tlb_invalidate(struct emu_tlb_entry *e)
{
    *e = (struct emu_tlb_entry){.tag_read = EMU_TLB_INVALID,
                                .tag_write = EMU_TLB_INVALID,
                                .tag_exec = EMU_TLB_INVALID,
                                .vpage = EMU_TLB_INVALID,
                                .phys_page = EMU_TLB_INVALID,
                                .page_mask = ~0ull};
}

void emu_tlb_flush_all(struct emu_mmu *mmu)
{
    for (unsigned idx = 0; idx < EMU_MMU_INDEXES; idx++)
        for (unsigned i = 0; i < EMU_TLB_SIZE; i++)
            tlb_invalidate(&mmu->tlb.e[idx][i]);
    mmu->tlb.large_lo = UINT64_MAX;
    mmu->tlb.large_hi = 0;
}

void emu_tlb_flush_nonglobal(struct emu_mmu *mmu)
{
    /* The large-page range is kept: it may still describe global entries, and it only costs INVLPG a scan. */
    for (unsigned idx = 0; idx < EMU_MMU_INDEXES; idx++)
        for (unsigned i = 0; i < EMU_TLB_SIZE; i++)
            if (!mmu->tlb.e[idx][i].global)
                tlb_invalidate(&mmu->tlb.e[idx][i]);
}

void emu_tlb_flush_page(struct emu_mmu *mmu, uint64_t lin)
{
    lin = lin_mask(mmu->cpu, lin);
    if (lin >= mmu->tlb.large_lo && lin <= mmu->tlb.large_hi) {
        /* A large page is cached as 4 KiB pieces in many slots; drop every piece of the page holding lin. */
        for (unsigned idx = 0; idx < EMU_MMU_INDEXES; idx++)
            for (unsigned i = 0; i < EMU_TLB_SIZE; i++) {
                struct emu_tlb_entry *e = &mmu->tlb.e[idx][i];
                if (((e->vpage ^ lin) & e->page_mask) == 0)
                    tlb_invalidate(e);
            }
        return;
    }
    for (unsigned idx = 0; idx < EMU_MMU_INDEXES; idx++) {
        struct emu_tlb_entry *e = &mmu->tlb.e[idx][(lin >> 12) & (EMU_TLB_SIZE - 1)];
        if (e->vpage == (lin & EMU_PAGE_MASK))
            tlb_invalidate(e);
    }
}

static struct emu_tlb_entry *tlb_fill(struct emu_mmu *mmu, unsigned idx, uint64_t lin,
                                      const struct emu_translation *t)
{
    const struct emu_state *s = mmu->cpu;
    struct emu_tlb_entry *e = &mmu->tlb.e[idx][(lin >> 12) & (EMU_TLB_SIZE - 1)];
    bool u = t->perms & EMU_PERM_USER, w = t->perms & EMU_PERM_WRITE, x = t->perms & EMU_PERM_EXEC;
    bool w_sv = w || !(s->cr0 & EMU_CR0_WP);
    bool x_sv = x && !(u && (s->cr4 & EMU_CR4_SMEP));
    bool r_ok, w_ok, x_ok;
    switch (idx) {
    case EMU_MMU_USER:
        r_ok = u, w_ok = u && w, x_ok = u && x;
        break;
    case EMU_MMU_SUPER_SMAP:
        r_ok = !u, w_ok = !u && w_sv, x_ok = x_sv;
        break;
    default:
        r_ok = true, w_ok = w_sv, x_ok = x_sv;
        break;
    }
    /* Without D set, the first write must walk to set it. */
    w_ok = w_ok && t->dirty;

    uint64_t vpage = lin & EMU_PAGE_MASK, ppage = t->phys & EMU_PAGE_MASK;
    const struct guest_ram_slot *slot = guest_memory_find(&mmu->m->mem, ppage, SIZE_4K);
    uint64_t rx_flags = 0, w_flags = 0;
    uint8_t mem;
    uintptr_t addend = 0;
    if (!slot) {
        mem = EMU_TLB_MMIO;
        rx_flags = w_flags = EMU_TLB_SLOW;
    } else {
        addend = (uintptr_t)(slot->host + (ppage - slot->gpa)) - (uintptr_t)vpage;
        if (slot->readonly) {
            mem = EMU_TLB_ROM;
            w_flags = EMU_TLB_SLOW;
        } else {
            mem = EMU_TLB_RAM;
            if (slot->dirty || emu_code_page_marked(mmu, ppage))
                w_flags = EMU_TLB_SLOW;
        }
    }
    *e = (struct emu_tlb_entry){
        .tag_read = r_ok ? vpage | rx_flags : EMU_TLB_INVALID,
        .tag_write = w_ok ? vpage | w_flags : EMU_TLB_INVALID,
        .tag_exec = x_ok ? vpage | rx_flags : EMU_TLB_INVALID,
        .addend = addend,
        .vpage = vpage,
        .phys_page = ppage,
        .page_mask = ~(t->page_size - 1),
        .mem = mem,
        .global = t->global,
    };
    if (t->page_size > SIZE_4K) {
        uint64_t lo = lin & ~(t->page_size - 1), hi = lin | (t->page_size - 1);
        mmu->tlb.large_lo = MIN(mmu->tlb.large_lo, lo);
        mmu->tlb.large_hi = MAX(mmu->tlb.large_hi, hi);
    }
    return e;
}

/* ---- Accesses ---- */

/* Where one page's part of an access goes. */
struct page_ref {
    uint8_t *host; /* NULL for MMIO */
    uint64_t phys;
    uint8_t mem;
};

static uint64_t tag_of(const struct emu_tlb_entry *e, unsigned kind)
{
    return kind == EMU_ACCESS_READ ? e->tag_read : kind == EMU_ACCESS_WRITE ? e->tag_write : e->tag_exec;
}

/* Translates lin through the TLB, walking and refilling it on a miss. */
static bool resolve(struct emu_mmu *mmu, unsigned idx, uint64_t lin, unsigned kind, struct page_ref *r,
                    struct emu_fault *f)
{
    struct emu_tlb_entry *e = &mmu->tlb.e[idx][(lin >> 12) & (EMU_TLB_SIZE - 1)];
    uint64_t tag = tag_of(e, kind);
    if ((tag & EMU_TLB_INVALID) || (tag & EMU_PAGE_MASK) != (lin & EMU_PAGE_MASK)) {
        struct emu_translation t;
        if (!walk(mmu, lin, kind, idx == EMU_MMU_USER, idx == EMU_MMU_SUPER_SMAP, false, &t, f))
            return false;
        e = tlb_fill(mmu, idx, lin, &t);
    }
    r->mem = e->mem;
    r->phys = e->phys_page | (lin & 0xFFF);
    r->host = e->mem == EMU_TLB_MMIO ? NULL : (uint8_t *)(uintptr_t)(lin + e->addend);
    return true;
}

/* The largest naturally aligned access of at most 8 bytes at phys that fits in len. */
static unsigned mmio_piece(uint64_t phys, unsigned len)
{
    unsigned n = 8;
    while (n > len || (phys & (n - 1)))
        n >>= 1;
    return n;
}

static void mmio_read(struct emu_mmu *mmu, uint64_t phys, uint8_t *buf, unsigned len)
{
    machine_lock(mmu->m);
    while (len) {
        unsigned n = mmio_piece(phys, len);
        uint64_t v;
        io_bus_read(&mmu->m->mmio, phys, n, &v);
        for (unsigned i = 0; i < n; i++)
            buf[i] = (uint8_t)(v >> (8 * i));
        mmu->mmio_accesses++;
        phys += n, buf += n, len -= n;
    }
    machine_unlock(mmu->m);
}

static void mmio_write(struct emu_mmu *mmu, uint64_t phys, const uint8_t *buf, unsigned len)
{
    machine_lock(mmu->m);
    while (len) {
        unsigned n = mmio_piece(phys, len);
        uint64_t v = 0;
        for (unsigned i = 0; i < n; i++)
            v |= (uint64_t)buf[i] << (8 * i);
        io_bus_write(&mmu->m->mmio, phys, n, v);
        mmu->mmio_accesses++;
        phys += n, buf += n, len -= n;
    }
    machine_unlock(mmu->m);
}

static void load_piece(struct emu_mmu *mmu, const struct page_ref *r, uint8_t *buf, unsigned n)
{
    if (r->mem == EMU_TLB_MMIO)
        mmio_read(mmu, r->phys, buf, n);
    else
        memcpy(buf, r->host, n);
}

static void store_piece(struct emu_mmu *mmu, const struct page_ref *r, const uint8_t *buf, unsigned n)
{
    switch (r->mem) {
    case EMU_TLB_ROM:
        mmu->rom_writes_dropped++;
        return;
    case EMU_TLB_MMIO:
        mmio_write(mmu, r->phys, buf, n);
        return;
    default:
        if (mmu->m->mem.dirty_logging || mmu->m->mem.slot_logging)
            guest_mem_map_write(&mmu->m->mem, r->phys, n);
        memcpy(r->host, buf, n);
        code_write(mmu, r->phys, n);
        return;
    }
}

static bool bad_size(unsigned size, struct emu_fault *f)
{
    log_message_ratelimited(&mmu_log_rl, LOG_LEVEL_ERROR, "emu: memory access of %u bytes (interpreter bug)",
                            size);
    *f = (struct emu_fault){.vector = EMU_EXC_GP};
    return false;
}

/* Translates both pages of an access that may cross a page before anything moves; returns the bytes in the
 * first page (size if it does not cross). */
static bool resolve_access(struct emu_mmu *mmu, unsigned idx, uint64_t lin, unsigned size, unsigned kind,
                           struct page_ref r[2], unsigned *first, struct emu_fault *f)
{
    unsigned n1 = MIN(size, 4096 - (unsigned)(lin & 0xFFF));
    if (!resolve(mmu, idx, lin, kind, &r[0], f))
        return false;
    if (n1 < size && !resolve(mmu, idx, lin_mask(mmu->cpu, lin + n1), kind, &r[1], f))
        return false;
    *first = n1;
    return true;
}

bool emu_mem_read(struct emu_mmu *mmu, uint64_t lin, unsigned size, unsigned access, void *out,
                  struct emu_fault *fault)
{
    const struct emu_state *s = mmu->cpu;
    if (size == 0)
        return true;
    if (size > 16)
        return bad_size(size, fault);
    lin = lin_mask(s, lin);
    unsigned idx = emu_mmu_index(s, access);
    unsigned kind = (access & EMU_ACCESS_RMW) ? EMU_ACCESS_WRITE : EMU_ACCESS_READ;
    void *h = kind == EMU_ACCESS_READ ? emu_tlb_host_read(mmu, idx, lin, size)
                                      : emu_tlb_host_write(mmu, idx, lin, size);
    if (h) {
        memcpy(out, h, size);
        return true;
    }
    struct page_ref r[2];
    unsigned n1;
    if (!resolve_access(mmu, idx, lin, size, kind, r, &n1, fault))
        return false;
    load_piece(mmu, &r[0], out, n1);
    if (n1 < size)
        load_piece(mmu, &r[1], (uint8_t *)out + n1, size - n1);
    return true;
}

bool emu_mem_write(struct emu_mmu *mmu, uint64_t lin, unsigned size, unsigned access, const void *in,
                   struct emu_fault *fault)
{
    const struct emu_state *s = mmu->cpu;
    if (size == 0)
        return true;
    if (size > 16)
        return bad_size(size, fault);
    lin = lin_mask(s, lin);
    unsigned idx = emu_mmu_index(s, access);
    void *h = emu_tlb_host_write(mmu, idx, lin, size);
    if (h) {
        memcpy(h, in, size);
        return true;
    }
    struct page_ref r[2];
    unsigned n1;
    if (!resolve_access(mmu, idx, lin, size, EMU_ACCESS_WRITE, r, &n1, fault))
        return false;
    store_piece(mmu, &r[0], in, n1);
    if (n1 < size)
        store_piece(mmu, &r[1], (const uint8_t *)in + n1, size - n1);
    return true;
}

bool emu_mem_fetch(struct emu_mmu *mmu, uint64_t lin, struct emu_fetch *out, struct emu_fault *fault)
{
    const struct emu_state *s = mmu->cpu;
    lin = lin_mask(s, lin);
    unsigned idx = emu_mmu_index(s, 0);
    const struct emu_tlb_entry *e = &mmu->tlb.e[idx][(lin >> 12) & (EMU_TLB_SIZE - 1)];
    out->avail = 4096 - (unsigned)(lin & 0xFFF);
    if (e->tag_exec == (lin & EMU_PAGE_MASK)) {
        out->host = (const uint8_t *)(uintptr_t)(lin + e->addend);
        out->phys = e->phys_page | (lin & 0xFFF);
        return true;
    }
    struct page_ref r;
    if (!resolve(mmu, idx, lin, EMU_ACCESS_EXEC, &r, fault))
        return false;
    out->host = r.host;
    out->phys = r.phys;
    return true;
}

bool emu_mem_fetch_copy(struct emu_mmu *mmu, uint64_t lin, void *buf, unsigned len, struct emu_fault *fault)
{
    const struct emu_state *s = mmu->cpu;
    if (len == 0)
        return true;
    if (len > 16)
        return bad_size(len, fault);
    lin = lin_mask(s, lin);
    struct page_ref r[2];
    unsigned n1;
    if (!resolve_access(mmu, emu_mmu_index(s, 0), lin, len, EMU_ACCESS_EXEC, r, &n1, fault))
        return false;
    load_piece(mmu, &r[0], buf, n1);
    if (n1 < len)
        load_piece(mmu, &r[1], (uint8_t *)buf + n1, len - n1);
    return true;
}

/* ---- Set-up ---- */

int emu_mmu_init(struct emu_mmu *mmu, struct emu_state *cpu, struct machine *m)
{
    static uint64_t next_id;
    memset(mmu, 0, sizeof(*mmu));
    mmu->cpu = cpu;
    mmu->m = m;
    mmu->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    const struct guest_memory *gm = &m->mem;
    for (unsigned i = 0; i < gm->nslots; i++) {
        /* Device memory (framebuffers) moves with its BAR: blocks decoded there compare their bytes instead. */
        if (gm->slots[i].readonly || gm->slots[i].device)
            continue;
        uint64_t pages = gm->slots[i].size / GUEST_PAGE_SIZE;
        mmu->code_pages[i] = g_try_new0(unsigned long, (pages + BITS_PER_LONG - 1) / BITS_PER_LONG);
        mmu->code_gen[i] = g_try_new0(uint32_t, pages);
        if (!mmu->code_pages[i] || !mmu->code_gen[i]) {
            emu_mmu_destroy(mmu);
            return -ENOMEM;
        }
    }
    emu_tlb_flush_all(mmu);
    return 0;
}

void emu_mmu_destroy(struct emu_mmu *mmu)
{
    for (unsigned i = 0; i < GUEST_MEMORY_MAX_SLOTS; i++) {
        g_clear_pointer(&mmu->code_pages[i], g_free);
        g_clear_pointer(&mmu->code_gen[i], g_free);
    }
}

void emu_mmu_set_code_write_handler(struct emu_mmu *mmu, emu_code_write_fn *fn, void *opaque)
{
    mmu->on_code_write = fn;
    mmu->code_opaque = opaque;
}
