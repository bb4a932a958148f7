/* CPUID for KVM vCPUs: KVM's supported list adjusted to this VM's topology. */
#include "kvm_cpuid.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include <glib.h>

#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)
#define MAX_ENTRIES 256

static void adjust_entry(struct kvm_cpuid_entry2 *e, unsigned index, unsigned ncpus)
{
    switch (e->function) {
    case 1:
        /* EBX: initial APIC ID in 31:24, logical processors per package in 23:16. */
        e->ebx = (e->ebx & 0x0000FFFFu) | (index << 24) | ((ncpus & 0xFFu) << 16);
        e->ecx |= CPUID_1_ECX_HYPERVISOR;
        if (ncpus > 1)
            e->edx |= CPUID_1_EDX_HTT;
        else
            e->edx &= ~CPUID_1_EDX_HTT;
        break;
    case 4:
        /* Deterministic cache parameters: cores per package - 1 in 31:26; one thread shares each cache. */
        if (e->eax & 0x1F)
            e->eax = (e->eax & 0x03FFC3FFu) | ((ncpus - 1) & 0x3F) << 26;
        break;
    case 0xB:
    case 0x1F:
        /* Extended topology: level 0 = SMT (1 thread), level 1 = core (ncpus); EDX = x2APIC ID. */
        e->edx = index;
        if (e->index == 0) {
            e->eax = 0;
            e->ebx = 1;
            e->ecx = (1u << 8) | 0;
        } else if (e->index == 1) {
            unsigned shift = 0;
            while ((1u << shift) < ncpus)
                shift++;
            e->eax = shift;
            e->ebx = ncpus;
            e->ecx = (2u << 8) | 1;
        } else {
            e->eax = e->ebx = 0;
            e->ecx = e->index;
        }
        break;
    default:
        break;
    }
}

int kvm_cpuid_setup(int kvm_fd, int vcpu_fd, unsigned index, unsigned ncpus, char **error)
{
    struct kvm_cpuid2 *cpuid = g_malloc0(sizeof(*cpuid) + MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
    cpuid->nent = MAX_ENTRIES;
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
        int e = errno;
        *error = g_strdup_printf("kvm: KVM_GET_SUPPORTED_CPUID: %s", g_strerror(e));
        g_free(cpuid);
        return -e;
    }
    for (uint32_t i = 0; i < cpuid->nent; i++)
        adjust_entry(&cpuid->entries[i], index, ncpus);
    if (ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid) < 0) {
        int e = errno;
        *error = g_strdup_printf("kvm: KVM_SET_CPUID2 for vCPU %u: %s", index, g_strerror(e));
        g_free(cpuid);
        return -e;
    }
    g_free(cpuid);
    return 0;
}
