"""The spikefold host link: a small framed byte protocol over the board's UART.

This module is the one definition of the protocol; the gateware (``hdl/host_link.py``) and
the host driver (``boards/host.py``) both take their constants and layouts from here.

Frame (both directions)::

    SYNC (0xA5) | CMD (1 byte) | LEN (u16 LE) | PAYLOAD (LEN bytes) | CRC (u16 LE)

``CRC`` is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected; Python's
``binascii.crc_hqx(data, 0xFFFF)``) over CMD, LEN and PAYLOAD. A reply carries the
request's command with bit 7 set; an error reply has command ``0xEE`` and the payload
``code, request command``.

Integer fields are little-endian in ``ceil(width / 8)`` bytes; signed fields are
sign-extended. Widths come from the core: ``Bc, Bm, Bth, Ba`` (current, membrane, threshold,
scale bits), ``tw, nw, cw, bw`` (timestep, neuron index, channel, beat index widths, each
``max(1, ceil(log2 count))``: the field widths of :mod:`hdl.lif_array`'s payload layouts),
``P`` lanes.

==========  =====  ==============================================  =========================
command     code   request payload                                 reply payload
==========  =====  ==============================================  =========================
STATUS      0x01   none                                            :data:`STATUS_FIELDS`
CLEAR       0x02   none (start a new sample: timestep 0, v = 0)    none
LOAD_THR    0x03   records ``index (nw) | theta (Bth, signed) |    none
                   compare (1 byte: 0 GT, 1 LT, 2 NEVER, 3 ALWAYS)``
LOAD_AFF    0x04   records ``t (tw) | channel (cw) | a (Ba, s) |    none
                   b (Bm, s)`` (only with the affine stage)
RUN         0x05   beats: ``P * Bc`` bits of packed lane currents   per beat ``spikes (P bits)
                   (lane p at bits p*Bc..), ``ceil(P*Bc/8)`` bytes  | t (tw) | beat (bw)``
RUN_V       0x06   as RUN                                          per beat ``spikes | P x
                                                                   membrane (Bm, s) | t |
                                                                   beat`` (needs readback)
==========  =====  ==============================================  =========================

A RUN frame carries any whole number of beats up to the device's buffer (beats continue
across frames and timesteps exactly as on the array's stream: beat k of timestep t is
neurons k*P .. k*P+P-1). The device answers each request with exactly one reply frame.

Errors (code, meaning). Every request is received completely and checked before anything
is applied, so an erroneous frame changes no state:

* 1 FRAMING: a UART stop bit was low, or a byte other than SYNC arrived where a frame must
  start;
* 2 BAD_LENGTH: LEN larger than the buffer, not a whole number of records, or not 0 for a
  command without payload;
* 3 UNKNOWN_COMMAND (also LOAD_AFF without the affine stage, RUN_V without readback);
* 4 BAD_CHECKSUM;
* 5 TIMEOUT: a frame stopped for :data:`TIMEOUT_BYTES` byte times;
* 6 BAD_VALUE: a record field is out of range (index >= N, t >= T, channel >= channels, a
  value that does not fit its format, compare > 3); no record of the frame is applied.

After any error the device drops bytes silently until a SYNC starts a frame or the line
has been quiet for :data:`TIMEOUT_BYTES` byte times (then a stray byte is an error again).
After an error the host waits one timeout and sends again (:meth:`HostLink.resync`). One
request is outstanding at a time: bytes arriving while the device executes a request or
sends a reply are dropped and counted (``dropped`` in STATUS).
"""

from __future__ import annotations

import binascii
import enum
import math
import struct
from dataclasses import dataclass

import numpy as np

from golden.core import CoreConfig

__all__ = ["SYNC", "ERROR_REPLY", "Command", "ErrorCode", "TIMEOUT_BYTES", "PROTOCOL_VERSION",
           "STATUS_FIELDS", "crc16", "encode_frame", "FrameDecoder", "Frame", "LinkLayout",
           "ProtocolError", "DeviceError", "nbytes", "ceil_log2"]

SYNC = 0xA5
ERROR_REPLY = 0xEE
REPLY_BIT = 0x80
PROTOCOL_VERSION = 1
#: Byte times of silence after which the device abandons a half-received frame.
TIMEOUT_BYTES = 64
#: Largest LEN a frame can carry.
MAX_PAYLOAD = 0xFFFF


