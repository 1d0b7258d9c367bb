"""Layer kind ``dense``: a fully connected synapse, a normalizer, optional MPBN, a LIF.

Trained: ``c = weight @ s + bias``, then the normalizer ``norm`` (any of
:data:`golden.normalizers.NORMS`, eval mode), then the LIF neuron with MPBN before its
comparator; or, with ``readout=True``, an integrate-only output layer (no normalizer, no
LIF: the logits are the mean over T of its currents). The integer rules are the "synapse",
"current", "LIF" and "readout" rows of the table in :mod:`golden.network`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import normalizers as norms
from ..core import CoreConfig, CoreModel
from ..fixed import Fixed, check_finite, floor_shift, round_half_up
from ..fold import AffineRule, Compare, ThresholdRule
from ..lif import lif, lif_folded
from ..quantize import AffineTable, ThresholdTable, quantize_affine, quantize_rule
from .base import LayerFormats, Neuron, Trace, bits_for, register

__all__ = ["Dense", "FoldedDense", "IntegerDense", "MPBN_PARAMS", "calibrate_lif_formats",
           "quantize_lif", "batched_core", "run_core", "core_saturations", "product_bits"]

MPBN_PARAMS = ("gamma", "beta", "running_mean", "running_var")

_PARAMS = {"n_out", "norm", "norm_eps", "norm_alpha", "mpbn", "mpbn_eps", "readout", "neuron"}


def _number(where, value, *, positive=False):
    if (not isinstance(value, (int, float, np.floating)) or isinstance(value, bool)
            or not math.isfinite(value) or (positive and value <= 0)):
        what = "a positive number" if positive else "a finite number"
        raise ValueError(f"{where} must be {what}, not {value!r}")
    return float(value)


def _flat_input(s, n_in, where):
    """``(T, B, n_in)`` view of a sequence whose per-sample shape flattens to ``n_in``."""
    if s.ndim < 3 or int(np.prod(s.shape[2:])) != n_in:
        raise ValueError(f"{where}: input must have shape (T, B, {n_in}), not {s.shape}")
    return s.reshape(s.shape[:2] + (n_in,))


class SynapseWidths:
    """The accumulator rule every integer stage with synapses shares (``W_q``, ``bias_q``,
    ``acc_frac``, ``formats``, ``input_bits``, ``input_max`` and ``terms``, the number of
    products summed per output): bias width, product width, the accumulator width that no
    sum can overflow, and the shift to the current grid."""

    @property
    def bias_bits(self):
        return bits_for(self.bias_q)

    @property
    def product_bits(self):
        return product_bits(self.formats.weight.bits, self.input_bits, self.input_max)

    @property
    def acc_bits(self):
        """Accumulator width that no sum of this layer can overflow."""
        return max(self.product_bits, self.bias_bits) + math.ceil(math.log2(self.terms + 1))

    @property
    def shift(self):
        """Right shift from the accumulator grid to the current grid (negative: left)."""
        return self.acc_frac - self.formats.current.frac


class _DenseShape:
    """Shapes of a dense layer from its ``(n_out, n_in)`` matrix (``_matrix``)."""

    @property
    def n_in(self):
        return self._matrix.shape[1]

    @property
    def n_out(self):
        return self._matrix.shape[0]

    @property
    def in_shape(self):
        return (self.n_in,)

    @property
    def out_shape(self):
        return (self.n_out,)

    @property
    def spiking(self):
        return not self.readout


# -- trained ----------------------------------------------------------------------------------

@register
@dataclass
class Dense(_DenseShape):
    """One dense layer as trained.

    Parameters
    ----------
    weight : ndarray (n_out, n_in)
    bias : ndarray (n_out,)
    norm : str
        One of :data:`golden.normalizers.NORMS`; applied to the synapse output.
    norm_params : dict of ndarray
        Eval-mode state, names and shapes from :data:`golden.normalizers.NORM_PARAMS`.
    norm_eps : float
    norm_alpha : float
        tdBN's ``alpha`` (the fixed factor is ``alpha * v_th``).
    mpbn : dict of ndarray or None
        MPBN state (``gamma``, ``beta``, ``running_mean``, ``running_var``, each ``(n_out,)``)
        applied to the membrane before the comparator only.
    mpbn_eps : float
    readout : bool
        Integrate-only output layer (no LIF, no normalizer, no MPBN).
    neuron : Neuron or None
        This layer's LIF (tau, v_th, reset); ``None`` takes the network's ``tau``/``v_th``
        with hard reset.
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
    neuron: Neuron | None = None

    kind = "dense"

    @property
    def _matrix(self):
        return self.weight

    def check(self, T, where="layer"):
        """Validate shapes, finiteness and normalizer state; store float64 arrays."""
        self.weight = check_finite(f"{where}.weight", self.weight)
        if self.weight.ndim != 2:
            raise ValueError(f"{where}.weight must be 2-D (n_out, n_in), not {self.weight.shape}")
        self.bias = check_finite(f"{where}.bias", self.bias)
        if self.bias.shape != (self.n_out,):
            raise ValueError(f"{where}.bias must have shape ({self.n_out},), not {self.bias.shape}")
        if self.norm not in norms.NORMS:
            raise ValueError(f"{where}.norm must be one of {norms.NORMS}, not {self.norm!r}")
        if self.readout and (self.norm != "none" or self.mpbn is not None):
            raise ValueError(f"{where} is the readout: it takes no normalizer and no MPBN")
        if self.neuron is not None and not isinstance(self.neuron, Neuron):
            raise TypeError(f"{where}.neuron must be a Neuron or None, not {self.neuron!r}")
        if self.readout and self.neuron is not None:
            raise ValueError(f"{where} is the readout: it has no neuron")
        if self.mpbn is not None and self.neuron is not None and self.neuron.reset != "zero":
            raise ValueError(
                f"{where}: MPBN with reset {self.neuron.reset!r} is not supported: the MPBN "
                f"neuron resets to zero (which threshold a subtract reset would remove from "
                f"the raw membrane is not defined); use reset 'zero'")
        want = norms.NORM_PARAMS[self.norm]
        unknown = set(self.norm_params) - set(want)
        if unknown:
            raise ValueError(f"{where}: unknown {self.norm} parameters {sorted(unknown)}")
        for name, code in want.items():
            key = f"{where}.norm.{name}"
            if name not in self.norm_params:
                raise ValueError(f"{key} is missing")
            arr = check_finite(key, self.norm_params[name])
            shape = norms.param_shape(code, T, self.n_out)
            if arr.shape != shape:
                raise ValueError(f"{key} must have shape {shape}, not {arr.shape}")
            if name == "running_var" and np.any(arr < 0):
                raise ValueError(f"{key} must be >= 0")
            self.norm_params[name] = arr
        self.norm_eps = _number(f"{where}.norm_eps", self.norm_eps, positive=True)
        self.mpbn_eps = _number(f"{where}.mpbn_eps", self.mpbn_eps, positive=True)
        self.norm_alpha = _number(f"{where}.norm_alpha", self.norm_alpha)
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

    def _norm(self, T, v_th, where="layer"):
        return norms.from_state(self.norm, self.norm_params, C=self.n_out, T=T,
                                eps=self.norm_eps, alpha=self.norm_alpha, v_th=v_th,
                                where=f"{where}.norm")

    def _mpbn(self, v_th, where="layer"):
        if self.mpbn is None:
            return None
        return norms.mpbn_from_state(self.mpbn, v_th=v_th, eps=self.mpbn_eps,
                                     where=f"{where}.mpbn")

    def forward(self, s, neuron, where="layer"):
        """Float eval on the sequence ``s`` (T, B, n_in) with every normalizer literal."""
        s = _flat_input(s, self.n_in, where)
        T = s.shape[0]
        c = s @ self.weight.T + self.bias
        c = norms.eval_sequence(self._norm(T, neuron.v_th, where), c)
        if self.readout:
            return Trace(out=c, current=c)
        mpbn = self._mpbn(neuron.v_th, where)
        o, u_pre = lif(c, tau=neuron.tau, v_th=neuron.v_th, reset=neuron.reset,
                       fire=neuron.fire,
                       norm=None if mpbn is None else (lambda u: mpbn.forward(u, training=False)))
        return Trace(out=o.astype(np.float64), current=c, u_pre=u_pre, spikes=o)

    def fold(self, T, neuron, where="layer"):
        """This layer with every normalizer folded (see :mod:`golden.network`)."""
        weight, bias, affine = norms.fold_state(self._norm(T, neuron.v_th, where),
                                                self.weight, self.bias, T)
        if self.readout:
            rule = None
        elif self.mpbn is not None:
            rule = self._mpbn(neuron.v_th, where).fold()
        else:
            rule = ThresholdRule(np.full(self.n_out, float(neuron.v_th)),
                                 np.full(self.n_out, Compare.GT, dtype=np.int8))
        return FoldedDense(np.array(weight, dtype=np.float64), np.array(bias, dtype=np.float64),
                           rule, affine, None if self.readout else neuron)

    # -- model file (version 2) -------------------------------------------------------------

    def entries(self):
        """``(params, arrays)`` of this layer's model-file entry."""
        params = {"n_out": int(self.n_out), "norm": self.norm,
                  "norm_eps": float(self.norm_eps), "norm_alpha": float(self.norm_alpha),
                  "mpbn": self.mpbn is not None, "mpbn_eps": float(self.mpbn_eps),
                  "readout": bool(self.readout),
                  "neuron": None if self.neuron is None else self.neuron.to_json()}
        arrays = {"weight": self.weight, "bias": self.bias}
        for name, value in self.norm_params.items():
            arrays[f"norm.{name}"] = value
        if self.mpbn is not None:
            for name in MPBN_PARAMS:
                arrays[f"mpbn.{name}"] = self.mpbn[name]
        return params, arrays

    @classmethod
    def from_entries(cls, params, array, in_shape, T, where):
        """The layer from its model-file ``params`` and ``array(name, shape)``."""
        unknown = set(params) - _PARAMS
        if unknown:
            raise ValueError(f"{where} has unknown fields {sorted(unknown)}")
        n_out = params.get("n_out")
        if not isinstance(n_out, int) or isinstance(n_out, bool) or n_out < 1:
            raise ValueError(f"{where}.n_out must be a positive integer, not {n_out!r}")
        n_in = int(np.prod(in_shape))
        norm = params.get("norm", "none")
        if norm not in norms.NORMS:
            raise ValueError(f"{where}.norm must be one of {norms.NORMS}, not {norm!r}")
        for key in ("norm_eps", "norm_alpha", "mpbn_eps"):
            if key in params:
                _number(f"{where}.{key}", params[key])
        neuron = params.get("neuron")
        return cls(
            array("weight", (n_out, n_in)), array("bias", (n_out,)), norm=norm,
            norm_params={name: array(f"norm.{name}", norms.param_shape(code, T, n_out))
                         for name, code in norms.NORM_PARAMS[norm].items()},
            norm_eps=float(params.get("norm_eps", norms.NORM_EPS[norm])),
            norm_alpha=float(params.get("norm_alpha", 1.0)),
            mpbn=({name: array(f"mpbn.{name}", (n_out,)) for name in MPBN_PARAMS}
                  if params.get("mpbn", False) else None),
            mpbn_eps=float(params.get("mpbn_eps", 1e-5)),
            readout=bool(params.get("readout", False)),
            neuron=None if neuron is None else Neuron.from_json(neuron, f"{where}.neuron"))


