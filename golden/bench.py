"""``spikefold bench``: throughput of the bit-exact core model next to plain float NumPy.

Both sides do the same work in the same run: ``steps`` timesteps of ``neurons`` LIF
neurons with per-neuron folded thresholds. The integer side is
:class:`golden.core.CoreModel` (with its input checks and saturation); the float side is the
bare ``u = tau * u + c; spike = u > theta; u = where(spike, 0, u)`` loop. Each is timed
``repeat`` times and the best time counts. Figures are neuron-updates per second.
"""

from __future__ import annotations

import time

import numpy as np

from .examples import example_core, example_currents

__all__ = ["add_arguments", "run", "measure"]


def add_arguments(parser):
    parser.add_argument("--neurons", type=int, default=65536, metavar="N",
                        help="neurons per timestep (default: 65536)")
    parser.add_argument("--steps", type=int, default=16, metavar="T",
                        help="timesteps, one sample (default: 16)")
    parser.add_argument("--repeat", type=int, default=5, metavar="R",
                        help="timed runs of each side; the best counts (default: 5)")


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"--{name} must be a positive integer, not {value!r}")
    return value


def _best(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(neurons=65536, steps=16, repeat=5, seed=0):
    """Time both sides; returns a dict of seconds and neuron-updates per second."""
    neurons = _positive("neurons", neurons)
    steps = _positive("steps", steps)
    repeat = _positive("repeat", repeat)
    core = example_core(neurons, T=steps, seed=seed)
    cfg = core.config
    currents_q = example_currents(cfg, steps, seed=seed)
    # The float side sees the same currents and the folded thresholds (as plain u > theta).
    currents = cfg.current.to_float(currents_q)
    theta = cfg.membrane.to_float(core.thresholds.theta_q)
    tau = cfg.tau

    def integer():
        model = core.model()
        for c in currents_q:
            model.step(c)

    def floating():
        u = np.zeros(neurons)
        for c in currents:
            u = tau * u + c
            spikes = u > theta
            u = np.where(spikes, 0.0, u)

    updates = neurons * steps
    t_int = _best(integer, repeat)
    t_float = _best(floating, repeat)
    return {
        "neurons": neurons, "steps": steps, "repeat": repeat,
        "core_seconds": t_int, "float_seconds": t_float,
        "core_updates_per_s": updates / t_int, "float_updates_per_s": updates / t_float,
        "ratio": t_int / t_float,
    }


def run(args):
    r = measure(args.neurons, args.steps, args.repeat)
    print(f"work: {r['neurons']} neurons x {r['steps']} timesteps "
          f"(best of {r['repeat']} runs each)")
    for label, key in (("bit-exact core model (int64)", "core"),
                       ("plain float NumPy LIF", "float")):
        print(f"  {label + ':':30s} {r[key + '_updates_per_s'] / 1e6:9.1f} M neuron-updates/s"
              f"  ({r[key + '_seconds'] * 1e3:.1f} ms)")
    print(f"  ratio: the core model takes {r['ratio']:.2f}x the float LIF's time")
    return 0
