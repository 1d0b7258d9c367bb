"""Compare sc-neurocore's NIR compiler with spikefold on one network, from one command.

``python -m boards.scneurocore --out DIR`` gives the same 64-32-10 MPBN digits network to
both tools as NIR and measures each one's RTL against its own software model and on ECP5:

1. **Network**: ``spikefold train --hidden 32 --method mpbn`` (seed 0, 19 s; or
   ``--model M.npz``), then ``spikefold export M.npz -o DIR/model.nir --dt 1`` (sc-neurocore's
   Q8.8 cannot hold a smaller ``dt``: 1e-3 underflows and it refuses to compile).
2. **sc-neurocore**: its NIR path as ``sc-neurocore compile-nir`` runs it (``from_nir`` ->
   ``from_scnetwork`` -> ``compile_network_to_fpga``, ``--interconnect folded``, target
   ecp5), once per ``--q`` format (the CLI has no width option, so the API is called).
   Its Verilog runs in Icarus on the test samples (inputs rounded to the Q format and
   saturated, as sc-neurocore quantises parameters; membranes reset between samples, ``T``
   ticks each) against its own software model (``SCNetwork.step`` on the float inputs):
   every hidden spike and every decision. The compiled RTL has no readout (what the
   network's output layer size is on each side is reported), so the RTL's decision is
   sc-neurocore's own readout node (``SCAffineNode``) applied to the RTL's spikes.
3. **spikefold**: :func:`sim.network_cosim.cosim_network` (cocotb + Icarus, every hidden
   spike and membrane, logits and class of every sample against the golden integer model).
4. **ECP5** (``--board``, default ulx3s-85f, unless ``--no-build``): spikefold's network in
   its bench shell (:func:`boards.build.build_network`); sc-neurocore's top (first ``--q``)
   in the same kind of shell (:class:`ScBenchTop`: inputs from a shift register fed from
   one pin, every output XOR-reduced into one registered pin), the same platform, clock
   target and yosys ``synth_ecp5`` + nextpnr-ecp5 ``--timing-allow-fail``; each tool stage
   of this build is stopped after ``--stage-timeout`` minutes (default 30).

Everything goes to ``--out``: ``scneurocore.json`` (the figures and the command), the model
and NIR file, ``sc-<Q>/`` (sc-neurocore's Verilog, testbench, spikes), ``spikefold-cosim/``,
``spikefold-pnr/`` and ``sc-pnr/`` (``build.json``, nextpnr's report).

sc-neurocore is not a dependency of spikefold (nor of ``make test``); install it with
``pip install --no-deps sc-neurocore==3.16.0`` (it needs numpy, scipy and nir, which the
``interop`` extra already has). Without it this module prints that line and exits.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["SC_VERSION", "install_hint", "require_sc_neurocore", "parse_q", "quantize_inputs",
           "spike_agreement", "decision_agreement", "testbench", "parse_spike_dump",
           "ScBenchTop", "main"]

#: The release the comparison was written against (its NIR compiler's API and output).
SC_VERSION = "3.16.0"


def install_hint():
    """The one line that installs sc-neurocore into this interpreter's environment."""
    return (f"sc-neurocore is not installed (it is not a spikefold dependency): "
            f"{Path(sys.executable).parent / 'pip'} install --no-deps "
            f"sc-neurocore=={SC_VERSION}")


def require_sc_neurocore():
    """Import ``sc_neurocore`` and return its version; ``RuntimeError`` with
    :func:`install_hint` when it is missing."""
    try:
        import sc_neurocore
    except ImportError:
        raise RuntimeError(install_hint()) from None
    return getattr(sc_neurocore, "__version__", "unknown")


