/* screendump: one frame copy under the machine lock, then conversion and encoding on the main loop. */
#include "qmp_display.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "display.h"
#include "machine.h"

/* What a display without a surface (the guest has not set a mode) dumps as: black, like an unlit screen. */
#define SCREENDUMP_OFF_WIDTH 640
#define SCREENDUMP_OFF_HEIGHT 480

struct qmp_display {
    struct machine *m;
};

static bool write_ppm(FILE *f, const uint8_t *rgb, unsigned w, unsigned h)
{
    return fprintf(f, "P6\n%u %u\n255\n", w, h) > 0 && fwrite(rgb, 3 * (size_t)w, h, f) == h;
}

static bool write_png(FILE *f, const uint8_t *rgb, unsigned w, unsigned h, GError **error)
{
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    img.width = w;
    img.height = h;
    img.format = PNG_FORMAT_RGB;
    if (!png_image_write_to_stdio(&img, f, 0, rgb, (png_int_32)(3 * w), NULL)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "PNG encoding failed: %s", img.message);
        png_image_free(&img);
        return false;
    }
    return true;
}

bool screendump_write_rgb(const char *path, enum screendump_format format, const uint8_t *rgb, unsigned w,
                          unsigned h, GError **error)
{
    g_autofree char *tmp = g_strdup_printf("%s.XXXXXX", path);
    int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "failed to open file '%s': %s", path,
                    g_strerror(errno));
        return false;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "failed to open file '%s': %s", path, g_strerror(e));
        return false;
    }
    GError *err = NULL;
    bool ok = format == SCREENDUMP_PNG ? write_png(f, rgb, w, h, &err) : write_ppm(f, rgb, w, h);
    int e = errno;
    if (fflush(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (ok && rename(tmp, path) < 0) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        if (err)
            g_propagate_error(error, err);
        else
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "failed to write file '%s': %s", path,
                        g_strerror(e));
    }
    return ok;
}

/* The frame, converted to x8r8g8b8 in memory of our own, or NULL while the display is off. The copy is the
 * only work done holding the machine lock. */
static pixman_image_t *copy_frame(struct machine *m, struct display *d)
{
    pixman_image_t *copy = NULL;
    machine_lock(m);
    pixman_image_t *s = display_get_surface(d);
    if (s) {
        int w = pixman_image_get_width(s), h = pixman_image_get_height(s);
        copy = pixman_image_create_bits(PIXMAN_x8r8g8b8, w, h, NULL, 0);
        if (copy)
            pixman_image_composite32(PIXMAN_OP_SRC, s, NULL, copy, 0, 0, 0, 0, 0, 0, w, h);
        pixman_image_unref(s);
    }
    machine_unlock(m);
    return copy;
}

static JsonNode *cmd_screendump(void *opaque, struct qmp_session *session, JsonObject *args, GError **error)
{
    struct qmp_display *q = opaque;
    const char *filename = json_object_get_string_member(args, "filename");
    const char *device =
        json_object_has_member(args, "device") ? json_object_get_string_member(args, "device") : NULL;
    bool has_head = json_object_has_member(args, "head");
    int64_t head = has_head ? json_object_get_int_member(args, "head") : 0;
    enum screendump_format format = SCREENDUMP_PNG;
    if (json_object_has_member(args, "format")) {
        const char *f = json_object_get_string_member(args, "format");
        if (!strcmp(f, "ppm"))
            format = SCREENDUMP_PPM;
        else if (strcmp(f, "png")) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter 'format' does not accept value '%s'",
                        f);
            return NULL;
        }
    }
    if (has_head && !device) {
        g_set_error_literal(error, QMP_ERROR, QMP_ERROR_GENERIC,
                            "'head' must be specified together with 'device'");
        return NULL;
    }
    if (head < 0 || head > UINT32_MAX) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC, "Parameter 'head' expects uint32");
        return NULL;
    }
    struct display *d = NULL;
    if (q->m) {
        machine_lock(q->m);
        d = display_find(q->m, device, (unsigned)head);
        bool known = device && (display_find(q->m, device, 0) || d);
        machine_unlock(q->m);
        if (device && !d && known) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC,
                        "Device %s (head %d) is not bound to a QemuConsole", device, (int)head);
            return NULL;
        }
    }
    if (!d) {
        if (device)
            g_set_error(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND, "Device '%s' not found", device);
        else
            g_set_error_literal(error, QMP_ERROR, QMP_ERROR_GENERIC,
                                "There is no console to take a screendump from.");
        return NULL;
    }

    pixman_image_t *frame = copy_frame(q->m, d);
    unsigned w = frame ? (unsigned)pixman_image_get_width(frame) : SCREENDUMP_OFF_WIDTH;
    unsigned h = frame ? (unsigned)pixman_image_get_height(frame) : SCREENDUMP_OFF_HEIGHT;
    g_autofree uint8_t *rgb = g_malloc0((size_t)w * h * 3);
    if (frame) {
        const uint32_t *px = pixman_image_get_data(frame);
        size_t words = (size_t)pixman_image_get_stride(frame) / 4;
        for (unsigned y = 0; y < h; y++) {
            uint8_t *o = rgb + (size_t)y * w * 3;
            for (unsigned x = 0; x < w; x++, o += 3) {
                uint32_t p = px[y * words + x];
                o[0] = (uint8_t)(p >> 16), o[1] = (uint8_t)(p >> 8), o[2] = (uint8_t)p;
            }
        }
        pixman_image_unref(frame);
    }
    screendump_write_rgb(filename, format, rgb, w, h, error);
    return NULL;
}

static const struct qmp_arg screendump_args[] = {
    {"filename", QMP_ARG_STRING, false},
    {"device", QMP_ARG_STRING, true},
    {"head", QMP_ARG_INT, true},
    {"format", QMP_ARG_STRING, true},
    {NULL},
};

static const struct qmp_command_def display_commands[] = {
    {"screendump", cmd_screendump, screendump_args},
};

struct qmp_display *qmp_display_attach(struct qmp_dispatcher *d, struct machine *m)
{
    struct qmp_display *q = g_new0(struct qmp_display, 1);
    q->m = m;
    qmp_dispatcher_register_all(d, display_commands, G_N_ELEMENTS(display_commands), q);
    return q;
}

void qmp_display_detach(struct qmp_display *q)
{
    g_free(q);
}
