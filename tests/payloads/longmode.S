/* Mode-switch payload: real mode → 32-bit protected mode → 64-bit long mode with 2 MiB identity paging, printing a
 * line on COM1 in each mode (the 64-bit line includes a 64-bit computation), doing MMIO to the PCI test function in
 * protected mode when it is present, then powers off through ACPI S5.
 * Proves KVM's handling of the mode transitions deskvm's machine must support for firmware. */
#include "common.inc"

#define PAGE_TABLES 0x10000

    REAL_MODE_START
    movw $0xF000, %ax
    movw %ax, %ds
    movw $msg_real, %si
    call puts16

    ENTER_PROTECTED_MODE pm32

    .code16
#include "serial16.inc"

    .code32
pm32:
    movl $(ROM_LOW + msg_prot), %esi
    call puts32

    /* MMIO to the PCI test function (slot 31, when present): BAR0 from config space, then its ID register and a
     * scratch register written and read back through guest physical addresses. */
    movl $(0x80000000 | (31 << 11) | 0x10), %eax
    movw $PCI_CONFIG_ADDR, %dx
    outl %eax, %dx
    movw $PCI_CONFIG_DATA, %dx
    inl %dx, %eax
    cmpl $0xFFFFFFFF, %eax
    je 3f
    andl $0xFFFFFFF0, %eax
    movl %eax, %edi
    movl $(ROM_LOW + msg_mmio), %esi
    call puts32
    movl (%edi), %eax          /* PCI_TESTDEV_ID */
    call puthex32
    movl $0x12345678, 4(%edi)  /* PCI_TESTDEV_SCRATCH */
    movb $' ', %al
    call putc32
    movl 4(%edi), %eax
    call puthex32
    movb $'\n', %al
    call putc32
3:

    ENTER_LONG_MODE PAGE_TABLES, lm64

    .code32
#include "serial32.inc"

    .code64
lm64:
    movl $(ROM_LOW + msg_long), %esi
    call puts32
    /* A 64-bit result only long mode can compute: 0x123456789 * 16 = 0x1234567890. */
    movabsq $0x123456789, %rax
    shlq $4, %rax
    movq %rax, %rbx
    shrq $32, %rax
    call puthex32
    movl %ebx, %eax
    call puthex32
    movb $'\n', %al
    call putc32
    movl $(ROM_LOW + msg_off), %esi
    call puts32
    movw $PM1A_CNT_PORT, %dx
    movw $PM1_SLP_S5, %ax
    outw %ax, %dx
2:  hlt
    jmp 2b

    FLAT_GDT

msg_real: .asciz "DESKVM-PAYLOAD: real-mode hello\n"
msg_prot: .asciz "DESKVM-PAYLOAD: protected-mode hello\n"
msg_mmio: .asciz "DESKVM-PAYLOAD: mmio "
msg_long: .asciz "DESKVM-PAYLOAD: long-mode hello 0x"
msg_off:  .asciz "DESKVM-PAYLOAD: poweroff\n"

    RESET_VECTOR
