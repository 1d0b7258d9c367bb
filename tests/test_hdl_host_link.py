"""HostLink + UART in the Amaranth simulator, with a behavioural LIF array stand-in.

The stand-in plays the array's ports from golden.core.CoreModel (whole timesteps at a
time), so these tests check the link and the protocol; the board top with the real RTL
array is checked under cocotb (tests/test_boards_cocotb.py).
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from boards.host import drive_async, op_clear, op_load_thresholds, op_run, op_status
from hdl.protocol import (Command, DeviceError, ErrorCode, FrameDecoder, LinkLayout,
                             SYNC, encode_frame)
from golden.core import CoreModel
from golden.quantize import ThresholdTable
from golden.examples import example_core, example_currents
from golden.fixed import Fixed
from hdl.host_link import HostLink
from hdl.uart import UARTRx, UARTTx

DIV = 4
TIMEOUT = 8               # byte times; the protocol's 64 would only slow the simulation


async def uart_send(ctx, pin, value, div=DIV, stop=1):
    for bit in [0] + [(value >> i) & 1 for i in range(8)] + [stop]:
        ctx.set(pin, bit)
        await ctx.tick().repeat(div)
    ctx.set(pin, 1)


class UartMonitor:
    """Decode bytes from a TX pin (sampled in the middle of each bit)."""

    def __init__(self, pin, div=DIV):
        self.pin, self.div, self.bytes, self.errors = pin, div, [], 0

    async def run(self, ctx):
        while True:
            await ctx.tick()
            if ctx.get(self.pin):
                continue
            await ctx.tick().repeat(self.div // 2)
            value = 0
            for i in range(8):
                await ctx.tick().repeat(self.div)
                value |= ctx.get(self.pin) << i
            await ctx.tick().repeat(self.div)
            if not ctx.get(self.pin):
                self.errors += 1
            self.bytes.append(value)


def test_uart_loopback():
    """Bytes sent by UARTTx come out of UARTRx unchanged; a low stop bit is an error."""
    from amaranth.hdl import Module
    m = Module()
    m.submodules.tx = tx = UARTTx(DIV)
    m.submodules.rx = rx = UARTRx(DIV)
    m.d.comb += [rx.rx.eq(tx.tx), rx.o.ready.eq(1)]
    sent = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80]
    got, errors = [], []

    async def source(ctx):
        for b in sent:
            ctx.set(tx.i.payload, b)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def sink(ctx):
        for _ in range(len(sent) * 10 * DIV + 50):
            if ctx.get(rx.o.valid):
                got.append(ctx.get(rx.o.payload))
            if ctx.get(rx.framing_error):
                errors.append(1)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert got == sent
    assert errors == []


def test_uart_rx_framing_error():
    rx = UARTRx(DIV)
    result = {}

    async def bench(ctx):
        ctx.set(rx.o.ready, 1)
        await ctx.tick().repeat(5)
        flagged = []
        await uart_send(ctx, rx.rx, 0x3C, stop=0)
        for _ in range(4 * DIV):
            flagged.append(ctx.get(rx.framing_error))
            await ctx.tick()
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(3 * DIV)
        await uart_send(ctx, rx.rx, 0x42)
        seen = []
        for _ in range(4 * DIV):
            if ctx.get(rx.o.valid):
                seen.append(ctx.get(rx.o.payload))
            await ctx.tick()
        result.update(flagged=any(flagged), seen=seen)

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert result["flagged"]
    assert result["seen"] == [0x42]


def test_divisor_checks():
    from hdl.uart import divisor_for
    assert divisor_for(12e6, 115200) == 104
    with pytest.raises(ValueError, match="divisor"):
        divisor_for(12e6, 4e6)
    with pytest.raises(ValueError, match="baudrate"):
        divisor_for(10e6, 1.5e6)


class ArrayStandIn:
    """Plays the LIF array's ports beat by beat from one-neuron CoreModels (no affine)."""

    def __init__(self, dut, folded, lanes):
        cfg = folded.config
        assert not cfg.affine
        one = cfg.replace(neurons=1, channels=1)
        th = folded.thresholds
        self.models = [CoreModel(one, ThresholdTable(th.theta_q[i:i + 1], th.compare[i:i + 1]))
                       for i in range(cfg.neurons)]
        self.dut, self.cfg, self.P = dut, cfg, lanes
        self.bps = -(-cfg.neurons // lanes)
        self.t = self.k = 0
        self.out = []
        self.loads = 0

    async def run(self, ctx):
        d, cfg, P = self.dut, self.cfg, self.P
        bc = cfg.current.bits
        while True:
            holding = bool(self.out)
            ctx.set(d.i_current.ready, int(not holding and not ctx.get(d.clear)))
            ctx.set(d.t, self.t)
            if holding:
                spikes, mem, t, beat = self.out[0]
                ctx.set(d.o_spikes.payload.spikes, spikes)
                for p in range(P):
                    ctx.set(d.o_spikes.payload.membrane[p], int(mem[p]))
                ctx.set(d.o_spikes.payload.t, t)
                ctx.set(d.o_spikes.payload.beat, beat)
            ctx.set(d.o_spikes.valid, int(holding))
            take = ctx.get(d.i_current.valid) and ctx.get(d.i_current.ready)
            give = holding and ctx.get(d.o_spikes.ready)
            word = ctx.get(d.i_current.payload.as_value())
            load = ctx.get(d.load_threshold.valid)
            index = ctx.get(d.load_threshold.payload.index)
            theta = ctx.get(d.load_threshold.payload.theta)
            compare = ctx.get(d.load_threshold.payload.compare)
            clear = ctx.get(d.clear)
            await ctx.tick()
            if give:
                self.out.pop(0)
            if load:
                self.models[index].load_thresholds(0, theta, compare)
                self.loads += 1
            if clear:
                for model in self.models:
                    model.clear()
                self.t = self.k = 0
            if take:
                bits, mem = 0, [0] * P
                for p in range(P):
                    i = self.k * P + p
                    if i >= cfg.neurons:
                        continue
                    c = (word >> (p * bc)) & ((1 << bc) - 1)
                    c = c - (1 << bc) if c >> (bc - 1) else c
                    r = self.models[i].step(np.array([c]))
                    bits |= int(r.spikes[0]) << p
                    mem[p] = int(r.v_pre[0])
                self.out.append((bits, mem, self.t, self.k))
                self.k += 1
                if self.k == self.bps:
                    self.k = 0
                    self.t = (self.t + 1) % cfg.T


def run_link(folded, lanes, script, buffer_bytes=64, cycles=40_000):
    """Simulate a HostLink with the stand-in; ``script(ctx, host)`` is an async test."""
    dut = HostLink(folded.config, lanes, divisor=DIV, buffer_bytes=buffer_bytes, latency=1,
                   timeout_bytes=TIMEOUT)
    array = ArrayStandIn(dut, folded, lanes)
    mon = UartMonitor(dut.tx)
    dec = FrameDecoder()
    result = {}

    class Host:
        layout = dut.layout

        async def send_raw(self, ctx, data, stop=1):
            for b in data:
                await uart_send(ctx, dut.rx, b, stop=stop)

        async def reply(self, ctx):
            for _ in range(cycles):
                if mon.bytes:
                    frames = dec.feed(bytes(mon.bytes))
                    mon.bytes.clear()
                    if frames:
                        assert len(frames) == 1
                        return frames[0]
                await ctx.tick()
            raise AssertionError("no reply frame")

        async def transact(self, ctx, command, payload=b""):
            await self.send_raw(ctx, encode_frame(command, payload))
            frame = await self.reply(ctx)
            return frame

    host = Host()

    async def bench(ctx):
        await ctx.tick().repeat(4)
        result["value"] = await script(ctx, host)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(array.run, background=True)
    sim.add_testbench(mon.run, background=True)
    sim.add_testbench(bench)
    sim.run()
    assert mon.errors == 0
    return result["value"], array


def drive_in_sim(ctx, host, op):
    async def transact(command, payload):
        frame = await host.transact(ctx, command, payload)
        return frame.check_error().payload
    return drive_async(op, transact)


FOLDED = example_core(10, T=3, seed=3, threshold=Fixed(12, 8))
LANES = 4


def test_status_and_run_match_golden():
    folded = FOLDED
    currents = example_currents(folded.config, 5, seed=1)

    async def script(ctx, host):
        st = await drive_in_sim(ctx, host, op_status())
        spikes, v_pre = await drive_in_sim(ctx, host, op_run(host.layout, currents, True))
        st2 = await drive_in_sim(ctx, host, op_status())
        return st, spikes, v_pre, st2

    (st, spikes, v_pre, st2), _ = run_link(folded, LANES, script)
    assert st["neurons"] == 10 and st["lanes"] == LANES and st["T"] == 3
    assert st["buffer_bytes"] == 64 and st["errors"] == 0 and st["t"] == 0
    ref_spikes, ref_v = folded.model().run(currents)
    np.testing.assert_array_equal(v_pre, ref_v)
    np.testing.assert_array_equal(spikes, ref_spikes)
    assert st2["t"] == 5 % 3


def test_errors_leave_state_untouched():
    """Bad frames get their error reply and change nothing (every error kind, with the
    real array, is in boards/cocotb_board.py)."""
    folded = FOLDED
    lay = LinkLayout(folded.config, LANES, 64, True, 1)
    currents = example_currents(folded.config, 4, seed=2)
    good_thr = lay.pack_thresholds([0], [5], [0])

    async def script(ctx, host):
        codes = []

        async def expect_error(data, stop=1):
            await host.send_raw(ctx, data, stop=stop)
            frame = await host.reply(ctx)
            with pytest.raises(DeviceError) as info:
                frame.check_error()
            codes.append(info.value.code)
            await ctx.tick().repeat(2 * TIMEOUT * 10 * DIV)   # the host's resync wait

        # Run one step so that state (t, membranes) is not trivially zero.
        await drive_in_sim(ctx, host, op_run(lay, currents[:1], True))
        await expect_error(encode_frame(0x42))                               # unknown
        await expect_error(encode_frame(Command.RUN, b"\x00" * 3))            # not a beat
        bad = bytearray(encode_frame(Command.LOAD_THR, good_thr))
        bad[-1] ^= 0x40
        await expect_error(bytes(bad))                                       # checksum
        await expect_error(bytes([SYNC, Command.CLEAR]))                     # truncated
        bad_index = lay.pack_thresholds([0, 10], [5, 5], [0, 0])
        await expect_error(encode_frame(Command.LOAD_THR, bad_index))        # index >= N
        bad_theta = lay.pack_thresholds([1], [2048], [0])
        await expect_error(encode_frame(Command.LOAD_THR, bad_theta))        # > 12 bits
        st = await drive_in_sim(ctx, host, op_status())
        rest = await drive_in_sim(ctx, host, op_run(lay, currents[1:], True))
        return codes, st, rest

    (codes, st, rest), array = run_link(folded, LANES, script)
    E = ErrorCode
    assert codes == [E.UNKNOWN_COMMAND, E.BAD_LENGTH, E.BAD_CHECKSUM, E.TIMEOUT,
                     E.BAD_VALUE, E.BAD_VALUE]
    assert st["errors"] == len(codes) and st["last_error"] == E.BAD_VALUE
    assert array.loads == 0
    ref_spikes, ref_v = folded.model().run(currents)
    np.testing.assert_array_equal(rest[1], ref_v[1:])
    np.testing.assert_array_equal(rest[0], ref_spikes[1:])


def test_load_thresholds_then_clear():
    folded = FOLDED
    currents = example_currents(folded.config, 3, seed=4)
    theta = np.arange(10) * 7 - 20
    compare = np.array([0, 1, 2, 3, 0, 0, 1, 1, 0, 0])

    async def script(ctx, host):
        lay = host.layout
        await drive_in_sim(ctx, host, op_run(lay, currents[:2], False))
        await drive_in_sim(ctx, host, op_load_thresholds(lay, range(10), theta, compare))
        await drive_in_sim(ctx, host, op_clear())
        return await drive_in_sim(ctx, host, op_run(lay, currents, False))

    (spikes, v_pre), array = run_link(folded, LANES, script)
    assert v_pre is None and array.loads == 10
    ref = folded.model()
    ref.load_thresholds(np.arange(10), theta, compare)
    np.testing.assert_array_equal(spikes, ref.run(currents)[0])
