#!/usr/bin/env python3
"""Start-up benchmark on KVM, deskvm vs QEMU 7.2 side by side in one run: the time from exec to the first line a
tiny firmware payload prints on COM1 (its first instructions), and the VMM's memory while the guest idles
(RSS beyond the guest RAM the guest actually touched, which is a few pages here).

Both run the same ROM (tests/payloads/idle.rom) with 64 MiB of RAM and no display:
  deskvm --accel kvm --firmware idle.rom --memory 64M --serial stdio
  qemu-system-x86_64 -accel kvm -machine q35 -bios idle.rom -m 64M -nodefaults -display none -serial stdio
Results go to stdout and, with --write, into docs/PERFORMANCE.md between the bench_kvm_start markers.
"""
import argparse
import os
import select
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import BUILDDIR, DESKVM  # noqa: E402
from benchlib import result_table, write_section  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
ROM = os.path.join(BUILDDIR, "tests", "payloads", "idle.rom")
MARK = b"DESKVM-PAYLOAD: ready"


def command(kind):
    if kind == "deskvm":
        return [DESKVM, "--accel", "kvm", "--firmware", ROM, "--memory", "64M", "--serial", "stdio",
                "--log-level", "error"]
    return [QEMU, "-accel", "kvm", "-machine", "q35", "-bios", ROM, "-m", "64M", "-nodefaults", "-display", "none",
            "-serial", "stdio"]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def one_run(kind):
    t0 = time.perf_counter()
    p = subprocess.Popen(command(kind), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    buf = b""
    first = None
    deadline = t0 + 20
    while time.perf_counter() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if r:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            if MARK in buf:
                first = time.perf_counter() - t0
                break
    rss = hwm = 0
    if first is not None:
        time.sleep(0.3)  # let the VMM settle while the guest idles
        rss = status_kib(p.pid, "VmRSS")
        hwm = status_kib(p.pid, "VmHWM")
    p.kill()
    p.wait()
    p.stdout.close()
    if first is None:
        raise RuntimeError(f"{kind}: the payload never printed (output {buf[:200]!r})")
    return first, rss, hwm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if not QEMU:
        print("bench_kvm_start: qemu-system-x86_64 not found; install it with: tools/install-deps --bench",
              file=sys.stderr)
        return 1
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as e:
        print(f"bench_kvm_start: /dev/kvm: {e.strerror}", file=sys.stderr)
        return 1
    res = {"deskvm": [], "qemu": []}
    for _ in range(args.runs):
        for kind in ("deskvm", "qemu"):  # interleaved, so machine noise hits both alike
            res[kind].append(one_run(kind))
    qver = subprocess.run([QEMU, "--version"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]

    def med(kind, i):
        return statistics.median(r[i] for r in res[kind])

    rows = [
        ("exec to first guest output (median ms)", med("deskvm", 0) * 1000, med("qemu", 0) * 1000),
        ("RSS while the guest idles (MiB)", med("deskvm", 1) / 1024, med("qemu", 1) / 1024),
        ("peak RSS (MiB)", med("deskvm", 2) / 1024, med("qemu", 2) / 1024),
    ]
    text = result_table("bench_kvm_start",
                        f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine (nested KVM); {qver}; "
                        f"{args.runs} interleaved runs each, medians. Ratio > 1 means deskvm is better.",
                        [(label, f"{a:.1f}", f"{b:.1f}", b / a) for label, a, b in rows])
    print(text)
    if args.write:
        write_section("bench_kvm_start", "Start-up on KVM",
                      "The same tiny firmware payload (`tests/payloads/idle.rom`) on both, 64 MiB of RAM, no display: "
                      "the time from `exec` to the payload's first line on COM1, and the VMM's resident memory while "
                      "the guest idles (the guest touches only a few pages, so this is VMM overhead). The goal for "
                      "deskvm is at most 5 ms to the first instruction and at most 5 MiB of RSS beyond guest RAM.",
                      text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
