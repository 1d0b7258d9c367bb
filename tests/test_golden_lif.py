"""The float LIF with the MPBN paper's semantics, checked by hand-computed traces."""

import numpy as np
import pytest

from golden.fold import Compare, ThresholdRule
from golden.lif import lif, lif_folded


def column(values):
    """A (T, 1) current trace."""
    return np.array(values, dtype=np.float64)[:, None]


def test_strict_greater_tie_does_not_fire():
    # u_pre: 0.5 (tie: no spike), 0.125 + 0.375 = 0.5 (tie again), then 0.125 + 0.5 = 0.625.
    s, u = lif(column([0.5, 0.375, 0.5]), tau=0.25, v_th=0.5)
    np.testing.assert_array_equal(u[:, 0], [0.5, 0.5, 0.625])
    np.testing.assert_array_equal(s[:, 0], [False, False, True])


def test_hard_reset_of_the_raw_membrane():
    # MPBN doubles the membrane before the comparator; the RAW membrane is what resets/carries.
    s, u = lif(column([0.3, 1.0, 0.2, 0.2]), tau=0.5, v_th=0.5, norm=lambda x: 2 * x)
    # t0: 0.3 -> 0.6 > 0.5 fires, reset to 0; t1: 1.0 fires; t2: 0.2 -> 0.4 no;
    # t3: 0.5 * 0.2 + 0.2 = 0.3 (the raw 0.2 carried, not the normalized 0.4) -> 0.6 fires.
    np.testing.assert_array_equal(s[:, 0], [True, True, False, True])
    np.testing.assert_allclose(u[:, 0], [0.3, 1.0, 0.2, 0.3])


def test_subtract_reset():
    s, u = lif(column([1.2, 0.0, 0.5]), tau=0.5, v_th=0.5, reset="subtract")
    # t0: 1.2 fires, u = 0.7; t1: 0.35 no; t2: 0.175 + 0.5 = 0.675 fires.
    np.testing.assert_array_equal(s[:, 0], [True, False, True])
    np.testing.assert_allclose(u[:, 0], [1.2, 0.35, 0.675])
    # lif_folded subtracts the rule's theta: the same for a plain GT rule at v_th.
    rule = ThresholdRule(np.array([0.5]), np.array([Compare.GT]))
    s2, u2 = lif_folded(column([1.2, 0.0, 0.5]), rule, tau=0.5, reset="subtract")
    np.testing.assert_array_equal(s2, s)
    np.testing.assert_allclose(u2, u)


@pytest.mark.parametrize("tau", [0.0, 0.25, 0.9, 1.0])
def test_tau_is_a_decay_factor(tau):
    s, u = lif(column([0.4, 0.0, 0.0]), tau=tau, v_th=10.0)
    np.testing.assert_allclose(u[:, 0], [0.4, 0.4 * tau, 0.4 * tau ** 2])
    assert not s.any()


def test_per_neuron_thresholds_and_lt_rule():
    c = np.array([[0.3, 0.3, -0.3, 0.0]] * 2)
    s, _ = lif(c, tau=0.0, v_th=np.array([0.2, 0.4, 0.2, 0.2]))
    np.testing.assert_array_equal(s[0], [True, False, False, False])
    rule = ThresholdRule(np.array([0.2, 0.4, -0.2, 0.0]),
                         np.array([Compare.GT, Compare.LT, Compare.LT, Compare.ALWAYS]))
    sf, _ = lif_folded(c, rule, tau=0.0)
    np.testing.assert_array_equal(sf[0], [True, True, True, True])


def test_bad_input():
    with pytest.raises(ValueError, match=r"c must be finite, but holds nan at index \(1, 0\)"):
        lif(column([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"c must have shape \(T, \.\.\.\)"):
        lif(np.zeros(3))
    with pytest.raises(ValueError, match=r"tau must be in \[0, 1\], not 1\.5"):
        lif(column([0.0]), tau=1.5)
    with pytest.raises(ValueError, match="reset must be 'zero' or 'subtract', not 'soft'"):
        lif(column([0.0]), reset="soft")
    with pytest.raises(ValueError, match="v_th must be finite"):
        lif(column([0.0]), v_th=np.inf)
    with pytest.raises(TypeError, match="rule must be a ThresholdRule, not ndarray"):
        lif_folded(column([0.0]), np.array([0.5]))
