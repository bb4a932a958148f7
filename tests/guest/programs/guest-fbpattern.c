// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * guest-fbpattern [DEVICE]: draws a known pattern over the whole visible screen of a framebuffer device
 * (default /dev/fb0) at 32 bits per pixel, then prints one line
 *
 *   DESKVM-FB: drawn WIDTHxHEIGHT stride=BYTES
 *
 * or "DESKVM-FB: error=WHAT: REASON" (exit status 1). Pixel (x, y) gets red x & 255, green y & 255 and blue
 * (7x + 3y) & 255, so the host can check a screenshot pixel for pixel. It draws with one write(), which makes
 * DRM's fbdev emulation flush the frame to the device as damage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(const char *what)
{
    printf("DESKVM-FB: error=%s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/dev/fb0";
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return fail("open");
    struct fb_var_screeninfo var;
    struct fb_fix_screeninfo fix;
    if (ioctl(fd, FBIOGET_VSCREENINFO, &var) < 0)
        return fail("FBIOGET_VSCREENINFO");
    if (ioctl(fd, FBIOGET_FSCREENINFO, &fix) < 0)
        return fail("FBIOGET_FSCREENINFO");
    if (var.bits_per_pixel != 32 || var.red.offset != 16 || var.green.offset != 8 || var.blue.offset != 0) {
        errno = ENOTSUP;
        return fail("pixel format");
    }
    uint32_t w = var.xres, h = var.yres, stride = fix.line_length;
    /* One write of the whole frame: Linux 6.1's fbdev emulation computes an empty damage rectangle for a
     * write of exactly one scanline, so line-by-line writes would never reach the device. */
    size_t size = (size_t)stride * h;
    uint8_t *frame = calloc(1, size);
    if (!frame)
        return fail("calloc");
    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            uint32_t px = (x & 255) << 16 | (y & 255) << 8 | ((7 * x + 3 * y) & 255);
            memcpy(frame + (size_t)y * stride + 4 * x, &px, 4);
        }
    }
    off_t at = (off_t)var.yoffset * stride + (off_t)var.xoffset * 4;
    if (pwrite(fd, frame, size, at) != (ssize_t)size)
        return fail("write");
    fsync(fd);
    printf("DESKVM-FB: drawn %ux%u stride=%u\n", w, h, stride);
    fflush(stdout);
    free(frame);
    close(fd);
    return 0;
}
