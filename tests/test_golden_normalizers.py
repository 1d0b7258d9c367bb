"""Each normalizer against its formula, written out here independently of golden/.

The reference helpers below restate the PyTorch batch-norm conventions of
../shared/reference/normalizers.md from scratch: per channel, the values reduced are gathered
into one row, the mean and the biased variance of that row normalize, and the running
variance gets ``sum((x - mu)**2) / (n - 1)``.
"""

import numpy as np
import pytest

from golden.normalizers import (
    HomeostaticNorm, MembranePotentialBN, PerTimestepBN, TemporalAccumulatedBN,
    TemporalEffectiveBN, TemporalHomeostaticNorm, ThresholdDependentBN,
)

ALL = (ThresholdDependentBN, PerTimestepBN, TemporalEffectiveBN, MembranePotentialBN,
       TemporalAccumulatedBN, HomeostaticNorm, TemporalHomeostaticNorm)


def rows(x, channel_axis):
    """Per-channel rows of every value of ``x``: shape (C, n)."""
    x = np.asarray(x, dtype=np.float64)
    return np.moveaxis(x, channel_axis, 0).reshape(x.shape[channel_axis], -1)


def stats(x, channel_axis):
    """(mean, biased var, unbiased var) per channel."""
    r = rows(x, channel_axis)
    n = r.shape[1]
    mu = r.sum(axis=1) / n
    sq = ((r - mu[:, None]) ** 2).sum(axis=1)
    return mu, sq / n, sq / (n - 1)


def bcast(v, x, channel_axis):
    shape = [1] * x.ndim
    shape[channel_axis] = -1
    return np.asarray(v).reshape(shape)


def bn(x, channel_axis, mu, var, gamma, beta, eps):
    return (bcast(gamma, x, channel_axis) * (x - bcast(mu, x, channel_axis))
            / np.sqrt(bcast(var, x, channel_axis) + eps) + bcast(beta, x, channel_axis))


def ema(old, new, m=0.1):
    return (1 - m) * old + m * new


def randomize(layer, rng):
    """Give every learnable/state array of ``layer`` non-trivial values."""
    for name in ("gamma", "beta", "running_mean", "g", "b", "p"):
        if hasattr(layer, name):
            arr = getattr(layer, name)
            setattr(layer, name, rng.normal(0.5, 1.0, arr.shape))
    layer.running_var = rng.uniform(0.2, 3.0, layer.running_var.shape)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


SHAPES = [(16, 3), (6, 3, 4, 5)]


# -- tdBN ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_tdbn_training_and_eval(rng, shape):
    C = shape[1]
    layer = ThresholdDependentBN(C, threshold=0.7, alpha=1 / np.sqrt(2))
    layer.gamma = rng.normal(1, 0.5, C)
    layer.beta = rng.normal(0, 0.5, C)
    rm, rv = np.zeros(C), np.ones(C)
    for _ in range(3):
        x = rng.normal(2.0, 3.0, shape)
        y = layer.forward(x, training=True)
        mu, var_b, var_u = stats(x, 1)
        k = layer.gamma * 0.7 / np.sqrt(2)
        np.testing.assert_allclose(y, bn(x, 1, mu, var_b, k, layer.beta, 1e-5), rtol=1e-12)
        rm, rv = ema(rm, mu), ema(rv, var_u)
        np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12)
        np.testing.assert_allclose(layer.running_var, rv, rtol=1e-12)
    x = rng.normal(2.0, 3.0, shape)
    y = layer.forward(x, training=False)
    np.testing.assert_allclose(
        y, bn(x, 1, rm, rv, layer.gamma * 0.7 / np.sqrt(2), layer.beta, 1e-5), rtol=1e-12)
    np.testing.assert_array_equal(layer.running_mean, rm)        # eval does not update


@pytest.mark.parametrize("shape", [(4, 8, 3), (4, 5, 3, 2, 2)])
def test_tdbn_sequence_pools_time(rng, shape):
    C = shape[2]
    layer = ThresholdDependentBN(C, threshold=1.0)
    # Every step a different mean: pooling over T must see the spread between steps.
    x = rng.normal(0, 1, shape) + np.arange(shape[0]).reshape(-1, *[1] * (len(shape) - 1))
    y = layer.forward_sequence(x, training=True)
    mu, var_b, var_u = stats(x, 2)
    np.testing.assert_allclose(y, bn(x, 2, mu, var_b, 1, 0, 1e-5), rtol=1e-12)
    np.testing.assert_allclose(layer.running_mean, 0.1 * mu, rtol=1e-12)   # one update
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * var_u, rtol=1e-12)
    assert np.all(var_b > 1.5)     # the between-step spread (var of 0..3 = 1.25) is included


