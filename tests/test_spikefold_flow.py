"""``spikefold eval`` and the routing of network model files (spikefold/flow.py)."""

import json

import numpy as np
import pytest

from golden.modelfile import DEFAULT_MODEL, ModelFile, load_default
from spikefold.cli import main


def test_eval_writes_float_and_fixed_logits(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", "--model", str(DEFAULT_MODEL), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "float accuracy 97.96%, fixed 97.96%" in text
    data = np.load(out / "eval.npz")
    m = load_default()
    x = m.inputs(m.test_x)
    inet = m.integer()
    q = inet.run(x)
    assert data["float_logits"].shape == data["fixed_logits"].shape == (540, 10)
    np.testing.assert_array_equal(data["float_logits"], m.network.forward(x).logits)
    np.testing.assert_array_equal(
        data["fixed_logits"], q.logits_q / (inet.T * 2.0 ** inet.layers[-1].formats.current.frac))
    summary = json.loads((out / "eval.json").read_text())
    assert summary["fixed_accuracy"] == m.network.meta["fixed_test_accuracy"]


def test_eval_takes_inputs_and_labels(tmp_path, capsys):
    m = load_default()
    x = m.inputs(m.test_x[:20])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", m.test_y[:20])
    assert main(["eval", "--model", str(DEFAULT_MODEL), "--inputs", str(tmp_path / "x.npy"),
                 "--labels", str(tmp_path / "y.npy"), "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.startswith("20 samples: float accuracy")
    np.save(tmp_path / "bad.npy", np.zeros((3, 7)))
    assert main(["eval", "--model", str(DEFAULT_MODEL), "--inputs", str(tmp_path / "bad.npy"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "--inputs" in capsys.readouterr().err


def test_eval_calibrates_a_model_without_formats(tmp_path, capsys):
    m = load_default()
    bare = ModelFile(m.network, None, m.calib_x, m.test_x, m.test_y, m.data_name, m.pixel_scale)
    bare.save(tmp_path / "bare.npz")
    assert main(["eval", "--model", str(tmp_path / "bare.npz"), "--out",
                 str(tmp_path / "o")]) == 0
    assert "fixed" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--model", "absent.npz"], "--model: no such file: absent.npz"),
    (["--model", str(DEFAULT_MODEL), "--out", "/proc/version/x"], "is a file, not a directory"),
])
def test_eval_errors_are_one_line(args, message, capsys):
    assert main(["eval", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
