"""Convolutional SNNs from snnTorch and SpikingJelly -> spikefold, spike for spike.

Small conv nets on 1 x 8 x 8 inputs with random weights (scaled so that every layer spikes
at a useful rate), both sides in float64: Conv2d (stride 1 and 2, zero padding, bias),
BatchNorm2d folded, max and average pooling of spikes, Flatten, a Linear readout or a
spiking readout. The library's own forward and spikefold's float model must agree 100 %
at every spiking layer and step, predictions 100 %. Fixed-point (16-bit) agreement is
printed and checked loosely (the quantized model is not the library's).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from golden.calibrate import calibrate, evaluate  # noqa: E402
from spikefold.importer import ImportRefused, import_module  # noqa: E402
from spikefold.importer.check import agreement  # noqa: E402
from import_helpers import set_bn_stats  # noqa: E402

T = 6
SHAPE = (1, 8, 8)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """torch's intra-op threads on tiny convolutions: 20x slower on 2 shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _inputs(n=120, seed=1):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n,) + SHAPE)


def _conv(c_in, c_out, *, stride=1, padding=1, gain=2.0, bias=True, cls=None):
    conv = (cls or nn.Conv2d)(c_in, c_out, 3, stride=stride, padding=padding, bias=bias)
    with torch.no_grad():
        conv.weight.mul_(gain)
    return conv


def _check_exact(net, *, T=T, x=None, fixed=False):
    network, table = import_module(net, T=T, input_shape=SHAPE)
    x = _inputs() if x is None else x
    agree = agreement(network, net, x)
    assert agree.spikes == [1.0] * len(agree.spikes), agree.summary()
    assert agree.predictions == 1.0, agree.summary()
    assert agree.max_logit_error < 1e-9, agree.summary()
    for rate in agree.spike_rates:      # the comparison means something
        assert 0.02 < rate < 0.9, agree.summary()
    if fixed:
        report = evaluate(network, calibrate(network, x, bits=16), x,
                          network.forward(x).predict())
        print(f"{agree.summary()}; fixed 16-bit vs float: predictions "
              f"{report.prediction_agreement:.2%}, spikes "
              + ", ".join(f"{a:.2%}" for a in report.spike_agreement))
        assert report.prediction_agreement >= 0.9
    return network, table


# -- snnTorch ---------------------------------------------------------------------------------

snn = pytest.importorskip("snntorch")


def _leaky(beta=0.7, threshold=0.5, **kw):
    return snn.Leaky(beta=beta, threshold=threshold, init_hidden=True, reset_mechanism="zero",
                     **kw)


