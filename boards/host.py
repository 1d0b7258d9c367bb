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
"""

from __future__ import annotations

import time

import numpy as np

from golden.core import CoreConfig
from golden.fixed import Fixed

from hdl.protocol import (FLAG_AFFINE, FLAG_READBACK, TIMEOUT_BYTES, Command, DeviceError,
                       FrameDecoder, LinkLayout, ProtocolError, encode_frame, parse_status,
                       REPLY_BIT)

__all__ = ["HostLink", "drive_async", "check_records", "DeviceError", "ProtocolError"]


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


class HostLink:
    """Blocking driver over a byte stream.

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
        self.stream = stream
        self.baudrate = baudrate
        self.timeout = timeout
        self._decoder = FrameDecoder()
        self._synced = True
        self.stale_frames = 0           # frames dropped as the replies of older requests
        self.position = None            # (t, beat) of the device's next beat, when known
        self.layout = layout
        st = self.status()
        if layout is None:
            self.layout = layout_from_status(st)

    @classmethod
    def open(cls, port, baudrate=115200, layout=None, timeout=2.0):
        """Open a serial port (pyserial URL or device name)."""
        import serial
        s = serial.serial_for_url(port, baudrate=baudrate, timeout=0.05)
        return cls(s, layout, baudrate=baudrate, timeout=timeout)

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
        """Resynchronise: a STATUS request whose reply ends everything older."""
        self._drop_waiting()
        self.stream.write(encode_frame(Command.STATUS, b""))
        st = parse_status(self._await_reply(Command.STATUS, "probe"))
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
        probe with STATUS (returns its reply)."""
        time.sleep(2 * TIMEOUT_BYTES * 10 / self.baudrate)
        self._synced = False
        return self._probe()

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
