/* virtio-serial as a Linux-like driver sees it, with a fake port backend on the host side: PCI identity and
 * configuration, DEVICE_READY -> PORT_ADD per port, PORT_READY -> PORT_NAME (+ PORT_OPEN once the host is
 * connected), guest PORT_OPEN reaching the backend, exact bytes both ways, flow control both ways (the
 * bounded host queue, a full backend holding the guest's buffer), guest close dropping queued host data,
 * reset, and hostile control traffic (bad port ids, unknown events, short and small buffers, a guest that
 * posts no buffers). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include "device_harness.h"
#include "pci_host.h"
#include "serial_unix.h"
#include "virtio_driver.h"
#include "virtio_serial.h"

#define NPORTS_MAX 4 /* max_nr_ports of the test device: 10 queues */
#define NQUEUES (2 * (NPORTS_MAX + 1))
#define QSIZE 16
#define BUFSZ 4096
#define QBASE(n) (0x100000ULL + (uint64_t)(n)*0x10000)
/* Buffer b of queue n. */
#define BUF(n, b) (0x800000ULL + (uint64_t)(n)*0x100000 + (uint64_t)(b)*BUFSZ)
#define CTRL_RX VIRTIO_SERIAL_CTRL_RX
#define CTRL_TX VIRTIO_SERIAL_CTRL_TX
#define P1_RX VIRTIO_SERIAL_PORT_RX(1)
#define P1_TX VIRTIO_SERIAL_PORT_TX(1)

static const char name1[] = "org.deskvm.test.0";
static const char name2[] = "com.redhat.spice.0";

static struct virtio_serial *dev;
static struct serial_port *port1, *port2;
static struct vd_queue q[NQUEUES];
static uint16_t used_seen[NQUEUES];

/* ---------------------------------------------------------------- the fake backend */

struct fake_backend {
    GByteArray *got; /* what the guest wrote */
    size_t capacity; /* bytes it takes in all before it is full (SIZE_MAX: no limit) */
    GString *opens;  /* "1" / "0" per guest_open call */
    unsigned room_calls;
};

static struct fake_backend fake;

static void fb_guest_open(void *opaque, bool open)
{
    struct fake_backend *f = opaque;
    g_string_append_c(f->opens, open ? '1' : '0');
}

static size_t fb_guest_data(void *opaque, const uint8_t *buf, size_t len)
{
    struct fake_backend *f = opaque;
    size_t room = f->capacity - MIN(f->capacity, (size_t)f->got->len);
    size_t take = MIN(room, len);
    g_byte_array_append(f->got, buf, (guint)take);
    return take;
}

static void fb_host_room(void *opaque)
{
    struct fake_backend *f = opaque;
    f->room_calls++;
}

static const struct serial_port_backend_ops fake_ops = {fb_guest_open, fb_guest_data, fb_host_room};

/* ---------------------------------------------------------------- the driver side */

static void queue_setup(unsigned n)
{
    struct vd_queue *x = &q[n];
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SELECT, n, 2);
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, VIRTIO_SERIAL_QUEUE_SIZE);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_SIZE, QSIZE, 2);
    *x = (struct vd_queue){QSIZE, QBASE(n), QBASE(n) + 0x1000, QBASE(n) + 0x2000, 0};
    g_assert_cmpint(guest_mem_fill(&vd_m.mem, QBASE(n), 0, 0x10000), ==, 0);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_MSIX, n + 1, 2);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)x->desc, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_DESCHI, 0, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_AVAILLO, (uint32_t)x->avail, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_AVAILHI, 0, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)x->used, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_USEDHI, 0, 4);
    vd_common_wr(VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    used_seen[n] = 0;
}

