/* deskvm's options: the command line and the --config INI file share one table of keys and one validator, and
 * the command line wins over the file. */
#ifndef DESKVM_OPTIONS_H
#define DESKVM_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <glib.h>

#include "chardev.h"
#include "listen.h"
#include "log.h"
#include "serial_unix.h"
#include "virtio_blk.h"
#include "spice_spec.h"
#include "vnc_spec.h"

enum display_kind {
    DISPLAY_NONE,
    DISPLAY_BOCHS,      /* bochs-display (gpu/bochs_display.h) */
    DISPLAY_VIRTIO_GPU, /* virtio-gpu (gpu/virtio_gpu.h) */
    DISPLAY_QXL,        /* qxl-vga (gpu/qxl.h), needs --spice */
};

enum accel_kind {
    ACCEL_AUTO,
    ACCEL_KVM,
    ACCEL_EMU,
    ACCEL_QTEST, /* no CPU: a test drives the machine over --qtest */
};

#define OPTIONS_MIN_MEMORY (16ULL << 20)
#define OPTIONS_MAX_MEMORY (1ULL << 40)
#define OPTIONS_DEFAULT_MEMORY (512ULL << 20)
#define OPTIONS_MAX_CPUS 64
#define OPTIONS_MAX_NAME 128

struct options {
    char *name;
    uint64_t memory;
    unsigned cpus;
    enum accel_kind accel;
    char *kernel;
    char *initrd;
    char *append;
    char *firmware;    /* a ROM image mapped at the top of 4 GiB (QEMU's -bios) */
    bool test_device;  /* --device pci-testdev */
    bool virtio_keyboard, virtio_tablet; /* --device virtio-keyboard / virtio-tablet */
    char *keymap;      /* --keymap: validated layout, NULL for the default (us) */
    GArray *disks;     /* --disk: struct virtio_blk_conf, at most VIRTIO_BLK_MAX_DISKS */
    int trace_cpu;     /* --trace-cpu: software CPU tracing level 0-2 */
    enum display_kind display;             /* --display */
    unsigned display_width, display_height; /* --resolution: the mode display devices offer first */
    struct chardev_spec serial;
    GArray *serial_ports; /* --serial-port, --guest-agent: struct serial_port_spec, virtio-serial ports */
    GArray *qmp; /* of struct listen_spec */
    struct listen_spec qtest; /* --accel qtest: where the test connects (kind LISTEN_UNIX with a path when set) */
    struct listen_spec gdb;   /* --gdb: the debugger's socket (path or host set when given) */
    struct vnc_spec vnc;      /* --vnc (kind VNC_OFF without it) */
    struct spice_spec spice;  /* --spice (enabled false without it) */
    GHashTable *secrets;      /* --object secret: id -> value */
    char *config;
    bool daemonize;
    char *pidfile;
    enum log_level log_level;
    char *log_file;
    bool paused;
    bool help;
    bool version;
};

/* Parses argv and then the --config file (if any) into *opts. Returns 0 on success; on bad input returns 2 with
 * a one-line message in *error naming the option (or file and key) and the reason. */
int options_parse(struct options *opts, int argc, char **argv, char **error);
void options_clear(struct options *opts);
const char *options_accel_name(enum accel_kind accel);
/* The --disk list (disks->len of them), NULL when there are none. */
static inline const struct virtio_blk_conf *options_disks(const struct options *opts)
{
    return opts->disks->len ? (const struct virtio_blk_conf *)(void *)opts->disks->data : NULL;
}
void options_print_help(FILE *out);


#endif
