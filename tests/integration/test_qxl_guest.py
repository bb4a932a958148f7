#!/usr/bin/env python3
"""qxl end to end on the software CPU: deskvm runs `--display qxl --spice ...`, the test guest loads Linux's qxl
DRM driver (ROM and RAM header checks, reset, INTx, memory slots through MEMSLOT_ADD_ASYNC, the primary surface
through CREATE_PRIMARY_ASYNC), guest-fbpattern draws a known pattern through /dev/fb0 (DRM's fbdev emulation turns
it into QXL_DRAW_COPY commands on the command ring, which spice-server's worker renders into the guest's primary),
and QMP screendump (fed by the device's update_area of the primary) must equal that pattern pixel for pixel at
the --resolution mode. First, without a guest: --display qxl is refused without --spice, and on the test
accelerator the PCI function at 00:02.0 has QXL's identity."""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import (DESKVM, QmpClient, build_guest_image, guest_command, read_text, run, tmpdir,
                            wait_exit, wait_for)  # noqa: E402
from fbpattern import wait_screendump_pattern  # noqa: E402
from qtest import QtestMachine  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 240
W, H = 800, 600


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_options():
    rc, out, err = run([DESKVM, "--display", "qxl"], timeout=30)
    t.ok(rc != 0 and "qxl needs --spice" in err, "--display qxl without --spice is refused", (rc, err[-500:]))


def test_qtest():
    with QtestMachine(extra=["--display", "qxl"]) as vm:
        t.eq(vm.qt.pci_find(0x1B36, 0x0100), (2, 0), "qxl is PCI 1b36:0100 at 00:02.0")
        t.eq(vm.qt.pci_read(2, 0, 0x08) & 0xFF, 5, "revision 5")
        t.eq(vm.qt.pci_read(2, 0, 0x08) >> 8, 0x030000, "class: VGA-compatible display controller")
        t.eq(vm.qt.pci_read(2, 0, 0x3C) >> 8 & 0xFF, 1, "interrupt pin INTA")


def main():
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    manifest = open(os.path.join(img.dir, "manifest")).read()
    if not t.ok("guest-fbpattern" in manifest, "the image carries guest-fbpattern"):
        return
    if "qxl" not in manifest:
        t.skip("qxl end to end", "the guest image has no qxl module")
        return
    d = tmpdir()
    serial, log, qmp = (os.path.join(d, n) for n in ("serial.txt", "log.txt", "qmp.sock"))
    cmdline = ('console=ttyS0 vt.global_cursor_default=0 deskvm_modules=qxl '
               'deskvm_run="guest-fbpattern && sleep 600"')
    spice = f"port={free_port()},addr=127.0.0.1,disable-ticketing=on"
    args = guest_command(img.dir, cmdline, "file:" + serial, log,
                         extra=["--display", "qxl", "--resolution", f"{W}x{H}", "--spice", spice,
                                "--qmp", "unix:" + qmp])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        drawn = wait_for(lambda: "DESKVM-FB: " in read_text(serial) or p.poll() is not None, timeout=BOOT_TIMEOUT,
                         interval=0.5)
        out = read_text(serial)
        t.ok("[drm] Device Version 0.0" in out and "RAM header offset: 0x3ffe000" in out,
             "Linux's qxl driver accepts the ROM and the RAM header", out[-3000:])
        t.ok("[drm] slot 0 (main): base 0x" in out and "[drm] slot 1 (surfaces): base 0x" in out,
             "it registers its two memory slots (async I/O completed by interrupt)", out[-3000:])
        t.ok("fb0: qxldrmfb frame buffer device" in out, "its fbdev emulation sets up fb0", out[-3000:])
        t.ok("timeout" not in out.lower() and "failed" not in out.lower(), "no timeouts or failures in the boot log",
             out[-3000:])
        if not t.ok(drawn and f"DESKVM-FB: drawn {W}x{H} stride={W * 4}" in out,
                    "the guest draws at the --resolution mode (from the ROM's client monitors config)",
                    out[-3000:] + read_text(log)[-2000:]):
            return
        q = QmpClient(qmp)
        q.negotiate()
        # fbdev emulation flushes a moment later; spice renders; the device collects at 30 Hz.
        size, bad = wait_screendump_pattern(q, os.path.join(d, "shot.png"), W, H, {"device": "video0"})
        t.eq(size, (W, H), "screendump has the guest's mode size")
        t.ok(not bad, "screendump pixels equal the pattern the guest drew", bad)
        errors = [line for line in read_text(log).splitlines() if "qxl:" in line]
        t.eq(errors, [], "the device logged no guest bugs")
        q.cmd("quit")
        q.close()
    finally:
        wait_exit(p, 20)


t.run(test_options, "qxl options")
t.run(test_qtest, "qxl on qtest")
t.run(main, "qxl end to end")
t.done()
