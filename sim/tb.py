"""The cocotb testbench of the LIF array: TB (clock, reset, drivers, monitor) and scoreboard.

Every cycle the drivers set the inputs after ``RisingEdge``; the monitor samples the
settled ports after ``ReadOnly`` and hands them to the :class:`Scoreboard`. The scoreboard
replays the handshake in the DUT's cycle model (:meth:`sim.desc.RtlDescription.timing_model`:
:class:`golden.timing.StallPipeline`, or :class:`golden.timing.CreditPipeline` for a
credit-flow array; latency and flow from the RTL's JSON description), so it knows for every cycle whether ``i_current.ready`` must be high, whether
``o_spikes.valid`` must be high and which beat must be on the output; the beat contents come
from golden's bit-exact :class:`~golden.core.CoreModel` (:func:`sim.stimulus.expected_beats`).
It compares in order, every spike, membrane, ``t``/``beat``/``last`` field, both handshake
signals and the ``t`` port, and keeps the first mismatch as (cycle, timestep, neuron,
expected, got).
"""

from __future__ import annotations

import json
import random
import time

import numpy as np

#: Simulated cycles between two progress.json updates.
PROGRESS_CYCLES = 2000

__all__ = ["Mismatch", "Scoreboard", "TB", "CurrentDriver", "ControlDriver", "Monitor",
           "format_mismatch"]


def Mismatch(cycle, field, expected, got, *, timestep=None, neuron=None, beat=None):
    """A mismatch record (a plain dict, so that it goes straight into report.json)."""
    return {"cycle": int(cycle), "timestep": None if timestep is None else int(timestep),
            "neuron": None if neuron is None else int(neuron), "field": field,
            "expected": expected, "got": got, "beat": None if beat is None else int(beat)}


def format_mismatch(m):
    """One line: ``cycle C, timestep T, neuron I (field): expected E, got G``."""
    where = [f"cycle {m['cycle']}"]
    if m.get("timestep") is not None:
        where.append(f"timestep {m['timestep']}")
    if m.get("neuron") is not None:
        where.append(f"neuron {m['neuron']}")
    return f"{', '.join(where)} ({m['field']}): expected {m['expected']}, got {m['got']}"


