"""Norse modules -> spikefold: the library's own forward vs spikefold's float model.

``SequentialState`` nets of Linear/Conv2d and ``LIFBoxCell`` (or ``LIFCell`` without a
synaptic carry) with random weights, both sides in float64, run step by step with Norse's
state list: spikes 100 % at every layer and step, predictions 100 %. Current-based LIFs and
leaky-integrator readouts are refused with the reason.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("norse")
import norse.torch as norse  # noqa: E402
from norse.torch.functional.reset import reset_subtract  # noqa: E402

from spikefold.importer import ImportRefused, import_module  # noqa: E402
from spikefold.importer.check import agreement  # noqa: E402

nn = torch.nn
T = 8
N_IN = 20


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _t(v):
    return torch.as_tensor(v, dtype=torch.float64)


def _box(tau_mem_inv=100.0, v_th=0.3, v_leak=0.0, v_reset=0.0, subtract=False, dt=0.001):
    kw = dict(reset_method=reset_subtract) if subtract else {}
    p = norse.LIFBoxParameters(tau_mem_inv=_t(tau_mem_inv), v_th=_t(v_th), v_leak=_t(v_leak),
                               v_reset=_t(v_reset), **kw)
    return norse.LIFBoxCell(p, dt=dt)


def _lif(tau_syn_inv=1000.0, dt=0.001, v_th=0.3):
    p = norse.LIFParameters(tau_syn_inv=_t(tau_syn_inv), tau_mem_inv=_t(200.0), v_th=_t(v_th))
    return norse.LIFCell(p, dt=dt)


def _linear(n_in, n_out, gain=2.5):
    lin = nn.Linear(n_in, n_out)
    with torch.no_grad():
        lin.weight.mul_(gain)
    return lin


def _mlp(make0, make1, seed=0):
    torch.manual_seed(seed)
    return norse.SequentialState(_linear(N_IN, 24), make0(), _linear(24, 16), make1(),
                                 nn.Linear(16, 5)).double().eval()


def _inputs(n=300, seed=1, shape=(N_IN,)):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n,) + shape)


def _check_exact(net, x=None, input_shape=None):
    network, table = import_module(net, T=T, input_shape=input_shape)
    agree = agreement(network, net, _inputs() if x is None else x)
    assert agree.spikes == [1.0] * len(agree.spikes), agree.summary()
    assert agree.predictions == 1.0, agree.summary()
    assert agree.max_logit_error < 1e-9, agree.summary()
    for rate in agree.spike_rates:
        assert 0.02 < rate < 0.9, agree.summary()
    return network, table


def test_lif_box_mlp_is_exact():
    network, table = _check_exact(_mlp(_box, lambda: _box(tau_mem_inv=300.0, v_th=0.2)))
    assert network.layers[0].neuron.tau == pytest.approx(0.9)
    assert network.layers[1].neuron.tau == pytest.approx(0.7)
    assert network.layers[0].neuron.fire == ">"
    assert "input scaled by dt * tau_mem_inv" in table.markdown()


def test_lif_box_leak_potential_and_subtract_reset_are_exact():
    network, table = _check_exact(_mlp(lambda: _box(v_leak=-0.2, v_reset=-0.2, v_th=0.1),
                                       lambda: _box(subtract=True, v_th=0.08)))
    assert network.layers[0].neuron.v_th == pytest.approx(0.3)
    assert network.layers[1].neuron.reset == "subtract"


def test_lif_cell_without_synaptic_carry_is_exact():
    network, table = _check_exact(_mlp(_lif, _lif))
    assert "dt * tau_syn_inv = 1" in table.markdown()


def test_norse_conv_is_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 6, 3, padding=1)
    with torch.no_grad():
        conv.weight.mul_(2.0)
    net = norse.SequentialState(conv, _box(v_th=0.1), nn.MaxPool2d(2), nn.Flatten(),
                                _linear(96, 5, 1.0)).double().eval()
    x = _inputs(120, shape=(1, 8, 8))
    network, _ = _check_exact(net, x, input_shape=(1, 8, 8))
    assert [layer.kind for layer in network.layers] == ["conv2d", "pool2d", "flatten", "dense"]


@pytest.mark.parametrize("make, module, reason", [
    (lambda: _mlp(lambda: _lif(tau_syn_inv=200.0), _box), "1", "current-based LIF"),
    (lambda: norse.SequentialState(nn.Linear(N_IN, 4), _box(), nn.Linear(4, 3),
                                   norse.LICell()), "3", "leaky-integrator readout"),
    (lambda: _mlp(lambda: _box(v_leak=0.1), _box), "1", "v_leak = 0.1 != v_reset = 0.0"),
    (lambda: _mlp(lambda: _box(v_leak=0.1, v_reset=0.1, subtract=True), _box), "1",
     "reset_subtract with v_leak"),
    (lambda: _mlp(lambda: _box(tau_mem_inv=torch.rand(24) * 100 + 50), _box), "1",
     "per-neuron tau_mem_inv"),
    (lambda: _mlp(lambda: _box(dt=0.01), _box), "1", "decay 1 - dt"),
    (lambda: norse.SequentialState(nn.Linear(N_IN, 4), norse.LIF(), nn.Linear(4, 3)), "1",
     "not supported"),
])
def test_unsupported_is_refused_naming_the_module(make, module, reason):
    with pytest.raises(ImportRefused, match=reason) as info:
        import_module(make(), T=T)
    assert info.value.name == module