# -- BNTT ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_bntt_per_step_stats_eps_and_no_beta(rng, shape):
    C, T = shape[1], 4
    layer = PerTimestepBN(C, T)
    assert layer.eps == 1e-4
    assert not hasattr(layer, "beta")
    layer.gamma = rng.normal(1, 0.5, (T, C))
    rm, rv = np.zeros((T, C)), np.ones((T, C))
    for _ in range(2):
        for t in range(T):
            x = rng.normal(t, 1 + t, shape)
            y = layer.forward(x, t=t, training=True)
            mu, var_b, var_u = stats(x, 1)
            np.testing.assert_allclose(y, bn(x, 1, mu, var_b, layer.gamma[t], 0, 1e-4),
                                       rtol=1e-12)
            rm[t], rv[t] = ema(rm[t], mu), ema(rv[t], var_u)
            np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12)
            np.testing.assert_allclose(layer.running_var, rv, rtol=1e-12)
    x = rng.normal(0, 1, shape)
    for t in range(T):
        np.testing.assert_allclose(layer.forward(x, t=t, training=False),
                                   bn(x, 1, rm[t], rv[t], layer.gamma[t], 0, 1e-4), rtol=1e-12)
    # A constant input would give beta back if there were one: zero with no beta.
    np.testing.assert_allclose(layer.forward(np.full(shape, 3.0), t=0, training=True), 0.0)


def test_bntt_eps_matters(rng):
    # With eps = 1e-5 instead of 1e-4 the output on a tiny-variance batch differs visibly.
    x = rng.normal(0, 1e-2, (64, 2))
    y = PerTimestepBN(2, 1).forward(x, t=0)
    mu, var_b, _ = stats(x, 1)
    np.testing.assert_allclose(y, bn(x, 1, mu, var_b, 1, 0, 1e-4), rtol=1e-12)
    assert not np.allclose(y, bn(x, 1, mu, var_b, 1, 0, 1e-5), rtol=1e-3)


def test_bntt_sequence_equals_steps(rng):
    a, b = PerTimestepBN(3, 5), PerTimestepBN(3, 5)
    x = rng.normal(0, 2, (5, 7, 3, 2, 2))
    ys = a.forward_sequence(x, training=True)
    for t in range(5):
        np.testing.assert_array_equal(ys[t], b.forward(x[t], t=t, training=True))
    np.testing.assert_array_equal(a.running_var, b.running_var)


# -- TEBN ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 8, 3), (4, 5, 3, 2, 2)])
def test_tebn_pooled_statistics_and_p(rng, shape):
    T, C = shape[0], shape[2]
    layer = TemporalEffectiveBN(C, T)
    layer.gamma = rng.normal(1, 0.5, C)
    layer.beta = rng.normal(0, 0.5, C)
    layer.p = rng.normal(1, 0.5, T)
    x = rng.normal(0, 1, shape) * (1 + np.arange(T)).reshape(-1, *[1] * (len(shape) - 1))
    y = layer.forward_sequence(x, training=True)
    mu, var_b, var_u = stats(x, 2)            # one set of statistics over N, T, H, W
    for t in range(T):
        np.testing.assert_allclose(
            y[t], layer.p[t] * bn(x[t], 1, mu, var_b, layer.gamma, layer.beta, 1e-5),
            rtol=1e-12)
    np.testing.assert_allclose(layer.running_mean, 0.1 * mu, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * var_u, rtol=1e-12)
    # Per-step statistics would differ (the steps have different spreads).
    mu0, var0, _ = stats(x[0], 1)
    assert not np.allclose(y[0], layer.p[0] * bn(x[0], 1, mu0, var0, layer.gamma,
                                                 layer.beta, 1e-5), rtol=1e-2)
    # Eval: running stats, per step or whole sequence alike.
    ye = layer.forward_sequence(x, training=False)
    for t in range(T):
        ref = layer.p[t] * bn(x[t], 1, layer.running_mean, layer.running_var, layer.gamma,
                              layer.beta, 1e-5)
        np.testing.assert_allclose(ye[t], ref, rtol=1e-12)
        np.testing.assert_allclose(layer.forward(x[t], t=t, training=False), ref, rtol=1e-12)


