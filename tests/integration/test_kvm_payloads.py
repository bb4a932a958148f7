#!/usr/bin/env python3
"""Tiny firmware payloads run on the KVM backend (`--accel kvm --firmware X.rom`): real mode, the climb to long mode,
PCI enumeration through CF8/CFC, ACPI S5 power-off and a triple fault that resets the PC. They prove the vCPU loop,
port-I/O exits, the UART, the PCI host, the PM block and the reset path on a real accelerator. Skipped with a reason
where /dev/kvm cannot run a VM."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import BUILDDIR, DESKVM, QmpClient, tmpdir, wait_for  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
PAYLOADS = os.path.join(BUILDDIR, "tests", "payloads")


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return None
    except OSError as e:
        return f"/dev/kvm: {e.strerror}"


def run_payload(name, extra=(), timeout=30):
    """Boots a payload ROM; returns (exit code, serial text, QMP events, log)."""
    d = tmpdir()
    serial = os.path.join(d, "serial.txt")
    sock = os.path.join(d, "qmp.sock")
    log = os.path.join(d, "log.txt")
    # --paused: connect QMP before the payload runs, so no event is missed.
    p = subprocess.Popen([DESKVM, "--accel", "kvm", "--firmware", os.path.join(PAYLOADS, name + ".rom"),
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


def lines(text):
    return [l.strip() for l in text.splitlines() if l.startswith("DESKVM-PAYLOAD:")]


why = kvm_usable()
if why:
    for name in ("real mode", "long mode", "triple fault"):
        t.skip(f"{name} payload on KVM", why)
    t.done()

rc, text, events, log = run_payload("realmode", ["--device", "pci-testdev"])
out = lines(text)
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

rc, text, events, log = run_payload("longmode", ["--device", "pci-testdev"])
out = lines(text)
t.ok(out[:2] == ["DESKVM-PAYLOAD: real-mode hello", "DESKVM-PAYLOAD: protected-mode hello"] and
     "DESKVM-PAYLOAD: long-mode hello 0x0000001234567890" in out,
     "long mode: real → protected → long mode, with a 64-bit result", text + log)
t.ok("DESKVM-PAYLOAD: mmio 54534554 12345678" in out,
     "protected mode: MMIO reads the test device's ID and a scratch register echoes a write", text)
t.eq(rc, 0, "long mode: powers off and exits 0")

rc, text, events, log = run_payload("triplefault")
out = lines(text)
t.ok(out == ["DESKVM-PAYLOAD: boot 1, triple-faulting", "DESKVM-PAYLOAD: boot 2 after reset, poweroff"],
     "triple fault: the PC resets, firmware runs again and CMOS NVRAM survives", text + log)
resets = [e for e in events if e["event"] == "RESET"]
t.ok(len(resets) == 1 and resets[0].get("data") == {"guest": True, "reason": "guest-reset"},
     "triple fault: one RESET event with reason guest-reset", events)
t.eq(rc, 0, "triple fault: exits 0 after the second boot powers off")

# QMP on a running KVM guest: stop/cont pause and resume the vCPUs, system_reset resets machine and CPUs (the
# firmware runs again from the reset vector), quit ends it.
d = tmpdir()
serial = os.path.join(d, "serial.txt")
sock = os.path.join(d, "qmp.sock")
p = subprocess.Popen([DESKVM, "--accel", "kvm", "--firmware", os.path.join(PAYLOADS, "idle.rom"), "--memory", "64M",
                      "--serial", "file:" + serial, "--qmp", "unix:" + sock], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ready = lambda n: open(serial).read().count("DESKVM-PAYLOAD: ready") >= n if os.path.exists(serial) else False
t.ok(wait_for(lambda: ready(1) and os.path.exists(sock)), "idle payload runs and prints once")
q = QmpClient(sock)
q.negotiate()
q.cmd("stop")
t.eq(q.cmd("query-status")["return"]["status"], "paused", "stop pauses the KVM vCPUs")
q.cmd("cont")
t.eq(q.cmd("query-status")["return"]["status"], "running", "cont resumes them")
q.cmd("system_reset")
ev = q.wait_event("RESET")
t.ok(ev is not None and ev.get("data") == {"guest": False, "reason": "host-qmp-system-reset"},
     "system_reset emits RESET", ev)
t.ok(wait_for(lambda: ready(2)), "after system_reset the firmware runs again from the reset vector",
     open(serial).read())
q.cmd("quit")
t.eq(p.wait(timeout=10), 0, "quit ends the KVM VM cleanly")

# Bad boot sources are refused with a message naming the file, before any vCPU runs.
notkernel = os.path.join(tmpdir(), "not-a-kernel")
with open(notkernel, "wb") as f:
    f.write(b"just some text, not a kernel\n" * 100)
r = subprocess.run([DESKVM, "--accel", "kvm", "--kernel", notkernel], stdin=subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
t.ok(r.returncode == 1 and notkernel in r.stderr and "not a" in r.stderr.lower(),
     "a file that is not a kernel is refused with its name", r.stderr)
badrom = os.path.join(tmpdir(), "odd.rom")
with open(badrom, "wb") as f:
    f.write(b"\x90" * 1000)
r = subprocess.run([DESKVM, "--accel", "kvm", "--firmware", badrom], stdin=subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
t.ok(r.returncode == 1 and "multiple of 4 KiB" in r.stderr, "a firmware image of odd size is refused", r.stderr)

# --accel auto probes KVM with ring-0 long-mode code Linux needs; it uses KVM only if that works, and says why not.
d = tmpdir()
log = os.path.join(d, "auto.log")
p = subprocess.Popen([DESKVM, "--accel", "auto", "--firmware", os.path.join(PAYLOADS, "idle.rom"), "--memory", "64M",
                      "--log-file", log], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     text=True)
try:
    rc = p.wait(timeout=3)
except subprocess.TimeoutExpired:
    rc = None
    p.terminate()
    p.wait()
err = p.stderr.read()
p.stderr.close()
autolog = open(log).read() if os.path.exists(log) else ""
if rc is None:
    t.ok("accel auto: using KVM" in autolog, "--accel auto chose KVM after its probe passed", autolog)
else:
    t.ok(rc == 1 and "accel auto: not using KVM:" in autolog and "--accel kvm forces KVM" in err,
         "--accel auto refuses a KVM that cannot run guest kernels and says why", f"rc={rc}\n{err}\n{autolog}")

t.done()
