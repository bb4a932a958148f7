/* Debugger payload (tests/integration/test_gdbstub.py): climbs to 64-bit long mode with 2 MiB identity paging,
 * says it is ready, then spins at GDB_WAIT until a debugger writes a non-zero value to the mailbox at 0x9000. It
 * then computes mailbox + RCX, runs the loop at GDB_LOOP three times (EBX = 1, 2, 3 after each pass), prints
 * the sum and powers off. The code the test knows sits at fixed offsets, so its addresses are fixed:
 *   0xF1000 GDB_WAIT   cmpq $0, 0x9000 (9 bytes); je GDB_WAIT
 *   0xF1020 GDB_HIT    movq 0x9000, %rax (8 bytes); addq %rcx, %rax; ...
 *   0xF1040 GDB_LOOP   incl %ebx; cmpl $3, %ebx; jne GDB_LOOP */
#include "common.inc"

#define PAGE_TABLES 0x10000
#define MAILBOX 0x9000

    REAL_MODE_START
    ENTER_PROTECTED_MODE pm32

pm32:
    ENTER_LONG_MODE PAGE_TABLES, lm64

    .code32
#include "serial32.inc"

    .code64
lm64:
    movl $(ROM_LOW + msg_ready), %esi
    call puts32
    xorl %ecx, %ecx
    jmp gdb_wait

    FLAT_GDT

msg_ready: .asciz "DESKVM-PAYLOAD: gdb payload ready\n"
msg_sum:   .asciz "DESKVM-PAYLOAD: gdb sum 0x"
msg_loop:  .asciz "DESKVM-PAYLOAD: gdb loop done\n"

    .org 0x1000, 0x90
gdb_wait:
    cmpq $0, MAILBOX
    je gdb_wait

    .org 0x1020, 0x90
gdb_hit:
    movq MAILBOX, %rax
    addq %rcx, %rax
    movq %rax, %r12
    xorl %ebx, %ebx

    .org 0x1040, 0x90
gdb_loop:
    incl %ebx
    cmpl $3, %ebx
    jne gdb_loop

    movl $(ROM_LOW + msg_loop), %esi
    call puts32
    movl $(ROM_LOW + msg_sum), %esi
    call puts32
    movq %r12, %rax
    shrq $32, %rax
    call puthex32
    movl %r12d, %eax
    call puthex32
    movb $'\n', %al
    call putc32
    movw $PM1A_CNT_PORT, %dx
    movw $PM1_SLP_S5, %ax
    outw %ax, %dx
2:  hlt
    jmp 2b

    RESET_VECTOR
