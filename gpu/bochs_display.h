/* bochs-display: the PCI display QEMU calls bochs-display (1234:1111) that Linux's `bochs` DRM driver drives:
 * a linear framebuffer BAR backed by guest-memory device RAM, the Bochs DISPI registers and an EDID block. */
#ifndef DESKVM_BOCHS_DISPLAY_H
#define DESKVM_BOCHS_DISPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "display.h"
#include "edid.h"
#include "machine.h"
#include "pci.h"

#define BOCHS_DISPLAY_VENDOR_ID 0x1234
#define BOCHS_DISPLAY_DEVICE_ID 0x1111
#define BOCHS_DISPLAY_CLASS 0x038000 /* display controller, other */
#define BOCHS_DISPLAY_SLOT 2         /* 00:02.0, where PCs have their VGA */

/* BAR0: the framebuffer (32-bit prefetchable memory); BAR2: the registers. */
#define BOCHS_BAR_VRAM 0
#define BOCHS_BAR_MMIO 2
#define BOCHS_VRAM_MIN (16u << 20)
#define BOCHS_VRAM_MAX (256u << 20)
#define BOCHS_MMIO_SIZE 0x1000

/* Register BAR layout (QEMU docs/specs/standard-vga.rst, the PCI variants). */
#define BOCHS_MMIO_EDID 0x000 /* EDID blob, up to 0x400 bytes */
#define BOCHS_MMIO_EDID_SIZE 0x400
#define BOCHS_MMIO_VGA 0x400 /* VGA ports 0x3c0-0x3df on a VGA; bochs-display has none: ignored */
#define BOCHS_MMIO_VGA_SIZE 0x20
#define BOCHS_MMIO_DISPI 0x500          /* DISPI register i at 0x500 + 2 * i, 16 bits each */
#define BOCHS_MMIO_QEXT 0x600           /* QEMU extended registers */
#define BOCHS_QEXT_REG_SIZE 0x600       /* 32-bit, read-only: size of the extended block */
#define BOCHS_QEXT_REG_ENDIANNESS 0x604 /* 32-bit: framebuffer byte order */
#define BOCHS_QEXT_SIZE 8
#define BOCHS_QEXT_LITTLE_ENDIAN 0x1e1e1e1e
#define BOCHS_QEXT_BIG_ENDIAN 0xbebebebe

/* Bochs VBE DISPI interface (Bochs vga.h; QEMU bochs-vbe.h). */
#define VBE_DISPI_INDEX_ID 0x0
#define VBE_DISPI_INDEX_XRES 0x1
#define VBE_DISPI_INDEX_YRES 0x2
#define VBE_DISPI_INDEX_BPP 0x3
#define VBE_DISPI_INDEX_ENABLE 0x4
#define VBE_DISPI_INDEX_BANK 0x5
#define VBE_DISPI_INDEX_VIRT_WIDTH 0x6
#define VBE_DISPI_INDEX_VIRT_HEIGHT 0x7
#define VBE_DISPI_INDEX_X_OFFSET 0x8
#define VBE_DISPI_INDEX_Y_OFFSET 0x9
#define VBE_DISPI_INDEX_VIDEO_MEMORY_64K 0xa
#define VBE_DISPI_INDEX_NB 0xb

#define VBE_DISPI_ID0 0xB0C0
#define VBE_DISPI_ID5 0xB0C5
#define VBE_DISPI_DISABLED 0x00
#define VBE_DISPI_ENABLED 0x01
#define VBE_DISPI_GETCAPS 0x02
#define VBE_DISPI_8BIT_DAC 0x20
#define VBE_DISPI_LFB_ENABLED 0x40
#define VBE_DISPI_NOCLEARMEM 0x80
/* What GETCAPS reports. */
#define VBE_DISPI_MAX_XRES 16000
#define VBE_DISPI_MAX_YRES 12000
#define VBE_DISPI_MAX_BPP 32

/* Modes the device shows: 16 (r5g6b5) or 32 (x8r8g8b8) bits per pixel, at least this big. */
#define BOCHS_MODE_MIN 64

/* --resolution limits: an EDID detailed timing holds 12-bit sizes. */
#define BOCHS_RES_MIN_WIDTH EDID_MODE_MIN_WIDTH
#define BOCHS_RES_MIN_HEIGHT EDID_MODE_MIN_HEIGHT
#define BOCHS_RES_MAX EDID_MODE_MAX

struct bochs_mode {
    pixman_format_code_t format; /* 0: no valid mode (display off) */
    unsigned width, height, bytepp;
    uint32_t stride;
    uint64_t offset; /* of pixel (0, 0) in VRAM */
};

struct bochs_display {
    struct pci_device pci;
    struct machine *m;
    struct display display;
    uint8_t *vram; /* guest-memory device slot vram_slot, mapped where BAR0 decodes */
    uint64_t vram_size;
    unsigned vram_slot;
    unsigned width, height; /* the preferred mode (--resolution) */
    uint16_t dispi[VBE_DISPI_INDEX_NB];
    uint32_t endianness; /* BOCHS_QEXT_*_ENDIAN */
    uint8_t edid[EDID_LENGTH];
    struct bochs_mode mode; /* what the surface shows */
    bool tracking;          /* someone listens: VRAM writes are dirty-logged */
    bool full_damage;       /* report the whole surface at the next refresh */
};

/* Adds the display at BOCHS_DISPLAY_SLOT with m->config.display_width x display_height as preferred mode;
 * needs pci_host_device listed before it. */
extern const struct machine_device bochs_display_device;

/* Whether width x height is a preferred mode the device can offer (--resolution checks this). */
bool bochs_display_resolution_valid(unsigned width, unsigned height, char **why);
/* The VRAM for a preferred mode: a power of two of at least BOCHS_VRAM_MIN holding two frames at 32 bpp (the
 * Linux driver refuses modes that do not fit twice). */
uint64_t bochs_display_vram_size(unsigned width, unsigned height);
/* A 128-byte EDID 1.4 whose preferred (first detailed) timing is width x height (gpu/edid.h). */
static inline void bochs_display_build_edid(uint8_t edid[EDID_LENGTH], unsigned width, unsigned height)
{
    edid_build(edid, width, height);
}

#endif
