"""``python -m formal`` (``make formal``): generate and run every proof, print what holds.

Each LIF proof must PASS and the deliberately wrong spec (:data:`formal.lif.MUTANT`) must
FAIL (the harness is not vacuous); each host-link proof (:mod:`formal.host_link`,
k-induction) must PASS and each broken copy of the decoder (:data:`formal.host_link.MUTANTS`)
must FAIL. ``--quick`` skips the proofs marked slow.
"""

from __future__ import annotations

import argparse
import json
import sys

from formal.host_link import LINK_PROOFS, MUTANTS, write_link_proof
from formal.lif import MUTANT, PROOFS, write_lif_proof
from formal.sby import formal_root, run_sby, tools_missing


def run_all(names=None, *, quick=False, solver="boolector", timeout=None, out=print):
    root = formal_root()
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(p, write_lif_proof, p.wrong_spec) for p in [*PROOFS, MUTANT]]
    jobs += [(p, write_link_proof, p.mutation is not None) for p in [*LINK_PROOFS, *MUTANTS]]
    for proof, writer, must_fail in jobs:
        if names and proof.name not in names:
            continue
        if quick and proof.slow:
            continue
        result = run_sby(writer(proof, root, solver=solver), solver=solver, timeout=timeout)
        want = "FAIL" if must_fail else "PASS"
        ok = result.status == want
        mode = getattr(proof, "mode", "bmc")
        row = {"proof": proof.name, "status": result.status, "expected": want, "ok": ok,
               "mode": mode, "depth": proof.depth, "seconds": round(result.seconds, 1),
               "options": {k: str(v) for k, v in proof.options.items()}}
        if writer is write_lif_proof:
            row.update(neurons=proof.neurons, memory_outreg=proof.memory_outreg)
        else:
            row.update(buffer_bytes=proof.buffer_bytes, mutation=proof.mutation)
        rows.append(row)
        what = (f"k-induction, k = {proof.depth} (unbounded)" if mode == "prove"
                else f"BMC depth {proof.depth} cycles from reset")
        out(f"formal {proof.name}: {result.status} (expected {want}) in "
            f"{result.seconds:.0f} s, {what}")
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
