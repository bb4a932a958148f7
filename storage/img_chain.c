/* deskvm-img commit and rebase: moving data between the layers of a backing chain. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "img.h"

#define SECTOR 512u

static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Finds the layer to commit into: the backing file, or BASE further down. */
static bool find_base(const char *path, const char *fmt, const char *base, char **base_path, char **base_fmt,
                      unsigned *depth)
{
    struct block_image *top = img_open(path, fmt, BLOCK_OPEN_READ_ONLY);
    if (!top)
        return false;
    bool ok = false;
    if (!top->backing) {
        img_error("%s: Image does not have a backing file", path);
    } else {
        struct block_image *l = top->backing;
        unsigned d = 1;
        while (base && l && !same_file(l->filename, base)) {
            l = l->backing;
            d++;
        }
        if (!l) {
            img_error("%s: Did not find '%s' in the backing chain", path, base);
        } else {
            *base_path = g_strdup(l->filename);
            *base_fmt = g_strdup(l->drv->name);
            *depth = d;
            ok = true;
        }
    }
    block_close(top, NULL);
    return ok;
}

/* Copies what the layers above DEPTH hold into BASE. */
static int commit_copy(struct block_image *chain, struct block_image *base, unsigned depth, bool progress,
                       GError **errp)
{
    uint64_t size = block_get_length(chain);
    int r = 0;
    if (block_get_length(base) < size)
        r = block_truncate(base, size, false, errp);
    uint8_t *buf = g_malloc(IMG_CHUNK);
    struct img_progress pr;
    img_progress_start(&pr, progress);
    for (uint64_t off = 0; off < size && r == 0;) {
        struct block_status st;
        r = block_status_chain(chain, off, MIN((uint64_t)IMG_CHUNK, size - off), &st, errp);
        if (r < 0)
            break;
        if (st.depth < depth) {
            if ((st.flags & BLOCK_STATUS_ZERO) && !(st.flags & BLOCK_STATUS_DATA)) {
                r = block_write_zeroes(base, off, st.length, false, errp);
            } else {
                r = block_read(chain, off, buf, st.length, errp);
                if (r == 0)
                    r = block_write(base, off, buf, st.length, errp);
            }
        }
        off += st.length;
        img_progress_update(&pr, off, size);
    }
    img_progress_end(&pr);
    g_free(buf);
    if (r == 0)
        r = block_flush(base, errp);
    return r;
}

int img_cmd_commit(int argc, char **argv)
{
    static const struct option longopts[] = {IMG_LONGOPT_HELP, IMG_LONGOPT_END};
    struct img_opts o = {.cmd = "commit"};
    const char *base = NULL;
    bool keep = false;
    unsigned cache = 0;
    int c;
    while ((c = img_getopt(&o, argc, argv, ":f:t:b:r:dpqh", longopts)) != -1) {
        switch (c) {
        case 't':
            if (!img_cache_flags(optarg, &cache))
                return img_usage_error("commit", "Invalid cache option: %s", optarg);
            break;
        case 'b':
            base = optarg;
            keep = true; /* the images between base and the top become invalid: the top must stay whole */
            break;
        case 'r':
            break; /* rate limit: accepted, not applied */
        case 'd':
            keep = true;
            break;
        default:
            return 1;
        }
    }
    const char *path = img_one_filename(&o, argc, argv);
    if (!path)
        return 1;
    char *base_path = NULL, *base_fmt = NULL;
    unsigned depth = 0;
    if (!find_base(path, o.fmt, base, &base_path, &base_fmt, &depth))
        return 1;
    /* The base opens for writing (its writer lock keeps others out); the chain is then read without
     * locks, which would otherwise clash with it. Only ranges above the base are read from the chain. */
    int ret = 1;
    GError *err = NULL;
    struct block_image *b = img_open(base_path, base_fmt, cache);
    struct block_image *top_w = b && !keep ? img_open(path, o.fmt, BLOCK_OPEN_NO_BACKING | cache) : NULL;
    struct block_image *chain =
        b && (keep || top_w) ? img_open(path, o.fmt, BLOCK_OPEN_READ_ONLY | BLOCK_OPEN_NO_LOCK) : NULL;
    if (chain) {
        if (commit_copy(chain, b, depth, o.progress && !o.quiet, &err) < 0)
            img_fail(err);
        else
            ret = 0;
    }
    block_close(chain, NULL);
    if (b && block_close(b, &err) < 0 && ret == 0)
        ret = img_fail(err);
    if (ret == 0 && top_w && block_make_empty(top_w, &err) < 0)
        ret = img_fail(err);
    if (top_w && block_close(top_w, &err) < 0 && ret == 0)
        ret = img_fail(err);
    if (ret == 0 && !o.quiet)
        printf("Image committed.\n");
    g_free(base_path);
    g_free(base_fmt);
    return ret;
}

/* ---- rebase */

