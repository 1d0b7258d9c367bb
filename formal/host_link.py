"""Formal proof that the host-link decoder (``hdl.host_link.HostLink``) applies nothing from
a frame with a bad CRC or a bad length.

The decoder is proven as it is in ``hdl/host_link.py`` (imported, not copied), with two
substitutions that only add behaviours, so a safety property proven here holds for the
real link:

* the UART receiver is replaced by free inputs: any byte may arrive in any cycle, with or
  without a framing error, except in two consecutive cycles (every byte stream the real
  receiver can produce, and more: it delivers one byte per 9.5 bit times or more, at least
  38 cycles); the transmitter's ``ready`` is free too (the reply side may stall any time);
* every array-facing input (``i_current.ready``, ``o_spikes``, ``t``) is free.

The harness (``harness.sv``) keeps its own record of the current frame, from the byte after
the SYNC that the decoder takes as the start of a frame (when its receive state machine
leaves IDLE or HUNT for CMD: where frames start is the decoder's business; what a frame
holds is not): command, LEN, the CRC received and the CRC-16/CCITT-FALSE over CMD, LEN and
payload that it computes itself (MSB first, polynomial 0x1021, init 0xFFFF, written here from the
protocol's definition, not from ``crc16_byte_bits``), and the length rule of
``hdl/protocol.py`` per command (0 for STATUS/CLEAR, a non-zero whole number of records up
to the buffer for the others).

It asserts, in every cycle: a load strobe (``load_threshold.valid``, ``load_affine.valid``), a RUN beat offered to the array (``i_current.valid``) or ``clear``
only happens after the whole frame (CRC included) has been received, its CRC matches, its
LEN is valid for its command, and its command is the one the strobe belongs to (CLEAR:
once). So no core state is written for a frame with a bad CRC or a bad length.

Not covered here: that the values applied are the frame's bytes and that a load frame
with one out-of-range record applies none (BAD_VALUE). Both need the staging buffer's
contents; a bounded check of them (a whole two-record LOAD frame takes about 45 cycles) had
reached only depth 25 after 10 minutes with boolector, so they stay with the simulation tests
(tests/test_hdl_host_link.py). The staging buffer itself is written while the payload
streams in, before the CRC is known: by design (it is the link's receive buffer, not core
state).

``mode prove`` (k-induction, k = ``depth``) makes the property unbounded: for every input
sequence of any length. The induction is helped by invariants that tie the decoder's
registers (state, command, LEN, CRC, pointer, record phase) to the harness's record of the
frame; they are asserts too, so they are proven with it. Broken copies of the decoder
(:data:`MUTANTS`: the CRC check inverted; a RUN of LEN 0 accepted) must be refuted, by
bounded model checks of the property alone (without the invariants).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.examples import example_core
from golden.fixed import Fixed
from hdl.protocol import SYNC, Command, LinkLayout, nbytes

__all__ = ["LinkProof", "LINK_PROOFS", "MUTANTS", "write_link_proof", "crc_verilog"]


@dataclass(frozen=True)
class LinkProof:
    """One host-link configuration to prove (``example_core`` options, lanes, buffer)."""

    name: str
    options: dict = field(default_factory=dict)
    neurons: int = 3
    lanes: int = 1
    buffer_bytes: int = 6
    readback: bool = True
    depth: int = 24
    mode: str = "prove"
    slow: bool = False
    #: (original text, replacement) in hdl/host_link.py: a broken copy that must FAIL.
    mutation: tuple | None = None


SMALL = dict(T=2, membrane=Fixed(6, 2), current=Fixed(5, 1), threshold=Fixed(6, 2), tau=0.5)
AFFINE = dict(SMALL, affine=True, scale=Fixed(4, 2), channels=1)
LINK_PROOFS = [
    LinkProof("link-kind", dict(SMALL), depth=4),
    LinkProof("link-affine-kind", AFFINE, buffer_bytes=8, depth=4),
]
#: Broken copies of the decoder: each must be refuted (a counterexample found).
MUTANTS = [
    LinkProof("link-mutant-crc-inverted", dict(SMALL), mode="bmc", depth=18,
              mutation=("with m.If(Cat(crc_rx, byte) != crc):",
                        "with m.If(Cat(crc_rx, byte) == crc):")),
    LinkProof("link-mutant-run-len-0", dict(SMALL), mode="bmc", depth=18,
              mutation=("hdr_len_ok.eq((length != 0) & (length <= lay.buffer_bytes))",
                        "hdr_len_ok.eq(length <= lay.buffer_bytes)")),
]


# -- the decoder, with its UART replaced by free inputs -------------------------------------

class _FreeRx(wiring.Component):
    """Stands in for ``UARTRx``: its outputs are driven from the proof's free inputs."""

    def __init__(self, divisor):
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "framing_error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        return Module()


