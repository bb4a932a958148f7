/* Scan code sets 1 and 2, QEMU key numbers and qcode names, against evdev key codes. */
#include "scancode.h"

#include <string.h>

#include <glib.h>

/* One key: its evdev code, set-1 and set-2 make codes (SCANCODE_E0 added for the prefix). Break codes follow
 * from the make code (set 1: | 0x80; set 2: 0xF0 before the last byte). Facts from the PC keyboard scan code
 * tables; a key is listed only with codes that the i8042's set 2 -> set 1 translation agrees with. */
struct key_codes {
    uint16_t evdev;
    uint16_t set1;
    uint16_t set2;
};

#define E0(c) (SCANCODE_E0 | (c))

/* In the main block (evdev 1..88) the set-1 code equals the evdev code. */
// clang-format off
static const struct key_codes keys[] = {
    {1, 0x01, 0x76},  {2, 0x02, 0x16},  {3, 0x03, 0x1E},  {4, 0x04, 0x26},  {5, 0x05, 0x25},  {6, 0x06, 0x2E},
    {7, 0x07, 0x36},  {8, 0x08, 0x3D},  {9, 0x09, 0x3E},  {10, 0x0A, 0x46}, {11, 0x0B, 0x45}, {12, 0x0C, 0x4E},
    {13, 0x0D, 0x55}, {14, 0x0E, 0x66}, {15, 0x0F, 0x0D}, {16, 0x10, 0x15}, {17, 0x11, 0x1D}, {18, 0x12, 0x24},
    {19, 0x13, 0x2D}, {20, 0x14, 0x2C}, {21, 0x15, 0x35}, {22, 0x16, 0x3C}, {23, 0x17, 0x43}, {24, 0x18, 0x44},
    {25, 0x19, 0x4D}, {26, 0x1A, 0x54}, {27, 0x1B, 0x5B}, {28, 0x1C, 0x5A}, {29, 0x1D, 0x14}, {30, 0x1E, 0x1C},
    {31, 0x1F, 0x1B}, {32, 0x20, 0x23}, {33, 0x21, 0x2B}, {34, 0x22, 0x34}, {35, 0x23, 0x33}, {36, 0x24, 0x3B},
    {37, 0x25, 0x42}, {38, 0x26, 0x4B}, {39, 0x27, 0x4C}, {40, 0x28, 0x52}, {41, 0x29, 0x0E}, {42, 0x2A, 0x12},
    {43, 0x2B, 0x5D}, {44, 0x2C, 0x1A}, {45, 0x2D, 0x22}, {46, 0x2E, 0x21}, {47, 0x2F, 0x2A}, {48, 0x30, 0x32},
    {49, 0x31, 0x31}, {50, 0x32, 0x3A}, {51, 0x33, 0x41}, {52, 0x34, 0x49}, {53, 0x35, 0x4A}, {54, 0x36, 0x59},
    {55, 0x37, 0x7C}, {56, 0x38, 0x11}, {57, 0x39, 0x29}, {58, 0x3A, 0x58}, {59, 0x3B, 0x05}, {60, 0x3C, 0x06},
    {61, 0x3D, 0x04}, {62, 0x3E, 0x0C}, {63, 0x3F, 0x03}, {64, 0x40, 0x0B}, {65, 0x41, 0x83}, {66, 0x42, 0x0A},
    {67, 0x43, 0x01}, {68, 0x44, 0x09}, {69, 0x45, 0x77}, {70, 0x46, 0x7E}, {71, 0x47, 0x6C}, {72, 0x48, 0x75},
    {73, 0x49, 0x7D}, {74, 0x4A, 0x7B}, {75, 0x4B, 0x6B}, {76, 0x4C, 0x73}, {77, 0x4D, 0x74}, {78, 0x4E, 0x79},
    {79, 0x4F, 0x69}, {80, 0x50, 0x72}, {81, 0x51, 0x7A}, {82, 0x52, 0x70}, {83, 0x53, 0x71}, {86, 0x56, 0x61},
    {87, 0x57, 0x78}, {88, 0x58, 0x07},
    /* Japanese, Brazilian and extra keypad keys, F13-F15 */
    {89, 0x73, 0x51},  /* KEY_RO */
    {92, 0x79, 0x64},  /* KEY_HENKAN */
    {93, 0x70, 0x13},  /* KEY_KATAKANAHIRAGANA */
    {94, 0x7B, 0x67},  /* KEY_MUHENKAN */
    {95, 0x5C, 0x27},  /* KEY_KPJPCOMMA */
    {117, 0x59, 0x0F}, /* KEY_KPEQUAL */
    {121, 0x7E, 0x6D}, /* KEY_KPCOMMA */
    {124, 0x7D, 0x6A}, /* KEY_YEN */
    {183, 0x5D, 0x2F}, /* KEY_F13 */
    {184, 0x5E, 0x37}, /* KEY_F14 */
    {185, 0x5F, 0x3F}, /* KEY_F15 */
    /* 0xE0-prefixed keys */
    {96, E0(0x1C), E0(0x5A)},  /* KEY_KPENTER */
    {97, E0(0x1D), E0(0x14)},  /* KEY_RIGHTCTRL */
    {98, E0(0x35), E0(0x4A)},  /* KEY_KPSLASH */
    {99, E0(0x37), E0(0x7C)},  /* KEY_SYSRQ: Print Screen */
    {100, E0(0x38), E0(0x11)}, /* KEY_RIGHTALT */
    {102, E0(0x47), E0(0x6C)}, /* KEY_HOME */
    {103, E0(0x48), E0(0x75)}, /* KEY_UP */
    {104, E0(0x49), E0(0x7D)}, /* KEY_PAGEUP */
    {105, E0(0x4B), E0(0x6B)}, /* KEY_LEFT */
    {106, E0(0x4D), E0(0x74)}, /* KEY_RIGHT */
    {107, E0(0x4F), E0(0x69)}, /* KEY_END */
    {108, E0(0x50), E0(0x72)}, /* KEY_DOWN */
    {109, E0(0x51), E0(0x7A)}, /* KEY_PAGEDOWN */
    {110, E0(0x52), E0(0x70)}, /* KEY_INSERT */
    {111, E0(0x53), E0(0x71)}, /* KEY_DELETE */
    {113, E0(0x20), E0(0x23)}, /* KEY_MUTE */
    {114, E0(0x2E), E0(0x21)}, /* KEY_VOLUMEDOWN */
    {115, E0(0x30), E0(0x32)}, /* KEY_VOLUMEUP */
    {116, E0(0x5E), E0(0x37)}, /* KEY_POWER */
    {125, E0(0x5B), E0(0x1F)}, /* KEY_LEFTMETA */
    {126, E0(0x5C), E0(0x27)}, /* KEY_RIGHTMETA */
    {127, E0(0x5D), E0(0x2F)}, /* KEY_COMPOSE */
    {140, E0(0x21), E0(0x2B)}, /* KEY_CALC */
    {142, E0(0x5F), E0(0x3F)}, /* KEY_SLEEP */
    {143, E0(0x63), E0(0x5E)}, /* KEY_WAKEUP */
    {155, E0(0x6C), E0(0x48)}, /* KEY_MAIL */
    {163, E0(0x19), E0(0x4D)}, /* KEY_NEXTSONG */
    {164, E0(0x22), E0(0x34)}, /* KEY_PLAYPAUSE */
    {165, E0(0x10), E0(0x15)}, /* KEY_PREVIOUSSONG */
    {166, E0(0x24), E0(0x3B)}, /* KEY_STOPCD */
    {172, E0(0x32), E0(0x3A)}, /* KEY_HOMEPAGE */
};
// clang-format on

