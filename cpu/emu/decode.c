/* x86 instruction decoder: prefixes, opcode maps, ModRM/SIB, displacement and immediates into struct
 * x86_insn. */
#include "emu/decode.h"

#include <stdbool.h>
#include <string.h>

#include "emu/decode_tables.h"

_Static_assert(sizeof(struct x86_insn) == 40, "struct x86_insn is meant to stay compact");
_Static_assert(X86_OP_COUNT <= 0xffff, "op ids must fit insn.op");

static const char *const op_names[] = {
#define X86_OP_NAME(name) #name,
    X86_OP_LIST(X86_OP_NAME)
#undef X86_OP_NAME
};

const char *x86_op_name(unsigned op)
{
    return op < X86_OP_COUNT ? op_names[op] : "?";
}

/* Byte source bounded by both the caller's buffer and the architectural 15-byte limit; the limit is checked
 * first because a CPU raises #GP before it would fetch a 16th byte. */
struct cursor {
    const uint8_t *bytes;
    size_t avail;
    unsigned pos;
};

static int fetch(struct cursor *c, uint8_t *b)
{
    if (c->pos >= X86_MAX_INSN_LEN) {
        return X86_DECODE_TOO_LONG;
    }
    if (c->pos >= c->avail) {
        return X86_DECODE_NEED_MORE;
    }
    *b = c->bytes[c->pos++];
    return 0;
}

/* Little-endian n-byte value (n <= 8), sign-extended when asked. */
static int fetch_value(struct cursor *c, unsigned n, bool sign, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        uint8_t b;
        int r = fetch(c, &b);
        if (r < 0) {
            return r;
        }
        v |= (uint64_t)b << (8 * i);
    }
    if (sign && n < 8) {
        uint64_t m = 1ull << (8 * n - 1);
        v = (v ^ m) - m;
    }
    *out = v;
    return 0;
}

static uint8_t mandatory_bit(const struct x86_insn *in)
{
    return (uint8_t)(1u << in->mandatory);
}

/* Memory operand of a ModRM byte whose mod != 3 (16-bit forms: BX/BP base, SI/DI index). */
static int decode_mem(struct cursor *c, struct x86_insn *in, bool long_mode)
{
    static const uint8_t base16[8] = {3, 3, 5, 5, 6, 7, 5, 3};
    static const uint8_t index16[8] = {6, 7, 6, 7, X86_REG_NONE, X86_REG_NONE, X86_REG_NONE, X86_REG_NONE};
    unsigned rm = in->modrm & 7;
    unsigned dsize;
    int r;

    in->flags |= X86_INSN_MEM;
    in->scale = 0;
    if (in->addrsize == 2) {
        if (in->mod == 0 && rm == 6) {
            in->base = in->index = X86_REG_NONE;
            dsize = 2;
        } else {
            in->base = base16[rm];
            in->index = index16[rm];
            dsize = in->mod == 1 ? 1 : in->mod == 2 ? 2 : 0;
        }
    } else {
        unsigned rex_x = (in->rex >> 1) & 1, rex_b = in->rex & 1;
        dsize = in->mod == 1 ? 1 : in->mod == 2 ? 4 : 0;
        if (rm == 4) {
            uint8_t sib;
            if ((r = fetch(c, &sib)) < 0) {
                return r;
            }
            in->flags |= X86_INSN_SIB;
            in->scale = sib >> 6;
            in->index = (uint8_t)(((sib >> 3) & 7) | rex_x << 3);
            if (in->index == 4) {
                in->index = X86_REG_NONE;
            }
            in->base = (uint8_t)((sib & 7) | rex_b << 3);
            if ((sib & 7) == 5 && in->mod == 0) {
                in->base = X86_REG_NONE;
                dsize = 4;
            }
        } else if (rm == 5 && in->mod == 0) {
            in->base = in->index = X86_REG_NONE;
            if (long_mode) {
                in->flags |= X86_INSN_RIP_REL;
            }
            dsize = 4;
        } else {
            in->base = (uint8_t)(rm | rex_b << 3);
            in->index = X86_REG_NONE;
        }
    }
    uint64_t d = 0;
    if (dsize && (r = fetch_value(c, dsize, true, &d)) < 0) {
        return r;
    }
    in->disp = (int64_t)d;
    in->disp_size = (uint8_t)dsize;
    return 0;
}

