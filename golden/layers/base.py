"""What every layer kind shares: the neuron, fixed-point formats, traces and the registry.

A network is a chain of layers; each layer *kind* (``dense``, and with the convolution
work ``conv2d``, pooling and ``flatten``) is one module of :mod:`golden.layers` with three
classes, one per view of the flow spec -> fold -> quantize:

trained (``Dense``)
    The parameters as trained: :attr:`in_shape`, :attr:`out_shape`, ``forward`` (float,
    every normalizer evaluated literally, eval mode), ``fold`` into the folded view, and
    ``entries`` / ``from_entries`` for the model file (version 2).
folded (``FoldedDense``)
    Every normalizer folded (weights, per-timestep affine tables, firing rules); the same
    float function in ``forward``; ``calibrate`` picks its fixed-point formats from what a
    float walk observed; ``quantize`` gives the integer stage.
integer (``IntegerDense``)
    The bit-exact integer stage; ``run`` maps a whole integer input sequence
    ``(T, B, *in_shape)`` to ``(T, B, *out_shape)``.

Every ``forward``/``run`` maps a sequence ``(T, B, *in_shape)`` to ``(T, B, *out_shape)``
and returns a :class:`Trace`, so one network walk (:func:`golden.network.walk`) serves the
float model, the folded model, calibration (which observes the walk) and the integer model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core import RESETS
from ..fixed import Fixed
from ..lif import FIRES

__all__ = ["FIRES", "Neuron", "LayerFormats", "Trace", "KINDS", "register", "kind_class",
           "bits_for"]

#: Trained layer kinds by name (``kind`` of a model-file layer entry).
KINDS = {}


def register(cls):
    """Register a trained layer class under its ``kind`` (a class decorator)."""
    if not isinstance(getattr(cls, "kind", None), str):
        raise TypeError(f"{cls.__name__} has no kind name")
    KINDS[cls.kind] = cls
    return cls


def kind_class(name, where="layer"):
    """The trained layer class registered as ``name``."""
    if name not in KINDS:
        raise ValueError(f"{where}.kind must be one of {sorted(KINDS)}, not {name!r}")
    return KINDS[name]


def bits_for(values):
    """Smallest signed two's-complement width holding every integer in ``values``."""
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return 1
    hi = int(values.max())
    lo = int(values.min())
    return max(1, max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1)


class FlatSizes:
    """``n_in``/``n_out``: the element counts of ``in_shape``/``out_shape`` (what the
    hardware mapping sizes a stage by)."""

    @property
    def n_in(self):
        """Input elements per timestep (the flattened ``in_shape``)."""
        return int(np.prod(self.in_shape))

    @property
    def n_out(self):
        """Output elements per timestep (the flattened ``out_shape``)."""
        return int(np.prod(self.out_shape))


@dataclass(frozen=True)
class Neuron:
    """The LIF neuron of one spiking layer (paper Eqs. 1-3).

    Parameters
    ----------
    tau : float
        Leak (decay) factor in ``(0, 1]``; ``tau = 1`` is the IF neuron (no leak).
    v_th : float
        Firing threshold of the comparator (MPBN folds into it).
    reset : {"zero", "subtract"}
        Hard reset to zero, or subtract the (folded) threshold from the raw membrane.
    fire : {">", ">="}
        The comparator: spikefold's own ``u > v_th`` (the default), or ``u >= v_th``
        (SpikingJelly's heaviside). On the integer grid ``q >= ceil(v_th * 2**F)`` is
        ``q > ceil(v_th * 2**F) - 1``, so the hardware's ``GT`` comparator serves both
        (:func:`golden.quantize.quantize_rule`); a folded ``LT`` rule becomes ``<=``.
    """

    tau: float = 0.25
    v_th: float = 0.5
    reset: str = "zero"
    fire: str = ">"

    def __post_init__(self):
        for name in ("tau", "v_th"):
            value = getattr(self, name)
            if (not isinstance(value, (int, float, np.floating)) or isinstance(value, bool)
                    or not math.isfinite(value)):
                raise ValueError(f"neuron.{name} must be a finite number, not {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"neuron.tau must be in (0, 1], not {self.tau!r}")
        if self.reset not in RESETS:
            raise ValueError(f"neuron.reset must be one of {RESETS}, not {self.reset!r}")
        if self.fire not in FIRES:
            raise ValueError(f"neuron.fire must be one of {FIRES}, not {self.fire!r}")

    @property
    def leaky(self):
        """``False`` for the IF neuron (``tau = 1``)."""
        return self.tau != 1.0

    def to_json(self):
        obj = {"tau": self.tau, "v_th": self.v_th, "reset": self.reset}
        if self.fire != ">":    # written only when set: files without it read as before
            obj["fire"] = self.fire
        return obj

    @classmethod
    def from_json(cls, obj, where="neuron"):
        if not isinstance(obj, dict):
            raise ValueError(f"{where} must be a JSON object, not {obj!r}")
        unknown = set(obj) - {"tau", "v_th", "reset", "fire"}
        if unknown:
            raise ValueError(f"{where} has unknown fields {sorted(unknown)}")
        try:
            return cls(**obj)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class LayerFormats:
    """Fixed-point formats of one layer with synapses (``membrane``/``scale`` are ``None``
    for the readout; ``scale`` is ``None`` without an affine stage)."""

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
        if obj is None:
            return None
        unknown = set(obj) - {"weight", "current", "membrane", "scale"}
        if unknown:
            raise ValueError(f"unknown layer format fields {sorted(unknown)}")
        return cls(**{k: (None if obj.get(k) is None else Fixed.from_json(obj[k]))
                      for k in ("weight", "current", "membrane", "scale")})


@dataclass
class Trace:
    """What one layer did over a sequence (float or integer, all ``(T, B, ...)``).

    ``out`` feeds the next layer. ``current`` is the synapse output after any per-timestep
    affine (``raw`` before it), ``u_pre`` the membrane before reset and ``spikes`` the
    spikes -- ``None`` where the kind has no such value (a readout has no spikes, a pooling
    layer no current). ``saturations`` counts clamps (integer stages).
    """

    out: np.ndarray
    current: np.ndarray | None = None
    raw: np.ndarray | None = None
    u_pre: np.ndarray | None = None
    spikes: np.ndarray | None = None
    saturations: dict = field(default_factory=dict)
