"""Capacity plan: what a network needs on a device, from the stage plans, before any build.

``spikefold plan --model M.npz --board B`` (or ``--standin cifar``) lists, for every
hardware stage of :func:`hdl.plan.network_plan`, its memories mapped to the device's block
RAM shapes (:func:`boards.estimate.plan_memories`, the count a build would use), the cycles
it is busy per image at the activity measured by golden's integer model on the inputs, and
whether the whole network fits. When it does not, it says which memories would have to
leave the chip: the weight memories are the ones that can stream from external memory (they
are read in a fixed order once per vector), the state (membranes, partial sums, thresholds)
cannot, so a network whose *state* alone exceeds the block RAM does not fit at any lane
count.

The CIFAR stand-in (:func:`standin_network`) is a VGG-style network at the MPBN paper's
scale: 3 x 32 x 32 input, two 3x3 conv layers per block at 64, 128 and 256 channels with a
2x2 max pooling after each block, flatten and a dense readout of 10 classes, random
trained-looking weights (``golden.examples.example_conv_network``, tdBN + channel-wise
MPBN), calibrated to 16-bit currents and membranes with 8-bit weights on random images.

Threshold tables: a conv LIF array keeps one threshold word per channel when the folded
thresholds are the same within every channel (channel-wise MPBN, which golden broadcasts
to every neuron; :func:`hdl.stages.conv_threshold_channels`), else one per neuron
(element-wise MPBN). :func:`threshold_layouts` gives, per conv LIF stage, the bits of both
layouts (the per-channel one with a copy per group of lanes that see the same channel
sequence, as the array builds it) and which one is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["standin_network", "StagePlanRow", "CapacityPlan", "capacity_plan",
           "activity", "threshold_layouts", "add_arguments", "run"]

#: VGG-style blocks of the stand-in: (channels, convs per block).
STANDIN_BLOCKS = ((64, 2), (128, 2), (256, 2))


def standin_network(T=4, *, shape=(3, 32, 32), blocks=STANDIN_BLOCKS, samples=2, seed=0):
    """``(inet, x)``: the CIFAR-sized stand-in as an :class:`IntegerNetwork` and the random
    images (``samples``, *shape) it was calibrated on."""
    from golden.calibrate import calibrate
    from golden.examples import example_conv_network
    from golden.network import IntegerNetwork
    layers = []
    for channels, convs in blocks:
        layers += [{"kind": "conv2d", "out_channels": int(channels), "kernel": 3,
                    "padding": 1}] * int(convs)
        layers.append({"kind": "pool2d", "kernel": 2, "mode": "max"})
    layers.append({"kind": "flatten"})
    net = example_conv_network(tuple(shape), layers, classes=10, T=int(T), seed=seed,
                               weight_scale=1.5)
    x = np.random.default_rng(seed).random((int(samples),) + tuple(shape))
    formats = calibrate(net, x, bits=16, weight_bits=8)
    return IntegerNetwork.from_folded(net.fold(), formats), x


def activity(inet, x):
    """Per synaptic (dense/conv) layer, per sample: the active inputs, as
    :meth:`hdl.plan.NetworkPlan.cycles_per_sample` takes them (one count for an analog
    first layer, one per timestep otherwise); plus each spiking layer's firing rate."""
    res = inet.run(x)
    x_q, _ = inet.quantize_input(x)
    per_sample = []
    for b in range(len(x_q)):
        row = []
        for i, layer in enumerate(inet.layers):
            if layer.kind not in ("dense", "conv2d"):
                continue
            if i == 0:
                row.append(int(np.count_nonzero(x_q[b])))
            else:
                s = res.traces[i - 1].out
                row.append([int(np.count_nonzero(s[t, b])) for t in range(inet.T)])
        per_sample.append(row)
    rates = [float(t.spikes.mean()) for t in res.traces if t.spikes is not None]
    return per_sample, rates