class _FreeTx(wiring.Component):
    """Stands in for ``UARTTx``: ``i.ready`` is a free input, ``tx`` idles high."""

    def __init__(self, divisor):
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1),
                          "busy": Out(1)})

    def elaborate(self, platform):
        return Module()


def _host_link_module(mutation=None):
    """``hdl.host_link`` itself, or a copy of its source with ``mutation`` applied."""
    import hdl.host_link as real
    if mutation is None:
        return real
    source = inspect.getsource(real)
    old, new = mutation
    # The mutation applies to HostLink's own source (NetworkLink has a receiver of its own).
    start = source.index("\nclass HostLink(")
    ends = [i for i in (source.find("\nclass ", start + 1), source.find("\ndef ", start + 1))
            if i != -1]
    end = min(ends) if ends else len(source)
    body = source[start:end]
    if body.count(old) != 1:
        raise ValueError(f"mutation {old!r} does not occur exactly once in HostLink of "
                         f"hdl/host_link.py (it occurs {body.count(old)} times): update "
                         f"formal.host_link")
    source = source[:start] + body.replace(old, new) + source[end:]
    spec = importlib.util.spec_from_loader("hdl._host_link_mutant", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "hdl"
    sys.modules[spec.name] = module
    exec(compile(source, real.__file__ + " (mutant)", "exec"),
         module.__dict__)
    return module


@contextmanager
def _free_uart(module):
    saved = module.UARTRx, module.UARTTx
    module.UARTRx, module.UARTTx = _FreeRx, _FreeTx
    try:
        yield
    finally:
        module.UARTRx, module.UARTTx = saved


#: The decoder's registers the induction invariants mention (looked up by name).
INTERNALS = ("cmd", "length", "crc", "crc_rx", "ptr", "rec_phase", "rec_len", "rec_j",
             "validate", "bad_value")


def _signals_by_name(module):
    """Every signal assigned in ``module``'s own statements, by name (first one wins)."""
    from amaranth.hdl._ast import Assign, Switch
    found = {}

    def walk(stmt):
        if isinstance(stmt, Assign):
            for sig in stmt.lhs._lhs_signals():
                found.setdefault(sig.name, []).append(sig)
        elif isinstance(stmt, Switch):
            for _patterns, stmts, _loc in stmt.cases:
                for s in stmts:
                    walk(s)
        elif hasattr(stmt, "ctrl_data"):          # m.next = ...: the FSM's state register
            sig = stmt.ctrl_data.get("signal")
            if sig is not None:
                found.setdefault(sig.name, []).append(sig)

    for stmts in module._statements.values():
        for stmt in stmts:
            walk(stmt)
    return found


class _Exposed(Elaboratable):
    """The link plus its receive state and a few registers as outputs (for the harness)."""

    def __init__(self, link):
        self.link = link
        self.byte = Signal(8, name="f_byte")
        self.got = Signal(name="f_got")
        self.ferr = Signal(name="f_ferr")
        self.tx_ready = Signal(name="f_tx_ready")
        inner = link.elaborate(None)
        self.inner = inner
        sigs = _signals_by_name(inner)
        states = {id(s): s for s in sigs.get("fsm_state", [])
                  if "HUNT" in _decoding(s).values()}
        states = list(states.values())
        if len(states) != 1:
            raise RuntimeError("cannot find the host link's receive state machine")
        self.state_sig = states[0]
        self.encoding = {name: n for n, name in _decoding(self.state_sig).items()}
        self.internal = {}
        for name in INTERNALS:
            cands = {id(s): s for s in sigs.get(name, [])}
            if len(cands) != 1:
                raise RuntimeError(f"cannot find the host link's register {name!r}")
            self.internal[name] = next(iter(cands.values()))
        self.out_state = Signal.like(self.state_sig, name="x_state")
        self.out = {n: Signal.like(s, name=f"x_{n}") for n, s in self.internal.items()}
        rx = inner._named_submodules["rxu"][0]
        tx = inner._named_submodules["txu"][0]
        self.rx, self.tx = rx, tx

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.inner
        m.d.comb += [self.rx.o.payload.eq(self.byte), self.rx.o.valid.eq(self.got),
                     self.rx.framing_error.eq(self.ferr), self.tx.i.ready.eq(self.tx_ready),
                     self.tx.tx.eq(1), self.out_state.eq(self.state_sig)]
        m.d.comb += [self.out[n].eq(s) for n, s in self.internal.items()]
        return m

    def ports(self):
        link = self.link
        ports = [self.byte, self.got, self.ferr, self.tx_ready, self.out_state,
                 *self.out.values(), link.rx, link.tx,
                 link.i_current.payload.as_value(), link.i_current.valid,
                 link.i_current.ready, link.o_spikes.payload.as_value(),
                 link.o_spikes.valid, link.o_spikes.ready, link.clear, link.t,
                 link.load_threshold.payload.as_value(), link.load_threshold.valid]
        if hasattr(link, "load_affine"):
            ports += [link.load_affine.payload.as_value(), link.load_affine.valid]
        return ports


def _decoding(sig):
    out = {}
    for n in range(1 << len(sig)):
        try:
            text = sig.decoder(n) if sig.decoder else str(n)
        except KeyError:
            continue
        name, _, code = text.rpartition("/")
        if name:
            out[int(code)] = name
    return out


# -- the harness ------------------------------------------------------------------------------

def crc_verilog():
    """``crc_step(crc, byte)``: CRC-16/CCITT-FALSE, one byte, MSB first (poly 0x1021)."""
    return """  function [15:0] crc_step(input [15:0] c, input [7:0] b);
    integer i;
    reg [15:0] r;
    begin
      r = c;
      for (i = 7; i >= 0; i = i - 1)
        r = (r[15] ^ b[i]) ? ((r << 1) ^ 16'h1021) : (r << 1);
      crc_step = r;
    end
  endfunction
"""


def _len_ok(record, buffer_bytes, var="s_len"):
    """Verilog: ``var`` is a non-zero whole number of ``record``-byte records <= buffer."""
    if record == 0:
        return f"({var} == 16'd0)"
    return "(" + " || ".join(f"{var} == 16'd{k * record}"
                             for k in range(1, buffer_bytes // record + 1)) + ")"


def harness_verilog(exposed, lay, widths):
    """``formal_top``: free inputs around the decoder, the frame record, the assertions."""
    cfg = lay.config
    B = lay.buffer_bytes
    sw = len(exposed.state_sig)
    st = {k: f"{sw}'d{v}" for k, v in exposed.encoding.items()}
    affine = cfg.affine
    C = {c.name: f"8'd{int(c)}" for c in Command}
    # Record size per command with records (the protocol's table).
    sizes = {"LOAD_THR": lay.threshold_record_bytes, "RUN": lay.beat_bytes}
    if lay.readback:
        sizes["RUN_V"] = lay.beat_bytes
    if affine:
        sizes["LOAD_AFF"] = lay.affine_record_bytes
    rec_of = " : ".join(f"s_cmd == {C[c]} ? 8'd{r}" for c, r in sizes.items()) + " : 8'd0"
    len_ok = (f"(s_cmd == {C['STATUS']} || s_cmd == {C['CLEAR']}) ? {_len_ok(0, B)} : " +
              " : ".join(f"s_cmd == {C[c]} ? {_len_ok(r, B)}" for c, r in sizes.items()) +
              " : 1'b0")

    def mod(var):
        """``var % s_rec`` by cases on the command (constant divisors)."""
        return "(" + " : ".join(f"s_cmd == {C[c]} ? {var} % {r}" for c, r in sizes.items()) \
            + " : 0)"

    in_exec = " || ".join(f"x_state == {st[s]}" for s in
                          ("EXEC", "RUN_START", "REC_ADDR", "REC_DATA", "REC_ACT",
                           "VALIDATED", "REPLY", "WAIT_TX"))
    wid = {n: len(sig) for n, sig in exposed.internal.items()}
    x_wires = "\n".join(f"  wire [{wid[n] - 1}:0] x_{n};" for n in INTERNALS)
    x_conns = ", ".join(f".x_{n}(x_{n})" for n in INTERNALS)
    aff_decl = aff_conn = aff_assert = ""
    if affine:
        aff_decl = (f"  wire [{widths['load_affine__payload'] - 1}:0] load_affine__payload;\n"
                    "  wire load_affine__valid;\n")
        aff_conn = (",\n    .load_affine__payload(load_affine__payload), "
                    ".load_affine__valid(load_affine__valid)")
        aff_assert = ("    if (load_affine__valid)\n"
                      f"      p_affine: assert (frame_good && s_cmd == {C['LOAD_AFF']});\n")
    run_cmds = f"s_cmd == {C['RUN']}" + (f" || s_cmd == {C['RUN_V']}" if lay.readback else "")
    return f"""// Generated by formal/host_link.py: the host-link decoder against its own frame record.
module formal_top (
  input clk,
  input [7:0] f_byte, input f_got, input f_ferr, input f_tx_ready,
  input i_current__ready, input [{widths['o_spikes__payload'] - 1}:0] o_spikes__payload,
  input o_spikes__valid, input [{widths['t'] - 1}:0] t_in
);
  reg [1:0] rcount = 0;
  wire rst = rcount != 2'd2;
  always @(posedge clk) if (rst) rcount <= rcount + 2'd1;
  wire got = f_got && !rst;
  wire [{sw - 1}:0] x_state;
{x_wires}
  wire [{widths['i_current__payload'] - 1}:0] i_current__payload;
  wire i_current__valid, o_spikes__ready, clear, tx, load_threshold__valid;
  wire [{widths['load_threshold__payload'] - 1}:0] load_threshold__payload;
{aff_decl}  link_dut dut (
    .clk(clk), .rst(rst), .f_byte(f_byte), .f_got(got), .f_ferr(f_ferr && !rst),
    .f_tx_ready(f_tx_ready), .x_state(x_state), {x_conns}, .rx(1'b1), .tx(tx),
    .i_current__payload(i_current__payload), .i_current__valid(i_current__valid),
    .i_current__ready(i_current__ready), .o_spikes__payload(o_spikes__payload),
    .o_spikes__valid(o_spikes__valid), .o_spikes__ready(o_spikes__ready), .clear(clear),
    .t(t_in), .load_threshold__payload(load_threshold__payload),
    .load_threshold__valid(load_threshold__valid){aff_conn}
  );
{crc_verilog()}
  // The one assumption: bytes are never delivered in two consecutive cycles (the real
  // receiver delivers one byte per >= 9.5 bit times, i.e. >= 38 cycles at divisor 4).
  reg got_q = 0;
  always @(posedge clk) got_q <= got;
  always @(*) assume (!(got && got_q));

  // -- the harness's record of the current frame ----------------------------------------
  reg [{sw - 1}:0] prev_state = {st['IDLE']};
  always @(posedge clk) prev_state <= x_state;
  // The decoder took a SYNC as the start of a frame last cycle.
  wire start = !rst && x_state == {st['CMD']} &&
               (prev_state == {st['IDLE']} || prev_state == {st['HUNT']});
  reg s_active = 0, s_done = 0, s_cleared = 0;
  reg [16:0] s_n = 0;              // bytes of the frame received after SYNC
  reg [7:0] s_cmd = 0;
  reg [15:0] s_len = 0, s_crc = 16'hFFFF, s_crc_rx = 0;
  wire [16:0] n = start ? 17'd0 : s_n;
  wire take = got && (start || (s_active && !s_done));
  wire [16:0] n_end = {{1'b0, s_len}} + 17'd4;  // index of the last CRC byte
  always @(posedge clk) if (!rst) begin
    if (start) begin
      s_active <= 1; s_done <= 0; s_n <= 0; s_crc <= 16'hFFFF; s_cleared <= 0;
    end
    if (take) begin
      s_n <= n + 17'd1;
      if (n == 0) s_cmd <= f_byte;
      if (n == 1) s_len[7:0] <= f_byte;
      if (n == 2) s_len[15:8] <= f_byte;
      if (n <= 2 || n < {{1'b0, s_len}} + 17'd3)
        s_crc <= crc_step(start ? 16'hFFFF : s_crc, f_byte);
      if (n >= 3 && n == {{1'b0, s_len}} + 17'd3) s_crc_rx[7:0] <= f_byte;
      if (n >= 3 && n == n_end) begin s_crc_rx[15:8] <= f_byte; s_done <= 1; end
    end
    if (clear) s_cleared <= 1;
  end
  wire crc_ok = s_crc_rx == s_crc;
  wire len_ok = {len_ok};
  wire frame_good = s_active && s_done && crc_ok && len_ok;
  wire [7:0] s_rec = {rec_of};

  // -- the property: nothing is applied from a frame that is not whole, good, and its own
  always @(*) if (!rst) begin
    if (load_threshold__valid)
      p_threshold: assert (frame_good && s_cmd == {C['LOAD_THR']});
{aff_assert}    if (i_current__valid)
      p_run: assert (frame_good && ({run_cmds}));
    if (clear)
      p_clear: assert (frame_good && s_cmd == {C['CLEAR']} && !s_cleared);
  end

`ifdef INVARIANTS
  // -- induction invariants: the decoder's registers agree with the frame record ----------
  always @(*) if (!rst && s_active) begin
    if (x_state == {st['CMD']}) begin
      assert (n == 0 && x_crc == 16'hFFFF);
      assert (start || (s_crc == 16'hFFFF && !s_done && !s_cleared));
    end
    if (x_state == {st['LEN0']} || x_state == {st['LEN1']})
      assert (x_cmd == s_cmd && x_crc == s_crc && !s_done && !s_cleared);
    if (x_state == {st['LEN0']}) assert (s_n == 1);
    if (x_state == {st['LEN1']}) assert (s_n == 2 && x_length[7:0] == s_len[7:0]);
    if (x_state == {st['CHECK_HDR']} || x_state == {st['PAYLOAD']} || x_state == {st['CRC0']} ||
        x_state == {st['CRC1']})
      assert (x_cmd == s_cmd && x_length == s_len && x_crc == s_crc && !s_done && !s_cleared);
    if (x_state == {st['CHECK_HDR']}) assert (s_n == 3);
    if (x_state == {st['PAYLOAD']}) begin
      assert (s_len != 0 && s_len <= {B} && s_n == {{1'b0, x_ptr}} + 17'd3 && x_ptr < s_len);
      assert (x_rec_len == s_rec && s_rec != 0 && x_rec_phase < x_rec_len);
      assert ({mod("x_ptr")} == x_rec_phase);
    end
    if (x_state == {st['CRC0']} || x_state == {st['CRC1']}) begin
      assert (s_len <= {B} && s_n == {{1'b0, s_len}} + 17'd3 + (x_state == {st['CRC1']}));
      assert (x_rec_len == s_rec);
      assert (s_rec == 0 ? (s_len == 0 && x_rec_phase == 0 &&
                            (s_cmd == {C['STATUS']} || s_cmd == {C['CLEAR']}))
              : s_len != 0 && {mod("s_len")} == x_rec_phase);
      if (x_state == {st['CRC1']}) assert (x_crc_rx == s_crc_rx[7:0]);
    end
    if ({in_exec})
      assert (frame_good && x_cmd == s_cmd && x_length == s_len && x_rec_len == s_rec);
    if (x_state == {st['EXEC']}) assert (!s_cleared);
  end
  always @(*) if (!rst && !s_active && !start)
    assert (x_state == {st['IDLE']} || x_state == {st['HUNT']} || x_state == {st['ERROR']} ||
            x_state == {st['ERROR_SEND']} || x_state == {st['ERROR_WAIT']});
`endif
endmodule
"""


def write_link_proof(proof, root, *, solver="boolector"):
    """Write ``link_dut.v``, ``harness.sv`` and ``<name>.sby`` under ``root/<name>``;
    returns the .sby path."""
    module = _host_link_module(proof.mutation)
    folded = example_core(proof.neurons, seed=3, **proof.options)
    with _free_uart(module):
        link = module.HostLink(folded.config, proof.lanes, divisor=4,
                               buffer_bytes=proof.buffer_bytes, readback=proof.readback,
                               latency=1, timeout_bytes=2)
        exposed = _Exposed(link)
    link._MustUse__silence = True         # elaborated by _Exposed, not by itself
    directory = Path(root) / proof.name
    directory.mkdir(parents=True, exist_ok=True)
    ports = exposed.ports()
    text = verilog.convert(exposed, name="link_dut", ports=ports, emit_src=False)
    (directory / "link_dut.v").write_text(text)
    widths = {p.name: len(p) for p in ports}
    lay = link.layout
    (directory / "harness.sv").write_text(harness_verilog(exposed, lay, widths))
    (directory / "proof.json").write_text(json.dumps(
        {"name": proof.name, "mode": proof.mode, "depth": proof.depth,
         "buffer_bytes": proof.buffer_bytes, "lanes": proof.lanes,
         "mutation": proof.mutation, "states": exposed.encoding}, indent=1))
    sby = directory / f"{proof.name}.sby"
    sby.write_text(f"""[options]
mode {proof.mode}
depth {proof.depth}

[engines]
smtbmc {solver}

[script]
read_verilog -formal link_dut.v
read_verilog -formal -sv {"-DINVARIANTS " if proof.mode == "prove" else ""}harness.sv
prep -top formal_top

[files]
link_dut.v
harness.sv
""")
    return sby
