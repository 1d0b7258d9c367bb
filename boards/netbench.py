"""Place and route a whole network (a model file or a random stand-in) and time it.

``python -m boards.netbench`` runs the two measurements the board figures need, each once:

1. **Cycles** (``--samples N``, default 3; ``0`` skips): the network's RTL in cocotb +
   Icarus against the golden integer model (:func:`sim.network_cosim.run_network_cocotb`),
   the samples streamed back to back: the first image's latency (first pixel accepted ->
   result, idle pipeline) and the steady-state interval between results, with the number
   of values compared and mismatches (must be 0).
2. **Place and route** (unless ``--no-build``): :func:`boards.build.build_network` (the
   network in its registered bench shell, yosys + nextpnr): LUTs/LCs, FFs, block RAM,
   DSP, Fmax; the cycles become µs per image at that Fmax.

Examples (the README's figures)::

    python -m boards.netbench --board ulx3s-85f --random 784-128-10 --lanes 16,10 \\
        --in-lanes 16 --out build/netbench/784-128-10
    python -m boards.netbench --board ulx3s-85f --model golden/models/digits_mpbn.npz \\
        --samples 2 --out build/netbench/digits

``--random A-B-C`` builds :func:`sim.network_cosim.random_network` (random MPBN weights,
8-bit, T = 4, seed 0) with ``--nonzero`` of its random pixels non-zero (default 1.0, the
slowest case); ``--model`` takes a ``spikefold-network`` model file and uses its test
samples. Everything goes to ``--out``: ``netbench.json`` (the figures and the command),
the cocotb run and the build directory ``pnr/`` (``build.json``, nextpnr's report).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

__all__ = ["main", "parse_sizes", "parse_lanes", "plan_cycles"]


def plan_cycles(inet, plan, x):
    """The plan's cycles per sample (:meth:`hdl.plan.NetworkPlan.cycles_per_sample`, the
    steady-state model ``tests/test_hdl_plan.py`` checks against simulation) for each of
    the float inputs ``x``, from the golden model's activity: the analog first stage's
    non-zero pixels, then per timestep the non-zero inputs of every later synaptic stage
    (the spikes of the LIF layer before it, through any pooling)."""
    import numpy as np
    x_q, _ = inet.quantize_input(x)
    res = inet.run(x, per_sample=True)
    S = len(x_q)
    acts, cur, lif = [], None, 0
    synaptic = [i for i, layer in enumerate(inet.layers) if getattr(layer, "W_q", None)
                is not None]
    for i, layer in enumerate(inet.layers):
        if i in synaptic:
            if cur is None:
                acts.append([int(np.count_nonzero(x_q[s])) for s in range(S)])
            else:
                acts.append([[int(np.count_nonzero(cur[t, s])) for t in range(inet.T)]
                             for s in range(S)])
            if i != synaptic[-1]:
                cur = np.asarray(res.spikes[lif])
                lif += 1
        elif hasattr(layer, "run") and cur is not None and layer.kind != "flatten":
            cur = np.asarray(layer.run(cur).out)
    return [plan.cycles_per_sample([a[s] for a in acts]) for s in range(S)]


def parse_sizes(text):
    """``"784-128-10"`` -> ``(784, 128, 10)``; at least two positive sizes."""
    try:
        sizes = tuple(int(v) for v in str(text).split("-"))
    except ValueError:
        sizes = ()
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"--random must be layer sizes like 784-128-10, not {text!r}")
    return sizes


def parse_lanes(text):
    """``"16"`` -> 16 (every layer), ``"16,10"`` -> ``[16, 10]`` (one per layer)."""
    if text is None:
        return None
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"--lanes must be a positive integer or a comma list of them, "
                         f"not {text!r}")
    return values[0] if len(values) == 1 else values


def _parser():
    from boards.targets import TARGETS
    p = argparse.ArgumentParser(prog="python -m boards.netbench", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", required=True, choices=sorted(TARGETS))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a spikefold-network model file (.npz)")
    src.add_argument("--random", help="layer sizes of a random stand-in, e.g. 784-128-10")
    p.add_argument("--lanes", help="lanes of every layer, or one per layer (16,10)")
    p.add_argument("--in-lanes", type=int, default=None, help="pixels per input beat")
    p.add_argument("--samples", type=int, default=3,
                   help="samples for the cycle figures in cocotb (0: skip), default 3")
    p.add_argument("--nonzero", type=float, default=1.0,
                   help="--random: fraction of non-zero pixels (default 1.0)")
    p.add_argument("--cycles", type=float, default=None,
                   help="with --samples 0: streaming cycles/image measured before")
    p.add_argument("--latency", type=int, default=None,
                   help="with --samples 0: first-image cycles measured before")
    p.add_argument("--plan-cycles", type=int, default=0, metavar="N",
                   help="streaming cycles/image from the stage plans and golden's activity "
                        "on N samples (no simulation; with --samples 0)")
    p.add_argument("--flow", choices=("auto", "stall", "credit"), default="auto",
                   help="the dense stages' engine flow; auto (the default): credit on ECP5, "
                        "stall on iCE40 (boards.top.flow_for)")
    p.add_argument("--freq", type=float, default=None, help="timing target, MHz")
    p.add_argument("--no-build", action="store_true", help="cycles only, no place and route")
    p.add_argument("--out", required=True, help="output directory")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        lanes = parse_lanes(args.lanes)
        if not 0.0 <= args.nonzero <= 1.0:
            raise ValueError(f"--nonzero must be in [0, 1], not {args.nonzero}")
        if args.samples < 0:
            raise ValueError(f"--samples must be >= 0, not {args.samples}")
        if args.samples and (args.cycles is not None or args.latency is not None
                             or args.plan_cycles):
            raise ValueError("--cycles/--latency only with --samples 0 (else they are measured)")
        sizes = parse_sizes(args.random) if args.random else None
    except ValueError as exc:
        print(f"python -m boards.netbench: error: {exc}", file=sys.stderr)
        return 2
    from boards.build import build_network, network_memory
    from boards.targets import get_target
    from boards.top import flow_for
    from hdl.mapping import HardwareMapping
    from sim.network_cosim import cycle_figures, random_network, random_pixels, \
        run_network_cocotb

    target = get_target(args.board)
    if sizes:
        inet = random_network(sizes)
        x = random_pixels(sizes[0], max(args.samples, 1), nonzero=args.nonzero, seed=11)
        what = f"random {args.random} (T = {inet.T}, non-zero pixels {args.nonzero:g})"
    else:
        from golden.modelfile import ModelFile
        model = ModelFile.load(args.model)
        inet = model.integer()
        if model.test_x is None:
            raise SystemExit(f"{args.model}: no test samples in the model file")
        x = model.inputs(model.test_x[:max(args.samples, args.plan_cycles, 1)])
        if x.ndim == 2 and len(inet.layers) and hasattr(inet.layers[0], "in_shape"):
            x = x.reshape((len(x),) + tuple(inet.layers[0].in_shape))
        what = args.model
    mapping = HardwareMapping.for_network(inet, lanes, args.in_lanes,
                                          flow=flow_for(target, args.flow))
    network_memory(inet, mapping, target)          # refuse what cannot fit, up front
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"command": "python -m boards.netbench " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "network": what, "mapping": mapping.to_json(), "board": target.name}
    cycles, latency = args.cycles, args.latency
    if not args.samples and cycles is not None:
        info.update(cycles_per_image=cycles, latency_cycles_first=latency,
                    cycles_source="given (--cycles/--latency)")
    if args.plan_cycles:
        from hdl.plan import network_plan
        xs = x if len(x) >= args.plan_cycles else (
            random_pixels(sizes[0], args.plan_cycles, nonzero=args.nonzero, seed=11) if sizes
            else model.inputs(model.test_x[:args.plan_cycles]))
        est = plan_cycles(inet, network_plan(inet, mapping), xs[:args.plan_cycles])
        cycles = round(sum(est) / len(est), 1)
        info.update(cycles_per_image=cycles, cycles_source=f"stage plans, golden activity "
                    f"of {len(est)} samples (mean)", plan_cycles=est)
        print(f"{what}: plan {cycles} cycles/image (mean of {len(est)} samples)", flush=True)
    if args.samples:
        t0 = time.monotonic()
        res = run_network_cocotb(inet, x[:args.samples], mapping=mapping,
                                 root=out / "cosim")
        fig = cycle_figures(res)
        cycles, latency = fig["cycles_per_image"], fig["latency_cycles_first"]
        info.update(samples=args.samples, compared=res["compared"],
                    mismatches=res["mismatches"], cycles_per_image=cycles,
                    latency_cycles=fig["latency_cycles"], latency_cycles_first=latency,
                    cosim_s=round(time.monotonic() - t0, 1))
        print(f"{what}: {res['compared']} values compared, {res['mismatches']} mismatches; "
              f"first image {latency} cycles, streaming {cycles} cycles/image", flush=True)
    if not args.no_build:
        b = build_network(inet, mapping, target, out / "pnr", freq=args.freq,
                          cycles_per_image=cycles, latency_cycles=latency,
                          log=lambda text: print(text, flush=True))
        info["results"] = b["results"]
        info["memory"] = b["memory"]
    (out / "netbench.json").write_text(json.dumps(info, indent=1) + "\n")
    return 0 if not info.get("mismatches") else 1


if __name__ == "__main__":
    sys.exit(main())
