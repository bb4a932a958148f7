/* The VNC server: listeners on the main loop, libvncserver on its own thread with a shadow framebuffer in the
 * guest's XRGB8888 layout, display damage copied in rectangle by rectangle, the guest's hardware cursor as a
 * rich cursor, VNC authentication with QEMU's set_password/expire_password semantics. */
#include "vnc_internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "keymap.h"
#include "listen.h"
#include "machine.h"

/* Screen size shown while there is no surface yet (no display, or the guest has not set a mode). */
#define VNC_BLANK_WIDTH 640
#define VNC_BLANK_HEIGHT 480
/* How long the VNC thread waits in select() for client traffic before looking at display changes again. */
#define VNC_POLL_US_ACTIVE 10000
#define VNC_POLL_US_IDLE 50000
/* A client that stops reading (or sends half a message) holds the VNC thread this long, then is dropped: this
 * bounds both the stall and what a client can make the host buffer (libvncserver writes synchronously). */
#define VNC_CLIENT_WAIT_MS 3000
/* The biggest framebuffer a client may ask for. */
#define VNC_MAX_DIMENSION 8192

/* ---------------------------------------------------------------- libvncserver logging */

static void vnc_log_va(enum log_level level, const char *fmt, va_list ap)
{
    char buf[512];
    g_vsnprintf(buf, sizeof(buf), fmt, ap);
    g_strchomp(buf);
    if (*buf)
        log_message(level, "vnc: %s", buf);
}

static void vnc_rfb_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vnc_log_va(LOG_LEVEL_DEBUG, fmt, ap);
    va_end(ap);
}

