/* The VNC front end against a fake display device and libvncclient: the client sees the surface's pixels,
 * only damaged rectangles are sent again, a mode change resizes the client, the guest's cursor arrives as a
 * cursor shape (image, hotspot, mask), a hidden cursor is sent as an empty one, and a client's resize request
 * reaches the device's request_resize on the main loop. The client runs on a thread of its own (libvncclient
 * blocks); the test thread runs the GLib main loop the display refresh and the VNC input hand-over need. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <glib.h>
#include <rfb/rfbclient.h>

#include "device_harness.h"
#include "display.h"
#include "vnc.h"

#define W 64
#define H 48

struct fake_dev {
    struct display d;
    unsigned resize_w, resize_h; /* last request_resize */
    unsigned resizes;
};

static bool fake_request_resize(struct display *d, unsigned w, unsigned h)
{
    struct fake_dev *f = d->opaque;
    f->resize_w = w;
    f->resize_h = h;
    f->resizes++;
    return true;
}

static const struct display_ops fake_ops = {.request_resize = fake_request_resize};

/* What a client thread saw; guarded by `lock`. */
struct seen {
    GMutex lock;
    bool remote_cursor; /* asks for cursor shapes (else libvncserver draws the cursor into its pixels) */
    GThread *thread;
    GAsyncQueue *requests; /* sizes to ask for, packed w << 16 | h */
    int width, height;
    uint32_t *fb; /* copy of the client's framebuffer, client pixel format (R at bits 0-7) */
    unsigned updates;
    int last_x, last_y, last_w, last_h; /* bounding box of the rectangles since `mark` */
    bool have_box;
    int cursor_w, cursor_h, cursor_hx, cursor_hy;
    uint32_t *cursor_px;
    uint8_t *cursor_mask;
    unsigned cursors;
    gint quit;
    bool failed;
};

static struct seen shapes = {.remote_cursor = true}, plain;
static struct seen *cur_pred; /* the client pump_until's predicates look at */

static void on_update(rfbClient *cl, int x, int y, int w, int h)
{
    struct seen *sp = rfbClientGetClientData(cl, NULL);
#define seen (*sp)
    g_mutex_lock(&seen.lock);
    seen.width = cl->width;
    seen.height = cl->height;
    g_free(seen.fb);
    seen.fb = g_memdup2(cl->frameBuffer, (gsize)cl->width * cl->height * 4);
    if (!seen.have_box) {
        seen.last_x = x, seen.last_y = y, seen.last_w = w, seen.last_h = h;
        seen.have_box = true;
    } else {
        int x2 = MAX(seen.last_x + seen.last_w, x + w), y2 = MAX(seen.last_y + seen.last_h, y + h);
        seen.last_x = MIN(seen.last_x, x);
        seen.last_y = MIN(seen.last_y, y);
        seen.last_w = x2 - seen.last_x;
        seen.last_h = y2 - seen.last_y;
    }
    seen.updates++;
    g_mutex_unlock(&seen.lock);
#undef seen
}

static void on_cursor(rfbClient *cl, int xhot, int yhot, int width, int height, int bpp)
{
    struct seen *sp = rfbClientGetClientData(cl, NULL);
#define seen (*sp)
    g_mutex_lock(&seen.lock);
    seen.cursor_w = width;
    seen.cursor_h = height;
    seen.cursor_hx = xhot;
    seen.cursor_hy = yhot;
    g_free(seen.cursor_px);
    g_free(seen.cursor_mask);
    seen.cursor_px = bpp == 4 && width ? g_memdup2(cl->rcSource, (gsize)width * height * 4) : NULL;
    seen.cursor_mask = width ? g_memdup2(cl->rcMask, (gsize)width * height) : NULL;
    seen.cursors++;
    g_mutex_unlock(&seen.lock);
#undef seen
}

static int port;

/* A zeroed framebuffer (libvncclient's own is uninitialised until the first update). */
static rfbBool alloc_fb(rfbClient *cl)
{
    free(cl->frameBuffer);
    cl->frameBuffer = calloc((size_t)cl->width * (size_t)cl->height, 4);
    return cl->frameBuffer != NULL;
}

static gpointer client_thread(gpointer data)
{
    struct seen *sp = data;
    rfbClient *cl = rfbGetClient(8, 3, 4);
    cl->serverHost = strdup("127.0.0.1");
    cl->serverPort = port;
    cl->appData.encodingsString = "zrle raw";
    cl->appData.useRemoteCursor = sp->remote_cursor;
    cl->GotFrameBufferUpdate = on_update;
    cl->GotCursorShape = on_cursor;
    cl->MallocFrameBuffer = alloc_fb;
    rfbClientSetClientData(cl, NULL, sp);
    if (!rfbInitClient(cl, NULL, NULL)) {
        sp->failed = true;
        return NULL;
    }
    while (!g_atomic_int_get(&sp->quit)) {
        gpointer req = g_async_queue_try_pop(sp->requests);
        if (req) {
            unsigned packed = GPOINTER_TO_UINT(req);
            SendExtDesktopSize(cl, (uint16_t)(packed >> 16), (uint16_t)(packed & 0xffff));
        }
        int n = WaitForMessage(cl, 20000);
        if (n < 0 || (n > 0 && !HandleRFBServerMessage(cl))) {
            sp->failed = true;
            break;
        }
    }
    uint8_t *fb = cl->frameBuffer;
    rfbClientCleanup(cl);
    free(fb);
    return NULL;
}

