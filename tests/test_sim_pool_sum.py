"""cocotb co-simulation of a conv network with average pooling against golden.

conv 4ch 3x3 pad 1 -> LIF -> avg pool 2 (sum pooling in hardware: counts 0..4) -> conv 8ch
3x3 stride 2 pad 1 (8 x 2 x 2, its weights absorb the 1/4) -> LIF -> flatten -> dense
readout, through the exported Verilog on the project's simulator (Icarus by default):
every conv LIF layer's spikes and membranes at every timestep, then logits and class, must
equal golden's IntegerNetwork (0 mismatches). Small on purpose (3 samples, T = 2).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cocotb_tools.runner")

from golden.calibrate import calibrate  # noqa: E402
from golden.examples import example_conv_network  # noqa: E402
from golden.network import IntegerNetwork  # noqa: E402
from sim.network_cosim import run_network_cocotb  # noqa: E402
from test_sim_conv_network import check_conv_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "build" / "cosim-pool-sum"
SEED = int(os.environ.get("SPIKEFOLD_COSIM_SEED", "1"))

pytestmark = pytest.mark.cocotb

LAYERS = [{"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
          {"kind": "pool2d", "kernel": 2, "mode": "avg"},
          {"kind": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1},
          {"kind": "flatten"}]


def test_avg_pool_network_on_rtl():
    net = example_conv_network((1, 8, 8), LAYERS, classes=4, T=2, seed=3, weight_scale=1.5)
    rng = np.random.default_rng(4)
    x = rng.random((40, 1, 8, 8))
    inet = IntegerNetwork.from_folded(net.fold(), calibrate(net, x, bits=12, weight_bits=8))
    assert (inet.layers[1].mode, inet.layers[2].input_max) == ("sum", 4)
    x = x[:3]
    r = run_network_cocotb(inet, x, lanes=4, in_lanes=4, seed=SEED, root=ROOT, gaps=0.2,
                           backpressure=0.2)
    check_conv_run(r, inet, x)
    # The second conv layer saw counts between 0 and 4, not only 0 and 4.
    counts = inet.layers[1].run(inet.run(x, per_sample=True).spikes[0]).out
    assert np.any((counts > 1) & (counts < 4))
