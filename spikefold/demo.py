"""``spikefold demo``: the main job on the embedded default, with a short summary.

Stages (each printed as it runs):

1. fold a built-in element-wise MPBN layer with gamma of every sign and check the
   fixed-point fold exhaustively on the membrane grid;
2. run the bit-exact core model against the float LIF with MPBN before the comparator;
3. the embedded trained digits network (``golden/models/digits_mpbn.npz``): fold ->
   quantize -> float vs fixed-point accuracy on the whole test split;
4. Verilog of the whole network -> cocotb co-simulation on digits test samples (Icarus, or
   Verilator with ``SPIKEFOLD_SIM=verilator``), progress (samples, simulated cycles) on stderr,
   every logit and class compared with the bit-exact golden model;
5. with ``--board NAME`` only: the whole network (the RTL stage's lanes) in a registered
   shell through the board's open toolchain (:func:`boards.build.build_network`, in
   ``build/demo-<board>/``): LUTs/LCs, FFs, BRAM, DSP, Fmax and the time per image at Fmax;
6. a report in ``--out``: ``report.json``, ``report.md`` and a self-contained
   ``report.html`` (:mod:`sim.netreport`: accuracies, confusion matrix, per-layer firing
   rates RTL vs golden and saturations, cycles per stage, the first mismatch's place,
   rasters and membranes); with ``--samples 0`` the network part is golden only (the
   first 20 test samples).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from golden.core import CoreModel
from golden.examples import example_core, example_currents, example_mpbn_params
from golden.fixed import Fixed, fixed_format
from golden.fold import Compare, fold_mpbn
from golden.lif import lif
from golden.quantize import ThresholdTable, quantize_rule


def add_arguments(parser):
    parser.add_argument("--neurons", type=int, default=256, help="neurons of the example layer")
    parser.add_argument("--steps", type=int, default=64, help="timesteps to simulate")
    parser.add_argument("--membrane", type=fixed_format, default=Fixed(16, 8),
                        help="membrane format bits.frac (default 16.8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=20,
                        help="digits test samples to co-simulate on the RTL (default 20; "
                             "0 skips the RTL stage)")
    parser.add_argument("--model", metavar="FILE.npz", default=None,
                        help="spikefold network model file (default: the embedded digits model)")
    parser.add_argument("--conv-samples", type=int, default=0,
                        help="test samples of the conv default model to co-simulate on the "
                             "RTL (default 0: golden and the plan only; its RTL runs about "
                             "20,000 cycles per image)")
    parser.add_argument("--no-conv", action="store_true",
                        help="leave out the conv network stage")
    parser.add_argument("--out", default="reports/demo", help="report directory")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress display on stderr (it is off when stderr is not a "
                             "terminal)")
    from boards.targets import TARGETS
    parser.add_argument("--board", choices=sorted(n for n, t in TARGETS.items()
                                                  if t.open_toolchain), default=None,
                        help="also build the whole network on this board (yosys + nextpnr, "
                             "minutes) and report its size, Fmax and time per image")


def _stage(text):
    print(f"==> {text}", flush=True)


@contextlib.contextmanager
def ticker(desc, quiet=False):
    """Show ``desc`` and the elapsed time on stderr (tqdm) while the block runs.

    Off when stderr is not a terminal or with ``quiet``; for long calls that report no
    progress of their own (one cocotb run of every sample).
    """
    from tqdm import tqdm
    bar = tqdm(desc=desc, bar_format="{desc}: {elapsed}", file=sys.stderr,
               disable=True if quiet else None, leave=False)
    done = threading.Event()

    def tick():
        while not done.wait(0.5):
            bar.refresh()

    thread = None if bar.disable else threading.Thread(target=tick, daemon=True)
    if thread is not None:
        thread.start()
    try:
        yield bar
    finally:
        done.set()
        if thread is not None:
            thread.join()
        bar.close()


def fold_check(params, v_th, membrane):
    """Integer comparator vs the real MPBN comparison for every membrane value."""
    rule = fold_mpbn(v_th=v_th, **params)
    table = quantize_rule(rule, membrane)
    q = np.arange(membrane.min_int, membrane.max_int + 1, dtype=np.int64)
    u = membrane.to_float(q)
    s = np.sqrt(params["running_var"] + params["eps"])
    checked = mismatches = 0
    for i in range(len(table)):
        real = params["gamma"][i] * (u - params["running_mean"][i]) / s[i] + params["beta"][i] > v_th
        integer = ThresholdTable(table.theta_q[i:i + 1], table.compare[i:i + 1]).fires(q[:, None])[:, 0]
        mismatches += int(np.count_nonzero(real != integer))
        checked += len(q)
    return table, checked, mismatches


def check_args(args):
    """Refuse bad options before any stage prints a result."""
    for name, low in (("neurons", 1), ("steps", 1), ("samples", 0), ("conv_samples", 0)):
        value = getattr(args, name)
        if value < low:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {low}, not {value}")
    if args.no_conv and args.conv_samples:
        raise ValueError("--conv-samples needs the conv stage; drop --no-conv")
    if args.samples or args.conv_samples:
        from sim.runner import simulator
        simulator()                                  # a bad $SPIKEFOLD_SIM, in one line


def load_model(path):
    """The network model file ``path`` (None: the embedded digits model)."""
    from golden.modelfile import ModelFile, load_default
    if path is None:
        return load_default()
    from golden.corefile import FORMAT as CORE_FORMAT
    from golden.corefile import open_npz
    with open_npz(path, "spikefold model file") as data:   # one-line errors for non-.npz
        if "format" in data.files and str(data["format"]) == CORE_FORMAT:
            raise ValueError(f"{path} is a spikefold core file (one LIF array, for "
                             f"verilog/cosim/build --model), not a network model file")
    return ModelFile.load(path)


def run(args):
    t0 = time.perf_counter()
    check_args(args)
    model = load_model(args.model)
    n_test = 0 if model.test_x is None else len(model.test_x)
    if args.samples > n_test:
        raise ValueError(f"--samples must be at most the {n_test} test samples of "
                         f"{args.model or 'the embedded model'}, not {args.samples}")
    if args.board:
        # Refuse a board the network cannot fit, or a missing toolchain, before the long
        # stages run.
        from boards.build import network_memory
        from boards.targets import get_target
        from boards.toolchain import missing_tools
        target = get_target(args.board)
        network_memory(model.integer(), None, target)
        missing = missing_tools(target.tools)
        if missing:
            raise RuntimeError(f"--board {args.board} needs the YoWASP tools "
                               f"({', '.join(missing)}): pip install -e '.[boards]'")
    v_th = 0.5
    _stage(f"fold: element-wise MPBN, {args.neurons} neurons, v_th = {v_th}")
    params = example_mpbn_params(args.neurons, args.seed)
    table, checked, mismatches = fold_check(params, v_th, args.membrane)
    kinds = {c.name: int(np.count_nonzero(table.compare == c)) for c in Compare}
    print(f"    comparators: {kinds}")
    _stage(f"fixed point: every membrane value of format {args.membrane} against the real MPBN")
    print(f"    {checked:,} decisions checked, {mismatches} mismatches")

    _stage("bit-exact core model vs float LIF with MPBN before the comparator")
    core = example_core(args.neurons, membrane=args.membrane, T=args.steps, seed=args.seed)
    currents_q = example_currents(core.config, args.steps, seed=args.seed)
    spikes_q, _ = CoreModel(core.config, core.thresholds).run(currents_q)
    s = np.sqrt(params["running_var"] + params["eps"])

    def mpbn(u):
        return params["gamma"] * (u - params["running_mean"]) / s + params["beta"]

    spikes_f, _ = lif(core.config.current.to_float(currents_q)[:, None, :], tau=core.config.tau,
                      v_th=v_th, norm=mpbn)
    agree = float(np.mean(spikes_f[:, 0, :] == spikes_q))
    print(f"    {spikes_q.size:,} spike decisions, fixed vs float agreement {agree:.4%}, "
          f"firing rate {spikes_q.mean():.3f}")

    _stage("trained network: fold -> quantize -> float vs fixed point on the test split")
    from golden.calibrate import evaluate_model
    evaluation = evaluate_model(model)
    print("    " + evaluation.markdown().replace("\n", "\n    "))

    rtl = None
    if args.samples:
        from sim.runner import simulator
        name = {"icarus": "Icarus", "verilator": "Verilator"}[simulator()]
        _stage(f"network RTL: Verilog -> cocotb + {name} on {args.samples} test samples")
        from sim.network_cosim import cosim_network
        t_rtl = time.perf_counter()
        rtl = cosim_network(args.model, args.samples, Path("build") / "cosim-network",
                            progress=not args.quiet)
        t_rtl = time.perf_counter() - t_rtl
        print(f"    RTL accuracy {rtl['rtl_accuracy']:.2%}, golden {rtl['fixed_accuracy']:.2%}, "
              f"float {rtl['float_accuracy']:.2%}; RTL-vs-golden mismatches "
              f"{rtl['total_mismatches']}; {rtl['cycles_per_image']:.0f} cycles per image; "
              f"{t_rtl:.1f} s ({t_rtl / args.samples:.1f} s per sample, build included)")

    conv = None if args.no_conv else _conv_stage(args)

    board = None
    if args.board:
        board = _board_stage(args.board, model, rtl)

    report = {
        "fold": {"format": str(args.membrane), "checked": checked, "mismatches": mismatches},
        "core_vs_float_agreement": agree,
        "network": {"test_samples": evaluation.n, "float_accuracy": evaluation.float_accuracy,
                    "fixed_accuracy": evaluation.fixed_accuracy,
                    "prediction_agreement": evaluation.prediction_agreement},
        "rtl": None if rtl is None else {
            k: rtl[k] for k in ("samples", "float_accuracy", "fixed_accuracy", "rtl_accuracy",
                                "compared", "total_mismatches", "first_mismatch",
                                "mismatches", "layers", "cycles_per_image",
                                "latency_cycles_first", "latency_us", "lanes", "in_lanes",
                                "outreg", "T")},
    }
    if board is not None:
        report["board"] = board
    if conv is not None:
        report["conv"] = conv
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# spikefold demo", "",
             f"* fold on the {args.membrane} grid: {mismatches} mismatches of {checked:,} decisions",
             f"* bit-exact core vs float LIF with MPBN: {agree:.4%} spike agreement", "",
             "## Trained digits network", "", evaluation.markdown(), ""]
    if rtl is not None:
        lines += ["## RTL co-simulation", "",
                  "| samples | float | fixed (golden) | RTL | RTL-vs-golden mismatches "
                  "| cycles/image (streaming) | µs/image @100 MHz | first-image latency @100 MHz |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {rtl['samples']} | {rtl['float_accuracy']:.2%} | {rtl['fixed_accuracy']:.2%} "
                  f"| {rtl['rtl_accuracy']:.2%} | {rtl['total_mismatches']} | "
                  f"{rtl['cycles_per_image']:.0f} | {rtl['cycles_per_image'] / 100:.1f} µs "
                  f"| {_latency(rtl)} |", ""]
    if conv is not None:
        lines += ["## Conv network (the conv default model)", "", _conv_table(conv), ""]
    if board is not None:
        lines += ["## Board build", "", _board_table(board), ""]
    summary = _network_report(out, model, args.model, rtl, lines, [
        ("fold", f"{mismatches} mismatches of {checked:,} decisions on the {args.membrane} grid"),
        ("core vs float LIF", f"{agree:.4%} spike agreement"),
        (f"test split ({evaluation.n} samples)",
         f"float {evaluation.float_accuracy:.2%}, fixed {evaluation.fixed_accuracy:.2%}")])
    if summary is None:
        (out / "report.md").write_text("\n".join(lines))
        (out / "report.html").unlink(missing_ok=True)
    report["network_report"] = summary
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_plain) + "\n")

    print()
    print("summary")
    print(f"  {'fold mismatches on the ' + str(args.membrane) + ' grid':<37}: {mismatches} of {checked:,}")
    print(f"  fixed-point vs float spikes          : {agree:.4%} agree")
    print(f"  digits test accuracy, float / fixed  : {evaluation.float_accuracy:.2%} / "
          f"{evaluation.fixed_accuracy:.2%} ({evaluation.n} samples)")
    failed = bool(mismatches)
    if rtl is not None:
        print(f"  {'RTL on ' + str(rtl['samples']) + ' test samples':<37}: {rtl['rtl_accuracy']:.2%} "
              f"accuracy, {rtl['total_mismatches']} mismatches vs golden, "
              f"{rtl['cycles_per_image']:.0f} cycles/image streaming "
              f"({rtl['cycles_per_image'] / 100:.1f} µs at 100 MHz; first-image latency "
              f"{_latency(rtl)})")
        failed |= bool(rtl["total_mismatches"])
    if conv is not None:
        print(f"  {'conv digits net, float / fixed':<37}: {conv['float_accuracy']:.2%} / "
              f"{conv['fixed_accuracy']:.2%} ({conv['test_samples']} samples); plan "
              f"{conv['plan_cycles_per_image']:,} cycles/image, {conv['bram_blocks']} of "
              f"{conv['bram_blocks_available']} blocks on {conv['plan_board']}")
        if conv.get("rtl") is not None:
            r = conv["rtl"]
            print(f"  {'conv RTL on ' + str(r['samples']) + ' test samples':<37}: "
                  f"{r['rtl_accuracy']:.2%} accuracy, {r['total_mismatches']} mismatches vs "
                  f"golden, {r['cycles_per_image']:.0f} cycles/image streaming")
            failed |= bool(r["total_mismatches"])
    if board is not None:
        print(f"  {'board ' + board['board']:<37}: {_board_text(board)}")
    print(f"  report                               : "
          f"{out / ('report.md' if summary is None else 'report.html (and report.md)')}")
    print(f"  time                                 : {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


#: The board the conv stage's capacity plan is made for.
CONV_PLAN_BOARD = "ulx3s-85f"


def _conv_stage(args):
    """The conv default model next to the MLP: float and fixed accuracy on its test split,
    its capacity plan (:mod:`boards.capacity`) and, with ``--conv-samples``, RTL vs golden."""
    from boards.capacity import capacity_plan
    from boards.targets import get_target
    from golden.calibrate import evaluate_model
    from golden.modelfile import DEFAULT_CONV_MODEL, ModelFile
    _stage("conv network: the conv default (conv 1->16, max pool, conv 16->32, readout)")
    model = ModelFile.load(DEFAULT_CONV_MODEL)
    evaluation = evaluate_model(model)
    print("    " + evaluation.markdown().replace("\n", "\n    "))
    target = get_target(CONV_PLAN_BOARD)
    cp = capacity_plan(model.integer(), model.inputs(model.test_x[:8]), target)
    print(f"    plan: {cp.cycles_per_image:,} cycles per image (T = {cp.T}), {cp.blocks} of "
          f"{target.bram_blocks} block RAMs on {target.name}"
          f"{'' if cp.fits else ' (does not fit)'}")
    conv = {"model": str(DEFAULT_CONV_MODEL.name), "test_samples": evaluation.n,
            "float_accuracy": evaluation.float_accuracy,
            "fixed_accuracy": evaluation.fixed_accuracy,
            "prediction_agreement": evaluation.prediction_agreement,
            "plan_board": target.name, "plan_cycles_per_image": cp.cycles_per_image,
            "bram_blocks": cp.blocks, "bram_blocks_available": target.bram_blocks,
            "fits": cp.fits, "rtl": None}
    if args.conv_samples:
        from sim.network_cosim import cosim_network
        _stage(f"conv network RTL on {args.conv_samples} test samples")
        r = cosim_network(DEFAULT_CONV_MODEL, args.conv_samples,
                          Path("build") / "cosim-network", progress=not args.quiet)
        print(f"    RTL accuracy {r['rtl_accuracy']:.2%}, golden {r['fixed_accuracy']:.2%}; "
              f"RTL-vs-golden mismatches {r['total_mismatches']}; "
              f"{r['cycles_per_image']:.0f} cycles per image")
        conv["rtl"] = {k: r[k] for k in ("samples", "rtl_accuracy", "fixed_accuracy",
                                         "compared", "total_mismatches", "first_mismatch",
                                         "cycles_per_image")}
    return conv


def _conv_table(conv):
    rows = ["| | float | fixed (golden) | plan cycles/image | block RAM on "
            f"{conv['plan_board']} | RTL |", "|---|---|---|---|---|---|"]
    r = conv.get("rtl")
    rtl = ("not simulated (--conv-samples N)" if r is None else
           f"{r['rtl_accuracy']:.2%} on {r['samples']} samples, {r['total_mismatches']} "
           f"mismatches, {r['cycles_per_image']:.0f} cycles/image")
    rows.append(f"| conv default ({conv['test_samples']} test samples) | "
                f"{conv['float_accuracy']:.2%} | {conv['fixed_accuracy']:.2%} | "
                f"{conv['plan_cycles_per_image']:,} | {conv['bram_blocks']} of "
                f"{conv['bram_blocks_available']} blocks | {rtl} |")
    return "\n".join(rows)


#: Test samples of the golden-only network report (``--samples 0``).
GOLDEN_SAMPLES = 20


def _network_report(out, model, model_name, rtl, md_head, rows):
    """report.html and report.md of the network (:mod:`sim.netreport`): the co-simulated
    samples of ``rtl``, or golden alone on the first test samples; returns the tables
    (:func:`sim.netreport.network_summary`), or None for a model without test data."""
    from hdl.mapping import HardwareMapping
    from sim.netreport import load_run, write_network_report
    from sim.network_cosim import golden_layers
    inet = model.integer()
    if rtl is not None:
        index = np.asarray(rtl["index"])
        golden, recorded = load_run(rtl["directory"])
        mapping = HardwareMapping.for_network(inet, rtl["lanes"], rtl["in_lanes"],
                                              rtl["outreg"], slices=rtl.get("slices"))
        run = rtl
    elif model.test_x is None or not len(model.test_x):
        return None
    else:
        index = np.arange(min(GOLDEN_SAMPLES, len(model.test_x)))
        res, arrays = golden_layers(inet, model.inputs(model.test_x[index]))
        golden = dict(arrays, logits=res.logits_q, label=res.predict())
        recorded, mapping, run = None, None, {}
    x = model.inputs(model.test_x[index])
    run = dict(run, model=model_name or "embedded digits model")
    return write_network_report(out, run, inet, x, golden, recorded, mapping=mapping,
                                float_labels=model.network.forward(x).predict(),
                                labels=model.test_y[index], title="spikefold demo",
                                summary_rows=rows, md_head=md_head)


def _board_stage(name, model, rtl):
    """Build the network bench on board ``name``; the figures for the report."""
    from boards.build import build_network
    from boards.targets import get_target
    target = get_target(name)
    cycles = None if rtl is None else rtl.get("cycles_per_image")
    latency = None if rtl is None else rtl.get("latency_cycles_first")
    out = Path("build") / f"demo-{name}"
    _stage(f"board: the whole network on the {target.board} ({target.device}), yosys + "
           f"nextpnr in {out} (minutes)")
    info = build_network(model.integer(), None, target, out, cycles_per_image=cycles,
                         latency_cycles=latency, log=lambda text: print("    " + text, flush=True))
    r = info["results"]
    board = {"board": name, "device": target.device, "lanes": info["lanes"],
             "in_lanes": info["in_lanes"], "freq_target_mhz": info["freq_target_mhz"],
             "luts": r.get("luts"), "logic_cells": r.get("logic_cells"), "ffs": r.get("ffs"),
             "bram_blocks": r.get("bram_blocks"), "dsp": r.get("dsp"),
             "fmax_mhz": r.get("fmax_main_mhz"), "cycles_per_image": cycles,
             "latency_cycles": latency, "us_per_image": r.get("us_per_image"),
             "latency_us": r.get("latency_us"), "build_seconds": info.get("build_seconds"),
             "build_dir": out.as_posix()}
    print(f"    {_board_text(board)}")
    return board


def _board_logic(board):
    return (f"{board['logic_cells']} LCs" if board.get("logic_cells") is not None
            else f"{board['luts']} LUTs")


def _board_text(board):
    text = (f"{_board_logic(board)}, {board['ffs']} FFs, {board['bram_blocks']} BRAM, "
            f"{board['dsp']} DSP, Fmax {board['fmax_mhz']} MHz")
    if board.get("us_per_image"):
        text += f", {board['us_per_image']:.2f} µs/image at Fmax"
    return text


def _board_table(board):
    def fmt(v, spec=""):
        return "-" if v is None else format(v, spec)
    return "\n".join([
        "| board | device | logic | FFs | BRAM | DSP | Fmax | cycles/image | µs/image at Fmax "
        "| first-image latency at Fmax |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {board['board']} | {board['device']} | {_board_logic(board)} | {board['ffs']} | "
        f"{board['bram_blocks']} | {board['dsp']} | {fmt(board['fmax_mhz'])} MHz | "
        f"{fmt(board['cycles_per_image'], ',.1f')} | {fmt(board['us_per_image'], '.2f')} | "
        f"{fmt(board['latency_us'], '.2f')} µs |",
        "", f"Lanes {board['lanes']}, {board['in_lanes']} pixels per input beat; the network "
        f"in a registered shell (boards.top.NetworkBenchTop), clock constrained to "
        f"{board['freq_target_mhz']:g} MHz; build in `{board['build_dir']}`."])


def _latency(rtl):
    """The first image's latency, cycles and µs at 100 MHz (not the streaming rate)."""
    cycles = rtl.get("latency_cycles_first")
    lat = rtl.get("latency_us") or {}
    if cycles is None or "100MHz" not in lat:
        return "-"
    return f"{cycles:,} cycles = {lat['100MHz']:.1f} µs"


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialize {type(obj).__name__}")
