"""The scoreboard on its own: a software DUT that follows the contract passes, and each kind
of deviation is reported as the first mismatch (cycle, timestep, neuron, expected, got)."""

import functools
import random
import tempfile

import numpy as np
import pytest

from golden.examples import example_core
from golden.timing import CreditPipeline, StallPipeline
from hdl.export import export_verilog
from sim.desc import RtlDescription
from sim.fastpath import pack_outputs
from sim.stimulus import expected_beats, regression_stimulus
from sim.tb import Scoreboard, format_mismatch


@functools.lru_cache(maxsize=None)
def description(neurons, lanes, T, flow="stall"):
    with tempfile.TemporaryDirectory() as tmp:
        if flow == "stall":
            _, path = export_verilog(example_core(neurons, T=T), lanes, tmp, name="dut")
        else:
            from sim.runner import export_rtl
            _, path = export_rtl(example_core(neurons, T=T), lanes, tmp, name="dut", flow=flow)
        return RtlDescription.load(path)


def setup(neurons=10, lanes=4, T=4, flow="stall"):
    folded = example_core(neurons, T=T)
    desc = description(neurons, lanes, T, flow)
    expected = expected_beats(folded, lanes, regression_stimulus(folded, lanes, seed=3))
    return desc, expected


def simulate(desc, expected, *, corrupt=None, latency=None, seed=0, lanes_checked=None,
             max_cycles=None, model=None):
    """Drive a software pipeline that obeys the contract; ``corrupt(beat, word)`` may alter
    output words; ``latency`` may differ from the description's; ``lanes_checked`` makes
    the scoreboard look at fewer lanes than there are (a broken checker); ``model`` is
    the software DUT's cycle model (default a StallPipeline of ``latency``)."""
    rng = random.Random(seed)
    sb = Scoreboard(desc, expected)
    if lanes_checked is not None:
        sb.lanes = lanes_checked
    dut = model if model is not None else StallPipeline(latency or desc.latency)
    words = pack_outputs(desc, expected)
    t_next, b, c = 0, 0, 0
    limit = 20 * len(expected) if max_cycles is None else max_cycles
    while not sb.done and not sb.fatal and c < limit:
        valid = b < len(expected) and rng.random() < 0.8
        ready = rng.random() < 0.7
        out_beat = dut.out_beat
        word = None if out_beat is None else words[out_beat]
        if word is not None and corrupt:
            word = corrupt(out_beat, word)
        sb.cycle(c, in_valid=valid, beat_id=b if valid else None, out_ready=ready, clear=False,
                 in_ready=dut.in_ready(ready), out_valid=dut.out_valid, out_word=word,
                 t_port=t_next)
        took, _ = dut.edge(valid, b, ready)
        if took:
            t_next = (int(expected.t[b]) + int(expected.last[b])) % desc.config.T
            b += 1
        c += 1
    return sb


def test_contract_abiding_dut_passes():
    desc, expected = setup()
    # Clears and loads are the TB's business; here only the beat stream matters.
    sb = simulate(desc, expected)
    assert sb.first_mismatch is None and sb.done
    assert sb.compared == int(expected.compared_per_beat.sum())


def test_credit_flow_description_and_dut():
    """A credit-flow description (``flow``, ``capacity`` in the JSON) makes the scoreboard
    replay golden.timing.CreditPipeline: a DUT that follows it passes; a stall-flow DUT, or
    one with a credit too many, is a fatal handshake mismatch."""
    desc, expected = setup(flow="credit")
    assert (desc.flow, desc.capacity) == ("credit", desc.latency + 2)
    assert isinstance(desc.timing_model(), CreditPipeline)
    sb = simulate(desc, expected, model=CreditPipeline(desc.latency, desc.capacity))
    assert sb.first_mismatch is None and sb.done
    assert sb.compared == int(expected.compared_per_beat.sum())
    for wrong in (StallPipeline(desc.latency), CreditPipeline(desc.latency, desc.capacity + 1)):
        sb = simulate(desc, expected, model=wrong, seed=1)
        assert sb.fatal and sb.first_mismatch["field"] in ("i_current.ready", "o_spikes.valid")