def parse_q(text):
    """``"8.8"`` or ``"Q8.8"`` -> ``(data_width, fraction)`` = ``(16, 8)``."""
    m = re.fullmatch(r"[Qq]?(\d+)\.(\d+)", str(text).strip())
    if not m or int(m.group(1)) < 1 or int(m.group(1)) + int(m.group(2)) > 64:
        raise ValueError(f"--q must be a signed fixed-point format like 8.8 or Q16.16 "
                         f"(at most 64 bits), not {text!r}")
    integer, fraction = int(m.group(1)), int(m.group(2))
    return integer + fraction, fraction


def quantize_inputs(x, data_width, fraction):
    """Float inputs -> signed ``Q(data_width - fraction).fraction`` integers: rounded to
    nearest (ties to even, as sc-neurocore's ``round``) and saturated, never wrapped."""
    lo, hi = -(1 << (data_width - 1)), (1 << (data_width - 1)) - 1
    q = np.rint(np.asarray(x, dtype=np.float64) * float(1 << fraction))
    return np.clip(q, lo, hi).astype(np.int64)


def spike_agreement(expected, got):
    """Compare two spike arrays of the same shape ``(samples, T, neurons)`` (0/1).

    Returns ``{"spikes": compared, "agree": equal, "fraction": agree / spikes,
    "differ": spikes - agree, "samples_differing": samples with any difference}``.
    """
    a = np.asarray(expected)
    b = np.asarray(got)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"spike arrays must both be (samples, T, neurons), not {a.shape} "
                         f"and {b.shape}")
    same = (a != 0) == (b != 0)
    total = int(same.size)
    agree = int(np.count_nonzero(same))
    return {"spikes": total, "agree": agree, "fraction": agree / total if total else None,
            "differ": total - agree,
            "samples_differing": int(np.count_nonzero(~same.reshape(len(a), -1).all(axis=1)))}


def decision_agreement(expected, got):
    """Compare two label vectors: ``{"samples", "differ", "fraction_agree"}``."""
    a = np.asarray(expected).ravel()
    b = np.asarray(got).ravel()
    if a.shape != b.shape:
        raise ValueError(f"label vectors differ in length: {a.size} and {b.size}")
    differ = int(np.count_nonzero(a != b))
    return {"samples": int(a.size), "differ": differ,
            "fraction_agree": 1 - differ / a.size if a.size else None}


def testbench(module, n_in, n_out, data_width, T, samples, *, max_cycles=100_000):
    """A plain Verilog testbench for sc-neurocore's folded top ``module`` (ports ``clk``,
    ``rst_n``, ``en``, ``I_ext_flat``, ``spike_bus``, ``tick_done``).

    Per sample: reset (clears membranes and spikes), the sample's ``n_in`` words from
    ``inputs.hex`` on ``I_ext_flat`` (word ``k`` at bits ``k*data_width``), ``en`` high, and
    at each of ``T`` ``tick_done`` pulses one line ``sample t spike_bus-hex`` into
    ``spikes.txt``; ``TIMEOUT`` if a tick takes more than ``max_cycles`` cycles."""
    return f"""`timescale 1ns / 1ps
module tb;
    localparam integer NI = {n_in}, DW = {data_width}, NO = {n_out}, T = {T}, S = {samples};
    reg clk = 1'b0;
    always #5 clk = ~clk;
    reg rst_n = 1'b0, en = 1'b0;
    reg [DW - 1:0] mem [0:S * NI - 1];
    reg [NI * DW - 1:0] flat = 0;
    wire [NO - 1:0] spikes;
    wire done;
    {module} dut (.clk(clk), .rst_n(rst_n), .en(en), .I_ext_flat(flat), .spike_bus(spikes),
        .tick_done(done));
    integer s, t, k, f, cyc;
    initial begin
        $readmemh("inputs.hex", mem);
        f = $fopen("spikes.txt", "w");
        for (s = 0; s < S; s = s + 1) begin
            en = 1'b0;
            rst_n = 1'b0;
            for (k = 0; k < NI; k = k + 1) flat[k * DW +: DW] = mem[s * NI + k];
            @(posedge clk);
            @(posedge clk);
            #1 rst_n = 1'b1;
            en = 1'b1;
            t = 0;
            cyc = 0;
            while (t < T) begin
                @(posedge clk);
                #1 cyc = cyc + 1;
                if (done) begin
                    $fwrite(f, "%0d %0d %h\\n", s, t, spikes);
                    t = t + 1;
                    cyc = 0;
                end
                if (cyc > {max_cycles}) begin
                    $display("TIMEOUT sample=%0d t=%0d", s, t);
                    $finish;
                end
            end
        end
        $fclose(f);
        $display("DONE samples=%0d", S);
        $finish;
    end
endmodule
"""


