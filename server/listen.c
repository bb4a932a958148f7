/* Listening sockets (unix and loopback TCP) shared by QMP, the GDB stub, qtest and character devices. */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "log.h"

static bool parse_flags(char **parts, char **error)
{
    for (char **p = parts; *p; p++) {
        if (!strcmp(*p, "server") || !strcmp(*p, "server=on") || !strcmp(*p, "nowait") || !strcmp(*p, "wait=off"))
            continue;
        if (!strcmp(*p, "server=off") || !strcmp(*p, "wait=on") || !strcmp(*p, "wait")) {
            *error = g_strdup_printf("'%s' is not supported: deskvm always listens and never waits for a client", *p);
            return false;
        }
        *error = g_strdup_printf("unknown flag '%s'", *p);
        return false;
    }
    return true;
}

bool listen_host_is_loopback(const char *host)
{
    if (!strcmp(host, "localhost"))
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

bool listen_spec_parse(const char *spec, struct listen_spec *out, char **error)
{
    memset(out, 0, sizeof(*out));
    g_auto(GStrv) parts = g_strsplit(spec, ",", -1);
    const char *addr = parts[0];
    if (!addr || !*addr) {
        *error = g_strdup("empty address (use unix:PATH or tcp:127.0.0.1:PORT)");
        return false;
    }
    if (!parse_flags(parts + 1, error))
        return false;

    if (g_str_has_prefix(addr, "unix:")) {
        const char *path = addr + 5;
        if (!*path) {
            *error = g_strdup("unix: needs a path");
            return false;
        }
        struct sockaddr_un sun;
        g_autofree char *abs = g_canonicalize_filename(path, NULL);
        if (strlen(abs) >= sizeof(sun.sun_path)) {
            *error = g_strdup_printf("socket path '%s' is too long (at most %zu bytes)", abs, sizeof(sun.sun_path) - 1);
            return false;
        }
        out->kind = LISTEN_UNIX;
        out->path = g_steal_pointer(&abs);
        return true;
    }
    if (g_str_has_prefix(addr, "tcp:")) {
        const char *rest = addr + 4;
        const char *colon = strrchr(rest, ':');
        if (!colon || colon == rest) {
            *error = g_strdup_printf("'%s' is not HOST:PORT", rest);
            return false;
        }
        g_autofree char *host = g_strndup(rest, (gsize)(colon - rest));
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            char *inner = g_strndup(host + 1, strlen(host) - 2);
            g_free(host);
            host = inner;
        }
        char *end;
        errno = 0;
        unsigned long port = strtoul(colon + 1, &end, 10);
        if (!colon[1] || *end || errno || port > 65535) {
            *error = g_strdup_printf("'%s' is not a port number (0-65535)", colon + 1);
            return false;
        }
        if (!listen_host_is_loopback(host)) {
            *error = g_strdup_printf("'%s' is not a loopback address; deskvm only listens on 127.0.0.1, ::1 or "
                                     "localhost (or use a unix socket)",
                                     host);
            return false;
        }
        out->kind = LISTEN_TCP;
        out->host = g_steal_pointer(&host);
        out->port = (unsigned)port;
        return true;
    }
    *error = g_strdup_printf("'%s' is not unix:PATH or tcp:HOST:PORT", addr);
    return false;
}

void listen_spec_clear(struct listen_spec *spec)
{
    g_clear_pointer(&spec->path, g_free);
    g_clear_pointer(&spec->host, g_free);
}

char *listen_spec_to_string(const struct listen_spec *spec)
{
    if (spec->kind == LISTEN_UNIX)
        return g_strdup_printf("unix:%s", spec->path);
    if (strchr(spec->host, ':'))
        return g_strdup_printf("tcp:[%s]:%u", spec->host, spec->port);
    return g_strdup_printf("tcp:%s:%u", spec->host, spec->port);
}

