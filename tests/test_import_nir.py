"""NIR files -> Network (spikefold.importer.import_nir) and ``spikefold import G.nir``."""

import numpy as np
import pytest

pytest.importorskip("nir")

from golden.modelfile import ModelFile, load_default  # noqa: E402
from golden.nir_io import write_nir  # noqa: E402
from spikefold.cli import main  # noqa: E402
from spikefold.importer import import_nir  # noqa: E402


@pytest.fixture(scope="module")
def default():
    return load_default()


def test_import_nir_is_the_exported_network(default, tmp_path):
    path = tmp_path / "g.nir"
    write_nir(path, default.network, dt=1e-4)
    network, table = import_nir(path)
    x = default.inputs(default.test_x[:100])
    want, got = default.network.forward(x), network.forward(x)
    for a, b in zip(want.spikes, got.spikes):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(want.predict(), got.predict())
    assert [(r.source, r.module) for r in table.rows][:2] == [("fc0", "nir.Affine"),
                                                               ("lif0", "nir.LIF")]
    assert any("reset mode" in note for note in table.notes)


def test_cli_imports_nir(default, tmp_path, capsys):
    pytest.importorskip("sklearn")
    path = tmp_path / "g.nir"
    write_nir(path, default.network, dt=1e-4)
    out = tmp_path / "m.npz"
    code = main(["import", str(path), "--data", "digits", "-o", str(out)])
    text = capsys.readouterr()
    assert "| lif0 | nir.LIF |" in text.out
    if code == 0:        # a model file version that stores per-layer neurons
        net = ModelFile.load(out).network
        x = default.inputs(default.test_x[:100])
        np.testing.assert_array_equal(net.forward(x).predict(),
                                      default.network.forward(x).predict())
    else:
        assert "cannot store layer" in text.err and not out.exists()


def test_cli_nir_refuses_checkpoint_and_wrong_dt(default, tmp_path, capsys):
    path = tmp_path / "g.nir"
    write_nir(path, default.network, dt=1e-4)
    assert main(["import", str(path), "--checkpoint", "x.pt", "-o", "m.npz"]) == 2
    assert "--checkpoint applies to" in capsys.readouterr().err
    assert main(["import", str(path), "--dt", "1e-3", "-o", str(tmp_path / "m.npz")]) == 2
    assert "spikefold_dt = 0.0001" in capsys.readouterr().err


