"""Progress of co-simulations: the LIF testbench writes progress.json for the parent's bar."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from golden.examples import example_core
from sim.progress import SimProgress, read_progress
from sim.runner import prepare_rtl, run_cocotb
from sim.stimulus import expected_beats, random_stimulus

pytestmark = pytest.mark.cocotb


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_lif_testbench_reports_progress(tmp_path):
    folded = example_core(neurons=16)
    build = prepare_rtl(folded, 2)
    stimulus = random_stimulus(folded.config, 300, seed=3)     # > 2,000 cycles
    run = run_cocotb(build, folded, stimulus, seed=1, progress=True, run_name="progress")
    assert run.result["first_mismatch"] is None
    state = read_progress(run.directory / "progress.json")
    beats = len(expected_beats(folded, 2, stimulus))
    assert state == {"cycle": run.result["cycles"], "results": beats, "expected": beats}
    assert run.result["cycles"] > 2000


def test_sim_progress_reads_the_file(tmp_path, monkeypatch):
    """The bar follows the file: results become its count, the last state is kept."""
    class Tty:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return True
    fake = Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    with SimProgress(tmp_path, 10, "co-simulation (test)", interval=0.01, unit="beat") as p:
        (tmp_path / "progress.json").write_text(json.dumps(
            {"cycle": 1234, "results": 7, "expected": 10}))
        import time
        time.sleep(0.2)
    assert p.last == {"cycle": 1234, "results": 7, "expected": 10}
    assert "co-simulation (test)" in fake.text and "7/10" in fake.text
    assert "1,234 cycles" in fake.text
