/* Proves the 16550A UART: loopback, divisor latch, trigger and timeout interrupts, THRE, IIR priority, OUT2
 * gating of IRQ 4, LSR/MSR bits, output to a chardev and the bounded receive path. */
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "chardev.h"
#include "device_harness.h"
#include "machine.h"
#include "uart8250.h"

#define COM1 0x3F8

static const struct machine_device *const devices[] = {&uart_com1_device};

static void setup_chr(struct machine *m, struct irq_recorder *r, struct chardev *chr)
{
    struct machine_config cfg = {.ram_size = 16 << 20, .cpus = 1, .serial = chr};
    dh_machine_init_cfg(m, &cfg, devices, 1);
    dh_record_irqs(m, r, DH_GSI(4));
}

static void setup(struct machine *m, struct irq_recorder *r)
{
    setup_chr(m, r, NULL);
}

/* A COM1 register by its offset. */
static void outb(struct machine *m, unsigned reg, uint8_t v)
{
    dh_outb(m, COM1 + reg, v);
}

static uint8_t inb(struct machine *m, unsigned reg)
{
    return dh_inb(m, COM1 + reg);
}

static void test_loopback(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    outb(&m, UART_MCR, UART_MCR_LOOP);
    g_assert_cmphex(inb(&m, UART_LSR), ==, UART_LSR_THRE | UART_LSR_TEMT);
    outb(&m, UART_THR, 'A');
    g_assert_cmphex(inb(&m, UART_LSR), ==, UART_LSR_THRE | UART_LSR_TEMT | UART_LSR_DR);
    g_assert_cmphex(inb(&m, UART_RBR), ==, 'A');
    g_assert_cmphex(inb(&m, UART_LSR), ==, UART_LSR_THRE | UART_LSR_TEMT);
    /* with FIFOs, sixteen bytes loop back in order */
    outb(&m, UART_FCR, UART_FCR_ENABLE);
    for (int i = 0; i < 16; i++)
        outb(&m, UART_THR, (uint8_t)('a' + i));
    for (int i = 0; i < 16; i++)
        g_assert_cmphex(inb(&m, UART_RBR), ==, 'a' + i);
    g_assert_cmphex(inb(&m, UART_LSR) & UART_LSR_DR, ==, 0);
    g_assert_cmpuint(m.com1->tx_bytes, ==, 17);
    dh_machine_fini(&m);
}

static void test_divisor_latch(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    outb(&m, UART_IER, 0x05);
    outb(&m, UART_LCR, UART_LCR_DLAB | 0x03);
    outb(&m, UART_DLL, 0x0C);
    outb(&m, UART_DLM, 0x01);
    g_assert_cmphex(inb(&m, UART_DLL), ==, 0x0C);
    g_assert_cmphex(inb(&m, UART_DLM), ==, 0x01);
    g_assert_cmphex(inb(&m, UART_LCR), ==, UART_LCR_DLAB | 0x03);
    outb(&m, UART_LCR, 0x03);
    g_assert_cmphex(inb(&m, UART_IER), ==, 0x05);
    g_assert_cmpuint(m.com1->divisor, ==, 0x010C);
    /* the THR write with DLAB clear transmits and leaves the divisor alone */
    outb(&m, UART_THR, 'x');
    g_assert_cmpuint(m.com1->divisor, ==, 0x010C);
    outb(&m, UART_SCR, 0x5A);
    g_assert_cmphex(inb(&m, UART_SCR), ==, 0x5A);
    dh_machine_fini(&m);
}

static void test_fifo_trigger(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    outb(&m, UART_FCR, UART_FCR_ENABLE | (2 << UART_FCR_TRIGGER_SHIFT)); /* trigger level 8 */
    outb(&m, UART_IER, UART_IER_ERBFI);
    outb(&m, UART_MCR, UART_MCR_OUT2 | UART_MCR_DTR | UART_MCR_RTS);
    uint8_t data[8] = "abcdefgh";
    g_assert_cmpuint(uart8250_receive(m.com1, data, 7), ==, 7);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_NO_INT);
    g_assert_cmpint(r.level[4], ==, 0);
    uart8250_receive(m.com1, data + 7, 1);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_RDI);
    g_assert_cmpint(r.level[4], ==, 1);
    g_assert_cmphex(inb(&m, UART_RBR), ==, 'a'); /* below the trigger again */
    g_assert_cmpint(r.level[4], ==, 0);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_NO_INT);
    /* trigger level 14 */
    outb(&m, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RCVR | (3 << UART_FCR_TRIGGER_SHIFT));
    g_assert_cmphex(inb(&m, UART_LSR) & UART_LSR_DR, ==, 0);
    uint8_t many[14];
    memset(many, 'z', sizeof(many));
    uart8250_receive(m.com1, many, 13);
    g_assert_cmpint(r.level[4], ==, 0);
    uart8250_receive(m.com1, many, 1);
    g_assert_cmpint(r.level[4], ==, 1);
    dh_machine_fini(&m);
}

