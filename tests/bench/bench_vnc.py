#!/usr/bin/env python3
"""VNC benchmark, deskvm against QEMU 7.2 side by side, both on their software CPU with the same Debian bzImage and
initramfs (the project's guest image), a virtio-gpu display and a virtio keyboard, both serving VNC on loopback TCP:
  deskvm --accel emu --memory 512M --kernel K --initrd I --append A --display virtio-gpu --resolution WxH
         --device virtio-keyboard --vnc 127.0.0.1:N
  qemu-system-x86_64 -accel tcg -m 512M -kernel K -initrd I -append A -nodefaults -vga none -display none
         -device virtio-gpu-pci,xres=W,yres=H -device virtio-keyboard-pci -vnc 127.0.0.1:N,lossy=on
         -name deskvm-bench,debug-threads=on
(QEMU's Tight encoder sends JPEG only with lossy=on, whatever quality level the client asks for; debug-threads names
its threads so their CPU time can be told apart.) The kernel command line asks for the mode too (video=WxH). In the
guest, guest-animate redraws the whole screen as fast as it can with a frame counter in its corner.
Frame rate and bandwidth: tests/bench/bench-vnc-client (C, libvncclient), one incremental update request outstanding
at a time, counts the distinct frames it sees per second and the bytes the kernel received on its socket per frame,
in ZRLE, Tight (lossless) and Tight with JPEG quality 8, at 1024x768 and 1920x1080; after the window it asks for one
full update and compares the whole frame with the pattern the guest drew (pixel-exact for the lossless encodings, the
mean absolute error for JPEG). During each window the CPU time of every server thread (/proc/PID/task/*/stat) and of
the client is recorded. (The pure-Python tests/lib/rfb.py used before spent a whole core decoding and was the
bottleneck.) Key to pixel latency: guest-animate flips a band's colour on every key press; rfb.py sends a key through
VNC and times until its update shows the new colour.
Results go to stdout and, with --write, into docs/PERFORMANCE.md between the bench_vnc markers.
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rfb  # noqa: E402
from benchlib import result_table, write_section  # noqa: E402
from deskvm_harness import BUILDDIR, DESKVM, build_guest_image, read_text, tmpdir, wait_for  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
SIZES = ((1024, 768), (1920, 1080))
ENCODINGS = (("ZRLE", "zrle"), ("Tight", "tight"), ("Tight+JPEG q8", "tight-jpeg"))
CLIENT = os.path.join(BUILDDIR, "tests", "bench", "bench-vnc-client")
CLK_TCK = os.sysconf("SC_CLK_TCK")
KEYSYM_A, BAND_PROBE_Y = 0x61, 48  # guest-animate keys: the band covers rows 16..79


def deskvm_help():
    return subprocess.run([DESKVM, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout


def deskvm_display():
    """virtio-gpu when this deskvm has it, else bochs (the benchmark says which it used)."""
    return "virtio-gpu" if "virtio-gpu" in deskvm_help() else "bochs"


def free_display():
    """A VNC display number whose port (5900 + N) is free on 127.0.0.1 right now."""
    for n in range(60, 200):
        with socket.socket() as sk:
            try:
                sk.bind(("127.0.0.1", 5900 + n))
            except OSError:
                continue
            return n
    raise RuntimeError("no free VNC display number in 60..199")


def boot(kind, image, w, h, run, display):
    """Starts KIND (deskvm or qemu) on the guest image running RUN at W x H; returns (process, dir, serial path,
    VNC TCP port on 127.0.0.1)."""
    d = tmpdir()
    serial = os.path.join(d, "serial.txt")
    n = free_display()
    modules = "virtio_pci,virtio_gpu,virtio_input,evdev" if kind == "qemu" or display == "virtio-gpu" else \
        "virtio_pci,bochs,virtio_input,evdev"
    cmdline = (f"console=ttyS0 quiet vt.global_cursor_default=0 video={w}x{h} deskvm_modules={modules} "
               f'deskvm_run="{run}"')
    kernel, initrd = os.path.join(image, "vmlinuz"), os.path.join(image, "initrd.img")
    if kind == "deskvm":
        cmd = [DESKVM, "--accel", "emu", "--memory", "512M", "--kernel", kernel, "--initrd", initrd,
               "--append", cmdline, "--display", display, "--resolution", f"{w}x{h}", "--device", "virtio-keyboard",
               "--vnc", f"127.0.0.1:{n}", "--serial", "file:" + serial, "--log-file", os.path.join(d, "log.txt"),
               "--log-level", "error"]
    else:
        cmd = [QEMU, "-accel", "tcg", "-m", "512M", "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
               "-nodefaults", "-no-reboot", "-vga", "none", "-display", "none",
               "-device", f"virtio-gpu-pci,xres={w},yres={h}", "-device", "virtio-keyboard-pci",
               "-vnc", f"127.0.0.1:{n},lossy=on", "-name", "deskvm-bench,debug-threads=on",
               "-serial", "file:" + serial]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, d, serial, 5900 + n


def stop(p, d):
    if p.poll() is None:
        p.kill()
    p.wait()
    shutil.rmtree(d, ignore_errors=True)


def wait_marker(p, serial, marker, timeout):
    if not wait_for(lambda: marker in read_text(serial) or "DESKVM-ANIMATE: error" in read_text(serial) or
                    p.poll() is not None, timeout=timeout, interval=0.2) or marker not in read_text(serial):
        raise RuntimeError(f"no '{marker}' from the guest (exit {p.poll()}); serial tail: {read_text(serial)[-800:]}")


def connect(port, w, h, encoding):
    c = rfb.RfbClient.connect(("127.0.0.1", port), timeout=30)
    c.set_pixel_format_32()
    c.set_encodings([encoding, rfb.DESKTOP_SIZE, rfb.EXT_DESKTOP_SIZE])
    if not c.refresh(30):
        raise RuntimeError("no first framebuffer update")
    # The guest may switch the mode after we connected: follow DesktopSize until it is W x H.
    if not c.wait_for(lambda cl: (cl.width, cl.height) == (w, h), timeout=30):
        raise RuntimeError(f"the screen is {c.width}x{c.height}, not {w}x{h}")
    return c


def thread_cpu(pid):
    """CPU seconds (user + system) of each thread of PID, summed by thread name."""
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def machine_busy():
    """CPU seconds the whole machine has spent busy (all cores; /proc/stat without idle and iowait)."""
    with open("/proc/stat") as fh:
        f = [int(v) for v in fh.readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / CLK_TCK


def wait_quiet(pid, limit=0.25, timeout=120):
    """Waits (up to TIMEOUT s) until processes other than PID use less than LIMIT cores over 2 s: this machine is
    shared, and a build next door takes the cores the guest and the encoder need. Returns the last figure."""
    end = time.monotonic() + timeout
    while True:
        m0, c0 = machine_busy(), sum(thread_cpu(pid).values())
        time.sleep(2)
        other = (machine_busy() - m0 - (sum(thread_cpu(pid).values()) - c0)) / 2
        if other < limit or time.monotonic() > end:
            return other


def measure_fps(pid, port, w, h, encoding, seconds):
    """Runs bench-vnc-client for SECONDS against 127.0.0.1:PORT in ENCODING; returns its result (frames/s seen, bytes
    per frame, updates, the guest's drawing rate, client CPU, whole-frame check) plus "threads": the CPU share
    (0..1 of one core) of each of the server's threads (by name) during the measuring window."""
    cmd = [CLIENT, "--port", str(port), "--width", str(w), "--height", str(h), "--encoding", encoding,
           "--quality", "8", "--warmup", "1", "--seconds", f"{seconds:g}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpu = {}
    result = None
    try:
        for line in proc.stdout:
            msg = json.loads(line)
            if msg.get("event") in ("start", "end"):
                cpu[msg["event"]] = (time.monotonic(), thread_cpu(pid), machine_busy())
            else:
                result = msg
        err = proc.stderr.read()
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc != 0 or result is None or set(cpu) != {"start", "end"}:
        raise RuntimeError(f"bench-vnc-client {encoding} failed (exit {rc}): {err.strip()[-500:]}")
    (t0, c0, m0), (t1, c1, m1) = cpu["start"], cpu["end"]
    result["threads"] = {name: (c1[name] - c0.get(name, 0.0)) / (t1 - t0) for name in c1}
    result["client_cpu"] = result["client_cpu_s"] / result["seconds"]
    # Everything else that ran meanwhile (other processes on this shared machine), in cores.
    result["other_cpu"] = max(0.0, (m1 - m0) / (t1 - t0) - sum(result["threads"].values()) - result["client_cpu"])
    return result


def measure_latency(c, w, presses):
    """Milliseconds from sending a key press to seeing guest-animate's band flip, one per press (median)."""
    c.decode_region = (w // 2, BAND_PROBE_Y, 1, 1)
    if not c.wait_for(lambda cl: cl.pixel(w // 2, BAND_PROBE_Y) == (0, 0, 0), timeout=30):
        raise RuntimeError(f"the band is {c.pixel(w // 2, BAND_PROBE_Y)}, not black, before any key")
    lat = []
    for i in range(1, presses + 1):
        want = (255, 0, 0) if i % 2 else (0, 0, 255)
        t0 = time.perf_counter()
        c.key(KEYSYM_A, True)
        if not c.wait_for(lambda cl: cl.pixel(w // 2, BAND_PROBE_Y) == want, timeout=20):
            raise RuntimeError(f"press {i}: the band did not turn {want}")
        lat.append((time.perf_counter() - t0) * 1000)
        c.key(KEYSYM_A, False)
        time.sleep(0.3)
    return statistics.median(lat)


def busy_threads(threads, limit=3):
    """The busiest threads as 'name 87%, name 12%' (only those above 2%)."""
    top = sorted(((v, k) for k, v in threads.items() if v > 0.02), reverse=True)[:limit]
    return ", ".join(f"{k} {100 * v:.0f}%" for v, k in top) or "none above 2%"


def run_display(kind, image, w, h, seconds, display, boot_timeout):
    p, d, serial, port = boot(kind, image, w, h, "guest-animate anim 100000", display)
    try:
        wait_marker(p, serial, "DESKVM-ANIMATE: start", boot_timeout)
        m = re.search(r"DESKVM-ANIMATE: start (\d+)x(\d+)", read_text(serial))
        if (int(m.group(1)), int(m.group(2))) != (w, h):
            raise RuntimeError(f"{kind}: the guest's mode is {m.group(1)}x{m.group(2)}, not {w}x{h}")
        res = {}
        for name, enc in ENCODINGS:
            wait_quiet(p.pid)
            r = res[name] = measure_fps(p.pid, port, w, h, enc, seconds)
            check = (f"whole frame exact: {r['exact']} ({r['mismatched_pixels']} px differ)" if enc != "tight-jpeg"
                     else f"whole frame mean abs error {r['mean_abs_error']:.2f}/255")
            print(f"{kind} {w}x{h} {name}: {r['fps']:.1f} fps seen ({r['updates']} updates, {r['torn']} torn), "
                  f"{r['bytes_per_frame'] / 1024:.1f} KiB/frame, guest drew {r['guest_fps']:.1f} fps, {check}; "
                  f"CPU: client {100 * r['client_cpu']:.0f}%, {kind} {busy_threads(r['threads'], 5)}, "
                  f"other processes {100 * r['other_cpu']:.0f}%", flush=True)
        return res
    finally:
        stop(p, d)


def run_keys(kind, image, w, h, presses, display, boot_timeout):
    p, d, serial, port = boot(kind, image, w, h, "guest-animate keys 100000", display)
    try:
        wait_marker(p, serial, "DESKVM-ANIMATE: keys-ready", boot_timeout)
        c = connect(port, w, h, rfb.ZRLE)
        try:
            ms = measure_latency(c, w, presses)
        finally:
            c.close()
        got = len(re.findall(r"DESKVM-ANIMATE: key \d+ 30\b", read_text(serial)))  # KEY_A is 30
        print(f"{kind} key->pixel latency: {ms:.1f} ms median of {presses} (guest saw {got} KEY_A presses)",
              flush=True)
        return ms
    finally:
        stop(p, d)


def goal(ratio, target, ok):
    return f"deskvm/QEMU {ratio:.2f}x; goal {target}: {'met' if ok else 'NOT met'}"


def cpu_cells(r, names):
    """'vcpu0 99%, vnc 28%, main 0%' for the threads NAMES ((label, thread name) pairs) of one run."""
    return ", ".join(f"{label} {100 * r['threads'].get(name, 0.0):.0f}%" for label, name in names)


DESKVM_THREADS = (("vcpu0", "vcpu0"), ("vnc", "vnc"), ("main", "deskvm"))
QEMU_THREADS = (("CPU 0/TCG", "CPU 0/TCG"), ("vnc_worker", "vnc_worker"), ("main", "qemu-system-x86"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8, help="measuring time per encoding and size")
    ap.add_argument("--presses", type=int, default=10)
    ap.add_argument("--boot-timeout", type=float, default=300)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if not QEMU:
        print("bench_vnc: qemu-system-x86_64 not found; install it with: tools/install-deps --bench", file=sys.stderr)
        return 1
    if "--vnc" not in deskvm_help():
        print(f"bench_vnc: {DESKVM} has no --vnc option", file=sys.stderr)
        return 1
    if not os.access(CLIENT, os.X_OK):
        print(f"bench_vnc: {CLIENT} is missing; build it with: make tests/bench/bench-vnc-client", file=sys.stderr)
        return 1
    img = build_guest_image(timeout=900)
    if img.dir is None:
        print(f"bench_vnc: no guest image: {img.err[-500:]}", file=sys.stderr)
        return 1
    display = deskvm_display()
    res = {}
    for w, h in SIZES:
        for kind in ("deskvm", "qemu"):
            res[(kind, w)] = run_display(kind, img.dir, w, h, args.seconds, display, args.boot_timeout)
    lat = {kind: run_keys(kind, img.dir, 1024, 768, args.presses, display, args.boot_timeout)
           for kind in ("deskvm", "qemu")}
    qver = subprocess.run([QEMU, "--version"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]
    rows, cpu_rows, met, missed = [], [], [], []
    for w, h in SIZES:
        for name, _ in ENCODINGS:
            a, b = res[("deskvm", w)][name], res[("qemu", w)][name]
            fps_ratio = a["fps"] / b["fps"]
            bytes_ratio = a["bytes_per_frame"] / b["bytes_per_frame"]
            for what, ok in ((f"{w}x{h} {name} frames/s", fps_ratio >= 1.0),
                             (f"{w}x{h} {name} bytes/frame", bytes_ratio <= 0.7)):
                (met if ok else missed).append(what)
            rows.append((f"{w}x{h} {name}: frames/s the client sees ({goal(fps_ratio, '>= 1.00x', fps_ratio >= 1.0)})",
                         f"{a['fps']:.1f}", f"{b['fps']:.1f}", fps_ratio))
            rows.append((f"{w}x{h} {name}: KiB per frame ({goal(bytes_ratio, '<= 0.70x', bytes_ratio <= 0.7)})",
                         f"{a['bytes_per_frame'] / 1024:.1f}", f"{b['bytes_per_frame'] / 1024:.1f}", 1 / bytes_ratio))
            cpu_rows.append(f"| {w}x{h} {name} | {a['guest_fps']:.0f} / {b['guest_fps']:.0f} | "
                            f"{cpu_cells(a, DESKVM_THREADS)} | {cpu_cells(b, QEMU_THREADS)} | "
                            f"{100 * a['client_cpu']:.0f}% / {100 * b['client_cpu']:.0f}% | "
                            f"{100 * a['other_cpu']:.0f}% / {100 * b['other_cpu']:.0f}% |")
    rows.append(("1024x768: key press to pixel change (ms, median)", f"{lat['deskvm']:.0f}", f"{lat['qemu']:.0f}",
                 lat["qemu"] / lat["deskvm"]))
    lossless = [r[name] for r in res.values() for name, enc in ENCODINGS if enc != "tight-jpeg"]
    exact = all(r["exact"] for r in lossless)
    jpeg_err = ", ".join(f"{kind} {w}x{h} {res[(kind, w)]['Tight+JPEG q8']['mean_abs_error']:.2f}"
                         for w, h in SIZES for kind in ("deskvm", "qemu"))
    torn = sum(r[name]["torn"] for r in res.values() for name, _ in ENCODINGS)
    vnc_max = max(r[name]["threads"].get("vnc", 0.0) for (kind, _), r in res.items() if kind == "deskvm"
                  for name, _ in ENCODINGS)
    client_max = max(r[name]["client_cpu"] for r in res.values() for name, _ in ENCODINGS)
    summary = (f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine; deskvm --accel emu "
               f"--display {display} against {qver} with -accel tcg, virtio-gpu-pci and -vnc ...,lossy=on (without "
               "it QEMU never sends JPEG); both servers on 127.0.0.1 TCP. The client is tests/bench/bench-vnc-client "
               "(C, libvncclient, 32 bpp, one incremental update request outstanding); frames/s = distinct frame "
               "counter values it saw per second, bytes = what the kernel received on its socket (TCP_INFO) over "
               f"the window divided by those frames; {args.seconds:g} s per encoding and size after 1 s of warm-up. "
               "Frames/s and key latency: advantage > 1 means deskvm is better; KiB per frame: the advantage is "
               "QEMU's bytes over deskvm's, and the label gives deskvm/QEMU against the goal. Goals met: "
               f"{', '.join(met) or 'none'}; not met: {', '.join(missed) or 'none'}. "
               "QEMU's VNC server looks for changes on a timer, every 30 ms (about 33 Hz) at best, so it cannot "
               "show more frames than that whatever the guest draws. deskvm's display core hands a virtio-gpu "
               "flush to the VNC thread at once, at most 60 times a second (DISPLAY_WAKE_MAX_HZ; its 30 Hz timer "
               "only polls devices that cannot report damage), so its ceiling is 60 fps. Where the guest draws "
               "fewer frames than the ceiling (the guest-drew column below: deskvm's software CPU runs the guest "
               "slower than QEMU's TCG), the guest sets frames/s. "
               "Only 2 cores: the guest's vCPU thread (near 100% when nothing else runs, drawing as fast as it "
               "can) competes with the server's encoder, the client and whatever else runs on this shared machine "
               "(the last column below; each measurement first waits up to 2 minutes for other processes to "
               "use less than a quarter of a core), so these figures are lower than on a machine with spare "
               "cores, and they vary from run to run (up to about 10% in frames/s at the refresh ceiling, more "
               "when other processes ran; QEMU's bytes per frame varied more between runs than deskvm's). "
               f"The client is not the bottleneck: it used at most {100 * client_max:.0f}% of a core. deskvm's vnc "
               f"thread (all of its encoding) used at most {100 * vnc_max:.0f}% of a core"
               f"{', so its encoding was not the limit in any run' if vnc_max < 0.9 else ', near a whole core'}. "
               "Whole frames after a full update request matched the "
               f"guest's pattern pixel for pixel in the lossless encodings: {'all' if exact else 'NOT all'}; "
               f"mean absolute error per channel (0-255) with JPEG: {jpeg_err}; the two encoders do not give quality "
               "level 8 the same meaning, so read Tight+JPEG's bytes together with that error. "
               f"Torn counters seen: {torn}. "
               "QEMU's VNC server also lengthens its refresh interval by 50 ms after each check that found no "
               "change (up to 3 s), so after the 0.3 s pauses between key presses most of its latency is that "
               "timer.")
    if display != "virtio-gpu":
        summary += " This deskvm has no virtio-gpu yet, so it ran with bochs-display."
    text = result_table("bench_vnc", summary, rows)
    cpu_table = "\n".join([
        "",
        "CPU during each measuring window, % of one core (from /proc/PID/task/*/stat; main = the process's main "
        "thread), and the frames/s the guests drew (from the counter's progress):",
        "",
        "| run | guest drew, deskvm / QEMU (fps) | deskvm threads | QEMU threads | client, deskvm run / QEMU run "
        "| other processes, deskvm run / QEMU run |",
        "|---|---|---|---|---|---|",
    ] + cpu_rows)
    end = "<!-- bench_vnc:end -->"
    text = text.replace(end, cpu_table + "\n" + end)
    print(text)
    if args.write:
        write_section("bench_vnc", "VNC: frame rate, bandwidth and input latency",
                      "The guest image on the software CPU with a virtio-gpu display, guest-animate redrawing the "
                      "whole screen (top half flat colour bars, bottom half smooth gradients, both moving) as fast as "
                      "it can, and tests/bench/bench-vnc-client (libvncclient) as the client over loopback TCP, one "
                      "incremental update request at a time. Goals from the issue: frames/s at least QEMU's, bytes "
                      "per frame at most 0.7x QEMU's.", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
