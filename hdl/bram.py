"""Block RAM with a registered read output (read latency 2), inferred or ECP5 primitives.

:class:`RegisteredMemory` is a simple dual-port memory (one write port, one or more read
ports) whose read data passes through two registers: the RAM's synchronous read register and
an output register. Both registers of a read port move only when that port's ``en`` is high
(in :class:`hdl.lif_array.LIFArray`: the pipeline enable), so under a stall the output holds.
Address presented in the cycle before enabled edge ``e`` -> data on ``read[i].data`` after
enabled edge ``e + 1`` (the next enabled edge).

Two implementations with identical cycle behaviour:

* ``"memory"``: :class:`amaranth.lib.memory.Memory` (synchronous, non-transparent read port,
  enable ``en``) followed by a fabric register with the same enable. Used for simulation,
  generic Verilog export and every family except ECP5.
* ``"ecp5"``: Lattice ECP5 ``DP16KD`` primitives instantiated directly, port A writing,
  port B reading, ``REGMODE_B = "OUTREG"`` (the block RAM's own output register, clock
  enable ``OCEB = en``; read clock enable ``CEB = en``). Yosys's memory inference cannot put
  a register into the block RAM (``memory_libmap`` maps to ``REGMODE = NOREG``, whose
  clock-to-output of ~5.8 ns limits ECP5 designs to ~135 MHz); nextpnr honours ``OUTREG``
  on an instantiated primitive (~1 ns clock-to-output). Each primitive is used in its
  18-bit mode (1024 words): the memory is tiled in 18-bit slices and 1024-word banks (a
  bank-select register pair and a balanced mux tree follow the output when deeper than
  1024). The initial
  contents go into ``INITVAL_00 .. INITVAL_3F`` (16 words of 18 bits per 320-bit row, each
  word in a 20-bit slot), built from the same ``init`` as the Memory variant.

* ``"ice40_spram"``: iCE40 UltraPlus ``SB_SPRAM256KA`` single-port RAMs (16384 x 16 bits,
  four on the UP5K, 256 kbit each), tiled in 16-bit slices and 16384-word banks, one set
  per read port. The port is shared: a write (``write.en``) takes the address for that
  cycle, so a write must not fall between a read and its data leaving the output register
  (the RAM's ``DATAOUT`` is undefined after a write). The RAM's ``DATAOUT`` is its read
  register (``CHIPSELECT = en``: it holds under a stall); a fabric register with the same
  enable follows. **The bitstream cannot initialise SPRAM**: ``init`` holds only in the
  ``"memory"`` model; on silicon the contents must be written through ``write`` after
  configuration (see :func:`spram_tiles` and ``boards/``'s build.json, which lists the
  memories placed in SPRAM). Memories opt in with ``spram=True``.

``implementation="auto"`` picks ``"ecp5"`` when elaborated for a platform whose ``family``
attribute is ``"ecp5"`` (``amaranth.vendor.LatticePlatform``), ``"ice40_spram"`` for a
memory created with ``spram=True`` and a platform whose ``device`` has SPRAM
(:data:`SPRAM_DEVICES`) when the memory is at least :data:`SPRAM_MIN_DEPTH` deep, else
``"memory"``. The simulation (no platform) always uses the ``"memory"`` model.

Read-during-write of the same address on the two ports (a write and a read at the same edge)
returns the old data in the Memory variant; on the ECP5 primitive the result of such a
cross-port collision is not specified. The LIF array never depends on it: its membrane reads
are overridden by forwarding in exactly those cases, and its tables are loaded between uses.
"""

from __future__ import annotations

from amaranth import Cat, ClockSignal, Const, Module, Mux, Shape, Signal, Value
from amaranth.hdl import Instance
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["RegisteredMemory", "IMPLEMENTATIONS", "DP16KD_WIDTH", "DP16KD_DEPTH",
           "NO_RW_CHECK", "dp16kd_initvals", "SPRAM_WIDTH", "SPRAM_DEPTH", "SPRAM_DEVICES",
           "SPRAM_MIN_DEPTH", "spram_tiles", "uses_spram"]

IMPLEMENTATIONS = ("auto", "memory", "ecp5", "ice40_spram")
SPRAM_WIDTH = 16        # data bits of one SB_SPRAM256KA
SPRAM_DEPTH = 16384     # its words
#: iCE40 devices with SPRAM, and how many blocks each has.
SPRAM_DEVICES = {"iCE40UP5K": 4, "iCE40UP3K": 4}
#: Memories (that opted in) at least this deep go to SPRAM on those devices; shallower ones
#: stay in block RAM (a 16384-word RAM would be mostly empty).
SPRAM_MIN_DEPTH = 1024


