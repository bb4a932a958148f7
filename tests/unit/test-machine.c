/* Proves the machine's device table (create/reset/destroy order, failure unwinding), config checks, interrupt
 * and MSI routing to the installed irqchip, guest requests and the per-thread current CPU. */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "log.h"
#include "machine.h"

/* Device callbacks append "create:a", "reset:b", "destroy:c" ... to this trace. */
static GString *trace;
/* Which device's create fails, and whether it explains why. */
static const char *fail_name;
static bool fail_with_message;
/* Whether each create ran holding the machine lock. */
static bool create_saw_lock_free;

static void trace_add(const char *what, const char *name)
{
    if (trace->len)
        g_string_append_c(trace, ' ');
    g_string_append_printf(trace, "%s:%s", what, name);
}

static gpointer try_lock(gpointer data)
{
    struct machine *m = data;
    if (!g_rec_mutex_trylock(&m->lock))
        return GINT_TO_POINTER(FALSE);
    g_rec_mutex_unlock(&m->lock);
    return GINT_TO_POINTER(TRUE);
}

static bool lock_is_free(struct machine *m)
{
    return GPOINTER_TO_INT(g_thread_join(g_thread_new("probe", try_lock, m)));
}

static int fake_create(struct machine *m, const char *name, char **error)
{
    trace_add("create", name);
    if (lock_is_free(m))
        create_saw_lock_free = true;
    if (fail_name && strcmp(fail_name, name) == 0) {
        if (fail_with_message)
            *error = g_strdup("no widgets attached");
        return -EINVAL;
    }
    return 0;
}

#define FAKE_DEVICE(id)                                                                                      \
    static int id##_create(struct machine *m, char **error)                                                  \
    {                                                                                                        \
        return fake_create(m, #id, error);                                                                   \
    }                                                                                                        \
    static void id##_reset(struct machine *m)                                                                \
    {                                                                                                        \
        (void)m;                                                                                             \
        trace_add("reset", #id);                                                                             \
    }                                                                                                        \
    static void id##_destroy(struct machine *m)                                                              \
    {                                                                                                        \
        (void)m;                                                                                             \
        trace_add("destroy", #id);                                                                           \
    }                                                                                                        \
    static const struct machine_device id##_device = {#id, id##_create, id##_reset, id##_destroy};

FAKE_DEVICE(alpha)
FAKE_DEVICE(bravo)
FAKE_DEVICE(charlie)
FAKE_DEVICE(delta)

/* A device with neither reset nor destroy. */
static int bare_create(struct machine *m, char **error)
{
    (void)error;
    return fake_create(m, "bare", error);
}

static const struct machine_device bare_device = {"bare", bare_create, NULL, NULL};

static const struct machine_device *const four_devices[] = {&alpha_device, &bravo_device, &charlie_device,
                                                            &delta_device};

static const struct machine_config small_cfg = {.ram_size = 1024 * 1024, .cpus = 1, .manual_clock = true};

static void setup(void)
{
    trace = g_string_new(NULL);
    fail_name = NULL;
    fail_with_message = false;
    create_saw_lock_free = false;
}

static void teardown(void)
{
    g_string_free(trace, TRUE);
    trace = NULL;
}

static void test_create_reset_destroy_order(void)
{
    setup();
    struct machine m;
    char *err = NULL;
    g_assert_cmpint(machine_init(&m, &small_cfg, four_devices, 4, &err), ==, 0);
    g_assert_null(err);
    g_assert_cmpstr(trace->str, ==, "create:alpha create:bravo create:charlie create:delta");
    g_assert_false(create_saw_lock_free);
    g_assert_cmpuint(m.created, ==, 4);
    g_assert_nonnull(m.clock);
    g_assert_true(vclock_is_manual(m.clock));
    g_assert_cmpuint(m.mem.ram_size, ==, 1024 * 1024);
    g_assert_cmpstr(m.pio.name, ==, "pio");
    g_assert_cmpstr(m.mmio.name, ==, "mmio");

    g_string_truncate(trace, 0);
    machine_reset(&m);
    g_assert_cmpstr(trace->str, ==, "reset:alpha reset:bravo reset:charlie reset:delta");

    g_string_truncate(trace, 0);
    machine_destroy(&m);
    g_assert_cmpstr(trace->str, ==, "destroy:delta destroy:charlie destroy:bravo destroy:alpha");
    teardown();
}

static void test_null_reset_and_destroy(void)
{
    setup();
    static const struct machine_device *const table[] = {&alpha_device, &bare_device, &bravo_device};
    struct machine m;
    char *err = NULL;
    g_assert_cmpint(machine_init(&m, &small_cfg, table, 3, &err), ==, 0);
    machine_reset(&m);
    machine_destroy(&m);
    g_assert_cmpstr(
        trace->str, ==,
        "create:alpha create:bare create:bravo reset:alpha reset:bravo destroy:bravo destroy:alpha");
    teardown();
}

static void test_failing_create_unwinds(void)
{
    setup();
    fail_name = "charlie";
    fail_with_message = true;
    struct machine m;
    char *err = NULL;
    g_assert_cmpint(machine_init(&m, &small_cfg, four_devices, 4, &err), ==, -EINVAL);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, "charlie"));
    g_assert_nonnull(strstr(err, "no widgets attached"));
    /* the failed device is not destroyed (it cleans up after itself), later ones are never created */
    g_assert_cmpstr(trace->str, ==, "create:alpha create:bravo create:charlie destroy:bravo destroy:alpha");
    g_free(err);

    /* without a message, the errno text stands in */
    g_string_truncate(trace, 0);
    fail_name = "alpha";
    fail_with_message = false;
    err = NULL;
    g_assert_cmpint(machine_init(&m, &small_cfg, four_devices, 4, &err), ==, -EINVAL);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, "alpha"));
    g_assert_nonnull(strstr(err, g_strerror(EINVAL)));
    g_assert_cmpstr(trace->str, ==, "create:alpha");
    g_free(err);
    teardown();
}

