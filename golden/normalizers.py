"""SNN batch normalizers as NumPy classes, with the sc_neurocore tutorial's names and calls.

The semantics are the official methods' (../shared/reference/normalizers.md), with PyTorch's
batch-norm conventions everywhere:

* training mode, per channel over the method's reduce axes: ``mu = mean(x)``,
  ``var_b = mean((x - mu)**2)`` (biased) normalizes, ``y = gamma * (x - mu) /
  sqrt(var_b + eps) + beta`` (eps inside the sqrt);
* one running-statistics update per training call: ``running_mean = (1 - m) *
  running_mean + m * mu`` and ``running_var = (1 - m) * running_var + m * var_b * n / (n - 1)``
  (unbiased, ``n`` = values reduced per channel);
* eval mode uses ``running_mean`` and ``running_var`` instead.

Layouts put the channel on axis 1: one step is ``(N, C)`` or ``(N, C, H, W)``; a sequence is
``(T, N, C, ...)``. Two kinds of call:

``forward(x_t, t=t, training=...)``
    One timestep (the tutorial's call; tdBN, MPBN and HomeostaticNorm take no ``t``).
``forward_sequence(x_seq, training=...)``
    A whole sequence ``(T, N, C, ...)``. This is the only way to train the methods whose
    statistics pool over time: tdBN (pooled over T, N, H, W), TEBN (pooled over N, T, H, W)
    and TAB (step ``t`` pools steps ``0..t``). For the per-step methods it is a loop over
    ``forward``.

Public state uses ``gamma``, ``beta``, ``running_mean``, ``running_var``, ``eps``,
``momentum``; the per-timestep classes (BNTT, TAB, TemporalHomeostaticNorm) carry a leading
``T`` axis, TEBN and TAB carry ``p`` of shape ``(T,)``. The state may be overwritten (e.g.
with trained values); it is checked on every use, so NaN/inf, a negative variance or a
wrong shape raise ``ValueError`` naming the field. Nothing is clamped silently.

Folding for hardware goes through :mod:`golden.fold`: ``MembranePotentialBN.fold()`` gives a
:class:`~golden.fold.ThresholdRule`, ``ThresholdDependentBN.fold_into()`` folded weights, and
the per-timestep methods ``fold()`` an :class:`~golden.fold.AffineRule` of shape ``(T, C)``.
"""

from __future__ import annotations

import math

import numpy as np

from .fixed import check_finite
from .fold import AffineRule, affine_from_bn, fold_into_weights, fold_mpbn

__all__ = [
    "ThresholdDependentBN", "PerTimestepBN", "TemporalEffectiveBN", "MembranePotentialBN",
    "TemporalAccumulatedBN", "HomeostaticNorm", "TemporalHomeostaticNorm",
    "NORMS", "PER_TIMESTEP_NORMS", "NORM_PARAMS", "NORM_EPS", "param_shape", "from_state",
    "eval_sequence", "fold_state", "mpbn_from_state",
]


# -- argument checks ------------------------------------------------------------------------

def _reject_unknown(where, unknown):
    if unknown:
        raise ValueError(f"{where}: unknown argument(s) {', '.join(sorted(unknown))}")


