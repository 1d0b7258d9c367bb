"""A whole spiking network: a chain of layer kinds in three views, and the one walk over it.

A network is a list of layers, each of a kind registered in :mod:`golden.layers` (``dense``
today), with direct input encoding, LIF layers with the MPBN paper's neuron (each with its
own ``tau``, ``v_th`` and reset: :class:`golden.layers.Neuron`) and an integrate-only
readout last (paper Eqs. 1-3). :func:`walk` is the one layer walk: float eval, the folded
model, calibration (an observer of the walk) and the integer model all go through it.

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
    u_pre     = tau[l] * u + c[l, t];  s[l, t] = rule[l].fires(u_pre)
    u         = u_pre * (1 - s)   (zero reset)  or  u_pre - theta[l] * s   (subtract reset)
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
           ``membrane = threshold = Fm``, the layer's ``tau`` and ``reset``, affine stage (per-
           timestep normalizers, ``channels = n_out``, ``scale = Fa``) or none; threshold
           table from :func:`golden.quantize.quantize_rule` on ``Fm``. Its spikes
           ``s[l, t]`` drive layer ``l + 1`` at the same step ``t``.
readout    last layer: no LIF; ``logit_q[k] = sum_{t < T} c_q[t, k]`` in
           ``Bc + ceil(log2 T)`` bits (cannot overflow). The float logits are
           ``logit_q / (T * 2**Fcf)``; no division is needed for the decision.
decision   ``class = argmax_k logit_q[k]``; ties go to the lowest index ``k``.
=========  =================================================================================

The ``conv2d``, ``pool2d`` and ``flatten`` kinds state their rows in their own modules
(:mod:`golden.layers.conv2d`, ...); a layer after a sum pooling layer reads counts, not
spikes (its product width grows accordingly).

Saturation is counted at every clamp: input and current per layer and the core's own
affine and membrane counters in :attr:`IntegerResult.saturations`; clipped weights in
:attr:`IntegerLayer.weight_clipped`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .fixed import Fixed, check_finite, round_half_up
from .layers import KINDS, LayerFormats, Neuron, Trace, bits_for
from .layers.dense import MPBN_PARAMS, Dense, FoldedDense, IntegerDense
from .layers.pool import absorb_average
from .normalizers import NORM_EPS, NORM_PARAMS, NORMS, PER_TIMESTEP_NORMS, param_shape

__all__ = [
    "NORMS", "NORM_PARAMS", "PER_TIMESTEP_NORMS", "METHODS", "Layer", "Network", "FoldedLayer",
    "FoldedNetwork", "LayerFormats", "NetworkFormats", "IntegerLayer", "IntegerNetwork",
    "IntegerResult", "FloatResult", "MPBN_PARAMS", "Neuron", "walk",
]

#: Training methods (the ablation rows): a normalizer after the synapses, or "mpbn" =
#: tdBN after the synapses + MPBN before the comparator.
METHODS = ("none", "bn", "tdbn", "bntt", "tebn", "tab", "mpbn", "homeostatic",
           "temporal-homeostatic")

#: The dense kind under its first names (model file v1, the trainer, NIR).
Layer = Dense
FoldedLayer = FoldedDense
IntegerLayer = IntegerDense

shape_of = param_shape
_bits_for = bits_for


# -- the one walk ---------------------------------------------------------------------------

def walk(layers, s, step, observe=None):
    """Run the sequence ``s`` (T, B, *in_shape) through ``layers``, one layer at a time.

    ``step(i, layer, s)`` returns the layer's :class:`~golden.layers.Trace`, whose ``out``
    feeds the next layer; ``observe(i, layer, s, trace)`` (optional) sees every layer's
    input and trace (calibration). Returns the list of traces.
    """
    traces = []
    for i, layer in enumerate(layers):
        trace = step(i, layer, s)
        if observe is not None:
            observe(i, layer, s, trace)
        traces.append(trace)
        s = trace.out
    return traces


def _check_input(x, in_shape):
    """``x`` as float64 ``(B, *in_shape)``; one sample without the batch axis is accepted."""
    in_shape = tuple(in_shape)
    x = check_finite("x", x)
    if x.shape == in_shape:
        x = x[None]
    if x.ndim >= 2 and x.shape[1:] != in_shape and int(np.prod(x.shape[1:])) == \
            int(np.prod(in_shape)) and len(in_shape) > 1:
        x = x.reshape((len(x),) + in_shape)
    if x.shape[1:] != in_shape:
        want = ", ".join(map(str, in_shape))
        raise ValueError(f"x must have shape (B, {want}), not {x.shape}")
    return x


def _check_chain(layers, where_prefix="layer"):
    """The readout is last and alone; each layer's input shape is the previous output's."""
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        readout = getattr(layer, "readout", False)
        if readout != last:
            if last:
                raise ValueError(f"the last {where_prefix} must be the readout (an "
                                 f"integrate-only dense layer), not {layer.kind}")
            raise ValueError(f"{where_prefix}{i}: readout must be {last} (only the last layer "
                             f"is the readout)")
        if i:
            prev = layers[i - 1].out_shape
            ok = (int(np.prod(prev)) == int(np.prod(layer.in_shape))
                  if layer.kind == "dense" else tuple(prev) == tuple(layer.in_shape))
            if not ok and layer.kind == "dense":
                raise ValueError(
                    f"{where_prefix}{i}.weight has {int(np.prod(layer.in_shape))} inputs but "
                    f"{where_prefix}{i - 1} has {int(np.prod(prev))} outputs (shape "
                    f"{tuple(prev)})")
            if not ok:
                raise ValueError(
                    f"{where_prefix}{i} ({layer.kind}) takes inputs of shape "
                    f"{tuple(layer.in_shape)} but {where_prefix}{i - 1} gives "
                    f"{tuple(prev)}")


def _positive_T(T):
    if not isinstance(T, (int, np.integer)) or isinstance(T, bool) or T < 1:
        raise ValueError(f"T must be a positive integer, not {T!r}")
    return int(T)


# -- results ----------------------------------------------------------------------------------

@dataclass
class FloatResult:
    """Float evaluation: ``logits`` (B, classes) = mean over T of the readout currents;
    ``spikes`` per spiking layer (T, B, *out_shape) bool; ``currents`` per layer with
    synapses (after any per-timestep normalizer); ``u_pre`` per spiking layer; ``traces``
    one :class:`~golden.layers.Trace` per layer."""

    logits: np.ndarray
    spikes: list
    currents: list
    u_pre: list
    traces: list = field(default_factory=list)

    @classmethod
    def from_traces(cls, traces):
        return cls(traces[-1].out.mean(axis=0),
                   [t.spikes for t in traces if t.spikes is not None],
                   [t.current for t in traces if t.current is not None],
                   [t.u_pre for t in traces if t.spikes is not None], traces)

    def predict(self):
        return np.argmax(self.logits, axis=1)


@dataclass
class IntegerResult:
    """Integer evaluation: ``logits_q`` (B, classes) = sum over T of the readout currents,
    ``spikes`` per spiking layer (T, B, *out_shape), ``currents_q`` per layer with synapses,
    saturation counts per layer (dicts, one per layer) and the per-layer ``traces``."""

    logits_q: np.ndarray
    spikes: list
    currents_q: list
    saturations: list
    traces: list = field(default_factory=list)

    @classmethod
    def from_traces(cls, traces):
        return cls(traces[-1].out.sum(axis=0),
                   [t.spikes for t in traces if t.spikes is not None],
                   [t.current for t in traces if t.current is not None],
                   [dict(t.saturations) for t in traces], traces)

    def predict(self):
        """Class per sample: argmax, ties to the lowest index."""
        return np.argmax(self.logits_q, axis=1)

    def _with_input(self, clipped):
        self.saturations[0]["input"] = clipped
        return self

    def total_saturations(self):
        return sum(sum(s.values()) for s in self.saturations)


# -- trained description --------------------------------------------------------------------

@dataclass
class Network:
    """A trained SNN: a chain of layers (see the module docstring).

    Parameters
    ----------
    layers : list
        Layers of registered kinds (:data:`golden.layers.KINDS`); the last is the readout.
    T : int
        Timesteps per sample.
    tau : float
        Default leak (decay) factor of the LIF layers without a ``neuron`` (paper: 0.25).
    v_th : float
        Default firing threshold (paper: 0.5).
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
        self.T = _positive_T(self.T)
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
            if type(layer) not in KINDS.values():
                raise TypeError(f"layers[{i}] must be a layer of a registered kind "
                                f"({sorted(KINDS)}), not {type(layer).__name__}")
            layer.check(self.T, where=f"layer{i}")
        _check_chain(self.layers)
        return self

    @property
    def default_neuron(self):
        return Neuron(self.tau, self.v_th, "zero")

    def neuron(self, i):
        """The :class:`~golden.layers.Neuron` of layer ``i`` (its own, or the default)."""
        return getattr(self.layers[i], "neuron", None) or self.default_neuron

    @property
    def input_shape(self):
        return tuple(self.layers[0].in_shape)

    @property
    def sizes(self):
        """Flat sizes: the input, then each layer's output."""
        return [int(np.prod(self.input_shape))] + [int(np.prod(layer.out_shape))
                                                   for layer in self.layers]

    def forward(self, x):
        """Float eval-mode reference with every normalizer evaluated literally."""
        x = _check_input(x, self.input_shape)
        s = np.broadcast_to(x, (self.T,) + x.shape)
        traces = walk(self.layers, s, lambda i, layer, s: layer.forward(
            s, self.neuron(i), where=f"layer{i}"))
        return FloatResult.from_traces(traces)

    def fold(self):
        """The :class:`FoldedNetwork` computing the same function."""
        return FoldedNetwork([layer.fold(self.T, self.neuron(i), where=f"layer{i}")
                              for i, layer in enumerate(self.layers)], T=self.T, tau=self.tau)


