"""The ``spikefold`` command: the demo end to end, and one-line errors."""

import json
import subprocess
import sys

import pytest

from spikefold.cli import main


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--neurons", "32", "--steps", "16", "--samples", "2",
                 "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    report = json.loads((out / "report.json").read_text())
    assert report["fold"]["mismatches"] == 0
    assert report["fold"]["checked"] == 32 * 65536
    assert report["network"]["test_samples"] == 540
    # Fixed point within 1 percentage point of float on the digits test split.
    assert abs(report["network"]["fixed_accuracy"] - report["network"]["float_accuracy"]) <= 0.01
    rtl = report["rtl"]
    assert rtl["samples"] == 2 and rtl["total_mismatches"] == 0
    assert rtl["rtl_accuracy"] == rtl["fixed_accuracy"]
    assert rtl["cycles_per_image"] > 0
    assert "RTL co-simulation" in (out / "report.md").read_text()
    assert "0 mismatches vs golden" in text


@pytest.mark.parametrize("argv, field", [
    (["verilog", "--tau", "1.5"], "tau"),
    (["verilog", "--membrane", "16.x"], "16.x"),
    (["demo", "--membrane", "4.9"], "Fixed.frac"),
    (["cosim", "--model", "no-such-file.npz"], "no-such-file.npz"),
    (["demo", "--board", "icebreaker"], "iCE40UP5K"),     # refused before the long stages
])
def test_errors_are_one_line(argv, field):
    proc = subprocess.run([sys.executable, "-m", "spikefold", *argv], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert field in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
