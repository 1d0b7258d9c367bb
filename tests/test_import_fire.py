"""The ``>=`` comparator (SpikingJelly) in golden: Neuron.fire, the float LIF, quantize_rule.

No torch needed: these run in the default suite.
"""

import numpy as np
import pytest

from golden.fixed import Fixed
from golden.fold import Compare, ThresholdRule
from golden.layers import Neuron
from golden.lif import lif, lif_folded
from golden.quantize import quantize_rule


def test_neuron_fire_default_and_json():
    assert Neuron().fire == ">"
    assert "fire" not in Neuron().to_json()          # files without it read as before
    n = Neuron(0.5, 1.0, "subtract", fire=">=")
    assert n.to_json()["fire"] == ">="
    assert Neuron.from_json(n.to_json()) == n
    with pytest.raises(ValueError, match="neuron.fire must be one of"):
        Neuron(fire="=>")


def test_lif_fires_on_ties_only_with_ge():
    c = np.full((4, 1), 0.25)                        # IF membrane 0.25, 0.5, 0.75, 1.0
    gt, u_gt = lif(c, tau=1.0, v_th=1.0)
    ge, u_ge = lif(c, tau=1.0, v_th=1.0, fire=">=")
    assert gt[:, 0].tolist() == [False] * 4
    assert ge[:, 0].tolist() == [False, False, False, True]
    assert u_ge[-1, 0] == 1.0
    with pytest.raises(ValueError, match="fire must be one of"):
        lif(c, fire="==")


def test_lif_folded_ge_turns_gt_into_ge_and_lt_into_le():
    rule = ThresholdRule(np.array([1.0, -1.0, 1.0, 0.0]),
                         np.array([Compare.GT, Compare.LT, Compare.NEVER, Compare.ALWAYS]))
    c = np.array([[1.0, -1.0, 1.0, 5.0]])
    assert lif_folded(c, rule, tau=1.0)[0][0].tolist() == [False, False, False, True]
    assert lif_folded(c, rule, tau=1.0, fire=">=")[0][0].tolist() == [True, True, False, True]


@pytest.mark.parametrize("theta", [1.0, 1.03, -0.5, -0.515625, 0.0])
def test_quantize_rule_ge_is_exact_on_the_grid(theta):
    fmt = Fixed(12, 6)
    q = np.arange(fmt.min_int, fmt.max_int + 1)
    u = q / fmt.scale
    for compare, want in ((Compare.GT, u >= theta), (Compare.LT, u <= theta)):
        table = quantize_rule(ThresholdRule(np.array([theta]), np.array([compare])), fmt,
                              fire=">=")
        got = table.fires(q[:, None])[:, 0]
        assert got.tolist() == want.tolist(), (compare, theta)
    table = quantize_rule(ThresholdRule(np.array([theta]), np.array([Compare.GT])), fmt)
    assert table.fires(q[:, None])[:, 0].tolist() == (u > theta).tolist()


def test_quantize_rule_ge_thresholds():
    fmt = Fixed(8, 4)
    rule = ThresholdRule(np.array([1.0, 1.03, 1.0]),
                         np.array([Compare.GT, Compare.GT, Compare.LT]))
    assert quantize_rule(rule, fmt).theta_q.tolist() == [16, 16, 16]
    assert quantize_rule(rule, fmt, fire=">=").theta_q.tolist() == [15, 16, 17]
    with pytest.raises(ValueError, match="fire must be"):
        quantize_rule(rule, fmt, fire="<")
