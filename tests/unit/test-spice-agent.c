/* Proves server/spice_agent.c against a real spice-server (no listening socket, no client) and a fake
 * virtio-serial port: the vdagent char device is registered only while the guest has the port open (and only
 * once the main loop ran: the port's ops come from other threads), spice-server's attach and detach become
 * the port's host-connected state, a close and reopen before the main loop runs is a detach and a new attach,
 * guest bytes are taken up to the 256 KiB buffer and the guest is resumed once spice-server has pulled them,
 * and freeing while attached detaches. The fake port records what the backend did. */
#include <string.h>

#include <glib.h>
#include <spice/vd_agent.h>

#include "spice_core.h"
#include "spice_internal.h"

/* ---------------------------------------------------------------- the fake port */

struct serial_port {
    GMutex lock;
    const struct serial_port_backend_ops *ops;
    void *opaque;
    bool guest_open;
    bool host_connected;
    GString *host_log; /* "1"/"0" per host-connected change */
    unsigned resumes;
    size_t host_bytes;
};

void serial_port_attach(struct serial_port *p, const struct serial_port_backend_ops *ops, void *opaque)
{
    g_mutex_lock(&p->lock);
    p->ops = ops;
    p->opaque = ops ? opaque : NULL;
    g_mutex_unlock(&p->lock);
}

const char *serial_port_name(const struct serial_port *p)
{
    return SPICE_AGENT_PORT_NAME;
}

void serial_port_set_host_connected(struct serial_port *p, bool connected)
{
    g_mutex_lock(&p->lock);
    if (p->host_connected != connected) {
        p->host_connected = connected;
        g_string_append_c(p->host_log, connected ? '1' : '0');
    }
    g_mutex_unlock(&p->lock);
}

size_t serial_port_host_write(struct serial_port *p, const void *buf, size_t len)
{
    g_mutex_lock(&p->lock);
    p->host_bytes += len;
    g_mutex_unlock(&p->lock);
    return len;
}

size_t serial_port_host_room(struct serial_port *p)
{
    return 65536;
}

void serial_port_resume_guest_data(struct serial_port *p)
{
    g_mutex_lock(&p->lock);
    p->resumes++;
    g_mutex_unlock(&p->lock);
}

bool serial_port_guest_is_open(struct serial_port *p)
{
    g_mutex_lock(&p->lock);
    bool open = p->guest_open;
    g_mutex_unlock(&p->lock);
    return open;
}

/* The device side calls the backend as a vCPU thread would: from another thread. */
struct guest_call {
    struct serial_port *p;
    int open; /* -1: no open/close */
    const uint8_t *data;
    size_t len;
    size_t taken;
};

static gpointer guest_thread(gpointer data)
{
    struct guest_call *c = data;
    if (c->open >= 0) {
        c->p->guest_open = c->open;
        c->p->ops->guest_open(c->p->opaque, c->open);
    }
    if (c->data)
        c->taken = c->p->ops->guest_data(c->p->opaque, c->data, c->len);
    return NULL;
}

static size_t guest_call(struct serial_port *p, int open, const uint8_t *data, size_t len)
{
    struct guest_call c = {p, open, data, len, 0};
    g_thread_join(g_thread_new("vcpu", guest_thread, &c));
    return c.taken;
}

static void run_loop(void)
{
    for (int i = 0; i < 50; i++)
        while (g_main_context_iteration(NULL, FALSE)) {
        }
}

/* ---------------------------------------------------------------- the tests */

static SpiceServer *new_server(void)
{
    SpiceServer *s = spice_server_new();
    g_assert_nonnull(s);
    spice_server_set_noauth(s);
    g_assert_cmpint(spice_server_init(s, spice_core_glib()), ==, 0);
    spice_server_vm_start(s);
    return s;
}

static void init_port(struct serial_port *p)
{
    memset(p, 0, sizeof(*p));
    g_mutex_init(&p->lock);
    p->host_log = g_string_new("");
}

static void clear_port(struct serial_port *p)
{
    g_string_free(p->host_log, TRUE);
    g_mutex_clear(&p->lock);
}

