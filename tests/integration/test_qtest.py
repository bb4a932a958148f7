#!/usr/bin/env python3
"""Device models through the test accelerator, as a guest driver sees them: the real deskvm binary with
`--accel qtest`, port/MMIO accesses and the virtual clock over the socket protocol, interrupts as IRQ/MSI lines,
QMP next to it. Protocol basics, COM1, RTC, PIT, PCI (test device, ECAM, INTx, MSI-X, DMA), IOAPIC and LAPIC,
ACPI PM, i8042 and machine reset."""
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import QmpClient, wait_for  # noqa: E402
from qtest import Qtest, QtestError, QtestMachine  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()

MIB = 1024 * 1024
RAM = 128 * MIB
NSEC = 1000000000

# machine/pci_host.h, pci_testdev.h, ioapic.h, lapic.h, acpi_pm.h
PCI_HOST_IDS = 0x0008 << 16 | 0x1b36
PCI_ECAM_BASE = 0xB0000000
PCI_MMIO32_BASE, PCI_MMIO32_SIZE = 0xC0000000, 0x3EC00000
PCI_IO_BASE, PCI_IO_SIZE = 0xC000, 0x4000
TD_VENDOR, TD_DEVICE, TD_SLOT = 0x1b36, 0x0005, 31
TD_ID, TD_SCRATCH, TD_INTX, TD_NOTIFY, TD_WRITE_COUNT = 0x00, 0x04, 0x08, 0x0C, 0x10
TD_LAST_BAR, TD_LAST_OFFSET, TD_LAST_SIZE, TD_LAST_VALUE_LO, TD_LAST_VALUE_HI = 0x14, 0x18, 0x1C, 0x20, 0x24
TD_DMA_ADDR_LO, TD_DMA_ADDR_HI, TD_DMA_VALUE, TD_DMA_CTRL, TD_DMA_STATUS = 0x28, 0x2C, 0x30, 0x34, 0x38
TD_MSIX_TABLE, TD_MSIX_PBA = 0x800, 0xC00
TD_MAGIC = 0x54534554
DMA_WRITE, DMA_READ = 1, 2
DMA_OK, DMA_NO_MASTER, DMA_FAULT, DMA_BAD_CMD = 0, 1, 2, 3
NOTIFY_SENT, NOTIFY_PENDING, NOTIFY_INTX, NOTIFY_DROPPED = 0, 1, 2, 3
CMD_IO, CMD_MEM, CMD_MASTER, CMD_INTX_DISABLE = 0x1, 0x2, 0x4, 0x400
STATUS_INTERRUPT = 0x08
IOAPIC, LAPIC = 0xFEC00000, 0xFEE00000
PM_BASE = 0x600
PM1_STS, PM1_EN, PM1_CNT, PM_TMR = PM_BASE, PM_BASE + 2, PM_BASE + 4, PM_BASE + 8
PM_TIMER_HZ = 3579545
PIT_HZ = 1193182
COM1 = 0x3F8


def ticks_to_ns(ticks, hz):
    """First virtual nanosecond at which `ticks` periods of an hz clock have elapsed (ceil)."""
    return (ticks * NSEC + hz - 1) // hz


def irqs(events, gsi=None):
    """The ("raise"|"lower", gsi) events, optionally of one GSI."""
    return [e for e in events if e[0] in ("raise", "lower") and (gsi is None or e[1] == gsi)]


def msis(events):
    return [e for e in events if e[0] == "msi"]


def err_of(qt, text):
    """The ERR reply of a command, or None if it succeeded."""
    try:
        qt.cmd(text)
    except QtestError as e:
        return str(e)
    return None


def qmp_for(vm):
    q = QmpClient(vm.qmp_path)
    q.negotiate()
    return q


# ---- protocol

def test_protocol():
    with QtestMachine() as vm:
        qt = vm.qt
        e = err_of(qt, "frobnicate 1 2")
        t.ok(e is not None and "unknown command" in e, "unknown command -> ERR", e)
        t.ok(qt.clock_get() >= 0, "the connection stays usable after an ERR")
        for bad in ("outb 0x10000 1", "outb 0x80", "inb", "inl 0x60 0x61", "readl", "readl zz", "writel 0x1000",
                    "outw 0x80 0x1g", "clock_step -5", "clock_step 1 2", "irq_level 24", "memset 0 16 0x100",
                    "read 0x1000", "read 0 0x80001", "write 0x1000 2 0x01", "write 0x1000 1 0xzz", "outq 0x80 1"):
            e = err_of(qt, bad)
            t.ok(e is not None and e.split(": ", 1)[-1].startswith("ERR"), f"bad arguments -> ERR: {bad!r}", e)
        e = err_of(qt, "")
        t.ok(e is not None, "an empty line -> ERR", e)
        qt.take_irq_events()

        data = bytes(range(1, 33))
        qt.memwrite(0x1000, data)
        t.eq(qt.memread(0x1000, len(data)), data, "write/read round trip in guest RAM")
        t.eq(qt.readl(0x1004), 0x08070605, "readl sees the written bytes little-endian")
        qt.writel(0x2000, 0xDEADBEEF)
        t.eq(qt.readl(0x2000), 0xDEADBEEF, "writel/readl round trip")
        t.eq(qt.readb(0x2001), 0xBE, "readb inside the dword")
        t.eq(qt.readw(0x2002), 0xDEAD, "readw inside the dword")
        qt.writeq(0x2008, 0x0123456789ABCDEF)
        t.eq(qt.readq(0x2008), 0x0123456789ABCDEF, "writeq/readq round trip")
        t.eq(qt.memread(0x2008, 8), bytes.fromhex("efcdab8967452301"), "writeq stored little-endian")
        qt.writel(RAM - 4, 0x11223344)
        t.eq(qt.readl(RAM - 4), 0x11223344, "the last dword of RAM is RAM")

        qt.cmd("memset 0x3000 64 0xab")
        t.eq(qt.memread(0x2FFF, 66), b"\x00" + b"\xab" * 64 + b"\x00", "memset fills exactly the range")
        e = err_of(qt, f"memset {IOAPIC:#x} 16 0")
        t.ok(e is not None and "not guest RAM" in e, "memset on MMIO is refused", e)
        e = err_of(qt, f"memset {RAM - 8:#x} 16 0")
        t.ok(e is not None, "memset across the end of RAM is refused", e)
        t.eq(qt.readl(RAM - 4), 0x11223344, "a refused memset changes nothing")

        t.eq(qt.inb(0x2F8), 0xFF, "unmapped port (no COM2) reads 0xff")
        t.eq(qt.inl(0x1234), 0xFFFFFFFF, "unmapped port reads all ones (dword)")
        qt.outl(0x1234, 0)  # an unmapped write is ignored, not an error
        t.eq(qt.readl(0xE0000000), 0xFFFFFFFF, "unmapped MMIO in the PCI window reads all ones")
        t.eq(qt.readq(0x10000000), 0xFFFFFFFFFFFFFFFF, "unmapped address above RAM reads all ones (qword)")
        t.eq(qt.memread(0x10000000, 4), b"\xff" * 4, "read of unmapped memory gives 0xff bytes")

        t0 = qt.clock_get()
        t1 = qt.clock_step(12345)
        t.eq(t1, t0 + 12345, "clock_step NS returns the new time")
        t.eq(qt.clock_get(), t1, "clock_get agrees with clock_step")
        t.eq(qt.clock_step(0), t1, "clock_step 0 keeps the time")
        t.eq(qt.clock_step(3 * NSEC), t1 + 3 * NSEC, "clock_step of 3 s")
        t.eq(qt.irq_level(4), 0, "irq_level of a quiet GSI is 0")


