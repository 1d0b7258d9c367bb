"""Small models trained in snnTorch and SpikingJelly on scikit-learn digits, for
``spikefold import`` (each function trains for a few seconds and returns the module)::

    spikefold import spikefold/importer/examples.py:snntorch_mlp -T 8 --data digits -o s.npz
    spikefold import spikefold/importer/examples.py:spikingjelly_mlp -T 8 --data digits -o j.npz

Both use the split and input scaling of ``spikefold train`` (``x = pixels / 16`` fed at every
step) and read out the mean over T of the last Linear, as spikefold does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["snntorch_mlp", "spikingjelly_mlp", "train"]

T = 8


def _data():
    from train.data import PIXEL_SCALE, load_digits_split
    xtr, ytr, _, _ = load_digits_split()
    return xtr * PIXEL_SCALE, ytr


def train(net, step_forward, *, epochs=6, lr=5e-3, seed=0, reset=None):
    """Train ``net`` with Adam on the digits training split; ``step_forward(x)`` returns the
    output sequence ``(T, B, 10)``; ``reset()`` clears the neuron states between batches."""
    import torch
    torch.manual_seed(seed)
    x, y = _data()
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    net.train()
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(len(x)), len(x) // 64):
            if reset is not None:
                reset()
            logits = step_forward(x[idx]).mean(0)
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    if reset is not None:
        reset()
    return net.eval()


def snntorch_mlp(hidden=64, epochs=6):
    """snnTorch: Linear -> BatchNorm1d -> Leaky(beta 0.5, zero reset) -> Linear."""
    import torch
    import snntorch as snn
    from snntorch import surrogate, utils

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.BatchNorm1d(hidden),
        snn.Leaky(beta=0.5, threshold=0.5, init_hidden=True, reset_mechanism="zero",
                  spike_grad=surrogate.atan()),
        torch.nn.Linear(hidden, 10))

    def forward(x):
        return torch.stack([net(x) for _ in range(T)])
    return train(net, forward, epochs=epochs, reset=lambda: utils.reset(net))


def spikingjelly_mlp(hidden=64, epochs=6):
    """SpikingJelly (multi-step): Linear -> BatchNorm1d -> LIFNode(tau 2) -> Linear."""
    import torch
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = torch.nn.Sequential(layer.Linear(64, hidden), layer.BatchNorm1d(hidden),
                              neuron.LIFNode(tau=2.0, v_threshold=0.5),
                              layer.Linear(hidden, 10))
    functional.set_step_mode(net, "m")

    def forward(x):
        return net(x.unsqueeze(0).repeat(T, 1, 1))
    return train(net, forward, epochs=epochs, reset=lambda: functional.reset_net(net))
