/* GDB remote stub: the socket and client, the packet commands, stops and resumes through the vCPU layer. */
#include "gdbstub.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gdb_packet.h"
#include "gdb_x86.h"
#include "guest_paging.h"
#include "log.h"
#include "machine.h"
#include "sock_client.h"
#include "vcpu.h"

/* Signals in stop replies: SIGINT after an interrupt, SIGTRAP after a breakpoint or step. */
#define GDB_SIGINT 2
#define GDB_SIGTRAP 5
/* '-' from the client asks for the last packet again; a client that keeps asking gets no more copies. */
#define MAX_RETRANSMITS 8

struct gdb_client {
    struct gdbstub *g;
    struct sock_client conn;
    GByteArray *last; /* the last packet sent, for a retransmit */
    unsigned retransmits;
    bool no_ack;
    struct gdb_parser parser;
};

struct gdbstub {
    struct vm *vm;
    struct vm_machine *vmm;
    struct accel *accel;
    struct machine *m;
    struct listener listener;
    unsigned vm_listener;
    struct gdb_client *client;
    struct sock_client_reaper reaper;

    bool waiting;      /* the VM runs for the debugger: a stop reply is owed */
    unsigned cur;      /* vCPU of g/G/p/P/m/M (Hg) */
    int cont;          /* vCPU of legacy s/c (Hc), -1 all */
    unsigned stop_cpu; /* the vCPU of the last stop */
    int stop_signal;
    bool stop_at_bp; /* that stop was at a breakpoint: resuming steps over it */
    unsigned nbp;
    uint64_t bp[VCPU_DEBUG_MAX_BREAKPOINTS];
};

static struct log_ratelimit gdb_rl = LOG_RATELIMIT_INIT(5000, 10);

/* ---- output ---- */

static void client_close(void *opaque, const char *why);

static void client_queue(struct gdb_client *c, const void *data, size_t len)
{
    if (c->conn.closing)
        return;
    if (c->conn.out->len + len > GDBSTUB_MAX_PENDING_OUTPUT) {
        client_close(c, "it does not read its replies");
        return;
    }
    sock_client_send(&c->conn, data, len);
}

static void send_packet(struct gdb_client *c, const char *data, size_t len)
{
    g_byte_array_set_size(c->last, 0);
    gdb_packet_put(c->last, data, len);
    c->retransmits = 0;
    client_queue(c, c->last->data, c->last->len);
}

static void send_str(struct gdb_client *c, const char *s)
{
    send_packet(c, s, strlen(s));
}

static void send_error(struct gdb_client *c, int err)
{
    char buf[8];
    g_snprintf(buf, sizeof(buf), "E%02x", (unsigned)err & 0xff);
    send_str(c, buf);
}

/* ---- the VM ---- */

static struct vcpu *vcpu(struct gdbstub *g, unsigned i)
{
    return &g->accel->vcpus[i];
}

static bool vm_running(struct gdbstub *g)
{
    return vm_get_state(g->vm) == VM_RUNNING;
}

/* Stops the VM for the debugger (no stop reply: the caller sends what fits). */
static void stop_vm(struct gdbstub *g)
{
    g->waiting = false;
    vm_stop(g->vm);
}

static int read_cpu(struct gdbstub *g, unsigned i, struct gdb_x86_cpu *c)
{
    memset(c, 0, sizeof(*c));
    int r = g->accel->ops->get_regs(vcpu(g, i), &c->r);
    if (r >= 0)
        r = g->accel->ops->get_sregs(vcpu(g, i), &c->s);
    return r;
}

static bool sregs_changed(const struct vcpu_sregs *a, const struct vcpu_sregs *b)
{
    return a->fs.base != b->fs.base || a->gs.base != b->gs.base || a->cr0 != b->cr0 || a->cr2 != b->cr2 ||
           a->cr3 != b->cr3 || a->cr4 != b->cr4 || a->cr8 != b->cr8 || a->efer != b->efer;
}

