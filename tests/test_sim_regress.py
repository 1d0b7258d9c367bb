"""``make regress``: >= 200 random LIF-array configurations on the fast path, seeds printed.

The default suite runs the whole regression (about a second per configuration on Icarus):
every configuration must match golden at every output beat, and the draw must really cover
each option (registered BRAM, affine, multiply leak, subtract reset, several widths).
"""

import os
import shutil
from pathlib import Path

import pytest

from sim.regress import DEFAULT_COUNT, draw_case, run_regression
from sim.tally import record

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPIKEFOLD_BUILD_DIR", str(REPO / "build"))

needs_icarus = pytest.mark.skipif(not all(map(shutil.which, ("iverilog", "vvp"))),
                                  reason="needs Icarus Verilog")


def test_draws_are_reproducible_and_cover_every_option():
    cases = [draw_case(1000 + i) for i in range(DEFAULT_COUNT)]
    assert cases[17] == draw_case(1017)
    assert DEFAULT_COUNT >= 200
    assert sum(c.memory_outreg for c in cases) >= 60
    assert sum(c.options["affine"] for c in cases) >= 50
    assert sum(c.options["reset"] == "subtract" for c in cases) >= 60
    assert sum(c.options["tau"] not in (1.0, 0.5, 0.25, 0.125, 0.0625) for c in cases) >= 60
    assert len({c.options["membrane"] for c in cases}) >= 30
    assert len({c.lanes for c in cases}) == 8 and len({c.options["T"] for c in cases}) == 6
    assert any(c.gaps > 0 and c.backpressure > 0 for c in cases)
    assert any(c.options["threshold"].bits < c.options["membrane"].bits for c in cases)
    # thresholds at the rails against saturated membranes, through the registered path
    assert sum(c.rails and c.memory_outreg and c.options["threshold"] == c.options["membrane"]
               for c in cases) >= 15


CHUNKS = 4       # so that pytest-xdist spreads the regression over both cores


@needs_icarus
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_regression(chunk, capsys):
    size = DEFAULT_COUNT // CHUNKS
    summary = run_regression(size, first=chunk * size)
    out = capsys.readouterr().out
    print(out)
    record(f"fast-regress-{chunk}", {"compared": summary["compared"],
                                     "cycles": summary["cycles"],
                                     "mismatches": len(summary["failures"])})
    assert summary["configurations"] == size
    assert not summary["failures"], "\n".join(
        f"seed {f['seed']} ({f['config']}): {f['first_mismatch']}; replay: {f['replay']}"
        for f in summary["failures"])
    assert f"seed {1000 + (chunk + 1) * size - 1}:" in out     # every seed is printed
    assert summary["compared"] >= 2 * 200 * size


NET_CHUNKS = 2


@needs_icarus
@pytest.mark.parametrize("chunk", range(NET_CHUNKS))
def test_network_regression(chunk, capsys):
    """The random small networks of ``make regress`` (seeds 1500..): every LIF layer and
    every result against golden, every expected value compared."""
    from sim.regress import DEFAULT_NETWORKS, draw_network
    size = DEFAULT_NETWORKS // NET_CHUNKS
    seeds = [1500 + chunk * size + i for i in range(size)]
    failures = []
    out_lines = []
    for s in seeds:
        summary = run_regression(0, only_network=s, out=out_lines.append)
        failures += summary["failures"]
    print("\n".join(out_lines))
    assert not failures, failures
    assert all(f"seed {s}:" in "\n".join(out_lines) for s in seeds)
    cases = [draw_network(1500 + i) for i in range(DEFAULT_NETWORKS)]
    assert any(c.outreg for c in cases) and any(not c.outreg for c in cases)
    assert any(len(c.sizes) > 3 for c in cases)
