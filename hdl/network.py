"""A whole spiking network on the fabric: dense stages, LIF arrays, readout and argmax.

Implements :class:`golden.network.IntegerNetwork` (the "Integer model" table in
``golden/network.py`` is the specification) bit for bit, one sample after another::

    i_pixels -> DenseStage 0 (MAC, once per sample, replayed T times) -> LIFArray 0
             -> DenseStage 1 (spike-driven) -> LIFArray 1 -> ...
             -> DenseStage L (spike-driven, the readout's synapses) -> Readout -> o_result

Every link is an ``amaranth.lib.stream`` with valid/ready, so any stage may stall any other.
Lock-step with the golden model holds by construction: a sample is ``ceil(n_in / Q)``
pixel beats; DenseStage 0 emits ``T`` timesteps of ``ceil(n_out / P)`` current beats for
it; a LIF array turns each timestep into one timestep of spike beats (and, after ``T``
timesteps, starts the next sample with zero membranes: see ``notes/interface.md``); each
later DenseStage turns one timestep of spike beats into one timestep of current beats; the
readout counts ``T`` timesteps per sample. The spike lists of timestep ``t + 1`` fill while
DenseStage ``l`` still works on timestep ``t`` (two banks), so the layers overlap in time,
and so do consecutive samples.

Cycles (``a_0`` non-zero pixels of a sample, ``a_l[t]`` spikes of layer ``l - 1`` at step
``t``, ``B_l = ceil(n_out_l / P_l)``): DenseStage 0 needs ``max(ceil(n_in / Q), a_0)``
cycles to collect the non-zero pixels, then ``B_0 * a_0`` MAC cycles, once per sample; a
spiking DenseStage ``B_l * max(1, a_l[t])`` cycles per step; a LIF array ``B_l`` per step.
The stages overlap, so samples stream at the pace of the slowest stage (measured figures:
``sim.network_cosim``).

:class:`Readout` (integrate-only output layer): ``logit_q[k] = sum_{t<T} c_q[t, k]`` in
``Bc + ceil(log2 T)`` bits (cannot overflow), then ``label = argmax_k logit_q[k]``, ties to
the lowest index (a sequential scan, ``classes`` cycles, during which its input stalls).

:func:`export_network_verilog` writes the Verilog (``emit_src=False``: reproducible) and a
JSON description (format ``spikefold-network-rtl``, version 1) of the ports and fields.
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
from .lif_array import LIFArray

__all__ = ["Readout", "SpikingNetwork", "result_layout", "export_network_verilog",
           "FORMAT", "VERSION"]

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

        # Sequential argmax: strictly greater replaces, so ties keep the lowest index.
        value = logits[idx]
        with m.If(scan):
            with m.If((idx == 0) | (value > best)):
                m.d.sync += [best.eq(value), label.eq(idx)]
            with m.If(idx == C - 1):
                m.d.sync += [scan.eq(0), out_valid.eq(1)]
            with m.Else():
                m.d.sync += idx.eq(idx + 1)

        out = self.o_result
        m.d.comb += [out.valid.eq(out_valid), out.payload.label.eq(label),
                     out.payload.logits.eq(logits)]
        with m.If(out.valid & out.ready):
            m.d.sync += [out_valid.eq(0), busy.eq(0)]
        return m


class SpikingNetwork(wiring.Component):
    """Run an :class:`golden.network.IntegerNetwork` on samples streamed in, bit-exactly.

    Parameters
    ----------
    network : golden.network.IntegerNetwork
    lanes : int or sequence of int
        Output neurons per beat of each layer (DenseStage and LIFArray of layer ``l``
        share ``lanes[l]``). An int applies to every layer, capped at its ``n_out``.
    in_lanes : int
        Pixels per input beat, ``1 <= in_lanes <= n_in``.

    Attributes
    ----------
    i_pixels : In(stream.Signature(ArrayLayout(signed(Bx), in_lanes)))
        The quantized input ``x_q`` (format ``network.input_format``) of one sample:
        pixels ``b * in_lanes + q``, ``ceil(n_in / in_lanes)`` beats per sample.
    o_result : Out(stream.Signature(result_layout(classes, logit_bits)))
        Per sample: ``label`` (argmax, ties to the lowest index) and ``logits``
        (``logit_q`` of :class:`golden.network.IntegerResult`).

    The stages are public for testbenches: :attr:`dense` (one :class:`DenseStage` per
    layer), :attr:`lif` (one ``LIFArray`` per hidden layer), :attr:`readout`.

    Raises
    ------
    TypeError
        ``network`` is not an ``IntegerNetwork``.
    ValueError
        Bad lane counts (the message names the layer).
    """

    def __init__(self, network, lanes, *, in_lanes=1):
        if not isinstance(network, IntegerNetwork):
            raise TypeError(f"network must be a golden.network.IntegerNetwork, not {network!r}")
        layers = network.layers
        if isinstance(lanes, (int, np.integer)) and not isinstance(lanes, bool):
            if lanes < 1:
                raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
            lanes = [min(int(lanes), layer.n_out) for layer in layers]
        else:
            try:
                lanes = [v for v in lanes]
            except TypeError:
                raise ValueError(f"lanes must be an integer or one integer per layer, not "
                                 f"{lanes!r}") from None
            if len(lanes) != len(layers):
                raise ValueError(f"lanes lists {len(lanes)} values, the network has "
                                 f"{len(layers)} layers")
        # Check every count before building anything (nothing half-built is left behind).
        for i, layer in enumerate(layers):
            n_in = in_lanes if i == 0 else lanes[i - 1]
            for name, value, limit, what in (("lanes", lanes[i], layer.n_out, "neuron"),
                                             ("in_lanes", n_in, layer.n_in, "input")):
                if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
                        or value < 1):
                    raise ValueError(f"layer{i}: {name} must be a positive integer, not "
                                     f"{value!r}")
                if value > limit:
                    raise ValueError(f"layer{i}: {name} {value} exceeds the layer's {what} "
                                     f"count {limit}; use at most {limit}")
        self._network = network
        self._lanes = tuple(lanes)
        self._in_lanes = in_lanes
        dense, lif = [], []
        for i, layer in enumerate(layers):
            try:
                dense.append(DenseStage(layer, lanes[i],
                                        in_lanes=in_lanes if i == 0 else lanes[i - 1],
                                        T=network.T))
            except ValueError as exc:
                raise ValueError(f"layer{i}: {exc}") from None
            if not layer.readout:
                lif.append(LIFArray(layer.config, lanes[i], thresholds=layer.thresholds,
                                    affine=layer.affine))
        last = layers[-1]
        self._dense, self._lif = tuple(dense), tuple(lif)
        self._readout = Readout(last.n_out, lanes[-1], network.T, last.formats.current.bits)
        super().__init__({
            "i_pixels": In(stream.Signature(
                data.ArrayLayout(signed(network.input_format.bits), in_lanes))),
            "o_result": Out(stream.Signature(
                result_layout(last.n_out, self._readout.logit_bits))),
        })

    @classmethod
    def from_model(cls, model, lanes, *, in_lanes=1):
        """The network of a :class:`golden.modelfile.ModelFile` (with formats)."""
        return cls(model.integer(), lanes, in_lanes=in_lanes)

    # -- read-only parameters --------------------------------------------------------------

    @property
    def network(self):
        return self._network

    @property
    def lanes(self):
        return self._lanes

    @property
    def in_lanes(self):
        return self._in_lanes

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
        return self._dense[0].in_beats

    @property
    def dense(self):
        return self._dense

    @property
    def lif(self):
        return self._lif

    @property
    def readout(self):
        return self._readout

    def elaborate(self, platform):
        m = Module()
        for i, stage in enumerate(self._dense):
            m.submodules[f"dense{i}"] = stage
        for i, array in enumerate(self._lif):
            m.submodules[f"lif{i}"] = array
        m.submodules.readout = self._readout

        wiring.connect(m, wiring.flipped(self.i_pixels), self._dense[0].i_pixels)
        for i, array in enumerate(self._lif):
            wiring.connect(m, self._dense[i].o_current, array.i_current)
            nxt = self._dense[i + 1].i_spikes
            m.d.comb += [
                nxt.valid.eq(array.o_spikes.valid),
                nxt.payload.eq(array.o_spikes.payload.spikes),
                array.o_spikes.ready.eq(nxt.ready),
            ]
        wiring.connect(m, self._dense[-1].o_current, self._readout.i_current)
        wiring.connect(m, self._readout.o_result, wiring.flipped(self.o_result))
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
        row["beats_per_step"] = dut.dense[i].beats
        if i < len(dut.lif):
            row["lif_latency"] = dut.lif[i].latency
            row["config"] = dut.lif[i].config.to_json()
        layers.append(row)
    return {
        "format": FORMAT, "version": VERSION, "top": name, "T": net.T,
        "sizes": [net.layers[0].n_in] + [layer.n_out for layer in net.layers],
        "input": net.input_format.to_json(), "in_lanes": dut.in_lanes,
        "in_beats": dut.in_beats, "lanes": list(dut.lanes), "classes": dut.classes,
        "logit_bits": dut.logit_bits, "layers": layers, "ports": ports, "fields": fields,
    }


def export_network_verilog(network, lanes, out_dir, name="spikefold_network", *, in_lanes=1):
    """Write ``<name>.v`` and ``<name>.json`` for ``network``.

    Parameters
    ----------
    network : golden.network.IntegerNetwork
    lanes : int or sequence of int
        As :class:`SpikingNetwork`.
    out_dir : path
        Created if missing.
    name : str
        Verilog module name and file stem.
    in_lanes : int

    Returns
    -------
    (Path, Path)
        The Verilog and JSON files.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"module name must be a Verilog identifier, not {name!r}")
    dut = SpikingNetwork(network, lanes, in_lanes=in_lanes)
    return write_rtl(dut, describe_network(dut, name), name, out_dir)
