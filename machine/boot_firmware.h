/* Firmware boot (QEMU's -bios): a ROM image mapped so that it ends at 4 GiB, where the CPU's reset vector points,
 * with its last 128 KiB also copied to 0xE0000-0xFFFFF below 1 MiB as PC firmware expects. */
#ifndef DESKVM_BOOT_FIRMWARE_H
#define DESKVM_BOOT_FIRMWARE_H

#include "machine.h"

#define FIRMWARE_MAX_SIZE (16u << 20)
#define FIRMWARE_LOW_ALIAS_SIZE (128u << 10)

/* Loads PATH into the machine. Returns 0 or a negative errno with *error naming the file and the problem. */
int boot_firmware_load(struct machine *m, const char *path, char **error);
/* Copies the ROM's tail to the low alias again (after a reset: the guest may have written there). */
int boot_firmware_restore_alias(struct machine *m, char **error);

#endif
