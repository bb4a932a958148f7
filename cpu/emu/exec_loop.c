/* The emu interpreter loop: decoded blocks, dispatch, events and exception delivery. */
#include "emu/exec.h"

#include <glib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "emu/interrupt.h"
#include "log.h"

int emu_trace_level;

/* ---- the memory interface of the segment and interrupt modules ---- */

static bool sys_read(void *opaque, uint64_t lin, unsigned size, unsigned access, void *out,
                     struct emu_fault *f)
{
    return emu_mem_read(opaque, lin, size, access, out, f);
}

static bool sys_write(void *opaque, uint64_t lin, unsigned size, unsigned access, const void *in,
                      struct emu_fault *f)
{
    return emu_mem_write(opaque, lin, size, access, in, f);
}

/* One 8-byte load that the compiler cannot combine with its neighbours. */
static inline uint64_t load_u64(const uint64_t *p)
{
    uint64_t v;
    __asm__("movq %1, %0" : "=r"(v) : "m"(*p));
    return v;
}

/* ---- dispatch ---- */

// clang-format off
typedef int exec_area_fn(struct exec_ctx *x);

static exec_area_fn *const exec_areas[X86_OP_COUNT] = {
    [X86_OP_ADD] = exec_int, [X86_OP_OR] = exec_int, [X86_OP_ADC] = exec_int, [X86_OP_SBB] = exec_int,
    [X86_OP_AND] = exec_int, [X86_OP_SUB] = exec_int, [X86_OP_XOR] = exec_int, [X86_OP_CMP] = exec_int,
    [X86_OP_INC] = exec_int, [X86_OP_DEC] = exec_int, [X86_OP_NOT] = exec_int, [X86_OP_NEG] = exec_int,
    [X86_OP_MUL] = exec_int, [X86_OP_IMUL] = exec_int, [X86_OP_DIV] = exec_int, [X86_OP_IDIV] = exec_int,
    [X86_OP_TEST] = exec_int, [X86_OP_ROL] = exec_int, [X86_OP_ROR] = exec_int, [X86_OP_RCL] = exec_int,
    [X86_OP_RCR] = exec_int, [X86_OP_SHL] = exec_int, [X86_OP_SHR] = exec_int, [X86_OP_SAR] = exec_int,
    [X86_OP_SHLD] = exec_int, [X86_OP_SHRD] = exec_int, [X86_OP_DAA] = exec_int, [X86_OP_DAS] = exec_int,
    [X86_OP_AAA] = exec_int, [X86_OP_AAS] = exec_int, [X86_OP_AAM] = exec_int, [X86_OP_AAD] = exec_int,
    [X86_OP_SALC] = exec_int, [X86_OP_PUSH] = exec_int, [X86_OP_POP] = exec_int, [X86_OP_PUSHA] = exec_int,
    [X86_OP_POPA] = exec_int, [X86_OP_PUSHF] = exec_int, [X86_OP_POPF] = exec_int, [X86_OP_ENTER] = exec_int,
    [X86_OP_LEAVE] = exec_int, [X86_OP_MOVSXD] = exec_int, [X86_OP_MOV] = exec_int, [X86_OP_MOVZX] = exec_int,
    [X86_OP_MOVSX] = exec_int, [X86_OP_LEA] = exec_int, [X86_OP_XCHG] = exec_int, [X86_OP_NOP] = exec_int,
    [X86_OP_PAUSE] = exec_int, [X86_OP_CBW] = exec_int, [X86_OP_CWD] = exec_int, [X86_OP_SAHF] = exec_int,
    [X86_OP_LAHF] = exec_int, [X86_OP_XLAT] = exec_int, [X86_OP_CMC] = exec_int, [X86_OP_CLC] = exec_int,
    [X86_OP_STC] = exec_int, [X86_OP_CLI] = exec_int, [X86_OP_STI] = exec_int, [X86_OP_CLD] = exec_int,
    [X86_OP_STD] = exec_int, [X86_OP_CMOVCC] = exec_int, [X86_OP_SETCC] = exec_int, [X86_OP_BT] = exec_int,
    [X86_OP_BTS] = exec_int, [X86_OP_BTR] = exec_int, [X86_OP_BTC] = exec_int, [X86_OP_BSF] = exec_int,
    [X86_OP_BSR] = exec_int, [X86_OP_TZCNT] = exec_int, [X86_OP_LZCNT] = exec_int, [X86_OP_POPCNT] = exec_int,
    [X86_OP_CMPXCHG] = exec_int, [X86_OP_XADD] = exec_int, [X86_OP_CMPXCHG8B] = exec_int,
    [X86_OP_BSWAP] = exec_int, [X86_OP_MOVNTI] = exec_int,
    [X86_OP_MOVBE] = exec_int, [X86_OP_WAIT] = exec_int,

    [X86_OP_JCC] = exec_ctrl, [X86_OP_JMP] = exec_ctrl, [X86_OP_CALL] = exec_ctrl, [X86_OP_RET] = exec_ctrl,
    [X86_OP_JMPF] = exec_ctrl, [X86_OP_CALLF] = exec_ctrl,
    [X86_OP_RETF] = exec_ctrl, [X86_OP_INT3] = exec_ctrl,
    [X86_OP_INT] = exec_ctrl, [X86_OP_INTO] = exec_ctrl, [X86_OP_INT1] = exec_ctrl, [X86_OP_IRET] = exec_ctrl,
    [X86_OP_LOOPNE] = exec_ctrl, [X86_OP_LOOPE] = exec_ctrl, [X86_OP_LOOP] = exec_ctrl,
    [X86_OP_JCXZ] = exec_ctrl, [X86_OP_HLT] = exec_ctrl,

    [X86_OP_MOVS] = exec_string, [X86_OP_CMPS] = exec_string, [X86_OP_STOS] = exec_string,
    [X86_OP_LODS] = exec_string, [X86_OP_SCAS] = exec_string, [X86_OP_INS] = exec_string,
    [X86_OP_OUTS] = exec_string,

    [X86_OP_IN] = exec_sys, [X86_OP_OUT] = exec_sys, [X86_OP_MOV_CR] = exec_sys, [X86_OP_MOV_DR] = exec_sys,
    [X86_OP_MOV_SEG] = exec_sys, [X86_OP_PUSH_SEG] = exec_sys, [X86_OP_POP_SEG] = exec_sys,
    [X86_OP_LES] = exec_sys, [X86_OP_LDS] = exec_sys, [X86_OP_LSS] = exec_sys, [X86_OP_LFS] = exec_sys,
    [X86_OP_LGS] = exec_sys, [X86_OP_SLDT] = exec_sys, [X86_OP_STR] = exec_sys, [X86_OP_LLDT] = exec_sys,
    [X86_OP_LTR] = exec_sys, [X86_OP_SGDT] = exec_sys, [X86_OP_SIDT] = exec_sys, [X86_OP_LGDT] = exec_sys,
    [X86_OP_LIDT] = exec_sys, [X86_OP_SMSW] = exec_sys, [X86_OP_LMSW] = exec_sys, [X86_OP_INVLPG] = exec_sys,
    [X86_OP_CLTS] = exec_sys, [X86_OP_INVD] = exec_sys, [X86_OP_WBINVD] = exec_sys, [X86_OP_WRMSR] = exec_sys,
    [X86_OP_RDMSR] = exec_sys, [X86_OP_RDTSC] = exec_sys,
    [X86_OP_RDTSCP] = exec_sys, [X86_OP_CPUID] = exec_sys,
    [X86_OP_CLFLUSH] = exec_sys, [X86_OP_CLFLUSHOPT] = exec_sys, [X86_OP_CLWB] = exec_sys,
    [X86_OP_LFENCE] = exec_sys, [X86_OP_MFENCE] = exec_sys, [X86_OP_SFENCE] = exec_sys,
    [X86_OP_SWAPGS] = exec_sys, [X86_OP_SYSCALL] = exec_sys, [X86_OP_SYSRET] = exec_sys,
    [X86_OP_SYSENTER] = exec_sys, [X86_OP_SYSEXIT] = exec_sys, [X86_OP_CLAC] = exec_sys,
    [X86_OP_STAC] = exec_sys, [X86_OP_LAR] = exec_sys, [X86_OP_LSL] = exec_sys, [X86_OP_VERR] = exec_sys,
    [X86_OP_VERW] = exec_sys, [X86_OP_XGETBV] = exec_sys, [X86_OP_RDPMC] = exec_sys,
    [X86_OP_RDFSBASE] = exec_sys, [X86_OP_RDGSBASE] = exec_sys, [X86_OP_WRFSBASE] = exec_sys,
    [X86_OP_WRGSBASE] = exec_sys, [X86_OP_RDPID] = exec_sys, [X86_OP_MONITOR] = exec_sys,
    [X86_OP_MWAIT] = exec_sys, [X86_OP_RSM] = exec_sys, [X86_OP_FXSAVE] = exec_sys,
    [X86_OP_FXRSTOR] = exec_sys, [X86_OP_LDMXCSR] = exec_sys, [X86_OP_STMXCSR] = exec_sys,
    [X86_OP_X87] = exec_x87, [X86_OP_SSE] = exec_sse, [X86_OP_EMMS] = exec_sys, [X86_OP_ARPL] = exec_sys,
    [X86_OP_BOUND] = exec_sys,
};
// clang-format on

