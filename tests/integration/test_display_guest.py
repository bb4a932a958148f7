#!/usr/bin/env python3
"""bochs-display end to end on the software CPU: the test guest loads Linux's bochs DRM driver (which finds
the device, its EDID and sets the preferred mode), guest-fbpattern draws a known pattern through /dev/fb0, and QMP
screendump's PNG must equal that pattern pixel for pixel at the --resolution mode."""
import os
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import DESKVM, QmpClient, build_guest_image, tmpdir, wait_for  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 240
W, H = 800, 600


def decode_png(data):
    """(width, height, rows of RGB bytes) of an 8-bit RGB PNG written by deskvm (filter type 0 or any)."""
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h = ihdr[0], ihdr[1]
    raw, stride, rows, prev = zlib.decompress(idat), 3 * w, [], bytearray(3 * w)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], (prev[i - 3] if i >= 3 else 0)
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return w, h, rows


def expected_rows(w, h):
    return [bytes(v for x in range(w) for v in (x & 0xFF, y & 0xFF, (7 * x + 3 * y) & 0xFF))
            for y in range(h)]


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


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
    p = subprocess.Popen([DESKVM, "--accel", "emu", "--memory", "512M", "--display", "bochs", "--resolution",
                          f"{W}x{H}", "--kernel", os.path.join(img.dir, "vmlinuz"), "--initrd",
                          os.path.join(img.dir, "initrd.img"), "--append", cmdline,
                          "--serial", "file:" + serial, "--qmp", "unix:" + qmp, "--log-file", log],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        drawn = wait_for(lambda: "DESKVM-FB: " in read(serial) or p.poll() is not None, timeout=BOOT_TIMEOUT,
                         interval=0.5)
        out = read(serial)
        t.ok("[drm] Found bochs VGA, ID 0xb0c5." in out and "[drm] Found EDID data blob." in out,
             "Linux's bochs driver finds the device and its EDID", out[-3000:])
        if not t.ok(drawn and f"DESKVM-FB: drawn {W}x{H} stride={W * 4}" in out,
                    "the guest draws at the --resolution mode", out[-3000:] + read(log)[-2000:]):
            return
        q = QmpClient(qmp)
        q.negotiate()
        want = expected_rows(W, H)
        shot = os.path.join(d, "shot.png")
        # fbdev emulation flushes the guest's writes to VRAM a moment later (deferred I/O): poll a few times.
        bad, size, deadline = None, None, time.monotonic() + 30
        while time.monotonic() < deadline:
            r = q.cmd("screendump", {"filename": shot})
            if r != {"return": {}}:
                bad = r
                break
            w, h, rows = decode_png(open(shot, "rb").read())
            size = (w, h)
            bad = [y for y in range(min(h, H)) if rows[y] != want[y]] if size == (W, H) else "size"
            if not bad:
                break
            time.sleep(1)
        t.eq(size, (W, H), "screendump has the guest's mode size")
        detail = f"bad rows: {bad[:10] if isinstance(bad, list) else bad} of {len(bad) if bad else 0}"
        if isinstance(bad, list) and bad:
            y = bad[0]
            detail += f"\nrow {y} got {rows[y][:24].hex()} want {want[y][:24].hex()}"
        t.ok(not bad, "screendump pixels equal the pattern the guest drew", detail)
        q.cmd("quit")
        q.close()
    finally:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


t.run(main, "bochs end to end")
t.done()
