"""The board top (LIF array + host link) under cocotb + Icarus through a simulated UART."""

import hashlib
import json
import shutil
from pathlib import Path

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


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_board_top_cocotb(name):
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog (iverilog) is not installed")
    from amaranth.back import verilog
    from cocotb_tools.runner import get_results, get_runner

    from boards.top import LinkTop
    from boards.cocotb_board import PLAN_ENV

    p = PARAMS[name]
    folded = example_core(**p["core"])
    plan = {"core": "core.npz", "lanes": p["lanes"], "divisor": 4,
            "buffer_bytes": p["buffer_bytes"], "timeout_bytes": 8, "seed": 11, "steps": 5}
    top = LinkTop(folded, p["lanes"], divisor=plan["divisor"],
                  buffer_bytes=plan["buffer_bytes"], timeout_bytes=plan["timeout_bytes"])
    text = verilog.convert(top, name=TOP, emit_src=False)
    key = hashlib.sha256((text + json.dumps(plan, sort_keys=True)).encode()).hexdigest()[:12]
    directory = Path("build") / "boards_cosim" / f"{name}-{key}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{TOP}.v").write_text(text)
    folded.save(directory / "core.npz")
    (directory / "plan.json").write_text(json.dumps(plan, indent=1))

    runner = get_runner("icarus")
    runner.build(sources=[directory / f"{TOP}.v"], hdl_toplevel=TOP,
                 build_dir=directory / "sim", timescale=("1ns", "1ps"),
                 log_file=directory / "build.log")
    try:
        results = runner.test(test_module="boards.cocotb_board", hdl_toplevel=TOP,
                              build_dir=directory / "sim", test_dir=directory,
                              extra_env={PLAN_ENV: str((directory / "plan.json").resolve())},
                              log_file=directory / "sim.log", seed=plan["seed"])
    except SystemExit:
        results = directory / "results.xml"
    total, failed = get_results(results)
    log = (directory / "sim.log").read_text(errors="replace")
    assert total == 2, f"expected 2 cocotb tests, ran {total}:\n{log[-3000:]}"
    assert failed == 0, f"{failed} cocotb test(s) failed:\n{log[-4000:]}"
