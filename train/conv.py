"""A convolutional SNN for digits (1 x 8 x 8) with the paper's LIF, MPBN and STE.

Layers (the default ``channels = (8, 16)``)::

    x (1x8x8, direct encoding, the same at every step)
    conv 3x3 pad 1 (1 -> 8)   -> norm -> LIF (MPBN before the comparator)     8x8x8
    max pool 2x2 (of spikes: an OR)                                           8x4x4
    conv 3x3 pad 1 (8 -> 16)  -> norm -> LIF (MPBN)                           16x4x4
    max pool 2x2                                                              16x2x2
    flatten (channel-major) -> dense readout (integrate only, Eq. 3)          10

The neuron, the normalizers and the surrogate are :mod:`train.modules`' (normalizers act on
``(T, N, C, H, W)``, statistics per channel over T/N/H/W as each method defines). MPBN is
channel-wise ``(C,)`` or, with ``elementwise=True``, one set of parameters per neuron
``(C, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .modules import MPBN, Readout, SpikeSTE, make_norm, method_layers

__all__ = ["ConvLIF", "ConvSNN"]


class ConvLIF(nn.Module):
    """Conv2d synapses -> normalizer -> LIF (optionally MPBN before the comparator)."""

    def __init__(self, c_in, c_out, size, T, *, kernel=3, stride=1, padding=1, norm="none",
                 mpbn=False, elementwise=False, tau=0.25, v_th=0.5):
        super().__init__()
        self.norm_kind = norm
        self.T, self.tau, self.v_th = T, tau, v_th
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)
        self.norm = make_norm(norm, c_out, T, v_th)
        h = (size[0] + 2 * padding - kernel) // stride + 1
        w = (size[1] + 2 * padding - kernel) // stride + 1
        self.out_shape = (c_out, h, w)
        self.mpbn = (MPBN(c_out, shape=self.out_shape if elementwise else None)
                     if mpbn else None)

    def forward(self, s):
        T, N = s.shape[:2]
        c = self.conv(s.reshape(T * N, *s.shape[2:]))
        c = self.norm(c.reshape(T, N, *c.shape[1:]))
        u = torch.zeros_like(c[0])
        spikes = []
        for t in range(T):
            u_pre = self.tau * u + c[t]
            z = u_pre if self.mpbn is None else self.mpbn(u_pre)
            o = SpikeSTE.apply(z, self.v_th)
            u = u_pre * (1 - o.detach())
            spikes.append(o)
        return torch.stack(spikes)


class ConvSNN(nn.Module):
    """The conv SNN of the module docstring; input ``(N, 64)`` or ``(N, 1, 8, 8)``."""

    def __init__(self, method="mpbn", T=4, channels=(8, 16), *, input_shape=(1, 8, 8),
                 classes=10, pool="max", pools=None, elementwise=False, tau=0.25, v_th=0.5):
        super().__init__()
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', not {pool!r}")
        norm, mpbn = method_layers(method)
        self.method, self.T, self.tau, self.v_th = method, T, tau, v_th
        self.input_shape, self.pool, self.channels = tuple(input_shape), pool, tuple(channels)
        self.elementwise = elementwise
        self.pools = tuple(pools) if pools is not None else (True,) * len(channels)
        if len(self.pools) != len(self.channels):
            raise ValueError(f"pools must have one flag per conv layer ({len(channels)}), not "
                             f"{pools!r}")
        layers = []
        c, h, w = self.input_shape
        for c_out, pooled in zip(channels, self.pools):
            layer = ConvLIF(c, c_out, (h, w), T, norm=norm, mpbn=mpbn, elementwise=elementwise,
                            tau=tau, v_th=v_th)
            layers.append(layer)
            c, h, w = layer.out_shape
            if pooled:
                h, w = h // 2, w // 2
        self.convs = nn.ModuleList(layers)
        self.readout = Readout(c * h * w, classes)

    def forward(self, x):
        x = x.reshape(len(x), *self.input_shape)
        s = x.unsqueeze(0).expand(self.T, *x.shape)
        for layer, pooled in zip(self.convs, self.pools):
            s = layer(s)
            if not pooled:
                continue
            T, N = s.shape[:2]
            flat = s.reshape(T * N, *s.shape[2:])
            flat = F.max_pool2d(flat, 2) if self.pool == "max" else F.avg_pool2d(flat, 2)
            s = flat.reshape(T, N, *flat.shape[1:])
        return self.readout(s.reshape(s.shape[0], s.shape[1], -1))
