/* Test accelerator protocol server. */
#include "qtest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>

#include "listen.h"
#include "log.h"

#define QTEST_MAX_LINE (1024 * 1024)
#define QTEST_MAX_BLOB (512 * 1024) /* bytes per read/write command */

struct qtest {
    struct machine *m;
    struct listener listener;
    int fd;
    guint in_watch;
    GString *in;
    GString *events; /* async lines not yet sent */
    bool intercept;
    const struct irqchip_ops *inner;
    void *inner_opaque;
    int gsi_level[MACHINE_GSI_COUNT];
};

static void qtest_set_gsi(void *opaque, unsigned gsi, int level)
{
    struct qtest *q = opaque;
    if (gsi < MACHINE_GSI_COUNT && q->gsi_level[gsi] != level) {
        q->gsi_level[gsi] = level;
        if (q->intercept)
            g_string_append_printf(q->events, "IRQ %s %u\n", level ? "raise" : "lower", gsi);
    }
    if (q->inner && q->inner->set_gsi)
        q->inner->set_gsi(q->inner_opaque, gsi, level);
}

static void qtest_send_msi(void *opaque, const struct msi_message *msg)
{
    struct qtest *q = opaque;
    if (q->intercept)
        g_string_append_printf(q->events, "MSI 0x%llx 0x%x\n", (unsigned long long)msg->address, msg->data);
    if (q->inner && q->inner->send_msi)
        q->inner->send_msi(q->inner_opaque, msg);
}

static const struct irqchip_ops qtest_irqchip_ops = {qtest_set_gsi, qtest_send_msi};

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = g_ascii_strtoull(s, &end, 0);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static unsigned size_of(char suffix)
{
    switch (suffix) {
    case 'b':
        return 1;
    case 'w':
        return 2;
    case 'l':
        return 4;
    case 'q':
        return 8;
    }
    return 0;
}

/* Memory access at a guest physical address: RAM through the guest-memory API, anything else through the MMIO bus,
 * exactly as a CPU would see it. */
static void phys_write(struct machine *m, uint64_t addr, unsigned size, uint64_t v)
{
    uint8_t b[8];
    le64_store(b, v);
    if (guest_mem_write(&m->mem, addr, b, size) < 0)
        io_bus_write(&m->mmio, addr, size, v);
}

static uint64_t phys_read(struct machine *m, uint64_t addr, unsigned size)
{
    uint8_t b[8] = {0};
    if (guest_mem_read(&m->mem, addr, b, size) == 0)
        return le64_load(b);
    uint64_t v;
    io_bus_read(&m->mmio, addr, size, &v);
    return v;
}

static char *cmd_blob_read(struct machine *m, uint64_t addr, uint64_t len)
{
    if (len > QTEST_MAX_BLOB)
        return g_strdup_printf("ERR length above %u", QTEST_MAX_BLOB);
    GString *out = g_string_new("OK 0x");
    for (uint64_t i = 0; i < len; i++)
        g_string_append_printf(out, "%02x", (unsigned)phys_read(m, addr + i, 1));
    return g_string_free(out, FALSE);
}

static char *cmd_blob_write(struct machine *m, uint64_t addr, uint64_t len, const char *hex)
{
    if (len > QTEST_MAX_BLOB)
        return g_strdup_printf("ERR length above %u", QTEST_MAX_BLOB);
    if (g_str_has_prefix(hex, "0x"))
        hex += 2;
    if (strlen(hex) != len * 2)
        return g_strdup("ERR data length does not match");
    for (uint64_t i = 0; i < len; i++) {
        int hi = g_ascii_xdigit_value(hex[2 * i]), lo = g_ascii_xdigit_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return g_strdup("ERR bad hex data");
        phys_write(m, addr + i, 1, (uint64_t)(hi << 4 | lo));
    }
    return g_strdup("OK");
}

