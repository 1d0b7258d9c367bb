"""Cycle models of the hardware's stream pipeline (what "cycle-accurate" is checked against).

Two flows, one interface (``in_ready(out_ready, clear)``, ``out_valid``, ``out_beat``,
``edge(in_valid, beat, out_ready, clear)``, ``empty()``, ``delay``), so that a harness
replays either; :meth:`hdl.lif_array.LIFArray.timing_model` says which one an array has.

:class:`StallPipeline` (``flow="stall"``): a stall-all pipeline of ``latency`` stages.

* each cycle ``en = not out_valid or out_ready``; ``in_ready = en and not clear``;
* ``out_valid`` is high when the last stage holds a beat;
* on a clock edge with ``en`` every stage moves one step (a beat accepted at that edge
  enters the first stage); without ``en`` nothing moves;
* so with ``out_ready`` always high a beat accepted at edge ``e`` is transferred out at
  edge ``e + latency``: no bubbles, one beat per clock.

:class:`CreditPipeline` (``flow="credit"``): ``latency`` stages that move on every edge (no
enable) into an output queue, and a credit counter in front.

* ``occupancy`` (a register) counts the beats accepted and not yet transferred out;
  ``in_ready = occupancy < capacity and not clear``: it never depends on ``out_ready``;
* at every edge the last stage's beat (if any) is pushed into the queue, after the queue's
  head has been popped if it transferred at that edge; the output port shows the queue's
  head (``out_valid`` = queue not empty);
* so with ``out_ready`` always high a beat accepted at edge ``e`` is transferred out at
  edge ``e + latency + 1`` (one more than the stall flow: the queue's own register);
* :meth:`CreditPipeline.capacity_for` = ``latency + 2`` is the smallest capacity giving one
  beat per clock with ``out_ready`` always high (``latency + 1`` beats are outstanding
  after each edge, and the register does not yet see the transfer of the current cycle);
  the queue holds ``capacity`` beats, so it never overflows whatever ``out_ready`` does.
"""

from __future__ import annotations

from collections import deque

__all__ = ["StallPipeline", "CreditPipeline"]


def _check_latency(latency):
    if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
        raise ValueError(f"latency must be a positive integer, not {latency!r}")


class StallPipeline:
    """Cycle model of a stall-all pipeline of ``latency`` stages."""

    flow = "stall"

    def __init__(self, latency):
        if not isinstance(latency, int) or latency < 1:
            raise ValueError(f"latency must be a positive integer, not {latency!r}")
        self.latency = latency
        self.stages = [None] * latency

    @property
    def delay(self):
        """Edges from a beat's accept to its transfer out with ``out_ready`` high."""
        return self.latency

    @property
    def out_valid(self):
        return self.stages[-1] is not None

    @property
    def out_beat(self):
        return self.stages[-1]

    def in_ready(self, out_ready, clear=False):
        return (not self.out_valid or out_ready) and not clear

    def edge(self, in_valid, beat, out_ready, clear=False):
        """Advance one clock edge.

        ``beat`` is an identifier of the input beat offered this cycle (used if it
        transfers). Returns ``(in_transferred, out_beat_transferred_or_None)``.
        """
        en = not self.out_valid or out_ready
        out = self.stages[-1] if (self.out_valid and out_ready) else None
        took = bool(in_valid and en and not clear)
        if en:
            self.stages = [beat if took else None] + self.stages[:-1]
        return took, out

    def empty(self):
        return all(s is None for s in self.stages)


class CreditPipeline:
    """Cycle model of ``latency`` always-moving stages, an output queue and a credit counter.

    Parameters
    ----------
    latency : int
        Pipeline stages (a beat accepted at edge ``e`` is in the last stage after edge
        ``e + latency - 1`` and in the queue after edge ``e + latency``).
    capacity : int or None
        Beats that may be outstanding (accepted, not transferred out); the queue's depth.
        Default (and smallest value with one beat per clock): :meth:`capacity_for`.

    Raises
    ------
    ValueError
        ``latency`` not a positive integer; ``capacity`` not an integer >= 1.
    """

    flow = "credit"

    def __init__(self, latency, capacity=None):
        _check_latency(latency)
        if capacity is None:
            capacity = self.capacity_for(latency)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, not {capacity!r}")
        self.latency = latency
        self.capacity = capacity
        self.stages = [None] * latency
        self.queue = deque()
        self.occupancy = 0

    @staticmethod
    def capacity_for(latency):
        """``latency + 2``: the smallest capacity with one beat per clock."""
        _check_latency(latency)
        return latency + 2

    @property
    def delay(self):
        """Edges from a beat's accept to its transfer out with ``out_ready`` high."""
        return self.latency + 1

    @property
    def out_valid(self):
        return bool(self.queue)

    @property
    def out_beat(self):
        return self.queue[0] if self.queue else None

    def in_ready(self, out_ready=None, clear=False):
        """``occupancy < capacity and not clear`` (``out_ready`` is not used: there is no
        combinational path from it)."""
        return self.occupancy < self.capacity and not clear

    def edge(self, in_valid, beat, out_ready, clear=False):
        """Advance one clock edge; returns ``(in_transferred, out_beat_transferred_or_None)``
        (as :meth:`StallPipeline.edge`)."""
        took = bool(in_valid and self.in_ready(out_ready, clear))
        out = self.queue.popleft() if (self.queue and out_ready) else None
        if self.stages[-1] is not None:
            self.queue.append(self.stages[-1])
        if len(self.queue) > self.capacity:
            raise AssertionError(f"output queue overflow: {len(self.queue)} beats in a queue "
                                 f"of {self.capacity}")
        self.stages = [beat if took else None] + self.stages[:-1]
        self.occupancy += int(took) - int(out is not None)
        return took, out

    def empty(self):
        return not self.queue and all(s is None for s in self.stages)
