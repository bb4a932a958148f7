// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * guest-evdev SECONDS COUNT: opens every /dev/input/event* device whose name starts with "deskvm" (waiting up
 * to 10 s for them to appear), prints
 *
 *   DESKVM-EVDEV: open eventN NAME
 *   DESKVM-EVDEV: ready N
 *
 * then one line per event read, "DESKVM-EVDEV: event eventN TYPE CODE VALUE" (decimal, SYN_REPORT included),
 * until COUNT events other than EV_SYN have arrived ("DESKVM-EVDEV: done", exit 0) or SECONDS pass
 * ("DESKVM-EVDEV: timeout", exit 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEVS 32

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: guest-evdev SECONDS COUNT\n");
        return 2;
    }
    double deadline = now() + atof(argv[1]);
    long want = atol(argv[2]);
    struct pollfd fds[MAX_DEVS];
    int nums[MAX_DEVS];
    int n = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* virtio_input binds while modprobe runs, but the nodes may trail it a little. */
    double open_deadline = now() + 10;
    while (n < 2 && now() < open_deadline) {
        n = 0;
        for (int i = 0; i < MAX_DEVS && n < MAX_DEVS; i++) {
            char path[64], name[256] = "";
            snprintf(path, sizeof(path), "/dev/input/event%d", i);
            int fd = open(path, O_RDONLY | O_NONBLOCK);
            if (fd < 0)
                continue;
            if (ioctl(fd, EVIOCGNAME(sizeof(name) - 1), name) < 0 || strncmp(name, "deskvm", 6)) {
                close(fd);
                continue;
            }
            fds[n] = (struct pollfd){.fd = fd, .events = POLLIN};
            nums[n++] = i;
        }
        if (n < 2) {
            for (int i = 0; i < n; i++)
                close(fds[i].fd);
            usleep(100000);
        }
    }
    for (int i = 0; i < n; i++) {
        char name[256] = "";
        ioctl(fds[i].fd, EVIOCGNAME(sizeof(name) - 1), name);
        printf("DESKVM-EVDEV: open event%d %s\n", nums[i], name);
    }
    printf("DESKVM-EVDEV: ready %d\n", n);

    long got = 0;
    while (got < want) {
        double left = deadline - now();
        if (left <= 0) {
            printf("DESKVM-EVDEV: timeout\n");
            return 1;
        }
        int r = poll(fds, (nfds_t)n, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) {
            printf("DESKVM-EVDEV: error=poll: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (!(fds[i].revents & POLLIN))
                continue;
            struct input_event ev[64];
            ssize_t len = read(fds[i].fd, ev, sizeof(ev));
            for (ssize_t k = 0; len > 0 && k < len / (ssize_t)sizeof(ev[0]); k++) {
                printf("DESKVM-EVDEV: event event%d %u %u %d\n", nums[i], ev[k].type, ev[k].code, ev[k].value);
                if (ev[k].type != EV_SYN)
                    got++;
            }
        }
    }
    printf("DESKVM-EVDEV: done\n");
    return 0;
}
