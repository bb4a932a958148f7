#!/usr/bin/env python3
"""deskvm's process lifecycle: SIGTERM/SIGINT shut down in order (SHUTDOWN event, exit 0, files removed),
--daemonize/--pidfile, --paused (prelaunch), --log-file format, --serial backends, --accel kvm checks."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import DESKVM, Deskvm, QmpClient, run_deskvm, tmpdir, wait_for  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()


def test_signals():
    for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
        with Deskvm() as vm:
            a = vm.qmp()
            b = vm.qmp()
            vm.signal(sig)
            ea = a.wait_event("SHUTDOWN")
            eb = b.wait_event("SHUTDOWN")
            want = {"guest": False, "reason": "host-signal"}
            t.ok(ea is not None and ea.get("data") == want and eb is not None and eb.get("data") == want,
                 f"{name}: every client gets SHUTDOWN with reason host-signal", (ea, eb))
            t.eq(vm.wait(), 0, f"{name}: deskvm exits 0")
            t.ok(not os.path.exists(vm.qmp_path), f"{name}: the QMP socket is removed")
            t.ok("deskvm exiting" in vm.log(), f"{name}: the exit is logged", vm.log())


def test_paused_start():
    with Deskvm(extra=["--paused"]) as vm:
        q = vm.qmp()
        t.eq(q.cmd("query-status")["return"], {"status": "prelaunch", "singlestep": False, "running": False},
             "--paused starts in prelaunch")
        q.cmd("stop")
        t.eq(q.cmd("query-status")["return"]["status"], "prelaunch", "stop in prelaunch changes nothing (as QEMU)")
        q.cmd("cont")
        t.ok(q.wait_event("RESUME") is not None, "cont from prelaunch emits RESUME")
        t.eq(q.cmd("query-status")["return"]["status"], "running", "cont from prelaunch runs the VM")
        q.cmd("quit")
        vm.wait()


def test_log_file():
    with Deskvm(log_level="debug") as vm:
        q = vm.qmp()
        q.cmd("stop")
        q.cmd("quit")
        vm.wait()
        log = vm.log()
        lines = [l for l in log.splitlines() if l]
        pat = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z deskvm\[\d+\] (error|warn|info|debug): .+")
        t.ok(lines and all(pat.match(l) for l in lines), "every log line has a timestamp, pid and level", log)
        t.ok(any("vm: paused" in l for l in lines), "the log records QMP-driven state changes", log)
    with Deskvm(log_level="error") as vm:
        q = vm.qmp()
        q.cmd("quit")
        vm.wait()
        t.eq(vm.log(), "", "--log-level error hides info and warning lines")
    d = tmpdir()
    r = run_deskvm(["--log-file", os.path.join(d, "no", "such", "dir", "x.log")])
    t.ok(r.returncode == 1 and "--log-file" in r.stderr, "an unwritable --log-file is a clear error", r.stderr)


def test_daemonize():
    d = tmpdir()
    sock = os.path.join(d, "qmp.sock")
    pidfile = os.path.join(d, "vm.pid")
    log = os.path.join(d, "vm.log")
    start = time.monotonic()
    r = run_deskvm(["--daemonize", "--pidfile", pidfile, "--qmp", "unix:" + sock, "--log-file", log])
    t.eq(r.returncode, 0, "--daemonize: the parent exits 0 once the VM is set up")
    t.ok(os.path.exists(sock), "--daemonize: the QMP socket exists when the parent returns")
    try:
        pid = int(open(pidfile).read().strip())
    except (OSError, ValueError):
        pid = -1
    alive = pid > 0 and os.path.exists(f"/proc/{pid}")
    t.ok(alive, "--pidfile holds the pid of the running daemon", pid)
    if alive:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        sid = int(fields[3])
        t.eq(sid, pid, "the daemon leads its own session (setsid)")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            t.ok(b"deskvm" in f.read(), "the pid is a deskvm process")

    # A second deskvm with the same pid file must refuse to start.
    r2 = run_deskvm(["--pidfile", pidfile, "--qmp", "unix:" + os.path.join(d, "other.sock")])
    t.ok(r2.returncode == 1 and "locked by another running deskvm" in r2.stderr and str(pid) in r2.stderr,
         "a second deskvm with the same --pidfile is refused", r2.stderr)

    # A second deskvm on the same QMP socket must refuse too (daemonized: the parent reports the failure).
    r3 = run_deskvm(["--daemonize", "--qmp", "unix:" + sock, "--log-file", os.path.join(d, "third.log")])
    t.ok(r3.returncode == 1 and "in use" in r3.stderr, "--daemonize reports a setup failure through the parent",
         r3.stderr)

    if alive:
        q = QmpClient(sock)
        q.negotiate()
        q.cmd("quit")
        gone = wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                        open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z")
        t.ok(gone, "the daemon exits on quit")
        t.ok(wait_for(lambda: not os.path.exists(pidfile)), "the pid file is removed on exit")
    with open(log) as f:
        t.ok("ready" in f.read(), "the daemon logs to --log-file")


def test_serial_backends():
    d = tmpdir()
    out = os.path.join(d, "serial.txt")
    with open(out, "w") as f:
        f.write("old content\n")
    with Deskvm(extra=["--serial", "file:" + out]) as vm:
        # The QMP socket (the harness's readiness signal) may appear before the serial backend is opened.
        t.ok(wait_for(lambda: os.path.exists(out) and os.path.getsize(out) == 0, timeout=5),
             "--serial file: creates/truncates the file")
        vm.qmp().cmd("quit")
        vm.wait()

    ser = os.path.join(d, "serial.sock")
    with Deskvm(extra=["--serial", "unix:" + ser]) as vm:
        ok = wait_for(lambda: os.path.exists(ser))
        t.ok(ok, "--serial unix: creates a listening socket")
        if ok:
            c1 = socket.socket(socket.AF_UNIX)
            c1.connect(ser)
            time.sleep(0.1)
            c2 = socket.socket(socket.AF_UNIX)
            c2.settimeout(5)
            c2.connect(ser)
            msg = c2.recv(200)
            t.ok(b"already has a client" in msg, "--serial unix: a second client is told the port is taken", msg)
            c1.close()
            c2.close()
        vm.qmp().cmd("quit")
        vm.wait()
        t.ok(not os.path.exists(ser), "--serial unix: socket removed on exit")

    # stdio: deskvm keeps reading stdin; EOF on stdin must not end or break it.
    d2 = tmpdir()
    sock = os.path.join(d2, "q.sock")
    p = subprocess.Popen([DESKVM, "--serial", "stdio", "--qmp", "unix:" + sock], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.exists(sock))
        p.stdin.write(b"typed on the console\n")
        p.stdin.close()
        time.sleep(0.2)
        t.ok(p.poll() is None, "--serial stdio: EOF on stdin does not stop deskvm")
        q = QmpClient(sock)
        q.negotiate()
        q.cmd("quit")
        t.eq(p.wait(timeout=10), 0, "--serial stdio: quits cleanly")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


def test_accel():
    r = None
    if os.path.exists("/dev/kvm"):
        d = tmpdir()
        sock = os.path.join(d, "q.sock")
        p = subprocess.Popen([DESKVM, "--accel", "kvm", "--qmp", "unix:" + sock], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ok = wait_for(lambda: os.path.exists(sock) or p.poll() is not None)
        t.ok(ok and p.poll() is None, "--accel kvm starts where /dev/kvm is usable")
        if p.poll() is None:
            q = QmpClient(sock)
            q.negotiate()
            q.cmd("quit")
        p.wait(timeout=10)
        p.stdout.close()
        p.stderr.close()
        # Simulate a host without KVM: an unprivileged user cannot open /dev/kvm only if permissions say so, so
        # instead check the message with an unreadable path is not possible here; skip that half.
        t.skip("--accel kvm without /dev/kvm", "this host has /dev/kvm")
    else:
        r = run_deskvm(["--accel", "kvm"])
        t.ok(r.returncode == 1 and "--accel kvm: /dev/kvm" in r.stderr, "--accel kvm without /dev/kvm is refused",
             r.stderr)
        t.skip("--accel kvm starts where /dev/kvm is usable", "this host has no /dev/kvm")


for fn in (test_signals, test_paused_start, test_log_file, test_daemonize, test_serial_backends, test_accel):
    t.run(fn, fn.__name__)
t.done()
