"""The protocol definition and the blocking host driver (over an in-memory device model)."""

import struct
import time

import numpy as np
import pytest

from boards.host import FakeSerialDevice, HostLink
from hdl.protocol import (ERROR_REPLY, REPLY_BIT, SYNC, Command, DeviceError, ErrorCode,
                             FrameDecoder, LinkLayout, ProtocolError, crc16, crc16_byte_bits,
                             encode_frame, parse_status, status_bytes)
from golden.examples import example_core, example_currents
from golden.fixed import Fixed


def test_crc16_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1           # the catalogue check value
    rng = np.random.default_rng(0)
    for _ in range(50):
        crc, byte = int(rng.integers(0, 1 << 16)), int(rng.integers(0, 256))
        bits = crc16_byte_bits([(crc >> i) & 1 for i in range(16)],
                               [(byte >> i) & 1 for i in range(8)])
        assert sum(b << i for i, b in enumerate(bits)) == crc16(bytes([byte]), crc)


def test_frame_round_trip_and_resync():
    frame = encode_frame(Command.RUN, b"\x01\xa5\x02")
    assert frame[0] == SYNC and struct.unpack("<H", frame[2:4])[0] == 3
    dec = FrameDecoder()
    frames = dec.feed(b"\x00\x17" + frame[:5]) + dec.feed(frame[5:] + frame)
    assert [(f.command, f.payload) for f in frames] == [(Command.RUN, b"\x01\xa5\x02")] * 2
    assert dec.skipped == 2
    bad = bytearray(frame)
    bad[4] ^= 1
    with pytest.raises(ProtocolError, match="CRC"):
        FrameDecoder().feed(bytes(bad))


def test_layout_sizes_and_checks():
    lay = LinkLayout(example_core(10).config, 4, 64)
    assert lay.beat_bytes == 8 and lay.max_beats == 8
    assert lay.out_record_bytes(False) == 1 + 1 + 1
    assert lay.out_record_bytes(True) == 1 + 4 * 2 + 1 + 1
    assert lay.threshold_record_bytes == 1 + 2 + 1
    with pytest.raises(ValueError, match="buffer_bytes"):
        LinkLayout(example_core(10).config, 4, 4)
    with pytest.raises(ValueError, match=r"currents_q\[0, 3\]"):
        lay.pack_beats(np.full((1, 10), 1 << 20).astype(np.int64) * (np.arange(10) == 3))


class DeviceModel:
    """The device side of the protocol in Python (CoreModel behind it): a byte stream."""

    def __init__(self, folded, lanes, buffer_bytes=64):
        self.layout = LinkLayout(folded.config, lanes, buffer_bytes, True, 3)
        self.model = folded.model()
        self.decoder = FrameDecoder()
        self.out = bytearray()
        self.errors = 0
        self.pending = []

    def write(self, data):
        for frame in self.decoder.feed(data):
            try:
                self.out += self.handle(frame.command, frame.payload)
            except DeviceError as exc:
                self.errors += 1
                self.out += encode_frame(ERROR_REPLY, bytes([exc.code, frame.command]))

    def read(self, n):
        data, self.out[:] = bytes(self.out[:n]), self.out[n:]
        return data

    def handle(self, cmd, payload):
        lay, cfg = self.layout, self.model.config
        if cmd == Command.STATUS:
            st = dict(lay.status_constants(), last_error=0, t=self.model.t,
                      errors=self.errors, dropped=0)
            return encode_frame(cmd | REPLY_BIT, status_bytes(st))
        if cmd == Command.CLEAR:
            self.model.clear()
            return encode_frame(cmd | REPLY_BIT)
        if cmd == Command.LOAD_THR:
            rb = lay.threshold_record_bytes
            if not payload or len(payload) % rb:
                raise DeviceError(ErrorCode.BAD_LENGTH, cmd)
            recs = [(int.from_bytes(payload[i:i + 1], "little"),
                     int.from_bytes(payload[i + 1:i + 3], "little", signed=True),
                     payload[i + 3]) for i in range(0, len(payload), rb)]
            if any(i >= cfg.neurons or c > 3 for i, _, c in recs):
                raise DeviceError(ErrorCode.BAD_VALUE, cmd)
            for rec in recs:
                self.model.load_thresholds(*rec)
            return encode_frame(cmd | REPLY_BIT)
        if cmd in (Command.RUN, Command.RUN_V):
            bb = lay.beat_bytes
            if not payload or len(payload) % bb or len(payload) > lay.buffer_bytes:
                raise DeviceError(ErrorCode.BAD_LENGTH, cmd)
            out = bytearray()
            bc, P = cfg.current.bits, lay.lanes
            bps = lay.beats_per_step
            for i in range(0, len(payload), bb):
                word = int.from_bytes(payload[i:i + bb], "little")
                lanes = [(word >> (p * bc)) & ((1 << bc) - 1) for p in range(P)]
                self.pending.append([v - (1 << bc) if v >> (bc - 1) else v for v in lanes])
                if len(self.pending) == bps:
                    t = self.model.t
                    cur = np.array(self.pending).reshape(-1)[:cfg.neurons]
                    r = self.model.step(cur)
                    self.pending = []
                    for k in range(bps):
                        sl = slice(k * P, min((k + 1) * P, cfg.neurons))
                        bits = sum(int(s) << p for p, s in enumerate(r.spikes[sl]))
                        out += bits.to_bytes(1, "little")
                        if cmd == Command.RUN_V:
                            vals = list(r.v_pre[sl]) + [0] * (P - len(r.v_pre[sl]))
                            out += b"".join(int(v).to_bytes(2, "little", signed=True)
                                            for v in vals)
                        out += bytes([t, k])
            return encode_frame(cmd | REPLY_BIT, bytes(out))
        raise DeviceError(ErrorCode.UNKNOWN_COMMAND, cmd)