static void vnc_rfb_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* libvncserver reports every client that goes away badly as an error: not ours to shout about. */
    vnc_log_va(LOG_LEVEL_DEBUG, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- the shadow framebuffer (VNC thread) */

static void set_server_format(rfbScreenInfoPtr s)
{
    /* The guest's XRGB8888 as little-endian 32-bit words: B, G, R, X in memory. */
    s->serverFormat.redShift = 16;
    s->serverFormat.greenShift = 8;
    s->serverFormat.blueShift = 0;
}

static pixman_image_t *shadow_new(int width, int height, uint32_t **bits)
{
    *bits = g_malloc0((size_t)width * (size_t)height * 4);
    return pixman_image_create_bits(PIXMAN_x8r8g8b8, width, height, *bits, width * 4);
}

static void copy_rect(struct vnc *v, int x, int y, int w, int h)
{
    if (!v->source)
        return;
    int sw = pixman_image_get_width(v->shadow), sh = pixman_image_get_height(v->shadow);
    int x2 = MIN(x + w, sw), y2 = MIN(y + h, sh);
    x = MAX(x, 0);
    y = MAX(y, 0);
    if (x >= x2 || y >= y2)
        return;
    pixman_image_composite32(PIXMAN_OP_SRC, v->source, NULL, v->shadow, x, y, 0, 0, x, y, x2 - x, y2 - y);
    rfbMarkRectAsModified(v->screen, x, y, x2, y2);
}

/* The guest surface changed (mode set, or off): a new shadow of its size, all of it new. */
static void apply_surface(struct vnc *v, pixman_image_t *surface)
{
    g_clear_pointer(&v->source, pixman_image_unref);
    v->surface = surface;
    int w = surface ? pixman_image_get_width(surface) : pixman_image_get_width(v->shadow);
    int h = surface ? pixman_image_get_height(surface) : pixman_image_get_height(v->shadow);
    if (surface)
        v->source =
            pixman_image_create_bits(pixman_image_get_format(surface), w, h, pixman_image_get_data(surface),
                                     pixman_image_get_stride(surface));
    if (w == pixman_image_get_width(v->shadow) && h == pixman_image_get_height(v->shadow)) {
        if (v->source)
            copy_rect(v, 0, 0, w, h);
        else {
            memset(v->shadow_bits, 0, (size_t)w * (size_t)h * 4);
            rfbMarkRectAsModified(v->screen, 0, 0, w, h);
        }
        return;
    }
    uint32_t *bits;
    pixman_image_t *shadow = shadow_new(w, h, &bits);
    pixman_image_t *old = v->shadow;
    uint32_t *old_bits = v->shadow_bits;
    v->shadow = shadow;
    v->shadow_bits = bits;
    if (v->source)
        pixman_image_composite32(PIXMAN_OP_SRC, v->source, NULL, v->shadow, 0, 0, 0, 0, 0, 0, w, h);
    /* Resets the server pixel format to libvncserver's default and re-derives every client's translation from
     * it: put ours back and derive again. Clients get DesktopSize / ExtendedDesktopSize. */
    rfbNewFramebuffer(v->screen, (char *)bits, w, h, 8, 3, 4);
    set_server_format(v->screen);
    rfbClientIteratorPtr it = rfbGetClientIterator(v->screen);
    for (rfbClientPtr cl; (cl = rfbClientIteratorNext(it));)
        rfbSetTranslateFunction(cl);
    rfbReleaseClientIterator(it);
    pixman_image_unref(old);
    g_free(old_bits);
    log_debug("vnc: framebuffer now %dx%d", w, h);
}

/* The guest's cursor as an rfbCursor for clients that take cursor shapes: the ARGB image as rich source in
 * the server format and a 1-bit mask from its alpha. Clients without cursor encodings get no cursor in their
 * pixels, as from QEMU (test automation compares those pixels with reference pictures): libvncserver would
 * paint the cursor into the picture for them, blended by alphaSource, which is therefore all transparent.
 * NULL while the guest shows no cursor. */
static rfbCursorPtr make_cursor(pixman_image_t *image, int hot_x, int hot_y)
{
    int w = pixman_image_get_width(image), h = pixman_image_get_height(image);
    if (w <= 0 || h <= 0 || w > DISPLAY_CURSOR_MAX || h > DISPLAY_CURSOR_MAX)
        return NULL;
    /* Our own a8r8g8b8 copy: the device's image may be in another format. */
    uint32_t *argb = g_malloc((size_t)w * (size_t)h * 4);
    pixman_image_t *src = pixman_image_create_bits(
        pixman_image_get_format(image), w, h, pixman_image_get_data(image), pixman_image_get_stride(image));
    pixman_image_t *dst = pixman_image_create_bits(PIXMAN_a8r8g8b8, w, h, argb, w * 4);
    pixman_image_composite32(PIXMAN_OP_SRC, src, NULL, dst, 0, 0, 0, 0, 0, 0, w, h);
    pixman_image_unref(src);
    pixman_image_unref(dst);

    rfbCursorPtr c = calloc(1, sizeof(*c));
    int mstride = (w + 7) / 8;
    c->width = (unsigned short)w;
    c->height = (unsigned short)h;
    c->xhot = (unsigned short)CLAMP(hot_x, 0, w - 1);
    c->yhot = (unsigned short)CLAMP(hot_y, 0, h - 1);
    c->richSource = malloc((size_t)w * (size_t)h * 4);
    c->alphaSource = calloc((size_t)w, (size_t)h); /* painted cursor: nothing (see above) */
    c->mask = calloc((size_t)mstride, (size_t)h);
    c->alphaPreMultiplied = TRUE; /* pixman's a8r8g8b8 is premultiplied */
    c->cleanup = c->cleanupRichSource = c->cleanupMask = c->cleanupSource = TRUE;
    c->foreRed = c->foreGreen = c->foreBlue = 0;
    c->backRed = c->backGreen = c->backBlue = 0xffff;
    bool any = false;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            uint32_t p = argb[y * w + x];
            uint8_t a = (uint8_t)(p >> 24);
            /* server format: XRGB words, i.e. the pixel without its alpha byte */
            ((uint32_t *)(void *)c->richSource)[y * w + x] = p & 0xffffffu;
            if (a >= 0x80) {
                c->mask[y * mstride + x / 8] |= (unsigned char)(0x80u >> (x % 8));
                any = true;
            }
        }
    }
    g_free(argb);
    if (!any) {
        rfbFreeCursor(c);
        return NULL;
    }
    return c;
}

/* The guest moved its cursor: libvncserver redraws it there for clients that have no cursor of their own (as
 * when a client's pointer event moves it) and tells those taking PointerPos updates. */
