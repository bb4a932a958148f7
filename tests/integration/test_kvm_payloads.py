#!/usr/bin/env python3
"""Tiny firmware payloads run on the KVM backend (`--accel kvm --firmware X.rom`): real mode, the climb to long mode,
PCI enumeration through CF8/CFC, ACPI S5 power-off and a triple fault that resets the PC. They prove the vCPU loop,
port-I/O exits, the UART, the PCI host, the PM block and the reset path on a real accelerator. Skipped with a reason
where /dev/kvm cannot run a VM. (`--accel auto`, which probes KVM, is checked in test_emu_payloads.py.)"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import DESKVM, kvm_usable, tmpdir  # noqa: E402
from payloads import PAYLOADS, check_payloads  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()


why = kvm_usable()
if why:
    for name in ("real mode", "long mode", "triple fault"):
        t.skip(f"{name} payload on KVM", why)
    t.done()

check_payloads(t, "kvm")

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

t.done()
