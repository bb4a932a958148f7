#!/usr/bin/env python3
"""Input end to end on the CPU-less machine: QMP send-key / input-send-event / query-mice against the real deskvm
binary with `--accel qtest`, checked where a guest would see the result: PS/2 bytes at ports 0x60/0x64, and
virtio-input events in event-queue buffers in guest RAM, read by a small virtio driver written here. Also the
--keymap and --device option checks."""
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import DESKVM, QmpClient  # noqa: E402
from qtest import QtestMachine  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()

MS = 1000000
KBD_SLOT, TABLET_SLOT = 4, 5  # machine/virtio_input.h
VIRTIO_VENDOR, VIRTIO_INPUT_DEVICE = 0x1AF4, 0x1040 + 18
EV_SYN, EV_KEY, EV_REL, EV_ABS = 0, 1, 2, 3
KEY_A, KEY_LEFTSHIFT, KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE = 30, 42, 29, 56, 111
BTN_LEFT, REL_WHEEL = 0x110, 8


def qmp_for(vm):
    q = QmpClient(vm.qmp_path)
    q.negotiate()
    return q


def ps2_bytes(qt, limit=64):
    """Every byte waiting in the i8042's output buffer."""
    out = []
    while len(out) < limit and qt.inb(0x64) & 1:
        out.append(qt.inb(0x60))
    return out


def error_desc(reply):
    return reply.get("error", {}).get("desc"), reply.get("error", {}).get("class")


class VirtioInput:
    """Just enough of a virtio 1.x PCI driver: MMIO BAR 4 at its fixed layout (docs/virtio.md), one event queue
    with 8-byte buffers, polled (no interrupts)."""
    QUEUE = 64

    def __init__(self, qt, slot, base):
        self.qt, self.slot, self.base = qt, slot, base
        qt.pci_write(slot, 0, 0x04, 0x6, 2)  # memory decoding + bus master
        self.bar4, _, _ = qt.pci_bar(slot, 0, 4)
        self.desc, self.avail, self.used = base, base + 0x1000, base + 0x2000
        self.bufs = base + 0x3000
        self.seen = 0
        self.posted = 0

    def common_w(self, off, v, size):
        {1: self.qt.writeb, 2: self.qt.writew, 4: self.qt.writel}[size](self.bar4 + off, v)

    def common_r(self, off, size):
        return {1: self.qt.readb, 2: self.qt.readw, 4: self.qt.readl}[size](self.bar4 + off)

    def config_string(self, select):
        dev = self.bar4 + 0x2000
        self.qt.writeb(dev, select)
        self.qt.writeb(dev + 1, 0)
        n = self.qt.readb(dev + 2)
        return bytes(self.qt.readb(dev + 8 + i) for i in range(n))

    def start(self):
        qt = self.qt
        self.common_w(0x14, 0, 1)  # reset
        self.common_w(0x14, 1 | 2, 1)  # ACKNOWLEDGE | DRIVER
        self.common_w(0x08, 1, 4)  # driver_feature_select 1
        self.common_w(0x0C, 1, 4)  # VIRTIO_F_VERSION_1
        self.common_w(0x14, 1 | 2 | 8, 1)  # FEATURES_OK
        assert self.common_r(0x14, 1) == 1 | 2 | 8, "FEATURES_OK did not stick"
        qt.cmd(f"memset {self.base:#x} {0x4000} 0")
        self.common_w(0x16, 0, 2)  # queue_select 0
        assert self.common_r(0x18, 2) == self.QUEUE
        for off, addr in ((0x20, self.desc), (0x28, self.avail), (0x30, self.used)):
            self.common_w(off, addr, 4)
            self.common_w(off + 4, 0, 4)
        self.common_w(0x1C, 1, 2)  # queue_enable
        self.common_w(0x14, 1 | 2 | 8 | 4, 1)  # DRIVER_OK
        self.post(self.QUEUE)

    def post(self, n):
        qt = self.qt
        for _ in range(n):
            i = self.posted % self.QUEUE
            qt.memwrite(self.desc + 16 * i, struct.pack("<QIHH", self.bufs + 8 * i, 8, 2, 0))  # WRITE
            qt.writew(self.avail + 4 + 2 * i, i)
            self.posted += 1
        qt.writew(self.avail + 2, self.posted & 0xFFFF)
        qt.writew(self.bar4 + 0x3000, 0)  # notify queue 0

    def events(self):
        """(type, code, value) of every event completed since the last call; buffers are reposted."""
        qt = self.qt
        idx = qt.readw(self.used + 2)
        out = []
        while self.seen != idx:
            i = self.seen % self.QUEUE
            head, length = struct.unpack("<II", qt.memread(self.used + 4 + 8 * i, 8))
            typ, code, value = struct.unpack("<HHi", qt.memread(self.bufs + 8 * head, 8))
            out.append((typ, code, value) if length == 8 else ("bad length", length))
            self.seen = (self.seen + 1) & 0xFFFF
        if out:
            self.post(len(out))
        return out