class Command(enum.IntEnum):
    STATUS = 0x01
    CLEAR = 0x02
    LOAD_THR = 0x03
    LOAD_AFF = 0x04
    RUN = 0x05
    RUN_V = 0x06


class ErrorCode(enum.IntEnum):
    FRAMING = 1
    BAD_LENGTH = 2
    UNKNOWN_COMMAND = 3
    BAD_CHECKSUM = 4
    TIMEOUT = 5
    BAD_VALUE = 6


#: STATUS reply payload: (name, struct format); little-endian, 26 bytes in total.
STATUS_FIELDS = (
    ("version", "B"), ("flags", "B"), ("lanes", "H"), ("neurons", "I"), ("T", "H"),
    ("current_bits", "B"), ("membrane_bits", "B"), ("threshold_bits", "B"),
    ("scale_bits", "B"), ("channels", "H"), ("buffer_bytes", "H"), ("latency", "B"),
    ("last_error", "B"), ("t", "H"), ("errors", "H"), ("dropped", "H"),
)
STATUS_FORMAT = "<" + "".join(f for _, f in STATUS_FIELDS)
STATUS_BYTES = struct.calcsize(STATUS_FORMAT)
#: Bits of STATUS ``flags``.
FLAG_AFFINE = 1
FLAG_READBACK = 2


class ProtocolError(RuntimeError):
    """The byte stream does not hold the frame the host expected."""


class DeviceError(RuntimeError):
    """The device answered with an error frame."""

    def __init__(self, code, command):
        self.code = code
        self.command = command
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"code {code}"
        super().__init__(f"device reported {name} for command 0x{command:02x}")


