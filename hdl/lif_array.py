"""A pipelined fixed-point LIF array whose comparators load folded thresholds from BRAM.

The datapath is exactly :class:`golden.core.CoreModel` (the table in ``golden/core.py`` is
the definition); this module only decides where the registers go. The stream contract
(ports, widths, timing) is this class's docstring and :mod:`hdl.layout`;
:class:`golden.timing.StallPipeline` (``flow="stall"``) or
:class:`golden.timing.CreditPipeline` (``flow="credit"``) is its executable form
(:meth:`LIFArray.timing_model`).

Two flows control the same pipeline:

* ``flow="stall"`` (the default): stall-all, every register, every
  memory read port and every write moves only on ``en = ~o_spikes.valid | o_spikes.ready``;
  ``i_current.ready = en & ~clear`` is combinational in ``o_spikes.ready``.
* ``flow="credit"``: no enable at all (``en`` is the constant 1: no clock enable on any
  pipeline register or block RAM read port; the membrane is written whenever the last
  stage is valid). The last stage's beat is pushed at every edge into an output queue of
  ``capacity = latency + 2`` words (a memory with an asynchronous read: LUT RAM on ECP5,
  ``TRELLIS_DPR16X4``); ``o_spikes`` is the queue's head. A thermometer-coded occupancy
  register counts the beats accepted and not yet transferred out, and
  ``i_current.ready = (occupancy < capacity) & ~clear`` is a register and ``clear``: no
  path from ``o_spikes.ready`` to the input side, to the accept counters (enabled by
  ``clear | (i_current.valid & credit_ok)``) or to the datapath. With ``o_spikes.ready``
  high a beat accepted at edge ``e`` transfers at ``e + latency + 1`` (the queue's
  register), one beat per clock; ``latency + 2`` is the smallest capacity with no bubble.
  The queue and counter are written without carry chains (see
  :meth:`LIFArray._elaborate_queue`). With registered memory outputs the threshold load
  is registered too, written one clock late and bypassed to the read it collides with.
  ``spikefold build`` and ``spikefold sweep`` use it by default on ECP5 (``--flow auto``,
  :func:`boards.top.flow_for`: >= 200 MHz up to 16 lanes, 208.6 against 187.2 MHz at 16,
  about the same at 2 to 8, at 1.2-1.5x the LUTs; README), and so do network builds (a
  network's arrays follow :attr:`hdl.mapping.HardwareMapping.flow`); this class and iCE40
  builds default to the stall flow.

Pipeline (the stall flow's enable ``en``; constant with the credit flow). A beat accepted at edge ``e`` enters stage S1 at
``e``, stage S(j+1) at the next enabled edge, and leaves the last stage S``latency`` (the
output register) at edge ``e + latency`` when ``o_spikes.ready`` stays high (credit flow:
enters the output queue at ``e + latency``, transfers at ``e + latency + 1``). Each stage
registers only the values a later stage uses; every memory's read data goes straight into
a register or a carry chain's operand (no LUT between a block RAM and a flip-flop).

=======  ===================================================================  ==========
stage    combinational work in the stage (registered at its end)              present
=======  ===================================================================  ==========
accept   ``k`` / ``t`` address the threshold, affine and membrane memories    always
S1       ``y = sat_m(c << (Fm - Fc))`` (free in the input register's LUTs)    no affine
S1..3    affine: table data (S1), ``x * a`` (S2), ``y = sat_m(... + b)`` (S3)  affine
U - 1    membrane read data registered (zeroed at ``t == 0`` by the          always
         register's synchronous reset when nothing is forwarded)
U        membrane ``v``: forwarded value or the register, zero at ``t == 0``;  always
         ``v * tau_q`` (multiply leak: its own stage)
A        ``~sum = ~(leak(v) + y)`` (registered inverted: the comparator's      always
         carry chain takes it as it is)
A+1      ``v_pre = sat_m(sum)`` and, in parallel, one carry chain deciding    always
         the comparison (below); spike from the 2-bit code
A+2      words wider than 16 bits: the comparison's chain split in two, the   > 16 bit
         low half's carry out registered in A+1 and the high half here
last     reset (zero / ``sat_m(v_pre - theta)``) and membrane write; this     always
         stage's registers are the output (spikes, ``v_pre``)
=======  ===================================================================  ==========

``U`` is 2 (no affine; 3 for a multiply leak's ``A``) or ``A`` / ``A - 1`` with the affine
stage (``A = 4``); ``latency = A + 2``: 4, 5, 6, 6 for shift, multiply, shift + affine,
multiply + affine, one more when the membrane or theta is wider than 16 bits (the split
comparator: on iCE40 one 26-bit chain of a 24-bit membrane was 7.3 ns of carries, the
critical path at 67.6 MHz; split, 74.6 MHz). ``theta`` and the code are read at the
accept edge (so a load takes effect exactly for the beats accepted after its transfer
cycle) and carried only to stage ``A + 1`` (to the last stage with the subtract reset).

The comparator is one carry chain for GT and LT: with ``c0`` the code's low bit,
``(2 theta + ~c0) + (2 ~sum + 1) = 2 (theta - sum) - c0`` is negative iff ``sum > theta``
(GT) or ``sum >= theta`` (LT: the spike is the complement); both operands enter with their
sign bits flipped so the chain's carry out is the answer (on ECP5 the two flipped sign bits
are computed in stage ``A`` and registered: Yosys maps an inverted carry-chain operand to a
LUT of its own in front of the CCU2C chain). It compares the unsaturated sum:
equal to comparing ``v_pre`` because the code of GT at the membrane's top rail and
of LT at its bottom rail is NEVER (those comparisons can never hold on a saturated
membrane): :meth:`LIFArray._stored_compare` folds the rails into the code. Without
registered memory outputs, and with the credit flow, the threshold memories hold the folded
code (folded once, before the register on the load path); with registered outputs in the
stall flow (whose loads go straight to the write ports) it is folded in stage ``A`` from
the registered ``theta`` (three LUT levels into the code's register).

Why ``theta`` is carried rather than read just before the comparator: ``load_threshold`` is
always ready, so any number of loads can arrive while a beat waits in the pipeline (a
stall), and each must miss the beats accepted before it. A read at the comparator would
need the old word of every in-flight beat a load overwrites (a second read port, which an
iCE40 block RAM does not have) or a queue of the loads as long as the stall.

Memories (``amaranth.lib.memory.Memory`` with ``init=``, one write port each; without
registered outputs their reads are asynchronous ports plus a register enabled by ``en``,
which Yosys merges into a synchronous block RAM port), organised per lane: lane ``p`` holds
neurons ``p, p + P, p + 2P, ...`` at address ``k = i // P`` (depth ``ceil(N / P)``, at least
2), so the block RAM bits per neuron are ``Bm + Bth + 2`` plus rounding to the RAM geometry:

* ``membrane_p``: ``signed(Bm)``, zero-initialised, written from the last stage. Marked
  ``no_rw_check`` (:data:`hdl.bram.NO_RW_CHECK`): a read of the address written at the same
  edge is always overridden by forwarding, so Yosys adds no read-during-write emulation
  (Yosys honours the mark only on the port it builds itself from the register: on a port
  emitted as synchronous it emulated read-first, two 16-bit registers, an address
  comparator and a multiplexer per lane, the iCE40 critical path).
* ``threshold_p``: ``theta: signed(Bth)`` + ``compare: unsigned(2)``,
  initialised from the folded :class:`~golden.quantize.ThresholdTable` (entries past ``N``
  are NEVER); read at the accept edge, so a load takes effect for beats accepted after its
  transfer cycle; written by ``load_threshold`` (index ``i`` -> lane ``i % P``, address
  ``i // P``; indices ``>= N`` are ignored). Without registered outputs a load is written
  one clock after its transfer from a register and a read of that address at that edge
  takes the word from a bypass register (:meth:`LIFArray._threshold_bypass`), so the memory
  is marked ``no_rw_check`` too; with registered outputs it keeps Yosys's read-during-write
  handling.
* ``affine``: one table ``{a, b}`` at address ``(t, channel)``; one read port per group of
  lanes that see the same channel sequence (a single port when ``N / channels`` is a
  multiple of ``P``), each addressed by a small per-group channel counter; written by
  ``load_affine``.

The accept side's ``k``, ``t``, "last beat of the timestep" and "timestep 0" are registers
whose next values depend on registers only: the handshake (``o_spikes.ready`` -> ``en`` ->
``take``) reaches them as a clock enable, never through their logic. Their reset by
``clear`` and the ``t == 0`` zeroing of the membrane are written in the form the family's
flip-flops have (iCE40: reset inside the clock enable; ECP5: reset over it, the zeroing a
mask), so that no LUT sits between the enable and a flip-flop. In the stall flow
``i_current.ready`` itself stays combinational in ``o_spikes.ready`` (``en & ~clear``): that
is the stream contract of :class:`golden.timing.StallPipeline`; the credit flow's registered
ready is :class:`golden.timing.CreditPipeline`'s.

Read-after-write hazards on the membrane (a beat needing the membrane that the same neuron's
beat of the previous timestep has not written yet) are resolved by forwarding, never by
stalling. The same address comes back only after ``B = beats_per_step`` accepted beats, so a
beat in stage ``U`` can depend only on a beat at least ``B`` stages ahead. Its read happened
``lag`` enabled edges before it reached ``U`` (2: the read and the register at U's input;
3 with registered memory outputs), so the writes it may have missed are those of the beats
in stages ``U+1 .. L`` (not yet written) and of the ``lag`` write-back shadow stages
``L+1 .. L+lag`` (registers holding address and value). For each such stage ``j`` with
``j - U >= B`` the generator builds an address comparator and, for ``j <= L``, a copy of the
remaining combinational update (``j .. A+2``) applied to that stage's registers; the
youngest match wins. With ``B > L + lag - U`` (e.g. ``B >= 5`` for a shift leak without
affine) there is nothing to forward and no forwarding hardware at all. With fewer beats per
timestep the forwarding makes one membrane update (leak, add, saturate, compare, reset) a
single-cycle loop, which lowers Fmax for those shapes only.

Registered memory outputs (``memory_outreg=True``, default off): every memory becomes an
:class:`hdl.bram.RegisteredMemory` (read latency 2: the RAM's read register plus an output
register, both enabled by ``en``), and the whole datapath moves one stage later: the table
data joins in stage 2, the affine stages are 3 and 4, ``A`` and ``U`` grow by one and so does
``latency`` (5, 6, 7, 7); ``lag`` is 3. The values and the cycle of every output stay exactly
those of the golden model and :class:`golden.timing.StallPipeline` with the larger
``latency``. On an ECP5 platform (or with ``bram="ecp5"``) the memories are ``DP16KD``
primitives with ``REGMODE_B="OUTREG"``: a block RAM's clock-to-output without its output
register (~5.8 ns, what yosys's inference gives) caps ECP5 near 135 MHz, with it (~1 ns) the
fabric paths decide. Elsewhere the output register is a fabric register after an inferred
Memory (same cycles, but on iCE40, whose block RAM has no output register, about 50 more
logic cells per lane: the sweep registers them on ECP5 only).
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.core import CoreConfig, CoreModel
from golden.fold import Compare
from golden.quantize import AffineTable, ThresholdTable
from golden.timing import CreditPipeline, StallPipeline

from .bram import IMPLEMENTATIONS, NO_RW_CHECK, RegisteredMemory

__all__ = ["LIFArray", "output_layout", "threshold_load_layout", "affine_load_layout", "FLOWS"]

#: Pipeline flows: ``"stall"`` (a stall-all enable from ``o_spikes.ready``) or ``"credit"``
#: (no enable: an output queue and a credit counter; see the module docstring).
FLOWS = ("stall", "credit")


def _width(count):
    """Bits of a counter/index over ``count`` values (at least one bit)."""
    return max(1, ceil_log2(count))


def _depth(entries):
    """Memory depth for ``entries`` words: at least 2, so that the address is never 0 bits
    wide (a 0-bit address becomes a ``[-1:0]`` vector in the Verilog)."""
    return max(2, entries)


def credit_queue_depth(latency):
    """Words of the credit flow's output queue for a pipeline of ``latency`` stages: its
    capacity (:meth:`golden.timing.CreditPipeline.capacity_for`) rounded up to a power of
    two, so that the queue's pointers wrap by themselves (the LUT RAM has 16 words anyway)."""
    return 1 << ceil_log2(_depth(CreditPipeline.capacity_for(latency)))


