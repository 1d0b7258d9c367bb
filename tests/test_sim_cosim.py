"""`spikefold cosim`: reports, exit codes, and the done-when checks on corrupted RTL.

A co-simulation must fail, naming the first mismatch, when (1) one threshold of the RTL
differs from the model's and (2) one pipeline register stage is removed from the Verilog.
"""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from golden.examples import example_core
from golden.quantize import ThresholdTable
from hdl.export import export_verilog
from sim.stimulus import expected_beats, random_stimulus
from sim.tally import record
from spikefold.cli import main

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPIKEFOLD_BUILD_DIR", str(REPO / "build"))

pytestmark = pytest.mark.cocotb

# The CLI's built-in example for these options is example_core(12, T=4) (core seed 0).
CORE = ["--neurons", "12", "--lanes", "4", "-T", "4"]
SAMPLES, SEED = 4, 3


def cosim(tmp_path, *argv):
    out = tmp_path / "report"
    rc = main(["cosim", *CORE, "--samples", str(SAMPLES), "--seed", str(SEED), "--out", str(out),
               "--build-dir", str(tmp_path / "build"), *argv])
    path = out / "report.json"
    report = json.loads(path.read_text()) if path.exists() else None
    return rc, report, out


def test_cosim_passes_and_writes_the_report(tmp_path, capsys):
    rc, report, out = cosim(tmp_path)
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "PASS" in text and "0 mismatches" in text
    record("cli-pass", report)
    for key in ("cycles", "compared", "mismatches", "first_mismatch", "config", "seed", "lanes",
                "latency", "wall_time_s", "cycles_per_s"):
        assert key in report, key
    assert report["mismatches"] == 0 and report["first_mismatch"] is None
    assert report["compared"] == 2 * 12 * SAMPLES * 4
    assert report["seed"] == SEED and report["lanes"] == 4 and report["config"]["neurons"] == 12
    assert report["cycles"] >= 12 // 4 * SAMPLES * 4 + report["latency"]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    for plot in ("membrane_traces", "spike_raster", "firing_rate", "float_vs_fixed"):
        assert f"alt='{plot}'" in page
        assert (out / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"({plot}.png)" in (out / "report.md").read_text()
    assert report["float_vs_fixed"]["spike_agreement"] > 0.9
    assert "/work" not in (out / "report.json").read_text()


def _changed_threshold_core():
    """The example core with one GT neuron's threshold moved to where it changes spikes."""
    folded = example_core(12, T=4)
    stimulus = random_stimulus(folded.config, SAMPLES * 4, SEED)
    good = expected_beats(folded, 4, stimulus)
    i = int(np.nonzero(folded.thresholds.compare == 0)[0][0])
    theta = folded.thresholds.theta_q.copy()
    theta[i] = int(np.median(good.v_pre_rows[:, i]))
    bad = type(folded)(folded.config, ThresholdTable(theta, folded.thresholds.compare),
                       folded.affine)
    differs = expected_beats(bad, 4, stimulus).spikes_rows[:, i] != good.spikes_rows[:, i]
    assert differs.any()        # the corruption is observable with this stimulus
    return bad, i, int(np.nonzero(differs)[0][0])


def test_cosim_fails_on_one_changed_threshold(tmp_path, capsys):
    bad, neuron, row = _changed_threshold_core()
    verilog, _ = export_verilog(bad, 4, tmp_path / "bad")
    rc, report, out = cosim(tmp_path, "--rtl", str(verilog))
    err = capsys.readouterr().err
    assert rc == 1
    m = report["first_mismatch"]
    assert f"first mismatch: cycle {m['cycle']}, timestep {row % 4}, neuron {neuron} (spike)" in err
    assert m["neuron"] == neuron and m["timestep"] == row % 4 and m["field"] == "spike"
    assert report["verdict"] == "FAIL" and report["mismatches"] >= 1
    assert "FAIL" in (out / "report.html").read_text()


def test_fast_path_cli_fails_on_one_changed_threshold(tmp_path, capsys):
    bad, neuron, row = _changed_threshold_core()
    verilog, _ = export_verilog(bad, 4, tmp_path / "bad")
    rc, report, _ = cosim(tmp_path, "--rtl", str(verilog), "--fast")
    assert rc == 1
    assert f"neuron {neuron} (spike)" in capsys.readouterr().err
    assert report["first_mismatch"]["timestep"] == row % 4


def remove_register_stage(text, stage):
    """Make every register of pipeline stage ``stage`` (``s1_*``...) transparent.

    Amaranth writes a register as ``always @(posedge clk) R <= $N;`` with ``$N`` built in
    an ``always @*`` block as ``$N = R; if (en) $N = D; if (rst) ...``; the register is
    replaced by ``always @* R = D;``.
    """
    count = 0

    def bypass(match):
        nonlocal count
        reg, net = match.group(1), match.group(2)
        d = re.search(rf"{re.escape(net)}\s*=\s*{re.escape(reg)};\s*if \(en\) begin\s*"
                      rf"{re.escape(net)}\s*=\s*([^;]+);", text)
        if d is None:
            return match.group(0)
        count += 1
        return f"always @*\n    {reg} = {d.group(1)};"

    pattern = rf"always @\(posedge clk\)\s*({stage}_\w+) <= (\\\$\d+) ;"
    new = re.sub(pattern, bypass, text)
    return new, count


@pytest.mark.parametrize("bench", [[], ["--fast"]], ids=["cocotb", "fast"])
def test_cosim_fails_without_one_pipeline_register(tmp_path, capsys, bench):
    folded = example_core(12, T=4)
    verilog, _ = export_verilog(folded, 4, tmp_path / "cut")
    text, count = remove_register_stage(verilog.read_text(), "s1")
    assert count >= 3, "no s1_* pipeline registers found in the exported Verilog"
    verilog.write_text(text)
    rc, report, _ = cosim(tmp_path, "--rtl", str(verilog), *bench)
    err = capsys.readouterr().err
    assert rc == 1
    m = report["first_mismatch"]
    assert m["field"] in ("o_spikes.valid", "i_current.ready")
    assert f"first mismatch: cycle {m['cycle']}" in err and m["field"] in err


def test_rtl_json_of_another_core_is_refused(tmp_path, capsys):
    other = example_core(8, T=4)
    verilog, desc = export_verilog(other, 4, tmp_path / "other")
    rc = main(["cosim", *CORE, "--rtl", str(verilog), "--rtl-json", str(desc),
               "--out", str(tmp_path / "r"), "--build-dir", str(tmp_path / "b")])
    assert rc == 2
    assert "config" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--gaps", "1.5"], "--gaps"),
    (["--samples", "0"], "--samples"),
    (["--rtl-json", "x.json"], "--rtl-json needs --rtl"),
    (["--rtl", "does-not-exist.v"], "no such Verilog file"),
    (["--fast", "--stimulus", "regression"], "plain timesteps only"),
    (["--flow", "credit", "--rtl", "x.v"], "--flow credit exports its own RTL"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, argv, message):
    rc = main(["cosim", *CORE, "--out", str(tmp_path / "r"), "--build-dir", str(tmp_path / "b"),
               *argv])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_model_file_with_the_fast_path(tmp_path, capsys):
    folded = example_core(9, T=3, affine=True, reset="subtract", seed=4)
    folded.save(tmp_path / "core.npz")
    out = tmp_path / "report"
    rc = main(["cosim", "--model", str(tmp_path / "core.npz"), "--lanes", "2", "--fast",
               "--steps", "30", "--seed", "2", "--out", str(out),
               "--build-dir", str(tmp_path / "build")])
    assert rc == 0, capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "core.npz" and report["config"]["affine"] is True
    assert report["compared"] == 2 * 9 * 30 and report["mode"].startswith("fast path")


def test_bench_prints_both_speeds_and_the_ratio(tmp_path, capsys):
    rc, report, out = cosim(tmp_path, "--bench")
    text = capsys.readouterr().out
    assert rc == 0, text
    b = report["bench"]
    assert b["cocotb_cycles"] > 0 and b["fast_cycles"] > 0
    assert b["ratio"] == pytest.approx(b["fast_cycles_per_s"] / b["cocotb_cycles_per_s"])
    assert re.search(r"bench: cocotb [\d,]+ cycles/s, fast path [\d,]+ cycles/s: "
                     r"fast path x[\d.]+", text)
    # bench.json: cocotb and the fast path on Icarus and on Verilator, the same stimulus.
    numbers = json.loads((out / "bench.json").read_text())
    keys = ["cocotb-icarus", "cocotb-verilator", "fast-icarus", "fast-verilator"]
    assert sorted(numbers["cycles_per_s"]) == sorted(keys)
    assert all(numbers["cycles_per_s"][k] > 0 for k in keys)
    assert numbers["ratio_to_cocotb_icarus"]["cocotb-icarus"] == pytest.approx(1.0)
    assert numbers["cycles"]["fast-icarus"] == numbers["cycles"]["fast-verilator"]
    assert numbers["config"]["timesteps"] == SAMPLES * 4
    assert "fast-verilator" in text


def test_registered_bram_on_the_fast_path(tmp_path, capsys):
    rc, report, _ = cosim(tmp_path, "--memory-outreg", "--fast")
    assert rc == 0, capsys.readouterr()
    assert report["memory_outreg"] is True
    assert report["compared"] == 2 * 12 * SAMPLES * 4
    rc, other, _ = cosim(tmp_path / "plain", "--fast")
    assert rc == 0 and other["memory_outreg"] is False
    # A different pipeline (its latency comes from the exported description).
    assert report["latency"] != other["latency"]


@pytest.mark.parametrize("fast", [False, True])
def test_credit_flow_cosimulates(tmp_path, capsys, fast):
    """``--flow credit`` co-simulates the credit-flow array (cocotb and the fast path)
    against golden and its own timing model, under backpressure, registered outputs too."""
    extra = ["--fast"] if fast else []
    rc, report, _ = cosim(tmp_path, "--flow", "credit", "--memory-outreg",
                          "--backpressure", "0.4", *extra)
    text = capsys.readouterr().out
    assert rc == 0, text
    assert report["flow"] == "credit" and report["mismatches"] == 0
    assert report["compared"] == 2 * 12 * SAMPLES * 4
    assert "credit flow: capacity" in text
    rc, plain, _ = cosim(tmp_path / "plain", "--memory-outreg", "--backpressure", "0.4", *extra)
    assert rc == 0 and plain["flow"] == "stall"
