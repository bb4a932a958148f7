/* Image locking with OFD byte-range locks laid out like QEMU's (permission bytes at 100+bit, "not shared"
 * bytes at 200+bit), so deskvm and QEMU processes see each other: a writer excludes other writers and
 * consistent readers. */
#ifndef DESKVM_IMAGE_LOCK_H
#define DESKVM_IMAGE_LOCK_H

#include <glib.h>

enum image_lock_mode {
    IMAGE_LOCK_NONE = 0, /* force-share (-U): nothing locked, nothing checked */
    IMAGE_LOCK_READER,   /* consistent read: refuses to coexist with a writer */
    IMAGE_LOCK_WRITER,   /* read+write+resize: refuses any other writer or consistent reader */
};

struct image_lock {
    int fd; /* the open file description that owns the locks; -1 when not held */
    enum image_lock_mode mode;
};

/* Takes the lock on FD (which must stay open until release). Returns 0, or -EAGAIN when another open of the
 * file conflicts (*errp names PATH and the permission that clashed), or another negative errno. */
int image_lock_acquire(struct image_lock *l, int fd, enum image_lock_mode mode, const char *path,
                       GError **errp);
/* Drops every lock byte (closing the fd would too). */
void image_lock_release(struct image_lock *l);

#endif