static void move_cursor(struct vnc *v, int x, int y)
{
    rfbScreenInfoPtr s = v->screen;
    x = CLAMP(x, 0, MAX(s->width - 1, 0));
    y = CLAMP(y, 0, MAX(s->height - 1, 0));
    if (x == s->cursorX && y == s->cursorY)
        return;
    pthread_mutex_lock(&s->cursorMutex);
    s->cursorX = x;
    s->cursorY = y;
    pthread_mutex_unlock(&s->cursorMutex);
    rfbClientIteratorPtr it = rfbGetClientIterator(s);
    for (rfbClientPtr cl; (cl = rfbClientIteratorNext(it));)
        cl->cursorWasMoved = TRUE;
    rfbReleaseClientIterator(it);
}

/* Main loop: something is waiting for the VNC thread; it should not sit out its poll interval. */
static void wake_thread(struct vnc *v)
{
    uint64_t one = 1;
    if (write(v->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_message_ratelimited(&v->rl, LOG_LEVEL_WARN, "vnc: cannot wake the VNC thread: %s",
                                g_strerror(errno));
}

/* Takes what the main loop handed over and applies it: surface, damage, cursor, new connections. */
static void apply_pending(struct vnc *v)
{
    uint64_t wakes;
    while (read(v->wake_fd, &wakes, sizeof(wakes)) > 0)
        ;
    pixman_region32_t damage;
    pixman_region32_init(&damage);
    g_mutex_lock(&v->lock);
    bool surface_pending = v->surface_pending;
    pixman_image_t *surface = v->new_surface;
    v->surface_pending = false;
    v->new_surface = NULL;
    pixman_region32_copy(&damage, &v->damage);
    pixman_region32_clear(&v->damage);
    bool cursor_pending = v->cursor_pending;
    pixman_image_t *cursor_image = v->cursor_image;
    int hot_x = v->cursor_hot_x, hot_y = v->cursor_hot_y;
    bool cursor_visible = v->cursor_visible;
    bool cursor_pos_pending = v->cursor_pos_pending;
    int cursor_x = v->cursor_x, cursor_y = v->cursor_y;
    v->cursor_pos_pending = false;
    v->cursor_pending = false;
    v->cursor_image = NULL;
    g_autoptr(GArray) fds = v->new_fds->len ? v->new_fds : NULL;
    if (fds)
        v->new_fds = g_array_new(FALSE, FALSE, sizeof(struct vnc_pending_fd));
    g_mutex_unlock(&v->lock);

    if (surface_pending) {
        pixman_image_t *old = v->surface;
        apply_surface(v, surface);
        if (old) {
            g_mutex_lock(&v->lock);
            g_ptr_array_add(v->garbage, old);
            vnc_schedule_drain_locked(v);
            g_mutex_unlock(&v->lock);
        }
    } else if (pixman_region32_not_empty(&damage)) {
        int n;
        const pixman_box32_t *boxes = pixman_region32_rectangles(&damage, &n);
        for (int i = 0; i < n; i++)
            copy_rect(v, boxes[i].x1, boxes[i].y1, boxes[i].x2 - boxes[i].x1, boxes[i].y2 - boxes[i].y1);
    }
    pixman_region32_fini(&damage);

    if (cursor_pending) {
        rfbCursorPtr c = cursor_image && cursor_visible ? make_cursor(cursor_image, hot_x, hot_y) : NULL;
        rfbSetCursor(v->screen, c);
        if (cursor_image) {
            g_mutex_lock(&v->lock);
            g_ptr_array_add(v->garbage, cursor_image);
            vnc_schedule_drain_locked(v);
            g_mutex_unlock(&v->lock);
        }
    }

    if (cursor_pos_pending)
        move_cursor(v, cursor_x, cursor_y);

    for (guint i = 0; fds && i < fds->len; i++) {
        struct vnc_pending_fd *p = &g_array_index(fds, struct vnc_pending_fd, i);
        /* libvncserver select()s on its clients: a descriptor past FD_SETSIZE would overrun its fd_set. */
        if (p->fd >= FD_SETSIZE) {
            log_message_ratelimited(&v->rl_thread, LOG_LEVEL_WARN,
                                    "vnc: connection refused: descriptor %d is beyond select()'s limit",
                                    p->fd);
            close(p->fd);
            continue;
        }
        rfbClientPtr cl = rfbNewClient(v->screen, p->fd);
        if (cl && cl->clientData) {
            struct vnc_client *vc = cl->clientData;
            g_mutex_lock(&v->lock);
            /* what the connection speaks, whichever port it came in on */
            vc->info.websocket = cl->wsctx != NULL;
            g_mutex_unlock(&v->lock);
        }
    }
}

/* ---------------------------------------------------------------- clients (VNC thread) */

static void fill_peer(int fd, struct vnc_client_info *info)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    info->family = "unknown";
    g_strlcpy(info->host, "", sizeof(info->host));
    g_strlcpy(info->service, "", sizeof(info->service));
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_UNIX) {
        info->family = "unix";
        struct sockaddr_un local;
        socklen_t llen = sizeof(local);
        /* The peer of an accepted unix connection is unnamed; QEMU reports the listening path. */
        if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0 && local.sun_family == AF_UNIX)
            g_strlcpy(info->host, local.sun_path, sizeof(info->host));
        return;
    }
    info->family = ss.ss_family == AF_INET6 ? "ipv6" : "ipv4";
    getnameinfo((struct sockaddr *)&ss, len, info->host, sizeof(info->host), info->service,
                sizeof(info->service), NI_NUMERICHOST | NI_NUMERICSERV);
}

