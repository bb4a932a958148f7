#!/usr/bin/env python3
"""SPICE benchmark, deskvm against QEMU 7.2 side by side, both on their software CPU with the same Debian bzImage and
initramfs (the project's guest image), a virtio-gpu display, a virtio keyboard and tablet, both serving SPICE on
loopback TCP without a ticket and with the default (lossless) image compression, auto_glz:
  deskvm --accel emu --memory 512M --kernel K --initrd I --append A --display virtio-gpu --resolution WxH
         --device virtio-keyboard --device virtio-tablet --spice port=N,addr=127.0.0.1,disable-ticketing=on
  qemu-system-x86_64 -accel tcg -m 512M -kernel K -initrd I -append A -nodefaults -vga none -display none
         -device virtio-gpu-pci,xres=W,yres=H -device virtio-keyboard-pci -device virtio-tablet-pci
         -spice port=N,addr=127.0.0.1,disable-ticketing=on -name deskvm-spice,debug-threads=on
In the guest, guest-animate redraws the whole screen as fast as it can with a frame counter in its corner (see
tests/bench/bench_vnc.py). The client is the same for both: spice-gtk's client library in this process
(tests/lib/spice_client.py), decoding into its primary surface; the counter is read after every display update
that touches it.
Measured: time to first frame (session connect until the primary surface shows a whole guest frame: a valid
counter and the guest's bar colours), median of several connects; frames/s the client sees (distinct counter values
per second over the window) and bytes received per frame; the server's threads' CPU; a pixel check of sampled
frames against the frame the guest drew for that counter (lossless: exact); the server's resident size with the
client connected. Results go to stdout and, with --write, into docs/PERFORMANCE.md between the bench_spice markers.
"""
import argparse
import ctypes
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from spice_import import import_spice_client  # noqa: E402
sc = import_spice_client()
from bench_vnc import busy_threads, machine_busy, thread_cpu, wait_quiet  # noqa: E402
from benchlib import result_table, write_section  # noqa: E402
from deskvm_harness import build_guest_image  # noqa: E402

try:
    import numpy as np
except ImportError:  # the pixel check is skipped without numpy
    np = None

SIZES = ((1024, 768), (1920, 1080))
QUIET_TIMEOUT = 300  # seconds to wait for other processes to calm down before each measurement
CELL, COUNTER_BITS = 16, 16
BAR_WIDTH, BAR_COLOURS, WAVE_PERIOD = 32, 8, 512
PERIOD = BAR_WIDTH * BAR_COLOURS
BAR_COLOUR = (0x2060c0, 0x30a050, 0xc04040, 0xe0c020, 0x8040a0, 0x20a0a0, 0x606060, 0xd08030)


