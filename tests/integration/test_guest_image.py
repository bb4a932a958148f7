#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Integration test for the test-guest image builder (tests/guest/build-image) and the guest's /init.

Builds (or reuses) the image, checks the kernel and the initramfs, runs the guest program on the host, and runs the
image's /init in a sandbox with fake modprobe/insmod/poweroff applets to check the knob/marker contract.
Prints TAP. Env: DESKVM_SRCDIR (source tree; default: derived from this file), DESKVM_CACHE (passed to build-image).
"""
import os
import re
import shutil
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("DESKVM_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "lib"))
sys.path.insert(1, os.path.join(os.path.dirname(HERE), "lib"))
from deskvm_harness import BUILD_IMAGE, build_guest_image, read_manifest, run  # noqa: E402
from tap import Tap  # noqa: E402

MARK = "DESKVM-GUEST: "
FAKE_TAG = "deskvm-fake-applet"
# Applets the sandboxed init must not reach for real: replaced by logging scripts in the extracted copy.
FAKED_APPLETS = ["sbin/modprobe", "sbin/insmod", "sbin/rmmod", "sbin/poweroff", "sbin/reboot", "sbin/halt"]

t = Tap()


class CpioError(Exception):
    pass


def extract_newc(image, dest):
    """Extracts an uncompressed newc cpio into DEST (directories, regular files, symlinks; device nodes are
    skipped). Returns {name: (mode, uid, gid)}. Refuses names that would leave DEST."""
    with open(image, "rb") as f:
        data = f.read()
    entries = {}
    pos = 0
    dest_real = os.path.realpath(dest)
    while True:
        if pos + 110 > len(data):
            raise CpioError(f"truncated header at offset {pos}")
        hdr = data[pos:pos + 110]
        if hdr[:6] != b"070701":
            raise CpioError(f"bad magic {hdr[:6]!r} at offset {pos}")
        fields = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, uid, gid, filesize, namesize = fields[1], fields[2], fields[3], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode("utf-8")
        pos = (name_start + namesize + 3) & ~3
        body = data[pos:pos + filesize]
        if len(body) != filesize:
            raise CpioError(f"truncated data for {name}")
        pos = (pos + filesize + 3) & ~3
        if name == "TRAILER!!!":
            break
        name = name[2:] if name.startswith("./") else name
        if name in ("", "."):
            continue
        if name.startswith("/") or ".." in name.split("/"):
            raise CpioError(f"unsafe name {name!r}")
        entries[name] = (mode, uid, gid)
        path = os.path.join(dest, name)
        parent = os.path.realpath(os.path.dirname(path))
        if parent != dest_real and not parent.startswith(dest_real + os.sep):
            raise CpioError(f"{name!r} would be written outside the destination")
        kind = mode & 0o170000
        if kind == 0o040000:
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode & 0o7777)
        elif kind == 0o100000:
            with open(path, "wb") as out:
                out.write(body)
            os.chmod(path, mode & 0o7777)
        elif kind == 0o120000:
            os.symlink(body.decode("utf-8"), path)
    return entries


def elf_is_static(path):
    """True if PATH is an ELF64 file without a PT_INTERP program header (i.e. not dynamically linked)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        if struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3:
            return False
    return True


def parse_modules_dep(path):
    deps = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if ":" not in line:
                continue
            mod, rest = line.split(":", 1)
            deps[mod.strip()] = rest.split()
    return deps


def modname(relpath):
    base = os.path.basename(relpath)
    base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
    return base.replace("-", "_")