static void driver_init(uint64_t want)
{
    vd_set_status(0);
    vd_set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    vd_write_driver_features(vd_device_features() & want);
    uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    vd_set_status(s);
    g_assert_cmphex(vd_status(), ==, s);
    vd_common_wr(VIRTIO_PCI_COMMON_MSIX, 0, 2);
    for (unsigned n = 0; n < NQUEUES; n++)
        queue_setup(n);
    vd_set_status(s | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* The driver posts a device-writable buffer of len bytes (one descriptor, its index = the avail slot). */
static void post_in(unsigned n, uint32_t len)
{
    struct vd_queue *x = &q[n];
    uint16_t d = x->avail_idx % x->size;
    vd_set_desc(x->desc, d, BUF(n, d), len, VIRTQ_DESC_F_WRITE, 0);
    vd_avail_add(x, d);
}

static void post_out(unsigned n, const void *data, uint32_t len)
{
    struct vd_queue *x = &q[n];
    uint16_t d = x->avail_idx % x->size;
    g_assert_cmpint(guest_mem_write(&vd_m.mem, BUF(n, d), data, len), ==, 0);
    vd_set_desc(x->desc, d, BUF(n, d), len, 0, 0);
    vd_avail_add(x, d);
}

/* The next used entry of queue n: its bytes (len returned), or -1 if there is none. */
static int next_used(unsigned n, uint8_t *out, size_t outsz)
{
    struct vd_queue *x = &q[n];
    if (vd_used_idx(x) == used_seen[n])
        return -1;
    uint64_t e = x->used + 4 + 8 * (uint64_t)(used_seen[n] % x->size);
    uint32_t id, len;
    g_assert_cmpint(guest_mem_read_u32(&vd_m.mem, e, &id), ==, 0);
    g_assert_cmpint(guest_mem_read_u32(&vd_m.mem, e + 4, &len), ==, 0);
    used_seen[n]++;
    g_assert_cmpuint(id, <, x->size);
    if (out) {
        g_assert_cmpuint(len, <=, outsz);
        g_assert_cmpint(guest_mem_read(&vd_m.mem, BUF(n, id), out, len), ==, 0);
    }
    return (int)len;
}

static void send_ctrl(uint32_t id, uint16_t event, uint16_t value)
{
    uint8_t m[VIRTIO_CONSOLE_CONTROL_SIZE];
    le32_store(m, id);
    le16_store(m + 4, event);
    le16_store(m + 6, value);
    post_out(CTRL_TX, m, sizeof(m));
    vd_kick(CTRL_TX);
    g_assert_cmpint(next_used(CTRL_TX, NULL, 0), ==, 0);
}

/* The next host control message is (id, event, value) followed by extra (NULL: nothing). */
static void expect_ctrl(uint32_t id, uint16_t event, uint16_t value, const char *extra)
{
    uint8_t m[BUFSZ];
    int len = next_used(CTRL_RX, m, sizeof(m));
    size_t want = VIRTIO_CONSOLE_CONTROL_SIZE + (extra ? strlen(extra) : 0);
    g_assert_cmpint(len, ==, (int)want);
    g_assert_cmpuint(le32_load(m), ==, id);
    g_assert_cmpuint(le16_load(m + 4), ==, event);
    g_assert_cmpuint(le16_load(m + 6), ==, value);
    if (extra)
        g_assert_cmpmem(m + VIRTIO_CONSOLE_CONTROL_SIZE, strlen(extra), extra, strlen(extra));
}

static void expect_no_ctrl(void)
{
    g_assert_cmpint(next_used(CTRL_RX, NULL, 0), ==, -1);
}

/* MSI-X messages per vector (vector v is queue v - 1's; vd_msix_enable programs data 0x40 + v). */
static unsigned msis[NQUEUES + 1];

static void count_msi(void *opaque, const struct msi_message *msg)
{
    g_assert_cmphex(msg->address, ==, MSI_ADDR);
    g_assert_cmpuint(msg->data - MSI_DATA(0), <=, NQUEUES);
    msis[msg->data - MSI_DATA(0)]++;
}

static void no_gsi(void *opaque, unsigned gsi, int level)
{
    g_assert_cmpint(level, ==, 0); /* MSI-X is on: INTx never rises */
}

static const struct irqchip_ops msi_counter = {no_gsi, count_msi};

static void setup_device(void)
{
    static const struct machine_device *const board[] = {&pci_host_device};
    dh_log_capture();
    dh_machine_init(&vd_m, board, G_N_ELEMENTS(board), 1, 64 * MiB);
    machine_set_irqchip(&vd_m, &msi_counter, NULL);
    memset(msis, 0, sizeof(msis));
    struct virtio_serial_conf conf = {.nports = 2, .names = {name1, name2}, .max_nr_ports = NPORTS_MAX};
    char *err = NULL;
    dev = virtio_serial_new(&vd_m, SLOT, &conf, &err);
    g_assert_null(err);
    g_assert_nonnull(dev);
    g_assert_cmpint(pci_host_assign_resources(vd_m.pci), ==, 0);
    port1 = virtio_serial_port(dev, name1);
    port2 = virtio_serial_port(dev, name2);
    g_assert_nonnull(port1);
    g_assert_nonnull(port2);
    g_assert_null(virtio_serial_port(dev, "nope"));
    fake =
        (struct fake_backend){.got = g_byte_array_new(), .capacity = SIZE_MAX, .opens = g_string_new(NULL)};
    serial_port_attach(port1, &fake_ops, &fake);
    vd_probe();
    vd_msix_enable();
}

static void teardown(void)
{
    virtio_serial_free(dev);
    dev = NULL;
    dh_machine_fini(&vd_m);
    g_byte_array_unref(fake.got);
    g_string_free(fake.opens, TRUE);
}

/* Driver up, control buffers posted, DEVICE_READY answered, both ports ready and named; port 1's host end
 * connected and the guest has it open with `rx` receive buffers. */
static void bring_up(unsigned rx)
{
    driver_init(F(VIRTIO_F_VERSION_1) | F(VIRTIO_CONSOLE_F_MULTIPORT));
    for (unsigned i = 0; i < 5; i++) /* exactly what the host sends below */
        post_in(CTRL_RX, BUFSZ);
    vd_kick(CTRL_RX);
    send_ctrl(0, VIRTIO_CONSOLE_DEVICE_READY, 1);
    expect_ctrl(1, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
    expect_ctrl(2, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
    expect_no_ctrl();
    send_ctrl(1, VIRTIO_CONSOLE_PORT_READY, 1);
    expect_ctrl(1, VIRTIO_CONSOLE_PORT_NAME, 1, name1);
    expect_no_ctrl(); /* the host end is not connected yet */
    send_ctrl(2, VIRTIO_CONSOLE_PORT_READY, 1);
    expect_ctrl(2, VIRTIO_CONSOLE_PORT_NAME, 1, name2);
    serial_port_set_host_connected(port1, true);
    expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    for (unsigned i = 0; i < rx; i++)
        post_in(P1_RX, BUFSZ);
    vd_kick(P1_RX);
    g_assert_false(serial_port_guest_is_open(port1));
    send_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
    g_assert_true(serial_port_guest_is_open(port1));
    g_assert_cmpint(fake.opens->str[fake.opens->len - 1], ==, '1');
}

/* ---------------------------------------------------------------- tests */

static void test_identity(void)
{
    setup_device();
    g_assert_cmphex(vd_cfg_read(PCI_VENDOR_ID, 2), ==, 0x1af4);
    g_assert_cmphex(vd_cfg_read(PCI_DEVICE_ID, 2), ==, 0x1043);
    g_assert_cmphex(vd_cfg_read(PCI_CLASS_PROG - 1, 4) >> 8, ==, 0x078000);
    g_assert_cmphex(vd_device_features(), ==, VIRTIO_CORE_FEATURES | F(VIRTIO_CONSOLE_F_MULTIPORT));
    g_assert_cmpuint(vd_common_rd(VIRTIO_PCI_COMMON_NUMQ, 2), ==, NQUEUES);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_CONSOLE_CFG_COLS, 2), ==, 0);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_CONSOLE_CFG_ROWS, 2), ==, 0);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, 4), ==, NPORTS_MAX);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_CONSOLE_CFG_EMERG_WR, 4), ==, 0);
    g_assert_cmpstr(serial_port_name(port2), ==, name2);
    teardown();
}