static int decode_imm(struct cursor *c, struct x86_insn *in, unsigned kind)
{
    unsigned n = 0, n2 = 0;
    bool sign = false;
    uint64_t v = 0, v2 = 0;
    int r;

    switch (kind) {
    case X86_IMM_NONE:
        return 0;
    case X86_IMM_B:
        n = 1;
        break;
    case X86_IMM_BS:
    case X86_IMM_JB:
        n = 1;
        sign = true;
        break;
    case X86_IMM_W:
        n = 2;
        break;
    case X86_IMM_Z:
        n = in->opsize == 8 ? 4 : in->opsize;
        sign = in->opsize == 8;
        break;
    case X86_IMM_V:
        n = in->opsize;
        break;
    case X86_IMM_JZ:
        n = in->opsize == 2 ? 2 : 4;
        sign = true;
        break;
    case X86_IMM_AP:
        n = in->opsize == 2 ? 2 : 4;
        n2 = 2;
        break;
    case X86_IMM_W_B:
        n = 2;
        n2 = 1;
        break;
    case X86_IMM_MOFFS:
        /* The offset is the whole address: present it as a base-less, index-less memory operand. */
        if ((r = fetch_value(c, in->addrsize, false, &v)) < 0) {
            return r;
        }
        in->flags |= X86_INSN_MEM;
        in->base = in->index = X86_REG_NONE;
        in->disp = (int64_t)v;
        in->disp_size = in->addrsize;
        return 0;
    default:
        return X86_DECODE_UD;
    }
    if ((r = fetch_value(c, n, sign, &v)) < 0 || (n2 && (r = fetch_value(c, n2, false, &v2)) < 0)) {
        return r;
    }
    in->imm = v;
    in->imm2 = (uint16_t)v2;
    in->imm_size = (uint8_t)(n + n2);
    return 0;
}

/* VEX (C4/C5) and EVEX (62): parsed for the length only; the CPU does not advertise AVX and raises #UD. */
static int decode_vex(struct cursor *c, struct x86_insn *in, uint8_t escape, bool long_mode)
{
    uint8_t p0, p1 = 0, opcode, modrm;
    unsigned map;
    int r;

    if (in->prefixes & (X86_PFX_LOCK | X86_PFX_REP | X86_PFX_REPNE | X86_PFX_OPSIZE | X86_PFX_REX)) {
        return X86_DECODE_UD;
    }
    if ((r = fetch(c, &p0)) < 0) {
        return r;
    }
    if (escape == 0xc5) {
        map = 1;
        in->rex = (uint8_t)(0x40 | ((uint8_t)~p0 >> 5 & 4));
    } else {
        if ((r = fetch(c, &p1)) < 0) {
            return r;
        }
        map = escape == 0xc4 ? (p0 & 0x1fu) : (p0 & 7u);
        in->rex = (uint8_t)(0x40 | (p1 >> 4 & 8) | ((uint8_t)~p0 >> 5 & 7));
        if (escape == 0x62) {
            uint8_t p2;
            if ((r = fetch(c, &p2)) < 0) {
                return r;
            }
        }
    }
    bool valid_map = escape == 0x62 ? (map >= 1 && map <= 3) || map == 5 || map == 6 : map >= 1 && map <= 3;
    if (!valid_map) {
        return X86_DECODE_UD;
    }
    if (!long_mode) {
        in->rex = 0; /* R/X/B/W select nothing outside 64-bit mode */
    }
    if ((r = fetch(c, &opcode)) < 0) {
        return r;
    }
    in->prefixes |= X86_PFX_VEX;
    in->op = X86_OP_AVX;
    in->map = (uint8_t)map;
    in->opcode = opcode;
    in->opsize = (in->rex & 8) ? 8 : 4;
    if (escape != 0x62 && map == 1 && opcode == 0x77) { /* VZEROUPPER/VZEROALL */
        return 0;
    }
    if ((r = fetch(c, &modrm)) < 0) {
        return r;
    }
    in->flags |= X86_INSN_MODRM;
    in->modrm = modrm;
    in->mod = modrm >> 6;
    in->reg = (uint8_t)(((modrm >> 3) & 7) | ((in->rex >> 2) & 1) << 3);
    in->rm = (uint8_t)((modrm & 7) | (in->rex & 1) << 3);
    if (in->mod != 3 && (r = decode_mem(c, in, long_mode)) < 0) {
        return r;
    }
    bool imm8 = map == 3 || (map == 1 && ((opcode >= 0x70 && opcode <= 0x73) || opcode == 0xc2 ||
                                          (opcode >= 0xc4 && opcode <= 0xc6)));
    return imm8 ? decode_imm(c, in, X86_IMM_B) : 0;
}

