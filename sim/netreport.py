"""The network co-simulation report: ``report.html`` (self-contained) and ``report.md``.

Written by ``spikefold cosim --model M.npz`` and ``spikefold demo`` next to their JSON:

* accuracy of the float model, the golden integer model and the RTL on the co-simulated
  samples (and the RTL's agreement with golden's predictions);
* the confusion matrix (true class x RTL prediction; without labels: golden x RTL);
* per layer: kind, output shape, firing rate golden vs RTL (table and plot), values
  compared, mismatches, golden's saturation counts (input, current, affine, membrane);
* cycles per stage: the plan's (:func:`hdl.plan.network_plan`, from golden's activity)
  next to the simulation's (the interval between the samples' first output beats of every
  LIF array, between results of the readout), and per sample;
* the first mismatch's place: sample, layer, timestep, neuron, and for a feature map its
  (channel, y, x); field, expected, got, cycle;
* spike rasters of every LIF layer and membrane traces of chosen neurons, golden vs RTL,
  over the run's timeline (row = sample * T + t); runs longer than :data:`sim.report.WINDOW`
  rows are plotted in a window around the first mismatch (else from the start) and
  ``traces.json`` holds the full data. Legends sit outside the axes.

The data: golden's ``samples.npz`` and the RTL's ``rtl.npz`` from the run directory
(:func:`load_run`, written by :mod:`sim.network_cosim` and :mod:`sim.cocotb_netrecord`).
Everything here works on arrays, so a report can be made from golden data alone (``rtl``
None: RTL columns are empty) or from any recorded run.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import numpy as np

from sim.report import WINDOW, _pick_neurons, _png, md_cell, plot_window

__all__ = ["load_run", "network_summary", "write_network_report", "place_of", "CAPTIONS"]

CAPTIONS = {
    "firing_rates": "Firing rate per LIF layer, golden vs RTL",
    "stage_cycles": "Cycles per sample of every stage: plan vs simulation",
    "confusion": "Confusion matrix",
    "spike_raster": "Spike rasters per LIF layer, golden and RTL (red x: differences)",
    "membrane_traces": "Membrane v_pre of chosen neurons: golden (line) vs RTL (circles)",
}

#: Files a report directory may hold only when this run made them.
_RUN_FILES = ("traces.json",) + tuple(f"{name}.png" for name in CAPTIONS)


def load_run(run_dir):
    """``(golden, rtl)`` arrays of a network co-simulation's run directory (``rtl`` None
    when the run recorded nothing)."""
    run_dir = Path(run_dir)
    golden = dict(np.load(run_dir / "samples.npz"))
    path = run_dir / "rtl.npz"
    return golden, (dict(np.load(path)) if path.exists() else None)


def _lif_layers(golden):
    return sorted(int(m.group(1)) for k in golden if (m := re.fullmatch(r"spikes(\d+)", k)))


def place_of(first, inet):
    """The first mismatch with the neuron's (channel, y, x) when its layer is a map."""
    if first is None:
        return None
    place = dict(first)
    layer = inet.layers[first["layer"]]
    shape = tuple(getattr(layer, "out_shape", ()) or ())
    if first.get("neuron") is not None and len(shape) == 3 and first.get("t") is not None:
        c, y, x = np.unravel_index(int(first["neuron"]), shape)
        place.update(channel=int(c), y=int(y), x=int(x))
    place["kind"] = layer.kind
    return place


def _stage_layer(name, n_layers):
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else n_layers - 1


