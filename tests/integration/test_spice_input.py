#!/usr/bin/env python3
"""SPICE input end to end on the software CPU: deskvm --spice with --device virtio-keyboard --device virtio-tablet,
the Debian test guest reading /dev/input with guest-evdev, and a real SpiceClientGLib client
(tests/lib/spice_client.py) sending set-1 scancodes and pointer events over the inputs channel:

- keys: A, Right Ctrl and Up (0xE0-prefixed), Shift+1 arrive as KEY_A, KEY_RIGHTCTRL, KEY_UP, KEY_LEFTSHIFT + KEY_1,
  down and up, each followed by SYN_REPORT;
- the tablet is registered (the machine has an absolute pointer) and the bochs display gives spice-server its one
  primary surface, so the client gets client mouse mode; a position
  arrives as exactly ABS_X = x * 32767 / width, ABS_Y = y * 32767 / height of the primary surface (QEMU's scaling,
  input_abs_from_pixels); a left button press/release and a wheel-up step arrive as BTN_LEFT 1/0 and REL_WHEEL +1;
- a button still pressed when the client disconnects is released;
- the guest switching its Caps Lock LED on (guest-kbdleds) reaches the client as the inputs channel's key-modifiers.

Server mouse mode (relative motion) goes to the PS/2 mouse, which this guest image does not read; it is not checked
here. Needs /usr/bin/python3 with gi and SpiceClientGLib 2.0; skips without them."""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import build_guest_image, free_port, guest_command, read_text, tmpdir, wait_for  # noqa: E402
from spice_import import import_spice_client  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
sc = import_spice_client(t, "SPICE input tests")
SpiceClient, pump = sc.SpiceClient, sc.pump

BOOT_TIMEOUT = 300
EV_SYN, EV_KEY, EV_REL, EV_ABS = 0, 1, 2, 3
KEY_1, KEY_A, KEY_LEFTSHIFT, KEY_RIGHTCTRL, KEY_UP = 2, 30, 42, 97, 103
LOCK_KEYS = (58, 69, 70)  # Caps, Num, Scroll Lock: spice-server may press them to sync the client's modifiers
BTN_LEFT, REL_WHEEL, ABS_X, ABS_Y = 0x110, 8, 0, 1
SC_1 = 0x02
SPICE_CAPS_LOCK = 4  # SPICE_KEYBOARD_MODIFIER_FLAGS_CAPS_LOCK
X, Y = 200, 100

img = build_guest_image(timeout=900)
if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
    t.done()
image = img.dir
d = tmpdir()
serial = os.path.join(d, "serial.txt")
log = os.path.join(d, "log.txt")
qmp_path = os.path.join(d, "qmp.sock")
port = free_port()

# Non-SYN events wanted: 10 key events, ABS_X + ABS_Y, BTN_LEFT down + up, REL_WHEEL, then BTN_LEFT down and its
# release when the client goes away (a button: keys would autorepeat in the guest while held).
WANT = 17
run = f"guest-evdev 200 {WANT}; guest-kbdleds caps 15"
args = guest_command(image, f'console=ttyS0 quiet deskvm_modules=virtio_pci,virtio_input,evdev deskvm_run="{run}"',
                     "file:" + serial, log, memory="256M",
                     extra=["--qmp", "unix:" + qmp_path, "--device", "virtio-keyboard", "--device", "virtio-tablet",
                            "--display", "bochs", "--spice", f"port={port},addr=127.0.0.1,disable-ticketing=on"])
start = time.monotonic()
p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
c = None
rc = None
width = height = None
try:
    wait_for(lambda: " ready (state" in read_text(log) or p.poll() is not None, timeout=30)
    t.ok(p.poll() is None, "deskvm starts with --spice", read_text(log)[-1500:])
    c = SpiceClient("127.0.0.1", port)
    c.connect(30)
    t.ok(c.wait_channels(("main", "inputs"), 30), "the client opens the main and inputs channels", c.events)

    ready = wait_for(lambda: (pump(None, 0.05) and False) or "DESKVM-EVDEV: ready" in read_text(serial)
                     or p.poll() is not None, timeout=BOOT_TIMEOUT, interval=0.2)
    out = read_text(serial)
    t.ok("DESKVM-EVDEV: ready 2" in out, "the guest opened the virtio keyboard and tablet",
         out[-3000:] + "\n--- log ---\n" + read_text(log)[-1500:])
    t.diag(f"boot to evdev ready on emu: {time.monotonic() - start:.1f} s")
    pump(None, 0.5)
    t.eq(c.inputs.get_property("key-modifiers") & SPICE_CAPS_LOCK, 0, "Caps Lock is off for the client at first")

    # Keys, in set 1 (spice-gtk's form: 0x100 | code for the E0-prefixed ones).
    c.key(sc.SC_A)
    c.key(sc.SC_RIGHTCTRL)
    c.key(sc.SC_UP)
    c.key_press(sc.SC_LEFTSHIFT)
    c.key(SC_1)
    c.key_release(sc.SC_LEFTSHIFT)

    # Client mouse mode: the tablet is there, so spice-server offers it.
    if c.get_mouse_mode() != sc.MOUSE_MODE_CLIENT:
        c.request_mouse_mode(sc.MOUSE_MODE_CLIENT)
    pump(lambda: c.get_mouse_mode() == sc.MOUSE_MODE_CLIENT, 15)
    t.eq(c.get_mouse_mode(), sc.MOUSE_MODE_CLIENT, "the client is in client mouse mode")
    s = c.wait_surface(timeout=30)
    t.ok(s is not None, "the client has a primary surface (the tablet's logical size)")
    if s is not None:
        width, height = s.width, s.height
        t.diag(f"primary surface {width}x{height}")
    c.position(X, Y)
    c.button_press(sc.BUTTON_LEFT, sc.MASK_LEFT)
    c.button_release(sc.BUTTON_LEFT, 0)
    c.button_press(sc.BUTTON_UP, 0)
    c.button_release(sc.BUTTON_UP, 0)
    # A button left pressed by a client that goes away is released (spice_input_client_gone).
    c.button_press(sc.BUTTON_LEFT, sc.MASK_LEFT)
    pump(None, 0.5)
    c.close()
    wait_for(lambda: "DESKVM-EVDEV: done" in read_text(serial) or "DESKVM-EVDEV: timeout" in read_text(serial),
             timeout=120, interval=0.2)
    c = SpiceClient("127.0.0.1", port)
    c.connect(30)
    t.ok(c.wait_channels(("main", "inputs"), 30), "a second client connects", c.events)

    # LEDs: the guest switches Caps Lock on; the client's inputs channel reports the modifier.
    wait_for(lambda: (pump(None, 0.05) and False) or "DESKVM-KBDLEDS: set" in read_text(serial), timeout=60)
    pump(lambda: c.inputs.get_property("key-modifiers") & SPICE_CAPS_LOCK, 15)
    t.eq(c.inputs.get_property("key-modifiers"), SPICE_CAPS_LOCK,
         "the guest's Caps Lock LED reaches the client as SPICE_KEYBOARD_MODIFIER_FLAGS_CAPS_LOCK")
    c.close()
    c = None
    rc = p.wait(timeout=BOOT_TIMEOUT)
