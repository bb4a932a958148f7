/* --spice parsing (see spice_spec.h). The key names and values are QEMU's, so a -spice line carries over. */
#include "spice_spec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "listen.h"
#include "size_parse.h"

static const char *const image_compression_names[] = {
    [SPICE_SPEC_IC_AUTO_GLZ] = "auto_glz", [SPICE_SPEC_IC_AUTO_LZ] = "auto_lz", [SPICE_SPEC_IC_QUIC] = "quic",
    [SPICE_SPEC_IC_GLZ] = "glz",           [SPICE_SPEC_IC_LZ] = "lz",           [SPICE_SPEC_IC_LZ4] = "lz4",
    [SPICE_SPEC_IC_OFF] = "off",
};
static const char *const wan_names[] = {
    [SPICE_SPEC_WAN_AUTO] = "auto", [SPICE_SPEC_WAN_NEVER] = "never", [SPICE_SPEC_WAN_ALWAYS] = "always"};
static const char *const streaming_names[] = {
    [SPICE_SPEC_STREAM_OFF] = "off", [SPICE_SPEC_STREAM_ALL] = "all", [SPICE_SPEC_STREAM_FILTER] = "filter"};

const char *spice_spec_image_compression_name(enum spice_spec_image_compression c)
{
    return (unsigned)c < G_N_ELEMENTS(image_compression_names) ? image_compression_names[c] : "?";
}

void spice_spec_clear(struct spice_spec *spec)
{
    g_free(spec->addr);
    g_free(spec->x509_dir);
    if (spec->password)
        memset(spec->password, 0, strlen(spec->password));
    g_free(spec->password);
    g_free(spec->password_secret);
    memset(spec, 0, sizeof(*spec));
}

static bool parse_port(const char *key, const char *v, unsigned *out, char **error)
{
    if (*v && strspn(v, "0123456789") == strlen(v) && strlen(v) <= 5) {
        unsigned long n = strtoul(v, NULL, 10);
        if (n >= 1 && n <= 65535) {
            *out = (unsigned)n;
            return true;
        }
    }
    *error = g_strdup_printf("%s=%s: expected a TCP port from 1 to 65535", key, v);
    return false;
}

/* One of names[0..n); the index goes to *out. */
static bool parse_enum(const char *key, const char *v, const char *const *names, size_t n, int *out, char **error)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(v, names[i])) {
            *out = (int)i;
            return true;
        }
    }
    g_autofree char *known = g_strjoinv(", ", (char **)names);
    *error = g_strdup_printf("%s=%s: expected one of %s", key, v, known);
    return false;
}

#define PARSE_ENUM(key, v, names, field, error)                                                                     \
    ({                                                                                                              \
        int index_;                                                                                                 \
        const char *names_[G_N_ELEMENTS(names) + 1];                                                                \
        memcpy(names_, names, sizeof(names));                                                                       \
        names_[G_N_ELEMENTS(names)] = NULL;                                                                         \
        bool ok_ = parse_enum(key, v, names_, G_N_ELEMENTS(names), &index_, error);                                 \
        if (ok_)                                                                                                    \
            field = index_;                                                                                         \
        ok_;                                                                                                        \
    })

