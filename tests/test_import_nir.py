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
    assert [r.source for r in table.rows][:2] == ["layer0.affine", "layer0.lif"]
    assert any("reset mode" in note for note in table.notes)


def test_cli_imports_nir(default, tmp_path, capsys):
    pytest.importorskip("sklearn")
    path = tmp_path / "g.nir"
    write_nir(path, default.network, dt=1e-4)
    out = tmp_path / "m.npz"
    code = main(["import", str(path), "--data", "digits", "-o", str(out)])
    text = capsys.readouterr()
    assert "| layer0.lif | nir.LIF |" in text.out
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
