/* Guest physical memory: RAM laid out around the 32-bit PCI hole, and the one bounds-checked API through which
 * every device reaches it. An address range that is not wholly inside one RAM slot is refused (-EFAULT); there is
 * no path from this API into MMIO, so device DMA can never re-enter a device. */
#ifndef DESKVM_GUEST_MEMORY_H
#define DESKVM_GUEST_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PC memory map (below 4 GiB): RAM from 0 up to at most GUEST_MEMORY_LOW_LIMIT, then PCI ECAM, the 32-bit PCI
 * MMIO window and the platform devices; RAM beyond the low limit continues at 4 GiB. */
#define GUEST_MEMORY_LOW_LIMIT 0xB0000000ULL /* 2.75 GiB */
#define GUEST_MEMORY_HIGH_BASE 0x100000000ULL
#define GUEST_PAGE_SIZE 4096ULL

struct guest_ram_slot {
    uint64_t gpa;  /* guest physical start */
    uint64_t size; /* bytes, a multiple of GUEST_PAGE_SIZE */
    uint8_t *host; /* where it lives in deskvm */
    unsigned long *dirty; /* one bit per page while dirty logging is on, else NULL */
    bool readonly;        /* ROM: the guest and devices can read it, nothing writes it */
    bool device;          /* device memory (a RAM-like BAR, a framebuffer): its device maps and moves it */
    bool unmapped;        /* a device slot mapped nowhere now: no address reaches it, gpa is meaningless */
    bool logging;         /* dirty logging for this slot alone (guest_memory_slot_dirty_log_start) */
};

#define GUEST_MEMORY_MAX_SLOTS 8
/* Where an unmapped device slot sits: above every physical address, so range checks never match it. */
#define GUEST_MEMORY_UNMAPPED_GPA 0xFFFF000000000000ULL

/* What the CPU backend hears about device slots. Called with the machine lock held, on the thread that
 * changed the map (a vCPU programming a BAR, the main loop resetting the machine). */
struct guest_memory_listener {
    /* Slot index was mapped, moved or unmapped, or its dirty logging was switched: update the backend's view
     * (KVM memory slots, the software CPU's TLBs). */
    void (*slot_changed)(void *opaque, unsigned index);
    /* Before the dirty bits of slot index are read: merge the backend's own log of guest writes into
     * slot->dirty (KVM_GET_DIRTY_LOG). NULL when every guest write is marked by this module (emu). */
    void (*sync_dirty)(void *opaque, unsigned index);
};

struct guest_memory {
    uint8_t *base; /* one anonymous mapping holding all slots */
    size_t mapped;
    uint64_t ram_size;
    unsigned nslots;
    struct guest_ram_slot slots[GUEST_MEMORY_MAX_SLOTS];
    bool dirty_logging;
    /* If set, told about every RAM range handed out for writing (guest_mem_map_write and everything built on
     * it), before the caller writes: the software CPU uses it to notice device writes to pages it decoded
     * code from. Runs on the writer's thread; must be cheap and thread-safe. */
    void (*write_observer)(void *opaque, uint64_t gpa, uint64_t len);
    void *write_observer_opaque;
    const struct guest_memory_listener *listener; /* the CPU backend, or NULL */
    void *listener_opaque;
    unsigned slot_logging; /* slots with per-slot dirty logging on */
};

/* Maps ram_size bytes of guest RAM (a multiple of the page size). Returns 0 or a negative errno. */
int guest_memory_init(struct guest_memory *gm, uint64_t ram_size);
void guest_memory_destroy(struct guest_memory *gm);
/* Adds a read-only slot (firmware ROM) holding a copy of data, padded with zeros to whole pages. It must not
 * overlap RAM or another ROM. Returns 0, -EINVAL, -EEXIST, -ENOSPC or -ENOMEM. */
int guest_memory_add_rom(struct guest_memory *gm, uint64_t gpa, const void *data, size_t size);

/* Device memory: size bytes (a multiple of the page size) of zeroed, RAM-like memory in a slot of its own
 * that starts unmapped. The memory lives as long as gm; *host points at it. Returns the slot index, -EINVAL,
 * -ENOSPC or -ENOMEM. */
int guest_memory_add_device(struct guest_memory *gm, uint64_t size, uint8_t **host);
/* Maps (or moves) device slot index at gpa (page aligned, not overlapping another mapped slot), or unmaps it;
 * the listener hears about it. map returns 0, -EINVAL or -EEXIST (then the slot is left unmapped). */