def parse_spike_dump(text, samples, T, n_out):
    """``spikes.txt`` of :func:`testbench` -> a ``(samples, T, n_out)`` 0/1 array (bit ``i``
    of ``spike_bus`` is neuron ``i``); ``ValueError`` when a tick is missing or repeated."""
    out = np.zeros((samples, T, n_out), dtype=np.int8)
    seen = np.zeros((samples, T), dtype=bool)
    for line in text.split("\n"):
        if not line.strip():
            continue
        s, t, word = line.split()
        s, t = int(s), int(t)
        if not (0 <= s < samples and 0 <= t < T) or seen[s, t]:
            raise ValueError(f"spike dump: unexpected or repeated tick (sample {s}, t {t})")
        seen[s, t] = True
        value = int(word, 16)
        out[s, t] = [(value >> i) & 1 for i in range(n_out)]
    if not seen.all():
        s, t = np.argwhere(~seen)[0]
        raise ValueError(f"spike dump: no spikes for sample {s}, t {t} "
                         f"({int(np.count_nonzero(~seen))} ticks missing)")
    return out


def _sc_software(graph, x, T, dt):
    """sc-neurocore's own software model on float inputs ``x`` (S, n_in): per LIF-like
    node (in topological order) its spikes ``(S, T, n)``, the output node's values summed
    over ``T`` ``(S, n_out)``, and the network (for its readout node)."""
    from sc_neurocore.nir_bridge import from_nir
    net = from_nir(graph, dt=dt)
    spiking = [name for name in net.topo_order if hasattr(net.nodes[name], "v_threshold")]
    record = {name: [] for name in spiking}
    for name in spiking:
        node = net.nodes[name]
        forward = node.forward

        def recorded(v, forward=forward, sink=record[name]):
            y = forward(v)
            sink.append(np.array(y, dtype=np.int8))
            return y
        node.forward = recorded
    (inp,), (outp,) = net.input_nodes, net.output_nodes
    sums = []
    for xs in x:
        net.reset()
        total = 0.0
        for _ in range(T):
            total = total + net.step({inp: np.asarray(xs, dtype=np.float64)})[outp]
        sums.append(total)
    spikes = {name: np.asarray(v).reshape(len(x), T, -1) for name, v in record.items()}
    return net, spiking, spikes, np.asarray(sums)


def _readout_after(net, node_name, spikes):
    """Run the graph's nodes after ``node_name`` (the part the compiled RTL does not have)
    on ``spikes`` (S, T, n) with sc-neurocore's own node objects; summed over T."""
    chain, cur = [], node_name
    while True:
        nxt = [d for s, d in net.edges if s == cur]
        if len(nxt) != 1 or nxt[0] in net.output_nodes:
            break
        chain.append(nxt[0])
        cur = nxt[0]
    sums = []
    for sample in spikes:
        total = 0.0
        for s_t in sample:
            v = np.asarray(s_t, dtype=np.float64)
            for name in chain:
                v = net.nodes[name].forward(v)
            total = total + v
        sums.append(total)
    return chain, np.asarray(sums)


