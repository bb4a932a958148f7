#!/usr/bin/env python3
"""Software-CPU benchmark, deskvm's emu vs QEMU 7.2 TCG side by side in one run, with the same Debian bzImage and
initramfs (the project's guest image) and 512 MiB of RAM:
  - boot wall time: exec → the guest's "DESKVM-GUEST: ready" marker, and exec → exit after the guest powers off
    (deskvm_run runs guest-mips, then init powers off);
  - guest integer speed: guest-mips, a fixed loop of 8 integer instructions timed by the guest's own clock (MIPS).
  deskvm --accel emu --kernel vmlinuz --initrd initrd.img --memory 512M --append ...
  qemu-system-x86_64 -accel tcg -m 512M -kernel vmlinuz -initrd initrd.img -append ... -nographic -no-reboot
Results go to stdout and, with --write, into docs/PERFORMANCE.md between the bench_emu_boot markers.
"""
import argparse
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from benchlib import result_table, write_section  # noqa: E402
from deskvm_harness import DESKVM, build_guest_image  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
CMDLINE = 'console=ttyS0 quiet deskvm_run="guest-mips 20000000"'


def command(kind, image):
    kernel, initrd = os.path.join(image, "vmlinuz"), os.path.join(image, "initrd.img")
    if kind == "deskvm":
        return [DESKVM, "--accel", "emu", "--memory", "512M", "--kernel", kernel, "--initrd", initrd,
                "--append", CMDLINE, "--serial", "stdio", "--log-level", "error"]
    return [QEMU, "-accel", "tcg", "-m", "512M", "-kernel", kernel, "-initrd", initrd, "-append", CMDLINE,
            "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio"]


def one_run(kind, image, timeout):
    t0 = time.perf_counter()
    p = subprocess.Popen(command(kind, image), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    buf = b""
    ready = None
    while True:
        left = t0 + timeout - time.perf_counter()
        if left <= 0:
            p.kill()
            break
        r, _, _ = select.select([p.stdout], [], [], min(left, 1.0))
        if r:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            if ready is None and b"DESKVM-GUEST: ready" in buf:
                ready = time.perf_counter() - t0
    rc = p.wait()
    total = time.perf_counter() - t0
    p.stdout.close()
    m = re.search(rb"DESKVM-MIPS: .* mips=([0-9.]+)", buf)
    if ready is None or m is None or rc != 0:
        raise RuntimeError(f"{kind}: boot failed (rc={rc}); output tail: {buf[-500:]!r}")
    return ready, total, float(m.group(1))


def interpreter_speed():
    """MIPS of tests/bench/bench-emu-speed (built with deskvm), or None if it is missing."""
    exe = os.path.join(os.environ.get("DESKVM_BUILDDIR", "."), "tests", "bench", "bench-emu-speed")
    if not os.access(exe, os.X_OK):
        return None
    out = subprocess.run([exe, "3"], stdout=subprocess.PIPE, text=True, timeout=120).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if not QEMU:
        print("bench_emu_boot: qemu-system-x86_64 not found; install it with: tools/install-deps --bench",
              file=sys.stderr)
        return 1
    img = build_guest_image(timeout=900)
    if img.dir is None:
        print(f"bench_emu_boot: no guest image: {img.err[-500:]}", file=sys.stderr)
        return 1
    res = {"deskvm": [], "qemu": []}
    for _ in range(args.runs):
        for kind in ("deskvm", "qemu"):  # interleaved, so machine noise hits both alike
            res[kind].append(one_run(kind, img.dir, args.timeout))
            print(f"{kind}: ready {res[kind][-1][0]:.2f} s, poweroff {res[kind][-1][1]:.2f} s, "
                  f"{res[kind][-1][2]:.0f} MIPS", flush=True)
    qver = subprocess.run([QEMU, "--version"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]

    def med(kind, i):
        return statistics.median(r[i] for r in res[kind])

    rows = [
        ("exec to the guest's /init ready marker (s)", f"{med('deskvm', 0):.2f}", f"{med('qemu', 0):.2f}",
         med("qemu", 0) / med("deskvm", 0)),
        ("exec to exit after guest poweroff (s)", f"{med('deskvm', 1):.2f}", f"{med('qemu', 1):.2f}",
         med("qemu", 1) / med("deskvm", 1)),
        ("guest integer loop (MIPS)", f"{med('deskvm', 2):.0f}", f"{med('qemu', 2):.0f}",
         med("deskvm", 2) / med("qemu", 2)),
    ]
    summary = (f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine; deskvm --accel emu against "
               f"{qver} with -accel tcg; {args.runs} interleaved runs each, medians. Ratio > 1 means deskvm is "
               "better.")
    speed = interpreter_speed()
    if speed:
        summary += (f" The interpreter alone (tests/bench/bench-emu-speed, 64-bit kernel mode, no machine around "
                    f"it): the same integer loop at {speed['integer-loop-mips']:.0f} MIPS, the compiled C workload "
                    f"of the differential tests at {speed['compiled-workload-mips']:.0f} MIPS.")
    text = result_table("bench_emu_boot", summary, rows)
    print(text)
    if args.write:
        write_section("bench_emu_boot", "Software CPU: boot and guest speed",
                      "The Debian guest image (bzImage + busybox initramfs), 512 MiB, one vCPU, on deskvm's "
                      "software CPU and on QEMU's TCG: wall time from `exec` to /init's ready marker and to the "
                      "process exit after the guest powers off, and the guest's own measurement of a fixed integer "
                      "loop (`guest-mips`). Goals from the issue: at least 200 MIPS and a boot no slower than QEMU "
                      "TCG's; slower than 2x is a defect to profile.", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
