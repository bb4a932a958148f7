/* Proves keysym -> evdev lookup for real XKB layouts (us, de, fr, QEMU's names), layout validation, and the
 * scan code tables: set 1 and set 2 against evdev, the set-1 stream decoder, Pause, QEMU numbers and qcodes.
 */
#include <glib.h>

#include "keymap.h"
#include "scancode.h"

/* X11 keysyms used here (keysymdef.h). */
#define XK_exclam 0x0021
#define XK_at 0x0040
#define XK_less 0x003c
#define XK_A 0x0041
#define XK_y 0x0079
#define XK_z 0x007a
#define XK_Return 0xff0d
#define XK_Shift_L 0xffe1
#define XK_KP_1 0xffb1
#define XK_odiaeresis 0x00f6
#define XK_eacute 0x00e9

static void assert_lookup(const struct keymap *km, uint32_t sym, unsigned held, unsigned code, unsigned mods)
{
    struct keymap_key k;
    if (!keymap_lookup(km, sym, held, &k))
        g_error("%s: no key for keysym 0x%x", keymap_layout(km), sym);
    g_assert_cmpuint(k.code, ==, code);
    g_assert_cmpuint(k.mods, ==, mods);
}

static struct keymap *load(const char *layout)
{
    char *err = NULL;
    struct keymap *km = keymap_new(layout, &err);
    if (!km)
        g_error("%s: %s", layout, err);
    return km;
}

static void test_us(void)
{
    struct keymap *km = load("us");
    assert_lookup(km, XK_z, 0, KEY_Z, 0);
    assert_lookup(km, XK_y, 0, KEY_Y, 0);
    assert_lookup(km, XK_A, KEYMAP_MOD_SHIFT, KEY_A, KEYMAP_MOD_SHIFT);
    assert_lookup(km, XK_exclam, KEYMAP_MOD_SHIFT, KEY_1, KEYMAP_MOD_SHIFT);
    assert_lookup(km, XK_at, KEYMAP_MOD_SHIFT, KEY_2, KEYMAP_MOD_SHIFT);
    assert_lookup(km, XK_Return, 0, KEY_ENTER, 0);
    assert_lookup(km, XK_Shift_L, 0, KEY_LEFTSHIFT, 0);
    assert_lookup(km, XK_KP_1, 0, 79 /* KEY_KP1 */, KEYMAP_MOD_NUMLOCK);
    struct keymap_key k;
    g_assert_false(keymap_lookup(km, XK_odiaeresis, 0, &k));
    keymap_free(km);
}

static void test_de(void)
{
    struct keymap *km = load("de");
    /* QWERTZ: the keys of z and y trade places. */
    assert_lookup(km, XK_z, 0, KEY_Y, 0);
    assert_lookup(km, XK_y, 0, KEY_Z, 0);
    assert_lookup(km, XK_at, KEYMAP_MOD_ALTGR, KEY_Q, KEYMAP_MOD_ALTGR);
    assert_lookup(km, XK_exclam, KEYMAP_MOD_SHIFT, KEY_1, KEYMAP_MOD_SHIFT);
    assert_lookup(km, XK_odiaeresis, 0, 39 /* KEY_SEMICOLON */, 0);
    keymap_free(km);
}

static void test_fr_and_qemu_names(void)
{
    struct keymap *km = load("fr");
    assert_lookup(km, XK_z, 0, KEY_W, 0); /* AZERTY */
    assert_lookup(km, XK_eacute, 0, KEY_2, 0);
    keymap_free(km);
    km = load("en-us");
    g_assert_cmpstr(keymap_layout(km), ==, "en-us");
    assert_lookup(km, XK_z, 0, KEY_Z, 0);
    keymap_free(km);
    km = load("de:nodeadkeys");
    assert_lookup(km, XK_z, 0, KEY_Y, 0);
    keymap_free(km);
}

/* When two keys give the keysym, the client's shift state picks: '<' is KEY_102ND alone, shift+comma on us.
 */
static void test_shift_state_picks(void)
{
    struct keymap *km = load("us");
    assert_lookup(km, XK_less, 0, KEY_102ND, 0);
    assert_lookup(km, XK_less, KEYMAP_MOD_SHIFT, 51 /* KEY_COMMA */, KEYMAP_MOD_SHIFT);
    keymap_free(km);
}

static void test_unknown_layouts(void)
{
    const char *bad[] = {"xx", "de:nosuchvariant", "", "us;rm -rf", "../../etc", "us(intl)"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        char *err = NULL;
        g_assert_null(keymap_new(bad[i], &err));
        g_assert_nonnull(err);
        g_free(err);
        err = NULL;
        g_assert_false(keymap_layout_valid(bad[i], &err));
        g_free(err);
    }
    char *err = NULL;
    g_assert_true(keymap_layout_valid("gb", &err));
    g_assert_null(err);
}