/* Writes back what changed between old and new (only then: setting registers wakes a halted emu vCPU). */
static int write_cpu(struct gdbstub *g, unsigned i, const struct gdb_x86_cpu *old,
                     const struct gdb_x86_cpu *c)
{
    int r = 0;
    if (memcmp(&old->r, &c->r, sizeof(c->r)))
        r = g->accel->ops->set_regs(vcpu(g, i), &c->r);
    if (r >= 0 && sregs_changed(&old->s, &c->s))
        r = g->accel->ops->set_sregs(vcpu(g, i), &c->s);
    return r;
}

static bool paging_of(struct gdbstub *g, unsigned i, struct guest_paging *p)
{
    struct vcpu_sregs s;
    if (g->accel->ops->get_sregs(vcpu(g, i), &s) < 0)
        return false;
    *p = (struct guest_paging){.cr0 = s.cr0, .cr3 = s.cr3, .cr4 = s.cr4, .efer = s.efer};
    return true;
}

static bool bp_at(struct gdbstub *g, uint64_t addr)
{
    for (unsigned i = 0; i < g->nbp; i++)
        if (g->bp[i] == addr)
            return true;
    return false;
}

static void report_stop(struct gdbstub *g, unsigned cpu, int sig)
{
    g->stop_cpu = cpu;
    g->cur = cpu;
    g->stop_signal = sig;
    struct vcpu_regs r;
    g->stop_at_bp = sig == GDB_SIGTRAP && g->accel->ops->get_regs(vcpu(g, cpu), &r) >= 0 && bp_at(g, r.rip);
    if (g->client) {
        char buf[32];
        g_snprintf(buf, sizeof(buf), "T%02xthread:%x;", (unsigned)sig, cpu + 1);
        send_str(g->client, buf);
    }
}

/* The vCPU that stopped for the debugger, or -1; clears every vCPU's flag (simultaneous stops at other
 * breakpoints simply happen again when the VM resumes, since nothing there ran). */
static int take_debug_stop(struct gdbstub *g)
{
    int hit = -1;
    for (unsigned i = 0; i < g->accel->ncpus; i++)
        if (accel_take_debug_exit(g->accel, vcpu(g, i)) && hit < 0)
            hit = (int)i;
    return hit;
}

/* Debugging off on every vCPU, none held back; the VM is left stopped. */
static void debug_off(struct gdbstub *g)
{
    if (vm_running(g))
        stop_vm(g);
    g->waiting = false;
    struct vcpu_debug none = {0};
    for (unsigned i = 0; i < g->accel->ncpus; i++) {
        if (g->accel->ops->set_guest_debug)
            g->accel->ops->set_guest_debug(vcpu(g, i), &none);
        accel_set_vcpu_hold(g->accel, vcpu(g, i), false);
    }
    take_debug_stop(g);
    g->nbp = 0;
    g->stop_at_bp = false;
}

static void detach(struct gdbstub *g)
{
    debug_off(g);
    GError *err = NULL;
    if (vm_get_state(g->vm) != VM_SHUTDOWN && !vm_cont(g->vm, &err)) {
        log_warn("gdb: resuming the VM after detach: %s", err->message);
        g_error_free(err);
    }
}

/* A vCPU stopped with VCPU_EXIT_DEBUG (main loop, from vm_machine). */
static void on_debug_exit(void *opaque)
{
    struct gdbstub *g = opaque;
    int hit = take_debug_stop(g);
    if (hit < 0)
        return; /* from before the last resume */
    if (!g->client) {
        /* Debugging was turned off meanwhile: the vCPU that stopped goes on. */
        if (vm_running(g))
            accel_resume(g->accel);
        return;
    }
    bool owed = g->waiting;
    stop_vm(g);
    if (owed)
        report_stop(g, (unsigned)hit, GDB_SIGTRAP);
    else
        g->stop_cpu = (unsigned)hit;
}

