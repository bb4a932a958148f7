#!/usr/bin/env python3
"""SPICE end to end on the software CPU, one guest boot for every check: the guest's virtio_gpu DRM driver sets
800x600, guest-fbpattern draws a known pattern and guest-cursor sets a hardware cursor, and spice-gtk's client
library (tests/lib/spice_client.py) must receive exactly that pattern as display channel 0's primary surface, equal
to QMP screendump, and the cursor's shape over the cursor channel; a second client gets the picture too, and an
idle screen sends (almost) nothing. Then guest-evdev watches the virtio keyboard and tablet while the client sends
PC set-1 scancodes (plain, shifted and 0xE0-extended) and, in client mouse mode, absolute positions and buttons:
the guest must see the right evdev codes and the exact absolute values.
DESKVM_SPICE_TEST_SERVER=qemu runs it against QEMU (whose input devices guest-evdev does not open: those checks
are skipped there)."""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from deskvm_harness import build_guest_image  # noqa: E402
from fbpattern import fbpattern_rgb, fbpattern_rows, wait_screendump_pattern  # noqa: E402
from png import decode_png  # noqa: E402
from spice_import import import_spice_client  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
sc = import_spice_client(t)

KIND = sc.target_kind()
BOOT_TIMEOUT = 300
W, H = 800, 600
EV_SYN, EV_KEY, EV_ABS = 0, 1, 3
KEY_A, KEY_LEFTSHIFT, KEY_UP, KEY_RIGHTCTRL, KEY_KPENTER, KEY_DELETE, BTN_LEFT, BTN_RIGHT = \
    30, 42, 103, 97, 96, 111, 0x110, 0x111
PX, PY = 200, 450
CURSOR_SIZE, BOX_W, BOX_H, HOT_X, HOT_Y = 64, 24, 16, 5, 7  # guest-cursor's image
PX2, PY2 = W - 1, 0
# What the client sends below (scancode order), as the guest should see it.
WANT_KBD = [(KEY_A, 1), (KEY_A, 0), (KEY_LEFTSHIFT, 1), (KEY_A, 1), (KEY_A, 0), (KEY_LEFTSHIFT, 0),
            (KEY_UP, 1), (KEY_UP, 0), (KEY_RIGHTCTRL, 1), (KEY_RIGHTCTRL, 0), (KEY_KPENTER, 1), (KEY_KPENTER, 0),
            (KEY_DELETE, 1), (KEY_DELETE, 0)]
