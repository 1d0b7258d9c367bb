"""spikefold plan (boards/capacity.py): block RAM and cycles from the stage plans."""

from __future__ import annotations

import json

import numpy as np
import pytest

from boards.estimate import plan_memories
from boards.capacity import CapacityPlan, StagePlanRow, capacity_plan, standin_network
from boards.targets import get_target
from golden.modelfile import DEFAULT_CONV_MODEL, ModelFile
from hdl.mapping import HardwareMapping
from hdl.plan import network_plan
from spikefold import cli


@pytest.fixture(scope="module")
def conv():
    model = ModelFile.load(DEFAULT_CONV_MODEL)
    return model.integer(), model.test_x[:3]


def test_blocks_are_the_builds(conv):
    """The plan's blocks are the build's estimate (one rule), split into weights + state."""
    inet, x = conv
    target = get_target("ulx3s-85f")
    cp = capacity_plan(inet, x, target)
    plan = network_plan(inet, HardwareMapping.for_network(inet))
    mems = plan_memories(plan.stages, target.bram_shapes, min_depth=32)   # the build's rule
    assert cp.blocks == sum(b for *_, b in mems) > 0
    assert cp.state_blocks == sum(b for n, *_, b in mems if not n.endswith(".weights"))
    assert cp.fits and cp.streamed() == []
    weights = {r.name: r.weight_bits for r in cp.rows if r.weight_bits}
    assert set(weights) == {"conv0", "conv2", "dense4"}


def test_cycles_are_the_plans(conv):
    """Cycles per image: the network plan's busiest stage at golden's measured activity."""
    inet, x = conv
    cp = capacity_plan(inet, x, get_target("ulx3s-85f"))
    plan = network_plan(inet, HardwareMapping.for_network(inet))
    res = inet.run(x)
    x_q, _ = inet.quantize_input(x)
    want = []
    for b in range(len(x)):
        pooled = res.traces[1].out[:, b]
        a2 = [int(np.count_nonzero(pooled[t])) for t in range(inet.T)]
        a4 = [int(np.count_nonzero(res.traces[3].out[t, b])) for t in range(inet.T)]
        want.append(plan.cycles_per_sample([int(np.count_nonzero(x_q[b])), a2, a4]))
    assert cp.cycles_per_image == int(np.mean(want))
    assert cp.cycles_per_image == max(r.cycles for r in cp.rows) or \
        cp.cycles_per_image >= max(r.cycles for r in cp.rows) - len(x)
    assert [round(r, 6) for r in cp.rates] == [
        round(float(t.spikes.mean()), 6) for t in res.traces if t.spikes is not None]


def test_threshold_layouts(conv):
    """Per-neuron vs per-channel threshold tables: bits follow the geometry."""
    inet, x = conv
    cp = capacity_plan(inet, x, get_target("ulx3s-85f"))
    rows = {t[0]: t for t in cp.thresholds}
    assert set(rows) == {"lif0", "lif2"}
    name, n, c, eb, cb, ek, ck, built = rows["lif0"]
    assert built == "per-channel"        # the fixture's conv net: channel-wise MPBN
    width = inet.layers[0].config.threshold.bits + 2
    assert (n, c) == (16 * 8 * 8, 16)
    # 16 lanes of an 8x8 map: a beat is one channel, so one read port on a 16-word table
    assert eb == 16 * 64 * width and cb == 16 * width
    assert ck == 0 and ek == 16          # 16 words are LUT RAM; 64-word ones a block each


def _row(name, w, s):
    return StagePlanRow(name, "conv2d", 1, w * 18432, s * 18432, w, s, 1)


def test_streamed_weights_rule():
    """Largest weight memories leave the chip first; state that alone overflows: None."""
    target = get_target("icebreaker")                  # 30 blocks
    cp = CapacityPlan(target, 2, [_row("a", 10, 5), _row("b", 20, 5), _row("c", 4, 1)], 1,
                      [], [])
    assert not cp.fits and [r.name for r in cp.streamed()] == ["b"]
    cp = CapacityPlan(target, 2, [_row("a", 1, 20), _row("b", 1, 20)], 1, [], [])
    assert cp.streamed() is None


def test_small_standin():
    """The stand-in builder at a small scale: the shapes and T asked for."""
    inet, x = standin_network(2, shape=(3, 8, 8), blocks=((4, 1), (8, 1)), samples=1)
    assert inet.T == 2 and x.shape == (1, 3, 8, 8)
    assert [l.kind for l in inet.layers] == ["conv2d", "pool2d", "conv2d", "pool2d", "flatten",
                                             "dense"]
    assert inet.layers[2].out_shape == (8, 4, 4)


def test_cli(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert cli.main(["plan", "--model", str(DEFAULT_CONV_MODEL), "--board", "ulx3s-85f",
                     "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fits on chip" in text and "lif0 thresholds" in text
    (plan,) = json.loads(out.read_text())
    assert plan["fits"] and plan["board"] == "ulx3s-85f" and plan["T"] == 8


@pytest.mark.parametrize("argv, needle", [
    (["--samples", "0"], "--samples must be at least 1, not 0"),
    (["-T", "4"], "-T is fixed by the model file"),
    (["--lanes", "0"], "--lanes must be a positive integer, not 0"),
    (["--board", "nope"], "nope"),
])
def test_cli_errors(argv, needle, capsys):
    rc = cli.main(["plan", "--model", str(DEFAULT_CONV_MODEL), *argv])
    assert rc != 0
    assert needle in capsys.readouterr().err


def test_bad_T_refused_before_any_plan(capsys):
    assert cli.main(["plan", "--standin", "cifar", "-T", "2", "0"]) == 2
    captured = capsys.readouterr()
    assert "-T must be at least 1, not 0" in captured.err and "calibrating" not in captured.out