# -- folded float network -------------------------------------------------------------------

@dataclass
class FoldedNetwork:
    """Every normalizer folded; the same float function as the :class:`Network`.

    ``tau`` is the leak of the LIF layers whose folded layer has no ``neuron`` (hard reset).
    """

    layers: list
    T: int = 4
    tau: float = 0.25

    def __post_init__(self):
        self.T = _positive_T(self.T)
        self.layers = absorb_average(self.layers)
        if not self.layers or not getattr(self.layers[-1], "readout", False):
            raise ValueError("the last folded layer must be the readout (rule=None)")
        for i, layer in enumerate(self.layers):
            if getattr(layer, "readout", False) and i != len(self.layers) - 1:
                raise ValueError(f"layer{i} has no firing rule but is not the last layer")
            layer.check(self.T, where=f"layer{i}")
        _check_chain(self.layers)

    def neuron(self, i):
        return getattr(self.layers[i], "neuron", None) or Neuron(self.tau, 0.5, "zero")

    @property
    def input_shape(self):
        return tuple(self.layers[0].in_shape)

    @property
    def sizes(self):
        return [int(np.prod(self.input_shape))] + [int(np.prod(layer.out_shape))
                                                   for layer in self.layers]

    def forward(self, x, observe=None):
        """Float evaluation of the folded network; same :class:`FloatResult` as
        :meth:`Network.forward`. ``observe`` as for :func:`walk`."""
        x = _check_input(x, self.input_shape)
        s = np.broadcast_to(x, (self.T,) + x.shape)
        traces = walk(self.layers, s, lambda i, layer, s: layer.forward(
            s, self.neuron(i), where=f"layer{i}"), observe)
        return FloatResult.from_traces(traces)


