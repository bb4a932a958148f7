/* Benchmark payload: prints one line on COM1 as its very first action, then halts with interrupts off. The time
 * from exec to that line is "time to first guest instruction"; the VMM's memory is measured while it idles. */
#include "common.inc"

    .code16
    .section .text.start, "ax"
    .globl start
start:
    cli
    movw $0xF000, %ax
    movw %ax, %ds
    movw $msg_ready, %si
    call puts16
1:  hlt
    jmp 1b

#include "serial16.inc"

msg_ready: .asciz "DESKVM-PAYLOAD: ready\n"

    RESET_VECTOR
