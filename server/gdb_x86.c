/* x86-64 registers for the gdbstub: 'g' layout, register access and the target description. */
#include "gdb_x86.h"

#include <string.h>

#include "gdb_packet.h"
#include "guest_memory.h"

enum reg_kind { R_GPR, R_RIP, R_EFLAGS, R_SEG, R_NONE, R_BASE, R_CR };

struct reg_def {
    const char *name;
    uint8_t bits;
    uint8_t kind;
    uint8_t index; /* GPR number in vcpu_regs order, segment, base or control register number */
    const char *type;
    const char *group; /* NULL: gdb's default */
    const char *feature;
};

#define CORE "org.gnu.gdb.i386.core"
#define SSE "org.gnu.gdb.i386.sse"
#define SEGS "org.gnu.gdb.i386.segments"
#define SYS "org.deskvm.x86.system"

/* vcpu_regs fields in order: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 (gdb puts rbp before rsp). */
enum { V_RAX, V_RBX, V_RCX, V_RDX, V_RSI, V_RDI, V_RSP, V_RBP, V_R8 };
enum { SEG_CS, SEG_SS, SEG_DS, SEG_ES, SEG_FS, SEG_GS };
enum { CR_0, CR_2, CR_3, CR_4, CR_8, CR_EFER };

// clang-format off
static const struct reg_def regs[GDB_X86_NREGS] = {
    {"rax", 64, R_GPR, V_RAX, "int64", NULL, CORE}, {"rbx", 64, R_GPR, V_RBX, "int64", NULL, CORE},
    {"rcx", 64, R_GPR, V_RCX, "int64", NULL, CORE}, {"rdx", 64, R_GPR, V_RDX, "int64", NULL, CORE},
    {"rsi", 64, R_GPR, V_RSI, "int64", NULL, CORE}, {"rdi", 64, R_GPR, V_RDI, "int64", NULL, CORE},
    {"rbp", 64, R_GPR, V_RBP, "data_ptr", NULL, CORE}, {"rsp", 64, R_GPR, V_RSP, "data_ptr", NULL, CORE},
    {"r8", 64, R_GPR, V_R8, "int64", NULL, CORE}, {"r9", 64, R_GPR, V_R8 + 1, "int64", NULL, CORE},
    {"r10", 64, R_GPR, V_R8 + 2, "int64", NULL, CORE}, {"r11", 64, R_GPR, V_R8 + 3, "int64", NULL, CORE},
    {"r12", 64, R_GPR, V_R8 + 4, "int64", NULL, CORE}, {"r13", 64, R_GPR, V_R8 + 5, "int64", NULL, CORE},
    {"r14", 64, R_GPR, V_R8 + 6, "int64", NULL, CORE}, {"r15", 64, R_GPR, V_R8 + 7, "int64", NULL, CORE},
    {"rip", 64, R_RIP, 0, "code_ptr", NULL, CORE}, {"eflags", 32, R_EFLAGS, 0, "x86_eflags", NULL, CORE},
    {"cs", 32, R_SEG, SEG_CS, "int32", NULL, CORE}, {"ss", 32, R_SEG, SEG_SS, "int32", NULL, CORE},
    {"ds", 32, R_SEG, SEG_DS, "int32", NULL, CORE}, {"es", 32, R_SEG, SEG_ES, "int32", NULL, CORE},
    {"fs", 32, R_SEG, SEG_FS, "int32", NULL, CORE}, {"gs", 32, R_SEG, SEG_GS, "int32", NULL, CORE},
    {"st0", 80, R_NONE, 0, "i387_ext", NULL, CORE}, {"st1", 80, R_NONE, 0, "i387_ext", NULL, CORE},
    {"st2", 80, R_NONE, 0, "i387_ext", NULL, CORE}, {"st3", 80, R_NONE, 0, "i387_ext", NULL, CORE},
    {"st4", 80, R_NONE, 0, "i387_ext", NULL, CORE}, {"st5", 80, R_NONE, 0, "i387_ext", NULL, CORE},
    {"st6", 80, R_NONE, 0, "i387_ext", NULL, CORE}, {"st7", 80, R_NONE, 0, "i387_ext", NULL, CORE},
    {"fctrl", 32, R_NONE, 0, "int", "float", CORE}, {"fstat", 32, R_NONE, 0, "int", "float", CORE},
    {"ftag", 32, R_NONE, 0, "int", "float", CORE}, {"fiseg", 32, R_NONE, 0, "int", "float", CORE},
    {"fioff", 32, R_NONE, 0, "int", "float", CORE}, {"foseg", 32, R_NONE, 0, "int", "float", CORE},
    {"fooff", 32, R_NONE, 0, "int", "float", CORE}, {"fop", 32, R_NONE, 0, "int", "float", CORE},
    {"xmm0", 128, R_NONE, 0, "uint128", NULL, SSE}, {"xmm1", 128, R_NONE, 0, "uint128", NULL, SSE},
    {"xmm2", 128, R_NONE, 0, "uint128", NULL, SSE}, {"xmm3", 128, R_NONE, 0, "uint128", NULL, SSE},
    {"xmm4", 128, R_NONE, 0, "uint128", NULL, SSE}, {"xmm5", 128, R_NONE, 0, "uint128", NULL, SSE},
    {"xmm6", 128, R_NONE, 0, "uint128", NULL, SSE}, {"xmm7", 128, R_NONE, 0, "uint128", NULL, SSE},
    {"xmm8", 128, R_NONE, 0, "uint128", NULL, SSE}, {"xmm9", 128, R_NONE, 0, "uint128", NULL, SSE},
    {"xmm10", 128, R_NONE, 0, "uint128", NULL, SSE}, {"xmm11", 128, R_NONE, 0, "uint128", NULL, SSE},
    {"xmm12", 128, R_NONE, 0, "uint128", NULL, SSE}, {"xmm13", 128, R_NONE, 0, "uint128", NULL, SSE},
    {"xmm14", 128, R_NONE, 0, "uint128", NULL, SSE}, {"xmm15", 128, R_NONE, 0, "uint128", NULL, SSE},
    {"mxcsr", 32, R_NONE, 0, "int", "vector", SSE},
    {"fs_base", 64, R_BASE, SEG_FS, "int", NULL, SEGS}, {"gs_base", 64, R_BASE, SEG_GS, "int", NULL, SEGS},
    {"cr0", 64, R_CR, CR_0, "int", "system", SYS}, {"cr2", 64, R_CR, CR_2, "int", "system", SYS},
    {"cr3", 64, R_CR, CR_3, "int", "system", SYS}, {"cr4", 64, R_CR, CR_4, "int", "system", SYS},
    {"cr8", 64, R_CR, CR_8, "int", "system", SYS}, {"efer", 64, R_CR, CR_EFER, "int", "system", SYS},
};
// clang-format on