static void test_bad_conf(void)
{
    static const struct machine_device *const board[] = {&pci_host_device};
    dh_machine_init(&vd_m, board, G_N_ELEMENTS(board), 1, 64 * MiB);
    char *err = NULL;
    struct virtio_serial_conf dup = {.nports = 2, .names = {"a", "a"}};
    g_assert_null(virtio_serial_new(&vd_m, SLOT, &dup, &err));
    g_assert_cmpstr(err, ==, "port name 'a' given twice");
    g_clear_pointer(&err, g_free);
    struct virtio_serial_conf bad = {.nports = 1, .names = {"a/b"}};
    g_assert_null(virtio_serial_new(&vd_m, SLOT, &bad, &err));
    g_assert_nonnull(strstr(err, "'a/b'"));
    g_clear_pointer(&err, g_free);
    struct virtio_serial_conf small = {.nports = 2, .names = {"a", "b"}, .max_nr_ports = 2};
    g_assert_null(virtio_serial_new(&vd_m, SLOT, &small, &err));
    g_assert_nonnull(err);
    g_clear_pointer(&err, g_free);
    dh_machine_fini(&vd_m);
}

static void test_control_flow(void)
{
    setup_device();
    bring_up(0);
    expect_no_ctrl();
    /* The host end goes away and comes back: PORT_OPEN 0 / 1 for port 1 only. */
    post_in(CTRL_RX, BUFSZ);
    post_in(CTRL_RX, BUFSZ);
    vd_kick(CTRL_RX);
    serial_port_set_host_connected(port1, false);
    expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
    serial_port_set_host_connected(port1, false); /* no change: no message */
    expect_no_ctrl();
    serial_port_set_host_connected(port1, true);
    expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    /* The guest closes and reopens. */
    send_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 0);
    g_assert_false(serial_port_guest_is_open(port1));
    send_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
    g_assert_cmpstr(fake.opens->str, ==, "101");
    /* Control messages wait for control buffers (all used by now). */
    send_ctrl(0, VIRTIO_CONSOLE_DEVICE_READY, 1);
    expect_no_ctrl();
    post_in(CTRL_RX, BUFSZ);
    post_in(CTRL_RX, BUFSZ);
    vd_kick(CTRL_RX);
    expect_ctrl(1, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
    expect_ctrl(2, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
    teardown();
}

static void test_data(void)
{
    setup_device();
    bring_up(0);
    /* Guest to host: exact bytes, the buffer completed with 0 written. */
    static const char hello[] = "hello from the guest\n";
    post_out(P1_TX, hello, sizeof(hello) - 1);
    post_out(P1_TX, "more", 4);
    vd_kick(P1_TX);
    g_assert_cmpint(next_used(P1_TX, NULL, 0), ==, 0);
    g_assert_cmpint(next_used(P1_TX, NULL, 0), ==, 0);
    g_assert_cmpmem(fake.got->data, fake.got->len, "hello from the guest\nmore", 25);

    /* Host to guest: waits for a receive buffer, then arrives whole. */
    g_assert_cmpuint(serial_port_host_write(port1, "world", 5), ==, 5);
    g_assert_cmpint(next_used(P1_RX, NULL, 0), ==, -1);
    g_assert_cmpuint(msis[P1_RX + 1], ==, 0);
    post_in(P1_RX, BUFSZ);
    vd_kick(P1_RX);
    g_assert_cmpuint(msis[P1_RX + 1], ==, 1); /* the receive queue's vector */
    uint8_t buf[BUFSZ];
    g_assert_cmpint(next_used(P1_RX, buf, sizeof(buf)), ==, 5);
    g_assert_cmpmem(buf, 5, "world", 5);
    /* A small buffer takes what fits; the rest goes to the next one. */
    post_in(P1_RX, 3);
    post_in(P1_RX, BUFSZ);
    vd_kick(P1_RX);
    g_assert_cmpuint(serial_port_host_write(port1, "abcdefg", 7), ==, 7);
    g_assert_cmpint(next_used(P1_RX, buf, sizeof(buf)), ==, 3);
    g_assert_cmpmem(buf, 3, "abc", 3);
    g_assert_cmpint(next_used(P1_RX, buf, sizeof(buf)), ==, 4);
    g_assert_cmpmem(buf, 4, "defg", 4);

    /* Port 2 has no backend: its guest data is completed and dropped. */
    post_out(VIRTIO_SERIAL_PORT_TX(2), "xyz", 3);
    vd_kick(VIRTIO_SERIAL_PORT_TX(2));
    g_assert_cmpint(next_used(VIRTIO_SERIAL_PORT_TX(2), NULL, 0), ==, 0);
    struct virtio_serial_stats st;
    virtio_serial_get_stats(dev, &st);
    g_assert_cmpuint(st.guest_bytes_dropped, ==, 3);
    g_assert_cmpuint(st.guest_errors, ==, 0);
    teardown();
}

static void test_host_flow_control(void)
{
    setup_device();
    bring_up(0);
    /* No receive buffers: the host queue fills to its bound and then takes nothing. */
    size_t big = VIRTIO_SERIAL_HOST_QUEUE_MAX + 1000;
    uint8_t *data = g_malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 12));
    g_assert_cmpuint(serial_port_host_write(port1, data, big), ==, VIRTIO_SERIAL_HOST_QUEUE_MAX);
    g_assert_cmpuint(serial_port_host_room(port1), ==, 0);
    g_assert_cmpuint(serial_port_host_write(port1, data, 10), ==, 0);
    g_assert_cmpuint(fake.room_calls, ==, 0);
    /* Four buffers: 16 KiB go, the backend hears there is room once. */
    for (unsigned i = 0; i < 4; i++)
        post_in(P1_RX, BUFSZ);
    vd_kick(P1_RX);
    g_assert_cmpuint(fake.room_calls, ==, 1);
    g_assert_cmpuint(serial_port_host_room(port1), ==, 4 * BUFSZ);
    size_t off = 0;
    uint8_t buf[BUFSZ];
    int n;
    while ((n = next_used(P1_RX, buf, sizeof(buf))) >= 0) {
        g_assert_cmpint(n, ==, BUFSZ);
        g_assert_cmpmem(buf, BUFSZ, data + off, BUFSZ);
        off += (size_t)n;
    }
    g_assert_cmpuint(off, ==, 4 * BUFSZ);
    /* Drain the rest, 16 buffers at a time, in order. */
    while (off < VIRTIO_SERIAL_HOST_QUEUE_MAX) {
        for (unsigned i = 0; i < QSIZE; i++)
            post_in(P1_RX, BUFSZ);
        vd_kick(P1_RX);
        while ((n = next_used(P1_RX, buf, sizeof(buf))) > 0) {
            g_assert_cmpmem(buf, (size_t)n, data + off, (size_t)n);
            off += (size_t)n;
        }
    }
    g_assert_cmpuint(off, ==, VIRTIO_SERIAL_HOST_QUEUE_MAX);
    g_assert_cmpuint(serial_port_host_room(port1), ==, VIRTIO_SERIAL_HOST_QUEUE_MAX);
    g_free(data);
    teardown();
}

