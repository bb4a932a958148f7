/* The common vCPU thread: run, dispatch I/O, park on pause, report guest-driven events. */
#include "vcpu.h"

#include <errno.h>
#include <string.h>

#include "guest_memory.h"
#include "log.h"
#include "machine.h"

void vcpu_dispatch_io(struct vcpu *v, bool is_pio, uint64_t addr, unsigned size, bool is_write, uint8_t *data)
{
    struct machine *m = v->accel->machine;
    struct io_bus *bus = is_pio ? &m->pio : &m->mmio;
    if (size == 0 || size > 8)
        return;
    machine_lock(m);
    if (is_write) {
        uint8_t buf[8] = {0};
        memcpy(buf, data, size);
        io_bus_write(bus, addr, size, le64_load(buf));
    } else {
        uint64_t value;
        io_bus_read(bus, addr, size, &value);
        uint8_t buf[8];
        le64_store(buf, value);
        memcpy(data, buf, size);
    }
    machine_unlock(m);
}

/* Parks the calling vCPU while the VM is paused. Returns false when the vCPU must exit. */
static bool vcpu_wait_runnable(struct vcpu *v)
{
    struct accel *a = v->accel;
    g_mutex_lock(&a->lock);
    while (!a->quit && (!a->run_requested || v->hold)) {
        if (!v->paused) {
            v->paused = true;
            g_cond_broadcast(&a->cond);
        }
        g_cond_wait(&a->cond, &a->lock);
    }
    v->paused = false;
    bool go = !a->quit;
    g_mutex_unlock(&a->lock);
    return go;
}

static void vcpu_report(struct vcpu *v, enum vcpu_exit_reason reason)
{
    struct accel *a = v->accel;
    /* Stop this vCPU first: the handler (on the main loop, later) decides about the others. */
    g_mutex_lock(&a->lock);
    a->run_requested = false;
    g_mutex_unlock(&a->lock);
    for (unsigned i = 0; i < a->ncpus; i++)
        if (&a->vcpus[i] != v)
            a->ops->vcpu_kick(&a->vcpus[i]);
    if (a->on_exit)
        a->on_exit(a->on_exit_opaque, v, reason);
}

static gpointer vcpu_thread(gpointer data)
{
    struct vcpu *v = data;
    machine_set_current_cpu(v->index);
    while (vcpu_wait_runnable(v)) {
        enum vcpu_exit_reason r = v->accel->ops->vcpu_run(v);
        v->exits++;
        switch (r) {
        case VCPU_EXIT_KICKED:
        case VCPU_EXIT_HALT:
            break;
        case VCPU_EXIT_TRIPLE_FAULT:
        case VCPU_EXIT_GUEST_RESET:
        case VCPU_EXIT_GUEST_POWEROFF:
        case VCPU_EXIT_ERROR:
            vcpu_report(v, r);
            break;
        case VCPU_EXIT_DEBUG:
            g_mutex_lock(&v->accel->lock);
            v->debug_exit = true;
            g_mutex_unlock(&v->accel->lock);
            vcpu_report(v, r);
            break;
        }
    }
    g_mutex_lock(&v->accel->lock);
    v->exited = true;
    v->paused = true;
    g_cond_broadcast(&v->accel->cond);
    g_mutex_unlock(&v->accel->lock);
    return NULL;
}

int accel_init(struct accel *a, const struct accel_ops *ops, struct machine *m, unsigned ncpus, char **error)
{
    memset(a, 0, sizeof(*a));
    a->ops = ops;
    a->machine = m;
    a->ncpus = ncpus;
    g_mutex_init(&a->lock);
    g_cond_init(&a->cond);
    char *why = NULL;
    if (ops->available && !ops->available(&why)) {
        *error = g_strdup_printf("%s: %s", ops->name, why);
        g_free(why);
        return -ENODEV;
    }
    int r = ops->init(a, error);
    if (r < 0)
        return r;
    a->vcpus = g_new0(struct vcpu, ncpus);
    for (unsigned i = 0; i < ncpus; i++) {
        struct vcpu *v = &a->vcpus[i];
        v->accel = a;
        v->index = i;
        r = ops->vcpu_init(v, error);
        if (r < 0) {
            for (unsigned j = 0; j <= i; j++)
                ops->vcpu_destroy(&a->vcpus[j]);
            g_free(a->vcpus);
            a->vcpus = NULL;
            ops->destroy(a);
            return r;
        }
    }
    return 0;
}

