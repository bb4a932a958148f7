/* deskvm-img info, check and map: the read-only reports, in qemu-img's human and JSON shapes. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "img.h"

/* ---- a small JSON writer producing qemu-img's layout (4-space indent, "key": value) */

struct json_out {
    GString *s;
    int depth;
    bool first[16];
};

static void json_escape(GString *s, const char *v)
{
    g_string_append_c(s, '"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            g_string_append_printf(s, "\\%c", *p);
        else if (*p < 0x20)
            g_string_append_printf(s, "\\u%04x", *p);
        else
            g_string_append_c(s, (char)*p);
    }
    g_string_append_c(s, '"');
}

static void json_key(struct json_out *j, const char *key)
{
    if (j->depth > 0) {
        g_string_append(j->s, j->first[j->depth] ? "\n" : ",\n");
        j->first[j->depth] = false;
        for (int i = 0; i < j->depth; i++)
            g_string_append(j->s, "    ");
    }
    if (key) {
        json_escape(j->s, key);
        g_string_append(j->s, ": ");
    }
}

static void json_open(struct json_out *j, const char *key, char bracket)
{
    json_key(j, key);
    g_string_append_c(j->s, bracket);
    if (j->depth + 1 < (int)G_N_ELEMENTS(j->first))
        j->depth++;
    j->first[j->depth] = true;
}

static void json_close(struct json_out *j, char bracket)
{
    bool empty = j->first[j->depth];
    j->depth--;
    if (!empty) {
        g_string_append_c(j->s, '\n');
        for (int i = 0; i < j->depth; i++)
            g_string_append(j->s, "    ");
    }
    g_string_append_c(j->s, bracket);
}

static void json_str(struct json_out *j, const char *key, const char *v)
{
    json_key(j, key);
    json_escape(j->s, v);
}

static void json_int(struct json_out *j, const char *key, int64_t v)
{
    json_key(j, key);
    g_string_append_printf(j->s, "%" PRId64, v);
}

static void json_bool(struct json_out *j, const char *key, bool v)
{
    json_key(j, key);
    g_string_append(j->s, v ? "true" : "false");
}

/* ---- info */

void img_print_snapshots(const struct block_snapshot_info *list, size_t n)
{
    if (n == 0)
        return;
    printf("Snapshot list:\n%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK",
           "ICOUNT");
    for (size_t i = 0; i < n; i++) {
        const struct block_snapshot_info *sn = &list[i];
        char date[32] = "", clock[40], icount[24] = "";
        time_t t = sn->date_sec;
        struct tm tm;
        if (localtime_r(&t, &tm))
            strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
        uint64_t ms = sn->vm_clock_nsec / 1000000;
        snprintf(clock, sizeof(clock), "%02" PRIu64 ":%02u:%02u.%03u", ms / 3600000,
                 (unsigned)(ms / 60000 % 60), (unsigned)(ms / 1000 % 60), (unsigned)(ms % 1000));
        if (sn->icount >= 0)
            snprintf(icount, sizeof(icount), "%" PRId64, sn->icount);
        char *vmsize = img_size_str(sn->vm_state_size);
        printf("%-9s %-16s %8s%20s%13s%11s\n", sn->id, sn->name, vmsize, date, clock, icount);
        g_free(vmsize);
    }
}

/* What info reports about one image, whatever the output format. */
struct image_report {
    const char *filename;
    struct block_info info;
    char *backing_full;
    struct block_snapshot_info *snaps;
    size_t n_snaps;
};

static void report_human(const struct image_report *r)
{
    const struct block_info *i = &r->info;
    char *vsize = img_size_str(i->virtual_size), *dsize = img_size_str(i->actual_size);
    printf("image: %s\nfile format: %s\nvirtual size: %s (%" PRIu64 " bytes)\ndisk size: %s\n", r->filename,
           i->format, vsize, i->virtual_size, dsize);
    g_free(vsize);
    g_free(dsize);
    if (i->cluster_size)
        printf("cluster_size: %u\n", i->cluster_size);
    if (i->dirty)
        printf("cleanly shut down: no\n");
    if (i->backing_file) {
        printf("backing file: %s", i->backing_file);
        if (strcmp(i->backing_file, r->backing_full))
            printf(" (actual path: %s)", r->backing_full);
        printf("\n");
        if (i->backing_format)
            printf("backing file format: %s\n", i->backing_format);
    }
    img_print_snapshots(r->snaps, r->n_snaps);
    if (i->qcow2_version) {
        printf("Format specific information:\n    compat: %s\n    compression type: %s\n",
               i->qcow2_version >= 3 ? "1.1" : "0.10", i->compression_type);
        if (i->qcow2_version >= 3)
            printf("    lazy refcounts: %s\n", i->lazy_refcounts ? "true" : "false");
        printf("    refcount bits: %u\n", i->refcount_bits);
        if (i->qcow2_version >= 3)
            printf("    corrupt: %s\n    extended l2: false\n", i->corrupt ? "true" : "false");
    }
}

