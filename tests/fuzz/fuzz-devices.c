/* libFuzzer target for everything a guest feeds the PC's devices: the input is a program of port and MMIO
 * accesses (aimed at registered regions, or anywhere), guest RAM writes (DMA descriptors, MSI-X tables) and clock
 * steps, run against a fresh machine with the userspace interrupt controllers and the PCI test device. Any crash,
 * sanitizer report, leak or hang is a bug: a hostile guest must never take deskvm down. */
#include <stdint.h>
#include <string.h>

#include "fuzz_machine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void region_access(struct machine *m, struct io_bus *bus, struct cursor *c, bool write)
{
    if (!bus->count)
        return;
    const struct io_region *r = &bus->regions[take(c, 1) % bus->count];
    unsigned size = 1u << (take(c, 1) % 4);
    uint64_t off = take(c, 2) % r->len;
    uint64_t addr = r->base + off;
    if (write)
        io_bus_write(bus, addr, size, take(c, 8));
    else {
        uint64_t v;
        io_bus_read(bus, addr, size, &v);
    }
    (void)m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct machine m;
    struct pc_config cfg = {.ram_size = 16 << 20, .cpus = 2, .manual_clock = true, .test_device = true};
    fuzz_machine_init(&m, &cfg);
    struct cursor c = {data, size};
    machine_lock(&m);
    for (unsigned ops = 0; c.left && ops < 2000; ops++) {
        uint64_t v;
        switch (take(&c, 1) % 10) {
        case 0: /* any port */
            io_bus_write(&m.pio, take(&c, 2), 1u << (take(&c, 1) % 3), take(&c, 4));
            break;
        case 1:
            io_bus_read(&m.pio, take(&c, 2), 1u << (take(&c, 1) % 3), &v);
            break;
        case 2:
        case 3: /* a registered port region */
            region_access(&m, &m.pio, &c, true);
            break;
        case 4:
            region_access(&m, &m.pio, &c, false);
            break;
        case 5:
        case 6: /* a registered MMIO region (LAPIC, IOAPIC, ECAM, BARs) */
            region_access(&m, &m.mmio, &c, true);
            break;
        case 7:
            region_access(&m, &m.mmio, &c, false);
            break;
        case 8: { /* guest RAM, e.g. DMA targets */
            uint64_t addr = take(&c, 3) % (16 << 20);
            uint64_t val = take(&c, 8);
            guest_mem_write(&m.mem, addr, &val, 8);
            break;
        }
        case 9: /* time passes: up to ~1 s in coarse steps */
            vclock_advance(m.clock, (int64_t)take(&c, 2) * 16000);
            break;
        }
    }
    machine_reset(&m);
    machine_unlock(&m);
    machine_destroy(&m);
    return 0;
}
