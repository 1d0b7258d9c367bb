"""hdl.export: reproducible Verilog that Icarus and Verilator accept, and its JSON description."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from golden.corefile import FoldedCore
from golden.examples import example_core
from golden.fixed import Fixed
from hdl.export import export_verilog
from spikefold import cli

CASES = {
    "N64P4-shift": (dict(neurons=64), 4),
    "N1P1": (dict(neurons=1, T=1), 1),
    "N10P3-affine-mul-sub": (dict(neurons=10, affine=True, tau=0.3, reset="subtract"), 3),
    "N12P4-affine-8bit": (dict(neurons=12, affine=True, membrane=Fixed(8, 4), channels=12), 4),
}


def _core(kw):
    kw = dict(kw)
    return example_core(kw.pop("neurons"), **kw)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    for case, (kw, lanes) in CASES.items():
        d = tmp_path_factory.mktemp(case)
        out[case] = export_verilog(_core(kw), lanes, d)
    return out


def _verilog_ports(text, module):
    body = re.search(rf"^module {module}\((.*?)\);(.*?)^endmodule", text, re.S | re.M)
    assert body, f"module {module} not found"
    ports = {}
    for direction, width, name in re.findall(
            r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s+)?\\?(\w+)\s*;",
            body.group(2), re.M):
        ports[name] = {"dir": "in" if direction == "input" else "out",
                       "width": int(width) + 1 if width else 1}
    header = [p.strip().lstrip("\\") for p in body.group(1).split(",")]
    assert sorted(header) == sorted(ports)
    return ports


@pytest.mark.parametrize("case", list(CASES))
def test_json_matches_verilog(exported, case):
    v_path, j_path = exported[case]
    desc = json.loads(j_path.read_text())
    kw, lanes = CASES[case]
    core = _core(kw)
    cfg = core.config
    assert desc["format"] == "spikefold-rtl" and desc["version"] == 1
    assert desc["top"] == "spikefold_lif_array" and desc["lanes"] == lanes
    assert desc["beats_per_step"] == -(-cfg.neurons // lanes)
    assert desc["latency"] == (6 if cfg.affine else 4 if cfg.leak_shift is not None else 5)
    assert desc["config"] == cfg.to_json()
    assert desc["ports"] == _verilog_ports(v_path.read_text(), "spikefold_lif_array")
    assert ("load_affine__payload" in desc["ports"]) == cfg.affine
    # Every payload is tiled exactly by its fields, in order.
    for port, fields in desc["fields"].items():
        at = 0
        for f in fields:
            assert f["offset"] == at, (port, f)
            at += f["width"] * f["count"]
        assert at == desc["ports"][port]["width"], port
    Bm, P = cfg.membrane.bits, lanes
    tw = max(1, (cfg.T - 1).bit_length())
    bw = max(1, (desc["beats_per_step"] - 1).bit_length())
    assert desc["fields"]["i_current__payload"] == [
        {"name": "current", "offset": 0, "width": cfg.current.bits, "count": P, "signed": True}]
    assert desc["fields"]["o_spikes__payload"] == [
        {"name": "spikes", "offset": 0, "width": P, "count": 1, "signed": False},
        {"name": "membrane", "offset": P, "width": Bm, "count": P, "signed": True},
        {"name": "t", "offset": P + P * Bm, "width": tw, "count": 1, "signed": False},
        {"name": "beat", "offset": P + P * Bm + tw, "width": bw, "count": 1, "signed": False},
        {"name": "last", "offset": P + P * Bm + tw + bw, "width": 1, "count": 1,
         "signed": False}]
    assert [f["name"] for f in desc["fields"]["load_threshold__payload"]] == \
        ["index", "theta", "compare"]
    if cfg.affine:
        assert [(f["name"], f["signed"]) for f in desc["fields"]["load_affine__payload"]] == \
            [("t", False), ("channel", False), ("a", True), ("b", True)]


def test_description_loads_in_sim(exported):
    """The co-simulation's reader accepts every exported description."""
    desc_mod = pytest.importorskip("sim.desc")
    for case, (_, j_path) in exported.items():
        desc = desc_mod.RtlDescription.load(j_path)
        assert desc.lanes == CASES[case][1]
        assert desc.current_field().count == desc.lanes


def test_reproducible_and_relative(tmp_path):
    core = _core(dict(neurons=20, affine=True, tau=0.3))
    a = export_verilog(core, 4, tmp_path / "a")
    b = export_verilog(core, 4, tmp_path / "b" / "deeper")
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes()
    for path in a:
        text = path.read_text()
        assert str(tmp_path) not in text
        assert not re.search(r"(?<![\w.])/(work|home|tmp|usr|root)/", text)
        assert "src =" not in text


