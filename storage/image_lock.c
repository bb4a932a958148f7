/* OFD byte-range image locks in QEMU's layout. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "block.h"
#include "image_lock.h"

/* QEMU's lock byte bases and permission bits (file-posix / BLK_PERM_*). */
#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200
enum {
    PERM_CONSISTENT_READ = 0,
    PERM_WRITE = 1,
    PERM_WRITE_UNCHANGED = 2,
    PERM_RESIZE = 3,
    PERM_COUNT = 4,
};
static const char *const perm_names[PERM_COUNT] = {"consistent read", "write", "write unchanged", "resize"};

static int lock_byte(int fd, int type, int byte)
{
    struct flock fl = {.l_type = (short)type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* True if another open file description holds any lock on BYTE. */
static int byte_taken(int fd, int byte)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return -errno;
    return fl.l_type != F_UNLCK;
}

static void modes(enum image_lock_mode mode, unsigned *perm, unsigned *unshared)
{
    *perm = 1u << PERM_CONSISTENT_READ;
    if (mode == IMAGE_LOCK_WRITER)
        *perm |= 1u << PERM_WRITE | 1u << PERM_RESIZE;
    *unshared = 1u << PERM_WRITE | 1u << PERM_RESIZE;
}

int image_lock_acquire(struct image_lock *l, int fd, enum image_lock_mode mode, const char *path,
                       GError **errp)
{
    l->fd = -1;
    l->mode = IMAGE_LOCK_NONE;
    if (mode == IMAGE_LOCK_NONE)
        return 0;
    unsigned perm, unshared;
    modes(mode, &perm, &unshared);
    /* Take our bytes first, then look for others: of two racing openers at least one sees the other. */
    for (int i = 0; i < PERM_COUNT; i++) {
        int r = 0;
        if (perm & (1u << i))
            r = lock_byte(fd, F_RDLCK, LOCK_PERM_BASE + i);
        if (r == 0 && (unshared & (1u << i)))
            r = lock_byte(fd, F_RDLCK, LOCK_SHARED_BASE + i);
        if (r < 0) {
            struct image_lock tmp = {fd, mode};
            image_lock_release(&tmp);
            if (r == -EAGAIN || r == -EACCES)
                return block_set_error_path(errp, path, -EAGAIN,
                                            "Failed to get \"%s\" lock: "
                                            "is another process using the image?",
                                            perm_names[i]);
            return block_set_error_path(errp, path, r, "cannot lock the image: %s", g_strerror(-r));
        }
    }
    for (int i = 0; i < PERM_COUNT; i++) {
        int clash = 0;
        const char *shared = "";
        if (perm & (1u << i))
            clash = byte_taken(fd, LOCK_SHARED_BASE + i);
        if (clash == 0 && (unshared & (1u << i))) {
            clash = byte_taken(fd, LOCK_PERM_BASE + i);
            shared = "shared ";
        }
        if (clash != 0) {
            struct image_lock tmp = {fd, mode};
            image_lock_release(&tmp);
            if (clash < 0)
                return block_set_error_path(errp, path, clash, "cannot test the image lock: %s",
                                            g_strerror(-clash));
            return block_set_error_path(errp, path, -EAGAIN,
                                        "Failed to get %s\"%s\" lock: "
                                        "is another process using the image?",
                                        shared, perm_names[i]);
        }
    }
    l->fd = fd;
    l->mode = mode;
    return 0;
}

void image_lock_release(struct image_lock *l)
{
    if (l->fd >= 0 && l->mode != IMAGE_LOCK_NONE) {
        struct flock fl = {.l_type = F_UNLCK,
                           .l_whence = SEEK_SET,
                           .l_start = LOCK_PERM_BASE,
                           .l_len = LOCK_SHARED_BASE + PERM_COUNT - LOCK_PERM_BASE};
        (void)fcntl(l->fd, F_OFD_SETLK, &fl);
    }
    l->fd = -1;
    l->mode = IMAGE_LOCK_NONE;
}
