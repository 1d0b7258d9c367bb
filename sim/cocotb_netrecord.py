"""cocotb test module: :mod:`sim.cocotb_network` that also records what the RTL produced.

The network test of :mod:`sim.cocotb_network` runs unchanged (same plan, same scoreboard,
same ``result.json``); its testbench class is replaced by a subclass that keeps, next to
the plan:

``rtl.npz``
    per monitored LIF layer ``l``: ``spikes<l>`` and ``v_pre<l>`` (T, S, N) as received
    from the RTL (-1 where no beat arrived), ``cycle<l>`` (S, T, B) the cycle of each output
    beat (-1: none); ``result_cycle`` and ``labels`` of the readout. The network report
    (:mod:`sim.netreport`) plots these against golden and measures cycles per stage.
``progress.json``
    ``{"cycle": ..., "results": ..., "expected": ...}``, rewritten every
    :data:`PROGRESS_CYCLES` simulated cycles and at every result, for the parent's
    progress bar (:class:`sim.netreport.SimProgress`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from sim import cocotb_network as base
from sim.cocotb_network import network_cosim  # noqa: F401  (the test cocotb discovers)

#: Simulated cycles between two progress.json updates.
PROGRESS_CYCLES = 2000


class RecordingTB(base.NetworkTB):
    """:class:`sim.cocotb_network.NetworkTB` that keeps every received value and beat cycle."""

    def _arrays(self):
        if hasattr(self, "rec"):
            return
        self.rec = {}
        self.root = Path(os.environ[base.PLAN_ENV]).parent
        T = self.desc["T"]
        for mon in self.desc.get("monitors", []):
            layer = mon["layer"]
            if layer not in self.want_spikes:
                continue
            S = self.want_spikes[layer].shape[1]
            N, B = mon["neurons"], mon["beats"]
            self.rec[f"spikes{layer}"] = np.full((T, S, N), -1, dtype=np.int8)
            self.rec[f"v_pre{layer}"] = np.full((T, S, N), -1, dtype=np.int64)
            self.rec[f"cycle{layer}"] = np.full((S, T, B), -1, dtype=np.int64)

    def _score(self, layer, sample, t, neuron, field, expected, got, cycle):
        if field in ("spike", "membrane"):
            name = ("spikes" if field == "spike" else "v_pre") + str(layer)
            if name in self.rec:
                self.rec[name][t, sample, neuron] = got
        return super()._score(layer, sample, t, neuron, field, expected, got, cycle)

    def _beat(self, mon, word, fields, n, T, cycle):
        B = mon["beats"]
        k, t, s = n % B, (n // B) % T, n // (B * T)
        rec = self.rec.get(f"cycle{mon['layer']}")
        if rec is not None and s < rec.shape[0]:
            rec[s, t, k] = cycle
        return super()._beat(mon, word, fields, n, T, cycle)

    def take(self, word, cycle):
        super().take(word, cycle)
        self._progress(cycle)

    def _progress(self, cycle):
        text = json.dumps({"cycle": int(cycle), "results": len(self.labels),
                           "expected": len(self.want_label)})
        tmp = self.root / "progress.json.tmp"
        tmp.write_text(text)
        tmp.replace(self.root / "progress.json")

    async def _tick(self):
        while True:
            await ClockCycles(self.dut.clk, PROGRESS_CYCLES)
            self._progress(self.cycle())

    async def run(self, max_cycles):
        self._arrays()
        ticker = cocotb.start_soon(self._tick())
        try:
            summary = await super().run(max_cycles)
        finally:
            ticker.cancel()
        np.savez(self.root / "rtl.npz", result_cycle=np.array(self.result_cycle, np.int64),
                 labels=np.array(self.labels, np.int64), **self.rec)
        self._progress(summary["cycles"])
        return summary


base.NetworkTB = RecordingTB
