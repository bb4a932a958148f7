/* The SPICE front end (see spice_frontend.h): server set-up from --spice, authentication, the run state, channel
 * bookkeeping for QMP, and the wiring of the display, input and agent parts (spice_display.c, spice_input.c,
 * spice_agent.c). Everything here runs on the main thread, which is spice-server's main thread. */
#include "spice_frontend.h"

#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "listen.h"
#include "log.h"
#include "spice_core.h"
#include "spice_internal.h"
#include "vm.h"

/* A connected channel: spice-server's info stays valid until its DISCONNECTED event. */
struct spice_channel {
    SpiceChannelEventInfo *info;
    struct spice_channel_desc desc;
};

struct spice {
    struct spice_spec spec;
    SpiceServer *server;
    struct vm *vm;
    unsigned vm_listener;
    bool vm_started;

    struct display *display;          /* the display shown, if any */
    bool display_native;              /* it attached its own QXL instance (qxl) */
    struct spice_display *simple;     /* otherwise the simple display feeding it */
    struct spice_input *input;
    struct spice_agent *agent;

    char *password; /* the ticket now in force (NULL: none) */
    gint64 expire_at; /* as spice_expire_password takes it */

    GPtrArray *channels; /* struct spice_channel *, initialized channels */
    unsigned main_channels;
    spice_event_fn event_fn;
    void *event_opaque;
};

static const char *family_name(int family)
{
    switch (family) {
    case AF_INET:
        return "ipv4";
    case AF_INET6:
        return "ipv6";
    case AF_UNIX:
        return "unix";
    default:
        return "unknown";
    }
}

static void describe_address(const struct sockaddr_storage *sa, socklen_t len, char *host, size_t hostlen,
                             char *port, size_t portlen, const char **family)
{
    *family = family_name(sa->ss_family);
    host[0] = port[0] = 0;
    if (sa->ss_family == AF_UNIX) {
        /* sun_path need not be NUL-terminated: copy only what the address length covers. */
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t n = len > off ? MIN((size_t)len - off, sizeof(un->sun_path)) : 0;
        n = MIN(n, hostlen - 1);
        size_t i = 0;
        while (i < n && un->sun_path[i])
            i++;
        memcpy(host, un->sun_path, i);
        host[i] = 0;
        return;
    }
    if (getnameinfo((const struct sockaddr *)sa, len, host, (socklen_t)hostlen, port, (socklen_t)portlen,
                    NI_NUMERICHOST | NI_NUMERICSERV))
        g_strlcpy(host, "?", hostlen);
}

static void describe_server(struct spice *s, struct spice_server_desc *out)
{
    memset(out, 0, sizeof(*out));
    g_strlcpy(out->host, s->spec.addr, sizeof(out->host));
    if (s->spec.unix_socket) {
        out->family = "unix";
    } else {
        out->family = strchr(s->spec.addr, ':') ? "ipv6" : "ipv4";
        g_snprintf(out->port, sizeof(out->port), "%u", s->spec.port ? s->spec.port : s->spec.tls_port);
    }
    out->auth = s->spec.disable_ticketing && !s->password ? "none" : "spice";
}

static void describe_channel(SpiceChannelEventInfo *info, struct spice_channel_desc *out)
{
    memset(out, 0, sizeof(*out));
    if (info->flags & SPICE_CHANNEL_EVENT_FLAG_ADDR_EXT)
        describe_address(&info->paddr_ext, info->plen_ext, out->host, sizeof(out->host), out->port,
                         sizeof(out->port), &out->family);
    else
        out->family = "unknown";
    out->connection_id = info->connection_id;
    out->channel_type = info->type;
    out->channel_id = info->id;
    out->tls = (info->flags & SPICE_CHANNEL_EVENT_FLAG_TLS) != 0;
}