def test_tebn_per_step_training_refused(rng):
    layer = TemporalEffectiveBN(3, 4)
    with pytest.raises(ValueError, match="forward_sequence"):
        layer.forward(rng.normal(0, 1, (5, 3)), t=0, training=True)


# -- MPBN ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_mpbn_channelwise_T_updates_per_sequence(rng, shape):
    C, T = shape[1], 5
    layer = MembranePotentialBN(C, threshold=0.5)
    assert layer.v_th == 0.5
    layer.gamma = rng.normal(0, 1, C)
    layer.beta = rng.normal(0, 1, C)
    u = rng.normal(1, 2, (T,) + shape)
    y = layer.forward_sequence(u, training=True)
    rm, rv = np.zeros(C), np.ones(C)
    for t in range(T):                       # each step: its own statistics, one update
        mu, var_b, var_u = stats(u[t], 1)
        np.testing.assert_allclose(y[t], bn(u[t], 1, mu, var_b, layer.gamma, layer.beta,
                                            1e-5), rtol=1e-12)
        rm, rv = ema(rm, mu), ema(rv, var_u)
    np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, rv, rtol=1e-12)
    ue = rng.normal(1, 2, shape)
    np.testing.assert_allclose(layer.forward(ue, training=False),
                               bn(ue, 1, rm, rv, layer.gamma, layer.beta, 1e-5), rtol=1e-12)


def test_mpbn_elementwise(rng):
    C, H, W = 3, 2, 4
    layer = MembranePotentialBN(C, threshold=0.5, shape=(C, H, W))
    layer.gamma = rng.normal(0, 1, (C, H, W))
    layer.beta = rng.normal(0, 1, (C, H, W))
    u = rng.normal(1, 2, (10, C, H, W))
    y = layer.forward(u, training=True)
    # Statistics per neuron over the batch only.
    mu = u.mean(axis=0)
    var_b = ((u - mu) ** 2).mean(axis=0)
    var_u = ((u - mu) ** 2).sum(axis=0) / 9
    np.testing.assert_allclose(y, layer.gamma * (u - mu) / np.sqrt(var_b + 1e-5) + layer.beta,
                               rtol=1e-12)
    np.testing.assert_allclose(layer.running_mean, 0.1 * mu, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * var_u, rtol=1e-12)
    ye = layer.forward(u, training=False)
    np.testing.assert_allclose(
        ye, layer.gamma * (u - layer.running_mean) / np.sqrt(layer.running_var + 1e-5)
        + layer.beta, rtol=1e-12)
    with pytest.raises(ValueError, match="u must have shape"):
        layer.forward(rng.normal(0, 1, (10, C, W, H)))


def test_mpbn_fused_threshold_formula(rng):
    layer = MembranePotentialBN(6, threshold=1.0)
    randomize(layer, rng)
    layer.gamma = np.abs(layer.gamma) + 0.1
    theta = layer.fused_threshold()
    ref = (1.0 - layer.beta) * np.sqrt(layer.running_var + 1e-5) / layer.gamma + layer.running_mean
    np.testing.assert_allclose(theta, ref, rtol=1e-12)


@pytest.mark.parametrize("bad", [-0.8, 0.0])
def test_mpbn_fused_threshold_refuses_non_positive_gamma(bad):
    layer = MembranePotentialBN(8)
    layer.gamma[[2, 5]] = bad
    with pytest.raises(ValueError, match=r"channel\(s\): 2, 5.*fold\(\)"):
        layer.fused_threshold()


