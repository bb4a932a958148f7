#!/usr/bin/env python3
"""VNC end to end on the software CPU, one guest boot for every check: the guest's bochs DRM driver sets 800x600,
guest-fbpattern draws a known pattern, and VNC clients must see exactly that pattern (the pure-Python RFB client
with Raw, ZRLE, Hextile, Zlib and lossless Tight; gtk-vnc through python3-gi, lossless and with Tight+JPEG;
vncsnapshot), equal to QMP screendump. Then guest-evdev watches the virtio keyboard and tablet while the RFB
client types keysyms and QEMU extended key events and moves and clicks the absolute pointer: the guest must see
the right evdev codes and the exact absolute values."""
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from deskvm_harness import (QmpClient, build_guest_image, free_vnc_display, guest_command, read_text, tmpdir,
                            wait_exit, wait_for)  # noqa: E402
from fbpattern import fbpattern_rgb, fbpattern_rows  # noqa: E402
from png import decode_png  # noqa: E402
import rfb  # noqa: E402
from rfb import RfbClient  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 300
W, H = 800, 600
EV_SYN, EV_KEY, EV_ABS = 0, 1, 3
KEY_A, KEY_LEFTSHIFT, KEY_UP, KEY_RIGHTCTRL, BTN_LEFT = 30, 42, 103, 97, 0x110
XK_a, XK_A, XK_Shift_L, XK_Up, XK_Control_R = 0x61, 0x41, 0xFFE1, 0xFF52, 0xFFE4
PX, PY = 200, 450
# What the client sends below, as the guest should see it (non-SYN events).
WANT_KBD = [(KEY_A, 1), (KEY_A, 0), (KEY_LEFTSHIFT, 1), (KEY_A, 1), (KEY_A, 0), (KEY_LEFTSHIFT, 0),
            (KEY_UP, 1), (KEY_UP, 0), (KEY_RIGHTCTRL, 1), (KEY_RIGHTCTRL, 0)]