/* 0F 01 with mod == 3: the operation is chosen by the whole ModRM byte. */
static uint16_t grp7_reg_op(unsigned reg, unsigned rm, bool long_mode)
{
    switch (reg) {
    case 1:
        return rm == 0   ? X86_OP_MONITOR
               : rm == 1 ? X86_OP_MWAIT
               : rm == 2 ? X86_OP_CLAC
               : rm == 3 ? X86_OP_STAC
                         : X86_OP_INVALID;
    case 2:
        return rm == 0 ? X86_OP_XGETBV : X86_OP_INVALID;
    case 4:
        return X86_OP_SMSW;
    case 6:
        return X86_OP_LMSW;
    case 7:
        return rm == 0 && long_mode ? X86_OP_SWAPGS : rm == 1 ? X86_OP_RDTSCP : X86_OP_INVALID;
    default:
        return X86_OP_INVALID;
    }
}

/* Picks the operation of the opcodes marked X86_D_SPECIAL and of the 0F38 integer ones. */
static void resolve_special(struct x86_insn *in, struct x86_opdesc *d, bool long_mode)
{
    unsigned reg = (in->modrm >> 3) & 7, rm = in->modrm & 7;
    bool f3 = in->mandatory == X86_MP_F3, is_reg = in->mod == 3;

    d->op = X86_OP_INVALID;
    if (in->map == X86_MAP_ONE) {
        if (in->opcode == 0x63) {
            if (long_mode) {
                *d = (struct x86_opdesc){X86_OP_MOVSXD, X86_FORM_G_E, X86_IMM_NONE, X86_D_MODRM, 0, 0};
            } else {
                *d = (struct x86_opdesc){X86_OP_ARPL, X86_FORM_E_G, X86_IMM_NONE, X86_D_MODRM, 0, 0};
            }
        } else if (in->opcode == 0x90) {
            if ((in->rex & 1) == 0) {
                d->op = f3 ? X86_OP_PAUSE : X86_OP_NOP;
                d->form = X86_FORM_NONE;
            } else {
                d->op = X86_OP_XCHG;
            }
        }
        return;
    }
    switch (in->opcode) {
    case 0x01:
        if (!is_reg) {
            *d = x86_groups[X86_GRP_7][reg];
            d->flags |= X86_D_MODRM;
            d->form = X86_FORM_E;
        } else {
            d->op = grp7_reg_op(reg, rm, long_mode);
            d->form = d->op == X86_OP_SMSW || d->op == X86_OP_LMSW ? X86_FORM_E : X86_FORM_NONE;
        }
        break;
    case 0xae:
        if (!is_reg) {
            static const uint16_t mem_ops[8] = {X86_OP_FXSAVE,   X86_OP_FXRSTOR, X86_OP_LDMXCSR,
                                                X86_OP_STMXCSR,  X86_OP_XSAVE,   X86_OP_XRSTOR,
                                                X86_OP_XSAVEOPT, X86_OP_CLFLUSH};
            if (in->mandatory == X86_MP_NONE) {
                d->op = mem_ops[reg];
            } else if (in->mandatory == X86_MP_66) {
                d->op = reg == 6 ? X86_OP_CLWB : reg == 7 ? X86_OP_CLFLUSHOPT : mem_ops[reg];
            }
        } else if (in->mandatory == X86_MP_NONE) {
            d->op = reg == 5   ? X86_OP_LFENCE
                    : reg == 6 ? X86_OP_MFENCE
                    : reg == 7 ? X86_OP_SFENCE
                               : X86_OP_INVALID;
            d->form = X86_FORM_NONE;
        } else if (f3 && long_mode && reg < 4) {
            static const uint16_t fsgs[4] = {X86_OP_RDFSBASE, X86_OP_RDGSBASE, X86_OP_WRFSBASE,
                                             X86_OP_WRGSBASE};
            d->op = fsgs[reg];
            d->flags |= X86_D_SSE;
        }
        break;
    case 0xc7:
        if (!is_reg) {
            if (reg == 1) {
                d->op = X86_OP_CMPXCHG8B;
                d->flags |= X86_D_LOCK | X86_D_SSE; /* 8 or 16 bytes by REX.W alone */
            }
        } else if (reg == 6 && !f3 && in->mandatory != X86_MP_F2) {
            d->op = X86_OP_RDRAND;
        } else if (reg == 7) {
            d->op = f3 ? X86_OP_RDPID : in->mandatory == X86_MP_F2 ? X86_OP_INVALID : X86_OP_RDSEED;
            if (f3) {
                d->flags |= X86_D_F64;
            }
        }
        break;
    case 0xb8:
        d->op = f3 ? X86_OP_POPCNT : X86_OP_INVALID;
        break;
    case 0xbc:
        d->op = f3 ? X86_OP_TZCNT : X86_OP_BSF;
        break;
    case 0xbd:
        d->op = f3 ? X86_OP_LZCNT : X86_OP_BSR;
        break;
    }
}

