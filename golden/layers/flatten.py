"""Layer kind ``flatten``: ``(C, H, W) -> (C * H * W,)`` channel-major, no parameters.

Element ``(c, y, x)`` becomes ``c * H * W + y * W + x`` (NumPy's C order, PyTorch's
``flatten`` and NIR's ``Flatten`` of an NCHW map). Values pass unchanged: spikes, counts of
a sum pooling layer, or (as layer 0) the analog input, whose format the next layer then
reads (:attr:`IntegerFlatten.analog_format`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .base import FlatSizes, Trace, register
from .conv2d import _positive_int, check_sequence

__all__ = ["Flatten", "IntegerFlatten"]


def _check_shape(where, shape):
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"{where} must be a tuple of positive integers, not {shape!r}") \
            from None
    if not shape:
        raise ValueError(f"{where} must have at least one axis, not {shape!r}")
    return tuple(_positive_int(f"{where}[{i}]", v) for i, v in enumerate(shape))


@register
@dataclass
class Flatten:
    """Flatten ``in_shape`` channel-major; trained and folded view."""

    in_shape: tuple

    kind = "flatten"
    readout = False
    spiking = False
    neuron = None

    @property
    def out_shape(self):
        return (int(np.prod(self.in_shape)),)

    def check(self, T, where="layer"):
        self.in_shape = _check_shape(f"{where}.in_shape", self.in_shape)
        return self

    def forward(self, s, neuron=None, where="layer"):
        s = check_sequence(s, self.in_shape, where)
        return Trace(out=s.reshape(s.shape[:2] + self.out_shape))

    def fold(self, T, neuron=None, where="layer"):
        return replace(self)

    def quantize(self, fmt, *, T, neuron, input_format, where, prev=None):
        if fmt is not None:
            raise ValueError(f"{where} (flatten) has no fixed-point formats, not {fmt!r}")
        return IntegerFlatten(tuple(self.in_shape), input_format,
                              1 if prev is None else int(getattr(prev, "out_max", 1)))

    def entries(self):
        return {}, {}

    @classmethod
    def from_entries(cls, params, array, in_shape, T, where):
        if params:
            raise ValueError(f"{where} (flatten) has unknown fields {sorted(params)}")
        return cls(_check_shape(f"{where} input shape", in_shape))


@dataclass
class IntegerFlatten(FlatSizes):
    """The integer flatten stage (a reshape)."""

    in_shape: tuple
    analog_format: object = None    # the input's Fixed format when flatten reads x_q
    out_max: int = 1

    kind = "flatten"
    readout = False
    spiking = False
    formats = None
    weight_clipped = 0

    @property
    def out_shape(self):
        return (int(np.prod(self.in_shape)),)

    def run(self, s_q):
        s_q = check_sequence(np.asarray(s_q), self.in_shape, "flatten")
        return Trace(out=s_q.reshape(s_q.shape[:2] + self.out_shape))

    def spec(self):
        return {"n_in": self.out_shape[0], "n_out": self.out_shape[0],
                "in_shape": tuple(self.in_shape), "out_shape": self.out_shape,
                "input": "-", "weight": "-", "acc_bits": "-", "current": "-",
                "membrane": None, "scale": None}
