#!/usr/bin/env python3
"""The SPICE guest agent end to end on the software CPU: deskvm --spice adds the virtio-serial port
com.redhat.spice.0 and binds it to spice-server's vdagent char device while the guest has it open. The Debian test
guest runs guest-vdagent (tests/guest/programs), a real SpiceClientGLib client (tests/lib/spice_client.py) connects:

- agent-connected becomes true when the guest opens the port, false when it closes it, true again for a second
  agent (the char device is re-registered), false again when that one closes;
- clipboard guest -> client: the guest grabs "hello from guest", the client requests and gets exactly those bytes;
- clipboard client -> guest: the client grabs, the guest requests, and prints exactly the client's bytes;
- a client monitor config (800x600) arrives in the guest as MONITORS_CONFIG with those numbers;
- agent mouse: client mouse mode with the agent, client positions and buttons arriving as MOUSE_STATE;
- the second agent's clipboard goes both ways with 900000 bytes, intact; the client's while the guest pauses its
  reads, so more than deskvm and the guest driver buffer (spice-server's short-write flow control).

Needs /usr/bin/python3 with gi and SpiceClientGLib 2.0 (gir1.2-spiceclientglib-2.0); skips without them."""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import QmpClient, build_guest_image, free_port, guest_command, read_text, tmpdir, wait_for  # noqa
from spice_import import import_spice_client  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
spice_client = import_spice_client(t, "SPICE agent tests")
SpiceClient, pump = spice_client.SpiceClient, spice_client.pump

BOOT_TIMEOUT = 300
GUEST_TEXT = "hello from guest"
CLIENT_TEXT = "hello from client \u00e9\u00e8 \u2603"  # UTF-8 beyond ASCII: the bytes must arrive exactly
# Flow control: more than the 256 KiB the host side buffers each way (guest-vdagent's --grab-pattern bytes).
# The client's bytes must also fill what the guest driver has posted (128 receive buffers of a page, 512 KiB): the
# guest stops reading for a while after its request (--request-pause), so spice-server's writes come back short
# (deskvm's debug log shows "agent port full") until the port has room again.
BIG_GUEST, BIG_CLIENT = 900000, 900000