/* Codes that decode to a key whose own code is another: Alt+Print Screen (SysRq) and Ctrl+Pause (Break). */
static const struct key_codes decode_aliases[] = {
    {KEY_SYSRQ, 0x54, 0x84},
    {KEY_PAUSE, E0(0x46), E0(0x7E)},
};

static const uint8_t pause_set1[] = {0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5};
static const uint8_t pause_set2[] = {0xE1, 0x14, 0x77, 0xE1, 0xF0, 0x14, 0xF0, 0x77};

/* QMP QKeyCode names (QEMU's qapi/ui.json) and the evdev keys they stand for. */
static const struct {
    const char *name;
    uint16_t evdev;
} qcodes[] = {
    {"shift", 42},
    {"shift_r", 54},
    {"alt", 56},
    {"alt_r", 100},
    {"ctrl", 29},
    {"ctrl_r", 97},
    {"menu", 127},
    {"esc", 1},
    {"1", 2},
    {"2", 3},
    {"3", 4},
    {"4", 5},
    {"5", 6},
    {"6", 7},
    {"7", 8},
    {"8", 9},
    {"9", 10},
    {"0", 11},
    {"minus", 12},
    {"equal", 13},
    {"backspace", 14},
    {"tab", 15},
    {"q", 16},
    {"w", 17},
    {"e", 18},
    {"r", 19},
    {"t", 20},
    {"y", 21},
    {"u", 22},
    {"i", 23},
    {"o", 24},
    {"p", 25},
    {"bracket_left", 26},
    {"bracket_right", 27},
    {"ret", 28},
    {"a", 30},
    {"s", 31},
    {"d", 32},
    {"f", 33},
    {"g", 34},
    {"h", 35},
    {"j", 36},
    {"k", 37},
    {"l", 38},
    {"semicolon", 39},
    {"apostrophe", 40},
    {"grave_accent", 41},
    {"backslash", 43},
    {"z", 44},
    {"x", 45},
    {"c", 46},
    {"v", 47},
    {"b", 48},
    {"n", 49},
    {"m", 50},
    {"comma", 51},
    {"dot", 52},
    {"slash", 53},
    {"asterisk", 55},
    {"spc", 57},
    {"caps_lock", 58},
    {"f1", 59},
    {"f2", 60},
    {"f3", 61},
    {"f4", 62},
    {"f5", 63},
    {"f6", 64},
    {"f7", 65},
    {"f8", 66},
    {"f9", 67},
    {"f10", 68},
    {"num_lock", 69},
    {"scroll_lock", 70},
    {"kp_divide", 98},
    {"kp_multiply", 55},
    {"kp_subtract", 74},
    {"kp_add", 78},
    {"kp_enter", 96},
    {"kp_decimal", 83},
    {"sysrq", 99},
    {"kp_0", 82},
    {"kp_1", 79},
    {"kp_2", 80},
    {"kp_3", 81},
    {"kp_4", 75},
    {"kp_5", 76},
    {"kp_6", 77},
    {"kp_7", 71},
    {"kp_8", 72},
    {"kp_9", 73},
    {"less", 86},
    {"f11", 87},
    {"f12", 88},
    {"print", 99},
    {"home", 102},
    {"pgup", 104},
    {"pgdn", 109},
    {"end", 107},
    {"left", 105},
    {"up", 103},
    {"down", 108},
    {"right", 106},
    {"insert", 110},
    {"delete", 111},
    {"stop", 128},
    {"again", 129},
    {"props", 130},
    {"undo", 131},
    {"front", 132},
    {"copy", 133},
    {"open", 134},
    {"paste", 135},
    {"find", 136},
    {"cut", 137},
    {"lf", 101},
    {"help", 138},
    {"meta_l", 125},
    {"meta_r", 126},
    {"compose", 127},
    {"pause", 119},
    {"ro", 89},
    {"kp_comma", 121},
    {"kp_equals", 117},
    {"power", 116},
    {"hiragana", 91},
    {"henkan", 92},
    {"yen", 124},
    {"sleep", 142},
    {"wake", 143},
    {"audionext", 163},
    {"audioprev", 165},
    {"audiostop", 166},
    {"audioplay", 164},
    {"audiomute", 113},
    {"volumeup", 115},
    {"volumedown", 114},
    {"mediaselect", 226},
    {"mail", 155},
    {"calculator", 140},
    {"computer", 157},
    {"ac_home", 172},
    {"ac_back", 158},
    {"ac_forward", 159},
    {"ac_refresh", 173},
    {"ac_bookmarks", 156},
    {"muhenkan", 94},
    {"katakanahiragana", 93},
    {"lang1", 122},
    {"lang2", 123},
    {"f13", 183},
    {"f14", 184},
    {"f15", 185},
    {"f16", 186},
    {"f17", 187},
    {"f18", 188},
    {"f19", 189},
    {"f20", 190},
    {"f21", 191},
    {"f22", 192},
    {"f23", 193},
    {"f24", 194},
};

