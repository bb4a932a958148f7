// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench-vnc-client: the frame-rate and bandwidth half of the VNC benchmark (tests/bench/bench_vnc.py), a libvncclient
 * client fast enough that the servers, not the client, set the pace (the pure-Python tests/lib/rfb.py spent all of a
 * core decoding and still saw a fraction of the frames).
 *
 *   bench-vnc-client --port PORT --width W --height H --encoding zrle|tight|tight-jpeg [--quality Q]
 *                    [--compress C] [--warmup S] [--seconds S]
 *
 * Connects to 127.0.0.1:PORT at 32 bits per pixel (0x00RRGGBB), asks for the one encoding (plus libvncclient's
 * pseudo-encodings: desktop size, last rect, compress level for Tight, and the JPEG quality level only for
 * tight-jpeg), and keeps exactly one incremental update request outstanding: libvncclient sends the next one as soon
 * as it has applied an update, before FinishedFrameBufferUpdate runs. The screen is the one guest-animate draws
 * (tests/guest/programs/guest-animate.c): a 16-bit frame counter in 16 cells of 16x16 black or white pixels at the
 * top left. At the end of every update the client reads the counter from its framebuffer; a cell that is not
 * uniformly black or white is a frame caught halfway ("torn") and not counted. After WARMUP seconds it measures for
 * SECONDS: distinct counter values (frames the client saw), updates, bytes received on the socket from the kernel's
 * TCP_INFO (tcpi_bytes_received, so protocol overhead included and nothing estimated), the guest's own progress
 * (last - first counter), and this process's CPU time. Then it requests one non-incremental full update and compares
 * the whole framebuffer with the pattern guest-animate draws for the counter it shows: exact or not, mismatched
 * pixels, mean absolute error per channel (the figure that matters for JPEG).
 *
 * Prints {"event": "start"} when the measuring window opens and {"event": "end"} when it closes (the caller samples
 * the servers' thread CPU times at those moments), then one JSON object with the results. Exit 0 on success, 1 on a
 * connection or protocol failure, 2 on bad arguments.
 */
#include <getopt.h>
#include <linux/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <rfb/rfbclient.h>

#define CELL 16
#define COUNTER_BITS 16
#define BAR_WIDTH 32
#define BAR_COLOURS 8
#define PERIOD (BAR_WIDTH * BAR_COLOURS)
#define WAVE_PERIOD 512
/* A JPEG-coded cell is not exactly black or white; channels within this distance of 0 or 255 still count. */
#define LOSSY_TOLERANCE 48
/* Updates to wait for an untorn frame to verify before giving up. */
#define VERIFY_TRIES 10

enum phase { PHASE_WARMUP, PHASE_MEASURE, PHASE_DRAIN, PHASE_VERIFY, PHASE_DONE };

struct bench {
    int width, height;
    bool lossy;
    enum phase phase;
    uint64_t update_area;   /* pixels covered by the rectangles of the update being received */
    /* measuring window */
    long updates, torn;
    long distinct;
    uint8_t seen[(1 << COUNTER_BITS) / 8];
    int first, last;
    /* verification */
    int verify_tries;
    int verify_counter;
    long mismatched;
    double mean_abs_error;
};

static const uint32_t bar_colour[BAR_COLOURS] = {
    0x2060c0, 0x30a050, 0xc04040, 0xe0c020, 0x8040a0, 0x20a0a0, 0x606060, 0xd08030,
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static bool bytes_received(int sock, uint64_t *out)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(sock, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
        return false;
    *out = ti.tcpi_bytes_received;
    return true;
}

/* 0..255..0 over 512 steps, as guest-animate computes it. */
static uint32_t triangle(uint32_t v)
{
    v &= 511;
    return v < 256 ? v : 511 - v;
}

/* Pixel (x, y) of guest-animate's frame FRAME (only the counter's 16 bits are known; they fix the pattern, whose
 * period in frames is 64). */
static uint32_t expected_pixel(const struct bench *b, uint32_t frame, int x, int y)
{
    if (y < CELL && x < CELL * COUNTER_BITS)
        return (frame >> (x / CELL)) & 1 ? 0xffffff : 0x000000;
    if (y < b->height / 2)
        return bar_colour[((((uint32_t)y + 4 * frame) % PERIOD + (uint32_t)x) / BAR_WIDTH) % BAR_COLOURS];
    uint32_t wx = ((uint32_t)y + 8 * frame) % WAVE_PERIOD + (uint32_t)x;
    return triangle(2 * wx) << 16 | triangle(wx + 170) << 8 | triangle(4 * wx + 100);
}

static const uint32_t *framebuffer(rfbClient *c)
{
    return (const uint32_t *)c->frameBuffer;
}

/* 0 black, 1 white, -1 neither. */
static int classify(uint32_t px, bool lossy)
{
    int tol = lossy ? LOSSY_TOLERANCE : 0;
    int r = (px >> 16) & 255, g = (px >> 8) & 255, bl = px & 255;
    if (r <= tol && g <= tol && bl <= tol)
        return 0;
    if (r >= 255 - tol && g >= 255 - tol && bl >= 255 - tol)
        return 1;
    return -1;
}

/* The frame counter, or -1 when a cell is not uniformly black or white (a torn frame, or not guest-animate). */
static int read_counter(rfbClient *c, const struct bench *b)
{
    if (c->width < CELL * COUNTER_BITS || c->height < CELL)
        return -1;
    const uint32_t *fb = framebuffer(c);
    int v = 0;
    for (int bit = 0; bit < COUNTER_BITS; bit++) {
        int cls = classify(fb[bit * CELL], b->lossy);
        if (cls < 0)
            return -1;
        for (int y = 0; y < CELL; y++)
            for (int x = 0; x < CELL; x++)
                if (classify(fb[(size_t)y * c->width + bit * CELL + x], b->lossy) != cls)
                    return -1;
        v |= cls << bit;
    }
    return v;
}

static void verify_frame(rfbClient *c, struct bench *b, int counter)
{
    const uint32_t *fb = framebuffer(c);
    uint64_t abs_err = 0;
    long mismatched = 0;
    for (int y = 0; y < b->height; y++)
        for (int x = 0; x < b->width; x++) {
            uint32_t got = fb[(size_t)y * c->width + x] & 0xffffff, want = expected_pixel(b, (uint32_t)counter, x, y);
            if (got != want)
                mismatched++;
            for (int shift = 0; shift < 24; shift += 8)
                abs_err += (uint64_t)abs((int)((got >> shift) & 255) - (int)((want >> shift) & 255));
        }
    b->verify_counter = counter;
    b->mismatched = mismatched;
    b->mean_abs_error = (double)abs_err / (3.0 * b->width * b->height);
}

static char client_data_tag;

static void got_rect(rfbClient *c, int x, int y, int w, int h)
{
    struct bench *b = rfbClientGetClientData(c, &client_data_tag);
    (void)x;
    (void)y;
    if (w > 0 && h > 0)
        b->update_area += (uint64_t)w * (uint64_t)h;
}

static void finished_update(rfbClient *c)
{
    struct bench *b = rfbClientGetClientData(c, &client_data_tag);
    uint64_t area = b->update_area;
    b->update_area = 0;
    if (c->width != b->width || c->height != b->height)
        return;
    int v = read_counter(c, b);
    if (b->phase == PHASE_MEASURE) {
        b->updates++;
        if (v < 0) {
            b->torn++;
            return;
        }
        if (!(b->seen[v / 8] & (1 << (v % 8)))) {
            b->seen[v / 8] |= (uint8_t)(1 << (v % 8));
            b->distinct++;
        }
        if (b->first < 0)
            b->first = v;
        b->last = v;
    } else if (b->phase == PHASE_VERIFY && area >= (uint64_t)b->width * (uint64_t)b->height) {
        /* The framebuffer after an update that covered the whole screen. */
        b->verify_tries++;
        if (v >= 0) {
            verify_frame(c, b, v);
            b->phase = PHASE_DONE;
        } else if (b->verify_tries >= VERIFY_TRIES) {
            b->phase = PHASE_DONE;
        }
    }
}

/* libvncclient's own allocator leaves the new framebuffer uninitialised until the first update covers it; zeroed,
 * the counter check never reads undefined pixels after a resize. */
static rfbBool alloc_framebuffer(rfbClient *c)
{
    free(c->frameBuffer);
    c->frameBuffer = NULL;
    if (c->width <= 0 || c->height <= 0 || c->width > 8192 || c->height > 8192)
        return FALSE;
    c->frameBuffer = calloc((size_t)c->width * (size_t)c->height, 4);
    return c->frameBuffer != NULL;
}

static void quiet_log(const char *format, ...)
{
    (void)format;
}

/* Reads and handles server messages until UNTIL (monotonic seconds) or until the phase becomes DONE. */
static bool pump(rfbClient *c, struct bench *b, double until)
{
    while (b->phase != PHASE_DONE && now() < until) {
        int ready = c->buffered > 0 ? 1 : WaitForMessage(c, 50000);
        if (ready < 0)
            return false;
        if (ready > 0 && !HandleRFBServerMessage(c))
            return false;
    }
    return true;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-vnc-client --port PORT --width W --height H --encoding zrle|tight|tight-jpeg "
                    "[--quality 0-9] [--compress 0-9] [--warmup SECONDS] [--seconds SECONDS]\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"port", required_argument, NULL, 'p'},     {"width", required_argument, NULL, 'w'},
        {"height", required_argument, NULL, 'h'},   {"encoding", required_argument, NULL, 'e'},
        {"quality", required_argument, NULL, 'q'},  {"compress", required_argument, NULL, 'c'},
        {"warmup", required_argument, NULL, 'u'},   {"seconds", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    int port = 0, quality = 8, compress = -1;
    double warmup = 1.0, seconds = 8.0;
    const char *encoding = NULL;
    static struct bench b = {.first = -1, .last = -1, .verify_counter = -1, .mismatched = -1,
                             .mean_abs_error = -1};
    for (int opt; (opt = getopt_long(argc, argv, "", options, NULL)) != -1;) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'w': b.width = atoi(optarg); break;
        case 'h': b.height = atoi(optarg); break;
        case 'e': encoding = optarg; break;
        case 'q': quality = atoi(optarg); break;
        case 'c': compress = atoi(optarg); break;
        case 'u': warmup = atof(optarg); break;
        case 's': seconds = atof(optarg); break;
        default: usage(); return 2;
        }
    }
    if (port <= 0 || port > 65535 || b.width < CELL * COUNTER_BITS || b.height < CELL || b.width > 8192 ||
        b.height > 8192 || !encoding || quality < 0 || quality > 9 || compress > 9 || seconds <= 0 || warmup < 0) {
        usage();
        return 2;
    }
    bool tight = !strcmp(encoding, "tight") || !strcmp(encoding, "tight-jpeg");
    if (!tight && strcmp(encoding, "zrle")) {
        usage();
        return 2;
    }
    b.lossy = !strcmp(encoding, "tight-jpeg");

    rfbClientLog = quiet_log;
    rfbClient *c = rfbGetClient(8, 3, 4);
    if (!c)
        return 1;
    /* 0x00RRGGBB in host order, the guest's own layout. */
    c->format.redShift = 16;
    c->format.greenShift = 8;
    c->format.blueShift = 0;
    c->appData.encodingsString = tight ? "tight" : "zrle";
    c->appData.enableJPEG = b.lossy;
    c->appData.qualityLevel = quality;
    if (compress >= 0)
        c->appData.compressLevel = compress;
    c->appData.useRemoteCursor = FALSE;
    c->canHandleNewFBSize = TRUE;
    free(c->serverHost); /* rfbGetClient's empty string */
    c->serverHost = strdup("127.0.0.1");
    c->serverPort = port;
    c->MallocFrameBuffer = alloc_framebuffer;
    c->GotFrameBufferUpdate = got_rect;
    c->FinishedFrameBufferUpdate = finished_update;
    rfbClientSetClientData(c, &client_data_tag, &b);
    if (!rfbInitClient(c, NULL, NULL)) { /* frees the client on failure */
        fprintf(stderr, "bench-vnc-client: cannot connect to 127.0.0.1:%d\n", port);
        return 1;
    }
    int rc = 1;
    /* Warm-up: the screen reaches W x H (the guest may switch modes after we connect), encoders settle. */
    double t = now();
    if (!pump(c, &b, t + warmup))
        goto out;
    for (double give_up = now() + 30; c->width != b.width || c->height != b.height;)
        if (now() > give_up || !pump(c, &b, now() + 0.1)) {
            fprintf(stderr, "bench-vnc-client: the screen is %dx%d, not %dx%d\n", c->width, c->height, b.width,
                    b.height);
            goto out;
        }

    uint64_t bytes0, bytes1;
    if (!bytes_received(c->sock, &bytes0)) {
        fprintf(stderr, "bench-vnc-client: TCP_INFO has no tcpi_bytes_received\n");
        goto out;
    }
    double cpu0 = cpu_seconds(), t0 = now();
    b.phase = PHASE_MEASURE;
    printf("{\"event\": \"start\"}\n");
    fflush(stdout);
    if (!pump(c, &b, t0 + seconds))
        goto out;
    b.phase = PHASE_DRAIN;
    double t1 = now(), cpu1 = cpu_seconds();
    bytes_received(c->sock, &bytes1);
    printf("{\"event\": \"end\"}\n");
    fflush(stdout);

    b.phase = PHASE_VERIFY;
    if (!SendFramebufferUpdateRequest(c, 0, 0, c->width, c->height, FALSE) || !pump(c, &b, now() + 20))
        goto out;

    double took = t1 - t0;
    uint64_t bytes = bytes1 - bytes0;
    long frames = b.distinct > 0 ? b.distinct : 1;
    int progress = b.first >= 0 ? (b.last - b.first) & 0xffff : 0;
    printf("{\"encoding\": \"%s\", \"width\": %d, \"height\": %d, \"seconds\": %.3f, \"fps\": %.3f, "
           "\"frames\": %ld, \"updates\": %ld, \"torn\": %ld, \"bytes\": %llu, \"bytes_per_frame\": %.1f, "
           "\"guest_fps\": %.3f, \"client_cpu_s\": %.3f, \"verify_counter\": %d, \"exact\": %s, "
           "\"mismatched_pixels\": %ld, \"mean_abs_error\": %.4f}\n",
           encoding, b.width, b.height, took, b.distinct / took, b.distinct, b.updates, b.torn,
           (unsigned long long)bytes, (double)bytes / (double)frames, progress / took, cpu1 - cpu0, b.verify_counter,
           b.verify_counter >= 0 && b.mismatched == 0 ? "true" : "false", b.mismatched, b.mean_abs_error);
    rc = 0;
out:
    free(c->frameBuffer);
    c->frameBuffer = NULL;
    rfbClientCleanup(c);
    return rc;
}
