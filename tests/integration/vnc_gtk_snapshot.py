#!/usr/bin/python3
"""A real VNC client for test_vnc.py: gtk-vnc's GtkVncDisplay (through python3-gi, under xvfb-run) connects to
HOST PORT, waits until the framebuffer stops changing (or TIMEOUT seconds) and writes it to OUT as a binary PPM.
--lossy lets gtk-vnc ask for Tight with JPEG. Prints "GTKVNC: initialized WxH", "GTKVNC: wrote OUT" or
"GTKVNC: error ..."; exit 0 only if an image was written."""
import argparse
import sys

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("GtkVnc", "2.0")
from gi.repository import GLib, Gtk, GtkVnc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port")
    ap.add_argument("out")
    ap.add_argument("--lossy", action="store_true")
    ap.add_argument("--password")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--settle", type=float, default=1.5)
    a = ap.parse_args()

    state = {"ok": False, "last": None, "stable_since": None, "initialized": False}
    win = Gtk.OffscreenWindow()
    disp = GtkVnc.Display()
    disp.set_lossy_encoding(a.lossy)
    disp.set_pointer_local(False)
    disp.set_read_only(True)  # no pointer/keyboard events from the X server into the guest
    win.add(disp)
    win.show_all()
    loop = GLib.MainLoop()

    def finish(ok, msg):
        print(msg, flush=True)
        state["ok"] = ok
        loop.quit()

    def on_initialized(d):
        state["initialized"] = True
        print(f"GTKVNC: initialized {d.get_width()}x{d.get_height()}", flush=True)

    def on_auth(d, creds):
        for c in creds:
            if c == GtkVnc.DisplayCredential.PASSWORD:
                d.set_credential(c, a.password or "")
            elif c == GtkVnc.DisplayCredential.CLIENTNAME:
                d.set_credential(c, "test")

    def on_disconnected(d):
        if not state["ok"]:
            finish(False, "GTKVNC: error disconnected")

    def poll():
        if not state["initialized"]:
            return True
        pb = disp.get_pixbuf()
        if pb is None:
            return True
        data = pb.get_pixels()
        now = GLib.get_monotonic_time() / 1e6
        if data != state["last"]:
            state["last"], state["stable_since"] = data, now
        elif now - state["stable_since"] >= a.settle:
            w, h, rs, nc = pb.get_width(), pb.get_height(), pb.get_rowstride(), pb.get_n_channels()
            rows = [bytes(data[y * rs + x * nc + c] for x in range(w) for c in range(3)) for y in range(h)]
            with open(a.out, "wb") as f:
                f.write(b"P6\n%d %d\n255\n" % (w, h) + b"".join(rows))
            finish(True, f"GTKVNC: wrote {a.out}")
            return False
        return True

    def timeout():
        finish(False, "GTKVNC: error timeout")
        return False

    disp.connect("vnc-initialized", on_initialized)
    disp.connect("vnc-auth-credential", on_auth)
    disp.connect("vnc-disconnected", on_disconnected)
    disp.open_host(a.host, a.port)
    GLib.timeout_add(200, poll)
    GLib.timeout_add(int(a.timeout * 1000), timeout)
    loop.run()
    disp.close()
    return 0 if state["ok"] else 1


sys.exit(main())
