"""The report writer on its own (no simulator): verdict, tables and plots."""

import json

from golden.examples import example_core
from sim.report import float_reference, write_report
from sim.stimulus import expected_beats, random_stimulus


def test_failing_report_names_the_first_mismatch(tmp_path):
    m = {"cycle": 17, "timestep": 2, "neuron": 5, "field": "membrane", "expected": 3, "got": 4,
         "beat": 9}
    report = {"cycles": 40, "compared": 100, "mismatches": 1, "first_mismatch": m,
              "lanes": 2, "latency": 3, "config": example_core(6).config.to_json(), "seed": 1}
    write_report(tmp_path, report)
    page = (tmp_path / "report.html").read_text()
    assert "FAIL" in page and "cycle 17, timestep 2, neuron 5 (membrane): expected 3, got 4" in page
    assert json.loads((tmp_path / "report.json").read_text())["first_mismatch"] == m
    assert (tmp_path / "report.md").read_text().startswith("# spikefold cosim: FAIL")


def test_plots_mark_rtl_differences(tmp_path):
    folded = example_core(8, T=4)
    stim = random_stimulus(folded.config, 8, seed=2)
    e = expected_beats(folded, 4, stim)
    spikes = e.spikes.copy()
    spikes[3, 1] = ~spikes[3, 1]
    report = {"cycles": 20, "compared": 128, "mismatches": 0, "first_mismatch": None,
              "lanes": 4, "latency": 3, "config": folded.config.to_json(), "seed": 2}
    write_report(tmp_path, report, folded=folded, expected=e,
                 outputs={"spikes": spikes, "membrane": e.membrane}, currents=stim.currents)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["plots"] == ["firing_rate.png", "float_vs_fixed.png", "membrane_traces.png",
                              "spike_raster.png"]
    assert (tmp_path / "report.html").read_text().count("base64,") == 4


def test_float_reference_follows_the_fixed_point_model():
    folded = example_core(16, T=8, affine=True)
    stim = random_stimulus(folded.config, 16, seed=3)
    e = expected_beats(folded, 4, stim)
    rows, spikes, u_pre = float_reference(folded, stim.currents, e)
    assert list(rows) == list(range(16))
    scale = folded.config.membrane.scale
    assert abs(u_pre - e.v_pre_rows / scale).max() < 0.1     # only rounding apart
    assert (spikes == e.spikes_rows).mean() > 0.95


def _cells(line):
    """Cells of a Markdown table row; an escaped pipe stays inside its cell."""
    import re
    return [c for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _report_for(folded, lanes=4):
    return {"cycles": 20, "compared": 128, "mismatches": 0, "first_mismatch": None,
            "lanes": lanes, "latency": 3, "config": folded.config.to_json(), "seed": 2}


def test_markdown_table_is_valid(tmp_path):
    folded = example_core(8, T=4)
    stim = random_stimulus(folded.config, 8, seed=2)
    e = expected_beats(folded, 4, stim)
    write_report(tmp_path, _report_for(folded), folded=folded, expected=e,
                 outputs={"spikes": e.spikes, "membrane": e.membrane}, currents=stim.currents)
    md = (tmp_path / "report.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert all(len(_cells(line)) == 2 for line in table), table
    assert any("max \\|dv\\|" in line for line in table)


def test_long_runs_are_plotted_in_a_window_with_the_full_data_in_json(tmp_path):
    from sim.report import WINDOW, plot_window
    assert plot_window(50) == (0, 50)
    assert plot_window(4000) == (0, WINDOW)
    assert plot_window(4000, focus=3990) == (4000 - WINDOW, 4000)
    a, b = plot_window(4000, focus=1000)
    assert b - a == WINDOW and a < 1000 < b
    folded = example_core(8, T=4)
    steps = 500
    stim = random_stimulus(folded.config, steps, seed=2)
    e = expected_beats(folded, 4, stim)
    spikes = e.spikes.copy()
    bad = 2 * 350                                  # beat 0 of row 350 (2 beats per step)
    spikes[bad, 1] = ~spikes[bad, 1]
    write_report(tmp_path, _report_for(folded), folded=folded, expected=e,
                 outputs={"spikes": spikes, "membrane": e.membrane}, currents=stim.currents)
    saved = json.loads((tmp_path / "report.json").read_text())
    window = saved["plot_window"]
    assert window["stop_row"] - window["start_row"] == WINDOW
    assert window["start_row"] <= 350 < window["stop_row"]    # around the difference
    traces = json.loads((tmp_path / "traces.json").read_text())
    assert len(traces["rows"]) == steps
    assert all(len(n["golden_v_pre"]) == steps for n in traces["neurons"].values())
    assert len(traces["golden_spikes"]) == int(e.spikes_rows.sum())


def test_a_reused_directory_loses_the_old_waves(tmp_path):
    folded = example_core(8, T=4)
    (tmp_path / "waves.fst").write_bytes(b"old run")
    write_report(tmp_path, _report_for(folded))
    assert not (tmp_path / "waves.fst").exists()
    (tmp_path / "waves.fst").write_bytes(b"this run")
    write_report(tmp_path, dict(_report_for(folded), waves="waves.fst"))
    assert (tmp_path / "waves.fst").read_bytes() == b"this run"
