#!/usr/bin/env python3
"""deskvm-img against qemu-img 7.2 (Debian qemu-utils), both ways: images deskvm-img creates or changes pass
`qemu-img check` and `qemu-img compare` against the expected content; images qemu-img creates work with every
deskvm-img subcommand; `info --output=json` and `map --output=json` equal qemu-img's; check exit codes on
leaked and corrupted images; the seeds' workflows (overlay, commit down a chain, rebase safe and unsafe,
snapshot round trip, convert with and without compression, resize). Content is random but seeded.
Env: DESKVM_BUILDDIR, DESKVM_SRCDIR."""
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import BUILDDIR, tmpdir  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
DIMG = os.path.join(BUILDDIR, "deskvm-img")
QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")
MIB = 1024 * 1024
SUBCOMMANDS = ["check", "commit", "compare", "convert", "create", "info", "map", "rebase", "resize", "snapshot"]


def run(cmd, cwd=None, timeout=300):
    return subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd)


class Dir:
    """A scratch directory; commands run inside it so relative backing names stay relative."""

    def __init__(self):
        self.path = tmpdir()

    def p(self, name):
        return os.path.join(self.path, name)

    def d(self, *args):
        return run([DIMG] + list(args), cwd=self.path)

    def q(self, *args):
        return run([QEMU_IMG] + list(args), cwd=self.path)

    def io(self, img, *cmds, fmt=None):
        args = [QEMU_IO] + (["-f", fmt] if fmt else [])
        for c in cmds:
            args += ["-c", c]
        r = run(args + [img], cwd=self.path)
        return r.returncode == 0 and "error" not in (r.stdout + r.stderr).lower()

    def write(self, name, data):
        with open(self.p(name), "wb") as f:
            f.write(data)

    def read(self, name):
        with open(self.p(name), "rb") as f:
            return f.read()

    def md5(self, name):
        return hashlib.md5(self.read(name)).hexdigest()

    def done(self):
        shutil.rmtree(self.path, ignore_errors=True)


def pattern_data(seed, size, chunk=4096):
    """Per chunk: a hole, random bytes or repeated text, chosen by SEED."""
    rnd = random.Random(seed)
    data = bytearray(size)
    for off in range(0, size, chunk):
        kind = rnd.randrange(3)
        if kind == 1:
            data[off:off + chunk] = rnd.randbytes(chunk)
        elif kind == 2:
            data[off:off + chunk] = ((b"deskvm img %d " % off) * chunk)[:chunk]
    return data[:size]


