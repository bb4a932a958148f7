#!/usr/bin/env python3
"""The SPICE server without a guest, through spice-gtk's client library (tests/lib/spice_client.py): --spice's
option checks, a client without a ticket (disable-ticketing=on), ticketing (refused until QMP set_password, a wrong
password refused, the right one accepted, expire_password refusing new connections), the password= option,
query-spice with the client's channels, the SPICE_CONNECTED / SPICE_INITIALIZED / SPICE_DISCONNECTED events, a unix
socket listener, and that repeated connections leave the resident size flat.
DESKVM_SPICE_TEST_SERVER=qemu runs the same checks against QEMU (to check the test itself)."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from deskvm_harness import run_deskvm  # noqa: E402
from spice_import import import_spice_client  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
sc = import_spice_client(t)

KIND = sc.target_kind()
MAIN, DISPLAY, INPUTS, CURSOR = 1, 2, 3, 4


def events(q, name, timeout=5.0):
    """Every queued QMP event called NAME, after waiting up to TIMEOUT s for the first."""
    first = q.wait_event(name, timeout)
    if first is None:
        return []
    out = [first]
    q.cmd("query-status")  # flush what arrived meanwhile into q.events
    while True:
        ev = q.wait_event(name, 0.3)
        if ev is None:
            return out
        out.append(ev)


def test_options():
    if KIND != "deskvm":
        return
    r = run_deskvm(["--spice", "port=5999,addr=0.0.0.0,disable-ticketing=on"])
    t.ok(r.returncode == 2 and "loopback" in r.stderr, "--spice disable-ticketing on a non-loopback address is "
         "refused at startup (exit 2) and says why", r.stderr)
    r = run_deskvm(["--spice", "port=70000"])
    t.ok(r.returncode == 2 and "--spice" in r.stderr, "a bad port is refused, naming --spice", r.stderr)
    r = run_deskvm(["--spice", "port=5999,bogus=1"])
    t.ok(r.returncode == 2 and "bogus" in r.stderr, "an unknown parameter is refused, naming it", r.stderr)
    r = run_deskvm(["--spice", "port=5999,password=" + "x" * 61])
    t.ok(r.returncode == 2 and "60" in r.stderr, "a password longer than SPICE's 60 characters is refused",
         r.stderr)


def test_no_ticket():
    with sc.SpiceVm(KIND, "disable-ticketing=on", display=None, devices=()) as vm:
        q = vm.qmp()
        info = q.cmd("query-spice").get("return", {})
        t.ok(info.get("enabled") is True and info.get("auth") == "none" and info.get("port") == vm.port and
             info.get("host") == "127.0.0.1" and info.get("channels") == [],
             "query-spice: enabled, no auth, our port, no channels before a client", info)
        c = vm.client()
        opened = c.wait_channels(("main", "inputs"), 15)
        t.ok(opened, "a client without a password gets the main and inputs channels", c.events)
        time.sleep(0.3)
        info = q.cmd("query-spice").get("return", {})
        chans = info.get("channels", [])
        types = sorted(ch.get("channel-type") for ch in chans)
        t.ok(MAIN in types and INPUTS in types and all(ch.get("host") == "127.0.0.1" and ch.get("family") == "ipv4"
                                                       and ch.get("tls") is False for ch in chans),
             "query-spice lists the client's main and inputs channels from 127.0.0.1 without TLS", info)
        t.ok(info.get("mouse-mode") == "server" and c.get_mouse_mode() == sc.MOUSE_MODE_SERVER,
             "without a display or tablet the mouse mode is server (query-spice and the client agree)",
             (info.get("mouse-mode"), c.get_mouse_mode()))
        c.request_mouse_mode(sc.MOUSE_MODE_CLIENT)
        sc.pump(None, 0.5)
        t.eq(c.get_mouse_mode(), sc.MOUSE_MODE_SERVER, "a client's request for client mode is refused there")
        conn_ids = {ch.get("connection-id") for ch in chans}
        t.ok(len(conn_ids) == 1, "all of the client's channels share one connection id", chans)
        connected = events(q, "SPICE_CONNECTED")
        initialized = events(q, "SPICE_INITIALIZED")
        t.ok(len(connected) >= 2 and all(e["data"]["server"]["port"] == str(vm.port) and
                                         e["data"]["client"]["host"] == "127.0.0.1" for e in connected),
             "SPICE_CONNECTED for each channel, with the server's port and the client's address", connected)
        init_types = sorted(e["data"]["client"].get("channel-type") for e in initialized)
        t.ok(MAIN in init_types and INPUTS in init_types and
             all(e["data"]["server"].get("auth") == "none" for e in initialized),
             "SPICE_INITIALIZED for the main and inputs channels, auth none", initialized)
        client_ports = {e["data"]["client"]["port"] for e in connected}
        c.close()
        gone = events(q, "SPICE_DISCONNECTED", timeout=10)
        t.ok(len(gone) >= 2 and {e["data"]["client"]["port"] for e in gone} <= client_ports,
             "SPICE_DISCONNECTED for the client's channels once it leaves", gone)
        time.sleep(0.3)
        t.eq(q.cmd("query-spice").get("return", {}).get("channels"), [], "query-spice: no channels after it left")

        # Connect / disconnect cycles: the resident size stays flat.
        for _ in range(5):
            sc.SpiceClient.open(vm.host, vm.port).close()
        time.sleep(0.5)
        before = vm.rss_kib()
        start = time.monotonic()
        for _ in range(30):
            c = sc.SpiceClient.open(vm.host, vm.port)
            c.wait_channels(("main", "inputs"), 10)
            c.close()
        time.sleep(0.5)
        after = vm.rss_kib()
        t.diag(f"30 cycles in {time.monotonic() - start:.1f} s: VmRSS {before} -> {after} KiB")
        t.ok(after - before < 3072, f"VmRSS stays flat over 30 connect/disconnect cycles ({before} -> {after} KiB)")
        t.ok(vm.proc.poll() is None, "the server still runs after the cycles", vm.stderr()[-1500:])
        q.close()


def test_ticketing():
    with sc.SpiceVm(KIND, "", display=None, devices=()) as vm:
        q = vm.qmp()
        t.eq(q.cmd("query-spice").get("return", {}).get("auth"), "spice", "query-spice: auth spice (ticketing)")
        t.eq(sc.try_connect(vm.host, vm.port, None), "error-auth",
             "with ticketing and no password set yet, a client is refused with an auth error")
        t.eq(sc.try_connect(vm.host, vm.port, "anything"), "error-auth", "any password is refused before set_password")
        r = q.cmd("set_password", {"protocol": "spice", "password": "s3cret"})
        t.eq(r, {"return": {}}, "QMP set_password protocol spice")
        t.eq(sc.try_connect(vm.host, vm.port, "wrong"), "error-auth", "a wrong password is refused")
        t.eq(sc.try_connect(vm.host, vm.port, ""), "error-auth", "an empty password is refused")
        c = sc.SpiceClient(vm.host, vm.port, "s3cret")
        try:
            c.connect(30)
            ok = c.wait_channels(("main", "inputs"), 15)
        except sc.SpiceError as e:
            ok = str(e)
        t.ok(ok is True, "the right password is accepted (main and inputs channels open)", ok)
        initialized = events(q, "SPICE_INITIALIZED")
        t.ok(initialized and all(e["data"]["server"].get("auth") == "spice" for e in initialized),
             "SPICE_INITIALIZED says auth spice", initialized)
        r = q.cmd("expire_password", {"protocol": "spice", "time": "now"})
        t.eq(r, {"return": {}}, "QMP expire_password protocol spice time now")
        t.eq(sc.try_connect(vm.host, vm.port, "s3cret"), "error-auth",
             "after expire_password now the old password opens no new connection")
        t.ok(not c.disconnected and c.channel_opened("main"), "the client already connected stays connected")
        c.close()
        # As in QEMU, an expiry stays until expire_password never (set_password keeps it).
        r = q.cmd("expire_password", {"protocol": "spice", "time": "never"})
        t.eq(r, {"return": {}}, "expire_password time never")
        r = q.cmd("set_password", {"protocol": "spice", "password": "n3w"})
        t.eq(r, {"return": {}}, "set_password again")
        t.eq(sc.try_connect(vm.host, vm.port, "n3w"), "opened", "the new password is accepted")
        # connected=fail refuses while a client is attached; connected=disconnect drops it.
        c = sc.SpiceClient.open(vm.host, vm.port, "n3w")
        c.wait_channels(("main", "inputs"), 15)
        r = q.cmd("set_password", {"protocol": "spice", "password": "n4w", "connected": "fail"})
        t.ok("error" in r, "set_password connected=fail is refused while a client is connected", r)
        t.eq(sc.try_connect(vm.host, vm.port, "n3w"), "opened", "and the old password still works")
        c.close()
        c = sc.SpiceClient.open(vm.host, vm.port, "n3w")
        c.wait_channels(("main", "inputs"), 15)
        r = q.cmd("set_password", {"protocol": "spice", "password": "n3w", "connected": "disconnect"})
        t.eq(r, {"return": {}}, "set_password connected=disconnect")
        gone = sc.pump(lambda: any(e[1] == "main" and e[3] in ("closed", "error-io", "error-link") for e in c.events)
                       or not c.channels, 10)
        t.ok(gone, "connected=disconnect drops the connected client", c.events)
        c.close()
        r = q.cmd("expire_password", {"protocol": "spice", "time": "+1"})
        t.eq(r, {"return": {}}, "expire_password time +1")
        time.sleep(2.5)
        t.eq(sc.try_connect(vm.host, vm.port, "n3w"), "error-auth", "a password expired after one second is refused")
        if KIND == "deskvm":  # QEMU passes it on and spice-server cuts it
            r = q.cmd("set_password", {"protocol": "spice", "password": "x" * 61})
            t.ok("error" in r, "set_password refuses a password longer than 60 characters", r)
        r = q.cmd("set_password", {"protocol": "nope", "password": "x"})
        t.ok("error" in r, "set_password refuses an unknown protocol", r)
        q.close()


def test_password_option():
    if KIND != "deskvm":
        return
    with sc.SpiceVm(KIND, "password=pw1", display=None, devices=()) as vm:
        t.eq(sc.try_connect(vm.host, vm.port, "pw2"), "error-auth", "password=: a wrong password is refused")
        t.eq(sc.try_connect(vm.host, vm.port, "pw1"), "opened", "password=: the given password is accepted")


def test_unix():
    with sc.SpiceVm(KIND, "disable-ticketing=on", display=None, devices=(), unix=True) as vm:
        c = sc.SpiceClient.open(vm.unix_path, None)
        t.ok(c.wait_channels(("main", "inputs"), 15), "a client connects over the unix socket", c.events)
        if KIND == "deskvm":
            q = vm.qmp()
            info = q.cmd("query-spice").get("return", {})
            q.close()
            chans = info.get("channels", [])
            t.ok(info.get("host") == vm.unix_path and chans and all(ch.get("family") == "unix" for ch in chans),
                 "query-spice: the socket path, and the client's channels as family unix", info)
        c.close()


def main():
    if KIND == "deskvm" and not sc.deskvm_has_spice():
        t.skip("SPICE", "this deskvm has no --spice (built without libspice-server-dev?)")
        return
    if KIND == "qemu" and not sc.QEMU:
        t.skip("SPICE", "qemu-system-x86_64 is missing")
        return
    t.diag(f"server: {KIND}")
    t.run(test_options, "options")
    t.run(test_no_ticket, "no ticket")
    t.run(test_ticketing, "ticketing")
    t.run(test_password_option, "password option")
    t.run(test_unix, "unix socket")


t.run(main, "SPICE server")
t.done()
