/* 16550A UART: register file, FIFOs, interrupt identification, chardev line. */
#include "uart8250.h"

#include <errno.h>
#include <string.h>

#include "chardev.h"
#include "log.h"

static struct log_ratelimit uart_rl = LOG_RATELIMIT_INIT(5000, 5);

static bool uart_fifo_enabled(const struct uart8250 *u)
{
    return u->fcr & UART_FCR_ENABLE;
}

static unsigned uart_rx_capacity(const struct uart8250 *u)
{
    return uart_fifo_enabled(u) ? UART_FIFO_SIZE : 1;
}

static unsigned uart_rx_trigger(const struct uart8250 *u)
{
    static const uint8_t levels[4] = {1, 4, 8, 14};
    return uart_fifo_enabled(u) ? levels[u->fcr >> UART_FCR_TRIGGER_SHIFT] : 1;
}

/* Interrupt identification in the 16550's priority order. */
static uint8_t uart_iir(const struct uart8250 *u)
{
    uint8_t id = UART_IIR_NO_INT;
    if ((u->ier & UART_IER_ELSI) && (u->lsr & UART_LSR_ERRORS))
        id = UART_IIR_RLSI;
    else if ((u->ier & UART_IER_ERBFI) && u->rx_count >= uart_rx_trigger(u))
        id = UART_IIR_RDI;
    else if ((u->ier & UART_IER_ERBFI) && u->timeout_interrupt)
        id = UART_IIR_CTI;
    else if ((u->ier & UART_IER_ETBEI) && u->thr_interrupt)
        id = UART_IIR_THRI;
    else if ((u->ier & UART_IER_EDSSI) && (u->msr & UART_MSR_DELTAS))
        id = UART_IIR_MSI;
    return (uint8_t)(id | (uart_fifo_enabled(u) ? UART_IIR_FIFO_ENABLED : 0));
}

/* On a PC, OUT2 enables the IRQ driver; in loopback the modem outputs are forced inactive, so no IRQ either.
 */
static void uart_update_irq(struct uart8250 *u)
{
    bool level = !(uart_iir(u) & UART_IIR_NO_INT) && (u->mcr & UART_MCR_OUT2) && !(u->mcr & UART_MCR_LOOP);
    if (level != u->irq_level) {
        u->irq_level = level;
        irq_set_level(machine_gsi(u->m, u->irq), level);
    }
}

/* One character's time on the wire at the current divisor and frame format. */
static int64_t uart_char_ns(const struct uart8250 *u)
{
    unsigned bits = 1 + 5 + (u->lcr & UART_LCR_WLS_MASK) + ((u->lcr & UART_LCR_PEN) ? 1 : 0) +
                    ((u->lcr & UART_LCR_STB) ? 2 : 1);
    unsigned divisor = u->divisor ? u->divisor : 0x10000;
    return (int64_t)bits * divisor * 16 * NSEC_PER_SEC / UART_CLOCK_HZ;
}

/* The character timeout: data below the trigger level, nothing received or read for four character times. */
static void uart_restart_timeout(struct uart8250 *u)
{
    if (uart_fifo_enabled(u) && u->rx_count > 0 && u->rx_count < uart_rx_trigger(u))
        vtimer_arm(&u->timeout_timer, vclock_now(u->m->clock) + 4 * uart_char_ns(u));
    else
        vtimer_cancel(&u->timeout_timer);
}

static void uart_timeout_cb(void *opaque)
{
    struct uart8250 *u = opaque;
    if (uart_fifo_enabled(u) && u->rx_count > 0) {
        u->timeout_interrupt = true;
        uart_update_irq(u);
    }
}

