/* System control ports 0x61, 0x92, 0xCF9 and 0x80. */
#include "sysctl_ports.h"

#include <errno.h>

#include "log.h"
#include "pit.h"

static uint8_t portb_read(struct sysctl_ports *s)
{
    struct machine *m = s->m;
    uint8_t v = s->port_b;
    if ((vclock_now(m->clock) / SYSCTL_REFRESH_PERIOD_NS) & 1)
        v |= SYSCTL_PORTB_REFRESH;
    if (m->pit && pit_get_out(m->pit, 2))
        v |= SYSCTL_PORTB_TIMER2_OUT;
    return v; /* no parity or I/O channel errors ever happen */
}

static void portb_write(struct sysctl_ports *s, uint8_t v)
{
    s->port_b = v & SYSCTL_PORTB_WRITABLE;
    if (s->m->pit)
        pit_set_gate(s->m->pit, 2, v & SYSCTL_PORTB_TIMER2_GATE);
    /* The speaker data bit is kept but makes no sound: there is no audio path. */
}

static void porta_write(struct sysctl_ports *s, uint8_t v)
{
    bool reset = (v & SYSCTL_PORTA_FAST_RESET) && !(s->port_a & SYSCTL_PORTA_FAST_RESET);
    /* A20 is never masked (no real-mode firmware runs); the bit is kept for reads. */
    s->port_a = v & (SYSCTL_PORTA_FAST_RESET | SYSCTL_PORTA_A20);
    if (reset)
        machine_request(s->m, MACHINE_REQUEST_RESET);
}

uint8_t sysctl_ports_rcr_read(struct sysctl_ports *s)
{
    return s->rcr;
}

void sysctl_ports_rcr_write(struct sysctl_ports *s, uint8_t v)
{
    /* RST_CPU starts the reset (hard or soft, per SYS_RST); it reads back as 0. */
    s->rcr = v & (SYSCTL_RCR_SYS_RST | SYSCTL_RCR_FULL_RST);
    if (v & SYSCTL_RCR_RST_CPU)
        machine_request(s->m, MACHINE_REQUEST_RESET);
}

static uint8_t sysctl_read_byte(struct sysctl_ports *s, uint16_t port)
{
    switch (port) {
    case SYSCTL_PORTB:
        return portb_read(s);
    case SYSCTL_PORTA:
        return s->port_a;
    case SYSCTL_RCR:
        return sysctl_ports_rcr_read(s);
    default:
        return s->post_code;
    }
}

static void sysctl_write_byte(struct sysctl_ports *s, uint16_t port, uint8_t v)
{
    switch (port) {
    case SYSCTL_PORTB:
        portb_write(s, v);
        break;
    case SYSCTL_PORTA:
        porta_write(s, v);
        break;
    case SYSCTL_RCR:
        sysctl_ports_rcr_write(s, v);
        break;
    default:
        s->post_code = v;
        break;
    }
}

/* Each port is its own one-byte region (so every access is a byte access); its handlers know which port they
 * serve. */
#define SYSCTL_PORT_OPS(name, port)                                                                          \
    static uint64_t name##_io_read(void *opaque, uint64_t offset, unsigned size)                             \
    {                                                                                                        \
        return sysctl_read_byte(opaque, port);                                                               \
    }                                                                                                        \
    static void name##_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)                \
    {                                                                                                        \
        sysctl_write_byte(opaque, port, (uint8_t)value);                                                     \
    }                                                                                                        \
    static const struct io_ops name##_ops = {.read = name##_io_read, .write = name##_io_write};

SYSCTL_PORT_OPS(portb, SYSCTL_PORTB)
SYSCTL_PORT_OPS(porta, SYSCTL_PORTA)
SYSCTL_PORT_OPS(rcr, SYSCTL_RCR)
SYSCTL_PORT_OPS(post, SYSCTL_POST)

static const struct {
    uint16_t port;
    const struct io_ops *ops;
    const char *name;
} sysctl_regions[] = {
    {SYSCTL_POST, &post_ops, "post-code"},
    {SYSCTL_PORTB, &portb_ops, "sysctl-port-b"},
    {SYSCTL_PORTA, &porta_ops, "sysctl-port-a"},
    {SYSCTL_RCR, &rcr_ops, "reset-control"},
};

static void sysctl_ports_reset(struct machine *m)
{
    struct sysctl_ports *s = m->sysctl_ports;
    s->port_b = 0;
    s->port_a = 0;
    s->rcr = 0;
    s->post_code = 0;
    if (m->pit)
        pit_set_gate(m->pit, 2, false);
}

static void sysctl_ports_destroy(struct machine *m)
{
    struct sysctl_ports *s = m->sysctl_ports;
    if (!s)
        return;
    for (unsigned i = 0; i < G_N_ELEMENTS(sysctl_regions); i++)
        if ((sysctl_regions[i].port != SYSCTL_RCR || s->rcr_registered) &&
            !(sysctl_regions[i].port == 0x61 && s->portb_absent))
            io_bus_unregister(&m->pio, sysctl_regions[i].port, s);
    g_free(s);
    m->sysctl_ports = NULL;
}

static int sysctl_ports_create(struct machine *m, char **error)
{
    struct sysctl_ports *s = g_new0(struct sysctl_ports, 1);
    s->m = m;
    m->sysctl_ports = s;
    for (unsigned i = 0; i < G_N_ELEMENTS(sysctl_regions); i++) {
        uint16_t port = sysctl_regions[i].port;
        /* Without our PIT the CPU backend's in-kernel PIT decodes port 0x61 itself (KVM's speaker port). */
        if (port == 0x61 && !m->pit) {
            s->portb_absent = true;
            continue;
        }
        int r = io_bus_register(&m->pio, port, 1, sysctl_regions[i].ops, s, sysctl_regions[i].name, NULL);
        if (r == -EEXIST && port == SYSCTL_RCR) {
            log_debug("sysctl: 0xCF9 is decoded by the PCI host bridge, which forwards it");
            continue;
        }
        if (r < 0) {
            *error = g_strdup_printf("port 0x%x: %s", port, g_strerror(-r));
            sysctl_ports_destroy(m);
            return r;
        }
        if (port == SYSCTL_RCR)
            s->rcr_registered = true;
    }
    sysctl_ports_reset(m);
    return 0;
}

const struct machine_device sysctl_ports_device = {"sysctl-ports", sysctl_ports_create, sysctl_ports_reset,
                                                   sysctl_ports_destroy};
