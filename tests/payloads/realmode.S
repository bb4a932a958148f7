/* Real-mode payload: prints on COM1 from 16-bit code, scans PCI bus 0 through CF8/CFC and prints each function's
 * vendor:device, then powers off through ACPI S5. Proves the reset vector, PIO exits, the UART, the PCI host and the
 * PM block on the KVM backend. */
#include "common.inc"

    REAL_MODE_START
    movw $0xF000, %ax
    movw %ax, %ds

    movw $msg_hello, %si
    call puts16

    /* PCI scan: bus 0, devices 0-31, function 0. */
    xorw %bx, %bx /* device number */
1:  movl $0x80000000, %eax
    movzwl %bx, %ecx
    shll $11, %ecx
    orl %ecx, %eax
    movw $PCI_CONFIG_ADDR, %dx
    outl %eax, %dx
    movw $PCI_CONFIG_DATA, %dx
    inl %dx, %eax
    cmpl $0xFFFFFFFF, %eax
    je 2f
    movl %eax, %edi
    movw $msg_pci, %si
    call puts16
    movw %bx, %ax
    call puthex8
    movb $' ', %al
    call putc16
    movl %edi, %eax
    andl $0xFFFF, %eax
    call puthex16
    movb $':', %al
    call putc16
    movl %edi, %eax
    shrl $16, %eax
    call puthex16
    movb $'\n', %al
    call putc16
2:  incw %bx
    cmpw $32, %bx
    jb 1b

    movw $msg_off, %si
    call puts16
    movw $PM1A_CNT_PORT, %dx
    movw $PM1_SLP_S5, %ax
    outw %ax, %dx
    /* Not reached if the power-off worked. */
    movw $msg_failed, %si
    call puts16
3:  hlt
    jmp 3b

#include "serial16.inc"

/* puthex4/8/16: low nibble / byte / word of AX in hex. */
puthex4:
    pushw %ax
    andb $0xF, %al
    addb $'0', %al
    cmpb $'9', %al
    jbe 6f
    addb $('a' - '0' - 10), %al
6:  call putc16
    popw %ax
    ret
puthex8:
    pushw %ax
    shrb $4, %al
    call puthex4
    popw %ax
    jmp puthex4
puthex16:
    pushw %ax
    movb %ah, %al
    call puthex8
    popw %ax
    jmp puthex8

msg_hello:  .asciz "DESKVM-PAYLOAD: real-mode hello\n"
msg_pci:    .asciz "DESKVM-PAYLOAD: pci "
msg_off:    .asciz "DESKVM-PAYLOAD: poweroff\n"
msg_failed: .asciz "DESKVM-PAYLOAD: poweroff failed\n"

    RESET_VECTOR