static void test_guest_flow_control(void)
{
    setup_device();
    bring_up(0);
    /* The backend takes 10 bytes and is full: the guest's buffer is not completed. */
    fake.capacity = 10;
    char msg[100];
    for (unsigned i = 0; i < sizeof(msg); i++)
        msg[i] = (char)('a' + i % 26);
    post_out(P1_TX, msg, sizeof(msg));
    post_out(P1_TX, "tail", 4);
    vd_kick(P1_TX);
    g_assert_cmpuint(fake.got->len, ==, 10);
    g_assert_cmpint(next_used(P1_TX, NULL, 0), ==, -1);
    vd_kick(P1_TX); /* a kick changes nothing while the backend is full */
    g_assert_cmpuint(fake.got->len, ==, 10);
    /* Room for 50 more: still held. */
    fake.capacity = 60;
    serial_port_resume_guest_data(port1);
    g_assert_cmpuint(fake.got->len, ==, 60);
    g_assert_cmpint(next_used(P1_TX, NULL, 0), ==, -1);
    /* All the room it wants: both buffers complete, the bytes in order. */
    fake.capacity = SIZE_MAX;
    serial_port_resume_guest_data(port1);
    g_assert_cmpint(next_used(P1_TX, NULL, 0), ==, 0);
    g_assert_cmpint(next_used(P1_TX, NULL, 0), ==, 0);
    g_assert_cmpuint(fake.got->len, ==, 104);
    g_assert_cmpmem(fake.got->data, 100, msg, 100);
    g_assert_cmpmem(fake.got->data + 100, 4, "tail", 4);
    teardown();
}

