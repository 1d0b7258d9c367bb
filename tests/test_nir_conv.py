"""NIR export/import of conv networks (Conv2d, SumPool2d/AvgPool2d, Flatten) and the
per-target exports that snnTorch's and Norse's importers read exactly."""

import copy
from dataclasses import replace

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="NIR interop needs the [train] extra (pip install nir)")

from golden.calibrate import calibrate  # noqa: E402
from golden.examples import example_conv_network  # noqa: E402
from golden.fold import Compare  # noqa: E402
from golden.layers import Conv2d, Dense, Flatten, Neuron, Pool2d  # noqa: E402
from golden.modelfile import load_conv_default, load_default  # noqa: E402
from golden.network import IntegerNetwork, Network  # noqa: E402
from golden.nir_io import from_nir, read_nir, to_nir, write_nir  # noqa: E402

# Foreign (non-spikefold) graphs warn that NIR has no reset mode; tests that check it say so.
pytestmark = pytest.mark.filterwarnings("ignore:NIR does not record the reset mode")


@pytest.fixture(scope="module")
def conv_default():
    return load_conv_default()


def with_pool(model, mode):
    """The shipped conv default with its max pooling replaced by ``mode`` pooling."""
    net = copy.deepcopy(model.network)
    net.layers[1] = replace(net.layers[1], mode=mode)
    return net.check()


def assert_same_float(a, b, x):
    ra, rb = a.forward(x), b.forward(x)
    for p, q in zip(ra.spikes, rb.spikes):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(ra.logits, rb.logits)


def assert_same_integer(a, b, formats, x):
    qa = IntegerNetwork.from_folded(a, formats).run(x)
    qb = IntegerNetwork.from_folded(b, formats).run(x)
    assert len(qa.spikes) == 2
    for p, q in zip(qa.spikes, qb.spikes):
        assert 0 < p.mean() < 1
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(qa.logits_q, qb.logits_q)
    return qa


def small_conv(mode="avg", seed=0):
    """A fresh small conv net (one threshold per layer, two decays, stride 2)."""
    rng = np.random.default_rng(seed)
    layers = [Conv2d(rng.normal(0, 0.6, (4, 1, 3, 3)), rng.normal(0, 0.1, 4), (1, 8, 8), 1, 1,
                     neuron=Neuron(0.75, 0.5, "zero")),
              Pool2d((4, 8, 8), 2, 2, mode),
              Conv2d(rng.normal(0, 0.5, (6, 4, 3, 3)), rng.normal(0, 0.1, 6), (4, 4, 4), 2, 1,
                     neuron=Neuron(0.5, 0.8, "zero")),
              Flatten((6, 2, 2)),
              Dense(rng.normal(0, 0.3, (10, 24)), rng.normal(0, 0.1, 10), readout=True)]
    return Network(layers, T=6, tau=0.75, v_th=0.5)


def digits_like(n, seed=1):
    return np.random.default_rng(seed).integers(0, 17, (n, 1, 8, 8)) / 16.0


# -- spikefold -> NIR -> spikefold ------------------------------------------------------------

@pytest.mark.parametrize("mode", ["sum", "avg"])
def test_conv_round_trip_through_a_file_is_bit_identical(conv_default, tmp_path, mode):
    net = with_pool(conv_default, mode)
    path = tmp_path / "conv.nir"
    write_nir(path, net, dt=1e-4)
    graph = nir.read(path)
    kinds = [type(graph.nodes[k]).__name__ for k in
             ("input", "conv0", "lif0", "pool1", "conv2", "lif2", "flatten3", "fc4", "output")]
    assert kinds == ["Input", "Conv2d", "LIF", "SumPool2d", "Conv2d", "LIF", "Flatten", "Affine",
                     "Output"]
    assert graph.check_types()                        # every input/output type is set
    assert list(graph.nodes["input"].input_type["input"]) == [1, 8, 8]   # no batch axis
    assert list(graph.nodes["lif0"].v_threshold.shape) == [16, 8, 8]
    back = from_nir(graph)
    assert [layer.kind for layer in back.layers] == ["conv2d", "pool2d", "conv2d", "flatten",
                                                      "dense"]
    assert back.layers[1].mode == "sum" and back.T == 8
    x = conv_default.inputs(conv_default.test_x[:120])
    folded = net.fold()
    assert_same_float(folded, back, x)
    formats = calibrate(net, conv_default.inputs(conv_default.calib_x[:400]))
    assert_same_integer(folded, back, formats, x)


