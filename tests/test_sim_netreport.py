"""The network report (sim/netreport.py) on golden data and on recorded RTL data.

No simulator runs here: the "RTL" arrays are golden's with chosen differences, so every
figure of the report can be checked against a value computed independently (accuracies,
confusion counts from the predictions, firing rates, the plan's cycles, the place of the
first mismatch). The co-simulated reports are checked in tests/test_sim_network.py and
tests/test_spikefold_flow.py.
"""

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from golden.modelfile import DEFAULT_CONV_MODEL as CONV_MODEL
from golden.modelfile import DEFAULT_MODEL, ModelFile
from hdl.plan import network_plan
from sim.netreport import write_network_report
from sim.network_cosim import golden_layers
from sim.report import WINDOW
from spikefold.cli import main


class Tables(HTMLParser):
    """Every ``<table id=...>`` of a page as a list of rows of cell texts; the images."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.images, self._table, self._row, self._cell = {}, [], None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def md_tables_are_valid(text):
    """Every Markdown table: a header, a separator of the same width, rows of that width."""
    lines = text.splitlines()
    tables = 0
    for i, line in enumerate(lines):
        if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|")):
            cells = len(re.split(r"(?<!\\)\|", line)) - 2
            assert re.fullmatch(r"\|(---\|)+", lines[i + 1]), lines[i + 1]
            assert lines[i + 1].count("---") == cells, (line, lines[i + 1])
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                assert len(re.split(r"(?<!\\)\|", lines[j])) - 2 == cells, lines[j]
                j += 1
            tables += 1
    return tables


def fixture_run(model, S, flip=None):
    """Golden arrays of the first ``S`` test samples and 'RTL' arrays equal to them but for
    one spike flipped at ``flip = (layer, t, sample, neuron)``."""
    x = model.inputs(model.test_x[:S])
    inet = model.integer()
    res, arrays = golden_layers(inet, x)
    golden = dict(arrays, logits=res.logits_q, label=res.predict())
    rtl = {k: v.copy() for k, v in arrays.items()}
    rtl["labels"] = res.predict().copy()
    rtl["result_cycle"] = 100 + 900 * np.arange(S)
    first = None
    if flip is not None:
        l, t, s, n = flip
        rtl[f"spikes{l}"][t, s, n] ^= 1
        first = {"sample": s, "layer": l, "t": t, "neuron": n, "field": "spike",
                 "expected": int(arrays[f"spikes{l}"][t, s, n]),
                 "got": int(rtl[f"spikes{l}"][t, s, n]), "cycle": 4321}
    report = {"compared": 1000, "mismatches": int(flip is not None), "first_mismatch": first,
              "layers": [], "cycles_per_image": 900.0, "model": "m.npz"}
    return inet, x, golden, rtl, report, res


def test_conv_report_tables_are_the_data(tmp_path):
    """Conv default, 4 samples, one spike of lif0 flipped (channel 1, y 1, x 5)."""
    model = ModelFile.load(CONV_MODEL)
    S = 4
    inet, x, golden, rtl, report, res = fixture_run(model, S, flip=(0, 1, 2, 77))
    float_pred = model.network.forward(x).predict()
    y = model.test_y[:S]
    # One wrong RTL class too: the confusion matrix must show it, golden's must not.
    rtl["labels"][3] = (golden["label"][3] + 1) % 10
    summary = write_network_report(tmp_path, report, inet, x, golden, rtl,
                                   float_labels=float_pred, labels=y, title="t")
    page = Tables((tmp_path / "report.html").read_text())
    acc = {row[0]: row[1:] for row in page.tables["accuracy"][1:]}
    assert acc["float"][0] == f"{np.mean(float_pred == y):.2%}"
    assert acc["fixed (golden integer)"][0] == f"{np.mean(res.predict() == y):.2%}"
    rtl_pred = rtl["labels"]
    assert acc["RTL"] == [f"{np.mean(rtl_pred == y):.2%}",
                          f"{np.mean(rtl_pred == res.predict()):.2%}"]
    conf = page.tables["confusion"]
    assert conf[0][1:] == [str(c) for c in range(10)] + ["none"]
    counts = np.array([[int(v) for v in row[1:]] for row in conf[1:]])
    want = np.zeros((10, 11), dtype=int)
    np.add.at(want, (y, rtl_pred), 1)
    np.testing.assert_array_equal(counts, want)
    assert counts.sum() == S
    gold = np.zeros((10, 11), dtype=int)
    np.add.at(gold, (y, res.predict()), 1)
    assert summary["confusion"]["golden_matrix"] == gold.tolist()
    layers = {row[0]: row for row in page.tables["layers"][1:]}
    assert [layers[k][1] for k in "01234"] == ["conv2d", "pool2d", "conv2d", "flatten",
                                              "dense"]
    assert layers["0"][2] == "16x8x8" and layers["0"][3] == "1024"
    g0 = golden["spikes0"]
    assert layers["0"][4] == f"{g0.mean():.4f}"
    assert layers["0"][5] == f"{rtl['spikes0'].mean():.4f}"
    assert summary["layers"][0]["rtl_rate"] - summary["layers"][0]["golden_rate"] == \
        pytest.approx((rtl["spikes0"][1, 2, 77] - g0[1, 2, 77]) / g0.size)
    assert layers["2"][4] == layers["2"][5] == f"{golden['spikes2'].mean():.4f}"
    assert layers["0"][8] == ", ".join(f"{k} {v}" for k, v in res.saturations[0].items())
    # The plan's cycles per sample, computed as tests/test_hdl_conv_network.py does.
    plan = network_plan(inet)
    x_q, _ = inet.quantize_input(x)
    pooled = inet.layers[1].run(res.spikes[0]).out
    est = [plan.cycles_per_sample([int(np.count_nonzero(x_q[s])),
                                   [int(pooled[t, s].sum()) for t in range(inet.T)],
                                   [int(res.spikes[1][t, s].sum()) for t in range(inet.T)]])
           for s in range(S)]
    assert summary["plan_cycles_per_sample"] == est
    stages = {row[0]: row for row in page.tables["stages"][1:]}
    assert list(stages) == [s.name for s in plan.stages] + ["network"]
    assert stages["network"][6] == f"{np.mean(est):.1f}"
    assert stages["network"][8] == "900.0" and stages["readout"][8] == "900.0"
    place = page.tables["first-mismatch"]
    assert dict(zip(place[0], place[1])) == {
        "sample": "2", "layer": "0", "kind": "conv2d", "t": "1", "neuron": "77",
        "channel": "1", "y": "1", "x": "5", "field": "spike",
        "expected": str(int(g0[1, 2, 77])), "got": str(int(rtl["spikes0"][1, 2, 77])),
        "cycle": "4321"}
    assert len(page.images) == 5 and all(s.startswith("data:image/png;base64,")
                                         for s in page.images)
    for src in page.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "report.md").read_text()
    assert md_tables_are_valid(md) == 7
    for name in summary["plots"]:
        assert f"]({name})" in md and (tmp_path / name).is_file()
    traces = json.loads((tmp_path / "traces.json").read_text())
    assert [[1 * inet.T + 2, 77]] != traces["layers"]["0"]["golden_spikes"][:1]
    got = {tuple(p) for p in traces["layers"]["0"]["rtl_spikes"]}
    want = {tuple(p) for p in traces["layers"]["0"]["golden_spikes"]}
    assert got ^ want == {(2 * inet.T + 1, 77)}          # row = sample * T + t


def test_long_run_is_windowed_with_full_data_in_json(tmp_path):
    """60 samples x T = 4 = 240 rows > WINDOW: the plots show a window around the first
    mismatch (sample 50), traces.json every row; a reused directory loses old plots."""
    model = ModelFile.load(DEFAULT_MODEL)
    S = 60
    inet, x, golden, rtl, report, _ = fixture_run(model, S, flip=(1, 3, 50, 5))
    (tmp_path / "membrane_traces.png").write_bytes(b"old")
    (tmp_path / "spike_raster.png").write_bytes(b"old")
    summary = write_network_report(tmp_path, report, inet, x, golden, rtl, title="t")
    traces = json.loads((tmp_path / "traces.json").read_text())
    rows = S * inet.T
    w = traces["window"]
    assert w["rows"] == rows and w["stop_row"] - w["start_row"] == WINDOW
    assert w["start_row"] <= 50 * inet.T + 3 < w["stop_row"]
    assert traces["membrane_layer"] == 1
    assert "5" in traces["layers"]["1"]["membranes"]                 # the mismatching neuron
    trace = traces["layers"]["1"]["membranes"]["5"]
    assert len(trace["golden_v_pre"]) == len(trace["rtl_v_pre"]) == rows
    assert trace["golden_v_pre"] == _timeline(golden["v_pre1"])[:, 5].tolist()
    n0 = sum(1 for _ in traces["layers"]["0"]["golden_spikes"])
    assert n0 == int(golden["spikes0"].sum())                        # every row, not the window
    assert (tmp_path / "membrane_traces.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "report.md").read_text()
    assert f"rows {w['start_row']}..{w['stop_row'] - 1} of {rows}" in md
    assert md_tables_are_valid(md) == 7
    # The accuracy needs labels: without them the cells say so instead of a number.
    acc = {row[0]: row[1:] for row in Tables((tmp_path / "report.html").read_text())
           .tables["accuracy"][1:]}
    assert acc["float"][0] == "-" and acc["RTL"][1] == "100.00%"
    assert summary["confusion"]["rows"] == "golden prediction"


def _timeline(a):
    T, S = a.shape[:2]
    return a.transpose(1, 0, 2).reshape(S * T, -1)


def test_demo_golden_only_report_for_the_conv_model(tmp_path, capsys):
    """spikefold demo --samples 0 on the conv model: report.html of golden alone (20 test
    samples), per-layer rates from golden, no RTL column filled."""
    out = tmp_path / "demo"
    assert main(["demo", "--samples", "0", "--neurons", "16", "--steps", "4", "--quiet",
                 "--model", str(CONV_MODEL), "--out", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out
    page = Tables((out / "report.html").read_text())
    summary = dict(page.tables["summary"])
    assert summary["verdict"].startswith("GOLDEN ONLY")
    assert summary["test split (540 samples)"] == "float 98.52%, fixed 98.52%"
    model = ModelFile.load(CONV_MODEL)
    inet = model.integer()
    res = inet.run(model.inputs(model.test_x[:20]))
    layers = {row[0]: row for row in page.tables["layers"][1:]}
    assert layers["2"][4] == f"{res.spikes[1].mean():.4f}" and layers["2"][5] == "-"
    report = json.loads((out / "report.json").read_text())
    assert report["network_report"]["samples"] == 20
    md = (out / "report.md").read_text()
    assert md.startswith("# spikefold demo") and md_tables_are_valid(md) >= 6


def test_demo_refuses_a_bad_simulator_first(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPIKEFOLD_SIM", "xsim")
    assert main(["demo", "--samples", "1", "--out", str(tmp_path / "d")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""                       # no stage ran
    assert "SPIKEFOLD_SIM must be one of icarus, verilator, not 'xsim'" in captured.err
