"""Drive an ``hdl.lif_array.LIFArray`` in the Amaranth simulator and check every cycle.

The testbench is a scoreboard: :func:`make_plan` runs the golden
:class:`~golden.core.CoreModel` over a script of timesteps, clears and table loads and lists
the expected output beats; :func:`run_plan` offers the input beats with random gaps, pulls
the output with random backpressure, and checks in every cycle that

* ``i_current.ready`` and ``o_spikes.valid`` are what the array's own cycle model says
  (``dut.timing_model()``: :class:`golden.timing.StallPipeline` or
  :class:`golden.timing.CreditPipeline`), so each output beat appears exactly at the cycle
  the model says;
* the output payload is the expected beat, bit for bit (first mismatch reported as cycle,
  timestep, beat, lane, neuron, expected, got);
* the ``t`` port is the timestep of the next beat to be accepted.

Set ``SPIKEFOLD_VCD=dir`` to write a waveform per run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from golden.core import to_beats

__all__ = ["Step", "Plan", "make_plan", "run_plan", "throughput"]


@dataclass
class Step:
    """One timestep of stimulus.

    ``currents`` is an ``(N,)`` integer array or a function of the golden model (called in
    the model's state just before the step) returning one.
    ``beats`` < ``ceil(N/P)`` issues only the first beats and must be followed by a clear
    (``clear_after``). ``loads`` are applied before the step: ``("threshold", index, theta,
    compare)`` or ``("affine", t, channel, a, b)``; ``idle_loads`` waits for an empty
    pipeline before loading.
    """

    currents: np.ndarray
    beats: int | None = None
    clear_after: bool = False
    loads: list = field(default_factory=list)
    idle_loads: bool = True


@dataclass
class Beat:
    payload: list            # currents of the P lanes
    t: int
    k: int
    last: bool
    spikes: int              # bit p = lane p
    membrane: list           # v_pre of the P lanes (0 past N)


@dataclass
class Plan:
    beats: list
    events: dict             # beat index -> list of ("clear",) / load tuples, before the beat
    idle: dict               # beat index -> wait for an empty pipeline before its loads


def make_plan(model, lanes, steps):
    """Expected beats of ``steps`` (a list of :class:`Step`) from the golden ``model``.

    ``model`` is advanced (loads, clears and steps are applied to it).
    """
    cfg = model.config
    N, P = cfg.neurons, lanes
    per = -(-N // P)
    beats, events, idle = [], {}, {}
    for step in steps:
        here = len(beats)
        for load in step.loads:
            if load[0] == "threshold":
                model.load_thresholds(load[1], load[2], load[3])
            else:
                model.load_affine(*load[1:])
            events.setdefault(here, []).append(load)
            idle[here] = idle.get(here, False) or step.idle_loads
        t = model.t
        currents = step.currents(model) if callable(step.currents) else step.currents
        currents = np.asarray(currents, dtype=np.int64)
        result = model.step(currents)
        c = to_beats(currents[None], P)
        s = to_beats(result.spikes[None].astype(np.int64), P)
        v = to_beats(result.v_pre[None], P)
        count = per if step.beats is None else step.beats
        if count < per and not step.clear_after:
            raise ValueError("a partial timestep must be followed by a clear")
        for k in range(count):
            beats.append(Beat(
                payload=[int(x) for x in c[k]], t=t, k=k, last=(k == per - 1),
                spikes=sum(int(b) << p for p, b in enumerate(s[k])),
                membrane=[int(x) for x in v[k]]))
        if step.clear_after:
            model.clear()
            events.setdefault(len(beats), []).append(("clear",))
    return Plan(beats, events, idle)


def _check_beat(cycle, want, got, lanes, neurons_per_beat):
    spikes, membrane = int(got.spikes), [int(got.membrane[p]) for p in range(lanes)]
    fields = {"t": (want.t, int(got.t)), "beat": (want.k, int(got.beat)),
              "last": (int(want.last), int(got.last))}
    for name, (w, g) in fields.items():
        if w != g:
            raise AssertionError(
                f"cycle {cycle}: timestep {want.t} beat {want.k}: field {name} expected {w}, "
                f"got {g}")
    for p in range(lanes):
        neuron = want.k * neurons_per_beat + p
        ws, gs = (want.spikes >> p) & 1, (spikes >> p) & 1
        if ws != gs or want.membrane[p] != membrane[p]:
            raise AssertionError(
                f"cycle {cycle}: timestep {want.t} beat {want.k} lane {p} (neuron {neuron}): "
                f"expected spike {ws} v_pre {want.membrane[p]}, got spike {gs} "
                f"v_pre {membrane[p]}")


def run_plan(dut, plan, *, seed=0, gap=0.0, backpressure=0.0, clear_cycles=(1, 3),
             max_cycles=None):
    """Simulate ``dut`` through ``plan``; returns the number of cycles simulated.

    ``gap``/``backpressure`` are the probabilities that ``i_current.valid`` is withheld /
    ``o_spikes.ready`` is low in a cycle. Raises ``AssertionError`` at the first mismatch.
    """
    rng = np.random.default_rng(seed)
    P, cfg = dut.lanes, dut.config
    per, T = dut.beats_per_step, cfg.T
    beats = plan.beats
    limit = max_cycles or 20 * (len(beats) + 10) * (1 + dut.latency)
    stats = {"cycles": 0, "out": 0}

    async def testbench(ctx):
        pipe = dut.timing_model()
        i = 0                               # next input beat
        done_events = set()
        pending = []                        # events of beat i still to perform
        clear_left = 0
        tc, kc = 0, 0                       # the DUT's accept-side counters, modelled
        cycle = 0
        while i < len(beats) or not pipe.empty() or pending or (
                i in plan.events and i not in done_events):
            if cycle >= limit:
                raise AssertionError(f"no progress after {cycle} cycles (beat {i}/{len(beats)})")
            if i in plan.events and i not in done_events:
                done_events.add(i)
                pending = list(plan.events[i])
            clear = False
            in_valid = False
            load_thr = load_aff = None
            if pending:
                ev = pending[0]
                if ev[0] == "clear":
                    if clear_left == 0:
                        clear_left = int(rng.integers(clear_cycles[0], clear_cycles[1] + 1))
                    clear = True
                    # valid may be high during a clear: it must not transfer.
                    in_valid = i < len(beats) and bool(rng.random() < 0.5)
                    clear_left -= 1
                    if clear_left == 0:
                        pending.pop(0)
                elif plan.idle.get(i) and not pipe.empty():
                    pass
                else:
                    if ev[0] == "threshold":
                        load_thr = ev
                    else:
                        load_aff = ev
                    pending.pop(0)
            elif i < len(beats):
                in_valid = bool(rng.random() >= gap)
            out_ready = bool(rng.random() >= backpressure)

            ctx.set(dut.clear, clear)
            ctx.set(dut.i_current.valid, in_valid)
            if i < len(beats):
                ctx.set(dut.i_current.payload, beats[i].payload)
            ctx.set(dut.o_spikes.ready, out_ready)
            if hasattr(dut, "load_threshold"):     # not with a per-channel table
                ctx.set(dut.load_threshold.valid, load_thr is not None)
            if load_thr is not None:
                ctx.set(dut.load_threshold.payload,
                        {"index": load_thr[1], "theta": load_thr[2], "compare": load_thr[3]})
            if cfg.affine:
                ctx.set(dut.load_affine.valid, load_aff is not None)
                if load_aff is not None:
                    ctx.set(dut.load_affine.payload, {"t": load_aff[1], "channel": load_aff[2],
                                                      "a": load_aff[3], "b": load_aff[4]})

            want_ready = pipe.in_ready(out_ready, clear)
            got_ready = bool(ctx.get(dut.i_current.ready))
            if got_ready != want_ready:
                raise AssertionError(f"cycle {cycle}: i_current.ready is {got_ready}, the "
                                     f"timing model says {want_ready}")
            got_valid = bool(ctx.get(dut.o_spikes.valid))
            if got_valid != pipe.out_valid:
                raise AssertionError(f"cycle {cycle}: o_spikes.valid is {got_valid}, the "
                                     f"timing model says {pipe.out_valid}")
            if pipe.out_valid:
                _check_beat(cycle, beats[pipe.out_beat], ctx.get(dut.o_spikes.payload), P, P)
            got_t = int(ctx.get(dut.t))
            if got_t != tc:
                raise AssertionError(f"cycle {cycle}: port t is {got_t}, expected {tc}")

            took, out = pipe.edge(in_valid, i, out_ready, clear)
            if clear:
                tc, kc = 0, 0
            elif took:
                assert (beats[i].t, beats[i].k) == (tc, kc), "harness: plan out of order"
                kc += 1
                if kc == per:
                    kc, tc = 0, (tc + 1) % T
                i += 1
            if out is not None:
                stats["out"] += 1
            cycle += 1
            await ctx.tick()
        if hasattr(dut, "load_threshold"):
            ctx.set(dut.load_threshold.valid, 0)
        stats["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    vcd = os.environ.get("SPIKEFOLD_VCD")
    if vcd:
        os.makedirs(vcd, exist_ok=True)
        path = os.path.join(vcd, f"lif_array_{os.getpid()}_{seed}.vcd")
        with sim.write_vcd(path):
            sim.run()
    else:
        sim.run()
    if stats["out"] != len(beats):
        raise AssertionError(f"{stats['out']} beats came out, {len(beats)} expected")
    return stats["cycles"]


def throughput(dut, cycles, seed=0):
    """Beats transferred per clock with ``valid`` and ``ready`` always high over ``cycles``."""
    rng = np.random.default_rng(seed)
    cfg = dut.config
    lo, hi = cfg.current.min_int, cfg.current.max_int
    counts = {"in": 0, "out": 0}

    async def testbench(ctx):
        ctx.set(dut.o_spikes.ready, 1)
        ctx.set(dut.i_current.valid, 1)
        for _ in range(cycles):
            ctx.set(dut.i_current.payload,
                    [int(x) for x in rng.integers(lo, hi + 1, dut.lanes)])
            counts["in"] += ctx.get(dut.i_current.ready)
            counts["out"] += ctx.get(dut.o_spikes.valid)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return counts["out"] / cycles, counts["in"] / cycles
