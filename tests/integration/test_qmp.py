#!/usr/bin/env python3
"""QMP as a QEMU client sees it: greeting, negotiation, every command, events with timestamps, errors that keep the
connection up, framing, several clients, loopback TCP, and limits against misbehaving clients."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import Deskvm, QmpClient, log_port, wait_for  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()


def is_error(reply, klass, desc_part=None):
    e = reply.get("error")
    return isinstance(e, dict) and e.get("class") == klass and (desc_part is None or desc_part in e.get("desc", ""))


def alive(q):
    return q.cmd("query-status").get("return", {}).get("status") in ("running", "paused", "prelaunch")


def check_timestamp(ev):
    ts = ev.get("timestamp", {})
    return (isinstance(ts.get("seconds"), int) and isinstance(ts.get("microseconds"), int)
            and 0 <= ts["microseconds"] < 1000000 and abs(ts["seconds"] - time.time()) < 30)


def test_session():
    with Deskvm() as vm:
        q = vm.qmp(negotiate=False)
        g = q.greeting.get("QMP", {})
        ver = g.get("version", {}).get("qemu", {})
        t.ok(all(isinstance(ver.get(k), int) for k in ("major", "minor", "micro"))
             and isinstance(g.get("version", {}).get("package"), str) and g.get("capabilities") == [],
             "greeting has version.qemu.{major,minor,micro}, package and capabilities", q.greeting)

        r = q.cmd("query-status")
        t.ok(is_error(r, "CommandNotFound", "Expecting capabilities negotiation"),
             "a command before qmp_capabilities is refused", r)
        r = q.cmd("qmp_capabilities", {"enable": "oob"})
        t.ok(is_error(r, "GenericError", "Invalid parameter type for 'enable', expected: array"),
             "qmp_capabilities with a wrong argument type", r)
        r = q.cmd("qmp_capabilities", {"enable": ["oob"]})
        t.ok(is_error(r, "GenericError", "oob"), "qmp_capabilities refuses the oob capability it did not offer", r)
        t.eq(q.cmd("qmp_capabilities", id="neg-1"), {"return": {}, "id": "neg-1"}, "qmp_capabilities negotiates")
        r = q.cmd("qmp_capabilities")
        t.ok(is_error(r, "CommandNotFound", "already complete"), "second qmp_capabilities is refused", r)

        r = q.cmd("query-version")["return"]
        t.ok(r["qemu"] == ver and r["package"] == g["version"]["package"], "query-version matches the greeting", r)
        t.eq(q.cmd("query-status"), {"return": {"status": "running", "singlestep": False, "running": True}},
             "query-status: running")
        names = {c["name"] for c in q.cmd("query-commands")["return"]}
        want = {"qmp_capabilities", "query-version", "query-status", "query-commands", "query-name", "stop", "cont",
                "system_reset", "system_powerdown", "quit"}
        t.ok(want <= names, "query-commands lists every command", sorted(names))
        t.eq(q.cmd("query-name"), {"return": {}}, "query-name without --name is empty")

        t.eq(q.cmd("stop", id=1), {"return": {}, "id": 1}, "stop returns with the id echoed")
        ev = q.wait_event("STOP")
        t.ok(ev is not None and "data" not in ev and check_timestamp(ev), "stop emits STOP with a timestamp", ev)
        t.eq(q.cmd("query-status")["return"], {"status": "paused", "singlestep": False, "running": False},
             "query-status: paused")
        q.cmd("stop")
        t.ok(q.wait_event("STOP", timeout=0.3) is None, "stop while paused emits nothing (as QEMU)")
        t.eq(q.cmd("cont", id={"seq": [1, 2]}), {"return": {}, "id": {"seq": [1, 2]}},
             "cont returns with an object id echoed")
        ev = q.wait_event("RESUME")
        t.ok(ev is not None and check_timestamp(ev), "cont emits RESUME", ev)
        t.eq(q.cmd("query-status")["return"]["status"], "running", "query-status: running again")
        q.cmd("cont")
        t.ok(q.wait_event("RESUME", timeout=0.3) is None, "cont while running emits nothing")

        t.eq(q.cmd("system_reset"), {"return": {}}, "system_reset returns")
        ev = q.wait_event("RESET")
        t.ok(ev is not None and ev.get("data") == {"guest": False, "reason": "host-qmp-system-reset"}
             and check_timestamp(ev), "system_reset emits RESET with guest=false and the reason", ev)
        t.eq(q.cmd("system_powerdown"), {"return": {}}, "system_powerdown returns")
        ev = q.wait_event("POWERDOWN")
        t.ok(ev is not None and check_timestamp(ev), "system_powerdown emits POWERDOWN", ev)

        q.send_raw('{"execute": "quit", "id": "bye"}')
        first = q.recv()
        second = q.recv()
        t.eq(first, {"return": {}, "id": "bye"}, "quit replies first")
        t.ok(second.get("event") == "SHUTDOWN" and second.get("data") == {"guest": False, "reason": "host-qmp-quit"},
             "then SHUTDOWN with reason host-qmp-quit", second)
        try:
            eof = q.sock.recv(1) == b""
        except OSError:
            eof = True
        t.ok(eof, "then the connection closes")
        t.eq(vm.wait(), 0, "deskvm exits 0 after quit")
        t.ok(not os.path.exists(vm.qmp_path), "the QMP socket file is removed on exit")


def test_errors():
    with Deskvm(extra=["--name", "err-vm"]) as vm:
        q = vm.qmp()
        t.eq(q.cmd("query-name"), {"return": {"name": "err-vm"}}, "query-name returns --name")
        cases = [
            ('{"execute": "no-such-command", "id": 5}', "CommandNotFound", "The command no-such-command has not been found",
             5),
            ('{"execute": "stop", "arguments": {"force": true}}', "GenericError", "Parameter 'force' is unexpected",
             None),
            ('{"execute": "stop", "arguments": [1]}', "GenericError", "'arguments' must be an object", None),
            ('{"execute": 42}', "GenericError", "'execute' must be a string", None),
            ('{"arguments": {}}', "GenericError", "lacks member 'execute'", None),
            ('{"execute": "stop", "bogus": 1, "id": "x"}', "GenericError", "member 'bogus' is unexpected", "x"),
            ('{"exec-oob": "stop"}', "GenericError", "oob", None),
            ('{"execute": "stop",,}', "GenericError", "JSON parse error", None),
            ('[1, 2, 3]', "GenericError", "must be a JSON object", None),
            ('"just a string"', "GenericError", "must be a JSON object", None),
            ('}', "GenericError", "JSON parse error", None),
            ('{"execute": "qu\\u0069t-not"}', "CommandNotFound", "qu" "it-not", None),
        ]
        for text, klass, desc, want_id in cases:
            q.send_raw(text)
            r = q.recv_reply()
            t.ok(is_error(r, klass, desc) and r.get("id") == want_id, f"error for {text[:40]!r}", r)
            t.ok(alive(q), f"connection stays usable after {text[:40]!r}")

        # A JSON text over the 1 MiB cap gets one error, then the stream goes on.
        q.send_raw('{"execute": "query-status", "id": "' + "A" * (2 * 1024 * 1024) + '"}')
        r = q.recv_reply()
        t.ok(is_error(r, "GenericError", "too large"), "a 2 MiB message is refused", r)
        t.ok(alive(q), "the connection survives the 2 MiB message")

        q.send_raw("[" * 1000 + "]" * 1000)
        r = q.recv_reply()
        t.ok(is_error(r, "GenericError", "too deep"), "1000 levels of nesting are refused", r)
        t.ok(alive(q), "the connection survives deep nesting")

        # Invalid UTF-8 inside a string.
        q.send_raw(b'{"execute": "query-name", "id": "\xff\xfe"}')
        r = q.recv_reply()
        t.ok("error" in r, "invalid UTF-8 gets an error", r)
        t.ok(alive(q), "the connection survives invalid UTF-8")

        # Framing: two commands in one write, one command split over writes.
        q.send_raw('{"execute":"query-status","id":1}{"execute":"query-name","id":2}\n')
        r1, r2 = q.recv_reply(), q.recv_reply()
        t.ok(r1.get("id") == 1 and r2.get("id") == 2 and r2["return"] == {"name": "err-vm"},
             "two commands in one write get two replies in order", (r1, r2))
        q.send_raw('{"execute": "query-')
        time.sleep(0.1)
        q.send_raw('status", "id": "split"}')
        r = q.recv_reply()
        t.ok(r.get("id") == "split" and r["return"]["status"] == "running", "a command split over writes", r)

        # A client that vanishes mid-message does not disturb the server.
        c = QmpClient(vm.qmp_path)
        c.send_raw('{"execute": "qmp_capabilities"}{"execute": "query-st')
        c.close()
        time.sleep(0.1)
        t.ok(alive(q) and vm.proc.poll() is None, "a client closing mid-message leaves the server up")
        q.cmd("quit")
        vm.wait()


def test_two_clients():
    with Deskvm() as vm:
        a = vm.qmp()
        b = vm.qmp()
        raw = vm.qmp(negotiate=False)  # never negotiates: must not get events
        t.eq(a.cmd("stop"), {"return": {}}, "client A stops the VM")
        ea = a.wait_event("STOP")
        eb = b.wait_event("STOP")
        t.ok(ea is not None and eb is not None and ea["timestamp"] == eb["timestamp"],
             "both negotiated clients get the same STOP event", (ea, eb))
        t.eq(b.cmd("query-status")["return"]["status"], "paused", "client B sees the state A set")
        b.cmd("cont")
        t.ok(a.wait_event("RESUME") is not None, "client A gets the RESUME that B caused")
        raw.sock.settimeout(0.3)
        try:
            data = raw.sock.recv(4096)
        except socket.timeout:
            data = b""
        t.eq(data, b"", "a client that has not negotiated gets no events")
        a.close()
        t.ok(alive(b), "closing client A leaves client B working")
        b.cmd("quit")
        vm.wait()


def test_tcp_and_limits():
    with Deskvm(extra=["--qmp", "tcp:127.0.0.1:0"]) as vm:
        port = wait_for(lambda: log_port(vm.log()))
        t.ok(port, "TCP QMP listener on 127.0.0.1 reports its port", vm.log())
        if port:
            c = QmpClient(tcp=("127.0.0.1", port))
            c.negotiate()
            t.eq(c.cmd("query-status")["return"]["status"], "running", "QMP over loopback TCP works")
            c.close()

        q = vm.qmp()
        extra = [vm.qmp() for _ in range(15)]  # 16 clients now: the cap
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(vm.qmp_path)
        try:
            data = s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            data = b"timeout"
        t.eq(data, b"", "the 17th client is closed without a greeting")
        s.close()
        for c in extra:
            c.close()
        time.sleep(0.2)
        t.ok(alive(q), "the server keeps serving after the client cap was hit")

        # A client that sends but never reads is dropped once its queued replies pass the cap.
        hog = vm.qmp()
        hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        req = b'{"execute":"query-commands"}' * 2000
        dropped = False
        start = time.monotonic()
        try:
            for _ in range(60):
                hog.sock.sendall(req)
                if "does not read its replies" in vm.log():
                    dropped = True
                    break
                if time.monotonic() - start > 30:
                    break
        except OSError:
            dropped = True
        dropped = dropped or wait_for(lambda: "does not read its replies" in vm.log(), timeout=5)
        t.ok(dropped, "a client that never reads its replies is dropped", vm.log()[-2000:])
        t.ok(alive(q), "other clients are unaffected by the dropped one")
        q.cmd("quit")
        vm.wait()


for fn in (test_session, test_errors, test_two_clients, test_tcp_and_limits):
    t.run(fn, fn.__name__)
t.done()
