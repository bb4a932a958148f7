/* Whether this host's KVM can run a real guest kernel, not only tiny payloads. Some nested or paravirtualised KVMs
 * run ring-0 code by emulation and fail on instructions Linux needs early (CMPXCHG16B, XSAVE/XRSTOR, INT3 through
 * the IDT) or run it far too slowly; `--accel auto` asks this before choosing KVM. */
#ifndef DESKVM_KVM_PROBE_H
#define DESKVM_KVM_PROBE_H

#include <stdbool.h>

/* Runs a few 64-bit ring-0 instructions in a throwaway VM, bounded to about half a second. Returns true if they ran
 * correctly; otherwise false with *why (caller frees) saying what failed. */
bool kvm_probe_guest_capable(char **why);

#endif