def _snntorch_net(*, bn, stride=1, pool="max", spiking_readout=False, seed=0):
    torch.manual_seed(seed)
    pool2 = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
    h = 4 if stride == 2 else 8
    layers = [_conv(1, 6, stride=stride)]
    layers += [set_bn_stats(torch, nn.BatchNorm2d(6), seed)] if bn else []
    layers += [_leaky(), nn.MaxPool2d(2), _conv(6, 8, gain=1.5, bias=not bn)]
    layers += [set_bn_stats(torch, nn.BatchNorm2d(8), seed + 1)] if bn else []
    layers += [_leaky(beta=0.5), pool2, nn.Flatten()]
    n = 8 * (h // 4) ** 2
    if spiking_readout:
        lin = nn.Linear(n, 5)
        with torch.no_grad():
            lin.weight.mul_(3.0)
        layers += [lin, _leaky(beta=0.9, threshold=0.3, output=True)]
    else:
        layers += [nn.Linear(n, 5)]
    return nn.Sequential(*layers).double().eval()


@pytest.mark.parametrize("bn, stride, pool", [(False, 1, "max"), (True, 1, "avg"),
                                              (True, 2, "max"), (False, 2, "avg")])
def test_snntorch_conv_is_exact(bn, stride, pool):
    network, table = _check_exact(_snntorch_net(bn=bn, stride=stride, pool=pool), fixed=bn)
    kinds = [layer.kind for layer in network.layers]
    assert kinds == ["conv2d", "pool2d", "conv2d", "pool2d", "flatten", "dense"]
    assert network.layers[0].stride == stride and network.layers[0].padding == 1
    assert network.layers[3].mode == pool
    assert network.layers[0].neuron.tau == pytest.approx(0.7, abs=1e-7)
    assert network.layers[2].neuron.tau == 0.5
    folded = [r for r in table.rows if "(folded)" in r.target]
    assert len(folded) == (2 if bn else 0)


def test_snntorch_conv_spiking_readout_is_exact():
    network, table = _check_exact(_snntorch_net(bn=True, spiking_readout=True), fixed=True)
    assert [layer.kind for layer in network.layers][-2:] == ["dense", "dense"]
    assert np.array_equal(network.layers[-1].weight, np.eye(5))


def test_snntorch_conv_per_channel_threshold_is_exact():
    torch.manual_seed(0)
    thr = torch.rand(6, 1, 1, generator=torch.Generator().manual_seed(3)) + 0.3
    net = nn.Sequential(_conv(1, 6), set_bn_stats(torch, nn.BatchNorm2d(6), 0),
                        snn.Leaky(beta=0.7, threshold=thr.reshape(-1, 1, 1), init_hidden=True,
                                  reset_mechanism="zero", learn_threshold=True),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(96, 5)).double().eval()
    network, table = _check_exact(net)
    assert any("per-channel thresholds" in c for r in table.rows for c in r.conversions)


# -- SpikingJelly -----------------------------------------------------------------------------

sj = pytest.importorskip("spikingjelly")
from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402


def _sj_net(make_neuron, *, bn, mode, wrapped=False, spiking_readout=False, seed=0, pool="max"):
    """conv 1->6 (8x8) -> [BN] -> neuron -> pool -> conv 6->8 stride 2 (2x2) -> [BN] ->
    neuron -> flatten -> Linear 32->5 [-> neuron]."""
    torch.manual_seed(seed)

    def block(c_in, c_out, stride, gain, s):
        if wrapped:              # plain torch modules in a SeqToANNContainer
            mods = [_conv(c_in, c_out, stride=stride, gain=gain)]
            mods += [set_bn_stats(torch, nn.BatchNorm2d(c_out), s)] if bn else []
            return [layer.SeqToANNContainer(*mods)]
        mods = [_conv(c_in, c_out, stride=stride, gain=gain, cls=layer.Conv2d)]
        mods += [set_bn_stats(torch, layer.BatchNorm2d(c_out), s)] if bn else []
        return mods

    pool2 = layer.MaxPool2d(2) if pool == "max" else layer.AvgPool2d(2)
    layers = block(1, 6, 1, 2.0, seed) + [make_neuron(6), pool2]
    layers += block(6, 8, 2, 1.5, seed + 1) + [make_neuron(8), layer.Flatten()]
    lin = layer.Linear(32, 5)
    layers.append(lin)
    if spiking_readout:
        with torch.no_grad():
            lin.weight.mul_(3.0)
        layers.append(neuron.IFNode(v_threshold=0.5))
    net = nn.Sequential(*layers).double().eval()
    functional.set_step_mode(net, mode)
    return net


LIF = lambda c: neuron.LIFNode(tau=2.0, v_threshold=0.5)               # noqa: E731
IF = lambda c: neuron.IFNode(v_threshold=0.8)                          # noqa: E731


def _mpbn(c, *, fold=True, seed=None, vth=0.4):
    node = neuron.MPBNLIFNode(tau=2.0, v_threshold=vth, out_channels=c)
    g = torch.Generator().manual_seed(c if seed is None else seed)
    with torch.no_grad():
        node.vbn.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
        node.vbn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        node.vbn.weight.copy_(torch.randn(c, generator=g) * 0.3 + 1.0)
        node.vbn.weight[0] = -0.5               # gamma < 0: SpikingJelly still uses >=
        node.vbn.bias.copy_(torch.randn(c, generator=g) * 0.1)
    if fold:
        node.re_parameterize_v_threshold()
    return node


@pytest.mark.parametrize("mode, wrapped", [("s", False), ("m", False), ("m", True)])
@pytest.mark.parametrize("bn", [False, True])
def test_spikingjelly_conv_lif_is_exact(bn, mode, wrapped):
    network, table = _check_exact(_sj_net(LIF, bn=bn, mode=mode, wrapped=wrapped),
                                  fixed=bn and mode == "s")
    assert [layer.kind for layer in network.layers] == \
        ["conv2d", "pool2d", "conv2d", "flatten", "dense"]
    assert network.layers[2].stride == 2
    assert all(layer.neuron.fire == ">=" for layer in network.layers if layer.spiking)


def test_spikingjelly_conv_if_avgpool_spiking_readout_is_exact():
    network, _ = _check_exact(_sj_net(IF, bn=True, mode="m", pool="avg", spiking_readout=True))
    assert network.layers[0].neuron.tau == 1.0
    assert network.layers[1].mode == "avg"


@pytest.mark.parametrize("mode", ["s", "m"])
def test_spikingjelly_folded_mpbn_conv_is_exact(mode):
    net = _sj_net(_mpbn, bn=True, mode=mode)
    network, table = _check_exact(net, fixed=mode == "m")
    assert any("folded MPBN" in c for r in table.rows for c in r.conversions)
    # gamma < 0 on channel 0: SpikingJelly's folded neuron still fires on v >= theta_0 < 0,
    # which spikefold carries as a channel-wise MPBN (u - theta_c) >= 0
    assert net[2].gamma[0] < 0
    assert network.layers[0].mpbn["running_mean"].shape == (6,)
    assert network.layers[0].mpbn["running_mean"][0] < 0


def test_spikingjelly_unfolded_mpbn_conv_is_exact_at_T1():
    net = _sj_net(lambda c: _mpbn(c, fold=False, vth=0.6), bn=True, mode="m")
    network, table = _check_exact(net, T=1)
    assert network.layers[0].mpbn is not None and network.layers[0].mpbn_eps == 1e-5
    assert any("unfolded MPBN at T = 1" in c for r in table.rows for c in r.conversions)


def test_spikingjelly_unfolded_mpbn_conv_is_refused_for_T_above_1():
    net = _sj_net(lambda c: _mpbn(c, fold=False), bn=True, mode="m")
    with pytest.raises(ImportRefused, match="normalized membrane") as info:
        import_module(net, T=T, input_shape=SHAPE)
    assert info.value.name == "2"
    # ... and SpikingJelly's own folded neuron is a different function for T > 1
    x = torch.as_tensor(_inputs(50), dtype=torch.float64)
    outs = []
    for fold in (False, True):
        if fold:
            for m in net.modules():
                if isinstance(m, neuron.MPBNLIFNode):
                    m.re_parameterize_v_threshold()
        functional.reset_net(net)
        with torch.no_grad():
            outs.append(net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1)).numpy())
    assert not np.array_equal(outs[0], outs[1])