void accel_set_exit_handler(struct accel *a, void (*fn)(void *opaque, struct vcpu *v, enum vcpu_exit_reason r),
                            void *opaque)
{
    a->on_exit = fn;
    a->on_exit_opaque = opaque;
}

void accel_resume(struct accel *a)
{
    g_mutex_lock(&a->lock);
    a->run_requested = true;
    g_cond_broadcast(&a->cond);
    bool start = !a->started;
    a->started = true;
    g_mutex_unlock(&a->lock);
    if (start) {
        for (unsigned i = 0; i < a->ncpus; i++) {
            char name[32];
            g_snprintf(name, sizeof(name), "vcpu%u", i);
            a->vcpus[i].thread = g_thread_new(name, vcpu_thread, &a->vcpus[i]);
        }
    }
}

void accel_pause(struct accel *a)
{
    g_mutex_lock(&a->lock);
    a->run_requested = false;
    g_mutex_unlock(&a->lock);
    if (!a->started)
        return;
    for (unsigned i = 0; i < a->ncpus; i++)
        a->ops->vcpu_kick(&a->vcpus[i]);
    g_mutex_lock(&a->lock);
    for (;;) {
        bool all = true;
        for (unsigned i = 0; i < a->ncpus; i++)
            all = all && a->vcpus[i].paused;
        if (all || a->run_requested)
            break;
        gint64 until = g_get_monotonic_time() + 100 * 1000;
        if (!g_cond_wait_until(&a->cond, &a->lock, until)) {
            /* A kick can race with a vCPU entering guest code; kick again. */
            g_mutex_unlock(&a->lock);
            for (unsigned i = 0; i < a->ncpus; i++)
                if (!a->vcpus[i].paused)
                    a->ops->vcpu_kick(&a->vcpus[i]);
            g_mutex_lock(&a->lock);
        }
    }
    g_mutex_unlock(&a->lock);
}

void accel_stop_async(struct accel *a)
{
    g_mutex_lock(&a->lock);
    a->run_requested = false;
    bool started = a->started;
    g_mutex_unlock(&a->lock);
    if (started)
        for (unsigned i = 0; i < a->ncpus; i++)
            a->ops->vcpu_kick(&a->vcpus[i]);
}

void accel_set_vcpu_hold(struct accel *a, struct vcpu *v, bool hold)
{
    g_mutex_lock(&a->lock);
    v->hold = hold;
    g_cond_broadcast(&a->cond);
    g_mutex_unlock(&a->lock);
}

bool accel_take_debug_exit(struct accel *a, struct vcpu *v)
{
    g_mutex_lock(&a->lock);
    bool was = v->debug_exit;
    v->debug_exit = false;
    g_mutex_unlock(&a->lock);
    return was;
}

int accel_reset(struct accel *a)
{
    for (unsigned i = 0; i < a->ncpus; i++) {
        int r = a->ops->vcpu_reset(&a->vcpus[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

void accel_destroy(struct accel *a)
{
    if (!a->ops)
        return;
    g_mutex_lock(&a->lock);
    a->quit = true;
    g_cond_broadcast(&a->cond);
    g_mutex_unlock(&a->lock);
    if (a->vcpus) {
        for (unsigned i = 0; i < a->ncpus; i++)
            if (a->vcpus[i].thread)
                a->ops->vcpu_kick(&a->vcpus[i]);
        for (unsigned i = 0; i < a->ncpus; i++)
            if (a->vcpus[i].thread)
                g_thread_join(a->vcpus[i].thread);
        for (unsigned i = 0; i < a->ncpus; i++)
            a->ops->vcpu_destroy(&a->vcpus[i]);
        g_free(a->vcpus);
    }
    a->ops->destroy(a);
    g_cond_clear(&a->cond);
    g_mutex_clear(&a->lock);
    memset(a, 0, sizeof(*a));
}
