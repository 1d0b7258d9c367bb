"""``python -m formal`` (``make formal``): generate and run every proof, print what holds.

Each LIF proof must PASS and the deliberately wrong spec (:data:`formal.lif.MUTANT`) must
FAIL (the harness is not vacuous). ``--quick`` skips the proofs marked slow.
"""

from __future__ import annotations

import argparse
import json
import sys

from formal.lif import MUTANT, PROOFS, write_lif_proof
from formal.sby import formal_root, run_sby, tools_missing


def run_all(names=None, *, quick=False, solver="boolector", timeout=None, out=print):
    root = formal_root()
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for proof in [*PROOFS, MUTANT]:
        if names and proof.name not in names:
            continue
        if quick and proof.slow:
            continue
        result = run_sby(write_lif_proof(proof, root, solver=solver), solver=solver,
                         timeout=timeout)
        want = "FAIL" if proof.wrong_spec else "PASS"
        ok = result.status == want
        rows.append({"proof": proof.name, "status": result.status, "expected": want,
                     "ok": ok, "depth": proof.depth, "seconds": round(result.seconds, 1),
                     "neurons": proof.neurons, "memory_outreg": proof.memory_outreg,
                     "options": {k: str(v) for k, v in proof.options.items()}})
        out(f"formal {proof.name}: {result.status} (expected {want}) in {result.seconds:.0f} s, "
            f"BMC depth {proof.depth} cycles from reset")
        if not ok:
            out(result.tail())
    (root / "summary.json").write_text(json.dumps(rows, indent=1))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m formal", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="proofs to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="skip the slow proofs")
    parser.add_argument("--solver", choices=("boolector", "z3"), default="boolector")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds per proof before it counts as failed (default 1800)")
    args = parser.parse_args(argv)
    missing = tools_missing(args.solver)
    if missing:
        print(f"formal: missing {', '.join(missing)} (pip install -e '.[dev]')", file=sys.stderr)
        return 2
    rows = run_all(args.names, quick=args.quick, solver=args.solver, timeout=args.timeout)
    bad = [r["proof"] for r in rows if not r["ok"]]
    print(f"formal: {len(rows) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
