"""boards/netbench.py: argument checks and the plan-based cycles per image (no toolchain)."""

import pytest

from boards.netbench import main, parse_lanes, parse_sizes, plan_cycles


def test_parse_sizes_and_lanes():
    assert parse_sizes("784-128-10") == (784, 128, 10)
    assert parse_lanes("16") == 16 and parse_lanes("16,10") == [16, 10]
    assert parse_lanes(None) is None
    for bad in ("784", "784-x-10", "784-0-10"):
        with pytest.raises(ValueError, match=f"--random must be layer sizes like 784-128-10, "
                                             f"not '{bad}'"):
            parse_sizes(bad)
    with pytest.raises(ValueError, match="--lanes must be a positive integer or a comma list "
                                         "of them, not '0,4'"):
        parse_lanes("0,4")


def test_bad_arguments_are_one_line_errors(capsys, tmp_path):
    out = str(tmp_path / "x")
    assert main(["--board", "ulx3s-85f", "--random", "784-128-10", "--lanes", "a",
                 "--out", out]) == 2
    assert "--lanes must be a positive integer" in capsys.readouterr().err
    assert main(["--board", "ulx3s-85f", "--random", "784-128-10", "--nonzero", "1.5",
                 "--out", out]) == 2
    assert "--nonzero must be in [0, 1], not 1.5" in capsys.readouterr().err
    assert main(["--board", "ulx3s-85f", "--random", "784-128-10", "--samples", "2",
                 "--cycles", "100", "--out", out]) == 2
    assert "--cycles/--latency only with --samples 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_plan_cycles_match_the_measured_interval():
    """The digits MLP's second test sample, streamed after the first, took 1,114 cycles in
    the cocotb co-simulation (NOTES-h13net.md); the plan from golden's activity is within
    5 % of it, and one lane per layer costs ~16x more."""
    from golden.modelfile import load_default
    from hdl.plan import network_plan
    model = load_default()
    inet = model.integer()
    x = model.inputs(model.test_x[:3])
    est = plan_cycles(inet, network_plan(inet), x)
    assert len(est) == 3 and abs(est[1] - 1114) <= 0.05 * 1114, est
    slow = plan_cycles(inet, network_plan(inet, 1), x)
    assert abs(slow[1] - 17812) <= 0.05 * 17812, slow           # cocotb, lanes 1


def test_plan_cycles_of_a_conv_network():
    """The conv default: conv2's inputs are the pooled spikes of lif0, the readout's those
    of lif2; the plan's busiest stage sets the figure."""
    import numpy as np
    from golden.modelfile import load_conv_default
    from hdl.plan import network_plan
    model = load_conv_default()
    inet = model.integer()
    x = model.inputs(model.test_x[:2])
    plan = network_plan(inet)
    est = plan_cycles(inet, plan, x)
    res = inet.run(x, per_sample=True)
    pooled = inet.layers[1].run(res.spikes[0]).out
    x_q, _ = inet.quantize_input(x)
    for s in range(2):
        want = plan.cycles_per_sample(
            [int(np.count_nonzero(x_q[s])),
             [int(pooled[t, s].sum()) for t in range(inet.T)],
             [int(res.spikes[1][t, s].sum()) for t in range(inet.T)]])
        assert est[s] == want