static void uart_rx_push(struct uart8250 *u, uint8_t b)
{
    if (u->rx_count >= uart_rx_capacity(u)) {
        u->lsr |= UART_LSR_OE; /* the character in the shift register is lost */
        return;
    }
    u->rx_fifo[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = b;
    u->rx_count++;
    u->lsr |= UART_LSR_DR;
}

static void uart_rx_clear(struct uart8250 *u)
{
    u->rx_head = 0;
    u->rx_count = 0;
    u->timeout_interrupt = false;
    u->lsr &= (uint8_t)~UART_LSR_DR;
}

/* Moves waiting backend bytes into the receive FIFO as far as it has room. */
static void uart_feed(struct uart8250 *u)
{
    if (u->mcr & UART_MCR_LOOP)
        return; /* the receiver is disconnected from the line */
    while (u->hq_count && u->rx_count < uart_rx_capacity(u)) {
        uart_rx_push(u, u->host_queue[u->hq_head]);
        u->hq_head = (u->hq_head + 1) % UART_HOST_QUEUE_SIZE;
        u->hq_count--;
    }
}

static void uart_rx_changed(struct uart8250 *u)
{
    uart_restart_timeout(u);
    uart_update_irq(u);
}

static uint8_t uart_modem_inputs(const struct uart8250 *u)
{
    if (!(u->mcr & UART_MCR_LOOP))
        return UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD; /* the backend is always ready */
    uint8_t v = 0;
    if (u->mcr & UART_MCR_RTS)
        v |= UART_MSR_CTS;
    if (u->mcr & UART_MCR_DTR)
        v |= UART_MSR_DSR;
    if (u->mcr & UART_MCR_OUT1)
        v |= UART_MSR_RI;
    if (u->mcr & UART_MCR_OUT2)
        v |= UART_MSR_DCD;
    return v;
}

static void uart_update_msr(struct uart8250 *u)
{
    uint8_t now = uart_modem_inputs(u), old = u->msr & ~UART_MSR_DELTAS, deltas = 0;
    uint8_t changed = now ^ old;
    if (changed & UART_MSR_CTS)
        deltas |= UART_MSR_DCTS;
    if (changed & UART_MSR_DSR)
        deltas |= UART_MSR_DDSR;
    if (changed & UART_MSR_DCD)
        deltas |= UART_MSR_DDCD;
    if ((old & UART_MSR_RI) && !(now & UART_MSR_RI))
        deltas |= UART_MSR_TERI; /* trailing edge only */
    u->msr = (uint8_t)(now | (u->msr & UART_MSR_DELTAS) | deltas);
}

static void uart_write_thr(struct uart8250 *u, uint8_t b)
{
    u->thr_interrupt = false;
    uart_update_irq(u);
    if (u->mcr & UART_MCR_LOOP) {
        uart_rx_push(u, b);
        uart_restart_timeout(u);
    } else if (u->chr) {
        chardev_write(u->chr, &b, 1); /* never blocks; a slow reader loses bytes in the backend */
    }
    u->tx_bytes++;
    /* The backend takes the byte at once: the holding and shift registers are empty again. */
    u->lsr |= UART_LSR_THRE | UART_LSR_TEMT;
    u->thr_interrupt = true;
    uart_update_irq(u);
}

static void uart_write_fcr(struct uart8250 *u, uint8_t v)
{
    if ((v ^ u->fcr) & UART_FCR_ENABLE)
        uart_rx_clear(u); /* switching the FIFOs on or off empties them */
    if (v & UART_FCR_CLEAR_RCVR)
        uart_rx_clear(u);
    /* The other bits are programmed only together with FIFO enable. */
    u->fcr = (v & UART_FCR_ENABLE) ? (uint8_t)(v & (UART_FCR_ENABLE | UART_FCR_DMA_MODE | 0xC0)) : 0;
    uart_feed(u);
    uart_rx_changed(u);
}

static uint8_t uart_read_rbr(struct uart8250 *u)
{
    uint8_t b = 0;
    if (u->rx_count) {
        b = u->rx_fifo[u->rx_head];
        u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
        u->rx_count--;
    }
    u->timeout_interrupt = false;
    uart_feed(u);
    if (!u->rx_count)
        u->lsr &= (uint8_t)~UART_LSR_DR;
    uart_rx_changed(u);
    return b;
}

static uint8_t uart_read(struct uart8250 *u, unsigned reg)
{
    bool dlab = u->lcr & UART_LCR_DLAB;
    uint8_t v;
    switch (reg) {
    case UART_RBR:
        return dlab ? (uint8_t)u->divisor : uart_read_rbr(u);
    case UART_IER:
        return dlab ? (uint8_t)(u->divisor >> 8) : u->ier;
    case UART_IIR:
        v = uart_iir(u);
        if ((v & 0x0F) == UART_IIR_THRI) {
            u->thr_interrupt = false; /* reading IIR that names THRE acknowledges it */
            uart_update_irq(u);
        }
        return v;
    case UART_LCR:
        return u->lcr;
    case UART_MCR:
        return u->mcr;
    case UART_LSR:
        v = u->lsr;
        if (v & UART_LSR_ERRORS) {
            u->lsr &= (uint8_t) ~(UART_LSR_ERRORS | UART_LSR_FIFO_ERROR);
            uart_update_irq(u);
        }
        return v;
    case UART_MSR:
        v = u->msr;
        if (v & UART_MSR_DELTAS) {
            u->msr &= (uint8_t)~UART_MSR_DELTAS;
            uart_update_irq(u);
        }
        return v;
    default:
        return u->scr;
    }
}

static void uart_write(struct uart8250 *u, unsigned reg, uint8_t v)
{
    bool dlab = u->lcr & UART_LCR_DLAB;
    switch (reg) {
    case UART_THR:
        if (dlab)
            u->divisor = (uint16_t)((u->divisor & 0xFF00) | v);
        else
            uart_write_thr(u, v);
        break;
    case UART_IER:
        if (dlab) {
            u->divisor = (uint16_t)((u->divisor & 0x00FF) | v << 8);
        } else {
            /* Enabling ETBEI with the holding register empty raises THRE at once. */
            if (!(u->ier & UART_IER_ETBEI) && (v & UART_IER_ETBEI) && (u->lsr & UART_LSR_THRE))
                u->thr_interrupt = true;
            u->ier = v & UART_IER_MASK;
            uart_update_irq(u);
        }
        break;
    case UART_FCR:
        uart_write_fcr(u, v);
        break;
    case UART_LCR:
        u->lcr = v;
        break;
    case UART_MCR: {
        bool was_loop = u->mcr & UART_MCR_LOOP;
        u->mcr = v & UART_MCR_MASK;
        uart_update_msr(u);
        if (was_loop && !(u->mcr & UART_MCR_LOOP)) {
            uart_feed(u);
            uart_rx_changed(u);
        } else {
            uart_update_irq(u);
        }
        break;
    }
    case UART_LSR:
    case UART_MSR:
        log_message_ratelimited(&uart_rl, LOG_LEVEL_DEBUG, "uart: write 0x%02x to read-only register %u", v,
                                reg);
        break;
    default:
        u->scr = v;
        break;
    }
}

static uint64_t uart_io_read(void *opaque, uint64_t offset, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)uart_read(opaque, (unsigned)(offset + i)) << (8 * i);
    return v;
}