char *qtest_handle_line(struct qtest *q, const char *line, GString *events)
{
    struct machine *m = q->m;
    g_auto(GStrv) w = g_strsplit_set(line, " \t", 5);
    unsigned n = g_strv_length(w);
    if (n == 0 || !*w[0])
        return g_strdup("ERR empty command");
    const char *c = w[0];
    uint64_t a = 0, b = 0;
    char *reply = NULL;

    machine_lock(m);
    if ((g_str_has_prefix(c, "out") || g_str_has_prefix(c, "in")) && strlen(c) == (c[0] == 'o' ? 4u : 3u) &&
        size_of(c[strlen(c) - 1]) && size_of(c[strlen(c) - 1]) <= 4) {
        unsigned size = size_of(c[strlen(c) - 1]);
        if (c[0] == 'o') {
            if (n != 3 || !parse_u64(w[1], &a) || !parse_u64(w[2], &b) || a > 0xFFFF)
                reply = g_strdup_printf("ERR usage: %s PORT VALUE", c);
            else {
                io_bus_write(&m->pio, a, size, b);
                reply = g_strdup("OK");
            }
        } else {
            uint64_t v;
            if (n != 2 || !parse_u64(w[1], &a) || a > 0xFFFF)
                reply = g_strdup_printf("ERR usage: %s PORT", c);
            else {
                io_bus_read(&m->pio, a, size, &v);
                reply = g_strdup_printf("OK 0x%llx", (unsigned long long)v);
            }
        }
    } else if ((g_str_has_prefix(c, "read") || g_str_has_prefix(c, "write")) &&
               strlen(c) == (c[0] == 'r' ? 5u : 6u) && size_of(c[strlen(c) - 1])) {
        unsigned size = size_of(c[strlen(c) - 1]);
        if (c[0] == 'w') {
            if (n != 3 || !parse_u64(w[1], &a) || !parse_u64(w[2], &b))
                reply = g_strdup_printf("ERR usage: %s ADDR VALUE", c);
            else {
                phys_write(m, a, size, b);
                reply = g_strdup("OK");
            }
        } else if (n != 2 || !parse_u64(w[1], &a))
            reply = g_strdup_printf("ERR usage: %s ADDR", c);
        else
            reply = g_strdup_printf("OK 0x%llx", (unsigned long long)phys_read(m, a, size));
    } else if (!strcmp(c, "read")) {
        reply = n == 3 && parse_u64(w[1], &a) && parse_u64(w[2], &b) ? cmd_blob_read(m, a, b)
                                                                      : g_strdup("ERR usage: read ADDR LEN");
    } else if (!strcmp(c, "write")) {
        reply = n == 4 && parse_u64(w[1], &a) && parse_u64(w[2], &b) ? cmd_blob_write(m, a, b, w[3])
                                                                      : g_strdup("ERR usage: write ADDR LEN HEX");
    } else if (!strcmp(c, "memset")) {
        uint64_t v;
        if (n != 4 || !parse_u64(w[1], &a) || !parse_u64(w[2], &b) || !parse_u64(w[3], &v) || v > 0xFF)
            reply = g_strdup("ERR usage: memset ADDR LEN BYTE");
        else if (guest_mem_fill(&m->mem, a, (int)v, b) < 0)
            reply = g_strdup("ERR range is not guest RAM");
        else
            reply = g_strdup("OK");
    } else if (!strcmp(c, "clock_step")) {
        int64_t step;
        if (n == 1) {
            int64_t next = vclock_next_deadline(m->clock);
            step = next == INT64_MAX ? 0 : MAX(0, next - vclock_now(m->clock));
        } else if (n == 2 && parse_u64(w[1], &a) && a <= INT64_MAX) {
            step = (int64_t)a;
        } else {
            step = -1;
        }
        reply = step < 0 ? g_strdup("ERR usage: clock_step [NS]")
                         : g_strdup_printf("OK %lld", (long long)vclock_advance(m->clock, step));
    } else if (!strcmp(c, "clock_get")) {
        reply = g_strdup_printf("OK %lld", (long long)vclock_now(m->clock));
    } else if (!strcmp(c, "irq_intercept")) {
        q->intercept = true;
        reply = g_strdup("OK");
    } else if (!strcmp(c, "irq_level")) {
        reply = n == 2 && parse_u64(w[1], &a) && a < MACHINE_GSI_COUNT
                    ? g_strdup_printf("OK %d", q->gsi_level[a])
                    : g_strdup("ERR usage: irq_level GSI");
    } else {
        reply = g_strdup_printf("ERR unknown command '%s'", c);
    }
    machine_unlock(m);
    if (q->events->len) {
        g_string_append_len(events, q->events->str, (gssize)q->events->len);
        g_string_truncate(q->events, 0);
    }
    return reply;
}

