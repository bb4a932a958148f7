/* qcow2 metadata cache: LRU of L2 tables or refcount blocks with pinning and write-back. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"

int qcow2_cache_init(struct qcow2_cache *c, unsigned n, uint32_t cluster_size, bool is_l2)
{
    memset(c, 0, sizeof(*c));
    c->e = g_new0(struct qcow2_cache_entry, n);
    c->n = n;
    c->is_l2 = is_l2;
    for (unsigned i = 0; i < n; i++) {
        void *p = NULL;
        if (posix_memalign(&p, BLOCK_FILE_DIRECT_ALIGN, cluster_size) != 0) {
            c->n = i;
            qcow2_cache_destroy(c);
            return -ENOMEM;
        }
        c->e[i].data = p;
    }
    return 0;
}

void qcow2_cache_destroy(struct qcow2_cache *c)
{
    for (unsigned i = 0; c->e && i < c->n; i++)
        free(c->e[i].data);
    g_free(c->e);
    c->e = NULL;
    c->n = 0;
}

static struct qcow2_cache_entry *find(struct qcow2_cache *c, uint64_t off)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->e[i].offset == off)
            return &c->e[i];
    }
    return NULL;
}

static struct qcow2_cache_entry *entry_of(struct qcow2_cache *c, const uint8_t *data)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->e[i].data == data)
            return &c->e[i];
    }
    return NULL;
}

/* A slot to reuse: a free one, else the least recently used unpinned one (written back first if dirty). */
static int victim(struct qcow2_state *s, struct qcow2_cache *c, struct qcow2_cache_entry **out, GError **errp)
{
    struct qcow2_cache_entry *best = NULL;
    for (unsigned i = 0; i < c->n; i++) {
        struct qcow2_cache_entry *e = &c->e[i];
        if (e->offset == 0) {
            *out = e;
            return 0;
        }
        if (e->pins == 0 && (!best || e->lru < best->lru))
            best = e;
    }
    if (!best)
        return block_set_error(errp, s->img, -ENOMEM, "qcow2 metadata cache exhausted (all tables in use)");
    if (best->dirty) {
        int r;
        if (c->is_l2) {
            /* an L2 table may only reach the disk after its data and refcounts: run the ordered flush */
            r = qcow2_flush_metadata(s, errp);
        } else {
            /* refcount blocks only ever hold increments or already-safe decrements: write directly */
            r = qcow2_write_meta(s, best->offset, best->data, s->cluster_size, errp);
            if (r == 0)
                best->dirty = false;
        }
        if (r < 0)
            return r;
    }
    best->offset = 0;
    *out = best;
    return 0;
}

int qcow2_cache_get(struct qcow2_state *s, struct qcow2_cache *c, uint64_t off, uint8_t **data, GError **errp)
{
    struct qcow2_cache_entry *e = find(c, off);
    if (!e) {
        int r = victim(s, c, &e, errp);
        if (r < 0)
            return r;
        r = qcow2_read_file(s, off, e->data, s->cluster_size, errp);
        if (r < 0)
            return r;
        e->offset = off;
        e->dirty = false;
    }
    e->lru = ++c->tick;
    e->pins++;
    *data = e->data;
    return 0;
}

int qcow2_cache_get_new(struct qcow2_state *s, struct qcow2_cache *c, uint64_t off, uint8_t **data,
                        GError **errp)
{
    struct qcow2_cache_entry *e = find(c, off);
    if (!e) {
        int r = victim(s, c, &e, errp);
        if (r < 0)
            return r;
        e->offset = off;
    }
    memset(e->data, 0, s->cluster_size);
    e->dirty = true;
    e->lru = ++c->tick;
    e->pins++;
    *data = e->data;
    return 0;
}

void qcow2_cache_put(struct qcow2_cache *c, const uint8_t *data)
{
    struct qcow2_cache_entry *e = entry_of(c, data);
    if (e && e->pins > 0)
        e->pins--;
}

void qcow2_cache_mark_dirty(struct qcow2_cache *c, const uint8_t *data)
{
    struct qcow2_cache_entry *e = entry_of(c, data);
    if (e)
        e->dirty = true;
}

bool qcow2_cache_has_dirty(const struct qcow2_cache *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->e[i].offset && c->e[i].dirty)
            return true;
    }
    return false;
}

int qcow2_cache_write_dirty(struct qcow2_state *s, struct qcow2_cache *c, bool *wrote, GError **errp)
{
    for (unsigned i = 0; i < c->n; i++) {
        struct qcow2_cache_entry *e = &c->e[i];
        if (!e->offset || !e->dirty)
            continue;
        int r = qcow2_write_meta(s, e->offset, e->data, s->cluster_size, errp);
        if (r < 0)
            return r;
        e->dirty = false;
        if (wrote)
            *wrote = true;
    }
    return 0;
}

void qcow2_cache_discard(struct qcow2_cache *c, uint64_t off)
{
    struct qcow2_cache_entry *e = find(c, off);
    if (e && e->pins == 0) {
        e->offset = 0;
        e->dirty = false;
    }
}

void qcow2_cache_clear(struct qcow2_cache *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        c->e[i].offset = 0;
        c->e[i].dirty = false;
        c->e[i].pins = 0;
    }
}
