/* Sizes (512M, 1.5G, 4096K, 65536B) and on/off switches as QEMU spells them on its command line. */
#include "size_parse.h"

#include <stddef.h>
#include <string.h>

#include <glib.h>

bool size_parse(const char *s, uint64_t default_unit, uint64_t *out)
{
    const char *p = s;
    uint64_t whole = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        uint64_t digit = (uint64_t)(*p - '0');
        if (whole > (UINT64_MAX - digit) / 10)
            return false;
        whole = whole * 10 + digit;
        p++;
        digits++;
    }
    /* fraction as numerator / 10^n, at most 9 digits */
    uint64_t frac = 0, frac_div = 1;
    if (*p == '.') {
        p++;
        int fd = 0;
        while (*p >= '0' && *p <= '9') {
            if (fd >= 9)
                return false;
            frac = frac * 10 + (uint64_t)(*p - '0');
            frac_div *= 10;
            p++;
            fd++;
        }
        if (!fd)
            return false;
    }
    if (!digits)
        return false;
    uint64_t unit;
    if (!*p)
        unit = default_unit;
    else {
        static const struct {
            const char *suffix;
            uint64_t unit;
        } units[] = {
            {"B", 1},
            {"b", 1},
            {"K", 1ULL << 10},
            {"k", 1ULL << 10},
            {"KiB", 1ULL << 10},
            {"KB", 1ULL << 10},
            {"M", 1ULL << 20},
            {"m", 1ULL << 20},
            {"MiB", 1ULL << 20},
            {"MB", 1ULL << 20},
            {"G", 1ULL << 30},
            {"g", 1ULL << 30},
            {"GiB", 1ULL << 30},
            {"GB", 1ULL << 30},
            {"T", 1ULL << 40},
            {"t", 1ULL << 40},
            {"TiB", 1ULL << 40},
            {"TB", 1ULL << 40},
        };
        unit = 0;
        for (size_t i = 0; i < G_N_ELEMENTS(units); i++) {
            if (!strcmp(p, units[i].suffix)) {
                unit = units[i].unit;
                break;
            }
        }
        if (!unit)
            return false;
    }
    if (whole > UINT64_MAX / unit)
        return false;
    uint64_t bytes = whole * unit;
    if (frac) {
        /* frac * unit can reach 10^9 * 2^40, beyond 64 bits: cancel the common factor of unit and
         * frac_div first. The fraction is then whole bytes exactly when frac is a multiple of what is left
         * of frac_div, and the part is below unit. */
        uint64_t g = unit, r = frac_div;
        while (r) {
            uint64_t t = g % r;
            g = r;
            r = t;
        }
        uint64_t den = frac_div / g;
        if (frac % den)
            return false; /* not a whole number of bytes */
        uint64_t part = frac / den * (unit / g);
        if (bytes > UINT64_MAX - part)
            return false;
        bytes += part;
    }
    *out = bytes;
    return true;
}

bool switch_parse(const char *key, const char *v, bool *out, char **error)
{
    if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes")) {
        *out = true;
        return true;
    }
    if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no")) {
        *out = false;
        return true;
    }
    *error = g_strdup_printf("%s=%s: expected on or off", key, v);
    return false;
}