static const struct key_codes *by_evdev(unsigned evdev)
{
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        if (keys[i].evdev == evdev)
            return &keys[i];
    return NULL;
}

unsigned scancode_evdev_to_set1(unsigned evdev)
{
    const struct key_codes *k = by_evdev(evdev);
    return k ? k->set1 : 0;
}

unsigned scancode_evdev_to_set2(unsigned evdev)
{
    const struct key_codes *k = by_evdev(evdev);
    return k ? k->set2 : 0;
}

unsigned scancode_set1_to_evdev(unsigned code)
{
    if (!code)
        return 0;
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        if (keys[i].set1 == code)
            return keys[i].evdev;
    for (size_t i = 0; i < G_N_ELEMENTS(decode_aliases); i++)
        if (decode_aliases[i].set1 == code)
            return decode_aliases[i].evdev;
    return 0;
}

unsigned scancode_set2_to_evdev(unsigned code)
{
    if (!code)
        return 0;
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        if (keys[i].set2 == code)
            return keys[i].evdev;
    for (size_t i = 0; i < G_N_ELEMENTS(decode_aliases); i++)
        if (decode_aliases[i].set2 == code)
            return decode_aliases[i].evdev;
    return 0;
}

unsigned scancode_qnum_to_evdev(unsigned qnum)
{
    if (qnum == 0 || qnum > 0xFF)
        return 0;
    return scancode_set1_to_evdev(qnum & 0x80 ? E0(qnum & 0x7F) : qnum);
}