def _count(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _real(name, value, lo=None, hi=None, lo_open=False):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, not {value!r}") from None
    if arr.ndim:
        raise ValueError(f"{name} must be a scalar, not an array of shape {arr.shape}")
    v = float(check_finite(name, arr))
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, not {value!r}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, not {value!r}")
    return v


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def _step(t, T):
    if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or not 0 <= t < T:
        raise ValueError(f"t must be an integer in 0..{T - 1}, not {t!r}")
    return int(t)


def _array(name, value):
    """``value`` as a finite float64 array; ``ValueError`` naming ``name`` otherwise."""
    try:
        np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array, not {value!r}") from None
    return check_finite(name, value)


def _step_input(name, x, channels):
    x = _array(name, x)
    if x.ndim < 2 or x.shape[1] != channels:
        raise ValueError(
            f"{name} must have shape (N, {channels}) or (N, {channels}, H, W), not {x.shape}")
    return x


def _sequence_input(name, x, channels, T=None):
    x = _array(name, x)
    if x.ndim < 3 or x.shape[2] != channels:
        raise ValueError(
            f"{name} must have shape (T, N, {channels}) or (T, N, {channels}, H, W), "
            f"not {x.shape}")
    if T is not None and x.shape[0] != T:
        raise ValueError(f"{name} must have T = {T} steps on axis 0, not {x.shape[0]}")
    return x


# -- shared batch-norm arithmetic -----------------------------------------------------------

def _batch_stats(x, keep):
    """Per-channel mean and biased variance of ``x`` over every axis but those in ``keep``.

    Returns ``(mu, var_b, n)`` with ``n`` the number of values reduced per channel.
    """
    axes = tuple(i for i in range(x.ndim) if i not in keep)
    n = math.prod(x.shape[i] for i in axes)
    if n < 2:
        raise ValueError(
            f"training needs more than one value per channel to estimate a variance, got {n} "
            f"(input shape {x.shape})")
    mu = x.mean(axis=axes)
    var_b = x.var(axis=axes)
    return mu, var_b, n


def _ema(old, mu, var_b, n, momentum):
    """PyTorch's running-statistics update (unbiased variance)."""
    mean = (1.0 - momentum) * old[0] + momentum * mu
    var = (1.0 - momentum) * old[1] + momentum * var_b * (n / (n - 1))
    return mean, var


def _at(v, ndim, axis=1):
    """Reshape per-channel ``v`` (``(C,)`` or element-wise ``(C, H, W)``) to broadcast against
    an input of ``ndim`` axes whose channel axis is ``axis``."""
    v = np.asarray(v)
    return v.reshape((1,) * axis + v.shape + (1,) * (ndim - axis - v.ndim))


class _Norm:
    """Base: state checking and ``__call__``."""

    #: Names of the state arrays checked on every use (shapes from ``_state_shape``).
    _state = ()

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _state_shape(self, name):
        raise NotImplementedError

    def _check_state(self):
        """Validate every state array (finite, right shape, variances >= 0); store float64."""
        for name in self._state:
            arr = _array(name, getattr(self, name))
            want = self._state_shape(name)
            if arr.shape != want:
                raise ValueError(f"{name} must have shape {want}, not {arr.shape}")
            if name == "running_var" and np.any(arr < 0):
                index = tuple(int(i) for i in np.argwhere(arr < 0)[0])
                raise ValueError(
                    f"running_var must be >= 0, but running_var{list(index)} = "
                    f"{float(arr[index])!r}")
            setattr(self, name, arr)
        self.eps = _real("eps", self.eps, lo=0.0, lo_open=True)
        self.momentum = _real("momentum", self.momentum, lo=0.0, hi=1.0)


# -- tdBN ----------------------------------------------------------------------------------

class ThresholdDependentBN(_Norm):
    """tdBN (Zheng 2021): ``gamma * alpha * threshold * (x - mu) / sqrt(var + eps) + beta``.

    Statistics per channel over N, H, W (one step) or T, N, H, W (:meth:`forward_sequence`,
    the official method); ``alpha * threshold`` is a fixed factor outside ``gamma``
    (``alpha = 1/sqrt(2)`` at residual joins).

    Parameters
    ----------
    n_features : int
        Channels C.
    threshold : float
        Firing threshold ``V_th`` of the following neurons.
    momentum, eps : float
        PyTorch batch-norm defaults 0.1 and 1e-5.
    alpha : float

    Attributes
    ----------
    gamma, beta, running_mean, running_var : ndarray (C,)
    """

    _state = ("gamma", "beta", "running_mean", "running_var")

    def __init__(self, n_features, threshold=1.0, momentum=0.1, eps=1e-5, alpha=1.0,
                 **unknown):
        _reject_unknown("ThresholdDependentBN", unknown)
        self.n_features = _count("n_features", n_features)
        self.threshold = _real("threshold", threshold)
        self.alpha = _real("alpha", alpha)
        self.momentum = _real("momentum", momentum, lo=0.0, hi=1.0)
        self.eps = _real("eps", eps, lo=0.0, lo_open=True)
        C = self.n_features
        self.gamma = np.ones(C)
        self.beta = np.zeros(C)
        self.running_mean = np.zeros(C)
        self.running_var = np.ones(C)

    def _state_shape(self, name):
        return (self.n_features,)

    def forward(self, x, training=True, **unknown):
        """Normalize one step ``x`` of shape (N, C) or (N, C, H, W); statistics over N, H, W."""
        _reject_unknown("ThresholdDependentBN.forward", unknown)
        return self._normalize(_step_input("x", x, self.n_features), 1, _flag("training", training))

    def forward_sequence(self, x_seq, training=True, **unknown):
        """Normalize a sequence ``(T, N, C, ...)``; statistics pooled over T, N, H, W."""
        _reject_unknown("ThresholdDependentBN.forward_sequence", unknown)
        x = _sequence_input("x_seq", x_seq, self.n_features)
        return self._normalize(x, 2, _flag("training", training))

    def _normalize(self, x, axis, training):
        self._check_state()
        if training:
            mu, var, n = _batch_stats(x, (axis,))
            self.running_mean, self.running_var = _ema(
                (self.running_mean, self.running_var), mu, var, n, self.momentum)
        else:
            mu, var = self.running_mean, self.running_var
        k = self.gamma * self.alpha * self.threshold
        return (_at(k, x.ndim, axis) * (x - _at(mu, x.ndim, axis))
                / np.sqrt(_at(var, x.ndim, axis) + self.eps) + _at(self.beta, x.ndim, axis))

    def fold(self):
        """Eval-mode tdBN as one :class:`~golden.fold.AffineRule` of shape (1, C)."""
        self._check_state()
        a, b = affine_from_bn(
            gamma=self.gamma * self.alpha * self.threshold, beta=self.beta,
            running_mean=self.running_mean, running_var=self.running_var, eps=self.eps)
        return AffineRule(a, b)

    def fold_into(self, weight, bias=None):
        """Fold eval-mode tdBN into the preceding layer: returns ``(weight, bias)``.

        ``weight`` has the output channel first (Linear ``(C, C_in)``, Conv ``(C, ...)``).
        """
        rule = self.fold()
        return fold_into_weights(weight, bias, rule.a[0], rule.b[0])


# -- BNTT ----------------------------------------------------------------------------------

class PerTimestepBN(_Norm):
    """BNTT (Kim & Panda 2021): ``gamma[t] * (x_t - mu_t) / sqrt(var_t + eps)``, **no beta**.

    Statistics of step ``t`` alone (over N, H, W); separate ``gamma`` and running statistics
    per step. ``eps`` defaults to 1e-4 as in the official code.

    Attributes
    ----------
    gamma, running_mean, running_var : ndarray (T, C)
    """

    _state = ("gamma", "running_mean", "running_var")

    def __init__(self, n_features, T, momentum=0.1, eps=1e-4, **unknown):
        _reject_unknown("PerTimestepBN", unknown)
        self.n_features = _count("n_features", n_features)
        self.T = _count("T", T)
        self.momentum = _real("momentum", momentum, lo=0.0, hi=1.0)
        self.eps = _real("eps", eps, lo=0.0, lo_open=True)
        shape = (self.T, self.n_features)
        self.gamma = np.ones(shape)
        self.running_mean = np.zeros(shape)
        self.running_var = np.ones(shape)

    def _state_shape(self, name):
        return (self.T, self.n_features)

    def forward(self, x, t, training=True, **unknown):
        """Normalize step ``t`` (0..T-1) of shape (N, C) or (N, C, H, W)."""
        _reject_unknown("PerTimestepBN.forward", unknown)
        t = _step(t, self.T)
        x = _step_input("x", x, self.n_features)
        training = _flag("training", training)
        self._check_state()
        if training:
            mu, var, n = _batch_stats(x, (1,))
            self.running_mean[t], self.running_var[t] = _ema(
                (self.running_mean[t], self.running_var[t]), mu, var, n, self.momentum)
        else:
            mu, var = self.running_mean[t], self.running_var[t]
        return (_at(self.gamma[t], x.ndim) * (x - _at(mu, x.ndim))
                / np.sqrt(_at(var, x.ndim) + self.eps))

    def forward_sequence(self, x_seq, training=True, **unknown):
        """Run :meth:`forward` over ``x_seq`` of shape ``(T, N, C, ...)``."""
        _reject_unknown("PerTimestepBN.forward_sequence", unknown)
        x = _sequence_input("x_seq", x_seq, self.n_features, self.T)
        return np.stack([self.forward(x[t], t, training) for t in range(self.T)])

    def fold(self):
        """Eval-mode BNTT as a per-timestep :class:`~golden.fold.AffineRule` (T, C)."""
        self._check_state()
        a, b = affine_from_bn(gamma=self.gamma, beta=np.zeros_like(self.gamma),
                              running_mean=self.running_mean, running_var=self.running_var,
                              eps=self.eps)
        return AffineRule(a, b)


# -- TEBN ----------------------------------------------------------------------------------

class TemporalEffectiveBN(_Norm):
    """TEBN (Duan 2022): ``p[t] * (gamma * (x_t - mu) / sqrt(var + eps) + beta)``.

    One set of statistics pooled over N, T, H, W (so training needs the whole sequence:
    :meth:`forward_sequence`); ``p`` of shape ``(T,)`` (init 1) is shared over channels.

    Attributes
    ----------
    gamma, beta, running_mean, running_var : ndarray (C,)
    p : ndarray (T,)
    """

    _state = ("gamma", "beta", "running_mean", "running_var", "p")

    def __init__(self, n_features, T, momentum=0.1, eps=1e-5, **unknown):
        _reject_unknown("TemporalEffectiveBN", unknown)
        self.n_features = _count("n_features", n_features)
        self.T = _count("T", T)
        self.momentum = _real("momentum", momentum, lo=0.0, hi=1.0)
        self.eps = _real("eps", eps, lo=0.0, lo_open=True)
        C = self.n_features
        self.gamma = np.ones(C)
        self.beta = np.zeros(C)
        self.running_mean = np.zeros(C)
        self.running_var = np.ones(C)
        self.p = np.ones(self.T)

    def _state_shape(self, name):
        return (self.T,) if name == "p" else (self.n_features,)

    def forward_sequence(self, x_seq, training=True, **unknown):
        """Normalize ``x_seq`` of shape ``(T, N, C, ...)``; statistics pooled over N, T, H, W."""
        _reject_unknown("TemporalEffectiveBN.forward_sequence", unknown)
        x = _sequence_input("x_seq", x_seq, self.n_features, self.T)
        training = _flag("training", training)
        self._check_state()
        if training:
            mu, var, n = _batch_stats(x, (2,))
            self.running_mean, self.running_var = _ema(
                (self.running_mean, self.running_var), mu, var, n, self.momentum)
        else:
            mu, var = self.running_mean, self.running_var
        y = (_at(self.gamma, x.ndim, 2) * (x - _at(mu, x.ndim, 2))
             / np.sqrt(_at(var, x.ndim, 2) + self.eps) + _at(self.beta, x.ndim, 2))
        return self.p.reshape((-1,) + (1,) * (x.ndim - 1)) * y

    def forward(self, x, t, training=False, **unknown):
        """Eval-mode step ``t`` of shape (N, C) or (N, C, H, W).

        Raises ``ValueError`` with ``training=True``: TEBN's statistics pool over all T steps,
        so train with :meth:`forward_sequence`.
        """
        _reject_unknown("TemporalEffectiveBN.forward", unknown)
        t = _step(t, self.T)
        x = _step_input("x", x, self.n_features)
        if _flag("training", training):
            raise ValueError(
                "TemporalEffectiveBN.forward: training=True is not possible one step at a time "
                "(TEBN's statistics pool over N, T, H, W); use forward_sequence(x_seq)")
        self._check_state()
        return self.p[t] * (_at(self.gamma, x.ndim) * (x - _at(self.running_mean, x.ndim))
                            / np.sqrt(_at(self.running_var, x.ndim) + self.eps)
                            + _at(self.beta, x.ndim))

    def fold(self):
        """Eval-mode TEBN as a per-timestep :class:`~golden.fold.AffineRule` (T, C)."""
        self._check_state()
        shape = (self.T, self.n_features)
        a, b = affine_from_bn(
            gamma=np.broadcast_to(self.gamma, shape), beta=np.broadcast_to(self.beta, shape),
            running_mean=np.broadcast_to(self.running_mean, shape),
            running_var=np.broadcast_to(self.running_var, shape), eps=self.eps,
            scale=self.p[:, None])
        return AffineRule(a, b)


# -- MPBN ----------------------------------------------------------------------------------

class MembranePotentialBN(_Norm):
    """MPBN (Guo 2023): batch norm of the membrane ``u_pre``, seen only by the comparator.

    ``MPBN(u) = gamma * (u - mu) / sqrt(var + eps) + beta``; the neuron fires iff
    ``MPBN(u_pre) > threshold`` and carries the raw membrane (see :func:`golden.lif.lif`).
    One set of running statistics is updated at every step (T updates per sequence).

    Parameters
    ----------
    n_features : int
        Channels C.
    threshold : float
        ``v_th`` of the comparator (also readable as :attr:`v_th`).
    momentum, eps : float
    shape : tuple or None
        ``None``: channel-wise (the official code), statistics over N, H, W, parameters
        ``(C,)``. ``(C, H, W)`` (or any shape starting with C): element-wise, one set of
        parameters per neuron (the paper's Eq. 13), statistics over N only; the input must
        then be ``(N, *shape)``.

    Attributes
    ----------
    gamma, beta, running_mean, running_var : ndarray of ``shape``
    """

    _state = ("gamma", "beta", "running_mean", "running_var")

    def __init__(self, n_features, threshold=1.0, momentum=0.1, eps=1e-5, shape=None,
                 **unknown):
        _reject_unknown("MembranePotentialBN", unknown)
        self.n_features = _count("n_features", n_features)
        self.threshold = _real("threshold", threshold)
        self.momentum = _real("momentum", momentum, lo=0.0, hi=1.0)
        self.eps = _real("eps", eps, lo=0.0, lo_open=True)
        if shape is None:
            self.shape = (self.n_features,)
            self.elementwise = False
        else:
            try:
                self.shape = tuple(int(_count("shape", s)) for s in shape)
            except TypeError:
                raise ValueError(f"shape must be a tuple of positive integers, not {shape!r}") \
                    from None
            if not self.shape or self.shape[0] != self.n_features:
                raise ValueError(
                    f"shape must start with n_features = {self.n_features}, not {shape!r}")
            self.elementwise = True
        self.gamma = np.ones(self.shape)
        self.beta = np.zeros(self.shape)
        self.running_mean = np.zeros(self.shape)
        self.running_var = np.ones(self.shape)

    @property
    def v_th(self):
        return self.threshold

    def _state_shape(self, name):
        return self.shape

    def forward(self, u, training=True, **unknown):
        """Normalize one step's membrane ``u`` ((N, C), (N, C, H, W), or (N, *shape))."""
        _reject_unknown("MembranePotentialBN.forward", unknown)
        u = _step_input("u", u, self.n_features)
        if self.elementwise and u.shape[1:] != self.shape:
            raise ValueError(
                f"u must have shape (N, {', '.join(map(str, self.shape))}) for element-wise "
                f"MPBN, not {u.shape}")
        training = _flag("training", training)
        self._check_state()
        keep = tuple(range(1, u.ndim)) if self.elementwise else (1,)
        if training:
            mu, var, n = _batch_stats(u, keep)
            self.running_mean, self.running_var = _ema(
                (self.running_mean, self.running_var), mu, var, n, self.momentum)
        else:
            mu, var = self.running_mean, self.running_var
        return (_at(self.gamma, u.ndim) * (u - _at(mu, u.ndim))
                / np.sqrt(_at(var, u.ndim) + self.eps) + _at(self.beta, u.ndim))

    def forward_sequence(self, u_seq, training=True, **unknown):
        """Run :meth:`forward` on every step of ``u_seq`` ``(T, N, ...)``: T updates."""
        _reject_unknown("MembranePotentialBN.forward_sequence", unknown)
        u = _sequence_input("u_seq", u_seq, self.n_features)
        return np.stack([self.forward(u[t], training) for t in range(u.shape[0])])

    def fold(self, neuron_shape=None):
        """Fold eval-mode MPBN into a per-neuron :class:`~golden.fold.ThresholdRule`.

        Exact for every sign of gamma (``gamma < 0`` flips the comparison, ``gamma == 0``
        fires always or never). ``neuron_shape`` (e.g. ``(C, H, W)``) expands a channel-wise
        rule to every neuron.
        """
        self._check_state()
        rule = fold_mpbn(gamma=self.gamma, beta=self.beta, running_mean=self.running_mean,
                         running_var=self.running_var, eps=self.eps, v_th=self.threshold)
        return rule if neuron_shape is None else rule.expand(neuron_shape)

    def fused_threshold(self):
        """The tutorial's per-neuron threshold ``(V_th - beta) * sqrt(var + eps) / gamma + mean``.

        Returns an array of ``shape`` (``(n_features,)`` channel-wise). Only valid when every
        ``gamma > 0``: otherwise raises ``ValueError`` naming the channels, because a plain
        ``u > theta`` threshold cannot express them; use :meth:`fold`.
        """
        self._check_state()
        bad = np.argwhere(self.gamma <= 0)
        if len(bad):
            where = [int(i[0]) if len(i) == 1 else tuple(int(j) for j in i) for i in bad]
            what = "channel(s)" if not self.elementwise else "neuron(s)"
            shown = ", ".join(map(str, where[:8])) + (", ..." if len(where) > 8 else "")
            raise ValueError(
                f"fused_threshold() needs gamma > 0, but gamma <= 0 in {len(where)} {what}: "
                f"{shown} (gamma = {float(self.gamma[tuple(bad[0])])!r} at the first); a "
                f"negative gamma flips the comparison and gamma = 0 fires always or never, "
                f"so use fold(), which returns a ThresholdRule exact for every sign")
        return self.fold().theta


# -- TAB -----------------------------------------------------------------------------------

class TemporalAccumulatedBN(_Norm):
    """TAB (Jiang 2024): ``p[t]**2 * (gamma[t] * (x_t - mu) / sqrt(var + eps) + beta[t])``.

    ``mu`` and ``var`` are those of steps ``0..t``.

    Step ``t`` is normalized with statistics pooled over N, steps ``0..t``, H, W (the window
    grows with t; the pooled variance includes the spread between step means). Each step has
    its own ``gamma``, ``beta`` and running statistics (updated with the window's); ``p`` is
    squared. Per-step training calls must come in order ``t = 0, 1, ...`` (the layer keeps
    the window); eval needs no window.

    Attributes
    ----------
    gamma, beta, running_mean, running_var : ndarray (T, C)
    p : ndarray (T,)
    """

    _state = ("gamma", "beta", "running_mean", "running_var", "p")

    def __init__(self, n_features, T, momentum=0.1, eps=1e-5, **unknown):
        _reject_unknown("TemporalAccumulatedBN", unknown)
        self.n_features = _count("n_features", n_features)
        self.T = _count("T", T)
        self.momentum = _real("momentum", momentum, lo=0.0, hi=1.0)
        self.eps = _real("eps", eps, lo=0.0, lo_open=True)
        shape = (self.T, self.n_features)
        self.gamma = np.ones(shape)
        self.beta = np.zeros(shape)
        self.running_mean = np.zeros(shape)
        self.running_var = np.ones(shape)
        self.p = np.ones(self.T)
        self._window = []

    def _state_shape(self, name):
        return (self.T,) if name == "p" else (self.T, self.n_features)

    def _output(self, x, t, mu, var):
        return self.p[t] ** 2 * (_at(self.gamma[t], x.ndim) * (x - _at(mu, x.ndim))
                                 / np.sqrt(_at(var, x.ndim) + self.eps)
                                 + _at(self.beta[t], x.ndim))

    def _train_step(self, window, t):
        mu, var, n = _batch_stats(window, (2,))
        self.running_mean[t], self.running_var[t] = _ema(
            (self.running_mean[t], self.running_var[t]), mu, var, n, self.momentum)
        return mu, var

    def forward(self, x, t, training=True, **unknown):
        """Normalize step ``t`` of shape (N, C) or (N, C, H, W).

        In training the layer remembers steps ``0..t-1`` of the current sequence; ``t = 0``
        starts a new one and the steps must follow in order.
        """
        _reject_unknown("TemporalAccumulatedBN.forward", unknown)
        t = _step(t, self.T)
        x = _step_input("x", x, self.n_features)
        training = _flag("training", training)
        self._check_state()
        if not training:
            return self._output(x, t, self.running_mean[t], self.running_var[t])
        if t == 0:
            self._window = []
        elif t != len(self._window):
            raise ValueError(
                f"t = {t}: training steps must come in order 0, 1, ..., {self.T - 1} "
                f"(expected t = {len(self._window)}); TAB pools steps 0..t")
        elif x.shape != self._window[0].shape:
            raise ValueError(
                f"x has shape {x.shape} but step 0 of this sequence had {self._window[0].shape}")
        self._window.append(x.copy())
        mu, var = self._train_step(np.stack(self._window), t)
        return self._output(x, t, mu, var)

    def forward_sequence(self, x_seq, training=True, **unknown):
        """Normalize ``x_seq`` of shape ``(T, N, C, ...)`` (step t pools steps 0..t)."""
        _reject_unknown("TemporalAccumulatedBN.forward_sequence", unknown)
        x = _sequence_input("x_seq", x_seq, self.n_features, self.T)
        training = _flag("training", training)
        self._check_state()
        out = np.empty_like(x)
        for t in range(self.T):
            if training:
                mu, var = self._train_step(x[:t + 1], t)
            else:
                mu, var = self.running_mean[t], self.running_var[t]
            out[t] = self._output(x[t], t, mu, var)
        return out

    def fold(self):
        """Eval-mode TAB as a per-timestep :class:`~golden.fold.AffineRule` (T, C)."""
        self._check_state()
        a, b = affine_from_bn(gamma=self.gamma, beta=self.beta,
                              running_mean=self.running_mean, running_var=self.running_var,
                              eps=self.eps, scale=(self.p ** 2)[:, None])
        return AffineRule(a, b)


# -- homeostatic norms ---------------------------------------------------------------------

class HomeostaticNorm(_Norm):
    """Batch-free homeostatic normalization: ``gamma * (g * x + b) + beta`` in both modes.

    Our definition (the seed's source is not public; see normalizers.md). Each training call
    takes the batch mean ``m`` and biased variance ``v`` per channel (over N, H, W), moves the
    gain and bias toward ``g* = 1/sqrt(v + eps)`` and ``b* = -m * g*`` by ``eta``, updates the
    running statistics like batch norm, and then produces its output with the updated ``g``,
    ``b``. No batch statistic enters the output directly, so eval differs from training only
    in not adapting.

    Attributes
    ----------
    g, b, gamma, beta, running_mean, running_var : ndarray (C,)
    eta : float
    """

    _state = ("g", "b", "gamma", "beta", "running_mean", "running_var")

    def __init__(self, n_features, eta=0.1, momentum=0.1, eps=1e-5, **unknown):
        _reject_unknown(type(self).__name__, unknown)
        self.n_features = _count("n_features", n_features)
        self.eta = _real("eta", eta, lo=0.0, hi=1.0, lo_open=True)
        self.momentum = _real("momentum", momentum, lo=0.0, hi=1.0)
        self.eps = _real("eps", eps, lo=0.0, lo_open=True)
        shape = self._shape()
        self.g = np.ones(shape)
        self.b = np.zeros(shape)
        self.gamma = np.ones(shape)
        self.beta = np.zeros(shape)
        self.running_mean = np.zeros(shape)
        self.running_var = np.ones(shape)

    def _shape(self):
        return (self.n_features,)

    def _state_shape(self, name):
        return self._shape()

    def _check_state(self):
        super()._check_state()
        self.eta = _real("eta", self.eta, lo=0.0, hi=1.0, lo_open=True)

    def _adapt(self, x, index):
        """Adapt ``g``, ``b`` and the running statistics at ``index`` to batch ``x``."""
        m, v, n = _batch_stats(x, (1,))
        g_star = 1.0 / np.sqrt(v + self.eps)
        b_star = -m * g_star
        self.g[index] = (1.0 - self.eta) * self.g[index] + self.eta * g_star
        self.b[index] = (1.0 - self.eta) * self.b[index] + self.eta * b_star
        self.running_mean[index], self.running_var[index] = _ema(
            (self.running_mean[index], self.running_var[index]), m, v, n, self.momentum)

    def _output(self, x, index):
        n = x.ndim
        return (_at(self.gamma[index], n) * (_at(self.g[index], n) * x + _at(self.b[index], n))
                + _at(self.beta[index], n))

    def forward(self, x, training=True, **unknown):
        """Normalize ``x`` of shape (N, C) or (N, C, H, W)."""
        _reject_unknown(f"{type(self).__name__}.forward", unknown)
        x = _step_input("x", x, self.n_features)
        training = _flag("training", training)
        self._check_state()
        if training:
            self._adapt(x, Ellipsis)
        return self._output(x, Ellipsis)

    def fold(self):
        """The layer as one :class:`~golden.fold.AffineRule` (T = 1)."""
        self._check_state()
        return AffineRule(self.gamma * self.g, self.gamma * self.b + self.beta)


class TemporalHomeostaticNorm(HomeostaticNorm):
    """:class:`HomeostaticNorm` with per-timestep state: every array has shape ``(T, C)``.

    The seed's ``TemporalHomeostaticNorm2d(C, T)`` called as ``norm(x, t)``.
    """

    def __init__(self, n_features, T, eta=0.1, momentum=0.1, eps=1e-5, **unknown):
        self.T = _count("T", T)
        super().__init__(n_features, eta=eta, momentum=momentum, eps=eps, **unknown)

    def _shape(self):
        return (self.T, self.n_features)

    def forward(self, x, t, training=True, **unknown):
        """Normalize step ``t`` (0..T-1) of shape (N, C) or (N, C, H, W)."""
        _reject_unknown("TemporalHomeostaticNorm.forward", unknown)
        t = _step(t, self.T)
        x = _step_input("x", x, self.n_features)
        training = _flag("training", training)
        self._check_state()
        if training:
            self._adapt(x, t)
        return self._output(x, t)

    def forward_sequence(self, x_seq, training=True, **unknown):
        """Run :meth:`forward` over ``x_seq`` of shape ``(T, N, C, ...)``."""
        _reject_unknown("TemporalHomeostaticNorm.forward_sequence", unknown)
        x = _sequence_input("x_seq", x_seq, self.n_features, self.T)
        return np.stack([self.forward(x[t], t, training) for t in range(self.T)])

    def fold(self):
        """The layer as a per-timestep :class:`~golden.fold.AffineRule` (T, C)."""
        self._check_state()
        return AffineRule(self.gamma * self.g, self.gamma * self.b + self.beta)


# -- the registry: normalizer kinds of a network layer ------------------------------------

#: Normalizers after a layer's synapses, by the name model files and the trainer use. ``bn``
#: is batch norm with statistics pooled over T and N (tdBN with ``alpha * v_th = 1``),
#: ``tdbn`` the same with the fixed factor ``alpha * v_th`` on the normalized term.
NORMS = ("none", "bn", "tdbn", "bntt", "tebn", "tab", "homeostatic", "temporal-homeostatic")

#: Normalizers that differ per timestep: they fold into an affine stage of the LIF core.
PER_TIMESTEP_NORMS = ("bntt", "tebn", "tab", "temporal-homeostatic")

#: Eval-mode state of each normalizer: name -> shape code ("C": (C,), "TC": (T, C), "T": (T,)).
NORM_PARAMS = {
    "none": {},
    "bn": {"gamma": "C", "beta": "C", "running_mean": "C", "running_var": "C"},
    "tdbn": {"gamma": "C", "beta": "C", "running_mean": "C", "running_var": "C"},
    "bntt": {"gamma": "TC", "running_mean": "TC", "running_var": "TC"},
    "tebn": {"gamma": "C", "beta": "C", "running_mean": "C", "running_var": "C", "p": "T"},
    "tab": {"gamma": "TC", "beta": "TC", "running_mean": "TC", "running_var": "TC", "p": "T"},
    "homeostatic": {"gamma": "C", "beta": "C", "g": "C", "b": "C"},
    "temporal-homeostatic": {"gamma": "TC", "beta": "TC", "g": "TC", "b": "TC"},
}

#: Default eps of each normalizer (BNTT's official code uses 1e-4).
NORM_EPS = {kind: (1e-4 if kind == "bntt" else 1e-5) for kind in NORMS}

_NORM_CLASSES = {
    "bn": ThresholdDependentBN, "tdbn": ThresholdDependentBN, "bntt": PerTimestepBN,
    "tebn": TemporalEffectiveBN, "tab": TemporalAccumulatedBN, "homeostatic": HomeostaticNorm,
    "temporal-homeostatic": TemporalHomeostaticNorm,
}


def param_shape(code, T, C):
    """The shape a :data:`NORM_PARAMS` code stands for."""
    return {"C": (C,), "TC": (T, C), "T": (T,)}[code]


def from_state(kind, params, *, C, T, eps, alpha=1.0, v_th=1.0, where="norm"):
    """The eval-mode normalizer ``kind`` with its trained state ``params`` (or ``None``).

    ``params`` holds the arrays of :data:`NORM_PARAMS` ``[kind]`` for ``C`` channels and
    ``T`` steps; ``alpha`` and ``v_th`` give tdBN's fixed factor (``bn`` is tdBN with the
    factor 1). Errors name ``where``.
    """
    if kind not in NORMS:
        raise ValueError(f"{where} must be one of {NORMS}, not {kind!r}")
    if kind == "none":
        return None
    want = NORM_PARAMS[kind]
    unknown = set(params) - set(want)
    if unknown:
        raise ValueError(f"{where}: unknown {kind} parameters {sorted(unknown)}")
    missing = [name for name in want if name not in params]
    if missing:
        raise ValueError(f"{where}.{missing[0]} is missing")
    cls = _NORM_CLASSES[kind]
    if kind in ("bn", "tdbn"):
        norm = cls(C, threshold=v_th if kind == "tdbn" else 1.0,
                   alpha=alpha if kind == "tdbn" else 1.0, eps=eps)
    elif kind == "homeostatic":
        norm = cls(C, eps=eps)
    else:
        norm = cls(C, T, eps=eps)
    for name in want:
        setattr(norm, name, params[name])
    try:
        norm._check_state()
    except ValueError as exc:
        raise ValueError(f"{where}.{exc}") from None
    return norm


def eval_sequence(norm, x_seq):
    """Eval-mode ``norm`` on a sequence ``(T, N, C, ...)`` (``None``: the identity)."""
    if norm is None:
        return x_seq
    if isinstance(norm, HomeostaticNorm) and not isinstance(norm, TemporalHomeostaticNorm):
        T, N = x_seq.shape[:2]
        y = norm.forward(np.reshape(x_seq, (T * N,) + x_seq.shape[2:]), training=False)
        return y.reshape(x_seq.shape)
    return norm.forward_sequence(x_seq, training=False)


def fold_state(norm, weight, bias, T):
    """Fold eval-mode ``norm`` after the synapses ``weight``/``bias``.

    Returns ``(weight, bias, affine)``: the shared-over-time norms (bn, tdBN, homeostatic)
    fold into the weights and ``affine`` is ``None``; the per-timestep ones leave the
    weights and give an :class:`~golden.fold.AffineRule` of shape ``(T, C)``.
    """
    if norm is None:
        return weight, bias, None
    if isinstance(norm, ThresholdDependentBN):
        weight, bias = norm.fold_into(weight, bias)
        return weight, bias, None
    rule = norm.fold()
    if isinstance(norm, HomeostaticNorm) and not isinstance(norm, TemporalHomeostaticNorm):
        weight, bias = fold_into_weights(weight, bias, rule.a[0], rule.b[0])
        return weight, bias, None
    if rule.T != T:
        rule = AffineRule(np.broadcast_to(rule.a, (T, rule.channels)).copy(),
                          np.broadcast_to(rule.b, (T, rule.channels)).copy())
    return weight, bias, rule


def mpbn_from_state(params, *, v_th, eps, shape=None, where="mpbn"):
    """Eval-mode :class:`MembranePotentialBN` with trained ``params`` (``gamma``, ``beta``,
    ``running_mean``, ``running_var``), channel-wise ``(C,)`` or element-wise ``shape``."""
    unknown = set(params) - set(MembranePotentialBN._state)
    if unknown:
        raise ValueError(f"{where}: unknown mpbn parameters {sorted(unknown)}")
    for name in MembranePotentialBN._state:
        if name not in params:
            raise ValueError(f"{where}.{name} is missing")
    gamma_shape = np.shape(params["gamma"])
    if not gamma_shape:
        raise ValueError(f"{where}.gamma must have at least one axis, not a scalar")
    norm = MembranePotentialBN(gamma_shape[0], threshold=v_th, eps=eps,
                               shape=None if shape is None or len(shape) == 1 else shape)
    for name in MembranePotentialBN._state:
        setattr(norm, name, params[name])
    try:
        norm._check_state()
    except ValueError as exc:
        raise ValueError(f"{where}.{exc}") from None
    return norm
