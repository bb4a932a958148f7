#!/usr/bin/env python3
"""Control-plane benchmark, deskvm vs QEMU 7.2 side by side in one run: time from exec to the QMP greeting,
QMP round-trip latency and throughput (query-status), and the resident memory of an idle process.

QEMU runs as `qemu-system-x86_64 -machine none -accel tcg -nodefaults -display none -qmp unix:...` (no guest, as
deskvm has none yet), so both measure process start-up and the QMP path only. Results go to stdout and, with
--write, into docs/PERFORMANCE.md between the bench_qmp markers.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import DESKVM  # noqa: E402
from benchlib import result_table, write_section  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")


def start(kind, sock):
    if kind == "deskvm":
        cmd = [DESKVM, "--log-level", "error", "--qmp", f"unix:{sock}"]
    else:
        cmd = [QEMU, "-machine", "none", "-accel", "tcg", "-nodefaults", "-display", "none",
               "-qmp", f"unix:{sock},server=on,wait=off"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = socket.socket(socket.AF_UNIX)
    while True:
        try:
            s.connect(sock)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if p.poll() is not None:
                raise RuntimeError(f"{kind} exited with {p.returncode}")
            time.sleep(0.0005)
    f = s.makefile("rwb", buffering=0)
    f.readline()
    startup = time.perf_counter() - t0
    return p, s, f, startup


def cmd(f, name):
    f.write(json.dumps({"execute": name}).encode() + b"\n")
    while True:
        msg = json.loads(f.readline())
        if "event" not in msg:
            return msg


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(kind, starts, calls):
    d = tempfile.mkdtemp(prefix="dvm-bench-")
    startups, rtts, rss = [], [], []
    throughput = []
    try:
        for i in range(starts):
            sock = os.path.join(d, f"{kind}-{i}.sock")
            p, s, f, st = start(kind, sock)
            startups.append(st)
            cmd(f, "qmp_capabilities")
            if i == 0:
                for _ in range(calls):
                    t0 = time.perf_counter()
                    cmd(f, "query-status")
                    rtts.append(time.perf_counter() - t0)
                # Pipelined: send a batch, then read all replies.
                batch = b'{"execute":"query-status"}\n' * calls
                t0 = time.perf_counter()
                f.write(batch)
                for _ in range(calls):
                    f.readline()
                throughput.append(calls / (time.perf_counter() - t0))
            time.sleep(0.2)
            rss.append(rss_kib(p.pid))
            cmd(f, "quit")
            p.wait(timeout=10)
            s.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {
        "startup_ms": statistics.median(startups) * 1000,
        "rtt_us": statistics.median(rtts) * 1e6,
        "rtt_p99_us": sorted(rtts)[int(len(rtts) * 0.99) - 1] * 1e6,
        "pipelined_per_s": throughput[0],
        "rss_kib": statistics.median(rss),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=10)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--write", action="store_true", help="update docs/PERFORMANCE.md")
    args = ap.parse_args()
    if not QEMU:
        print("bench_qmp: qemu-system-x86_64 not found; install it with: tools/install-deps --bench", file=sys.stderr)
        return 1
    qver = subprocess.run([QEMU, "--version"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]
    res = {}
    # Interleave the two so machine noise hits both alike.
    res["deskvm"] = measure("deskvm", args.starts, args.calls)
    res["qemu"] = measure("qemu", args.starts, args.calls)
    rows = [
        ("start-up to QMP greeting (median ms)", "startup_ms", "{:.1f}", False),
        ("query-status round trip (median µs)", "rtt_us", "{:.0f}", False),
        ("query-status round trip (p99 µs)", "rtt_p99_us", "{:.0f}", False),
        ("pipelined query-status (replies/s)", "pipelined_per_s", "{:.0f}", True),
        ("idle RSS (KiB)", "rss_kib", "{:.0f}", False),
    ]
    table = []
    for label, key, fmt, higher_better in rows:
        a, b = res["deskvm"][key], res["qemu"][key]
        ratio = (a / b) if higher_better else (b / a if a else float("inf"))
        table.append((label, fmt.format(a), fmt.format(b), ratio))
    text = result_table("bench_qmp",
                        f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine; {qver}; "
                        f"{args.starts} starts, {args.calls} calls each. Ratio > 1 means deskvm is better.",
                        table)
    print(text)
    if args.write:
        write_section("bench_qmp", "Control plane (QMP)", None, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