WANT_TABLET = [(EV_ABS, 0, PX * 0x7FFF // W), (EV_ABS, 1, PY * 0x7FFF // H), (EV_KEY, BTN_LEFT, 1),
               (EV_KEY, BTN_LEFT, 0)]
EVENTS = len(WANT_KBD) + len(WANT_TABLET)


def bad_rows(rows, want):
    return [y for y in range(min(len(rows), len(want))) if rows[y] != want[y]]


def read_ppm(path):
    data = open(path, "rb").read()
    m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
    w, h = int(m.group(1)), int(m.group(2))
    px = data[m.end():]
    return w, h, [px[y * 3 * w:(y + 1) * 3 * w] for y in range(h)]


def mean_abs_diff(rows, want):
    total = n = 0
    for a, b in zip(rows, want):
        total += sum(abs(x - y) for x, y in zip(a[::7], b[::7]))
        n += len(a[::7])
    return total / max(n, 1)


def check_pixels(d, port, q, want):
    addr = ("127.0.0.1", port)
    # fbdev's deferred I/O reaches VRAM a moment after the guest wrote: poll until the pattern is complete.
    c = RfbClient.connect(addr)
    c.set_pixel_format_32()
    c.set_encodings([rfb.RAW, rfb.DESKTOP_SIZE, rfb.EXT_DESKTOP_SIZE])
    ok = c.refresh() is not None and (c.width, c.height) == (W, H)
    if ok:
        ok = c.wait_for(lambda cl: not bad_rows(cl.rows(), want), timeout=60)
    t.eq((c.width, c.height), (W, H), "the client's framebuffer has the guest's mode size")
    bad = bad_rows(c.rows(), want)
    t.ok(ok and not bad, "Raw: the client sees exactly the pattern the guest drew", f"bad rows {bad[:10]}")
    shot = os.path.join(d, "shot.png")
    t.eq(q.cmd("screendump", {"filename": shot}), {"return": {}}, "screendump")
    sw, sh, srows = decode_png(open(shot, "rb").read())
    t.ok((sw, sh) == (c.width, c.height) and srows == c.rows(), "the VNC framebuffer equals QMP screendump")
    # Incremental updates of an unchanged screen carry nothing (damage only, not the full screen every time).
    c.request_update(True)
    rects = c.read_update(timeout=1.5)
    t.ok(rects is None or sum(r[2] * r[3] for r in rects if r[4] >= 0) < W * H,
         "an idle screen does not send full frames to incremental requests", rects)
    c.close()

    for enc, name in ((rfb.ZRLE, "ZRLE"), (rfb.HEXTILE, "Hextile"), (rfb.ZLIB, "Zlib"), (rfb.TIGHT, "Tight")):
        c = RfbClient.connect(addr)
        c.set_pixel_format_32()
        c.set_encodings([enc, rfb.DESKTOP_SIZE, rfb.LAST_RECT])
        c.refresh()
        bad = bad_rows(c.rows(), want)
        t.ok(c.rects_by_encoding.get(enc) and not bad and c.undecodable_rects == 0,
             f"{name}: the client sees exactly the pattern", f"rects {c.rects_by_encoding} bad rows {bad[:10]}")
        c.close()

    # A client asking for a 16-bit pixel format gets the pattern converted (server-side translation).
    c = RfbClient.connect(addr)
    c.set_pixel_format(rfb.PixelFormat(bpp=16, depth=16, red_max=31, green_max=63, blue_max=31, red_shift=11,
                                       green_shift=5, blue_shift=0))
    c.set_encodings([rfb.RAW])
    c.refresh()
    x, y = 123, 321
    r, g, b = c.pixel(x, y)
    wr, wg, wb = fbpattern_rgb(x, y)
    t.ok(abs(r - wr) <= 8 and abs(g - wg) <= 4 and abs(b - wb) <= 8, "RGB565 clients get converted pixels",
         ((r, g, b), (wr, wg, wb)))
    c.close()

    # Real clients.
    xvfb = shutil.which("xvfb-run")
    helper = os.path.join(HERE, "vnc_gtk_snapshot.py")
    have_gtk = xvfb and subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version('GtkVnc', '2.0')"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if have_gtk:
        for lossy in (False, True):
            out = os.path.join(d, f"gtk{int(lossy)}.ppm")
            args = [xvfb, "-a", "/usr/bin/python3", helper, "127.0.0.1", str(port), out] + (["--lossy"] if lossy
                                                                                          else [])
            p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            text = p.stdout.decode(errors="replace")
            if p.returncode != 0 or not os.path.exists(out):
                t.ok(False, f"gtk-vnc ({'lossy' if lossy else 'lossless'}) takes a picture", text[-2000:])
                continue
            gw, gh, grows = read_ppm(out)
            if not lossy:
                bad = bad_rows(grows, want)
                t.ok((gw, gh) == (W, H) and not bad, "gtk-vnc sees exactly the pattern", f"{gw}x{gh} bad {bad[:10]}")
            else:
                err = mean_abs_diff(grows, want)
                t.ok((gw, gh) == (W, H) and err < 12, f"gtk-vnc with Tight+JPEG sees the pattern (mean error {err:.1f})")
    else:
        t.skip("gtk-vnc", "xvfb-run or gir1.2-gtk-vnc-2.0 missing (tools/install-deps)")
    if shutil.which("vncsnapshot"):
        out = os.path.join(d, "snap.jpg")
        # vncsnapshot prefers Raw on the same machine. (Its Tight path asks for LastRect but skips the LastRect
        # marker as a "zero size rect" and then waits for rectangles that never come: Tight+JPEG is gtk-vnc's.)
        p = subprocess.run(["vncsnapshot", "-quiet", "-allowblank", "-quality", "100", f"127.0.0.1:{port - 5900}",
                            out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        ok = p.returncode == 0 and os.path.exists(out)
        detail = p.stdout.decode(errors="replace")[-1000:]
        if ok and have_gtk:
            # decode the JPEG with GdkPixbuf into a PPM
            conv = ("import sys, gi; gi.require_version('GdkPixbuf', '2.0'); from gi.repository import GdkPixbuf;"
                    "pb = GdkPixbuf.Pixbuf.new_from_file(sys.argv[1]); w, h, rs, nc = pb.get_width(), pb.get_height(),"
                    " pb.get_rowstride(), pb.get_n_channels(); d = pb.get_pixels();"
                    "open(sys.argv[2], 'wb').write(b'P6\\n%d %d\\n255\\n' % (w, h) + b''.join(bytes(d[y*rs + x*nc + c]"
                    " for x in range(w) for c in range(3)) for y in range(h)))")
            subprocess.run(["/usr/bin/python3", "-c", conv, out, out + ".ppm"], timeout=120)
            vw, vh, vrows = read_ppm(out + ".ppm")
            err = mean_abs_diff(vrows, want)
            t.ok((vw, vh) == (W, H) and err < 4, f"vncsnapshot sees the pattern (mean error of its JPEG file {err:.1f})")
        else:
            t.ok(ok, "vncsnapshot takes a snapshot", detail)
    else:
        t.skip("vncsnapshot", "vncsnapshot is not installed (tools/install-deps)")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def check_cycles(port, pid):
    """100 connect / full-screen update / disconnect cycles over the guest's real picture, with ZRLE and Tight
    (their per-client zlib streams and buffers): the resident size must stay flat."""
    def cycle(enc):
        c = RfbClient.connect(("127.0.0.1", port))
        c.decode_region = (0, 0, 1, 1)  # every byte is still read and inflated; only pixel conversion is skipped
        c.set_pixel_format_32()
        c.set_encodings([enc, rfb.DESKTOP_SIZE, rfb.LAST_RECT])
        c.refresh()
        c.close()

    for i in range(20):
        cycle(rfb.ZRLE if i % 2 else rfb.TIGHT)
    time.sleep(0.5)
    before = rss_kib(pid)
    start = time.monotonic()
    for i in range(100):
        cycle(rfb.ZRLE if i % 2 else rfb.TIGHT)
    time.sleep(0.5)
    after = rss_kib(pid)
    t.diag(f"100 cycles at {W}x{H} in {time.monotonic() - start:.1f} s: VmRSS {before} -> {after} KiB")
    t.ok(after - before < 3072, f"VmRSS stays flat over 100 connect/disconnect cycles ({before} -> {after} KiB)")


def check_input(port):
    c = RfbClient.connect(("127.0.0.1", port))
    c.set_pixel_format_32()
    c.set_encodings([rfb.RAW, rfb.DESKTOP_SIZE, rfb.EXT_DESKTOP_SIZE, rfb.QEMU_EXT_KEY, rfb.QEMU_POINTER_TYPE])
    c.refresh()
    t.ok(c.qemu_ext_key and c.absolute_pointer is True, "QEMU extended keys and absolute pointer are announced")
    # A resize request: bochs cannot pass one to the guest.
    c.set_desktop_size(1024, 768)
    c.update(True, timeout=3)
    t.ok(c.desktop_size_result is not None and c.desktop_size_result[1] == 1 and (c.width, c.height) == (W, H),
         "a client resize request is answered ResizeProhibited (bochs has no resize path)", c.desktop_size_result)
    for keysym in (XK_a,):
        c.key(keysym, True)
        c.key(keysym, False)
    c.key(XK_Shift_L, True)
    c.key(XK_A, True)
    c.key(XK_A, False)
    c.key(XK_Shift_L, False)
    c.qemu_key(0xE048, XK_Up, True)  # XT with the 0xE0 prefix written out
    c.qemu_key(0xE048, XK_Up, False)
    c.qemu_key(0x9D, XK_Control_R, True)  # QEMU key number: 0x80 | 0x1D for E0 1D
    c.qemu_key(0x9D, XK_Control_R, False)
    time.sleep(0.5)
    c.pointer(PX, PY, 0)
    c.pointer(PX, PY, 1)
    c.pointer(PX, PY, 0)
    time.sleep(0.5)
    c.close()


def main():
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    programs = open(os.path.join(img.dir, "manifest")).read()
    if not t.ok("guest-fbpattern" in programs and "guest-evdev" in programs, "the image has the guest programs"):
        return
    d = tmpdir()
    serial, log, qmp = (os.path.join(d, n) for n in ("serial.txt", "log.txt", "qmp.sock"))
    disp = free_vnc_display()
    port = 5900 + disp
    cmdline = ('console=ttyS0 vt.global_cursor_default=0 deskvm_modules=bochs,virtio_pci,virtio_input,evdev '
               f'deskvm_run="guest-fbpattern && guest-evdev 400 {EVENTS}; sleep 600"')
    args = guest_command(img.dir, cmdline, "file:" + serial, log, memory="256M",
                         extra=["--display", "bochs", "--resolution", f"{W}x{H}", "--qmp", "unix:" + qmp,
                                "--device", "virtio-keyboard", "--device", "virtio-tablet",
                                "--vnc", f"127.0.0.1:{disp}", "--log-level", "debug"])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = wait_for(lambda: "DESKVM-EVDEV: ready" in read_text(serial) or p.poll() is not None,
                         timeout=BOOT_TIMEOUT, interval=0.5)
        out = read_text(serial)
        if not t.ok(ready and f"DESKVM-FB: drawn {W}x{H}" in out and "DESKVM-EVDEV: ready 2" in out,
                    "the guest draws its pattern and opens the virtio keyboard and tablet",
                    out[-3000:] + read_text(log)[-2000:]):
            return
        q = QmpClient(qmp)
        q.negotiate()
        check_pixels(d, port, q, fbpattern_rows(W, H))
        logtext = read_text(log)
        t.ok(re.search(r"vnc: Using tight encoding for client", logtext) and "JPEG" in logtext,
             "libvncserver used Tight with JPEG for the lossy client")
        check_cycles(port, p.pid)
        check_input(port)
        done = wait_for(lambda: "DESKVM-EVDEV: done" in read_text(serial), timeout=60, interval=0.5)
        out = read_text(serial)
        names = dict(re.findall(r"DESKVM-EVDEV: open (event\d+) (.+)", out))
        kbd = [k for k, v in names.items() if v.strip() == "deskvm Virtio Keyboard"]
        tab = [k for k, v in names.items() if v.strip() == "deskvm Virtio Tablet"]
        events = [(dev, int(a), int(b), int(c)) for dev, a, b, c in
                  re.findall(r"DESKVM-EVDEV: event (event\d+) (\d+) (\d+) (-?\d+)", out)]
        kev = [(e[2], e[3]) for e in events if kbd and e[0] == kbd[0] and e[1] == EV_KEY]
        tev = [e[1:] for e in events if tab and e[0] == tab[0] and e[1] != EV_SYN]
        t.eq(kev, WANT_KBD, "keysyms and QEMU extended key events arrive as the right evdev keys")
        t.eq(tev, WANT_TABLET, "the absolute pointer maps exactly onto the tablet's range; the button follows")
        t.ok(done, "guest-evdev got every event", out[-2000:])
        q.cmd("quit")
        q.close()
    finally:
        wait_exit(p, 30)
    if not t.failed:
        shutil.rmtree(d, ignore_errors=True)


t.run(main, "VNC end to end")
t.done()