static void report_json(struct json_out *j, const struct image_report *r)
{
    const struct block_info *i = &r->info;
    json_open(j, NULL, '{');
    if (i->backing_file && i->backing_format)
        json_str(j, "backing-filename-format", i->backing_format);
    if (r->n_snaps) {
        json_open(j, "snapshots", '[');
        for (size_t k = 0; k < r->n_snaps; k++) {
            const struct block_snapshot_info *sn = &r->snaps[k];
            json_open(j, NULL, '{');
            if (sn->icount >= 0)
                json_int(j, "icount", sn->icount);
            json_int(j, "vm-clock-nsec", (int64_t)(sn->vm_clock_nsec % 1000000000));
            json_str(j, "name", sn->name);
            json_int(j, "date-sec", sn->date_sec);
            json_int(j, "date-nsec", sn->date_nsec);
            json_int(j, "vm-clock-sec", (int64_t)(sn->vm_clock_nsec / 1000000000));
            json_str(j, "id", sn->id);
            json_int(j, "vm-state-size", (int64_t)sn->vm_state_size);
            json_close(j, '}');
        }
        json_close(j, ']');
    }
    json_int(j, "virtual-size", (int64_t)i->virtual_size);
    json_str(j, "filename", r->filename);
    if (i->cluster_size)
        json_int(j, "cluster-size", i->cluster_size);
    json_str(j, "format", i->format);
    json_int(j, "actual-size", (int64_t)i->actual_size);
    if (i->qcow2_version) {
        json_open(j, "format-specific", '{');
        json_str(j, "type", "qcow2");
        json_open(j, "data", '{');
        json_str(j, "compat", i->qcow2_version >= 3 ? "1.1" : "0.10");
        json_str(j, "compression-type", i->compression_type);
        if (i->qcow2_version >= 3)
            json_bool(j, "lazy-refcounts", i->lazy_refcounts);
        json_int(j, "refcount-bits", i->refcount_bits);
        if (i->qcow2_version >= 3) {
            json_bool(j, "corrupt", i->corrupt);
            json_bool(j, "extended-l2", false);
        }
        json_close(j, '}');
        json_close(j, '}');
    }
    if (i->backing_file) {
        json_str(j, "full-backing-filename", r->backing_full);
        json_str(j, "backing-filename", i->backing_file);
    }
    json_bool(j, "dirty-flag", i->dirty);
    json_close(j, '}');
}

static const char *strip_file_prefix(const char *name)
{
    return strncmp(name, "file:", 5) == 0 ? name + 5 : name;
}

