/* The CPUID a KVM guest sees. deskvm's KVM CPU model is "host as KVM can virtualize it" (QEMU's -cpu host): KVM's
 * supported CPUID list, with the topology of this VM (APIC IDs, core counts) and the hypervisor bit filled in. */
#ifndef DESKVM_KVM_CPUID_H
#define DESKVM_KVM_CPUID_H

/* Sets the CPUID of one vCPU (index of ncpus). Returns 0 or a negative errno with *error set. */
int kvm_cpuid_setup(int kvm_fd, int vcpu_fd, unsigned index, unsigned ncpus, char **error);

#endif
