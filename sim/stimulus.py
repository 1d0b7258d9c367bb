"""Stimulus programs for the LIF array and the golden expectation of every output beat.

A :class:`Stimulus` is a list of operations over a table of input currents:

* ``steps``: feed rows ``start .. start+count-1`` of ``currents`` as timesteps (one beat per
  ``P`` neurons); with ``beats`` set, only the first ``beats`` beats of the last row are fed
  (a timestep cut short by the ``clear`` that must follow);
* ``clear``: hold ``clear`` high for ``cycles`` cycles (a new sample starts);
* ``load``: wait until the pipeline is empty, then write comparator entries through
  ``load_threshold`` (one per cycle);
* ``load_affine``: the same for affine coefficients through ``load_affine``;
* ``idle``: offer nothing for ``cycles`` cycles.

:func:`expected_beats` runs the program through :class:`golden.core.CoreModel` and returns
the expected output stream, one beat per input beat, in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from golden.core import to_beats
from golden.examples import example_currents
from golden.fold import Compare

__all__ = ["Stimulus", "Expected", "expected_beats", "random_stimulus", "regression_stimulus",
           "corner_coverage", "long_stimulus"]


@dataclass
class Stimulus:
    """Currents ``(S, N)`` (integers of the current format) and the operations over them."""

    currents: np.ndarray
    ops: list = field(default_factory=list)
    seed: int = 0

    def save(self, directory):
        directory = Path(directory)
        np.save(directory / "currents.npy", np.asarray(self.currents, dtype=np.int64))
        (directory / "ops.json").write_text(json.dumps({"seed": self.seed, "ops": self.ops}))

    @classmethod
    def load(cls, directory):
        directory = Path(directory)
        obj = json.loads((directory / "ops.json").read_text())
        return cls(np.load(directory / "currents.npy"), obj["ops"], obj["seed"])

    def describe(self):
        steps = sum(int(op["count"]) for op in self.ops if op["op"] == "steps")
        parts = [f"{steps} timesteps"]
        for kind, word in (("clear", "clears"), ("load", "threshold reloads"),
                           ("idle", "idle stretches")):
            n = sum(op["op"] == kind for op in self.ops)
            if n:
                parts.append(f"{n} {word}")
        return ", ".join(parts)


@dataclass
class Expected:
    """The expected output stream: one entry per input beat, in order.

    ``current`` (B, P) is what the input beat carries; ``spikes`` (B, P) bool, ``membrane``
    (B, P) int64, ``t``/``beat``/``last`` (B,) the expected output fields; ``row`` (B,) the
    index of the currents row the beat belongs to; ``valid_lanes`` (B,) how many lanes hold
    real neurons. ``spikes_rows``/``v_pre_rows`` (S, N) are golden's per-timestep results.
    """

    current: np.ndarray
    spikes: np.ndarray
    membrane: np.ndarray
    t: np.ndarray
    beat: np.ndarray
    last: np.ndarray
    row: np.ndarray
    valid_lanes: np.ndarray
    spikes_rows: np.ndarray
    v_pre_rows: np.ndarray
    rows_fed: np.ndarray

    def __len__(self):
        return len(self.t)

    @property
    def compared_per_beat(self):
        """Values compared per beat: a spike and a membrane for every real neuron."""
        return 2 * self.valid_lanes


def expected_beats(folded, lanes, stimulus):
    """Run ``stimulus`` through golden's bit-exact model; returns :class:`Expected`.

    ``folded`` is a :class:`golden.corefile.FoldedCore` (its thresholds are the ones the RTL
    starts with).
    """
    cfg = folded.config
    n = cfg.neurons
    per = -(-n // lanes)
    model = folded.model()
    currents = np.asarray(stimulus.currents, dtype=np.int64)
    S = len(currents)
    spikes_rows = np.zeros((S, n), dtype=bool)
    v_pre_rows = np.zeros((S, n), dtype=np.int64)
    rows_fed = np.zeros(S, dtype=bool)
    chunks = {k: [] for k in ("current", "spikes", "membrane", "t", "beat", "last", "row", "valid")}
    lane_index = np.arange(per * lanes).reshape(per, lanes)
    valid_per_beat = np.minimum(np.maximum(n - lane_index[:, 0], 0), lanes)
    pending_cut = False
    for i, op in enumerate(stimulus.ops):
        kind = op["op"]
        if pending_cut and kind != "clear":
            raise ValueError(
                f"op {i}: a timestep cut short must be followed by a clear, not {kind!r}")
        if kind == "steps":
            start, count = int(op["start"]), int(op["count"])
            if start < 0 or count < 1 or start + count > S:
                raise ValueError(f"op {i}: rows {start}..{start + count - 1} outside 0..{S - 1}")
            cut = op.get("beats")
            for r in range(start, start + count):
                res = model.step(currents[r])
                spikes_rows[r], v_pre_rows[r], rows_fed[r] = res.spikes, res.v_pre, True
                k = per if (cut is None or r != start + count - 1) else int(cut)
                if not 1 <= k <= per:
                    raise ValueError(f"op {i}: beats must be in 1..{per}, not {k}")
                chunks["current"].append(to_beats(currents[r][None, :], lanes)[:k])
                chunks["spikes"].append(to_beats(res.spikes[None, :], lanes)[:k])
                chunks["membrane"].append(to_beats(res.v_pre[None, :], lanes)[:k])
                chunks["t"].append(np.full(k, res.t))
                chunks["beat"].append(np.arange(k))
                chunks["last"].append(np.arange(k) == per - 1)
                chunks["row"].append(np.full(k, r))
                chunks["valid"].append(valid_per_beat[:k])
                pending_cut = k < per
        elif kind == "clear":
            model.clear()
            pending_cut = False
        elif kind == "load":
            model.load_thresholds(op["index"], op["theta"], op["compare"])
        elif kind == "load_affine":
            for entry in zip(op["t"], op["channel"], op["a"], op["b"]):
                model.load_affine(*entry)
        elif kind == "idle":
            pass
        else:
            raise ValueError(f"op {i}: unknown operation {kind!r}")
    if not chunks["t"]:
        raise ValueError("the stimulus feeds no beats")
    cat = {k: np.concatenate(v) for k, v in chunks.items()}
    return Expected(
        current=cat["current"].astype(np.int64), spikes=cat["spikes"].astype(bool),
        membrane=cat["membrane"].astype(np.int64), t=cat["t"].astype(np.int64),
        beat=cat["beat"].astype(np.int64), last=cat["last"].astype(bool),
        row=cat["row"].astype(np.int64), valid_lanes=cat["valid"].astype(np.int64),
        spikes_rows=spikes_rows, v_pre_rows=v_pre_rows, rows_fed=rows_fed)


def random_stimulus(config, steps, seed):
    """``steps`` timesteps of random currents (golden's example distribution), nothing else."""
    currents = example_currents(config, steps, seed=seed)
    return Stimulus(currents, [{"op": "steps", "start": 0, "count": int(steps)}], seed)


def regression_stimulus(folded, lanes, seed, *, random_samples=2):
    """Directed corner cases plus random currents, for one configuration.

    In order: zero input; random currents (golden's distribution and the full range); both
    rails of the current (saturation); a clear in the middle of a sample and, when a
    timestep has more than one beat, in the middle of a timestep; a threshold reload
    (drained) that makes every comparator kind appear (GT/LT/NEVER/ALWAYS) and sets
    thresholds exactly equal to the membrane of the next timestep (ties), the extreme
    threshold codes, a rewrite of some affine coefficients (with the affine stage), and a
    final random stretch under the new tables.
    """
    cfg = folded.config
    n, T = cfg.neurons, cfg.T
    per = -(-n // lanes)
    rng = np.random.default_rng(seed)
    fmt = cfg.current
    rows = []
    ops = []

    def feed(block, cut=None):
        start = sum(len(r) for r in rows)
        rows.append(np.asarray(block, dtype=np.int64).reshape(-1, n))
        op = {"op": "steps", "start": start, "count": len(rows[-1])}
        if cut is not None:
            op["beats"] = int(cut)
        ops.append(op)

    feed(np.zeros((T, n)))                                               # zero input
    feed(example_currents(cfg, random_samples * T, seed=seed))           # realistic
    feed(rng.integers(fmt.min_int, fmt.max_int + 1, (T, n)))             # full range
    feed(np.full((T, n), fmt.max_int))                                   # upper rail
    feed(np.full((T, n), fmt.min_int))                                   # lower rail
    ops.append({"op": "idle", "cycles": 3})
    # A clear in the middle of a sample (after timestep T // 2, if T > 1) ...
    feed(example_currents(cfg, max(1, T // 2), seed=seed + 1))
    ops.append({"op": "clear", "cycles": 1})
    # ... and in the middle of a timestep.
    if per > 1:
        feed(example_currents(cfg, 1, seed=seed + 2), cut=int(rng.integers(1, per)))
        ops.append({"op": "clear", "cycles": 2})
    feed(example_currents(cfg, T, seed=seed + 3))

    # Threshold reload: ties at timestep 0 of the next sample. At t = 0 the membrane is
    # exactly the drive of the current, so loading theta = drive makes v_pre == theta.
    tie_currents = example_currents(cfg, 1, seed=seed + 4)[0]
    probe = folded.model()
    drive = cfg.membrane.saturate(probe.drive(tie_currents, 0))
    th = cfg.threshold
    theta = th.saturate(drive)
    compare = np.where(rng.random(n) < 0.5, Compare.GT, Compare.LT).astype(np.int8)
    offset = rng.integers(-1, 2, n)              # tie, one below, one above
    n_ties = max(1, n // 2)                      # neurons 0 .. n_ties-1 are exact ties
    offset[:n_ties] = 0
    compare[0] = Compare.GT
    if n_ties > 1:
        compare[1] = Compare.LT
    theta = th.saturate(theta + offset)
    kinds = [Compare.GT, Compare.LT, Compare.NEVER, Compare.ALWAYS]
    for j, kind in ((n - 1, Compare.NEVER), (n - 2, Compare.ALWAYS)):
        if j >= n_ties:
            compare[j] = kind
    if n_ties + 1 < n - 2:                       # extreme codes of the threshold format
        theta[n_ties] = th.max_int
        theta[n_ties + 1] = th.min_int
    index = rng.permutation(n)
    ops.append({"op": "load", "index": index.tolist(), "theta": theta[index].tolist(),
                "compare": compare[index].tolist()})
    ops.append({"op": "clear", "cycles": 1})
    feed(np.vstack([tie_currents[None, :], example_currents(cfg, T - 1, seed=seed + 5)])
         if T > 1 else tie_currents[None, :])
    feed(example_currents(cfg, T, seed=seed + 6))
    if cfg.affine:
        # Rewrite some affine coefficients (drained), then a whole sample uses them.
        count = min(cfg.T * cfg.channels, 6)
        cells = rng.permutation(cfg.T * cfg.channels)[:count]
        sc, m = cfg.scale, cfg.membrane
        two = 2 * int(sc.scale)
        a = rng.integers(max(sc.min_int, -two), min(sc.max_int, two) + 1, count)
        a[0] = sc.max_int if count > 1 else a[0]            # the extreme codes too
        a[-1] = sc.min_int if count > 2 else a[-1]
        b = rng.integers(m.min_int // 4, m.max_int // 4 + 1, count)
        ops.append({"op": "load_affine", "t": (cells // cfg.channels).tolist(),
                    "channel": (cells % cfg.channels).tolist(), "a": a.tolist(),
                    "b": b.tolist()})
        ops.append({"op": "clear", "cycles": 1})
        feed(example_currents(cfg, T, seed=seed + 10))
    # With fewer than four neurons one load cannot show every comparator kind: rotate.
    for r in range(1, 4 if n < 4 else 1):
        idx = np.arange(n)
        codes = np.array([kinds[(i + r) % 4] for i in idx], dtype=np.int8)
        ops.append({"op": "load", "index": idx.tolist(),
                    "theta": th.saturate(drive).tolist(), "compare": codes.tolist()})
        feed(example_currents(cfg, T, seed=seed + 6 + r))
    feed(rng.integers(fmt.min_int, fmt.max_int + 1, (T, n)))
    return Stimulus(np.vstack(rows), ops, seed)


def corner_coverage(folded, stimulus, expected):
    """How often the directed corner cases really happened in golden's run of ``stimulus``.

    Returns counts: ``ties`` (v_pre exactly at a GT/LT threshold), ``upper_rail`` and
    ``lower_rail`` (v_pre saturated), ``compare_kinds`` (comparator codes in use at some
    point), ``clears``, ``loads``, ``partial_steps`` (timesteps cut short by a clear),
    ``zero_steps`` (timesteps with all-zero input).
    """
    cfg = folded.config
    theta = folded.thresholds.theta_q.copy()
    compare = folded.thresholds.compare.copy()
    kinds = set(int(c) for c in compare)
    ties = upper = lower = zero = partial = clears = loads = affine_loads = 0
    fmt = cfg.membrane
    for op in stimulus.ops:
        kind = op["op"]
        if kind == "clear":
            clears += 1
        elif kind == "load_affine":
            affine_loads += 1
        elif kind == "load":
            loads += 1
            theta[op["index"]] = op["theta"]
            compare[op["index"]] = op["compare"]
            kinds.update(int(c) for c in op["compare"])
        elif kind == "steps":
            # A timestep cut short by a clear only partly happened: leave it out.
            cut = op.get("beats") is not None
            rows = slice(op["start"], op["start"] + op["count"] - int(cut))
            v = expected.v_pre_rows[rows]
            gtlt = (compare == Compare.GT) | (compare == Compare.LT)
            ties += int(np.count_nonzero((v == theta) & gtlt))
            upper += int(np.count_nonzero(v == fmt.max_int))
            lower += int(np.count_nonzero(v == fmt.min_int))
            zero += int(np.count_nonzero(~stimulus.currents[rows].any(axis=1)))
            partial += int(cut)
    return {"ties": ties, "upper_rail": upper, "lower_rail": lower,
            "compare_kinds": sorted(kinds), "clears": clears, "loads": loads,
            "partial_steps": partial, "zero_steps": zero, "affine_loads": affine_loads}


def long_stimulus(config, steps, seed):
    """``steps`` timesteps for long runs: per sample, golden's current distribution (60%),
    the full current range (20%), a rail (10%) or zero input (10%). Only ``steps`` ops."""
    rng = np.random.default_rng(seed)
    n, T, fmt = config.neurons, config.T, config.current
    currents = example_currents(config, steps, seed=seed)
    for s in range(0, steps, T):
        u = rng.random()
        block = slice(s, min(s + T, steps))
        if u < 0.2:
            currents[block] = rng.integers(fmt.min_int, fmt.max_int + 1, (block.stop - s, n))
        elif u < 0.25:
            currents[block] = fmt.max_int
        elif u < 0.3:
            currents[block] = fmt.min_int
        elif u < 0.4:
            currents[block] = 0
    return Stimulus(currents, [{"op": "steps", "start": 0, "count": int(steps)}], seed)
