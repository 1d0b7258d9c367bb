"""The bit-exact core model against a per-neuron Python-int restatement of its definition.

``reference`` below is written from the table in golden/core.py's module docstring, one
neuron at a time with Python integers (unbounded, ``>>`` floors), without calling any
golden helper. The core model must agree with it bit for bit.
"""

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from golden.core import CoreConfig, CoreModel
from golden.corefile import FoldedCore
from golden.examples import example_core, example_mpbn_params
from golden.fixed import Fixed
from golden.fold import Compare, fold_mpbn
from golden.lif import lif_folded
from golden.quantize import AffineTable, ThresholdTable, quantize_rule

GT, LT, NEVER, ALWAYS = (int(c) for c in (Compare.GT, Compare.LT, Compare.NEVER,
                                          Compare.ALWAYS))


def reference(cfg, theta_q, compare, affine, currents):
    """Run the docstring's table; returns (spikes, v_pre) as nested lists, one row a step."""
    lo, hi = -(1 << (cfg.membrane.bits - 1)), (1 << (cfg.membrane.bits - 1)) - 1

    def sat(z):
        return min(max(z, lo), hi)

    align = cfg.membrane.frac - cfg.current.frac
    tau = Fraction(cfg.tau)
    k = next((k for k in range(64) if tau == Fraction(1, 1 << k)), None)
    tau_q = math.floor(tau * (1 << cfg.tau_bits) + Fraction(1, 2))
    per = cfg.neurons // cfg.channels
    v = [0] * cfg.neurons
    out_s, out_v = [], []
    for step, row in enumerate(currents):
        t = step % cfg.T
        if t == 0:
            v = [0] * cfg.neurons
        s_row, v_row = [], []
        for i in range(cfg.neurons):
            x = int(row[i]) << align
            if cfg.affine:
                ch = i // per
                a, b = int(affine.a_q[t][ch]), int(affine.b_q[t][ch])
                y = sat(((x * a) >> cfg.scale.frac) + b)
            else:
                y = sat(x)
            leak = v[i] >> k if k is not None else (v[i] * tau_q) >> cfg.tau_bits
            v_pre = sat(leak + y)
            c, th = int(compare[i]), int(theta_q[i])
            fire = {GT: v_pre > th, LT: v_pre < th, NEVER: False, ALWAYS: True}[c]
            if not fire:
                v[i] = v_pre
            elif cfg.reset == "zero":
                v[i] = 0
            else:
                v[i] = sat(v_pre - th)
            s_row.append(fire)
            v_row.append(v_pre)
        out_s.append(s_row)
        out_v.append(v_row)
    return out_s, out_v


def random_tables(cfg, rng):
    thr = cfg.threshold
    # Thresholds drawn near typical membranes (so ties happen) and across the whole format.
    theta = np.where(rng.random(cfg.neurons) < 0.5,
                     rng.integers(-40, 40, cfg.neurons),
                     rng.integers(thr.min_int, thr.max_int + 1, cfg.neurons))
    compare = rng.choice([GT, GT, LT, LT, NEVER, ALWAYS], cfg.neurons)
    theta[(compare == NEVER) | (compare == ALWAYS)] = 0
    affine = None
    if cfg.affine:
        shape = (cfg.T, cfg.channels)
        a_q = rng.integers(cfg.scale.min_int, cfg.scale.max_int + 1, shape)
        a_q[0, 0], a_q[-1, -1] = cfg.scale.min_int, cfg.scale.max_int
        b_q = rng.integers(cfg.membrane.min_int, cfg.membrane.max_int + 1, shape)
        affine = AffineTable(a_q, b_q)
    return ThresholdTable(theta, compare), affine


def random_currents(cfg, steps, rng):
    cur = cfg.current
    small = rng.integers(-30, 30, (steps, cfg.neurons))
    full = rng.integers(cur.min_int, cur.max_int + 1, (steps, cfg.neurons))
    c = np.where(rng.random((steps, cfg.neurons)) < 0.7, small, full)
    c[0, :4] = [cur.max_int, cur.min_int, cur.max_int, cur.min_int]    # hit both rails
    return c


