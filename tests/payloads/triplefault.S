/* Triple-fault payload: counts boots in CMOS NVRAM (which survives a reset, as on real hardware). It switches to
 * 32-bit protected mode (where the CPU, not an instruction emulator, delivers exceptions), then on the first boot
 * loads an empty IDT and executes UD2: #UD cannot be delivered, nor the #GP/#DF that follow, so the CPU shuts down
 * and the PC resets. On the second boot it reports and powers off. Proves triple fault → machine reset → firmware
 * runs again, with device state reset but NVRAM kept. */
#include "common.inc"

    .code16
    .section .text.start, "ax"
    .globl start
start:
    cli
    lgdtl %cs:gdt_desc
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(ROM_LOW + pm32)

    .code32
pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $0x7000, %esp

    movb $CMOS_BOOT_COUNTER, %al
    outb %al, $CMOS_INDEX
    inb $CMOS_DATA, %al
    incb %al
    movb %al, %bl
    movb $CMOS_BOOT_COUNTER, %al
    outb %al, $CMOS_INDEX
    movb %bl, %al
    outb %al, $CMOS_DATA

    cmpb $1, %bl
    jne second_boot
    movl $(ROM_LOW + msg_first), %esi
    call puts32
    lidtl (ROM_LOW + empty_idt)
    ud2
1:  hlt
    jmp 1b

second_boot:
    movl $(ROM_LOW + msg_second), %esi
    call puts32
    movw $PM1A_CNT_PORT, %dx
    movw $PM1_SLP_S5, %ax
    outw %ax, %dx
2:  hlt
    jmp 2b

#include "serial32.inc"

    .balign 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF   /* 0x08: 32-bit code */
    .quad 0x00CF92000000FFFF   /* 0x10: data */
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long ROM_LOW + gdt
empty_idt:
    .word 0
    .long 0

msg_first:  .asciz "DESKVM-PAYLOAD: boot 1, triple-faulting\n"
msg_second: .asciz "DESKVM-PAYLOAD: boot 2 after reset, poweroff\n"

    RESET_VECTOR