static void test_char_timeout(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    outb(&m, UART_LCR, 0x03); /* 8N1: 10 bits a character */
    outb(&m, UART_FCR, UART_FCR_ENABLE | (3 << UART_FCR_TRIGGER_SHIFT));
    outb(&m, UART_IER, UART_IER_ERBFI);
    outb(&m, UART_MCR, UART_MCR_OUT2);
    uart8250_receive(m.com1, (const uint8_t *)"abc", 3);
    /* divisor 1: 10 * 16 / 1.8432 MHz = 86805 ns a character; four of them */
    vclock_advance(m.clock, 4 * 86805 - 1);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_NO_INT);
    vclock_advance(m.clock, 1);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_CTI);
    g_assert_cmpint(r.level[4], ==, 1);
    g_assert_cmphex(inb(&m, UART_RBR), ==, 'a'); /* reading clears the timeout and restarts it */
    g_assert_cmpint(r.level[4], ==, 0);
    vclock_advance(m.clock, 4 * 86805);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_CTI);
    inb(&m, UART_RBR);
    inb(&m, UART_RBR);
    vclock_advance(m.clock, 10 * 86805); /* empty: no timeout */
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_FIFO_ENABLED | UART_IIR_NO_INT);
    g_assert_cmpint(vclock_next_deadline(m.clock), ==, INT64_MAX);
    dh_machine_fini(&m);
}

static void test_thre_on_ier_enable(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    outb(&m, UART_MCR, UART_MCR_OUT2);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_NO_INT);
    outb(&m, UART_IER, UART_IER_ETBEI);
    g_assert_cmpint(r.level[4], ==, 1);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_THRI); /* reading IIR acknowledges THRE */
    g_assert_cmpint(r.level[4], ==, 0);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_NO_INT);
    /* re-enabling raises it again (Linux's THRE test relies on this) */
    outb(&m, UART_IER, 0);
    outb(&m, UART_IER, UART_IER_ETBEI);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_THRI);
    /* each transmitted byte empties the holding register again: a new edge */
    unsigned edges = r.raises[4];
    outb(&m, UART_THR, 'x');
    g_assert_cmpint(r.level[4], ==, 1);
    g_assert_cmpuint(r.raises[4], ==, edges + 1);
    dh_machine_fini(&m);
}

static void test_iir_priority(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    outb(&m, UART_MCR, UART_MCR_LOOP);
    inb(&m, UART_MSR); /* clear deltas from entering loopback */
    outb(&m, UART_THR, '1');
    outb(&m, UART_THR, '2');                          /* no FIFO: overrun */
    outb(&m, UART_MCR, UART_MCR_LOOP | UART_MCR_RTS); /* CTS changes: modem status */
    outb(&m, UART_IER, UART_IER_MASK);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_RLSI);
    g_assert_cmphex(inb(&m, UART_LSR), ==, UART_LSR_OE | UART_LSR_DR | UART_LSR_THRE | UART_LSR_TEMT);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_RDI);
    g_assert_cmphex(inb(&m, UART_RBR), ==, '1');
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_THRI);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_MSI);
    g_assert_cmphex(inb(&m, UART_MSR), ==, UART_MSR_CTS | UART_MSR_DCTS);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_NO_INT);
    /* loopback forces OUT2 inactive: nothing reached the ISA line */
    g_assert_cmpuint(r.raises[4], ==, 0);
    dh_machine_fini(&m);
}

static void test_out2_gating(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    outb(&m, UART_IER, UART_IER_ETBEI);
    g_assert_cmphex(inb(&m, UART_IIR) & 0x0F, ==, UART_IIR_THRI);
    g_assert_cmpint(r.level[4], ==, 0);
    outb(&m, UART_IER, 0);
    outb(&m, UART_IER, UART_IER_ETBEI);
    outb(&m, UART_MCR, UART_MCR_OUT2);
    g_assert_cmpint(r.level[4], ==, 1);
    outb(&m, UART_MCR, UART_MCR_DTR | UART_MCR_RTS);
    g_assert_cmpint(r.level[4], ==, 0);
    g_assert_cmphex(inb(&m, UART_IIR), ==, UART_IIR_THRI); /* still pending inside the UART */
    dh_machine_fini(&m);
}

static void test_lsr_msr(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    g_assert_cmphex(inb(&m, UART_LSR), ==, UART_LSR_THRE | UART_LSR_TEMT);
    g_assert_cmphex(inb(&m, UART_MSR), ==, UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD);
    uart8250_receive(m.com1, (const uint8_t *)"ab", 2);
    g_assert_cmphex(inb(&m, UART_LSR), ==, UART_LSR_THRE | UART_LSR_TEMT | UART_LSR_DR);
    /* loopback: modem inputs follow MCR */
    outb(&m, UART_MCR, UART_MCR_LOOP);
    g_assert_cmphex(inb(&m, UART_MSR), ==, UART_MSR_DCTS | UART_MSR_DDSR | UART_MSR_DDCD);
    outb(&m, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1 | UART_MCR_OUT2);
    g_assert_cmphex(inb(&m, UART_MSR), ==,
                    UART_MSR_DSR | UART_MSR_RI | UART_MSR_DCD | UART_MSR_DDSR | UART_MSR_DDCD);
    outb(&m, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT2);
    g_assert_cmphex(inb(&m, UART_MSR), ==, UART_MSR_DSR | UART_MSR_DCD | UART_MSR_TERI);
    dh_machine_fini(&m);
}

