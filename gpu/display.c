/* The display interface: device-side state under the machine lock, hand-over to listeners on the main loop.
 */
#include "display.h"

#include <string.h>

#include "machine.h"

void display_init(struct display *d, struct machine *m, const char *name, const char *model, unsigned head,
                  const struct display_ops *ops, void *opaque)
{
    memset(d, 0, sizeof(*d));
    d->name = name;
    d->model = model;
    d->head = head;
    d->ops = ops;
    d->opaque = opaque;
    d->m = m;
    d->surface_gen = 1; /* listeners start at 0: the first refresh hands them the surface (or its absence) */
    d->cursor_gen = 1;
    pixman_region32_init(&d->damage);
    d->listeners = g_ptr_array_new_with_free_func(g_free);
}

void display_register(struct display *d)
{
    struct display **p = &d->m->displays;
    while (*p)
        p = &(*p)->next;
    *p = d;
    d->next = NULL;
}

static gboolean on_wake(gpointer data)
{
    struct display *d = data;
    machine_lock(d->m);
    if (d->wake) {
        g_source_unref(d->wake);
        d->wake = NULL;
    }
    machine_unlock(d->m);
    display_refresh(d);
    return G_SOURCE_REMOVE;
}

/* A change consumers should see soon: schedule a refresh on the main loop (machine lock held, any thread),
 * no sooner than DISPLAY_WAKE_MAX_HZ allows after the last one. */
static void wake(struct display *d)
{
    if (!d->wake_wanted || d->wake)
        return;
    gint64 due = d->last_refresh + G_USEC_PER_SEC / DISPLAY_WAKE_MAX_HZ - g_get_monotonic_time();
    GSource *src = due > 0 ? g_timeout_source_new((guint)((due + 999) / 1000)) : g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, on_wake, d, NULL);
    g_source_attach(src, NULL);
    d->wake = src; /* our reference, dropped when it runs or is cancelled */
}

static void stop_timer(struct display *d)
{
    if (d->refresh_source) {
        g_source_remove(d->refresh_source);
        d->refresh_source = 0;
    }
    machine_lock(d->m);
    d->wake_wanted = false;
    if (d->wake) {
        g_source_destroy(d->wake);
        g_source_unref(d->wake);
        d->wake = NULL;
    }
    machine_unlock(d->m);
}

void display_unregister(struct display *d)
{
    if (!d->m)
        return;
    for (struct display **p = &d->m->displays; *p; p = &(*p)->next) {
        if (*p == d) {
            *p = d->next;
            break;
        }
    }
    stop_timer(d);
    g_clear_pointer(&d->listeners, g_ptr_array_unref);
    g_clear_pointer(&d->surface, pixman_image_unref);
    g_clear_pointer(&d->cursor.image, pixman_image_unref);
    pixman_region32_fini(&d->damage);
    d->m = NULL;
}

void display_set_surface(struct display *d, pixman_image_t *surface)
{
    if (surface)
        pixman_image_ref(surface);
    if (d->surface)
        pixman_image_unref(d->surface);
    d->surface = surface;
    d->surface_gen++;
    pixman_region32_clear(&d->damage);
    wake(d);
}

void display_add_damage(struct display *d, int x, int y, int width, int height)
{
    if (!d->surface || width <= 0 || height <= 0)
        return;
    int sw = pixman_image_get_width(d->surface), sh = pixman_image_get_height(d->surface);
    int x1 = MAX(x, 0), y1 = MAX(y, 0);
    int x2 = (int)MIN((int64_t)x + width, (int64_t)sw), y2 = (int)MIN((int64_t)y + height, (int64_t)sh);
    if (x1 >= x2 || y1 >= y2)
        return;
    pixman_region32_union_rect(&d->damage, &d->damage, x1, y1, (unsigned)(x2 - x1), (unsigned)(y2 - y1));
    wake(d);
}

void display_set_cursor(struct display *d, pixman_image_t *image, int hot_x, int hot_y)
{
    if (image)
        pixman_image_ref(image);
    if (d->cursor.image)
        pixman_image_unref(d->cursor.image);
    d->cursor.image = image;
    d->cursor.hot_x = hot_x;
    d->cursor.hot_y = hot_y;
    d->cursor_gen++;
    wake(d);
}

