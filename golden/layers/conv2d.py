"""Layer kind ``conv2d``: a 2-D convolution synapse, a normalizer, optional MPBN, a LIF.

Layout NCHW: one sample's input is ``(C_in, H, W)``, a sequence ``(T, B, C_in, H, W)``; the
weight is ``(C_out, C_in, k, k)`` (square kernels), the output ``(C_out, H_out, W_out)`` with
``H_out = (H + 2 * padding - k) // stride + 1`` (the same for W), ``stride`` 1 or 2, zero
padding. The trained layer is ``c = conv(s, weight) + bias``, then the normalizer ``norm``
(any of :data:`golden.normalizers.NORMS`, eval mode, statistics per output channel), then
the LIF neuron with optional MPBN before its comparator, channel-wise (state ``(C_out,)``)
or element-wise (state ``(C_out, H_out, W_out)``: one threshold per neuron).

Fold: BN/tdBN and the homeostatic norm fold into the weight (scaled per output channel)
and the bias; BNTT, TEBN, TAB and the temporal homeostatic norm become a per-timestep,
per-channel affine table ``(T, C_out)`` applied to every pixel of the channel; MPBN becomes
a firing rule of shape ``(C_out, H_out, W_out)`` (a channel-wise rule is broadcast).

The LIF stage is one :class:`golden.core.CoreModel` over ``N = C_out * H_out * W_out``
neurons flattened channel-major (neuron ``c * H_out * W_out + y * W_out + x``); its affine
stage has ``channels = C_out``, so the ``H_out * W_out`` neurons of a channel share a row
of the table (:meth:`golden.core.CoreConfig.channel_of`).

Integer model (the conv rows; the formats, LIF and readout rows are those of
:mod:`golden.network`; ``Ci = C_in``, ``S = stride``, ``p = padding``)
---------------------------------------------------------------------------------------

==========  ================================================================================
stage       integer rule
==========  ================================================================================
weights     ``W_q = sat_w(round_half_up(W * 2**Fwf))`` (folded W), ``(C_out, Ci, k, k)``
input       ``s[ci, y, x]``: ``x_q`` (layer 0, analog, ``Fx``), spikes 0/1 (after a LIF), or
            counts ``0..K`` (after a sum pooling layer of ``K`` = kernel**2 window values,
            :mod:`golden.layers.pool`); ``s = 0`` outside ``0 <= y < H, 0 <= x < W``
acc grid    ``Facc = Fwf + Fxf`` (analog input); ``Facc = Fwf`` (spikes or counts)
bias        ``bias_q = round_half_up(bias * 2**Facc)``; ``Bb`` its smallest signed width
synapse     ``acc[co, y, x] = bias_q[co] + sum_{ci < Ci, ky < k, kx < k}
            W_q[co, ci, ky, kx] * s[ci, S*y + ky - p, S*x + kx - p]``; spike input: only
            the terms with ``s = 1``, additions only; count input: ``W_q * n`` with
            ``n`` in ``0..K`` (``n`` additions or a small multiply); zero padding adds nothing
product     ``P`` = smallest signed width of every product of a weight rail
            (``-2**(Bw-1)``, ``2**(Bw-1) - 1``) and an input rail: ``Bw + Bx`` (analog),
            ``Bw`` (spikes), ``Bw + ceil(log2(K + 1))`` or less (counts; exactly
            :func:`golden.layers.dense.product_bits`)
acc width   ``Bacc = max(P, Bb) + ceil(log2(Ci * k * k + 1))``; the sum cannot overflow
current     ``c_q = sat_c(acc >> (Facc - Fcf))``
LIF         ``CoreModel`` of ``C_out * H_out * W_out`` neurons, channel-major, as dense
            (``channels = C_out`` for the affine stage); thresholds from the folded rule
            flattened channel-major (:meth:`golden.fold.ThresholdRule.flat`)
==========  ================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import normalizers as norms
from ..core import CoreConfig
from ..fixed import Fixed, check_finite, floor_shift, round_half_up
from ..fold import AffineRule, Compare, ThresholdRule
from ..lif import lif, lif_folded
from ..quantize import AffineTable, ThresholdTable
from .base import FlatSizes, LayerFormats, Neuron, Trace, bits_for, register
from .dense import (
    MPBN_PARAMS, _number, batched_core, calibrate_lif_formats, core_saturations,
    quantize_lif, run_core, SynapseWidths,
)

__all__ = ["Conv2d", "FoldedConv2d", "IntegerConv2d", "windows", "conv_out_size",
           "check_image_shape", "check_sequence", "STRIDES"]

#: Strides a convolution supports.
STRIDES = (1, 2)

_PARAMS = {"out_channels", "kernel", "stride", "padding", "norm", "norm_eps", "norm_alpha",
           "mpbn", "mpbn_elementwise", "mpbn_eps", "neuron"}


# -- shared geometry -------------------------------------------------------------------------

def _positive_int(where, value, minimum=1):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{where} must be {what}, not {value!r}")
    return int(value)


def check_image_shape(where, shape):
    """``shape`` as a tuple ``(C, H, W)`` of positive integers."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"{where} must be (C, H, W), not {shape!r}") from None
    if len(shape) != 3:
        raise ValueError(f"{where} must be (C, H, W), not {shape!r}")
    return tuple(_positive_int(f"{where}[{i}]", v) for i, v in enumerate(shape))