def output_layout(config, lanes):
    """``o_spikes`` payload layout (fields in this order, first at bit 0)."""
    beats = -(-config.neurons // lanes)
    return data.StructLayout({
        "spikes": unsigned(lanes),
        "membrane": data.ArrayLayout(signed(config.membrane.bits), lanes),
        "t": unsigned(_width(config.T)),
        "beat": unsigned(_width(beats)),
        "last": unsigned(1),
    })


def threshold_load_layout(config):
    """``load_threshold`` payload layout."""
    return data.StructLayout({
        "index": unsigned(_width(config.neurons)),
        "theta": signed(config.threshold.bits),
        "compare": unsigned(2),
    })


def affine_load_layout(config):
    """``load_affine`` payload layout."""
    return data.StructLayout({
        "t": unsigned(_width(config.T)),
        "channel": unsigned(_width(config.channels)),
        "a": signed(config.scale.bits),
        "b": signed(config.membrane.bits),
    })


def _overflow(value, fmt):
    """``(above, below)``: ``value`` (signed) lies above / below the range of ``fmt``.

    Decided from the bits above the format's sign bit (they must all equal the sign), which
    is LUT logic rather than a carry chain.
    """
    if value.shape().width <= fmt.bits:
        return None
    top = value[fmt.bits - 1:]
    sign = value[-1]
    fits = top.all() | ~top.any()
    return ~fits & ~sign, ~fits & sign


def _saturate(value, fmt):
    """``value`` clamped to the signed format ``fmt`` (combinational, never wraps)."""
    flags = _overflow(value, fmt)
    if flags is None:
        return value
    above, below = flags
    return Mux(above, fmt.max_int, Mux(below, fmt.min_int, value[:fmt.bits].as_signed()))


class _SyncRead:
    """A synchronous read port (``addr``, ``en``, ``data``) built as an asynchronous port
    plus a register loaded when ``en``: the same cycles as ``read_port(domain="sync")``,
    but Yosys merges the register into the port itself (``memory_dff``), and only then
    does it honour the memory's ``no_rw_check`` (on a port Amaranth emits as synchronous
    it emulates read-first: on iCE40 two 16-bit registers, an address comparator and a
    multiplexer per lane, and the iCE40 critical path)."""

    def __init__(self, addr, en, data):
        self.addr, self.en, self.data = addr, en, data


def _sync_read(m, mem, name):
    port = mem.read_port(domain="comb")
    addr = Signal(len(port.addr), name=f"{name}_raddr")
    en = Signal(name=f"{name}_ren")
    data = Signal(mem.shape, name=f"{name}_rdata", reset_less=True)
    m.d.comb += port.addr.eq(addr)
    with m.If(en):
        m.d.sync += data.eq(port.data)
    return _SyncRead(addr, en, data)


class LIFArray(wiring.Component):
    """Update ``N`` LIF neurons, ``P`` per clock, bit-exactly as :class:`golden.core.CoreModel`.

    Parameters
    ----------
    config : golden.core.CoreConfig
        Neuron count, timesteps, fixed-point formats, leak, reset mode, affine stage.
    lanes : int
        Lane count ``P``: neurons updated in parallel per clock, ``1 <= P <= N``.
    thresholds : golden.quantize.ThresholdTable
        Initial comparator contents (the folded thresholds), ``N`` entries.
    affine : golden.quantize.AffineTable or None
        Initial per-timestep affine table ``(T, channels)``; required iff ``config.affine``.
    memory_outreg : bool
        Register every memory's read data once more (one more pipeline stage; see the module
        docstring). Default ``False``: the original pipeline, unchanged.
    bram : str
        With ``memory_outreg`` only: ``"auto"`` (DP16KD primitives when elaborated for a
        platform whose ``family`` is ``"ecp5"``, else inferred memories), ``"ecp5"`` (always
        primitives, e.g. for a Verilog export aimed at ECP5) or ``"memory"`` (never).
    flow : str
        ``"stall"`` (default: the stall-all pipeline enable from ``o_spikes.ready``) or
        ``"credit"`` (no pipeline enable: an output queue of :attr:`capacity` beats and a
        registered credit counter; see the module docstring). :meth:`timing_model` gives
        the matching cycle model.
    threshold_channels : int or None
        ``C``: hold the comparator table per channel (neuron ``i`` is in channel
        ``i // (N / C)``, as a channel-major feature map) instead of per neuron: one table of
        ``C`` words instead of ``N``, for thresholds that are the same within every channel
        (channel-wise MPBN on a conv layer); see :meth:`threshold_layout`. The table is
        fixed at elaboration: the array has no ``load_threshold`` port then.

    Attributes
    ----------
    i_current : In(stream.Signature(ArrayLayout(signed(Bc), P)))
        Input currents of one beat (lane ``p`` = neuron ``k * P + p``).
    o_spikes : Out(stream.Signature(output_layout(config, P)))
        Spikes and ``v_pre`` of one beat; driven from registers (credit flow: ``valid``
        from a register, the payload from the output queue's memory read at a registered
        pointer).
    clear : In(1)
        Start a new sample: the next accepted beat is beat 0 of timestep 0. Holds
        ``i_current.ready`` low while high.
    t : Out(unsigned(tw))
        Timestep of the next input beat to be accepted (a register).
    load_threshold : In(stream.Signature(threshold_load_layout(config), always_ready=True))
        Rewrites neuron ``index``'s comparator entry (not with ``threshold_channels``).
    load_affine : In(stream.Signature(affine_load_layout(config), always_ready=True))
        Only with ``config.affine``: rewrites the coefficients at ``(t, channel)``.

    Combinational paths: with ``flow="stall"``, ``i_current.ready`` depends on
    ``o_spikes.ready``, ``o_spikes.valid`` and ``clear`` (``en & ~clear``); with
    ``flow="credit"`` only on ``clear`` (``credit_ok & ~clear``, ``credit_ok`` a register), and
    ``o_spikes.ready`` reaches nothing but the queue's read pointer, its fill and the credit
    register. Everything else leaving the component is registered (or, the credit flow's
    payload, read from the queue's memory at a registered address).

    Raises
    ------
    TypeError
        ``config``, ``thresholds`` or ``affine`` of the wrong type.
    ValueError
        ``flow`` not ``"stall"``/``"credit"``; ``lanes`` not an integer in ``1 .. N``; a table of the wrong size or with values
        that do not fit their formats; an affine table missing or given without the stage;
        ``threshold_channels`` that does not divide ``N`` or a table that differs within a
        channel (the message names the neuron).
    """

    def __new__(cls, config=None, lanes=None, *, thresholds=None, affine=None,
                memory_outreg=False, bram="auto", threshold_channels=None, flow="stall"):
        # Refuse bad arguments before the object exists: an elaboratable whose __init__
        # raises would later also warn that it was "created but never used".
        cls._check_arguments(config, lanes, thresholds, affine)
        cls._check_memory_options(memory_outreg, bram)
        cls._check_threshold_channels(config, thresholds, threshold_channels)
        cls._check_flow(flow)
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, config, lanes, *, thresholds, affine=None, memory_outreg=False,
                 bram="auto", threshold_channels=None, flow="stall"):
        checked = self._check_arguments(config, lanes, thresholds, affine)
        self._flow = flow
        self._thr_channels = threshold_channels
        self._config = config
        self._lanes = lanes
        self._thresholds = checked.thresholds
        self._affine = checked.affine
        self._beats = -(-config.neurons // lanes)
        self._outreg = bool(memory_outreg)
        self._bram = bram
        # With registered memory outputs every memory's data arrives one stage later.
        off = self._off = 1 if self._outreg else 0
        mult_leak = config.leak_shift is None
        # Enabled edges between a membrane read and the stage U that uses it: the read edge
        # itself (the memory's read register), with registered outputs the output
        # register, and the register at U's input (no logic between a block RAM and a
        # flip-flop; it also zeroes the membrane at t == 0 as a synchronous reset when
        # nothing is forwarded).
        self._mem_lag = 2 + off
        if config.affine:
            self._stage_add = 4 + off
            self._stage_use = self._stage_add - 1 if mult_leak else self._stage_add
        else:
            self._stage_use = 2 + off
            self._stage_add = self._stage_use + 1 if mult_leak else self._stage_use
        # Words wider than 16 bits split the comparator's carry chain over two stages,
        # the low half's carry registered into the high half's chain (one 26-bit chain
        # was the iCE40 24-bit point's critical path: 14.8 ns, 7.3 ns of it carries).
        self._split_cmp = max(config.membrane.bits, config.threshold.bits) > 16
        self._latency = self._stage_add + 2 + int(self._split_cmp)
        self._capacity = CreditPipeline.capacity_for(self._latency) if flow == "credit" else None
        self._stage_cmp = self._stage_add + 1
        # The comparator's rails are folded into the code in stage A (see _stored_compare).
        self._rails = config.threshold.max_int >= config.membrane.max_int
        self._sign_bits_registered = False     # set by elaborate (ECP5)
        # Without registered memory outputs, and with the credit flow (whose loads are
        # registered too), the threshold memories hold the folded code (folded once, on
        # the registered load path, instead of in every lane: on ECP5 the fold of the
        # registered theta was a critical path of the credit flow at 16 lanes).
        self._fold_stored = not self._outreg or flow == "credit"

        members = {
            "i_current": In(stream.Signature(
                data.ArrayLayout(signed(config.current.bits), lanes))),
            "o_spikes": Out(stream.Signature(output_layout(config, lanes))),
            "clear": In(1),
            "t": Out(unsigned(_width(config.T))),
        }
        if threshold_channels is None:
            members["load_threshold"] = In(stream.Signature(
                threshold_load_layout(config), always_ready=True))
        if config.affine:
            members["load_affine"] = In(stream.Signature(
                affine_load_layout(config), always_ready=True))
        super().__init__(members)

    @staticmethod
    def _check_arguments(config, lanes, thresholds, affine):
        """Raise on bad arguments; returns a golden model holding checked copies of the tables."""
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a golden.core.CoreConfig, not {config!r}")
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            raise ValueError(f"Lane count must be a positive integer, not {lanes!r}")
        if lanes > config.neurons:
            raise ValueError(
                f"Lane count {lanes} exceeds the neuron count {config.neurons}; use at most "
                f"{config.neurons} lanes")
        if not isinstance(thresholds, ThresholdTable):
            raise TypeError(
                f"thresholds must be a golden.quantize.ThresholdTable, not {thresholds!r}")
        if config.affine and affine is None:
            raise ValueError(
                "config.affine is True but no affine table was given; pass affine= an "
                "AffineTable of shape (T, channels)")
        if affine is not None and not isinstance(affine, AffineTable):
            raise TypeError(f"affine must be a golden.quantize.AffineTable or None, not {affine!r}")
        # The golden model performs every size/format check once (and copies the tables).
        return CoreModel(config, thresholds, affine)

    @staticmethod
    def threshold_layout(thresholds, channels):
        """``channels`` if the comparator table ``thresholds`` (``N`` entries, a channel-major
        map of ``channels`` channels) is the same within every channel, else ``None``.

        The per-channel table is the smaller one whenever it applies (``C`` words against
        ``N``), so :mod:`hdl.stages` uses it for such conv LIF arrays (channel-wise MPBN);
        an element-wise MPBN (a threshold per (c, y, x) neuron) needs the per-neuron one.
        """
        n = len(thresholds)
        if channels is None or channels < 1 or n % channels or n == channels:
            return None
        cs = n // channels
        theta = thresholds.theta_q.reshape(channels, cs)
        compare = thresholds.compare.reshape(channels, cs)
        same = np.all(theta == theta[:, :1]) and np.all(compare == compare[:, :1])
        return int(channels) if same else None

    @staticmethod
    def _check_threshold_channels(config, thresholds, channels):
        if channels is None:
            return
        n = config.neurons
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1 \
                or n % channels:
            raise ValueError(f"threshold_channels must be a positive divisor of the neuron "
                             f"count {n}, not {channels!r}")
        cs = n // channels
        for i in range(n):
            first = (i // cs) * cs
            if (thresholds.theta_q[i], thresholds.compare[i]) != \
                    (thresholds.theta_q[first], thresholds.compare[first]):
                raise ValueError(
                    f"threshold_channels={channels}: neuron {i} (channel {i // cs}) has "
                    f"theta_q {int(thresholds.theta_q[i])}, compare "
                    f"{int(thresholds.compare[i])} but the channel's neuron {first} has "
                    f"{int(thresholds.theta_q[first])}, {int(thresholds.compare[first])}; "
                    f"use the per-neuron table")

    @staticmethod
    def _check_flow(flow):
        if not isinstance(flow, str) or flow not in FLOWS:
            raise ValueError(f"flow must be one of {FLOWS}, not {flow!r}")

    @staticmethod
    def _check_memory_options(memory_outreg, bram):
        if not isinstance(memory_outreg, bool):
            raise TypeError(f"memory_outreg must be a bool, not {memory_outreg!r}")
        if bram not in IMPLEMENTATIONS:
            raise ValueError(f"bram must be one of {IMPLEMENTATIONS}, not {bram!r}")
        if bram != "auto" and not memory_outreg:
            raise ValueError(f"bram={bram!r} needs memory_outreg=True (without it the "
                             "memories are always inferred)")

    @classmethod
    def from_folded(cls, folded_core, lanes, **options):
        """The array for a :class:`golden.corefile.FoldedCore` (``options``:
        ``memory_outreg``, ``bram``, ``flow``)."""
        return cls(folded_core.config, lanes, thresholds=folded_core.thresholds,
                   affine=folded_core.affine, **options)

    @property
    def threshold_channels(self):
        """``C`` of a per-channel comparator table, or ``None`` (per neuron)."""
        return self._thr_channels

    # -- read-only parameters --------------------------------------------------------------

    @property
    def config(self):
        return self._config

    @property
    def lanes(self):
        return self._lanes

    @property
    def latency(self):
        """Pipeline stages: a beat accepted at edge ``e`` transfers out at ``e + latency``."""
        return self._latency

    @property
    def flow(self):
        """``"stall"`` or ``"credit"`` (see the module docstring)."""
        return self._flow

    @property
    def capacity(self):
        """With ``flow="credit"``: beats that may be outstanding (accepted, not yet
        transferred out), the output queue's depth: ``latency + 2``. ``None`` otherwise."""
        return self._capacity

    def timing_model(self):
        """A fresh cycle model of this array's handshake: :class:`golden.timing.StallPipeline`
        or :class:`golden.timing.CreditPipeline` (its ``delay`` is the accept-to-transfer
        time with ``o_spikes.ready`` high: ``latency``, or ``latency + 1`` with the
        credit flow's queue)."""
        if self._flow == "credit":
            return CreditPipeline(self._latency, self._capacity)
        return StallPipeline(self._latency)

    @property
    def memory_outreg(self):
        """Whether every memory read has an output register (one more pipeline stage)."""
        return self._outreg

    @property
    def beats_per_step(self):
        """``ceil(N / P)``: beats per timestep (and memory depth per lane)."""
        return self._beats

    # -- datapath, one stage at a time -----------------------------------------------------

    def _stage(self, j, lane):
        """Combinational work of stage ``j`` on one lane's values; returns the next values.

        ``lane`` holds the values present in stage ``j`` (registers, memory read data and,
        in stage U, the membrane ``v``); the result is what stage ``j + 1`` registers (for
        the last stage, ``v_new``: the membrane written back).
        """
        cfg = self._config
        A, U, C, L = self._stage_add, self._stage_use, self._stage_cmp, self._latency
        out = dict(lane)
        off = self._off
        if cfg.affine:
            if j == 2 + off:
                x = out.pop("c") << cfg.align_shift
                out["prod"] = x * out.pop("a")
            if j == 3 + off:
                out["y"] = _saturate((out.pop("prod") >> cfg.scale.frac) + out.pop("b"),
                                     cfg.membrane)
        elif j == 1:
            out["y"] = _saturate(out.pop("c") << cfg.align_shift, cfg.membrane)
        if cfg.leak_shift is None and j == U:
            out["pv"] = out.pop("v") * cfg.tau_q
        if j == A:
            if cfg.leak_shift is None:
                leak = out.pop("pv") >> cfg.tau_bits
            else:
                leak = out.pop("v") >> cfg.leak_shift
            # Registered inverted: the comparator's carry chain takes ~sum as it is (an
            # iCE40 carry input cannot be inverted) and the inversion is free in the
            # adder's LUTs and in the saturation's.
            total = leak + out.pop("y")
            out["nsum"] = ~total
            if self._sign_bits_registered:
                # The comparator's operands enter with their sign bits flipped; an
                # inverter on a carry chain's operand is a LUT of its own before the chain
                # (ECP5 CCU2C, as mapped by Yosys): the flipped sign bits are registered
                # instead, ~nsum's here (the adder's own top bit) and theta's below.
                out["nsum_nsign"] = total[-1]
        if j == C - 1:
            # Stage C receives bit 0 of the code inverted (it enters the comparator's carry
            # chain directly).
            # The rails fold into the code here (NEVER for GT at the membrane's top rail and
            # LT at its bottom one), from the registered theta: three LUT levels into a
            # register, off the comparator's path and off the load port's.
            code = out.pop("compare")
            if not self._fold_stored:
                code = self._stored_compare(out["theta"], code)
            out["ccode"] = Cat(~code[0], code[1])
            if self._sign_bits_registered:
                out["theta_nsign"] = ~out["theta"][-1]
        if j == C:
            nsum = out.pop("nsum")
            ccode, theta = out.pop("ccode"), out["theta"]
            c0, c1 = ~ccode[0], ccode[1]
            out["v_pre"] = _saturate(~nsum, cfg.membrane)
            # One carry chain for both comparisons: (2 theta + ~c0) + (2 ~sum + 1) =
            # 2 (theta - sum) - c0, negative iff sum > theta (GT, c0 = 0) or iff
            # sum >= theta (LT, c0 = 1: the spike is the complement). Both operands with
            # their sign bits flipped (+ 2^(W-1) each): the sum's carry out is 1 iff the
            # signed sum is >= 0, so the chain's carry out goes straight into the spike's
            # LUT. Comparing the unsaturated sum equals comparing v_pre because the code
            # already says NEVER for GT at the top rail and LT at the bottom one (folded in
            # stage A).
            lhs = Cat(ccode[0], theta)
            rhs = Cat(Const(1, 1), nsum)
            width = max(len(lhs), len(rhs))
            if self._sign_bits_registered:
                lhs_nsign, rhs_nsign = out.pop("theta_nsign"), out.pop("nsum_nsign")
            else:
                lhs_nsign, rhs_nsign = ~lhs[-1], ~rhs[-1]

            def sign_flipped(v, nsign):
                # v sign-extended to the chain's width, its top bit replaced by ~sign.
                return Cat(Cat(v, v[-1].replicate(width - len(v)))[:-1], nsign)

            lhs_b = sign_flipped(lhs, lhs_nsign)
            rhs_b = sign_flipped(rhs, rhs_nsign)
            if self._split_cmp:
                # The low half's carry out, registered with the high halves and the code.
                h = width // 2
                out["cmp_carry"] = (lhs_b[:h] + rhs_b[:h])[h]
                out["cmp_lhs"], out["cmp_rhs"] = lhs_b[h:], rhs_b[h:]
                out["ccode"] = ccode
            else:
                nonneg = (lhs_b + rhs_b)[width]
                out["spike"] = Mux(c1, c0, ~(nonneg ^ c0))
            if cfg.reset == "zero":
                del out["theta"]
        if self._split_cmp and j == C + 1:
            # The high half's chain, with the low half's carry as its carry in.
            lhs_h, rhs_h = out.pop("cmp_lhs"), out.pop("cmp_rhs")
            ccode = out.pop("ccode")
            c0, c1 = ~ccode[0], ccode[1]
            nonneg = (lhs_h + rhs_h + out.pop("cmp_carry"))[len(lhs_h)]
            out["spike"] = Mux(c1, c0, ~(nonneg ^ c0))
        if j == L or (C + int(self._split_cmp) < j == L - 1):
            if "v_new" not in out:
                if cfg.reset == "zero":
                    v_new = Mux(out["spike"], 0, out["v_pre"])
                else:
                    v_new = Mux(out["spike"], _saturate(out["v_pre"] - out.pop("theta"),
                                                        cfg.membrane), out["v_pre"])
                out["v_new"] = v_new
            if j == L:
                out = {"v_new": out["v_new"]}
        return out

    def _elaborate_neuron_thresholds(self, m, en, step, k, last, thr_layout):
        """One threshold memory per lane (address ``k``, neurons ``p, p + P, ...``) with its
        load port; returns each lane's read data."""
        cfg = self._config
        P, N, B = self._lanes, cfg.neurons, self._beats
        load = self.load_threshold
        if P & (P - 1) == 0:
            load_lane = load.payload.index[:ceil_log2(P)]
            load_addr = load.payload.index[ceil_log2(P):]
        else:
            load_lane = load.payload.index % P
            load_addr = load.payload.index // P
        # With the credit flow and registered outputs the load is registered too (its
        # decode and fan-out to every lane's block RAM write port was the ECP5 critical
        # path at 16 lanes once the pipeline enable was gone): written one clock late, and
        # a read of that address at that edge takes the word from a bypass register, one
        # register later than without registered outputs (the RAM's output register).
        late_load = self._outreg and self._flow == "credit"
        if not self._outreg or late_load:
            hit, bypass, pend = self._threshold_bypass(m, en, step, k, last, load_lane,
                                                       load_addr, thr_layout)
        if late_load:
            hit2 = Signal(P, name="thr_hit2")
            bypass2 = Signal(thr_layout, name="thr_bypass2")
            m.d.sync += [hit2.eq(hit), bypass2.eq(bypass)]
        def pending_port(p, rd, wr, hit_p, word_p):
            # A port written from the pending load, its read data replaced by the bypass
            # word when the read collided with that write.
            m.d.comb += [rd.addr.eq(k), rd.en.eq(en),
                         wr.addr.eq(pend["addr"]), wr.data.eq(pend["data"]),
                         wr.en.eq(pend["we"][p])]
            word = Signal(thr_layout, name=f"threshold_{p}_word")
            m.d.comb += word.eq(Mux(hit_p, word_p, rd.data))
            return word

        thr_data = []
        for p in range(P):
            init = []
            for kk in range(B):
                i = kk * P + p
                if i < N:
                    theta_i = int(self._thresholds.theta_q[i])
                    code_i = int(self._thresholds.compare[i])
                    if self._fold_stored:
                        code_i = self._stored_compare(theta_i, code_i)
                    init.append({"theta": theta_i, "compare": int(code_i)})
                else:
                    init.append({"theta": 0, "compare": int(Compare.NEVER)})
            if self._outreg:
                mem = self._registered(thr_layout, _depth(B), init)
                rd, wr = mem.read[0], mem.write
                m.submodules[f"threshold_{p}"] = mem
                if late_load:
                    thr_data.append(pending_port(p, rd, wr, hit2[p], bypass2))
                    continue
                m.d.comb += [
                    rd.addr.eq(k), rd.en.eq(en),
                    wr.addr.eq(load_addr),
                    wr.data.theta.eq(load.payload.theta),
                    wr.data.compare.eq(load.payload.compare),
                    wr.en.eq(load.valid & (load_lane == p) & (load.payload.index < N)),
                ]
                thr_data.append(rd.data)
                continue
            # Collisions are handled here (the write one clock late, the bypass), so
            # Yosys need not emulate the old-data read.
            mem = memory.Memory(shape=thr_layout, depth=_depth(B), init=init,
                                attrs=NO_RW_CHECK)
            m.submodules[f"threshold_{p}"] = mem
            rd = _sync_read(m, mem, f"threshold_{p}")
            wr = mem.write_port()
            thr_data.append(pending_port(p, rd, wr, hit[p], bypass))
        return thr_data

    def _channel_groups(self, m, take, last, cs, name):
        """Lanes that see the same channel in every beat, each group with a channel counter
        (``ch``, the channel of the group's first lane in the current beat); returns
        ``[(ch, lanes)]``."""
        P, B = self._lanes, self._beats
        groups = {}
        for p in range(P):
            seq = tuple((kk * P + p) // cs for kk in range(B))
            groups.setdefault(seq, []).append(p)
        q, r = divmod(P, cs)
        ch_max = (B * P - 1) // cs
        out = []
        for g, members in enumerate(groups.values()):
            rep = members[0]
            # At least 1 bit each (a 0-bit signal becomes a ``[-1:0]`` vector in Verilog).
            ch = Signal(range(max(2, ch_max + 1)), init=rep // cs, name=f"{name}_ch{g}")
            pos = Signal(range(max(2, cs)), init=rep % cs, name=f"{name}_pos{g}")
            with m.If(self.clear | (take & last)):
                m.d.sync += [ch.eq(rep // cs), pos.eq(rep % cs)]
            with m.Elif(take):
                nxt = pos + r
                carry = nxt >= cs
                m.d.sync += [
                    pos.eq(Mux(carry, nxt - cs, nxt)),
                    ch.eq(ch + q + carry),
                ]
            out.append((ch, members))
        return out

    def _elaborate_channel_thresholds(self, m, en, take, last, thr_layout):
        """The per-channel comparator table (``threshold_channels``): one memory of a word
        per channel (words past the last channel, which only lanes past ``N`` address, are
        NEVER), one read port per group of lanes with the same channel sequence, read at
        the accept edge; no load port. Returns each lane's read data."""
        cfg = self._config
        C, N = self._thr_channels, cfg.neurons
        cs = N // C
        groups = self._channel_groups(m, take, last, cs, "thr")
        depth = _depth((self._beats * self._lanes - 1) // cs + 1)
        init = []
        for c in range(depth):
            if c < C:
                theta_c = int(self._thresholds.theta_q[c * cs])
                code_c = int(self._thresholds.compare[c * cs])
                if self._fold_stored:
                    code_c = self._stored_compare(theta_c, code_c)
                init.append({"theta": theta_c, "compare": int(code_c)})
            else:
                init.append({"theta": 0, "compare": int(Compare.NEVER)})
        if self._outreg:
            # Never written: no read-during-write handling.
            mem = self._registered(thr_layout, depth, init, read_ports=len(groups),
                                   collisions=False)
        else:
            mem = memory.Memory(shape=thr_layout, depth=depth, init=init)
        m.submodules.threshold = mem
        lane_data = [None] * self._lanes
        for g, (ch, members) in enumerate(groups):
            rd = mem.read[g] if self._outreg else mem.read_port(domain="sync")
            m.d.comb += [rd.addr.eq(ch), rd.en.eq(en)]
            for p in members:
                lane_data[p] = rd.data
        return lane_data

    def _stored_compare(self, theta, compare):
        """The code the comparator uses for ``(theta, compare)``: NEVER where the
        comparison can never hold on a saturated membrane (GT at the membrane's top rail,
        LT at its bottom), else ``compare``. Works on ints and on Amaranth values."""
        if not self._rails:
            return compare
        fmt = self._config.membrane
        if isinstance(compare, int):
            if (compare == Compare.GT and theta == fmt.max_int) or \
                    (compare == Compare.LT and theta == fmt.min_int):
                return int(Compare.NEVER)
            return compare
        # Written bit by bit (GT = 00, LT = 01, NEVER = 10): three LUT levels, the two
        # 16-input rail tests, then one LUT per code bit.
        return self._fold_rails(*self._rail_tests(theta), compare)

    def _rail_tests(self, theta):
        """``(theta == top rail, theta == bottom rail)`` of the membrane format."""
        fmt = self._config.membrane
        return theta == fmt.max_int, theta == fmt.min_int

    @staticmethod
    def _fold_rails(at_max, at_min, compare):
        """The compare code with the rail tests folded in (one LUT per code bit)."""
        c0, c1 = compare[0], compare[1]
        return Cat(c0 & ~(at_min & ~c1), c1 | (at_max & ~c0) | (at_min & c0))

    def _v_new_from(self, j, lane):
        """The membrane a beat now in stage ``j`` will write (combinational copy)."""
        for s in range(j, self._latency + 1):
            lane = self._stage(s, lane)
        return lane["v_new"]

    @staticmethod
    def _register(m, en, values, name):
        """Pipeline registers for ``values``, loaded when ``en``; only ``valid`` is reset
        (data registers without reset map to plain flip-flops with clock enable)."""
        regs = {}
        for key, value in values.items():
            reg = Signal(value.shape(), name=f"{name}_{key}", reset_less=(key != "valid"))
            with m.If(en):
                m.d.sync += reg.eq(value)
            regs[key] = reg
        return regs

    # -- elaboration ---------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        P, N, B, T = self._lanes, cfg.neurons, self._beats, cfg.T
        L, U = self._latency, self._stage_use
        Bm, Bth = cfg.membrane.bits, cfg.threshold.bits

        # Pipeline enable and input handshake.
        credit = self._flow == "credit"
        out_valid = Signal()
        if credit:
            # No enable: every stage moves at every edge. The input is ready while fewer
            # than ``capacity`` beats are outstanding (a register: no path from
            # o_spikes.ready).
            en = Const(1, 1)
            occupancy = Signal(self._capacity, name="credit_occupancy")    # thermometer
            credit_ok = Signal(name="credit_ok")
            m.d.comb += self.i_current.ready.eq(credit_ok & ~self.clear)
        else:
            en = Signal()
            m.d.comb += [
                en.eq(~out_valid | self.o_spikes.ready),
                self.i_current.ready.eq(en & ~self.clear),
            ]
        take = Signal()
        m.d.comb += take.eq(self.i_current.valid & self.i_current.ready)

        # Accept-side state: the beat index and timestep of the next beat, and whether it
        # is the last beat of its timestep / in timestep 0. All four are registers whose
        # next values depend on registers only: the handshake (o_spikes.ready -> en ->
        # take) reaches them as a clock enable, never through their logic.
        k = Signal(_width(B))
        t = Signal(_width(T))
        last = Signal(init=int(B == 1))
        first = Signal(init=1)
        m.d.comb += self.t.eq(t)
        # Their clock enable, clear | take, written from the four inputs so that it is one
        # LUT (through en and take it was three: the iCE40 critical path at N = 1024).
        step = Signal()
        if credit:
            m.d.comb += step.eq(self.clear | (self.i_current.valid & credit_ok))
        else:
            m.d.comb += step.eq(self.clear | (self.i_current.valid
                                              & (~out_valid | self.o_spikes.ready)))
        # The flip-flops' synchronous reset: on iCE40 it acts only with the clock enable,
        # on ECP5 it has priority over it. Each form is written so that the reset maps to
        # the flip-flop's own (the other form costs a LUT between the enable and the
        # flip-flop: on ECP5 the critical path). The values are the same.
        ecp5 = self._reset_over_enable = getattr(platform, "family", None) == "ecp5"
        self._sign_bits_registered = ecp5
        # Every counter's next value written without a multiplexer that holds it (Yosys
        # would turn one into a second clock enable, a LUT after the first), so that all
        # four share the one-LUT enable ``step``.
        wrap = last & (t == T - 1)
        cleared = [k.eq(0), t.eq(0), last.eq(B == 1), first.eq(1)]
        advanced = [
            k.eq((k + 1)[:len(k)] & ~last.replicate(len(k))),
            t.eq((t + last)[:len(t)] & ~wrap.replicate(len(t))),
            last.eq(Mux(last, B == 1, k == B - 2)),
            first.eq(wrap | (first & ~last)),
        ]
        if ecp5:
            # clear as the reset outside the enable.
            with m.If(self.clear):
                m.d.sync += cleared
            with m.Elif(step):
                m.d.sync += advanced
        else:
            # clear as the reset inside the enable (the same next values: on iCE40 a
            # multiplexer holding ``t`` became a second clock enable ``step & (clear |
            # last)``, a LUT level on the 24-bit point's critical path).
            with m.If(step):
                with m.If(self.clear):
                    m.d.sync += cleared
                with m.Else():
                    m.d.sync += advanced

        # Threshold memories, one per lane, read at the accept edge.
        thr_layout = data.StructLayout({"theta": signed(Bth), "compare": unsigned(2)})
        if self._thr_channels is not None:
            thr_data = self._elaborate_channel_thresholds(m, en, take, last, thr_layout)
        else:
            thr_data = self._elaborate_neuron_thresholds(m, en, step, k, last, thr_layout)

        # Affine table: one read port per group of lanes sharing a channel sequence.
        aff_data = [None] * P
        if cfg.affine:
            aff_data = self._elaborate_affine(m, en, take, last, t)

        # Stage 1 registers (the accept stage's values); the table memories' data joins
        # in stage 1 (stage 2 with registered memory outputs).
        off = self._off
        meta0 = {"valid": take, "k": k, "t": t, "first": first, "last": last}
        lanes0 = [{"c": self.i_current.payload[p]} for p in range(P)]
        metas = {1: self._register(m, en, meta0, "s1")}
        lanes = {1: [self._register(m, en, lanes0[p], f"s1_l{p}") for p in range(P)]}

        def join_tables(j):
            for p in range(P):
                lanes[j][p].update({"theta": thr_data[p].theta, "compare": thr_data[p].compare})
                if cfg.affine:
                    lanes[j][p].update({"a": aff_data[p].a, "b": aff_data[p].b})

        # Membrane memories: read at the edge entering stage U - lag + 1 (address from
        # stage U - lag, 0 = the accept stage), the data used in stage U (with registered
        # outputs through one more register, at whose input t == 0 zeroes it when nothing
        # is forwarded: a synchronous reset), written from stage L.
        lag = self._mem_lag
        mem_rd, mem_wr = [], []
        for p in range(P):
            if self._outreg:
                mem = self._registered(signed(Bm), _depth(B), [], collisions=False)
                m.submodules[f"membrane_{p}"] = mem
                mem_rd.append(mem.read[0])
                mem_wr.append(mem.write)
            else:
                mem = memory.Memory(shape=signed(Bm), depth=_depth(B), init=[],
                                    attrs=NO_RW_CHECK)
                m.submodules[f"membrane_{p}"] = mem
                mem_rd.append(_sync_read(m, mem, f"membrane_{p}"))
                mem_wr.append(mem.write_port())

        # Forwarding sources: stage j (U < j <= L + lag; L + 1 .. L + lag are write-back
        # shadows) can hold the producer of the membrane a beat in stage U needs only if
        # j - U >= B (see the module docstring).
        fwd_stages = [j for j in range(U + 1, L + lag + 1) if j - U >= B] if T > 1 else []
        v_reg = True
        zero_early = v_reg and not fwd_stages

        src = U - lag
        v_mem = [None] * P
        for j in range(1, L + 1):
            if j == 1 + off:
                join_tables(j)
            if j == src:
                addr = metas[src]["k"]
            if v_reg and j == U - 1:
                for p in range(P):
                    if zero_early:
                        data_p, first_j = mem_rd[p].data, metas[j]["first"]
                        if ecp5:
                            # A mask, not a reset inside the enable (see above).
                            lanes[j][p]["v_mem"] = (
                                data_p.as_unsigned() & ~first_j.replicate(Bm)).as_signed()
                        else:
                            lanes[j][p]["v_mem"] = Mux(first_j, 0, data_p)
                    else:
                        lanes[j][p]["v_mem"] = mem_rd[p].data
            if j == U:
                for p in range(P):
                    v_mem[p] = lanes[U][p].pop("v_mem") if v_reg else mem_rd[p].data
                    lanes[U][p]["v"] = Signal(signed(Bm), name=f"s{U}_l{p}_v")
            if j < L:
                nxt = [self._stage(j, dict(lanes[j][p])) for p in range(P)]
                metas[j + 1] = self._register(m, en, metas[j], f"s{j + 1}")
                lanes[j + 1] = [self._register(m, en, nxt[p], f"s{j + 1}_l{p}")
                                for p in range(P)]
        if src == 0:
            addr = k
        m.d.comb += [rd.addr.eq(addr) for rd in mem_rd]
        m.d.comb += [rd.en.eq(en) for rd in mem_rd]

        # Last stage: reset, write back, output.
        last_meta, last_lanes = metas[L], lanes[L]
        v_new = [self._stage(L, dict(last_lanes[p]))["v_new"] for p in range(P)]
        write = Signal()
        m.d.comb += write.eq(en & last_meta["valid"])
        for p in range(P):
            m.d.comb += [
                mem_wr[p].addr.eq(last_meta["k"]),
                mem_wr[p].data.eq(v_new[p]),
                mem_wr[p].en.eq(write),
            ]
        # Write-back shadows: the writes of the last ``lag`` enabled edges, which a beat now
        # in stage U read too early to see in the memory.
        shadow = {"valid": write, "k": last_meta["k"]}
        shadow_lanes = [{"v_new": v_new[p]} for p in range(P)]
        for j in range(L + 1, L + lag + 1):
            if any(s >= j for s in fwd_stages):
                metas[j] = self._register(m, en, shadow, f"wb{j - L}")
                lanes[j] = [self._register(m, en, shadow_lanes[p], f"wb{j - L}_l{p}")
                            for p in range(P)]
                shadow, shadow_lanes = metas[j], lanes[j]
        self._drive_forwarding(m, metas, lanes, v_mem, fwd_stages, zeroed=zero_early)

        # Output: straight from the last stage's registers (credit flow: through the output
        # queue); lanes past N read as zero.
        valid_last = N - (B - 1) * P
        if credit:
            payload = Signal(self.o_spikes.payload.shape(), name="queue_w_data")
            self._elaborate_queue(m, payload, last_meta["valid"], take, occupancy, credit_ok)
        else:
            payload = self.o_spikes.payload
            m.d.comb += [
                out_valid.eq(last_meta["valid"]),
                self.o_spikes.valid.eq(out_valid),
            ]
        m.d.comb += [
            payload.t.eq(last_meta["t"]),
            payload.beat.eq(last_meta["k"]),
            payload.last.eq(last_meta["last"]),
        ]
        for p in range(P):
            # Padding entries are NEVER and cannot be loaded, so their spikes are already 0.
            spike, v_pre = last_lanes[p]["spike"], last_lanes[p]["v_pre"]
            if p >= valid_last:
                v_pre = Mux(last_meta["last"], 0, v_pre)
            m.d.comb += [payload.spikes[p].eq(spike), payload.membrane[p].eq(v_pre)]
        return m

    def _elaborate_queue(self, m, w_data, w_en, take, occupancy, credit_ok):
        """The credit flow's output queue (``o_spikes`` is its head) and credit counter.

        The last stage's beat is pushed at every edge it is valid; the queue holds
        ``capacity`` beats and at most ``capacity`` are outstanding, so a push always finds
        room. Written without carry chains (a ``+ 1 - 1`` counter and its comparison were
        the critical path, 6 ns on ECP5): ``occupancy`` and the queue's fill are
        thermometer codes (bit ``i`` = "more than ``i``"; one LUT per bit), ``credit_ok`` is
        ``occupancy``'s top bit inverted and ``o_spikes.valid`` the fill's bit 0 (both
        registers), and the queue's read and write pointers count modulo a power of two,
        bit by bit (a table of next values gave a clock enable and a reset of their own,
        the ECP5 critical path at 2 lanes). The storage is a memory with an asynchronous read port (ECP5: LUT RAM).
        """
        cap = self._capacity
        out = self.o_spikes
        depth = credit_queue_depth(self._latency)
        store = memory.Memory(shape=len(w_data.as_value()), depth=depth, init=[])
        m.submodules.out_queue = store
        wr, rd = store.write_port(), store.read_port(domain="comb")
        wptr = Signal(range(depth), name="out_queue_wptr")
        rptr = Signal(range(depth), name="out_queue_rptr")
        fill = Signal(cap, name="out_queue_fill")
        pop = Signal(name="out_queue_pop")
        m.d.comb += [
            wr.addr.eq(wptr), wr.data.eq(w_data), wr.en.eq(w_en),
            rd.addr.eq(rptr),
            out.payload.eq(rd.data),
            out.valid.eq(fill[0]),
            pop.eq(fill[0] & out.ready),
            credit_ok.eq(~occupancy[cap - 1]),
        ]
        for ptr, move in ((wptr, w_en), (rptr, pop)):
            # ptr + move, bit by bit (one LUT per bit: no carry chain, no clock enable).
            m.d.sync += [ptr[i].eq(ptr[i] ^ (move & ptr[:i].all())) if i else
                         ptr[0].eq(ptr[0] ^ move) for i in range(len(ptr))]
        self._thermometer(m, fill, w_en, pop)
        self._thermometer(m, occupancy, take, pop)

    @staticmethod
    def _thermometer(m, code, up, down):
        """Step the thermometer code ``code`` (bit ``i``: the count exceeds ``i``) up by one on
        ``up & ~down``, down by one on ``down & ~up``: one LUT per bit."""
        n = len(code)
        inc, dec = Signal(name=f"{code.name}_inc"), Signal(name=f"{code.name}_dec")
        m.d.comb += [inc.eq(up & ~down), dec.eq(down & ~up)]
        for i in range(n):
            below = code[i - 1] if i else Const(1, 1)
            above = code[i + 1] if i + 1 < n else Const(0, 1)
            m.d.sync += code[i].eq(Mux(inc, below, Mux(dec, above, code[i])))

    def _threshold_bypass(self, m, en, step, k, last, load_lane, load_addr, layout):
        """Threshold loads for inferred memories: registered, written one clock after their
        transfer, and bypassed to a read of the same address at that edge.

        A load transferred at edge ``c`` must reach exactly the beats accepted after ``c``.
        The memory is written at ``c + 1``, so the read at ``c`` (the beat accepted at
        ``c``) returns the old word, and a read at ``c + 1`` of the written address (a
        collision, whose data the block RAM does not define) takes the loaded word from
        ``bypass`` instead (``hit[p]``). Both are registers loaded at enabled edges, so
        that the word in stage 1 stays put during a stall.

        The address match for the read at ``c + 1`` (``k`` after edge ``c``) is decided
        from registers only: at edge ``c`` the load's address is compared with ``k``,
        ``k + 1`` and 0 and the counter's move at that edge is registered, so that neither
        the fan-out of ``k`` nor the handshake reaches the match through more than a few
        LUTs. Returns ``(hit, bypass, pend)``; ``pend`` drives the write ports with the
        rails folded into the code (``_fold_stored``: both users of this path store it).
        """
        P, N = self._lanes, self._config.neurons
        load = self.load_threshold
        pend = {"addr": Signal(len(load_addr), name="thr_pend_addr"),
                "data": Signal(layout, name="thr_pend_data"),
                "we": Signal(P, name="thr_pend_we")}
        eq_k, eq_k1, eq_0 = (Signal(name=f"thr_pend_eq_{n}") for n in ("k", "k1", "0"))
        to_zero, to_next = Signal(name="thr_pend_to_zero"), Signal(name="thr_pend_to_next")
        ok = load.valid & (load.payload.index < N)
        # k + 1 as a counter of its own (an adder before the comparator was the iCE40
        # critical path).
        k1 = Signal(len(k) + 1, init=1, name="thr_k1")
        with m.If(step):
            m.d.sync += k1.eq(Mux(self.clear | last, 1, k1 + 1))
        # A theta wider than 16 bits has its rail tests registered with the load and
        # folded into the code after the register, on the way to the write port and the
        # bypass: the load payload then sees only the tests' AND trees (three LUT levels
        # at 26 bits), not the fold behind them (five levels: the 24-bit iCE40 point's
        # critical path). Up to 16 bits the fold stays before the register (three levels
        # in all; the split placed the 16-bit points' handshake paths worse).
        m.d.sync += pend["addr"].eq(load_addr)
        if self._rails and len(load.payload.theta) > 16:
            raw_code = Signal(2, name="thr_pend_code")
            at_max, at_min = Signal(name="thr_pend_at_max"), Signal(name="thr_pend_at_min")
            theta_reg = Signal(pend["data"].theta.shape(), name="thr_pend_theta")
            tests = self._rail_tests(load.payload.theta)
            m.d.sync += [at_max.eq(tests[0]), at_min.eq(tests[1]),
                         theta_reg.eq(load.payload.theta), raw_code.eq(load.payload.compare)]
            m.d.comb += [pend["data"].theta.eq(theta_reg),
                         pend["data"].compare.eq(self._fold_rails(at_max, at_min, raw_code))]
        else:
            m.d.sync += [
                pend["data"].theta.eq(load.payload.theta),
                pend["data"].compare.eq(self._stored_compare(load.payload.theta,
                                                             load.payload.compare)),
            ]
        m.d.sync += [
            pend["we"].eq(Cat(ok & (load_lane == p) for p in range(P))),
            eq_k.eq(load_addr == k), eq_k1.eq(load_addr == k1), eq_0.eq(load_addr == 0),
            # Where k goes at this edge (the accept-side update in elaborate).
            to_zero.eq(step & (self.clear | last)),
            to_next.eq(step & ~self.clear & ~last),
        ]
        addr_hit = Signal(name="thr_pend_hit")
        m.d.comb += addr_hit.eq(Mux(to_zero, eq_0, Mux(to_next, eq_k1, eq_k)))
        hit = Signal(P, name="thr_hit")
        bypass = Signal(layout, name="thr_bypass")
        with m.If(en):
            m.d.sync += [hit.eq(pend["we"] & addr_hit.replicate(P)), bypass.eq(pend["data"])]
        return hit, bypass, pend

    def _registered(self, shape, depth, init, read_ports=1, collisions=True):
        """With ``memory_outreg``: a :class:`hdl.bram.RegisteredMemory` (read latency 2;
        its ports have the ``addr``/``en``/``data`` of a Memory's ports)."""
        return RegisteredMemory(shape=shape, depth=depth, init=init, read_ports=read_ports,
                                implementation=self._bram, collisions=collisions)

    def _drive_forwarding(self, m, metas, lanes, v_mem, fwd_stages, zeroed=False):
        """Drive stage U's membrane: zero at ``t == 0``, else the youngest pending write,
        else the (registered) memory data."""
        U = self._stage_use
        for p in range(self._lanes):
            v = v_mem[p]
            # Apply the oldest producer first so that the youngest match wins.
            for s in reversed(fwd_stages):
                meta = metas[s]
                match = meta["valid"] & (meta["k"] == metas[U]["k"])
                if s > self._latency:
                    value = lanes[s][p]["v_new"]
                else:
                    value = self._v_new_from(s, dict(lanes[s][p]))
                v = Mux(match, value, v)
            m.d.comb += lanes[U][p]["v"].eq(v if zeroed else Mux(metas[U]["first"], 0, v))

    def _elaborate_affine(self, m, en, take, last, t):
        """Affine memory and per-group channel counters; returns each lane's read data."""
        cfg = self._config
        P, T, C = self._lanes, cfg.T, cfg.channels
        cs = cfg.channel_size
        cbits = ceil_log2(C)
        layout = data.StructLayout({"a": signed(cfg.scale.bits), "b": signed(cfg.membrane.bits)})
        init = [{"a": 0, "b": 0} for _ in range(T << cbits)]
        for tt in range(T):
            for c in range(C):
                init[(tt << cbits) | c] = {"a": int(self._affine.a_q[tt, c]),
                                            "b": int(self._affine.b_q[tt, c])}
        # Lanes with the same channel in every beat share one read port.
        groups = self._channel_groups(m, take, last, cs, "aff")
        if self._outreg:
            mem = self._registered(layout, _depth(T << cbits), init, read_ports=len(groups))
        else:
            mem = memory.Memory(shape=layout, depth=_depth(T << cbits), init=init)
        m.submodules.affine = mem

        if self._outreg:
            wr = mem.write
        else:
            wr = mem.write_port()
        load = self.load_affine
        m.d.comb += [
            wr.addr.eq(Cat(load.payload.channel[:cbits], load.payload.t)),
            wr.data.a.eq(load.payload.a),
            wr.data.b.eq(load.payload.b),
            wr.en.eq(load.valid & (load.payload.channel < C) & (load.payload.t < T)),
        ]

        lane_data = [None] * P
        for g, (ch, members) in enumerate(groups):
            if self._outreg:
                rd = mem.read[g]
            else:
                rd = mem.read_port(domain="sync")
            m.d.comb += [rd.addr.eq(Cat(ch[:cbits], t)), rd.en.eq(en)]
            for p in members:
                lane_data[p] = rd.data
        return lane_data