def check_build():
    """Returns (image dir, manifest) or (None, None)."""
    if not os.access(BUILD_IMAGE, os.X_OK):
        t.ok(False, "build-image exists and is executable", BUILD_IMAGE)
        return None, None
    start = time.monotonic()
    build = build_guest_image(timeout=1500)
    cold = time.monotonic() - start
    outdir = build.dir
    if not t.ok(outdir is not None, "build-image exits 0 and prints an existing directory",
                f"rc={build.rc}\nstdout:\n{build.out}\nstderr:\n{build.err[-4000:]}"):
        return None, None
    t.diag(f"image: {outdir} (first run {cold:.1f}s)")

    initrd = os.path.join(outdir, "initrd.img")
    mtime = os.stat(initrd).st_mtime_ns
    start = time.monotonic()
    again = build_guest_image(timeout=600)
    warm = time.monotonic() - start
    t.ok(again.dir == outdir and "cache hit" in again.err and os.stat(initrd).st_mtime_ns == mtime and warm < 60,
         f"second build-image run is a cache hit ({warm:.1f}s)",
         f"rc={again.rc}\nstdout:\n{again.out}\nstderr:\n{again.err[-2000:]}")

    rc3, out3, err3 = run([BUILD_IMAGE, "--print-key"], timeout=300)
    t.eq(out3.strip() if rc3 == 0 else f"rc={rc3}: {err3}", os.path.basename(outdir),
         "--print-key equals the image directory's name")

    current = os.path.join(os.path.dirname(outdir), "current")
    t.ok(os.path.islink(current) and os.path.realpath(current) == os.path.realpath(outdir),
         "guest/current points at the image directory",
         f"{current} -> {os.readlink(current) if os.path.islink(current) else '(not a symlink)'}")

    manifest = read_manifest(os.path.join(outdir, "manifest"))
    wanted = ["key", "kernel_version", "kernel_package", "kernel_package_version", "busybox_version", "modules"]
    missing = [k for k in wanted if not manifest.get(k)]
    t.ok(not missing and manifest.get("key") == os.path.basename(outdir),
         "manifest has the expected keys and the image's key", f"missing: {missing}\nmanifest: {manifest}")
    return outdir, manifest


def check_kernel(outdir, manifest):
    with open(os.path.join(outdir, "vmlinuz"), "rb") as f:
        data = f.read()
    ok = len(data) > 0x210 and data[0x202:0x206] == b"HdrS"
    proto = struct.unpack_from("<H", data, 0x206)[0] if ok else 0
    t.ok(ok and proto >= 0x020C, f"vmlinuz is a bzImage (boot protocol {proto >> 8}.{proto & 0xff:02d} >= 2.12)",
         f"magic {data[0x202:0x206]!r}, protocol {proto:#x}")
    version = ""
    if ok:
        ptr = struct.unpack_from("<H", data, 0x20E)[0] + 0x200
        end = data.find(b"\0", ptr)
        if 0 < ptr < len(data) and end > ptr:
            version = data[ptr:end].decode("ascii", "replace")
    t.ok(version.split(" ")[0] == manifest.get("kernel_version"),
         "manifest kernel_version matches the bzImage's version string",
         f"bzImage: {version!r}\nmanifest: {manifest.get('kernel_version')!r}")


