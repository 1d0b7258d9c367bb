"""Convolutional networks: conv2d, pool2d and flatten kinds (golden/layers/).

``conv_reference`` restates the conv rows of golden/layers/conv2d.py's docstring table with
Python integers, one output pixel at a time; ``pool_reference`` the pooling table of
golden/layers/pool.py. The LIF rows are golden.core.CoreModel, fed here through an explicit
channel-major index ``c * H * W + y * W + x``.
"""

import json
import math
import time

import numpy as np
import pytest

from golden.calibrate import calibrate, evaluate
from golden.core import CoreModel
from golden.examples import example_conv_network
from golden.fixed import Fixed
from golden.fold import Compare
from golden.layers import (
    KINDS, Conv2d, Dense, Flatten, IntegerConv2d, IntegerPool2d, LayerFormats, Neuron, Pool2d,
    bits_for,
)
from golden.modelfile import ModelFile, load_default
from golden.network import NORMS, PER_TIMESTEP_NORMS, IntegerNetwork, Network

MPBN_MODES = [None, "channel", "element"]


def random_images(n, shape=(1, 8, 8), seed=1):
    return np.random.default_rng(seed).integers(0, 17, (n,) + shape) / 16.0


def conv_net(norm="tdbn", mpbn="channel", pool="max", seed=0, T=4):
    """The issue's test net: conv(4ch, 3x3, pad 1)-LIF, pool, conv(8ch, stride 2)-LIF,
    flatten, dense readout, on 1x8x8 inputs."""
    layers = [{"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
              {"kind": "pool2d", "kernel": 2, "mode": pool},
              {"kind": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1},
              {"kind": "flatten"}]
    return example_conv_network((1, 8, 8), layers, classes=5, norm=norm, mpbn=mpbn, T=T,
                                seed=seed, weight_scale=1.5)


# -- float: literal normalizers vs fold -----------------------------------------------------

@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("mpbn", MPBN_MODES)
def test_fold_matches_literal_float_model(norm, mpbn):
    net = conv_net(norm, mpbn)
    x = random_images(200)
    ref = net.forward(x)
    folded = net.fold()
    got = folded.forward(x)
    assert len(ref.spikes) == 2
    for a, b in zip(ref.spikes, got.spikes):
        assert 0 < a.mean() < 1                      # the test exercises firing and silence
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-12)
    for i in (0, 2):
        layer = folded.layers[i]
        assert (layer.affine is not None) == (norm in PER_TIMESTEP_NORMS)
        if layer.affine is not None:
            assert layer.affine.a.shape == (4, layer.out_shape[0])
        assert layer.rule.shape == layer.out_shape
        if mpbn is not None:
            assert {int(c) for c in layer.rule.compare.ravel()} == {int(c) for c in Compare}
        if mpbn == "channel":                        # one rule per channel, broadcast
            assert np.all(layer.rule.theta == layer.rule.theta[:, :1, :1])
    if norm in ("bn", "tdbn", "homeostatic"):     # folded into the conv weights
        assert not np.allclose(folded.layers[0].weight, net.layers[0].weight)


def test_elementwise_mpbn_gives_one_threshold_per_neuron():
    folded = conv_net("none", "element").fold()
    theta = folded.layers[0].rule.theta
    assert theta.shape == (4, 8, 8)
    assert len(np.unique(theta)) > 4 * 8 * 8 // 2


