# amaranth: UnusedElaboratable=no
"""hdl.pool: every output beat equals golden IntegerPool2d.run (max pooling = OR), bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.core import to_beats
from golden.layers.pool import IntegerPool2d
from hdl.pool import PoolStage


def run_pool(dut, maps, *, seed, gap=0.3, backpressure=0.3):
    """Stream ``maps`` (V, C, H, W) of spikes through ``dut``; returns the output beats."""
    rng = np.random.default_rng(seed)
    in_beats = [sum(int(b) << q for q, b in enumerate(vec))
                for vec in to_beats(maps.reshape(len(maps), -1), dut.in_lanes)]
    n_out = len(maps) * dut.beats
    got = []

    async def testbench(ctx):
        i = cycle = 0
        while len(got) < n_out:
            assert cycle < 20 * (len(in_beats) + n_out) + 100, "no progress"
            valid = i < len(in_beats) and rng.random() >= gap
            ctx.set(dut.i_spikes.valid, valid)
            if i < len(in_beats):
                ctx.set(dut.i_spikes.payload, in_beats[i])
            ready = bool(rng.random() >= backpressure)
            ctx.set(dut.o_spikes.ready, ready)
            if valid and ctx.get(dut.i_spikes.ready):
                i += 1
            if ready and ctx.get(dut.o_spikes.valid):
                got.append(ctx.get(dut.o_spikes.payload))
            cycle += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got


@pytest.mark.parametrize("in_shape,kernel,stride,lanes,in_lanes", [
    ((2, 4, 4), 2, 2, 3, 5),
    ((3, 5, 5), 2, 2, 4, 16),       # odd size: the last row and column are dropped
    ((1, 6, 6), 3, 1, 16, 6),       # overlapping windows
    ((4, 8, 8), 2, 2, 16, 16),      # the digits network's pool
])
def test_pool_matches_golden(in_shape, kernel, stride, lanes, in_lanes):
    seed = int(np.prod(in_shape)) + lanes
    rng = np.random.default_rng(seed)
    layer = IntegerPool2d(in_shape, kernel, stride, "max")
    maps = (rng.random((5,) + in_shape) < 0.2).astype(np.int64)
    maps[1] = 0
    want = layer.run(maps[:, None]).out.reshape(len(maps), -1)
    dut = PoolStage(layer, lanes, in_lanes=in_lanes)
    got = run_pool(dut, maps, seed=seed)
    want_beats = [sum(int(b) << p for p, b in enumerate(vec)) for vec in to_beats(want, lanes)]
    for b, (w, g) in enumerate(zip(want_beats, got)):
        assert w == g, f"map {b // dut.beats} beat {b % dut.beats}: expected {w:#x}, got {g:#x}"


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be 'max' or 'sum'.* not 'avg'"):
        PoolStage(IntegerPool2d((1, 4, 4), 2, 2, "avg"), 1)
    with pytest.raises(ValueError, match="max pooling of counts is not built"):
        PoolStage(IntegerPool2d((1, 4, 4), 2, 2, "max", in_max=4), 1)
    with pytest.raises(TypeError, match="IntegerPool2d"):
        PoolStage(object(), 1)
    with pytest.raises(ValueError, match="lanes 5 exceeds"):
        PoolStage(IntegerPool2d((1, 4, 4), 2, 2, "max"), 5)