static void on_channel_event(void *opaque, int event, SpiceChannelEventInfo *info)
{
    struct spice *s = opaque;
    struct spice_channel_desc desc;
    describe_channel(info, &desc);
    struct spice_server_desc server;
    describe_server(s, &server);
    enum spice_event_kind kind;
    switch (event) {
    case SPICE_CHANNEL_EVENT_CONNECTED:
        kind = SPICE_EVENT_CONNECTED;
        break;
    case SPICE_CHANNEL_EVENT_INITIALIZED: {
        kind = SPICE_EVENT_INITIALIZED;
        struct spice_channel *c = g_new0(struct spice_channel, 1);
        c->info = info;
        c->desc = desc;
        g_ptr_array_add(s->channels, c);
        if (info->type == SPICE_CHANNEL_MAIN) {
            s->main_channels++;
            log_info("spice: client %s%s%s connected (connection %d)", desc.host, *desc.port ? ":" : "",
                     desc.port, desc.connection_id);
        }
        break;
    }
    case SPICE_CHANNEL_EVENT_DISCONNECTED:
        kind = SPICE_EVENT_DISCONNECTED;
        for (guint i = 0; i < s->channels->len; i++) {
            struct spice_channel *c = g_ptr_array_index(s->channels, i);
            if (c->info != info)
                continue;
            g_ptr_array_remove_index(s->channels, i);
            if (info->type == SPICE_CHANNEL_MAIN && s->main_channels) {
                s->main_channels--;
                log_info("spice: client %s%s%s disconnected", desc.host, *desc.port ? ":" : "", desc.port);
                if (!s->main_channels && s->input)
                    spice_input_client_gone(s->input);
            }
            break;
        }
        break;
    default:
        return;
    }
    if (s->event_fn)
        s->event_fn(s->event_opaque, kind, &server, &desc);
}

/* spice-server's QXL workers only run between vm_start and vm_stop; follow the VM's run state. */
static void set_vm_running(struct spice *s, bool running)
{
    if (running == s->vm_started)
        return;
    s->vm_started = running;
    if (running)
        spice_server_vm_start(s->server);
    else
        spice_server_vm_stop(s->server);
}

static void on_vm_event(void *opaque, const struct vm_event *ev)
{
    struct spice *s = opaque;
    if (ev->kind == VM_EVENT_RESUME)
        set_vm_running(s, true);
    else if (ev->kind == VM_EVENT_STOP || ev->kind == VM_EVENT_SHUTDOWN)
        set_vm_running(s, false);
}

static const spice_image_compression_t image_compressions[] = {
    [SPICE_SPEC_IC_AUTO_GLZ] = SPICE_IMAGE_COMPRESSION_AUTO_GLZ,
    [SPICE_SPEC_IC_AUTO_LZ] = SPICE_IMAGE_COMPRESSION_AUTO_LZ,
    [SPICE_SPEC_IC_QUIC] = SPICE_IMAGE_COMPRESSION_QUIC,
    [SPICE_SPEC_IC_GLZ] = SPICE_IMAGE_COMPRESSION_GLZ,
    [SPICE_SPEC_IC_LZ] = SPICE_IMAGE_COMPRESSION_LZ,
    [SPICE_SPEC_IC_LZ4] = SPICE_IMAGE_COMPRESSION_LZ4,
    [SPICE_SPEC_IC_OFF] = SPICE_IMAGE_COMPRESSION_OFF,
};
static const spice_wan_compression_t wan_compressions[] = {
    [SPICE_SPEC_WAN_AUTO] = SPICE_WAN_COMPRESSION_AUTO,
    [SPICE_SPEC_WAN_NEVER] = SPICE_WAN_COMPRESSION_NEVER,
    [SPICE_SPEC_WAN_ALWAYS] = SPICE_WAN_COMPRESSION_ALWAYS,
};
static const int streaming_modes[] = {
    [SPICE_SPEC_STREAM_OFF] = SPICE_STREAM_VIDEO_OFF,
    [SPICE_SPEC_STREAM_ALL] = SPICE_STREAM_VIDEO_ALL,
    [SPICE_SPEC_STREAM_FILTER] = SPICE_STREAM_VIDEO_FILTER,
};

/* Everything that must be set before spice_server_init opens the sockets. */
static bool configure_listen(struct spice *s, char **error)
{
    const struct spice_spec *sp = &s->spec;
    if (sp->unix_socket) {
        spice_server_set_addr(s->server, sp->addr, SPICE_ADDR_FLAG_UNIX_ONLY);
        return true;
    }
    int flags = sp->ipv4 ? SPICE_ADDR_FLAG_IPV4_ONLY : sp->ipv6 ? SPICE_ADDR_FLAG_IPV6_ONLY : 0;
    spice_server_set_addr(s->server, sp->addr, flags);
    if (sp->port)
        spice_server_set_port(s->server, (int)sp->port);
    if (sp->tls_port) {
        g_autofree char *ca = g_build_filename(sp->x509_dir, "ca-cert.pem", NULL);
        g_autofree char *cert = g_build_filename(sp->x509_dir, "server-cert.pem", NULL);
        g_autofree char *key = g_build_filename(sp->x509_dir, "server-key.pem", NULL);
        const char *const files[] = {ca, cert, key};
        for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
            if (!g_file_test(files[i], G_FILE_TEST_IS_REGULAR)) {
                *error = g_strdup_printf("x509-dir: %s is missing (need ca-cert.pem, server-cert.pem and "
                                         "server-key.pem)",
                                         files[i]);
                return false;
            }
        }
        if (spice_server_set_tls(s->server, (int)sp->tls_port, ca, cert, key, NULL, NULL, NULL) < 0) {
            *error = g_strdup_printf("tls-port=%u: spice-server refused the TLS set-up in %s", sp->tls_port,
                                     sp->x509_dir);
            return false;
        }
    }
    return true;
}

