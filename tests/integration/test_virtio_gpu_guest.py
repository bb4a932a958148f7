#!/usr/bin/env python3
"""virtio-gpu end to end on the software CPU: the test guest loads Linux's virtio_gpu DRM driver (which finds the
device, reads its display info and EDID and sets the preferred mode through resources, backing, SET_SCANOUT and
flushes), guest-fbpattern draws a known pattern through /dev/fb0 (DRM's fbdev emulation turns it into
TRANSFER_TO_HOST_2D + RESOURCE_FLUSH), and QMP screendump's PNG must equal that pattern pixel for pixel at the
--resolution mode. First, without a guest, on the test accelerator: the PCI function at 00:02.0 and screendump
of the display before the guest sets a scanout."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import (QmpClient, build_guest_image, guest_command, read_text, tmpdir, wait_exit,
                            wait_for)  # noqa: E402
from fbpattern import wait_screendump_pattern  # noqa: E402
from png import decode_png  # noqa: E402
from qtest import QtestMachine  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 240
W, H = 800, 600


def test_qtest():
    with QtestMachine(extra=["--display", "virtio-gpu", "--resolution", f"{W}x{H}"]) as vm:
        t.eq(vm.qt.pci_find(0x1AF4, 0x1050), (2, 0), "virtio-gpu is PCI 1af4:1050 at 00:02.0")
        t.eq(vm.qt.pci_read(2, 0, 0x08) >> 8, 0x038000, "class: display controller, other (no VGA)")
        q = QmpClient(vm.qmp_path)
        q.negotiate()
        shot = os.path.join(vm.dir, "off.png")
        for device in ("video0", "virtio-gpu"):
            r = q.cmd("screendump", {"filename": shot, "device": device, "head": 0})
            w, h, rows = decode_png(open(shot, "rb").read()) if r == {"return": {}} else (0, 0, [])
            t.ok(r == {"return": {}} and (w, h) == (640, 480) and all(not any(row) for row in rows),
                 f"screendump of {device} before any scanout: 640x480 black", r)
        r = q.cmd("screendump", {"filename": shot, "device": "video0", "head": 1})
        t.eq(r.get("error", {}).get("class"), "GenericError", "there is no head 1")
        q.close()


def main():
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    manifest = open(os.path.join(img.dir, "manifest")).read()
    if not t.ok("guest-fbpattern" in manifest, "the image carries guest-fbpattern"):
        return
    if "virtio_gpu" not in manifest:
        t.skip("virtio-gpu end to end", "the guest image has no virtio_gpu module")
        return
    d = tmpdir()
    serial, log, qmp = (os.path.join(d, n) for n in ("serial.txt", "log.txt", "qmp.sock"))
    cmdline = ('console=ttyS0 vt.global_cursor_default=0 deskvm_modules=virtio_pci,virtio_gpu '
               'deskvm_run="guest-fbpattern && sleep 600"')
    args = guest_command(img.dir, cmdline, "file:" + serial, log,
                         extra=["--display", "virtio-gpu", "--resolution", f"{W}x{H}", "--qmp", "unix:" + qmp])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        drawn = wait_for(lambda: "DESKVM-FB: " in read_text(serial) or p.poll() is not None, timeout=BOOT_TIMEOUT,
                         interval=0.5)
        out = read_text(serial)
        t.ok("[drm] pci: virtio-gpu-pci detected at 0000:00:02.0" in out,
             "Linux's virtio_gpu driver finds the device at 00:02.0", out[-3000:])
        t.ok("[drm] features: -virgl +edid" in out and "[drm] number of scanouts: 1" in out
             and "[drm] number of cap sets: 0" in out,
             "it negotiates EDID and reads one scanout, no capability sets", out[-3000:])
        t.ok("fb0: virtio_gpudrmfb frame buffer device" in out, "its fbdev emulation sets up fb0", out[-3000:])
        if not t.ok(drawn and f"DESKVM-FB: drawn {W}x{H} stride={W * 4}" in out,
                    "the guest draws at the --resolution mode (from GET_DISPLAY_INFO/EDID)",
                    out[-3000:] + read_text(log)[-2000:]):
            return
        q = QmpClient(qmp)
        q.negotiate()
        # fbdev emulation flushes the guest's writes a moment later (its damage worker).
        size, bad = wait_screendump_pattern(q, os.path.join(d, "shot.png"), W, H, {"device": "video0"})
        t.eq(size, (W, H), "screendump has the guest's mode size")
        t.ok(not bad, "screendump pixels equal the pattern the guest drew", bad)
        errors = [line for line in read_text(log).splitlines() if "virtio-gpu:" in line]
        t.eq(errors, [], "the device logged no guest errors")
        q.cmd("quit")
        q.close()
    finally:
        wait_exit(p, 20)


t.run(test_qtest, "virtio-gpu on qtest")
t.run(main, "virtio-gpu end to end")
t.done()
