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

A *network* device (:class:`hdl.host_link.NetworkLink`: a whole
:class:`hdl.network.SpikingNetwork` behind the UART) answers these instead (a device of
one kind answers the other kind's commands with UNKNOWN_COMMAND):

===============  =====  ======================================  ============================
command          code   request payload                         reply payload
===============  =====  ======================================  ============================
NET_STATUS       0x10   none                                    :data:`NET_STATUS_FIELDS`
CLASSIFY         0x11   images: ``n_in`` pixels ``x_q`` each,   per image ``sample (u16) |
                        ``ceil(Bx / 8)`` bytes per pixel        label | classes x logit_q
                        (signed, pixel ``j`` of the flattened   (signed)``
                        input), any whole number of images up
                        to the buffer
CLASSIFY_COUNTS  0x12   as CLASSIFY                             as CLASSIFY, then one spike
                                                                count per LIF layer (needs
                                                                the counters, FLAG_COUNTS)
LOAD_WEIGHTS     0x13   ``layer (1 byte) | address (u24) |      ``layer (1 byte) | next
                        words``: one or more weight words,      address (u24)``: the address
                        ``ceil(width / 8)`` bytes each, for     after the last word written
                        ``address, address + 1, ...``           (needs FLAG_LOAD_WEIGHTS)
===============  =====  ======================================  ============================

LOAD_WEIGHTS writes the weight memory of the dense stage of integer stage ``layer``
(``network.layers[layer]``): word ``a`` is :func:`hdl.dense.weight_memory_words`'s
``a``-th (``width = P * Bw`` bits, the ``P`` weights ``W_q[k*P + p, j]`` of word ``a = k *
n_in + j``, lane ``p`` at bits ``p*Bw``, two's complement), ``B * n_in`` words per layer
(:attr:`hdl.network.SpikingNetwork.weight_memories`). Weights in iCE40 SPRAM have no
initial contents in the bitstream: a board whose ``build.json`` places weights in SPRAM
computes nothing meaningful until the host has written every word of those layers.
The device does not track what was written; the host driver loads them before its first
classification (:meth:`boards.host.NetworkHost.load_weights`, ``spikefold run``).
Weights in block RAM keep their bitstream contents until overwritten. Write only between
classifications (one request at a time guarantees it).

``sample`` is the device's running count of classified images (mod 2**16, from 0 after
reset; NET_STATUS ``samples`` is the next one), so a reply cannot be mistaken for another
request's. ``label`` (``ceil(log2 classes)`` bits) and ``logit_q`` are
:class:`golden.network.IntegerResult`'s ``predict()`` and ``logits_q``; a spike count is
the number of spikes layer ``l`` emitted for the image over its ``T`` timesteps and all
its neurons. NET_STATUS ``flags``: bit 0 FLAG_COUNTS (CLASSIFY_COUNTS built in), bit 1
FLAG_LOAD_WEIGHTS (LOAD_WEIGHTS built in). The images of a frame are classified one after
the other. ``fingerprint`` in NET_STATUS is :func:`network_fingerprint` of the integer
network the device was built for.

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
  value that does not fit its format, compare > 3; a pixel outside the input format's
  ``Bx`` bits); no record of the frame is applied;
* 7 IMAGE_SIZE: a CLASSIFY payload that is not a whole number of images;
* 8 BAD_LAYER: LOAD_WEIGHTS for a layer without a loadable weight memory;
* 9 BAD_ADDRESS: LOAD_WEIGHTS words past the layer's last word (``address + words >
  B * n_in``).

The checks come in this order: unknown command and LEN (at the header, LEN 0 or above
the buffer is BAD_LENGTH; LOAD_WEIGHTS: LEN below 5), then after the whole frame CRC,
then the record or image size (LOAD_WEIGHTS: the layer, then a whole number of its words,
else BAD_LENGTH, then the address range), then values (LOAD_WEIGHTS: a word's bits at and
above ``width`` must be 0, else BAD_VALUE).

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
           "STATUS_FIELDS", "NET_STATUS_FIELDS", "FLAG_LOAD_WEIGHTS", "WEIGHT_HEADER_BYTES",
           "weight_frames", "crc16", "encode_frame", "FrameDecoder",
           "Frame", "LinkLayout", "NetworkLayout", "network_fingerprint", "ProtocolError",
           "DeviceError", "nbytes", "ceil_log2"]

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
    NET_STATUS = 0x10
    CLASSIFY = 0x11
    CLASSIFY_COUNTS = 0x12
    LOAD_WEIGHTS = 0x13


