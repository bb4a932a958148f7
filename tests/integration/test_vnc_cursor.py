#!/usr/bin/env python3
"""The guest's hardware cursor over VNC, end to end on the software CPU: guest-cursor sets a 64x64 ARGB cursor with
hotspot (5, 7) through DRM's cursor ioctl on Linux's virtio_gpu driver and moves it to (100, 200); a client that
takes the Cursor pseudo-encoding gets that shape, hotspot and mask, and its framebuffer stays the guest's pixels
(equal to QMP screendump, which leaves the cursor out as QEMU's does); a client without cursor encodings gets those
same pixels, with no cursor painted in, as QEMU's VNC server sends them (test automation compares them with
reference pictures)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rfb  # noqa: E402
from deskvm_harness import (QmpClient, build_guest_image, free_vnc_display, guest_command, read_text,  # noqa: E402
                            tmpdir, wait_exit, wait_for)
from fbpattern import fbpattern_rgb  # noqa: E402
from png import decode_png  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 240
W, H = 800, 600
SIZE, BOX_W, BOX_H, HOT_X, HOT_Y = 64, 24, 16, 5, 7  # guest-cursor's image
POS_X, POS_Y = 100, 200


def cursor_rgb(x, y):
    return (4 * x, 4 * y, 0x80)


def client(disp, encodings):
    c = rfb.RfbClient.connect(("127.0.0.1", 5900 + disp), timeout=30)
    c.set_pixel_format_32()
    c.set_encodings(encodings)
    c.refresh(30)
    return c


def check_shape(cur):
    """Differences between the cursor a client got and guest-cursor's image, as a list of strings."""
    w, h, hx, hy, rgb, mask = cur
    bad = []
    if (w, h, hx, hy) != (SIZE, SIZE, HOT_X, HOT_Y):
        return [f"size/hotspot {w}x{h} hot {hx},{hy}"]
    stride = (w + 7) // 8
    for y in range(h):
        for x in range(w):
            inside = x < BOX_W and y < BOX_H
            opaque = bool(mask[y * stride + x // 8] & (0x80 >> (x % 8)))
            if opaque != inside:
                bad.append(f"mask at {x},{y} is {opaque}")
            elif inside and tuple(rgb[3 * (y * w + x):3 * (y * w + x) + 3]) != cursor_rgb(x, y):
                bad.append(f"pixel {x},{y} is {tuple(rgb[3 * (y * w + x):3 * (y * w + x) + 3])}")
    return bad


def main():
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    if not t.ok("guest-cursor" in open(os.path.join(img.dir, "manifest")).read(), "the image carries guest-cursor"):
        return
    d = tmpdir()
    serial, log, qmp = (os.path.join(d, n) for n in ("serial.txt", "log.txt", "qmp.sock"))
    disp = free_vnc_display()
    cmdline = ('console=ttyS0 vt.global_cursor_default=0 deskvm_modules=virtio_pci,virtio_gpu '
               f'deskvm_run="guest-fbpattern && guest-cursor {POS_X} {POS_Y}"')
    args = guest_command(img.dir, cmdline, "file:" + serial, log,
                         extra=["--display", "virtio-gpu", "--resolution", f"{W}x{H}", "--qmp", "unix:" + qmp,
                                "--vnc", f"127.0.0.1:{disp}"])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clients = []
    try:
        done = wait_for(lambda: "DESKVM-CURSOR: " in read_text(serial) or p.poll() is not None,
                        timeout=BOOT_TIMEOUT, interval=0.5)
        out = read_text(serial)
        if not t.ok(done and "DESKVM-CURSOR: set crtc=" in out and f"at {POS_X},{POS_Y}" in out,
                    "the guest sets a hardware cursor through Linux's virtio_gpu driver",
                    out[-3000:] + read_text(log)[-2000:]):
            return

        rich = client(disp, [rfb.ZRLE, rfb.RAW, rfb.CURSOR, rfb.DESKTOP_SIZE])
        clients.append(rich)
        t.ok(rich.wait_for(lambda cl: cl.cursor is not None and cl.cursor[0] == SIZE, timeout=30),
             "a client taking the Cursor pseudo-encoding gets the guest's cursor", str(rich.cursor and rich.cursor[:4]))
        bad = check_shape(rich.cursor) if rich.cursor else ["no cursor"]
        t.ok(not bad, "its shape, hotspot and mask are the guest's", "; ".join(bad[:10]))

        q = QmpClient(qmp)
        q.negotiate()
        shot = os.path.join(d, "shot.png")
        t.ok(q.cmd("screendump", {"filename": shot, "format": "png"}) == {"return": {}}, "QMP screendump")
        sw, sh, rows = decode_png(open(shot, "rb").read())
        rich.refresh(30)
        t.ok((sw, sh) == (W, H) and rows == rich.rows(),
             "that client's pixels are the guest's, without the cursor, as screendump's are")

        plain = client(disp, [rfb.ZRLE, rfb.RAW, rfb.DESKTOP_SIZE])
        clients.append(plain)
        plain.refresh(30)
        left, top = POS_X - HOT_X, POS_Y - HOT_Y
        t.ok(plain.rows() == rows and plain.pixel(left + 2, top + 2) == fbpattern_rgb(left + 2, top + 2),
             "a client without cursor encodings gets the guest's pixels with no cursor painted in (as from QEMU: "
             "screenshots stay comparable)", f"pixel under the cursor: {plain.pixel(left + 2, top + 2)}")
        q.cmd("quit")
        q.close()
    finally:
        for c in clients:
            c.close()
        wait_exit(p, 30)


main()
t.done()