@pytest.mark.parametrize("pool", ["max", "sum", "avg"])
def test_pool_modes_fold_and_float(pool):
    net = conv_net("bntt", "channel", pool=pool, seed=2)
    x = random_images(100, seed=3)
    ref = net.forward(x)
    folded = net.fold()
    got = folded.forward(x)
    for a, b in zip(ref.spikes, got.spikes):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-12)
    pooled = ref.traces[1].out
    spikes = ref.traces[0].out
    if pool == "max":
        assert set(np.unique(pooled)) <= {0.0, 1.0}
        np.testing.assert_array_equal(pooled[..., 0, 0], spikes[..., :2, :2].max(axis=(-2, -1)))
    elif pool == "sum":
        assert set(np.unique(pooled)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    else:
        assert set(np.unique(pooled)) <= {0.0, 0.25, 0.5, 0.75, 1.0}
        # Folded: a sum pooling layer, and the 1/4 in the next conv's weights.
        assert folded.layers[1].mode == "sum"
        np.testing.assert_array_equal(folded.layers[2].weight,
                                      net.layers[2].fold(4, net.neuron(2)).weight / 4)
        np.testing.assert_array_equal(folded.layers[2].bias, net.layers[2].bias)
        assert net.layers[1].mode == "avg"           # the trained network is unchanged


def test_avg_pool_scale_passes_flatten_and_max_pool_into_dense():
    layers = [{"kind": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1},
              {"kind": "pool2d", "kernel": 2, "mode": "avg"},
              {"kind": "pool2d", "kernel": 2, "mode": "max"},
              {"kind": "flatten"}]
    net = example_conv_network((1, 8, 8), layers, classes=4, norm="none", mpbn=None, seed=4)
    folded = net.fold()
    assert [getattr(layer, "mode", None) for layer in folded.layers] == [None, "sum", "max",
                                                                            None, None]
    np.testing.assert_array_equal(folded.layers[-1].weight, net.layers[-1].weight / 4)
    x = random_images(50, seed=5)
    np.testing.assert_allclose(folded.forward(x).logits, net.forward(x).logits, rtol=0,
                               atol=1e-12)


# -- integer stage vs a per-pixel restatement --------------------------------------------------

def conv_reference(W_q, bias_q, s, stride, padding, shift, fmt):
    """``sat_c((bias_q + sum W_q * s over the window) >> shift)`` with Python ints, per pixel;
    ``s`` is one sample ``(C_in, H, W)``."""
    c_out, c_in, k, _ = W_q.shape
    H, W = len(s[0]), len(s[0][0])
    Ho = (H + 2 * padding - k) // stride + 1
    Wo = (W + 2 * padding - k) // stride + 1
    out = [[[0] * Wo for _ in range(Ho)] for _ in range(c_out)]
    for co in range(c_out):
        for y in range(Ho):
            for x in range(Wo):
                acc = int(bias_q[co])
                for ci in range(c_in):
                    for ky in range(k):
                        for kx in range(k):
                            yy, xx = stride * y + ky - padding, stride * x + kx - padding
                            if 0 <= yy < H and 0 <= xx < W:
                                acc += int(W_q[co, ci, ky, kx]) * int(s[ci][yy][xx])
                c = acc >> shift if shift >= 0 else acc << -shift
                out[co][y][x] = min(max(c, fmt.min_int), fmt.max_int)
    return out


def pool_reference(s, kernel, stride, mode):
    C, H, W = len(s), len(s[0]), len(s[0][0])
    Ho, Wo = (H - kernel) // stride + 1, (W - kernel) // stride + 1
    f = max if mode == "max" else sum
    return [[[f(int(s[c][stride * y + i][stride * x + j]) for i in range(kernel)
                for j in range(kernel)) for x in range(Wo)] for y in range(Ho)]
            for c in range(C)]


def tiny_stage(stride, padding, *, input_bits=None, input_max=1, seed=0):
    rng = np.random.default_rng(seed)
    weight, current = Fixed(6, 4), Fixed(8, 3)
    W_q = rng.integers(weight.min_int, weight.max_int + 1, (3, 2, 3, 3))
    bias_q = rng.integers(-200, 200, 3)
    acc_frac = weight.frac + (2 if input_bits is not None else 0)
    return IntegerConv2d(W_q, bias_q, acc_frac, LayerFormats(weight, current),
                         (2, 5, 6), stride, padding, input_bits=input_bits, input_max=input_max)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("source", ["analog", "spikes", "counts"])
def test_integer_conv_follows_the_table(stride, padding, source):
    rng = np.random.default_rng(stride * 10 + padding)
    if source == "analog":
        stage = tiny_stage(stride, padding, input_bits=5)
        s = rng.integers(-16, 16, (3, 2, 2, 5, 6))
    else:
        stage = tiny_stage(stride, padding, input_max=4 if source == "counts" else 1)
        s = rng.integers(0, stage.input_max + 1, (3, 2, 2, 5, 6))
    c_q, n = stage.synapse(s)
    assert c_q.shape == (3, 2) + stage.out_shape
    for t in range(3):
        for b in range(2):
            want = conv_reference(stage.W_q, stage.bias_q, s[t, b].tolist(), stride, padding,
                                  stage.shift, stage.formats.current)
            assert c_q[t, b].tolist() == want, (t, b)
    assert n > 0                                     # the narrow current saturates somewhere


def test_conv_network_follows_the_table():
    """Whole conv net: every conv stage's currents per pixel, pooling per window, the LIF
    as a CoreModel over the channel-major flattened map, and the readout."""
    net = conv_net("bntt", "element", pool="sum", seed=6)
    x = random_images(6, seed=7)
    formats = calibrate(net, x, bits=10, weight_bits=7, input_bits=6, headroom=1.0)
    integer = IntegerNetwork.from_folded(net.fold(), formats)
    res = integer.run(x)
    x_q = np.floor(x * integer.input_format.scale + 0.5).astype(np.int64)
    T = net.T
    conv0, pool, conv2 = integer.layers[:3]
    assert conv0.input_bits == 6 and conv2.input_max == 4 and pool.out_max == 4
    for b in range(len(x)):
        seq = [x_q[b].tolist()] * T
        for li, layer in enumerate(integer.layers[:3]):
            out = []
            if layer.kind == "pool2d":
                for t in range(T):
                    want = pool_reference(seq[t], layer.kernel, layer.stride, layer.mode)
                    assert res.traces[li].out[t, b].tolist() == want, (b, li, t)
                    out.append(want)
                seq = out
                continue
            C, H, W = layer.out_shape
            core = CoreModel(layer.config, layer.thresholds, layer.affine)
            for t in range(T):
                c = conv_reference(layer.W_q, layer.bias_q, seq[t], layer.stride,
                                   layer.padding, layer.shift, layer.formats.current)
                assert res.traces[li].current[t, b].tolist() == c, (b, li, t)
                flat = np.zeros(C * H * W, dtype=np.int64)
                for ch in range(C):
                    for y in range(H):
                        for xx in range(W):
                            flat[ch * H * W + y * W + xx] = c[ch][y][xx]
                spikes = core.step(flat).spikes
                got = res.traces[li].spikes[t, b]
                for ch in range(C):
                    for y in range(H):
                        for xx in range(W):
                            assert got[ch, y, xx] == spikes[ch * H * W + y * W + xx]
                out.append(got.astype(int).tolist())
            seq = out
        flat = res.traces[3].out[:, b]
        np.testing.assert_array_equal(flat, res.traces[2].out[:, b].reshape(T, -1))
    readout = integer.layers[-1]
    assert readout.input_max == 1
    assert list(res.logits_q[0]) == list(res.currents_q[-1][:, 0].sum(axis=0))


@pytest.mark.parametrize("mode", ["max", "sum"])
def test_integer_pool_follows_the_table(mode):
    rng = np.random.default_rng(8)
    stage = IntegerPool2d((3, 7, 6), 2, 2, mode)
    s = rng.integers(0, 2, (2, 3, 3, 7, 6))
    out = stage.run(s).out
    assert out.shape == (2, 3, 3, 3, 3)
    for t in range(2):
        for b in range(3):
            assert out[t, b].tolist() == pool_reference(s[t, b].tolist(), 2, 2, mode)
    assert stage.out_max == (4 if mode == "sum" else 1)


# -- accumulator width ---------------------------------------------------------------------

@pytest.mark.parametrize("source", ["analog", "spikes", "counts"])
def test_accumulator_width_holds_the_worst_case(source):
    """All weights and the bias at a rail, every input active at its rail: no overflow of
    ``acc_bits``. ``C_in * k * k = 8`` terms make ``ceil(log2(n + 1))`` matter."""
    weight = Fixed(7, 5)
    for w_rail in (weight.min_int, weight.max_int):
        for b_sign in (-1, 0, 1):             # 0: the products alone set the width
            input_bits = 6 if source == "analog" else None
            input_max = 4 if source == "counts" else 1
            product = (7 + 6 if source == "analog" else 7 + 2 if source == "counts" else 7)
            bias = {-1: -(1 << (product - 1)), 0: 0, 1: (1 << (product - 1)) - 1}[b_sign]
            stage = IntegerConv2d(np.full((2, 2, 2, 2), w_rail), np.array([bias, bias]),
                                  weight.frac, LayerFormats(weight, Fixed(16, 4)), (2, 4, 4),
                                  1, 0, input_bits=input_bits, input_max=input_max)
            assert stage.acc_bits == max(stage.product_bits, stage.bias_bits) + 4
            rails = ([-(1 << 5), (1 << 5) - 1] if source == "analog" else [input_max])
            for s_rail in rails:
                acc = stage.accumulate(np.full((1, 1, 2, 4, 4), s_rail))
                need = bits_for(acc)
                assert need <= stage.acc_bits, (w_rail, b_sign, s_rail, need, stage.acc_bits)


def test_layer_after_sum_pool_and_flatten_widens_its_products():
    net = conv_net("none", None, pool="sum", seed=9)
    net.layers[2:] = [Flatten((4, 4, 4)), Dense(np.ones((5, 64)) * 0.1, np.zeros(5),
                                                readout=True)]
    net.check()
    formats = calibrate(net, random_images(20, seed=10), bits=12)
    integer = IntegerNetwork.from_folded(net.fold(), formats)
    dense = integer.layers[-1]
    assert dense.input_max == 4
    # -2**(Bw-1) * 4 = -2**(Bw+1) needs Bw + 2 bits
    assert dense.product_bits == formats.layers[-1].weight.bits + 2
    assert integer.spec()[-1]["input"] == "counts 0..4"
    acc = np.full((1, 64), 4) @ np.full((5, 64), dense.formats.weight.min_int).T
    assert bits_for(acc) <= dense.acc_bits


# -- networks: calibrate + IntegerNetwork --------------------------------------------------

@pytest.mark.parametrize("norm,mpbn,pool", [("tdbn", "channel", "max"),
                                            ("bntt", "element", "avg"),
                                            ("tab", "channel", "sum"),
                                            ("temporal-homeostatic", None, "max")])
def test_calibrated_conv_network_close_to_float(norm, mpbn, pool):
    net = conv_net(norm, mpbn, pool=pool, seed=11)
    x = random_images(300, seed=12)
    formats = calibrate(net, x[:200], bits=16)
    assert formats.layers[1] is None and formats.layers[3] is None   # pool, flatten
    report = evaluate(net, formats, x[200:], np.zeros(100, dtype=int))
    assert report.prediction_agreement >= 0.95
    assert all(a >= 0.98 for a in report.spike_agreement)
    text = report.markdown()
    assert text.count("\n| ") == 1 + 5 and "readout" in text        # header + 5 layers
    integer = IntegerNetwork.from_folded(net.fold(), formats)
    a = integer.run(x[:40])
    b = integer.run(x[:40], per_sample=True)
    np.testing.assert_array_equal(a.logits_q, b.logits_q)
    for p, q in zip(a.spikes + a.currents_q, b.spikes + b.currents_q):
        np.testing.assert_array_equal(p, q)
    assert a.saturations == b.saturations
    spec = integer.spec()
    assert [row["kind"] for row in spec] == ["conv2d", "pool2d", "conv2d", "flatten", "dense"]
    assert spec[2]["input"] == ("spikes" if pool == "max" else "counts 0..4")


def test_per_layer_neurons_on_conv_layers():
    """IF neuron with subtract reset on one conv layer, a leaky one with its own v_th on the
    other: fold == literal, integer batch == per sample, close to float."""
    net = conv_net("tdbn", "element", pool="sum", seed=17)
    net.layers[0].mpbn = None                    # MPBN needs reset "zero"
    net.layers[0].neuron = Neuron(tau=1.0, v_th=0.7, reset="subtract")
    net.layers[2].neuron = Neuron(tau=0.5, v_th=0.3, reset="zero")
    net.check()
    x = random_images(120, seed=18)
    ref = net.forward(x)
    got = net.fold().forward(x)
    for a, b in zip(ref.spikes, got.spikes):
        assert 0 < a.mean() < 1
        np.testing.assert_array_equal(a, b)
    formats = calibrate(net, x, bits=16)
    integer = IntegerNetwork.from_folded(net.fold(), formats)
    assert (integer.layers[0].config.tau, integer.layers[0].config.reset) == (1.0, "subtract")
    assert integer.layers[2].config.tau == 0.5
    a = integer.run(x)
    b = integer.run(x, per_sample=True)
    np.testing.assert_array_equal(a.logits_q, b.logits_q)
    assert "reset" in a.saturations[0] and "reset" not in a.saturations[2]
    assert np.mean(a.predict() == ref.predict()) >= 0.95


def test_flatten_first_passes_the_analog_input_format():
    dense = Network([Dense(np.random.default_rng(0).normal(0, 0.3, (10, 64)), np.zeros(10)),
                     Dense(np.ones((3, 10)), np.zeros(3), readout=True)], T=3)
    flat = Network([Flatten((1, 8, 8))] + dense.layers, T=3)
    x = random_images(30)
    fa = calibrate(dense, x.reshape(30, 64), bits=12)
    fb = calibrate(flat, x, bits=12)
    assert fb.layers[0] is None and fb.layers[1:] == fa.layers
    qa = IntegerNetwork.from_folded(dense.fold(), fa).run(x.reshape(30, 64))
    qb = IntegerNetwork.from_folded(flat.fold(), fb).run(x)
    np.testing.assert_array_equal(qa.logits_q, qb.logits_q)
    assert integer_spec_input(flat, fb) == str(fb.input)


def integer_spec_input(net, formats):
    return IntegerNetwork.from_folded(net.fold(), formats).spec()[1]["input"]


def test_integer_conv_network_timing():
    """The issue's target: the integer model of a conv net on the 540 digits test samples
    (1x8x8) in <= 10 s; figures printed with -s, not a timed assertion. The test net, and
    a wider stand-in for a trained digits net (16 and 32 channels, two poolings)."""
    default = load_default()
    x = default.inputs(default.test_x).reshape(-1, 1, 8, 8)
    wide = [{"kind": "conv2d", "out_channels": 16, "kernel": 3, "padding": 1},
            {"kind": "pool2d", "kernel": 2, "mode": "sum"},
            {"kind": "conv2d", "out_channels": 32, "kernel": 3, "padding": 1},
            {"kind": "pool2d", "kernel": 2, "mode": "max"},
            {"kind": "flatten"}]
    for name, net in (
            ("conv4 -> pool -> conv8/2", conv_net("tdbn", "element", pool="max", seed=13)),
            ("conv16 -> sumpool -> conv32 -> maxpool",
             example_conv_network((1, 8, 8), wide, norm="tdbn", mpbn="element", seed=13))):
        integer = IntegerNetwork.from_folded(net.fold(), calibrate(net, x, bits=16))
        t0 = time.perf_counter()
        res = integer.run(x)
        elapsed = time.perf_counter() - t0
        assert res.logits_q.shape[0] == 540
        print(f"\ninteger conv net 1x8x8 -> {name} -> dense, T=4, 540 samples: "
              f"{elapsed:.2f} s")


# -- model-file entries ----------------------------------------------------------------------

def test_entries_round_trip():
    net = conv_net("tebn", "element", pool="avg", seed=14)
    shape = net.input_shape
    rebuilt = []
    for i, layer in enumerate(net.layers):
        params, arrays = layer.entries()
        json.dumps(params)
        params = json.loads(json.dumps(params))

        def array(name, want, arrays=arrays):
            value = np.asarray(arrays[name], dtype=np.float64)
            assert value.shape == tuple(want), name
            return value
        rebuilt.append(KINDS[layer.kind].from_entries(params, array, shape, net.T,
                                                      f"layer{i}"))
        shape = rebuilt[-1].out_shape
    again = Network(rebuilt, T=net.T, tau=net.tau)
    x = random_images(30)
    np.testing.assert_array_equal(again.forward(x).logits, net.forward(x).logits)
    with pytest.raises(ValueError, match="layer0 has unknown fields"):
        Conv2d.from_entries({"out_channels": 4, "kernel": 3, "dilation": 2},
                            lambda n, s: np.zeros(s), (1, 8, 8), 4, "layer0")
    with pytest.raises(ValueError, match=r"layer1\.kernel must be a positive integer"):
        Pool2d.from_entries({"kernel": 0}, None, (4, 8, 8), 4, "layer1")


@pytest.mark.parametrize("mpbn,pool", [("channel", "max"), ("element", "avg")])
def test_model_file_round_trip(tmp_path, mpbn, pool):
    net = conv_net("tab", mpbn, pool=pool, seed=15)
    net.layers[0].mpbn = None
    net.layers[0].neuron = Neuron(tau=1.0, v_th=0.6, reset="subtract")
    raw = np.random.default_rng(16).integers(0, 17, (40, 1, 8, 8)).astype(np.uint8)
    x = raw / 16.0
    formats = calibrate(net, x, bits=12)
    model = ModelFile(net, formats, calib_x=raw[:20], test_x=raw[20:],
                      test_y=np.arange(20) % 5, data_name="random", pixel_scale=1 / 16)
    model.save(tmp_path / "conv.npz")
    back = ModelFile.load(tmp_path / "conv.npz")
    assert [layer.kind for layer in back.network.layers] == [layer.kind for layer in net.layers]
    assert back.network.input_shape == (1, 8, 8) and back.formats == formats
    assert back.network.layers[2].mpbn_elementwise == (mpbn == "element")
    assert back.network.layers[0].neuron == net.layers[0].neuron
    np.testing.assert_array_equal(back.calib_x, raw[:20])
    np.testing.assert_array_equal(back.network.forward(x).logits, net.forward(x).logits)
    np.testing.assert_array_equal(back.integer().run(x).logits_q,
                                  IntegerNetwork.from_folded(net.fold(), formats).run(x).logits_q)
    with np.load(tmp_path / "conv.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arch = json.loads(str(arrays["architecture"]))
    arch["layers"][2]["stride"] = 3
    arrays["architecture"] = np.array(json.dumps(arch))
    np.savez(tmp_path / "bad.npz", **arrays)
    one_line_error(r"bad.npz: architecture.layers\[2\]\.stride must be one of \(1, 2\), "
                   r"not 3", lambda: ModelFile.load(tmp_path / "bad.npz"))
    arch["layers"][2]["stride"] = 2
    arrays["architecture"] = np.array(json.dumps(arch))
    arrays["layer2.weight"] = arrays["layer2.weight"][:, :, :2]
    np.savez(tmp_path / "bad.npz", **arrays)
    one_line_error(r"layer2.weight", lambda: ModelFile.load(tmp_path / "bad.npz"))


# -- bad input ---------------------------------------------------------------------------------

def one_line_error(match, make):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def test_bad_conv_layers_raise_one_line_errors():
    w = np.zeros((4, 1, 3, 3))
    b = np.zeros(4)
    one_line_error(r"layer0\.weight: the 9x9 kernel is larger than the input 8x8",
                   lambda: Network([Conv2d(np.zeros((4, 1, 9, 9)), b, (1, 8, 8)),
                                    Flatten((4, 0, 0))], T=4))
    one_line_error(r"layer0\.stride must be one of \(1, 2\), not 3",
                   lambda: Conv2d(w, b, (1, 8, 8), stride=3).check(4, "layer0"))
    one_line_error(r"layer0\.weight must be 4-D \(C_out, C_in, k, k\), not \(4, 9\)",
                   lambda: Conv2d(np.zeros((4, 9)), b, (1, 8, 8)).check(4, "layer0"))
    one_line_error(r"layer0\.weight has C_in = 2 but the input has 1 channels",
                   lambda: Conv2d(np.zeros((4, 2, 3, 3)), b, (1, 8, 8)).check(4, "layer0"))
    one_line_error(r"layer0\.weight must have a square kernel",
                   lambda: Conv2d(np.zeros((4, 1, 3, 2)), b, (1, 8, 8)).check(4, "layer0"))
    one_line_error(r"layer0\.bias must have shape \(4,\)",
                   lambda: Conv2d(w, np.zeros(3), (1, 8, 8)).check(4, "layer0"))
    one_line_error(r"layer0\.padding must be smaller than the kernel",
                   lambda: Conv2d(w, b, (1, 8, 8), padding=3).check(4, "layer0"))
    one_line_error(r"layer0\.in_shape must be \(C, H, W\)",
                   lambda: Conv2d(w, b, (8, 8)).check(4, "layer0"))
    mpbn = {k: np.ones((4, 7, 7)) for k in ("gamma", "beta", "running_mean", "running_var")}
    one_line_error(r"layer0\.mpbn\.gamma must have shape \(4,\) \(channel-wise\) or "
                   r"\(4, 8, 8\) \(element-wise\), not \(4, 7, 7\)",
                   lambda: Conv2d(w, b, (1, 8, 8), padding=1, mpbn=mpbn).check(4, "layer0"))
    one_line_error(r"layer0\.norm\.gamma must have shape \(4, 4\)",
                   lambda: Conv2d(w, b, (1, 8, 8), norm="bntt", norm_params={
                       "gamma": np.ones((4, 3)), "running_mean": np.zeros((4, 4)),
                       "running_var": np.ones((4, 4))}).check(4, "layer0"))
    one_line_error(r"layer0: MPBN with reset 'subtract' is not supported",
                   lambda: Conv2d(w, b, (1, 8, 8), padding=1, mpbn={k: v[:, 0, 0] for k, v in
                                                                   mpbn.items()},
                                  neuron=Neuron(reset="subtract")).check(4, "layer0"))
    one_line_error(r"layer1\.kernel 9 is larger than the input 8x8",
                   lambda: Pool2d((4, 8, 8), 9).check(4, "layer1"))
    one_line_error(r"layer1\.mode must be one of",
                   lambda: Pool2d((4, 8, 8), 2, mode="min").check(4, "layer1"))


def test_bad_chains_raise():
    net = conv_net()
    conv0, _, conv2, *rest = net.layers
    one_line_error(r"layer2 \(conv2d\) takes inputs of shape \(4, 4, 4\) but layer1 gives "
                   r"\(4, 8, 8\)", lambda: Network([conv0, Pool2d((4, 8, 8), 1), conv2, *rest]))
    pooled_first = Network([Pool2d((1, 8, 8), 2), Flatten((1, 4, 4)),
                            Dense(np.ones((2, 16)), np.zeros(2), readout=True)])
    formats = calibrate(pooled_first, random_images(4))
    one_line_error(r"layer0 \(pool2d\) reads the analog network input",
                   lambda: IntegerNetwork.from_folded(pooled_first.fold(), formats))
    with pytest.raises(ValueError, match="x must have shape"):
        net.forward(np.zeros((3, 2, 8, 8)))
    assert math.isfinite(net.forward(np.zeros((2, 64))).logits.sum())   # flat pixels reshape
