"""hdl.skid.RegisterSlice: every beat through, in order, at one beat per cycle; ready and
valid are registers."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import unsigned
from amaranth.sim import Simulator

from hdl.skid import RegisterSlice


def run(dut, words, *, gap, backpressure, seed):
    rng = np.random.default_rng(seed)
    got, stats = [], {}

    async def testbench(ctx):
        i = cycle = 0
        while len(got) < len(words):
            assert cycle < 20 * len(words) + 20, "no progress"
            valid = i < len(words) and rng.random() >= gap
            ready = bool(rng.random() >= backpressure)
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, words[i] if i < len(words) else 0)
            ctx.set(dut.o.ready, ready)
            if valid and ctx.get(dut.i.ready):
                i += 1
            if ready and ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            cycle += 1
            await ctx.tick()
        stats["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got, stats["cycles"]


@pytest.mark.parametrize("gap,backpressure", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.4, 0.4)])
def test_every_beat_in_order(gap, backpressure):
    words = [int(v) for v in np.random.default_rng(1).integers(0, 1 << 12, 200)]
    got, cycles = run(RegisterSlice(unsigned(12)), words, gap=gap, backpressure=backpressure,
                      seed=7)
    assert got == words
    if not gap and not backpressure:
        assert cycles == len(words) + 1               # one beat per cycle, one of latency