/* Instructions that raise #UD on this CPU (features not advertised). */
static bool op_undefined(unsigned op)
{
    switch (op) {
    case X86_OP_AVX:
    case X86_OP_XABORT:
    case X86_OP_XBEGIN:
    case X86_OP_XSAVE:
    case X86_OP_XRSTOR:
    case X86_OP_XSAVEOPT:
    case X86_OP_CRC32:
    case X86_OP_ADCX:
    case X86_OP_ADOX:
    case X86_OP_RDRAND:
    case X86_OP_RDSEED:
    case X86_OP_INVALID:
        return true;
    default:
        return false;
    }
}

/* Runs an instruction through its area's handler. A faulting instruction leaves no trace in the flags: the
 * area handlers may record flags before a later step faults, so the flag state is restored here. The fields
 * are read one by one: the compiler would otherwise merge neighbours into one 16-byte load, which cannot be
 * forwarded from the previous instruction's two 8-byte flag stores and stalls (measured). */
static int exec_insn(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    unsigned op = x->in->op;
    uint64_t rflags = load_u64(&s->rflags), cc_dst = load_u64(&s->cc_dst);
    uint64_t cc_src = load_u64(&s->cc_src), cc_src2 = load_u64(&s->cc_src2);
    uint32_t cc_op = s->cc_op;
    int r;

    if (op < X86_OP_COUNT && exec_areas[op])
        r = exec_areas[op](x);
    else if (op_undefined(op))
        r = x_fault(x, EMU_EXC_UD, 0);
    else
        r = x_unimplemented(x);
    if (r == XR_FAULT) {
        s->rflags = rflags;
        s->cc_op = cc_op;
        s->cc_dst = cc_dst;
        s->cc_src = cc_src;
        s->cc_src2 = cc_src2;
    }
    return r;
}