int img_cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {IMG_LONGOPT_HELP, IMG_LONGOPT_OUTPUT,
                                             {"backing-chain", no_argument, NULL, 'B'},
                                             IMG_LONGOPT_FORCE_SHARE, IMG_LONGOPT_END};
    struct img_opts o = {.cmd = "info"};
    bool chain = false;
    int c;
    while ((c = img_getopt(&o, argc, argv, ":f:Uh", longopts)) != -1) {
        if (c != 'B')
            return 1;
        chain = true;
    }
    const char *top = img_one_filename(&o, argc, argv);
    if (!top)
        return 1;
    bool json = o.json;
    unsigned flags = BLOCK_OPEN_READ_ONLY | BLOCK_OPEN_NO_BACKING | (o.force_share ? BLOCK_OPEN_NO_LOCK : 0);
    struct json_out j = {.s = g_string_new(NULL)};
    if (json && chain)
        json_open(&j, NULL, '[');
    char *path = g_strdup(top);
    char *next_fmt = g_strdup(o.fmt);
    GArray *seen = g_array_new(FALSE, FALSE, sizeof(struct stat));
    int ret = 0;
    for (unsigned depth = 0; path; depth++) {
        struct stat st;
        bool loop = false;
        if (stat(path, &st) == 0) {
            for (guint k = 0; k < seen->len; k++) {
                struct stat *prev = &g_array_index(seen, struct stat, k);
                loop |= prev->st_dev == st.st_dev && prev->st_ino == st.st_ino;
            }
            g_array_append_val(seen, st);
        }
        if (loop || depth > BLOCK_MAX_BACKING_DEPTH) {
            img_error("%s: Backing file '%s' creates an infinite loop.", top, path);
            ret = 1;
            break;
        }
        struct block_image *img = img_open(path, next_fmt, flags);
        if (!img) {
            ret = 1;
            break;
        }
        struct image_report r = {.filename = path};
        block_get_info(img, &r.info);
        if (r.info.backing_file)
            r.backing_full = block_resolve_backing(path, strip_file_prefix(r.info.backing_file));
        if (img->drv->snapshot_list)
            block_snapshot_list(img, &r.snaps, &r.n_snaps, NULL);
        if (json) {
            report_json(&j, &r);
        } else {
            if (depth)
                printf("\n");
            report_human(&r);
        }
        g_free(next_fmt);
        next_fmt = g_strdup(r.info.backing_format);
        char *next = chain ? g_strdup(r.backing_full) : NULL;
        block_snapshot_list_free(r.snaps, r.n_snaps);
        g_free(r.backing_full);
        block_close(img, NULL);
        g_free(path);
        path = next;
    }
    if (json && chain)
        json_close(&j, ']');
    if (json && (ret == 0 || chain))
        printf("%s\n", j.s->str);
    g_string_free(j.s, TRUE);
    g_array_free(seen, TRUE);
    g_free(path);
    g_free(next_fmt);
    return ret;
}

/* ---- check */

static void report_line(void *opaque, const char *line)
{
    if (!*(bool *)opaque)
        fprintf(stderr, "%s\n", line);
}

static void check_human(const struct block_check_result *r)
{
    if (r->corruptions == 0 && r->leaks == 0 && r->check_errors == 0) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions)
            printf("\n%" PRId64 " errors were found on the image.\n"
                   "Data may be corrupted, or further writes to the image may corrupt it.\n",
                   r->corruptions);
        if (r->leaks)
            printf("\n%" PRId64 " leaked clusters were found on the image.\n"
                   "This means waste of disk space, but no harm to data.\n",
                   r->leaks);
        if (r->check_errors)
            printf("\n%" PRId64 " internal errors have occurred during the check.\n", r->check_errors);
    }
    if (r->total_clusters && r->allocated_clusters)
        printf("%" PRId64 "/%" PRId64
               " = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% compressed clusters\n",
               r->allocated_clusters, r->total_clusters, r->allocated_clusters * 100.0 / r->total_clusters,
               r->fragmented_clusters * 100.0 / r->allocated_clusters,
               r->compressed_clusters * 100.0 / r->allocated_clusters);
    if (r->image_end_offset)
        printf("Image end offset: %" PRId64 "\n", r->image_end_offset);
}

static void check_json(const struct block_check_result *r, const char *path, const char *fmt)
{
    struct json_out j = {.s = g_string_new(NULL)};
    json_open(&j, NULL, '{');
    if (r->image_end_offset)
        json_int(&j, "image-end-offset", r->image_end_offset);
    if (r->total_clusters)
        json_int(&j, "total-clusters", r->total_clusters);
    json_int(&j, "check-errors", r->check_errors);
    if (r->leaks)
        json_int(&j, "leaks", r->leaks);
    if (r->corruptions)
        json_int(&j, "corruptions", r->corruptions);
    if (r->leaks_fixed)
        json_int(&j, "leaks-fixed", r->leaks_fixed);
    if (r->corruptions_fixed)
        json_int(&j, "corruptions-fixed", r->corruptions_fixed);
    if (r->allocated_clusters)
        json_int(&j, "allocated-clusters", r->allocated_clusters);
    if (r->fragmented_clusters)
        json_int(&j, "fragmented-clusters", r->fragmented_clusters);
    if (r->compressed_clusters)
        json_int(&j, "compressed-clusters", r->compressed_clusters);
    json_str(&j, "filename", path);
    json_str(&j, "format", fmt);
    json_close(&j, '}');
    printf("%s\n", j.s->str);
    g_string_free(j.s, TRUE);
}

