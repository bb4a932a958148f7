/* QMP commands on the machine's displays: screendump (PNG or PPM of the current surface, written atomically).
 */
#ifndef DESKVM_QMP_DISPLAY_H
#define DESKVM_QMP_DISPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "qmp_dispatch.h"

struct machine;
struct qmp_display;

enum screendump_format { SCREENDUMP_PNG, SCREENDUMP_PPM };

/* Registers the commands in d; m may be NULL (no machine: there is no display to dump). */
struct qmp_display *qmp_display_attach(struct qmp_dispatcher *d, struct machine *m);
void qmp_display_detach(struct qmp_display *q);

/* Writes width x height pixels of 24-bit RGB (rows of width * 3 bytes) to path through a temporary file in
 * the same directory renamed into place, so readers never see a partial image. False with *error set on
 * failure. */
bool screendump_write_rgb(const char *path, enum screendump_format format, const uint8_t *rgb, unsigned width,
                          unsigned height, GError **error);

#endif