static void on_vm_event(void *opaque, const struct vm_event *ev)
{
    struct gdbstub *g = opaque;
    if (!g->client || !g->waiting)
        return;
    if (ev->kind == VM_EVENT_STOP) {
        /* Stopped by someone else (QMP stop, a guest error) while the debugger waits: tell it. */
        g->waiting = false;
        int hit = take_debug_stop(g);
        report_stop(g, hit >= 0 ? (unsigned)hit : g->stop_cpu, hit >= 0 ? GDB_SIGTRAP : GDB_SIGINT);
    } else if (ev->kind == VM_EVENT_SHUTDOWN) {
        g->waiting = false;
        send_str(g->client, "W00");
    }
}

/* Resumes with one action per vCPU: 0 stays stopped, 'c' runs, 's' runs one instruction. */
static void resume(struct gdbstub *g, const char *act)
{
    struct gdb_client *c = g->client;
    const struct accel_ops *ops = g->accel->ops;
    bool any = false;
    for (unsigned i = 0; i < g->accel->ncpus; i++)
        any = any || act[i];
    if (!any) {
        send_error(c, EINVAL);
        return;
    }
    if (vm_get_state(g->vm) == VM_SHUTDOWN) {
        send_str(c, "W00");
        return;
    }
    if (vm_running(g))
        stop_vm(g); /* QMP let it run: the debug settings change only on parked vCPUs */
    for (unsigned i = 0; i < g->accel->ncpus; i++) {
        struct vcpu_debug d = {
            .single_step = act[i] == 's',
            .skip_current = i == g->stop_cpu && g->stop_at_bp,
            .nbreakpoints = g->nbp,
        };
        memcpy(d.breakpoints, g->bp, g->nbp * sizeof(g->bp[0]));
        int r = ops->set_guest_debug ? ops->set_guest_debug(vcpu(g, i), &d) : -EOPNOTSUPP;
        if (r < 0 && (d.single_step || d.nbreakpoints)) {
            log_message_ratelimited(&gdb_rl, LOG_LEVEL_WARN, "gdb: %s: vCPU %u: cannot debug the guest: %s%s",
                                    ops->name, i, g_strerror(-r),
                                    r == -EOPNOTSUPP ? " (the host's KVM lacks guest debugging)" : "");
            send_error(c, -r);
            return;
        }
        accel_set_vcpu_hold(g->accel, vcpu(g, i), act[i] == 0);
    }
    take_debug_stop(g);
    g->stop_at_bp = false;
    GError *err = NULL;
    if (!vm_cont(g->vm, &err)) {
        send_error(c, EBUSY);
        g_error_free(err);
        return;
    }
    g->waiting = true;
}

/* ---- packets ---- */

/* A thread id: -1 (all), 0 (any) or 1..N. */
static bool parse_thread(struct gdbstub *g, const char *s, const char *end, int *out)
{
    if (end - s == 2 && s[0] == '-' && s[1] == '1') {
        *out = -1;
        return true;
    }
    uint64_t v;
    if (!gdb_hex_u64(&s, end, &v) || s != end || v > g->accel->ncpus)
        return false;
    *out = (int)v;
    return true;
}

/* Packets that read or change vCPU state need the VM stopped (a running KVM vCPU blocks its ioctls). */
static bool need_stopped(struct gdbstub *g)
{
    if (!vm_running(g))
        return true;
    send_error(g->client, EBUSY);
    return false;
}

static void cmd_read_regs(struct gdbstub *g)
{
    struct gdb_x86_cpu cpu;
    if (read_cpu(g, g->cur, &cpu) < 0) {
        send_error(g->client, EIO);
        return;
    }
    g_autoptr(GString) hex = g_string_new(NULL);
    gdb_x86_regs_hex(&cpu, hex);
    send_packet(g->client, hex->str, hex->len);
}

static void cmd_write_regs(struct gdbstub *g, const char *hex, size_t len)
{
    struct gdb_x86_cpu old, cpu;
    if (read_cpu(g, g->cur, &old) < 0) {
        send_error(g->client, EIO);
        return;
    }
    cpu = old;
    if (!gdb_x86_regs_write(&cpu, hex, len)) {
        send_error(g->client, EINVAL);
        return;
    }
    if (write_cpu(g, g->cur, &old, &cpu) < 0)
        send_error(g->client, EIO);
    else
        send_str(g->client, "OK");
}

