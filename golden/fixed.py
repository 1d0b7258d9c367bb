"""Fixed-point formats and the rounding/saturation rules the hardware uses.

Every integer rule of the datapath is written here once:

* values are signed two's complement integers ``q`` meaning ``q / 2**frac``;
* :func:`floor_shift` is the only right shift (arithmetic, rounds toward minus infinity,
  exactly what ``>>>`` on a signed vector does in Verilog and ``>>`` on a signed
  ``Value`` does in Amaranth);
* :meth:`Fixed.saturate` clamps to the format's range; nothing ever wraps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Fixed", "ROUNDINGS", "floor_shift", "check_finite", "round_half_up", "fixed_format"]


def round_half_up(s):
    """Round to the nearest integer, halves up: ``floor(s + 1/2)`` computed exactly.

    ``np.floor(s + 0.5)`` is wrong for the double just below 1/2 (``s + 0.5`` rounds to 1);
    ``s - floor(s)`` is exact, so comparing it with 1/2 is not.
    """
    s = np.asarray(s, dtype=np.float64)
    f = np.floor(s)
    return f + (s - f >= 0.5)


#: Rounding rules of :meth:`Fixed.quantize`, each ``x * 2**frac -> integer``.
ROUNDINGS = {
    # Round half up. Used for input currents and coefficients.
    "nearest": round_half_up,
    "floor": np.floor,
    "ceil": np.ceil,
}


def check_finite(name, value):
    """Raise ``ValueError`` naming ``name`` when ``value`` holds NaN or infinity."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = float(arr[~np.isfinite(arr)].ravel()[0])
        where = ""
        if arr.ndim:
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            where = f" at index {index}"
        raise ValueError(f"{name} must be finite, but holds {bad!r}{where}")
    return arr


def floor_shift(q, shift):
    """Arithmetic right shift of integers: ``floor(q / 2**shift)``.

    Negative ``shift`` is a left shift (exact).
    """
    q = np.asarray(q, dtype=np.int64)
    if shift >= 0:
        return q >> np.int64(shift)
    return q << np.int64(-shift)


@dataclass(frozen=True)
class Fixed:
    """A signed fixed-point format: ``bits`` in total, ``frac`` of them fractional.

    The integer ``q`` stands for the real value ``q / 2**frac``; ``q`` lies in
    ``[min_int, max_int] = [-2**(bits-1), 2**(bits-1) - 1]``.

    Parameters
    ----------
    bits : int
        Total width including the sign bit, 2..48.
    frac : int
        Fractional bits, ``0 <= frac < bits``.
    """

    bits: int
    frac: int

    def __post_init__(self):
        if not isinstance(self.bits, (int, np.integer)) or isinstance(self.bits, bool) \
                or not 2 <= self.bits <= 48:
            raise ValueError(f"Fixed.bits must be an integer in 2..48, not {self.bits!r}")
        if not isinstance(self.frac, (int, np.integer)) or isinstance(self.frac, bool) \
                or not 0 <= self.frac < self.bits:
            raise ValueError(
                f"Fixed.frac must be an integer in 0..{self.bits - 1} (bits={self.bits}), "
                f"not {self.frac!r}")

    @classmethod
    def parse(cls, text):
        """Parse ``"Q<int>.<frac>"``-free notation ``"bits.frac"``, e.g. ``"16.8"``."""
        if isinstance(text, Fixed):
            return text
        try:
            bits, frac = str(text).split(".")
            return cls(int(bits), int(frac))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ValueError) and str(exc).startswith("Fixed."):
                raise
            raise ValueError(
                f"fixed-point format must look like 'bits.frac' (e.g. '16.8'), not {text!r}"
            ) from None

    def __str__(self):
        return f"{self.bits}.{self.frac}"

    @property
    def min_int(self):
        return -(1 << (self.bits - 1))

    @property
    def max_int(self):
        return (1 << (self.bits - 1)) - 1

    @property
    def scale(self):
        """``2**frac``: integers per unit."""
        return float(1 << self.frac)

    @property
    def resolution(self):
        return 1.0 / self.scale

    @property
    def min_value(self):
        return self.min_int / self.scale

    @property
    def max_value(self):
        return self.max_int / self.scale

    def saturate(self, q):
        """Clamp integers to ``[min_int, max_int]`` (saturate, never wrap)."""
        return np.clip(np.asarray(q, dtype=np.int64), self.min_int, self.max_int)

    def overflows(self, q):
        """Boolean mask of integers outside the format's range."""
        q = np.asarray(q, dtype=np.int64)
        return (q < self.min_int) | (q > self.max_int)

    def to_float(self, q):
        return np.asarray(q, dtype=np.int64).astype(np.float64) / self.scale

    def scaled(self, x, *, name="value"):
        """``x * 2**frac`` as float64, after checking ``x`` is finite."""
        return check_finite(name, x) * self.scale

    def quantize(self, x, *, rounding="nearest", saturate=True, name="value"):
        """Quantize real values to integers of this format.

        Parameters
        ----------
        rounding : {"nearest", "floor", "ceil"}
            ``nearest`` rounds half up (``floor(x*2**frac + 1/2)``).
        saturate : bool
            Clamp out-of-range values to the rails. With ``False`` an out-of-range value
            raises ``ValueError`` naming ``name`` instead.

        Raises
        ------
        ValueError
            For NaN/inf input, an unknown rounding, or (``saturate=False``) a value outside
            the format.
        """
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {sorted(ROUNDINGS)}, not {rounding!r}")
        s = ROUNDINGS[rounding](self.scaled(x, name=name))
        if not saturate:
            bad = (s < self.min_int) | (s > self.max_int)
            if np.any(bad):
                value = np.asarray(x, dtype=np.float64)[bad].ravel()[0] if np.ndim(x) else x
                raise ValueError(
                    f"{name} = {float(value)!r} does not fit the fixed-point format {self} "
                    f"(range {self.min_value!r} .. {self.max_value!r})")
        return np.clip(s, self.min_int, self.max_int).astype(np.int64)

    def to_json(self):
        return {"bits": int(self.bits), "frac": int(self.frac)}

    @classmethod
    def from_json(cls, obj):
        return cls(int(obj["bits"]), int(obj["frac"]))


def fixed_format(text):
    """``argparse`` type for a format option: ``"16.8"`` -> ``Fixed(16, 8)``."""
    import argparse
    try:
        return Fixed.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
