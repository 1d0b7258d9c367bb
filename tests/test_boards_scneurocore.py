"""boards.scneurocore: the spikefold side of the sc-neurocore comparison (no sc-neurocore).

The agreement counting, the input quantization, the testbench and its spike dump (run in
Icarus on a made-up module with sc-neurocore's folded-top ports), the format option and
the one-line install hint when sc-neurocore is missing.
"""

import shutil
import sys

import numpy as np
import pytest

from boards import scneurocore as sc


def test_spike_agreement_counts_every_spike_and_differing_samples():
    a = np.zeros((3, 2, 4), dtype=np.int8)
    b = a.copy()
    a[0, 1, 2] = 1                      # sample 0: one spike only in a
    b[2, 0, 0] = b[2, 1, 3] = 1         # sample 2: two spikes only in b
    a[1, 0, 1] = b[1, 0, 1] = 1         # sample 1: a spike in both (agrees)
    got = sc.spike_agreement(a, b)
    assert got == {"spikes": 24, "agree": 21, "fraction": 21 / 24, "differ": 3,
                   "samples_differing": 2}
    assert sc.spike_agreement(a, a)["differ"] == 0
    # 0/1 and boolean arrays compare by value, not by dtype
    assert sc.spike_agreement(a.astype(bool), a.astype(np.float64))["agree"] == 24


def test_spike_agreement_refuses_different_shapes():
    with pytest.raises(ValueError, match=r"\(samples, T, neurons\)"):
        sc.spike_agreement(np.zeros((2, 4, 8)), np.zeros((2, 4, 7)))
    with pytest.raises(ValueError, match=r"\(samples, T, neurons\)"):
        sc.spike_agreement(np.zeros((2, 4)), np.zeros((2, 4)))


def test_decision_agreement():
    got = sc.decision_agreement([1, 2, 3, 4, 5], [1, 2, 0, 4, 0])
    assert got == {"samples": 5, "differ": 2, "fraction_agree": 0.6}
    with pytest.raises(ValueError, match="differ in length: 2 and 3"):
        sc.decision_agreement([1, 2], [1, 2, 3])


def test_parse_q():
    assert sc.parse_q("8.8") == (16, 8)
    assert sc.parse_q("Q16.16") == (32, 16)
    for bad in ("8", "Q8.8.8", "0.8", "40.40", "x"):
        with pytest.raises(ValueError, match=rf"--q must be .* not {bad!r}"):
            sc.parse_q(bad)


def test_quantize_inputs_rounds_and_saturates():
    x = np.array([0.0, 1.0, 0.5 / 256, 1.5 / 256, -1.0, 200.0, -200.0, 1 / 3])
    got = sc.quantize_inputs(x, 16, 8)
    # ties to even (0.5 -> 0, 1.5 -> 2), saturation at the Q8.8 range, never wrap
    assert got.tolist() == [0, 256, 0, 2, -256, 32767, -32768, 85]
    assert sc.quantize_inputs([1.0], 32, 16).tolist() == [65536]


def test_parse_spike_dump_and_its_errors():
    text = "0 0 5\n0 1 0\n1 0 8\n1 1 f\n"
    got = sc.parse_spike_dump(text, 2, 2, 4)
    assert got.tolist() == [[[1, 0, 1, 0], [0, 0, 0, 0]], [[0, 0, 0, 1], [1, 1, 1, 1]]]
    with pytest.raises(ValueError, match="no spikes for sample 1, t 1"):
        sc.parse_spike_dump("0 0 5\n0 1 0\n1 0 8\n", 2, 2, 4)
    with pytest.raises(ValueError, match="repeated tick"):
        sc.parse_spike_dump(text + "1 1 0\n", 2, 2, 4)


#: A stand-in with the ports of sc-neurocore's folded top: a tick every 3 enabled cycles;
#: neuron i fires at tick t when input word i (signed) + t > 2; reset clears the tick count.
FAKE_TOP = """
module fake_top (input wire clk, input wire rst_n, input wire en,
                 input wire signed [63:0] I_ext_flat, output reg [3:0] spike_bus,
                 output reg tick_done);
    reg [1:0] c;
    reg [7:0] t;
    integer i;
    always @(posedge clk or negedge rst_n) begin
        if (!rst_n) begin c <= 0; t <= 0; tick_done <= 0; spike_bus <= 0; end
        else if (en) begin
            tick_done <= 1'b0;
            if (c == 2) begin
                c <= 0;
                t <= t + 1;
                tick_done <= 1'b1;
                for (i = 0; i < 4; i = i + 1)
                    spike_bus[i] <= ($signed(I_ext_flat[i * 16 +: 16]) + $signed({8'd0, t})) > 2;
            end else c <= c + 1;
        end
    end
endmodule
"""


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) "
                    "is not installed")
