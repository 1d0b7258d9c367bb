"""cocotb tests of the board tops over their UART: boards.top.LinkTop (LIF array + host
link; ``run_matches_golden``, ``errors_never_corrupt_state``) and boards.top.NetworkLinkTop
(a whole network + network link; ``network_*``).

The testbench is the host: it drives the ``rx`` pin bit by bit at the UART divisor, decodes
the ``tx`` pin, and talks :mod:`hdl.protocol` with the same request generators the real
host driver uses (:mod:`boards.host`). Replies are compared with the golden
:class:`~golden.core.CoreModel`; the first mismatch is reported as (timestep, neuron,
expected, got).

Parameters come from a JSON plan named by the environment variable ``SPIKEFOLD_BOARD_PLAN``:
``core`` (a .npz core file), ``lanes``, ``divisor``, ``buffer_bytes``, ``timeout_bytes``,
``seed``, ``steps``; for the network top ``network`` (a pickled
:class:`golden.network.IntegerNetwork`) and ``images`` (a .npy of float inputs) instead
of ``core``, ``lanes`` and ``steps``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from boards.host import (check_results, drive_async, layout_from_status, op_classify,
                         op_clear, op_load_affine, op_load_thresholds, op_net_status, op_run,
                         op_status)
from hdl.protocol import (FLAG_LOAD_WEIGHTS, SYNC, Command, DeviceError, ErrorCode,
                          FrameDecoder, LinkLayout, NetworkLayout, encode_frame)
from golden.corefile import FoldedCore
from golden.examples import example_currents

PLAN_ENV = "SPIKEFOLD_BOARD_PLAN"


def load_plan():
    path = Path(os.environ[PLAN_ENV])
    plan = json.loads(path.read_text())
    if "core" in plan:
        plan["folded"] = FoldedCore.load(path.parent / plan["core"])
    if "network" in plan:
        import pickle
        plan["inet"] = pickle.loads((path.parent / plan["network"]).read_bytes())
        plan["x"] = np.load(path.parent / plan["images"])
    return plan


class TB:
    """Clock, reset, UART driver and monitor of the board top; the host side of the link."""

    def __init__(self, dut, plan):
        self.dut, self.plan = dut, plan
        self.div = plan["divisor"]
        self.rx_bytes = []
        self.stop_errors = 0
        self.decoder = FrameDecoder()

    async def start(self):
        d = self.dut
        cocotb.start_soon(Clock(d.clk, 10, unit="ns").start())
        d.rx.value = 1
        d.rst.value = 1
        await ClockCycles(d.clk, 4)
        d.rst.value = 0
        await ClockCycles(d.clk, 4)
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        d = self.dut
        while not (d.tx.value.is_resolvable and int(d.tx.value) == 1):
            await RisingEdge(d.clk)
        while True:
            await FallingEdge(d.tx)
            await ClockCycles(d.clk, self.div // 2)
            value = 0
            for i in range(8):
                await ClockCycles(d.clk, self.div)
                if not d.tx.value.is_resolvable:
                    txu = d.link.txu
                    raise AssertionError(
                        f"tx is {d.tx.value} (byte bit {i}); txu payload "
                        f"{txu.i__payload.value} valid {txu.i__valid.value}, shreg "
                        f"{txu.shreg.value} bits {txu.bits.value} rst {d.rst.value}")
                value |= int(d.tx.value) << i
            await ClockCycles(d.clk, self.div)
            if not int(d.tx.value):
                self.stop_errors += 1
            self.rx_bytes.append(value)

    async def send(self, data, stop=1):
        d = self.dut
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [stop]:
                d.rx.value = bit
                await ClockCycles(d.clk, self.div)
            d.rx.value = 1

    async def reply(self, max_cycles=200_000):
        for _ in range(max_cycles // 8):
            if self.rx_bytes:
                frames = self.decoder.feed(bytes(self.rx_bytes))
                self.rx_bytes.clear()
                if frames:
                    assert len(frames) == 1, f"{len(frames)} frames for one request"
                    return frames[0]
            await ClockCycles(self.dut.clk, 8)
        raise AssertionError("no reply frame from the board top")

    async def transact(self, command, payload=b""):
        await self.send(encode_frame(command, payload))
        return (await self.reply()).check_error().payload

    async def do(self, op):
        return await drive_async(op, self.transact)

    async def expect_error(self, data, stop=1):
        """Send raw bytes; return the error code of the reply; wait out the timeout."""
        await self.send(data, stop=stop)
        frame = await self.reply()
        try:
            frame.check_error()
        except DeviceError as exc:
            code = exc.code
        else:
            raise AssertionError(f"expected an error frame, got 0x{frame.command:02x}")
        await ClockCycles(self.dut.clk, 2 * self.plan["timeout_bytes"] * 10 * self.div)
        return code


def compare(name, got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{name}: shape {got.shape} != {expected.shape}"
    bad = np.argwhere(got != expected)
    if len(bad):
        s, i = (int(x) for x in bad[0])
        raise AssertionError(
            f"{name}: first mismatch at timestep {s}, neuron {i}: expected "
            f"{int(expected[s, i])}, got {int(got[s, i])} ({len(bad)} mismatches)")


@cocotb.test()
async def run_matches_golden(dut):
    """STATUS, RUN_V, LOAD_THR, CLEAR, RUN through the UART equal the golden model."""
    plan = load_plan()
    folded = plan["folded"]
    tb = TB(dut, plan)
    await tb.start()
    st = await tb.do(op_status())
    layout = layout_from_status(st)
    assert (st["neurons"], st["lanes"], st["T"]) == (folded.config.neurons, plan["lanes"],
                                                     folded.config.T), st
    assert st["buffer_bytes"] == plan["buffer_bytes"] and st["errors"] == 0, st
    ref = folded.model()
    steps = plan["steps"]
    currents = example_currents(folded.config, steps, seed=plan["seed"])
    spikes, v_pre = await tb.do(op_run(layout, currents, True))
    ref_spikes, ref_v = ref.run(currents)
    compare("v_pre", v_pre, ref_v)
    compare("spikes", spikes, ref_spikes)

    rng = np.random.default_rng(plan["seed"])
    n = folded.config.neurons
    index = rng.choice(n, size=max(1, n // 2), replace=False)
    fmt = folded.config.threshold
    theta = rng.integers(fmt.min_int // 4, fmt.max_int // 4, size=len(index))
    cmp = rng.integers(0, 4, size=len(index))
    await tb.do(op_load_thresholds(layout, index, theta, cmp))
    ref.load_thresholds(index, theta, cmp)
    if folded.config.affine:
        cfg = folded.config
        ts = rng.integers(0, cfg.T, size=3)
        chs = rng.integers(0, cfg.channels, size=3)
        a = rng.integers(cfg.scale.min_int // 2, cfg.scale.max_int // 2, size=3)
        b = rng.integers(cfg.membrane.min_int // 8, cfg.membrane.max_int // 8, size=3)
        await tb.do(op_load_affine(layout, ts, chs, a, b))
        for rec in zip(ts, chs, a, b):
            ref.load_affine(*(int(x) for x in rec))
    await tb.do(op_clear())
    ref.clear()
    currents = example_currents(folded.config, steps, seed=plan["seed"] + 1)
    spikes, none = await tb.do(op_run(layout, currents, False))
    assert none is None
    compare("spikes after load + clear", spikes, ref.run(currents)[0])
    st = await tb.do(op_status())
    assert st["t"] == ref.t and st["errors"] == 0 and st["dropped"] == 0, st
    assert tb.stop_errors == 0


@cocotb.test()
async def errors_never_corrupt_state(dut):
    """Bad frames get an error frame each, and the array state is what it was before."""
    plan = load_plan()
    folded = plan["folded"]
    tb = TB(dut, plan)
    await tb.start()
    st = await tb.do(op_status())
    layout = layout_from_status(st)
    ref = folded.model()
    # Memories keep their contents through reset: put the folded tables back.
    th = folded.thresholds
    await tb.do(op_load_thresholds(layout, np.arange(len(th)), th.theta_q, th.compare))
    if folded.affine is not None:
        t, ch = np.meshgrid(np.arange(folded.config.T), np.arange(folded.config.channels),
                            indexing="ij")
        await tb.do(op_load_affine(layout, t.ravel(), ch.ravel(), folded.affine.a_q.ravel(),
                                   folded.affine.b_q.ravel()))
    currents = example_currents(folded.config, 3, seed=plan["seed"] + 2)
    await tb.do(op_run(layout, currents[:1], False))       # t = 1, membranes non-zero
    ref.run(currents[:1])

    lay = LinkLayout(folded.config, plan["lanes"], plan["buffer_bytes"])
    thr = lay.pack_thresholds([0], [3], [1])
    bad_crc = bytearray(encode_frame(Command.LOAD_THR, thr))
    bad_crc[-2] ^= 0x01
    E = ErrorCode
    cases = [
        ("unknown command", encode_frame(0x5C, b"\x01\x02"), 1, E.UNKNOWN_COMMAND),
        ("CLEAR with payload", encode_frame(Command.CLEAR, b"\x00"), 1, E.BAD_LENGTH),
        ("RUN, half a beat", encode_frame(Command.RUN, b"\x00" * max(1, lay.beat_bytes // 2)
                                          if lay.beat_bytes > 1 else b"\x00"), 1, None),
        ("RUN beyond the buffer", encode_frame(Command.RUN, b"\x00" * (lay.buffer_bytes + 1)),
         1, E.BAD_LENGTH),
        ("bad checksum", bytes(bad_crc), 1, E.BAD_CHECKSUM),
        ("stray byte", b"\x3c", 1, E.FRAMING),
        ("low stop bit", bytes([SYNC]), 0, E.FRAMING),
        ("truncated frame", bytes([SYNC, Command.LOAD_THR, len(thr), 0]) + thr[:1], 1,
         E.TIMEOUT),
        ("index >= N", encode_frame(Command.LOAD_THR, thr + lay.pack_thresholds(
            [folded.config.neurons], [0], [0])), 1, E.BAD_VALUE),
        ("compare code 7", encode_frame(Command.LOAD_THR, lay.pack_thresholds([1], [0], [7])),
         1, E.BAD_VALUE),
    ]
    for name, data, stop, expected in cases:
        if expected is None:                 # only meaningful with beats of > 1 byte
            if lay.beat_bytes == 1:
                continue
            expected = E.BAD_LENGTH
        code = await tb.expect_error(data, stop=stop)
        assert code == expected, f"{name}: error {code}, expected {int(expected)}"
        dut._log.info("%s -> error %s", name, E(code).name)

    st = await tb.do(op_status())
    assert st["t"] == ref.t, f"timestep moved: {st['t']} != {ref.t}"
    spikes, v_pre = await tb.do(op_run(layout, currents[1:], True))
    ref_spikes, ref_v = ref.run(currents[1:])
    compare("v_pre after errors", v_pre, ref_v)
    compare("spikes after errors", spikes, ref_spikes)


# -- the network top ---------------------------------------------------------------------

class PixelWatch:
    """Counts the network's ``i_pixels`` transfers (the link acting on a request)."""

    def __init__(self, dut):
        self.dut, self.beats = dut, 0

    async def run(self):
        net = self.dut.network
        while True:
            await RisingEdge(self.dut.clk)
            if int(net.i_pixels__valid.value) and int(net.i_pixels__ready.value):
                self.beats += 1