static void client_start(struct seen *sp)
{
    g_mutex_init(&sp->lock);
    sp->requests = g_async_queue_new();
    sp->thread = g_thread_new("client", client_thread, sp);
}

static void client_stop(struct seen *sp)
{
    g_atomic_int_set(&sp->quit, 1);
    g_thread_join(sp->thread);
    g_assert_false(sp->failed);
    g_free(sp->fb);
    g_free(sp->cursor_px);
    g_free(sp->cursor_mask);
    g_async_queue_unref(sp->requests);
    g_mutex_clear(&sp->lock);
}

/* Runs the main loop until pred holds or 10 s pass. */
static bool pump_until(struct seen *sp, bool (*pred)(void *), void *arg)
{
#define seen (*sp)
    cur_pred = sp;
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (g_get_monotonic_time() < end) {
        while (g_main_context_iteration(NULL, FALSE))
            ;
        g_mutex_lock(&seen.lock);
        bool ok = pred(arg);
        g_mutex_unlock(&seen.lock);
        if (ok)
            return true;
        g_usleep(5000);
    }
    return false;
#undef seen
}

static uint32_t pattern(int x, int y, int salt)
{
    return 0xff000000u | (uint32_t)((x * 4 + salt) & 0xff) << 16 | (uint32_t)((y * 5) & 0xff) << 8 |
           (uint32_t)((x + y + salt) & 0xff);
}

/* XRGB (guest) -> the client's default format: R in bits 0-7, G 8-15, B 16-23. */
static uint32_t as_client(uint32_t xrgb)
{
    return (xrgb >> 16 & 0xff) | (xrgb & 0xff00) | (xrgb & 0xff) << 16;
}

struct want_fb {
    pixman_image_t *img;
};

#define seen (*cur_pred)
static bool fb_matches(void *arg)
{
    pixman_image_t *img = arg;
    int w = pixman_image_get_width(img), h = pixman_image_get_height(img);
    if (!seen.fb || seen.width != w || seen.height != h)
        return false;
    uint32_t *px = pixman_image_get_data(img);
    int stride = pixman_image_get_stride(img) / 4;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if ((seen.fb[y * w + x] & 0xffffff) != as_client(px[y * stride + x]))
                return false;
    return true;
}

static pixman_image_t *make_surface(int w, int h, int salt)
{
    pixman_image_t *img = pixman_image_create_bits(PIXMAN_x8r8g8b8, w, h, NULL, w * 4);
    uint32_t *px = pixman_image_get_data(img);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            px[y * w + x] = pattern(x, y, salt);
    return img;
}

static bool cursor_count_at_least(void *arg)
{
    return cur_pred->cursors >= GPOINTER_TO_UINT(arg);
}

#undef seen

static bool resize_seen(void *arg)
{
    struct fake_dev *f = arg;
    return f->resizes > 0;
}

static int free_display(void)
{
    for (int d = 4000; d < 4400; d++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)(5900 + d)),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(s);
        if (ok)
            return d;
    }
    g_error("no free VNC port");
}