/* RFLAGS bits for gdb's flags display (Intel SDM vol. 1, 3.4.3). */
static const struct {
    uint8_t bit;
    const char *name;
} eflags_bits[] = {{0, "CF"},  {2, "PF"},   {4, "AF"},   {6, "ZF"},  {7, "SF"},  {8, "TF"},
                   {9, "IF"},  {10, "DF"},  {11, "OF"},  {14, "NT"}, {16, "RF"}, {17, "VM"},
                   {18, "AC"}, {19, "VIF"}, {20, "VIP"}, {21, "ID"}};

unsigned gdb_x86_reg_size(unsigned n)
{
    return n < GDB_X86_NREGS ? regs[n].bits / 8u : 0;
}

static uint64_t *gpr(struct vcpu_regs *r, unsigned i)
{
    uint64_t *const slots[] = {&r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi, &r->rsp, &r->rbp,
                               &r->r8,  &r->r9,  &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15};
    return slots[i];
}

static struct vcpu_segment *seg(struct vcpu_sregs *s, unsigned i)
{
    struct vcpu_segment *const slots[] = {&s->cs, &s->ss, &s->ds, &s->es, &s->fs, &s->gs};
    return slots[i];
}

static uint64_t *cr(struct vcpu_sregs *s, unsigned i)
{
    uint64_t *const slots[] = {&s->cr0, &s->cr2, &s->cr3, &s->cr4, &s->cr8, &s->efer};
    return slots[i];
}

/* The value of an available register (false: unavailable). */
static bool reg_value(const struct gdb_x86_cpu *c, unsigned n, uint64_t *v)
{
    /* The accessors take non-const pointers; nothing is written through them here. */
    struct gdb_x86_cpu *m = (struct gdb_x86_cpu *)c;
    const struct reg_def *d = &regs[n];
    switch (d->kind) {
    case R_GPR:
        *v = *gpr(&m->r, d->index);
        return true;
    case R_RIP:
        *v = c->r.rip;
        return true;
    case R_EFLAGS:
        *v = (uint32_t)c->r.rflags;
        return true;
    case R_SEG:
        *v = seg(&m->s, d->index)->selector;
        return true;
    case R_BASE:
        *v = seg(&m->s, d->index)->base;
        return true;
    case R_CR:
        *v = *cr(&m->s, d->index);
        return true;
    default:
        return false;
    }
}