/* A unix socket file is stale when connecting to it is refused: nobody is accepting on it any more. */
static bool unix_socket_is_stale(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int err = errno;
    close(fd);
    return r < 0 && err == ECONNREFUSED;
}

static int open_unix(struct listen_spec *spec, char **error)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    g_strlcpy(sun.sun_path, spec->path, sizeof(sun.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *error = g_strdup_printf("socket: %s", g_strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(spec->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *error = g_strdup_printf("%s exists and is not a socket; refusing to replace it", spec->path);
            close(fd);
            return -1;
        }
        if (!unix_socket_is_stale(&sun)) {
            *error = g_strdup_printf("%s is in use by another process", spec->path);
            close(fd);
            return -1;
        }
        unlink(spec->path);
    }
    /* Bind under a temporary name and rename into place once listening, so a client that sees the socket file
     * can always connect (no window where the file exists but connect() is refused). Paths too long for the
     * temporary name are bound directly. */
    struct sockaddr_un tmp = {.sun_family = AF_UNIX};
    int n = snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d.tmp", spec->path, (int)getpid());
    bool staged = n > 0 && (size_t)n < sizeof(tmp.sun_path);
    const struct sockaddr_un *where = staged ? &tmp : &sun;
    if (staged)
        unlink(tmp.sun_path);
    if (bind(fd, (const struct sockaddr *)where, sizeof(*where)) < 0 || listen(fd, 16) < 0 ||
        (staged && rename(tmp.sun_path, spec->path) < 0)) {
        *error = g_strdup_printf("%s: %s", spec->path, g_strerror(errno));
        if (staged)
            unlink(tmp.sun_path);
        close(fd);
        return -1;
    }
    return fd;
}

static int open_tcp(struct listen_spec *spec, char **error)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    g_snprintf(port, sizeof(port), "%u", spec->port);
    int r = getaddrinfo(spec->host, port, &hints, &res);
    if (r != 0) {
        *error = g_strdup_printf("%s: %s", spec->host, gai_strerror(r));
        return -1;
    }
    int fd = -1;
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        /* getaddrinfo("localhost") can only return loopback addresses, but check each result anyway. */
        char host[INET6_ADDRSTRLEN];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0 ||
            !listen_host_is_loopback(host))
            continue;
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
                spec->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                           : ((struct sockaddr_in6 *)&ss)->sin6_port);
            break;
        }
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        *error = g_strdup_printf("%s:%u: %s", spec->host, spec->port,
                                 last_errno ? g_strerror(last_errno) : "no loopback address");
    return fd;
}

int listen_socket_open(struct listen_spec *spec, char **error)
{
    return spec->kind == LISTEN_UNIX ? open_unix(spec, error) : open_tcp(spec, error);
}

static gboolean listener_on_accept(gint fd, GIOCondition cond, gpointer data)
{
    struct listener *l = data;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd >= 0)
        l->on_accept(l->opaque, cfd);
    return G_SOURCE_CONTINUE;
}

bool listen_start(struct listener *l, const char *who, struct listen_spec *spec,
                  void (*on_accept)(void *opaque, int fd), void *opaque, char **error)
{
    int fd = listen_socket_open(spec, error);
    if (fd < 0)
        return false;
    l->fd = fd;
    l->spec.kind = spec->kind;
    l->spec.path = g_strdup(spec->path);
    l->spec.host = g_strdup(spec->host);
    l->spec.port = spec->port;
    l->on_accept = on_accept;
    l->opaque = opaque;
    l->watch = g_unix_fd_add(fd, G_IO_IN, listener_on_accept, l);
    g_autofree char *where = listen_spec_to_string(&l->spec);
    log_info("%s: listening on %s", who, where);
    return true;
}

void listen_stop(struct listener *l)
{
    g_source_remove(l->watch);
    close(l->fd);
    if (l->spec.kind == LISTEN_UNIX)
        unlink(l->spec.path);
    listen_spec_clear(&l->spec);
}