static void test_guest_close_and_reset(void)
{
    setup_device();
    bring_up(0);
    /* Host data queued while the guest had it open is dropped when it closes; data after waits for the next
     * open. */
    g_assert_cmpuint(serial_port_host_write(port1, "stale", 5), ==, 5);
    send_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 0);
    g_assert_cmpstr(fake.opens->str, ==, "10");
    g_assert_cmpuint(serial_port_host_write(port1, "fresh", 5), ==, 5);
    post_in(P1_RX, BUFSZ);
    vd_kick(P1_RX);
    g_assert_cmpint(next_used(P1_RX, NULL, 0), ==, -1); /* closed: nothing delivered */
    send_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
    uint8_t buf[BUFSZ];
    g_assert_cmpint(next_used(P1_RX, buf, sizeof(buf)), ==, 5);
    g_assert_cmpmem(buf, 5, "fresh", 5);
    /* A device reset closes the port for the backend and forgets what waited. */
    fake.capacity = 0;
    post_out(P1_TX, "held", 4);
    vd_kick(P1_TX);
    g_assert_cmpuint(serial_port_host_write(port1, "lost", 4), ==, 4);
    vd_set_status(0);
    g_assert_cmpstr(fake.opens->str, ==, "1010");
    g_assert_false(serial_port_guest_is_open(port1));
    g_assert_cmpuint(serial_port_host_room(port1), ==, VIRTIO_SERIAL_HOST_QUEUE_MAX);
    /* And the driver comes up again from scratch. */
    fake.capacity = SIZE_MAX;
    serial_port_set_host_connected(port1, false);
    bring_up(1);
    g_assert_cmpuint(fake.got->len, ==, 0);
    teardown();
}

