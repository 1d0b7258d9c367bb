"""A dense synapse stage: weights in BRAM, accumulation driven by the active inputs only.

The arithmetic is exactly the "synapse" and "current" rows of the integer-model table in
``golden/network.py`` (:class:`golden.network.IntegerLayer`): ``acc[i] = bias_q[i] +
sum_j W_q[i, j] * s[j]`` over the inputs ``j`` with ``s[j] != 0`` (spikes: ``W_q[i, j]``
is added, no multiplier; the analog first layer: ``W_q[i, j] * x_q[j]``; counts ``n[j]``
after a sum pooling layer: ``W_q[i, j] * n[j]``, the analog path without the replay), in
``layer.acc_bits`` bits (which no sum can overflow), then ``c_q = sat_c(acc >> shift)``.
Skipping the zero inputs is exact: they add nothing.

Dataflow (``P`` = ``lanes`` output neurons per beat, ``Q`` = ``in_lanes`` inputs per input
beat, ``B = ceil(n_out / P)`` output beats per vector):

1. **Ingest.** Input beats (``Q`` spikes, or ``Q`` pixels ``x_q``) are turned into a list
   of the active inputs -- ``j`` (spikes) or ``(j, x_q[j])`` (pixels) -- one entry per
   cycle by a priority encoder (a beat with at most one active input takes one cycle). The
   list memory has two banks: while the engine reads the list of one input vector, the
   next vector fills the other bank. A bank is handed to the engine after the vector's
   last input beat (counted: ``ceil(n_in / Q)`` beats per vector).
2. **Engine** (output-stationary): for each output beat ``k`` and each list entry ``j``
   it reads the memory word ``W[k, j]`` holding the ``P`` weights ``W_q[k*P + p, j]`` and
   adds them (times ``x_q[j]`` for pixels) into ``P`` accumulators, which start from the
   beat's biases (a second, small memory). One list entry per cycle, no bubble between
   beats: a vector with ``a`` active inputs takes ``B * max(1, a)`` cycles.
3. **Replay** (analog input only, ``T > 1``). With direct encoding the input is the same
   at every timestep, so the first layer's currents are computed once per sample and the
   ``B`` beats are emitted ``T`` times from a two-bank buffer (the next sample is computed
   into the other bank meanwhile).

Engine pipeline (stall-all: every register and memory read port moves on
``en = ~out_valid | out_ready`` of the engine's output register):

=======  ==================================================================  ===========
stage    work                                                                present
=======  ==================================================================  ===========
S0       issue ``(k, e)``: list memory address                              always
S1       list entry -> weight address ``k * n_in + j`` (the zero word for    always
         an empty list); bias address ``k``
S2       weight word (``P`` weights) arrives; ``x_q`` registered alongside   always
S3       product ``W * x_q`` registered (maps to DSP blocks)                 analog
A        ``acc = (first ? bias : acc) + addend``                              always
O        ``c_q = sat_c(acc >> shift)``: the output register                   always
=======  ==================================================================  ===========

Memories (``amaranth.lib.memory.Memory``): weights ``B * n_in + 1`` words of ``P * Bw``
bits (word ``k * n_in + j``, lane ``p`` at bits ``[p*Bw, (p+1)*Bw)``, lanes past ``n_out``
zero; the last word all zero), initialised from ``W_q``; biases ``B`` words of ``P * Bb``
bits; the active list ``2 * 2**ceil(log2 n_in)`` entries; the replay buffer
``2 * 2**ceil(log2 B)`` words of ``P * Bc`` bits. :func:`hdl.plan.dense_plan` computes the
same list without elaborating (``tests/test_hdl_plan.py`` compares the two).

Registered memory outputs (``memory_outreg=True``, the pipelined stage): every memory
becomes an :class:`hdl.bram.RegisteredMemory` (read latency 2; on ECP5 the block RAM
primitive's own output register for memories at least :data:`hdl.plan.BRAM_MIN_DEPTH`
deep, an inferred memory plus a fabric register for shallower ones), so no block RAM
output drives logic, and every long path of the ingest and the engine is cut by a register
(what an ECP5 needs for >= 150 MHz):

=======  ==================================================================  ===========
stage    work                                                                present
=======  ==================================================================  ===========
S0       issue ``(k, e)``: list memory address                              always
S1, S2   list entry read (RAM read register, output register)                always
S3       weight address ``k * n_in + j`` registered (any word when empty)   always
S4, S5   weight word read (RAM read register, output register)               always
S6       spikes: weight word in a fabric register (zero for an empty list)  always
         analog: weight word and ``x_q`` into the multiplier's input registers
S7       product ``W * x_q`` in the multiplier's output register             analog
A, O     accumulate; requantize (as above)                                  always
=======  ==================================================================  ===========

The registered mode's multiply (S6, S7) is one :class:`hdl.dsp.PipelinedMultiply` per lane:
on ECP5 a ``MULT18X18D`` with its input and output registers (clock enable ``en``), so no
fabric register feeds or takes the product (operands that do not fit 18 x 18 bits, and
every other platform, keep the two stages in fabric registers: same cycles).

The ingest isolates the lowest pending input as a one-hot (``pmask & -pmask``) encoded by
OR trees, keeps "at most one input left" / "one left" as registers computed one write
ahead (so ``i_*.ready`` is a gate from registers), and registers the list write; a bank
is handed to the engine one cycle after its last write. The weight memory has no zero word
(``max(2, B * n_in)`` words: a zero word would cost a second bank of block RAM when
``B * n_in`` is a multiple of 1024); an empty list's addend is forced to zero instead (its
``x_q``, or for spikes the weights, through a multiplexer). The replay buffer's reader
holds one beat in the RAM's read register. Values and the cycle counts per vector are
unchanged; :attr:`DenseStage.latency` grows by 5 (9 spike / 10 analog: the four register
stages above and the ingest's hand-over cycle, see :func:`hdl.plan.dense_engine_depth`).

The credit flow (``flow="credit"``; :func:`boards.top.flow_for` picks it for ECP5 builds).
In the stall flow ``o_current.ready`` reaches every engine register's clock enable, every
memory's read enable and the issue logic: a fan-out of thousands across a wide stage,
which limits a whole network on ECP5 (README). In the credit flow the engine has no
enable at all: it runs free, and ``issue_gate`` holds the issue instead, from registers:

* without the replay, the O stage writes the requantized beat into an output queue of
  :data:`hdl.plan.CREDIT_QUEUE_DEPTH` words (LUT RAM with an asynchronous read; on ECP5
  ``DPR16X4``), which feeds the registered ``o_current``. A credit is one free queue word:
  a beat's last entry issues only while a credit is left (``queue_credits``, a
  thermometer code, and the credit taken a cycle before: registers), and the credit
  returns when its word moves into the output register. :attr:`DenseStage.latency` is
  one more (the queue's output register);
* with the replay (analog, ``T > 1``) the replay writer is always ready; the engine claims
  the replay bank of a vector before that vector's first entry issues (the bank is free,
  or the engine holds it already), and the reader frees it after the ``T``-th pass. No
  latency changes.

Values are the same in both flows; so are the cycle counts while ``o_current.ready``
stays high (the queue's 16 words cover the credits' round trip), apart from the queue's
one cycle. Under backpressure the credit flow's engine also runs ahead into the queue.

On an iCE40 UltraPlus (UP5K) the registered weight memory goes to ``SB_SPRAM256KA``
single-port RAMs when at least :data:`hdl.bram.SPRAM_MIN_DEPTH` words deep (the
``spram`` rule of :mod:`hdl.bram`): the engine only reads it. SPRAM has no initial
contents in the bitstream: the simulation model holds ``W_q``, silicon needs the words
written after configuration. The weight memory's write port is the stage's
``weight_write`` port (word ``a`` of :func:`weight_memory_words`, the memory's
initial contents, at address ``a``): :class:`hdl.network.SpikingNetwork` routes it to its
``load_weights`` port and :class:`hdl.host_link.NetworkLink` drives it from LOAD_WEIGHTS
frames. Writes are meant for an idle stage (no vector in flight): a SPRAM write takes
the shared address port for that cycle (see :mod:`hdl.bram`).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.network import IntegerLayer

from .bram import RegisteredMemory
from .dsp import PipelinedMultiply
from .plan import BRAM_MIN_DEPTH, CREDIT_QUEUE_DEPTH, dense_engine_depth, input_value_bits

#: Engine flows (:attr:`DenseStage.flow`).
FLOWS = ("stall", "credit")

__all__ = ["DenseStage", "FLOWS", "current_layout", "weight_words", "weight_memory_words",
           "weights_from_memory_words"]


def _width(count):
    """Bits of a counter/index over ``count`` values (at least one bit)."""
    return max(1, ceil_log2(count))


def _clamp(value, fmt):
    """``value`` clamped to the signed format ``fmt`` (combinational, never wraps).

    It fits exactly when the bits from ``fmt.bits - 1`` up are all copies of the sign: a
    reduction instead of two magnitude comparators (cheaper in LUTs, same result)."""
    width = value.shape().width
    if width <= fmt.bits:
        return value
    top = value[fmt.bits - 1:]
    fits = (top == 0) | (top == (1 << (width - fmt.bits + 1)) - 1)
    rail = Mux(value[-1], fmt.min_int, fmt.max_int)
    return Mux(fits, value[:fmt.bits], rail)[:fmt.bits].as_signed()


def _pack(words, bits):
    """Pack rows of signed integers into unsigned words, element ``p`` at ``p * bits``."""
    words = np.asarray(words, dtype=np.int64)
    mask = (1 << bits) - 1
    out = []
    for row in words:
        value = 0
        for p, v in enumerate(row.tolist()):
            value |= (int(v) & mask) << (p * bits)
        out.append(value)
    return out


def weight_words(layer, lanes):
    """Weight memory contents ``(B * n_in, P)``: word ``k * n_in + j`` holds
    ``W_q[k*P + p, j]`` in lane ``p`` (0 past ``n_out``)."""
    n_out, n_in = layer.W_q.shape
    B = -(-n_out // lanes)
    W = np.zeros((B * lanes, n_in), dtype=np.int64)
    W[:n_out] = np.asarray(layer.W_q, dtype=np.int64)
    return W.reshape(B, lanes, n_in).transpose(0, 2, 1).reshape(B * n_in, lanes)


def weight_memory_words(layer, lanes):
    """The weight memory's loadable words as unsigned integers (``B * n_in`` of them, ``P *
    Bw`` bits each): :func:`weight_words` packed lane ``p`` at bits ``[p*Bw, (p+1)*Bw)``.
    They are the memory's initial contents and what a host writes into it (SPRAM)."""
    return _pack(weight_words(layer, lanes), layer.formats.weight.bits)


