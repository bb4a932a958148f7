/* A throwaway KVM VM that runs ring-0 long-mode code Linux depends on, to test the host's KVM. */
#include "kvm_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include <glib.h>

#include "kvm_cpuid.h"

#define PROBE_RAM (2u << 20)
#define PML4 0x1000
#define PDPT 0x2000
#define PD 0x3000
#define GDT 0x4000
#define IDT 0x5000
#define STACK 0x8000
#define CODE 0x10000
#define HANDLER 0x10100
#define DATA 0x20000
#define DONE_PORT 0x500

/* mov rdi, DATA; xor eax, eax; xor edx, edx; mov ebx, 1; mov ecx, 2; lock cmpxchg16b [rdi]; int3;
 * mov dx, DONE_PORT; mov al, 0x42; out dx, al; hlt */
static const uint8_t probe_code[] = {
    0x48, 0xC7, 0xC7, 0x00, 0x00, 0x02, 0x00, 0x31, 0xC0, 0x31, 0xD2, 0xBB, 0x01, 0x00, 0x00, 0x00,
    0xB9, 0x02, 0x00, 0x00, 0x00, 0xF0, 0x48, 0x0F, 0xC7, 0x0F, 0xCC, 0x66, 0xBA, 0x00, 0x05, 0xB0,
    0x42, 0xEE, 0xF4,
};
/* The #BP handler: iretq. */
static const uint8_t probe_handler[] = {0x48, 0xCF};

static void on_alarm(int sig)
{
    (void)sig; /* only interrupts KVM_RUN */
}

static void put64(uint8_t *mem, uint64_t addr, uint64_t v)
{
    memcpy(mem + addr, &v, sizeof(v));
}

static void build_guest(uint8_t *mem)
{
    put64(mem, PML4, PDPT | 3);
    put64(mem, PDPT, PD | 3);
    put64(mem, PD, 0x83); /* 2 MiB identity page at 0 */
    put64(mem, GDT + 8, 0x00AF9A000000FFFFull);  /* 0x08: 64-bit code */
    put64(mem, GDT + 16, 0x00CF92000000FFFFull); /* 0x10: data */
    /* IDT entry 3: interrupt gate, selector 0x08, DPL 0, offset HANDLER */
    uint8_t *gate = mem + IDT + 3 * 16;
    gate[0] = HANDLER & 0xFF;
    gate[1] = (HANDLER >> 8) & 0xFF;
    gate[2] = 0x08;
    gate[5] = 0x8E;
    gate[6] = (HANDLER >> 16) & 0xFF;
    gate[7] = (HANDLER >> 24) & 0xFF;
    memcpy(mem + CODE, probe_code, sizeof(probe_code));
    memcpy(mem + HANDLER, probe_handler, sizeof(probe_handler));
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
    memset(s, 0, sizeof(*s));
    s->selector = sel;
    s->limit = 0xFFFFFFFF;
    s->type = type;
    s->present = 1;
    s->s = 1;
    s->g = 1;
    s->l = code;
    s->db = !code;
}

static bool run_probe(int kvm, int vm, uint8_t *mem, char **why)
{
    build_guest(mem);
    struct kvm_userspace_memory_region r = {.slot = 0, .memory_size = PROBE_RAM,
                                            .userspace_addr = (uint64_t)(uintptr_t)mem};
    int vcpu = -1;
    struct kvm_run *run = MAP_FAILED;
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0 || (vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0 ||
        run_size <= 0 ||
        (run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0)) == MAP_FAILED) {
        *why = g_strdup_printf("setting up a probe vCPU: %s", g_strerror(errno));
        if (vcpu >= 0)
            close(vcpu);
        return false;
    }
    char *err = NULL;
    bool ok = false;
    if (kvm_cpuid_setup(kvm, vcpu, 0, 1, &err) < 0) {
        *why = err;
        goto out;
    }
    struct kvm_sregs s;
    if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0)
        goto fail_errno;
    set_seg(&s.cs, 0x08, 0xB, true);
    set_seg(&s.ds, 0x10, 0x3, false);
    s.es = s.fs = s.gs = s.ss = s.ds;
    memset(&s.tr, 0, sizeof(s.tr));
    s.tr.limit = 0xFFFF;
    s.tr.type = 0xB;
    s.tr.present = 1;
    s.gdt.base = GDT;
    s.gdt.limit = 23;
    s.idt.base = IDT;
    s.idt.limit = 4095;
    s.cr0 = 0x80000031; /* PG | NE | ET | PE */
    s.cr3 = PML4;
    s.cr4 = 0x20; /* PAE */
    s.efer = 0x500; /* LMA | LME */
    struct kvm_regs regs = {.rip = CODE, .rsp = STACK, .rflags = 2};
    if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        goto fail_errno;

    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    struct itimerval it = {.it_value = {.tv_usec = 500000}}, off = {0};
    setitimer(ITIMER_REAL, &it, NULL);
    for (int exits = 0; exits < 1000; exits++) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            *why = errno == EINTR ? g_strdup("ring-0 code runs too slowly (probe did not finish in 0.5 s)")
                                  : g_strdup_printf("KVM_RUN: %s", g_strerror(errno));
            break;
        }
        if (run->exit_reason == KVM_EXIT_IO && run->io.port == DONE_PORT) {
            uint64_t lo, hi;
            memcpy(&lo, mem + DATA, 8);
            memcpy(&hi, mem + DATA + 8, 8);
            ok = lo == 1 && hi == 2;
            if (!ok)
                *why = g_strdup("CMPXCHG16B gave a wrong result");
            break;
        }
        if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR) {
            *why = g_strdup_printf("KVM could not run ring-0 CMPXCHG16B/INT3 (internal error %u: its "
                                   "instruction emulation failed)",
                                   run->internal.suberror);
            break;
        }
        if (run->exit_reason != KVM_EXIT_INTR) {
            *why = g_strdup_printf("unexpected exit %u while probing", run->exit_reason);
            break;
        }
    }
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    goto out;

fail_errno:
    *why = g_strdup_printf("probe vCPU state: %s", g_strerror(errno));
out:
    munmap(run, (size_t)run_size);
    close(vcpu);
    return ok;
}

bool kvm_probe_guest_capable(char **why)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        *why = g_strdup_printf("/dev/kvm: %s", g_strerror(errno));
        return false;
    }
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    uint8_t *mem = mmap(NULL, PROBE_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool ok = false;
    if (vm < 0 || mem == MAP_FAILED)
        *why = g_strdup_printf("creating a probe VM: %s", g_strerror(errno));
    else
        ok = run_probe(kvm, vm, mem, why);
    if (mem != MAP_FAILED)
        munmap(mem, PROBE_RAM);
    if (vm >= 0)
        close(vm);
    close(kvm);
    return ok;
}