def test_host_link_against_device_model():
    """run/load/clear/status through the blocking driver equal CoreModel.

    The model device answers a RUN only per whole timestep, so beats per frame (8) is a
    multiple of beats per step (4 lanes, 16 neurons: 4) here.
    """
    folded = example_core(16, T=3, seed=2)
    dev = DeviceModel(folded, 4, buffer_bytes=64)
    link = HostLink(dev)
    assert link.layout.lanes == 4 and link.layout.config.neurons == 16
    currents = example_currents(folded.config, 6, seed=3)
    spikes, v_pre = link.run(currents, membrane=True)
    ref = folded.model()
    ref_spikes, ref_v = ref.run(currents)
    np.testing.assert_array_equal(v_pre, ref_v)
    np.testing.assert_array_equal(spikes, ref_spikes)
    link.load_thresholds([1, 2], [100, -100], [1, 3])
    ref.load_thresholds([1, 2], [100, -100], [1, 3])
    link.clear()
    ref.clear()
    spikes, none = link.run(currents[:3])
    assert none is None
    np.testing.assert_array_equal(spikes, ref.run(currents[:3])[0])
    assert link.status()["t"] == ref.t
    with pytest.raises(ValueError, match="index out of range"):
        link.load_thresholds([16], [0], [0])
    with pytest.raises(DeviceError, match="UNKNOWN_COMMAND"):
        link.transact(0x77)
    assert parse_status(link.transact(Command.STATUS))["errors"] == 1


# -- a fake serial device on a pty pair: late replies, garbage, wrong lengths, bad fields ---

class PtyDevice(FakeSerialDevice):
    """:class:`DeviceModel` behind a pseudo-terminal (:class:`boards.host.FakeSerialDevice`):
    the driver opens the slave end with pyserial as it would a USB-serial adapter;
    ``faults`` as there (``delay`` makes later requests wait, as on a device that answers
    in order)."""

    def __init__(self, folded, lanes, buffer_bytes=64, faults=None):
        self.dev = DeviceModel(folded, lanes, buffer_bytes)
        super().__init__(self._reply, faults)

    def _reply(self, command, payload):
        try:
            return self.dev.handle(command, payload)
        except DeviceError as exc:
            return encode_frame(ERROR_REPLY, bytes([exc.code, command]))


@pytest.fixture
def pty_device():
    made = []

    def make(folded, lanes, **kw):
        made.append(PtyDevice(folded, lanes, **kw))
        return made[-1]

    yield make
    for d in made:
        d.close()


#: The first RUN's request number: 0 is the driver's STATUS when it opens, 1 the STATUS
#: that ``run`` asks before its first request (the device's position is not known yet).
RUN = 2


def _open(device, timeout=0.4):
    return HostLink.open(device.port, timeout=timeout)


def test_pty_device_round_trip(pty_device):
    folded = example_core(16, T=3, seed=2)
    dev = pty_device(folded, 4)
    link = _open(dev)
    currents = example_currents(folded.config, 6, seed=3)
    spikes, v_pre = link.run(currents, membrane=True)
    ref_spikes, ref_v = folded.model().run(currents)
    np.testing.assert_array_equal(spikes, ref_spikes)
    np.testing.assert_array_equal(v_pre, ref_v)
    assert link.stale_frames == 0


