"""The network models: float reference vs fold, bit-exact integer network vs its table.

``synapse_reference`` restates the synapse/readout rows of golden/network.py's docstring
table with Python integers, one neuron at a time; the LIF rows are golden.core.CoreModel
(tested against its own restatement in test_golden_core.py).
"""

import copy
import math
import time

import numpy as np
import pytest

from golden.calibrate import calibrate, evaluate, format_for, integer_bits
from golden.fixed import Fixed
from golden.examples import example_network
from golden.fold import Compare
from golden.modelfile import load_default
from golden.network import (
    NORMS, PER_TIMESTEP_NORMS, IntegerNetwork, LayerFormats, Network, NetworkFormats,
)


@pytest.fixture(scope="module")
def default():
    return load_default()


def random_network(norm, *, sizes=(12, 16, 16, 5), T=4, mpbn=False, seed=0):
    """A trained-looking network with normalizer ``norm`` (MPBN gammas of every sign)."""
    return example_network(sizes, norm=norm, mpbn=mpbn, T=T, seed=seed, weight_scale=1.5)


def random_inputs(n, n_in, seed=1):
    return np.random.default_rng(seed).integers(0, 17, (n, n_in)) / 16.0


# -- float: literal normalizers vs fold -----------------------------------------------------

@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("mpbn", [False, True])
def test_fold_matches_literal_float_model(norm, mpbn):
    net = random_network(norm, mpbn=mpbn)
    x = random_inputs(200, 12)
    ref = net.forward(x)
    folded = net.fold()
    got = folded.forward(x)
    for a, b in zip(ref.spikes, got.spikes):
        assert 0 < a.mean() < 1                      # the test exercises firing and silence
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-12)
    assert (folded.layers[0].affine is not None) == (norm in PER_TIMESTEP_NORMS)
    if mpbn:
        compare = folded.layers[0].rule.compare
        assert {int(c) for c in compare} == {int(c) for c in Compare}


def test_default_model_fold_matches_literal(default):
    x = default.inputs(default.test_x)
    ref = default.network.forward(x)
    got = default.network.fold().forward(x)
    for a, b in zip(ref.spikes, got.spikes):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-12)


# -- bit-exact network ----------------------------------------------------------------------

def test_default_model_fixed_within_one_point_of_float(default):
    """The issue's target: 16-bit fixed point within 1 pp of float on the digits test split."""
    x = default.inputs(default.test_x)
    t0 = time.perf_counter()
    report = evaluate(default.network, default.formats, x, default.test_y)
    elapsed = time.perf_counter() - t0
    assert report.float_accuracy >= 0.95
    assert abs(report.fixed_accuracy - report.float_accuracy) <= 0.01
    assert report.n == 540
    assert all(isinstance(v, int) for s in report.saturations for v in s.values())
    assert elapsed < 10, f"float + integer evaluation of 540 samples took {elapsed:.1f} s"


def test_default_model_calibration_reproduces_stored_formats(default):
    formats = calibrate(default.network, default.inputs(default.calib_x), bits=16)
    assert formats == default.formats


@pytest.mark.parametrize("bits", [8, 12])
def test_narrow_formats_still_close(default, bits):
    x = default.inputs(default.test_x)
    formats = calibrate(default.network, default.inputs(default.calib_x), bits=bits)
    assert all(f.current.bits == bits for f in formats.layers)
    report = evaluate(default.network, formats, x, default.test_y)
    assert report.fixed_accuracy >= report.float_accuracy - 0.02


def test_batch_path_equals_per_sample_cores(default):
    integer = IntegerNetwork.from_folded(default.network.fold(), default.formats)
    x = default.inputs(default.test_x[:60])
    a = integer.run(x)
    b = integer.run(x, per_sample=True)
    np.testing.assert_array_equal(a.logits_q, b.logits_q)
    for p, q in zip(a.spikes + a.currents_q, b.spikes + b.currents_q):
        np.testing.assert_array_equal(p, q)
    assert a.saturations == b.saturations


@pytest.mark.parametrize("norm", ["bntt", "tab"])
def test_batch_path_equals_per_sample_with_affine_and_saturation(norm):
    net = random_network(norm, mpbn=True, seed=3)
    x = random_inputs(40, 12, seed=4)
    formats = calibrate(net, x, bits=8, headroom=1.0)
    # Two fewer integer bits on every membrane and current, so that both saturate.
    formats = NetworkFormats(formats.input, tuple(
        LayerFormats(f.weight, Fixed(8, min(f.current.frac + 2, 7)),
                     None if f.membrane is None else Fixed(8, min(f.membrane.frac + 2, 7)),
                     f.scale) for f in formats.layers))
    integer = IntegerNetwork.from_folded(net.fold(), formats)
    a = integer.run(x)
    b = integer.run(x, per_sample=True)
    np.testing.assert_array_equal(a.logits_q, b.logits_q)
    for p, q in zip(a.spikes, b.spikes):
        np.testing.assert_array_equal(p, q)
    assert a.saturations == b.saturations
    assert a.total_saturations() > 0


