#!/usr/bin/env python3
"""The gdbstub (--gdb) with the real gdb: the debugger payload (tests/payloads/gdb.S) spins until its mailbox is
written; gdb attaches (the VM stops, with a QMP STOP event), reads registers and guest memory, writes the mailbox
and a register, breaks at known addresses, single-steps, continues through a loop, detaches, and the payload prints
the sum of what the debugger wrote and powers off. On the emu and on KVM (skipped where KVM cannot debug guests).
A raw socket client then checks the protocol edges a hostile client reaches: checksums, caps, bad numbers."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import (DESKVM, QmpClient, SerialSocket, build_guest_image, guest_command,  # noqa: E402
                            kvm_usable, tmpdir, wait_for)
from payloads import PAYLOADS  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
GDB = shutil.which("gdb")
ROM = os.path.join(PAYLOADS, "gdb.rom")
MAILBOX, WAIT, HIT, LOOP = 0x9000, 0xF1000, 0xF1020, 0xF1040


class Vm:
    """deskvm running the debugger payload with --gdb on a kernel-chosen loopback port."""

    def __init__(self, accel, extra=()):
        self.dir = tmpdir()
        self.serial = os.path.join(self.dir, "serial.txt")
        self.log_path = os.path.join(self.dir, "log.txt")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.proc = subprocess.Popen([DESKVM, "--accel", accel, "--firmware", ROM, "--memory", "64M",
                                      "--serial", "file:" + self.serial, "--gdb", "tcp:127.0.0.1:0",
                                      "--qmp", "unix:" + self.qmp_path, "--log-file", self.log_path,
                                      "--log-level", "debug"] + list(extra),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        m = wait_for(lambda: re.search(r"gdb: listening on tcp:127\.0\.0\.1:(\d+)", self.log()), timeout=10)
        self.port = int(m.group(1)) if m else None
        self.qmp = None
        if self.port and wait_for(lambda: os.path.exists(self.qmp_path), timeout=5):
            self.qmp = QmpClient(self.qmp_path)
            self.qmp.negotiate()

    def log(self):
        return open(self.log_path, errors="replace").read() if os.path.exists(self.log_path) else ""

    def out(self):
        return open(self.serial, errors="replace").read() if os.path.exists(self.serial) else ""

    def ready(self):
        return wait_for(lambda: "gdb payload ready" in self.out(), timeout=20)

    def events(self, timeout=1.0):
        """QMP events that arrived so far."""
        names = [e["event"] for e in self.qmp.events]
        self.qmp.events.clear()
        self.qmp.sock.settimeout(timeout)
        try:
            while True:
                msg = self.qmp.recv()
                if "event" in msg:
                    names.append(msg["event"])
        except (OSError, EOFError):
            pass
        return names

    def wait(self, timeout=20):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        if self.qmp:
            self.qmp.close()


def gdb_batch(port, commands, timeout=60):
    script = os.path.join(tmpdir(), "cmds.gdb")
    with open(script, "w") as f:
        f.write("set pagination off\nset confirm off\nset architecture i386:x86-64\n")
        f.write(f"target remote 127.0.0.1:{port}\n")
        f.write("\n".join(commands) + "\n")
    try:
        r = subprocess.run([GDB, "-nx", "-batch", "-x", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
        return r.stdout
    except subprocess.TimeoutExpired as e:
        return (e.stdout or b"").decode(errors="replace") + "\n<gdb timed out>"


def values(out):
    """KEY=hex pairs the script printed."""
    return {k: int(v, 16) for k, v in re.findall(r"\b([A-Z0-9_]+)=([0-9a-f]+)\b", out)}


SESSION = [
    'printf "RIP0=%lx\\n", (unsigned long)$rip',
    'printf "MB0=%lx\\n", *(unsigned long *)0x9000',
    'printf "CODE=%x\\n", *(unsigned int *)0xf1020',
    "set {unsigned long}0x9000 = 0x1000",
    'printf "MB1=%lx\\n", *(unsigned long *)0x9000',
    "break *0xf1020",
    "continue",
    'printf "HIT=%lx\\n", (unsigned long)$rip',
    "set $rcx = 0x5",
    "stepi",
    'printf "STEP=%lx RAX=%lx\\n", (unsigned long)$rip, (unsigned long)$rax',
    "delete",
    "break *0xf1040",
    "continue",
    'printf "LOOPA=%lx EBXA=%lx\\n", (unsigned long)$rip, (unsigned long)$rbx',
    "continue",
    'printf "LOOPB=%lx EBXB=%lx\\n", (unsigned long)$rip, (unsigned long)$rbx',
    "delete",
    'printf "CR0=%lx EFER=%lx\\n", (unsigned long)$cr0, (unsigned long)$efer',
    "info threads",
    "detach",
]


def debug_session(accel, extra=()):
    vm = Vm(accel, extra)
    try:
        if not vm.port:
            t.ok(False, f"{accel}: deskvm listens for gdb on a loopback port", vm.log()[-3000:])
            return
        if not vm.ready():
            t.ok(False, f"{accel}: the debugger payload starts", vm.out() + vm.log()[-3000:])
            return
        out = gdb_batch(vm.port, SESSION)
        v = values(out)
        detail = out[-3000:] + "\n--- deskvm log ---\n" + vm.log()[-3000:]
        if accel == "kvm" and "lacks guest debugging" in vm.log():
            t.skip("kvm: breakpoints and single steps", "the host's KVM cannot debug guests (KVM_SET_GUEST_DEBUG)")
            return
        t.ok(WAIT <= v.get("RIP0", 0) < WAIT + 11, f"{accel}: attach stops the payload in its wait loop (rip)",
             detail)
        t.ok("STOP" in vm.events(), f"{accel}: attaching stops the VM with a QMP STOP event")
        t.eq(v.get("MB0"), 0, f"{accel}: guest memory reads through the page tables: the mailbox is 0")
        t.eq(v.get("CODE"), 0x25048B48, f"{accel}: the instruction bytes at GDB_HIT read back")
        t.eq(v.get("MB1"), 0x1000, f"{accel}: a memory write is read back")
        t.eq(v.get("HIT"), HIT, f"{accel}: continue stops at the breakpoint (rip equals it)")
        t.eq((v.get("STEP"), v.get("RAX")), (HIT + 8, 0x1000),
             f"{accel}: stepi runs one 8-byte instruction (rip advances by 8, rax loaded)")
        t.eq((v.get("LOOPA"), v.get("EBXA")), (LOOP, 0), f"{accel}: a breakpoint in a loop stops on the first pass")
        t.eq((v.get("LOOPB"), v.get("EBXB")), (LOOP, 1),
             f"{accel}: continuing from the breakpoint runs one pass and stops there again")
        t.ok(v.get("CR0", 0) & 0x80000001 == 0x80000001 and v.get("EFER", 0) & 0x500 == 0x500,
             f"{accel}: control registers from the target description (CR0.PG/PE, EFER.LME/LMA)", detail)
        t.ok(re.search(r"\* 1\s+Thread 1", out), f"{accel}: the vCPU is thread 1", detail)
        rc = vm.wait()
        text = vm.out()
        t.ok("DESKVM-PAYLOAD: gdb loop done" in text and "DESKVM-PAYLOAD: gdb sum 0x0000000000001005" in text,
             f"{accel}: after detach the payload runs to its end with the debugger's mailbox and rcx", text)
        t.eq(rc, 0, f"{accel}: the payload powers off and deskvm exits 0")
    finally:
        vm.stop()


# ---- a raw protocol client ----

def checksum(data):
    return sum(data) & 0xFF


class Raw:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.acks = b""

    def send(self, payload, good=True):
        if isinstance(payload, str):
            payload = payload.encode()
        cs = checksum(payload) if good else (checksum(payload) + 1) & 0xFF
        self.sock.sendall(b"$" + payload + b"#%02x" % cs)

    def reply(self):
        """The next packet's payload (acks before it are kept in self.acks)."""
        while True:
            m = re.match(rb"([+-]*)\$([^#]*)#([0-9a-f]{2})", self.buf, re.S)
            if m:
                self.acks += m.group(1)
                self.buf = self.buf[m.end():]
                data = m.group(2)
                assert checksum(data) == int(m.group(3), 16), "bad checksum from the stub"
                return data.decode("latin-1")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stub closed the connection")
            self.buf += chunk

    def cmd(self, payload):
        self.send(payload)
        return self.reply()

    def close(self):
        self.sock.close()


