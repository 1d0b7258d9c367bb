"""hdl.conv: the partial sums hold the largest positive and negative sums a layer can make.

``IntegerConv2d.acc_bits`` is the width no sum of the layer can overflow. These layers
drive it: every weight at a rail, every input of the window active (at its rail for the
analog first layer), the bias at the end of its range, and ``C_in * k * k + 1`` a power of
two, so the extreme sums need exactly ``acc_bits`` bits. Output channel 0 reaches the largest
positive sum, channel 1 the largest negative one, at every position (k = 1, and k = 3 at the
centre of a padded map). The Amaranth simulation of ConvStage must equal
``IntegerConv2d.synapse`` bit for bit with a current format that holds the exact sums; a
ConvStage whose partial sums are one bit narrower (``acc_bits`` patched) must fail: the
sum wraps.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.fixed import Fixed
from golden.layers.base import LayerFormats
from golden.layers.conv2d import IntegerConv2d
from hdl.conv import ConvStage
from test_hdl_conv import expected_beats, input_beats, run_conv

WEIGHT = Fixed(8, 7)
PIXEL = Fixed(8, 6)

#: (analog, C_in, k, H): C_in * k * k + 1 is a power of two.
CASES = [(False, 7, 1, 2), (False, 7, 3, 3), (True, 3, 1, 2)]


def worst_conv(analog, c_in, k, H):
    w_min, w_max = WEIGHT.min_int, WEIGHT.max_int
    if analog:
        x = np.full((1, c_in, H, H), PIXEL.min_int)      # (-128) * (-128): the largest product
        W = np.stack([np.full((c_in, k, k), w_min), np.full((c_in, k, k), w_max)])
        product_bits, acc_frac = WEIGHT.bits + PIXEL.bits, WEIGHT.frac + PIXEL.frac
    else:
        x = np.ones((1, c_in, H, H), dtype=np.int64)
        W = np.stack([np.full((c_in, k, k), w_max), np.full((c_in, k, k), w_min)])
        product_bits, acc_frac = WEIGHT.bits, WEIGHT.frac
    bias = np.array([2 ** (product_bits - 1) - 1, -2 ** (product_bits - 1)])
    current = Fixed(product_bits + 8, acc_frac)                # shift 0: every sum exact
    formats = LayerFormats(weight=WEIGHT, current=current,
                           membrane=Fixed(current.bits + 2, current.frac))
    layer = IntegerConv2d(W.astype(np.int64), bias.astype(np.int64), acc_frac, formats,
                          (c_in, H, H), 1, k // 2, input_bits=PIXEL.bits if analog else None)
    return layer, x.astype(np.int64)


def run(layer, x):
    dut = ConvStage(layer, 2, in_lanes=4, T=1)
    want = expected_beats(layer, x, 2, 1)
    got, _, _ = run_conv(dut, input_beats(dut, x), len(want), seed=1)
    return got, want


@pytest.mark.parametrize("analog,c_in,k,H", CASES)
def test_extreme_sums_need_every_partial_sum_bit(analog, c_in, k, H):
    layer, x = worst_conv(analog, c_in, k, H)
    acc = layer.accumulate(x[None])[0, 0]                      # (2, H, H)
    centre = acc[:, H // 2, H // 2]
    bits = layer.acc_bits
    # The extreme sums fit acc_bits bits and need every one of them.
    assert -2 ** (bits - 1) <= centre[1] and centre[0] <= 2 ** (bits - 1) - 1, (centre, bits)
    assert centre[1] < -2 ** (bits - 2) or centre[0] > 2 ** (bits - 2) - 1, (centre, bits)
    got, want = run(layer, x)
    assert np.array_equal(got, want)
    assert int(want.max()) == centre[0] and int(want.min()) == centre[1]


@pytest.mark.parametrize("analog,c_in,k,H", [c for c in CASES if not c[0]])
def test_one_bit_narrower_partial_sums_are_caught(analog, c_in, k, H, monkeypatch):
    """Spike input: the partial sums of the window (the bias is added at the drain) reach
    ``-2**(acc_bits - 1)``, so one bit less wraps. (With 8-bit pixels and weights the
    largest product is ``2**14``, two bits under the product width the rule counts, so the
    analog layer's partial sums have a spare bit and a narrower memory stays exact.)"""
    layer, x = worst_conv(analog, c_in, k, H)
    bits = layer.acc_bits
    monkeypatch.setattr(IntegerConv2d, "acc_bits", property(lambda self: bits - 1))
    got, want = run(layer, x)
    assert not np.array_equal(got, want)
