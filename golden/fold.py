"""Fold trained normalizers into hardware parameters (real-valued, before quantization).

* MPBN -> a per-neuron firing rule: threshold ``theta`` and comparison ``Compare``
  (``GT``: fire iff ``u > theta``; ``LT``: fire iff ``u < theta``; ``NEVER``/``ALWAYS``
  for ``gamma == 0``). Exact for every sign of gamma (see ../shared/reference/normalizers.md).
* tdBN -> folded weights and bias (it is one affine map shared over time).
* BNTT, TEBN, TAB, temporal homeostatic norm -> per-timestep affine tables
  ``a[t, c] * x + b[t, c]`` on the input current.
* HomeostaticNorm -> one affine map.

Nothing here rounds to fixed point; :mod:`golden.quantize` does that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .fixed import check_finite

__all__ = [
    "Compare", "ThresholdRule", "AffineRule",
    "fold_mpbn", "affine_from_bn", "fold_into_weights", "check_bn_params",
]


class Compare(enum.IntEnum):
    """Comparison a neuron's comparator makes; the hardware stores this 2-bit code."""

    GT = 0      #: fire iff membrane > theta   (gamma > 0)
    LT = 1      #: fire iff membrane < theta   (gamma < 0, the comparison flips)
    NEVER = 2   #: never fire                  (gamma = 0 and beta <= v_th, or theta off-grid)
    ALWAYS = 3  #: always fire                 (gamma = 0 and beta > v_th, or theta off-grid)


@dataclass(frozen=True)
class ThresholdRule:
    """Per-neuron firing rule: ``theta`` (float64) and ``compare`` (int8 ``Compare`` codes).

    For ``NEVER``/``ALWAYS`` neurons ``theta`` is 0 (it is not used by the comparator).
    """

    theta: np.ndarray
    compare: np.ndarray

    def __post_init__(self):
        theta = np.asarray(self.theta, dtype=np.float64)
        compare = np.asarray(self.compare, dtype=np.int8)
        if theta.shape != compare.shape:
            raise ValueError(f"theta has shape {theta.shape} but compare has {compare.shape}")
        check_finite("theta", theta)
        if not np.all(np.isin(compare, [c.value for c in Compare])):
            raise ValueError(f"compare holds codes outside {[c.value for c in Compare]}")
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "compare", compare)

    @property
    def shape(self):
        return self.theta.shape

    def fires(self, u):
        """Spike decision for membrane ``u`` (broadcast against the rule's shape)."""
        u = np.asarray(u, dtype=np.float64)
        return np.select(
            [self.compare == Compare.GT, self.compare == Compare.LT,
             self.compare == Compare.ALWAYS],
            [u > self.theta, u < self.theta, np.ones_like(u, dtype=bool)],
            default=np.zeros_like(u, dtype=bool))

    def expand(self, neuron_shape):
        """Broadcast a channel-wise rule ``(C,)`` to neurons ``(C, H, W)`` (or any shape
        whose first axis is the channel)."""
        neuron_shape = tuple(neuron_shape)
        if self.theta.shape == neuron_shape:
            return self
        if self.theta.ndim != 1 or neuron_shape[0] != self.theta.shape[0]:
            raise ValueError(
                f"cannot expand a rule of shape {self.theta.shape} to neurons {neuron_shape}")
        extra = (1,) * (len(neuron_shape) - 1)
        return ThresholdRule(
            np.broadcast_to(self.theta.reshape(-1, *extra), neuron_shape).copy(),
            np.broadcast_to(self.compare.reshape(-1, *extra), neuron_shape).copy())

    def flat(self):
        return ThresholdRule(self.theta.ravel(), self.compare.ravel())


