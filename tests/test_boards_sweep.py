"""The sweep's table and plots (from given rows; the builds themselves are YoWASP runs)."""

import csv

import pytest

from boards.sweep import COLUMNS, add_marginals, default_points, plot, write_table
from boards.targets import get_target


def _row(n, p, w, logic, ffs):
    return {"device": "iCE40UP5K", "neurons": n, "lanes": p, "membrane_bits": w, "tau": 0.25,
            "logic": logic, "ffs": ffs, "bram_blocks": 3 * p, "dsp": 0,
            "logic_per_lane": logic / p, "bram_bits_per_neuron": 3 * p * 4096 / n,
            "min_bits_per_neuron": 2 * w + 2, "fmax_mhz": 45.0,
            "throughput_mupdates_s": 45.0 * p, "critical_path": "a -> b (22 ns)"}


def test_marginal_cost_is_the_slope(tmp_path):
    rows = [_row(256, p, 16, 200 + 70 * p, 150 + 40 * p) for p in (1, 2, 4, 8)]
    rows.append(_row(1024, 4, 16, 500, 300))
    add_marginals(rows)
    assert [r["logic_per_lane_marginal"] for r in rows[:4]] == [70.0] * 4
    assert rows[0]["ffs_per_lane_marginal"] == 40.0
    assert rows[4]["logic_per_lane_marginal"] is None
    write_table(rows, tmp_path)
    plot(rows, tmp_path, get_target("icebreaker"))
    with open(tmp_path / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == COLUMNS and len(table) == 5
    md = (tmp_path / "sweep.md").read_text()
    assert md.count("\n| iCE40UP5K") == 5 and "a -> b (22 ns)" in md
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_default_points_cover_lanes_neurons_widths(family):
    pts = default_points(family)
    assert len({p for _, p, _ in pts}) >= 4
    assert len({n for n, _, _ in pts}) >= 3
    assert {8, 16, 24} <= {w for _, _, w in pts}
