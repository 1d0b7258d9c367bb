"""A whole spiking network: description, float eval model and bit-exact integer model.

Three views of one trained multilayer perceptron SNN (direct input encoding, LIF hidden
layers with the MPBN paper's neuron, integrate-only readout, paper Eqs. 1-3):

:class:`Network`
    The trained parameters as the trainer exports them: per layer ``weight``/``bias``, the
    normalizer after the synapses (``norm``, see :data:`NORMS`) with its eval-mode state, and
    optionally MPBN before the comparator. :meth:`Network.forward` evaluates every
    normalizer literally (eval mode) -- the float reference.
:class:`FoldedNetwork`
    :meth:`Network.fold`: tdBN/BN and the homeostatic norm folded into weight and bias,
    the per-timestep normalizers (BNTT, TEBN, TAB, temporal homeostatic) as per-timestep
    affine tables, MPBN as per-neuron firing rules (:func:`golden.fold.fold_mpbn`). Same
    float function; this is what NIR export and quantization start from.
:class:`IntegerNetwork`
    The bit-exact integer model the hardware implements (rules below); its LIF stages are
    :class:`golden.core.CoreModel` instances, whose own docstring defines the neuron.

Float model (one sample; ``x`` the analog input, the same at every step)::

    c[l, t]   = W[l] @ s[l-1, t] + bias[l]          s[-1, t] = x (direct encoding)
    c[l, t]   = a[l][t] * c[l, t] + b[l][t]         only for per-timestep normalizers
    u_pre     = tau * u + c[l, t];  s[l, t] = rule[l].fires(u_pre);  u = u_pre * (1 - s)
    logits    = mean_t c[L, t]                      readout layer L: integrate only (Eq. 3)

Integer model -- the specification the hardware follows
-------------------------------------------------------

All values are signed two's-complement integers; ``q`` in format ``Fixed(B, F)`` means
``q / 2**F``. ``>>`` is :func:`golden.fixed.floor_shift` (arithmetic, toward minus
infinity; a negative shift is an exact left shift); ``sat_X`` clamps to format X (never
wraps). Per layer ``l`` (``n_in`` inputs, ``n_out`` neurons) with formats from
:class:`LayerFormats`: weight ``Fw = Fixed(Bw, Fwf)``, current ``Fc = Fixed(Bc, Fcf)``,
membrane ``Fm = Fixed(Bm, Fmf)`` (``Fmf >= Fcf``), affine scale ``Fa``; input
``Fx = Fixed(Bx, Fxf)``.

=========  =================================================================================
stage      integer rule
=========  =================================================================================
input      ``x_q = sat_x(round_half_up(x * 2**Fxf))``, once per sample, fed at every step
weights    ``W_q = sat_w(round_half_up(W * 2**Fwf))`` (folded W), shape ``(n_out, n_in)``
acc grid   ``Facc = Fwf + Fxf`` (layer 0, analog input); ``Facc = Fwf`` (spike input)
bias       ``bias_q = round_half_up(bias * 2**Facc)`` on the accumulator grid;
           ``Bb`` = smallest signed width holding every ``bias_q`` of the layer
synapse 0  ``acc[i] = bias_q[i] + sum_j W_q[i, j] * x_q[j]``
synapse l  ``acc[i] = bias_q[i] + sum_{j : s[l-1, t, j] = 1} W_q[i, j]`` (spike-driven, no
           multiplier)
acc width  ``Bacc = max(P, Bb) + ceil(log2(n_in + 1))`` with product width ``P = Bw + Bx``
           (layer 0) or ``P = Bw`` (spikes); the sum cannot overflow ``Bacc`` bits
current    ``c_q = sat_c(acc >> (Facc - Fcf))``
LIF        ``golden.core.CoreModel`` of ``n_out`` neurons, config ``current = Fc``,
           ``membrane = threshold = Fm``, ``tau``, ``reset = "zero"``, affine stage (per-
           timestep normalizers, ``channels = n_out``, ``scale = Fa``) or none; threshold
           table from :func:`golden.quantize.quantize_rule` on ``Fm``. Its spikes
           ``s[l, t]`` drive layer ``l + 1`` at the same step ``t``.
readout    last layer: no LIF; ``logit_q[k] = sum_{t < T} c_q[t, k]`` in
           ``Bc + ceil(log2 T)`` bits (cannot overflow). The float logits are
           ``logit_q / (T * 2**Fcf)``; no division is needed for the decision.
decision   ``class = argmax_k logit_q[k]``; ties go to the lowest index ``k``.
=========  =================================================================================

Saturation is counted at every clamp: input and current per layer and the core's own
affine and membrane counters in :attr:`IntegerResult.saturations`; clipped weights in
:attr:`IntegerLayer.weight_clipped`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .core import CoreConfig, CoreModel
from .fixed import Fixed, check_finite, floor_shift, round_half_up
from .fold import (
    AffineRule, Compare, ThresholdRule, affine_from_bn, fold_into_weights, fold_mpbn,
)
from .lif import lif, lif_folded
from .quantize import AffineTable, ThresholdTable, quantize_affine, quantize_rule

__all__ = [
    "NORMS", "NORM_PARAMS", "PER_TIMESTEP_NORMS", "METHODS", "Layer", "Network", "FoldedLayer",
    "FoldedNetwork", "LayerFormats", "NetworkFormats", "IntegerLayer", "IntegerNetwork",
    "IntegerResult", "FloatResult", "MPBN_PARAMS",
]

#: Normalizers after the synapses. ``bn`` is batch norm with statistics pooled over T and N,
#: ``tdbn`` the same with the fixed factor ``alpha * v_th`` on the normalized term.
NORMS = ("none", "bn", "tdbn", "bntt", "tebn", "tab", "homeostatic", "temporal-homeostatic")

#: Training methods (the ablation rows): a normalizer after the synapses, or "mpbn" =
#: tdBN after the synapses + MPBN before the comparator.
METHODS = ("none", "bn", "tdbn", "bntt", "tebn", "tab", "mpbn", "homeostatic",
           "temporal-homeostatic")

#: Normalizers that differ per timestep: they become an affine stage in the LIF core.
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

MPBN_PARAMS = ("gamma", "beta", "running_mean", "running_var")


def shape_of(code, T, C):
    return {"C": (C,), "TC": (T, C), "T": (T,)}[code]


def _bits_for(values):
    """Smallest signed two's-complement width holding every integer in ``values``."""
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return 1
    hi = int(values.max())
    lo = int(values.min())
    return max(1, max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1)


