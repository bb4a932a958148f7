/* EDID blocks for display devices: a 128-byte VESA E-EDID 1.4 whose preferred mode is the device's
 * --resolution (or the size a client asked for), shared by bochs-display (register BAR) and virtio-gpu
 * (GET_EDID). */
#ifndef DESKVM_EDID_H
#define DESKVM_EDID_H

#include <stdint.h>

#define EDID_LENGTH 128

/* Sizes an EDID detailed timing can describe (12-bit fields), within what a desktop needs. */
#define EDID_MODE_MIN_WIDTH 320
#define EDID_MODE_MIN_HEIGHT 200
#define EDID_MODE_MAX 4095

/* A 128-byte EDID 1.4 whose preferred (first detailed) timing is width x height (within the limits above). */
void edid_build(uint8_t edid[EDID_LENGTH], unsigned width, unsigned height);

#endif
