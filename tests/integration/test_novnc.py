#!/usr/bin/env python3
"""noVNC in headless Chromium against deskvm's VNC websocket port: the test guest draws a known pattern
(guest-fbpattern) on a virtio-gpu display, deskvm serves VNC with `--vnc 127.0.0.1:N,websocket=PORT`, a loopback
http.server serves noVNC (Debian's novnc package, /usr/share/novnc), Chromium under chromedriver opens vnc_lite.html
pointed at the websocket (with VNC authentication: password=on, the password set through QMP set_password and given
to the page), and the pixels noVNC drew on its canvas must equal the pattern; Chromium's screenshot of the page is
kept for a look when the test fails. Skips when chromium, chromedriver or novnc is not installed."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import (QmpClient, build_guest_image, free_port, free_vnc_display, guest_command,
                            read_text, tmpdir, wait_for)  # noqa: E402
from fbpattern import fbpattern_rows  # noqa: E402
from tap import Tap  # noqa: E402
from webdriver import CHROMEDRIVER, CHROMIUM, WebDriver, serve_directory  # noqa: E402

t = Tap()
NOVNC = "/usr/share/novnc"
BOOT_TIMEOUT = 240
W, H = 800, 600
PASSWORD = "novnc-pw"


def compare(data, want):
    """How packed RGB DATA differs from WANT's rows: (rows that differ, mean absolute channel difference, largest
    difference between the channel means of 16x16 blocks). noVNC always asks for JPEG quality 6, so deskvm's Tight
    encoder sends this smooth pattern as JPEG: single pixels at the pattern's sharp 256-pixel wraps may be far off,
    but block means stay within about 1.5, while a wrong size, stride or channel order moves them by tens and
    a one-pixel offset by 3 or more (blue is 7x + 3y)."""
    bad, total = [], 0
    block = {}
    for y in range(H):
        got = data[3 * W * y:3 * W * (y + 1)]
        if got == want[y]:
            continue
        bad.append(y)
        for x in range(W):
            for ch in range(3):
                d = got[3 * x + ch] - want[y][3 * x + ch]
                total += abs(d)
                key = (y // 16, x // 16, ch)
                block[key] = block.get(key, 0) + d
    worst_block = max((abs(v) / 256 for v in block.values()), default=0)
    return bad, total / (3 * W * H), worst_block


def read_canvas(wd, want, timeout, good):
    """Polls noVNC's canvas until GOOD(compare(...)) or TIMEOUT; returns (size, status, compare's result)."""
    end = time.monotonic() + timeout
    size, status, result = (0, 0), "", None
    while time.monotonic() < end:
        w, h, data = wd.canvas_rgb("#screen canvas")
        status = wd.script("return document.getElementById('status').textContent")
        size = (w, h)
        if size == (W, H):
            result = compare(data, want)
            if good(result):
                break
        time.sleep(0.5)
    return size, status, result


def main():
    missing = [what for what, ok in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER),
                                     ("novnc", os.path.isfile(os.path.join(NOVNC, "vnc_lite.html")))) if not ok]
    if missing:
        t.skip("noVNC in headless Chromium", f"not installed: {', '.join(missing)} (apt-get install chromium "
               "chromium-driver novnc)")
        return
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    d = tmpdir()
    serial, log, qmp = (os.path.join(d, n) for n in ("serial.txt", "log.txt", "qmp.sock"))
    display, ws_port = free_vnc_display(), free_port()
    cmdline = ('console=ttyS0 quiet vt.global_cursor_default=0 deskvm_modules=virtio_pci,virtio_gpu '
               'deskvm_run="guest-fbpattern && sleep 600"')
    args = guest_command(img.dir, cmdline, "file:" + serial, log,
                         extra=["--display", "virtio-gpu", "--resolution", f"{W}x{H}", "--qmp", "unix:" + qmp,
                                "--vnc", f"127.0.0.1:{display},password=on,websocket={ws_port}"])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    httpd = serve_directory(NOVNC)
    wd = None
    try:
        # Chromium starts while the guest boots.
        wd = WebDriver(d)
        wait_for(lambda: "DESKVM-FB: " in read_text(serial) or p.poll() is not None, timeout=BOOT_TIMEOUT,
                 interval=0.5)
        out = read_text(serial)
        if not t.ok(f"DESKVM-FB: drawn {W}x{H}" in out, "the guest draws its pattern on virtio-gpu",
                    out[-2000:] + read_text(log)[-2000:]):
            return
        # password=on: deskvm asks for the password QMP set; noVNC answers with the page's password parameter.
        q = QmpClient(qmp)
        q.negotiate()
        t.eq(q.cmd("set_password", {"protocol": "vnc", "password": PASSWORD}), {"return": {}}, "QMP set_password")
        q.close()
        page = (f"http://127.0.0.1:{httpd.server_port}/vnc_lite.html?host=127.0.0.1&port={ws_port}"
                f"&path=websockify&password={PASSWORD}")
        wd.navigate(page)
        want = fbpattern_rows(W, H)
        size, status, result = read_canvas(wd, want, 60, lambda r: r[1] < 4 and r[2] < 2.5)
        t.eq(size, (W, H), "noVNC's canvas has the guest's mode size")
        t.ok(result is not None and result[1] < 4 and result[2] < 2.5,
             "noVNC's canvas shows the guest's pattern (mean difference < 4, 16x16 block means within 2.5)",
             f"status {status!r}; {result and len(result[0])} rows differ; mean difference "
             f"{result and result[1]}, worst block {result and result[2]}")
        t.diag(f"canvas vs pattern: {len(result[0]) if result else '-'} rows differ, mean channel difference "
               f"{result[1] if result else 0:.3f}, worst 16x16 block mean difference {result[2] if result else 0:.2f}")
        t.ok(status.startswith("Connected"), f"vnc_lite reports the connection ({status!r})")
        shot = wd.screenshot()
        with open(os.path.join(d, "novnc.png"), "wb") as f:
            f.write(shot)
        t.ok(shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10000, "Chromium takes a screenshot of the page",
             f"{len(shot)} bytes")
    finally:
        if wd:
            wd.close()
        httpd.shutdown()
        httpd.server_close()
        if p.poll() is None:
            p.kill()
        p.wait()
        if t.failed == 0:
            shutil.rmtree(d, ignore_errors=True)
        else:
            t.diag(f"kept {d} (serial, deskvm log, chromedriver log, screenshot)")


t.run(main, "noVNC end to end")
t.done()
