/* Proves virtio-input as a guest driver sees it: PCI identity, the configuration space of the keyboard and
 * the tablet, events in the event queue as exact (type, code, value) triples ending in SYN_REPORT, events
 * waiting for buffers, the bound that drops the oldest report, bad buffers, LEDs on the status queue, reset,
 * and the routing between virtio and PS/2 as the driver comes up. */
#include <string.h>

#include <glib.h>

#include "device_harness.h"
#include "i8042.h"
#include "input.h"
#include "pci_host.h"
#include "scancode.h"
#include "virtio_driver.h"
#include "virtio_input.h"

#define QSIZE VIRTIO_INPUT_QUEUE_SIZE
#define EVBUF(i) (0x300000ULL + 8ULL * (i))
#define STATUSBUF(i) (0x380000ULL + 8ULL * (i))

static struct virtio_input *dev;
static uint16_t next_event_buf; /* event buffers posted so far */

static void driver_init(void)
{
    g_assert_cmphex(vd_init_queues(F(VIRTIO_F_VERSION_1), true, 2, QSIZE, QSIZE), ==, F(VIRTIO_F_VERSION_1));
    g_assert_cmphex(vd_device_features(), ==, VIRTIO_CORE_FEATURES);
    next_event_buf = 0;
}

/* A machine with the PCI host bridge (and PS/2 if asked) and one virtio-input device at SLOT. */
static void setup_board(enum virtio_input_kind kind, bool with_ps2, bool init)
{
    static const struct machine_device *const board[] = {&pci_host_device};
    static const struct machine_device *const board_ps2[] = {&i8042_device, &pci_host_device};
    if (with_ps2)
        dh_machine_init(&vd_m, board_ps2, G_N_ELEMENTS(board_ps2), 1, 64 * MiB);
    else
        dh_machine_init(&vd_m, board, G_N_ELEMENTS(board), 1, 64 * MiB);
    dh_record_irqs(&vd_m, &vd_rec, DH_ANY_GSI | DH_MSI);
    char *err = NULL;
    dev = virtio_input_new(&vd_m, SLOT, kind, &err);
    g_assert_null(err);
    g_assert_nonnull(dev);
    g_assert_cmpint(pci_host_assign_resources(vd_m.pci), ==, 0);
    vd_probe();
    vd_msix_enable();
    if (init)
        driver_init();
}

static void setup(enum virtio_input_kind kind)
{
    setup_board(kind, false, true);
}

static void teardown(void)
{
    virtio_input_free(dev);
    dev = NULL;
    dh_machine_fini(&vd_m);
}

/* The driver posts n more 8-byte event buffers. */
static void post_event_buffers(unsigned n, bool kick)
{
    struct vd_queue *x = &vd_q[VIRTIO_INPUT_EVENTQ];
    for (unsigned i = 0; i < n; i++) {
        uint16_t d = next_event_buf % QSIZE;
        vd_set_desc(x->desc, d, EVBUF(d), VIRTIO_INPUT_EVENT_SIZE, VIRTQ_DESC_F_WRITE, 0);
        vd_avail_add(x, d);
        next_event_buf++;
    }
    if (kick)
        vd_kick(VIRTIO_INPUT_EVENTQ);
}

/* Used entry i of the event queue holds (type, code, value). */
static void assert_event(uint16_t i, uint16_t type, uint16_t code, uint32_t value)
{
    const struct vd_queue *x = &vd_q[VIRTIO_INPUT_EVENTQ];
    g_assert_cmpuint(vd_used_idx(x), >, i);
    uint64_t e = x->used + 4 + 8 * (uint64_t)(i % QSIZE);
    uint32_t id, len;
    g_assert_cmpint(guest_mem_read_u32(&vd_m.mem, e, &id), ==, 0);
    g_assert_cmpint(guest_mem_read_u32(&vd_m.mem, e + 4, &len), ==, 0);
    g_assert_cmpuint(len, ==, VIRTIO_INPUT_EVENT_SIZE);
    uint8_t b[8];
    g_assert_cmpint(guest_mem_read(&vd_m.mem, EVBUF(id), b, sizeof(b)), ==, 0);
    g_assert_cmphex(le16_load(b), ==, type);
    g_assert_cmphex(le16_load(b + 2), ==, code);
    g_assert_cmphex(le32_load(b + 4), ==, value);
}

/* ---------------------------------------------------------------- configuration space */

