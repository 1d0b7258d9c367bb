"""The sc_neurocore "Spike Normalization" tutorial's quick start runs on golden.normalizers.

The text below is the tutorial's quick start with only the import line changed (from
``sc_neurocore.spike_norm`` to ``golden.normalizers``).
"""

import textwrap

import numpy as np

QUICK_START = textwrap.dedent("""\
    import numpy as np
    from golden.normalizers import (
        ThresholdDependentBN,
        PerTimestepBN,
        TemporalEffectiveBN,
        MembranePotentialBN,
        TemporalAccumulatedBN,
    )

    # Simulated batch of presynaptic currents: (batch=32, features=64)
    rng = np.random.RandomState(42)
    x = rng.randn(32, 64)

    # tdBN: threshold-aware normalization
    tdbn = ThresholdDependentBN(n_features=64, threshold=1.0)
    x_norm = tdbn.forward(x, training=True)

    # BNTT: different statistics per timestep
    bntt = PerTimestepBN(n_features=64, T=10)
    for t in range(10):
        x_t = rng.randn(32, 64)
        out_t = bntt.forward(x_t, t=t, training=True)

    # MPBN: fuse into threshold at inference (zero overhead)
    mpbn = MembranePotentialBN(n_features=64, threshold=1.0)
    for _ in range(100):
        mpbn.forward(rng.randn(32, 64), training=True)
    hw_thresholds = mpbn.fused_threshold()  # shape (64,)
    # No BN computation at inference — threshold absorbs it
    """)


def test_quick_start_runs():
    scope = {}
    exec(compile(QUICK_START, "quick_start", "exec"), scope)
    theta = scope["hw_thresholds"]
    assert theta.shape == (64,)
    assert scope["x_norm"].shape == (32, 64) and scope["out_t"].shape == (32, 64)
    # The tutorial's promise: with every gamma > 0 the fused threshold on the raw membrane
    # decides exactly like eval-mode MPBN followed by "> threshold".
    mpbn = scope["mpbn"]
    u = np.random.default_rng(0).normal(0, 1.5, (1000, 64))
    np.testing.assert_array_equal(u > theta, mpbn.forward(u, training=False) > 1.0)
    # 100 training calls moved the running statistics to the data (mean 0, variance 1).
    assert np.all(np.abs(mpbn.running_mean) < 0.2)
    assert np.all(np.abs(mpbn.running_var - 1) < 0.3)
