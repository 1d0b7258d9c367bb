"""Fixed-point formats: ranges, roundings, saturation, parsing."""

import numpy as np
import pytest

from golden.fixed import Fixed, check_finite, floor_shift, round_half_up


@pytest.mark.parametrize("bits,frac,lo,hi", [(16, 8, -32768, 32767), (8, 0, -128, 127),
                                             (2, 1, -2, 1), (48, 20, -2 ** 47, 2 ** 47 - 1)])
def test_ranges(bits, frac, lo, hi):
    f = Fixed(bits, frac)
    assert (f.min_int, f.max_int) == (lo, hi)
    assert f.scale == 2.0 ** frac and f.resolution == 2.0 ** -frac
    assert f.min_value == lo / 2 ** frac and f.max_value == hi / 2 ** frac
    assert str(f) == f"{bits}.{frac}"
    assert Fixed.from_json(f.to_json()) == f


def test_quantize_roundings():
    f = Fixed(16, 8)
    lsb = 1 / 256
    x = np.array([0.5, 1.5, -0.5, -1.5, 0.25, -0.25, 0.75, -0.75, 2.0]) * lsb
    np.testing.assert_array_equal(f.quantize(x), [1, 2, 0, -1, 0, 0, 1, -1, 2])  # half up
    np.testing.assert_array_equal(f.quantize(x, rounding="floor"),
                                  [0, 1, -1, -2, 0, -1, 0, -1, 2])
    np.testing.assert_array_equal(f.quantize(x, rounding="ceil"), [1, 2, 0, -1, 1, 0, 1, 0, 2])
    assert f.quantize(1.0) == 256 and f.quantize(1.0).dtype == np.int64


def test_nearest_is_exact_just_below_a_half():
    # floor(s + 0.5) would give 1 here, because 0.49999999999999994 + 0.5 rounds to 1.0.
    below = np.nextafter(0.5, 0.0)
    assert Fixed(16, 8).quantize(below / 256) == 0
    assert Fixed(16, 8).quantize(-np.nextafter(0.5, 1.0) / 256) == -1
    np.testing.assert_array_equal(round_half_up([below, 0.5, -0.5, 2.5, -2.5, 1e17]),
                                  [0, 1, 0, 3, -2, 1e17])


def test_saturation_not_wrapping():
    f = Fixed(8, 4)
    np.testing.assert_array_equal(f.quantize([100.0, -100.0, 7.9375, -8.0, 1e300]),
                                  [127, -128, 127, -128, 127])
    np.testing.assert_array_equal(f.saturate([200, -200, 5, 2 ** 40]), [127, -128, 5, 127])
    np.testing.assert_array_equal(f.overflows([127, 128, -128, -129]),
                                  [False, True, False, True])


def test_saturate_false_raises_naming_the_field():
    f = Fixed(8, 4)
    with pytest.raises(ValueError, match=r"weight = 8\.5 does not fit the fixed-point format "
                                         r"8\.4 \(range -8\.0 \.\. 7\.9375\)"):
        f.quantize(np.array([1.0, 8.5]), saturate=False, name="weight")
    with pytest.raises(ValueError, match=r"bias = -9\.0 does not fit"):
        f.quantize(-9.0, saturate=False, name="bias")
    assert f.quantize(7.9375, saturate=False) == 127


def test_quantize_bad_values():
    f = Fixed(16, 8)
    with pytest.raises(ValueError, match=r"current must be finite, but holds nan at index \(1,\)"):
        f.quantize([0.0, np.nan], name="current")
    with pytest.raises(ValueError, match=r"value must be finite, but holds inf$"):
        f.quantize(np.inf)
    with pytest.raises(ValueError, match="rounding must be one of"):
        f.quantize(1.0, rounding="banker")


def test_parse():
    assert Fixed.parse("16.8") == Fixed(16, 8)
    assert Fixed.parse(" 12.0") == Fixed(12, 0)
    assert Fixed.parse(Fixed(4, 2)) == Fixed(4, 2)


@pytest.mark.parametrize("text,message", [
    ("16", "must look like 'bits.frac'"),
    ("16.8.1", "must look like 'bits.frac'"),
    ("a.b", "must look like 'bits.frac'"),
    (None, "must look like 'bits.frac'"),
    ("8.9", r"Fixed\.frac must be an integer in 0\.\.7 \(bits=8\), not 9"),
    ("64.8", r"Fixed\.bits must be an integer in 2\.\.48, not 64"),
    ("1.0", r"Fixed\.bits must be an integer in 2\.\.48, not 1"),
])
def test_parse_bad(text, message):
    with pytest.raises(ValueError, match=message):
        Fixed.parse(text)


@pytest.mark.parametrize("bits,frac", [(16, -1), (16, 16), (True, 0), (16.0, 8), (8, 2.5)])
def test_bad_formats(bits, frac):
    with pytest.raises(ValueError, match=r"Fixed\.(bits|frac) must be an integer"):
        Fixed(bits, frac)


def test_floor_shift_is_arithmetic():
    q = np.array([7, -7, -1, 1, -8])
    np.testing.assert_array_equal(floor_shift(q, 1), [3, -4, -1, 0, -4])
    np.testing.assert_array_equal(floor_shift(q, 0), q)
    np.testing.assert_array_equal(floor_shift(q, -2), q * 4)


def test_check_finite():
    np.testing.assert_array_equal(check_finite("x", [1, 2]), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^x must be finite, but holds -inf at index \(0, 1\)$"):
        check_finite("x", [[0.0, -np.inf]])
