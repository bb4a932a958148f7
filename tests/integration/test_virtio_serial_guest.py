#!/usr/bin/env python3
"""virtio-serial end to end on the software CPU. First the options: bad --serial-port / --guest-agent values exit 2
with one line naming the option. Then the Debian guest (virtio_pci + virtio_console) gets a port
org.deskvm.test.0 on a unix socket and the guest agent's port on another, and runs tests/guest/programs/guest-vport
on both (it finds each port through /sys/class/virtio-ports and echoes every byte back).

Test port, session 1: the host connects before the guest has opened the port, sends lines (they wait in the device
until the guest opens it) and gets exactly those bytes back; then 1 MiB of random data goes through the echo intact
(flow control both ways: the host writes while it reads). The guest closes the port after exactly that many bytes,
and the host sees end-of-file on its socket (deskvm disconnects the client once the guest's last bytes are out).
Session 2: the guest opens the port again, the host connects again, one line is echoed, and the host closes its
socket: the guest reads end-of-file and reports it. Guest agent port: "ping" echoed, the host closes, the guest sees
it. The guest powers off; deskvm exits 0."""
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import build_guest_image, guest_command, read_text, run_deskvm, tmpdir, wait_exit  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
MiB = 1 << 20
BOOT_TIMEOUT = 300
IO_TIMEOUT = 180
PORT = "org.deskvm.test.0"
d = tmpdir()


def eq(got, want, name, detail=""):
    return t.ok(got == want, name, f"got:  {got!r}\nwant: {want!r}\n{detail}")


# ---- options
sock = os.path.join(d, "p.sock")
cases = [
    (["--serial-port", "path=unix:" + sock], "deskvm: --serial-port: needs name=NAME", "a port without a name"),
    (["--serial-port", "name=a,path=" + sock], f"deskvm: --serial-port: '{sock}' is not unix:PATH",
     "a path without unix:"),
    (["--serial-port", "name=a"], "deskvm: --serial-port: needs path=unix:PATH", "a port without a path"),
    (["--serial-port", "name=a/b,path=unix:" + sock],
     "deskvm: --serial-port: port name 'a/b': only printable ASCII without spaces, '/' or ','", "a bad port name"),
    (["--serial-port", "name=a,path=unix:" + sock, "--serial-port", "name=a,path=unix:" + sock + "2"],
     "deskvm: --serial-port: port name 'a' given twice", "a port name given twice"),
    (["--serial-port", "name=a,path=unix:" + sock, "--serial-port", "name=b,path=unix:" + sock],
     f"deskvm: --serial-port: unix:{sock} is used by two ports", "one socket for two ports"),
    (["--guest-agent", "unix:" + sock, "--serial-port", "name=org.qemu.guest_agent.0,path=unix:" + sock + "2"],
     "deskvm: --serial-port: port name 'org.qemu.guest_agent.0' given twice",
     "--guest-agent and a port of the same name"),
    (["--guest-agent", sock], f"deskvm: --guest-agent: '{sock}' is not unix:PATH", "--guest-agent without unix:"),
    (["--serial-port", "name=a,path=unix:" + sock, "--qmp", "unix:" + sock],
     f"deskvm: --serial-port: unix:{sock} is also another socket of deskvm", "a port on the QMP socket"),
    ([a for i in range(31) for a in ("--serial-port", f"name=p{i},path=unix:{sock}{i}")],
     "deskvm: --serial-port: at most 30 virtio-serial ports", "a 31st port"),
]
for args, msg, name in cases:
    r = run_deskvm(args)
    eq((r.returncode, r.stderr.strip()), (2, msg), name + " exits 2 with one line naming the option")

img = build_guest_image(timeout=900)
if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
    t.done()
image = img.dir

# ---- the guest
test_sock = os.path.join(d, "test.sock")
agent_sock = os.path.join(d, "agent.sock")
serial = os.path.join(d, "serial.txt")
log = os.path.join(d, "log.txt")
lines = b"".join(b"line %d: the quick brown fox \x01\x02\xff jumps\n" % i for i in range(40))
big = os.urandom(MiB)
limit = len(lines) + len(big)
run_cmd = (f"guest-vport org.qemu.guest_agent.0 0 & guest-vport {PORT} {limit}; wait; "
           "for p in /sys/class/virtio-ports/*; do echo VPORT-SYS $(basename $p) $(cat $p/name); done")
args = guest_command(image, f'console=ttyS0 quiet deskvm_modules=virtio_pci,virtio_console deskvm_run="{run_cmd}"',
                     "file:" + serial, log, memory="256M",
                     extra=["--serial-port", f"name={PORT},path=unix:{test_sock}", "--guest-agent", "unix:" + agent_sock])
