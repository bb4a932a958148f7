#!/usr/bin/env python3
"""A SPICE client's window size reaches a virtio-gpu guest through the device, as with QEMU: the guest's virtio_gpu
driver sets 800x600 and guest-fbpattern draws a pattern, guest-vdagent runs (spice-gtk only sends monitor configs
while an agent is connected), the client asks for 640x480, spice-server hands the request to deskvm's display
(client_monitors_config), virtio-gpu tells the guest (display-info event, EDID), the guest sets 640x480, and the
client's primary surface follows at 640x480, equal to QMP screendump; the agent does not get the request, since the
display took it."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import (QmpClient, build_guest_image, free_port, guest_command, read_text, tmpdir,  # noqa: E402
                            wait_exit, wait_for)
from png import decode_png  # noqa: E402
from spice_import import import_spice_client  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
sc = import_spice_client(t)

BOOT_TIMEOUT = 300
W, H = 800, 600
NEW_W, NEW_H = 640, 480


def screendump_rows(q, path):
    if q.cmd("screendump", {"filename": path, "format": "png"}) != {"return": {}}:
        return None
    return decode_png(open(path, "rb").read())


def main():
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    d = tmpdir()
    serial, log, qmp = (os.path.join(d, n) for n in ("serial.txt", "log.txt", "qmp.sock"))
    port = free_port()
    run = "guest-fbpattern && guest-vdagent --timeout 500"
    args = guest_command(img.dir, "console=ttyS0 quiet vt.global_cursor_default=0 "
                         f'deskvm_modules=virtio_pci,virtio_gpu,virtio_console deskvm_run="{run}"',
                         "file:" + serial, log,
                         extra=["--display", "virtio-gpu", "--resolution", f"{W}x{H}", "--qmp", "unix:" + qmp,
                                "--spice", f"port={port},addr=127.0.0.1,disable-ticketing=on"])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = None
    try:
        wait_for(lambda: "DESKVM-FB: " in read_text(serial) or p.poll() is not None, timeout=BOOT_TIMEOUT,
                 interval=0.5)
        if not t.ok(f"DESKVM-FB: drawn {W}x{H}" in read_text(serial), "the guest draws its pattern at 800x600",
                    read_text(serial)[-2000:] + read_text(log)[-1500:]):
            return
        c = sc.SpiceClient.open("127.0.0.1", port, timeout=30)
        t.ok(c.wait_surface(W, H, 30) is not None, "the client's primary surface is 800x600")
        t.ok(c.wait_agent(True, 60), "the guest agent is connected (spice-gtk sends monitor configs only then)")
        t.ok(c.monitor_config(NEW_W, NEW_H), f"the client asks for {NEW_W}x{NEW_H}")
        got = c.wait_surface(NEW_W, NEW_H, 60)
        t.ok(got is not None, f"the guest re-sets its mode and the client's surface becomes {NEW_W}x{NEW_H}",
             str(c.surface and (c.surface.width, c.surface.height)))
        q = QmpClient(qmp)
        q.negotiate()
        path, same, detail = os.path.join(d, "shot.png"), False, ""
        for _ in range(20):
            shot = screendump_rows(q, path)
            if shot and (shot[0], shot[1]) == (NEW_W, NEW_H):
                bad = c.wait_rows(shot[2], timeout=3)
                same, detail = not bad, f"rows differing {bad[:10]}"
                if same:
                    break
            else:
                detail = f"screendump {shot and shot[:2]}"
            sc.pump(None, 0.5)
        t.ok(same, f"the client's {NEW_W}x{NEW_H} surface equals QMP screendump", detail)
        t.ok("MONITORS_CONFIG" not in read_text(serial), "the agent did not get the request (the display took it)",
             [ln for ln in read_text(serial).splitlines() if "MONITORS_CONFIG" in ln][:3])
        q.cmd("quit")
        t.eq(wait_exit(p, 30), 0, "QMP quit ends deskvm with status 0")
        q.close()
    finally:
        if c:
            c.close()
        if p.poll() is None:
            p.kill()
        p.wait()


t.run(main, "SPICE client resize through virtio-gpu")
t.done()
