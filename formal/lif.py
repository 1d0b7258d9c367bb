"""Formal proof of the LIF array against an independent Verilog spec of the integer rule.

For one small configuration (P = 1 lane, N = 1..3 neurons, so B = N beats per timestep and
every forwarding window of the pipeline is used) this module writes

* ``dut.v``: the array exported by Amaranth (``hdl.lif_array.LIFArray``, optionally with
  registered memory outputs), exactly what the co-simulations run;
* ``spec.v``: :func:`spec_verilog`, a combinational module written here, from the table in
  ``golden/core.py`` (align, affine, leak, add, fire, reset, with ``sat_m`` as an explicit
  clamp of a wide sum), not from the RTL;
* ``harness.sv``: every input of the array is free in every cycle (currents, ``valid``,
  ``ready``, threshold and affine loads with any payload) after two reset cycles. A
  scoreboard keeps the spec's membrane, threshold and affine tables, applies the spec to
  every accepted beat and queues the expected output; assertions say that
  (1) whenever ``o_spikes.valid`` is high the payload is the oldest queued beat: spike,
      membrane ``v_pre``, ``t``, ``beat``, ``last`` (the lane update equals the integer rule,
      and read-after-write forwarding returns the last written membrane, whatever the
      valid/ready pattern: the next beat of a neuron may be accepted the cycle after);
  (2) the membrane never wraps: when the spec's unsaturated sum is above (below) the
      membrane range, the output membrane is the maximum (minimum);
  (3) the ``t`` port is the timestep of the next beat, and no beat appears that was not
      accepted;
* ``lif.sby``: a bounded model check (``mode bmc``) of ``depth`` cycles from reset, i.e.
  of every input sequence of that length.

``python -m formal`` runs them; :data:`PROOFS` lists the configurations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from golden.examples import example_core
from golden.fixed import Fixed

__all__ = ["LifProof", "PROOFS", "spec_verilog", "write_lif_proof"]


@dataclass(frozen=True)
class LifProof:
    """One configuration to prove: ``example_core`` options, neurons, registered BRAM."""

    name: str
    neurons: int
    options: dict = field(default_factory=dict)
    memory_outreg: bool = False
    depth: int = 14
    slow: bool = False
    #: Deliberately wrong spec (reset kind flipped): a proof that must FAIL (not vacuous).
    wrong_spec: bool = False


SMALL = dict(T=3, membrane=Fixed(6, 2), current=Fixed(5, 1), threshold=Fixed(6, 2))
PROOFS = [
    LifProof("shift-zero-n1", 1, dict(SMALL, tau=0.5)),
    LifProof("shift-zero-n1-outreg", 1, dict(SMALL, tau=0.5), memory_outreg=True, depth=12),
    LifProof("mul-sub-n1", 1, dict(SMALL, tau=0.7, tau_bits=3, reset="subtract"), depth=12,
             slow=True),
    LifProof("shift-sub-n2", 2, dict(SMALL, tau=0.5, reset="subtract"), depth=11, slow=True),
    LifProof("mul-zero-n2-outreg", 2, dict(SMALL, tau=0.6, tau_bits=3), memory_outreg=True,
             depth=11, slow=True),
    LifProof("aff-shift-sub-n1", 1, dict(SMALL, tau=0.5, reset="subtract", affine=True,
                                         scale=Fixed(4, 2)), depth=9, slow=True),
]
#: A proof with a wrong spec: it must fail, or the harness checks nothing.
MUTANT = LifProof("mutant-shift-zero-n1", 1, dict(SMALL, tau=0.5), wrong_spec=True)


def _sat(expr, fmt, width):
    return (f"(({expr}) > {width}'sd{fmt.max_int} ? {width}'sd{fmt.max_int} : "
            f"({expr}) < -{width}'sd{-fmt.min_int} ? -{width}'sd{-fmt.min_int} : ({expr}))")


def spec_verilog(config, *, wrong_reset=False):
    """``lif_spec``: one neuron's update (golden/core.py's table), combinational.

    Inputs ``v`` (membrane before the step, already zero at ``t == 0``), ``c`` (current),
    ``theta``/``cmp`` (threshold entry), ``a``/``b`` (affine entry, ignored without the
    stage); outputs ``v_pre``, ``spike``, ``v_new``, and ``hi``/``lo``: the unsaturated sum
    ``l + y`` was above/below the membrane range.
    """
    m, c, th = config.membrane, config.current, config.threshold
    shift = config.align_shift
    # Wide enough that no intermediate wraps (and no wider: the solver pays for every bit):
    # x = c << shift, the products v * tau_q and x * a, the sums with b, l + y, v_pre - theta.
    W = max(c.bits + shift + (config.scale.bits if config.affine else 0),
            m.bits + (config.tau_bits + 1 if config.leak_shift is None else 0), m.bits) + 3
    reset = config.reset
    if wrong_reset:
        reset = "subtract" if reset == "zero" else "zero"
    if config.leak_shift is not None:
        leak = f"vw >>> {config.leak_shift}"
    else:
        leak = f"(vw * {W}'sd{config.tau_q}) >>> {config.tau_bits}"
    if config.affine:
        y = _sat(f"((xw * aw) >>> {config.scale.frac}) + bw", m, W)
    else:
        y = _sat("xw", m, W)
    if reset == "zero":
        v_new = "spike ? {W}'sd0 : pre".format(W=W)
    else:
        v_new = f"spike ? {_sat('pre - tw', m, W)} : pre"
    return f"""// Generated by formal/lif.py from the integer table of golden/core.py.