# -- trained description --------------------------------------------------------------------

@dataclass
class Layer:
    """One dense layer as trained.

    Parameters
    ----------
    weight : ndarray (n_out, n_in)
    bias : ndarray (n_out,)
    norm : str
        One of :data:`NORMS`; applied to the synapse output ``W x + bias``.
    norm_params : dict of ndarray
        Eval-mode state, names and shapes from :data:`NORM_PARAMS`.
    norm_eps : float
    norm_alpha : float
        tdBN's ``alpha`` (the fixed factor is ``alpha * v_th``).
    mpbn : dict of ndarray or None
        MPBN state (``gamma``, ``beta``, ``running_mean``, ``running_var``, each ``(n_out,)``)
        applied to the membrane before the comparator only.
    mpbn_eps : float
    readout : bool
        Integrate-only output layer (no LIF, no normalizer, no MPBN).
    """

    weight: np.ndarray
    bias: np.ndarray
    norm: str = "none"
    norm_params: dict = field(default_factory=dict)
    norm_eps: float = 1e-5
    norm_alpha: float = 1.0
    mpbn: dict | None = None
    mpbn_eps: float = 1e-5
    readout: bool = False

    @property
    def n_in(self):
        return self.weight.shape[1]

    @property
    def n_out(self):
        return self.weight.shape[0]

    def check(self, T, where="layer"):
        """Validate shapes, finiteness and normalizer state; store float64 arrays."""
        self.weight = check_finite(f"{where}.weight", self.weight)
        if self.weight.ndim != 2:
            raise ValueError(f"{where}.weight must be 2-D (n_out, n_in), not {self.weight.shape}")
        self.bias = check_finite(f"{where}.bias", self.bias)
        if self.bias.shape != (self.n_out,):
            raise ValueError(f"{where}.bias must have shape ({self.n_out},), not {self.bias.shape}")
        if self.norm not in NORMS:
            raise ValueError(f"{where}.norm must be one of {NORMS}, not {self.norm!r}")
        if self.readout and (self.norm != "none" or self.mpbn is not None):
            raise ValueError(f"{where} is the readout: it takes no normalizer and no MPBN")
        want = NORM_PARAMS[self.norm]
        unknown = set(self.norm_params) - set(want)
        if unknown:
            raise ValueError(f"{where}: unknown {self.norm} parameters {sorted(unknown)}")
        for name, code in want.items():
            key = f"{where}.norm.{name}"
            if name not in self.norm_params:
                raise ValueError(f"{key} is missing")
            arr = check_finite(key, self.norm_params[name])
            shape = shape_of(code, T, self.n_out)
            if arr.shape != shape:
                raise ValueError(f"{key} must have shape {shape}, not {arr.shape}")
            if name == "running_var" and np.any(arr < 0):
                raise ValueError(f"{key} must be >= 0")
            self.norm_params[name] = arr
        for name, value in (("norm_eps", self.norm_eps), ("mpbn_eps", self.mpbn_eps)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{where}.{name} must be a positive number, not {value!r}")
        if not (isinstance(self.norm_alpha, (int, float)) and math.isfinite(self.norm_alpha)):
            raise ValueError(f"{where}.norm_alpha must be a finite number, not {self.norm_alpha!r}")
        if self.mpbn is not None:
            unknown = set(self.mpbn) - set(MPBN_PARAMS)
            if unknown:
                raise ValueError(f"{where}: unknown mpbn parameters {sorted(unknown)}")
            for name in MPBN_PARAMS:
                key = f"{where}.mpbn.{name}"
                if name not in self.mpbn:
                    raise ValueError(f"{key} is missing")
                arr = check_finite(key, self.mpbn[name])
                if arr.shape != (self.n_out,):
                    raise ValueError(f"{key} must have shape ({self.n_out},), not {arr.shape}")
                if name == "running_var" and np.any(arr < 0):
                    raise ValueError(f"{key} must be >= 0")
                self.mpbn[name] = arr
        return self

    # -- eval-mode normalizers, literally ------------------------------------------------

    def normalize(self, c, v_th):
        """Eval-mode normalizer on synapse outputs ``c`` of shape ``(T, B, C)``."""
        p = self.norm_params
        eps = self.norm_eps
        kind = self.norm
        if kind == "none":
            return c
        if kind in ("bn", "tdbn"):
            k = p["gamma"] * (self.norm_alpha * v_th if kind == "tdbn" else 1.0)
            return k * (c - p["running_mean"]) / np.sqrt(p["running_var"] + eps) + p["beta"]
        if kind == "bntt":
            return (p["gamma"][:, None] * (c - p["running_mean"][:, None])
                    / np.sqrt(p["running_var"][:, None] + eps))
        if kind == "tebn":
            y = p["gamma"] * (c - p["running_mean"]) / np.sqrt(p["running_var"] + eps) + p["beta"]
            return p["p"][:, None, None] * y
        if kind == "tab":
            y = (p["gamma"][:, None] * (c - p["running_mean"][:, None])
                 / np.sqrt(p["running_var"][:, None] + eps) + p["beta"][:, None])
            return (p["p"] ** 2)[:, None, None] * y
        if kind == "homeostatic":
            return p["gamma"] * (p["g"] * c + p["b"]) + p["beta"]
        if kind == "temporal-homeostatic":
            return (p["gamma"][:, None] * (p["g"][:, None] * c + p["b"][:, None])
                    + p["beta"][:, None])
        raise AssertionError(kind)

    def mpbn_fn(self):
        if self.mpbn is None:
            return None
        m = self.mpbn
        s = np.sqrt(m["running_var"] + self.mpbn_eps)
        return lambda u: m["gamma"] * (u - m["running_mean"]) / s + m["beta"]

    # -- fold ----------------------------------------------------------------------------

    def fold(self, T, v_th):
        """This layer with every normalizer folded (see the module docstring)."""
        p = self.norm_params
        eps = self.norm_eps
        weight, bias = self.weight, self.bias
        affine = None
        kind = self.norm
        if kind in ("bn", "tdbn"):
            k = self.norm_alpha * v_th if kind == "tdbn" else 1.0
            a, b = affine_from_bn(gamma=p["gamma"] * k, beta=p["beta"],
                                  running_mean=p["running_mean"],
                                  running_var=p["running_var"], eps=eps)
            weight, bias = fold_into_weights(weight, bias, a, b)
        elif kind == "homeostatic":
            weight, bias = fold_into_weights(weight, bias, p["gamma"] * p["g"],
                                             p["gamma"] * p["b"] + p["beta"])
        elif kind == "bntt":
            a, b = affine_from_bn(gamma=p["gamma"], beta=np.zeros_like(p["gamma"]),
                                  running_mean=p["running_mean"],
                                  running_var=p["running_var"], eps=eps)
            affine = AffineRule(a, b)
        elif kind == "tebn":
            a, b = affine_from_bn(gamma=p["gamma"], beta=p["beta"],
                                  running_mean=p["running_mean"],
                                  running_var=p["running_var"], eps=eps,
                                  scale=p["p"][:, None])
            affine = AffineRule(a, b)
        elif kind == "tab":
            a, b = affine_from_bn(gamma=p["gamma"], beta=p["beta"],
                                  running_mean=p["running_mean"],
                                  running_var=p["running_var"], eps=eps,
                                  scale=(p["p"] ** 2)[:, None])
            affine = AffineRule(a, b)
        elif kind == "temporal-homeostatic":
            affine = AffineRule(p["gamma"] * p["g"], p["gamma"] * p["b"] + p["beta"])
        if affine is not None and affine.T != T:
            affine = AffineRule(np.broadcast_to(affine.a, (T, self.n_out)).copy(),
                                np.broadcast_to(affine.b, (T, self.n_out)).copy())
        if self.readout:
            rule = None
        elif self.mpbn is not None:
            rule = fold_mpbn(v_th=v_th, eps=self.mpbn_eps, **self.mpbn)
        else:
            rule = ThresholdRule(np.full(self.n_out, float(v_th)),
                                 np.full(self.n_out, Compare.GT, dtype=np.int8))
        return FoldedLayer(np.array(weight, dtype=np.float64), np.array(bias, dtype=np.float64),
                           rule, affine)


@dataclass
class FloatResult:
    """Float evaluation: ``logits`` (B, classes) = mean over T of the readout currents;
    ``spikes`` per hidden layer (T, B, n_out) bool; ``currents`` per layer (T, B, n_out)
    (after any per-timestep normalizer); ``u_pre`` per hidden layer."""

    logits: np.ndarray
    spikes: list
    currents: list
    u_pre: list

    def predict(self):
        return np.argmax(self.logits, axis=1)


def _check_input(x, n_in):
    x = check_finite("x", x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"x must have shape (B, {n_in}), not {x.shape}")
    return x


@dataclass
class Network:
    """A trained dense SNN (see the module docstring).

    Parameters
    ----------
    layers : list of Layer
        Hidden LIF layers, then one readout layer (``readout=True``).
    T : int
        Timesteps per sample.
    tau : float
        Leak (decay) factor of the LIF (paper: 0.25).
    v_th : float
        Firing threshold the comparator uses (paper: 0.5).
    meta : dict
        Free-form JSON-able metadata (training settings, accuracy, data set).
    """

    layers: list
    T: int = 4
    tau: float = 0.25
    v_th: float = 0.5
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.check()

    def check(self):
        if not isinstance(self.T, (int, np.integer)) or isinstance(self.T, bool) or self.T < 1:
            raise ValueError(f"T must be a positive integer, not {self.T!r}")
        self.T = int(self.T)
        for name in ("tau", "v_th"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, not {value!r}")
            setattr(self, name, float(value))
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], not {self.tau!r}")
        if not self.layers:
            raise ValueError("a network needs at least one layer (the readout)")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a Layer, not {type(layer).__name__}")
            layer.check(self.T, where=f"layer{i}")
            last = i == len(self.layers) - 1
            if layer.readout != last:
                raise ValueError(
                    f"layer{i}: readout must be {last} (only the last layer is the readout)")
            if i and layer.n_in != self.layers[i - 1].n_out:
                raise ValueError(
                    f"layer{i}.weight has {layer.n_in} inputs but layer{i - 1} has "
                    f"{self.layers[i - 1].n_out} neurons")
        return self

    @property
    def sizes(self):
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]

    def forward(self, x):
        """Float eval-mode reference with every normalizer evaluated literally."""
        x = _check_input(x, self.layers[0].n_in)
        s = np.broadcast_to(x, (self.T,) + x.shape)
        spikes, currents, u_pres = [], [], []
        for layer in self.layers:
            c = s @ layer.weight.T + layer.bias
            c = layer.normalize(c, self.v_th)
            currents.append(c)
            if layer.readout:
                return FloatResult(c.mean(axis=0), spikes, currents, u_pres)
            o, u_pre = lif(c, tau=self.tau, v_th=self.v_th, norm=layer.mpbn_fn())
            spikes.append(o)
            u_pres.append(u_pre)
            s = o.astype(np.float64)
        raise AssertionError("no readout layer")

    def fold(self):
        """The :class:`FoldedNetwork` computing the same function."""
        return FoldedNetwork([layer.fold(self.T, self.v_th) for layer in self.layers],
                             T=self.T, tau=self.tau)


