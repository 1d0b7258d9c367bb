"""Helpers shared by the import tests (snnTorch, SpikingJelly)."""

import numpy as np


def random_inputs(n_in, n=300, seed=1):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, n_in))


def set_bn_stats(torch, bn, seed):
    """Trained-looking statistics for a BatchNorm ``bn``: variances near eps, so that eps
    matters (a wrong eps changes the spikes)."""
    features = bn.num_features
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(features, generator=g) * 0.3)
        bn.running_var.copy_((torch.rand(features, generator=g) + 0.5) * 1e-5)
        bn.weight.copy_((torch.randn(features, generator=g) * 0.5 + 1.0) * 3e-3)
        bias = torch.randn(features, generator=g) * 0.2 + 0.3
        if bn.bias is not None:                 # BNTT's per-step BatchNorms have none
            bn.bias.copy_(bias)
    return bn
