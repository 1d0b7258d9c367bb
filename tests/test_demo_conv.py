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
