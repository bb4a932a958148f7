/* qxl: the QXL paravirtual display (PCI 1b36:0100, the qxl-vga QEMU and Linux's `qxl` DRM driver know) whose
 * command rings spice-server's QXL worker consumes directly. The device owns two RAM-like BARs (BAR0 "RAM"
 * with the ring header at its end, BAR1 "VRAM" for off-screen surfaces), a ROM BAR (QXLRom and the mode list)
 * and an I/O BAR of notification ports. Everything the guest writes is checked here before spice-server sees
 * it: its parser aborts the process on some values (gpu/qxl.c and gpu/qxl_check.c list which, and the check
 * that keeps each away).
 *
 * Threads: I/O ports run on vCPU threads and display hooks on the main loop, both holding the machine lock;
 * spice-server's worker thread calls the QXLInterface callbacks holding nothing. State they share sits under
 * qxl_device.lock (taken after the machine lock, never the other way round), the worker never takes the
 * machine lock, and nothing calls into spice-server holding qxl_device.lock. Interrupts the worker raises
 * reach INTx through the main loop. */
#ifndef DESKVM_QXL_H
#define DESKVM_QXL_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <pixman.h>
#include <spice.h>

#include "display.h"
#include "log.h"
#include "machine.h"
#include "pci.h"

#define QXL_PCI_SLOT 2 /* 00:02.0, where PCs have their VGA */
#define QXL_PCI_REVISION 5
#define QXL_PCI_CLASS 0x030000 /* VGA-compatible display controller (qxl-vga) */

#define QXL_BAR_RAM 0
#define QXL_BAR_VRAM 1
#define QXL_BAR_ROM 2
#define QXL_BAR_IO 3

#define QXL_RAM_SIZE (64u << 20)
#define QXL_VRAM_SIZE (64u << 20)
#define QXL_ROM_SIZE 8192u
#define QXL_IO_SIZE 32u
/* The first part of BAR0 is Linux's "VRAM" TTM domain (primary surface, commands, images). */
#define QXL_SURFACE0_AREA_SIZE (32u << 20)
#define QXL_N_SURFACES 1024u

/* Memory slots. The guest registers slot ids QXL_SLOT_FIRST..QXL_SLOT_LAST in group 1. spice-server is told
 * there are 2^QXL_SLOT_ID_BITS slots and no generation bits: then no QXLPHYSICAL the guest can write makes
 * its slot-id or generation check fail, which would abort (spice_critical); an unregistered slot just fails
 * the range check. */
#define QXL_SLOT_ID_BITS 8
#define QXL_SLOT_GEN_BITS 0
#define QXL_SPICE_SLOTS (1u << QXL_SLOT_ID_BITS)
#define QXL_GUEST_SLOTS 8
#define QXL_SLOT_FIRST 1
#define QXL_SLOT_LAST 7
#define QXL_GROUP_HOST 0
#define QXL_GROUP_GUEST 1
#define QXL_PHYS_OFFSET_MASK ((1ull << (64 - QXL_SLOT_ID_BITS - QXL_SLOT_GEN_BITS)) - 1)

/* Largest primary surface accepted (either side). */
#define QXL_PRIMARY_MAX 16384u
/* Heads the ROM's client monitors config can hold. */
#define QXL_MAX_HEADS 64u

/* What a guest async I/O does to the device's view of spice's surfaces when it completes. */
#define QXL_ASYNC_EFFECT_NONE 0
#define QXL_ASYNC_EFFECT_PRIMARY_CREATED 1
#define QXL_ASYNC_EFFECT_ALL_DESTROYED 2

/* Cookies of spice's async operations: the kind in the top byte, then a sequence number so a completion that
 * arrives after a reset cannot finish the next operation, and the I/O port in the low byte. */
#define QXL_COOKIE_IO (1ull << 56)
#define QXL_COOKIE_RENDER (2ull << 56)
#define QXL_COOKIE_KIND_MASK (0xffull << 56)

struct qxl_slot {
    bool active;
    unsigned bar;    /* QXL_BAR_RAM or QXL_BAR_VRAM */
    uint64_t offset; /* of the slot's start in the BAR */
    uint64_t size;
};

/* The primary surface as the device validated it (native mode). */
struct qxl_primary {
    bool active;
    unsigned width, height;
    int32_t stride;
    uint32_t format;
    uint8_t *line0; /* host address of the top row (first row in memory when stride > 0) */
};

struct qxl_device {
    struct pci_device pci;
    struct machine *m;
    struct display display;
    uint8_t *ram, *vram; /* guest-memory device slots, mapped where BAR0 / BAR1 decode */
    unsigned ram_slot, vram_slot;
    uint32_t ram_header_offset;
    QXLRam *hdr; /* = ram + ram_header_offset, shared with the guest: read it as hostile */

    /* Machine lock. */
    struct qxl_slot slots[QXL_GUEST_SLOTS];
    struct qxl_primary primary;
    pixman_image_t *shadow; /* what the display publishes: a copy of the primary (x8r8g8b8, top-down) */
    bool shadow_full;       /* copy the whole primary at the next collect */
    uint64_t io_seq;        /* numbers async I/O cookies */
    unsigned guest_bugs;    /* count of refused guest requests (tests read it) */
    struct log_ratelimit guest_rl;

