"""A pooling stage on spike maps: max pooling (the OR of each window) or sum pooling (the
count of each window), exactly golden's rule.

:class:`golden.layers.pool.IntegerPool2d`, no padding (rows and columns past the last full
window are dropped), ``K = kernel**2``:

* ``mode="max"`` on 0/1 spikes: ``out[c, yo, xo] = OR`` of ``in[c, S*yo + dy, S*xo + dx]``
  over ``0 <= dy, dx < kernel``; the output is spikes.
* ``mode="sum"``: ``out[c, yo, xo] = sum`` of the same window, exact (no saturation), a
  count ``0 .. out_max`` with ``out_max = K * in_max`` (``K`` on spikes); the input is spikes
  or the counts of an earlier sum pooling. An average pooling arrives here as sum pooling:
  golden folds its ``1/K`` into the next synaptic layer's weights
  (:func:`golden.layers.pool.absorb_average`), so the hardware never divides; the next
  :class:`hdl.conv.ConvStage` or :class:`hdl.dense.DenseStage` takes the counts
  (``W_q * n``, its count input mode).

Input and output follow :mod:`hdl.layout`: channel-major flattened maps, ``Q`` (input) and
``P`` (output) elements per beat, one map per timestep. Spikes travel as ``unsigned(Q)``
(bit ``q`` = lane ``q``); counts as ``ArrayLayout(unsigned(w), lanes)`` (lane ``p`` at bits
``[p*w, (p+1)*w)``), ``w = ceil(log2(max + 1))`` (:func:`hdl.plan.count_bits`): the output
of sum pooling over spikes is ``ceil(log2(K + 1))`` bits per element, ``P * w`` bits per
beat. A sum pooling with ``out_max == 1`` (a 1x1 window on spikes) emits spikes.

Each timestep's output map is held in registers (``N_out`` fields of ``w`` bits, two
maps: the next timestep is pooled into one while the other is emitted). Every input beat
updates the output fields whose windows cover its lanes (a fixed set of lanes per output
and beat index, decoded at elaboration): max ORs the covered spikes in, sum adds them
(the first beat of a map starts every field from zero); after the map's last input beat
the ``ceil(N_out / P)`` output beats are emitted from it. No memory: the maps are
registers (``2 * N_out * w`` flip-flops; they suit the maps of the digits network, a
line-buffer design would be needed for large maps). Per timestep ``ceil(N_in / Q)`` input
cycles and ``ceil(N_out / P)`` output cycles, overlapped across timesteps: steady state
``max(ceil(N_in / Q), ceil(N_out / P))`` cycles per map (:func:`hdl.plan.pool_plan`); the
first output beat is offered :attr:`PoolStage.latency` = 1 cycle after the map's last
input beat is taken.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.layers.pool import IntegerPool2d

from .dense import _positive
from .plan import count_bits, pool_latency

__all__ = ["PoolStage"]


class PoolStage(wiring.Component):
    """Max- or sum-pool a stream of spike (or count) maps.

    Parameters
    ----------
    layer : golden.layers.pool.IntegerPool2d
        ``mode`` ``"max"`` (input spikes, ``in_max == 1``) or ``"sum"`` (input spikes or
        counts ``0 .. in_max``).
    lanes : int
        ``P``: output elements per beat, ``1 <= P <= N_out``.
    in_lanes : int
        ``Q``: input elements per beat, ``1 <= Q <= N_in`` (the stage before's lanes).

    Attributes
    ----------
    i_spikes : In(stream.Signature(unsigned(Q)))
        Spike input (``in_max == 1``): bit ``q`` of beat ``b`` is input ``b * Q + q`` of the
        flattened ``(C, H, W)`` map; ``ceil(N_in / Q)`` beats per timestep. ``ready`` is low
        while both maps wait to be emitted.
    i_counts : In(stream.Signature(ArrayLayout(unsigned(count_bits(in_max)), Q)))
        Count input (``in_max > 1``) instead, in the same order.
    o_spikes : Out(stream.Signature(unsigned(P)))
        Spike output (``out_max == 1``): bit ``p`` of beat ``b`` is output ``b * P + p`` of
        the flattened ``(C, H_out, W_out)`` map (0 past the end); registered.
    o_counts : Out(stream.Signature(ArrayLayout(unsigned(count_bits(out_max)), P)))
        Count output (``out_max > 1``: sum pooling) instead, in the same order; registered.

    Raises
    ------
    TypeError
        ``layer`` is not an ``IntegerPool2d``.
    ValueError
        An unknown mode, max pooling of counts; bad lane counts.
    """

    def __init__(self, layer, lanes, *, in_lanes=1):
        if not isinstance(layer, IntegerPool2d):
            raise TypeError(f"layer must be a golden.layers.pool.IntegerPool2d, not {layer!r}")
        if layer.mode not in ("max", "sum"):
            raise ValueError(f"layer.mode must be 'max' or 'sum' (an average pooling is folded "
                             f"into sum pooling first), not {layer.mode!r}")
        if not isinstance(layer.in_max, (int, np.integer)) or layer.in_max < 1:
            raise ValueError(f"layer.in_max must be a positive integer, not {layer.in_max!r}")
        if layer.mode == "max" and layer.in_max != 1:
            raise ValueError(f"layer.in_max {layer.in_max}: max pooling of counts is not "
                             f"built; max pooling takes spikes (in_max 1)")
        self._layer = layer
        self._n_in = int(np.prod(layer.in_shape))
        self._n_out = int(np.prod(layer.out_shape))
        self._lanes = _positive("lanes", lanes, self._n_out, "the layer's output count")
        self._in_lanes = _positive("in_lanes", in_lanes, self._n_in, "the layer's input count")
        self._beats = -(-self._n_out // self._lanes)
        self._in_beats = -(-self._n_in // self._in_lanes)
        self._in_bits = count_bits(layer.in_max)
        self._out_bits = count_bits(layer.out_max)
        Q, P = self._in_lanes, self._lanes
        if layer.in_max == 1:
            members = {"i_spikes": In(stream.Signature(unsigned(Q)))}
        else:
            members = {"i_counts": In(stream.Signature(
                data.ArrayLayout(unsigned(self._in_bits), Q)))}
        if layer.out_max == 1:
            members["o_spikes"] = Out(stream.Signature(unsigned(P)))
        else:
            members["o_counts"] = Out(stream.Signature(
                data.ArrayLayout(unsigned(self._out_bits), P)))
        super().__init__(members)

    @property
    def layer(self):
        return self._layer

    @property
    def lanes(self):
        return self._lanes

    @property
    def in_lanes(self):
        return self._in_lanes

    @property
    def beats(self):
        return self._beats

    @property
    def in_beats(self):
        return self._in_beats

    @property
    def in_bits(self):
        """Bits per input element (1: spikes)."""
        return self._in_bits

    @property
    def out_bits(self):
        """Bits per output element: ``count_bits(out_max)`` (1: spikes)."""
        return self._out_bits

    @property
    def input_name(self):
        """The input stream port's name: ``i_spikes`` or ``i_counts``."""
        return "i_spikes" if self._layer.in_max == 1 else "i_counts"

    @property
    def output_name(self):
        """The output stream port's name: ``o_spikes`` or ``o_counts``."""
        return "o_spikes" if self._layer.out_max == 1 else "o_counts"

    @property
    def input(self):
        return getattr(self, self.input_name)

    @property
    def output(self):
        return getattr(self, self.output_name)

    @property
    def latency(self):
        """Cycles from taking a map's last input beat to offering its first output beat
        (the convention of :class:`golden.timing.StallPipeline`): one edge marks the map
        full, the next loads the output register. :func:`hdl.plan.pool_latency`."""
        return pool_latency()

    def covers(self):
        """``{output index: [input indices]}``: the window of every output (flat indices)."""
        C, H, W = self._layer.in_shape
        _, Ho, Wo = self._layer.out_shape
        K, S = self._layer.kernel, self._layer.stride
        cover = {}
        for c in range(C):
            for yo in range(Ho):
                for xo in range(Wo):
                    o = (c * Ho + yo) * Wo + xo
                    cover[o] = [(c * H + S * yo + dy) * W + S * xo + dx
                                for dy in range(K) for dx in range(K)]
        return cover

    def elaborate(self, platform):
        m = Module()
        Q, P, IB, B = self._in_lanes, self._lanes, self._in_beats, self._beats
        w = self._out_bits
        summing = self._layer.mode == "sum"
        inp, out = self.input, self.output
        maps = [Signal(B * P * w, name=f"map{b}") for b in range(2)]
        full = Signal(2)
        wb = Signal()
        ib = Signal(range(max(2, IB)))
        take = inp.valid & inp.ready
        m.d.comb += inp.ready.eq(~Mux(wb, full[1], full[0]))

        lane_value = [inp.payload[q] for q in range(Q)]     # a spike bit or a count
        first = ib == 0
        for o, inputs in self.covers().items():
            by_beat = {}
            for i in inputs:
                by_beat.setdefault(i // Q, []).append(i % Q)
            # What this beat adds to output o (it is exactly one beat index ib): the OR of
            # the covered spikes (max) or their sum (sum).
            hit = Const(0, w)
            for beat, lanes in by_beat.items():
                if summing:
                    part = sum(lane_value[q] for q in lanes)
                else:
                    part = Cat(*[lane_value[q] for q in lanes]).any()
                hit = Mux(ib == beat, part, hit)
            for b in range(2):
                field = maps[b].word_select(o, w)
                old = Mux(first, 0, field)
                with m.If(take & (wb == b)):
                    m.d.sync += field.eq(old + hit if summing else old | hit)
        with m.If(take):
            with m.If(ib == IB - 1):
                m.d.sync += [ib.eq(0), wb.eq(~wb)]
                for b in range(2):
                    with m.If(wb == b):
                        m.d.sync += full[b].eq(1)
            with m.Else():
                m.d.sync += ib.eq(ib + 1)

        rb = Signal()
        rk = Signal(range(max(2, B)))
        out_valid = Signal()
        adv = ~out_valid | out.ready
        have = Mux(rb, full[1], full[0])
        with m.If(adv):
            m.d.sync += out_valid.eq(have)
            with m.If(have):
                m.d.sync += out.payload.eq(Mux(rb, maps[1], maps[0]).word_select(rk, P * w))
                with m.If(rk == B - 1):
                    m.d.sync += [rk.eq(0), rb.eq(~rb)]
                    for b in range(2):
                        with m.If(rb == b):
                            m.d.sync += full[b].eq(0)
                with m.Else():
                    m.d.sync += rk.eq(rk + 1)
        m.d.comb += out.valid.eq(out_valid)
        return m
