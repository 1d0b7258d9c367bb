"""Host driver of a spikefold board: the golden model's API, over a serial link.

:class:`HostLink` speaks :mod:`hdl.protocol` over any byte stream with ``write(bytes)``
and ``read(n)`` (a ``serial.Serial``, a socket file, a test double) and offers the API of
:class:`golden.core.CoreModel`: ``run(currents_q) -> (spikes, v_pre or None)``,
``load_thresholds``, ``load_affine``, ``clear``, ``status``.

Every operation is written once as a generator of requests (:meth:`HostLink.op_run` and
friends): it yields ``(command, payload)`` and receives the reply payload. The blocking
methods drive it over the byte stream; a simulation drives the same generator with
:func:`drive_async` through a simulated UART.

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

__all__ = ["HostLink", "drive_async", "DeviceError", "ProtocolError"]


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
        self.layout = layout
        if layout is None:
            self.layout = layout_from_status(self.status())

    @classmethod
    def open(cls, port, baudrate=115200, layout=None, timeout=2.0):
        """Open a serial port (pyserial URL or device name)."""
        import serial
        s = serial.serial_for_url(port, baudrate=baudrate, timeout=0.1)
        return cls(s, layout, baudrate=baudrate, timeout=timeout)

    # -- transport ------------------------------------------------------------------------

    def transact(self, command, payload=b""):
        self.stream.write(encode_frame(command, payload))
        deadline = time.monotonic() + self.timeout
        while True:
            waiting = getattr(self.stream, "in_waiting", 0) or 1    # pyserial: bytes ready
            frames = self._decoder.feed(self.stream.read(waiting))
            if frames:
                if len(frames) > 1:
                    raise ProtocolError(f"{len(frames)} frames arrived for one request")
                return _check_reply(command, frames[0])
            if time.monotonic() > deadline:
                raise ProtocolError(
                    f"no reply to command 0x{command:02x} within {self.timeout} s")

    def resync(self):
        """After an error: wait out the device's frame timeout and drop stale bytes."""
        time.sleep(2 * TIMEOUT_BYTES * 10 / self.baudrate)
        self._decoder = FrameDecoder()
        reset = getattr(self.stream, "reset_input_buffer", None)
        if reset is not None:
            reset()

    # -- API (CoreModel's) ----------------------------------------------------------------

    def status(self):
        return drive(op_status(), self.transact)

    def clear(self):
        return drive(op_clear(), self.transact)

    def load_thresholds(self, index, theta_q, compare):
        return drive(op_load_thresholds(self.layout, index, theta_q, compare), self.transact)

    def load_affine(self, t, channel, a_q, b_q):
        return drive(op_load_affine(self.layout, t, channel, a_q, b_q), self.transact)

    def run(self, currents_q, membrane=False):
        return drive(op_run(self.layout, currents_q, membrane), self.transact)


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


def op_run(layout, currents_q, membrane=False):
    """Stream timesteps ``(S, N)``; returns ``(spikes (S, N) bool, v_pre (S, N) or None)``."""
    from golden.core import from_beats
    if membrane and not layout.readback:
        raise ValueError("this device was built without membrane read-back (RUN_V)")
    beats = layout.pack_beats(currents_q)
    command = Command.RUN_V if membrane else Command.RUN
    spikes, mems = [], []
    for s in range(0, len(beats), layout.max_beats):
        chunk = beats[s:s + layout.max_beats]
        reply = yield command, b"".join(chunk)
        sp, mem, t, beat = layout.unpack_records(reply, membrane)
        if len(sp) != len(chunk):
            raise ProtocolError(f"sent {len(chunk)} beats, got {len(sp)} records back")
        spikes.append(sp)
        if membrane:
            mems.append(mem)
    n = layout.config.neurons
    spikes = from_beats(np.concatenate(spikes), n)
    v_pre = from_beats(np.concatenate(mems), n) if membrane else None
    return spikes, v_pre
