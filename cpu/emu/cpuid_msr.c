/* The emu's CPU identity (CPUID) and model-specific registers. The identity is QEMU's proven qemu64 one (an AMD
 * family 0xF CPU with SSE2 and long mode) plus what deskvm's models add: TSC-deadline, ARAT, kvmclock. CPUID
 * advertises exactly what the interpreter implements, nothing more. */
#include <string.h>

#include <glib.h>

#include "emu/cpu.h"
#include "lapic.h"
#include "log.h"
#include "machine.h"

/* Leaf 1 EDX */
#define F_FPU (1u << 0)
#define F_DE (1u << 2)
#define F_PSE (1u << 3)
#define F_TSC (1u << 4)
#define F_MSR (1u << 5)
#define F_PAE (1u << 6)
#define F_CX8 (1u << 8)
#define F_APIC (1u << 9)
#define F_SEP (1u << 11)
#define F_PGE (1u << 13)
#define F_CMOV (1u << 15)
#define F_PAT (1u << 16)
#define F_PSE36 (1u << 17)
#define F_CLFLUSH (1u << 19)
#define F_MMX (1u << 23)
#define F_FXSR (1u << 24)
#define F_SSE (1u << 25)
#define F_SSE2 (1u << 26)
#define F_HTT (1u << 28)
/* Leaf 1 ECX */
#define F_SSE3 (1u << 0)
#define F_CX16 (1u << 13)
#define F_TSC_DEADLINE (1u << 24)
#define F_HYPERVISOR (1u << 31)
/* Leaf 0x80000001 */
#define F_LAHF_LM (1u << 0)
#define F_SYSCALL (1u << 11)
#define F_NX (1u << 20)
#define F_LM (1u << 29)
/* Leaf 6 EAX */
#define F_ARAT (1u << 2)
/* KVM paravirtual features (leaf 0x40000001 EAX) */
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define KVM_FEATURE_CLOCKSOURCE_STABLE_BIT (1u << 24)

#define EMU_MAXPHYADDR 40
#define EMU_MAXVIRTADDR 48

static void put_str(uint32_t *regs, const char *s)
{
    /* 12 bytes of vendor text in EBX, EDX, ECX order */
    memcpy(&regs[1], s, 4);
    memcpy(&regs[3], s + 4, 4);
    memcpy(&regs[2], s + 8, 4);
}

static void brand(uint32_t leaf, uint32_t out[4])
{
    static const char name[48] = "deskvm emu x86-64 CPU";
    memcpy(out, name + (leaf - 0x80000002) * 16, 16);
}

void emu_cpuid(struct emu_cpu *cpu, uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    unsigned ncpus = cpu->m ? cpu->m->config.cpus : 1;
    memset(out, 0, 4 * sizeof(uint32_t));
    switch (leaf) {
    case 0:
        out[0] = 7;
        put_str(out, "AuthenticAMD");
        break;
    case 1:
        out[0] = 0x00060FB1; /* family 0xF, model 0x6B, stepping 1 */
        out[1] = (cpu->index << 24) | ((ncpus & 0xFF) << 16) | (8u << 8); /* CLFLUSH line: 8 x 8 bytes */
        out[2] = F_SSE3 | F_CX16 | F_TSC_DEADLINE | F_HYPERVISOR;
        out[3] = F_FPU | F_DE | F_PSE | F_TSC | F_MSR | F_PAE | F_CX8 | F_APIC | F_SEP | F_PGE | F_CMOV | F_PAT |
                 F_PSE36 | F_CLFLUSH | F_MMX | F_FXSR | F_SSE | F_SSE2 | (ncpus > 1 ? F_HTT : 0);
        break;
    case 6:
        out[0] = F_ARAT;
        break;
    case 0x40000000:
        out[0] = 0x40000001;
        memcpy(&out[1], "KVMKVMKVM\0\0\0", 12);
        break;
    case 0x40000001:
        out[0] = KVM_FEATURE_CLOCKSOURCE2 | KVM_FEATURE_CLOCKSOURCE_STABLE_BIT;
        break;
    case 0x80000000:
        out[0] = 0x80000008;
        put_str(out, "AuthenticAMD");
        break;
    case 0x80000001:
        out[0] = 0x00060FB1;
        out[2] = F_LAHF_LM;
        /* AMD mirrors most leaf-1 EDX bits here. */
        out[3] = (F_FPU | F_DE | F_PSE | F_TSC | F_MSR | F_PAE | F_CX8 | F_APIC | F_PGE | F_CMOV | F_PAT | F_PSE36 |
                  F_MMX | F_FXSR) |
                 F_SYSCALL | F_NX | F_LM;
        break;
    case 0x80000002:
    case 0x80000003:
    case 0x80000004:
        brand(leaf, out);
        break;
    case 0x80000008:
        out[0] = EMU_MAXPHYADDR | (EMU_MAXVIRTADDR << 8);
        out[2] = ncpus > 1 ? ncpus - 1 : 0;
        break;
    default:
        break;
    }
    (void)subleaf;
}

