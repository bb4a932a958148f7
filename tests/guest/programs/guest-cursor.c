// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * guest-cursor [X Y]: sets a hardware cursor through DRM's legacy cursor ioctl on the first CRTC of
 * /dev/dri/card0, as a desktop's compositor or X server does, and moves its hotspot to (X, Y) (default 100,
 * 200). The 64x64 ARGB8888 image: pixel (x, y) is opaque with red 4x, green 4y, blue 0x80 inside the 24x16
 * box at the top left, fully transparent elsewhere; the hotspot is (5, 7). Prints
 *
 *   DESKVM-CURSOR: set crtc=ID at X,Y
 *
 * or "DESKVM-CURSOR: error=WHAT: REASON" (exit status 1), then sleeps so the DRM file (and the cursor) stays.
 *
 * The image has no libdrm: the few uapi structures and ioctl numbers are spelled out below (Linux's
 * include/uapi/drm/drm.h and drm_mode.h define them; the layouts are ABI).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

struct mode_card_res {
    uint64_t fb_id_ptr, crtc_id_ptr, connector_id_ptr, encoder_id_ptr;
    uint32_t count_fbs, count_crtcs, count_connectors, count_encoders;
    uint32_t min_width, max_width, min_height, max_height;
};

struct mode_create_dumb {
    uint32_t height, width, bpp, flags, handle, pitch;
    uint64_t size;
};

struct mode_map_dumb {
    uint32_t handle, pad;
    uint64_t offset;
};

struct mode_cursor2 {
    uint32_t flags, crtc_id;
    int32_t x, y;
    uint32_t width, height, handle;
    int32_t hot_x, hot_y;
};

#define DRM_IOCTL_BASE 'd'
#define IOCTL_MODE_GETRESOURCES _IOWR(DRM_IOCTL_BASE, 0xA0, struct mode_card_res)
#define IOCTL_MODE_CREATE_DUMB _IOWR(DRM_IOCTL_BASE, 0xB2, struct mode_create_dumb)
#define IOCTL_MODE_MAP_DUMB _IOWR(DRM_IOCTL_BASE, 0xB3, struct mode_map_dumb)
#define IOCTL_MODE_CURSOR2 _IOWR(DRM_IOCTL_BASE, 0xBB, struct mode_cursor2)
#define MODE_CURSOR_BO 0x01
#define MODE_CURSOR_MOVE 0x02

#define SIZE 64
#define BOX_W 24
#define BOX_H 16
#define HOT_X 5
#define HOT_Y 7

static int fail(const char *what)
{
    printf("DESKVM-CURSOR: error=%s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    int x = argc > 2 ? atoi(argv[1]) : 100, y = argc > 2 ? atoi(argv[2]) : 200;
    int fd = -1;
    for (int i = 0; i < 50 && fd < 0; i++) { /* the driver may still be setting the device up */
        fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
        if (fd < 0)
            usleep(200000);
    }
    if (fd < 0)
        return fail("open /dev/dri/card0");

    struct mode_card_res res = {0};
    if (ioctl(fd, IOCTL_MODE_GETRESOURCES, &res) < 0)
        return fail("GETRESOURCES");
    if (!res.count_crtcs) {
        errno = ENODEV;
        return fail("no CRTC");
    }
    uint32_t crtcs[16];
    uint32_t n = res.count_crtcs < 16 ? res.count_crtcs : 16;
    struct mode_card_res ids = {.crtc_id_ptr = (uintptr_t)crtcs, .count_crtcs = n};
    if (ioctl(fd, IOCTL_MODE_GETRESOURCES, &ids) < 0)
        return fail("GETRESOURCES ids");

    struct mode_create_dumb dumb = {.height = SIZE, .width = SIZE, .bpp = 32};
    if (ioctl(fd, IOCTL_MODE_CREATE_DUMB, &dumb) < 0)
        return fail("CREATE_DUMB");
    struct mode_map_dumb map = {.handle = dumb.handle};
    if (ioctl(fd, IOCTL_MODE_MAP_DUMB, &map) < 0)
        return fail("MAP_DUMB");
    uint8_t *p = mmap(NULL, dumb.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map.offset);
    if (p == MAP_FAILED)
        return fail("mmap");
    for (int row = 0; row < SIZE; row++) {
        uint32_t *line = (uint32_t *)(p + (size_t)row * dumb.pitch);
        for (int col = 0; col < SIZE; col++)
            line[col] = col < BOX_W && row < BOX_H
                            ? 0xff000000u | (uint32_t)(4 * col) << 16 | (uint32_t)(4 * row) << 8 | 0x80u
                            : 0;
    }

    struct mode_cursor2 cur = {
        .flags = MODE_CURSOR_BO,
        .crtc_id = crtcs[0],
        .width = SIZE,
        .height = SIZE,
        .handle = dumb.handle,
        .hot_x = HOT_X,
        .hot_y = HOT_Y,
    };
    if (ioctl(fd, IOCTL_MODE_CURSOR2, &cur) < 0)
        return fail("CURSOR2 set");
    /* DRM places the image's top-left corner; the hotspot is only information for virtual hardware. */
    struct mode_cursor2 move = {
        .flags = MODE_CURSOR_MOVE, .crtc_id = crtcs[0], .x = x - HOT_X, .y = y - HOT_Y};
    if (ioctl(fd, IOCTL_MODE_CURSOR2, &move) < 0)
        return fail("CURSOR2 move");
    printf("DESKVM-CURSOR: set crtc=%u at %d,%d\n", crtcs[0], x, y);
    fflush(stdout);
    for (;;)
        pause();
}
