"""A max pooling stage on spike maps: the OR of each window, exactly golden's rule.

:class:`golden.layers.pool.IntegerPool2d` with ``mode="max"`` on 0/1 spikes: ``out[c, yo,
xo] = OR`` of ``in[c, S*yo + dy, S*xo + dx]`` over ``0 <= dy, dx < K`` (no padding; rows
and columns past the last full window are dropped). Input and output follow
:mod:`hdl.layout`: channel-major flattened maps, ``Q`` (input) and ``P`` (output) spikes
per beat, one map per timestep.

Each timestep's output map is held in a register bitmap (``C * H_out * W_out`` bits, two
of them: the next timestep is pooled into one while the other is emitted). Every input beat
ORs its spikes into the output bits whose windows cover them (a fixed set of lanes per
output bit and beat index, decoded at elaboration); after the map's last input beat the
``ceil(N_out / P)`` output beats are emitted from it. No memory: the bitmap is registers
(it suits the maps of the digits network; a line-buffer design would be needed for large
maps). Per timestep ``ceil(N_in / Q)`` input cycles and ``ceil(N_out / P)`` output cycles,
overlapped across timesteps.

Sum pooling (counts) is not built: :class:`hdl.conv.ConvStage` does not take counts yet.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.layers.pool import IntegerPool2d

from .dense import _positive

__all__ = ["PoolStage"]


class PoolStage(wiring.Component):
    """Max-pool a stream of spike maps (the OR of each window).

    Parameters
    ----------
    layer : golden.layers.pool.IntegerPool2d
        ``mode`` must be ``"max"`` and the input spikes (``in_max == 1``).
    lanes : int
        ``P``: output spikes per beat, ``1 <= P <= N_out``.
    in_lanes : int
        ``Q``: input spikes per beat, ``1 <= Q <= N_in`` (the LIF array's lanes before).

    Attributes
    ----------
    i_spikes : In(stream.Signature(unsigned(Q)))
        Bit ``q`` of beat ``b`` is input ``b * Q + q`` of the flattened ``(C, H, W)`` map;
        ``ceil(N_in / Q)`` beats per timestep. ``ready`` is low while both bitmaps wait to
        be emitted.
    o_spikes : Out(stream.Signature(unsigned(P)))
        Bit ``p`` of beat ``b`` is output ``b * P + p`` of the flattened ``(C, H_out,
        W_out)`` map (0 past the end); registered.

    Raises
    ------
    TypeError
        ``layer`` is not an ``IntegerPool2d``.
    ValueError
        Not max pooling of spikes; bad lane counts.
    """

    def __init__(self, layer, lanes, *, in_lanes=1):
        if not isinstance(layer, IntegerPool2d):
            raise TypeError(f"layer must be a golden.layers.pool.IntegerPool2d, not {layer!r}")
        if layer.mode != "max":
            raise ValueError(f"layer.mode {layer.mode!r}: only max pooling is built in "
                             f"hardware yet (sum pooling gives counts, which ConvStage does not "
                             f"take)")
        if layer.in_max != 1:
            raise ValueError(f"layer.in_max must be 1 (spikes), not {layer.in_max!r}")
        self._layer = layer
        self._n_in = int(np.prod(layer.in_shape))
        self._n_out = int(np.prod(layer.out_shape))
        self._lanes = _positive("lanes", lanes, self._n_out, "the layer's output count")
        self._in_lanes = _positive("in_lanes", in_lanes, self._n_in, "the layer's input count")
        self._beats = -(-self._n_out // self._lanes)
        self._in_beats = -(-self._n_in // self._in_lanes)
        super().__init__({"i_spikes": In(stream.Signature(unsigned(self._in_lanes))),
                          "o_spikes": Out(stream.Signature(unsigned(self._lanes)))})

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
    def latency(self):
        """Cycles from a map's last input beat to its first output beat offered."""
        return 1

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
        inp, out = self.i_spikes, self.o_spikes
        maps = [Signal(B * P, name=f"map{b}") for b in range(2)]
        full = Signal(2)
        wb = Signal()
        ib = Signal(range(max(2, IB)))
        take = inp.valid & inp.ready
        m.d.comb += inp.ready.eq(~Mux(wb, full[1], full[0]))

        first = ib == 0
        for o, inputs in self.covers().items():
            by_beat = {}
            for i in inputs:
                by_beat.setdefault(i // Q, []).append(i % Q)
            hit = Const(0, 1)
            for beat, lanes in by_beat.items():
                hit = hit | ((ib == beat) & Cat(*[inp.payload[q] for q in lanes]).any())
            for b in range(2):
                with m.If(take & (wb == b)):
                    m.d.sync += maps[b][o].eq(Mux(first, 0, maps[b][o]) | hit)
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
                m.d.sync += out.payload.eq(Mux(rb, maps[1], maps[0]).word_select(rk, P))
                with m.If(rk == B - 1):
                    m.d.sync += [rk.eq(0), rb.eq(~rb)]
                    for b in range(2):
                        with m.If(rb == b):
                            m.d.sync += full[b].eq(0)
                with m.Else():
                    m.d.sync += rk.eq(rk + 1)
        m.d.comb += out.valid.eq(out_valid)
        return m
