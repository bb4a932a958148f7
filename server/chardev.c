/* Character-device backends: stdio (raw terminal), file, unix listening socket with one client, none. */
#include "chardev.h"
#include "listen.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib.h>

struct chardev {
    enum chardev_kind kind;
    char *path;
    int in_fd;      /* where input is read; -1 if none */
    int out_fd;     /* where output goes; -1 if nowhere right now */
    int listen_fd;  /* CHARDEV_UNIX */
    guint in_watch;
    guint listen_watch;
    guint out_watch;

    GMutex lock; /* protects out_fd, out, dropped, out_watch for writers on other threads */
    GByteArray *out;
    uint64_t dropped;

    chardev_receive_fn receive;
    chardev_event_fn event;
    void *opaque;

    bool tty_saved;
    struct termios saved_tty;
};

bool chardev_spec_parse(const char *s, struct chardev_spec *out, char **error)
{
    memset(out, 0, sizeof(*out));
    if (!strcmp(s, "none")) {
        out->kind = CHARDEV_NONE;
        return true;
    }
    if (!strcmp(s, "stdio")) {
        out->kind = CHARDEV_STDIO;
        return true;
    }
    if (g_str_has_prefix(s, "file:")) {
        if (!s[5]) {
            *error = g_strdup("file: needs a path");
            return false;
        }
        out->kind = CHARDEV_FILE;
        out->path = g_canonicalize_filename(s + 5, NULL);
        return true;
    }
    if (g_str_has_prefix(s, "unix:")) {
        struct listen_spec ls;
        if (!listen_spec_parse(s, &ls, error))
            return false;
        out->kind = CHARDEV_UNIX;
        out->path = g_steal_pointer(&ls.path);
        listen_spec_clear(&ls);
        return true;
    }
    *error = g_strdup_printf("'%s' is not stdio, file:PATH, unix:PATH or none", s);
    return false;
}

void chardev_spec_clear(struct chardev_spec *spec)
{
    g_clear_pointer(&spec->path, g_free);
}

char *chardev_spec_to_string(const struct chardev_spec *spec)
{
    switch (spec->kind) {
    case CHARDEV_STDIO:
        return g_strdup("stdio");
    case CHARDEV_FILE:
        return g_strdup_printf("file:%s", spec->path);
    case CHARDEV_UNIX:
        return g_strdup_printf("unix:%s", spec->path);
    case CHARDEV_NONE:
        break;
    }
    return g_strdup("none");
}

static gboolean chardev_on_output(gint fd, GIOCondition cond, gpointer data);

/* Writes as much of the queue as the fd takes now. Called with chr->lock held. */
static void chardev_drain_locked(struct chardev *chr)
{
    while (chr->out->len && chr->out_fd >= 0) {
        /* send() with MSG_NOSIGNAL: a client that went away must not SIGPIPE the whole process. */
        ssize_t n = chr->kind == CHARDEV_UNIX ? send(chr->out_fd, chr->out->data, chr->out->len, MSG_NOSIGNAL)
                                              : write(chr->out_fd, chr->out->data, chr->out->len);
        if (n > 0) {
            g_byte_array_remove_range(chr->out, 0, (guint)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!chr->out_watch)
                chr->out_watch = g_unix_fd_add(chr->out_fd, G_IO_OUT, chardev_on_output, chr);
            return;
        }
        /* Hard error (client went away, disk full): drop what is queued. The socket's input watch notices the
         * disconnect. */
        chr->dropped += chr->out->len;
        g_byte_array_set_size(chr->out, 0);
        return;
    }
}

static gboolean chardev_on_output(gint fd, GIOCondition cond, gpointer data)
{
    struct chardev *chr = data;
    g_mutex_lock(&chr->lock);
    chr->out_watch = 0; /* this watch ends here; draining adds a new one if the fd is still full */
    chardev_drain_locked(chr);
    g_mutex_unlock(&chr->lock);
    return G_SOURCE_REMOVE;
}

size_t chardev_write(struct chardev *chr, const void *buf, size_t len)
{
    g_mutex_lock(&chr->lock);
    if (chr->out_fd < 0) {
        chr->dropped += len;
        g_mutex_unlock(&chr->lock);
        return 0;
    }
    size_t room = CHARDEV_OUTPUT_LIMIT - MIN(chr->out->len, CHARDEV_OUTPUT_LIMIT);
    size_t take = MIN(room, len);
    g_byte_array_append(chr->out, buf, (guint)take);
    chr->dropped += len - take;
    chardev_drain_locked(chr);
    g_mutex_unlock(&chr->lock);
    return take;
}

bool chardev_is_connected(struct chardev *chr)
{
    g_mutex_lock(&chr->lock);
    bool c = chr->out_fd >= 0;
    g_mutex_unlock(&chr->lock);
    return c;
}

uint64_t chardev_dropped_bytes(struct chardev *chr)
{
    g_mutex_lock(&chr->lock);
    uint64_t d = chr->dropped;
    g_mutex_unlock(&chr->lock);
    return d;
}

void chardev_flush(struct chardev *chr, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    g_mutex_lock(&chr->lock);
    while (chr->out->len && chr->out_fd >= 0) {
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = chr->out_fd, .events = POLLOUT};
        if (poll(&pfd, 1, (int)left) <= 0)
            break;
        size_t before = chr->out->len;
        chardev_drain_locked(chr);
        if (chr->out->len == before)
            break;
    }
    g_mutex_unlock(&chr->lock);
}

