/* The e820 map: RAM slots minus the PC's legacy holes, plus the reserved firmware and ECAM ranges. */
#include "e820.h"

struct e820_builder {
    struct e820_entry *out;
    unsigned max;
    unsigned n;
};

static void add(struct e820_builder *b, uint64_t start, uint64_t end, uint32_t type)
{
    if (end <= start || b->n >= b->max)
        return;
    b->out[b->n++] = (struct e820_entry){.addr = start, .size = end - start, .type = type};
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

unsigned e820_build(const struct guest_memory *gm, struct e820_entry *out, unsigned max)
{
    struct e820_builder b = {out, max, 0};
    uint64_t low_top = 0, high_size = 0;
    for (unsigned i = 0; i < gm->nslots; i++) {
        if (gm->slots[i].gpa == 0)
            low_top = gm->slots[i].size;
        else if (gm->slots[i].gpa == GUEST_MEMORY_HIGH_BASE)
            high_size = gm->slots[i].size;
    }

    add(&b, 0, min_u64(low_top, E820_EBDA_START), E820_TYPE_RAM);
    add(&b, E820_EBDA_START, E820_LOW_RAM_END, E820_TYPE_RESERVED);
    add(&b, E820_BIOS_START, E820_HIGH_MEMORY, E820_TYPE_RESERVED);
    add(&b, E820_HIGH_MEMORY, low_top, E820_TYPE_RAM);
    add(&b, E820_ECAM_BASE, E820_ECAM_BASE + E820_ECAM_SIZE, E820_TYPE_RESERVED);
    add(&b, GUEST_MEMORY_HIGH_BASE, GUEST_MEMORY_HIGH_BASE + high_size, E820_TYPE_RAM);
    return b.n;
}
