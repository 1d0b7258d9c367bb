"""``spikefold demo``: the main job on the embedded default, with a short summary.

Stages (each printed as it runs): fold a built-in element-wise MPBN layer with gamma of
every sign -> check the fixed-point fold exhaustively on the membrane grid -> run the
bit-exact core model against the float LIF with MPBN before the comparator.
"""

from __future__ import annotations

import time

import numpy as np

from golden.core import CoreModel
from golden.examples import example_core, example_currents, example_mpbn_params
from golden.fixed import Fixed
from golden.fold import Compare, fold_mpbn
from golden.lif import lif
from golden.quantize import ThresholdTable, quantize_rule


def add_arguments(parser):
    parser.add_argument("--neurons", type=int, default=256, help="neurons of the example layer")
    parser.add_argument("--steps", type=int, default=64, help="timesteps to simulate")
    parser.add_argument("--membrane", type=Fixed.parse, default=Fixed(16, 8),
                        help="membrane format bits.frac (default 16.8)")
    parser.add_argument("--seed", type=int, default=0)


def _stage(text):
    print(f"==> {text}", flush=True)


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


def run(args):
    t0 = time.perf_counter()
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

    print()
    print("summary")
    print(f"  fold mismatches on the {args.membrane} grid : {mismatches} of {checked:,}")
    print(f"  fixed-point vs float spikes          : {agree:.4%} agree")
    print(f"  time                                 : {time.perf_counter() - t0:.1f} s")
    return 1 if mismatches else 0
