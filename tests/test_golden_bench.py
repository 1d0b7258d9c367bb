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


def test_too_big_a_bench_is_refused_up_front(capsys):
    from golden.bench import check_size
    check_size(65536, 16, memory=8e9)
    with pytest.raises(ValueError, match=r"--neurons 100,000,000 x --steps 16 needs about "
                                         r"64\.0 GB, more than half of this machine's 8\.0 GB"):
        check_size(100_000_000, 16, memory=8e9)
    assert main(["bench", "--neurons", str(10**12)]) == 2
    assert "GB of memory" in capsys.readouterr().err
