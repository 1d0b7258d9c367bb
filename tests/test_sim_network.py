"""cocotb + Icarus co-simulation of a whole exported network against golden.

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
from hdl.network import SpikingNetwork  # noqa: E402
from sim.network_cosim import (cosim_network, random_network, random_pixels,  # noqa: E402
                               run_network_cocotb)

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
    assert report["mismatches"] == [0, 0, 0]
    assert report["rtl_accuracy"] == report["fixed_accuracy"]
    assert report["cycles_per_image"] > 0 and len(report["latency_cycles"]) == 3


def test_small_network_backpressure_and_mismatch_detection():
    """A small random network under input gaps and output backpressure matches golden; and
    the scoreboard really compares: a corrupted golden logit must be reported."""
    inet = random_network((10, 6, 3), T=2, weight_bits=6, bits=10, seed=5)
    x = random_pixels(10, 4, nonzero=0.6, seed=6)
    good = run_network_cocotb(inet, x, lanes=[3, 3], in_lanes=5, seed=SEED, root=ROOT,
                              gaps=0.3, backpressure=0.4)
    assert good["total_mismatches"] == 0, good["first_mismatch"]
    assert good["labels"] == good["want_label"]
    assert good["first_in"][0] < good["first_in"][1] < good["result_cycle"][0]
    wrong = copy.deepcopy(inet)
    wrong.layers[-1].bias_q[1] += 4 << max(0, wrong.layers[-1].shift)   # moves logit 1
    bad = run_network_cocotb(inet, x, lanes=[3, 3], in_lanes=5, seed=SEED, root=ROOT,
                             run_name="corrupted", golden=wrong)
    assert bad["total_mismatches"] > 0
    assert bad["first_mismatch"]["field"] in ("logit[1]", "class")
    assert np.array(bad["logits"]).shape == (4, 3)


def test_cycle_counts_match_amaranth_simulation():
    """Icarus runs the exported Verilog cycle for cycle like the Amaranth simulator: the
    same latency per sample and the same intervals between results."""
    inet = random_network((12, 8, 4), T=3, weight_bits=6, bits=10, seed=9)
    x = random_pixels(12, 3, nonzero=0.7, seed=9)
    lanes, in_lanes = [4, 2], 4
    rtl = run_network_cocotb(inet, x, lanes=lanes, in_lanes=in_lanes, seed=SEED, root=ROOT,
                             run_name="cycles")
    assert rtl["total_mismatches"] == 0, rtl["first_mismatch"]
    dut = SpikingNetwork(inet, lanes, in_lanes=in_lanes)
    x_q, _ = inet.quantize_input(x)
    ref = simulate(dut, x_q, monitor=False)
    lat = [d - f for f, d in zip(rtl["first_in"], rtl["result_cycle"])]
    assert lat == [d - f for f, d in zip(ref["first_in"], ref["result"])]
    assert np.diff(rtl["result_cycle"]).tolist() == np.diff(ref["result"]).tolist()
