#!/usr/bin/env python3
"""The default VM as README's first command starts it (tools/run-default-vm, which tools/start-default-vm ends in),
seen by a VNC user and a SPICE user: the guest's framebuffer console shows a shell on virtio-gpu, a command typed
through VNC (X11 keysyms, Shift included) and one typed through SPICE (PC scan codes) run in that shell, and what
each client shows equals QMP screendump."""
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rfb  # noqa: E402
from deskvm_harness import (DESKVM, SRCDIR, QmpClient, build_guest_image, free_port, free_vnc_display,  # noqa: E402
                            tmpdir, wait_for)
from png import decode_png  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 300
W, H = 1024, 768  # deskvm's default --resolution
SHIFT_L, RETURN = 0xFFE1, 0xFF0D
SHIFTED = set('~!@#$%^&*()_+{}|:"<>?') | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class Output:
    """Collects a process's stdout (the guest's serial console) on a thread."""

    def __init__(self, stream):
        self.text = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for chunk in iter(lambda: stream.read1(4096), b""):
            with self.lock:
                self.text += chunk.decode("utf-8", "replace")

    def has(self, needle):
        with self.lock:
            return needle in self.text


def type_text(c, text):
    """Types TEXT as a VNC client does: one keysym per character (printable ASCII keysyms are the characters'
    codes), Shift held around the characters that need it on a US keyboard."""
    for ch in text:
        keysym = RETURN if ch == "\n" else ord(ch)
        if ch in SHIFTED:
            c.key(SHIFT_L, True)
        c.key(keysym, True)
        c.key(keysym, False)
        if ch in SHIFTED:
            c.key(SHIFT_L, False)


# US layout, PC set 1: the characters the SPICE command below needs, as (scan code, with Shift).
SET1 = {**{c: (code, False) for c, code in zip("1234567890-=", range(0x02, 0x0e))},
        **{c: (code, False) for c, code in zip("qwertyuiop", range(0x10, 0x1a))},
        **{c: (code, False) for c, code in zip("asdfghjkl", range(0x1e, 0x27))},
        **{c: (code, False) for c, code in zip("zxcvbnm,./", range(0x2c, 0x36))},
        " ": (0x39, False), "\n": (0x1c, False), "$": (0x05, True), "(": (0x0a, True), ")": (0x0b, True),
        "*": (0x09, True), ">": (0x34, True)}
SET1.update({c.upper(): (code, True) for c, (code, _) in list(SET1.items()) if c.isalpha()})
SET1_LSHIFT = 0x2a


def spice_type_text(c, text):
    """Types TEXT as a SPICE client does: scan codes of a US keyboard, Shift pressed around shifted characters."""
    for ch in text:
        code, shift = SET1[ch]
        if shift:
            c.key_press(SET1_LSHIFT)
        c.key(code)
        if shift:
            c.key_release(SET1_LSHIFT)


def spice_check(t, out, d, port):
    """The SPICE half: remote-viewer's client library sees the console at the guest's mode, a command typed with
    scan codes runs, and the client's pixels equal screendump."""
    import spice_client  # gi: only when the SPICE part runs
    sc = spice_client.SpiceClient.open("127.0.0.1", port, timeout=30)
    try:
        surface = sc.wait_surface(W, H, timeout=60)
        t.ok(surface is not None, f"the SPICE client sees the guest's {W}x{H} mode",
             str(sc.surface and (sc.surface.width, sc.surface.height)))
        if surface is None:
            return
        spice_type_text(sc, "echo spice-typed-$((6*7)) >/dev/ttyS0\n")
        t.ok(wait_for(lambda: out.has("spice-typed-42"), timeout=60, interval=0.2),
             "a command typed through SPICE runs in the console's shell", out.text[-1500:])
        q = QmpClient(os.path.join(d, "qmp.sock"))
        q.negotiate()
        shot, diff = os.path.join(d, "spice-shot.png"), ["not compared"]
        for _ in range(10):  # the console's cursor blinks: try to catch both pictures in one phase
            r = q.cmd("screendump", {"filename": shot, "format": "png"})
            if "return" not in r:
                diff = [str(r)]
                break
            w, h, rows = decode_png(open(shot, "rb").read())
            diff = sc.wait_rows(rows, timeout=3) if (w, h) == (W, H) else [f"{w}x{h}"]
            if not diff:
                break
        t.ok(not diff, "the SPICE client's pixels equal QMP screendump", f"rows differing: {diff[:10]}")
        q.close()
    finally:
        sc.close()


