"""``spikefold build``: a bitstream for a board, with measured size and speed.

Reads a folded core (``--model FILE.npz``) or makes the built-in example, checks that it
fits the board (:mod:`boards.estimate`) before any tool runs, builds the board top
(:class:`boards.top.BoardTop`: LIF array + UART host link) with the YoWASP toolchain via
amaranth-boards, and writes into ``--out`` (default ``build/<board>/``):

* ``top.bin``/``top.bit`` (and ``top.dfu`` for the OrangeCrab), the bitstream;
* ``top.debug.v`` (Verilog of the whole top), ``top.il``, the Yosys/nextpnr scripts and logs;
* ``top.report.json`` (nextpnr's report) and ``build.json``: utilization (logic cells or
  LUTs, FFs, BRAM blocks, DSP), Fmax per clock, derived throughput (lanes x Fmax neuron
  updates per second) and the critical path.

``--bench`` builds the bare array in a registered shell instead (:class:`boards.top.BenchTop`)
with the clock constrained to ``--freq`` MHz, to measure the array's own Fmax. The Arty A7
(Xilinx) gets Verilog and a Vivado build plan only.

:func:`build_network` (used by ``spikefold demo --board``) does the same for the whole
:class:`hdl.network.SpikingNetwork` in its registered shell
(:class:`boards.top.NetworkBenchTop`): utilization, Fmax and, given the cycles per image,
the time per image at Fmax. :func:`network_memory` refuses a network whose weights cannot
fit the board's block RAM before any tool runs.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from golden.examples import add_core_arguments, core_from_args

from .estimate import check_fit, memory_blocks, plan_memories
from .report import parse_nextpnr_report, parse_yosys_stat, summarize
from .targets import TARGETS, dfu_suffix, get_target
from .toolchain import missing_tools, toolchain_env

__all__ = ["add_arguments", "run", "build_board", "build_network", "network_memory",
           "DEFAULT_FREQ"]

#: Timing-driven target of ``--bench`` builds, MHz (a bit above the goals: 70 / 200).
DEFAULT_FREQ = {"ice40": 100.0, "ecp5": 250.0, "xc7": 250.0}


def add_arguments(parser):
    parser.add_argument("--board", required=True, choices=sorted(TARGETS),
                        help="target board")
    add_core_arguments(parser)
    parser.add_argument("--out", help="output directory (default build/<board>)")
    parser.add_argument("--baudrate", type=int, default=115200, help="UART baud rate")
    parser.add_argument("--buffer-bytes", type=int, default=512,
                        help="host link request buffer (largest frame payload)")
    parser.add_argument("--no-readback", action="store_true",
                        help="leave out RUN_V (membranes in replies)")
    parser.add_argument("--bench", action="store_true",
                        help="build the bare array in a registered shell to measure its Fmax")
    parser.add_argument("--freq", type=float, default=None,
                        help="--bench clock target in MHz (iCE40 100, ECP5 250)")
    parser.add_argument("--plan-only", action="store_true",
                        help="write the Verilog and build scripts, run no tool")
    parser.add_argument("--flow", choices=("auto", "stall", "credit"), default="auto",
                        help="the array's pipeline flow: stall (one enable for the whole "
                             "pipeline), credit (no pipeline enable: an output queue and a "
                             "credit counter; >= 200 MHz on ECP5 up to 16 lanes, 1.2-1.5x "
                             "LUTs) or auto (the default: credit on ECP5, stall on iCE40)")
    parser.add_argument("--no-outreg", action="store_true",
                        help="read block RAM without its output register (one stage less "
                             "latency, much lower Fmax; the default registers it on ECP5 only, "
                             "iCE40 block RAM has none)")


def build_board(folded, lanes, target, out, *, bench=False, freq=None, baudrate=115200,
                memory_outreg=None, flow="auto",
                buffer_bytes=512, readback=True, plan_only=False, log=print):
    """Build (or with ``plan_only`` only prepare) one board; returns the build.json dict.

    ``memory_outreg=None`` registers block-RAM outputs where the family has the output
    register (ECP5's DP16KD ``OUTREG``); on iCE40 it would only add fabric flip-flops.
    ``flow="auto"`` is the credit flow on ECP5 and the stall flow on iCE40
    (:func:`boards.top.flow_for`); build.json records the flow used.
    """
    from .sweep import outreg_for
    from .top import BenchBoardTop, BoardTop, bench_platform, flow_for
    flow = flow_for(target, flow)
    if memory_outreg is None:
        memory_outreg = outreg_for(target)
    est = check_fit(folded.config, lanes, target, host_link=not bench,
                    buffer_bytes=buffer_bytes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if bench:
        freq = freq or DEFAULT_FREQ[target.family]
        platform = bench_platform(target, freq * 1e6)
        top = BenchBoardTop(folded, lanes, memory_outreg=memory_outreg, flow=flow)
    else:
        platform = target.make_platform()
        top = BoardTop(folded, lanes, baudrate=baudrate, buffer_bytes=buffer_bytes,
                       readback=readback, uart_resource=target.uart,
                       memory_outreg=memory_outreg, flow=flow)
    from hdl.lif_array import LIFArray
    array = LIFArray.from_folded(folded, lanes, memory_outreg=memory_outreg, flow=flow)
    array._MustUse__silence = True            # only asked for its latency
    info = _base_info(target)
    info["top"] = "bench" if bench else "uart"
    info.update(lanes=lanes, latency=array.latency, memory_outreg=memory_outreg, flow=flow,
                beats_per_step=array.beats_per_step, config=folded.config.to_json(),
                estimate=est.to_json())
    if bench:
        info["freq_target_mhz"] = freq
    else:
        info["baudrate"] = baudrate
        info["clock_mhz"] = platform.default_clk_frequency / 1e6
    return _build(platform, top, target, out, info, timing_allow_fail=bench,
                  plan_only=plan_only, lanes=lanes, log=log,
                  what=f"N={folded.config.neurons} P={lanes} "
                       f"({'bench' if bench else 'UART top'})")


def _base_info(target):
    """The fields every build.json has; ``command`` is the ``spikefold`` command line that
    made it (``None`` when called from Python)."""
    return {
        "format": "spikefold-build", "version": 1, "board": target.name,
        "board_name": target.board, "device": target.device, "family": target.family,
        "note": target.note,
        "command": "spikefold " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if Path(sys.argv[0]).name == "spikefold" else None,
    }


def _build(platform, top, target, out, info, *, timing_allow_fail, plan_only, lanes=None,
           derive=None, what="", log=print):
    """Prepare (``plan_only`` or a closed toolchain) or run one build of ``top`` on
    ``platform``; writes and returns ``info`` as build.json, with the measured figures in
    ``info["results"]`` (plus ``derive(results)``'s)."""
    kwargs = dict(target.build_kwargs, emit_src=False)
    if target.open_toolchain:
        opts = "--report top.report.json"
        if timing_allow_fail:
            opts += " --timing-allow-fail"     # we measure Fmax; missing the target is data
        kwargs["nextpnr_opts"] = opts
    plan = platform.build(top, name="top", do_build=False, **kwargs)
    if not target.open_toolchain or plan_only:
        plan.extract(out)
        info["built"] = False
        if not target.open_toolchain:
            info["note"] = (target.note + ". Run build_top.sh in this directory on a machine "
                            "with Vivado to synthesize.")
        (out / "build.json").write_text(json.dumps(info, indent=1) + "\n")
        log(f"{target.name}: wrote Verilog and build plan to {out} (no synthesis: "
            f"{'Vivado needed' if not target.open_toolchain else '--plan-only'})")
        return info
    missing = missing_tools(target.tools)
    if missing:
        raise RuntimeError(f"YoWASP tools missing: {', '.join(missing)}; "
                           f"pip install -e '.[boards]'")
    t0 = time.monotonic()
    log(f"{target.name}: building {what} in {out} ...")
    try:
        plan.extract(out)
        for stale in (ABC9_RETRY_SCRIPT, ABC9_FAILED_LOG):
            (out / stale).unlink(missing_ok=True)
        info["stage_seconds"] = run_stages(out, toolchain_env(tools=target.tools), log=log)
        if (out / ABC9_RETRY_SCRIPT).exists():
            info["synthesis_retry"] = (
                f"Yosys's abc9 asserted at {ABC9_BUG} (a Yosys bug; log {ABC9_FAILED_LOG}); "
                f"synthesized again by {ABC9_RETRY_SCRIPT}: synth_ecp5 -dff (abc9 maps "
                f"the flip-flops too)")
    except Exception as exc:
        import subprocess
        if isinstance(exc, subprocess.CalledProcessError):
            # yosys logs to top.rpt, nextpnr to top.tim (a stale one may survive a yosys
            # failure): name the log that holds the error.
            for log_name in ("top.rpt", "top.tim"):
                try:
                    lines = (out / log_name).read_text(errors="replace").splitlines()
                except OSError:
                    continue
                errors = [line.strip() for line in lines if line.startswith("ERROR")]
                if errors and log_name == "top.rpt" and ABC9_BUG in errors[-1]:
                    raise RuntimeError(
                        f"yosys failed on a bug of its own, not of the design (see "
                        f"{out}/top.rpt: abc9's reintegration asserts at {ABC9_BUG}, also "
                        f"when retried through {ABC9_RETRY_SCRIPT}; synth_lattice has no way "
                        f"to skip abc9): try other --lanes") from None
                if errors:
                    raise RuntimeError(
                        f"the toolchain failed (see {out}/{log_name}): {errors[-1]}") from None
            tail = _tail(out / "top.tim") or _tail(out / "top.rpt")
            raise RuntimeError(f"the toolchain failed (see {out}/top.tim): {tail}") from None
        raise
    info["build_seconds"] = round(time.monotonic() - t0, 1)
    report = parse_nextpnr_report(out / "top.report.json")
    cells = parse_yosys_stat(out / "top.rpt")
    fig = summarize(target.family, report, cells, lanes=lanes)
    if derive is not None:
        fig.update(derive(fig))
    info.update(built=True, results=fig, yosys_cells=cells)
    bitfile = out / f"top.{target.bitstream}"
    info["bitstream"] = bitfile.name
    if target.name.startswith("orangecrab"):
        (out / "top.dfu").write_bytes(dfu_suffix(bitfile.read_bytes()))
        info["dfu"] = "top.dfu"
    (out / "build.json").write_text(json.dumps(info, indent=1) + "\n")
    log(_summary_line(info))
    return info


#: Where YoWASP Yosys 0.70's abc9 reintegration asserts (``GetSize(conn.first) ==
#: GetSize(conn.second)``) on some netlists (the conv default at 16 lanes on ECP5; 0.69
#: asserts on it too, at another line). ``synth_lattice`` always runs abc9, so
#: :func:`run_stages` synthesizes once more with :func:`abc9_retry_script` (abc9 with
#: ``-dff``, which mapped it); if that asserts too, ``_build`` names the bug.
ABC9_BUG = "kernel/rtlil.cc:3091"
#: The retry's Yosys script and the failed run's log.
ABC9_RETRY_SCRIPT, ABC9_FAILED_LOG = "top.abc9_retry.ys", "top.abc9_bug.rpt"


def abc9_retry_script(script):
    """``script`` (Amaranth's ``top.ys`` for ECP5) with ``-dff`` added to its
    ``synth_ecp5``: ``synth_lattice``'s own option that hands the flip-flops to abc9 as
    well (with ``zinit`` before it), the one change found to map the netlists on which
    abc9's reintegration asserts (the same passes otherwise). ``None`` when the script
    has no single ``synth_ecp5`` or it already has ``-dff``.
    """
    lines = script.splitlines()
    at = [i for i, line in enumerate(lines) if line.split()[:1] == ["synth_ecp5"]]
    if len(at) != 1 or "-dff" in lines[at[0]].split():
        return None
    lines[at[0]] = lines[at[0]].rstrip() + " -dff"
    note = (f"# spikefold: synth_ecp5 with -dff, after Yosys's abc9 assertion at {ABC9_BUG} "
            "without it")
    return "\n".join([note] + lines) + "\n"


def _abc9_asserted(out):
    try:
        log = (Path(out) / "top.rpt").read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith("ERROR") and ABC9_BUG in line for line in log.splitlines())


def _abc9_retry(out, command):
    """The yosys ``command`` rewritten to run :func:`abc9_retry_script` (written into
    ``out``; the failed log kept as ``ABC9_FAILED_LOG``), or ``None``."""
    out = Path(out)
    words = command.split()
    if "top.ys" not in words or not (out / "top.ys").exists():
        return None
    retry = abc9_retry_script((out / "top.ys").read_text())
    if retry is None:
        return None
    (out / ABC9_RETRY_SCRIPT).write_text(retry)
    (out / "top.rpt").replace(out / ABC9_FAILED_LOG)
    return " ".join(ABC9_RETRY_SCRIPT if w == "top.ys" else w for w in words)


#: Memories shallower than this are left to LUT RAM / flip-flops by Yosys's memory mapper
#: (counted as bits, not blocks).
_BRAM_MIN_DEPTH = 32


def _geometry(inet, mapping=None, in_lanes=None, outreg=None):
    """The :class:`hdl.plan.NetworkPlan` of ``inet`` (checks the mapping; builds nothing)."""
    from hdl.mapping import HardwareMapping
    from hdl.plan import network_plan
    return network_plan(inet, HardwareMapping.for_network(inet, mapping, in_lanes, outreg))


def memory_placement(plan, target):
    """Where each memory of the :class:`hdl.plan.NetworkPlan` ``plan`` goes on ``target``:
    ``(name, depth, width, read_ports, place, blocks)`` rows with ``place`` ``"spram"``
    (a dense stage's weights on a device with SPRAM, registered mode: the rule of
    :func:`hdl.bram.uses_spram`; ``blocks`` = SB_SPRAM256KA count), ``"bram"`` (at least
    ``_BRAM_MIN_DEPTH`` deep; the fewest blocks of the device's shapes, one copy per read
    port) or ``"logic"`` (LUT RAM / flip-flops, 0 blocks)."""
    from hdl.bram import spram_tiles, uses_spram
    rows = []
    for stage in plan.stages:
        for mem in stage.memories:
            name = f"{stage.name}.{mem.name}"
            if (target.spram_blocks and stage.kind == "dense" and mem.name == "weights"
                    and plan.mapping.outreg and uses_spram(target.device, mem.depth)):
                rows.append((name, mem.depth, mem.width, mem.read_ports, "spram",
                             spram_tiles(mem.width, mem.depth, mem.read_ports)))
            elif mem.depth >= _BRAM_MIN_DEPTH:
                rows.append((name, mem.depth, mem.width, mem.read_ports, "bram",
                             memory_blocks(mem.depth, mem.width, target.bram_shapes)
                             * mem.read_ports))
            else:
                rows.append((name, mem.depth, mem.width, mem.read_ports, "logic", 0))
    return rows


def network_memory(inet, mapping, target, *, in_lanes=None, outreg=None):
    """The memories of ``SpikingNetwork(inet, mapping)`` on ``target``.

    The sum of the stage plans (:func:`hdl.plan.network_plan`; ``mapping`` a
    :class:`hdl.mapping.HardwareMapping` or the lanes, with ``in_lanes``/``outreg``, as
    ``HardwareMapping.for_network`` takes them), placed by :func:`memory_placement`:
    on a device with SPRAM (the UP5K) the dense weights go there, everything else to
    block RAM (at least ``_BRAM_MIN_DEPTH`` deep) or logic.

    Returns
    -------
    dict
        ``memories`` (name, depth, width, place, blocks), ``weight_bits``,
        ``memory_bits``, ``bram_blocks`` (estimate), ``bram_blocks_available``,
        ``bram_bits_available``, ``spram_blocks`` / ``spram_blocks_available``,
        ``spram_weight_bits``, ``lanes``, ``in_lanes``, ``outreg``.

    Raises
    ------
    ValueError
        The weights held in block RAM are more bits than the device's block RAM, or the
        block estimate exceeds the device's blocks, or the SPRAM blocks needed exceed the
        device's (the message names the figures).
    """
    plan = _geometry(inet, mapping, in_lanes, outreg)
    rows = memory_placement(plan, target)
    where = {name: place for name, *_, place, _ in rows}
    weight_bits = spram_weight_bits = 0
    # Synaptic stages are named after their layer: dense<i> / conv<i>.
    synaptic = {s.name: s for s in plan.stages if s.kind in ("dense", "conv2d")}
    for index, layer in enumerate(inet.layers):
        if getattr(layer, "W_q", None) is None:
            continue                     # pooling, flatten: no weights
        bits = int(np.asarray(layer.W_q).size) * layer.formats.weight.bits
        weight_bits += bits
        names = [n for n in (f"dense{index}", f"conv{index}") if n in synaptic]
        if names and where.get(f"{names[0]}.weights") == "spram":
            spram_weight_bits += bits
    blocks = sum(b for *_, place, b in rows if place == "bram")
    spram = sum(b for *_, place, b in rows if place == "spram")
    info = {"memories": [{"name": n, "depth": d, "width": w, "place": place, "blocks": b}
                         for n, d, w, _, place, b in rows],
            "weight_bits": int(weight_bits), "memory_bits": plan.memory_bits,
            "bram_blocks": blocks, "bram_blocks_available": target.bram_blocks,
            "bram_bits_available": target.bram_bits,
            "spram_blocks": spram, "spram_blocks_available": target.spram_blocks,
            "spram_weight_bits": int(spram_weight_bits), **plan.mapping.to_json()}
    sizes = "-".join(str(n) for n in [inet.layers[0].n_in] + [l.n_out for l in inet.layers])
    bram_weights = weight_bits - spram_weight_bits
    if bram_weights > target.bram_bits or blocks > target.bram_blocks:
        raise ValueError(
            f"the {sizes} network does not fit the {target.device} of {target.board}: its "
            f"weights need {weight_bits / 1e3:.0f} kbit ({bram_weights / 1e3:.0f} kbit in "
            f"block RAM, {blocks} blocks estimated with the other memories), the block RAM "
            f"holds {target.bram_bits / 1e3:.0f} kbit ({target.bram_blocks} blocks); "
            f"choose a bigger board" + ("" if not target.spram_blocks else
                                        " or fewer lanes (weights in SPRAM)"))
    if spram > target.spram_blocks:
        raise ValueError(
            f"the {sizes} network does not fit the {target.device} of {target.board}: its "
            f"weights in SPRAM need {spram} SB_SPRAM256KA blocks (lanes "
            f"{list(plan.mapping.lanes)}; 16 bits x 16384 words each), the device has "
            f"{target.spram_blocks}; use fewer lanes")
    return info


def build_network(inet, mapping, target, out, *, in_lanes=None, outreg=None, freq=None,
                  plan_only=False, cycles_per_image=None, latency_cycles=None, log=print):
    """Build (or with ``plan_only`` only prepare) the whole network (``mapping``: a
    :class:`hdl.mapping.HardwareMapping`, or the lanes with ``in_lanes``/``outreg``, as
    ``HardwareMapping.for_network`` takes them) in its registered
    shell (:class:`boards.top.NetworkBenchTop`) on ``target``, the clock constrained to
    ``freq`` MHz (default :data:`DEFAULT_FREQ` of the family, with
    ``--timing-allow-fail``: the achieved Fmax is the figure).

    ``cycles_per_image`` (steady state) and ``latency_cycles`` (first pixel to result),
    when given, are stored and turned into ``us_per_image`` / ``latency_us`` /
    ``images_per_s`` at the measured Fmax. Returns the build.json dict.
    """
    from golden.network import IntegerNetwork

    from .top import NetworkBenchBoardTop, bench_platform
    if not isinstance(inet, IntegerNetwork):
        raise TypeError(f"inet must be a golden.network.IntegerNetwork, not "
                        f"{type(inet).__name__}")
    for name, value in (("cycles_per_image", cycles_per_image),
                        ("latency_cycles", latency_cycles)):
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                  or value <= 0):
            raise ValueError(f"{name} must be a positive number or None, not {value!r}")
    from hdl.mapping import HardwareMapping
    mapping = HardwareMapping.for_network(inet, mapping, in_lanes, outreg)
    mem = network_memory(inet, mapping, target)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    freq = freq or DEFAULT_FREQ[target.family]
    platform = bench_platform(target, freq * 1e6)
    top = NetworkBenchBoardTop(inet, mapping)
    sizes = [inet.layers[0].n_in] + [layer.n_out for layer in inet.layers]
    info = _base_info(target)
    info.update(top="network-bench", sizes=sizes, T=inet.T, **mapping.to_json(),
                freq_target_mhz=freq, memory=mem,
                cycles_per_image=cycles_per_image, latency_cycles=latency_cycles)

    def derive(fig):
        fmax = fig.get("fmax_main_mhz")
        if not fmax:
            return {}
        extra = {}
        if cycles_per_image:
            extra["us_per_image"] = round(cycles_per_image / fmax, 3)
            extra["images_per_s"] = round(fmax * 1e6 / cycles_per_image, 1)
        if latency_cycles:
            extra["latency_us"] = round(latency_cycles / fmax, 3)
        return extra

    return _build(platform, top, target, out, info, timing_allow_fail=True,
                  plan_only=plan_only, derive=derive, log=log,
                  what="the " + "-".join(map(str, sizes)) + f" network (lanes "
                       f"{list(mapping.lanes)}, in_lanes {mapping.in_lanes}, outreg "
                       f"{mapping.outreg}, {mapping.flow} flow, bench)")