def check_initrd(outdir, manifest, root):
    """Extracts the initrd into ROOT and checks its contents. Returns True if it could be extracted."""
    initrd = os.path.join(outdir, "initrd.img")
    with open(initrd, "rb") as f:
        magic = f.read(6)
    t.eq(magic, b"070701", "initrd.img is an uncompressed newc cpio")
    try:
        entries = extract_newc(initrd, root)
    except (CpioError, OSError, UnicodeDecodeError) as e:
        t.ok(False, "initrd.img parses as newc cpio", str(e))
        return False
    t.ok(True, f"initrd.img parses as newc cpio ({len(entries)} entries)")
    not_root = [n for n, (_, uid, gid) in entries.items() if uid or gid]
    t.ok(not not_root, "every initramfs entry is owned by root:root", f"{not_root[:10]}")

    init = os.path.join(root, "init")
    t.ok(os.path.isfile(init) and not os.path.islink(init) and os.access(init, os.X_OK),
         "/init exists and is executable")
    busybox = os.path.join(root, "bin", "busybox")
    rc, out, err = run([busybox, "sh", "-n", init], timeout=30)
    t.ok(rc == 0, "busybox sh -n /init passes", f"rc={rc}\n{out}{err}")
    rc, out, err = run([busybox, "echo", "deskvm"], timeout=30)
    t.ok(rc == 0 and out == "deskvm\n", "the image's /bin/busybox runs on the host", f"rc={rc}\n{out!r}\n{err}")
    bad_links = [a for a in ["bin/sh", "sbin/modprobe", "sbin/insmod", "sbin/poweroff", "bin/cttyhack",
                             "usr/bin/setsid", "bin/mount"]
                 if not (os.path.islink(os.path.join(root, a))
                         and os.readlink(os.path.join(root, a)) == "/bin/busybox")]
    t.ok(not bad_links, "busybox applet links are in place", f"not links to /bin/busybox: {bad_links}")
    needed_dirs = [d for d in ["dev", "proc", "sys", "tmp", "etc"] if not os.path.isdir(os.path.join(root, d))]
    t.ok(not needed_dirs, "/dev /proc /sys /tmp /etc exist", f"missing: {needed_dirs}")

    try:
        image_manifest = read_manifest(os.path.join(root, "etc", "deskvm-image"))
    except OSError as e:
        image_manifest = {"error": str(e)}
    t.eq(image_manifest, manifest, "/etc/deskvm-image matches the manifest")

    kver = manifest.get("kernel_version", "")
    moddir = os.path.join(root, "lib", "modules", kver)
    depfile = os.path.join(moddir, "modules.dep")
    if not t.ok(os.path.isfile(depfile), f"/lib/modules/{kver}/modules.dep exists"):
        return True
    deps = parse_modules_dep(depfile)
    by_name = {modname(p): p for p in deps}
    requested = [m for m in manifest.get("modules", "").split(",") if m]
    missing = [m for m in requested
               if m not in by_name or not os.path.isfile(os.path.join(moddir, by_name[m]))]
    t.ok(requested and not missing, f"all {len(requested)} requested modules are in the image",
         f"missing: {missing}")
    absent = sorted({p for mod, ds in deps.items() for p in [mod] + ds if not os.path.isfile(os.path.join(moddir, p))})
    t.ok(not absent, f"every module and dependency in modules.dep ({len(deps)} lines) is in the image",
         f"absent: {absent}")
    # Each line must list its module's whole dependency closure: modprobe reads only that one line.
    incomplete = [mod for mod, ds in deps.items() for d in ds if not set(deps.get(d, [])) <= set(ds)]
    t.ok(not incomplete, "each modules.dep line lists its module's complete dependency closure",
         f"incomplete: {incomplete}")
    magic_bad = []
    for p in sorted(deps):
        with open(os.path.join(moddir, p), "rb") as f:
            blob = f.read()
        m = re.search(rb"\0vermagic=([^\0 ]+)", blob)
        if blob[:4] != b"\x7fELF" or not m or m.group(1).decode() != kver:
            magic_bad.append(p)
    t.ok(not magic_bad, f"every module is an uncompressed ELF .ko built for {kver}", f"bad: {magic_bad}")
    return True


def check_sysinfo(root, manifest):
    progs = [p for p in manifest.get("programs", "").split(",") if p]
    t.ok("guest-sysinfo" in progs and all(os.path.isfile(os.path.join(root, "usr", "bin", p)) for p in progs),
         "guest programs are in /usr/bin", f"programs: {progs}")
    exe = os.path.join(root, "usr", "bin", "guest-sysinfo")
    if not os.path.isfile(exe):
        t.ok(False, "guest-sysinfo exists")
        return
    t.ok(elf_is_static(exe), "guest-sysinfo is a static ELF executable")
    rc, out, err = run([exe], timeout=30)
    info = {}
    pci = []
    for line in out.splitlines():
        if not line.startswith("DESKVM-SYSINFO: ") or "=" not in line:
            continue
        k, v = line[len("DESKVM-SYSINFO: "):].split("=", 1)
        if k == "pci":
            pci.append(v)
        else:
            info[k] = v
    t.ok(rc == 0 and info.get("done") == "ok", "guest-sysinfo runs on the host and exits 0",
         f"rc={rc}\n{out}\n{err}")
    t.eq(info.get("kernel_release"), os.uname().release, "guest-sysinfo reports the kernel release")
    t.ok(info.get("mem_total_kb", "").isdigit() and int(info["mem_total_kb"]) > 0
         and info.get("cpus_online", "").isdigit() and int(info["cpus_online"]) >= 1,
         "guest-sysinfo reports MemTotal and online CPUs", f"{info}")
    try:
        host_pci = sorted(os.listdir("/sys/bus/pci/devices"))
    except OSError:
        host_pci = []
    if not host_pci:
        t.skip("guest-sysinfo lists PCI devices", "the host has no /sys/bus/pci devices")
    else:
        pat = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7] [0-9a-f]{4}:[0-9a-f]{4} [0-9a-f]{6}$")
        t.ok([p.split(" ")[0] for p in pci] == host_pci and all(pat.match(p) for p in pci),
             f"guest-sysinfo lists the host's {len(host_pci)} PCI devices", f"got: {pci}\nhost: {host_pci}")


