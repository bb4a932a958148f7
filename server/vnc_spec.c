/* --vnc parsing. Only the address grammar and the loopback rule live here, so unit tests cover them without
 * libvncserver. */
#include "vnc_spec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "listen.h"
#include "size_parse.h"

void vnc_spec_clear(struct vnc_spec *spec)
{
    g_free(spec->host);
    g_free(spec->path);
    memset(spec, 0, sizeof(*spec));
}

unsigned vnc_spec_port(const struct vnc_spec *spec)
{
    return VNC_BASE_PORT + spec->display;
}

static bool parse_number(const char *v, unsigned long max, unsigned long *out)
{
    if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 6)
        return false;
    errno = 0;
    unsigned long n = strtoul(v, NULL, 10);
    if (errno || n > max)
        return false;
    *out = n;
    return true;
}

/* "HOST:DISPLAY" with an optional [IPv6] host. */
static bool parse_tcp(const char *addr, struct vnc_spec *out, char **error)
{
    const char *colon;
    g_autofree char *host = NULL;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':') {
            *error = g_strdup_printf("'%s' is not [IPV6-ADDRESS]:DISPLAY", addr);
            return false;
        }
        host = g_strndup(addr + 1, (gsize)(close - addr - 1));
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon) {
            *error = g_strdup_printf("'%s' is not HOST:DISPLAY (e.g. 127.0.0.1:0), unix:PATH or none", addr);
            return false;
        }
        host = g_strndup(addr, (gsize)(colon - addr));
        if (strchr(host, ':')) {
            *error = g_strdup_printf("'%s': write an IPv6 host in brackets, e.g. [::1]:0", addr);
            return false;
        }
    }
    unsigned long display;
    if (!parse_number(colon + 1, 65535 - VNC_BASE_PORT, &display)) {
        *error = g_strdup_printf("'%s' is not a display number from 0 to %d (the port is %d + display)",
                                 colon + 1, 65535 - VNC_BASE_PORT, VNC_BASE_PORT);
        return false;
    }
    out->kind = VNC_TCP;
    out->host = *host ? g_steal_pointer(&host) : g_strdup("127.0.0.1");
    out->display = (unsigned)display;
    return true;
}

bool vnc_spec_parse(const char *text, struct vnc_spec *out, char **error)
{
    memset(out, 0, sizeof(*out));
    if (!strcmp(text, "none"))
        return true;
    g_auto(GStrv) parts = g_strsplit(text, ",", -1);
    const char *addr = parts[0];
    if (!addr || !*addr) {
        *error = g_strdup("needs an address: HOST:DISPLAY, unix:PATH or none");
        return false;
    }
    struct vnc_spec s = {0};
    if (g_str_has_prefix(addr, "unix:")) {
        const char *path = addr + 5;
        if (!*path) {
            *error = g_strdup("unix: needs a socket path");
            return false;
        }
        s.kind = VNC_UNIX;
        s.path = g_canonicalize_filename(path, NULL);
    } else if (!parse_tcp(addr, &s, error)) {
        return false;
    }
    for (int i = 1; parts[i]; i++) {
        const char *p = parts[i];
        const char *eq = strchr(p, '=');
        g_autofree char *key = eq ? g_strndup(p, (gsize)(eq - p)) : g_strdup(p);
        const char *v = eq ? eq + 1 : "on";
        bool ok = true;
        if (!strcmp(key, "password")) {
            ok = switch_parse(key, v, &s.password, error);
        } else if (!strcmp(key, "insecure")) {
            ok = switch_parse(key, v, &s.insecure, error);
        } else if (!strcmp(key, "websocket")) {
            unsigned long port;
            if (s.kind != VNC_TCP) {
                *error = g_strdup("websocket= needs a TCP address (HOST:DISPLAY)");
                ok = false;
            } else if (!parse_number(v, 65535, &port) || port == 0) {
                *error = g_strdup_printf("websocket=%s: expected a TCP port from 1 to 65535", v);
                ok = false;
            } else if (port == vnc_spec_port(&s)) {
                *error = g_strdup_printf("websocket=%s is the RFB port itself (which takes WebSocket clients "
                                         "anyway)",
                                         v);
                ok = false;
            } else {
                s.websocket_port = (unsigned)port;
            }
        } else {
            *error = g_strdup_printf("unknown parameter '%s' (known: password, websocket, insecure)", key);
            ok = false;
        }
        if (!ok) {
            vnc_spec_clear(&s);
            return false;
        }
    }
    if (s.kind == VNC_TCP && !listen_host_is_loopback(s.host) && !s.password && !s.insecure) {
        *error =
            g_strdup_printf("'%s' is not a loopback address: anyone who can reach it would control the VM; "
                            "add password=on (then QMP set_password) or insecure=on if you really mean it",
                            s.host);
        vnc_spec_clear(&s);
        return false;
    }
    *out = s;
    return true;
}
