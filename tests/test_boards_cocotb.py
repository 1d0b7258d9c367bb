"""The board tops under cocotb + Icarus through a simulated UART: the LIF array + host
link (LinkTop) and the whole network + network link (NetworkLinkTop), against golden."""

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from golden.examples import example_core

pytestmark = pytest.mark.cocotb

TOP = "spikefold_board"
PARAMS = {
    # N/P below the pipeline depth (forwarding), RUN frames crossing timesteps.
    "n12_p4_shift": dict(core=dict(neurons=12, T=3, seed=5), lanes=4, buffer_bytes=32),
    # Affine stage + multiply leak; one beat per timestep; LOAD_AFF through the link.
    "n8_p8_affine_mult": dict(core=dict(neurons=8, T=2, seed=6, affine=True, tau=0.3,
                                        channels=2), lanes=8, buffer_bytes=48),
}
LINK_TESTS = ["run_matches_golden", "errors_never_corrupt_state"]
NETWORK_TESTS = ["network_classify_matches_golden", "network_errors_never_feed_pixels"]


def _run(name, top, plan, files, testcases):
    """Export ``top``, write ``plan`` and ``files`` next to it, run ``testcases``."""
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog (iverilog) is not installed")
    from amaranth.back import verilog
    from cocotb_tools.runner import get_results, get_runner

    from boards.cocotb_board import PLAN_ENV
    from hdl.export import time_zero_events
    text = time_zero_events(verilog.convert(top, name=TOP, emit_src=False))
    key = hashlib.sha256((text + json.dumps(plan, sort_keys=True)).encode()).hexdigest()[:12]
    directory = Path("build") / "boards_cosim" / f"{name}-{key}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{TOP}.v").write_text(text)
    for fname, write in files.items():
        write(directory / fname)
    (directory / "plan.json").write_text(json.dumps(plan, indent=1))

    runner = get_runner("icarus")
    runner.build(sources=[directory / f"{TOP}.v"], hdl_toplevel=TOP,
                 build_dir=directory / "sim", timescale=("1ns", "1ps"),
                 log_file=directory / "build.log")
    try:
        results = runner.test(test_module="boards.cocotb_board", hdl_toplevel=TOP,
                              testcase=testcases, build_dir=directory / "sim",
                              test_dir=directory,
                              extra_env={PLAN_ENV: str((directory / "plan.json").resolve())},
                              log_file=directory / "sim.log", seed=plan["seed"])
    except SystemExit:
        results = directory / "results.xml"
    total, failed = get_results(results)
    log = (directory / "sim.log").read_text(errors="replace")
    assert total == len(testcases), f"expected {len(testcases)} cocotb tests, ran {total}:\n" \
                                    f"{log[-3000:]}"
    assert failed == 0, f"{failed} cocotb test(s) failed:\n{log[-4000:]}"


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_board_top_cocotb(name):
    from boards.top import LinkTop
    p = PARAMS[name]
    folded = example_core(**p["core"])
    plan = {"core": "core.npz", "lanes": p["lanes"], "divisor": 4,
            "buffer_bytes": p["buffer_bytes"], "timeout_bytes": 8, "seed": 11, "steps": 5}
    top = LinkTop(folded, p["lanes"], divisor=plan["divisor"],
                  buffer_bytes=plan["buffer_bytes"], timeout_bytes=plan["timeout_bytes"])
    _run(name, top, plan, {"core.npz": folded.save}, LINK_TESTS)


def tiny_network():
    """A 12-8-6-4 random network, T = 3, 6-bit pixels (so a pixel can be out of range),
    lanes 3/4/2 (padded last beats) and 5 input lanes (a padded last pixel beat)."""
    from hdl.mapping import HardwareMapping
    from sim.network_cosim import random_network, random_pixels
    inet = random_network((12, 8, 6, 4), T=3, bits=10, weight_bits=6, input_bits=6, seed=3)
    mapping = HardwareMapping.for_network(inet, [3, 4, 2], in_lanes=5)
    return inet, mapping, random_pixels(12, 6, nonzero=0.7, seed=4)


def test_network_top_cocotb():
    """The network top classifies a batch (and with spike counts) as golden does; error
    frames feed no pixel."""
    from boards.top import NetworkLinkTop
    inet, mapping, x = tiny_network()
    plan = {"network": "network.pkl", "images": "images.npy", "divisor": 4,
            "buffer_bytes": 64, "timeout_bytes": 8, "seed": 12, "batch": 4,
            "in_lanes": mapping.in_lanes}
    top = NetworkLinkTop(inet, mapping, divisor=plan["divisor"],
                         buffer_bytes=plan["buffer_bytes"], timeout_bytes=plan["timeout_bytes"])
    assert top.layout.max_images >= plan["batch"]
    _run("network_tiny", top, plan,
         {"network.pkl": lambda p: p.write_bytes(pickle.dumps(inet)),
          "images.npy": lambda p: np.save(p, x)}, NETWORK_TESTS)


def test_digits_network_top_cocotb():
    """The default digits MLP (64-128-128-10, the default mapping) behind the UART: one
    CLASSIFY and one CLASSIFY_COUNTS image equal golden."""
    from boards.top import NetworkLinkTop
    from golden.modelfile import load_default
    model = load_default()
    inet = model.integer()
    x = model.inputs(model.test_x[:2])
    plan = {"network": "network.pkl", "images": "images.npy", "divisor": 4,
            "buffer_bytes": 128, "timeout_bytes": 8, "seed": 13, "batch": 1}
    top = NetworkLinkTop(inet, divisor=plan["divisor"], buffer_bytes=plan["buffer_bytes"],
                         timeout_bytes=plan["timeout_bytes"])
    plan["in_lanes"] = top.network.in_lanes
    _run("network_digits", top, plan,
         {"network.pkl": lambda p: p.write_bytes(pickle.dumps(inet)),
          "images.npy": lambda p: np.save(p, x)}, NETWORK_TESTS[:1])
