"""Built-in examples: a folded MPBN layer with every kind of neuron, and its stimulus.

Used by ``spikefold demo``/``verilog``/``cosim``/``build`` when no model file is given.
"""

from __future__ import annotations

import numpy as np

from .core import CoreConfig
from .corefile import FoldedCore
from .fixed import Fixed
from .fold import AffineRule, fold_mpbn
from .quantize import quantize_affine, quantize_rule

__all__ = ["example_mpbn_params", "example_core", "example_currents"]


def example_mpbn_params(neurons, seed=0):
    """Random trained-looking element-wise MPBN parameters with gamma > 0, < 0 and = 0."""
    rng = np.random.default_rng(seed)
    gamma = rng.normal(1.0, 0.5, neurons)
    gamma[rng.random(neurons) < 0.2] *= -1.0          # negative gamma: comparison flips
    gamma[rng.random(neurons) < 0.05] = 0.0           # always/never neurons
    return dict(
        gamma=gamma,
        beta=rng.normal(0.0, 0.5, neurons),
        running_mean=rng.normal(0.3, 0.5, neurons),
        running_var=rng.uniform(0.05, 2.0, neurons),
        eps=1e-5,
    )


def example_core(neurons=64, *, T=8, membrane=Fixed(16, 8), current=None, threshold=None,
                 tau=0.25, tau_bits=8, reset="zero", affine=False, channels=None,
                 scale=Fixed(16, 12), v_th=0.5, seed=0):
    """A folded MPBN core of ``neurons`` neurons (channel-free element-wise MPBN).

    With ``affine`` a BNTT-like per-timestep table is included.
    """
    current = membrane if current is None else current
    channels = (4 if neurons % 4 == 0 else 1) if channels is None else channels
    config = CoreConfig(neurons=neurons, T=T, current=current, membrane=membrane,
                        threshold=threshold, tau=tau, tau_bits=tau_bits, reset=reset,
                        affine=affine, channels=channels, scale=scale)
    rule = fold_mpbn(v_th=v_th, **example_mpbn_params(neurons, seed))
    thresholds = quantize_rule(rule, config.membrane, config.threshold)
    table = None
    if affine:
        rng = np.random.default_rng(seed + 1)
        limit = min(2.0, scale.max_value)
        a = np.clip(rng.normal(1.0, 0.4, (T, channels)), -limit, limit)
        b = np.clip(rng.normal(0.0, 0.25, (T, channels)), membrane.min_value, membrane.max_value)
        table = quantize_affine(AffineRule(a, b), config.scale, config.membrane)
    return FoldedCore(config, thresholds, table)


def example_currents(config, steps, seed=0, scale=0.6):
    """Random input currents (integers of ``config.current``), shape ``(steps, N)``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.2, scale, (steps, config.neurons))
    return config.current.quantize(x)
