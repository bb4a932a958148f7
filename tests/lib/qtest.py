"""Client for deskvm's test accelerator (`deskvm --accel qtest --qtest unix:PATH`), protocol in docs/qtest.md:
port and memory access, the virtual clock, interrupt observation, and PCI helpers on top (config space through the
real CF8/CFC ports, BAR discovery), so device tests read like a small driver."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

from deskvm_harness import DESKVM, wait_for


class QtestError(Exception):
    pass


class Qtest:
    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.irq_events = []  # ("raise"|"lower", gsi) and ("msi", address, data), in arrival order

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("qtest connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, text):
        """Sends one command; returns the words after OK; raises QtestError on ERR."""
        self.sock.sendall(text.encode() + b"\n")
        while True:
            line = self._line()
            if line.startswith("IRQ "):
                _, what, gsi = line.split()
                self.irq_events.append((what, int(gsi)))
            elif line.startswith("MSI "):
                _, addr, data = line.split()
                self.irq_events.append(("msi", int(addr, 16), int(data, 16)))
            elif line.startswith("OK"):
                return line[3:]
            else:
                raise QtestError(f"{text!r}: {line}")

    # ports
    def outb(self, port, v): self.cmd(f"outb {port:#x} {v:#x}")
    def outw(self, port, v): self.cmd(f"outw {port:#x} {v:#x}")
    def outl(self, port, v): self.cmd(f"outl {port:#x} {v:#x}")
    def inb(self, port): return int(self.cmd(f"inb {port:#x}"), 16)
    def inw(self, port): return int(self.cmd(f"inw {port:#x}"), 16)
    def inl(self, port): return int(self.cmd(f"inl {port:#x}"), 16)

    # guest physical memory and MMIO
    def writeb(self, a, v): self.cmd(f"writeb {a:#x} {v:#x}")
    def writew(self, a, v): self.cmd(f"writew {a:#x} {v:#x}")
    def writel(self, a, v): self.cmd(f"writel {a:#x} {v:#x}")
    def writeq(self, a, v): self.cmd(f"writeq {a:#x} {v:#x}")
    def readb(self, a): return int(self.cmd(f"readb {a:#x}"), 16)
    def readw(self, a): return int(self.cmd(f"readw {a:#x}"), 16)
    def readl(self, a): return int(self.cmd(f"readl {a:#x}"), 16)
    def readq(self, a): return int(self.cmd(f"readq {a:#x}"), 16)

    def memread(self, a, n):
        return bytes.fromhex(self.cmd(f"read {a:#x} {n}")[2:])

    def memwrite(self, a, data):
        self.cmd(f"write {a:#x} {len(data)} 0x{data.hex()}")

    # clock and interrupts
    def clock_step(self, ns=None):
        return int(self.cmd("clock_step" if ns is None else f"clock_step {ns}"))

    def clock_get(self):
        return int(self.cmd("clock_get"))

    def irq_intercept(self):
        self.cmd("irq_intercept")

    def irq_level(self, gsi):
        return int(self.cmd(f"irq_level {gsi}"))

    def take_irq_events(self):
        ev, self.irq_events = self.irq_events, []
        return ev

    # PCI through configuration mechanism #1
    @staticmethod
    def _cf8(bus, dev, fn, off):
        return 0x80000000 | bus << 16 | dev << 11 | fn << 8 | (off & 0xFC)

    def pci_read(self, dev, fn, off, size=4, bus=0):
        self.outl(0xCF8, self._cf8(bus, dev, fn, off))
        port = 0xCFC + (off & 3)
        return {1: self.inb, 2: self.inw, 4: self.inl}[size](port)

    def pci_write(self, dev, fn, off, value, size=4, bus=0):
        self.outl(0xCF8, self._cf8(bus, dev, fn, off))
        port = 0xCFC + (off & 3)
        {1: self.outb, 2: self.outw, 4: self.outl}[size](port, value)

    def pci_find(self, vendor, device):
        """(dev, fn) of the first function with these IDs on bus 0, or None."""
        for dev in range(32):
            for fn in range(8):
                ids = self.pci_read(dev, fn, 0)
                if ids == 0xFFFFFFFF:
                    if fn == 0:
                        break
                    continue
                if ids == (device << 16 | vendor):
                    return dev, fn
                if fn == 0 and not (self.pci_read(dev, 0, 0x0C) >> 16) & 0x80:
                    break
        return None

    def pci_bar(self, dev, fn, n):
        """(address, is_io, is_64bit) of BAR n as assigned."""
        lo = self.pci_read(dev, fn, 0x10 + 4 * n)
        if lo & 1:
            return lo & ~3, True, False
        is64 = (lo >> 1) & 3 == 2
        addr = lo & ~0xF
        if is64:
            addr |= self.pci_read(dev, fn, 0x14 + 4 * n) << 32
        return addr, False, is64


class QtestMachine:
    """deskvm started with --accel qtest; .qt is the connected client, .dir a temp dir for files."""

    def __init__(self, extra=(), memory="128M"):
        self.dir = tempfile.mkdtemp(prefix="dvm-qt-", dir="/tmp")
        self.qtest_path = os.path.join(self.dir, "qtest.sock")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.log_path = os.path.join(self.dir, "log.txt")
        self.proc = subprocess.Popen([DESKVM, "--accel", "qtest", "--qtest", "unix:" + self.qtest_path,
                                      "--qmp", "unix:" + self.qmp_path, "--memory", memory,
                                      "--log-file", self.log_path] + list(extra),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if not wait_for(lambda: os.path.exists(self.qtest_path) or self.proc.poll() is not None):
            raise RuntimeError("deskvm did not open its qtest socket")
        if self.proc.poll() is not None:
            raise RuntimeError(f"deskvm exited with {self.proc.returncode}: {self.proc.stderr.read()!r}")
        # The socket file appears at bind(), a moment before listen(): retry a refused connect briefly.
        last = None
        for _ in range(250):
            try:
                self.qt = Qtest(self.qtest_path)
                break
            except (ConnectionRefusedError, FileNotFoundError) as e:
                last = e
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        else:
            raise RuntimeError(f"cannot connect to deskvm's qtest socket: {last}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"deskvm exited with {self.proc.returncode}: {self.proc.stderr.read()!r}")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        try:
            self.qt.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