def test_sessions():
    with QtestMachine() as vm:
        qt = vm.qt
        qt.irq_intercept()
        qt.clock_step(5000)
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.settimeout(5)
        other.connect(vm.qtest_path)
        try:
            other.sendall(b"clock_get\n")
            got = other.recv(100)
        except OSError:
            got = b""
        other.close()
        t.eq(got, b"", "a second client is refused while one is connected")
        t.eq(qt.clock_get(), 5000, "the first client is unaffected")
        qt.close()
        qt2 = wait_for(lambda: _connect(vm.qtest_path), timeout=5)
        t.ok(qt2 is not None, "a new client can connect after the first one left")
        vm.qt = qt2
        t.eq(qt2.clock_get(), 5000, "the machine (and its clock) outlive the session")
        qt2.outb(COM1 + 4, 0x08)
        qt2.outb(COM1 + 1, 0x02)
        t.eq(qt2.irq_level(4), 1, "GSI 4 raised by the new client's UART setup")
        t.eq(qt2.take_irq_events(), [], "irq_intercept does not carry over to a new client")
        qt2.irq_intercept()
        qt2.outb(COM1 + 1, 0x00)
        t.eq(qt2.take_irq_events(), [("lower", 4)], "after its own irq_intercept the new client sees lines")


def _connect(path):
    """A client whose session works: right after a client leaves, deskvm may still refuse the next one (it
    has not seen the hang-up yet)."""
    try:
        c = Qtest(path)
    except OSError:
        return None
    try:
        c.clock_get()
        return c
    except (OSError, EOFError):
        c.close()
        return None


# ---- COM1

def test_uart():
    out = os.path.join(tempfile.mkdtemp(prefix="dvm-qts-", dir="/tmp"), "serial.out")
    with QtestMachine(["--serial", "file:" + out]) as vm:
        qt = vm.qt
        t.eq(qt.inb(COM1 + 5), 0x60, "LSR after reset: THRE|TEMT")
        t.eq(qt.inb(COM1 + 2), 0x01, "IIR after reset: no interrupt, FIFOs off")
        for b in b"hello qtest\n":
            qt.outb(COM1, b)
        t.ok(wait_for(lambda: os.path.exists(out) and open(out, "rb").read() == b"hello qtest\n", timeout=5),
             "bytes written to THR arrive in the --serial file",
             open(out, "rb").read() if os.path.exists(out) else "(no file)")
        t.eq(qt.inb(COM1 + 5), 0x60, "LSR after transmitting: THRE|TEMT")

        qt.outb(COM1 + 7, 0xA5)
        t.eq(qt.inb(COM1 + 7), 0xA5, "scratch register echoes")
        qt.outb(COM1 + 3, 0x80)
        qt.outb(COM1 + 0, 0x0C)
        qt.outb(COM1 + 1, 0x00)
        t.eq((qt.inb(COM1 + 1) << 8) | qt.inb(COM1), 0x000C, "divisor latch reads back with DLAB set")
        qt.outb(COM1 + 3, 0x03)
        t.eq(qt.inb(COM1 + 3), 0x03, "LCR 8N1")

        qt.irq_intercept()
        qt.outb(COM1 + 1, 0x02)
        t.eq(irqs(qt.take_irq_events()), [], "THRE enabled without OUT2: IRQ 4 stays low")
        qt.outb(COM1 + 1, 0x00)
        qt.outb(COM1 + 4, 0x0B)  # DTR|RTS|OUT2
        qt.outb(COM1 + 1, 0x02)
        t.eq(irqs(qt.take_irq_events()), [("raise", 4)], "IER.ETBEI with OUT2 raises GSI 4")
        t.eq(qt.irq_level(4), 1, "irq_level 4 is 1")
        t.eq(qt.inb(COM1 + 2), 0x02, "IIR names the THRE source")
        t.eq(irqs(qt.take_irq_events()), [("lower", 4)], "reading IIR acknowledges THRE: GSI 4 lowered")
        t.eq(qt.inb(COM1 + 2), 0x01, "IIR then shows no interrupt")
        qt.outb(COM1, ord("!"))
        t.eq(irqs(qt.take_irq_events()), [("raise", 4)], "the next THR write raises THRE again")
        qt.outb(COM1 + 1, 0x00)
        t.eq(irqs(qt.take_irq_events()), [("lower", 4)], "clearing IER lowers GSI 4")

        qt.outb(COM1 + 4, 0x10)  # loopback
        qt.outb(COM1, 0x5A)
        t.eq(qt.inb(COM1 + 5) & 0x01, 0x01, "loopback: the byte is received (LSR.DR)")
        t.eq(qt.inb(COM1), 0x5A, "loopback: RBR returns it")
        t.eq(qt.inb(COM1 + 5) & 0x01, 0, "LSR.DR clears after reading")
        qt.outb(COM1 + 4, 0x00)
        t.ok(wait_for(lambda: open(out, "rb").read() == b"hello qtest\n!", timeout=5),
             "the loopback byte does not reach the line", open(out, "rb").read())
    shutil.rmtree(os.path.dirname(out), ignore_errors=True)


def test_uart_receive():
    d = tempfile.mkdtemp(prefix="dvm-qts-", dir="/tmp")
    path = os.path.join(d, "serial.sock")
    with QtestMachine(["--serial", "unix:" + path]) as vm:
        qt = vm.qt
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect(path)
        qt.outb(COM1 + 3, 0x03)  # 8N1: a character is 10 bit times
        qt.outb(COM1 + 2, 0x41)  # FIFOs on, receive trigger at 4 bytes
        t.eq(qt.inb(COM1 + 2), 0xC1, "IIR with FIFOs enabled: 0xc1")
        qt.outb(COM1 + 4, 0x08)
        qt.outb(COM1 + 1, 0x01)  # ERBFI
        qt.irq_intercept()
        c.sendall(b"a")
        t.ok(wait_for(lambda: qt.inb(COM1 + 5) & 1, timeout=5), "a byte from the socket sets LSR.DR")
        t0 = qt.clock_get()
        t.eq(qt.inb(COM1 + 2), 0xC1, "below the trigger level: no interrupt yet")
        char_ns = 10 * 16 * NSEC // 1843200  # 8N1 at 115200 baud
        qt.clock_step(4 * char_ns - 1)
        t.eq(irqs(qt.take_irq_events()), [], "no character timeout before 4 character times")
        nxt = qt.clock_step()
        t.eq(irqs(qt.take_irq_events()), [("raise", 4)], "character timeout raises IRQ 4")
        t.ok(nxt - t0 <= 4 * char_ns, "... after 4 character times", nxt - t0)
        t.eq(qt.inb(COM1 + 2), 0xCC, "IIR: character timeout")
        t.eq(qt.inb(COM1), ord("a"), "RBR returns the byte")
        t.eq(irqs(qt.take_irq_events()), [("lower", 4)], "reading RBR lowers IRQ 4")
        msg = b"0123456789"
        c.sendall(msg)
        t.ok(wait_for(lambda: qt.inb(COM1 + 2) == 0xC4, timeout=5), "4 bytes in the FIFO: received data interrupt")
        t.eq(irqs(qt.take_irq_events()), [("raise", 4)], "... on IRQ 4")
        got = b""
        end = time.monotonic() + 5
        while len(got) < len(msg) and time.monotonic() < end:
            if qt.inb(COM1 + 5) & 1:
                got += bytes([qt.inb(COM1)])
        t.eq(got, msg, "the bytes come out of RBR in order")
        t.eq(qt.inb(COM1 + 5) & 1, 0, "LSR.DR clear when the FIFO is empty")
        for b in b"pong":
            qt.outb(COM1, b)
        out = b""
        while len(out) < 4:
            chunk = c.recv(16)
            if not chunk:
                break
            out += chunk
        t.eq(out, b"pong", "THR bytes reach the socket client")
        c.close()
    shutil.rmtree(d, ignore_errors=True)


