"""Plans of the hardware stages, computed without elaborating anything.

A :class:`StagePlan` says what one hardware stage of :class:`hdl.network.SpikingNetwork`
will be: its beats per vector in and out, its pipeline latency, every memory it builds
(:class:`MemoryPlan`: name, width, depth, read ports) and its cycles per input vector as a
function of activity. :func:`network_plan` lists the stages of a whole network for a
:class:`hdl.mapping.HardwareMapping` (via the kind registry of :mod:`hdl.stages`);
``boards/`` sums these plans instead of recomputing memory geometry, and
``tests/test_hdl_plan.py`` checks every plan against what elaboration builds.

The functions here are pure: they read the integer stage's tables and formats and the lane
counts, and repeat the geometry rules written down in the builders' docstrings
(:mod:`hdl.dense`, :mod:`hdl.lif_array`, :class:`hdl.network.Readout`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.utils import ceil_log2

__all__ = ["MemoryPlan", "StagePlan", "NetworkPlan", "dense_plan", "lif_plan", "readout_plan",
           "conv_plan", "pool_plan", "network_plan", "lif_latency", "dense_engine_depth",
           "conv_scatter_depth", "pool_latency", "count_bits", "input_value_bits",
           "BRAM_MIN_DEPTH", "SYNAPTIC_KINDS", "CREDIT_QUEUE_DEPTH"]

#: Stage kinds whose cycles depend on the number of active inputs.
SYNAPTIC_KINDS = ("dense", "conv2d")

#: Memories at least this deep become block RAM (shallower ones are left to LUT RAM or
#: flip-flops by Yosys's memory mapper; with registered outputs DenseStage gives them an
#: inferred memory and a fabric register instead of block RAM primitives).
BRAM_MIN_DEPTH = 32


#: Words of a credit-flow dense stage's output queue (LUT RAM: ECP5's DPR16X4 is 16 deep).
CREDIT_QUEUE_DEPTH = 16


def dense_engine_depth(analog, outreg=False, queue=False):
    """Cycles from the DenseStage engine issuing a beat's last list entry to that beat in
    the output register: S0 issue, S1, S2, [S3 product], A, O (4 spike / 5 analog or count
    input: ``analog`` means "the stage multiplies").
    Registered memory outputs (the pipelined stage, :mod:`hdl.dense`) add five: one
    register stage each for the list entry, the weight address, the weight word and the
    weight register, and the ingest's registered list write, which hands a bank to the
    engine one cycle later (counted here, so the first beat of a vector with ``a`` active
    inputs still comes ``2 * max(1, a) + depth`` cycles after its last input beat).
    ``queue``: the credit flow's output queue (:mod:`hdl.dense`) adds one, its output
    register (the requantized beat is written into the queue where the stall flow
    registers it)."""
    return (5 if analog else 4) + (5 if outreg else 0) + (1 if queue else 0)


def _width(count):
    return max(1, ceil_log2(count))


def count_bits(value_max):
    """Bits of an unsigned count ``0 .. value_max``: ``ceil(log2(value_max + 1))`` (the
    payload width of a sum pooling stage's counts, :mod:`hdl.pool`)."""
    return max(1, ceil_log2(int(value_max) + 1))


def input_value_bits(layer):
    """Bits of one input value that a synaptic stage (dense or conv) keeps in its active
    list and multiplies by: ``Bx`` (the analog first layer, signed), ``count_bits(
    input_max)`` (counts after a sum pooling layer, unsigned), 0 (spikes: no value, the
    weight is added)."""
    if layer.input_bits is not None:
        return int(layer.input_bits)
    input_max = int(getattr(layer, "input_max", 1))
    return count_bits(input_max) if input_max > 1 else 0


def _depth(entries):
    """LIFArray's rule: at least 2 words (a 0-bit address is not valid Verilog)."""
    return max(2, entries)


@dataclass(frozen=True)
class MemoryPlan:
    """One memory: ``depth`` words of ``width`` bits; ``read_ports`` synchronous read ports
    (a block RAM has one read port: more ports replicate the memory)."""

    name: str
    width: int
    depth: int
    read_ports: int = 1

    @property
    def bits(self):
        """Bits stored (one copy)."""
        return self.width * self.depth

    def to_json(self):
        return {"name": self.name, "width": self.width, "depth": self.depth,
                "read_ports": self.read_ports}


@dataclass(frozen=True)
class StagePlan:
    """One hardware stage of the network.

    Attributes
    ----------
    name : str
        Its submodule name in :class:`hdl.network.SpikingNetwork` (``dense0``, ``conv0``,
        ``pool1``, ``lif0``, ``readout``).
    kind : str
        ``"dense"``, ``"conv2d"``, ``"pool2d"``, ``"lif"`` or ``"readout"``.
    lanes, in_lanes : int
        Values per output beat / per input beat.
    in_beats, beats : int
        Input beats per input vector, output beats per output vector
        (``ceil(n_in / in_lanes)``, ``ceil(n_out / lanes)``; the readout: one result).
    latency : int
        Pipeline depth in cycles (dense: engine issue to output register; LIF: accepted
        beat to output beat; readout: the last input beat to the result, argmax scan
        included).
    memories : tuple of MemoryPlan
    per_sample : bool
        The input vector comes once per sample (the analog first dense or conv stage,
        replayed ``T`` times) rather than once per timestep.
    active_cost, scatter_cost, drain_cost : int
        ``conv2d`` only: the scatter's cycles per active input (``k * k * G``) and per
        vector (its pipeline flush), the drain's cycles per vector (``B * P + 1``); the
        two overlap (see :mod:`hdl.conv`).
    """

    name: str
    kind: str
    lanes: int
    in_lanes: int
    in_beats: int
    beats: int
    latency: int
    memories: tuple
    per_sample: bool = False
    T: int = 1
    active_cost: int = 0
    scatter_cost: int = 0
    drain_cost: int = 0

    def cycles(self, active=0):
        """Busy cycles of the stage for one input vector with ``active`` non-zero inputs
        (dense: ``beats * max(1, active)`` engine cycles; conv: the slower of the scatter,
        ``max(1, active * k * k * G) + flush``, and the drain of the vector before,
        ``B * P + 1``; pool: ``max(in_beats, beats)``; LIF:
        ``beats``; readout: its ``in_beats`` per timestep; the input ingest overlaps the
        engine)."""
        active = int(active)
        if active < 0:
            raise ValueError(f"active must be a non-negative integer, not {active!r}")
        if self.kind == "dense":
            return self.beats * max(1, active)
        if self.kind == "conv2d":
            return max(max(1, active * self.active_cost) + self.scatter_cost, self.drain_cost)
        if self.kind == "pool2d":
            return max(self.in_beats, self.beats)
        if self.kind == "lif":
            return self.beats
        return self.in_beats

    def cycles_per_step(self, active=0):
        """Busy cycles per timestep: :meth:`cycles`, spread over ``T`` steps for a vector
        that comes once per sample (the replay then emits ``beats`` per step)."""
        if self.per_sample:
            return max(self.beats, -(-self.cycles(active) // self.T))
        return self.cycles(active)

    @property
    def memory_bits(self):
        return sum(m.bits * m.read_ports for m in self.memories)

    def to_json(self):
        return {"name": self.name, "kind": self.kind, "lanes": self.lanes,
                "in_lanes": self.in_lanes, "in_beats": self.in_beats, "beats": self.beats,
                "latency": self.latency, "per_sample": self.per_sample,
                "memories": [m.to_json() for m in self.memories]}


@dataclass(frozen=True)
class NetworkPlan:
    """The stage plans of a whole network, in dataflow order."""

    stages: tuple
    mapping: object
    T: int

    def memories(self):
        """``(stage name + "." + memory name, MemoryPlan)`` of every memory."""
        return [(f"{s.name}.{m.name}", m) for s in self.stages for m in s.memories]

    @property
    def memory_bits(self):
        return sum(s.memory_bits for s in self.stages)

    def stage(self, name):
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def cycles_per_sample(self, active):
        """Cycles per sample with the stages overlapped: the busiest stage's cycles for this
        sample (``active[i]``: the non-zero inputs of the ``i``-th dense or conv stage, one
        value for the analog first stage, one per timestep for the others). Averaged over
        samples streamed back to back it is the measured steady-state interval between
        results (``tests/test_hdl_plan.py``: within 5 % in simulation); single samples
        differ by the neighbours' overlap."""
        dense = [s for s in self.stages if s.kind in SYNAPTIC_KINDS]
        if len(active) != len(dense):
            raise ValueError(f"active lists {len(active)} dense or conv stages, the network "
                             f"has {len(dense)}")
        worst = 0
        for s, a in zip(dense, active):
            if s.per_sample:
                a = [a] if not hasattr(a, "__len__") else a
                worst = max(worst, s.cycles(a[0]), s.beats * self.T)
            else:
                worst = max(worst, sum(s.cycles(v) for v in a))
        for s in self.stages:
            if s.kind not in SYNAPTIC_KINDS:
                worst = max(worst, s.cycles() * self.T)
        return worst

    def to_json(self):
        return {"mapping": self.mapping.to_json(), "T": self.T,
                "stages": [s.to_json() for s in self.stages],
                "memory_bits": self.memory_bits}


def dense_plan(layer, lanes, in_lanes, T, *, outreg=False, flow="stall", name="dense"):
    """Plan of ``hdl.dense.DenseStage(layer, lanes, in_lanes=in_lanes, T=T,
    memory_outreg=outreg, flow=flow)`` (the weight memory's extra zero word only without
    ``outreg``; the credit flow's output queue, LUT RAM, without the replay)."""
    n_in, n_out = layer.n_in, layer.n_out
    P, Q = int(lanes), int(in_lanes)
    B, IB = -(-n_out // P), -(-n_in // Q)
    analog = layer.input_bits is not None
    xbits = input_value_bits(layer)
    jw = _width(n_in)
    mems = [
        MemoryPlan("active_list", jw + xbits, 2 << jw),
        MemoryPlan("weights", P * layer.formats.weight.bits,
                   _depth(B * n_in) if outreg else B * n_in + 1),
        MemoryPlan("biases", P * layer.bias_bits, _depth(B)),
    ]
    replay = analog and T > 1
    if replay:
        mems.append(MemoryPlan("replay", P * layer.formats.current.bits, 2 << _width(B)))
    queue = flow == "credit" and not replay
    if queue:
        mems.append(MemoryPlan("queue", P * layer.formats.current.bits, CREDIT_QUEUE_DEPTH))
    return StagePlan(name, "dense", P, Q, IB, B, dense_engine_depth(xbits > 0, outreg, queue),
                     tuple(mems), per_sample=replay, T=int(T))


def lif_latency(config, outreg=False):
    """``LIFArray.latency``: ``A + 2`` with ``A`` = 2 (shift leak), 3 (multiply leak) or 4
    (affine), plus one with registered memory outputs."""
    mult_leak = config.leak_shift is None
    add = (4 if config.affine else (3 if mult_leak else 2)) + (1 if outreg else 0)
    return add + 2


def lif_plan(config, lanes, *, outreg=False, name="lif", threshold_channels=None,
             flow="stall"):
    """Plan of ``hdl.lif_array.LIFArray(config, lanes, memory_outreg=outreg, flow=flow)``.

    Memories (the geometry in :mod:`hdl.lif_array`'s docstring): per lane ``p`` a
    membrane memory ``signed(Bm)`` and a threshold memory ``Bth + 2`` bits, both
    ``max(2, ceil(N / P))`` deep; with the affine stage one table ``Ba + Bm`` bits wide at
    address ``(t, channel)`` = ``t << ceil(log2 C) | channel``, so ``T * 2**ceil(log2 C)``
    deep (at least 2), with one read port per group of lanes that see the same channel
    sequence. With ``threshold_channels = C`` one per-channel threshold table instead of
    the per-lane ones: ``(B * P - 1) // (N / C) + 1`` words (at least 2), one read port per
    group of lanes with the same channel sequence."""
    P, N = int(lanes), config.neurons
    B = -(-N // P)
    mems = []
    if threshold_channels is None:
        for p in range(P):
            mems.append(MemoryPlan(f"threshold_{p}", config.threshold.bits + 2, _depth(B)))
    else:
        cs = N // threshold_channels
        groups = {tuple((k * P + p) // cs for k in range(B)) for p in range(P)}
        mems.append(MemoryPlan("threshold", config.threshold.bits + 2,
                               _depth((B * P - 1) // cs + 1), read_ports=len(groups)))
    if config.affine:
        cs = config.channel_size
        groups = {tuple((k * P + p) // cs for k in range(B)) for p in range(P)}
        mems.append(MemoryPlan("affine", config.scale.bits + config.membrane.bits,
                               _depth(config.T << ceil_log2(config.channels)),
                               read_ports=len(groups)))
    for p in range(P):
        mems.append(MemoryPlan(f"membrane_{p}", config.membrane.bits, _depth(B)))
    latency = lif_latency(config, outreg)
    if flow == "credit":
        # The credit flow's output queue (LUT RAM): one o_spikes payload per word.
        from amaranth.lib import data
        from .lif_array import credit_queue_depth, output_layout
        width = data.Layout.cast(output_layout(config, P)).size
        mems.append(MemoryPlan("out_queue", width, credit_queue_depth(latency)))
    return StagePlan(name, "lif", P, P, B, B, latency, tuple(mems), T=config.T)


def readout_plan(classes, lanes, T, current_bits, *, name="readout"):
    """Plan of :class:`hdl.network.Readout`: no memory (the logits are registers); the
    argmax scan takes ``classes`` cycles after the sample's last beat, its compare stage
    one more (the selected logit is registered before the compare), the result register
    one more: latency ``classes + 2`` (``Readout.latency``)."""
    P = int(lanes)
    B = -(-int(classes) // P)
    return StagePlan(name, "readout", 1, P, B, 1, int(classes) + 2, (), T=int(T))


def conv_scatter_depth(analog):
    """``ConvStage.scatter_depth``: cycles from the scatter's last issue to the drain's
    first read (S1 .. S4 and the flush; one more stage for the products of analog or count
    inputs: ``analog`` means "the stage multiplies")."""
    return 6 + (1 if analog else 0)


def conv_plan(layer, lanes, in_lanes, T, *, name="conv"):
    """Plan of ``hdl.conv.ConvStage(layer, lanes, in_lanes=in_lanes, T=T)`` (geometry in
    :mod:`hdl.conv`'s docstring; plain memories, every depth at least 2)."""
    Ci, H, W = (int(v) for v in layer.in_shape)
    Co, Ho, Wo = (int(v) for v in layer.out_shape)
    k = int(layer.kernel)
    P, Q = int(lanes), int(in_lanes)
    n_in, n_out = Ci * H * W, Co * Ho * Wo
    G, B, IB = -(-Co // P), -(-n_out // P), -(-n_in // Q)
    analog = layer.input_bits is not None
    xbits = input_value_bits(layer)
    jw = _width(n_in)
    mems = [
        MemoryPlan("active_list", jw + xbits, 2 << jw),
        MemoryPlan("weights", P * layer.formats.weight.bits, _depth(G * Ci * k * k)),
        MemoryPlan("psums_0", P * layer.acc_bits, _depth(G * Ho * Wo)),
        MemoryPlan("psums_1", P * layer.acc_bits, _depth(G * Ho * Wo)),
        MemoryPlan("biases", layer.bias_bits, _depth(Co)),
        MemoryPlan("coords", _width(Ci * k * k) + _width(H) + _width(W), _depth(n_in)),
    ]
    replay = analog and T > 1
    if replay:
        mems.append(MemoryPlan("replay", P * layer.formats.current.bits, 2 << _width(B)))
    depth = conv_scatter_depth(xbits > 0)
    latency = depth + B * P + 4 if replay else depth + P + 2
    return StagePlan(name, "conv2d", P, Q, IB, B, latency, tuple(mems), per_sample=replay,
                     T=int(T), active_cost=k * k * G, scatter_cost=depth - 1,
                     drain_cost=B * P + 1)


def pool_latency():
    """``PoolStage.latency``: cycles from taking a map's last input beat to offering its
    first output beat (one edge marks the map full, one loads the output register)."""
    return 2


def pool_plan(layer, lanes, in_lanes, T, *, name="pool"):
    """Plan of ``hdl.pool.PoolStage(layer, lanes, in_lanes=in_lanes)`` (max or sum mode):
    no memory (two register maps of ``N_out * count_bits(out_max)`` bits), latency
    :func:`pool_latency`, ``max(in_beats, beats)`` cycles per map."""
    n_in, n_out = int(np.prod(layer.in_shape)), int(np.prod(layer.out_shape))
    P, Q = int(lanes), int(in_lanes)
    return StagePlan(name, "pool2d", P, Q, -(-n_in // Q), -(-n_out // P), pool_latency(), (),
                     T=int(T))


def network_plan(inet, mapping=None):
    """The :class:`NetworkPlan` of ``inet`` under ``mapping`` (a
    :class:`hdl.mapping.HardwareMapping`, or what ``HardwareMapping.for_network`` takes
    as ``lanes``)."""
    from .mapping import HardwareMapping
    from .stages import builder_for, sized
    mapping = HardwareMapping.for_network(sized(inet), mapping)
    stages = []
    for index, layer in enumerate(inet.layers):
        stages.extend(builder_for(layer).plan(layer, index, mapping, inet.T))
    return NetworkPlan(tuple(stages), mapping, inet.T)