def threshold_layouts(inet, mapping, shapes):
    """Per conv layer with a LIF: ``(name, neurons, channels, element_bits, channel_bits,
    element_blocks, channel_blocks, built)``: the per-neuron table (one ``ceil(N/P)``-word
    memory per lane) against the per-channel one (``C`` words, and a copy per read port:
    one per group of lanes with the same channel sequence), both ``Bth + 2`` bits wide; blocks on a device with block shapes ``shapes`` (memories under 32 words:
    LUT RAM, 0 blocks); ``built`` is ``"per-channel"`` or ``"per-neuron"``."""
    from hdl.plan import lif_plan
    from hdl.stages import conv_threshold_channels

    from .estimate import memory_blocks
    rows = []
    for i, layer in enumerate(inet.layers):
        if layer.kind != "conv2d" or layer.config is None:
            continue
        cfg = layer.config
        width = cfg.threshold.bits + 2
        C = int(layer.out_shape[0])
        P = mapping.lanes[i]
        depth = -(-cfg.neurons // P)

        def blocks(d, copies):
            return copies * memory_blocks(d, width, shapes) if d >= 32 else 0
        # The per-channel table as hdl.lif_array builds it: one memory, a read port (a copy)
        # per group of lanes with the same channel sequence.
        table = lif_plan(cfg, P, threshold_channels=C).memories[0]
        built = "per-channel" if conv_threshold_channels(layer) else "per-neuron"
        rows.append((f"lif{i}", cfg.neurons, C, P * max(2, depth) * width,
                     table.read_ports * table.depth * width, blocks(depth, P),
                     blocks(table.depth, table.read_ports), built))
    return rows


@dataclass
class StagePlanRow:
    name: str
    kind: str
    lanes: int
    weight_bits: int
    state_bits: int
    weight_blocks: int
    state_blocks: int
    cycles: int


@dataclass
class CapacityPlan:
    target: object
    T: int
    rows: list
    cycles_per_image: int
    rates: list
    thresholds: list

    @property
    def blocks(self):
        return sum(r.weight_blocks + r.state_blocks for r in self.rows)

    @property
    def state_blocks(self):
        return sum(r.state_blocks for r in self.rows)

    @property
    def fits(self):
        return self.blocks <= self.target.bram_blocks

    def streamed(self):
        """The weight memories to move off chip, largest first, until the rest fits (None
        when the state alone does not fit)."""
        budget = self.target.bram_blocks
        if self.state_blocks > budget:
            return None
        on_chip = self.blocks
        out = []
        for r in sorted(self.rows, key=lambda r: -r.weight_blocks):
            if on_chip <= budget:
                break
            if r.weight_blocks:
                out.append(r)
                on_chip -= r.weight_blocks
        return out

    def to_json(self):
        s = self.streamed()
        return {"board": self.target.name, "T": self.T,
                "bram_blocks_available": self.target.bram_blocks,
                "bram_block_bits": self.target.bram_block, "blocks": self.blocks,
                "state_blocks": self.state_blocks, "fits": self.fits,
                "streamed_weights": None if s is None else [r.name for r in s],
                "cycles_per_image": self.cycles_per_image, "firing_rates": self.rates,
                "stages": [r.__dict__ for r in self.rows],
                "thresholds": [dict(zip(("lif", "neurons", "channels", "element_bits",
                                         "channel_bits", "element_blocks", "channel_blocks",
                                         "built"), t)) for t in self.thresholds]}


def _is_weights(name):
    return name.split(".")[-1] in ("weights",)


def capacity_plan(inet, x, target, mapping=None):
    """The :class:`CapacityPlan` of ``inet`` on ``target`` (a :class:`boards.targets.Target`)
    with the activity of inputs ``x``."""
    from hdl.mapping import HardwareMapping
    from hdl.plan import SYNAPTIC_KINDS, network_plan
    from hdl.stages import sized
    from .estimate import plan_memories
    mapping = HardwareMapping.for_network(sized(inet), mapping)
    plan = network_plan(inet, mapping)
    per_sample, rates = activity(inet, x)
    rows = []
    syn = 0
    for stage in plan.stages:
        mems = plan_memories([stage], target.bram_shapes, min_depth=32)
        wb = sum(d * w for n, d, w, _ in mems if _is_weights(n))
        sb = sum(d * w for n, d, w, _ in mems if not _is_weights(n))
        wk = sum(b for n, _, _, b in mems if _is_weights(n))
        sk = sum(b for n, _, _, b in mems if not _is_weights(n))
        if stage.kind in SYNAPTIC_KINDS:
            busy = []
            for act in per_sample:
                a = act[syn]
                busy.append(max(stage.cycles(a), stage.beats * plan.T) if stage.per_sample
                            else sum(stage.cycles(v) for v in a))
            cycles = int(np.mean(busy))
            syn += 1
        else:
            cycles = stage.cycles() * plan.T
        rows.append(StagePlanRow(stage.name, stage.kind, stage.lanes, wb, sb, wk, sk, cycles))
    cpi = int(np.mean([plan.cycles_per_sample(a) for a in per_sample]))
    return CapacityPlan(target, plan.T, rows, cpi, rates, threshold_layouts(inet, mapping, target.bram_shapes))


def format_plan(cp, clock_mhz=100.0):
    t = cp.target
    lines = [f"{'stage':10s} {'kind':8s} {'lanes':>5s} {'weight kbit':>11s} "
             f"{'state kbit':>10s} {'blocks w+s':>11s} {'busy cycles':>12s}"]
    for r in cp.rows:
        lines.append(f"{r.name:10s} {r.kind:8s} {r.lanes:5d} {r.weight_bits / 1024:11.1f} "
                     f"{r.state_bits / 1024:10.1f} {r.weight_blocks:5d}+{r.state_blocks:<5d} "
                     f"{r.cycles:12d}")
    kb = t.bram_block * t.bram_blocks / 1024
    lines.append(f"block RAM: {cp.blocks} of {t.bram_blocks} blocks ({kb:.0f} kbit) on "
                 f"{t.name}; state alone {cp.state_blocks} blocks")
    lines.append(f"cycles per image (T = {cp.T}, busiest stage, stages overlapped): "
                 f"{cp.cycles_per_image:,} = {cp.cycles_per_image / clock_mhz:,.1f} us at "
                 f"{clock_mhz:g} MHz (an assumed clock, not a measured Fmax)")
    lines.append("firing rates per LIF layer: " + ", ".join(f"{r:.3f}" for r in cp.rates))
    if cp.fits:
        lines.append("fits on chip")
    else:
        s = cp.streamed()
        if s is None:
            lines.append(f"does not fit: the state memories alone need {cp.state_blocks} "
                         f"blocks > {t.bram_blocks}; streaming weights cannot help")
        else:
            lines.append("does not fit on chip; stream these weight memories from external "
                         "memory: " + ", ".join(f"{r.name} ({r.weight_blocks} blocks)"
                                                for r in s))
    for name, n, c, eb, cb, ek, ck, built in cp.thresholds:
        why = ("thresholds the same within every channel" if built == "per-channel"
               else "thresholds differ within a channel: element-wise MPBN")
        lines.append(f"{name} thresholds: per-neuron {eb / 1024:.1f} kbit, {ek} blocks "
                     f"({n} neurons) vs per-channel {cb / 1024:.1f} kbit, {ck} blocks "
                     f"({c} channels); built {built} ({why})")
    return "\n".join(lines)


# -- spikefold plan -------------------------------------------------------------------------

def add_arguments(parser):
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a spikefold-network model file (.npz)")
    src.add_argument("--standin", choices=("cifar",),
                     help="the CIFAR-sized VGG stand-in (random weights)")
    parser.add_argument("--board", default="ulx3s-85f", help="target board (default "
                        "ulx3s-85f)")
    parser.add_argument("-T", type=int, nargs="+", default=None,
                        help="timesteps (stand-in only; several give one plan each)")
    parser.add_argument("--samples", type=int, default=2,
                        help="inputs whose activity sets the cycles (default 2)")
    parser.add_argument("--lanes", type=int, default=None, help="lanes of every layer")
    parser.add_argument("--clock", type=float, default=100.0,
                        help="clock in MHz for the us/image column (default 100)")
    parser.add_argument("--json", help="also write the plans as JSON here")


def run(args):
    import json
    from pathlib import Path
    from .targets import get_target
    target = get_target(args.board)
    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, not {args.samples}")
    if args.lanes is not None and args.lanes < 1:
        raise ValueError(f"--lanes must be a positive integer, not {args.lanes}")
    if args.clock <= 0:
        raise ValueError(f"--clock must be a positive number of MHz, not {args.clock}")
    for T in args.T or []:
        if T < 1:
            raise ValueError(f"-T must be at least 1, not {T}")
    plans = []
    if args.standin:
        for T in args.T or [2, 4]:
            print(f"CIFAR stand-in, T = {T}: calibrating and running golden on "
                  f"{args.samples} random images ...", flush=True)
            inet, x = standin_network(T, samples=args.samples)
            plans.append(capacity_plan(inet, x, target, args.lanes))
    else:
        if args.T:
            raise ValueError("-T is fixed by the model file; give it only with --standin")
        from golden.modelfile import ModelFile
        model = ModelFile.load(args.model)
        inet = model.integer()
        x = model.test_x[:args.samples] if model.test_x is not None else \
            np.random.default_rng(0).random((args.samples,) + tuple(inet.input_shape))
        plans.append(capacity_plan(inet, x, target, args.lanes))
    for cp in plans:
        print(format_plan(cp, args.clock))
        print()
    if args.json:
        Path(args.json).write_text(json.dumps([cp.to_json() for cp in plans], indent=1))
        print(f"wrote {args.json}")
    return 0
