/* A byte-array guest memory for the emu segment and interrupt tests: linear = physical, with an injectable
 * #PF range, descriptor builders and a recorder of the last access modifiers. */
#ifndef DESKVM_EMU_TEST_MEM_H
#define DESKVM_EMU_TEST_MEM_H

#include <string.h>

#include <glib.h>

#include "emu/segment.h"

#define TMEM_SIZE 0x20000u

struct tmem {
    uint8_t *ram;
    uint64_t fault_lo, fault_hi; /* accesses touching [fault_lo, fault_hi) take a #PF */
    unsigned last_write_access;
    unsigned writes;
};

static inline bool tmem_check(struct tmem *t, uint64_t lin, unsigned size, bool write, struct emu_fault *f)
{
    g_assert_cmpuint(size, >=, 1);
    g_assert_cmpuint(size, <=, 16);
    if ((lin < t->fault_hi && lin + size > t->fault_lo) || lin + size > TMEM_SIZE) {
        f->vector = EMU_EXC_PF;
        f->error_code = write ? EMU_PF_W : 0;
        f->cr2 = lin < t->fault_lo ? t->fault_lo : lin;
        return false;
    }
    return true;
}

static inline bool tmem_read(void *opaque, uint64_t lin, unsigned size, unsigned access, void *out,
                             struct emu_fault *f)
{
    struct tmem *t = opaque;
    (void)access;
    if (!tmem_check(t, lin, size, false, f))
        return false;
    memcpy(out, t->ram + lin, size);
    return true;
}

static inline bool tmem_write(void *opaque, uint64_t lin, unsigned size, unsigned access, const void *in,
                              struct emu_fault *f)
{
    struct tmem *t = opaque;
    if (!tmem_check(t, lin, size, true, f))
        return false;
    memcpy(t->ram + lin, in, size);
    t->last_write_access = access;
    t->writes++;
    return true;
}

static inline void tmem_init(struct tmem *t, struct emu_sys_mem *mem)
{
    *t = (struct tmem){.ram = g_malloc0(TMEM_SIZE)};
    *mem = (struct emu_sys_mem){.read = tmem_read, .write = tmem_write, .opaque = t};
}

static inline void tmem_free(struct tmem *t)
{
    g_free(t->ram);
}

static inline void put64(struct tmem *t, uint64_t addr, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++)
        t->ram[addr + i] = (uint8_t)(v >> (8 * i));
}
static inline void put32(struct tmem *t, uint64_t addr, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        t->ram[addr + i] = (uint8_t)(v >> (8 * i));
}
static inline void put16(struct tmem *t, uint64_t addr, uint16_t v)
{
    t->ram[addr] = (uint8_t)v;
    t->ram[addr + 1] = (uint8_t)(v >> 8);
}
static inline uint64_t get64(const struct tmem *t, uint64_t addr)
{
    uint64_t v = 0;
    for (unsigned i = 8; i-- > 0;)
        v = v << 8 | t->ram[addr + i];
    return v;
}
static inline uint32_t get32(const struct tmem *t, uint64_t addr)
{
    return (uint32_t)get64(t, addr);
}
static inline uint16_t get16(const struct tmem *t, uint64_t addr)
{
    return (uint16_t)(t->ram[addr] | t->ram[addr + 1] << 8);
}

/* A code/data or system descriptor: access byte (P DPL S type) and flags nibble (G D/B L AVL). */
static inline uint64_t desc(uint32_t base, uint32_t limit, unsigned access, unsigned flags)
{
    return (limit & 0xffffull) | (uint64_t)(base & 0xffffff) << 16 | (uint64_t)access << 40 |
           (uint64_t)((limit >> 16) & 0xf) << 48 | (uint64_t)flags << 52 | (uint64_t)(base >> 24) << 56;
}

/* An 8-byte interrupt/trap/task gate, or the low half of a 16-byte one (ist in bits 32-34). */
static inline uint64_t gate(uint16_t sel, uint64_t off, unsigned type, unsigned dpl, unsigned ist)
{
    return (off & 0xffff) | (uint64_t)sel << 16 | (uint64_t)ist << 32 |
           (uint64_t)(0x80 | dpl << 5 | type) << 40 | ((off >> 16) & 0xffff) << 48;
}

static inline struct emu_segment seg_cache(uint16_t sel, uint64_t base, uint32_t limit, uint16_t attr)
{
    return (struct emu_segment){.selector = sel, .base = base, .limit = limit, .attr = attr};
}

/* The test machine: GDT at 0x1000, IDT at 0x2000, TSS at 0x3000. */
#define GDT_BASE 0x1000u
#define IDT_BASE 0x2000u
#define TSS_BASE 0x3000u
#define K_CS32 0x08
#define K_DS 0x10
#define U_CS32 0x18
#define U_DS 0x20
#define TSS32_SEL 0x28
#define K_CS64 0x30
#define K_DS64 0x38
#define STAR_USER 0x40 /* SYSRET base: 0x40 32-bit user code, 0x48 user data, 0x50 64-bit user code */
#define U_CS64 0x50
#define TSS64_SEL 0x58
#define FREE_SEL 0x68 /* 0x68-0xf8 are left for the tests */

#define ATTR_K_CS32 0xc9b
#define ATTR_K_DS 0xc93
#define ATTR_U_CS32 0xcfb
#define ATTR_U_DS 0xcf3
#define ATTR_K_CS64 0xa9b
#define ATTR_U_CS64 0xafb