def test_avg_pool_scale_is_absorbed_exactly(conv_default):
    """avg pooling: the folded network is a sum pooling with 1/4 in the next conv weights."""
    net = with_pool(conv_default, "avg")
    graph = to_nir(net, dt=1e-4)
    w_sum = with_pool(conv_default, "sum").fold().layers[2].weight
    np.testing.assert_array_equal(graph.nodes["conv2"].weight, w_sum / 4)


def test_conv_import_of_avgpool2d(conv_default):
    """An AvgPool2d node imports as sum pooling with 1/K in the next weights (snnTorch's
    export writes AvgPool2d)."""
    net = with_pool(conv_default, "avg")
    graph = to_nir(net, dt=1e-4)
    pool = graph.nodes["pool1"]
    graph.nodes["pool1"] = nir.AvgPool2d(kernel_size=pool.kernel_size, stride=pool.stride,
                                         padding=pool.padding)
    conv = graph.nodes["conv2"]
    graph.nodes["conv2"] = nir.Conv2d(input_shape=conv.input_shape, weight=conv.weight * 4,
                                      stride=conv.stride, padding=conv.padding,
                                      dilation=conv.dilation, groups=conv.groups, bias=conv.bias)
    back = from_nir(graph)
    assert_same_float(net.fold(), back, conv_default.inputs(conv_default.test_x[:100]))


def test_export_refuses_max_pooling(conv_default):
    with pytest.raises(ValueError, match="layer1: max pooling has no NIR node"):
        to_nir(conv_default.network, dt=1e-4)


@pytest.mark.parametrize("mpbn", ["channel", None])
def test_channelwise_mpbn_of_every_sign_round_trips(mpbn, tmp_path):
    """Negative-gamma channels are negated whole; never/always channels are +-inf."""
    layers = [{"kind": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1},
              {"kind": "pool2d", "kernel": 2, "mode": "sum"},
              {"kind": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1},
              {"kind": "flatten"}]
    net = example_conv_network(layers=layers, mpbn=mpbn, T=4, seed=3)
    folded = net.fold()
    if mpbn:
        kinds = set(np.unique(folded.layers[0].rule.compare).tolist())
        assert kinds == {int(c) for c in Compare}
    path = tmp_path / "c.nir"
    write_nir(path, net, dt=1e-3)
    back = read_nir(path)
    x = digits_like(200)
    assert_same_float(folded, back, x)
    assert_same_integer(folded, back, calibrate(net, digits_like(300, seed=2)), x)


def test_elementwise_rule_mixing_lt_in_a_channel_is_refused():
    net = example_conv_network(mpbn="element", seed=1)
    with pytest.raises(ValueError, match="layer0: channel 0 mixes neurons firing on u < theta"):
        to_nir(net, dt=1e-3)


def test_elementwise_positive_thresholds_round_trip():
    net = example_conv_network(mpbn="element", seed=1)
    for layer in net.layers:
        if layer.kind == "conv2d":
            layer.mpbn["gamma"] = np.abs(layer.mpbn["gamma"]) + 0.1
        if layer.kind == "pool2d":
            layer.mode = "sum"
    back = from_nir(to_nir(net, dt=1e-3))
    assert back.layers[0].rule.theta.shape == (4, 8, 8)
    assert np.ptp(back.layers[0].rule.theta[0]) > 0          # per element
    assert_same_float(net.fold(), back, digits_like(100))


# -- refusals on import: the node and the field are named -------------------------------------

def _conv_graph():
    return to_nir(small_conv("sum"), dt=1e-4)


def _with_conv(graph, name, **change):
    node = graph.nodes[name]
    fields = dict(input_shape=node.input_shape, weight=node.weight, stride=node.stride,
                  padding=node.padding, dilation=node.dilation, groups=node.groups,
                  bias=node.bias)
    fields.update(change)
    graph.nodes[name] = nir.Conv2d(**fields)
    return graph


@pytest.mark.parametrize("change, message", [
    (dict(dilation=2), "node 'conv0': dilation = \\(2, 2\\) is not supported \\(only 1\\)"),
    (dict(groups=2), "node 'conv0': groups = \\[2\\] is not supported \\(only 1\\)"),
    (dict(stride=3), "node 'conv0': stride = \\(3, 3\\) is not supported"),
    (dict(stride=(1, 2)), "node 'conv0': stride = \\(1, 2\\) is not supported"),
    (dict(padding=(1, 0)), "node 'conv0': padding = \\(1, 0\\) is not supported"),
    (dict(padding="same"), None),                               # k = 3, stride 1: padding 1
    (dict(input_shape=(7, 7)), "node 'conv0': input_shape = \\[7, 7\\] but the input is"),
    (dict(weight=np.zeros((4, 1, 3, 2))), "node 'conv0': kernel 3x2 is not square"),
])
def test_import_refuses_unsupported_conv_fields(change, message):
    graph = _with_conv(_conv_graph(), "conv0", **change)
    if message is None:
        back = from_nir(graph)
        assert back.layers[0].padding == 1
        return
    with pytest.raises(ValueError, match=message):
        from_nir(graph)