def raw_protocol():
    vm = Vm("emu", ["--cpus", "2"])
    try:
        if not vm.port or not vm.ready():
            t.ok(False, "raw: deskvm with --gdb starts", vm.log()[-3000:])
            return
        c = Raw(vm.port)
        t.eq(c.cmd("?"), "T05thread:1;", "raw: '?' answers with a stop reply for thread 1")
        t.ok(c.acks == b"+", "raw: a good packet is acknowledged with '+'", repr(c.acks))
        c.send("g", good=False)
        c.sock.settimeout(2)
        got = c.sock.recv(16)
        t.eq(got, b"-", "raw: a bad checksum is answered with '-'")
        c.sock.settimeout(10)
        sup = c.cmd("qSupported:multiprocess+;swbreak+")
        t.ok("PacketSize=4000" in sup and "qXfer:features:read+" in sup, "raw: qSupported advertises PacketSize "
             "and the target description", sup)
        t.eq(c.cmd("qfThreadInfo"), "m1,2", "raw: two vCPUs are threads 1 and 2")
        t.eq(c.cmd("qsThreadInfo"), "l", "raw: the thread list ends")
        t.eq(c.cmd("Hg3"), "E16", "raw: selecting a thread that does not exist fails")
        t.eq(c.cmd("Hg2"), "OK", "raw: thread 2 can be selected")
        regs = c.cmd("g")
        t.eq(len(regs), 2 * (17 * 8 + 7 * 4 + 8 * 10 + 8 * 4 + 16 * 16 + 4 + 8 * 8),
             "raw: 'g' sends the whole register file")
        t.ok(regs[16 * 16:16 * 16 + 16] == "f0ff000000000000", "raw: the AP (thread 2) sits at the reset vector "
             "waiting for SIPI", regs[:300])
        t.eq(c.cmd("Hg1"), "OK", "raw: back to thread 1")
        rip = c.cmd("p10")
        t.ok(len(rip) == 16 and WAIT <= int.from_bytes(bytes.fromhex(rip), "little") < WAIT + 11,
             "raw: 'p' reads one register (rip in the wait loop)", rip)
        t.eq(c.cmd("p41"), "E16", "raw: 'p' of a register number beyond the file fails")
        t.eq(c.cmd("p18"), "xxxxxxxxxxxxxxxxxxxx", "raw: x87 registers are reported unavailable")
        big = c.cmd("m0,ffffffff")
        t.eq(len(big), 2 * 0x10000, "raw: 'm' is capped at 64 KiB per packet")
        t.eq(c.cmd("mffff800000000000,10"), "E0e", "raw: reading an unmapped address fails with EFAULT")
        t.eq(c.cmd("m10000000000000000,4"), "E16", "raw: an address of 17 hex digits is refused")
        t.eq(c.cmd("m9000"), "E16", "raw: 'm' without a length is refused")
        t.eq(c.cmd("M9000,2:00"), "E16", "raw: 'M' whose data does not match its length is refused")
        t.eq(c.cmd("M9000,20000:00"), "E16", "raw: 'M' longer than 64 KiB is refused")
        t.eq(c.cmd("X9000,0:"), "OK", "raw: the zero-length 'X' probe succeeds")
        t.eq(c.cmd("M2000000,4:01020304"), "OK", "raw: 'M' writes guest memory")
        t.eq(c.cmd("m2000000,4"), "01020304", "raw: and 'm' reads it back")
        t.eq(c.cmd("M3ffff000,4:01020304"), "E0e", "raw: writes to mapped addresses beyond RAM fail")
        t.eq(c.cmd("M100000000,4:01020304"), "E0e", "raw: writes to unmapped addresses fail")
        for i in range(32):
            r = c.cmd("Z0,%x,1" % (0x100000 + i))
            if r != "OK":
                break
        t.eq(r, "OK", "raw: 32 breakpoints are accepted on the emu")
        t.eq(c.cmd("Z0,200000,1"), "E1c", "raw: the 33rd breakpoint is refused with ENOSPC")
        t.eq(c.cmd("Z0,100000,1"), "OK", "raw: re-inserting an existing breakpoint is fine")
        for i in range(32):
            c.cmd("z0,%x,1" % (0x100000 + i))
        t.eq(c.cmd("Z2,9000,8"), "", "raw: watchpoints are not supported (empty reply)")
        t.eq(c.cmd("Zq,9000,8"), "E16", "raw: a malformed breakpoint packet is refused")
        t.eq(c.cmd("qXfer:features:read:target.xml:ffffff,100"), "l", "raw: qXfer past the end says 'l'")
        t.eq(c.cmd("qXfer:features:read:other.xml:0,100"), "E02", "raw: an unknown annex is refused")
        xml = c.cmd("qXfer:features:read:target.xml:0,3fff")
        t.ok(xml.startswith("l<?xml") and "i386:x86-64" in xml, "raw: the target description is served whole",
             xml[:200])
        t.eq(c.cmd("vCont?"), "vCont;c;C;s;S;t", "raw: vCont actions")
        t.eq(c.cmd("vCont;x"), "E16", "raw: an unknown vCont action is refused")
        t.eq(c.cmd("vCont;c:9"), "E16", "raw: vCont naming a thread that does not exist is refused")
        t.eq(c.cmd("vFooBar"), "", "raw: unknown packets get the empty reply")
        c.send("q" + "A" * 0x5000)
        t.eq(c.reply(), "E07", "raw: a packet longer than PacketSize is dropped with E2BIG")
        second = socket.create_connection(("127.0.0.1", vm.port), timeout=5)
        second.settimeout(5)
        try:
            closed = second.recv(16) == b""
        except OSError:
            closed = True
        second.close()
        t.ok(closed, "raw: a second debugger is refused while one is attached")
        t.eq(c.cmd("QStartNoAckMode"), "OK", "raw: no-ack mode")
        c.acks = b""
        t.eq(c.cmd("qC"), "QC1", "raw: qC names the current thread")
        t.eq(c.acks, b"", "raw: no acks after QStartNoAckMode")
        # Stepping thread 1 alone: one instruction of the wait loop, the AP stays parked.
        c.send("vCont;s:1")
        stop = c.reply()
        t.eq(stop, "T05thread:1;", "raw: vCont;s:1 steps thread 1 and reports the stop")
        # Interrupt: continue, then 0x03 stops the VM with SIGINT.
        c.send("vCont;c")
        time.sleep(0.3)
        c.sock.sendall(b"\x03")
        t.eq(c.reply(), "T02thread:1;", "raw: the interrupt byte stops a running VM (T02)")
        t.eq(c.cmd("M9000,8:0100000000000000"), "OK", "raw: the mailbox is written")
        t.eq(c.cmd("D"), "OK", "raw: detach")
        c.close()
        rc = vm.wait()
        t.ok(rc == 0 and "gdb sum 0x0000000000000001" in vm.out(),
             "raw: after detach the payload runs on and powers off", vm.out() + vm.log()[-2000:])
    finally:
        vm.stop()


