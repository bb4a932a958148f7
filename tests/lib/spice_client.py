"""A SPICE test client on spice-gtk's client library (SpiceClientGLib 2.0 through python3-gi), used in-process by
the SPICE tests and the SPICE benchmark (run them with /usr/bin/python3, which has gi).

The client runs GLib's default main context only while a method waits (pump/wait_for), so a test drives it step by
step: connect, wait for the primary surface, read pixels, send keys and pointer events, read the cursor shape,
clipboard and agent state. spice-gtk keeps the decoded primary surface in its own memory and tells us its address in
the display-primary-create signal; the pixels are read from there with ctypes (the surface lives until
display-primary-destroy, and spice-gtk only writes it while its coroutines run, i.e. while we pump the loop).

Scancodes are PC/XT set 1; extended keys (the ones sent with an 0xE0 prefix) are 0x100 | code, spice-gtk's
convention (e.g. KEY_UP = 0x148, right Ctrl = 0x11d).
"""
import ctypes
import os
import shutil
import subprocess
import time

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject, SpiceClientGLib  # noqa: E402

# SpiceChannelEvent (spice-client-glib channel-event signal)
CHANNEL_NONE, CHANNEL_OPENED, CHANNEL_SWITCHING, CHANNEL_CLOSED = 0, 10, 11, 12
CHANNEL_ERROR_CONNECT, CHANNEL_ERROR_TLS, CHANNEL_ERROR_LINK, CHANNEL_ERROR_AUTH, CHANNEL_ERROR_IO = 20, 21, 22, 23, 24
EVENT_NAMES = {0: "none", 10: "opened", 11: "switching", 12: "closed", 20: "error-connect", 21: "error-tls",
               22: "error-link", 23: "error-auth", 24: "error-io"}
# SpiceMouseMode
MOUSE_MODE_SERVER, MOUSE_MODE_CLIENT = 1, 2
# SpiceMouseButton / button masks
BUTTON_LEFT, BUTTON_MIDDLE, BUTTON_RIGHT, BUTTON_UP, BUTTON_DOWN = 1, 2, 3, 4, 5
MASK_LEFT, MASK_MIDDLE, MASK_RIGHT = 1, 2, 4
# VD_AGENT clipboard selections and types
SELECTION_CLIPBOARD, SELECTION_PRIMARY = 0, 1
CLIPBOARD_UTF8_TEXT, CLIPBOARD_PNG = 1, 2
# SpiceSurfaceFmt
SURFACE_FMT_32_xRGB, SURFACE_FMT_32_ARGB = 32, 96

# A few PC set-1 scancodes (spice-gtk form: 0x100 | code for E0-prefixed keys).
SC_ESC, SC_A, SC_LEFTSHIFT, SC_ENTER, SC_LEFTCTRL = 0x01, 0x1E, 0x2A, 0x1C, 0x1D
SC_RIGHTCTRL, SC_UP, SC_LEFT, SC_KPENTER, SC_DELETE, SC_LEFTMETA = 0x11D, 0x148, 0x14B, 0x11C, 0x153, 0x15B


_closed_sessions = []


class SpiceError(Exception):
    pass


class SpiceAuthError(SpiceError):
    """The server refused the password (or ticketing refused us without one)."""


def _gconnect(obj, signal, cb):
    # spice-gtk's spice_session_connect / spice_channel_connect shadow GObject.connect in PyGObject.
    return GObject.Object.connect(obj, signal, cb)


def pump(pred=None, timeout=0.0):
    """Runs the default GLib main context until PRED() is true or TIMEOUT seconds pass; returns PRED()'s value
    (True without a predicate)."""
    ctx = GLib.MainContext.default()
    end = time.monotonic() + timeout
    while True:
        if pred is not None:
            v = pred()
            if v:
                return v
        left = end - time.monotonic()
        if left <= 0:
            return pred() if pred is not None else True
        # Block for the next event, but wake up by the deadline (a timeout source, at most 50 ms so a predicate
        # that depends on time is re-checked).
        fired = []
        tag = GLib.timeout_add(max(1, int(min(left, 0.05) * 1000)), lambda: fired.append(1) and False)
        ctx.iteration(True)
        if not fired:
            GLib.source_remove(tag)


