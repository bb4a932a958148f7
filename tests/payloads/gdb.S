/* Debugger payload (tests/integration/test_gdbstub.py): climbs to 64-bit long mode with 2 MiB identity paging,
 * says it is ready, then spins at GDB_WAIT until a debugger writes a non-zero value to the mailbox at 0x9000. It
 * then computes mailbox + RCX, runs the loop at GDB_LOOP three times (EBX = 1, 2, 3 after each pass), prints
 * the sum and powers off. The code the test knows sits at fixed offsets, so its addresses are fixed:
 *   0xF1000 GDB_WAIT   cmpq $0, 0x9000 (9 bytes); je GDB_WAIT
 *   0xF1020 GDB_HIT    movq 0x9000, %rax (8 bytes); addq %rcx, %rax; ...
 *   0xF1040 GDB_LOOP   incl %ebx; cmpl $3, %ebx; jne GDB_LOOP */
#include "common.inc"

#define PML4 0x10000
#define PDPT 0x11000
#define PD   0x12000
#define MAILBOX 0x9000

    .code16
    .section .text.start, "ax"
    .globl start
start:
    cli
    xorw %ax, %ax
    movw %ax, %ss
    movw $0x7000, %sp
    ENTER_PROTECTED_MODE pm32

    .code32
pm32:
    /* Identity map the first 1 GiB with 2 MiB pages. */
    movl $PML4, %edi
    xorl %eax, %eax
    movl $(3 * 4096 / 4), %ecx
    rep stosl
    movl $(PDPT | 3), PML4
    movl $(PD | 3), PDPT
    movl $PD, %edi
    movl $0x83, %eax
    movl $512, %ecx
1:  movl %eax, (%edi)
    movl $0, 4(%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 1b
    movl %cr4, %eax
    orl $0x20, %eax          /* PAE */
    movl %eax, %cr4
    movl $PML4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx   /* EFER.LME */
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax    /* PG */
    movl %eax, %cr0
    ljmpl $0x18, $(ROM_LOW + lm64)

#include "serial32.inc"

    .code64
lm64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %ss
    movq $0x7000, %rsp
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