def golden_results(inet, x):
    """Golden labels, logits and per-LIF-layer spike counts (S, layers) of ``x``."""
    res = inet.run(x)
    counts = np.stack([s.reshape(s.shape[:2] + (-1,)).sum(axis=(0, 2)) for s in res.spikes],
                      axis=1) if res.spikes else np.zeros((len(x), 0), dtype=np.int64)
    return res.predict(), res.logits_q, counts


def compare_results(name, got, inet, x, counts):
    labels, logits, spike_counts = golden_results(inet, x)
    for what, g, e in (("labels", got.labels, labels), ("logits", got.logits_q, logits)) + (
            (("spike counts", got.spike_counts, spike_counts),) if counts else ()):
        g, e = np.asarray(g), np.asarray(e)
        assert g.shape == e.shape, f"{name} {what}: shape {g.shape} != {e.shape}"
        bad = np.argwhere(g != e)
        if len(bad):
            where = tuple(int(v) for v in bad[0])
            raise AssertionError(f"{name} {what}: first mismatch at (image, index) {where}: "
                                 f"expected {e[where]}, got {g[where]} ({len(bad)} mismatches)")


@cocotb.test()
async def network_classify_matches_golden(dut):
    """NET_STATUS, CLASSIFY (a batch in one frame) and CLASSIFY_COUNTS through the UART
    equal golden's IntegerNetwork; the sample numbers run on."""
    plan = load_plan()
    inet, x = plan["inet"], plan["x"]
    want = NetworkLayout.for_network(inet, buffer_bytes=plan["buffer_bytes"])
    tb = TB(dut, plan)
    await tb.start()
    st = await tb.do(op_net_status())
    for name, value in want.status_constants().items():
        if name == "flags":                  # the network top always has LOAD_WEIGHTS
            value |= FLAG_LOAD_WEIGHTS
        assert st[name] == value, f"NET_STATUS {name} = {st[name]}, expected {value}"
    assert (st["errors"], st["samples"], st["dropped"]) == (0, 0, 0), st
    x_q, _ = inet.quantize_input(x)
    n = plan["batch"]
    assert n <= want.max_images
    got = await tb.do(op_classify(want, x_q[:n], False, 0))
    compare_results("CLASSIFY", got, inet, x[:n], False)
    assert list(got.samples) == list(range(n))
    got = await tb.do(op_classify(want, x_q[n:], True, n))
    compare_results("CLASSIFY_COUNTS", got, inet, x[n:], True)
    st = await tb.do(op_net_status())
    assert (st["errors"], st["samples"], st["dropped"]) == (0, len(x), 0), st
    assert tb.stop_errors == 0
    dut._log.info("network top: %d images equal golden (labels, logits, spike counts)", len(x))