class ErrorCode(enum.IntEnum):
    FRAMING = 1
    BAD_LENGTH = 2
    UNKNOWN_COMMAND = 3
    BAD_CHECKSUM = 4
    TIMEOUT = 5
    BAD_VALUE = 6
    IMAGE_SIZE = 7
    BAD_LAYER = 8
    BAD_ADDRESS = 9


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

#: NET_STATUS reply payload: (name, struct format); little-endian, 24 bytes in total.
NET_STATUS_FIELDS = (
    ("version", "B"), ("flags", "B"), ("inputs", "H"), ("input_bits", "B"),
    ("classes", "B"), ("logit_bits", "B"), ("T", "H"), ("layers", "B"), ("count_bits", "B"),
    ("buffer_bytes", "H"), ("fingerprint", "I"), ("last_error", "B"), ("errors", "H"),
    ("dropped", "H"), ("samples", "H"),
)
NET_STATUS_FORMAT = "<" + "".join(f for _, f in NET_STATUS_FIELDS)
NET_STATUS_BYTES = struct.calcsize(NET_STATUS_FORMAT)
#: Bits of NET_STATUS ``flags``.
FLAG_COUNTS = 1
FLAG_LOAD_WEIGHTS = 2
#: LOAD_WEIGHTS payload bytes before the words (layer, u24 address).
WEIGHT_HEADER_BYTES = 4


def weight_frames(layer, words, width, max_payload, start=0):
    """LOAD_WEIGHTS payloads writing ``words`` (unsigned ints of ``width`` bits) at
    ``start, start + 1, ...`` of ``layer``'s weight memory, each at most ``max_payload``
    bytes: ``[(address, word count, payload)]``."""
    nb = nbytes(width)
    per = (max_payload - WEIGHT_HEADER_BYTES) // nb
    if per < 1:
        raise ValueError(f"a {max_payload}-byte payload cannot hold one {width}-bit weight "
                         f"word after the {WEIGHT_HEADER_BYTES}-byte header")
    if not 0 <= int(layer) <= 255:
        raise ValueError(f"layer must be in 0..255, not {layer!r}")
    words = [int(w) for w in words]
    for a, w in enumerate(words):
        if not 0 <= w < 1 << width:
            raise ValueError(f"weight word {start + a} = {w} does not fit {width} bits")
    if start + len(words) > 1 << 24:
        raise ValueError(f"{start + len(words)} words exceed the 24-bit address")
    out = []
    for i in range(0, len(words), per):
        chunk = words[i:i + per]
        payload = bytes([int(layer)]) + (start + i).to_bytes(3, "little") + b"".join(
            w.to_bytes(nb, "little") for w in chunk)
        out.append((start + i, len(chunk), payload))
    return out


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


# -- network devices ----------------------------------------------------------------------

def _fingerprint_items(obj, out):
    """Feed a canonical byte form of ``obj`` (arrays, dataclasses, scalars) to ``out``."""
    import dataclasses
    if isinstance(obj, np.ndarray):
        out(f"a{obj.dtype.kind}{obj.shape}".encode())
        out(np.ascontiguousarray(obj.astype(np.int64) if obj.dtype.kind in "biu"
                                 else obj.astype(np.float64)).tobytes())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out(type(obj).__name__.encode())
        for f in dataclasses.fields(obj):
            out(f.name.encode())
            _fingerprint_items(getattr(obj, f.name), out)
    elif isinstance(obj, (list, tuple)):
        out(f"l{len(obj)}".encode())
        for item in obj:
            _fingerprint_items(item, out)
    elif isinstance(obj, dict):
        out(f"d{len(obj)}".encode())
        for key in sorted(obj, key=str):
            out(str(key).encode())
            _fingerprint_items(obj[key], out)
    elif obj is None or isinstance(obj, (bool, int, float, str, np.generic)):
        out(repr(obj.item() if isinstance(obj, np.generic) else obj).encode())
    else:
        # Layers and tables that are not dataclasses: their public attributes.
        out(type(obj).__name__.encode())
        _fingerprint_items({k: v for k, v in vars(obj).items() if not k.startswith("_")}, out)


