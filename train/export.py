"""Convert a trained :class:`train.modules.SNN` to a :class:`golden.network.Network` and back."""

from __future__ import annotations

import numpy as np
import torch

from golden.network import NORM_PARAMS, Layer, Network, MPBN_PARAMS

from .modules import SNN, method_layers

__all__ = ["to_network", "from_network", "conv_to_network"]


def _np(t):
    return t.detach().cpu().numpy().astype(np.float64)


def to_network(model, meta=None):
    """The eval-mode state of ``model`` as a golden :class:`Network` (float64 copies of the
    trained values)."""
    from .conv import ConvSNN
    if isinstance(model, ConvSNN):
        return conv_to_network(model, meta)
    if not isinstance(model, SNN):
        raise TypeError(f"model must be a train.modules.SNN, not {type(model).__name__}")
    layers = []
    for layer in model.hidden:
        kind = layer.norm_kind
        params = {name: _np(getattr(layer.norm, name)) for name in NORM_PARAMS[kind]}
        eps = float(getattr(layer.norm, "eps", 1e-5))
        alpha = float(getattr(layer.norm, "alpha", 1.0))
        mpbn = None
        if layer.mpbn is not None:
            mpbn = {name: _np(getattr(layer.mpbn, name)) for name in MPBN_PARAMS}
        layers.append(Layer(_np(layer.fc.weight), _np(layer.fc.bias), norm=kind,
                            norm_params=params, norm_eps=eps, norm_alpha=alpha, mpbn=mpbn,
                            mpbn_eps=float(layer.mpbn.eps) if mpbn is not None else 1e-5))
    layers.append(Layer(_np(model.readout.fc.weight), _np(model.readout.fc.bias),
                        readout=True))
    meta = dict(meta or {})
    meta.setdefault("method", model.method)
    return Network(layers, T=model.T, tau=model.tau, v_th=model.v_th, meta=meta)


def from_network(network, dtype=torch.float64):
    """A torch :class:`SNN` (eval mode) holding ``network``'s parameters."""
    hidden = network.layers[:-1]
    if hidden:
        kinds = {(layer.norm, layer.mpbn is not None) for layer in hidden}
        if len(kinds) != 1:
            raise ValueError(f"layers mix normalizers {sorted(kinds)}; the trainer uses one")
        norm, mpbn = kinds.pop()
    else:
        norm, mpbn = "none", False
    method = "mpbn" if (norm, mpbn) == ("tdbn", True) else norm
    if method_layers(method) != (norm, mpbn):
        raise ValueError(f"no trainer method has norm {norm!r} with mpbn={mpbn}")
    model = SNN(network.sizes, method=method, T=network.T, tau=network.tau, v_th=network.v_th)
    model = model.to(dtype)

    def put(param, value):
        with torch.no_grad():
            param.copy_(torch.as_tensor(value, dtype=dtype))

    for layer, mod in zip(hidden, model.hidden):
        put(mod.fc.weight, layer.weight)
        put(mod.fc.bias, layer.bias)
        for name, value in layer.norm_params.items():
            put(getattr(mod.norm, name), value)
        if norm != "none":
            mod.norm.eps = layer.norm_eps
        if norm == "tdbn":
            mod.norm.alpha = layer.norm_alpha
            mod.norm.factor = layer.norm_alpha * network.v_th
        if mpbn:
            for name in MPBN_PARAMS:
                put(getattr(mod.mpbn, name), layer.mpbn[name])
            mod.mpbn.eps = layer.mpbn_eps
    put(model.readout.fc.weight, network.layers[-1].weight)
    put(model.readout.fc.bias, network.layers[-1].bias)
    return model.eval()


def _norm_state(layer):
    kind = layer.norm_kind
    return dict(norm=kind, norm_params={name: _np(getattr(layer.norm, name))
                                        for name in NORM_PARAMS[kind]},
                norm_eps=float(getattr(layer.norm, "eps", 1e-5)),
                norm_alpha=float(getattr(layer.norm, "alpha", 1.0)))


def conv_to_network(model, meta=None):
    """A :class:`train.conv.ConvSNN` as a golden :class:`Network` of conv2d, pool2d,
    flatten and dense layers (float64 copies of the eval-mode state)."""
    from golden.layers.conv2d import Conv2d
    from golden.layers.flatten import Flatten
    from golden.layers.pool import Pool2d
    layers = []
    shape = tuple(model.input_shape)
    for layer, pooled in zip(model.convs, model.pools):
        conv = layer.conv
        mpbn = None
        if layer.mpbn is not None:
            mpbn = {name: _np(getattr(layer.mpbn, name)) for name in MPBN_PARAMS}
        layers.append(Conv2d(_np(conv.weight), _np(conv.bias), shape, stride=conv.stride[0],
                             padding=conv.padding[0], **_norm_state(layer), mpbn=mpbn,
                             mpbn_eps=float(layer.mpbn.eps) if mpbn is not None else 1e-5))
        shape = tuple(layer.out_shape)
        if pooled:
            layers.append(Pool2d(shape, kernel=2, mode=model.pool))
            shape = tuple(layers[-1].out_shape)
    layers.append(Flatten(shape))
    layers.append(Layer(_np(model.readout.fc.weight), _np(model.readout.fc.bias), readout=True))
    meta = dict(meta or {})
    meta.setdefault("method", model.method)
    return Network(layers, T=model.T, tau=model.tau, v_th=model.v_th, meta=meta)
