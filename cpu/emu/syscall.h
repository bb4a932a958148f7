/* emu fast system calls: SYSCALL/SYSRET, SYSENTER/SYSEXIT (MSR-defined flat segments) and SWAPGS (Intel SDM
 * vol. 2 and vol. 3, 5.8.7-5.8.8). Conventions as in segment.h; none of these touch memory. */
#ifndef DESKVM_EMU_SYSCALL_H
#define DESKVM_EMU_SYSCALL_H

#include <stdint.h>

#include "emu/segment.h"
#include "emu/state.h"

/* SYSCALL (long mode only; #UD if EFER.SCE=0 or outside long mode): RCX = next_rip, R11 = RFLAGS with RF
 * clear, RFLAGS &= ~(SFMASK | RF), CS = STAR[47:32] & ~3 (flat 64-bit code, DPL 0), SS = that + 8 (flat
 * data), RIP = LSTAR from 64-bit code, CSTAR from compatibility mode (AMD behaviour, as the guest CPU
 * identifies as AMD). */
int emu_syscall(struct emu_state *s, uint64_t next_rip, struct emu_fault *f);

/* SYSRET from 64-bit mode (#UD if SCE=0 or not 64-bit code, #GP(0) at CPL ≠ 0): opsize 8 returns to 64-bit
 * code at RCX (#GP(0) in ring 0 if non-canonical, as Intel does) with CS = STAR[63:48] + 16, else to
 * compatibility mode at ECX with CS = STAR[63:48]; SS = STAR[63:48] + 8, RPL 3; RFLAGS = (R11 & 0x3C7FD7)
 * | 2. */
int emu_sysret(struct emu_state *s, unsigned opsize, struct emu_fault *f);

/* SYSENTER (#GP(0) in real mode or when SYSENTER_CS[15:2] = 0): CS = SYSENTER_CS (64-bit code in long mode),
 * SS = CS + 8, RSP/RIP from SYSENTER_ESP/EIP (truncated to 32 bits outside long mode); clears VM, IF, RF.
 * Intel semantics (AMD would #UD in long mode). */
int emu_sysenter(struct emu_state *s, struct emu_fault *f);

/* SYSEXIT (#GP(0) in real mode, at CPL ≠ 0, or when SYSENTER_CS[15:2] = 0): opsize 8 to 64-bit code
 * (CS = SYSENTER_CS + 32, SS = + 40; RIP = RDX, RSP = RCX, both canonical or #GP(0)), else to 32-bit code
 * (CS = + 16, SS = + 24; EIP = EDX, ESP = ECX); RPL 3. */
int emu_sysexit(struct emu_state *s, unsigned opsize, struct emu_fault *f);

/* SWAPGS: exchanges GS.base with KERNEL_GS_BASE; #UD outside 64-bit mode, #GP(0) at CPL ≠ 0. */
int emu_swapgs(struct emu_state *s, struct emu_fault *f);

#endif
