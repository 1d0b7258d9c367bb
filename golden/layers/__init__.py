"""Layer kinds of a network, registered by name (see :mod:`golden.layers.base`).

One module per kind; importing this package registers them all in :data:`KINDS`.
"""

from .base import KINDS, LayerFormats, Neuron, Trace, bits_for, kind_class, register
from .dense import Dense, FoldedDense, IntegerDense
from .conv2d import Conv2d, FoldedConv2d, IntegerConv2d
from .pool import IntegerPool2d, Pool2d
from .flatten import Flatten, IntegerFlatten

__all__ = ["KINDS", "LayerFormats", "Neuron", "Trace", "bits_for", "kind_class", "register",
           "Dense", "FoldedDense", "IntegerDense", "Conv2d", "FoldedConv2d", "IntegerConv2d",
           "Pool2d", "IntegerPool2d", "Flatten", "IntegerFlatten"]