def _summary_line(info):
    r = info["results"]
    logic = (f"{r['logic_cells']} LCs" if r.get("logic_cells") is not None
             else f"{r.get('luts')} LUTs")
    line = (f"{info['board']}: {logic}, {r.get('ffs')} FFs, {r['bram_blocks']} BRAM, "
            + (f"{r['spram_blocks']} SPRAM, " if r.get("spram_blocks") else "")
            + f"{r['dsp']} DSP; Fmax {r.get('fmax_main_mhz')} MHz")
    thr = r.get("throughput_updates_per_s")
    if info.get("top") == "uart" and info.get("clock_mhz") and info.get("lanes"):
        # The board top runs at the board clock, not at Fmax, and its UART is the limit.
        clock = info["clock_mhz"]
        line += (f"; runs at the {clock:g} MHz board clock: {info['lanes'] * clock:.0f} M "
                 f"neuron updates/s in the array, the {info['baudrate']}-baud UART "
                 f"({info['baudrate'] / 10 / 1e3:.1f} kB/s) is the limit")
    elif thr:
        line += f"; {thr / 1e6:.0f} M neuron updates/s at Fmax"
    if r.get("us_per_image"):
        line += f"; {r['us_per_image']:.2f} µs/image ({info['cycles_per_image']:,.1f} cycles)"
    if r.get("latency_us"):
        line += f"; latency {r['latency_us']:.2f} µs"
    return line