/* 0F 38 F0/F1/F6 are integer instructions selected by the mandatory prefix. */
static void resolve_0f38_integer(struct x86_insn *in, struct x86_opdesc *d)
{
    *d = (struct x86_opdesc){X86_OP_INVALID, X86_FORM_G_E, X86_IMM_NONE, X86_D_MODRM, 0, 0};
    if (in->opcode == 0xf6) {
        d->flags |= X86_D_SSE;
        d->op = in->mandatory == X86_MP_66   ? X86_OP_ADCX
                : in->mandatory == X86_MP_F3 ? X86_OP_ADOX
                                             : X86_OP_INVALID;
    } else if (in->mandatory == X86_MP_F2) {
        d->op = X86_OP_CRC32;
        if (in->opcode == 0xf0) {
            d->flags |= X86_D_BYTE;
        }
    } else if (in->mandatory != X86_MP_F3) {
        d->op = X86_OP_MOVBE;
        d->flags |= X86_D_MEM;
        if (in->opcode == 0xf1) {
            d->form = X86_FORM_E_G;
        }
    }
}

static bool sse_shift_valid(const struct x86_insn *in)
{
    unsigned reg = (in->modrm >> 3) & 7;
    if (in->opcode == 0x73) {
        return reg == 2 || reg == 6 || ((reg == 3 || reg == 7) && in->mandatory == X86_MP_66);
    }
    return reg == 2 || reg == 4 || reg == 6;
}

static uint8_t operand_size(const struct x86_insn *in, uint16_t flags, enum x86_mode mode)
{
    bool o16 = in->prefixes & X86_PFX_OPSIZE, w = in->rex & 8;
    if (flags & X86_D_BYTE) {
        return 1;
    }
    if (flags & X86_D_SSE) {
        return w ? 8 : 4;
    }
    if (flags & X86_D_CRDR) {
        return mode == X86_MODE_64 ? 8 : 4;
    }
    if (mode == X86_MODE_64) {
        if (flags & X86_D_F64) {
            return 8;
        }
        if (w && !(flags & X86_D_NO64)) {
            return 8;
        }
        if (flags & X86_D_D64) {
            return o16 ? 2 : 8;
        }
        return o16 ? 2 : 4;
    }
    return (mode == X86_MODE_16) != o16 ? 2 : 4;
}

static bool is_lock_prefix_ok(const struct x86_insn *in, uint16_t flags)
{
    return (flags & X86_D_LOCK) && (in->flags & X86_INSN_MEM);
}