# -- fixed-point formats --------------------------------------------------------------------

@dataclass(frozen=True)
class NetworkFormats:
    """Input format plus one :class:`LayerFormats` per layer (``None`` for a layer kind
    without formats, e.g. flatten or pooling)."""

    input: Fixed
    layers: tuple

    def to_json(self):
        return {"input": self.input.to_json(),
                "layers": [None if f is None else f.to_json() for f in self.layers]}

    @classmethod
    def from_json(cls, obj):
        return cls(Fixed.from_json(obj["input"]),
                   tuple(LayerFormats.from_json(f) for f in obj["layers"]))


# -- bit-exact integer network --------------------------------------------------------------

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
            layers.append(layer.quantize(fmt, T=folded.T, neuron=folded.neuron(i),
                                         input_format=formats.input if i == 0 else
                                         getattr(layers[-1], "analog_format", None),
                                         prev=layers[-1] if layers else None,
                                         where=f"layer{i}"))
        return cls(layers, formats.input, folded.T, folded.tau)

    @property
    def input_shape(self):
        return tuple(self.layers[0].in_shape)

    @property
    def logit_bits(self):
        return self.layers[-1].formats.current.bits + math.ceil(math.log2(self.T))

    def quantize_input(self, x):
        """``x_q = sat_x(round_half_up(x * 2**Fxf))`` and the number of clamped values."""
        x = _check_input(x, self.input_shape)
        s = round_half_up(x * self.input_format.scale)
        return self.input_format.saturate(s), int(np.count_nonzero(
            self.input_format.overflows(np.clip(s, -2.0 ** 62, 2.0 ** 62))))

    def run(self, x, *, per_sample=False):
        """Run samples ``x`` (B, *input_shape) float; returns :class:`IntegerResult`.

        The batch path runs each LIF layer as one :class:`CoreModel` over all samples'
        neurons; ``per_sample=True`` runs one sample at a time instead (the hardware's
        view). Both must give identical integers.
        """
        x_q, clipped = self.quantize_input(x)
        if per_sample:
            parts = [self._run(x_q[b:b + 1]) for b in range(len(x_q))]
            traces = []
            for i in range(len(self.layers)):
                ts = [p.traces[i] for p in parts]

                def cat(name, ts=ts):
                    values = [getattr(t, name) for t in ts]
                    return None if values[0] is None else np.concatenate(values, axis=1)
                traces.append(Trace(out=cat("out"), current=cat("current"),
                                    spikes=cat("spikes"),
                                    saturations={k: sum(t.saturations[k] for t in ts)
                                                 for k in ts[0].saturations}))
            return IntegerResult.from_traces(traces)._with_input(clipped)
        return self._run(x_q)._with_input(clipped)

    def _run(self, x_q):
        s = np.broadcast_to(x_q, (self.T,) + x_q.shape)      # direct encoding: same every step
        return IntegerResult.from_traces(walk(self.layers, s, lambda i, layer, s: layer.run(s)))

    def spec(self):
        """Every width of the datapath, per layer (for the hardware generator and reports)."""
        rows = []
        for i, layer in enumerate(self.layers):
            if layer.kind != "dense":
                rows.append({"layer": i, "kind": layer.kind,
                             **(layer.spec() if hasattr(layer, "spec") else {})})
                continue
            f = layer.formats
            rows.append({
                "layer": i, "kind": layer.kind, "n_in": layer.n_in, "n_out": layer.n_out,
                "input": (str(self.input_format) if layer.input_bits is not None else
                          "spikes" if layer.input_max == 1 else f"counts 0..{layer.input_max}"),
                "weight": str(f.weight), "bias_bits": layer.bias_bits,
                "acc_frac": layer.acc_frac, "acc_bits": layer.acc_bits,
                "shift": layer.shift, "current": str(f.current),
                "membrane": None if f.membrane is None else str(f.membrane),
                "scale": None if layer.affine is None else str(f.scale),
                "tau": None if layer.config is None else layer.config.tau,
                "reset": None if layer.config is None else layer.config.reset,
                "readout_bits": self.logit_bits if layer.readout else None,
            })
        return rows
