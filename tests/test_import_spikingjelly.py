"""SpikingJelly modules -> spikefold: the library's own forward vs spikefold's float model.

Small MLPs with random weights, both sides in float64, single- and multi-step mode: spikes
100 % at every layer and step, predictions 100 %. SpikingJelly fires on ``>=``: a crafted
exact tie checks that spikefold fires there too, in float and in fixed point.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spikingjelly")
from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402

from golden.fixed import Fixed  # noqa: E402
from golden.network import IntegerNetwork, NetworkFormats  # noqa: E402
from golden.layers import LayerFormats  # noqa: E402
from spikefold.importer import ImportRefused, import_module  # noqa: E402
from spikefold.importer.check import agreement  # noqa: E402
from spikefold.importer.torch_walk import dense_honours_fire  # noqa: E402

nn = torch.nn
from import_helpers import random_inputs, set_bn_stats  # noqa: E402

T = 8
N_IN = 20


def _inputs(n=300, seed=1):
    return random_inputs(N_IN, n, seed)


def _bn(features, seed):
    return set_bn_stats(torch, layer.BatchNorm1d(features), seed)


def _mlp(neurons, *, bn=False, seed=0, mode="s", gain=2.5, readout=True):
    torch.manual_seed(seed)
    layers, n = [], N_IN
    for i, (h, make) in enumerate(neurons):
        lin = layer.Linear(n, h)
        with torch.no_grad():
            lin.weight.mul_(gain)
        layers.append(lin)
        if bn:
            layers.append(_bn(h, seed + i))
        layers.append(make(h))
        n = h
    if readout:
        layers.append(layer.Linear(n, 5))
    net = nn.Sequential(*layers).double().eval()
    functional.set_step_mode(net, mode)
    return net


def _check_exact(net, x=None):
    network, table = import_module(net, T=T)
    agree = agreement(network, net, _inputs() if x is None else x)
    assert agree.spikes == [1.0] * len(agree.spikes), agree.summary()
    assert agree.predictions == 1.0, agree.summary()
    assert agree.max_logit_error < 1e-9, agree.summary()
    for rate in agree.spike_rates:
        assert 0.02 < rate < 0.9, agree.summary()
    return network, table


LIF = lambda h: neuron.LIFNode(tau=2.0, v_threshold=0.7)               # noqa: E731
LIF_NO_DECAY_INPUT = lambda h: neuron.LIFNode(tau=3.0, decay_input=False,  # noqa: E731
                                              v_threshold=1.2)
LIF_V_RESET = lambda h: neuron.LIFNode(tau=1.5, v_threshold=0.4, v_reset=-0.2)  # noqa: E731
IF = lambda h: neuron.IFNode(v_threshold=1.0)                          # noqa: E731
SOFT_IF = lambda h: neuron.IFNode(v_threshold=1.0, v_reset=None)        # noqa: E731
SOFT_LIF = lambda h: neuron.LIFNode(tau=2.0, v_threshold=0.5, v_reset=None)  # noqa: E731


@pytest.mark.parametrize("mode", ["s", "m"])
@pytest.mark.parametrize("bn", [False, True])
def test_lif_if_mlp_is_exact(mode, bn):
    network, _ = _check_exact(_mlp([(24, LIF), (16, IF)], bn=bn, mode=mode))
    n0, n1 = network.layers[0].neuron, network.layers[1].neuron
    assert n0.tau == 0.5 and n1.tau == 1.0          # per-layer decays, the IF neuron
    assert n0.reset == n1.reset == "zero"


@pytest.mark.parametrize("bn", [False, True])
def test_decay_input_and_v_reset_are_exact(bn):
    network, table = _check_exact(_mlp([(24, LIF_NO_DECAY_INPUT), (16, LIF_V_RESET)], bn=bn))
    assert network.layers[0].neuron.tau == pytest.approx(2 / 3)
    text = table.markdown()
    assert "decay_input=False" in text and "v_reset=-0.2" in text


def test_soft_reset_is_exact():
    if not dense_honours_fire():
        with pytest.raises(ImportRefused, match="does not honour Neuron.fire"):
            import_module(_mlp([(24, SOFT_LIF), (16, SOFT_IF)]), T=T)
        pytest.skip("golden.layers.dense does not pass Neuron.fire to the LIF yet "
                    "(NOTES-h11-dense-fire.patch)")
    network, _ = _check_exact(_mlp([(24, SOFT_LIF), (16, SOFT_IF)], bn=True))
    assert [layer.neuron.reset for layer in network.layers[:-1]] == ["subtract"] * 2
    assert all(layer.neuron.fire == ">=" for layer in network.layers[:-1])


def _tie_net(v_reset=0.0):
    """One IF neuron fed 0.25 per step from x = 1: its membrane is exactly 1.0 = v_th at t = 3."""
    lin = layer.Linear(1, 1)
    with torch.no_grad():
        lin.weight.fill_(0.25)
        lin.bias.zero_()
    out = layer.Linear(1, 1)
    return nn.Sequential(lin, neuron.IFNode(v_threshold=1.0, v_reset=v_reset), out).double()


@pytest.mark.parametrize("v_reset", [0.0, None])
def test_fires_on_exact_tie_float_and_fixed(v_reset):
    net = _tie_net(v_reset)
    if v_reset is None and not dense_honours_fire():
        pytest.skip("soft reset with >= needs golden.layers.dense to pass Neuron.fire")
    network, _ = import_module(net, T=8)
    x = np.ones((1, 1))
    agree = agreement(network, net, x)
    assert agree.spikes == [1.0]
    spikes = network.forward(x).spikes[0][:, 0, 0]
    assert spikes.tolist() == [False, False, False, True] * 2       # SpikingJelly's >=
    fmt = LayerFormats(Fixed(8, 4), Fixed(12, 6), Fixed(12, 6))
    formats = NetworkFormats(Fixed(8, 4), (fmt, LayerFormats(Fixed(8, 4), Fixed(12, 6))))
    integer = IntegerNetwork.from_folded(network.fold(), formats)
    assert integer.run(x).spikes[0][:, 0, 0].astype(bool).tolist() == spikes.tolist()
    assert integer.layers[0].thresholds.theta_q.tolist() == [63]    # ceil(1.0 * 64) - 1


def test_folded_mpbn_lif_is_exact_for_every_sign_of_gamma():
    def make(h):
        node = neuron.MPBNLIFNode(tau=2.0, v_threshold=0.6, out_features=h)
        g = torch.Generator().manual_seed(h)
        with torch.no_grad():
            node.vbn.running_mean.copy_(torch.randn(h, generator=g) * 0.2)
            node.vbn.running_var.copy_(torch.rand(h, generator=g) + 0.5)
            node.vbn.weight.copy_(torch.randn(h, generator=g) * 0.3 + 1.0)
            node.vbn.weight[0] = -0.5               # gamma < 0: SpikingJelly still uses >=
            node.vbn.bias.copy_(torch.randn(h, generator=g) * 0.1)
        node.re_parameterize_v_threshold()
        return node
    net = _mlp([(24, make), (16, make)], bn=True)
    network, table = _check_exact(net)
    assert any("folded MPBN" in c for r in table.rows for c in r.conversions)


def test_unfolded_mpbn_lif_is_refused():
    net = _mlp([(24, lambda h: neuron.MPBNLIFNode(tau=2.0, out_features=h))])
    with pytest.raises(ImportRefused, match="normalized membrane") as info:
        import_module(net, T=T)
    assert info.value.name == "1"


def _unfolded_mpbn(h):
    node = neuron.MPBNLIFNode(tau=2.0, v_threshold=0.6, out_features=h)
    g = torch.Generator().manual_seed(h)
    with torch.no_grad():
        node.vbn.running_mean.copy_(torch.randn(h, generator=g) * 0.2)
        node.vbn.running_var.copy_(torch.rand(h, generator=g) + 0.5)
        node.vbn.weight.copy_(torch.randn(h, generator=g) * 0.3 + 1.0)
        node.vbn.weight[0] = -0.5
        node.vbn.bias.copy_(torch.randn(h, generator=g) * 0.1)
    return node


@pytest.mark.parametrize("mode", ["s", "m"])
def test_unfolded_mpbn_lif_is_exact_at_T1(mode):
    net = _mlp([(24, _unfolded_mpbn), (16, _unfolded_mpbn)], bn=True, mode=mode)
    network, table = import_module(net, T=1)
    agree = agreement(network, net, _inputs())
    assert agree.spikes == [1.0, 1.0] and agree.predictions == 1.0, agree.summary()
    assert all(0.02 < r < 0.9 for r in agree.spike_rates), agree.summary()
    assert network.layers[0].mpbn is not None
    assert any("unfolded MPBN at T = 1" in c for r in table.rows for c in r.conversions)


@pytest.mark.parametrize("mode", ["s", "m"])
def test_spiking_readout_is_exact(mode):
    net = _mlp([(24, LIF), (5, IF)], bn=True, readout=False, mode=mode)
    network, table = _check_exact(net)
    assert np.array_equal(network.layers[-1].weight, np.eye(5))
    assert any("spiking readout" in c for r in table.rows for c in r.conversions)


@pytest.mark.parametrize("make, module, reason", [
    (lambda: _mlp([(8, lambda h: neuron.ParametricLIFNode())]), "1", "not supported"),
    (lambda: _mlp([(8, LIF)], bn=False).append(layer.Linear(5, 3)), "3", "a second synapse"),
    (lambda: nn.Sequential(layer.Linear(N_IN, 4), layer.TemporalEffectiveBatchNorm1d(
        T=T - 2, num_features=4), LIF(4), layer.Linear(4, 2)), "1", "6 per-step scales for T = 8"),
    (lambda: nn.Sequential(layer.Linear(N_IN, 4), layer.BatchNormThroughTime1d(
        T + 1, 4, step_mode="m"), LIF(4), layer.Linear(4, 2)), "1", "import with -T 9"),
    (lambda: nn.Sequential(layer.Linear(N_IN, 4), layer.BatchNormThroughTime1d(T, 4),
                           layer.BatchNorm1d(4), LIF(4), layer.Linear(4, 2)),
     "2", "after the per-timestep bntt"),
    (lambda: nn.Sequential(layer.Linear(N_IN, 4), layer.BatchNormThroughTime1d(
        T, 4, step_mode="m"), neuron.LIFNode(step_mode="m"), layer.Linear(4, 2),
        layer.TemporalEffectiveBatchNorm1d(
                               T=T, num_features=2)), "4", "readout takes no normalizer"),
])
def test_unsupported_is_refused_naming_the_module(make, module, reason):
    with pytest.raises(ImportRefused, match=reason) as info:
        import_module(make(), T=T)
    assert info.value.name == module


def test_tdbn_folds_exactly():
    def tdbn(h, seed):
        bn = layer.ThresholdDependentBatchNorm1d(alpha=1.0, v_th=0.7, num_features=h)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(h, generator=g) * 0.3)
            bn.running_var.copy_((torch.rand(h, generator=g) + 0.5) * 1e-5)
            bn.weight.mul_((torch.rand(h, generator=g) + 0.5) * 3e-3)
            bn.bias.copy_(torch.randn(h, generator=g) * 0.2 + 0.3)
        return bn
    torch.manual_seed(0)
    lin = layer.Linear(N_IN, 24)
    with torch.no_grad():
        lin.weight.mul_(2.5)
    net = nn.Sequential(lin, tdbn(24, 0), LIF(24), layer.Linear(24, 5)).double().eval()
    functional.set_step_mode(net, "m")
    _, table = _check_exact(net)
    assert "SpikingJelly tdBN" in table.rows[1].conversions[0]


def _bntt(h, seed, mode):
    bntt = layer.BatchNormThroughTime1d(T, h, step_mode=mode)
    for t, bn in enumerate(bntt.bn_list):       # a different BatchNorm at every step
        set_bn_stats(torch, bn, 100 * seed + t)
    return bntt


def _tebn(h, seed, mode):
    tebn = set_bn_stats(torch, layer.TemporalEffectiveBatchNorm1d(T=T, num_features=h), seed)
    with torch.no_grad():
        tebn.scale.copy_(torch.linspace(0.6, 1.4, T))
    return tebn


@pytest.mark.parametrize("norm, mode", [("bntt", "s"), ("bntt", "m"), ("tebn", "m")])
def test_per_timestep_norms_are_exact(norm, mode):
    """BNTT and TEBN become the layer's per-timestep normalizer (not folded into the
    weights); LIFNode's 1/tau input scale folds into the normalizer's output."""
    make = {"bntt": _bntt, "tebn": _tebn}[norm]
    torch.manual_seed(0)
    layers, n = [], N_IN
    for i, (h, neuron_of) in enumerate([(24, LIF), (16, IF)]):
        lin = layer.Linear(n, h)
        with torch.no_grad():
            lin.weight.mul_(2.5)
        layers += [lin, make(h, i, mode), neuron_of(h)]
        n = h
    net = nn.Sequential(*layers, layer.Linear(n, 5)).double().eval()
    functional.set_step_mode(net, mode)
    network, table = _check_exact(net)
    assert [layer.norm for layer in network.layers] == [norm, norm, "none"]
    assert any("normalizer's output scale" in c for c in table.rows[2].conversions)
    if norm == "bntt":      # one table per step: step 3's statistics are step 3's BatchNorm
        bn3 = net[1].bn_list[3]
        np.testing.assert_array_equal(network.layers[0].norm_params["running_mean"][3],
                                      bn3.running_mean.numpy())