def _sj_norm2d(kind, c, seed):
    if kind == "bntt":
        norm = layer.BatchNormThroughTime2d(T, c, step_mode="m")
        for t, bn in enumerate(norm.bn_list):
            set_bn_stats(torch, bn, 100 * seed + t)
            with torch.no_grad():               # no bias: centre lower so that it fires
                bn.running_mean.sub_(0.4)
        return norm
    norm = set_bn_stats(torch, layer.TemporalEffectiveBatchNorm2d(T=T, num_features=c), seed)
    with torch.no_grad():
        norm.scale.copy_(torch.linspace(0.7, 1.3, T))
    return norm


def _positive_mpbn(c, seed):
    """A folded MPBNLIFNode whose per-channel thresholds are all > 0 (they scale into the
    normalizer's output rather than being carried as an MPBN)."""
    node = neuron.MPBNLIFNode(tau=2.0, v_threshold=0.4, out_channels=c, step_mode="m")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        node.vbn.running_mean.copy_(torch.rand(c, generator=g) * 0.3 + 0.1)
        node.vbn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        node.vbn.weight.copy_(torch.rand(c, generator=g) * 0.6 + 0.7)
        node.vbn.bias.copy_(torch.randn(c, generator=g) * 0.05)
    node.re_parameterize_v_threshold()
    return node