static unsigned cfg_select(uint8_t select, uint8_t subsel)
{
    dh_mmio_write(&vd_m, vd_dev.bar[vd_dev.device.bar] + vd_dev.device.offset + VIRTIO_INPUT_CFG_SELECT, 1,
                  select);
    dh_mmio_write(&vd_m, vd_dev.bar[vd_dev.device.bar] + vd_dev.device.offset + VIRTIO_INPUT_CFG_SUBSEL, 1,
                  subsel);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_INPUT_CFG_SELECT, 1), ==, select);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_INPUT_CFG_SUBSEL, 1), ==, subsel);
    return (unsigned)vd_devcfg_rd(VIRTIO_INPUT_CFG_SIZE, 1);
}

static uint8_t cfg_u8(unsigned i)
{
    return (uint8_t)vd_devcfg_rd(VIRTIO_INPUT_CFG_UNION + i, 1);
}

static void assert_cfg_string(uint8_t select, const char *want)
{
    g_assert_cmpuint(cfg_select(select, 0), ==, strlen(want));
    for (size_t i = 0; i < strlen(want); i++)
        g_assert_cmphex(cfg_u8(i), ==, (uint8_t)want[i]);
}

/* The bitmap for select/subsel has exactly the bits in want (n of them). */
static void assert_cfg_bits(uint8_t select, uint8_t subsel, const unsigned *want, size_t n, unsigned size)
{
    g_assert_cmpuint(cfg_select(select, subsel), ==, size);
    uint8_t expect[VIRTIO_INPUT_CFG_UNION_SIZE] = {0};
    for (size_t i = 0; i < n; i++)
        expect[want[i] / 8] |= (uint8_t)(1u << (want[i] % 8));
    for (unsigned i = 0; i < VIRTIO_INPUT_CFG_UNION_SIZE; i++)
        g_assert_cmphex(cfg_u8(i), ==, expect[i]);
}

static void test_keyboard_config(void)
{
    setup_board(VIRTIO_INPUT_KEYBOARD, false, false);
    g_assert_cmphex(vd_cfg_read(PCI_VENDOR_ID, 2), ==, 0x1af4);
    g_assert_cmphex(vd_cfg_read(PCI_DEVICE_ID, 2), ==, 0x1040 + VIRTIO_ID_INPUT);
    g_assert_cmphex(vd_cfg_read(PCI_REVISION_ID, 4) >> 8, ==, 0x098000);
    g_assert_cmpuint(vd_dev.device.length, ==, VIRTIO_INPUT_CONFIG_SIZE);
    assert_cfg_string(VIRTIO_INPUT_CFG_ID_NAME, "deskvm Virtio Keyboard");
    assert_cfg_string(VIRTIO_INPUT_CFG_ID_SERIAL, "deskvm-kbd-4");
    g_assert_cmpuint(cfg_select(VIRTIO_INPUT_CFG_ID_DEVIDS, 0), ==, 8);
    g_assert_cmphex(vd_devcfg_rd(VIRTIO_INPUT_CFG_UNION, 8), ==, 0x0001000106270006ULL);
    g_assert_cmpuint(cfg_select(VIRTIO_INPUT_CFG_PROP_BITS, 0), ==, 0);
    unsigned keys[255];
    for (unsigned i = 0; i < 255; i++)
        keys[i] = i + 1;
    assert_cfg_bits(VIRTIO_INPUT_CFG_EV_BITS, EV_KEY, keys, 255, 32);
    const unsigned leds[] = {LED_NUML, LED_CAPSL, LED_SCROLLL};
    assert_cfg_bits(VIRTIO_INPUT_CFG_EV_BITS, EV_LED, leds, 3, 1);
    assert_cfg_bits(VIRTIO_INPUT_CFG_EV_BITS, EV_REP, NULL, 0, 1);
    assert_cfg_bits(VIRTIO_INPUT_CFG_EV_BITS, EV_REL, NULL, 0, 0);
    assert_cfg_bits(VIRTIO_INPUT_CFG_EV_BITS, EV_ABS, NULL, 0, 0);
    g_assert_cmpuint(cfg_select(VIRTIO_INPUT_CFG_ABS_INFO, ABS_X), ==, 0);
    g_assert_cmpuint(cfg_select(0x55, 0), ==, 0);
    g_assert_cmpuint(cfg_select(VIRTIO_INPUT_CFG_ID_NAME, 1), ==, 0);
    /* The rest of the structure is read-only. */
    cfg_select(VIRTIO_INPUT_CFG_ID_NAME, 0);
    dh_mmio_write(&vd_m, vd_dev.bar[vd_dev.device.bar] + vd_dev.device.offset + VIRTIO_INPUT_CFG_SIZE, 4,
                  0xffffffff);
    dh_mmio_write(&vd_m, vd_dev.bar[vd_dev.device.bar] + vd_dev.device.offset + VIRTIO_INPUT_CFG_UNION, 4, 0);
    g_assert_cmpuint(vd_devcfg_rd(VIRTIO_INPUT_CFG_SIZE, 1), ==, 22);
    g_assert_cmphex(cfg_u8(0), ==, 'd');
    teardown();
}

