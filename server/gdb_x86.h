/* The x86-64 register file as the gdbstub shows it: one table gives the order and sizes of the 'g' packet and
 * the target description XML that tells gdb about it. */
#ifndef DESKVM_GDB_X86_H
#define DESKVM_GDB_X86_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "vcpu.h"

/* What deskvm can read and write of a vCPU. x87 and SSE registers are described (gdb's amd64 layout needs
 * them) but reported unavailable. */
struct gdb_x86_cpu {
    struct vcpu_regs r;
    struct vcpu_sregs s;
};

#define GDB_X86_NREGS 65
#define GDB_X86_REG_RIP 16

/* Bytes of register n (0 when n is out of range). */
unsigned gdb_x86_reg_size(unsigned n);
/* Appends register n as target-order hex, or "xx" per byte when deskvm cannot read it. */
void gdb_x86_reg_hex(const struct gdb_x86_cpu *c, unsigned n, GString *out);
/* Sets register n from gdb_x86_reg_size(n) bytes. False when it cannot be written: an unavailable register,
 * or a segment selector that would change (its descriptor would have to be loaded). */
bool gdb_x86_reg_write(struct gdb_x86_cpu *c, unsigned n, const uint8_t *val);
/* The whole register file as the 'g' packet sends it. */
void gdb_x86_regs_hex(const struct gdb_x86_cpu *c, GString *out);
/* A 'G' packet's hex (exactly the length gdb_x86_regs_hex produces): unavailable registers and unchanged
 * selectors are skipped. False on bad hex, a wrong length or a register that cannot be written. */
bool gdb_x86_regs_write(struct gdb_x86_cpu *c, const char *hex, size_t len);
/* The target description (target.xml) for qXfer:features:read. */
const char *gdb_x86_target_xml(void);

#endif