/* Writes into IMG every sector of [off, off+len) where OLD (IMG's current content) and NEW differ. */
static int copy_differences(struct block_image *img, uint64_t off, const uint8_t *old, const uint8_t *nw,
                            uint64_t len, GError **errp)
{
    uint64_t s = 0;
    while (s < len) {
        uint64_t n = MIN((uint64_t)SECTOR, len - s);
        if (memcmp(old + s, nw + s, n) == 0) {
            s += n;
            continue;
        }
        uint64_t e = s + n;
        while (e < len) {
            uint64_t m = MIN((uint64_t)SECTOR, len - e);
            if (memcmp(old + e, nw + e, m) == 0)
                break;
            e += m;
        }
        int r = block_write(img, off + s, old + s, e - s, errp);
        if (r < 0)
            return r;
        s = e;
    }
    return 0;
}

/* Content of the new backing chain at [off, off+len): zeros past its end or without one. */
static int read_new(struct block_image *nb, uint64_t off, uint8_t *buf, uint64_t len, GError **errp)
{
    uint64_t have = 0;
    if (nb && off < block_get_length(nb)) {
        have = MIN(len, block_get_length(nb) - off);
        int r = block_read(nb, off, buf, have, errp);
        if (r < 0)
            return r;
    }
    memset(buf + have, 0, len - have);
    return 0;
}

static int rebase_safe(struct block_image *img, struct block_image *nb, bool progress, GError **errp)
{
    uint64_t size = block_get_length(img);
    uint8_t *old = g_malloc(IMG_CHUNK), *nw = g_malloc(IMG_CHUNK);
    struct img_progress pr;
    img_progress_start(&pr, progress);
    int r = 0;
    for (uint64_t off = 0; off < size && r == 0;) {
        struct block_status st;
        r = block_status(img, off, MIN((uint64_t)IMG_CHUNK, size - off), &st, errp);
        if (r < 0)
            break;
        if (!(st.flags & BLOCK_STATUS_ALLOCATED)) {
            r = block_read(img, off, old, st.length, errp);
            if (r == 0)
                r = read_new(nb, off, nw, st.length, errp);
            if (r == 0)
                r = copy_differences(img, off, old, nw, st.length, errp);
        }
        off += st.length;
        img_progress_update(&pr, off, size);
    }
    img_progress_end(&pr);
    g_free(old);
    g_free(nw);
    return r;
}

int img_cmd_rebase(int argc, char **argv)
{
    static const struct option longopts[] = {IMG_LONGOPT_HELP, IMG_LONGOPT_FORCE_SHARE, IMG_LONGOPT_END};
    struct img_opts o = {.cmd = "rebase"};
    const char *backing = NULL, *bfmt = NULL;
    bool unsafe = false;
    unsigned cache = 0, src_cache = BLOCK_OPEN_READ_ONLY;
    int c;
    while ((c = img_getopt(&o, argc, argv, ":f:b:F:t:T:upqUh", longopts)) != -1) {
        switch (c) {
        case 'b':
            backing = optarg;
            break;
        case 'F':
            bfmt = optarg;
            break;
        case 't':
            if (!img_cache_flags(optarg, &cache))
                return img_usage_error("rebase", "Invalid cache option: %s", optarg);
            break;
        case 'T':
            if (!img_cache_flags(optarg, &src_cache))
                return img_usage_error("rebase", "Invalid source cache option: %s", optarg);
            break;
        case 'u':
            unsafe = true;
            break;
        default:
            return 1;
        }
    }
    const char *path = img_one_filename(&o, argc, argv);
    if (!path)
        return 1;
    if (!backing)
        return img_usage_error("rebase", "Must specify backing file (-b); -b \"\" removes it");
    if (o.force_share)
        src_cache |= BLOCK_OPEN_NO_LOCK;
    if (!*backing)
        backing = NULL, bfmt = NULL;
    if (bfmt && !block_find_driver(bfmt)) {
        img_error("Invalid format name: '%s'", bfmt);
        return 1;
    }
    struct block_image *img = img_open(path, o.fmt, cache | (unsafe ? BLOCK_OPEN_NO_BACKING : 0));
    if (!img)
        return 1;
    struct block_image *nb = NULL;
    char *probed = NULL;
    int ret = 0;
    GError *err = NULL;
    if (backing) {
        char *full = block_resolve_backing(path, backing);
        if (unsafe) {
            /* the new backing file need not exist yet; its format is recorded when it can be probed */
            if (!bfmt) {
                struct block_image *p = block_open(
                    full, NULL, BLOCK_OPEN_READ_ONLY | BLOCK_OPEN_NO_LOCK | BLOCK_OPEN_NO_BACKING, NULL);
                if (p) {
                    probed = g_strdup(p->drv->name);
                    block_close(p, NULL);
                }
            }
        } else {
            nb = img_open(full, bfmt, src_cache);
            if (!nb) {
                img_error("%s: Could not open new backing file '%s'", path, full);
                ret = 1;
            } else if (!bfmt) {
                probed = g_strdup(nb->drv->name);
            }
        }
        g_free(full);
    }
    if (ret == 0 && !unsafe && rebase_safe(img, nb, o.progress && !o.quiet, &err) < 0)
        ret = img_fail(err);
    block_close(nb, NULL);
    if (ret == 0 && block_change_backing(img, backing, bfmt ? bfmt : probed, &err) < 0)
        ret = img_fail(err);
    if (block_close(img, &err) < 0 && ret == 0)
        ret = img_fail(err);
    g_free(probed);
    return ret;
}
