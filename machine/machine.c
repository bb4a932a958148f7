/* Machine core: memory, buses, clock, interrupt routing, device table. */
#include "machine.h"

#include <errno.h>
#include <string.h>

#include "input.h"
#include "log.h"

static __thread unsigned current_cpu;

unsigned machine_current_cpu(void)
{
    return current_cpu;
}

void machine_set_current_cpu(unsigned index)
{
    current_cpu = index;
}

static void gsi_handler(void *opaque, unsigned n, int level)
{
    struct machine *m = opaque;
    if (m->irqchip && m->irqchip->set_gsi)
        m->irqchip->set_gsi(m->irqchip_opaque, n, level);
}

int machine_init(struct machine *m, const struct machine_config *cfg, const struct machine_device *const *devices,
                 unsigned ndevices, char **error)
{
    memset(m, 0, sizeof(*m));
    g_rec_mutex_init(&m->lock);
    m->config = *cfg;
    if (cfg->cpus < 1 || cfg->cpus > MACHINE_MAX_CPUS) {
        *error = g_strdup_printf("%u CPUs: must be 1 to %d", cfg->cpus, MACHINE_MAX_CPUS);
        g_rec_mutex_clear(&m->lock);
        return -EINVAL;
    }
    int r = guest_memory_init(&m->mem, cfg->ram_size);
    if (r < 0) {
        *error = g_strdup_printf("guest RAM of %llu bytes: %s", (unsigned long long)cfg->ram_size, g_strerror(-r));
        g_rec_mutex_clear(&m->lock);
        return r;
    }
    io_bus_init(&m->pio, "pio");
    io_bus_init(&m->mmio, "mmio");
    m->clock = vclock_new(cfg->manual_clock, &m->lock);
    m->input = input_new(m);
    for (unsigned i = 0; i < MACHINE_GSI_COUNT; i++)
        m->gsi[i] = (struct irq_line){gsi_handler, m, i};

    m->devices = devices;
    m->ndevices = ndevices;
    machine_lock(m);
    for (unsigned i = 0; i < ndevices; i++) {
        char *why = NULL;
        r = devices[i]->create(m, &why);
        if (r < 0) {
            *error = g_strdup_printf("device %s: %s", devices[i]->name, why ? why : g_strerror(-r));
            g_free(why);
            machine_unlock(m);
            machine_destroy(m);
            return r;
        }
        m->created = i + 1;
    }
    machine_unlock(m);
    return 0;
}

void machine_destroy(struct machine *m)
{
    if (m->clock)
        vclock_stop(m->clock);
    machine_lock(m);
    for (unsigned i = m->created; i-- > 0;)
        if (m->devices[i]->destroy)
            m->devices[i]->destroy(m);
    m->created = 0;
    input_free(m->input);
    m->input = NULL;
    machine_unlock(m);
    vclock_free(m->clock);
    m->clock = NULL;
    io_bus_destroy(&m->pio);
    io_bus_destroy(&m->mmio);
    guest_memory_destroy(&m->mem);
    if (m->devices_owned)
        g_free((void *)m->devices);
    g_rec_mutex_clear(&m->lock);
}

void machine_reset(struct machine *m)
{
    machine_lock(m);
    for (unsigned i = 0; i < m->created; i++)
        if (m->devices[i]->reset)
            m->devices[i]->reset(m);
    machine_unlock(m);
}

void machine_set_irqchip(struct machine *m, const struct irqchip_ops *ops, void *opaque)
{
    m->irqchip = ops;
    m->irqchip_opaque = opaque;
}

const struct irq_line *machine_gsi(struct machine *m, unsigned gsi)
{
    return gsi < MACHINE_GSI_COUNT ? &m->gsi[gsi] : NULL;
}

void machine_send_msi(struct machine *m, const struct msi_message *msg)
{
    if (m->irqchip && m->irqchip->send_msi)
        m->irqchip->send_msi(m->irqchip_opaque, msg);
}

void machine_set_request_handler(struct machine *m, void (*fn)(void *opaque, enum machine_request req), void *opaque)
{
    m->request = fn;
    m->request_opaque = opaque;
}

void machine_request(struct machine *m, enum machine_request req)
{
    if (m->request)
        m->request(m->request_opaque, req);
    else
        log_warn("machine: request %d with no handler", (int)req);
}
