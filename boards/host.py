"""Host driver of a spikefold board: the golden model's API, over a serial link.

:class:`HostLink` speaks :mod:`hdl.protocol` over any byte stream with ``write(bytes)``
and ``read(n)`` (a ``serial.Serial``, a socket file, a test double) and offers the API of
:class:`golden.core.CoreModel`: ``run(currents_q) -> (spikes, v_pre or None)``,
``load_thresholds``, ``load_affine``, ``clear``, ``status``.

Every operation is written once as a generator of requests (:meth:`HostLink.op_run` and
friends): it yields ``(command, payload)`` and receives the reply payload. The blocking
methods drive it over the byte stream; a simulation drives the same generator with
:func:`drive_async` through a simulated UART.

Stale replies: a reply is accepted only for the request just sent. Before every request
the driver drops whatever bytes are waiting; after a timeout or a damaged reply the link is
*unsynchronised* and the next request is preceded by a STATUS probe whose reply is awaited
while every other frame (the late reply of the failed request) is dropped -- the device
answers in order, so once the probe's reply is in nothing older can follow. Every RUN
record is checked against the request: one record per beat sent, ``(t, beat)`` exactly the
beats sent (from the position the driver tracks: after ``clear`` beat 0 of timestep 0),
no spike bits in lanes that do not exist and membranes inside their format. A failed RUN
leaves the device at an unknown beat: ``run`` then refuses until ``clear``.

Example::

    link = HostLink.open("/dev/ttyUSB1", baudrate=115200)
    link.load_thresholds(range(N), theta_q, compare)
    spikes, v_pre = link.run(currents_q, membrane=True)

:class:`NetworkHost` drives a network device (CLASSIFY) the same way and returns what
:class:`golden.network.IntegerNetwork` returns for the images: ``classify(x)`` ->
:class:`Classification` (labels, ``logits_q``, optionally per-layer spike counts). Every
record is checked against the request (:func:`check_results`): one per image sent, the
device's running sample numbers exactly the ones the request must get, the label the
argmax of the logits (ties to the lowest index), logits inside their width, counts at
most ``T`` x the layer's neurons. Opened with the network, it refuses a board built for
another network (NET_STATUS ``fingerprint``). :class:`NetworkDeviceModel` is the device
side in Python (golden behind it) and :class:`FakeSerialDevice` serves a device model on
a pseudo-terminal, as a USB-serial adapter would (tests; ``spikefold run`` without a
board)::

    host = NetworkHost.open("/dev/ttyUSB1", network=inet)
    result = host.classify(x)              # == inet.run(x).predict(), .logits_q

Weights in SPRAM (an iCE40 UltraPlus build; ``build.json``'s ``memory`` says ``"spram"``)
have no contents after configuration. :meth:`NetworkHost.load_weights` writes every word
of those layers (LOAD_WEIGHTS frames, the packing :func:`hdl.dense.weight_memory_words`
gives the memories' initial contents); opened with ``preload=`` (the SPRAM layers, see
:func:`spram_layers`) the host does it before its first classification. The device does
not refuse to classify unloaded weights: the host always loads first::

    host = NetworkHost.open(port, inet, mapping=mapping, preload=spram_layers(info))
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from golden.core import CoreConfig
from golden.fixed import Fixed

from hdl.protocol import (ERROR_REPLY, FLAG_AFFINE, FLAG_COUNTS, FLAG_LOAD_WEIGHTS,
                          FLAG_READBACK, REPLY_BIT, TIMEOUT_BYTES, WEIGHT_HEADER_BYTES,
                          Command, DeviceError, ErrorCode, FrameDecoder, LinkLayout,
                          NetworkLayout, ProtocolError, encode_frame, nbytes,
                          net_status_bytes, parse_net_status, parse_status, weight_frames)

__all__ = ["HostLink", "NetworkHost", "Classification", "WrongDevice", "drive_async",
           "check_records", "check_results", "NetworkDeviceModel", "FakeSerialDevice",
           "DeviceError", "ProtocolError", "weight_loads", "op_load_weights", "spram_layers"]


def _check_reply(command, frame):
    frame.check_error()
    if frame.command != command | REPLY_BIT:
        raise ProtocolError(
            f"expected a reply to command 0x{command:02x}, got frame 0x{frame.command:02x}")
    return frame.payload


def drive(op, transact):
    """Run operation generator ``op`` with ``transact(command, payload) -> reply payload``."""
    try:
        request = next(op)
        while True:
            request = op.send(transact(*request))
    except StopIteration as stop:
        return stop.value


async def drive_async(op, transact):
    """:func:`drive` with an ``async`` transact (for cocotb)."""
    try:
        request = next(op)
        while True:
            request = op.send(await transact(*request))
    except StopIteration as stop:
        return stop.value


class _FramedLink:
    """The transport both drivers share: one request outstanding, stale replies dropped.

    Subclasses name their probe (:attr:`PROBE`, a command without payload whose reply
    :meth:`_parse_probe` parses).
    """

    PROBE = Command.STATUS

    def __init__(self, stream, *, baudrate=115200, timeout=2.0):
        self.stream = stream
        self.baudrate = baudrate
        self.timeout = timeout
        self._decoder = FrameDecoder()
        self._synced = True
        self.stale_frames = 0           # frames dropped as the replies of older requests

    @staticmethod
    def _parse_probe(payload):
        return parse_status(payload)

    # -- transport ------------------------------------------------------------------------

    def _drop_waiting(self):
        """Discard the bytes already received (and any half-decoded frame)."""
        self._decoder = FrameDecoder()
        reset = getattr(self.stream, "reset_input_buffer", None)
        if reset is not None:
            reset()
        waiting = getattr(self.stream, "in_waiting", 0)
        while waiting:
            self.stream.read(waiting)
            waiting = getattr(self.stream, "in_waiting", 0)

    def _await_reply(self, command, what):
        """Frames until the reply to ``command``; with ``what == "probe"`` other frames are
        stale and dropped, else any other frame is an error."""
        deadline = time.monotonic() + self.timeout
        while True:
            waiting = getattr(self.stream, "in_waiting", 0) or 1    # pyserial: bytes ready
            frames = self._decoder.feed(self.stream.read(waiting))
            for i, frame in enumerate(frames):
                if what == "probe" and frame.command != command | REPLY_BIT:
                    self.stale_frames += 1
                    continue
                if i != len(frames) - 1 or self._decoder.pending():
                    raise ProtocolError(f"more than one frame arrived for command "
                                        f"0x{command:02x}")
                return _check_reply(command, frame)
            if time.monotonic() > deadline:
                raise ProtocolError(
                    f"no reply to command 0x{command:02x} within {self.timeout} s")

    def _probe(self):
        """Resynchronise: a probe request whose reply ends everything older."""
        self._drop_waiting()
        self.stream.write(encode_frame(self.PROBE, b""))
        st = self._parse_probe(self._await_reply(self.PROBE, "probe"))
        self._synced = True
        return st

    def transact(self, command, payload=b""):
        """Send one request and return its reply's payload.

        Raises ProtocolError (timeout, damaged or unexpected frames; the link is then
        resynchronised before the next request) or DeviceError (an error frame).
        """
        try:
            if not self._synced:
                self._probe()
            self._drop_waiting()
            self.stream.write(encode_frame(command, payload))
            return self._await_reply(command, "reply")
        except ProtocolError:
            self._synced = False
            raise

    def resync(self):
        """After an error: wait out the device's frame timeout, drop stale bytes and
        probe (returns the probe's parsed reply)."""
        time.sleep(2 * TIMEOUT_BYTES * 10 / self.baudrate)
        self._synced = False
        return self._probe()

    def close(self):
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


class HostLink(_FramedLink):
    """Blocking driver of a LIF-core device over a byte stream.

    Parameters
    ----------
    stream : object
        Has ``write(bytes)`` and ``read(n) -> bytes`` (returning fewer bytes on timeout).
    layout : LinkLayout or None
        The device's layout; ``None`` asks the device (STATUS) and builds it from the
        reply. A layout given must agree with the device.
    baudrate : int
        Only used to size :meth:`resync`'s wait.
    """

    def __init__(self, stream, layout=None, *, baudrate=115200, timeout=2.0):
        super().__init__(stream, baudrate=baudrate, timeout=timeout)
        self.position = None            # (t, beat) of the device's next beat, when known
        self.layout = layout
        st = self.status()
        if layout is None:
            self.layout = layout_from_status(st)

    @classmethod
    def open(cls, port, baudrate=115200, layout=None, timeout=2.0):
        """Open a serial port (pyserial URL or device name)."""
        return cls(_serial(port, baudrate), layout, baudrate=baudrate, timeout=timeout)

    # -- API (CoreModel's) ----------------------------------------------------------------

    def status(self):
        st = drive(op_status(), self.transact)
        if self.position is not None and st["t"] != self.position[0]:
            self.position = None
        return st

    def clear(self):
        drive(op_clear(), self.transact)
        self.position = (0, 0)

    def load_thresholds(self, index, theta_q, compare):
        return drive(op_load_thresholds(self.layout, index, theta_q, compare), self.transact)

    def load_affine(self, t, channel, a_q, b_q):
        return drive(op_load_affine(self.layout, t, channel, a_q, b_q), self.transact)

    def run(self, currents_q, membrane=False):
        """Run timesteps ``(S, N)`` (see :func:`op_run`); refuses after a failed RUN until
        :meth:`clear` (the device may have taken part of it)."""
        if self.position is None:
            st = self.status()
            if st["t"] != 0 or self.stale_frames:
                raise ProtocolError(
                    f"the device is at timestep {st['t']} after an interrupted or unknown "
                    f"history; call clear() before run()")
            self.position = (0, 0)
        start, self.position = self.position, None
        spikes, v_pre = drive(op_run(self.layout, currents_q, membrane, start=start),
                              self.transact)
        self.position = (int((start[0] + len(spikes)) % self.layout.config.T), 0)
        return spikes, v_pre


def _serial(port, baudrate):
    import serial
    return serial.serial_for_url(port, baudrate=baudrate, timeout=0.05)


def layout_from_status(st):
    """A LinkLayout able to talk to the device described by STATUS ``st``.

    The formats' fractional bits are not on the wire (the link carries integers); the
    config is filled with frac 0 and only used for widths and ranges.
    """
    config = CoreConfig(
        neurons=st["neurons"], T=st["T"], current=Fixed(st["current_bits"], 0),
        membrane=Fixed(st["membrane_bits"], 0), threshold=Fixed(st["threshold_bits"], 0),
        affine=bool(st["flags"] & FLAG_AFFINE), channels=st["channels"],
        scale=Fixed(st["scale_bits"], 0))
    return LinkLayout(config, st["lanes"], st["buffer_bytes"],
                      bool(st["flags"] & FLAG_READBACK), st["latency"])


# -- operations (generators of requests) -------------------------------------------------

def op_status():
    return parse_status((yield Command.STATUS, b""))


def op_clear():
    yield Command.CLEAR, b""


def op_load_thresholds(layout, index, theta_q, compare):
    """Write comparator entries; checks ranges first (the device checks them again)."""
    cfg = layout.config
    index = np.atleast_1d(np.asarray(index, dtype=np.int64))
    theta_q = np.atleast_1d(np.asarray(theta_q, dtype=np.int64))
    compare = np.atleast_1d(np.asarray(compare, dtype=np.int64))
    if not (index.shape == theta_q.shape == compare.shape) or index.ndim != 1:
        raise ValueError(
            f"index, theta_q and compare must be 1-D of one length, not {index.shape}, "
            f"{theta_q.shape}, {compare.shape}")
    if np.any((index < 0) | (index >= cfg.neurons)):
        raise ValueError(f"threshold index out of range 0..{cfg.neurons - 1}")
    if np.any((compare < 0) | (compare > 3)):
        raise ValueError("compare codes must be 0..3")
    from golden.quantize import ThresholdTable
    ThresholdTable(theta_q, compare).check(cfg.threshold)
    per = layout.buffer_bytes // layout.threshold_record_bytes
    for s in range(0, len(index), per):
        sl = slice(s, s + per)
        yield Command.LOAD_THR, layout.pack_thresholds(index[sl], theta_q[sl], compare[sl])


def op_load_affine(layout, t, channel, a_q, b_q):
    cfg = layout.config
    if not cfg.affine:
        raise ValueError("this device has no affine stage")
    t, channel, a_q, b_q = (np.atleast_1d(np.asarray(x, dtype=np.int64))
                            for x in (t, channel, a_q, b_q))
    if not (t.shape == channel.shape == a_q.shape == b_q.shape) or t.ndim != 1:
        raise ValueError("t, channel, a_q and b_q must be 1-D of one length")
    if np.any((t < 0) | (t >= cfg.T)):
        raise ValueError(f"affine t out of range 0..{cfg.T - 1}")
    if np.any((channel < 0) | (channel >= cfg.channels)):
        raise ValueError(f"affine channel out of range 0..{cfg.channels - 1}")
    from golden.quantize import AffineTable
    AffineTable(a_q[None, :], b_q[None, :]).check(cfg.scale, cfg.membrane)
    per = layout.buffer_bytes // layout.affine_record_bytes
    for s in range(0, len(t), per):
        sl = slice(s, s + per)
        yield Command.LOAD_AFF, layout.pack_affine(t[sl], channel[sl], a_q[sl], b_q[sl])


def check_records(layout, payload, membrane, count, start=None):
    """Check a RUN/RUN_V reply against its request of ``count`` beats starting at
    ``start = (t, beat)`` (``None``: beat 0 of whatever timestep the first record says);
    returns ``layout.unpack_records(...)``. Raises ProtocolError naming the record and
    field."""
    rb = layout.out_record_bytes(membrane)
    if len(payload) != count * rb:
        raise ProtocolError(f"sent {count} beats, the reply has {len(payload)} bytes "
                            f"(expected {count} records of {rb} bytes)")
    cfg, P, B = layout.config, layout.lanes, layout.beats_per_step
    spikes, mem, t, beat = layout.unpack_records(payload, membrane)
    spike_bytes = layout.out_fields(membrane)[0][1]
    pad = B * P - cfg.neurons            # lanes of the last beat past N
    if start is None:
        start = (int(t[0]) if count else 0, 0)
    tt, kk = start
    for r in range(count):
        raw = int.from_bytes(payload[r * rb:r * rb + spike_bytes], "little")
        if (int(t[r]), int(beat[r])) != (tt, kk):
            raise ProtocolError(f"record {r}: (t, beat) = ({int(t[r])}, {int(beat[r])}), "
                                f"the request's beat {r} is ({tt}, {kk})")
        live = P - pad if kk == B - 1 else P
        if raw >> live:
            raise ProtocolError(f"record {r}: spikes 0x{raw:x} set bits of lanes "
                                f"{live}..{8 * spike_bytes - 1}, which do not exist")
        if membrane:
            fmt = cfg.membrane
            bad = (mem[r] < fmt.min_int) | (mem[r] > fmt.max_int)
            bad[live:] |= mem[r][live:] != 0
            if bad.any():
                p = int(np.flatnonzero(bad)[0])
                raise ProtocolError(f"record {r}: membrane of lane {p} = {int(mem[r][p])} "
                                    f"is impossible (format {fmt.bits} bits)")
        kk += 1
        if kk == B:
            kk, tt = 0, (tt + 1) % cfg.T
    return spikes, mem, t, beat


def op_run(layout, currents_q, membrane=False, start=None):
    """Stream timesteps ``(S, N)``; returns ``(spikes (S, N) bool, v_pre (S, N) or None)``.

    ``start``: the device's ``(t, beat)`` before the run, when known; every record is
    checked against the beats sent (:func:`check_records`).
    """
    from golden.core import from_beats
    if membrane and not layout.readback:
        raise ValueError("this device was built without membrane read-back (RUN_V)")
    beats = layout.pack_beats(currents_q)
    command = Command.RUN_V if membrane else Command.RUN
    B, T = layout.beats_per_step, layout.config.T
    spikes, mems = [], []
    pos = start
    for s in range(0, len(beats), layout.max_beats):
        chunk = beats[s:s + layout.max_beats]
        reply = yield command, b"".join(chunk)
        if pos is None and s:
            pos = ((first_t + s // B) % T, s % B)
        sp, mem, t, beat = check_records(layout, reply, membrane, len(chunk), pos)
        if s == 0:
            first_t = int(t[0]) if len(t) else 0
        if pos is not None:
            done = pos[1] + len(chunk)
            pos = ((pos[0] + done // B) % T, done % B)
        spikes.append(sp)
        if membrane:
            mems.append(mem)
    n = layout.config.neurons
    spikes = from_beats(np.concatenate(spikes), n)
    v_pre = from_beats(np.concatenate(mems), n) if membrane else None
    return spikes, v_pre


# -- network devices -----------------------------------------------------------------------

class WrongDevice(RuntimeError):
    """The device is not the one the host was asked to drive (another network, or a
    LIF-core bitstream)."""


@dataclass
class Classification:
    """CLASSIFY results: ``labels`` (S,), ``logits_q`` (S, classes) -- golden's
    ``IntegerResult.predict()`` and ``logits_q`` -- ``spike_counts`` (S, LIF layers) or
    None, and the device's ``samples`` numbers (S,)."""

    labels: np.ndarray
    logits_q: np.ndarray
    spike_counts: np.ndarray | None
    samples: np.ndarray


def network_layout_from_status(st):
    """A NetworkLayout able to talk to the device of NET_STATUS ``st``. The layers' neuron
    counts are not on the wire: each is taken as the largest its count width holds."""
    layers, T, cb = st["layers"], st["T"], st["count_bits"]
    most = max(1, ((1 << cb) - 1) // max(1, T))
    lay = NetworkLayout(st["inputs"], st["input_bits"], st["classes"], st["logit_bits"], T,
                        (most,) * layers, st["buffer_bytes"], bool(st["flags"] & FLAG_COUNTS),
                        st["fingerprint"])
    if layers and lay.count_bits != cb:
        raise ProtocolError(f"NET_STATUS count_bits = {cb} is impossible for T = {T}")
    return lay


def op_net_status():
    return parse_net_status((yield Command.NET_STATUS, b""))


def check_results(layout, payload, counts, count, start=None):
    """Check a CLASSIFY(_COUNTS) reply against its request of ``count`` images whose
    first got the device's sample number ``start`` (``None``: whatever the first record
    says; the others must follow it); returns ``layout.unpack_results(...)``. Raises
    ProtocolError naming the record and field."""
    rb = layout.record_bytes(counts)
    if len(payload) != count * rb:
        raise ProtocolError(f"sent {count} images, the reply has {len(payload)} bytes "
                            f"(expected {count} records of {rb} bytes)")
    res = layout.unpack_results(payload, counts)
    if start is None:
        start = int(res["sample"][0]) if count else 0
    lo, hi = -(1 << (layout.logit_bits - 1)), (1 << (layout.logit_bits - 1)) - 1
    for r in range(count):
        want = (start + r) & 0xFFFF
        if int(res["sample"][r]) != want:
            raise ProtocolError(f"record {r}: sample = {int(res['sample'][r])}, the request's "
                                f"image {r} is sample {want}")
        logits, label = res["logits"][r], int(res["label"][r])
        bad = (logits < lo) | (logits > hi)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ProtocolError(f"record {r}: logit {k} = {int(logits[k])} does not fit "
                                f"{layout.logit_bits} bits")
        if label >= layout.classes:
            raise ProtocolError(f"record {r}: label = {label}, but there are "
                                f"{layout.classes} classes")
        if label != int(np.argmax(logits)):
            raise ProtocolError(f"record {r}: label = {label} is not the argmax of its logits "
                                f"{logits.tolist()} (ties go to the lowest index)")
        if counts:
            most = layout.T * np.asarray(layout.layer_neurons)
            over = res["counts"][r] > most
            if over.any():
                l = int(np.flatnonzero(over)[0])
                raise ProtocolError(f"record {r}: spike count of layer {l} = "
                                    f"{int(res['counts'][r][l])} exceeds T x neurons = "
                                    f"{int(most[l])}")
    return res


def op_classify(layout, x_q, counts=False, start=None):
    """Classify quantized images ``x_q`` (S, n_in) in frames of up to ``max_images``;
    returns a :class:`Classification`. ``start``: the device's next sample number, when
    known; every record is checked against the images sent (:func:`check_results`)."""
    if counts and not layout.counts:
        raise ValueError("this device was built without spike counters (CLASSIFY_COUNTS)")
    x_q = np.asarray(x_q)
    x_q = x_q.reshape(len(x_q), -1) if x_q.ndim > 1 else x_q.reshape(1, -1)
    command = Command.CLASSIFY_COUNTS if counts else Command.CLASSIFY
    parts = []
    pos = start
    for s in range(0, len(x_q), layout.max_images):
        chunk = x_q[s:s + layout.max_images]
        reply = yield command, layout.pack_images(chunk)
        res = check_results(layout, reply, counts, len(chunk), pos)
        pos = (int(res["sample"][0]) + len(chunk)) & 0xFFFF if len(chunk) else pos
        parts.append(res)
    if not parts:
        empty = np.zeros((0,), dtype=np.int64)
        return Classification(empty, np.zeros((0, layout.classes), dtype=np.int64),
                              np.zeros((0, len(layout.layer_neurons)), dtype=np.int64)
                              if counts else None, empty)

    def cat(name):
        return np.concatenate([p[name] for p in parts])
    return Classification(cat("label"), cat("logits"), cat("counts") if counts else None,
                          cat("sample"))


def _dense_layers(network):
    from hdl.stages import layer_kind
    return [i for i, layer in enumerate(network.layers) if layer_kind(layer) == "dense"]


def weight_loads(network, mapping=None, layers=None):
    """What LOAD_WEIGHTS writes: ``[(layer, words, width)]`` for the dense layers
    ``layers`` (default: all) of ``network`` on ``mapping`` (as
    :class:`hdl.network.SpikingNetwork` takes it): the weight memories' contents
    (:func:`hdl.dense.weight_memory_words`, ``lanes * Bw`` bits a word)."""
    from hdl.dense import weight_memory_words
    from hdl.mapping import HardwareMapping
    from hdl.stages import sized
    mapping = HardwareMapping.for_network(sized(network), mapping)
    dense = _dense_layers(network)
    if layers is None:
        layers = dense
    out = []
    for i in layers:
        if i not in dense:
            raise ValueError(f"layer {i!r} has no dense weight memory (dense layers: "
                             f"{dense})")
        layer = network.layers[i]
        P = mapping.lanes[i]
        out.append((i, weight_memory_words(layer, P), P * layer.formats.weight.bits))
    return out


def spram_layers(info):
    """The layers whose weights a build placed in SPRAM: from a ``build.json`` dict (its
    ``memory`` record) or a :func:`boards.build.network_memory` dict."""
    memory = info.get("memory", info) if isinstance(info, dict) else {}
    out = []
    for row in (memory or {}).get("memories", []):
        name = str(row.get("name", ""))
        if row.get("place") == "spram" and name.startswith("dense") \
                and name.endswith(".weights") and name[5:-8].isdigit():
            out.append(int(name[5:-8]))
    return sorted(out)


def op_load_weights(loads, max_payload):
    """Write ``loads`` (:func:`weight_loads`' rows ``(layer, words, width)``, or ``(layer,
    words, width, start)`` for words from address ``start``) in LOAD_WEIGHTS frames of at
    most ``max_payload`` bytes; every reply must name the layer and the address after the
    frame's last word. Returns the number of words written."""
    total = 0
    for layer, words, width, *start in loads:
        frames = weight_frames(layer, words, width, max_payload, *start)
        for addr, count, payload in frames:
            reply = yield Command.LOAD_WEIGHTS, payload
            if len(reply) != WEIGHT_HEADER_BYTES:
                raise ProtocolError(f"LOAD_WEIGHTS reply has {len(reply)} bytes, expected "
                                    f"{WEIGHT_HEADER_BYTES}")
            got_layer, nxt = reply[0], int.from_bytes(reply[1:4], "little")
            if (got_layer, nxt) != (layer, addr + count):
                raise ProtocolError(
                    f"LOAD_WEIGHTS reply: layer {got_layer}, next address {nxt}; the request "
                    f"wrote layer {layer} words {addr}..{addr + count - 1}")
            total += count
    return total


class NetworkHost(_FramedLink):
    """Blocking driver of a network device: ``classify(images)``.

    Parameters
    ----------
    stream : object
        Has ``write(bytes)`` and ``read(n) -> bytes``.
    network : golden.network.IntegerNetwork or None
        The network the board must run: its layout and fingerprint are checked against
        NET_STATUS (:class:`WrongDevice` otherwise) and :meth:`classify` quantizes float
        images with its input format. Without it only :meth:`classify_q` is available
        and the layout comes from NET_STATUS.
    mapping : hdl.mapping.HardwareMapping or None
        The mapping the bitstream was built with (it decides the weight words; default
        the default mapping).
    preload : sequence of int
        Layers whose weights the device holds in SPRAM (:func:`spram_layers` of the
        build): written by :meth:`load_weights` before the first classification.
    baudrate, timeout
        As :class:`HostLink`.
    """

    PROBE = Command.NET_STATUS

    def __init__(self, stream, network=None, *, mapping=None, preload=(), baudrate=115200,
                 timeout=2.0):
        super().__init__(stream, baudrate=baudrate, timeout=timeout)
        self.network = network
        self.mapping = mapping
        self.preload = tuple(int(v) for v in preload)
        if self.preload and network is None:
            raise ValueError("preload needs the network (its weights): open the host with "
                             "network=...")
        self.weights_loaded = not self.preload
        self.samples = None             # the device's next sample number, when known
        try:
            st = self.status()
        except DeviceError as exc:
            if exc.code == ErrorCode.UNKNOWN_COMMAND:
                raise WrongDevice("the device does not know NET_STATUS: it is not running a "
                                  "network host-link bitstream (a LIF-core one?)") from None
            raise
        self.layout = network_layout_from_status(st)
        self.can_load = bool(st["flags"] & FLAG_LOAD_WEIGHTS)
        if network is not None:
            want = NetworkLayout.for_network(network, buffer_bytes=st["buffer_bytes"],
                                             counts=self.layout.counts)
            for name, value in want.status_constants().items():
                if name in ("flags", "buffer_bytes"):
                    continue
                if st[name] != value:
                    what = (f"0x{st[name]:08x}, the model's is 0x{value:08x}"
                            if name == "fingerprint" else f"{st[name]}, the model's is {value}")
                    raise WrongDevice(f"the board runs another network: its {name} is {what}; "
                                      f"program the bitstream built for this model")
            self.layout = want

    @staticmethod
    def _parse_probe(payload):
        return parse_net_status(payload)

    @classmethod
    def open(cls, port, network=None, *, mapping=None, preload=(), baudrate=115200,
             timeout=2.0):
        """Open a serial port (pyserial URL or device name); closed again if the device
        is refused."""
        stream = _serial(port, baudrate)
        try:
            return cls(stream, network, mapping=mapping, preload=preload, baudrate=baudrate,
                       timeout=timeout)
        except BaseException:
            stream.close()
            raise

    def status(self):
        st = drive(op_net_status(), self.transact)
        self.samples = st["samples"]
        return st

    def load_weights(self, layers=None):
        """Write every weight word of ``layers`` (default: :attr:`preload`, or every dense
        layer without it) from the network (:func:`weight_loads`); returns the number of
        words written."""
        if self.network is None:
            raise ValueError("load_weights() needs the network: open the host with "
                             "network=...")
        if not self.can_load:
            raise WrongDevice("the board's bitstream has no LOAD_WEIGHTS (NET_STATUS flags "
                              "lack FLAG_LOAD_WEIGHTS): rebuild it with the weight load port")
        if layers is None:
            layers = self.preload or None
        loads = weight_loads(self.network, self.mapping, layers)
        words = drive(op_load_weights(loads, self.layout.buffer_bytes), self.transact)
        if set(self.preload) <= {layer for layer, _, _ in loads}:
            self.weights_loaded = True
        return words

    def classify_q(self, x_q, counts=False):
        """Classify quantized images ``x_q`` (S, n_in); returns a :class:`Classification`.
        Loads the :attr:`preload` weights first if they are not loaded yet."""
        if not self.weights_loaded:
            self.load_weights()
        if self.samples is None:
            self.status()
        start, self.samples = self.samples, None
        res = drive(op_classify(self.layout, x_q, counts, start), self.transact)
        self.samples = (start + len(res.labels)) & 0xFFFF
        return res

    def classify(self, images, counts=False):
        """Classify float images ``x`` (S, *input_shape) as ``network.run(x)`` would."""
        if self.network is None:
            raise ValueError("classify() needs the network (its input format): open the "
                             "host with network=..., or use classify_q")
        x_q, _ = self.network.quantize_input(images)
        return self.classify_q(x_q, counts)


class NetworkDeviceModel:
    """The network device in Python, golden's :class:`IntegerNetwork` behind it.

    ``handle(command, payload)`` returns the reply frame's bytes with the gateware's
    checks and error codes (:class:`hdl.host_link.NetworkLink`); ``samples``,
    ``errors`` and ``last_error`` as NET_STATUS reports them.

    With a ``mapping`` it answers LOAD_WEIGHTS for every dense layer and classifies with
    the weights its memories hold (``memories[layer]``, the words); the layers in ``empty``
    start all zero, as SPRAM after configuration.
    """

    def __init__(self, network, buffer_bytes=None, counts=True, *, mapping=None, empty=()):
        self.network = network
        self.layout = NetworkLayout.for_network(network, buffer_bytes=buffer_bytes,
                                                counts=counts)
        self.samples = self.errors = self.last_error = 0
        self.memories = {}
        self._widths = {}
        self._loaded = network
        if mapping is not None:
            from hdl.mapping import HardwareMapping
            from hdl.stages import sized
            self.mapping = HardwareMapping.for_network(sized(network), mapping)
            for layer, words, width in weight_loads(network, self.mapping):
                self.memories[layer] = [0] * len(words) if layer in empty else list(words)
                self._widths[layer] = width
            self._dirty = bool(empty)
        else:
            if empty:
                raise ValueError("empty weight memories need the mapping")
            self.mapping, self._dirty = None, False

    def handle(self, cmd, payload):
        try:
            return self._handle(cmd, payload)
        except DeviceError as exc:
            self.errors += 1
            self.last_error = exc.code
            return encode_frame(ERROR_REPLY, bytes([exc.code, cmd]))

    def _handle(self, cmd, payload):
        lay = self.layout
        known = (Command.NET_STATUS, Command.CLASSIFY) + (
            (Command.CLASSIFY_COUNTS,) if lay.counts else ()) + (
            (Command.LOAD_WEIGHTS,) if self.memories else ())
        if cmd not in known:
            raise DeviceError(ErrorCode.UNKNOWN_COMMAND, cmd)
        if cmd == Command.NET_STATUS:
            if payload:
                raise DeviceError(ErrorCode.BAD_LENGTH, cmd)
            st = dict(lay.status_constants(), last_error=self.last_error, errors=self.errors,
                      dropped=0, samples=self.samples,
                      flags=lay.flags | (FLAG_LOAD_WEIGHTS if self.memories else 0))
            return encode_frame(cmd | REPLY_BIT, net_status_bytes(st))
        if cmd == Command.LOAD_WEIGHTS:
            return self._load(cmd, payload)
        net = self._network()
        if not payload or len(payload) > lay.buffer_bytes:
            raise DeviceError(ErrorCode.BAD_LENGTH, cmd)
        if len(payload) % lay.image_bytes:
            raise DeviceError(ErrorCode.IMAGE_SIZE, cmd)
        nb = lay.pixel_bytes
        x_q = np.array([int.from_bytes(payload[i:i + nb], "little", signed=True)
                        for i in range(0, len(payload), nb)], dtype=np.int64)
        lo, hi = -(1 << (lay.input_bits - 1)), (1 << (lay.input_bits - 1)) - 1
        if np.any((x_q < lo) | (x_q > hi)):
            raise DeviceError(ErrorCode.BAD_VALUE, cmd)
        x_q = x_q.reshape((-1,) + tuple(net.input_shape))
        res = net.run(x_q / net.input_format.scale)        # exact: x_q / 2**F quantizes back
        counts = cmd == Command.CLASSIFY_COUNTS
        spikes = [s.reshape(s.shape[:2] + (-1,)).sum(axis=(0, 2)) for s in res.spikes]
        out = bytearray()
        for b in range(len(x_q)):
            values = {"sample": [self.samples], "label": [int(res.predict()[b])],
                      "logits": res.logits_q[b], "counts": [int(c[b]) for c in spikes]}
            for name, fnb, n, signed in lay.record_fields(counts):
                out += b"".join(int(v).to_bytes(fnb, "little", signed=signed)
                                for v in values[name])
            self.samples = (self.samples + 1) & 0xFFFF
        return encode_frame(cmd | REPLY_BIT, bytes(out))

    def _load(self, cmd, payload):
        """LOAD_WEIGHTS, checked in the gateware's order."""
        if len(payload) <= WEIGHT_HEADER_BYTES or len(payload) > self.layout.buffer_bytes:
            raise DeviceError(ErrorCode.BAD_LENGTH, cmd)
        layer, addr = payload[0], int.from_bytes(payload[1:4], "little")
        if layer not in self.memories:
            raise DeviceError(ErrorCode.BAD_LAYER, cmd)
        width, mem = self._widths[layer], self.memories[layer]
        nb = nbytes(width)
        body = payload[WEIGHT_HEADER_BYTES:]
        if len(body) % nb:
            raise DeviceError(ErrorCode.BAD_LENGTH, cmd)
        words = [int.from_bytes(body[i:i + nb], "little") for i in range(0, len(body), nb)]
        if addr + len(words) > len(mem):
            raise DeviceError(ErrorCode.BAD_ADDRESS, cmd)
        if any(w >> width for w in words):
            raise DeviceError(ErrorCode.BAD_VALUE, cmd)
        mem[addr:addr + len(words)] = words
        self._dirty = True
        nxt = addr + len(words)
        return encode_frame(cmd | REPLY_BIT, bytes([layer]) + nxt.to_bytes(3, "little"))

    def _network(self):
        """The network with the weights the memories hold (golden's, unless written)."""
        if not self._dirty:
            return self._loaded
        import copy
        net = copy.deepcopy(self.network)
        for i, words in self.memories.items():
            layer = net.layers[i]
            from hdl.dense import weights_from_memory_words
            n_out, n_in = layer.W_q.shape
            W = weights_from_memory_words(words, n_out, n_in, self.mapping.lanes[i],
                                          layer.formats.weight.bits)
            layer.W_q = W.astype(np.asarray(self.network.layers[i].W_q).dtype)
        self._loaded, self._dirty = net, False
        return net


class FakeSerialDevice:
    """A device model behind a pseudo-terminal: open :attr:`port` with pyserial as a
    USB-serial adapter. ``handle(command, payload) -> reply frame bytes`` answers each
    request in order; ``faults[i]`` (i = request number, from 0) changes the reply to
    request ``i``: ``("delay", seconds)``, ``("garbage", bytes)`` (sent before the
    reply), ``("replace", function(reply payload) -> payload)``, ``("drop", None)``."""

    def __init__(self, handle, faults=None):
        import os
        import threading
        self.handle = handle
        self.faults = dict(faults or {})
        self.master, self._slave = os.openpty()
        self.port = os.ttyname(self._slave)
        self.requests = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        import os
        import select
        decoder = FrameDecoder()
        while not self._stop:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            try:
                frames = decoder.feed(data)
            except ProtocolError:
                decoder = FrameDecoder()
                os.write(self.master, encode_frame(ERROR_REPLY, bytes(
                    [ErrorCode.BAD_CHECKSUM, 0])))
                continue
            for frame in frames:
                n = len(self.requests)
                self.requests.append(frame.command)
                reply = self.handle(frame.command, frame.payload)
                kind, arg = self.faults.get(n, (None, None))
                if kind == "replace":
                    body = FrameDecoder().feed(reply)[0]
                    reply = encode_frame(body.command, arg(body.payload))
                elif kind == "garbage":
                    reply = arg + reply
                elif kind == "delay":
                    time.sleep(arg)
                elif kind == "drop":
                    continue
                os.write(self.master, reply)

    def close(self):
        import os
        self._stop = True
        self._thread.join()
        os.close(self.master)
        os.close(self._slave)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
