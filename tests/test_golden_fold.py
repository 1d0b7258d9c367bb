"""Folded vs unfolded normalizers, in float and exhaustively in fixed point."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from golden.fixed import Fixed
from golden.fold import AffineRule, Compare, ThresholdRule, fold_mpbn
from golden.lif import lif, lif_folded
from golden.normalizers import (
    HomeostaticNorm, MembranePotentialBN, PerTimestepBN, TemporalAccumulatedBN,
    TemporalEffectiveBN, TemporalHomeostaticNorm, ThresholdDependentBN,
)
from golden.quantize import ThresholdTable, quantize_affine, quantize_rule

SEED = 20261123


def trained_mpbn(C, shape, layout, rng, v_th=0.5, T=8, N=32):
    """An MPBN trained on LIF-like membranes, then given gamma > 0, < 0 and = 0 neurons."""
    layer = MembranePotentialBN(C, threshold=v_th, shape=shape)
    for _ in range(20):
        layer.forward(rng.normal(0.4, 0.8, (N,) + layout), training=True)
    p = layer.gamma.shape
    gamma = rng.normal(1.0, 0.5, p) * rng.choice([-1.0, 1.0], p)
    gamma[rng.random(p) < 0.15] = 0.0
    gamma.flat[0:3] = [0.7, -0.8, 0.0]                # at least one of each sign
    beta = rng.normal(0.3, 0.6, p)
    beta.flat[2] = v_th + 0.25                        # gamma = 0, beta > v_th: always fires
    layer.gamma, layer.beta = gamma, beta
    return layer


LAYOUTS = [  # (name, C, element-wise shape or None, neuron layout of one sample)
    ("channel (N,C)", 6, None, (6,)),
    ("channel (N,C,H,W)", 4, None, (4, 3, 5)),
    ("element (N,C)", 6, (6,), (6,)),
    ("element (N,C,H,W)", 4, (4, 3, 5), (4, 3, 5)),
]


@pytest.mark.parametrize("name,C,shape,layout", LAYOUTS, ids=[x[0] for x in LAYOUTS])
def test_mpbn_fold_equivalence_in_lif(name, C, shape, layout):
    rng = np.random.default_rng(SEED)
    layer = trained_mpbn(C, shape, layout, rng)
    assert {np.sign(g) for g in layer.gamma.ravel()} == {-1.0, 0.0, 1.0}
    c = rng.normal(0.3, 0.7, (12, 40) + layout)
    spikes, u_pre = lif(c, tau=0.25, v_th=layer.threshold,
                        norm=lambda u: layer.forward(u, training=False))
    rule = layer.fold(neuron_shape=layout)
    assert rule.shape == layout
    spikes_f, u_pre_f = lif_folded(c, rule, tau=0.25)
    np.testing.assert_array_equal(spikes_f, spikes)
    np.testing.assert_array_equal(u_pre_f, u_pre)
    # Not a trivial agreement: plenty of spikes and silences, also where gamma < 0.
    assert 0.1 < spikes.mean() < 0.9
    neg = np.broadcast_to(layer.fold(neuron_shape=layout).compare == Compare.LT, spikes.shape)
    assert spikes[neg].any() and not spikes[neg].all()
    # gamma = 0 neurons fire always or never, as beta > v_th says.
    const = np.broadcast_to(rule.compare >= Compare.NEVER, spikes.shape)
    always = np.broadcast_to(rule.compare == Compare.ALWAYS, spikes.shape)
    np.testing.assert_array_equal(spikes[const], always[const])
    assert always.any()


def test_sc_neurocore_clipping_is_wrong_for_negative_gamma():
    """sc_neurocore clips gamma to 1e-8, so a gamma = -0.8 neuron gets threshold ~1e8 and
    never fires, although MPBN(u) > v_th does whenever u is low enough."""
    rng = np.random.default_rng(SEED)
    C, v_th = 64, 1.0                                  # the tutorial's threshold
    layer = MembranePotentialBN(C, threshold=v_th)
    for _ in range(100):                               # the tutorial's warm-up
        layer.forward(rng.standard_normal((32, C)), training=True)
    layer.gamma[:] = -0.8
    u = rng.standard_normal((4000, C))                 # membranes from the trained distribution
    truth = layer.forward(u, training=False) > v_th
    clipped = (v_th - layer.beta) * np.sqrt(layer.running_var + layer.eps) / np.clip(
        layer.gamma, 1e-8, None) + layer.running_mean
    wrong_clip = np.mean((u > clipped) != truth)
    wrong_fold = np.mean(layer.fold().fires(u) != truth)
    print(f"gamma = -0.8: clipping gets {wrong_clip:.1%} of {truth.size} decisions wrong, "
          f"the fold {wrong_fold:.1%}")
    assert wrong_fold == 0
    # The clipped threshold is ~1e8: it never fires, so every true spike is a wrong decision,
    # P(z < -1.0 / 0.8) = 10.6 % for a standardized membrane.
    assert not (u > clipped).any()
    assert wrong_clip == truth.mean() and 0.08 < wrong_clip < 0.14
    with pytest.raises(ValueError, match="gamma <= 0 in 64 channel"):
        layer.fused_threshold()


def test_fused_threshold_equals_fold_for_positive_gamma():
    rng = np.random.default_rng(SEED)
    layer = MembranePotentialBN(5, threshold=0.5)
    layer.forward(rng.normal(0, 1, (20, 5)))
    layer.gamma = rng.uniform(0.1, 2, 5)
    rule = layer.fold()
    assert np.all(rule.compare == Compare.GT)
    np.testing.assert_array_equal(layer.fused_threshold(), rule.theta)


# -- tdBN: folded into the preceding weights --------------------------------------------------

def _trained_tdbn(C, rng):
    layer = ThresholdDependentBN(C, threshold=0.5, alpha=1 / np.sqrt(2))
    layer.forward_sequence(rng.normal(1, 2, (4, 16, C)), training=True)
    layer.gamma = rng.normal(0, 1, C)
    layer.beta = rng.normal(0, 1, C)
    return layer


def test_tdbn_fold_into_linear():
    rng = np.random.default_rng(SEED)
    C, Cin = 5, 7
    layer = _trained_tdbn(C, rng)
    W, bias = rng.normal(0, 1, (C, Cin)), rng.normal(0, 1, C)
    x = rng.normal(0, 1, (30, Cin))
    W2, b2 = layer.fold_into(W, bias)
    np.testing.assert_allclose(x @ W2.T + b2, layer.forward(x @ W.T + bias, training=False),
                               rtol=1e-10, atol=1e-12)
    W3, b3 = layer.fold_into(W)                        # no bias
    np.testing.assert_allclose(x @ W3.T + b3, layer.forward(x @ W.T, training=False),
                               rtol=1e-10, atol=1e-12)
    # Shared over time: every step of a sequence folds the same.
    xs = rng.normal(0, 1, (3, 30, Cin))
    np.testing.assert_allclose(np.einsum("tni,ci->tnc", xs, W2) + b2,
                               layer.forward_sequence(xs @ W.T + bias, training=False),
                               rtol=1e-10, atol=1e-12)


def test_tdbn_fold_into_conv():
    rng = np.random.default_rng(SEED)
    C, Cin = 3, 2
    layer = _trained_tdbn(C, rng)
    W, bias = rng.normal(0, 1, (C, Cin, 3, 3)), rng.normal(0, 1, C)
    x = rng.normal(0, 1, (4, Cin, 6, 6))

    def conv(x, W, b):   # valid cross-correlation, (N, Cin, H, W) -> (N, C, H-2, W-2)
        win = sliding_window_view(x, (3, 3), axis=(2, 3))
        return np.einsum("nihwkl,cikl->nchw", win, W) + b[None, :, None, None]

    W2, b2 = layer.fold_into(W, bias)
    np.testing.assert_allclose(conv(x, W2, b2), layer.forward(conv(x, W, bias), training=False),
                               rtol=1e-10, atol=1e-12)


def test_tdbn_fold_into_bad_shapes():
    layer = ThresholdDependentBN(3)
    with pytest.raises(ValueError, match=r"must have shape \(4,\)"):
        layer.fold_into(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        layer.fold_into(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="weight must be finite"):
        layer.fold_into(np.full((3, 2), np.nan))


# -- per-timestep affine folds ------------------------------------------------------------------

def _randomized(layer, rng):
    for name in ("gamma", "beta", "g", "b", "p"):
        if hasattr(layer, name):
            setattr(layer, name, rng.normal(0, 1.2, getattr(layer, name).shape))
    layer.running_mean = rng.normal(0, 1, layer.running_mean.shape)
    layer.running_var = rng.uniform(0, 3, layer.running_var.shape)
    return layer


@pytest.mark.parametrize("cls", [PerTimestepBN, TemporalEffectiveBN, TemporalAccumulatedBN,
                                 TemporalHomeostaticNorm])
@pytest.mark.parametrize("shape", [(9, 3), (9, 3, 2, 4)])
def test_affine_fold_equals_eval_forward(cls, shape):
    rng = np.random.default_rng(SEED)
    T, C = 5, shape[1]
    layer = _randomized(cls(C, T), rng)
    rule = layer.fold()
    assert isinstance(rule, AffineRule) and rule.a.shape == (T, C)
    x = rng.normal(0, 2, (T,) + shape)
    y = layer.forward_sequence(x, training=False)
    for t in range(T):
        np.testing.assert_allclose(rule.apply(x[t], t), y[t], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(rule.apply(x[t], t),
                                   layer.forward(x[t], t=t, training=False),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(9, 3), (9, 3, 2, 4)])
def test_affine_fold_homeostatic(shape):
    rng = np.random.default_rng(SEED)
    layer = _randomized(HomeostaticNorm(3), rng)
    rule = layer.fold()
    assert rule.a.shape == (1, 3)
    x = rng.normal(0, 2, shape)
    np.testing.assert_allclose(rule.apply(x, 0), layer.forward(x, training=False),
                               rtol=1e-10, atol=1e-12)
    tdbn = _trained_tdbn(3, rng)
    np.testing.assert_allclose(tdbn.fold().apply(x, 0), tdbn.forward(x, training=False),
                               rtol=1e-10, atol=1e-12)


# -- exhaustive fixed-point fold --------------------------------------------------------------

MEMBRANE = Fixed(16, 8)
GROUPS = 12             # one v_th per group (fold_mpbn takes a scalar v_th and eps)
PER_GROUP = 256


def _exhaustive_params(rng, group):
    """Parameter sets of one group: random ones and, in odd groups, dyadic ones that put
    the threshold exactly on (and around) grid points, the range edges included."""
    n = PER_GROUP
    if group % 2 == 0:
        v_th = float(rng.normal(0.5, 1.0))
        eps = 1e-5
        gamma = rng.normal(0, 1.5, n) * 10.0 ** rng.uniform(-3, 1, n)
        gamma[rng.random(n) < 0.08] = 0.0
        gamma[:4] = [1e-9, -1e-9, 1e-300, -2.5]
        beta = rng.normal(0, 2, n)
        mean = rng.uniform(-200, 200, n)              # thresholds beyond the range, both sides
        var = rng.uniform(0, 5, n) ** 2
        var[:8] = 0.0
        return dict(gamma=gamma, beta=beta, running_mean=mean, running_var=var, eps=eps), v_th
    # Dyadic: s = sqrt(var + eps) = 1 exactly, so theta = mean + (v_th - beta) / gamma is
    # exact and MPBN(v) > v_th has exact ties on the grid.
    v_th = float(rng.integers(-512, 512) / 256)
    gamma = rng.choice([1.0, 2.0, 0.5, 0.25, -1.0, -2.0, -0.5, -0.25, 0.0], n)
    beta = rng.integers(-512, 512, n) / 256
    gamma[6:9], beta[6:9] = 0.0, [v_th, v_th + 1 / 256, v_th - 1 / 256]   # beta == v_th: never
    edges = np.array([MEMBRANE.max_int, MEMBRANE.min_int, MEMBRANE.max_int + 1,
                      MEMBRANE.min_int - 1, MEMBRANE.max_int - 1, MEMBRANE.min_int + 1])
    k = rng.integers(MEMBRANE.min_int - 300, MEMBRANE.max_int + 300, n)
    k[:len(edges)] = edges
    # Choose mean so that theta itself hits grid point k (or an edge) exactly.
    mean = k / 256 - (v_th - beta) / np.where(gamma == 0, 1.0, gamma)
    return dict(gamma=gamma, beta=beta, running_mean=mean, running_var=np.ones(n), eps=0.0), v_th


def test_exhaustive_fixed_point_fold(record_property):
    """For every membrane value of Fixed(16, 8) and 3072 parameter sets, the quantized rule's
    integer comparison equals MPBN(v) > v_th evaluated in float64 at v = q / 2**8."""
    rng = np.random.default_rng(SEED)
    q = np.arange(MEMBRANE.min_int, MEMBRANE.max_int + 1, dtype=np.int64)
    v = (q / MEMBRANE.scale)[:, None]
    checked = mismatches = ties = fired = 0
    codes = np.zeros(4, dtype=np.int64)
    block = 64
    work = np.empty((len(q), block))
    for group in range(GROUPS):
        params, v_th = _exhaustive_params(rng, group)
        table = quantize_rule(fold_mpbn(v_th=v_th, **params), MEMBRANE)
        codes += np.bincount(table.compare, minlength=4)
        s = np.sqrt(params["running_var"] + params["eps"])
        for lo in range(0, PER_GROUP, block):
            sl = slice(lo, lo + block)
            # MPBN(v) = gamma * (v - mean) / s + beta, literally, in float64.
            np.subtract(v, params["running_mean"][sl], out=work)
            np.multiply(work, params["gamma"][sl], out=work)
            np.divide(work, s[sl], out=work)
            np.add(work, params["beta"][sl], out=work)
            real = work > v_th
            ties += int(np.count_nonzero(work == v_th))
            integer = ThresholdTable(table.theta_q[sl], table.compare[sl]).fires(q[:, None])
            mismatches += int(np.count_nonzero(real != integer))
            fired += int(np.count_nonzero(integer))
            checked += real.size
    print(f"\nexhaustive fixed-point fold: {checked:,} decisions checked "
          f"({len(q)} membrane values x {GROUPS * PER_GROUP} parameter sets), "
          f"{mismatches} mismatches, {ties:,} exact ties; codes GT/LT/NEVER/ALWAYS = "
          f"{codes.tolist()}")
    record_property("exhaustive_fold_checked", checked)
    record_property("exhaustive_fold_mismatches", mismatches)
    assert checked >= 2e8
    assert mismatches == 0
    # Coverage: every comparator code, exact ties, and both decisions in bulk.
    assert np.all(codes > 50), codes
    assert ties > 500
    assert 0.1 < fired / checked < 0.9


def test_threshold_format_too_narrow():
    membrane, narrow = Fixed(16, 8), Fixed(12, 8)     # thresholds only in [-8, 8)
    rule = ThresholdRule(np.array([1.0, 9.5, -20.0, 200.0]),
                         np.array([Compare.GT, Compare.GT, Compare.LT, Compare.GT]))
    with pytest.raises(ValueError,
                       match=r"theta_q\[1\] = 2432 does not fit the threshold format 12\.8"):
        quantize_rule(rule, membrane, narrow)
    # Beyond the membrane's range the rule is constant and needs no stored threshold.
    ok = ThresholdRule(np.array([1.0, 200.0, -200.0]),
                       np.array([Compare.GT, Compare.GT, Compare.LT]))
    table = quantize_rule(ok, membrane, narrow)
    np.testing.assert_array_equal(table.compare, [Compare.GT, Compare.NEVER, Compare.NEVER])
    with pytest.raises(ValueError, match="must have the membrane's 8 fractional bits"):
        quantize_rule(ok, membrane, Fixed(16, 6))


def test_affine_format_too_narrow():
    rule = AffineRule(np.array([[1.0, 9.0]]), np.array([[0.0, 1.5]]))
    with pytest.raises(ValueError, match=r"affine a\[t=0, c=1\] = 9\.0 does not fit .* 8\.4"):
        quantize_affine(rule, Fixed(8, 4), Fixed(16, 8))
    with pytest.raises(ValueError, match=r"affine b\[t=0, c=1\] = 1\.5 does not fit .* 4\.3"):
        quantize_affine(rule, Fixed(16, 8), Fixed(4, 3))
