"""A 2-D convolution synapse stage: weights and partial sums in BRAM, driven by the active
inputs only, ``P`` output channels per cycle.

The arithmetic is exactly the "synapse" and "current" rows of the integer-model table in
``golden/layers/conv2d.py`` (:class:`golden.layers.conv2d.IntegerConv2d`):
``acc[co, yo, xo] = bias_q[co] + sum W_q[co, ci, ky, kx] * s[ci, S*yo + ky - p, S*xo + kx - p]``
over the inputs with ``s != 0`` (spikes: ``W_q`` is added, no multiplier; the analog first
layer: ``W_q * x_q``; counts ``n`` in ``1 .. input_max`` after a sum pooling layer:
``W_q * n``, the same multiply-accumulate path), then ``c_q = sat_c(acc >> shift)``. Zero padding adds nothing, so it
needs no hardware: an input only reaches the outputs whose window covers it.

Geometry: input ``(Ci, H, W)``, output ``(Co, Ho, Wo)``, kernel ``k``, stride ``S``, padding
``p``; ``P`` = ``lanes``, ``G = ceil(Co / P)`` channel groups, ``HW = Ho * Wo``;
``B = ceil(Co * HW / P)`` output beats per vector (:mod:`hdl.layout`: channel-major flatten,
beat ``b`` carries neurons ``b*P .. b*P + P - 1``).

Dataflow, one input vector (a timestep of spikes, or a sample of pixels) after another:

1. **Ingest** (as :class:`hdl.dense.DenseStage`): input beats -> a list of the active
   inputs, flat index ``j`` (and the value, ``x_q`` or the count ``n``, for pixels or
   counts), one entry per cycle by a priority
   encoder, into one of two list banks (the next vector fills the other bank meanwhile).
2. **Scatter** (input-stationary): for each list entry ``j = (ci, y, x)`` (a coordinate ROM
   turns ``j`` into ``ci * k * k``, ``y``, ``x``), each channel group ``g`` and each kernel
   offset ``(ky, kx)``: the output ``(yo, xo)`` with ``S*yo + ky - p = y`` and
   ``S*xo + kx - p = x`` (skipped when not an integer inside the map: a bubble), and the
   weight word ``W[g, ci, ky, kx]`` (``P`` weights of channels ``g*P .. g*P + P - 1``) is
   added (times ``x_q`` or ``n``) into the partial-sum word ``(g, yo, xo)`` (``P`` sums) by a
   read-modify-write, one per cycle; the previous cycle's write is forwarded when it hits
   the same word. A vector with ``a`` active inputs takes ``a * k * k * G`` cycles.
3. **Drain**: the partial sums are read in the stream's neuron order, one neuron per cycle
   (the word ``(c // P, yo, xo)``, lane ``c % P``), plus ``bias_q[c]``, requantized into lane
   ``q`` of the output beat; every ``P`` cycles a beat. A word is cleared as its last channel
   is read, so the sums start from zero when the bank is scattered into again. ``B * P + 1``
   cycles per vector. (The sums are stored ``P`` channels per word for the scatter, the
   stream wants ``P`` positions of one channel per beat: the drain reads one neuron per
   cycle rather than transposing.) The read word's lane and the bias are registered (D2)
   before the add and requantization, so the partial-sum block RAM's output feeds only the
   lane multiplexer.
4. **Replay** (analog input, ``T > 1``): the ``B`` beats of a sample are emitted ``T`` times
   from a two-bank buffer (as DenseStage).

The partial sums have two banks: the drain empties one vector's while the scatter fills
the next one's, and the ingest of the vector after that fills the other list bank. Steady
state cycles per vector: ``max(max(1, a * k*k * G) + scatter_depth - 1, B * P + 1)`` (plus
output stalls; :meth:`ConvStage.vector_cycles`, :func:`hdl.plan.conv_plan`).

Scatter pipeline (not stalled; only the drain sees the output's ``ready``; the scatter
waits for a free bank):

=====  ======================================================================
stage  work
=====  ======================================================================
S0     issue ``(e, g, ky, kx)``: list memory address
S1     list entry ``j`` -> coordinate ROM address (``x_q`` / ``n`` carried)
S2     ``(ci*k*k, y, x)`` -> output position check, sum and weight addresses
S3     weight address (and, spikes, partial-sum address) presented
S4     spikes: ``sum += W`` written back. Analog or counts: the product ``W * x_q``
       (``W * n``) registered, partial-sum address presented
S5     analog or counts: ``sum += W * x_q`` written back
=====  ======================================================================

Memories (``amaranth.lib.memory.Memory``): weights ``G * Ci * k * k`` words of ``P * Bw``
bits (word ``((g * Ci + ci) * k + ky) * k + kx``, lane ``p`` = channel ``g * P + p``, zero
past ``Co``); partial sums two banks of ``G * HW`` words of ``P * Bacc`` bits; biases ``Co`` words of
``Bb`` bits; the coordinate ROM ``Ci * H * W`` words; the active list
``2 * 2**ceil(log2(Ci * H * W))`` entries of ``ceil(log2(Ci * H * W))`` bits plus the value
(``Bx``, or :func:`hdl.plan.count_bits` of ``input_max`` for counts); the replay buffer ``2 * 2**ceil(log2 B)`` words of
``P * Bc`` bits; every depth at least 2. :func:`hdl.plan.conv_plan` lists the same without
elaborating. Block RAM outputs are not registered (``memory_outreg`` is not supported yet).
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.layers.conv2d import IntegerConv2d

from .dense import _clamp, _pack, _positive
from .plan import conv_scatter_depth, input_value_bits

__all__ = ["ConvStage", "conv_weight_words"]


def _width(count):
    return max(1, ceil_log2(count))


def _depth(n):
    return max(2, int(n))


def _signed(value):
    """An unsigned value as a signed one of one more bit (same number)."""
    return Cat(value, Const(0, 1)).as_signed()


def conv_weight_words(layer, lanes):
    """Weight memory contents ``(G * Ci * k * k, P)``: word ``((g*Ci + ci)*k + ky)*k + kx``
    holds ``W_q[g*P + p, ci, ky, kx]`` in lane ``p`` (0 past ``C_out``)."""
    W_q = np.asarray(layer.W_q, dtype=np.int64)
    co, ci, k, _ = W_q.shape
    G = -(-co // lanes)
    W = np.zeros((G * lanes, ci, k, k), dtype=np.int64)
    W[:co] = W_q
    return W.reshape(G, lanes, ci * k * k).transpose(0, 2, 1).reshape(G * ci * k * k, lanes)


class ConvStage(wiring.Component):
    """Compute one conv layer's currents from a stream of inputs, bit-exactly.

    Parameters
    ----------
    layer : golden.layers.conv2d.IntegerConv2d
        ``layer.input_bits`` set: the analog first layer (multiply-accumulate); ``None``
        with ``input_max == 1``: spikes (additions only); ``None`` with ``input_max > 1``:
        counts ``0 .. input_max`` from a sum pooling stage (multiply-accumulate, one
        vector per timestep).
    lanes : int
        ``P``: output channels per scatter cycle and neurons per output beat,
        ``1 <= P <= C_out * H_out * W_out``.
    in_lanes : int
        ``Q``: inputs per input beat, ``1 <= Q <= C_in * H * W``.
    T : int
        Timesteps per sample (the analog layer emits each computed vector ``T`` times).

    Attributes
    ----------
    i_spikes : In(stream.Signature(unsigned(Q)))
        Spiking input: bit ``q`` of beat ``b`` is input ``b * Q + q`` of the channel-major
        flattened ``(C_in, H, W)`` map; ``ceil(C_in * H * W / Q)`` beats per timestep.
    i_pixels : In(stream.Signature(ArrayLayout(signed(Bx), Q)))
        Analog input: ``x_q`` in the same order, one vector per sample.
    i_counts : In(stream.Signature(ArrayLayout(unsigned(count_bits(input_max)), Q)))
        Count input: ``n`` in the same order, one vector per timestep
        (:class:`hdl.pool.PoolStage`'s ``o_counts``).
    o_current : Out(stream.Signature(ArrayLayout(signed(Bc), P)))
        ``c_q`` of neurons ``b * P .. b * P + P - 1`` of the flattened ``(C_out, H_out,
        W_out)`` map (lanes past the end 0), ``B`` beats per timestep:
        ``LIFArray.i_current``'s layout. Registered (or the replay buffer's read register).

    ``i_*.ready`` depends on internal state only; no combinational path from input to output.

    Raises
    ------
    TypeError
        ``layer`` is not an ``IntegerConv2d``.
    ValueError
        Bad ``lanes``, ``in_lanes`` or ``T``; weights outside their format.
    """

    def __init__(self, layer, lanes, *, in_lanes=1, T=1):
        if not isinstance(layer, IntegerConv2d):
            raise TypeError(f"layer must be a golden.layers.conv2d.IntegerConv2d, not {layer!r}")
        if layer.input_bits is None and (not isinstance(layer.input_max, (int, np.integer))
                                         or layer.input_max < 1):
            raise ValueError(f"layer.input_max must be a positive integer, not "
                             f"{layer.input_max!r}")
        W_q = np.asarray(layer.W_q)
        fw = layer.formats.weight
        if np.any(fw.overflows(W_q)):
            idx = tuple(int(v) for v in np.argwhere(fw.overflows(W_q))[0])
            raise ValueError(f"layer.W_q[{', '.join(map(str, idx))}] = {int(W_q[idx])} does "
                             f"not fit the weight format {fw}")
        self._layer = layer
        self._n_in = int(np.prod(layer.in_shape))
        self._n_out = int(np.prod(layer.out_shape))
        self._lanes = _positive("lanes", lanes, self._n_out, "the layer's neuron count")
        self._in_lanes = _positive("in_lanes", in_lanes, self._n_in, "the layer's input count")
        self._T = _positive("T", T)
        self._analog = layer.input_bits is not None
        self._counts = not self._analog and layer.input_max > 1
        # Analog pixels and counts are values kept in the list and multiplied.
        self._mac = self._analog or self._counts
        self._xbits = input_value_bits(layer)
        self._beats = -(-self._n_out // self._lanes)
        self._in_beats = -(-self._n_in // self._in_lanes)
        self._groups = -(-layer.out_shape[0] // self._lanes)
        Q = self._in_lanes
        if self._mac:
            members = {self.input_name: In(stream.Signature(
                data.ArrayLayout(self._xshape, Q)))}
        else:
            members = {"i_spikes": In(stream.Signature(unsigned(Q)))}
        members["o_current"] = Out(stream.Signature(
            data.ArrayLayout(signed(layer.formats.current.bits), self._lanes)))
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
        """Whether the inputs are the analog network input (once per sample, replayed)."""
        return self._analog

    @property
    def counts(self):
        """Whether the inputs are counts from a sum pooling stage."""
        return self._counts

    @property
    def _xshape(self):
        return signed(self._xbits) if self._analog else unsigned(self._xbits)

    @property
    def n_in(self):
        return self._n_in

    @property
    def n_out(self):
        return self._n_out

    @property
    def beats(self):
        """Output beats per vector, ``ceil(C_out * H_out * W_out / P)``."""
        return self._beats

    @property
    def in_beats(self):
        return self._in_beats

    @property
    def groups(self):
        """Channel groups ``G = ceil(C_out / P)``."""
        return self._groups

    @property
    def input_name(self):
        """The input stream port's name: ``i_pixels``, ``i_counts`` or ``i_spikes``."""
        return "i_pixels" if self._analog else "i_counts" if self._counts else "i_spikes"

    @property
    def input(self):
        return getattr(self, self.input_name)

    @property
    def scatter_depth(self):
        """Cycles from the last scatter issue to the drain's first read."""
        return conv_scatter_depth(self._mac)

    @property
    def latency(self):
        """Cycles from the scatter's last issue (for an empty list: the cycle it sees the
        list) to the vector's first output beat offered: :attr:`scatter_depth`, ``P``
        drain reads, the drain's second stage (the read lane and the bias registered) and
        the output register (analog ``T > 1``: the replay starts after the whole drain,
        ``B * P`` reads, and its buffer write and read, two more)."""
        if self._analog and self._T > 1:
            return self.scatter_depth + self._beats * self._lanes + 4
        return self.scatter_depth + self._lanes + 2

    def scatter_cycles(self, active):
        """Cycles the scatter is busy with one vector of ``active`` non-zero inputs (from
        its first issue to handing the sums to the drain)."""
        k = self._layer.kernel
        return max(1, int(active) * k * k * self._groups) + self.scatter_depth - 1

    @property
    def drain_cycles(self):
        """Cycles the drain is busy with one vector (no output stall): ``B * P`` reads and
        the hand-back of the bank."""
        return self._beats * self._lanes + 1

    def vector_cycles(self, active):
        """Steady-state cycles per vector of ``active`` non-zero inputs (no output stall):
        the scatter of one vector overlaps the drain of the one before, so the slower of
        the two."""
        return max(self.scatter_cycles(active), self.drain_cycles)

    # -- elaboration ---------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        layer = self._layer
        jw = _width(self._n_in)
        if self._mac:
            entry = data.StructLayout({"j": unsigned(jw), "x": self._xshape})
        else:
            entry = data.StructLayout({"j": unsigned(jw)})
        m.submodules.active_list = lmem = memory.Memory(shape=entry, depth=2 << jw, init=[])
        full = Signal(2)
        count = [Signal(range(self._n_in + 1), name=f"count{b}") for b in range(2)]
        self._elaborate_ingest(m, lmem, full, count)

        cur = data.ArrayLayout(signed(layer.formats.current.bits), self._lanes)
        if self._analog and self._T > 1:
            out = stream.Signature(cur).create(path=("drain",))
            self._elaborate_core(m, lmem, full, count, out)
            self._elaborate_replay(m, out)
        else:
            self._elaborate_core(m, lmem, full, count, self.o_current)
        return m

    def _elaborate_ingest(self, m, lmem, full, count):
        """Input beats -> list entries of the active inputs (DenseStage's ingest)."""
        n_in, Q, IB = self._n_in, self._in_lanes, self._in_beats
        jw = _width(n_in)
        port = self.input
        wr = lmem.write_port()

        ib = Signal(range(IB))
        ib_base = Signal(range(max(2, IB * Q)))
        pvalid = Signal()
        pmask = Signal(Q)
        pbase = Signal(range(max(2, IB * Q)))
        plast = Signal()
        wb = Signal()
        wcount = Signal(range(n_in + 1))
        if self._mac:
            pvals = Signal(data.ArrayLayout(self._xshape, Q))

        valid_last = n_in - (IB - 1) * Q
        lane_ok = Cat(*[(ib != IB - 1) | Const(p < valid_last, 1) for p in range(Q)])
        if self._mac:
            nonzero = Cat(*[port.payload[p] != 0 for p in range(Q)])
        else:
            nonzero = port.payload
        in_mask = nonzero & lane_ok

        low = Const(0, range(max(2, Q)))
        for p in reversed(range(Q)):
            low = Mux(pmask[p], p, low)
        low_sig = Signal(range(max(2, Q)), name="ingest_low")
        m.d.comb += low_sig.eq(low)
        rest = pmask & (pmask - 1)
        writable = ~Mux(wb, full[1], full[0])
        act = pvalid & writable
        done = rest == 0
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

    def _elaborate_core(self, m, lmem, full, count, out):
        """Scatter the list into the partial sums, then drain them into ``out``."""
        layer = self._layer
        Ci, H, W = layer.in_shape
        Co, Ho, Wo = layer.out_shape
        k, S, pad = layer.kernel, layer.stride, layer.padding
        kk = k * k
        P, G, B = self._lanes, self._groups, self._beats
        HW = Ho * Wo
        n_in = self._n_in
        jw = _width(n_in)
        Bw, Bb, Bacc = layer.formats.weight.bits, layer.bias_bits, layer.acc_bits
        mac = self._mac                       # the multiply-accumulate path (pixels, counts)

        # -- memories
        m.submodules.weights = wmem = memory.Memory(
            shape=unsigned(P * Bw), depth=_depth(G * Ci * kk),
            init=_pack(conv_weight_words(layer, P), Bw))
        psum_layout = data.ArrayLayout(signed(Bacc), P)
        # Two banks of partial sums: the drain empties one while the scatter fills the other.
        pmems = []
        for b in range(2):
            pmems.append(memory.Memory(shape=unsigned(P * Bacc), depth=_depth(G * HW), init=[]))
            m.submodules[f"psums_{b}"] = pmems[b]
        bias = np.asarray(layer.bias_q, dtype=np.int64)
        m.submodules.biases = bmem = memory.Memory(
            shape=signed(Bb), depth=_depth(Co), init=[int(v) for v in bias])
        coord = data.StructLayout({"cikk": unsigned(_width(Ci * kk)), "y": unsigned(_width(H)),
                                   "x": unsigned(_width(W))})
        coords = []
        for j in range(n_in):
            ci, rem = divmod(j, H * W)
            y, x = divmod(rem, W)
            coords.append(ci * kk | (y << _width(Ci * kk)) | (x << (_width(Ci * kk)
                                                                     + _width(H))))
        m.submodules.coords = cmem = memory.Memory(shape=unsigned(coord.size),
                                                   depth=_depth(n_in), init=coords)
        lrd = lmem.read_port()
        crd = cmem.read_port()
        wrd = wmem.read_port()
        prds = [mem.read_port() for mem in pmems]
        pwrs = [mem.write_port() for mem in pmems]
        brd = bmem.read_port()
        pfull = Signal(2)                     # bank b holds a finished vector's sums
        sb = Signal()                         # the bank the scatter fills
        db = Signal()                         # the bank the drain empties

        RUN, FLUSH = 0, 1
        phase = Signal()

        # -- scatter S0: issue (e, g, ky, kx)
        rb = Signal()
        e = Signal(range(max(2, n_in)))
        g = Signal(range(max(2, G)))
        ky = Signal(range(max(2, k)))
        kx = Signal(range(max(2, k)))
        koff = Signal(range(max(2, kk)))
        gw = Signal(range(max(2, G * Ci * kk)))
        gp = Signal(range(max(2, G * HW)))
        n = Signal(range(n_in + 1))
        m.d.comb += n.eq(Mux(rb, count[1], count[0]))
        ready = (phase == RUN) & Mux(rb, full[1], full[0]) & ~Mux(sb, pfull[1], pfull[0])
        issue = Signal()
        m.d.comb += issue.eq(ready & (n != 0))
        last_op = (kx == k - 1) & (ky == k - 1) & (g == G - 1) & (e + 1 >= n)
        flush = Signal(range(self.scatter_depth + 2))
        with m.If(issue):
            with m.If(kx == k - 1):
                m.d.sync += kx.eq(0)
                with m.If(ky == k - 1):
                    m.d.sync += [ky.eq(0), koff.eq(0)]
                    with m.If(g == G - 1):
                        m.d.sync += [g.eq(0), gw.eq(0), gp.eq(0), e.eq(e + 1)]
                    with m.Else():
                        m.d.sync += [g.eq(g + 1), gw.eq(gw + Ci * kk), gp.eq(gp + HW)]
                with m.Else():
                    m.d.sync += [ky.eq(ky + 1), koff.eq(koff + 1)]
            with m.Else():
                m.d.sync += [kx.eq(kx + 1), koff.eq(koff + 1)]
        with m.If((ready & (n == 0)) | (issue & last_op)):
            m.d.sync += [phase.eq(FLUSH), flush.eq(0), e.eq(0)]
        m.d.comb += lrd.addr.eq(Cat(e[:jw], rb))

        def stage(values, name):
            regs = {}
            for key, value in values.items():
                reg = Signal.like(value, name=f"{name}_{key}") if isinstance(value, Signal) \
                    else Signal(value.shape(), name=f"{name}_{key}")
                m.d.sync += reg.eq(value)
                regs[key] = reg
            return regs

        s1 = stage({"valid": issue, "ky": ky, "kx": kx, "koff": koff, "gw": gw, "gp": gp}, "s1")
        m.d.comb += crd.addr.eq(lrd.data.j)
        s2vals = dict(s1)
        if mac:
            s2vals["x"] = lrd.data.x
        s2 = stage(s2vals, "s2")

        # S2: where does this (input, offset) land?
        cd = coord(crd.data)
        ty = Signal(signed(_width(H + pad + k) + 1))
        tx = Signal(signed(_width(W + pad + k) + 1))
        m.d.comb += [ty.eq(_signed(cd.y) + pad - _signed(s2["ky"])),
                     tx.eq(_signed(cd.x) + pad - _signed(s2["kx"]))]

        def position(t, size):
            ok = (t >= 0) & (t <= S * (size - 1))
            if S == 2:
                ok = ok & ~t[0]
                return ok, (t >> 1)[:_width(size)]
            return ok, t[:_width(size)]

        oky, yo = position(ty, Ho)
        okx, xo = position(tx, Wo)
        s3 = stage({"valid": s2["valid"] & oky & okx,
                    "paddr": (s2["gp"] + yo * Wo + xo)[:_width(G * HW)],
                    "waddr": (s2["gw"] + cd.cikk + s2["koff"])[:_width(G * Ci * kk)],
                    **({"x": s2["x"]} if mac else {})}, "s3")
        m.d.comb += wrd.addr.eq(s3["waddr"])
        s4 = stage({key: s3[key] for key in s3 if key != "waddr"}, "s4")
        weights = data.ArrayLayout(signed(Bw), P)(wrd.data)
        if mac:
            prods = [weights[p] * s4["x"] for p in range(P)]
            sa = stage({"valid": s4["valid"], "paddr": s4["paddr"],
                        **{f"prod{p}": prods[p] for p in range(P)}}, "s5")
            addends = [sa[f"prod{p}"] for p in range(P)]
            scatter_raddr = s4["paddr"]
        else:
            sa = s4
            addends = [weights[p] for p in range(P)]
            scatter_raddr = s3["paddr"]

        # A: read-modify-write with forwarding of the previous cycle's write.
        last_valid = Signal()
        last_addr = Signal.like(sa["paddr"])
        last_sum = Signal(psum_layout)
        fwd = last_valid & (last_addr == sa["paddr"])
        prd_data = Mux(sb, prds[1].data, prds[0].data)
        old = data.ArrayLayout(signed(Bacc), P)(Mux(fwd, last_sum.as_value(), prd_data))
        new = Signal(psum_layout)
        for p in range(P):
            m.d.comb += new[p].eq(old[p] + addends[p])
        m.d.sync += [last_valid.eq(sa["valid"]), last_addr.eq(sa["paddr"]), last_sum.eq(new)]

        # FLUSH: let the last operations write back, release the list bank, hand the sums
        # to the drain.
        with m.If(phase == FLUSH):
            m.d.sync += flush.eq(flush + 1)
            with m.If(flush == self.scatter_depth - 2):
                m.d.sync += [phase.eq(RUN), rb.eq(~rb), sb.eq(~sb)]
                for b in range(2):
                    with m.If(rb == b):
                        m.d.sync += full[b].eq(0)
                    with m.If(sb == b):
                        m.d.sync += pfull[b].eq(1)

        # -- drain (stall-all on the output register)
        out_valid = Signal()
        en = Signal()
        m.d.comb += en.eq(~out_valid | out.ready)
        c = Signal(range(Co + P + 2))
        pos = Signal(range(max(2, HW)))
        lane = Signal(range(max(2, P)))
        base = Signal(range(max(2, (G + 2) * HW)))
        q = Signal(range(max(2, P)))
        nb = Signal(range(max(2, B)))
        dissue = Signal()
        dwait = Signal()                      # every read issued, the last one in D1
        d1_valid = Signal()
        m.d.comb += dissue.eq(Mux(db, pfull[1], pfull[0]) & ~dwait & en)
        real = c < Co
        last_of_word = real & ((lane == P - 1) | (c == Co - 1))
        final = (nb == B - 1) & (q == P - 1)
        with m.If(dissue):
            with m.If(pos == HW - 1):
                m.d.sync += [pos.eq(0), c.eq(c + 1)]
                with m.If(lane == P - 1):
                    m.d.sync += [lane.eq(0), base.eq(base + HW)]
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)
            with m.Else():
                m.d.sync += pos.eq(pos + 1)
            with m.If(q == P - 1):
                m.d.sync += [q.eq(0), nb.eq(nb + 1)]
            with m.Else():
                m.d.sync += q.eq(q + 1)
            with m.If(final):
                m.d.sync += [dwait.eq(1), c.eq(0), pos.eq(0), lane.eq(0), base.eq(0),
                             q.eq(0), nb.eq(0)]

        drain_addr = (base + pos)[:_width(G * HW)]
        m.d.comb += [brd.addr.eq(c[:_width(Co)]), brd.en.eq(en)]
        # A full bank belongs to the drain (its reads stall with the output; it clears a
        # word as the word's last channel is read), an empty one to the scatter. The drain
        # releases its bank once its last read has been used in D1.
        for b in range(2):
            with m.If(pfull[b]):
                m.d.comb += [prds[b].addr.eq(drain_addr), prds[b].en.eq(en),
                             pwrs[b].addr.eq(drain_addr), pwrs[b].data.eq(0),
                             pwrs[b].en.eq(dissue & last_of_word & (db == b))]
            with m.Else():
                m.d.comb += [prds[b].addr.eq(scatter_raddr),
                             pwrs[b].addr.eq(sa["paddr"]), pwrs[b].data.eq(new.as_value()),
                             pwrs[b].en.eq(sa["valid"] & (sb == b))]

        d1_real = Signal()
        d1_lane = Signal.like(lane)
        d1_q = Signal.like(q)
        d1_end = Signal()
        with m.If(en):
            m.d.sync += [d1_valid.eq(dissue), d1_real.eq(real), d1_lane.eq(lane), d1_q.eq(q),
                         d1_end.eq(q == P - 1)]
        # D1 -> D2: the read word's lane and the bias registered (the block RAM's output
        # feeds only the lane multiplexer); D2 adds, requantizes and stages.
        word = data.ArrayLayout(signed(Bacc), P)(Mux(db, prds[1].data, prds[0].data))
        d2 = {"valid": Signal(name="d2_valid"), "real": Signal(name="d2_real"),
              "q": Signal.like(q, name="d2_q"), "end": Signal(name="d2_end"),
              "sum": Signal(signed(Bacc), name="d2_sum"),
              "bias": Signal.like(brd.data, name="d2_bias")}
        with m.If(en):
            m.d.sync += [d2["valid"].eq(d1_valid), d2["real"].eq(d1_real), d2["q"].eq(d1_q),
                         d2["end"].eq(d1_valid & d1_end), d2["sum"].eq(word[d1_lane]),
                         d2["bias"].eq(brd.data)]
        with m.If(en & d1_valid & dwait & d1_end):
            # The bank's last read has been taken into D2: hand the bank back.
            m.d.sync += [dwait.eq(0), db.eq(~db)]
            for b in range(2):
                with m.If(db == b):
                    m.d.sync += pfull[b].eq(0)
        acc = Signal(signed(Bacc + 1))
        m.d.comb += acc.eq(d2["bias"] + d2["sum"])
        shift = layer.shift
        shifted = acc >> shift if shift >= 0 else acc << -shift
        value = Mux(d2["real"], _clamp(shifted, layer.formats.current), 0)
        staging = Signal(data.ArrayLayout(signed(layer.formats.current.bits), P))
        with m.If(en & d2["valid"]):
            for p in range(P):
                with m.If(d2["q"] == p):
                    m.d.sync += staging[p].eq(value)
            with m.If(d2["end"]):
                m.d.sync += out_valid.eq(1)
                for p in range(P):
                    m.d.sync += out.payload[p].eq(value if p == P - 1 else staging[p])
        with m.If(out.valid & out.ready & ~(d2["valid"] & d2["end"])):
            m.d.sync += out_valid.eq(0)
        m.d.comb += out.valid.eq(out_valid)

    def _elaborate_replay(self, m, src):
        """Store each computed vector (``B`` beats from ``src``) and emit it ``T`` times."""
        layer = self._layer
        P, B, T = self._lanes, self._beats, self._T
        kw = _width(B)
        m.submodules.replay = buf = memory.Memory(
            shape=unsigned(P * layer.formats.current.bits), depth=2 << kw, init=[])
        wr = buf.write_port()
        rd = buf.read_port()
        full = Signal(2)
        wb = Signal()
        wk = Signal(range(max(2, B)))
        writable = ~Mux(wb, full[1], full[0])
        m.d.comb += [src.ready.eq(writable), wr.addr.eq(Cat(wk[:kw], wb)),
                     wr.data.eq(src.payload.as_value()), wr.en.eq(src.valid & writable)]
        with m.If(src.valid & writable):
            with m.If(wk == B - 1):
                m.d.sync += [wk.eq(0), wb.eq(~wb)]
                for b in range(2):
                    with m.If(wb == b):
                        m.d.sync += full[b].eq(1)
            with m.Else():
                m.d.sync += wk.eq(wk + 1)
        rb = Signal()
        rk = Signal(range(max(2, B)))
        rt = Signal(range(max(2, T)))
        out_valid = Signal()
        adv = Signal()
        m.d.comb += adv.eq(~out_valid | self.o_current.ready)
        issue = adv & Mux(rb, full[1], full[0])
        m.d.comb += [rd.addr.eq(Cat(rk[:kw], rb)), rd.en.eq(adv),
                     self.o_current.valid.eq(out_valid), self.o_current.payload.eq(rd.data)]
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
