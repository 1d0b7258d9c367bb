"""``spikefold sweep``: how size and speed grow with lanes, neurons and widths on a device.

Every point is a real YoWASP build of the bare array in its registered shell
(:class:`boards.top.BenchTop`, clock constrained to the family's target: iCE40 100 MHz,
ECP5 250 MHz), so Fmax is the array's own (nextpnr's estimate after place and route) and
utilization is the array plus a shell of ~40 flip-flops and a P-input XOR. Writes
``sweep.csv``, ``sweep.md`` and ``sweep_*.png`` into ``--out`` (default
``build/sweep/<board>``); each point's build directory is kept under it.

Columns: logic (iCE40 logic cells, or ECP5 LUTs), FFs, BRAM blocks, DSP, logic per lane
(total / P, and the marginal cost: the slope of logic over P at fixed N and width),
BRAM bits per neuron (blocks x block bits / N; the minimum is ``Bm + Bth + 2``), Fmax,
throughput (P x Fmax neuron updates per second; the array takes one beat per clock).

Memory output registers (``--memory-outreg``): ``auto`` (the default) registers the block
RAM outputs on ECP5, where the DP16KD has its own output register (free, and needed for
200 MHz), and not on iCE40, whose block RAM has none (there they are fabric flip-flops,
about 52 logic cells per lane). The table says which was built.

Pipeline flow (``--flow``): ``auto`` (the default: ``credit`` on ECP5, ``stall`` on iCE40,
:func:`boards.top.flow_for`), ``stall`` or ``credit`` (no pipeline enable: an output queue
and a credit counter, :class:`hdl.lif_array.LIFArray` ``flow="credit"``); the plot title
says which.

A point is rebuilt unless its directory holds a build of exactly the same settings
(``sweep_key.json``: configuration, lanes, board, clock target, memory output registers,
pipeline flow and a digest of the RTL generator's source), so a rerun with another ``--freq``, ``--tau`` or
``-T`` never reuses an old build.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path

from golden.examples import example_core
from golden.fixed import Fixed

from .build import DEFAULT_FREQ, build_board
from .report import parse_nextpnr_report, parse_yosys_stat, summarize
from .targets import TARGETS, get_target

__all__ = ["add_arguments", "run", "default_points", "sweep"]

COLUMNS = ("device", "neurons", "lanes", "membrane_bits", "tau", "memory_outreg", "logic", "ffs",
           "bram_blocks", "dsp", "logic_per_lane", "logic_per_lane_marginal",
           "ffs_per_lane_marginal", "bram_bits_per_neuron",
           "min_bits_per_neuron", "fmax_mhz", "throughput_mupdates_s", "critical_path")


def default_points(family):
    """(neurons, lanes, membrane bits) of the default sweep of a family."""
    if family == "ice40":
        n, lanes, ns, big = 256, (1, 2, 4, 8), (64, 1024), (2048, 2)
    else:
        n, lanes, ns, big = 1024, (2, 4, 8, 16), (256, 4096), (16384, 4)
    pts = [(n, p, 16) for p in lanes]
    pts += [(x, 4, 16) for x in ns]
    pts.append((*big, 16))                   # deep memories: BRAM bits per neuron at large N
    pts += [(n, 4, w) for w in (8, 24)]
    return pts


def _int_list(low, what):
    """argparse type: comma-separated integers >= ``low`` (the flag is named by argparse)."""

    def parse(text):
        values = []
        for part in text.split(","):
            part = part.strip()
            try:
                value = int(part)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated {what}, not {text!r}") from None
            if value < low:
                raise argparse.ArgumentTypeError(f"{what} must be >= {low}, not {value}")
            values.append(value)
        return values

    return parse


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MHz, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of MHz, not {text}")
    return value


def _tau(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], not {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


OUTREG_CHOICES = ("auto", "on", "off")


def add_arguments(parser):
    parser.add_argument("--board", default="icebreaker",
                        choices=sorted(n for n, t in TARGETS.items() if t.open_toolchain))
    parser.add_argument("--neurons", type=_int_list(1, "neuron counts"),
                        help="comma-separated N values (with --lanes, --widths: a full grid "
                        "instead of the default sweep)")
    parser.add_argument("--lanes", type=_int_list(1, "lane counts"),
                        help="comma-separated P values")
    parser.add_argument("--widths", type=_int_list(4, "membrane widths"),
                        help="comma-separated membrane widths (frac = width/2)")
    parser.add_argument("--tau", type=_tau, default=0.25, help="leak (0.25: shift)")
    parser.add_argument("-T", type=_positive_int, default=8, dest="T")
    parser.add_argument("--freq", type=_positive_float, default=None,
                        help="clock target, MHz (default: iCE40 100, ECP5 250)")
    parser.add_argument("--memory-outreg", choices=OUTREG_CHOICES, default="auto",
                        help="register the block RAM outputs (auto: on ECP5 only)")
    parser.add_argument("--flow", choices=("auto", "stall", "credit"), default="auto",
                        help="the array's pipeline flow (auto: credit on ECP5, stall on "
                             "iCE40; see spikefold build --help)")
    parser.add_argument("--out", help="output directory (default build/sweep/<board>)")


def outreg_for(target, choice="auto"):
    """Whether the sweep's builds register the memory outputs on ``target``."""
    if choice not in OUTREG_CHOICES:
        raise ValueError(f"memory_outreg must be one of {OUTREG_CHOICES}, not {choice!r}")
    if choice == "auto":
        return target.family == "ecp5"
    return choice == "on"


