#!/usr/bin/env python3
"""Input end to end on the software CPU: the Debian guest loads virtio_input and evdev for `--device
virtio-keyboard --device virtio-tablet`, and guest-evdev prints what /dev/input/event* deliver. QMP send-key "a"
must arrive as KEY_A down and up, input-send-event abs as ABS_X / ABS_Y with exactly the values sent, and a
button and a wheel step as BTN_LEFT and REL_WHEEL, each report closed by SYN_REPORT."""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import QmpClient, build_guest_image, guest_command, read_text, tmpdir, wait_for  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 240
EV_SYN, EV_KEY, EV_REL, EV_ABS = 0, 1, 2, 3
KEY_A, BTN_LEFT, REL_WHEEL = 30, 0x110, 8

img = build_guest_image(timeout=900)
if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
    t.done()
image = img.dir
d = tmpdir()
serial = os.path.join(d, "serial.txt")
log = os.path.join(d, "log.txt")
qmp_path = os.path.join(d, "qmp.sock")


# Events wanted: KEY_A down+up (2), ABS_X + ABS_Y (2), BTN_LEFT down (1), REL_WHEEL (1).
run = "guest-evdev 150 6"
args = guest_command(image, f'console=ttyS0 quiet deskvm_modules=virtio_pci,virtio_input,evdev deskvm_run="{run}"',
                     "file:" + serial, log, memory="256M",
                     extra=["--qmp", "unix:" + qmp_path, "--device", "virtio-keyboard", "--device", "virtio-tablet"])
start = time.monotonic()
p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
rc = None
try:
    ready = wait_for(lambda: "DESKVM-EVDEV: ready" in read_text(serial) or p.poll() is not None,
                     timeout=BOOT_TIMEOUT, interval=0.2)
    out = read_text(serial)
    t.ok("DESKVM-EVDEV: ready 2" in out, "the guest opened both deskvm input devices",
         out[-3000:] + "\n--- log ---\n" + read_text(log)[-1500:])
    t.diag(f"boot to evdev ready on emu: {time.monotonic() - start:.1f} s")
    if "DESKVM-EVDEV: ready" in out:
        q = QmpClient(qmp_path)
        q.negotiate()
        t.eq(q.cmd("send-key", {"keys": [{"type": "qcode", "data": "a"}]}), {"return": {}}, "send-key a")
        r = q.cmd("input-send-event", {"events": [{"type": "abs", "data": {"axis": "x", "value": 1234}},
                                                  {"type": "abs", "data": {"axis": "y", "value": 30000}}]})
        t.eq(r, {"return": {}}, "input-send-event abs x=1234 y=30000")
        r = q.cmd("input-send-event", {"events": [{"type": "btn", "data": {"down": True, "button": "left"}},
                                                  {"type": "btn", "data": {"down": True, "button": "wheel-up"}},
                                                  {"type": "btn", "data": {"down": False, "button": "wheel-up"}}]})
        t.eq(r, {"return": {}}, "input-send-event left button + wheel up")
        mice = q.cmd("query-mice")["return"]
        t.ok(any(m["name"] == "deskvm Virtio Tablet" and m["current"] and m["absolute"] for m in mice),
             "query-mice: the virtio tablet is current and absolute", mice)
        q.close()
    rc = p.wait(timeout=BOOT_TIMEOUT)
except subprocess.TimeoutExpired:
    p.kill()
    p.wait()
    rc = "timeout"
finally:
    if p.poll() is None:
        p.kill()
        p.wait()
    p.stderr.close()

out, logtext = read_text(serial), read_text(log)
ctx = out[-3000:] + "\n--- deskvm log ---\n" + logtext[-1500:]
t.eq(rc, 0, "the guest reads its events and powers off; deskvm exits 0")
t.ok("DESKVM-GUEST: module-failed" not in out, "virtio_pci, virtio_input and evdev load", ctx)
names = dict(re.findall(r"DESKVM-EVDEV: open (event\d+) (.+)", out))
kbd = [k for k, v in names.items() if v.strip() == "deskvm Virtio Keyboard"]
tab = [k for k, v in names.items() if v.strip() == "deskvm Virtio Tablet"]
t.ok(len(kbd) == 1 and len(tab) == 1, "the guest sees 'deskvm Virtio Keyboard' and 'deskvm Virtio Tablet'", names)
events = [(dev, int(a), int(b), int(c)) for dev, a, b, c in
          re.findall(r"DESKVM-EVDEV: event (event\d+) (\d+) (\d+) (-?\d+)", out)]
if kbd and tab:
    kev = [e[1:] for e in events if e[0] == kbd[0]]
    tev = [e[1:] for e in events if e[0] == tab[0]]
    t.eq(kev, [(EV_KEY, KEY_A, 1), (EV_SYN, 0, 0), (EV_KEY, KEY_A, 0), (EV_SYN, 0, 0)],
         "keyboard: KEY_A down, SYN, KEY_A up, SYN")
    t.eq(tev, [(EV_ABS, 0, 1234), (EV_ABS, 1, 30000), (EV_SYN, 0, 0),
               (EV_KEY, BTN_LEFT, 1), (EV_REL, REL_WHEEL, 1), (EV_SYN, 0, 0)],
         "tablet: ABS_X 1234, ABS_Y 30000, SYN, BTN_LEFT down, REL_WHEEL +1, SYN")
t.ok("DESKVM-EVDEV: done" in out, "guest-evdev got all six events", ctx)
if not t.failed:
    shutil.rmtree(d, ignore_errors=True)
t.done()