#: The build script's tool variables -> the stage each runs.
STAGES = {"YOSYS": "synth", "NEXTPNR_ICE40": "place and route", "NEXTPNR_ECP5": "place and route",
          "ICEPACK": "pack", "ECPPACK": "pack"}


def script_stages(script):
    """Split an Amaranth ``build_<name>.sh`` into its preamble (``set -e``, tool variable
    defaults) and one ``(stage, tool, command)`` per tool invocation, in order."""
    preamble, stages = [], []
    for line in script.splitlines():
        stripped = line.strip()
        if stripped.startswith('"$'):
            var = stripped[2:].split('"', 1)[0]
            stages.append((STAGES.get(var, var.lower()), var.lower().replace("_", "-"), line))
        elif stripped and not stripped.startswith("#"):
            preamble.append(line)
    return "\n".join(preamble), stages


def run_stages(out, env, *, script="build_top.sh", log=print):
    """Run the build script in ``out`` one tool at a time; ``{stage: seconds}``.

    Each stage shows its name and elapsed time on stderr while it runs (tqdm; off when
    stderr is not a terminal) and logs ``stage (tool): seconds`` when it is done. A failing
    tool raises ``subprocess.CalledProcessError``, as the whole script would.
    """
    import subprocess

    from tqdm import tqdm
    preamble, stages = script_stages((Path(out) / script).read_text())
    seconds = {}
    for i, (stage, tool, command) in enumerate(stages, 1):
        desc = f"  [{i}/{len(stages)}] {stage} ({tool})"
        bar = tqdm(desc=desc, bar_format="{desc}: {elapsed}", file=sys.stderr, disable=None,
                   leave=False)
        t0 = time.monotonic()
        proc = subprocess.Popen(["sh", "-c", preamble + "\n" + command], cwd=out, env=env)
        try:
            while True:
                try:
                    code = proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    bar.refresh()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            bar.close()
        if code and tool == "yosys" and _abc9_asserted(out):
            # Yosys's own bug (see ABC9_BUG): synthesize once more, abc9 with -dff.
            retry = _abc9_retry(out, command)
            if retry is not None:
                log(f"{desc.strip()}: Yosys's abc9 asserted ({ABC9_BUG}, a Yosys bug); "
                    f"synthesizing again through {ABC9_RETRY_SCRIPT} ...")
                code = subprocess.run(["sh", "-c", preamble + "\n" + retry], cwd=out,
                                      env=env).returncode
                command = retry
        if code:
            raise subprocess.CalledProcessError(code, command)
        seconds[stage] = round(seconds.get(stage, 0.0) + time.monotonic() - t0, 1)
        log(f"{desc.strip()}: {time.monotonic() - t0:.1f} s")
    return seconds


def _tail(path, lines=6):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def run(args):
    target = get_target(args.board)
    folded = core_from_args(args)
    out = Path(args.out or Path("build") / target.name)
    build_board(folded, args.lanes, target, out, bench=args.bench, freq=args.freq,
                baudrate=args.baudrate, buffer_bytes=args.buffer_bytes,
                readback=not args.no_readback, plan_only=args.plan_only,
                memory_outreg=False if args.no_outreg else None, flow=args.flow)
    return 0
