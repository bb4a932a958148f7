/* The host file under an image: positional I/O that retries short transfers, zero-fills reads past EOF and
 * hides O_DIRECT's alignment rules (bounce buffers) from the format drivers. */
#ifndef DESKVM_BLOCK_FILE_H
#define DESKVM_BLOCK_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Alignment used for O_DIRECT transfers (covers 512e and 4Kn disks). */
#define BLOCK_FILE_DIRECT_ALIGN 4096u

struct block_file {
    int fd;
    bool direct;  /* opened O_DIRECT: buffers, offsets and lengths are aligned through bounce buffers */
    bool no_sync; /* cache=unsafe: block_file_sync does nothing */
    bool writable;
};

/* Opens PATH (O_CLOEXEC, plus O_RDWR/O_CREAT as asked). Returns 0 or a negative errno. */
int block_file_open(struct block_file *f, const char *path, bool writable, bool create, bool direct,
                    bool no_sync);
void block_file_close(struct block_file *f);
/* Reads LEN bytes at OFF; bytes past the end of the file read as zeros. 0 or -errno. */
int block_file_pread(struct block_file *f, uint64_t off, void *buf, size_t len);
/* Writes all LEN bytes at OFF (extending the file as needed). 0 or -errno. */
int block_file_pwrite(struct block_file *f, uint64_t off, const void *buf, size_t len);
/* fdatasync unless no_sync. */
int block_file_sync(struct block_file *f);
/* File length in bytes, or -errno. */
int64_t block_file_length(struct block_file *f);
int block_file_truncate(struct block_file *f, uint64_t size);
/* Deallocates [off, off+len) (reads zeros afterwards). -ENOTSUP if the file system cannot. */
int block_file_punch_hole(struct block_file *f, uint64_t off, uint64_t len);
/* Makes [off, off+len) read as zeros, keeping it allocated if possible; falls back to writing zeros. */
int block_file_zero_range(struct block_file *f, uint64_t off, uint64_t len);
/* Bytes the file occupies on the host. */
uint64_t block_file_allocated(struct block_file *f);

#endif
