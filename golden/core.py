"""The bit-exact integer model of the hardware LIF array.

This is the one definition of what the hardware computes; hdl/, sim/ and boards/ are all
checked against it. One timestep over all N neurons (neuron ``i``, timestep ``t``):

======  ==================================================================================
stage   integer rule (all integers signed; ``>>`` is :func:`golden.fixed.floor_shift`)
======  ==================================================================================
align   ``x = c_q << (Fm - Fc)``                 current grid -> membrane grid (exact)
affine  ``y = sat_m(((x * a_q[t, ch]) >> Fa) + b_q[t, ch])``   only when ``affine``;
        ``ch = i // (N / channels)``; otherwise ``y = sat_m(x)``
leak    ``l = v >> k`` when ``tau = 2**-k``, else ``l = (v * tau_q) >> tau_bits`` with
        ``tau_q = round_half_up(tau * 2**tau_bits)``; both floor (toward -inf)
add     ``v_pre = sat_m(l + y)``
fire    ``GT: v_pre > theta_q``; ``LT: v_pre < theta_q``; ``NEVER: 0``; ``ALWAYS: 1``
reset   zero: ``v = 0 if spike else v_pre``;
        subtract: ``v = sat_m(v_pre - theta_q) if spike else v_pre``
======  ==================================================================================

``sat_m`` clamps to the membrane format (never wraps). The membrane at the start of
timestep 0 is zero: ``clear()`` and the end of timestep ``T - 1`` both start a new sample
(the hardware does this by ignoring the stored membrane at ``t == 0``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np

from .fixed import Fixed, floor_shift, round_half_up
from .quantize import AffineTable, ThresholdTable

__all__ = ["CoreConfig", "CoreModel", "StepResult", "to_beats", "from_beats", "RESETS"]

RESETS = ("zero", "subtract")


def _positive_int(name, value, minimum=1):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class CoreConfig:
    """Parameters of one LIF array; the hardware generator takes the same object.

    Parameters
    ----------
    neurons : int
        Neuron count N.
    T : int
        Timesteps per sample (the timestep counter wraps and starts a new sample after it).
    current, membrane, threshold : Fixed
        Formats of the input current, the membrane, and the stored threshold. The current
        must not have more fractional bits than the membrane; the threshold must have the
        membrane's fractional bits and at most its width.
    tau : float
        Leak (decay) factor in ``(0, 1]``. A power of two ``2**-k`` is a shift, anything
        else a multiply by ``tau_q / 2**tau_bits``.
    tau_bits : int
        Fractional bits of the leak multiplier (unused for a shift).
    reset : {"zero", "subtract"}
    affine : bool
        Whether the per-timestep affine stage is present.
    channels : int
        Channels of the affine table (``N`` must be a multiple); neuron ``i`` uses channel
        ``i // (N // channels)``.
    scale : Fixed
        Format of the affine multiplier ``a``.
    """

    neurons: int
    T: int = 8
    current: Fixed = Fixed(16, 8)
    membrane: Fixed = Fixed(16, 8)
    threshold: Fixed | None = None
    tau: float = 0.25
    tau_bits: int = 8
    reset: str = "zero"
    affine: bool = False
    channels: int = 1
    scale: Fixed = Fixed(16, 12)

    def __post_init__(self):
        _positive_int("neurons", self.neurons)
        _positive_int("T", self.T)
        for name in ("current", "membrane", "scale"):
            if not isinstance(getattr(self, name), Fixed):
                raise TypeError(f"{name} must be a Fixed format, not {getattr(self, name)!r}")
        if self.threshold is None:
            object.__setattr__(self, "threshold", self.membrane)
        if not isinstance(self.threshold, Fixed):
            raise TypeError(f"threshold must be a Fixed format, not {self.threshold!r}")
        if self.current.frac > self.membrane.frac:
            raise ValueError(
                f"current format {self.current} has more fractional bits than the membrane "
                f"format {self.membrane}; the membrane grid must contain the current grid")
        if self.threshold.frac != self.membrane.frac:
            raise ValueError(
                f"threshold format {self.threshold} must have the membrane's "
                f"{self.membrane.frac} fractional bits")
        if self.threshold.bits > self.membrane.bits:
            raise ValueError(
                f"threshold format {self.threshold} is wider than the membrane format "
                f"{self.membrane}; the extra bits could never matter")
        try:
            tau = float(self.tau)
        except (TypeError, ValueError):
            raise ValueError(f"tau must be a number in (0, 1], not {self.tau!r}") from None
        if not (0.0 < tau <= 1.0):
            raise ValueError(f"tau must be in (0, 1], not {self.tau!r}")
        object.__setattr__(self, "tau", tau)
        _positive_int("tau_bits", self.tau_bits)
        if self.tau_bits > 24:
            raise ValueError(f"tau_bits must be at most 24, not {self.tau_bits!r}")
        if self.leak_shift is None and self.tau_q == 0:
            raise ValueError(
                f"tau = {tau!r} rounds to 0 with tau_bits = {self.tau_bits}; raise tau_bits")
        if self.reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, not {self.reset!r}")
        if not isinstance(self.affine, bool):
            raise ValueError(f"affine must be True or False, not {self.affine!r}")
        _positive_int("channels", self.channels)
        if self.neurons % self.channels:
            raise ValueError(
                f"neurons ({self.neurons}) must be a multiple of channels ({self.channels})")
        self._check_int64()

    def _check_int64(self):
        # The model computes in int64; an intermediate that could exceed it would wrap.
        x_bits = self.current.bits - 1 + self.align_shift          # |x| <= 2**x_bits
        products = [("current aligned to the membrane grid", x_bits)]
        if self.leak_shift is None:
            products.append(("leak product v * tau_q", self.membrane.bits - 1 + self.tau_bits))
        if self.affine:
            products.append(("affine product x * a_q", x_bits + self.scale.bits - 1))
        for what, bits in products:
            if bits > 62:
                raise ValueError(
                    f"the {what} needs {bits + 1} bits (current {self.current}, membrane "
                    f"{self.membrane}, tau_bits {self.tau_bits}, scale {self.scale}); the "
                    f"model computes in 64 bits: narrow the formats")

    # -- derived properties -------------------------------------------------------------

    @property
    def leak_shift(self):
        """``k`` when ``tau == 2**-k`` exactly (a shift leak), else ``None``."""
        mant, exp = math.frexp(self.tau)
        if mant == 0.5:
            return 1 - exp
        return None

    @property
    def tau_q(self):
        """Leak multiplier ``round_half_up(tau * 2**tau_bits)`` (multiply leak only)."""
        return int(round_half_up(self.tau * (1 << self.tau_bits)))

    @property
    def tau_effective(self):
        k = self.leak_shift
        return 2.0 ** -k if k is not None else self.tau_q / (1 << self.tau_bits)

    @property
    def channel_size(self):
        return self.neurons // self.channels

    @property
    def align_shift(self):
        return self.membrane.frac - self.current.frac

    def channel_of(self):
        """Affine channel of each neuron, shape ``(N,)``."""
        return np.arange(self.neurons) // self.channel_size

    # -- serialization ------------------------------------------------------------------

    def to_json(self):
        return {
            "neurons": self.neurons, "T": self.T,
            "current": self.current.to_json(), "membrane": self.membrane.to_json(),
            "threshold": self.threshold.to_json(), "tau": self.tau,
            "tau_bits": self.tau_bits, "reset": self.reset, "affine": self.affine,
            "channels": self.channels, "scale": self.scale.to_json(),
        }

    @classmethod
    def from_json(cls, obj):
        if isinstance(obj, str):
            obj = json.loads(obj)
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(obj) - known
        if unknown:
            raise ValueError(f"unknown core config fields: {sorted(unknown)}")
        kw = dict(obj)
        for name in ("current", "membrane", "threshold", "scale"):
            if name in kw and kw[name] is not None:
                kw[name] = Fixed.from_json(kw[name])
        return cls(**kw)

    def replace(self, **changes):
        return replace(self, **changes)


@dataclass
class StepResult:
    """What one timestep produced: ``spikes`` (bool), ``v_pre`` (membrane the comparator saw)
    and ``v`` (membrane stored after reset), all shape ``(N,)``; ``t`` the timestep."""

    t: int
    spikes: np.ndarray
    v_pre: np.ndarray
    v: np.ndarray


@dataclass
class SaturationCounts:
    affine: int = 0
    membrane: int = 0
    reset: int = 0


class CoreModel:
    """Bit-exact integer model of the LIF array (see the module docstring for the rules).

    Parameters
    ----------
    config : CoreConfig
    thresholds : ThresholdTable
        Per-neuron comparator contents; ``theta_q`` must fit ``config.threshold``.
    affine : AffineTable or None
        Required exactly when ``config.affine``; shape ``(T, channels)``.
    """

    def __init__(self, config, thresholds, affine=None):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, not {type(config).__name__}")
        self.config = config
        self.thresholds = self._check_thresholds(thresholds)
        self.affine = self._check_affine(affine)
        self.saturations = SaturationCounts()
        self.v = np.zeros(config.neurons, dtype=np.int64)
        self.t = 0

    def _check_thresholds(self, thresholds):
        if not isinstance(thresholds, ThresholdTable):
            raise TypeError(f"thresholds must be a ThresholdTable, not {type(thresholds).__name__}")
        if len(thresholds) != self.config.neurons:
            raise ValueError(
                f"thresholds has {len(thresholds)} entries but the core has "
                f"{self.config.neurons} neurons")
        thresholds.check(self.config.threshold)
        return ThresholdTable(thresholds.theta_q.copy(), thresholds.compare.copy())

    def _check_affine(self, affine):
        cfg = self.config
        if not cfg.affine:
            if affine is not None:
                raise ValueError("an affine table was given but config.affine is False")
            return None
        if not isinstance(affine, AffineTable):
            raise TypeError(f"config.affine is True, so affine must be an AffineTable, "
                            f"not {type(affine).__name__}")
        if affine.a_q.shape != (cfg.T, cfg.channels):
            raise ValueError(
                f"affine table has shape {affine.a_q.shape}, expected (T, channels) = "
                f"({cfg.T}, {cfg.channels})")
        affine.check(cfg.scale, cfg.membrane)
        return AffineTable(affine.a_q.copy(), affine.b_q.copy())

    # -- control ------------------------------------------------------------------------

    def clear(self):
        """Start a new sample: timestep 0, membranes zero."""
        self.t = 0
        self.v[:] = 0

    def load_thresholds(self, index, theta_q, compare):
        """Rewrite comparator entries ``index`` (the hardware's load port)."""
        index = np.atleast_1d(np.asarray(index))
        theta_q = np.atleast_1d(np.asarray(theta_q, dtype=np.int64))
        compare = np.atleast_1d(np.asarray(compare, dtype=np.int8))
        if np.any((index < 0) | (index >= self.config.neurons)):
            raise ValueError(f"threshold index out of range 0..{self.config.neurons - 1}")
        ThresholdTable(theta_q, compare).check(self.config.threshold)
        self.thresholds.theta_q[index] = theta_q
        self.thresholds.compare[index] = compare

    def load_affine(self, t, channel, a_q, b_q):
        """Rewrite affine coefficients at ``(t, channel)``."""
        if self.affine is None:
            raise ValueError("this core has no affine stage")
        if not 0 <= t < self.config.T:
            raise ValueError(f"t must be in 0..{self.config.T - 1}, not {t!r}")
        if not 0 <= channel < self.config.channels:
            raise ValueError(f"channel must be in 0..{self.config.channels - 1}, not {channel!r}")
        AffineTable(np.array([[a_q]]), np.array([[b_q]])).check(self.config.scale,
                                                                 self.config.membrane)
        self.affine.a_q[t, channel] = a_q
        self.affine.b_q[t, channel] = b_q

    # -- datapath -----------------------------------------------------------------------

    def leak(self, v):
        cfg = self.config
        k = cfg.leak_shift
        if k is not None:
            return floor_shift(v, k)
        return floor_shift(v * cfg.tau_q, cfg.tau_bits)

    def drive(self, current_q, t):
        """Align and (optionally) affine-transform input currents for timestep ``t``."""
        cfg = self.config
        x = floor_shift(current_q, -cfg.align_shift)
        if self.affine is None:
            y = x
        else:
            ch = cfg.channel_of()
            y = floor_shift(x * self.affine.a_q[t, ch], cfg.scale.frac) + self.affine.b_q[t, ch]
            self.saturations.affine += int(np.count_nonzero(cfg.membrane.overflows(y)))
        return cfg.membrane.saturate(y)

    def step(self, current_q):
        """Run one timestep over all N neurons and advance the timestep counter.

        ``current_q``: integers of the current format, shape ``(N,)``.
        """
        cfg = self.config
        current_q = np.asarray(current_q)
        if current_q.shape != (cfg.neurons,):
            raise ValueError(f"current_q must have shape ({cfg.neurons},), not {current_q.shape}")
        if not np.issubdtype(current_q.dtype, np.integer):
            raise ValueError(f"current_q must hold integers, not {current_q.dtype}")
        if np.any(cfg.current.overflows(current_q)):
            i = int(np.argmax(cfg.current.overflows(current_q)))
            raise ValueError(
                f"current_q[{i}] = {int(current_q[i])} does not fit the current format "
                f"{cfg.current}")
        t = self.t
        v = self.v if t else np.zeros_like(self.v)
        y = self.drive(current_q.astype(np.int64), t)
        total = self.leak(v) + y
        self.saturations.membrane += int(np.count_nonzero(cfg.membrane.overflows(total)))
        v_pre = cfg.membrane.saturate(total)
        spikes = self.thresholds.fires(v_pre)
        if cfg.reset == "zero":
            v_new = np.where(spikes, 0, v_pre)
        else:
            after = v_pre - self.thresholds.theta_q
            self.saturations.reset += int(np.count_nonzero(
                spikes & cfg.membrane.overflows(after)))
            v_new = np.where(spikes, cfg.membrane.saturate(after), v_pre)
        self.v = v_new
        self.t = (t + 1) % cfg.T
        return StepResult(t, spikes, v_pre, v_new.copy())

    def run(self, currents_q):
        """Run ``S`` timesteps; returns ``(spikes, v_pre)`` of shape ``(S, N)``.

        Continues from the current timestep; samples restart every ``T`` steps.
        """
        currents_q = np.asarray(currents_q)
        if currents_q.ndim != 2 or currents_q.shape[1] != self.config.neurons:
            raise ValueError(
                f"currents_q must have shape (steps, {self.config.neurons}), not "
                f"{currents_q.shape}")
        spikes = np.zeros(currents_q.shape, dtype=bool)
        v_pre = np.zeros(currents_q.shape, dtype=np.int64)
        for s, c in enumerate(currents_q):
            r = self.step(c)
            spikes[s] = r.spikes
            v_pre[s] = r.v_pre
        return spikes, v_pre


def to_beats(values, lanes):
    """Group per-timestep neuron values ``(S, N)`` into stream beats ``(S * ceil(N/P), P)``.

    Beat ``k`` of a timestep carries neurons ``k*P .. k*P+P-1``; lanes past ``N`` in the
    last beat are zero.
    """
    values = np.asarray(values)
    S, N = values.shape
    per = -(-N // lanes)
    padded = np.zeros((S, per * lanes), dtype=values.dtype)
    padded[:, :N] = values
    return padded.reshape(S * per, lanes)


def from_beats(beats, neurons):
    """Inverse of :func:`to_beats`: ``(S * ceil(N/P), P)`` -> ``(S, N)``."""
    beats = np.asarray(beats)
    lanes = beats.shape[1]
    per = -(-neurons // lanes)
    return beats.reshape(-1, per * lanes)[:, :neurons]
