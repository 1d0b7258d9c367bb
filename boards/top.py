"""Board tops: the LIF array behind the UART host link.

* :class:`LinkTop` -- the LIF array (``hdl.lif_array.LIFArray``) + :class:`hdl.host_link.HostLink`
  with two pins, ``rx`` and ``tx``; simulated under cocotb through a simulated UART.
* :class:`BoardTop` -- ``LinkTop`` on an amaranth-boards platform: its UART resource and
  the default clock.
* :class:`NetworkLinkTop` -- the whole :class:`hdl.network.SpikingNetwork` behind
  :class:`hdl.host_link.NetworkLink` (CLASSIFY over the UART), two pins; simulated under
  cocotb through a simulated UART. :class:`NetworkBoardTop` puts it on a board.
* :class:`BenchTop` / :class:`NetworkBenchTop` -- the bare LIF array / the whole
  :class:`hdl.network.SpikingNetwork` in a minimal registered shell (6 input pins, one
  output pin), for honest size and Fmax figures; :class:`BenchBoardTop` /
  :class:`NetworkBenchBoardTop` put them on a :func:`bench_platform`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from golden.corefile import FoldedCore
from hdl.host_link import HostLink
from hdl.lif_array import LIFArray

__all__ = ["LinkTop", "BoardTop", "NetworkLinkTop", "NetworkBoardTop", "BenchTop", "BenchBoardTop", "NetworkBenchTop",
           "NetworkBenchBoardTop", "bench_platform", "FLOWS", "DEFAULT_BAUDRATE"]

DEFAULT_BAUDRATE = 115200


class LinkTop(wiring.Component):
    """A folded core's LIF array driven by the host link.

    Parameters
    ----------
    folded : FoldedCore
    lanes : int
    divisor : int
        UART clocks per bit.
    buffer_bytes, readback, timeout_bytes
        See :class:`hdl.host_link.HostLink`.
    memory_outreg, flow
        As :class:`hdl.lif_array.LIFArray` (the link only sees the array's streams, so
        either flow works behind it).
    """

    def __init__(self, folded, lanes, *, divisor, buffer_bytes=512, readback=True,
                 timeout_bytes=None, memory_outreg=False, flow="stall"):
        if not isinstance(folded, FoldedCore):
            raise TypeError(f"folded must be a FoldedCore, not {type(folded).__name__}")
        self.array = LIFArray.from_folded(folded, lanes, memory_outreg=memory_outreg,
                                          flow=flow)
        kw = {} if timeout_bytes is None else {"timeout_bytes": timeout_bytes}
        self.link = HostLink(folded.config, lanes, divisor=divisor, buffer_bytes=buffer_bytes,
                             readback=readback, latency=self.array.latency, **kw)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    @property
    def layout(self):
        return self.link.layout

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        m.submodules.link = link = self.link
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx)]
        wiring.connect(m, link.i_current, array.i_current)
        wiring.connect(m, array.o_spikes, link.o_spikes)
        m.d.comb += [array.clear.eq(link.clear), link.t.eq(array.t)]
        m.d.comb += [array.load_threshold.valid.eq(link.load_threshold.valid),
                     array.load_threshold.payload.eq(link.load_threshold.payload)]
        if array.config.affine:
            m.d.comb += [array.load_affine.valid.eq(link.load_affine.valid),
                         array.load_affine.payload.eq(link.load_affine.payload)]
        return m


class BoardTop(wiring.Component):
    """:class:`LinkTop` on a board: the UART resource ``uart_resource`` and the default clock.

    Parameters
    ----------
    folded, lanes, buffer_bytes, readback
        As :class:`LinkTop`.
    baudrate : int
    uart_resource : (str, int)
        Name and number of the platform's UART resource.
    memory_outreg : bool
    flow : str
        As :class:`hdl.lif_array.LIFArray` (:data:`FLOWS`).
    """

    def __init__(self, folded, lanes, *, baudrate=DEFAULT_BAUDRATE, buffer_bytes=512,
                 readback=True, uart_resource=("uart", 0), memory_outreg=True, flow="stall"):
        self.folded, self.lanes = folded, lanes
        self.memory_outreg = memory_outreg
        self.flow = flow
        self.baudrate = baudrate
        self.buffer_bytes, self.readback = buffer_bytes, readback
        self.uart_resource = uart_resource
        super().__init__({})

    def elaborate(self, platform):
        from hdl.uart import divisor_for
        m = Module()
        divisor = divisor_for(platform.default_clk_frequency, self.baudrate)
        m.submodules.core = core = LinkTop(self.folded, self.lanes, divisor=divisor,
                                           buffer_bytes=self.buffer_bytes,
                                           readback=self.readback,
                                           memory_outreg=self.memory_outreg,
                                           flow=self.flow)
        uart = platform.request(*self.uart_resource, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx)]
        return m


class NetworkLinkTop(wiring.Component):
    """A whole spiking network driven by the network host link.

    Each LIF array's transferred ``o_spikes`` beats feed the link's spike counters
    (``tap<l>``: the spike bits of the beat's real neurons, the lanes past ``N`` of the
    last beat masked). The link's LOAD_WEIGHTS drives the network's ``load_weights`` (every
    dense weight memory is writable: weights in SPRAM have no contents after configuration,
    the host writes them first).

    Parameters
    ----------
    inet : golden.network.IntegerNetwork
    mapping : hdl.mapping.HardwareMapping, int, sequence of int or None
        As :class:`hdl.network.SpikingNetwork`.
    divisor : int
        UART clocks per bit.
    buffer_bytes : int or None
        Largest CLASSIFY payload (default: 512 bytes or one image, the larger).
    counts : bool
        Build the spike counters (CLASSIFY_COUNTS).
    timeout_bytes : int or None
        See :class:`hdl.host_link.NetworkLink`.
    """

    def __init__(self, inet, mapping=None, *, divisor, buffer_bytes=None, counts=True,
                 timeout_bytes=None):
        from hdl.host_link import NetworkLink
        from hdl.network import SpikingNetwork
        from hdl.protocol import NetworkLayout
        self.network = SpikingNetwork(inet, mapping)
        self._layout = NetworkLayout.for_network(inet, buffer_bytes=buffer_bytes,
                                                 counts=counts)
        kw = {} if timeout_bytes is None else {"timeout_bytes": timeout_bytes}
        self.link = NetworkLink(self._layout, self.network.in_lanes,
                                [a.lanes for a in self.network.lif], divisor=divisor,
                                weights=self.network.weight_memories, **kw)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    @property
    def layout(self):
        return self._layout

    def elaborate(self, platform):
        m = Module()
        m.submodules.network = net = self.network
        m.submodules.link = link = self.link
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx)]
        wiring.connect(m, link.i_pixels, net.i_pixels)
        wiring.connect(m, net.o_result, link.o_result)
        wiring.connect(m, link.load_weights, net.load_weights)
        if self._layout.counts:
            for l, array in enumerate(net.lif):
                tap = getattr(link, f"tap{l}")
                out = array.o_spikes
                P, N, B = array.lanes, array.config.neurons, array.beats_per_step
                last = (1 << (N - (B - 1) * P)) - 1
                mask = Signal(P)
                m.d.comb += [
                    mask.eq(Mux(out.payload.beat == B - 1, last, (1 << P) - 1)),
                    tap.payload.eq(out.payload.spikes & mask),
                    tap.valid.eq(out.valid & out.ready),
                ]
        return m


class NetworkBoardTop(wiring.Component):
    """:class:`NetworkLinkTop` on a board: the UART resource and the default clock.

    Parameters
    ----------
    inet, mapping, buffer_bytes, counts
        As :class:`NetworkLinkTop`.
    baudrate : int
    uart_resource : (str, int)
    """

    def __init__(self, inet, mapping=None, *, baudrate=DEFAULT_BAUDRATE, buffer_bytes=None,
                 counts=True, uart_resource=("uart", 0)):
        self.inet, self.mapping = inet, mapping
        self.baudrate, self.buffer_bytes, self.counts = baudrate, buffer_bytes, counts
        self.uart_resource = uart_resource
        super().__init__({})

    def elaborate(self, platform):
        from hdl.uart import divisor_for
        m = Module()
        divisor = divisor_for(platform.default_clk_frequency, self.baudrate)
        m.submodules.core = core = NetworkLinkTop(self.inet, self.mapping, divisor=divisor,
                                                  buffer_bytes=self.buffer_bytes,
                                                  counts=self.counts)
        uart = platform.request(*self.uart_resource, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx)]
        return m


class BenchTop(wiring.Component):
    """The bare LIF array in a minimal registered shell, for honest Fmax and size figures.

    A board's few pins cannot carry the array's ports (a 16-bit, 8-lane array has ~300),
    so the shell keeps every port alive with almost no logic of its own:

    * ``i_current.payload`` is the array's own ``o_spikes.membrane`` fed back (low ``Bc``
      bits, or sign-extended), so each lane's input depends on real data;
    * ``i_current.valid``, ``o_spikes.ready``, ``clear`` and ``load_*.valid`` come from
      pins through a flip-flop (as from a neighbouring register in a real system);
    * the load payloads come from a shift register fed from one pin;
    * spikes, ``t``, ``beat``, ``last`` and ``valid`` are XOR-reduced into one registered pin
      (a registered tree of 4-input XORs, :func:`_xor_out`).

    The shell costs one flip-flop per load-payload bit plus about P/3 LUTs and flip-flops
    for the XOR tree; every array path is register to register, including ``o_spikes.ready`` -> the
    pipeline enable (stall flow) or -> the output queue and credit counter (credit flow).

    Parameters
    ----------
    folded : FoldedCore
    lanes : int
    memory_outreg : bool
    flow : str
        As :class:`hdl.lif_array.LIFArray`.
    """

    def __init__(self, folded, lanes, *, memory_outreg=True, flow="stall"):
        self.array = LIFArray.from_folded(folded, lanes, memory_outreg=memory_outreg,
                                          flow=flow)
        super().__init__({"ctl": In(6), "out": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        cfg, P = array.config, array.lanes
        bc, bm = cfg.current.bits, cfg.membrane.bits

        ctl = _registered(m, self.ctl)
        valid, ready, clear, load_thr, load_aff, serial = (ctl[i] for i in range(6))
        loads = [array.load_threshold]
        if cfg.affine:
            loads.append(array.load_affine)
        widths = [len(x.payload.as_value()) for x in loads]
        shreg = _shift_register(m, serial, sum(widths))
        pos = 0
        for port, w, v in zip(loads, widths, (load_thr, load_aff)):
            m.d.comb += [port.payload.as_value().eq(shreg[pos:pos + w]), port.valid.eq(v)]
            pos += w

        out = array.o_spikes.payload
        for p in range(P):
            mem = out.membrane[p]
            m.d.comb += array.i_current.payload[p].eq(
                mem[:bc] if bc <= bm else mem.as_signed())
        m.d.comb += [array.i_current.valid.eq(valid), array.o_spikes.ready.eq(ready),
                     array.clear.eq(clear)]
        _xor_out(m, self.out, [out.spikes, out.t, out.beat, out.last, array.o_spikes.valid,
                               array.i_current.ready, array.t])
        return m


def _registered(m, value):
    """``value`` (pins) through one flip-flop per bit."""
    reg = Signal(len(value))
    m.d.sync += reg.eq(value)
    return reg


def _shift_register(m, serial, width):
    """A ``width``-bit shift register fed from ``serial`` (one bit per cycle): payloads
    that depend on a pin, one flip-flop per bit."""
    shreg = Signal(max(1, width))
    m.d.sync += shreg.eq(Cat(serial, shreg[:-1]) if width > 1 else serial)
    return shreg


#: Bits per node of the shell's registered XOR tree: one LUT4 per node on iCE40 and ECP5.
XOR_GROUP = 4


def _xor_out(m, out, values):
    """Every bit of ``values`` XOR-reduced into the register driving ``out``: nothing the
    shell observes can be optimized away.

    The reduction is a tree of registered :data:`XOR_GROUP`-input XORs (one LUT and a
    flip-flop per node, ``ceil(log4 n)`` register levels), so every observed signal sees
    one LUT before a flip-flop and the shell's own logic is never the critical path (one
    XOR over all bits was several LUT levels deep, after the observed signal's own logic).
    The pin lags the signals by the tree's depth, which does not matter to a bench."""
    bits = list(Cat(*(Value.cast(v) for v in values)))
    while len(bits) > XOR_GROUP:
        level = []
        for i in range(0, len(bits), XOR_GROUP):
            node = Signal(name=f"xor_tree_{len(bits)}_{i // XOR_GROUP}")
            m.d.sync += node.eq(Cat(*bits[i:i + XOR_GROUP]).xor())
            level.append(node)
        bits = level
    m.d.sync += out.eq(Cat(*bits).xor())


