"""The network fast path (sim/fastpath_network.py): a whole network in a plain Verilog
testbench with no Python per cycle, against the golden integer network.

Every LIF layer's spikes and membranes at every timestep and every result (logits, class)
are compared in the testbench; ``compared`` counts what was actually checked and equals
the cocotb network scoreboard's count on the same run. A wrong golden network must be
caught, with the first mismatch decoded like the cocotb scoreboard's.
"""

import os
import shutil
from pathlib import Path

import pytest

from sim.fastpath_network import run_network_fast, small_networks

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPIKEFOLD_BUILD_DIR", str(REPO / "build"))

pytestmark = pytest.mark.skipif(not all(map(shutil.which, ("iverilog", "vvp"))),
                                reason="needs Icarus Verilog")

NETS = small_networks()
#: Exports are reused across tests (prepare_network_rtl keys them by their Verilog).
RTL = REPO / "build" / "fastpath-network-rtl"


def _mapping(index):
    from hdl.mapping import HardwareMapping
    return HardwareMapping.for_network(NETS[index][1], 3, 2, index % 2 == 0)


def _expected_compared(inet, samples, lanes):
    """Every value golden gives: per hidden layer, timestep and beat ``t`` and ``beat``
    plus spike and membrane per neuron; per sample the logits and the class."""
    sizes = [inet.layers[0].n_in] + [layer.n_out for layer in inet.layers]
    T = inet.T
    total = sum(samples * T * (2 * -(-n // p) + 2 * n) for n, p in zip(sizes[1:-1], lanes))
    return total + samples * (sizes[-1] + 1)


@pytest.mark.parametrize("index", range(2), ids=[n[0] for n in NETS[:2]])
def test_small_network_matches_golden(index, tmp_path):
    name, inet, x = NETS[index]
    mapping = _mapping(index)
    r = run_network_fast(inet, x, tmp_path, mapping=mapping, gaps=0.2, backpressure=0.3,
                         state=0x1234567 + index, rtl_root=RTL)
    assert r["first_mismatch"] is None, r["first_mismatch"]
    assert r["mismatches"] == 0 and r["results"] == len(x)
    assert r["compared"] == _expected_compared(inet, len(x), mapping.lanes)
    assert r["cycles"] > 0


def test_wrong_golden_is_caught(tmp_path):
    from sim.network_cosim import random_network
    name, inet, x = NETS[0]
    other = random_network((16, 12, 4), T=3, seed=99)
    r = run_network_fast(inet, x, tmp_path, mapping=_mapping(0), golden=other, rtl_root=RTL)
    assert r["mismatches"] == 1
    first = r["first_mismatch"]
    assert first["layer"] == 0 and first["field"] in ("spike", "membrane")
    assert first["sample"] == 0 and first["expected"] != first["got"]
    assert 0 < r["compared"] < _expected_compared(inet, len(x), _mapping(0).lanes)


@pytest.mark.cocotb
def test_compared_equals_cocotb_scoreboard(tmp_path):
    """Same network, same samples: the fast path and the cocotb network co-simulation
    compare the same number of values, and both find no mismatch."""
    from sim.network_cosim import run_network_cocotb
    name, inet, x = NETS[1]
    fast = run_network_fast(inet, x, tmp_path / "fast", gaps=0.1, backpressure=0.1,
                            rtl_root=RTL)
    cocotb = run_network_cocotb(inet, x, gaps=0.1, backpressure=0.1, root=tmp_path / "cocotb")
    assert fast["mismatches"] == 0 and cocotb["mismatches"] == 0
    assert fast["compared"] == cocotb["compared"]
    assert [r["compared"] for r in fast["layers"]] == [r["compared"] for r in cocotb["layers"]]