int x86_decode(const uint8_t *bytes, size_t avail, enum x86_mode mode, struct x86_insn *out)
{
    struct cursor c = {bytes, avail, 0};
    struct x86_insn *in = out;
    bool long_mode = mode == X86_MODE_64, ud = false;
    uint8_t b, last_rep = 0, rex = 0, seg = X86_REG_NONE;
    int r;

    memset(in, 0, sizeof(*in));
    in->base = in->index = X86_REG_NONE;

    /* Legacy prefixes in any order; a REX counts only when it is the last byte before the opcode. */
    for (;;) {
        if ((r = fetch(&c, &b)) < 0) {
            return r;
        }
        if (b == 0xf0) {
            in->prefixes |= X86_PFX_LOCK;
        } else if (b == 0xf2 || b == 0xf3) {
            last_rep = b;
        } else if (b == 0x66) {
            in->prefixes |= X86_PFX_OPSIZE;
        } else if (b == 0x67) {
            in->prefixes |= X86_PFX_ADDRSIZE;
        } else if (b == 0x26 || b == 0x2e || b == 0x36 || b == 0x3e) {
            if (!long_mode) { /* ES/CS/SS/DS overrides are ignored in 64-bit mode */
                seg = (uint8_t)((b >> 3) & 3);
            }
        } else if (b == 0x64 || b == 0x65) {
            seg = (uint8_t)(X86_SEG_FS + (b & 1));
        } else if (long_mode && (b & 0xf0) == 0x40) {
            rex = b;
            continue;
        } else {
            break;
        }
        rex = 0;
    }

    if (last_rep == 0xf3) {
        in->prefixes |= X86_PFX_REP;
        in->mandatory = X86_MP_F3;
    } else if (last_rep == 0xf2) {
        in->prefixes |= X86_PFX_REPNE;
        in->mandatory = X86_MP_F2;
    } else if (in->prefixes & X86_PFX_OPSIZE) {
        in->mandatory = X86_MP_66;
    }
    if (rex) {
        in->prefixes |= X86_PFX_REX;
        in->rex = rex;
    } else {
        in->flags |= X86_INSN_HIGH_BYTE;
    }
    if (seg != X86_REG_NONE) {
        in->prefixes |= X86_PFX_SEG;
    }
    bool a16 = in->prefixes & X86_PFX_ADDRSIZE;
    in->addrsize = mode == X86_MODE_64 ? (a16 ? 4 : 8) : (mode == X86_MODE_16) != a16 ? 2 : 4;

    /* Opcode map. */
    struct x86_opdesc d;
    in->opcode = b;
    if (b == 0x0f) {
        if ((r = fetch(&c, &b)) < 0) {
            return r;
        }
        if (b == 0x38 || b == 0x3a) {
            in->map = b == 0x38 ? X86_MAP_0F38 : X86_MAP_0F3A;
            if ((r = fetch(&c, &in->opcode)) < 0) {
                return r;
            }
            d = (struct x86_opdesc){
                X86_OP_SSE, X86_FORM_NONE, b == 0x3a ? X86_IMM_B : X86_IMM_NONE, X86_D_SSE | X86_D_MODRM, 0,
                0};
        } else {
            in->map = X86_MAP_0F;
            in->opcode = b;
            d = x86_table_0f[b];
        }
    } else {
        in->map = X86_MAP_ONE;
        d = x86_table_one[b];
        /* C4/C5/62 are VEX/EVEX in 64-bit mode; elsewhere only when the next byte would be a register ModRM,
         * which LES/LDS/BOUND cannot take. */
        if (b == 0xc4 || b == 0xc5 || b == 0x62) {
            bool vex = long_mode;
            if (!vex) {
                uint8_t next;
                if ((r = fetch(&c, &next)) < 0) {
                    return r;
                }
                c.pos--;
                vex = (next & 0xc0) == 0xc0;
            }
            if (vex) {
                if ((r = decode_vex(&c, in, b, long_mode)) < 0) {
                    return r;
                }
                in->len = (uint8_t)c.pos;
                in->seg = seg != X86_REG_NONE ? seg : X86_SEG_DS;
                return in->len;
            }
        }
    }

    if ((long_mode && (d.flags & X86_D_I64)) || (!long_mode && (d.flags & X86_D_O64))) {
        return X86_DECODE_UD;
    }
    if (d.op == X86_OP_INVALID && !(d.flags & (X86_D_GROUP | X86_D_SPECIAL)) && in->map <= X86_MAP_0F) {
        return X86_DECODE_UD;
    }

    /* ModRM and the operation it selects. */
    if (d.flags & X86_D_MODRM) {
        if ((r = fetch(&c, &in->modrm)) < 0) {
            return r;
        }
        in->flags |= X86_INSN_MODRM;
        in->mod = in->modrm >> 6;
        in->reg = (uint8_t)(((in->modrm >> 3) & 7) | (in->rex & 4) << 1);
        in->rm = (uint8_t)((in->modrm & 7) | (in->rex & 1) << 3);
    }
    if (d.flags & X86_D_OPREG) {
        in->mod = 3;
        in->rm = (uint8_t)((in->opcode & 7) | (in->rex & 1) << 3);
    } else if (d.flags & X86_D_ACC) {
        in->mod = 3;
    }
    if (d.flags & X86_D_GROUP) {
        const struct x86_opdesc *g = &x86_groups[d.group][(in->modrm >> 3) & 7];
        d.op = g->op;
        d.flags |= g->flags;
        if (g->form != X86_FORM_NONE) {
            d.form = g->form;
        }
        if (g->imm != X86_IMM_NONE) {
            d.imm = g->imm;
        }
        if (in->map == X86_MAP_ONE && (in->opcode == 0xc6 || in->opcode == 0xc7) && in->modrm == 0xf8) {
            d.op = in->opcode == 0xc6 ? X86_OP_XABORT : X86_OP_XBEGIN;
            d.form = in->opcode == 0xc6 ? X86_FORM_I : X86_FORM_J;
            d.imm = in->opcode == 0xc6 ? X86_IMM_B : X86_IMM_JZ;
            d.flags &= (uint16_t)~X86_D_BYTE;
        }
    } else if (d.flags & X86_D_SPECIAL) {
        resolve_special(in, &d, long_mode);
    } else if (in->map == X86_MAP_0F38 && (in->opcode == 0xf0 || in->opcode == 0xf1 || in->opcode == 0xf6)) {
        resolve_0f38_integer(in, &d);
    }
    if (d.op == X86_OP_INVALID) {
        return X86_DECODE_UD;
    }
    in->op = d.op;
    in->form = d.form;

    in->opsize = operand_size(in, d.flags, mode);
    in->seg = seg;

    /* Operand checks that do not change the instruction's length: report #UD once the length is known. */
    if (d.flags & X86_D_SSE) {
        const uint16_t *t = in->map == X86_MAP_0F     ? x86_sse_0f
                            : in->map == X86_MAP_0F38 ? x86_sse_0f38
                                                      : x86_sse_0f3a;
        uint16_t v = in->op == X86_OP_SSE || in->op == X86_OP_MOVNTI ? t[in->opcode] : 0xf;
        uint8_t m = mandatory_bit(in);
        bool is_reg = in->mod == 3;
        if (!(v & m) || (is_reg && (v >> 4 & m)) || (!is_reg && (v >> 8 & m))) {
            ud = true;
        }
        if (in->map == X86_MAP_0F && in->opcode >= 0x71 && in->opcode <= 0x73 && !sse_shift_valid(in)) {
            ud = true;
        }
    }
    if (d.flags & X86_D_CRDR) {
        in->mod = 3; /* MOV to/from CR/DR ignores mod: always register operands */
        if (in->op == X86_OP_MOV_CR) {
            ud |= !(in->reg == 0 || in->reg == 2 || in->reg == 3 || in->reg == 4 || in->reg == 8);
        } else {
            ud |= in->reg >= 8;
        }
    }
    if (in->op == X86_OP_MOV_SEG) {
        in->reg &= 7; /* REX.R does not extend segment registers */
        ud |= in->reg > X86_SEG_GS || (in->opcode == 0x8e && in->reg == X86_SEG_CS);
    }
    if (in->form == X86_FORM_SEG) {
        in->reg = (uint8_t)(in->map == X86_MAP_0F ? (in->opcode >> 3) & 7 : (in->opcode >> 3) & 3);
    }
    if (in->op == X86_OP_X87 && in->mod != 3) {
        unsigned esc = in->opcode & 7, reg = (in->modrm >> 3) & 7;
        ud |= (esc == 1 && reg == 1) || (esc == 3 && (reg == 4 || reg == 6)) || (esc == 5 && reg == 5);
    }

    /* Displacement and immediates. */
    if ((in->flags & X86_INSN_MODRM) && in->mod != 3 && (r = decode_mem(&c, in, long_mode)) < 0) {
        return r;
    }
    if ((r = decode_imm(&c, in, d.imm)) < 0) {
        return r;
    }

    if ((d.flags & X86_D_MEM) && !(in->flags & X86_INSN_MEM)) {
        ud = true;
    }
    if ((d.flags & X86_D_REG) && (in->flags & X86_INSN_MEM)) {
        ud = true;
    }
    if ((in->prefixes & X86_PFX_LOCK) && !is_lock_prefix_ok(in, d.flags)) {
        ud = true;
    }
    if (ud) {
        return X86_DECODE_UD;
    }
    if (seg == X86_REG_NONE) {
        in->seg = (in->flags & X86_INSN_MEM) && (in->base == 4 || in->base == 5) ? X86_SEG_SS : X86_SEG_DS;
    }
    in->len = (uint8_t)c.pos;
    return in->len;
}