# -- folded float network -------------------------------------------------------------------

@dataclass
class FoldedLayer:
    """Folded dense layer: ``c = weight @ s + bias``, then ``affine`` (per-timestep, or
    ``None``), then a LIF with firing ``rule`` (``None`` for the readout)."""

    weight: np.ndarray
    bias: np.ndarray
    rule: ThresholdRule | None
    affine: AffineRule | None = None

    @property
    def n_in(self):
        return self.weight.shape[1]

    @property
    def n_out(self):
        return self.weight.shape[0]

    @property
    def readout(self):
        return self.rule is None


@dataclass
class FoldedNetwork:
    layers: list
    T: int = 4
    tau: float = 0.25

    def __post_init__(self):
        if not self.layers or not self.layers[-1].readout:
            raise ValueError("the last folded layer must be the readout (rule=None)")
        for i, layer in enumerate(self.layers):
            if layer.readout and i != len(self.layers) - 1:
                raise ValueError(f"layer{i} has no firing rule but is not the last layer")
            if layer.rule is not None and layer.rule.shape != (layer.n_out,):
                raise ValueError(f"layer{i}.rule has shape {layer.rule.shape}, expected "
                                 f"({layer.n_out},)")
            if layer.affine is not None:
                if layer.readout:
                    raise ValueError(f"layer{i}: the readout takes no affine stage")
                if layer.affine.a.shape != (self.T, layer.n_out):
                    raise ValueError(f"layer{i}.affine has shape {layer.affine.a.shape}, "
                                     f"expected (T, n_out) = ({self.T}, {layer.n_out})")

    @property
    def sizes(self):
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]

    def forward(self, x):
        """Float evaluation of the folded network; same :class:`FloatResult` as
        :meth:`Network.forward`."""
        x = _check_input(x, self.layers[0].n_in)
        s = np.broadcast_to(x, (self.T,) + x.shape)
        spikes, currents, u_pres = [], [], []
        for layer in self.layers:
            c = s @ layer.weight.T + layer.bias
            if layer.affine is not None:
                c = np.stack([layer.affine.apply(c[t], t) for t in range(self.T)])
            currents.append(c)
            if layer.readout:
                return FloatResult(c.mean(axis=0), spikes, currents, u_pres)
            o, u_pre = lif_folded(c, layer.rule, tau=self.tau)
            spikes.append(o)
            u_pres.append(u_pre)
            s = o.astype(np.float64)
        raise AssertionError("no readout layer")