/* MSR numbers. */
#define MSR_TSC 0x10
#define MSR_APIC_BASE 0x1B
#define MSR_UCODE_REV 0x8B
#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define MSR_MISC_ENABLE 0x1A0
#define MSR_PAT 0x277
#define MSR_TSC_DEADLINE 0x6E0
#define MSR_EFER 0xC0000080
#define MSR_STAR 0xC0000081
#define MSR_LSTAR 0xC0000082
#define MSR_CSTAR 0xC0000083
#define MSR_SFMASK 0xC0000084
#define MSR_FS_BASE 0xC0000100
#define MSR_GS_BASE 0xC0000101
#define MSR_KERNEL_GS_BASE 0xC0000102
#define MSR_TSC_AUX 0xC0000103
#define MSR_K8_SYSCFG 0xC0010010
#define MSR_K7_HWCR 0xC0010015
#define MSR_AMD64_NB_CFG 0xC001001F
#define MSR_VM_CR 0xC0010114
#define MSR_K8_INT_PENDING_MSG 0xC0010055 /* read by Linux on family 0xF for the C1E erratum */
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define MSR_KVM_WALL_CLOCK 0x11
#define MSR_KVM_SYSTEM_TIME 0x12

static struct log_ratelimit msr_rl = LOG_RATELIMIT_INIT(5000, 10);

static bool canonical(uint64_t v)
{
    return (uint64_t)((int64_t)(v << 16) >> 16) == v;
}

uint64_t emu_read_tsc(struct emu_cpu *cpu)
{
    uint64_t tsc = deskvm_ns_to_tsc(vclock_now(cpu->m->clock)) + cpu->s.msr.tsc_offset;
    /* Strictly increasing: Linux's entropy gathering and TSC sanity checks expect every read to move. */
    if (tsc <= cpu->last_tsc)
        tsc = cpu->last_tsc + 1;
    cpu->last_tsc = tsc;
    return tsc;
}

/* kvmclock: the guest gives the physical address of a pvclock_vcpu_time_info; deskvm's TSC is a fixed function of
 * the virtual clock, so one record (TSC 2 GHz → ns: multiply by 2^31 >> 32) stays valid forever. */
static void kvmclock_publish(struct emu_cpu *cpu, uint64_t msr_value)
{
    if (!(msr_value & 1))
        return;
    uint64_t gpa = msr_value & ~1ULL;
    uint8_t rec[32] = {0};
    int64_t now = vclock_now(cpu->m->clock);
    uint64_t tsc = deskvm_ns_to_tsc(now) + cpu->s.msr.tsc_offset;
    le32_store(rec + 0, 2);                  /* version: even = stable */
    le64_store(rec + 8, tsc);                /* tsc_timestamp */
    le64_store(rec + 16, (uint64_t)now);     /* system_time */
    le32_store(rec + 24, 0x80000000u);       /* tsc_to_system_mul */
    rec[28] = 0;                             /* tsc_shift */
    rec[29] = 1;                             /* flags: PVCLOCK_TSC_STABLE_BIT */
    if (guest_mem_write(&cpu->m->mem, gpa, rec, sizeof(rec)) < 0)
        log_message_ratelimited(&msr_rl, LOG_LEVEL_WARN, "emu: kvmclock record at 0x%llx is not RAM",
                                (unsigned long long)gpa);
}

