#!/usr/bin/env python3
"""deskvm's command line and --config file: bad values give one clear line and exit code 2; the file's keys apply;
the command line wins over the file; --help and --version work."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import Deskvm, run_deskvm, tmpdir  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
work = tmpdir()
kernel = os.path.join(work, "vmlinuz")
with open(kernel, "wb") as f:
    f.write(b"not really a kernel")


def expect_error(args, needle, name):
    r = run_deskvm(args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    good = r.returncode == 2 and len(lines) == 1 and needle in lines[0] and lines[0].startswith("deskvm: ")
    t.ok(good, name, f"args={args}\nrc={r.returncode}\nstderr={r.stderr!r}\nwanted substring {needle!r}")


cases = [
    (["--memory", "12X"], "--memory: '12X' is not a size", "memory with a bad suffix"),
    (["--memory", "8M"], "below the minimum", "memory below the minimum"),
    (["--memory", "4T"], "above the maximum", "memory above the maximum"),
    (["--memory", "16896K"], "whole number of MiB", "memory not a whole number of MiB"),
    (["--memory"], "--memory needs a value", "memory without a value"),
    (["--cpus", "0"], "--cpus: '0' is not a CPU count", "zero CPUs"),
    (["--cpus", "two"], "--cpus: 'two'", "CPU count that is not a number"),
    (["--cpus", "65"], "from 1 to 64", "too many CPUs"),
    (["--accel", "tcg"], "--accel: 'tcg' is not kvm, emu, qtest or auto", "unknown accelerator"),
    (["--kernel", "/nonexistent/vmlinuz"], "--kernel: '/nonexistent/vmlinuz' does not exist", "missing kernel"),
    (["--kernel", "/tmp"], "is not a regular file", "kernel that is a directory"),
    (["--initrd", kernel], "--initrd: only allowed together with --kernel", "initrd without kernel"),
    (["--append", "console=ttyS0"], "--append: only allowed together with --kernel", "append without kernel"),
    (["--serial", "tcp:1.2.3.4:5"], "--serial: 'tcp:1.2.3.4:5' is not stdio, file:PATH, unix:PATH or none",
     "unknown serial backend"),
    (["--serial", "file:"], "--serial: file: needs a path", "serial file without a path"),
    (["--qmp", "tcp:0.0.0.0:4444"], "not a loopback address", "QMP on a non-loopback address"),
    (["--qmp", "tcp:127.0.0.1:99999"], "not a port number", "QMP port out of range"),
    (["--qmp", "udp:x"], "is not unix:PATH or tcp:HOST:PORT", "QMP with an unknown transport"),
    (["--qmp", "unix:/tmp/x.sock,wait=on"], "not supported", "QMP client mode refused"),
    (["--log-level", "verbose"], "--log-level: 'verbose' is not error, warn, info or debug", "bad log level"),
    (["--name", ""], "--name: must not be empty", "empty name"),
    (["--name", "a\tb"], "--name: contains control characters", "name with a control character"),
    (["--bogus"], "unknown or ambiguous option '--bogus'", "unknown option"),
    (["extra-arg"], "unexpected argument 'extra-arg'", "positional argument"),
    (["--name", "a", "--name", "b"], "--name: given more than once", "option given twice"),
    (["--daemonize", "--serial", "stdio"], "stdio cannot be used with --daemonize", "daemonize with stdio serial"),
    (["--config", "/nonexistent.ini"], "--config: /nonexistent.ini", "missing config file"),
]
for args, needle, name in cases:
    expect_error(args, needle, name)

# ---- config file errors name the file and the key
bad_key = os.path.join(work, "badkey.ini")
with open(bad_key, "w") as f:
    f.write("[deskvm]\nmemroy = 512M\n")
expect_error(["--config", bad_key], f"config {bad_key}: unknown key 'memroy'", "config with an unknown key")

bad_val = os.path.join(work, "badval.ini")
with open(bad_val, "w") as f:
    f.write("[deskvm]\ncpus = many\n")
expect_error(["--config", bad_val], f"config {bad_val}: key 'cpus': 'many' is not a CPU count", "config bad value")

bad_group = os.path.join(work, "badgroup.ini")
with open(bad_group, "w") as f:
    f.write("[machine]\ncpus = 2\n")
expect_error(["--config", bad_group], "unknown group [machine]", "config with an unknown group")

garbage = os.path.join(work, "garbage.ini")
with open(garbage, "w") as f:
    f.write("this is not an ini file\n")
expect_error(["--config", garbage], f"--config: {garbage}:", "config that is not INI")

# ---- --help and --version
r = run_deskvm(["--help"])
t.ok(r.returncode == 0 and "--qmp unix:PATH|tcp:127.0.0.1:PORT" in r.stdout and "--config FILE" in r.stdout,
     "--help lists the options and exits 0", r.stdout + r.stderr)
r = run_deskvm(["--version"])
t.ok(r.returncode == 0 and r.stdout.startswith("deskvm 0."), "--version prints the version", r.stdout)

# ---- a good config applies, and the command line wins over it
good = os.path.join(work, "vm.ini")
qmp_from_file = os.path.join(work, "file-qmp.sock")
with open(good, "w") as f:
    f.write(f"""# a deskvm config
[deskvm]
name = from-file
memory = 256M
cpus = 2
accel = emu
qmp = unix:{qmp_from_file}
log-level = debug
""")

with Deskvm(extra=["--config", good], log_level=None) as vm:
    q = vm.qmp()
    t.eq(q.cmd("query-name"), {"return": {"name": "from-file"}}, "config: name from the file")
    t.ok("256 MiB, 2 vCPU(s), accel emu" in vm.log(), "config: memory, cpus and accel from the file", vm.log())
    t.ok(os.path.exists(qmp_from_file) is False, "config: --qmp on the command line replaces the file's qmp key",
         f"{qmp_from_file} exists")
    q.cmd("quit")
    t.eq(vm.wait(), 0, "config: VM quits cleanly")

with Deskvm(extra=["--config", good, "--name", "from-cli", "--memory", "1G", "--log-level", "info"],
            log_level=None) as vm:
    q = vm.qmp()
    t.eq(q.cmd("query-name"), {"return": {"name": "from-cli"}}, "command line --name wins over the file")
    log = vm.log()
    t.ok("1024 MiB, 2 vCPU(s), accel emu" in log, "command line --memory wins, file's cpus still apply", log)
    t.ok("debug:" not in log, "command line --log-level wins over the file's debug", log)
    q.cmd("quit")
    vm.wait()

# The file's qmp key is used when the command line has none.
with Deskvm(extra=["--config", good], qmp=False, log_level=None) as vm:
    from deskvm_harness import QmpClient, wait_for
    ok = wait_for(lambda: os.path.exists(qmp_from_file))
    t.ok(ok, "config: qmp key opens the QMP socket when the command line has no --qmp")
    if ok:
        q = QmpClient(qmp_from_file)
        q.negotiate()
        t.eq(q.cmd("query-status")["return"]["status"], "running", "config: QMP from the file answers")
        q.cmd("quit")
    vm.wait()

# Memory sizes in the forms users type
for text, mib in [("512", 512), ("2G", 2048), ("1.5G", 1536), ("262144K", 256), ("64MiB", 64)]:
    with Deskvm(extra=["--memory", text]) as vm:
        q = vm.qmp()
        q.cmd("quit")
        vm.wait()
        t.ok(f": {mib} MiB," in vm.log(), f"--memory {text} is {mib} MiB", vm.log())

t.done()