# -- fixed-point formats --------------------------------------------------------------------

@dataclass(frozen=True)
class LayerFormats:
    """Fixed-point formats of one layer (``membrane``/``scale`` are ``None`` for the readout;
    ``scale`` is ``None`` without an affine stage)."""

    weight: Fixed
    current: Fixed
    membrane: Fixed | None = None
    scale: Fixed | None = None

    def __post_init__(self):
        for name in ("weight", "current"):
            if not isinstance(getattr(self, name), Fixed):
                raise TypeError(f"{name} must be a Fixed format, not {getattr(self, name)!r}")
        for name in ("membrane", "scale"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Fixed):
                raise TypeError(f"{name} must be a Fixed format or None, not {value!r}")

    def to_json(self):
        return {k: (None if v is None else v.to_json()) for k, v in
                (("weight", self.weight), ("current", self.current),
                 ("membrane", self.membrane), ("scale", self.scale))}

    @classmethod
    def from_json(cls, obj):
        unknown = set(obj) - {"weight", "current", "membrane", "scale"}
        if unknown:
            raise ValueError(f"unknown layer format fields {sorted(unknown)}")
        return cls(**{k: (None if obj.get(k) is None else Fixed.from_json(obj[k]))
                      for k in ("weight", "current", "membrane", "scale")})


