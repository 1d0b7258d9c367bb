"""NIR files -> :class:`golden.network.Network` (through :func:`golden.nir_io.from_nir`).

``from_nir`` gives a folded network (dense and conv LIF layers with per-neuron firing rules,
hard reset to zero, sum pooling, flatten, an integrate-only readout). This turns it into a
trained :class:`~golden.network.Network` of the same kinds, exactly:

* a layer whose neurons share one ``u > theta`` rule gets ``Neuron(decay, theta, "zero")``;
* per-neuron rules are carried as MPBN before the comparator with ``v_th = 0``,
  ``running_var = 1 - 2**-20``, ``eps = 2**-20`` (so ``sqrt(var + eps) = 1`` exactly),
  ``running_mean = theta_i``, ``beta = 0`` and ``gamma = 1`` (``u > theta_i``), ``-1``
  (``u < theta_i``) or ``0`` with ``beta = 0`` / ``1`` (never / always): every operation
  is exact and the fold gives back the same rule bit for bit, so the imported network's
  integer model is the one of the NIR graph. A conv layer's MPBN is channel-wise ``(C,)``
  when every channel's rule is constant over its pixels, else element-wise ``(C, H, W)``.
  The weights are never rescaled.

NIR's LIF resets to ``v_reset`` only: the graph does not say whether the exporting library
reset by subtraction. snnTorch's NIR export writes a subtract-reset ``Leaky`` (its default)
as such a LIF, so the import warns: import the module itself
(``spikefold import FILE.py:FUNCTION``) to have the reset mode checked.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from golden.fold import Compare
from golden.layers import Conv2d, Dense, Flatten, Neuron, Pool2d
from golden.network import Network

from .table import ImportTable

__all__ = ["import_nir", "network_from_folded", "RESET_WARNING", "MPBN_EPS", "LIBRARIES",
           "library_module", "run_library", "library_agreement"]

RESET_WARNING = ("NIR does not record the reset mode: every LIF is imported with reset to "
                 "v_reset = 0. snnTorch's NIR export writes its default subtract-reset Leaky "
                 "the same way (a different network); import the snnTorch module itself to "
                 "have its reset checked")

#: MPBN eps of a carried per-neuron rule: ``(1 - 2**-20) + 2**-20 == 1`` exactly.
MPBN_EPS = 2.0 ** -20


def _carry_rule(rule):
    """``(v_th, mpbn or None, conversion)`` carrying the folded ``rule`` exactly."""
    theta, compare = rule.theta, rule.compare
    if np.all(compare == Compare.GT) and np.all(theta == theta.flat[0]):
        return float(theta.flat[0]), None, None
    gamma = np.select([compare == Compare.GT, compare == Compare.LT], [1.0, -1.0], 0.0)
    beta = np.where(compare == Compare.ALWAYS, 1.0, 0.0)
    mean = np.where((compare == Compare.GT) | (compare == Compare.LT), theta, 0.0)
    mpbn = {"gamma": gamma, "beta": beta, "running_mean": mean.astype(np.float64),
            "running_var": np.full(theta.shape, 1.0 - MPBN_EPS)}
    kinds = np.bincount(compare.ravel(), minlength=4)
    note = (f"per-neuron thresholds {float(theta.min()):.6g}..{float(theta.max()):.6g} "
            f"carried as MPBN (u - theta_i) > 0 with v_th = 0, exact")
    if kinds[Compare.LT]:
        note += f"; {kinds[Compare.LT]} neurons fire on u < theta_i (gamma = -1)"
    if kinds[Compare.NEVER] or kinds[Compare.ALWAYS]:
        note += (f"; {kinds[Compare.NEVER]} never-, {kinds[Compare.ALWAYS]} always-firing "
                 f"neurons (gamma = 0)")
    return 0.0, mpbn, note


def _channelwise(mpbn):
    """``mpbn`` of shape (C,) if every (C, H, W) array is constant over each channel."""
    out = {}
    for key, value in mpbn.items():
        flat = value.reshape(value.shape[0], -1)
        if np.any(flat != flat[:, :1]):
            return mpbn
        out[key] = flat[:, 0].copy()
    return out


def network_from_folded(folded, *, sources=None, source="nir"):
    """``(Network, ImportTable)`` of a :class:`golden.network.FoldedNetwork` from NIR.

    ``sources`` (from :func:`golden.nir_io.from_nir_sources`): per folded layer the NIR
    nodes it came from, for the table.
    """
    table = ImportTable(library=source)
    layers = []
    for i, layer in enumerate(folded.layers):
        rows = sources[i] if sources else [(f"layer{i}", layer.kind, [])]
        target = f"layer{i} {layer.kind} {tuple(layer.in_shape)}->{tuple(layer.out_shape)}"
        if layer.kind in ("pool2d", "flatten"):
            new = (Pool2d(tuple(layer.in_shape), layer.kernel, layer.stride, layer.mode)
                   if layer.kind == "pool2d" else Flatten(tuple(layer.in_shape)))
            layers.append(new)
            for name, kind, conv in rows:
                table.add(name, kind, target, *conv)
            continue
        if layer.readout:
            layers.append(Dense(layer.weight, layer.bias, readout=True))
            for name, kind, conv in rows:
                table.add(name, kind, f"layer{i} readout {layer.n_in}->{layer.n_out}", *conv)
            continue
        neuron = layer.neuron if layer.neuron is not None else folded.neuron(i)
        v_th, mpbn, note = _carry_rule(layer.rule)
        if mpbn is not None and layer.kind == "conv2d":
            mpbn = _channelwise(mpbn)
        neuron = Neuron(neuron.tau, v_th, "zero")
        if layer.kind == "conv2d":
            new = Conv2d(layer.weight, layer.bias, tuple(layer.in_shape), layer.stride,
                         layer.padding, mpbn=mpbn, mpbn_eps=MPBN_EPS, neuron=neuron)
        else:
            new = Dense(layer.weight, layer.bias, mpbn=mpbn, mpbn_eps=MPBN_EPS, neuron=neuron)
        layers.append(new)
        (syn, syn_kind, syn_conv), (lif, lif_kind, lif_conv) = (
            rows if len(rows) == 2 else [rows[0], (f"layer{i}.lif", "nir.LIF", [])])
        table.add(syn, syn_kind, target, *syn_conv)
        table.add(lif, lif_kind, f"layer{i} neuron tau={neuron.tau!r} v_th={v_th!r} "
                  f"reset=zero fire=>", *lif_conv, note)
    table.notes.append(RESET_WARNING)
    spiking = [layer.neuron for layer in layers if getattr(layer, "neuron", None) is not None]
    network = Network(layers, T=folded.T,
                      tau=spiking[0].tau if spiking else folded.tau,
                      v_th=spiking[0].v_th if spiking else 0.5,
                      meta={"import": table.to_json(),
                            "input_shape": [int(v) for v in folded.input_shape]})
    return network, table


def import_nir(path, *, T=None, dt=None):
    """``(Network, ImportTable)`` of the NIR file ``path``."""
    from golden.nir_io import _nir, from_nir_sources

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"NIR file {path} does not exist")
    folded, sources = from_nir_sources(_nir().read(path), T=T, dt=dt)   # warns if not ours
    return network_from_folded(folded, sources=sources)


# -- a NIR graph in snnTorch or Norse (what their importers build) ---------------------------

#: Libraries whose NIR importers :func:`library_module` calls, and their neuron modules.
LIBRARIES = {"snntorch": ("Leaky",), "norse": ("LIFBoxCell", "IAFCell")}


def library_module(graph, library):
    """The torch module ``library``'s own NIR importer builds from ``graph``:
    ``snntorch.import_nir.import_from_nir(graph)`` (it assumes dt = 1e-4) or
    ``norse.torch.from_nir(graph, dt=...)`` with the graph's ``spikefold_dt``."""
    if library not in LIBRARIES:
        raise ValueError(f"library must be one of {sorted(LIBRARIES)}, not {library!r}")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # Both call nirtorch APIs that nirtorch 2.6 deprecates; snnTorch prints as it goes.
        warnings.simplefilter("ignore", DeprecationWarning)
        if library == "snntorch":
            from snntorch.import_nir import import_from_nir
            return import_from_nir(graph)
        import norse.torch
        dt = (graph.metadata or {}).get("spikefold_dt")
        if dt is None:
            raise ValueError("the graph does not record dt (spikefold_dt); Norse's from_nir "
                             "needs the step the graph was made with")
        return norse.torch.from_nir(graph, dt=float(np.asarray(dt)))


