"""cocotb test module: co-simulate one LIF array against golden (run by sim.runner).

The parameters come in a JSON plan whose path is in ``SPIKEFOLD_COSIM_PLAN`` (written by
:func:`sim.runner.write_plan`); paths in it are relative to the plan's directory. The test
writes ``result.json`` (counts, first mismatch, cycles, speed) and ``rtl_out.npz`` (every
received beat) next to the plan, and fails on the first mismatch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np

from golden.corefile import FoldedCore
from sim.desc import RtlDescription
from sim.stimulus import Stimulus, expected_beats
from sim.tb import TB, format_mismatch

PLAN_ENV = "SPIKEFOLD_COSIM_PLAN"


def load_plan():
    path = Path(os.environ[PLAN_ENV])
    plan = json.loads(path.read_text())
    return path.parent, plan


@cocotb.test()
async def cosim(dut):
    """Drive the plan's stimulus with gaps and backpressure; check every cycle."""
    root, plan = load_plan()
    desc = RtlDescription.load(root / plan["rtl_json"])
    folded = FoldedCore.load(root / plan["core"])
    stimulus = Stimulus.load(root / plan["stimulus"])
    expected = expected_beats(folded, desc.lanes, stimulus)
    seed = int(plan["seed"])
    dut._log.info("spikefold cosim: seed %d, %d beats, lanes %d, latency %d, ops: %s",
                  seed, len(expected), desc.lanes, desc.latency, stimulus.describe())
    tb = TB(dut, desc, stimulus, expected, seed=seed, gaps=plan.get("gaps", 0.0),
            backpressure=plan.get("backpressure", 0.0))
    tb.progress_path = root / "progress.json"
    tb.start_clock()
    await tb.reset()
    summary = await tb.run()
    sb = tb.scoreboard
    summary.update(seed=seed, lanes=desc.lanes, latency=desc.latency,
                   beats_per_step=desc.beats_per_step)
    (root / plan["result"]).write_text(json.dumps(summary, indent=1))
    np.savez(root / plan["outputs"], spikes=sb.got_spikes, membrane=sb.got_membrane,
             got_cycle=sb.got_cycle, accept_cycle=sb.accept_cycle)
    if summary["first_mismatch"] is not None:
        raise AssertionError(
            f"{summary['mismatches']} mismatch(es); first mismatch: "
            f"{format_mismatch(summary['first_mismatch'])} (seed {seed})")
    dut._log.info("spikefold cosim: %d values compared in %d cycles, 0 mismatches",
                  summary["compared"], summary["cycles"])
