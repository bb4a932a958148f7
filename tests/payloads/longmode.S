/* Mode-switch payload: real mode → 32-bit protected mode → 64-bit long mode with 2 MiB identity paging, printing a
 * line on COM1 in each mode (the 64-bit line includes a 64-bit computation), doing MMIO to the PCI test function in
 * protected mode when it is present, then powers off through ACPI S5.
 * Proves KVM's handling of the mode transitions deskvm's machine must support for firmware. */
#include "common.inc"

#define PML4 0x10000
#define PDPT 0x11000
#define PD   0x12000

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

    /* Identity map the first 1 GiB with 2 MiB pages. */
    movl $PML4, %edi
    xorl %eax, %eax
    movl $(3 * 4096 / 4), %ecx
    rep stosl
    movl $(PDPT | 3), PML4
    movl $(PD | 3), PDPT
    movl $PD, %edi
    movl $0x83, %eax        /* present, writable, 2 MiB page */
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
    movl $0xC0000080, %ecx   /* EFER */
    rdmsr
    orl $0x100, %eax         /* LME */
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
