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
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from golden.examples import add_core_arguments, core_from_args

from .estimate import check_fit
from .report import parse_nextpnr_report, parse_yosys_stat, summarize
from .targets import TARGETS, dfu_suffix, get_target
from .toolchain import missing_tools, toolchain_env

__all__ = ["add_arguments", "run", "build_board",
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
    parser.add_argument("--no-outreg", action="store_true",
                        help="read block RAM without its output register (one stage less "
                             "latency, much lower Fmax)")


def build_board(folded, lanes, target, out, *, bench=False, freq=None, baudrate=115200,
                memory_outreg=True,
                buffer_bytes=512, readback=True, plan_only=False, log=print):
    """Build (or with ``plan_only`` only prepare) one board; returns the build.json dict."""
    from .top import BenchBoardTop, BoardTop, bench_platform
    est = check_fit(folded.config, lanes, target, host_link=not bench,
                    buffer_bytes=buffer_bytes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if bench:
        freq = freq or DEFAULT_FREQ[target.family]
        platform = bench_platform(target, freq * 1e6)
        top = BenchBoardTop(folded, lanes, memory_outreg=memory_outreg)
    else:
        platform = target.make_platform()
        top = BoardTop(folded, lanes, baudrate=baudrate, buffer_bytes=buffer_bytes,
                       readback=readback, uart_resource=target.uart,
                       memory_outreg=memory_outreg)
    kwargs = dict(target.build_kwargs, emit_src=False)
    if target.open_toolchain:
        opts = "--report top.report.json"
        if bench:
            opts += " --timing-allow-fail"     # we measure Fmax; missing the target is data
        kwargs["nextpnr_opts"] = opts
    plan = platform.build(top, name="top", do_build=False, **kwargs)
    from hdl.lif_array import LIFArray
    array = LIFArray.from_folded(folded, lanes, memory_outreg=memory_outreg)
    array._MustUse__silence = True            # only asked for its latency
    info = {
        "format": "spikefold-build", "version": 1, "board": target.name,
        "board_name": target.board, "device": target.device, "family": target.family,
        "top": "bench" if bench else "uart", "lanes": lanes, "latency": array.latency,
        "memory_outreg": memory_outreg,
        "beats_per_step": array.beats_per_step, "config": folded.config.to_json(),
        "estimate": est.to_json(), "note": target.note,
        "command": "spikefold build " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if Path(sys.argv[0]).name == "spikefold" else None,
    }
    if bench:
        info["freq_target_mhz"] = freq
    else:
        info["baudrate"] = baudrate
        info["clock_mhz"] = platform.default_clk_frequency / 1e6
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
    log(f"{target.name}: building N={folded.config.neurons} P={lanes} "
        f"({'bench' if bench else 'UART top'}) in {out} ...")
    try:
        plan.execute_local(out, env=toolchain_env(tools=target.tools))
    except Exception as exc:
        import subprocess
        if isinstance(exc, subprocess.CalledProcessError):
            tail = _tail(out / "top.tim") or _tail(out / "top.rpt")
            raise RuntimeError(f"the toolchain failed (see {out}/top.tim): {tail}") from None
        raise
    info["build_seconds"] = round(time.monotonic() - t0, 1)
    report = parse_nextpnr_report(out / "top.report.json")
    cells = parse_yosys_stat(out / "top.rpt")
    fig = summarize(target.family, report, cells, lanes=lanes)
    info.update(built=True, results=fig, yosys_cells=cells)
    bitfile = out / f"top.{target.bitstream}"
    info["bitstream"] = bitfile.name
    if target.name.startswith("orangecrab"):
        (out / "top.dfu").write_bytes(dfu_suffix(bitfile.read_bytes()))
        info["dfu"] = "top.dfu"
    (out / "build.json").write_text(json.dumps(info, indent=1) + "\n")
    log(_summary_line(info))
    return info


def _summary_line(info):
    r = info["results"]
    logic = (f"{r['logic_cells']} LCs" if r.get("logic_cells") is not None
             else f"{r.get('luts')} LUTs")
    fmax = r.get("fmax_main_mhz")
    thr = r.get("throughput_updates_per_s")
    return (f"{info['board']}: {logic}, {r.get('ffs')} FFs, {r['bram_blocks']} BRAM, "
            f"{r['dsp']} DSP; Fmax {fmax} MHz; {thr / 1e6:.0f} M neuron updates/s"
            if thr else f"{info['board']}: {logic}")


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
                memory_outreg=not args.no_outreg)
    return 0
