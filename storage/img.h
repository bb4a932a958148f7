/* deskvm-img, the qemu-img compatible image tool: what its subcommand files (img_*.c) share — argument
 * helpers, size parsing and printing, error reporting, opening images, the progress line. */
#ifndef DESKVM_IMG_H
#define DESKVM_IMG_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "block.h"

/* Bytes moved per request by convert, compare, commit and rebase. */
#define IMG_CHUNK (2u * 1024 * 1024)

/* qemu-img's exit code for "this format cannot be checked". */
#define IMG_EXIT_CHECK_UNSUPPORTED 63

/* Prints "deskvm-img: MESSAGE" on stderr. */
void img_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the GError (its message already names the file) and frees it; returns 1. */
int img_fail(GError *err);
/* Prints the usage line of the subcommand and a pointer to --help on stderr; returns 1. */
int img_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The options that mean the same in every subcommand taking them (its getopt string and long options say
 * which it takes), filled in by img_getopt. */
struct img_opts {
    const char *cmd;  /* the subcommand, for usage errors */
    const char *fmt;  /* -f */
    bool quiet;       /* -q */
    bool progress;    /* -p */
    bool force_share; /* -U, --force-share */
    bool json;        /* --output=json (or human) */
};

/* getopt value of --output, which has no short form (convert's -O is the output format). */
#define IMG_OPT_OUTPUT 0x100
/* What img_getopt returns after it has printed a usage error. */
#define IMG_OPT_ERROR (-2)
#define IMG_LONGOPT_HELP {"help", no_argument, NULL, 'h'}
#define IMG_LONGOPT_FORCE_SHARE {"force-share", no_argument, NULL, 'U'}
#define IMG_LONGOPT_OUTPUT {"output", required_argument, NULL, IMG_OPT_OUTPUT}
#define IMG_LONGOPT_END {NULL, 0, NULL, 0}

/* getopt_long over ARGV (SHORTOPTS starts with ':'): takes the shared options into O and returns the next
 * subcommand-specific one, -1 at the end, or IMG_OPT_ERROR after printing what was wrong. */
int img_getopt(struct img_opts *o, int argc, char **argv, const char *shortopts,
               const struct option *longopts);
/* The single file name after the options, or NULL after a usage error. */
const char *img_one_filename(const struct img_opts *o, int argc, char **argv);

/* qemu size syntax: a number (fractions allowed) with an optional suffix b/k/M/G/T/P/E (powers of 1024). */
bool img_parse_size(const char *s, uint64_t *out);
/* Human size like qemu-img: "0 B", "324 KiB", "1.26 MiB" (three significant digits). */
char *img_size_str(uint64_t v);

/* Opens PATH; on failure prints the error and returns NULL. */
struct block_image *img_open(const char *path, const char *fmt, unsigned flags);
/* Closes and prints a close (flush) error; returns 0 or 1. */
int img_close(struct block_image *img);

/* Applies one -o option string ("k=v,k=v", or "help") to create options; SIZE gets "size=". */
bool img_parse_create_options(const char *cmd, const char *opts, struct block_create_options *o,
                              uint64_t *size, bool *size_set);
/* Prints "Formatting 'PATH', fmt=..." the way qemu-img create does. */
void img_print_formatting(const char *path, const struct block_create_options *o);

/* The "    (12.34/100%)\r" progress line of qemu-img -p (stdout). */
struct img_progress {
    bool on;
    double last;
};
void img_progress_start(struct img_progress *p, bool on);
void img_progress_update(struct img_progress *p, uint64_t done, uint64_t total);
void img_progress_end(struct img_progress *p);

/* The "Snapshot list:" table of info and snapshot -l (nothing when N is 0). */
void img_print_snapshots(const struct block_snapshot_info *list, size_t n);

/* True if all LEN bytes of BUF are zero. */
bool img_is_zero(const void *buf, size_t len);
/* Cache mode string of -t/-T (none, writeback, unsafe, directsync, writethrough) to BLOCK_OPEN_* flags. */
bool img_cache_flags(const char *mode, unsigned *flags);

/* The subcommands; argv[0] is the subcommand name. Each returns the process exit code. */
int img_cmd_create(int argc, char **argv);
int img_cmd_info(int argc, char **argv);
int img_cmd_check(int argc, char **argv);
int img_cmd_map(int argc, char **argv);
int img_cmd_convert(int argc, char **argv);
int img_cmd_compare(int argc, char **argv);
int img_cmd_snapshot(int argc, char **argv);
int img_cmd_commit(int argc, char **argv);
int img_cmd_rebase(int argc, char **argv);
int img_cmd_resize(int argc, char **argv);

#endif
