"""8N1 UART receiver and transmitter (the board's USB-serial link).

Both run from the ``sync`` domain at a fixed number of clocks per bit (the divisor): e.g.
12 MHz / 115 200 baud -> 104. Simulation uses a small divisor (4..8) to keep tests short.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "divisor_for", "MIN_DIVISOR"]

#: Smallest divisor the receiver supports (it samples each bit in its middle).
MIN_DIVISOR = 4


def _check_divisor(divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < MIN_DIVISOR:
        raise ValueError(
            f"UART divisor (clocks per bit) must be an integer >= {MIN_DIVISOR}, not {divisor!r}")
    return divisor


def divisor_for(clk_frequency, baudrate):
    """Clocks per bit for ``baudrate`` at ``clk_frequency`` Hz; refuses > 2 % baud error."""
    if baudrate <= 0:
        raise ValueError(f"baudrate must be positive, not {baudrate!r}")
    divisor = int(round(clk_frequency / baudrate))
    _check_divisor(divisor)
    error = abs(clk_frequency / divisor - baudrate) / baudrate
    if error > 0.02:
        raise ValueError(
            f"baudrate {baudrate} cannot be made from a {clk_frequency / 1e6:g} MHz clock "
            f"(divisor {divisor} is {error:.1%} off; the limit is 2%)")
    return divisor


class UARTRx(wiring.Component):
    """Receive 8N1 bytes from ``rx``; each byte is offered on ``o``.

    ``rx`` passes a two-flip-flop synchronizer; a start bit is confirmed in its middle and
    every bit is sampled in its middle. A byte whose stop bit is low is dropped and
    ``framing_error`` pulses for one cycle (the receiver then waits for the line to go
    idle, so a break is one error, not many). ``o`` holds a byte until it is taken; a byte
    completing while the previous one is still held overwrites it and ``overrun`` pulses.
    All outputs are registered.

    Parameters
    ----------
    divisor : int
        Clocks per bit, at least 4.
    """

    def __init__(self, divisor):
        self._divisor = _check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        count = Signal(range(div))
        bit = Signal(range(8))
        shreg = Signal(8)

        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += count.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(count == 0):
                    with m.If(~rx):
                        m.d.sync += [count.eq(div - 1), bit.eq(0)]
                        m.next = "DATA"
                    with m.Else():
                        m.next = "IDLE"          # a glitch, not a start bit
                with m.Else():
                    m.d.sync += count.eq(count - 1)
            with m.State("DATA"):
                with m.If(count == 0):
                    m.d.sync += [shreg.eq((shreg >> 1) | (rx << 7)), count.eq(div - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += count.eq(count - 1)
            with m.State("STOP"):
                with m.If(count == 0):
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.d.sync += self.overrun.eq(self.o.valid & ~self.o.ready)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += count.eq(count - 1)
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """Send the bytes offered on ``i`` as 8N1 on ``tx`` (registered; idle high).

    Parameters
    ----------
    divisor : int
        Clocks per bit, at least 4.
    """

    def __init__(self, divisor):
        self._divisor = _check_divisor(divisor)
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        count = Signal(range(div))
        bits = Signal(range(11))                  # bits left: start + 8 data + stop
        shreg = Signal(9)                         # data bits then the stop bit

        m.d.comb += [self.i.ready.eq(bits == 0), self.busy.eq(bits != 0)]
        with m.If(bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [self.tx.eq(0), shreg.eq(self.i.payload | (1 << 8)),
                             count.eq(div - 1), bits.eq(10)]
        with m.Elif(count == 0):
            m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg >> 1),
                         count.eq(div - 1), bits.eq(bits - 1)]
            with m.If(bits == 1):
                m.d.sync += self.tx.eq(1)
        with m.Else():
            m.d.sync += count.eq(count - 1)
        return m