void display_move_cursor(struct display *d, int x, int y, bool visible)
{
    if (d->cursor.x == x && d->cursor.y == y && d->cursor.visible == visible)
        return;
    d->cursor.x = x;
    d->cursor.y = y;
    d->cursor.visible = visible;
    d->cursor_gen++;
    wake(d);
}

struct display *display_find(struct machine *m, const char *name, unsigned head)
{
    for (struct display *d = m->displays; d; d = d->next) {
        if (!name && d->head == head)
            return d;
        if (name && d->head == head && (!strcmp(name, d->name) || !strcmp(name, d->model)))
            return d;
    }
    return NULL;
}

bool display_request_resize(struct display *d, unsigned width, unsigned height)
{
    if (!d->m || !d->ops->request_resize)
        return false;
    machine_lock(d->m);
    bool passed = d->ops->request_resize(d, width, height);
    machine_unlock(d->m);
    return passed;
}

pixman_image_t *display_get_surface(struct display *d)
{
    return d->surface ? pixman_image_ref(d->surface) : NULL;
}

static gboolean on_refresh_timer(gpointer data)
{
    display_refresh(data);
    return G_SOURCE_CONTINUE;
}

struct display_listener *display_add_listener(struct display *d, const struct display_listener_ops *ops,
                                              void *opaque)
{
    struct display_listener *l = g_new0(struct display_listener, 1);
    l->ops = ops;
    l->opaque = opaque;
    g_ptr_array_add(d->listeners, l);
    if (d->listeners->len == 1) {
        machine_lock(d->m);
        if (d->ops->set_tracking)
            d->ops->set_tracking(d, true);
        d->wake_wanted = true;
        machine_unlock(d->m);
        d->refresh_source = g_timeout_add(1000 / DISPLAY_REFRESH_HZ, on_refresh_timer, d);
    }
    return l;
}

void display_remove_listener(struct display *d, struct display_listener *l)
{
    if (!d->listeners || !g_ptr_array_remove(d->listeners, l) || d->listeners->len)
        return;
    stop_timer(d);
    machine_lock(d->m);
    if (d->ops->set_tracking)
        d->ops->set_tracking(d, false);
    machine_unlock(d->m);
}

void display_refresh(struct display *d)
{
    if (!d->m || !d->listeners || !d->listeners->len)
        return;
    pixman_region32_t damage;
    pixman_region32_init(&damage);
    struct display_cursor cursor;

    /* The hand-over: a copy of the device's state, then the lock is free again for the vCPUs. */
    machine_lock(d->m);
    if (d->ops->refresh && d->surface)
        d->ops->refresh(d);
    pixman_image_t *surface = display_get_surface(d);
    uint64_t surface_gen = d->surface_gen, cursor_gen = d->cursor_gen;
    pixman_region32_copy(&damage, &d->damage);
    pixman_region32_clear(&d->damage);
    d->last_refresh = g_get_monotonic_time();
    if (d->wake) { /* everything goes now, including what the device's refresh just reported */
        g_source_destroy(d->wake);
        g_source_unref(d->wake);
        d->wake = NULL;
    }
    cursor = d->cursor;
    if (cursor.image)
        pixman_image_ref(cursor.image);
    machine_unlock(d->m);

    /* A listener may remove itself (or others) from its callback: walk a snapshot and check membership. */
    g_autoptr(GPtrArray) snapshot = g_ptr_array_sized_new(d->listeners->len);
    for (guint i = 0; i < d->listeners->len; i++)
        g_ptr_array_add(snapshot, d->listeners->pdata[i]);
    for (guint i = 0; i < snapshot->len; i++) {
        struct display_listener *l = snapshot->pdata[i];
        guint where;
        if (!g_ptr_array_find(d->listeners, l, &where))
            continue;
        if (l->surface_gen != surface_gen) {
            l->surface_gen = surface_gen;
            l->ops->surface(l->opaque, d, surface);
        } else if (pixman_region32_not_empty(&damage)) {
            l->ops->damage(l->opaque, d, &damage);
        }
        if (!g_ptr_array_find(d->listeners, l, &where))
            continue;
        if (l->cursor_gen != cursor_gen && l->ops->cursor) {
            l->cursor_gen = cursor_gen;
            l->ops->cursor(l->opaque, d, &cursor);
        }
    }
    if (cursor.image)
        pixman_image_unref(cursor.image);
    if (surface)
        pixman_image_unref(surface);
    pixman_region32_fini(&damage);
}
