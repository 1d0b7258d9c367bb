"""Choose per-layer fixed-point formats from calibration data and report the fixed-point cost.

Rule (one total width ``bits`` per kind of value; default 16, 8 and 12 are common):

* a value whose magnitude reaches ``m`` gets ``I = max(1, floor(log2(m * headroom)) + 2)``
  integer bits including the sign (so ``2**(I-1) > m * headroom``), one more when rounding
  ``m * headroom`` to the grid would reach ``2**(I-1)``, and ``bits - I`` fractional bits;
* weights (and affine scales) use their exact maximum (``headroom = 1``): they are known;
* the current uses the largest synapse output seen on the calibration set (before any
  per-timestep affine), the membrane the largest of ``u_pre``, the affine output and the
  affine offsets ``b``, both times ``headroom`` (default 1.25) for unseen data;
* the current grid must lie on the membrane grid: the current's fractional bits are capped
  at the membrane's;
* the input uses ``input_bits`` (default 8) and its maximum (digits: ``[0, 1]`` -> 8.6,
  which holds every ``pixel / 16`` exactly).

:func:`evaluate` runs the float and the bit-exact network on evaluation data and reports
float vs fixed accuracy, spike agreement per layer and every saturation count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .fixed import Fixed
from .network import FoldedNetwork, IntegerNetwork, LayerFormats, Network, NetworkFormats

__all__ = ["integer_bits", "format_for", "calibrate", "evaluate", "evaluate_model",
           "CalibrationReport"]


def integer_bits(m):
    """Integer bits (sign included) so that ``2**(I-1) > m``; at least 1."""
    m = float(m)
    if not math.isfinite(m) or m < 0:
        raise ValueError(f"magnitude must be finite and >= 0, not {m!r}")
    if m == 0:
        return 1
    return max(1, math.floor(math.log2(m)) + 2)


def format_for(m, bits, *, headroom=1.0, what="value"):
    """The ``Fixed(bits, frac)`` holding magnitudes up to ``m * headroom``."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 48:
        raise ValueError(f"bits for the {what} must be an integer in 2..48, not {bits!r}")
    m = float(m) * headroom
    I = integer_bits(m)
    # Rounding to the grid may carry m up to 2**(I-1): then one more integer bit.
    if I < bits and math.floor(m * 2.0 ** (bits - I) + 0.5) > 2 ** (bits - 1) - 1:
        I += 1
    if I > bits:
        raise ValueError(f"the {what} reaches {m:.6g} and needs {I} integer bits, more than "
                         f"the {bits} bits allowed")
    return Fixed(bits, bits - I)


def _as_folded(network):
    if isinstance(network, Network):
        return network.fold()
    if isinstance(network, FoldedNetwork):
        return network
    raise TypeError(f"network must be a Network or FoldedNetwork, not {type(network).__name__}")


def calibrate(network, x, *, bits=16, weight_bits=None, input_bits=8, headroom=1.25):
    """Per-layer :class:`~golden.network.NetworkFormats` for ``network`` from inputs ``x``.

    Parameters
    ----------
    network : Network or FoldedNetwork
    x : float array (n, *input_shape)
        Calibration inputs (e.g. the training split).
    bits : int
        Total width of currents, membranes and affine scales.
    weight_bits : int or None
        Total width of the weights (default ``bits``).
    input_bits : int
    headroom : float
        Factor (>= 1) on the calibration maxima of currents and membranes.
    """
    folded = _as_folded(network)
    if not (isinstance(headroom, (int, float)) and math.isfinite(headroom) and headroom >= 1):
        raise ValueError(f"headroom must be a number >= 1, not {headroom!r}")
    weight_bits = bits if weight_bits is None else weight_bits
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"calibration inputs must have shape (n > 0, *input_shape), not "
                         f"{x.shape}")
    input_fmt = format_for(np.max(np.abs(x)), input_bits, what="input")
    layers = []

    def observe(i, layer, s, trace):
        pick = getattr(layer, "calibrate", None)
        layers.append(None if pick is None else pick(
            trace, bits=bits, weight_bits=weight_bits, headroom=headroom, where=f"layer{i}"))

    folded.forward(x, observe=observe)
    return NetworkFormats(input_fmt, tuple(layers))


@dataclass
class CalibrationReport:
    """Float vs fixed on evaluation data."""

    formats: NetworkFormats
    n: int
    float_accuracy: float
    fixed_accuracy: float
    prediction_agreement: float
    spike_agreement: list
    saturations: list
    weight_clipped: list
    spec: list

    def markdown(self):
        lines = [
            f"float accuracy {self.float_accuracy:.2%}, fixed accuracy "
            f"{self.fixed_accuracy:.2%} ({self.n} samples), predictions agree "
            f"{self.prediction_agreement:.2%}",
            "",
            "| layer | n_in -> n_out | input | weight | acc bits | current | membrane | scale "
            "| spikes agree | saturations |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        agreement = iter(self.spike_agreement)          # one per spiking layer
        for i, row in enumerate(self.spec):
            agree = (f"{next(agreement):.3%}" if row["membrane"] is not None
                     else "readout" if i == len(self.spec) - 1 else "-")
            sats = dict(self.saturations[i])
            if self.weight_clipped[i]:
                sats["weight"] = self.weight_clipped[i]
            sat_text = ", ".join(f"{k} {v}" for k, v in sats.items())
            lines.append(
                f"| {i} | {row['n_in']} -> {row['n_out']} | {row['input']} | {row['weight']} "
                f"| {row['acc_bits']} | {row['current']} | {row['membrane'] or '-'} "
                f"| {row['scale'] or '-'} | {agree} | {sat_text} |")
        return "\n".join(lines)


def evaluate(network, formats, x, y):
    """Run float and bit-exact models on ``x`` (float inputs) and labels ``y``."""
    folded = _as_folded(network)
    y = np.asarray(y)
    f = folded.forward(x)
    integer = IntegerNetwork.from_folded(folded, formats)
    q = integer.run(x)
    pf = f.predict()
    pq = q.predict()
    return CalibrationReport(
        formats=formats, n=len(y),
        float_accuracy=float(np.mean(pf == y)), fixed_accuracy=float(np.mean(pq == y)),
        prediction_agreement=float(np.mean(pf == pq)),
        spike_agreement=[float(np.mean(a == b)) for a, b in zip(f.spikes, q.spikes)],
        saturations=q.saturations,
        weight_clipped=[layer.weight_clipped for layer in integer.layers],
        spec=integer.spec())


def evaluate_model(model, *, bits=None, weight_bits=None, input_bits=8):
    """Float vs fixed report of a :class:`golden.modelfile.ModelFile` on its test data.

    ``bits=None`` uses the stored formats; otherwise formats are calibrated on the file's
    calibration inputs with the given widths.
    """
    if model.test_x is None:
        raise ValueError("the model file holds no evaluation data (data.test_x)")
    if bits is None:
        if model.formats is None:
            raise ValueError("the model file holds no formats: pass bits to calibrate")
        formats = model.formats
    else:
        if model.calib_x is None:
            raise ValueError("the model file holds no calibration data (data.calib_x)")
        formats = calibrate(model.network, model.inputs(model.calib_x), bits=bits,
                            weight_bits=weight_bits, input_bits=input_bits)
    return evaluate(model.network, formats, model.inputs(model.test_x), model.test_y)
