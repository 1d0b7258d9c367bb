"""Read what the toolchain measured: nextpnr's JSON report and Yosys's cell statistics.

nextpnr writes ``--report FILE`` as JSON with ``utilization`` (``{bel type: {used,
available}}``), ``fmax`` (``{clock: {achieved, constraint}}`` in MHz) and
``critical_paths`` (per clock: a list of path segments with ``delay`` in ns, ``type``
clk-to-q/logic/routing/setup, and ``from``/``to`` cells). This module turns that into the
figures ``build.json`` and the sweep table report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["parse_nextpnr_report", "parse_yosys_stat", "summarize", "RESOURCE_NAMES"]

#: Our names for the bel types of each family.
RESOURCE_NAMES = {
    "ice40": {"logic_cells": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP",
              "spram": "ICESTORM_SPRAM", "io": "SB_IO"},
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "bram": "DP16KD",
             "dsp": "MULT18X18D", "io": "TRELLIS_IO"},
}


def parse_nextpnr_report(path_or_obj):
    """``{"utilization": {bel: (used, available)}, "fmax": {clock: (achieved, constraint)},
    "critical_paths": [{"from", "to", "clock", "delay_ns", "logic_ns", "routing_ns",
    "segments", "nets"}]}``."""
    obj = path_or_obj
    if not isinstance(obj, dict):
        text = Path(path_or_obj).read_text()
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path_or_obj}: not a nextpnr JSON report ({exc})") from None
    for key in ("utilization", "fmax"):
        if key not in obj:
            raise ValueError(f"nextpnr report has no {key!r} section")
    util = {bel: (int(v["used"]), int(v["available"])) for bel, v in obj["utilization"].items()}
    fmax = {clk: (float(v["achieved"]), float(v["constraint"])) for clk, v in obj["fmax"].items()}
    paths = []
    for cp in obj.get("critical_paths", []):
        segs = cp.get("path", [])
        total = sum(float(s.get("delay", 0.0)) for s in segs)
        logic = sum(float(s.get("delay", 0.0)) for s in segs if s.get("type") in ("logic",))
        routing = sum(float(s.get("delay", 0.0)) for s in segs if s.get("type") == "routing")
        nets = [s["net"] for s in segs if s.get("type") == "routing" and "net" in s]
        start = segs[0]["from"]["cell"] if segs else ""
        end = segs[-1]["to"]["cell"] if segs else ""
        paths.append({"from": cp.get("from", ""), "to": cp.get("to", ""),
                      "start_cell": start, "end_cell": end, "delay_ns": round(total, 3),
                      "logic_ns": round(logic, 3), "routing_ns": round(routing, 3),
                      "segments": len(segs), "nets": nets})
    return {"utilization": util, "fmax": fmax, "critical_paths": paths}


_STAT_LINE = re.compile(r"^\s+(\d+)\s+(\$?[A-Za-z_][\w$]*)\s*$")


def parse_yosys_stat(path):
    """Cell counts of the last ``stat`` of a Yosys log (the whole design, with submodules).

    Returns ``{cell type: count}``.
    """
    text = Path(path).read_text(errors="replace")
    start = text.rfind("Printing statistics")
    if start < 0:
        raise ValueError(f"{path}: no Yosys statistics found")
    block = text[start:]
    hier = block.find("design hierarchy")
    if hier >= 0:
        block = block[hier:]
    cells = {}
    for line in block.splitlines():
        m = _STAT_LINE.match(line)
        if m and not m.group(2).startswith("$scopeinfo"):
            name = m.group(2)
            if name in ("wires", "cells", "ports", "submodules", "memories", "processes"):
                continue
            cells[name] = cells.get(name, 0) + int(m.group(1))
    return cells


def _ffs(cells):
    return sum(n for name, n in cells.items()
               if name.startswith(("SB_DFF", "TRELLIS_FF", "FD", "$_DFF", "$_SDFF")))


def summarize(family, report, cells=None, lanes=None, clock=None):
    """The figures of one build: logic, FFs, BRAM, DSP, Fmax, throughput, critical path."""
    util = report["utilization"]
    names = RESOURCE_NAMES[family]

    def used(key):
        bel = names.get(key)
        return util.get(bel, (0, 0)) if bel else (0, 0)

    out = {}
    if family == "ice40":
        out["logic_cells"], out["logic_cells_available"] = used("logic_cells")
        out["luts"] = (cells or {}).get("SB_LUT4")
        out["carries"] = (cells or {}).get("SB_CARRY")
        out["spram_blocks"], out["spram_blocks_available"] = used("spram")
    else:
        out["luts"], out["luts_available"] = used("luts")
    out["ffs"] = _ffs(cells) if cells else used("ffs")[0] if family == "ecp5" else None
    out["bram_blocks"], out["bram_blocks_available"] = used("bram")
    out["dsp"], out["dsp_available"] = used("dsp")
    fmax = report["fmax"]
    if clock is None and fmax:
        clock = min(fmax, key=lambda c: fmax[c][0])
    out["fmax_mhz"] = {c: round(a, 2) for c, (a, _) in fmax.items()}
    out["constraint_mhz"] = {c: round(k, 2) for c, (_, k) in fmax.items()}
    if clock in fmax:
        out["fmax_clock"] = clock
        out["fmax_main_mhz"] = round(fmax[clock][0], 2)
        if lanes:
            out["throughput_updates_per_s"] = lanes * fmax[clock][0] * 1e6
    paths = [p for p in report["critical_paths"] if clock and clock in p["to"]] \
        or report["critical_paths"]
    if paths:
        worst = max(paths, key=lambda p: p["delay_ns"])
        out["critical_path"] = {k: worst[k] for k in
                                ("start_cell", "end_cell", "delay_ns", "logic_ns",
                                 "routing_ns", "segments")}
        out["critical_path"]["nets"] = worst["nets"][:12]
    return out