# -- folded ------------------------------------------------------------------------------------

@dataclass
class FoldedDense(_DenseShape):
    """Folded dense layer: ``c = weight @ s + bias``, then ``affine`` (per-timestep, or
    ``None``), then a LIF with firing ``rule`` and ``neuron`` (``rule=None``: the readout;
    ``neuron=None``: the network's tau, hard reset)."""

    weight: np.ndarray
    bias: np.ndarray
    rule: ThresholdRule | None
    affine: AffineRule | None = None
    neuron: Neuron | None = None

    kind = "dense"

    @property
    def _matrix(self):
        return self.weight

    @property
    def readout(self):
        return self.rule is None

    def check(self, T, where="layer"):
        if self.rule is not None and self.rule.shape != (self.n_out,):
            raise ValueError(f"{where}.rule has shape {self.rule.shape}, expected "
                             f"({self.n_out},)")
        if self.affine is not None:
            if self.readout:
                raise ValueError(f"{where}: the readout takes no affine stage")
            if self.affine.a.shape != (T, self.n_out):
                raise ValueError(f"{where}.affine has shape {self.affine.a.shape}, "
                                 f"expected (T, n_out) = ({T}, {self.n_out})")
        return self

    def forward(self, s, neuron, where="layer"):
        """Float evaluation of the folded layer on ``s`` (T, B, n_in)."""
        s = _flat_input(s, self.n_in, where)
        raw = s @ self.weight.T + self.bias
        c = raw
        if self.affine is not None:
            c = np.stack([self.affine.apply(raw[t], t) for t in range(raw.shape[0])])
        if self.readout:
            return Trace(out=c, current=c, raw=raw)
        o, u_pre = lif_folded(c, self.rule, tau=neuron.tau, reset=neuron.reset,
                              fire=neuron.fire)
        return Trace(out=o.astype(np.float64), current=c, raw=raw, u_pre=u_pre, spikes=o)

    def calibrate(self, trace, *, bits, weight_bits, headroom, where):
        """:class:`LayerFormats` for this layer from a float walk's ``trace`` of it."""
        from ..calibrate import format_for
        weight = format_for(np.max(np.abs(self.weight)), weight_bits, what=f"{where} weight")
        current = format_for(np.max(np.abs(trace.raw)), bits, headroom=headroom,
                             what=f"{where} current")
        if self.readout:
            return LayerFormats(weight, current)
        membrane, scale, current = calibrate_lif_formats(self.affine, trace, current, bits=bits,
                                                         headroom=headroom, where=where)
        return LayerFormats(weight, current, membrane, scale)

    def quantize(self, fmt, *, T, neuron, input_format, where, prev=None):
        """The :class:`IntegerDense` stage with formats ``fmt`` (``input_format``: the analog
        input's format when this layer reads the network input, else ``None``: spikes;
        ``prev``: the integer stage before this one, or ``None``)."""
        if not isinstance(fmt, LayerFormats):
            raise ValueError(f"{where} needs layer formats (weight, current, ...), not {fmt!r}")
        acc_frac = fmt.weight.frac + (input_format.frac if input_format is not None else 0)
        W_q = fmt.weight.quantize(self.weight, name=f"{where}.weight")
        weight_clipped = int(np.count_nonzero(fmt.weight.overflows(np.clip(
            round_half_up(self.weight * fmt.weight.scale), -2.0 ** 62, 2.0 ** 62))))
        bias_q = round_half_up(check_finite(f"{where}.bias", self.bias)
                               * float(2 ** acc_frac)).astype(np.int64)
        if np.any(np.abs(bias_q) >= 2 ** 47):
            raise ValueError(f"{where}.bias does not fit 48 bits on the accumulator grid "
                             f"(2**-{acc_frac}); narrow the weight or input format")
        input_bits = input_format.bits if input_format is not None else None
        config = thresholds = affine = None
        if not self.readout:
            config, thresholds, affine = quantize_lif(self.rule, self.affine, fmt, T=T,
                                                      neuron=neuron, neurons=self.n_out,
                                                      where=where)
        return IntegerDense(W_q, bias_q, acc_frac, fmt, input_bits, weight_clipped,
                            config, thresholds, affine,
                            input_max=1 if prev is None else int(getattr(prev, "out_max", 1)))


