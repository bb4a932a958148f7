/* deskvm entry point: options, logging, daemonizing, the VM object, QMP, the serial backend and the main loop. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib.h>

#include "chardev.h"
#include "config.h"
#include "gdbstub.h"
#include "log.h"
#include "options.h"
#include "qmp_display.h"
#include "qmp_input.h"
#include "qmp_server.h"
#include "qmp_spice.h"
#include "qmp_vm.h"
#include "qmp_vnc.h"
#include "spice_frontend.h"
#include "vm.h"
#include "vm_machine.h"
#include "vnc.h"

struct deskvm {
    struct options opts;
    GMainLoop *loop;
    struct vm *vm;
    struct qmp_dispatcher *dispatcher;
    struct qmp_server *qmp;
    struct qmp_vm *qmp_vm;
    struct qmp_input *qmp_input;
    struct qmp_display *qmp_display;
    struct qmp_vnc *qmp_vnc;
    struct qmp_spice *qmp_spice;
    struct vnc *vnc;
    struct spice *spice;
    struct chardev *serial;
    struct vm_machine *machine;
    struct gdbstub *gdb;
    int pidfile_fd;
    int daemon_pipe; /* write end: tells the waiting parent how setup went */
};

static void on_vm_exit(void *opaque)
{
    struct deskvm *d = opaque;
    g_main_loop_quit(d->loop);
}

static gboolean on_signal(gpointer opaque)
{
    struct deskvm *d = opaque;
    log_info("received a termination signal; shutting down");
    vm_shutdown(d->vm, VM_CAUSE_HOST_SIGNAL);
    return G_SOURCE_CONTINUE;
}

/* Takes an exclusive OFD lock on the pid file so two deskvm processes never share one, then writes our pid. */
static int pidfile_create(const char *path, char **error)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        *error = g_strdup_printf("--pidfile %s: %s", path, g_strerror(errno));
        return -1;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        char other[32] = "";
        ssize_t n = pread(fd, other, sizeof(other) - 1, 0);
        if (n > 0)
            other[n] = 0;
        g_strchomp(other);
        *error = g_strdup_printf("--pidfile %s: locked by another running deskvm (pid %s)", path,
                                 *other ? other : "unknown");
        close(fd);
        return -1;
    }
    char buf[32];
    int len = g_snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
        *error = g_strdup_printf("--pidfile %s: %s", path, g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Forks; the parent waits until the child reports that setup finished and exits with the child's status. */
static int daemonize_start(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        fprintf(stderr, "deskvm: --daemonize: pipe: %s\n", g_strerror(errno));
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "deskvm: --daemonize: fork: %s\n", g_strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        close(p[1]);
        unsigned char status = 1;
        ssize_t n;
        do
            n = read(p[0], &status, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 ? status : 1);
    }
    close(p[0]);
    if (setsid() < 0) {
        fprintf(stderr, "deskvm: --daemonize: setsid: %s\n", g_strerror(errno));
        exit(1);
    }
    return p[1];
}

static void daemonize_finish(struct deskvm *d, unsigned char status)
{
    if (d->daemon_pipe < 0)
        return;
    if (status == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            if (null > STDERR_FILENO)
                close(null);
        }
        if (chdir("/") < 0)
            log_warn("--daemonize: chdir /: %s", g_strerror(errno));
    }
    ssize_t n;
    do
        n = write(d->daemon_pipe, &status, 1);
    while (n < 0 && errno == EINTR);
    close(d->daemon_pipe);
    d->daemon_pipe = -1;
}

static int fail_setup(struct deskvm *d, const char *msg)
{
    log_error("%s", msg);
    /* Also on stderr when logging goes to a file, so a user starting deskvm sees why it stopped. */
    if (d->opts.log_file)
        fprintf(stderr, "deskvm: %s\n", msg);
    daemonize_finish(d, 1);
    return 1;
}

/* A --serial-port of the agent's name keeps its unix socket: the user wants the raw stream, not spice-server. */
static bool spice_agent_port_taken(const struct options *o)
{
    for (guint i = 0; i < o->serial_ports->len; i++)
        if (!strcmp(g_array_index(o->serial_ports, struct serial_port_spec, i).name, SPICE_AGENT_PORT_NAME))
            return true;
    return false;
}

static void report_vm(struct deskvm *d)
{
    const struct options *o = &d->opts;
    log_info("vm '%s': %llu MiB, %u vCPU(s), accel %s", o->name ? o->name : "(unnamed)",
             (unsigned long long)(o->memory >> 20), o->cpus,
             d->machine ? vm_machine_accel_name(d->machine) : options_accel_name(o->accel));
    if (!d->machine)
        log_warn("no --kernel, --firmware or --accel qtest: nothing to boot, so no machine is built; the VM object only tracks its "
                 "run state for QMP");
}

