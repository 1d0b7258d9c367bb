"""Sum the values compared by the co-simulation tests of the last run (``python -m sim.tally``).

Each sim test writes ``build/cosim/tally/<test>.json`` (values compared, cycles, mismatches).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

__all__ = ["tally_dir", "record", "summarize"]


def tally_dir():
    return Path(os.environ.get("SPIKEFOLD_BUILD_DIR", "build")) / "cosim" / "tally"


def record(name, result):
    """Write one test's counts (``result`` has compared/cycles/mismatches)."""
    root = tally_dir()
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.json").write_text(json.dumps(
        {"test": name, "compared": int(result["compared"] or 0), "cycles": int(result["cycles"]),
         "mismatches": int(result["mismatches"])}))


def summarize(root=None, since=None):
    """Totals over the recorded co-simulations (only those written at or after ``since``,
    a ``time.time()`` value, when given)."""
    root = tally_dir() if root is None else Path(root)
    rows = [json.loads(p.read_text()) for p in sorted(root.glob("*.json"))
            if since is None or p.stat().st_mtime >= since]
    total = {"tests": len(rows), "compared": sum(r["compared"] for r in rows),
             "cycles": sum(r["cycles"] for r in rows),
             "mismatches": sum(r["mismatches"] for r in rows)}
    for kind in ("cocotb", "fast", "netlist", "cli"):
        part = [r for r in rows if r["test"].startswith(kind)]
        total[f"{kind}_compared"] = sum(r["compared"] for r in part)
    return total


if __name__ == "__main__":
    summary = summarize(sys.argv[1] if len(sys.argv) > 1 else None)
    print(json.dumps(summary, indent=1))