@pytest.mark.parametrize("kind", ["bntt", "tebn"])
def test_spikingjelly_per_timestep_norm_conv_is_exact(kind):
    """Conv -> BNTT2d/TEBN2d -> folded MPBN (per-channel thresholds) -> pool -> conv ->
    BNTT2d/TEBN2d -> LIF -> flatten -> Linear: the normalizers stay per-timestep tables."""
    torch.manual_seed(3)
    net = nn.Sequential(
        _conv(1, 6, gain=2.0, cls=layer.Conv2d), _sj_norm2d(kind, 6, 0), _positive_mpbn(6, 1),
        layer.MaxPool2d(2), _conv(6, 8, stride=2, gain=1.5, cls=layer.Conv2d),
        _sj_norm2d(kind, 8, 2), neuron.LIFNode(tau=2.0, v_threshold=0.5), layer.Flatten(),
        layer.Linear(32, 5)).double().eval()
    functional.set_step_mode(net, "m")
    network, table = _check_exact(net, fixed=True)
    assert [layer.norm for layer in network.layers if layer.kind == "conv2d"] == [kind, kind]
    assert network.layers[0].mpbn is None       # thresholds > 0 scaled into the normalizer
    assert any("(its " + kind + " output) scaled" in c for c in table.rows[2].conversions)


# -- refusals -----------------------------------------------------------------------------------

def _seq(*mods):
    return nn.Sequential(*mods).double()


@pytest.mark.parametrize("make, module, reason", [
    (lambda: _seq(nn.Conv2d(1, 4, 3, groups=1, dilation=2), LIF(4)), "0", "dilation"),
    (lambda: _seq(nn.Conv2d(1, 4, 3, padding_mode="reflect", padding=1), LIF(4)), "0",
     "padding_mode"),
    (lambda: _seq(nn.Conv2d(1, 4, 3, stride=3), LIF(4)), "0", "stride 3"),
    (lambda: _seq(nn.Conv2d(1, 4, (3, 1)), LIF(4)), "0", "same kernel_size on both axes"),
    (lambda: _seq(nn.Conv2d(1, 4, 3, padding="same"), LIF(4)), "0", "padding='same'"),
    (lambda: _seq(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), LIF(4)), "1", "pools the currents"),
    (lambda: _seq(nn.MaxPool2d(2), nn.Conv2d(1, 4, 3), LIF(4)), "0", "analog network input"),
    (lambda: _seq(nn.Conv2d(1, 4, 3), LIF(4), nn.MaxPool2d(2, ceil_mode=True)), "2",
     "ceil_mode"),
    (lambda: _seq(nn.Conv2d(1, 4, 3), LIF(4), nn.AvgPool2d(2, padding=1)), "2", "padding"),
    (lambda: _seq(nn.Conv2d(1, 4, 3), LIF(4), nn.Linear(6, 5)), "2", "put an nn.Flatten"),
    (lambda: _seq(nn.Conv2d(1, 4, 3), nn.BatchNorm1d(4), LIF(4)), "1", "1-D BatchNorm"),
    (lambda: _seq(nn.Conv2d(1, 4, 3), LIF(4), nn.Flatten(), nn.Linear(144, 5),
                  nn.BatchNorm2d(5)), "4", "2-D BatchNorm"),
    (lambda: _seq(nn.Conv2d(1, 4, 3), LIF(4), nn.Conv2d(4, 4, 3)), "2", "without a neuron"),
    (lambda: _seq(nn.Conv2d(1, 4, 3), LIF(4), nn.MaxPool2d(2)), "2", "ends with a pooling"),
    (lambda: _seq(nn.Conv2d(2, 4, 3), LIF(4)), "0", "takes 2 channels but receives 1"),
])
def test_conv_unsupported_is_refused_naming_the_module(make, module, reason):
    with pytest.raises(ImportRefused, match=reason) as info:
        import_module(make(), T=T, input_shape=SHAPE)
    assert info.value.name == module
    assert f"module {module!r}" in str(info.value)


