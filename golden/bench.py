"""``spikefold bench``: throughput of the bit-exact core model next to plain float NumPy.

Both sides do the same work in the same run: ``steps`` timesteps of ``neurons`` LIF
neurons of the example's folded MPBN layer, whose rule compares per neuron with ``GT``,
``LT``, ``NEVER`` or ``ALWAYS``. The integer side is :class:`golden.core.CoreModel` (with
its input checks and saturation); the float side is :func:`golden.lif.lif_folded` with the
same folded rule in float (``u = tau * u + c``, the rule's comparison, zero reset). Each is
timed ``repeat`` times and the best time counts. Figures are neuron-updates per second; the
spike agreement of the two sides shows they compute the same thing (it differs only where
fixed-point rounding moves a membrane across its threshold).
"""

from __future__ import annotations

import os
import time

import numpy as np

from .examples import example_core, example_currents, example_mpbn_params
from .fold import fold_mpbn
from .lif import lif_folded

#: The example core's firing threshold (:func:`golden.examples.example_core`'s default).
V_TH = 0.5

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


#: Bytes per neuron-timestep the bench holds at once (currents int64 + float, the float
#: side's membranes and spikes, both sides' spikes), for the refusal below.
_BYTES_PER_UPDATE = 40


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_size(neurons, steps, memory=None):
    """Refuse a bench that would need more than half of the machine's memory, up front."""
    memory = _physical_memory() if memory is None else memory
    need = _BYTES_PER_UPDATE * neurons * steps
    if memory and need > memory / 2:
        raise ValueError(f"--neurons {neurons:,} x --steps {steps:,} needs about "
                         f"{need / 1e9:,.1f} GB, more than half of this machine's "
                         f"{memory / 1e9:,.1f} GB of memory")


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
    check_size(neurons, steps)
    core = example_core(neurons, T=steps, seed=seed, v_th=V_TH)
    cfg = core.config
    currents_q = example_currents(cfg, steps, seed=seed)
    # The float side sees the same currents and the same folded rule, in float.
    currents = cfg.current.to_float(currents_q)
    rule = fold_mpbn(v_th=V_TH, **example_mpbn_params(neurons, seed))
    out = {}

    def integer():
        model = core.model()
        out["core"] = np.stack([model.step(c).spikes for c in currents_q])

    def floating():
        out["float"], _ = lif_folded(currents, rule, tau=cfg.tau, reset=cfg.reset)

    updates = neurons * steps
    t_int = _best(integer, repeat)
    t_float = _best(floating, repeat)
    return {
        "neurons": neurons, "steps": steps, "repeat": repeat,
        "core_seconds": t_int, "float_seconds": t_float,
        "core_updates_per_s": updates / t_int, "float_updates_per_s": updates / t_float,
        "ratio": t_int / t_float,
        "spike_agreement": float(np.mean(out["core"] == out["float"])),
    }


def run(args):
    r = measure(args.neurons, args.steps, args.repeat)
    print(f"work: {r['neurons']} neurons x {r['steps']} timesteps "
          f"(best of {r['repeat']} runs each)")
    for label, key in (("bit-exact core model (int64)", "core"),
                       ("float NumPy LIF, folded rule", "float")):
        print(f"  {label + ':':30s} {r[key + '_updates_per_s'] / 1e6:9.1f} M neuron-updates/s"
              f"  ({r[key + '_seconds'] * 1e3:.1f} ms)")
    print(f"  ratio: the core model takes {r['ratio']:.2f}x the float LIF's time")
    print(f"  spike agreement core vs float: {r['spike_agreement']:.4%}")
    return 0
