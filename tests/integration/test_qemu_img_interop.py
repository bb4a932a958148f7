#!/usr/bin/env python3
"""deskvm's block layer against QEMU's qemu-img (Debian qemu-utils), both ways, through the test-only
tests/unit/block-tool: images qemu-img writes (v2, v3, backing chains, internal snapshots, zlib/zstd
compressed, extended L2) read back byte for byte or fail with a clear "unsupported feature"; images deskvm
writes pass `qemu-img check` and `qemu-img compare` against the expected raw content. Ends with a crash test: a
writer doing random writes and flushes is SIGKILLed at random moments; `qemu-img check` must find no
corruption (leaks are allowed) and every write acknowledged by a flush must read back.
Env: DESKVM_BUILDDIR, DESKVM_SRCDIR."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import BUILDDIR, tmpdir  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
TOOL = os.path.join(BUILDDIR, "tests", "unit", "block-tool")
QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")
MIB = 1024 * 1024


def run(cmd, timeout=120):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def tool(*args):
    return run([TOOL] + [str(a) for a in args])


def qimg(*args):
    return run([QEMU_IMG] + [str(a) for a in args])


def check_clean(path, name, leaks_ok=False):
    r = qimg("check", path)
    good = r.returncode == 0 or (leaks_ok and r.returncode == 3)
    t.ok(good and "ERROR" not in r.stdout + r.stderr, f"{name}: qemu-img check reports "
         f"{'no corruption' if leaks_ok else 'no errors'}", r.stdout + r.stderr)
    return good


def compare(img, raw, name):
    r = qimg("compare", "-f", "qcow2", "-F", "raw", img, raw)
    t.ok(r.returncode == 0, f"{name}: qemu-img compare equals the expected content", r.stdout + r.stderr)


def dump(img, d, name, extra=()):
    out = os.path.join(d, "dump.raw")
    r = tool(*extra, "dump", img, out)
    if not t.ok(r.returncode == 0, f"{name}: block-tool reads the image", r.stderr):
        return None
    with open(out, "rb") as f:
        return f.read()


def pattern_data(seed, size):
    """Per 4 KiB: a hole, one repeated byte, random bytes or repeated text (compressible), chosen by SEED."""
    rnd = random.Random(seed)
    data = bytearray(size)
    for off in range(0, size, 4096):
        kind = rnd.randrange(4)
        if kind == 1:
            data[off:off + 4096] = bytes([rnd.randrange(256)]) * 4096
        elif kind == 2:
            data[off:off + 4096] = rnd.randbytes(4096)
        elif kind == 3:
            data[off:off + 4096] = ((b"deskvm %d " % off) * 4096)[:4096]
    return data[:size]


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def qemu_created_images():
    d = tmpdir()
    src = os.path.join(d, "src.raw")
    data = pattern_data(1, 6 * MIB + 4096)
    write_file(src, data)
    for name, opts in [("v2", ["-o", "compat=0.10"]), ("v3", ["-o", "compat=1.1"]),
                       ("v3-512", ["-o", "cluster_size=512"]), ("v3-2M", ["-o", "cluster_size=2M"]),
                       ("refcount1", ["-o", "refcount_bits=1"]), ("refcount64", ["-o", "refcount_bits=64"]),
                       ("zlib", ["-c"]), ("zstd", ["-c", "-o", "compression_type=zstd"])]:
        img = os.path.join(d, name + ".qcow2")
        r = qimg("convert", "-O", "qcow2", *opts, src, img)
        if not t.ok(r.returncode == 0, f"qemu-img convert {name}", r.stderr):
            continue
        got = dump(img, d, f"qemu {name}")
        t.ok(got == data, f"qemu {name}: every byte reads as qemu-img wrote it")
        r = tool("check", img)
        t.ok(r.returncode == 0, f"qemu {name}: deskvm's check finds it clean", r.stdout + r.stderr)
    # extended L2 entries are refused with a clear message
    img = os.path.join(d, "extl2.qcow2")
    qimg("create", "-f", "qcow2", "-o", "extended_l2=on", img, "1M")
    r = tool("read", img, 0, 512)
    t.ok(r.returncode != 0 and "unsupported qcow2 feature: extended L2" in r.stderr,
         "qemu extended_l2=on: refused as an unsupported feature", r.stderr)
    shutil.rmtree(d, ignore_errors=True)


def qemu_backing_and_snapshots():
    if not QEMU_IO:
        t.skip("qemu backing chain and snapshots", "qemu-io not installed")
        return
    d = tmpdir()
    os.makedirs(os.path.join(d, "sub"))
    size = 4 * MIB
    expect = bytearray(size)

    def qio(img, cmd):
        r = run([QEMU_IO, "-c", cmd, img])
        return r.returncode == 0 and "error" not in (r.stdout + r.stderr).lower()

    base = os.path.join(d, "base.qcow2")
    qimg("create", "-f", "qcow2", "-o", "compat=0.10", base, size)
    ok = qio(base, "write -P 0x11 0 3M")
    expect[0:3 * MIB] = b"\x11" * (3 * MIB)
    mid = os.path.join(d, "sub", "mid.qcow2")
    ok &= qimg("create", "-f", "qcow2", "-b", "../base.qcow2", "-F", "qcow2", mid).returncode == 0
    ok &= qio(mid, "write -P 0x22 65536 100000")
    expect[65536:165536] = b"\x22" * 100000
    top = os.path.join(d, "sub", "top.qcow2")
    ok &= qimg("create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "mid.qcow2", "-F", "qcow2",
               top).returncode == 0
    ok &= qio(top, "write -P 0x33 100001 7")
    expect[100001:100008] = b"\x33" * 7
    ok &= qio(top, "write -z 2M 64k")
    expect[2 * MIB:2 * MIB + 65536] = bytes(65536)
    t.ok(ok, "qemu-img/qemu-io build a 3-deep chain with relative backing names")
    got = dump(top, d, "qemu chain")
    t.ok(got == expect, "qemu chain: the top image reads through all three layers")
    # internal snapshots made by qemu-img, applied by deskvm
    snap = os.path.join(d, "snap.qcow2")
    qimg("create", "-f", "qcow2", snap, size)
    qio(snap, "write -P 0x44 0 1M")
    r = qimg("snapshot", "-c", "first", snap)
    qio(snap, "write -P 0x55 512k 1M")
    r2 = tool("snapshot", snap, "-l")
    t.ok(r.returncode == 0 and r2.returncode == 0 and " first " in r2.stdout,
         "qemu snapshot: deskvm lists it", r2.stdout + r2.stderr)
    r = tool("snapshot", snap, "-a", "first")
    t.ok(r.returncode == 0, "qemu snapshot: deskvm applies it", r.stderr)
    got = dump(snap, d, "qemu snapshot")
    t.ok(got == b"\x44" * MIB + bytes(3 * MIB), "qemu snapshot: content is back to the snapshot's")
    check_clean(snap, "qemu snapshot applied by deskvm")
    r = tool("snapshot", snap, "-d", "first")
    t.ok(r.returncode == 0, "qemu snapshot: deskvm deletes it", r.stderr)
    check_clean(snap, "qemu snapshot deleted by deskvm")
    shutil.rmtree(d, ignore_errors=True)


def deskvm_writes(name, size, create_opts, seed, writes=60):
    d = tmpdir()
    img = os.path.join(d, "img.qcow2")
    raw = os.path.join(d, "expect.raw")
    expect = bytearray(size)
    r = tool("create", img, size, *create_opts)
    if not t.ok(r.returncode == 0, f"{name}: block-tool create", r.stderr):
        return
    rnd = random.Random(seed)
    ok = True
    for i in range(writes):
        length = rnd.choice([1, 7, 511, 512, 4096, 65535, 65536, 70001, 300000])
        off = rnd.randrange(0, size - length)
        pat = bytes([rnd.randrange(1, 256), rnd.randrange(256)])
        r = tool("write", img, off, pat.hex(), length)
        ok &= r.returncode == 0
        expect[off:off + length] = (pat * (length // 2 + 1))[:length]
        if i % 10 == 9:
            zoff = rnd.randrange(0, size - 200000)
            r = tool("zero", img, zoff, 200000, "unmap" if i % 20 == 9 else "keep")
            ok &= r.returncode == 0
            expect[zoff:zoff + 200000] = bytes(200000)
    t.ok(ok, f"{name}: {writes} writes and zero writes succeed")
    write_file(raw, expect)
    check_clean(img, name)
    compare(img, raw, name)
    shutil.rmtree(d, ignore_errors=True)


def deskvm_features():
    d = tmpdir()
    size = 3 * MIB
    # snapshots made by deskvm, read by qemu-img convert -l
    img = os.path.join(d, "snap.qcow2")
    tool("create", img, size)
    tool("write", img, 0, "aa", 2 * MIB)
    r = tool("snapshot", img, "-c", "before")
    tool("write", img, MIB, "bb", MIB)
    t.ok(r.returncode == 0, "deskvm snapshot: created", r.stderr)
    check_clean(img, "deskvm snapshot")
    r = qimg("snapshot", "-l", img)
    t.ok("before" in r.stdout, "deskvm snapshot: qemu-img lists it", r.stdout + r.stderr)
    out = os.path.join(d, "before.raw")
    r = qimg("convert", "-l", "snapshot.name=before", "-O", "raw", img, out)
    with open(out, "rb") as f:
        t.ok(r.returncode == 0 and f.read() == b"\xaa" * (2 * MIB) + bytes(MIB),
             "deskvm snapshot: qemu-img reads the snapshot's content", r.stderr)
    # compressed clusters written by deskvm, zlib and zstd
    for ctype in ("zlib", "zstd"):
        img = os.path.join(d, f"c-{ctype}.qcow2")
        raw = os.path.join(d, f"c-{ctype}.raw")
        tool("create", img, 2 * MIB, f"compression_type={ctype}")
        rnd = random.Random(ctype)
        data = bytearray(2 * MIB)
        ok = True
        for off in range(0, len(data), 65536):
            if rnd.randrange(4) == 0:
                continue  # stays unallocated
            pat = rnd.randbytes(32)
            r = tool("write-compressed", img, off, pat.hex(), 65536)
            ok &= r.returncode == 0
            data[off:off + 65536] = pat * 2048
        write_file(raw, data)
        t.ok(ok, f"deskvm compressed {ctype}: writes succeed")
        check_clean(img, f"deskvm compressed {ctype}")
        compare(img, raw, f"deskvm compressed {ctype}")
        r = qimg("info", img)
        t.ok(f"compression type: {ctype}" in r.stdout, f"deskvm compressed {ctype}: qemu-img sees the type",
             r.stdout)
    # a 3-deep chain written by deskvm, relative names, checked by qemu-img
    os.makedirs(os.path.join(d, "sub"))
    base = os.path.join(d, "base.raw")
    tool("-f", "raw", "create", base, 2 * MIB)
    tool("-f", "raw", "write", base, 0, "01", 2 * MIB)
    mid = os.path.join(d, "sub", "mid.qcow2")
    top = os.path.join(d, "sub", "top.qcow2")
    tool("create", mid, 0, "backing_file=../base.raw", "backing_fmt=raw", "compat=0.10")
    tool("write", mid, 4096, "02", 10)
    tool("create", top, 0, "backing_file=mid.qcow2", "backing_fmt=qcow2", "cluster_size=512")
    tool("write", top, 100, "03", 1)
    expect = bytearray(b"\x01" * (2 * MIB))
    expect[4096:4106] = b"\x02" * 10
    expect[100] = 3
    raw = os.path.join(d, "chain.raw")
    write_file(raw, expect)
    check_clean(top, "deskvm chain top")
    compare(top, raw, "deskvm chain")
    r = qimg("info", "--backing-chain", top)
    t.ok(r.stdout.count("image:") == 3, "deskvm chain: qemu-img follows the relative backing names", r.stdout)
    # refcount table growth with 512-byte clusters
    img = os.path.join(d, "grow.qcow2")
    tool("create", img, 16 * MIB, "cluster_size=512")
    r = tool("write", img, 0, "5a", 12 * MIB)
    t.ok(r.returncode == 0, "deskvm 512-byte clusters: 12 MiB written", r.stderr)
    check_clean(img, "deskvm refcount table growth")
    raw = os.path.join(d, "grow.raw")
    write_file(raw, b"\x5a" * (12 * MIB) + bytes(4 * MIB))
    compare(img, raw, "deskvm refcount table growth")
    # metadata preallocation and resize
    img = os.path.join(d, "pre.qcow2")
    r = tool("create", img, 4 * MIB, "preallocation=metadata")
    t.ok(r.returncode == 0, "deskvm preallocation=metadata: created", r.stderr)
    tool("resize", img, 40 * MIB)
    check_clean(img, "deskvm preallocated and grown")
    r = qimg("info", img)
    t.ok("40 MiB" in r.stdout, "deskvm resize: qemu-img sees the new size", r.stdout)
    shutil.rmtree(d, ignore_errors=True)


def verify_after_crash(actual, durable, maybe):
    """Bytes under a write issued after the last flush may hold that write's byte or the durable one."""
    if len(actual) != len(durable):
        return f"size {len(actual)} != {len(durable)}"
    step = 4096
    for off in range(0, len(actual), step):
        a, b = actual[off:off + step], durable[off:off + step]
        if a == b:
            continue
        for i in range(len(a)):
            if a[i] == b[i]:
                continue
            pos = off + i
            if not any(o <= pos < o + ln and a[i] == byte for (o, ln, byte) in maybe):
                return f"byte {pos} is {a[i]:#x}, flushed content says {b[i]:#x}"
    return None