void gdb_x86_reg_hex(const struct gdb_x86_cpu *c, unsigned n, GString *out)
{
    unsigned size = gdb_x86_reg_size(n);
    uint64_t v;
    if (!size)
        return;
    if (!reg_value(c, n, &v)) {
        for (unsigned i = 0; i < size; i++)
            g_string_append(out, "xx");
        return;
    }
    uint8_t b[8];
    le64_store(b, v);
    gdb_hex_append(out, b, size);
}

bool gdb_x86_reg_write(struct gdb_x86_cpu *c, unsigned n, const uint8_t *val)
{
    if (n >= GDB_X86_NREGS)
        return false;
    const struct reg_def *d = &regs[n];
    uint8_t b[8] = {0};
    if (d->bits <= 64)
        memcpy(b, val, d->bits / 8u);
    uint64_t v = le64_load(b);
    switch (d->kind) {
    case R_GPR:
        *gpr(&c->r, d->index) = v;
        return true;
    case R_RIP:
        c->r.rip = v;
        return true;
    case R_EFLAGS:
        c->r.rflags = (c->r.rflags & ~0xffffffffull) | (uint32_t)v;
        return true;
    case R_SEG:
        return seg(&c->s, d->index)->selector == v;
    case R_BASE:
        seg(&c->s, d->index)->base = v;
        return true;
    case R_CR:
        *cr(&c->s, d->index) = v;
        return true;
    default:
        return false;
    }
}

void gdb_x86_regs_hex(const struct gdb_x86_cpu *c, GString *out)
{
    for (unsigned n = 0; n < GDB_X86_NREGS; n++)
        gdb_x86_reg_hex(c, n, out);
}

bool gdb_x86_regs_write(struct gdb_x86_cpu *c, const char *hex, size_t len)
{
    size_t total = 0;
    for (unsigned n = 0; n < GDB_X86_NREGS; n++)
        total += 2 * gdb_x86_reg_size(n);
    if (len != total)
        return false;
    struct gdb_x86_cpu tmp = *c;
    for (unsigned n = 0; n < GDB_X86_NREGS; n++) {
        unsigned size = gdb_x86_reg_size(n);
        uint8_t val[16];
        uint64_t cur;
        bool available = reg_value(&tmp, n, &cur);
        if (hex[0] == 'x' || !available) {
            /* gdb sends back what it got: x's, or bytes for a register it never had. */
            hex += 2 * size;
            continue;
        }
        if (!gdb_hex_decode(hex, size, val))
            return false;
        if (regs[n].kind == R_SEG && le32_load(val) == cur) {
            hex += 2 * size;
            continue;
        }
        if (!gdb_x86_reg_write(&tmp, n, val))
            return false;
        hex += 2 * size;
    }
    *c = tmp;
    return true;
}

const char *gdb_x86_target_xml(void)
{
    static char *xml;
    if (g_once_init_enter(&xml)) {
        GString *s = g_string_new("<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
                                  "<target version=\"1.0\">\n<architecture>i386:x86-64</architecture>\n");
        const char *feature = NULL;
        for (unsigned n = 0; n < GDB_X86_NREGS; n++) {
            const struct reg_def *d = &regs[n];
            if (!feature || strcmp(feature, d->feature)) {
                if (feature)
                    g_string_append(s, "</feature>\n");
                feature = d->feature;
                g_string_append_printf(s, "<feature name=\"%s\">\n", feature);
                if (!strcmp(feature, CORE)) {
                    g_string_append(s, "<flags id=\"x86_eflags\" size=\"4\">\n");
                    for (size_t i = 0; i < G_N_ELEMENTS(eflags_bits); i++)
                        g_string_append_printf(s, "<field name=\"%s\" start=\"%u\" end=\"%u\"/>\n",
                                               eflags_bits[i].name, eflags_bits[i].bit, eflags_bits[i].bit);
                    g_string_append(s, "</flags>\n");
                }
            }
            g_string_append_printf(s, "<reg name=\"%s\" bitsize=\"%u\" type=\"%s\" regnum=\"%u\"", d->name,
                                   d->bits, d->type, n);
            if (d->group)
                g_string_append_printf(s, " group=\"%s\"", d->group);
            g_string_append(s, "/>\n");
        }
        g_string_append(s, "</feature>\n</target>\n");
        g_once_init_leave(&xml, g_string_free(s, FALSE));
    }
    return xml;
}