static void test_hostile(void)
{
    setup_device();
    bring_up(0);
    uint64_t before = vd_status();
    /* A short message, bad port ids, an unknown event, a bad value, host-only events from the guest (the log
     * is rate-limited to 5 lines per 5 s: the first three are checked there, all of them in the counter). */
    post_out(CTRL_TX, "abcd", 4);
    vd_kick(CTRL_TX);
    g_assert_cmpint(next_used(CTRL_TX, NULL, 0), ==, 0);
    dh_assert_logged("control message of 4 bytes");
    send_ctrl(99, VIRTIO_CONSOLE_PORT_OPEN, 1);
    dh_assert_logged("port 99, which does not exist");
    send_ctrl(1, 42, 7);
    dh_assert_logged("unknown control message 42");
    send_ctrl(0, VIRTIO_CONSOLE_PORT_READY, 1);
    send_ctrl(3, VIRTIO_CONSOLE_PORT_READY, 1); /* within max_nr_ports, but not a port */
    send_ctrl(0xffffffffu, VIRTIO_CONSOLE_PORT_OPEN, 0);
    send_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 5);
    send_ctrl(1, VIRTIO_CONSOLE_PORT_NAME, 1);
    send_ctrl(1, VIRTIO_CONSOLE_RESIZE, 0);
    struct virtio_serial_stats st;
    virtio_serial_get_stats(dev, &st);
    g_assert_cmpuint(st.guest_errors, ==, 9);
    g_assert_cmphex(vd_status(), ==, before); /* no NEEDS_RESET: these are the guest's problem */
    g_assert_true(serial_port_guest_is_open(port1));
    g_assert_cmpstr(fake.opens->str, ==, "1");
    expect_no_ctrl();

    /* A control buffer too small for PORT_NAME: that message is dropped (logged), the next one fits. */
    send_ctrl(1, VIRTIO_CONSOLE_PORT_READY, 1);
    post_in(CTRL_RX, 8);
    vd_kick(CTRL_RX);
    g_assert_cmpint(next_used(CTRL_RX, NULL, 0), ==, 0);
    virtio_serial_get_stats(dev, &st);
    g_assert_cmpuint(st.guest_errors, ==, 10);
    post_in(CTRL_RX, BUFSZ);
    vd_kick(CTRL_RX);
    expect_ctrl(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);

    /* A queue of a port that does not exist: its buffers stay unused. */
    post_in(VIRTIO_SERIAL_PORT_RX(3), BUFSZ);
    vd_kick(VIRTIO_SERIAL_PORT_RX(3));
    post_out(VIRTIO_SERIAL_PORT_TX(3), "zz", 2);
    vd_kick(VIRTIO_SERIAL_PORT_TX(3));
    g_assert_cmpint(next_used(VIRTIO_SERIAL_PORT_TX(3), NULL, 0), ==, -1);
    /* Port 0 (not offered): transmitted data is completed and dropped. */
    post_out(VIRTIO_SERIAL_PORT_TX(0), "p0", 2);
    vd_kick(VIRTIO_SERIAL_PORT_TX(0));
    g_assert_cmpint(next_used(VIRTIO_SERIAL_PORT_TX(0), NULL, 0), ==, 0);

    /* A guest that asks again and again without posting control buffers: the pending messages are bounded. */
    for (unsigned i = 0; i < VIRTIO_SERIAL_CTRL_PENDING_MAX; i++)
        send_ctrl(0, VIRTIO_CONSOLE_DEVICE_READY, 1);
    virtio_serial_get_stats(dev, &st);
    g_assert_cmpuint(st.ctrl_dropped, ==, VIRTIO_SERIAL_CTRL_PENDING_MAX);
    g_assert_cmpuint(st.guest_errors, ==, 10 + VIRTIO_SERIAL_CTRL_PENDING_MAX);
    /* The messages that were kept still come, oldest first. */
    post_in(CTRL_RX, BUFSZ);
    post_in(CTRL_RX, BUFSZ);
    vd_kick(CTRL_RX);
    expect_ctrl(1, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
    expect_ctrl(2, VIRTIO_CONSOLE_PORT_ADD, 1, NULL);
    g_assert_cmphex(vd_status(), ==, before);

    /* A transmit buffer outside RAM is the transport's device error (NEEDS_RESET); nothing reaches the
     * backend. */
    struct vd_queue *x = &q[P1_TX];
    uint16_t d = x->avail_idx % x->size;
    vd_set_desc(x->desc, d, 0xfff00000000ULL, 64, 0, 0);
    vd_avail_add(x, d);
    vd_kick(P1_TX);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmpuint(fake.got->len, ==, 0);
    teardown();
}

/* The driver does not take MULTIPORT: no ports are announced and nothing breaks. */
static void test_no_multiport(void)
{
    setup_device();
    driver_init(F(VIRTIO_F_VERSION_1));
    post_in(CTRL_RX, BUFSZ);
    vd_kick(CTRL_RX);
    serial_port_set_host_connected(port1, true);
    g_assert_cmpint(next_used(CTRL_RX, NULL, 0), ==, -1);
    g_assert_cmpuint(serial_port_host_write(port1, "x", 1), ==, 1);
    teardown();
}

/* ---------------------------------------------------------------- the unix-socket backend */

#define P2_RX VIRTIO_SERIAL_PORT_RX(2)
#define P2_TX VIRTIO_SERIAL_PORT_TX(2)

static void pump(void)
{
    while (g_main_context_iteration(NULL, FALSE))
        ;
}

/* Runs the main loop until the next host control message is there (or 5 s). */
static void pump_ctrl(uint32_t id, uint16_t event, uint16_t value)
{
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (vd_used_idx(&q[CTRL_RX]) == used_seen[CTRL_RX] && g_get_monotonic_time() < end) {
        pump();
        g_usleep(1000);
    }
    expect_ctrl(id, event, value, NULL);
}