static void uart_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        uart_write(opaque, (unsigned)(offset + i), (uint8_t)(value >> (8 * i)));
}

static const struct io_ops uart_ops = {.read = uart_io_read, .write = uart_io_write};

size_t uart8250_receive(struct uart8250 *u, const uint8_t *buf, size_t len)
{
    struct machine *m = u->m;
    size_t taken = 0;
    machine_lock(m);
    for (; taken < len && u->hq_count < UART_HOST_QUEUE_SIZE; taken++) {
        u->host_queue[(u->hq_head + u->hq_count) % UART_HOST_QUEUE_SIZE] = buf[taken];
        u->hq_count++;
    }
    if (taken < len) {
        u->rx_dropped += len - taken;
        log_message_ratelimited(&uart_rl, LOG_LEVEL_WARN, "uart: input queue full, %zu bytes dropped",
                                len - taken);
    }
    uart_feed(u);
    uart_rx_changed(u);
    machine_unlock(m);
    return taken;
}

static void uart_chardev_receive(void *opaque, const uint8_t *buf, size_t len)
{
    uart8250_receive(opaque, buf, len);
}

/* Master reset: registers to their power-on values; the divisor, scratch register and line stay. */
static void uart_reset_state(struct uart8250 *u)
{
    vtimer_cancel(&u->timeout_timer);
    u->ier = 0;
    u->fcr = 0;
    u->lcr = 0;
    u->mcr = 0;
    u->lsr = UART_LSR_THRE | UART_LSR_TEMT;
    u->msr = uart_modem_inputs(u);
    uart_rx_clear(u);
    u->thr_interrupt = false;
    uart_update_irq(u);
}

static void uart_com1_reset(struct machine *m)
{
    uart_reset_state(m->com1);
}

static int uart_com1_create(struct machine *m, char **error)
{
    struct uart8250 *u = g_new0(struct uart8250, 1);
    u->m = m;
    u->base = UART_COM1_BASE;
    u->irq = UART_COM1_IRQ;
    u->divisor = 1;
    vtimer_init(&u->timeout_timer, m->clock, uart_timeout_cb, u);
    int r = io_bus_register(&m->pio, u->base, 8, &uart_ops, u, "com1", NULL);
    if (r < 0) {
        *error = g_strdup_printf("ports 0x%x-0x%x: %s", u->base, u->base + 7, g_strerror(-r));
        g_free(u);
        return r;
    }
    m->com1 = u;
    uart_reset_state(u);
    u->chr = m->config.serial;
    if (u->chr)
        chardev_set_handlers(u->chr, uart_chardev_receive, NULL, u);
    return 0;
}

static void uart_com1_destroy(struct machine *m)
{
    struct uart8250 *u = m->com1;
    if (!u)
        return;
    if (u->chr)
        chardev_set_handlers(u->chr, NULL, NULL, NULL);
    vtimer_cancel(&u->timeout_timer);
    io_bus_unregister(&m->pio, u->base, u);
    if (u->irq_level)
        irq_set_level(machine_gsi(m, u->irq), 0);
    g_free(u);
    m->com1 = NULL;
}

const struct machine_device uart_com1_device = {"uart-com1", uart_com1_create, uart_com1_reset,
                                                uart_com1_destroy};
