/* Guest RAM: one anonymous mapping split into a low and a high slot around the PCI hole. */
#include "guest_memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <glib.h>

#define BITS_PER_LONG (8 * sizeof(unsigned long))

int guest_memory_init(struct guest_memory *gm, uint64_t ram_size)
{
    memset(gm, 0, sizeof(*gm));
    if (!ram_size || ram_size % GUEST_PAGE_SIZE)
        return -EINVAL;
    void *p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    /* Transparent huge pages help both KVM (fewer EPT entries) and the software CPU (fewer TLB misses). */
    madvise(p, ram_size, MADV_HUGEPAGE);
    gm->base = p;
    gm->mapped = ram_size;
    gm->ram_size = ram_size;
    uint64_t low = MIN(ram_size, GUEST_MEMORY_LOW_LIMIT);
    gm->slots[0] = (struct guest_ram_slot){.gpa = 0, .size = low, .host = gm->base};
    gm->nslots = 1;
    if (ram_size > low) {
        gm->slots[1] = (struct guest_ram_slot){
            .gpa = GUEST_MEMORY_HIGH_BASE, .size = ram_size - low, .host = gm->base + low};
        gm->nslots = 2;
    }
    return 0;
}

int guest_memory_add_rom(struct guest_memory *gm, uint64_t gpa, const void *data, size_t size)
{
    uint64_t len = (size + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1);
    if (!size || gpa % GUEST_PAGE_SIZE || gpa + len - 1 < gpa)
        return -EINVAL;
    if (gm->nslots == GUEST_MEMORY_MAX_SLOTS)
        return -ENOSPC;
    for (unsigned i = 0; i < gm->nslots; i++) {
        const struct guest_ram_slot *s = &gm->slots[i];
        if (gpa < s->gpa + s->size && s->gpa < gpa + len)
            return -EEXIST;
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    memcpy(p, data, size);
    gm->slots[gm->nslots++] = (struct guest_ram_slot){.gpa = gpa, .size = len, .host = p, .readonly = true};
    return 0;
}

void guest_memory_destroy(struct guest_memory *gm)
{
    for (unsigned i = 0; i < gm->nslots; i++)
        g_clear_pointer(&gm->slots[i].dirty, g_free);
    for (unsigned i = 0; i < gm->nslots; i++)
        if (gm->slots[i].readonly || gm->slots[i].device)
            munmap(gm->slots[i].host, gm->slots[i].size);
    if (gm->base)
        munmap(gm->base, gm->mapped);
    memset(gm, 0, sizeof(*gm));
}

int guest_memory_add_device(struct guest_memory *gm, uint64_t size, uint8_t **host)
{
    if (!size || size % GUEST_PAGE_SIZE || size > (1ULL << 40))
        return -EINVAL;
    if (gm->nslots == GUEST_MEMORY_MAX_SLOTS)
        return -ENOSPC;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    unsigned index = gm->nslots++;
    gm->slots[index] = (struct guest_ram_slot){
        .gpa = GUEST_MEMORY_UNMAPPED_GPA, .size = size, .host = p, .device = true, .unmapped = true};
    *host = p;
    return (int)index;
}

static void slot_changed(struct guest_memory *gm, unsigned index)
{
    if (gm->listener && gm->listener->slot_changed)
        gm->listener->slot_changed(gm->listener_opaque, index);
}

static struct guest_ram_slot *device_slot(struct guest_memory *gm, unsigned index)
{
    return index < gm->nslots && gm->slots[index].device ? &gm->slots[index] : NULL;
}

int guest_memory_map_device(struct guest_memory *gm, unsigned index, uint64_t gpa)
{
    struct guest_ram_slot *s = device_slot(gm, index);
    if (!s || gpa % GUEST_PAGE_SIZE || gpa + s->size - 1 < gpa || gpa + s->size > GUEST_MEMORY_UNMAPPED_GPA)
        return -EINVAL;
    if (!s->unmapped && s->gpa == gpa)
        return 0;
    for (unsigned i = 0; i < gm->nslots; i++) {
        const struct guest_ram_slot *o = &gm->slots[i];
        if (i != index && !o->unmapped && gpa < o->gpa + o->size && o->gpa < gpa + s->size) {
            guest_memory_unmap_device(gm, index);
            return -EEXIST;
        }
    }
    s->gpa = gpa;
    s->unmapped = false;
    slot_changed(gm, index);
    return 0;
}

void guest_memory_unmap_device(struct guest_memory *gm, unsigned index)
{
    struct guest_ram_slot *s = device_slot(gm, index);
    if (!s || s->unmapped)
        return;
    s->unmapped = true;
    s->gpa = GUEST_MEMORY_UNMAPPED_GPA;
    slot_changed(gm, index);
}

const struct guest_ram_slot *guest_memory_find(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    if (len == 0 || gpa + len < gpa)
        return NULL;
    for (unsigned i = 0; i < gm->nslots; i++) {
        const struct guest_ram_slot *s = &gm->slots[i];
        if (gpa >= s->gpa && gpa - s->gpa < s->size && len <= s->size - (gpa - s->gpa) && !s->unmapped)
            return s;
    }
    return NULL;
}

bool guest_memory_is_ram(const struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    const struct guest_ram_slot *s = guest_memory_find(gm, gpa, len);
    return s && !s->readonly;
}

static void mark_dirty(const struct guest_ram_slot *s, uint64_t gpa, uint64_t len)
{
    uint64_t first = (gpa - s->gpa) / GUEST_PAGE_SIZE;
    uint64_t last = (gpa - s->gpa + len - 1) / GUEST_PAGE_SIZE;
    for (uint64_t p = first; p <= last; p++)
        __atomic_fetch_or(&s->dirty[p / BITS_PER_LONG], 1UL << (p % BITS_PER_LONG), __ATOMIC_RELAXED);
}

const void *guest_mem_map_read(struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    const struct guest_ram_slot *s = guest_memory_find(gm, gpa, len);
    return s ? s->host + (gpa - s->gpa) : NULL;
}

void *guest_mem_map_write(struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    const struct guest_ram_slot *s = guest_memory_find(gm, gpa, len);
    if (!s || s->readonly)
        return NULL;
    if (s->dirty)
        mark_dirty(s, gpa, len);
    if (gm->write_observer)
        gm->write_observer(gm->write_observer_opaque, gpa, len);
    return s->host + (gpa - s->gpa);
}

int guest_mem_read(struct guest_memory *gm, uint64_t gpa, void *buf, size_t len)
{
    if (len == 0)
        return 0;
    const void *p = guest_mem_map_read(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(buf, p, len);
    return 0;
}

int guest_mem_write(struct guest_memory *gm, uint64_t gpa, const void *buf, size_t len)
{
    if (len == 0)
        return 0;
    void *p = guest_mem_map_write(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(p, buf, len);
    guest_mem_write_done(gm, gpa, len);
    return 0;
}

int guest_mem_fill(struct guest_memory *gm, uint64_t gpa, int byte, size_t len)
{
    if (len == 0)
        return 0;
    void *p = guest_mem_map_write(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memset(p, byte, len);
    guest_mem_write_done(gm, gpa, len);
    return 0;
}

void guest_mem_write_done(struct guest_memory *gm, uint64_t gpa, uint64_t len)
{
    if (gm->write_observer && len)
        gm->write_observer(gm->write_observer_opaque, gpa, len);
}

#define DEFINE_SCALAR(bits)                                                                                       \
    int guest_mem_read_u##bits(struct guest_memory *gm, uint64_t gpa, uint##bits##_t *v)                          \
    {                                                                                                             \
        uint8_t b[bits / 8];                                                                                      \
        int r = guest_mem_read(gm, gpa, b, sizeof(b));                                                            \
        if (r == 0)                                                                                               \
            *v = (uint##bits##_t)LOAD_##bits(b);                                                                  \
        return r;                                                                                                 \
    }                                                                                                             \
    int guest_mem_write_u##bits(struct guest_memory *gm, uint64_t gpa, uint##bits##_t v)                          \
    {                                                                                                             \
        uint8_t b[bits / 8];                                                                                      \
        STORE_##bits(b, v);                                                                                       \
        return guest_mem_write(gm, gpa, b, sizeof(b));                                                            \
    }

#define LOAD_8(b) ((b)[0])
#define STORE_8(b, v) ((b)[0] = (v))
#define LOAD_16(b) le16_load(b)
#define STORE_16(b, v) le16_store(b, v)
#define LOAD_32(b) le32_load(b)
#define STORE_32(b, v) le32_store(b, v)
#define LOAD_64(b) le64_load(b)
#define STORE_64(b, v) le64_store(b, v)

DEFINE_SCALAR(8)
DEFINE_SCALAR(16)
DEFINE_SCALAR(32)
DEFINE_SCALAR(64)

int guest_memory_dirty_log_start(struct guest_memory *gm)
{
    for (unsigned i = 0; i < gm->nslots; i++) {
        struct guest_ram_slot *s = &gm->slots[i];
        if (s->dirty || s->readonly)
            continue;
        uint64_t pages = s->size / GUEST_PAGE_SIZE;
        s->dirty = g_try_new0(unsigned long, (pages + BITS_PER_LONG - 1) / BITS_PER_LONG);
        if (!s->dirty) {
            guest_memory_dirty_log_stop(gm);
            return -ENOMEM;
        }
    }
    gm->dirty_logging = true;
    return 0;
}

void guest_memory_dirty_log_stop(struct guest_memory *gm)
{
    for (unsigned i = 0; i < gm->nslots; i++)
        if (!gm->slots[i].logging)
            g_clear_pointer(&gm->slots[i].dirty, g_free);
    gm->dirty_logging = false;
}

static void sync_dirty(struct guest_memory *gm, unsigned index)
{
    if (gm->listener && gm->listener->sync_dirty && gm->slots[index].dirty && !gm->slots[index].unmapped)
        gm->listener->sync_dirty(gm->listener_opaque, index);
}

int guest_memory_slot_dirty_log_start(struct guest_memory *gm, unsigned index)
{
    if (index >= gm->nslots || gm->slots[index].readonly)
        return -EINVAL;
    struct guest_ram_slot *s = &gm->slots[index];
    if (s->logging)
        return 0;
    if (!s->dirty) {
        uint64_t pages = s->size / GUEST_PAGE_SIZE;
        s->dirty = g_try_new0(unsigned long, (pages + BITS_PER_LONG - 1) / BITS_PER_LONG);
        if (!s->dirty)
            return -ENOMEM;
    }
    s->logging = true;
    gm->slot_logging++;
    slot_changed(gm, index);
    return 0;
}

void guest_memory_slot_dirty_log_stop(struct guest_memory *gm, unsigned index)
{
    if (index >= gm->nslots || !gm->slots[index].logging)
        return;
    struct guest_ram_slot *s = &gm->slots[index];
    s->logging = false;
    gm->slot_logging--;
    if (!gm->dirty_logging)
        g_clear_pointer(&s->dirty, g_free);
    slot_changed(gm, index);
}

void guest_memory_slot_dirty_collect(struct guest_memory *gm, unsigned index, uint64_t offset, uint64_t len,
                                     void (*fn)(void *opaque, uint64_t page_offset), void *opaque)
{
    if (index >= gm->nslots || !gm->slots[index].dirty || len == 0)
        return;
    const struct guest_ram_slot *s = &gm->slots[index];
    if (offset >= s->size)
        return;
    uint64_t end = len > s->size - offset ? s->size : offset + len;
    sync_dirty(gm, index);
    for (uint64_t p = offset / GUEST_PAGE_SIZE; p * GUEST_PAGE_SIZE < end; p++) {
        unsigned long bit = 1UL << (p % BITS_PER_LONG);
        if (!(__atomic_load_n(&s->dirty[p / BITS_PER_LONG], __ATOMIC_RELAXED) & bit))
            continue;
        unsigned long old = __atomic_fetch_and(&s->dirty[p / BITS_PER_LONG], ~bit, __ATOMIC_RELAXED);
        if (old & bit)
            fn(opaque, p * GUEST_PAGE_SIZE);
    }
}

void guest_memory_dirty_log_collect(struct guest_memory *gm, uint64_t gpa, uint64_t len,
                                    void (*fn)(void *opaque, uint64_t page_gpa), void *opaque)
{
    /* An empty range holds no page (rounding lo down would otherwise report the page containing gpa). */
    if (len == 0)
        return;
    for (unsigned i = 0; i < gm->nslots; i++) {
        const struct guest_ram_slot *s = &gm->slots[i];
        if (!s->dirty || s->unmapped)
            continue;
        sync_dirty(gm, i);
        uint64_t lo = MAX(gpa, s->gpa), hi = MIN(gpa + len, s->gpa + s->size);
        if (gpa + len < gpa)
            hi = s->gpa + s->size;
        for (uint64_t a = lo & ~(GUEST_PAGE_SIZE - 1); a < hi; a += GUEST_PAGE_SIZE) {
            uint64_t p = (a - s->gpa) / GUEST_PAGE_SIZE;
            unsigned long bit = 1UL << (p % BITS_PER_LONG);
            unsigned long old = __atomic_fetch_and(&s->dirty[p / BITS_PER_LONG], ~bit, __ATOMIC_RELAXED);
            if (old & bit)
                fn(opaque, a);
        }
    }
}