static void cmd_read_reg(struct gdbstub *g, const char *p, const char *end)
{
    uint64_t n;
    struct gdb_x86_cpu cpu;
    if (!gdb_hex_u64(&p, end, &n) || p != end || n >= GDB_X86_NREGS) {
        send_error(g->client, EINVAL);
        return;
    }
    if (read_cpu(g, g->cur, &cpu) < 0) {
        send_error(g->client, EIO);
        return;
    }
    g_autoptr(GString) hex = g_string_new(NULL);
    gdb_x86_reg_hex(&cpu, (unsigned)n, hex);
    send_packet(g->client, hex->str, hex->len);
}

static void cmd_write_reg(struct gdbstub *g, const char *p, const char *end)
{
    uint64_t n;
    uint8_t val[16];
    struct gdb_x86_cpu old, cpu;
    if (!gdb_hex_u64(&p, end, &n) || p == end || *p != '=' || n >= GDB_X86_NREGS ||
        (size_t)(end - p - 1) != 2 * gdb_x86_reg_size((unsigned)n) ||
        !gdb_hex_decode(p + 1, gdb_x86_reg_size((unsigned)n), val)) {
        send_error(g->client, EINVAL);
        return;
    }
    if (read_cpu(g, g->cur, &old) < 0) {
        send_error(g->client, EIO);
        return;
    }
    cpu = old;
    if (!gdb_x86_reg_write(&cpu, (unsigned)n, val)) {
        send_error(g->client, EPERM);
        return;
    }
    if (write_cpu(g, g->cur, &old, &cpu) < 0)
        send_error(g->client, EIO);
    else
        send_str(g->client, "OK");
}

static void cmd_read_mem(struct gdbstub *g, const char *p, const char *end)
{
    uint64_t addr, len;
    struct guest_paging pg;
    if (!gdb_addr_len(&p, end, &addr, &len) || p != end) {
        send_error(g->client, EINVAL);
        return;
    }
    if (len > GDBSTUB_MAX_MEMORY)
        len = GDBSTUB_MAX_MEMORY; /* a short read: gdb asks for the rest */
    if (!paging_of(g, g->cur, &pg)) {
        send_error(g->client, EIO);
        return;
    }
    g_autofree uint8_t *buf = g_malloc(len ? len : 1);
    size_t n = guest_paging_read(&g->m->mem, &pg, addr, buf, len);
    if (!n && len) {
        send_error(g->client, EFAULT);
        return;
    }
    g_autoptr(GString) hex = g_string_sized_new(2 * n + 1);
    gdb_hex_append(hex, buf, n);
    send_packet(g->client, hex->str, hex->len);
}

/* 'M' (hex data) and 'X' (binary data): exactly len bytes follow the colon. */
static void cmd_write_mem(struct gdbstub *g, const char *p, const char *end, bool binary)
{
    uint64_t addr, len;
    struct guest_paging pg;
    if (!gdb_addr_len(&p, end, &addr, &len) || p == end || *p != ':' || len > GDBSTUB_MAX_MEMORY) {
        send_error(g->client, EINVAL);
        return;
    }
    p++;
    size_t have = (size_t)(end - p);
    if (have != (binary ? len : 2 * len)) {
        send_error(g->client, EINVAL);
        return;
    }
    g_autofree uint8_t *buf = g_malloc(len ? len : 1);
    if (binary)
        memcpy(buf, p, len);
    else if (!gdb_hex_decode(p, len, buf)) {
        send_error(g->client, EINVAL);
        return;
    }
    if (!paging_of(g, g->cur, &pg)) {
        send_error(g->client, EIO);
        return;
    }
    if (guest_paging_write(&g->m->mem, &pg, addr, buf, len) != len)
        send_error(g->client, EFAULT);
    else
        send_str(g->client, "OK");
}