class NetworkBenchTop(wiring.Component):
    """The whole :class:`hdl.network.SpikingNetwork` in the registered shell of
    :class:`BenchTop`, for honest Fmax and size figures.

    * ``i_pixels.payload`` (``in_lanes`` x ``Bx`` bits) comes from a shift register fed
      from one pin, so every pixel depends on real data;
    * ``i_pixels.valid`` and ``o_result.ready`` come from pins through a flip-flop
      (``ctl[0]``, ``ctl[1]``; the serial payload bit is ``ctl[5]``, ``ctl[2:5]`` are
      unused: the same :func:`bench_platform` as :class:`BenchTop`);
    * ``o_result.valid``, its whole payload (label and logits) and ``i_pixels.ready`` are
      XOR-reduced into one registered pin (a registered tree of 4-input XORs,
      :func:`_xor_out`).

    Every path of the network is register to register; the shell costs one flip-flop per
    pixel-payload bit plus a LUT and a flip-flop per three observed bits (the XOR tree).

    Parameters
    ----------
    inet : golden.network.IntegerNetwork
    mapping : hdl.mapping.HardwareMapping, int, sequence of int or None
    in_lanes : int or None
    outreg : bool or None
        As :class:`hdl.network.SpikingNetwork`.
    """

    def __init__(self, inet, mapping=None, in_lanes=None, outreg=None):
        from hdl.network import SpikingNetwork
        self.network = SpikingNetwork(inet, mapping, in_lanes=in_lanes, outreg=outreg)
        super().__init__({"ctl": In(6), "out": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.network = net = self.network
        ctl = _registered(m, self.ctl)
        valid, ready, serial = ctl[0], ctl[1], ctl[5]
        pixels = net.i_pixels.payload.as_value()
        m.d.comb += [pixels.eq(_shift_register(m, serial, len(pixels))),
                     net.i_pixels.valid.eq(valid), net.o_result.ready.eq(ready)]
        _xor_out(m, self.out, [net.o_result.payload, net.o_result.valid, net.i_pixels.ready])
        return m


#: The single LIF array's pipeline flows (:class:`hdl.lif_array.LIFArray` ``flow=``):
#: ``"stall"`` (the classes' default) and ``"credit"`` (no pipeline enable: an output
#: queue and a registered credit counter; on ECP5 >= 200 MHz up to 16 lanes, 208.6 against
#: 187.2 MHz at 16, at 1.2-1.5x the LUTs: README). A network's ``flow``
#: (:attr:`hdl.mapping.HardwareMapping.flow`) is that of its dense engines and LIF arrays.
FLOWS = ("stall", "credit")
#: ``--flow`` of ``spikefold build`` and ``sweep``: ``"auto"`` (the default) or one of FLOWS.
FLOW_CHOICES = ("auto",) + FLOWS


def flow_for(target, flow="auto"):
    """The flow a build of ``target`` uses for ``--flow flow`` (a single array's, or a
    network's dense engines' and LIF arrays'): ``"auto"`` is credit on ECP5 (>= 200 MHz up to 16 lanes; the
    stall flow's enable fan-out to 32 block RAMs gives 187 MHz at 16) and stall elsewhere
    (iCE40 has no LUT RAM for the credit flow's queue, which then costs Fmax)."""
    if flow == "auto":
        return "credit" if getattr(target, "family", None) == "ecp5" else "stall"
    if flow not in FLOWS:
        raise ValueError(f"--flow must be one of {', '.join(FLOW_CHOICES)}, not {flow!r}")
    return flow


def bench_platform(target, frequency):
    """``target``'s platform with a 6-input, 1-output bench resource on its first connector
    and the default clock constrained to ``frequency`` Hz (the timing-driven target)."""
    import copy

    from amaranth.build import Attrs, Clock, Pins, Resource, Subsignal
    platform = target.make_platform()
    (cname, cnum), conn = next(iter(platform.connectors.items()))
    names = list(conn.mapping)[:7]
    attrs = Attrs(IO_STANDARD="SB_LVCMOS") if target.family == "ice40" \
        else Attrs(IO_TYPE="LVCMOS33")
    platform.add_resources([Resource(
        "bench", 0,
        Subsignal("ctl", Pins(" ".join(names[:6]), dir="i", conn=(cname, cnum))),
        Subsignal("out", Pins(names[6], dir="o", conn=(cname, cnum))), attrs)])
    # A copy: the Resource objects are the platform class's own, shared by every instance
    # (setting .clock on one gave every later platform of the board this clock).
    key = (platform.default_clk, 0)
    clock = copy.copy(platform.resources[key])
    clock.clock = Clock(frequency)
    platform.resources[key] = clock
    return platform


class _PinnedBench(wiring.Component):
    """A bench shell (``ctl`` In(6), ``out`` Out(1)) wired to a :func:`bench_platform`'s
    ``bench`` resource."""

    def __init__(self):
        super().__init__({})

    def bench(self):
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        m.submodules.bench = bench = self.bench()
        pins = platform.request("bench", 0, dir={"ctl": "-", "out": "-"})
        m.submodules.ctl_buf = ctl_buf = io.Buffer("i", pins.ctl)
        m.submodules.out_buf = out_buf = io.Buffer("o", pins.out)
        m.d.comb += [bench.ctl.eq(ctl_buf.i), out_buf.o.eq(bench.out)]
        return m


class BenchBoardTop(_PinnedBench):
    """:class:`BenchTop` on a :func:`bench_platform`."""

    def __init__(self, folded, lanes, *, memory_outreg=True, flow="stall"):
        self.folded, self.lanes = folded, lanes
        self.memory_outreg = memory_outreg
        self.flow = flow
        super().__init__()

    def bench(self):
        return BenchTop(self.folded, self.lanes, memory_outreg=self.memory_outreg,
                        flow=self.flow)


class NetworkBenchBoardTop(_PinnedBench):
    """:class:`NetworkBenchTop` on a :func:`bench_platform`."""

    def __init__(self, inet, mapping=None, in_lanes=None, outreg=None):
        from hdl.mapping import HardwareMapping
        self.inet = inet
        self.mapping = HardwareMapping.for_network(inet, mapping, in_lanes, outreg)
        super().__init__()

    def bench(self):
        return NetworkBenchTop(self.inet, self.mapping)
