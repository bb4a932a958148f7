"""A small RFB (VNC) 3.8 client in pure Python for deskvm's tests and benchmarks.

    c = RfbClient.connect(("127.0.0.1", 5901))       # or RfbClient.connect("/tmp/vnc.sock", password="secret")
    c.set_pixel_format_32()
    c.set_encodings([ZRLE, TIGHT, DESKTOP_SIZE, EXT_DESKTOP_SIZE, LAST_RECT])
    c.update(incremental=False)                      # request + read one FramebufferUpdate
    w, h, rows = c.screenshot()                      # the shape tests/lib/png.py's decode_png returns

Security types None and VNC authentication (with its own DES, below). Decodes Raw, CopyRect, Zlib, Hextile, ZRLE,
Tight (fill, basic with the copy/palette/gradient filters; JPEG only counted, as the standard library has no JPEG
decoder), the DesktopSize, ExtendedDesktopSize, Cursor, LastRect and QEMU pseudo-encodings. The framebuffer is kept
as packed 8-bit RGB, whatever pixel format is on the wire.

decode_region limits the pixel work to rectangles that touch it: every byte is still received and every zlib
stream inflated (the streams carry state across rectangles), but a benchmark at 1920x1080 need not convert pixels
it never looks at.
"""
import socket
import struct
import time
import zlib

# Encodings and pseudo-encodings (SetEncodings values).
RAW = 0
COPYRECT = 1
HEXTILE = 5
ZLIB = 6
TIGHT = 7
ZRLE = 16
DESKTOP_SIZE = -223
LAST_RECT = -224
CURSOR = -239
EXT_DESKTOP_SIZE = -308
QEMU_POINTER_TYPE = -257
QEMU_EXT_KEY = -258
JPEG_QUALITY_0 = -32  # -32 .. -23: JPEG quality 0 .. 9
COMPRESS_LEVEL_0 = -256  # -256 .. -247: compression level 0 .. 9

ENCODING_NAMES = {RAW: "raw", COPYRECT: "copyrect", HEXTILE: "hextile", ZLIB: "zlib", TIGHT: "tight", ZRLE: "zrle",
                  DESKTOP_SIZE: "desktop-size", LAST_RECT: "last-rect", CURSOR: "cursor",
                  EXT_DESKTOP_SIZE: "ext-desktop-size", QEMU_POINTER_TYPE: "qemu-pointer-type",
                  QEMU_EXT_KEY: "qemu-ext-key"}


def jpeg_quality(level):
    """The pseudo-encoding asking for JPEG quality LEVEL (0..9)."""
    return JPEG_QUALITY_0 + level


def compress_level(level):
    """The pseudo-encoding asking for compression level LEVEL (0..9)."""
    return COMPRESS_LEVEL_0 + level


# Security types.
SEC_NONE = 1
SEC_VNC_AUTH = 2

# Limits on what a (possibly broken) server may make us allocate.
MAX_DIMENSION = 16384
MAX_TEXT = 16 << 20


class RfbError(Exception):
    """The server refused us or broke the protocol."""


class AuthError(RfbError):
    """Authentication failed (wrong password, or no security type we support)."""


# ---------------------------------------------------------------------------------------------------------------
# DES, just enough for VNC authentication: encryption of 8-byte blocks (FIPS 46-3 tables).

_DES_IP = [58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
           62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
           57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
           61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7]
# The final permutation undoes the initial one.
_DES_FP = [0] * 64
for _i, _p in enumerate(_DES_IP):
    _DES_FP[_p - 1] = _i + 1
# Expansion: each 4-bit group with its neighbours' adjacent bits, wrapping around.
_DES_E = [((4 * g + k - 1) % 32) + 1 for g in range(8) for k in range(6)]
_DES_P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
          2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25]
_DES_PC1 = [57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
            10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
            63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
            14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4]
_DES_PC2 = [14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10,
            23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
            41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
            44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32]
