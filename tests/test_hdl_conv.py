# amaranth: UnusedElaboratable=no
"""hdl.conv: every output beat equals golden IntegerConv2d.synapse, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.core import to_beats
from golden.fixed import Fixed
from golden.layers.base import LayerFormats
from golden.layers.conv2d import IntegerConv2d
from hdl.conv import ConvStage, conv_weight_words


def random_conv(rng, in_shape, c_out, k, *, stride=1, padding=0, analog=False,
                weight=Fixed(8, 7), x=Fixed(8, 6), current_frac=None, current_bits=None):
    """A random :class:`IntegerConv2d` (weights at the rails included); ``current_frac``
    sets the requantization shift (default: one that saturates some currents)."""
    W_q = rng.integers(weight.min_int, weight.max_int + 1, (c_out, in_shape[0], k, k))
    rails = rng.random(W_q.shape) < 0.05
    W_q[rails] = rng.choice([weight.min_int, weight.max_int], int(rails.sum()))
    acc_frac = weight.frac + (x.frac if analog else 0)
    if current_frac is None:
        current_frac = acc_frac - int(rng.integers(0, 4))
    current = Fixed(current_bits or max(10, current_frac + 3), current_frac)
    bias_q = np.round(rng.normal(0, 1, c_out) * 2.0 ** acc_frac).astype(np.int64)
    fmts = LayerFormats(weight=weight, current=current,
                        membrane=Fixed(current.bits + 2, current.frac))
    return IntegerConv2d(W_q.astype(np.int64), bias_q, acc_frac, fmts, tuple(in_shape), stride,
                         padding, input_bits=x.bits if analog else None)


def random_inputs(rng, layer, vectors, density):
    """``vectors`` input maps ``(V, C, H, W)``: spikes, or pixels with zeros and rails."""
    shape = (vectors,) + tuple(layer.in_shape)
    active = rng.random(shape) < density
    if layer.input_bits is None:
        return active.astype(np.int64)
    fmt = Fixed(layer.input_bits, 0)
    x = rng.integers(fmt.min_int, fmt.max_int + 1, shape)
    rails = rng.random(shape) < 0.1
    x[rails] = rng.choice([fmt.min_int, fmt.max_int], int(rails.sum()))
    return np.where(active, x, 0)


def expected_beats(layer, inputs, lanes, T):
    c_q, _ = layer.synapse(inputs[:, None])                 # (V, 1, Co, Ho, Wo)
    flat = c_q.reshape(len(inputs), -1)
    beats = []
    for vec in flat:
        for _ in range(T if layer.input_bits is not None else 1):
            beats.extend(to_beats(vec[None], lanes))
    return np.array(beats)


def input_beats(dut, inputs):
    Q = dut.in_lanes
    beats = []
    for vec in to_beats(inputs.reshape(len(inputs), -1), Q):
        if dut.analog:
            beats.append([int(v) for v in vec])
        else:
            beats.append(sum(int(b) << q for q, b in enumerate(vec)))
    return beats


def run_conv(dut, in_beats, n_out, *, seed=0, gap=0.0, backpressure=0.0, limit=None):
    """Drive ``in_beats`` (random gaps), collect ``n_out`` beats (random backpressure);
    returns ``(beats, cycles, when)`` with ``when[b]`` the cycle output beat ``b`` was
    taken."""
    rng = np.random.default_rng(seed)
    port = dut.input
    got, when, stats = [], [], {}
    k = dut.layer.kernel
    limit = limit or 20 * (len(in_beats) + n_out * dut.lanes
                           + dut.n_in * k * k * dut.groups * 4) + 500

    async def testbench(ctx):
        i = cycle = 0
        while len(got) < n_out:
            if cycle > limit:
                raise AssertionError(f"no progress after {cycle} cycles: {len(got)}/{n_out} "
                                     f"beats out, {i}/{len(in_beats)} in")
            valid = i < len(in_beats) and rng.random() >= gap
            ctx.set(port.valid, valid)
            if i < len(in_beats):
                ctx.set(port.payload, in_beats[i])
            ready = bool(rng.random() >= backpressure)
            ctx.set(dut.o_current.ready, ready)
            if valid and ctx.get(port.ready):
                i += 1
            if ready and ctx.get(dut.o_current.valid):
                when.append(cycle)
                got.append([int(v) for v in ctx.get(dut.o_current.payload)])
            cycle += 1
            await ctx.tick()
        stats["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(got), stats["cycles"], when


def check(dut, inputs, *, seed, gap=0.0, backpressure=0.0):
    want = expected_beats(dut.layer, inputs, dut.lanes, dut.T)
    got, cycles, _ = run_conv(dut, input_beats(dut, inputs), len(want), seed=seed, gap=gap,
                              backpressure=backpressure)
    B = dut.beats
    for b, (w, g) in enumerate(zip(want, got)):
        if not np.array_equal(w, g):
            lane = int(np.flatnonzero(w != g)[0])
            raise AssertionError(f"vector {b // B} beat {b % B} lane {lane}: expected "
                                 f"{int(w[lane])}, got {int(g[lane])} (seed {seed})")
    return cycles


CASES = [
    # in_shape, c_out, k, stride, padding, lanes, in_lanes, analog, T, density
    ((1, 5, 5), 3, 3, 1, 1, 2, 3, False, 1, 0.4),
    ((2, 6, 6), 4, 3, 1, 1, 4, 8, False, 1, 0.3),
    ((3, 5, 4), 5, 3, 2, 1, 3, 5, False, 1, 0.5),
    ((2, 4, 4), 2, 2, 2, 0, 4, 4, False, 1, 0.6),
    ((4, 4, 4), 6, 1, 1, 0, 6, 16, False, 1, 0.5),
    ((1, 6, 6), 4, 3, 1, 1, 16, 6, True, 3, 0.8),
    ((2, 5, 5), 3, 3, 2, 1, 2, 4, True, 1, 0.7),
    ((1, 4, 4), 2, 3, 1, 0, 1, 1, True, 2, 1.0),
]


@pytest.mark.parametrize("in_shape,c_out,k,stride,padding,lanes,in_lanes,analog,T,density",
                         CASES)
def test_conv_matches_golden(in_shape, c_out, k, stride, padding, lanes, in_lanes, analog, T,
                             density):
    seed = int(np.prod(in_shape)) * 100 + c_out * 10 + lanes + (7 if analog else 0)
    rng = np.random.default_rng(seed)
    layer = random_conv(rng, in_shape, c_out, k, stride=stride, padding=padding, analog=analog)
    dut = ConvStage(layer, lanes, in_lanes=in_lanes, T=T)
    inputs = random_inputs(rng, layer, 4, density)
    inputs[1] = 0                                  # an all-zero vector: biases only
    check(dut, inputs, seed=seed, gap=0.3, backpressure=0.3)


def test_saturation_and_shifts():
    """Left, zero and right requantization shifts; currents clamp at both rails."""
    rng = np.random.default_rng(11)
    for current_frac in (9, 7, 3):
        layer = random_conv(rng, (2, 4, 4), 3, 3, padding=1, current_frac=current_frac,
                            current_bits=5 if current_frac == 3 else None)
        inputs = random_inputs(rng, layer, 3, 0.7)
        c_q, n_sat = layer.synapse(inputs[:, None])
        check(ConvStage(layer, 3, in_lanes=4), inputs, seed=current_frac)
    assert n_sat > 0, "the last case must saturate some currents"


def test_weight_words_layout():
    rng = np.random.default_rng(3)
    layer = random_conv(rng, (2, 4, 4), 5, 3)
    words = conv_weight_words(layer, 2)
    assert words.shape == (3 * 2 * 9, 2)
    g, ci, ky, kx, p = 1, 1, 2, 0, 1
    assert words[((g * 2 + ci) * 3 + ky) * 3 + kx, p] == layer.W_q[g * 2 + p, ci, ky, kx]
    assert np.all(words[((2 * 2 + 1) * 3 + 1) * 3 + 1, 1:] == 0)     # channel 5 is padding


@pytest.mark.parametrize("analog", [False, True])
@pytest.mark.parametrize("active", [3, 18])
def test_cycles_match_model(analog, active):
    """Vectors of ``a`` active inputs back to back, no stall: in steady state each takes
    ``ConvStage.vector_cycles(a)`` = max(scatter, drain) (the interval between the last
    beats of consecutive vectors); 3 active inputs are drain-bound, 18 scatter-bound."""
    rng = np.random.default_rng(5 + active)
    layer = random_conv(rng, (2, 6, 6), 4, 3, padding=1, analog=analog)
    dut = ConvStage(layer, 2, in_lanes=8, T=1)
    inputs = np.zeros((6, 72), dtype=np.int64)
    for v in range(len(inputs)):
        inputs[v, rng.choice(72, active, replace=False)] = rng.integers(1, 60, active)
    inputs = inputs.reshape(6, 2, 6, 6) if analog else np.minimum(inputs, 1).reshape(6, 2, 6, 6)
    want = expected_beats(layer, inputs, 2, 1)
    got, cycles, when = run_conv(dut, input_beats(dut, inputs), len(want), seed=1)
    assert np.array_equal(got, want)
    B = dut.beats
    bound = dut.scatter_cycles(active) > dut.drain_cycles
    assert bound == (active == 18)
    for v in range(3, len(inputs)):
        interval = when[(v + 1) * B - 1] - when[v * B - 1]
        assert interval == dut.vector_cycles(active), (v, interval)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    layer = random_conv(rng, (1, 4, 4), 2, 3)
    with pytest.raises(TypeError, match="IntegerConv2d"):
        ConvStage(object(), 1)
    with pytest.raises(ValueError, match="lanes 9 exceeds"):
        ConvStage(layer, 9)
    with pytest.raises(ValueError, match="in_lanes must be a positive integer"):
        ConvStage(layer, 1, in_lanes=0)
    layer.input_max = 0                   # counts (> 1) are taken: tests/test_hdl_pool_sum*
    with pytest.raises(ValueError, match="input_max must be a positive integer, not 0"):
        ConvStage(layer, 1)


@pytest.mark.parametrize("k,padding", [(3, 1), (1, 0)])
def test_back_to_back_same_sum(k, padding):
    """Two consecutive scatter operations on the same partial-sum word (the last offset of
    one input, the first of the next): the second must see the first's write (forwarding)."""
    rng = np.random.default_rng(17)
    layer = random_conv(rng, (2, 4, 4), 3, k, padding=padding)
    inputs = np.zeros((3, 2, 4, 4), dtype=np.int64)
    inputs[0, 0, 3, 3] = inputs[0, 1, 3 - (k - 1), 3 - (k - 1)] = 1
    inputs[1, 0, 2, 2] = inputs[1, 1, 2 - (k - 1), 2 - (k - 1)] = 1
    inputs[2] = rng.random((2, 4, 4)) < 0.5
    check(ConvStage(layer, 3, in_lanes=4), inputs, seed=k)


@pytest.mark.parametrize("analog,T", [(False, 1), (True, 1), (True, 3)])
@pytest.mark.parametrize("active", [0, 1, 4])
def test_latency_in_simulation(analog, T, active):
    """One input beat with ``a`` active inputs: the first output beat comes ``max(1, a)``
    (ingest) + ``max(1, a * k * k * G)`` (scatter) + ``latency`` cycles after it (plan and
    component agree)."""
    from hdl.plan import conv_plan
    rng = np.random.default_rng(40 + active)
    layer = random_conv(rng, (2, 3, 3), 5, 3, padding=1, analog=analog)
    dut = ConvStage(layer, 2, in_lanes=18, T=T)
    vec = np.zeros((1, 2, 3, 3), dtype=np.int64)
    vec.reshape(-1)[[1, 5, 9, 16][:active]] = 3 if analog else 1
    got, _, when = run_conv(dut, input_beats(dut, vec), 1)
    assert np.array_equal(got, expected_beats(layer, vec, 2, T)[:1])
    plan = conv_plan(layer, 2, 18, T)
    assert plan.latency == dut.latency
    # The input beat is taken in cycle 0.
    assert when[0] == max(1, active) + max(1, active * 9 * dut.groups) + dut.latency