class Scoreboard:
    """In-order, cycle-exact checker of the LIF array's output against golden.

    Parameters
    ----------
    desc : sim.desc.RtlDescription
    expected : sim.stimulus.Expected
        One expected output beat per input beat; input beat ``b`` is identified by ``b``.
    """

    def __init__(self, desc, expected):
        self.desc = desc
        self.expected = expected
        self.lanes = desc.lanes
        self.T = desc.config.T
        self.neurons = desc.config.neurons
        self.pipe = desc.timing_model()
        out = desc.output
        self.f_spikes = out["spikes"]
        self.f_membrane = out["membrane"]
        self.f_t = out["t"]
        self.f_beat = out["beat"]
        self.f_last = out["last"]
        n = len(expected)
        self.got_spikes = np.zeros((n, self.lanes), dtype=bool)
        self.got_membrane = np.zeros((n, self.lanes), dtype=np.int64)
        self.got_cycle = np.full(n, -1, dtype=np.int64)
        self.accept_cycle = np.full(n, -1, dtype=np.int64)
        self.received = 0
        self.compared = 0
        self.checks = 0
        self.mismatches = 0
        self.first_mismatch = None
        self.fatal = False
        self.t_next = 0

    # -- expectations ---------------------------------------------------------------------

    def expect_in_ready(self, out_ready, clear):
        return self.pipe.in_ready(out_ready, clear)

    @property
    def drained(self):
        return self.pipe.empty()

    @property
    def done(self):
        return self.received == len(self.expected)

    def _fail(self, m, fatal):
        self.mismatches += 1
        if self.first_mismatch is None:
            self.first_mismatch = m
        self.fatal = self.fatal or fatal

    # -- the per-cycle check ------------------------------------------------------------------

    def cycle(self, c, *, in_valid, beat_id, out_ready, clear, in_ready, out_valid, out_word,
              t_port):
        """Check one cycle's sampled ports, then advance the pipeline model one edge.

        ``in_ready``/``out_valid``/``t_port``/``out_word`` are the DUT's (``None`` for an
        unknown X/Z value); the rest is what the drivers applied this cycle.
        """
        exp_in_ready = self.pipe.in_ready(out_ready, clear)
        exp_out_valid = self.pipe.out_valid
        self.checks += 3
        if in_ready != exp_in_ready:
            self._fail(Mismatch(c, "i_current.ready", int(exp_in_ready), _bit(in_ready)), True)
            return
        if t_port != self.t_next:
            self._fail(Mismatch(c, "t port", self.t_next, "X/Z" if t_port is None else t_port,
                                timestep=self.t_next), True)
            return
        if out_valid != exp_out_valid:
            b = self.pipe.out_beat
            ts = None if b is None else self.expected.t[b]
            self._fail(Mismatch(c, "o_spikes.valid", int(exp_out_valid), _bit(out_valid),
                                timestep=ts, beat=b), True)
            return
        if exp_out_valid:
            self._check_beat(c, self.pipe.out_beat, out_word, transferred=out_ready)
        took, _ = self.pipe.edge(in_valid, beat_id, out_ready, clear)
        if took:
            self.accept_cycle[beat_id] = c
            e = self.expected
            self.t_next = (int(e.t[beat_id]) + 1) % self.T if e.last[beat_id] else int(e.t[beat_id])
        if clear:
            self.t_next = 0

    def _check_beat(self, c, b, word, *, transferred):
        e = self.expected
        ts = int(e.t[b])
        if word is None:
            self._fail(Mismatch(c, "o_spikes.payload", "a value", "X/Z", timestep=ts, beat=b), True)
            return
        spikes = self.f_spikes.extract(word)
        membrane = self.f_membrane.extract(word)
        if self.lanes == 1:
            membrane = [membrane]
        base = int(e.beat[b]) * self.lanes
        made = 0                      # spike + membrane comparisons of real neurons
        for p in range(self.lanes):
            got_s = (spikes >> p) & 1
            exp_s = int(e.spikes[b, p])
            got_m = int(membrane[p])
            exp_m = int(e.membrane[b, p])
            neuron = base + p
            real = p < e.valid_lanes[b]
            label = "" if real else " (unused lane)"
            made += 2 if real else 0
            if got_m != exp_m:
                self._fail(Mismatch(c, "membrane" + label, exp_m, got_m, timestep=ts,
                                    neuron=neuron, beat=b), False)
            if got_s != exp_s:
                self._fail(Mismatch(c, "spike" + label, exp_s, got_s, timestep=ts,
                                    neuron=neuron, beat=b), False)
            if transferred:
                self.got_spikes[b, p] = bool(got_s)
                self.got_membrane[b, p] = got_m
        for name, f, exp in (("t", self.f_t, ts), ("beat", self.f_beat, int(e.beat[b])),
                             ("last", self.f_last, int(e.last[b]))):
            got = f.extract(word)
            if got != exp:
                self._fail(Mismatch(c, f"o_spikes.{name}", exp, got, timestep=ts, beat=b), False)
        if transferred:
            self.got_cycle[b] = c
            self.received += 1
            self.compared += made
            self.checks += 3 + 2 * self.lanes

    def summary(self):
        return {"compared": int(self.compared), "checks": int(self.checks),
                "mismatches": int(self.mismatches), "first_mismatch": self.first_mismatch,
                "beats_received": int(self.received), "beats_expected": len(self.expected)}


def _bit(value):
    return "X/Z" if value is None else int(value)


def _to_int(value):
    """A sampled LogicArray as an unsigned int, or None when it holds X/Z."""
    try:
        return int(value)
    except ValueError:
        return None


