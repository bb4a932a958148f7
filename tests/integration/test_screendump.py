#!/usr/bin/env python3
"""bochs-display and QMP screendump on the test accelerator: the test plays the guest driver (PCI lookup,
EDID, DISPI mode set as Linux's bochs driver does it), writes a known pattern into the framebuffer BAR, and compares
the PNG (decoded here with zlib) and PPM that screendump writes pixel for pixel. Also the QMP errors, the
display-off image, atomic writes, and the --display/--resolution option checks."""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import QmpClient, run_deskvm  # noqa: E402
from png import decode_png  # noqa: E402
from qtest import QtestMachine  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()

# gpu/bochs_display.h
VENDOR, DEVICE = 0x1234, 0x1111
DISPI = 0x500
ID, XRES, YRES, BPP, ENABLE, BANK, VIRT_WIDTH, VIRT_HEIGHT, X_OFFSET, Y_OFFSET, VIDEO_MEMORY_64K = range(11)
ENABLED, LFB_ENABLED = 0x01, 0x40
QEXT_ENDIANNESS = 0x604
CHUNK = 256 * 1024  # bytes per qtest `write` (the protocol allows 512 KiB)


def decode_ppm(data):
    magic, w, h, maxval, rest = data.split(maxsplit=4)
    if magic != b"P6" or maxval != b"255":
        raise ValueError("not a P6 PPM")
    w, h = int(w), int(h)
    return w, h, [rest[y * 3 * w:(y + 1) * 3 * w] for y in range(h)]


