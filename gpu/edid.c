/* VESA E-EDID 1.4 blocks describing one preferred mode. */
#include "edid.h"

#include <string.h>

#include <glib.h>

/* Reduced-blanking timing for the preferred mode (CVT-RB style: fixed horizontal blanking, enough vertical
 * blanking for ~460 us), at 60 Hz or the highest rate whose pixel clock fits the 16-bit field. */
struct edid_timing {
    unsigned hfront, hsync, hblank, vfront, vsync, vblank, refresh;
    uint64_t pixel_clock_hz;
};

static void edid_timing(unsigned w, unsigned h, struct edid_timing *t)
{
    t->hfront = 48, t->hsync = 32, t->hblank = 160;
    t->vfront = 3, t->vsync = 6;
    t->vblank = MAX(15u, (h * 284 + 9999) / 10000 + 1);
    uint64_t total = (uint64_t)(w + t->hblank) * (h + t->vblank);
    t->refresh = 60;
    if (total * t->refresh > 655350000ull)
        t->refresh = MAX(1u, (unsigned)(655350000ull / total));
    t->pixel_clock_hz = total * t->refresh;
}

static void edid_descriptor_text(uint8_t *d, uint8_t tag, const char *text)
{
    memset(d, 0, 18);
    d[3] = tag;
    size_t n = MIN(strlen(text), (size_t)13);
    memcpy(d + 5, text, n);
    if (n < 13) {
        d[5 + n] = 0x0a;
        memset(d + 6 + n, 0x20, 13 - n - 1);
    }
}

void edid_build(uint8_t e[EDID_LENGTH], unsigned w, unsigned h)
{
    static const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    memset(e, 0, EDID_LENGTH);
    memcpy(e, header, sizeof(header));
    /* Manufacturer "DVM": three 5-bit letters ('A' = 1), big-endian. */
    uint16_t mfg = (uint16_t)(('D' - '@') << 10 | ('V' - '@') << 5 | ('M' - '@'));
    e[8] = (uint8_t)(mfg >> 8), e[9] = (uint8_t)mfg;
    e[10] = 0x01;                                                      /* product code 1 */
    e[16] = 1;                                                         /* week of manufacture */
    e[17] = 2024 - 1990;                                               /* year */
    e[18] = 1, e[19] = 4;                                              /* EDID 1.4 */
    e[20] = 0x80 | 2 << 4;                                             /* digital input, 8 bits per primary */
    unsigned wmm = (w * 254 + 480) / 960, hmm = (h * 254 + 480) / 960; /* at 96 dpi */
    e[21] = (uint8_t)MIN((wmm + 5) / 10, 255u);
    e[22] = (uint8_t)MIN((hmm + 5) / 10, 255u);
    e[23] = 120;  /* gamma 2.2 */
    e[24] = 0x06; /* sRGB default colour space; the first detailed timing is the preferred mode */
    /* sRGB chromaticity: red, green, blue, white x/y in 1/1024. */
    static const uint16_t chroma[8] = {655, 338, 307, 614, 154, 61, 320, 337};
    e[25] = (uint8_t)((chroma[0] & 3) << 6 | (chroma[1] & 3) << 4 | (chroma[2] & 3) << 2 | (chroma[3] & 3));
    e[26] = (uint8_t)((chroma[4] & 3) << 6 | (chroma[5] & 3) << 4 | (chroma[6] & 3) << 2 | (chroma[7] & 3));
    for (int i = 0; i < 8; i++)
        e[27 + i] = (uint8_t)(chroma[i] >> 2);
    e[35] = 0x21; /* established timings: 640x480@60, 800x600@60 */
    e[36] = 0x08; /* 1024x768@60 */
    /* Standard timings: (width / 8 - 31), aspect (0 16:10, 1 4:3, 2 5:4, 3 16:9) << 6 | (refresh - 60). */
    static const struct {
        uint16_t w;
        uint8_t aspect;
    } std[8] = {{1152, 1}, {1280, 3}, {1280, 0}, {1280, 2}, {1440, 0}, {1600, 3}, {1680, 0}, {1920, 3}};
    for (int i = 0; i < 8; i++) {
        e[38 + 2 * i] = (uint8_t)(std[i].w / 8 - 31);
        e[39 + 2 * i] = (uint8_t)(std[i].aspect << 6);
    }

    /* Descriptor 1: the preferred mode as a detailed timing. */
    struct edid_timing t;
    edid_timing(w, h, &t);
    uint8_t *d = e + 54;
    unsigned clk = (unsigned)((t.pixel_clock_hz + 5000) / 10000);
    unsigned hback_sync = t.hfront, hsw = t.hsync, vfp = t.vfront, vsw = t.vsync;
    d[0] = (uint8_t)clk, d[1] = (uint8_t)(clk >> 8);
    d[2] = (uint8_t)w, d[3] = (uint8_t)t.hblank, d[4] = (uint8_t)((w >> 8) << 4 | (t.hblank >> 8));
    d[5] = (uint8_t)h, d[6] = (uint8_t)t.vblank, d[7] = (uint8_t)((h >> 8) << 4 | (t.vblank >> 8));
    d[8] = (uint8_t)hback_sync, d[9] = (uint8_t)hsw;
    d[10] = (uint8_t)((vfp & 15) << 4 | (vsw & 15));
    d[11] = (uint8_t)((hback_sync >> 8) << 6 | (hsw >> 8) << 4 | (vfp >> 4) << 2 | (vsw >> 4));
    d[12] = (uint8_t)wmm, d[13] = (uint8_t)hmm, d[14] = (uint8_t)((wmm >> 8) << 4 | (hmm >> 8));
    d[17] = 0x1a; /* digital separate sync, hsync +, vsync - */

    /* Descriptor 2: range limits that contain the preferred mode. */
    d = e + 72;
    unsigned hfreq_khz = (unsigned)(t.pixel_clock_hz / (w + t.hblank) / 1000);
    d[3] = 0xfd;
    d[5] = (uint8_t)MIN(50u, t.refresh);
    d[6] = (uint8_t)MAX(75u, t.refresh);
    d[7] = (uint8_t)MIN(30u, hfreq_khz);
    d[8] = (uint8_t)MIN(MAX(80u, hfreq_khz + 1), 255u);
    d[9] = (uint8_t)MIN((unsigned)(t.pixel_clock_hz / 10000000) + 2, 255u);
    d[10] = 0x01; /* range limits only */
    d[11] = 0x0a;
    memset(d + 12, 0x20, 6);

    edid_descriptor_text(e + 90, 0xfc, "deskvm"); /* display product name */
    memset(e + 108, 0, 18);
    e[108 + 3] = 0x10; /* dummy descriptor */

    uint8_t sum = 0;
    for (int i = 0; i < EDID_LENGTH - 1; i++)
        sum = (uint8_t)(sum + e[i]);
    e[EDID_LENGTH - 1] = (uint8_t)(256 - sum);
}
