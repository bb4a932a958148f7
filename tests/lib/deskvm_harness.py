"""Helpers for deskvm's integration tests: locate the build, start deskvm, talk QMP over a socket."""
import collections
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

SRCDIR = os.environ.get("DESKVM_SRCDIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILDDIR = os.environ.get("DESKVM_BUILDDIR") or SRCDIR
DESKVM = os.path.join(BUILDDIR, "deskvm")
BUILD_IMAGE = os.path.join(SRCDIR, "tests", "guest", "build-image")


def tmpdir():
    """A fresh directory for one test's sockets and files (short path: unix socket paths are limited)."""
    return tempfile.mkdtemp(prefix="dvm-", dir="/tmp")


def free_port():
    """A TCP port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_vnc_display():
    """A VNC display number whose port (5900 + display) is free on 127.0.0.1 right now. Random, so tests running
    at the same time rarely race for one; never 0-99, which people use."""
    import random
    for _ in range(500):
        d = random.randint(100, 6000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 5900 + d))
                return d
            except OSError:
                continue
    raise RuntimeError("no free VNC port on 127.0.0.1")


def run_deskvm(args, timeout=10, **kw):
    """Run deskvm to completion; returns CompletedProcess with text stdout/stderr."""
    return subprocess.run([DESKVM] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def run(cmd, timeout=120, env=None, stdin=subprocess.DEVNULL):
    """Runs CMD in its own session; on timeout kills the whole process group. Returns (rc, stdout, stderr), rc being
    "timeout" when it ran out of time."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return "timeout", out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


ImageBuild = collections.namedtuple("ImageBuild", "dir rc out err")


def build_guest_image(timeout=1500):
    """Builds the test guest image with tests/guest/build-image, or reuses it from the cache (env DESKVM_CACHE).
    Returns an ImageBuild whose dir is the image directory (vmlinuz, initrd.img, manifest), or None when the build
    failed; rc, out and err are the builder's, for messages."""
    rc, out, err = run([BUILD_IMAGE], timeout=timeout)
    lines = out.strip().splitlines()
    outdir = lines[-1] if lines else ""
    return ImageBuild(outdir if rc == 0 and os.path.isdir(outdir) else None, rc, out, err)


def read_manifest(path):
    """An image manifest's key=value lines as a dict."""
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                values[k] = v
    return values


def read_text(path):
    """A file's text ("" while it does not exist yet), e.g. a serial or log file deskvm is still writing."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def kvm_usable():
    """None when /dev/kvm can be opened, else the reason it cannot (for a skip)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return None
    except OSError as e:
        return f"/dev/kvm: {e.strerror}"


def guest_command(image, cmdline, serial, log, memory="512M", kernel=None, extra=()):
    """deskvm's command line for the test guest image on the software CPU: its kernel (or KERNEL) and initrd, the
    kernel command line, SERIAL as --serial's value and LOG as the log file, then EXTRA."""
    return [DESKVM, "--accel", "emu", "--memory", memory, "--kernel", kernel or os.path.join(image, "vmlinuz"),
            "--initrd", os.path.join(image, "initrd.img"), "--append", cmdline, "--serial", serial,
            "--log-file", log] + list(extra)


def wait_exit(proc, timeout):
    """The process's exit code, or "timeout" after killing it when it runs longer than TIMEOUT seconds."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "timeout"


class SerialSocket:
    """A guest's serial console on deskvm's unix socket (--serial unix:PATH): keeps what the guest printed in
    buf and waits for text to appear in it."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.sock.settimeout(1)
        self.buf = b""

    def wait(self, found, timeout):
        """Reads until found(buf) is true, the guest closes the socket or TIMEOUT seconds pass; returns found(buf)."""
        end = time.monotonic() + timeout
        while not found(self.buf) and time.monotonic() < end:
            try:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            except socket.timeout:
                pass
        return found(self.buf)

    def wait_text(self, needle, timeout):
        return self.wait(lambda b: needle in b, timeout)

    def wait_re(self, pattern, timeout):
        return self.wait(lambda b: re.search(pattern, b), timeout)

    def tail(self, n):
        return self.buf[-n:].decode(errors="replace")

    def sendall(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()


def wait_for(pred, timeout=10.0, interval=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


class Deskvm:
    """A running deskvm process with a QMP unix socket in its own temp dir."""

    def __init__(self, extra=(), qmp=True, log_level="info"):
        self.dir = tmpdir()
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.log_path = os.path.join(self.dir, "deskvm.log")
        args = [DESKVM, "--log-file", self.log_path]
        if log_level:
            args += ["--log-level", log_level]
        if qmp:
            args += ["--qmp", "unix:" + self.qmp_path]
        args += list(extra)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if qmp and not wait_for(lambda: os.path.exists(self.qmp_path) or self.proc.poll() is not None):
            raise RuntimeError("deskvm did not create its QMP socket")
        if self.proc.poll() is not None:
            raise RuntimeError(f"deskvm exited early with {self.proc.returncode}: {self.proc.stderr.read()!r}")

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def qmp(self, negotiate=True):
        c = QmpClient(self.qmp_path)
        if negotiate:
            c.negotiate()
        return c

    def wait(self, timeout=10):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class QmpClient:
    """Minimal QMP client: keeps events and replies apart, as a real client must."""

    def __init__(self, path=None, tcp=None, timeout=10.0):
        if tcp:
            self.sock = socket.create_connection(tcp, timeout=timeout)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.greeting = self.recv()

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def recv(self):
        """Next JSON message (QMP sends one per line)."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def recv_reply(self):
        """Next message that is not an event; events seen on the way are kept in self.events."""
        while True:
            msg = self.recv()
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def cmd(self, name, args=None, id=None):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        if id is not None:
            req["id"] = id
        self.send_raw(json.dumps(req))
        return self.recv_reply()

    def negotiate(self):
        r = self.cmd("qmp_capabilities")
        if r != {"return": {}}:
            raise RuntimeError(f"qmp_capabilities failed: {r}")

    def wait_event(self, name, timeout=5.0):
        for i, ev in enumerate(self.events):
            if ev["event"] == name:
                return self.events.pop(i)
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            while True:
                msg = self.recv()
                if msg.get("event") == name:
                    return msg
                if "event" in msg:
                    self.events.append(msg)
        except (socket.timeout, EOFError):
            return None
        finally:
            self.sock.settimeout(old)


def log_port(log_text):
    m = re.search(r"qmp: listening on tcp:\S*:(\d+)", log_text)
    return int(m.group(1)) if m else None