int guest_memory_map_device(struct guest_memory *gm, unsigned index, uint64_t gpa);
void guest_memory_unmap_device(struct guest_memory *gm, unsigned index);
/* Dirty logging of one writable slot, independent of the global log (the global stop leaves it on). The
 * software CPU sends writes to a logged slot through the marking path; KVM logs them itself (sync_dirty). */
int guest_memory_slot_dirty_log_start(struct guest_memory *gm, unsigned index);
void guest_memory_slot_dirty_log_stop(struct guest_memory *gm, unsigned index);
/* Calls fn with the slot offset of each dirty page in [offset, offset+len) of slot index; clears its bit. */
void guest_memory_slot_dirty_collect(struct guest_memory *gm, unsigned index, uint64_t offset, uint64_t len,
                                     void (*fn)(void *opaque, uint64_t page_offset), void *opaque);

/* The slot holding [gpa, gpa+len) entirely, or NULL (also for len 0 or an overflowing range). */
const struct guest_ram_slot *guest_memory_find(const struct guest_memory *gm, uint64_t gpa, uint64_t len);
bool guest_memory_is_ram(const struct guest_memory *gm, uint64_t gpa, uint64_t len);

/* A host pointer to [gpa, gpa+len) if it is all RAM (or ROM, for map_read), else NULL. The pointer stays valid for the machine's lifetime
 * (RAM is never remapped), but callers re-validate guest-supplied addresses on every use. map_write marks the pages
 * dirty. */
const void *guest_mem_map_read(struct guest_memory *gm, uint64_t gpa, uint64_t len);
void *guest_mem_map_write(struct guest_memory *gm, uint64_t gpa, uint64_t len);
/* After writing through a guest_mem_map_write pointer (zero-copy DMA): tells the write observer again, now
 * that the bytes are in place (guest_mem_write and guest_mem_fill do this themselves). */
void guest_mem_write_done(struct guest_memory *gm, uint64_t gpa, uint64_t len);

/* Copies; 0 on success, -EFAULT if any byte is outside RAM (then nothing is copied). Reads also see ROM; writes
 * to ROM fail with -EFAULT. */
int guest_mem_read(struct guest_memory *gm, uint64_t gpa, void *buf, size_t len);
int guest_mem_write(struct guest_memory *gm, uint64_t gpa, const void *buf, size_t len);
int guest_mem_fill(struct guest_memory *gm, uint64_t gpa, int byte, size_t len);

/* Little-endian scalar access (guest memory is little-endian). 0 or -EFAULT. */
int guest_mem_read_u8(struct guest_memory *gm, uint64_t gpa, uint8_t *v);
int guest_mem_read_u16(struct guest_memory *gm, uint64_t gpa, uint16_t *v);
int guest_mem_read_u32(struct guest_memory *gm, uint64_t gpa, uint32_t *v);
int guest_mem_read_u64(struct guest_memory *gm, uint64_t gpa, uint64_t *v);
int guest_mem_write_u8(struct guest_memory *gm, uint64_t gpa, uint8_t v);
int guest_mem_write_u16(struct guest_memory *gm, uint64_t gpa, uint16_t v);
int guest_mem_write_u32(struct guest_memory *gm, uint64_t gpa, uint32_t v);
int guest_mem_write_u64(struct guest_memory *gm, uint64_t gpa, uint64_t v);

/* Dirty logging of writes made through this API (KVM keeps its own log for vCPU writes). */
int guest_memory_dirty_log_start(struct guest_memory *gm);
void guest_memory_dirty_log_stop(struct guest_memory *gm);
/* Calls fn for each dirty page in [gpa, gpa+len) and clears its bit. */
void guest_memory_dirty_log_collect(struct guest_memory *gm, uint64_t gpa, uint64_t len,
                                    void (*fn)(void *opaque, uint64_t page_gpa), void *opaque);

/* Little-endian helpers for device register and descriptor parsing. */
static inline uint16_t le16_load(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] | b[1] << 8);
}
static inline uint32_t le32_load(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline uint64_t le64_load(const void *p)
{
    return (uint64_t)le32_load(p) | (uint64_t)le32_load((const uint8_t *)p + 4) << 32;
}
static inline void le16_store(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}
static inline void le32_store(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}
static inline void le64_store(void *p, uint64_t v)
{
    le32_store(p, (uint32_t)v);
    le32_store((uint8_t *)p + 4, (uint32_t)(v >> 32));
}
/* size (1..8) little-endian bytes at p as a number: a device's register or config-space image read at any
 * offset and width (the caller has checked both against the image). */
static inline uint64_t le_load_n(const void *p, unsigned size)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

#endif