static void on_client_gone(rfbClientPtr cl)
{
    struct vnc_client *vc = cl->clientData;
    vnc_extkey_client_gone(cl);
    /* libvncserver 0.9.14 never frees a WebSocket client's context (45 KB a connection); later versions free
     * it after this hook, and only if it is still set. */
    free(cl->wsctx);
    cl->wsctx = NULL;
    if (!vc)
        return;
    struct vnc *v = vc->v;
    g_mutex_lock(&v->lock);
    g_ptr_array_remove(v->clients, vc);
    g_mutex_unlock(&v->lock);
    struct vnc_event ev = {.kind = VNC_EV_RELEASE};
    vnc_input_queue(v, &ev);
    log_info("vnc: client %s%s%s disconnected", vc->info.host, *vc->info.service ? ":" : "",
             vc->info.service);
    cl->clientData = NULL;
    g_free(vc);
}

/* libvncserver 0.9.14 turns a FramebufferUpdateRequest of zero width or height into a degenerate rectangle
 * that later divides by zero when it is sent in Zlib (a client could crash the server with two messages). The
 * hook runs before the request becomes a region (clipped to the screen, in host order): such a request, which
 * asks for nothing, becomes an incremental one for one pixel inside the screen, which asks for nothing new.
 */
static void on_update_request(rfbClientPtr cl, rfbFramebufferUpdateRequestMsg *req)
{
    if (!req->w || !req->h)
        req->incremental = 1;
    if (!req->w) {
        req->x = (uint16_t)MIN((int)req->x, cl->screen->width - 1);
        req->w = 1;
    }
    if (!req->h) {
        req->y = (uint16_t)MIN((int)req->y, cl->screen->height - 1);
        req->h = 1;
    }
}

static enum rfbNewClientAction on_new_client(rfbClientPtr cl)
{
    struct vnc *v = cl->screen->screenData;
    g_mutex_lock(&v->lock);
    guint n = v->clients->len;
    g_mutex_unlock(&v->lock);
    if (n >= VNC_MAX_CLIENTS) {
        log_message_ratelimited(&v->rl_thread, LOG_LEVEL_WARN, "vnc: connection refused: already %d clients",
                                VNC_MAX_CLIENTS);
        return RFB_CLIENT_REFUSE;
    }
    cl->clientFramebufferUpdateRequestHook = on_update_request;
    struct vnc_client *vc = g_new0(struct vnc_client, 1);
    vc->v = v;
    vc->cl = cl;
    fill_peer(cl->sock, &vc->info);
    /* getsockname() names the temporary path the listener was bound to before its rename into place */
    if (!strcmp(vc->info.family, "unix"))
        g_strlcpy(vc->info.host, v->listen_host, sizeof(vc->info.host));
    cl->clientData = vc;
    cl->clientGoneHook = on_client_gone;
    g_mutex_lock(&v->lock);
    g_ptr_array_add(v->clients, vc);
    g_mutex_unlock(&v->lock);
    log_info("vnc: client %s%s%s connected", vc->info.host, *vc->info.service ? ":" : "", vc->info.service);
    return RFB_CLIENT_ACCEPT;
}

/* ---------------------------------------------------------------- authentication */