class Surface:
    """The primary surface spice-gtk decoded into (valid between primary-create and primary-destroy)."""

    def __init__(self, fmt, width, height, stride, address):
        self.format, self.width, self.height, self.stride, self.address = fmt, width, height, stride, address

    def raw(self, y0=0, rows=None):
        rows = self.height - y0 if rows is None else rows
        return ctypes.string_at(self.address + y0 * self.stride, rows * self.stride)

    def pixel(self, x, y):
        """(r, g, b) at X, Y (the surface is 32-bit xRGB little-endian: bytes B, G, R, X)."""
        b = ctypes.string_at(self.address + y * self.stride + 4 * x, 4)
        return (b[2], b[1], b[0])

    def pixel_word(self, x, y):
        """The 0xRRGGBB value at X, Y."""
        return ctypes.c_uint32.from_address(self.address + y * self.stride + 4 * x).value & 0xFFFFFF

    def rows(self):
        """The whole surface as rows of packed RGB bytes (the form tests/lib/png.py's decode_png returns)."""
        data = self.raw()
        w = self.width
        out = []
        for y in range(self.height):
            line = data[y * self.stride:y * self.stride + 4 * w]
            rgb = bytearray(3 * w)
            rgb[0::3], rgb[1::3], rgb[2::3] = line[2::4], line[1::4], line[0::4]
            out.append(bytes(rgb))
        return out


