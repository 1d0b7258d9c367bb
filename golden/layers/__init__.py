"""Layer kinds of a network, registered by name (see :mod:`golden.layers.base`).

One module per kind; importing this package registers them all in :data:`KINDS`.
"""

from .base import KINDS, LayerFormats, Neuron, Trace, bits_for, kind_class, register
from .dense import Dense, FoldedDense, IntegerDense

__all__ = ["KINDS", "LayerFormats", "Neuron", "Trace", "bits_for", "kind_class", "register",
           "Dense", "FoldedDense", "IntegerDense"]