def _compile_sc(graph, dt, data_width, fraction, directory, module):
    """sc-neurocore's ``compile-nir`` steps with a chosen Q format; writes every Verilog
    module to ``directory``; returns ``(result, neuron_graph, [paths])``."""
    from sc_neurocore.nir_bridge import compile_network_to_fpga, from_nir, from_scnetwork
    network = from_nir(graph, dt=dt)
    ngraph = from_scnetwork(network, dt=dt)
    result = compile_network_to_fpga(ngraph, module_name=module, data_width=data_width,
                                     fraction=fraction, target="ecp5", interconnect="folded")
    directory.mkdir(parents=True, exist_ok=True)
    files = {f"{module}.v": result.top_module, "sc_nir_weight_rom.v": result.weight_rom}
    files.update({f"sc_nir_{k}.v": v for k, v in result.neuron_modules.items()})
    files.update({f"{k}.v": v for k, v in result.scnir_source_modules.items()})
    files.update({f"{k}.v": v for k, v in result.scnir_hierarchy_modules.items()})
    paths = []
    for name, text in files.items():
        (directory / name).write_text(text)
        paths.append(directory / name)
    return result, ngraph, paths


def _port_width(verilog, port):
    m = re.search(r"(?:input|output)\s+(?:wire|reg)?\s*(?:signed\s*)?\[(\d+):0\]\s*"
                  + port + r"\b", verilog)
    if not m:
        raise RuntimeError(f"sc-neurocore's top has no vector port {port!r}")
    return int(m.group(1)) + 1


def _run_sc_rtl(directory, paths, module, x_q, T, data_width, n_out):
    S, n_in = x_q.shape
    mask = (1 << data_width) - 1
    (directory / "inputs.hex").write_text(
        "".join(f"{int(v) & mask:0{-(-data_width // 4)}x}\n" for v in x_q.ravel()))
    (directory / "tb.v").write_text(testbench(module, n_in, n_out, data_width, T, S))
    t0 = time.monotonic()
    subprocess.run(["iverilog", "-g2012", "-s", "tb", "-o", "tb.vvp", "tb.v"]
                   + [str(p.resolve()) for p in paths], cwd=directory, check=True,
                   capture_output=True, text=True)
    proc = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=directory, capture_output=True,
                          text=True)
    (directory / "sim.log").write_text(proc.stdout + proc.stderr)
    if "DONE" not in proc.stdout:
        raise RuntimeError(f"sc-neurocore's RTL did not finish in Icarus: "
                           f"{(proc.stdout + proc.stderr)[-500:]}")
    spikes = parse_spike_dump((directory / "spikes.txt").read_text(), S, T, n_out)
    return spikes, round(time.monotonic() - t0, 1)


def ScBenchTop(module, n_in_bits, n_out):
    """sc-neurocore's top ``module`` (``I_ext_flat`` of ``n_in_bits``, ``spike_bus`` of
    ``n_out``) in spikefold's bench shell (:class:`boards.top.NetworkBenchTop`'s): ``ctl``
    through flip-flops (``en`` = ``ctl[0]``, ``rst_n`` = ``ctl[1]``), ``I_ext_flat`` from a
    shift register fed from ``ctl[5]``, ``spike_bus`` and ``tick_done`` XOR-reduced into the
    registered ``out`` pin; a :class:`boards.top._PinnedBench` for a
    :func:`boards.top.bench_platform`."""
    from amaranth.hdl import ClockSignal, Instance, Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from boards.top import _PinnedBench, _registered, _shift_register, _xor_out

    class Shell(wiring.Component):
        def __init__(self):
            super().__init__({"ctl": In(6), "out": Out(1)})

        def elaborate(self, platform):
            m = Module()
            ctl = _registered(m, self.ctl)
            spikes, done = Signal(n_out), Signal()
            m.submodules.sc = Instance(
                module, i_clk=ClockSignal(), i_rst_n=ctl[1], i_en=ctl[0],
                i_I_ext_flat=_shift_register(m, ctl[5], n_in_bits), o_spike_bus=spikes,
                o_tick_done=done)
            _xor_out(m, self.out, [spikes, done])
            return m

    class Pinned(_PinnedBench):
        def bench(self):
            return Shell()

    return Pinned()