except subprocess.TimeoutExpired:
    p.kill()
    p.wait()
    rc = "timeout"
finally:
    if c is not None:
        c.close()
    if p.poll() is None:
        p.kill()
        p.wait()
    p.stderr.close()

out, logtext = read_text(serial), read_text(log)
ctx = out[-3000:] + "\n--- deskvm log ---\n" + logtext[-1500:]
t.ok(rc == 0, f"the guest reads its events and powers off; deskvm exits 0 (got {rc!r})", ctx)
names = dict(re.findall(r"DESKVM-EVDEV: open (event\d+) (.+)", out))
kbd = [k for k, v in names.items() if v.strip() == "deskvm Virtio Keyboard"]
tab = [k for k, v in names.items() if v.strip() == "deskvm Virtio Tablet"]
t.ok(len(kbd) == 1 and len(tab) == 1, "the guest sees 'deskvm Virtio Keyboard' and 'deskvm Virtio Tablet'", names)
events = [(dev, int(a), int(b), int(c_)) for dev, a, b, c_ in
          re.findall(r"DESKVM-EVDEV: event (event\d+) (\d+) (\d+) (-?\d+)", out)]
if kbd and tab:
    kev = [e[1:] for e in events if e[0] == kbd[0]]
    locks = [e for e in kev if e[0] == EV_KEY and e[1] in LOCK_KEYS]
    if locks:
        t.diag(f"lock-key events (modifier sync) ignored: {locks}")
    # Drop lock keys and the SYN that closed each of their reports.
    filtered = []
    for e in kev:
        if e[0] == EV_KEY and e[1] in LOCK_KEYS:
            filtered.append(None)
        elif e[0] == EV_SYN and filtered and filtered[-1] is None:
            filtered[-1] = "skip"
        else:
            filtered.append(e)
    kev = [e for e in filtered if isinstance(e, tuple)]
    want = []
    for code, down in ((KEY_A, 1), (KEY_A, 0), (KEY_RIGHTCTRL, 1), (KEY_RIGHTCTRL, 0), (KEY_UP, 1), (KEY_UP, 0),
                       (KEY_LEFTSHIFT, 1), (KEY_1, 1), (KEY_1, 0), (KEY_LEFTSHIFT, 0)):
        want += [(EV_KEY, code, down), (EV_SYN, 0, 0)]
    t.eq(kev, want, "keyboard: A, Right Ctrl, Up, Shift+1 down and up as evdev codes, each with SYN")
    tev = [e[1:] for e in events if e[0] == tab[0]]
    if width and height:
        ax, ay = X * 32767 // width, Y * 32767 // height
        t.eq(tev, [(EV_ABS, ABS_X, ax), (EV_ABS, ABS_Y, ay), (EV_SYN, 0, 0),
                   (EV_KEY, BTN_LEFT, 1), (EV_SYN, 0, 0), (EV_KEY, BTN_LEFT, 0), (EV_SYN, 0, 0),
                   (EV_REL, REL_WHEEL, 1), (EV_SYN, 0, 0),
                   (EV_KEY, BTN_LEFT, 1), (EV_SYN, 0, 0), (EV_KEY, BTN_LEFT, 0), (EV_SYN, 0, 0)],
             f"tablet: ABS_X {ax}, ABS_Y {ay} ({X},{Y} of {width}x{height}), BTN_LEFT down/up, REL_WHEEL +1, "
             "BTN_LEFT down and released when the client left")
t.ok("DESKVM-EVDEV: done" in out, f"guest-evdev got all {WANT} events", ctx)
if not t.failed:
    shutil.rmtree(d, ignore_errors=True)
t.done()
