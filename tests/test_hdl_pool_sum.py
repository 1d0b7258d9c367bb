# amaranth: UnusedElaboratable=no
"""hdl.pool sum mode: every output beat equals golden IntegerPool2d.run (mode "sum": the
count of each window), bit for bit, with random input gaps and output backpressure; the
plan's latency and cycles per map equal what simulation measures."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.core import to_beats
from golden.layers.pool import IntegerPool2d
from hdl.plan import count_bits, pool_plan
from hdl.pool import PoolStage


def pack(vec, bits):
    """One beat's lanes as an integer, lane ``p`` at bits ``[p * bits, (p + 1) * bits)``."""
    return sum(int(v) << (p * bits) for p, v in enumerate(vec))


def unpack(word, bits, lanes):
    return [(int(word) >> (p * bits)) & ((1 << bits) - 1) for p in range(lanes)]


def raw(value):
    """The plain Value under a stream payload (a Signal, or a data.View of one)."""
    return value.as_value() if hasattr(value, "as_value") else value


def run_pool(dut, maps, *, seed, gap=0.3, backpressure=0.3):
    """Stream ``maps`` (V, C, H, W) through ``dut``; returns ``(beats, times)``: the output
    beats as lists of lane values and the cycle each was taken, plus the cycle each map's
    last input beat was taken."""
    rng = np.random.default_rng(seed)
    inp, out = dut.input, dut.output
    in_beats = [pack(vec, dut.in_bits)
                for vec in to_beats(maps.reshape(len(maps), -1), dut.in_lanes)]
    n_out = len(maps) * dut.beats
    got, got_at, last_in = [], [], []

    async def testbench(ctx):
        i = cycle = 0
        while len(got) < n_out:
            assert cycle < 20 * (len(in_beats) + n_out) + 100, "no progress"
            valid = i < len(in_beats) and rng.random() >= gap
            ctx.set(inp.valid, valid)
            if i < len(in_beats):
                ctx.set(raw(inp.payload), in_beats[i])
            ready = bool(rng.random() >= backpressure)
            ctx.set(out.ready, ready)
            if valid and ctx.get(inp.ready):
                i += 1
                if i % dut.in_beats == 0:
                    last_in.append(cycle)
            if ready and ctx.get(out.valid):
                got.append(unpack(ctx.get(raw(out.payload)), dut.out_bits, dut.lanes))
                got_at.append(cycle)
            cycle += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got, got_at, last_in


def check(dut, layer, maps, seed, **kw):
    want = layer.run(maps[:, None]).out.reshape(len(maps), -1)
    got, _, _ = run_pool(dut, maps, seed=seed, **kw)
    want_beats = to_beats(want, dut.lanes)
    assert len(got) == len(want_beats)
    for b, (w, g) in enumerate(zip(want_beats, got)):
        assert [int(v) for v in w] == g, (f"map {b // dut.beats} beat {b % dut.beats}: "
                                          f"expected {list(w)}, got {g}")
    return want


@pytest.mark.parametrize("in_shape,kernel,stride,lanes,in_lanes", [
    ((2, 4, 4), 2, 2, 3, 5),
    ((3, 5, 5), 2, 2, 4, 16),       # odd size: the last row and column are dropped
    ((1, 6, 6), 3, 1, 16, 6),       # overlapping windows, counts 0..9 (4 bits)
    ((2, 7, 7), 3, 2, 5, 7),        # overlapping, stride 2
    ((4, 8, 8), 2, 2, 16, 16),      # the digits network's pool
])
def test_sum_pool_matches_golden(in_shape, kernel, stride, lanes, in_lanes):
    seed = int(np.prod(in_shape)) + lanes + kernel
    rng = np.random.default_rng(seed)
    layer = IntegerPool2d(in_shape, kernel, stride, "sum")
    # Dense maps so that full windows (count K, the top of the range) occur.
    maps = (rng.random((6,) + in_shape) < rng.uniform(0.2, 0.9, (6, 1, 1, 1))).astype(np.int64)
    maps[1] = 0
    maps[2] = 1
    dut = PoolStage(layer, lanes, in_lanes=in_lanes)
    assert dut.output_name == "o_counts" and dut.out_bits == count_bits(kernel * kernel)
    want = check(dut, layer, maps, seed)
    assert want.max() == kernel * kernel and want.min() == 0


def test_sum_of_counts_matches_golden():
    """A sum pooling of counts (after an earlier sum pooling): inputs 0..4, outputs 0..16."""
    rng = np.random.default_rng(3)
    layer = IntegerPool2d((2, 4, 4), 2, 2, "sum", in_max=4)
    maps = rng.integers(0, 5, (5, 2, 4, 4))
    maps[0] = 4
    dut = PoolStage(layer, 3, in_lanes=6)
    assert (dut.input_name, dut.in_bits, dut.out_bits) == ("i_counts", 3, 5)
    want = check(dut, layer, maps, 3)
    assert want.max() == 16


def test_sum_over_one_pixel_windows_emits_spikes():
    """A 1x1 sum pooling of spikes keeps spikes (out_max 1): the spike port."""
    layer = IntegerPool2d((2, 4, 4), 1, 2, "sum")
    dut = PoolStage(layer, 4, in_lanes=4)
    assert (dut.input_name, dut.output_name, dut.out_bits) == ("i_spikes", "o_spikes", 1)
    maps = (np.random.default_rng(0).random((3, 2, 4, 4)) < 0.5).astype(np.int64)
    check(dut, layer, maps, 0)


@pytest.mark.parametrize("in_shape,kernel,lanes,in_lanes", [
    ((4, 8, 8), 2, 16, 16),         # input-bound: 16 input beats, 4 output beats per map
    ((4, 8, 8), 2, 1, 16),          # output-bound: 16 input beats, 64 output beats
    ((2, 6, 6), 3, 2, 4),
])
def test_sum_pool_cycles_match_plan(in_shape, kernel, lanes, in_lanes):
    """Streamed freely, a map's first output beat is taken ``latency`` cycles after its
    last input beat (when the output side is idle), and maps come out every
    ``plan.cycles()`` cycles in steady state."""
    layer = IntegerPool2d(in_shape, kernel, kernel, "sum")
    dut = PoolStage(layer, lanes, in_lanes=in_lanes)
    plan = pool_plan(layer, lanes, in_lanes, 1)
    assert (plan.beats, plan.in_beats, plan.latency, plan.memories) == \
        (dut.beats, dut.in_beats, dut.latency, ())
    V = 8
    maps = (np.random.default_rng(1).random((V,) + in_shape) < 0.5).astype(np.int64)
    got, got_at, last_in = run_pool(dut, maps, seed=1, gap=0.0, backpressure=0.0)
    first_out = got_at[::dut.beats]
    assert first_out[0] - last_in[0] == plan.latency
    interval = np.diff(first_out[2:])
    assert set(interval.tolist()) == {plan.cycles()}, (interval, plan.cycles())