CONFIGS = {
    "shift-zero": dict(tau=0.25, reset="zero"),
    "shift-subtract": dict(tau=0.5, reset="subtract"),
    "tau1-subtract": dict(tau=1.0, reset="subtract"),
    "mult-zero": dict(tau=0.3, tau_bits=7, reset="zero"),
    "mult-subtract": dict(tau=0.9, tau_bits=10, reset="subtract"),
    "shift-zero-affine": dict(tau=0.25, reset="zero", affine=True),
    "mult-subtract-affine": dict(tau=0.7, tau_bits=5, reset="subtract", affine=True),
    "narrow-threshold": dict(tau=0.125, reset="subtract", threshold=Fixed(9, 4)),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_core_matches_reference(name):
    rng = np.random.default_rng(7)
    cfg = CoreConfig(neurons=48, T=5, current=Fixed(12, 2), membrane=Fixed(12, 4),
                     channels=4, scale=Fixed(8, 5), **CONFIGS[name])
    thresholds, affine = random_tables(cfg, rng)
    currents = random_currents(cfg, 17, rng)          # 3 samples and a bit: auto-restart
    # Put some thresholds exactly on the membrane the neuron sees at step 0 (which does not
    # depend on thresholds), so that ties are certainly exercised.
    _, v0 = reference(cfg, thresholds.theta_q, thresholds.compare, affine, currents[:1])
    v0 = np.array(v0[0])
    pick = ((thresholds.compare <= LT) & (cfg.threshold.overflows(v0) == 0)
            & (np.arange(cfg.neurons) % 3 == 0))
    theta = np.where(pick, v0, thresholds.theta_q)
    thresholds = ThresholdTable(theta, thresholds.compare)
    model = CoreModel(cfg, thresholds, affine)
    spikes, v_pre = model.run(currents)
    ref_s, ref_v = reference(cfg, thresholds.theta_q, thresholds.compare, affine, currents)
    np.testing.assert_array_equal(v_pre, np.array(ref_v))
    np.testing.assert_array_equal(spikes, np.array(ref_s))
    # The comparison is not vacuous: spikes, silences, saturation at both rails, and ties
    # (v_pre == theta_q on a GT/LT neuron, which must not fire).
    assert 0.05 < spikes.mean() < 0.95
    assert (v_pre == cfg.membrane.max_int).any() and (v_pre == cfg.membrane.min_int).any()
    cmp_ = np.broadcast_to(thresholds.compare, v_pre.shape)
    tie = (v_pre == thresholds.theta_q) & ((cmp_ == GT) | (cmp_ == LT))
    assert tie.any() and not spikes[tie].any()
    assert model.saturations.membrane > 0


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_ties_exactly_at_theta(reset):
    cfg = CoreConfig(neurons=6, T=4, current=Fixed(16, 8), membrane=Fixed(16, 8), reset=reset)
    # Step 0: v_pre = current exactly (membrane starts at zero).
    c = np.array([100, 100, 100, -100, -100, -100])
    theta = np.array([100, 99, 101, -100, -99, -101])
    compare = np.array([GT, GT, GT, LT, LT, LT])
    model = CoreModel(cfg, ThresholdTable(theta, compare))
    r = model.step(c)
    np.testing.assert_array_equal(r.v_pre, c)
    np.testing.assert_array_equal(r.spikes, [False, True, False, False, True, False])
    expected_v = np.where(r.spikes, 0 if reset == "zero" else c - theta, c)
    np.testing.assert_array_equal(r.v, expected_v)


def test_never_and_always():
    cfg = CoreConfig(neurons=4, T=3)
    model = CoreModel(cfg, ThresholdTable(np.zeros(4, int), [NEVER, ALWAYS, NEVER, ALWAYS]))
    spikes, _ = model.run(np.array([[32767, 32767, -32768, -32768]] * 3))
    np.testing.assert_array_equal(spikes, [[False, True, False, True]] * 3)


def test_clear_and_auto_restart():
    rng = np.random.default_rng(3)
    core = example_core(32, T=4, reset="subtract")
    currents = core.config.current.quantize(rng.normal(0.3, 0.8, (4, 32)))
    fresh_s, fresh_v = core.model().run(currents)
    m = core.model()
    s2, v2 = m.run(np.concatenate([currents, currents]))   # the second sample starts afresh
    np.testing.assert_array_equal(s2[4:], fresh_s)
    np.testing.assert_array_equal(v2[4:], fresh_v)
    m.run(currents[:2])
    assert m.t == 2 and m.v.any()
    m.clear()
    assert m.t == 0 and not m.v.any()
    np.testing.assert_array_equal(m.run(currents)[1], fresh_v)
    # Without clear() a sample started mid-way continues from the stored membrane.
    m.run(currents[:1])
    assert not np.array_equal(m.run(currents[:3])[1], fresh_v[:3])


@pytest.mark.parametrize("k", [0, 1, 2, 3, 5])
def test_multiply_leak_with_power_of_two_tau_equals_shift(k):
    class MultiplyLeak(CoreConfig):
        leak_shift = property(lambda self: None)

    rng = np.random.default_rng(k)
    kw = dict(neurons=40, T=6, tau=2.0 ** -k, tau_bits=8, reset="subtract",
              membrane=Fixed(12, 4), current=Fixed(12, 4))
    shift_cfg, mult_cfg = CoreConfig(**kw), MultiplyLeak(**kw)
    assert shift_cfg.leak_shift == k and mult_cfg.leak_shift is None
    assert mult_cfg.tau_q == 1 << (8 - k)
    thresholds, _ = random_tables(shift_cfg, rng)
    currents = random_currents(shift_cfg, 12, rng)
    a = CoreModel(shift_cfg, thresholds).run(currents)
    b = CoreModel(mult_cfg, thresholds).run(currents)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("fmt,minimum", [(Fixed(32, 20), 0.9999), (Fixed(16, 8), 0.995)])
def test_fixed_point_vs_float_deviation(fmt, minimum):
    """Float vs fixed: the integer core and the float folded LIF agree on nearly every
    spike. Disagreements come from rounding the currents and flooring the leak, so they
    shrink with the fractional bits."""
    N, T, samples = 512, 16, 8
    rng = np.random.default_rng(11)
    rule = fold_mpbn(v_th=0.5, **example_mpbn_params(N, seed=5))
    cfg = CoreConfig(neurons=N, T=T, current=fmt, membrane=fmt, tau=0.25)
    model = CoreModel(cfg, quantize_rule(rule, fmt))
    c = rng.normal(0.2, 0.6, (samples, T, N))
    spikes_q, _ = model.run(fmt.quantize(c).reshape(samples * T, N))
    spikes_f, _ = lif_folded(c.transpose(1, 0, 2), rule, tau=0.25)
    agree = np.mean(spikes_q.reshape(samples, T, N) == spikes_f.transpose(1, 0, 2))
    print(f"\nfloat vs fixed {fmt}: spike agreement {agree:.5f}")
    assert agree >= minimum
    assert 0.1 < spikes_f.mean() < 0.9


# -- load ports -----------------------------------------------------------------------------

def test_load_thresholds_and_affine():
    rng = np.random.default_rng(5)
    core = example_core(16, T=3, affine=True, channels=4)
    currents = core.config.current.quantize(rng.normal(0.3, 0.8, (6, 16)))
    m = core.model()
    m.load_thresholds([2, 7], [10, -20], [LT, GT])
    m.load_affine(1, 3, 4096, -16)
    theta = core.thresholds.theta_q.copy()
    compare = core.thresholds.compare.copy()
    theta[[2, 7]], compare[[2, 7]] = [10, -20], [LT, GT]
    a_q, b_q = core.affine.a_q.copy(), core.affine.b_q.copy()
    a_q[1, 3], b_q[1, 3] = 4096, -16
    expected = CoreModel(core.config, ThresholdTable(theta, compare), AffineTable(a_q, b_q))
    np.testing.assert_array_equal(m.run(currents)[1], expected.run(currents)[1])
    # The loaded core's own tables were copies: the FoldedCore is unchanged.
    assert core.thresholds.theta_q[2] != 10 or core.thresholds.compare[2] != LT
    with pytest.raises(ValueError, match=r"threshold index out of range 0\.\.15"):
        m.load_thresholds([16], [0], [GT])
    with pytest.raises(ValueError, match=r"theta_q\[0\] = 40000 does not fit"):
        m.load_thresholds([0], [40000], [GT])
    with pytest.raises(ValueError, match="compare holds 7"):
        m.load_thresholds([0], [0], [7])
    with pytest.raises(ValueError, match=r"t must be in 0\.\.2, not 3"):
        m.load_affine(3, 0, 1, 1)
    with pytest.raises(ValueError, match=r"channel must be in 0\.\.3, not -1"):
        m.load_affine(0, -1, 1, 1)
    with pytest.raises(ValueError, match=r"affine a_q\[t=0, c=0\] = 40000 does not fit"):
        m.load_affine(0, 0, 40000, 1)
    with pytest.raises(ValueError, match="no affine stage"):
        example_core(16).model().load_affine(0, 0, 1, 1)


# -- bad input -----------------------------------------------------------------------------

def test_bad_currents():
    m = example_core(8).model()
    with pytest.raises(ValueError, match=r"current_q\[3\] = 32768 does not fit the current "
                                         r"format 16\.8"):
        m.step(np.array([0, 0, 0, 32768, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"current_q must have shape \(8,\), not \(7,\)"):
        m.step(np.zeros(7, int))
    with pytest.raises(ValueError, match="current_q must hold integers, not float64"):
        m.step(np.zeros(8))
    with pytest.raises(ValueError, match=r"currents_q must have shape \(steps, 8\)"):
        m.run(np.zeros((3, 9), int))


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(neurons=0), ValueError, "neurons must be an integer >= 1, not 0"),
    (dict(T=0), ValueError, "T must be an integer >= 1, not 0"),
    (dict(tau=0.0), ValueError, r"tau must be in \(0, 1\], not 0\.0"),
    (dict(tau=1.5), ValueError, r"tau must be in \(0, 1\], not 1\.5"),
    (dict(tau=float("nan")), ValueError, r"tau must be in \(0, 1\], not nan"),
    (dict(tau="fast"), ValueError, "tau must be a number"),
    (dict(tau=0.001, tau_bits=8), ValueError, "tau = 0.001 rounds to 0 with tau_bits = 8"),
    (dict(tau_bits=30), ValueError, "tau_bits must be at most 24, not 30"),
    (dict(reset="soft"), ValueError, "reset must be one of .*not 'soft'"),
    (dict(affine=1), ValueError, "affine must be True or False, not 1"),
    (dict(channels=3), ValueError, r"neurons \(8\) must be a multiple of channels \(3\)"),
    (dict(current=Fixed(16, 10)), ValueError, "current format 16.10 has more fractional bits"),
    (dict(threshold=Fixed(16, 6)), ValueError, "must have the membrane's 8 fractional bits"),
    (dict(threshold=Fixed(20, 8)), ValueError, "threshold format 20.8 is wider"),
    (dict(membrane="16.8"), TypeError, "membrane must be a Fixed format, not '16.8'"),
    (dict(membrane=Fixed(48, 8), current=Fixed(48, 8), tau=0.3, tau_bits=24), ValueError,
     r"leak product v \* tau_q needs 72 bits"),
    (dict(membrane=Fixed(48, 40), current=Fixed(40, 0)), ValueError,
     "current aligned to the membrane grid needs 80 bits"),
    (dict(membrane=Fixed(40, 8), current=Fixed(40, 8), affine=True, scale=Fixed(32, 16)),
     ValueError, r"affine product x \* a_q needs 71 bits"),
])
def test_bad_config(kwargs, error, message):
    with pytest.raises(error, match=message):
        CoreConfig(**{"neurons": 8, **kwargs})