def test_ps2_send_key():
    with QtestMachine() as vm:
        qt, q = vm.qt, qmp_for(vm)
        mice = q.cmd("query-mice")
        t.eq(mice, {"return": [{"name": "deskvm PS/2 Mouse", "index": 1, "current": True, "absolute": False}]},
             "query-mice without virtio: the PS/2 mouse, current, relative")
        r = q.cmd("send-key", {"keys": [{"type": "qcode", "data": "shift"}, {"type": "qcode", "data": "a"}]})
        t.eq(r, {"return": {}}, "send-key shift+a accepted")
        t.eq(ps2_bytes(qt), [0x2A, 0x1E], "PS/2 (set 2 translated to set 1): shift and a pressed at once")
        qt.clock_step(100 * MS - 1)
        t.eq(ps2_bytes(qt), [], "nothing released before the 100 ms default hold time")
        qt.clock_step(1)
        t.eq(ps2_bytes(qt), [0x9E, 0xAA], "released in reverse order after 100 ms of virtual time")
        r = q.cmd("send-key", {"keys": [{"type": "number", "data": 0x1D}, {"type": "number", "data": 0x38},
                                        {"type": "number", "data": 0xD3}], "hold-time": 5})
        t.eq(r, {"return": {}}, "send-key by QEMU key numbers (ctrl-alt-delete, 0xD3 = E0 53)")
        t.eq(ps2_bytes(qt), [0x1D, 0x38, 0xE0, 0x53], "ctrl, alt, delete pressed")
        qt.clock_step(5 * MS)
        t.eq(ps2_bytes(qt), [0xE0, 0xD3, 0xB8, 0x9D], "released after hold-time 5 ms")
        # Mouse through input-send-event: enable the aux port and reporting first, as a guest driver does.
        qt.outb(0x64, 0xA8)
        qt.outb(0x64, 0x60)
        qt.outb(0x60, 0x47)  # KBDINT | AUXINT | SYS | XLATE
        qt.outb(0x64, 0xD4)
        qt.outb(0x60, 0xF4)
        t.eq(ps2_bytes(qt), [0xFA], "mouse acknowledges enable reporting")
        r = q.cmd("input-send-event", {"events": [
            {"type": "rel", "data": {"axis": "x", "value": 7}},
            {"type": "rel", "data": {"axis": "y", "value": 3}},
            {"type": "btn", "data": {"down": True, "button": "left"}}]})
        t.eq(r, {"return": {}}, "input-send-event rel + btn accepted")
        t.eq(ps2_bytes(qt), [0x29, 7, 0xFD], "one PS/2 packet: left button, dx 7, dy -3 (PS/2 y is up)")
        q.close()