static int client_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(fd, >=, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* Reads what the client has, pumping the main loop, until want bytes came (or EOF, or 5 s). Returns the
 * count, -1 for EOF before any byte. */
static ssize_t client_read(int fd, uint8_t *buf, size_t want)
{
    size_t got = 0;
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (got < want && g_get_monotonic_time() < end) {
        pump();
        ssize_t n = recv(fd, buf + got, want - got, 0);
        if (n == 0)
            return got ? (ssize_t)got : -1;
        if (n > 0)
            got += (size_t)n;
        else
            g_usleep(1000);
    }
    return (ssize_t)got;
}

static uint8_t stream_byte(uint64_t pos)
{
    return (uint8_t)(pos % 251);
}

static void test_unix_backend(void)
{
    setup_device();
    bring_up(0);
    post_in(CTRL_RX, BUFSZ);
    post_in(CTRL_RX, BUFSZ);
    post_in(CTRL_RX, BUFSZ);
    vd_kick(CTRL_RX);
    g_autofree char *dir = g_dir_make_tmp("vserial-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "p.sock", NULL);
    char *err = NULL;
    struct serial_unix *su = serial_unix_new(port2, path, &err);
    g_assert_null(err);
    g_assert_nonnull(su);

    /* A client connects: the guest hears PORT_OPEN 1 for port 2; a second client is refused. */
    int c = client_connect(path);
    pump_ctrl(2, VIRTIO_CONSOLE_PORT_OPEN, 1);
    int c2 = client_connect(path);
    uint8_t buf[BUFSZ];
    g_assert_cmpint(client_read(c2, buf, 1), ==, -1);
    close(c2);

    /* Bytes both ways, exactly. */
    send_ctrl(2, VIRTIO_CONSOLE_PORT_OPEN, 1);
    post_in(P2_RX, BUFSZ);
    vd_kick(P2_RX);
    g_assert_cmpint(send(c, "to the guest", 12, 0), ==, 12);
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (vd_used_idx(&q[P2_RX]) == used_seen[P2_RX] && g_get_monotonic_time() < end)
        pump();
    g_assert_cmpint(next_used(P2_RX, buf, sizeof(buf)), ==, 12);
    g_assert_cmpmem(buf, 12, "to the guest", 12);
    post_out(P2_TX, "to the host", 11);
    vd_kick(P2_TX);
    g_assert_cmpint(client_read(c, buf, 11), ==, 11);
    g_assert_cmpmem(buf, 11, "to the host", 11);
    g_assert_cmpint(next_used(P2_TX, NULL, 0), ==, 0);

    /* Host flow control: the guest posts no receive buffers, the client writes until the socket is full;
     * deskvm queues its bound and stops reading. */
    uint64_t sent = 0, delivered = 0;
    uint8_t chunk[BUFSZ];
    for (unsigned idle_rounds = 0; idle_rounds < 50;) {
        for (unsigned i = 0; i < sizeof(chunk); i++)
            chunk[i] = stream_byte(sent + i);
        ssize_t n = send(c, chunk, sizeof(chunk), 0);
        if (n > 0) {
            sent += (uint64_t)n;
            idle_rounds = 0;
        } else {
            g_assert_cmpint(errno, ==, EAGAIN);
            idle_rounds++;
            g_usleep(1000);
        }
        pump();
        g_assert_cmpuint(sent, <, 64 * MiB); /* it must stop somewhere */
    }
    g_assert_cmpuint(serial_port_host_room(port2), ==, 0);
    g_assert_cmpuint(sent, >=, VIRTIO_SERIAL_HOST_QUEUE_MAX);
    /* The guest takes it all, 16 buffers at a time (of an odd size, so room never comes in the reader's chunk
     * size); reading resumes as room appears; every byte in order. */
    while (delivered < sent) {
        for (unsigned i = 0; i < QSIZE; i++)
            post_in(P2_RX, 3001);
        vd_kick(P2_RX);
        unsigned got_bufs = 0;
        end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
        while (got_bufs < QSIZE && delivered < sent && g_get_monotonic_time() < end) {
            int n = next_used(P2_RX, buf, sizeof(buf));
            if (n < 0) {
                pump();
                continue;
            }
            for (int i = 0; i < n; i++)
                if (buf[i] != stream_byte(delivered + (uint64_t)i))
                    g_error("byte %llu of the host stream is %u", (unsigned long long)(delivered + i),
                            buf[i]);
            delivered += (uint64_t)n;
            got_bufs++;
        }
        g_assert_cmpuint(got_bufs, >, 0);
        if (delivered ==
            sent) { /* some buffers of the last round may stay posted: use them up with nothing */
            pump();
            break;
        }
    }
    g_assert_cmpuint(delivered, ==, sent);

    /* Guest flow control: the client does not read; the guest's buffers stop completing once deskvm's buffer
     * and the socket are full; then the client reads everything, in order, and every buffer completes. */
    uint64_t gsent = 0, completed = 0;
    unsigned outstanding = 0;
    for (unsigned round = 0; round < 400 && (outstanding < QSIZE); round++) {
        while (outstanding < QSIZE) {
            for (unsigned i = 0; i < BUFSZ; i++)
                chunk[i] = stream_byte(gsent + i);
            post_out(P2_TX, chunk, BUFSZ);
            gsent += BUFSZ;
            outstanding++;
        }
        vd_kick(P2_TX);
        pump();
        while (next_used(P2_TX, NULL, 0) >= 0) {
            outstanding--;
            completed++;
        }
    }
    g_assert_cmpuint(outstanding, ==, QSIZE); /* stuck: the guest waits */
    g_assert_cmpuint(gsent, >=, SERIAL_UNIX_OUT_MAX);
    uint64_t rcvd = 0;
    end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (rcvd < gsent && g_get_monotonic_time() < end) {
        pump();
        ssize_t n = recv(c, buf, sizeof(buf), 0);
        if (n <= 0) {
            g_usleep(500);
            continue;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != stream_byte(rcvd + (uint64_t)i))
                g_error("byte %llu of the guest stream is %u", (unsigned long long)(rcvd + i), buf[i]);
        rcvd += (uint64_t)n;
        while (next_used(P2_TX, NULL, 0) >= 0)
            completed++;
    }
    g_assert_cmpuint(rcvd, ==, gsent);
    g_assert_cmpuint(completed, ==, gsent / BUFSZ);

    /* The guest closes the port: the client gets end-of-file, the guest PORT_OPEN 0. */
    send_ctrl(2, VIRTIO_CONSOLE_PORT_OPEN, 0);
    g_assert_cmpint(client_read(c, buf, 1), ==, -1);
    close(c);
    pump_ctrl(2, VIRTIO_CONSOLE_PORT_OPEN, 0);
    /* A new client, which then leaves. */
    post_in(CTRL_RX, BUFSZ);
    post_in(CTRL_RX, BUFSZ);
    vd_kick(CTRL_RX);
    c = client_connect(path);
    pump_ctrl(2, VIRTIO_CONSOLE_PORT_OPEN, 1);
    close(c);
    pump_ctrl(2, VIRTIO_CONSOLE_PORT_OPEN, 0);

    serial_unix_free(su);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    rmdir(dir);
    pump();
    teardown();
}

static void test_port_spec(void)
{
    struct serial_port_spec s;
    char *err = NULL;
    g_assert_true(serial_port_spec_parse("name=org.x.0,path=unix:/tmp/a.sock", &s, &err));
    g_assert_cmpstr(s.name, ==, "org.x.0");
    g_assert_cmpstr(s.path, ==, "/tmp/a.sock");
    g_assert_false(s.guest_agent);
    serial_port_spec_clear(&s);
    g_assert_true(serial_port_spec_parse_guest_agent("unix:/tmp/qga.sock", &s, &err));
    g_assert_cmpstr(s.name, ==, GUEST_AGENT_PORT_NAME);
    g_assert_true(s.guest_agent);
    serial_port_spec_clear(&s);
    static const char *const bad[][2] = {
        {"path=unix:/tmp/a", "needs name=NAME"},
        {"name=a", "needs path=unix:PATH"},
        {"name=a,name=b,path=unix:/x", "name given twice"},
        {"name=a,path=tcp:127.0.0.1:5", "'tcp:127.0.0.1:5' is not unix:PATH"},
        {"name=a,path=unix:/x,mode=1", "unknown parameter 'mode' (expected name=NAME,path=unix:PATH)"},
        {"name=,path=unix:/x", "the port name is empty"},
        {"name=a b,path=unix:/x", "port name 'a b': only printable ASCII without spaces, '/' or ','"},
        {"bare", "'bare' is not KEY=VALUE (expected name=NAME,path=unix:PATH)"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(serial_port_spec_parse(bad[i][0], &s, &err));
        g_assert_cmpstr(err, ==, bad[i][1]);
        g_assert_null(s.name);
        g_clear_pointer(&err, g_free);
    }
    g_autofree char *longname = g_strnfill(VIRTIO_SERIAL_NAME_MAX + 1, 'x');
    g_assert_false(virtio_serial_name_valid(longname, &err));
    g_clear_pointer(&err, g_free);
    longname[VIRTIO_SERIAL_NAME_MAX] = 0;
    g_assert_true(virtio_serial_name_valid(longname, &err));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-serial/identity", test_identity);
    g_test_add_func("/virtio-serial/bad-conf", test_bad_conf);
    g_test_add_func("/virtio-serial/control-flow", test_control_flow);
    g_test_add_func("/virtio-serial/data", test_data);
    g_test_add_func("/virtio-serial/host-flow-control", test_host_flow_control);
    g_test_add_func("/virtio-serial/guest-flow-control", test_guest_flow_control);
    g_test_add_func("/virtio-serial/guest-close-and-reset", test_guest_close_and_reset);
    g_test_add_func("/virtio-serial/hostile", test_hostile);
    g_test_add_func("/virtio-serial/no-multiport", test_no_multiport);
    g_test_add_func("/virtio-serial/unix-backend", test_unix_backend);
    g_test_add_func("/virtio-serial/port-spec", test_port_spec);
    return g_test_run();
}