def conv_out_size(size, kernel, stride, padding):
    """Output length of a window ``kernel`` moving by ``stride`` over ``size + 2*padding``."""
    return (size + 2 * padding - kernel) // stride + 1


def windows(x, kernel, stride, padding=0):
    """Every ``kernel x kernel`` window of ``x`` (N, C, H, W): a view ``(N, C, H_out, W_out,
    k, k)`` (zero padding copies once; no loop over pixels)."""
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    view = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(2, 3))
    return view[:, :, ::stride, ::stride]


def check_sequence(s, in_shape, where):
    """``s`` must be a sequence ``(T, B, *in_shape)``."""
    if s.ndim != 2 + len(in_shape) or tuple(s.shape[2:]) != tuple(in_shape):
        want = ", ".join(map(str, in_shape))
        raise ValueError(f"{where}: input must have shape (T, B, {want}), not {s.shape}")
    return s


def _conv(s, weight, bias, stride, padding):
    """``conv(s, weight) + bias`` over a sequence ``(T, B, C, H, W)`` (float or int64)."""
    T, B = s.shape[:2]
    k = weight.shape[-1]
    cols = windows(s.reshape((T * B,) + s.shape[2:]), k, stride, padding)
    out = np.tensordot(cols, weight, axes=([1, 4, 5], [1, 2, 3]))    # (N, Ho, Wo, C_out)
    out = out + bias
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)).reshape(
        (T, B, weight.shape[0]) + out.shape[1:3])


def _check_geometry(where, in_shape, weight, stride, padding):
    """Validate weight shape, stride and padding against ``in_shape``; returns out_shape."""
    C, H, W = in_shape
    if weight.ndim != 4:
        raise ValueError(f"{where}.weight must be 4-D (C_out, C_in, k, k), not {weight.shape}")
    c_out, c_in, kh, kw = weight.shape
    if c_in != C:
        raise ValueError(f"{where}.weight has C_in = {c_in} but the input has {C} channels "
                         f"(shape {weight.shape})")
    if kh != kw:
        raise ValueError(f"{where}.weight must have a square kernel (k, k), not {kh}x{kw}")
    if stride not in STRIDES or isinstance(stride, bool):
        raise ValueError(f"{where}.stride must be one of {STRIDES}, not {stride!r}")
    _positive_int(f"{where}.padding", padding, minimum=0)
    if padding >= kh:
        raise ValueError(f"{where}.padding must be smaller than the kernel ({kh}), not "
                         f"{padding!r}")
    if kh > H + 2 * padding or kw > W + 2 * padding:
        raise ValueError(f"{where}.weight: the {kh}x{kw} kernel is larger than the input "
                         f"{H}x{W} with padding {padding}")
    return (c_out, conv_out_size(H, kh, stride, padding), conv_out_size(W, kw, stride, padding))


# -- trained ----------------------------------------------------------------------------------

