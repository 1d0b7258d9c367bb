"""Quantize folded rules and tables to the integers the hardware stores.

Thresholds are quantized so that the integer comparison equals the real comparison on
the membrane grid (value ``q / 2**F``):

* ``u > theta``  <=>  ``q > floor(theta * 2**F)``;
* ``u < theta``  <=>  ``q < ceil(theta * 2**F)``;
* ``u >= theta`` <=>  ``q > ceil(theta * 2**F) - 1`` (``fire=">="``, SpikingJelly);
* ``u <= theta`` <=>  ``q < floor(theta * 2**F) + 1`` (an ``LT`` rule under ``fire=">="``);
* a threshold beyond the membrane's range becomes ``NEVER``/``ALWAYS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import Fixed, round_half_up
from .fold import AffineRule, Compare, ThresholdRule

__all__ = ["ThresholdTable", "AffineTable", "quantize_rule", "quantize_affine"]


@dataclass(frozen=True)
class ThresholdTable:
    """Integer per-neuron comparator contents: ``theta_q`` (int64) and ``compare`` (int8)."""

    theta_q: np.ndarray
    compare: np.ndarray

    def __post_init__(self):
        theta_q = np.asarray(self.theta_q)
        compare = np.asarray(self.compare)
        if theta_q.ndim != 1 or theta_q.shape != compare.shape:
            raise ValueError(
                f"theta_q and compare must be 1-D of one length; got {theta_q.shape} and "
                f"{compare.shape}")
        if not np.issubdtype(theta_q.dtype, np.integer):
            raise ValueError(f"theta_q must hold integers, not {theta_q.dtype}")
        if not np.all(np.isin(compare, [c.value for c in Compare])):
            bad = compare[~np.isin(compare, [c.value for c in Compare])][0]
            raise ValueError(f"compare holds {int(bad)}, not a Compare code 0..3")
        object.__setattr__(self, "theta_q", theta_q.astype(np.int64))
        object.__setattr__(self, "compare", compare.astype(np.int8))

    def __len__(self):
        return len(self.theta_q)

    def fires(self, v_q):
        """Integer comparator: spike decisions for membranes ``v_q`` (shape ``(..., N)``)."""
        v_q = np.asarray(v_q, dtype=np.int64)
        c = self.compare
        return ((c == Compare.ALWAYS)
                | ((c == Compare.GT) & (v_q > self.theta_q))
                | ((c == Compare.LT) & (v_q < self.theta_q)))

    def check(self, threshold_fmt, name="thresholds"):
        """Raise ``ValueError`` when a ``theta_q`` does not fit ``threshold_fmt``."""
        bad = threshold_fmt.overflows(self.theta_q)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(
                f"{name}: theta_q[{i}] = {int(self.theta_q[i])} does not fit the threshold "
                f"format {threshold_fmt} ({threshold_fmt.min_int}..{threshold_fmt.max_int})")
        return self


@dataclass(frozen=True)
class AffineTable:
    """Integer per-timestep affine: ``a_q`` in the scale format, ``b_q`` on the membrane grid.

    Both have shape ``(T, C)``.
    """

    a_q: np.ndarray
    b_q: np.ndarray

    def __post_init__(self):
        a_q = np.asarray(self.a_q)
        b_q = np.asarray(self.b_q)
        if a_q.ndim != 2 or a_q.shape != b_q.shape:
            raise ValueError(f"a_q and b_q must both be (T, C); got {a_q.shape} and {b_q.shape}")
        for name, arr in (("a_q", a_q), ("b_q", b_q)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{name} must hold integers, not {arr.dtype}")
        object.__setattr__(self, "a_q", a_q.astype(np.int64))
        object.__setattr__(self, "b_q", b_q.astype(np.int64))

    @property
    def T(self):
        return self.a_q.shape[0]

    @property
    def channels(self):
        return self.a_q.shape[1]

    def check(self, scale_fmt, offset_fmt):
        for name, arr, fmt in (("a_q", self.a_q, scale_fmt), ("b_q", self.b_q, offset_fmt)):
            bad = fmt.overflows(arr)
            if np.any(bad):
                index = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"affine {name}[t={index[0]}, c={index[1]}] = {int(arr[index])} does not "
                    f"fit the format {fmt} ({fmt.min_int}..{fmt.max_int})")
        return self


def quantize_rule(rule, membrane, threshold=None, fire=">"):
    """Quantize a :class:`ThresholdRule` for a membrane of format ``membrane``.

    ``threshold`` (default: ``membrane``) is the stored threshold format; it must have the
    membrane's fractional bits. A threshold inside the membrane's range that the threshold
    format cannot hold raises ``ValueError``; one beyond the membrane's range becomes
    ``NEVER`` or ``ALWAYS`` (exactly what the comparison would do on saturated membranes).
    ``fire=">="`` quantizes the rule's ``GT`` as ``>=`` and its ``LT`` as ``<=`` (the stored
    comparator stays ``GT``/``LT``: only ``theta_q`` moves).
    """
    if fire not in (">", ">="):
        raise ValueError(f"fire must be '>' or '>=', not {fire!r}")
    if not isinstance(rule, ThresholdRule):
        raise TypeError(f"rule must be a ThresholdRule, not {type(rule).__name__}")
    threshold = membrane if threshold is None else threshold
    if threshold.frac != membrane.frac:
        raise ValueError(
            f"threshold format {threshold} must have the membrane's {membrane.frac} "
            f"fractional bits")
    rule = rule.flat()
    s = rule.theta * membrane.scale
    compare = rule.compare.copy()
    gt = compare == Compare.GT
    lt = compare == Compare.LT
    # Clip before converting so that huge thresholds cannot overflow int64.
    lo, hi = membrane.min_int - 2, membrane.max_int + 2
    theta_q = np.zeros(len(s), dtype=np.int64)
    if fire == ">":
        theta_q[gt] = np.clip(np.floor(s[gt]), lo, hi).astype(np.int64)
        theta_q[lt] = np.clip(np.ceil(s[lt]), lo, hi).astype(np.int64)
    else:
        theta_q[gt] = np.clip(np.ceil(s[gt]) - 1, lo, hi).astype(np.int64)
        theta_q[lt] = np.clip(np.floor(s[lt]) + 1, lo, hi).astype(np.int64)
    # q > theta_q for q in [min, max]: never when theta_q >= max, always when theta_q < min.
    compare[gt & (theta_q >= membrane.max_int)] = Compare.NEVER
    compare[gt & (theta_q < membrane.min_int)] = Compare.ALWAYS
    # q < theta_q: never when theta_q <= min, always when theta_q > max.
    compare[lt & (theta_q <= membrane.min_int)] = Compare.NEVER
    compare[lt & (theta_q > membrane.max_int)] = Compare.ALWAYS
    constant = (compare == Compare.NEVER) | (compare == Compare.ALWAYS)
    theta_q[constant] = 0
    return ThresholdTable(theta_q, compare).check(threshold)


def quantize_affine(rule, scale, offset):
    """Quantize an :class:`AffineRule` (round to nearest) without saturating.

    ``scale`` is the format of ``a``; ``offset`` (the membrane format) that of ``b``.
    A coefficient that does not fit raises ``ValueError`` naming it.
    """
    if not isinstance(rule, AffineRule):
        raise TypeError(f"rule must be an AffineRule, not {type(rule).__name__}")
    a_q = _quantize_table(rule.a, scale, "a")
    b_q = _quantize_table(rule.b, offset, "b")
    return AffineTable(a_q, b_q)


def _quantize_table(values, fmt: Fixed, name):
    q = round_half_up(values * fmt.scale)
    bad = (q < fmt.min_int) | (q > fmt.max_int)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"affine {name}[t={index[0]}, c={index[1]}] = {float(values[index])!r} does not "
            f"fit the fixed-point format {fmt} (range {fmt.min_value!r} .. {fmt.max_value!r})")
    return q.astype(np.int64)