# snnTorch 1.0's export calls a nirtorch API that nirtorch deprecates (not ours to fix).
@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph:DeprecationWarning")
def test_snntorch_nir_export_imports_exactly():
    """snnTorch's own export (float32, dt = 1e-4, no reset mode): the decay snaps back to
    0.75 and the zero-reset model agrees 100 % with snnTorch's forward."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    from golden.nir_io import from_nir
    from spikefold.importer.check import agreement
    from spikefold.importer.nir import network_from_folded

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(20, 16),
        snn.Leaky(beta=torch.full((16,), 0.75), threshold=torch.full((16,), 0.6),
                  init_hidden=True, reset_mechanism="zero"),
        torch.nn.Linear(16, 4))
    with torch.no_grad():
        net[0].weight.mul_(2.5)
    graph = export_to_nir(net, torch.rand(20))
    with pytest.warns(UserWarning, match="does not record the reset mode"):
        folded = from_nir(graph, T=8, dt=1e-4)
    assert folded.layers[0].neuron.tau == 0.75
    network, _ = network_from_folded(folded)
    agree = agreement(network, net, np.random.default_rng(1).uniform(0, 1, (300, 20)))
    assert agree.spikes == [1.0] and agree.predictions == 1.0, agree.summary()
    assert 0.05 < agree.spike_rates[0] < 0.9


def test_conv_nir_through_the_cli_is_bit_identical(tmp_path, capsys):
    """The conv default (sum pooling) -> NIR file -> ``spikefold import`` -> model file: the
    same integer model (spikes and logits) as the original with the same formats."""
    pytest.importorskip("sklearn")
    from dataclasses import replace

    from golden.calibrate import calibrate
    from golden.modelfile import load_conv_default
    from golden.network import IntegerNetwork

    m = load_conv_default()
    net = m.network
    net.layers[1] = replace(net.layers[1], mode="sum")
    net.check()
    path = tmp_path / "conv.nir"
    write_nir(path, net, dt=1e-3)
    out = tmp_path / "m.npz"
    assert main(["import", str(path), "--data", "digits", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| conv0 | nir.Conv2d | layer0 conv2d (1, 8, 8)->(16, 8, 8) |" in text
    assert "| pool1 | nir.SumPool2d |" in text and "| flatten3 | nir.Flatten |" in text
    loaded = ModelFile.load(out)
    assert [layer.kind for layer in loaded.network.layers] == [
        "conv2d", "pool2d", "conv2d", "flatten", "dense"]
    x = m.inputs(m.test_x[:100])
    formats = calibrate(net, m.inputs(m.calib_x[:400]))
    want = IntegerNetwork.from_folded(net.fold(), formats).run(x)
    got = IntegerNetwork.from_folded(loaded.network.fold(), formats).run(x)
    for a, b in zip(want.spikes, got.spikes):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(want.logits_q, got.logits_q)


def snntorch_conv_module():
    """A zero-reset snnTorch conv net as a user writes it for ``export_to_nir``: beta and
    threshold of each Leaky with the layer's output shape (NIR types need it)."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        snn.Leaky(beta=torch.full((4, 8, 8), 0.75), threshold=torch.full((4, 8, 8), 0.5),
                  init_hidden=True, reset_mechanism="zero"),
        torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(4, 6, 3, padding=1, stride=2),
        snn.Leaky(beta=torch.full((6, 2, 2), 0.5), threshold=torch.full((6, 2, 2), 0.7),
                  init_hidden=True, reset_mechanism="zero"),
        torch.nn.Flatten(),
        torch.nn.Linear(24, 10))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[3].weight.mul_(6.0)
    return net.eval()


