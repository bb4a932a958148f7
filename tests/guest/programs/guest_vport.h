/* For the guest programs that use virtio-serial ports: the busybox guest has no udev, so there are no
 * /dev/virtio-ports/NAME links; a port is found by the name sysfs gives each /dev/vportNpM. */
#ifndef GUEST_VPORT_H
#define GUEST_VPORT_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>

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

#endif
