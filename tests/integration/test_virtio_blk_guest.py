#!/usr/bin/env python3
"""virtio-blk end to end on the software CPU: the Debian guest (virtio_pci + virtio_blk modules) gets a raw disk
(discard=unmap), a qcow2 disk and a read-only raw disk. In one boot it checks the sizes, serials and read-only flags
sysfs shows, md5sums a region the host filled with random data, writes a known pattern with dd conv=fsync, discards
a range, and fails to write the read-only disk. After poweroff the host finds the pattern in both images (the qcow2
one through qemu-img convert), the discarded range reading as zeros, and `qemu-img check` clean."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import build_guest_image, guest_command, read_text, run_deskvm, tmpdir, wait_exit  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
MiB = 1 << 20
BOOT_TIMEOUT = 240

img = build_guest_image(timeout=900)
if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
    t.done()
image = img.dir
d = tmpdir()


def eq(got, want, name, detail=""):
    return t.ok(got == want, name, f"got:  {got!r}\nwant: {want!r}\n{detail}")


def qemu_img(*args):
    return subprocess.run(["qemu-img"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
                          text=True)


# Host side: random data at 8 MiB of the raw and qcow2 disks, random data at 24 MiB of the raw disk (discarded by
# the guest), a small read-only disk.
raw = os.path.join(d, "raw.img")
qcow = os.path.join(d, "disk.qcow2")
ro = os.path.join(d, "ro.img")
rand_a, rand_b, rand_c = os.urandom(MiB), os.urandom(MiB), os.urandom(MiB)
with open(raw, "wb") as f:
    f.truncate(64 * MiB)
    f.seek(8 * MiB)
    f.write(rand_a)
    f.seek(24 * MiB)
    f.write(rand_c)
src = os.path.join(d, "qsrc.raw")
with open(src, "wb") as f:
    f.truncate(48 * MiB)
    f.seek(8 * MiB)
    f.write(rand_b)
r = qemu_img("convert", "-f", "raw", "-O", "qcow2", src, qcow)
eq(r.returncode, 0, "qemu-img makes the qcow2 disk", r.stdout)
os.unlink(src)
with open(ro, "wb") as f:
    f.write(b"\x5a" * (16 * MiB))
pattern = (b"deskvm-pattern\n" * (MiB // 15 + 1))[:MiB]

# The option first: bad values exit 2 naming --disk; an image that does not open exits 1 with the block layer's
# message; the --config key takes a ;-separated list.
r = run_deskvm(["--disk", f"file={raw},format=vmdk"])
eq((r.returncode, r.stderr.strip()), (2, "deskvm: --disk: format 'vmdk' is not raw or qcow2"),
   "--disk with a bad format exits 2 with one line naming the option")
r = run_deskvm(["--disk", f"file={raw},cache=none,bogus=1"])
t.ok(r.returncode == 2 and "--disk: unknown parameter 'bogus'" in r.stderr, "an unknown --disk parameter exits 2",
     r.stderr)
r = run_deskvm([a for i in range(9) for a in ("--disk", f"file={raw}")])
t.ok(r.returncode == 2 and "--disk: at most 8 disks" in r.stderr, "a ninth disk exits 2", r.stderr)
missing = os.path.join(d, "missing.img")
qsock = os.path.join(d, "q.sock")
r = run_deskvm(["--accel", "qtest", "--qtest", "unix:" + qsock, "--disk", f"file={raw},format=raw",
                "--disk", f"file={missing},format=raw"])
t.ok(r.returncode == 1 and f"{missing}: could not open: No such file or directory" in r.stderr,
     "an image that does not open exits 1 with the block layer's message", r.stderr)
conf = os.path.join(d, "vm.ini")
with open(conf, "w") as f:
    f.write(f"[deskvm]\naccel = qtest\ndisk = file={ro},format=raw,readonly=on;file={missing}\n")
r = run_deskvm(["--config", conf, "--qtest", "unix:" + qsock])
t.ok(r.returncode == 1 and f"{missing}: could not open" in r.stderr,
     "the config file's disk key takes a list (its second disk is opened)", r.stderr)
r = run_deskvm(["--config", conf, "--qtest", "unix:" + qsock, "--disk", f"file={ro},cache=directsync"])
eq((r.returncode, r.stderr.strip()), (2, "deskvm: --disk: cache 'directsync' is not writeback, none or unsafe"),
   "a bad cache mode exits 2")

run = ("for d in vda vdb vdc; do echo VBLK-DEV $d $(cat /sys/block/$d/size) $(cat /sys/block/$d/ro) "
       "$(cat /sys/block/$d/serial); done; "
       "for d in vda vdb; do echo VBLK-MD5 $d $(dd if=/dev/$d bs=1M skip=8 count=1 2>/dev/null | md5sum); done; "
       "yes deskvm-pattern | head -c 1048576 >/tmp/p; "
       "for d in vda vdb; do dd if=/tmp/p of=/dev/$d bs=1M seek=16 conv=fsync 2>/dev/null; echo VBLK-W $d $?; done; "
       "blkdiscard -o 25165824 -l 1048576 /dev/vda; echo VBLK-DISCARD $?; "
       "dd if=/tmp/p of=/dev/vdc bs=1M seek=1 conv=fsync 2>/dev/null; echo VBLK-W vdc $?; "
       "echo 3 >/proc/sys/vm/drop_caches; "
       "echo VBLK-RB $(dd if=/dev/vdb bs=1M skip=16 count=1 2>/dev/null | md5sum)")
serial = os.path.join(d, "serial.txt")
log = os.path.join(d, "log.txt")
args = guest_command(image, f'console=ttyS0 quiet deskvm_modules=virtio_pci,virtio_blk deskvm_run="{run}"',
                     "file:" + serial, log, memory="256M",
                     extra=["--disk", f"file={raw},format=raw,discard=unmap",
                            "--disk", f"file={qcow},format=qcow2",
                            "--disk", f"file={ro},format=raw,readonly=on"])
start = time.monotonic()
p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
rc = wait_exit(p, BOOT_TIMEOUT)
p.stderr.close()
t.diag(f"boot + disk checks + poweroff on emu: {time.monotonic() - start:.1f} s")


out, logtext = read_text(serial), read_text(log)
ctx = out[-3000:] + "\n--- deskvm log ---\n" + logtext[-1500:]
eq(rc, 0, "the guest runs the disk checks and powers off; deskvm exits 0", ctx)
t.ok("DESKVM-GUEST: module-failed" not in out, "virtio_pci and virtio_blk load", ctx)
devs = {m[0]: m[1:] for m in re.findall(r"VBLK-DEV (vd\w) (\d+) (\d) (\S+)", out)}
eq(devs.get("vda"), ("131072", "0", "deskvm-disk0"), "vda: 64 MiB, writable, serial deskvm-disk0 (GET_ID)", ctx)
eq(devs.get("vdb"), ("98304", "0", "deskvm-disk1"), "vdb: the 48 MiB qcow2 disk", ctx)
eq(devs.get("vdc"), ("32768", "1", "deskvm-disk2"), "vdc: 16 MiB and read-only (VIRTIO_BLK_F_RO)", ctx)
md5 = dict(re.findall(r"VBLK-MD5 (vd\w) ([0-9a-f]{32})", out))
eq(md5.get("vda"), hashlib.md5(rand_a).hexdigest(), "the guest reads the host's random data from the raw disk", ctx)
eq(md5.get("vdb"), hashlib.md5(rand_b).hexdigest(), "the guest reads the host's random data from the qcow2 disk",
     ctx)
writes = dict(re.findall(r"VBLK-W (vd\w) (\d+)", out))
eq((writes.get("vda"), writes.get("vdb")), ("0", "0"), "dd conv=fsync to both writable disks succeeds", ctx)
t.ok(writes.get("vdc") not in (None, "0"), "a write to the read-only disk fails in the guest", ctx)
t.ok("VBLK-DISCARD 0" in out, "blkdiscard on the discard=unmap disk succeeds", ctx)
t.ok(f"VBLK-RB {hashlib.md5(pattern).hexdigest()}" in out, "the pattern reads back in the guest after dropping caches",
     ctx)

with open(raw, "rb") as f:
    f.seek(16 * MiB)
    t.ok(f.read(MiB) == pattern, "the pattern is in the raw image on the host")
    f.seek(8 * MiB)
    t.ok(f.read(MiB) == rand_a, "the raw image's other data is untouched")
    f.seek(24 * MiB)
    t.ok(f.read(MiB) == bytes(MiB), "the discarded range reads as zeros on the host")
conv = os.path.join(d, "qcow.raw")
r = qemu_img("convert", "-f", "qcow2", "-O", "raw", qcow, conv)
eq(r.returncode, 0, "qemu-img converts the qcow2 image", r.stdout)
if os.path.exists(conv):
    with open(conv, "rb") as f:
        f.seek(16 * MiB)
        t.ok(f.read(MiB) == pattern, "the pattern is in the qcow2 image (read by qemu-img)")
        f.seek(8 * MiB)
        t.ok(f.read(MiB) == rand_b, "the qcow2 image's other data is untouched")
r = qemu_img("check", "-f", "qcow2", qcow)
eq(r.returncode, 0, "qemu-img check finds the qcow2 image clean", r.stdout)
with open(ro, "rb") as f:
    t.ok(f.read() == b"\x5a" * (16 * MiB), "the read-only image is unchanged")
t.ok("virtio-blk" not in logtext or not re.search(r"virtio-blk\d: .*(failed|beyond|unsupported)", logtext),
     "deskvm logged no virtio-blk request errors", logtext[-2000:])
if not t.failed:
    shutil.rmtree(d, ignore_errors=True)
t.done()