@register
@dataclass
class Conv2d:
    """One convolutional LIF layer as trained.

    Parameters
    ----------
    weight : ndarray (C_out, C_in, k, k)
    bias : ndarray (C_out,)
    in_shape : tuple (C_in, H, W)
    stride : int
        1 or 2.
    padding : int
        Zero padding on every side, ``0 <= padding < k``.
    norm, norm_params, norm_eps, norm_alpha
        As :class:`golden.layers.dense.Dense`, with ``C = C_out``.
    mpbn : dict of ndarray or None
        MPBN state (``gamma``, ``beta``, ``running_mean``, ``running_var``), each ``(C_out,)``
        (channel-wise) or ``(C_out, H_out, W_out)`` (element-wise).
    mpbn_eps : float
    neuron : Neuron or None
        This layer's LIF; ``None`` takes the network's default.
    """

    weight: np.ndarray
    bias: np.ndarray
    in_shape: tuple
    stride: int = 1
    padding: int = 0
    norm: str = "none"
    norm_params: dict = field(default_factory=dict)
    norm_eps: float = 1e-5
    norm_alpha: float = 1.0
    mpbn: dict | None = None
    mpbn_eps: float = 1e-5
    neuron: Neuron | None = None

    kind = "conv2d"
    readout = False
    spiking = True

    @property
    def out_channels(self):
        return self.weight.shape[0]

    @property
    def kernel(self):
        return self.weight.shape[-1]

    @property
    def out_shape(self):
        return (self.out_channels, conv_out_size(self.in_shape[1], self.kernel, self.stride,
                                                 self.padding),
                conv_out_size(self.in_shape[2], self.kernel, self.stride, self.padding))

    @property
    def mpbn_elementwise(self):
        return self.mpbn is not None and np.ndim(self.mpbn["gamma"]) == 3

    def check(self, T, where="layer"):
        """Validate geometry, finiteness and normalizer state; store float64 arrays."""
        self.in_shape = check_image_shape(f"{where}.in_shape", self.in_shape)
        self.weight = check_finite(f"{where}.weight", self.weight)
        out_shape = _check_geometry(where, self.in_shape, self.weight, self.stride, self.padding)
        self.stride, self.padding = int(self.stride), int(self.padding)
        C = out_shape[0]
        self.bias = check_finite(f"{where}.bias", self.bias)
        if self.bias.shape != (C,):
            raise ValueError(f"{where}.bias must have shape ({C},), not {self.bias.shape}")
        if self.norm not in norms.NORMS:
            raise ValueError(f"{where}.norm must be one of {norms.NORMS}, not {self.norm!r}")
        if self.neuron is not None and not isinstance(self.neuron, Neuron):
            raise TypeError(f"{where}.neuron must be a Neuron or None, not {self.neuron!r}")
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
            shape = norms.param_shape(code, T, C)
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
            shapes = ((C,), out_shape)
            first = None
            for name in MPBN_PARAMS:
                key = f"{where}.mpbn.{name}"
                if name not in self.mpbn:
                    raise ValueError(f"{key} is missing")
                arr = check_finite(key, self.mpbn[name])
                if arr.shape not in shapes or (first is not None and arr.shape != first):
                    raise ValueError(f"{key} must have shape {first or shapes[0]} (channel-wise)"
                                     f"{'' if first else f' or {out_shape} (element-wise)'}, "
                                     f"not {arr.shape}")
                first = arr.shape
                if name == "running_var" and np.any(arr < 0):
                    raise ValueError(f"{key} must be >= 0")
                self.mpbn[name] = arr
        return self

    def _norm(self, T, v_th, where="layer"):
        return norms.from_state(self.norm, self.norm_params, C=self.out_channels, T=T,
                                eps=self.norm_eps, alpha=self.norm_alpha, v_th=v_th,
                                where=f"{where}.norm")

    def _mpbn(self, v_th, where="layer"):
        if self.mpbn is None:
            return None
        return norms.mpbn_from_state(self.mpbn, v_th=v_th, eps=self.mpbn_eps,
                                     shape=np.shape(self.mpbn["gamma"]), where=f"{where}.mpbn")

    def forward(self, s, neuron, where="layer"):
        """Float eval on ``s`` (T, B, C_in, H, W) with every normalizer literal."""
        s = check_sequence(s, self.in_shape, where)
        T = s.shape[0]
        c = _conv(np.asarray(s, dtype=np.float64), self.weight, self.bias, self.stride,
                  self.padding)
        c = norms.eval_sequence(self._norm(T, neuron.v_th, where), c)
        mpbn = self._mpbn(neuron.v_th, where)
        o, u_pre = lif(c, tau=neuron.tau, v_th=neuron.v_th, reset=neuron.reset, fire=neuron.fire,
                       norm=None if mpbn is None else (lambda u: mpbn.forward(u, training=False)))
        return Trace(out=o.astype(np.float64), current=c, u_pre=u_pre, spikes=o)

    def fold(self, T, neuron, where="layer"):
        """This layer with every normalizer folded (module docstring)."""
        weight, bias, affine = norms.fold_state(self._norm(T, neuron.v_th, where),
                                                self.weight, self.bias, T)
        if self.mpbn is not None:
            rule = self._mpbn(neuron.v_th, where).fold(neuron_shape=self.out_shape)
        else:
            rule = ThresholdRule(np.full(self.out_shape, float(neuron.v_th)),
                                 np.full(self.out_shape, Compare.GT, dtype=np.int8))
        return FoldedConv2d(np.array(weight, dtype=np.float64), np.array(bias, dtype=np.float64),
                            self.in_shape, self.stride, self.padding, rule, affine, neuron)

    # -- model file (version 2) -------------------------------------------------------------

    def entries(self):
        """``(params, arrays)`` of this layer's model-file entry."""
        params = {"out_channels": int(self.out_channels), "kernel": int(self.kernel),
                  "stride": int(self.stride), "padding": int(self.padding), "norm": self.norm,
                  "norm_eps": float(self.norm_eps), "norm_alpha": float(self.norm_alpha),
                  "mpbn": self.mpbn is not None, "mpbn_elementwise": self.mpbn_elementwise,
                  "mpbn_eps": float(self.mpbn_eps),
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
        in_shape = check_image_shape(f"{where} input shape", in_shape)
        c_out = _positive_int(f"{where}.out_channels", params.get("out_channels"))
        k = _positive_int(f"{where}.kernel", params.get("kernel"))
        stride = params.get("stride", 1)
        padding = params.get("padding", 0)
        out_shape = _check_geometry(where, in_shape, np.zeros((c_out, in_shape[0], k, k)),
                                    stride, padding)
        norm = params.get("norm", "none")
        if norm not in norms.NORMS:
            raise ValueError(f"{where}.norm must be one of {norms.NORMS}, not {norm!r}")
        for key in ("norm_eps", "norm_alpha", "mpbn_eps"):
            if key in params:
                _number(f"{where}.{key}", params[key])
        for key in ("mpbn", "mpbn_elementwise"):
            if not isinstance(params.get(key, False), bool):
                raise ValueError(f"{where}.{key} must be true or false, not {params[key]!r}")
        mpbn_shape = out_shape if params.get("mpbn_elementwise", False) else (c_out,)
        neuron = params.get("neuron")
        return cls(
            array("weight", (c_out, in_shape[0], k, k)), array("bias", (c_out,)),
            in_shape=in_shape, stride=int(stride), padding=int(padding), norm=norm,
            norm_params={name: array(f"norm.{name}", norms.param_shape(code, T, c_out))
                         for name, code in norms.NORM_PARAMS[norm].items()},
            norm_eps=float(params.get("norm_eps", norms.NORM_EPS[norm])),
            norm_alpha=float(params.get("norm_alpha", 1.0)),
            mpbn=({name: array(f"mpbn.{name}", mpbn_shape) for name in MPBN_PARAMS}
                  if params.get("mpbn", False) else None),
            mpbn_eps=float(params.get("mpbn_eps", 1e-5)),
            neuron=None if neuron is None else Neuron.from_json(neuron, f"{where}.neuron"))


# -- folded ------------------------------------------------------------------------------------

@dataclass
class FoldedConv2d:
    """Folded conv layer: ``c = conv(s, weight) + bias``, then ``affine`` ((T, C_out) or
    ``None``), then a LIF with firing ``rule`` of shape ``(C_out, H_out, W_out)``."""

    weight: np.ndarray
    bias: np.ndarray
    in_shape: tuple
    stride: int
    padding: int
    rule: ThresholdRule
    affine: AffineRule | None = None
    neuron: Neuron | None = None

    kind = "conv2d"
    readout = False
    spiking = True

    @property
    def out_shape(self):
        k = self.weight.shape[-1]
        return (self.weight.shape[0], conv_out_size(self.in_shape[1], k, self.stride,
                                                    self.padding),
                conv_out_size(self.in_shape[2], k, self.stride, self.padding))

    @property
    def neurons(self):
        return int(np.prod(self.out_shape))

    def check(self, T, where="layer"):
        self.in_shape = check_image_shape(f"{where}.in_shape", self.in_shape)
        self.weight = check_finite(f"{where}.weight", self.weight)
        out_shape = _check_geometry(where, self.in_shape, self.weight, self.stride, self.padding)
        self.bias = check_finite(f"{where}.bias", self.bias)
        if self.bias.shape != (out_shape[0],):
            raise ValueError(f"{where}.bias must have shape ({out_shape[0]},), not "
                             f"{self.bias.shape}")
        if not isinstance(self.rule, ThresholdRule):
            raise TypeError(f"{where}.rule must be a ThresholdRule, not {self.rule!r}")
        if self.rule.shape != out_shape:
            raise ValueError(f"{where}.rule has shape {self.rule.shape}, expected {out_shape}")
        if self.affine is not None and self.affine.a.shape != (T, out_shape[0]):
            raise ValueError(f"{where}.affine has shape {self.affine.a.shape}, expected "
                             f"(T, C_out) = ({T}, {out_shape[0]})")
        return self

    def forward(self, s, neuron, where="layer"):
        """Float evaluation of the folded layer on ``s`` (T, B, C_in, H, W)."""
        s = check_sequence(s, self.in_shape, where)
        raw = _conv(np.asarray(s, dtype=np.float64), self.weight, self.bias, self.stride,
                    self.padding)
        c = raw
        if self.affine is not None:
            c = np.stack([self.affine.apply(raw[t], t) for t in range(raw.shape[0])])
        o, u_pre = lif_folded(c, self.rule, tau=neuron.tau, reset=neuron.reset,
                              fire=neuron.fire)
        return Trace(out=o.astype(np.float64), current=c, raw=raw, u_pre=u_pre, spikes=o)

    def calibrate(self, trace, *, bits, weight_bits, headroom, where):
        """:class:`LayerFormats` from a float walk's ``trace`` of this layer."""
        from ..calibrate import format_for
        weight = format_for(np.max(np.abs(self.weight)), weight_bits, what=f"{where} weight")
        current = format_for(np.max(np.abs(trace.raw)), bits, headroom=headroom,
                             what=f"{where} current")
        membrane, scale, current = calibrate_lif_formats(self.affine, trace, current, bits=bits,
                                                         headroom=headroom, where=where)
        return LayerFormats(weight, current, membrane, scale)

    def quantize(self, fmt, *, T, neuron, input_format, where, prev=None):
        """The :class:`IntegerConv2d` stage with formats ``fmt``; ``input_format`` is the
        analog input's format (layer 0) or ``None``; ``prev`` the integer stage before."""
        if not isinstance(fmt, LayerFormats) or fmt.membrane is None:
            raise ValueError(f"{where} needs LIF layer formats (weight, current, membrane), "
                             f"not {fmt!r}")
        acc_frac = fmt.weight.frac + (input_format.frac if input_format is not None else 0)
        W_q = fmt.weight.quantize(self.weight, name=f"{where}.weight")
        weight_clipped = int(np.count_nonzero(fmt.weight.overflows(np.clip(
            round_half_up(self.weight * fmt.weight.scale), -2.0 ** 62, 2.0 ** 62))))
        bias_q = round_half_up(check_finite(f"{where}.bias", self.bias)
                               * float(2 ** acc_frac)).astype(np.int64)
        if np.any(np.abs(bias_q) >= 2 ** 47):
            raise ValueError(f"{where}.bias does not fit 48 bits on the accumulator grid "
                             f"(2**-{acc_frac}); narrow the weight or input format")
        config, thresholds, affine = quantize_lif(
            self.rule, self.affine, fmt, T=T, neuron=neuron, neurons=self.neurons,
            channels=self.out_shape[0], where=where)
        return IntegerConv2d(
            W_q, bias_q, acc_frac, fmt, self.in_shape, self.stride, self.padding,
            input_bits=input_format.bits if input_format is not None else None,
            input_max=1 if prev is None else int(getattr(prev, "out_max", 1)),
            weight_clipped=weight_clipped, config=config, thresholds=thresholds, affine=affine)


# -- bit-exact integer stage ---------------------------------------------------------------

@dataclass
class IntegerConv2d(FlatSizes, SynapseWidths):
    """Integer tables of one conv LIF layer (rules in the module docstring)."""

    W_q: np.ndarray
    bias_q: np.ndarray
    acc_frac: int
    formats: LayerFormats
    in_shape: tuple
    stride: int
    padding: int
    input_bits: int | None = None   # Bx for the analog first layer, None for spikes/counts
    input_max: int = 1              # largest spike/count input (1, or K after a sum pool)
    weight_clipped: int = 0
    config: CoreConfig | None = None
    thresholds: ThresholdTable | None = None
    affine: AffineTable | None = None

    kind = "conv2d"
    readout = False
    spiking = True
    out_max = 1

    @property
    def kernel(self):
        return self.W_q.shape[-1]

    @property
    def out_shape(self):
        k = self.kernel
        return (self.W_q.shape[0], conv_out_size(self.in_shape[1], k, self.stride, self.padding),
                conv_out_size(self.in_shape[2], k, self.stride, self.padding))

    @property
    def window(self):
        """Terms of one output sum: ``C_in * k * k``."""
        return int(self.in_shape[0] * self.kernel * self.kernel)

    @property
    def terms(self):
        """Terms summed per output: the ``C_in * k * k`` window."""
        return self.window

    def accumulate(self, s_q):
        """``acc`` (T, B, C_out, H_out, W_out) int64 of the integer input ``s_q``."""
        s_q = check_sequence(np.asarray(s_q, dtype=np.int64), self.in_shape, "conv2d")
        return _conv(s_q, self.W_q, self.bias_q, self.stride, self.padding)

    def synapse(self, s_q):
        """``(c_q, saturated)``: currents ``sat_c(acc >> shift)`` of the input ``s_q``."""
        c = floor_shift(self.accumulate(s_q), self.shift)
        fmt = self.formats.current
        return fmt.saturate(c), int(np.count_nonzero(fmt.overflows(c)))

    def core(self, batch=1):
        """A fresh :class:`CoreModel` for ``batch`` samples side by side (sample-major, then
        channel-major within a sample)."""
        return batched_core(self.config, self.thresholds, self.affine, batch)

    def run(self, s_q):
        """The integer sequence ``s_q`` (T, B, C_in, H, W) through the layer."""
        c_q, n = self.synapse(s_q)
        core = self.core(c_q.shape[1])
        o = run_core(core, c_q)
        sat = {"current": n}
        sat.update(core_saturations(core))
        return Trace(out=o.astype(np.int64), current=c_q, spikes=o, saturations=sat)

    def spec(self):
        f = self.formats
        return {"n_in": int(np.prod(self.in_shape)), "n_out": int(np.prod(self.out_shape)),
                "in_shape": tuple(self.in_shape), "out_shape": self.out_shape,
                "kernel": self.kernel, "stride": self.stride, "padding": self.padding,
                "input": (str(Fixed(self.input_bits, self.acc_frac - f.weight.frac))
                          if self.input_bits is not None else
                          "spikes" if self.input_max == 1 else f"counts 0..{self.input_max}"),
                "weight": str(f.weight), "bias_bits": self.bias_bits,
                "product_bits": self.product_bits, "acc_frac": self.acc_frac,
                "acc_bits": self.acc_bits, "shift": self.shift, "current": str(f.current),
                "membrane": str(f.membrane),
                "scale": None if self.affine is None else str(f.scale),
                "tau": self.config.tau, "reset": self.config.reset, "readout_bits": None}
