/* The --spice option: where the SPICE server listens, how clients authenticate, and the compression and
 * streaming switches, in QEMU's -spice spelling. Pure parsing, no sockets and no spice-server calls, so unit
 * tests cover it on its own. */
#ifndef DESKVM_SPICE_SPEC_H
#define DESKVM_SPICE_SPEC_H

#include <stdbool.h>

/* spice-server's SPICE_MAX_PASSWORD_LENGTH. */
#define SPICE_SPEC_PASSWORD_MAX 60

enum spice_spec_image_compression {
    SPICE_SPEC_IC_AUTO_GLZ, /* spice-server's and QEMU's default */
    SPICE_SPEC_IC_AUTO_LZ,
    SPICE_SPEC_IC_QUIC,
    SPICE_SPEC_IC_GLZ,
    SPICE_SPEC_IC_LZ,
    SPICE_SPEC_IC_LZ4,
    SPICE_SPEC_IC_OFF,
};

enum spice_spec_wan { SPICE_SPEC_WAN_AUTO, SPICE_SPEC_WAN_NEVER, SPICE_SPEC_WAN_ALWAYS };

enum spice_spec_streaming { SPICE_SPEC_STREAM_OFF, SPICE_SPEC_STREAM_ALL, SPICE_SPEC_STREAM_FILTER };

struct spice_spec {
    bool enabled;
    char *addr;         /* "127.0.0.1" unless given; with unix=on, the socket path */
    bool unix_socket;   /* unix=on: addr is a unix socket path */
    bool ipv4, ipv6;    /* ipv4=on / ipv6=on: only that family */
    unsigned port;      /* plain port (0: none) */
    unsigned tls_port;  /* TLS port (0: none); needs x509_dir */
    char *x509_dir;     /* ca-cert.pem, server-cert.pem, server-key.pem inside */
    bool disable_ticketing; /* no password at all */
    char *password;         /* password=: the initial ticket (NULL: none until QMP set_password) */
    char *password_secret;  /* password-secret=ID: the ticket is --object secret ID's (options resolve it) */
    bool insecure;          /* insecure=on: a non-loopback address without ticketing is allowed */
    enum spice_spec_image_compression image_compression;
    enum spice_spec_wan jpeg_wan, zlib_glz_wan;
    enum spice_spec_streaming streaming_video; /* QEMU's default: off */
    bool playback_compression;                 /* default on (Opus) */
    bool agent_mouse;                          /* default on */
    bool copy_paste;                           /* default on (disable-copy-paste=on turns it off) */
    bool file_xfer;                            /* default on (disable-agent-file-xfer=on turns it off) */
};

/* Parses "port=N[,addr=HOST][,unix=on][,ipv4=on|ipv6=on][,tls-port=N,x509-dir=DIR][,disable-ticketing=on]
 * [,password=PW|password-secret=ID][,insecure=on][,image-compression=...][,jpeg-wan-compression=...]
 * [,zlib-glz-wan-compression=...][,streaming-video=off|all|filter][,playback-compression=on|off]
 * [,agent-mouse=on|off][,disable-copy-paste=on][,disable-agent-file-xfer=on]" or "none". Without
 * disable-ticketing or password, clients are refused until QMP set_password gives one. A non-loopback address
 * without a ticket is refused unless insecure=on. False with *error (caller frees), which does not repeat the
 * option name. */
bool spice_spec_parse(const char *text, struct spice_spec *out, char **error);
void spice_spec_clear(struct spice_spec *spec);

const char *spice_spec_image_compression_name(enum spice_spec_image_compression c);

#endif
