"""A whole spiking network on the fabric: a generic chain of the stages of its layer kinds.

Implements :class:`golden.network.IntegerNetwork` (the "Integer model" table in
``golden/network.py`` is the specification) bit for bit, one sample after another. Each
integer stage's kind has a registered builder (:mod:`hdl.stages`); a dense stage gives a
:class:`hdl.dense.DenseStage` followed by a LIF array or, for the last layer, the readout::

    i_pixels -> DenseStage 0 (MAC, once per sample, replayed T times) -> LIFArray 0
             -> DenseStage 1 (spike-driven) -> LIFArray 1 -> ...
             -> DenseStage L (spike-driven, the readout's synapses) -> Readout -> o_result

How many lanes each stage has, the input lanes, whether block RAM outputs are registered
and whether each link between two parts has a register slice (:class:`hdl.skid.
RegisterSlice`, ``<part>_slice``: one cycle of latency, no ``ready`` path across a stage)
is one :class:`hdl.mapping.HardwareMapping`; what each stage builds (memories,
latency, beats, cycles) is its :mod:`hdl.plan` plan, known before elaboration.

A conv stage gives a :class:`hdl.conv.ConvStage` (``conv<i>``) and a LIF array over its
``C * H * W`` neurons; a pooling stage a :class:`hdl.pool.PoolStage` (``pool<i>``: max
pooling passes spikes on, sum pooling -- also a folded average pooling -- counts, which the
next conv or dense stage multiplies on its ``i_counts``); a flatten stage nothing (every
link already carries maps flattened channel-major)::

    i_pixels -> ConvStage 0 (MAC, once per sample) -> LIFArray 0 -> PoolStage 1
             -> ConvStage 2 (spike-driven) -> LIFArray 2 -> [flatten] -> DenseStage 4 -> Readout

Every link is an ``amaranth.lib.stream`` with valid/ready, so any stage may stall any other;
the tensor and beat layout on every link is written down in :mod:`hdl.layout`. Lock-step
with the golden model holds by construction: a sample is ``ceil(n_in / Q)`` pixel beats;
DenseStage 0 emits ``T`` timesteps of ``ceil(n_out / P)`` current beats for it; a LIF array
turns each timestep into one timestep of spike beats (and, after ``T`` timesteps, starts
the next sample with zero membranes); each later DenseStage turns one timestep of spike
beats into one timestep of current beats; the readout counts ``T`` timesteps per sample.
The spike lists of timestep ``t + 1`` fill while DenseStage ``l`` still works on timestep
``t`` (two banks), so the layers overlap in time, and so do consecutive samples.

Cycles (``a_0`` non-zero pixels of a sample, ``a_l[t]`` spikes of layer ``l - 1`` at step
``t``, ``B_l = ceil(n_out_l / P_l)``): DenseStage 0 needs ``max(ceil(n_in / Q), a_0)``
cycles to collect the non-zero pixels, then ``B_0 * a_0`` MAC cycles, once per sample; a
spiking DenseStage ``B_l * max(1, a_l[t])`` cycles per step; a LIF array ``B_l`` per step
(:meth:`hdl.plan.StagePlan.cycles`). The stages overlap, so samples stream at the pace of
the slowest stage (measured figures: ``sim.network_cosim``).

:class:`Readout` (integrate-only output layer): ``logit_q[k] = sum_{t<T} c_q[t, k]`` in
``Bc + ceil(log2 T)`` bits (cannot overflow), then ``label = argmax_k logit_q[k]``, ties to
the lowest index (a sequential scan in two registered stages, ``classes + 1`` cycles,
during which its input stalls; the result ``classes + 2`` cycles after the last beat).

:func:`export_network_verilog` writes the Verilog (``emit_src=False``: reproducible) and a
JSON description (format ``spikefold-network-rtl``, version 1) of the ports and fields, the
mapping, the stage plans and, for the co-simulation, every LIF array's ``o_spikes`` signals
inside the hierarchy (``monitors``).
"""

from __future__ import annotations

import math

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from golden.network import IntegerNetwork