static void test_tablet_config(void)
{
    setup_board(VIRTIO_INPUT_TABLET, false, false);
    assert_cfg_string(VIRTIO_INPUT_CFG_ID_NAME, "deskvm Virtio Tablet");
    g_assert_cmpuint(cfg_select(VIRTIO_INPUT_CFG_ID_DEVIDS, 0), ==, 8);
    g_assert_cmphex(vd_devcfg_rd(VIRTIO_INPUT_CFG_UNION, 8), ==, 0x0001000306270006ULL);
    const unsigned btns[] = {BTN_LEFT, BTN_RIGHT, BTN_MIDDLE, BTN_SIDE, BTN_EXTRA};
    assert_cfg_bits(VIRTIO_INPUT_CFG_EV_BITS, EV_KEY, btns, 5, BTN_EXTRA / 8 + 1);
    const unsigned rels[] = {REL_HWHEEL, REL_WHEEL};
    assert_cfg_bits(VIRTIO_INPUT_CFG_EV_BITS, EV_REL, rels, 2, 2);
    const unsigned abss[] = {ABS_X, ABS_Y};
    assert_cfg_bits(VIRTIO_INPUT_CFG_EV_BITS, EV_ABS, abss, 2, 1);
    assert_cfg_bits(VIRTIO_INPUT_CFG_EV_BITS, EV_REP, NULL, 0, 0);
    for (uint8_t axis = ABS_X; axis <= ABS_Y; axis++) {
        g_assert_cmpuint(cfg_select(VIRTIO_INPUT_CFG_ABS_INFO, axis), ==, 20);
        g_assert_cmpuint(vd_devcfg_rd(VIRTIO_INPUT_CFG_UNION, 4), ==, 0);          /* min */
        g_assert_cmpuint(vd_devcfg_rd(VIRTIO_INPUT_CFG_UNION + 4, 4), ==, 0x7fff); /* max */
        g_assert_cmpuint(vd_devcfg_rd(VIRTIO_INPUT_CFG_UNION + 8, 4), ==, 0);      /* fuzz */
        g_assert_cmpuint(vd_devcfg_rd(VIRTIO_INPUT_CFG_UNION + 12, 4), ==, 0);     /* flat */
        g_assert_cmpuint(vd_devcfg_rd(VIRTIO_INPUT_CFG_UNION + 16, 4), ==, 0);     /* res */
    }
    g_assert_cmpuint(cfg_select(VIRTIO_INPUT_CFG_ABS_INFO, 2), ==, 0);
    teardown();
}

/* ---------------------------------------------------------------- event queue */

static void test_key_events(void)
{
    setup(VIRTIO_INPUT_KEYBOARD);
    post_event_buffers(8, true);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 0);
    input_send_key(vd_m.input, KEY_A, true);
    input_sync(vd_m.input);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 2);
    assert_event(0, EV_KEY, KEY_A, 1);
    assert_event(1, EV_SYN, SYN_REPORT, 0);
    g_assert_cmpuint(vd_rec.nmsi, ==, 1);
    vd_assert_msi(0, 1);
    input_send_key(vd_m.input, KEY_LEFTSHIFT, true);
    input_send_key(vd_m.input, KEY_A, false);
    input_sync(vd_m.input);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 5);
    assert_event(2, EV_KEY, KEY_LEFTSHIFT, 1);
    assert_event(3, EV_KEY, KEY_A, 0);
    assert_event(4, EV_SYN, SYN_REPORT, 0);
    g_assert_cmpuint(vd_rec.nmsi, ==, 2);
    /* Pointer events are not the keyboard's. */
    input_send_abs(vd_m.input, INPUT_AXIS_X, 5);
    input_sync(vd_m.input);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 5);
    teardown();
}

