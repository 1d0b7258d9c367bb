"""The sweep's table and plots (from given rows; the builds themselves are YoWASP runs)."""

import csv
import json

import pytest

from boards import sweep as sweep_mod
from boards.sweep import (COLUMNS, add_marginals, default_points, plot, plot_title, point_key,
                          write_table)
from boards.targets import get_target
from spikefold import cli


def _row(n, p, w, logic, ffs):
    return {"device": "iCE40UP5K", "neurons": n, "lanes": p, "membrane_bits": w, "tau": 0.25,
            "memory_outreg": False,
            "logic": logic, "ffs": ffs, "bram_blocks": 3 * p, "dsp": 0,
            "logic_per_lane": logic / p, "bram_bits_per_neuron": 3 * p * 4096 / n,
            "min_bits_per_neuron": 2 * w + 2, "fmax_mhz": 45.0,
            "throughput_mupdates_s": 45.0 * p, "critical_path": "a -> b (22 ns)"}


def test_marginal_cost_is_the_slope(tmp_path):
    rows = [_row(256, p, 16, 200 + 70 * p, 150 + 40 * p) for p in (1, 2, 4, 8)]
    rows.append(_row(1024, 4, 16, 500, 300))
    add_marginals(rows)
    assert [r["logic_per_lane_marginal"] for r in rows[:4]] == [70.0] * 4
    assert rows[0]["ffs_per_lane_marginal"] == 40.0
    assert rows[4]["logic_per_lane_marginal"] is None
    write_table(rows, tmp_path)
    plot(rows, tmp_path, get_target("icebreaker"))
    with open(tmp_path / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == COLUMNS and len(table) == 5
    md = (tmp_path / "sweep.md").read_text()
    assert md.count("\n| iCE40UP5K") == 5 and "a -> b (22 ns)" in md
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_default_points_cover_lanes_neurons_widths(family):
    pts = default_points(family)
    assert len({p for _, p, _ in pts}) >= 4
    assert len({n for n, _, _ in pts}) >= 3
    assert {8, 16, 24} <= {w for _, _, w in pts}


def _plotted(tmp_path, rows, **title):
    """Plot ``rows`` and return the figure's data: ``{panel ylabel: [(x, y) per line]}``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    captured = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def spy(fig, *a, **k):
        captured["fig"] = fig
        return real_savefig(fig, *a, **k)

    matplotlib.figure.Figure.savefig = spy
    try:
        plot(rows, tmp_path, get_target("icebreaker"),
             title=plot_title(get_target("icebreaker"), rows=rows, **title))
    finally:
        matplotlib.figure.Figure.savefig = real_savefig
    fig = captured["fig"]
    data = {ax.get_ylabel(): [list(zip(*line.get_data())) for line in ax.get_lines()
                              if len(line.get_xdata()) > 0 and line.get_linestyle() == "-"]
            for ax in fig.axes}
    plt.close(fig)
    return fig, data


def test_custom_grid_plots_every_point(tmp_path):
    """A grid without N = 256 / P = 4 / 16 bits still draws all its points, and the title
    names the settings the points were built with."""
    rows = [_row(512, p, 8, 100 + 60 * p, 80 + 30 * p) for p in (2, 8)]
    rows.append(_row(2048, 2, 8, 300, 200))
    add_marginals(rows)
    fig, data = _plotted(tmp_path, rows, tau=0.3, T=5, freq=48.0, memory_outreg=True)
    lanes_panel = data["logic per lane (total / P)"]
    assert sorted(len(line) for line in lanes_panel) == [1, 2]
    assert sum(len(line) for line in data["Fmax (nextpnr), MHz"]) == 3
    assert sum(len(line) for line in data["BRAM bits per neuron"]) == 3
    title = fig._suptitle.get_text()
    for part in ("iCE40UP5K", "membrane 8 bit", "tau=0.3", "multiply leak", "T=5", "48 MHz",
                 "registered"):
        assert part in title
    assert "16-bit" not in title and "shift" not in title


def test_cache_key_covers_every_setting():
    target = get_target("icebreaker")
    base = point_key(target, {"neurons": 256}, 4, 100.0, False)
    assert base == point_key(target, {"neurons": 256}, 4, 100.0, False)
    for other in (point_key(target, {"neurons": 256}, 4, 50.0, False),
                  point_key(target, {"neurons": 256}, 4, 100.0, True),
                  point_key(target, {"neurons": 256}, 2, 100.0, False),
                  point_key(target, {"neurons": 512}, 4, 100.0, False),
                  point_key(get_target("ulx3s-85f"), {"neurons": 256}, 4, 100.0, False),
                  point_key(target, {"neurons": 256}, 4, 100.0, False, "credit")):
        assert other != base
    # The stall flow unless asked (on every family).
    assert base["flow"] == "stall"
    assert point_key(get_target("ulx3s-85f"), {}, 4, 250.0, True)["flow"] == "stall"


def test_rerun_with_another_freq_rebuilds(tmp_path, monkeypatch):
    """A saved build is reused only under the same settings (the build itself is faked)."""
    calls = []

    def fake_build(folded, lanes, target, out, *, bench, freq, memory_outreg, flow, log):
        calls.append(freq)
        out.mkdir(parents=True, exist_ok=True)
        info = {"built": True, "results": {"logic_cells": 100 * lanes, "ffs": 50 * lanes,
                                           "bram_blocks": 3 * lanes, "dsp": 0,
                                           "fmax_main_mhz": freq * 0.7}}
        (out / "build.json").write_text(json.dumps(info))
        (out / "top.report.json").write_text("{}")
        return info

    def fake_summary(family, report, stat, lanes):
        return {"logic_cells": 100 * lanes, "ffs": 50 * lanes, "bram_blocks": 3 * lanes,
                "dsp": 0, "fmax_main_mhz": 1.0}

    monkeypatch.setattr(sweep_mod, "build_board", fake_build)
    monkeypatch.setattr(sweep_mod, "summarize", fake_summary)
    monkeypatch.setattr(sweep_mod, "parse_nextpnr_report", lambda p: {})
    monkeypatch.setattr(sweep_mod, "parse_yosys_stat", lambda p: {})
    target = get_target("icebreaker")
    sweep_mod.sweep(target, [(16, 2, 8)], tmp_path, freq=60.0, log=lambda *a: None)
    sweep_mod.sweep(target, [(16, 2, 8)], tmp_path, freq=60.0, log=lambda *a: None)
    assert calls == [60.0]                   # same settings: reused
    rows = sweep_mod.sweep(target, [(16, 2, 8)], tmp_path, freq=80.0, log=lambda *a: None)
    assert calls == [60.0, 80.0] and rows[0]["fmax_mhz"] == 56.0
    sweep_mod.sweep(target, [(16, 2, 8)], tmp_path, freq=80.0, T=4, log=lambda *a: None)
    assert calls == [60.0, 80.0, 80.0]       # another T: another configuration


@pytest.mark.parametrize("argv, flag", [
    (["--freq", "0"], "--freq"), (["--freq", "-5"], "--freq"), (["--freq", "fast"], "--freq"),
    (["--lanes", "0"], "--lanes"), (["--lanes", "2,x"], "--lanes"),
    (["--neurons", "abc"], "--neurons"), (["--widths", "2"], "--widths"),
    (["--tau", "1.5"], "--tau"), (["-T", "0"], "-T"),
])
def test_bad_values_are_refused_in_one_line(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument {flag}:" in err and "Traceback" not in err


def test_lanes_above_neurons_is_refused(capsys):
    assert cli.main(["sweep", "--neurons", "4", "--lanes", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--lanes must not exceed --neurons" in err


def test_default_flow_is_auto_per_family(monkeypatch, tmp_path):
    """``spikefold sweep`` without ``--flow`` sweeps the credit flow on ECP5 and the stall
    flow on iCE40; ``--flow stall`` is kept (the sweep itself is faked)."""
    seen = []

    def fake_sweep(target, points, out, **kw):
        seen.append((target.name, kw["flow"]))
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.md").write_text("")
        return []

    monkeypatch.setattr(sweep_mod, "sweep", fake_sweep)
    for board, extra in (("ulx3s-85f", []), ("icebreaker", []),
                         ("ulx3s-85f", ["--flow", "stall"])):
        cli.main(["sweep", "--board", board, "--neurons", "16", "--lanes", "2", *extra,
                  "--out", str(tmp_path / f"{board}{len(extra)}")])
    assert seen == [("ulx3s-85f", "credit"), ("icebreaker", "stall"), ("ulx3s-85f", "stall")]
