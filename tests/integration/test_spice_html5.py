#!/usr/bin/env python3
"""spice-html5 in headless Chromium against deskvm's SPICE server: the test guest draws a known pattern
(guest-fbpattern) on virtio-gpu, deskvm serves SPICE on 127.0.0.1 with a ticket set through QMP, websockify (Debian's
package) bridges a loopback WebSocket port to it as it does in web front ends, a loopback http.server serves Debian's
spice-html5, and Chromium under chromedriver opens spice_auto.html with the password. The pixels spice-html5 drew on
its primary-surface canvas must equal the pattern exactly (SPICE's image codecs here are lossless), and a wrong
password must leave the canvas undrawn. Skips when chromium, chromedriver, spice-html5 or websockify is missing."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import (QmpClient, build_guest_image, free_port, guest_command, read_text, tmpdir,  # noqa: E402
                            wait_for)
from fbpattern import fbpattern_rows  # noqa: E402
from tap import Tap  # noqa: E402
from webdriver import CHROMEDRIVER, CHROMIUM, WebDriver, serve_directory  # noqa: E402

t = Tap()
SPICE_HTML5 = "/usr/share/spice-html5"
WEBSOCKIFY = shutil.which("websockify")
BOOT_TIMEOUT = 240
W, H = 800, 600
PASSWORD = "html5-ticket"

def read_canvas(wd, want, timeout):
    """Polls the canvas until it equals WANT or TIMEOUT; returns (size, rows that differ)."""
    end = time.monotonic() + timeout
    size, bad = (0, 0), None
    while time.monotonic() < end:
        w, h, data = wd.canvas_rgb("#spice_surface_0")
        size = (w, h)
        if size == (W, H):
            bad = [y for y in range(H) if data[3 * W * y:3 * W * (y + 1)] != want[y]]
            if not bad:
                break
        time.sleep(0.5)
    return size, bad


def main():
    missing = [what for what, ok in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER),
                                     ("spice-html5", os.path.isfile(os.path.join(SPICE_HTML5, "spice_auto.html"))),
                                     ("websockify", WEBSOCKIFY)) if not ok]
    if missing:
        t.skip("spice-html5 in headless Chromium", f"not installed: {', '.join(missing)} (apt-get install chromium "
               "chromium-driver spice-html5 websockify)")
        return
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    d = tmpdir()
    serial, log, qmp = (os.path.join(d, n) for n in ("serial.txt", "log.txt", "qmp.sock"))
    spice_port, ws_port = free_port(), free_port()
    cmdline = ('console=ttyS0 quiet vt.global_cursor_default=0 deskvm_modules=virtio_pci,virtio_gpu '
               'deskvm_run="guest-fbpattern && sleep 600"')
    args = guest_command(img.dir, cmdline, "file:" + serial, log,
                         extra=["--display", "virtio-gpu", "--resolution", f"{W}x{H}", "--qmp", "unix:" + qmp,
                                "--spice", f"port={spice_port},addr=127.0.0.1"])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ws = subprocess.Popen([WEBSOCKIFY, f"127.0.0.1:{ws_port}", f"127.0.0.1:{spice_port}"], stdin=subprocess.DEVNULL,
                          stdout=open(os.path.join(d, "websockify.log"), "w"), stderr=subprocess.STDOUT)
    httpd = serve_directory(SPICE_HTML5)
    wd = None
    try:
        wd = WebDriver(d)  # Chromium starts while the guest boots
        wait_for(lambda: "DESKVM-FB: " in read_text(serial) or p.poll() is not None, timeout=BOOT_TIMEOUT,
                 interval=0.5)
        out = read_text(serial)
        if not t.ok(f"DESKVM-FB: drawn {W}x{H}" in out, "the guest draws its pattern on virtio-gpu",
                    out[-2000:] + read_text(log)[-2000:]):
            return
        q = QmpClient(qmp)
        q.negotiate()
        t.eq(q.cmd("set_password", {"protocol": "spice", "password": PASSWORD}), {"return": {}},
             "QMP set_password for spice")
        page = f"http://127.0.0.1:{httpd.server_port}/spice_auto.html?host=127.0.0.1&port={ws_port}&password="

        # A refused ticket makes spice-html5 prompt for another password.
        wd.navigate(page + "wrong")
        prompt = wait_for(lambda: wd.alert_text(), timeout=30, interval=0.3)
        t.ok(prompt and "assword" in wd.alert_text(), "with a wrong password spice-html5 is refused and asks again",
             str(wd.alert_text()))
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 2:  # it may prompt more than once: dismiss until it stops
            if wd.alert_text() is not None:
                wd.dismiss_alert()
                quiet_since = time.monotonic()
            time.sleep(0.2)
        size, _ = read_canvas(wd, fbpattern_rows(W, H), 0.1)
        t.eq(size, (0, 0), "and draws no display")

        wd.navigate(page + PASSWORD)
        size, bad = read_canvas(wd, fbpattern_rows(W, H), 60)
        t.eq(size, (W, H), "spice-html5's primary surface has the guest's mode size")
        t.ok(bad == [], "spice-html5's canvas shows the guest's pattern exactly",
             f"{len(bad) if bad is not None else 'no'} rows differ")
        chans = q.cmd("query-spice").get("return", {}).get("channels", [])
        t.ok(any(c.get("channel-type") == 2 for c in chans), "query-spice lists the browser's display channel",
             str(chans)[:500])
        q.close()
        shot = wd.screenshot()
        with open(os.path.join(d, "spice-html5.png"), "wb") as f:
            f.write(shot)
    finally:
        if wd:
            wd.close()
        httpd.shutdown()
        httpd.server_close()
        ws.kill()
        ws.wait()
        if p.poll() is None:
            p.kill()
        p.wait()
        if t.failed == 0:
            shutil.rmtree(d, ignore_errors=True)
        else:
            t.diag(f"kept {d} (serial, deskvm log, websockify and chromedriver logs, screenshot)")


t.run(main, "spice-html5 end to end")
t.done()
