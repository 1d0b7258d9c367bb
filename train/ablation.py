"""The normalizer ablation: same architecture and seeds, one row per method.

``spikefold train --ablation`` runs it and prints the Markdown table: test accuracy (float,
eval mode) as mean ± sample standard deviation over the seeds, min..max, and the 16-bit
bit-exact accuracy of the same models (formats calibrated on the training split).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

from golden.calibrate import calibrate, evaluate

from .data import PIXEL_SCALE, load_digits_split
from .export import to_network
from .loop import TrainConfig, train
from .modules import METHODS

__all__ = ["run_ablation", "ablation_markdown"]


def run_ablation(base=None, methods=METHODS, seeds=(0, 1, 2), bits=16, log=None):
    """Train every method with every seed; returns a list of row dicts."""
    base = TrainConfig() if base is None else base
    data = load_digits_split()
    xtr, _, xte, yte = data
    rows = []
    for method in methods:
        floats, fixeds, seconds = [], [], []
        for seed in seeds:
            result = train(replace(base, method=method, seed=seed), data)
            network = to_network(result.model)
            formats = calibrate(network, xtr * PIXEL_SCALE, bits=bits)
            report = evaluate(network, formats, xte * PIXEL_SCALE, yte)
            floats.append(result.test_accuracy)
            fixeds.append(report.fixed_accuracy)
            seconds.append(result.seconds)
            if log is not None:
                log(f"{method:22s} seed {seed}: float {result.test_accuracy:.2%}, "
                    f"fixed {report.fixed_accuracy:.2%}, {result.seconds:.1f} s")
        rows.append({"method": method, "float": floats, "fixed": fixeds, "seconds": seconds})
    return rows


def _mean_sd(values):
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} ± {100 * sd:.2f}"


def ablation_markdown(rows, base=None, seeds=(0, 1, 2), bits=16, seconds=None):
    base = TrainConfig() if base is None else base
    if base.arch == "conv":
        net = (f"conv SNN (channels {list(base.channels)}, pooling {base.pool} after "
               f"{[i for i, p in enumerate(base.pools) if p]}, dense readout)")
    else:
        net = "MLP " + "-".join(str(s) for s in (64, *base.hidden, 10))
    lines = [
        f"Digits (sklearn, stratified 70/30 split, seed 0), {net}, T = {base.T}, "
        f"tau = {base.tau}, v_th = {base.v_th}, Adam lr {base.lr} (cosine), batch "
        f"{base.batch}, {base.epochs} epochs, seeds {list(seeds)}; mean ± sd over seeds.",
        "",
        f"| method | test acc. float (%) | min..max (%) | test acc. {bits}-bit fixed (%) "
        "| train time / run (s) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {_mean_sd(row['float'])} | {100 * min(row['float']):.2f}.."
            f"{100 * max(row['float']):.2f} | {_mean_sd(row['fixed'])} | "
            f"{statistics.fmean(row['seconds']):.1f} |")
    if seconds is not None:
        lines += ["", f"Total wall time {seconds:.0f} s."]
    return "\n".join(lines)


def timed_ablation(base=None, methods=METHODS, seeds=(0, 1, 2), bits=16, log=None):
    t0 = time.perf_counter()
    rows = run_ablation(base, methods, seeds, bits, log)
    return ablation_markdown(rows, base, seeds, bits, time.perf_counter() - t0)