@pytest.mark.parametrize("case", list(CASES))
def test_iverilog_compiles(exported, case, tmp_path):
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog is not installed")
    v_path, _ = exported[case]
    subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.out"), str(v_path)],
                   check=True, capture_output=True, text=True)


@pytest.mark.parametrize("case", list(CASES))
def test_verilator_lint(exported, case):
    """Lint clean except WIDTH: yosys's write_verilog relies on Verilog's implicit operand
    extension (e.g. ``x + 2'h3`` with a wider x), which is well defined."""
    if shutil.which("verilator") is None:
        pytest.skip("verilator is not installed")
    v_path, _ = exported[case]
    r = subprocess.run(["verilator", "--lint-only", "-Wno-WIDTH", str(v_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_cli_builtin_example(tmp_path, capsys):
    out = tmp_path / "rtl"
    rc = cli.main(["verilog", "--neurons", "12", "--lanes", "4", "--membrane", "12.6",
                   "--current", "8.3", "--tau", "0.3", "--reset", "subtract", "--affine",
                   "-T", "3", "--out", str(out)])
    assert rc == 0
    desc = json.loads((out / "spikefold_lif_array.json").read_text())
    assert desc["config"]["neurons"] == 12 and desc["config"]["T"] == 3
    assert desc["config"]["membrane"] == {"bits": 12, "frac": 6}
    assert desc["config"]["current"] == {"bits": 8, "frac": 3}
    assert desc["config"]["reset"] == "subtract" and desc["config"]["affine"] is True
    assert desc["lanes"] == 4 and desc["latency"] == 6
    assert "latency=6" in capsys.readouterr().out


def test_cli_model_file(tmp_path):
    core = _core(dict(neurons=9, reset="subtract"))
    core.save(tmp_path / "core.npz")
    rc = cli.main(["verilog", "--model", str(tmp_path / "core.npz"), "--lanes", "2",
                   "--name", "lif9", "--out", str(tmp_path / "o")])
    assert rc == 0
    direct = export_verilog(FoldedCore.load(tmp_path / "core.npz"), 2, tmp_path / "d",
                            name="lif9")
    assert (tmp_path / "o" / "lif9.v").read_bytes() == direct[0].read_bytes()


def test_cli_errors(tmp_path, capsys):
    assert cli.main(["verilog", "--model", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["verilog", "--neurons", "4", "--lanes", "5",
                     "--out", str(tmp_path)]) == 2
    assert "exceeds the neuron count 4" in capsys.readouterr().err
    with pytest.raises(TypeError, match="FoldedCore"):
        export_verilog(object(), 1, tmp_path)
    with pytest.raises(ValueError, match="Verilog identifier"):
        export_verilog(_core(dict(neurons=4)), 1, tmp_path, name="bad name")


def _constant_enable_dut():
    """A read port whose enable is the constant 1 until ``hold`` (never set) rises: a comb
    block none of whose inputs ever changes, as in the conv stage's partial-sum banks."""
    from amaranth import Module
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out

    class Dut(wiring.Component):
        def __init__(self):
            super().__init__({"hold": In(1), "addr": In(2), "data": Out(8)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = memory.Memory(shape=8, depth=4, init=[5, 6, 7, 8])
            rd = mem.read_port()
            m.d.comb += [rd.addr.eq(self.addr), self.data.eq(rd.data)]
            with m.If(self.hold):
                m.d.comb += rd.en.eq(0)
            return m
    return Dut()


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_time_zero_comb_blocks_run_on_icarus(tmp_path):
    """Yosys's ``always @*`` time-zero trigger fails on Icarus 11; write_rtl repairs it (an X
    here is the bug that broke the conv network's co-simulation)."""
    from hdl.export import write_rtl
    dut = _constant_enable_dut()
    v_path, _ = write_rtl(dut, {}, "dut", tmp_path)
    tb = tmp_path / "tb.v"
    tb.write_text("""`timescale 1ns/1ps
module tb; reg clk = 0; reg rst = 0; reg hold = 0; reg [1:0] addr = 2; wire [7:0] data;
dut u(.clk(clk), .rst(rst), .hold(hold), .addr(addr), .data(data));
always #5 clk = ~clk;
initial begin #32 $display("data=%b", data); $finish; end
endmodule
""")
    subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "tb.vvp"), str(tb), str(v_path)],
                   check=True)
    out = subprocess.run(["vvp", "-n", str(tmp_path / "tb.vvp")], capture_output=True,
                         text=True, check=True).stdout
    assert "data=00000111" in out, out
