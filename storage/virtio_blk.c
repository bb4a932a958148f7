/* virtio-blk: requests validated under the machine lock, block I/O on one worker thread per disk. */
#include "virtio_blk.h"

#include "options.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "block.h"
#include "log.h"
#include "size_parse.h"
#include "pci.h"
#include "virtio_pci.h"

static const char blk_name[] = "virtio-blk";

/* A discard or write-zeroes segment. */
struct blk_range {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
};

/* One guest buffer segment of a request's data. */
struct blk_buf {
    void *host;
    uint64_t gpa;
    size_t len;
};

/* A validated request on its way to or back from the worker. The buffers point into guest RAM, which stays
 * mapped for the machine's lifetime; reset and destroy wait for the request being executed. */
struct blk_req {
    struct blk_req *next;
    struct virtqueue *vq;
    struct virtq_elem *elem;
    uint32_t type;
    uint64_t offset;    /* bytes */
    bool write_through; /* the driver did not take FLUSH: every write is flushed before it completes */
    uint8_t status;     /* set by the worker */
    uint32_t written;   /* bytes written into the chain, status byte included */
    unsigned nranges;
    struct blk_range ranges[MAX(VIRTIO_BLK_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_WRITE_ZEROES_SEG)];
    unsigned nbufs;
    struct blk_buf bufs[];
};

struct blk_fifo {
    struct blk_req *head, *tail;
};

struct virtio_blk {
    struct machine *m;
    struct virtio_pci *vp;
    struct block_image *img;
    char name[24]; /* "virtio-blk0", for messages */
    char id[VIRTIO_BLK_ID_BYTES];
    bool read_only, discard_unmap;
    uint64_t capacity;          /* sectors */
    uint32_t opt_io_sectors;    /* qcow2 cluster, else 0 */
    unsigned inflight;          /* popped and not yet completed (machine lock) */
    struct log_ratelimit rl;    /* guest errors (machine lock) */
    struct log_ratelimit io_rl; /* I/O errors (worker thread) */

    GThread *worker;
    GMutex lock; /* everything below; taken after the machine lock, never the other way round */
    GCond cond;  /* work queued, a request finished, quit */
    struct blk_fifo pending, done;
    bool executing;
    bool quit;
};

/* ---------------------------------------------------------------- the --disk option */

static char *conf_set(struct virtio_blk_conf *c, const char *key, const char *value)
{
    if (!strcmp(key, "file")) {
        if (!*value)
            return g_strdup("file= needs a file name");
        c->file = g_canonicalize_filename(value, NULL);
    } else if (!strcmp(key, "format")) {
        if (strcmp(value, "raw") && strcmp(value, "qcow2"))
            return g_strdup_printf("format '%s' is not raw or qcow2", value);
        c->format = g_strdup(value);
    } else if (!strcmp(key, "readonly")) {
        if (!strcmp(value, "on") || !strcmp(value, "true") || !strcmp(value, "yes"))
            c->read_only = true;
        else if (!strcmp(value, "off") || !strcmp(value, "false") || !strcmp(value, "no"))
            c->read_only = false;
        else
            return g_strdup_printf("readonly '%s' is not on or off", value);
    } else if (!strcmp(key, "cache")) {
        if (!strcmp(value, "writeback"))
            c->cache = VIRTIO_BLK_CACHE_WRITEBACK;
        else if (!strcmp(value, "none"))
            c->cache = VIRTIO_BLK_CACHE_NONE;
        else if (!strcmp(value, "unsafe"))
            c->cache = VIRTIO_BLK_CACHE_UNSAFE;
        else
            return g_strdup_printf("cache '%s' is not writeback, none or unsafe", value);
    } else if (!strcmp(key, "discard")) {
        if (!strcmp(value, "unmap") || !strcmp(value, "on"))
            c->discard_unmap = true;
        else if (!strcmp(value, "ignore") || !strcmp(value, "off"))
            c->discard_unmap = false;
        else
            return g_strdup_printf("discard '%s' is not unmap or ignore", value);
    } else if (!strcmp(key, "l2-cache-size")) {
        uint64_t v;
        if (!size_parse(value, 1, &v) || v < 64 * 1024 || v > (1ull << 30))
            return g_strdup_printf("l2-cache-size '%s' is not a size from 64K to 1G", value);
        c->l2_cache_size = v;
    } else {
        return g_strdup_printf(
            "unknown parameter '%s' (known: file, format, readonly, cache, discard, l2-cache-size)", key);
    }
    return NULL;
}