@dataclass(frozen=True)
class NetworkFormats:
    """Input format plus one :class:`LayerFormats` per layer."""

    input: Fixed
    layers: tuple

    def to_json(self):
        return {"input": self.input.to_json(), "layers": [f.to_json() for f in self.layers]}

    @classmethod
    def from_json(cls, obj):
        return cls(Fixed.from_json(obj["input"]),
                   tuple(LayerFormats.from_json(f) for f in obj["layers"]))


# -- bit-exact integer network --------------------------------------------------------------

@dataclass
class IntegerLayer:
    """Integer tables of one layer; ``core`` is ``None`` for the readout."""

    W_q: np.ndarray
    bias_q: np.ndarray
    acc_frac: int
    formats: LayerFormats
    input_bits: int | None          # Bx for the analog first layer, None for spike input
    weight_clipped: int = 0
    config: CoreConfig | None = None
    thresholds: ThresholdTable | None = None
    affine: AffineTable | None = None

    @property
    def n_in(self):
        return self.W_q.shape[1]

    @property
    def n_out(self):
        return self.W_q.shape[0]

    @property
    def readout(self):
        return self.config is None

    @property
    def bias_bits(self):
        return _bits_for(self.bias_q)

    @property
    def product_bits(self):
        Bw = self.formats.weight.bits
        return Bw + self.input_bits if self.input_bits is not None else Bw

    @property
    def acc_bits(self):
        """Accumulator width that no sum of this layer can overflow."""
        return max(self.product_bits, self.bias_bits) + math.ceil(math.log2(self.n_in + 1))

    @property
    def shift(self):
        """Right shift from the accumulator grid to the current grid (negative: left)."""
        return self.acc_frac - self.formats.current.frac

    def synapse(self, s_q):
        """Accumulate and requantize: inputs ``(B, n_in)`` integers (``x_q`` or 0/1 spikes)
        -> ``(c_q, saturated)`` with ``c_q`` of shape ``(B, n_out)`` in the current format."""
        acc = np.asarray(s_q, dtype=np.int64) @ self.W_q.T + self.bias_q
        c = floor_shift(acc, self.shift)
        fmt = self.formats.current
        return fmt.saturate(c), int(np.count_nonzero(fmt.overflows(c)))

    def core(self, batch=1):
        """A fresh :class:`CoreModel` of this layer for ``batch`` samples side by side
        (neuron ``b * n_out + i`` is neuron ``i`` of sample ``b``)."""
        if self.readout:
            raise ValueError("the readout layer has no LIF core")
        if batch == 1:
            return CoreModel(self.config, self.thresholds, self.affine)
        cfg = self.config.replace(neurons=self.n_out * batch,
                                  channels=self.config.channels * batch)
        thresholds = ThresholdTable(np.tile(self.thresholds.theta_q, batch),
                                    np.tile(self.thresholds.compare, batch))
        affine = None
        if self.affine is not None:
            affine = AffineTable(np.tile(self.affine.a_q, (1, batch)),
                                 np.tile(self.affine.b_q, (1, batch)))
        return CoreModel(cfg, thresholds, affine)


