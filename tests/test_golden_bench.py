"""``spikefold bench`` runs and reports both sides (small sizes; the figures are not checked)."""

import pytest

from golden.bench import measure
from spikefold.cli import main


def test_measure_small():
    r = measure(neurons=256, steps=4, repeat=1)
    assert r["core_updates_per_s"] > 0 and r["float_updates_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["core_seconds"] / r["float_seconds"])


def test_cli(capsys):
    assert main(["bench", "--neurons", "128", "--steps", "2", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "bit-exact core model" in out and "float NumPy LIF, folded rule" in out and "ratio" in out
    assert "spike agreement core vs float" in out


def test_cli_bad_argument(capsys):
    assert main(["bench", "--steps", "0"]) == 2
    assert "--steps must be a positive integer, not 0" in capsys.readouterr().err


def test_float_side_honours_the_folded_rule():
    # A fifth of the example's neurons compare with LT, some are NEVER/ALWAYS: a float side
    # that compared every neuron with u > theta agreed on only ~78 % of the decisions.
    r = measure(neurons=2048, steps=16, repeat=1)
    assert r["spike_agreement"] > 0.999