def random_writes(d, img, expect, seed, n=12, fmt=None):
    """N writes of seeded patterns at seeded offsets through qemu-io; EXPECT follows them."""
    rnd = random.Random(seed)
    cmds = []
    for _ in range(n):
        length = rnd.choice([512, 4096, 65536, 100000, 300000])
        off = rnd.randrange(0, (len(expect) - length) // 512) * 512
        byte = rnd.randrange(1, 256)
        cmds.append(f"write -P {byte} {off} {length}")
        expect[off:off + length] = bytes([byte]) * length
    return d.io(img, *cmds, fmt=fmt)


def same_content(d, img, expect, name, fmt="qcow2"):
    d.write("expect.raw", bytes(expect))
    r = d.q("compare", "-f", fmt, "-F", "raw", img, "expect.raw")
    t.ok(r.returncode == 0, f"{name}: qemu-img compare equals the expected content", r.stdout + r.stderr)


def qemu_clean(d, img, name):
    r = d.q("check", img)
    t.ok(r.returncode == 0, f"{name}: qemu-img check finds no errors", r.stdout + r.stderr)


def json_of(r):
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def drop_actual_size(v):
    if isinstance(v, list):
        return [drop_actual_size(x) for x in v]
    if isinstance(v, dict):
        return {k: drop_actual_size(x) for k, x in v.items() if k != "actual-size"}
    return v


def qcow2_patch(path, mode):
    """Damages a qcow2 image with data in its first guest cluster: 'leak' drops the L2 entry (the cluster
    leaks), 'corrupt' zeroes the data cluster's refcount (a corruption)."""
    with open(path, "r+b") as f:
        h = f.read(104)
        cbits = struct.unpack(">I", h[20:24])[0]
        l1 = struct.unpack(">Q", h[40:48])[0]
        rt = struct.unpack(">Q", h[48:56])[0]
        f.seek(l1)
        l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
        f.seek(l2)
        data = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
        if mode == "leak":
            f.seek(l2)
            f.write(bytes(8))
        else:
            f.seek(rt)
            rb = struct.unpack(">Q", f.read(8))[0]
            f.seek(rb + 2 * (data >> cbits))
            f.write(bytes(2))


# ---------------------------------------------------------------- tests

def pattern_images(seed):
    """A scratch directory with the same 4 MiB pattern as a.raw and as a.qcow2 (written by qemu-img)."""
    d = Dir()
    data = pattern_data(seed, 4 * MIB)
    d.write("a.raw", data)
    d.q("convert", "-O", "qcow2", "a.raw", "a.qcow2")
    return d, data


def test_help():
    r = run([DIMG, "--help"])
    t.ok(r.returncode == 0 and all(c in r.stdout for c in SUBCOMMANDS), "--help lists every subcommand",
         r.stdout + r.stderr)
    bad = [c for c in SUBCOMMANDS if not (lambda x: x.returncode == 0 and f"usage: deskvm-img {c}" in x.stdout)(
        run([DIMG, c, "--help"]))]
    t.ok(not bad, "every subcommand has --help", bad)
    r = run([DIMG, "frobnicate"])
    t.ok(r.returncode == 1 and "Command not found: frobnicate" in r.stderr, "an unknown command is refused",
         r.stderr)


def test_create_and_info():
    d = Dir()
    cases = [("v3.qcow2", ["-f", "qcow2"], "10G"),
             ("v2.qcow2", ["-f", "qcow2", "-o", "compat=0.10"], "1.5M"),
             ("c4k.qcow2", ["-f", "qcow2", "-o", "cluster_size=4k,compression_type=zstd"], "64M"),
             ("lazy.qcow2", ["-f", "qcow2", "-o", "lazy_refcounts=on", "-o", "refcount_bits=64"], "3G"),
             ("pre.qcow2", ["-f", "qcow2", "-o", "preallocation=metadata"], "5M"),
             ("plain.raw", [], "1000")]
    for name, opts, size in cases:
        r = d.d("create", *opts, name, size)
        if not t.ok(r.returncode == 0 and r.stdout.startswith(f"Formatting '{name}', fmt="),
                    f"create {name} {' '.join(opts)} {size}", r.stdout + r.stderr):
            continue
        ours, theirs = json_of(d.d("info", "--output=json", name)), json_of(d.q("info", "--output=json", name))
        t.eq(drop_actual_size(ours), drop_actual_size(theirs), f"info --output=json of {name} equals qemu-img's")
        if name.endswith(".qcow2"):
            qemu_clean(d, name, f"created {name}")
        r1, r2 = d.d("info", name), d.q("info", name)
        t.eq(r1.stdout, r2.stdout, f"human info of {name} equals qemu-img's")
    t.eq(json_of(d.q("info", "--output=json", "v3.qcow2"))["virtual-size"], 10 << 30, "size 10G is 10 GiB")
    # with a backing file in another directory
    os.makedirs(d.p("sub"))
    d.write("base.raw", pattern_data(7, 2 * MIB))
    r = d.d("create", "-f", "qcow2", "-b", "../base.raw", "-F", "raw", "sub/top.qcow2")
    t.ok(r.returncode == 0, "create -b ../base.raw -F raw takes the size from the backing file", r.stderr)
    ours = json_of(d.d("info", "--output=json", "--backing-chain", "sub/top.qcow2"))
    theirs = json_of(d.q("info", "--output=json", "--backing-chain", "sub/top.qcow2"))
    t.eq(drop_actual_size(ours), drop_actual_size(theirs), "info --backing-chain JSON equals qemu-img's")
    r1, r2 = d.d("info", "--backing-chain", "sub/top.qcow2"), d.q("info", "--backing-chain", "sub/top.qcow2")
    t.eq(r1.stdout, r2.stdout, "human info --backing-chain equals qemu-img's")
    same_content(d, "sub/top.qcow2", pattern_data(7, 2 * MIB), "overlay of a raw base")
    r = d.d("create", "-f", "qcow2", "-b", "base.raw", "nofmt.qcow2")
    t.ok(r.returncode == 1 and "without backing format" in r.stderr and not os.path.exists(d.p("nofmt.qcow2")),
         "create -b without -F is refused like qemu-img", r.stderr)
    r = d.d("create", "-f", "qcow2", "-u", "-b", "later.qcow2", "-F", "qcow2", "unsafe.qcow2", "1M")
    info = json_of(d.q("info", "--output=json", "unsafe.qcow2"))
    t.ok(r.returncode == 0 and info and info.get("backing-filename") == "later.qcow2",
         "create -u records a backing file that does not exist yet", r.stderr)
    r = d.d("create", "-f", "qcow2", "nosize.qcow2")
    t.ok(r.returncode == 1 and "nosize.qcow2" in r.stderr and "size" in r.stderr,
         "create without a size names the file and the problem", r.stderr)
    r = d.d("create", "-f", "qcow2", "bad.qcow2", "12Q")
    t.ok(r.returncode == 1 and "Invalid image size" in r.stderr, "an invalid size is refused", r.stderr)
    d.done()


def test_map_and_check():
    d = Dir()
    d.q("create", "-f", "qcow2", "A.qcow2", "16M")
    d.io("A.qcow2", "write -P 7 0 3M", "write -P 9 8M 64k")
    d.q("create", "-f", "qcow2", "-b", "A.qcow2", "-F", "qcow2", "B.qcow2")
    d.io("B.qcow2", "write -P 8 1M 100k", "write -z 5M 1M", "write -z 8M 64k", "discard 2M 64k")
    d.write("r.raw", pattern_data(3, 4 * MIB, 65536))
    d.q("convert", "-c", "-O", "qcow2", "r.raw", "comp.qcow2")
    d.q("create", "-f", "qcow2", "-o", "preallocation=metadata", "pre.qcow2", "2M")
    for img in ["A.qcow2", "B.qcow2", "r.raw", "comp.qcow2", "pre.qcow2"]:
        r1, r2 = d.d("map", "--output=json", img), d.q("map", "--output=json", img)
        t.ok(r1.returncode == 0 and json_of(r1) is not None and json_of(r1) == json_of(r2),
             f"map --output=json of {img} equals qemu-img's", f"ours:\n{r1.stdout}{r1.stderr}\nqemu:\n{r2.stdout}")
    r1, r2 = d.d("map", "B.qcow2"), d.q("map", "B.qcow2")
    t.eq(r1.stdout, r2.stdout, "human map of a two-layer chain equals qemu-img's")
    r = d.d("map", "comp.qcow2")
    t.ok(r.returncode == 1 and "compressed" in r.stderr, "human map refuses compressed clusters like qemu-img",
         r.stderr)
    # check exit codes: clean 0, leaks 3, corruption 2, raw 63
    r = d.d("check", "B.qcow2")
    t.ok(r.returncode == 0 and "No errors were found on the image." in r.stdout, "check of a clean image: 0",
         r.stdout + r.stderr)
    for mode, code, msg in [("leak", 3, "1 leaked clusters were found on the image."),
                            ("corrupt", 2, "errors were found on the image.")]:
        img = f"{mode}.qcow2"
        d.q("create", "-f", "qcow2", img, "1M")
        d.io(img, "write -P 3 0 128k")
        qcow2_patch(d.p(img), mode)
        r, rq = d.d("check", img), d.q("check", img)
        t.ok(r.returncode == code == rq.returncode and msg in r.stdout,
             f"check of a {mode}ed image exits {code} like qemu-img", r.stdout + r.stderr)
        ours, theirs = json_of(d.d("check", "--output=json", img)), json_of(d.q("check", "--output=json", img))
        t.eq(ours, theirs, f"check --output=json of the {mode}ed image equals qemu-img's")
        fix = "leaks" if mode == "leak" else "all"
        r = d.d("check", "-r", fix, img)
        t.ok(r.returncode == 0 and "were found and repaired" in r.stdout, f"check -r {fix} repairs it",
             r.stdout + r.stderr)
        qemu_clean(d, img, f"{mode}ed image repaired by deskvm-img")
    r = d.d("check", "r.raw")
    t.ok(r.returncode == 63 and "does not support checks" in r.stderr, "check of a raw image exits 63", r.stderr)
    r = d.d("check", "missing.qcow2")
    t.ok(r.returncode == 1 and "missing.qcow2" in r.stderr, "check of a missing file: exit 1, names it", r.stderr)
    d.done()


def test_convert():
    d = Dir()
    size = 12 * MIB
    data = pattern_data(11, size, 65536)
    d.write("src.raw", data)
    r = d.d("convert", "-f", "raw", "-O", "qcow2", "src.raw", "a.qcow2")
    t.ok(r.returncode == 0, "convert raw -> qcow2", r.stderr)
    qemu_clean(d, "a.qcow2", "convert raw -> qcow2")
    same_content(d, "a.qcow2", data, "convert raw -> qcow2")
    alloc = json_of(d.q("check", "--output=json", "a.qcow2")).get("allocated-clusters", 0)
    t.ok(alloc < size // 65536, f"convert raw -> qcow2 leaves zero clusters unallocated ({alloc} allocated)")
    r = d.d("convert", "-p", "-O", "raw", "a.qcow2", "b.raw")
    t.ok(r.returncode == 0 and "(100.00/100%)" in r.stdout, "convert -p prints qemu-img's progress line",
         r.stdout + r.stderr)
    t.ok(d.read("b.raw") == bytes(data), "convert qcow2 -> raw: every byte is back")
    t.ok(os.stat(d.p("b.raw")).st_blocks * 512 < size, "convert qcow2 -> raw writes a sparse file")
    r = d.d("convert", "-S", "0", "-O", "raw", "a.qcow2", "full.raw")
    t.ok(r.returncode == 0 and os.stat(d.p("full.raw")).st_blocks * 512 >= size and
         d.read("full.raw") == bytes(data), "convert -S 0 allocates everything", r.stderr)
    for ctype in ("zlib", "zstd"):
        out = f"c-{ctype}.qcow2"
        r = d.d("convert", "-c", "-O", "qcow2", "-o", f"compression_type={ctype}", "a.qcow2", out)
        t.ok(r.returncode == 0, f"convert -c ({ctype})", r.stderr)
        qemu_clean(d, out, f"convert -c {ctype}")
        same_content(d, out, data, f"convert -c {ctype}")
        chk = json_of(d.q("check", "--output=json", out))
        t.ok(chk and chk.get("compressed-clusters", 0) > 0, f"convert -c {ctype}: clusters are compressed", chk)
        info = json_of(d.q("info", "--output=json", out))
        t.eq(info["format-specific"]["data"]["compression-type"], ctype, f"convert -c {ctype}: type recorded")
    r = d.d("convert", "-O", "qcow2", "-o", "cluster_size=4k,compat=0.10", "c-zstd.qcow2", "small.qcow2")
    t.ok(r.returncode == 0, "convert compressed zstd -> v2 with 4 KiB clusters", r.stderr)
    qemu_clean(d, "small.qcow2", "convert to v2 4k")
    same_content(d, "small.qcow2", data, "convert to v2 4k")
    # two inputs are concatenated
    d.write("half.raw", bytes(data[:size // 2]))
    r = d.d("convert", "-O", "qcow2", "half.raw", "half.raw", "two.qcow2")
    t.ok(r.returncode == 0, "convert of two inputs", r.stderr)
    same_content(d, "two.qcow2", bytes(data[:size // 2]) * 2, "convert of two inputs concatenates them")
    # -B: the output is an overlay holding only what the input's top layer has
    d.q("create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", "ov.qcow2")
    expect = bytearray(data)
    random_writes(d, "ov.qcow2", expect, 5)
    d.io("ov.qcow2", f"write -z {4 * MIB} {MIB}")
    expect[4 * MIB:5 * MIB] = bytes(MIB)
    r = d.d("convert", "-O", "qcow2", "-B", "a.qcow2", "-F", "qcow2", "ov.qcow2", "ov2.qcow2")
    t.ok(r.returncode == 0, "convert -B", r.stderr)
    same_content(d, "ov2.qcow2", expect, "convert -B output read with its backing file")
    big = json_of(d.q("check", "--output=json", "ov2.qcow2")).get("allocated-clusters", 0)
    t.ok(big < 40, f"convert -B copies only the overlay's clusters ({big})")
    # -n: into an existing image, whose old content must be overwritten (zeros too)
    d.write("junk.raw", b"\xee" * size)
    r = d.d("convert", "-n", "-O", "raw", "a.qcow2", "junk.raw")
    t.ok(r.returncode == 0 and d.read("junk.raw") == bytes(data), "convert -n overwrites an existing image",
         r.stderr)
    r = d.d("convert", "-O", "qcow2", "missing.raw", "x.qcow2")
    t.ok(r.returncode == 1 and "missing.raw" in r.stderr and not os.path.exists(d.p("x.qcow2")),
         "convert of a missing input fails before creating the output", r.stderr)
    d.done()


def test_compare():
    d, data = pattern_images(21)
    r = d.d("compare", "a.qcow2", "a.raw")
    t.ok(r.returncode == 0 and "Images are identical." in r.stdout, "compare: identical -> 0", r.stdout + r.stderr)
    d.io("a.qcow2", "write -P 0x5c 1234567 3")
    r, rq = d.d("compare", "a.qcow2", "a.raw"), d.q("compare", "a.qcow2", "a.raw")
    t.ok(r.returncode == 1 and r.stdout == rq.stdout and "Content mismatch at offset" in r.stdout,
         "compare: different -> 1, same offset as qemu-img", r.stdout + rq.stdout)
    with open(d.p("long.raw"), "wb") as f:
        f.write(data)
        f.write(bytes(MIB))
    r = d.d("compare", "-f", "raw", "-F", "raw", "a.raw", "long.raw")
    t.ok(r.returncode == 0 and "Warning: Image size mismatch!" in r.stdout,
         "compare: a longer image with a zero tail is identical", r.stdout + r.stderr)
    r = d.d("compare", "-s", "-f", "raw", "-F", "raw", "a.raw", "long.raw")
    t.ok(r.returncode == 1 and "Strict mode: Image size mismatch!" in r.stdout, "compare -s: size mismatch -> 1",
         r.stdout)
    r = d.d("compare", "a.raw", "missing.raw")
    t.ok(r.returncode == 2 and "missing.raw" in r.stderr, "compare: error -> 2", r.stderr)
    d.done()


def test_overlay_and_commit():
    if not QEMU_IO:
        t.skip("overlay and commit workflows", "qemu-io not installed")
        return
    d = Dir()
    size = 8 * MIB
    base = pattern_data(31, size)
    d.write("base.raw", base)
    r = d.d("convert", "-O", "qcow2", "base.raw", "A.qcow2")
    expect = bytearray(base)
    ok = r.returncode == 0
    for prev, name, seed in [("A", "B", 1), ("B", "C", 2), ("C", "D", 3)]:
        r = d.d("create", "-f", "qcow2", "-b", f"{prev}.qcow2", "-F", "qcow2", f"{name}.qcow2")
        ok &= r.returncode == 0 and random_writes(d, f"{name}.qcow2", expect, seed)
    d.io("D.qcow2", "write -z 6M 128k")
    expect[6 * MIB:6 * MIB + 131072] = bytes(131072)
    t.ok(ok, "a chain A <- B <- C <- D made by deskvm-img, written through by qemu-io")
    same_content(d, "D.qcow2", expect, "overlay chain")
    r = d.d("compare", "D.qcow2", "expect.raw")
    t.ok(r.returncode == 0, "deskvm-img compare reads the chain like qemu-img", r.stdout + r.stderr)
    for img in "BCD":
        shutil.copy(d.p(f"{img}.qcow2"), d.p(f"{img}2.qcow2"))
    r = d.d("commit", "-p", "-b", "A.qcow2", "D.qcow2")
    t.ok(r.returncode == 0 and "Image committed." in r.stdout, "commit -b A D (through B and C)",
         r.stdout + r.stderr)
    same_content(d, "A.qcow2", expect, "commit D into A: A holds D's view")
    qemu_clean(d, "A.qcow2", "commit D into A")
    same_content(d, "D.qcow2", expect, "commit -b keeps D intact (implies -d)")
    # default commit into the immediate backing file empties the top
    d2 = Dir()
    d2.write("base.raw", base)
    d2.q("convert", "-O", "qcow2", "base.raw", "A.qcow2")
    d2.q("create", "-f", "qcow2", "-b", "A.qcow2", "-F", "qcow2", "B.qcow2")
    e2 = bytearray(base)
    random_writes(d2, "B.qcow2", e2, 9)
    r = d2.d("commit", "B.qcow2")
    t.ok(r.returncode == 0, "commit B into A", r.stderr)
    same_content(d2, "A.qcow2", e2, "commit B: A has B's data")
    same_content(d2, "B.qcow2", e2, "commit B: B still reads the same")
    m = json_of(d2.q("map", "--output=json", "B.qcow2"))
    t.ok(m is not None and all(e["depth"] == 1 for e in m), "commit B: B is emptied (qemu-img map)", m)
    qemu_clean(d2, "B.qcow2", "emptied B")
    r = d2.d("commit", "A.qcow2")
    t.ok(r.returncode == 1 and "A.qcow2" in r.stderr and "backing file" in r.stderr,
         "commit of an image without backing file is refused", r.stderr)
    d2.done()
    d.done()


def test_rebase():
    d = Dir()
    size = 6 * MIB
    base = pattern_data(41, size)
    d.write("base.raw", base)
    d.q("convert", "-O", "qcow2", "base.raw", "A.qcow2")
    expect = bytearray(base)
    d.q("create", "-f", "qcow2", "-b", "A.qcow2", "-F", "qcow2", "B.qcow2")
    random_writes(d, "B.qcow2", expect, 51)
    d.q("create", "-f", "qcow2", "-b", "B.qcow2", "-F", "qcow2", "C.qcow2")
    random_writes(d, "C.qcow2", expect, 52)
    r = d.d("rebase", "-p", "-b", "A.qcow2", "-F", "qcow2", "C.qcow2")
    t.ok(r.returncode == 0, "rebase C from B onto A (safe)", r.stdout + r.stderr)
    info = json_of(d.q("info", "--output=json", "C.qcow2"))
    t.ok(info and info.get("backing-filename") == "A.qcow2" and info.get("backing-filename-format") == "qcow2",
         "rebase: the header names the new backing file and format", info)
    same_content(d, "C.qcow2", expect, "safe rebase keeps C's content")
    qemu_clean(d, "C.qcow2", "safe rebase")
    shutil.copy(d.p("A.qcow2"), d.p("A-copy.qcow2"))
    before = d.md5("C.qcow2")
    r = d.d("rebase", "-u", "-b", "A-copy.qcow2", "-F", "qcow2", "C.qcow2")
    info = json_of(d.q("info", "--output=json", "C.qcow2"))
    t.ok(r.returncode == 0 and info.get("backing-filename") == "A-copy.qcow2", "rebase -u rewrites the header",
         r.stderr)
    same_content(d, "C.qcow2", expect, "rebase -u onto an identical copy keeps the content")
    t.ok(d.md5("C.qcow2") != before, "rebase -u changed the file (header only)")
    r = d.d("rebase", "-b", "", "C.qcow2")
    info = json_of(d.q("info", "--output=json", "C.qcow2"))
    t.ok(r.returncode == 0 and "backing-filename" not in info, "rebase -b '' removes the backing file", r.stderr)
    same_content(d, "C.qcow2", expect, "rebase -b '' copies everything the backing file provided")
    qemu_clean(d, "C.qcow2", "standalone after rebase")
    r = d.d("rebase", "-b", "missing.qcow2", "-F", "qcow2", "B.qcow2")
    t.ok(r.returncode == 1 and "missing.qcow2" in r.stderr, "rebase onto a missing file is refused", r.stderr)
    d.done()


def test_snapshots():
    d = Dir()
    size = 4 * MIB
    one = pattern_data(61, size)
    d.write("one.raw", one)
    d.d("convert", "-O", "qcow2", "one.raw", "s.qcow2")
    r = d.d("snapshot", "-c", "first", "s.qcow2")
    t.ok(r.returncode == 0, "snapshot -c", r.stderr)
    two = bytearray(one)
    random_writes(d, "s.qcow2", two, 62)
    r1, r2 = d.d("snapshot", "-l", "s.qcow2"), d.q("snapshot", "-l", "s.qcow2")
    t.ok(r1.returncode == 0 and "first" in r1.stdout and r1.stdout == r2.stdout,
         "snapshot -l lists it exactly like qemu-img", r1.stdout + r2.stdout)
    qemu_clean(d, "s.qcow2", "snapshot made by deskvm-img")
    d.q("snapshot", "-c", "second", "s.qcow2")
    ours, theirs = json_of(d.d("info", "--output=json", "s.qcow2")), json_of(d.q("info", "--output=json", "s.qcow2"))
    t.eq(drop_actual_size(ours), drop_actual_size(theirs), "info JSON with snapshots equals qemu-img's")
    r = d.d("snapshot", "-a", "first", "s.qcow2")
    t.ok(r.returncode == 0, "snapshot -a first", r.stderr)
    same_content(d, "s.qcow2", one, "snapshot -a restores the content")
    r = d.d("snapshot", "-a", "second", "s.qcow2")
    same_content(d, "s.qcow2", two, "snapshot -a of qemu-img's snapshot restores its content")
    r = d.d("snapshot", "-d", "first", "s.qcow2")
    r2 = d.q("snapshot", "-l", "s.qcow2")
    t.ok(r.returncode == 0 and "first" not in r2.stdout and "second" in r2.stdout, "snapshot -d", r.stderr)
    qemu_clean(d, "s.qcow2", "snapshot deleted")
    r = d.d("snapshot", "-a", "nope", "s.qcow2")
    t.ok(r.returncode == 1 and "nope" in r.stderr, "applying a missing snapshot fails and names it", r.stderr)
    d.done()


def test_resize():
    d, data = pattern_images(71)
    r = d.d("resize", "a.qcow2", "+2M")
    size = json_of(d.q("info", "--output=json", "a.qcow2"))["virtual-size"]
    t.ok(r.returncode == 0 and "Image resized." in r.stdout and size == 6 * MIB, "resize +2M", r.stderr)
    same_content(d, "a.qcow2", bytes(data) + bytes(2 * MIB), "grown image reads zeros past the old end")
    r = d.d("resize", "a.qcow2", "-3M")
    t.ok(r.returncode == 1 and "--shrink" in r.stderr, "shrinking needs --shrink", r.stderr)
    r = d.d("resize", "--shrink", "a.qcow2", "-3M")
    size = json_of(d.q("info", "--output=json", "a.qcow2"))["virtual-size"]
    t.ok(r.returncode == 0 and size == 3 * MIB, "resize --shrink -3M", r.stderr)
    same_content(d, "a.qcow2", data[:3 * MIB], "shrunk image keeps its first 3 MiB")
    qemu_clean(d, "a.qcow2", "grown and shrunk")
    r = d.d("resize", "-f", "raw", "a.raw", "5M")
    t.ok(r.returncode == 0 and os.path.getsize(d.p("a.raw")) == 5 * MIB, "resize of a raw image", r.stderr)
    d.done()


def test_qemu_images_everywhere():
    """Images made by qemu-img (v2, v3, chains, snapshots, compressed) through every deskvm-img subcommand."""
    d = Dir()
    data = pattern_data(81, 6 * MIB)
    d.write("src.raw", data)
    d.q("convert", "-O", "qcow2", "-o", "compat=0.10", "src.raw", "v2.qcow2")
    d.q("convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", "src.raw", "z.qcow2")
    d.q("create", "-f", "qcow2", "-b", "v2.qcow2", "-F", "qcow2", "top.qcow2")
    expect = bytearray(data)
    random_writes(d, "top.qcow2", expect, 82)
    d.q("snapshot", "-c", "snap", "z.qcow2")
    ok = True
    for img in ["v2.qcow2", "z.qcow2", "top.qcow2"]:
        r = d.d("info", img)
        ok &= r.returncode == 0
        r = d.d("check", img)
        ok &= r.returncode == 0
        r = d.d("map", "--output=json", img)
        ok &= r.returncode == 0 and json_of(r) == json_of(d.q("map", "--output=json", img))
    t.ok(ok, "info, check and map accept qemu-img's v2, zstd-compressed and overlay images")
    r = d.d("convert", "-O", "raw", "top.qcow2", "top.raw")
    t.ok(r.returncode == 0 and d.read("top.raw") == bytes(expect), "convert reads qemu-img's chain", r.stderr)
    r = d.d("compare", "z.qcow2", "src.raw")
    t.ok(r.returncode == 0, "compare reads qemu-img's zstd clusters", r.stdout + r.stderr)
    r = d.d("snapshot", "-l", "z.qcow2")
    t.ok(r.returncode == 0 and "snap" in r.stdout, "snapshot -l of qemu-img's snapshot", r.stderr)
    r = d.d("rebase", "-b", "", "top.qcow2")
    same_content(d, "top.qcow2", expect, "rebase of a qemu-img overlay")
    r = d.d("resize", "v2.qcow2", "+1M")
    t.ok(r.returncode == 0, "resize of a qemu-img v2 image", r.stderr)
    qemu_clean(d, "v2.qcow2", "qemu-img v2 image resized by deskvm-img")
    d.done()


def test_errors_write_nothing():
    d = Dir()
    d.q("create", "-f", "qcow2", "good.qcow2", "1M")
    raw = bytearray(d.read("good.qcow2"))
    raw[20:24] = struct.pack(">I", 40)  # cluster_bits out of range
    d.write("bad.qcow2", raw)
    before = d.md5("bad.qcow2")
    results = [d.d("resize", "bad.qcow2", "2M"), d.d("snapshot", "-c", "x", "bad.qcow2"),
               d.d("check", "-r", "all", "bad.qcow2"), d.d("rebase", "-u", "-b", "", "bad.qcow2"),
               d.d("info", "bad.qcow2")]
    t.ok(all(r.returncode == 1 and r.stderr.startswith("deskvm-img: bad.qcow2: ") for r in results),
         "a bad header: every subcommand fails naming the file", "\n".join(r.stderr for r in results))
    t.ok(d.md5("bad.qcow2") == before, "a bad header: nothing was written")
    r = d.d("info", "nothere.qcow2")
    t.ok(r.returncode == 1 and "nothere.qcow2" in r.stderr and "No such file" in r.stderr,
         "a missing file: named, with the reason", r.stderr)
    d.done()


if not QEMU_IMG:
    t.skip("deskvm-img against qemu-img", "qemu-img not found (install qemu-utils: tools/install-deps)")
elif not os.path.exists(DIMG):
    t.ok(False, "deskvm-img is built", DIMG)
else:
    for fn in [test_help, test_create_and_info, test_map_and_check, test_convert, test_compare,
               test_overlay_and_commit, test_rebase, test_snapshots, test_resize, test_qemu_images_everywhere,
               test_errors_write_nothing]:
        t.run(fn, fn.__name__)
t.done()