module lif_spec (
  input  signed [{m.bits - 1}:0] v,
  input  signed [{c.bits - 1}:0] c,
  input  signed [{th.bits - 1}:0] theta,
  input  [1:0] cmp,
  input  signed [{config.scale.bits - 1}:0] a,
  input  signed [{m.bits - 1}:0] b,
  output signed [{m.bits - 1}:0] v_pre,
  output spike,
  output signed [{m.bits - 1}:0] v_new,
  output hi, lo
);
  wire signed [{W - 1}:0] vw = v, tw = theta, aw = a, bw = b;
  wire signed [{W - 1}:0] xw = $signed(c) * {W}'sd{1 << shift};      // align: c << (Fm - Fc)
  wire signed [{W - 1}:0] y = {y};
  wire signed [{W - 1}:0] l = {leak};                 // leak, floor
  wire signed [{W - 1}:0] total = l + y;
  wire signed [{W - 1}:0] pre = {_sat("total", m, W)};
  // fire: GT 0, LT 1, NEVER 2, ALWAYS 3
  assign spike = cmp == 2'd3 ? 1'b1 : cmp == 2'd2 ? 1'b0 : cmp == 2'd1 ? (pre < tw) : (pre > tw);
  wire signed [{W - 1}:0] nxt = {v_new};
  assign v_pre = pre[{m.bits - 1}:0];
  assign v_new = nxt[{m.bits - 1}:0];
  assign hi = total > {W}'sd{m.max_int};
  assign lo = total < -{W}'sd{-m.min_int};