static rfbBool check_password(rfbClientPtr cl, const char *response, int len)
{
    struct vnc *v = cl->screen->screenData;
    struct vnc_client *vc = cl->clientData;
    gint64 now = g_get_real_time();
    bool ok = false;
    const char *why = "wrong password";

    g_mutex_lock(&v->lock);
    if (now - v->fail_window_start > VNC_AUTH_FAIL_WINDOW_US) {
        v->fail_window_start = now;
        v->fail_count = 0;
    }
    if (!v->have_password) {
        why = "no password set (QMP set_password)";
    } else if (v->expire_at && now >= v->expire_at) {
        why = "the password expired";
    } else if (v->fail_count >= VNC_AUTH_FAIL_MAX) {
        why = "too many failed attempts, retry later";
    } else if (len == CHALLENGESIZE) {
        unsigned char expected[CHALLENGESIZE];
        char key[VNC_PASSWORD_MAX + 1];
        memcpy(expected, cl->authChallenge, CHALLENGESIZE);
        memcpy(key, v->password, sizeof(key));
        rfbEncryptBytes(expected, key);
        ok = memcmp(expected, response, CHALLENGESIZE) == 0;
        memset(key, 0, sizeof(key));
    }
    if (!ok)
        v->fail_count++;
    g_mutex_unlock(&v->lock);
    if (!ok)
        log_message_ratelimited(&v->rl_thread, LOG_LEVEL_WARN, "vnc: authentication of %s failed: %s",
                                vc ? vc->info.host : "?", why);
    return ok ? TRUE : FALSE;
}

bool vnc_set_password(struct vnc *v, const char *password, char **error)
{
    if (!v->spec.password) {
        *error = g_strdup("VNC runs without authentication: start deskvm with --vnc ...,password=on to use "
                          "passwords");
        return false;
    }
    if (strlen(password) > VNC_PASSWORD_MAX)
        log_warn("vnc: VNC authentication uses only the first %d characters of the password",
                 VNC_PASSWORD_MAX);
    g_mutex_lock(&v->lock);
    memset(v->password, 0, sizeof(v->password));
    g_strlcpy(v->password, password, sizeof(v->password));
    v->have_password = true;
    v->fail_count = 0;
    g_mutex_unlock(&v->lock);
    return true;
}

void vnc_expire_password(struct vnc *v, gint64 expire_at)
{
    g_mutex_lock(&v->lock);
    v->expire_at = expire_at < 0 ? 1 : expire_at;
    g_mutex_unlock(&v->lock);
}

/* ---------------------------------------------------------------- client resize requests */

static int on_desktop_size(int width, int height, int nscreens, rfbExtDesktopScreen *screens, rfbClientPtr cl)
{
    struct vnc *v = cl->screen->screenData;
    (void)screens;
    if (nscreens != 1 || width < 1 || height < 1 || width > VNC_MAX_DIMENSION || height > VNC_MAX_DIMENSION)
        return rfbExtDesktopSize_InvalidScreenLayout;
    if (!v->display || !v->display->ops->request_resize)
        return rfbExtDesktopSize_ResizeProhibited;
    /* The device is asked from the main loop; the answer to the client waits for the new framebuffer, if the
     * guest acts on the request. */
    struct vnc_event ev = {.kind = VNC_EV_RESIZE, .width = width, .height = height};
    vnc_input_queue(v, &ev);
    return rfbExtDesktopSize_Success;
}

/* ---------------------------------------------------------------- the thread */

static gpointer vnc_thread(gpointer data)
{
    struct vnc *v = data;
    while (!g_atomic_int_get(&v->quit)) {
        apply_pending(v);
        g_mutex_lock(&v->lock);
        bool busy = v->clients->len > 0;
        g_mutex_unlock(&v->lock);
        /* libvncserver select()s on allFds up to maxFd: ours joins them (again: closing a client may
         * recompute maxFd), so a hand-over ends the wait at once; rfbCheckFds ignores descriptors it does not
         * know. */
        FD_SET(v->wake_fd, &v->screen->allFds);
        v->screen->maxFd = MAX(v->screen->maxFd, v->wake_fd);
        rfbProcessEvents(v->screen, busy ? VNC_POLL_US_ACTIVE : VNC_POLL_US_IDLE);
    }
    rfbShutdownServer(v->screen, TRUE);
    return NULL;
}