/* ---- fetch ---- */

static enum x86_mode code_mode(const struct emu_state *s)
{
    if (emu_code64(s))
        return X86_MODE_64;
    if (!(s->rflags & EMU_FLAG_VM) && (s->seg[EMU_CS].attr & EMU_SEG_DB))
        return X86_MODE_32;
    return X86_MODE_16;
}

/* The linear address of RIP after the CS checks. */
static int fetch_linear(struct exec_ctx *x, uint64_t *lin)
{
    const struct emu_state *s = x->s;
    if (x->mode == X86_MODE_64) {
        if (!emu_canonical(s->rip))
            return x_fault(x, EMU_EXC_GP, 0);
        *lin = s->rip;
        return XR_OK;
    }
    if (s->rip > s->seg[EMU_CS].limit)
        return x_fault(x, EMU_EXC_GP, 0);
    *lin = (uint32_t)(s->seg[EMU_CS].base + s->rip);
    return XR_OK;
}

/* RIP after an instruction of len bytes at rip, wrapped to the code size (the block path checked the CS
 * limit for the whole block). */
static inline uint64_t rip_after(enum x86_mode mode, uint64_t rip, unsigned len)
{
    uint64_t next = rip + len;
    if (mode != X86_MODE_64)
        next &= mode == X86_MODE_32 ? 0xffffffffull : 0xffffull;
    return next;
}

/* Decodes one instruction outside a block, into x->slow_in: code in MMIO, an instruction that crosses a page,
 * or one the decoder rejects (the fault is raised here). */
static int fetch_decode_slow(struct exec_ctx *x)
{
    struct emu_state *s = x->s;
    uint8_t buf[16];
    struct emu_fetch fe;
    struct emu_fault f;
    uint64_t lin;
    int r;

    x->rip = s->rip;
    x->in = &x->slow_in;
    x->mode = code_mode(s); /* block_at sets it too, but tracing and debugging do not call it */
    if ((r = fetch_linear(x, &lin)))
        return r;
    if (!emu_mem_fetch(x->mmu, lin, &fe, &f))
        return x_fault_from(x, &f);
    unsigned avail = fe.avail > X86_MAX_INSN_LEN ? X86_MAX_INSN_LEN : fe.avail;
    if (fe.host)
        memcpy(buf, fe.host, avail);
    else if (!emu_mem_fetch_copy(x->mmu, lin, buf, avail, &f))
        return x_fault_from(x, &f);
    r = x86_decode(buf, avail, x->mode, &x->slow_in);
    if (r == X86_DECODE_NEED_MORE && avail < X86_MAX_INSN_LEN) {
        /* The instruction crosses into the next page: a fault there is the instruction's own. */
        uint64_t next = lin + avail;
        if (x->mode != X86_MODE_64)
            next = (uint32_t)next;
        if (!emu_mem_fetch_copy(x->mmu, next, buf + avail, X86_MAX_INSN_LEN - avail, &f))
            return x_fault_from(x, &f);
        r = x86_decode(buf, X86_MAX_INSN_LEN, x->mode, &x->slow_in);
    }
    if (r == X86_DECODE_UD || r == X86_DECODE_NEED_MORE)
        return x_fault(x, EMU_EXC_UD, 0);
    if (r == X86_DECODE_TOO_LONG)
        return x_fault(x, EMU_EXC_GP, 0);
    if (x->mode != X86_MODE_64 && s->rip + (unsigned)r - 1 > s->seg[EMU_CS].limit)
        return x_fault(x, EMU_EXC_GP, 0);
    x->next_rip = rip_after(x->mode, s->rip, (unsigned)r);
    return XR_OK;
}