void chardev_set_handlers(struct chardev *chr, chardev_receive_fn receive, chardev_event_fn event, void *opaque)
{
    chr->receive = receive;
    chr->event = event;
    chr->opaque = opaque;
}

static void chardev_client_gone(struct chardev *chr)
{
    if (chr->in_watch)
        g_source_remove(chr->in_watch);
    chr->in_watch = 0;
    g_mutex_lock(&chr->lock);
    if (chr->out_watch)
        g_source_remove(chr->out_watch);
    chr->out_watch = 0;
    if (chr->out_fd >= 0)
        close(chr->out_fd);
    chr->out_fd = -1;
    chr->in_fd = -1;
    g_byte_array_set_size(chr->out, 0);
    g_mutex_unlock(&chr->lock);
    log_info("chardev %s: client disconnected", chr->path);
    if (chr->event)
        chr->event(chr->opaque, false);
}

static gboolean chardev_on_input(gint fd, GIOCondition cond, gpointer data)
{
    struct chardev *chr = data;
    uint8_t buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
        if (chr->receive)
            chr->receive(chr->opaque, buf, (size_t)n);
        return G_SOURCE_CONTINUE;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return G_SOURCE_CONTINUE;
    /* EOF or error */
    chr->in_watch = 0;
    if (chr->kind == CHARDEV_UNIX)
        chardev_client_gone(chr);
    return G_SOURCE_REMOVE;
}

static gboolean chardev_on_accept(gint fd, GIOCondition cond, gpointer data)
{
    struct chardev *chr = data;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0)
        return G_SOURCE_CONTINUE;
    if (chr->in_fd >= 0) {
        static const char busy[] = "deskvm: this character device already has a client\r\n";
        if (write(c, busy, sizeof(busy) - 1) < 0) {
            /* nothing to do: the connection is closed either way */
        }
        close(c);
        log_warn("chardev %s: refused a second client", chr->path);
        return G_SOURCE_CONTINUE;
    }
    g_mutex_lock(&chr->lock);
    chr->out_fd = c;
    g_mutex_unlock(&chr->lock);
    chr->in_fd = c;
    chr->in_watch = g_unix_fd_add(c, G_IO_IN | G_IO_HUP | G_IO_ERR, chardev_on_input, chr);
    log_info("chardev %s: client connected", chr->path);
    if (chr->event)
        chr->event(chr->opaque, true);
    return G_SOURCE_CONTINUE;
}

static void chardev_stdio_raw(struct chardev *chr)
{
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &chr->saved_tty) < 0)
        return;
    struct termios t = chr->saved_tty;
    /* Raw input for the guest, but keep ISIG so Ctrl-C still stops deskvm, and output post-processing. */
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | IEXTEN);
    t.c_cflag |= CS8;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
        chr->tty_saved = true;
}

struct chardev *chardev_open(const struct chardev_spec *spec, char **error)
{
    struct chardev *chr = g_new0(struct chardev, 1);
    chr->kind = spec->kind;
    chr->path = spec->path ? g_strdup(spec->path) : chardev_spec_to_string(spec);
    chr->in_fd = chr->out_fd = chr->listen_fd = -1;
    g_mutex_init(&chr->lock);
    chr->out = g_byte_array_new();

    switch (spec->kind) {
    case CHARDEV_NONE:
        break;
    case CHARDEV_STDIO:
        chr->in_fd = STDIN_FILENO;
        chr->out_fd = dup(STDOUT_FILENO);
        if (chr->out_fd >= 0) {
            fcntl(chr->out_fd, F_SETFD, FD_CLOEXEC);
            /* The dup shares the file description with stdout, so O_NONBLOCK affects it too; deskvm writes its own
             * messages to stderr, so that is acceptable. */
            fcntl(chr->out_fd, F_SETFL, fcntl(chr->out_fd, F_GETFL) | O_NONBLOCK);
        }
        chardev_stdio_raw(chr);
        chr->in_watch = g_unix_fd_add(STDIN_FILENO, G_IO_IN | G_IO_HUP | G_IO_ERR, chardev_on_input, chr);
        break;
    case CHARDEV_FILE:
        chr->out_fd = open(spec->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0644);
        if (chr->out_fd < 0) {
            *error = g_strdup_printf("%s: %s", spec->path, g_strerror(errno));
            chardev_close(chr);
            return NULL;
        }
        break;
    case CHARDEV_UNIX: {
        struct listen_spec ls = {.kind = LISTEN_UNIX, .path = spec->path};
        chr->listen_fd = listen_socket_open(&ls, error);
        if (chr->listen_fd < 0) {
            chardev_close(chr);
            return NULL;
        }
        chr->listen_watch = g_unix_fd_add(chr->listen_fd, G_IO_IN, chardev_on_accept, chr);
        break;
    }
    }
    return chr;
}

void chardev_close(struct chardev *chr)
{
    if (!chr)
        return;
    if (chr->in_watch)
        g_source_remove(chr->in_watch);
    if (chr->listen_watch)
        g_source_remove(chr->listen_watch);
    if (chr->out_watch)
        g_source_remove(chr->out_watch);
    if (chr->tty_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &chr->saved_tty);
    if (chr->kind == CHARDEV_STDIO && chr->out_fd >= 0)
        fcntl(chr->out_fd, F_SETFL, fcntl(chr->out_fd, F_GETFL) & ~O_NONBLOCK);
    if (chr->out_fd >= 0)
        close(chr->out_fd);
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
        unlink(chr->path);
    }
    g_byte_array_unref(chr->out);
    g_mutex_clear(&chr->lock);
    g_free(chr->path);
    g_free(chr);
}