from .dense import DenseStage
from .export import payload_fields, verilog_ports, write_rtl
from .layout import connect_streams
from .lif_array import LIFArray
from .mapping import HardwareMapping
from .plan import network_plan
from .skid import RegisterSlice
from .stages import builder_for, layer_sizes, sized

__all__ = ["Readout", "SpikingNetwork", "result_layout", "weight_write_signature",
           "export_network_verilog", "FORMAT", "VERSION"]

FORMAT = "spikefold-network-rtl"
VERSION = 1


def _width(count):
    return max(1, ceil_log2(count))


def result_layout(classes, logit_bits):
    """``o_result`` payload: ``label`` (the argmax) and the ``classes`` logits."""
    return data.StructLayout({
        "label": unsigned(_width(classes)),
        "logits": data.ArrayLayout(signed(logit_bits), classes),
    })


def weight_write_signature(memories):
    """The weight-write port of :class:`SpikingNetwork` (``load_weights``, seen from the
    writer) for ``memories``, ``(layer, words, width)`` rows: ``en``, ``layer`` (the
    integer stage's index), ``addr`` and ``data`` (wide enough for every memory)."""
    memories = tuple(memories)
    return wiring.Signature({
        "en": Out(1), "layer": Out(8),
        "addr": Out(max([_width(words) for _, words, _ in memories], default=1)),
        "data": Out(max([width for *_, width in memories], default=1))})


