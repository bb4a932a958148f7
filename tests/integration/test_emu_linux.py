#!/usr/bin/env python3
"""Debian's kernel and the project's busybox guest on deskvm's software CPU (`--accel emu`), end to end as a user
sees it on the serial console: the bzImage boots (payload decompressed by deskvm) to /init, loads every module of the
image, runs guest programs, and `poweroff` ends deskvm with exit code 0; the interactive shell takes typed
commands; two vCPUs come up; a plain vmlinux ELF boots too. The kernel log must be free of the warnings that point at CPU or timer
emulation bugs."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import (SerialSocket, build_guest_image, guest_command, read_manifest, read_text,  # noqa: E402
                            tmpdir, wait_exit, wait_for)
from tap import Tap  # noqa: E402

t = Tap()
BOOT_TIMEOUT = 240  # seconds; a boot takes ~25 s here

img = build_guest_image(timeout=900)
if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
    t.done()
image = img.dir
manifest = read_manifest(os.path.join(image, "manifest"))


def boot(cmdline, kernel=None, serial=None, extra=()):
    d = tmpdir()
    out = serial or "file:" + os.path.join(d, "serial.txt")
    log = os.path.join(d, "log.txt")
    args = guest_command(image, cmdline, out, log, kernel=kernel, extra=extra)
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return p, d, log


def finish(p, timeout):
    start = time.monotonic()
    rc = wait_exit(p, timeout)
    p.stderr.close()
    return rc, time.monotonic() - start


# 1. Boot, load every module, run guest programs, power off.
run = "guest-sysinfo; echo emu-says-$((6*7))"
p, d, log = boot(f'console=ttyS0 deskvm_modules=all deskvm_run="{run}"')
rc, secs = finish(p, BOOT_TIMEOUT)
out = read_text(os.path.join(d, "serial.txt"))
logtext = read_text(log)
t.diag(f"boot + modules + run + poweroff on emu: {secs:.1f} s")
t.ok(f"Linux version {manifest.get('kernel_version', '')}" in out, "the kernel starts on the software CPU",
     out[:2000] + logtext[-2000:])
t.ok("Run /init as init process" in out, "it reaches /init", out[-3000:])
loaded = re.findall(r"DESKVM-GUEST: module-loaded (\S+)", out)
failed = re.findall(r"DESKVM-GUEST: module-failed (\S+)", out)
want = len([l for l in manifest.get("modules", "").split(",") if l]) or 10
t.ok(len(loaded) >= min(want, 10) and not failed, f"modules load ({len(loaded)} loaded, {len(failed)} failed)",
     out[-3000:])
t.ok("DESKVM-SYSINFO: cpus_online=1" in out and re.search(r"DESKVM-SYSINFO: mem_total_kb=\d+", out)
     and "DESKVM-SYSINFO: pci=0000:00:00.0 1b36:0008" in out, "guest-sysinfo sees 1 CPU, its RAM and the host bridge",
     out[-3000:])
t.ok("emu-says-42" in out and "DESKVM-GUEST: run-exit 0" in out, "a command runs in the guest and exits 0",
     out[-2000:])
t.eq(rc, 0, "poweroff in the guest ends deskvm with exit code 0")
t.ok("acpi: guest entered S5" in logtext, "the power-off went through ACPI S5", logtext[-1500:])
for bad in ("unchecked MSR access", "clocksource tsc unstable", "APIC frequency too slow", "WARNING:", "BUG:",
            "Call Trace:", "emu: vCPU"):
    t.ok(bad not in out and bad not in logtext, f"no '{bad}' in the kernel or deskvm log",
         "\n".join(l for l in (out + logtext).splitlines() if bad in l)[:2000])

# 2. The interactive shell on a unix-socket serial port: type commands, read answers, exit.
sock_dir = tmpdir()
sock_path = os.path.join(sock_dir, "serial.sock")
p, d, log = boot("console=ttyS0 quiet", serial="unix:" + sock_path)
s = None
try:
    if wait_for(lambda: os.path.exists(sock_path), timeout=10):
        s = SerialSocket(sock_path)
        shell = s.wait_text(b"DESKVM-GUEST: shell-begin", BOOT_TIMEOUT)
        t.ok(shell, "the guest offers a shell on the serial console", s.tail(2000))
        time.sleep(0.5)
        s.sendall(b"echo typed-$((1000+337))\n")
        t.ok(s.wait_text(b"typed-1337", 30), "a command typed on the console runs and answers", s.tail(1000))
        s.sendall(b"uname -m; cat /proc/cpuinfo | grep -c ^processor\n")
        t.ok(s.wait_text(b"x86_64", 30), "uname -m says x86_64", s.tail(1000))
        s.sendall(b"exit 5\n")
        t.ok(s.wait_text(b"DESKVM-GUEST: shell-exit 5", 30), "exit leaves the shell with its status", s.tail(1000))
    else:
        t.ok(False, "the serial socket appears")
finally:
    if s:
        s.close()
rc, secs = finish(p, 60)
t.eq(rc, 0, "leaving the shell powers the guest off and deskvm exits 0")

# 3. SMP: two vCPUs, each a host thread running the interpreter; the APs start through INIT/SIPI.
p, d, log = boot('console=ttyS0 quiet deskvm_run="guest-sysinfo"', extra=["--cpus", "2"])
rc, secs = finish(p, BOOT_TIMEOUT)
out = read_text(os.path.join(d, "serial.txt"))
t.ok("DESKVM-SYSINFO: cpus_online=2" in out and rc == 0, "with --cpus 2 both CPUs come online and the guest powers off",
     out[-2000:] + read_text(log)[-1000:])

# 4. A plain vmlinux ELF (deskvm's own decompressed copy of the bzImage payload, from its cache).
cache = os.path.join(os.environ.get("DESKVM_CACHE", os.path.expanduser("~/.cache/deskvm")), "vmlinux")
vmlinux = None
if os.path.isdir(cache):
    files = [os.path.join(cache, f) for f in os.listdir(cache)]
    files = [f for f in files if os.path.isfile(f) and open(f, "rb").read(4) == b"\x7fELF"]
    if files:
        vmlinux = max(files, key=os.path.getmtime)
if vmlinux:
    p, d, log = boot('console=ttyS0 quiet deskvm_run="echo elf-boot-ok"', kernel=vmlinux)
    rc, secs = finish(p, BOOT_TIMEOUT)
    out = read_text(os.path.join(d, "serial.txt"))
    t.ok("elf-boot-ok" in out and rc == 0, "a vmlinux ELF boots on emu, runs a command and powers off",
         out[-2000:] + read_text(log)[-1000:])
else:
    t.ok(False, "deskvm cached the decompressed vmlinux during the first boot", cache)
t.done()
