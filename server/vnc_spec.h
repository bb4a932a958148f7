/* The --vnc option: where the VNC server listens and how clients authenticate. Pure parsing, no sockets. */
#ifndef DESKVM_VNC_SPEC_H
#define DESKVM_VNC_SPEC_H

#include <stdbool.h>

/* RFB's display numbers count from this TCP port. */
#define VNC_BASE_PORT 5900

enum vnc_kind {
    VNC_OFF, /* no --vnc, or --vnc none */
    VNC_TCP,
    VNC_UNIX,
};

struct vnc_spec {
    enum vnc_kind kind;
    char *host;       /* VNC_TCP: numeric address or host name as given ("127.0.0.1", "::1", "localhost") */
    unsigned display; /* VNC_TCP: port = VNC_BASE_PORT + display */
    char *path;       /* VNC_UNIX: absolute path */
    bool password;    /* password=on: VNC authentication; nobody gets in before QMP set_password */
    unsigned websocket_port; /* websocket=PORT: a second listener for noVNC (0: none) */
    bool insecure;           /* insecure=on: allow a non-loopback host without a password */
};

/* Parses "HOST:DISPLAY[,password=on][,websocket=PORT][,insecure=on]", "unix:PATH[,password=on]" or "none".
 * An empty HOST (":0") means 127.0.0.1; "[::1]:0" is an IPv6 host. A host that is not a loopback address is
 * refused unless password=on or insecure=on. False with a message in *error (caller frees) that does not
 * repeat the option name. */
bool vnc_spec_parse(const char *text, struct vnc_spec *out, char **error);
void vnc_spec_clear(struct vnc_spec *spec);
/* The TCP port of a VNC_TCP spec. */
unsigned vnc_spec_port(const struct vnc_spec *spec);

#endif
