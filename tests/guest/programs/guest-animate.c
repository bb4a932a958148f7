// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * guest-animate: display workloads for the VNC benchmark and tests, drawn through a framebuffer device
 * (/dev/fb0, DRM's fbdev emulation of bochs-display or virtio-gpu) at 32 bits per pixel.
 *
 *   guest-animate anim SECONDS [FRAMES]
 *     Redraws the whole screen as fast as it can for SECONDS (or until FRAMES frames): the top half
 *     diagonal bars of flat colour (like a desktop's windows and text), the bottom half smooth diagonal
 *     colour gradients (like a photo or video), both moving each frame, and the frame number in the
 *     top-left corner so a client can count the distinct frames it saw. Prints
 *     "DESKVM-ANIMATE: start WxH" and at the end "DESKVM-ANIMATE: end frames=N seconds=S fps=F".
 *   guest-animate keys SECONDS
 *     Paints the screen grey and a band (rows 16..79, full width) black, opens every /dev/input/event*
 *     that has keys, prints "DESKVM-ANIMATE: keys-ready WxH devices=N", then on every key press (value 1)
 *     flips the band between red (odd presses) and blue (even presses) at once and prints
 *     "DESKVM-ANIMATE: key N CODE". Ends after SECONDS with "DESKVM-ANIMATE: keys-end presses=N".
 *
 * Frame number encoding (anim): 16 cells of 16x16 pixels along the top-left edge, cell i (x = 16i..16i+15,
 * y = 0..15) white (0xffffff) when bit i of the frame number is set, else black. The bars never use pure
 * white or black, so the cells stand apart.
 *
 * Each frame (or band) goes to the device with one pwrite() of whole rows: DRM's fbdev emulation turns a
 * write into damage and flushes it to the device right away, while mmap writes would wait for deferred
 * I/O's timer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fb.h>
#include <linux/input.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define CELL 16
#define COUNTER_BITS 16
#define BAR_WIDTH 32
#define BAR_COLOURS 8
#define PERIOD (BAR_WIDTH * BAR_COLOURS)
#define WAVE_PERIOD 512
#define BAND_Y 16
#define BAND_H 64
#define MAX_DEVS 32

static const uint32_t bar_colour[BAR_COLOURS] = {
    0x2060c0, 0x30a050, 0xc04040, 0xe0c020, 0x8040a0, 0x20a0a0, 0x606060, 0xd08030,
};

struct fb {
    int fd;
    uint32_t w, h, stride;
    off_t origin;
    uint8_t *frame;
};

/* 0..255..0 over 512 steps. */
static uint32_t triangle(uint32_t v)
{
    v &= 511;
    return v < 256 ? v : 511 - v;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
    printf("DESKVM-ANIMATE: error=%s: %s\n", what, strerror(errno));
    return 1;
}

static int fb_open(struct fb *fb)
{
    struct fb_var_screeninfo var;
    struct fb_fix_screeninfo fix;
    /* A DRM driver may register its fbdev emulation a moment after modprobe returns. */
    for (double until = now() + 10;
         (fb->fd = open("/dev/fb0", O_RDWR)) < 0 && errno == ENOENT && now() < until;)
        usleep(50000);
    if (fb->fd < 0)
        return fail("open /dev/fb0");
    if (ioctl(fb->fd, FBIOGET_VSCREENINFO, &var) < 0 || ioctl(fb->fd, FBIOGET_FSCREENINFO, &fix) < 0)
        return fail("FBIOGET_*SCREENINFO");
    if (var.bits_per_pixel != 32 || var.red.offset != 16 || var.green.offset != 8 || var.blue.offset != 0) {
        errno = ENOTSUP;
        return fail("pixel format");
    }
    fb->w = var.xres;
    fb->h = var.yres;
    fb->stride = fix.line_length;
    fb->origin = (off_t)var.yoffset * fb->stride + (off_t)var.xoffset * 4;
    fb->frame = calloc(fb->h, fb->stride);
    if (!fb->frame)
        return fail("calloc");
    return 0;
}

/* Writes rows [y0, y0 + n) of the frame to the device. */
static int fb_flush_rows(struct fb *fb, uint32_t y0, uint32_t n)
{
    size_t size = (size_t)n * fb->stride;
    off_t at = fb->origin + (off_t)y0 * fb->stride;
    if (pwrite(fb->fd, fb->frame + (size_t)y0 * fb->stride, size, at) != (ssize_t)size)
        return fail("write");
    return 0;
}

static void fill_rect(struct fb *fb, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, uint32_t colour)
{
    for (uint32_t y = y0; y < y0 + h && y < fb->h; y++) {
        uint32_t *row = (uint32_t *)(fb->frame + (size_t)y * fb->stride);
        for (uint32_t x = x0; x < x0 + w && x < fb->w; x++)
            row[x] = colour;
    }
}

static int animate(struct fb *fb, double seconds, long max_frames)
{
    /* One long row each of bars and of gradients; row y of frame f starts periodically at (y + 4f) resp.
     * (y + 8f), so a frame is a memcpy per row: cheap on a software CPU, and the whole screen moves. */
    uint32_t *line = malloc(((size_t)fb->w + PERIOD) * 4);
    uint32_t *wave = malloc(((size_t)fb->w + WAVE_PERIOD) * 4);
    if (!line || !wave)
        return fail("malloc");
    for (uint32_t x = 0; x < fb->w + PERIOD; x++)
        line[x] = bar_colour[(x / BAR_WIDTH) % BAR_COLOURS];
    for (uint32_t x = 0; x < fb->w + WAVE_PERIOD; x++)
        wave[x] = triangle(2 * x) << 16 | triangle(x + 170) << 8 | triangle(4 * x + 100);
    printf("DESKVM-ANIMATE: start %ux%u\n", fb->w, fb->h);
    double t0 = now(), end = t0 + seconds;
    long frames = 0;
    while (now() < end && (max_frames <= 0 || frames < max_frames)) {
        uint32_t f = (uint32_t)frames;
        for (uint32_t y = 0; y < fb->h; y++) {
            const uint32_t *src =
                y < fb->h / 2 ? line + (y + 4 * f) % PERIOD : wave + (y + 8 * f) % WAVE_PERIOD;
            memcpy(fb->frame + (size_t)y * fb->stride, src, (size_t)fb->w * 4);
        }
        for (int bit = 0; bit < COUNTER_BITS; bit++)
            fill_rect(fb, (uint32_t)bit * CELL, 0, CELL, CELL, (frames >> bit) & 1 ? 0xffffff : 0x000000);
        if (fb_flush_rows(fb, 0, fb->h))
            return 1;
        frames++;
    }
    double took = now() - t0;
    printf("DESKVM-ANIMATE: end frames=%ld seconds=%.3f fps=%.2f\n", frames, took,
           took > 0 ? frames / took : 0.0);
    free(line);
    free(wave);
    return 0;
}

static int key_devices(struct pollfd *fds)
{
    int n = 0;
    for (int i = 0; i < MAX_DEVS && n < MAX_DEVS; i++) {
        char path[64];
        unsigned long evbits = 0;
        snprintf(path, sizeof(path), "/dev/input/event%d", i);
        int fd = open(path, O_RDONLY | O_NONBLOCK);
        if (fd < 0)
            continue;
        if (ioctl(fd, EVIOCGBIT(0, sizeof(evbits)), &evbits) < 0 || !(evbits & (1UL << EV_KEY))) {
            close(fd);
            continue;
        }
        fds[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    return n;
}

static int keys(struct fb *fb, double seconds)
{
    struct pollfd fds[MAX_DEVS];
    fill_rect(fb, 0, 0, fb->w, fb->h, 0x808080);
    fill_rect(fb, 0, BAND_Y, fb->w, BAND_H, 0x000000);
    if (fb_flush_rows(fb, 0, fb->h))
        return 1;
    /* The input drivers bind while init's modprobe runs; their nodes may come a moment later. */
    int n = 0;
    for (double until = now() + 10; (n = key_devices(fds)) == 0 && now() < until;)
        usleep(100000);
    printf("DESKVM-ANIMATE: keys-ready %ux%u devices=%d\n", fb->w, fb->h, n);
    long presses = 0;
    for (double end = now() + seconds; now() < end;) {
        int r = poll(fds, (nfds_t)n, 100);
        if (r < 0 && errno != EINTR)
            return fail("poll");
        for (int i = 0; i < n; i++) {
            if (!(fds[i].revents & POLLIN))
                continue;
            struct input_event ev[64];
            ssize_t len = read(fds[i].fd, ev, sizeof(ev));
            for (ssize_t k = 0; len > 0 && k < len / (ssize_t)sizeof(ev[0]); k++) {
                if (ev[k].type != EV_KEY || ev[k].value != 1)
                    continue;
                presses++;
                fill_rect(fb, 0, BAND_Y, fb->w, BAND_H, presses & 1 ? 0xff0000 : 0x0000ff);
                if (fb_flush_rows(fb, BAND_Y, BAND_H))
                    return 1;
                printf("DESKVM-ANIMATE: key %ld %u\n", presses, ev[k].code);
            }
        }
    }
    printf("DESKVM-ANIMATE: keys-end presses=%ld\n", presses);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3 || (strcmp(argv[1], "anim") && strcmp(argv[1], "keys"))) {
        fprintf(stderr, "usage: guest-animate anim SECONDS [FRAMES] | guest-animate keys SECONDS\n");
        return 2;
    }
    struct fb fb;
    if (fb_open(&fb))
        return 1;
    if (!strcmp(argv[1], "anim"))
        return animate(&fb, atof(argv[2]), argc > 3 ? atol(argv[3]) : 0);
    return keys(&fb, atof(argv[2]));
}