start = time.monotonic()
p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def connect(path, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline or p.poll() is not None:
                raise
            time.sleep(0.05)


def read_exactly(s, n, timeout):
    """Up to n bytes, stopping early at end-of-file or after timeout seconds."""
    s.settimeout(1.0)
    got = bytearray()
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        try:
            chunk = s.recv(min(65536, n - len(got)))
        except socket.timeout:
            continue
        if not chunk:
            break
        got += chunk
    return bytes(got)


def wait_eof(s, timeout):
    """True when the peer closes within timeout (any bytes before it count against it)."""
    s.settimeout(1.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return True
        return chunk == b""
    return False


def ctx():
    return (read_text(serial)[-3000:] + "\n--- deskvm log ---\n" + read_text(log)[-3000:])


try:
    # Session 1: lines first (sent before the guest opens the port), then 1 MiB while reading the echo.
    s = connect(test_sock)
    s.sendall(lines)
    got = read_exactly(s, len(lines), IO_TIMEOUT)
    t.diag(f"boot + first echo: {time.monotonic() - start:.1f} s")
    eq(got, lines, "the guest echoes the lines exactly (sent before it opened the port)", ctx())
    sender = threading.Thread(target=lambda: s.sendall(big))
    t0 = time.monotonic()
    sender.start()
    got = read_exactly(s, len(big), IO_TIMEOUT)
    sender.join(IO_TIMEOUT)
    t.diag(f"1 MiB through the echo: {time.monotonic() - t0:.3f} s")
    t.ok(got == big, "1 MiB of random data comes back intact", f"got {len(got)} bytes\n" + ctx())
    t.ok(wait_eof(s, 60), "the guest closing the port disconnects the host's client (end-of-file)", ctx())
    s.close()

    # Session 2: a new client, one line, then the host closes.
    s = connect(test_sock)
    s.sendall(b"second session\n")
    eq(read_exactly(s, 15, 60), b"second session\n", "after reconnecting, the reopened port echoes again", ctx())
    s.close()

    # The guest agent's port.
    a = connect(agent_sock)
    a.sendall(b"ping\n")
    eq(read_exactly(a, 5, 60), b"ping\n", "the guest agent port (org.qemu.guest_agent.0) echoes", ctx())
    a.close()
except OSError as e:
    t.ok(False, f"socket I/O with the guest: {e}", ctx())

rc = wait_exit(p, BOOT_TIMEOUT)
p.stderr.close()
t.diag(f"whole run: {time.monotonic() - start:.1f} s")
out, logtext = read_text(serial), read_text(log)
c = out[-3000:] + "\n--- deskvm log ---\n" + logtext[-3000:]
eq(rc, 0, "the guest finishes and powers off; deskvm exits 0", c)
t.ok("DESKVM-GUEST: module-failed" not in out, "virtio_pci and virtio_console load", c)
t.ok(re.search(rf"DESKVM-VPORT: open {re.escape(PORT)} /dev/vport\d+p1\b", out) is not None,
     "the guest finds the test port as port 1 by its sysfs name", c)
t.ok(f"DESKVM-VPORT: guest-closed 1 {limit}" in out, "the guest echoed exactly the bytes sent, then closed", c)
t.ok("DESKVM-VPORT: host-closed 2 15" in out, "the guest sees the host close its end (end-of-file)", c)
t.ok("DESKVM-VPORT: host-closed 1 5" in out, "the agent port's guest program sees the host close", c)
names = sorted(re.findall(r"VPORT-SYS vport\d+p\d+ (\S+)", out))
eq(names, ["org.deskvm.test.0", "org.qemu.guest_agent.0"], "sysfs lists exactly the two named ports", c)
t.ok(f"serial port {PORT}: client disconnected (the guest closed the port)" in logtext,
     "deskvm logs why it disconnected the client", logtext[-2000:])
t.ok(re.search(rf"virtio-serial: port {re.escape(PORT)} opened by the guest.*"
               rf"virtio-serial: port {re.escape(PORT)} closed by the guest.*"
               rf"virtio-serial: port {re.escape(PORT)} opened by the guest", logtext, re.S) is not None,
     "deskvm logs the guest opening, closing and reopening the port", logtext[-2000:])
t.ok(not re.search(r"virtio-serial: (?!port \S+ (opened|closed) by the guest)", logtext),
     "the device logged no guest errors", logtext[-2000:])
if not t.failed:
    shutil.rmtree(d, ignore_errors=True)
t.done()
