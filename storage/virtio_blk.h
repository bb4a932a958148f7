/* virtio-blk (virtio 1.1, 5.2): a disk image from the block layer as a virtio PCI function, with its I/O done
 * by a worker thread per disk outside the machine lock; and the --disk option that describes one. */
#ifndef DESKVM_VIRTIO_BLK_H
#define DESKVM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "machine.h"

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Device configuration layout (5.2.4). */
#define VIRTIO_BLK_CFG_CAPACITY 0
#define VIRTIO_BLK_CFG_SIZE_MAX 8
#define VIRTIO_BLK_CFG_SEG_MAX 12
#define VIRTIO_BLK_CFG_GEOMETRY 16
#define VIRTIO_BLK_CFG_BLK_SIZE 20
#define VIRTIO_BLK_CFG_PHYSICAL_BLOCK_EXP 24
#define VIRTIO_BLK_CFG_ALIGNMENT_OFFSET 25
#define VIRTIO_BLK_CFG_MIN_IO_SIZE 26
#define VIRTIO_BLK_CFG_OPT_IO_SIZE 28
#define VIRTIO_BLK_CFG_WRITEBACK 32
#define VIRTIO_BLK_CFG_NUM_QUEUES 34
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT 44
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS 48
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG 52
#define VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP 56
#define VIRTIO_BLK_CFG_SIZE 60

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_OUTHDR_SIZE 16  /* le32 type, le32 reserved, le64 sector */
#define VIRTIO_BLK_SEGMENT_SIZE 16 /* discard / write zeroes: le64 sector, le32 num_sectors, le32 flags */
#define VIRTIO_BLK_SECTOR_SIZE 512

/* What this device offers. */
#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_SEG_MAX (VIRTIO_BLK_QUEUE_SIZE - 2) /* data segments; header and status take two more */
#define VIRTIO_BLK_MAX_DISCARD_SECTORS (1u << 22)      /* 2 GiB per segment */
#define VIRTIO_BLK_MAX_DISCARD_SEG 16
#define VIRTIO_BLK_MAX_WRITE_ZEROES_SECTORS (1u << 22)
#define VIRTIO_BLK_MAX_WRITE_ZEROES_SEG 16
#define VIRTIO_BLK_DISCARD_ALIGNMENT 8 /* sectors: 4 KiB */

/* Disks of a machine: disk i is function 0 of PCI slot VIRTIO_BLK_FIRST_SLOT + i. */
#define VIRTIO_BLK_MAX_DISKS 8
#define VIRTIO_BLK_FIRST_SLOT 8

enum virtio_blk_cache {
    VIRTIO_BLK_CACHE_WRITEBACK, /* host page cache, flush = fdatasync */
    VIRTIO_BLK_CACHE_NONE,      /* O_DIRECT */
    VIRTIO_BLK_CACHE_UNSAFE,    /* flush is a no-op */
};

/* One --disk. */
struct virtio_blk_conf {
    char *file;   /* absolute path */
    char *format; /* "raw", "qcow2", or NULL to probe */
    bool read_only;
    enum virtio_blk_cache cache;
    bool discard_unmap; /* discard=unmap: discards and UNMAP write-zeroes free space in the image */
    uint64_t l2_cache_size; /* l2-cache-size= (qcow2, bytes); 0: the library's default */
};

/* Parses
 * "file=PATH[,format=raw|qcow2][,readonly=on|off][,cache=writeback|none|unsafe][,discard=unmap|ignore]
 * [,l2-cache-size=SIZE]"
 * (",," is a comma inside a value). False with a one-line reason in *error. */
bool virtio_blk_conf_parse(const char *spec, struct virtio_blk_conf *out, char **error);
void virtio_blk_conf_clear(struct virtio_blk_conf *conf);

struct virtio_blk;
struct virtio_pci;

/* Opens the image (locked while in use) and creates the function at slot, function 0, of m's PCI bus; the
 * device ID that GET_ID returns is "deskvm-disk<index>". NULL with *error (the block layer's message) on
 * failure. Call with the machine lock held, as for every function below. */
struct virtio_blk *virtio_blk_new(struct machine *m, unsigned slot, unsigned index,
                                  const struct virtio_blk_conf *conf, char **error);
/* Finishes the requests in flight (their results are dropped), stops the worker, closes the image (flushing
 * it) and unregisters the function. NULL is fine. */
void virtio_blk_free(struct virtio_blk *d);
/* Machine reset: a virtio device reset; waits for the request being executed, drops the others. */
void virtio_blk_reset(struct virtio_blk *d);
struct virtio_pci *virtio_blk_pci(struct virtio_blk *d);
/* The function at slot of m's bus if it is a virtio-blk disk, else NULL. */
struct virtio_blk *virtio_blk_at(struct machine *m, unsigned slot);

/* Creates one disk per m->config.disks[i] at VIRTIO_BLK_FIRST_SLOT + i; needs pci_host_device before it. */
extern const struct machine_device virtio_blk_device;

#endif
