#!/usr/bin/python3
"""X helpers for the SPICE tests, run with /usr/bin/python3 (python3-gi) inside an X server (Xvfb):

  spice_gtk_client.py screenshot OUT.ppm
      writes the whole root window (what remote-viewer shows) as a binary PPM.
"""
import sys

import gi

gi.require_version("Gdk", "3.0")
from gi.repository import Gdk  # noqa: E402


def screenshot(path):
    root = Gdk.get_default_root_window()
    if root is None:
        print("no X display (DISPLAY unset?)", file=sys.stderr)
        return 1
    w, h = root.get_width(), root.get_height()
    pb = Gdk.pixbuf_get_from_window(root, 0, 0, w, h)
    if pb is None:
        print("could not read the root window", file=sys.stderr)
        return 1
    rs, nc = pb.get_rowstride(), pb.get_n_channels()
    data = pb.get_pixels()
    rows = []
    for y in range(h):
        line = data[y * rs:y * rs + w * nc]
        if nc == 3:
            rows.append(bytes(line))
        else:  # RGBA: drop alpha
            rgb = bytearray(3 * w)
            rgb[0::3], rgb[1::3], rgb[2::3] = line[0::nc], line[1::nc], line[2::nc]
            rows.append(bytes(rgb))
    with open(path, "wb") as fh:
        fh.write(b"P6\n%d %d\n255\n" % (w, h) + b"".join(rows))
    return 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "screenshot":
        return screenshot(sys.argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