/* ---- decoded blocks ----
 * A block is a run of decoded instructions within one 4 KiB page that ends at the first instruction that
 * changes control flow (a conditional branch with a fast handler only leaves it when taken), may resume
 * itself (REP string instructions), changes the CPU mode, paging or the interrupt flag, or opens an interrupt
 * shadow; events are checked between blocks. Blocks are looked up by the host address of their first byte and
 * the code mode, and validated against a copy of their bytes, so code that changes (self-modifying code,
 * another vCPU patching the kernel, device DMA, a page reused) simply misses and is decoded again: nothing
 * needs to be invalidated. A store into the block that is running takes effect when the block is entered
 * next. Blocks live in an arena that is emptied when it fills; one cache per host thread (each vCPU thread
 * has its own). */
#define BLOCK_MAX_INSNS 32
#define BLOCK_MAX_BYTES 256
#define BLOCK_HASH_BITS 17
#define BLOCK_HASH_SIZE (1u << BLOCK_HASH_BITS)
#define BLOCK_ARENA_BYTES (64u << 20)

struct block {
    const uint8_t *host; /* the first instruction byte */
    uint8_t mode;        /* enum x86_mode */
    uint8_t ninsns;
    uint16_t nbytes;
    uint32_t insns_offset; /* of insns[0] from the start of the block */
    /* The blocks that followed this one last time, by how it ended (0: a taken branch, 1: anything else), so
     * the next lookup usually skips the hash table. Blocks only point to blocks of the same arena fill. */
    struct block *succ[2];
    const uint8_t *succ_host[2]; /* their first instruction bytes, to prefetch without touching them */
    /* With code tracking (cpu->code_tracking): the generation word of the block's RAM page and the value it
     * had when the bytes were last known to match; while it still has that value the bytes need no compare.
     * NULL: compare on every entry. */
    const uint32_t *gen_ptr;
    uint32_t gen;
    uint64_t phys; /* the guest-physical page */
    /* A copy of the nbytes instruction bytes, next to the header so the check on entry touches few cache
     * lines, then the instructions (8-byte aligned). */
    uint8_t bytes[];
};

static inline const struct block_insn *block_insns(const struct block *b)
{
    return (const struct block_insn *)((const uint8_t *)b + b->insns_offset);
}

struct block_cache {
    struct block *hash[BLOCK_HASH_SIZE];
    uint8_t *arena;
    size_t used;
    uint32_t gen;   /* bumped when the arena is emptied */
    uint64_t owner; /* the MMU context (emu_mmu.id) the blocks were decoded for */
};

/* Empties the cache (blocks of another memory context, or a full arena). */
static void block_cache_reset(struct block_cache *bc)
{
    memset(bc->hash, 0, sizeof(bc->hash));
    bc->used = 0;
    bc->gen++;
}

static void block_cache_free(gpointer p)
{
    struct block_cache *bc = p;
    g_free(bc->arena);
    g_free(bc);
}

static GPrivate block_cache_key = G_PRIVATE_INIT(block_cache_free);

static struct block_cache *block_cache_get(void)
{
    struct block_cache *bc = g_private_get(&block_cache_key);
    if (!bc) {
        bc = g_new0(struct block_cache, 1);
        bc->arena = g_malloc(BLOCK_ARENA_BYTES);
        g_private_set(&block_cache_key, bc);
    }
    return bc;
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Whether the block's copy still equals the guest's bytes: 16 bytes at a time without early exits (a
 * superblock is compared whole on every entry), the tail overlapping. */
static inline bool block_bytes_match(const struct block *b, const uint8_t *host)
{
    const uint8_t *c = b->bytes;
    unsigned n = b->nbytes;
#ifdef __SSE2__
    if (n >= 16) {
        __m128i diff = _mm_setzero_si128();
        unsigned i = 0;
        for (; i + 16 <= n; i += 16)
            diff =
                _mm_or_si128(diff, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(c + i)),
                                                 _mm_loadu_si128((const __m128i *)(const void *)(host + i))));
        if (i < n)
            diff = _mm_or_si128(
                diff, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(c + n - 16)),
                                    _mm_loadu_si128((const __m128i *)(const void *)(host + n - 16))));
        return _mm_movemask_epi8(_mm_cmpeq_epi8(diff, _mm_setzero_si128())) == 0xffff;
    }
#endif
    if (n < 8) {
        /* Whole words when the guest page has room (the copy always does): the bytes past n are masked. */
        if (((uintptr_t)host & 0xfff) <= 4096 - 8)
            return ((load64(c) ^ load64(host)) & (~0ull >> (64 - 8 * n))) == 0;
        return memcmp(c, host, n) == 0;
    }
    uint64_t diff = 0;
    for (unsigned i = 0; i + 8 <= n; i += 8)
        diff |= load64(c + i) ^ load64(host + i);
    return (diff | (load64(c + n - 8) ^ load64(host + n - 8))) == 0;
}