    /* Shared with spice's worker: under lock. */
    GMutex lock;
    uint8_t rom[QXL_ROM_SIZE];
    bool async_busy;                /* a guest async I/O is in flight */
    uint32_t async_io;              /* its port */
    uint64_t async_cookie;          /* and its cookie */
    QXLReleaseInfo *last_release;   /* tail of the release chain being built in the producer slot */
    unsigned free_resources;        /* items in that chain */
    pixman_region32_t render_dirty; /* primary rectangles spice rendered since the last collect */
    bool render_busy;               /* an update_area_async of ours is in flight */
    GSource *main_work;             /* scheduled main-loop work (INTx update, render collect), or NULL */
    /* The surfaces spice-server has, as far as the device can tell (surface commands it admitted that spice
     * accepts, the primary once spice created it): a drawable may only read from these. */
    uint64_t live_surfaces[QXL_N_SURFACES / 64];
    uint32_t surface_size[QXL_N_SURFACES][2]; /* width, height of each (0: the primary's, when it exists) */
    bool primary_in_spice;
    int async_effect; /* what the in-flight async I/O changes once it completes (QXL_ASYNC_EFFECT_*) */
    struct {          /* the guest's hardware cursor as the cursor ring last set it, for the display core */
        bool shape_new, pos_new;
        uint32_t *pixels; /* width * height ARGB, or NULL: no (supported) shape */
        unsigned width, height;
        int hot_x, hot_y, x, y;
        bool visible;
    } cursor;

    /* SPICE (main loop). */
    QXLInstance qxl; /* qxl.base.sif = the interface; container_of gives the device */
    SpiceServer *server;
    bool worker_attached;
    guint render_timer;
};

extern const struct machine_device qxl_device;

/* ---- qxl.c, for qxl_spice.c (and tests) */

/* Counts and logs (rate-limited) a refused guest request. */
void qxl_guest_bug(struct qxl_device *q, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Raises interrupt bits in the RAM header's int_pending and brings INTx in line. from_worker: the caller
 * holds no lock (spice's worker or the main loop without the machine lock): INTx is updated from the main
 * loop. */
void qxl_raise(struct qxl_device *q, uint32_t bits, bool from_worker);
/* Runs INTx update and render collection on the main loop soon (any thread, coalesced). */
void qxl_schedule_main_work(struct qxl_device *q);
/* Whether the guest runs (the virtual clock does): spice-server's worker only then accepts update_area. */
bool qxl_vm_running(struct qxl_device *q);
/* INTx = pending & mask (machine lock). */
void qxl_update_irq(struct qxl_device *q);
/* Takes the next entry of the command (cursor = false) or cursor ring and checks it for spice-server: the
 * command type, its data pointer in a registered slot, surface ids and formats of surface commands. Entries
 * that fail are dropped (logged, counted); returns false when the ring is empty. Any thread. */
bool qxl_ring_pop(struct qxl_device *q, bool cursor, QXLCommandExt *ext);
/* Whether the ring is empty; if so the guest is asked to notify (notify_on_prod). */
bool qxl_ring_wait(struct qxl_device *q, bool cursor);
/* Puts a released resource on the release ring (its chain, then the ring when a bunch is ready or flush). */
void qxl_release(struct qxl_device *q, QXLReleaseInfo *info, bool flush);
/* The host address of [phys, phys + len) if it is inside a registered slot, else NULL. */
void *qxl_phys_to_host(struct qxl_device *q, QXLPHYSICAL phys, uint64_t len);
/* A guest async I/O finished (cookie as issued); raises QXL_INTERRUPT_IO_CMD. Any thread. */
void qxl_async_done(struct qxl_device *q, uint64_t cookie, bool from_worker);
/* Writes heads (x, y, w, h each) into the ROM's client monitors config with its CRC and raises
 * QXL_INTERRUPT_CLIENT_MONITORS_CONFIG. */
void qxl_set_client_monitors(struct qxl_device *q, const uint32_t (*heads)[4], unsigned n, bool from_worker);
/* CRC the guest checks the ROM monitors config with. */
uint32_t qxl_monitors_crc(const void *p, size_t len);

/* ---- qxl_check.c */

/* Whether spice-server may see this ring entry (see qxl_check.c). */
bool qxl_command_acceptable(struct qxl_device *q, bool cursor, const QXLCommand *cmd);
bool qxl_surface_format_valid(uint32_t format);
/* spice-server has no surfaces any more (destroy all, reset) / its primary came or went (q->lock not held).
 */
void qxl_surfaces_forget(struct qxl_device *q);
void qxl_set_primary_in_spice(struct qxl_device *q, bool in);
/* The size of the primary the device is about to have spice create. */
void qxl_set_primary_size(struct qxl_device *q, uint32_t width, uint32_t height);

/* ---- qxl_spice.c */

/* The QXL interface spice-server calls. */
extern const QXLInterface qxl_spice_interface;
bool qxl_spice_attach(struct display *d, void *spice_server, char **error);
void qxl_spice_detach(struct display *d);
/* Copies what spice rendered into the shadow surface and reports damage; starts the next render when SPICE
 * runs (machine lock). */
void qxl_render_collect(struct qxl_device *q);
void qxl_render_kick(struct qxl_device *q);
/* A cursor command the worker takes (any thread): remembers shape / position for the display core. */
void qxl_cursor_note(struct qxl_device *q, QXLPHYSICAL cmd);
/* Hands the remembered cursor to the display core (machine lock). */
void qxl_cursor_publish(struct qxl_device *q);
/* Primary surface changes (machine lock): a new shadow or none. */
void qxl_render_primary_changed(struct qxl_device *q);
bool qxl_request_resize(struct display *d, unsigned width, unsigned height);

#endif