def test_description_flow_is_checked():
    desc, _ = setup()
    assert desc.flow == "stall" and desc.capacity is None       # absent: the stall flow
    raw = dict(desc.raw, flow="skid")
    with pytest.raises(ValueError, match="field 'flow' must be 'stall' or 'credit', not 'skid'"):
        RtlDescription(raw)
    raw = dict(desc.raw, flow="credit", capacity=0)
    with pytest.raises(ValueError, match="field 'capacity' must be a positive integer, not 0"):
        RtlDescription(raw)


def test_compared_counts_the_comparisons_made():
    """``compared`` is what the checker looked at, not what the stimulus promised: a
    checker that skips the last lane reports fewer values, and a run cut short counts only
    the beats it received."""
    desc, expected = setup()
    lanes = desc.lanes
    sb = simulate(desc, expected, lanes_checked=lanes - 1)
    assert sb.done
    assert sb.compared == int((2 * np.minimum(expected.valid_lanes, lanes - 1)).sum())
    assert sb.compared < int(expected.compared_per_beat.sum())
    sb = simulate(desc, expected, max_cycles=len(expected) // 2)
    assert 0 < sb.received < len(expected)
    assert sb.compared == int(expected.compared_per_beat[:sb.received].sum())


def test_wrong_membrane_is_the_first_mismatch():
    desc, expected = setup()
    f = desc.output["membrane"]
    target = 37

    def corrupt(beat, word):
        if beat != target:
            return word
        m = f.extract(word)
        m[1] = m[1] + 1 if m[1] < (1 << (f.width - 1)) - 1 else m[1] - 1
        return f.insert(word, m)

    sb = simulate(desc, expected, corrupt=corrupt)
    m = sb.first_mismatch
    assert m["field"] == "membrane" and m["beat"] == target
    assert m["neuron"] == int(expected.beat[target]) * 4 + 1
    assert m["timestep"] == int(expected.t[target])
    assert m["expected"] == int(expected.membrane[target, 1]) and m["got"] != m["expected"]
    assert not sb.fatal          # timing still agreed; the run goes on and counts
    assert "neuron" in format_mismatch(m) and f"cycle {m['cycle']}" in format_mismatch(m)


def test_flipped_spike_and_fields_are_caught():
    desc, expected = setup()
    sb = simulate(desc, expected, corrupt=lambda b, w: w ^ (1 << desc.output["spikes"].offset)
                  if b == 5 else w)
    assert sb.first_mismatch["field"] == "spike"
    assert sb.first_mismatch["neuron"] == int(expected.beat[5]) * 4
    last = desc.output["last"]
    sb = simulate(desc, expected, corrupt=lambda b, w: w ^ (1 << last.offset) if b == 9 else w)
    assert sb.first_mismatch["field"] == "o_spikes.last"


@pytest.mark.parametrize("latency", [2, 4])
def test_wrong_latency_is_a_fatal_handshake_mismatch(latency):
    desc, expected = setup()
    sb = simulate(desc, expected, latency=desc.latency + (latency - 3))
    assert sb.fatal
    assert sb.first_mismatch["field"] in ("o_spikes.valid", "i_current.ready")


def test_unknown_values_are_mismatches():
    desc, expected = setup()
    sb = Scoreboard(desc, expected)
    sb.cycle(0, in_valid=True, beat_id=0, out_ready=True, clear=False, in_ready=None,
             out_valid=False, out_word=None, t_port=0)
    assert sb.fatal and sb.first_mismatch["got"] == "X/Z"


def test_padding_lanes_must_be_zero():
    desc, expected = setup(neurons=10, lanes=4)        # the third beat has two unused lanes
    f = desc.output["membrane"]
    b = int(np.nonzero(expected.valid_lanes < 4)[0][0])

    def corrupt(beat, word):
        if beat != b:
            return word
        m = f.extract(word)
        m[3] = 5
        return f.insert(word, m)

    sb = simulate(desc, expected, corrupt=corrupt)
    assert sb.first_mismatch["field"] == "membrane (unused lane)"