def test_qmp_errors():
    with QtestMachine() as vm:
        q = qmp_for(vm)
        cases = [
            ("send-key", {}, "Parameter 'keys' is missing"),
            ("send-key", {"keys": "a"}, "Invalid parameter type for 'keys', expected: array"),
            ("send-key", {"keys": [{"type": "qcode", "data": "nosuchkey"}]},
             "Parameter 'keys[0].data' does not accept value 'nosuchkey'"),
            ("send-key", {"keys": [{"type": "qcode", "data": "a"}, {"type": "number", "data": "30"}]},
             "Invalid parameter type for 'keys[1].data', expected: integer"),
            ("send-key", {"keys": [{"type": "scancode", "data": 1}]},
             "Parameter 'keys[0].type' does not accept value 'scancode'"),
            ("send-key", {"keys": [{"data": "a"}]}, "Parameter 'keys[0].type' is missing"),
            ("send-key", {"keys": [{"type": "qcode", "data": "a", "x": 1}]}, "Parameter 'keys[0].x' is unexpected"),
            ("send-key", {"keys": [{"type": "qcode", "data": "a"}], "hold-time": -1},
             "Parameter 'hold-time' expects a number of milliseconds from 0 to 60000"),
            ("input-send-event", {"events": [{"type": "btn", "data": {"down": True, "button": "fourth"}}]},
             "Parameter 'events[0].data.button' does not accept value 'fourth'"),
            ("input-send-event", {"events": [{"type": "abs", "data": {"axis": "z", "value": 1}}]},
             "Parameter 'events[0].data.axis' does not accept value 'z'"),
            ("input-send-event", {"events": [{"type": "abs", "data": {"axis": "x"}}]},
             "Parameter 'events[0].data.value' is missing"),
            ("input-send-event", {"events": [{"type": "key", "data": {"down": 1, "key": {"type": "qcode",
                                                                                          "data": "a"}}}]},
             "Invalid parameter type for 'events[0].data.down', expected: boolean"),
            ("input-send-event", {"events": [{"type": "touch", "data": {}}]},
             "Parameter 'events[0].type' does not accept value 'touch'"),
        ]
        for cmd, args, want in cases:
            r = q.cmd(cmd, args)
            t.eq(error_desc(r), (want, "GenericError"), f"{cmd} {args}: {want}")
        r = q.cmd("input-send-event", {"device": "video0", "events": []})
        t.eq(error_desc(r), ("Device 'video0' not found", "DeviceNotFound"), "input-send-event device=video0")
        t.eq(q.cmd("query-status")["return"]["status"], "running", "deskvm still answers after the bad requests")
        q.close()