def _stage_cycles(inet, mapping, x_q, res, rtl):
    """Per stage: the plan's cycles per sample from golden's activity, and the simulated
    interval between samples (LIF arrays: first output beat of each sample; readout: the
    results). Returns ``(rows, plan_per_sample)``."""
    from hdl.plan import SYNAPTIC_KINDS, network_plan
    plan = network_plan(inet, mapping)
    T = inet.T
    S = x_q.shape[0]
    n = len(inet.layers)
    rows, per_sample = [], np.zeros(S, dtype=np.int64)
    for stage in plan.stages:
        l = _stage_layer(stage.name, n)
        if stage.kind in SYNAPTIC_KINDS:
            if l == 0:
                active = np.count_nonzero(x_q.reshape(S, -1), axis=1)
            else:
                prev = res.traces[l - 1].out.reshape(T, S, -1)
                active = np.count_nonzero(prev, axis=2)            # (T, S)
            if stage.per_sample:
                a = active if l == 0 else active[0]
                cyc = np.array([max(stage.cycles(int(v)), stage.beats * T) for v in a])
            else:
                if l == 0:
                    active = np.broadcast_to(active, (T, S))
                cyc = np.array([sum(stage.cycles(int(active[t, s])) for t in range(T))
                                for s in range(S)])
        else:
            cyc = np.full(S, stage.cycles() * T)
        per_sample = np.maximum(per_sample, cyc)
        sim = None
        if rtl is not None:
            if stage.kind == "lif" and f"cycle{l}" in rtl:
                first = rtl[f"cycle{l}"][:, 0, 0]
                first = first[first >= 0]
                sim = float(np.mean(np.diff(first))) if len(first) > 1 else None
            elif stage.kind == "readout":
                done = rtl.get("result_cycle", np.zeros(0))
                sim = float(np.mean(np.diff(done))) if len(done) > 1 else None
        rows.append({"stage": stage.name, "kind": stage.kind, "layer": l,
                     "lanes": stage.lanes, "beats": stage.beats, "latency": stage.latency,
                     "plan_cycles_per_sample": float(np.mean(cyc)),
                     "sim_cycles_per_sample": sim, "sim_span_per_sample": None})
    # A dense stage emits each output beat as soon as it has computed it: the span of each
    # timestep's output beats of the LIF array after it (first to last, summed over T) is
    # the stage's busy time in simulation plus the stalls the stages after it impose. (A
    # conv stage scatters first and drains in a burst: its span would be the drain only.)
    for row, after in zip(rows, rows[1:]):
        c = None if rtl is None else rtl.get(f"cycle{row['layer']}")
        if row["kind"] == "dense" and after["kind"] == "lif" and c is not None:
            ok = (c[:, :, 0] >= 0) & (c[:, :, -1] >= 0)
            full = ok.all(axis=1)
            if full.any():
                span = (c[:, :, -1] - c[:, :, 0] + 1).sum(axis=1)
                row["sim_span_per_sample"] = float(np.mean(span[full]))
    return rows, per_sample


def _rate(spikes):
    """Mean of the received (>= 0) values, or None."""
    spikes = np.asarray(spikes)
    got = spikes >= 0
    return float(spikes[got].mean()) if got.any() else None


def _confusion(truth, pred, classes):
    m = np.zeros((classes, classes + 1), dtype=np.int64)      # last column: no result
    for a, b in zip(truth, pred):
        m[int(a), int(b) if 0 <= b < classes else classes] += 1
    return m


