"""Randomized regression on the fast path: many random LIF-array configurations and a few
small networks (``make regress``).

Each configuration is drawn from its own printed seed: neuron count, lanes, T, the current,
membrane and threshold widths, leak (shift or multiply), reset, the affine stage (channels,
scale width), registered memory outputs, input gaps and output backpressure. It is exported,
fed a long-run stimulus (golden's currents, full-range blocks, both rails, zero input) and
checked beat by beat, at the exact cycle, in the plain-Verilog testbench of
:mod:`sim.fastpath` (no Python per cycle). Then ``--networks`` random small dense networks
(layer sizes, T, lanes per layer, input lanes, registered BRAM, gaps, backpressure from
their own printed seeds) run through :mod:`sim.fastpath_network`: every LIF layer's spikes
and membranes and every result against the golden integer network. A failure prints the
one command that replays it.

Examples::

    python -m sim.regress                          # 200 configurations from seed 1
    python -m sim.regress --count 500 --seed 7 --sim verilator
    python -m sim.regress --only 1042              # replay one configuration
    python -m sim.regress --only-network 1503      # replay one network
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from golden.examples import example_core
from golden.fixed import Fixed

__all__ = ["RegressCase", "NetworkCase", "draw_case", "draw_network", "run_case",
           "run_network_case", "run_regression", "main"]

DEFAULT_COUNT = 200
DEFAULT_SEED = 1
#: Random small networks after the LIF-array configurations.
DEFAULT_NETWORKS = 6
#: Beats per configuration (about; at least two samples of T timesteps are always run).
BEATS = 240


@dataclass(frozen=True)
class RegressCase:
    """One random configuration: the arguments of ``example_core`` plus the HDL options."""

    seed: int
    neurons: int
    lanes: int
    options: dict
    memory_outreg: bool
    steps: int
    gaps: float
    backpressure: float
    #: Thresholds at the threshold format's rails on some neurons (against the stimulus's
    #: saturating membranes): the early comparator's rail corrections.
    rails: bool = False

    def describe(self):
        o = self.options
        parts = [f"N={self.neurons}", f"P={self.lanes}", f"T={o['T']}",
                 f"cur={o['current']}", f"mem={o['membrane']}", f"thr={o['threshold']}",
                 f"tau={o['tau']:g}", o["reset"]]
        if o["affine"]:
            parts.append(f"affine ch={o['channels']} scale={o['scale']}")
        if self.memory_outreg:
            parts.append("outreg")
        if self.rails:
            parts.append("rail-thresholds")
        parts.append(f"gaps={self.gaps:.2f} bp={self.backpressure:.2f} steps={self.steps}")
        return " ".join(parts)


def _fmt(f):
    return f"{f.bits}.{f.frac}"


def draw_case(seed):
    """The configuration of ``seed`` (the same on every machine: NumPy's PCG64)."""
    rng = np.random.default_rng(seed)
    neurons = int(rng.choice([1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 20, 24, 31, 33, 40]))
    lanes = int(rng.integers(1, min(8, neurons) + 1))
    T = int(rng.integers(1, 7))
    m_bits = int(rng.integers(6, 21))
    m_frac = int(rng.integers(1, m_bits - 1))
    membrane = Fixed(m_bits, m_frac)
    c_frac = int(rng.integers(0, m_frac + 1))
    c_bits = int(rng.integers(max(2, c_frac + 1), m_bits + 5))
    current = Fixed(c_bits, c_frac)
    # A narrower threshold needs room for the folded thresholds' integer part (about +-4).
    t_bits = int(rng.integers(min(m_bits, m_frac + 4), m_bits + 1))
    threshold = Fixed(t_bits, m_frac)
    if rng.random() < 0.5:
        tau = float(2.0 ** -int(rng.integers(0, 5)))        # shift leak (1 = no leak)
    else:
        tau = float(np.round(rng.uniform(0.05, 0.98), 3))   # multiply leak
    tau_bits = int(rng.integers(6, 13))
    reset = str(rng.choice(["zero", "subtract"]))
    affine = bool(rng.random() < 0.4)
    divisors = [d for d in range(1, neurons + 1) if neurons % d == 0]
    channels = int(rng.choice(divisors)) if affine else 1
    s_bits = int(rng.integers(6, 17))
    scale = Fixed(s_bits, int(rng.integers(max(1, s_bits - 6), s_bits - 1)))
    options = dict(T=T, membrane=membrane, current=current, threshold=threshold, tau=tau,
                   tau_bits=tau_bits, reset=reset, affine=affine, channels=channels,
                   scale=scale)
    try:
        example_core(neurons, seed=seed, **options)
    except ValueError:
        # This draw's thresholds do not fit the narrower format: use the membrane's.
        options["threshold"] = membrane
    beats_per_step = -(-neurons // lanes)
    steps = max(2 * T, -(-BEATS // beats_per_step))
    outreg = bool(rng.random() < 0.5)
    gaps = float(rng.choice([0.0, rng.uniform(0, 0.4)]))
    backpressure = float(rng.choice([0.0, rng.uniform(0, 0.5)]))
    rails = bool(rng.random() < 0.5)            # drawn last: the earlier draws keep their seeds
    return RegressCase(seed, neurons, lanes, options, outreg, steps, gaps, backpressure, rails)


@dataclass(frozen=True)
class NetworkCase:
    """One random small dense network and how it is mapped and driven."""

    seed: int
    sizes: tuple
    T: int
    lanes: tuple
    in_lanes: int
    outreg: bool
    samples: int
    gaps: float
    backpressure: float

    def describe(self):
        return (f"net {'-'.join(map(str, self.sizes))} T={self.T} lanes={list(self.lanes)} "
                f"Q={self.in_lanes}{' outreg' if self.outreg else ''} S={self.samples} "
                f"gaps={self.gaps:.2f} bp={self.backpressure:.2f}")


def draw_network(seed):
    """The network case of ``seed`` (NumPy's PCG64: the same on every machine)."""
    rng = np.random.default_rng(seed)
    hidden = int(rng.integers(1, 3))
    sizes = (int(rng.integers(3, 25)), *(int(rng.integers(2, 25)) for _ in range(hidden)),
             int(rng.integers(2, 7)))
    lanes = tuple(int(rng.integers(1, n + 1)) for n in sizes[1:])
    return NetworkCase(seed, sizes, int(rng.integers(1, 6)), lanes,
                       int(rng.integers(1, sizes[0] + 1)), bool(rng.random() < 0.5),
                       int(rng.integers(3, 7)), float(rng.choice([0.0, rng.uniform(0, 0.4)])),
                       float(rng.choice([0.0, rng.uniform(0, 0.5)])))


def run_network_case(case, root, *, sim="icarus"):
    """Build, simulate and check one network case; returns the fast path's result dict
    (plus ``seed``, ``config``, ``expected_compared``, ``wall_s``)."""
    from hdl.mapping import HardwareMapping
    from sim.cosim import _xorshift_state
    from sim.fastpath_network import run_network_fast
    from sim.network_cosim import random_network, random_pixels
    t0 = time.perf_counter()
    inet = random_network(case.sizes, T=case.T, seed=case.seed)
    mapping = HardwareMapping.for_network(inet, case.lanes, case.in_lanes, case.outreg)
    x = random_pixels(case.sizes[0], case.samples, nonzero=0.6, seed=case.seed + 1)
    directory = Path(root) / f"net-{sim}-{case.seed}"
    if directory.exists():
        shutil.rmtree(directory)
    result = run_network_fast(inet, x, directory, mapping=mapping, sim=sim, gaps=case.gaps,
                              backpressure=case.backpressure,
                              state=_xorshift_state(case.seed), rtl_root=Path(root) / "net-rtl")
    # Every value golden gives: per hidden layer and beat t, beat and 2 per neuron; per
    # sample the logits and the class.
    S, T = case.samples, case.T
    hidden = case.sizes[1:-1]
    want = sum(S * T * (2 * -(-n // p) + 2 * n) for n, p in zip(hidden, case.lanes))
    want += S * (case.sizes[-1] + 1)
    result.update(seed=case.seed, config=case.describe(), expected_compared=want,
                  wall_s=time.perf_counter() - t0)
    if result["first_mismatch"] is None and result["compared"] != want:
        result["first_mismatch"] = {"field": "compared", "expected": want,
                                    "got": result["compared"], "cycle": result["cycles"]}
        result["mismatches"] = 1
    return result


def _core(case):
    o = dict(case.options)
    core = example_core(case.neurons, seed=case.seed, **o)
    if case.rails:
        core = rail_thresholds(core)
    return core


def rail_thresholds(core):
    """``core`` with neurons 0, 1, 2, 3 (those that exist) at the threshold format's rails:
    ``> max``, ``< min``, ``> min``, ``< max`` (the first two never fire: a saturated
    membrane equals the rail, the last two fire unless it does)."""
    from golden.quantize import Compare, ThresholdTable
    fmt = core.config.threshold or core.config.membrane
    lo, hi = fmt.min_int, fmt.max_int
    theta = core.thresholds.theta_q.copy()
    compare = core.thresholds.compare.copy()
    for i, (q, code) in enumerate([(hi, Compare.GT), (lo, Compare.LT), (lo, Compare.GT),
                                   (hi, Compare.LT)][:len(theta)]):
        theta[i], compare[i] = q, code.value
    return replace(core, thresholds=ThresholdTable(theta, compare))


def run_case(case, root, *, sim="icarus"):
    """Export, simulate and check one case; returns the fast path's result dict (plus
    ``seed``, ``config``, ``wall_s``)."""
    from sim.cosim import _xorshift_state
    from sim.fastpath import run_fast
    from sim.runner import prepare_rtl
    from sim.stimulus import expected_beats, long_stimulus
    t0 = time.perf_counter()
    folded = _core(case)
    build = prepare_rtl(folded, case.lanes, root=root, memory_outreg=case.memory_outreg)
    expected = expected_beats(folded, case.lanes,
                              long_stimulus(folded.config, case.steps, case.seed))
    directory = build.directory / f"regress-{sim}-{case.seed}"
    if directory.exists():
        shutil.rmtree(directory)
    fast = run_fast(directory, build.desc, expected, build.sources, gaps=case.gaps,
                    backpressure=case.backpressure, state=_xorshift_state(case.seed), sim=sim)
    result = dict(fast.result)
    result.update(seed=case.seed, config=case.describe(), latency=build.desc.latency,
                  expected_compared=int(expected.compared_per_beat.sum()),
                  wall_s=time.perf_counter() - t0)
    if result["first_mismatch"] is None and result["compared"] != result["expected_compared"]:
        result["first_mismatch"] = {"field": "compared", "expected": result["expected_compared"],
                                    "got": result["compared"], "cycle": result["cycles"]}
        result["mismatches"] = 1
    return result


def _replay(seed, sim, network=False):
    extra = f" --sim {sim}" if sim != "icarus" else ""
    if network:
        return f"python -m sim.regress --only-network {seed}{extra}"
    return f"python -m sim.regress --only {seed}{extra}"


def run_regression(count=DEFAULT_COUNT, seed=DEFAULT_SEED, *, sim="icarus", root=None,
                   only=None, first=0, networks=0, only_network=None, out=print):
    """Run ``count`` cases with seeds ``seed * 1000 + first + i`` (or the one case
    ``only``), then ``networks`` network cases with seeds ``seed * 1000 + 500 + i`` (or the
    one ``only_network``); returns a summary dict with every failure."""
    from sim.runner import build_root, simulator
    sim = simulator(sim)
    root = Path(root) if root is not None else build_root().parent / "regress"
    seeds = [int(only)] if only is not None else [seed * 1000 + first + i for i in range(count)]
    net_seeds = ([int(only_network)] if only_network is not None else
                 [seed * 1000 + 500 + i for i in range(networks)])
    t0 = time.perf_counter()
    failures, cycles, compared, kinds = [], 0, 0, {"outreg": 0, "affine": 0, "mul": 0,
                                                   "subtract": 0}
    if seeds:
        out(f"spikefold regress: {len(seeds)} random configurations on the fast path ({sim}); "
            f"seeds {seeds[0]}..{seeds[-1]}")
    for i, s in enumerate(seeds):
        case = draw_case(s)
        kinds["outreg"] += case.memory_outreg
        kinds["affine"] += case.options["affine"]
        kinds["subtract"] += case.options["reset"] == "subtract"
        kinds["mul"] += case.options["tau"] not in (1.0, 0.5, 0.25, 0.125, 0.0625)
        try:
            r = run_case(case, root, sim=sim)
        except (RuntimeError, ValueError) as exc:
            r = {"first_mismatch": {"field": "error", "expected": "a run", "got": str(exc),
                                    "cycle": -1}, "cycles": 0, "compared": 0}
        cycles += r["cycles"]
        compared += r["compared"]
        verdict = "PASS" if r["first_mismatch"] is None else "FAIL"
        out(f"[{i + 1}/{len(seeds)}] seed {s}: {case.describe()}: {verdict} "
            f"({r['compared']} values, {r['cycles']} cycles)")
        if r["first_mismatch"] is not None:
            failures.append({"seed": s, "config": case.describe(),
                             "first_mismatch": r["first_mismatch"], "replay": _replay(s, sim)})
            out(f"    first mismatch: {r['first_mismatch']}; replay: {_replay(s, sim)}")
    if net_seeds:
        out(f"spikefold regress: {len(net_seeds)} random small networks on the network fast "
            f"path ({sim}); seeds {net_seeds[0]}..{net_seeds[-1]}")
    for i, s in enumerate(net_seeds):
        case = draw_network(s)
        try:
            r = run_network_case(case, root, sim=sim)
        except (RuntimeError, ValueError) as exc:
            r = {"first_mismatch": {"field": "error", "expected": "a run", "got": str(exc),
                                    "cycle": -1}, "cycles": 0, "compared": 0}
        cycles += r["cycles"] or 0
        compared += r["compared"]
        verdict = "PASS" if r["first_mismatch"] is None else "FAIL"
        out(f"[net {i + 1}/{len(net_seeds)}] seed {s}: {case.describe()}: {verdict} "
            f"({r['compared']} values, {r['cycles']} cycles)")
        if r["first_mismatch"] is not None:
            failures.append({"seed": s, "config": case.describe(),
                             "first_mismatch": r["first_mismatch"],
                             "replay": _replay(s, sim, network=True)})
            out(f"    first mismatch: {r['first_mismatch']}; replay: "
                f"{_replay(s, sim, network=True)}")
    wall = time.perf_counter() - t0
    summary = {"configurations": len(seeds), "networks": len(net_seeds), "failures": failures,
               "cycles": cycles, "compared": compared, "wall_s": wall, "simulator": sim,
               "kinds": kinds, "seeds": [seeds[0], seeds[-1]] if seeds else [],
               "network_seeds": [net_seeds[0], net_seeds[-1]] if net_seeds else []}
    out(f"spikefold regress: {len(seeds) + len(net_seeds) - len(failures)} passed, "
        f"{len(failures)} failed; "
        f"{compared:,} values compared in {cycles:,} cycles; {wall:.0f} s; "
        f"registered BRAM {kinds['outreg']}, affine {kinds['affine']}, multiply leak "
        f"{kinds['mul']}, subtract reset {kinds['subtract']}")
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sim.regress", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT,
                        help=f"configurations (default {DEFAULT_COUNT})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="base seed: case i has seed SEED*1000+i (default 1)")
    parser.add_argument("--only", type=int, default=None, help="run the one case of this seed")
    parser.add_argument("--networks", type=int, default=DEFAULT_NETWORKS,
                        help=f"random small networks after the configurations "
                             f"(default {DEFAULT_NETWORKS})")
    parser.add_argument("--only-network", type=int, default=None,
                        help="run the one network case of this seed")
    parser.add_argument("--sim", choices=("icarus", "verilator"), default="icarus")
    parser.add_argument("--json", default=None, help="write the summary here")
    args = parser.parse_args(argv)
    if args.count < 0 or args.networks < 0:
        parser.error(f"--count and --networks must be at least 0, not {args.count}, "
                     f"{args.networks}")
    replay = args.only is not None or args.only_network is not None
    count = (1 if args.only is not None else 0) if replay else args.count
    summary = run_regression(count, args.seed, sim=args.sim, only=args.only,
                             networks=0 if replay else args.networks,
                             only_network=args.only_network)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