# ---- RTC

def rtc_read(qt, reg):
    qt.outb(0x70, reg)
    return qt.inb(0x71)


def rtc_write(qt, reg, v):
    qt.outb(0x70, reg)
    qt.outb(0x71, v)


def is_bcd(v):
    return (v >> 4) < 10 and (v & 0xF) < 10


def test_rtc():
    with QtestMachine() as vm:
        qt = vm.qt
        t.eq(rtc_read(qt, 0x0B), 0x02, "register B after power-on: 24h, BCD, no interrupts")
        t.eq(rtc_read(qt, 0x0A), 0x26, "register A: 32.768 kHz divider, 1024 Hz rate")
        t.eq(rtc_read(qt, 0x0D), 0x80, "register D: VRT")
        regs = [rtc_read(qt, r) for r in (0, 2, 4, 7, 8, 9, 0x32)]
        t.ok(all(is_bcd(v) for v in regs) and regs[0] < 0x60 and regs[1] < 0x60 and regs[2] < 0x24,
             "time and date registers are BCD", [hex(v) for v in regs])
        year = (regs[6] >> 4) * 1000 + (regs[6] & 0xF) * 100 + (regs[5] >> 4) * 10 + (regs[5] & 0xF)
        t.ok(abs(year - time.gmtime().tm_year) <= 1, "century/year registers hold the host's UTC year", year)

        rtc_write(qt, 0x0B, 0x06)  # binary, 24h
        t.eq(rtc_read(qt, 0x0B), 0x06, "register B: binary mode set")
        s0 = rtc_read(qt, 0x00)
        t.ok(s0 < 60, "seconds in binary", s0)
        qt.clock_step(2 * NSEC)
        s1 = rtc_read(qt, 0x00)
        t.eq(s1, (s0 + 2) % 60, "seconds advance by 2 after clock_step 2 s")
        m0 = rtc_read(qt, 0x02)
        qt.clock_step(60 * NSEC)
        t.eq((rtc_read(qt, 0x00), rtc_read(qt, 0x02)), (s1, (m0 + 1) % 60), "60 s later: same second, next minute")

        rtc_write(qt, 0x40, 0x5A)
        t.eq(rtc_read(qt, 0x40), 0x5A, "NVRAM byte 0x40 echoes")
        qt.outb(0x72, 0x10)
        qt.outb(0x73, 0xC3)
        qt.outb(0x72, 0x10)
        t.eq(qt.inb(0x73), 0xC3, "upper NVRAM bank (0x72/0x73) echoes")
        rtc_read(qt, 0x0C)  # clear stale flags

        qt.irq_intercept()
        rtc_write(qt, 0x0A, 0x2F)  # rate 15: 2 Hz
        rtc_write(qt, 0x0B, 0x06 | 0x40)  # PIE
        t.eq(irqs(qt.take_irq_events(), 8), [], "enabling PIE raises nothing before a period elapses")
        now = qt.clock_get()
        nxt = qt.clock_step()
        t.ok(0 < nxt - now <= NSEC // 2, "clock_step without NS stops at the next periodic tick (<= 0.5 s)",
             nxt - now)
        t.eq(irqs(qt.take_irq_events(), 8), [("raise", 8)], "periodic tick raises IRQ 8")
        qt.clock_step(2 * NSEC)
        t.eq(irqs(qt.take_irq_events(), 8), [], "IRQ 8 stays raised (no new edges) until register C is read")
        c = rtc_read(qt, 0x0C)
        t.eq(c & 0xC0, 0xC0, "register C: IRQF|PF")
        t.eq(irqs(qt.take_irq_events(), 8), [("lower", 8)], "reading register C lowers IRQ 8")
        t.eq(rtc_read(qt, 0x0C) & 0xC0, 0, "register C reads clear the second time")
        qt.clock_step(NSEC // 2)
        t.eq(irqs(qt.take_irq_events(), 8), [("raise", 8)], "one period (0.5 s) later IRQ 8 rises again")
        rtc_read(qt, 0x0C)
        rtc_write(qt, 0x0B, 0x06)
        qt.clock_step(NSEC)
        t.eq(irqs(qt.take_irq_events(), 8), [("lower", 8)], "with PIE off no further interrupt")

        rtc_read(qt, 0x0C)
        sec = rtc_read(qt, 0x00)
        rtc_write(qt, 0x01, (sec + 3) % 60)
        rtc_write(qt, 0x03, 0xC0)  # any minute
        rtc_write(qt, 0x05, 0xC0)  # any hour
        rtc_write(qt, 0x0B, 0x06 | 0x20)  # AIE
        qt.clock_step(2 * NSEC)
        t.eq(irqs(qt.take_irq_events(), 8), [], "alarm 3 s ahead: nothing after 2 s")
        qt.clock_step(NSEC)
        t.eq(irqs(qt.take_irq_events(), 8), [("raise", 8)], "alarm fires within the 3rd second")
        t.eq(rtc_read(qt, 0x0C) & 0xA0, 0xA0, "register C: IRQF|AF")
        t.eq(rtc_read(qt, 0x00), (sec + 3) % 60, "the seconds register equals the alarm second")
        rtc_write(qt, 0x0B, 0x06 | 0x10)  # UIE
        qt.take_irq_events()
        qt.clock_step(NSEC)
        t.eq(irqs(qt.take_irq_events(), 8), [("raise", 8)], "update-ended interrupt each second")
        t.eq(rtc_read(qt, 0x0C) & 0x90, 0x90, "register C: IRQF|UF")
        rtc_write(qt, 0x0B, 0x82)  # SET, BCD: the clock stops and takes the registers
        rtc_write(qt, 0x00, 0x30)
        rtc_write(qt, 0x02, 0x59)
        rtc_write(qt, 0x04, 0x23)
        rtc_write(qt, 0x07, 0x31)
        rtc_write(qt, 0x08, 0x12)
        rtc_write(qt, 0x09, 0x99)
        rtc_write(qt, 0x32, 0x20)
        qt.clock_step(5 * NSEC)
        t.eq(rtc_read(qt, 0x00), 0x30, "with SET the clock does not advance")
        rtc_write(qt, 0x0B, 0x02)
        qt.clock_step(30 * NSEC)
        t.eq([rtc_read(qt, r) for r in (0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x32)],
             [0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x21], "30 s after 2099-12-31 23:59:30 it is 2100-01-01 00:00:00")


# ---- PIT

def test_pit():
    with QtestMachine() as vm:
        qt = vm.qt
        qt.irq_intercept()
        # IOAPIC pin 2 (ISA IRQ 0 by the MADT override): edge, vector 0x30, unmasked, to APIC 0
        qt.writel(IOAPIC, 0x10 + 2 * 2)
        qt.writel(IOAPIC + 0x10, 0x30)
        qt.writel(IOAPIC, 0x11 + 2 * 2)
        qt.writel(IOAPIC + 0x10, 0)
        qt.clock_step(NSEC)
        t.eq(irqs(qt.take_irq_events(), 0), [], "unprogrammed PIT: no IRQ 0")

        n = 11932  # about 10 ms
        qt.outb(0x43, 0x34)  # counter 0, LSB then MSB, mode 2, binary
        qt.outb(0x40, n & 0xFF)
        qt.outb(0x40, n >> 8)
        t0 = qt.clock_get()
        qt.clock_step(ticks_to_ns(5 * n, PIT_HZ) - 1)
        ev = qt.take_irq_events()
        t.eq(irqs(ev, 0), [("raise", 0), ("lower", 0)] * 4, "mode 2: 4 pulses on IRQ 0 just before 5 periods")
        t.ok(len([m for m in msis(ev) if m[2] & 0xFF == 0x30]) == 4,
             "each pulse is an IOAPIC pin 2 message with vector 0x30", ev)
        qt.clock_step(1)
        t.eq(irqs(qt.take_irq_events(), 0), [("raise", 0), ("lower", 0)], "the 5th pulse exactly at 5 periods")
        nxt = qt.clock_step()
        t.eq(nxt - t0, ticks_to_ns(6 * n, PIT_HZ), "clock_step without NS lands on the next OUT edge")
        t.eq(len(irqs(qt.take_irq_events(), 0)), 2, "and delivers exactly that pulse")
        qt.clock_step(ticks_to_ns(100 * n, PIT_HZ) - (nxt - t0))
        raises = irqs(qt.take_irq_events(), 0).count(("raise", 0))
        t.eq(raises, 94, "100 periods in total give 100 pulses")

        qt.clock_step(ticks_to_ns(100 * n + 1000, PIT_HZ) + t0 - qt.clock_get())
        qt.outb(0x43, 0x00)  # latch counter 0
        count = qt.inb(0x40) | qt.inb(0x40) << 8
        d = (qt.clock_get() - t0) * PIT_HZ // NSEC
        t.eq(count, n - d % n, "latched count follows the virtual clock")
        qt.outb(0x43, 0xE2)  # read-back: status of counter 0
        t.eq(qt.inb(0x40) & 0x3F, 0x34, "read-back status: LSB/MSB access, mode 2, binary")

        t.eq(qt.readl(LAPIC + 0x200 + 0x10 * (0x30 >> 5)) >> (0x30 & 31) & 1, 1,
             "the PIT's vector 0x30 is pending in LAPIC 0's IRR")

        qt.outb(0x43, 0x30)  # counter 0 reprogrammed, mode 0, no count yet: stops
        qt.take_irq_events()
        qt.clock_step(NSEC)
        t.eq(irqs(qt.take_irq_events(), 0), [], "reprogramming stops the periodic interrupt")


def test_timers_and_pic():
    with QtestMachine() as vm:
        qt = vm.qt
        # PIT counter 2 as Linux uses it to calibrate the TSC: gate via port 0x61, OUT2 read back in bit 5
        qt.outb(0x61, (qt.inb(0x61) & 0xFC) | 0x01)
        qt.outb(0x43, 0xB0)  # counter 2, LSB then MSB, mode 0
        n = 1193
        qt.outb(0x42, n & 0xFF)
        qt.outb(0x42, n >> 8)
        t.eq(qt.inb(0x61) & 0x20, 0, "mode 0 counting: OUT2 low")
        qt.clock_step(ticks_to_ns(n, PIT_HZ) - 1)
        t.eq(qt.inb(0x61) & 0x20, 0, "OUT2 still low one ns before terminal count")
        qt.clock_step(1)
        t.eq(qt.inb(0x61) & 0x20, 0x20, "OUT2 high at terminal count")
        qt.outb(0x61, qt.inb(0x61) & 0xFC)
        qt.outb(0x43, 0xB0)
        qt.outb(0x42, n & 0xFF)
        qt.outb(0x42, n >> 8)
        qt.clock_step(ticks_to_ns(2 * n, PIT_HZ))
        t.eq(qt.inb(0x61) & 0x20, 0, "gate low: counter 2 does not count")
        r0 = qt.inb(0x61) & 0x10
        qt.clock_step(15085)
        t.ok(qt.inb(0x61) & 0x10 != r0, "port 0x61 refresh bit toggles with virtual time")

        # local APIC timer
        qt.writel(LAPIC + 0xF0, 0x1FF)
        qt.writel(LAPIC + 0x3E0, 0xB)  # divide by 1
        qt.writel(LAPIC + 0x320, 0x40)  # one-shot, vector 0x40
        t_icr = qt.clock_get()
        qt.writel(LAPIC + 0x380, 1000000)
        t.eq(qt.readl(LAPIC + 0x390), 1000000, "LAPIC timer: current count starts at the initial count")
        qt.clock_step(250000)
        t.eq(qt.readl(LAPIC + 0x390), 750000, "after 250 us the count is down by 250000 (1 GHz bus, divide 1)")
        t.eq(qt.readl(LAPIC + 0x220) & 1, 0, "no interrupt before expiry")
        nxt = qt.clock_step()
        t.eq(qt.readl(LAPIC + 0x220) & 1, 1, "one-shot expiry sets vector 0x40 in IRR")
        t.eq(qt.readl(LAPIC + 0x390), 0, "current count 0 after a one-shot expiry")
        t.eq(nxt, t_icr + 1000000, "clock_step without NS stopped exactly at the timer deadline")
        qt.writel(LAPIC + 0x3E0, 0x0)  # divide by 2
        qt.writel(LAPIC + 0x320, 1 << 17 | 0x41)  # periodic, vector 0x41
        qt.writel(LAPIC + 0x380, 100000)
        qt.clock_step(1000000 + 50000)
        t.eq(qt.readl(LAPIC + 0x390), 75000, "periodic, divide by 2: 1.05 ms later the count is 75000")
        t.eq(qt.readl(LAPIC + 0x220) >> 1 & 1, 1, "periodic timer sets vector 0x41 in IRR")
        qt.writel(LAPIC + 0x320, 1 << 16 | 1 << 17 | 0x42)  # masked
        qt.clock_step(1000000)
        t.eq(qt.readl(LAPIC + 0x220) >> 2 & 1, 0, "masked LVT timer: nothing in IRR")
        qt.writel(LAPIC + 0x380, 0)
        t.eq(qt.readl(LAPIC + 0x390), 0, "initial count 0 stops the timer")

        # 8259 pair: initialisation, IMR, IRR latching of the PIT's pulses, ELCR
        for port, icws in ((0x20, (0x11, 0x20, 0x04, 0x01)), (0xA0, (0x11, 0x28, 0x02, 0x01))):
            qt.outb(port, icws[0])
            for v in icws[1:]:
                qt.outb(port + 1, v)
        qt.outb(0x21, 0xFA)
        qt.outb(0xA1, 0xFF)
        t.eq((qt.inb(0x21), qt.inb(0xA1)), (0xFA, 0xFF), "PIC IMRs read back after ICW1-4")
        qt.outb(0x20, 0x0A)
        t.eq(qt.inb(0x20) & 1, 0, "PIC IRR bit 0 clear before any PIT pulse")
        qt.outb(0x43, 0x34)
        qt.outb(0x40, 0x9C)
        qt.outb(0x40, 0x2E)
        qt.clock_step(20000000)
        qt.outb(0x20, 0x0A)
        t.eq(qt.inb(0x20) & 1, 1, "a PIT pulse is latched in PIC IRR bit 0 (edge)")
        qt.outb(0x20, 0x0B)
        t.eq(qt.inb(0x20), 0, "PIC ISR empty: no CPU acknowledged")
        qt.outb(0x4D0, 0xFF)
        qt.outb(0x4D1, 0xFF)
        t.eq((qt.inb(0x4D0), qt.inb(0x4D1)), (0xF8, 0xDE), "ELCR: IRQ 0, 1, 2, 8 and 13 stay edge-triggered")


# ---- PCI

def find_cap(qt, dev, cap_id):
    off = qt.pci_read(dev, 0, 0x34, 1) & 0xFC
    seen = 0
    while off and seen < 48:
        hdr = qt.pci_read(dev, 0, off, 2)
        if hdr & 0xFF == cap_id:
            return off
        off = (hdr >> 8) & 0xFC
        seen += 1
    return None


def test_pci():
    with QtestMachine(["--device", "pci-testdev"]) as vm:
        qt = vm.qt
        t.eq(qt.pci_find(TD_VENDOR, TD_DEVICE), (TD_SLOT, 0), "pci_find locates the test device at 00:1f.0")
        t.eq(qt.pci_read(0, 0, 0), PCI_HOST_IDS, "host bridge 00:00.0 is 1b36:0008")
        t.eq(qt.pci_read(0, 0, 8) >> 8, 0x060000, "host bridge class: host bridge")
        t.eq(qt.pci_read(1, 0, 0), 0xFFFFFFFF, "an empty slot reads all ones")
        s = TD_SLOT
        t.eq(qt.pci_read(s, 0, 8) >> 8, 0x00FF00, "test device class 0x00ff00")
        t.eq(qt.pci_read(s, 0, 0x3D, 1), 1, "interrupt pin INTA")
        t.eq(qt.pci_read(s, 0, 0x3C, 1), 19, "interrupt line set to GSI 19 by the firmware-style assignment")
        cmd = qt.pci_read(s, 0, 4, 2)
        t.eq(cmd, CMD_IO | CMD_MEM, "command: I/O and memory decoding on, bus mastering off")
        t.ok(qt.pci_read(s, 0, 6, 2) & 0x10, "status: capability list")

        bar0_raw = qt.pci_read(s, 0, 0x10)
        bar0, is_io, is64 = qt.pci_bar(s, 0, 0)
        t.ok(not is_io and not is64 and bar0_raw & 0xF == 0, "BAR0 is 32-bit non-prefetchable memory",
             hex(bar0_raw))
        t.ok(PCI_MMIO32_BASE <= bar0 and bar0 + 0x1000 <= PCI_MMIO32_BASE + PCI_MMIO32_SIZE and bar0 % 0x1000 == 0,
             "BAR0 is naturally aligned inside the 32-bit window", hex(bar0))
        io, is_io, _ = qt.pci_bar(s, 0, 1)
        t.ok(is_io and PCI_IO_BASE <= io < PCI_IO_BASE + PCI_IO_SIZE and io % 32 == 0,
             "BAR1 is an aligned I/O BAR in the I/O window", hex(io))
        bar2, is_io, is64 = qt.pci_bar(s, 0, 2)
        t.ok(not is_io and is64 and qt.pci_read(s, 0, 0x18) & 0xF == 0xC and bar2 % MIB == 0,
             "BAR2 is 64-bit prefetchable and 1 MiB aligned", hex(bar2))

        # BAR sizing the way drivers do it: decoding off, all ones, read the mask, restore
        qt.pci_write(s, 0, 4, 0, 2)
        t.eq(qt.readl(bar0), 0xFFFFFFFF, "memory decoding off: BAR0 no longer answers")
        sizes = {}
        for off in (0x10, 0x14, 0x18, 0x1C, 0x20, 0x24):
            old = qt.pci_read(s, 0, off)
            qt.pci_write(s, 0, off, 0xFFFFFFFF)
            sizes[off] = qt.pci_read(s, 0, off)
            qt.pci_write(s, 0, off, old)
            t.eq(qt.pci_read(s, 0, off), old, f"BAR at {off:#x} restored")
        t.eq(sizes[0x10], 0xFFFFF000, "BAR0 size mask: 4 KiB memory")
        t.eq(sizes[0x14], 0xFFFFFFE1, "BAR1 size mask: 32 bytes I/O")
        t.eq((sizes[0x18], sizes[0x1C]), (0xFFF0000C, 0xFFFFFFFF), "BAR2 size mask: 1 MiB 64-bit prefetchable")
        t.eq(sizes[0x20], 0, "BAR4 is not implemented")
        qt.pci_write(s, 0, 4, CMD_IO | CMD_MEM, 2)

        t.eq(qt.readl(bar0 + TD_ID), TD_MAGIC, "BAR0 ID register reads the magic")
        count = qt.readl(bar0 + TD_WRITE_COUNT)
        qt.writel(bar0 + TD_SCRATCH, 0xDEADBEEF)
        t.eq(qt.readl(bar0 + TD_SCRATCH), 0xDEADBEEF, "scratch echoes")
        t.eq(qt.readl(bar0 + TD_WRITE_COUNT), count + 1, "WRITE_COUNT counts the write")
        t.eq([qt.readl(bar0 + r) for r in (TD_LAST_BAR, TD_LAST_OFFSET, TD_LAST_SIZE, TD_LAST_VALUE_LO)],
             [0, TD_SCRATCH, 4, 0xDEADBEEF], "LAST_* record BAR 0, offset, size and value")
        qt.writeb(bar0 + 0x1F, 0x77)
        t.eq([qt.readl(bar0 + r) for r in (TD_LAST_OFFSET, TD_LAST_SIZE, TD_LAST_VALUE_LO)], [0x1F, 1, 0x77],
             "a byte write is recorded too")
        qt.writeq(bar0 + TD_DMA_ADDR_LO, 0x0000001200345678)
        t.eq([qt.readl(bar0 + r) for r in (TD_LAST_SIZE, TD_LAST_VALUE_LO, TD_LAST_VALUE_HI)],
             [8, 0x00345678, 0x12], "a qword write is recorded with both halves of its value")
        t.eq(qt.readq(bar0 + TD_DMA_ADDR_LO), 0x0000001200345678, "a qword write sets two registers")
        qt.writel(bar0 + TD_ID, 0)
        t.eq(qt.readl(bar0 + TD_ID), TD_MAGIC, "the ID register is read-only")
        t.eq(qt.readw(bar0 + TD_ID + 2), TD_MAGIC >> 16, "a 2-byte read of the upper half")

        t.eq(qt.inl(io + TD_ID), TD_MAGIC, "I/O BAR1 reaches the same registers")
        qt.outl(io + TD_SCRATCH, 0x12345678)
        t.eq(qt.readl(bar0 + TD_SCRATCH), 0x12345678, "a scratch write through I/O shows through MMIO")
        t.eq([qt.readl(bar0 + r) for r in (TD_LAST_BAR, TD_LAST_OFFSET)], [1, TD_SCRATCH],
             "LAST_BAR records the I/O BAR")
        qt.writeq(bar2 + 0x10, 0x1122334455667788)
        t.eq(qt.readq(bar2 + 0x10), 0x1122334455667788, "BAR2 memory: qword round trip")
        t.eq(qt.readl(bar2 + 0x1000 + 0x14), 0x11223344, "BAR2: 4 KiB of memory repeats over the BAR")

        ecam = PCI_ECAM_BASE + (s << 15)
        t.eq(qt.readl(ecam), qt.pci_read(s, 0, 0), "ECAM vendor/device of 00:1f.0 equal the CF8 result")
        t.eq(qt.readl(PCI_ECAM_BASE), PCI_HOST_IDS, "ECAM reaches the host bridge")
        t.eq(qt.readl(ecam + 0x10), qt.pci_read(s, 0, 0x10), "ECAM BAR0 equals the CF8 result")
        t.eq(qt.readl(PCI_ECAM_BASE + (5 << 15)), 0xFFFFFFFF, "ECAM of an empty slot reads all ones")
        t.eq(qt.readl(ecam + 0x10C), TD_MAGIC, "ECAM reaches extended config space (VSEC magic)")
        qt.writel(ecam + 0x108, 0xA5A5F00D)
        t.eq(qt.readl(ecam + 0x108), 0xA5A5F00D, "ECAM write to the VSEC scratch register")
        qt.writel(ecam + 0x04, CMD_IO | CMD_MEM | CMD_MASTER)
        t.eq(qt.pci_read(s, 0, 4, 2), CMD_IO | CMD_MEM | CMD_MASTER, "an ECAM command write is seen through CF8")
        qt.pci_write(s, 0, 4, CMD_IO | CMD_MEM, 2)

        # INTx
        qt.irq_intercept()
        qt.take_irq_events()
        qt.writel(bar0 + TD_INTX, 1)
        t.eq(irqs(qt.take_irq_events()), [("raise", 19)], "INTX=1 raises GSI 19 (slot 31 INTA)")
        t.ok(qt.pci_read(s, 0, 6, 2) & STATUS_INTERRUPT, "status: interrupt bit set")
        qt.writel(bar0 + TD_INTX, 0)
        t.eq(irqs(qt.take_irq_events()), [("lower", 19)], "INTX=0 lowers GSI 19")
        t.eq(qt.pci_read(s, 0, 6, 2) & STATUS_INTERRUPT, 0, "status: interrupt bit clear")
        qt.pci_write(s, 0, 4, CMD_IO | CMD_MEM | CMD_INTX_DISABLE, 2)
        qt.writel(bar0 + TD_INTX, 1)
        t.eq(irqs(qt.take_irq_events()), [], "with INTx disable set nothing is raised")
        t.ok(qt.pci_read(s, 0, 6, 2) & STATUS_INTERRUPT, "status still shows the pending interrupt")
        qt.pci_write(s, 0, 4, CMD_IO | CMD_MEM, 2)
        t.eq(irqs(qt.take_irq_events()), [("raise", 19)], "clearing INTx disable delivers the asserted pin")
        qt.writel(bar0 + TD_INTX, 0)
        t.eq(irqs(qt.take_irq_events()), [("lower", 19)], "and deasserting lowers it")
        qt.writel(bar0 + TD_NOTIFY, 0)
        t.eq(qt.readl(bar0 + TD_NOTIFY), NOTIFY_INTX, "NOTIFY without MSI/MSI-X falls back to INTx")
        t.eq(irqs(qt.take_irq_events()), [("raise", 19)], "... raising GSI 19")
        qt.writel(bar0 + TD_INTX, 0)
        qt.take_irq_events()

        # MSI-X
        msix = find_cap(qt, s, 0x11)
        t.ok(msix is not None and find_cap(qt, s, 0x05) is not None,
             "the capability list from 0x34 holds MSI (0x05) and MSI-X (0x11)")
        ctrl = qt.pci_read(s, 0, msix + 2, 2)
        t.eq(ctrl & 0x7FF, 7, "MSI-X table size 8")
        t.eq((qt.pci_read(s, 0, msix + 4), qt.pci_read(s, 0, msix + 8)), (TD_MSIX_TABLE, TD_MSIX_PBA),
             "MSI-X table at BAR0+0x800, PBA at BAR0+0xc00")
        t.eq(qt.readl(bar0 + TD_MSIX_TABLE + 12), 1, "MSI-X vectors start masked")
        qt.pci_write(s, 0, 4, CMD_IO | CMD_MEM | CMD_MASTER, 2)
        qt.pci_write(s, 0, msix + 2, 0x8000, 2)
        t.eq(qt.pci_read(s, 0, msix + 2, 2) & 0xC000, 0x8000, "MSI-X enabled")
        ent = bar0 + TD_MSIX_TABLE
        qt.writel(ent + 0, 0xFEE00000)
        qt.writel(ent + 4, 0)
        qt.writel(ent + 8, 0x4041)
        qt.writel(ent + 12, 0)
        t.eq([qt.readl(ent + i) for i in (0, 4, 8, 12)], [0xFEE00000, 0, 0x4041, 0], "table entry 0 reads back")
        qt.writel(bar0 + TD_NOTIFY, 0)
        t.eq(qt.take_irq_events(), [("msi", 0xFEE00000, 0x4041)], "NOTIFY 0 sends MSI 0xfee00000 0x4041")
        t.eq(qt.readl(bar0 + TD_NOTIFY), NOTIFY_SENT, "NOTIFY reads SENT")
        t.eq(qt.readl(LAPIC + 0x220) >> 1 & 1, 1, "vector 0x41 pending in LAPIC 0's IRR")
        qt.writel(bar0 + TD_INTX, 1)
        t.eq(irqs(qt.take_irq_events()), [], "with MSI-X enabled INTx does not reach GSI 19")
        qt.writel(bar0 + TD_INTX, 0)

        qt.writel(ent + 12, 1)
        qt.writel(bar0 + TD_NOTIFY, 0)
        t.eq(qt.take_irq_events(), [], "masked vector: no message")
        t.eq(qt.readl(bar0 + TD_NOTIFY), NOTIFY_PENDING, "NOTIFY reads PENDING")
        t.eq(qt.readl(bar0 + TD_MSIX_PBA) & 1, 1, "the PBA bit of vector 0 is set")
        qt.writel(ent + 12, 0)
        t.eq(qt.take_irq_events(), [("msi", 0xFEE00000, 0x4041)], "unmasking delivers the pending message")
        t.eq(qt.readl(bar0 + TD_MSIX_PBA) & 1, 0, "the PBA bit is cleared")

        qt.pci_write(s, 0, msix + 2, 0xC000, 2)  # function mask
        qt.writel(bar0 + TD_NOTIFY, 0)
        t.eq(qt.take_irq_events(), [], "function mask: no message")
        qt.pci_write(s, 0, msix + 2, 0x8000, 2)
        t.eq(qt.take_irq_events(), [("msi", 0xFEE00000, 0x4041)], "clearing the function mask delivers it")

        qt.writel(ent + 16, 0xFEE01000)
        qt.writel(ent + 16 + 8, 0x42)
        qt.writel(ent + 16 + 12, 0)
        qt.writel(bar0 + TD_NOTIFY, 1)
        t.eq(qt.take_irq_events(), [("msi", 0xFEE01000, 0x42)], "vector 1 uses table entry 1")
        qt.writel(bar0 + TD_NOTIFY, 8)
        t.eq(qt.readl(bar0 + TD_NOTIFY), 0xFFFFFFEA, "NOTIFY of a vector the device lacks reads -EINVAL")
        t.eq(qt.take_irq_events(), [], "... and sends nothing")

        qt.pci_write(s, 0, 4, CMD_IO | CMD_MEM, 2)
        qt.writel(bar0 + TD_NOTIFY, 0)
        t.eq(qt.take_irq_events(), [], "bus mastering off: no message")
        t.eq(qt.readl(bar0 + TD_NOTIFY), NOTIFY_DROPPED, "NOTIFY reads DROPPED")
        qt.pci_write(s, 0, msix + 2, 0, 2)

        # MSI (64-bit, per-vector mask)
        msi = find_cap(qt, s, 0x05)
        flags = qt.pci_read(s, 0, msi + 2, 2)
        t.eq(flags & 0x18E, 0x184, "MSI: 64-bit, maskable, 4 vectors capable")
        qt.pci_write(s, 0, 4, CMD_IO | CMD_MEM | CMD_MASTER, 2)
        qt.pci_write(s, 0, msi + 4, 0xFEE00000)
        qt.pci_write(s, 0, msi + 8, 0)
        qt.pci_write(s, 0, msi + 12, 0x60, 2)
        qt.pci_write(s, 0, msi + 2, 0x0001 | 0x20, 2)  # enable, 4 messages
        qt.writel(bar0 + TD_NOTIFY, 2)
        t.eq(qt.take_irq_events(), [("msi", 0xFEE00000, 0x62)], "MSI vector 2 carries data 0x60 | 2")
        qt.pci_write(s, 0, msi + 0x10, 0x4)  # mask vector 2
        qt.writel(bar0 + TD_NOTIFY, 2)
        t.eq(qt.take_irq_events(), [], "masked MSI vector: nothing")
        t.eq(qt.pci_read(s, 0, msi + 0x14) & 0x4, 0x4, "its pending bit is set")
        qt.pci_write(s, 0, msi + 0x10, 0)
        t.eq(qt.take_irq_events(), [("msi", 0xFEE00000, 0x62)], "unmasking the MSI vector delivers it")
        qt.pci_write(s, 0, msi + 2, 0, 2)

        # DMA
        def dma(cmd, addr, value=None):
            qt.writel(bar0 + TD_DMA_ADDR_LO, addr & 0xFFFFFFFF)
            qt.writel(bar0 + TD_DMA_ADDR_HI, addr >> 32)
            if value is not None:
                qt.writel(bar0 + TD_DMA_VALUE, value)
            qt.writel(bar0 + TD_DMA_CTRL, cmd)
            return qt.readl(bar0 + TD_DMA_STATUS)

        qt.writel(0x5000, 0)
        t.eq(dma(DMA_WRITE, 0x5000, 0xCAFEF00D), DMA_OK, "DMA_WRITE status OK")
        t.eq(qt.readl(0x5000), 0xCAFEF00D, "DMA_WRITE put the value in guest RAM")
        qt.writel(0x5004, 0x0BADC0DE)
        t.eq(dma(DMA_READ, 0x5004), DMA_OK, "DMA_READ status OK")
        t.eq(qt.readl(bar0 + TD_DMA_VALUE), 0x0BADC0DE, "DMA_READ fetched the dword from guest RAM")
        t.eq(dma(DMA_WRITE, IOAPIC, 0x12345678), DMA_FAULT, "DMA to the IOAPIC (not RAM) -> DMA_FAULT")
        qt.writel(IOAPIC, 1)
        t.eq(qt.readl(IOAPIC + 0x10), 0x00170020, "... and the IOAPIC was not touched")
        t.eq(dma(DMA_WRITE, RAM - 2, 1), DMA_FAULT, "DMA across the end of RAM -> DMA_FAULT")
        t.eq(dma(DMA_READ, 1 << 40), DMA_FAULT, "DMA read far above RAM -> DMA_FAULT")
        t.eq(dma(7, 0x5000), DMA_BAD_CMD, "unknown DMA command -> BAD_CMD")
        qt.pci_write(s, 0, 4, CMD_IO | CMD_MEM, 2)
        t.eq(dma(DMA_WRITE, 0x5000, 0x11111111), DMA_NO_MASTER, "DMA with bus mastering off -> NO_MASTER")
        t.eq(qt.readl(0x5000), 0xCAFEF00D, "... and guest RAM is unchanged")


# ---- IOAPIC and LAPIC

def ioapic_read(qt, reg):
    qt.writel(IOAPIC, reg)
    return qt.readl(IOAPIC + 0x10)


def ioapic_write(qt, reg, v):
    qt.writel(IOAPIC, reg)
    qt.writel(IOAPIC + 0x10, v)


def test_apics():
    with QtestMachine(["--device", "pci-testdev"]) as vm:
        qt = vm.qt
        t.eq(ioapic_read(qt, 1), 0x00170020, "IOAPIC version: 24 pins, version 0x20")
        t.eq(ioapic_read(qt, 0), 0, "IOAPIC ID 0")
        t.eq(ioapic_read(qt, 0x10 + 2 * 19), 0x10000, "redirection entry 19 starts masked")
        ioapic_write(qt, 0, 0x0A000000)
        t.eq(ioapic_read(qt, 0), 0x0A000000, "IOAPIC ID is writable (bits 27:24)")
        ioapic_write(qt, 0, 0)
        low = 0x50 | 1 << 13 | 1 << 15  # vector 0x50, fixed, physical, active low, level, unmasked
        ioapic_write(qt, 0x10 + 2 * 19, low)
        ioapic_write(qt, 0x11 + 2 * 19, 0)
        t.eq((ioapic_read(qt, 0x10 + 2 * 19), ioapic_read(qt, 0x11 + 2 * 19)), (low, 0),
             "redirection entry 19 reads back")

        t.eq(qt.readl(LAPIC + 0x30), 0x00050014, "LAPIC version 0x50014")
        t.eq(qt.readl(LAPIC + 0x20) >> 24, 0, "LAPIC 0 has APIC ID 0")
        qt.writel(LAPIC + 0xF0, 0x1FF)
        t.eq(qt.readl(LAPIC + 0xF0) & 0x1FF, 0x1FF, "LAPIC software-enabled, spurious vector 0xff")
        qt.writel(LAPIC + 0x80, 0x20)
        t.eq(qt.readl(LAPIC + 0x80), 0x20, "TPR reads back")
        qt.writel(LAPIC + 0x80, 0)
        t.eq(qt.readl(LAPIC + 0x220) >> 16 & 1, 0, "vector 0x50 not pending yet")

        dev = qt.pci_find(TD_VENDOR, TD_DEVICE)[0]
        bar0 = qt.pci_bar(dev, 0, 0)[0]
        qt.irq_intercept()
        qt.writel(bar0 + TD_INTX, 1)
        ev = qt.take_irq_events()
        t.eq(irqs(ev), [("raise", 19)], "INTx raises GSI 19")
        m = msis(ev)
        t.ok(len(m) == 1 and m[0][1] == 0xFEE00000 and m[0][2] & 0xFF == 0x50 and m[0][2] & 0x700 == 0,
             "the IOAPIC sends its message: MSI to APIC 0, fixed, vector 0x50", ev)
        t.ok(len(m) == 1 and m[0][2] & 0xC000 == 0xC000, "the IOAPIC message is level-triggered, asserted", ev)
        t.eq(qt.readl(LAPIC + 0x220) >> 16 & 1, 1, "LAPIC 0 IRR has vector 0x50")
        t.eq(qt.readl(LAPIC + 0x1A0) >> 16 & 1, 1, "LAPIC 0 TMR marks 0x50 level-triggered")
        t.eq(ioapic_read(qt, 0x10 + 2 * 19) & (1 << 14), 1 << 14, "remote IRR set in entry 19")
        qt.writel(bar0 + TD_INTX, 0)
        qt.writel(bar0 + TD_INTX, 1)
        t.eq(msis(qt.take_irq_events()), [], "no new message while remote IRR is set")
        qt.writel(IOAPIC + 0x40, 0x50)  # directed EOI, the pin still asserted
        m = msis(qt.take_irq_events())
        t.ok(len(m) == 1 and m[0][2] & 0xFF == 0x50, "EOI with the pin still asserted delivers again", m)
        qt.writel(bar0 + TD_INTX, 0)
        qt.writel(IOAPIC + 0x40, 0x50)
        t.eq(msis(qt.take_irq_events()), [], "EOI with the pin deasserted sends nothing")
        t.eq(ioapic_read(qt, 0x10 + 2 * 19) & (1 << 14), 0, "remote IRR cleared by the EOI")
        ioapic_write(qt, 0x10 + 2 * 19, low | 1 << 16)
        qt.writel(bar0 + TD_INTX, 1)
        ev = qt.take_irq_events()
        t.ok(irqs(ev) == [("raise", 19)] and msis(ev) == [], "masked entry: GSI 19 rises, no IOAPIC message", ev)
        ioapic_write(qt, 0x10 + 2 * 19, low)
        m = msis(qt.take_irq_events())
        t.ok(len(m) == 1 and m[0][2] & 0xFF == 0x50, "unmasking a still-asserted level pin delivers", m)
        qt.writel(bar0 + TD_INTX, 0)

        # an edge entry on an ISA pin routed to APIC ID 0 with a different vector; COM1 is ISA IRQ 4
        ioapic_write(qt, 0x10 + 2 * 4, 0x61)
        qt.outb(COM1 + 4, 0x08)
        qt.outb(COM1 + 1, 0x02)
        ev = qt.take_irq_events()
        t.ok(("raise", 4) in ev and ("msi", 0xFEE00000, 0x61) in ev, "COM1's IRQ 4 reaches IOAPIC pin 4 (edge)", ev)
        t.eq(qt.readl(LAPIC + 0x230) >> 1 & 1, 1, "LAPIC 0 IRR has vector 0x61")
        t.eq(qt.readl(LAPIC + 0x1B0) >> 1 & 1, 0, "edge vector not marked in TMR")
        qt.outb(COM1 + 1, 0)


# ---- ACPI PM, power button and S5

def test_acpi_pm():
    with QtestMachine() as vm:
        qt = vm.qt
        q = qmp_for(vm)
        now = qt.clock_get()
        t.eq(qt.inl(PM_TMR), (now * PM_TIMER_HZ // NSEC) & 0xFFFFFFFF, "PM timer = virtual time at 3.579545 MHz")
        a = qt.inl(PM_TMR)
        qt.clock_step(NSEC)
        b = qt.inl(PM_TMR)
        t.eq((b - a) & 0xFFFFFFFF, PM_TIMER_HZ, "PM timer advances 3579545 ticks per virtual second")
        qt.clock_step(10 * NSEC)
        t.ok(qt.inl(PM_TMR) > 1 << 24, "the PM timer is 32 bits wide")
        t.eq(qt.inw(PM1_CNT) & 1, 1, "PM1_CNT.SCI_EN: ACPI mode")
        t.eq(qt.inw(PM1_STS) & 0x100, 0, "PWRBTN_STS clear at start")

        qt.irq_intercept()
        t.eq(q.cmd("system_powerdown"), {"return": {}}, "QMP system_powerdown")
        t.ok(q.wait_event("POWERDOWN") is not None, "QMP POWERDOWN event")
        t.eq(qt.inw(PM1_STS) & 0x100, 0x100, "system_powerdown sets PWRBTN_STS")
        t.eq(qt.irq_level(9), 0, "PWRBTN_EN clear: no SCI")
        qt.outw(PM1_EN, 0x100)
        t.eq(irqs(qt.take_irq_events(), 9), [("raise", 9)], "enabling PWRBTN_EN raises the SCI (GSI 9)")
        qt.outw(PM1_STS, 0x100)
        t.eq(irqs(qt.take_irq_events(), 9), [("lower", 9)], "clearing PWRBTN_STS (write 1) lowers the SCI")
        t.eq(qt.inw(PM1_STS) & 0x100, 0, "PWRBTN_STS cleared")

        qt.outw(PM1_CNT, 5 << 10 | 1 << 13)
        ev = q.wait_event("SHUTDOWN")
        t.eq(ev and ev.get("data"), {"guest": True, "reason": "guest-shutdown"},
             "SLP_TYP=5|SLP_EN: QMP SHUTDOWN guest=true reason guest-shutdown")
        try:
            rc = vm.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - still running is the failure reported below
            rc = None
        t.eq(rc, 0, "deskvm exits with code 0 after S5")
        q.close()


# ---- i8042, reset lines and QMP system_reset

def test_reset():
    with QtestMachine(["--device", "pci-testdev"]) as vm:
        qt = vm.qt
        q = qmp_for(vm)
        qt.outb(0x64, 0xAA)
        t.eq(qt.inb(0x64) & 1, 1, "i8042 self-test: output buffer full")
        t.eq(qt.inb(0x60), 0x55, "i8042 self-test answers 0x55")
        t.eq(qt.inb(0x64) & 1, 0, "output buffer empty after reading")

        qt.outb(0x64, 0xFE)
        ev = q.wait_event("RESET")
        t.eq(ev and ev.get("data"), {"guest": True, "reason": "guest-reset"},
             "i8042 0xFE: QMP RESET guest=true reason guest-reset")
        t.eq(q.cmd("query-status").get("return", {}).get("status"), "running", "deskvm keeps running after it")
        t.eq(qt.inb(0x64) & 0x04, 0x04, "the qtest connection still works (i8042 status SYS flag)")
        qt.outb(0xCF9, 0x02)
        qt.outb(0xCF9, 0x06)
        ev = q.wait_event("RESET")
        t.eq(ev and ev.get("data"), {"guest": True, "reason": "guest-reset"}, "port 0xCF9 reset: RESET event")

        dev = qt.pci_find(TD_VENDOR, TD_DEVICE)[0]
        bar0 = qt.pci_bar(dev, 0, 0)[0]
        qt.writel(bar0 + TD_SCRATCH, 0x1234)
        qt.pci_write(dev, 0, 4, CMD_IO | CMD_MEM | CMD_MASTER, 2)
        qt.outb(COM1 + 7, 0x77)
        qt.outb(COM1 + 3, 0x03)
        rtc_write(qt, 0x40, 0x5A)
        rtc_write(qt, 0x0B, 0x02 | 0x40)
        ioapic_write(qt, 0x10 + 2 * 4, 0x61)
        qt.irq_intercept()
        qt.outb(COM1 + 4, 0x08)
        qt.outb(COM1 + 1, 0x02)
        t.eq(irqs(qt.take_irq_events(), 4), [("raise", 4)], "before reset: COM1 IRQ 4 raised")
        qt.writel(0x7000, 0x600DF00D)

        t.eq(q.cmd("system_reset"), {"return": {}}, "QMP system_reset")
        ev = q.wait_event("RESET")
        t.eq(ev and ev.get("data"), {"guest": False, "reason": "host-qmp-system-reset"},
             "RESET guest=false reason host-qmp-system-reset")
        t.eq(qt.irq_level(4), 0, "after the reset GSI 4 is low")
        t.eq(irqs(qt.take_irq_events(), 4), [("lower", 4)], "reset lowered COM1's IRQ 4 (reported with the next reply)")
        t.eq(qt.pci_bar(dev, 0, 0)[0], bar0, "BAR0 is assigned again at the same address")
        t.eq(qt.pci_read(dev, 0, 4, 2), CMD_IO | CMD_MEM, "command register back to decoding only (no master)")
        t.eq(qt.readl(bar0 + TD_SCRATCH), 0, "test device scratch register back to 0")
        t.eq(qt.readl(bar0 + TD_WRITE_COUNT), 0, "test device write count back to 0")
        t.eq((qt.inb(COM1 + 1), qt.inb(COM1 + 3), qt.inb(COM1 + 4), qt.inb(COM1 + 5)), (0, 0, 0, 0x60),
             "UART IER, LCR, MCR, LSR back to power-on values")
        t.eq(qt.inb(COM1 + 7), 0x77, "UART scratch register kept (16550 master reset leaves it)")
        t.eq(rtc_read(qt, 0x40), 0x5A, "RTC NVRAM byte survives the reset")
        t.eq(rtc_read(qt, 0x0B), 0x02, "RTC register B: interrupt enables cleared, format kept")
        t.eq(ioapic_read(qt, 0x10 + 2 * 4), 0x10000, "IOAPIC redirection entry masked again")
        t.eq(qt.readl(0x7000), 0x600DF00D, "guest RAM is not cleared by a reset")
        q.close()


def main():
    start = time.monotonic()
    for fn in (test_protocol, test_sessions, test_uart, test_uart_receive, test_rtc, test_timers_and_pic, test_pit,
               test_pci, test_apics, test_acpi_pm, test_reset):
        t.run(fn, fn.__name__)
    t.diag(f"took {time.monotonic() - start:.1f} s")
    t.done()


if __name__ == "__main__":
    main()
