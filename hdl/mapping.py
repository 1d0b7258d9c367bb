"""How an integer network is mapped onto the fabric: one value object, one set of defaults.

:class:`HardwareMapping` says, for a :class:`golden.network.IntegerNetwork`, how many
neurons each stage handles per beat (``lanes``), how many input values arrive per input
beat (``in_lanes``) and whether block RAM read data passes an output register
(``outreg``), whether each link between two stages has a register slice (``slices``) and
how the dense stages' engines wait for the stage after them (``flow``).
:class:`hdl.network.SpikingNetwork`, :mod:`hdl.plan`, :mod:`boards.build`,
:mod:`boards.top`, :mod:`sim.network_cosim` and ``spikefold demo`` all take one; the
defaults live only here (:data:`DEFAULT_LANES`, :data:`DEFAULT_IN_LANES`,
:data:`DEFAULT_OUTREG`, :data:`DEFAULT_SLICES`, :data:`DEFAULT_FLOW`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["HardwareMapping", "DEFAULT_LANES", "DEFAULT_IN_LANES", "DEFAULT_OUTREG",
           "DEFAULT_SLICES", "DEFAULT_FLOW", "FLOWS"]

#: Neurons per beat of every stage (capped at the stage's ``n_out``).
DEFAULT_LANES = 16
#: Input values per input beat (capped at the first stage's ``n_in``).
DEFAULT_IN_LANES = 8
#: Register every block RAM's read data once more (one more pipeline stage per LIF array;
#: what an ECP5 needs above ~135 MHz, see :mod:`hdl.bram`).
DEFAULT_OUTREG = True
#: A register slice (:class:`hdl.skid.RegisterSlice`) on every link between two stages:
#: no ``ready`` path crosses a stage (one cycle of latency per link, full throughput).
DEFAULT_SLICES = True
#: The pipeline flow of the dense stages' engines (:attr:`hdl.dense.DenseStage.flow`) and
#: the LIF arrays (:attr:`hdl.lif_array.LIFArray.flow`): ``"stall"`` (every register waits
#: on the next stage's ready) or ``"credit"`` (no pipeline enable: the engine runs free
#: into a 16-word LUT RAM queue or its replay banks, the LIF array into its output queue;
#: what ECP5 builds use, see :func:`boards.top.flow_for`). Conv stages are the same in
#: both.
DEFAULT_FLOW = "stall"
FLOWS = ("stall", "credit")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class HardwareMapping:
    """Lanes per stage, input lanes and registered BRAM outputs of one network on the fabric.

    Parameters
    ----------
    lanes : tuple of int
        ``lanes[l]``: output neurons per beat of integer stage ``l`` (its dense stage and
        its LIF array or readout share them); stage ``l + 1`` then takes ``lanes[l]``
        inputs per input beat.
    in_lanes : int
        Input values (pixels) per input beat of stage 0.
    outreg : bool
        Registered block RAM outputs (``memory_outreg`` of the dense stages and LIF arrays).
    slices : bool
        A register slice on every link between two stages.
    flow : str
        The dense engines' and LIF arrays' flow, ``"stall"`` or ``"credit"``.

    Raises
    ------
    ValueError
        A field that is not a positive integer (a tuple of them) or not a bool; the message
        names the field and the value. :meth:`check` compares with a network.
    """

    lanes: tuple
    in_lanes: int = DEFAULT_IN_LANES
    outreg: bool = DEFAULT_OUTREG
    slices: bool = DEFAULT_SLICES
    flow: str = DEFAULT_FLOW

    def __post_init__(self):
        lanes = self.lanes
        if _is_int(lanes) or isinstance(lanes, (str, bytes)):
            raise ValueError(f"lanes must be a tuple of positive integers (one per layer), not "
                             f"{lanes!r}; HardwareMapping.for_network() accepts one integer")
        try:
            lanes = tuple(lanes)
        except TypeError:
            raise ValueError(f"lanes must be a tuple of positive integers, not {lanes!r}") \
                from None
        if not lanes:
            raise ValueError("lanes must list at least one layer, not ()")
        for i, value in enumerate(lanes):
            if not _is_int(value) or value < 1:
                raise ValueError(f"layer{i}: lanes must be a positive integer, not {value!r}")
        object.__setattr__(self, "lanes", tuple(int(v) for v in lanes))
        if not _is_int(self.in_lanes) or self.in_lanes < 1:
            raise ValueError(f"in_lanes must be a positive integer, not {self.in_lanes!r}")
        object.__setattr__(self, "in_lanes", int(self.in_lanes))
        if not isinstance(self.outreg, (bool, np.bool_)):
            raise ValueError(f"outreg must be True or False, not {self.outreg!r}")
        object.__setattr__(self, "outreg", bool(self.outreg))
        if not isinstance(self.slices, (bool, np.bool_)):
            raise ValueError(f"slices must be True or False, not {self.slices!r}")
        object.__setattr__(self, "slices", bool(self.slices))
        if self.flow not in FLOWS:
            raise ValueError(f"flow must be one of {', '.join(map(repr, FLOWS))}, not "
                             f"{self.flow!r}")

    @classmethod
    def for_network(cls, inet, lanes=None, in_lanes=None, outreg=None, *, slices=None,
                    flow=None):
        """The mapping of ``inet`` (a :class:`golden.network.IntegerNetwork`).

        ``lanes``: one integer for every layer (capped at each layer's ``n_out``) or one
        per layer (checked, not capped); default :data:`DEFAULT_LANES`. ``in_lanes``:
        default :data:`DEFAULT_IN_LANES` capped at the first layer's ``n_in`` (an explicit
        value is checked, not capped). ``outreg``/``slices``/``flow``: default
        :data:`DEFAULT_OUTREG`/:data:`DEFAULT_SLICES`/:data:`DEFAULT_FLOW`. An existing ``HardwareMapping`` as
        ``lanes`` is checked against ``inet`` and returned (the other arguments must then
        be ``None``).

        Raises
        ------
        ValueError
            Bad counts; the message names the layer, the field and the value.
        """
        layers = inet.layers
        if isinstance(lanes, HardwareMapping):
            if (in_lanes is not None or outreg is not None or slices is not None
                    or flow is not None):
                raise ValueError("give in_lanes/outreg/slices/flow inside the "
                                 "HardwareMapping, not beside it")
            return lanes.check(inet)
        if lanes is None:
            lanes = DEFAULT_LANES
        if _is_int(lanes):
            if lanes < 1:
                raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
            lanes = tuple(min(int(lanes), layer.n_out) for layer in layers)
        else:
            try:
                lanes = tuple(lanes)
            except TypeError:
                raise ValueError(f"lanes must be an integer or one integer per layer, not "
                                 f"{lanes!r}") from None
            if len(lanes) != len(layers):
                raise ValueError(f"lanes lists {len(lanes)} values, the network has "
                                 f"{len(layers)} layers")
        if in_lanes is None:
            in_lanes = min(DEFAULT_IN_LANES, layers[0].n_in)
        mapping = cls(lanes, in_lanes, DEFAULT_OUTREG if outreg is None else outreg,
                      DEFAULT_SLICES if slices is None else slices,
                      DEFAULT_FLOW if flow is None else flow)
        return mapping.check(inet)

    def check(self, inet):
        """``self`` if it fits ``inet``, else ``ValueError`` naming layer, field and value."""
        layers = inet.layers
        if len(self.lanes) != len(layers):
            raise ValueError(f"lanes lists {len(self.lanes)} values, the network has "
                             f"{len(layers)} layers")
        for i, layer in enumerate(layers):
            for name, value, limit, what in (
                    ("lanes", self.lanes[i], layer.n_out, "neuron"),
                    ("in_lanes", self.layer_in_lanes(i), layer.n_in, "input")):
                if value > limit:
                    raise ValueError(f"layer{i}: {name} {value} exceeds the layer's {what} "
                                     f"count {limit}; use at most {limit}")
        return self

    def layer_in_lanes(self, index):
        """Input values per input beat of layer ``index`` (the previous layer's lanes)."""
        return self.in_lanes if index == 0 else self.lanes[index - 1]

    def to_json(self):
        return {"lanes": list(self.lanes), "in_lanes": self.in_lanes, "outreg": self.outreg,
                "slices": self.slices, "flow": self.flow}