def sandbox_mode():
    """How to run the image's /init safely: 'userns' (an unprivileged user namespace: no capability over the host
    at all), 'root' (real root in new mount/pid/net/uts/ipc namespaces with CAP_SYS_MODULE and CAP_SYS_BOOT
    dropped), or None with a reason."""
    for tool in ("unshare", "chroot"):
        if not shutil.which(tool):
            return None, f"{tool} is not installed"
    rc, _, _ = run([shutil.which("unshare"), "--user", "--map-root-user", "--mount", "--pid", "--fork", "--net",
                    "true"], timeout=30)
    if rc == 0:
        return "userns", ""
    if os.geteuid() != 0:
        return None, "not root and user namespaces are unavailable"
    if not shutil.which("setpriv"):
        return None, "setpriv (util-linux) is not installed"
    # As real root, init mounts the host's devtmpfs (in a private mount namespace) and only creates /dev/fd and
    # /dev/pts when missing; refuse if that would add them to the host's /dev.
    if not (os.path.lexists("/dev/fd") and os.path.isdir("/dev/pts")):
        return None, "user namespaces unavailable and the host /dev lacks fd or pts (init would create them)"
    return "root", ""


def sandbox_cmd(mode, root, argv):
    unshare = shutil.which("unshare")
    chroot = shutil.which("chroot")
    if mode == "userns":
        return [unshare, "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child", "--net", "--uts",
                "--ipc", chroot, root] + argv
    drop = "-sys_module,-sys_boot,-sys_rawio,-sys_time"
    return [unshare, "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--net", "--uts",
            "--ipc", shutil.which("setpriv"), "--bounding-set", drop, "--inh-caps", drop, chroot, root] + argv


def install_fakes(root):
    """Replaces the module and power applets in the extracted copy with scripts that log their arguments.
    Returns a list of problems (empty when every replacement is verified in place)."""
    for applet in FAKED_APPLETS:
        path = os.path.join(root, applet)
        if os.path.lexists(path):
            os.unlink(path)
        name = os.path.basename(applet)
        with open(path, "w", encoding="utf-8") as f:
            f.write(f'#!/bin/sh\n# {FAKE_TAG}\necho "{name} $*" >> /deskvm-fake.log\nexit 0\n')
        os.chmod(path, 0o755)
    problems = []
    for applet in FAKED_APPLETS:
        path = os.path.join(root, applet)
        if os.path.islink(path) or not os.path.isfile(path):
            problems.append(f"{applet} is not a regular file")
            continue
        with open(path, encoding="utf-8") as f:
            if FAKE_TAG not in f.read():
                problems.append(f"{applet} is not the fake")
    return problems


