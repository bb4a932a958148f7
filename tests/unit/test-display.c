/* The display interface with a fake device: listeners see the surface first, then damage accumulated between
 * refreshes (clipped, merged, dropped by a mode change), cursor changes; tracking follows the listener count;
 * lookups by id, model and head. */
#include <string.h>

#include <glib.h>

#include "device_harness.h"
#include "display.h"

struct fake_dev {
    struct display d;
    unsigned refreshes, tracking_on, tracking_off;
    int damage_on_refresh; /* add a 1x1 rectangle at (0, 0) on refresh when set */
};

static void fake_refresh(struct display *d)
{
    struct fake_dev *f = d->opaque;
    f->refreshes++;
    if (f->damage_on_refresh)
        display_add_damage(d, 0, 0, 1, 1);
}

static void fake_tracking(struct display *d, bool on)
{
    struct fake_dev *f = d->opaque;
    if (on)
        f->tracking_on++;
    else
        f->tracking_off++;
}

static const struct display_ops fake_ops = {.refresh = fake_refresh, .set_tracking = fake_tracking};

/* What one listener saw. */
struct seen {
    unsigned surfaces, damages, cursors;
    pixman_image_t *surface;  /* last, referenced */
    pixman_region32_t damage; /* union of everything received since the last surface */
    pixman_box32_t last_extents;
    int cursor_x, cursor_y, hot_x;
    bool cursor_visible;
    struct display_listener *self; /* for listeners that remove themselves */
    bool remove_on_damage;
};

static void seen_surface(void *opaque, struct display *d, pixman_image_t *s)
{
    struct seen *r = opaque;
    r->surfaces++;
    if (r->surface)
        pixman_image_unref(r->surface);
    r->surface = s ? pixman_image_ref(s) : NULL;
    pixman_region32_clear(&r->damage);
}

static void seen_damage(void *opaque, struct display *d, const pixman_region32_t *region)
{
    struct seen *r = opaque;
    r->damages++;
    pixman_region32_union(&r->damage, &r->damage, (pixman_region32_t *)region);
    r->last_extents = *pixman_region32_extents((pixman_region32_t *)region);
    if (r->remove_on_damage)
        display_remove_listener(d, r->self);
}

static void seen_cursor(void *opaque, struct display *d, const struct display_cursor *c)
{
    struct seen *r = opaque;
    r->cursors++;
    r->cursor_x = c->x;
    r->cursor_y = c->y;
    r->hot_x = c->hot_x;
    r->cursor_visible = c->visible;
}

static const struct display_listener_ops seen_ops = {seen_surface, seen_damage, seen_cursor};

static void seen_init(struct seen *r)
{
    memset(r, 0, sizeof(*r));
    pixman_region32_init(&r->damage);
}

static void seen_fini(struct seen *r)
{
    if (r->surface)
        pixman_image_unref(r->surface);
    pixman_region32_fini(&r->damage);
}

static struct machine m;
static struct fake_dev dev;
static uint32_t pixels[64 * 48];

static pixman_image_t *make_surface(int w, int h)
{
    return pixman_image_create_bits(PIXMAN_x8r8g8b8, w, h, pixels, w * 4);
}

/* The device shows a new w x h surface (the display keeps its own reference). */
static void show_surface(int w, int h)
{
    pixman_image_t *s = make_surface(w, h);
    display_set_surface(&dev.d, s);
    pixman_image_unref(s);
}

static void setup(void)
{
    dh_machine_init(&m, NULL, 0, 1, 16 << 20);
    memset(&dev, 0, sizeof(dev));
    display_init(&dev.d, &m, "video0", "fake-display", 0, &fake_ops, &dev);
    display_register(&dev.d);
}

static void teardown(void)
{
    display_unregister(&dev.d);
    g_assert_null(m.displays);
    dh_machine_fini(&m);
}

static void test_first_refresh_gives_surface(void)
{
    setup();
    struct seen a;
    seen_init(&a);
    show_surface(64, 48);
    struct display_listener *l = display_add_listener(&dev.d, &seen_ops, &a);
    g_assert_cmpuint(dev.tracking_on, ==, 1);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.surfaces, ==, 1);
    g_assert_cmpuint(a.damages, ==, 0);
    g_assert_true(a.surface == dev.d.surface);
    g_assert_cmpint(pixman_image_get_width(a.surface), ==, 64);
    /* nothing changed: nothing is said */
    display_refresh(&dev.d);
    g_assert_cmpuint(a.surfaces, ==, 1);
    g_assert_cmpuint(a.damages, ==, 0);
    display_remove_listener(&dev.d, l);
    g_assert_cmpuint(dev.tracking_off, ==, 1);
    seen_fini(&a);
    teardown();
}