endmodule
"""


def _field(desc, port, name):
    for f in desc["fields"][port]:
        if f["name"] == name:
            return f["offset"], f["width"]
    raise KeyError(f"{port} has no field {name!r}")


def harness_verilog(desc, folded):
    """``formal_top``: free inputs around the DUT, the spec scoreboard and the assertions."""
    cfg = folded.config
    N, T = cfg.neurons, cfg.T
    m, c, th, sc = cfg.membrane, cfg.current, cfg.threshold, cfg.scale
    ports = desc["ports"]
    iw, ow = ports["i_current__payload"]["width"], ports["o_spikes__payload"]["width"]
    lw = ports["load_threshold__payload"]["width"]
    tw = ports["t"]["width"]
    o_sp, _ = _field(desc, "o_spikes__payload", "spikes")
    o_m, _ = _field(desc, "o_spikes__payload", "membrane")
    o_t, o_tw = _field(desc, "o_spikes__payload", "t")
    o_b, o_bw = _field(desc, "o_spikes__payload", "beat")
    o_l, _ = _field(desc, "o_spikes__payload", "last")
    l_i, l_iw = _field(desc, "load_threshold__payload", "index")
    l_th, _ = _field(desc, "load_threshold__payload", "theta")
    l_c, _ = _field(desc, "load_threshold__payload", "compare")
    inits = "\n".join(
        f"    th[{i}] = {th.bits}'sd0 + ({int(folded.thresholds.theta_q[i])}); "
        f"cmp[{i}] = 2'd{int(folded.thresholds.compare[i])};" for i in range(N))
    affine_ports = affine_decl = affine_load = affine_init = ""
    a_sel = f"{sc.bits}'sd0"
    b_sel = f"{m.bits}'sd0"
    conns = ""
    ch_size = N // cfg.channels
    if cfg.affine:
        aw = ports["load_affine__payload"]["width"]
        a_t, a_tw = _field(desc, "load_affine__payload", "t")
        a_c, a_cw = _field(desc, "load_affine__payload", "channel")
        a_a, _ = _field(desc, "load_affine__payload", "a")
        a_b, _ = _field(desc, "load_affine__payload", "b")
        affine_ports = f",\n  input la_valid, input [{aw - 1}:0] la_payload"
        n_ent = T * cfg.channels
        affine_decl = (f"  reg signed [{sc.bits - 1}:0] aff_a [0:{n_ent - 1}];\n"
                       f"  reg signed [{m.bits - 1}:0] aff_b [0:{n_ent - 1}];\n"
                       f"  wire [{a_tw - 1}:0] la_t = la_payload[{a_t} +: {a_tw}];\n"
                       f"  wire [{a_cw - 1}:0] la_ch = la_payload[{a_c} +: {a_cw}];\n"
                       f"  wire la_go = !rst && la_valid && la_t < {T} && la_ch < {cfg.channels};\n"
                       f"  wire [7:0] spec_ch = spec_k / {ch_size};\n")
        affine_load = (f"      if (la_go) begin\n"
                       f"        aff_a[la_t * {cfg.channels} + la_ch] <= la_payload[{a_a} +: {sc.bits}];\n"
                       f"        aff_b[la_t * {cfg.channels} + la_ch] <= la_payload[{a_b} +: {m.bits}];\n"
                       f"      end\n")
        affine_init = "\n".join(
            f"    aff_a[{t * cfg.channels + ch}] = {int(folded.affine.a_q[t, ch])}; "
            f"aff_b[{t * cfg.channels + ch}] = {int(folded.affine.b_q[t, ch])};"
            for t in range(T) for ch in range(cfg.channels))
        a_sel = f"aff_a[spec_t * {cfg.channels} + spec_ch]"
        b_sel = f"aff_b[spec_t * {cfg.channels} + spec_ch]"
        conns = (",\n    .load_affine__valid(la_valid && !rst), "
                 ".load_affine__payload(la_payload)")
    D = 16
    return f"""// Generated by formal/lif.py: the LIF array ({desc["top"]}) against lif_spec.
