"""One hardware builder per layer kind, registered by name.

:class:`hdl.network.SpikingNetwork` is a generic chain: for each integer stage of the
network (``layer.kind``, ``"dense"`` until golden grows other kinds) it asks the
registered builder for its hardware parts and connects each part's ``output`` stream to
the next part's ``input`` stream. Every builder gives, for the same arguments,

* :meth:`StageBuilder.plan` -- the :class:`hdl.plan.StagePlan` of each part, computed
  without building or elaborating anything;
* :meth:`StageBuilder.build` -- the parts themselves, as :class:`Part` (submodule name,
  component, names of its input and output stream ports).

The streams between parts follow the layout of :mod:`hdl.layout`. A new layer kind
(convolution, pooling, flatten) adds one builder class here (or in its own module) and
one :func:`register` call; the chain, the plans' sums in ``boards/`` and the co-simulation
monitors need no change.
"""

from __future__ import annotations

from dataclasses import dataclass

from types import SimpleNamespace

import numpy as np

from .plan import BRAM_MIN_DEPTH, conv_plan, dense_plan, lif_plan, pool_plan, readout_plan

__all__ = ["Part", "StageBuilder", "DenseBuilder", "ConvBuilder", "PoolBuilder",
           "FlattenBuilder", "BUILDERS", "register", "builder_for", "layer_kind",
           "layer_sizes", "sized"]


@dataclass(frozen=True)
class Part:
    """One built hardware stage: submodule ``name``, the ``component``, the attribute
    names of its input and output ``amaranth.lib.stream`` ports, and the index of the
    integer stage (``network.layers[layer]``) it belongs to."""

    name: str
    component: object
    input: str
    output: str
    layer: int

    @property
    def i_stream(self):
        return getattr(self.component, self.input)

    @property
    def o_stream(self):
        return getattr(self.component, self.output)


class StageBuilder:
    """Base of the per-kind builders (stateless; one instance is registered)."""

    kind = None

    def plan(self, layer, index, mapping, T):
        """The :class:`hdl.plan.StagePlan` of each part of integer stage ``index``."""
        raise NotImplementedError

    def build(self, layer, index, mapping, T):
        """The :class:`Part` list of integer stage ``index`` (same order as :meth:`plan`)."""
        raise NotImplementedError


class DenseBuilder(StageBuilder):
    """A dense integer stage: :class:`hdl.dense.DenseStage` (``dense<i>``), then a
    :class:`hdl.lif_array.LIFArray` (``lif<i>``) or, for the readout layer,
    :class:`hdl.network.Readout` (``readout``)."""

    kind = "dense"

    def plan(self, layer, index, mapping, T):
        P = mapping.lanes[index]
        plans = [dense_plan(layer, P, mapping.layer_in_lanes(index), T, outreg=mapping.outreg,
                            flow=mapping.flow, name=f"dense{index}")]
        if layer.readout:
            plans.append(readout_plan(layer.n_out, P, T, layer.formats.current.bits))
        else:
            plans.append(lif_plan(layer.config, P, outreg=mapping.outreg, name=f"lif{index}",
                                  flow=mapping.flow))
        return plans

    def build(self, layer, index, mapping, T):
        from .dense import DenseStage
        from .network import Readout
        P = mapping.lanes[index]
        try:
            dense = DenseStage(layer, P, in_lanes=mapping.layer_in_lanes(index), T=T,
                               memory_outreg=mapping.outreg, flow=mapping.flow)
        except ValueError as exc:
            raise ValueError(f"layer{index}: {exc}") from None
        parts = [Part(f"dense{index}", dense, _input_name(dense), "o_current", index)]
        if layer.readout:
            parts.append(Part("readout", Readout(layer.n_out, P, T,
                                                 layer.formats.current.bits),
                              "i_current", "o_result", index))
        else:
            parts.append(_lif_part(layer, index, mapping))
        return parts


def conv_threshold_channels(layer):
    """``C_out`` when a conv stage's LIF array holds its thresholds per channel (they are
    the same within every channel: channel-wise MPBN, or none), else ``None`` (per neuron:
    element-wise MPBN). The per-channel table is ``C_out`` words instead of ``C_out * H *
    W``, so it is chosen whenever it is exact."""
    from .lif_array import LIFArray
    return LIFArray.threshold_layout(layer.thresholds, layer.out_shape[0])


def _input_name(stage):
    """The input stream port of a dense or conv stage: ``i_pixels`` (the analog network
    input), ``i_counts`` (counts of a sum pooling stage) or ``i_spikes``."""
    return "i_pixels" if stage.analog else "i_counts" if stage.counts else "i_spikes"


