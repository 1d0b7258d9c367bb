"""NIR files -> :class:`golden.network.Network` (through :func:`golden.nir_io.from_nir`).

``from_nir`` gives a folded network (Affine/Linear + LIF with per-neuron ``GT`` thresholds,
hard reset to zero). This wraps each folded layer into a ``dense`` layer with its own
:class:`~golden.layers.Neuron`; per-neuron thresholds are scaled into the weights as for
modules (:meth:`spikefold.importer.torch_walk.Walk.add_neuron`).

NIR's LIF resets to ``v_reset`` only: the graph does not say whether the exporting library
reset by subtraction. snnTorch's NIR export writes a subtract-reset ``Leaky`` (its default)
as such a LIF, so the import warns: import the module itself
(``spikefold import FILE.py:FUNCTION``) to have the reset mode checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from golden.fold import Compare

from .table import ImportRefused
from .torch_walk import Walk

__all__ = ["import_nir", "network_from_folded", "RESET_WARNING"]

RESET_WARNING = ("NIR does not record the reset mode: every LIF is imported with reset to "
                 "v_reset = 0. snnTorch's NIR export writes its default subtract-reset Leaky "
                 "the same way (a different network); import the snnTorch module itself to "
                 "have its reset checked")


def network_from_folded(folded, *, names=None, source="nir"):
    """``(Network, ImportTable)`` of a :class:`golden.network.FoldedNetwork` from NIR."""
    walk = Walk(folded.T, None)
    walk.libraries.add(source)
    for i, layer in enumerate(folded.layers):
        name = names[i] if names else f"layer{i}"
        walk.add_synapse(f"{name}.affine", "nir.Affine", layer.weight, layer.bias)
        if layer.readout:
            break
        rule = layer.rule
        kinds = set(np.unique(rule.compare).tolist())
        if kinds - {int(Compare.GT)}:
            raise ImportRefused(f"{name}.lif", "nir.LIF", "thresholds of +-inf (never/always "
                                "firing neurons) are not imported")
        tau = layer.neuron.tau if layer.neuron is not None else folded.tau
        walk.add_neuron(f"{name}.lif", "nir.LIF", tau=tau, theta=rule.theta, reset="zero",
                        fire=">", conversions=[f"decay 1 - dt/tau = {tau!r}",
                                               "reset to v_reset = 0 (NIR has no reset mode)"])
    walk.table.notes.append(RESET_WARNING)
    return walk.finish(), walk.table


def import_nir(path, *, T=None, dt=None):
    """``(Network, ImportTable)`` of the NIR file ``path``."""
    from golden.nir_io import read_nir

    path = Path(path)
    folded = read_nir(path, T=T, dt=dt)       # warns on graphs not written by spikefold
    return network_from_folded(folded)