unsigned scancode_evdev_to_qnum(unsigned evdev)
{
    if (evdev == KEY_PAUSE)
        return 0xC6; /* QEMU numbers Pause as its Ctrl+Break form, E0 46 */
    unsigned s = scancode_evdev_to_set1(evdev);
    return s & SCANCODE_E0 ? 0x80 | (s & 0x7F) : s;
}

unsigned scancode_qcode_to_evdev(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(qcodes); i++)
        if (!strcmp(qcodes[i].name, name))
            return qcodes[i].evdev;
    return 0;
}

const char *scancode_evdev_to_qcode(unsigned evdev)
{
    for (size_t i = 0; i < G_N_ELEMENTS(qcodes); i++)
        if (qcodes[i].evdev == evdev)
            return qcodes[i].name;
    return NULL;
}

size_t scancode_encode_set1(unsigned evdev, bool down, uint8_t out[SCANCODE_MAX_BYTES])
{
    if (evdev == KEY_PAUSE) {
        if (!down)
            return 0;
        memcpy(out, pause_set1, sizeof(pause_set1));
        return sizeof(pause_set1);
    }
    unsigned c = scancode_evdev_to_set1(evdev);
    if (!c)
        return 0;
    size_t n = 0;
    if (c & SCANCODE_E0)
        out[n++] = 0xE0;
    out[n++] = (uint8_t)((c & 0x7F) | (down ? 0 : 0x80));
    return n;
}

size_t scancode_encode_set2(unsigned evdev, bool down, uint8_t out[SCANCODE_MAX_BYTES])
{
    if (evdev == KEY_PAUSE) {
        if (!down)
            return 0;
        memcpy(out, pause_set2, sizeof(pause_set2));
        return sizeof(pause_set2);
    }
    unsigned c = scancode_evdev_to_set2(evdev);
    if (!c)
        return 0;
    size_t n = 0;
    if (c & SCANCODE_E0)
        out[n++] = 0xE0;
    if (!down)
        out[n++] = 0xF0;
    out[n++] = (uint8_t)(c & 0xFF);
    return n;
}

bool scancode_decoder_feed(struct scancode_decoder *d, uint8_t byte, unsigned *evdev, bool *down)
{
    /* Pause is Ctrl and NumLock pressed behind E1 prefixes, then released the same way: the first half
     * presses KEY_PAUSE, the second releases it. */
    if (d->pause_len) {
        if (byte == pause_set1[d->pause_len]) {
            d->pause_len++;
            if (d->pause_len == 3 || d->pause_len == sizeof(pause_set1)) {
                *evdev = KEY_PAUSE;
                *down = d->pause_len == 3;
                if (d->pause_len == sizeof(pause_set1))
                    d->pause_len = 0;
                return true;
            }
            return false;
        }
        d->pause_len = 0; /* not Pause after all: take the byte on its own */
    }
    if (byte == 0xE1) {
        d->prefix = 0;
        d->pause_len = 1;
        return false;
    }
    if (byte == 0xE0) {
        d->prefix = 0xE0;
        return false;
    }
    unsigned code = (byte & 0x7Fu) | (d->prefix == 0xE0 ? SCANCODE_E0 : 0);
    d->prefix = 0;
    *evdev = scancode_set1_to_evdev(code);
    *down = !(byte & 0x80);
    return true;
}

size_t scancode_known_keys(const uint16_t **out)
{
    static uint16_t list[G_N_ELEMENTS(keys) + 1];
    static gsize once;
    if (g_once_init_enter(&once)) {
        for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
            list[i] = keys[i].evdev;
        list[G_N_ELEMENTS(keys)] = KEY_PAUSE;
        g_once_init_leave(&once, 1);
    }
    *out = list;
    return G_N_ELEMENTS(list);
}
