#!/usr/bin/env python3
"""The real QEMU guest agent through deskvm's --guest-agent socket: the test guest starts Debian's qemu-ga on the
virtio-serial port org.qemu.guest_agent.0 (init's deskvm_qga=1), and a host client on the unix socket speaks QGA's
JSON protocol to it as management tools do: guest-sync echoes a number, guest-info names QEMU's version,
guest-get-osinfo reports the guest's kernel release (the image's), guest-exec runs a command whose output comes back
exactly, a file written with guest-file-* reads back the same, and README's socat one-liner gets guest-ping's
answer. Clients come and go on the socket: each new one is answered."""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import build_guest_image, guest_command, read_text, tmpdir, wait_exit, wait_for  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 240


class QgaClient:
    """One connection to the agent socket; QGA sends one JSON object per line."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def cmd(self, name, args=None, timeout=30):
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            self.sock.settimeout(max(0.1, end - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the agent socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def sync_until_in_step(self, first_id, tries=30):
        """Sends guest-sync with ids from FIRST_ID on until one comes back as its own answer (a client may meet
        the agent still starting, or a reply meant for a timed-out request); True once in step."""
        for ident in range(first_id, first_id + tries):
            try:
                r = self.cmd("guest-sync", {"id": ident}, timeout=10)
            except (socket.timeout, TimeoutError):
                continue
            if r.get("return") == ident:
                return True
        return False

    def close(self):
        self.sock.close()


def main():
    img = build_guest_image(timeout=900)
    if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
        return
    manifest = open(os.path.join(img.dir, "manifest")).read()
    if "qemu_ga_version=" not in manifest:
        t.skip("qemu-ga in the guest", "the guest image has no qemu-ga")
        return
    kver = [ln.split("=", 1)[1] for ln in manifest.splitlines() if ln.startswith("kernel_version=")][0]
    d = tmpdir()
    serial, log, sock = (os.path.join(d, n) for n in ("serial.txt", "log.txt", "qga.sock"))
    args = guest_command(img.dir, 'console=ttyS0 quiet deskvm_modules=virtio_pci,virtio_console deskvm_qga=1 '
                         'deskvm_run="sleep 600"', "file:" + serial, log, extra=["--guest-agent", "unix:" + sock])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        up = wait_for(lambda: "DESKVM-GUEST: qga-" in read_text(serial) or p.poll() is not None,
                      timeout=BOOT_TIMEOUT, interval=0.5)
        if not t.ok(up and "DESKVM-GUEST: qga-started" in read_text(serial), "qemu-ga starts in the guest",
                    read_text(serial)[-2000:] + read_text(log)[-1000:]):
            return
        c = QgaClient(sock)
        t.ok(c.sync_until_in_step(1000), "guest-sync echoes the id")
        info = c.cmd("guest-info").get("return", {})
        t.ok(str(info.get("version", "")).startswith("7.2"), "guest-info: Debian's qemu-ga 7.2",
             info.get("version"))
        t.ok(any(cmd.get("name") == "guest-exec" for cmd in info.get("supported_commands", [])),
             "guest-info lists guest-exec")
        osinfo = c.cmd("guest-get-osinfo").get("return", {})
        t.eq(osinfo.get("kernel-release"), kver, "guest-get-osinfo: the guest's kernel release")
        t.eq(c.cmd("guest-ping"), {"return": {}}, "guest-ping")

        pid = c.cmd("guest-exec", {"path": "/bin/sh", "arg": ["-c", "echo agent-$((6*7)); uname -m"],
                                   "capture-output": True}).get("return", {}).get("pid")
        st = {}
        end = time.monotonic() + 30
        while time.monotonic() < end:
            st = c.cmd("guest-exec-status", {"pid": pid}).get("return", {})
            if st.get("exited"):
                break
            time.sleep(0.2)
        out = base64.b64decode(st.get("out-data", "")) if st.get("out-data") else b""
        t.ok(st.get("exited") and st.get("exitcode") == 0 and out == b"agent-42\nx86_64\n",
             "guest-exec runs a shell command; its exit code and output come back exactly", st)

        payload = bytes(range(256)) * 64  # 16 KiB, every byte value
        h = c.cmd("guest-file-open", {"path": "/tmp/qga-test", "mode": "w"}).get("return")
        w = c.cmd("guest-file-write", {"handle": h, "buf-b64": base64.b64encode(payload).decode()})
        c.cmd("guest-file-close", {"handle": h})
        h = c.cmd("guest-file-open", {"path": "/tmp/qga-test", "mode": "r"}).get("return")
        r = c.cmd("guest-file-read", {"handle": h, "count": 65536}).get("return", {})
        c.cmd("guest-file-close", {"handle": h})
        t.ok(w.get("return", {}).get("count") == len(payload) and base64.b64decode(r.get("buf-b64", "")) == payload,
             "16 KiB written with guest-file-write read back byte for byte", (w, r.get("count")))
        c.close()

        # A new client after the first left (the host closed and reopened the port for the agent).
        c = QgaClient(sock)
        t.ok(c.sync_until_in_step(2000), "a second client is answered too")
        c.close()

        if shutil.which("socat"):
            # README's way: one command through socat.
            r = subprocess.run(["socat", "-t", "10", "-", "UNIX-CONNECT:" + sock],
                               input=b'{"execute":"guest-ping"}\n', capture_output=True, timeout=60)
            t.ok(r.stdout.strip() == b'{"return": {}}', "socat - UNIX-CONNECT:SOCK gets guest-ping's answer",
                 (r.stdout[-300:], r.stderr[-300:]))
        else:
            t.skip("socat one-liner", "socat is not installed")
        p.terminate()
        t.eq(wait_exit(p, 30), 0, "deskvm exits 0 on SIGTERM")
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


t.run(main, "QEMU guest agent end to end")
t.done()