static void kvm_wall_clock_publish(struct emu_cpu *cpu, uint64_t gpa)
{
    /* pvclock_wall_clock: version, sec, nsec of the host's real time when the virtual clock was 0. */
    gint64 real_us = g_get_real_time();
    int64_t boot_ns = real_us * 1000 - vclock_now(cpu->m->clock);
    uint8_t rec[12];
    le32_store(rec, 2);
    le32_store(rec + 4, (uint32_t)(boot_ns / NSEC_PER_SEC));
    le32_store(rec + 8, (uint32_t)(boot_ns % NSEC_PER_SEC));
    if (guest_mem_write(&cpu->m->mem, gpa, rec, sizeof(rec)) < 0)
        log_message_ratelimited(&msr_rl, LOG_LEVEL_WARN, "emu: kvm wall clock at 0x%llx is not RAM",
                                (unsigned long long)gpa);
}

bool emu_msr_read(struct emu_cpu *cpu, uint32_t msr, uint64_t *v)
{
    struct emu_state *s = &cpu->s;
    struct lapic *l = cpu->m->lapic[cpu->index];
    switch (msr) {
    case MSR_TSC:
        *v = emu_read_tsc(cpu);
        return true;
    case MSR_APIC_BASE:
        machine_lock(cpu->m);
        *v = l ? lapic_get_base(l) : 0;
        machine_unlock(cpu->m);
        return true;
    case MSR_TSC_DEADLINE:
        machine_lock(cpu->m);
        *v = l ? lapic_get_tsc_deadline(l) : 0;
        machine_unlock(cpu->m);
        return true;
    case MSR_UCODE_REV:
    case MSR_K8_SYSCFG:
    case MSR_K7_HWCR:
    case MSR_AMD64_NB_CFG:
    case MSR_VM_CR:
    case MSR_K8_INT_PENDING_MSG:
        *v = 0;
        return true;
    case MSR_MISC_ENABLE:
        *v = s->msr.misc_enable;
        return true;
    case MSR_SYSENTER_CS:
        *v = s->msr.sysenter_cs;
        return true;
    case MSR_SYSENTER_ESP:
        *v = s->msr.sysenter_esp;
        return true;
    case MSR_SYSENTER_EIP:
        *v = s->msr.sysenter_eip;
        return true;
    case MSR_PAT:
        *v = s->msr.pat;
        return true;
    case MSR_EFER:
        *v = s->efer;
        return true;
    case MSR_STAR:
        *v = s->msr.star;
        return true;
    case MSR_LSTAR:
        *v = s->msr.lstar;
        return true;
    case MSR_CSTAR:
        *v = s->msr.cstar;
        return true;
    case MSR_SFMASK:
        *v = s->msr.sfmask;
        return true;
    case MSR_FS_BASE:
        *v = s->seg[EMU_FS].base;
        return true;
    case MSR_GS_BASE:
        *v = s->seg[EMU_GS].base;
        return true;
    case MSR_KERNEL_GS_BASE:
        *v = s->msr.kernel_gs_base;
        return true;
    case MSR_TSC_AUX:
        *v = s->msr.tsc_aux;
        return true;
    case MSR_KVM_SYSTEM_TIME_NEW:
    case MSR_KVM_SYSTEM_TIME:
        *v = s->msr.kvm_system_time;
        return true;
    case MSR_KVM_WALL_CLOCK_NEW:
    case MSR_KVM_WALL_CLOCK:
        *v = s->msr.kvm_wall_clock;
        return true;
    }
    log_message_ratelimited(&msr_rl, LOG_LEVEL_DEBUG, "emu: vCPU %u: RDMSR 0x%x not implemented (#GP)",
                            cpu->index, msr);
    return false;
}