/* Z0/Z1 (z0/z1): software and hardware breakpoints are the same RIP compare here. */
static void cmd_breakpoint(struct gdbstub *g, bool insert, const char *p, const char *end)
{
    uint64_t type, addr, kind;
    if (!gdb_hex_u64(&p, end, &type) || p == end || *p++ != ',' || !gdb_addr_len(&p, end, &addr, &kind) ||
        (p != end && *p != ';')) {
        send_error(g->client, EINVAL);
        return;
    }
    if (type > 1) {
        send_str(g->client, ""); /* watchpoints: not supported */
        return;
    }
    if (!insert) {
        for (unsigned i = 0; i < g->nbp; i++) {
            if (g->bp[i] == addr) {
                g->bp[i] = g->bp[--g->nbp];
                break;
            }
        }
        send_str(g->client, "OK");
        return;
    }
    if (bp_at(g, addr)) {
        send_str(g->client, "OK");
        return;
    }
    unsigned max = g->accel->ops->max_breakpoints;
    if (max > VCPU_DEBUG_MAX_BREAKPOINTS)
        max = VCPU_DEBUG_MAX_BREAKPOINTS;
    if (!g->accel->ops->set_guest_debug || g->nbp >= max) {
        log_message_ratelimited(&gdb_rl, LOG_LEVEL_WARN,
                                "gdb: breakpoint at 0x%llx refused: %s supports at most %u breakpoints%s",
                                (unsigned long long)addr, g->accel->ops->name, max,
                                !strcmp(g->accel->ops->name, "kvm") ? " (the x86 debug registers)" : "");
        send_error(g->client, ENOSPC);
        return;
    }
    g->bp[g->nbp++] = addr;
    send_str(g->client, "OK");
}

/* vCont;ACTION[:THREAD];...: the leftmost action naming a thread applies to it, one without a thread to the
 * rest. */