def spram_tiles(width, depth, read_ports=1):
    """``SB_SPRAM256KA`` blocks of a ``width`` x ``depth`` memory (one set per read port)."""
    return -(-int(width) // SPRAM_WIDTH) * -(-int(depth) // SPRAM_DEPTH) * int(read_ports)


def uses_spram(device, depth, spram=True):
    """Whether a memory ``depth`` deep that opted in (``spram``) goes to SPRAM on
    ``device`` (the rule of ``implementation="auto"``)."""
    return bool(spram) and device in SPRAM_DEVICES and int(depth) >= SPRAM_MIN_DEPTH
DP16KD_WIDTH = 18       # data bits per primitive in the mode used here
DP16KD_DEPTH = 1024     # words per primitive in that mode

#: Memory attributes telling Yosys that a read of the address written at the same edge never
#: matters (its data is overridden): no read-during-write emulation (on iCE40 a write-data
#: register, an address comparator and a read-data multiplexer per memory).
NO_RW_CHECK = {"no_rw_check": 1}


def _addr_width(depth):
    return max(1, ceil_log2(depth))


def _bits(shape, value):
    """The raw (unsigned) bits of one ``init`` entry of ``shape``."""
    if isinstance(shape, data.Layout):
        return Const.cast(shape.const(value)).value
    shape = Shape.cast(shape)
    return int(value) & ((1 << shape.width) - 1)


def dp16kd_initvals(words, slice_index, bank):
    """``{"INITVAL_xx": int}`` of the primitive holding 18-bit slice ``slice_index`` of bank
    ``bank`` (words ``bank * 1024 ...``); ``words`` are the raw entries as integers."""
    rows = {}
    base = bank * DP16KD_DEPTH
    for row in range(64):
        value = 0
        for j in range(16):
            a = base + row * 16 + j
            if a < len(words):
                part = (words[a] >> (DP16KD_WIDTH * slice_index)) & ((1 << DP16KD_WIDTH) - 1)
                value |= part << (20 * j)
        rows[f"INITVAL_{row:02X}"] = value
    return rows


def _bank_mux(words, sel):
    """``words[sel]`` as a balanced tree of 2:1 multiplexers on the bits of ``sel`` (depth
    ``ceil(log2 len(words))``, not a chain of ``len(words) - 1`` compares; ``sel`` never
    exceeds ``len(words) - 1``)."""
    if len(words) == 1:
        return words[0]
    top = ceil_log2(len(words)) - 1
    half = 1 << top
    return Mux(sel[top], _bank_mux(words[half:], sel), _bank_mux(words[:half], sel))


class RegisteredMemory(wiring.Component):
    """Simple dual-port memory with a registered read output (read latency 2).

    Parameters
    ----------
    shape : shape-castable
        Word shape (a plain shape or a :mod:`amaranth.lib.data` layout).
    depth : int
        Words (at least 2).
    init : iterable
        Initial contents (as for :class:`amaranth.lib.memory.Memory`; missing entries 0).
    read_ports : int
        Number of read ports (the ECP5 variant replicates the primitives per read port).
    implementation : str
        ``"auto"``, ``"memory"`` or ``"ecp5"`` (see the module docstring).
    collisions : bool
        ``False``: the user never depends on a read of the address written at the same edge
        (its data is overridden), so synthesis need not emulate the old-data behaviour
        (:data:`NO_RW_CHECK`; in simulation the read still returns the old data).
    spram : bool
        The memory may live in iCE40 SPRAM (``"auto"`` on a device with SPRAM): it is
        written only while no read is in flight, and on silicon its contents are written
        after configuration (SPRAM has no initial contents).

    Attributes
    ----------
    write : In(Signature(addr, data, en))
        Written at the clock edge while ``en`` is high.
    read : In(Signature(addr, en, data)).array(read_ports)
        ``data`` is the word addressed two enabled edges ago.
    """

    def __new__(cls, *, shape=None, depth=None, init=(), read_ports=1, implementation="auto",
                collisions=True, spram=False):
        # Refuse bad arguments before the object exists (else it warns "never used").
        cls._check(depth, init, read_ports, implementation)
        return super().__new__(cls, src_loc_at=1)

    @staticmethod
    def _check(depth, init, read_ports, implementation):
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2, not {depth!r}")
        if not isinstance(read_ports, int) or read_ports < 1:
            raise ValueError(f"read_ports must be a positive integer, not {read_ports!r}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, "
                             f"not {implementation!r}")
        count = len(init) if hasattr(init, "__len__") else 0
        if count > depth:
            raise ValueError(f"init has {count} entries, more than depth {depth}")

    def __init__(self, *, shape, depth, init=(), read_ports=1, implementation="auto",
                 collisions=True, spram=False):
        self._check(depth, init, read_ports, implementation)
        self._collisions = bool(collisions)
        self._spram = bool(spram)
        self._shape = shape
        self._depth = depth
        self._init = list(init)
        if len(self._init) > depth:
            raise ValueError(f"init has {len(self._init)} entries, more than depth {depth}")
        self._implementation = implementation
        aw = _addr_width(depth)
        write_sig = wiring.Signature({"addr": Out(aw), "data": Out(shape), "en": Out(1)})
        read_sig = wiring.Signature({"addr": Out(aw), "en": Out(1), "data": In(shape)})
        super().__init__({
            "write": In(write_sig),
            "read": In(read_sig).array(read_ports),
        })

    @property
    def depth(self):
        return self._depth

    @property
    def width(self):
        return Shape.cast(self._shape).width

    def implementation_for(self, platform):
        """The implementation used when elaborated for ``platform``."""
        if self._implementation != "auto":
            return self._implementation
        if getattr(platform, "family", None) == "ecp5":
            return "ecp5"
        if (str(getattr(platform, "family", "")).lower() == "ice40"    # Amaranth: "iCE40"
                and uses_spram(getattr(platform, "device", None), self._depth, self._spram)):
            return "ice40_spram"
        return "memory"

    def elaborate(self, platform):
        impl = self.implementation_for(platform)
        if impl == "ecp5":
            return self._elaborate_ecp5()
        if impl == "ice40_spram":
            return self._elaborate_spram()
        return self._elaborate_memory()

    def _elaborate_spram(self):
        m = Module()
        width, depth = self.width, self._depth
        slices = -(-width // SPRAM_WIDTH)
        banks = -(-depth // SPRAM_DEPTH)
        aw = _addr_width(depth)
        low = min(aw, 14)           # address bits inside one block
        wdata = Signal(slices * SPRAM_WIDTH)
        m.d.comb += wdata.eq(Value.cast(self.write.data))
        for r, port in enumerate(self.read):
            addr = Signal(aw, name=f"spram_addr{r}")
            m.d.comb += addr.eq(Mux(self.write.en, self.write.addr, port.addr))
            bank_words = []
            for b in range(banks):
                sel = (addr[14:] == b) if banks > 1 else Const(1, 1)
                outs = []
                for s in range(slices):
                    do = Signal(SPRAM_WIDTH, name=f"spram_do_r{r}_b{b}_s{s}")
                    m.submodules[f"spram_r{r}_b{b}_s{s}"] = Instance(
                        "SB_SPRAM256KA",
                        i_ADDRESS=Cat(addr[:low], Const(0, 14 - low)),
                        i_DATAIN=wdata[s * SPRAM_WIDTH:(s + 1) * SPRAM_WIDTH],
                        i_MASKWREN=Const(0b1111, 4),
                        i_WREN=self.write.en,
                        i_CHIPSELECT=(self.write.en | port.en) & sel,
                        i_CLOCK=ClockSignal(), i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1),
                        i_POWEROFF=Const(1, 1), o_DATAOUT=do)
                    outs.append(do)
                bank_words.append(Cat(*outs)[:width])
            word = bank_words[-1]
            if banks > 1:
                # The bank of the word in DATAOUT (read register) -> the output register.
                sel1 = Signal(aw - 14, name=f"spram_bank_rd{r}", reset_less=True)
                with m.If(port.en):
                    m.d.sync += sel1.eq(port.addr[14:])
                word = _bank_mux(bank_words, sel1)
            out = Signal(self._shape, name=f"out_reg{r}", reset_less=True)
            with m.If(port.en):
                m.d.sync += out.eq(word)
            m.d.comb += port.data.eq(out)
        return m

    def _elaborate_memory(self):
        m = Module()
        mem = memory.Memory(shape=self._shape, depth=self._depth, init=self._init,
                            attrs=None if self._collisions else NO_RW_CHECK)
        m.submodules.mem = mem
        wr = mem.write_port()
        m.d.comb += [wr.addr.eq(self.write.addr), wr.data.eq(self.write.data),
                     wr.en.eq(self.write.en)]
        for i, port in enumerate(self.read):
            rd = mem.read_port(domain="sync")
            m.d.comb += [rd.addr.eq(port.addr), rd.en.eq(port.en)]
            out = Signal(self._shape, name=f"out_reg{i}", reset_less=True)
            with m.If(port.en):
                m.d.sync += out.eq(rd.data)
            m.d.comb += port.data.eq(out)
        return m

    def _elaborate_ecp5(self):
        m = Module()
        width, depth = self.width, self._depth
        words = [_bits(self._shape, v) for v in self._init]
        slices = -(-width // DP16KD_WIDTH)
        banks = -(-depth // DP16KD_DEPTH)
        aw = _addr_width(depth)
        low = min(aw, 10)           # address bits inside one primitive
        wdata = Signal(slices * DP16KD_WIDTH)
        m.d.comb += wdata.eq(Value.cast(self.write.data))
        for r, port in enumerate(self.read):
            bank_words = []
            for b in range(banks):
                we = Signal(name=f"we_r{r}_b{b}")
                if banks > 1:
                    m.d.comb += we.eq(self.write.en & (self.write.addr[10:] == b))
                else:
                    m.d.comb += we.eq(self.write.en)
                outs = []
                for s in range(slices):
                    do = Signal(DP16KD_WIDTH, name=f"do_r{r}_b{b}_s{s}")
                    di = wdata[s * DP16KD_WIDTH:(s + 1) * DP16KD_WIDTH]
                    m.submodules[f"dp16kd_r{r}_b{b}_s{s}"] = self._dp16kd(
                        words, s, b, self.write.addr[:low], di, we,
                        port.addr[:low], port.en, do)
                    outs.append(do)
                bank_words.append(Cat(*outs)[:width])
            if banks == 1:
                m.d.comb += port.data.eq(bank_words[0])
            else:
                # The bank of the word now leaving the output register: the high address
                # bits delayed like the data (read register, then output register).
                sel1 = Signal(aw - 10, name=f"bank_rd{r}", reset_less=True)
                sel2 = Signal(aw - 10, name=f"bank_out{r}", reset_less=True)
                with m.If(port.en):
                    m.d.sync += [sel1.eq(port.addr[10:]), sel2.eq(sel1)]
                m.d.comb += port.data.eq(_bank_mux(bank_words, sel2))
        return m

    @staticmethod
    def _dp16kd(words, slice_index, bank, waddr, wdata, we, raddr, ren, rdata):
        """One DP16KD in 18-bit pseudo-dual-port use: port A writes, port B reads."""
        params = {
            "DATA_WIDTH_A": 18, "DATA_WIDTH_B": 18,
            "REGMODE_A": "NOREG", "REGMODE_B": "OUTREG",
            "RESETMODE": "SYNC", "ASYNC_RESET_RELEASE": "SYNC",
            "CSDECODE_A": "0b000", "CSDECODE_B": "0b000",
            "WRITEMODE_A": "NORMAL", "WRITEMODE_B": "NORMAL",
            "GSR": "DISABLED",
        }
        for key, value in dp16kd_initvals(words, slice_index, bank).items():
            params[key] = Const(value, 320)
        kwargs = {f"p_{k}": v for k, v in params.items()}
        # 18-bit mode: AD[1:0] are the byte enables of a write (both set), AD[3:2] unused,
        # AD[13:4] the word address.
        ada = Cat(Const(0b11, 2), Const(0, 2), waddr, Const(0, 10 - len(waddr)))
        adb = Cat(Const(0, 4), raddr, Const(0, 10 - len(raddr)))
        for i in range(14):
            kwargs[f"i_ADA{i}"] = ada[i]
            kwargs[f"i_ADB{i}"] = adb[i]
        for i in range(18):
            kwargs[f"i_DIA{i}"] = wdata[i]
            kwargs[f"i_DIB{i}"] = Const(0, 1)
            kwargs[f"o_DOB{i}"] = rdata[i]
        for i in range(3):
            kwargs[f"i_CSA{i}"] = Const(0, 1)
            kwargs[f"i_CSB{i}"] = Const(0, 1)
        kwargs.update({
            "i_CLKA": ClockSignal(), "i_CEA": Const(1, 1), "i_OCEA": Const(1, 1),
            "i_WEA": we, "i_RSTA": Const(0, 1),
            "i_CLKB": ClockSignal(), "i_CEB": ren, "i_OCEB": ren,
            "i_WEB": Const(0, 1), "i_RSTB": Const(0, 1),
        })
        return Instance("DP16KD", **kwargs)