def network_fingerprint(network):
    """CRC-32 of everything that decides an :class:`golden.network.IntegerNetwork`'s
    integers (weights, biases, formats, thresholds, tables, T): NET_STATUS reports it so a
    host can tell which network a board was built for."""
    import zlib
    crc = [0]

    def out(data):
        crc[0] = zlib.crc32(data, crc[0])
    _fingerprint_items(network.input_format, out)
    _fingerprint_items(int(network.T), out)
    _fingerprint_items(list(network.layers), out)
    return crc[0] & 0xFFFFFFFF


@dataclass(frozen=True)
class NetworkLayout:
    """Byte layouts of a network device's CLASSIFY records (what both sides derive).

    Parameters
    ----------
    inputs : int
        ``n_in``: pixels per image (the flattened input).
    input_bits : int
        ``Bx`` of the input format.
    classes : int
    logit_bits : int
    T : int
    layer_neurons : tuple of int
        Neurons of each LIF layer (in network order), the spike counters.
    buffer_bytes : int
        Largest CLASSIFY payload.
    counts : bool
        Whether CLASSIFY_COUNTS (the spike counters) is built in.
    fingerprint : int
        :func:`network_fingerprint` of the network.
    """

    inputs: int
    input_bits: int
    classes: int
    logit_bits: int
    T: int
    layer_neurons: tuple = ()
    buffer_bytes: int = 512
    counts: bool = True
    fingerprint: int = 0

    def __post_init__(self):
        for name in ("inputs", "input_bits", "classes", "logit_bits", "T"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.classes > 255:
            raise ValueError(f"classes must be at most 255 (one NET_STATUS byte), not "
                             f"{self.classes}")
        if not isinstance(self.buffer_bytes, int) or not 1 <= self.buffer_bytes <= MAX_PAYLOAD:
            raise ValueError(f"buffer_bytes must be an integer in 1..{MAX_PAYLOAD}, not "
                             f"{self.buffer_bytes!r}")
        if self.buffer_bytes < self.image_bytes:
            raise ValueError(f"buffer_bytes = {self.buffer_bytes} cannot hold one image of "
                             f"{self.image_bytes} bytes ({self.inputs} pixels)")
        if self.max_images * self.record_bytes(True) > MAX_PAYLOAD:
            raise ValueError(f"buffer_bytes = {self.buffer_bytes} allows {self.max_images} "
                             f"images per frame, whose reply would exceed {MAX_PAYLOAD} bytes")

    @classmethod
    def for_network(cls, network, *, buffer_bytes=None, counts=True):
        """The layout of ``network`` (an IntegerNetwork); ``buffer_bytes`` defaults to the
        larger of 512 and one image."""
        inputs = int(np.prod(network.input_shape))
        nb = nbytes(network.input_format.bits)
        if buffer_bytes is None:
            buffer_bytes = max(512, inputs * nb)
        neurons = tuple(int(layer.config.neurons) for layer in network.layers
                        if getattr(layer, "config", None) is not None
                        and not getattr(layer, "readout", False))
        return cls(inputs, network.input_format.bits, int(network.layers[-1].n_out),
                   network.logit_bits, network.T, neurons, buffer_bytes, bool(counts),
                   network_fingerprint(network))

    # -- sizes ----------------------------------------------------------------------------

    @property
    def pixel_bytes(self):
        return nbytes(self.input_bits)

    @property
    def image_bytes(self):
        return self.inputs * self.pixel_bytes

    @property
    def max_images(self):
        return self.buffer_bytes // self.image_bytes

    @property
    def label_bits(self):
        return max(1, ceil_log2(self.classes))

    @property
    def count_bits(self):
        """Width of a spike counter: holds ``T * neurons`` of the largest layer."""
        most = max(self.layer_neurons, default=1)
        return max(1, (self.T * most).bit_length())

    def record_fields(self, counts):
        """(name, bytes, count, signed) of one CLASSIFY (``counts``: _COUNTS) record."""
        fields = [("sample", 2, 1, False), ("label", nbytes(self.label_bits), 1, False),
                  ("logits", nbytes(self.logit_bits), self.classes, True)]
        if counts:
            fields.append(("counts", nbytes(self.count_bits), len(self.layer_neurons), False))
        return tuple(fields)

    def record_bytes(self, counts):
        return sum(nb * n for _, nb, n, _ in self.record_fields(counts))

    @property
    def flags(self):
        return FLAG_COUNTS if self.counts else 0

    def status_constants(self):
        """The NET_STATUS fields fixed at build time."""
        return {"version": PROTOCOL_VERSION, "flags": self.flags, "inputs": self.inputs,
                "input_bits": self.input_bits, "classes": self.classes,
                "logit_bits": self.logit_bits, "T": self.T, "layers": len(self.layer_neurons),
                "count_bits": self.count_bits, "buffer_bytes": self.buffer_bytes,
                "fingerprint": self.fingerprint}

    # -- host side ------------------------------------------------------------------------

    def pack_images(self, x_q):
        """Quantized images ``(S, n_in)`` (any trailing shape of ``n_in`` values) -> bytes
        of one CLASSIFY payload; values must fit ``Bx`` bits."""
        x_q = np.asarray(x_q)
        if x_q.ndim < 1 or (x_q.ndim == 1 and x_q.size != self.inputs):
            raise ValueError(f"images must hold {self.inputs} pixels each, not shape "
                             f"{x_q.shape}")
        x_q = x_q.reshape(len(x_q), -1) if x_q.ndim > 1 else x_q[None]
        if x_q.shape[1] != self.inputs:
            raise ValueError(f"images must hold {self.inputs} pixels each, not "
                             f"{x_q.shape[1]}")
        if not np.issubdtype(x_q.dtype, np.integer):
            raise ValueError(f"quantized images must hold integers, not {x_q.dtype}")
        lo, hi = -(1 << (self.input_bits - 1)), (1 << (self.input_bits - 1)) - 1
        bad = (x_q < lo) | (x_q > hi)
        if bad.any():
            s, j = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"image {s} pixel {j} = {int(x_q[s, j])} does not fit the "
                             f"{self.input_bits}-bit input format")
        nb = self.pixel_bytes
        return b"".join(int(v).to_bytes(nb, "little", signed=True)
                        for v in x_q.astype(np.int64).ravel())

    def unpack_results(self, payload, counts):
        """CLASSIFY reply payload -> dict of ``sample`` (K,), ``label`` (K,), ``logits``
        (K, classes) and, with ``counts``, ``counts`` (K, layers)."""
        rb = self.record_bytes(counts)
        if len(payload) % rb:
            raise ProtocolError(f"CLASSIFY reply of {len(payload)} bytes is not a whole "
                                f"number of {rb}-byte records")
        k = len(payload) // rb
        out = {name: np.zeros((k, n) if name in ("logits", "counts") else k, dtype=np.int64)
               for name, _, n, _ in self.record_fields(counts)}
        for r in range(k):
            pos = r * rb
            for name, nb, n, signed in self.record_fields(counts):
                for j in range(n):
                    v = int.from_bytes(payload[pos:pos + nb], "little", signed=signed)
                    pos += nb
                    if name in ("logits", "counts"):
                        out[name][r, j] = v
                    else:
                        out[name][r] = v
        return out


def parse_net_status(payload):
    if len(payload) != NET_STATUS_BYTES:
        raise ProtocolError(f"NET_STATUS reply has {len(payload)} bytes, expected "
                            f"{NET_STATUS_BYTES}")
    values = struct.unpack(NET_STATUS_FORMAT, payload)
    return dict(zip((n for n, _ in NET_STATUS_FIELDS), values))


def net_status_bytes(values):
    return struct.pack(NET_STATUS_FORMAT, *(int(values[n]) for n, _ in NET_STATUS_FIELDS))
