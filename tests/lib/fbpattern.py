"""The picture tests/guest/programs/guest-fbpattern.c draws, as the tests expect to read it back."""
import time

from png import decode_png


def fbpattern_rgb(x, y):
    """The (red, green, blue) guest-fbpattern puts at pixel (X, Y)."""
    return (x & 0xFF, y & 0xFF, (7 * x + 3 * y) & 0xFF)


def fbpattern_rows(w, h):
    """The whole W x H pattern as rows of packed RGB bytes, the form tests/lib/png.py's decode_png returns."""
    return [bytes(v for x in range(w) for v in fbpattern_rgb(x, y)) for y in range(h)]


def wait_screendump_pattern(qmp, path, w, h, args=None, timeout=30):
    """Polls QMP screendump (with ARGS besides the file name) into PATH until it shows the W x H pattern or TIMEOUT
    seconds pass: a guest's fbdev emulation flushes its writes to the device a moment after guest-fbpattern says
    it drew. Returns (size, problem): the last screendump's (width, height) or None, and None when the pixels
    equal the pattern, else what was wrong (the QMP error, the size, or the bad rows and the first one's bytes)."""
    want = fbpattern_rows(w, h)
    size, problem, deadline = None, "no screendump", time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = qmp.cmd("screendump", {"filename": path, **(args or {})})
        if r != {"return": {}}:
            return size, f"screendump failed: {r}"
        sw, sh, rows = decode_png(open(path, "rb").read())
        size = (sw, sh)
        if size != (w, h):
            problem = f"size {sw}x{sh}"
        else:
            bad = [y for y in range(h) if rows[y] != want[y]]
            if not bad:
                return size, None
            problem = (f"bad rows: {bad[:10]} of {len(bad)}\n"
                       f"row {bad[0]} got {rows[bad[0]][:24].hex()} want {want[bad[0]][:24].hex()}")
        time.sleep(1)
    return size, problem
