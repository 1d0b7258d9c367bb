"""Stimulus programs and golden's expected output stream."""

import numpy as np
import pytest

from golden.core import to_beats
from golden.examples import example_core
from sim.stimulus import (Stimulus, corner_coverage, expected_beats, long_stimulus,
                          random_stimulus, regression_stimulus)


def test_plain_run_matches_golden_beats():
    folded = example_core(10, T=4)
    stim = random_stimulus(folded.config, 12, seed=1)
    e = expected_beats(folded, 4, stim)
    spikes, v_pre = folded.model().run(stim.currents)
    assert np.array_equal(e.spikes, to_beats(spikes, 4))
    assert np.array_equal(e.membrane, to_beats(v_pre, 4))
    assert list(e.beat[:3]) == [0, 1, 2] and list(e.last[:3]) == [False, False, True]
    assert list(e.valid_lanes[:3]) == [4, 4, 2]
    assert list(e.t[::3]) == [0, 1, 2, 3] * 3
    assert int(e.compared_per_beat.sum()) == 2 * 10 * 12


def test_clear_and_reload_change_the_expectation():
    folded = example_core(6, T=4)
    c = random_stimulus(folded.config, 3, seed=2).currents
    ops = [{"op": "steps", "start": 0, "count": 2}, {"op": "clear"},
           {"op": "load", "index": [0], "theta": [0], "compare": [3]},
           {"op": "steps", "start": 2, "count": 1}]
    e = expected_beats(folded, 3, Stimulus(c, ops))
    assert list(e.t) == [0, 0, 1, 1, 0, 0]                # the clear restarts at t = 0
    assert e.spikes[4, 0]                                  # neuron 0 now ALWAYS fires
    m = folded.model()
    m.step(c[0]), m.step(c[1]), m.clear()
    assert np.array_equal(e.membrane[4:].ravel()[:6], m.step(c[2]).v_pre)


def test_a_cut_timestep_must_be_followed_by_a_clear():
    folded = example_core(6, T=4)
    c = random_stimulus(folded.config, 2, seed=2).currents
    ops = [{"op": "steps", "start": 0, "count": 1, "beats": 1},
           {"op": "steps", "start": 1, "count": 1}]
    with pytest.raises(ValueError, match="followed by a clear"):
        expected_beats(folded, 3, Stimulus(c, ops))
    ops.insert(1, {"op": "clear"})
    assert len(expected_beats(folded, 3, Stimulus(c, ops))) == 1 + 2


def test_regression_stimulus_covers_the_corners():
    folded = example_core(10, T=4)
    stim = regression_stimulus(folded, 4, seed=5)
    cover = corner_coverage(folded, stim, expected_beats(folded, 4, stim))
    assert cover["ties"] > 0 and cover["upper_rail"] > 0 and cover["lower_rail"] > 0
    assert cover["compare_kinds"] == [0, 1, 2, 3]
    assert cover["partial_steps"] == 1 and cover["clears"] >= 2 and cover["zero_steps"] >= 4


def test_save_load_round_trip(tmp_path):
    folded = example_core(5, T=3)
    stim = long_stimulus(folded.config, 30, seed=4)
    stim.save(tmp_path)
    back = Stimulus.load(tmp_path)
    assert np.array_equal(back.currents, stim.currents) and back.ops == stim.ops
    assert back.seed == 4
