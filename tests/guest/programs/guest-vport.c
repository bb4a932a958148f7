/* guest-vport NAME LIMIT [WAIT_SECONDS]: echoes a virtio-serial port back to the host, for deskvm's
 * virtio-serial tests.
 *
 * The port is found by name in /sys/class/virtio-ports/vportNpM/name (waiting up to WAIT_SECONDS, default 60,
 * for the driver to name it) and opened as /dev/vportNpM, so no /dev/virtio-ports symlinks are needed. Every
 * byte read is written back. Reading returns 0 while the host end is not connected: before any data came that
 * just means "wait"; after data it means the host closed its end.
 *
 * Sessions: with LIMIT > 0 the first session ends by the guest closing the port after echoing exactly LIMIT
 * bytes
 * ("DESKVM-VPORT: guest-closed 1 BYTES"), then the port is opened again for a second session without a limit.
 * A session without a limit ends when the host closes its end ("DESKVM-VPORT: host-closed N BYTES") and the
 * program exits 0. Markers go to stdout, one per line: "DESKVM-VPORT: open NAME DEV" per session, and "error
 * ..." (exit 1) on failures. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guest_vport.h"

static void marker(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void marker(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("DESKVM-VPORT: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: guest-vport NAME LIMIT [WAIT_SECONDS]\n");
        return 2;
    }
    const char *name = argv[1];
    long limit = atol(argv[2]);
    long wait_s = argc > 3 ? atol(argv[3]) : 60;
    char dev[300] = "";
    for (long i = 0; !find_port(name, dev, sizeof(dev)); i++) {
        if (i >= wait_s * 10) {
            marker("error no port named %s", name);
            return 1;
        }
        sleep_ms(100);
    }
    for (int session = 1;; session++) {
        int fd = -1;
        for (int tries = 0; fd < 0; tries++) {
            fd = open(dev, O_RDWR);
            /* The previous session's close may still be finishing in the driver (EBUSY). */
            if (fd < 0 && (errno != EBUSY || tries > 100)) {
                marker("error open %s: %s", dev, strerror(errno));
                return 1;
            }
            if (fd < 0)
                sleep_ms(20);
        }
        marker("open %s %s", name, dev);
        long total = 0;
        long session_limit = session == 1 ? limit : 0;
        static char buf[65536];
        for (;;) {
            size_t want = sizeof(buf);
            if (session_limit > 0 && (long)want > session_limit - total)
                want = (size_t)(session_limit - total);
            ssize_t n = read(fd, buf, want);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                marker("error read: %s", strerror(errno));
                return 1;
            }
            if (n == 0) {
                if (!total) { /* the host is not connected yet */
                    sleep_ms(20);
                    continue;
                }
                close(fd);
                marker("host-closed %d %ld", session, total);
                return 0;
            }
            if (write_all(fd, buf, (size_t)n) < 0) {
                marker("error write: %s", strerror(errno));
                return 1;
            }
            total += n;
            if (session_limit > 0 && total == session_limit) {
                /* What was written is already queued to the device; closing does not take it back. */
                close(fd);
                marker("guest-closed %d %ld", session, total);
                break;
            }
        }
    }
}
