"""Run an imported module with its own library and compare with spikefold's float model.

:func:`library_forward` calls the library's own ``forward`` of every layer the import walk
visited, in order, on the input fed at every timestep (direct encoding), after resetting
the library's neuron states. :func:`agreement` compares its spikes (per spiking layer) and
its predictions (argmax of the mean over T of the output) with
:meth:`golden.network.Network.forward`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .torch_walk import leaves

__all__ = ["library_forward", "agreement", "Agreement", "SPIKING"]

#: Class names of the neuron modules whose outputs are spikes.
SPIKING = ("Leaky", "LIFNode", "IFNode", "MPBNLIFNode")


def _reset_states(module):
    for _, leaf in leaves(module):
        lib = type(leaf).__module__.split(".")[0]
        if lib == "spikingjelly" and hasattr(leaf, "reset"):
            leaf.reset()
        elif lib == "snntorch" and hasattr(leaf, "reset_mem"):
            leaf.reset_mem()


def library_forward(module, x, T):
    """``(spikes, out)``: the library's spikes per spiking layer ``(T, B, n)`` (bool) and the
    output ``(T, B, classes)`` (float64) for inputs ``x`` ``(B, n_in)``."""
    import torch

    layers = list(leaves(module))
    param = next(module.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    modes = {getattr(m, "step_mode", "s") for _, m in layers
             if type(m).__module__.split(".")[0] == "spikingjelly"}
    if len(modes) > 1:
        raise ValueError(f"mixed SpikingJelly step modes {sorted(modes)}")
    multi = modes == {"m"}
    module.eval()
    _reset_states(module)
    x = torch.as_tensor(np.asarray(x), dtype=dtype)
    with torch.no_grad():
        if multi:
            h = x.unsqueeze(0).repeat(T, *([1] * x.ndim))
            spikes = []
            for _, m in layers:
                h = m(h).to(dtype)
                if type(m).__name__ in SPIKING:
                    spikes.append(h.numpy() != 0)
            out = h.double().numpy()
        else:
            steps, outs = [], []
            for _ in range(T):
                h = x
                step = []
                for _, m in layers:
                    h = m(h).to(dtype)
                    if type(m).__name__ in SPIKING:
                        step.append(h.numpy() != 0)
                steps.append(step)
                outs.append(h.double().numpy())
            spikes = [np.stack([s[k] for s in steps]) for k in range(len(steps[0]))]
            out = np.stack(outs)
    _reset_states(module)
    return spikes, out


@dataclass
class Agreement:
    """Library vs spikefold float model on the same inputs."""

    spikes: list            # fraction of equal spikes per spiking layer
    predictions: float      # fraction of equal argmax(mean over T of the output)
    max_logit_error: float  # max |library mean output - spikefold logits|
    spike_rates: list       # the library's spike rate per spiking layer

    def summary(self):
        layers = ", ".join(f"{a:.4%}" for a in self.spikes)
        return (f"library vs spikefold float: spikes {layers} per layer, predictions "
                f"{self.predictions:.2%}, max logit error {self.max_logit_error:.3g}")


def agreement(network, module, x, T=None):
    """:class:`Agreement` of ``network`` (imported from ``module``) on inputs ``x``."""
    T = network.T if T is None else T
    lib_spikes, lib_out = library_forward(module, x, T)
    result = network.forward(np.asarray(x, dtype=np.float64))
    if len(lib_spikes) != len(result.spikes):
        raise ValueError(f"the library has {len(lib_spikes)} spiking layers, the network "
                         f"{len(result.spikes)}")
    spikes = [float(np.mean(a.reshape(b.shape) == b)) for a, b in zip(lib_spikes, result.spikes)]
    logits = lib_out.mean(axis=0)
    return Agreement(spikes, float(np.mean(np.argmax(logits, 1) == result.predict())),
                     float(np.max(np.abs(logits - result.logits))),
                     [float(a.mean()) for a in lib_spikes])