def test_timeout_then_late_reply_is_never_returned(pty_device):
    """Request 1 (a RUN) is answered after the driver gave up. The late reply must not be
    taken for the next request's: the driver probes with STATUS, drops it, refuses to run
    from an unknown position, and after clear() returns golden's spikes."""
    folded = example_core(16, T=3, seed=2)
    dev = pty_device(folded, 4, faults={RUN: ("delay", 0.7)})
    link = _open(dev, timeout=0.4)
    c1 = example_currents(folded.config, 2, seed=4)
    c2 = example_currents(folded.config, 2, seed=5)
    with pytest.raises(ProtocolError, match="no reply"):
        link.run(c1)
    time.sleep(0.5)                          # the late reply is now in the input buffer
    with pytest.raises(ProtocolError, match="call clear"):
        link.run(c2)
    link.clear()
    spikes, _ = link.run(c2)
    ref = folded.model()
    ref.run(c1)
    ref.clear()
    np.testing.assert_array_equal(spikes, ref.run(c2)[0])


def test_late_reply_arriving_after_the_next_request(pty_device):
    """The late reply comes while the next request is already on its way: the STATUS
    probe's reply is awaited past it."""
    folded = example_core(16, T=3, seed=2)
    dev = pty_device(folded, 4, faults={RUN: ("delay", 0.6)})
    link = _open(dev, timeout=0.4)
    with pytest.raises(ProtocolError, match="no reply"):
        link.run(example_currents(folded.config, 2, seed=4))
    link.clear()                                # probe sent at ~0.4 s, stale reply at 0.6 s
    assert link.stale_frames == 1
    c2 = example_currents(folded.config, 2, seed=5)
    ref = folded.model()
    np.testing.assert_array_equal(link.run(c2)[0], ref.run(c2)[0])


def test_garbage_without_sync_is_skipped(pty_device):
    folded = example_core(16, T=3, seed=2)
    dev = pty_device(folded, 4, faults={RUN: ("garbage", bytes(range(0x10, 0x40)))})
    link = _open(dev)
    c = example_currents(folded.config, 2, seed=6)
    np.testing.assert_array_equal(link.run(c)[0], folded.model().run(c)[0])


def test_damaged_reply_then_recovery(pty_device):
    folded = example_core(16, T=3, seed=2)
    bad = encode_frame(Command.RUN | REPLY_BIT, b"\x01\x02")
    bad = bad[:-1] + bytes([bad[-1] ^ 0xFF])                    # wrong CRC
    dev = pty_device(folded, 4, faults={RUN: ("garbage", bad)})
    link = _open(dev)
    c = example_currents(folded.config, 2, seed=6)
    with pytest.raises(ProtocolError, match="CRC"):
        link.run(c)
    link.clear()
    np.testing.assert_array_equal(link.run(c)[0], folded.model().run(c)[0])


@pytest.mark.parametrize("name, change, message", [
    ("short", lambda p: p[:-3], "sent 8 beats, the reply has 21 bytes"),
    ("long", lambda p: p + p[:3], "sent 8 beats, the reply has 27 bytes"),
    ("all 0xFF", lambda p: b"\xff" * len(p), r"record 0: \(t, beat\) = \(255, 255\)"),
    ("previous timestep", lambda p: bytes(b if i % 3 != 1 else (b + 2) % 3
                                          for i, b in enumerate(p)), r"\(t, beat\)"),
    ("beats swapped", lambda p: p[3:6] + p[:3] + p[6:], r"record 0: \(t, beat\) = \(0, 1\)"),
    ("padding lane spikes", lambda p: p[:9] + bytes([p[9] | 0x0C]) + p[10:],
     "record 3: spikes .* lanes 2..7"),
])
def test_impossible_records_are_refused(pty_device, name, change, message):
    """RUN replies of the right frame but wrong contents (N = 14, P = 4: beat 3 has lanes
    0..1 only; records are spikes, t, beat)."""
    folded = example_core(14, T=3, seed=2)
    dev = pty_device(folded, 4, faults={RUN: ("replace", change)})
    link = _open(dev)
    with pytest.raises(ProtocolError, match=message):
        link.run(example_currents(folded.config, 2, seed=7))


def test_impossible_membrane_is_refused():
    """A 12-bit membrane in a 2-byte field: a value outside 12 bits cannot come from the
    device."""
    folded = example_core(16, T=3, seed=2, membrane=Fixed(12, 6))
    lay = LinkLayout(folded.config, 4, 64, True, 3)
    from boards.host import check_records
    rb = lay.out_record_bytes(True)
    rec = bytearray(rb)
    rec[1:3] = (5000).to_bytes(2, "little", signed=True)
    with pytest.raises(ProtocolError, match="membrane of lane 0 = 5000"):
        check_records(lay, bytes(rec), True, 1, (0, 0))
    rec[1:3] = (2000).to_bytes(2, "little", signed=True)
    assert check_records(lay, bytes(rec), True, 1, (0, 0))[1][0, 0] == 2000
