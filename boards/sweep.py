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
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from golden.examples import example_core
from golden.fixed import Fixed

from .build import build_board
from .report import parse_nextpnr_report, parse_yosys_stat, summarize
from .targets import TARGETS, get_target

__all__ = ["add_arguments", "run", "default_points", "sweep"]

COLUMNS = ("device", "neurons", "lanes", "membrane_bits", "tau", "logic", "ffs",
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


def _parse_list(text):
    return [int(x) for x in text.split(",") if x.strip()]


def add_arguments(parser):
    parser.add_argument("--board", default="icebreaker",
                        choices=sorted(n for n, t in TARGETS.items() if t.open_toolchain))
    parser.add_argument("--neurons", help="comma-separated N values (with --lanes, --widths: "
                        "a full grid instead of the default sweep)")
    parser.add_argument("--lanes", help="comma-separated P values")
    parser.add_argument("--widths", help="comma-separated membrane widths (frac = width/2)")
    parser.add_argument("--tau", type=float, default=0.25, help="leak (0.25: shift)")
    parser.add_argument("-T", type=int, default=8, dest="T")
    parser.add_argument("--freq", type=float, default=None, help="clock target, MHz")
    parser.add_argument("--out", help="output directory (default build/sweep/<board>)")


def sweep(target, points, out, *, tau=0.25, T=8, freq=None, log=print):
    out = Path(out)
    rows = []
    for n, p, w in points:
        membrane = Fixed(w, w // 2)
        folded = example_core(n, T=T, membrane=membrane, tau=tau)
        d = out / f"n{n}_p{p}_w{w}"
        done = d / "build.json"
        info = json.loads(done.read_text()) if done.exists() else None
        if not info or not info.get("built") or info.get("config") != folded.config.to_json() \
                or info.get("lanes") != p or info.get("memory_outreg") is not True:
            try:
                info = build_board(folded, p, target, d, bench=True, freq=freq, log=log)
            except ValueError as exc:          # does not fit: a row saying so
                log(f"skip N={n} P={p} w={w}: {exc}")
                continue
            except RuntimeError as exc:        # a tool crashed on this point: say so, go on
                log(f"FAILED N={n} P={p} w={w}: {exc}")
                continue
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
            "tau": tau, "logic": logic, "ffs": r.get("ffs"), "bram_blocks": r["bram_blocks"],
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
    plot(rows, out, target)
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


def plot(rows, out, target):
    if not rows:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = Path(out)
    base_w = 16
    by_lane = sorted({r["lanes"]: r for r in rows if r["membrane_bits"] == base_w
                      and r["neurons"] == rows[0]["neurons"]}.values(), key=lambda r: r["lanes"])
    by_n = sorted({r["neurons"]: r for r in rows if r["membrane_bits"] == base_w
                   and r["lanes"] == 4}.values(), key=lambda r: r["neurons"])
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0][0]
    ax.plot([r["lanes"] for r in by_lane], [r["logic_per_lane"] for r in by_lane], "o-",
            label="total / P")
    if by_lane and by_lane[0]["logic_per_lane_marginal"] is not None:
        ax.axhline(by_lane[0]["logic_per_lane_marginal"], ls="--", color="C1",
                   label="marginal (slope)")
    ax.legend()
    ax.set(xlabel="lanes P", ylabel="logic per lane", title=f"logic per lane (N={rows[0]['neurons']})")
    ax = axes[0][1]
    ax.plot([r["neurons"] for r in by_n], [r["bram_bits_per_neuron"] for r in by_n], "o-",
            label="measured")
    ax.plot([r["neurons"] for r in by_n], [r["min_bits_per_neuron"] for r in by_n], "--",
            label="minimum Bm+Bth+2")
    ax.set(xscale="log", xlabel="neurons N", ylabel="BRAM bits / neuron", title="BRAM per neuron (P=4)")
    ax.legend()
    ax = axes[1][0]
    ax.plot([r["lanes"] for r in by_lane], [r["fmax_mhz"] for r in by_lane], "o-")
    ax.set(xlabel="lanes P", ylabel="Fmax (MHz)", title="Fmax (nextpnr)")
    ax = axes[1][1]
    ax.plot([r["lanes"] for r in by_lane], [r["throughput_mupdates_s"] for r in by_lane], "o-")
    ax.set(xlabel="lanes P", ylabel="M neuron updates / s", title="throughput = P x Fmax")
    fig.suptitle(f"{target.device}: bare LIF array, 16-bit membrane, shift leak")
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=100)
    plt.close(fig)


def run(args):
    target = get_target(args.board)
    if not target.open_toolchain:
        raise ValueError(f"{args.board} needs vendor tools; sweep an iCE40 or ECP5 board")
    if args.neurons or args.lanes or args.widths:
        ns = _parse_list(args.neurons) if args.neurons else [256]
        ps = _parse_list(args.lanes) if args.lanes else [4]
        ws = _parse_list(args.widths) if args.widths else [16]
        points = [(n, p, w) for n in ns for p in ps for w in ws]
    else:
        points = default_points(target.family)
    out = Path(args.out or Path("build") / "sweep" / target.name)
    rows = sweep(target, points, out, tau=args.tau, T=args.T, freq=args.freq)
    print((out / "sweep.md").read_text())
    print(f"wrote {out}/sweep.csv, sweep.md, sweep.png ({len(rows)} points)")
    return 0
