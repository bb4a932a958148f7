/* Sorted-array region dispatch for port I/O and MMIO. */
#include "io_bus.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "log.h"

void io_bus_init(struct io_bus *bus, const char *name)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
}

void io_bus_destroy(struct io_bus *bus)
{
    g_free(bus->regions);
    memset(bus, 0, sizeof(*bus));
}

/* Index of the first region whose end is above addr. */
static unsigned lower_bound(const struct io_bus *bus, uint64_t addr)
{
    unsigned lo = 0, hi = bus->count;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const struct io_region *r = &bus->regions[mid];
        if (r->base + r->len - 1 < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, const struct io_ops *ops, void *opaque,
                    const char *name, struct io_guard *guard)
{
    if (len == 0 || base + len - 1 < base || !ops)
        return -EINVAL;
    unsigned i = lower_bound(bus, base);
    if (i < bus->count && bus->regions[i].base <= base + len - 1)
        return -EEXIST;
    if (bus->count == bus->capacity) {
        bus->capacity = bus->capacity ? bus->capacity * 2 : 16;
        bus->regions = g_renew(struct io_region, bus->regions, bus->capacity);
    }
    memmove(&bus->regions[i + 1], &bus->regions[i], (bus->count - i) * sizeof(struct io_region));
    bus->regions[i] = (struct io_region){base, len, ops, opaque, name, guard};
    bus->count++;
    return 0;
}

int io_bus_unregister(struct io_bus *bus, uint64_t base, void *opaque)
{
    for (unsigned i = 0; i < bus->count; i++) {
        if (bus->regions[i].base == base && bus->regions[i].opaque == opaque) {
            memmove(&bus->regions[i], &bus->regions[i + 1], (bus->count - i - 1) * sizeof(struct io_region));
            bus->count--;
            return 0;
        }
    }
    return -ENOENT;
}

const struct io_region *io_bus_find(const struct io_bus *bus, uint64_t addr, unsigned size)
{
    if (size == 0 || addr + size - 1 < addr)
        return NULL;
    unsigned i = lower_bound(bus, addr);
    if (i >= bus->count)
        return NULL;
    const struct io_region *r = &bus->regions[i];
    if (addr < r->base || addr + size - 1 > r->base + r->len - 1)
        return NULL;
    return r;
}

static struct log_ratelimit unmapped_rl = LOG_RATELIMIT_INIT(5000, 10);
static struct log_ratelimit reentry_rl = LOG_RATELIMIT_INIT(5000, 10);

/* Copies the region before calling out: a handler may register or unregister regions (BAR moves), which reshuffles
 * the array under it. */
static bool io_bus_claim(struct io_bus *bus, uint64_t addr, unsigned size, bool is_write, struct io_region *out)
{
    const struct io_region *r = io_bus_find(bus, addr, size);
    if (!r) {
        bus->unmapped_accesses++;
        log_message_ratelimited(&unmapped_rl, LOG_LEVEL_DEBUG, "%s: unmapped %u-byte %s at 0x%llx", bus->name, size,
                                is_write ? "write" : "read", (unsigned long long)addr);
        return false;
    }
    if (r->guard && r->guard->active) {
        bus->refused_reentries++;
        log_message_ratelimited(&reentry_rl, LOG_LEVEL_WARN, "%s: refused re-entrant %s of %s at 0x%llx", bus->name,
                                is_write ? "write" : "read", r->name, (unsigned long long)addr);
        return false;
    }
    *out = *r;
    return true;
}

bool io_bus_read(struct io_bus *bus, uint64_t addr, unsigned size, uint64_t *value)
{
    struct io_region r;
    *value = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
    if (!io_bus_claim(bus, addr, size, false, &r))
        return false;
    if (!r.ops->read)
        return true;
    if (r.guard)
        r.guard->active = true;
    uint64_t v = r.ops->read(r.opaque, addr - r.base, size);
    if (r.guard)
        r.guard->active = false;
    *value = size >= 8 ? v : v & ((1ULL << (size * 8)) - 1);
    return true;
}

bool io_bus_write(struct io_bus *bus, uint64_t addr, unsigned size, uint64_t value)
{
    struct io_region r;
    if (!io_bus_claim(bus, addr, size, true, &r))
        return false;
    if (!r.ops->write)
        return true;
    if (size < 8)
        value &= (1ULL << (size * 8)) - 1;
    if (r.guard)
        r.guard->active = true;
    r.ops->write(r.opaque, addr - r.base, value, size);
    if (r.guard)
        r.guard->active = false;
    return true;
}
