"""Bring your own model: import SNNs trained in snnTorch, SpikingJelly or Norse (or NIR files).

:func:`import_module` walks a PyTorch module (MLP or convolutional) layer by layer and returns a
:class:`golden.network.Network` plus an :class:`ImportTable` (source module -> spikefold
layer, every conversion applied). Every semantic difference between the library and
spikefold is either reproduced exactly or refused with :class:`ImportRefused` naming the
module and the reason; nothing is approximated silently. The conversion rules are listed in
:mod:`spikefold.importer.torch_walk`.

This package uses torch (only when a module is imported); :mod:`golden` never does.
"""

from .table import ImportRefused, ImportTable
from .torch_walk import HANDLERS, import_module, register_handler

__all__ = ["ImportRefused", "ImportTable", "HANDLERS", "import_module", "register_handler",
           "import_nir"]


def import_nir(path, *, T=None, dt=None):
    """``(Network, ImportTable)`` of a NIR file (see :mod:`spikefold.importer.nir`)."""
    from .nir import import_nir as _import_nir
    return _import_nir(path, T=T, dt=dt)