@cocotb.test()
async def network_errors_never_feed_pixels(dut):
    """Each bad frame gets its error frame, no pixel reaches the network and no sample is
    counted; afterwards CLASSIFY still equals golden."""
    plan = load_plan()
    inet, x = plan["inet"], plan["x"]
    lay = NetworkLayout.for_network(inet, buffer_bytes=plan["buffer_bytes"])
    tb = TB(dut, plan)
    await tb.start()
    watch = PixelWatch(dut)
    cocotb.start_soon(watch.run())
    x_q, _ = inet.quantize_input(x)
    image = lay.pack_images(x_q[:1])
    bad_crc = bytearray(encode_frame(Command.CLASSIFY, image))
    bad_crc[-1] ^= 0x40
    E = ErrorCode
    cases = [
        ("LIF-core STATUS", encode_frame(Command.STATUS), E.UNKNOWN_COMMAND),
        ("unknown command", encode_frame(0x5C, b"\x01"), E.UNKNOWN_COMMAND),
        ("NET_STATUS with payload", encode_frame(Command.NET_STATUS, b"\x00"), E.BAD_LENGTH),
        ("CLASSIFY without images", encode_frame(Command.CLASSIFY), E.BAD_LENGTH),
        ("CLASSIFY beyond the buffer",
         encode_frame(Command.CLASSIFY, bytes(lay.buffer_bytes + 1)), E.BAD_LENGTH),
        ("bad checksum", bytes(bad_crc), E.BAD_CHECKSUM),
        ("image size wrong", encode_frame(Command.CLASSIFY, image + image[:1]), E.IMAGE_SIZE),
        ("image size wrong, counts", encode_frame(Command.CLASSIFY_COUNTS, image[:-1]),
         E.IMAGE_SIZE),
        ("truncated frame", encode_frame(Command.CLASSIFY, image)[:-3], E.TIMEOUT),
        ("stray byte", b"\x3c", E.FRAMING),
    ]
    if 8 * lay.pixel_bytes > lay.input_bits:
        big = bytearray(image)
        big[(lay.inputs - 1) * lay.pixel_bytes] = 1 << (lay.input_bits - 1)   # one too large
        cases.append(("pixel outside the input format", encode_frame(Command.CLASSIFY,
                                                                     bytes(big)), E.BAD_VALUE))
    for name, data, expected in cases:
        code = await tb.expect_error(data)
        assert code == expected, f"{name}: error {code}, expected {int(expected)}"
        assert watch.beats == 0, f"{name}: {watch.beats} pixel beats reached the network"
        dut._log.info("%s -> error %s", name, E(code).name)
    st = await tb.do(op_net_status())
    assert (st["errors"], st["samples"], st["last_error"]) == (
        len(cases), 0, int(cases[-1][2])), st
    got = await tb.do(op_classify(lay, x_q[:2], True, 0))
    compare_results("CLASSIFY after errors", got, inet, x[:2], True)
    assert watch.beats == 2 * -(-lay.inputs // plan["in_lanes"])
