/* Internals of the emu instruction interpreter shared by exec_loop.c (loop, fetch, decoded blocks, events),
 * exec.c (memory, operands, stack) and the per-area files exec_int.c, exec_ctrl.c, exec_string.c, exec_sys.c,
 * exec_sse.c and exec_x87.c. Not for use outside the emu. */
#ifndef DESKVM_EMU_EXEC_H
#define DESKVM_EMU_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "emu/alu.h"
#include "emu/cpu.h"
#include "emu/decode.h"
#include "emu/flags.h"
#include "emu/segment.h"

/* Results of instruction handlers and memory helpers. */
enum exec_result {
    XR_OK,      /* retired; RIP goes to x->next_rip */
    XR_FAULT,   /* raise x->vector (error code, CR2 in x); nothing of the instruction is committed */
    XR_HALT,    /* HLT retired */
    XR_ERROR,   /* not implemented: logged, the run stops */
    XR_RETRY,   /* a locked compare-exchange lost a race: re-run the read-modify-write */
    XR_SOFTINT, /* INT n / INT3 / INTO / INT1 retired: deliver x->vector as a software event */
    XR_TAKEN,   /* fast conditional branches: retired and taken, RIP goes to x->next_rip, the block ends */
};

struct block_cache;

/* An operand named by the ModRM r/m field: a register or an effective address. */
struct x_op {
    bool mem;
    uint8_t reg;
    uint8_t seg;
    uint64_t off; /* offset in seg, already wrapped to the address size */
    void *host;   /* RMW: host pointer when the operand is plain RAM in one page (locked ops use it) */
};

struct exec_ctx {
    struct emu_cpu *cpu;
    struct emu_state *s;
    struct emu_mmu *mmu;
    struct emu_sys_mem sysmem;
    const struct x86_insn *in; /* the instruction being executed */
    enum x86_mode mode;
    uint64_t rip;      /* this instruction */
    uint64_t next_rip; /* the next one, wrapped to the code size */
    /* The exception to raise on XR_FAULT / the vector of XR_SOFTINT. */
    uint8_t vector;
    uint32_t error_code;
    uint64_t cr2;
    bool shadow;     /* the instruction opened an interrupt shadow (STI, MOV SS, POP SS) */
    uint8_t mmu_idx; /* blocks: the MMU index of explicit accesses (CPL and EFLAGS.AC change at block ends) */
    /* The block being run: where it stopped (x_stop), its end, and the RIP of its first instruction. */
    const struct block_insn *bi, *end;
    uint64_t block_rip;
    struct block_cache *blocks; /* exec_loop.c's decoded blocks of this thread */
    struct x86_insn slow_in;    /* an instruction decoded outside a block */
};

/* ---- exec.c: faults, registers, memory ---- */

static inline int x_fault(struct exec_ctx *x, unsigned vector, uint32_t error_code)
{
    x->vector = (uint8_t)vector;
    x->error_code = error_code;
    x->cr2 = 0;
    return XR_FAULT;
}

/* Converts a fault reported by the MMU or the segment module. */
static inline int x_fault_from(struct exec_ctx *x, const struct emu_fault *f)
{
    x->vector = f->vector;
    x->error_code = f->error_code;
    x->cr2 = f->cr2;
    return XR_FAULT;
}

static inline unsigned x_cpl(const struct exec_ctx *x)
{
    return emu_cpl(x->s);
}

static inline bool x_protected(const struct exec_ctx *x)
{
    return (x->s->cr0 & EMU_CR0_PE) && !(x->s->rflags & EMU_FLAG_VM);
}

static inline unsigned x_iopl(const struct exec_ctx *x)
{
    return (unsigned)(x->s->rflags >> 12) & 3;
}

/* Register access by operand size; byte registers 4-7 are AH..BH without REX (high_byte: the instruction had
 * no REX prefix, X86_INSN_HIGH_BYTE). */
static inline uint64_t x_reg_read(const uint64_t *regs, bool high_byte, unsigned r, unsigned size)
{
    if (size == 1) {
        if (r >= 4 && r < 8 && high_byte)
            return (regs[r - 4] >> 8) & 0xff;
        return regs[r] & 0xff;
    }
    return regs[r] & emu_size_mask(size);
}

