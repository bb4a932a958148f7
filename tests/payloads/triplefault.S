/* Triple-fault payload: counts boots in CMOS NVRAM (which survives a reset, as on real hardware). First boot:
 * loads an empty IDT and executes INT3, which triple-faults the CPU; the PC resets. Second boot: reports it and
 * powers off. Proves triple fault → machine reset → firmware runs again, with device state reset but NVRAM kept. */
#include "common.inc"

    .code16
    .section .text.start, "ax"
    .globl start
start:
    cli
    xorw %ax, %ax
    movw %ax, %ss
    movw $0x7000, %sp
    movw $0xF000, %ax
    movw %ax, %ds

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
    movw $msg_first, %si
    call puts16
    lidtl %cs:empty_idt
    int3
1:  hlt
    jmp 1b

second_boot:
    movw $msg_second, %si
    call puts16
    movw $PM1A_CNT_PORT, %dx
    movw $PM1_SLP_S5, %ax
    outw %ax, %dx
2:  hlt
    jmp 2b

#include "serial16.inc"

empty_idt:
    .word 0
    .long 0

msg_first:  .asciz "DESKVM-PAYLOAD: boot 1, triple-faulting\n"
msg_second: .asciz "DESKVM-PAYLOAD: boot 2 after reset, poweroff\n"

    RESET_VECTOR
