/* Keyboard layouts through libxkbcommon: which evdev key produces an X11 keysym (what VNC clients send) on
 * the layout the guest is set up for (--keymap). Modifiers stay the client's business: '!' is KEY_1, and the
 * client sends its Shift separately; the shift state only picks between keys that both produce the keysym. */
#ifndef DESKVM_KEYMAP_H
#define DESKVM_KEYMAP_H

#include <stdbool.h>
#include <stdint.h>

#define KEYMAP_DEFAULT_LAYOUT "us"

/* Modifiers a key needs to produce a keysym, and that a front end reports as held. */
#define KEYMAP_MOD_SHIFT (1u << 0)
#define KEYMAP_MOD_ALTGR (1u << 1)
#define KEYMAP_MOD_NUMLOCK (1u << 2)

struct keymap;

/* Compiles the layout: an XKB layout name ("us", "de", "fr"), optionally with a variant as "de:nodeadkeys",
 * or one of QEMU's -k names ("en-us", "de-ch", "pt-br", ...). NULL with *error for a layout XKB does not
 * know. */
struct keymap *keymap_new(const char *layout, char **error);
void keymap_free(struct keymap *km);
/* The layout as given. */
const char *keymap_layout(const struct keymap *km);
/* Whether keymap_new would accept the layout (compiles and frees it). */
bool keymap_layout_valid(const char *layout, char **error);

struct keymap_key {
    unsigned code; /* evdev KEY_* */
    unsigned mods; /* KEYMAP_MOD_* the key needs for this keysym */
};

/* The key for a keysym. When several keys produce it, the one whose modifiers match `held` (KEYMAP_MOD_*)
 * wins, else the one needing the fewest. False if the layout has no key for it. */
bool keymap_lookup(const struct keymap *km, uint32_t keysym, unsigned held, struct keymap_key *out);

#endif
