#!/usr/bin/env python3
"""SPICE over TLS: a throw-away CA and server certificate (openssl) in x509-dir, deskvm with
`--spice tls-port=N,x509-dir=DIR` only (no plain port) on the test accelerator with a virtio-gpu display, and
spice-gtk's client library trusting that CA: the client gets the 640x480 primary surface over TLS, query-spice and
SPICE_INITIALIZED say tls, a client that does not trust the CA is refused, and a missing certificate file stops
deskvm at startup with a message naming it."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import DESKVM, QmpClient, free_port, tmpdir  # noqa: E402
from qtest import QtestMachine  # noqa: E402
from spice_import import import_spice_client  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
sc = import_spice_client(t)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d):
    """ca-cert.pem, server-cert.pem (CN and SAN 127.0.0.1, signed by the CA), server-key.pem, as QEMU expects."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=deskvm test CA",
            "-keyout", "ca-key.pem", "-out", "ca-cert.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server-key.pem",
            "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server-cert.pem", cwd=d)


def tls_client(port, ca_file):
    c = sc.SpiceClient("127.0.0.1", 1)
    c.session.set_property("port", None)
    c.session.set_property("tls-port", str(port))
    c.session.set_property("ca-file", ca_file)
    return c


def main():
    if not shutil.which("openssl"):
        t.skip("SPICE over TLS", "openssl is not installed")
        return
    d = tmpdir()
    pki = os.path.join(d, "pki")
    os.mkdir(pki)
    make_pki(pki)
    port = free_port()
    with QtestMachine(extra=["--display", "virtio-gpu",
                             "--spice", f"tls-port={port},x509-dir={pki},disable-ticketing=on"]) as vm:
        q = QmpClient(vm.qmp_path)
        q.negotiate()
        info = q.cmd("query-spice").get("return", {})
        t.ok(info.get("tls-port") == port and "port" not in info, "query-spice: the TLS port and no plain port",
             info)
        c = tls_client(port, os.path.join(pki, "ca-cert.pem"))
        try:
            c.connect(30)
            s = c.wait_surface(640, 480, 30)
            t.ok(s is not None and s.rows()[0][:6] == bytes(6), "over TLS the client gets the black 640x480 surface of "
                 "a display the guest has not set up", str(c.surface and (c.surface.width, c.surface.height)))
            chans = q.cmd("query-spice").get("return", {}).get("channels", [])
            t.ok(chans and all(ch.get("tls") is True for ch in chans), "query-spice: every channel is TLS", chans)
            ev = q.wait_event("SPICE_INITIALIZED", 5)
            t.ok(ev is not None and ev["data"]["client"].get("tls") is True, "SPICE_INITIALIZED says tls", ev)
        finally:
            c.close()

        # A client with another CA must not get in.
        other = os.path.join(d, "other")
        os.mkdir(other)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=someone else",
                "-keyout", "ca-key.pem", "-out", "ca-cert.pem", cwd=other)
        c = tls_client(port, os.path.join(other, "ca-cert.pem"))
        try:
            try:
                c.connect(15)
                ok = False
                detail = "connected"
            except sc.SpiceError as e:
                ok, detail = True, str(e)
            t.ok(ok and c.surface is None, "a client that does not trust the server's CA is refused", detail)
        finally:
            c.close()
        q.close()

    os.unlink(os.path.join(pki, "server-key.pem"))
    r = subprocess.run([DESKVM, "--accel", "qtest", "--qtest", "unix:" + os.path.join(d, "qt.sock"),
                        "--spice", f"tls-port={port},x509-dir={pki}"], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 1 and "server-key.pem" in r.stderr, "a missing server-key.pem stops deskvm, naming the file",
         (r.returncode, r.stderr[-500:]))
    shutil.rmtree(d, ignore_errors=True)


t.run(main, "SPICE over TLS")
t.done()
