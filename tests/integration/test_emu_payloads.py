#!/usr/bin/env python3
"""The firmware payloads that run on KVM, run on deskvm's software CPU (`--accel emu`): real mode from the reset
vector, the climb to long mode with paging, PCI scan, MMIO, ACPI S5, a triple fault that resets the PC, and QMP
stop/cont/system_reset/quit on a running guest. Also: `--accel auto` falls back to the software CPU, saying why,
when KVM cannot run guest kernels."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import DESKVM, tmpdir, wait_for  # noqa: E402
from payloads import PAYLOADS, check_payloads  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
check_payloads(t, "emu")

d = tmpdir()
log = os.path.join(d, "auto.log")
serial = os.path.join(d, "serial.txt")
p = subprocess.Popen([DESKVM, "--accel", "auto", "--firmware", os.path.join(PAYLOADS, "idle.rom"), "--memory", "64M",
                      "--serial", "file:" + serial, "--log-file", log], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ran = wait_for(lambda: os.path.exists(serial) and "DESKVM-PAYLOAD: ready" in open(serial).read(), timeout=10)
p.terminate()
p.wait(timeout=10)
autolog = open(log).read() if os.path.exists(log) else ""
if "accel auto: using KVM" in autolog:
    t.ok(ran, "--accel auto chose KVM (its probe passed) and the payload ran", autolog)
else:
    t.ok(ran and "accel auto: using the software CPU (emu), not KVM:" in autolog,
         "--accel auto falls back to the software CPU, says why, and the payload runs", autolog)

# --trace-cpu: level 1 logs exceptions (the triple-fault payload's #UD), level 2 every instruction from the reset
# vector on.
def traced(rom, level):
    r = subprocess.run([DESKVM, "--accel", "emu", "--firmware", os.path.join(PAYLOADS, rom), "--memory", "64M",
                        "--serial", "none", "--trace-cpu", str(level)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60)
    return r.returncode, r.stderr


rc, err = traced("triplefault.rom", 1)
t.ok(rc == 0 and re.search(r"emu cpu0: exception 6, error code 0x0, at 0008:", err)
     and "emu cpu0: f000:" not in err, "--trace-cpu 1 logs the #UD that starts the triple fault, no instructions",
     err[-2000:])
rc, err = traced("realmode.rom", 2)
t.ok(rc == 0 and "emu cpu0: f000:000000000000fff0 JMPF (5 bytes)" in err and
     "emu cpu0: f000:0000000000000000 CLI (1 bytes)" in err, "--trace-cpu 2 logs every instruction from the reset vector",
     err[:2000])
t.done()
