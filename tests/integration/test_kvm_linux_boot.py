#!/usr/bin/env python3
"""The Debian test kernel starts on the KVM backend through deskvm's direct Linux boot: the VMM decompresses the
bzImage's XZ payload itself and enters vmlinux at its 64-bit entry with boot_params, the e820 map, the initrd and
ACPI tables. On this workplace's nested KVM a stock kernel only gets through its early boot (later kernel code is
emulated by the host, slowly), so this test checks what Linux prints in that phase, which is everything the
machine and the loader hand it; a full boot to the shell on KVM is skipped with the reason when it cannot happen."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import DESKVM, build_guest_image, kvm_usable, tmpdir, wait_exit  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()


why = kvm_usable()
if why:
    t.skip("Linux early boot on KVM", why)
    t.done()

build = build_guest_image(timeout=900)
image = build.dir
if not t.ok(image is not None, "the guest image is available", build.err[-2000:]):
    t.done()

d = tmpdir()
serial = os.path.join(d, "serial.txt")
log = os.path.join(d, "log.txt")
cmdline = "console=ttyS0 earlyprintk=serial,ttyS0,115200 deskvm_shell=0"
p = subprocess.Popen([DESKVM, "--accel", "kvm", "--memory", "512M", "--cpus", "2",
                      "--kernel", os.path.join(image, "vmlinuz"), "--initrd", os.path.join(image, "initrd.img"),
                      "--append", cmdline, "--serial", "file:" + serial, "--log-file", log],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def text():
    try:
        with open(serial, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


# The host emulates this nested KVM guest's kernel code slowly (about 30 s of host CPU to the ACPI tables on an
# idle machine); with other tests running beside it, it can take several times that.
deadline = time.monotonic() + 240
while time.monotonic() < deadline and p.poll() is None and "ACPI: MCFG" not in text() and \
        "DESKVM-GUEST: ready" not in text():
    time.sleep(0.2)
out = text()
full_boot = "DESKVM-GUEST: ready" in out
if p.poll() is None:
    p.terminate()
wait_exit(p, 10)
p.stderr.close()
logtext = open(log, errors="replace").read() if os.path.exists(log) else ""

manifest = dict(l.split("=", 1) for l in open(os.path.join(image, "manifest")).read().splitlines() if "=" in l)
kver = manifest.get("kernel_version", "6.1")
t.ok(re.search(r"Linux version " + re.escape(kver), out), f"Linux {kver} starts at its 64-bit entry", out[:3000] + logtext)
t.ok(f"Command line: {cmdline}" in out, "the kernel sees the command line deskvm passed", out[:2000])
t.ok("boot: kernel" in logtext and "xz payload" in logtext and "decompressed by deskvm" in logtext,
     "deskvm decompressed the XZ payload itself", logtext)
e820 = re.findall(r"BIOS-e820: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] (\w+)", out)
want = [("0x0000000000000000", "0x000000000009fbff", "usable"), ("0x000000000009fc00", "0x000000000009ffff", "reserved"),
        ("0x00000000000e0000", "0x00000000000fffff", "reserved"), ("0x0000000000100000", "0x000000001fffffff", "usable"),
        ("0x00000000b0000000", "0x00000000bfffffff", "reserved")]
t.eq(e820, want, "the kernel's e820 map is deskvm's, for 512 MiB")
t.ok("Hypervisor detected: KVM" in out, "the kernel detects KVM through CPUID")
t.ok(re.search(r"RAMDISK: \[mem 0x[0-9a-f]+-0x[0-9a-f]+\]", out), "the kernel finds the initrd", out[:4000])
t.ok("ACPI: RSDP 0x00000000000E0000" in out and "DESKVM" in out, "the kernel finds deskvm's RSDP at 0xE0000")
for table in ("FACP", "DSDT", "APIC", "MCFG"):
    t.ok(f"ACPI: {table} " in out, f"the kernel finds the {table} table", out[-3000:])
if full_boot:
    t.ok(True, "the guest reached its shell on KVM")
else:
    t.skip("the guest reaches its shell on KVM",
           "this host's nested KVM cannot run a stock kernel past early boot at usable speed")
t.done()
