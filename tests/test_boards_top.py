"""boards.top: the bench shells' registered XOR tree observes every bit it is given."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from boards.top import XOR_GROUP, _xor_out


@pytest.mark.parametrize("width", [1, 4, 5, 16, 17, 190])
def test_xor_tree_is_the_parity_of_every_bit_delayed(width):
    """``out`` at cycle ``c`` is the parity of the inputs at ``c - depth``, with ``depth``
    register levels (one per tree level, one for the pin's register); flipping any single
    input bit flips the output."""
    seed = 5 + width
    rng = np.random.default_rng(seed)
    m = Module()
    src = Signal(width)
    out = Signal()
    _xor_out(m, out, [src])
    depth, n = 1, width
    while n > XOR_GROUP:
        n, depth = -(-n // XOR_GROUP), depth + 1
    cycles = 40 + width
    values = [int(v) for v in rng.integers(0, 1 << min(width, 62), cycles)]
    # Single-bit flips of a base value: every input position must reach the output.
    base = values[0]
    values[depth:depth + width] = [base ^ (1 << i) for i in range(width)]
    got = []

    async def testbench(ctx):
        for v in values:
            ctx.set(src, v)
            await ctx.tick()
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    want = [bin(v).count("1") & 1 for v in values]
    # got[c] is out after the edge ending cycle c: the parity of values[c - depth + 1].
    assert got[depth - 1:] == want[:cycles - depth + 1], f"seed {seed}"
