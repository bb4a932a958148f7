/* For the guest programs that use virtio-serial ports: the busybox guest has no udev, so there are no
 * /dev/virtio-ports/NAME links; a port is found by the name sysfs gives each /dev/vportNpM. */
#ifndef GUEST_VPORT_H
#define GUEST_VPORT_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* /dev/vportNpM of the port called name into dev; 1 if found, 0 otherwise. */
static int find_port(const char *name, char *dev, size_t devlen)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d)
        return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        if (strncmp(e->d_name, "vport", 5))
            continue;
        char path[512], buf[256];
        snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(buf, sizeof(buf), f)) {
            buf[strcspn(buf, "\n")] = 0;
            if (!strcmp(buf, name)) {
                snprintf(dev, devlen, "/dev/%s", e->d_name);
                found = 1;
            }
        }
        fclose(f);
    }
    closedir(d);
    return found;
}

/* Writes all of buf (a port's writes may be partial); 0 on success, -1 on an error or end of file. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

#endif