static inline unsigned block_hash(const uint8_t *host, unsigned mode)
{
    uintptr_t h = (uintptr_t)host;
    return (unsigned)(h ^ (h >> BLOCK_HASH_BITS) ^ mode) & (BLOCK_HASH_SIZE - 1);
}

static bool op_ends_block(const struct block_insn *bi)
{
    const struct x86_insn *in = &bi->in;
    if (exec_fast_is_cond_branch(bi->fn))
        return false; /* a superblock: it goes on along the fall-through path */
    exec_area_fn *area = exec_areas[in->op];
    if (area == exec_ctrl || area == exec_sys || !area)
        return true;
    if (area == exec_string)
        return (in->prefixes & (X86_PFX_REP | X86_PFX_REPNE)) != 0;
    return in->op == X86_OP_STI || in->op == X86_OP_POPF || in->op == X86_OP_PAUSE;
}

/* The RIP of a block instruction. */
static inline uint64_t insn_rip(const struct exec_ctx *x, const struct block_insn *bi)
{
    return rip_after(x->mode, x->block_rip, bi->offset);
}

/* The handler of every block instruction without a fast one: the area handler, then on to the next
 * instruction (any code size). */
int exec_block_generic(struct exec_ctx *x, const struct block_insn *bi)
{
    x->in = &bi->in;
    x->rip = insn_rip(x, bi);
    int r = exec_insn(x);
    if (r != XR_OK)
        return x_stop(x, bi, r);
    if (++bi == x->end)
        return XR_OK;
    x->next_rip = rip_after(x->mode, x->next_rip, bi->in.len);
    return bi->fn(x, bi);
}

static struct block *block_build(struct block_cache *bc, unsigned slot, const uint8_t *host, unsigned avail,
                                 enum x86_mode mode, const uint32_t *gen_ptr, uint32_t gen, uint64_t phys)
{
    struct block_insn insns[BLOCK_MAX_INSNS];
    unsigned n = 0, off = 0;
    while (n < BLOCK_MAX_INSNS && off < avail) {
        struct block_insn *bi = &insns[n];
        unsigned left = avail - off;
        int len = x86_decode(host + off, left > X86_MAX_INSN_LEN ? X86_MAX_INSN_LEN : left, mode, &bi->in);
        if (len < 0 || off + (unsigned)len > BLOCK_MAX_BYTES)
            break; /* a page crossing or a decode error: the slow path handles that instruction */
        bi->offset = (uint16_t)off;
        bi->fn = mode == X86_MODE_64 ? exec_fast_handler(bi, mode) : NULL;
        if (!bi->fn)
            bi->fn = exec_block_generic;
        n++;
        off += (unsigned)len;
        if (op_ends_block(bi))
            break;
    }
    if (n == 0)
        return NULL;
    if (mode == X86_MODE_64)
        exec_fast_fuse(insns, n);

    size_t insns_offset = (sizeof(struct block) + off + 7) & ~(size_t)7;
    size_t size = (insns_offset + n * sizeof(struct block_insn) + 15) & ~(size_t)15;
    if (bc->used + size > BLOCK_ARENA_BYTES)
        block_cache_reset(bc);
    struct block *b = (struct block *)(bc->arena + bc->used);
    b->host = host;
    b->mode = (uint8_t)mode;
    b->ninsns = (uint8_t)n;
    b->nbytes = (uint16_t)off;
    b->insns_offset = (uint32_t)insns_offset;
    b->succ[0] = b->succ[1] = NULL;
    b->succ_host[0] = b->succ_host[1] = NULL;
    b->gen_ptr = gen_ptr;
    b->gen = gen;
    b->phys = phys;
    memcpy(b->bytes, host, off);
    memcpy((uint8_t *)b + insns_offset, insns, n * sizeof(struct block_insn));
    bc->used += size;
    bc->hash[slot] = b;
    return b;
}

/* Whether block b (found for host in the same mode) still holds the guest's instructions. */
static inline bool block_valid(struct exec_ctx *x, struct block *b, const uint8_t *host)
{
    if (!b->gen_ptr)
        return block_bytes_match(b, host);
    uint32_t g = __atomic_load_n(b->gen_ptr, __ATOMIC_ACQUIRE);
    if (__builtin_expect(g == b->gen, 1))
        return true;
    /* The page was written since: compare, and trust the new generation if the page is still marked (a
     * write to it now bumps the generation again) and nothing bumped it while the bytes were compared. */
    if (!block_bytes_match(b, host))
        return false;
    if (emu_code_page_marked(x->mmu, b->phys) && __atomic_load_n(b->gen_ptr, __ATOMIC_SEQ_CST) == g)
        b->gen = g;
    return true;
}