def test_conv_needs_the_input_shape():
    with pytest.raises(ImportRefused, match="input shape is unknown"):
        import_module(_seq(nn.Conv2d(1, 4, 3), LIF(4), nn.Flatten(), nn.Linear(144, 5)), T=T)


def test_plain_torch_module_in_multi_step_network_is_refused():
    net = _seq(layer.Conv2d(1, 4, 3), nn.BatchNorm2d(4), LIF(4), layer.Flatten(),
               layer.Linear(144, 5))
    functional.set_step_mode(net, "m")
    with pytest.raises(ImportRefused, match="SeqToANNContainer") as info:
        import_module(net, T=T, input_shape=SHAPE)
    assert info.value.name == "1"


def test_spikingjelly_multi_step_container_is_exact():
    torch.manual_seed(0)
    net = nn.Sequential(layer.SeqToANNContainer(_conv(1, 6), set_bn_stats(torch, nn.BatchNorm2d(6), 0)),
                        layer.MultiStepContainer(neuron.LIFNode(tau=2.0, v_threshold=0.5)),
                        layer.MaxPool2d(2), layer.Flatten(), layer.Linear(96, 5)).double().eval()
    functional.set_step_mode(net[2:], "m")
    _check_exact(net)


def test_single_step_neuron_in_multi_step_network_is_refused():
    net = _sj_net(LIF, bn=False, mode="m")
    net[1].step_mode = "s"
    with pytest.raises(ImportRefused, match="single-step SpikingJelly module") as info:
        import_module(net, T=T, input_shape=SHAPE)
    assert info.value.name == "1"


def test_unfolded_mpbn_is_a_per_channel_leak():
    """The refusal's reason, checked: SpikingJelly's unfolded MPBNLIFNode is a LIF whose
    leak is d * a_c per channel (a_c = gamma_c / sqrt(var_c + eps), d = 1 - 1/tau), input
    a_c c + b_c, fire w >= v_th, zero reset -- one decay per layer cannot hold it."""
    torch.manual_seed(0)
    conv = _conv(1, 6, cls=layer.Conv2d).double()
    node = _mpbn(6, fold=False, vth=0.5).double()
    net = nn.Sequential(conv, node).eval()
    functional.set_step_mode(net, "m")
    x = torch.as_tensor(_inputs(60), dtype=torch.float64)
    with torch.no_grad():
        s_sj = net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1)).numpy() != 0
        c = nn.functional.conv2d(x, conv.weight, conv.bias, padding=1).numpy()
        bn = node.vbn
        a = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).numpy()[:, None, None]
        b = bn.bias.numpy()[:, None, None] - a * bn.running_mean.numpy()[:, None, None]
    leak = (1 - 1 / 2.0) * a
    w, spikes = np.zeros_like(c), []
    for _ in range(T):
        w = leak * w + (a * c + b)
        spikes.append(w >= 0.5)
        w = np.where(spikes[-1], 0.0, w)
    assert np.array_equal(np.stack(spikes), s_sj)
    assert 0.02 < s_sj.mean() < 0.9
    assert len(np.unique(leak)) == 6 and leak.min() < 0      # per channel, negative for gamma < 0
