/* Firmware ROM loading at the top of the 32-bit address space. */
#include "boot_firmware.h"

#include <errno.h>

#include <glib.h>

int boot_firmware_load(struct machine *m, const char *path, char **error)
{
    g_autofree char *data = NULL;
    gsize size = 0;
    g_autoptr(GError) gerr = NULL;
    if (!g_file_get_contents(path, &data, &size, &gerr)) {
        *error = g_strdup_printf("firmware %s: %s", path, gerr->message);
        return -EIO;
    }
    if (size == 0 || size > FIRMWARE_MAX_SIZE || size % 4096) {
        *error = g_strdup_printf("firmware %s: %zu bytes; a ROM image must be a non-zero multiple of 4 KiB up to "
                                 "%u MiB",
                                 path, (size_t)size, FIRMWARE_MAX_SIZE >> 20);
        return -EINVAL;
    }
    uint64_t base = 0x100000000ULL - size;
    int r = guest_memory_add_rom(&m->mem, base, data, size);
    if (r < 0) {
        *error = g_strdup_printf("firmware %s: cannot map at 0x%llx: %s", path, (unsigned long long)base,
                                 g_strerror(-r));
        return r;
    }
    gsize alias = MIN(size, (gsize)FIRMWARE_LOW_ALIAS_SIZE);
    r = guest_mem_write(&m->mem, 0x100000 - alias, data + size - alias, alias);
    if (r < 0) {
        *error = g_strdup_printf("firmware %s: guest RAM too small for the low alias", path);
        return r;
    }
    return 0;
}

int boot_firmware_restore_alias(struct machine *m, char **error)
{
    for (unsigned i = 0; i < m->mem.nslots; i++) {
        const struct guest_ram_slot *s = &m->mem.slots[i];
        if (!s->readonly || s->gpa + s->size != 0x100000000ULL)
            continue;
        uint64_t alias = MIN(s->size, (uint64_t)FIRMWARE_LOW_ALIAS_SIZE);
        int r = guest_mem_write(&m->mem, 0x100000 - alias, s->host + s->size - alias, alias);
        if (r < 0)
            *error = g_strdup("firmware: guest RAM too small for the low alias");
        return r;
    }
    *error = g_strdup("firmware: no ROM mapped below 4 GiB");
    return -ENOENT;
}