module formal_top (
  input clk,
  input [{iw - 1}:0] i_payload, input i_valid, input o_ready,
  input lt_valid, input [{lw - 1}:0] lt_payload{affine_ports}
);
  reg [1:0] rcount = 0;
  wire rst = rcount != 2'd2;
  always @(posedge clk) if (rst) rcount <= rcount + 2'd1;
  wire i_ready, o_valid;
  wire [{ow - 1}:0] o_payload;
  wire [{tw - 1}:0] t_port;
  {desc["top"]} dut (
    .clk(clk), .rst(rst), .clear(1'b0),
    .i_current__payload(i_payload), .i_current__valid(i_valid && !rst),
    .i_current__ready(i_ready),
    .o_spikes__payload(o_payload), .o_spikes__valid(o_valid), .o_spikes__ready(o_ready),
    .t(t_port),
    .load_threshold__valid(lt_valid && !rst), .load_threshold__payload(lt_payload){conns}
  );

  // -- the spec's state: membranes, tables, beat and timestep counters ---------------------
  reg signed [{m.bits - 1}:0] vmem [0:{N - 1}];
  reg signed [{th.bits - 1}:0] th [0:{N - 1}];
  reg [1:0] cmp [0:{N - 1}];
  reg [7:0] spec_k = 0, spec_t = 0;
{affine_decl}  integer i;
  initial begin
    for (i = 0; i < {N}; i = i + 1) vmem[i] = 0;
{inits}
{affine_init}
  end
  wire accept = !rst && i_valid && i_ready;
  wire transfer = !rst && o_valid && o_ready;
  wire [{l_iw - 1}:0] lt_index = lt_payload[{l_i} +: {l_iw}];
  wire lt_go = !rst && lt_valid && lt_index < {N};

  wire signed [{m.bits - 1}:0] s_v = spec_t == 0 ? {m.bits}'sd0 : vmem[spec_k];
  wire signed [{m.bits - 1}:0] s_pre, s_new;
  wire s_spike, s_hi, s_lo;
  lif_spec spec (.v(s_v), .c(i_payload[{c.bits - 1}:0]), .theta(th[spec_k]),
                 .cmp(cmp[spec_k]), .a({a_sel}), .b({b_sel}),
                 .v_pre(s_pre), .spike(s_spike), .v_new(s_new), .hi(s_hi), .lo(s_lo));

  // -- expected output beats, oldest first --------------------------------------------------
  reg s_q_spike [0:{D - 1}];
  reg signed [{m.bits - 1}:0] s_q_pre [0:{D - 1}];
  reg [7:0] s_q_t [0:{D - 1}], s_q_k [0:{D - 1}];
  reg s_q_hi [0:{D - 1}], s_q_lo [0:{D - 1}];
  reg [3:0] wp = 0, rp = 0;
  reg [4:0] count = 0;
  wire last = spec_k == {N - 1};
  always @(posedge clk) begin
    if (accept) begin
      s_q_spike[wp] <= s_spike; s_q_pre[wp] <= s_pre; s_q_t[wp] <= spec_t;
      s_q_k[wp] <= spec_k; s_q_hi[wp] <= s_hi; s_q_lo[wp] <= s_lo;
      wp <= wp + 4'd1;
      vmem[spec_k] <= s_new;
      spec_k <= last ? 8'd0 : spec_k + 8'd1;
      if (last) spec_t <= spec_t == {T - 1} ? 8'd0 : spec_t + 8'd1;
    end
    if (transfer) rp <= rp + 4'd1;
    count <= count + (accept ? 5'd1 : 5'd0) - (transfer ? 5'd1 : 5'd0);
    if (lt_go) begin
      th[lt_index] <= lt_payload[{l_th} +: {th.bits}];
      cmp[lt_index] <= lt_payload[{l_c} +: 2];
    end
{affine_load}  end

  // -- the properties ------------------------------------------------------------------------
  wire signed [{m.bits - 1}:0] o_mem = o_payload[{o_m} +: {m.bits}];
  always @(*) if (!rst) begin
    assert (t_port == spec_t);
    assert (count <= {D - 2});
    if (o_valid) begin
      assert (count != 0);                              // nothing that was not accepted
      assert (o_payload[{o_sp}] == s_q_spike[rp]);      // the integer rule: spike
      assert (o_mem == s_q_pre[rp]);                    // and membrane v_pre
      assert (o_payload[{o_t} +: {o_tw}] == s_q_t[rp]);
      assert (o_payload[{o_b} +: {o_bw}] == s_q_k[rp]);
      assert (o_payload[{o_l}] == (s_q_k[rp] == {N - 1}));
      // never wraps: past the range the membrane is at the rail
      if (s_q_hi[rp]) assert (o_mem == {m.bits}'sd{m.max_int});
      if (s_q_lo[rp]) assert (o_mem == -{m.bits}'sd{-m.min_int});
    end
  end
endmodule
"""


def write_lif_proof(proof, root, *, solver="boolector"):
    """Write dut.v, spec.v, harness.sv and ``<name>.sby`` under ``root/<name>``; returns
    the .sby path."""
    from hdl.export import describe, write_rtl
    from hdl.lif_array import LIFArray
    options = dict(proof.options)
    folded = example_core(proof.neurons, seed=3, **options)
    directory = Path(root) / proof.name
    directory.mkdir(parents=True, exist_ok=True)
    dut = LIFArray.from_folded(folded, 1, memory_outreg=proof.memory_outreg)
    desc = describe(dut, "lif_dut")
    write_rtl(dut, desc, "lif_dut", directory)
    desc = json.loads((directory / "lif_dut.json").read_text())
    (directory / "spec.v").write_text(spec_verilog(folded.config, wrong_reset=proof.wrong_spec))
    (directory / "harness.sv").write_text(harness_verilog(desc, folded))
    sby = directory / f"{proof.name}.sby"
    sby.write_text(f"""[options]
mode bmc
depth {proof.depth}

[engines]
smtbmc {solver}

[script]
read_verilog -formal lif_dut.v
read_verilog -formal spec.v
read_verilog -formal -sv harness.sv
prep -top formal_top

[files]
lif_dut.v
spec.v
harness.sv
""")
    return sby