def product_bits(weight_bits, input_bits=None, input_max=1):
    """Width ``P`` of one synapse product ``W_q * s``: the smallest signed width of every
    product of a weight rail and an input rail. The input is analog (``input_bits`` signed
    bits: ``P = Bw + Bx``) or a non-negative integer ``0..input_max`` (spikes: 1, ``P = Bw``;
    counts after a sum pooling layer: ``K``)."""
    w = (-(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1)
    s = ((-(1 << (input_bits - 1)), (1 << (input_bits - 1)) - 1) if input_bits is not None
         else (0, int(input_max)))
    return bits_for([a * b for a in w for b in s])


def calibrate_lif_formats(affine, trace, current, *, bits, headroom, where):
    """Membrane and affine-scale formats of a LIF layer (and the current capped at the
    membrane's grid); shared by every kind with a LIF."""
    from ..calibrate import format_for
    m = max(np.max(np.abs(trace.u_pre)), np.max(np.abs(trace.current)))
    scale = None
    if affine is not None:
        m = max(m, np.max(np.abs(affine.b)))
        scale = format_for(np.max(np.abs(affine.a)), bits, what=f"{where} affine scale")
    membrane = format_for(m, bits, headroom=headroom, what=f"{where} membrane")
    if current.frac > membrane.frac:
        current = Fixed(bits, membrane.frac)
    return membrane, scale, current


def quantize_lif(rule, affine_rule, fmt, *, T, neuron, neurons, where, channels=None):
    """``(CoreConfig, ThresholdTable, AffineTable | None)`` of a LIF layer of ``neurons``
    (flattened) with firing ``rule`` (flattened) and optional per-timestep affine."""
    if fmt.membrane is None:
        raise ValueError(f"{where} is a LIF layer: its membrane format is missing")
    has_affine = affine_rule is not None
    if has_affine and fmt.scale is None:
        raise ValueError(f"{where} has an affine stage: its scale format is missing")
    if channels is None:
        channels = neurons
    config = CoreConfig(
        neurons=neurons, T=T, current=fmt.current, membrane=fmt.membrane,
        tau=neuron.tau, reset=neuron.reset, affine=has_affine,
        channels=channels if has_affine else 1,
        scale=fmt.scale if has_affine else CoreConfig.scale)
    thresholds = quantize_rule(rule.flat() if rule.theta.ndim != 1 else rule, fmt.membrane,
                               fire=neuron.fire)
    affine = quantize_affine(affine_rule, fmt.scale, fmt.membrane) if has_affine else None
    return config, thresholds, affine


# -- bit-exact integer stage ---------------------------------------------------------------

@dataclass
class IntegerDense(_DenseShape, SynapseWidths):
    """Integer tables of one dense layer; ``config`` is ``None`` for the readout."""

    W_q: np.ndarray
    bias_q: np.ndarray
    acc_frac: int
    formats: LayerFormats
    input_bits: int | None          # Bx for the analog first layer, None for spike input
    weight_clipped: int = 0
    config: CoreConfig | None = None
    thresholds: ThresholdTable | None = None
    affine: AffineTable | None = None
    input_max: int = 1              # largest spike/count input (1, or K after a sum pool)

    kind = "dense"
    out_max = 1

    @property
    def _matrix(self):
        return self.W_q

    @property
    def readout(self):
        return self.config is None

    @property
    def terms(self):
        """Terms summed per output: the ``n_in`` inputs."""
        return self.n_in

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
        return batched_core(self.config, self.thresholds, self.affine, batch)

    def run(self, s_q):
        """The integer sequence ``s_q`` (T, B, n_in) through the layer: a :class:`Trace`
        with ``out`` the spikes as int64 (or, for the readout, the currents)."""
        T, B = s_q.shape[:2]
        s_q = s_q.reshape(T, B, self.n_in)
        c_q, n = self.synapse(s_q.reshape(T * B, self.n_in))
        c_q = c_q.reshape(T, B, self.n_out)
        sat = {"current": n}
        if self.readout:
            return Trace(out=c_q, current=c_q, saturations=sat)
        core = self.core(B)
        o = run_core(core, c_q)
        sat.update(core_saturations(core))
        return Trace(out=o.astype(np.int64), current=c_q, spikes=o, saturations=sat)


def batched_core(config, thresholds, affine, batch):
    """A :class:`CoreModel` of ``config`` for ``batch`` samples side by side."""
    if batch == 1:
        return CoreModel(config, thresholds, affine)
    n = config.neurons
    cfg = config.replace(neurons=n * batch, channels=config.channels * batch)
    tables = ThresholdTable(np.tile(thresholds.theta_q, batch), np.tile(thresholds.compare, batch))
    if affine is not None:
        affine = AffineTable(np.tile(affine.a_q, (1, batch)), np.tile(affine.b_q, (1, batch)))
    return CoreModel(cfg, tables, affine)


def run_core(core, c_q):
    """Spikes ``(T, B, *shape)`` of ``core`` driven by currents ``c_q`` of that shape."""
    T, B = c_q.shape[:2]
    o = np.empty(c_q.shape, dtype=bool)
    for t in range(T):
        o[t] = core.step(c_q[t].reshape(-1)).spikes.reshape(c_q.shape[1:])
    return o


def core_saturations(core):
    """The saturation counts of a run ``core`` (``reset`` only with subtract reset)."""
    sat = {"affine": core.saturations.affine, "membrane": core.saturations.membrane}
    if core.config.reset == "subtract":
        sat["reset"] = core.saturations.reset
    return sat
