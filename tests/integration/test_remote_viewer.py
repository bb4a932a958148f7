#!/usr/bin/env python3
"""remote-viewer (virt-viewer, spice-gtk's widget) on a virtual X server shows the guest: the guest draws the known
pattern on bochs-display at 800x600 (the SPICE simple display's other device; test_spice_guest.py covers
virtio-gpu), spice-gtk's client library must get exactly that pattern, equal to QMP screendump, then remote-viewer
connects over SPICE to 127.0.0.1 and a screenshot of Xvfb's root window must contain the whole pattern pixel for
pixel (at its natural size: the X screen is larger than the guest). DESKVM_SPICE_TEST_SERVER=qemu runs it against
QEMU."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from deskvm_harness import build_guest_image  # noqa: E402
from fbpattern import fbpattern_rows, wait_screendump_pattern  # noqa: E402
from png import decode_png  # noqa: E402
from spice_import import import_spice_client  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
sc = import_spice_client(t)

KIND = sc.target_kind()
W, H = 800, 600
SCREEN = (1280, 1024)
HELPER = os.path.join(HERE, "spice_gtk_client.py")


def read_ppm(path):
    data = open(path, "rb").read()
    m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
    w, h = int(m.group(1)), int(m.group(2))
    px = data[m.end():]
    return w, h, [px[y * 3 * w:(y + 1) * 3 * w] for y in range(h)]


def find_pattern(rows, want):
    """(x, y) where the whole of WANT (rows of RGB bytes) appears in ROWS, else None."""
    first, width = want[0], len(want[0])
    for sy in range(len(rows) - len(want) + 1):
        at = rows[sy].find(first)
        while at >= 0:
            if at % 3 == 0 and all(rows[sy + y][at:at + width] == want[y] for y in range(len(want))):
                return at // 3, sy
            at = rows[sy].find(first, at + 1)
    return None


def start_xvfb(d):
    """Starts Xvfb on a free display; returns (process, DISPLAY)."""
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
                             "-nolisten", "tcp", "-auth", "/dev/null"], pass_fds=(w,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "xvfb.txt"), "wb"),
                            start_new_session=True)
    os.close(w)
    num = b""
    end = time.monotonic() + 30
    while not num.endswith(b"\n") and time.monotonic() < end:
        chunk = os.read(r, 16)
        if not chunk:
            break
        num += chunk
    os.close(r)
    if not num.strip():
        proc.kill()
        proc.wait()
        raise RuntimeError("Xvfb did not start")
    return proc, ":" + num.decode().strip()


def kill_group(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def main():
    if KIND == "deskvm" and not sc.deskvm_has_spice():
        t.skip("remote-viewer", "this deskvm has no --spice (built without libspice-server-dev?)")
        return
    missing = [p for p in ("Xvfb", "remote-viewer") if not shutil.which(p)]
    if missing:
        t.skip("remote-viewer", f"{', '.join(missing)} missing (tools/install-deps: xvfb, virt-viewer)")
        return
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    vm = sc.SpiceVm(KIND, "disable-ticketing=on", image=img.dir, size=(W, H), devices=("keyboard", "tablet"),
                    display="bochs", run="guest-fbpattern; sleep 600")
    failed_before = t.failed
    xvfb = viewer = None
    try:
        ready = vm.wait_serial("DESKVM-FB: drawn", 300)
        if not t.ok(ready and f"DESKVM-FB: drawn {W}x{H}" in vm.serial_text(),
                    "the guest draws its pattern on bochs-display", vm.serial_text()[-3000:] + vm.stderr()[-2000:]):
            return
        want = fbpattern_rows(W, H)
        q = vm.qmp()
        shot_png = os.path.join(vm.dir, "shot.png")
        size, problem = wait_screendump_pattern(q, shot_png, W, H, {"format": "png"} if KIND == "qemu" else None)
        t.ok(problem is None, "QMP screendump shows the pattern", problem)
        c = vm.client()
        try:
            bad = c.wait_rows(want, timeout=60)
            t.ok(not bad, "spice-gtk's client library gets exactly the pattern from bochs-display",
                 f"bad rows {bad[:10]}")
            if problem is None and c.surface is not None:
                t.ok(decode_png(open(shot_png, "rb").read())[2] == c.surface.rows(),
                     "the SPICE surface equals QMP screendump")
        finally:
            c.close()
        q.close()
        xvfb, display = start_xvfb(vm.dir)
        env = dict(os.environ, DISPLAY=display, GDK_BACKEND="x11", NO_AT_BRIDGE="1")
        env.pop("WAYLAND_DISPLAY", None)
        viewer_log = os.path.join(vm.dir, "remote-viewer.txt")
        viewer = subprocess.Popen(["remote-viewer", "--zoom=100", f"spice://127.0.0.1:{vm.port}"], env=env,
                                  stdin=subprocess.DEVNULL, stdout=open(viewer_log, "wb"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        shot = os.path.join(vm.dir, "screen.ppm")
        found, detail, end = None, "no screenshot", time.monotonic() + 90
        while time.monotonic() < end and viewer.poll() is None:
            time.sleep(1)
            p = subprocess.run(["/usr/bin/python3", HELPER, "screenshot", shot], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            if p.returncode != 0:
                detail = p.stdout.decode(errors="replace")[-1000:]
                continue
            sw, sh, rows = read_ppm(shot)
            found = find_pattern(rows, want)
            if found:
                break
            detail = f"screenshot {sw}x{sh}: pattern not found"
        log = open(viewer_log, errors="replace").read()[-1500:]
        t.ok(found is not None, "remote-viewer's window shows the guest's whole 800x600 pattern, pixel for pixel",
             f"{detail}; remote-viewer {'exited ' + str(viewer.returncode) if viewer.poll() is not None else 'runs'}"
             f"\n{log}")
        if found:
            t.diag(f"pattern at {found} on the {SCREEN[0]}x{SCREEN[1]} X screen")
        t.ok(viewer.poll() is None, "remote-viewer is still connected and running", log)
    finally:
        for p in (viewer, xvfb):
            if p is not None:
                kill_group(p)
        vm.stop(keep_dir=t.failed > failed_before)


t.run(main, "remote-viewer")
t.done()
