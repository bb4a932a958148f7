#!/usr/bin/env python3
"""tests/lib/rfb.py, the RFB client the VNC tests and benchmarks use, checked on its own:
  - DES against published and OpenSSL-computed vectors, and the VNC authentication response;
  - every decoder against hand-encoded updates a scripted server writes into a socket pair (ZRLE tile kinds, Tight
    fill/copy/palette/gradient and its JPEG framing, Hextile, Zlib, CopyRect, the pseudo-encodings, cut text);
  - against QEMU's VNC server when qemu-system-x86_64 is installed (tools/install-deps --bench): the same screen
    decoded as Raw, ZRLE, Tight, Hextile and Zlib must be equal, and password authentication must accept the right
    password and refuse a wrong one."""
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rfb  # noqa: E402
from deskvm_harness import QmpClient, tmpdir, wait_for  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
QEMU = shutil.which("qemu-system-x86_64")


# ---------------------------------------------------------------------------------------------------------------
def test_des():
    vectors = [  # (key, plaintext, ciphertext): the FIPS 46 worked example, then OpenSSL des-ecb results
        ("133457799bbcdff1", "0123456789abcdef", "85e813540f0ab405"),
        ("0000000000000000", "1000000000000001", "c7c1c6b6e215d94f"),
        ("ffffffffffffffff", "1000000000000001", "8ca7b519de4c9e44"),
        ("3000000000000000", "1000000000000001", "958e6e627a05557b"),
        ("0123456789abcdef", "1000000000000001", "c8b27774d9690aa7"),
    ]
    for key, pt, ct in vectors:
        t.eq(rfb.des_encrypt_block(bytes.fromhex(key), bytes.fromhex(pt)).hex(), ct, f"DES {key} {pt}")
    # VNC's key is the password's bytes with their bits mirrored (checked with OpenSSL on the mirrored key).
    t.eq(rfb.vnc_auth_response("password", bytes(range(16))).hex(), "b866924125c8eebb9debc1db61c538e2",
         "VNC auth response for 'password'")
    t.eq(rfb.vnc_auth_response(b"deskvm", bytes.fromhex("00112233445566778899aabbccddeeff")).hex(),
         "20c91404d9e4fe3125260075d5894c3c", "VNC auth response for a short password (zero padded)")
    t.eq(rfb.vnc_auth_response("deskvm-long-password", bytes(16)), rfb.vnc_auth_response("deskvm-l", bytes(16)),
         "only a password's first 8 bytes count")


# ---------------------------------------------------------------------------------------------------------------
# A scripted server: everything it will say is written into one end of a socket pair before the client reads.

PF = rfb.PixelFormat()  # the 32-bit little-endian format set_pixel_format_32 asks for


def server_init(w, h, sec=(rfb.SEC_NONE,), challenge=None):
    out = b"RFB 003.008\n" + bytes([len(sec)]) + bytes(sec)
    if challenge:
        out += challenge
    out += struct.pack(">I", 0)  # security result: OK
    return out + struct.pack(">HH", w, h) + PF.pack() + struct.pack(">I", 6) + b"script"


def pixel32(rgb):
    return bytes((rgb[2], rgb[1], rgb[0], 0))


def cpixel(rgb):  # ZRLE's 3-byte CPIXEL: the pixel value's three low bytes, little-endian
    return bytes((rgb[2], rgb[1], rgb[0]))


def rect(x, y, w, h, enc):
    return struct.pack(">HHHHi", x, y, w, h, enc)


def update(*rects):
    return struct.pack(">BxH", 0, len(rects)) + b"".join(rects)


class Model:
    """The framebuffer the client should end up with."""

    def __init__(self, w, h):
        self.w, self.h = w, h
        self.rows = [bytearray(3 * w) for _ in range(h)]

    def put(self, x, y, pixels, w):
        for i, p in enumerate(pixels):
            px, py = x + i % w, y + i // w
            self.rows[py][3 * px:3 * px + 3] = bytes(p)


def scripted_client(data, w=160, h=140, password=None, challenge=None):
    a, b = socket.socketpair()
    sec = (rfb.SEC_VNC_AUTH,) if challenge else (rfb.SEC_NONE,)
    a.sendall(server_init(w, h, sec, challenge) + data)
    c = rfb.RfbClient.from_socket(b, password=password, timeout=5)
    return a, c