# -- TAB -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 8, 3), (3, 5, 3, 2, 2)])
def test_tab_growing_window_and_p_squared(rng, shape):
    T, C = shape[0], shape[2]
    layer = TemporalAccumulatedBN(C, T)
    randomize(layer, rng)
    layer.running_mean[:] = 0.0
    layer.running_var[:] = 1.0
    layer.p = np.array([-2.0, 0.5, 1.5, 0.7][:T])       # negative p: squared, so positive
    x = rng.normal(0, 1, shape) + 3 * np.arange(T).reshape(-1, *[1] * (len(shape) - 1))
    y = layer.forward_sequence(x, training=True)
    for t in range(T):
        mu, var_b, var_u = stats(x[:t + 1], 2)            # N, steps 0..t, H, W pooled
        ref = layer.p[t] ** 2 * bn(x[t], 1, mu, var_b, layer.gamma[t], layer.beta[t], 1e-5)
        np.testing.assert_allclose(y[t], ref, rtol=1e-12)
        np.testing.assert_allclose(layer.running_mean[t], 0.1 * mu, rtol=1e-12)
        np.testing.assert_allclose(layer.running_var[t], 0.9 + 0.1 * var_u, rtol=1e-12)
        if t:
            # The pooled variance holds the spread of the step means (3 apart).
            assert np.all(var_b > stats(x[t], 1)[1] + 1.0)
    assert layer.p[0] ** 2 == 4.0 and np.all(y[0] * (-2.0) != y[0] * 4.0)
    ye = layer.forward_sequence(x, training=False)
    for t in range(T):
        ref = layer.p[t] ** 2 * bn(x[t], 1, layer.running_mean[t], layer.running_var[t],
                                   layer.gamma[t], layer.beta[t], 1e-5)
        np.testing.assert_allclose(ye[t], ref, rtol=1e-12)
        np.testing.assert_allclose(layer.forward(x[t], t=t, training=False), ref, rtol=1e-12)


def test_tab_per_step_training_equals_sequence(rng):
    a, b = TemporalAccumulatedBN(3, 4), TemporalAccumulatedBN(3, 4)
    x = rng.normal(0, 1, (4, 6, 3, 2, 2)) + np.arange(4).reshape(4, 1, 1, 1, 1)
    ys = a.forward_sequence(x, training=True)
    for t in range(4):
        np.testing.assert_allclose(b.forward(x[t], t=t, training=True), ys[t], rtol=1e-14)
    np.testing.assert_allclose(b.running_var, a.running_var, rtol=1e-14)
    # A new sequence starts at t = 0; skipping a step is refused.
    b.forward(x[0], t=0)
    with pytest.raises(ValueError, match="expected t = 1"):
        b.forward(x[2], t=2)


# -- homeostatic ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_homeostatic_formula(rng, shape):
    C = shape[1]
    layer = HomeostaticNorm(C, eta=0.2)
    layer.gamma = rng.normal(1, 0.5, C)
    layer.beta = rng.normal(0, 0.5, C)
    g, b = np.ones(C), np.zeros(C)
    rm, rv = np.zeros(C), np.ones(C)
    for _ in range(3):
        x = rng.normal(2, 3, shape)
        y = layer.forward(x, training=True)
        mu, var_b, var_u = stats(x, 1)
        g_star = 1 / np.sqrt(var_b + 1e-5)
        g, b = 0.8 * g + 0.2 * g_star, 0.8 * b + 0.2 * (-mu * g_star)
        rm, rv = ema(rm, mu), ema(rv, var_u)
        np.testing.assert_allclose(
            y, bcast(layer.gamma, x, 1) * (bcast(g, x, 1) * x + bcast(b, x, 1))
            + bcast(layer.beta, x, 1), rtol=1e-12)
        np.testing.assert_allclose(layer.g, g, rtol=1e-12)
        np.testing.assert_allclose(layer.running_var, rv, rtol=1e-12)
    x = rng.normal(2, 3, shape)
    y = layer.forward(x, training=False)       # batch-free: the same affine, no adaptation
    np.testing.assert_allclose(y, bcast(layer.gamma * g, x, 1) * x
                               + bcast(layer.gamma * b + layer.beta, x, 1), rtol=1e-12)
    np.testing.assert_allclose(layer.g, g, rtol=1e-12)


def test_temporal_homeostatic_per_step(rng):
    T, C = 3, 2
    layer = TemporalHomeostaticNorm(C, T, eta=0.5)
    x = rng.normal(0, 1, (T, 8, C, 2, 2)) * np.array([1.0, 2.0, 4.0]).reshape(T, 1, 1, 1, 1)
    layer.forward_sequence(x, training=True)
    for t in range(T):
        mu, var_b, _ = stats(x[t], 1)
        np.testing.assert_allclose(layer.g[t], 0.5 + 0.5 / np.sqrt(var_b + 1e-5), rtol=1e-12)
        np.testing.assert_allclose(layer.b[t], -0.5 * mu / np.sqrt(var_b + 1e-5), rtol=1e-12)
    layer.gamma = rng.normal(1, 0.5, (T, C))
    layer.beta = rng.normal(0, 0.5, (T, C))
    for t in range(T):
        y = layer(x[t], t, training=False)                       # the seed's norm(x, t)
        np.testing.assert_allclose(
            y, bcast(layer.gamma[t], y, 1) * (bcast(layer.g[t], y, 1) * x[t]
                                              + bcast(layer.b[t], y, 1))
            + bcast(layer.beta[t], y, 1), rtol=1e-12)