def crash_test(rounds=24, seed=20240):
    d = tmpdir()
    img = os.path.join(d, "crash.qcow2")
    size = 8 * MIB
    r = tool("create", img, size, "cluster_size=4096")
    if not t.ok(r.returncode == 0, "crash: image created", r.stderr):
        return
    rnd = random.Random(seed)
    content = bytearray(size)
    flushed_total = 0
    for rnd_no in range(rounds):
        p = subprocess.Popen([TOOL, "crash-writer", img, str(seed + rnd_no)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.05, 0.5))
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
        writes, last_flush = [], 0
        for line in out.decode().splitlines():
            f = line.split()
            if len(f) == 5 and f[0] == "w":
                writes.append((int(f[2]), int(f[3]), int(f[4])))
            elif len(f) == 2 and f[0] == "f":
                last_flush = int(f[1])
        durable = bytearray(content)
        for (o, ln, byte) in writes[:last_flush]:
            durable[o:o + ln] = bytes([byte]) * ln
        flushed_total += last_flush
        r = qimg("check", img)
        if not t.ok(r.returncode in (0, 3) and "ERROR" not in r.stdout + r.stderr,
                    f"crash round {rnd_no}: qemu-img check finds no corruption after {len(writes)} writes",
                    r.stdout + r.stderr + err.decode()):
            break
        out_raw = os.path.join(d, "after.raw")
        r = qimg("convert", "-O", "raw", img, out_raw)
        with open(out_raw, "rb") as f:
            actual = f.read()
        problem = verify_after_crash(actual, durable, writes[last_flush:])
        if not t.ok(problem is None, f"crash round {rnd_no}: all {last_flush} flushed writes are intact",
                    problem):
            break
        content = bytearray(actual)
    r = tool("check", img)
    t.ok(r.returncode in (0, 3), "crash: deskvm's own check agrees (no corruption)", r.stdout + r.stderr)
    t.ok(flushed_total > 0, f"crash: the writers got {flushed_total} writes flushed before being killed")
    r = tool("check", img, "leaks")
    r2 = qimg("check", img)
    t.ok(r2.returncode == 0, "crash: after deskvm's leak repair qemu-img finds the image clean",
         r.stdout + r2.stdout + r2.stderr)
    shutil.rmtree(d, ignore_errors=True)


if not QEMU_IMG:
    t.skip("qemu-img interop", "qemu-img not found (install qemu-utils: tools/install-deps)")
elif not os.path.exists(TOOL):
    t.ok(False, "tests/unit/block-tool is built", TOOL)
else:
    t.run(qemu_created_images, "qemu-created images")
    t.run(qemu_backing_and_snapshots, "qemu backing chain and snapshots")
    t.run(lambda: deskvm_writes("deskvm v3 64k", 8 * MIB, [], 1), "deskvm v3")
    t.run(lambda: deskvm_writes("deskvm v2 4k", 4 * MIB, ["compat=0.10", "cluster_size=4096"], 2),
          "deskvm v2")
    t.run(lambda: deskvm_writes("deskvm v3 512 refcount_bits=1", 2 * MIB,
                                ["cluster_size=512", "refcount_bits=1"], 3, 30), "deskvm 512")
    t.run(deskvm_features, "deskvm features")
    t.run(crash_test, "crash test")
t.done()
