# amaranth: UnusedElaboratable=no
# (test_bad_arguments builds components whose __init__ raises: nothing to elaborate.)
"""hdl.dense: every output beat equals golden.network.IntegerLayer.synapse, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.core import to_beats
from golden.fixed import Fixed
from golden.network import IntegerLayer, LayerFormats
from hdl.dense import DenseStage, weight_words


def random_layer(rng, n_in, n_out, *, analog, weight=Fixed(8, 7), x=Fixed(8, 6),
                 current_frac=None, bias_scale=1.0, sparse_weights=0.0):
    """A random :class:`IntegerLayer`; ``current_frac`` sets the requantization shift
    (default: a shift that makes some currents saturate)."""
    W_q = rng.integers(weight.min_int, weight.max_int + 1, (n_out, n_in))
    W_q[rng.random(W_q.shape) < sparse_weights] = 0
    # Weights at the rails: the products and sums must still be exact.
    rails = rng.random(W_q.shape) < 0.05
    W_q[rails] = rng.choice([weight.min_int, weight.max_int], int(rails.sum()))
    acc_frac = weight.frac + (x.frac if analog else 0)
    if current_frac is None:
        current_frac = acc_frac - int(rng.integers(0, 4))
    current = Fixed(max(10, current_frac + 3), current_frac)
    scale = 2.0 ** acc_frac * bias_scale
    bias_q = np.round(rng.normal(0, 1, n_out) * scale).astype(np.int64)
    fmts = LayerFormats(weight=weight, current=current,
                        membrane=Fixed(current.bits + 2, current.frac))
    return IntegerLayer(W_q.astype(np.int64), bias_q, acc_frac, fmts,
                        x.bits if analog else None)


def random_inputs(rng, layer, vectors, density):
    """``vectors`` input vectors: spikes (0/1) or pixels ``x_q`` (with zeros, rails)."""
    n_in = layer.n_in
    active = rng.random((vectors, n_in)) < density
    if layer.input_bits is None:
        return active.astype(np.int64)
    fmt = Fixed(layer.input_bits, 0)
    x = rng.integers(fmt.min_int, fmt.max_int + 1, (vectors, n_in))
    rails = rng.random(x.shape) < 0.1
    x[rails] = rng.choice([fmt.min_int, fmt.max_int], int(rails.sum()))
    return np.where(active, x, 0)


def expected_beats(layer, inputs, lanes, T):
    """Golden output beats: per vector ``B`` beats, repeated ``T`` times for pixels."""
    c_q, _ = layer.synapse(inputs)
    beats = []
    for c in c_q:
        vec = to_beats(c[None], lanes)
        for _ in range(T if layer.input_bits is not None else 1):
            beats.extend(vec)
    return np.array(beats)


def input_beats(dut, inputs):
    """Input vectors as the stream's beats (spike bitmaps as integers, pixel lists)."""
    Q = dut.in_lanes
    beats = []
    for vec in to_beats(inputs, Q):
        if dut.analog:
            beats.append([int(v) for v in vec])
        else:
            beats.append(sum(int(b) << q for q, b in enumerate(vec)))
    return beats


