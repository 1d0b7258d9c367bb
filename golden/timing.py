"""Cycle model of the hardware's stream pipeline (what "cycle-accurate" is checked against).

The LIF array is a stall-all pipeline of ``latency`` stages:

* each cycle ``en = not out_valid or out_ready``; ``in_ready = en and not clear``;
* ``out_valid`` is high when the last stage holds a beat;
* on a clock edge with ``en`` every stage moves one step (a beat accepted at that edge
  enters the first stage); without ``en`` nothing moves;
* so with ``out_ready`` always high a beat accepted at edge ``e`` is transferred out at
  edge ``e + latency``: no bubbles, one beat per clock.

:class:`StallPipeline` replays the handshake cycle by cycle and says, for every cycle,
whether the input may transfer and which beat (if any) is on the output.
"""

from __future__ import annotations

__all__ = ["StallPipeline"]


class StallPipeline:
    """Cycle model of a stall-all pipeline of ``latency`` stages."""

    def __init__(self, latency):
        if not isinstance(latency, int) or latency < 1:
            raise ValueError(f"latency must be a positive integer, not {latency!r}")
        self.latency = latency
        self.stages = [None] * latency

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