static inline void x_reg_write(uint64_t *regs, bool high_byte, unsigned r, unsigned size, uint64_t v)
{
    uint64_t *p = &regs[r];
    switch (size) {
    case 1:
        if (r >= 4 && r < 8 && high_byte) {
            p = &regs[r - 4];
            *p = (*p & ~0xff00ull) | (v & 0xff) << 8;
        } else {
            *p = (*p & ~0xffull) | (v & 0xff);
        }
        break;
    case 2:
        *p = (*p & ~0xffffull) | (v & 0xffff);
        break;
    case 4:
        *p = (uint32_t)v;
        break;
    default:
        *p = v;
        break;
    }
}

static inline uint64_t x_get_reg(const struct exec_ctx *x, unsigned r, unsigned size)
{
    return x_reg_read(x->s->regs, x->in->flags & X86_INSN_HIGH_BYTE, r, size);
}

static inline void x_set_reg(struct exec_ctx *x, unsigned r, unsigned size, uint64_t v)
{
    x_reg_write(x->s->regs, x->in->flags & X86_INSN_HIGH_BYTE, r, size, v);
}

/* Loads and stores of 1, 2, 4 or 8 bytes with constant-size copies (single moves). */
static inline uint64_t x_load_n(const void *p, unsigned size)
{
    switch (size) {
    case 1:
        return *(const uint8_t *)p;
    case 2: {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    default: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    }
}

static inline void x_store_n(void *p, unsigned size, uint64_t v)
{
    switch (size) {
    case 1:
        *(uint8_t *)p = (uint8_t)v;
        break;
    case 2:
        memcpy(p, &(uint16_t){(uint16_t)v}, 2);
        break;
    case 4:
        memcpy(p, &(uint32_t){(uint32_t)v}, 4);
        break;
    default:
        memcpy(p, &v, 8);
        break;
    }
}

/* ADD OR ADC SBB AND SUB XOR, and CMP/TEST, which only record flags (the first operand comes back). */
static inline uint64_t x_alu_binary(struct emu_state *s, unsigned op, unsigned size, uint64_t a, uint64_t b)
{
    switch (op) {
    case X86_OP_ADD:
        return emu_alu_add(s, size, a, b);
    case X86_OP_OR:
        return emu_alu_or(s, size, a, b);
    case X86_OP_ADC:
        return emu_alu_adc(s, size, a, b);
    case X86_OP_SBB:
        return emu_alu_sbb(s, size, a, b);
    case X86_OP_AND:
        return emu_alu_and(s, size, a, b);
    case X86_OP_SUB:
        return emu_alu_sub(s, size, a, b);
    case X86_OP_XOR:
        return emu_alu_xor(s, size, a, b);
    case X86_OP_CMP:
        emu_alu_cmp(s, size, a, b);
        return a;
    default: /* TEST */
        emu_alu_test(s, size, a, b);
        return a;
    }
}

/* Address-size register access (string ops, LOOP, JCXZ). */
static inline uint64_t x_addr_mask(const struct exec_ctx *x)
{
    return emu_size_mask(x->in->addrsize);
}

/* The base a segment adds to offsets in the current mode (in 64-bit mode only FS and GS have one). */
static inline uint64_t x_seg_base(const struct exec_ctx *x, unsigned seg)
{
    if (x->mode == X86_MODE_64 && seg < EMU_FS)
        return 0;
    return x->s->seg[seg].base;
}

/* The effective address of the instruction's memory operand (offset in its segment). */
uint64_t x_ea(const struct exec_ctx *x);
/* The r/m operand of the instruction. */
void x_op_rm(struct exec_ctx *x, struct x_op *op);

/* Segmented accesses: offset → linear with the segment, limit and canonical checks, then the MMU. size 1-8
 * for the value forms; the buffer forms take up to 16 bytes. */
int x_read(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, uint64_t *v);
int x_write(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, uint64_t v);
int x_read_buf(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, void *buf);
int x_write_buf(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, const void *buf);
/* The linear address of [off, off+size) in seg after the segment checks; write selects the write checks. */
int x_linear(struct exec_ctx *x, unsigned seg, uint64_t off, unsigned size, bool write, uint64_t *lin);
/* Linear accesses (no segmentation). */
int x_read_lin(struct exec_ctx *x, uint64_t lin, unsigned size, unsigned access, void *buf);
int x_write_lin(struct exec_ctx *x, uint64_t lin, unsigned size, unsigned access, const void *buf);

/* Operand reads and writes (register or memory). x_op_read_rmw is the read of a read-modify-write: a
 * read-only page faults as a write, and op->host is set when the operand is RAM so x_op_write_rmw can
 * complete a LOCKed operation with a host compare-exchange (XR_RETRY when another CPU changed the value:
 * re-run). */
int x_op_read(struct exec_ctx *x, const struct x_op *op, unsigned size, uint64_t *v);
int x_op_write(struct exec_ctx *x, const struct x_op *op, unsigned size, uint64_t v);
int x_op_read_rmw(struct exec_ctx *x, struct x_op *op, unsigned size, uint64_t *v);
int x_op_write_rmw(struct exec_ctx *x, const struct x_op *op, unsigned size, uint64_t old, uint64_t v);

/* Stack: the stack width (2, 4, 8), push/pop of size bytes; the pushes and pops here commit RSP only on
 * success. x_pop_peek reads at RSP + offset without moving RSP. */
unsigned x_stack_width(const struct exec_ctx *x);
int x_push(struct exec_ctx *x, unsigned size, uint64_t v);
int x_pop(struct exec_ctx *x, unsigned size, uint64_t *v);
int x_stack_read(struct exec_ctx *x, uint64_t sp_offset, unsigned size, uint64_t *v);
int x_stack_write(struct exec_ctx *x, uint64_t sp_offset, unsigned size, uint64_t v);
void x_set_sp(struct exec_ctx *x, uint64_t sp);

/* A near branch target: wrapped to the operand size, canonical (64-bit) or within the CS limit. */
int x_branch(struct exec_ctx *x, uint64_t target, unsigned opsize);

/* ---- decoded blocks (exec_loop.c) and their fast handlers (exec_fast.c) ---- */

struct block_insn;

/* A block instruction's handler. Handlers run the block as threaded code: on success each one goes on with
 * the next instruction itself (x_next64/x_next), so the loop only sees the end of the block; a handler that
 * stops for any other reason records where (x_stop). */
typedef int block_fn(struct exec_ctx *x, const struct block_insn *bi);

/* One instruction of a decoded block: its handler and the operands the fast handlers want ready. */
struct block_insn {
    block_fn *fn;
    struct x86_insn in;
    uint8_t dst, src; /* register operands as destination and source, whatever the encoding's direction */
    uint16_t offset;  /* from the first instruction of the block */
};

/* A specialised handler for the instruction in 64-bit code if there is one (it may fill in dst/src), else
 * NULL. Fast handlers leave the flags untouched when they fault. */
block_fn *exec_fast_handler(struct block_insn *bi, enum x86_mode mode);
/* Whether fn is a conditional branch that returns XR_TAKEN when taken and goes on otherwise, so a block may
 * go on past it. */
bool exec_fast_is_cond_branch(block_fn *fn);
/* Fuses compare/test + conditional branch pairs of a decoded block into one handler. */
void exec_fast_fuse(struct block_insn *insns, unsigned n);

/* The handler of block instructions without a fast one (exec_loop.c): the area handler, then on to the next
 * instruction. Fast handlers also hand over to it for the cases they leave out. */
int exec_block_generic(struct exec_ctx *x, const struct block_insn *bi);

/* Stops the block at bi with result r (anything but a fall-through). */
static inline int x_stop(struct exec_ctx *x, const struct block_insn *bi, int r)
{
    x->bi = bi;
    return r;
}

/* Goes on with the instruction after bi in 64-bit code (RIP needs no wrapping). The chain is at most a block
 * long, and compilers turn the call into a jump. */
static inline int x_next64(struct exec_ctx *x, const struct block_insn *bi)
{
    if (++bi == x->end)
        return XR_OK;
    x->next_rip += bi->in.len;
    return bi->fn(x, bi);
}

/* ---- per-area handlers: return enum exec_result ---- */
int exec_int(struct exec_ctx *x);    /* exec_int.c: integer core */
int exec_ctrl(struct exec_ctx *x);   /* exec_ctrl.c: control flow, interrupts */
int exec_string(struct exec_ctx *x); /* exec_string.c: MOVS..OUTS with REP */
int exec_sys(struct exec_ctx *x);    /* exec_sys.c: system and I/O instructions */
int exec_x87(struct exec_ctx *x);    /* exec_x87.c: the x87 FPU */
int exec_sse(struct exec_ctx *x);    /* exec_sse.c: SSE/SSE2 moves, logic, packed integers */

/* Logs an instruction the emu does not implement and returns XR_ERROR. */
int x_unimplemented(struct exec_ctx *x);

#endif
