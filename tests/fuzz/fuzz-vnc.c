/* libFuzzer target for the VNC front end: a hostile client against deskvm's VNC server code. Each input is
 * one connection: what the client sends from the moment it connects (protocol version, security type, perhaps
 * an authentication response, ClientInit, then any client messages: SetPixelFormat, SetEncodings with QEMU's
 * pseudo-encodings, FramebufferUpdateRequest, key and pointer events, ClientCutText, SetDesktopSize, QEMU's
 * message 255...). The connection goes the way deskvm's own do: connect() to the server's unix listener, the
 * main loop accepts and hands the socket over, the server side takes it in apply_pending; the display is a
 * fake device whose resize hook sets a new surface, the input router has a handler that takes everything.
 *
 * Determinism: the server's thread is not started. This file includes server/vnc.c with g_thread_new
 * replaced, and runs the thread's loop body (apply_pending + rfbProcessEvents without waiting) itself,
 * interleaved with the main loop (accept, input drain, display refresh) and with reading and discarding the
 * server's replies, until the server has dropped the client. The whole input is written before the server
 * reads any of it, with the write side shut, so a message cut short ends in EOF rather than a wait.
 *
 * Input layout: byte 0 is a set of flags, the rest is the client's byte stream.
 *   bit 0  the server with VNC authentication (password FUZZ_PASSWORD), else the one without
 *   bit 1  (auth) the harness answers the challenge right: it sends the 12-byte version, a security type byte
 *          if the server asks for one, the correct DES response, then the rest of the stream
 *   bit 2  (auth) the failure rate limit is already used up
 *   bit 3  (auth) the password has expired (bits 2 and 3 together: no password was ever set)
 *   bit 4  the guest's Num Lock LED is on (keysyms map to the keypad differently)
 *   bit 5  the guest shows a cursor (rich cursor for clients asking for one, drawn in for the others)
 *   bit 6  the display has no resize hook (SetDesktopSize is refused as prohibited)
 *   bit 7  the main loop is stalled while the client talks (the input queue fills up to its cap; a long input
 *          of pointer events reaches it)
 * Any crash, sanitizer report, leak, hang, a client the server never lets go of, a key or button left held in
 * the guest after the client is gone, or a unix client reported under another path than the listener's is a
 * bug. */
#include <glib.h>

#include <signal.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The server's thread is never started: the harness runs its loop itself (see above). */
static GThread *fuzz_no_thread(const gchar *name, GThreadFunc func, gpointer data)
{
    (void)name, (void)func, (void)data;
    return NULL;
}
#define g_thread_new(name, func, data) fuzz_no_thread(name, func, data)
#include "../../server/vnc.c"
#undef g_thread_new

#include "input.h"
#include "scancode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* Leaks inside libvncserver itself that deskvm cannot reach (matched by a frame only the library has):
 * - 0.9.14's SetDesktopSize handler takes a client iterator (rfbGetClientIterator) once the hook accepted a
 *   size and never releases it: 24 bytes per accepted request (upstream issue LibVNC/libvncserver#724).
 *   deskvm's own iterators are all released, so the suppression hides nothing of ours.
 * - 0.9.14's WebSocket handshake keeps a copy of the request path (cl->wspath) that nothing frees when the
 *   handshake then fails: the connection never gets as far as deskvm's hooks (12 bytes or so per refused
 *   connection, webSocketsCheck).
 * (0.9.14's other client leak, the WebSocket context of a client that got in, deskvm frees itself in its
 * clientGoneHook; the path of such a client the library frees.) */
const char *__lsan_default_suppressions(void)
{
    return "leak:rfbGetClientIterator\nleak:webSocketsCheck\n";
}

#define FUZZ_PASSWORD "fuzzpw"
#define SURFACE_W 64
#define SURFACE_H 48
/* Resize requests are applied up to this size: a raw 32-bit update of the whole screen must fit in the socket
 * buffer, since the harness reads replies only between the server's steps. */
#define RESIZE_MAX 128
/* Larger inputs are cut here: the whole input has to fit in the socket buffer at once. */
#define INPUT_MAX 65536
/* Steps of the loop before the harness gives up on the server letting the client go (then abort: a hang). */
#define STEPS_MAX 200000

enum {
    F_AUTH = 1 << 0,
    F_GOOD_RESPONSE = 1 << 1,
    F_RATE_LIMITED = 1 << 2,
    F_EXPIRED = 1 << 3,
    F_NUM_LOCK = 1 << 4,
    F_CURSOR = 1 << 5,
    F_NO_RESIZE = 1 << 6,
    F_STALL = 1 << 7,
};

