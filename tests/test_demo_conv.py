"""The demo shows the conv network next to the MLP (golden accuracy and the capacity plan)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from boards.capacity import capacity_plan
from boards.targets import get_target
from golden.modelfile import DEFAULT_CONV_MODEL, ModelFile
from spikefold import cli, demo


def test_conv_stage_figures(capsys):
    args = argparse.Namespace(conv_samples=0, quiet=True)
    conv = demo._conv_stage(args)
    model = ModelFile.load(DEFAULT_CONV_MODEL)
    inet = model.integer()
    x = model.inputs(model.test_x)
    fixed = float(np.mean(inet.run(x).predict() == model.test_y))
    flt = float(np.mean(model.network.forward(x).predict() == model.test_y))
    assert conv["fixed_accuracy"] == pytest.approx(fixed) and conv["float_accuracy"] == \
        pytest.approx(flt)
    assert conv["test_samples"] == len(model.test_y) == 540
    cp = capacity_plan(inet, model.inputs(model.test_x[:8]), get_target("ulx3s-85f"))
    assert conv["plan_cycles_per_image"] == cp.cycles_per_image
    assert conv["bram_blocks"] == cp.blocks and conv["fits"] and conv["rtl"] is None
    table = demo._conv_table(conv)
    assert f"{fixed:.2%}" in table and "not simulated" in table
    assert "conv network" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["--conv-samples", "-1"], "--conv-samples must be at least 0, not -1"),
    (["--no-conv", "--conv-samples", "2"], "--conv-samples needs the conv stage"),
])
def test_conv_args_refused_first(argv, needle, capsys, tmp_path):
    assert cli.main(["demo", "--samples", "0", "--out", str(tmp_path), *argv]) == 2
    captured = capsys.readouterr()
    assert needle in captured.err and "fold" not in captured.out


def test_board_table_formats_cycles():
    """The demo's board table prints cycles per image as a figure, not a raw float."""
    from spikefold.demo import _board_table
    board = {"board": "ulx3s-85f", "device": "LFE5U-85F", "luts": 10834, "ffs": 11502,
             "bram_blocks": 42, "dsp": 16, "fmax_mhz": 111.38,
             "cycles_per_image": 1371.9473684210527, "us_per_image": 12.318,
             "latency_us": 16.86, "lanes": [16, 16, 10], "in_lanes": 8,
             "freq_target_mhz": 250.0, "build_dir": "build/x"}
    text = _board_table(board)
    assert "| 1,371.9 |" in text and "1371.947" not in text