def run_dense(dut, in_beats, n_out, *, seed=0, gap=0.0, backpressure=0.0, limit=None):
    """Drive ``in_beats`` (random gaps) and collect ``n_out`` output beats (random
    backpressure); returns (beats, cycles)."""
    rng = np.random.default_rng(seed)
    port = dut.input
    got = []
    stats = {}
    limit = limit or 50 * (len(in_beats) + n_out * (1 + dut.layer.n_in)) + 200

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
                got.append([int(v) for v in ctx.get(dut.o_current.payload)])
            cycle += 1
            await ctx.tick()
        stats["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(got), stats["cycles"]


def check(dut, inputs, *, seed, gap=0.0, backpressure=0.0):
    want = expected_beats(dut.layer, inputs, dut.lanes, dut.T)
    got, cycles = run_dense(dut, input_beats(dut, inputs), len(want), seed=seed, gap=gap,
                            backpressure=backpressure)
    for b, (w, g) in enumerate(zip(want, got)):
        if not np.array_equal(w, g):
            lane = int(np.flatnonzero(w != g)[0])
            raise AssertionError(f"output beat {b} lane {lane}: expected {int(w[lane])}, got "
                                 f"{int(g[lane])} (seed {seed})")
    return cycles


# (memory_outreg, flow): the original pipeline, the registered one (the networks' default),
# and the credit flow on both.
MODES = [(False, "stall"), (True, "stall"), (True, "credit"), (False, "credit")]
MODE_IDS = ["plain", "outreg", "credit", "plain-credit"]

CASES = [
    # n_in, n_out, lanes, in_lanes, analog, T, density
    (5, 3, 1, 1, False, 1, 0.5),
    (1, 1, 1, 1, False, 1, 0.7),
    (13, 7, 3, 4, False, 1, 0.4),
    (16, 16, 16, 16, False, 1, 0.9),
    (20, 9, 4, 5, False, 1, 0.0),
    (12, 10, 5, 3, True, 1, 0.6),
    (9, 6, 4, 2, True, 3, 0.5),
    (17, 12, 12, 4, True, 4, 1.0),
    (1, 2, 1, 1, True, 2, 0.8),
]


@pytest.mark.parametrize("outreg, flow", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("n_in,n_out,lanes,in_lanes,analog,T,density", CASES)
def test_dense_matches_golden(n_in, n_out, lanes, in_lanes, analog, T, density, outreg, flow):
    seed = n_in * 1000 + n_out * 10 + lanes
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, n_in, n_out, analog=analog)
    dut = DenseStage(layer, lanes, in_lanes=in_lanes, T=T, memory_outreg=outreg, flow=flow)
    inputs = random_inputs(rng, layer, 6, density)
    inputs[0] = 0                                  # an all-zero vector: biases only
    check(dut, inputs, seed=seed, gap=0.3, backpressure=0.3)


@pytest.mark.parametrize("analog", [False, True])
@pytest.mark.parametrize("outreg, flow", MODES, ids=MODE_IDS)
def test_one_active_input_per_vector(analog, outreg, flow):
    """Vectors with exactly one active input, each at another position, back to back: the
    engine waits for every list, so it reads a bank's only entry right after the ingest
    wrote it (the hand-over must not let that read meet the write)."""
    rng = np.random.default_rng(11)
    layer = random_layer(rng, 16, 4, analog=analog)
    dut = DenseStage(layer, 2, in_lanes=4, T=1, memory_outreg=outreg, flow=flow)
    inputs = np.zeros((12, 16), dtype=np.int64)
    for v, j in enumerate(rng.permutation(16)[:12]):
        inputs[v, j] = 5 if analog else 1
    check(dut, inputs, seed=11)


@pytest.mark.parametrize("outreg, flow", MODES, ids=MODE_IDS)
def test_lists_of_changing_length_back_to_back(outreg, flow):
    """The ingest runs ahead of a busy engine (one input beat per vector, four output
    beats), and the list lengths change from vector to vector (0, 1 and several active
    inputs): the engine must take each bank's own count when it switches banks."""
    rng = np.random.default_rng(12)
    layer = random_layer(rng, 16, 8, analog=False)
    dut = DenseStage(layer, 2, in_lanes=16, memory_outreg=outreg, flow=flow)
    counts = [1, 5, 0, 3, 1, 1, 6, 0, 1, 2, 1, 7, 0, 0, 1, 4]
    inputs = np.zeros((len(counts), 16), dtype=np.int64)
    for v, c in enumerate(counts):
        inputs[v, rng.choice(16, c, replace=False)] = 1
    check(dut, inputs, seed=12)


def test_saturation_and_shifts():
    """Left, zero and right requantization shifts; currents clamp at both rails."""
    rng = np.random.default_rng(7)
    rails = set()
    for frac_delta in (-2, 0, 5):
        for analog in (False, True):
            acc_frac = 7 + (6 if analog else 0)
            layer = random_layer(rng, 10, 6, analog=analog, current_frac=acc_frac - frac_delta,
                                 bias_scale=4.0)
            dut = DenseStage(layer, 3, in_lanes=2, T=2, memory_outreg=analog)
            inputs = random_inputs(rng, layer, 8, 0.7)
            c_q, _ = layer.synapse(inputs)
            fmt = layer.formats.current
            assert layer.shift == frac_delta
            rails |= {(frac_delta, "max") for _ in [0] if np.any(c_q == fmt.max_int)}
            rails |= {(frac_delta, "min") for _ in [0] if np.any(c_q == fmt.min_int)}
            check(dut, inputs, seed=int(rng.integers(1 << 30)), backpressure=0.2)
    assert {(-2, "max"), (-2, "min"), (0, "max"), (0, "min")} <= rails, rails


@pytest.mark.parametrize("outreg, flow", MODES, ids=MODE_IDS)
def test_full_throughput_and_cycle_count(outreg, flow):
    """No backpressure, no gaps: a vector with ``a`` active inputs costs ``B * a`` engine
    cycles, back to back (the lists are double-buffered), with or without registered
    memory outputs (those only lengthen the pipeline)."""
    rng = np.random.default_rng(3)
    layer = random_layer(rng, 32, 24, analog=False)
    dut = DenseStage(layer, 8, in_lanes=8, memory_outreg=outreg, flow=flow)
    vectors = 20
    inputs = np.zeros((vectors, 32), dtype=np.int64)
    for v in range(vectors):
        inputs[v, rng.choice(32, 6, replace=False)] = 1
    cycles = check(dut, inputs, seed=3)
    engine = vectors * dut.engine_cycles(6)
    # Only the first vector's ingest (<= 6 + 4 cycles) and the pipeline fill are not hidden.
    assert engine <= cycles <= engine + 10 + 4 + dut.latency, (cycles, engine)


def test_analog_replay_cycles():
    """The analog layer computes once and replays: T copies cost ``T * B`` cycles, not
    ``T * B * a``."""
    rng = np.random.default_rng(4)
    layer = random_layer(rng, 40, 16, analog=True)
    T = 8
    dut = DenseStage(layer, 4, in_lanes=4, T=T)
    inputs = random_inputs(rng, layer, 4, 1.0)
    active = int(np.count_nonzero(inputs, axis=1).max())
    cycles = check(dut, inputs, seed=4)
    per_sample = max(dut.engine_cycles(active), T * dut.beats)
    assert cycles <= 4 * per_sample + dut.engine_cycles(active) + 20, cycles


def test_weight_memory_layout():
    """Word ``k * n_in + j`` holds ``W_q[k*P + p, j]`` in lane ``p`` (documented layout)."""
    rng = np.random.default_rng(5)
    layer = random_layer(rng, 6, 5, analog=False)
    words = weight_words(layer, 2)
    assert words.shape == (3 * 6, 2)
    for k in range(3):
        for j in range(6):
            for p in range(2):
                i = k * 2 + p
                assert words[k * 6 + j, p] == (layer.W_q[i, j] if i < 5 else 0)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    layer = random_layer(rng, 4, 3, analog=False)
    with pytest.raises(TypeError, match="IntegerLayer"):
        DenseStage("layer", 1)
    with pytest.raises(ValueError, match="lanes must be a positive integer, not 0"):
        DenseStage(layer, 0)
    with pytest.raises(ValueError, match="lanes 4 exceeds"):
        DenseStage(layer, 4)
    with pytest.raises(ValueError, match="in_lanes 5 exceeds"):
        DenseStage(layer, 1, in_lanes=5)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        DenseStage(layer, 1, T=0)
    with pytest.raises(ValueError, match="memory_outreg must be True or False, not 1"):
        DenseStage(layer, 1, memory_outreg=1)
    with pytest.raises(ValueError, match="flow must be one of 'stall', 'credit', not 'fast'"):
        DenseStage(layer, 1, flow="fast")
    bad = IntegerLayer(layer.W_q * 1000, layer.bias_q, layer.acc_frac, layer.formats, None)
    with pytest.raises(ValueError, match=r"W_q\[\d+, \d+\] = .* does not fit"):
        DenseStage(bad, 1)


@pytest.mark.parametrize("n_out, n_in, lanes, bits", [(10, 7, 4, 16), (12, 3, 3, 8), (5, 9, 8, 12),
                                                      (1, 1, 1, 4)])
def test_weights_from_memory_words_inverts_the_packing(n_out, n_in, lanes, bits):
    """What a host writes into a weight memory reads back as the layer's weights (the
    device model's LOAD_WEIGHTS), the rails included."""
    from types import SimpleNamespace

    from hdl.dense import weight_memory_words, weights_from_memory_words
    rng = np.random.default_rng(n_out * 100 + bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    W = rng.integers(lo, hi + 1, (n_out, n_in))
    W[0, 0], W[-1, -1] = lo, hi
    layer = SimpleNamespace(W_q=W, formats=SimpleNamespace(weight=SimpleNamespace(bits=bits)))
    words = weight_memory_words(layer, lanes)
    assert len(words) == -(-n_out // lanes) * n_in
    np.testing.assert_array_equal(weights_from_memory_words(words, n_out, n_in, lanes, bits), W)


@pytest.mark.parametrize("analog, T", [(False, 1), (True, 1), (True, 3)])
@pytest.mark.parametrize("outreg, flow", MODES, ids=MODE_IDS)
def test_long_backpressure(analog, T, outreg, flow):
    """The output is ready one cycle in ten while the engine could emit a beat per cycle
    (short lists, many beats): the stall flow holds the whole engine; the credit flow's
    engine must stop issuing when its queue (16 words) or replay banks are spoken for, and
    lose nothing."""
    rng = np.random.default_rng(21)
    layer = random_layer(rng, 8, 40, analog=analog)
    dut = DenseStage(layer, 1, in_lanes=8, T=T, memory_outreg=outreg, flow=flow)
    inputs = random_inputs(rng, layer, 4, 0.15)
    check(dut, inputs, seed=21, backpressure=0.9)