static inline void env_gdt(struct tmem *t)
{
    put64(t, GDT_BASE + K_CS32, desc(0, 0xfffff, 0x9b, 0xc));
    put64(t, GDT_BASE + K_DS, desc(0, 0xfffff, 0x93, 0xc));
    put64(t, GDT_BASE + U_CS32, desc(0, 0xfffff, 0xfb, 0xc));
    put64(t, GDT_BASE + U_DS, desc(0, 0xfffff, 0xf3, 0xc));
    put64(t, GDT_BASE + TSS32_SEL, desc(TSS_BASE, 0x67, 0x8b, 0));
    put64(t, GDT_BASE + K_CS64, desc(0, 0xfffff, 0x9b, 0xa));
    put64(t, GDT_BASE + K_DS64, desc(0, 0xfffff, 0x93, 0xc));
    put64(t, GDT_BASE + 0x40, desc(0, 0xfffff, 0xfb, 0xc));
    put64(t, GDT_BASE + 0x48, desc(0, 0xfffff, 0xf3, 0xc));
    put64(t, GDT_BASE + U_CS64, desc(0, 0xfffff, 0xfb, 0xa));
    put64(t, GDT_BASE + TSS64_SEL, desc(TSS_BASE, 0x67, 0x8b, 0));
    put64(t, GDT_BASE + TSS64_SEL + 8, 0);
}

/* 32-bit protected mode at CPL 0 (ESP 0x8000) or 3 (ESP 0x7000), flat segments, IF=1, RIP 0x401000. */
static inline void env_prot32(struct emu_state *s, unsigned cpl)
{
    memset(s, 0, sizeof(*s));
    s->cr0 = EMU_CR0_PE | EMU_CR0_ET;
    s->rflags = EMU_FLAG_FIXED1 | EMU_FLAG_IF;
    s->gdtr = (struct emu_dtable){GDT_BASE, 0xff};
    s->idtr = (struct emu_dtable){IDT_BASE, 0x7ff};
    s->tr = seg_cache(TSS32_SEL, TSS_BASE, 0x67, 0x8b);
    s->ldtr = seg_cache(0, 0, 0, EMU_SEG_UNUSABLE);
    if (cpl == 0) {
        s->seg[EMU_CS] = seg_cache(K_CS32, 0, 0xffffffff, ATTR_K_CS32);
        for (int i = EMU_ES; i <= EMU_GS; i++)
            if (i != EMU_CS)
                s->seg[i] = seg_cache(K_DS, 0, 0xffffffff, ATTR_K_DS);
        s->regs[EMU_RSP] = 0x8000;
    } else {
        s->seg[EMU_CS] = seg_cache(U_CS32 | 3, 0, 0xffffffff, ATTR_U_CS32);
        for (int i = EMU_ES; i <= EMU_GS; i++)
            if (i != EMU_CS)
                s->seg[i] = seg_cache(U_DS | 3, 0, 0xffffffff, ATTR_U_DS);
        s->regs[EMU_RSP] = 0x7000;
    }
    s->rip = 0x401000;
}

/* 64-bit mode at CPL 0 (RSP 0x8f18, DS/ES null) or 3 (RSP 0x7008, DS/ES user data), RIP 0x401000. */
static inline void env_long64(struct emu_state *s, unsigned cpl)
{
    memset(s, 0, sizeof(*s));
    s->cr0 = EMU_CR0_PE | EMU_CR0_ET | EMU_CR0_PG;
    s->cr4 = EMU_CR4_PAE;
    s->efer = EMU_EFER_LME | EMU_EFER_LMA | EMU_EFER_SCE;
    s->rflags = EMU_FLAG_FIXED1 | EMU_FLAG_IF;
    s->gdtr = (struct emu_dtable){GDT_BASE, 0xff};
    s->idtr = (struct emu_dtable){IDT_BASE, 0xfff};
    s->tr = seg_cache(TSS64_SEL, TSS_BASE, 0x67, 0x8b);
    s->ldtr = seg_cache(0, 0, 0, EMU_SEG_UNUSABLE);
    s->seg[EMU_FS] = seg_cache(0, 0, 0, EMU_SEG_UNUSABLE);
    s->seg[EMU_GS] = seg_cache(0, 0, 0, EMU_SEG_UNUSABLE);
    if (cpl == 0) {
        s->seg[EMU_CS] = seg_cache(K_CS64, 0, 0xffffffff, ATTR_K_CS64);
        s->seg[EMU_SS] = seg_cache(K_DS64, 0, 0xffffffff, ATTR_K_DS);
        s->seg[EMU_DS] = s->seg[EMU_ES] = seg_cache(0, 0, 0, EMU_SEG_UNUSABLE);
        s->regs[EMU_RSP] = 0x8f18;
    } else {
        s->seg[EMU_CS] = seg_cache(U_CS64 | 3, 0, 0xffffffff, ATTR_U_CS64);
        s->seg[EMU_SS] = s->seg[EMU_DS] = s->seg[EMU_ES] = seg_cache(0x48 | 3, 0, 0xffffffff, ATTR_U_DS);
        s->regs[EMU_RSP] = 0x7008;
    }
    s->rip = 0x401000;
}

static inline void assert_seg(const struct emu_segment *r, uint16_t sel, uint64_t base, uint32_t limit,
                              uint16_t attr)
{
    g_assert_cmphex(r->selector, ==, sel);
    g_assert_cmphex(r->base, ==, base);
    g_assert_cmphex(r->limit, ==, limit);
    g_assert_cmphex(r->attr, ==, attr);
}

#endif
