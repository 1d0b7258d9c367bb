"""Layer kind ``pool2d``: max, sum or average pooling of spike maps (no weights, no LIF).

A ``kernel x kernel`` window moves by ``stride`` (default ``kernel``: non-overlapping) over
each channel of a ``(C, H, W)`` map, without padding; the output is ``(C, H_out, W_out)``
with ``H_out = (H - kernel) // stride + 1`` (rows and columns past the last full window
are dropped, as in PyTorch). Pooling reads spikes (or counts of an earlier sum pooling),
never the analog network input. ``K = kernel**2`` is the window size.

=========  =================================================================================
mode       rule (float and integer alike: the inputs are integers 0..M)
=========  =================================================================================
``max``    ``out[c, y, x] = max`` over the window; on 0/1 spikes the OR of the window.
           Outputs 0..M (spikes stay spikes).
``sum``    ``out[c, y, x] = sum`` over the window: a count 0..K*M (exact, no saturation).
           The next layer with synapses reads counts: its products ``W_q * n`` and its
           accumulator width account for the range (:func:`golden.layers.dense.product_bits`
           with ``input_max = K*M``).
``avg``    trained/float: the window mean ``sum / K``. Folded: a ``sum`` pooling layer, and
           the ``1/K`` goes into the weights of the NEXT layer with synapses (``conv2d`` or
           ``dense``): ``W' = W_folded / K`` (the weight after its own normalizer fold,
           bias unchanged), through any ``flatten`` and ``max`` pooling in between (both
           commute with a positive scale) and multiplied up over consecutive average
           poolings. :func:`absorb_average` does it; :class:`golden.network.FoldedNetwork`
           applies it, so an integer model never divides. With ``K`` a power of two the
           scale itself is exact in floating point.
=========  =================================================================================

There are no fixed-point formats: ``calibrate`` is absent and the formats entry is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .base import FlatSizes, Trace, register
from .conv2d import _positive_int, check_image_shape, check_sequence, conv_out_size, windows

__all__ = ["Pool2d", "IntegerPool2d", "POOL_MODES", "absorb_average"]

#: Pooling modes.
POOL_MODES = ("max", "sum", "avg")

_PARAMS = {"kernel", "stride", "mode"}


def _pool(s, kernel, stride, mode):
    T, B = s.shape[:2]
    w = windows(s.reshape((T * B,) + s.shape[2:]), kernel, stride)
    if mode == "max":
        out = w.max(axis=(4, 5))
    elif mode == "sum":
        out = w.sum(axis=(4, 5))
    else:
        out = w.sum(axis=(4, 5)) / (kernel * kernel)
    return out.reshape((T, B) + out.shape[1:])


@register
@dataclass
class Pool2d:
    """Pooling over ``kernel x kernel`` windows (module docstring); trained and folded view.

    Parameters
    ----------
    in_shape : tuple (C, H, W)
    kernel : int
    stride : int or None
        ``None``: ``kernel``.
    mode : {"max", "sum", "avg"}
    """

    in_shape: tuple
    kernel: int = 2
    stride: int | None = None
    mode: str = "max"

    kind = "pool2d"
    readout = False
    spiking = False
    neuron = None

    @property
    def out_shape(self):
        s = self.kernel if self.stride is None else self.stride
        return (self.in_shape[0], conv_out_size(self.in_shape[1], self.kernel, s, 0),
                conv_out_size(self.in_shape[2], self.kernel, s, 0))

    @property
    def window(self):
        return self.kernel * self.kernel

    def check(self, T, where="layer"):
        self.in_shape = check_image_shape(f"{where}.in_shape", self.in_shape)
        self.kernel = _positive_int(f"{where}.kernel", self.kernel)
        self.stride = self.kernel if self.stride is None else _positive_int(
            f"{where}.stride", self.stride)
        if self.mode not in POOL_MODES:
            raise ValueError(f"{where}.mode must be one of {POOL_MODES}, not {self.mode!r}")
        _, H, W = self.in_shape
        if self.kernel > H or self.kernel > W:
            raise ValueError(f"{where}.kernel {self.kernel} is larger than the input {H}x{W}")
        return self

    def forward(self, s, neuron=None, where="layer"):
        s = check_sequence(s, self.in_shape, where)
        return Trace(out=_pool(np.asarray(s, dtype=np.float64), self.kernel, self.stride,
                               self.mode))

    def fold(self, T, neuron=None, where="layer"):
        """The folded view is the same layer (an ``avg`` one is absorbed by the network)."""
        return replace(self)

    def quantize(self, fmt, *, T, neuron, input_format, where, prev=None):
        """The :class:`IntegerPool2d` stage (``fmt`` must be ``None``)."""
        if fmt is not None:
            raise ValueError(f"{where} (pool2d) has no fixed-point formats, not {fmt!r}")
        if input_format is not None or prev is None:
            raise ValueError(f"{where} (pool2d) reads the analog network input; pooling "
                             f"takes spikes: put a conv2d layer first")
        if self.mode == "avg":
            raise ValueError(f"{where}: average pooling must be folded into the next layer's "
                             f"weights first (golden.layers.pool.absorb_average)")
        return IntegerPool2d(tuple(self.in_shape), self.kernel, self.stride, self.mode,
                             int(getattr(prev, "out_max", 1)))

    # -- model file (version 2) -------------------------------------------------------------

    def entries(self):
        stride = self.kernel if self.stride is None else self.stride
        return {"kernel": int(self.kernel), "stride": int(stride), "mode": self.mode}, {}

    @classmethod
    def from_entries(cls, params, array, in_shape, T, where):
        unknown = set(params) - _PARAMS
        if unknown:
            raise ValueError(f"{where} has unknown fields {sorted(unknown)}")
        kernel = _positive_int(f"{where}.kernel", params.get("kernel"))
        stride = params.get("stride")
        layer = cls(check_image_shape(f"{where} input shape", in_shape), kernel,
                    None if stride is None else _positive_int(f"{where}.stride", stride),
                    params.get("mode", "max"))
        return layer.check(T, where)


@dataclass
class IntegerPool2d(FlatSizes):
    """The integer pooling stage: max (OR of spikes) or sum (counts) of each window."""

    in_shape: tuple
    kernel: int
    stride: int
    mode: str
    in_max: int = 1                 # largest input value (1: spikes)

    kind = "pool2d"
    readout = False
    spiking = False
    formats = None
    weight_clipped = 0

    @property
    def out_shape(self):
        return (self.in_shape[0], conv_out_size(self.in_shape[1], self.kernel, self.stride, 0),
                conv_out_size(self.in_shape[2], self.kernel, self.stride, 0))

    @property
    def out_max(self):
        """Largest output value: the next layer's ``input_max``."""
        return self.in_max * (self.kernel * self.kernel if self.mode == "sum" else 1)

    def run(self, s_q):
        s_q = check_sequence(np.asarray(s_q, dtype=np.int64), self.in_shape, "pool2d")
        return Trace(out=_pool(s_q, self.kernel, self.stride, self.mode))

    def spec(self):
        return {"n_in": int(np.prod(self.in_shape)), "n_out": int(np.prod(self.out_shape)),
                "in_shape": tuple(self.in_shape), "out_shape": self.out_shape,
                "kernel": self.kernel, "stride": self.stride, "mode": self.mode,
                "input": "spikes" if self.in_max == 1 else f"counts 0..{self.in_max}",
                "out_max": self.out_max, "weight": "-", "acc_bits": "-", "current": "-",
                "membrane": None, "scale": None}


def absorb_average(layers):
    """Folded ``layers`` with every ``avg`` pooling turned into ``sum`` pooling and its
    ``1/K`` multiplied into the weights of the next layer with synapses (module docstring).
    Returns a new list; the given layers are not changed."""
    out = []
    scale = 1.0
    for layer in layers:
        if isinstance(layer, Pool2d) and layer.mode == "avg":
            scale /= layer.window
            layer = replace(layer, mode="sum")
        elif scale != 1.0 and hasattr(layer, "weight"):
            layer = replace(layer, weight=layer.weight * scale)
            scale = 1.0
        out.append(layer)
    if scale != 1.0:
        raise ValueError("an average pooling layer has no layer with weights after it")
    return out
