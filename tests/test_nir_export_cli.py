"""spikefold export: model file -> NIR graph, per target; refusals in one line."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nir")

from golden.modelfile import DEFAULT_MODEL, DEFAULT_CONV_MODEL, ModelFile  # noqa: E402
from golden.nir_io import read_nir  # noqa: E402
from spikefold import cli  # noqa: E402


def test_spikefold_target_reads_back_bit_for_bit(tmp_path, capsys):
    out = tmp_path / "mlp.nir"
    assert cli.main(["export", str(DEFAULT_MODEL), "-o", str(out), "--dt", "1e-3"]) == 0
    assert "wrote" in capsys.readouterr().out
    model = ModelFile.load(DEFAULT_MODEL)
    back = read_nir(out, T=model.network.T, dt=1e-3)
    x = model.test_x[:20]
    a, b = model.network.forward(x), back.forward(x)
    assert np.array_equal(a.predict(), b.predict())
    assert np.array_equal(np.asarray(a.logits), np.asarray(b.logits))


@pytest.mark.parametrize("argv, needle", [
    ([str(DEFAULT_MODEL), "-o", "{tmp}/a.nir"], "--dt is required for --target spikefold"),
    ([str(DEFAULT_MODEL), "-o", "{tmp}/a.nir", "--dt", "0"], "--dt must be a positive"),
    ([str(DEFAULT_CONV_MODEL), "-o", "{tmp}/a.nir", "--dt", "1e-3"],
     "max pooling has no NIR node"),
    ([str(DEFAULT_MODEL), "-o", "{tmp}/a.nir", "--target", "snntorch", "--dt", "1e-3"],
     "assumes dt = 0.0001"),
    (["{tmp}/missing.npz", "-o", "{tmp}/a.nir", "--dt", "1e-3"], "missing.npz"),
])
def test_refusals(tmp_path, capsys, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "a.nir").exists()


def test_output_directory_is_created(tmp_path):
    out = tmp_path / "new" / "dir" / "g.nir"
    assert cli.main(["export", str(DEFAULT_MODEL), "-o", str(out), "--dt", "1e-3"]) == 0
    assert out.is_file()