def run_library(module, x, T, library):
    """``(spikes, out)`` of ``library``'s module from :func:`library_module` on inputs ``x``
    (B, *input_shape): ``T`` steps of the same input, state reset per sample; spikes per
    neuron module ``(T, B, *shape)`` (bool) and the output ``(T, B, classes)``.

    NIR shapes carry no batch axis, so both libraries build ``Flatten(0, -1)``: a module
    with a Flatten runs one sample at a time, others the whole batch at once.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)         # tiny tensors: threads only contend (30x slower here)
    mods = [m for m in module.modules() if type(m).__name__ in LIBRARIES[library]]
    store = {id(m): [] for m in mods}

    def hook(m, inputs, out):
        z = out[0] if isinstance(out, tuple) else out
        store[id(m)].append(z.detach().numpy().copy())

    hooks = [m.register_forward_hook(hook) for m in mods]
    outs = []
    batched = not any(isinstance(m, torch.nn.Flatten) for m in module.modules())
    x32 = np.asarray(x, dtype=np.float32)
    try:
        with torch.no_grad():
            for sample in ([x32] if batched else x32):
                xb = torch.from_numpy(sample)
                state = None
                for m in mods:
                    if hasattr(m, "reset_mem"):
                        m.reset_mem()
                for _ in range(T):
                    # snnTorch keeps its state inside (init_hidden); Norse passes it.
                    out = module(xb) if library == "snntorch" else module(xb, state)
                    if isinstance(out, tuple):
                        out, state = out
                    outs.append(out.double().numpy())
    finally:
        for h in hooks:
            h.remove()
        torch.set_num_threads(threads)
    B = len(x)

    def seq(values):
        if batched:                       # T entries of (B, ...)
            return np.stack(values)
        return np.stack(values).reshape((B, T) + values[0].shape).swapaxes(0, 1)
    return [seq(store[id(m)]) != 0 for m in mods], seq(outs)


def library_agreement(network, graph, x, library):
    """:class:`spikefold.importer.check.Agreement` of ``library``'s import of ``graph`` (an
    export of ``network``) with ``network``'s float model on inputs ``x``."""
    from .check import Agreement

    module = library_module(graph, library)
    x = np.asarray(x, dtype=np.float64)
    spikes, out = run_library(module, x, network.T, library)
    ref = network.forward(x)
    if len(spikes) != len(ref.spikes):
        raise ValueError(f"{library} has {len(spikes)} spiking layers, the network "
                         f"{len(ref.spikes)}")
    same = [float(np.mean(a.reshape(b.shape) == b)) for a, b in zip(spikes, ref.spikes)]
    logits = out.mean(axis=0)
    return Agreement(same, float(np.mean(logits.argmax(axis=1) == ref.predict())),
                     float(np.max(np.abs(logits - ref.logits))),
                     [float(a.mean()) for a in spikes])
