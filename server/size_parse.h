/* Parsing sizes and on/off switches as QEMU spells them on its command line, shared by the options and the
 * device and front-end parameters. */
#ifndef DESKVM_SIZE_PARSE_H
#define DESKVM_SIZE_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* Parses a size such as "512M", "2G", "1.5G", "4096K" or "65536B". A bare number is in units of default_unit
 * (QEMU's -m takes MiB). Returns false if the text is not a size or overflows 64 bits. */
bool size_parse(const char *s, uint64_t default_unit, uint64_t *out);

/* "on", "true", "yes" or "off", "false", "no" into *out; anything else is false with "KEY=V: expected on or
 * off" in *error (caller frees). */
bool switch_parse(const char *key, const char *v, bool *out, char **error);

#endif