def test_homeostatic_proposition_1(rng):
    """Proposition 1: on a stationary input, after warm-up HomeostaticNorm's output matches
    BatchNorm's eval output.

    Tolerance 0.01 (absolute, on outputs of unit scale, over |z| <= 4): both layers estimate
    the same per-channel mean and scale by exponential moving averages (rate 0.05) of batch
    statistics from n = 4096 values per channel. A batch variance has relative sampling
    noise sqrt(2/n) = 2.2 %; the EMA keeps sqrt(0.05/2) of it, 0.35 %, in each estimate,
    so each output differs by about 4 * 0.0035 / 2 + 0.0035 ~ 0.01 at the edge in the worst
    case, while the systematic differences (E[1/sqrt(v)] vs 1/sqrt(E[v]) and n/(n-1)) are
    O(1/n) ~ 2.4e-4. An un-normalized or mis-normalized output would be off by O(1).
    """
    C = 4
    mean = np.array([3.0, -1.0, 0.0, 10.0])
    std = np.array([0.5, 2.0, 1.0, 4.0])
    homeo = HomeostaticNorm(C, eta=0.05)
    rm, rv = np.zeros(C), np.ones(C)
    for _ in range(400):
        x = mean[None, :, None, None] + std[None, :, None, None] * rng.standard_normal(
            (64, C, 8, 8))
        homeo.forward(x, training=True)
        mu, _, var_u = stats(x, 1)
        rm, rv = ema(rm, mu, 0.05), ema(rv, var_u, 0.05)
    z = np.clip(rng.standard_normal((256, C)), -4, 4)
    x = mean + std * z
    y_bn = (x - rm) / np.sqrt(rv + 1e-5)
    y_h = homeo.forward(x, training=False)
    err = np.max(np.abs(y_h - y_bn))
    print(f"Proposition 1: max |homeostatic - BatchNorm eval| = {err:.2e} (tolerance 1e-2)")
    assert err < 1e-2
    # Both are close to the ideal standardization too (a sanity check, not the proposition).
    assert np.max(np.abs(y_h - z)) < 0.05


# -- bad input -----------------------------------------------------------------------------

def make(cls, C=3, T=4):
    return cls(C, T) if cls in (PerTimestepBN, TemporalEffectiveBN, TemporalAccumulatedBN,
                                TemporalHomeostaticNorm) else cls(C)


def call(layer, x, **kw):
    """Eval-mode one-step call in each class's style."""
    if isinstance(layer, (PerTimestepBN, TemporalEffectiveBN, TemporalAccumulatedBN,
                          TemporalHomeostaticNorm)):
        return layer.forward(x, t=kw.pop("t", 0), training=False, **kw)
    return layer.forward(x, training=False, **kw)


@pytest.mark.parametrize("cls", ALL)
def test_bad_input_x(cls):
    layer = make(cls)
    x = np.zeros((4, 3))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"(x|u) must be finite.*nan.*\(1, 2\)"):
        call(layer, x)
    with pytest.raises(ValueError, match=r"must have shape \(N, 3\).*\(4, 5\)"):
        call(layer, np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"must have shape.*\(3,\)"):
        call(layer, np.zeros(3))
    with pytest.raises(ValueError, match="numeric array"):
        call(layer, "abc")
    with pytest.raises(ValueError, match="unknown argument.*bogus"):
        call(layer, np.zeros((4, 3)), bogus=1)
    with pytest.raises(ValueError, match="unknown argument.*momentun"):
        cls(3, 4, momentun=0.2) if layer.__dict__.get("T") else cls(3, momentun=0.2)
    with pytest.raises(ValueError, match="training must be True or False, not 'yes'"):
        layer.forward(np.zeros((4, 3)), **({"t": 0} if hasattr(layer, "T") else {}),
                      training="yes")


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("field,value,message", [
    ("gamma", np.inf, r"gamma must be finite, but holds inf at index \(0"),
    ("running_mean", np.nan, r"running_mean must be finite, but holds nan"),
    ("running_var", -0.5, r"running_var must be >= 0, but running_var\[0(, 0)?\] = -0.5"),
])
def test_bad_state(cls, field, value, message):
    layer = make(cls)
    arr = getattr(layer, field)
    arr.flat[0] = value
    with pytest.raises(ValueError, match=message):
        call(layer, np.zeros((4, 3)))
    if hasattr(layer, "fold"):
        with pytest.raises(ValueError, match=message):
            layer.fold()


