"""The protocol definition and the blocking host driver (over an in-memory device model)."""

import struct

import numpy as np
import pytest

from boards.host import HostLink
from hdl.protocol import (ERROR_REPLY, REPLY_BIT, SYNC, Command, DeviceError, ErrorCode,
                             FrameDecoder, LinkLayout, ProtocolError, crc16, crc16_byte_bits,
                             encode_frame, parse_status, status_bytes)
from golden.examples import example_core, example_currents


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