def raw_breakpoints(accel):
    """Resuming from a breakpoint that stays inserted (gdb removes it first; other clients may not) runs the
    instruction there once instead of stopping again at once; the breakpoint count is the backend's."""
    vm = Vm(accel)
    try:
        if not vm.port or not vm.ready():
            t.ok(False, f"{accel}: raw breakpoints: deskvm with --gdb starts", vm.log()[-3000:])
            return
        c = Raw(vm.port)
        c.cmd("M9000,8:0200000000000000")
        max_bp = 4 if accel == "kvm" else 32
        for i in range(max_bp):
            c.cmd("Z0,%x,1" % (0x200000 + i))
        t.eq(c.cmd("Z1,%x,1" % 0x300000), "E1c", f"{accel}: breakpoint {max_bp + 1} is refused (ENOSPC)")
        for i in range(max_bp):
            c.cmd("z0,%x,1" % (0x200000 + i))
        t.eq(c.cmd("Z0,f1040,1"), "OK", f"{accel}: a breakpoint in the loop")
        seen = []
        for _ in range(3):
            stop = c.cmd("vCont;c")
            if "lacks guest debugging" in vm.log():
                t.skip(f"{accel}: raw breakpoints", "the host's KVM cannot debug guests")
                return
            rip = int.from_bytes(bytes.fromhex(c.cmd("p10")), "little")
            rbx = int.from_bytes(bytes.fromhex(c.cmd("p1")), "little")
            seen.append((stop, hex(rip), rbx))
        t.eq(seen, [("T05thread:1;", hex(LOOP), n) for n in (0, 1, 2)],
             f"{accel}: continuing from an inserted breakpoint runs one pass per stop")
        t.eq(c.cmd("z0,f1040,1"), "OK", f"{accel}: the breakpoint is removed")
        t.eq(c.cmd("D"), "OK", f"{accel}: detach")
        c.close()
        rc = vm.wait()
        t.ok(rc == 0 and "gdb sum 0x0000000000000002" in vm.out(), f"{accel}: the payload then runs to its end",
             vm.out() + vm.log()[-2000:])
    finally:
        vm.stop()