class CurrentDriver:
    """Drives ``i_current``: offers beat ``b`` (payload packed from the JSON fields) or nothing."""

    def __init__(self, dut, desc, expected):
        self.valid = dut.i_current__valid
        self.payload = dut.i_current__payload
        self.field = desc.current_field()
        self.expected = expected
        self.offered = None

    def idle(self):
        self.valid.value = 0
        self.payload.value = 0

    def drive(self, beat):
        if beat is None:
            self.valid.value = 0
        else:
            self.valid.value = 1
            if beat != self.offered:
                self.payload.value = self.field.insert(
                    0, [int(v) for v in self.expected.current[beat]])
        if beat is not None:
            self.offered = beat


class ControlDriver:
    """Drives ``o_spikes.ready`` (backpressure), ``clear`` and the two load streams."""

    def __init__(self, dut, desc):
        self.ready = dut.o_spikes__ready
        self.clear = dut.clear
        self.streams = {"threshold": (dut.load_threshold__valid, dut.load_threshold__payload,
                                      desc.load_threshold, ("index", "theta", "compare"))}
        if desc.has_affine:
            self.streams["affine"] = (dut.load_affine__valid, dut.load_affine__payload,
                                      desc.layouts["load_affine__payload"],
                                      ("t", "channel", "a", "b"))
        self.busy = None

    def idle(self):
        self.ready.value = 0
        self.clear.value = 0
        for valid, payload, _, _ in self.streams.values():
            valid.value = 0
            payload.value = 0

    def drive(self, out_ready, clear, load):
        """``load`` is None or ``(stream, values)`` with the values in field order."""
        self.ready.value = out_ready
        self.clear.value = clear
        if self.busy is not None and (load is None or load[0] != self.busy):
            self.streams[self.busy][0].value = 0
        self.busy = None
        if load is not None:
            valid, payload, layout, names = self.streams[load[0]]
            valid.value = 1
            payload.value = layout.pack(**dict(zip(names, load[1])))
            self.busy = load[0]


class Monitor:
    """Samples every port the scoreboard checks; call after ``RisingEdge`` + ``ReadOnly``."""

    def __init__(self, dut):
        self.in_ready = dut.i_current__ready
        self.out_valid = dut.o_spikes__valid
        self.out_payload = dut.o_spikes__payload
        self.t_port = dut.t

    def sample(self):
        in_ready = _to_int(self.in_ready.value)
        out_valid = _to_int(self.out_valid.value)
        return {"in_ready": None if in_ready is None else bool(in_ready),
                "out_valid": None if out_valid is None else bool(out_valid),
                "out_word": _to_int(self.out_payload.value) if out_valid else None,
                "t_port": _to_int(self.t_port.value)}