def weights_from_memory_words(words, n_out, n_in, lanes, bits):
    """The inverse of :func:`weight_memory_words`: the ``(n_out, n_in)`` signed weights that
    the ``B * n_in`` packed words (``lanes * bits`` bits each) hold (what a host wrote into
    a weight memory)."""
    B = -(-n_out // lanes)
    mask = (1 << bits) - 1
    w = np.array([[(int(v) >> (p * bits)) & mask for p in range(lanes)] for v in words],
                 dtype=np.int64).reshape(B * n_in, lanes)
    w = np.where(w >> (bits - 1), w - (1 << bits), w)
    return w.reshape(B, n_in, lanes).transpose(0, 2, 1).reshape(B * lanes, n_in)[:n_out]


def current_layout(layer, lanes):
    """Payload layout of the output stream: ``P`` currents (``LIFArray.i_current``'s)."""
    return data.ArrayLayout(signed(layer.formats.current.bits), lanes)


def _positive(name, value, maximum=None, what=""):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} {value} exceeds {what} {maximum}; use at most {maximum}")
    return int(value)


class _Mem:
    """A memory with one synchronous read port and one write port, plain
    (:class:`amaranth.lib.memory.Memory`, read latency 1) or with registered read data
    (:class:`hdl.bram.RegisteredMemory`, read latency 2; block RAM primitives with their
    output register on ECP5 for memories at least ``BRAM_MIN_DEPTH`` deep, inferred
    memory + a fabric register for shallower ones)."""

    def __init__(self, m, name, shape, depth, init, outreg, spram=False):
        if outreg:
            impl = "auto" if depth >= BRAM_MIN_DEPTH else "memory"
            mem = RegisteredMemory(shape=shape, depth=depth, init=init, implementation=impl,
                                   spram=spram)
            self.read, self.write = mem.read[0], mem.write
        else:
            mem = memory.Memory(shape=shape, depth=depth, init=init)
            self.read, self.write = mem.read_port(domain="sync"), mem.write_port()
        m.submodules[name] = mem


