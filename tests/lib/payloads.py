"""Firmware payloads (tests/payloads/*.rom) run by deskvm on a given accelerator, and the checks every CPU
backend must pass with them: real mode, the climb to long mode, PCI scan, MMIO, ACPI S5, a triple fault that resets,
and QMP stop/cont/system_reset/quit on a running guest."""
import os
import subprocess
import time

from deskvm_harness import BUILDDIR, DESKVM, QmpClient, tmpdir, wait_for

PAYLOADS = os.path.join(BUILDDIR, "tests", "payloads")


def run_payload(name, accel, extra=(), timeout=30):
    """Boots a payload ROM on accel; returns (exit code, serial text, QMP events, log)."""
    d = tmpdir()
    serial = os.path.join(d, "serial.txt")
    sock = os.path.join(d, "qmp.sock")
    log = os.path.join(d, "log.txt")
    # --paused: connect QMP before the payload runs, so no event is missed.
    p = subprocess.Popen([DESKVM, "--accel", accel, "--firmware", os.path.join(PAYLOADS, name + ".rom"),
                          "--memory", "64M", "--serial", "file:" + serial, "--qmp", "unix:" + sock, "--paused",
                          "--log-file", log] + list(extra),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    events = []
    try:
        if not wait_for(lambda: os.path.exists(sock) or p.poll() is not None):
            raise RuntimeError("no QMP socket")
        if p.poll() is None:
            q = QmpClient(sock)
            q.negotiate()
            q.cmd("cont")
            end = time.monotonic() + timeout
            q.sock.settimeout(1)
            while time.monotonic() < end and p.poll() is None:
                try:
                    msg = q.recv()
                except (OSError, EOFError):
                    if p.poll() is not None:
                        break
                    continue
                if "event" in msg:
                    events.append(msg)
                if msg.get("event") == "SHUTDOWN":
                    break
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "timeout"
    finally:
        p.stdout.close()
        p.stderr.close()
    text = open(serial, errors="replace").read() if os.path.exists(serial) else ""
    logtext = open(log, errors="replace").read() if os.path.exists(log) else ""
    return rc, text, events, logtext


def payload_lines(text):
    return [l.strip() for l in text.splitlines() if l.startswith("DESKVM-PAYLOAD:")]



class _Named:
    """Prefixes every check's name with the accelerator, so one TAP stream can hold several backends."""

    def __init__(self, tap, prefix):
        self.tap, self.prefix = tap, prefix

    def ok(self, cond, name, detail=None):
        return self.tap.ok(cond, f"{self.prefix}: {name}", detail)

    def eq(self, got, want, name):
        return self.tap.eq(got, want, f"{self.prefix}: {name}")


def check_payloads(tap, accel):
    """The payload checks, each a TAP line, for one accelerator."""
    t = _Named(tap, accel)
    rc, text, events, log = run_payload("realmode", accel, ["--device", "pci-testdev"])
    out = payload_lines(text)
    t.ok(out[:1] == ["DESKVM-PAYLOAD: real-mode hello"], "real mode: the payload prints from the reset vector", text + log)
    pci = [l for l in out if " pci " in l]
    t.ok(any(l.endswith("1b36:0005") for l in pci), "real mode: PCI scan finds pci-testdev (1b36:0005)", pci)
    t.ok(any(l.startswith("DESKVM-PAYLOAD: pci 00 ") for l in pci), "real mode: PCI scan finds the host bridge at 00.0",
         pci)
    t.ok("DESKVM-PAYLOAD: poweroff" in out and "DESKVM-PAYLOAD: poweroff failed" not in out,
         "real mode: ACPI S5 powers the VM off", text)
    shutdown = [e for e in events if e["event"] == "SHUTDOWN"]
    t.ok(shutdown and shutdown[0].get("data") == {"guest": True, "reason": "guest-shutdown"},
         "real mode: SHUTDOWN event says the guest shut down", events)
    t.eq(rc, 0, "real mode: deskvm exits 0 after the guest powers off")

    rc, text, events, log = run_payload("longmode", accel, ["--device", "pci-testdev"])
    out = payload_lines(text)
    t.ok(out[:2] == ["DESKVM-PAYLOAD: real-mode hello", "DESKVM-PAYLOAD: protected-mode hello"] and
         "DESKVM-PAYLOAD: long-mode hello 0x0000001234567890" in out,
         "long mode: real → protected → long mode, with a 64-bit result", text + log)
    t.ok("DESKVM-PAYLOAD: mmio 54534554 12345678" in out,
         "protected mode: MMIO reads the test device's ID and a scratch register echoes a write", text)
    t.eq(rc, 0, "long mode: powers off and exits 0")

    rc, text, events, log = run_payload("triplefault", accel)
    out = payload_lines(text)
    t.ok(out == ["DESKVM-PAYLOAD: boot 1, triple-faulting", "DESKVM-PAYLOAD: boot 2 after reset, poweroff"],
         "triple fault: the PC resets, firmware runs again and CMOS NVRAM survives", text + log)
    resets = [e for e in events if e["event"] == "RESET"]
    t.ok(len(resets) == 1 and resets[0].get("data") == {"guest": True, "reason": "guest-reset"},
         "triple fault: one RESET event with reason guest-reset", events)
    t.eq(rc, 0, "triple fault: exits 0 after the second boot powers off")

    # QMP on a running guest: stop/cont pause and resume the vCPUs, system_reset resets machine and CPUs (the
    # firmware runs again from the reset vector), quit ends it.
    d = tmpdir()
    serial = os.path.join(d, "serial.txt")
    sock = os.path.join(d, "qmp.sock")
    p = subprocess.Popen([DESKVM, "--accel", accel, "--firmware", os.path.join(PAYLOADS, "idle.rom"), "--memory", "64M",
                          "--serial", "file:" + serial, "--qmp", "unix:" + sock], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = lambda n: open(serial).read().count("DESKVM-PAYLOAD: ready") >= n if os.path.exists(serial) else False
    t.ok(wait_for(lambda: ready(1) and os.path.exists(sock)), "idle payload runs and prints once")
    q = QmpClient(sock)
    q.negotiate()
    q.cmd("stop")
    t.eq(q.cmd("query-status")["return"]["status"], "paused", "stop pauses the vCPUs")
    q.cmd("cont")
    t.eq(q.cmd("query-status")["return"]["status"], "running", "cont resumes them")
    q.cmd("system_reset")
    ev = q.wait_event("RESET")
    t.ok(ev is not None and ev.get("data") == {"guest": False, "reason": "host-qmp-system-reset"},
         "system_reset emits RESET", ev)
    t.ok(wait_for(lambda: ready(2)), "after system_reset the firmware runs again from the reset vector",
         open(serial).read())
    q.cmd("quit")
    t.eq(p.wait(timeout=10), 0, "quit ends the VM cleanly")
