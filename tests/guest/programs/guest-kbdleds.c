// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * guest-kbdleds LEDS SECONDS: sets the keyboard LEDs of the "deskvm Virtio Keyboard" evdev device (as a desktop
 * does when Caps Lock is toggled): LEDS is a list of caps, num, scroll (comma-separated, or "none"); every LED
 * not listed is switched off. Prints "DESKVM-KBDLEDS: set LEDS" once written, then waits SECONDS (so the host can
 * look) and exits 0; "DESKVM-KBDLEDS: error ..." and exit 1 on failure.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int find_keyboard(void)
{
    for (int i = 0; i < 32; i++) {
        char path[64], name[256] = "";
        snprintf(path, sizeof(path), "/dev/input/event%d", i);
        int fd = open(path, O_RDWR);
        if (fd < 0)
            continue;
        if (ioctl(fd, EVIOCGNAME(sizeof(name) - 1), name) >= 0 && !strcmp(name, "deskvm Virtio Keyboard"))
            return fd;
        close(fd);
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: guest-kbdleds caps,num,scroll|none SECONDS\n");
        return 2;
    }
    int caps = strstr(argv[1], "caps") != NULL, num = strstr(argv[1], "num") != NULL;
    int scroll = strstr(argv[1], "scroll") != NULL;
    int fd = -1;
    for (int tries = 0; tries < 100 && (fd = find_keyboard()) < 0; tries++)
        usleep(100000);
    if (fd < 0) {
        printf("DESKVM-KBDLEDS: error no deskvm Virtio Keyboard\n");
        return 1;
    }
    struct input_event ev[4];
    memset(ev, 0, sizeof(ev));
    ev[0].type = ev[1].type = ev[2].type = EV_LED;
    ev[0].code = LED_CAPSL;
    ev[0].value = caps;
    ev[1].code = LED_NUML;
    ev[1].value = num;
    ev[2].code = LED_SCROLLL;
    ev[2].value = scroll;
    ev[3].type = EV_SYN;
    ev[3].code = SYN_REPORT;
    if (write(fd, ev, sizeof(ev)) != (ssize_t)sizeof(ev)) {
        printf("DESKVM-KBDLEDS: error write\n");
        return 1;
    }
    printf("DESKVM-KBDLEDS: set %s\n", argv[1]);
    fflush(stdout);
    struct timespec ts = {atoi(argv[2]), 0};
    nanosleep(&ts, NULL);
    close(fd);
    return 0;
}