class TB:
    """Clock, reset, drivers and monitor around one LIF array, checked by a Scoreboard.

    Each cycle: after ``RisingEdge`` the drivers apply the cycle's inputs; after
    ``ReadOnly`` the monitor samples the settled ports and the scoreboard checks them.

    Parameters
    ----------
    dut : cocotb handle of the top level
    desc : sim.desc.RtlDescription
    stimulus : sim.stimulus.Stimulus
    expected : sim.stimulus.Expected
    seed : int
        Seed of the input gaps, output backpressure and clear-cycle input offers.
    gaps, backpressure : float
        Probability that the input offers nothing in a cycle / that the output is not ready.
    """

    def __init__(self, dut, desc, stimulus, expected, *, seed=0, gaps=0.0, backpressure=0.0):
        import cocotb.triggers as triggers
        self.dut = dut
        self.desc = desc
        self.stimulus = stimulus
        self.expected = expected
        self.scoreboard = Scoreboard(desc, expected)
        self.rng = random.Random(seed)
        self.gaps = float(gaps)
        self.backpressure = float(backpressure)
        self.cycles = 0
        self._rising = triggers.RisingEdge(dut.clk)
        self._readonly = triggers.ReadOnly()
        self.current = CurrentDriver(dut, desc, expected)
        self.control = ControlDriver(dut, desc)
        self.monitor = Monitor(dut)

    # -- clock and reset --------------------------------------------------------------------

    def start_clock(self, period_ns=10):
        from cocotb.clock import Clock
        Clock(self.dut.clk, period_ns, unit="ns").start()

    async def reset(self, cycles=3):
        self.current.idle()
        self.control.idle()
        self.dut.rst.value = 1
        for _ in range(cycles):
            await self._rising
        self.dut.rst.value = 0

    # -- the stimulus program -------------------------------------------------------------------

    def _program(self):
        """Yield, per cycle, what the drivers apply: (in_beat or None, clear, load or None).

        A load is ``("threshold", (index, theta, compare))`` or
        ``("affine", (t, channel, a, b))``; the sent value says whether the offered beat
        was accepted.
        """
        n_beats = len(self.expected)
        cursor = 0
        for op in self.stimulus.ops:
            kind = op["op"]
            if kind == "steps":
                per = self.desc.beats_per_step
                count = int(op["count"]) * per
                if op.get("beats") is not None:
                    count -= per - int(op["beats"])
                end = cursor + count
                while cursor < end:
                    if self.gaps and self.rng.random() < self.gaps:
                        yield None, False, None
                        continue
                    accepted = yield cursor, False, None
                    if accepted:
                        cursor += 1
            elif kind == "clear":
                for _ in range(int(op.get("cycles", 1))):
                    # Offering the next beat during clear checks that it is not accepted.
                    offer = cursor if cursor < n_beats and self.rng.random() < 0.5 else None
                    yield offer, True, None
            elif kind == "idle":
                for _ in range(int(op["cycles"])):
                    yield None, False, None
            elif kind in ("load", "load_affine"):
                while not self.scoreboard.drained:
                    yield None, False, None
                if kind == "load":
                    for entry in zip(op["index"], op["theta"], op["compare"]):
                        yield None, False, ("threshold", entry)
                else:
                    for entry in zip(op["t"], op["channel"], op["a"], op["b"]):
                        yield None, False, ("affine", entry)
        while True:
            yield None, False, None

    # -- run ----------------------------------------------------------------------------------

    def _max_cycles(self):
        n = len(self.expected)
        extra = sum(int(op.get("cycles", 0)) + len(op.get("index", op.get("t", ())))
                    for op in self.stimulus.ops)
        slow = max(1e-3, (1 - self.gaps) * (1 - self.backpressure))
        drains = 2 * self.desc.latency * len(self.stimulus.ops)
        return int((n + extra + drains) / slow * 4) + 200

    #: ``run_dir/progress.json`` for the parent's progress bar (:class:`sim.progress.
    #: SimProgress`), rewritten every :data:`PROGRESS_CYCLES` cycles; None: not written.
    progress_path = None

    def _progress(self, c):
        sb = self.scoreboard
        text = json.dumps({"cycle": int(c), "results": int(sb.received),
                           "expected": len(self.expected)})
        tmp = self.progress_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.progress_path)

    async def run(self, max_cycles=None):
        """Drive the whole stimulus, check every cycle; returns the scoreboard summary."""
        sb = self.scoreboard
        max_cycles = self._max_cycles() if max_cycles is None else max_cycles
        program = self._program()
        beat, clear, load = next(program)
        start = time.perf_counter()
        c = 0
        while True:
            await self._rising
            out_ready = not (self.backpressure and self.rng.random() < self.backpressure)
            self.current.drive(beat)
            self.control.drive(out_ready, clear, load)
            await self._readonly
            seen = self.monitor.sample()
            sb.cycle(c, in_valid=beat is not None, beat_id=beat, out_ready=out_ready,
                     clear=clear, **seen)
            c += 1
            if self.progress_path is not None and c % PROGRESS_CYCLES == 0:
                self._progress(c)
            if sb.fatal or sb.done:
                break
            if c >= max_cycles:
                sb._fail(Mismatch(c, "timeout", f"{len(self.expected)} output beats",
                                  f"{sb.received}"), True)
                break
            beat, clear, load = program.send(beat is not None and bool(seen["in_ready"]))
        self.cycles = c
        if self.progress_path is not None:
            self._progress(c)
        wall = time.perf_counter() - start
        summary = sb.summary()
        summary.update(cycles=c, sim_wall_s=wall, cycles_per_s=c / wall if wall > 0 else None)
        return summary
