"""Fit estimate: will a LIF array (and the host link) fit a board's FPGA? Checked before
any tool runs, so a hopeless build is refused in a second instead of failing in nextpnr.

Memory is counted exactly from the array's memories (hdl/lif_array.py): per lane a
membrane memory (``ceil(N/P)`` x ``Bm``) and a threshold memory (``ceil(N/P)`` x
``Bth + 2``), one affine table (``T * channels`` x ``Ba + Bm``) and the host link's request
buffer (``buffer_bytes`` x 8). Each memory is mapped to the block shape of the device that
needs the fewest blocks (as Yosys's memory mapper does for these simple memories).

Logic is an estimate calibrated on measured builds (``spikefold sweep``): logic per lane
grows with the membrane width; multipliers (a non-power-of-two leak, the affine stage) use
DSP blocks while there are enough and LUTs after that.
"""

from __future__ import annotations

from dataclasses import dataclass

from golden.core import CoreConfig

__all__ = ["FitEstimate", "estimate", "check_fit", "memory_blocks"]

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
    depth = -(-config.neurons // lanes)
    mems = []
    for p in range(lanes):
        mems.append((f"membrane_{p}", depth, config.membrane.bits,
                     memory_blocks(depth, config.membrane.bits, shapes)))
        mems.append((f"threshold_{p}", depth, config.threshold.bits + 2,
                     memory_blocks(depth, config.threshold.bits + 2, shapes)))
    if config.affine:
        d, w = config.T * config.channels, config.scale.bits + config.membrane.bits
        mems.append(("affine", d, w, memory_blocks(d, w, shapes)))
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