/* Every key: set-1 bytes decode back to the same key, down and up. */
static void test_set1_round_trip(void)
{
    const uint16_t *keys;
    size_t n = scancode_known_keys(&keys);
    g_assert_cmpuint(n, >, 100);
    for (size_t i = 0; i < n; i++) {
        for (int down = 1; down >= 0; down--) {
            uint8_t b[SCANCODE_MAX_BYTES];
            size_t len = scancode_encode_set1(keys[i], down, b);
            if (keys[i] == KEY_PAUSE && !down) {
                g_assert_cmpuint(len, ==, 0);
                continue;
            }
            g_assert_cmpuint(len, >, 0);
            struct scancode_decoder d = {0};
            unsigned got = 0, events = 0;
            bool got_down = false;
            for (size_t j = 0; j < len; j++) {
                unsigned code;
                bool dn;
                if (scancode_decoder_feed(&d, b[j], &code, &dn)) {
                    if (!events++) {
                        got = code;
                        got_down = dn;
                    }
                }
            }
            g_assert_cmpuint(got, ==, keys[i]);
            g_assert_cmpint(got_down, ==, down);
            /* Pause's sequence presses and releases */
            g_assert_cmpuint(events, ==, keys[i] == KEY_PAUSE ? 2 : 1);
            /* And set 2 names the same key. */
            unsigned s2 = scancode_evdev_to_set2(keys[i]);
            if (keys[i] != KEY_PAUSE)
                g_assert_cmpuint(scancode_set2_to_evdev(s2), ==, keys[i]);
            /* QEMU numbers are set 1 with 0x80 for the prefix. */
            unsigned q = scancode_evdev_to_qnum(keys[i]);
            g_assert_cmpuint(scancode_qnum_to_evdev(q), ==, keys[i]);
        }
    }
}

static void expect_bytes(size_t len, const uint8_t *b, size_t want_len, const uint8_t *want)
{
    g_assert_cmpmem(b, len, want, want_len);
}

static void test_known_sequences(void)
{
    uint8_t b[SCANCODE_MAX_BYTES];
    size_t n;
    n = scancode_encode_set1(KEY_A, true, b);
    expect_bytes(n, b, 1, (const uint8_t[]){0x1E});
    n = scancode_encode_set1(KEY_A, false, b);
    expect_bytes(n, b, 1, (const uint8_t[]){0x9E});
    n = scancode_encode_set1(KEY_RIGHTCTRL, false, b);
    expect_bytes(n, b, 2, (const uint8_t[]){0xE0, 0x9D});
    n = scancode_encode_set2(KEY_A, true, b);
    expect_bytes(n, b, 1, (const uint8_t[]){0x1C});
    n = scancode_encode_set2(KEY_A, false, b);
    expect_bytes(n, b, 2, (const uint8_t[]){0xF0, 0x1C});
    n = scancode_encode_set2(KEY_UP, false, b);
    expect_bytes(n, b, 3, (const uint8_t[]){0xE0, 0xF0, 0x75});
    n = scancode_encode_set2(KEY_PAUSE, true, b);
    expect_bytes(n, b, 8, (const uint8_t[]){0xE1, 0x14, 0x77, 0xE1, 0xF0, 0x14, 0xF0, 0x77});
    n = scancode_encode_set1(KEY_PAUSE, true, b);
    expect_bytes(n, b, 6, (const uint8_t[]){0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5});
    g_assert_cmpuint(scancode_encode_set2(0x2fe, true, b), ==, 0);
    /* Alt+SysRq and Ctrl+Break decode to their keys; fake shifts (E0 2A) decode to nothing. */
    g_assert_cmpuint(scancode_set1_to_evdev(0x54), ==, KEY_SYSRQ);
    g_assert_cmpuint(scancode_set1_to_evdev(SCANCODE_E0 | 0x46), ==, KEY_PAUSE);
    g_assert_cmpuint(scancode_set1_to_evdev(SCANCODE_E0 | 0x2A), ==, 0);
    g_assert_cmpuint(scancode_qnum_to_evdev(0x9C), ==, KEY_KPENTER);
    g_assert_cmpuint(scancode_qnum_to_evdev(0xC6), ==, KEY_PAUSE);
    g_assert_cmpuint(scancode_qnum_to_evdev(0x100), ==, 0);
    /* A broken Pause sequence falls back to taking the byte alone. */
    struct scancode_decoder d = {0};
    unsigned code;
    bool down;
    g_assert_false(scancode_decoder_feed(&d, 0xE1, &code, &down));
    g_assert_true(scancode_decoder_feed(&d, 0x1E, &code, &down));
    g_assert_cmpuint(code, ==, KEY_A);
    g_assert_true(down);
}

static void test_qcodes(void)
{
    g_assert_cmpuint(scancode_qcode_to_evdev("a"), ==, KEY_A);
    g_assert_cmpuint(scancode_qcode_to_evdev("ret"), ==, KEY_ENTER);
    g_assert_cmpuint(scancode_qcode_to_evdev("ctrl_r"), ==, KEY_RIGHTCTRL);
    g_assert_cmpuint(scancode_qcode_to_evdev("less"), ==, KEY_102ND);
    g_assert_cmpuint(scancode_qcode_to_evdev("meta_l"), ==, KEY_LEFTMETA);
    g_assert_cmpuint(scancode_qcode_to_evdev("A"), ==, 0);
    g_assert_cmpuint(scancode_qcode_to_evdev("nosuchkey"), ==, 0);
    g_assert_cmpstr(scancode_evdev_to_qcode(KEY_SPACE), ==, "spc");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/keymap/us/letters-shifted-and-keypad", test_us);
    g_test_add_func("/keymap/de/z-and-y-swap-altgr-at", test_de);
    g_test_add_func("/keymap/fr-variants-and-qemu-names", test_fr_and_qemu_names);
    g_test_add_func("/keymap/shift-state-picks-between-keys", test_shift_state_picks);
    g_test_add_func("/keymap/unknown-layouts-refused", test_unknown_layouts);
    g_test_add_func("/scancode/set1-set2-qnum-round-trip-every-key", test_set1_round_trip);
    g_test_add_func("/scancode/known-sequences-and-decoder", test_known_sequences);
    g_test_add_func("/scancode/qcode-names", test_qcodes);
    return g_test_run();
}
