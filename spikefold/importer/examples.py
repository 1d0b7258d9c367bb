"""Small models trained in snnTorch and SpikingJelly on scikit-learn digits, for
``spikefold import`` (each function trains for a few seconds and returns the module)::

    spikefold import spikefold/importer/examples.py:snntorch_mlp -T 8 --data digits -o s.npz
    spikefold import spikefold/importer/examples.py:spikingjelly_mlp -T 8 --data digits -o j.npz
    spikefold import spikefold/importer/examples.py:snntorch_conv -T 4 --input-shape 1,8,8 \
        --data digits -o sc.npz
    spikefold import spikefold/importer/examples.py:spikingjelly_mpbn_conv -T 4 \
        --input-shape 1,8,8 --data digits -o jc.npz

All use the split and input scaling of ``spikefold train`` (``x = pixels / 16`` fed at every
step, an image ``1 x 8 x 8`` for the conv nets) and read out the mean over T of the last
Linear, as spikefold does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["snntorch_mlp", "spikingjelly_mlp", "snntorch_conv", "spikingjelly_mpbn_conv",
           "spikingjelly_tebn_conv", "spikingjelly_bntt_conv", "train", "T", "T_CONV"]

T = 8
#: Timesteps of the conv examples.
T_CONV = 4


def _data():
    from train.data import PIXEL_SCALE, load_digits_split
    xtr, ytr, _, _ = load_digits_split()
    return xtr * PIXEL_SCALE, ytr


def train(net, step_forward, *, epochs=6, lr=5e-3, seed=0, reset=None, shape=None):
    """Train ``net`` with Adam on the digits training split; ``step_forward(x)`` returns the
    output sequence ``(T, B, 10)``; ``reset()`` clears the neuron states between batches;
    ``shape`` is the per-sample input shape (default: 64 pixels)."""
    import torch
    torch.manual_seed(seed)
    x, y = _data()
    x = torch.tensor(x, dtype=torch.float32)
    if shape is not None:
        x = x.reshape((len(x),) + tuple(shape))
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


def snntorch_conv(epochs=4):
    """snnTorch conv net on 1 x 8 x 8 digits::

        Conv2d 1->8 3x3 pad 1 -> BatchNorm2d -> Leaky(beta 0.5, zero reset) -> MaxPool2d 2
        Conv2d 8->16 3x3 pad 1 -> BatchNorm2d -> Leaky -> MaxPool2d 2 -> Flatten -> Linear 64->10
    """
    import torch
    import snntorch as snn
    from snntorch import surrogate, utils

    nn = torch.nn
    torch.manual_seed(0)

    def leaky():
        return snn.Leaky(beta=0.5, threshold=0.5, init_hidden=True, reset_mechanism="zero",
                         spike_grad=surrogate.atan())
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), leaky(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), leaky(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64, 10))

    def forward(x):
        return torch.stack([net(x) for _ in range(T_CONV)])
    with _threads(1):
        return train(net, forward, epochs=epochs, reset=lambda: utils.reset(net),
                     shape=(1, 8, 8))


def spikingjelly_mpbn_conv(epochs=4, fold=True):
    """SpikingJelly conv net with MPBN (multi-step) on 1 x 8 x 8 digits::

        Conv2d 1->8 3x3 pad 1 -> BatchNorm2d -> MPBNLIFNode(tau 2, channel-wise) -> MaxPool2d 2
        Conv2d 8->16 3x3 pad 1 -> BatchNorm2d -> MPBNLIFNode -> MaxPool2d 2 -> Flatten ->
        Linear 64->10

    Trained with the membrane BatchNorm in the loop; ``fold=True`` (the default) then calls
    every node's ``re_parameterize_v_threshold()``, SpikingJelly's own deployment step (per-
    channel thresholds on the raw membrane). The unfolded node carries the normalized
    membrane, which spikefold cannot hold for T > 1 (the importer refuses it), so the
    module returned is the folded one: a slightly different function from the trained one.
    """
    import torch
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)

    def node(c):
        return neuron.MPBNLIFNode(tau=2.0, v_threshold=0.5, out_channels=c)
    net = torch.nn.Sequential(
        layer.Conv2d(1, 8, 3, padding=1), layer.BatchNorm2d(8), node(8), layer.MaxPool2d(2),
        layer.Conv2d(8, 16, 3, padding=1), layer.BatchNorm2d(16), node(16), layer.MaxPool2d(2),
        layer.Flatten(), layer.Linear(64, 10))
    functional.set_step_mode(net, "m")

    def forward(x):
        return net(x.unsqueeze(0).repeat(T_CONV, 1, 1, 1, 1))
    with _threads(1):
        train(net, forward, epochs=epochs, reset=lambda: functional.reset_net(net),
              shape=(1, 8, 8))
    if fold:
        for m in net.modules():
            if isinstance(m, neuron.MPBNLIFNode):
                m.re_parameterize_v_threshold()
    return net.eval()


def _sj_per_timestep_conv(norm, epochs):
    import torch
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)

    def bn(c):
        if norm == "tebn":
            return layer.TemporalEffectiveBatchNorm2d(T=T_CONV, num_features=c)
        return layer.BatchNormThroughTime2d(T_CONV, c, step_mode="m")
    net = torch.nn.Sequential(
        layer.Conv2d(1, 8, 3, padding=1), bn(8), neuron.LIFNode(tau=2.0, v_threshold=0.5),
        layer.MaxPool2d(2), layer.Conv2d(8, 16, 3, padding=1), bn(16),
        neuron.LIFNode(tau=2.0, v_threshold=0.5), layer.MaxPool2d(2), layer.Flatten(),
        layer.Linear(64, 10))
    functional.set_step_mode(net, "m")

    def forward(x):
        return net(x.unsqueeze(0).repeat(T_CONV, 1, 1, 1, 1))
    with _threads(1):
        return train(net, forward, epochs=epochs, reset=lambda: functional.reset_net(net),
                     shape=(1, 8, 8))


def spikingjelly_tebn_conv(epochs=4):
    """SpikingJelly conv net with TEBN (multi-step) on 1 x 8 x 8 digits::

        Conv2d 1->8 3x3 pad 1 -> TEBN2d -> LIFNode(tau 2) -> MaxPool2d 2
        Conv2d 8->16 3x3 pad 1 -> TEBN2d -> LIFNode -> MaxPool2d 2 -> Flatten -> Linear 64->10

    TEBN (``scale[t] * BN(x)``) imports as the layers' per-timestep normalizer.
    """
    return _sj_per_timestep_conv("tebn", epochs)


def spikingjelly_bntt_conv(epochs=4):
    """As :func:`spikingjelly_tebn_conv` with BNTT (one BatchNorm per step, no bias)."""
    return _sj_per_timestep_conv("bntt", epochs)


class _threads:
    """torch's intra-op threads for a block (one thread: tiny convolutions on shared cores
    run many times faster)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        import torch
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        import torch
        torch.set_num_threads(self.old)