def lit_pixels(rows):
    return sum(1 for row in rows for i in range(0, len(row), 3) if row[i] or row[i + 1] or row[i + 2])


def main():
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    d = tmpdir()
    disp, spice_port = free_vnc_display(), free_port()
    env = dict(os.environ, DESKVM=DESKVM, DESKVM_STATE_DIR=d, DESKVM_VNC_DISPLAY=str(disp),
               DESKVM_SPICE_PORT=str(spice_port))
    p = subprocess.Popen([os.path.join(SRCDIR, "tools", "run-default-vm"), img.dir], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = Output(p.stdout)
    c = None
    try:
        up = wait_for(lambda: out.has("DESKVM-GUEST: tty1-shell") or p.poll() is not None, timeout=BOOT_TIMEOUT,
                      interval=0.5)
        if not t.ok(up and out.has("DESKVM-GUEST: tty1-shell") and not out.has("tty1-shell-failed"),
                    "the default VM boots with a shell on the display's console", out.text[-3000:]):
            return
        t.ok(out.has(f"VNC: remote-viewer vnc://127.0.0.1:{5900 + disp}"), "the script prints the VNC address",
             out.text[:1500])

        c = rfb.RfbClient.connect(("127.0.0.1", 5900 + disp), timeout=30)
        c.set_pixel_format_32()
        c.set_encodings([rfb.ZRLE, rfb.RAW, rfb.DESKTOP_SIZE, rfb.EXT_DESKTOP_SIZE])
        c.refresh(30)
        t.ok(c.wait_for(lambda cl: (cl.width, cl.height) == (W, H), timeout=60),
             f"the VNC client sees the guest's {W}x{H} mode", f"{c.width}x{c.height}")
        t.ok(c.wait_for(lambda cl: lit_pixels(cl.rows()) > 200, timeout=60),
             "the console shows text (the shell prompt)", f"{lit_pixels(c.rows())} lit pixels")
        before = c.rows()

        type_text(c, "echo vnc-typed-$((6*7)) >/dev/ttyS0\n")
        t.ok(wait_for(lambda: out.has("vnc-typed-42"), timeout=60, interval=0.2),
             "a command typed through VNC runs in the console's shell (its output reaches the serial port)",
             out.text[-1500:])
        t.ok(c.wait_for(lambda cl: cl.rows() != before, timeout=30),
             "the typed command line shows on the VNC screen")

        q = QmpClient(os.path.join(d, "qmp.sock"))
        q.negotiate()
        # The console's cursor blinks: the two pictures are compared a few times, to catch both in one phase.
        shot, same, detail = os.path.join(d, "shot.png"), False, ""
        for _ in range(10):
            r = q.cmd("screendump", {"filename": shot, "format": "png"})
            c.refresh(30)
            if "return" not in r:
                detail = str(r)
                break
            w, h, rows = decode_png(open(shot, "rb").read())
            same = (w, h) == (W, H) and rows == c.rows()
            if same:
                break
            detail = f"{w}x{h}, {sum(1 for a, b in zip(rows, c.rows()) if a != b)} rows differ"
        t.ok(same, "the VNC client's pixels equal QMP screendump", detail)
        c.close()
        c = None

        t.ok(out.has(f"SPICE: remote-viewer spice://127.0.0.1:{spice_port}"), "the script prints the SPICE address",
             out.text[:1500])
        spice_check(t, out, d, spice_port)
        q.cmd("quit")
        t.ok(wait_for(lambda: p.poll() is not None, timeout=30), "QMP quit ends the default VM")
        q.close()
    finally:
        if c:
            c.close()
        if p.poll() is None:
            p.kill()
        p.wait()


main()
t.done()