@pytest.mark.parametrize("cls", ALL)
def test_bad_state_shape_and_scalars(cls):
    layer = make(cls)
    layer.running_mean = np.zeros(7)
    with pytest.raises(ValueError, match=r"running_mean must have shape .*not \(7,\)"):
        call(layer, np.zeros((4, 3)))
    layer = make(cls)
    layer.eps = 0.0
    with pytest.raises(ValueError, match="eps must be > 0.0, not 0.0"):
        call(layer, np.zeros((4, 3)))
    layer = make(cls)
    layer.momentum = 1.5
    with pytest.raises(ValueError, match="momentum must be <= 1.0, not 1.5"):
        call(layer, np.zeros((4, 3)))


@pytest.mark.parametrize("cls", [PerTimestepBN, TemporalEffectiveBN, TemporalAccumulatedBN,
                                 TemporalHomeostaticNorm])
@pytest.mark.parametrize("t", [-1, 4, 1.0, True, None])
def test_t_outside_range(cls, t):
    with pytest.raises(ValueError, match=rf"t must be an integer in 0\.\.3, not {t!r}"):
        cls(3, 4).forward(np.zeros((4, 3)), t=t, training=False)


@pytest.mark.parametrize("cls", [PerTimestepBN, TemporalEffectiveBN, TemporalAccumulatedBN,
                                 TemporalHomeostaticNorm])
def test_sequence_length_must_be_T(cls):
    with pytest.raises(ValueError, match="x_seq must have T = 4 steps on axis 0, not 3"):
        cls(3, 4).forward_sequence(np.zeros((3, 5, 3)), training=False)
    with pytest.raises(ValueError, match=r"x_seq must have shape \(T, N, 3\)"):
        cls(3, 4).forward_sequence(np.zeros((4, 5)), training=False)


@pytest.mark.parametrize("kwargs,message", [
    (dict(n_features=0), "n_features must be a positive integer, not 0"),
    (dict(n_features=2.5), "n_features must be a positive integer, not 2.5"),
    (dict(n_features=3, eps=-1e-5), "eps must be > 0.0, not -1e-05"),
    (dict(n_features=3, momentum=float("nan")), "momentum must be finite, but holds nan"),
    (dict(n_features=3, threshold=float("inf")), "threshold must be finite"),
    (dict(n_features=3, threshold="high"), "threshold must be a real number, not 'high'"),
    (dict(n_features=3, threshold=[1.0, 2.0]), "threshold must be a scalar"),
    (dict(n_features=3, shape=(4, 2, 2)), r"shape must start with n_features = 3"),
    (dict(n_features=3, shape=(3, 0)), "shape must be a positive integer, not 0"),
])
def test_bad_constructor_mpbn(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MembranePotentialBN(**kwargs)


def test_bad_constructor_others():
    with pytest.raises(ValueError, match="T must be a positive integer, not 0"):
        PerTimestepBN(3, 0)
    with pytest.raises(ValueError, match=r"eta must be > 0.0, not 0"):
        HomeostaticNorm(3, eta=0)
    with pytest.raises(ValueError, match="alpha must be finite"):
        ThresholdDependentBN(3, alpha=float("nan"))


def test_training_needs_two_values_per_channel():
    with pytest.raises(ValueError, match="more than one value per channel"):
        ThresholdDependentBN(3).forward(np.zeros((1, 3)), training=True)
    # Element-wise MPBN reduces over N only.
    with pytest.raises(ValueError, match="more than one value per channel"):
        MembranePotentialBN(3, shape=(3, 2)).forward(np.zeros((1, 3, 2)), training=True)


def test_state_is_not_clamped(rng):
    # A zero variance is legal (eps keeps it finite) and used as given.
    layer = MembranePotentialBN(2)
    layer.running_var = np.zeros(2)
    y = layer.forward(np.ones((3, 2)), training=False)
    np.testing.assert_allclose(y, 1 / np.sqrt(1e-5), rtol=1e-12)