static void test_rx_queue(void)
{
    struct machine m;
    struct irq_recorder r;
    setup(&m, &r);
    outb(&m, UART_FCR, UART_FCR_ENABLE);
    static uint8_t data[5000];
    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    g_assert_cmpuint(uart8250_receive(m.com1, data, sizeof(data)), ==, UART_HOST_QUEUE_SIZE);
    g_assert_cmpuint(m.com1->rx_dropped, ==, sizeof(data) - UART_HOST_QUEUE_SIZE);
    for (unsigned i = 0; i < UART_HOST_QUEUE_SIZE; i++) {
        g_assert_cmphex(inb(&m, UART_LSR) & UART_LSR_DR, ==, UART_LSR_DR);
        g_assert_cmphex(inb(&m, UART_RBR), ==, (uint8_t)(i * 7));
    }
    g_assert_cmphex(inb(&m, UART_LSR) & UART_LSR_DR, ==, 0);
    g_assert_cmphex(inb(&m, UART_LSR) & UART_LSR_OE, ==, 0); /* the host queue never overruns the FIFO */
    dh_machine_fini(&m);
}

static void test_output_to_file(void)
{
    char *dir = g_dir_make_tmp("deskvm-uart-XXXXXX", NULL);
    g_assert_nonnull(dir);
    char *path = g_build_filename(dir, "serial.log", NULL);
    struct chardev_spec spec = {.kind = CHARDEV_FILE, .path = path};
    char *err = NULL;
    struct chardev *chr = chardev_open(&spec, &err);
    g_assert_nonnull(chr);
    struct machine m;
    struct irq_recorder r;
    setup_chr(&m, &r, chr);
    for (const char *p = "hello\n"; *p; p++) {
        g_assert_cmphex(inb(&m, UART_LSR) & UART_LSR_THRE, ==, UART_LSR_THRE);
        outb(&m, UART_THR, (uint8_t)*p);
    }
    outb(&m, UART_MCR, UART_MCR_LOOP);
    outb(&m, UART_THR, '!'); /* loopback: not on the line */
    dh_machine_fini(&m);
    chardev_flush(chr, 1000);
    chardev_close(chr);
    char *contents = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    g_assert_cmpstr(contents, ==, "hello\n");
    g_free(contents);
    g_unlink(path);
    g_rmdir(dir);
    g_free(path);
    g_free(dir);
}

static void test_none_chardev_and_wide_access(void)
{
    struct chardev_spec spec = {.kind = CHARDEV_NONE};
    char *err = NULL;
    struct chardev *chr = chardev_open(&spec, &err);
    g_assert_nonnull(chr);
    struct machine m;
    struct irq_recorder r;
    setup_chr(&m, &r, chr);
    outb(&m, UART_THR, 'q'); /* dropped by the backend, still "sent" */
    g_assert_cmphex(inb(&m, UART_LSR), ==, UART_LSR_THRE | UART_LSR_TEMT);
    /* a 16-bit read of LCR/MCR reaches both byte registers */
    outb(&m, UART_LCR, 0x03);
    outb(&m, UART_MCR, 0x0B);
    uint64_t v = 0;
    g_assert_true(io_bus_read(&m.pio, COM1 + UART_LCR, 2, &v));
    g_assert_cmphex(v, ==, 0x0B03);
    dh_machine_fini(&m);
    chardev_close(chr);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/uart/loopback/thr-comes-back-in-rbr", test_loopback);
    g_test_add_func("/uart/divisor/latch-behind-dlab", test_divisor_latch);
    g_test_add_func("/uart/fifo/trigger-level-interrupt", test_fifo_trigger);
    g_test_add_func("/uart/fifo/character-timeout-after-4-chars", test_char_timeout);
    g_test_add_func("/uart/thre/interrupt-on-ier-enable", test_thre_on_ier_enable);
    g_test_add_func("/uart/iir/priority-order", test_iir_priority);
    g_test_add_func("/uart/irq/out2-gates-irq4", test_out2_gating);
    g_test_add_func("/uart/lsr-msr/bits", test_lsr_msr);
    g_test_add_func("/uart/rx/host-queue-feeds-fifo-then-drops", test_rx_queue);
    g_test_add_func("/uart/tx/output-reaches-file-chardev", test_output_to_file);
    g_test_add_func("/uart/tx/none-backend-and-wide-access", test_none_chardev_and_wide_access);
    return g_test_run();
}