bool virtio_blk_conf_parse(const char *spec, struct virtio_blk_conf *out, char **error)
{
    static const char *const keys[] = {"file", "format", "readonly", "cache", "discard", "l2-cache-size"};
    bool seen[G_N_ELEMENTS(keys)] = {0};
    memset(out, 0, sizeof(*out));
    GString *item = g_string_new(NULL);
    char *why = NULL;
    for (const char *p = spec;; p++) {
        if (*p == ',' && p[1] == ',') { /* an escaped comma inside a value */
            g_string_append_c(item, ',');
            p++;
            continue;
        }
        if (*p && *p != ',') {
            g_string_append_c(item, *p);
            continue;
        }
        char *eq = strchr(item->str, '=');
        if (!eq) {
            why = item->len ? g_strdup_printf("'%s' is not key=value", item->str)
                            : g_strdup("empty parameter (expected file=PATH[,format=...])");
            break;
        }
        *eq = 0;
        size_t k = 0;
        while (k < G_N_ELEMENTS(keys) && strcmp(keys[k], item->str))
            k++;
        if (k < G_N_ELEMENTS(keys) && seen[k]) {
            why = g_strdup_printf("%s= given twice", item->str);
            break;
        }
        if (k < G_N_ELEMENTS(keys))
            seen[k] = true;
        why = conf_set(out, item->str, eq + 1);
        if (why)
            break;
        g_string_truncate(item, 0);
        if (!*p)
            break;
    }
    g_string_free(item, TRUE);
    if (!why && !out->file)
        why = g_strdup("needs file=PATH");
    if (why) {
        virtio_blk_conf_clear(out);
        *error = why;
        return false;
    }
    return true;
}

void virtio_blk_conf_clear(struct virtio_blk_conf *conf)
{
    g_free(conf->file);
    g_free(conf->format);
    memset(conf, 0, sizeof(*conf));
}

/* ---------------------------------------------------------------- configuration space */

static uint64_t blk_config_read(void *opaque, unsigned offset, unsigned size)
{
    struct virtio_blk *d = opaque;
    uint8_t c[VIRTIO_BLK_CFG_SIZE] = {0};
    le64_store(c + VIRTIO_BLK_CFG_CAPACITY, d->capacity);
    le32_store(c + VIRTIO_BLK_CFG_SEG_MAX, VIRTIO_BLK_SEG_MAX);
    le32_store(c + VIRTIO_BLK_CFG_BLK_SIZE, VIRTIO_BLK_SECTOR_SIZE);
    c[VIRTIO_BLK_CFG_PHYSICAL_BLOCK_EXP] = 3; /* 4 KiB: the page cache's and O_DIRECT's unit */
    le16_store(c + VIRTIO_BLK_CFG_MIN_IO_SIZE, 8);
    le32_store(c + VIRTIO_BLK_CFG_OPT_IO_SIZE, d->opt_io_sectors);
    c[VIRTIO_BLK_CFG_WRITEBACK] = 1;
    le16_store(c + VIRTIO_BLK_CFG_NUM_QUEUES, 1);
    le32_store(c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, VIRTIO_BLK_MAX_DISCARD_SECTORS);
    le32_store(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_DISCARD_SEG);
    le32_store(c + VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT, VIRTIO_BLK_DISCARD_ALIGNMENT);
    le32_store(c + VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, VIRTIO_BLK_MAX_WRITE_ZEROES_SECTORS);
    le32_store(c + VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, VIRTIO_BLK_MAX_WRITE_ZEROES_SEG);
    c[VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP] = d->discard_unmap;
    uint64_t v = 0;
    for (unsigned i = 0; i < size && offset + i < sizeof(c); i++)
        v |= (uint64_t)c[offset + i] << (8 * i);
    return v;
}

