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


@pytest.mark.parametrize("name, bench, flow", [
    ("ulx3s-85f", True, "credit"), ("ulx3s-85f", False, "credit"),
    ("ulx3s-85f", True, None), ("ulx3s-85f", False, None), ("icebreaker", False, None),
    ("icebreaker", True, "credit"), ("ulx3s-85f", True, "stall"),
])
def test_tops_build_the_flow_asked_for(name, bench, flow, tmp_path):
    """The single array's bench and UART tops take the flow asked for (``None``: the
    default, auto: credit on ECP5, stall on iCE40); build.json and the netlist say so."""
    import json

    from boards.build import build_board
    from boards.targets import get_target
    from golden.examples import example_core
    kw = {} if flow is None else {"flow": flow}
    info = build_board(example_core(32, T=4), 2, get_target(name), tmp_path, bench=bench,
                       plan_only=True, buffer_bytes=128, log=lambda *_: None, **kw)
    flow = flow or ("credit" if name == "ulx3s-85f" else "stall")
    assert info["flow"] == flow
    assert json.loads((tmp_path / "build.json").read_text())["flow"] == flow
    netlist = (tmp_path / "top.il").read_text()
    assert ("credit_occupancy" in netlist) == (flow == "credit")


def test_a_bad_flow_is_refused(tmp_path):
    from boards.build import build_board
    from boards.targets import get_target
    from golden.examples import example_core
    with pytest.raises(ValueError,
                       match="--flow must be one of auto, stall, credit, not 'skid'"):
        build_board(example_core(32, T=4), 2, get_target("ulx3s-85f"), tmp_path,
                    plan_only=True, flow="skid", log=lambda *_: None)


def test_auto_flow_per_family():
    """``--flow auto`` (the CLI default) is credit on ECP5 and stall on iCE40; an explicit
    flow is kept; anything else is refused by name."""
    from boards.targets import get_target
    from boards.top import flow_for
    assert flow_for(get_target("ulx3s-85f")) == "credit"
    assert flow_for(get_target("orangecrab-25f"), "auto") == "credit"
    assert flow_for(get_target("icebreaker")) == "stall"
    assert flow_for(get_target("ulx3s-85f"), "stall") == "stall"
    assert flow_for(get_target("icebreaker"), "credit") == "credit"
    with pytest.raises(ValueError, match="not 'fast'"):
        flow_for(get_target("icebreaker"), "fast")


@pytest.mark.cocotb
def test_credit_flow_link_top_cocotb():
    """The host link drives a credit-flow array (the ECP5 UART top's) as golden says: RUN
    frames with the UART back-pressuring ``o_spikes``, loads, error frames (boards/cocotb_board.py
    through tests/test_boards_cocotb.py's runner)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_boards_cocotb import LINK_TESTS, PARAMS, _run

    from boards.top import LinkTop
    from golden.examples import example_core
    p = PARAMS["n12_p4_shift"]
    folded = example_core(**p["core"])
    plan = {"core": "core.npz", "lanes": p["lanes"], "divisor": 4,
            "buffer_bytes": p["buffer_bytes"], "timeout_bytes": 8, "seed": 11, "steps": 5}
    top = LinkTop(folded, p["lanes"], divisor=plan["divisor"], buffer_bytes=plan["buffer_bytes"],
                  timeout_bytes=plan["timeout_bytes"], memory_outreg=True, flow="credit")
    assert top.array.flow == "credit"
    _run("n12_p4_credit_outreg", top, plan, {"core.npz": folded.save}, LINK_TESTS)


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f"])
def test_bench_platform_leaves_the_board_clock_alone(name):
    """A bench platform's clock constraint is its own: a board platform made after it
    still has the board's clock (a shared Resource once carried the bench's 100 MHz into
    the next UART build, which then failed timing)."""
    from boards.targets import get_target
    from boards.top import bench_platform
    target = get_target(name)
    board = target.make_platform().default_clk_frequency
    bench = bench_platform(target, 123e6)
    assert bench.default_clk_frequency == 123e6
    assert target.make_platform().default_clk_frequency == board != 123e6