static bool parse_param(struct spice_spec *s, const char *key, const char *v, char **error)
{
    bool flag;
    if (!strcmp(key, "port"))
        return parse_port(key, v, &s->port, error);
    if (!strcmp(key, "tls-port"))
        return parse_port(key, v, &s->tls_port, error);
    if (!strcmp(key, "addr")) {
        if (!*v) {
            *error = g_strdup("addr= needs an address (or, with unix=on, a socket path)");
            return false;
        }
        g_free(s->addr);
        s->addr = g_strdup(v);
        return true;
    }
    if (!strcmp(key, "x509-dir")) {
        g_free(s->x509_dir);
        s->x509_dir = g_strdup(v);
        return true;
    }
    if (!strcmp(key, "password")) {
        if (strlen(v) > SPICE_SPEC_PASSWORD_MAX) {
            *error = g_strdup_printf("password= is longer than SPICE's %d characters", SPICE_SPEC_PASSWORD_MAX);
            return false;
        }
        g_free(s->password);
        s->password = g_strdup(v);
        return true;
    }
    if (!strcmp(key, "password-secret")) {
        if (!*v) {
            *error = g_strdup("password-secret= needs the id of an --object secret");
            return false;
        }
        g_free(s->password_secret);
        s->password_secret = g_strdup(v);
        return true;
    }
    if (!strcmp(key, "unix"))
        return switch_parse(key, v, &s->unix_socket, error);
    if (!strcmp(key, "ipv4"))
        return switch_parse(key, v, &s->ipv4, error);
    if (!strcmp(key, "ipv6"))
        return switch_parse(key, v, &s->ipv6, error);
    if (!strcmp(key, "disable-ticketing"))
        return switch_parse(key, v, &s->disable_ticketing, error);
    if (!strcmp(key, "insecure"))
        return switch_parse(key, v, &s->insecure, error);
    if (!strcmp(key, "playback-compression"))
        return switch_parse(key, v, &s->playback_compression, error);
    if (!strcmp(key, "agent-mouse"))
        return switch_parse(key, v, &s->agent_mouse, error);
    if (!strcmp(key, "disable-copy-paste")) {
        if (!switch_parse(key, v, &flag, error))
            return false;
        s->copy_paste = !flag;
        return true;
    }
    if (!strcmp(key, "disable-agent-file-xfer")) {
        if (!switch_parse(key, v, &flag, error))
            return false;
        s->file_xfer = !flag;
        return true;
    }
    if (!strcmp(key, "image-compression"))
        return PARSE_ENUM(key, v, image_compression_names, s->image_compression, error);
    if (!strcmp(key, "jpeg-wan-compression"))
        return PARSE_ENUM(key, v, wan_names, s->jpeg_wan, error);
    if (!strcmp(key, "zlib-glz-wan-compression"))
        return PARSE_ENUM(key, v, wan_names, s->zlib_glz_wan, error);
    if (!strcmp(key, "streaming-video"))
        return PARSE_ENUM(key, v, streaming_names, s->streaming_video, error);
    *error = g_strdup_printf("unknown parameter '%s' (known: port, addr, unix, ipv4, ipv6, tls-port, x509-dir, "
                             "disable-ticketing, password, password-secret, insecure, image-compression, jpeg-wan-compression, "
                             "zlib-glz-wan-compression, streaming-video, playback-compression, agent-mouse, "
                             "disable-copy-paste, disable-agent-file-xfer)",
                             key);
    return false;
}

/* The rules that involve more than one parameter. */
static bool check_spec(const struct spice_spec *s, char **error)
{
    if (s->unix_socket) {
        if (!s->addr || s->addr[0] != '/') {
            *error = g_strdup("unix=on needs addr=/absolute/path/of/the/socket");
            return false;
        }
        if (s->port || s->tls_port) {
            *error = g_strdup("unix=on cannot be combined with port= or tls-port=");
            return false;
        }
        return true;
    }
    if (!s->port && !s->tls_port) {
        *error = g_strdup("needs port=N (or tls-port=N, or unix=on,addr=PATH)");
        return false;
    }
    if (s->port && s->port == s->tls_port) {
        *error = g_strdup_printf("port= and tls-port= are both %u", s->port);
        return false;
    }
    if (s->tls_port && !s->x509_dir) {
        *error = g_strdup("tls-port= needs x509-dir=DIR (with ca-cert.pem, server-cert.pem, server-key.pem)");
        return false;
    }
    if (s->ipv4 && s->ipv6) {
        *error = g_strdup("ipv4=on and ipv6=on exclude each other");
        return false;
    }
    if (s->disable_ticketing && (s->password || s->password_secret)) {
        *error = g_strdup_printf("%s and disable-ticketing=on contradict each other",
                                 s->password ? "password=" : "password-secret=");
        return false;
    }
    if (s->password && s->password_secret) {
        *error = g_strdup("password= and password-secret= are two passwords: give one");
        return false;
    }
    if (!s->unix_socket && !listen_host_is_loopback(s->addr) && s->disable_ticketing && !s->insecure) {
        *error = g_strdup_printf("'%s' is not a loopback address: with disable-ticketing=on anyone who can reach "
                                 "it would control the VM; drop disable-ticketing (then QMP set_password) or add "
                                 "insecure=on if you really mean it",
                                 s->addr);
        return false;
    }
    return true;
}

bool spice_spec_parse(const char *text, struct spice_spec *out, char **error)
{
    memset(out, 0, sizeof(*out));
    if (!strcmp(text, "none"))
        return true;
    struct spice_spec s = {
        .enabled = true,
        .streaming_video = SPICE_SPEC_STREAM_OFF,
        .playback_compression = true,
        .agent_mouse = true,
        .copy_paste = true,
        .file_xfer = true,
    };
    g_auto(GStrv) parts = g_strsplit(text, ",", -1);
    for (int i = 0; parts[i]; i++) {
        const char *p = parts[i];
        if (!*p)
            continue;
        const char *eq = strchr(p, '=');
        g_autofree char *key = eq ? g_strndup(p, (gsize)(eq - p)) : g_strdup(p);
        const char *v = eq ? eq + 1 : "on";
        if (!parse_param(&s, key, v, error)) {
            spice_spec_clear(&s);
            return false;
        }
    }
    if (!s.addr)
        s.addr = g_strdup(s.ipv6 ? "::1" : "127.0.0.1");
    if (!check_spec(&s, error)) {
        spice_spec_clear(&s);
        return false;
    }
    *out = s;
    return true;
}