def test_virtio():
    with QtestMachine(extra=["--device", "virtio-keyboard", "--device", "virtio-tablet"]) as vm:
        qt, q = vm.qt, qmp_for(vm)
        t.eq(qt.pci_read(KBD_SLOT, 0, 0), VIRTIO_INPUT_DEVICE << 16 | VIRTIO_VENDOR, "virtio-input at slot 4")
        t.eq(qt.pci_read(TABLET_SLOT, 0, 0), VIRTIO_INPUT_DEVICE << 16 | VIRTIO_VENDOR, "virtio-input at slot 5")
        kbd = VirtioInput(qt, KBD_SLOT, 0x100000)
        tablet = VirtioInput(qt, TABLET_SLOT, 0x200000)
        t.eq(kbd.config_string(1), b"deskvm Virtio Keyboard", "keyboard ID_NAME")
        t.eq(tablet.config_string(1), b"deskvm Virtio Tablet", "tablet ID_NAME")
        mice = q.cmd("query-mice")["return"]
        t.eq([(m["name"], m["current"], m["absolute"]) for m in mice],
             [("deskvm PS/2 Mouse", False, False), ("deskvm Virtio Tablet", True, True)],
             "query-mice: PS/2 mouse and the tablet, which is current")
        # Before the drivers are up, keys still reach the guest through PS/2.
        q.cmd("send-key", {"keys": [{"type": "qcode", "data": "a"}], "hold-time": 0})
        t.eq(ps2_bytes(qt), [0x1E, 0x9E], "no virtio driver yet: send-key goes to PS/2")
        kbd.start()
        tablet.start()
        r = q.cmd("send-key", {"keys": [{"type": "qcode", "data": "a"}]})
        t.eq(r, {"return": {}}, "send-key a")
        t.eq(kbd.events(), [(EV_KEY, KEY_A, 1), (EV_SYN, 0, 0)], "virtio keyboard: KEY_A down, SYN_REPORT")
        t.eq(ps2_bytes(qt), [], "nothing on PS/2 once the virtio driver is up")
        qt.clock_step(100 * MS)
        t.eq(kbd.events(), [(EV_KEY, KEY_A, 0), (EV_SYN, 0, 0)], "KEY_A up after the hold time")
        r = q.cmd("input-send-event", {"events": [
            {"type": "abs", "data": {"axis": "x", "value": 12345}},
            {"type": "abs", "data": {"axis": "y", "value": 32767}}]})
        t.eq(r, {"return": {}}, "input-send-event abs")
        t.eq(tablet.events(), [(EV_ABS, 0, 12345), (EV_ABS, 1, 32767), (EV_SYN, 0, 0)],
             "virtio tablet: ABS_X 12345, ABS_Y 32767, SYN_REPORT")
        q.cmd("input-send-event", {"events": [
            {"type": "btn", "data": {"down": True, "button": "left"}},
            {"type": "btn", "data": {"down": True, "button": "wheel-up"}},
            {"type": "btn", "data": {"down": False, "button": "wheel-up"}},
            {"type": "key", "data": {"down": True, "key": {"type": "qcode", "data": "ctrl"}}}]})
        t.eq(tablet.events(), [(EV_KEY, BTN_LEFT, 1), (EV_REL, REL_WHEEL, 1), (EV_SYN, 0, 0)],
             "tablet: BTN_LEFT down and one wheel step up")
        t.eq(kbd.events(), [(EV_KEY, KEY_LEFTCTRL, 1), (EV_SYN, 0, 0)], "keyboard: the key event of the batch")
        # Many reports while the guest takes none: the device keeps the newest 256 events.
        for i in range(70):
            q.cmd("input-send-event", {"events": [{"type": "abs", "data": {"axis": "x", "value": i}}]})
        ev = tablet.events()
        t.eq(len(ev), 64, "64 buffers: 64 events delivered at once")
        t.eq(ev[:2], [(EV_ABS, 0, 0), (EV_SYN, 0, 0)], "oldest reports first")
        rest = tablet.events()
        rest += tablet.events()
        t.eq(len(ev) + len(rest), 140, "every event of the 70 reports arrives")
        t.eq(rest[-2:], [(EV_ABS, 0, 69), (EV_SYN, 0, 0)], "the rest follows as buffers come back")
        t.ok("dropped" not in vm.log(), "nothing dropped at this rate")
        q.close()


def test_options():
    for args, rc, needle in (
            (["--keymap", "xx", "--version"], 2, "--keymap: 'xx' is not a keyboard layout XKB knows"),
            (["--keymap", "de", "--version"], 0, "deskvm"),
            (["--keymap", "en-gb", "--version"], 0, "deskvm"),
            (["--device", "virtio-mouse", "--version"], 2, "available: pci-testdev, virtio-keyboard, virtio-tablet"),
    ):
        p = subprocess.run([DESKVM] + args, capture_output=True, text=True, timeout=30)
        t.eq(p.returncode, rc, f"deskvm {' '.join(args)} exits {rc}")
        t.ok(needle in p.stdout + p.stderr, f"deskvm {' '.join(args)} says {needle!r}", p.stdout + p.stderr)


def main():
    for fn in (test_ps2_send_key, test_qmp_errors, test_virtio, test_options):
        t.run(fn, fn.__name__)
    t.done()


if __name__ == "__main__":
    main()