/* Decodes a new block. With code tracking the page is marked first (its fast TLB write entries go slow, and
 * every later write bumps its generation), then the generation is read, then the bytes. */
static struct block *block_new(struct exec_ctx *x, unsigned slot, const uint8_t *host, unsigned avail,
                               uint64_t phys)
{
    const uint32_t *gen_ptr = NULL;
    uint32_t gen = 0;
    if (x->cpu->code_tracking && emu_code_page_mark(x->mmu, phys)) {
        gen_ptr = emu_code_page_gen(x->mmu, phys);
        if (gen_ptr)
            gen = __atomic_load_n(gen_ptr, __ATOMIC_SEQ_CST);
    }
    return block_build(x->blocks, slot, host, avail, x->mode, gen_ptr, gen, phys & EMU_PAGE_MASK);
}

/* The block at RIP, or NULL for the slow path (which also raises fetch faults). prev/prev_exit: the block
 * that ran just before and how it ended, whose successor link is tried before the hash table. */
static struct block *block_at(struct exec_ctx *x, struct block *prev, unsigned prev_exit)
{
    const struct emu_state *s = x->s;
    struct block_cache *bc = x->blocks;
    uint64_t lin, phys;
    const uint8_t *host;
    unsigned avail;

    x->mode = code_mode(s);
    if (fetch_linear(x, &lin))
        return NULL;
    x->mmu_idx = (uint8_t)emu_mmu_index(s, 0);
    const struct emu_tlb_entry *te = &x->mmu->tlb.e[x->mmu_idx][(lin >> 12) & (EMU_TLB_SIZE - 1)];
    if (__builtin_expect(te->tag_exec == (lin & EMU_PAGE_MASK), 1)) {
        host = (const uint8_t *)(uintptr_t)(lin + te->addend);
        phys = te->phys_page;
    } else {
        struct emu_fetch fe;
        struct emu_fault f;
        if (!emu_mem_fetch(x->mmu, lin, &fe, &f) || !fe.host)
            return NULL;
        host = fe.host;
        phys = fe.phys & EMU_PAGE_MASK;
    }
    avail = 4096 - (unsigned)(lin & 0xfff);
    struct block *b = prev ? prev->succ[prev_exit] : NULL;
    if (!b || b->host != host || b->mode != x->mode || !block_valid(x, b, host)) {
        unsigned slot = block_hash(host, x->mode);
        b = bc->hash[slot];
        if (!b || b->host != host || b->mode != x->mode || !block_valid(x, b, host)) {
            uint32_t gen = bc->gen;
            b = block_new(x, slot, host, avail, phys);
            if (!b)
                return NULL;
            if (bc->gen != gen) /* the arena was emptied: prev is gone */
                prev = NULL;
        }
        if (prev) {
            prev->succ[prev_exit] = b;
            prev->succ_host[prev_exit] = host;
        }
    }
    /* Both ways out of this block will soon want their successor's header and instruction bytes. */
    for (unsigned k = 0; k < 2; k++) {
        if (b->succ[k]) {
            __builtin_prefetch(b->succ[k]);
            __builtin_prefetch(b->succ_host[k]);
        }
    }
    if (x->mode != X86_MODE_64) {
        /* The whole block inside the CS limit and without a wrap of IP/EIP; else one by one. */
        uint64_t last = s->rip + b->nbytes - 1;
        uint64_t top = x->mode == X86_MODE_32 ? 0xffffffffull : 0xffffull;
        if (last > s->seg[EMU_CS].limit || last > top)
            return NULL;
    }
    return b;
}

/* ---- events ---- */

static bool deliver(struct exec_ctx *x, unsigned vector, enum emu_event_kind kind, uint32_t error_code,
                    unsigned insn_len)
{
    emu_flags_materialize(x->s);
    return emu_deliver_event(x->s, &x->sysmem, vector, kind, error_code, insn_len, NULL) ==
           EMU_EVENT_DELIVERED;
}

static bool deliver_fault(struct exec_ctx *x)
{
    struct emu_fault f = {.cr2 = x->cr2, .error_code = x->error_code, .vector = x->vector};
    emu_flags_materialize(x->s);
    return emu_deliver_fault(x->s, &x->sysmem, &f, NULL) == EMU_EVENT_DELIVERED;
}

/* Takes a pending NMI, INIT/SIPI or external interrupt if the CPU can accept one now. Returns false on a
 * triple fault. While interrupts are masked (IF=0 or a shadow) the hint is parked in *deferred instead of
 * being polled on every instruction; the run loop re-arms it once IF=1. */
