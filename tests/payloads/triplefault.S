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
    ENTER_PROTECTED_MODE pm32

    .code32
pm32:

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

    FLAT_GDT
empty_idt:
    .word 0
    .long 0

msg_first:  .asciz "DESKVM-PAYLOAD: boot 1, triple-faulting\n"
msg_second: .asciz "DESKVM-PAYLOAD: boot 2 after reset, poweroff\n"

    RESET_VECTOR
