/* Keysym to evdev key lookup, built once per layout from the XKB keymap libxkbcommon compiles. */
#include "keymap.h"

#include <stdarg.h>
#include <string.h>

#include <glib.h>
#include <xkbcommon/xkbcommon.h>

#include "log.h"
#include "scancode.h"

/* evdev codes are XKB keycodes minus 8 (the evdev rules' keycodes file). */
#define XKB_EVDEV_OFFSET 8

struct candidate {
    uint16_t code;
    uint8_t mods;
    uint8_t level;
};

struct keymap {
    char *layout;
    GHashTable *syms; /* keysym -> GArray of struct candidate, best first */
};

/* QEMU's -k keymap names that differ from XKB's layout[:variant]. */
static const struct {
    const char *qemu, *xkb;
} aliases[] = {
    {"en-us", "us"}, {"en-gb", "gb"}, {"de-ch", "ch"}, {"fr-ch", "ch:fr"}, {"fr-be", "be"},
    {"fr-ca", "ca"}, {"pt-br", "br"}, {"nl-be", "be"}, {"da", "dk"},       {"sv", "se"},
    {"ja", "jp"},    {"sl", "si"},    {"et", "ee"},    {"ar", "ara"},      {"bepo", "fr:bepo"},
};

static void xkb_log(struct xkb_context *ctx, enum xkb_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void xkb_log(struct xkb_context *ctx, enum xkb_log_level level, const char *fmt, va_list ap)
{
    char *msg = g_strdup_vprintf(fmt, ap);
    g_strchomp(msg);
    log_debug("keymap: xkbcommon: %s", msg);
    g_free(msg);
}

static bool name_ok(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_' && *p != ':')
            return false;
    return true;
}

static struct xkb_keymap *compile(const char *layout, char **error)
{
    if (!name_ok(layout)) {
        *error = g_strdup_printf("'%s' is not a keyboard layout name", layout);
        return NULL;
    }
    const char *name = layout;
    for (size_t i = 0; i < G_N_ELEMENTS(aliases); i++)
        if (!strcmp(layout, aliases[i].qemu))
            name = aliases[i].xkb;
    g_auto(GStrv) parts = g_strsplit(name, ":", 2);
    struct xkb_context *ctx = xkb_context_new(XKB_CONTEXT_NO_ENVIRONMENT_NAMES);
    if (!ctx) {
        *error = g_strdup("libxkbcommon could not set up (is xkb-data installed?)");
        return NULL;
    }
    xkb_context_set_log_fn(ctx, xkb_log);
    const struct xkb_rule_names names = {
        .rules = "evdev",
        .model = "pc105",
        .layout = parts[0],
        .variant = parts[1] ? parts[1] : "",
        .options = "",
    };
    struct xkb_keymap *km = xkb_keymap_new_from_names(ctx, &names, XKB_KEYMAP_COMPILE_NO_FLAGS);
    xkb_context_unref(ctx);
    if (!km)
        *error = g_strdup_printf("'%s' is not a keyboard layout XKB knows (see /usr/share/X11/xkb/symbols)",
                                 layout);
    return km;
}

bool keymap_layout_valid(const char *layout, char **error)
{
    struct xkb_keymap *km = compile(layout, error);
    xkb_keymap_unref(km);
    return km != NULL;
}

struct walk {
    struct keymap *map;
    xkb_mod_mask_t shift, lock, num, ctrl_alt;
};

/* The modifiers a level needs: the simplest mask that selects it without Caps Lock; levels only reachable
 * with Control or Alt (VT switching and the like) are not typing and are left out. */
static bool level_mods(struct xkb_keymap *xkb, const struct walk *w, xkb_keycode_t kc,
                       xkb_level_index_t level, unsigned *mods)
{
    xkb_mod_mask_t masks[16];
    size_t n = xkb_keymap_key_get_mods_for_level(xkb, kc, 0, level, masks, G_N_ELEMENTS(masks));
    bool found = false;
    xkb_mod_mask_t best = 0;
    for (size_t i = 0; i < n; i++) {
        if (masks[i] & (w->lock | w->ctrl_alt))
            continue;
        if (!found || __builtin_popcount(masks[i]) < __builtin_popcount(best)) {
            best = masks[i];
            found = true;
        }
    }
    if (!found)
        return false;
    *mods = ((best & w->shift) ? KEYMAP_MOD_SHIFT : 0) | ((best & w->num) ? KEYMAP_MOD_NUMLOCK : 0) |
            ((best & ~(w->shift | w->num)) ? KEYMAP_MOD_ALTGR : 0);
    return true;
}

static void add_key(struct xkb_keymap *xkb, xkb_keycode_t kc, void *data)
{
    struct walk *w = data;
    if (kc < XKB_EVDEV_OFFSET || kc - XKB_EVDEV_OFFSET > KEY_MAX ||
        xkb_keymap_num_layouts_for_key(xkb, kc) < 1)
        return;
    xkb_level_index_t levels = xkb_keymap_num_levels_for_key(xkb, kc, 0);
    for (xkb_level_index_t level = 0; level < levels && level < 256; level++) {
        const xkb_keysym_t *syms;
        int nsyms = xkb_keymap_key_get_syms_by_level(xkb, kc, 0, level, &syms);
        unsigned mods;
        if (nsyms != 1 || !level_mods(xkb, w, kc, level, &mods))
            continue;
        GArray *c = g_hash_table_lookup(w->map->syms, GUINT_TO_POINTER(syms[0]));
        if (!c) {
            c = g_array_new(FALSE, FALSE, sizeof(struct candidate));
            g_hash_table_insert(w->map->syms, GUINT_TO_POINTER(syms[0]), c);
        }
        struct candidate cand = {(uint16_t)(kc - XKB_EVDEV_OFFSET), (uint8_t)mods, (uint8_t)level};
        g_array_append_val(c, cand);
    }
}

static int candidate_cmp(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    int dx = __builtin_popcount(x->mods), dy = __builtin_popcount(y->mods);
    if (dx != dy)
        return dx - dy;
    return (int)x->code - (int)y->code;
}

static void sort_candidates(gpointer key, gpointer value, gpointer data)
{
    GArray *c = value;
    g_array_sort(c, candidate_cmp);
}

static void free_array(gpointer p)
{
    g_array_unref(p);
}

struct keymap *keymap_new(const char *layout, char **error)
{
    struct xkb_keymap *xkb = compile(layout, error);
    if (!xkb)
        return NULL;
    struct keymap *km = g_new0(struct keymap, 1);
    km->layout = g_strdup(layout);
    km->syms = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, free_array);
    struct walk w = {.map = km};
    xkb_mod_index_t i;
    if ((i = xkb_keymap_mod_get_index(xkb, XKB_MOD_NAME_SHIFT)) != XKB_MOD_INVALID)
        w.shift = 1u << i;
    if ((i = xkb_keymap_mod_get_index(xkb, XKB_MOD_NAME_CAPS)) != XKB_MOD_INVALID)
        w.lock = 1u << i;
    if ((i = xkb_keymap_mod_get_index(xkb, XKB_MOD_NAME_NUM)) != XKB_MOD_INVALID)
        w.num = 1u << i;
    if ((i = xkb_keymap_mod_get_index(xkb, XKB_MOD_NAME_CTRL)) != XKB_MOD_INVALID)
        w.ctrl_alt |= 1u << i;
    if ((i = xkb_keymap_mod_get_index(xkb, XKB_MOD_NAME_ALT)) != XKB_MOD_INVALID)
        w.ctrl_alt |= 1u << i;
    xkb_keymap_key_for_each(xkb, add_key, &w);
    g_hash_table_foreach(km->syms, sort_candidates, NULL);
    xkb_keymap_unref(xkb);
    return km;
}

void keymap_free(struct keymap *km)
{
    if (!km)
        return;
    g_hash_table_destroy(km->syms);
    g_free(km->layout);
    g_free(km);
}

const char *keymap_layout(const struct keymap *km)
{
    return km->layout;
}

bool keymap_lookup(const struct keymap *km, uint32_t keysym, unsigned held, struct keymap_key *out)
{
    GArray *c = g_hash_table_lookup(km->syms, GUINT_TO_POINTER(keysym));
    if (!c || !c->len)
        return false;
    const unsigned relevant = KEYMAP_MOD_SHIFT | KEYMAP_MOD_ALTGR;
    const struct candidate *pick = &g_array_index(c, struct candidate, 0);
    for (guint i = 0; i < c->len; i++) {
        const struct candidate *k = &g_array_index(c, struct candidate, i);
        if ((k->mods & relevant) == (held & relevant)) {
            pick = k;
            break;
        }
    }
    out->code = pick->code;
    out->mods = pick->mods;
    return true;
}