def synapse_reference(W_q, bias_q, inputs, shift, fmt):
    """``sat_c((bias_q + sum_j W_q[i, j] * s[j]) >> shift)`` with Python ints, per neuron."""
    out = []
    for i in range(len(W_q)):
        acc = int(bias_q[i]) + sum(int(W_q[i][j]) * int(inputs[j]) for j in range(len(inputs)))
        c = acc >> shift if shift >= 0 else acc << -shift
        out.append(min(max(c, fmt.min_int), fmt.max_int))
    return out


@pytest.mark.parametrize("norm", ["tdbn", "bntt"])
def test_integer_network_follows_the_table(norm):
    net = random_network(norm, mpbn=True, seed=5)
    x = random_inputs(25, 12, seed=6)
    formats = calibrate(net, x, bits=10, weight_bits=6, input_bits=6, headroom=1.0)
    integer = IntegerNetwork.from_folded(net.fold(), formats)
    res = integer.run(x)
    x_q = np.floor(x * integer.input_format.scale + 0.5).astype(np.int64)
    for b in range(len(x)):
        inputs = [x_q[b]] * net.T
        for li, layer in enumerate(integer.layers):
            for t in range(net.T):
                want = synapse_reference(layer.W_q, layer.bias_q, inputs[t], layer.shift,
                                         layer.formats.current)
                assert list(res.currents_q[li][t, b]) == want, (b, li, t)
            if li < len(res.spikes):
                inputs = [res.spikes[li][t, b].astype(np.int64) for t in range(net.T)]
        assert list(res.logits_q[b]) == list(res.currents_q[-1][:, b].sum(axis=0))
    # The first layer accumulates on the product grid Fw + Fx; spike layers on Fw.
    assert integer.layers[0].acc_frac == formats.layers[0].weight.frac + formats.input.frac
    assert integer.layers[1].acc_frac == formats.layers[1].weight.frac


def test_accumulator_width_holds_the_worst_case():
    net = random_network("none", sizes=(40, 30, 4), seed=7)
    formats = calibrate(net, random_inputs(10, 40), bits=12, weight_bits=9, input_bits=7)
    integer = IntegerNetwork.from_folded(net.fold(), formats)
    for i, layer in enumerate(integer.layers):
        w = formats.layers[i].weight
        x_min = formats.input.min_int if i == 0 else 1
        worst = abs(w.min_int * x_min) * layer.n_in + int(np.max(np.abs(layer.bias_q)))
        assert worst <= 2 ** (layer.acc_bits - 1)
        assert layer.acc_bits == max(layer.product_bits, layer.bias_bits) + math.ceil(
            math.log2(layer.n_in + 1))
    assert integer.logit_bits == formats.layers[-1].current.bits + 2


def test_argmax_ties_go_to_the_lowest_index():
    net = random_network("none", sizes=(6, 8, 4), seed=8)
    net.layers[-1].weight[:] = 0.0
    net.layers[-1].bias[:] = [0.1, 0.3, 0.3, 0.3]
    formats = calibrate(net, random_inputs(5, 6), bits=12)
    res = IntegerNetwork.from_folded(net.fold(), formats).run(random_inputs(5, 6))
    assert np.all(res.logits_q[:, 1] == res.logits_q[:, 3])
    assert np.all(res.predict() == 1)


def test_integer_helpers():
    assert integer_bits(0) == 1
    assert integer_bits(0.9) == 1
    assert integer_bits(1.0) == 2
    assert integer_bits(3.99) == 3
    assert format_for(1.0, 8) == Fixed(8, 6)
    with pytest.raises(ValueError, match="layer0 current"):
        format_for(1e6, 8, what="layer0 current")


# -- bad input ------------------------------------------------------------------------------

def test_network_rejects_bad_layers():
    net = random_network("tdbn")
    bad = copy.deepcopy(net.layers)
    bad[0].norm_params["gamma"] = np.ones(3)
    with pytest.raises(ValueError, match=r"layer0\.norm\.gamma must have shape"):
        Network(bad, T=4)
    bad = copy.deepcopy(net.layers)
    bad[1].weight = np.ones((16, 7))
    with pytest.raises(ValueError, match="layer1.weight has 7 inputs"):
        Network(bad, T=4)
    bad = copy.deepcopy(net.layers)
    bad[0].bias[2] = np.nan
    with pytest.raises(ValueError, match="layer0.bias"):
        Network(bad, T=4)
    bad = copy.deepcopy(net.layers)
    bad[0].norm = "groupnorm"
    with pytest.raises(ValueError, match="layer0.norm must be one of"):
        Network(bad, T=4)
    with pytest.raises(ValueError, match="x must have shape"):
        net.forward(np.zeros((3, 5)))


def test_formats_json_round_trip(default):
    assert NetworkFormats.from_json(default.formats.to_json()) == default.formats
    with pytest.raises(ValueError, match="unknown layer format fields"):
        LayerFormats.from_json({"weight": {"bits": 8, "frac": 7}, "current": {"bits": 8,
                                "frac": 4}, "membran": None})