bool emu_msr_write(struct emu_cpu *cpu, uint32_t msr, uint64_t v)
{
    struct emu_state *s = &cpu->s;
    struct lapic *l = cpu->m->lapic[cpu->index];
    switch (msr) {
    case MSR_TSC:
        s->msr.tsc_offset = v - deskvm_ns_to_tsc(vclock_now(cpu->m->clock));
        cpu->last_tsc = 0;
        return true;
    case MSR_APIC_BASE: {
        if (!l)
            return false;
        machine_lock(cpu->m);
        int r = lapic_set_base(l, v);
        machine_unlock(cpu->m);
        return r == 0;
    }
    case MSR_TSC_DEADLINE: {
        if (!l)
            return false;
        int64_t ns = v ? deskvm_tsc_to_ns(v - s->msr.tsc_offset) : 0;
        machine_lock(cpu->m);
        lapic_set_tsc_deadline(l, v, ns);
        machine_unlock(cpu->m);
        return true;
    }
    case MSR_UCODE_REV:
    case MSR_K8_SYSCFG:
    case MSR_K7_HWCR:
    case MSR_AMD64_NB_CFG:
    case MSR_VM_CR:
    case MSR_K8_INT_PENDING_MSG:
        return true; /* accepted and ignored, as a CPU without those features would */
    case MSR_MISC_ENABLE:
        s->msr.misc_enable = v;
        return true;
    case MSR_SYSENTER_CS:
        s->msr.sysenter_cs = v & 0xFFFF;
        return true;
    case MSR_SYSENTER_ESP:
    case MSR_SYSENTER_EIP:
        if (!canonical(v))
            return false;
        if (msr == MSR_SYSENTER_ESP)
            s->msr.sysenter_esp = v;
        else
            s->msr.sysenter_eip = v;
        return true;
    case MSR_PAT:
        for (int i = 0; i < 8; i++) {
            unsigned t = (v >> (8 * i)) & 0xFF;
            if (t == 2 || t == 3 || t > 7)
                return false; /* reserved memory types */
        }
        s->msr.pat = v;
        return true;
    case MSR_EFER: {
        const uint64_t writable = EMU_EFER_SCE | EMU_EFER_LME | EMU_EFER_NXE;
        if (v & ~(writable | EMU_EFER_LMA))
            return false;
        /* LME cannot change while paging is on; LMA is the CPU's to set. */
        if ((s->cr0 & EMU_CR0_PG) && ((v ^ s->efer) & EMU_EFER_LME))
            return false;
        uint64_t old = s->efer;
        s->efer = (v & writable) | (s->efer & EMU_EFER_LMA);
        if ((old ^ s->efer) & EMU_EFER_NXE)
            emu_tlb_flush_all(&cpu->mmu);
        return true;
    }
    case MSR_STAR:
        s->msr.star = v;
        return true;
    case MSR_LSTAR:
    case MSR_CSTAR:
    case MSR_FS_BASE:
    case MSR_GS_BASE:
    case MSR_KERNEL_GS_BASE:
        if (!canonical(v))
            return false;
        if (msr == MSR_LSTAR)
            s->msr.lstar = v;
        else if (msr == MSR_CSTAR)
            s->msr.cstar = v;
        else if (msr == MSR_FS_BASE)
            s->seg[EMU_FS].base = v;
        else if (msr == MSR_GS_BASE)
            s->seg[EMU_GS].base = v;
        else
            s->msr.kernel_gs_base = v;
        return true;
    case MSR_SFMASK:
        s->msr.sfmask = v & 0xFFFFFFFF;
        return true;
    case MSR_TSC_AUX:
        s->msr.tsc_aux = v & 0xFFFFFFFF;
        return true;
    case MSR_KVM_SYSTEM_TIME_NEW:
    case MSR_KVM_SYSTEM_TIME:
        s->msr.kvm_system_time = v;
        kvmclock_publish(cpu, v);
        return true;
    case MSR_KVM_WALL_CLOCK_NEW:
    case MSR_KVM_WALL_CLOCK:
        s->msr.kvm_wall_clock = v;
        kvm_wall_clock_publish(cpu, v);
        return true;
    }
    log_message_ratelimited(&msr_rl, LOG_LEVEL_DEBUG, "emu: vCPU %u: WRMSR 0x%x = 0x%llx not implemented (#GP)",
                            cpu->index, msr, (unsigned long long)v);
    return false;
}
