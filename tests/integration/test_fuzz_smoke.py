#!/usr/bin/env python3
"""Runs every libFuzzer target briefly over its seed corpus, so a parser regression that crashes, leaks into UB or
breaks the one-reply-per-line promise fails `make check` (long runs: `make fuzz` and run the target by hand)."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import BUILDDIR, SRCDIR  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
TARGETS = {"fuzz-qmp": "qmp", "fuzz-devices": "devices", "fuzz-decode": "decode",
           "fuzz-virtqueue": "virtqueue", "fuzz-qcow2": "qcow2", "fuzz-virtio-gpu": "virtio-gpu",
           "fuzz-virtio-serial": "virtio-serial",
           "fuzz-vnc": "vnc", "fuzz-qxl": "qxl"}
RUNS = os.environ.get("DESKVM_FUZZ_RUNS", "20000")

for target, corpus in TARGETS.items():
    exe = os.path.join(BUILDDIR, "tests", "fuzz", target)
    if not os.path.exists(exe):
        t.skip(f"{target} smoke run", "not built: configure found no clang with libFuzzer")
        continue
    seeds = os.path.join(SRCDIR, "tests", "fuzz", "corpus", corpus)
    work = tempfile.mkdtemp(prefix="dvm-fuzz-")
    # A crash, leak or input slower than 60 s (libFuzzer's -timeout: a hang) leaves its input here, kept for a look.
    artifacts = tempfile.mkdtemp(prefix=f"dvm-fuzz-{target}-artifacts-")
    try:
        try:
            r = subprocess.run([exe, f"-runs={RUNS}", "-max_len=4096", "-max_total_time=60", "-seed=1",
                                "-timeout=60", f"-artifact_prefix={artifacts}/", "-print_final_stats=1", work,
                                seeds],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
            rc, out = r.returncode, r.stdout
        except subprocess.TimeoutExpired as e:
            rc, out = "timeout", (e.output or b"").decode("utf-8", "replace") if isinstance(e.output, bytes) else (
                e.output or "")
        kept = os.listdir(artifacts)
        t.ok(rc == 0 and "Done" in out, f"{target}: {RUNS} runs without a crash",
             f"exit {rc}; inputs kept in {artifacts}: {kept}\n{out[-3000:]}")
        if not kept:
            shutil.rmtree(artifacts, ignore_errors=True)
        execs = [l for l in out.splitlines() if l.startswith("stat::number_of_executed_units")]
        t.ok(execs and int(execs[0].split(":")[-1]) >= 1000, f"{target}: executed at least 1000 inputs", execs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

t.done()