class Readout(wiring.Component):
    """Integrate the readout currents over ``T`` timesteps and pick the largest.

    Parameters
    ----------
    classes : int
        Output neurons (the readout layer's ``n_out``).
    lanes : int
        ``P``: currents per input beat, ``1 <= P <= classes``.
    T : int
        Timesteps per sample.
    current_bits : int
        ``Bc`` of the readout currents.

    Attributes
    ----------
    i_current : In(stream.Signature(ArrayLayout(signed(Bc), P)))
        ``ceil(classes / P)`` beats per timestep, ``T`` timesteps per sample.
    o_result : Out(stream.Signature(result_layout(classes, Bc + ceil(log2 T))))
        One transfer per sample: ``label`` (ties to the lowest index) and ``logits``.
        Registered. ``i_current.ready`` is low from the sample's last beat until the
        result has been taken.

    The argmax is a scan over the classes in two stages: a register takes
    ``logits[idx]`` (the ``classes``-way multiplexer), the next cycle compares it with
    the best so far (strictly greater replaces, so ties keep the lowest index). The
    result is valid :attr:`latency` = ``classes + 2`` cycles after the sample's last
    input beat.
    """

    def __init__(self, classes, lanes, T, current_bits):
        for name, value in (("classes", classes), ("lanes", lanes), ("T", T),
                            ("current_bits", current_bits)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if lanes > classes:
            raise ValueError(f"lanes {lanes} exceeds the class count {classes}")
        self._classes, self._lanes, self._T = int(classes), int(lanes), int(T)
        self._current_bits = int(current_bits)
        self._logit_bits = self._current_bits + math.ceil(math.log2(self._T))
        super().__init__({
            "i_current": In(stream.Signature(data.ArrayLayout(signed(current_bits), lanes))),
            "o_result": Out(stream.Signature(result_layout(classes, self._logit_bits))),
        })

    @property
    def classes(self):
        return self._classes

    @property
    def lanes(self):
        return self._lanes

    @property
    def T(self):
        return self._T

    @property
    def logit_bits(self):
        return self._logit_bits

    @property
    def latency(self):
        """Cycles from the sample's last accepted input beat to ``o_result.valid``:
        ``classes`` scan steps, the compare of the last one, the result register."""
        return self._classes + 2

    def elaborate(self, platform):
        m = Module()
        C, P, T = self._classes, self._lanes, self._T
        B = -(-C // P)
        logits = Signal(data.ArrayLayout(signed(self._logit_bits), C))
        k = Signal(range(max(2, B)))
        t = Signal(range(max(2, T)))
        busy = Signal()                  # scanning or holding a result
        scan = Signal()
        idx = Signal(range(max(2, C)))
        best = Signal(signed(self._logit_bits))
        label = Signal(_width(C))
        sel = Signal(signed(self._logit_bits))   # logits[idx] of the step before
        sel_idx = Signal(range(max(2, C)))
        cmp = Signal()                           # sel holds a value to compare
        cmp_first = Signal()
        cmp_last = Signal()
        out_valid = Signal()

        inp = self.i_current
        m.d.comb += inp.ready.eq(~busy)
        with m.If(inp.valid & inp.ready):
            for i in range(C):
                kk, p = divmod(i, P)
                with m.If(k == kk):
                    m.d.sync += logits[i].eq(Mux(t == 0, 0, logits[i]) + inp.payload[p])
            with m.If(k == B - 1):
                m.d.sync += k.eq(0)
                with m.If(t == T - 1):
                    m.d.sync += [t.eq(0), busy.eq(1), scan.eq(1), idx.eq(0)]
                with m.Else():
                    m.d.sync += t.eq(t + 1)
            with m.Else():
                m.d.sync += k.eq(k + 1)

        # Sequential argmax, two stages: the scan registers ``logits[idx]`` (the C-way
        # multiplexer) one step ahead of the compare, which sees only registers. Strictly
        # greater replaces, so ties keep the lowest index (golden's rule).
        with m.If(scan):
            m.d.sync += [sel.eq(logits[idx]), sel_idx.eq(idx), cmp.eq(1),
                         cmp_first.eq(idx == 0), cmp_last.eq(idx == C - 1)]
            with m.If(idx == C - 1):
                m.d.sync += scan.eq(0)
            with m.Else():
                m.d.sync += idx.eq(idx + 1)
        with m.Else():
            m.d.sync += cmp.eq(0)
        with m.If(cmp):
            with m.If(cmp_first | (sel > best)):
                m.d.sync += [best.eq(sel), label.eq(sel_idx)]
            with m.If(cmp_last):
                m.d.sync += out_valid.eq(1)

        out = self.o_result
        m.d.comb += [out.valid.eq(out_valid), out.payload.label.eq(label),
                     out.payload.logits.eq(logits)]
        with m.If(out.valid & out.ready):
            m.d.sync += [out_valid.eq(0), busy.eq(0)]
        return m


class SpikingNetwork(wiring.Component):
    """Run an :class:`golden.network.IntegerNetwork` on samples streamed in, bit-exactly.

    A generic chain: each integer stage's registered builder (:mod:`hdl.stages`, by
    ``layer.kind``) gives its parts, and each part's output stream feeds the next part's
    input stream (layout: :mod:`hdl.layout`).

    Parameters
    ----------
    network : golden.network.IntegerNetwork
    mapping : hdl.mapping.HardwareMapping, int, sequence of int or None
        Lanes per layer, input lanes and registered BRAM outputs. An int or a sequence
        (the lanes) or ``None`` (the defaults) goes through
        :meth:`HardwareMapping.for_network` with ``in_lanes`` and ``outreg``.
    in_lanes : int or None
    outreg : bool or None
        Only with a mapping that is not a ``HardwareMapping`` (see ``for_network``; the
        register slices come from the mapping, default on).

    Attributes
    ----------
    i_pixels : In(stream.Signature(ArrayLayout(signed(Bx), in_lanes)))
        The quantized input ``x_q`` (format ``network.input_format``) of one sample:
        pixels ``b * in_lanes + q``, ``ceil(n_in / in_lanes)`` beats per sample.
    o_result : Out(stream.Signature(result_layout(classes, logit_bits)))
        Per sample: ``label`` (argmax, ties to the lowest index) and ``logits``
        (``logit_q`` of :class:`golden.network.IntegerResult`).
    load_weights : In(weight_write_signature(weight_memories))
        While ``en`` is high, word ``addr`` of the weight memory of the dense stage of
        integer stage ``layer`` becomes ``data`` (low :attr:`DenseStage.weight_width`
        bits; :func:`hdl.dense.weight_memory_words`' packing) at the clock edge; no other
        stage is touched. For weights in SPRAM (no initial contents on silicon); write
        only while the network is idle. ``en`` low (the default) writes nothing.

    The stages are public for testbenches: :attr:`parts` (every :class:`hdl.stages.Part`
    in dataflow order), :attr:`dense` (the :class:`DenseStage` of every layer), :attr:`lif`
    (the ``LIFArray`` of every hidden layer), :attr:`readout`; :attr:`plan` is the
    :class:`hdl.plan.NetworkPlan` (computed without elaborating).

    Raises
    ------
    TypeError
        ``network`` is not an ``IntegerNetwork``.
    ValueError
        Bad lane counts (the message names the layer), an unknown layer kind.
    """

    def __init__(self, network, mapping=None, *, in_lanes=None, outreg=None):
        if not isinstance(network, IntegerNetwork):
            raise TypeError(f"network must be a golden.network.IntegerNetwork, not {network!r}")
        # Check every count before building anything (nothing half-built is left behind).
        mapping = HardwareMapping.for_network(sized(network), mapping, in_lanes, outreg)
        builders = [builder_for(layer) for layer in network.layers]
        for i, (layer, builder) in enumerate(zip(network.layers, builders)):
            builder.plan(layer, i, mapping, network.T)     # pure: raises on a bad mapping
        self._network = network
        self._mapping = mapping
        parts = []
        for i, (layer, builder) in enumerate(zip(network.layers, builders)):
            parts.extend(builder.build(layer, i, mapping, network.T))
        self._parts = tuple(parts)
        self._dense = tuple(p.component for p in parts if isinstance(p.component, DenseStage))
        self._lif = tuple(p.component for p in parts if isinstance(p.component, LIFArray))
        self._readout = parts[-1].component
        if not isinstance(self._readout, Readout):
            raise ValueError("the network's last layer must be a readout layer")
        last = network.layers[-1]
        self._weight_parts = tuple(p for p in parts if isinstance(p.component, DenseStage))
        super().__init__({
            "i_pixels": In(stream.Signature(
                data.ArrayLayout(signed(network.input_format.bits), mapping.in_lanes))),
            "o_result": Out(stream.Signature(
                result_layout(last.n_out, self._readout.logit_bits))),
            "load_weights": In(weight_write_signature(self.weight_memories)),
        })

    @classmethod
    def from_model(cls, model, mapping=None, *, in_lanes=None, outreg=None):
        """The network of a :class:`golden.modelfile.ModelFile` (with formats)."""
        return cls(model.integer(), mapping, in_lanes=in_lanes, outreg=outreg)

    # -- read-only parameters --------------------------------------------------------------

    @property
    def network(self):
        return self._network

    @property
    def mapping(self):
        return self._mapping

    @property
    def plan(self):
        """The :class:`hdl.plan.NetworkPlan` of this network and mapping."""
        return network_plan(self._network, self._mapping)

    @property
    def lanes(self):
        return self._mapping.lanes

    @property
    def in_lanes(self):
        return self._mapping.in_lanes

    @property
    def outreg(self):
        return self._mapping.outreg

    @property
    def T(self):
        return self._network.T

    @property
    def classes(self):
        return self._network.layers[-1].n_out

    @property
    def logit_bits(self):
        return self._readout.logit_bits

    @property
    def in_beats(self):
        """Pixel beats per sample."""
        return self._parts[0].component.in_beats

    @property
    def parts(self):
        return self._parts

    @property
    def dense(self):
        return self._dense

    @property
    def lif(self):
        return self._lif

    @property
    def readout(self):
        return self._readout

    @property
    def weight_memories(self):
        """``(layer, words, width)`` of every dense stage's weight memory (``load_weights``
        writes them): the integer stage's index, :attr:`DenseStage.weight_words` and
        :attr:`DenseStage.weight_width`."""
        return tuple((p.layer, p.component.weight_words, p.component.weight_width)
                     for p in self._weight_parts)

    def elaborate(self, platform):
        m = Module()
        for part in self._parts:
            m.submodules[part.name] = part.component
        connect_streams(m, wiring.flipped(self.i_pixels), self._parts[0].i_stream)
        for src, dst in zip(self._parts, self._parts[1:]):
            if self._mapping.slices:
                # The slice carries what the next stage takes (a LIF array's spikes only).
                link = RegisterSlice(dst.i_stream.payload.shape())
                m.submodules[f"{src.name}_slice"] = link
                connect_streams(m, src.o_stream, link.i)
                connect_streams(m, link.o, dst.i_stream)
            else:
                connect_streams(m, src.o_stream, dst.i_stream)
        connect_streams(m, self._parts[-1].o_stream, wiring.flipped(self.o_result))
        lw = self.load_weights
        for part in self._weight_parts:
            ww = part.component.weight_write
            m.d.comb += [ww.addr.eq(lw.addr), ww.data.eq(lw.data),
                         ww.en.eq(lw.en & (lw.layer == part.layer))]
        return m


def describe_network(dut, name):
    """The JSON description (a dict) of ``dut`` exported as module ``name``."""
    net = dut.network
    ports = {"clk": {"dir": "in", "width": 1}, "rst": {"dir": "in", "width": 1}}
    for port, (value, direction) in verilog_ports(dut).items():
        ports[port] = {"dir": direction, "width": len(value)}
    fields = {f"{s}__payload": payload_fields(getattr(dut, s).payload.shape(), f"{s}__payload")
              for s in ("i_pixels", "o_result")}
    layers = []
    for i, row in enumerate(net.spec()):
        row = dict(row)
        row["lanes"] = dut.lanes[i]
        parts = [p for p in dut.parts if p.layer == i]
        # A flatten stage has no part: its beats are the previous stage's.
        row["beats_per_step"] = (parts[0].component.beats if parts
                                 else layers[-1]["beats_per_step"])
        for part in parts:
            if isinstance(part.component, LIFArray):
                row["lif_latency"] = part.component.latency
                row["config"] = part.component.config.to_json()
        layers.append(row)
    # Every LIF array's o_spikes stream, as cocotb sees it inside the exported hierarchy
    # (``dut.<instance>.<signal>``): the co-simulation checks every layer's spikes.
    monitors = []
    for part in dut.parts:
        if isinstance(part.component, LIFArray):
            array = part.component
            shape = array.o_spikes.payload.shape()
            monitors.append({
                "layer": part.layer, "instance": part.name, "neurons": array.config.neurons,
                "shape": [int(v) for v in np.atleast_1d(net.layers[part.layer].out_shape)]
                if hasattr(net.layers[part.layer], "out_shape") else
                [int(array.config.neurons)],
                "lanes": array.lanes, "beats": array.beats_per_step,
                "valid": "o_spikes__valid", "ready": "o_spikes__ready",
                "payload": "o_spikes__payload",
                "fields": payload_fields(shape, "o_spikes__payload")})
    return {
        "format": FORMAT, "version": VERSION, "top": name, "T": net.T,
        "sizes": [layer_sizes(net.layers[0])[0]] + [layer_sizes(layer)[1]
                                                    for layer in net.layers],
        "input": net.input_format.to_json(), "in_lanes": dut.in_lanes,
        "in_beats": dut.in_beats, "lanes": list(dut.lanes), "outreg": dut.outreg,
        "slices": dut.mapping.slices,
        "classes": dut.classes, "logit_bits": dut.logit_bits, "layers": layers,
        "monitors": monitors, "plan": dut.plan.to_json(), "ports": ports, "fields": fields,
    }


def export_network_verilog(network, mapping, out_dir, name="spikefold_network", *,
                           in_lanes=None, outreg=None):
    """Write ``<name>.v`` and ``<name>.json`` for ``network``.

    Parameters
    ----------
    network : golden.network.IntegerNetwork
    mapping : hdl.mapping.HardwareMapping, int, sequence of int or None
        As :class:`SpikingNetwork` (with ``in_lanes`` and ``outreg``).
    out_dir : path
        Created if missing.
    name : str
        Verilog module name and file stem.

    Returns
    -------
    (Path, Path)
        The Verilog and JSON files.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"module name must be a Verilog identifier, not {name!r}")
    dut = SpikingNetwork(network, mapping, in_lanes=in_lanes, outreg=outreg)
    return write_rtl(dut, describe_network(dut, name), name, out_dir)