int img_cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {IMG_LONGOPT_HELP, IMG_LONGOPT_OUTPUT, IMG_LONGOPT_FORCE_SHARE,
                                             {"repair", required_argument, NULL, 'r'}, IMG_LONGOPT_END};
    struct img_opts o = {.cmd = "check"};
    unsigned fix = 0, flags = BLOCK_OPEN_READ_ONLY | BLOCK_OPEN_NO_BACKING;
    int c;
    while ((c = img_getopt(&o, argc, argv, ":f:r:T:qUh", longopts)) != -1) {
        switch (c) {
        case 'r':
            if (!strcmp(optarg, "leaks"))
                fix = BLOCK_CHECK_FIX_LEAKS;
            else if (!strcmp(optarg, "all"))
                fix = BLOCK_CHECK_FIX_LEAKS | BLOCK_CHECK_FIX_ERRORS;
            else
                return img_usage_error(
                    "check", "Unknown option value for -r (expecting 'leaks' or 'all'): %s", optarg);
            break;
        case 'T':
            if (!img_cache_flags(optarg, &flags))
                return img_usage_error("check", "Invalid source cache option: %s", optarg);
            break;
        default:
            return 1;
        }
    }
    const char *path = img_one_filename(&o, argc, argv);
    if (!path)
        return 1;
    bool json = o.json, quiet = o.quiet;
    if (o.force_share)
        flags |= BLOCK_OPEN_NO_LOCK;
    if (fix && (flags & BLOCK_OPEN_NO_LOCK)) {
        img_error("%s: force-share (-U) cannot be used with repairs (-r)", path);
        return 1;
    }
    if (fix)
        flags = (flags & ~(unsigned)BLOCK_OPEN_READ_ONLY) | BLOCK_OPEN_REPAIR;
    struct block_image *img = img_open(path, o.fmt, flags);
    if (!img)
        return 1;
    if (!img->drv->check) {
        img_error("%s: This image format does not support checks", path);
        block_close(img, NULL);
        return IMG_EXIT_CHECK_UNSUPPORTED;
    }
    struct block_check_result res;
    GError *err = NULL;
    bool silent = quiet;
    int r = block_check(img, fix, &res, report_line, &silent, &err);
    if (r == 0 && (res.leaks_fixed || res.corruptions_fixed)) {
        int64_t lf = res.leaks_fixed, cf = res.corruptions_fixed;
        if (!json && !quiet)
            printf("The following inconsistencies were found and repaired:\n\n"
                   "    %" PRId64 " leaked clusters\n    %" PRId64 " corruptions\n\n"
                   "Double checking the fixed image now...\n",
                   lf, cf);
        r = block_check(img, 0, &res, report_line, &silent, &err);
        res.leaks_fixed = lf;
        res.corruptions_fixed = cf;
    }
    if (r < 0) {
        img_error("Check failed: %s", err ? err->message : "?");
        g_clear_error(&err);
        block_close(img, NULL);
        return 1;
    }
    if (!quiet) {
        if (json)
            check_json(&res, path, img->drv->name);
        else
            check_human(&res);
    }
    int ret = res.check_errors ? 1 : res.corruptions ? 2 : res.leaks ? 3 : 0;
    if (block_close(img, &err) < 0) {
        img_fail(err);
        ret = 1;
    }
    return ret;
}

/* ---- map */

struct map_entry {
    uint64_t start, length, offset;
    unsigned depth;
    bool present, zero, data, has_offset;
    const char *filename;
};

static struct block_image *layer_at(struct block_image *img, unsigned depth)
{
    while (depth-- && img->backing)
        img = img->backing;
    return img;
}

/* qemu-img map looks for holes under data clusters only in images that seem preallocated: more clusters
 * mapped than the file has blocks allocated (by a ninth, and at least two clusters). */
static bool looks_preallocated(struct block_image *layer)
{
    struct block_info info;
    block_get_info(layer, &info);
    uint64_t size = block_get_length(layer), mapped = 0;
    for (uint64_t off = 0; off < size;) {
        struct block_status st;
        if (block_status(layer, off, size - off, &st, NULL) < 0 || st.length == 0)
            return false;
        if (st.flags & BLOCK_STATUS_OFFSET_VALID)
            mapped += st.length;
        off += st.length;
    }
    uint64_t real = info.actual_size / info.cluster_size;
    return mapped / info.cluster_size >= MAX(real * 10 / 9, real + 2);
}