def network_summary(report, inet, x, golden, rtl=None, *, mapping=None, float_labels=None,
                    labels=None):
    """The report's tables as one JSON-able dict (``report.json`` keeps it under
    ``network_report``): ``accuracy``, ``confusion``, ``layers``, ``stages``,
    ``plan_cycles_per_sample``, ``first_mismatch_place``."""
    S, T = len(golden["label"]), inet.T
    x_q, _ = inet.quantize_input(x)
    res = inet.run(x, per_sample=True)
    golden_labels = np.asarray(golden["label"], dtype=np.int64)
    if rtl is not None and "labels" in rtl:
        got = list(np.asarray(rtl["labels"], dtype=np.int64))
        rtl_labels = np.array(got + [-1] * (S - len(got)), dtype=np.int64)
    elif rtl is None and report.get("rtl_labels") is not None:
        rtl_labels = np.asarray(report["rtl_labels"], dtype=np.int64)
    else:
        rtl_labels = None
    acc = {"samples": S}
    y = None if labels is None else np.asarray(labels, dtype=np.int64)
    for name, pred in (("float", float_labels), ("fixed", golden_labels), ("rtl", rtl_labels)):
        acc[name] = (None if pred is None or y is None
                     else float(np.mean(np.asarray(pred) == y)))
    acc["rtl_agrees_with_golden"] = (None if rtl_labels is None
                                     else float(np.mean(rtl_labels == golden_labels)))
    classes = int(np.asarray(golden["logits"]).shape[1])
    truth = y if y is not None else golden_labels
    confusion = {"rows": "true class" if y is not None else "golden prediction",
                 "columns": "RTL prediction" if rtl_labels is not None else "golden prediction",
                 "classes": classes}
    confusion["matrix"] = _confusion(truth, rtl_labels if rtl_labels is not None
                                     else golden_labels, classes).tolist()
    confusion["golden_matrix"] = _confusion(truth, golden_labels, classes).tolist()
    per_layer = {row["layer"]: row for row in report.get("layers") or []}
    layers = []
    for l, layer in enumerate(inet.layers):
        row = {"layer": l, "kind": layer.kind,
               "shape": list(getattr(layer, "out_shape", ()) or ()),
               "neurons": None, "golden_rate": None, "rtl_rate": None,
               "saturations": {k: int(v) for k, v in res.saturations[l].items()},
               "compared": per_layer.get(l, {}).get("compared"),
               "mismatches": per_layer.get(l, {}).get("mismatches")}
        if f"spikes{l}" in golden:
            g = golden[f"spikes{l}"]
            row.update(neurons=int(g.shape[2]), golden_rate=float(g.mean()))
            if rtl is not None and f"spikes{l}" in rtl:
                row["rtl_rate"] = _rate(rtl[f"spikes{l}"])
        layers.append(row)
    stages, plan_cycles = _stage_cycles(inet, mapping, x_q, res, rtl)
    return {"accuracy": acc, "confusion": confusion, "layers": layers, "stages": stages,
            "plan_cycles_per_sample": plan_cycles.tolist(),
            "sim_cycles_per_image": report.get("cycles_per_image"),
            "first_mismatch_place": place_of(report.get("first_mismatch"), inet),
            "T": T, "samples": S}


# -- plots ----------------------------------------------------------------------------------

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _legend(ax, **kw):
    # Outside the axes, right of the data: a legend never covers a bar or a spike.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, borderaxespad=0, **kw)


def _timeline(a):
    """(T, S, N) -> (S*T, N): row = sample * T + t."""
    T, S = a.shape[:2]
    return np.asarray(a).transpose(1, 0, 2).reshape(S * T, -1)


