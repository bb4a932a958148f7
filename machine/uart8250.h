/* TI/NS 16550A UART (COM1: ports 0x3F8-0x3FF, ISA IRQ 4 gated by MCR OUT2): 16-byte FIFOs, prioritised
 * interrupts, loopback, and the machine's serial chardev as the line. */
#ifndef DESKVM_UART8250_H
#define DESKVM_UART8250_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "machine.h"

#define UART_COM1_BASE 0x3F8
#define UART_COM1_IRQ 4
#define UART_FIFO_SIZE 16
#define UART_CLOCK_HZ 1843200 /* 115200 baud with divisor 1 */
/* Bytes from the backend waiting for room in the receive FIFO; more are dropped and counted. */
#define UART_HOST_QUEUE_SIZE 4096

/* Register offsets */
#define UART_RBR 0 /* read, DLAB=0 */
#define UART_THR 0 /* write, DLAB=0 */
#define UART_DLL 0 /* DLAB=1 */
#define UART_IER 1 /* DLAB=0 */
#define UART_DLM 1 /* DLAB=1 */
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define UART_IER_ERBFI 0x01 /* received data available */
#define UART_IER_ETBEI 0x02 /* transmitter holding register empty */
#define UART_IER_ELSI 0x04  /* receiver line status */
#define UART_IER_EDSSI 0x08 /* modem status */
#define UART_IER_MASK 0x0F

#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI 0x00
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_RLSI 0x06
#define UART_IIR_CTI 0x0C /* character timeout */
#define UART_IIR_FIFO_ENABLED 0xC0

#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RCVR 0x02
#define UART_FCR_CLEAR_XMIT 0x04
#define UART_FCR_DMA_MODE 0x08
#define UART_FCR_TRIGGER_SHIFT 6

#define UART_LCR_WLS_MASK 0x03
#define UART_LCR_STB 0x04
#define UART_LCR_PEN 0x08
#define UART_LCR_SBC 0x40 /* break */
#define UART_LCR_DLAB 0x80

#define UART_MCR_DTR 0x01
#define UART_MCR_RTS 0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10
#define UART_MCR_MASK 0x1F

#define UART_LSR_DR 0x01
#define UART_LSR_OE 0x02
#define UART_LSR_PE 0x04
#define UART_LSR_FE 0x08
#define UART_LSR_BI 0x10
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_LSR_FIFO_ERROR 0x80
#define UART_LSR_ERRORS (UART_LSR_OE | UART_LSR_PE | UART_LSR_FE | UART_LSR_BI)

#define UART_MSR_DCTS 0x01
#define UART_MSR_DDSR 0x02
#define UART_MSR_TERI 0x04
#define UART_MSR_DDCD 0x08
#define UART_MSR_DELTAS 0x0F
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80

struct uart8250 {
    struct machine *m;
    struct chardev *chr; /* NULL: output is dropped, nothing arrives */
    unsigned base;
    unsigned irq;

    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    uint16_t divisor;

    uint8_t rx_fifo[UART_FIFO_SIZE];
    unsigned rx_head, rx_count;
    bool thr_interrupt;     /* THRE interrupt pending (cleared by IIR read naming it or a THR write) */
    bool timeout_interrupt; /* character timeout pending (cleared by reading RBR) */
    bool irq_level;
    struct vtimer timeout_timer;

    /* Bytes from the backend not yet in the FIFO. */
    uint8_t host_queue[UART_HOST_QUEUE_SIZE];
    unsigned hq_head, hq_count;
    uint64_t rx_dropped;
    uint64_t tx_bytes;
};

extern const struct machine_device uart_com1_device;

/* Input from the line (the backend's receive callback calls this on the main loop); takes the machine lock.
 * Returns how many bytes were accepted (the rest was dropped: host queue full). */
size_t uart8250_receive(struct uart8250 *uart, const uint8_t *buf, size_t len);

#endif
