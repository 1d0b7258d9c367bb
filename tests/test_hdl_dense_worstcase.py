"""hdl.dense: the accumulator holds the largest positive and negative sums a layer can make.

``IntegerLayer.acc_bits`` is the width "that no sum of this layer can overflow". These
layers are built so that the sum reaches it: every weight at a rail, every input active (at
its rail for the analog layer), the bias at the end of its range, and ``n_in + 1`` a power
of two, so that the extreme sums need exactly ``acc_bits`` bits. The Amaranth simulation
must equal ``IntegerLayer.synapse`` bit for bit, once with a current format that holds the
exact sum (no saturation: the extreme value itself comes out) and once with a narrow one
(the saturation of a huge sum). A DenseStage built with an accumulator one bit narrower
(``acc_bits`` patched) must fail the same check: the sum wraps.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.fixed import Fixed
from golden.network import IntegerLayer, LayerFormats
from hdl.dense import DenseStage
from test_hdl_dense import expected_beats, input_beats, run_dense

WEIGHT = Fixed(8, 7)
PIXEL = Fixed(8, 6)


def worst_layer(*, analog, current_bits=None):
    """Two output neurons driven to the extreme sums: row 0 to the largest positive,
    row 1 to the largest negative. Returns (layer, inputs, exact sums)."""
    w_min, w_max = WEIGHT.min_int, WEIGHT.max_int
    if analog:
        n_in = 3                                   # n_in + 1 = 4: two carry bits
        x = np.full((1, n_in), PIXEL.min_int)      # (-128) * (-128) = 2**14: the largest product
        W = np.array([[w_min] * n_in, [w_max] * n_in])
        product_bits = WEIGHT.bits + PIXEL.bits
        acc_frac = WEIGHT.frac + PIXEL.frac
    else:
        n_in = 7                                   # n_in + 1 = 8: three carry bits
        x = np.ones((1, n_in), dtype=np.int64)
        W = np.array([[w_max] * n_in, [w_min] * n_in])
        product_bits = WEIGHT.bits
        acc_frac = WEIGHT.frac
    bias = np.array([2 ** (product_bits - 1) - 1, -2 ** (product_bits - 1)])
    sums = x @ W.T + bias
    if current_bits is None:
        current = Fixed(product_bits + 4, acc_frac)          # shift 0, holds every sum
    else:
        current = Fixed(current_bits, min(current_bits - 1, acc_frac - 3))
    formats = LayerFormats(weight=WEIGHT, current=current,
                           membrane=Fixed(current.bits + 2, current.frac))
    layer = IntegerLayer(W.astype(np.int64), bias.astype(np.int64), acc_frac, formats,
                         PIXEL.bits if analog else None)
    return layer, x.astype(np.int64), sums[0]


def run(layer, inputs):
    """Amaranth simulation of a DenseStage (P = 2, Q = 1); returns (got, want) beats."""
    dut = DenseStage(layer, 2, in_lanes=1, T=1)
    want = expected_beats(layer, inputs, 2, 1)
    got, _ = run_dense(dut, input_beats(dut, inputs), len(want), seed=1)
    return got, want


@pytest.mark.parametrize("analog", [False, True], ids=["spikes", "pixels"])
def test_extreme_sums_need_every_accumulator_bit(analog):
    layer, inputs, sums = worst_layer(analog=analog)
    bits = layer.acc_bits
    # The sums really are the extremes of acc_bits - 1 bits plus one: they need acc_bits.
    assert sums[0] > 2 ** (bits - 2) - 1 and sums[1] < -2 ** (bits - 2), (sums, bits)
    assert -2 ** (bits - 1) <= sums[1] and sums[0] <= 2 ** (bits - 1) - 1
    got, want = run(layer, inputs)
    # Shift 0 and a current format wider than the sums: the exact sums come out.
    assert want.tolist() == [sums.tolist()]
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("analog", [False, True], ids=["spikes", "pixels"])
def test_extreme_sums_saturate_the_current(analog):
    layer, inputs, _ = worst_layer(analog=analog, current_bits=8)
    got, want = run(layer, inputs)
    assert want.tolist() == [[127, -128]]
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("analog", [False, True], ids=["spikes", "pixels"])
@pytest.mark.parametrize("narrow_current", [False, True], ids=["exact", "saturating"])
def test_one_bit_narrower_accumulator_is_caught(analog, narrow_current, monkeypatch):
    layer, inputs, _ = worst_layer(analog=analog, current_bits=8 if narrow_current else None)
    full = IntegerLayer.acc_bits
    monkeypatch.setattr(IntegerLayer, "acc_bits", property(lambda self: full.fget(self) - 1))
    assert layer.acc_bits == full.fget(layer) - 1
    got, want = run(layer, inputs)
    assert got.tolist() != want.tolist()