static void test_no_surface_is_reported_as_null(void)
{
    setup();
    struct seen a;
    seen_init(&a);
    struct display_listener *l = display_add_listener(&dev.d, &seen_ops, &a);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.surfaces, ==, 1);
    g_assert_null(a.surface);
    g_assert_cmpuint(dev.refreshes, ==, 0); /* no surface: the device has nothing to collect */
    display_remove_listener(&dev.d, l);
    seen_fini(&a);
    teardown();
}

static void test_damage_accumulates_and_clips(void)
{
    setup();
    struct seen a;
    seen_init(&a);
    show_surface(64, 48);
    struct display_listener *l = display_add_listener(&dev.d, &seen_ops, &a);
    display_refresh(&dev.d);

    display_add_damage(&dev.d, 1, 2, 3, 4);
    display_add_damage(&dev.d, 10, 10, 2, 2);
    display_add_damage(&dev.d, 60, 40, 100, 100); /* clipped to 60..63 x 40..47 */
    display_add_damage(&dev.d, -5, -5, 3, 3);     /* wholly outside */
    display_add_damage(&dev.d, 5, 5, 0, 7);       /* empty */
    display_refresh(&dev.d);
    g_assert_cmpuint(a.damages, ==, 1);
    pixman_region32_t want;
    pixman_region32_init_rect(&want, 1, 2, 3, 4);
    pixman_region32_union_rect(&want, &want, 10, 10, 2, 2);
    pixman_region32_union_rect(&want, &want, 60, 40, 4, 8);
    g_assert_true(pixman_region32_equal(&want, &a.damage));
    pixman_region32_fini(&want);

    /* collected damage is gone; the device's refresh hook adds more */
    dev.damage_on_refresh = 1;
    display_refresh(&dev.d);
    g_assert_cmpuint(a.damages, ==, 2);
    g_assert_cmpint(a.last_extents.x1, ==, 0);
    g_assert_cmpint(a.last_extents.x2, ==, 1);
    g_assert_cmpint(a.last_extents.y2, ==, 1);
    display_remove_listener(&dev.d, l);
    seen_fini(&a);
    teardown();
}

static void test_surface_change_drops_damage(void)
{
    setup();
    struct seen a;
    seen_init(&a);
    show_surface(64, 48);
    struct display_listener *l = display_add_listener(&dev.d, &seen_ops, &a);
    display_refresh(&dev.d);
    display_add_damage(&dev.d, 0, 0, 8, 8);
    show_surface(32, 16);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.surfaces, ==, 2);
    g_assert_cmpuint(a.damages, ==, 0);
    g_assert_cmpint(pixman_image_get_width(a.surface), ==, 32);
    /* damage added against no surface at all is dropped */
    display_set_surface(&dev.d, NULL);
    display_add_damage(&dev.d, 0, 0, 8, 8);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.surfaces, ==, 3);
    g_assert_null(a.surface);
    g_assert_cmpuint(a.damages, ==, 0);
    display_remove_listener(&dev.d, l);
    seen_fini(&a);
    teardown();
}

static void test_every_listener_gets_the_same(void)
{
    setup();
    struct seen a, b;
    seen_init(&a);
    seen_init(&b);
    show_surface(64, 48);
    struct display_listener *la = display_add_listener(&dev.d, &seen_ops, &a);
    display_refresh(&dev.d);
    display_add_damage(&dev.d, 4, 4, 4, 4);
    /* b joins late: it gets the surface, not the damage (the surface implies everything) */
    struct display_listener *lb = display_add_listener(&dev.d, &seen_ops, &b);
    g_assert_cmpuint(dev.tracking_on, ==, 1);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.damages, ==, 1);
    g_assert_cmpuint(b.surfaces, ==, 1);
    g_assert_cmpuint(b.damages, ==, 0);
    display_add_damage(&dev.d, 1, 1, 1, 1);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.damages, ==, 2);
    g_assert_cmpuint(b.damages, ==, 1);
    g_assert_true(pixman_region32_equal(&b.damage, &(pixman_region32_t){.extents = {1, 1, 2, 2}}));
    display_remove_listener(&dev.d, la);
    g_assert_cmpuint(dev.tracking_off, ==, 0);
    display_remove_listener(&dev.d, lb);
    g_assert_cmpuint(dev.tracking_off, ==, 1);
    seen_fini(&a);
    seen_fini(&b);
    teardown();
}