static void qtest_close_client(struct qtest *q)
{
    if (q->in_watch)
        g_source_remove(q->in_watch);
    q->in_watch = 0;
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    g_string_truncate(q->in, 0);
    /* Interception belongs to the session: the next client starts without it and without stale lines. */
    q->intercept = false;
    g_string_truncate(q->events, 0);
}

static bool send_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

static gboolean qtest_on_input(gint fd, GIOCondition cond, gpointer data)
{
    struct qtest *q = data;
    char buf[8192];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            return G_SOURCE_CONTINUE;
        q->in_watch = 0;
        qtest_close_client(q);
        log_info("qtest: client disconnected");
        return G_SOURCE_REMOVE;
    }
    g_string_append_len(q->in, buf, n);
    char *nl;
    while ((nl = memchr(q->in->str, '\n', q->in->len))) {
        *nl = 0;
        g_autoptr(GString) out = g_string_new(NULL);
        g_autofree char *reply = qtest_handle_line(q, g_strchomp(q->in->str), out);
        g_string_append_printf(out, "%s\n", reply);
        g_string_erase(q->in, 0, nl - q->in->str + 1);
        /* The test waits for each reply, so a blocking send on a local socket is fine here. */
        int flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        bool ok = send_all(fd, out->str, out->len);
        fcntl(fd, F_SETFL, flags);
        if (!ok) {
            q->in_watch = 0;
            qtest_close_client(q);
            return G_SOURCE_REMOVE;
        }
    }
    if (q->in->len > QTEST_MAX_LINE) {
        log_warn("qtest: command line too long; disconnecting the client");
        q->in_watch = 0;
        qtest_close_client(q);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void qtest_on_accept(void *opaque, int c)
{
    struct qtest *q = opaque;
    if (q->fd >= 0) {
        close(c);
        log_warn("qtest: refused a second client");
        return;
    }
    q->fd = c;
    q->in_watch = g_unix_fd_add(c, G_IO_IN | G_IO_HUP | G_IO_ERR, qtest_on_input, q);
    log_info("qtest: client connected");
}

struct qtest *qtest_start(struct machine *m, struct listen_spec *spec, char **error)
{
    struct qtest *q = g_new0(struct qtest, 1);
    q->m = m;
    q->fd = -1;
    q->in = g_string_new(NULL);
    q->events = g_string_new(NULL);
    if (!listen_start(&q->listener, "qtest", spec, qtest_on_accept, q, error)) {
        g_string_free(q->in, TRUE);
        g_string_free(q->events, TRUE);
        g_free(q);
        return NULL;
    }
    machine_lock(m);
    q->inner = m->irqchip;
    q->inner_opaque = m->irqchip_opaque;
    machine_set_irqchip(m, &qtest_irqchip_ops, q);
    machine_unlock(m);
    return q;
}

void qtest_stop(struct qtest *q)
{
    if (!q)
        return;
    qtest_close_client(q);
    machine_lock(q->m);
    if (q->m->irqchip == &qtest_irqchip_ops)
        machine_set_irqchip(q->m, q->inner, q->inner_opaque);
    machine_unlock(q->m);
    listen_stop(&q->listener);
    g_string_free(q->in, TRUE);
    g_string_free(q->events, TRUE);
    g_free(q);
}