def _figures(summary, inet, golden, rtl, title):
    plt = _plt()
    figs = {}
    lif = [row for row in summary["layers"] if row["neurons"] is not None]
    if lif:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        pos = np.arange(len(lif))
        ax.bar(pos - 0.2, [r["golden_rate"] for r in lif], 0.4, label="golden")
        ax.bar(pos + 0.2, [r["rtl_rate"] or 0.0 for r in lif], 0.4, label="RTL")
        ax.set_xticks(pos, [f"layer {r['layer']} ({r['kind']})" for r in lif], fontsize=8)
        ax.set_ylabel("spikes per neuron per timestep")
        ax.set_title(f"{title}: firing rate per LIF layer", fontsize=9)
        _legend(ax)
        fig.tight_layout()
        figs["firing_rates"] = fig
    stages = summary["stages"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    pos = np.arange(len(stages))
    ax.bar(pos - 0.2, [s["plan_cycles_per_sample"] for s in stages], 0.4, label="plan")
    sim = [s["sim_span_per_sample"] for s in stages]
    ax.bar(pos[[v is not None for v in sim]] + 0.2, [v for v in sim if v is not None], 0.4,
           label="simulation (output span,\nstalls included)")
    interval = summary["sim_cycles_per_image"]
    if interval:
        ax.axhline(interval, color="tab:red", ls="--", lw=1,
                   label=f"simulated interval\nbetween results ({interval:.0f})")
    ax.set_xticks(pos, [s["stage"] for s in stages], fontsize=8)
    ax.set_ylabel("cycles per sample")
    ax.set_title("cycles per sample by stage: plan (busy) vs simulation", fontsize=9)
    _legend(ax)
    fig.tight_layout()
    figs["stage_cycles"] = fig

    conf = np.asarray(summary["confusion"]["matrix"])
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.imshow(conf, cmap="Blues")
    for (i, j), v in np.ndenumerate(conf):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > conf.max() / 2 else "black")
    k = summary["confusion"]["classes"]
    ax.set_xticks(range(k + 1), [str(c) for c in range(k)] + ["none"], fontsize=7)
    ax.set_yticks(range(k), [str(c) for c in range(k)], fontsize=7)
    ax.set_xlabel(summary["confusion"]["columns"])
    ax.set_ylabel(summary["confusion"]["rows"])
    fig.tight_layout()
    figs["confusion"] = fig

    layers = [r["layer"] for r in lif]
    traces = {"T": summary["T"], "samples": summary["samples"], "row": "sample * T + t",
              "layers": {}}
    if not layers:
        return figs, traces
    rows = summary["samples"] * summary["T"]
    place = summary["first_mismatch_place"]
    focus_layer = (place["layer"] if place is not None and place["layer"] in layers
                   else layers[0])
    focus = None
    if place is not None and place.get("t") is not None:
        focus = place["sample"] * summary["T"] + place["t"]
    a, b = plot_window(rows, focus)
    span = f"rows {a}..{b - 1} of {rows}" if (a, b) != (0, rows) else f"all {rows} rows"
    fig, axes = plt.subplots(len(layers), 2, figsize=(10, 2.6 * len(layers) + 0.6),
                             sharex=True, squeeze=False)
    for ax_row, l in zip(axes, layers):
        g = _timeline(golden[f"spikes{l}"]).astype(bool)
        r = None if rtl is None or f"spikes{l}" not in rtl else _timeline(rtl[f"spikes{l}"])
        for ax, sp, name in ((ax_row[0], g, "golden"),
                             (ax_row[1], None if r is None else r == 1, "RTL")):
            if sp is None:
                ax.set_title(f"layer {l}: no RTL data", fontsize=8)
                ax.set_yticks([])
                continue
            # One pixel per (row, neuron): readable for a thousand neurons, no marker blobs.
            ax.imshow(sp[a:b].T, aspect="auto", interpolation="nearest", cmap="Greys",
                      origin="lower", vmin=0, vmax=1,
                      extent=(a - 0.5, b - 0.5, -0.5, sp.shape[1] - 0.5))
            ax.set_title(f"layer {l} {name}: {int(sp[a:b].sum())} spikes in {span}",
                         fontsize=8)
        ax_row[0].set_ylabel("neuron")
        if r is not None:
            diff = np.nonzero((r[a:b] >= 0) & ((r[a:b] == 1) != g[a:b]))
            if len(diff[0]):
                ax_row[1].plot(diff[0] + a, diff[1], "x", color="red", ms=5, label="differs")
                _legend(ax_row[1])
        traces["layers"][str(l)] = {
            "neurons": int(g.shape[1]),
            "golden_spikes": [[int(t), int(n)] for t, n in zip(*np.nonzero(g))],
            "rtl_spikes": None if r is None else
            [[int(t), int(n)] for t, n in zip(*np.nonzero(r == 1))]}
    for ax in axes[-1]:
        ax.set_xlabel("row (sample * T + t)")
    fig.suptitle(f"{title}: spike rasters, {span}", fontsize=10)
    fig.tight_layout()
    figs["spike_raster"] = fig

    l = focus_layer
    g_sp = _timeline(golden[f"spikes{l}"])
    g_v = _timeline(golden[f"v_pre{l}"])
    r_v = None if rtl is None or f"v_pre{l}" not in rtl else _timeline(rtl[f"v_pre{l}"])
    r_sp = None if rtl is None or f"spikes{l}" not in rtl else _timeline(rtl[f"spikes{l}"])
    neurons = _pick_neurons(g_sp.astype(bool), g_v, count=3)
    if place is not None and place["layer"] == l and place.get("neuron") is not None:
        neurons = sorted(set(neurons[:2]) | {int(place["neuron"])})
    layer = inet.layers[l]
    scale = float(layer.core().config.membrane.scale)
    th = getattr(layer, "thresholds", None)
    fig, axes = plt.subplots(len(neurons), 1, figsize=(10, 1.9 * len(neurons) + 0.9),
                             sharex=True, squeeze=False)
    x = np.arange(a, b)
    for ax, i in zip(axes[:, 0], neurons):
        ax.plot(x, g_v[a:b, i] / scale, "-", color="tab:blue", lw=1.2, label="golden v_pre")
        if r_v is not None:
            ok = r_sp[a:b, i] >= 0
            ax.plot(x[ok], r_v[a:b, i][ok] / scale, "o", ms=3, mfc="none", color="tab:orange",
                    label="RTL v_pre")
            fire = x[r_sp[a:b, i] == 1]
            top = ax.get_ylim()[1]
            ax.plot(fire, np.full(len(fire), top), "v", color="tab:red", ms=4,
                    label="RTL spike", clip_on=False)
        if th is not None and int(th.compare[i]) in (1, 2):     # GT, LT
            ax.axhline(th.theta_q[i] / scale, color="gray", ls="--", lw=0.8, label="theta")
        for s in range(-(-a // summary["T"]) * summary["T"], b, summary["T"]):
            ax.axvline(s - 0.5, color="#ddd", lw=0.6)
        ax.set_ylabel(f"neuron {i}", fontsize=8)
        _legend(ax)
    axes[-1, 0].set_xlabel("row (sample * T + t); grey lines: sample boundaries")
    fig.suptitle(f"{title}: layer {l} membranes, {span}", fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.84, top=1 - 0.45 / fig.get_figheight(),
                        bottom=0.55 / fig.get_figheight(), hspace=0.3)
    figs["membrane_traces"] = fig
    traces["membrane_layer"] = l
    traces["membrane_scale"] = scale
    traces["window"] = {"start_row": a, "stop_row": b, "rows": rows, "width": WINDOW}
    traces["layers"][str(l)]["membranes"] = {
        str(i): {"golden_v_pre": g_v[:, i].tolist(),
                 "rtl_v_pre": None if r_v is None else
                 [int(v) if ok >= 0 else None for v, ok in zip(r_v[:, i], r_sp[:, i])]}
        for i in neurons}
    return figs, traces


# -- tables ---------------------------------------------------------------------------------

def _pct(v):
    return "-" if v is None else f"{v:.2%}"


def _num(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def _tables(summary):
    """``[(id, caption, header, rows)]``: every table of the report, in order."""
    acc = summary["accuracy"]
    out = [("accuracy", f"Accuracy on the {acc['samples']} co-simulated samples",
            ["model", "accuracy", "agreement with golden"],
            [["float", _pct(acc["float"]), "-"],
             ["fixed (golden integer)", _pct(acc["fixed"]), "100.00%"],
             ["RTL", _pct(acc["rtl"]), _pct(acc["rtl_agrees_with_golden"])]])]
    conf = summary["confusion"]
    k = conf["classes"]
    m = conf["matrix"]
    out.append(("confusion", f"Confusion matrix: rows {conf['rows']}, columns "
                             f"{conf['columns']} ('none': no result)",
                [f"{conf['rows']} \\ {conf['columns']}"] + [str(c) for c in range(k)]
                + ["none"], [[str(i)] + [str(v) for v in m[i]] for i in range(k)]))
    rows = []
    for r in summary["layers"]:
        sat = ", ".join(f"{k} {v}" for k, v in r["saturations"].items()) or "-"
        rows.append([str(r["layer"]), r["kind"], "x".join(map(str, r["shape"])) or "-",
                     _num(r["neurons"], "d"), _num(r["golden_rate"], ".4f"),
                     _num(r["rtl_rate"], ".4f"), _num(r["compared"], ",d"),
                     _num(r["mismatches"], "d"), sat])
    out.append(("layers", "Per layer: firing rate (spikes per neuron per timestep), values "
                          "compared, mismatches, golden's saturation counts",
                ["layer", "kind", "output", "LIF neurons", "firing rate golden",
                 "firing rate RTL", "compared", "mismatches", "saturations (golden)"], rows))
    plan = summary["plan_cycles_per_sample"]
    rows = [[s["stage"], s["kind"], str(s["layer"]), str(s["lanes"]), str(s["beats"]),
             str(s["latency"]), _num(s["plan_cycles_per_sample"]),
             _num(s["sim_span_per_sample"]), _num(s["sim_cycles_per_sample"])]
            for s in summary["stages"]]
    rows.append(["network", "-", "-", "-", "-", "-",
                 _num(float(np.mean(plan)) if plan else None), "-",
                 _num(summary["sim_cycles_per_image"])])
    out.append(("stages", "Cycles per sample by stage: the plan's busy cycles (hdl.plan, "
                          "from golden's activity; the network: its busiest stage, per "
                          "sample), the simulated span of a dense stage's output (its "
                          "LIF array's first to last output beat of each timestep, summed "
                          "over T: the busy cycles plus any stall from the stages after) and "
                          "the simulated interval between consecutive samples (LIF: first "
                          "output beats; readout and network: results)",
                ["stage", "kind", "layer", "lanes", "beats", "latency",
                 "plan busy cycles/sample", "simulated output span/sample",
                 "simulated interval/sample"], rows))
    per = [[str(s), str(c)] for s, c in enumerate(plan)]
    out.append(("plan-per-sample", "Plan cycles of each sample (busiest stage)",
                ["sample", "plan cycles"], per))
    place = summary["first_mismatch_place"]
    if place is not None:
        keys = ["sample", "layer", "kind", "t", "neuron", "channel", "y", "x", "field",
                "expected", "got", "cycle"]
        out.append(("first-mismatch", "First mismatch (earliest cycle)", keys,
                    [["-" if place.get(k) is None else str(place[k]) for k in keys]]))
    return out


def _md_table(header, rows):
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _html_table(tid, caption, header, rows):
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return (f"<h2>{html.escape(caption)}</h2><table id='{tid}'><thead><tr>{head}</tr>"
            f"</thead><tbody>{body}</tbody></table>")


def _verdict(report):
    if report.get("mismatches") == 0 and report.get("first_mismatch") is None:
        return "PASS", f"{report.get('compared', 0):,} values compared, 0 mismatches"
    if report.get("mismatches") is None:
        return "GOLDEN ONLY", "no RTL run"
    return "FAIL", f"{report['mismatches']} mismatch(es); first at the place below"


def write_network_report(out_dir, report, inet, x, golden, rtl=None, *, mapping=None,
                         float_labels=None, labels=None, title="spikefold cosim",
                         summary_rows=(), md_head=None):
    """Write ``report.html`` and ``report.md`` (+ PNGs, ``traces.json``) into ``out_dir``.

    ``report``: the run's dict (``compared``, ``mismatches``, ``first_mismatch``,
    ``layers``, ``cycles_per_image``...); ``x``: the float inputs of the co-simulated
    samples; ``golden``/``rtl``: :func:`load_run`'s arrays; ``summary_rows``: extra
    ``(field, value)`` rows for the top table; ``md_head``: Markdown lines that replace
    the Markdown title (the demo's own summary). Returns the :func:`network_summary` dict
    with ``html``, ``markdown``, ``plots`` and ``traces`` (file names) added.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in _RUN_FILES:
        (out / name).unlink(missing_ok=True)
    summary = network_summary(report, inet, x, golden, rtl, mapping=mapping,
                              float_labels=float_labels, labels=labels)
    figs, traces = _figures(summary, inet, golden, rtl, title)
    pngs = {}
    for name, fig in figs.items():
        pngs[name] = _png(fig)
        (out / f"{name}.png").write_bytes(pngs[name])
    (out / "traces.json").write_text(json.dumps(traces) + "\n")
    verdict, detail = _verdict(report)
    top = [("verdict", f"{verdict}: {detail}")]
    top += [(k, v) for k, v in (
        ("model", report.get("model")), ("samples", summary["samples"]), ("T", inet.T),
        ("simulator", report.get("simulator")),
        ("lanes / in_lanes", _mapping_text(report, mapping)),
        ("values compared", report.get("compared")), ("mismatches", report.get("mismatches")),
        ("cycles per image (streaming)", _num(report.get("cycles_per_image"))),
        ("first-image latency (cycles)", report.get("latency_cycles_first")),
        ("simulated cycles", report.get("cycles")),
        ("simulation time (s)", _num(report.get("sim_s"))),
        ("build time (s)", _num(report.get("build_s")))) if v is not None]
    top += list(summary_rows)
    tables = _tables(summary)
    window = traces.get("window")
    note = ("" if window is None else
            f"Rasters and traces show rows {window['start_row']}..{window['stop_row'] - 1} "
            f"of {window['rows']} (row = sample * T + t); traces.json has them all.")
    md = list(md_head) if md_head is not None else [f"# {title}: {verdict}", ""]
    md += _md_table(["field", "value"], [[k, v] for k, v in top]) + [""]
    for tid, caption, header, rows in tables:
        md += [f"## {caption}", ""] + _md_table(header, rows) + [""]
    if note:
        md += [note, ""]
    for name in pngs:
        md += [f"## {CAPTIONS[name]}", "", f"![{name}]({name}.png)", ""]
    (out / "report.md").write_text("\n".join(md))
    color = {"PASS": "#1a7f37", "FAIL": "#cf222e"}.get(verdict, "#9a6700")
    head = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in top)
    body = "".join(_html_table(*t) for t in tables)
    imgs = "".join(
        f"<figure id='{name}'><img alt='{name}' src='data:image/png;base64,"
        f"{base64.b64encode(data).decode()}'><figcaption>{html.escape(CAPTIONS[name])}"
        f"</figcaption></figure>" for name, data in pngs.items())
    (out / "report.html").write_text(f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
h1 span{{color:{color}}} table{{border-collapse:collapse;margin-bottom:1em}}
th,td{{border:1px solid #ccc;padding:3px 8px;text-align:left}} th{{background:#f4f4f4}}
img{{max-width:100%}} figure{{margin:1.5em 0}} figcaption{{font-size:90%;color:#555}}
h2{{font-size:110%}}</style></head>
<body><h1>{html.escape(title)}: <span>{verdict}</span></h1>
<table id='summary'>{head}</table>{body}<p>{html.escape(note)}</p>{imgs}</body></html>
""")
    summary.update(html="report.html", markdown="report.md",
                   plots=sorted(f"{n}.png" for n in pngs), traces="traces.json")
    return summary


def _mapping_text(report, mapping):
    if mapping is not None:
        m = mapping.to_json()
    elif report.get("mapping"):
        m = report["mapping"]
    else:
        m = report
    if m.get("lanes") is None:
        return None
    return f"{list(m['lanes'])} / {m.get('in_lanes')}"