def _rtl_digest():
    """Digest of the sources that generate a sweep point's netlist."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in (here.parent / "hdl" / "lif_array.py", here.parent / "hdl" / "bram.py",
                 here / "top.py", here / "build.py"):
        h.update(path.read_bytes() if path.exists() else b"")
    return h.hexdigest()[:16]


def point_key(target, config_json, lanes, freq, memory_outreg, flow="stall"):
    """Everything a sweep point's build depends on (compared before reusing a build)."""
    return {"board": target.name, "device": target.device, "config": config_json,
            "lanes": lanes, "freq_target_mhz": freq, "memory_outreg": memory_outreg,
            "flow": flow, "rtl": _rtl_digest()}


def sweep(target, points, out, *, tau=0.25, T=8, freq=None, memory_outreg=None,
          flow="stall", log=print):
    out = Path(out)
    freq = freq or DEFAULT_FREQ[target.family]
    if memory_outreg is None:
        memory_outreg = outreg_for(target)
    rows = []
    for n, p, w in points:
        membrane = Fixed(w, w // 2)
        folded = example_core(n, T=T, membrane=membrane, tau=tau)
        d = out / f"n{n}_p{p}_w{w}"
        done, key_file = d / "build.json", d / "sweep_key.json"
        key = point_key(target, folded.config.to_json(), p, freq, memory_outreg, flow)
        info = json.loads(done.read_text()) if done.exists() else None
        old_key = json.loads(key_file.read_text()) if key_file.exists() else None
        if not info or not info.get("built") or old_key != key:
            key_file.unlink(missing_ok=True)
            try:
                info = build_board(folded, p, target, d, bench=True, freq=freq,
                                   memory_outreg=memory_outreg, flow=flow, log=log)
            except ValueError as exc:          # does not fit: a row saying so
                log(f"skip N={n} P={p} w={w}: {exc}")
                continue
            except RuntimeError as exc:        # a tool crashed on this point: say so, go on
                log(f"FAILED N={n} P={p} w={w}: {exc}")
                continue
            key_file.write_text(json.dumps(key, indent=1) + "\n")
        else:
            # Figures always come from the saved toolchain reports, never a stale summary.
            info["results"] = summarize(target.family, parse_nextpnr_report(d / "top.report.json"),
                                        parse_yosys_stat(d / "top.rpt"), lanes=p)
            done.write_text(json.dumps(info, indent=1) + "\n")
        r = info["results"]
        logic = r.get("logic_cells") if r.get("logic_cells") is not None else r.get("luts")
        cp = r.get("critical_path", {})
        rows.append({
            "device": target.device, "neurons": n, "lanes": p, "membrane_bits": w,
            "tau": tau, "memory_outreg": memory_outreg,
            "logic": logic, "ffs": r.get("ffs"), "bram_blocks": r["bram_blocks"],
            "dsp": r["dsp"], "logic_per_lane": round(logic / p, 1),
            "bram_bits_per_neuron": round(r["bram_blocks"] * target.bram_block / n, 1),
            "min_bits_per_neuron": w + w + 2,
            "fmax_mhz": r.get("fmax_main_mhz"),
            "throughput_mupdates_s": round(p * r.get("fmax_main_mhz", 0), 1),
            "critical_path": f"{cp.get('start_cell', '')} -> {cp.get('end_cell', '')} "
                             f"({cp.get('delay_ns', '')} ns)",
        })
    add_marginals(rows)
    write_table(rows, out)
    plot(rows, out, target, title=plot_title(target, tau=tau, T=T, freq=freq,
                                             memory_outreg=memory_outreg, flow=flow, rows=rows))
    return rows


def add_marginals(rows):
    """Least-squares slope of logic and FFs over lanes at fixed N and width (and the same
    memory mapping: block RAM or LUT RAM): the cost of one more lane without the fixed
    control and shell (``None`` with a single lane count)."""
    import numpy as np
    groups = {}
    for r in rows:
        # Points whose memories went to LUT RAM (no BRAM) are a different implementation.
        groups.setdefault((r["neurons"], r["membrane_bits"], r["bram_blocks"] > 0),
                          []).append(r)
    for group in groups.values():
        lanes = np.array([r["lanes"] for r in group], dtype=float)
        for key, col in (("logic", "logic_per_lane_marginal"), ("ffs", "ffs_per_lane_marginal")):
            if len(set(lanes)) < 2 or any(r[key] is None for r in group):
                for r in group:
                    r[col] = None
                continue
            slope = np.polyfit(lanes, [float(r[key]) for r in group], 1)[0]
            for r in group:
                r[col] = round(float(slope), 1)


def write_table(rows, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    cols = COLUMNS[:-1]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("-" if r[c] is None else str(r[c]) for c in cols) + " |")
    lines.append("")
    lines.append("Critical paths (nextpnr):")
    lines.append("")
    for r in rows:
        lines.append(f"* N={r['neurons']} P={r['lanes']} w={r['membrane_bits']}: "
                     f"{r['critical_path']}")
    (out / "sweep.md").write_text("\n".join(lines) + "\n")


def plot_title(target, *, tau, T, freq, memory_outreg, flow="stall", rows=()):
    """The plots' title: the device and the settings the points were really built with."""
    widths = sorted({r["membrane_bits"] for r in rows})
    leak = "shift leak" if tau in {2.0 ** -k for k in range(0, 17)} else "multiply leak"
    wtext = ("membrane " + "/".join(str(w) for w in widths) + " bit") if widths else "no points"
    return (f"{target.device}: bare LIF array, {wtext}, tau={tau:g} ({leak}), T={T}, "
            f"target {freq:g} MHz, memory outputs {'registered' if memory_outreg else 'unregistered'}, "
            f"{flow} flow")


def _series(rows, x, group):
    """``{group value: rows sorted by x}`` (each group one line of a plot)."""
    out = {}
    for r in rows:
        out.setdefault(tuple(r[g] for g in group), []).append(r)
    return {k: sorted(v, key=lambda r: r[x]) for k, v in sorted(out.items())}


def plot(rows, out, target, *, title=None):
    """``sweep.png``: logic per lane and Fmax and throughput over P (one line per N and
    width), BRAM bits per neuron over N (one line per P and width); every row is drawn.
    Returns the path written, or ``None`` without rows."""
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = Path(out)
    by_lane = _series(rows, "lanes", ("neurons", "membrane_bits"))
    by_n = _series(rows, "neurons", ("lanes", "membrane_bits"))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = [
        (axes[0][0], by_lane, "lanes", "logic_per_lane", "logic per lane (total / P)",
         lambda g: f"N={g[0]}, {g[1]} bit"),
        (axes[0][1], by_n, "neurons", "bram_bits_per_neuron", "BRAM bits per neuron",
         lambda g: f"P={g[0]}, {g[1]} bit"),
        (axes[1][0], by_lane, "lanes", "fmax_mhz", "Fmax (nextpnr), MHz",
         lambda g: f"N={g[0]}, {g[1]} bit"),
        (axes[1][1], by_lane, "lanes", "throughput_mupdates_s", "M neuron updates / s (P x Fmax)",
         lambda g: f"N={g[0]}, {g[1]} bit"),
    ]
    for ax, series, x, y, ylabel, label in panels:
        for i, (g, pts) in enumerate(series.items()):
            xs = [r[x] for r in pts if r[y] is not None]
            ys = [r[y] for r in pts if r[y] is not None]
            ax.plot(xs, ys, "o-", color=f"C{i % 10}", label=label(g))
            if y == "logic_per_lane" and pts[0]["logic_per_lane_marginal"] is not None:
                ax.axhline(pts[0]["logic_per_lane_marginal"], ls="--", color=f"C{i % 10}",
                           lw=0.8, label=f"{label(g)}: marginal (slope)")
            if y == "bram_bits_per_neuron":
                ax.axhline(pts[0]["min_bits_per_neuron"], ls=":", color=f"C{i % 10}", lw=0.8)
        ax.set(xlabel="lanes P" if x == "lanes" else "neurons N", ylabel=ylabel)
        if x == "neurons" and len({r["neurons"] for r in rows}) > 1:
            ax.set_xscale("log")
        ax.legend(fontsize=7, loc="best")
    axes[0][1].set_title("dotted: minimum Bm + Bth + 2", fontsize=8)
    fig.suptitle(title or f"{target.device}: bare LIF array", fontsize=10)
    fig.tight_layout()
    path = out / "sweep.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(args):
    from .top import flow_for
    target = get_target(args.board)
    if not target.open_toolchain:
        raise ValueError(f"{args.board} needs vendor tools; sweep an iCE40 or ECP5 board")
    if args.neurons or args.lanes or args.widths:
        ns = args.neurons or [256]
        ps = args.lanes or [4]
        ws = args.widths or [16]
        points = [(n, p, w) for n in ns for p in ps for w in ws]
    else:
        points = default_points(target.family)
    bad = [(n, p) for n, p, _ in points if p > n]
    if bad and len(bad) == len(points):
        raise ValueError(f"--lanes must not exceed --neurons (no point has P <= N: "
                         f"N={bad[0][0]}, P={bad[0][1]})")
    out = Path(args.out or Path("build") / "sweep" / target.name)
    rows = sweep(target, points, out, tau=args.tau, T=args.T, freq=args.freq,
                 memory_outreg=outreg_for(target, args.memory_outreg),
                 flow=flow_for(target, args.flow))
    print((out / "sweep.md").read_text())
    if not rows:
        print(f"spikefold sweep: no point was built (see the messages above); wrote "
              f"{out}/sweep.csv and sweep.md without rows, no plot")
        return 1
    print(f"wrote {out}/sweep.csv, sweep.md, sweep.png ({len(rows)} points)")
    return 0