static void test_tablet_events(void)
{
    setup(VIRTIO_INPUT_TABLET);
    post_event_buffers(16, true);
    input_send_abs(vd_m.input, INPUT_AXIS_X, 100);
    input_send_abs(vd_m.input, INPUT_AXIS_Y, 0x7fff);
    input_send_button(vd_m.input, INPUT_BUTTON_LEFT, true);
    input_send_button(vd_m.input, INPUT_BUTTON_WHEEL_UP, true);
    input_send_button(vd_m.input, INPUT_BUTTON_WHEEL_UP, false);
    input_sync(vd_m.input);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 5);
    assert_event(0, EV_ABS, ABS_X, 100);
    assert_event(1, EV_ABS, ABS_Y, 0x7fff);
    assert_event(2, EV_KEY, BTN_LEFT, 1);
    assert_event(3, EV_REL, REL_WHEEL, 1);
    assert_event(4, EV_SYN, SYN_REPORT, 0);
    input_send_button(vd_m.input, INPUT_BUTTON_WHEEL_DOWN, true);
    input_send_button(vd_m.input, INPUT_BUTTON_WHEEL_RIGHT, true);
    input_send_button(vd_m.input, INPUT_BUTTON_RIGHT, false);
    input_send_button(vd_m.input, INPUT_BUTTON_SIDE, true);
    input_sync(vd_m.input);
    assert_event(5, EV_REL, REL_WHEEL, 0xffffffff);
    assert_event(6, EV_REL, REL_HWHEEL, 1);
    assert_event(7, EV_KEY, BTN_RIGHT, 0);
    assert_event(8, EV_KEY, BTN_SIDE, 1);
    assert_event(9, EV_SYN, SYN_REPORT, 0);
    /* A report of wheel releases alone has nothing to say: no lone SYN_REPORT. */
    input_send_button(vd_m.input, INPUT_BUTTON_WHEEL_DOWN, false);
    input_sync(vd_m.input);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 10);
    /* Relative motion reaches a tablet as a position (no mouse here). */
    input_send_rel(vd_m.input, INPUT_AXIS_X, 1024); /* the whole 1024-pixel default width */
    input_sync(vd_m.input);
    assert_event(10, EV_ABS, ABS_X, 0x7fff);
    teardown();
}

static void test_events_wait_for_buffers(void)
{
    setup(VIRTIO_INPUT_KEYBOARD);
    vd_mem_w16(vd_q[0].avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
    for (unsigned i = 0; i < 3; i++) {
        input_send_key(vd_m.input, KEY_1 + i, true);
        input_sync(vd_m.input);
    }
    g_assert_cmpuint(dev->p_count, ==, 6);
    post_event_buffers(4, true);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 4);
    assert_event(0, EV_KEY, KEY_1, 1);
    assert_event(3, EV_SYN, SYN_REPORT, 0);
    post_event_buffers(4, true);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 6);
    assert_event(4, EV_KEY, KEY_1 + 2, 1);
    assert_event(5, EV_SYN, SYN_REPORT, 0);
    /* Two buffers left over take the next report at once. */
    input_send_key(vd_m.input, KEY_Q, true);
    input_sync(vd_m.input);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 8);
    assert_event(6, EV_KEY, KEY_Q, 1);
    g_assert_cmpuint(vd_rec.nmsi, ==, 0);
    teardown();
}

static void test_full_queue_drops_oldest_reports(void)
{
    setup(VIRTIO_INPUT_KEYBOARD);
    vd_mem_w16(vd_q[0].avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
    for (unsigned i = 0; i < 200; i++) {
        input_send_key(vd_m.input, 1 + i, true);
        input_sync(vd_m.input);
    }
    /* 400 events for 256 places: the oldest 72 reports are gone, whole. */
    g_assert_cmpuint(dev->p_count, ==, VIRTIO_INPUT_PENDING_MAX);
    g_assert_cmpuint(dev->dropped_events, ==, 144);
    post_event_buffers(QSIZE, true);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, QSIZE);
    for (uint16_t i = 0; i < QSIZE; i += 2) {
        assert_event(i, EV_KEY, 73 + i / 2, 1);
        assert_event(i + 1, EV_SYN, SYN_REPORT, 0);
    }
    teardown();
}

static void test_bad_event_buffer(void)
{
    setup(VIRTIO_INPUT_KEYBOARD);
    struct vd_queue *x = &vd_q[0];
    vd_set_desc(x->desc, 0, EVBUF(0), 4, VIRTQ_DESC_F_WRITE, 0); /* half an event */
    vd_avail_add(x, 0);
    vd_kick(0);
    input_send_key(vd_m.input, KEY_A, true);
    input_sync(vd_m.input);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmpuint(vd_used_idx(x), ==, 0);
    /* The driver resets and starts over; what was pending before is gone. */
    driver_init();
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    g_assert_cmpuint(dev->p_count, ==, 0);
    post_event_buffers(2, true);
    g_assert_cmpuint(vd_used_idx(&vd_q[0]), ==, 0);
    input_send_key(vd_m.input, KEY_Z, false);
    input_sync(vd_m.input);
    assert_event(0, EV_KEY, KEY_Z, 0);
    teardown();
}

/* ---------------------------------------------------------------- status queue */