def test_testbench_runs_every_sample_and_tick_in_icarus(tmp_path):
    (tmp_path / "fake_top.v").write_text(FAKE_TOP)
    x_q = np.array([[3, 0, -1, 2], [-5, 1, 2, 300]])
    T = 3
    spikes, _ = sc._run_sc_rtl(tmp_path, [tmp_path / "fake_top.v"], "fake_top", x_q, T, 16, 4)
    want = np.array([[[int(x + t > 2) for x in row] for t in range(T)] for row in x_q])
    assert spikes.tolist() == want.tolist()
    assert (tmp_path / "tb.v").read_text().count("fake_top dut") == 1


def test_missing_sc_neurocore_gives_the_install_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "sc_neurocore", None)    # import sc_neurocore fails
    with pytest.raises(RuntimeError) as exc:
        sc.require_sc_neurocore()
    assert f"install --no-deps sc-neurocore=={sc.SC_VERSION}" in str(exc.value)
    assert sc.main(["--out", str(tmp_path / "o"), "--no-build"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("python -m boards.scneurocore: error: sc-neurocore is not "
                             "installed")
    assert not (tmp_path / "o").exists()


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    assert sc.main(["--out", str(tmp_path), "--samples", "0"]) == 2
    assert capsys.readouterr().err.strip() == ("python -m boards.scneurocore: error: "
                                               "--samples must be in 1..540, not 0")
    assert sc.main(["--out", str(tmp_path), "--q", "8"]) == 2
    assert "--q must be a signed fixed-point format" in capsys.readouterr().err


def test_table_shows_the_dropped_readout():
    run = {"q": "Q8.8", "spikes": {"fraction": 0.95, "differ": 5, "spikes": 100},
           "decisions": {"differ": 1, "samples": 10}, "rtl_outputs": 32, "rtl_synapses": 2048,
           "network_synapses": 2368, "readout_in_rtl": False, "warnings": [],
           "rtl_accuracy": 0.9}
    info = {"sizes": [64, 32, 10], "T": 4, "samples": 10, "sc_neurocore_version": "3.16.0",
            "sc": [run], "sc_software": {"accuracy": 1.0, "predictions_vs_spikefold_float": {
                "fraction_agree": 1.0}},
            "spikefold_cosim": {"mismatches": 0, "compared": 2830, "samples": 10,
                                "decisions": {"differ": 0}, "float_accuracy": 1.0,
                                "rtl_accuracy": 1.0}}
    text = sc.table(info)
    assert "the 10-class readout is dropped, no warning" in text
    assert "spikes agree 95.00 % (5 of 100 differ), 1/10 decisions differ" in text
    assert "0 mismatches in 2,830 values" in text


def test_table_build_rows():
    run = {"q": "Q8.8", "spikes": {"fraction": 1.0, "differ": 0, "spikes": 8},
           "decisions": {"differ": 0, "samples": 1}, "rtl_outputs": 32, "rtl_synapses": 2048,
           "network_synapses": 2368, "readout_in_rtl": False, "warnings": ["w"],
           "rtl_accuracy": 1.0, "cycles_per_tick": 33, "cycles_per_image": 132}
    build = {"LUT4": 6519, "CCU2C": 412, "MULT18X18D": 65, "DP16KD": None, "fmax_mhz": 8.0}
    info = {"sizes": [64, 32, 10], "T": 4, "samples": 1, "sc_neurocore_version": "3.16.0",
            "sc": [run], "sc_software": {"accuracy": 1.0, "predictions_vs_spikefold_float": {
                "fraction_agree": 1.0}}, "board": "ulx3s-85f", "sc_build": build,
            "spikefold_build": dict(build, LUT4=2500, DP16KD=5, fmax_mhz=80.0),
            "spikefold_cosim": {"mismatches": 0, "compared": 283, "samples": 1,
                                "decisions": {"differ": 0}, "float_accuracy": 1.0,
                                "rtl_accuracy": 1.0, "cycles_per_image": 64.0}}
    text = sc.table(info)
    assert "| 6,519 LUT4 + 412 CCU2C, 65 DSP, 0 DP16KD | 2,500 LUT4 + 412 CCU2C" in text
    assert "| nextpnr-ecp5 Fmax | 8.0 MHz | 80.0 MHz |" in text
    assert "| 132 (33 per tick; 16.50 µs) | 64.0 streaming (0.80 µs) |" in text
    assert "readout is dropped |" in text            # a warning was given: no "no warning"
    info["sc_build"] = dict(build, timed_out="place and route", fmax_mhz=None)
    assert "stopped: place and route over the limit" in sc.table(info)


def test_bench_shell_plan_reads_the_foreign_verilog(tmp_path):
    from boards.targets import get_target
    from boards.top import bench_platform
    platform = bench_platform(get_target("ulx3s-85f"), 250e6)
    platform.add_file("fake_top.v", FAKE_TOP)
    plan = platform.build(sc.ScBenchTop("fake_top", 64, 4), name="top", do_build=False)
    plan.extract(tmp_path)
    assert "read_verilog  fake_top.v" in (tmp_path / "top.ys").read_text()
    il = (tmp_path / "top.il").read_text()
    assert "cell \\fake_top \\sc" in il
    for port in ("clk", "rst_n", "en", "I_ext_flat", "spike_bus", "tick_done"):
        assert f"connect \\{port} " in il