@pytest.mark.parametrize("start, end, message", [
    (1, -1, "node 'flatten3': Flatten start_dim = 1, end_dim = -1 .* keeps some axes"),
    (0, 1, "node 'flatten3': Flatten start_dim = 0, end_dim = 1"),
    (3, -1, "node 'flatten3': Flatten start_dim = 3 is out of range"),
    (-3, 2, None),                                  # the same full flatten
])
def test_import_flatten_dims(start, end, message):
    graph = _conv_graph()
    graph.nodes["flatten3"] = nir.Flatten(input_type={"input": np.array([6, 2, 2])},
                                          start_dim=start, end_dim=end)
    if message is None:
        assert from_nir(graph).layers[3].kind == "flatten"
        return
    with pytest.raises(ValueError, match=message):
        from_nir(graph, T=4)


def test_import_refuses_pool_padding_and_shapes():
    graph = _conv_graph()
    graph.nodes["pool1"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                         padding=np.array([1, 1]))
    with pytest.raises(ValueError, match="node 'pool1': padding = \\(1, 1\\) is not supported"):
        from_nir(graph)
    graph.nodes["pool1"] = nir.SumPool2d(kernel_size=np.array([2, 1]), stride=np.array([2, 2]),
                                         padding=np.array([0, 0]))
    with pytest.raises(ValueError, match="node 'pool1': kernel_size = \\(2, 1\\) is not square"):
        from_nir(graph)


def test_export_refusals_per_target():
    with pytest.raises(ValueError, match="target 'snntorch': snnTorch's import_from_nir "
                                         "assumes dt = 0.0001, not dt = 0.001"):
        to_nir(small_conv(), dt=1e-3, target="snntorch")
    net = small_conv()
    net.layers[1] = Pool2d((4, 8, 8), 3, 2, "sum")
    net.layers[2] = Conv2d(np.ones((6, 4, 3, 3)), np.zeros(6), (4, 3, 3), 1, 1,
                           neuron=Neuron(0.5, 0.8, "zero"))
    net.layers[3] = Flatten((6, 3, 3))
    net.layers[4] = Dense(np.ones((10, 54)), np.zeros(10), readout=True)
    net.check()
    with pytest.raises(ValueError, match="layer1: target 'snntorch' reads AvgPool2d.*K = 9"):
        to_nir(net, target="snntorch")
    assert to_nir(net, target="norse").nodes["pool1"].kernel_size.tolist() == [3, 3]
    with pytest.raises(ValueError, match="layer0: element-wise thresholds vary within a channel"):
        net = example_conv_network(mpbn="element", seed=1)
        for layer in net.layers:
            if layer.kind == "conv2d":
                layer.mpbn["gamma"] = np.abs(layer.mpbn["gamma"]) + 0.1
        to_nir(net, target="snntorch")
    with pytest.raises(ValueError, match="target must be one of"):
        to_nir(small_conv(), dt=1e-4, target="lava")


def test_every_target_reads_back(tmp_path):
    """Each target's graph is valid NIR for the same network (our importer reads all)."""
    net = small_conv("avg")
    x = digits_like(200)
    ref = net.fold().forward(x)
    for target in ("spikefold", "snntorch", "norse"):
        path = tmp_path / f"{target}.nir"
        write_nir(path, net, dt=None if target != "spikefold" else 1e-4, target=target)
        graph = nir.read(path)
        assert graph.metadata["spikefold_target"] == target
        got = from_nir(graph).forward(x)
        for a, b in zip(ref.spikes, got.spikes):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-12)


# -- snnTorch and Norse read our exports ------------------------------------------------------