static void configure_features(struct spice *s)
{
    const struct spice_spec *sp = &s->spec;
    spice_server_set_image_compression(s->server, image_compressions[sp->image_compression]);
    spice_server_set_jpeg_compression(s->server, wan_compressions[sp->jpeg_wan]);
    spice_server_set_zlib_glz_compression(s->server, wan_compressions[sp->zlib_glz_wan]);
    spice_server_set_streaming_video(s->server, streaming_modes[sp->streaming_video]);
    spice_server_set_playback_compression(s->server, sp->playback_compression);
    spice_server_set_agent_mouse(s->server, sp->agent_mouse);
    spice_server_set_agent_copypaste(s->server, sp->copy_paste);
    spice_server_set_agent_file_xfer(s->server, sp->file_xfer);
}

/* The ticket from s->password and s->expire_at; fail/disconnect as set_password's `connected` asks. */
static int apply_ticket(struct spice *s, bool fail_if_connected, bool disconnect_if_connected)
{
    int lifetime = 0; /* spice-server: 0 never expires */
    if (s->expire_at < 0) {
        lifetime = -1;
    } else if (s->expire_at > 0) {
        gint64 left = (s->expire_at - g_get_real_time()) / G_USEC_PER_SEC;
        lifetime = left <= 0 ? -1 : left > G_MAXINT32 / 2 ? G_MAXINT32 / 2 : (int)left;
    }
    return spice_server_set_ticket(s->server, s->password, lifetime, fail_if_connected, disconnect_if_connected);
}

static bool attach_display(struct spice *s, struct machine *m, char **error)
{
    s->display = m ? display_find(m, NULL, 0) : NULL;
    if (!s->display)
        return true;
    if (s->display->ops && s->display->ops->spice_attach) {
        if (!s->display->ops->spice_attach(s->display, s->server, error))
            return false;
        s->display_native = true;
        return true;
    }
    s->simple = spice_display_new(s->server, s->display, 0, error);
    return s->simple != NULL;
}

struct spice *spice_start(const struct spice_spec *spec, const struct spice_deps *deps, char **error)
{
    struct spice *s = g_new0(struct spice, 1);
    s->spec = *spec;
    s->spec.addr = g_strdup(spec->addr);
    s->spec.x509_dir = g_strdup(spec->x509_dir);
    s->spec.password = NULL;
    s->password = g_strdup(spec->password);
    s->channels = g_ptr_array_new_with_free_func(g_free);
    s->vm = deps->vm;

    spice_core_route_logs();
    s->server = spice_server_new();
    if (!s->server) {
        *error = g_strdup("spice-server could not be created");
        g_free(s);
        return NULL;
    }
    if (!configure_listen(s, error))
        goto fail;
    if (deps->name)
        spice_server_set_name(s->server, deps->name);
    configure_features(s);
    if (spec->disable_ticketing)
        spice_server_set_noauth(s->server);
    spice_core_set_channel_event_handler(on_channel_event, s);
    if (spice_server_init(s->server, spice_core_glib()) < 0) {
        *error = s->spec.unix_socket
                     ? g_strdup_printf("cannot listen on unix socket %s", s->spec.addr)
                     : g_strdup_printf("cannot listen on %s port %u%s (in use?)", s->spec.addr,
                                       s->spec.port ? s->spec.port : s->spec.tls_port,
                                       s->spec.tls_port && s->spec.port ? " or its TLS port" : "");
        goto fail;
    }
    /* Ticketing is spice-server's default with an empty password, which refuses everyone until QMP
     * set_password gives one; a password from the command line applies now. */
    if (!spec->disable_ticketing && s->password)
        apply_ticket(s, false, false);

