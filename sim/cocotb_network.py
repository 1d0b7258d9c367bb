"""cocotb test module: co-simulate a whole exported network against golden (run by
:func:`sim.network_cosim.run_network_cocotb`).

The plan is a JSON file whose path is in ``SPIKEFOLD_NETWORK_PLAN`` (paths in it relative to
its directory): the RTL description (``spikefold-network-rtl`` JSON), ``samples.npz`` with
the quantized inputs ``x_q`` (S, n_in), golden's ``logits`` (S, classes) and ``label``
(S,) and, per hidden layer ``l``, ``spikes<l>`` (T, S, n_out) and ``v_pre<l>``
(T, S, n_out), the seed, input gap and output backpressure probabilities. The test streams
every sample's pixel beats back to back, takes every result, and monitors every LIF
array's ``o_spikes`` stream inside the hierarchy (``dut.lif<l>.o_spikes__valid`` /
``__ready`` / ``__payload``, the names listed under ``monitors`` in the description):
each transferred beat ``n`` of layer ``l`` is beat ``n % B`` of timestep ``(n // B) % T``
of sample ``n // (B T)`` (:mod:`hdl.layout`), and its spikes, membranes (``v_pre``), ``t``
and ``beat`` fields are compared with golden. The scoreboard counts ``compared`` values
and ``mismatches`` per layer (the readout layer: logits and class) and names the earliest
mismatch as ``{sample, layer, t, neuron, field, expected, got, cycle}``; it writes
``result.json`` next to the plan and fails on any mismatch.

Without backpressure the monitor sleeps until ``o_result.valid`` rises instead of polling
every cycle (Icarus runs the network at a few hundred cycles per second here).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer

PLAN_ENV = "SPIKEFOLD_NETWORK_PLAN"
PERIOD_NS = 10


def _plain(value):
    """An int for the JSON result, or the text of a value that is not a number ("X")."""
    return value if isinstance(value, str) else int(value)


def _signed(value, bits):
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


class NetworkTB:
    """Clock, reset, pixel driver, result monitor and scoreboard around one network."""

    def __init__(self, dut, desc, x_q, want_logits, want_label, *, seed, gaps, backpressure,
                 want_spikes=None, want_v_pre=None):
        self.dut = dut
        self.want_spikes = want_spikes or {}
        self.want_v_pre = want_v_pre or {}
        self.readout_layer = len(desc["sizes"]) - 2
        self.desc = desc
        self.rng = random.Random(seed)
        self.gaps, self.backpressure = float(gaps), float(backpressure)
        self.want_logits, self.want_label = want_logits, want_label
        Q, Bx = desc["in_lanes"], desc["input"]["bits"]
        per = desc["in_beats"]
        mask = (1 << Bx) - 1
        self.words = []
        for x in x_q:
            x = np.ravel(x)                     # a (C, H, W) map streams channel-major
            padded = np.zeros(per * Q, dtype=np.int64)
            padded[:len(x)] = x
            for beat in padded.reshape(per, Q):
                self.words.append(sum((int(v) & mask) << (q * Bx) for q, v in enumerate(beat)))
        fields = {f["name"]: f for f in desc["fields"]["o_result__payload"]}
        self.label_field, self.logit_field = fields["label"], fields["logits"]
        self.per = per

    def unpack(self, word):
        lf, gf = self.label_field, self.logit_field
        label = (word >> lf["offset"]) & ((1 << lf["width"]) - 1)
        w = gf["width"]
        logits = [_signed((word >> (gf["offset"] + i * w)) & ((1 << w) - 1), w)
                  for i in range(gf["count"])]
        return label, logits

    async def reset(self):
        dut = self.dut
        Clock(dut.clk, PERIOD_NS, unit="ns").start()
        dut.i_pixels__valid.value = 0
        dut.i_pixels__payload.value = 0
        dut.o_result__ready.value = 0
        dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        self.t0 = get_sim_time("ns")

    def cycle(self):
        """Index of the clock cycle now under way (0 = first cycle after reset)."""
        return int(round((get_sim_time("ns") - self.t0) / PERIOD_NS))

    async def drive(self):
        """Offer every pixel beat, samples back to back (random gaps)."""
        dut = self.dut
        for i, word in enumerate(self.words):
            while True:
                offer = not (self.gaps and self.rng.random() < self.gaps)
                dut.i_pixels__valid.value = int(offer)
                dut.i_pixels__payload.value = word
                await ReadOnly()
                accepted = offer and int(dut.i_pixels__ready.value)
                cycle = self.cycle()
                await RisingEdge(dut.clk)
                if accepted:
                    if i % self.per == 0:
                        self.first_in.append(cycle)
                    break
        dut.i_pixels__valid.value = 0

    def _place(self, layer, neuron):
        """``{channel, y, x}`` of a conv layer's neuron (channel-major flatten), else {}."""
        for mon in self.desc.get("monitors", []):
            if mon["layer"] == layer and len(mon.get("shape", [])) == 3 and neuron is not None:
                _, H, W = mon["shape"]
                c, rem = divmod(int(neuron), H * W)
                return {"channel": c, "y": rem // W, "x": rem % W}
        return {}

    def _score(self, layer, sample, t, neuron, field, expected, got, cycle):
        """Count one compared value; remember the earliest mismatch (for a conv layer's
        neuron also its ``channel``, ``y``, ``x``)."""
        row = self.layers.setdefault(layer, {"layer": layer, "compared": 0, "mismatches": 0})
        row["compared"] += 1
        if expected == got and field != "X":
            return True
        row["mismatches"] += 1
        self.per_sample[sample] += 1
        first = self.first
        if first is None or (cycle, layer) < (first["cycle"], first["layer"]):
            self.first = {"sample": sample, "layer": layer, "t": t, "neuron": neuron,
                          "field": field, "expected": _plain(expected), "got": _plain(got),
                          "cycle": cycle, **self._place(layer, neuron)}
        return False

    def take(self, word, cycle):
        s = len(self.labels)
        if not isinstance(word, int):
            if not word.is_resolvable:        # X/Z in the result: every value a mismatch
                self.labels.append(-1)
                self.logits.append([])
                self.result_cycle.append(cycle)
                self._score(self.readout_layer, s, None, None, "X", "0/1", "X", cycle)
                return
            word = int(word)
        label, values = self.unpack(word)
        self.labels.append(label)
        self.logits.append(values)
        self.result_cycle.append(cycle)
        L = self.readout_layer
        for k, (g, w) in enumerate(zip(values, self.want_logits[s])):
            self._score(L, s, None, k, "logit", int(w), g, cycle)
        self._score(L, s, None, None, "class", int(self.want_label[s]), label, cycle)

    async def watch_layers(self):
        """Sample every LIF array's ``o_spikes`` at each clock edge; score each transfer."""
        dut = self.dut
        mons = []
        for mon in self.desc.get("monitors", []):
            if mon["layer"] not in self.want_spikes:
                continue
            inst = getattr(dut, mon["instance"])
            fields = {f["name"]: f for f in mon["fields"]}
            mons.append((mon, getattr(inst, mon["valid"]), getattr(inst, mon["ready"]),
                         getattr(inst, mon["payload"]), fields, [0]))
        if not mons:
            return
        T = self.desc["T"]
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cycle = self.cycle()                # the cycle now under way (as take())
            for mon, valid, ready, payload, fields, count in mons:
                if not (int(valid.value) and int(ready.value)):
                    continue
                value = payload.value
                if not value.is_resolvable:
                    self._unknown(mon, count[0], T, cycle)
                else:
                    self._beat(mon, int(value), fields, count[0], T, cycle)
                count[0] += 1

    def _unknown(self, mon, n, T, cycle):
        """A transferred beat with X or Z bits: one mismatch (field ``"X"``), named."""
        layer, B = mon["layer"], mon["beats"]
        k, t, s = n % B, (n // B) % T, n // (B * T)
        if s >= len(self.per_sample):
            return
        self._score(layer, s, t, k * mon["lanes"], "X", "0/1", "X", cycle)

    def _beat(self, mon, word, fields, n, T, cycle):
        layer, P, B, N = mon["layer"], mon["lanes"], mon["beats"], mon["neurons"]
        k, t, s = n % B, (n // B) % T, n // (B * T)
        spikes, v_pre = self.want_spikes[layer], self.want_v_pre.get(layer)
        if s >= spikes.shape[1]:
            return
        sf, mf = fields["spikes"], fields["membrane"]
        got_spikes = (word >> sf["offset"]) & ((1 << sf["width"]) - 1)
        for field, want in (("t", t), ("beat", k)):
            f = fields[field]
            self._score(layer, s, t, None, field, want,
                        (word >> f["offset"]) & ((1 << f["width"]) - 1), cycle)
        w = mf["width"]
        for p in range(P):
            i = k * P + p
            if i >= N:
                break
            self._score(layer, s, t, i, "spike", int(spikes[t, s, i]), got_spikes >> p & 1,
                        cycle)
            if v_pre is not None:
                got = _signed((word >> (mf["offset"] + p * w)) & ((1 << w) - 1), w)
                self._score(layer, s, t, i, "membrane", int(v_pre[t, s, i]), got, cycle)

    async def monitor(self):
        """Take every result; without backpressure wake only on ``o_result.valid``."""
        dut = self.dut
        S = len(self.want_label)
        if not self.backpressure:
            dut.o_result__ready.value = 1
            while len(self.labels) < S:
                await ReadOnly()
                if int(dut.o_result__valid.value):
                    self.take(dut.o_result__payload.value, self.cycle())
                    await RisingEdge(dut.clk)          # the transfer
                else:
                    await RisingEdge(dut.o_result__valid)
            return
        while len(self.labels) < S:
            await RisingEdge(dut.clk)
            ready = self.rng.random() >= self.backpressure
            dut.o_result__ready.value = int(ready)
            await ReadOnly()
            if ready and int(dut.o_result__valid.value):
                self.take(dut.o_result__payload.value, self.cycle())

    async def run(self, max_cycles):
        S = len(self.want_label)
        self.labels, self.logits, self.first_in, self.result_cycle = [], [], [], []
        self.per_sample = [0] * S
        self.layers = {}
        self.first = None
        start = time.perf_counter()
        cocotb.start_soon(self.drive())
        cocotb.start_soon(self.watch_layers())
        monitor = cocotb.start_soon(self.monitor())
        await First(monitor, Timer(max_cycles * PERIOD_NS, unit="ns"))
        cycles = self.cycle()
        wall = time.perf_counter() - start
        missing = S - len(self.labels)
        layers = [self.layers[k] for k in sorted(self.layers)]
        mismatches = sum(row["mismatches"] for row in layers) + missing
        return {"labels": self.labels, "logits": self.logits, "first_in": self.first_in,
                "result_cycle": self.result_cycle,
                "compared": sum(row["compared"] for row in layers),
                "mismatches": mismatches, "total_mismatches": mismatches,
                "mismatches_per_sample": self.per_sample, "layers": layers,
                "first_mismatch": self.first, "results": len(self.labels),
                "expected_results": S, "cycles": cycles,
                "sim_wall_s": wall, "cycles_per_s": cycles / wall if wall else None}


@cocotb.test()
async def network_cosim(dut):
    """Stream the plan's samples with gaps and backpressure; compare every result."""
    path = Path(os.environ[PLAN_ENV])
    root = path.parent
    plan = json.loads(path.read_text())
    desc = json.loads((root / plan["rtl_json"]).read_text())
    data = np.load(root / plan["samples"])
    hidden = len(desc["sizes"]) - 2
    tb = NetworkTB(dut, desc, data["x_q"], data["logits"], data["label"],
                   seed=int(plan["seed"]), gaps=plan.get("gaps", 0.0),
                   backpressure=plan.get("backpressure", 0.0),
                   want_spikes={l: data[f"spikes{l}"] for l in range(hidden)
                                if f"spikes{l}" in data},
                   want_v_pre={l: data[f"v_pre{l}"] for l in range(hidden)
                               if f"v_pre{l}" in data})
    dut._log.info("spikefold network cosim: seed %d, %d samples, sizes %s, lanes %s",
                  plan["seed"], len(data["label"]), desc["sizes"], desc["lanes"])
    await tb.reset()
    summary = await tb.run(int(plan["max_cycles"]))
    summary["seed"] = int(plan["seed"])
    (root / plan["result"]).write_text(json.dumps(summary, indent=1))
    if summary["total_mismatches"]:
        raise AssertionError(f"{summary['total_mismatches']} mismatch(es); first: "
                             f"{summary['first_mismatch']} ({summary['results']}/"
                             f"{summary['expected_results']} results; seed {plan['seed']})")
    dut._log.info("spikefold network cosim: %d samples in %d cycles, %d values compared, "
                  "0 mismatches", summary["results"], summary["cycles"], summary["compared"])
