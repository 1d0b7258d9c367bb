"""golden.timing: the stall-all and credit-flow cycle models."""

from __future__ import annotations

import numpy as np
import pytest

from golden.timing import CreditPipeline, StallPipeline


def _run(pipe, cycles, rng, *, p_valid=1.0, p_ready=1.0, p_clear=0.0):
    """Offer beats 0, 1, 2, ... under random valid/ready/clear; check the handshake's
    invariants every cycle. Returns (accepted, transferred out in order, max outstanding)."""
    nxt, taken, out, most = 0, [], [], 0
    for _ in range(cycles):
        valid = bool(rng.random() < p_valid)
        ready = bool(rng.random() < p_ready)
        clear = bool(rng.random() < p_clear)
        shown = pipe.out_beat if pipe.out_valid else None
        in_ready = pipe.in_ready(ready, clear)
        if isinstance(pipe, CreditPipeline):
            # No combinational path from out_ready (the credit is a register).
            assert in_ready == pipe.in_ready(not ready, clear)
        took, beat = pipe.edge(valid, nxt, ready, clear)
        assert took == (valid and in_ready)
        assert beat == (shown if ready else None)
        if took:
            taken.append(nxt)
            nxt += 1
        if beat is not None:
            out.append(beat)
        most = max(most, len(taken) - len(out))
    return taken, out, most


@pytest.mark.parametrize("latency", [1, 2, 4, 7])
def test_credit_full_throughput_and_delay(latency):
    """``out_ready`` always high: one beat per clock, each out ``latency + 1`` edges after
    its accept (the queue adds one), at most ``capacity`` outstanding."""
    pipe = CreditPipeline(latency)
    assert pipe.capacity == CreditPipeline.capacity_for(latency) == latency + 2
    assert pipe.delay == latency + 1
    accepted_at, out_at = {}, {}
    for edge in range(200):
        took, beat = pipe.edge(True, edge, True)
        assert took, f"bubble at edge {edge}"
        accepted_at[edge] = edge
        if beat is not None:
            out_at[beat] = edge
    assert all(out_at[b] - accepted_at[b] == latency + 1 for b in out_at)
    assert len(out_at) == 200 - (latency + 1)


@pytest.mark.parametrize("latency", [1, 3, 6])
def test_credit_capacity_is_the_smallest_with_full_throughput(latency):
    """One credit less and ``out_ready`` always high already leaves bubbles."""
    rng = np.random.default_rng(latency)
    taken, _, _ = _run(CreditPipeline(latency, latency + 1), 100, rng)
    assert len(taken) < 100
    taken, _, _ = _run(CreditPipeline(latency), 100, rng)
    assert len(taken) == 100


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("latency", [1, 4, 7])
def test_credit_random_handshake(latency, seed):
    """Random valid/ready/clear: order kept, nothing lost, never more than ``capacity``
    outstanding and the queue never overflows (edge() raises if it does)."""
    rng = np.random.default_rng(100 * latency + seed)
    pipe = CreditPipeline(latency)
    p_ready = [0.1, 0.5, 0.9][seed % 3]
    taken, out, most = _run(pipe, 2000, rng, p_valid=0.7, p_ready=p_ready, p_clear=0.05)
    assert most <= pipe.capacity
    assert len(taken) > 100
    while not pipe.empty():
        _, beat = pipe.edge(False, None, True)
        if beat is not None:
            out.append(beat)
    assert out == taken, f"seed {seed}"
    assert pipe.occupancy == 0


def test_credit_queue_fills_to_capacity_while_blocked():
    """``out_ready`` low: exactly ``capacity`` beats are accepted, then ready drops and
    stays low; the queue holds them all."""
    pipe = CreditPipeline(3)
    accepted = sum(pipe.edge(True, i, False)[0] for i in range(40))
    assert accepted == pipe.capacity == 5
    assert len(pipe.queue) == 5 and not pipe.in_ready(True)


def test_stall_pipeline_delay_and_throughput():
    pipe = StallPipeline(4)
    assert pipe.delay == 4
    rng = np.random.default_rng(0)
    taken, out, most = _run(pipe, 300, rng, p_valid=0.8, p_ready=0.6, p_clear=0.05)
    assert out == taken[:len(out)] and most <= 4


def test_bad_arguments():
    for bad in (0, -1, 1.5, True, "4"):
        with pytest.raises(ValueError, match="latency must be a positive integer"):
            CreditPipeline(bad)
    for bad in (0, 2.0, False):
        with pytest.raises(ValueError, match=f"capacity must be a positive integer, not {bad!r}"):
            CreditPipeline(3, bad)