_DES_SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1]
_DES_S = [
    [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
    [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
    [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
    [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
    [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
    [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
    [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
    [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
]


def _permute(value, table, in_bits):
    """Bits of VALUE (IN_BITS wide, bit 1 = most significant as in the standard's tables) picked by TABLE."""
    out = 0
    for pos in table:
        out = (out << 1) | ((value >> (in_bits - pos)) & 1)
    return out


def _des_subkeys(key):
    cd = _permute(int.from_bytes(key, "big"), _DES_PC1, 64)
    c, d = cd >> 28, cd & 0xFFFFFFF
    keys = []
    for s in _DES_SHIFTS:
        c = ((c << s) | (c >> (28 - s))) & 0xFFFFFFF
        d = ((d << s) | (d >> (28 - s))) & 0xFFFFFFF
        keys.append(_permute((c << 28) | d, _DES_PC2, 56))
    return keys


def des_encrypt_block(key, block):
    """DES encryption of one 8-byte BLOCK under the 8-byte KEY (parity bits ignored)."""
    if len(key) != 8 or len(block) != 8:
        raise ValueError("DES works on 8-byte keys and blocks")
    v = _permute(int.from_bytes(block, "big"), _DES_IP, 64)
    left, right = v >> 32, v & 0xFFFFFFFF
    for k in _des_subkeys(key):
        x = _permute(right, _DES_E, 32) ^ k
        s_out = 0
        for box in range(8):
            six = (x >> (42 - 6 * box)) & 0x3F
            row = ((six >> 4) & 2) | (six & 1)
            s_out = (s_out << 4) | _DES_S[box][row * 16 + ((six >> 1) & 0xF)]
        left, right = right, left ^ _permute(s_out, _DES_P, 32)
    return _permute((right << 32) | left, _DES_FP, 64).to_bytes(8, "big")


def vnc_auth_response(password, challenge):
    """The 16-byte answer to a VNC authentication CHALLENGE: the challenge DES-encrypted with the password's first
    8 bytes (zero padded) as the key, each key byte's bits mirrored, as every VNC implementation does."""
    if isinstance(password, str):
        password = password.encode("latin-1")
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password[:8].ljust(8, b"\0"))
    return des_encrypt_block(key, challenge[:8]) + des_encrypt_block(key, challenge[8:16])


# ---------------------------------------------------------------------------------------------------------------
# Pixel formats.

class PixelFormat:
    FIELDS = ">BBBBHHHBBB3x"

    def __init__(self, bpp=32, depth=24, big_endian=False, true_colour=True, red_max=255, green_max=255,
                 blue_max=255, red_shift=16, green_shift=8, blue_shift=0):
        self.bpp, self.depth, self.big_endian, self.true_colour = bpp, depth, bool(big_endian), bool(true_colour)
        self.red_max, self.green_max, self.blue_max = red_max, green_max, blue_max
        self.red_shift, self.green_shift, self.blue_shift = red_shift, green_shift, blue_shift

    @classmethod
    def unpack(cls, data):
        return cls(*struct.unpack(cls.FIELDS, data))

    def pack(self):
        return struct.pack(self.FIELDS, self.bpp, self.depth, int(self.big_endian), int(self.true_colour),
                           self.red_max, self.green_max, self.blue_max, self.red_shift, self.green_shift,
                           self.blue_shift)

    def __repr__(self):
        return (f"PixelFormat(bpp={self.bpp}, depth={self.depth}, big_endian={self.big_endian}, "
                f"true_colour={self.true_colour}, max={self.red_max}/{self.green_max}/{self.blue_max}, "
                f"shift={self.red_shift}/{self.green_shift}/{self.blue_shift})")

    @property
    def bytes_per_pixel(self):
        return self.bpp // 8

    def _colour_span(self):
        """(lowest shift, highest bit above the colour bits) of a true-colour format."""
        low = min(self.red_shift, self.green_shift, self.blue_shift)
        top = max(self.red_shift + self.red_max.bit_length(), self.green_shift + self.green_max.bit_length(),
                  self.blue_shift + self.blue_max.bit_length())
        return low, top

    def compact_size(self):
        """Bytes of ZRLE's CPIXEL: 3 when a 32-bit true-colour pixel's colour bits fit in its three low or three
        high bytes, else the full pixel. (The spec also asks for depth <= 24; libvncserver, QEMU and TigerVNC go by
        the colour bits alone, so a depth-32 format with 8-bit channels gets 3-byte CPIXELs too.)"""
        if self.bpp == 32 and self.true_colour:
            low, top = self._colour_span()
            if top <= 24 or low >= 8:
                return 3
        return self.bytes_per_pixel

    def tight_size(self):
        """Bytes of Tight's TPIXEL: 3 (R, G, B whatever the shifts) for 32-bit depth-24 true colour with 8-bit
        channels, else the full pixel."""
        if self.bpp == 32 and self.depth == 24 and self.true_colour and \
                (self.red_max, self.green_max, self.blue_max) == (255, 255, 255):
            return 3
        return self.bytes_per_pixel

    def _compact_drops_low_byte(self):
        low, top = self._colour_span()
        return self.compact_size() == 3 and top > 24 and low >= 8

    def byte_layout(self, size):
        """For pixels of SIZE bytes (the full pixel or the 3-byte compact form): the byte index of red, green and
        blue within a pixel when each channel is a whole 8-bit byte, else None."""
        if not self.true_colour or (self.red_max, self.green_max, self.blue_max) != (255, 255, 255):
            return None
        shifts = (self.red_shift, self.green_shift, self.blue_shift)
        if any(s % 8 for s in shifts):
            return None
        drop = 1 if size == 3 and self.bpp == 32 and self._compact_drops_low_byte() else 0
        idx = []
        for s in shifts:
            byte = s // 8 - drop  # 0 = least significant byte of the (compact) value
            if not 0 <= byte < size:
                return None
            idx.append(size - 1 - byte if self.big_endian else byte)
        return tuple(idx)

    def to_rgb(self, data, size=None):
        """Packed RGB for pixels in DATA of SIZE bytes each (default the full pixel)."""
        size = size or self.bytes_per_pixel
        n = len(data) // size
        layout = self.byte_layout(size)
        out = bytearray(3 * n)
        if layout is not None:
            r, g, b = layout
            out[0::3] = data[r::size]
            out[1::3] = data[g::size]
            out[2::3] = data[b::size]
            return out
        drop = 8 if size == 3 and self.bpp == 32 and self._compact_drops_low_byte() else 0
        order = "big" if self.big_endian else "little"
        for i in range(n):
            v = int.from_bytes(data[i * size:(i + 1) * size], order) << drop
            out[3 * i:3 * i + 3] = self.value_to_rgb(v)
        return out

    def value_to_rgb(self, v, colour_map=None):
        if not self.true_colour:
            return (colour_map or {}).get(v, b"\0\0\0")

        def chan(shift, mx):
            return ((v >> shift) & mx) * 255 // mx if mx else 0
        return bytes((chan(self.red_shift, self.red_max), chan(self.green_shift, self.green_max),
                      chan(self.blue_shift, self.blue_max)))


PF_32 = PixelFormat()


# ---------------------------------------------------------------------------------------------------------------

class _Reader:
    """Consumes a bytes object front to back; running past its end is a protocol error."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise RfbError("encoded rectangle data ends early")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self):
        if self.pos >= len(self.data):
            raise RfbError("encoded rectangle data ends early")
        self.pos += 1
        return self.data[self.pos - 1]


class RfbClient:
    """One connection to an RFB server. Use RfbClient.connect()."""

    def __init__(self, sock, timeout):
        self.sock = sock
        self.timeout = timeout
        self._buf = bytearray()
        self.bytes_received = 0
        self.bytes_sent = 0
        self.updates = 0
        self.rects_by_encoding = {}
        self.undecodable_rects = 0  # JPEG rectangles we could not decode
        self.cut_texts = []
        self.ext_clipboard = []  # Extended Clipboard messages (negative-length cut text), undecoded
        self.bells = 0
        self.colour_map = {}
        self.cursor = None  # (width, height, hot_x, hot_y, RGB bytes, mask bytes)
        self.qemu_ext_key = False  # the server acknowledged QEMU_EXT_KEY
        self.absolute_pointer = None  # from QEMU_POINTER_TYPE
        self.desktop_size_result = None  # (reason, status, width, height, screens) of the last ExtendedDesktopSize
        self.screens = []  # [(id, x, y, w, h, flags)] from ExtendedDesktopSize
        self.resizes = 0
        self.decode_region = None  # (x, y, w, h): only rectangles touching it are decoded into pixels
        self.last_rects = []  # [(x, y, w, h, encoding)] of the last update
        self._zlib_raw = zlib.decompressobj()
        self._zlib_zrle = zlib.decompressobj()
        self._zlib_tight = [zlib.decompressobj() for _ in range(4)]
        self.version = None
        self.width = self.height = 0
        self.fb = bytearray()
        self.name = b""
        self.pixel_format = None

    # --- connection ------------------------------------------------------------------------------------------
    @classmethod
    def connect(cls, addr, password=None, shared=True, timeout=10):
        """Connects to ADDR ((host, port) or a unix socket path) and runs the handshake: version, security (None or,
        with PASSWORD, VNC authentication), ClientInit, ServerInit."""
        if isinstance(addr, (tuple, list)):
            sock = socket.create_connection(tuple(addr), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(addr)
            except OSError:
                sock.close()
                raise
        return cls.from_socket(sock, password, shared, timeout)

    @classmethod
    def from_socket(cls, sock, password=None, shared=True, timeout=10):
        """Runs the handshake on an already connected SOCK (closed on failure)."""
        c = cls(sock, timeout)
        try:
            c._handshake(password, shared)
        except BaseException:
            sock.close()
            raise
        return c

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_some(self, deadline=None):
        t = self.timeout if deadline is None else max(0.0, deadline - time.monotonic())
        self.sock.settimeout(t)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("the RFB server closed the connection")
        self.bytes_received += len(chunk)
        self._buf += chunk

    def _recv(self, n):
        while len(self._buf) < n:
            self._recv_some()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _unpack(self, fmt):
        return struct.unpack(fmt, self._recv(struct.calcsize(fmt)))

    def _send(self, data):
        self.sock.sendall(data)
        self.bytes_sent += len(data)

    def _reason(self):
        (n,) = self._unpack(">I")
        return self._recv(min(n, 65536)).decode("utf-8", "replace")

    def _handshake(self, password, shared):
        banner = self._recv(12)
        if not banner.startswith(b"RFB ") or banner[11:12] != b"\n":
            raise RfbError(f"not an RFB server: {banner!r}")
        major, minor = int(banner[4:7]), int(banner[8:11])
        self.version = (3, 8) if (major, minor) >= (3, 8) else (3, 7) if (major, minor) >= (3, 7) else (3, 3)
        self._send(b"RFB %03d.%03d\n" % self.version)
        if self.version == (3, 3):
            (sec,) = self._unpack(">I")
            if sec == 0:
                raise RfbError(f"server refused the connection: {self._reason()}")
        else:
            (n,) = self._unpack(">B")
            if n == 0:
                raise RfbError(f"server refused the connection: {self._reason()}")
            types = list(self._recv(n))
            if password is not None and SEC_VNC_AUTH in types:
                sec = SEC_VNC_AUTH
            elif SEC_NONE in types:
                sec = SEC_NONE
            elif SEC_VNC_AUTH in types:
                raise AuthError("the server wants a password")
            else:
                raise AuthError(f"no supported security type among {types}")
            self._send(bytes([sec]))
        self.security_type = sec
        if sec == SEC_VNC_AUTH:
            if password is None:
                raise AuthError("the server wants a password")
            self._send(vnc_auth_response(password, self._recv(16)))
        elif sec != SEC_NONE:
            raise AuthError(f"unsupported security type {sec}")
        if sec == SEC_VNC_AUTH or self.version == (3, 8):
            (result,) = self._unpack(">I")
            if result != 0:
                reason = self._reason() if self.version == (3, 8) else "authentication failed"
                raise AuthError(f"security handshake failed: {reason}")
        self._send(bytes([1 if shared else 0]))
        w, h = self._unpack(">HH")
        self.pixel_format = PixelFormat.unpack(self._recv(16))
        (n,) = self._unpack(">I")
        self.name = self._recv(min(n, 65536))
        self._resize(w, h)

    # --- client messages ---------------------------------------------------------------------------------------
    def set_pixel_format(self, pf):
        self._send(b"\0\0\0\0" + pf.pack())
        self.pixel_format = pf

    def set_pixel_format_32(self):
        """32 bits per pixel, depth 24, little-endian true colour, red/green/blue shifts 16/8/0."""
        self.set_pixel_format(PixelFormat())

    def set_encodings(self, encodings):
        self._send(struct.pack(">BxH", 2, len(encodings)) + b"".join(struct.pack(">i", e) for e in encodings))

    def request_update(self, incremental, x=0, y=0, w=None, h=None):
        w = self.width - x if w is None else w
        h = self.height - y if h is None else h
        self._send(struct.pack(">BBHHHH", 3, 1 if incremental else 0, x, y, w, h))

    def key(self, keysym, down):
        self._send(struct.pack(">BBxxI", 4, 1 if down else 0, keysym))

    def qemu_key(self, xt_scancode, keysym, down):
        """QEMU's extended key event: a key number besides the keysym. QEMU's clients send XT set-1 scancodes with
        an 0xe0 prefix as 0x80|code (QEMU's numbering); deskvm also takes 0xe0XX. Only after the server
        acknowledged QEMU_EXT_KEY."""
        if not self.qemu_ext_key:
            raise RfbError("the server has not acknowledged the QEMU extended key event")
        self._send(struct.pack(">BBHII", 255, 0, 1 if down else 0, keysym, xt_scancode))

    def pointer(self, x, y, buttons=0):
        self._send(struct.pack(">BBHH", 5, buttons, x, y))

    def cut_text(self, text):
        if isinstance(text, str):
            text = text.encode("latin-1")
        self._send(struct.pack(">BxxxI", 6, len(text)) + text)

    def set_desktop_size(self, w, h):
        """ExtendedDesktopSize's SetDesktopSize: one screen covering W x H (keeping the id the server gave)."""
        sid, flags = (self.screens[0][0], self.screens[0][5]) if self.screens else (0, 0)
        self._send(struct.pack(">BxHHBx", 251, w, h, 1) + struct.pack(">IHHHHI", sid, 0, 0, w, h, flags))

    # --- framebuffer -------------------------------------------------------------------------------------------
    @property
    def framebuffer(self):
        """(width, height, bytearray of packed RGB, row after row)."""
        return self.width, self.height, self.fb

    def pixel(self, x, y):
        """(r, g, b) at (X, Y)."""
        i = 3 * (y * self.width + x)
        return tuple(self.fb[i:i + 3])

    def rows(self):
        """The framebuffer as a list of bytes rows of packed RGB (as tests/lib/png.py's decode_png gives)."""
        s = 3 * self.width
        return [bytes(self.fb[y * s:(y + 1) * s]) for y in range(self.height)]

    def screenshot(self):
        """(width, height, rows), the shape of decode_png's result."""
        return self.width, self.height, self.rows()

    def _resize(self, w, h):
        if not (0 <= w <= MAX_DIMENSION and 0 <= h <= MAX_DIMENSION):
            raise RfbError(f"framebuffer size {w}x{h} out of range")
        if (w, h) != (self.width, self.height):
            self.resizes += 1 if self.width else 0
            self.width, self.height = w, h
            self.fb = bytearray(3 * w * h)

    def _put(self, x, y, w, h, rgb):
        """Stores W x H pixels of packed RGB at (X, Y)."""
        s, rs = 3 * self.width, 3 * w
        for row in range(h):
            o = (y + row) * s + 3 * x
            self.fb[o:o + rs] = rgb[row * rs:(row + 1) * rs]

    def _fill(self, x, y, w, h, rgb3):
        s, line = 3 * self.width, bytes(rgb3) * w
        for row in range(h):
            o = (y + row) * s + 3 * x
            self.fb[o:o + 3 * w] = line

    def _wanted(self, x, y, w, h):
        r = self.decode_region
        return r is None or (x < r[0] + r[2] and r[0] < x + w and y < r[1] + r[3] and r[1] < y + h)

    # --- server messages ---------------------------------------------------------------------------------------
    def update(self, incremental=True, timeout=10):
        """Requests an update of the whole screen and reads it; returns read_update's result."""
        self.request_update(incremental)
        return self.read_update(timeout)

    def read_update(self, timeout=10):
        """Reads server messages until one FramebufferUpdate has been applied; returns its rectangles as
        [(x, y, w, h, encoding)], or None if no message started within TIMEOUT seconds. Cut text, bells and colour
        map entries met on the way are kept (cut_texts, bells, colour_map)."""
        deadline = time.monotonic() + timeout
        while True:
            while not self._buf:
                try:
                    # At least a moment's wait, so a zero timeout still picks up what has already arrived.
                    self._recv_some(max(deadline, time.monotonic() + 0.001))
                except (socket.timeout, TimeoutError, BlockingIOError):
                    return None
            (kind,) = self._unpack(">B")
            if kind == 0:
                return self._framebuffer_update()
            if kind == 1:
                _, first, n = self._unpack(">xHH")
                for i in range(n):
                    r, g, b = self._unpack(">HHH")
                    self.colour_map[first + i] = bytes((r >> 8, g >> 8, b >> 8))
            elif kind == 2:
                self.bells += 1
            elif kind == 3:
                (n,) = self._unpack(">xxxi")
                if abs(n) > MAX_TEXT:
                    raise RfbError(f"server cut text of {abs(n)} bytes")
                if n < 0:  # Extended Clipboard: a negative length carries -n bytes of capabilities/actions
                    self.ext_clipboard.append(self._recv(-n))
                else:
                    self.cut_texts.append(self._recv(n))
            else:
                raise RfbError(f"unexpected server message type {kind}")

    def refresh(self, timeout=10):
        """Asks for the whole screen (non-incremental) and reads updates until one carrying pixels arrives (pseudo
        rectangles such as QEMU_EXT_KEY's acknowledgement come in updates of their own); returns its rectangles,
        or None after TIMEOUT seconds."""
        end = time.monotonic() + timeout
        self.request_update(False)
        while True:
            rects = self.read_update(max(0.0, end - time.monotonic()))
            if rects is None or any(r[4] >= 0 for r in rects):
                return rects

    def wait_for(self, pred, timeout=10):
        """Keeps requesting incremental updates until PRED(self) is true; returns whether it became true."""
        end = time.monotonic() + timeout
        while not pred(self):
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.update(incremental=True, timeout=left)
        return True

    def _framebuffer_update(self):
        (n,) = self._unpack(">xH")
        rects = []
        for _ in range(n):
            x, y, w, h, enc = self._unpack(">HHHHi")
            self.rects_by_encoding[enc] = self.rects_by_encoding.get(enc, 0) + 1
            rects.append((x, y, w, h, enc))
            if enc == LAST_RECT:
                break
            self._rect(x, y, w, h, enc)
        self.updates += 1
        self.last_rects = rects
        return rects

    def _check_bounds(self, x, y, w, h, enc):
        if x + w > self.width or y + h > self.height:
            raise RfbError(f"rectangle {w}x{h}+{x}+{y} ({ENCODING_NAMES.get(enc, enc)}) outside the "
                           f"{self.width}x{self.height} framebuffer")

    def _rect(self, x, y, w, h, enc):
        pf = self.pixel_format
        bpp = pf.bytes_per_pixel
        if enc == DESKTOP_SIZE:
            self._resize(w, h)
        elif enc == EXT_DESKTOP_SIZE:
            (count,) = self._unpack(">B3x")
            screens = [self._unpack(">IHHHHI") for _ in range(count)]
            self.desktop_size_result = (x, y, w, h, screens)
            if screens:
                self.screens = screens
            self._resize(w, h)
        elif enc == CURSOR:
            if w > 1024 or h > 1024:
                raise RfbError(f"cursor of {w}x{h}")
            pixels = self._recv(w * h * bpp)
            mask = self._recv((w + 7) // 8 * h)
            self.cursor = (w, h, x, y, bytes(pf.to_rgb(pixels)), mask)
        elif enc == QEMU_EXT_KEY:
            self.qemu_ext_key = True
        elif enc == QEMU_POINTER_TYPE:
            self.absolute_pointer = bool(x)
        elif enc == RAW:
            self._check_bounds(x, y, w, h, enc)
            data = self._recv(w * h * bpp)
            if self._wanted(x, y, w, h):
                self._put(x, y, w, h, pf.to_rgb(data))
        elif enc == COPYRECT:
            self._check_bounds(x, y, w, h, enc)
            sx, sy = self._unpack(">HH")
            self._check_bounds(sx, sy, w, h, enc)
            s = 3 * self.width
            src = [bytes(self.fb[(sy + r) * s + 3 * sx:(sy + r) * s + 3 * (sx + w)]) for r in range(h)]
            self._put(x, y, w, h, b"".join(src))
        elif enc == ZLIB:
            self._check_bounds(x, y, w, h, enc)
            (n,) = self._unpack(">I")
            data = self._zlib_raw.decompress(self._recv(n))
            if len(data) != w * h * bpp:
                raise RfbError(f"zlib rectangle inflates to {len(data)} bytes, not {w * h * bpp}")
            if self._wanted(x, y, w, h):
                self._put(x, y, w, h, pf.to_rgb(data))
        elif enc == ZRLE:
            self._check_bounds(x, y, w, h, enc)
            (n,) = self._unpack(">I")
            data = self._zlib_zrle.decompress(self._recv(n))
            if self._wanted(x, y, w, h):
                self._zrle(x, y, w, h, data)
        elif enc == HEXTILE:
            self._check_bounds(x, y, w, h, enc)
            self._hextile(x, y, w, h)
        elif enc == TIGHT:
            self._check_bounds(x, y, w, h, enc)
            self._tight(x, y, w, h)
        else:
            raise RfbError(f"rectangle with encoding {enc}, which we did not ask for")

    # --- ZRLE --------------------------------------------------------------------------------------------------
    def _zrle(self, x0, y0, w, h, data):
        pf = self.pixel_format
        cs = pf.compact_size()
        r = _Reader(data)
        for ty in range(y0, y0 + h, 64):
            th = min(64, y0 + h - ty)
            for tx in range(x0, x0 + w, 64):
                tw = min(64, x0 + w - tx)
                sub = r.u8()
                npx = tw * th
                if sub == 0:
                    self._put(tx, ty, tw, th, pf.to_rgb(r.take(npx * cs), cs))
                elif sub == 1:
                    self._fill(tx, ty, tw, th, pf.to_rgb(r.take(cs), cs))
                elif 2 <= sub <= 16:
                    pal = pf.to_rgb(r.take(sub * cs), cs)
                    colours = [bytes(pal[3 * i:3 * i + 3]) for i in range(sub)]
                    bits = 1 if sub == 2 else 2 if sub <= 4 else 4
                    row_bytes = (tw * bits + 7) // 8
                    mask = (1 << bits) - 1
                    out = bytearray()
                    for _ in range(th):
                        packed = r.take(row_bytes)
                        for i in range(tw):
                            bit = i * bits
                            idx = (packed[bit >> 3] >> (8 - bits - (bit & 7))) & mask
                            if idx >= sub:
                                raise RfbError("ZRLE palette index out of range")
                            out += colours[idx]
                    self._put(tx, ty, tw, th, out)
                elif sub == 128 or sub >= 130:
                    self._put(tx, ty, tw, th, self._zrle_rle(r, pf, cs, npx, sub))
                else:
                    raise RfbError(f"ZRLE tile subencoding {sub}")

    @staticmethod
    def _zrle_run(r):
        n = 1
        while True:
            b = r.u8()
            n += b
            if b != 255:
                return n

    def _zrle_rle(self, r, pf, cs, npx, sub):
        out = bytearray()
        left = npx
        if sub == 128:
            while left > 0:
                colour = bytes(pf.to_rgb(r.take(cs), cs))
                n = self._zrle_run(r)
                if n > left:
                    raise RfbError("ZRLE run past the tile's end")
                out += colour * n
                left -= n
            return out
        size = sub - 128
        pal = pf.to_rgb(r.take(size * cs), cs)
        colours = [bytes(pal[3 * i:3 * i + 3]) for i in range(size)]
        while left > 0:
            b = r.u8()
            idx = b & 0x7F
            if idx >= size:
                raise RfbError("ZRLE palette index out of range")
            n = self._zrle_run(r) if b & 0x80 else 1
            if n > left:
                raise RfbError("ZRLE run past the tile's end")
            out += colours[idx] * n
            left -= n
        return out

    # --- Hextile -----------------------------------------------------------------------------------------------
    def _hextile(self, x0, y0, w, h):
        pf = self.pixel_format
        bpp = pf.bytes_per_pixel
        bg = fg = b"\0\0\0"
        want = self._wanted(x0, y0, w, h)
        for ty in range(y0, y0 + h, 16):
            th = min(16, y0 + h - ty)
            for tx in range(x0, x0 + w, 16):
                tw = min(16, x0 + w - tx)
                (sub,) = self._unpack(">B")
                if sub & 1:
                    data = self._recv(tw * th * bpp)
                    if want:
                        self._put(tx, ty, tw, th, pf.to_rgb(data))
                    continue
                if sub & 2:
                    bg = bytes(pf.to_rgb(self._recv(bpp)))
                if sub & 4:
                    fg = bytes(pf.to_rgb(self._recv(bpp)))
                if want:
                    self._fill(tx, ty, tw, th, bg)
                if sub & 8:
                    (count,) = self._unpack(">B")
                    for _ in range(count):
                        colour = bytes(pf.to_rgb(self._recv(bpp))) if sub & 16 else fg
                        xy, wh = self._unpack(">BB")
                        sx, sy, sw, sh = xy >> 4, xy & 15, (wh >> 4) + 1, (wh & 15) + 1
                        if sx + sw > tw or sy + sh > th:
                            raise RfbError("hextile subrectangle outside its tile")
                        if want:
                            self._fill(tx + sx, ty + sy, sw, sh, colour)

    # --- Tight -------------------------------------------------------------------------------------------------
    def _compact_length(self):
        n = 0
        for i in range(3):
            (b,) = self._unpack(">B")
            n |= (b & (0x7F if i < 2 else 0xFF)) << (7 * i)
            if i == 2 or not b & 0x80:
                return n
        return n

    def _tight(self, x, y, w, h):
        pf = self.pixel_format
        ts = pf.tight_size()
        tight_rgb = ts == 3  # Tight's 3-byte TPIXEL is R, G, B whatever the shifts

        def tpixels_to_rgb(data):
            return bytearray(data) if tight_rgb else pf.to_rgb(data)

        (ctl,) = self._unpack(">B")
        for i in range(4):
            if ctl & (1 << i):
                self._zlib_tight[i] = zlib.decompressobj()
        kind = ctl >> 4
        want = self._wanted(x, y, w, h)
        if kind == 8:
            colour = tpixels_to_rgb(self._recv(ts))
            if want:
                self._fill(x, y, w, h, colour)
            return
        if kind == 9:
            self._recv(self._compact_length())  # JPEG: no decoder in the standard library
            self.undecodable_rects += 1
            return
        if kind > 7:
            raise RfbError(f"Tight compression control {ctl:#x}")
        stream = kind & 3
        filt = self._unpack(">B")[0] if kind & 4 else 0
        palette = None
        if filt == 1:
            (n,) = self._unpack(">B")
            palette = tpixels_to_rgb(self._recv((n + 1) * ts))
            size = (w + 7) // 8 * h if n + 1 == 2 else w * h
        elif filt in (0, 2):
            size = w * h * ts
        else:
            raise RfbError(f"Tight filter {filt}")
        if size < 12:
            data = self._recv(size)
        else:
            data = self._zlib_tight[stream].decompress(self._recv(self._compact_length()))
            if len(data) != size:
                raise RfbError(f"Tight data inflates to {len(data)} bytes, not {size}")
        if not want:
            return
        if filt == 0:
            self._put(x, y, w, h, tpixels_to_rgb(data))
        elif filt == 1:
            colours = [bytes(palette[3 * i:3 * i + 3]) for i in range(len(palette) // 3)]
            out = bytearray()
            if len(colours) == 2:
                row_bytes = (w + 7) // 8
                for row in range(h):
                    packed = data[row * row_bytes:(row + 1) * row_bytes]
                    for i in range(w):
                        out += colours[(packed[i >> 3] >> (7 - (i & 7))) & 1]
            else:
                for idx in data:
                    if idx >= len(colours):
                        raise RfbError("Tight palette index out of range")
                    out += colours[idx]
            self._put(x, y, w, h, out)
        elif tight_rgb:
            self._put(x, y, w, h, self._tight_gradient(data, w, h, (255, 255, 255)))
        else:
            # Full-size TPIXELs: the filter works on the pixel format's channel values and maxima.
            order = "big" if pf.big_endian else "little"
            maxes = (pf.red_max, pf.green_max, pf.blue_max)
            chans = bytearray()
            for i in range(w * h):
                v = int.from_bytes(data[i * ts:(i + 1) * ts], order)
                chans += bytes(((v >> pf.red_shift) & pf.red_max, (v >> pf.green_shift) & pf.green_max,
                                (v >> pf.blue_shift) & pf.blue_max))
            if max(maxes) > 255:
                raise RfbError("Tight gradient filter with channels wider than 8 bits")
            values = self._tight_gradient(chans, w, h, maxes)
            for i in range(0, len(values), 3):
                for c in range(3):
                    values[i + c] = values[i + c] * 255 // maxes[c] if maxes[c] else 0
            self._put(x, y, w, h, values)

    @staticmethod
    def _tight_gradient(diffs, w, h, maxes):
        """Undoes the gradient filter on channel values: each was sent as its difference (modulo max + 1) from
        left + above - above-left clamped to 0..max, with zeros outside the rectangle."""
        out = bytearray(3 * w * h)
        prev = bytearray(3 * w)
        for row in range(h):
            cur = bytearray(3 * w)
            base = row * 3 * w
            for i in range(3 * w):
                mx = maxes[i % 3]
                left = cur[i - 3] if i >= 3 else 0
                upleft = prev[i - 3] if i >= 3 else 0
                p = left + prev[i] - upleft
                p = 0 if p < 0 else mx if p > mx else p
                cur[i] = (p + diffs[base + i]) % (mx + 1)
            out[base:base + 3 * w] = cur
            prev = cur
        return out
