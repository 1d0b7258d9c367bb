"""The co-simulation report: report.json, a self-contained HTML page and a Markdown summary.

Plots (matplotlib, Agg backend): membrane traces RTL vs golden for chosen neurons, spike
rasters side by side, per-neuron firing-rate agreement, and the deviation of the
fixed-point model from a floating-point LIF (:func:`golden.lif.lif_folded`) run on the
dequantized currents with the real ``tau`` and the stored thresholds.

Runs longer than :data:`WINDOW` timesteps are plotted in a window of that many (around the
first mismatch, else from the start; the titles say which); ``traces.json`` holds the full
data of the plotted neurons and both rasters. Legends sit outside the axes, off the data.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from golden.fold import Compare, ThresholdRule
from golden.lif import lif_folded
from sim.tb import format_mismatch

__all__ = ["rtl_rows", "float_reference", "write_report", "plot_window", "md_cell", "WINDOW"]

#: Most timesteps a trace or raster shows; longer runs are plotted in a window.
WINDOW = 200

#: Files of a report directory that only a run that made them may leave there.
_RUN_FILES = ("waves.fst", "traces.json")


def plot_window(n_steps, focus=None, width=WINDOW):
    """``(start, stop)`` of at most ``width`` of ``n_steps`` timesteps: around ``focus`` (a
    timestep index, e.g. the first mismatch's) if given, else from the start."""
    if n_steps <= width:
        return 0, n_steps
    start = 0 if focus is None else min(max(0, int(focus) - width // 4), n_steps - width)
    return start, start + width


def md_cell(value):
    """``value`` as one Markdown table cell: pipes escaped, no line breaks."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def rtl_rows(expected, outputs, lanes, neurons):
    """RTL outputs as per-timestep arrays ``(S, N)``: spikes, membrane and a received mask."""
    S = len(expected.rows_fed)
    spikes = np.zeros((S, neurons), dtype=bool)
    membrane = np.zeros((S, neurons), dtype=np.int64)
    seen = np.zeros((S, neurons), dtype=bool)
    got = outputs.get("got_cycle")
    received = np.ones(len(expected), dtype=bool) if got is None else np.asarray(got) >= 0
    for b in np.nonzero(received)[0]:
        r, base, k = expected.row[b], expected.beat[b] * lanes, expected.valid_lanes[b]
        spikes[r, base:base + k] = outputs["spikes"][b, :k]
        membrane[r, base:base + k] = outputs["membrane"][b, :k]
        seen[r, base:base + k] = True
    return spikes, membrane, seen


def _row_timesteps(expected):
    S = len(expected.rows_fed)
    t = np.full(S, -1, dtype=np.int64)
    t[expected.row] = expected.t
    complete = np.zeros(S, dtype=bool)
    complete[expected.row[expected.last]] = True
    return t, complete


def float_reference(folded, currents, expected):
    """Float LIF on dequantized currents over every run of complete timesteps from t = 0.

    Returns ``(rows, spikes, u_pre)``: the row indices covered and the float results there.
    """
    cfg = folded.config
    t_row, complete = _row_timesteps(expected)
    th = folded.thresholds
    rule = ThresholdRule(cfg.membrane.to_float(th.theta_q), th.compare)
    x = cfg.current.to_float(currents)
    if folded.affine is not None:
        ch = cfg.channel_of()
        a = folded.affine.a_q / float(1 << cfg.scale.frac)
        b = cfg.membrane.to_float(folded.affine.b_q)
        x = np.where(t_row[:, None] >= 0, a[np.maximum(t_row, 0)][:, ch] * x
                     + b[np.maximum(t_row, 0)][:, ch], x)
    rows, spikes, u_pre = [], [], []
    s = 0
    S = len(t_row)
    while s < S:
        if t_row[s] != 0 or not complete[s]:
            s += 1
            continue
        e = s + 1
        while e < S and complete[e] and t_row[e] == t_row[e - 1] + 1:
            e += 1
        sp, up = lif_folded(x[s:e], rule, tau=cfg.tau, reset=cfg.reset)
        rows.append(np.arange(s, e))
        spikes.append(sp)
        u_pre.append(up)
        s = e
    if not rows:
        empty = np.zeros((0, cfg.neurons))
        return np.zeros(0, dtype=np.int64), empty.astype(bool), empty
    return np.concatenate(rows), np.vstack(spikes), np.vstack(u_pre)


def _pick_neurons(golden_spikes, golden_v, count=4):
    """Neurons worth plotting: the most variable membranes, some firing, some not."""
    n = golden_v.shape[1]
    if n <= count:
        return list(range(n))
    rate = golden_spikes.mean(axis=0)
    var = golden_v.std(axis=0)
    order = list(np.argsort(-var))
    firing = [i for i in order if 0 < rate[i] < 1][: count - 1]
    rest = [i for i in order if i not in firing]
    return sorted(firing + rest[: count - len(firing)])


def _figures(folded, expected, rtl, currents, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = folded.config
    scale = cfg.membrane.scale
    fed = expected.rows_fed
    g_sp, g_v = expected.spikes_rows[fed], expected.v_pre_rows[fed]
    r_sp, r_v, seen = (a[fed] for a in rtl)
    steps = np.nonzero(fed)[0]
    figs = {}
    diff_any = ((g_sp != r_sp) | (g_v != r_v)) & seen
    bad_rows = np.nonzero(diff_any.any(axis=1))[0]
    focus = int(bad_rows[0]) if len(bad_rows) else None
    a, b = plot_window(len(steps), focus)
    win = slice(a, b)
    span = (f"timesteps {steps[a]}..{steps[b - 1]} of {len(steps)}"
            if (a, b) != (0, len(steps)) else f"all {len(steps)} timesteps")

    neurons = _pick_neurons(g_sp, g_v)
    fig, axes = plt.subplots(len(neurons), 1, figsize=(10, 1.9 * len(neurons) + 0.9),
                             sharex=True, squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.85, top=1 - 0.45 / fig.get_figheight(),
                        bottom=0.55 / fig.get_figheight(), hspace=0.3)
    for ax, i in zip(axes[:, 0], neurons):
        st = steps[win]
        ax.plot(st, g_v[win, i] / scale, "-", color="tab:blue", lw=1.2, label="golden v_pre")
        ok = seen[win, i]
        ax.plot(st[ok], r_v[win][ok, i] / scale, "o", ms=3, mfc="none", color="tab:orange",
                label="RTL v_pre")
        c = folded.thresholds.compare[i]
        if c in (Compare.GT, Compare.LT):
            ax.axhline(folded.thresholds.theta_q[i] / scale, color="gray", ls="--", lw=0.8,
                       label=f"theta ({Compare(c).name})")
        fire = st[ok & r_sp[win, i]]
        top = ax.get_ylim()[1]
        ax.plot(fire, np.full(len(fire), top), "v", color="tab:red", ms=4, label="RTL spike",
                clip_on=False)
        ax.set_ylabel(f"neuron {i}")
        # Outside the axes, right of the data: a legend never covers a spike marker.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6, borderaxespad=0)
    axes[-1, 0].set_xlabel("timestep (stimulus row)")
    fig.suptitle(f"{title}: membrane traces, {span} (initial thresholds shown)", fontsize=10)
    figs["membrane_traces"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, sp, name in ((axes[0], g_sp[win], "golden"), (axes[1], (r_sp & seen)[win], "RTL")):
        t_idx, n_idx = np.nonzero(sp)
        ax.plot(steps[win][t_idx], n_idx, "|", ms=6 if b - a <= 64 else 3, mew=1.0,
                color="black")
        ax.set_title(f"{name} spikes ({int(sp.sum())} in {span})", fontsize=9)
        ax.set_xlabel("timestep")
    diff = np.nonzero(((g_sp != r_sp) & seen)[win])
    if len(diff[0]):
        axes[1].plot(steps[win][diff[0]], diff[1], "x", color="red", ms=5, label="differs")
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                       borderaxespad=0)
    axes[0].set_ylabel("neuron")
    fig.tight_layout()
    figs["spike_raster"] = fig

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    denom = np.maximum(seen.sum(axis=0), 1)
    g_rate = g_sp.mean(axis=0)
    r_rate = (r_sp & seen).sum(axis=0) / denom
    ax.plot([0, 1], [0, 1], "--", color="gray", lw=0.8)
    ax.plot(g_rate, r_rate, "o", ms=4, alpha=0.7)
    ax.set_xlabel("golden firing rate")
    ax.set_ylabel("RTL firing rate")
    ax.set_title("per-neuron firing rate (all timesteps)", fontsize=9)
    fig.tight_layout()
    figs["firing_rate"] = fig

    rows, f_sp, f_v = float_reference(folded, currents, expected)
    dev = {}
    if len(rows):
        fixed_v = expected.v_pre_rows[rows] / scale
        err = fixed_v - f_v
        lsb = err * scale
        dev = {"rows": int(len(rows)),
               "membrane_abs_error_max": float(np.abs(err).max()),
               "membrane_abs_error_mean": float(np.abs(err).mean()),
               "membrane_error_lsb_p99": float(np.percentile(np.abs(lsb), 99)),
               "spike_agreement": float((f_sp == expected.spikes_rows[rows]).mean())}
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
        axes[0].hist(np.clip(lsb.ravel(), -50, 50), bins=101, color="tab:green")
        axes[0].set_xlabel("fixed - float membrane (LSB, clipped to +-50)")
        axes[0].set_ylabel("count")
        axes[0].set_title("deviation of the fixed-point model", fontsize=9)
        i = neurons[0]
        fa, fb = plot_window(len(rows))
        axes[1].plot(rows[fa:fb], f_v[fa:fb, i], "-", label="float LIF u_pre")
        axes[1].plot(rows[fa:fb], fixed_v[fa:fb, i], ".", ms=3, label="fixed-point v_pre")
        axes[1].set_title(f"neuron {i}; spike agreement {dev['spike_agreement']:.4f}",
                          fontsize=9)
        axes[1].set_xlabel("timestep")
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                       borderaxespad=0)
        fig.tight_layout()
        figs["float_vs_fixed"] = fig
    traces = {
        "window": {"start_row": int(steps[a]), "stop_row": int(steps[b - 1]) + 1,
                   "timesteps": int(len(steps)), "width": WINDOW},
        "rows": steps.tolist(), "membrane_scale": float(scale),
        "neurons": {str(i): {"golden_v_pre": g_v[:, i].tolist(),
                             "rtl_v_pre": [int(v) if ok else None
                                           for v, ok in zip(r_v[:, i], seen[:, i])],
                             "rtl_spike_rows": steps[r_sp[:, i] & seen[:, i]].tolist()}
                    for i in neurons},
        "golden_spikes": [[int(steps[t]), int(n)] for t, n in zip(*np.nonzero(g_sp))],
        "rtl_spikes": [[int(steps[t]), int(n)] for t, n in zip(*np.nonzero(r_sp & seen))],
    }
    return figs, dev, traces


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def write_report(out_dir, report, *, folded=None, expected=None, outputs=None, currents=None,
                 title="spikefold cosim"):
    """Write report.json, report.html (plots embedded) and report.md (+ PNG files).

    ``report`` is the dict that becomes report.json; plots need the other arguments.
    Returns the path of report.html.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A reused directory must not show an earlier run's waves, plots or traces.
    stale = [name for name in _RUN_FILES if name != report.get("waves")]
    stale += [f"{name}.png" for name in CAPTIONS]
    for name in stale:
        (out / name).unlink(missing_ok=True)
    pngs = {}
    if folded is not None and expected is not None and outputs is not None:
        lanes = int(report["lanes"])
        rtl = rtl_rows(expected, outputs, lanes, folded.config.neurons)
        figs, dev, traces = _figures(folded, expected, rtl, currents, title)
        report["float_vs_fixed"] = dev
        for name, fig in figs.items():
            pngs[name] = _png(fig)
            (out / f"{name}.png").write_bytes(pngs[name])
        report["plots"] = sorted(f"{name}.png" for name in pngs)
        report["plot_window"] = traces["window"]
        (out / "traces.json").write_text(json.dumps(traces) + "\n")
        report["traces"] = "traces.json"
    (out / "report.json").write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    (out / "report.md").write_text(_markdown(report, pngs))
    (out / "report.html").write_text(_html(report, pngs, title))
    return out / "report.html"


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _verdict(report):
    if report.get("first_mismatch") is None and report.get("mismatches") == 0:
        return "PASS", f"{report['compared']:,} values compared, 0 mismatches"
    return "FAIL", (f"{report.get('mismatches')} mismatch(es); first: "
                    f"{format_mismatch(report['first_mismatch'])}")


def _rows(report):
    cfg = report.get("config", {})
    rows = [("verdict", " — ".join(_verdict(report))),
            ("mode", report.get("mode")), ("RTL", report.get("rtl")),
            ("neurons N", cfg.get("neurons")), ("lanes P", report.get("lanes")),
            ("latency", report.get("latency")), ("T", cfg.get("T")),
            ("membrane / current", f"{_fmt(cfg.get('membrane'))} / {_fmt(cfg.get('current'))}"),
            ("tau, reset, affine", f"{cfg.get('tau')}, {cfg.get('reset')}, {cfg.get('affine')}"),
            ("seed", report.get("seed")), ("timesteps", report.get("timesteps")),
            ("cycles", report.get("cycles")), ("values compared", report.get("compared")),
            ("mismatches", report.get("mismatches")),
            ("wall time (s)", _num(report.get("wall_time_s"))),
            ("simulated cycles/s", _num(report.get("cycles_per_s")))]
    if report.get("bench"):
        b = report["bench"]
        rows.append(("bench: cocotb / fast path cycles/s, ratio",
                     f"{_num(b.get('cocotb_cycles_per_s'))} / {_num(b.get('fast_cycles_per_s'))}, "
                     f"x{_num(b.get('ratio'))}"))
    dev = report.get("float_vs_fixed") or {}
    if dev:
        rows.append(("fixed vs float: spike agreement, max |dv|",
                     f"{dev['spike_agreement']:.4f}, {dev['membrane_abs_error_max']:.4g}"))
    return rows


def _fmt(f):
    return f"{f['bits']}.{f['frac']}" if isinstance(f, dict) else f


def _num(x):
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


CAPTIONS = {
    "membrane_traces": "Membrane v_pre of chosen neurons: golden (line) vs RTL (circles)",
    "spike_raster": "Spike rasters, golden and RTL side by side (red x: differences)",
    "firing_rate": "Per-neuron firing rate, golden vs RTL",
    "float_vs_fixed": "Fixed-point model vs float LIF on dequantized currents",
}


def _markdown(report, pngs):
    verdict, detail = _verdict(report)
    lines = [f"# spikefold cosim: {verdict}", "", md_cell(detail), "", "| field | value |",
             "|---|---|"]
    lines += [f"| {md_cell(k)} | {md_cell(v)} |" for k, v in _rows(report)]
    lines.append("")
    for name in pngs:
        lines += [f"## {CAPTIONS.get(name, name)}", "", f"![{name}]({name}.png)", ""]
    return "\n".join(lines)


def _html(report, pngs, title):
    verdict, detail = _verdict(report)
    color = "#1a7f37" if verdict == "PASS" else "#cf222e"
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in _rows(report))
    imgs = "".join(
        f"<figure><img alt='{name}' src='data:image/png;base64,"
        f"{base64.b64encode(data).decode()}'><figcaption>{html.escape(CAPTIONS.get(name, name))}"
        f"</figcaption></figure>" for name, data in pngs.items())
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
h1 span{{color:{color}}} table{{border-collapse:collapse}} th,td{{border:1px solid #ccc;
padding:3px 8px;text-align:left}} th{{background:#f4f4f4}} img{{max-width:100%}}
figure{{margin:1.5em 0}} figcaption{{font-size:90%;color:#555}}</style></head>
<body><h1>{html.escape(title)}: <span>{verdict}</span></h1>
<p>{html.escape(detail)}</p><table>{rows}</table>{imgs}</body></html>
"""
