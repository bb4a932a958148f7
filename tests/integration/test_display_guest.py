#!/usr/bin/env python3
"""bochs-display end to end on the software CPU: the test guest loads Linux's bochs DRM driver (which finds
the device, its EDID and sets the preferred mode), guest-fbpattern draws a known pattern through /dev/fb0, and QMP
screendump's PNG must equal that pattern pixel for pixel at the --resolution mode."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import (QmpClient, build_guest_image, guest_command, read_text, tmpdir, wait_exit,
                            wait_for)  # noqa: E402
from fbpattern import wait_screendump_pattern  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 240
W, H = 800, 600


def main():
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    programs = open(os.path.join(img.dir, "manifest")).read()
    if not t.ok("guest-fbpattern" in programs, "the image carries guest-fbpattern"):
        return
    d = tmpdir()
    serial, log, qmp = (os.path.join(d, n) for n in ("serial.txt", "log.txt", "qmp.sock"))
    cmdline = ('console=ttyS0 vt.global_cursor_default=0 deskvm_modules=bochs '
               'deskvm_run="guest-fbpattern && sleep 600"')
    args = guest_command(img.dir, cmdline, "file:" + serial, log,
                         extra=["--display", "bochs", "--resolution", f"{W}x{H}", "--qmp", "unix:" + qmp])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        drawn = wait_for(lambda: "DESKVM-FB: " in read_text(serial) or p.poll() is not None, timeout=BOOT_TIMEOUT,
                         interval=0.5)
        out = read_text(serial)
        t.ok("[drm] Found bochs VGA, ID 0xb0c5." in out and "[drm] Found EDID data blob." in out,
             "Linux's bochs driver finds the device and its EDID", out[-3000:])
        if not t.ok(drawn and f"DESKVM-FB: drawn {W}x{H} stride={W * 4}" in out,
                    "the guest draws at the --resolution mode", out[-3000:] + read_text(log)[-2000:]):
            return
        q = QmpClient(qmp)
        q.negotiate()
        # fbdev emulation flushes the guest's writes to VRAM a moment later (deferred I/O).
        size, bad = wait_screendump_pattern(q, os.path.join(d, "shot.png"), W, H)
        t.eq(size, (W, H), "screendump has the guest's mode size")
        t.ok(not bad, "screendump pixels equal the pattern the guest drew", bad)
        q.cmd("quit")
        q.close()
    finally:
        wait_exit(p, 20)


t.run(main, "bochs end to end")
t.done()