static void test_config_checks(void)
{
    setup();
    struct machine m;
    char *err = NULL;
    struct machine_config cfg = small_cfg;
    const unsigned bad_cpus[] = {0, MACHINE_MAX_CPUS + 1, UINT32_MAX};
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_cpus); i++) {
        cfg.cpus = bad_cpus[i];
        err = NULL;
        g_assert_cmpint(machine_init(&m, &cfg, four_devices, 4, &err), ==, -EINVAL);
        g_assert_nonnull(err);
        g_assert_nonnull(strstr(err, "CPU"));
        g_free(err);
    }
    cfg.cpus = 0;
    cfg.ram_size = 0;
    err = NULL;
    g_assert_cmpint(machine_init(&m, &cfg, four_devices, 4, &err), ==, -EINVAL);
    g_free(err);
    cfg.cpus = 2;
    cfg.ram_size = 12345;
    err = NULL;
    g_assert_cmpint(machine_init(&m, &cfg, four_devices, 4, &err), ==, -EINVAL);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, "12345"));
    g_free(err);
    g_assert_cmpstr(trace->str, ==, "");

    /* the extremes that are valid */
    cfg.ram_size = 4096;
    cfg.cpus = MACHINE_MAX_CPUS;
    cfg.manual_clock = false;
    err = NULL;
    g_assert_cmpint(machine_init(&m, &cfg, NULL, 0, &err), ==, 0);
    g_assert_false(vclock_is_manual(m.clock));
    g_assert_false(vclock_is_running(m.clock));
    machine_destroy(&m);
    cfg.cpus = 1;
    g_assert_cmpint(machine_init(&m, &cfg, NULL, 0, &err), ==, 0);
    machine_destroy(&m);
    g_assert_null(err);
    teardown();
}

/* A recording irqchip. */
struct irq_event {
    unsigned gsi;
    int level;
};

struct recorder {
    GArray *gsi;      /* struct irq_event */
    GArray *msi;      /* struct msi_message */
    GArray *requests; /* enum machine_request */
};

static void rec_set_gsi(void *opaque, unsigned gsi, int level)
{
    struct recorder *r = opaque;
    struct irq_event e = {gsi, level};
    g_array_append_val(r->gsi, e);
}

static void rec_send_msi(void *opaque, const struct msi_message *msg)
{
    struct recorder *r = opaque;
    g_array_append_val(r->msi, *msg);
}

static void rec_request(void *opaque, enum machine_request req)
{
    struct recorder *r = opaque;
    g_array_append_val(r->requests, req);
}

static const struct irqchip_ops rec_ops = {rec_set_gsi, rec_send_msi};

static void recorder_init(struct recorder *r)
{
    r->gsi = g_array_new(FALSE, FALSE, sizeof(struct irq_event));
    r->msi = g_array_new(FALSE, FALSE, sizeof(struct msi_message));
    r->requests = g_array_new(FALSE, FALSE, sizeof(enum machine_request));
}

static void recorder_fini(struct recorder *r)
{
    g_array_unref(r->gsi);
    g_array_unref(r->msi);
    g_array_unref(r->requests);
}