@dataclass(frozen=True)
class AffineRule:
    """Per-timestep affine on the input current: ``x -> a[t, c] * x + b[t, c]``."""

    a: np.ndarray
    b: np.ndarray

    def __post_init__(self):
        a = check_finite("a", self.a)
        b = check_finite("b", self.b)
        if a.ndim == 1:
            a = a[None, :]
        if b.ndim == 1:
            b = b[None, :]
        if a.ndim != 2 or a.shape != b.shape:
            raise ValueError(f"a and b must both have shape (T, C); got {a.shape} and {b.shape}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)

    @property
    def T(self):
        return self.a.shape[0]

    @property
    def channels(self):
        return self.a.shape[1]

    def apply(self, x, t):
        """Apply step ``t`` to ``x`` of layout (N, C, ...) (channel axis 1)."""
        x = np.asarray(x, dtype=np.float64)
        extra = (1,) * (x.ndim - 2)
        a = self.a[t].reshape(-1, *extra)
        b = self.b[t].reshape(-1, *extra)
        return a * x + b


def check_bn_params(*, gamma, beta, running_mean, running_var, eps):
    """Validate batch-norm parameters; return them as float64 arrays of one shape."""
    gamma = check_finite("gamma", gamma)
    beta = check_finite("beta", beta)
    running_mean = check_finite("running_mean", running_mean)
    running_var = check_finite("running_var", running_var)
    eps = float(check_finite("eps", eps))
    if eps < 0:
        raise ValueError(f"eps must be >= 0, not {eps!r}")
    if np.any(running_var < 0):
        index = tuple(int(i) for i in np.argwhere(running_var < 0)[0])
        raise ValueError(
            f"running_var must be >= 0, but running_var{list(index)} = "
            f"{float(running_var[index])!r}")
    shapes = {gamma.shape, beta.shape, running_mean.shape, running_var.shape}
    if len(shapes) != 1:
        raise ValueError(
            f"gamma, beta, running_mean and running_var must share one shape; got "
            f"gamma {gamma.shape}, beta {beta.shape}, running_mean {running_mean.shape}, "
            f"running_var {running_var.shape}")
    if np.any(running_var + eps <= 0):
        raise ValueError("running_var + eps must be > 0 for every neuron (set eps > 0)")
    return gamma, beta, running_mean, running_var, eps


def fold_mpbn(*, gamma, beta, running_mean, running_var, eps=1e-5, v_th=0.5):
    """Fold eval-mode MPBN before a comparator ``MPBN(u) > v_th`` into a per-neuron rule.

    With ``s = sqrt(running_var + eps)`` and ``theta = running_mean + (v_th - beta) * s / gamma``:
    ``gamma > 0`` fires iff ``u > theta``; ``gamma < 0`` iff ``u < theta``; ``gamma == 0``
    always when ``beta > v_th``, else never. Parameters of shape ``(C,)`` give a
    channel-wise rule, ``(C, H, W)`` an element-wise one (paper Eq. 13).
    """
    gamma, beta, mean, var, eps = check_bn_params(
        gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var, eps=eps)
    v_th = float(check_finite("v_th", v_th))
    s = np.sqrt(var + eps)
    safe = np.where(gamma == 0, 1.0, gamma)
    theta = mean + (v_th - beta) * s / safe
    compare = np.where(gamma > 0, Compare.GT, Compare.LT).astype(np.int8)
    constant = gamma == 0
    compare[constant] = np.where(beta[constant] > v_th, Compare.ALWAYS, Compare.NEVER)
    theta = np.where(constant, 0.0, theta)
    if not np.all(np.isfinite(theta)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(theta))[0])
        raise ValueError(
            f"folded threshold overflows float64 at neuron {list(index)}: gamma = "
            f"{float(gamma[index])!r} is too close to zero")
    return ThresholdRule(theta, compare)


def affine_from_bn(*, gamma, beta, running_mean, running_var, eps, scale=1.0):
    """Eval-mode BN ``scale * (gamma * (x - mean) / sqrt(var + eps) + beta)`` as ``a*x + b``.

    All arguments broadcast (e.g. ``(T, C)`` tables, or ``scale`` of shape ``(T, 1)``).
    """
    gamma, beta, mean, var, eps = check_bn_params(
        gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var, eps=eps)
    scale = check_finite("scale", scale)
    s = np.sqrt(var + eps)
    a = scale * gamma / s
    b = scale * (beta - gamma * mean / s)
    return a, b


def fold_into_weights(weight, bias, a, b):
    """Fold a per-output-channel affine ``a*y + b`` after ``y = W x + bias`` into ``W, bias``.

    ``weight`` has the output channel first (Linear ``(C_out, C_in)``, Conv ``(C_out, ...)``);
    ``bias`` may be ``None``.
    """
    weight = check_finite("weight", weight)
    a = check_finite("a", a)
    b = check_finite("b", b)
    if a.shape != (weight.shape[0],) or b.shape != (weight.shape[0],):
        raise ValueError(
            f"a and b must have shape ({weight.shape[0]},) to match weight {weight.shape}; "
            f"got {a.shape} and {b.shape}")
    bias = np.zeros(weight.shape[0]) if bias is None else check_finite("bias", bias)
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), not {bias.shape}")
    extra = (1,) * (weight.ndim - 1)
    return weight * a.reshape(-1, *extra), a * bias + b
