"""Board targets: amaranth-boards platforms and what their FPGAs hold.

No pin files are written here: pins, clocks and I/O standards come from amaranth-boards.
Device capacities (for the fit estimate) are from the vendors' family data sheets.

=============  ==============  ===========  ================================================
name           device          toolchain    notes
=============  ==============  ===========  ================================================
icebreaker     iCE40UP5K-SG48  YoWASP       FTDI UART (uart 0), 12 MHz clock; DSP via -dsp
ulx3s-85f      LFE5U-85F       YoWASP       FTDI UART (uart 0), 25 MHz clock
orangecrab-25f LFE5U-25F       YoWASP       no USB-serial chip: UART on feather pins 0 (rx)
                                            and 1 (tx) for an external 3.3 V USB-serial
                                            adapter; 48 MHz clock; DFU suffix added in Python
arty-a7-35     XC7A35T         Verilog only synthesis needs AMD/Xilinx Vivado (not open, not
                                            pip-installable): we export Verilog + a build
                                            plan only
=============  ==============  ===========  ================================================
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

__all__ = ["Target", "TARGETS", "get_target", "dfu_suffix"]


@dataclass(frozen=True)
class Target:
    """One board.

    ``bram_block`` is one block's bits (with the parity bits where the wide shapes use
    them as data) and ``bram_shapes`` the (depth, width) configurations of one block.
    ``spram_blocks``: iCE40 UltraPlus single-port RAMs (16384 x 16 bits each), where
    :mod:`hdl.bram` puts the dense stages' weights (see :func:`hdl.bram.uses_spram`).
    """

    name: str
    board: str
    module: str
    platform: str
    family: str
    device: str
    luts: int
    ffs: int
    bram_blocks: int
    bram_block: int
    bram_shapes: tuple
    dsp: int
    tools: tuple = ()
    build_kwargs: dict = field(default_factory=dict)
    bitstream: str = "bin"
    uart: tuple = ("uart", 0)
    open_toolchain: bool = True
    note: str = ""
    spram_blocks: int = 0

    @property
    def bram_bits(self):
        return self.bram_blocks * self.bram_block

    @property
    def spram_bits(self):
        return self.spram_blocks * 16 * 16384

    def platform_class(self):
        import importlib
        cls = getattr(importlib.import_module(self.module), self.platform)
        if self.name.startswith("orangecrab"):
            return _orangecrab_without_dfu_tool(cls)
        return cls

    def make_platform(self):
        platform = self.platform_class()()
        if self.name.startswith("orangecrab"):
            from amaranth.build import Attrs
            from amaranth_boards.resources import UARTResource
            platform.add_resources([UARTResource(
                0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33"))])
        return platform


def _orangecrab_without_dfu_tool(cls):
    """The OrangeCrab platform minus its ``dfu-suffix`` step (not pip-installable): the
    build adds the same 16-byte DFU suffix in Python (:func:`dfu_suffix`)."""
    from amaranth.vendor import LatticeECP5Platform

    class OrangeCrabNoDfu(cls):
        @property
        def required_tools(self):
            return LatticeECP5Platform.required_tools.fget(self)

        @property
        def command_templates(self):
            return LatticeECP5Platform.command_templates.fget(self)

    OrangeCrabNoDfu.__name__ = cls.__name__
    return OrangeCrabNoDfu


def dfu_suffix(data, vid=0x1209, pid=0x5AF0):
    """``data`` + the DFU 1.1 suffix (what ``dfu-suffix -v 1209 -p 5af0 -a`` appends)."""
    body = bytes(data) + struct.pack("<HHHH3sB", 0xFFFF, pid, vid, 0x0100, b"UFD", 16)
    crc = zlib.crc32(body) ^ 0xFFFFFFFF
    return body + struct.pack("<I", crc)


_ICE40_SHAPES = ((256, 16), (512, 8), (1024, 4), (2048, 2))
# ECP5 DP16KD and Xilinx RAMB36 count their parity bits as data in the x9/x18/x36 shapes.
_ECP5_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
_XC7_SHAPES = ((512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2),
               (32768, 1))

TARGETS = {
    "icebreaker": Target(
        name="icebreaker", board="1BitSquared iCEBreaker", module="amaranth_boards.icebreaker",
        platform="ICEBreakerPlatform", family="ice40", device="iCE40UP5K",
        luts=5280, ffs=5280, bram_blocks=30, bram_block=4096, bram_shapes=_ICE40_SHAPES,
        dsp=8, tools=("yosys", "nextpnr-ice40", "icepack"),
        build_kwargs={"synth_opts": "-dsp"}, bitstream="bin", spram_blocks=4),
    "ulx3s-85f": Target(
        name="ulx3s-85f", board="Radiona ULX3S (85F)", module="amaranth_boards.ulx3s",
        platform="ULX3S_85F_Platform", family="ecp5", device="LFE5U-85F",
        luts=83640, ffs=83640, bram_blocks=208, bram_block=18432, bram_shapes=_ECP5_SHAPES,
        dsp=156, tools=("yosys", "nextpnr-ecp5", "ecppack"), bitstream="bit"),
    "orangecrab-25f": Target(
        name="orangecrab-25f", board="OrangeCrab r0.2 (25F)",
        module="amaranth_boards.orangecrab_r0_2", platform="OrangeCrabR0_2_25FPlatform",
        family="ecp5", device="LFE5U-25F", luts=24288, ffs=24288, bram_blocks=56,
        bram_block=18432, bram_shapes=_ECP5_SHAPES, dsp=28,
        tools=("yosys", "nextpnr-ecp5", "ecppack"), bitstream="bit",
        note="UART on feather pins 0 (rx) / 1 (tx): connect a 3.3 V USB-serial adapter"),
    "arty-a7-35": Target(
        name="arty-a7-35", board="Digilent Arty A7-35", module="amaranth_boards.arty_a7",
        platform="ArtyA7_35Platform", family="xc7", device="XC7A35T",
        luts=20800, ffs=41600, bram_blocks=50, bram_block=36864, bram_shapes=_XC7_SHAPES,
        dsp=90, open_toolchain=False, bitstream="bit",
        note="Verilog and a Vivado build plan only: synthesis needs AMD/Xilinx Vivado"),
}


def get_target(name):
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose one of {sorted(TARGETS)}") from None