static uint64_t blk_features(const struct virtio_blk *d)
{
    uint64_t f = VIRTIO_F_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_F_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                 VIRTIO_F_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_F_BIT(VIRTIO_BLK_F_TOPOLOGY);
    if (d->read_only)
        return f | VIRTIO_F_BIT(VIRTIO_BLK_F_RO);
    f |= VIRTIO_F_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
    if (d->discard_unmap)
        f |= VIRTIO_F_BIT(VIRTIO_BLK_F_DISCARD);
    return f;
}

/* ---------------------------------------------------------------- the worker */

static void fifo_push(struct blk_fifo *q, struct blk_req *r)
{
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
}

static struct blk_req *fifo_pop(struct blk_fifo *q)
{
    struct blk_req *r = q->head;
    if (r) {
        q->head = r->next;
        if (!q->head)
            q->tail = NULL;
    }
    return r;
}

static struct blk_req *fifo_take_all(struct blk_fifo *q)
{
    struct blk_req *r = q->head;
    q->head = q->tail = NULL;
    return r;
}

static void req_free_list(struct blk_req *r)
{
    while (r) {
        struct blk_req *next = r->next;
        virtq_elem_free(r->elem);
        g_free(r);
        r = next;
    }
}

static int execute_ranges(struct virtio_blk *d, struct blk_req *r, GError **err)
{
    for (unsigned i = 0; i < r->nranges; i++) {
        uint64_t off = r->ranges[i].sector * VIRTIO_BLK_SECTOR_SIZE;
        uint64_t len = (uint64_t)r->ranges[i].num_sectors * VIRTIO_BLK_SECTOR_SIZE;
        int ret = 0;
        if (r->type == VIRTIO_BLK_T_DISCARD)
            ret = block_discard(d->img, off, len, err);
        else
            ret = block_write_zeroes(
                d->img, off, len,
                d->discard_unmap && (r->ranges[i].flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP), err);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Runs on the worker thread without any machine state: only the image and the request's own buffers. */
static void execute(struct virtio_blk *d, struct blk_req *r)
{
    GError *err = NULL;
    int ret = 0;
    uint64_t off = r->offset;
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
        for (unsigned i = 0; i < r->nbufs && ret >= 0; off += r->bufs[i].len, i++) {
            ret = block_read(d->img, off, r->bufs[i].host, r->bufs[i].len, &err);
            /* DMA into RAM: the software CPU drops code it decoded from these bytes. */
            guest_mem_write_done(&d->m->mem, r->bufs[i].gpa, r->bufs[i].len);
        }
        break;
    case VIRTIO_BLK_T_OUT:
        for (unsigned i = 0; i < r->nbufs && ret >= 0; off += r->bufs[i].len, i++)
            ret = block_write(d->img, off, r->bufs[i].host, r->bufs[i].len, &err);
        break;
    case VIRTIO_BLK_T_FLUSH:
        ret = block_flush(d->img, &err);
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        ret = execute_ranges(d, r, &err);
        break;
    }
    if (ret >= 0 && r->write_through && r->type != VIRTIO_BLK_T_IN && r->type != VIRTIO_BLK_T_FLUSH)
        ret = block_flush(d->img, &err);
    if (ret < 0) {
        log_message_ratelimited(&d->io_rl, LOG_LEVEL_ERROR, "%s: %s failed: %s", d->name,
                                r->type == VIRTIO_BLK_T_IN      ? "read"
                                : r->type == VIRTIO_BLK_T_FLUSH ? "flush"
                                                                : "write",
                                err ? err->message : g_strerror(-ret));
        r->status = VIRTIO_BLK_S_IOERR;
    } else {
        r->status = VIRTIO_BLK_S_OK;
    }
    g_clear_error(&err);
}

static bool process_queue(struct virtio_blk *d, struct virtqueue *vq);

/* Puts one request's status byte and used entry into the rings (machine lock held). */
static void complete(struct virtqueue *vq, struct virtq_elem *e, uint8_t status, uint32_t written)
{
    virtq_elem_copy_to(vq, e, e->in_len - 1, &status, 1);
    virtqueue_push(vq, e, written);
    virtq_elem_free(e);
}

/* Completes what the worker finished (machine lock held). */
static void complete_done(struct virtio_blk *d)
{
    g_mutex_lock(&d->lock);
    struct blk_req *list = fifo_take_all(&d->done);
    g_mutex_unlock(&d->lock);
    struct virtqueue *vq = NULL;
    while (list) {
        struct blk_req *r = list;
        list = r->next;
        vq = r->vq;
        if (d->inflight)
            d->inflight--;
        complete(r->vq, r->elem, r->status, r->status == VIRTIO_BLK_S_OK ? r->written : 1);
        g_free(r);
    }
    if (vq) {
        process_queue(d, vq); /* requests left on the ring while the in-flight limit was reached */
        virtqueue_notify(vq);
    }
}

/* The worker hands its completions over under the machine lock. It only ever tries the lock: reset and
 * destroy hold it while they wait for the worker, so blocking here could deadlock. While someone else holds
 * it, the worker goes on with queued requests (their completions go with these ones), or backs off; it gives
 * up once reset took the completions away or destroy asked it to stop. */
static void deliver(struct virtio_blk *d)
{
    for (unsigned tries = 0;; tries++) {
        if (g_rec_mutex_trylock(&d->m->lock)) {
            complete_done(d);
            machine_unlock(d->m);
            return;
        }
        g_mutex_lock(&d->lock);
        bool give_up = d->quit || !d->done.head || d->pending.head;
        if (!give_up && tries >= 16)
            g_cond_wait_until(&d->cond, &d->lock, g_get_monotonic_time() + 100);
        g_mutex_unlock(&d->lock);
        if (give_up)
            return;
        if (tries < 16)
            g_thread_yield();
    }
}

static gpointer worker_main(gpointer opaque)
{
    struct virtio_blk *d = opaque;
    g_mutex_lock(&d->lock);
    for (;;) {
        struct blk_req *r = fifo_pop(&d->pending);
        if (!r) {
            if (d->quit)
                break;
            g_cond_wait(&d->cond, &d->lock);
            continue;
        }
        d->executing = true;
        g_mutex_unlock(&d->lock);
        execute(d, r);
        g_mutex_lock(&d->lock);
        d->executing = false;
        fifo_push(&d->done, r);
        g_cond_broadcast(&d->cond);
        if (d->quit)
            continue; /* nobody takes completions any more; finish what was queued */
        g_mutex_unlock(&d->lock);
        deliver(d);
        g_mutex_lock(&d->lock);
    }
    g_mutex_unlock(&d->lock);
    return NULL;
}

/* Drops every request: queued ones at once, the one being executed once it is done (machine lock held). */
static void drop_requests(struct virtio_blk *d)
{
    g_mutex_lock(&d->lock);
    struct blk_req *queued = fifo_take_all(&d->pending);
    while (d->executing)
        g_cond_wait(&d->cond, &d->lock);
    struct blk_req *done = fifo_take_all(&d->done);
    g_mutex_unlock(&d->lock);
    req_free_list(queued);
    req_free_list(done);
    d->inflight = 0;
}

/* ---------------------------------------------------------------- requests */

static void guest_error(struct virtio_blk *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void guest_error(struct virtio_blk *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    log_message_ratelimited(&d->rl, LOG_LEVEL_WARN, "%s: %s", d->name, msg);
}

/* Host pointers for bytes [off, off + len) of the element's readable or writable side. */
static bool map_data(struct virtio_blk *d, const struct virtq_elem *e, bool writable, uint64_t off,
                     uint64_t len, struct blk_req *r)
{
    struct guest_memory *mem = &d->m->mem;
    unsigned first = writable ? e->out_num : 0, end = writable ? e->out_num + e->in_num : e->out_num;
    for (unsigned i = first; i < end && len; i++) {
        uint64_t seg_len = e->seg[i].len;
        if (off >= seg_len) {
            off -= seg_len;
            continue;
        }
        uint64_t n = MIN(seg_len - off, len);
        void *p = writable ? guest_mem_map_write(mem, e->seg[i].addr + off, n)
                           : (void *)(uintptr_t)guest_mem_map_read(mem, e->seg[i].addr + off, n);
        if (!p)
            return false;
        r->bufs[r->nbufs++] = (struct blk_buf){p, e->seg[i].addr + off, n};
        len -= n;
        off = 0;
    }
    return len == 0;
}

/* Whether [sector, sector + count) lies on the disk, without overflowing. */
static bool range_ok(const struct virtio_blk *d, uint64_t sector, uint64_t count)
{
    return sector <= d->capacity && count <= d->capacity - sector;
}

static uint8_t parse_ranges(struct virtio_blk *d, struct virtqueue *vq, struct virtq_elem *e,
                            struct blk_req *r)
{
    bool discard = r->type == VIRTIO_BLK_T_DISCARD;
    const char *what = discard ? "discard" : "write-zeroes";
    uint64_t payload = e->out_len - VIRTIO_BLK_OUTHDR_SIZE;
    unsigned max_seg = discard ? VIRTIO_BLK_MAX_DISCARD_SEG : VIRTIO_BLK_MAX_WRITE_ZEROES_SEG;
    uint32_t max_sectors = discard ? VIRTIO_BLK_MAX_DISCARD_SECTORS : VIRTIO_BLK_MAX_WRITE_ZEROES_SECTORS;
    if (!payload || payload % VIRTIO_BLK_SEGMENT_SIZE || payload / VIRTIO_BLK_SEGMENT_SIZE > max_seg) {
        guest_error(d, "%s with %llu bytes of segments (a multiple of 16, at most %u segments)", what,
                    (unsigned long long)payload, max_seg);
        return VIRTIO_BLK_S_IOERR;
    }
    r->nranges = (unsigned)(payload / VIRTIO_BLK_SEGMENT_SIZE);
    for (unsigned i = 0; i < r->nranges; i++) {
        uint8_t s[VIRTIO_BLK_SEGMENT_SIZE];
        if (virtq_elem_copy_from(vq, e, VIRTIO_BLK_OUTHDR_SIZE + i * sizeof(s), s, sizeof(s)) != sizeof(s))
            return VIRTIO_BLK_S_IOERR;
        struct blk_range *g = &r->ranges[i];
        *g = (struct blk_range){le64_load(s), le32_load(s + 8), le32_load(s + 12)};
        uint32_t allowed = discard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
        if (g->flags & ~allowed) {
            guest_error(d, "%s segment with flags 0x%x", what, g->flags);
            return VIRTIO_BLK_S_UNSUPP;
        }
        if (g->num_sectors > max_sectors || !range_ok(d, g->sector, g->num_sectors)) {
            guest_error(d, "%s of %u sectors at sector %llu: beyond the disk (%llu sectors) or the limit %u",
                        what, g->num_sectors, (unsigned long long)g->sector, (unsigned long long)d->capacity,
                        max_sectors);
            return VIRTIO_BLK_S_IOERR;
        }
    }
    return VIRTIO_BLK_S_OK;
}

/* Checks a read or write and maps its data; the status byte is the last writable byte. */
static uint8_t parse_rw(struct virtio_blk *d, struct virtq_elem *e, struct blk_req *r, uint64_t sector)
{
    bool in = r->type == VIRTIO_BLK_T_IN;
    uint64_t len = in ? e->in_len - 1 : e->out_len - VIRTIO_BLK_OUTHDR_SIZE;
    if (len % VIRTIO_BLK_SECTOR_SIZE) {
        guest_error(d, "%s of %llu bytes: not a multiple of 512", in ? "read" : "write",
                    (unsigned long long)len);
        return VIRTIO_BLK_S_IOERR;
    }
    if (!range_ok(d, sector, len / VIRTIO_BLK_SECTOR_SIZE)) {
        guest_error(d, "%s of %llu sectors at sector %llu: beyond the disk (%llu sectors)",
                    in ? "read" : "write", (unsigned long long)(len / VIRTIO_BLK_SECTOR_SIZE),
                    (unsigned long long)sector, (unsigned long long)d->capacity);
        return VIRTIO_BLK_S_IOERR;
    }
    if (!map_data(d, e, in, in ? 0 : VIRTIO_BLK_OUTHDR_SIZE, len, r)) {
        guest_error(d, "request buffers are not in guest RAM");
        return VIRTIO_BLK_S_IOERR;
    }
    r->offset = sector * VIRTIO_BLK_SECTOR_SIZE;
    r->written = in ? (uint32_t)e->in_len : 1;
    return VIRTIO_BLK_S_OK;
}

/* What parse returns for a request the worker is to execute (else: the status to complete it with now). */
#define TO_WORKER (-1)

/* Validates one request and fills in r. GET_ID is answered here. */
static int parse(struct virtio_blk *d, struct virtqueue *vq, struct virtq_elem *e, struct blk_req *r,
                 uint32_t *written)
{
    struct virtio_device *vdev = virtio_pci_vdev(d->vp);
    uint8_t hdr[VIRTIO_BLK_OUTHDR_SIZE];
    if (e->out_len < sizeof(hdr)) {
        guest_error(d, "request header of %llu bytes (16 needed)", (unsigned long long)e->out_len);
        return VIRTIO_BLK_S_IOERR;
    }
    if (e->out_num + e->in_num > VIRTIO_BLK_SEG_MAX + 2) {
        guest_error(d, "request of %u segments (seg_max is %u)", e->out_num + e->in_num, VIRTIO_BLK_SEG_MAX);
        return VIRTIO_BLK_S_IOERR;
    }
    if (virtq_elem_copy_from(vq, e, 0, hdr, sizeof(hdr)) != sizeof(hdr))
        return VIRTIO_BLK_S_IOERR;
    r->type = le32_load(hdr);
    uint64_t sector = le64_load(hdr + 8);
    r->write_through = !virtio_has_feature(vdev, VIRTIO_BLK_F_FLUSH);
    bool writes = r->type == VIRTIO_BLK_T_OUT || r->type == VIRTIO_BLK_T_DISCARD ||
                  r->type == VIRTIO_BLK_T_WRITE_ZEROES;
    if (writes && d->read_only) {
        guest_error(d, "write request (type %u) to a read-only disk", r->type);
        return VIRTIO_BLK_S_IOERR;
    }
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        return parse_rw(d, e, r, sector) == VIRTIO_BLK_S_OK ? TO_WORKER : VIRTIO_BLK_S_IOERR;
    case VIRTIO_BLK_T_FLUSH:
        r->written = 1;
        return TO_WORKER;
    case VIRTIO_BLK_T_GET_ID: {
        char id[VIRTIO_BLK_ID_BYTES];
        strncpy(id, d->id, sizeof(id)); /* zero-padded; not terminated when it fills all 20 bytes */
        uint32_t n = (uint32_t)MIN(sizeof(id), e->in_len - 1);
        virtq_elem_copy_to(vq, e, 0, id, n);
        *written = n + 1;
        return VIRTIO_BLK_S_OK;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
        unsigned bit = r->type == VIRTIO_BLK_T_DISCARD ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES;
        if (!virtio_has_feature(vdev, bit)) {
            guest_error(d, "request type %u without its feature", r->type);
            return VIRTIO_BLK_S_UNSUPP;
        }
        r->written = 1;
        uint8_t status = parse_ranges(d, vq, e, r);
        return status == VIRTIO_BLK_S_OK ? TO_WORKER : status;
    }
    default:
        guest_error(d, "unsupported request type %u", r->type);
        return VIRTIO_BLK_S_UNSUPP;
    }
}

/* Returns whether the request was completed at once. */
static bool handle(struct virtio_blk *d, struct virtqueue *vq, struct virtq_elem *e)
{
    if (e->in_len == 0) {
        /* Nowhere to put a status: hand the buffers back with nothing written. */
        guest_error(d, "request without a writable status byte");
        virtqueue_push(vq, e, 0);
        virtq_elem_free(e);
        return true;
    }
    struct blk_req *r = g_malloc0(sizeof(*r) + sizeof(struct blk_buf) * (e->out_num + e->in_num));
    r->vq = vq;
    r->elem = e;
    uint32_t written = 1;
    int status = parse(d, vq, e, r, &written);
    if (status != TO_WORKER) {
        g_free(r);
        complete(vq, e, (uint8_t)status, written);
        return true;
    }
    d->inflight++;
    g_mutex_lock(&d->lock);
    fifo_push(&d->pending, r);
    g_cond_broadcast(&d->cond);
    g_mutex_unlock(&d->lock);
    return false;
}

/* Takes requests off the ring, at most a queue's worth in flight (machine lock held). Returns whether some
 * were completed at once. */
static bool process_queue(struct virtio_blk *d, struct virtqueue *vq)
{
    bool completed = false;
    while (d->inflight < vq->size) {
        struct virtq_elem *e = virtqueue_pop(vq);
        if (!e)
            break;
        completed |= handle(d, vq, e);
    }
    return completed;
}

static void blk_queue_notify(void *opaque, struct virtqueue *vq)
{
    if (process_queue(opaque, vq))
        virtqueue_notify(vq);
}

static void blk_reset(void *opaque)
{
    drop_requests(opaque);
}

static const struct virtio_device_ops blk_ops = {
    .config_read = blk_config_read,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
};

/* ---------------------------------------------------------------- life cycle */

struct virtio_blk *virtio_blk_new(struct machine *m, unsigned slot, unsigned index,
                                  const struct virtio_blk_conf *conf, char **error)
{
    unsigned flags = conf->read_only ? BLOCK_OPEN_READ_ONLY : 0;
    if (conf->cache == VIRTIO_BLK_CACHE_NONE)
        flags |= BLOCK_OPEN_CACHE_NONE;
    else if (conf->cache == VIRTIO_BLK_CACHE_UNSAFE)
        flags |= BLOCK_OPEN_CACHE_UNSAFE;
    struct block_options bo = {.format = conf->format, .flags = flags, .l2_cache_size = conf->l2_cache_size};
    GError *err = NULL;
    struct block_image *img = block_open_opts(conf->file, &bo, &err);
    if (!img) {
        *error = g_strdup(err->message);
        g_error_free(err);
        return NULL;
    }
    struct virtio_blk *d = g_new0(struct virtio_blk, 1);
    d->m = m;
    d->img = img;
    g_snprintf(d->name, sizeof(d->name), "%s%u", blk_name, index);
    g_snprintf(d->id, sizeof(d->id), "deskvm-disk%u", index);
    d->read_only = conf->read_only;
    d->discard_unmap = conf->discard_unmap;
    d->capacity = block_get_length(img) / VIRTIO_BLK_SECTOR_SIZE;
    struct block_info info;
    block_get_info(img, &info);
    d->opt_io_sectors = info.cluster_size / VIRTIO_BLK_SECTOR_SIZE;
    d->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 10);
    d->io_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5000, 10);
    g_mutex_init(&d->lock);
    g_cond_init(&d->cond);

    const struct virtio_pci_config cfg = {
        .dev = {.name = blk_name,
                .device_type = VIRTIO_ID_BLOCK,
                .features = blk_features(d),
                .config_size = VIRTIO_BLK_CFG_SIZE,
                .num_queues = 1,
                .queue_max_size = VIRTIO_BLK_QUEUE_SIZE,
                .ops = &blk_ops,
                .opaque = d},
        .class_code = 0x010000, /* mass storage, SCSI: what virtio-blk functions report */
    };
    d->vp = virtio_pci_create(m->pci, slot, 0, &cfg, error);
    if (!d->vp) {
        block_close(img, NULL);
        g_cond_clear(&d->cond);
        g_mutex_clear(&d->lock);
        g_free(d);
        return NULL;
    }
    d->worker = g_thread_new("deskvm-blk", worker_main, d);
    log_info("%s: %s (%s%s), %llu sectors, PCI slot %u", d->name, conf->file, info.format,
             d->read_only ? ", read-only" : "", (unsigned long long)d->capacity, slot);
    return d;
}