static bool check_events(struct emu_cpu *cpu, struct exec_ctx *x, bool *deferred)
{
    struct emu_state *s = &cpu->s;
    bool shadow = s->irq_shadow_rip != 0 && s->irq_shadow_rip == s->rip;

    if (shadow) {
        __atomic_store_n(&cpu->interrupt_hint, 0, __ATOMIC_RELEASE);
        *deferred = true;
        return true;
    }
    s->irq_shadow_rip = 0;
    __atomic_store_n(&cpu->interrupt_hint, 0, __ATOMIC_RELEASE);
    emu_cpu_handle_init_sipi(cpu);
    if (s->wait_for_sipi) {
        *deferred = true;
        return true;
    }
    if (!s->nmi_blocked && emu_cpu_take_nmi(cpu)) {
        s->halted = false;
        /* An interrupt may be pending as well. */
        __atomic_store_n(&cpu->interrupt_hint, 1, __ATOMIC_RELEASE);
        return deliver(x, EMU_EXC_NMI, EMU_EVENT_NMI, 0, 0);
    }
    if (!(s->rflags & EMU_FLAG_IF)) {
        *deferred = true;
        return true;
    }
    int vector = emu_cpu_acknowledge_interrupt(cpu);
    if (__builtin_expect(emu_trace_level >= 1, 0) && vector >= 0)
        log_message(LOG_LEVEL_INFO, "emu cpu%u: interrupt vector %d at %04x:%016llx", cpu->index, vector,
                    s->seg[EMU_CS].selector, (unsigned long long)s->rip);
    if (vector < 0)
        return true;
    /* More may be pending behind this one: look again after the handler's first instruction. */
    __atomic_store_n(&cpu->interrupt_hint, 1, __ATOMIC_RELEASE);
    s->halted = false;
    return deliver(x, (unsigned)vector & 0xff, EMU_EVENT_EXTINT, 0, 0);
}

/* What follows an instruction that did not simply retire: a software interrupt, HLT, an exception or an
 * error. s->rip is the instruction's own address. Returns a status to return, or -1 to go on. */
static int finish_insn(struct emu_cpu *cpu, struct exec_ctx *x, int r)
{
    static const uint8_t kinds[4] = {EMU_EVENT_SOFT_INT, EMU_EVENT_INT3, EMU_EVENT_INTO, EMU_EVENT_INT1};
    struct emu_state *s = &cpu->s;

    switch (r) {
    case XR_SOFTINT: {
        unsigned op = x->in->op;
        unsigned k = op == X86_OP_INT ? 0 : op == X86_OP_INT3 ? 1 : op == X86_OP_INTO ? 2 : 3;
        s->rip = x->next_rip;
        cpu->icount++;
        s->irq_shadow_rip = 0;
        if (!deliver(x, x->vector, kinds[k], 0, x->in->len))
            return EMU_EXEC_TRIPLE_FAULT;
        return -1;
    }
    case XR_HALT:
        s->rip = x->next_rip;
        cpu->icount++;
        s->halted = true;
        s->irq_shadow_rip = x->shadow ? s->rip : 0;
        return EMU_EXEC_HALT;
    case XR_FAULT:
        s->rip = x->rip;
        if (__builtin_expect(emu_trace_level >= 1, 0))
            log_message(LOG_LEVEL_INFO,
                        "emu cpu%u: exception %u, error code 0x%x, at %04x:%016llx, cr2 0x%llx", cpu->index,
                        x->vector, x->error_code, s->seg[EMU_CS].selector, (unsigned long long)x->rip,
                        (unsigned long long)x->cr2);
        if (!deliver_fault(x))
            return EMU_EXEC_TRIPLE_FAULT;
        return -1;
    default:
        s->rip = x->rip;
        return EMU_EXEC_ERROR;
    }
}

/* The interrupt shadow after the last instruction retired at s->rip. */
static inline void retire_shadow(struct emu_state *s, const struct exec_ctx *x)
{
    if (x->shadow)
        s->irq_shadow_rip = s->rip;
    else if (s->irq_shadow_rip)
        s->irq_shadow_rip = 0;
}

/* ---- the debugger's hook (gdbstub, cpu->debug_*) ----
 * With debug_active, before each instruction (after event delivery): whether to stop with EMU_EXEC_DEBUG, at
 * a breakpoint at RIP or once a single step has run. */
static bool debug_stop(struct emu_cpu *cpu)
{
    uint64_t rip = cpu->s.rip;
    if (cpu->debug_stepped) {
        cpu->debug_stepped = false;
        return true;
    }
    bool skip = cpu->debug_skip && rip == cpu->debug_skip_rip;
    cpu->debug_skip = false;
    if (!skip) {
        for (unsigned i = 0; i < cpu->debug_nbp; i++) {
            if (cpu->debug_bp[i] == rip)
                return true;
        }
    }
    /* This instruction runs now; after a single step the next boundary stops. */
    cpu->debug_stepped = cpu->debug_step;
    return false;
}