class Bochs:
    """The device as a driver sees it through qtest."""

    def __init__(self, qt):
        self.qt = qt
        self.dev, self.fn = qt.pci_find(VENDOR, DEVICE)
        self.fb = qt.pci_bar(self.dev, self.fn, 0)[0]
        self.mmio = qt.pci_bar(self.dev, self.fn, 2)[0]

    def dispi(self, index, value=None):
        if value is None:
            return self.qt.readw(self.mmio + DISPI + 2 * index)
        self.qt.writew(self.mmio + DISPI + 2 * index, value)

    def setmode(self, w, h, bpp=32):
        """drivers/gpu/drm/tiny/bochs.c's sequence."""
        self.dispi(ENABLE, 0)
        self.dispi(BPP, bpp)
        self.dispi(XRES, w)
        self.dispi(YRES, h)
        self.dispi(BANK, 0)
        self.dispi(VIRT_WIDTH, w)
        self.dispi(VIRT_HEIGHT, self.dispi(VIDEO_MEMORY_64K) * 65536 // (w * bpp // 8))
        self.dispi(X_OFFSET, 0)
        self.dispi(Y_OFFSET, 0)
        self.dispi(ENABLE, ENABLED | LFB_ENABLED)

    def write_fb(self, offset, data):
        for i in range(0, len(data), CHUNK):
            part = data[i:i + CHUNK]
            self.qt.cmd(f"write {self.fb + offset + i:#x} {len(part)} 0x{part.hex()}")


def pattern32(w, h):
    """x8r8g8b8 pixels (B, G, R, X bytes) and the RGB rows they must dump as."""
    fb, rows = bytearray(), []
    for y in range(h):
        row = bytearray()
        for x in range(w):
            r, g, b = x & 0xFF, y & 0xFF, (x * 7 + y * 3) & 0xFF
            fb += bytes((b, g, r, 0xA5))  # the X byte must not matter
            row += bytes((r, g, b))
        rows.append(bytes(row))
    return bytes(fb), rows


def pattern16(w, h):
    """r5g6b5 pixels and their RGB rows (pixman widens by repeating the top bits)."""
    fb, rows = bytearray(), []
    for y in range(h):
        row = bytearray()
        for x in range(w):
            r5, g6, b5 = x & 31, (x + y) & 63, y & 31
            fb += struct.pack("<H", r5 << 11 | g6 << 5 | b5)
            row += bytes(((r5 << 3) | (r5 >> 2), (g6 << 2) | (g6 >> 4), (b5 << 3) | (b5 >> 2)))
        rows.append(bytes(row))
    return bytes(fb), rows


def qmp_for(vm):
    q = QmpClient(vm.qmp_path)
    q.negotiate()
    return q


def error_of(reply):
    e = reply.get("error", {})
    return e.get("class"), e.get("desc")


def test_pattern_png_and_ppm():
    with QtestMachine(["--display", "bochs", "--resolution", "800x600"]) as vm:
        b = Bochs(vm.qt)
        t.eq((b.dev, b.fn), (2, 0), "bochs-display is at 00:02.0")
        t.eq(vm.qt.pci_read(b.dev, b.fn, 0x08) >> 8, 0x038000, "class: display controller, other")
        t.eq(b.dispi(ID), 0xB0C5, "DISPI ID 0xB0C5")
        t.eq(b.dispi(VIDEO_MEMORY_64K), 256, "16 MiB of video memory")
        edid = bytes(vm.qt.readb(b.mmio + i) for i in range(128))
        t.eq(edid[:8], b"\x00\xff\xff\xff\xff\xff\xff\x00", "EDID header")
        t.eq(sum(edid) % 256, 0, "EDID checksum")
        t.eq((edid[56] | (edid[58] >> 4) << 8, edid[59] | (edid[61] >> 4) << 8), (800, 600),
             "EDID preferred mode = --resolution")
        t.eq(vm.qt.readl(b.mmio + QEXT_ENDIANNESS), 0x1E1E1E1E, "framebuffer little-endian")

        w, h = 800, 600
        b.setmode(w, h)
        fb, rows = pattern32(w, h)
        b.write_fb(0, fb)
        q = qmp_for(vm)
        png = os.path.join(vm.dir, "shot.png")
        t.eq(q.cmd("screendump", {"filename": png}), {"return": {}}, "screendump (png by default)")
        with open(png, "rb") as f:
            pw, ph, prow = decode_png(f.read())
        t.eq((pw, ph), (w, h), "PNG size is the guest's mode")
        bad = [y for y in range(h) if prow[y] != rows[y]]
        t.ok(not bad, "PNG pixels equal the pattern written into the framebuffer", f"first bad row {bad[:1]}")
        ppm = os.path.join(vm.dir, "shot.ppm")
        t.eq(q.cmd("screendump", {"filename": ppm, "format": "ppm", "device": "video0", "head": 0}),
             {"return": {}}, "screendump format ppm, device video0 head 0")
        with open(ppm, "rb") as f:
            qw, qh, qrow = decode_ppm(f.read())
        t.ok((qw, qh) == (w, h) and qrow == rows, "PPM pixels equal the pattern")
        files = ["log.txt", "qmp.sock", "qtest.sock", "shot.png", "shot.ppm"]
        t.eq(sorted(os.listdir(vm.dir)), sorted(files), "no temporary files left behind")

        # A pan to a second frame (what a page flip does) shows the other buffer.
        fb2 = bytes(len(fb))
        b.write_fb(w * h * 4, fb2)
        b.dispi(Y_OFFSET, h)
        t.eq(q.cmd("screendump", {"filename": png, "device": "bochs-display"}), {"return": {}},
             "screendump by model name after a pan")
        with open(png, "rb") as f:
            _, _, prow = decode_png(f.read())
        t.ok(all(r == bytes(3 * w) for r in prow), "the panned-to buffer (black) is dumped")

        # 16 bpp
        b.setmode(640, 480, 16)
        fb, rows = pattern16(640, 480)
        b.write_fb(0, fb)
        t.eq(q.cmd("screendump", {"filename": png}), {"return": {}}, "screendump at 16 bpp")
        with open(png, "rb") as f:
            pw, ph, prow = decode_png(f.read())
        t.ok((pw, ph) == (640, 480) and prow == rows, "16-bpp pixels widened to 24-bit RGB exactly")

        # Display off: a black 640x480 image, as an unlit screen.
        b.dispi(ENABLE, 0)
        t.eq(q.cmd("screendump", {"filename": png}), {"return": {}}, "screendump with the display off")
        with open(png, "rb") as f:
            pw, ph, prow = decode_png(f.read())
        t.ok((pw, ph) == (640, 480) and all(r == bytes(640 * 3) for r in prow),
             "display off dumps black 640x480")

        # QMP errors, worded as QEMU's
        t.eq(error_of(q.cmd("screendump", {"filename": png, "device": "nope"})),
             ("DeviceNotFound", "Device 'nope' not found"), "unknown device")
        t.eq(error_of(q.cmd("screendump", {"filename": png, "device": "video0", "head": 1})),
             ("GenericError", "Device video0 (head 1) is not bound to a QemuConsole"), "unknown head")
        t.eq(error_of(q.cmd("screendump", {"filename": png, "head": 0})),
             ("GenericError", "'head' must be specified together with 'device'"), "head without device")
        t.eq(error_of(q.cmd("screendump", {"filename": png, "format": "bmp"})),
             ("GenericError", "Parameter 'format' does not accept value 'bmp'"), "unknown format")
        c, d = error_of(q.cmd("screendump", {"filename": "/nonexistent-dir/x.png"}))
        t.ok(c == "GenericError" and d.startswith("failed to open file '/nonexistent-dir/x.png'"),
             "unwritable path", d)
        c, d = error_of(q.cmd("screendump", {}))
        t.ok(c == "GenericError" and "filename" in d, "filename is required", d)
        q.close()


def test_no_display():
    with QtestMachine() as vm:
        q = qmp_for(vm)
        t.eq(error_of(q.cmd("screendump", {"filename": os.path.join(vm.dir, "x.png")})),
             ("GenericError", "There is no console to take a screendump from."), "no display: QEMU's error")
        t.eq(vm.qt.pci_find(VENDOR, DEVICE), None, "--display defaults to none")
        q.close()


def test_options():
    for args, needle in ((["--display", "vga"], "--display: 'vga' is not bochs, virtio-gpu, qxl or none"),
                         (["--resolution", "1024"], "--resolution: '1024' is not WIDTHxHEIGHT"),
                         (["--resolution", "1024x"], "is not WIDTHxHEIGHT"),
                         (["--resolution", "1024x768x2"], "is not WIDTHxHEIGHT"),
                         (["--resolution", "-1x768"], "is not WIDTHxHEIGHT"),
                         (["--resolution", " 1024x768"], "is not WIDTHxHEIGHT"),
                         (["--resolution", "99999999x1"], "is not WIDTHxHEIGHT"),
                         (["--resolution", "100x100"], "100x100 is outside 320x200 .. 4095x4095"),
                         (["--resolution", "4096x2160"], "is outside")):
        r = run_deskvm(args)
        t.ok(r.returncode == 2 and needle in r.stderr, f"{' '.join(args)!r} -> exit 2",
             f"rc={r.returncode} stderr={r.stderr!r}")
    r = run_deskvm(["--help"])
    t.ok("--display bochs|virtio-gpu|qxl|none" in r.stdout and "--resolution WxH" in r.stdout, "--help lists the options")


t.run(test_pattern_png_and_ppm, "pattern")
t.run(test_no_display, "no display")
t.run(test_options, "options")
t.done()