def _build_sc(paths, module, n_in_bits, n_out, target, out, *, stage_timeout_s, log):
    """Synthesize, place and route sc-neurocore's Verilog in :func:`ScBenchTop` with the
    flow of :func:`boards.build.build_network` (same platform, clock target, nextpnr
    options), each tool stage stopped after ``stage_timeout_s``. Returns the build.json
    dict (``timed_out`` names the stage that hit the limit)."""
    from boards.build import DEFAULT_FREQ, _base_info, script_stages
    from boards.report import parse_nextpnr_report, parse_yosys_stat, summarize
    from boards.toolchain import toolchain_env
    from boards.top import bench_platform
    freq = DEFAULT_FREQ[target.family]
    platform = bench_platform(target, freq * 1e6)
    for p in paths:
        platform.add_file(p.name, p.read_text())
    kwargs = dict(target.build_kwargs, emit_src=False,
                  nextpnr_opts="--report top.report.json --timing-allow-fail")
    plan = platform.build(ScBenchTop(module, n_in_bits, n_out), name="top", do_build=False,
                          **kwargs)
    out.mkdir(parents=True, exist_ok=True)
    plan.extract(out)
    info = _base_info(target)
    info.update(top="sc-neurocore bench shell", module=module, freq_target_mhz=freq,
                stage_timeout_s=stage_timeout_s)
    env = toolchain_env(tools=target.tools)
    preamble, stages = script_stages((out / "build_top.sh").read_text())
    seconds = {}
    t0 = time.monotonic()
    for i, (stage, tool, command) in enumerate(stages, 1):
        if stage == "pack":
            continue                                   # figures only, no bitstream
        log(f"  sc-neurocore [{i}/{len(stages)}] {stage} ({tool}), limit "
            f"{stage_timeout_s / 60:g} min ...")
        s0 = time.monotonic()
        proc = subprocess.Popen(["sh", "-c", preamble + "\n" + command], cwd=out, env=env,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=stage_timeout_s)
        except subprocess.TimeoutExpired:
            import os
            import signal
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            info.update(built=False, timed_out=stage, stage_seconds=seconds)
            log(f"  sc-neurocore {stage}: stopped after {stage_timeout_s / 60:g} min")
            break
        seconds[stage] = round(time.monotonic() - s0, 1)
        log(f"  sc-neurocore {stage} ({tool}): {seconds[stage]} s")
        if code:
            raise RuntimeError(f"sc-neurocore's build failed in {stage} (see {out}/top.rpt, "
                               f"{out}/top.tim)")
    info["stage_seconds"] = seconds
    info["build_seconds"] = round(time.monotonic() - t0, 1)
    if (out / "top.rpt").exists():
        try:
            info["yosys_cells"] = parse_yosys_stat(out / "top.rpt")
        except ValueError:
            pass
    if not info.get("timed_out") and (out / "top.report.json").exists():
        report = parse_nextpnr_report(out / "top.report.json")
        info.update(built=True, results=summarize(target.family, report,
                                                  info.get("yosys_cells")))
    (out / "build.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def _run(cmd, log):
    log("  $ " + " ".join(shlex.quote(str(c)) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True)


def _cells(info):
    c = info.get("yosys_cells") or {}
    r = info.get("results") or {}
    return {"LUT4": c.get("LUT4"), "CCU2C": c.get("CCU2C"), "MULT18X18D": c.get("MULT18X18D"),
            "DP16KD": c.get("DP16KD"), "TRELLIS_FF": c.get("TRELLIS_FF"),
            "nextpnr_luts": r.get("luts"), "fmax_mhz": r.get("fmax_main_mhz"),
            "critical_path": r.get("critical_path")}


def _parser():
    from boards.targets import TARGETS
    p = argparse.ArgumentParser(prog="python -m boards.scneurocore",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--model", help="a spikefold-network model file (default: train the "
                                   "64-32-10 MPBN digits network into DIR/model.npz)")
    p.add_argument("--samples", type=int, default=540,
                   help="digits test samples for both RTL comparisons (default 540, all)")
    p.add_argument("--q", default="8.8",
                   help="sc-neurocore fixed-point formats, comma-separated (default 8.8; "
                        "e.g. 8.8,16.16); the first one is built")
    p.add_argument("--dt", type=float, default=1.0,
                   help="the NIR graph's time step, s (default 1; Q8.8 needs >= 1/256)")
    p.add_argument("--board", default="ulx3s-85f", choices=sorted(
        n for n, t in TARGETS.items() if t.family == "ecp5"))
    p.add_argument("--no-build", action="store_true", help="no synthesis / place and route")
    p.add_argument("--stage-timeout", type=float, default=30.0, metavar="MIN",
                   help="stop each sc-neurocore tool stage after MIN minutes (default 30)")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    prog = "python -m boards.scneurocore"
    try:
        formats = [parse_q(q) for q in str(args.q).split(",")]
        if not 1 <= args.samples <= 540:
            raise ValueError(f"--samples must be in 1..540, not {args.samples}")
        if not args.dt > 0:
            raise ValueError(f"--dt must be positive, not {args.dt}")
        if not args.stage_timeout > 0:
            raise ValueError(f"--stage-timeout must be positive, not {args.stage_timeout}")
        sc_version = require_sc_neurocore()
    except (ValueError, RuntimeError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    if sc_version != SC_VERSION:
        print(f"{prog}: warning: sc-neurocore {sc_version}, written against {SC_VERSION}",
              file=sys.stderr)

    def log(text):
        print(text, flush=True)

    import nir

    from golden.modelfile import ModelFile
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"command": prog + " " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "sc_neurocore_version": sc_version, "samples": args.samples, "dt": args.dt}
    t_start = time.monotonic()

    def save():
        info["wall_s"] = round(time.monotonic() - t_start, 1)
        (out / "scneurocore.json").write_text(json.dumps(info, indent=1, default=str) + "\n")
    sf = [sys.executable, "-m", "spikefold"]
    model_path = Path(args.model) if args.model else out / "model.npz"
    log("[1/5] network")
    if not args.model:
        _run(sf + ["train", "--hidden", "32", "--method", "mpbn", "--seed", "0", "--quiet",
                   "--out", model_path], log)
    nir_path = out / "model.nir"
    _run(sf + ["export", model_path, "-o", nir_path, "--dt", repr(args.dt)], log)
    model = ModelFile.load(model_path)
    inet = model.integer()
    T = inet.T
    sizes = [inet.layers[0].n_in] + [layer.n_out for layer in inet.layers]
    x = model.inputs(model.test_x[:args.samples])
    y = np.asarray(model.test_y[:args.samples])
    graph = nir.read(str(nir_path))
    info.update(model=str(model_path), nir=str(nir_path), sizes=sizes, T=T)
    log(f"  {'-'.join(map(str, sizes))}, T = {T}, {args.samples} test samples")

    log("[2/5] sc-neurocore: compile-nir (folded, ecp5), Icarus vs its software model")
    sw_net, spiking, sw_spikes, sw_sums = _sc_software(graph, x, T, args.dt)
    sw_pred = np.argmax(sw_sums, axis=1)
    float_pred = model.network.forward(x).predict()
    hidden = spiking[-1]
    info["sc_software"] = {
        "accuracy": float(np.mean(sw_pred == y)),
        "predictions_vs_spikefold_float": decision_agreement(float_pred, sw_pred)}
    full_synapses = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    sc_runs = []
    for data_width, fraction in formats:
        qname = f"Q{data_width - fraction}.{fraction}"
        d = out / f"sc-{qname}"
        module = "sc_nir_network"
        result, ngraph, paths = _compile_sc(graph, args.dt, data_width, fraction, d, module)
        top = result.top_module
        n_out, n_in_bits = _port_width(top, "spike_bus"), _port_width(top, "I_ext_flat")
        n_in = n_in_bits // data_width
        x_q = quantize_inputs(x, data_width, fraction)
        rtl_spikes, sim_s = _run_sc_rtl(d, paths, module, x_q, T, data_width, n_out)
        np.savez(d / "spikes.npz", rtl=rtl_spikes, software=sw_spikes[hidden])
        chain, rtl_sums = _readout_after(sw_net, hidden, rtl_spikes)
        rtl_pred = np.argmax(rtl_sums, axis=1)
        spikes = spike_agreement(sw_spikes[hidden], rtl_spikes)
        decisions = decision_agreement(sw_pred, rtl_pred)
        run = {"q": qname, "directory": str(d), "interconnect": result.interconnect,
               "rtl_neurons": int(result.total_neurons),
               "rtl_synapses": int(result.total_synapses),
               "populations": [{"name": p.name, "type": p.neuron_type, "n": int(p.n_neurons)}
                               for p in ngraph.populations],
               "rtl_inputs": n_in, "rtl_outputs": n_out,
               "network_synapses": full_synapses,
               "readout_in_rtl": int(result.total_synapses) == full_synapses,
               "readout_applied_in_software": chain, "warnings": list(result.warnings),
               "spikes": spikes, "decisions": decisions,
               "rtl_accuracy": float(np.mean(rtl_pred == y)), "sim_s": sim_s}
        if result.folded_metrics is not None:    # the compiler's sequencer: one neuron a cycle
            run["cycles_per_tick"] = int(result.folded_metrics.cycles_per_tick)
            run["cycles_per_image"] = T * run["cycles_per_tick"]
        sc_runs.append(run)
        log(f"  {qname}: RTL has {n_in} inputs -> {n_out} spike outputs "
            f"({result.total_neurons} neurons, {result.total_synapses} of the "
            f"{'-'.join(map(str, sizes))} network's {full_synapses}); spikes agree "
            f"{spikes['agree']:,}/"
            f"{spikes['spikes']:,} ({100 * spikes['fraction']:.2f} %), decisions differ "
            f"{decisions['differ']}/{decisions['samples']} ({sim_s} s in Icarus)")
    info["sc"] = sc_runs
    save()

    log(f"[3/5] spikefold: co-simulation (cocotb + Icarus), {args.samples} samples")
    from sim.network_cosim import cosim_network
    t0 = time.monotonic()
    cos = cosim_network(model_path, samples=args.samples, out_dir=out / "spikefold-cosim",
                        sim="icarus", progress=True)
    info["spikefold_cosim"] = {
        k: cos[k] for k in ("samples", "compared", "mismatches", "layers", "float_accuracy",
                            "fixed_accuracy", "rtl_accuracy", "cycles_per_image",
                            "latency_cycles_first", "directory")}
    info["spikefold_cosim"]["decisions"] = decision_agreement(cos["golden_labels"],
                                                              cos["rtl_labels"])
    info["spikefold_cosim"]["wall_s"] = round(time.monotonic() - t0, 1)
    save()
    log(f"  {cos['compared']:,} values compared, {cos['mismatches']} mismatches, decisions "
        f"differ {info['spikefold_cosim']['decisions']['differ']}/{args.samples}")

    if not args.no_build:
        from boards.build import build_network
        from boards.targets import get_target
        from hdl.mapping import HardwareMapping
        target = get_target(args.board)
        first = sc_runs[0]
        log(f"[4/5] sc-neurocore {first['q']} on {target.name} (yosys synth_ecp5 + "
            f"nextpnr-ecp5)")
        d = Path(first["directory"])
        paths = [p for p in sorted(d.glob("*.v")) if p.name != "tb.v"]
        sc_build = _build_sc(paths, "sc_nir_network", first["rtl_inputs"] * formats[0][0],
                             first["rtl_outputs"], target, out / "sc-pnr",
                             stage_timeout_s=args.stage_timeout * 60, log=log)
        info["board"] = target.name
        info["sc_build"] = _cells(sc_build)
        info["sc_build"]["timed_out"] = sc_build.get("timed_out")
        info["sc_build"]["stage_seconds"] = sc_build.get("stage_seconds")
        save()
        log(f"[5/5] spikefold on {target.name} (yosys + nextpnr-ecp5)")
        mapping = HardwareMapping.for_network(inet, None, None)
        sf_build = build_network(inet, mapping, target, out / "spikefold-pnr",
                                 cycles_per_image=cos["cycles_per_image"],
                                 latency_cycles=cos["latency_cycles_first"], log=log)
        info["spikefold_build"] = _cells(sf_build)
    save()
    print()
    print(table(info))
    return 0 if not cos["mismatches"] else 1


def _n(v):
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else f"{v}"


def table(info):
    """The comparison as a Markdown table (from a ``scneurocore.json`` dict)."""
    sc, cos = info["sc"], info["spikefold_cosim"]
    sizes = "-".join(map(str, info["sizes"]))
    rows = [f"| {sizes} MPBN digits, T = {info['T']}, {info['samples']} test samples | "
            f"sc-neurocore {info['sc_neurocore_version']} | spikefold |", "|---|---|---|"]
    for r in sc:
        s, d = r["spikes"], r["decisions"]
        rows.append(f"| RTL vs own software model, {r['q']} | spikes agree "
                    f"{100 * s['fraction']:.2f} % ({s['differ']:,} of {s['spikes']:,} differ), "
                    f"{d['differ']}/{d['samples']} decisions differ | "
                    + (f"{cos['mismatches']} mismatches in {cos['compared']:,} values "
                       f"(spikes, membranes, logits, class), {cos['decisions']['differ']}/"
                       f"{cos['samples']} decisions differ" if r is sc[0] else "") + " |")
    r = sc[0]
    rows.append(f"| output layer in the RTL | {r['rtl_outputs']} spike outputs "
                f"({r['rtl_synapses']:,} of {r['network_synapses']:,} synapses): the "
                f"{info['sizes'][-1]}-class readout is "
                f"{'kept' if r['readout_in_rtl'] else 'dropped'}"
                f"{'' if r['warnings'] else ', no warning'} | {info['sizes'][-1]} logits + "
                f"class |")
    sw = info["sc_software"]
    rows.append(f"| accuracy | software {100 * sw['accuracy']:.2f} %, RTL (+ software readout) "
                f"{100 * r['rtl_accuracy']:.2f} % | float {100 * cos['float_accuracy']:.2f} %, "
                f"RTL = golden {100 * cos['rtl_accuracy']:.2f} % |")
    if info.get("sc_build"):
        a, b = info["sc_build"], info["spikefold_build"]

        def res(c):
            return (f"{_n(c['LUT4'])} LUT4 + {_n(c['CCU2C'])} CCU2C, {_n(c['MULT18X18D'])} "
                    f"DSP, {_n(c['DP16KD'] or 0)} DP16KD")
        fa = (f"stopped: {a['timed_out']} over the limit" if a.get("timed_out")
              else f"{_n(a['fmax_mhz'])} MHz")
        rows.append(f"| {info['board']} synthesis (yosys cells) | {res(a)} | {res(b)} |")
        rows.append(f"| nextpnr-ecp5 Fmax | {fa} | {_n(b['fmax_mhz'])} MHz |")
        sc_cyc, sf_cyc = r.get("cycles_per_image"), cos.get("cycles_per_image")
        if sc_cyc and sf_cyc and a.get("fmax_mhz") and b.get("fmax_mhz"):
            rows.append(f"| cycles per image (µs at Fmax) | {sc_cyc} ({r['cycles_per_tick']} "
                        f"per tick; {sc_cyc / a['fmax_mhz']:.2f} µs) | {sf_cyc:.1f} streaming "
                        f"({sf_cyc / b['fmax_mhz']:.2f} µs) |")
    rows.append(f"| sc software model vs spikefold float model | predictions agree "
                f"{100 * sw['predictions_vs_spikefold_float']['fraction_agree']:.2f} % | |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
