/* deskvm-img create, resize and snapshot: the subcommands that make an image or change its shape. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "img.h"

/* Size of the backing image a create without a size takes over. */
static bool backing_size(const char *path, const char *backing, const char *fmt, uint64_t *size)
{
    char *full = block_resolve_backing(path, backing);
    struct block_image *b =
        img_open(full, fmt, BLOCK_OPEN_READ_ONLY | BLOCK_OPEN_NO_LOCK | BLOCK_OPEN_NO_BACKING);
    g_free(full);
    if (!b) {
        img_error("%s: Could not open backing image.", path);
        return false;
    }
    *size = block_get_length(b);
    block_close(b, NULL);
    return true;
}

int img_cmd_create(int argc, char **argv)
{
    static const struct option longopts[] = {IMG_LONGOPT_HELP, IMG_LONGOPT_END};
    struct img_opts opts = {.cmd = "create", .fmt = "raw"};
    struct block_create_options o = {0};
    const char *backing = NULL, *bfmt = NULL;
    bool size_set = false;
    uint64_t size = 0;
    int c;
    while ((c = img_getopt(&opts, argc, argv, ":f:b:F:uo:qh", longopts)) != -1) {
        switch (c) {
        case 'b':
            backing = optarg;
            break;
        case 'F':
            bfmt = optarg;
            break;
        case 'u':
            o.backing_unchecked = true;
            break;
        case 'o':
            if (!img_parse_create_options("create", optarg, &o, &size, &size_set))
                return 1;
            break;
        default:
            return 1;
        }
    }
    o.format = opts.fmt;
    if (optind >= argc)
        return img_usage_error("create", "Expecting image file name");
    const char *path = argv[optind++];
    if (optind < argc) {
        if (!img_parse_size(argv[optind], &size)) {
            img_error("Invalid image size specified. You may use k, M, G, T, P or E suffixes for");
            img_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
            return 1;
        }
        size_set = true;
        optind++;
    }
    if (optind < argc)
        return img_usage_error("create", "Unexpected argument: %s", argv[optind]);
    if (!block_find_driver(o.format)) {
        img_error("Unknown file format '%s'", o.format);
        return 1;
    }
    if (backing)
        o.backing_file = backing;
    if (bfmt)
        o.backing_format = bfmt;
    if (o.backing_file && !strcmp(o.format, "raw")) {
        img_error("%s: Backing file not supported for file format 'raw'", path);
        return 1;
    }
    if (o.backing_file && !o.backing_format) {
        img_error("%s: Backing file specified without backing format (use -F)", path);
        return 1;
    }
    if (o.backing_format && !block_find_driver(o.backing_format)) {
        img_error("%s: Unknown backing file format '%s'", path, o.backing_format);
        return 1;
    }
    if (!size_set) {
        if (!o.backing_file || o.backing_unchecked) {
            img_error("%s: Image creation needs a size parameter", path);
            return 1;
        }
        if (!backing_size(path, o.backing_file, o.backing_format, &size))
            return 1;
    }
    o.size = size;
    if (!opts.quiet)
        img_print_formatting(path, &o);
    o.size = (size + 511) & ~(uint64_t)511; /* like qemu-img: whole sectors */
    GError *err = NULL;
    if (block_create(path, &o, &err) < 0)
        return img_fail(err);
    return 0;
}

