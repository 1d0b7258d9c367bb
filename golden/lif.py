"""Floating-point LIF neuron with the MPBN paper's semantics (Eqs. 1, 2, 7, 8).

::

    u_pre[t] = tau * u[t-1] + c[t]
    o[t]     = norm(u_pre[t]) > v_th          (strict; norm is MPBN or the identity;
                                               fire=">=" compares with >= instead)
    u[t]     = u_pre[t] * (1 - o[t])          hard reset of the RAW membrane
             = u_pre[t] - theta * o[t]        subtract reset (option)

With a folded :class:`~golden.fold.ThresholdRule` the comparator is the rule's instead;
``fire=">="`` turns its ``GT`` into ``>=`` and its ``LT`` into ``<=`` (``NEVER``/``ALWAYS``
unchanged).
"""

from __future__ import annotations

import numpy as np

from .fixed import check_finite
from .fold import Compare, ThresholdRule

__all__ = ["FIRES", "lif", "lif_folded"]

#: Comparators: spikefold's strict ``>`` and SpikingJelly's ``>=``.
FIRES = (">", ">=")


def _check(c, tau, reset, fire=">"):
    if fire not in FIRES:
        raise ValueError(f"fire must be one of {FIRES}, not {fire!r}")
    c = check_finite("c", c)
    if c.ndim < 2:
        raise ValueError(f"c must have shape (T, ...) with at least 2 axes, not {c.shape}")
    tau = float(check_finite("tau", tau))
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], not {tau!r}")
    if reset not in ("zero", "subtract"):
        raise ValueError(f"reset must be 'zero' or 'subtract', not {reset!r}")
    return c, tau


def lif(c, *, tau=0.25, v_th=0.5, reset="zero", norm=None, fire=">"):
    """Run a LIF layer over input currents ``c`` of shape ``(T, ...)``.

    Parameters
    ----------
    v_th : float or array
        Threshold, broadcast against one timestep of ``c`` (per-neuron thresholds allowed).
    norm : callable or None
        Applied to ``u_pre`` before the comparator only (MPBN); the raw membrane is carried.
    reset : {"zero", "subtract"}
        Subtract reset removes ``v_th`` from the raw membrane.
    fire : {">", ">="}
        Fire on ``drive > v_th`` (spikefold) or ``drive >= v_th`` (SpikingJelly).

    Returns
    -------
    spikes : bool array like ``c``
    u_pre : float array like ``c`` (membrane before reset)
    """
    c, tau = _check(c, tau, reset, fire)
    v_th = check_finite("v_th", v_th)
    u = np.zeros(c.shape[1:])
    spikes = np.zeros(c.shape, dtype=bool)
    u_pre_all = np.zeros(c.shape)
    for t in range(c.shape[0]):
        u_pre = tau * u + c[t]
        drive = u_pre if norm is None else norm(u_pre)
        o = drive > v_th if fire == ">" else drive >= v_th
        u = np.where(o, 0.0, u_pre) if reset == "zero" else u_pre - np.where(o, v_th, 0.0)
        spikes[t] = o
        u_pre_all[t] = u_pre
    return spikes, u_pre_all


def lif_folded(c, rule, *, tau=0.25, reset="zero", fire=">"):
    """Run a LIF layer whose comparator is a folded :class:`ThresholdRule`.

    The rule broadcasts against one timestep of ``c`` (e.g. rule ``(C, H, W)`` for ``c`` of
    shape ``(T, N, C, H, W)``, or a channel-wise rule ``(C,)`` for ``c`` of ``(T, N, C)``).
    Subtract reset removes the neuron's ``theta`` (0 for NEVER/ALWAYS neurons).
    """
    if not isinstance(rule, ThresholdRule):
        raise TypeError(f"rule must be a ThresholdRule, not {type(rule).__name__}")
    c, tau = _check(c, tau, reset, fire)
    u = np.zeros(c.shape[1:])
    spikes = np.zeros(c.shape, dtype=bool)
    u_pre_all = np.zeros(c.shape)
    compares = (rule.compare == Compare.GT) | (rule.compare == Compare.LT)
    for t in range(c.shape[0]):
        u_pre = tau * u + c[t]
        o = rule.fires(u_pre)
        if fire == ">=":
            o = o | (compares & (u_pre == rule.theta))
        u = np.where(o, 0.0, u_pre) if reset == "zero" else u_pre - np.where(o, rule.theta, 0.0)
        spikes[t] = o
        u_pre_all[t] = u_pre
    return spikes, u_pre_all
