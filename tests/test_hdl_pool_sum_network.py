# amaranth: UnusedElaboratable=no
"""Conv SNNs with average (and sum) pooling on the generic chain, bit for bit against
golden's IntegerNetwork: conv -> avg pool -> conv -> flatten -> dense readout (the pool's
counts into a conv stage), and conv -> avg pool -> flatten -> dense readout (into a dense
stage). Every LIF layer's spikes, the logits and the labels; the plan's memories against
elaboration and its cycles per sample against simulation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from golden.calibrate import calibrate
from golden.examples import example_conv_network
from golden.layers import IntegerPool2d
from golden.network import IntegerNetwork
from hdl.conv import ConvStage
from hdl.dense import DenseStage
from hdl.mapping import HardwareMapping
from hdl.network import SpikingNetwork
from hdl.plan import network_plan
from hdl.pool import PoolStage

sys.path.insert(0, str(Path(__file__).parent))
from test_hdl_network import simulate  # noqa: E402
from test_hdl_plan import elaborated_memories, planned  # noqa: E402
from test_hdl_conv_network import check_network  # noqa: E402

#: conv 4ch pad 1 - LIF (4x8x8), avg pool 2 (counts 0..4), conv 8ch stride 2 - LIF
#: (8x2x2), flatten, dense readout.
CONV_AFTER = [{"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
              {"kind": "pool2d", "kernel": 2, "mode": "avg"},
              {"kind": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1},
              {"kind": "flatten"}]
#: conv 3ch pad 1 - LIF (3x8x8), avg pool 2 (3x4x4 counts), flatten, dense readout.
DENSE_AFTER = [{"kind": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1},
               {"kind": "pool2d", "kernel": 2, "mode": "avg"},
               {"kind": "flatten"}]


def pooled_network(layers, *, mpbn="channel", norm="tdbn", T=3, seed=0, classes=5):
    """The float net, and its integer model calibrated to 12-bit formats."""
    net = example_conv_network((1, 8, 8), layers, classes=classes, norm=norm, mpbn=mpbn, T=T,
                               seed=seed, weight_scale=1.5)
    x = np.random.default_rng(seed + 1).integers(0, 17, (64, 1, 8, 8)) / 16.0
    formats = calibrate(net, x, bits=12, weight_bits=8, headroom=1.0)
    return net, IntegerNetwork.from_folded(net.fold(), formats)


def images(n, seed=5, zeros=0.3):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 17, (n, 1, 8, 8)) / 16.0
    x[rng.random(x.shape) < zeros] = 0.0
    return x


def plan_cycles(dut, inet, x_q, res):
    """The plan's cycles per sample of the conv -> pool -> conv network from golden's
    activity (non-zero pixels, non-zero counts per step, LIF spikes per step)."""
    T = inet.T
    pooled = inet.layers[1].run(res.spikes[0]).out
    return [dut.plan.cycles_per_sample(
        [int(np.count_nonzero(x_q[s])), [int(np.count_nonzero(pooled[t, s])) for t in range(T)],
         [int(res.spikes[1][t, s].sum()) for t in range(T)]]) for s in range(len(x_q))]


def test_golden_folds_the_average_into_the_next_weights():
    """golden's side of the contract: the folded average pooling is a sum pooling, the
    next synaptic layer's folded weights are divided by K = 4 (bias unchanged) and its
    integer stage reads counts 0..4."""
    for layers, nxt in ((CONV_AFTER, 2), (DENSE_AFTER, 3)):
        net, inet = pooled_network(layers)
        as_sum = [dict(layer, mode="sum") if layer["kind"] == "pool2d" else layer
                  for layer in layers]
        summed = example_conv_network((1, 8, 8), as_sum, classes=5, norm="tdbn",
                                      mpbn="channel", T=3, seed=0, weight_scale=1.5)
        fa, fs = net.fold(), summed.fold()
        assert fa.layers[1].mode == "sum"
        np.testing.assert_allclose(fa.layers[nxt].weight, fs.layers[nxt].weight / 4)
        np.testing.assert_array_equal(fa.layers[nxt].bias, fs.layers[nxt].bias)
        pool = inet.layers[1]
        assert isinstance(pool, IntegerPool2d) and (pool.mode, pool.out_max) == ("sum", 4)
        assert inet.layers[nxt].input_max == 4 and inet.layers[nxt].input_bits is None
        # The float model of the average and the integer model agree on most labels.
        x = images(40, seed=2)
        agree = np.mean(net.forward(x).predict() == inet.run(x).predict())
        assert agree >= 0.8, agree


MAPPINGS = [
    None,                                               # defaults: lanes 16 capped
    HardwareMapping((4, 3, 2, 2, 5), in_lanes=5, outreg=False, slices=False),
]


@pytest.mark.parametrize("mapping", range(len(MAPPINGS)), ids=["default", "narrow"])
def test_avg_pool_then_conv_matches_golden(mapping):
    _, inet = pooled_network(CONV_AFTER, mpbn="element" if mapping else "channel",
                             seed=mapping)
    x = images(4, seed=10 + mapping)
    dut = SpikingNetwork(inet, MAPPINGS[mapping])
    assert [p.name for p in dut.parts] == ["conv0", "lif0", "pool1", "conv2", "lif2",
                                           "dense4", "readout"]
    pool, conv = dut.parts[2], dut.parts[3]
    assert (pool.output, conv.input) == ("o_counts", "i_counts")
    assert conv.component.counts and len(pool.component.o_counts.payload[0]) == 3
    # The default mapping streams freely (its cycles are checked against the plan), the
    # narrow one with random input gaps and output backpressure.
    got, res, x_q = check_network(dut, inet, x, seed=mapping, stall=0.2 if mapping else 0.0)
    pooled = inet.layers[1].run(res.spikes[0]).out
    assert pooled.max() == 4 and np.any((pooled > 1) & (pooled < 4))
    if not mapping:
        # The plan's cycles per sample (from golden's activity: pixels, non-zero counts,
        # LIF spikes) against the simulated interval between results, within 5 %.
        est = plan_cycles(dut, inet, x_q, res)
        measured = np.mean(np.diff(got["result"]))
        assert abs(np.mean(est[1:]) - measured) <= 0.05 * measured, (est, measured)


@pytest.mark.parametrize("lanes", [None, (4, 3, 3, 4)], ids=["default", "narrow"])
def test_avg_pool_then_dense_matches_golden(lanes):
    _, inet = pooled_network(DENSE_AFTER, seed=4, classes=4)
    mapping = None if lanes is None else HardwareMapping(lanes, in_lanes=5)
    dut = SpikingNetwork(inet, mapping)
    assert [p.name for p in dut.parts] == ["conv0", "lif0", "pool1", "dense3", "readout"]
    dense = dut.parts[3].component
    assert isinstance(dense, DenseStage) and dense.counts and dut.parts[3].input == "i_counts"
    check_network(dut, inet, images(4, seed=12), seed=3, stall=0.2 if lanes else 0.0)


@pytest.mark.parametrize("layers,lanes", [(CONV_AFTER, (4, 3, 2, 2, 5)),
                                          (DENSE_AFTER, (4, 3, 3, 4))], ids=["conv", "dense"])
def test_plan_matches_elaboration(layers, lanes):
    _, inet = pooled_network(layers, seed=3, classes=lanes[-1])
    for mapping in (None, HardwareMapping(lanes, in_lanes=5, outreg=True)):
        dut = SpikingNetwork(inet, mapping)
        plan = network_plan(inet, dut.mapping)
        assert planned(plan) == elaborated_memories(dut)
        assert [s.name for s in plan.stages] == [p.name for p in dut.parts]
        for stage, part in zip(plan.stages, dut.parts):
            c = part.component
            if isinstance(c, (ConvStage, PoolStage, DenseStage)):
                assert (stage.beats, stage.in_beats, stage.lanes, stage.latency) == \
                    (c.beats, c.in_beats, c.lanes, c.latency), stage.name
            if isinstance(c, ConvStage):
                for a in (0, 1, 7, 40):
                    assert stage.cycles(a) == c.vector_cycles(a)


def cycle_figure(samples=6):
    """The plan's cycles per sample against the simulated interval between results of the
    conv -> avg pool -> conv network (default mapping), as printed by ``__main__``."""
    _, inet = pooled_network(CONV_AFTER)
    x = images(samples, seed=10)
    dut = SpikingNetwork(inet)
    x_q, _ = inet.quantize_input(x)
    got = simulate(dut, x_q.reshape(len(x), -1))
    est = plan_cycles(dut, inet, x_q, inet.run(x, per_sample=True))
    return dut, float(np.mean(est[1:])), float(np.mean(np.diff(got["result"])))


if __name__ == "__main__":
    dut, est, measured = cycle_figure()
    print(f"conv -> avg pool -> conv -> flatten -> dense, lanes {list(dut.lanes)}, T "
          f"{dut.T}: plan {est:.1f} cycles/sample, simulated {measured:.1f}")
    for stage in dut.plan.stages:
        print(f"  {stage.name:8s} {stage.kind:8s} beats {stage.beats:3d} in_beats "
              f"{stage.in_beats:3d} latency {stage.latency}")