static struct machine machine;
static struct display display;
static pixman_image_t *initial_surface, *cursor_image;
static struct vnc *servers[2]; /* [0] no authentication, [1] VNC authentication */
static char *socket_paths[2];
static char *socket_dir;
static uint64_t keys_seen, pointer_events_seen, resizes_seen, reply_bytes;
static bool verbose;
static bool main_loop_stalled; /* F_STALL: the main loop runs only for the accept, until the client is gone */

static bool fake_request_resize(struct display *d, unsigned width, unsigned height)
{
    /* The guest takes every request (within what the socket buffer allows, see RESIZE_MAX) at once. */
    int w = (int)MIN(width, RESIZE_MAX), h = (int)MIN(height, RESIZE_MAX);
    pixman_image_t *s = pixman_image_create_bits(PIXMAN_x8r8g8b8, w, h, NULL, w * 4);
    memset(pixman_image_get_data(s), 0x5a, (size_t)w * (size_t)h * 4);
    display_set_surface(d, s);
    pixman_image_unref(s);
    resizes_seen++;
    return true;
}

static const struct display_ops ops_resizable = {.request_resize = fake_request_resize};
static const struct display_ops ops_fixed = {0};

/* What the guest's devices see as held: once a client is gone, nothing it pressed may stay pressed. */
static uint8_t keys_held[KEY_CNT];
static bool buttons_held[INPUT_BUTTON__MAX];

static void fake_input_event(void *opaque, const struct input_event *ev)
{
    (void)opaque;
    if (ev->type == INPUT_EVENT_KEY) {
        keys_seen++;
        if (ev->key.code < KEY_CNT)
            keys_held[ev->key.code] = ev->key.down;
    } else {
        pointer_events_seen++;
        if (ev->type == INPUT_EVENT_BTN && ev->btn.button < INPUT_BUTTON__MAX)
            buttons_held[ev->btn.button] = ev->btn.down;
    }
}

static void check_nothing_held(void)
{
    for (unsigned c = 0; c < KEY_CNT; c++)
        if (keys_held[c]) {
            fprintf(stderr, "fuzz-vnc: key %u still held after the client left\n", c);
            abort();
        }
    for (unsigned b = 0; b < INPUT_BUTTON__MAX; b++)
        if (buttons_held[b]) {
            fprintf(stderr, "fuzz-vnc: button %u still held after the client left\n", b);
            abort();
        }
}

static void fake_input_sync(void *opaque)
{
    (void)opaque;
}

static const struct input_handler_ops input_ops = {.event = fake_input_event, .sync = fake_input_sync};

static void cleanup_at_exit(void)
{
    for (int i = 0; i < 2; i++) {
        vnc_stop(servers[i]); /* also unlinks the socket */
        g_free(socket_paths[i]);
    }
    if (socket_dir)
        rmdir(socket_dir);
    g_free(socket_dir);
}