int img_cmd_resize(int argc, char **argv)
{
    static const struct option longopts[] = {IMG_LONGOPT_HELP,
                                             {"shrink", no_argument, NULL, 's'},
                                             {"preallocation", required_argument, NULL, 'P'},
                                             IMG_LONGOPT_END};
    if (argc < 3)
        return img_usage_error("resize", "Expecting image file name and size");
    /* the size comes last and may start with '-': take it before getopt sees it as an option */
    const char *size_arg = argv[--argc];
    struct img_opts o = {.cmd = "resize"};
    bool shrink = false;
    int c;
    while ((c = img_getopt(&o, argc, argv, ":f:qh", longopts)) != -1) {
        switch (c) {
        case 's':
            shrink = true;
            break;
        case 'P':
            if (strcmp(optarg, "off")) {
                img_error("preallocation mode '%s' is not supported by resize", optarg);
                return 1;
            }
            break;
        default:
            return 1;
        }
    }
    const char *path = img_one_filename(&o, argc, argv);
    if (!path)
        return 1;
    int sign = size_arg[0] == '+' ? 1 : size_arg[0] == '-' ? -1 : 0;
    uint64_t n;
    if (!img_parse_size(size_arg + (sign != 0), &n)) {
        img_error("Invalid image size specified: '%s'", size_arg);
        return 1;
    }
    struct block_image *img = img_open(path, o.fmt, 0);
    if (!img)
        return 1;
    uint64_t cur = block_get_length(img), want;
    if (sign > 0)
        want = cur + n;
    else if (sign < 0)
        want = n >= cur ? 0 : cur - n;
    else
        want = n;
    int ret = 0;
    if (want == 0 || want > (uint64_t)INT64_MAX) {
        img_error("%s: New image size must be positive and below 8 EiB.", path);
        ret = 1;
    } else if (strcmp(img->drv->name, "qcow2") == 0 && want % 512) {
        img_error("%s: The new size must be a multiple of 512", path);
        ret = 1;
    } else if (want < cur && !shrink) {
        img_error("warning: Shrinking an image will delete all data beyond the shrunken image's end. "
                  "Before performing such an operation, make sure there is no important data there.");
        img_error("%s: Use the --shrink option to perform a shrink operation.", path);
        ret = 1;
    } else if (want != cur) {
        GError *err = NULL;
        if (block_truncate(img, want, want < cur, &err) < 0)
            ret = img_fail(err);
    }
    if (img_close(img))
        ret = 1;
    if (ret == 0 && !o.quiet)
        printf("Image resized.\n");
    return ret;
}

int img_cmd_snapshot(int argc, char **argv)
{
    static const struct option longopts[] = {IMG_LONGOPT_HELP, IMG_LONGOPT_END};
    struct img_opts o = {.cmd = "snapshot"};
    char action = 0;
    const char *name = NULL;
    int c;
    while ((c = img_getopt(&o, argc, argv, ":la:c:d:qUh", longopts)) != -1) {
        switch (c) {
        case 'l':
        case 'a':
        case 'c':
        case 'd':
            if (action)
                return img_usage_error("snapshot", "Cannot mix '-l', '-a', '-c', '-d'");
            action = (char)c;
            name = optarg;
            break;
        default:
            return 1;
        }
    }
    const char *path = img_one_filename(&o, argc, argv);
    if (!path)
        return 1;
    if (!action)
        action = 'l';
    if (o.force_share && action != 'l') {
        img_error("%s: force-share (-U) is only valid for listing snapshots (-l)", path);
        return 1;
    }
    unsigned flags = BLOCK_OPEN_NO_BACKING;
    if (action == 'l')
        flags |= BLOCK_OPEN_READ_ONLY | (o.force_share ? BLOCK_OPEN_NO_LOCK : 0);
    struct block_image *img = img_open(path, NULL, flags);
    if (!img)
        return 1;
    GError *err = NULL;
    int r = 0;
    switch (action) {
    case 'l': {
        struct block_snapshot_info *list;
        size_t n;
        r = block_snapshot_list(img, &list, &n, &err);
        if (r == 0) {
            img_print_snapshots(list, n);
            block_snapshot_list_free(list, n);
        }
        break;
    }
    case 'c':
        r = block_snapshot_create(img, name, &err);
        break;
    case 'a':
        r = block_snapshot_apply(img, name, &err);
        break;
    default:
        r = block_snapshot_delete(img, name, &err);
        break;
    }
    int ret = r < 0 ? img_fail(err) : 0;
    if (img_close(img))
        ret = 1;
    return ret;
}