static void cmd_vcont(struct gdbstub *g, const char *p, const char *end)
{
    unsigned n = g->accel->ncpus;
    g_autofree char *act = g_malloc0(n);
    char deflt = 0;
    while (p < end) {
        if (*p++ != ';' || p == end)
            goto bad;
        char a = *p++;
        if (a == 'C' || a == 'S') {
            uint8_t sig;
            if (end - p < 2 || !gdb_hex_decode(p, 1, &sig))
                goto bad;
            p += 2;
            a = a == 'C' ? 'c' : 's';
        } else if (a == 't') {
            a = 0;
        } else if (a != 'c' && a != 's') {
            goto bad;
        }
        if (p < end && *p == ':') {
            const char *tid = ++p;
            while (p < end && *p != ';')
                p++;
            int t;
            if (!parse_thread(g, tid, p, &t))
                goto bad;
            if (t > 0 && !act[t - 1])
                act[t - 1] = a ? a : 't';
            else if (t <= 0 && !deflt)
                deflt = a ? a : 't';
        } else if (!deflt) {
            deflt = a ? a : 't';
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (!act[i])
            act[i] = deflt;
        if (act[i] == 't')
            act[i] = 0;
    }
    resume(g, act);
    return;
bad:
    send_error(g->client, EINVAL);
}

/* Legacy c/s/C/S [;ADDR]: continue everything, or step the Hc vCPU alone; ADDR sets its RIP first. */
static void cmd_resume(struct gdbstub *g, char kind, const char *p, const char *end)
{
    unsigned n = g->accel->ncpus;
    unsigned target = g->cont > 0 ? (unsigned)g->cont - 1 : g->stop_cpu;
    if (kind == 'C' || kind == 'S') {
        uint8_t sig;
        if (end - p < 2 || !gdb_hex_decode(p, 1, &sig)) {
            send_error(g->client, EINVAL);
            return;
        }
        p += 2;
        if (p < end && *p == ';')
            p++;
        kind = kind == 'C' ? 'c' : 's';
    }
    if (p < end) {
        uint64_t addr;
        struct gdb_x86_cpu old, cpu;
        if (!gdb_hex_u64(&p, end, &addr) || p != end || read_cpu(g, target, &old) < 0) {
            send_error(g->client, EINVAL);
            return;
        }
        cpu = old;
        cpu.r.rip = addr;
        write_cpu(g, target, &old, &cpu);
    }
    g_autofree char *act = g_malloc0(n);
    if (kind == 's')
        act[target] = 's';
    else
        memset(act, 'c', n);
    resume(g, act);
}

static void cmd_xfer_features(struct gdbstub *g, const char *p, const char *end)
{
    static const char annex[] = "target.xml:";
    uint64_t off, len;
    if ((size_t)(end - p) < sizeof(annex) - 1 || memcmp(p, annex, sizeof(annex) - 1)) {
        send_error(g->client, ENOENT);
        return;
    }
    p += sizeof(annex) - 1;
    if (!gdb_addr_len(&p, end, &off, &len) || p != end) {
        send_error(g->client, EINVAL);
        return;
    }
    const char *xml = gdb_x86_target_xml();
    size_t total = strlen(xml);
    if (len > GDB_PACKET_MAX - 1)
        len = GDB_PACKET_MAX - 1;
    if (off >= total) {
        send_str(g->client, "l");
        return;
    }
    size_t n = total - off < len ? total - off : len;
    g_autoptr(GString) r = g_string_new(off + n >= total ? "l" : "m");
    g_string_append_len(r, xml + off, (gssize)n);
    send_packet(g->client, r->str, r->len);
}

static void cmd_thread_info(struct gdbstub *g)
{
    g_autoptr(GString) r = g_string_new("m");
    for (unsigned i = 0; i < g->accel->ncpus; i++)
        g_string_append_printf(r, i ? ",%x" : "%x", i + 1);
    send_packet(g->client, r->str, r->len);
}

static void cmd_query(struct gdbstub *g, const char *p, const char *end)
{
    size_t len = (size_t)(end - p);
#define IS(lit) (len >= sizeof(lit) - 1 && !memcmp(p, lit, sizeof(lit) - 1))
    if (IS("qSupported")) {
        char buf[96];
        g_snprintf(buf, sizeof(buf), "PacketSize=%x;qXfer:features:read+;QStartNoAckMode+;vContSupported+",
                   GDB_PACKET_MAX);
        send_str(g->client, buf);
    } else if (IS("QStartNoAckMode") && len == sizeof("QStartNoAckMode") - 1) {
        send_str(g->client, "OK");
        g->client->no_ack = true;
    } else if (IS("qXfer:features:read:")) {
        cmd_xfer_features(g, p + sizeof("qXfer:features:read:") - 1, end);
    } else if (IS("qfThreadInfo")) {
        cmd_thread_info(g);
    } else if (IS("qsThreadInfo")) {
        send_str(g->client, "l");
    } else if (IS("qC") && len == 2) {
        char buf[16];
        g_snprintf(buf, sizeof(buf), "QC%x", g->cur + 1);
        send_str(g->client, buf);
    } else if (IS("qAttached")) {
        send_str(g->client, "1");
    } else if (IS("qOffsets")) {
        send_str(g->client, "Text=0;Data=0;Bss=0");
    } else if (IS("qSymbol")) {
        send_str(g->client, "OK");
    } else if (IS("qThreadExtraInfo,")) {
        int t;
        if (!parse_thread(g, p + sizeof("qThreadExtraInfo,") - 1, end, &t) || t <= 0) {
            send_error(g->client, EINVAL);
            return;
        }
        char text[32];
        int n = g_snprintf(text, sizeof(text), "vCPU %d", t - 1);
        g_autoptr(GString) hex = g_string_new(NULL);
        gdb_hex_append(hex, text, (size_t)n);
        send_packet(g->client, hex->str, hex->len);
    } else {
        send_str(g->client, "");
    }
#undef IS
}

static void cmd_set_thread(struct gdbstub *g, const char *p, const char *end)
{
    int t;
    if (p == end || (*p != 'g' && *p != 'c') || !parse_thread(g, p + 1, end, &t)) {
        send_error(g->client, EINVAL);
        return;
    }
    if (*p == 'g') {
        if (t < 0) {
            send_error(g->client, EINVAL);
            return;
        }
        if (t > 0)
            g->cur = (unsigned)t - 1;
    } else {
        g->cont = t;
    }
    send_str(g->client, "OK");
}

static void cmd_kill(struct gdbstub *g)
{
    log_info("gdb: the debugger killed the VM; shutting down");
    debug_off(g);
    vm_shutdown(g->vm, VM_CAUSE_HOST_QMP_QUIT);
}

static void handle_packet(struct gdbstub *g, const char *pkt, size_t len)
{
    const char *end = pkt + len, *p = pkt + 1;
    if (!len) {
        send_str(g->client, "");
        return;
    }
    if (log_get_level() >= LOG_LEVEL_DEBUG)
        log_debug("gdb: packet %.*s", len > 80 ? 80 : (int)len, pkt);
    if (g->waiting) {
        /* All-stop mode: while the VM runs for it, a debugger sends nothing but the interrupt byte. */
        log_message_ratelimited(&gdb_rl, LOG_LEVEL_WARN, "gdb: packet '%c' while the VM runs ignored",
                                pkt[0]);
        return;
    }
    switch (pkt[0]) {
    case '?': {
        char buf[32];
        g_snprintf(buf, sizeof(buf), "T%02xthread:%x;", (unsigned)g->stop_signal, g->stop_cpu + 1);
        send_str(g->client, buf);
        return;
    }
    case 'g':
        if (need_stopped(g))
            cmd_read_regs(g);
        return;
    case 'G':
        if (need_stopped(g))
            cmd_write_regs(g, p, len - 1);
        return;
    case 'p':
        if (need_stopped(g))
            cmd_read_reg(g, p, end);
        return;
    case 'P':
        if (need_stopped(g))
            cmd_write_reg(g, p, end);
        return;
    case 'm':
        if (need_stopped(g))
            cmd_read_mem(g, p, end);
        return;
    case 'M':
    case 'X':
        if (need_stopped(g))
            cmd_write_mem(g, p, end, pkt[0] == 'X');
        return;
    case 'Z':
    case 'z':
        cmd_breakpoint(g, pkt[0] == 'Z', p, end);
        return;
    case 'c':
    case 's':
    case 'C':
    case 'S':
        cmd_resume(g, pkt[0], p, end);
        return;
    case 'H':
        cmd_set_thread(g, p, end);
        return;
    case 'T': {
        int t;
        if (parse_thread(g, p, end, &t) && t > 0)
            send_str(g->client, "OK");
        else
            send_error(g->client, ESRCH);
        return;
    }
    case 'D':
        send_str(g->client, "OK");
        log_info("gdb: the debugger detached; the VM runs on");
        detach(g);
        return;
    case 'k':
        cmd_kill(g);
        return;
    case 'v':
        if (len == 6 && !memcmp(pkt, "vCont?", 6))
            send_str(g->client, "vCont;c;C;s;S;t");
        else if (len >= 5 && !memcmp(pkt, "vCont", 5) && (len == 5 || pkt[5] == ';'))
            cmd_vcont(g, pkt + 5, end);
        else if (len >= 5 && !memcmp(pkt, "vKill", 5)) {
            send_str(g->client, "OK");
            cmd_kill(g);
        } else
            send_str(g->client, "");
        return;
    case 'q':
    case 'Q':
        cmd_query(g, pkt, end);
        return;
    default:
        send_str(g->client, "");
        return;
    }
}

/* ---- the client ---- */

static bool on_input(void *opaque, enum gdb_input what, const char *data, size_t len)
{
    struct gdb_client *c = opaque;
    struct gdbstub *g = c->g;
    switch (what) {
    case GDB_INPUT_ACK:
        c->retransmits = 0;
        break;
    case GDB_INPUT_NAK:
        if (!c->no_ack && c->last->len && c->retransmits < MAX_RETRANSMITS) {
            c->retransmits++;
            client_queue(c, c->last->data, c->last->len);
        }
        break;
    case GDB_INPUT_INTERRUPT:
        if (g->waiting) {
            stop_vm(g);
            int hit = take_debug_stop(g);
            report_stop(g, hit >= 0 ? (unsigned)hit : g->stop_cpu, hit >= 0 ? GDB_SIGTRAP : GDB_SIGINT);
        }
        break;
    case GDB_INPUT_BAD_CHECKSUM:
        if (!c->no_ack)
            client_queue(c, "-", 1);
        break;
    case GDB_INPUT_TOO_LONG:
        log_message_ratelimited(&gdb_rl, LOG_LEVEL_WARN, "gdb: a packet longer than %d bytes was dropped",
                                GDB_PACKET_MAX);
        if (!c->no_ack)
            client_queue(c, "+", 1);
        send_error(c, E2BIG);
        break;
    case GDB_INPUT_PACKET:
        if (!c->no_ack)
            client_queue(c, "+", 1);
        if (!c->conn.closing)
            handle_packet(g, data, len);
        break;
    }
    return !c->conn.closing;
}

static void client_free(gpointer p)
{
    struct gdb_client *c = p;
    sock_client_destroy(&c->conn);
    g_byte_array_unref(c->last);
    g_free(c);
}

static void client_close(void *opaque, const char *why)
{
    struct gdb_client *c = opaque;
    if (!sock_client_stop(&c->conn))
        return;
    struct gdbstub *g = c->g;
    log_info("gdb: client disconnected (%s)", why);
    if (g->client == c) {
        g->client = NULL;
        detach(g);
    }
    sock_client_reaper_add(&g->reaper, c);
}

static void client_receive(void *opaque, const char *data, size_t len)
{
    struct gdb_client *c = opaque;
    gdb_parser_feed(&c->parser, data, len, on_input, c);
}

static const struct sock_client_ops client_ops = {
    .receive = client_receive,
    .closed = client_close,
};

static void on_accept(void *opaque, int cfd)
{
    struct gdbstub *g = opaque;
    if (g->client) {
        log_warn("gdb: refusing a second debugger connection (one at a time)");
        close(cfd);
        return;
    }
    struct gdb_client *c = g_new0(struct gdb_client, 1);
    c->g = g;
    c->last = g_byte_array_new();
    gdb_parser_init(&c->parser);
    sock_client_init(&c->conn, cfd, &client_ops, c);
    g->client = c;
    g->cur = 0;
    g->cont = -1;
    g->stop_cpu = 0;
    g->stop_signal = GDB_SIGTRAP;
    g->stop_at_bp = false;
    g->nbp = 0;
    log_info("gdb: debugger connected; stopping the VM");
    stop_vm(g);
}

struct gdbstub *gdbstub_start(struct vm *vm, struct vm_machine *vmm, struct listen_spec *spec, char **error)
{
    struct accel *a = vmm ? vm_machine_accel(vmm) : NULL;
    if (!a || !a->ncpus) {
        *error =
            g_strdup("the gdbstub needs a machine with vCPUs (--kernel or --firmware, not --accel qtest)");
        return NULL;
    }
    struct gdbstub *g = g_new0(struct gdbstub, 1);
    if (!listen_start(&g->listener, "gdb", spec, on_accept, g, error)) {
        g_free(g);
        return NULL;
    }
    g->vm = vm;
    g->vmm = vmm;
    g->accel = a;
    g->m = a->machine;
    sock_client_reaper_init(&g->reaper, client_free);
    g->cont = -1;
    g->stop_signal = GDB_SIGTRAP;
    g->vm_listener = vm_add_listener(vm, on_vm_event, g);
    vm_machine_set_debug_handler(vmm, on_debug_exit, g);
    return g;
}

void gdbstub_free(struct gdbstub *g)
{
    if (!g)
        return;
    if (g->client) {
        struct gdb_client *c = g->client;
        GByteArray *out = c->conn.out;
        /* A last best-effort flush (the exit reply after a kill or poweroff). */
        if (out->len && send(c->conn.fd, out->data, out->len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            log_debug("gdb: final reply not sent: %s", g_strerror(errno));
        client_close(c, "deskvm exits");
    }
    vm_machine_set_debug_handler(g->vmm, NULL, NULL);
    vm_remove_listener(g->vm, g->vm_listener);
    listen_stop(&g->listener);
    sock_client_reaper_destroy(&g->reaper);
    g_free(g);
}
