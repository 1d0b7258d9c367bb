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

from .torch_walk import leaves, multi_step

__all__ = ["library_forward", "agreement", "Agreement", "SPIKING"]

#: Class names of the neuron modules whose outputs are spikes.
SPIKING = ("Leaky", "LIFNode", "IFNode", "MPBNLIFNode", "LIFBoxCell", "LIFCell")


def _library(module):
    return type(module).__module__.split(".")[0]


def _reset_states(module):
    for _, leaf in leaves(module):
        lib = _library(leaf)
        if lib == "spikingjelly" and hasattr(leaf, "reset"):
            leaf.reset()
        elif lib == "snntorch" and hasattr(leaf, "reset_mem"):
            leaf.reset_mem()


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def library_forward(module, x, T, input_shape=None):
    """``(spikes, out)``: the library's spikes per spiking layer ``(T, B, ...)`` (bool) and
    the output ``(T, B, classes)`` (float64) for inputs ``x`` ``(B, *input_shape)`` fed at
    every step, by the module's own ``forward``: step by step (snnTorch, SpikingJelly
    single-step, Norse with its state list), or once on the ``(T, B, ...)`` sequence
    (SpikingJelly multi-step). Forward hooks on the neuron modules record their spikes."""
    import torch

    layers = list(leaves(module))
    param = next(module.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    multi = multi_step(module)
    norse = any(_library(m) == "norse" for _, m in layers)
    x = np.asarray(x)
    if input_shape is not None:
        x = x.reshape((len(x),) + tuple(input_shape))
    spiking = [m for _, m in layers if type(m).__name__ in SPIKING]
    record = {id(m): [] for m in spiking}

    def hook(mod, args, out):
        spikes = _first(out).to(dtype)          # some neurons emit float32 spikes
        record[id(mod)].append(spikes.detach().numpy() != 0)
        return (spikes, *out[1:]) if isinstance(out, tuple) else spikes

    hooks = [m.register_forward_hook(hook) for m in spiking]
    module.eval()
    _reset_states(module)
    x = torch.as_tensor(x, dtype=dtype)
    try:
        with torch.no_grad():
            if multi:
                out = _first(module(x.unsqueeze(0).repeat(T, *([1] * x.ndim)))).double().numpy()
            else:
                outs, state = [], None
                for _ in range(T):
                    if norse:
                        h, state = module(x, state)
                    else:
                        h = _first(module(x))
                    outs.append(h.double().numpy())
                out = np.stack(outs)
    finally:
        for h in hooks:
            h.remove()
        _reset_states(module)
    spikes = []
    for m in spiking:
        got = record[id(m)]
        if len(got) == T and (T > 1 or not multi):
            spikes.append(np.stack(got))
        elif len(got) == 1 and got[0].shape[0] == T:
            spikes.append(got[0])
        else:
            raise ValueError(f"{type(m).__name__} was called {len(got)} times for T = {T}")
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
    shape = network.meta.get("input_shape") or network.input_shape
    lib_spikes, lib_out = library_forward(module, x, T, input_shape=shape)
    result = network.forward(np.asarray(x, dtype=np.float64))
    if len(lib_spikes) != len(result.spikes):
        raise ValueError(f"the library has {len(lib_spikes)} spiking layers, the network "
                         f"{len(result.spikes)}")
    spikes = [float(np.mean(a.reshape(b.shape) == b)) for a, b in zip(lib_spikes, result.spikes)]
    logits = lib_out.mean(axis=0)
    return Agreement(spikes, float(np.mean(np.argmax(logits, 1) == result.predict())),
                     float(np.max(np.abs(logits - result.logits))),
                     [float(a.mean()) for a in lib_spikes])