static int run(struct deskvm *d)
{
    char *err = NULL;
    const struct options *o = &d->opts;

    if (o->accel == ACCEL_KVM) {
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            g_autofree char *msg = g_strdup_printf("--accel kvm: /dev/kvm: %s", g_strerror(errno));
            return fail_setup(d, msg);
        }
        close(fd);
    }

    if (o->pidfile) {
        d->pidfile_fd = pidfile_create(o->pidfile, &err);
        if (d->pidfile_fd < 0) {
            int rc = fail_setup(d, err);
            g_free(err);
            return rc;
        }
    }

    d->vm = vm_new(o->name, o->paused);
    vm_set_exit_handler(d->vm, on_vm_exit, d);
    d->dispatcher = qmp_dispatcher_new();
    d->qmp = qmp_server_new(d->dispatcher);
    d->qmp_vm = qmp_vm_attach(d->vm, d->dispatcher, d->qmp);

    for (guint i = 0; i < o->qmp->len; i++) {
        struct listen_spec *spec = &g_array_index(o->qmp, struct listen_spec, i);
        if (!qmp_server_listen(d->qmp, spec, &err)) {
            g_autofree char *msg = g_strdup_printf("--qmp: %s", err);
            g_free(err);
            return fail_setup(d, msg);
        }
    }

    d->serial = chardev_open(&o->serial, &err);
    if (!d->serial) {
        g_autofree char *msg = g_strdup_printf("--serial: %s", err);
        g_free(err);
        return fail_setup(d, msg);
    }

    if (o->kernel || o->firmware || o->accel == ACCEL_QTEST) {
        d->machine = vm_machine_create(o, d->vm, d->serial, &err);
        if (!d->machine) {
            int rc = fail_setup(d, err);
            g_free(err);
            return rc;
        }
    }
    if (o->gdb.path || o->gdb.host) {
        d->gdb = gdbstub_start(d->vm, d->machine, &d->opts.gdb, &err);
        if (!d->gdb) {
            g_autofree char *msg = g_strdup_printf("--gdb: %s", err);
            g_free(err);
            return fail_setup(d, msg);
        }
    }
    d->qmp_input = qmp_input_attach(d->dispatcher, d->machine ? vm_machine_input(d->machine) : NULL);
    d->qmp_display = qmp_display_attach(d->dispatcher, vm_machine_get(d->machine));
    if (o->vnc.kind != VNC_OFF) {
        d->vnc = vnc_start(&o->vnc, vm_machine_get(d->machine), d->machine ? vm_machine_input(d->machine) : NULL,
                           o->keymap, o->name, &err);
        if (!d->vnc) {
            g_autofree char *msg = g_strdup_printf("--vnc: %s", err);
            g_free(err);
            return fail_setup(d, msg);
        }
    }
    if (o->spice.enabled) {
        struct spice_deps deps = {
            .m = vm_machine_get(d->machine),
            .in = d->machine ? vm_machine_input(d->machine) : NULL,
            .vm = d->vm,
            .agent_port =
                spice_agent_port_taken(o) ? NULL : vm_machine_serial_port(d->machine, SPICE_AGENT_PORT_NAME),
            .name = o->name,
        };
        d->spice = spice_start(&o->spice, &deps, &err);
        if (!d->spice) {
            g_autofree char *msg = g_strdup_printf("--spice: %s", err);
            g_free(err);
            return fail_setup(d, msg);
        }
    }
    d->qmp_vnc = qmp_vnc_attach(d->dispatcher, d->vnc, d->spice);
    d->qmp_spice = qmp_spice_attach(d->dispatcher, d->qmp, d->spice);
    report_vm(d);
    g_unix_signal_add(SIGTERM, on_signal, d);
    g_unix_signal_add(SIGINT, on_signal, d);
    g_unix_signal_add(SIGHUP, on_signal, d);

    log_info("deskvm %s ready (state %s)", PACKAGE_VERSION, vm_runstate_name(vm_get_state(d->vm)));
    daemonize_finish(d, 0);
    g_main_loop_run(d->loop);

    /* Orderly exit: deliver the SHUTDOWN event and pending replies, then the serial output. */
    qmp_server_flush(d->qmp, 1000);
    chardev_flush(d->serial, 1000);
    log_info("deskvm exiting");
    return 0;
}

static void cleanup(struct deskvm *d)
{
    gdbstub_free(d->gdb);
    /* Before the machine: the VNC thread reads the display's pixels. */
    vnc_stop(d->vnc);
    spice_stop(d->spice);
    vm_machine_destroy(d->machine);
    chardev_close(d->serial);
    qmp_vm_detach(d->qmp_vm);
    qmp_input_detach(d->qmp_input);
    qmp_display_detach(d->qmp_display);
    qmp_vnc_detach(d->qmp_vnc);
    qmp_spice_detach(d->qmp_spice);
    qmp_server_free(d->qmp);
    qmp_dispatcher_free(d->dispatcher);
    vm_free(d->vm);
    if (d->pidfile_fd >= 0) {
        unlink(d->opts.pidfile);
        close(d->pidfile_fd);
    }
    if (d->loop)
        g_main_loop_unref(d->loop);
    options_clear(&d->opts);
    log_close();
}

int main(int argc, char **argv)
{
    struct deskvm d = {.pidfile_fd = -1, .daemon_pipe = -1};
    char *err = NULL;

    int rc = options_parse(&d.opts, argc, argv, &err);
    if (rc) {
        fprintf(stderr, "deskvm: %s\n", err);
        g_free(err);
        options_clear(&d.opts);
        return rc;
    }
    if (d.opts.help) {
        options_print_help(stdout);
        options_clear(&d.opts);
        return 0;
    }
    if (d.opts.version) {
        printf("deskvm %s\n", PACKAGE_VERSION);
        options_clear(&d.opts);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    log_set_level(d.opts.log_level);
    if (d.opts.log_file) {
        int r = log_open_file(d.opts.log_file);
        if (r < 0) {
            fprintf(stderr, "deskvm: --log-file: %s: %s\n", d.opts.log_file, g_strerror(-r));
            options_clear(&d.opts);
            return 1;
        }
    }
    if (d.opts.daemonize)
        d.daemon_pipe = daemonize_start();

    d.loop = g_main_loop_new(NULL, FALSE);
    rc = run(&d);
    cleanup(&d);
    return rc;
}