/* ---------------------------------------------------------------- display listener (main loop) */

static void on_surface(void *opaque, struct display *d, pixman_image_t *surface)
{
    struct vnc *v = opaque;
    (void)d;
    g_mutex_lock(&v->lock);
    if (v->surface_pending && v->new_surface)
        pixman_image_unref(v->new_surface); /* the thread never saw it */
    v->new_surface = surface ? pixman_image_ref(surface) : NULL;
    v->surface_pending = true;
    pixman_region32_clear(&v->damage);
    g_mutex_unlock(&v->lock);
    wake_thread(v);
}

static void on_damage(void *opaque, struct display *d, const pixman_region32_t *region)
{
    struct vnc *v = opaque;
    (void)d;
    g_mutex_lock(&v->lock);
    pixman_region32_union(&v->damage, &v->damage, (pixman_region32_t *)region);
    g_mutex_unlock(&v->lock);
    wake_thread(v);
}

static void on_cursor(void *opaque, struct display *d, const struct display_cursor *cursor)
{
    struct vnc *v = opaque;
    (void)d;
    /* The callback also runs for every move. The position goes to libvncserver, which draws the cursor there
     * for clients without cursor encodings (a guest may move its cursor on its own); only a new shape,
     * hotspot or visibility is sent to clients as a new cursor. */
    bool visible = cursor->visible && cursor->image;
    g_mutex_lock(&v->lock);
    v->cursor_x = cursor->x;
    v->cursor_y = cursor->y;
    v->cursor_pos_pending = true;
    g_mutex_unlock(&v->lock);
    wake_thread(v);
    if (cursor->image == v->shown_cursor && cursor->hot_x == v->shown_hot_x &&
        cursor->hot_y == v->shown_hot_y && visible == v->shown_visible)
        return;
    if (v->shown_cursor)
        pixman_image_unref(v->shown_cursor);
    v->shown_cursor = cursor->image ? pixman_image_ref(cursor->image) : NULL;
    v->shown_hot_x = cursor->hot_x;
    v->shown_hot_y = cursor->hot_y;
    v->shown_visible = visible;
    g_mutex_lock(&v->lock);
    if (v->cursor_image)
        pixman_image_unref(v->cursor_image);
    v->cursor_image = cursor->image ? pixman_image_ref(cursor->image) : NULL;
    v->cursor_hot_x = cursor->hot_x;
    v->cursor_hot_y = cursor->hot_y;
    v->cursor_visible = visible;
    v->cursor_pending = true;
    g_mutex_unlock(&v->lock);
    wake_thread(v);
}

static const struct display_listener_ops listener_ops = {
    .surface = on_surface,
    .damage = on_damage,
    .cursor = on_cursor,
};

/* ---------------------------------------------------------------- listeners (main loop) */

static gboolean on_listen_ready(gint fd, GIOCondition cond, gpointer data)
{
    struct vnc *v = data;
    (void)cond;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd < 0)
        return G_SOURCE_CONTINUE;
    g_mutex_lock(&v->lock);
    bool full = v->clients->len + v->new_fds->len >= VNC_MAX_CLIENTS;
    if (!full) {
        struct vnc_pending_fd p = {.fd = cfd};
        g_array_append_val(v->new_fds, p);
    }
    g_mutex_unlock(&v->lock);
    if (!full)
        wake_thread(v);
    if (full) {
        log_message_ratelimited(&v->rl, LOG_LEVEL_WARN, "vnc: connection refused: already %d clients",
                                VNC_MAX_CLIENTS);
        close(cfd);
    }
    return G_SOURCE_CONTINUE;
}

/* A TCP listener on any address (listen_socket_open takes loopback only; --vnc checked the password rule). */
static int open_tcp(const char *host, unsigned port, struct vnc *v, char **error)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *res = NULL;
    char service[16];
    g_snprintf(service, sizeof(service), "%u", port);
    int r = getaddrinfo(host, service, &hints, &res);
    if (r) {
        *error = g_strdup_printf("%s: %s", host, gai_strerror(r));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
            err = errno;
            close(fd);
            fd = -1;
            continue;
        }
        if (v && !v->listen_family) {
            v->listen_family = ai->ai_family == AF_INET6 ? "ipv6" : "ipv4";
            getnameinfo(ai->ai_addr, ai->ai_addrlen, v->listen_host, sizeof(v->listen_host),
                        v->listen_service, sizeof(v->listen_service), NI_NUMERICHOST | NI_NUMERICSERV);
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        *error = g_strdup_printf("%s:%u: %s", host, port, g_strerror(err ? err : EADDRNOTAVAIL));
    return fd;
}