void virtio_blk_free(struct virtio_blk *d)
{
    if (!d)
        return;
    g_mutex_lock(&d->lock);
    d->quit = true;
    g_cond_broadcast(&d->cond);
    g_mutex_unlock(&d->lock);
    g_thread_join(d->worker);
    req_free_list(fifo_take_all(&d->pending));
    req_free_list(fifo_take_all(&d->done));
    GError *err = NULL;
    if (block_close(d->img, &err) < 0) {
        log_error("%s: closing the image: %s", d->name, err ? err->message : "failed");
        g_clear_error(&err);
    }
    virtio_pci_free(d->vp);
    g_cond_clear(&d->cond);
    g_mutex_clear(&d->lock);
    g_free(d);
}

void virtio_blk_reset(struct virtio_blk *d)
{
    virtio_pci_reset(d->vp);
}

struct virtio_pci *virtio_blk_pci(struct virtio_blk *d)
{
    return d->vp;
}

struct virtio_blk *virtio_blk_at(struct machine *m, unsigned slot)
{
    struct pci_device *p = m->pci ? pci_bus_get_device(m->pci, slot, 0) : NULL;
    if (!p || p->name != blk_name)
        return NULL;
    return container_of(p, struct virtio_pci, pci)->vdev.opaque;
}

/* ---------------------------------------------------------------- the machine's disks */

