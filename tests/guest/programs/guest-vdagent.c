// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * guest-vdagent [OPTIONS]: a small SPICE guest agent for deskvm's SPICE tests. It opens the vdagent port
 * (com.redhat.spice.0, found by name in /sys/class/virtio-ports like guest-vport does, so no udev symlinks are
 * needed), speaks the VDAgent protocol (VDIChunkHeader + VDAgentMessage, little-endian) and prints one line per
 * message it gets:
 *
 *   DESKVM-VDAGENT: open DEV
 *   DESKVM-VDAGENT: ANNOUNCE_CAPABILITIES REQUEST CAPS0      (the client's capabilities, hex)
 *   DESKVM-VDAGENT: MONITORS_CONFIG NUM FLAGS WxH+X+Y ...
 *   DESKVM-VDAGENT: CLIPBOARD_GRAB SELECTION TYPE...
 *   DESKVM-VDAGENT: CLIPBOARD_REQUEST SELECTION TYPE
 *   DESKVM-VDAGENT: CLIPBOARD SELECTION TYPE LENGTH HEX     (HEX: the data, "-" when empty; over 4096 bytes
 *                                                            "fnv:H", H the data's 64-bit FNV-1a hash in hex)
 *   DESKVM-VDAGENT: CLIPBOARD_RELEASE SELECTION
 *   DESKVM-VDAGENT: MOUSE_STATE X Y BUTTONS DISPLAY
 *   DESKVM-VDAGENT: CLIENT_DISCONNECTED
 *   DESKVM-VDAGENT: MESSAGE TYPE SIZE                       (anything else)
 *   DESKVM-VDAGENT: grabbed / sent N / requested / quit / error ...
 *
 * Options:
 *   --grab TEXT             once the client announced its capabilities, grab the clipboard (UTF8_TEXT) and
 *                           answer the client's requests with TEXT
 *   --grab-pattern N        like --grab with N bytes of printable ASCII, byte i = 0x20 + (i * 31 + i / 97) % 95
 *                           (for flow-control tests: more than the host buffers at once)
 *   --request-pause SECONDS after requesting the client's clipboard, stop reading for SECONDS (so the client's
 *                           data piles up in the host's buffers: flow-control tests)
 *   --reply TEXT            answer clipboard requests with TEXT without grabbing
 *   --quit-on-monitors WxH  close the port and exit 0 when a MONITORS_CONFIG's first monitor is WxH
 *   --timeout SECONDS       exit 1 after SECONDS (default 300)
 *   --port NAME             the port name (default com.redhat.spice.0)
 *
 * The agent announces MONITORS_CONFIG, REPLY, CLIPBOARD_BY_DEMAND, CLIPBOARD_SELECTION,
 * SPARSE_MONITORS_CONFIG and GUEST_LINEEND_LF; on a client CLIPBOARD_GRAB offering UTF8_TEXT it requests the
 * data at once and prints it. Messages larger than 1 MiB, chunks larger than 64 KiB and chunks for an unknown
 * port end the program with an error (exit 1).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guest_vport.h"

/* Protocol facts (spice-protocol vd_agent.h). */
#define VDP_CLIENT_PORT 1
#define VDP_SERVER_PORT 2
#define VD_AGENT_PROTOCOL 1
#define CHUNK_HEADER_SIZE 8
#define MESSAGE_HEADER_SIZE 20
#define CHUNK_DATA_MAX 2048

enum {
    MSG_MOUSE_STATE = 1,
    MSG_MONITORS_CONFIG = 2,
    MSG_REPLY = 3,
    MSG_CLIPBOARD = 4,
    MSG_DISPLAY_CONFIG = 5,
    MSG_ANNOUNCE_CAPABILITIES = 6,
    MSG_CLIPBOARD_GRAB = 7,
    MSG_CLIPBOARD_REQUEST = 8,
    MSG_CLIPBOARD_RELEASE = 9,
    MSG_CLIENT_DISCONNECTED = 13,
    MSG_MAX_CLIPBOARD = 14,
};

enum {
    CAP_MONITORS_CONFIG = 1,
    CAP_REPLY = 2,
    CAP_CLIPBOARD_BY_DEMAND = 5,
    CAP_CLIPBOARD_SELECTION = 6,
    CAP_SPARSE_MONITORS_CONFIG = 7,
    CAP_GUEST_LINEEND_LF = 8,
    CAP_CLIPBOARD_GRAB_SERIAL = 17,
};

#define CLIPBOARD_UTF8_TEXT 1
#define REPLY_SUCCESS 1

#define MESSAGE_MAX (1024 * 1024)
#define CHUNK_MAX (64 * 1024)

static const char *opt_grab, *opt_reply;
static unsigned quit_w, quit_h;
static double request_pause;
static int port_fd = -1;

/* What the client announced. */
static uint32_t client_caps;
static int have_client_caps;
static int grabbed;

static void marker(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void marker(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("DESKVM-VDAGENT: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Sends one message to the client, cut into chunks of at most CHUNK_DATA_MAX bytes. */
static void send_message(uint32_t type, const uint8_t *data, size_t len)
{
    size_t total = MESSAGE_HEADER_SIZE + len;
    uint8_t *msg = malloc(total);
    if (!msg) {
        marker("error out of memory");
        exit(1);
    }
    put32(msg, VD_AGENT_PROTOCOL);
    put32(msg + 4, type);
    memset(msg + 8, 0, 8); /* opaque */
    put32(msg + 16, (uint32_t)len);
    if (len)
        memcpy(msg + MESSAGE_HEADER_SIZE, data, len);
    for (size_t off = 0; off < total;) {
        size_t n = total - off < CHUNK_DATA_MAX ? total - off : CHUNK_DATA_MAX;
        uint8_t hdr[CHUNK_HEADER_SIZE];
        put32(hdr, VDP_CLIENT_PORT);
        put32(hdr + 4, (uint32_t)n);
        if (write_all(port_fd, hdr, sizeof(hdr)) < 0 || write_all(port_fd, msg + off, n) < 0) {
            marker("error write: %s", strerror(errno));
            exit(1);
        }
        off += n;
    }
    free(msg);
}

static int use_selection(void)
{
    return (client_caps >> CAP_CLIPBOARD_SELECTION) & 1;
}

static int use_grab_serial(void)
{
    return 0; /* never announced, so never used */
}

static void announce(uint32_t request)
{
    uint32_t caps = 1u << CAP_MONITORS_CONFIG | 1u << CAP_REPLY | 1u << CAP_CLIPBOARD_BY_DEMAND |
                    1u << CAP_CLIPBOARD_SELECTION | 1u << CAP_SPARSE_MONITORS_CONFIG | 1u << CAP_GUEST_LINEEND_LF;
    uint8_t d[8];
    put32(d, request);
    put32(d + 4, caps);
    send_message(MSG_ANNOUNCE_CAPABILITIES, d, sizeof(d));
}

/* The selection prefix (u8 selection + 3 bytes padding) when both sides use selections. */
static size_t put_selection(uint8_t *p, uint8_t selection)
{
    if (!use_selection())
        return 0;
    p[0] = selection;
    p[1] = p[2] = p[3] = 0;
    return 4;
}

static void send_grab(void)
{
    uint8_t d[12];
    size_t n = put_selection(d, 0);
    put32(d + n, CLIPBOARD_UTF8_TEXT);
    send_message(MSG_CLIPBOARD_GRAB, d, n + 4);
    grabbed = 1;
    marker("grabbed");
}

static void send_clipboard(uint8_t selection, uint32_t type, const char *text)
{
    size_t len = text ? strlen(text) : 0;
    uint8_t *d = malloc(8 + len + 1);
    if (!d) {
        marker("error out of memory");
        exit(1);
    }
    size_t n = put_selection(d, selection);
    put32(d + n, text ? type : 0); /* no data: type NONE */
    n += 4;
    if (len)
        memcpy(d + n, text, len);
    send_message(MSG_CLIPBOARD, d, n + len);
    free(d);
    marker("sent %zu", len);
}

#define HEX_PRINT_MAX 4096

static void print_hex_line(const char *prefix, const uint8_t *p, size_t len)
{
    printf("DESKVM-VDAGENT: %s %zu ", prefix, len);
    if (len > HEX_PRINT_MAX) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < len; i++)
            h = (h ^ p[i]) * 0x100000001b3ull;
        printf("fnv:%016llx\n", (unsigned long long)h);
        fflush(stdout);
        return;
    }
    if (!len)
        printf("-");
    for (size_t i = 0; i < len; i++)
        printf("%02x", p[i]);
    printf("\n");
    fflush(stdout);
}

/* Strips the selection prefix if in use; returns 0 if the message is too short. */
static int take_selection(const uint8_t **p, size_t *len, unsigned *selection)
{
    *selection = 0;
    if (!use_selection())
        return 1;
    if (*len < 4)
        return 0;
    *selection = (*p)[0];
    *p += 4;
    *len -= 4;
    return 1;
}

static void handle_message(uint32_t type, const uint8_t *p, size_t len)
{
    unsigned sel;
    switch (type) {
    case MSG_ANNOUNCE_CAPABILITIES: {
        if (len < 4) {
            marker("error short ANNOUNCE_CAPABILITIES (%zu bytes)", len);
            return;
        }
        uint32_t request = get32(p);
        client_caps = len >= 8 ? get32(p + 4) : 0;
        have_client_caps = 1;
        marker("ANNOUNCE_CAPABILITIES %u %08x", request, client_caps);
        if (request)
            announce(0);
        if (opt_grab && !grabbed && ((client_caps >> CAP_CLIPBOARD_BY_DEMAND) & 1))
            send_grab();
        return;
    }
    case MSG_MONITORS_CONFIG: {
        if (len < 8) {
            marker("error short MONITORS_CONFIG (%zu bytes)", len);
            return;
        }
        uint32_t num = get32(p), flags = get32(p + 4);
        if (num > 64 || len < 8 + (size_t)num * 20) {
            marker("error MONITORS_CONFIG with %u monitors in %zu bytes", num, len);
            return;
        }
        char line[64 * 64] = "";
        size_t at = 0;
        for (uint32_t i = 0; i < num; i++) {
            const uint8_t *m = p + 8 + i * 20; /* height, width, depth, x, y */
            at += (size_t)snprintf(line + at, sizeof(line) - at, " %ux%u+%d+%d", get32(m + 4), get32(m),
                                   (int32_t)get32(m + 12), (int32_t)get32(m + 16));
        }
        marker("MONITORS_CONFIG %u %u%s", num, flags, line);
        uint8_t reply[8];
        put32(reply, MSG_MONITORS_CONFIG);
        put32(reply + 4, REPLY_SUCCESS);
        send_message(MSG_REPLY, reply, sizeof(reply));
        if (quit_w && num >= 1 && get32(p + 8 + 4) == quit_w && get32(p + 8) == quit_h) {
            marker("quit");
            close(port_fd);
            exit(0);
        }
        return;
    }
    case MSG_CLIPBOARD_GRAB: {
        if (!take_selection(&p, &len, &sel))
            break;
        if (use_grab_serial() && len >= 4) {
            p += 4;
            len -= 4;
        }
        char line[256] = "";
        size_t at = 0;
        int has_text = 0;
        for (size_t i = 0; i + 4 <= len && i < 4 * 32; i += 4) {
            uint32_t t = get32(p + i);
            has_text |= t == CLIPBOARD_UTF8_TEXT;
            at += (size_t)snprintf(line + at, sizeof(line) - at, " %u", t);
        }
        marker("CLIPBOARD_GRAB %u%s", sel, line);
        if (has_text) {
            uint8_t d[8];
            size_t n = put_selection(d, (uint8_t)sel);
            put32(d + n, CLIPBOARD_UTF8_TEXT);
            send_message(MSG_CLIPBOARD_REQUEST, d, n + 4);
            marker("requested");
            if (request_pause > 0) {
                sleep_ms((long)(request_pause * 1000));
                marker("reading again");
            }
        }
        return;
    }
    case MSG_CLIPBOARD_REQUEST: {
        if (!take_selection(&p, &len, &sel) || len < 4)
            break;
        uint32_t t = get32(p);
        marker("CLIPBOARD_REQUEST %u %u", sel, t);
        const char *text = opt_grab ? opt_grab : opt_reply;
        send_clipboard((uint8_t)sel, t, t == CLIPBOARD_UTF8_TEXT ? text : NULL);
        return;
    }
    case MSG_CLIPBOARD: {
        if (!take_selection(&p, &len, &sel) || len < 4)
            break;
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "CLIPBOARD %u %u", sel, get32(p));
        print_hex_line(prefix, p + 4, len - 4);
        return;
    }
    case MSG_CLIPBOARD_RELEASE:
        if (!take_selection(&p, &len, &sel))
            break;
        marker("CLIPBOARD_RELEASE %u", sel);
        return;
    case MSG_MOUSE_STATE:
        if (len < 13)
            break;
        marker("MOUSE_STATE %u %u %u %u", get32(p), get32(p + 4), get32(p + 8), p[12]);
        return;
    case MSG_CLIENT_DISCONNECTED:
        marker("CLIENT_DISCONNECTED");
        client_caps = 0;
        have_client_caps = 0;
        grabbed = 0;
        return;
    case MSG_MAX_CLIPBOARD:
        if (len < 4)
            break;
        marker("MAX_CLIPBOARD %d", (int32_t)get32(p));
        return;
    default:
        marker("MESSAGE %u %zu", type, len);
        return;
    }
    marker("error malformed message type %u (%zu bytes)", type, len);
}

/* Reassembly of one port's message stream. */
struct assembly {
    uint8_t hdr[MESSAGE_HEADER_SIZE];
    size_t hdr_have;
    uint8_t *body;
    size_t body_len, body_have;
};

static void assembly_feed(struct assembly *a, const uint8_t *p, size_t len)
{
    while (len) {
        if (a->hdr_have < MESSAGE_HEADER_SIZE) {
            size_t n = MESSAGE_HEADER_SIZE - a->hdr_have;
            if (n > len)
                n = len;
            memcpy(a->hdr + a->hdr_have, p, n);
            a->hdr_have += n;
            p += n;
            len -= n;
            if (a->hdr_have < MESSAGE_HEADER_SIZE)
                return;
            uint32_t protocol = get32(a->hdr), size = get32(a->hdr + 16);
            if (protocol != VD_AGENT_PROTOCOL) {
                marker("error protocol %u", protocol);
                exit(1);
            }
            if (size > MESSAGE_MAX) {
                marker("error message of %u bytes (limit %d)", size, MESSAGE_MAX);
                exit(1);
            }
            a->body_len = size;
            a->body_have = 0;
            a->body = malloc(size ? size : 1);
            if (!a->body) {
                marker("error out of memory");
                exit(1);
            }
        }
        size_t n = a->body_len - a->body_have;
        if (n > len)
            n = len;
        memcpy(a->body + a->body_have, p, n);
        a->body_have += n;
        p += n;
        len -= n;
        if (a->body_have == a->body_len) {
            handle_message(get32(a->hdr + 4), a->body, a->body_len);
            free(a->body);
            a->body = NULL;
            a->hdr_have = 0;
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: guest-vdagent [--grab TEXT | --grab-pattern N] [--request-pause S] [--reply TEXT] "
                    "[--quit-on-monitors WxH] "
                    "[--timeout SECONDS] [--port NAME]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *name = "com.redhat.spice.0";
    double timeout = 300;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--grab"))
            opt_grab = argv[++i];
        else if (!strcmp(argv[i], "--grab-pattern")) {
            long n = atol(argv[++i]);
            if (n < 1 || n > MESSAGE_MAX - 64)
                usage();
            char *text = malloc((size_t)n + 1);
            if (!text)
                return 1;
            for (long k = 0; k < n; k++)
                text[k] = (char)(0x20 + (k * 31 + k / 97) % 95);
            text[n] = 0;
            opt_grab = text;
        }
        else if (!strcmp(argv[i], "--request-pause"))
            request_pause = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reply"))
            opt_reply = argv[++i];
        else if (!strcmp(argv[i], "--quit-on-monitors")) {
            if (sscanf(argv[++i], "%ux%u", &quit_w, &quit_h) != 2)
                usage();
        } else if (!strcmp(argv[i], "--timeout"))
            timeout = atof(argv[++i]);
        else if (!strcmp(argv[i], "--port"))
            name = argv[++i];
        else
            usage();
    }
    double deadline = now() + timeout;

    char dev[300] = "";
    while (!find_port(name, dev, sizeof(dev))) {
        if (now() > deadline) {
            marker("error no port named %s", name);
            return 1;
        }
        sleep_ms(100);
    }
    for (int tries = 0; (port_fd = open(dev, O_RDWR)) < 0; tries++) {
        if (errno != EBUSY || tries > 100) {
            marker("error open %s: %s", dev, strerror(errno));
            return 1;
        }
        sleep_ms(20); /* an earlier agent's close may still be finishing */
    }
    marker("open %s", dev);

    /* Writes block while the host end is closed, so the announcement waits for spice-server to attach. */
    announce(1);

    struct assembly ports[2];
    memset(ports, 0, sizeof(ports));
    uint8_t chdr[CHUNK_HEADER_SIZE];
    size_t chdr_have = 0, chunk_left = 0;
    unsigned chunk_port = 0;
    static uint8_t buf[16384];
    for (;;) {
        double left = deadline - now();
        if (left <= 0) {
            marker("timeout");
            return 1;
        }
        struct pollfd pfd = {.fd = port_fd, .events = POLLIN};
        int r = poll(&pfd, 1, left > 1 ? 1000 : (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) {
            marker("error poll: %s", strerror(errno));
            return 1;
        }
        if (r <= 0)
            continue;
        ssize_t n = read(port_fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            marker("error read: %s", strerror(errno));
            return 1;
        }
        if (n == 0) { /* the host end is closed: wait for it */
            sleep_ms(20);
            continue;
        }
        const uint8_t *p = buf;
        size_t len = (size_t)n;
        while (len) {
            if (chdr_have < CHUNK_HEADER_SIZE) {
                size_t k = CHUNK_HEADER_SIZE - chdr_have;
                if (k > len)
                    k = len;
                memcpy(chdr + chdr_have, p, k);
                chdr_have += k;
                p += k;
                len -= k;
                if (chdr_have < CHUNK_HEADER_SIZE)
                    break;
                chunk_port = get32(chdr);
                chunk_left = get32(chdr + 4);
                if (chunk_port != VDP_CLIENT_PORT && chunk_port != VDP_SERVER_PORT) {
                    marker("error chunk for port %u", chunk_port);
                    return 1;
                }
                if (chunk_left > CHUNK_MAX) {
                    marker("error chunk of %zu bytes", chunk_left);
                    return 1;
                }
                if (!chunk_left)
                    chdr_have = 0;
                continue;
            }
            size_t k = chunk_left < len ? chunk_left : len;
            assembly_feed(&ports[chunk_port - 1], p, k);
            p += k;
            len -= k;
            chunk_left -= k;
            if (!chunk_left)
                chdr_have = 0;
        }
    }
}