static bool open_listeners(struct vnc *v, char **error)
{
    if (v->spec.kind == VNC_UNIX) {
        struct listen_spec ls = {.kind = LISTEN_UNIX, .path = v->spec.path};
        v->listen_fd[0] = listen_socket_open(&ls, error);
        if (v->listen_fd[0] < 0)
            return false;
        v->listen_family = "unix";
        g_strlcpy(v->listen_host, v->spec.path, sizeof(v->listen_host));
        log_info("vnc: listening on unix:%s", v->spec.path);
    } else {
        v->listen_fd[0] = open_tcp(v->spec.host, vnc_spec_port(&v->spec), v, error);
        if (v->listen_fd[0] < 0)
            return false;
        log_info("vnc: listening on %s:%u (display %u)%s", v->spec.host, vnc_spec_port(&v->spec),
                 v->spec.display,
                 listen_host_is_loopback(v->spec.host) ? "" : "; reachable from other hosts");
        if (v->spec.websocket_port) {
            v->listen_fd[1] = open_tcp(v->spec.host, v->spec.websocket_port, NULL, error);
            if (v->listen_fd[1] < 0)
                return false;
            log_info("vnc: WebSocket clients (noVNC) on %s:%u", v->spec.host, v->spec.websocket_port);
        }
    }
    for (int i = 0; i < 2; i++)
        if (v->listen_fd[i] >= 0)
            v->listen_watch[i] = g_unix_fd_add(v->listen_fd[i], G_IO_IN, on_listen_ready, v);
    return true;
}

/* ---------------------------------------------------------------- start / stop */

struct vnc *vnc_start(const struct vnc_spec *spec, struct machine *m, struct input *in,
                      const char *keymap_layout, const char *desktop_name, char **error)
{
    static gsize once;
    if (g_once_init_enter(&once)) {
        rfbLog = vnc_rfb_log;
        rfbErr = vnc_rfb_err;
        /* Reads of a started message wait this long (a global in libvncserver; writes use the screen's). */
        rfbMaxClientWait = VNC_CLIENT_WAIT_MS;
        vnc_extkey_register();
        g_once_init_leave(&once, 1);
    }

    struct vnc *v = g_new0(struct vnc, 1);
    v->spec.kind = spec->kind;
    v->spec.host = g_strdup(spec->host);
    v->spec.path = g_strdup(spec->path);
    v->spec.display = spec->display;
    v->spec.password = spec->password;
    v->spec.websocket_port = spec->websocket_port;
    v->spec.insecure = spec->insecure;
    v->m = m;
    v->in = in;
    v->display = m ? display_find(m, NULL, 0) : NULL;
    v->desktop_name = g_strdup(desktop_name ? desktop_name : "deskvm");
    v->listen_fd[0] = v->listen_fd[1] = -1;
    v->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    v->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 5);
    v->rl_thread = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 5);
    g_mutex_init(&v->lock);
    pixman_region32_init(&v->damage);
    v->new_fds = g_array_new(FALSE, FALSE, sizeof(struct vnc_pending_fd));
    v->events = g_array_new(FALSE, FALSE, sizeof(struct vnc_event));
    v->garbage = g_ptr_array_new();
    v->clients = g_ptr_array_new();

    if (v->wake_fd < 0) {
        *error = g_strdup_printf("eventfd: %s", g_strerror(errno));
        vnc_stop(v);
        return NULL;
    }
    v->keymap = keymap_new(keymap_layout ? keymap_layout : KEYMAP_DEFAULT_LAYOUT, error);
    if (!v->keymap || !open_listeners(v, error)) {
        vnc_stop(v);
        return NULL;
    }

    v->shadow = shadow_new(VNC_BLANK_WIDTH, VNC_BLANK_HEIGHT, &v->shadow_bits);
    rfbScreenInfoPtr s = rfbGetScreen(NULL, NULL, VNC_BLANK_WIDTH, VNC_BLANK_HEIGHT, 8, 3, 4);
    if (!s) {
        *error = g_strdup("libvncserver could not set up a screen");
        vnc_stop(v);
        return NULL;
    }
    v->screen = s;
    s->screenData = v;
    s->frameBuffer = (char *)v->shadow_bits;
    s->desktopName = v->desktop_name;
    /* Our own listeners hand accepted sockets over; libvncserver listens on nothing itself. */
    s->autoPort = FALSE;
    s->port = 0;
    s->ipv6port = 0;
    s->httpPort = 0;
    s->alwaysShared = TRUE;
    s->neverShared = FALSE;
    s->maxClientWait = VNC_CLIENT_WAIT_MS;

    s->newClientHook = on_new_client;
    s->setDesktopSizeHook = on_desktop_size;
    if (spec->password) {
        /* Any non-NULL value makes libvncserver offer VNC authentication; check_password decides. */
        s->authPasswdData = v;
        s->passwordCheck = check_password;
    }
    vnc_input_init(v, s);
    set_server_format(s);
    rfbSetCursor(s, NULL);
    rfbInitServer(s);

    /* Subscribed for the server's whole life, clients or not: the shadow is then always current, so a new
     * client's first update is the real picture (the cost is the display's damage tracking while idle). */
    if (v->display)
        v->listener = display_add_listener(v->display, &listener_ops, v);
    v->thread = g_thread_new("vnc", vnc_thread, v);
    return v;
}