class SpiceClient:
    """One SPICE session to HOST:PORT. Use connect() (or SpiceClient.open) and close()."""

    def __init__(self, host, port, password=None, preferred_compression=None, enable_audio=False):
        self.session = SpiceClientGLib.Session()
        if port is None:  # HOST is a unix socket path (--spice unix=on,addr=PATH)
            self.session.set_property("unix-path", host)
        else:
            self.session.set_property("host", host)
            self.session.set_property("port", str(port))
        self.session.set_property("enable-audio", enable_audio)
        self.session.set_property("enable-usbredir", False)
        if password is not None:
            self.session.set_property("password", password)
        if preferred_compression is not None:
            self.session.set_property("preferred-compression", preferred_compression)
        self.channels = {}  # (type name, id) -> channel
        self.events = []  # (time, type name, id, event name)
        self.main = self.display = self.inputs = self.cursor_channel = None
        self.surface = None
        self.primary_creates = 0
        self.invalidates = 0
        self.last_invalidate = None
        self.on_invalidate = None  # callback(x, y, w, h) for benchmarks
        self.cursor = None  # (width, height, hot_x, hot_y, bytes R,G,B,A per pixel) from cursor-set
        self.cursor_moves = []
        self.cursor_hidden = False
        self.mouse_mode = None
        self.agent_history = []  # every agent-connected change, in order (a quick close + reopen is not missed)
        self.mouse_mode_updates = 0
        self.clipboard_grabs = []  # (selection, [types])
        self.clipboard_data = []  # (selection, type, bytes)
        self.clipboard_requests = []  # (selection, type)
        self.clipboard_releases = []
        self.clipboard_offer = {}  # type -> bytes we answer guest requests with
        self.disconnected = False
        self.connect_time = None
        self._handlers = []
        self._gconnect(self.session, "channel-new", self._channel_new)
        self._gconnect(self.session, "channel-destroy", self._channel_destroy)
        self._gconnect(self.session, "disconnected", self._session_disconnected)

    def _gconnect(self, obj, signal, cb):
        self._handlers.append((obj, _gconnect(obj, signal, cb)))

    # --- connection ---------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, host, port, password=None, timeout=30, **kw):
        """Connects and waits until the main channel is up; raises SpiceAuthError / SpiceError."""
        c = cls(host, port, password, **kw)
        try:
            c.connect(timeout)
        except Exception:
            c.close()
            raise
        return c

    def connect(self, timeout=30):
        self.connect_time = time.monotonic()
        if not self.session.connect():
            raise SpiceError("spice_session_connect failed")
        ev = self.wait_main_event(timeout)
        if ev == "error-auth":
            raise SpiceAuthError("the server refused the password")
        if ev != "opened":
            raise SpiceError(f"main channel: {ev or 'no event within %gs' % timeout}")

    def main_events(self):
        return [e[3] for e in self.events if e[1] == "main"]

    def wait_main_event(self, timeout=30):
        """The main channel's first event (opened, error-auth, error-link, error-connect, closed...) or None."""
        pump(lambda: self.main_events(), timeout)
        ev = self.main_events()
        return ev[0] if ev else None

    def close(self):
        if self.session is None:
            return
        self.session.disconnect()
        # Every channel is destroyed (channel-destroy) once its socket is closed.
        pump(lambda: not self.channels, 3)
        for obj, h in self._handlers:
            # (obj.disconnect would be spice_session_disconnect / spice_channel_disconnect)
            if obj.handler_is_connected(h):
                obj.handler_disconnect(h)
        self._handlers = []
        self.surface = None
        self.channels.clear()
        self.main = self.display = self.inputs = self.cursor_channel = None
        # Channels that are still winding down call back into their session: keep it alive (a few KiB per session).
        _closed_sessions.append(self.session)
        self.session = None
        pump(None, 0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _session_disconnected(self, session):
        self.disconnected = True

    def _channel_new(self, session, channel):
        ctype = channel.get_property("channel-type")
        cid = channel.get_property("channel-id")
        name = SpiceClientGLib.Channel.type_to_string(ctype)
        self.channels[(name, cid)] = channel
        self._gconnect(channel, "channel-event",
                       lambda ch, ev, n=name, i=cid: self.events.append((time.monotonic(), n, i,
                                                                        EVENT_NAMES.get(int(ev), str(int(ev))))))
        if isinstance(channel, SpiceClientGLib.MainChannel):
            self.main = channel
            self._gconnect(channel, "main-mouse-update", self._mouse_update)
            self._gconnect(channel, "notify::agent-connected",
                           lambda ch, _p: self.agent_history.append(bool(ch.get_property("agent-connected"))))
            self._gconnect(channel, "main-clipboard-selection-grab", self._clip_grab)
            self._gconnect(channel, "main-clipboard-selection", self._clip_data)
            self._gconnect(channel, "main-clipboard-selection-request", self._clip_request)
            self._gconnect(channel, "main-clipboard-selection-release", self._clip_release)
        elif isinstance(channel, SpiceClientGLib.DisplayChannel):
            if cid == 0:
                self.display = channel
                self._gconnect(channel, "display-primary-create", self._primary_create)
                self._gconnect(channel, "display-primary-destroy", self._primary_destroy)
                self._gconnect(channel, "display-invalidate", self._invalidate)
            channel.connect()
        elif isinstance(channel, SpiceClientGLib.InputsChannel):
            self.inputs = channel
            channel.connect()
        elif isinstance(channel, SpiceClientGLib.CursorChannel):
            self.cursor_channel = channel
            self._gconnect(channel, "cursor-set", self._cursor_set)
            self._gconnect(channel, "cursor-move", lambda ch, x, y: self.cursor_moves.append((x, y)))
            self._gconnect(channel, "cursor-hide", self._cursor_hide)
            channel.connect()

    def _channel_destroy(self, session, channel):
        for k, v in list(self.channels.items()):
            if v is channel:
                del self.channels[k]
        if channel is self.display:
            self.display, self.surface = None, None

    def channel_opened(self, name, cid=0):
        return any(e[1] == name and e[2] == cid and e[3] == "opened" for e in self.events)

    def wait_channels(self, names=("main", "display", "inputs", "cursor"), timeout=30):
        return pump(lambda: all(self.channel_opened(n) for n in names), timeout)

    # --- display ------------------------------------------------------------------------------------------------

    def _primary_create(self, channel, fmt, width, height, stride, shmid, imgdata):
        self.surface = Surface(fmt, width, height, stride, imgdata)
        self.primary_creates += 1

    def _primary_destroy(self, channel):
        self.surface = None

    def _invalidate(self, channel, x, y, w, h):
        self.invalidates += 1
        self.last_invalidate = (x, y, w, h)
        if self.on_invalidate is not None:
            self.on_invalidate(x, y, w, h)

    def wait_surface(self, width=None, height=None, timeout=30):
        """Waits for a primary surface (of WIDTH x HEIGHT when given); returns it or None."""
        def ok():
            s = self.surface
            return s is not None and (width is None or s.width == width) and (height is None or s.height == height)
        return self.surface if pump(ok, timeout) else None

    def wait_pixels(self, pred, timeout=30):
        """Pumps until PRED(surface) holds for the current surface; returns whether it did."""
        return bool(pump(lambda: self.surface is not None and pred(self.surface), timeout))

    def wait_rows(self, want, timeout=30):
        """Waits until the surface equals WANT (rows of RGB bytes); returns the list of differing rows (empty when
        equal)."""
        def equal():
            s = self.surface
            if s is None or (s.width, s.height) != (len(want[0]) // 3, len(want)):
                return False
            return s.rows() == want
        # rows() is costly: check after each burst of invalidates, not after every loop iteration.
        end = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < end:
            if self.invalidates != seen or self.surface is None:
                seen = self.invalidates
                if equal():
                    return []
            pump(lambda: self.invalidates != seen, min(0.5, max(0.0, end - time.monotonic())))
        s = self.surface
        if s is None:
            return ["no surface"]
        rows = s.rows()
        return [y for y in range(min(len(rows), len(want))) if rows[y] != want[y]] or ["size"]

    # --- input --------------------------------------------------------------------------------------------------

    def _inputs(self):
        if self.inputs is None or not self.channel_opened("inputs"):
            if not pump(lambda: self.inputs is not None and self.channel_opened("inputs"), 15):
                raise SpiceError("no inputs channel")
        return self.inputs

    def key_press(self, scancode):
        self._inputs().key_press(scancode)
        self.flush()

    def key_release(self, scancode):
        self._inputs().key_release(scancode)
        self.flush()

    def key(self, scancode):
        self.key_press(scancode)
        self.key_release(scancode)

    def position(self, x, y, buttons=0, display=0):
        """An absolute position (client mouse mode)."""
        self._inputs().position(x, y, display, buttons)
        self.flush()

    def motion(self, dx, dy, buttons=0):
        """A relative motion (server mouse mode)."""
        self._inputs().motion(dx, dy, buttons)
        self.flush()

    def button_press(self, button, buttons_after):
        self._inputs().button_press(button, buttons_after)
        self.flush()

    def button_release(self, button, buttons_after):
        self._inputs().button_release(button, buttons_after)
        self.flush()

    def flush(self, timeout=0.05):
        """Lets the channel coroutines write what was queued (spice-gtk sends from its main-loop coroutines)."""
        pump(None, timeout)

    # --- main channel: mouse mode, agent, monitors, clipboard ----------------------------------------------------

    def _mouse_update(self, channel):
        self.mouse_mode = channel.get_property("mouse-mode")
        self.mouse_mode_updates += 1

    def get_mouse_mode(self):
        return self.main.get_property("mouse-mode") if self.main is not None else None

    def request_mouse_mode(self, mode):
        self.main.request_mouse_mode(mode)
        self.flush()

    def agent_connected(self):
        return bool(self.main is not None and self.main.get_property("agent-connected"))

    def wait_agent(self, connected=True, timeout=30):
        return pump(lambda: self.agent_connected() == connected, timeout)

    def agent_has_cap(self, cap):
        return bool(self.main.agent_test_capability(cap))

    def monitor_config(self, width, height, x=0, y=0, display_id=0):
        """Asks for a display size (needs the agent or a server that takes client monitor configs)."""
        self.main.update_display_enabled(display_id, True, False)
        self.main.update_display(display_id, x, y, width, height, False)
        ok = self.main.send_monitor_config()
        self.flush()
        return ok

    def _clip_grab(self, channel, selection, types, ntypes):
        # PyGObject hands the type array over as a list (older bindings as an address).
        if isinstance(types, (list, tuple)):
            arr = [int(x) for x in types][:ntypes]
        else:
            arr = [ctypes.c_uint32.from_address(types + 4 * i).value for i in range(ntypes)] if types else []
        self.clipboard_grabs.append((selection, arr))
        return True

    def _clip_data(self, channel, selection, ctype, data, size):
        if isinstance(data, (bytes, bytearray)):
            payload = bytes(data[:size])
        elif isinstance(data, (list, tuple)):
            payload = bytes(data[:size])
        else:
            payload = ctypes.string_at(data, size) if size and data else b""
        self.clipboard_data.append((selection, ctype, payload))

    def _clip_request(self, channel, selection, ctype):
        self.clipboard_requests.append((selection, ctype))
        if ctype in self.clipboard_offer:
            channel.clipboard_selection_notify(selection, ctype, list(self.clipboard_offer[ctype]))
            return True
        return False

    def _clip_release(self, channel, selection):
        self.clipboard_releases.append(selection)

    def clipboard_grab(self, text, selection=SELECTION_CLIPBOARD):
        """Offers TEXT (UTF-8) to the guest: grabs the clipboard; the guest's request is answered with it."""
        self.clipboard_offer = {CLIPBOARD_UTF8_TEXT: text.encode() if isinstance(text, str) else text}
        self.main.clipboard_selection_grab(selection, [CLIPBOARD_UTF8_TEXT])
        self.flush()

    def clipboard_request(self, ctype=CLIPBOARD_UTF8_TEXT, selection=SELECTION_CLIPBOARD):
        self.main.clipboard_selection_request(selection, ctype)
        self.flush()

    def clipboard_release(self, selection=SELECTION_CLIPBOARD):
        self.clipboard_offer = {}
        self.main.clipboard_selection_release(selection)
        self.flush()

    # --- cursor -------------------------------------------------------------------------------------------------

    def _cursor_set(self, channel, width, height, hot_x, hot_y, rgba):
        data = ctypes.string_at(rgba, width * height * 4) if rgba else b""
        self.cursor = (width, height, hot_x, hot_y, data)
        self.cursor_hidden = False

    def _cursor_hide(self, channel):
        self.cursor_hidden = True

    # --- bookkeeping --------------------------------------------------------------------------------------------

    def bytes_read(self):
        """Bytes received over all channels (spice-gtk's total-read-bytes)."""
        return sum(ch.get_property("total-read-bytes") for ch in list(self.channels.values()))


def try_connect(host, port, password=None, timeout=30):
    """Connects once and returns the main channel's first event name ("opened", "error-auth", ...), closing again."""
    c = SpiceClient(host, port, password)
    try:
        c.connect_time = time.monotonic()
        c.session.connect()
        return c.wait_main_event(timeout)
    finally:
        c.close()


# --- starting a SPICE server: deskvm or, for comparison and for checking the tests themselves, QEMU ----------------

QEMU = shutil.which("qemu-system-x86_64")


def deskvm_has_spice():
    from deskvm_harness import DESKVM
    try:
        out = subprocess.run([DESKVM, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--spice" in out


def target_kind():
    """Which server the SPICE tests run against: deskvm, or QEMU when DESKVM_SPICE_TEST_SERVER=qemu (used to check
    the tests and this client against the reference implementation)."""
    return os.environ.get("DESKVM_SPICE_TEST_SERVER", "deskvm")


class SpiceVm:
    """A deskvm (or QEMU) process serving SPICE on 127.0.0.1, optionally booting the test guest image.

    spice: the --spice / -spice value after port= and addr= (e.g. "disable-ticketing=on"), or with unix=True the
    server listens on DIR/spice.sock. image: the guest image dir (None: no guest; deskvm then runs without a
    machine, QEMU paused). run: the guest's deskvm_run command. display: virtio-gpu or bochs. devices: subset of
    ("keyboard", "tablet")."""

    def __init__(self, kind="deskvm", spice="disable-ticketing=on", image=None, run=None, display="virtio-gpu",
                 size=(800, 600), devices=("keyboard", "tablet"), memory="256M", unix=False, extra=(),
                 modules="virtio_pci,virtio_gpu,virtio_input,evdev"):
        from deskvm_harness import DESKVM, free_port, tmpdir, wait_for
        self.kind = kind
        self.dir = tmpdir()
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.serial = os.path.join(self.dir, "serial.txt")
        self.log = os.path.join(self.dir, "log.txt")
        self.unix_path = os.path.join(self.dir, "spice.sock") if unix else None
        self.port = None if unix else free_port()
        self.host = self.unix_path if unix else "127.0.0.1"
        where = f"unix=on,addr={self.unix_path}" if unix else f"port={self.port},addr=127.0.0.1"
        spice_arg = where + ("," + spice if spice else "")
        w, h = size
        cmdline = None
        if image:
            if display == "bochs":
                modules = modules.replace("virtio_gpu", "bochs")
            cmdline = (f"console=ttyS0 quiet vt.global_cursor_default=0 video={w}x{h} deskvm_modules={modules} "
                       f'deskvm_run="{run}"')
        if kind == "deskvm":
            cmd = [DESKVM, "--qmp", "unix:" + self.qmp_path, "--log-file", self.log, "--spice", spice_arg]
            if image:
                cmd += ["--accel", "emu", "--memory", memory, "--kernel", os.path.join(image, "vmlinuz"),
                        "--initrd", os.path.join(image, "initrd.img"), "--append", cmdline,
                        "--serial", "file:" + self.serial]
            if display:
                cmd += ["--display", display, "--resolution", f"{w}x{h}"]
            for dev in devices:
                cmd += ["--device", "virtio-" + dev]
        else:
            cmd = [QEMU, "-accel", "tcg", "-m", memory, "-nodefaults", "-no-reboot", "-vga", "none",
                   "-display", "none", "-spice", spice_arg, "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                   "-name", "deskvm-spice,debug-threads=on"]
            if image:
                cmd += ["-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initrd.img"),
                        "-append", cmdline, "-serial", "file:" + self.serial]
            else:
                cmd += ["-S"]
            if display == "virtio-gpu":
                cmd += ["-device", f"virtio-gpu-pci,xres={w},yres={h}"]
            elif display == "bochs":
                cmd += ["-device", f"bochs-display,xres={w},yres={h}"]
            for dev in devices:
                cmd += ["-device", f"virtio-{dev}-pci"]
        cmd += list(extra)
        self.cmd = cmd
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        ready = lambda: os.path.exists(self.qmp_path) and (not unix or os.path.exists(self.unix_path))  # noqa
        if not wait_for(lambda: ready() or self.proc.poll() is not None, timeout=30) or self.proc.poll() is not None:
            raise RuntimeError(f"{kind} did not start (exit {self.proc.poll()}): {self.stderr()[-1500:]}")

    def stderr(self):
        from deskvm_harness import read_text
        return read_text(self.stderr_path) + read_text(self.log)[-3000:]

    def serial_text(self):
        from deskvm_harness import read_text
        return read_text(self.serial)

    def wait_serial(self, marker, timeout=300):
        from deskvm_harness import wait_for
        return wait_for(lambda: marker in self.serial_text() or self.proc.poll() is not None, timeout=timeout,
                        interval=0.3) and marker in self.serial_text()

    def qmp(self):
        from deskvm_harness import QmpClient
        q = QmpClient(self.qmp_path, timeout=30)
        q.negotiate()
        return q

    def client(self, password=None, timeout=30, **kw):
        return SpiceClient.open(self.host, self.port, password, timeout=timeout, **kw)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def stop(self, keep_dir=False):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