def read_counter(s):
    """guest-animate's frame counter from the surface's top-left cells, or None when a cell is neither white nor
    black (no guest frame yet, or a torn one)."""
    v = 0
    for bit in range(COUNTER_BITS):
        p = s.pixel_word(bit * CELL + CELL // 2, CELL // 2)
        if p == 0xFFFFFF:
            v |= 1 << bit
        elif p != 0:
            return None
    return v


def is_guest_frame(s):
    """The surface shows a guest-animate frame: a readable counter, bar colours along the top half's middle row and
    no black below the counter (a fresh surface is black)."""
    if read_counter(s) is None:
        return False
    y = s.height // 4
    xs = range(CELL * COUNTER_BITS, s.width, max(1, s.width // 40))
    return all(s.pixel_word(x, y) in BAR_COLOUR for x in xs) and s.pixel_word(s.width // 2, 3 * s.height // 4) != 0


def triangle(v):
    v &= 511
    return v if v < 256 else 511 - v


class Probes:
    """A 32-pixel run on every 8th row, at a column that wanders over the screen, and what guest-animate puts there
    in frame f, so the client can tell a whole frame from a torn one (part of the screen still showing another
    frame) cheaply: servers send a frame in horizontal bands (QEMU) or 32-pixel column blocks (deskvm). 32 pixels
    span all phases of the bars, which move 4 pixels a frame; the frames repeat every 64 in these pixels."""

    SPAN = 32

    def __init__(self, w, h, xbyte=0):
        """XBYTE: the value the client's surface holds in each pixel's unused top byte."""
        self.w, self.h = w, h
        self.runs = [((y * 97) % (w - self.SPAN), y) for y in range(CELL, h, 8)]
        self.expected = [[b"".join((xbyte << 24 | self.colour(x + i, y, f)).to_bytes(4, "little")
                                   for i in range(self.SPAN)) for x, y in self.runs] for f in range(64)]

    def colour(self, x, y, f):
        if y < self.h // 2:
            return BAR_COLOUR[(((y + 4 * f) % PERIOD + x) // BAR_WIDTH) % BAR_COLOURS]
        v = (y + 8 * f) % WAVE_PERIOD + x
        return triangle(2 * v) << 16 | triangle(v + 170) << 8 | triangle(4 * v + 100)

    def whole(self, s, f):
        want = self.expected[f % 64]
        return all(ctypes.string_at(s.address + y * s.stride + 4 * x, 4 * self.SPAN) == want[i]
                   for i, (x, y) in enumerate(self.runs))


class FrameModel:
    """The frames guest-animate draws, to compare sampled surfaces with pixel for pixel (numpy)."""

    def __init__(self, w, h):
        self.w, self.h = w, h
        x = np.arange(w + PERIOD)
        self.line = np.array(BAR_COLOUR, dtype=np.uint32)[(x // BAR_WIDTH) % BAR_COLOURS]
        xw = np.arange(w + WAVE_PERIOD)

        def tri(v):
            v = v & 511
            return np.where(v < 256, v, 511 - v).astype(np.uint32)
        self.wave = tri(2 * xw) << 16 | tri(xw + 170) << 8 | tri(4 * xw + 100)
        self.cols = np.arange(w)

    def frame(self, f):
        h2 = self.h // 2
        ys = np.arange(self.h)
        top = self.line[((ys[:h2, None] + 4 * f) % PERIOD) + self.cols[None, :]]
        bottom = self.wave[((ys[h2:, None] + 8 * f) % WAVE_PERIOD) + self.cols[None, :]]
        out = np.concatenate([top, bottom])
        for bit in range(COUNTER_BITS):
            out[:CELL, bit * CELL:(bit + 1) * CELL] = 0xFFFFFF if (f >> bit) & 1 else 0
        return out

    def mismatches(self, s, f):
        got = np.frombuffer(s.raw(), dtype=np.uint32).reshape(s.height, s.stride // 4)[:, :s.width] & 0xFFFFFF
        return int(np.count_nonzero(got != self.frame(f)))


def boot(kind, image, w, h):
    vm = sc.SpiceVm(kind, "disable-ticketing=on", image=image, run="guest-animate anim 100000", size=(w, h),
                    memory="512M", devices=("keyboard", "tablet"))
    return vm


def time_to_first_frame(vm, w, h, tries):
    """Seconds from the session's connect until a whole guest frame is on the client's surface, per try."""
    out = []
    for _ in range(tries):
        c = sc.SpiceClient(vm.host, vm.port)
        try:
            t0 = time.perf_counter()
            c.session.connect()
            ok = sc.pump(lambda: c.surface is not None and (c.surface.width, c.surface.height) == (w, h) and
                         is_guest_frame(c.surface), 60)
            if not ok:
                raise RuntimeError(f"{vm.kind}: no guest frame within 60 s (events {c.events})")
            out.append(time.perf_counter() - t0)
        finally:
            c.close()
        time.sleep(0.5)
    return out


def measure(vm, w, h, seconds, model):
    """Frames/s seen, bytes/frame, the guest's drawing rate, CPU per thread, sampled pixel check, RSS."""
    # Wait for a quiet machine before connecting: a client that stops reading for long (we only read while the
    # loop runs) can be dropped by the server.
    wait_quiet(vm.proc.pid, timeout=QUIET_TIMEOUT)
    c = vm.client()
    try:
        if c.wait_surface(w, h, 60) is None or not c.wait_pixels(is_guest_frame, 60):
            raise RuntimeError(f"{vm.kind}: no {w}x{h} guest frame (events {c.events})")
        probes = Probes(w, h, ctypes.string_at(c.surface.address + 3, 1)[0])
        seen, whole = set(), set()
        whole_times = []  # (time, counter) of each whole frame, in order
        state = {"on": False, "torn": 0, "sample_due": 0.0}
        samples = []

        def on_invalidate(x, y, iw, ih):
            # After every update: which frame does the counter say, and does the whole screen show that frame
            # yet (the probes)? A frame counts as seen whole once all of it was on the client's surface at once.
            if not state["on"] or c.surface is None:
                return
            v = read_counter(c.surface)
            if v is None:
                state["torn"] += 1
                return
            seen.add(v)
            if v in whole or not probes.whole(c.surface, v):
                return
            whole.add(v)
            whole_times.append((time.perf_counter(), v))
            # Now and then compare the whole frame pixel for pixel.
            if model is not None and time.perf_counter() >= state["sample_due"]:
                samples.append(model.mismatches(c.surface, v))
                state["sample_due"] = time.perf_counter() + seconds / 8

        c.on_invalidate = on_invalidate
        sc.pump(None, 1.0)  # warm-up
        cpu0, busy0, proc0, bytes0 = thread_cpu(vm.proc.pid), machine_busy(), time.process_time(), c.bytes_read()
        t0 = time.perf_counter()
        state["on"] = True
        sc.pump(None, seconds)
        state["on"] = False
        t1 = time.perf_counter()
        cpu1, busy1, proc1, bytes1 = thread_cpu(vm.proc.pid), machine_busy(), time.process_time(), c.bytes_read()
        rss = vm.rss_kib()
        wall = t1 - t0
        frames = len(whole)
        if frames < 2:
            raise RuntimeError(f"{vm.kind}: the client saw {frames} whole frames in {wall:.1f} s "
                               f"({len(seen)} counter values, events {c.events})")
        threads = {n: (cpu1[n] - cpu0.get(n, 0.0)) / wall for n in cpu1}
        client_cpu = (proc1 - proc0) / wall
        # The guest's drawing rate from the counter's progress between whole frames (a counter read from a torn
        # frame could be anything: steps that go backwards or jump implausibly far are left out).
        steps = [((b[1] - a[1]) % 65536, b[0] - a[0]) for a, b in zip(whole_times, whole_times[1:])]
        steps = [(dv, dt) for dv, dt in steps if 0 < dv < 4096]
        guest_fps = sum(dv for dv, _ in steps) / sum(dt for _, dt in steps) if steps else 0.0
        return {
            "fps": frames / wall, "frames": frames, "counters_fps": len(seen) / wall,
            "bytes_per_frame": (bytes1 - bytes0) / max(frames, 1),
            "guest_fps": guest_fps, "torn": state["torn"], "threads": threads, "client_cpu": client_cpu,
            "other_cpu": max(0.0, (busy1 - busy0) / wall - sum(threads.values()) - client_cpu),
            "samples": samples, "rss_kib": rss, "seconds": wall,
        }
    finally:
        c.close()


def run_kind(kind, image, w, h, seconds, tries, boot_timeout, model):
    vm = boot(kind, image, w, h)
    try:
        if not vm.wait_serial("DESKVM-ANIMATE: start", boot_timeout):
            raise RuntimeError(f"{kind}: no 'DESKVM-ANIMATE: start' (exit {vm.proc.poll()}): "
                               f"{vm.serial_text()[-800:]} {vm.stderr()[-800:]}")
        m = re.search(r"DESKVM-ANIMATE: start (\d+)x(\d+)", vm.serial_text())
        if (int(m.group(1)), int(m.group(2))) != (w, h):
            raise RuntimeError(f"{kind}: the guest's mode is {m.group(1)}x{m.group(2)}, not {w}x{h}")
        rss_idle = vm.rss_kib()
        wait_quiet(vm.proc.pid, timeout=QUIET_TIMEOUT)
        ttff = time_to_first_frame(vm, w, h, tries)
        r = measure(vm, w, h, seconds, model)
        r["ttff"] = statistics.median(ttff)
        r["ttff_all"] = ttff
        r["rss_idle_kib"] = rss_idle
        exact = sum(1 for s in r["samples"] if s == 0)
        r["exact"] = f"{exact}/{len(r['samples'])}" if model is not None else "n/a"
        print(f"{kind} {w}x{h}: first frame {1000 * r['ttff']:.0f} ms (median of "
              f"{', '.join(f'{1000 * v:.0f}' for v in ttff)}), {r['fps']:.1f} whole frames/s seen "
              f"({r['counters_fps']:.1f} counter values/s, {r['torn']} torn counter reads), "
              f"{r['bytes_per_frame'] / 1024:.1f} KiB/frame, guest drew {r['guest_fps']:.1f} fps, "
              f"sampled frames exact {r['exact']} (mismatched pixels {r['samples']}), RSS {r['rss_kib'] / 1024:.1f} "
              f"MiB with the client ({rss_idle / 1024:.1f} MiB before any); CPU: client "
              f"{100 * r['client_cpu']:.0f}%, {kind} {busy_threads(r['threads'], 5)}, other processes "
              f"{100 * r['other_cpu']:.0f}%", flush=True)
        return r
    finally:
        vm.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8, help="measuring time per server and size")
    ap.add_argument("--tries", type=int, default=9, help="connects for the time to first frame")
    ap.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES))
    ap.add_argument("--boot-timeout", type=float, default=300)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if not sc.QEMU:
        print("bench_spice: qemu-system-x86_64 not found; install it with: tools/install-deps --bench",
              file=sys.stderr)
        return 1
    if not sc.deskvm_has_spice():
        print("bench_spice: this deskvm has no --spice option", file=sys.stderr)
        return 1
    img = build_guest_image(timeout=900)
    if img.dir is None:
        print(f"bench_spice: no guest image: {img.err[-500:]}", file=sys.stderr)
        return 1
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    res = {}
    for w, h in sizes:
        model = FrameModel(w, h) if np is not None else None
        for kind in ("deskvm", "qemu"):
            res[(kind, w)] = run_kind(kind, img.dir, w, h, args.seconds, args.tries, args.boot_timeout, model)
    qver = subprocess.run([sc.QEMU, "--version"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]
    rows, cpu_rows = [], []
    for w, h in sizes:
        a, b = res[("deskvm", w)], res[("qemu", w)]
        rows.append((f"{w}x{h}: time to first frame (ms, median of {args.tries} connects)",
                     f"{1000 * a['ttff']:.0f}", f"{1000 * b['ttff']:.0f}", b["ttff"] / a["ttff"]))
        rows.append((f"{w}x{h}: whole frames/s the client sees", f"{a['fps']:.1f}", f"{b['fps']:.1f}",
                     a["fps"] / b["fps"] if b["fps"] else float("inf")))
        rows.append((f"{w}x{h}: KiB received per frame", f"{a['bytes_per_frame'] / 1024:.1f}",
                     f"{b['bytes_per_frame'] / 1024:.1f}", b["bytes_per_frame"] / max(a["bytes_per_frame"], 1)))
        rows.append((f"{w}x{h}: server resident size with one client (MiB)", f"{a['rss_kib'] / 1024:.1f}",
                     f"{b['rss_kib'] / 1024:.1f}", b["rss_kib"] / a["rss_kib"]))
        cpu_rows.append(f"| {w}x{h} | {a['guest_fps']:.0f} / {b['guest_fps']:.0f} | {busy_threads(a['threads'], 4)} "
                        f"| {busy_threads(b['threads'], 4)} | {100 * a['client_cpu']:.0f}% / "
                        f"{100 * b['client_cpu']:.0f}% | {100 * a['other_cpu']:.0f}% / {100 * b['other_cpu']:.0f}% "
                        f"| {a['exact']} / {b['exact']} | {', '.join(f'{1000 * v:.0f}' for v in a['ttff_all'])} / "
                        f"{', '.join(f'{1000 * v:.0f}' for v in b['ttff_all'])} |")
    summary = (f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine; deskvm --accel emu "
               f"--display virtio-gpu --spice against {qver} with -accel tcg, virtio-gpu-pci and -spice; both "
               "without a ticket on 127.0.0.1 TCP with spice-server's default image compression (auto_glz, "
               "lossless) and no video streaming. The client is spice-gtk's client library (SpiceClientGLib 2.0 "
               "through python3-gi, tests/lib/spice_client.py) for both. Time to first frame: from the session's "
               "connect until the client's primary surface holds a whole guest frame (a readable frame counter and "
               "the guest's colours). Frames/s: distinct guest frames the client saw whole (its counter and a "
               "32-pixel run on every 8th row all of that frame at once after some update) per second over "
               f"{args.seconds:g} s after 1 s of warm-up; bytes: spice-gtk's received bytes over all channels "
               "divided by those frames. Sampled frames (up to 8 per run, among the whole ones) were compared with the "
               "guest's drawing pixel for pixel. Resident size: VmRSS of the server process with the client connected "
               "(512 MiB guests; QEMU's includes its TCG translation cache). Advantage > 1 means deskvm is better "
               "(for sizes and bytes it is QEMU's over deskvm's). Only 2 cores: the guest's vCPU thread competes "
               "with the server's SPICE worker, the client and other processes, so the figures vary between runs "
               "(time to first frame by tens of milliseconds from one connect to the next: see the last column below). "
               "QEMU's simple SPICE display copies the guest's "
               "changes on its 30 ms display refresh timer, so it shows at most about 33 frames a second; deskvm's "
               "display core wakes its SPICE display on each virtio-gpu flush, at most 60 times a second "
               "(DISPLAY_WAKE_MAX_HZ), so below that the guest's own drawing rate (the guest-drew column) sets "
               "deskvm's frames/s.")
    other_max = max(r["other_cpu"] for r in res.values())
    if other_max > 0.25:
        summary += (f" Other processes on this shared machine used up to {100 * other_max:.0f}% of a core during "
                    "a measuring window (last column but one below), which lowers that run's figures.")
    text = result_table("bench_spice", summary, rows)
    cpu_table = "\n".join([
        "",
        "CPU during each measuring window, % of one core (busiest threads of each server), the frames/s the guests "
        "drew (from the counter's progress), sampled frames equal pixel for pixel to what the guest drew, and every "
        "time to first frame measured:",
        "",
        "| size | guest drew, deskvm / QEMU (fps) | deskvm threads | QEMU threads | client, deskvm run / QEMU run "
        "| other processes | exact sampled frames, deskvm / QEMU | each time to first frame (ms), deskvm / QEMU |",
        "|---|---|---|---|---|---|---|---|",
    ] + cpu_rows)
    end = "<!-- bench_spice:end -->"
    text = text.replace(end, cpu_table + "\n" + end)
    print(text)
    if args.write:
        write_section("bench_spice", "SPICE: time to first frame, frame rate and memory",
                      "The guest image on the software CPU with a virtio-gpu display, guest-animate redrawing the "
                      "whole screen as fast as it can, served over SPICE by deskvm and by QEMU 7.2 and watched by "
                      "the same spice-gtk client over loopback TCP.", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
