/* Shared scaffolding for device unit tests: a real machine on a manual clock, recorders for the interrupts
 * and requests that devices raise, and port/MMIO accessors that go through the machine's I/O buses. */
#ifndef DESKVM_TESTS_DEVICE_HARNESS_H
#define DESKVM_TESTS_DEVICE_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "machine.h"

/* Creates the machine from a device table with a manual clock (time moves only with vclock_advance), failing
 * the test if that does not work, and takes its lock as a vCPU holds it around an access. */
void dh_machine_init(struct machine *m, const struct machine_device *const *devices, unsigned n,
                     unsigned cpus, uint64_t ram_size);
/* The same with more of the configuration (e.g. a serial backend); manual_clock is forced on. */
void dh_machine_init_cfg(struct machine *m, const struct machine_config *cfg,
                         const struct machine_device *const *devices, unsigned n);
/* Drops the lock and destroys the machine. */
void dh_machine_fini(struct machine *m);

/* Which interrupt outputs a test expects a device to drive; anything else fails the test at once. */
#define DH_GSI(n) (1ull << (n))
#define DH_ANY_GSI ((1ull << MACHINE_GSI_COUNT) - 1)
#define DH_MSI (1ull << 63)

#define DH_IRQ_EVENTS 4096
#define DH_MSIS 32

struct dh_irq_event {
    unsigned gsi;
    int level;
    int64_t ns; /* virtual time of the call */
};

/* What the machine's interrupt outputs did since dh_record_irqs. */
struct irq_recorder {
    struct machine *m;
    uint64_t expect;
    int level[MACHINE_GSI_COUNT];
    unsigned calls[MACHINE_GSI_COUNT];         /* set_gsi calls, changing the level or not */
    unsigned raises[MACHINE_GSI_COUNT];        /* 0 -> 1 changes */
    int64_t last_change_ns[MACHINE_GSI_COUNT]; /* when the level last changed */
    unsigned nevents; /* set_gsi calls in order; those past DH_IRQ_EVENTS are dropped */
    struct dh_irq_event events[DH_IRQ_EVENTS];
    unsigned nmsi;
    struct msi_message msi[DH_MSIS];
};

/* Clears rec and installs it as the machine's irqchip; expect is a mask of DH_GSI(n), DH_ANY_GSI, DH_MSI. */
void dh_record_irqs(struct machine *m, struct irq_recorder *rec, uint64_t expect);
/* Rising edges of gsi among the recorded events; the times of the first max of them go to t (may be NULL). */
unsigned dh_rising_edges(const struct irq_recorder *rec, unsigned gsi, int64_t *t, unsigned max);

/* Which machine requests a test expects; anything else fails the test at once. */
#define DH_REQUEST(req) (1u << (req))
#define DH_ANY_REQUEST (~0u)

struct request_recorder {
    unsigned expect;
    unsigned resets;
    unsigned shutdowns;
    unsigned other;
};

/* Clears rec and installs it as the machine's request handler; expect is a mask of DH_REQUEST(req). */
void dh_record_requests(struct machine *m, struct request_recorder *rec, unsigned expect);

/* Counts in kicks[cpu] how often each CPU's local APIC wakes its vCPU; kicks has one entry per CPU. */
void dh_count_lapic_kicks(struct machine *m, unsigned *kicks);

/* Port and MMIO accesses as a CPU makes them; each fails the test unless a device claims the access. */
uint64_t dh_pio_read(struct machine *m, uint64_t port, unsigned size);
void dh_pio_write(struct machine *m, uint64_t port, unsigned size, uint64_t value);
uint64_t dh_mmio_read(struct machine *m, uint64_t addr, unsigned size);
void dh_mmio_write(struct machine *m, uint64_t addr, unsigned size, uint64_t value);

uint8_t dh_inb(struct machine *m, uint16_t port);
uint16_t dh_inw(struct machine *m, uint16_t port);
uint32_t dh_inl(struct machine *m, uint16_t port);
void dh_outb(struct machine *m, uint16_t port, uint8_t value);
void dh_outw(struct machine *m, uint16_t port, uint16_t value);
void dh_outl(struct machine *m, uint16_t port, uint32_t value);
uint32_t dh_readl(struct machine *m, uint64_t addr);
void dh_writel(struct machine *m, uint64_t addr, uint32_t value);

/* What a CPU reads from a port whether or not anything claims it (all ones if nothing does). */
uint64_t dh_pio_read_unchecked(struct machine *m, uint64_t port, unsigned size);

/* Sends deskvm's log to an empty in-memory file (until log_set_fd(STDERR_FILENO)), for dh_assert_logged. */
void dh_log_capture(void);
/* Fails the test unless the captured log contains needle. */
void dh_assert_logged(const char *needle);

#endif