def check_sandbox(root, manifest):
    mode, reason = sandbox_mode()
    names = ["sandboxed /init prints init/ready/run-begin markers in order",
             "sandboxed /init runs deskvm_run and reports run-exit 3",
             "sandboxed /init loads deskvm_modules through modprobe",
             "sandboxed /init powers off after the command",
             "sandboxed /init with deskvm_modules=all deskvm_shell=0 loads every module and powers off",
             "busybox modprobe resolves the image's modules.dep in load order"]
    if mode is None:
        for n in names:
            t.skip(n, reason)
        return
    t.diag(f"sandbox mode: {mode}")
    problems = install_fakes(root)
    if not t.ok(not problems, "fake modprobe/insmod/rmmod/poweroff/reboot/halt are in place", "\n".join(problems)):
        return
    log = os.path.join(root, "deskvm-fake.log")

    env = {"TERM": "linux", "deskvm_modules": "virtio_blk", "deskvm_run": "echo hello-from-guest; exit 3"}
    rc, out, err = run(sandbox_cmd(mode, root, ["/init"]), timeout=60, env=env)
    detail = f"rc={rc}\nstdout:\n{out}\nstderr:\n{err}"
    lines = out.splitlines()
    marks = [line[len(MARK):] for line in lines if line.startswith(MARK)]

    def idx(m):
        return marks.index(m) if m in marks else -1
    t.ok(0 == idx("init") < idx("ready") < idx("run-begin"), names[0], detail)
    hello = lines.index("hello-from-guest") if "hello-from-guest" in lines else -1
    t.ok(idx("run-exit 3") > idx("run-begin") >= 0
         and lines.index(MARK + "run-begin") < hello < lines.index(MARK + "run-exit 3"), names[1], detail)
    try:
        with open(log, encoding="utf-8") as f:
            calls = f.read().splitlines()
    except OSError:
        calls = []
    t.ok("modprobe virtio_blk" in calls and "module-loaded virtio_blk" in marks, names[2],
         f"fake log: {calls}\n{detail}")
    t.ok(calls and calls[-1] == "poweroff -f" and idx("poweroff") > idx("run-exit 3"), names[3],
         f"fake log: {calls}\n{detail}")

    os.unlink(log)
    env = {"TERM": "linux", "deskvm_modules": "all", "deskvm_shell": "0"}
    rc, out, err = run(sandbox_cmd(mode, root, ["/init"]), timeout=60, env=env)
    marks = [line[len(MARK):] for line in out.splitlines() if line.startswith(MARK)]
    try:
        with open(log, encoding="utf-8") as f:
            calls = f.read().splitlines()
    except OSError:
        calls = []
    requested = [m for m in manifest.get("modules", "").split(",") if m]
    t.ok(requested and all(f"modprobe {m}" in calls and f"module-loaded {m}" in marks for m in requested)
         and "run-begin" not in marks and "shell-begin" not in marks and calls[-1:] == ["poweroff -f"],
         names[4], f"fake log: {calls}\nrc={rc}\nstdout:\n{out}\nstderr:\n{err}")

    # The real modprobe in dry-run mode (-D prints the insmod commands it would run). It looks in
    # /lib/modules/$(uname -r), so point the host's release at the image's module directory.
    kver = manifest.get("kernel_version", "")
    host_release = os.uname().release
    if host_release != kver:
        os.symlink(kver, os.path.join(root, "lib", "modules", host_release))
    rc, out, err = run(sandbox_cmd(mode, root, ["/bin/busybox", "modprobe", "-D", "virtio_gpu"]), timeout=60)
    prefix = f"/lib/modules/{host_release}/"
    order = [line.split()[1][len(prefix):] for line in out.splitlines()
             if line.startswith("insmod ") and len(line.split()) >= 2 and line.split()[1].startswith(prefix)]
    deps = parse_modules_dep(os.path.join(root, "lib", "modules", kver, "modules.dep"))
    good = rc == 0 and order and modname(order[-1]) == "virtio_gpu" and len(order) == len(set(order))
    for i, p in enumerate(order):
        if not set(deps.get(p, ["?"])) <= set(order[:i]):
            good = False
    t.ok(good, names[5], f"rc={rc}\norder: {order}\nstdout:\n{out}\nstderr:\n{err}")


def main():
    outdir, manifest = check_build()
    if outdir:
        check_kernel(outdir, manifest)
        with tempfile.TemporaryDirectory(prefix="deskvm-guest-test.") as tmp:
            root = os.path.join(tmp, "root")
            os.mkdir(root)
            if check_initrd(outdir, manifest, root):
                t.run(lambda: check_sysinfo(root, manifest), "guest-sysinfo")
                sandbox_root = os.path.join(tmp, "sandbox")
                os.mkdir(sandbox_root)
                extract_newc(os.path.join(outdir, "initrd.img"), sandbox_root)
                t.run(lambda: check_sandbox(sandbox_root, manifest), "sandbox")
    t.done()


if __name__ == "__main__":
    main()
