"""NIR export/import: round trips (every comparator kind) and snnTorch-style graphs."""

import copy

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="NIR interop needs the [train] extra (pip install nir)")

from golden.fold import Compare  # noqa: E402
from golden.modelfile import load_default  # noqa: E402
from golden.nir_io import from_nir, read_nir, to_nir, write_nir  # noqa: E402

from test_golden_network import random_inputs, random_network  # noqa: E402

# Foreign (non-spikefold) graphs warn that NIR has no reset mode; tests that check it say so.
pytestmark = pytest.mark.filterwarnings("ignore:NIR does not record the reset mode")


@pytest.fixture(scope="module")
def default():
    return load_default()


def every_kind(default):
    """The default network with negative-gamma, never and always neurons in layer 0."""
    net = copy.deepcopy(default.network)
    m = net.layers[0].mpbn
    m["gamma"][:10] *= -1.0
    m["gamma"][10:13] = 0.0
    m["beta"][10] = 1.0                          # gamma = 0, beta > v_th: always
    return net


def assert_same(a, b, x):
    ra, rb = a.forward(x), b.forward(x)
    for p, q in zip(ra.spikes, rb.spikes):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_allclose(rb.logits, ra.logits, rtol=0, atol=1e-12)


def test_round_trip_in_memory(default):
    folded = every_kind(default).fold()
    kinds = np.bincount(folded.layers[0].rule.compare, minlength=4)
    assert kinds[Compare.LT] == 10 and kinds[Compare.NEVER] == 2 and kinds[Compare.ALWAYS] == 1
    graph = to_nir(folded, dt=1e-4)
    lif0 = graph.nodes["lif0"]
    assert np.sum(lif0.v_threshold == np.inf) == 2 and np.sum(lif0.v_threshold == -np.inf) == 1
    back = from_nir(graph)
    assert back.T == folded.T and back.tau == 0.25          # still a shift leak
    # Negative-gamma neurons are written as GT neurons with negated weights, bias and
    # threshold (all NIR can say), and the LIF's metadata names them ...
    np.testing.assert_array_equal(graph.nodes["fc0"].weight[:10], -folded.layers[0].weight[:10])
    assert graph.nodes["lif0"].metadata["spikefold_negated"].tolist() == \
        folded.layers[0].rule.compare.__eq__(Compare.LT).astype(int).tolist()
    # ... so they come back as the same LT neurons with the same weights, bit for bit.
    np.testing.assert_array_equal(back.layers[0].rule.compare, folded.layers[0].rule.compare)
    np.testing.assert_array_equal(back.layers[0].rule.theta, folded.layers[0].rule.theta)
    np.testing.assert_array_equal(back.layers[0].weight, folded.layers[0].weight)
    assert_same(folded, back, default.inputs(default.test_x))


@pytest.mark.parametrize("dt", [1.0, 1e-4, 1e-3])
def test_round_trip_through_a_file(default, tmp_path, dt):
    net = every_kind(default)
    path = tmp_path / "net.nir"
    write_nir(path, net, dt=dt)
    back = read_nir(path)
    assert back.tau == 0.25
    assert_same(net.fold(), back, default.inputs(default.test_x[:200]))


def test_time_constant_conversion(default):
    graph = to_nir(default.network, dt=1e-3)
    lif = graph.nodes["lif1"]
    # Forward Euler: decay = 1 - dt / tau_nir; unit input gain r * dt / tau_nir = 1.
    np.testing.assert_allclose(1 - 1e-3 / lif.tau, 0.25, rtol=0, atol=1e-15)
    np.testing.assert_allclose(lif.r * 1e-3 / lif.tau, 1.0, rtol=0, atol=1e-15)
    assert np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
    assert graph.metadata["spikefold_T"] == 4