static void test_end_to_end(void)
{
    static struct machine m;
    static struct fake_dev dev;
    rfbEnableClientLogging = FALSE;
    dh_machine_init(&m, NULL, 0, 1, 16 << 20);
    display_init(&dev.d, &m, "video0", "fake-display", 0, &fake_ops, &dev);
    display_register(&dev.d);
    pixman_image_t *surface = make_surface(W, H, 0);
    machine_lock(&m);
    display_set_surface(&dev.d, surface);
    machine_unlock(&m);

    int disp = free_display();
    port = 5900 + disp;
    struct vnc_spec spec = {.kind = VNC_TCP, .host = (char *)"127.0.0.1", .display = (unsigned)disp};
    char *err = NULL;
    struct vnc *v = vnc_start(&spec, &m, NULL, NULL, "test", &err);
    if (!v)
        g_error("vnc_start: %s", err);
    client_start(&shapes);
    client_start(&plain);

    /* 1. the surface's pixels, for both */
    g_assert_true(pump_until(&shapes, fb_matches, surface));
    g_assert_true(pump_until(&plain, fb_matches, surface));

    /* 2. damage: only the damaged rectangle is sent again */
    uint32_t *px = pixman_image_get_data(surface);
    for (int y = 10; y < 20; y++)
        for (int x = 8; x < 24; x++)
            px[y * W + x] = 0xff123456u;
    g_mutex_lock(&shapes.lock);
    shapes.have_box = false;
    g_mutex_unlock(&shapes.lock);
    machine_lock(&m);
    display_add_damage(&dev.d, 8, 10, 16, 10);
    machine_unlock(&m);
    g_assert_true(pump_until(&shapes, fb_matches, surface));
    g_mutex_lock(&shapes.lock);
    g_assert_true(shapes.have_box);
    g_assert_cmpint(shapes.last_x, >=, 8);
    g_assert_cmpint(shapes.last_y, >=, 10);
    g_assert_cmpint(shapes.last_x + shapes.last_w, <=, 24);
    g_assert_cmpint(shapes.last_y + shapes.last_h, <=, 20);
    g_mutex_unlock(&shapes.lock);

    /* 3. the guest's cursor: shape, hotspot, mask from alpha; clients without shapes get it drawn */
    unsigned cursors = shapes.cursors;
    pixman_image_t *cur = pixman_image_create_bits(PIXMAN_a8r8g8b8, 16, 16, NULL, 16 * 4);
    uint32_t *cp = pixman_image_get_data(cur);
    for (int i = 0; i < 16 * 16; i++)
        cp[i] = (i % 16) < 8 ? 0xffff0000u /* opaque red */ : 0x00000000u; /* transparent */
    machine_lock(&m);
    display_set_cursor(&dev.d, cur, 3, 4);
    display_move_cursor(&dev.d, 20, 20, true);
    machine_unlock(&m);
    g_assert_true(pump_until(&shapes, cursor_count_at_least, GUINT_TO_POINTER(cursors + 1)));
    g_mutex_lock(&shapes.lock);
    g_assert_cmpint(shapes.cursor_w, ==, 16);
    g_assert_cmpint(shapes.cursor_h, ==, 16);
    g_assert_cmpint(shapes.cursor_hx, ==, 3);
    g_assert_cmpint(shapes.cursor_hy, ==, 4);
    g_assert_nonnull(shapes.cursor_px);
    g_assert_cmphex(shapes.cursor_px[0] & 0xffffff, ==, as_client(0xff0000));
    g_assert_cmpuint(shapes.cursor_mask[0], !=, 0);
    g_assert_cmpuint(shapes.cursor_mask[15], ==, 0);
    g_mutex_unlock(&shapes.lock);
    /* The client without cursor shapes gets the guest's pixels only, as QEMU sends them: the cursor (hotspot
     * (3, 4) at 20,20, its opaque half over x 17..24, y 16..31) is not painted over a pixel that changes
     * under it. */
    px[17 * W + 18] = 0xff00ff00u;
    machine_lock(&m);
    display_add_damage(&dev.d, 0, 0, W, H);
    machine_unlock(&m);
    g_assert_true(pump_until(&plain, fb_matches, surface));
    /* ... moving it does not resend the shape */
    cursors = shapes.cursors;
    machine_lock(&m);
    display_move_cursor(&dev.d, 30, 30, true);
    machine_unlock(&m);
    for (int i = 0; i < 20; i++) {
        while (g_main_context_iteration(NULL, FALSE))
            ;
        g_usleep(10000);
    }
    g_assert_cmpuint(shapes.cursors, ==, cursors);

    /* 4. hidden: no cursor (an empty shape for shape clients), nothing drawn into the pixels */
    machine_lock(&m);
    display_move_cursor(&dev.d, 30, 30, false);
    display_add_damage(&dev.d, 0, 0, W, H);
    machine_unlock(&m);
    g_assert_true(pump_until(&plain, fb_matches, surface));

    /* 5. a mode change resizes the clients */
    pixman_image_t *bigger = make_surface(80, 60, 7);
    machine_lock(&m);
    display_set_surface(&dev.d, bigger);
    machine_unlock(&m);
    g_assert_true(pump_until(&shapes, fb_matches, bigger));
    g_assert_true(pump_until(&plain, fb_matches, bigger));

    /* 6. a client's resize request reaches the device on the main loop */
    g_async_queue_push(shapes.requests, GUINT_TO_POINTER(1024u << 16 | 768u));
    g_assert_true(pump_until(&shapes, resize_seen, &dev));
    g_assert_cmpuint(dev.resize_w, ==, 1024);
    g_assert_cmpuint(dev.resize_h, ==, 768);

    client_stop(&shapes);
    client_stop(&plain);
    vnc_stop(v);
    display_unregister(&dev.d);
    dh_machine_fini(&m);
    pixman_image_unref(surface);
    pixman_image_unref(bigger);
    pixman_image_unref(cur);
    g_free(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vnc/end-to-end", test_end_to_end);
    return g_test_run();
}