WANT_TABLET = [(EV_ABS, 0, PX * 0x7FFF // W), (EV_ABS, 1, PY * 0x7FFF // H), (EV_KEY, BTN_LEFT, 1),
               (EV_KEY, BTN_LEFT, 0), (EV_ABS, 0, PX2 * 0x7FFF // W), (EV_ABS, 1, PY2 * 0x7FFF // H),
               (EV_KEY, BTN_RIGHT, 1), (EV_KEY, BTN_RIGHT, 0)]
EVENTS = len(WANT_KBD) + len(WANT_TABLET)


def cursor_problems(cur):
    """Differences between the cursor the client got (spice-gtk's cursor-set: width, height, hotspot, 32-bit
    pixels as bytes R, G, B, A) and guest-cursor's image, as a list of strings."""
    if cur is None:
        return ["no cursor-set"]
    w, h, hx, hy, data = cur
    bad = []
    if (w, h, hx, hy) != (CURSOR_SIZE, CURSOR_SIZE, HOT_X, HOT_Y):
        return [f"size/hotspot {(w, h, hx, hy)}"]
    for y in range(h):
        for x in range(w):
            r, g, b, a = data[4 * (y * w + x):4 * (y * w + x) + 4]
            inside = x < BOX_W and y < BOX_H
            want = (4 * x, 4 * y, 0x80, 255) if inside else None
            if inside and (r, g, b, a) != want:
                bad.append(f"({x},{y}) {(r, g, b, a)} want {want}")
            elif not inside and a != 0:
                bad.append(f"({x},{y}) alpha {a}, want transparent")
    return bad


def check_pixels(vm, q):
    want = fbpattern_rows(W, H)
    c = vm.client()
    try:
        t.ok(c.wait_channels(("main", "display", "inputs", "cursor"), 30),
             "the client opens the main, display, inputs and cursor channels", c.events)
        s = c.wait_surface(timeout=30)
        t.ok(s is not None and (s.width, s.height) == (W, H) and s.format == sc.SURFACE_FMT_32_xRGB,
             "display channel 0 has an 800x600 32-bit xRGB primary surface",
             s and (s.format, s.width, s.height, s.stride))
        # fbdev's damage reaches the device a moment after the guest wrote: wait until the pattern is complete.
        bad = c.wait_rows(want, timeout=60)
        t.ok(not bad, "the primary surface holds exactly the pattern the guest drew", f"bad rows {bad[:10]}")
        if c.surface is not None:
            x, y = 123, 321
            t.eq(c.surface.pixel(x, y), fbpattern_rgb(x, y), "pixel (123, 321) is the pattern's")
        shot = os.path.join(vm.dir, "shot.png")
        size, problem = wait_screendump_pattern(q, shot, W, H, {"format": "png"} if KIND == "qemu" else None)
        t.ok(problem is None, "QMP screendump shows the pattern too", problem)
        if problem is None and c.surface is not None:
            sw, sh, srows = decode_png(open(shot, "rb").read())
            t.ok((sw, sh) == (W, H) and srows == c.surface.rows(), "the SPICE surface equals QMP screendump")
        sc.pump(lambda: c.cursor is not None, 20)
        bad = cursor_problems(c.cursor)
        t.ok(not bad, "the cursor channel carries guest-cursor's 64x64 ARGB shape and hotspot (5, 7)", bad[:10])
        t.eq(c.get_mouse_mode(), sc.MOUSE_MODE_CLIENT, "with a virtio tablet the mouse mode is client (absolute)")
        t.eq(q.cmd("query-spice").get("return", {}).get("mouse-mode"), "client", "query-spice: mouse-mode client")
        # An unchanged screen: after the first full picture, hardly any bytes flow.
        time.sleep(0.5)
        sc.pump(None, 0.5)
        b0 = c.bytes_read()
        sc.pump(None, 2.0)
        idle = c.bytes_read() - b0
        t.ok(idle < 64 * 1024, f"an idle screen sends almost nothing ({idle} bytes in 2 s)")

        # A second client (spice-server replaces the first session) gets the whole picture as well.
        c2 = vm.client()
        try:
            bad2 = c2.wait_rows(want, timeout=30)
            t.ok(not bad2, "a second client gets the same pattern", f"bad rows {bad2[:10]}")
        finally:
            c2.close()
    finally:
        c.close()


def check_input(vm):
    c = vm.client()
    try:
        t.ok(c.wait_channels(("main", "display", "inputs"), 30) and c.wait_surface(W, H, 30) is not None,
             "the input client is up with a surface", c.events)
        sc.pump(lambda: c.get_mouse_mode() == sc.MOUSE_MODE_CLIENT, 10)
        c.key(sc.SC_A)
        c.key_press(sc.SC_LEFTSHIFT)
        c.key(sc.SC_A)
        c.key_release(sc.SC_LEFTSHIFT)
        c.key(sc.SC_UP)
        c.key(sc.SC_RIGHTCTRL)
        c.key(sc.SC_KPENTER)
        c.key(sc.SC_DELETE)
        c.flush(0.5)
        c.position(PX, PY, 0)
        c.button_press(sc.BUTTON_LEFT, sc.MASK_LEFT)
        c.button_release(sc.BUTTON_LEFT, 0)
        c.position(PX2, PY2, 0)
        c.button_press(sc.BUTTON_RIGHT, sc.MASK_RIGHT)
        c.button_release(sc.BUTTON_RIGHT, 0)
        c.flush(0.5)
    finally:
        c.close()


def main():
    if KIND == "deskvm" and not sc.deskvm_has_spice():
        t.skip("SPICE", "this deskvm has no --spice (built without libspice-server-dev?)")
        return
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    vm = sc.SpiceVm(KIND, "disable-ticketing=on", image=img.dir, size=(W, H),
                    run=f"guest-fbpattern && {{ guest-cursor 100 200 & }} && guest-evdev 400 {EVENTS}; sleep 600")
    failed_before = t.failed
    try:
        ready = vm.wait_serial("DESKVM-EVDEV: ready", BOOT_TIMEOUT) and vm.wait_serial("DESKVM-CURSOR: set", 30)
        out = vm.serial_text()
        if not t.ok(ready and f"DESKVM-FB: drawn {W}x{H}" in out, "the guest draws its pattern on virtio-gpu and "
                    "sets its cursor",
                    out[-3000:] + vm.stderr()[-2000:]):
            return
        q = vm.qmp()
        check_pixels(vm, q)
        if KIND == "qemu":
            t.skip("input", "guest-evdev only opens deskvm's input devices")
        else:
            t.ok("DESKVM-EVDEV: ready 2" in out, "guest-evdev opened the virtio keyboard and tablet", out[-1500:])
            check_input(vm)
            done = vm.wait_serial("DESKVM-EVDEV: done", 60)
            out = vm.serial_text()
            names = dict(re.findall(r"DESKVM-EVDEV: open (event\d+) (.+)", out))
            kbd = [k for k, v in names.items() if v.strip() == "deskvm Virtio Keyboard"]
            tab = [k for k, v in names.items() if v.strip() == "deskvm Virtio Tablet"]
            events = [(dev, int(a), int(b), int(c)) for dev, a, b, c in
                      re.findall(r"DESKVM-EVDEV: event (event\d+) (\d+) (\d+) (-?\d+)", out)]
            kev = [(e[2], e[3]) for e in events if kbd and e[0] == kbd[0] and e[1] == EV_KEY]
            tev = [e[1:] for e in events if tab and e[0] == tab[0] and e[1] != EV_SYN]
            t.eq(kev, WANT_KBD, "PC set-1 scancodes (plain, shifted, 0xE0-extended) arrive as the right evdev keys")
            t.eq(tev, WANT_TABLET, "client-mode positions map exactly onto the tablet's range; the buttons follow")
            t.ok(done, "guest-evdev got every event", out[-2000:])
        t.ok(vm.proc.poll() is None, "the VM still runs", vm.stderr()[-2000:])
        q.cmd("quit")
        q.close()
    finally:
        vm.stop(keep_dir=t.failed > failed_before)


t.run(main, "SPICE end to end")
t.done()