class DenseStage(wiring.Component):
    """Compute one dense layer's currents from a stream of inputs, bit-exactly.

    Parameters
    ----------
    layer : golden.network.IntegerLayer
        Integer weights, biases and formats. ``layer.input_bits`` set means the analog
        first layer (multiply-accumulate), ``None`` spiking inputs (add only).
    lanes : int
        ``P``: output neurons per beat (weights read per cycle), ``1 <= P <= n_out``.
    in_lanes : int
        ``Q``: inputs per input beat, ``1 <= Q <= n_in``; for spiking inputs the previous
        LIF array's lane count.
    T : int
        Timesteps per sample: the analog layer emits each computed vector ``T`` times.
        Ignored for spiking inputs (one output vector per input vector).
    memory_outreg : bool
        Register every memory's read data once more (see the module docstring). Default
        ``False``: the original pipeline, unchanged.
    flow : str
        ``"stall"`` (the default: the engine waits on ``o_current.ready``) or ``"credit"``
        (the engine runs free; an output queue and credits, or the replay banks' claims).

    Attributes
    ----------
    i_spikes : In(stream.Signature(unsigned(Q)))
        Spiking input only: bit ``q`` of beat ``b`` is input ``b * Q + q`` (bits past
        ``n_in`` are ignored); ``ceil(n_in / Q)`` beats per timestep.
    i_pixels : In(stream.Signature(ArrayLayout(signed(Bx), Q)))
        Analog input only: ``x_q`` of inputs ``b * Q .. b * Q + Q - 1`` (format ``Fx``);
        ``ceil(n_in / Q)`` beats per sample.
    i_counts : In(stream.Signature(ArrayLayout(unsigned(count_bits(input_max)), Q)))
        Count input only (``layer.input_max > 1``, after a sum pooling layer): ``n`` in the
        same order, ``ceil(n_in / Q)`` beats per timestep (multiply path, no replay).
    o_current : Out(stream.Signature(ArrayLayout(signed(Bc), P)))
        ``c_q`` of neurons ``k * P .. k * P + P - 1`` (lanes past ``n_out`` are 0), beats
        ``k = 0 .. B - 1`` per timestep: ``LIFArray.i_current``'s layout. Registered.
    weight_write : In(Signature(addr, data, en))
        The weight memory's write port: word ``addr`` (``< weight_words``) becomes ``data``
        (``weight_width`` bits, :func:`weight_memory_words`' packing) at the clock edge
        while ``en`` is high. Tie ``en`` low when unused. Write only while the stage is
        idle (SPRAM shares its address port between the write and the engine's read).

    Combinational paths: none from input to output. ``i_*.ready`` comes from internal
    state only (it does not depend on ``i_*.valid``); ``o_current.valid``/``payload`` are
    registers (or the replay buffer's read register); ``o_current.ready`` reaches every
    pipeline enable (stall-all) in the stall flow, only the output queue's read side (or
    the replay reader) in the credit flow.

    Raises
    ------
    TypeError
        ``layer`` is not an ``IntegerLayer``.
    ValueError
        ``lanes``, ``in_lanes`` or ``T`` not positive integers in range; weights that do
        not fit the weight format; an unknown ``flow``.
    """

    def __init__(self, layer, lanes, *, in_lanes=1, T=1, memory_outreg=False, flow="stall"):
        if not isinstance(layer, IntegerLayer):
            raise TypeError(f"layer must be a golden.network.IntegerLayer, not {layer!r}")
        W_q = np.asarray(layer.W_q)
        if W_q.ndim != 2 or W_q.size == 0:
            raise ValueError(f"layer.W_q must be a non-empty (n_out, n_in) array, not shape "
                             f"{W_q.shape}")
        if not np.issubdtype(W_q.dtype, np.integer):
            raise ValueError(f"layer.W_q must hold integers, not {W_q.dtype}")
        fw = layer.formats.weight
        if np.any(fw.overflows(W_q)):
            i, j = (int(v) for v in np.argwhere(fw.overflows(W_q))[0])
            raise ValueError(f"layer.W_q[{i}, {j}] = {int(W_q[i, j])} does not fit the weight "
                             f"format {fw}")
        bias_q = np.asarray(layer.bias_q)
        if bias_q.shape != (layer.n_out,):
            raise ValueError(f"layer.bias_q must have shape ({layer.n_out},), not {bias_q.shape}")
        self._layer = layer
        self._lanes = _positive("lanes", lanes, layer.n_out, "the layer's neuron count")
        self._in_lanes = _positive("in_lanes", in_lanes, layer.n_in, "the layer's input count")
        self._T = _positive("T", T)
        if not isinstance(memory_outreg, (bool, np.bool_)):
            raise ValueError(f"memory_outreg must be True or False, not {memory_outreg!r}")
        self._outreg = bool(memory_outreg)
        if flow not in FLOWS:
            raise ValueError(f"flow must be one of {', '.join(map(repr, FLOWS))}, not {flow!r}")
        self._flow = flow
        self._analog = layer.input_bits is not None
        # Counts (after a sum pooling layer) take the analog multiply path, one vector per
        # timestep: the list keeps a value and the engine multiplies (self._mac).
        self._counts = not self._analog and int(getattr(layer, "input_max", 1)) > 1
        self._mac = self._analog or self._counts
        xbits = input_value_bits(layer)
        self._xshape = signed(xbits) if self._analog else unsigned(xbits)
        self._beats = -(-layer.n_out // self._lanes)
        self._in_beats = -(-layer.n_in // self._in_lanes)

        Q = self._in_lanes
        if self._analog:
            members = {"i_pixels": In(stream.Signature(
                data.ArrayLayout(signed(layer.input_bits), Q)))}
        elif self._counts:
            members = {"i_counts": In(stream.Signature(data.ArrayLayout(self._xshape, Q)))}
        else:
            members = {"i_spikes": In(stream.Signature(unsigned(Q)))}
        members["o_current"] = Out(stream.Signature(current_layout(layer, self._lanes)))
        # The weight memory: B * n_in words (plus the zero word of the plain pipeline).
        self._weight_depth = (max(2, self._beats * layer.n_in) if self._outreg
                              else self._beats * layer.n_in + 1)
        members["weight_write"] = In(wiring.Signature({
            "addr": Out(_width(self._weight_depth)),
            "data": Out(self._lanes * layer.formats.weight.bits), "en": Out(1)}))
        super().__init__(members)

    # -- read-only parameters --------------------------------------------------------------

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
    def T(self):
        return self._T

    @property
    def analog(self):
        """Whether the inputs are analog pixels (multiply-accumulate) rather than spikes."""
        return self._analog

    @property
    def beats(self):
        """Output beats per vector, ``ceil(n_out / P)``."""
        return self._beats

    @property
    def in_beats(self):
        """Input beats per vector, ``ceil(n_in / Q)``."""
        return self._in_beats

    @property
    def input(self):
        """The input stream port (``i_pixels``, ``i_counts`` or ``i_spikes``)."""
        return (self.i_pixels if self._analog else self.i_counts if self._counts
                else self.i_spikes)

    @property
    def counts(self):
        """Whether the inputs are counts from a sum pooling stage (``i_counts``)."""
        return self._counts

    @property
    def memory_outreg(self):
        """Whether every memory's read data passes an output register (read latency 2)."""
        return self._outreg

    @property
    def flow(self):
        """``"stall"`` (every engine register moves on ``~out_valid | o_current.ready``) or
        ``"credit"`` (the engine runs free; it issues a beat's last entry only with a free
        slot in its output queue or, with the replay, a free replay bank)."""
        return self._flow

    @property
    def replay(self):
        """Whether the stage replays each computed vector ``T`` times (analog, ``T > 1``)."""
        return self._analog and self._T > 1

    @property
    def weight_words(self):
        """Loadable words of the weight memory, ``B * n_in`` (``weight_write.addr`` below
        this)."""
        return self._beats * self._layer.n_in

    @property
    def weight_width(self):
        """Bits of one weight word, ``P * Bw``."""
        return self._lanes * self._layer.formats.weight.bits

    @property
    def latency(self):
        """Engine pipeline depth: cycles from issuing a beat's last list entry to that beat
        in the output register (S0 .. O of the table above)."""
        return dense_engine_depth(self._mac, self._outreg,
                                  queue=self._flow == "credit" and not self.replay)

    def engine_cycles(self, active):
        """Engine cycles for one input vector with ``active`` non-zero inputs."""
        return self._beats * max(1, int(active))

    # -- elaboration ---------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        layer = self._layer
        n_in, P = layer.n_in, self._lanes
        jw = _width(n_in)

        if self._mac:
            entry = data.StructLayout({"j": unsigned(jw), "x": self._xshape})
        else:
            entry = data.StructLayout({"j": unsigned(jw)})
        lmem = _Mem(m, "active_list", entry, 2 << jw, [], self._outreg)

        full = Signal(2)                      # bank b holds a complete list
        count = [Signal(range(n_in + 1), name=f"count{b}") for b in range(2)]
        self._elaborate_ingest(m, lmem, full, count)

        credit = self._flow == "credit"
        if self.replay:
            engine_out = stream.Signature(current_layout(layer, P)).create(path=("engine",))
            engine = self._elaborate_engine(m, lmem, full, count, engine_out)
            self._elaborate_replay(m, engine_out, engine if credit else None)
        elif credit:
            engine = self._elaborate_engine(m, lmem, full, count, None)
            self._elaborate_queue(m, engine)
        else:
            self._elaborate_engine(m, lmem, full, count, self.o_current)
        return m

    def _elaborate_ingest(self, m, lmem, full, count):
        """Input beats -> list entries of the active inputs, one per cycle, bank ``wb``."""
        if self._outreg:
            return self._elaborate_ingest_pipelined(m, lmem, full, count)
        layer = self._layer
        n_in, Q, IB = layer.n_in, self._in_lanes, self._in_beats
        jw = _width(n_in)
        port = self.input
        wr = lmem.write

        ib = Signal(range(IB))                # index of the next input beat
        ib_base = Signal(range(max(2, IB * Q)))
        pvalid = Signal()                     # a beat is pending
        pmask = Signal(Q)                     # its active inputs not yet written
        pbase = Signal(range(max(2, IB * Q)))
        plast = Signal()
        wb = Signal()
        wcount = Signal(range(n_in + 1))
        if self._mac:
            pvals = Signal(data.ArrayLayout(self._xshape, Q))

        in_mask = self._in_mask(ib)

        # Lowest pending input (priority encoder), and what is left after writing it.
        low = Const(0, range(max(2, Q)))
        for p in reversed(range(Q)):
            low = Mux(pmask[p], p, low)
        low_sig = Signal(range(max(2, Q)), name="ingest_low")
        m.d.comb += low_sig.eq(low)
        rest = pmask & (pmask - 1)
        writable = ~Mux(wb, full[1], full[0])
        act = pvalid & writable
        done = rest == 0                      # this cycle finishes the pending beat
        write = act & (pmask != 0)
        wcount_next = wcount + write

        m.d.comb += [
            port.ready.eq(~pvalid | (writable & done)),
            wr.addr.eq(Cat(wcount[:jw], wb)),
            wr.data.j.eq(pbase + low_sig),
            wr.en.eq(write),
        ]
        if self._mac:
            m.d.comb += wr.data.x.eq(pvals[low_sig])

        with m.If(write):
            m.d.sync += [pmask.eq(rest), wcount.eq(wcount_next)]
        with m.If(act & done):
            m.d.sync += pvalid.eq(0)
            with m.If(plast):
                m.d.sync += [wb.eq(~wb), wcount.eq(0)]
                for b in range(2):
                    with m.If(wb == b):
                        m.d.sync += [full[b].eq(1), count[b].eq(wcount_next)]
        with m.If(port.valid & port.ready):
            m.d.sync += [pvalid.eq(1), pmask.eq(in_mask), pbase.eq(ib_base),
                         plast.eq(ib == IB - 1)]
            if self._mac:
                m.d.sync += pvals.eq(port.payload)
            with m.If(ib == IB - 1):
                m.d.sync += [ib.eq(0), ib_base.eq(0)]
            with m.Else():
                m.d.sync += [ib.eq(ib + 1), ib_base.eq(ib_base + Q)]

    def _in_mask(self, ib):
        """The active inputs of the incoming beat (lanes past ``n_in`` in the last beat
        ignored)."""
        layer, Q, IB, port = self._layer, self._in_lanes, self._in_beats, self.input
        valid_last = layer.n_in - (IB - 1) * Q
        lane_ok = Cat(*[(ib != IB - 1) | Const(p < valid_last, 1) for p in range(Q)])
        if self._mac:
            nonzero = Cat(*[port.payload[p] != 0 for p in range(Q)])
        else:
            nonzero = port.payload
        return nonzero & lane_ok

    def _elaborate_ingest_pipelined(self, m, lmem, full, count):
        """The ingest of the registered-memory pipeline (``memory_outreg=True``): the same
        list, one entry per cycle, with every long path cut by a register.

        * the lowest pending input is isolated as a one-hot (``pmask & -pmask``, a carry
          chain, into a register beside ``pmask``) and encoded by OR trees, not a
          ``Q``-deep priority multiplexer chain;
        * "the pending beat has at most one input left" and "it has one" are registers
          computed one write ahead (LUT trees over the mask a write leaves), so
          ``i_*.ready`` and the write enable are a gate or two from registers;
        * the list write (address, entry, enable) is registered: it reaches the memory one
          cycle after it is decided, and the bank is handed to the engine one cycle after
          its last write (so no read of that bank meets the write in the same cycle).
        """
        layer = self._layer
        n_in, Q, IB = layer.n_in, self._in_lanes, self._in_beats
        jw = _width(n_in)
        port = self.input
        wr = lmem.write
        qw = _width(Q)
        pow2 = Q == 1 << ceil_log2(Q)

        ib = Signal(range(IB))                # index of the next input beat
        ib_base = Signal(range(max(2, IB * Q)))
        pvalid = Signal()                     # a beat is pending
        pmask = Signal(Q)                     # its active inputs not yet written
        pany = Signal()                       # pmask != 0
        pdone = Signal()                      # pmask has at most one bit set
        pbase = Signal(range(max(2, IB * Q)))
        pib = Signal(range(IB))
        plast = Signal()
        wb = Signal()
        wcount = Signal(range(n_in + 1))
        if self._mac:
            pvals = Signal(data.ArrayLayout(self._xshape, Q))

        # "At most one input" of the accepted beat (from the input payload) and of what a
        # write leaves: a balanced tree of LUTs (no carry chain over the mask).
        def at_most_one(mask):
            nodes = [(mask[p], Const(0, 1)) for p in range(Q)]      # (any set, several set)
            while len(nodes) > 1:
                pairs = [((a | b), (am | bm | (a & b)))
                         for (a, am), (b, bm) in zip(nodes[0::2], nodes[1::2])]
                nodes = pairs + nodes[len(pairs) * 2:]
            return ~nodes[0][1]

        in_mask = Signal(Q, name="ingest_in_mask")
        m.d.comb += in_mask.eq(self._in_mask(ib))

        # The lowest pending input as a one-hot, its index by OR trees. The one-hot is a
        # register kept with pmask (the lowest bit of the mask it is written with), so the
        # picked value and index are OR trees from registers: the one-hot's carry chain in
        # front of them was the ECP5 network's critical path.
        def lowest(mask):
            return mask & (-mask.as_signed()).as_unsigned()[:Q]

        onehot = Signal(Q, name="ingest_onehot")
        low = Signal(qw, name="ingest_low")
        m.d.comb += low.eq(Cat(*[
            Cat(*[onehot[p] for p in range(Q) if (p >> i) & 1] or [Const(0, 1)]).any()
            for i in range(qw)]))
        rest = Signal(Q, name="ingest_rest")
        m.d.comb += rest.eq(pmask ^ onehot)
        writable = ~Mux(wb, full[1], full[0])
        act = pvalid & writable
        write = act & pany
        finish = act & pdone                  # this cycle finishes the pending beat
        wcount_next = wcount + write

        # The registered list write.
        w_en = Signal(name="list_w_en")
        w_addr = Signal(jw + 1, name="list_w_addr")
        w_j = Signal(jw, name="list_w_j")
        m.d.sync += [w_en.eq(write), w_addr.eq(Cat(wcount[:jw], wb))]
        with m.If(write):
            # Q a power of two: beat index and lane are bit fields of j (no adder).
            m.d.sync += w_j.eq(Cat(low[:ceil_log2(Q)], pib) if pow2 else pbase + low)
        m.d.comb += [wr.addr.eq(w_addr), wr.data.j.eq(w_j), wr.en.eq(w_en)]
        if self._mac:
            w_x = Signal(self._xshape, name="list_w_x")
            # The value of the one-hot's input: a balanced OR tree of the gated values (a
            # chain of Q ORs after the one-hot's carry chain limited the ECP5 network).
            terms = [Mux(onehot[p], pvals[p].as_unsigned(), 0) for p in range(Q)]
            while len(terms) > 1:
                terms = [a | b for a, b in zip(terms[0::2], terms[1::2])] + (
                    [terms[-1]] if len(terms) % 2 else [])
            picked = terms[0]
            with m.If(write):
                m.d.sync += w_x.eq(picked)
            m.d.comb += wr.data.x.eq(w_x)

        # The handover, one cycle after the bank's last write.
        h_valid = Signal(name="list_hand_valid")
        h_bank = Signal(name="list_hand_bank")
        # The count is written one cycle before the bank is full (the engine's registered
        # "last entry" flag is computed from it while it waits).
        m.d.sync += h_valid.eq(finish & plast)
        with m.If(finish & plast):
            m.d.sync += h_bank.eq(wb)
            for b in range(2):
                with m.If(wb == b):
                    m.d.sync += count[b].eq(wcount_next)
        with m.If(h_valid):
            for b in range(2):
                with m.If(h_bank == b):
                    m.d.sync += full[b].eq(1)

        m.d.comb += port.ready.eq(~pvalid | (writable & pdone))
        with m.If(write):
            # "At most one input left after this write" is the LUT tree over ``rest`` (from
            # registers: pmask ^ onehot); a count of the inputs left (a popcount's adders
            # at the accept, then a compare) was the ECP5 network's critical path.
            m.d.sync += [pmask.eq(rest), onehot.eq(lowest(rest)), wcount.eq(wcount_next),
                         pany.eq(~pdone), pdone.eq(at_most_one(rest))]
        with m.If(finish):
            m.d.sync += pvalid.eq(0)
            with m.If(plast):
                m.d.sync += [wb.eq(~wb), wcount.eq(0)]
        with m.If(port.valid & port.ready):
            m.d.sync += [pvalid.eq(1), pmask.eq(in_mask), onehot.eq(lowest(in_mask)),
                         pany.eq(in_mask != 0),
                         pdone.eq(at_most_one(in_mask)), pbase.eq(ib_base), pib.eq(ib),
                         plast.eq(ib == IB - 1)]
            if self._mac:
                m.d.sync += pvals.eq(port.payload)
            with m.If(ib == IB - 1):
                m.d.sync += [ib.eq(0), ib_base.eq(0)]
            with m.Else():
                m.d.sync += [ib.eq(ib + 1), ib_base.eq(ib_base + Q)]

    def _elaborate_engine(self, m, lmem, full, count, out):
        """Loop over output beats and list entries; accumulate; requantize into ``out``."""
        layer = self._layer
        n_in, n_out = layer.n_in, layer.n_out
        P, B = self._lanes, self._beats
        Bw, Bb, Bacc = layer.formats.weight.bits, layer.bias_bits, layer.acc_bits
        jw = _width(n_in)
        analog, outreg = self._mac, self._outreg      # analog: the multiply path
        off = 1 if outreg else 0
        # Stage (enabled edges after the issue) at which the list entry, the weight address
        # register (registered mode only), the weight word, the weight register (registered
        # mode only) and the addends are present; the bias is read so that it arrives with
        # the addends.
        s_list = 1 + off
        s_waddr = s_list + off
        s_weight = s_waddr + 1 + off
        s_wreg = s_weight + off
        s_add = s_wreg + (1 if analog else 0)
        s_bias = s_add - 1 - off
        # Plain: one extra all-zero word at B * n_in, which an empty list reads (adds
        # nothing). Registered: no extra word (it would cost a second block RAM bank when
        # B * n_in is a multiple of 1024); an empty list's addends are forced to zero.
        zero_word = B * n_in
        words = weight_memory_words(layer, P)
        wdepth = self._weight_depth
        # The weights may go to iCE40 SPRAM (registered mode, see hdl.bram): the engine only
        # reads them; the host writes them through weight_write (SPRAM has no init).
        wmem = _Mem(m, "weights", unsigned(P * Bw), wdepth, words if outreg else words + [0],
                    outreg, spram=True)
        ww = self.weight_write
        m.d.comb += [wmem.write.addr.eq(ww.addr), wmem.write.data.eq(ww.data),
                     wmem.write.en.eq(ww.en)]
        bias = np.zeros(B * P, dtype=np.int64)
        bias[:n_out] = np.asarray(layer.bias_q, dtype=np.int64)
        bmem = _Mem(m, "biases", unsigned(P * Bb), max(2, B), _pack(bias.reshape(B, P), Bb),
                    outreg)

        credit = self._flow == "credit"
        out_valid = Signal()
        en = Signal()
        # The credit flow: the engine never stalls (no clock enable); ``gate`` (driven by
        # the output queue's credits or the replay's bank claim) holds the issue instead.
        gate = Signal(name="issue_gate")
        if credit:
            m.d.comb += en.eq(1)
        else:
            m.d.comb += [en.eq(~out_valid | out.ready), gate.eq(1)]

        # S0: issue.
        rb = Signal()
        e = Signal(range(max(2, n_in)))
        k = Signal(range(max(2, B)))
        base = Signal(range(max(2, B * n_in)))
        busy = Mux(rb, full[1], full[0])
        n = Signal(range(n_in + 1))
        m.d.comb += n.eq(Mux(rb, count[1], count[0]))
        issue = Signal()
        last_e = Signal()
        m.d.comb += issue.eq(en & busy & gate)
        if outreg:
            last_k = self._last_k_reg(m, issue, last_e, k)
        else:
            last_k = k == B - 1
        if outreg:
            # Registered "this is the list's last entry" (e + 1 >= n), one step ahead: no
            # count -> compare -> counter path in the issue stage. While the engine waits
            # it follows the bank's count (written a cycle before the bank is full).
            m.d.comb += last_e.eq(self._last_e_reg(m, issue, e, last_k, n, rb, count))
        else:
            m.d.comb += last_e.eq(e + 1 >= n)
        with m.If(issue):
            with m.If(last_e):
                m.d.sync += e.eq(0)
                with m.If(last_k):
                    m.d.sync += [k.eq(0), base.eq(0), rb.eq(~rb)]
                    for b in range(2):
                        with m.If(rb == b):
                            m.d.sync += full[b].eq(0)
                with m.Else():
                    m.d.sync += [k.eq(k + 1), base.eq(base + n_in)]
            with m.Else():
                m.d.sync += e.eq(e + 1)

        lrd = lmem.read
        m.d.comb += [lrd.addr.eq(Cat(e[:jw], rb)), lrd.en.eq(en)]

        def stage(values, name):
            regs = {}
            for key, value in values.items():
                reg = Signal(Value.cast(value).shape(), name=f"{name}_{key}",
                             reset_less=(key != "valid"))
                with m.If(en):
                    m.d.sync += reg.eq(value)
                regs[key] = reg
            return regs

        ctl = {0: {"valid": issue, "first": e == 0, "last": last_e, "empty": n == 0,
                   "k": k, "base": base}}
        for j in range(1, s_list + 1):
            ctl[j] = stage(ctl[j - 1], f"s{j}")

        # The list entry is here: weight address (the zero word / any word when empty);
        # registered mode: the address and x_q pass a register first.
        wrd = wmem.read
        here = ctl[s_list]
        waddr = Mux(here["empty"], 0 if outreg else zero_word, here["base"] + lrd.data.j)
        carry = {key: here[key] for key in ("valid", "first", "last", "k")}
        if analog:
            # An empty list's product is forced to zero through x (registered mode).
            carry["x"] = Mux(here["empty"], 0, lrd.data.x) if outreg else lrd.data.x
        elif outreg:
            carry["empty"] = here["empty"]
        if outreg:
            ctl[s_waddr] = stage({**carry, "waddr": waddr}, f"s{s_waddr}")
            waddr = ctl[s_waddr]["waddr"]
            carry = {key: ctl[s_waddr][key] for key in carry}
        m.d.comb += [wrd.addr.eq(waddr), wrd.en.eq(en)]
        for j in range(s_waddr + 1, s_weight + 1):
            ctl[j] = stage(ctl[j - 1] if j > s_waddr + 1 else carry, f"s{j}")

        brd = bmem.read
        m.d.comb += [brd.addr.eq(ctl[s_bias]["k"]), brd.en.eq(en)]
        weights = data.ArrayLayout(signed(Bw), P)(wrd.data)
        if outreg and analog:
            # S6 and S7 of the products are the two register stages of one
            # hdl.dsp.PipelinedMultiply per lane (on ECP5 the MULT18X18D's input and output
            # registers): the weight word goes from the block RAM's output register, x_q
            # from its S5 register, straight into the multiplier; only the control bits
            # pass fabric registers alongside.
            ctl[s_wreg] = stage({key: ctl[s_weight][key] for key in ("valid", "first", "last")},
                                f"s{s_wreg}")
            ctl[s_add] = stage(dict(ctl[s_wreg]), f"s{s_add}")
            addends = []
            for p in range(P):
                mul = PipelinedMultiply(signed(Bw), self._xshape)
                m.submodules[f"mul{p}"] = mul
                m.d.comb += [mul.a.eq(weights[p]), mul.b.eq(ctl[s_weight]["x"]),
                             mul.en.eq(en)]
                addends.append(mul.p)
        elif outreg:
            # The weight word goes from the block RAM's output register straight into a
            # fabric register (an empty list's weights forced to zero).
            wvals = [Mux(ctl[s_weight]["empty"], 0, weights[p]) for p in range(P)]
            ctl[s_wreg] = stage({**{key: ctl[s_weight][key] for key in ("valid", "first", "last")},
                                 **{f"w{p}": wvals[p] for p in range(P)}}, f"s{s_wreg}")
            addends = [ctl[s_wreg][f"w{p}"] for p in range(P)]
        elif analog:
            # Plain pipeline: the registered products W * x_q of the weight word (memory
            # read data) and x_q (a register).
            wst = ctl[s_wreg]
            prods = [weights[p] * wst["x"] for p in range(P)]
            ctl[s_add] = stage({**{key: wst[key] for key in ("valid", "first", "last")},
                                **{f"prod{p}": prods[p] for p in range(P)}}, f"s{s_add}")
            addends = [ctl[s_add][f"prod{p}"] for p in range(P)]
        else:
            addends = [weights[p] for p in range(P)]
        actl = ctl[s_add]
        biases = data.ArrayLayout(signed(Bb), P)(brd.data)

        # A: accumulate.
        acc = [Signal(signed(Bacc), name=f"acc{p}") for p in range(P)]
        done = Signal()
        with m.If(en):
            m.d.sync += done.eq(actl["valid"] & actl["last"])
            with m.If(actl["valid"]):
                for p in range(P):
                    m.d.sync += acc[p].eq(Mux(actl["first"], biases[p], acc[p]) + addends[p])

        # O: requantize into the output register (the credit flow without the replay: into
        # the output queue, whose write is the register).
        shift = layer.shift
        fmt = layer.formats.current
        # Lanes past n_out have zero weights and biases: they come out as 0.
        values = [Signal(signed(fmt.bits), name=f"c_q{p}") for p in range(P)]
        for p in range(P):
            m.d.comb += values[p].eq(_clamp(acc[p] >> shift if shift >= 0
                                            else acc[p] << -shift, fmt))
        engine = SimpleNamespace(issue=issue, last_e=last_e, last_k=last_k, rb=rb, gate=gate,
                                 done=done, values=values)
        if out is None:
            return engine
        with m.If(en):
            m.d.sync += out_valid.eq(done)
            for p in range(P):
                m.d.sync += out.payload[p].eq(values[p])
        m.d.comb += out.valid.eq(out_valid)
        return engine

    def _elaborate_queue(self, m, engine):
        """The credit flow's output queue (no replay): ``CREDIT_QUEUE_DEPTH`` words of LUT
        RAM written by the engine's O stage, an output register, and credits.

        A credit is one free queue word: the engine issues a beat's last entry only while it
        holds one (the credits' thermometer code and the credit in flight: registers), and
        a word's credit returns when the word moves into the output register. So the queue
        never overflows, the engine never waits on ``o_current.ready`` combinationally, and
        with the credits' round trip (latency + 3 cycles) shorter than the queue the engine
        runs at full rate while ``o_current.ready`` stays high."""
        P, D = self._lanes, CREDIT_QUEUE_DEPTH
        bits = self._layer.formats.current.bits
        qmem = memory.Memory(shape=unsigned(P * bits), depth=D, init=[])
        m.submodules.queue = qmem
        qw = qmem.write_port()
        qr = qmem.read_port(domain="comb")
        aw = ceil_log2(D)
        wptr = Signal(aw + 1, name="queue_wptr")      # one wrap bit: full != empty
        rptr = Signal(aw + 1, name="queue_rptr")
        m.d.comb += [qw.addr.eq(wptr[:aw]), qw.data.eq(Cat(*engine.values)),
                     qw.en.eq(engine.done)]
        with m.If(engine.done):
            m.d.sync += wptr.eq(wptr + 1)

        o = self.o_current
        o_valid = Signal(name="queue_o_valid")
        nonempty = wptr != rptr
        load = ~o_valid | o.ready           # the output register takes a word (or nothing)
        pop = nonempty & load
        m.d.comb += [qr.addr.eq(rptr[:aw]), o.valid.eq(o_valid)]
        with m.If(load):
            m.d.sync += [o_valid.eq(nonempty), o.payload.as_value().eq(qr.data)]
        with m.If(pop):
            m.d.sync += rptr.eq(rptr + 1)

        # The credits as a thermometer code (bit i: more than i credits), so that taking
        # one (a shift down) or returning one (a shift up) is a 2:1 multiplexer per bit: no
        # adder or compare after ``o_current.ready`` (a binary count's carry chain was the
        # digits network's critical path on ECP5).
        # A credit taken (a last entry issued) is registered first (``take``) and leaves the
        # count a cycle later, so the count's update stays beside the queue and the gate is
        # one LUT of registers: "a credit left" is "two counted, or one and none in flight".
        credits = Signal(D, init=(1 << D) - 1, name="queue_credits")
        take = Signal(name="queue_take")
        m.d.sync += take.eq(engine.issue & engine.last_e)
        with m.If(pop & ~take):
            m.d.sync += credits.eq(Cat(Const(1, 1), credits[:-1]))
        with m.Elif(take & ~pop):
            m.d.sync += credits.eq(credits[1:])
        m.d.comb += engine.gate.eq(~engine.last_e | credits[1] | (credits[0] & ~take))

    def _last_e_reg(self, m, issue, e, last_k, n, rb, count):
        """The register ``e + 1 >= n`` of the registered-mode issue stage, updated for the
        next ``(e, k, rb)``: after the last entry of the last beat the other bank starts at
        ``e = 0``, after another last entry the same list restarts, else ``e + 1``.

        It is kept with a count of the entries left after ``e`` (``left = n - 1 - e``), so
        that mid-list its next value is ``left == 1``, a compare on one register, not
        ``e + 2 >= n`` (an adder and a comparator). At ``e = 0`` (a flag register) and no
        issue it follows the bank's count, which may still be written."""
        reg = Signal(name="last_e_reg")
        left = Signal(range(max(2, self._layer.n_in)), name="list_left")
        at_start = Signal(init=1, name="list_at_start")
        other = Mux(rb, count[0], count[1])
        with m.If(issue):
            with m.If(reg):
                nxt = Mux(last_k, other, n)
                m.d.sync += [reg.eq(nxt <= 1), left.eq(nxt - 1), at_start.eq(1)]
            with m.Else():
                m.d.sync += [reg.eq(left == 1), left.eq(left - 1), at_start.eq(0)]
        with m.Elif(at_start):
            m.d.sync += [reg.eq(n <= 1), left.eq(n - 1)]
        return reg

    def _elaborate_replay(self, m, src, engine=None):
        """Store each computed vector (``B`` beats from ``src``) and emit it ``T`` times.

        ``engine`` (the credit flow): the writer is always ready, and the engine instead
        claims a whole bank before it issues a vector's first entry (``issue_gate``: the
        bank it will write, which is the list bank ``rb``'s parity, is free, or it holds
        it already); the reader frees the bank after its ``T``-th pass. So the writer never
        meets a full bank, and no ready reaches the engine."""
        layer = self._layer
        P, B, T = self._lanes, self._beats, self._T
        kw = _width(B)
        buf = _Mem(m, "replay", unsigned(P * layer.formats.current.bits), 2 << kw, [],
                   self._outreg)
        full = Signal(2)

        # Writer: the engine's beats into bank wb.
        wr = buf.write
        wb = Signal()
        wk = Signal(range(max(2, B)))
        # ~full[wb]; in registered mode a register (its next value is computed below by
        # _writable_reg): the engine's enable (~out_valid | src.ready) is then a gate of
        # two registers.
        writable = Signal(init=1, name="replay_writable")
        if engine is not None:
            m.d.comb += writable.eq(1)
        m.d.comb += [
            src.ready.eq(writable),
            wr.addr.eq(Cat(wk[:kw], wb)),
            wr.data.eq(src.payload.as_value()),
            wr.en.eq(src.valid & writable),
        ]
        with m.If(src.valid & writable):
            with m.If(wk == B - 1):
                m.d.sync += [wk.eq(0), wb.eq(~wb)]
                for b in range(2):
                    with m.If(wb == b):
                        m.d.sync += full[b].eq(1)
            with m.Else():
                m.d.sync += wk.eq(wk + 1)

        # Reader: bank rb, beats 0 .. B-1, T times; the read port's data is the output.
        rd = buf.read
        rb = Signal()
        rk = Signal(range(max(2, B)))
        rt = Signal(range(max(2, T)))
        out_valid = Signal()
        adv = Signal()
        m.d.comb += adv.eq(~out_valid | self.o_current.ready)
        issue = adv & Mux(rb, full[1], full[0])
        m.d.comb += [
            rd.addr.eq(Cat(rk[:kw], rb)),
            rd.en.eq(adv),
            self.o_current.valid.eq(out_valid),
            self.o_current.payload.eq(rd.data),
        ]
        if self._outreg:
            # Read latency 2: the beat sits one enabled edge in the RAM's read register.
            pending = Signal()
            with m.If(adv):
                m.d.sync += [pending.eq(issue), out_valid.eq(pending)]
        else:
            with m.If(adv):
                m.d.sync += out_valid.eq(issue)
        with m.If(issue):
            with m.If(rk == B - 1):
                m.d.sync += rk.eq(0)
                with m.If(rt == T - 1):
                    m.d.sync += [rt.eq(0), rb.eq(~rb)]
                    for b in range(2):
                        with m.If(rb == b):
                            m.d.sync += full[b].eq(0)
                with m.Else():
                    m.d.sync += rt.eq(rt + 1)
            with m.Else():
                m.d.sync += rk.eq(rk + 1)
        rdone = issue & (rk == B - 1) & (rt == T - 1)
        if engine is not None:
            free = Signal(2, init=0b11, name="replay_free")
            mine = Signal(name="replay_claimed")     # the engine holds bank engine.rb
            er = engine.rb
            m.d.comb += engine.gate.eq(mine | Mux(er, free[1], free[0]))
            with m.If(engine.issue):
                with m.If(~mine):
                    m.d.sync += mine.eq(1)
                    for b in range(2):
                        with m.If(er == b):
                            m.d.sync += free[b].eq(0)
                with m.If(engine.last_e & engine.last_k):
                    m.d.sync += mine.eq(0)
            # The reader releases a claimed bank; the engine claims a free one: never the
            # same bank in one cycle.
            with m.If(rdone):
                for b in range(2):
                    with m.If(rb == b):
                        m.d.sync += free[b].eq(1)
        elif self._outreg:
            wdone = src.valid & writable & (wk == B - 1)
            self._writable_reg(m, writable, wb, full, wdone, rb, rdone)
        else:
            m.d.comb += writable.eq(~Mux(wb, full[1], full[0]))

    # Registered mode's control registers, computed a cycle ahead of their definitions
    # (``last_k == (k == B - 1)``, ``writable == ~full[wb]``); tests/test_hdl_dsp.py runs
    # the stage with the definitions in their place and checks every cycle is the same.

    def _last_k_reg(self, m, issue, last_e, k):
        """Registered "``k`` is the last beat" (``k == B - 1``): the bank release after the
        issue is a gate of registers, no compare."""
        B = self._beats
        last_k = Signal(init=int(B == 1), name="last_k_reg")
        with m.If(issue & last_e):
            with m.If(last_k):
                m.d.sync += last_k.eq(int(B == 1))
            with m.Else():
                m.d.sync += last_k.eq(k == B - 2)
        return last_k

    @staticmethod
    def _writable_reg(m, writable, wb, full, wdone, rb, rdone):
        """``writable``'s next value, ``~full[wb]`` after this edge: after the writer's
        last beat (``wdone``: ``wb`` flips) the other bank's, else the same one's; either is
        free again if the reader releases it now (``rdone``, bank ``rb``)."""
        m.d.sync += writable.eq(Mux(wdone, ~Mux(wb, full[0], full[1]) | (rdone & (rb != wb)),
                                    ~Mux(wb, full[1], full[0]) | (rdone & (rb == wb))))