static void setup(void)
{
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    log_set_level(verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
    signal(SIGPIPE, SIG_IGN);
    struct machine_config cfg = {.ram_size = 16 << 20, .cpus = 1, .manual_clock = true};
    char *err = NULL;
    if (machine_init(&machine, &cfg, NULL, 0, &err) < 0) {
        fprintf(stderr, "machine_init: %s\n", err);
        abort();
    }
    initial_surface = pixman_image_create_bits(PIXMAN_x8r8g8b8, SURFACE_W, SURFACE_H, NULL, SURFACE_W * 4);
    uint32_t *px = pixman_image_get_data(initial_surface);
    for (int i = 0; i < SURFACE_W * SURFACE_H; i++)
        px[i] = (uint32_t)i * 0x010305u; /* varied pixels, so the encoders have something to do */
    cursor_image = pixman_image_create_bits(PIXMAN_a8r8g8b8, 16, 16, NULL, 16 * 4);
    uint32_t *cp = pixman_image_get_data(cursor_image);
    for (int i = 0; i < 16 * 16; i++)
        cp[i] = (i % 16) < 8 ? 0xffff0000u : 0x40000040u;

    machine_lock(&machine);
    display_init(&display, &machine, "video0", "fake-display", 0, &ops_resizable, NULL);
    display_register(&display);
    display_set_surface(&display, initial_surface);
    input_handler_register(machine.input, "fuzz-input",
                           INPUT_CAP_KEYBOARD | INPUT_CAP_TABLET | INPUT_CAP_MOUSE, INPUT_PRIORITY_VIRTIO,
                           &input_ops, NULL);
    machine_unlock(&machine);

    socket_dir = g_dir_make_tmp("dvm-fuzz-vnc-XXXXXX", NULL);
    if (!socket_dir)
        abort();
    for (int i = 0; i < 2; i++) {
        socket_paths[i] = g_strdup_printf("%s/vnc%d.sock", socket_dir, i);
        struct vnc_spec spec = {.kind = VNC_UNIX, .path = socket_paths[i], .password = i == 1};
        servers[i] = vnc_start(&spec, &machine, machine.input, NULL, "fuzz", &err);
        if (!servers[i]) {
            fprintf(stderr, "vnc_start: %s\n", err);
            abort();
        }
        /* Updates go out as soon as asked for, not after libvncserver's default 5 ms of gathering damage. */
        servers[i]->screen->deferUpdateTime = 0;
    }
    char *e2 = NULL;
    if (!vnc_set_password(servers[1], FUZZ_PASSWORD, &e2))
        abort();
    atexit(cleanup_at_exit);
}

/* Runs what is ready on the main loop, a bounded number of rounds: when the machine is slow, the display's
 * 30 Hz refresh timer can be due again by the time one round ends, and "until nothing is ready" never ends. */
#define MAIN_LOOP_ROUNDS 64

static void main_loop_iterate(void)
{
    display_refresh(&display);
    for (int i = 0; i < MAIN_LOOP_ROUNDS && g_main_context_iteration(NULL, FALSE); i++)
        ;
}

/* The one client of v, or NULL. */
static rfbClientPtr only_client(struct vnc *v)
{
    rfbClientIteratorPtr it = rfbGetClientIterator(v->screen);
    rfbClientPtr cl = rfbClientIteratorNext(it);
    rfbReleaseClientIterator(it);
    return cl;
}

/* Reads and drops what the server sent; true once the server closed the connection. */
static bool discard_replies(int fd)
{
    static char buf[65536]; /* static: ASan would poison and unpoison 64 KB of stack on every call */
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            reply_bytes += (uint64_t)n;
            continue;
        }
        if (n == 0)
            return true;
        if (errno == EINTR)
            continue;
        return errno != EAGAIN && errno != EWOULDBLOCK;
    }
}

/* One step of the server's thread and of the main loop. */
static bool step(struct vnc *v, int fd)
{
    apply_pending(v);
    rfbProcessEvents(v->screen, 0);
    bool closed = discard_replies(fd);
    if (!main_loop_stalled)
        main_loop_iterate();
    return closed;
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the server went away (or the buffer is full: the rest is lost, like a dropped link) */
        p += w;
        n -= (size_t)w;
    }
}

/* Steps until the client reaches `state` (or leaves); false if it left. */
static bool step_until_state(struct vnc *v, int fd, int state)
{
    for (int i = 0; i < 1000; i++) {
        rfbClientPtr cl = only_client(v);
        if (!cl || cl->sock < 0)
            return false;
        if ((int)cl->state == state)
            return true;
        if (step(v, fd))
            return false;
    }
    return false;
}

static void reset_state(struct vnc *v, uint8_t flags)
{
    machine_lock(&machine);
    display.ops = flags & F_NO_RESIZE ? &ops_fixed : &ops_resizable;
    if (display.surface != initial_surface)
        display_set_surface(&display, initial_surface);
    if (flags & F_CURSOR) {
        display_set_cursor(&display, cursor_image, 3, 4);
        display_move_cursor(&display, 20, 20, true);
    } else {
        display_set_cursor(&display, NULL, 0, 0);
        display_move_cursor(&display, 0, 0, false);
    }
    input_set_leds(machine.input, flags & F_NUM_LOCK ? INPUT_LED_NUM_LOCK : 0);
    /* the guest draws: damage for the shadow to copy (and clients to get, if they asked) */
    display_add_damage(&display, 8, 8, 16, 16);
    machine_unlock(&machine);

    g_mutex_lock(&v->lock);
    v->fail_window_start = g_get_real_time();
    v->fail_count = flags & F_RATE_LIMITED ? VNC_AUTH_FAIL_MAX : 0;
    v->expire_at = flags & F_EXPIRED ? 1 : 0;
    if (v->spec.password)
        v->have_password = (flags & (F_RATE_LIMITED | F_EXPIRED)) != (F_RATE_LIMITED | F_EXPIRED);
    g_mutex_unlock(&v->lock);
    main_loop_iterate();
    apply_pending(v);
}

