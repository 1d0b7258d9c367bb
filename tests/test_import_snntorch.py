"""snnTorch modules -> spikefold: the library's own forward vs spikefold's float model.

Small MLPs with random weights (scaled so that every layer spikes at a useful rate), run in
float64 by both sides; spikes must agree 100 % at every layer and step, predictions 100 %.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
nn = torch.nn

from spikefold.importer import ImportRefused, import_module  # noqa: E402
from spikefold.importer.check import agreement  # noqa: E402

from import_helpers import random_inputs, set_bn_stats  # noqa: E402

T = 8
N_IN = 20


def _inputs(n=300, seed=1):
    return random_inputs(N_IN, n, seed)


def _bn(features, seed):
    return set_bn_stats(torch, nn.BatchNorm1d(features), seed)


def _mlp(*, bn=False, beta=0.8, reset="zero", delay=True, threshold=0.6, hidden=(24, 16),
         seed=0, readout=True):
    torch.manual_seed(seed)
    layers, n = [], N_IN
    for i, h in enumerate(hidden):
        lin = nn.Linear(n, h)
        with torch.no_grad():
            lin.weight.mul_(2.5)
        layers.append(lin)
        if bn:
            layers.append(_bn(h, seed + i))
        thr = threshold(h) if callable(threshold) else threshold
        layers.append(snn.Leaky(beta=beta, threshold=thr, init_hidden=True,
                                reset_mechanism=reset, reset_delay=delay,
                                learn_threshold=not isinstance(thr, float)))
        n = h
    if readout:
        layers.append(nn.Linear(n, 5))
    return nn.Sequential(*layers).double().eval()


def _check_exact(net):
    network, table = import_module(net, T=T)
    x = _inputs()
    agree = agreement(network, net, x)
    assert agree.spikes == [1.0] * len(agree.spikes), agree.summary()
    assert agree.predictions == 1.0, agree.summary()
    assert agree.max_logit_error < 1e-9, agree.summary()
    for rate in agree.spike_rates:      # the comparison means something
        assert 0.02 < rate < 0.9, agree.summary()
    return network, table


@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("delay", [True, False])
def test_leaky_zero_reset_mlp_is_exact(bn, delay):
    network, table = _check_exact(_mlp(bn=bn, delay=delay))
    assert [layer.neuron.reset for layer in network.layers[:-1]] == ["zero", "zero"]
    assert network.layers[-1].readout
    assert network.layers[0].neuron.tau == pytest.approx(0.8, abs=1e-7)
    folded = [r for r in table.rows if "(folded)" in r.target]
    assert len(folded) == (2 if bn else 0)


def test_leaky_per_neuron_learnable_threshold_is_exact():
    thresholds = lambda h: (torch.rand(h, generator=torch.Generator().manual_seed(h)) + 0.3)
    network, table = _check_exact(_mlp(bn=True, threshold=thresholds))
    assert any("per-neuron thresholds" in c for r in table.rows for c in r.conversions)


def test_if_subtract_reset_is_exact():
    network, _ = _check_exact(_mlp(beta=1.0, reset="subtract", threshold=1.0))
    assert network.layers[0].neuron == network.layers[1].neuron
    assert network.layers[0].neuron.reset == "subtract" and not network.layers[0].neuron.leaky


@pytest.mark.parametrize("output", [False, True])
def test_spiking_readout_is_exact(output):
    net = _mlp(bn=True, hidden=(24, 16, 5), readout=False)
    net[-1].output = output                 # Leaky(output=True) returns (spikes, membrane)
    network, table = _check_exact(net)
    readout = network.layers[-1]
    assert readout.readout and np.array_equal(readout.weight, np.eye(5))
    assert "spiking readout '8'" in table.markdown()
    result = network.forward(_inputs())
    assert np.array_equal(result.logits, result.spikes[-1].mean(axis=0))


def test_output_true_before_the_last_layer_is_refused():
    net = _mlp(bn=False)
    net[1].output = True
    with pytest.raises(ImportRefused, match="only the last layer may have output=True") as info:
        import_module(net, T=T)
    assert info.value.name == "1"


def test_table_names_every_module():
    _, table = import_module(_mlp(bn=True), T=T)
    assert [r.source for r in table.rows] == [str(i) for i in range(7)]
    assert "| 2 | snntorch.Leaky | layer0 neuron" in table.markdown()


@pytest.mark.parametrize("make, module, reason", [
    (lambda: _mlp(beta=0.8, reset="subtract"), "1", "subtracts the threshold after the leak"),
    (lambda: _mlp(beta=1.0, reset="subtract", delay=False), "1", "reset_delay=False"),
    (lambda: _mlp(reset="none"), "1", "reset_mechanism='none'"),
    (lambda: nn.Sequential(nn.Linear(N_IN, 4), snn.Leaky(beta=torch.rand(4) * 0.5 + 0.2,
                                                         init_hidden=True,
                                                         reset_mechanism="zero"),
                           nn.Linear(4, 2)), "1", "per-neuron decays"),
    (lambda: nn.Sequential(nn.Linear(N_IN, 4), snn.Synaptic(alpha=0.5, beta=0.5,
                                                            init_hidden=True),
                           nn.Linear(4, 2)), "1", "not supported"),
    (lambda: nn.Sequential(nn.Linear(N_IN, 4), nn.ReLU(), nn.Linear(4, 2)), "1",
     "unsupported module"),
    (lambda: nn.Sequential(nn.Linear(N_IN, 4), nn.Linear(4, 2)), "1", "a second synapse"),
])
def test_unsupported_is_refused_naming_the_module(make, module, reason):
    with pytest.raises(ImportRefused, match=reason) as info:
        import_module(make(), T=T)
    assert info.value.name == module
    assert f"module {module!r}" in str(info.value)


def test_custom_container_is_refused():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(N_IN, 4)
            self.lif = snn.Leaky(beta=0.5)

        def forward(self, x):
            return self.lif(self.fc(x))

    with pytest.raises(ImportRefused, match="custom container") as info:
        import_module(nn.Sequential(Net(), nn.Linear(4, 2)), T=T)
    assert info.value.name == "0"


def test_bad_arguments():
    with pytest.raises(ValueError, match="T must be a positive integer"):
        import_module(_mlp(), T=0)
    with pytest.raises(ValueError, match="dt applies to NIR files only"):
        import_module(_mlp(), T=T, dt=1e-3)
    with pytest.raises(ImportRefused, match="takes 20 inputs but receives 12"):
        import_module(_mlp(), T=T, input_shape=(3, 4))