def snntorch_like_graph(beta, dt=1e-4, r_scale=1.0, v_leak=0.0, seed=0):
    """Input -> Linear -> LIF -> Affine -> Output, parameters as snnTorch's export writes."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (6, 5))
    w2 = rng.normal(0, 0.5, (3, 6))
    b2 = rng.normal(0, 0.1, 3)
    tau = np.full(6, dt / (1 - beta))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([5])}),
        "fc1": nir.Linear(weight=w1),
        "lif1": nir.LIF(tau=tau, r=r_scale * tau / dt, v_leak=np.full(6, v_leak),
                        v_threshold=np.linspace(0.2, 0.8, 6)),
        "fc2": nir.Affine(weight=w2, bias=b2),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges), (w1, w2, b2, tau)


@pytest.mark.parametrize("r_scale, v_leak", [(1.0, 0.0), (2.0, 0.3)])
def test_import_snntorch_style_graph(r_scale, v_leak):
    beta, dt, T = 0.9, 1e-4, 5
    graph, (w1, w2, b2, tau) = snntorch_like_graph(beta, dt, r_scale, v_leak)
    with pytest.warns(UserWarning, match="does not record the reset mode"):
        net = from_nir(graph, T=T, dt=dt)            # a foreign graph: dt must be stated
    assert abs(net.tau - beta) < 1e-12
    x = np.random.default_rng(1).uniform(0, 1, (50, 5))
    # The NIR LIF discretized by forward Euler, written out directly.
    thr = np.linspace(0.2, 0.8, 6)
    v = np.zeros((50, 6))
    out = np.zeros((50, 3))
    for _ in range(T):
        v = (1 - dt / tau) * v + dt / tau * (v_leak + r_scale * tau / dt * (x @ w1.T))
        s = v > thr
        v = np.where(s, 0.0, v)
        out += s @ w2.T + b2
    got = net.forward(x)
    np.testing.assert_allclose(got.logits, out / T, rtol=0, atol=1e-9)
    assert 0 < got.spikes[0].mean() < 1


def test_import_needs_T():
    graph, _ = snntorch_like_graph(0.9)
    with pytest.raises(ValueError, match="pass T"):
        from_nir(graph, dt=1e-4)


def test_export_refuses_per_timestep_normalizers():
    with pytest.raises(ValueError, match="layer0 has a per-timestep affine stage"):
        to_nir(random_network("bntt"), dt=1e-4)


def test_export_then_import_of_folded_norms():
    for norm in ("none", "tdbn", "homeostatic"):
        net = random_network(norm, mpbn=True, seed=2)
        assert_same(net.fold(), from_nir(to_nir(net, dt=1.0)), random_inputs(100, 12))


def test_import_refuses_spiking_readout_and_branches():
    graph, _ = snntorch_like_graph(0.9)
    nodes = dict(graph.nodes)
    nodes["lif2"] = nir.LIF(tau=np.full(3, 1e-3), r=np.full(3, 10.0), v_leak=np.zeros(3),
                            v_threshold=np.ones(3))
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output")]
    with pytest.raises(ValueError, match="spiking readout"):
        from_nir(nir.NIRGraph(nodes=nodes, edges=edges), T=4, dt=1e-4)
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "output"),
             ("fc1", "lif2")]
    with pytest.raises(ValueError, match="more than one successor"):
        from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), T=4,
                     dt=1e-4)


def test_import_refuses_nonzero_reset_and_mixed_decay():
    graph, (w1, w2, b2, tau) = snntorch_like_graph(0.9)
    lif = graph.nodes["lif1"]
    graph.nodes["lif1"] = nir.LIF(tau=lif.tau, r=lif.r, v_leak=lif.v_leak,
                                  v_threshold=lif.v_threshold, v_reset=np.full(6, 0.1))
    with pytest.raises(ValueError, match="v_reset must be 0"):
        from_nir(graph, T=4, dt=1e-4)
    t2 = lif.tau.copy()
    t2[0] *= 2
    graph.nodes["lif1"] = nir.LIF(tau=t2, r=lif.r, v_leak=lif.v_leak,
                                  v_threshold=lif.v_threshold)
    with pytest.raises(ValueError, match="per-neuron decays"):
        from_nir(graph, T=4, dt=1e-4)


def test_dt_is_stated_on_both_sides(default):
    graph, _ = snntorch_like_graph(0.9)
    with pytest.raises(ValueError, match="does not record dt"):
        from_nir(graph, T=4)
    graph = to_nir(default.network, dt=1e-3)
    assert graph.metadata["spikefold_dt"] == 1e-3
    with pytest.raises(ValueError, match="spikefold_dt = 0.001"):
        from_nir(graph, dt=1e-4)
    with pytest.raises(TypeError, match="dt"):
        to_nir(default.network)


def test_float32_decays_snap():
    from golden.nir_io import snap_float32
    assert snap_float32(0.2500000083) == 0.25
    assert snap_float32(float(np.float32(0.9))) == float(np.float32(0.9))   # not short
    assert snap_float32(0.875 + 2e-8) == 0.875
    assert snap_float32(0.2501) == 0.2501                  # not within float32 precision
    # snnTorch's export in float32: tau = dt / (1 - beta) with beta = 0.25.
    beta, dt = 0.25, 1e-4
    graph, _ = snntorch_like_graph(beta, dt)
    lif = graph.nodes["lif1"]
    tau32 = np.float32(dt) / (np.float32(1) - np.float32(beta))
    graph.nodes["lif1"] = nir.LIF(tau=np.full(6, tau32), r=np.full(6, tau32 / np.float32(dt)),
                                  v_leak=lif.v_leak, v_threshold=lif.v_threshold,
                                  v_reset=lif.v_reset)
    with pytest.warns(UserWarning):
        net = from_nir(graph, T=4, dt=dt)
    assert 1.0 - dt / float(tau32) != 0.25                # the noise is there
    assert net.layers[0].neuron.tau == 0.25 and net.tau == 0.25


def test_per_layer_decays_and_reset_refusals(default):
    net = copy.deepcopy(default.network)
    from golden.layers import Neuron
    net.layers[0].neuron = Neuron(0.5, net.v_th, "zero")
    net.layers[1].neuron = Neuron(0.75, net.v_th, "zero")
    back = from_nir(to_nir(net, dt=1e-3))
    assert [back.neuron(i).tau for i in range(2)] == [0.5, 0.75]
    x = random_inputs(50, net.input_shape[0])
    assert_same(net.fold(), back, x)
    net.layers[1].neuron = Neuron(0.75, net.v_th, "subtract")
    with pytest.raises(ValueError, match="layer1: subtract reset cannot be expressed"):
        to_nir(net, dt=1e-3)
