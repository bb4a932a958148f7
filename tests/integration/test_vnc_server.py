#!/usr/bin/env python3
"""The VNC server without a guest (no machine: a black 640x480 screen), through real clients: the pure-Python RFB
client (tests/lib/rfb.py) and vncsnapshot. Covers --vnc's address rules, the unix socket, VNC authentication
with QMP set_password / expire_password, query-vnc, the QEMU extensions' acknowledgements, hostile clients (huge
cut text, garbage, a client that never reads, too many clients) and that 100 connect/disconnect cycles leave
the resident size flat."""
import base64
import hashlib
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import Deskvm, free_vnc_display, run_deskvm, tmpdir, wait_for  # noqa: E402
import rfb  # noqa: E402
from rfb import RfbClient  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
ENCODINGS = [rfb.ZRLE, rfb.TIGHT, rfb.HEXTILE, rfb.ZLIB, rfb.RAW, rfb.DESKTOP_SIZE, rfb.EXT_DESKTOP_SIZE,
             rfb.LAST_RECT, rfb.QEMU_EXT_KEY, rfb.QEMU_POINTER_TYPE]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def session(addr, password=None):
    """Connect, ask for every encoding and read the whole screen; returns the client."""
    c = RfbClient.connect(addr, password=password)
    c.set_pixel_format_32()
    c.set_encodings(ENCODINGS)
    c.refresh()
    return c


def test_options():
    r = run_deskvm(["--vnc", "0.0.0.0:1"])
    t.eq(r.returncode, 2, "--vnc 0.0.0.0:1 without a password is refused at startup (exit 2)")
    t.ok("not a loopback address" in r.stderr and "password=on" in r.stderr,
         "the message says why and what to add", r.stderr)
    r = run_deskvm(["--vnc", "127.0.0.1:0,websocket=5900"])
    t.ok(r.returncode == 2 and "RFB port itself" in r.stderr, "websocket= on the RFB port is refused", r.stderr)
    r = run_deskvm(["--vnc", "127.0.0.1:x"])
    t.ok(r.returncode == 2 and "--vnc" in r.stderr, "a bad display number is refused, naming --vnc", r.stderr)
    # A port someone else holds: a runtime error, not a hang.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    busy = s.getsockname()[1]
    if busy > 5900:
        r = run_deskvm(["--vnc", f"127.0.0.1:{busy - 5900}"])
        t.ok(r.returncode == 1 and "--vnc" in r.stderr, "a port in use is a clear startup error", r.stderr)
    s.close()


