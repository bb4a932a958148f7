/* Port I/O and MMIO dispatch: devices register address ranges with read/write handlers; a vCPU (or the test
 * accelerator) dispatches an access to the one region that contains it. Callers hold the machine lock. */
#ifndef DESKVM_IO_BUS_H
#define DESKVM_IO_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct io_ops {
    /* offset is relative to the region's base; size is 1, 2, 4 or 8 */
    uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
    void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned size);
};

/* Per-device re-entrancy guard: while one of the device's handlers runs, a nested access to any region sharing the
 * guard is refused instead of recursing into the device. */
struct io_guard {
    bool active;
};

struct io_region {
    uint64_t base;
    uint64_t len;
    const struct io_ops *ops;
    void *opaque;
    const char *name;
    struct io_guard *guard; /* may be NULL */
};

struct io_bus {
    const char *name; /* "pio" or "mmio", for messages */
    struct io_region *regions; /* sorted by base, never overlapping */
    unsigned count;
    unsigned capacity;
    uint64_t unmapped_accesses;
    uint64_t refused_reentries;
};

void io_bus_init(struct io_bus *bus, const char *name);
void io_bus_destroy(struct io_bus *bus);

/* Returns 0, -EINVAL (empty or wrapping range) or -EEXIST (overlaps an existing region). */
int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, const struct io_ops *ops, void *opaque,
                    const char *name, struct io_guard *guard);
/* Removes the region registered at base for opaque. Returns 0 or -ENOENT. Safe from inside a handler. */
int io_bus_unregister(struct io_bus *bus, uint64_t base, void *opaque);
/* The region containing [addr, addr+size), or NULL. */
const struct io_region *io_bus_find(const struct io_bus *bus, uint64_t addr, unsigned size);

/* Dispatches an access. Returns false when no region holds the whole access (reads then yield all ones, writes
 * are dropped), or when the device's guard refuses a nested access. */
bool io_bus_read(struct io_bus *bus, uint64_t addr, unsigned size, uint64_t *value);
bool io_bus_write(struct io_bus *bus, uint64_t addr, unsigned size, uint64_t value);

#endif
