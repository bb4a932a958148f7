/* Shared scaffolding for device unit tests: machine set-up, interrupt and request recorders, accessors. */
#include "device_harness.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>

#include "lapic.h"
#include "log.h"

void dh_machine_init_cfg(struct machine *m, const struct machine_config *cfg,
                         const struct machine_device *const *devices, unsigned n)
{
    struct machine_config c = *cfg;
    char *err = NULL;
    c.manual_clock = true;
    if (machine_init(m, &c, devices, n, &err) < 0)
        g_error("machine_init: %s", err ? err : "failed without a reason");
    g_assert_null(err);
    machine_lock(m);
}

void dh_machine_init(struct machine *m, const struct machine_device *const *devices, unsigned n,
                     unsigned cpus, uint64_t ram_size)
{
    struct machine_config cfg = {.ram_size = ram_size, .cpus = cpus};
    dh_machine_init_cfg(m, &cfg, devices, n);
}

void dh_machine_fini(struct machine *m)
{
    machine_unlock(m);
    machine_destroy(m);
}

static void rec_set_gsi(void *opaque, unsigned gsi, int level)
{
    struct irq_recorder *r = opaque;
    g_assert_cmpuint(gsi, <, MACHINE_GSI_COUNT);
    g_assert_true(r->expect & DH_GSI(gsi));
    int64_t now = vclock_now(r->m->clock);
    r->calls[gsi]++;
    if (level && !r->level[gsi])
        r->raises[gsi]++;
    if (level != r->level[gsi])
        r->last_change_ns[gsi] = now;
    r->level[gsi] = level;
    if (r->nevents < DH_IRQ_EVENTS)
        r->events[r->nevents++] = (struct dh_irq_event){gsi, level, now};
}

static void rec_send_msi(void *opaque, const struct msi_message *msg)
{
    struct irq_recorder *r = opaque;
    g_assert_true(r->expect & DH_MSI);
    g_assert_cmpuint(r->nmsi, <, DH_MSIS);
    r->msi[r->nmsi++] = *msg;
}

static const struct irqchip_ops recorder_ops = {rec_set_gsi, rec_send_msi};

void dh_record_irqs(struct machine *m, struct irq_recorder *rec, uint64_t expect)
{
    memset(rec, 0, sizeof(*rec));
    rec->m = m;
    rec->expect = expect;
    machine_set_irqchip(m, &recorder_ops, rec);
}

unsigned dh_rising_edges(const struct irq_recorder *rec, unsigned gsi, int64_t *t, unsigned max)
{
    unsigned k = 0;
    int last = 0;
    for (unsigned i = 0; i < rec->nevents; i++) {
        const struct dh_irq_event *e = &rec->events[i];
        if (e->gsi != gsi)
            continue;
        if (e->level && !last) {
            if (k < max && t)
                t[k] = e->ns;
            k++;
        }
        last = e->level;
    }
    return k;
}

static void rec_request(void *opaque, enum machine_request req)
{
    struct request_recorder *r = opaque;
    g_assert_true(r->expect & DH_REQUEST(req));
    if (req == MACHINE_REQUEST_RESET)
        r->resets++;
    else if (req == MACHINE_REQUEST_SHUTDOWN)
        r->shutdowns++;
    else
        r->other++;
}

void dh_record_requests(struct machine *m, struct request_recorder *rec, unsigned expect)
{
    memset(rec, 0, sizeof(*rec));
    rec->expect = expect;
    machine_set_request_handler(m, rec_request, rec);
}

static void count_kick(void *opaque)
{
    (*(unsigned *)opaque)++;
}

void dh_count_lapic_kicks(struct machine *m, unsigned *kicks)
{
    for (unsigned i = 0; i < m->config.cpus; i++) {
        g_assert_nonnull(m->lapic[i]);
        kicks[i] = 0;
        lapic_set_kick(m->lapic[i], count_kick, &kicks[i]);
    }
}

static uint64_t claimed_read(struct io_bus *bus, uint64_t addr, unsigned size)
{
    uint64_t v = 0;
    g_assert_true(io_bus_read(bus, addr, size, &v));
    return v;
}

uint64_t dh_pio_read(struct machine *m, uint64_t port, unsigned size)
{
    return claimed_read(&m->pio, port, size);
}

void dh_pio_write(struct machine *m, uint64_t port, unsigned size, uint64_t value)
{
    g_assert_true(io_bus_write(&m->pio, port, size, value));
}

uint64_t dh_mmio_read(struct machine *m, uint64_t addr, unsigned size)
{
    return claimed_read(&m->mmio, addr, size);
}

void dh_mmio_write(struct machine *m, uint64_t addr, unsigned size, uint64_t value)
{
    g_assert_true(io_bus_write(&m->mmio, addr, size, value));
}

uint8_t dh_inb(struct machine *m, uint16_t port)
{
    return (uint8_t)dh_pio_read(m, port, 1);
}

uint16_t dh_inw(struct machine *m, uint16_t port)
{
    return (uint16_t)dh_pio_read(m, port, 2);
}

uint32_t dh_inl(struct machine *m, uint16_t port)
{
    return (uint32_t)dh_pio_read(m, port, 4);
}

void dh_outb(struct machine *m, uint16_t port, uint8_t value)
{
    dh_pio_write(m, port, 1, value);
}

void dh_outw(struct machine *m, uint16_t port, uint16_t value)
{
    dh_pio_write(m, port, 2, value);
}

void dh_outl(struct machine *m, uint16_t port, uint32_t value)
{
    dh_pio_write(m, port, 4, value);
}

uint32_t dh_readl(struct machine *m, uint64_t addr)
{
    return (uint32_t)dh_mmio_read(m, addr, 4);
}

void dh_writel(struct machine *m, uint64_t addr, uint32_t value)
{
    dh_mmio_write(m, addr, 4, value);
}

uint64_t dh_pio_read_unchecked(struct machine *m, uint64_t port, unsigned size)
{
    uint64_t v = 0;
    io_bus_read(&m->pio, port, size, &v);
    return v;
}

static int log_fd = -1;

void dh_log_capture(void)
{
    if (log_fd < 0) {
        log_fd = memfd_create("dh-log", 0);
        g_assert_cmpint(log_fd, >=, 0);
    }
    g_assert_cmpint(ftruncate(log_fd, 0), ==, 0);
    g_assert_cmpint(lseek(log_fd, 0, SEEK_SET), ==, 0);
    log_set_fd(log_fd);
}

void dh_assert_logged(const char *needle)
{
    off_t n = lseek(log_fd, 0, SEEK_END);
    g_autofree char *s = g_malloc0((size_t)n + 1);
    g_assert_cmpint(pread(log_fd, s, (size_t)n, 0), ==, n);
    if (!strstr(s, needle))
        g_error("log does not contain \"%s\":\n%s", needle, s);
}