/* Back to the initial surface and no cursor, with everything the server side held for the input freed within
 * it: libFuzzer runs its (slow) leak check after any input that allocated more than it freed. */
static void restore_baseline(struct vnc *v)
{
    machine_lock(&machine);
    if (display.surface != initial_surface)
        display_set_surface(&display, initial_surface);
    display_set_cursor(&display, NULL, 0, 0);
    display_move_cursor(&display, 0, 0, false);
    machine_unlock(&machine);
    main_loop_iterate();
    apply_pending(v);
    main_loop_iterate();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    data++, size--;
    size = MIN(size, INPUT_MAX);
    struct vnc *v = servers[flags & F_AUTH ? 1 : 0];
    reset_state(v, flags);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    g_strlcpy(sa.sun_path, socket_paths[flags & F_AUTH ? 1 : 0], sizeof(sa.sun_path));
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("fuzz-vnc: connect");
        abort();
    }
    int sndbuf = 4 * INPUT_MAX;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);

    /* The client speaks first, before the hand-over: libvncserver peeks at the first bytes to tell a
     * WebSocket client from an RFB one, and waits 100 ms for them if there are none yet. */
    bool answer = (flags & (F_AUTH | F_GOOD_RESPONSE)) == (F_AUTH | F_GOOD_RESPONSE) && size >= 12;
    size_t off = answer ? 12 : size;
    send_all(fd, data, off);
    if (off == size)
        shutdown(fd, SHUT_WR);

    /* The listener's accept on the main loop, and the hand-over to the server side. */
    bool accepted = false;
    for (int i = 0; i < 1000 && !accepted; i++) {
        main_loop_iterate();
        g_mutex_lock(&v->lock);
        accepted = v->new_fds->len > 0;
        g_mutex_unlock(&v->lock);
    }
    if (!accepted) {
        fprintf(stderr, "fuzz-vnc: the listener never accepted the connection\n");
        abort();
    }
    apply_pending(v);
    main_loop_stalled = flags & F_STALL;
    rfbClientPtr cl = only_client(v);
    struct vnc_client *vc = cl ? cl->clientData : NULL;
    if (vc && strcmp(vc->info.host, socket_paths[flags & F_AUTH ? 1 : 0])) {
        /* what query-vnc reports for the client: the listening path */
        fprintf(stderr, "fuzz-vnc: the client's host is %s\n", vc->info.host);
        abort();
    }

    if (answer) {
        /* RFB 3.7 and later ask for the security type; 3.3 sends the challenge straight away. */
        if (step_until_state(v, fd, RFB_SECURITY_TYPE) && off < size) {
            send_all(fd, data + off, 1);
            off++;
        }
        if (step_until_state(v, fd, RFB_AUTHENTICATION)) {
            rfbClientPtr authing = only_client(v);
            unsigned char response[CHALLENGESIZE];
            char key[VNC_PASSWORD_MAX + 1] = FUZZ_PASSWORD;
            memcpy(response, authing->authChallenge, CHALLENGESIZE);
            rfbEncryptBytes(response, key);
            send_all(fd, response, sizeof(response));
        }
        send_all(fd, data + off, size - off);
        shutdown(fd, SHUT_WR);
    }

    bool closed = false;
    int steps = 0;
    for (; steps < STEPS_MAX; steps++) {
        closed = step(v, fd) || closed;
        g_mutex_lock(&v->lock);
        if (closed && v->clients->len == 0)
            main_loop_stalled = false; /* the queued events drain now */
        bool gone = v->clients->len == 0 && v->new_fds->len == 0 && v->events->len == 0;
        g_mutex_unlock(&v->lock);
        if (closed && gone && !only_client(v))
            break;
    }
    if (steps == STEPS_MAX) {
        fprintf(stderr, "fuzz-vnc: the server still holds the client after %d steps\n", STEPS_MAX);
        abort();
    }
    close(fd);
    main_loop_iterate();
    check_nothing_held();
    restore_baseline(v);
    if (verbose)
        fprintf(stderr,
                "fuzz-vnc: %d steps, %" PRIu64 " reply bytes; so far %" PRIu64 " keys, %" PRIu64
                " pointer events, %" PRIu64 " resizes, %" PRIu64 " events dropped\n",
                steps, reply_bytes, keys_seen, pointer_events_seen, resizes_seen, v->events_dropped);
    return 0;
}