@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph:DeprecationWarning")
def test_snntorch_conv_export_comes_in_through_the_cli(tmp_path, capsys):
    """snnTorch's own ``export_to_nir`` of a conv net (batched sample, ``ignore_dims=[0]``:
    NIR shapes carry no batch axis) -> ``spikefold import x.nir`` -> the same spikes as
    snnTorch's forward, every layer, every step."""
    torch = pytest.importorskip("torch")
    from snntorch.export_nir import export_to_nir

    from spikefold.importer.check import agreement

    module = snntorch_conv_module()
    graph = export_to_nir(module, torch.rand(1, 1, 8, 8), ignore_dims=[0])
    assert graph.metadata == {} or "spikefold_dt" not in graph.metadata
    path = tmp_path / "snn.nir"
    nir = pytest.importorskip("nir")
    nir.write(path, graph)
    out = tmp_path / "m.npz"
    assert main(["import", str(path), "-T", "6", "-o", str(out)]) == 2   # dt is needed
    assert "does not record dt" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="does not record the reset mode"):
        assert main(["import", str(path), "-T", "6", "--dt", "1e-4", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nir.AvgPool2d" in text and "decay 1 - dt/tau = 0.75" in text
    network = ModelFile.load(out).network
    assert [layer.kind for layer in network.layers] == [
        "conv2d", "pool2d", "conv2d", "flatten", "dense"]
    assert [network.neuron(i).tau for i in (0, 2)] == [0.75, 0.5]
    x = np.random.default_rng(1).uniform(0, 1, (200, 1, 8, 8))
    agree = agreement(network, module, x)
    assert agree.spikes == [1.0, 1.0] and agree.predictions == 1.0, agree.summary()
    assert all(0.05 < r < 0.9 for r in agree.spike_rates), agree.spike_rates


@pytest.mark.parametrize("mpbn", ["channel", "element"])
def test_import_nir_carries_every_comparator_kind_exactly(tmp_path, mpbn):
    """Per-neuron rules of every kind (u > theta, u < theta, never, always) come into the
    trained Network as MPBN that folds back to the same rule bit for bit; the weights are
    the graph's (nothing is rescaled)."""
    from golden.examples import example_conv_network
    from golden.fold import Compare

    layers = [{"kind": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1},
              {"kind": "pool2d", "kernel": 2, "mode": "sum"},
              {"kind": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1},
              {"kind": "flatten"}]
    net = example_conv_network(layers=layers, mpbn=mpbn, T=4, seed=3)
    if mpbn == "element":           # NIR can negate whole channels only: no LT neurons here
        for layer in net.layers:
            if layer.kind == "conv2d":
                layer.mpbn["gamma"] = np.where(layer.mpbn["gamma"] < 0, 0.7,
                                               layer.mpbn["gamma"])
    folded = net.fold()
    path = tmp_path / "g.nir"
    write_nir(path, net, dt=1e-3)
    network, table = import_nir(path)
    back = network.fold()
    for a, b in zip(folded.layers, back.layers):
        if getattr(a, "rule", None) is not None:
            np.testing.assert_array_equal(a.rule.compare, b.rule.compare)
            np.testing.assert_array_equal(a.rule.theta, b.rule.theta)
        if hasattr(a, "weight"):
            np.testing.assert_array_equal(a.weight, b.weight)
    kinds = set(np.unique(folded.layers[0].rule.compare).tolist())
    assert {int(Compare.NEVER), int(Compare.ALWAYS)} <= kinds
    assert (int(Compare.LT) in kinds) == (mpbn == "channel")
    assert network.layers[0].mpbn["gamma"].shape == ((6,) if mpbn == "channel" else (6, 8, 8))
    x = np.random.default_rng(1).integers(0, 17, (100, 1, 8, 8)) / 16.0
    want, got = net.forward(x), network.forward(x)
    for a, b in zip(want.spikes, got.spikes):
        np.testing.assert_array_equal(a, b)
    assert any("carried as MPBN" in c for r in table.rows for c in r.conversions)


def test_spikingjelly_conv_export_comes_in_through_the_cli(tmp_path, capsys):
    """SpikingJelly's own ``export_to_nir`` of a conv net with LIFNode (tau 2, decay_input)
    and IFNode (NIR's IF, r = 1/dt) -> ``spikefold import`` -> SpikingJelly's forward, spike
    for spike. (SpikingJelly fires on >=, NIR on >: equal only off exact ties, which these
    float inputs do not hit; import the module itself for an exact >=.)"""
    torch = pytest.importorskip("torch")
    pytest.importorskip("spikingjelly")
    nir = pytest.importorskip("nir")
    from spikingjelly.activation_based import layer, neuron
    from spikingjelly.activation_based.nir_exchange.to_nir import export_to_nir

    from spikefold.importer.check import agreement

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1), neuron.LIFNode(tau=2.0),
        layer.AvgPool2d(2),
        layer.Conv2d(4, 6, 3, padding=1, stride=2), neuron.IFNode(),
        layer.Flatten(),
        layer.Linear(24, 10)).eval()
    with torch.no_grad():
        module[0].weight.mul_(8.0)
        module[3].weight.mul_(4.0)
    graph = export_to_nir(module, torch.rand(1, 1, 8, 8))       # dt = 1e-4
    path = tmp_path / "sj.nir"
    nir.write(path, graph)
    out = tmp_path / "m.npz"
    with pytest.warns(UserWarning, match="does not record the reset mode"):
        assert main(["import", str(path), "-T", "6", "--dt", "1e-4", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "decay 1 - dt/tau = 0.5" in text and "IF: decay 1" in text
    network = ModelFile.load(out).network
    assert [network.neuron(i).tau for i in (0, 2)] == [0.5, 1.0]
    x = np.random.default_rng(1).uniform(0, 1, (200, 1, 8, 8))
    agree = agreement(network, module, x)
    assert agree.spikes == [1.0, 1.0] and agree.predictions == 1.0, agree.summary()
    assert all(0.05 < r < 0.9 for r in agree.spike_rates), agree.spike_rates
