"""Fit estimate: will a LIF array (and the host link) fit a board's FPGA? Checked before
any tool runs, so a hopeless build is refused in a second instead of failing in nextpnr.

Memory is counted exactly from the array's plan (:func:`hdl.plan.lif_plan`, which
``tests/test_hdl_plan.py`` checks against what elaboration builds: per lane a membrane and a
threshold memory, the affine table with one copy per read port) and the host link's
request buffer (``buffer_bytes`` x 8). Each memory is mapped to the block shape of the
device that needs the fewest blocks (as Yosys's memory mapper does for these simple
memories); :func:`plan_memories` does the same for any list of plans (the network build).

Logic is an estimate calibrated on measured builds (``spikefold sweep``): logic per lane
grows with the membrane width; multipliers (a non-power-of-two leak, the affine stage) use
DSP blocks while there are enough and LUTs after that.
"""

from __future__ import annotations

from dataclasses import dataclass

from golden.core import CoreConfig
from hdl.plan import lif_plan

__all__ = ["FitEstimate", "estimate", "check_fit", "memory_blocks", "plan_memories"]

#: Logic per lane per membrane bit, plus a per-lane constant (calibrated on 16-bit builds:
#: iCE40 logic cells, ECP5/XC7 LUTs; measured marginal cost: iCE40 217 LC, ECP5 152 LUT).
_LOGIC_PER_BIT = {"ice40": 13.5, "ecp5": 9.0, "xc7": 7.0}
_LOGIC_PER_LANE = {"ice40": 8, "ecp5": 8, "xc7": 8}
#: The host link (UART, framer, record assembly) and fixed array control.
_LOGIC_LINK = {"ice40": 1100, "ecp5": 900, "xc7": 700}
_LOGIC_CONTROL = 60


def memory_blocks(depth, width, shapes):
    """Fewest blocks of ``shapes`` ((depth, width) configurations) holding depth x width."""
    return min(-(-width // w) * -(-depth // d) for d, w in shapes)


def plan_memories(stages, shapes, *, min_depth=0):
    """``(stage.memory name, depth, width, blocks)`` of every memory of the
    :class:`hdl.plan.StagePlan` list ``stages`` (a memory with several read ports is one
    copy per port); memories shallower than ``min_depth`` count 0 blocks (left to LUT RAM
    or flip-flops)."""
    rows = []
    for stage in stages:
        for mem in stage.memories:
            blocks = (memory_blocks(mem.depth, mem.width, shapes) * mem.read_ports
                      if mem.depth >= min_depth else 0)
            rows.append((f"{stage.name}.{mem.name}", mem.depth, mem.width, blocks))
    return rows


@dataclass
class FitEstimate:
    memories: list
    bram_blocks: int
    bram_bits: int
    logic: int
    multipliers: int
    target: object

    @property
    def memory_bits(self):
        return sum(d * w for _, d, w, _ in self.memories)

    def to_json(self):
        return {"bram_blocks": self.bram_blocks, "bram_blocks_available":
                self.target.bram_blocks, "memory_bits": self.memory_bits,
                "logic": self.logic, "logic_available": self.target.luts,
                "multipliers": self.multipliers, "dsp_available": self.target.dsp,
                "memories": [{"name": n, "depth": d, "width": w, "blocks": b}
                             for n, d, w, b in self.memories]}


def estimate(config, lanes, target, *, host_link=True, buffer_bytes=512):
    if not isinstance(config, CoreConfig):
        raise TypeError(f"config must be a CoreConfig, not {type(config).__name__}")
    if not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
    shapes = target.bram_shapes
    mems = [(name.split(".", 1)[1], d, w, b)
            for name, d, w, b in plan_memories([lif_plan(config, lanes)], shapes)]
    if host_link:
        mems.append(("link_buffer", buffer_bytes, 8, memory_blocks(buffer_bytes, 8, shapes)))
    blocks = sum(b for *_, b in mems)

    fam = target.family
    per_lane = _LOGIC_PER_BIT[fam] * config.membrane.bits + _LOGIC_PER_LANE[fam]
    mults = 0
    extra = 0
    if config.leak_shift is None:
        mults += lanes
        if lanes > target.dsp:
            extra += (lanes - target.dsp) * config.membrane.bits * config.tau_bits // 2
    if config.affine:
        mults += lanes
        spare = max(0, target.dsp - (lanes if config.leak_shift is None else 0))
        extra += max(0, lanes - spare) * config.current.bits * config.scale.bits // 2
    logic = int(per_lane * lanes + extra + _LOGIC_CONTROL
                + (_LOGIC_LINK[fam] if host_link else 0))
    return FitEstimate(mems, blocks, blocks * target.bram_block, logic, mults, target)


def check_fit(config, lanes, target, **kw):
    """The estimate, or ValueError saying what does not fit ``target``'s device."""
    est = estimate(config, lanes, target, **kw)
    problems = []
    if est.bram_blocks > target.bram_blocks:
        problems.append(
            f"block RAM: {est.bram_blocks} blocks needed ({est.memory_bits} bits in "
            f"{len(est.memories)} memories), {target.bram_blocks} available")
    if est.logic > target.luts:
        problems.append(f"logic: about {est.logic} LUTs/logic cells needed, "
                        f"{target.luts} available")
    if problems:
        raise ValueError(
            f"N={config.neurons}, P={lanes} does not fit the {target.device} of "
            f"{target.board}: " + "; ".join(problems)
            + " (use fewer lanes, fewer neurons or narrower formats, or a bigger board)")
    return est