def test_wide_formats_that_fit_are_accepted():
    # The widest multiply leak that stays inside int64 is accepted, and does not wrap.
    cfg = CoreConfig(neurons=2, T=2, membrane=Fixed(40, 8), current=Fixed(40, 8), tau=0.3,
                     tau_bits=23)
    m = CoreModel(cfg, ThresholdTable(np.zeros(2, int), [NEVER, NEVER]))
    big = cfg.current.max_int
    m.step(np.array([big, -big - 1]))
    r = m.step(np.array([0, 0]))
    tau_q = cfg.tau_q
    np.testing.assert_array_equal(r.v_pre, [(big * tau_q) >> 23, ((-big - 1) * tau_q) >> 23])


def test_bad_model_tables():
    cfg = CoreConfig(neurons=4, T=2, threshold=Fixed(10, 8))
    with pytest.raises(ValueError, match="thresholds has 3 entries but the core has 4"):
        CoreModel(cfg, ThresholdTable(np.zeros(3, int), np.zeros(3, int)))
    with pytest.raises(ValueError, match=r"theta_q\[1\] = 600 does not fit the threshold "
                                         r"format 10\.8"):
        CoreModel(cfg, ThresholdTable(np.array([0, 600, 0, 0]), np.zeros(4, int)))
    with pytest.raises(TypeError, match="thresholds must be a ThresholdTable"):
        CoreModel(cfg, np.zeros(4))
    ok = ThresholdTable(np.zeros(4, int), np.zeros(4, int))
    table = AffineTable(np.ones((2, 1), int), np.zeros((2, 1), int))
    with pytest.raises(ValueError, match="config.affine is False"):
        CoreModel(cfg, ok, table)
    acfg = cfg.replace(affine=True, channels=2)
    with pytest.raises(TypeError, match="affine must be an AffineTable"):
        CoreModel(acfg, ok)
    with pytest.raises(ValueError, match=r"affine table has shape \(2, 1\), expected"):
        CoreModel(acfg, ok, table)
    with pytest.raises(TypeError, match="config must be a CoreConfig"):
        CoreModel({"neurons": 4}, ok)


