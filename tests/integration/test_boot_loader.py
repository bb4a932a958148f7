#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Integration test for the direct Linux loader (machine/boot_linux.c) with the real Debian kernel of the test guest
image: `tests/unit/test-boot-linux --load-real KERNEL INITRD` loads it into a 512 MiB machine and prints key=value
facts, which are checked here against an independent reading of the bzImage (Python's lzma).
Prints TAP. Env: DESKVM_SRCDIR, DESKVM_BUILDDIR, DESKVM_CACHE (passed to build-image).
"""
import hashlib
import lzma
import os
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("DESKVM_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
BUILDDIR = os.environ.get("DESKVM_BUILDDIR") or SRCDIR
sys.path.insert(0, os.path.join(SRCDIR, "tests", "lib"))
from deskvm_harness import build_guest_image, read_manifest, run  # noqa: E402
from tap import Tap  # noqa: E402

TOOL = os.path.join(BUILDDIR, "tests", "unit", "test-boot-linux")
RAM = 512 << 20
PAGE = 4096

t = Tap()


def parse_facts(out):
    """key=value lines; repeated keys (segment, e820) become lists."""
    facts = {"segment": [], "e820": []}
    for line in out.splitlines():
        if "=" not in line:
            continue
        k, v = line.split("=", 1)
        if k in ("segment", "e820"):
            facts[k].append(tuple(int(x, 0) for x in v.split(",")))
        else:
            facts[k] = v
    return facts


def read_bzimage(path):
    """The setup header fields this test needs, and the payload bytes."""
    with open(path, "rb") as f:
        data = f.read()
    setup_sects = data[0x1F1] or 4
    pm = (setup_sects + 1) * 512
    off, length = struct.unpack_from("<II", data, 0x248)
    hdr = {
        "version": struct.unpack_from("<H", data, 0x206)[0],
        "initrd_addr_max": struct.unpack_from("<I", data, 0x22C)[0],
        "init_size": struct.unpack_from("<I", data, 0x260)[0],
        "pref_address": struct.unpack_from("<Q", data, 0x258)[0],
    }
    return data, hdr, data[pm + off:pm + off + length]


def elf_facts(elf):
    """(entry, [(paddr, offset, filesz, memsz)]) of an ELF64 file."""
    entry, phoff = struct.unpack_from("<QQ", elf, 24)
    phentsize, phnum = struct.unpack_from("<HH", elf, 54)
    segs = []
    for i in range(phnum):
        p_type, _, p_off, _, p_paddr, p_filesz, p_memsz = struct.unpack_from("<IIQQQQQ", elf, phoff + i * phentsize)
        if p_type == 1 and p_memsz:
            segs.append((p_paddr, p_off, p_filesz, p_memsz))
    return entry, segs


def expected_e820():
    return [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xE0000, 0x20000, 2), (0x100000, RAM - 0x100000, 1),
            (0xB0000000, 0x10000000, 2)]


def check(kernel, initrd, manifest_version):
    rc, out, err = run([TOOL, "--load-real", kernel, initrd], timeout=300)
    f = parse_facts(out)
    if not t.ok(rc == 0 and f.get("ok") == "1", "test-boot-linux --load-real loads the Debian kernel and initrd",
                f"rc={rc}\nstdout:\n{out}\nstderr:\n{err}"):
        return
    t.diag(f"decompressed {int(f['decompressed_size']) >> 20} MiB of {f['format']} in {f['decompress_ms']} ms")
    data, hdr, payload = read_bzimage(kernel)
    t.eq(f.get("format"), "xz", "payload format is xz")
    t.eq(f.get("direct"), "1", "the decompressed vmlinux is entered directly")
    t.eq(int(f.get("entry", "0"), 0), 0x1000000, "entry point is 0x1000000 (startup_64)")
    t.ok("6.1" in f.get("version", ""), "kernel version string contains 6.1", f"version={f.get('version')!r}")
    t.ok(f.get("version", "").split(" ")[0] == manifest_version, "version string matches the image manifest",
         f"loader: {f.get('version')!r}\nmanifest: {manifest_version!r}")
    t.eq(int(f.get("protocol", "0"), 16), hdr["version"], "boot protocol version as in the header")
    try:
        ms = float(f.get("decompress_ms", "nan"))
    except ValueError:
        ms = float("nan")
    t.ok(ms > 0 and ms < 60000, "decompression time is reported", f"decompress_ms={f.get('decompress_ms')!r}")

    # Independent decompression: Python's lzma stops at the end of the xz stream (the appended size is left over).
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elf = dec.decompress(payload)
    t.ok(dec.eof and len(dec.unused_data) == 4 and struct.unpack("<I", dec.unused_data)[0] == len(elf),
         "payload is one xz stream followed by its le32 uncompressed size", f"unused: {dec.unused_data!r}")
    t.eq(int(f.get("decompressed_size", "0")), len(elf), "decompressed size matches Python's lzma")
    entry, segs = elf_facts(elf)
    t.eq(entry, 0x1000000, "vmlinux e_entry is physical 0x1000000")
    t.eq(f["segment"], [(p, fs, ms_) for p, _, fs, ms_ in segs], "loaded segments are the vmlinux PT_LOADs")
    eo = next((off + entry - p for p, off, fs, _ in segs if p <= entry < p + fs), None)
    want = struct.unpack_from("<I", elf, eo)[0] if eo is not None else None
    t.eq(int(f.get("entry_bytes", "0"), 16), want, "guest RAM at the entry holds the vmlinux's startup_64 bytes")
    kstart, kend = int(f.get("kernel_start", "0"), 0), int(f.get("kernel_end", "0"), 0)
    t.ok(kstart == 0x1000000 and kend >= hdr["pref_address"] + hdr["init_size"]
         and all(kstart <= p and p + m <= kend for p, _, m in f["segment"]),
         "kernel range covers the segments and [pref_address, +init_size)", f"{kstart:#x}-{kend:#x}")

    addr, size = int(f.get("initrd_addr", "0"), 0), int(f.get("initrd_size", "0"))
    t.eq(size, os.path.getsize(initrd), "initrd size is the file's size")
    t.ok(addr % PAGE == 0 and addr + size - 1 <= hdr["initrd_addr_max"] and addr + size <= RAM and addr >= kend,
         "initrd is page-aligned, below initrd_addr_max and RAM, above the kernel",
         f"initrd {addr:#x}+{size:#x}, initrd_addr_max {hdr['initrd_addr_max']:#x}, kernel end {kend:#x}")
    t.eq(addr, (RAM - size) & ~(PAGE - 1), "initrd is placed as high as possible")
    t.eq(f["e820"], expected_e820(), "e820 map of a 512 MiB machine")

    with tempfile.TemporaryDirectory(prefix="deskvm-boot-cache.") as cache:
        env = dict(os.environ, DESKVM_CACHE=cache)
        rc1, out1, err1 = run([TOOL, "--load-real-cached", kernel, initrd], timeout=300, env=env)
        rc2, out2, err2 = run([TOOL, "--load-real-cached", kernel, initrd], timeout=300, env=env)
        f1, f2 = parse_facts(out1), parse_facts(out2)
        cached = os.path.join(cache, "vmlinux", hashlib.sha256(data).hexdigest())
        t.ok(rc1 == 0 and f1.get("from_cache") == "0" and os.path.isfile(cached)
             and os.path.getsize(cached) == len(elf),
             "first cached load decompresses and stores vmlinux/<sha256 of bzImage>",
             f"rc={rc1}\n{out1}\n{err1}\nfiles: {os.listdir(cache)}")
        same = all(f1.get(k) == f2.get(k) for k in ("entry", "segment", "initrd_addr", "decompressed_size"))
        t.ok(rc2 == 0 and f2.get("from_cache") == "1" and same, "second load comes from the cache with the same result",
             f"rc={rc2}\n{out2}\n{err2}")
        t.diag(f"cache miss {f1.get('decompress_ms')} ms, hit {f2.get('decompress_ms')} ms")


def main():
    if not os.access(TOOL, os.X_OK):
        t.ok(False, "tests/unit/test-boot-linux is built", TOOL)
        t.done()
    image = build_guest_image(timeout=1500)
    if not image.dir:
        t.skip("real kernel checks", f"build-image failed (rc={image.rc}): {image.err.strip().splitlines()[-1:]}")
        t.done()
    manifest = read_manifest(os.path.join(image.dir, "manifest"))
    t.run(lambda: check(os.path.join(image.dir, "vmlinuz"), os.path.join(image.dir, "initrd.img"),
                        manifest.get("kernel_version", "")), "real kernel")
    t.done()


if __name__ == "__main__":
    main()
