// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * guest-sysinfo: prints what a deskvm test needs to know about the machine it runs on, one
 * "DESKVM-SYSINFO: key=value" line per fact:
 *
 *   kernel_release=6.1.0-56-amd64          uname -r
 *   machine=x86_64                         uname -m
 *   cpus_online=2                          online CPUs
 *   mem_total_kb=1012345                   MemTotal from /proc/meminfo
 *   pci=0000:00:02.0 1234:1111 030000      one line per PCI device: address vendor:device class
 *   pci_count=5
 *   module=virtio_blk                      one line per loaded module (/proc/modules)
 *   module_count=12
 *   done=ok                                last line; "done=error" if something could not be read
 *
 * A fact that cannot be read is reported as "error=WHAT: REASON" and the exit status is 1; a missing
 * /sys/bus/pci or /proc/modules (no PCI bus, no module support) is not an error, just a count of 0.
 * Built statically into the test guest's /usr/bin; it runs on the host too.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define PREFIX "DESKVM-SYSINFO: "

static int failed;

static void report_error(const char *what, int err)
{
    printf(PREFIX "error=%s: %s\n", what, strerror(err));
    failed = 1;
}

/* Reads the first line of PATH into BUF (without the newline). Returns 0, or an errno value. */
static int read_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return errno;
    int err = 0;
    if (!fgets(buf, (int)size, f))
        err = ferror(f) ? EIO : ENODATA;
    fclose(f);
    if (err)
        return err;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

static void print_uname(void)
{
    struct utsname u;
    if (uname(&u) != 0) {
        report_error("uname", errno);
        return;
    }
    printf(PREFIX "kernel_release=%s\n", u.release);
    printf(PREFIX "machine=%s\n", u.machine);
}

static void print_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) {
        report_error("cpus_online", errno ? errno : EINVAL);
        return;
    }
    printf(PREFIX "cpus_online=%ld\n", n);
}

static void print_memtotal(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f) {
        report_error("/proc/meminfo", errno);
        return;
    }
    char line[256];
    unsigned long long kb = 0;
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
            found = 1;
            break;
        }
    }
    fclose(f);
    if (!found) {
        report_error("/proc/meminfo: MemTotal", ENODATA);
        return;
    }
    printf(PREFIX "mem_total_kb=%llu\n", kb);
}

/* Copies a sysfs hex attribute ("0x8086") into OUT without the 0x; "?" if unreadable. */
static void read_hex_attr(const char *dev, const char *attr, char *out, size_t size)
{
    char path[512], buf[64];
    int n = snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/%s", dev, attr);
    if (n < 0 || (size_t)n >= sizeof path || read_line(path, buf, sizeof buf) != 0) {
        snprintf(out, size, "?");
        return;
    }
    const char *p = buf;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        p += 2;
    snprintf(out, size, "%s", p);
}

static int not_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static void print_pci(void)
{
    struct dirent **list;
    int n = scandir("/sys/bus/pci/devices", &list, not_dot, alphasort);
    if (n < 0) {
        if (errno != ENOENT)
            report_error("/sys/bus/pci/devices", errno);
        printf(PREFIX "pci_count=0\n");
        return;
    }
    for (int i = 0; i < n; i++) {
        char vendor[64], device[64], class[64];
        read_hex_attr(list[i]->d_name, "vendor", vendor, sizeof vendor);
        read_hex_attr(list[i]->d_name, "device", device, sizeof device);
        read_hex_attr(list[i]->d_name, "class", class, sizeof class);
        printf(PREFIX "pci=%s %s:%s %s\n", list[i]->d_name, vendor, device, class);
        free(list[i]);
    }
    free(list);
    printf(PREFIX "pci_count=%d\n", n);
}

static void print_modules(void)
{
    FILE *f = fopen("/proc/modules", "re");
    if (!f) {
        if (errno != ENOENT)
            report_error("/proc/modules", errno);
        printf(PREFIX "module_count=0\n");
        return;
    }
    char line[4096];
    int count = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, " \n");
        if (len == 0)
            continue;
        printf(PREFIX "module=%.*s\n", (int)len, line);
        count++;
        /* A line longer than the buffer: skip its rest. */
        while (!strchr(line, '\n') && fgets(line, sizeof line, f))
            ;
    }
    if (ferror(f))
        report_error("/proc/modules", EIO);
    fclose(f);
    printf(PREFIX "module_count=%d\n", count);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: %s\nPrints DESKVM-SYSINFO: key=value lines about this machine.\n", argv[0]);
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    print_uname();
    print_cpus();
    print_memtotal();
    print_pci();
    print_modules();
    printf(PREFIX "done=%s\n", failed ? "error" : "ok");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "guest-sysinfo: writing output failed: %s\n", strerror(errno));
        return 1;
    }
    return failed ? 1 : 0;
}
