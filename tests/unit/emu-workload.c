/* A deterministic mix of compiled C (sorting, recursion, table-driven CRC, bignum multiply, 64-bit division,
 * number formatting, jump tables, indirect calls, struct copies, double arithmetic) for test-emu-exec: linked
 * into the test natively, and built freestanding as a flat binary that the emu runs
 * (emu-exec-workload.h); the two results must agree. Freestanding: no libc, only its argument buffer (64
 * KiB) and the stack. */
#include "emu-workload.h"

#include <stddef.h>
#include <stdint.h>

#define WORKLOAD_N 1500

static uint32_t lcg(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

static void sort_u32(uint32_t *a, long lo, long hi)
{
    while (lo < hi) {
        uint32_t pivot = a[(lo + hi) / 2];
        long i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                uint32_t t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (j - lo < hi - i) {
            sort_u32(a, lo, j);
            lo = i;
        } else {
            sort_u32(a, i, hi);
            hi = j;
        }
    }
}

static uint32_t crc32_bytes(const uint8_t *p, size_t n, uint32_t *table)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint32_t crc = ~0u;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* r[0..2n) = a[0..n) * b[0..n), schoolbook with 128-bit products and carries. */
static void bignum_mul(uint64_t *r, const uint64_t *a, const uint64_t *b, int n)
{
    for (int i = 0; i < 2 * n; i++)
        r[i] = 0;
    for (int i = 0; i < n; i++) {
        uint64_t carry = 0;
        for (int j = 0; j < n; j++) {
            unsigned __int128 t = (unsigned __int128)a[i] * b[j] + r[i + j] + carry;
            r[i + j] = (uint64_t)t;
            carry = (uint64_t)(t >> 64);
        }
        r[i + n] = carry;
    }
}

static size_t format_i64(char *out, int64_t v, unsigned base)
{
    char tmp[72];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do {
        unsigned d = (unsigned)(u % base);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        u /= base;
    } while (u);
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    out[len] = 0;
    return len;
}

static int classify(int c)
{
    switch (c & 15) {
    case 0:
        return 3;
    case 1:
        return 1;
    case 2:
        return 4;
    case 3:
        return 1;
    case 4:
        return 5;
    case 5:
        return 9;
    case 6:
        return 2;
    case 7:
        return 6;
    case 8:
        return 5;
    case 9:
        return 3;
    case 10:
        return 5;
    case 11:
        return 8;
    default:
        return c >> 4;
    }
}

static uint64_t op_add(uint64_t a, uint64_t b)
{
    return a + b;
}

static uint64_t op_xor_rot(uint64_t a, uint64_t b)
{
    return (a ^ b) << 7 | (a ^ b) >> 57;
}

static uint64_t op_mul(uint64_t a, uint64_t b)
{
    return a * (b | 1);
}

struct record {
    uint64_t key;
    int32_t small[5];
    double weight;
    char name[12];
};

uint64_t emu_workload(uint8_t *buf)
{
    uint32_t seed = 12345;
    uint64_t h = 0xcbf29ce484222325ull;
    uint32_t *a = (uint32_t *)buf;

    for (int i = 0; i < WORKLOAD_N; i++)
        a[i] = lcg(&seed);
    sort_u32(a, 0, WORKLOAD_N - 1);
    for (int i = 1; i < WORKLOAD_N; i++)
        h = (h ^ (a[i] >= a[i - 1])) * 0x100000001b3ull;

    uint32_t *table = (uint32_t *)(buf + 8192);
    h ^= crc32_bytes(buf, 4096, table);

    uint64_t *x = (uint64_t *)(buf + 16384), *y = x + 16, *r = y + 16;
    for (int i = 0; i < 16; i++) {
        x[i] = (uint64_t)lcg(&seed) << 40 ^ lcg(&seed);
        y[i] = ~x[i] * 3;
    }
    bignum_mul(r, x, y, 16);
    for (int i = 0; i < 32; i++)
        h = (h ^ r[i]) * 0x100000001b3ull;

    char *text = (char *)(buf + 20480);
    size_t pos = 0;
    for (int i = 0; i < 200; i++) {
        int64_t v = (int64_t)((uint64_t)lcg(&seed) << 33 ^ lcg(&seed)) - (1ll << 40);
        int64_t q = v / ((i - 100) | 1), m = v % 7;
        pos += format_i64(text + pos, q + m, 2 + (unsigned)i % 35);
        text[pos++] = ' ';
    }
    for (size_t i = 0; i < pos; i++)
        h = (h ^ (uint8_t)text[i] ^ (uint64_t)classify(text[i]) << 8) * 0x100000001b3ull;

    static uint64_t (*const ops[3])(uint64_t, uint64_t) = {op_add, op_xor_rot, op_mul};
    for (int i = 0; i < 300; i++)
        h = ops[lcg(&seed) % 3](h, (uint64_t)i);

    struct record *recs = (struct record *)(buf + 32768);
    for (int i = 0; i < 40; i++) {
        struct record rec = {.key = h + (uint64_t)i, .weight = (double)i / 3.0 + 0.25};
        for (int k = 0; k < 5; k++)
            rec.small[k] = (int32_t)(h >> (k * 8)) - 77 * k;
        for (int k = 0; k < 11; k++)
            rec.name[k] = (char)('a' + (h >> k) % 26);
        rec.name[11] = 0;
        recs[i] = rec;
        if (i > 0 && (recs[i - 1].key & 1))
            recs[i] = recs[i - 1];
    }
    double acc = 1.0;
    for (int i = 0; i < 40; i++) {
        acc = acc * 1.0009765625 + recs[i].weight - (double)recs[i].small[i % 5] / 65536.0;
        if (acc > 1e6 || acc < -1e6)
            acc = acc / 1024.0;
        h = (h ^ recs[i].key ^ (uint64_t)(int64_t)acc) * 0x100000001b3ull;
        h ^= (uint8_t)recs[i].name[i % 11];
    }
    float f = (float)acc;
    h ^= (uint64_t)(int64_t)(f * 3.5f);
    h ^= (uint64_t)(acc < 12.5) << 17;
    return h;
}