def test_tcp_plain():
    disp = free_vnc_display()
    with Deskvm(["--vnc", f"127.0.0.1:{disp}"]) as vm:
        addr = ("127.0.0.1", 5900 + disp)
        t.ok(wait_for(lambda: "vnc: listening on 127.0.0.1" in vm.log(), 5), "the server logs its address")
        c = session(addr)
        t.eq((c.width, c.height), (640, 480), "no machine: a 640x480 screen")
        t.ok(all(b == 0 for b in c.fb), "it is black")
        t.ok(c.qemu_ext_key, "the server acknowledges QEMU's extended key event (-258)")
        t.eq(c.absolute_pointer, True, "the server announces an absolute pointer (QEMU pointer type change)")
        c.set_desktop_size(800, 600)
        rects = c.update(incremental=True, timeout=5)
        t.ok(c.desktop_size_result is not None and c.desktop_size_result[1] == 1,
             "a resize request without a resizable display is answered ResizeProhibited", (rects, c.desktop_size_result))
        q = vm.qmp()
        info = q.cmd("query-vnc")["return"]
        t.eq({k: info.get(k) for k in ("enabled", "host", "service", "family", "auth")},
             {"enabled": True, "host": "127.0.0.1", "service": str(5900 + disp), "family": "ipv4", "auth": "none"},
             "query-vnc describes the server")
        cl = info.get("clients", [])
        t.ok(len(cl) == 1 and cl[0]["host"] == "127.0.0.1" and cl[0]["family"] == "ipv4"
             and cl[0]["websocket"] is False and cl[0]["service"] == str(c.sock.getsockname()[1]),
             "query-vnc lists the client with its address and port", cl)
        r = q.cmd("set_password", {"protocol": "vnc", "password": "x"})
        t.ok("error" in r and "password=on" in r["error"]["desc"], "set_password without password=on is an error", r)
        c.close()
        t.ok(wait_for(lambda: q.cmd("query-vnc")["return"]["clients"] == [], 5), "the client leaves the list")

        # vncsnapshot: a third-party client (Tight/JPEG by default) gets a full screen.
        if shutil.which("vncsnapshot"):
            out = os.path.join(vm.dir, "snap.jpg")
            p = subprocess.run(["vncsnapshot", "-quiet", "-allowblank", f"127.0.0.1:{disp}", out],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            data = open(out, "rb").read() if os.path.exists(out) else b""
            size = None
            i = 2
            while i + 9 < len(data):  # JPEG SOF0 carries the size
                if data[i] != 0xFF:
                    break
                marker, seglen = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
                if marker in (0xC0, 0xC2):
                    size = struct.unpack(">HH", data[i + 5:i + 9])[::-1]
                    break
                i += 2 + seglen
            t.ok(p.returncode == 0 and size == (640, 480), "vncsnapshot takes a 640x480 snapshot",
                 p.stdout.decode(errors="replace")[-1000:])
        else:
            t.skip("vncsnapshot", "vncsnapshot is not installed (tools/install-deps)")

        # 100 connect/disconnect cycles: the resident size stays flat.
        for _ in range(20):
            session(addr).close()
        time.sleep(0.5)
        before = rss_kib(vm.proc.pid)
        start = time.monotonic()
        for _ in range(100):
            session(addr).close()
        t.ok(wait_for(lambda: q.cmd("query-vnc")["return"]["clients"] == [], 5), "all 100 clients are gone")
        after = rss_kib(vm.proc.pid)
        t.diag(f"100 cycles in {time.monotonic() - start:.1f} s, VmRSS {before} -> {after} KiB")
        t.ok(after - before < 2048, f"VmRSS stays flat over 100 connect/disconnect cycles ({before} -> {after} KiB)")
        hostile(vm, addr, q)
        q.close()


def hostile(vm, addr, q):
    # Cut text beyond the 1 MiB cap: the client is dropped, nothing allocated for it.
    c = session(addr)
    c._send(struct.pack(">BxxxI", 6, 64 << 20) + b"x" * 4096)
    t.ok(wait_for(lambda: _closed(c), 5), "a 64 MiB cut-text announcement gets the client disconnected")
    c.close()
    # The same through the Extended Clipboard's negative lengths.
    c = RfbClient.connect(addr)
    c.set_encodings([rfb.RAW, -0x3F5E1A32])  # 0xC0A1E5CE: Extended Clipboard
    time.sleep(0.3)
    c._send(struct.pack(">BxxxiI", 6, -(60 << 20), 1 << 28 | 1) + b"x" * 4096)
    t.ok(wait_for(lambda: _closed(c), 5), "a 60 MiB extended-clipboard message gets the client disconnected")
    c.close()
    # Garbage message types.
    c = session(addr)
    c._send(bytes([0xEE]) + os.urandom(64))
    t.ok(wait_for(lambda: _closed(c), 5), "an unknown message type gets the client disconnected")
    c.close()
    # A QEMU message with an unknown subtype.
    c = session(addr)
    c._send(bytes([255, 7]) + os.urandom(10))
    t.ok(wait_for(lambda: _closed(c), 5), "an unknown QEMU message subtype gets the client disconnected")
    c.close()
    # Random bytes instead of a handshake.
    s = socket.create_connection(addr, timeout=5)
    s.sendall(os.urandom(300))
    t.ok(wait_for(lambda: _closed_sock(s), 5), "garbage instead of a version string is refused")
    s.close()
    # Half a message, then silence: the server gives up on it after a few seconds and serves others meanwhile.
    h = session(addr)
    h._send(bytes([3, 0, 0]))  # 3 of a FramebufferUpdateRequest's 10 bytes
    start = time.monotonic()
    c = session(addr)
    t.eq((c.width, c.height), (640, 480), "a client sending half a message does not stop the others for long")
    t.ok(wait_for(lambda: _closed(h), 10), "the half-message client is dropped",
         f"after {time.monotonic() - start:.1f} s")
    t.diag(f"half-message stall: {time.monotonic() - start:.1f} s")
    c.close()
    h.close()
    # A client that asks for full screens and never reads: dropped once its socket stays full.
    before = rss_kib(vm.proc.pid)
    s = socket.create_connection(addr, timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.recv(12)
    s.sendall(b"RFB 003.008\n")
    s.recv(2)
    s.sendall(b"\x01")
    s.recv(4)
    s.sendall(b"\x01")
    s.sendall(struct.pack(">BxHi", 2, 1, 0))  # Raw only
    req = struct.pack(">BBHHHH", 3, 0, 0, 0, 640, 480)
    # Keep asking for full screens (a request now and then, as a real client would) and never read.
    s.settimeout(1)
    dropped = threading.Event()

    def flood():
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                s.send(req)
            except (socket.timeout, TimeoutError):
                pass
            except OSError:
                dropped.set()
                return
            time.sleep(0.02)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    time.sleep(1)
    # Meanwhile another client is served (after at most the write timeout of the stuck one).
    c = RfbClient.connect(addr, timeout=15)
    c.set_pixel_format_32()
    c.set_encodings([rfb.RAW])
    t.ok(c.refresh(timeout=15) is not None, "another client is still served while one never reads")
    c.close()
    t.ok(wait_for(lambda: len(q.cmd("query-vnc")["return"]["clients"]) == 0, 20),
         "the client that never reads is dropped once its socket stays full")
    flooder.join()
    after = rss_kib(vm.proc.pid)
    t.ok(after - before < 8192, f"a client that never reads does not grow host memory ({before} -> {after} KiB)")
    s.close()
    # At most 64 clients at once.
    socks = []
    for _ in range(64):
        c = RfbClient.connect(addr, timeout=15)
        socks.append(c)
    extra = None
    try:
        extra = RfbClient.connect(addr, timeout=15)
        refused = False
    except (EOFError, OSError, rfb.RfbError):
        refused = True
    t.ok(refused, "the 65th simultaneous client is refused")
    if extra:
        extra.close()
    for c in socks:
        c.close()
    t.ok(wait_for(lambda: q.cmd("query-vnc")["return"]["clients"] == [], 10), "all 64 leave")
    c = session(addr)
    t.eq((c.width, c.height), (640, 480), "after all that the server still answers")
    c.close()
    t.eq(vm.proc.poll(), None, "deskvm is still running")


def _closed(c):
    return _closed_sock(c.sock)


def _closed_sock(s):
    s.settimeout(0.2)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (socket.timeout, TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


class WsSocket:
    """Just enough of a WebSocket client (RFC 6455, binary subprotocol) to carry RFB the way noVNC does; it looks
    like a socket to RfbClient.from_socket."""

    def __init__(self, addr, timeout=10):
        self.s = socket.create_connection(addr, timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET /websockify HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n"
                        "Origin: http://127.0.0.1\r\n\r\n" % (addr[0], addr[1], key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(1)
            if not chunk:
                raise EOFError("no WebSocket handshake reply")
            head += chunk
        self.status = head.split(b"\r\n")[0].decode()
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.accepted = self.status.startswith("HTTP/1.1 101") and accept in head
        self.buf = b""

    def settimeout(self, t):
        self.s.settimeout(t)

    def setsockopt(self, *a):
        pass

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.s.recv(n - len(data))
            if not chunk:
                raise EOFError("WebSocket closed")
            data += chunk
        return data

    def recv(self, n):
        while not self.buf:
            b0, b1 = self._exact(2)
            ln = b1 & 0x7F
            if ln == 126:
                (ln,) = struct.unpack(">H", self._exact(2))
            elif ln == 127:
                (ln,) = struct.unpack(">Q", self._exact(8))
            mask = self._exact(4) if b1 & 0x80 else None
            payload = self._exact(ln)
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            if b0 & 0x0F == 8:
                return b""
            if b0 & 0x0F == 1:  # base64 text frames, if the server chose them
                payload = base64.b64decode(payload)
            self.buf += payload
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def sendall(self, data):
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        self.s.sendall(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(data)))

    def close(self):
        self.s.close()


def test_websocket():
    disp = free_vnc_display()
    ws_port = None
    for _ in range(50):
        cand = random.randint(20000, 40000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", cand))
            ws_port = cand
            break
        except OSError:
            pass
        finally:
            s.close()
    with Deskvm(["--vnc", f"127.0.0.1:{disp},websocket={ws_port}"]) as vm:
        q = vm.qmp()
        for port, what in ((ws_port, "the websocket= port"), (5900 + disp, "the RFB port")):
            ws = WsSocket(("127.0.0.1", port))
            t.ok(ws.accepted, f"{what} answers a WebSocket upgrade (101 with the right accept key)", ws.status)
            c = RfbClient.from_socket(ws)
            c.set_pixel_format_32()
            c.set_encodings([rfb.ZRLE, rfb.RAW])
            rects = c.refresh()
            t.ok(rects and (c.width, c.height) == (640, 480) and all(b == 0 for b in c.fb),
                 f"RFB over WebSocket on {what}: the whole black screen arrives", rects)
            cl = q.cmd("query-vnc")["return"]["clients"]
            t.ok(len(cl) == 1 and cl[0]["websocket"] is True, "query-vnc marks the client as websocket", cl)
            c.close()
            wait_for(lambda: q.cmd("query-vnc")["return"]["clients"] == [], 5)
        # A plain RFB client on the RFB port still works.
        c = session(("127.0.0.1", 5900 + disp))
        cl = q.cmd("query-vnc")["return"]["clients"]
        t.ok((c.width, c.height) == (640, 480) and cl and cl[0]["websocket"] is False,
             "plain RFB on the same port is not taken for WebSocket", cl)
        c.close()
        q.close()


def test_password_unix():
    base = tmpdir()
    path = os.path.join(base, "vnc.sock")
    with Deskvm(["--vnc", f"unix:{path},password=on"]) as vm:
        q = vm.qmp()
        info = q.cmd("query-vnc")["return"]
        t.eq((info["family"], info["auth"], info["host"]), ("unix", "vnc", path), "query-vnc: unix socket, vnc auth")

        def try_auth(pw):
            try:
                c = RfbClient.connect(path, password=pw)
                c.close()
                return True
            except rfb.AuthError:
                return False

        t.ok(not try_auth("anything"), "before set_password nobody gets in")
        try:
            RfbClient.connect(path).close()
            t.ok(False, "a client without a password is refused")
        except rfb.AuthError:
            t.ok(True, "a client without a password is refused")
        t.eq(q.cmd("set_password", {"protocol": "vnc", "password": "s3cret-and-more"}), {"return": {}},
             "set_password with 15 characters")
        t.ok(wait_for(lambda: "uses only the first 8 characters" in vm.log(), 5),
             "a warning says only 8 characters count")
        t.ok(try_auth("s3cret-a"), "the right password (its first 8 characters) gets in over the unix socket")
        t.ok(not try_auth("s3cret-b"), "a wrong password is refused")
        t.eq(q.cmd("expire_password", {"protocol": "vnc", "time": "now"}), {"return": {}}, "expire_password now")
        t.ok(not try_auth("s3cret-a"), "an expired password is refused")
        t.eq(q.cmd("expire_password", {"protocol": "vnc", "time": "never"}), {"return": {}}, "expire_password never")
        t.ok(try_auth("s3cret-a"), "after 'never' it works again")
        t.eq(q.cmd("expire_password", {"protocol": "vnc", "time": "+2"}), {"return": {}}, "expire_password +2")
        t.ok(try_auth("s3cret-a"), "it works before the two seconds pass")
        time.sleep(2.5)
        t.ok(not try_auth("s3cret-a"), "and not after")
        r = q.cmd("expire_password", {"protocol": "vnc", "time": "soon"})
        t.ok("error" in r, "expire_password with a bad time is an error", r)
        r = q.cmd("set_password", {"protocol": "spice", "password": "x"})
        t.ok("error" in r, "set_password for spice is an error", r)
        # As in QEMU, a new password keeps the expiry time: set it back to never.
        q.cmd("set_password", {"protocol": "vnc", "password": "good"})
        t.ok(not try_auth("good"), "a new password does not lift the expiry (QEMU's behaviour)")
        q.cmd("expire_password", {"protocol": "vnc", "time": "never"})
        t.ok(try_auth("good"), "the new password works once the expiry is lifted")
        # Rate limit: after 10 failures within 10 s even the right password waits for the window to end.
        for _ in range(10):
            try_auth("bad")
        t.ok(not try_auth("good"), "after 10 failures in a row authentication is refused for a while")
        t.ok(wait_for(lambda: try_auth("good"), 15, interval=1), "and accepted again once the window passed")
        q.close()
    shutil.rmtree(base, ignore_errors=True)


t.run(test_options, "option checks")
t.run(test_tcp_plain, "tcp server")
t.run(test_websocket, "websockets")
t.run(test_password_unix, "password over a unix socket")
t.done()