# -- core file -------------------------------------------------------------------------------

@pytest.mark.parametrize("affine", [False, True])
def test_corefile_round_trip(tmp_path, affine):
    core = example_core(32, T=4, affine=affine, reset="subtract", tau=0.3)
    path = tmp_path / "core.npz"
    core.save(path)
    back = FoldedCore.load(path)
    assert back.config == core.config
    np.testing.assert_array_equal(back.thresholds.theta_q, core.thresholds.theta_q)
    np.testing.assert_array_equal(back.thresholds.compare, core.thresholds.compare)
    if affine:
        np.testing.assert_array_equal(back.affine.a_q, core.affine.a_q)
        np.testing.assert_array_equal(back.affine.b_q, core.affine.b_q)
    else:
        assert back.affine is None
    currents = core.config.current.quantize(np.random.default_rng(0).normal(0, 1, (8, 32)))
    np.testing.assert_array_equal(back.model().run(currents)[1], core.model().run(currents)[1])


def _arrays(core):
    arrays = {"format": np.array("spikefold-core"), "version": np.array(1),
              "config": np.array(json.dumps(core.config.to_json())),
              "theta_q": core.thresholds.theta_q, "compare": core.thresholds.compare}
    if core.affine is not None:
        arrays.update(a_q=core.affine.a_q, b_q=core.affine.b_q)
    return arrays


@pytest.mark.parametrize("change,message", [
    (lambda a: a.pop("compare"), "missing array 'compare'"),
    (lambda a: a.update(version=np.array(2)), "version 2 is not supported"),
    (lambda a: a.update(format=np.array("other")), "format is 'other'"),
    (lambda a: a.pop("b_q"), "config has the affine stage but 'b_q' is missing"),
    (lambda a: a.update(theta_q=np.full(16, np.nan)), "theta_q must hold integers, not float64"),
    (lambda a: a.update(config=np.array(json.dumps(
        {**json.loads(str(a["config"])), "tau": float("nan")}))), r"tau must be in \(0, 1\]"),
    (lambda a: a.update(config=np.array(json.dumps(
        {**json.loads(str(a["config"])), "speed": 3}))),
     r"unknown core config fields: \['speed'\]"),
    (lambda a: a.update(compare=np.full(16, 9, dtype=np.int8)), "compare holds 9"),
])
def test_corefile_bad(tmp_path, change, message):
    arrays = _arrays(example_core(16, T=2, affine=True))
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        FoldedCore.load(path)


def test_corefile_not_a_core_file(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a spikefold core file"):
        FoldedCore.load(path)