def _lif_part(layer, index, mapping, threshold_channels=None):
    """The LIF array of a hidden integer stage (dense or conv): ``lif<index>``."""
    from .lif_array import LIFArray
    P = mapping.lanes[index]
    # Shallow memories stay out of block RAM primitives (LUT RAM or flip-flops after an
    # inferred memory, and a fabric output register).
    beats = -(-layer.config.neurons // P)
    bram = "memory" if mapping.outreg and beats < BRAM_MIN_DEPTH else "auto"
    return Part(f"lif{index}", LIFArray(layer.config, P, thresholds=layer.thresholds,
                                        affine=layer.affine, memory_outreg=mapping.outreg,
                                        bram=bram, threshold_channels=threshold_channels,
                                        flow=mapping.flow),
                "i_current", "o_spikes", index)


class ConvBuilder(StageBuilder):
    """A conv integer stage: :class:`hdl.conv.ConvStage` (``conv<i>``) then a
    :class:`hdl.lif_array.LIFArray` (``lif<i>``) over its ``C_out * H_out * W_out``
    neurons, channel-major (golden's flatten order, :mod:`hdl.layout`), with the layer's
    threshold table per channel when its thresholds are the same within every channel
    (channel-wise MPBN, which golden broadcasts to every neuron; :func:`conv_threshold_channels`)
    or else per neuron (element-wise MPBN), and its per-channel affine table (``channels =
    C_out``). The conv stage's
    memories are plain (``mapping.outreg`` applies to the LIF array only)."""

    kind = "conv2d"

    def plan(self, layer, index, mapping, T):
        P = mapping.lanes[index]
        return [conv_plan(layer, P, mapping.layer_in_lanes(index), T, name=f"conv{index}"),
                lif_plan(layer.config, P, outreg=mapping.outreg, name=f"lif{index}",
                         threshold_channels=conv_threshold_channels(layer), flow=mapping.flow)]

    def build(self, layer, index, mapping, T):
        from .conv import ConvStage
        try:
            conv = ConvStage(layer, mapping.lanes[index], in_lanes=mapping.layer_in_lanes(index),
                             T=T)
        except ValueError as exc:
            raise ValueError(f"layer{index}: {exc}") from None
        return [Part(f"conv{index}", conv, _input_name(conv), "o_current", index),
                _lif_part(layer, index, mapping, conv_threshold_channels(layer))]


class PoolBuilder(StageBuilder):
    """A pooling integer stage: :class:`hdl.pool.PoolStage` (``pool<i>``): max pooling
    (spikes out) or sum pooling (an average pooling folded by golden; counts out on
    ``o_counts``, which the next conv or dense stage takes on its ``i_counts``, through any
    flatten)."""

    kind = "pool2d"

    def plan(self, layer, index, mapping, T):
        return [pool_plan(layer, mapping.lanes[index], mapping.layer_in_lanes(index), T,
                          name=f"pool{index}")]

    def build(self, layer, index, mapping, T):
        from .pool import PoolStage
        try:
            pool = PoolStage(layer, mapping.lanes[index], in_lanes=mapping.layer_in_lanes(index))
        except ValueError as exc:
            raise ValueError(f"layer{index}: {exc}") from None
        return [Part(f"pool{index}", pool, pool.input_name, pool.output_name, index)]


class FlattenBuilder(StageBuilder):
    """A flatten integer stage: no hardware. The stream already carries every map
    flattened channel-major (:mod:`hdl.layout`), which is exactly golden's flatten order,
    so the next stage reads the previous stage's beats unchanged; the flatten's lanes must
    therefore equal the previous stage's (``ValueError`` otherwise)."""

    kind = "flatten"

    def _check(self, index, mapping):
        if index == 0:
            raise ValueError("layer0: a flatten layer first is not supported in hardware; "
                             "give the first dense layer the flat input")
        if mapping.lanes[index] != mapping.layer_in_lanes(index):
            raise ValueError(f"layer{index}: flatten has lanes {mapping.lanes[index]} but the "
                             f"stage before has {mapping.layer_in_lanes(index)}; flatten is a "
                             f"no-op on the stream, give it the same lanes")

    def plan(self, layer, index, mapping, T):
        self._check(index, mapping)
        return []

    def build(self, layer, index, mapping, T):
        self._check(index, mapping)
        return []


BUILDERS = {}


def register(builder):
    """Register ``builder`` (a :class:`StageBuilder` instance) for ``builder.kind``."""
    if not isinstance(builder, StageBuilder) or not isinstance(builder.kind, str):
        raise TypeError(f"builder must be a StageBuilder instance with a kind, not {builder!r}")
    BUILDERS[builder.kind] = builder
    return builder


register(DenseBuilder())
register(ConvBuilder())
register(PoolBuilder())
register(FlattenBuilder())


def layer_kind(layer):
    """The kind of an integer stage (``"dense"`` for stages that do not say)."""
    return getattr(layer, "kind", "dense")


def builder_for(layer):
    """The registered builder of ``layer``'s kind, or ``ValueError`` naming the kind."""
    kind = layer_kind(layer)
    try:
        return BUILDERS[kind]
    except KeyError:
        raise ValueError(f"no hardware builder for layer kind {kind!r}; known kinds: "
                         f"{', '.join(sorted(BUILDERS))}") from None


def layer_sizes(layer):
    """``(n_in, n_out)`` of an integer stage of any kind (a dense stage's attributes, else
    the element counts of ``in_shape`` and ``out_shape``)."""
    if hasattr(layer, "n_in") and hasattr(layer, "n_out"):
        return int(layer.n_in), int(layer.n_out)
    return int(np.prod(layer.in_shape)), int(np.prod(layer.out_shape))


def sized(inet):
    """``inet`` as :meth:`hdl.mapping.HardwareMapping.for_network` reads it: ``layers``
    with ``n_in`` and ``n_out`` for every kind (a conv, pool or flatten stage has shapes
    instead)."""
    return SimpleNamespace(layers=[SimpleNamespace(**dict(zip(("n_in", "n_out"),
                                                              layer_sizes(layer))))
                                   for layer in inet.layers])
