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