def colour(i):
    return ((i * 53) & 255, (i * 101 + 7) & 255, (i * 29 + 200) & 255)


def zrle_tile(pixels, kind):
    """One ZRLE tile of PIXELS (RGB tuples) in subencoding KIND: raw, solid, packed, rle or palette-rle."""
    pal = list(dict.fromkeys(pixels))
    if kind == "raw":
        return b"\0" + b"".join(cpixel(p) for p in pixels)
    if kind == "solid":
        assert len(pal) == 1
        return b"\1" + cpixel(pal[0])
    runs = []
    for p in pixels:
        if runs and runs[-1][0] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])

    def run_length(n):
        n -= 1
        return b"\xff" * (n // 255) + bytes([n % 255])
    if kind == "rle":
        return b"\x80" + b"".join(cpixel(p) + run_length(n) for p, n in runs)
    if kind == "palette-rle":
        out = bytes([128 + len(pal)]) + b"".join(cpixel(p) for p in pal)
        for p, n in runs:
            out += bytes([pal.index(p)]) if n == 1 else bytes([pal.index(p) | 0x80]) + run_length(n)
        return out
    raise ValueError(kind)


def zrle_packed_tile(pixels, tw):
    pal = list(dict.fromkeys(pixels))
    bits = 1 if len(pal) == 2 else 2 if len(pal) <= 4 else 4
    out = bytes([len(pal)]) + b"".join(cpixel(p) for p in pal)
    for row in range(len(pixels) // tw):
        acc, nbits, line = 0, 0, bytearray()
        for p in pixels[row * tw:(row + 1) * tw]:
            acc, nbits = (acc << bits) | pal.index(p), nbits + bits
            if nbits == 8:
                line.append(acc)
                acc, nbits = 0, 0
        if nbits:
            line.append(acc << (8 - nbits))
        out += line
    return out


def test_zrle():
    # A 100x70 rectangle at (30, 20): tiles 64x64, 36x64, 64x6, 36x6 in reading order; a second rectangle after it
    # shares the zlib stream.
    model = Model(160, 140)
    x0, y0 = 30, 20
    tiles = [(0, 0, 64, 64), (64, 0, 36, 64), (0, 64, 64, 6), (64, 64, 36, 6)]
    kinds = ["raw", "packed", "rle", "palette-rle"]
    body = b""
    for (tx, ty, tw, th), kind in zip(tiles, kinds):
        if kind == "raw":
            px = [colour(i * 7 + 3) for i in range(tw * th)]
        elif kind == "packed":
            px = [colour((i % tw) // 3 % 5) for i in range(tw * th)]  # 5 colours: 4 bits per index
        elif kind == "rle":
            px = [colour(i // 300) for i in range(tw * th)]  # runs longer than 255
        else:
            px = [colour(10 + (i // 5) % 3) if i % 17 else colour(20) for i in range(tw * th)]
        model.put(x0 + tx, y0 + ty, px, tw)
        body += zrle_packed_tile(px, tw) if kind == "packed" else zrle_tile(px, kind)
    second = b""
    px2 = [colour(40)] * (20 * 10)
    model.put(5, 100, px2, 20)
    second += zrle_tile(px2, "solid")
    px3 = [colour(41 + (i % 3 == 0)) for i in range(12 * 8)]  # 2 colours: 1 bit per index
    model.put(140, 120, px3, 12)
    third = zrle_packed_tile(px3, 12)
    z = zlib.compressobj()
    data = []
    for b in (body, second, third):
        data.append(z.compress(b) + z.flush(zlib.Z_SYNC_FLUSH))
    msg = update(rect(x0, y0, 100, 70, rfb.ZRLE) + struct.pack(">I", len(data[0])) + data[0],
                 rect(5, 100, 20, 10, rfb.ZRLE) + struct.pack(">I", len(data[1])) + data[1],
                 rect(140, 120, 12, 8, rfb.ZRLE) + struct.pack(">I", len(data[2])) + data[2])
    srv, c = scripted_client(msg)
    rects = c.read_update(5)
    t.eq([r[4] for r in rects], [rfb.ZRLE] * 3, "ZRLE update has its three rectangles")
    rows = c.rows()
    bad = [y for y in range(140) if rows[y] != bytes(model.rows[y])]
    t.ok(not bad, "ZRLE raw/packed/RLE/palette-RLE/solid tiles decode to the encoded pixels", f"bad rows {bad[:10]}")
    t.eq(c.pixel(31, 20), colour(10), "pixel() reads the framebuffer")
    c.close()
    srv.close()
    # decode_region: rectangles outside it keep their pixels undecoded, yet the shared zlib stream stays in step.
    srv, c = scripted_client(msg)
    c.decode_region = (140, 120, 1, 1)
    c.read_update(5)
    rows = c.rows()
    t.ok(rows[20] == bytes(3 * 160) and rows[120][420:456] == bytes(model.rows[120][420:456]),
         "decode_region skips the rectangles outside it and still decodes the one inside")
    c.close()
    srv.close()


def tight_length(n):
    out = bytearray([n & 0x7F])
    if n > 0x7F:
        out[0] |= 0x80
        out.append((n >> 7) & 0x7F)
        if n > 0x3FFF:
            out[1] |= 0x80
            out.append(n >> 14)
    return bytes(out)


def test_tight():
    model = Model(160, 140)
    streams = [zlib.compressobj() for _ in range(4)]

    def zdata(stream, raw):
        if len(raw) < 12:
            return raw
        d = streams[stream].compress(raw) + streams[stream].flush(zlib.Z_SYNC_FLUSH)
        return tight_length(len(d)) + d

    rects = []
    # Fill.
    model.put(0, 0, [colour(1)] * (40 * 30), 40)
    rects.append(rect(0, 0, 40, 30, rfb.TIGHT) + b"\x80" + bytes(colour(1)))
    # Basic, copy filter (implicit), stream 0, compressed; TPIXEL is R, G, B.
    px = [colour(i * 3 + 1) for i in range(50 * 20)]
    model.put(40, 0, px, 50)
    rects.append(rect(40, 0, 50, 20, rfb.TIGHT) + b"\x00" + zdata(0, b"".join(bytes(p) for p in px)))
    # Basic, copy filter, too small for zlib (3 pixels = 9 bytes are sent as they are).
    px = [colour(60), colour(61), colour(62)]
    model.put(100, 0, px, 3)
    rects.append(rect(100, 0, 3, 1, rfb.TIGHT) + b"\x00" + b"".join(bytes(p) for p in px))
    # Palette filter with two colours: one bit per pixel, rows padded to a byte; stream 1.
    pal2 = [colour(70), colour(71)]
    bits = [(x * y + x) % 3 == 0 for y in range(15) for x in range(21)]
    model.put(0, 40, [pal2[b] for b in bits], 21)
    packed = bytearray()
    for y in range(15):
        row = bits[y * 21:(y + 1) * 21] + [False] * 3
        packed += bytes(sum(row[i + k] << (7 - k) for k in range(8)) for i in range(0, 24, 8))
    rects.append(rect(0, 40, 21, 15, rfb.TIGHT) + bytes([0x40 | 0x10, 1, 1]) + b"".join(bytes(p) for p in pal2) +
                 zdata(1, bytes(packed)))
    # Palette filter with 4 colours: one byte per pixel; stream 2.
    pal4 = [colour(80 + i) for i in range(4)]
    idx = [(x // 4 + y) % 4 for y in range(10) for x in range(30)]
    model.put(30, 40, [pal4[i] for i in idx], 30)
    rects.append(rect(30, 40, 30, 10, rfb.TIGHT) + bytes([0x40 | 0x20, 1, 3]) + b"".join(bytes(p) for p in pal4) +
                 zdata(2, bytes(idx)))
    # Gradient filter, stream 3: differences from clamp(left + above - above-left) per channel.
    gw, gh = 25, 12
    img = [((x * 9 + y * 3) & 255, (x * x + y * 17) & 255, (255 - x * 5 - y * 7) & 255) for y in range(gh)
           for x in range(gw)]
    model.put(70, 40, img, gw)
    diffs = bytearray()
    for y in range(gh):
        for x in range(gw):
            for ch in range(3):
                left = img[y * gw + x - 1][ch] if x else 0
                up = img[(y - 1) * gw + x][ch] if y else 0
                ul = img[(y - 1) * gw + x - 1][ch] if x and y else 0
                pred = min(255, max(0, left + up - ul))
                diffs.append((img[y * gw + x][ch] - pred) & 255)
    rects.append(rect(70, 40, gw, gh, rfb.TIGHT) + bytes([0x40 | 0x30, 2]) + zdata(3, bytes(diffs)))
    # A JPEG rectangle: counted as undecodable, its bytes skipped so the next rectangle still decodes.
    rects.append(rect(0, 60, 16, 16, rfb.TIGHT) + b"\x90" + tight_length(300) + bytes(300))
    # Reset stream 0 (low bits of the control byte) and start a new one.
    streams[0] = zlib.compressobj()
    px = [colour(200 + i % 7) for i in range(16 * 16)]
    model.put(20, 60, px, 16)
    rects.append(rect(20, 60, 16, 16, rfb.TIGHT) + b"\x01" + zdata(0, b"".join(bytes(p) for p in px)))
    srv, c = scripted_client(update(*rects))
    got = c.read_update(5)
    t.eq(len(got), len(rects), "Tight update has all its rectangles")
    rows = c.rows()
    bad = [y for y in range(140) if y not in range(60, 76) and rows[y] != bytes(model.rows[y])]
    t.ok(not bad, "Tight fill/copy/palette-2/palette-4/gradient rectangles decode to the encoded pixels",
         f"bad rows {bad[:10]}" + (f" got {rows[bad[0]][:30].hex()} want {bytes(model.rows[bad[0]][:30]).hex()}"
                                   if bad else ""))
    t.eq([rows[y][60:108] for y in range(60, 76)], [bytes(model.rows[y][60:108]) for y in range(60, 76)],
         "Tight rectangle after a JPEG one and a stream reset decodes")
    t.eq(c.undecodable_rects, 1, "the JPEG rectangle is counted as undecodable")
    c.close()
    srv.close()


def test_tight_16bit():
    # RGB565: TPIXELs are whole 2-byte pixels, and the gradient filter works on 5/6/5-bit channel values.
    pf = rfb.PixelFormat(bpp=16, depth=16, red_max=31, green_max=63, blue_max=31, red_shift=11, green_shift=5,
                         blue_shift=0)
    maxes = (31, 63, 31)
    gw, gh = 9, 7
    chans = [((x * 5 + y) % 32, (x * 9 + y * 11) % 64, (31 - x - 2 * y) % 32) for y in range(gh) for x in range(gw)]
    diffs = bytearray()
    for y in range(gh):
        for x in range(gw):
            d = []
            for ch in range(3):
                left = chans[y * gw + x - 1][ch] if x else 0
                up = chans[(y - 1) * gw + x][ch] if y else 0
                ul = chans[(y - 1) * gw + x - 1][ch] if x and y else 0
                pred = min(maxes[ch], max(0, left + up - ul))
                d.append((chans[y * gw + x][ch] - pred) % (maxes[ch] + 1))
            diffs += struct.pack("<H", d[0] << 11 | d[1] << 5 | d[2])
    z = zlib.compressobj()
    data = z.compress(bytes(diffs)) + z.flush(zlib.Z_SYNC_FLUSH)
    fill = struct.pack("<H", 31 << 11 | 0 << 5 | 31)
    msg = update(rect(0, 0, gw, gh, rfb.TIGHT) + bytes([0x40, 2]) + tight_length(len(data)) + data,
                 rect(10, 0, 4, 4, rfb.TIGHT) + b"\x80" + fill)
    srv, c = scripted_client(msg, 16, 8)
    c.pixel_format = pf  # as if set_pixel_format had been sent before the update
    c.read_update(5)
    want = [bytes(v * 255 // m for p in chans[y * gw:(y + 1) * gw] for v, m in zip(p, maxes)) for y in range(gh)]
    t.eq([r[:3 * gw] for r in c.rows()[:gh]], want, "Tight gradient filter on 16-bit pixels")
    t.eq(c.pixel(12, 2), (255, 0, 255), "Tight fill with a 2-byte TPIXEL")
    c.close()
    srv.close()


def test_others():
    model = Model(64, 48)
    rects = []
    # Raw.
    px = [colour(i) for i in range(10 * 4)]
    model.put(2, 3, px, 10)
    rects.append(rect(2, 3, 10, 4, rfb.RAW) + b"".join(pixel32(p) for p in px))
    # Hextile, 20x18 at (30, 0): tiles 16x16, 4x16, 16x2, 4x2.
    hx = b""
    # tile 1: background + foreground + two subrects in the foreground colour
    tile = [colour(100)] * 256
    for (sx, sy, sw, sh) in ((1, 2, 3, 4), (10, 10, 6, 6)):
        for yy in range(sy, sy + sh):
            for xx in range(sx, sx + sw):
                tile[yy * 16 + xx] = colour(101)
    model.put(30, 0, tile, 16)
    hx += bytes([2 | 4 | 8]) + pixel32(colour(100)) + pixel32(colour(101)) + bytes([2, 0x12, 0x23, 0xAA, 0x55])
    # tile 2: raw
    px = [colour(120 + i) for i in range(4 * 16)]
    model.put(46, 0, px, 4)
    hx += b"\x01" + b"".join(pixel32(p) for p in px)
    # tile 3: background kept from tile 1, one coloured subrect
    tile = [colour(100)] * 32
    tile[16 * 1 + 5] = colour(130)
    tile[16 * 1 + 6] = colour(130)
    model.put(30, 16, tile, 16)
    hx += bytes([8 | 16, 1]) + pixel32(colour(130)) + bytes([0x51, 0x10])
    # tile 4: new background, no subrects
    model.put(46, 16, [colour(140)] * 8, 4)
    hx += b"\x02" + pixel32(colour(140))
    rects.append(rect(30, 0, 20, 18, rfb.HEXTILE) + hx)
    # Zlib.
    px = [colour(150 + i) for i in range(8 * 5)]
    model.put(0, 30, px, 8)
    zd = zlib.compress(b"".join(pixel32(p) for p in px))
    rects.append(rect(0, 30, 8, 5, rfb.ZLIB) + struct.pack(">I", len(zd)) + zd)
    # CopyRect of the raw rectangle to (50, 40) (after the others: rectangles apply in order).
    for r in range(4):
        model.rows[40 + r][150:180] = model.rows[3 + r][6:36]
    rects.append(rect(50, 40, 10, 4, rfb.COPYRECT) + struct.pack(">HH", 2, 3))
    # Cursor pseudo-rectangle: 2x2, hotspot (1, 0).
    rects.append(rect(1, 0, 2, 2, rfb.CURSOR) + b"".join(pixel32(colour(i)) for i in range(4)) + b"\x80\x40")
    rects.append(rect(0, 0, 0, 0, rfb.LAST_RECT))
    msg = struct.pack(">BxH", 0, len(rects) + 5) + b"".join(rects)  # the count says more, LastRect ends it
    msg += struct.pack(">BxxxI", 3, 5) + b"hello" + b"\x02"  # server cut text, bell
    # Next update: QEMU ext-key ack, pointer type, ExtendedDesktopSize to 32x16, then a raw rect in the new size.
    px = [colour(7)] * (32 * 16)
    msg += update(rect(0, 0, 0, 0, rfb.QEMU_EXT_KEY), rect(1, 0, 0, 0, rfb.QEMU_POINTER_TYPE),
                  rect(1, 0, 32, 16, rfb.EXT_DESKTOP_SIZE) + struct.pack(">B3xIHHHHI", 1, 77, 0, 0, 32, 16, 0),
                  rect(0, 0, 32, 16, rfb.RAW) + b"".join(pixel32(p) for p in px))
    msg += update(rect(0, 0, 24, 8, rfb.DESKTOP_SIZE))
    srv, c = scripted_client(msg, 64, 48)
    c.set_pixel_format_32()
    c.read_update(5)
    rows = c.rows()
    bad = [y for y in range(48) if rows[y] != bytes(model.rows[y])]
    t.ok(not bad, "Raw, Hextile, Zlib and CopyRect rectangles decode to the encoded pixels", f"bad rows {bad[:10]}")
    t.eq(c.cursor and c.cursor[:4] + (c.cursor[5],), (2, 2, 1, 0, b"\x80\x40"), "cursor shape, hotspot and mask")
    t.eq(c.cursor and c.cursor[4][:3], bytes(colour(0)), "cursor pixels")
    t.eq(c.rects_by_encoding.get(rfb.LAST_RECT), 1, "LastRect ends an update early")
    t.eq(c.read_update(5) is not None and (c.width, c.height), (32, 16), "ExtendedDesktopSize resizes")
    t.eq((c.cut_texts, c.bells), ([b"hello"], 1), "server cut text and bell are kept")
    t.eq((c.qemu_ext_key, c.absolute_pointer, c.screens), (True, True, [(77, 0, 0, 32, 16, 0)]),
         "QEMU pseudo-encodings and the screen list")
    t.ok(c.rows() == [bytes(colour(7)) * 32] * 16, "raw rectangle in the new size", c.rows()[0][:12].hex())
    c.read_update(5)
    t.eq((c.width, c.height, len(c.fb)), (24, 8, 24 * 8 * 3), "DesktopSize resizes")
    t.eq(c.read_update(0.2), None, "read_update returns None when nothing comes")
    # What the client sent: version, ClientInit, SetPixelFormat.
    srv.settimeout(2)
    sent = srv.recv(1000)
    t.eq(sent[:13], b"RFB 003.008\n\x01", "client version 3.8, security None... ")
    c.close()
    srv.close()


def test_client_messages():
    srv, c = scripted_client(b"", 64, 48, password="password", challenge=bytes(range(16)))
    srv.settimeout(2)
    got = srv.recv(12 + 1 + 16 + 1)
    t.eq(got, b"RFB 003.008\n\x02" + bytes.fromhex("b866924125c8eebb9debc1db61c538e2") + b"\x01",
         "VNC authentication: type 2 and the DES response, then shared ClientInit")
    c.set_encodings([rfb.ZRLE, rfb.DESKTOP_SIZE])
    c.request_update(True, 1, 2, 3, 4)
    c.key(0xFF0D, True)
    c.pointer(300, 200, 5)
    c.cut_text(b"abc")
    c.set_desktop_size(800, 600)
    want = (struct.pack(">BxHii", 2, 2, 16, -223) + struct.pack(">BBHHHH", 3, 1, 1, 2, 3, 4) +
            struct.pack(">BBxxI", 4, 1, 0xFF0D) + struct.pack(">BBHH", 5, 5, 300, 200) +
            struct.pack(">BxxxI", 6, 3) + b"abc" + struct.pack(">BxHHBxIHHHHI", 251, 800, 600, 1, 0, 0, 0, 800, 600, 0))
    got = b""
    while len(got) < len(want):
        got += srv.recv(1000)
    t.eq(got.hex(), want.hex(), "SetEncodings, UpdateRequest, Key, Pointer, CutText, SetDesktopSize bytes")
    try:
        c.qemu_key(0x1c, 0xFF0D, True)
        t.ok(False, "qemu_key refuses before the server's acknowledgement")
    except rfb.RfbError:
        t.ok(True, "qemu_key refuses before the server's acknowledgement")
    c.close()
    srv.close()
    a, b = socket.socketpair()
    a.sendall(b"RFB 003.008\n\x01\x02")
    try:
        rfb.RfbClient.from_socket(b, timeout=2)
        t.ok(False, "a password-only server without a password raises AuthError")
    except rfb.AuthError:
        t.ok(True, "a password-only server without a password raises AuthError")
    a.close()


# ---------------------------------------------------------------------------------------------------------------
class Qemu:
    """qemu-system-x86_64 on TCG with no disk: SeaBIOS's text screen, VNC on a unix socket."""

    def __init__(self, vnc_opts=""):
        self.dir = tmpdir()
        self.vnc = os.path.join(self.dir, "vnc.sock")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.proc = subprocess.Popen([QEMU, "-accel", "tcg", "-M", "pc", "-display", "none", "-nodefaults",
                                      "-device", "VGA", "-vnc", f"unix:{self.vnc}{vnc_opts}",
                                      "-qmp", f"unix:{self.qmp_path},server=on,wait=off"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_for(lambda: os.path.exists(self.vnc) and os.path.exists(self.qmp_path) or
                        self.proc.poll() is not None, timeout=20):
            raise RuntimeError("QEMU made no VNC socket")
        if self.proc.poll() is not None:
            raise RuntimeError(f"QEMU exited: {self.proc.stderr.read()[-500:]!r}")

    def qmp(self, name, args=None):
        q = QmpClient(self.qmp_path)
        q.negotiate()
        r = q.cmd(name, args)
        q.close()
        return r

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def shot(c, enc):
    c.set_encodings([enc, rfb.DESKTOP_SIZE, rfb.EXT_DESKTOP_SIZE, rfb.QEMU_EXT_KEY])
    c.fb[:] = bytes(len(c.fb))
    if c.refresh(10) is None:
        raise RuntimeError(f"no update in encoding {enc}")
    return c.rows()


def test_qemu():
    if not QEMU:
        t.skip("QEMU VNC server checks", "qemu-system-x86_64 not installed (tools/install-deps --bench)")
        return
    q = Qemu()
    try:
        c = rfb.RfbClient.connect(q.vnc)
        t.ok(c.version == (3, 8) and c.name == b"QEMU" and c.width > 0, "handshake with QEMU's VNC server",
             f"{c.version} {c.name} {c.width}x{c.height}")
        c.set_pixel_format_32()
        # Wait for SeaBIOS's text screen (its banner and boot messages).
        # It has settled when two shots a second apart differ at most in the cursor's rows.
        def settled():
            a = shot(c, rfb.RAW)
            time.sleep(1)
            b = shot(c, rfb.RAW)
            return len(a) == len(b) and len({bytes(r) for r in a}) > 2 and sum(x != y for x, y in zip(a, b)) <= 4
        wait_for(settled, timeout=30, interval=0.1)
        # The VGA text cursor blinks: rows that change between Raw shots over 1.5 s are left out of the comparison.
        raw = shot(c, rfb.RAW)
        blinking, end = set(), time.monotonic() + 1.5
        while time.monotonic() < end:
            again = shot(c, rfb.RAW)
            blinking |= {y for y in range(len(raw)) if again[y] != raw[y]}
        t.ok(len({bytes(r) for r in raw}) > 2 and len(blinking) <= 4, "QEMU's screen has text and only the cursor "
             "blinks", f"blinking rows {sorted(blinking)}")
        for enc, name in ((rfb.ZRLE, "ZRLE"), (rfb.TIGHT, "Tight"), (rfb.HEXTILE, "Hextile"), (rfb.ZLIB, "Zlib")):
            got = shot(c, enc)
            bad = [y for y in range(len(raw)) if got[y] != raw[y] and y not in blinking]
            t.ok(not bad, f"QEMU's screen in {name} equals Raw", f"rows differ: {bad[:10]}")
        t.ok(c.rects_by_encoding.get(rfb.QEMU_EXT_KEY, 0) > 0 and c.qemu_ext_key, "QEMU acknowledges QEMU_EXT_KEY")
        c.close()
    finally:
        q.stop()
    q = Qemu(",password=on")
    try:
        r = q.qmp("change-vnc-password", {"password": "deskvm12"})
        t.eq(r, {"return": {}}, "QMP change-vnc-password")
        c = rfb.RfbClient.connect(q.vnc, password="deskvm12")
        t.ok(c.security_type == rfb.SEC_VNC_AUTH and c.refresh(10), "VNC authentication with the right password")
        c.close()
        try:
            rfb.RfbClient.connect(q.vnc, password="wrong")
            t.ok(False, "a wrong password is refused")
        except rfb.AuthError as e:
            t.ok(True, f"a wrong password is refused ({e})")
    finally:
        q.stop()


for fn in (test_des, test_zrle, test_tight, test_tight_16bit, test_others, test_client_messages, test_qemu):
    t.run(fn, fn.__name__)
t.done()