def kill_session():
    """gdb's kill ends deskvm cleanly (exit 0, SHUTDOWN event)."""
    vm = Vm("emu")
    try:
        if not vm.port or not vm.ready():
            t.ok(False, "kill: deskvm with --gdb starts", vm.log()[-3000:])
            return
        gdb_batch(vm.port, ["kill"])
        rc = vm.wait()
        t.ok(rc == 0 and "gdb: the debugger killed the VM" in vm.log(), "gdb 'kill' ends deskvm cleanly",
             vm.log()[-2000:])
    finally:
        vm.stop()


def option_checks():
    """--gdb is validated like the other sockets and works from the --config file too."""
    def run(args):
        return subprocess.run([DESKVM] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=20)
    r = run(["--accel", "emu", "--firmware", ROM, "--gdb", "tcp:0.0.0.0:1234"])
    t.ok(r.returncode == 2 and "--gdb" in r.stderr and "loopback" in r.stderr,
         "--gdb refuses a non-loopback address", r.stderr)
    r = run(["--accel", "qtest", "--qtest", "unix:/tmp/none.sock", "--gdb", "tcp:127.0.0.1:0"])
    t.ok(r.returncode == 2 and "--gdb" in r.stderr, "--gdb is refused with the CPU-less test accelerator", r.stderr)
    r = run(["--gdb", "tcp:127.0.0.1:0"])
    t.ok(r.returncode == 2 and "--gdb: needs a guest" in r.stderr, "--gdb without a guest is refused", r.stderr)
    d = tmpdir()
    sock = os.path.join(d, "gdb.sock")
    cfg = os.path.join(d, "vm.ini")
    with open(cfg, "w") as f:
        f.write(f"[deskvm]\naccel = emu\nfirmware = {ROM}\nmemory = 64M\ngdb = unix:{sock}\n")
    p = subprocess.Popen([DESKVM, "--config", cfg], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        ok = wait_for(lambda: os.path.exists(sock), timeout=10)
        reply = ""
        if ok:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(sock)
            s.sendall(b"$qC#b4")
            # the ack and the reply packet may come in separate reads
            deadline = time.monotonic() + 5
            while "$QC1#" not in reply and time.monotonic() < deadline:
                chunk = s.recv(64)
                if not chunk:
                    break
                reply += chunk.decode(errors="replace")
            s.close()
        t.ok(ok and "$QC1#" in reply, "the config key gdb = unix:PATH serves the stub on a unix socket", reply)
    finally:
        p.kill()
        p.wait()
        p.stderr.close()
    r = run(["--accel", "emu", "--firmware", ROM, "--gdb", "tcp::1", "--help"])
    t.ok(r.returncode == 0 and "--gdb tcp:127.0.0.1:PORT|unix:PATH" in r.stdout,
         "--help documents --gdb (and QEMU's tcp::PORT form parses)", r.stdout + r.stderr)


def debian_guest():
    """The Debian guest on the emu with nokaslr: the shell reads a syscall's address from /proc/kallsyms, gdb
    breaks there (a kernel virtual address through the guest's 4-level page tables), the next `uname` in the
    shell hits it, gdb disassembles and steps, detaches, and the shell answers."""
    img = build_guest_image(timeout=900)
    if not img.dir:
        t.skip("debian: gdb breaks on a kernel function", "the guest image cannot be built here")
        return
    d = tmpdir()
    sock_path = os.path.join(d, "serial.sock")
    log = os.path.join(d, "log.txt")
    args = guest_command(img.dir, "console=ttyS0 quiet nokaslr", "unix:" + sock_path, log,
                         extra=["--gdb", "tcp:127.0.0.1:0"])
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = None

    try:
        m = wait_for(lambda: os.path.exists(log) and re.search(r"gdb: listening on tcp:127\.0\.0\.1:(\d+)",
                                                                open(log).read()), timeout=20)
        if not m or not wait_for(lambda: os.path.exists(sock_path), timeout=10):
            t.ok(False, "debian: deskvm starts with --gdb", open(log).read()[-2000:] if os.path.exists(log) else "")
            return
        port = int(m.group(1))
        s = SerialSocket(sock_path)
        if not t.ok(s.wait_re(rb"DESKVM-GUEST: shell-begin", 240), "debian: the guest boots to its shell", s.tail(2000)):
            return
        time.sleep(0.5)
        s.sendall(b"grep ' __x64_sys_newuname$' /proc/kallsyms; echo KSYM-$((40+2))\n")
        m = s.wait_re(rb"([0-9a-f]{16}) T __x64_sys_newuname\s", 30)
        s.wait_re(rb"KSYM-42", 30)
        if not t.ok(m, "debian: /proc/kallsyms names __x64_sys_newuname", s.tail(1000)):
            return
        addr = int(m.group(1), 16)
        script = os.path.join(d, "cmds.gdb")
        with open(script, "w") as f:
            f.write(f"set pagination off\nset confirm off\nset architecture i386:x86-64\n"
                    f"target remote 127.0.0.1:{port}\nbreak *0x{addr:x}\ncontinue\n"
                    'printf "HIT=%lx CS=%x\\n", (unsigned long)$rip, (unsigned)$cs\n'
                    "x/2i $pc\nstepi\n"
                    'printf "STEP=%lx\\n", (unsigned long)$rip\ndelete\ndetach\n')
        g = subprocess.Popen([GDB, "-nx", "-batch", "-x", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: "vm: running" in open(log).read().split("gdb: debugger connected")[-1], timeout=30)
        s.sendall(b"uname -m\n")
        try:
            out, _ = g.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            g.kill()
            out = g.communicate()[0] + "\n<gdb timed out>"
        v = values(out)
        t.ok(v.get("HIT") == addr and v.get("CS") == 0x10, "debian: the breakpoint on the kernel function is hit "
             "when the shell runs uname (rip equals it, in ring 0)", out[-2000:])
        t.ok(v.get("STEP", 0) > addr and v.get("STEP", 0) - addr <= 15 and re.search(r"=> 0x%x:\s+\S+" % addr, out),
             "debian: gdb disassembles there and stepi moves past one instruction", out[-2000:])
        t.ok(s.wait_re(rb"x86_64", 60), "debian: after detach the shell answers", s.tail(500))
        s.sendall(b"exit 0\n")
        rc = p.wait(timeout=60)
        t.eq(rc, 0, "debian: leaving the shell powers off and deskvm exits 0")
    finally:
        if s:
            s.close()
        if p.poll() is None:
            p.kill()
            p.wait()


def trace_64bit():
    """The one-instruction slow path the debugger uses decodes in the current code size: --trace-cpu 2 (the same
    path) shows the payload's 64-bit wait loop with the right instruction lengths."""
    d = tmpdir()
    serial, log = os.path.join(d, "serial.txt"), os.path.join(d, "log.txt")
    p = subprocess.Popen([DESKVM, "--accel", "emu", "--firmware", ROM, "--memory", "64M", "--serial", "file:" + serial,
                          "--trace-cpu", "2", "--log-file", log], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(serial) and "gdb payload ready" in open(serial).read(), timeout=30)
        wait_for(lambda: "0018:00000000000f1009 JCC" in open(log, errors="replace").read(), timeout=10)
    finally:
        p.kill()
        p.wait()
    text = open(log, errors="replace").read()
    t.ok("emu cpu0: 0018:00000000000f1000 CMP (9 bytes)" in text and
         "emu cpu0: 0018:00000000000f1009 JCC (2 bytes)" in text,
         "the slow path decodes 64-bit code as 64-bit (--trace-cpu 2 on the payload's wait loop)", text[-1500:])


if not GDB:
    t.skip("gdb sessions", "gdb is not installed")
    t.done()

t.run(option_checks, "options")
t.run(trace_64bit, "trace")
t.run(lambda: debug_session("emu"), "emu session")
t.run(raw_protocol, "raw protocol")
t.run(lambda: raw_breakpoints("emu"), "emu raw breakpoints")
t.run(kill_session, "kill")
why = kvm_usable()
if why:
    t.skip("kvm: gdb session", why)
    t.skip("kvm: raw breakpoints", why)
else:
    t.run(lambda: debug_session("kvm"), "kvm session")
    t.run(lambda: raw_breakpoints("kvm"), "kvm raw breakpoints")
t.run(debian_guest, "debian guest")
t.done()