static void test_listener_may_remove_itself(void)
{
    setup();
    struct seen a, b;
    seen_init(&a);
    seen_init(&b);
    show_surface(64, 48);
    a.self = display_add_listener(&dev.d, &seen_ops, &a);
    a.remove_on_damage = true;
    struct display_listener *lb = display_add_listener(&dev.d, &seen_ops, &b);
    display_refresh(&dev.d);
    display_add_damage(&dev.d, 0, 0, 2, 2);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.damages, ==, 1);
    g_assert_cmpuint(b.damages, ==, 1);
    g_assert_cmpuint(dev.d.listeners->len, ==, 1);
    display_add_damage(&dev.d, 0, 0, 2, 2);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.damages, ==, 1);
    g_assert_cmpuint(b.damages, ==, 2);
    display_remove_listener(&dev.d, lb);
    seen_fini(&a);
    seen_fini(&b);
    teardown();
}

static void test_cursor_changes_delivered(void)
{
    setup();
    struct seen a;
    seen_init(&a);
    struct display_listener *l = display_add_listener(&dev.d, &seen_ops, &a);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.cursors, ==, 1); /* the initial (empty) cursor */
    uint32_t shape[16 * 16] = {0};
    pixman_image_t *img = pixman_image_create_bits(PIXMAN_a8r8g8b8, 16, 16, shape, 64);
    display_set_cursor(&dev.d, img, 3, 4);
    pixman_image_unref(img);
    display_move_cursor(&dev.d, 100, 200, true);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.cursors, ==, 2);
    g_assert_cmpint(a.cursor_x, ==, 100);
    g_assert_cmpint(a.cursor_y, ==, 200);
    g_assert_cmpint(a.hot_x, ==, 3);
    g_assert_true(a.cursor_visible);
    display_move_cursor(&dev.d, 100, 200, true); /* no change */
    display_refresh(&dev.d);
    g_assert_cmpuint(a.cursors, ==, 2);
    display_move_cursor(&dev.d, 100, 200, false);
    display_refresh(&dev.d);
    g_assert_cmpuint(a.cursors, ==, 3);
    g_assert_false(a.cursor_visible);
    display_remove_listener(&dev.d, l);
    seen_fini(&a);
    teardown();
}

static void test_find_by_id_model_head(void)
{
    setup();
    struct fake_dev second;
    memset(&second, 0, sizeof(second));
    display_init(&second.d, &m, "video1", "other-display", 1, &fake_ops, &second);
    display_register(&second.d);
    g_assert_true(display_find(&m, NULL, 0) == &dev.d);
    g_assert_true(display_find(&m, "video0", 0) == &dev.d);
    g_assert_true(display_find(&m, "fake-display", 0) == &dev.d);
    g_assert_null(display_find(&m, "video0", 1));
    g_assert_true(display_find(&m, "video1", 1) == &second.d);
    g_assert_null(display_find(&m, "video1", 0));
    g_assert_null(display_find(&m, "nope", 0));
    display_unregister(&second.d);
    g_assert_true(m.displays == &dev.d);
    g_assert_null(dev.d.next);
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/display/listener/first-refresh-gives-surface", test_first_refresh_gives_surface);
    g_test_add_func("/display/listener/no-surface-is-null", test_no_surface_is_reported_as_null);
    g_test_add_func("/display/damage/accumulates-merges-clips", test_damage_accumulates_and_clips);
    g_test_add_func("/display/damage/surface-change-drops-damage", test_surface_change_drops_damage);
    g_test_add_func("/display/listener/all-get-the-same-late-gets-surface",
                    test_every_listener_gets_the_same);
    g_test_add_func("/display/listener/may-remove-itself-in-callback", test_listener_may_remove_itself);
    g_test_add_func("/display/cursor/changes-delivered-once", test_cursor_changes_delivered);
    g_test_add_func("/display/find/by-id-model-head", test_find_by_id_model_head);
    return g_test_run();
}
