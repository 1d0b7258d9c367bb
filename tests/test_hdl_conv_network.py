# amaranth: UnusedElaboratable=no
"""A conv SNN on the generic chain: every LIF layer's spikes, the logits and the labels equal
golden IntegerNetwork.run, bit for bit; every conv/pool plan matches what elaboration builds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from golden.calibrate import calibrate
from golden.core import from_beats
from golden.examples import example_conv_network
from golden.network import IntegerNetwork
from hdl.conv import ConvStage
from hdl.lif_array import LIFArray
from hdl.mapping import HardwareMapping
from hdl.network import SpikingNetwork
from hdl.plan import network_plan
from hdl.pool import PoolStage

sys.path.insert(0, str(Path(__file__).parent))
from test_hdl_network import simulate  # noqa: E402
from test_hdl_plan import elaborated_memories, planned  # noqa: E402


def conv_network(mpbn="channel", norm="tdbn", T=3, seed=0, layers=None):
    """golden's example conv net (conv 4ch pad 1 - LIF, max pool, conv 8ch stride 2 - LIF,
    flatten, dense readout of 5) on 1x8x8, calibrated to 12-bit formats."""
    net = example_conv_network((1, 8, 8), layers, classes=5, norm=norm, mpbn=mpbn, T=T,
                               seed=seed, weight_scale=1.5)
    x = np.random.default_rng(seed + 1).integers(0, 17, (64, 1, 8, 8)) / 16.0
    formats = calibrate(net, x, bits=12, weight_bits=8, headroom=1.0)
    return IntegerNetwork.from_folded(net.fold(), formats)


def images(n, seed=5, zeros=0.3):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 17, (n, 1, 8, 8)) / 16.0
    x[rng.random(x.shape) < zeros] = 0.0
    return x


def check_network(dut, inet, x, *, seed, stall):
    """Simulate ``dut`` on ``x`` (input gaps and output backpressure ``stall``): every conv
    LIF layer's spikes, the logits and the labels equal golden's. Returns ``(got, res,
    x_q)``."""
    x_q, _ = inet.quantize_input(x)
    got = simulate(dut, x_q.reshape(len(x), -1), seed=seed, gap=stall, backpressure=stall)
    res = inet.run(x, per_sample=True)
    T, S = inet.T, len(x)
    spiking = [l for l, layer in enumerate(inet.layers) if layer.kind == "conv2d"]
    for k, (l, array) in enumerate(zip(spiking, dut.lif)):
        want = res.spikes[k].reshape(T, S, -1).transpose(1, 0, 2).reshape(S * T, -1)
        spikes = from_beats(np.array(got["spikes"][k]), array.config.neurons)
        assert 0 < want.mean() < 1
        bad = np.argwhere(spikes != want)
        assert not len(bad), (f"layer{l} spikes: first mismatch sample {bad[0][0] // T} "
                              f"t {bad[0][0] % T} neuron {bad[0][1]}")
    np.testing.assert_array_equal(got["logits"], res.logits_q)
    np.testing.assert_array_equal(got["label"], res.predict())
    return got, res, x_q


MAPPINGS = [
    None,                                               # defaults: lanes 16 capped
    HardwareMapping((4, 3, 2, 2, 5), in_lanes=5, outreg=False, slices=False),
    # the credit flow (ECP5's default for network builds): the LIF arrays' and the dense
    # readout's output queues
    HardwareMapping((4, 3, 2, 2, 5), in_lanes=5, flow="credit"),
]
IDS = ["default", "narrow", "credit"]


@pytest.mark.parametrize("mapping", range(len(MAPPINGS)), ids=IDS)
def test_conv_network_matches_golden(mapping):
    inet = conv_network(mpbn="element" if mapping else "channel", seed=mapping)
    x = images(4, seed=10 + mapping)
    dut = SpikingNetwork(inet, MAPPINGS[mapping])
    assert [p.name for p in dut.parts] == ["conv0", "lif0", "pool1", "conv2", "lif2",
                                           "dense4", "readout"]
    # channel-wise MPBN: a threshold word per channel; element-wise: per neuron
    want_channels = [None, None] if mapping else [inet.layers[0].out_shape[0],
                                                  inet.layers[2].out_shape[0]]
    assert [array.threshold_channels for array in dut.lif] == want_channels
    assert [d.flow for d in dut.dense] == [dut.mapping.flow]
    assert [a.flow for a in dut.lif] == [dut.mapping.flow] * len(dut.lif)
    # The default mapping streams freely (its cycles are checked against the plan), the
    # narrow one with random input gaps and output backpressure.
    got, res, x_q = check_network(dut, inet, x, seed=mapping, stall=0.2 if mapping else 0.0)
    T, S = inet.T, len(x)
    if not mapping:
        # The plan's cycles per sample (from golden's activity: pixels, pooled spikes,
        # LIF spikes) against the simulated interval between results, within 5 %.
        pooled = inet.layers[1].run(res.spikes[0]).out
        est = [dut.plan.cycles_per_sample(
            [int(np.count_nonzero(x_q[s])), [int(pooled[t, s].sum()) for t in range(T)],
             [int(res.spikes[1][t, s].sum()) for t in range(T)]]) for s in range(S)]
        measured = np.mean(np.diff(got["result"]))
        assert abs(np.mean(est[1:]) - measured) <= 0.05 * measured, (est, measured)


@pytest.mark.parametrize("mapping", range(len(MAPPINGS)), ids=IDS)
def test_conv_plan_memories_match_elaboration(mapping):
    inet = conv_network(seed=3, mpbn="channel")
    dut = SpikingNetwork(inet, MAPPINGS[mapping])
    plan = network_plan(inet, dut.mapping)
    assert planned(plan) == elaborated_memories(dut)
    assert "lif0.threshold" in planned(plan) and "lif0.threshold_0" not in planned(plan)
    assert [s.name for s in plan.stages] == [p.name for p in dut.parts]
    for stage, part in zip(plan.stages, dut.parts):
        c = part.component
        if isinstance(c, ConvStage):
            assert (stage.beats, stage.in_beats, stage.lanes, stage.latency) == \
                (c.beats, c.in_beats, c.lanes, c.latency)
            for a in (0, 1, 7, 40):
                assert stage.cycles(a) == c.vector_cycles(a)
        elif isinstance(c, PoolStage):
            assert (stage.beats, stage.in_beats, stage.lanes, stage.latency) == \
                (c.beats, c.in_beats, c.lanes, c.latency)
        elif isinstance(c, LIFArray):
            assert (stage.beats, stage.lanes, stage.latency) == \
                (c.beats_per_step, c.lanes, c.latency)


def test_flatten_lanes_must_match():
    inet = conv_network(seed=1)
    with pytest.raises(ValueError, match="layer3: flatten has lanes 3 but the stage before "
                                         "has 2"):
        SpikingNetwork(inet, HardwareMapping((4, 3, 2, 3, 5), in_lanes=5))


def test_export_conv_network_verilog(tmp_path):
    """The conv network converts to Verilog; the description lists every layer and the
    LIF arrays' monitors."""
    import json

    from hdl.network import export_network_verilog
    inet = conv_network(seed=2, T=2)
    v, j = export_network_verilog(inet, HardwareMapping((4, 3, 2, 2, 5), in_lanes=4), tmp_path,
                                  name="convnet")
    assert "module convnet(" in v.read_text()
    desc = json.loads(j.read_text())
    assert desc["sizes"] == [64, 256, 64, 32, 32, 5]
    assert [row["beats_per_step"] for row in desc["layers"]] == [64, 22, 16, 16, 1]
    assert [m["instance"] for m in desc["monitors"]] == ["lif0", "lif2"]
    assert [m["neurons"] for m in desc["monitors"]] == [256, 32]
