"""cocotb co-simulation of a convolutional network against golden, every layer compared.

A small conv SNN (conv 4ch 3x3 pad 1 -> LIF -> max pool 2 -> conv 8ch 3x3 stride 2 pad 1
(8 x 2 x 2) -> LIF -> flatten -> dense readout) runs through the exported Verilog on the project's
simulator (Icarus by default): every conv LIF layer's spikes and membranes at every
timestep, then logits and class, must equal golden's IntegerNetwork (0 mismatches). A
threshold corrupted in the RTL's second conv LIF must be named as (sample, layer, t,
channel, y, x).

This is the test that caught Yosys's time-zero ``always @*`` trigger failing on Icarus (the
conv stage's partial-sum read data stayed X; :func:`hdl.export.time_zero_events`).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cocotb_tools.runner")

from golden.calibrate import calibrate  # noqa: E402
from golden.examples import example_conv_network  # noqa: E402
from golden.fold import Compare  # noqa: E402
from golden.network import IntegerNetwork  # noqa: E402
from sim.network_cosim import run_network_cocotb  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "build" / "cosim-conv"
SEED = int(os.environ.get("SPIKEFOLD_COSIM_SEED", "1"))

pytestmark = pytest.mark.cocotb


@pytest.fixture(scope="module")
def conv():
    net = example_conv_network((1, 8, 8), classes=4, T=2, seed=3, weight_scale=1.5)
    rng = np.random.default_rng(4)
    x = rng.random((40, 1, 8, 8))
    inet = IntegerNetwork.from_folded(net.fold(), calibrate(net, x, bits=12, weight_bits=8))
    return inet, x[:3]


def test_conv_network_on_rtl(conv):
    inet, x = conv
    r = run_network_cocotb(inet, x, lanes=4, in_lanes=4, seed=SEED, root=ROOT, gaps=0.2)
    check_conv_run(r, inet, x)


def check_conv_run(r, inet, x):
    """A cocotb run of the small conv net (4 lanes): 0 mismatches, and every value of the
    two conv LIF arrays and the readout compared."""
    assert r["total_mismatches"] == 0, r["first_mismatch"]
    rows = {row["layer"]: row for row in r["layers"]}
    assert sorted(rows) == [0, 2, 4]              # the two conv LIF arrays, the readout
    T, S = inet.T, len(x)
    n0, n2 = 4 * 8 * 8, 8 * 2 * 2
    assert rows[0]["compared"] == S * T * (2 * n0 + 2 * (n0 // 4))   # spikes, membranes, t, beat
    assert rows[2]["compared"] == S * T * (2 * n2 + 2 * (n2 // 4))
    assert rows[4]["compared"] == S * (4 + 1)
    assert r["labels"] == r["want_label"]


def test_corrupted_conv_threshold_is_placed(conv):
    """Channel 5, y 1, x 0 of the second conv LIF always fires in the RTL: the first
    mismatch is placed there, the first conv layer stays clean."""
    inet, x = conv
    wrong = copy.deepcopy(inet)
    neuron = 5 * 4 + 1 * 2 + 0
    wrong.layers[2].thresholds.compare[neuron] = int(Compare.ALWAYS)
    want, got = inet.run(x, per_sample=True), wrong.run(x, per_sample=True)
    flat_w = want.spikes[1].reshape(inet.T, len(x), -1)
    flat_g = got.spikes[1].reshape(inet.T, len(x), -1)
    assert not np.array_equal(flat_w[:, :, neuron], flat_g[:, :, neuron])
    bad = run_network_cocotb(wrong, x, lanes=4, in_lanes=4, seed=SEED, root=ROOT,
                             run_name="corrupted-conv", golden=inet)
    first = bad["first_mismatch"]
    assert first["layer"] == 2 and first["neuron"] == neuron, first
    assert (first["channel"], first["y"], first["x"]) == (5, 1, 0), first
    rows = {row["layer"]: row for row in bad["layers"]}
    assert rows[0]["mismatches"] == 0 and rows[2]["mismatches"] > 0