def mlp_positive_thresholds():
    """The default MLP with its MPBN made to fold into positive per-neuron thresholds
    (snnTorch's importer takes one threshold per layer: positive per-neuron thresholds scale
    into the weights)."""
    net = copy.deepcopy(load_default().network)
    for layer in net.layers[:-1]:
        m = layer.mpbn
        m["gamma"] = np.abs(m["gamma"]) + 0.05
        m["beta"] = np.minimum(m["beta"], 0.4)
        m["running_mean"] = np.abs(m["running_mean"])
    return net


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_snntorch_import_from_nir_runs_our_export_exactly(kind):
    pytest.importorskip("torch")
    pytest.importorskip("snntorch")
    from spikefold.importer.nir import library_agreement

    if kind == "mlp":
        net = mlp_positive_thresholds()
        x = load_default().inputs(load_default().test_x[:200])
    else:
        net, x = small_conv("avg"), digits_like(100)
    graph = to_nir(net, target="snntorch")                # dt = 1e-4, as snnTorch assumes
    assert graph.metadata["spikefold_dt"] == 1e-4
    agree = library_agreement(net, graph, x, "snntorch")
    print(f"\nsnnTorch import_from_nir, {kind}: {agree.summary()} ({len(x)} samples)")
    assert agree.spikes == [1.0] * len(agree.spikes) and agree.predictions == 1.0, \
        agree.summary()
    assert all(0.01 < r < 0.9 for r in agree.spike_rates), agree.spike_rates


def if_conv():
    """``small_conv`` with an IF first layer (tau = 1: NIR's IF node)."""
    net = small_conv("sum")
    net.layers[0].neuron = Neuron(1.0, 0.5, "zero")
    return net.check()


def test_if_neurons_export_as_nir_if():
    net = if_conv()
    graph = to_nir(net, dt=1e-4)
    assert type(graph.nodes["lif0"]).__name__ == "IF"
    np.testing.assert_array_equal(graph.nodes["lif0"].r, np.full((4, 8, 8), 1e4))
    back = from_nir(graph)
    assert back.layers[0].neuron.tau == 1.0 and back.layers[2].neuron.tau == 0.5
    assert_same_float(net.fold(), back, digits_like(100))
    with pytest.raises(ValueError, match="layer0: tau = 1 \\(IF neuron\\): snnTorch 1.0's"):
        to_nir(net, target="snntorch")


@pytest.mark.parametrize("kind", ["mlp", "conv", "conv-if"])
def test_norse_from_nir_runs_our_export_exactly(kind, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("norse.torch")
    from spikefold.importer.nir import library_agreement

    if kind == "mlp":                              # every comparator kind, +-inf thresholds
        net = load_default().network
        x = load_default().inputs(load_default().test_x[:200])
    else:
        net, x = (small_conv("sum") if kind == "conv" else if_conv()), digits_like(100)
    path = tmp_path / "g.nir"
    write_nir(path, net, target="norse")           # dt = 1e-3, Norse's default
    graph = nir.read(path)
    assert all(np.all(graph.nodes[k].r == 1) for k in graph.nodes
               if type(graph.nodes[k]).__name__ == "LIF")
    agree = library_agreement(net, graph, x, "norse")
    print(f"\nNorse from_nir, {kind}: {agree.summary()} ({len(x)} samples)")
    assert agree.spikes == [1.0] * len(agree.spikes) and agree.predictions == 1.0, \
        agree.summary()
    assert all(0.01 < r < 0.9 for r in agree.spike_rates), agree.spike_rates


def test_lif_parameters_broadcast_per_channel():
    """LIF parameters of shape (C, 1, 1) broadcast over a conv layer's neurons (NIR itself
    asks only that a LIF's parameters share one shape)."""
    net = small_conv("sum")
    graph = to_nir(net, dt=1e-4)
    lif = graph.nodes["lif0"]
    nodes = dict(graph.nodes)
    nodes["lif0"] = nir.LIF(tau=lif.tau[:, :1, :1].copy(), r=lif.r[:, :1, :1].copy(),
                            v_leak=np.zeros((4, 1, 1)), v_threshold=lif.v_threshold[:, :1, :1],
                            v_reset=np.zeros((4, 1, 1)))
    odd = nir.NIRGraph(nodes=nodes, edges=graph.edges, metadata=graph.metadata,
                       type_check=False)
    back = from_nir(odd)
    assert back.layers[0].rule.theta.shape == (4, 8, 8)
    assert_same_float(net.fold(), back, digits_like(50))
    nodes["lif0"] = nir.LIF(tau=lif.tau[:, :1, :2].copy(), r=lif.r[:, :1, :2].copy(),
                            v_leak=np.zeros((4, 1, 2)), v_threshold=lif.v_threshold[:, :1, :2],
                            v_reset=np.zeros((4, 1, 2)))
    with pytest.raises(ValueError, match="LIF 'lif0'.tau has shape \\(4, 1, 2\\), expected "
                                         "\\(4, 8, 8\\)"):
        from_nir(nir.NIRGraph(nodes=nodes, edges=graph.edges, metadata=graph.metadata,
                              type_check=False))
