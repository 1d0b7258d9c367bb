# amaranth: UnusedElaboratable=no
"""Count inputs (after a sum pooling layer): ConvStage and DenseStage take ``n`` in
``0 .. input_max`` on ``i_counts`` and compute golden's ``acc = bias_q + sum W_q * n``
bit for bit (weights at the rails, full counts, saturating currents), with random input
gaps and output backpressure; their plans (memories, latency, cycles) match."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hdl.conv import ConvStage
from hdl.dense import DenseStage
from hdl.plan import conv_plan, count_bits, dense_plan

sys.path.insert(0, str(Path(__file__).parent))
import test_hdl_conv as tconv  # noqa: E402
import test_hdl_dense as tdense  # noqa: E402
from test_hdl_plan import elaborated_memories  # noqa: E402


def random_counts(rng, shape, input_max, density):
    """Counts ``0 .. input_max``: zeros, full windows and everything between."""
    n = rng.integers(1, input_max + 1, shape)
    n[rng.random(shape) < 0.15] = input_max
    return np.where(rng.random(shape) < density, n, 0)


def count_beats(inputs, lanes):
    from golden.core import to_beats
    return [[int(v) for v in vec] for vec in to_beats(inputs.reshape(len(inputs), -1), lanes)]


def assert_beats(want, got, B):
    assert len(got) == len(want)
    for b, (w, g) in enumerate(zip(want, got)):
        if not np.array_equal(w, g):
            lane = int(np.flatnonzero(w != g)[0])
            raise AssertionError(f"vector {b // B} beat {b % B} lane {lane}: expected "
                                 f"{int(w[lane])}, got {int(g[lane])}")


@pytest.mark.parametrize("in_shape,c_out,k,stride,padding,lanes,in_lanes,input_max", [
    ((2, 4, 4), 3, 3, 1, 1, 2, 5, 4),
    ((4, 4, 4), 8, 3, 2, 1, 3, 16, 4),        # the test net's second conv after a 2x2 sum
    ((1, 5, 5), 2, 2, 1, 0, 5, 7, 9),         # counts of a 3x3 window: 4 bits
    ((3, 3, 3), 4, 1, 1, 0, 4, 27, 16),       # a sum of sums
])
def test_conv_counts_match_golden(in_shape, c_out, k, stride, padding, lanes, in_lanes,
                                  input_max):
    seed = int(np.prod(in_shape)) + 10 * c_out + input_max
    rng = np.random.default_rng(seed)
    layer = replace(tconv.random_conv(rng, in_shape, c_out, k, stride=stride, padding=padding),
                    input_max=input_max)
    dut = ConvStage(layer, lanes, in_lanes=in_lanes, T=3)
    assert (dut.input_name, dut.counts, dut.analog) == ("i_counts", True, False)
    assert len(dut.i_counts.payload[0]) == count_bits(input_max)
    inputs = random_counts(rng, (5,) + in_shape, input_max, 0.5)
    inputs[1] = 0
    inputs[2] = input_max
    want = tconv.expected_beats(layer, inputs, lanes, 1)     # one vector per timestep
    got, _, _ = tconv.run_conv(dut, count_beats(inputs, in_lanes), len(want), seed=seed,
                               gap=0.3, backpressure=0.3)
    assert_beats(want, got, dut.beats)
    plan = conv_plan(layer, lanes, in_lanes, 3)
    assert {m.name: (m.width, m.depth) for m in plan.memories} == {
        name: (w, d) for name, (w, d, _) in elaborated_memories(dut).items()}
    assert (plan.latency, plan.per_sample) == (dut.latency, False)


@pytest.mark.parametrize("active", [2, 12])
def test_conv_counts_cycles_and_latency(active):
    """Vectors of ``a`` non-zero counts back to back: the interval between vectors is
    ``vector_cycles(a)`` (the count's value does not matter: one multiply per input and
    offset), the first beat ``latency`` cycles after the scatter (the multiply path)."""
    rng = np.random.default_rng(50 + active)
    layer = replace(tconv.random_conv(rng, (2, 6, 6), 4, 3, padding=1), input_max=4)
    dut = ConvStage(layer, 2, in_lanes=8, T=1)
    plan = conv_plan(layer, 2, 8, 1)
    inputs = np.zeros((6, 72), dtype=np.int64)
    for v in range(len(inputs)):
        inputs[v, rng.choice(72, active, replace=False)] = rng.integers(1, 5, active)
    inputs = inputs.reshape(6, 2, 6, 6)
    want = tconv.expected_beats(layer, inputs, 2, 1)
    got, _, when = tconv.run_conv(dut, count_beats(inputs, 8), len(want), seed=1)
    assert np.array_equal(got, want)
    B = dut.beats
    for v in range(3, len(inputs)):
        interval = when[(v + 1) * B - 1] - when[v * B - 1]
        assert interval == dut.vector_cycles(active) == plan.cycles(active), (v, interval)
    # One beat with two non-zero counts, taken in cycle 0: 2 ingest cycles, 2 * k*k * G
    # scatter cycles, then the latency.
    layer = replace(tconv.random_conv(rng, (2, 3, 3), 5, 3, padding=1), input_max=4)
    dut = ConvStage(layer, 2, in_lanes=18, T=1)
    vec = np.zeros((1, 2, 3, 3), dtype=np.int64)
    vec.reshape(-1)[[1, 9]] = [4, 1]
    got, _, when = tconv.run_conv(dut, count_beats(vec, 18), 1)
    assert np.array_equal(got, tconv.expected_beats(layer, vec, 2, 1)[:1])
    assert when[0] == 2 + 2 * 9 * dut.groups + dut.latency
    assert dut.latency == conv_plan(layer, 2, 18, 1).latency


@pytest.mark.parametrize("outreg", [False, True], ids=["plain", "outreg"])
@pytest.mark.parametrize("n_in,n_out,lanes,in_lanes,input_max,T", [
    (16, 5, 2, 4, 4, 3),
    (32, 10, 5, 16, 4, 1),
    (9, 7, 7, 3, 9, 2),
])
def test_dense_counts_match_golden(n_in, n_out, lanes, in_lanes, input_max, T, outreg):
    seed = n_in * 100 + n_out + input_max
    rng = np.random.default_rng(seed)
    layer = replace(tdense.random_layer(rng, n_in, n_out, analog=False), input_max=input_max)
    dut = DenseStage(layer, lanes, in_lanes=in_lanes, T=T, memory_outreg=outreg)
    assert dut.counts and not dut.analog and dut.input is dut.i_counts
    inputs = random_counts(rng, (6, n_in), input_max, 0.6)
    inputs[1] = 0
    inputs[2] = input_max
    want = tdense.expected_beats(layer, inputs, lanes, T)       # one vector per timestep
    got, _ = tdense.run_dense(dut, count_beats(inputs, in_lanes), len(want), seed=seed,
                              gap=0.3, backpressure=0.3)
    assert_beats(want, got, dut.beats)
    plan = dense_plan(layer, lanes, in_lanes, T, outreg=outreg)
    assert (plan.latency, plan.per_sample) == (dut.latency, False)
    assert dut.latency == dense_plan(replace(layer, input_bits=8), lanes, in_lanes, 1,
                                     outreg=outreg).latency     # the multiply path's depth
    mems = elaborated_memories(dut)
    assert mems["active_list"][0] == plan.memories[0].width == \
        max(1, (n_in - 1).bit_length()) + count_bits(input_max)