/* In such images data mapped to a hole of the layer's file reads as zeros: say so, split at the hole. */
static void probe_host_zero(struct block_image *layer, int *prealloc, struct map_entry *e)
{
    if (!e->data || !e->has_offset || strcmp(layer->drv->name, "qcow2"))
        return;
    if (*prealloc < 0)
        *prealloc = looks_preallocated(layer);
    if (!*prealloc)
        return;
    off_t data = lseek(layer->file.fd, (off_t)e->offset, SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
        e->zero = true;
    } else if (data > (off_t)e->offset) {
        e->zero = true;
        e->length = MIN(e->length, (uint64_t)data - e->offset);
    } else if (data == (off_t)e->offset) {
        off_t hole = lseek(layer->file.fd, (off_t)e->offset, SEEK_HOLE);
        if (hole > data)
            e->length = MIN(e->length, (uint64_t)hole - e->offset);
    }
}

static bool mergeable(const struct map_entry *a, const struct map_entry *b)
{
    return a->length && a->depth == b->depth && a->present == b->present && a->zero == b->zero &&
           a->data == b->data && a->has_offset == b->has_offset && !strcmp(a->filename, b->filename) &&
           (!a->has_offset || a->offset + a->length == b->offset);
}

static bool map_print(const struct map_entry *e, bool json, bool first)
{
    if (json) {
        printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %u, \"present\": %s, "
               "\"zero\": %s, \"data\": %s",
               first ? "[" : ",\n", e->start, e->length, e->depth, e->present ? "true" : "false",
               e->zero ? "true" : "false", e->data ? "true" : "false");
        if (e->has_offset)
            printf(", \"offset\": %" PRIu64, e->offset);
        printf("}");
        return true;
    }
    if (e->data && !e->has_offset) {
        img_error("File contains external, encrypted or compressed clusters.");
        return false;
    }
    if (e->data && !e->zero) {
        char a[24], b[24], c[24];
        snprintf(a, sizeof(a), "%#" PRIx64, e->start);
        snprintf(b, sizeof(b), "%#" PRIx64, e->length);
        snprintf(c, sizeof(c), "%#" PRIx64, e->offset);
        printf("%-16s%-16s%-16s%s\n", a, b, c, e->filename);
    }
    return true;
}

int img_cmd_map(int argc, char **argv)
{
    static const struct option longopts[] = {IMG_LONGOPT_HELP, IMG_LONGOPT_OUTPUT, IMG_LONGOPT_FORCE_SHARE,
                                             IMG_LONGOPT_END};
    struct img_opts o = {.cmd = "map"};
    /* map takes nothing but shared options: anything else img_getopt returns is its error */
    const char *path = img_getopt(&o, argc, argv, ":f:Uh", longopts) == -1 ? img_one_filename(&o, argc, argv)
                                                                              : NULL;
    if (!path)
        return 1;
    bool json = o.json;
    unsigned flags = BLOCK_OPEN_READ_ONLY | (o.force_share ? BLOCK_OPEN_NO_LOCK : 0);
    struct block_image *img = img_open(path, o.fmt, flags);
    if (!img)
        return 1;
    uint64_t size = block_get_length(img), off = 0;
    struct map_entry cur = {0};
    bool first = true, ok = true;
    int prealloc[BLOCK_MAX_BACKING_DEPTH + 1];
    memset(prealloc, -1, sizeof(prealloc));
    if (!json)
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    while (off < size && ok) {
        struct block_status st;
        GError *err = NULL;
        if (block_status_chain(img, off, MIN(size - off, (uint64_t)1 << 30), &st, &err) < 0) {
            img_fail(err);
            ok = false;
            break;
        }
        struct block_image *layer = layer_at(img, st.depth);
        struct map_entry e = {
            .start = off,
            .length = st.length,
            .depth = st.depth,
            .present = st.flags & BLOCK_STATUS_ALLOCATED,
            .zero = st.flags & BLOCK_STATUS_ZERO,
            .data = st.flags & BLOCK_STATUS_DATA,
            .has_offset = st.flags & BLOCK_STATUS_OFFSET_VALID,
            .offset = st.host_offset,
            .filename = layer->filename,
        };
        probe_host_zero(layer, &prealloc[MIN(st.depth, BLOCK_MAX_BACKING_DEPTH)], &e);
        if (e.length == 0)
            break;
        if (mergeable(&cur, &e)) {
            cur.length += e.length;
        } else {
            if (cur.length) {
                ok = map_print(&cur, json, first);
                first = false;
            }
            cur = e;
        }
        off += e.length;
    }
    if (ok && cur.length) {
        ok = map_print(&cur, json, first);
        first = false;
    }
    if (json && ok)
        printf("%s\n", first ? "[]" : "]");
    block_close(img, NULL);
    return ok ? 0 : 1;
}