static void drop_garbage(struct vnc *v)
{
    for (guint i = 0; i < v->garbage->len; i++)
        pixman_image_unref(v->garbage->pdata[i]);
    g_ptr_array_set_size(v->garbage, 0);
}

void vnc_stop(struct vnc *v)
{
    if (!v)
        return;
    if (v->listener)
        display_remove_listener(v->display, v->listener);
    for (int i = 0; i < 2; i++) {
        if (v->listen_watch[i])
            g_source_remove(v->listen_watch[i]);
        if (v->listen_fd[i] >= 0)
            close(v->listen_fd[i]);
    }
    if (v->spec.kind == VNC_UNIX && v->listen_fd[0] >= 0)
        unlink(v->spec.path);
    if (v->thread) {
        g_atomic_int_set(&v->quit, 1);
        wake_thread(v);
        g_thread_join(v->thread);
    }
    if (v->wake_fd >= 0)
        close(v->wake_fd);
    if (v->screen)
        rfbScreenCleanup(v->screen);
    vnc_input_fini(v);
    for (guint i = 0; i < v->new_fds->len; i++)
        close(g_array_index(v->new_fds, struct vnc_pending_fd, i).fd);
    g_array_unref(v->new_fds);
    g_array_unref(v->events);
    drop_garbage(v);
    g_ptr_array_unref(v->garbage);
    g_ptr_array_unref(v->clients);
    if (v->new_surface)
        pixman_image_unref(v->new_surface);
    if (v->surface)
        pixman_image_unref(v->surface);
    if (v->source)
        pixman_image_unref(v->source);
    if (v->cursor_image)
        pixman_image_unref(v->cursor_image);
    if (v->shown_cursor)
        pixman_image_unref(v->shown_cursor);
    if (v->shadow)
        pixman_image_unref(v->shadow);
    g_free(v->shadow_bits);
    pixman_region32_fini(&v->damage);
    g_mutex_clear(&v->lock);
    memset(v->password, 0, sizeof(v->password));
    g_free(v->desktop_name);
    vnc_spec_clear(&v->spec);
    g_free(v);
}

void vnc_query(struct vnc *v, struct vnc_server_info *out)
{
    memset(out, 0, sizeof(*out));
    g_strlcpy(out->host, v->listen_host, sizeof(out->host));
    g_strlcpy(out->service, v->listen_service, sizeof(out->service));
    out->family = v->listen_family ? v->listen_family : "unknown";
    out->auth = v->spec.password ? "vnc" : "none";
    g_mutex_lock(&v->lock);
    for (guint i = 0; i < v->clients->len && out->nclients < VNC_MAX_CLIENTS; i++) {
        struct vnc_client *vc = v->clients->pdata[i];
        out->clients[out->nclients++] = vc->info;
    }
    g_mutex_unlock(&v->lock);
}