static void disks_destroy(struct machine *m)
{
    for (unsigned i = 0; i < VIRTIO_BLK_MAX_DISKS; i++)
        virtio_blk_free(virtio_blk_at(m, VIRTIO_BLK_FIRST_SLOT + i));
}

static int disks_create(struct machine *m, char **error)
{
    if (!m->pci) {
        *error = g_strdup("needs the PCI host bridge (list pci-host before it)");
        return -EINVAL;
    }
    if (m->config.ndisks > VIRTIO_BLK_MAX_DISKS) {
        *error = g_strdup_printf("%u disks: at most %d", m->config.ndisks, VIRTIO_BLK_MAX_DISKS);
        return -EINVAL;
    }
    for (unsigned i = 0; i < m->config.ndisks; i++) {
        if (!virtio_blk_new(m, VIRTIO_BLK_FIRST_SLOT + i, i, &m->config.disks[i], error)) {
            disks_destroy(m);
            return -EIO;
        }
    }
    return 0;
}

static void disks_reset(struct machine *m)
{
    for (unsigned i = 0; i < VIRTIO_BLK_MAX_DISKS; i++) {
        struct virtio_blk *d = virtio_blk_at(m, VIRTIO_BLK_FIRST_SLOT + i);
        if (d)
            virtio_blk_reset(d);
    }
}

const struct machine_device virtio_blk_device = {"virtio-blk", disks_create, disks_reset, disks_destroy};