@dataclass
class IntegerResult:
    """Integer evaluation: ``logits_q`` (B, classes) = sum over T of the readout currents,
    ``spikes`` per hidden layer (T, B, n_out), ``currents_q`` per layer (T, B, n_out) and
    saturation counts per layer (dicts)."""

    logits_q: np.ndarray
    spikes: list
    currents_q: list
    saturations: list

    def predict(self):
        """Class per sample: argmax, ties to the lowest index."""
        return np.argmax(self.logits_q, axis=1)

    def _with_input(self, clipped):
        self.saturations[0]["input"] = clipped
        return self

    def total_saturations(self):
        return sum(sum(s.values()) for s in self.saturations)


@dataclass
class IntegerNetwork:
    """The bit-exact integer network (rules in the module docstring)."""

    layers: list
    input_format: Fixed
    T: int
    tau: float

    @classmethod
    def from_folded(cls, folded, formats):
        """Quantize a :class:`FoldedNetwork` with :class:`NetworkFormats`."""
        if not isinstance(folded, FoldedNetwork):
            raise TypeError(f"folded must be a FoldedNetwork, not {type(folded).__name__}")
        if not isinstance(formats, NetworkFormats):
            raise TypeError(f"formats must be NetworkFormats, not {type(formats).__name__}")
        if len(formats.layers) != len(folded.layers):
            raise ValueError(f"formats has {len(formats.layers)} layers, the network "
                             f"{len(folded.layers)}")
        layers = []
        for i, (layer, fmt) in enumerate(zip(folded.layers, formats.layers)):
            first = i == 0
            acc_frac = fmt.weight.frac + (formats.input.frac if first else 0)
            W_q = fmt.weight.quantize(layer.weight, name=f"layer{i}.weight")
            weight_clipped = int(np.count_nonzero(fmt.weight.overflows(np.clip(
                round_half_up(layer.weight * fmt.weight.scale), -2.0 ** 62, 2.0 ** 62))))
            bias_q = round_half_up(check_finite(f"layer{i}.bias", layer.bias)
                                   * float(2 ** acc_frac)).astype(np.int64)
            if np.any(np.abs(bias_q) >= 2 ** 47):
                raise ValueError(f"layer{i}.bias does not fit 48 bits on the accumulator grid "
                                 f"(2**-{acc_frac}); narrow the weight or input format")
            input_bits = formats.input.bits if first else None
            config = thresholds = affine = None
            if not layer.readout:
                if fmt.membrane is None:
                    raise ValueError(f"layer{i} is a LIF layer: its membrane format is missing")
                has_affine = layer.affine is not None
                if has_affine and fmt.scale is None:
                    raise ValueError(f"layer{i} has an affine stage: its scale format is missing")
                config = CoreConfig(
                    neurons=layer.n_out, T=folded.T, current=fmt.current, membrane=fmt.membrane,
                    tau=folded.tau, reset="zero", affine=has_affine,
                    channels=layer.n_out if has_affine else 1,
                    scale=fmt.scale if has_affine else CoreConfig.scale)
                thresholds = quantize_rule(layer.rule, fmt.membrane)
                if has_affine:
                    affine = quantize_affine(layer.affine, fmt.scale, fmt.membrane)
            layers.append(IntegerLayer(W_q, bias_q, acc_frac, fmt, input_bits, weight_clipped,
                                       config, thresholds, affine))
        return cls(layers, formats.input, folded.T, folded.tau)

    @property
    def logit_bits(self):
        return self.layers[-1].formats.current.bits + math.ceil(math.log2(self.T))

    def quantize_input(self, x):
        """``x_q = sat_x(round_half_up(x * 2**Fxf))`` and the number of clamped values."""
        x = _check_input(x, self.layers[0].n_in)
        s = round_half_up(x * self.input_format.scale)
        return self.input_format.saturate(s), int(np.count_nonzero(
            self.input_format.overflows(np.clip(s, -2.0 ** 62, 2.0 ** 62))))

    def run(self, x, *, per_sample=False):
        """Run samples ``x`` (B, n_in) float; returns :class:`IntegerResult`.

        The batch path runs each layer as one :class:`CoreModel` over ``B * n_out``
        neurons; ``per_sample=True`` runs one ``n_out``-neuron core per sample instead (the
        hardware's view). Both must give identical integers.
        """
        x_q, clipped = self.quantize_input(x)
        if per_sample:
            parts = [self._run(x_q[b:b + 1], 1) for b in range(len(x_q))]
            return IntegerResult(
                np.concatenate([p.logits_q for p in parts]),
                [np.concatenate([p.spikes[i] for p in parts], axis=1)
                 for i in range(len(parts[0].spikes))],
                [np.concatenate([p.currents_q[i] for p in parts], axis=1)
                 for i in range(len(parts[0].currents_q))],
                [{k: sum(p.saturations[i][k] for p in parts) for k in parts[0].saturations[i]}
                 for i in range(len(parts[0].saturations))])._with_input(clipped)
        return self._run(x_q, len(x_q))._with_input(clipped)

    def _run(self, x_q, B):
        T = self.T
        spikes, currents, sats = [], [], []
        inputs = [x_q] * T                            # direct encoding: same x_q every step
        for layer in self.layers:
            sat = {"current": 0}
            c_q = np.empty((T, B, layer.n_out), dtype=np.int64)
            for t in range(T):
                c_q[t], n = layer.synapse(inputs[t])
                sat["current"] += n
            currents.append(c_q)
            if layer.readout:
                sats.append(sat)
                logits_q = c_q.sum(axis=0)
                return IntegerResult(logits_q, spikes, currents, sats)
            core = layer.core(B)
            o = np.empty((T, B, layer.n_out), dtype=bool)
            for t in range(T):
                o[t] = core.step(c_q[t].reshape(-1)).spikes.reshape(B, layer.n_out)
            sat["affine"] = core.saturations.affine
            sat["membrane"] = core.saturations.membrane
            sats.append(sat)
            spikes.append(o)
            inputs = [o[t].astype(np.int64) for t in range(T)]
        raise AssertionError("no readout layer")

    def spec(self):
        """Every width of the datapath, per layer (for the hardware generator and reports)."""
        rows = []
        for i, layer in enumerate(self.layers):
            f = layer.formats
            rows.append({
                "layer": i, "n_in": layer.n_in, "n_out": layer.n_out,
                "input": str(self.input_format) if i == 0 else "spikes",
                "weight": str(f.weight), "bias_bits": layer.bias_bits,
                "acc_frac": layer.acc_frac, "acc_bits": layer.acc_bits,
                "shift": layer.shift, "current": str(f.current),
                "membrane": None if f.membrane is None else str(f.membrane),
                "scale": None if layer.affine is None else str(f.scale),
                "readout_bits": self.logit_bits if layer.readout else None,
            })
        return rows

