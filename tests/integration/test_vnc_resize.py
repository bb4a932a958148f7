#!/usr/bin/env python3
"""VNC client resize on a virtio-gpu guest (software CPU): the guest's virtio_gpu driver sets 800x600 and
guest-fbpattern draws a pattern; a VNC client's SetDesktopSize(640x480) goes through the display's
request_resize to the device, the guest re-sets its mode, and the client gets ExtendedDesktopSize with success
and a 640x480 framebuffer equal to QMP screendump."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import (QmpClient, build_guest_image, free_vnc_display, guest_command, read_text, tmpdir,
                            wait_exit, wait_for)  # noqa: E402
from png import decode_png  # noqa: E402
import rfb  # noqa: E402
from rfb import RfbClient  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 300
W, H = 800, 600


def matches_screendump(c, q, path):
    if q.cmd("screendump", {"filename": path}) != {"return": {}}:
        return False
    w, h, rows = decode_png(open(path, "rb").read())
    return (w, h) == (c.width, c.height) and rows == c.rows()


def main():
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    d = tmpdir()
    serial, log, qmp = (os.path.join(d, n) for n in ("serial.txt", "log.txt", "qmp.sock"))
    disp = free_vnc_display()
    cmdline = ('console=ttyS0 vt.global_cursor_default=0 deskvm_modules=virtio_pci,virtio_gpu '
               'deskvm_run="guest-fbpattern; sleep 600"')
    args = guest_command(img.dir, cmdline, "file:" + serial, log,
                         extra=["--display", "virtio-gpu", "--resolution", f"{W}x{H}", "--qmp", "unix:" + qmp,
                                "--vnc", f"127.0.0.1:{disp}"])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        drawn = wait_for(lambda: "DESKVM-FB: " in read_text(serial) or p.poll() is not None, timeout=BOOT_TIMEOUT,
                         interval=0.5)
        out = read_text(serial)
        if not t.ok(drawn and f"DESKVM-FB: drawn {W}x{H}" in out, "the guest draws at 800x600",
                    out[-3000:] + read_text(log)[-2000:]):
            return
        q = QmpClient(qmp)
        q.negotiate()
        c = RfbClient.connect(("127.0.0.1", 5900 + disp))
        c.set_pixel_format_32()
        c.set_encodings([rfb.ZRLE, rfb.RAW, rfb.DESKTOP_SIZE, rfb.EXT_DESKTOP_SIZE, rfb.LAST_RECT])
        c.refresh()
        shot = os.path.join(d, "shot.png")
        t.eq((c.width, c.height), (W, H), "the client starts at the guest's 800x600")
        t.ok(c.wait_for(lambda cl: matches_screendump(cl, q, shot), timeout=30), "its pixels equal screendump")
        c.set_desktop_size(640, 480)
        end = time.monotonic() + 60
        while time.monotonic() < end and (c.width, c.height) != (640, 480):
            c.update(True, timeout=1)
        t.eq((c.width, c.height), (640, 480), "the guest takes the client's 640x480 and the client follows")
        res = c.desktop_size_result
        t.ok(res is not None and res[0] == 1 and res[1] == 0 and res[2:4] == (640, 480),
             "the client is told its request succeeded (ExtendedDesktopSize reason client, status 0)", res)
        t.ok(c.wait_for(lambda cl: matches_screendump(cl, q, shot), timeout=30),
             "after the resize its pixels equal screendump")
        c.close()
        q.cmd("quit")
        q.close()
    finally:
        wait_exit(p, 30)


t.run(main, "VNC resize on virtio-gpu")
t.done()