    if (!attach_display(s, deps->m, error))
        goto fail;
    if (deps->in)
        s->input = spice_input_new(s->server, deps->in);
    if (deps->agent_port)
        s->agent = spice_agent_new(s->server, deps->agent_port);
    if (s->vm) {
        s->vm_listener = vm_add_listener(s->vm, on_vm_event, s);
        set_vm_running(s, vm_get_state(s->vm) == VM_RUNNING);
    } else {
        set_vm_running(s, true);
    }
    if (s->spec.unix_socket)
        log_info("spice: listening on unix socket %s", s->spec.addr);
    else
        log_info("spice: listening on %s port %u%s%s", s->spec.addr, s->spec.port ? s->spec.port : s->spec.tls_port,
                 s->spec.tls_port && s->spec.port ? " (TLS on another port)" : "",
                 spec->disable_ticketing ? ", no password"
                 : s->password          ? ", password required"
                                        : ", refusing clients until QMP set_password");
    return s;

fail:
    spice_stop(s);
    return NULL;
}

void spice_stop(struct spice *s)
{
    if (!s)
        return;
    if (s->vm && s->vm_listener)
        vm_remove_listener(s->vm, s->vm_listener);
    if (s->server && s->vm_started)
        set_vm_running(s, false);
    spice_agent_free(s->agent);
    spice_input_free(s->input);
    spice_display_free(s->simple);
    if (s->display_native && s->display->ops->spice_detach)
        s->display->ops->spice_detach(s->display);
    if (s->server)
        spice_server_destroy(s->server);
    spice_core_set_channel_event_handler(NULL, NULL);
    g_ptr_array_free(s->channels, TRUE);
    if (s->password)
        memset(s->password, 0, strlen(s->password));
    g_free(s->password);
    spice_spec_clear(&s->spec);
    g_free(s);
}

bool spice_set_password(struct spice *s, const char *password, const char *connected, char **error)
{
    bool fail = connected && !strcmp(connected, "fail");
    bool disconnect = connected && !strcmp(connected, "disconnect");
    if (connected && !fail && !disconnect && strcmp(connected, "keep")) {
        *error = g_strdup_printf("Parameter 'connected' does not accept value '%s'", connected);
        return false;
    }
    if (strlen(password) > SPICE_SPEC_PASSWORD_MAX) {
        *error = g_strdup_printf("SPICE passwords are at most %d characters", SPICE_SPEC_PASSWORD_MAX);
        return false;
    }
    char *old = s->password;
    s->password = g_strdup(password);
    if (apply_ticket(s, fail, disconnect) < 0) {
        memset(s->password, 0, strlen(s->password));
        g_free(s->password);
        s->password = old;
        *error = g_strdup("Could not set password: a client is connected (connected=fail)");
        return false;
    }
    if (old)
        memset(old, 0, strlen(old));
    g_free(old);
    if (s->spec.disable_ticketing)
        log_info("spice: set_password turned ticketing on (the server was started with disable-ticketing=on)");
    return true;
}

bool spice_expire_password(struct spice *s, gint64 expire_at, char **error)
{
    (void)error;
    s->expire_at = expire_at;
    /* Without a password there is nothing to expire; with disable-ticketing nobody needs one. */
    if (s->password)
        apply_ticket(s, false, false);
    return true;
}

void spice_set_event_listener(struct spice *s, spice_event_fn fn, void *opaque)
{
    s->event_fn = fn;
    s->event_opaque = opaque;
}

void spice_query(struct spice *s, struct spice_query *out)
{
    memset(out, 0, sizeof(*out));
    describe_server(s, &out->server);
    out->port = s->spec.port;
    out->tls_port = s->spec.tls_port;
    out->mouse_mode = spice_server_is_server_mouse(s->server) ? "server" : "client";
    static char version[16];
    g_snprintf(version, sizeof(version), "%d.%d.%d", SPICE_SERVER_VERSION >> 16, (SPICE_SERVER_VERSION >> 8) & 0xff,
               SPICE_SERVER_VERSION & 0xff);
    out->compiled_version = version;
    out->agent_connected = spice_agent_connected(s->agent);
    out->nchannels = s->channels->len;
    out->channels = g_new0(struct spice_channel_desc, s->channels->len ? s->channels->len : 1);
    for (guint i = 0; i < s->channels->len; i++)
        out->channels[i] = ((struct spice_channel *)g_ptr_array_index(s->channels, i))->desc;
}