static void post_status(unsigned i, uint16_t type, uint16_t code, uint32_t value, uint32_t len)
{
    struct vd_queue *x = &vd_q[VIRTIO_INPUT_STATUSQ];
    uint8_t b[8];
    le16_store(b, type);
    le16_store(b + 2, code);
    le32_store(b + 4, value);
    g_assert_cmpint(guest_mem_write(&vd_m.mem, STATUSBUF(i), b, sizeof(b)), ==, 0);
    vd_set_desc(x->desc, i % QSIZE, STATUSBUF(i), len, 0, 0);
    vd_avail_add(x, (uint16_t)(i % QSIZE));
}

static void test_status_leds(void)
{
    setup(VIRTIO_INPUT_KEYBOARD);
    struct vd_queue *x = &vd_q[VIRTIO_INPUT_STATUSQ];
    post_status(0, EV_LED, LED_CAPSL, 1, 8);
    post_status(1, EV_LED, LED_NUML, 1, 8);
    post_status(2, EV_SYN, SYN_REPORT, 0, 8);
    vd_kick(VIRTIO_INPUT_STATUSQ);
    g_assert_cmpuint(vd_used_idx(x), ==, 3);
    vd_assert_used(x, 0, 0, 0);
    vd_assert_used(x, 2, 2, 0);
    g_assert_cmpuint(dev->leds, ==, INPUT_LED_CAPS_LOCK | INPUT_LED_NUM_LOCK);
    g_assert_cmpuint(input_get_leds(vd_m.input), ==, INPUT_LED_CAPS_LOCK | INPUT_LED_NUM_LOCK);
    vd_assert_msi(0, 2);
    post_status(3, EV_LED, LED_CAPSL, 0, 8);
    post_status(4, EV_LED, LED_SCROLLL, 1, 4); /* too short: ignored, still completed */
    post_status(5, EV_LED, 0x7ff, 1, 8);       /* an LED the device does not have */
    vd_kick(VIRTIO_INPUT_STATUSQ);
    g_assert_cmpuint(vd_used_idx(x), ==, 6);
    g_assert_cmpuint(input_get_leds(vd_m.input), ==, INPUT_LED_NUM_LOCK);
    g_assert_cmphex(vd_status() & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    teardown();
}

/* ---------------------------------------------------------------- routing against PS/2 */

static void test_routing_with_ps2(void)
{
    setup_board(VIRTIO_INPUT_KEYBOARD, true, false);
    /* No virtio driver yet (firmware, early boot): keys go to the PS/2 keyboard. */
    input_send_key(vd_m.input, KEY_A, true);
    input_sync(vd_m.input);
    g_assert_cmphex(dh_inb(&vd_m, I8042_CMD_PORT) & I8042_STR_OBF, ==, I8042_STR_OBF);
    g_assert_cmphex(dh_inb(&vd_m, I8042_DATA_PORT), ==, 0x1E);
    g_assert_cmpuint(dev->p_count, ==, 0);
    driver_init();
    post_event_buffers(4, true);
    input_send_key(vd_m.input, KEY_A, false);
    input_sync(vd_m.input);
    g_assert_cmphex(dh_inb(&vd_m, I8042_CMD_PORT) & I8042_STR_OBF, ==, 0);
    assert_event(0, EV_KEY, KEY_A, 0);
    assert_event(1, EV_SYN, SYN_REPORT, 0);
    /* A device reset (driver unloaded) sends keys back to PS/2. */
    vd_set_status(0);
    input_send_key(vd_m.input, KEY_A, true);
    input_sync(vd_m.input);
    g_assert_cmphex(dh_inb(&vd_m, I8042_DATA_PORT), ==, 0x1E);
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-input/config/keyboard-ids-names-bits", test_keyboard_config);
    g_test_add_func("/virtio-input/config/tablet-bits-and-abs-info", test_tablet_config);
    g_test_add_func("/virtio-input/eventq/key-events-then-syn-report", test_key_events);
    g_test_add_func("/virtio-input/eventq/tablet-abs-buttons-wheel", test_tablet_events);
    g_test_add_func("/virtio-input/eventq/events-wait-for-buffers", test_events_wait_for_buffers);
    g_test_add_func("/virtio-input/eventq/full-queue-drops-oldest-reports",
                    test_full_queue_drops_oldest_reports);
    g_test_add_func("/virtio-input/eventq/short-buffer-needs-reset", test_bad_event_buffer);
    g_test_add_func("/virtio-input/statusq/leds", test_status_leds);
    g_test_add_func("/virtio-input/route/ps2-until-driver-is-up", test_routing_with_ps2);
    return g_test_run();
}