static void test_gsi_routing(void)
{
    struct machine m;
    char *err = NULL;
    g_assert_cmpint(machine_init(&m, &small_cfg, NULL, 0, &err), ==, 0);

    /* no irqchip yet: lines go nowhere, harmlessly */
    irq_raise(machine_gsi(&m, 4));
    struct recorder r;
    recorder_init(&r);
    machine_set_irqchip(&m, &rec_ops, &r);

    for (unsigned n = 0; n < MACHINE_GSI_COUNT; n++) {
        const struct irq_line *line = machine_gsi(&m, n);
        g_assert_nonnull(line);
        irq_set_level(line, 1);
        irq_set_level(line, 0);
    }
    g_assert_cmpuint(r.gsi->len, ==, 2 * MACHINE_GSI_COUNT);
    for (unsigned n = 0; n < MACHINE_GSI_COUNT; n++) {
        struct irq_event hi = g_array_index(r.gsi, struct irq_event, 2 * n);
        struct irq_event lo = g_array_index(r.gsi, struct irq_event, 2 * n + 1);
        g_assert_cmpuint(hi.gsi, ==, n);
        g_assert_cmpint(hi.level, ==, 1);
        g_assert_cmpuint(lo.gsi, ==, n);
        g_assert_cmpint(lo.level, ==, 0);
    }
    g_array_set_size(r.gsi, 0);

    /* levels are normalised to 0/1; pulse is raise then lower */
    irq_set_level(machine_gsi(&m, 9), 5);
    irq_pulse(machine_gsi(&m, 0));
    g_assert_cmpuint(r.gsi->len, ==, 3);
    g_assert_cmpint(g_array_index(r.gsi, struct irq_event, 0).level, ==, 1);
    g_assert_cmpuint(g_array_index(r.gsi, struct irq_event, 1).gsi, ==, 0);
    g_assert_cmpint(g_array_index(r.gsi, struct irq_event, 1).level, ==, 1);
    g_assert_cmpint(g_array_index(r.gsi, struct irq_event, 2).level, ==, 0);

    g_assert_null(machine_gsi(&m, MACHINE_GSI_COUNT));
    g_assert_null(machine_gsi(&m, UINT32_MAX));
    irq_raise(machine_gsi(&m, 24)); /* a NULL line is a no-op */
    g_assert_cmpuint(r.gsi->len, ==, 3);

    /* replacing the irqchip redirects the lines */
    struct recorder r2;
    recorder_init(&r2);
    machine_set_irqchip(&m, &rec_ops, &r2);
    irq_raise(machine_gsi(&m, 17));
    g_assert_cmpuint(r.gsi->len, ==, 3);
    g_assert_cmpuint(r2.gsi->len, ==, 1);
    g_assert_cmpuint(g_array_index(r2.gsi, struct irq_event, 0).gsi, ==, 17);

    machine_destroy(&m);
    recorder_fini(&r);
    recorder_fini(&r2);
}

static void test_msi_routing(void)
{
    struct machine m;
    char *err = NULL;
    g_assert_cmpint(machine_init(&m, &small_cfg, NULL, 0, &err), ==, 0);
    struct msi_message msg = {MSI_ADDR_BASE | 3u << MSI_ADDR_DEST_ID_SHIFT, 0x41 | MSI_DATA_LEVEL_ASSERT};
    machine_send_msi(&m, &msg); /* no irqchip: dropped */

    struct recorder r;
    recorder_init(&r);
    machine_set_irqchip(&m, &rec_ops, &r);
    machine_send_msi(&m, &msg);
    g_assert_cmpuint(r.msi->len, ==, 1);
    g_assert_cmphex(g_array_index(r.msi, struct msi_message, 0).address, ==, 0xFEE03000);
    g_assert_cmphex(g_array_index(r.msi, struct msi_message, 0).data, ==, 0x4041);

    /* an irqchip without MSI support drops them */
    static const struct irqchip_ops gsi_only = {rec_set_gsi, NULL};
    machine_set_irqchip(&m, &gsi_only, &r);
    machine_send_msi(&m, &msg);
    g_assert_cmpuint(r.msi->len, ==, 1);
    machine_destroy(&m);
    recorder_fini(&r);
}