def guest_pattern(n):
    return bytes(0x20 + (i * 31 + i // 97) % 95 for i in range(n))


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"



class AgentClient(SpiceClient):
    """The shared client plus a record of every agent-connected change (a quick close and reopen can happen within
    one main-loop iteration, so polling the property could miss the false in between)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.agent_history = []

    def _channel_new(self, session, channel):
        super()._channel_new(session, channel)
        if channel is self.main:
            self._gconnect(channel, "notify::agent-connected",
                           lambda ch, _p: self.agent_history.append(bool(ch.get_property("agent-connected"))))


def guest_lines(path):
    return [ln.strip() for ln in read_text(path).splitlines() if ln.startswith("DESKVM-VDAGENT: ")]


img = build_guest_image(timeout=900)
if not t.ok(img.dir is not None, "the guest image is available", img.err[-2000:]):
    t.done()
image = img.dir
d = tmpdir()
serial = os.path.join(d, "serial.txt")
log = os.path.join(d, "log.txt")
qmp_path = os.path.join(d, "qmp.sock")
port = free_port()

# Two agent sessions: the first ends (closes the port) on a 640x480 monitor config, the second on 320x240. The
# pause between them lets the client see the first agent go before the second comes.
run = (f"guest-vdagent --grab '{GUEST_TEXT}' --quit-on-monitors 640x480 --timeout 250; sleep 2; "
       f"guest-vdagent --grab-pattern {BIG_GUEST} --request-pause 4 --quit-on-monitors 320x240 --timeout 200")
args = guest_command(image, f'console=ttyS0 quiet deskvm_modules=virtio_pci,virtio_console deskvm_run="{run}"',
                     "file:" + serial, log, memory="256M",
                     extra=["--qmp", "unix:" + qmp_path,
                            "--display", "bochs", "--spice", f"port={port},addr=127.0.0.1,disable-ticketing=on"])
start = time.monotonic()
p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
c = None
rc = None
try:
    wait_for(lambda: "deskvm 0.1.0 ready" in read_text(log) or " ready (state" in read_text(log)
             or p.poll() is not None, timeout=30)
    t.ok(p.poll() is None, "deskvm starts with --spice", read_text(log)[-1500:])
    c = AgentClient("127.0.0.1", port)
    c.connect(30)
    t.ok(c.main is not None, "the SPICE client connects")
    t.ok(not c.agent_connected(), "no agent before the guest opens the port")

    ok = c.wait_agent(True, BOOT_TIMEOUT)
    ctx = "\n".join(guest_lines(serial)[-20:]) + "\n--- serial ---\n" + read_text(serial)[-1500:]
    t.ok(ok, "agent-connected becomes true once guest-vdagent opens com.redhat.spice.0", ctx)
    t.diag(f"boot to agent connected on emu: {time.monotonic() - start:.1f} s")
    t.ok(wait_for(lambda: any(ln.startswith("DESKVM-VDAGENT: open /dev/vport") for ln in guest_lines(serial)), 10),
         "the guest found the port by name", ctx)

    q = QmpClient(qmp_path)
    q.negotiate()
    info = q.cmd("query-spice").get("return", {})
    t.eq(info.get("agent-connected"), True, "query-spice: agent-connected true")

    # Guest -> client: the guest grabs once it has the client's capabilities.
    ok = pump(lambda: any(types == [spice_client.CLIPBOARD_UTF8_TEXT] for _, types in c.clipboard_grabs), 60)
    t.ok(ok, "the client sees the guest's clipboard grab (UTF8_TEXT)", (c.clipboard_grabs, guest_lines(serial)))
    c.clipboard_request()
    pump(lambda: c.clipboard_data, 60)
    t.eq(c.clipboard_data[:1], [(spice_client.SELECTION_CLIPBOARD, spice_client.CLIPBOARD_UTF8_TEXT,
                                 GUEST_TEXT.encode())], "the client receives exactly the guest's text")
    t.ok("DESKVM-VDAGENT: CLIPBOARD_REQUEST 0 1" in guest_lines(serial), "the guest saw the client's request")

    # Client -> guest: the guest requests at once and prints the data in hex.
    want = CLIENT_TEXT.encode()
    c.clipboard_grab(CLIENT_TEXT)
    line = f"DESKVM-VDAGENT: CLIPBOARD 0 1 {len(want)} {want.hex()}"
    ok = wait_for(lambda: (pump(None, 0.05) and False) or any(ln.startswith("DESKVM-VDAGENT: CLIPBOARD 0 1 ")
                                                              for ln in guest_lines(serial)), timeout=60)
    got = [ln for ln in guest_lines(serial) if ln.startswith("DESKVM-VDAGENT: CLIPBOARD 0 1 ")]
    t.eq(got[:1], [line], "the guest receives exactly the client's bytes")
    t.ok("DESKVM-VDAGENT: CLIPBOARD_GRAB 0 1" in guest_lines(serial), "the guest saw the client's grab")
    t.ok(c.clipboard_requests[:1] == [(spice_client.SELECTION_CLIPBOARD, spice_client.CLIPBOARD_UTF8_TEXT)],
         "the client saw the guest's request", c.clipboard_requests)

    # Monitor config.
    t.ok(c.monitor_config(800, 600), "the client sends a monitor config")
    ok = wait_for(lambda: (pump(None, 0.05) and False) or any(ln.startswith("DESKVM-VDAGENT: MONITORS_CONFIG")
                                                              for ln in guest_lines(serial)), timeout=60)
    mc = [ln for ln in guest_lines(serial) if ln.startswith("DESKVM-VDAGENT: MONITORS_CONFIG")]
    m = re.match(r"DESKVM-VDAGENT: MONITORS_CONFIG (\d+) (\d+) (\S+)", mc[0]) if mc else None
    t.ok(m is not None and int(m.group(1)) >= 1 and m.group(3) == "800x600+0+0",
         "the guest gets MONITORS_CONFIG with 800x600 at +0+0 first", mc)

    # Agent mouse: with the agent attached (and the display's one primary surface) spice-server offers client mouse
    # mode and sends client positions to the agent as MOUSE_STATE (buttons one bit up: left = 2).
    if c.get_mouse_mode() != spice_client.MOUSE_MODE_CLIENT:
        c.request_mouse_mode(spice_client.MOUSE_MODE_CLIENT)
    pump(lambda: c.get_mouse_mode() == spice_client.MOUSE_MODE_CLIENT, 15)
    t.eq(c.get_mouse_mode(), spice_client.MOUSE_MODE_CLIENT, "client mouse mode with the agent")
    c.position(123, 45)
    c.button_press(spice_client.BUTTON_LEFT, spice_client.MASK_LEFT)
    c.button_release(spice_client.BUTTON_LEFT, 0)
    want_mouse = ["DESKVM-VDAGENT: MOUSE_STATE 123 45 0 0", "DESKVM-VDAGENT: MOUSE_STATE 123 45 2 0",
                  "DESKVM-VDAGENT: MOUSE_STATE 123 45 0 0"]
    ok = wait_for(lambda: (pump(None, 0.05) and False) or
                  [ln for ln in guest_lines(serial) if "MOUSE_STATE" in ln][-3:] == want_mouse, timeout=30)
    t.ok(ok, "the agent gets MOUSE_STATE 123,45 with the left button down, then up",
         [ln for ln in guest_lines(serial) if "MOUSE_STATE" in ln][-5:])

    # The guest closes the port: the agent goes away, a second agent comes and goes.
    c.agent_history.clear()
    c.monitor_config(640, 480)
    pump(lambda: False in c.agent_history, 60)
    t.ok(False in c.agent_history, "agent-connected becomes false when the guest closes the port",
         (c.agent_history, guest_lines(serial)[-5:]))
    wait_for(lambda: q.cmd("query-spice")["return"].get("agent-connected") is False, timeout=10)
    t.eq(q.cmd("query-spice")["return"].get("agent-connected"), False, "query-spice: agent-connected false")
    pump(lambda: c.agent_history[-1:] == [True], 120)
    t.ok(c.agent_history[-1:] == [True], "a second agent connects again", (c.agent_history, guest_lines(serial)[-5:]))

    # Large clipboards both ways. Client -> guest overflows the port's 256 KiB host queue while the guest pauses:
    # spice's writes come back short until host_room wakes it. Guest -> client passes the 256 KiB guest-data buffer
    # in pieces (spice-gtk gives spice-server unlimited agent tokens, so spice-server pulls as fast as it can).
    c.clipboard_grabs.clear()
    c.clipboard_data.clear()
    ok = pump(lambda: any(types == [spice_client.CLIPBOARD_UTF8_TEXT] for _, types in c.clipboard_grabs), 60)
    t.ok(ok, "the second agent grabs the clipboard", (c.clipboard_grabs, guest_lines(serial)[-5:]))
    c.clipboard_request()
    pump(lambda: c.clipboard_data, 120)
    got = c.clipboard_data[0][2] if c.clipboard_data else b""
    t.ok(got == guest_pattern(BIG_GUEST), f"the client receives the guest's {BIG_GUEST} bytes exactly",
         f"got {len(got)} bytes")
    big = bytes(0x20 + (i * 7 + i // 251) % 95 for i in range(BIG_CLIENT)).decode()
    c.clipboard_grab(big)
    prefix = f"DESKVM-VDAGENT: CLIPBOARD 0 1 {BIG_CLIENT} "
    wait_for(lambda: (pump(None, 0.05) and False) or any(ln.startswith(prefix) for ln in guest_lines(serial)),
             timeout=120)
    got = [ln for ln in guest_lines(serial) if ln.startswith(prefix)]
    t.eq(got[:1], [prefix + "fnv:" + fnv1a64(big.encode())],
         f"the guest receives the client's {BIG_CLIENT} bytes exactly")
    c.agent_history.clear()
    c.monitor_config(320, 240)
    pump(lambda: False in c.agent_history, 60)
    t.ok(False in c.agent_history, "and goes when it closes", (c.agent_history, guest_lines(serial)[-5:]))
    q.close()
    rc = p.wait(timeout=120)
except subprocess.TimeoutExpired:
    p.kill()
    p.wait()
    rc = "timeout"
finally:
    if c is not None:
        c.close()
    if p.poll() is None:
        p.kill()
        p.wait()
    p.stderr.close()

out, logtext = read_text(serial), read_text(log)
ctx = ("\n".join(guest_lines(serial)[-30:]) + "\n--- serial ---\n" + out[-2000:] + "\n--- deskvm log ---\n"
       + logtext[-2000:])
t.ok(rc == 0, f"the guest powers off; deskvm exits 0 (got {rc!r})", ctx)
t.ok(not any(ln.startswith("DESKVM-VDAGENT: error") for ln in guest_lines(serial)), "guest-vdagent saw no error",
     ctx)
t.ok("DESKVM-GUEST: run-exit 0" in out, "both guest-vdagent sessions exit 0", ctx)
if not t.failed:
    shutil.rmtree(d, ignore_errors=True)
t.done()
