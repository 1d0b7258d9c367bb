"""A register slice (skid buffer) for an ``amaranth.lib.stream``: it cuts the valid, payload
and ready paths of a link between two stages at full throughput.

The stages of :class:`hdl.network.SpikingNetwork` are stall-all pipelines whose enable is
``~out_valid | out_ready``; chained directly, one stage's ``ready`` reaches the enables and
block RAM clock enables of every stage upstream in the same cycle (on the ECP5 the longest
path of the whole network). With a slice on each link every ``ready`` a stage sees is a
register.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterSlice"]


class RegisterSlice(wiring.Component):
    """Two-entry skid buffer: one beat per cycle through, one cycle of latency.

    Parameters
    ----------
    shape : shape-castable
        The payload shape.

    Attributes
    ----------
    i : In(stream.Signature(shape))
        ``i.ready`` is a register (low only while the skid entry is occupied).
    o : Out(stream.Signature(shape))
        ``o.valid`` and ``o.payload`` are registers.

    A beat accepted at edge ``e`` is offered on ``o`` from edge ``e`` on (the cycle after
    its transfer); beats leave in order; none is lost or duplicated under any pattern of
    ``i.valid`` and ``o.ready``.
    """

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    @property
    def latency(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        o_valid = Signal()
        o_data = Signal(self._shape, reset_less=True)
        s_valid = Signal()
        s_data = Signal(self._shape, reset_less=True)
        m.d.comb += [self.i.ready.eq(~s_valid), self.o.valid.eq(o_valid),
                     self.o.payload.eq(o_data)]
        take = self.i.valid & ~s_valid
        with m.If(~o_valid | self.o.ready):
            with m.If(s_valid):
                m.d.sync += [o_data.eq(s_data), o_valid.eq(1), s_valid.eq(0)]
            with m.Else():
                m.d.sync += o_valid.eq(self.i.valid)
                with m.If(self.i.valid):
                    m.d.sync += o_data.eq(self.i.payload)
        with m.Elif(take):
            m.d.sync += [s_valid.eq(1), s_data.eq(self.i.payload)]
        return m