static void test_requests(void)
{
    struct machine m;
    char *err = NULL;
    g_assert_cmpint(machine_init(&m, &small_cfg, NULL, 0, &err), ==, 0);
    enum log_level old = log_get_level();
    log_set_level(LOG_LEVEL_ERROR);
    machine_request(&m, MACHINE_REQUEST_RESET); /* no handler: only a warning */
    log_set_level(old);

    struct recorder r;
    recorder_init(&r);
    machine_set_request_handler(&m, rec_request, &r);
    machine_request(&m, MACHINE_REQUEST_SHUTDOWN);
    machine_request(&m, MACHINE_REQUEST_RESET);
    machine_request(&m, MACHINE_REQUEST_PANIC);
    g_assert_cmpuint(r.requests->len, ==, 3);
    g_assert_cmpint(g_array_index(r.requests, enum machine_request, 0), ==, MACHINE_REQUEST_SHUTDOWN);
    g_assert_cmpint(g_array_index(r.requests, enum machine_request, 1), ==, MACHINE_REQUEST_RESET);
    g_assert_cmpint(g_array_index(r.requests, enum machine_request, 2), ==, MACHINE_REQUEST_PANIC);
    machine_destroy(&m);
    recorder_fini(&r);
}

static gpointer other_thread_cpu(gpointer data)
{
    unsigned *seen = data;
    seen[0] = machine_current_cpu();
    machine_set_current_cpu(7);
    seen[1] = machine_current_cpu();
    return NULL;
}

static void test_current_cpu_per_thread(void)
{
    g_assert_cmpuint(machine_current_cpu(), ==, 0);
    machine_set_current_cpu(5);
    g_assert_cmpuint(machine_current_cpu(), ==, 5);
    unsigned seen[2] = {99, 99};
    g_thread_join(g_thread_new("vcpu", other_thread_cpu, seen));
    g_assert_cmpuint(seen[0], ==, 0);
    g_assert_cmpuint(seen[1], ==, 7);
    g_assert_cmpuint(machine_current_cpu(), ==, 5);
    machine_set_current_cpu(0);
}

/* A device that registers a port in create and unregisters it in destroy. */
struct port_dev {
    uint8_t value;
};

static struct port_dev port_dev_state;

static uint64_t port_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)offset;
    (void)size;
    return ((struct port_dev *)opaque)->value;
}

static void port_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    (void)offset;
    (void)size;
    ((struct port_dev *)opaque)->value = (uint8_t)value;
}

static const struct io_ops port_ops = {port_read, port_write};

static int port_create(struct machine *m, char **error)
{
    (void)error;
    port_dev_state.value = 0;
    return io_bus_register(&m->pio, 0x80, 1, &port_ops, &port_dev_state, "port80", NULL);
}

static void port_reset(struct machine *m)
{
    (void)m;
    port_dev_state.value = 0;
}

static void port_destroy(struct machine *m)
{
    g_assert_cmpint(io_bus_unregister(&m->pio, 0x80, &port_dev_state), ==, 0);
}

static const struct machine_device port_device = {"port80", port_create, port_reset, port_destroy};

static void test_device_registers_port(void)
{
    static const struct machine_device *const table[] = {&port_device};
    struct machine m;
    char *err = NULL;
    g_assert_cmpint(machine_init(&m, &small_cfg, table, 1, &err), ==, 0);
    machine_lock(&m);
    uint64_t v;
    g_assert_true(io_bus_write(&m.pio, 0x80, 1, 0x1AB));
    g_assert_true(io_bus_read(&m.pio, 0x80, 1, &v));
    g_assert_cmphex(v, ==, 0xAB);
    machine_unlock(&m);
    machine_reset(&m);
    machine_lock(&m);
    g_assert_true(io_bus_read(&m.pio, 0x80, 1, &v));
    g_assert_cmphex(v, ==, 0);
    machine_unlock(&m);
    machine_destroy(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/machine/devices/create-reset-destroy-order", test_create_reset_destroy_order);
    g_test_add_func("/machine/devices/optional-reset-and-destroy", test_null_reset_and_destroy);
    g_test_add_func("/machine/devices/failing-create-unwinds", test_failing_create_unwinds);
    g_test_add_func("/machine/devices/register-io-in-create", test_device_registers_port);
    g_test_add_func("/machine/config/rejects-bad-cpus-and-ram", test_config_checks);
    g_test_add_func("/machine/irq/gsi-lines-reach-irqchip", test_gsi_routing);
    g_test_add_func("/machine/irq/msi-reaches-irqchip", test_msi_routing);
    g_test_add_func("/machine/request/reaches-handler", test_requests);
    g_test_add_func("/machine/cpu/current-cpu-per-thread", test_current_cpu_per_thread);
    return g_test_run();
}