def ceil_log2(n):
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def nbytes(bits):
    """Bytes of a field of ``bits`` bits."""
    return max(1, -(-bits // 8))


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of ``data``."""
    return binascii.crc_hqx(bytes(data), crc)


def crc16_byte_bits(crc_bits, byte_bits):
    """One byte of the CRC as XOR equations: used by the gateware, checked against crc16.

    ``crc_bits``/``byte_bits`` are lists of items supporting ``^`` (bit 0 first); returns
    the new 16 CRC bits.
    """
    crc = list(crc_bits)
    for i in range(7, -1, -1):                       # MSB of the byte first
        fb = crc[15] ^ byte_bits[i]
        crc = [fb] + crc[:15]
        crc[5] = crc[5] ^ fb
        crc[12] = crc[12] ^ fb
    return crc


def encode_frame(command, payload=b""):
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    body = bytes([command]) + struct.pack("<H", len(payload)) + payload
    return bytes([SYNC]) + body + struct.pack("<H", crc16(body))


@dataclass
class Frame:
    command: int
    payload: bytes

    def check_error(self):
        if self.command == ERROR_REPLY:
            code, cmd = (self.payload + b"\0\0")[:2]
            raise DeviceError(code, cmd)
        return self


class FrameDecoder:
    """Incremental decoder of frames from a byte stream (host side).

    :meth:`feed` returns the frames completed by the bytes given. Bytes before a SYNC are
    skipped and counted in ``skipped``; a frame with a wrong CRC raises ProtocolError.
    """

    def __init__(self):
        self._buf = bytearray()
        self.skipped = 0

    def feed(self, data):
        self._buf += bytes(data)
        frames = []
        while True:
            start = self._buf.find(bytes([SYNC]))
            if start < 0:
                self.skipped += len(self._buf)
                self._buf.clear()
                return frames
            if start:
                self.skipped += start
                del self._buf[:start]
            if len(self._buf) < 4:
                return frames
            length = struct.unpack_from("<H", self._buf, 2)[0]
            if len(self._buf) < 6 + length:
                return frames
            body = bytes(self._buf[1:4 + length])
            (crc,) = struct.unpack_from("<H", self._buf, 4 + length)
            del self._buf[:6 + length]
            if crc != crc16(body):
                raise ProtocolError(
                    f"reply frame 0x{body[0]:02x} has CRC 0x{crc:04x}, expected "
                    f"0x{crc16(body):04x}")
            frames.append(Frame(body[0], body[3:]))

    def pending(self):
        return len(self._buf)


def _pack_int(value, nb, signed):
    return int(value).to_bytes(nb, "little", signed=signed)


@dataclass(frozen=True)
class LinkLayout:
    """Byte layouts of one device's records (what both sides derive from the core).

    Parameters
    ----------
    config : CoreConfig
    lanes : int
    buffer_bytes : int
        The device's request buffer (largest LEN it accepts).
    readback : bool
        Whether RUN_V (membrane read-back) is built in.
    latency : int
        The array's pipeline latency (reported by STATUS only).
    """

    config: CoreConfig
    lanes: int
    buffer_bytes: int = 512
    readback: bool = True
    latency: int = 0

    def __post_init__(self):
        if not isinstance(self.config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, not {type(self.config).__name__}")
        if not isinstance(self.lanes, int) or self.lanes < 1:
            raise ValueError(f"lanes must be a positive integer, not {self.lanes!r}")
        for name, value, limit in (("buffer_bytes", self.buffer_bytes, MAX_PAYLOAD),):
            if not isinstance(value, int) or not 1 <= value <= limit:
                raise ValueError(f"{name} must be an integer in 1..{limit}, not {value!r}")
        if self.buffer_bytes < max(self.beat_bytes, self.threshold_record_bytes,
                                   self.affine_record_bytes):
            raise ValueError(
                f"buffer_bytes = {self.buffer_bytes} cannot hold one record (a beat is "
                f"{self.beat_bytes} bytes)")
        if self.max_beats * self.out_record_bytes(True) > MAX_PAYLOAD:
            raise ValueError(
                f"buffer_bytes = {self.buffer_bytes} allows {self.max_beats} beats per frame, "
                f"whose reply would exceed {MAX_PAYLOAD} bytes")

    # -- widths (the field widths of hdl.lif_array's payload layouts) ---------------------

    @property
    def beats_per_step(self):
        return -(-self.config.neurons // self.lanes)

    @property
    def tw(self):
        return max(1, ceil_log2(self.config.T))

    @property
    def nw(self):
        return max(1, ceil_log2(self.config.neurons))

    @property
    def cw(self):
        return max(1, ceil_log2(self.config.channels))

    @property
    def bw(self):
        return max(1, ceil_log2(self.beats_per_step))

    # -- record sizes ---------------------------------------------------------------------

    @property
    def beat_bits(self):
        return self.lanes * self.config.current.bits

    @property
    def beat_bytes(self):
        return nbytes(self.beat_bits)

    @property
    def max_beats(self):
        return self.buffer_bytes // self.beat_bytes

    @property
    def threshold_fields(self):
        """(name, bytes, signed) of a LOAD_THR record."""
        return (("index", nbytes(self.nw), False),
                ("theta", nbytes(self.config.threshold.bits), True),
                ("compare", 1, False))

    @property
    def affine_fields(self):
        return (("t", nbytes(self.tw), False), ("channel", nbytes(self.cw), False),
                ("a", nbytes(self.config.scale.bits), True),
                ("b", nbytes(self.config.membrane.bits), True))

    @property
    def threshold_record_bytes(self):
        return sum(nb for _, nb, _ in self.threshold_fields)

    @property
    def affine_record_bytes(self):
        return sum(nb for _, nb, _ in self.affine_fields) if self.config.affine else 0

    def out_fields(self, membrane):
        """(name, bytes, count, signed) of one reply record of RUN (or RUN_V)."""
        fields = [("spikes", nbytes(self.lanes), 1, False)]
        if membrane:
            fields.append(("membrane", nbytes(self.config.membrane.bits), self.lanes, True))
        fields += [("t", nbytes(self.tw), 1, False), ("beat", nbytes(self.bw), 1, False)]
        return tuple(fields)

    def out_record_bytes(self, membrane):
        return sum(nb * count for _, nb, count, _ in self.out_fields(membrane))

    @property
    def flags(self):
        return (FLAG_AFFINE if self.config.affine else 0) | (FLAG_READBACK if self.readback else 0)

    def status_constants(self):
        """The STATUS fields fixed at build time."""
        cfg = self.config
        return {
            "version": PROTOCOL_VERSION, "flags": self.flags, "lanes": self.lanes,
            "neurons": cfg.neurons, "T": cfg.T, "current_bits": cfg.current.bits,
            "membrane_bits": cfg.membrane.bits, "threshold_bits": cfg.threshold.bits,
            "scale_bits": cfg.scale.bits, "channels": cfg.channels,
            "buffer_bytes": self.buffer_bytes, "latency": self.latency,
        }

    # -- host side encoders / decoders ----------------------------------------------------

    def pack_beats(self, currents_q):
        """Currents ``(S, N)`` -> one ``bytes`` per beat (``S * beats_per_step`` of them)."""
        from golden.core import to_beats
        cfg = self.config
        currents_q = np.asarray(currents_q)
        if currents_q.ndim != 2 or currents_q.shape[1] != cfg.neurons:
            raise ValueError(
                f"currents_q must have shape (steps, {cfg.neurons}), not {currents_q.shape}")
        if not np.issubdtype(currents_q.dtype, np.integer):
            raise ValueError(f"currents_q must hold integers, not {currents_q.dtype}")
        bad = cfg.current.overflows(currents_q)
        if np.any(bad):
            s, i = (int(x) for x in np.argwhere(bad)[0])
            raise ValueError(
                f"currents_q[{s}, {i}] = {int(currents_q[s, i])} does not fit the current "
                f"format {cfg.current}")
        bc = cfg.current.bits
        mask = (1 << bc) - 1
        out = []
        for beat in to_beats(currents_q.astype(np.int64), self.lanes):
            word = 0
            for p, value in enumerate(beat):
                word |= (int(value) & mask) << (p * bc)
            out.append(word.to_bytes(self.beat_bytes, "little"))
        return out

    def unpack_records(self, payload, membrane):
        """Reply payload of RUN/RUN_V -> (spikes (K, P) bool, membrane (K, P) or None,
        t (K,), beat (K,))."""
        rb = self.out_record_bytes(membrane)
        if len(payload) % rb:
            raise ProtocolError(
                f"RUN reply of {len(payload)} bytes is not a whole number of {rb}-byte records")
        k = len(payload) // rb
        spikes = np.zeros((k, self.lanes), dtype=bool)
        mem = np.zeros((k, self.lanes), dtype=np.int64) if membrane else None
        t = np.zeros(k, dtype=np.int64)
        beat = np.zeros(k, dtype=np.int64)
        for r in range(k):
            rec = payload[r * rb:(r + 1) * rb]
            pos = 0
            for name, nb, count, signed in self.out_fields(membrane):
                for j in range(count):
                    v = int.from_bytes(rec[pos:pos + nb], "little", signed=signed)
                    pos += nb
                    if name == "spikes":
                        spikes[r] = [(v >> p) & 1 for p in range(self.lanes)]
                    elif name == "membrane":
                        mem[r, j] = v
                    elif name == "t":
                        t[r] = v
                    else:
                        beat[r] = v
        return spikes, mem, t, beat

    def pack_thresholds(self, index, theta_q, compare):
        """LOAD_THR records (no range check: the device checks, the driver checks first)."""
        out = bytearray()
        for i, th, c in zip(index, theta_q, compare):
            for (name, nb, signed), v in zip(self.threshold_fields, (i, th, c)):
                out += _pack_int(v, nb, signed)
        return bytes(out)

    def pack_affine(self, t, channel, a_q, b_q):
        out = bytearray()
        for rec in zip(t, channel, a_q, b_q):
            for (name, nb, signed), v in zip(self.affine_fields, rec):
                out += _pack_int(v, nb, signed)
        return bytes(out)


def parse_status(payload):
    if len(payload) != STATUS_BYTES:
        raise ProtocolError(f"STATUS reply has {len(payload)} bytes, expected {STATUS_BYTES}")
    values = struct.unpack(STATUS_FORMAT, payload)
    return dict(zip((n for n, _ in STATUS_FIELDS), values))


def status_bytes(values):
    """Pack a STATUS dict (used by tests and the gateware's constant table)."""
    return struct.pack(STATUS_FORMAT, *(int(values[n]) for n, _ in STATUS_FIELDS))
