/* QEMU's RFB extensions, which libvncserver 0.9.14 lacks on the server side. Extended Key Event
 * (pseudo-encoding -258, client message 255 subtype 0): the client sends the scan code of the physical key
 * with the keysym, so the guest gets the key the user pressed whatever layout either side uses; it goes
 * straight to the input router as an evdev key. Pointer Type Change (pseudo-encoding -257): tells the client
 * the pointer is absolute, which clients such as openQA's wait for before sending absolute positions. Both
 * are acknowledged with a FramebufferUpdate holding one pseudo-rectangle, as QEMU does. */
#include "vnc_internal.h"

#include <pthread.h>
#include <stdlib.h>

#include "scancode.h"

#define ENC_QEMU_POINTER_TYPE_CHANGE (-257)
#define ENC_QEMU_EXTENDED_KEY_EVENT (-258)
#define MSG_QEMU 255
#define MSG_QEMU_EXT_KEY_EVENT 0
/* type, subtype, down-flag (2), keysym (4), keycode (4) */
#define MSG_QEMU_EXT_KEY_EVENT_SIZE 12

static int pseudo_encodings[] = {ENC_QEMU_EXTENDED_KEY_EVENT, ENC_QEMU_POINTER_TYPE_CHANGE, 0};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A FramebufferUpdate with one pseudo-rectangle: the acknowledgement both extensions use. */
static void send_pseudo_rect(rfbClientPtr cl, int x, int y, int w, int h, int32_t encoding)
{
    uint8_t msg[4 + 12] = {0};
    msg[0] = rfbFramebufferUpdate;
    put16(msg + 2, 1);
    put16(msg + 4, (uint16_t)x);
    put16(msg + 6, (uint16_t)y);
    put16(msg + 8, (uint16_t)w);
    put16(msg + 10, (uint16_t)h);
    put32(msg + 12, (uint32_t)encoding);
    pthread_mutex_lock(&cl->sendMutex);
    if (rfbWriteExact(cl, (char *)msg, sizeof(msg)) < 0)
        rfbCloseClient(cl);
    pthread_mutex_unlock(&cl->sendMutex);
}

/* Enabled for every client; per-client state lives in struct vnc_client (cl->clientData), which our
 * clientGoneHook frees. */
static rfbBool ext_new_client(rfbClientPtr cl, void **data)
{
    (void)cl;
    *data = NULL;
    return TRUE;
}

static rfbBool ext_enable(rfbClientPtr cl, void **data, int encoding)
{
    struct vnc_client *vc = cl->clientData;
    (void)data;
    if (!vc)
        return FALSE;
    if (encoding == ENC_QEMU_EXTENDED_KEY_EVENT) {
        if (!vc->extkey_acked) {
            vc->extkey_acked = true;
            send_pseudo_rect(cl, 0, 0, cl->screen->width, cl->screen->height, ENC_QEMU_EXTENDED_KEY_EVENT);
        }
        return TRUE;
    }
    if (encoding == ENC_QEMU_POINTER_TYPE_CHANGE) {
        if (!vc->ptrtype_acked) {
            vc->ptrtype_acked = true;
            /* x = 1: absolute */
            send_pseudo_rect(cl, 1, 0, cl->screen->width, cl->screen->height, ENC_QEMU_POINTER_TYPE_CHANGE);
        }
        return TRUE;
    }
    return FALSE;
}

/* The evdev key of an extended key event's keycode. QEMU's clients send QEMU key numbers (set 1, 0x80
 * standing for the 0xE0 prefix); a keycode of the form 0xE0xx is the prefixed set-1 code written out, taken
 * as well. */
unsigned vnc_extkey_to_evdev(uint32_t keycode)
{
    if ((keycode & 0xff00) == 0xe000 && keycode <= 0xffff)
        return scancode_set1_to_evdev(keycode);
    if (keycode > 0 && keycode <= 0xff)
        return scancode_qnum_to_evdev(keycode);
    return 0;
}

static rfbBool ext_handle_message(rfbClientPtr cl, void *data, const rfbClientToServerMsg *message)
{
    (void)data;
    if (message->type != MSG_QEMU)
        return FALSE;
    uint8_t msg[MSG_QEMU_EXT_KEY_EVENT_SIZE];
    /* The type byte is read; the subtype says how long the rest is, and only key events are known here. */
    if (rfbReadExact(cl, (char *)msg + 1, 1) <= 0) {
        rfbCloseClient(cl);
        return TRUE;
    }
    if (msg[1] != MSG_QEMU_EXT_KEY_EVENT) {
        rfbLog("QEMU client message subtype %u not supported; closing\n", msg[1]);
        rfbCloseClient(cl);
        return TRUE;
    }
    if (rfbReadExact(cl, (char *)msg + 2, MSG_QEMU_EXT_KEY_EVENT_SIZE - 2) <= 0) {
        rfbCloseClient(cl);
        return TRUE;
    }
    bool down = msg[2] || msg[3];
    uint32_t keysym = get32(msg + 4), keycode = get32(msg + 8);
    unsigned evdev = vnc_extkey_to_evdev(keycode);
    struct vnc *v = cl->screen->screenData;
    struct vnc_event ev = {.down = down};
    if (evdev) {
        ev.kind = VNC_EV_KEYCODE;
        ev.value = evdev;
    } else {
        /* a key the tables do not know: fall back to its keysym through the layout */
        ev.kind = VNC_EV_KEYSYM;
        ev.value = keysym;
    }
    if (!cl->viewOnly)
        vnc_input_queue(v, &ev);
    return TRUE;
}

static rfbProtocolExtension qemu_extension = {
    .newClient = ext_new_client,
    .pseudoEncodings = pseudo_encodings,
    .enablePseudoEncoding = ext_enable,
    .handleMessage = ext_handle_message,
};

void vnc_extkey_register(void)
{
    rfbRegisterProtocolExtension(&qemu_extension);
}

void vnc_extkey_client_gone(rfbClientPtr cl)
{
    /* libvncserver 0.9.14 frees neither a gone client's extension records nor those rfbDisableExtension
     * unlinks; they are plain calloc()ed list nodes, and only this extension is registered. */
    rfbExtensionData *e = cl->extensions;
    cl->extensions = NULL;
    while (e) {
        rfbExtensionData *next = e->next;
        free(e);
        e = next;
    }
}