static void test_open_close(void)
{
    SpiceServer *s = new_server();
    struct serial_port p;
    init_port(&p);
    struct spice_agent *a = spice_agent_new(s, &p);
    g_assert_nonnull(p.ops);
    run_loop();
    g_assert_false(spice_agent_connected(a));
    g_assert_cmpstr(p.host_log->str, ==, "");

    guest_call(&p, 1, NULL, 0);
    g_assert_false(spice_agent_connected(a)); /* registering waits for the main loop */
    run_loop();
    g_assert_true(spice_agent_connected(a));
    g_assert_cmpstr(p.host_log->str, ==, "1");

    guest_call(&p, 0, NULL, 0);
    run_loop();
    g_assert_false(spice_agent_connected(a));
    g_assert_cmpstr(p.host_log->str, ==, "10");

    /* Close and reopen before the main loop runs: a new agent session, spice sees the old one go. */
    guest_call(&p, 1, NULL, 0);
    run_loop();
    guest_call(&p, 0, NULL, 0);
    guest_call(&p, 1, NULL, 0);
    run_loop();
    g_assert_true(spice_agent_connected(a));
    g_assert_cmpstr(p.host_log->str, ==, "10101");

    /* Open and close before the main loop runs: spice never sees an agent. */
    guest_call(&p, 0, NULL, 0);
    run_loop();
    g_assert_cmpstr(p.host_log->str, ==, "101010");
    guest_call(&p, 1, NULL, 0);
    guest_call(&p, 0, NULL, 0);
    run_loop();
    g_assert_false(spice_agent_connected(a));
    g_assert_cmpstr(p.host_log->str, ==, "101010");

    /* Freeing while attached detaches and unhooks the port. */
    guest_call(&p, 1, NULL, 0);
    run_loop();
    g_assert_true(spice_agent_connected(a));
    spice_agent_free(a);
    g_assert_null(p.ops);
    g_assert_false(p.host_connected);
    spice_server_destroy(s);
    run_loop();
    clear_port(&p);
}

/* A VDAgent message from the guest (chunk header, message header, payload): an announcement of capabilities,
 * which spice-server parses without a client. */
static GByteArray *announce_message(void)
{
    GByteArray *b = g_byte_array_new();
    uint32_t words[] = {
        GUINT32_TO_LE(VDP_CLIENT_PORT), GUINT32_TO_LE(20 + 8), /* chunk: port, size */
        GUINT32_TO_LE(VD_AGENT_PROTOCOL), GUINT32_TO_LE(VD_AGENT_ANNOUNCE_CAPABILITIES), 0, 0, /* opaque */
        GUINT32_TO_LE(8), GUINT32_TO_LE(0), GUINT32_TO_LE(1u << VD_AGENT_CAP_MONITORS_CONFIG),
    };
    g_byte_array_append(b, (const guint8 *)words, sizeof(words));
    return b;
}

static void test_guest_data(void)
{
    SpiceServer *s = new_server();
    struct serial_port p;
    init_port(&p);
    struct spice_agent *a = spice_agent_new(s, &p);
    guest_call(&p, 1, NULL, 0);

    /* Many whole messages, more than the 256 KiB buffer: the port is told to hold the rest. */
    GByteArray *msg = announce_message();
    GByteArray *big = g_byte_array_new();
    while (big->len < 300 * 1024)
        g_byte_array_append(big, msg->data, msg->len);
    size_t taken = guest_call(&p, -1, big->data, big->len);
    g_assert_cmpuint(taken, ==, 256 * 1024);
    g_assert_cmpuint(p.resumes, ==, 0);

    /* The main loop registers the device; spice-server (which reads the agent without a client, discarding
     * what it does not handle itself) pulls the buffer, and the guest is resumed. */
    run_loop();
    g_assert_true(spice_agent_connected(a));
    g_assert_cmpuint(p.resumes, ==, 1);
    g_assert_cmpuint(guest_call(&p, -1, big->data + taken, big->len - taken), ==, big->len - taken);
    run_loop();

    /* Data after the guest closed has nowhere to go: it is taken and dropped. */
    guest_call(&p, 0, NULL, 0);
    g_assert_cmpuint(guest_call(&p, -1, msg->data, msg->len), ==, msg->len);
    run_loop();
    g_assert_false(spice_agent_connected(a));

    spice_agent_free(a);
    spice_server_destroy(s);
    run_loop();
    g_byte_array_unref(msg);
    g_byte_array_unref(big);
    clear_port(&p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/spice/agent/open-close", test_open_close);
    g_test_add_func("/spice/agent/guest-data", test_guest_data);
    return g_test_run();
}
