# amaranth: UnusedElaboratable=no
# (the plan tests build components only to read their parameters or to elaborate them.)
"""hdl.plan / hdl.mapping / hdl.stages: every plan equals what elaboration builds.

The memories of each stage plan (name, width, depth, read ports) are compared with the
memories found by walking the elaborated fragment tree of the whole network; latencies and
beat counts with the built components and with simulation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Fragment, Shape
from amaranth.hdl._mem import MemoryInstance
from amaranth.lib import data
from amaranth.sim import Simulator

from golden.examples import example_core
from hdl.dense import DenseStage
from hdl.lif_array import LIFArray
from hdl.mapping import DEFAULT_IN_LANES, DEFAULT_LANES, HardwareMapping
from hdl.network import Readout, SpikingNetwork
from hdl.plan import dense_plan, lif_plan, network_plan, readout_plan
from hdl.stages import BUILDERS, builder_for

sys.path.insert(0, str(Path(__file__).parent))
from test_hdl_dense import input_beats, random_layer  # noqa: E402
from test_hdl_network import random_network  # noqa: E402


def elaborated_memories(component):
    """``{path: (width, depth, read ports)}`` of every memory in the elaborated design (the
    inner ``mem`` of a registered memory is reported under the memory's own path)."""
    found = {}

    def walk(frag, path):
        if isinstance(frag, MemoryInstance):
            name = ".".join(path[:-1] if path[-1] == "mem" else path)
            shape = frag._data.shape
            width = data.Layout.cast(shape).size if isinstance(shape, data.Layout) \
                else Shape.cast(shape).width
            found[name] = (width, frag._data.depth, len(frag._read_ports))
        for sub, name, _ in frag.subfragments:
            walk(sub, path + (name,))

    walk(Fragment.get(component, None), ())
    return found


def planned(plan):
    return {name: (m.width, m.depth, m.read_ports) for name, m in plan.memories()}


NETWORKS = [
    # sizes, T, norm, mpbn, lanes, in_lanes, tau
    ((6, 5, 3), 3, "tdbn", True, 1, 1, 0.25),
    ((10, 8, 7, 4), 4, "bntt", True, [3, 7, 2], 4, 0.5),      # affine, 8 / 3 not whole
    ((9, 12, 5), 2, "tebn", False, [5, 2], 3, 0.3),           # multiply leak + affine
    ((4, 3, 2), 1, "bn", False, [3, 1], 2, 0.25),              # T = 1: no replay buffer
    ((5, 3), 3, "none", False, [2], 5, 0.25),                  # readout only
]


MODES = [(False, "stall"), (True, "stall"), (True, "credit")]
MODE_IDS = ["plain", "outreg", "credit"]


@pytest.mark.parametrize("outreg, flow", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("case", range(len(NETWORKS)))
def test_network_plan_memories_match_elaboration(case, outreg, flow):
    sizes, T, norm, mpbn, lanes, in_lanes, tau = NETWORKS[case]
    inet = random_network(sizes, T=T, norm=norm, mpbn=mpbn, seed=200 + case, tau=tau)
    mapping = HardwareMapping.for_network(inet, lanes, in_lanes, outreg, flow=flow)
    dut = SpikingNetwork(inet, mapping)
    plan = network_plan(inet, dut.mapping)
    assert planned(plan) == elaborated_memories(dut)
    assert [s.name for s in plan.stages] == [p.name for p in dut.parts]
    for stage, part in zip(plan.stages, dut.parts):
        c = part.component
        if isinstance(c, DenseStage):
            assert (stage.beats, stage.in_beats, stage.lanes) == (c.beats, c.in_beats, c.lanes)
            assert stage.latency == c.latency
        elif isinstance(c, LIFArray):
            assert (stage.beats, stage.lanes) == (c.beats_per_step, c.lanes)
            assert stage.latency == c.latency
        else:
            assert isinstance(c, Readout) and stage.kind == "readout"
            assert stage.latency == c.latency == c.classes + 2


def test_affine_geometry_drift_fixed():
    """example_core(48, T=5, affine=True, channels=3) with 4 lanes: the affine table is
    T * 2**ceil(log2 3) = 20 words (it used to be estimated as 15)."""
    from boards.estimate import estimate
    from boards.targets import get_target
    folded = example_core(48, T=5, affine=True, channels=3)
    for outreg in (False, True):
        array = LIFArray.from_folded(folded, 4, memory_outreg=outreg)
        plan = lif_plan(folded.config, 4, outreg=outreg, name="lif")
        got = elaborated_memories(array)
        assert {m.name: (m.width, m.depth, m.read_ports) for m in plan.memories} == got
        assert got["affine"][1] == 20
        assert plan.latency == array.latency
    est = estimate(folded.config, 4, get_target("ulx3s-85f"), host_link=False)
    assert {n: d for n, d, _, _ in est.memories}["affine"] == 20


def test_affine_read_ports_planned():
    """Lanes that see different channel sequences need their own affine read port."""
    folded = example_core(30, T=2, affine=True, channels=3)          # 10 per channel
    array = LIFArray.from_folded(folded, 4)
    plan = lif_plan(folded.config, 4)
    got = elaborated_memories(array)
    assert got["affine"][2] > 1
    assert {m.name: (m.width, m.depth, m.read_ports) for m in plan.memories} == got


def _first_output_delay(dut, beats):
    """Cycles from accepting the vector's last input beat to its first output beat."""
    out = {}

    async def testbench(ctx):
        port = dut.input
        ctx.set(dut.o_current.ready, 1)
        cycle, i = 0, 0
        while "first" not in out:
            ctx.set(port.valid, i < len(beats))
            if i < len(beats):
                ctx.set(port.payload, beats[i])
            if i < len(beats) and ctx.get(port.ready):
                i += 1
                if i == len(beats):
                    out["last_in"] = cycle
            if ctx.get(dut.o_current.valid):
                out["first"] = cycle
            cycle += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out["first"] - out["last_in"]


@pytest.mark.parametrize("outreg, flow", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("analog", [False, True])
@pytest.mark.parametrize("active", [0, 1, 3])
def test_dense_latency_in_simulation(analog, active, outreg, flow):
    """One input beat with ``a`` active inputs: the first output beat comes
    ``max(1, a)`` (ingest) + ``max(1, a)`` (engine, beat 0) + ``latency`` cycles after it."""
    rng = np.random.default_rng(30 + active)
    layer = random_layer(rng, 6, 5, analog=analog)
    dut = DenseStage(layer, 2, in_lanes=6, T=1, memory_outreg=outreg, flow=flow)
    vec = np.zeros((1, 6), dtype=np.int64)
    vec[0, :active] = 3 if analog else 1
    delay = _first_output_delay(dut, input_beats(dut, vec))
    plan = dense_plan(layer, 2, 6, 1, outreg=outreg, flow=flow)
    assert plan.latency == dut.latency
    assert delay == 2 * max(1, active) + plan.latency


def test_dense_cycles_model():
    """The plan's cycle model is the engine's: ``beats * max(1, active)``."""
    rng = np.random.default_rng(3)
    layer = random_layer(rng, 32, 24, analog=False)
    plan = dense_plan(layer, 8, 8, 1)
    assert plan.cycles(6) == DenseStage(layer, 8, in_lanes=8).engine_cycles(6) == 18
    assert plan.cycles(0) == 3
    with pytest.raises(ValueError, match="active must be a non-negative integer, not -1"):
        plan.cycles(-1)


@pytest.mark.parametrize("sizes,lanes,in_lanes", [((16, 24, 12, 4), [4, 4, 2], 4),
                                                   ((30, 20, 5), [2, 5], 6),
                                                   ((12, 32, 8), [8, 2], 3)])
@pytest.mark.parametrize("flow", ["stall", "credit"])
def test_cycle_model_matches_simulation(sizes, lanes, in_lanes, flow):
    """The plan's cycles per sample (from golden's activity), averaged over samples
    streamed back to back, is the simulated interval between results within 5 %."""
    from test_hdl_network import random_samples, simulate
    inet = random_network(sizes, T=4, seed=3)
    x = random_samples(inet, 10, seed=4, zeros=0.3)
    dut = SpikingNetwork(inet, HardwareMapping.for_network(inet, lanes, in_lanes, flow=flow))
    x_q, _ = inet.quantize_input(x)
    got = simulate(dut, x_q, monitor=False)
    res = inet.run(x, per_sample=True)
    est = [dut.plan.cycles_per_sample(
        [int(np.count_nonzero(x_q[s]))]
        + [[int(res.spikes[l][t, s].sum()) for t in range(inet.T)]
           for l in range(len(res.spikes))]) for s in range(len(x))]
    measured = np.mean(np.diff(got["result"]))
    assert abs(np.mean(est[1:]) - measured) <= 0.05 * measured, (est, measured)


def test_readout_latency_in_simulation():
    """Result ``classes + 2`` cycles after the sample's last current beat."""
    C, P, T, Bc = 5, 2, 3, 8
    dut = Readout(C, P, T, Bc)
    plan = readout_plan(C, P, T, Bc)
    beats = plan.in_beats * T
    out = {}

    async def testbench(ctx):
        ctx.set(dut.o_result.ready, 1)
        cycle, i = 0, 0
        while "result" not in out:
            ctx.set(dut.i_current.valid, i < beats)
            ctx.set(dut.i_current.payload, [i, -i])
            if i < beats and ctx.get(dut.i_current.ready):
                i += 1
                if i == beats:
                    out["last"] = cycle
            if ctx.get(dut.o_result.valid):
                out["result"] = cycle
            cycle += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert out["result"] - out["last"] == plan.latency == dut.latency == C + 2


def test_mapping_defaults_and_caps():
    inet = random_network((6, 20, 3), T=2, seed=3)
    m = HardwareMapping.for_network(inet)
    assert m.lanes == (min(DEFAULT_LANES, 20), 3) and m.in_lanes == min(DEFAULT_IN_LANES, 6)
    assert HardwareMapping.for_network(inet, 4, 2, False) == HardwareMapping((4, 3), 2, False)
    assert HardwareMapping.for_network(inet, m) is m
    assert network_plan(inet, m).mapping == m
    assert m.to_json() == {"lanes": [16, 3], "in_lanes": 6, "outreg": True, "slices": True,
                           "flow": "stall"}
    assert not HardwareMapping.for_network(inet, slices=False).slices
    assert HardwareMapping.for_network(inet, flow="credit").flow == "credit"


def test_mapping_errors_name_field_and_value():
    inet = random_network((6, 5, 3), T=2, seed=3)
    with pytest.raises(ValueError, match=r"layer1: lanes must be a positive integer, not 0"):
        HardwareMapping((2, 0))
    with pytest.raises(ValueError, match="in_lanes must be a positive integer, not -1"):
        HardwareMapping((2, 2), -1)
    with pytest.raises(ValueError, match="outreg must be True or False, not 'yes'"):
        HardwareMapping((2, 2), 1, "yes")
    with pytest.raises(ValueError, match="slices must be True or False, not None"):
        HardwareMapping((2, 2), 1, True, None)
    with pytest.raises(ValueError, match="flow must be one of 'stall', 'credit', not 'auto'"):
        HardwareMapping((2, 2), 1, True, True, "auto")
    with pytest.raises(ValueError, match="give in_lanes/outreg/slices/flow inside"):
        HardwareMapping.for_network(inet, HardwareMapping((2, 3)), flow="credit")
    with pytest.raises(ValueError, match="lanes must be a tuple of positive integers"):
        HardwareMapping(4)
    with pytest.raises(ValueError, match="lanes lists 3 values, the network has 2 layers"):
        HardwareMapping.for_network(inet, [1, 1, 1])
    with pytest.raises(ValueError, match="layer0: in_lanes 7 exceeds the layer's input count 6"):
        HardwareMapping.for_network(inet, 1, 7)
    with pytest.raises(ValueError, match="layer1: lanes 4 exceeds"):
        HardwareMapping((1, 4), 1).check(inet)
    with pytest.raises(dataclass_error()):
        HardwareMapping((1, 1)).in_lanes = 3


def dataclass_error():
    from dataclasses import FrozenInstanceError
    return FrozenInstanceError


def test_unknown_kind_is_refused():
    inet = random_network((6, 5, 3), T=2, seed=3)

    class Odd:
        kind = "conv9d"

    assert builder_for(inet.layers[0]) is BUILDERS["dense"]
    with pytest.raises(ValueError, match="no hardware builder for layer kind 'conv9d'"):
        builder_for(Odd())