static enum emu_exec_status run_loop(struct emu_cpu *cpu, uint64_t max_insns, bool *deferred)
{
    struct emu_state *s = &cpu->s;
    struct exec_ctx x = {
        .cpu = cpu,
        .s = s,
        .mmu = &cpu->mmu,
        .sysmem = {sys_read, sys_write, &cpu->mmu},
        .blocks = block_cache_get(),
    };
    if (x.blocks->owner != cpu->mmu.id) { /* this thread ran another CPU before (unit tests) */
        block_cache_reset(x.blocks);
        x.blocks->owner = cpu->mmu.id;
    }
    struct block *prev = NULL; /* the block that ran last, if the next one follows it directly */
    unsigned prev_exit = 0;
    uint64_t n = 0;
    int r;

    while (n < max_insns) {
        if (__atomic_load_n(&cpu->exit_request, __ATOMIC_ACQUIRE))
            return EMU_EXEC_EXIT_REQUEST;
        if (*deferred && (s->rflags & EMU_FLAG_IF) && s->irq_shadow_rip != s->rip) {
            *deferred = false;
            __atomic_store_n(&cpu->interrupt_hint, 1, __ATOMIC_RELEASE);
        }
        /* (A debugger's single step runs with interrupts held back: they wait for the next continue.) */
        if (__atomic_load_n(&cpu->interrupt_hint, __ATOMIC_ACQUIRE) && !cpu->debug_step) {
            prev = NULL;
            if (!check_events(cpu, &x, deferred))
                return EMU_EXEC_TRIPLE_FAULT;
        }
        if (s->halted || s->wait_for_sipi)
            return EMU_EXEC_HALT;
        /* The debugger's hook (gdbstub): with debugging on, instructions run one by one on the slow path. */
        if (__builtin_expect(cpu->debug_active, 0) && debug_stop(cpu))
            return EMU_EXEC_DEBUG;
        x.shadow = false;

        bool blocks = __builtin_expect(emu_trace_level < 2 && !cpu->debug_active, 1);
        struct block *b = blocks ? block_at(&x, prev, prev_exit) : NULL;
        prev = NULL;
        if (!b) {
            /* One instruction on its own. */
            r = fetch_decode_slow(&x);
            if (__builtin_expect(emu_trace_level >= 2, 0) && r == XR_OK)
                log_message(LOG_LEVEL_INFO, "emu cpu%u: %04x:%016llx %s (%u bytes)", cpu->index,
                            s->seg[EMU_CS].selector, (unsigned long long)x.rip, x86_op_name(x.in->op),
                            x.in->len);
            if (r == XR_OK) {
                while ((r = exec_insn(&x)) == XR_RETRY)
                    ;
            }
            n++;
            if (r == XR_OK) {
                s->rip = x.next_rip;
                cpu->icount++;
                retire_shadow(s, &x);
                continue;
            }
            if ((r = finish_insn(cpu, &x, r)) >= 0)
                return (enum emu_exec_status)r;
            continue;
        }

        const struct block_insn *insns = block_insns(b), *start = insns;
        unsigned count = b->ninsns, retired;
        if (count > max_insns - n)
            count = (unsigned)(max_insns - n);
        if (s->irq_shadow_rip) /* in a shadow: interrupts are looked at again after one instruction */
            count = 1;
        x.end = insns + count;
        x.block_rip = s->rip;
        for (;;) {
            x.next_rip = rip_after(x.mode, insn_rip(&x, start), start->in.len);
            r = start->fn(&x, start);
            if (__builtin_expect(r != XR_RETRY, 1))
                break;
            start = x.bi; /* a locked operation lost a race: go on from it */
        }
        if (__builtin_expect(r == XR_OK, 1)) {
            retired = count;
            s->rip = x.next_rip;
            prev = b;
            prev_exit = 1;
        } else if (r == XR_TAKEN) { /* a taken conditional branch ended the block */
            retired = (unsigned)(x.bi - insns) + 1;
            s->rip = x.next_rip;
            r = XR_OK;
            prev = b;
            prev_exit = 0;
        } else {
            retired = (unsigned)(x.bi - insns);
            x.in = &x.bi->in;
            x.rip = insn_rip(&x, x.bi);
            s->rip = x.rip;
        }
        cpu->icount += retired;
        n += retired;
        if (r == XR_OK) {
            retire_shadow(s, &x);
            continue;
        }
        n++;
        if ((r = finish_insn(cpu, &x, r)) >= 0)
            return (enum emu_exec_status)r;
    }
    return EMU_EXEC_BUDGET;
}

enum emu_exec_status emu_exec(struct emu_cpu *cpu, uint64_t max_insns)
{
    bool deferred = false;
    enum emu_exec_status st = run_loop(cpu, max_insns, &deferred);
    /* A masked interrupt stays pending for the next call (and for the backend's HLT wakeup check). */
    if (deferred)
        __atomic_store_n(&cpu->interrupt_hint, 1, __ATOMIC_RELEASE);
    return st;
}
